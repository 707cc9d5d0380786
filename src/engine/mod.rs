//! The engine: routes each event to its series, keeps their windows, closes
//! buckets as the watermark passes, evaluates every series against its
//! reference and turns verdicts into alert events.
//!
//! `replay` and the Kafka service feed the same [`Engine`]; nothing in it
//! reads a clock, so the same events give the same alerts.
//!
//! One file per step of an event's way through it:
//!
//! - [`clock`]: which event times are trusted (the first events' consensus,
//!   outliers refused, real jumps accepted).
//! - [`watermark`]: event time reached, per input (Kafka partition or routed origin).
//! - `ingest`: the per-event path — check the time, find the model, its
//!   series and slots, write each value into its open bucket, feed the join.
//! - `shard`: with `replay --workers` 2 or more, the writes of many events
//!   applied at once, the series in groups on their own threads.
//! - [`resolve`]: with `replay --workers` 2 or more, an event's registry
//!   ids looked up on the reader's thread, in a copy of the registry.
//! - `evaluate`: a bucket closes at the watermark, the windows slide, every
//!   series is tested, the per-model FDR gate, the alert policy's steps.
//! - `emit`: one place that builds an [`Alert`]: evidence, triage, the summary.
//! - `state`: the checkpointed [`EngineState`], and a baseline export.
//! - `observe`: the engine's part of the telemetry snapshot.

pub mod clock;
mod close;
mod emit;
mod evaluate;
mod ingest;
mod observe;
pub mod resolve;
mod shard;
mod state;
pub(crate) mod watermark;

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use sketches_ddsketch::Config as DdConfig;

use crate::alert::Alert;
use crate::alert::policy::ChannelState;
use crate::baseline::Baseline;
use crate::config::Config;
use crate::config::OwnersConfig;
use crate::config::owners::Owners;
use crate::incident::Incidents;
use crate::incident::feedback::{Control, Key, Recorded, Verdict};
use crate::quality::monitor::QualityMonitor;
use crate::registry::{Model, Overflow};
use crate::sketch::dd_config;
use crate::stats::Stats;
use crate::telemetry::EvalPoint;
use crate::window::{BinSpec, Observation, SeriesWindows};

use clock::Clock;
pub use state::EngineState;
use watermark::Watermark;

/// One series: a model's feature (or output) overall or in one slice.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Series {
    pub model: u32,
    pub feature: u32,
    pub slot: u32,
    /// The latest drift evaluations, oldest first (at most [`crate::telemetry::HISTORY`]): for
    /// the dashboard's charts and the drift-statistic gauges.
    pub history: std::collections::VecDeque<Point>,
    pub windows: SeriesWindows,
    pub drift: ChannelState,
    pub quality: ChannelState,
    /// Nothing to evaluate until its window holds enough samples: both
    /// channels idle and the window below `min_samples` (or the reference
    /// below `min_reference_samples`), so an evaluation could only say "too
    /// few". Set by an evaluation, kept by a close only while the window
    /// stays below; a checkpoint does not keep it (the first evaluation
    /// after a restore sets it again, changing nothing).
    ///
    /// Settled with its reference below `min_reference_samples`, it stays
    /// settled for the engine's life (a reference never changes once
    /// pinned, nor does the configuration): no evaluation can alert on it,
    /// so it goes dormant and keeps no current window
    /// ([`SeriesWindows::go_dormant`]) — with a slice value per shop or
    /// user, most of a model's series, and most of the cost of their
    /// writes and closes.
    #[serde(skip)]
    pub settled: bool,
}

/// Series from which an event's writes fetch their series' memory ahead
/// ([`Series::prefetch_record`]): below it, it is in the caches anyway.
pub(crate) const PREFETCH_FROM_SERIES: usize = 256;

