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

mod kafka;
pub mod owners;
mod release;
mod validate;

pub use release::{ReleaseConfig, RetrainConfig};

pub use kafka::{
    AlertEncoding, CheckpointConfig, CheckpointStore, Encoding, KafkaConfig, RouteConfig,
    StartFrom, StatePer, is_secret_key, redact_url,
};

/// Longest JSON line read by default (`input.max_line_bytes`).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "DRIFTLINE__";

/// A duration written the way people write them: "90s", "1m", "2h 30m", "1d".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    /// Milliseconds, saturating (validation keeps every duration far below).
    pub fn as_millis(self) -> i64 {
        self.0.as_millis().min(i64::MAX as u128) as i64
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
    pub incidents: IncidentsConfig,
    pub owners: OwnersConfig,
    pub release: ReleaseConfig,
    pub retrain: RetrainConfig,
}

/// One routing rule: every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerRule {
    /// Glob over the model id (`checkout-*`); empty: any.
    pub model: String,
    /// Glob over the feature name; empty: any (model-level alerts have none,
    /// and match only an empty `feature`).
    pub feature: String,
    /// `dimension=value`, each side a glob (`region=APAC`, `region=*`); empty: any.
    pub slice: String,
    /// Causes the rule takes (`pipeline`, `feature_change`, `covariate_shift`,
    /// `label_shift`, `concept_drift`, `unknown`); empty: any.
    pub cause: Vec<String>,
    pub owner: String,
}

/// The `[owners]` section: ordered rules, first match wins, and a
/// fallback (`incident::owners` applies them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnersConfig {
    /// Owner when no rule matches.
    pub default: String,
    pub rules: Vec<OwnerRule>,
}

impl Default for OwnersConfig {
    fn default() -> Self {
        OwnersConfig {
            default: "unowned".into(),
            rules: Vec::new(),
        }
    }
}

/// Incidents: what is attached to alerts and incidents for the people paged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Prefix of every `runbook_url`: `<base><kind>.md` for alerts,
    /// `<base>incident.md` for incidents (default: the repo's docs path).
    pub runbook_base_url: String,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            runbook_base_url: "docs/runbooks/".into(),
        }
    }
}

