//! Configuration: TOML with unknown keys rejected, humane durations ("1m",
//! "2h"), environment overrides under one prefix, and a `validate()` that
//! names the bad key.
//!
//! Environment overrides: `DRIFTLINE__<SECTION>__<KEY>=value`, e.g.
//! `DRIFTLINE__POLICY__FDR_Q=0.05` or `DRIFTLINE__WINDOW__CURRENT=45m`.
//! The value is parsed as a TOML value when it is one (numbers, booleans,
//! arrays) and taken as a string otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "DRIFTLINE__";

/// A duration written the way people write them: "90s", "1m", "2h 30m", "1d".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub fn as_millis(self) -> i64 {
        self.0.as_millis() as i64
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {s:?} ({e}); write e.g. \"90s\", \"1m\", \"2h\""
                ))
            })
    }
}

/// Effect-size tiers of one test: at or above `warning` a breach is a warning,
/// at or above `critical` it is critical.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub warning: f64,
    pub critical: f64,
}

impl Tier {
    pub const fn new(warning: f64, critical: f64) -> Self {
        Tier { warning, critical }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub input: InputConfig,
    pub window: WindowConfig,
    pub reference: ReferenceConfig,
    pub series: SeriesConfig,
    pub tests: TestsConfig,
    pub policy: PolicyConfig,
    pub join: JoinConfig,
    pub kafka: KafkaConfig,
    pub checkpoint: CheckpointConfig,
    pub route: RouteConfig,
    pub http: HttpConfig,
    pub otel: OtelConfig,
}

/// `driftline route`, the first stage of scaling out: re-keys the input
/// topics by model id into `predictions_topic` and `outcomes_topic`, so that
/// `driftline run` with `kafka.state_per = "partition"` and `kafka.routed`
/// sees every event of a model on one partition however the producers keyed
/// them. Exactly once: each batch of routed records is a Kafka transaction
/// that also commits the input offsets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Output topics, keyed by `model_id`; both with the same partition count.
    pub predictions_topic: String,
    pub outcomes_topic: String,
    /// Consumer group of the routers; empty: `<kafka.group_id>-route`.
    pub group_id: String,
    /// Transactional id of this router, stable across its restarts (a
    /// restart then aborts the transaction the last run left open at once);
    /// empty: `<group>-<host name>`.
    pub transactional_id: String,
    /// Wall clock between transaction commits (records become visible to
    /// `read_committed` readers at a commit).
    pub commit_interval: HumanDuration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            predictions_topic: "driftline-predictions-by-model".into(),
            outcomes_topic: "driftline-outcomes-by-model".into(),
            group_id: String::new(),
            transactional_id: String::new(),
            commit_interval: HumanDuration(Duration::from_millis(200)),
        }
    }
}

/// OpenTelemetry export (metrics and traces over OTLP).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// OTLP/HTTP base URL (`http://127.0.0.1:4318`: `/v1/metrics` and
    /// `/v1/traces` are appended); empty: no export.
    pub endpoint: String,
    /// `http/protobuf` (the only one built in).
    pub protocol: String,
    /// Time between metric exports.
    pub interval: HumanDuration,
    /// `service.name` of the resource.
    pub service_name: String,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig {
            endpoint: String::new(),
            protocol: "http/protobuf".into(),
            interval: HumanDuration::secs(10),
            service_name: "driftline".into(),
        }
    }
}

/// The service's HTTP endpoints: health, readiness, Prometheus metrics, the
/// JSON API and the dashboard.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on (`127.0.0.1:9464`); empty: no HTTP server.
    pub listen: String,
    /// Series exported as per-series gauges on `/metrics` (label cardinality bound).
    pub max_series_metrics: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: String::new(),
            max_series_metrics: 1000,
        }
    }
}

