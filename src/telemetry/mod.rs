//! The service's own telemetry: a [`Snapshot`] of its counters and of every
//! series' latest drift evaluation, taken by the service loop once a second
//! (nothing is counted per event here: the engine's and the service's plain
//! counters are read), published behind a short lock, and read by the HTTP
//! endpoints (`/metrics` in Prometheus text, the JSON API, the dashboard).
//!
//! Metric names follow the OpenTelemetry messaging semantic conventions
//! (v1.27) for the Kafka side (`messaging.client.consumed.messages`, with
//! `messaging.system`, `messaging.destination.name`,
//! `messaging.consumer.group.name`), written the Prometheus way (dots to
//! underscores); the rest is under `driftline_`. Label values are bounded:
//! topics, partitions, reasons, kinds, and at most `http.max_series_metrics`
//! series for the per-series gauges — never trace ids or raw slice values
//! beyond the engine's caps.

pub mod latency;
pub mod otel;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::alert::{Alert, AlertKind, AlertState, Severity};
use crate::join::JoinStats;
use crate::registry::Overflow;
use crate::stats::ServiceStats;

/// Evaluations kept per series for charts.
pub const HISTORY: usize = 240;

/// One drift evaluation of a series: its leading test's statistic and that
/// test's tiers, at the window's end (event time).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalPoint {
    pub t: i64,
    pub test: String,
    pub statistic: f64,
    pub warning: f64,
    pub critical: f64,
    pub p_value: Option<f64>,
    /// The breach the policy saw (after the FDR gate), if any.
    pub breach: Option<Severity>,
}

/// Alerts kept for the API and the dashboard.
pub const RECENT_ALERTS: usize = 200;

/// Messages of one topic.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TopicCount {
    pub topic: String,
    pub messages: u64,
}

/// How far a partition's reader is behind its log end.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Next offset to read.
    pub position: i64,
    /// Log end, as librdkafka's statistics last saw it (-1: unknown).
    pub end: i64,
    pub lag: i64,
}

/// A series as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesView {
    pub id: u32,
    pub model: String,
    pub feature: String,
    pub role: &'static str,
    /// `dimension=value`, or empty for the overall series.
    pub slice: String,
    pub applied: u64,
    /// `ok`, `warning` or `critical`: the open drift or quality episode's severity.
    pub status: &'static str,
    pub last: Option<EvalPoint>,
}

/// Everything the HTTP endpoints show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub taken_at_ms: i64,
    /// Partitions assigned and their state restored (or rebuilt).
    pub ready: bool,
    /// Configured input topics the cluster does not have (checked every 10 s).
    pub missing_topics: Vec<String>,
    pub group: String,
    pub watermark: Option<i64>,
    pub consumed: Vec<TopicCount>,
    pub predictions: u64,
    pub outcomes: u64,
    pub late: u64,
    pub bad: BTreeMap<&'static str, u64>,
    /// The service's own counters (DLQ, alerts published, checkpoints, …).
    #[serde(flatten)]
    pub service: ServiceStats,
    pub join: JoinStats,
    pub join_waiting: u64,
    pub overflow: Overflow,
    /// Series that can never alert and keep no window (`engine::Series::settled`).
    pub dormant_series: u64,
    pub alerts: Vec<(AlertKind, Severity, AlertState, u64)>,
    pub lag: Vec<PartitionLag>,
    pub series: Vec<SeriesView>,
    pub recent_alerts: Vec<Alert>,
    /// Open incidents, as their latest event reads.
    pub incidents: Vec<crate::incident::IncidentEvent>,
    /// Feedback verdicts on incidents, per verdict and root (test, feature, cause).
    pub feedback: Vec<crate::incident::feedback::FeedbackCount>,
    /// Models with candidate versions: production, candidates and their latest comparison per slice.
    pub versions: Vec<crate::release::VersionsView>,
    /// The newest action events (release decisions, retrain requests).
    pub recent_actions: Vec<crate::release::Action>,
    /// Batch processing time and alert latency, as quantiles.
    pub latency: latency::LatencyView,
}

/// The published snapshot: swapped whole under a short lock; and the
/// service loop's heartbeat (wall-clock ms of its last turn).
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Arc<Snapshot>>>, Arc<std::sync::atomic::AtomicI64>);