/// Cache hints for what applying `ev` reads beyond the event itself: a
/// prediction's features, slices, trace id and bins — for an event decoded
/// on another core (replay's reader, `run`'s workers), hinted while the one
/// before it is applied. Where those parts are is read from the
/// prediction itself: hint it first, an event earlier
/// ([`prefetch_event_itself`]), or this read waits for it.
#[inline]
pub fn prefetch_event(ev: &crate::event::Event) {
    use crate::sketch::{prefetch, prefetch_slice};
    if let crate::event::Event::Prediction(p) = ev {
        prefetch_slice(&p.features, 8);
        prefetch_slice(&p.slices, 2);
        prefetch(p.trace_id.as_ptr());
        prefetch(p.prepared.ordinals.as_ptr());
        let (planned, sids) = p.prepared.ids.parts();
        prefetch(planned);
        prefetch(sids);
    }
}

/// Cache hints for a prediction's own fields (where its parts are, its
/// ids and numbers), two events ahead of the one applied: the next
/// event's [`prefetch_event`] then reads them from the cache.
#[inline]
pub fn prefetch_event_itself(ev: &crate::event::Event) {
    if let crate::event::Event::Prediction(p) = ev {
        crate::sketch::prefetch_slice(std::slice::from_ref(&**p), 4);
    }
}

impl Series {
    /// Whether the window as it stands is below what an evaluation needs,
    /// for data quality (rows) and so for drift (values, never more): the
    /// window under `min_samples`, or the reference under
    /// `min_reference_samples`. A series not yet pinned is not evaluated.
    pub(crate) fn below_min_samples(&self, p: &crate::config::PolicyConfig) -> bool {
        match self.windows.pinned() {
            None => true,
            Some(r) => !p.enough(self.windows.totals().rows(), r.sketch.rows()),
        }
    }

    /// Whether an evaluation now could change nothing (see [`Series::settled`]).
    fn settles(&self, p: &crate::config::PolicyConfig) -> bool {
        self.below_min_samples(p) && self.drift.idle(p) && self.quality.idle(p)
    }

    /// Cache hints for a write soon into open bucket `idx`, one link of the
    /// chain per stage (each stage reads only what the one before fetched):
    /// 0, the series; 1, its open bucket's slot; 2, the bucket; 3, its bins
    /// and exemplars.
    /// Returns whether the write will take a new bucket from the pool.
    #[inline]
    pub fn prefetch_record(&self, stage: u8, idx: usize, obs: Observation) -> bool {
        self.windows.prefetch_record(stage, idx, obs)
    }
}

/// One drift evaluation as a series keeps it: 16 bytes, 240 of them per
/// series (the test's tiers come from the config when it is shown). It is
/// shown only — the chart, the API's history, the statistic gauges — so its
/// statistic and p-value are kept as `f32` (shown to the 7 significant
/// digits an `f32` holds) and its time as whole seconds and milliseconds
/// (every accepted event time, 1970 to 2100, fits). [`EvalPoint`] is its view.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    t_s: u32,
    t_ms: u16,
    pub test: crate::drift::Test,
    pub breach: Option<crate::alert::Severity>,
    statistic: f32,
    /// NaN when the test gives none.
    p_value: f32,
}

const _: () = assert!(std::mem::size_of::<Point>() == 16);

impl Point {
    pub fn new(
        t: i64,
        test: crate::drift::Test,
        statistic: f64,
        p_value: Option<f64>,
        breach: Option<crate::alert::Severity>,
    ) -> Point {
        let t = t.clamp(0, i64::from(u32::MAX) * 1000 + 999);
        Point {
            t_s: (t / 1000) as u32,
            t_ms: (t % 1000) as u16,
            statistic: statistic as f32,
            p_value: p_value.map_or(f32::NAN, |p| p as f32),
            test,
            breach,
        }
    }

    /// Event time of the evaluation (ms).
    pub fn t(&self) -> i64 {
        i64::from(self.t_s) * 1000 + i64::from(self.t_ms)
    }

    pub fn statistic(&self) -> f64 {
        shown(self.statistic)
    }

    /// As the API and the dashboard show it, with the test's tiers.
    pub fn view(&self, tests: &crate::config::TestsConfig) -> EvalPoint {
        let tier = self.test.tier(tests);
        EvalPoint {
            t: self.t(),
            test: self.test.as_str().to_string(),
            statistic: self.statistic(),
            warning: tier.warning,
            critical: tier.critical,
            p_value: (!self.p_value.is_nan()).then(|| shown(self.p_value)),
            breach: self.breach,
        }
    }
}

