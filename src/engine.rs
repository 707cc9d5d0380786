//! The engine: routes each event to its series, keeps their windows, closes
//! buckets as the watermark passes, evaluates every series against its
//! reference and turns verdicts into alert events.
//!
//! `replay` and the Kafka service feed the same [`Engine`]; nothing in it
//! reads a clock, so the same events give the same alerts.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;

use sketches_ddsketch::Config as DdConfig;

use crate::alert::policy::{ChannelState, Transition, Verdict};
use crate::alert::{
    Alert, AlertKind, AlertState, Cause, Evidence, Move, Persistence, QuantilePair, SampleSize,
    Severity, TestResult, episode_id,
};
use crate::baseline::{Baseline, BaselineFile, ModelBaseline, series_baseline};
use crate::config::{Config, Tier};
use crate::drift::{self, categorical, fdr, numeric, quality};
use crate::event::{BadEvent, BadReason, Event, Outcome, Prediction, Scalar, Value};
use crate::join::{self, Label, Waiting};
use crate::quality::monitor::{QChannel, QualityEval, QualityMonitor, Scored, slots_of};
use crate::sketch::{Sketch, ValueKind, dd_config, edges::format_num, ordinal};
use crate::stats::Stats;
use crate::window::{BinSpec, RefState, Reference, SeriesWindows};

/// Name of the overflow category and slice value once a cap is reached.
pub const OTHER: &str = "__other__";
/// Values that met a cardinality cap (per model): what a flood of new slice
/// values, categories or feature names turned into instead of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overflow {
    /// Slice values past `series.max_slice_values`, counted in `__other__`.
    pub slice_values: u64,
    /// Slice values of dimensions past the 16 tracked per model: overall only.
    pub slice_dimensions: u64,
    /// Values of features past `series.max_features`: not tracked.
    pub features: u64,
    /// Categories past `series.max_categories`, counted in `__other__`.
    pub categories: u64,
}

impl Overflow {
    pub fn add(&mut self, o: &Overflow) {
        self.slice_values += o.slice_values;
        self.slice_dimensions += o.slice_dimensions;
        self.features += o.features;
        self.categories += o.categories;
    }
    pub fn total(&self) -> u64 {
        self.slice_values + self.slice_dimensions + self.features + self.categories
    }
}

/// Reserved feature ids of a model's outputs.
const PREDICTION: u32 = 0;
const SCORE: u32 = 1;
/// Slice dimensions tracked per model.
pub const MAX_SLICE_DIMENSIONS: usize = 16;
const NO_SERIES: u32 = u32::MAX;
/// A label distribution whose chi-square p-value against the reference's is
/// below this counts as moved when a quality alert is triaged.
const LABEL_SHIFT_P: f64 = 1e-3;
/// Newest buckets whose median (numbers) or new-category share (categories)
/// is compared with the reference's to tell a unit change or a new category set.
const RECENT_BUCKETS: usize = 3;

/// What a feature is to its model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    Input,
    Prediction,
    Score,
}

/// A value as the engine sees it, borrowed from the event.
#[derive(Clone, Copy, Debug)]
enum Val<'a> {
    Null,
    Num(f64),
    Cat(&'a str),
}

impl<'a> From<&'a Value> for Val<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Number(x) => Val::Num(*x),
            Value::Text(s) => Val::Cat(s),
            Value::Bool(true) => Val::Cat("true"),
            Value::Bool(false) => Val::Cat("false"),
        }
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Feature {
    pub name: String,
    pub role: Role,
    pub kind: Option<ValueKind>,
    categories: FxHashMap<Box<str>, u32>,
    pub category_names: Vec<String>,
    seen_gen: u64,
}

impl Feature {
    fn new(name: &str, role: Role) -> Self {
        Feature {
            name: name.to_string(),
            role,
            kind: None,
            categories: FxHashMap::default(),
            category_names: vec![OTHER.to_string()],
            seen_gen: 0,
        }
    }

    /// Category id of `s`; id 0 is the shared overflow past `cap` categories.
    pub fn category_id(&mut self, s: &str, cap: usize) -> u32 {
        if let Some(&id) = self.categories.get(s) {
            return id;
        }
        if self.categories.len() >= cap {
            return 0;
        }
        let id = self.category_names.len() as u32;
        self.categories.insert(s.into(), id);
        self.category_names.push(s.to_string());
        id
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Dim {
    values: FxHashMap<Box<str>, u32>,
    /// Slot of each value id; value id 0 is the overflow.
    slots: Vec<u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub id: String,
    pub version: Option<String>,
    pub features: Vec<Feature>,
    feature_ids: FxHashMap<Box<str>, u32>,
    dims: Vec<Dim>,
    dim_ids: FxHashMap<Box<str>, u32>,
    /// Slot 0 is the overall series; others are (dimension, value).
    pub slots: Vec<Option<(String, String)>>,
    /// Series id per feature and slot.
    series_of: Vec<Vec<u32>>,
    event_gen: u64,
    /// Values that met a cap: sent to `__other__` or not tracked.
    pub overflow: Overflow,
    /// From the config, attached again when a checkpoint is restored.
    #[serde(skip)]
    baseline: Option<Baseline>,
}

impl Model {
    fn new(id: &str, baseline: Option<Baseline>) -> Self {
        let mut m = Model {
            id: id.to_string(),
            version: None,
            features: vec![
                Feature::new("prediction", Role::Prediction),
                Feature::new("score", Role::Score),
            ],
            feature_ids: FxHashMap::default(),
            dims: Vec::new(),
            dim_ids: FxHashMap::default(),
            slots: vec![None],
            series_of: vec![Vec::new(), Vec::new()],
            event_gen: 0,
            overflow: Overflow::default(),
            baseline,
        };
        m.series_of.iter_mut().for_each(|v| v.push(NO_SERIES));
        m
    }

    fn feature(&mut self, name: &str, cfg: &Config) -> Option<u32> {
        if let Some(&id) = self.feature_ids.get(name) {
            return Some(id);
        }
        if cfg.series.ignore_features.iter().any(|f| f == name) {
            return None;
        }
        if self.features.len() - 2 >= cfg.series.max_features {
            self.overflow.features += 1;
            return None;
        }
        let id = self.features.len() as u32;
        self.features.push(Feature::new(name, Role::Input));
        self.feature_ids.insert(name.into(), id);
        self.series_of.push(vec![NO_SERIES; self.slots.len()]);
        Some(id)
    }

    fn slot(&mut self, dim: &str, value: &str, cfg: &Config) -> Option<u32> {
        let d = match self.dim_ids.get(dim) {
            Some(&d) => d as usize,
            None => {
                let wanted = cfg.series.slice_dimensions.is_empty()
                    || cfg.series.slice_dimensions.iter().any(|x| x == dim);
                if !wanted {
                    return None;
                }
                if self.dims.len() >= MAX_SLICE_DIMENSIONS {
                    self.overflow.slice_dimensions += 1;
                    return None;
                }
                self.dim_ids.insert(dim.into(), self.dims.len() as u32);
                self.dims.push(Dim {
                    values: FxHashMap::default(),
                    slots: Vec::new(),
                });
                let overflow = self.new_slot(dim, OTHER);
                self.dims.last_mut()?.slots.push(overflow);
                self.dims.len() - 1
            }
        };
        if let Some(&v) = self.dims[d].values.get(value) {
            return Some(self.dims[d].slots[v as usize]);
        }
        if self.dims[d].values.len() >= cfg.series.max_slice_values {
            self.overflow.slice_values += 1;
            return Some(self.dims[d].slots[0]);
        }
        let slot = self.new_slot(dim, value);
        let dm = &mut self.dims[d];
        dm.values.insert(value.into(), dm.slots.len() as u32);
        dm.slots.push(slot);
        Some(slot)
    }

    fn new_slot(&mut self, dim: &str, value: &str) -> u32 {
        self.slots.push(Some((dim.to_string(), value.to_string())));
        self.series_of.iter_mut().for_each(|v| v.push(NO_SERIES));
        (self.slots.len() - 1) as u32
    }

    pub fn slice_map(&self, slot: u32) -> BTreeMap<String, String> {
        match &self.slots[slot as usize] {
            Some((d, v)) => BTreeMap::from([(d.clone(), v.clone())]),
            None => BTreeMap::new(),
        }
    }
}

/// One series: a model's feature (or output) overall or in one slice.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub model: u32,
    pub feature: u32,
    pub slot: u32,
    /// Values (nulls and wrong types included) applied to this series since
    /// it was created: what a recount of the input gives.
    pub applied: u64,
    /// The latest drift evaluations, oldest first (at most [`HISTORY`]): for
    /// the dashboard's charts and the drift-statistic gauges.
    pub history: std::collections::VecDeque<EvalPoint>,
    pub windows: SeriesWindows,
    pub drift: ChannelState,
    pub quality: ChannelState,
}

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

/// One input of the engine (a Kafka partition): its newest event time and
/// whether it is idle (then it does not hold the watermark back).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Source {
    max: Option<i64>,
    idle: bool,
    removed: bool,
}

