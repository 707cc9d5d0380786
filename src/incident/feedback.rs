//! The control channel, and feedback on incidents so thresholds can learn.
//!
//! Control events come from people and their tools: `replay --control FILE`
//! (JSON Lines) or `kafka.control_topic` in `run` (JSON values):
//! `incident_feedback` — an incident was real (`confirmed`) or noise
//! (`false_positive`) — and `retrain_ack`, answering a retrain request
//! (`release::retrain`):
//!
//! ```json
//! {"type":"incident_feedback","incident_id":"inc-…","verdict":"false_positive","by":"alice","note":"known campaign","event_time":1767240000000}
//! ```
//!
//! Verdicts are counted per verdict and the incident root's test, feature
//! and cause, and checkpointed with the incidents. Applying a control event
//! is idempotent (the last verdict on an incident stands), so the service
//! reads the whole control topic at every start; and a verdict may come
//! before its incident is known (a topic read from its start, a member that
//! restores later): it waits, and counts once the incident opens.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::Cause;

/// One control event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    IncidentFeedback {
        incident_id: String,
        verdict: Verdict,
        /// Who gave it (free text, kept for the audit trail).
        #[serde(default)]
        by: String,
        #[serde(default)]
        note: String,
        /// When it was given, in the stream's event time (ms since the
        /// epoch). `replay` applies it once its input reaches that time
        /// (at the end of input when absent); `run` applies it on arrival.
        #[serde(default)]
        event_time: Option<i64>,
    },
    /// Answers a `retrain_requested` action: the retraining was taken on (or
    /// declined); the model may be asked again after the cool-down.
    RetrainAck {
        action_id: String,
        #[serde(default)]
        by: String,
        #[serde(default)]
        note: String,
        #[serde(default)]
        event_time: Option<i64>,
    },
}

impl Control {
    pub fn event_time(&self) -> Option<i64> {
        match self {
            Control::IncidentFeedback { event_time, .. }
            | Control::RetrainAck { event_time, .. } => *event_time,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::FalsePositive => "false_positive",
        }
    }
}

/// What a verdict is counted under: the incident's root test, feature, cause.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub test: String,
    pub feature: Option<String>,
    pub cause: Cause,
}

/// Whether a verdict names an incident this ledger knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Counted under the incident's root.
    Counted,
    /// Kept until the incident opens here (another member's, or not yet seen).
    Waiting,
}

/// Incidents feedback can name (the newest [`KNOWN`]), and the newest
/// [`KNOWN`] verdicts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    known: VecDeque<(String, Key)>,
    /// Verdicts by incident id, oldest first (a newer verdict on the same
    /// incident replaces the older one in place).
    verdicts: VecDeque<(String, Verdict)>,
}

/// Incidents, and verdicts, remembered for feedback.
pub const KNOWN: usize = 4096;

impl Ledger {
    /// An incident opened: feedback may name it.
    pub fn opened(&mut self, id: &str, key: Key) {
        if self.known.len() >= KNOWN {
            self.known.pop_front();
        }
        self.known.push_back((id.to_string(), key));
    }

    /// Records a verdict (the last one on an incident stands).
    pub fn record(&mut self, id: &str, verdict: Verdict) -> Recorded {
        match self.verdicts.iter_mut().find(|(k, _)| k == id) {
            Some(v) => v.1 = verdict,
            None => {
                if self.verdicts.len() >= KNOWN {
                    self.verdicts.pop_front();
                }
                self.verdicts.push_back((id.to_string(), verdict));
            }
        }
        if self.known.iter().any(|(k, _)| k == id) {
            Recorded::Counted
        } else {
            Recorded::Waiting
        }
    }

    /// Verdicts counted per verdict and root (test, feature, cause).
    pub fn counts(&self) -> BTreeMap<(Verdict, Key), u64> {
        let mut out = BTreeMap::new();
        for (id, v) in &self.verdicts {
            if let Some((_, key)) = self.known.iter().find(|(k, _)| k == id) {
                *out.entry((*v, key.clone())).or_default() += 1;
            }
        }
        out
    }

