//! Incidents: one per cause, not one per series. The engine hands every
//! evaluation's alerts to [`Incidents::observe`], which groups them by
//! model, in event time and deterministically (the same alerts give the
//! same incident ids and events):
//!
//! - **The same feature moving in several slices** is one incident: an
//!   input alert (`data_drift`, `data_quality`) joins an open incident of its
//!   model rooted in an input alert on the same feature, and an alert joins
//!   one whose root is of its own kind on its own feature (`prediction_drift`
//!   of `score` in three regions); its slice joins the scope.
//! - **Downstream effects join their cause**: a `prediction_drift`,
//!   `performance` or `concept_drift` alert that opens while an input alert
//!   of the same model with an overlapping slice is open joins that
//!   alert's incident (the root stays the input alert). Overlapping: one of
//!   the two is the overall series, or they agree on every dimension both
//!   name.
//! - **Quality without an input cause** is its own incident (its cause
//!   `concept_drift` or `label_shift`, as its root says), and later
//!   downstream alerts with an overlapping slice join it. An input alert
//!   that opens later joins it only when the evidence says the input moved
//!   first: its window starts before the end of the window the incident's
//!   root judged (the labels came late; the input shift was already there).
//!   Otherwise it opens its own incident.
//! - **Resolution**: an incident resolves when all its alerts have
//!   resolved. An alert that fires again within `policy.cooldown` of that
//!   reopens the same incident (an `updated` event, not a new page).
//!
//! Within one evaluation input alerts are grouped first, so a model's
//! prediction drift seen in the same evaluation as its cause joins it.
//! Events: `open` (a new incident), `updated` (an alert joined, the scope
//! grew, the severity rose, or it reopened), `resolved`; each with a
//! sequence number per incident, so consumers dedupe on (`incident_id`,
//! `seq`).

pub mod avro;
pub mod feedback;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, AlertState, Cause, Severity};

/// What happened to an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Updated,
    Resolved,
}

/// The alert an incident is about: its first cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Root {
    pub alert_id: String,
    pub kind: AlertKind,
    pub feature: Option<String>,
    pub slice: BTreeMap<String, String>,
    pub test: String,
    pub statistic: f64,
}

/// Features and slices an incident covers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub features: Vec<String>,
    /// Each an alert's slice (`{}`: the overall series).
    pub slices: Vec<BTreeMap<String, String>>,
}

/// One incident event (`schemas/incident.avsc`, record `Incident`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Incident")]
pub struct IncidentEvent {
    pub incident_id: String,
    /// 1 for `open`, then one more per event of this incident.
    pub seq: i64,
    pub state: IncidentState,
    pub model_id: String,
    pub model_version: Option<String>,
    /// The highest severity among its open alerts (at resolution: the highest it reached).
    pub severity: Severity,
    pub root: Root,
    pub suspected_cause: Cause,
    pub scope: Scope,
    /// Every alert that joined it, in the order they joined.
    pub alert_ids: Vec<String>,
    pub opened_at: i64,
    pub updated_at: i64,
    pub summary: String,
    pub owner: String,
    pub runbook_url: String,
    pub recommended_action: String,
    pub config_hash: String,
    pub engine_version: String,
    /// Event time of the evaluation in replay; wall clock in the service.
    pub emitted_at: i64,
}

/// An alert as an incident keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Member {
    alert_id: String,
    kind: AlertKind,
    feature: Option<String>,
    slice: BTreeMap<String, String>,
    severity: Severity,
    open: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Incident {
    id: String,
    model_id: String,
    model_version: Option<String>,
    root: Root,
    /// The window the root alert judged.
    root_window: (i64, i64),
    cause: Cause,
    members: Vec<Member>,
    /// Highest severity reached.
    peak: Severity,
    opened_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
    seq: i64,
}

/// What happened to an incident within one evaluation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    None,
    Updated,
    Opened,
}

