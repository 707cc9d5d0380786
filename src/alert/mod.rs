//! Alert events: the contract of DESIGN.md, the policy that decides when a
//! series alerts, and the sinks alerts are written to.

pub mod avro;
pub mod policy;
pub mod sink;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    DataDrift,
    PredictionDrift,
    DataQuality,
    Performance,
    ConceptDrift,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::DataDrift,
        AlertKind::PredictionDrift,
        AlertKind::DataQuality,
        AlertKind::Performance,
        AlertKind::ConceptDrift,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DataDrift => "data_drift",
            AlertKind::PredictionDrift => "prediction_drift",
            AlertKind::DataQuality => "data_quality",
            AlertKind::Performance => "performance",
            AlertKind::ConceptDrift => "concept_drift",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Escalated,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Escalated => "escalated",
            AlertState::Resolved => "resolved",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Pipeline,
    FeatureChange,
    CovariateShift,
    LabelShift,
    ConceptDrift,
    Unknown,
}

impl Cause {
    pub const ALL: [Cause; 6] = [
        Cause::Pipeline,
        Cause::FeatureChange,
        Cause::CovariateShift,
        Cause::LabelShift,
        Cause::ConceptDrift,
        Cause::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Pipeline => "pipeline",
            Cause::FeatureChange => "feature_change",
            Cause::CovariateShift => "covariate_shift",
            Cause::LabelShift => "label_shift",
            Cause::ConceptDrift => "concept_drift",
            Cause::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSize {
    pub current: i64,
    pub reference: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Persistence {
    pub breaches: i32,
    pub evaluations: i32,
}

/// One test's result, as carried in the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub test: String,
    pub statistic: f64,
    pub p_value: Option<f64>,
}

/// A bin or category that moved, with its share in each window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub bin: String,
    pub reference_share: f64,
    pub current_share: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantilePair {
    pub q: f64,
    pub reference: f64,
    pub current: f64,
}

/// What a person needs to triage without opening code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// One sentence: what moved, how much, compared with what.
    pub summary: String,
    pub reference_mean: Option<f64>,
    pub current_mean: Option<f64>,
    pub reference_null_rate: f64,
    pub current_null_rate: f64,
    pub quantiles: Vec<QuantilePair>,
    pub top_moves: Vec<Move>,
    pub tests: Vec<TestResult>,
    /// Median of the newest buckets over the reference's median, for numbers.
    pub scale_ratio: Option<f64>,
    /// Share of the newest buckets' values in categories the reference never saw.
    pub new_category_share: Option<f64>,
    pub type_violation_rate: f64,
    /// Other alerts weighed in the triage (their `alert_id`s).
    pub related_alert_ids: Vec<String>,
}

/// The alert event, one schema for the alert topic and for JSON Lines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub model_id: String,
    pub model_version: Option<String>,
    pub kind: AlertKind,
    pub feature: Option<String>,
    pub slice: BTreeMap<String, String>,
    pub test: String,
    pub statistic: f64,
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub severity: Severity,
    pub state: AlertState,
    pub window_start: i64,
    pub window_end: i64,
    pub reference_start: i64,
    pub reference_end: i64,
    pub sample_size: SampleSize,
    pub persistence: Persistence,
    pub evidence: Evidence,
    pub suspected_cause: Cause,
    pub exemplar_trace_ids: Vec<String>,
    pub emitted_at: i64,
    /// The incident it belongs to (see `incident`).
    #[serde(default)]
    pub incident_id: String,
    /// Who owns it (`[owners]`).
    #[serde(default)]
    pub owner: String,
    /// `incidents.runbook_base_url` + `<kind>.md`.
    #[serde(default)]
    pub runbook_url: String,
    /// Hash of the config sections that decide alerts (`config::decision_hash`).
    #[serde(default)]
    pub config_hash: String,
    /// Crate version and git revision of the build (`engine_version`).
    #[serde(default)]
    pub engine_version: String,
}

/// Stable id of an alert episode: the same series, kind and episode start
/// give the same id on every run, so consumers can drop redeliveries.
pub fn episode_id(
    model: &str,
    kind: AlertKind,
    feature: Option<&str>,
    slice: &BTreeMap<String, String>,
    started_at: i64,
) -> String {
    // FNV-1a, 128 bits as two independent 64-bit lanes: stable across
    // platforms and releases (std's hasher is not).
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    let mut feed = |bytes: &[u8]| {
        for &x in bytes {
            a = (a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ x as u64)
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
        a = (a ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ 0xfe)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    };
    feed(model.as_bytes());
    feed(kind.as_str().as_bytes());
    feed(feature.unwrap_or("").as_bytes());
    for (k, v) in slice {
        feed(k.as_bytes());
        feed(v.as_bytes());
    }
    feed(&started_at.to_be_bytes());
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_ids_are_stable_and_distinct() {
        let s = BTreeMap::from([("region".to_string(), "EU".to_string())]);
        let a = episode_id("m", AlertKind::DataDrift, Some("amount"), &s, 1000);
        assert_eq!(
            a,
            episode_id("m", AlertKind::DataDrift, Some("amount"), &s, 1000)
        );
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            episode_id("m", AlertKind::DataDrift, Some("amount"), &s, 2000)
        );
        assert_ne!(
            a,
            episode_id("m", AlertKind::DataQuality, Some("amount"), &s, 1000)
        );
        assert_ne!(
            a,
            episode_id(
                "m",
                AlertKind::DataDrift,
                Some("amount"),
                &BTreeMap::new(),
                1000
            )
        );
        // field boundaries matter: ("ab","c") differs from ("a","bc")
        assert_ne!(
            episode_id("ab", AlertKind::DataDrift, Some("c"), &BTreeMap::new(), 0),
            episode_id("a", AlertKind::DataDrift, Some("bc"), &BTreeMap::new(), 0)
        );
    }
}
