//! What the API and dashboard show of versions and their comparison.

use serde::Serialize;

use crate::registry::Model;

use super::{Decided, MixComparison, Release, ScoreDrift, SliceComparison};

/// A model's versions as the API and dashboard show them.
#[derive(Clone, Debug, Serialize)]
pub struct VersionsView {
    pub model_id: String,
    pub production: Option<String>,
    pub statistic: Option<String>,
    pub candidates: Vec<CandidateView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CandidateView {
    pub version: String,
    pub mode: &'static str,
    pub started: i64,
    pub decided: Decided,
    pub last_action: Option<String>,
    /// The latest comparison, overall first, then per slice.
    pub slices: Vec<SliceComparison>,
    /// Input mix per slice dimension and score distribution, compared.
    pub mix: Vec<MixComparison>,
    /// Each version's scores against production's reference (the unique-drift rule).
    pub drift: Option<ScoreDrift>,
}

/// The versions of every model with a candidate.
pub fn views(r: &Release, models: &[Model]) -> Vec<VersionsView> {
    r.models
        .iter()
        .enumerate()
        .filter(|(_, mr)| !mr.candidates.is_empty())
        .filter_map(|(m, mr)| {
            Some(VersionsView {
                model_id: models.get(m)?.id.clone(),
                production: mr.production.clone(),
                statistic: mr.statistic.clone(),
                candidates: mr
                    .candidates
                    .iter()
                    .map(|c| CandidateView {
                        version: c.version.clone(),
                        mode: if c.shadow { "shadow" } else { "canary" },
                        started: c.started,
                        decided: c.decided,
                        last_action: c.last_action.clone(),
                        slices: c.latest.clone(),
                        mix: c.mix.clone(),
                        drift: c.drift.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}