/// An `f32` as the `f64` nearest its 7 significant digits: 0.2512345, not
/// the 0.25123450160026550 its exact value prints as.
fn shown(x: f32) -> f64 {
    let x = f64::from(x);
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(6 - x.abs().log10().floor() as i32);
    let r = (x * scale).round() / scale;
    if r.is_finite() { r } else { x }
}

/// Did the engine take the event?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Older than the closed buckets: counted, not applied.
    Late,
    /// One of the first events, held until enough agree on the time (then
    /// applied, or refused through [`Engine::drain_refused`]).
    Held,
}

/// One series' identity and the values it has taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SeriesCount<'a> {
    pub model: &'a str,
    pub feature: &'a str,
    /// None for the overall series; else (dimension, value).
    pub slice: Option<(&'a str, &'a str)>,
    pub applied: u64,
}

/// The monitor's core: one per replay, one per service task.
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
    /// Most buckets the open ones may span: `max(max_future_skew, 7 days)`.
    max_span_buckets: i64,
    models: Vec<Model>,
    model_ids: FxHashMap<Box<str>, u32>,
    /// The last event's model (`u32::MAX`: none yet), compared with the
    /// next one's id before the id is hashed.
    last_model: u32,
    series: Vec<Series>,
    /// Per series: values (nulls and wrong types included) applied to it
    /// since it was created, what a recount of the input gives. Beside the
    /// series, not in them: counting a value is all a write to an asleep
    /// series does, and this stays in the caches where they do not.
    applied: Vec<u64>,
    first_open: Option<i64>,
    /// No bucket has closed yet: an event older than the first open bucket
    /// opens earlier buckets instead of being late.
    closed_any: bool,
    /// Series never go dormant ([`Engine::keep_dormant_windows`]).
    keep_dormant: bool,
    /// Series that have gone dormant ([`Series::settled`]), and of them
    /// those asleep (not carrier slices: [`Engine::asleep`]).
    dormant: usize,
    asleep_count: usize,
    /// Per series: dormant and written nothing (not a carrier slice,
    /// [`crate::window::SeriesWindows::go_dormant`]). The loops over every
    /// series (a close, an evaluation) pass over it without reaching into
    /// it: with a slice value per shop, most series, and ~6 MB at 10,000.
    asleep: Vec<bool>,
    /// Which event times are trusted; the first events held.
    clock: Clock,
    /// `input.time_consensus`.
    consensus: u64,
    /// Jumps accepted, not yet drained: (from, to).
    jumped: Vec<(i64, i64)>,
    /// The newest event time, and per input (Kafka partition) its own;
    /// no inputs in replay, where the one merged stream is the only one.
    time: Watermark,
    /// Recycled bucket sketches (boxed: they move between open buckets, rings and here).
    #[allow(clippy::vec_box)]
    pool: crate::window::Pool,
    /// Workers a bucket's windows close on (`set_workers`), and their pools.
    close_threads: usize,
    close_pools: Vec<crate::window::Pool>,
    slots: Vec<u32>,
    /// An event's values as their series record them, and those series
    /// (one per value and slot): reused from event to event.
    planned: Vec<Observation>,
    planned_series: Vec<u32>,
    /// Writes held back to be applied in groups (`defer_writes`; boxed:
    /// the per-event path reads only whether it is on).
    queued: Box<shard::Queued>,
    /// Baselines from the config of models not seen yet, by model id.
    baselines: HashMap<String, Baseline>,
    /// Each model's baseline, if it has one (index: model id); attached
    /// again from the config when a checkpoint is restored.
    model_baselines: Vec<Option<Baseline>>,
    pub stats: Stats,
    /// The outcome join and model quality.
    pub quality: QualityMonitor,
    out: Vec<Alert>,
    scratch: Vec<u64>,
    /// Outcomes can come: predictions wait in the join for them.
    outcomes: bool,
    /// Alerts grouped by cause (checkpointed).
    incidents: Incidents,
    /// Versions: production's, candidates compared with it, and decisions (see `release`).
    release: crate::release::Release,
    /// `[owners]`, compiled; `config::decision_hash` of this config.
    owners: Owners,
    config_hash: String,
    /// This engine among those made (`resolve`): what a lookup made in a
    /// copy of its registry names.
    epoch: u64,
    /// Where copies of its registry go for a reader to look events up in
    /// (`resolve`; None: no reader does).
    views: Option<std::sync::Arc<resolve::Shared>>,
    /// The registry's size (`Engine::registry_size`) in the last copy,
    /// and the events applied since it was made and since the last look.
    viewed_size: u64,
    since_view: u64,
    since_look: u32,
    /// Predictions applied with their ids looked up beside (`resolve`).
    pub(crate) resolved_used: u64,
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
        let consensus = cfg.input.time_consensus.max(1);
        // (validated with the config; an engine built from an unchecked one
        // routes everything to the default owner)
        let owners = Owners::new(&cfg.owners).unwrap_or_else(|_| {
            Owners::new(&OwnersConfig {
                default: cfg.owners.default.clone(),
                rules: Vec::new(),
            })
            .unwrap_or_else(|_| unreachable!("no rules: nothing to compile"))
        });
        let config_hash = crate::config::decision_hash(&cfg);
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
            max_span_buckets: cfg.input.max_future_skew.as_millis().max(7 * 86_400_000) / bucket_ms,
            cfg,
            models: Vec::new(),
            model_ids: FxHashMap::default(),
            last_model: u32::MAX,
            series: Vec::new(),
            first_open: None,
            closed_any: false,
            keep_dormant: false,
            dormant: 0,
            asleep_count: 0,
            asleep: Vec::new(),
            applied: Vec::new(),
            time: Watermark::default(),
            clock: Clock::default(),
            consensus,
            jumped: Vec::new(),
            pool: crate::window::Pool::default(),
            close_threads: 1,
            close_pools: Vec::new(),
            slots: Vec::with_capacity(8),
            planned: Vec::with_capacity(16),
            planned_series: Vec::with_capacity(48),
            queued: Default::default(),
            baselines,
            model_baselines: Vec::new(),
            stats: Stats::default(),
            quality,
            out: Vec::new(),
            scratch: Vec::new(),
            outcomes: true,
            incidents: Incidents::default(),
            release: Default::default(),
            owners,
            config_hash,
            epoch: resolve::next_epoch(),
            views: None,
            viewed_size: 0,
            since_view: 0,
            since_look: 0,
            resolved_used: 0,
        }
    }

    /// A reader's side of looking events up in copies of this engine's
    /// registry (`resolve`), on the thread that decodes them: from now on
    /// the engine publishes a copy when its registry has grown, at most
    /// every [`resolve::CHECK_EVERY`] events (and less often as it grows:
    /// a copy costs its size, spread over the events since the last).
    pub fn resolver(&mut self) -> resolve::Resolver {
        let shared = match &self.views {
            Some(s) => std::sync::Arc::clone(s),
            None => {
                let s = std::sync::Arc::new(resolve::Shared::new(self.view()));
                self.viewed_size = self.registry_size();
                self.views = Some(std::sync::Arc::clone(&s));
                s
            }
        };
        resolve::Resolver::new(shared, self.dd)
    }

    /// Publishes a copy of the registry now (with a reader; tests).
    #[cfg(test)]
    pub(crate) fn publish_view(&mut self) {
        if let Some(s) = &self.views {
            s.publish(self.view());
            self.viewed_size = self.registry_size();
        }
    }

    fn view(&self) -> resolve::View {
        resolve::View::new(self.epoch, &self.models, &self.model_ids, &self.cfg.series)
    }

    /// Ids given so far: models, and each model's features, slots, series
    /// and categories (and kinds learned). It grows with every change a copy
    /// would lack, and measures what a copy costs.
    fn registry_size(&self) -> u64 {
        self.models.len() as u64 + self.models.iter().map(|m| m.changes).sum::<u64>()
    }

    /// Every [`resolve::CHECK_EVERY`] events, with a reader: a copy of the
    /// registry published if it grew since the last one and the events
    /// since then are at least a quarter of its size.
    #[inline]
    fn published_check(&mut self) {
        if self.views.is_none() {
            return;
        }
        self.since_look += 1;
        if self.since_look < resolve::CHECK_EVERY {
            return;
        }
        self.since_view += u64::from(self.since_look);
        self.since_look = 0;
        let size = self.registry_size();
        if size != self.viewed_size && self.since_view * 4 >= size {
            let view = self.view();
            if let Some(s) = &self.views {
                s.publish(view);
            }
            self.viewed_size = size;
            self.since_view = 0;
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Threads the engine may use: with many series, a bucket's windows
    /// close on up to this many at once (the output does not depend on it).
    /// How its sketches bin numbers (what [`crate::event::Prediction::prepare`]
    /// works out bins for).
    pub fn sketch_config(&self) -> DdConfig {
        self.dd
    }

    pub fn set_workers(&mut self, n: usize) {
        self.close_threads = n.max(1);
    }

    /// Whether outcomes can come at all (the service without an outcomes
    /// topic: no). Without, predictions do not wait in the join and there is
    /// no model quality to watch.
    pub fn expect_outcomes(&mut self, on: bool) {
        self.outcomes = on;
    }

    /// Keeps the window of every series, even one that can never alert
    /// ([`Series::settled`]): the alerts are the same; for tests that say so.
    #[doc(hidden)]
    pub fn keep_dormant_windows(&mut self) {
        self.keep_dormant = true;
    }

    /// Series that keep no current window: no evaluation under this
    /// configuration can alert on them (see [`Series::settled`]).
    pub fn dormant_series(&self) -> u64 {
        self.dormant as u64
    }

    /// Series not asleep: what an event's writes, a close and an
    /// evaluation reach into.
    fn awake_series(&self) -> usize {
        self.series.len() - self.asleep_count
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
        assert!(
            self.queued.is_empty(),
            "series read with writes waiting: Engine::flush first"
        );
        self.series.iter().zip(&self.applied).map(|(s, &applied)| {
            let m = &self.models[s.model as usize];
            SeriesCount {
                model: &m.id,
                feature: &m.features[s.feature as usize].name,
                slice: m.slots[s.slot as usize]
                    .as_ref()
                    .map(|(d, v)| (d.as_str(), v.as_str())),
                applied,
            }
        })
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn series(&self) -> &[Series] {
        assert!(
            self.queued.is_empty(),
            "series read with writes waiting: Engine::flush first"
        );
        &self.series
    }

    /// Values taken by each series (nulls and wrong types included), in
    /// the order of [`Engine::series`].
    pub fn applied(&self) -> &[u64] {
        assert!(
            self.queued.is_empty(),
            "series read with writes waiting: Engine::flush first"
        );
        &self.applied
    }

    /// Current watermark: newest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.time.reached().map(|t| t - self.lateness_ms)
    }

    /// Alerts produced since the last call, in order.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, Alert> {
        self.out.drain(..)
    }

    /// Whether alerts, incident events or actions wait to be drained
    /// (checked after every message; most have nothing).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || self.incidents.pending() || self.release.pending()
    }

    /// Applies a control event (feedback on an incident): whether it names
    /// an incident this engine knows (else it waits for it; see `feedback`).
    pub fn apply_control(&mut self, c: &Control) -> Recorded {
        match c {
            Control::IncidentFeedback {
                incident_id,
                verdict,
                ..
            } => self.incidents.ledger.record(incident_id, *verdict),
            Control::RetrainAck { action_id, .. } => self.release.retrain.ack(action_id),
        }
    }

    /// Action events (release decisions, retrain requests) produced since the last call.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, crate::release::Action> {
        self.release.drain()
    }

    /// Every model's versions and the latest comparison of each candidate (API, dashboard).
    pub fn versions(&self) -> Vec<crate::release::VersionsView> {
        crate::release::views(&self.release, &self.models)
    }

    /// Feedback verdicts so far, per verdict and incident root.
    pub fn feedback_counts(&self) -> BTreeMap<(Verdict, Key), u64> {
        self.incidents.ledger.counts()
    }

    /// Verdicts naming an incident this engine has not seen.
    pub fn feedback_waiting(&self) -> Vec<&str> {
        self.incidents.ledger.waiting()
    }

    /// Incident events produced since the last call, in order.
    pub fn drain_incidents(&mut self) -> std::vec::Drain<'_, crate::incident::IncidentEvent> {
        self.incidents.drain()
    }

    /// The open incidents as their latest event reads (API, dashboard).
    pub fn open_incidents(&self) -> Vec<crate::incident::IncidentEvent> {
        self.incidents.open_events(&self.incident_context())
    }

    /// What the incident tracker attaches to its events.
    fn incident_context(&self) -> crate::incident::Context<'_> {
        incident_context(&self.owners, &self.cfg, &self.config_hash)
    }

    /// Adds an input source (a Kafka partition) and returns its id. While a
    /// source is active and has not delivered an event, the watermark waits.
    pub fn add_source(&mut self) -> usize {
        let id = self.time.add_source();
        self.clock.reset_source(id);
        id
    }

    /// Removes a source (its partition was revoked). The watermark moves
    /// on with the next event, not here: in a rebalance every partition is
    /// revoked one after another, and advancing after each would close
    /// buckets on the partitions left (all predictions, say, once the
    /// outcomes partitions are gone) before the state is checkpointed.
    pub fn remove_source(&mut self, id: usize) {
        self.time.remove_source(id);
        // its first events still held go with it (never applied, never
        // stored as handled: its next owner reads them again)
        self.clock.reset_source(id);
    }

    /// The newest event time a source has delivered.
    pub fn source_max(&self, id: usize) -> Option<i64> {
        self.time.source_max(id)
    }

    /// The newest event time the slowest active source has reached (None
    /// while an active source has delivered nothing, or none is active).
    pub fn slowest_active(&self) -> Option<i64> {
        self.time.slowest_active()
    }

    /// The outcome join's counters so far.
    pub fn join_stats(&self) -> crate::join::JoinStats {
        self.quality.join.stats
    }

    /// What flow control paces the inputs against (see `Watermark::pace_reference`).
    pub fn pace_reference(&self) -> Option<i64> {
        self.time.pace_reference()
    }

    /// Marks a source idle (it stops holding the watermark) or active again.
    pub fn set_idle(&mut self, id: usize, idle: bool) {
        if self.time.set_idle(id, idle) {
            // a quiet input does not wait for more first events to agree
            if self.clock.holding_for(Some(id)) > 0 {
                self.anchor_input(Some(id));
            }
            if self.time.all_idle() {
                self.anchor();
            }
            self.advance();
        }
    }
}