/// Checkpoints of the service's state and the offsets it covers
/// (`kafka.start_from = "checkpoint"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Where checkpoints are kept: files in `dir`, or the compacted `topic`.
    pub store: CheckpointStore,
    /// Local directory of the checkpoint files (created when missing).
    pub dir: String,
    /// Compacted topic of the checkpoints with `store = "kafka"` (created,
    /// compacted and with one partition, when missing).
    pub topic: String,
    /// Wall-clock time between checkpoints; offsets are committed after each.
    pub interval: HumanDuration,
}

/// Where checkpoints are kept.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStore {
    /// Files in a local directory: state survives restarts on this machine.
    Dir,
    /// A compacted Kafka topic: state follows partitions to any machine.
    Kafka,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            store: CheckpointStore::Dir,
            dir: "checkpoints".into(),
            topic: "driftline-checkpoints".into(),
            interval: HumanDuration::secs(10),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// How long (event time) a prediction waits for its outcome.
    pub ttl: HumanDuration,
    /// How long an outcome that came before its prediction waits for it.
    pub orphan_hold: HumanDuration,
    /// Predictions waiting at once; past it the oldest is evicted (counted).
    pub max_waiting: usize,
    /// Outcomes waiting for their prediction at once.
    pub max_orphans: usize,
    /// A binary prediction is positive at a score (or numeric prediction) at or above this.
    pub score_threshold: f64,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            ttl: HumanDuration::secs(24 * 3600),
            orphan_hold: HumanDuration::secs(15 * 60),
            max_waiting: 1_000_000,
            max_orphans: 100_000,
            score_threshold: 0.5,
        }
    }
}

/// Page–Hinkley detector on the per-pair error stream.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PageHinkleyConfig {
    /// Change tolerated per pair (subtracted from each deviation).
    pub delta: f64,
    /// The statistic at which the error stream is said to have risen (critical).
    pub lambda: f64,
}

/// How event values are encoded on Kafka.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Magic byte 0, 4-byte big-endian schema id, Avro binary.
    Confluent,
    /// Avro binary written with the schema in `schemas/`.
    Avro,
    Json,
}

/// How alerts are encoded on the alert topic.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertEncoding {
    /// Avro binary of `schemas/alert.avsc`.
    Avro,
    Json,
}

/// What one unit of state (an engine, and one checkpoint) covers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatePer {
    /// Every partition assigned to this member feeds one engine: right
    /// whatever the topics are keyed by. The checkpoint belongs to the exact
    /// set of partitions; a member given another set reads it from the start.
    Member,
    /// One engine per partition number (partition p of the predictions and
    /// the outcomes topic together, as a Kafka Streams task): the state and
    /// checkpoint of a partition follow it from member to member. Needs each
    /// model's events on one partition number (topics keyed by `model_id`
    /// with the same partition count); the range assignor keeps partition p
    /// of both topics on one member.
    Partition,
}