    /// Verdicts naming an incident not known here.
    pub fn waiting(&self) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|(id, _)| !self.known.iter().any(|(k, _)| k == id))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// Feedback counts as the API and `/metrics` report them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackCount {
    pub verdict: Verdict,
    pub test: String,
    pub feature: Option<String>,
    pub cause: Cause,
    pub count: u64,
}

/// Sums counts (of several engines) into the reported rows, in key order.
pub fn rows<'a>(
    counts: impl IntoIterator<Item = &'a BTreeMap<(Verdict, Key), u64>>,
) -> Vec<FeedbackCount> {
    let mut sum: BTreeMap<(Verdict, Key), u64> = BTreeMap::new();
    for c in counts {
        for (k, n) in c {
            *sum.entry(k.clone()).or_default() += n;
        }
    }
    sum.into_iter()
        .map(|((verdict, key), count)| FeedbackCount {
            verdict,
            test: key.test,
            feature: key.feature,
            cause: key.cause,
            count,
        })
        .collect()
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
        assert_eq!(l.record("inc-a", Verdict::FalsePositive), Recorded::Counted);
        l.record("inc-b", Verdict::Confirmed);
        l.record("inc-b", Verdict::FalsePositive);
        l.record("inc-c", Verdict::Confirmed);
        assert_eq!(l.record("inc-zzz", Verdict::Confirmed), Recorded::Waiting);
        let c = l.counts();
        assert_eq!(c[&(Verdict::FalsePositive, key("amount"))], 2);
        assert_eq!(c[&(Verdict::Confirmed, key("device"))], 1);
        assert_eq!(c.len(), 2);
        assert_eq!(l.waiting(), vec!["inc-zzz"]);
    }

    #[test]
    fn a_verdict_before_its_incident_counts_once_it_opens_and_reapplying_changes_nothing() {
        let mut l = Ledger::default();
        assert_eq!(l.record("inc-a", Verdict::Confirmed), Recorded::Waiting);
        assert!(l.counts().is_empty());
        l.opened("inc-a", key("amount"));
        l.record("inc-a", Verdict::Confirmed);
        assert_eq!(l.counts()[&(Verdict::Confirmed, key("amount"))], 1);
        assert_eq!(l.counts().len(), 1);
        assert!(l.waiting().is_empty());
    }

    #[test]
    fn the_ledger_is_bounded() {
        let mut l = Ledger::default();
        for i in 0..KNOWN + 10 {
            l.opened(&format!("inc-{i}"), key("amount"));
            l.record(&format!("inc-{i}"), Verdict::Confirmed);
        }
        assert_eq!(l.known.len(), KNOWN);
        assert_eq!(l.verdicts.len(), KNOWN);
        assert_eq!(
            l.counts()[&(Verdict::Confirmed, key("amount"))],
            KNOWN as u64
        );
    }

    #[test]
    fn control_events_parse_and_refuse_unknown_fields() {
        let c: Control = serde_json::from_str(
            r#"{"type":"incident_feedback","incident_id":"inc-1","verdict":"confirmed","by":"a","event_time":5}"#,
        )
        .unwrap();
        assert_eq!(c.event_time(), Some(5));
        assert!(matches!(
            c,
            Control::IncidentFeedback {
                verdict: Verdict::Confirmed,
                ..
            }
        ));
        for bad in [
            r#"{"type":"incident_feedback","incident_id":"x","verdict":"maybe"}"#,
            r#"{"type":"incident_feedback","incident_id":"x","verdict":"confirmed","verdit":"x"}"#,
            r#"{"type":"shrug"}"#,
        ] {
            assert!(serde_json::from_str::<Control>(bad).is_err(), "{bad}");
        }
    }
}
