//! Feedback on incidents, so thresholds can learn: a control event says an
//! incident was real (`confirmed`) or noise (`false_positive`). Counts are
//! kept per verdict and the root's test, feature and cause, checkpointed
//! with the incidents; a second verdict on an incident replaces the first.
//!
//! ```json
//! {"type":"incident_feedback","incident_id":"inc-…","verdict":"false_positive","by":"alice","note":"known campaign"}
//! ```

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::Cause;

/// One control event (`replay --control`, later `kafka.control_topic`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    IncidentFeedback {
        incident_id: String,
        verdict: Verdict,
        #[serde(default)]
        by: String,
        #[serde(default)]
        note: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

/// What a verdict is counted under: the incident's root test, feature, cause.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub test: String,
    pub feature: Option<String>,
    pub cause: Cause,
}

/// Incidents feedback can name (the newest `KNOWN`), and their verdicts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    known: VecDeque<(String, Key)>,
    verdicts: BTreeMap<String, Verdict>,
}

/// Incidents remembered for feedback.
pub const KNOWN: usize = 4096;

impl Ledger {
    /// An incident opened: feedback may name it.
    pub fn opened(&mut self, id: &str, key: Key) {
        if self.known.len() >= KNOWN
            && let Some((old, _)) = self.known.pop_front()
        {
            self.verdicts.remove(&old);
        }
        self.known.push_back((id.to_string(), key));
    }

    /// Records a verdict; an error names an incident not (or no longer) known.
    pub fn record(&mut self, id: &str, verdict: Verdict) -> Result<(), String> {
        if !self.known.iter().any(|(k, _)| k == id) {
            return Err(format!(
                "incident `{id}` is not known (only the newest {KNOWN} incidents take feedback)"
            ));
        }
        self.verdicts.insert(id.to_string(), verdict);
        Ok(())
    }

    /// Verdicts counted per verdict and root (test, feature, cause).
    pub fn counts(&self) -> BTreeMap<(Verdict, Key), u64> {
        let mut out = BTreeMap::new();
        for (id, key) in &self.known {
            if let Some(v) = self.verdicts.get(id) {
                *out.entry((*v, key.clone())).or_default() += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: &str) -> Key {
        Key {
            test: "psi".into(),
            feature: Some(f.into()),
            cause: Cause::CovariateShift,
        }
    }

    #[test]
    fn verdicts_count_per_root_and_the_last_one_stands() {
        let mut l = Ledger::default();
        l.opened("inc-a", key("amount"));
        l.opened("inc-b", key("amount"));
        l.opened("inc-c", key("device"));
        l.record("inc-a", Verdict::FalsePositive).unwrap();
        l.record("inc-b", Verdict::Confirmed).unwrap();
        l.record("inc-b", Verdict::FalsePositive).unwrap();
        l.record("inc-c", Verdict::Confirmed).unwrap();
        assert!(l.record("inc-zzz", Verdict::Confirmed).is_err());
        let c = l.counts();
        assert_eq!(c[&(Verdict::FalsePositive, key("amount"))], 2);
        assert_eq!(c[&(Verdict::Confirmed, key("device"))], 1);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn control_events_parse_and_refuse_unknown_fields() {
        let c: Control = serde_json::from_str(
            r#"{"type":"incident_feedback","incident_id":"inc-1","verdict":"confirmed","by":"a"}"#,
        )
        .unwrap();
        assert!(matches!(
            c,
            Control::IncidentFeedback {
                verdict: Verdict::Confirmed,
                ..
            }
        ));
        assert!(
            serde_json::from_str::<Control>(
                r#"{"type":"incident_feedback","incident_id":"x","verdict":"maybe"}"#
            )
            .is_err()
        );
    }
}
