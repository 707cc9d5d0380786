//! Action events: what a release gate or a retrain trigger decided, with
//! its rule, evidence, owner and runbook (`schemas/action.avsc`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an action decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    RollbackRecommended,
    PromoteOk,
    RetrainRequested,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RollbackRecommended => "rollback_recommended",
            ActionKind::PromoteOk => "promote_ok",
            ActionKind::RetrainRequested => "retrain_requested",
        }
    }
}

/// The comparison or incident behind an action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ActionEvidence")]
pub struct Evidence {
    /// `brier`, `squared_error`, `error_rate`, `fairness_gap`, or `incident`.
    pub statistic: String,
    /// Mean loss (or gap) of the candidate and of production.
    pub candidate: Option<f64>,
    pub production: Option<f64>,
    /// Candidate relative to production, less one.
    pub relative: Option<f64>,
    /// The rule's threshold (relative for loss, absolute for the fairness gap).
    pub threshold: Option<f64>,
    pub p_value: Option<f64>,
    pub p_adjusted: Option<f64>,
    pub alpha: Option<f64>,
    /// Labelled pairs of the candidate and of production.
    pub candidate_pairs: Option<i64>,
    pub production_pairs: Option<i64>,
    pub candidate_auc: Option<f64>,
    pub production_auc: Option<f64>,
    /// Retraining: the event-time range and slices to train on.
    pub train_from: Option<i64>,
    pub train_to: Option<i64>,
    pub train_slices: Vec<BTreeMap<String, String>>,
    /// One line a person reads at a glance.
    pub summary: String,
}

/// One action event (`schemas/action.avsc`, record `Action`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Action")]
pub struct Action {
    /// `act-` + 16 hex digits, stable: the same decision has the same id.
    pub action_id: String,
    pub action: ActionKind,
    pub model_id: String,
    /// The candidate for release decisions; production for retraining.
    pub model_version: Option<String>,
    /// Production, for release decisions.
    pub baseline_version: Option<String>,
    /// `canary` or `shadow` for release decisions; empty for retraining.
    pub mode: String,
    /// `{}`: overall.
    pub slice: BTreeMap<String, String>,
    /// The config rule that decided (`release.worse_by`, `release.promote_after`,
    /// `release.fairness_margin`, `retrain.causes`, `retrain.every`).
    pub rule: String,
    pub evidence: Evidence,
    pub incident_id: Option<String>,
    /// The earlier decision on this candidate this one replaces.
    pub supersedes: Option<String>,
    /// Event time of the evaluation that decided.
    pub decided_at: i64,
    pub owner: String,
    pub runbook_url: String,
    pub config_hash: String,
    pub engine_version: String,
    /// Event time in replay; wall clock in the service.
    pub emitted_at: i64,
}

/// What an action needs from the engine to be complete.
pub struct Context<'a> {
    pub owners: &'a crate::config::owners::Owners,
    pub runbook_base: &'a str,
    pub config_hash: &'a str,
}

/// Stable id of a decision.
pub fn action_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_bytes().iter().chain(&[0xff]) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("act-{h:016x}")
}
