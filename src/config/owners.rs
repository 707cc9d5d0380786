//! Who owns an alert or an incident: `[owners]` in the config, ordered
//! rules (first match wins) over model, feature and slice globs and causes,
//! and a fallback. A data owner gets a feature's `pipeline` and
//! `feature_change` incidents; a model owner its `concept_drift` and
//! `label_shift` ones:
//!
//! ```toml
//! [owners]
//! default = "ml-platform"
//! [[owners.rules]]
//! feature = "amount*"
//! cause = ["pipeline", "feature_change"]
//! owner = "payments-data"
//! [[owners.rules]]
//! model = "checkout-*"
//! owner = "fraud-ml"
//! ```

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};

pub use super::{OwnerRule as Rule, OwnersConfig};

/// The causes a rule may name (`alert::Cause::as_str`; a test holds them equal).
pub const CAUSES: [&str; 6] = [
    "pipeline",
    "feature_change",
    "covariate_shift",
    "label_shift",
    "concept_drift",
    "unknown",
];

struct Compiled {
    model: Option<GlobMatcher>,
    feature: Option<GlobMatcher>,
    slice: Option<(GlobMatcher, GlobMatcher)>,
    cause: Vec<String>,
    owner: String,
}

/// The rules, compiled once.
pub struct Owners {
    rules: Vec<Compiled>,
    default: String,
}

fn glob(pattern: &str, what: &str) -> Result<Option<GlobMatcher>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Glob::new(pattern)
        .map(|g| Some(g.compile_matcher()))
        .map_err(|e| format!("{what} `{pattern}`: {e}"))
}

impl Owners {
    /// Compiles the rules; an error names the rule (1-based) and the glob.
    pub fn new(cfg: &OwnersConfig) -> Result<Owners, String> {
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            let at = |e: String| format!("owners.rules[{}]: {e}", i + 1);
            if r.owner.trim().is_empty() {
                return Err(at("owner is empty".into()));
            }
            let slice = if r.slice.is_empty() {
                None
            } else {
                let (k, v) = r
                    .slice
                    .split_once('=')
                    .ok_or_else(|| at(format!("slice `{}` is not dimension=value", r.slice)))?;
                Some((
                    glob(k, "slice dimension").map_err(at)?.unwrap_or_else(any),
                    glob(v, "slice value").map_err(at)?.unwrap_or_else(any),
                ))
            };
            if let Some(c) = r.cause.iter().find(|c| !CAUSES.contains(&c.as_str())) {
                return Err(at(format!(
                    "unknown cause `{c}` (one of {})",
                    CAUSES.join(", ")
                )));
            }
            let cause = r.cause.clone();
            rules.push(Compiled {
                model: glob(&r.model, "model").map_err(at)?,
                feature: glob(&r.feature, "feature").map_err(at)?,
                slice,
                cause,
                owner: r.owner.clone(),
            });
        }
        Ok(Owners {
            rules,
            default: cfg.default.clone(),
        })
    }

    /// The owner of something about `model`, `feature` (None: model-level),
    /// `slice` and `cause`: the first rule that matches, or the default.
    pub fn owner_of(
        &self,
        model: &str,
        feature: Option<&str>,
        slice: &BTreeMap<String, String>,
        cause: &str,
    ) -> String {
        self.rules
            .iter()
            .find(|r| {
                r.model.as_ref().is_none_or(|g| g.is_match(model))
                    && r.feature
                        .as_ref()
                        .is_none_or(|g| feature.is_some_and(|f| g.is_match(f)))
                    && r.slice.as_ref().is_none_or(|(k, v)| {
                        slice.iter().any(|(d, x)| k.is_match(d) && v.is_match(x))
                    })
                    && (r.cause.is_empty() || r.cause.iter().any(|c| c == cause))
            })
            .map_or_else(|| self.default.clone(), |r| r.owner.clone())
    }
}

fn any() -> GlobMatcher {
    Glob::new("*").map_or_else(|_| unreachable!("`*` is a glob"), |g| g.compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners() -> Owners {
        Owners::new(&OwnersConfig {
            default: "ml-platform".into(),
            rules: vec![
                Rule {
                    feature: "amount*".into(),
                    cause: vec!["pipeline".into(), "feature_change".into()],
                    owner: "payments-data".into(),
                    ..Rule::default()
                },
                Rule {
                    slice: "region=APAC".into(),
                    owner: "apac-oncall".into(),
                    ..Rule::default()
                },
                Rule {
                    model: "checkout-*".into(),
                    owner: "fraud-ml".into(),
                    ..Rule::default()
                },
            ],
        })
        .unwrap()
    }

    #[test]
    fn first_matching_rule_owns_by_feature_glob_slice_and_cause() {
        let o = owners();
        let none = BTreeMap::new();
        let apac = BTreeMap::from([("region".to_string(), "APAC".to_string())]);
        // feature glob and cause: the data owner
        assert_eq!(
            o.owner_of("checkout-fraud", Some("amount_usd"), &none, "pipeline"),
            "payments-data"
        );
        // the same feature drifting (another cause): not the data owner
        assert_eq!(
            o.owner_of(
                "checkout-fraud",
                Some("amount_usd"),
                &none,
                "covariate_shift"
            ),
            "fraud-ml"
        );
        // a slice rule before the model rule
        assert_eq!(
            o.owner_of("checkout-fraud", Some("device"), &apac, "covariate_shift"),
            "apac-oncall"
        );
        // model-level alerts (no feature) fall to the model owner
        assert_eq!(
            o.owner_of("checkout-fraud", None, &none, "concept_drift"),
            "fraud-ml"
        );
        // nothing matches: the fallback
        assert_eq!(
            o.owner_of("search-rank", Some("query_len"), &none, "unknown"),
            "ml-platform"
        );
    }

    #[test]
    fn the_causes_a_rule_names_are_the_alerts() {
        let names: Vec<&str> = crate::alert::Cause::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(names, CAUSES);
    }

    #[test]
    fn a_bad_rule_is_named() {
        let e = Owners::new(&OwnersConfig {
            default: "x".into(),
            rules: vec![Rule {
                slice: "regionAPAC".into(),
                owner: "y".into(),
                ..Rule::default()
            }],
        })
        .err()
        .unwrap();
        assert!(
            e.contains("owners.rules[1]") && e.contains("dimension=value"),
            "{e}"
        );
    }
}
