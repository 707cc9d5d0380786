//! Baseline files: reference profiles built from historical events by
//! `driftline baseline`, loaded when the config points a model at one.
//!
//! Format (JSON, versioned): `{"format": 2, "models": [{"model_id", "start_ms",
//! "end_ms", "series": [...]}]}`; each series carries its counts, moments,
//! its quantile bins and, for categories, counts by name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::registry::{Feature, Role};
use crate::sketch::{Quantiles, Sketch, ValueKind};
use crate::window::{BinSpec, Reference};

/// Format 2: quantiles as counts per DDSketch bin (format 1 held the
/// sketches-ddsketch struct, whose bins are not readable).
pub const FORMAT: u32 = 2;

#[derive(Clone, Serialize, Deserialize)]
pub struct BaselineFile {
    pub format: u32,
    pub models: Vec<ModelBaseline>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ModelBaseline {
    pub model_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub series: Vec<SeriesBaseline>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Input,
    Prediction,
    Score,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Input => RoleName::Input,
            Role::Prediction => RoleName::Prediction,
            Role::Score => RoleName::Score,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SeriesBaseline {
    pub feature: String,
    pub role: RoleName,
    /// `[dimension, value]`, absent for the overall series.
    pub slice: Option<(String, String)>,
    pub kind: Option<ValueKind>,
    pub values: u64,
    pub nulls: u64,
    pub type_violations: u64,
    pub mean: f64,
    pub m2: f64,
    /// Counts per DDSketch bin (`sketch::Quantiles`).
    pub quantiles: Quantiles,
    pub categories: BTreeMap<String, u64>,
}

/// A series in a baseline: its role, feature name and slice.
type SeriesKey = (RoleName, String, Option<(String, String)>);

/// One model's baseline, indexed for lookup as series appear.
#[derive(Clone)]
pub struct Baseline {
    start_ms: i64,
    end_ms: i64,
    series: HashMap<SeriesKey, SeriesBaseline>,
}

impl Baseline {
    /// Reads the baselines the config names, keyed by model id.
    pub fn load_configured(cfg: &Config) -> Result<HashMap<String, Baseline>> {
        let mut out = HashMap::new();
        for (model, m) in &cfg.reference.models {
            let b = Baseline::load(&m.baseline, model)?;
            out.insert(model.clone(), b);
        }
        Ok(out)
    }

    pub fn load(path: &Path, model: &str) -> Result<Baseline> {
        let bad = |message: String| Error::Baseline {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: BaselineFile =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a baseline file: {e}")))?;
        if file.format != FORMAT {
            return Err(bad(format!(
                "format {} is not supported (this build reads format {FORMAT})",
                file.format
            )));
        }
        let m = file
            .models
            .into_iter()
            .find(|m| m.model_id == model)
            .ok_or_else(|| bad(format!("has no model `{model}`")))?;
        Ok(Baseline {
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            series: m
                .series
                .into_iter()
                .map(|s| ((s.role.clone(), s.feature.clone(), s.slice.clone()), s))
                .collect(),
        })
    }

    /// The pinned reference of one series, when the baseline has it and its
    /// kind agrees with what the stream shows.
    pub fn reference_for(
        &self,
        feature: &mut Feature,
        slice: Option<&(String, String)>,
        bins: &BinSpec,
        max_categories: usize,
    ) -> Option<Reference> {
        let b = self
            .series
            .get(&(feature.role.into(), feature.name.clone(), slice.cloned()))?;
        match (feature.kind, b.kind) {
            (_, None) => return None,
            (None, Some(k)) => feature.kind = Some(k),
            (Some(a), Some(k)) if a != k => return None,
            _ => {}
        }
        let mut s = Sketch::new();
        s.values = b.values;
        s.nulls = b.nulls;
        s.type_violations = b.type_violations;
        s.moments = crate::sketch::moments::Moments::from_mean_m2(b.values, b.mean, b.m2);
        s.quantiles = b.quantiles.clone();
        for (name, count) in &b.categories {
            let id = feature.category_id(name, max_categories) as usize;
            if s.hist.len() <= id {
                s.hist.resize(id + 1, 0);
            }
            s.hist[id] += count;
        }
        Some(Reference::build(
            s,
            self.start_ms,
            self.end_ms,
            feature.kind,
            bins,
        ))
    }
}

/// Describes one accumulated series for a baseline file.
pub fn series_baseline(
    feature: &Feature,
    slice: Option<(String, String)>,
    s: &Sketch,
) -> SeriesBaseline {
    let categories = match feature.kind {
        Some(ValueKind::Categorical) => s
            .hist
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (feature.category_names[i].clone(), *c))
            .collect(),
        _ => BTreeMap::new(),
    };
    SeriesBaseline {
        feature: feature.name.clone(),
        role: feature.role.into(),
        slice,
        kind: feature.kind,
        values: s.values,
        nulls: s.nulls,
        type_violations: s.type_violations,
        mean: s.mean(),
        m2: s.m2(),
        quantiles: s.quantiles.clone(),
        categories,
    }
}