/// Where a newly assigned partition is read from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// Restore the checkpoint of the assigned partitions and seek to its
    /// offsets; without one, read them from their start. Offsets are
    /// committed only once a checkpoint covers them.
    Checkpoint,
    /// Re-read every partition from its start to rebuild the windows on
    /// every assignment; offsets are stored after apply but not committed.
    Earliest,
    /// Resume at the group's committed offsets with fresh windows; stored
    /// offsets are committed every 5 s, on revoke and at shutdown.
    Committed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub predictions_topic: String,
    /// Empty: outcomes are not consumed.
    pub outcomes_topic: String,
    pub alerts_topic: String,
    /// Dead-letter topic for messages that cannot be decoded or validated; empty: count and skip.
    pub dlq_topic: String,
    pub encoding: Encoding,
    pub alert_encoding: AlertEncoding,
    /// Schema Registry resolving Confluent schema ids; empty: `schemas/` is the writer schema.
    pub schema_registry_url: String,
    /// Without a registry: the schema ids accepted (empty: any id).
    pub local_schema_ids: Vec<u32>,
    pub start_from: StartFrom,
    /// What one unit of state and checkpoint covers: the member's whole
    /// assignment, or one partition number.
    pub state_per: StatePer,
    /// The topics were written by `driftline route`: each record names the
    /// partition it was first written to (header `driftline.origin`), and
    /// the watermark waits for the slowest of those, not of the routed
    /// partitions.
    pub routed: bool,
    /// A partition with no message for this long (wall clock) stops holding the watermark back.
    pub idle_timeout: HumanDuration,
    /// A partition more than this far ahead (event time) of the slowest is
    /// paused until it catches up: streams consumed at different paces (a
    /// backlog, a small outcomes topic) stay aligned, and the join buffers stay small.
    pub max_skew: HumanDuration,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.*`, `ssl.*`, timeouts, …).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "driftline".into(),
            predictions_topic: "predictions".into(),
            outcomes_topic: "outcomes".into(),
            alerts_topic: "driftline-alerts".into(),
            dlq_topic: "driftline-dlq".into(),
            encoding: Encoding::Confluent,
            alert_encoding: AlertEncoding::Avro,
            schema_registry_url: String::new(),
            local_schema_ids: Vec::new(),
            start_from: StartFrom::Checkpoint,
            state_per: StatePer::Member,
            routed: false,
            idle_timeout: HumanDuration::secs(5),
            max_skew: HumanDuration::secs(7200),
            librdkafka: BTreeMap::new(),
        }
    }
}

/// Whether a librdkafka property holds a secret (never printed).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "credential",
        "ssl.key.pem",
        "ssl.keystore",
        "ssl.certificate.pem",
        "private",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// A URL with any user information replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// An event whose time is further than this ahead of the newest event
    /// seen so far is rejected (`time_out_of_range`).
    pub max_future_skew: HumanDuration,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_future_skew: HumanDuration::secs(24 * 3600),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Width of one event-time bucket; every other duration here is a multiple.
    pub bucket: HumanDuration,
    /// Length of the sliding current window compared against the reference.
    pub current: HumanDuration,
    /// How far behind the newest event time the watermark trails; events
    /// older than the watermark's closed buckets are counted as late.
    pub allowed_lateness: HumanDuration,
    /// How often (in event time) every series is evaluated.
    pub evaluate_every: HumanDuration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            bucket: HumanDuration::secs(60),
            current: HumanDuration::secs(30 * 60),
            allowed_lateness: HumanDuration::secs(120),
            evaluate_every: HumanDuration::secs(60),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// Each series pins the first `warmup` of event time from when it is first
    /// seen as its reference.
    pub warmup: HumanDuration,
    /// Per-model overrides: a baseline file made by `driftline baseline`.
    pub models: BTreeMap<String, ModelReference>,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            warmup: HumanDuration::secs(2 * 3600),
            models: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelReference {
    /// Baseline file (JSON, from `driftline baseline`); relative paths are
    /// resolved against the config file's folder.
    pub baseline: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesConfig {
    /// Track every slice dimension present in events (per dimension, not
    /// their cross product).
    pub track_slices: bool,
    /// Only these slice dimensions (empty: all).
    pub slice_dimensions: Vec<String>,
    /// Features never tracked.
    pub ignore_features: Vec<String>,
    /// Distinct values tracked per slice dimension; later values share `__other__`.
    pub max_slice_values: usize,
    /// Distinct categories tracked per categorical feature; later ones share `__other__`.
    pub max_categories: usize,
    /// Features tracked per model; events' further features are counted and ignored.
    pub max_features: usize,
    /// Models tracked; events of further models are rejected (`too_many_models`).
    pub max_models: usize,
    /// Reference-quantile bins for PSI and Jensen–Shannon.
    pub bins: usize,
    /// Reference-quantile points at which the KS statistic is taken.
    pub ks_points: usize,
    /// Relative accuracy of the DDSketch quantile sketch.
    pub quantile_accuracy: f64,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            track_slices: true,
            slice_dimensions: Vec::new(),
            ignore_features: Vec::new(),
            max_slice_values: 32,
            max_categories: 64,
            max_features: 256,
            max_models: 1000,
            bins: 10,
            ks_points: 40,
            quantile_accuracy: 0.01,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TestsConfig {
    pub psi: Tier,
    pub ks: Tier,
    pub jensen_shannon: Tier,
    pub wasserstein: Tier,
    pub total_variation: Tier,
    pub null_rate: Tier,
    pub type_violation: Tier,
    pub new_category_share: Tier,
    /// Model quality against the reference (binary: accuracy, AUC, log loss,
    /// Brier, calibration; multiclass: accuracy; regression: MAE).
    pub accuracy_drop: Tier,
    pub auc_drop: Tier,
    /// Relative rise of the mean log loss.
    pub log_loss_rise: Tier,
    /// Relative rise of the mean Brier score.
    pub brier_rise: Tier,
    pub calibration_error_rise: Tier,
    /// Relative rise of the mean absolute error.
    pub mae_rise: Tier,
    /// Fall of the share of predictions that got an outcome.
    pub label_coverage_drop: Tier,
    pub page_hinkley: PageHinkleyConfig,
    /// Scale jumps (current/reference median) within this factor of a power
    /// of ten (×10, ×100, ×1000 or their inverses) are reported as `feature_change`.
    pub scale_jump_tolerance: f64,
}

impl Default for TestsConfig {
    fn default() -> Self {
        TestsConfig {
            psi: Tier::new(0.1, 0.25),
            ks: Tier::new(0.1, 0.2),
            jensen_shannon: Tier::new(0.1, 0.2),
            wasserstein: Tier::new(0.2, 0.5),
            total_variation: Tier::new(0.1, 0.2),
            null_rate: Tier::new(0.05, 0.2),
            type_violation: Tier::new(0.01, 0.05),
            new_category_share: Tier::new(0.05, 0.2),
            accuracy_drop: Tier::new(0.05, 0.1),
            auc_drop: Tier::new(0.05, 0.1),
            log_loss_rise: Tier::new(0.1, 0.25),
            brier_rise: Tier::new(0.1, 0.25),
            calibration_error_rise: Tier::new(0.05, 0.1),
            mae_rise: Tier::new(0.1, 0.25),
            label_coverage_drop: Tier::new(0.2, 0.5),
            page_hinkley: PageHinkleyConfig {
                delta: 0.005,
                lambda: 50.0,
            },
            scale_jump_tolerance: 1.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Benjamini–Hochberg false-discovery rate across all series evaluated at one watermark.
    pub fdr_q: f64,
    /// Fewest events in the current window for a series to be evaluated.
    pub min_samples: u64,
    /// Fewest events in a reference for its series to be evaluated.
    pub min_reference_samples: u64,
    /// Fire when at least `persistence_k` of the last `persistence_n` evaluations breach.
    pub persistence_k: usize,
    pub persistence_n: usize,
    /// Resolve after this many consecutive evaluations below `hysteresis` × the warning tier.
    pub resolve_after: usize,
    pub hysteresis: f64,
    /// After a resolve, the same series and kind does not fire again for this long (event time).
    pub cooldown: HumanDuration,
    /// Trace ids of example events carried by an alert.
    pub max_exemplars: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            fdr_q: 0.01,
            min_samples: 200,
            min_reference_samples: 500,
            persistence_k: 3,
            persistence_n: 5,
            resolve_after: 5,
            hysteresis: 0.8,
            cooldown: HumanDuration::secs(30 * 60),
            max_exemplars: 3,
        }
    }
}

impl Config {
    /// Reads a TOML file, applies `DRIFTLINE__…` environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut cfg = Config::from_toml_with_env(&text, &path.display().to_string(), &env)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for m in cfg.reference.models.values_mut() {
            if m.baseline.is_relative() {
                m.baseline = base.join(&m.baseline);
            }
        }
        Ok(cfg)
    }

    /// Parses TOML text with the given environment overrides applied.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Config> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Config {
            path: origin.to_string(),
            message: one_line(&e.to_string()),
        })?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, parse_env_value(v)).map_err(|message| {
                Error::ConfigKey {
                    key: format!("{k} ({})", path.join(".")),
                    message,
                }
            })?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config {
                path: origin.to_string(),
                message: one_line(&e.to_string()),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks relations between keys that types alone cannot express.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| {
            Err(Error::ConfigKey {
                key: key.into(),
                message,
            })
        };
        let w = &self.window;
        let bucket = w.bucket.as_millis();
        if bucket < 1000 {
            return bad(
                "window.bucket",
                format!("must be at least 1s, got {}", w.bucket),
            );
        }
        for (key, d) in [
            ("window.current", w.current),
            ("window.allowed_lateness", w.allowed_lateness),
            ("window.evaluate_every", w.evaluate_every),
            ("reference.warmup", self.reference.warmup),
        ] {
            if d.as_millis() % bucket != 0 {
                return bad(
                    key,
                    format!(
                        "must be a multiple of window.bucket ({}), got {d}",
                        w.bucket
                    ),
                );
            }
        }
        if w.current.as_millis() < bucket || w.evaluate_every.as_millis() < bucket {
            return bad(
                "window.current",
                "window.current and window.evaluate_every must be at least one bucket".into(),
            );
        }
        if w.current.as_millis() / bucket > 10_000 {
            return bad(
                "window.current",
                "more than 10000 buckets per window; use a wider window.bucket".into(),
            );
        }
        if self.reference.warmup.as_millis() < bucket {
            return bad("reference.warmup", "must be at least one bucket".into());
        }
        let s = &self.series;
        if !(2..=1000).contains(&s.bins) {
            return bad(
                "series.bins",
                format!("must be in 2..=1000, got {}", s.bins),
            );
        }
        if s.ks_points < s.bins || s.ks_points > 1000 {
            return bad(
                "series.ks_points",
                format!("must be in series.bins..=1000, got {}", s.ks_points),
            );
        }
        if !(s.quantile_accuracy > 0.0 && s.quantile_accuracy < 0.5) {
            return bad(
                "series.quantile_accuracy",
                format!("must be in (0, 0.5), got {}", s.quantile_accuracy),
            );
        }
        for (key, v) in [
            ("series.max_slice_values", s.max_slice_values),
            ("series.max_categories", s.max_categories),
            ("series.max_features", s.max_features),
            ("series.max_models", s.max_models),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        let t = &self.tests;
        for (key, tier) in [
            ("tests.psi", t.psi),
            ("tests.ks", t.ks),
            ("tests.jensen_shannon", t.jensen_shannon),
            ("tests.wasserstein", t.wasserstein),
            ("tests.total_variation", t.total_variation),
            ("tests.null_rate", t.null_rate),
            ("tests.type_violation", t.type_violation),
            ("tests.new_category_share", t.new_category_share),
            ("tests.accuracy_drop", t.accuracy_drop),
            ("tests.auc_drop", t.auc_drop),
            ("tests.log_loss_rise", t.log_loss_rise),
            ("tests.brier_rise", t.brier_rise),
            ("tests.calibration_error_rise", t.calibration_error_rise),
            ("tests.mae_rise", t.mae_rise),
            ("tests.label_coverage_drop", t.label_coverage_drop),
        ] {
            if !(tier.warning > 0.0
                && tier.warning.is_finite()
                && tier.critical >= tier.warning
                && tier.critical.is_finite())
            {
                return bad(
                    key,
                    format!(
                        "need 0 < warning <= critical, got warning={} critical={}",
                        tier.warning, tier.critical
                    ),
                );
            }
        }
        if t.scale_jump_tolerance.is_nan() || t.scale_jump_tolerance <= 1.0 {
            return bad(
                "tests.scale_jump_tolerance",
                "must be greater than 1".into(),
            );
        }
        let p = &self.policy;
        if !(p.fdr_q > 0.0 && p.fdr_q < 1.0) {
            return bad(
                "policy.fdr_q",
                format!("must be in (0, 1), got {}", p.fdr_q),
            );
        }
        if p.persistence_n == 0
            || p.persistence_n > 64
            || p.persistence_k == 0
            || p.persistence_k > p.persistence_n
        {
            return bad(
                "policy.persistence_k",
                format!(
                    "need 1 <= persistence_k <= persistence_n <= 64, got k={} n={}",
                    p.persistence_k, p.persistence_n
                ),
            );
        }
        if p.resolve_after == 0 {
            return bad("policy.resolve_after", "must be at least 1".into());
        }
        if !(p.hysteresis > 0.0 && p.hysteresis <= 1.0) {
            return bad(
                "policy.hysteresis",
                format!("must be in (0, 1], got {}", p.hysteresis),
            );
        }
        if p.max_exemplars > 20 {
            return bad("policy.max_exemplars", "at most 20".into());
        }
        if !(t.page_hinkley.delta >= 0.0
            && t.page_hinkley.lambda > 0.0
            && t.page_hinkley.lambda.is_finite())
        {
            return bad(
                "tests.page_hinkley",
                "need delta >= 0 and lambda > 0".into(),
            );
        }
        let j = &self.join;
        if j.ttl.as_millis() < bucket {
            return bad("join.ttl", "must be at least one bucket".into());
        }
        if j.max_waiting == 0 || j.max_orphans == 0 {
            return bad(
                "join.max_waiting",
                "join.max_waiting and join.max_orphans must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&j.score_threshold) {
            return bad(
                "join.score_threshold",
                format!("must be in [0, 1], got {}", j.score_threshold),
            );
        }
        let k = &self.kafka;
        for (key, v) in [
            ("kafka.bootstrap_servers", &k.bootstrap_servers),
            ("kafka.group_id", &k.group_id),
            ("kafka.predictions_topic", &k.predictions_topic),
            ("kafka.alerts_topic", &k.alerts_topic),
        ] {
            if v.trim().is_empty() {
                return bad(key, "must not be empty".into());
            }
        }
        for reserved in ["enable.auto.offset.store", "group.id", "bootstrap.servers"] {
            if k.librdkafka.contains_key(reserved) {
                return bad(
                    &format!("kafka.librdkafka.\"{reserved}\""),
                    "is set by driftline itself (use the kafka.* keys)".into(),
                );
            }
        }
        if self.otel.protocol != "http/protobuf" {
            return bad(
                "otel.protocol",
                format!(
                    "only \"http/protobuf\" is built in, got {:?}",
                    self.otel.protocol
                ),
            );
        }
        let e = &self.otel.endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return bad(
                "otel.endpoint",
                format!(
                    "must be an http:// or https:// URL, got {:?}",
                    self.otel.endpoint
                ),
            );
        }
        if k.routed && k.state_per != StatePer::Partition {
            return bad(
                "kafka.routed",
                "needs kafka.state_per = \"partition\" (each routed partition number is one task)"
                    .into(),
            );
        }
        if k.routed
            && (self.route.predictions_topic.is_empty()
                || self.route.predictions_topic == k.predictions_topic)
        {
            return bad(
                "route.predictions_topic",
                "must name the routed topic, not be empty or the input topic".into(),
            );
        }
        if k.start_from == StartFrom::Checkpoint {
            if self.checkpoint.store == CheckpointStore::Dir && self.checkpoint.dir.is_empty() {
                return bad(
                    "checkpoint.dir",
                    "must not be empty with kafka.start_from = \"checkpoint\"".into(),
                );
            }
            if self.checkpoint.store == CheckpointStore::Kafka && self.checkpoint.topic.is_empty() {
                return bad(
                    "checkpoint.topic",
                    "must not be empty with checkpoint.store = \"kafka\"".into(),
                );
            }
            if self.checkpoint.interval.0 < Duration::from_millis(100) {
                return bad(
                    "checkpoint.interval",
                    format!("must be at least 100ms, got {}", self.checkpoint.interval),
                );
            }
        }
        Ok(())
    }

    /// The effective config as TOML, for `check-config`, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// A copy safe to print or log: secret librdkafka values and registry credentials replaced.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for (k, v) in c.kafka.librdkafka.iter_mut() {
            if is_secret_key(k) {
                *v = "***".into();
            }
        }
        c.kafka.schema_registry_url = redact_url(&c.kafka.schema_registry_url);
        c
    }
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn parse_env_value(v: &str) -> toml::Value {
    let doc = format!("v = {v}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(v.to_string())),
        Err(_) => toml::Value::String(v.to_string()),
    }
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> std::result::Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("`{head}` is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_and_equals_defaults_where_silent() {
        let text = include_str!("../config/driftline.toml");
        let cfg = Config::from_toml_with_env(text, "driftline.toml", &[]).unwrap();
        assert_eq!(cfg.window.bucket, HumanDuration::secs(60));
        assert_eq!(cfg.tests, TestsConfig::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            Config::from_toml_with_env("[window]\nbukket = \"1m\"\n", "x.toml", &[]).unwrap_err();
        assert!(err.to_string().contains("bukket"), "{err}");
    }

    #[test]
    fn bad_duration_is_explained() {
        let err = Config::from_toml_with_env("[window]\ncurrent = \"soon\"\n", "x.toml", &[])
            .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn env_overrides_apply_and_are_validated() {
        let env = vec![
            ("DRIFTLINE__POLICY__FDR_Q".to_string(), "0.05".to_string()),
            ("DRIFTLINE__WINDOW__CURRENT".to_string(), "45m".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let cfg = Config::from_toml_with_env("", "x", &env).unwrap();
        assert_eq!(cfg.policy.fdr_q, 0.05);
        assert_eq!(cfg.window.current, HumanDuration::secs(45 * 60));
        let env = vec![("DRIFTLINE__WINDOW__CURRENT".to_string(), "45s".to_string())];
        let err = Config::from_toml_with_env("", "x", &env).unwrap_err();
        assert!(err.to_string().contains("window.current"), "{err}");
    }

    #[test]
    fn relations_between_keys_are_checked() {
        let err =
            Config::from_toml_with_env("[policy]\npersistence_k = 6\n", "x", &[]).unwrap_err();
        assert!(err.to_string().contains("persistence_k"), "{err}");
        let err =
            Config::from_toml_with_env("[tests.psi]\nwarning = 0.3\ncritical = 0.2\n", "x", &[])
                .unwrap_err();
        assert!(err.to_string().contains("tests.psi"), "{err}");
    }

    #[test]
    fn effective_config_round_trips() {
        let cfg = Config::default();
        let again = Config::from_toml_with_env(&cfg.to_toml(), "x", &[]).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn secrets_never_print() {
        let env = vec![
            (
                "DRIFTLINE__KAFKA__LIBRDKAFKA__SASL.PASSWORD".to_string(),
                "hunter2".to_string(),
            ),
            (
                "DRIFTLINE__KAFKA__LIBRDKAFKA__SASL.USERNAME".to_string(),
                "svc".to_string(),
            ),
            (
                "DRIFTLINE__KAFKA__SCHEMA_REGISTRY_URL".to_string(),
                "https://u:pw@registry:8081".to_string(),
            ),
        ];
        let cfg = Config::from_toml_with_env("", "x", &env).unwrap();
        assert_eq!(
            cfg.kafka.librdkafka["sasl.password"], "hunter2",
            "the value itself is used"
        );
        let shown = cfg.to_toml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw@"),
            "{shown}"
        );
        assert!(
            shown.contains("svc") && shown.contains("https://***@registry:8081"),
            "{shown}"
        );
        assert!(!format!("{:?}", cfg.redacted()).contains("hunter2"));
    }
}