/// The incident tracker of one engine (checkpointed with it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Incidents {
    open: Vec<Incident>,
    /// Resolved incidents within `policy.cooldown`, oldest first: a re-fire reopens one.
    recent: Vec<Incident>,
    /// Events not drained yet.
    out: Vec<IncidentEvent>,
    /// Feedback on incidents (see `feedback`).
    pub ledger: feedback::Ledger,
}

/// Input alerts: the data the model reads moved (or broke).
pub fn is_input(kind: AlertKind) -> bool {
    matches!(kind, AlertKind::DataDrift | AlertKind::DataQuality)
}

/// Two slices overlap when one is the overall series or they agree on
/// every dimension both name.
fn overlaps(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.iter().all(|(k, v)| b.get(k).is_none_or(|w| w == v))
}

fn max_severity(a: Severity, b: Severity) -> Severity {
    if a == Severity::Critical || b == Severity::Critical {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// Stable incident id: the model and its root alert's id (FNV-1a, 64 bits, hex).
fn incident_id(model: &str, root_alert: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in model
        .as_bytes()
        .iter()
        .chain(b"\0")
        .chain(root_alert.as_bytes())
    {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("inc-{h:016x}")
}

impl Incident {
    fn open_severity(&self) -> Option<Severity> {
        self.members
            .iter()
            .filter(|m| m.open)
            .map(|m| m.severity)
            .reduce(max_severity)
    }

    fn holds_open_input_over(&self, slice: &BTreeMap<String, String>) -> bool {
        self.members
            .iter()
            .any(|m| m.open && is_input(m.kind) && overlaps(&m.slice, slice))
    }

    /// Does a newly firing alert belong here (see the module's rules)?
    fn takes(&self, a: &Alert) -> bool {
        if self.model_id != a.model_id {
            return false;
        }
        let root_input = is_input(self.root.kind);
        // the same feature moving in several slices (inputs, or the model's
        // prediction and score)
        if self.root.kind == a.kind && self.root.feature == a.feature {
            return true;
        }
        if is_input(a.kind) {
            if root_input {
                return self.root.feature == a.feature;
            }
            // a quality-rooted incident: only when the input moved first
            return overlaps(&self.root.slice, &a.slice) && a.window_start < self.root_window.1;
        }
        if self.holds_open_input_over(&a.slice) {
            return true;
        }
        !root_input && overlaps(&self.root.slice, &a.slice)
    }

    fn scope(&self) -> Scope {
        let mut features: Vec<String> = Vec::new();
        let mut slices: Vec<BTreeMap<String, String>> = Vec::new();
        for m in &self.members {
            if let Some(f) = &m.feature
                && !features.contains(f)
            {
                features.push(f.clone());
            }
            if !slices.contains(&m.slice) {
                slices.push(m.slice.clone());
            }
        }
        features.sort();
        slices.sort();
        Scope { features, slices }
    }
}

/// Words for a slice: `region=EU, device=ios`, or `overall`.
pub fn slice_words(s: &BTreeMap<String, String>) -> String {
    if s.is_empty() {
        "overall".into()
    } else {
        s.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the owner should do first, by cause.
pub fn recommended_action(cause: Cause, root: &Root) -> String {
    let f = root.feature.as_deref().unwrap_or("the model");
    match cause {
        Cause::Pipeline => format!(
            "fix the pipeline: `{f}` has nulls or values of the wrong type; check the upstream job and schema, then let the alert resolve"
        ),
        Cause::FeatureChange => format!(
            "`{f}` changed its unit or encoding: fix the producer, or re-baseline if the change is meant"
        ),
        Cause::CovariateShift => format!(
            "the inputs moved (`{f}`): check the traffic mix; if quality holds, re-baseline; if it falls, retrain on recent data"
        ),
        Cause::LabelShift => {
            "the label distribution moved: check the labelling, then recalibrate the decision threshold".into()
        }
        Cause::ConceptDrift => {
            "quality fell on unchanged inputs: retrain on recent labelled data, or roll back to the last good version".into()
        }
        Cause::Unknown => "the model's outputs moved with no input cause: check the model version and its serving".into(),
    }
}

/// What is attached to every incident event from outside the grouping.
pub struct Context<'a> {
    pub owners: &'a crate::config::owners::Owners,
    pub runbook_base: &'a str,
    pub config_hash: &'a str,
    pub engine_version: &'a str,
    pub cooldown_ms: i64,
}

impl Incidents {
    /// Groups one evaluation's alerts (in `alerts`, in the order they were
    /// made) into incidents at event time `now`: sets each alert's
    /// `incident_id` and queues the incident events.
    pub fn observe(&mut self, alerts: &mut [Alert], now: i64, cx: &Context<'_>) {
        if alerts.is_empty() {
            return;
        }
        // open, touched in this evaluation: by index in `open`
        let mut changed: Vec<Change> = vec![Change::None; self.open.len()];
        // existing episodes first (escalated, resolved), then new ones:
        // input alerts before the rest
        let mut order: Vec<usize> = (0..alerts.len()).collect();
        order.sort_by_key(|&i| {
            let a = &alerts[i];
            (a.state == AlertState::Firing, !is_input(a.kind))
        });
        for i in order {
            let a = &mut alerts[i];
            let at = match a.state {
                AlertState::Firing => self.place(a, now, &mut changed),
                _ => self.follow(a, &mut changed),
            };
            if let Some(k) = at {
                a.incident_id = self.open[k].id.clone();
            }
        }
        // events, in the order the incidents opened
        let mut k = 0;
        while k < self.open.len() {
            let change = changed[k];
            let inc = &mut self.open[k];
            let all_closed = inc.members.iter().all(|m| !m.open);
            if change == Change::None && !all_closed {
                k += 1;
                continue;
            }
            inc.updated_at = now;
            let state = if all_closed {
                inc.resolved_at = Some(now);
                IncidentState::Resolved
            } else if change == Change::Opened {
                IncidentState::Open
            } else {
                IncidentState::Updated
            };
            inc.seq += 1;
            let ev = event(inc, state, cx);
            self.out.push(ev);
            if all_closed {
                let done = self.open.remove(k);
                changed.remove(k);
                self.recent.push(done);
            } else {
                k += 1;
            }
        }
        // forget resolved incidents past the cool-down
        self.recent
            .retain(|r| r.resolved_at.is_some_and(|t| now - t <= cx.cooldown_ms));
    }

    /// An escalation or resolution of an alert already in an incident.
    fn follow(&mut self, a: &Alert, changed: &mut [Change]) -> Option<usize> {
        let k = self
            .open
            .iter()
            .position(|inc| inc.members.iter().any(|m| m.alert_id == a.alert_id))?;
        let inc = &mut self.open[k];
        let before = inc.open_severity();
        if let Some(m) = inc.members.iter_mut().find(|m| m.alert_id == a.alert_id) {
            m.severity = a.severity;
            m.open = a.state != AlertState::Resolved;
        }
        inc.peak = max_severity(inc.peak, a.severity);
        let after = inc.open_severity();
        if after.is_some() && before != after && after == Some(Severity::Critical) {
            changed[k] = changed[k].max(Change::Updated);
        }
        Some(k)
    }

    /// A new episode: into the first open incident that takes it, or a
    /// recently resolved one (reopened), or a new incident.
    fn place(&mut self, a: &Alert, now: i64, changed: &mut Vec<Change>) -> Option<usize> {
        let member = Member {
            alert_id: a.alert_id.clone(),
            kind: a.kind,
            feature: a.feature.clone(),
            slice: a.slice.clone(),
            severity: a.severity,
            open: true,
        };
        if let Some(k) = self.open.iter().position(|inc| inc.takes(a)) {
            let inc = &mut self.open[k];
            if !inc.members.iter().any(|m| m.alert_id == a.alert_id) {
                inc.members.push(member);
            }
            inc.peak = max_severity(inc.peak, a.severity);
            changed[k] = changed[k].max(Change::Updated);
            return Some(k);
        }
        if let Some(r) = self.recent.iter().rposition(|inc| inc.takes(a)) {
            let mut inc = self.recent.remove(r);
            inc.resolved_at = None;
            inc.members.push(member);
            inc.peak = max_severity(inc.peak, a.severity);
            self.open.push(inc);
            changed.push(Change::Updated);
            return Some(self.open.len() - 1);
        }
        let id = incident_id(&a.model_id, &a.alert_id);
        self.ledger.opened(
            &id,
            feedback::Key {
                test: a.test.clone(),
                feature: a.feature.clone(),
                cause: a.suspected_cause,
            },
        );
        self.open.push(Incident {
            id,
            model_id: a.model_id.clone(),
            model_version: a.model_version.clone(),
            root: Root {
                alert_id: a.alert_id.clone(),
                kind: a.kind,
                feature: a.feature.clone(),
                slice: a.slice.clone(),
                test: a.test.clone(),
                statistic: a.statistic,
            },
            root_window: (a.window_start, a.window_end),
            cause: a.suspected_cause,
            members: vec![member],
            peak: a.severity,
            opened_at: now,
            updated_at: now,
            resolved_at: None,
            seq: 0,
        });
        changed.push(Change::Opened);
        Some(self.open.len() - 1)
    }

    /// Incident events queued since the last call, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, IncidentEvent> {
        self.out.drain(..)
    }

    /// Whether events wait for [`Incidents::drain`].
    pub fn pending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Open incidents (for the API and dashboard), as their latest event would read.
    pub fn open_events(&self, cx: &Context<'_>) -> Vec<IncidentEvent> {
        self.open
            .iter()
            .map(|inc| event(inc, IncidentState::Updated, cx))
            .collect()
    }
}

fn event(inc: &Incident, state: IncidentState, cx: &Context<'_>) -> IncidentEvent {
    let scope = inc.scope();
    let severity = inc.open_severity().unwrap_or(inc.peak);
    let downstream: Vec<&str> = {
        let mut k: Vec<&str> = inc
            .members
            .iter()
            .filter(|m| m.kind != inc.root.kind)
            .map(|m| m.kind.as_str())
            .collect();
        k.sort();
        k.dedup();
        k
    };
    let what = match &inc.root.feature {
        Some(f) => format!("`{f}`"),
        None => inc.root.kind.as_str().to_string(),
    };
    let mut summary = format!(
        "{}: {} {} in {} ({}, {}, {} alerts)",
        inc.model_id,
        what,
        match inc.root.kind {
            AlertKind::DataQuality => "broke",
            AlertKind::Performance | AlertKind::ConceptDrift => "quality fell",
            _ => "moved",
        },
        match scope.slices.len() {
            1 => slice_words(&scope.slices[0]),
            n => format!("{n} slices"),
        },
        inc.cause.as_str(),
        severity.as_str(),
        inc.members.len()
    );
    if !downstream.is_empty() {
        summary.push_str("; with ");
        summary.push_str(&downstream.join(", "));
    }
    if state == IncidentState::Resolved {
        summary.push_str("; resolved");
    }
    IncidentEvent {
        incident_id: inc.id.clone(),
        seq: inc.seq,
        state,
        model_id: inc.model_id.clone(),
        model_version: inc.model_version.clone(),
        severity,
        root: inc.root.clone(),
        suspected_cause: inc.cause,
        alert_ids: inc.members.iter().map(|m| m.alert_id.clone()).collect(),
        opened_at: inc.opened_at,
        updated_at: inc.updated_at,
        summary,
        owner: cx.owners.owner_of(
            &inc.model_id,
            inc.root.feature.as_deref(),
            &inc.root.slice,
            inc.cause.as_str(),
        ),
        runbook_url: format!("{}incident.md", cx.runbook_base),
        recommended_action: recommended_action(inc.cause, &inc.root),
        config_hash: cx.config_hash.to_string(),
        engine_version: cx.engine_version.to_string(),
        scope,
        emitted_at: inc.updated_at,
    }
}
