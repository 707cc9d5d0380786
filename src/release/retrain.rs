//! Retrain triggers, by policy (`[retrain]`): an incident of a cause that
//! retraining can fix (`covariate_shift`, `concept_drift`, `label_shift` by
//! default — never `pipeline` or `feature_change`: training on broken or
//! re-meant data bakes the bug in, and those incidents go to the pipeline
//! owner instead) that has stayed open `persisted` at `min_severity`, or a
//! schedule (`every`). At most one `retrain_requested` per model per
//! `cooldown`, and none while an earlier request is unanswered: a
//! `retrain_ack` control event answers it. The request names the event-time
//! range and the slices to train on, and the incident behind it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::Severity;
use crate::config::Config;
use crate::incident::feedback::Recorded;

use super::{Action, ActionKind, Context, Evidence, action_id};

/// What retraining needs to know of an open incident.
pub struct OpenIncident<'a> {
    pub id: &'a str,
    pub model_id: &'a str,
    pub model_version: Option<&'a str>,
    pub severity: Severity,
    pub cause: &'a str,
    pub opened_at: i64,
    pub slices: &'a [BTreeMap<String, String>],
    pub summary: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ModelRetrain {
    /// Event time of the last request.
    last: Option<i64>,
    /// The request not acknowledged yet.
    unanswered: Option<String>,
}

/// Retraining state of one engine (checkpointed with it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Retrain {
    models: BTreeMap<String, ModelRetrain>,
    /// First event time seen per model (the schedule counts from it).
    since: BTreeMap<String, i64>,
}

impl Retrain {
    /// A `retrain_ack` for `action_id`: answers the request (idempotent).
    pub fn ack(&mut self, id: &str) -> Recorded {
        for m in self.models.values_mut() {
            if m.unanswered.as_deref() == Some(id) {
                m.unanswered = None;
                return Recorded::Counted;
            }
        }
        Recorded::Waiting
    }

    /// The request a model is waiting on, if any.
    pub fn unanswered(&self, model: &str) -> Option<&str> {
        self.models.get(model)?.unanswered.as_deref()
    }

    /// Decides at event time `now` over the open incidents (and the
    /// schedule); the requests go to `out`.
    pub fn evaluate(
        &mut self,
        now: i64,
        incidents: &[OpenIncident<'_>],
        models: impl Iterator<Item = (String, Option<String>)>,
        cfg: &Config,
        cx: &Context<'_>,
        out: &mut Vec<Action>,
    ) {
        let r = &cfg.retrain;
        let min = if r.min_severity == "warning" {
            Severity::Warning
        } else {
            Severity::Critical
        };
        let (persisted, cooldown, every, window) = (
            r.persisted.as_millis(),
            r.cooldown.as_millis(),
            r.every.as_millis(),
            r.train_window.as_millis(),
        );
        let allowed =
            |m: &ModelRetrain| m.unanswered.is_none() && m.last.is_none_or(|l| now - l >= cooldown);
        let request = |st: &mut ModelRetrain,
                       model: &str,
                       version: Option<&str>,
                       rule: &str,
                       incident: Option<&OpenIncident<'_>>,
                       out: &mut Vec<Action>| {
            let slices = incident.map(|i| i.slices.to_vec()).unwrap_or_default();
            let why = match incident {
                Some(i) => format!(
                    "incident {} ({}, {}) open since {}",
                    i.id,
                    i.cause,
                    i.severity.as_str(),
                    i.opened_at
                ),
                None => format!("schedule: every {}", r.every),
            };
            let id = action_id(&[
                model,
                "retrain",
                rule,
                incident.map_or("", |i| i.id),
                &now.to_string(),
            ]);
            let cause = incident.map_or("", |i| i.cause);
            out.push(Action {
                action_id: id.clone(),
                action: ActionKind::RetrainRequested,
                model_id: model.to_string(),
                model_version: version.map(str::to_string),
                baseline_version: None,
                mode: String::new(),
                slice: BTreeMap::new(),
                rule: rule.into(),
                evidence: Evidence {
                    statistic: if incident.is_some() {
                        "incident"
                    } else {
                        "schedule"
                    }
                    .into(),
                    train_from: Some(now - window),
                    train_to: Some(now),
                    train_slices: slices,
                    summary: format!(
                        "{model}: retrain {}: {why}; train on event time [{}, {}){}",
                        version.unwrap_or("the model"),
                        now - window,
                        now,
                        incident.map_or(String::new(), |i| format!(" — {}", i.summary))
                    ),
                    ..Evidence::default()
                },
                incident_id: incident.map(|i| i.id.to_string()),
                supersedes: None,
                decided_at: now,
                owner: cx.owners.owner_of(model, None, &BTreeMap::new(), cause),
                runbook_url: format!("{}retrain.md", cx.runbook_base),
                config_hash: cx.config_hash.to_string(),
                engine_version: crate::config::engine_version().to_string(),
                emitted_at: now,
            });
            st.last = Some(now);
            st.unanswered = Some(id);
        };
        // incidents, oldest first (one request per model at most)
        let mut due: Vec<&OpenIncident<'_>> = incidents
            .iter()
            .filter(|i| {
                i.severity >= min
                    && now - i.opened_at >= persisted
                    && r.causes.iter().any(|c| c == i.cause)
            })
            .collect();
        due.sort_by(|a, b| (a.opened_at, a.id).cmp(&(b.opened_at, b.id)));
        for i in due {
            let st = self.models.entry(i.model_id.to_string()).or_default();
            if allowed(st) {
                request(
                    st,
                    i.model_id,
                    i.model_version,
                    "retrain.causes",
                    Some(i),
                    out,
                );
            }
        }
        if every > 0 {
            for (model, version) in models {
                let since = *self.since.entry(model.clone()).or_insert(now);
                let st = self.models.entry(model.clone()).or_default();
                let base = st.last.unwrap_or(since);
                if now - base >= every && allowed(st) {
                    request(st, &model, version.as_deref(), "retrain.every", None, out);
                }
            }
        }
    }
}