/// Hash of the config sections that decide alerts, incidents and actions
/// (input, window, reference, series, tests, policy, join, incidents,
/// owners, release, retrain), 16
/// hex digits: carried by every alert and incident as `config_hash`, so a
/// decision can be traced to the policy in force.
pub fn decision_hash(cfg: &Config) -> String {
    let decides = serde_json::to_string(&(
        &cfg.input,
        &cfg.window,
        &cfg.reference,
        &cfg.series,
        &cfg.tests,
        &cfg.policy,
        &cfg.join,
        &cfg.incidents,
        &cfg.owners,
        &cfg.release,
        &cfg.retrain,
    ))
    .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in decides.as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// This build: the crate version and, built from a git checkout, its revision.
/// (`src/build.rs` sets it.)
pub fn engine_version() -> &'static str {
    env!("DRIFTLINE_VERSION")
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
    /// `/healthz` answers 503 once the service loop has not turned for this
    /// long (stuck on one message): an orchestrator then restarts it.
    pub unhealthy_after: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: String::new(),
            max_series_metrics: 1000,
            unhealthy_after: HumanDuration::secs(30),
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// An event whose time is further than this ahead of the newest event
    /// seen so far is rejected (`time_out_of_range`).
    pub max_future_skew: HumanDuration,
    /// How many events must agree on the time: the first events are held
    /// until this many came (their median is the stream's time), and a jump
    /// ahead is accepted once this many refused events agree on it.
    pub time_consensus: u64,
    /// A line of a JSON Lines file longer than this is one bad event
    /// (`line_too_long`), read through without being held in memory.
    pub max_line_bytes: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_future_skew: HumanDuration::secs(3 * 3600),
            time_consensus: 16,
            max_line_bytes: MAX_LINE_BYTES,
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

impl PolicyConfig {
    /// Whether a window of `current` samples against a reference of
    /// `reference` is enough to test: the one rule an evaluation applies and
    /// a settled series (below it, nothing to compute) is judged by.
    pub fn enough(&self, current: u64, reference: u64) -> bool {
        current >= self.min_samples && reference >= self.min_reference_samples
    }
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
        let env = prefixed_env()?;
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
        let file_err = |e: toml::de::Error| Error::Config {
            path: origin.to_string(),
            message: redact_secrets(&one_line(&e.to_string())),
        };
        let mut table: toml::Table = text.parse().map_err(file_err)?;
        let mut cfg: Config = toml::Value::Table(table.clone())
            .try_into()
            .map_err(file_err)?;
        // one override at a time, so an error names its variable; a value
        // that parses as a number or boolean but is wanted as a string (a
        // numeric group id or password) is taken as the string it is
        for (k, v) in env {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let mut path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // librdkafka's keys are dotted, which shells and systemd refuse
            // in variable names: `…__LIBRDKAFKA__SASL_PASSWORD` is
            // `sasl.password` (no string property of librdkafka has an `_`)
            if let [section, map, name] = &mut path[..]
                && section == "kafka"
                && map == "librdkafka"
                && !name.contains('.')
            {
                *name = name.replace('_', ".");
            }
            let key = || format!("{k} ({})", path.join("."));
            let mut last = String::new();
            let mut applied = false;
            for value in [parse_env_value(v), toml::Value::String(v.clone())] {
                let mut t = table.clone();
                set_path(&mut t, &path, value).map_err(|message| Error::ConfigKey {
                    key: key(),
                    message,
                })?;
                match toml::Value::Table(t.clone()).try_into::<Config>() {
                    Ok(c) => {
                        (table, cfg, applied) = (t, c, true);
                        break;
                    }
                    Err(e) => last = one_line(&e.to_string()),
                }
            }
            if !applied {
                let message = if is_secret_key(k) {
                    "invalid value (not shown: a secret)".to_string()
                } else {
                    redact_secrets(&last)
                };
                return Err(Error::ConfigKey {
                    key: key(),
                    message,
                });
            }
        }
        cfg.validate()?;
        Ok(cfg)
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

/// The environment's `DRIFTLINE__…` variables. A value that is not UTF-8 is
/// an error naming its variable; other variables are never read (one that is
/// not UTF-8 cannot stop a command).
fn prefixed_env() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
            continue;
        };
        match v.into_string() {
            Ok(v) => out.push((k.to_string(), v)),
            Err(_) => {
                return Err(Error::ConfigKey {
                    key: k.to_string(),
                    message: "value is not UTF-8".into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A parse error's text with the value of every secret-looking key
/// (`is_secret_key`) replaced: the TOML error quotes the offending line.
fn redact_secrets(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    // lines were joined with " | " (one_line); the snippet's own gutter is "|" too
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before.rfind(['|', '{', ',', '\n']).map_or(0, |i| i + 1);
        let key = before[key_start..]
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        out.push_str(before);
        if is_secret_key(key) {
            out.push_str("= ***");
            // the value runs to the next separator
            let end = after[1..].find(" | ").map_or(after.len(), |i| i + 1);
            rest = &after[end..];
        } else {
            out.push('=');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
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
        let text = include_str!("../../config/driftline.toml");
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
    fn librdkafka_keys_can_be_spelt_without_dots_for_shells() {
        let env = vec![
            (
                "DRIFTLINE__KAFKA__LIBRDKAFKA__SASL_PASSWORD".to_string(),
                "hunter2".to_string(),
            ),
            (
                "DRIFTLINE__KAFKA__LIBRDKAFKA__GROUP.INSTANCE.ID".to_string(),
                "driftline-0".to_string(),
            ),
        ];
        let text = include_str!("../../config/driftline.toml");
        let cfg = Config::from_toml_with_env(text, "driftline.toml", &env).unwrap();
        assert_eq!(cfg.kafka.librdkafka["sasl.password"], "hunter2");
        assert_eq!(cfg.kafka.librdkafka["group.instance.id"], "driftline-0");
        assert!(!cfg.kafka.librdkafka.contains_key("sasl_password"));
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
    fn numbers_outside_the_range_that_works_are_refused_by_key() {
        for (toml, key) in [
            (
                "[series]\nquantile_accuracy = 1e-9",
                "series.quantile_accuracy",
            ),
            (
                "[series]\nquantile_accuracy = 1e-4",
                "series.quantile_accuracy",
            ),
            ("[input]\nmax_future_skew = \"0s\"", "input.max_future_skew"),
            (
                "[input]\nmax_future_skew = \"500000000y\"",
                "input.max_future_skew",
            ),
            ("[window]\nbucket = \"500000000y\"", "window.bucket"),
            ("[input]\nmax_line_bytes = 10", "input.max_line_bytes"),
        ] {
            let err = Config::from_toml_with_env(toml, "x", &[]).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        let ok = "[series]\nquantile_accuracy = 0.001\n[input]\nmax_future_skew = \"30d\"";
        Config::from_toml_with_env(ok, "x", &[]).unwrap();
    }

    #[test]
    fn an_override_error_names_its_variable_and_strings_need_no_quotes() {
        let env = vec![("DRIFTLINE__POLICY__FDR_Q".to_string(), "lots".to_string())];
        let err = Config::from_toml_with_env("", "the-file.toml", &env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("DRIFTLINE__POLICY__FDR_Q"), "{msg}");
        assert!(
            !msg.contains("the-file.toml"),
            "the file is not to blame: {msg}"
        );
        // a numeric-looking group id and password are strings where strings are wanted
        let env = vec![
            (
                "DRIFTLINE__KAFKA__GROUP_ID".to_string(),
                "12345".to_string(),
            ),
            (
                "DRIFTLINE__KAFKA__LIBRDKAFKA__SASL.PASSWORD".to_string(),
                "0042".to_string(),
            ),
        ];
        let cfg = Config::from_toml_with_env("", "x", &env).unwrap();
        assert_eq!(cfg.kafka.group_id, "12345");
        assert_eq!(cfg.kafka.librdkafka["sasl.password"], "0042");
        // and numbers stay numbers where numbers are wanted
        let env = vec![(
            "DRIFTLINE__POLICY__MIN_SAMPLES".to_string(),
            "300".to_string(),
        )];
        assert_eq!(
            Config::from_toml_with_env("", "x", &env)
                .unwrap()
                .policy
                .min_samples,
            300
        );
    }

    #[test]
    fn a_secret_on_a_malformed_line_is_not_printed() {
        let toml = "[kafka.librdkafka]\n\"sasl.password\" = \"hunter2\nnext = 1\n";
        let err = Config::from_toml_with_env(toml, "x", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        let toml = "[kafka.librdkafka]\n\"sasl.password\" = 12\n";
        let err = Config::from_toml_with_env(toml, "x", &[]).unwrap_err();
        assert!(!err.to_string().contains("= 12"), "{err}");
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

    #[test]
    fn a_misspelled_secret_key_is_redacted_too() {
        let cfg = Config::from_toml_with_env(
            "[kafka.librdkafka]\n\"sasl.pasword\" = \"hunter2\"\n\"ssl.key.passwrd\" = \"hunter3\"\n\"ssl.key.location\" = \"/etc/key.pem\"\n",
            "x",
            &[],
        )
        .unwrap();
        let shown = cfg.to_toml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
        assert!(shown.contains("/etc/key.pem"), "a path is not a secret");
    }
}