/// The incident context from the engine's fields (a free function, so an
/// evaluation can borrow the tracker and the alerts mutably beside it).
fn incident_context<'a>(
    owners: &'a Owners,
    cfg: &'a Config,
    config_hash: &'a str,
) -> crate::incident::Context<'a> {
    crate::incident::Context {
        owners,
        runbook_base: &cfg.incidents.runbook_base_url,
        config_hash,
        engine_version: crate::config::engine_version(),
        cooldown_ms: cfg.policy.cooldown.as_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_keeps_its_time_exactly_and_shows_seven_digits() {
        let tests = crate::config::TestsConfig::default();
        for t in [0, 1_767_225_601_500, crate::event::MAX_EVENT_TIME_MS - 1] {
            let p = Point::new(
                t,
                crate::drift::Test::Psi,
                0.251_234_567_8,
                Some(0.012_345_678),
                None,
            );
            assert_eq!(p.t(), t);
            let v = p.view(&tests);
            assert_eq!(v.t, t);
            assert_eq!(v.statistic, 0.251_234_6);
            assert_eq!(v.p_value, Some(0.012_345_68));
        }
        let none = Point::new(60_000, crate::drift::Test::Psi, 1e-9, None, None);
        assert_eq!(none.view(&tests).p_value, None);
        assert_eq!(none.statistic(), 1e-9);
        assert_eq!(
            Point::new(0, crate::drift::Test::Psi, 0.0, Some(0.0), None).statistic(),
            0.0
        );
    }
}