impl Shared {
    /// The loop took another turn.
    pub fn beat(&self, now_ms: i64) {
        self.1.store(now_ms, std::sync::atomic::Ordering::Relaxed);
    }
    /// Wall-clock ms of the loop's last turn (0: none yet).
    pub fn last_beat(&self) -> i64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub fn publish(&self, s: Snapshot) {
        if let Ok(mut g) = self.0.lock() {
            *g = Arc::new(s);
        }
    }
    pub fn get(&self) -> Arc<Snapshot> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Series ids in a snapshot: the task's index above these bits, the
/// series' index in its task's engine below.
pub const TASK_SHIFT: u32 = 24;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The snapshot in the Prometheus text format (OpenMetrics flavour of
/// `prometheus-client`), at most `max_series` per-series gauges.
pub fn prometheus(s: &Snapshot, max_series: usize) -> String {
    let mut reg = Registry::default();
    let group = s.group.as_str();

    let consumed = Family::<Labels, Counter>::default();
    reg.register(
        "messaging_client_consumed_messages",
        "Messages consumed (semconv messaging.client.consumed.messages)",
        consumed.clone(),
    );
    for t in &s.consumed {
        consumed
            .get_or_create(&labels(&[
                ("messaging_system", "kafka"),
                ("messaging_destination_name", &t.topic),
                ("messaging_consumer_group_name", group),
            ]))
            .inc_by(t.messages);
    }
    let sent = Family::<Labels, Counter>::default();
    reg.register(
        "messaging_client_sent_messages",
        "Messages produced: alerts and dead letters (semconv messaging.client.sent.messages)",
        sent.clone(),
    );
    for (what, n) in [
        ("alerts", s.service.alerts_published),
        ("dlq", s.service.dead_lettered),
    ] {
        sent.get_or_create(&labels(&[
            ("messaging_system", "kafka"),
            ("driftline_output", what),
        ]))
        .inc_by(n);
    }
    let dlq = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_dead_letters_degraded",
        "Dead letters too large to deliver whole: value cut or left out (cut), or not delivered at all (undeliverable)",
        dlq.clone(),
    );
    for (what, n) in [
        ("cut", s.service.dlq_cut),
        ("undeliverable", s.service.dlq_undeliverable),
    ] {
        dlq.get_or_create(&labels(&[("outcome", what)])).inc_by(n);
    }
    let events = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_events",
        "Events applied to the windows",
        events.clone(),
    );
    events
        .get_or_create(&labels(&[("kind", "prediction")]))
        .inc_by(s.predictions);
    events
        .get_or_create(&labels(&[("kind", "outcome")]))
        .inc_by(s.outcomes);
    let late = Counter::<u64>::default();
    late.inc_by(s.late);
    reg.register(
        "driftline_events_late",
        "Events behind the watermark: counted, not applied",
        late,
    );
    let bad = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_events_bad",
        "Events refused, by reason",
        bad.clone(),
    );
    for (reason, n) in &s.bad {
        bad.get_or_create(&labels(&[("reason", reason)])).inc_by(*n);
    }
    let redelivered = Counter::<u64>::default();
    redelivered.inc_by(s.service.redelivered);
    reg.register(
        "driftline_messages_redelivered",
        "Messages at or below an applied offset: skipped",
        redelivered,
    );

    let lag = Family::<Labels, Gauge>::default();
    reg.register_with_unit(
        "driftline_consumer_lag",
        "Messages between the next offset to read and the partition's log end",
        Unit::Other("messages".into()),
        lag.clone(),
    );
    for p in &s.lag {
        lag.get_or_create(&labels(&[
            ("messaging_destination_name", &p.topic),
            (
                "messaging_destination_partition_id",
                &p.partition.to_string(),
            ),
        ]))
        .set(p.lag);
    }

    let join = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_join_outcomes",
        "Outcome join results",
        join.clone(),
    );
    for (what, n) in [
        ("joined", s.join.joined),
        ("expired", s.join.expired),
        ("evicted", s.join.evicted),
        ("unmatched", s.join.unmatched),
        ("duplicate", s.join.duplicates),
        ("orphan_evicted", s.join.orphans_evicted),
    ] {
        join.get_or_create(&labels(&[("result", what)])).inc_by(n);
    }
    let waiting = Gauge::<i64>::default();
    waiting.set(s.join_waiting as i64);
    reg.register(
        "driftline_join_waiting_predictions",
        "Predictions waiting for their outcome",
        waiting,
    );
    let coverage = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    let decided = s.join.joined + s.join.expired + s.join.evicted;
    coverage.set(if decided > 0 {
        s.join.joined as f64 / decided as f64
    } else {
        0.0
    });
    reg.register_with_unit(
        "driftline_join_coverage",
        "Share of predictions past their wait that were joined to an outcome",
        Unit::Ratios,
        coverage,
    );

    let capped = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_capped_values",
        "Values that met a cardinality cap",
        capped.clone(),
    );
    for (what, n) in [
        ("slice_value", s.overflow.slice_values),
        ("slice_dimension", s.overflow.slice_dimensions),
        ("feature", s.overflow.features),
        ("category", s.overflow.categories),
    ] {
        capped.get_or_create(&labels(&[("cap", what)])).inc_by(n);
    }

    let dormant = Gauge::<i64>::default();
    dormant.set(s.dormant_series as i64);
    reg.register(
        "driftline_series_dormant",
        "Series whose reference is below policy.min_reference_samples: they can never alert and keep no current window",
        dormant,
    );

    let feedback = Family::<Labels, Gauge>::default();
    reg.register(
        "driftline_incident_feedback",
        "Incidents given a verdict on the control channel, per verdict and the root's test, feature and cause (a gauge: a later verdict replaces an earlier one)",
        feedback.clone(),
    );
    for f in &s.feedback {
        feedback
            .get_or_create(&labels(&[
                ("verdict", f.verdict.as_str()),
                ("test", &f.test),
                ("feature", f.feature.as_deref().unwrap_or("")),
                ("cause", f.cause.as_str()),
            ]))
            .set(f.count as i64);
    }
    let control = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_control_events",
        "Control events read: applied, or refused (not a control event; sent to the dead-letter topic)",
        control.clone(),
    );
    for (what, n) in [
        ("applied", s.service.control_applied),
        ("refused", s.service.control_refused),
    ] {
        control
            .get_or_create(&labels(&[("result", what)]))
            .inc_by(n);
    }

    let ckpt = Counter::<u64>::default();
    ckpt.inc_by(s.service.checkpoints);
    reg.register("driftline_checkpoints", "Checkpoints written", ckpt);
    let ckpt_fail = Counter::<u64>::default();
    ckpt_fail.inc_by(s.service.checkpoint_failures);
    reg.register(
        "driftline_checkpoint_failures",
        "Checkpoints that failed (offsets not committed)",
        ckpt_fail,
    );
    let split = Counter::<u64>::default();
    split.inc_by(s.service.split_models);
    reg.register(
        "driftline_split_models",
        "Models seen in more than one task with state_per = \"partition\" (windows split)",
        split,
    );
    let ckpt_s = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    ckpt_s.set(s.service.checkpoint_ms / 1e3);
    reg.register_with_unit(
        "driftline_checkpoint_duration",
        "Time to write the last checkpoint",
        Unit::Seconds,
        ckpt_s,
    );
    let ckpt_b = Gauge::<i64>::default();
    ckpt_b.set(s.service.checkpoint_bytes as i64);
    reg.register_with_unit(
        "driftline_checkpoint_size",
        "Size of the last checkpoint",
        Unit::Bytes,
        ckpt_b,
    );

    let alerts = Family::<Labels, Counter>::default();
    reg.register(
        "driftline_alerts",
        "Alert events emitted, by kind, severity and state",
        alerts.clone(),
    );
    for (k, sev, st, n) in &s.alerts {
        alerts
            .get_or_create(&labels(&[
                ("kind", k.as_str()),
                ("severity", sev.as_str()),
                ("state", st.as_str()),
            ]))
            .inc_by(*n);
    }

    let stat = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "driftline_drift_statistic",
        "Latest drift statistic of a series' leading test (effect size)",
        stat.clone(),
    );
    let status = Family::<Labels, Gauge>::default();
    reg.register(
        "driftline_series_severity",
        "Open episode of a series: 0 ok, 1 warning, 2 critical",
        status.clone(),
    );
    for v in s.series.iter().take(max_series) {
        let mut l = labels(&[
            ("model", &v.model),
            ("feature", &v.feature),
            ("slice", &v.slice),
        ]);
        status.get_or_create(&l).set(match v.status {
            "critical" => 2,
            "warning" => 1,
            _ => 0,
        });
        if let Some(p) = &v.last {
            l.push(("test".into(), p.test.clone()));
            stat.get_or_create(&l).set(p.statistic);
        }
    }
    for (name, help, q) in [
        (
            "driftline_batch_processing",
            "Time to process one poll's batch of one input topic, since start (HDR histogram quantile)",
            &s.latency.batch_processing,
        ),
        (
            "driftline_alert_latency",
            "From an alert's window end (event time) to its publication (wall clock), since start (HDR histogram quantile)",
            &s.latency.alert_latency,
        ),
    ] {
        let g = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        reg.register_with_unit(name, help, Unit::Seconds, g.clone());
        for (quantile, seconds) in &q.seconds {
            g.get_or_create(&labels(&[("quantile", &quantile.to_string())]))
                .set(*seconds);
        }
    }
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}
