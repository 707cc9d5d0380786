//! `[release]`: which version is production, and the rules, set upfront,
//! that judge a candidate (canary or shadow) against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseConfig {
    /// Production version per model id. A model not named here: the version
    /// that held its traffic first. Any other live version is a candidate.
    pub production: BTreeMap<String, String>,
    /// Labelled pairs each version needs in a slice (or overall) before the
    /// slice is compared at all.
    pub min_pairs: u64,
    /// Relative increase of the candidate's mean loss (Brier score with a
    /// score, squared error for regression, error rate for classes) over
    /// production's that counts as worse: a warning tier …
    pub worse_by: f64,
    /// … and a critical one.
    pub critical_worse_by: f64,
    /// One-sided significance of "the candidate's loss is higher" (Welch's
    /// t-test on per-pair losses), after Benjamini–Hochberg over the
    /// overall series and every slice compared at one evaluation.
    pub alpha: f64,
    /// Consecutive evaluations the rollback condition must hold.
    pub persistence: u32,
    /// How often (event time) candidates are compared.
    pub evaluate_every: HumanDuration,
    /// Promote only after the candidate has been live this long …
    pub promote_after: HumanDuration,
    /// … with at least this many labelled pairs overall, and no slice worse
    /// than production by `worse_by` (point estimate) with `min_pairs`.
    pub promote_min_pairs: u64,
    /// Fairness gate: the slice dimension whose values' quality gap the
    /// candidate must not widen (empty: off) …
    pub fairness_dimension: String,
    /// … by more than this (absolute, in mean loss) over production's gap.
    pub fairness_margin: f64,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        ReleaseConfig {
            production: BTreeMap::new(),
            min_pairs: 200,
            worse_by: 0.05,
            critical_worse_by: 0.15,
            alpha: 0.001,
            persistence: 3,
            evaluate_every: HumanDuration::secs(600),
            promote_after: HumanDuration::secs(12 * 3600),
            promote_min_pairs: 2000,
            fairness_dimension: String::new(),
            fairness_margin: 0.02,
        }
    }
}

/// `[retrain]`: when to ask for a retraining, by policy.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    /// Incident causes that may trigger a request (never `pipeline` or
    /// `feature_change`: training on broken data bakes the bug in).
    pub causes: Vec<String>,
    /// The incident's severity must be at least this (`warning`, `critical`) …
    pub min_severity: String,
    /// … and it must have stayed open this long (event time).
    pub persisted: HumanDuration,
    /// At most one request per model per cool-down.
    pub cooldown: HumanDuration,
    /// Also request one this often regardless of incidents (event time;
    /// 0: no schedule).
    pub every: HumanDuration,
    /// The event-time span named as training data, ending at the request.
    pub train_window: HumanDuration,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        RetrainConfig {
            causes: vec![
                "covariate_shift".into(),
                "concept_drift".into(),
                "label_shift".into(),
            ],
            min_severity: "critical".into(),
            persisted: HumanDuration::secs(3600),
            cooldown: HumanDuration::secs(24 * 3600),
            every: HumanDuration::secs(0),
            train_window: HumanDuration::secs(7 * 24 * 3600),
        }
    }
}