/// Did the engine take the event?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Older than the closed buckets: counted, not applied.
    Late,
}

/// Which of a series' two alert channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Drift,
    Quality,
}

/// One channel's evaluation at one watermark.
#[derive(Clone, Debug)]
struct ChannelEval {
    series: u32,
    channel: Channel,
    kind: AlertKind,
    severity: Option<Severity>,
    calm: bool,
    test: &'static str,
    statistic: f64,
    threshold: f64,
    p_value: Option<f64>,
    gate_p: Option<f64>,
    enough: bool,
    tests: Vec<TestResult>,
    current_n: u64,
    reference_n: u64,
}

/// What a channel's tests add up to at one evaluation.
#[derive(Clone, Debug)]
struct Summary {
    severity: Option<Severity>,
    calm: bool,
    test: &'static str,
    statistic: f64,
    threshold: f64,
    p_value: Option<f64>,
    /// The gate: the smallest p-value among the channel's tests.
    gate_p: Option<f64>,
    tests: Vec<TestResult>,
}

fn summarize(scored: &[Scored], hysteresis: f64) -> Summary {
    let tiered: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.tier.warning.is_finite())
        .collect();
    let top = tiered.iter().copied().max_by(|a, b| {
        let ka = (
            severity_of(a.statistic, a.tier),
            a.statistic / a.tier.warning,
        );
        let kb = (
            severity_of(b.statistic, b.tier),
            b.statistic / b.tier.warning,
        );
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let (test, statistic, tier, p_value) = top
        .map_or(("none", 0.0, Tier::new(1.0, 1.0), None), |s| {
            (s.test, s.statistic, s.tier, s.p_value)
        });
    let severity = severity_of(statistic, tier);
    Summary {
        severity,
        calm: tiered
            .iter()
            .all(|s| s.statistic < hysteresis * s.tier.warning),
        test,
        statistic,
        threshold: if severity == Some(Severity::Critical) {
            tier.critical
        } else {
            tier.warning
        },
        p_value,
        gate_p: scored
            .iter()
            .filter_map(|s| s.p_value)
            .min_by(f64::total_cmp),
        tests: scored
            .iter()
            .map(|s| TestResult {
                test: s.test.to_string(),
                statistic: s.statistic,
                p_value: s.p_value,
            })
            .collect(),
    }
}

/// The tiers of a drift test by name (infinite for tests without tiers).
fn tier_of(t: &crate::config::TestsConfig, test: &str) -> Tier {
    match test {
        "psi" => t.psi,
        "ks" => t.ks,
        "jensen_shannon" => t.jensen_shannon,
        "wasserstein" => t.wasserstein,
        "total_variation" => t.total_variation,
        "new_category_share" => t.new_category_share,
        _ => Tier::new(f64::INFINITY, f64::INFINITY),
    }
}

/// Benjamini–Hochberg adjusted p-values, each model's p-values a family of
/// their own; in the order given.
fn bh_per_model(ps: &[(u32, f64)]) -> Vec<f64> {
    let mut out = vec![1.0; ps.len()];
    let mut models: Vec<u32> = ps.iter().map(|(m, _)| *m).collect();
    models.sort_unstable();
    models.dedup();
    for m in models {
        let idx: Vec<usize> = (0..ps.len()).filter(|&i| ps[i].0 == m).collect();
        let family: Vec<f64> = idx.iter().map(|&i| ps[i].1).collect();
        for (&i, a) in idx.iter().zip(fdr::bh_adjust(&family)) {
            out[i] = a;
        }
    }
    out
}

fn severity_of(stat: f64, t: Tier) -> Option<Severity> {
    if stat >= t.critical {
        Some(Severity::Critical)
    } else if stat >= t.warning {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// What a checkpoint holds of an engine, borrowed to write and owned to read
/// (postcard: the same layout both ways).
type StateRef<'a> = (
    &'a [Model],
    &'a FxHashMap<Box<str>, u32>,
    &'a [Series],
    Option<i64>,
    bool,
    Option<i64>,
    &'a [Source],
    &'a Stats,
    &'a QualityMonitor,
    &'a [Alert],
);
type StateOwned = (
    Vec<Model>,
    FxHashMap<Box<str>, u32>,
    Vec<Series>,
    Option<i64>,
    bool,
    Option<i64>,
    Vec<Source>,
    Stats,
    QualityMonitor,
    Vec<Alert>,
);

/// One series' identity and the values it has taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SeriesCount<'a> {
    pub model: &'a str,
    pub feature: &'a str,
    /// None for the overall series; else (dimension, value).
    pub slice: Option<(&'a str, &'a str)>,
    pub applied: u64,
}

pub struct Engine {
    cfg: Config,
    dd: DdConfig,
    bins: BinSpec,
    bucket_ms: i64,
    window_buckets: i64,
    lateness_ms: i64,
    eval_every: i64,
    warmup_buckets: i64,
    skew_ms: i64,
    models: Vec<Model>,
    model_ids: FxHashMap<Box<str>, u32>,
    series: Vec<Series>,
    first_open: Option<i64>,
    /// No bucket has closed yet: an event older than the first open bucket
    /// opens earlier buckets instead of being late.
    closed_any: bool,
    max_time: Option<i64>,
    /// Per-source newest event times (Kafka partitions); empty in replay,
    /// where the one merged stream is the only source.
    sources: Vec<Source>,
    /// Recycled bucket sketches (boxed: they move between open buckets, rings and here).
    #[allow(clippy::vec_box)]
    pool: Vec<Box<Sketch>>,
    slots: Vec<u32>,
    baselines: HashMap<String, Baseline>,
    pub stats: Stats,
    /// The outcome join and model quality.
    pub quality: QualityMonitor,
    out: Vec<Alert>,
    scratch: Vec<u64>,
    /// Outcomes can come: predictions wait in the join for them.
    outcomes: bool,
}

impl Engine {
    pub fn new(cfg: Config) -> Self {
        Engine::with_baselines(cfg, HashMap::new())
    }

    /// An engine whose models in `baselines` take their reference from there.
    pub fn with_baselines(cfg: Config, baselines: HashMap<String, Baseline>) -> Self {
        let dd = dd_config(cfg.series.quantile_accuracy);
        let bucket_ms = cfg.window.bucket.as_millis();
        let quality = QualityMonitor::new(&cfg);
        Engine {
            bins: BinSpec {
                coarse: cfg.series.bins,
                fine: cfg.series.ks_points,
                dd,
            },
            dd,
            bucket_ms,
            window_buckets: cfg.window.current.as_millis() / bucket_ms,
            lateness_ms: cfg.window.allowed_lateness.as_millis(),
            eval_every: cfg.window.evaluate_every.as_millis() / bucket_ms,
            warmup_buckets: cfg.reference.warmup.as_millis() / bucket_ms,
            skew_ms: cfg.input.max_future_skew.as_millis(),
            cfg,
            models: Vec::new(),
            model_ids: FxHashMap::default(),
            series: Vec::new(),
            first_open: None,
            closed_any: false,
            max_time: None,
            sources: Vec::new(),
            pool: Vec::new(),
            slots: Vec::with_capacity(8),
            baselines,
            stats: Stats::default(),
            quality,
            out: Vec::new(),
            scratch: Vec::new(),
            outcomes: true,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The engine's state, serialized for a checkpoint: everything but what
    /// the config and the baselines give (those are supplied again on
    /// [`Engine::restore`]). Taken between events, so no alert is pending.
    pub fn save_state(&self) -> Result<Vec<u8>, postcard::Error> {
        let state: StateRef<'_> = (
            &self.models,
            &self.model_ids,
            &self.series,
            self.first_open,
            self.closed_any,
            self.max_time,
            &self.sources,
            &self.stats,
            &self.quality,
            &self.out,
        );
        postcard::to_allocvec(&state)
    }

    /// An engine with the state [`Engine::save_state`] wrote, under `cfg`
    /// (which must shape state as the one it was written under: the
    /// checkpoint's config fingerprint says so).
    pub fn restore(
        cfg: Config,
        baselines: HashMap<String, Baseline>,
        bytes: &[u8],
    ) -> Result<Engine, postcard::Error> {
        let (
            models,
            model_ids,
            series,
            first_open,
            closed_any,
            max_time,
            sources,
            stats,
            quality,
            out,
        ): StateOwned = postcard::from_bytes(bytes)?;
        let mut e = Engine::with_baselines(cfg, baselines);
        e.models = models;
        for m in &mut e.models {
            m.baseline = e.baselines.get(&m.id).cloned();
        }
        e.model_ids = model_ids;
        e.series = series;
        e.first_open = first_open;
        e.closed_any = closed_any;
        e.max_time = max_time;
        e.sources = sources;
        e.stats = stats;
        e.quality = quality;
        e.out = out;
        Ok(e)
    }

    /// Whether outcomes can come at all (the service without an outcomes
    /// topic: no). Without, predictions do not wait in the join and there is
    /// no model quality to watch.
    pub fn expect_outcomes(&mut self, on: bool) {
        self.outcomes = on;
    }

    /// Values that met a cardinality cap, over every model.
    pub fn overflow(&self) -> Overflow {
        let mut o = Overflow::default();
        for m in &self.models {
            o.add(&m.overflow);
        }
        o
    }

    /// Every series with its identity and how many values it has taken.
    pub fn series_counts(&self) -> impl Iterator<Item = SeriesCount<'_>> {
        self.series.iter().map(|s| {
            let m = &self.models[s.model as usize];
            SeriesCount {
                model: &m.id,
                feature: &m.features[s.feature as usize].name,
                slice: m.slots[s.slot as usize]
                    .as_ref()
                    .map(|(d, v)| (d.as_str(), v.as_str())),
                applied: s.applied,
            }
        })
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Current watermark: newest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.event_time_reached().map(|t| t - self.lateness_ms)
    }

    /// Alerts produced since the last call, in order.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, Alert> {
        self.out.drain(..)
    }

    fn check_time(&mut self, t: i64) -> Result<Option<i64>, BadEvent> {
        if let Some(max) = self.max_time
            && t > max.saturating_add(self.skew_ms)
        {
            return Err(BadEvent::new(
                BadReason::TimeOutOfRange,
                format!(
                    "event_time {t} is {} ahead of the newest event",
                    humanize_ms(t - max)
                ),
            ));
        }
        let b = t.div_euclid(self.bucket_ms);
        let first_open = *self.first_open.get_or_insert(b);
        if b < first_open && !self.closed_any {
            // nothing closed yet: open the earlier buckets
            let extra = (first_open - b) as usize;
            for s in &mut self.series {
                for _ in 0..extra {
                    s.windows.open.push_front(None);
                }
            }
            self.first_open = Some(b);
            return Ok(Some(b));
        }
        Ok((b >= first_open).then_some(b))
    }

    /// Adds an input source (a Kafka partition) and returns its id. While a
    /// source is active and has not delivered an event, the watermark waits.
    pub fn add_source(&mut self) -> usize {
        if let Some(i) = self.sources.iter().position(|s| s.removed) {
            self.sources[i] = Source::default();
            return i;
        }
        self.sources.push(Source::default());
        self.sources.len() - 1
    }

    /// Removes a source (its partition was revoked). The watermark moves
    /// on with the next event, not here: in a rebalance every partition is
    /// revoked one after another, and advancing after each would close
    /// buckets on the partitions left (all predictions, say, once the
    /// outcomes partitions are gone) before the state is checkpointed.
    pub fn remove_source(&mut self, id: usize) {
        if let Some(s) = self.sources.get_mut(id) {
            s.removed = true;
        }
    }

    /// The newest event time a source has delivered.
    pub fn source_max(&self, id: usize) -> Option<i64> {
        self.sources.get(id).and_then(|s| s.max)
    }

    /// The newest event time the slowest active source has reached (None
    /// while an active source has delivered nothing, or none is active).
    pub fn slowest_active(&self) -> Option<i64> {
        let mut active = self
            .sources
            .iter()
            .filter(|s| !s.removed && !s.idle)
            .peekable();
        active.peek()?;
        active
            .map(|s| s.max)
            .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m)))
    }

    /// Marks a source idle (it stops holding the watermark) or active again.
    pub fn set_idle(&mut self, id: usize, idle: bool) {
        if let Some(s) = self.sources.get_mut(id)
            && s.idle != idle
        {
            s.idle = idle;
            if idle {
                self.advance();
            }
        }
    }

    /// Applies one event read from `source`.
    pub fn apply_from(&mut self, ev: &Event, source: usize) -> Result<Applied, BadEvent> {
        let r = self.apply(ev);
        if r.is_ok() {
            if let Some(s) = self.sources.get_mut(source) {
                let t = ev.event_time();
                s.max = Some(s.max.map_or(t, |m| m.max(t)));
                s.idle = false;
            }
            self.advance();
        }
        r
    }

    fn model(&mut self, id: &str) -> Result<u32, BadEvent> {
        if let Some(&m) = self.model_ids.get(id) {
            return Ok(m);
        }
        if self.models.len() >= self.cfg.series.max_models {
            return Err(BadEvent::new(
                BadReason::TooManyModels,
                format!(
                    "model `{id}` is past series.max_models ({})",
                    self.cfg.series.max_models
                ),
            ));
        }
        let m = self.models.len() as u32;
        self.models.push(Model::new(id, self.baselines.remove(id)));
        self.model_ids.insert(id.into(), m);
        Ok(m)
    }

    /// Applies one event of either kind.
    pub fn apply(&mut self, ev: &Event) -> Result<Applied, BadEvent> {
        match ev {
            Event::Prediction(p) => self.apply_prediction(p),
            Event::Outcome(o) => self.apply_outcome(o),
        }
    }

    /// Applies one prediction event.
    pub fn apply_prediction(&mut self, p: &Prediction) -> Result<Applied, BadEvent> {
        let Some(bucket) = self.check_time(p.event_time)? else {
            self.stats.late += 1;
            return Ok(Applied::Late);
        };
        let m = self.model(&p.model_id)?;
        self.stats.predictions += 1;
        self.stats.see_time(p.event_time);
        let idx = (bucket - self.first_open.unwrap_or(bucket)) as usize;
        let model = &mut self.models[m as usize];
        if p.model_version.is_some() && model.version != p.model_version {
            model.version.clone_from(&p.model_version);
        }
        model.event_gen += 1;
        let generation = model.event_gen;
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        slots.push(0);
        if self.cfg.series.track_slices {
            for (dim, value) in &p.slices {
                if let Some(s) = model.slot(dim, value, &self.cfg) {
                    slots.push(s);
                }
            }
        }
        let (join_slots, n_slots) = slots_of(&slots);
        let (prediction, class) = match &p.prediction {
            Scalar::Number(x) => (*x, 0),
            Scalar::Text(c) => (f64::NAN, self.quality.class(m, c)),
        };
        if self.outcomes {
            self.quality.prediction(
                join::key(&p.model_id, &p.trace_id),
                Waiting {
                    model: m,
                    bucket,
                    event_time: p.event_time,
                    slots: join_slots,
                    n_slots,
                    prediction,
                    class,
                    score: p.score.map_or(f32::NAN, |s| s as f32),
                },
            );
        }
        for (name, v) in &p.features {
            let model = &mut self.models[m as usize];
            let Some(f) = model.feature(name, &self.cfg) else {
                continue;
            };
            model.features[f as usize].seen_gen = generation;
            self.apply_value(m, f, v.into(), &slots, idx, bucket, &p.trace_id);
        }
        let pred = match &p.prediction {
            Scalar::Number(x) => Val::Num(*x),
            Scalar::Text(s) => Val::Cat(s),
        };
        self.apply_value(m, PREDICTION, pred, &slots, idx, bucket, &p.trace_id);
        match p.score {
            Some(s) => self.apply_value(m, SCORE, Val::Num(s), &slots, idx, bucket, &p.trace_id),
            None if self.models[m as usize].features[SCORE as usize]
                .kind
                .is_some() =>
            {
                self.apply_value(m, SCORE, Val::Null, &slots, idx, bucket, &p.trace_id)
            }
            None => {}
        }
        // a feature the model had before but this event lacks is a null
        let n_features = self.models[m as usize].features.len() as u32;
        for f in 2..n_features {
            let feat = &self.models[m as usize].features[f as usize];
            if feat.seen_gen != generation && feat.kind.is_some() {
                self.apply_value(m, f, Val::Null, &slots, idx, bucket, &p.trace_id);
            }
        }
        self.slots = slots;
        self.advance_to(p.event_time);
        Ok(Applied::Applied)
    }

    /// Applies one outcome event. The join to predictions is not built yet:
    /// outcomes are validated, counted and advance event time.
    pub fn apply_outcome(&mut self, o: &Outcome) -> Result<Applied, BadEvent> {
        let on_time = self.check_time(o.event_time)?.is_some();
        let m = self.model(&o.model_id)?;
        // the pair counts in its prediction's bucket, whenever the outcome comes
        let label = match &o.label {
            Scalar::Number(x) => Label::Number(*x),
            Scalar::Text(c) => Label::Class(self.quality.class(m, c)),
        };
        self.quality
            .outcome(join::key(&o.model_id, &o.trace_id), label, o.event_time);
        if !on_time {
            self.stats.late += 1;
            return Ok(Applied::Late);
        }
        self.stats.outcomes += 1;
        self.stats.see_time(o.event_time);
        self.advance_to(o.event_time);
        Ok(Applied::Applied)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_value(
        &mut self,
        m: u32,
        f: u32,
        v: Val<'_>,
        slots: &[u32],
        idx: usize,
        bucket: i64,
        trace_id: &str,
    ) {
        let cap = self.cfg.series.max_categories;
        let feat = &mut self.models[m as usize].features[f as usize];
        match (feat.kind, v) {
            (None, Val::Num(_)) => feat.kind = Some(ValueKind::Numeric),
            (None, Val::Cat(_)) => feat.kind = Some(ValueKind::Categorical),
            _ => {}
        }
        let kind = feat.kind;
        let cat = match (kind, v) {
            (Some(ValueKind::Categorical), Val::Cat(s)) => Some(feat.category_id(s, cap)),
            _ => None,
        };
        if cat == Some(0) {
            self.models[m as usize].overflow.categories += 1;
        }
        let max_ex = self.cfg.policy.max_exemplars;
        // the value's DDSketch bin, once for all its series
        let ord = match v {
            Val::Num(x) => ordinal(&self.dd, x),
            _ => 0,
        };
        for &slot in slots {
            let sid = self.series_id(m, f, slot, bucket);
            let s = &mut self.series[sid as usize];
            s.applied += 1;
            let w = &mut s.windows;
            if w.open.len() <= idx {
                w.open.resize_with(idx + 1, || None);
            }
            let (reference, open) = (&w.reference, &mut w.open);
            let pinned = match reference {
                RefState::Pinned(r) => Some(&**r),
                RefState::WarmingUp { .. } => None,
            };
            let sketch = open[idx].get_or_insert_with(|| {
                let mut s = self.pool.pop().unwrap_or_default();
                if let Some(e) = pinned.and_then(|r| r.edges.as_ref()) {
                    s.size_numeric_hist(e.bins());
                }
                s
            });
            match (kind, v) {
                (_, Val::Null) => {
                    sketch.add_null();
                    if pinned.is_some() {
                        sketch.null_exemplars.offer(trace_id, max_ex);
                    }
                }
                (Some(ValueKind::Numeric), Val::Num(x)) => {
                    match pinned.and_then(|r| r.edges.as_ref()) {
                        Some(edges) => {
                            let bin = edges.bin_of(ord);
                            sketch.add_number(x, Some(bin), &self.dd);
                            if bin == 0 || bin + 1 == edges.bins() {
                                sketch.exemplars.offer(trace_id, max_ex);
                            }
                        }
                        None => sketch.add_number(x, None, &self.dd),
                    }
                }
                (Some(ValueKind::Categorical), Val::Cat(_)) => {
                    let id = cat.unwrap_or(0) as usize;
                    sketch.add_category(id);
                    if let Some(r) = pinned {
                        let rc = r.counts.get(id).copied().unwrap_or(0);
                        if rc * 100 < r.sketch.values {
                            sketch.exemplars.offer(trace_id, max_ex);
                        }
                    }
                }
                _ => {
                    sketch.add_violation();
                    if pinned.is_some() {
                        sketch.null_exemplars.offer(trace_id, max_ex);
                    }
                }
            }
        }
    }

    fn series_id(&mut self, m: u32, f: u32, slot: u32, bucket: i64) -> u32 {
        let sid = self.models[m as usize].series_of[f as usize][slot as usize];
        if sid != NO_SERIES {
            return sid;
        }
        let sid = self.series.len() as u32;
        let open_len = self.first_open.map_or(0, |fo| (bucket - fo) as usize + 1);
        let mut windows = SeriesWindows::new(bucket, self.warmup_buckets, open_len);
        let model = &mut self.models[m as usize];
        if let Some(base) = &model.baseline {
            let slice = model.slots[slot as usize].clone();
            let feature = &mut model.features[f as usize];
            if let Some(r) = base.reference_for(
                feature,
                slice.as_ref(),
                &self.bins,
                self.cfg.series.max_categories,
            ) {
                windows.pin(r, &self.dd);
            }
        }
        model.series_of[f as usize][slot as usize] = sid;
        self.series.push(Series {
            model: m,
            feature: f,
            slot,
            applied: 0,
            history: std::collections::VecDeque::new(),
            windows,
            drift: ChannelState::default(),
            quality: ChannelState::default(),
        });
        self.stats.series = self.series.len() as u64;
        sid
    }

    /// Moves the watermark for a new newest event time and closes every bucket it passes.
    fn advance_to(&mut self, t: i64) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        self.advance();
    }

    /// The newest event time every active source has reached: with no
    /// sources (replay) the newest event time; otherwise the smallest newest
    /// time among active sources (None while one has delivered nothing), or
    /// the newest event time when every source is idle.
    fn event_time_reached(&self) -> Option<i64> {
        let mut active = self
            .sources
            .iter()
            .filter(|s| !s.removed && !s.idle)
            .peekable();
        if active.peek().is_none() {
            return self.max_time;
        }
        active
            .map(|s| s.max)
            .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m)))
    }

    fn advance(&mut self) {
        let Some(reached) = self.event_time_reached() else {
            return;
        };
        let wm = reached - self.lateness_ms;
        while let Some(fo) = self.first_open {
            if (fo + 1) * self.bucket_ms > wm {
                break;
            }
            self.close_bucket(fo);
            self.first_open = Some(fo + 1);
        }
    }

    /// End of input: closes every bucket up to the newest event and evaluates.
    pub fn finish(&mut self) {
        let Some(max) = self.max_time else { return };
        let last = max.div_euclid(self.bucket_ms);
        while let Some(fo) = self.first_open {
            if fo > last {
                break;
            }
            self.close_bucket(fo);
            self.first_open = Some(fo + 1);
        }
    }

    fn close_bucket(&mut self, b: i64) {
        self.closed_any = true;
        for s in &mut self.series {
            let kind = self.models[s.model as usize].features[s.feature as usize].kind;
            s.windows.close(
                b,
                self.window_buckets,
                kind,
                &self.bins,
                self.bucket_ms,
                &mut self.pool,
            );
        }
        self.stats.buckets_closed += 1;
        if (b + 1) % self.eval_every == 0 {
            self.evaluate(b);
        }
    }

    fn evaluate(&mut self, b: i64) {
        let now = (b + 1) * self.bucket_ms;
        let mut evals = Vec::new();
        for sid in 0..self.series.len() as u32 {
            if self.series[sid as usize].windows.pinned().is_none() {
                continue;
            }
            if let Some(e) = self.eval_quality(sid) {
                evals.push(e);
            }
            if let Some(e) = self.eval_drift(sid) {
                evals.push(e);
            }
        }
        let qevals = self.quality.evaluate(b, &self.cfg);
        let h = self.cfg.policy.hysteresis;
        let qsums: Vec<Summary> = qevals.iter().map(|e| summarize(&e.scored, h)).collect();
        self.stats.evaluations += (evals.len() + qevals.len()) as u64;
        // a false-discovery gate per model over every series and channel of
        // this watermark: one model's family of tests, so a model's alerts do
        // not depend on which other models share the instance
        let ps: Vec<(u32, f64)> = evals
            .iter()
            .filter(|e| e.enough)
            .filter_map(|e| e.gate_p.map(|p| (self.series[e.series as usize].model, p)))
            .chain(
                qevals
                    .iter()
                    .zip(&qsums)
                    .filter(|(e, _)| e.enough)
                    .filter_map(|(e, s)| {
                        s.gate_p
                            .map(|p| (self.quality.series[e.series as usize].model, p))
                    }),
            )
            .collect();
        let adjusted = bh_per_model(&ps);
        let mut next = adjusted.iter();
        let q = self.cfg.policy.fdr_q;
        let mut significant = |enough: bool, gate: Option<f64>| match (enough, gate) {
            (true, Some(_)) => next.next().is_some_and(|a| *a <= q),
            (true, None) => true,
            (false, _) => false,
        };
        let first_new = self.out.len();
        // a breach counts only when it passed the gate; the gate is asked of
        // every channel in order (it walks the adjusted p-values)
        let mut verdict =
            |enough: bool, gate: Option<f64>, severity: Option<Severity>, calm: bool| {
                let passed = significant(enough, gate);
                Verdict {
                    breach: if passed { severity } else { None },
                    calm,
                }
            };
        let feature_verdicts: Vec<Verdict> = evals
            .iter()
            .map(|e| verdict(e.enough, e.gate_p, e.severity, e.calm))
            .collect();
        let quality_verdicts: Vec<Verdict> = qevals
            .iter()
            .zip(&qsums)
            .map(|(e, s)| verdict(e.enough, s.gate_p, s.severity, s.calm))
            .collect();
        for (e, verdict) in evals.iter().zip(feature_verdicts) {
            let s = &mut self.series[e.series as usize];
            if e.channel == Channel::Drift && e.enough {
                if s.history.len() >= HISTORY {
                    s.history.pop_front();
                }
                let tier = tier_of(&self.cfg.tests, e.test);
                s.history.push_back(EvalPoint {
                    t: now,
                    test: e.test.to_string(),
                    statistic: e.statistic,
                    warning: tier.warning,
                    critical: tier.critical,
                    p_value: e.p_value,
                    breach: verdict.breach,
                });
            }
            let ch = match e.channel {
                Channel::Drift => &mut s.drift,
                Channel::Quality => &mut s.quality,
            };
            if let Some(t) = ch.step(verdict, now, &self.cfg.policy) {
                self.emit(e, t, now);
            }
        }
        // quality after inputs, and label alerts before quality ones: triage
        // weighs the input and label alerts open at this watermark
        // the label distribution moved significantly at this watermark (per quality series)
        let labels_moved: Vec<u32> = qevals
            .iter()
            .zip(&qsums)
            .filter(|(e, sm)| {
                e.channel == QChannel::LabelShift
                    && e.enough
                    && sm.gate_p.is_some_and(|p| p < LABEL_SHIFT_P)
            })
            .map(|(e, _)| e.series)
            .collect();
        let mut order: Vec<usize> = (0..qevals.len()).collect();
        order.sort_by_key(|&i| {
            !matches!(qevals[i].channel, QChannel::LabelShift | QChannel::Coverage)
        });
        for i in order {
            let (e, sm, verdict) = (&qevals[i], &qsums[i], quality_verdicts[i]);
            let qs = &mut self.quality.series[e.series as usize];
            let ch = match e.channel {
                QChannel::Performance => &mut qs.performance,
                QChannel::Concept => &mut qs.concept,
                QChannel::LabelShift => &mut qs.label_shift,
                QChannel::Coverage => &mut qs.coverage,
            };
            if let Some(t) = ch.step(verdict, now, &self.cfg.policy) {
                self.emit_quality(e, sm, t, now, labels_moved.contains(&e.series));
            }
        }
        // one canonical order per watermark, whatever order series were met in
        self.out[first_new..].sort_by(|a, b| {
            (&a.model_id, a.kind, &a.feature, &a.slice).cmp(&(
                &b.model_id,
                b.kind,
                &b.feature,
                &b.slice,
            ))
        });
    }

    /// Open input-drift episodes of a model in a slot: (alert id) — what a quality alert's triage weighs.
    fn open_input_drift(&self, model: u32, slot: u32) -> Vec<String> {
        self.series
            .iter()
            .filter(|s| s.model == model && s.slot == slot)
            .filter(|s| {
                self.models[s.model as usize].features[s.feature as usize].role == Role::Input
            })
            .filter_map(|s| s.drift.episode.as_ref().map(|e| e.alert_id.clone()))
            .collect()
    }

    /// Writes the alert of a model-quality channel's transition.
    fn emit_quality(
        &mut self,
        e: &QualityEval,
        sm: &Summary,
        t: Transition,
        now: i64,
        labels_moved: bool,
    ) {
        let (model, slot) = (
            self.quality.series[e.series as usize].model,
            self.quality.series[e.series as usize].slot,
        );
        let m = &self.models[model as usize];
        let (model_id, model_version, slice) = (m.id.clone(), m.version.clone(), m.slice_map(slot));
        let (kind, feature) = match e.channel {
            QChannel::Performance => (AlertKind::Performance, None),
            QChannel::Concept => (AlertKind::ConceptDrift, None),
            QChannel::LabelShift => (AlertKind::DataDrift, Some("label".to_string())),
            QChannel::Coverage => (AlertKind::DataQuality, Some("label".to_string())),
        };
        // triage: inputs moved ⇒ covariate shift; else the labels moved ⇒
        // label shift; else (quality fell on unchanged inputs) concept drift
        let inputs = self.open_input_drift(model, slot);
        let qs = &self.quality.series[e.series as usize];
        let label_alert: Vec<String> = qs
            .label_shift
            .episode
            .iter()
            .map(|ep| ep.alert_id.clone())
            .collect();
        let (cause, related) = match e.channel {
            QChannel::Coverage => (Cause::Pipeline, Vec::new()),
            QChannel::LabelShift => (Cause::LabelShift, inputs),
            QChannel::Performance | QChannel::Concept => {
                if !inputs.is_empty() {
                    (
                        Cause::CovariateShift,
                        inputs.into_iter().chain(label_alert).collect(),
                    )
                } else if labels_moved || !label_alert.is_empty() {
                    (Cause::LabelShift, label_alert)
                } else {
                    (Cause::ConceptDrift, Vec::new())
                }
            }
        };
        let what = if slice.is_empty() {
            format!("model `{model_id}`")
        } else {
            format!(
                "model `{model_id}` in {}",
                slice
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let summary = format!(
            "{what}: {} {} (tier {}), {} labelled pairs vs {} in the reference; cause {}{}",
            sm.test,
            format_num(sm.statistic),
            format_num(sm.threshold),
            e.current_n,
            e.reference_n,
            cause,
            if related.is_empty() {
                String::new()
            } else {
                format!(" (weighed {} other alerts)", related.len())
            }
        );
        let qs = &mut self.quality.series[e.series as usize];
        let ch = match e.channel {
            QChannel::Performance => &mut qs.performance,
            QChannel::Concept => &mut qs.concept,
            QChannel::LabelShift => &mut qs.label_shift,
            QChannel::Coverage => &mut qs.coverage,
        };
        let policy = &self.cfg.policy;
        let Some((state, severity, alert_id, (breaches, evaluations))) =
            ch.apply(t, now, policy, || {
                episode_id(&model_id, kind, feature.as_deref(), &slice, now)
            })
        else {
            return;
        };
        if state == AlertState::Resolved && e.channel == QChannel::Concept {
            qs.ph.reset();
        }
        self.stats.count_alert(kind, severity, state);
        self.out.push(Alert {
            alert_id,
            model_id,
            model_version,
            kind,
            feature,
            slice,
            test: sm.test.to_string(),
            statistic: sm.statistic,
            p_value: sm.p_value,
            threshold: sm.threshold,
            severity,
            state,
            window_start: e.window_start,
            window_end: e.window_end,
            reference_start: e.reference_start,
            reference_end: e.reference_end,
            sample_size: SampleSize {
                current: e.current_n as i64,
                reference: e.reference_n as i64,
            },
            persistence: Persistence {
                breaches: breaches as i32,
                evaluations: evaluations as i32,
            },
            evidence: Evidence {
                summary,
                tests: sm.tests.clone(),
                related_alert_ids: related,
                ..Evidence::default()
            },
            suspected_cause: cause,
            exemplar_trace_ids: Vec::new(),
            emitted_at: now,
        });
    }

    /// Everything summarised so far, one baseline per model, for
    /// `driftline baseline` (run with a warm-up longer than the input, so
    /// every series is still accumulating).
    pub fn export_baseline(&mut self) -> BaselineFile {
        self.finish();
        let start = self.stats.min_time.unwrap_or(0);
        let end = self.stats.max_time.map_or(0, |t| t + 1);
        let mut models: Vec<ModelBaseline> = self
            .models
            .iter()
            .map(|m| ModelBaseline {
                model_id: m.id.clone(),
                start_ms: start,
                end_ms: end,
                series: Vec::new(),
            })
            .collect();
        for s in &self.series {
            let sketch = match &s.windows.reference {
                RefState::WarmingUp { acc, .. } => acc,
                RefState::Pinned(r) => &r.sketch,
            };
            let model = &self.models[s.model as usize];
            let feature = &model.features[s.feature as usize];
            let slice = model.slots[s.slot as usize].clone();
            models[s.model as usize]
                .series
                .push(series_baseline(feature, slice, sketch));
        }
        models.sort_by(|a, b| a.model_id.cmp(&b.model_id));
        BaselineFile {
            format: crate::baseline::FORMAT,
            models,
        }
    }

    fn eval_quality(&self, sid: u32) -> Option<ChannelEval> {
        let s = &self.series[sid as usize];
        let r = s.windows.pinned()?;
        let cur = &s.windows.totals;
        let t = &self.cfg.tests;
        let (rn, cn) = (r.sketch.rows(), cur.rows());
        if cn == 0 {
            return None;
        }
        // a rate now against the reference's: the rise is the effect, the z-test gates
        let rise = |test, x_ref: u64, x_cur: u64, tier| Scored {
            test,
            statistic: ratio(x_cur, cn) - ratio(x_ref, rn),
            tier,
            p_value: Some(quality::two_proportion(x_ref, rn, x_cur, cn).1),
        };
        let mut scored = vec![
            rise("null_rate", r.sketch.nulls, cur.nulls, t.null_rate),
            rise(
                "type_violation",
                r.sketch.type_violations,
                cur.type_violations,
                t.type_violation,
            ),
        ];
        let kind = self.models[s.model as usize].features[s.feature as usize].kind;
        if kind == Some(ValueKind::Categorical) && cur.values > 0 {
            let share = categorical::new_category_share(&r.counts, &cur.hist);
            let new = (share * cur.values as f64).round() as u64;
            let (_, p_new) = quality::two_proportion(0, r.sketch.values, new, cur.values);
            scored.push(Scored {
                test: "new_category_share",
                statistic: share,
                tier: t.new_category_share,
                p_value: Some(p_new),
            });
        }
        let enough =
            cn >= self.cfg.policy.min_samples && rn >= self.cfg.policy.min_reference_samples;
        Some(self.channel_eval(
            sid,
            Channel::Quality,
            AlertKind::DataQuality,
            &scored,
            enough,
            cn,
            rn,
        ))
    }

    fn eval_drift(&mut self, sid: u32) -> Option<ChannelEval> {
        let s = &self.series[sid as usize];
        let r = s.windows.pinned()?;
        let cur = &s.windows.totals;
        let feat = &self.models[s.model as usize].features[s.feature as usize];
        let kind = match feat.role {
            Role::Input => AlertKind::DataDrift,
            Role::Prediction | Role::Score => AlertKind::PredictionDrift,
        };
        let t = &self.cfg.tests;
        let (rn, cn) = (r.sketch.values, cur.values);
        if cn == 0 || rn == 0 {
            return None;
        }
        let mut scored = Vec::with_capacity(4);
        match feat.kind? {
            ValueKind::Numeric => {
                let edges = r.edges.as_ref()?;
                let mut coarse = std::mem::take(&mut self.scratch);
                edges.coarse(&cur.hist, &mut coarse);
                let psi = drift::psi(&r.coarse, &coarse);
                let js = drift::jensen_shannon(&r.coarse, &coarse);
                self.scratch = coarse;
                let s = &self.series[sid as usize];
                let (r, cur) = (s.windows.pinned()?, &s.windows.totals);
                let d = numeric::ks_statistic(&r.counts, &cur.hist);
                let p = numeric::ks_p_value(d, rn, cn);
                let w = normalised_wasserstein(r, cur);
                scored.push(Scored {
                    test: "psi",
                    statistic: psi,
                    tier: t.psi,
                    p_value: None,
                });
                scored.push(Scored {
                    test: "ks",
                    statistic: d,
                    tier: t.ks,
                    p_value: Some(p),
                });
                scored.push(Scored {
                    test: "jensen_shannon",
                    statistic: js,
                    tier: t.jensen_shannon,
                    p_value: None,
                });
                scored.push(Scored {
                    test: "wasserstein",
                    statistic: w,
                    tier: t.wasserstein,
                    p_value: None,
                });
            }
            ValueKind::Categorical => {
                let psi = drift::psi(&r.counts, &cur.hist);
                let js = drift::jensen_shannon(&r.counts, &cur.hist);
                let tv = drift::total_variation(&r.counts, &cur.hist);
                let (chi2, _, p) = categorical::chi_square(&r.counts, &cur.hist);
                scored.push(Scored {
                    test: "psi",
                    statistic: psi,
                    tier: t.psi,
                    p_value: None,
                });
                scored.push(Scored {
                    test: "jensen_shannon",
                    statistic: js,
                    tier: t.jensen_shannon,
                    p_value: None,
                });
                scored.push(Scored {
                    test: "total_variation",
                    statistic: tv,
                    tier: t.total_variation,
                    p_value: None,
                });
                // chi-square gates significance; its statistic grows with n, so it sets no tier
                scored.push(Scored {
                    test: "chi_square",
                    statistic: chi2,
                    tier: Tier::new(f64::INFINITY, f64::INFINITY),
                    p_value: Some(p),
                });
            }
        }
        let enough =
            cn >= self.cfg.policy.min_samples && rn >= self.cfg.policy.min_reference_samples;
        Some(self.channel_eval(sid, Channel::Drift, kind, &scored, enough, cn, rn))
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn channel_eval(
        &self,
        sid: u32,
        channel: Channel,
        kind: AlertKind,
        scored: &[Scored],
        enough: bool,
        cn: u64,
        rn: u64,
    ) -> ChannelEval {
        let sm = summarize(scored, self.cfg.policy.hysteresis);
        ChannelEval {
            series: sid,
            channel,
            kind,
            severity: sm.severity,
            calm: sm.calm,
            test: sm.test,
            statistic: sm.statistic,
            threshold: sm.threshold,
            p_value: sm.p_value,
            gate_p: sm.gate_p,
            enough,
            tests: sm.tests,
            current_n: cn,
            reference_n: rn,
        }
    }

    fn emit(&mut self, e: &ChannelEval, t: Transition, now: i64) {
        let s = &self.series[e.series as usize];
        let model = &self.models[s.model as usize];
        let feat = &model.features[s.feature as usize];
        let slice = model.slice_map(s.slot);
        let Some(r) = s.windows.pinned() else { return };
        let evidence = self.evidence(e, r);
        let cause = cause_of(e, &evidence, self.cfg.tests.scale_jump_tolerance, feat.role);
        let exemplars = self.exemplars(e);
        let (model_id, model_version, feature) =
            (model.id.clone(), model.version.clone(), feat.name.clone());
        let (reference_start, reference_end) = (r.start_ms, r.end_ms);
        let window_start = s
            .windows
            .window_start_bucket()
            .map_or(now, |b| b * self.bucket_ms);
        let s = &mut self.series[e.series as usize];
        let ch = match e.channel {
            Channel::Drift => &mut s.drift,
            Channel::Quality => &mut s.quality,
        };
        let policy = &self.cfg.policy;
        let Some((state, severity, alert_id, (breaches, evaluations))) =
            ch.apply(t, now, policy, || {
                episode_id(&model_id, e.kind, Some(&feature), &slice, now)
            })
        else {
            return;
        };
        self.stats.count_alert(e.kind, severity, state);
        self.out.push(Alert {
            alert_id,
            model_id,
            model_version,
            kind: e.kind,
            feature: Some(feature),
            slice,
            test: e.test.to_string(),
            statistic: e.statistic,
            p_value: e.p_value,
            threshold: e.threshold,
            severity,
            state,
            window_start,
            window_end: now,
            reference_start,
            reference_end,
            sample_size: SampleSize {
                current: e.current_n as i64,
                reference: e.reference_n as i64,
            },
            persistence: Persistence {
                breaches: breaches as i32,
                evaluations: evaluations as i32,
            },
            evidence,
            suspected_cause: cause,
            exemplar_trace_ids: exemplars,
            emitted_at: now,
        });
    }

    fn exemplars(&self, e: &ChannelEval) -> Vec<String> {
        let s = &self.series[e.series as usize];
        let cap = self.cfg.policy.max_exemplars;
        let mut out: Vec<String> = Vec::with_capacity(cap);
        for (_, b) in s.windows.ring.iter().rev() {
            let ex = match e.channel {
                Channel::Drift => &b.exemplars,
                Channel::Quality => &b.null_exemplars,
            };
            for t in ex.iter() {
                if out.len() >= cap {
                    return out;
                }
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            }
        }
        out
    }

    fn evidence(&self, e: &ChannelEval, r: &Reference) -> Evidence {
        let s = &self.series[e.series as usize];
        let feat = &self.models[s.model as usize].features[s.feature as usize];
        let totals = &s.windows.totals;
        let mut cur = Sketch::new();
        s.windows.merged_current(&mut cur);
        let mut ev = Evidence {
            reference_null_rate: ratio(r.sketch.nulls, r.sketch.rows()),
            current_null_rate: ratio(totals.nulls, totals.rows()),
            type_violation_rate: ratio(totals.type_violations, totals.rows()),
            tests: e.tests.clone(),
            ..Evidence::default()
        };
        let mut moves: Vec<Move> = Vec::new();
        match feat.kind {
            Some(ValueKind::Numeric) => {
                if r.sketch.values > 0 {
                    ev.reference_mean = Some(r.sketch.mean);
                }
                if cur.values > 0 {
                    ev.current_mean = Some(cur.mean);
                }
                for q in [0.05, 0.25, 0.5, 0.75, 0.95] {
                    if let (Some(a), Some(b)) = (r.sketch.quantile(q), cur.quantile(q)) {
                        ev.quantiles.push(QuantilePair {
                            q,
                            reference: a,
                            current: b,
                        });
                    }
                }
                // the scale of the newest buckets: a unit change shows at once
                // there, while the whole window is still a mixture
                let mut recent = Sketch::new();
                for (_, b) in s.windows.ring.iter().rev().take(RECENT_BUCKETS) {
                    recent.merge(b);
                }
                if let (Some(a), Some(b)) = (r.sketch.quantile(0.5), recent.quantile(0.5))
                    && a != 0.0
                {
                    ev.scale_ratio = Some(b / a);
                }
                if let Some(edges) = &r.edges {
                    let mut coarse = Vec::new();
                    edges.coarse(&totals.hist, &mut coarse);
                    moves = top_moves(&r.coarse, &coarse, |i| edges.coarse_label(&self.dd, i));
                }
            }
            Some(ValueKind::Categorical) => {
                // like the scale ratio, judged on the newest buckets
                let mut recent = Sketch::new();
                for (_, b) in s.windows.ring.iter().rev().take(RECENT_BUCKETS) {
                    recent.merge_counts(b);
                }
                ev.new_category_share =
                    Some(categorical::new_category_share(&r.counts, &recent.hist));
                moves = top_moves(&r.counts, &totals.hist, |i| {
                    feat.category_names
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("#{i}"))
                });
            }
            None => {}
        }
        ev.top_moves = moves;
        ev.summary = summary_sentence(e, feat, &ev);
        ev
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Wasserstein-1 between the reference (its quantile function as equal-mass
/// points) and the current window (each fine bin's values at their mean),
/// divided by the reference's standard deviation.
fn normalised_wasserstein(r: &Reference, cur: &Sketch) -> f64 {
    let a: Vec<(f64, f64)> = r.quantiles.iter().map(|&x| (x, 1.0)).collect();
    let b: Vec<(f64, f64)> = cur
        .hist
        .iter()
        .zip(&cur.hist_sum)
        .filter(|(c, _)| **c > 0)
        .map(|(c, s)| (s / *c as f64, *c as f64))
        .collect();
    let w = numeric::wasserstein(&a, &b);
    let sd = r.sketch.variance().sqrt();
    let scale = if sd > 0.0 {
        sd
    } else {
        r.sketch.mean.abs().max(1e-12)
    };
    w / scale
}

/// The bins or categories whose share moved most, largest first (at most 3).
fn top_moves(reference: &[u64], current: &[u64], label: impl Fn(usize) -> String) -> Vec<Move> {
    let (nr, nc) = (
        reference.iter().sum::<u64>() as f64,
        current.iter().sum::<u64>() as f64,
    );
    if nr == 0.0 || nc == 0.0 {
        return Vec::new();
    }
    let len = reference.len().max(current.len());
    let mut idx: Vec<(usize, f64, f64)> = (0..len)
        .map(|i| {
            (
                i,
                reference.get(i).copied().unwrap_or(0) as f64 / nr,
                current.get(i).copied().unwrap_or(0) as f64 / nc,
            )
        })
        .filter(|(_, a, b)| a != b)
        .collect();
    idx.sort_by(|x, y| {
        (y.2 - y.1)
            .abs()
            .total_cmp(&(x.2 - x.1).abs())
            .then(x.0.cmp(&y.0))
    });
    idx.into_iter()
        .take(3)
        .map(|(i, a, b)| Move {
            bin: label(i),
            reference_share: a,
            current_share: b,
        })
        .collect()
}

/// Best guess of the cause, from the evidence alone.
fn cause_of(e: &ChannelEval, ev: &Evidence, tolerance: f64, role: Role) -> Cause {
    match e.channel {
        Channel::Quality => match e.test {
            "new_category_share" => Cause::FeatureChange,
            _ => Cause::Pipeline,
        },
        Channel::Drift => {
            if let Some(r) = ev.scale_ratio
                && is_power_of_ten_jump(r, tolerance)
            {
                return Cause::FeatureChange;
            }
            if ev.new_category_share.is_some_and(|s| s >= 0.5) {
                return Cause::FeatureChange;
            }
            match role {
                Role::Input => Cause::CovariateShift,
                Role::Prediction | Role::Score => Cause::Unknown,
            }
        }
    }
}

/// Whether `ratio` is within a factor `tolerance` of 10^k or 10^-k for k in 1..=6.
pub fn is_power_of_ten_jump(ratio: f64, tolerance: f64) -> bool {
    if !(ratio.is_finite() && ratio > 0.0) {
        return false;
    }
    let l = ratio.log10();
    let k = l.round();
    k != 0.0 && k.abs() <= 6.0 && (l - k).abs() <= tolerance.log10()
}

fn summary_sentence(e: &ChannelEval, feat: &Feature, ev: &Evidence) -> String {
    let what = match feat.role {
        Role::Input => format!("feature `{}`", feat.name),
        Role::Prediction => "the model's predictions".to_string(),
        Role::Score => "the model's scores".to_string(),
    };
    let stat = format!(
        "{} {} (tier {})",
        e.test,
        format_num(e.statistic),
        format_num(e.threshold)
    );
    match e.channel {
        Channel::Quality => format!(
            "{what}: null rate {:.1}% vs {:.1}% in the reference, type violations {:.1}%; {stat}",
            100.0 * ev.current_null_rate,
            100.0 * ev.reference_null_rate,
            100.0 * ev.type_violation_rate
        ),
        Channel::Drift => {
            let mut s = format!("{what} moved: {stat}");
            if let (Some(a), Some(b)) = (ev.reference_mean, ev.current_mean) {
                s.push_str(&format!(
                    "; mean {} vs {} in the reference",
                    format_num(b),
                    format_num(a)
                ));
            }
            if let Some(r) = ev.scale_ratio {
                s.push_str(&format!(
                    "; newest median ×{} the reference's",
                    format_num(r)
                ));
            }
            if let Some(m) = ev.top_moves.first() {
                s.push_str(&format!(
                    "; most moved {} {:.1}% → {:.1}%",
                    m.bin,
                    100.0 * m.reference_share,
                    100.0 * m.current_share
                ));
            }
            s
        }
    }
}

fn humanize_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_ten_jumps() {
        assert!(is_power_of_ten_jump(1000.0, 1.5));
        assert!(is_power_of_ten_jump(9.0, 1.5));
        assert!(is_power_of_ten_jump(0.001, 1.5));
        assert!(!is_power_of_ten_jump(1.6, 1.5));
        assert!(!is_power_of_ten_jump(3.0, 1.5));
        assert!(!is_power_of_ten_jump(f64::NAN, 1.5));
    }
}
