//! An event's registry ids, looked up on the thread that decoded it.
//!
//! Most of what the engine's thread does for a prediction before it writes
//! (`Engine::plan`) depends only on the event and the registry: the id of
//! each feature name, the slot of each slice, each category's id, the
//! series of each value in each slot, and which features the event lacks.
//! Once given, an id never changes (the registry only grows; a restored
//! engine is another engine). So a copy of the registry can answer on
//! another thread: the engine publishes one ([`View`]) now and then while
//! it grows, and the reader's thread ([`Resolver`]) looks each event up in
//! the latest it has, into the event itself ([`Resolved`]).
//!
//! What the copy cannot answer it leaves to the engine, which then looks
//! the event up itself, as it does without a reader: a name, a value or a
//! category it does not hold (new, or past a cap, which the engine counts),
//! a feature whose kind it does not know yet, a series not made yet. The
//! one answer a copy could give wrongly is which features an event lacks
//! (a null each): it is the copy's features with a kind, so a lookup is
//! used only while the model's layout ([`Model::layout`]: features added,
//! kinds learned) is the copy's. The alerts and the saved state are those
//! of the engine looking every event up itself (tests: `resolve` below and
//! `tests/integration/engine.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use sketches_ddsketch::Config as DdConfig;

use crate::codec::same;
use crate::config::SeriesConfig;
use crate::event::{Prediction, Resolved, Scalar};
use crate::registry::{Known, Model, NO_SERIES, PREDICTION, SCORE};
use crate::sketch::ValueKind;
use crate::window::Observation;

use super::ingest::Val;

/// Engines made so far: each gets the next as its epoch, so a lookup made
/// in another engine's registry is never used.
static EPOCHS: AtomicU64 = AtomicU64::new(0);

/// A new engine's epoch (never 0, which a [`Resolved`] holding nothing has).
pub(super) fn next_epoch() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Events an engine applies between two looks at whether its registry grew
/// since its last [`View`].
pub(super) const CHECK_EVERY: u32 = 1024;

/// A copy of an engine's registry, as it was when published.
pub struct View {
    epoch: u64,
    models: Vec<Model>,
    model_ids: FxHashMap<Box<str>, u32>,
    series: SeriesConfig,
}

impl View {
    pub(super) fn new(
        epoch: u64,
        models: &[Model],
        model_ids: &FxHashMap<Box<str>, u32>,
        series: &SeriesConfig,
    ) -> View {
        View {
            epoch,
            models: models.to_vec(),
            model_ids: model_ids.clone(),
            series: series.clone(),
        }
    }
}

/// Where an engine publishes its views and a reader takes the latest.
pub struct Shared {
    /// Views published so far: a reader takes the view when it has not
    /// seen this many.
    published: AtomicU64,
    view: Mutex<Arc<View>>,
}

impl Shared {
    pub(super) fn new(view: View) -> Shared {
        Shared {
            published: AtomicU64::new(1),
            view: Mutex::new(Arc::new(view)),
        }
    }

    pub(super) fn publish(&self, view: View) {
        let view = Arc::new(view);
        // the old one is dropped outside the lock (it may be large)
        let old = std::mem::replace(
            &mut *self.view.lock().unwrap_or_else(|e| e.into_inner()),
            view,
        );
        self.published.fetch_add(1, Ordering::Release);
        drop(old);
    }

    fn latest(&self) -> (u64, Arc<View>) {
        let n = self.published.load(Ordering::Acquire);
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (n, view)
    }
}

/// The reader's side: looks each prediction up in the latest view its
/// engine published.
pub struct Resolver {
    shared: Arc<Shared>,
    /// Views seen, and the latest.
    seen: u64,
    view: Arc<View>,
    dd: DdConfig,
    /// The last event's model; per model, the feature id and the slice
    /// dimension id the last event had at each place (compared with an
    /// event's names before they are hashed, as `Model::feature_at` does).
    last_model: u32,
    order: Vec<Vec<u32>>,
    dim_order: Vec<Vec<u32>>,
    /// Per feature of the event's model: the number of the last event
    /// that named it.
    named: Vec<u64>,
    events: u64,
}

/// Places of an event's names remembered.
const PLACES: usize = 256;

impl Resolver {
    pub(super) fn new(shared: Arc<Shared>, dd: DdConfig) -> Resolver {
        let (seen, view) = shared.latest();
        Resolver {
            shared,
            seen,
            view,
            dd,
            last_model: u32::MAX,
            order: Vec::new(),
            dim_order: Vec::new(),
            named: Vec::new(),
            events: 0,
        }
    }

    /// Looks `p`'s ids up (into `p.prepared.ids`) when told to (`look_up`:
    /// the engine is busy, so the lookup is time won); where they cannot
    /// be, or when not told to (the engine has time to look up itself),
    /// works out its numbers' bins for the engine (`sketch::edges::prepare`)
    /// instead, as a reader without a copy does.
    pub fn prepare(&mut self, p: &mut Prediction, look_up: bool) {
        if !look_up {
            p.prepared.ids.epoch = 0;
            crate::sketch::edges::prepare(p, &self.dd);
            return;
        }
        if self.shared.published.load(Ordering::Acquire) != self.seen {
            (self.seen, self.view) = self.shared.latest();
        }
        let mut r = std::mem::take(&mut p.prepared.ids);
        r.epoch = 0;
        if self.resolve(p, &mut r).is_some() {
            r.epoch = self.view.epoch;
        } else {
            crate::sketch::edges::prepare(p, &self.dd);
        }
        p.prepared.ids = r;
    }

    /// The model's id in the view, compared with the last event's first.
    fn model(&mut self, id: &str) -> Option<u32> {
        let view = &self.view;
        if let Some(m) = view.models.get(self.last_model as usize)
            && same(&m.id, id)
        {
            return Some(self.last_model);
        }
        let m = *view.model_ids.get(id)?;
        self.last_model = m;
        Some(m)
    }

    /// `Engine::plan`, in the view: None where the engine must look the
    /// event up itself.
    fn resolve(&mut self, p: &Prediction, r: &mut Resolved) -> Option<()> {
        let m = self.model(&p.model_id)?;
        // the view borrowed beside the rest (not an `Arc` taken and
        // dropped: two atomic operations an event)
        let Resolver {
            view,
            dd,
            order,
            dim_order,
            named,
            events,
            ..
        } = self;
        let model = &view.models[m as usize];
        let cfg = &view.series;
        let mi = m as usize;
        if order.len() <= mi {
            order.resize(mi + 1, Vec::new());
            dim_order.resize(mi + 1, Vec::new());
        }
        r.model = m;
        r.layout = model.layout;
        r.slots.clear();
        r.slots.push(0);
        r.carried = false;
        if cfg.track_slices {
            let places = &mut dim_order[mi];
            for (i, (dim, value)) in p.slices.iter().enumerate() {
                let hint = places.get(i).copied().unwrap_or(u32::MAX);
                let (known, d) = model.known_slot(hint, dim, value, cfg);
                if i < PLACES && d != u32::MAX && d != hint {
                    if places.len() <= i {
                        places.resize(i + 1, u32::MAX);
                    }
                    places[i] = d;
                }
                match known {
                    Known::Id((_, true)) if r.carried => {}
                    Known::Id((s, carrier)) => {
                        r.carried |= carrier;
                        r.slots.push(s);
                    }
                    Known::Skip => {}
                    Known::Unknown => return None,
                }
            }
        }
        // the slots' rows of series ids (one slot per tracked dimension at most)
        let mut rows: [&[u32]; MAX_SLOTS] = [&[]; MAX_SLOTS];
        if r.slots.len() > MAX_SLOTS {
            return None;
        }
        for (row, &slot) in rows.iter_mut().zip(&r.slots) {
            *row = model.series_row(slot)?;
        }
        let rows = &rows[..r.slots.len()];
        *events += 1;
        let event = *events;
        if named.len() < model.features.len() {
            named.resize(model.features.len(), 0);
        }
        // each value's observation, and its series in each slot (all of
        // them made already, or the engine looks the event up itself);
        // pushed as each value is seen, not from a list of its features
        // after (~10 pushes an event fewer)
        r.planned.clear();
        r.sids.clear();
        let mut made = true;
        let sids = &mut r.sids;
        let mut series = |f: u32| series_of(rows, f, sids, &mut made);
        let places = &mut order[mi];
        for (i, (name, v)) in p.features.iter().enumerate() {
            let hinted = places.get(i).copied().filter(|&f| {
                model
                    .features
                    .get(f as usize)
                    .is_some_and(|ft| same(&ft.name, name))
            });
            let f = match hinted {
                Some(f) => f,
                None => match model.known_feature(name, cfg) {
                    Known::Id(f) => {
                        if i < PLACES {
                            if places.len() <= i {
                                places.resize(i + 1, u32::MAX);
                            }
                            places[i] = f;
                        }
                        f
                    }
                    Known::Skip => continue,
                    Known::Unknown => return None,
                },
            };
            named[f as usize] = event;
            r.planned.push(observe(model, f, v.into(), dd)?);
            series(f);
        }
        let pred = match &p.prediction {
            Scalar::Number(x) => Val::Num(*x),
            Scalar::Text(s) => Val::Cat(s),
        };
        r.planned.push(observe(model, PREDICTION, pred, dd)?);
        series(PREDICTION);
        let score = match p.score {
            Some(s) => Some(Val::Num(s)),
            None if model.features[SCORE as usize].kind.is_some() => Some(Val::Null),
            None => None,
        };
        if let Some(v) = score {
            r.planned.push(observe(model, SCORE, v, dd)?);
            series(SCORE);
        }
        // a feature the model had before but this event lacks is a null
        for (f, feat) in model.features.iter().enumerate().skip(2) {
            if named[f] != event && feat.kind.is_some() {
                r.planned.push(Observation::Null);
                series(f as u32);
            }
        }
        made.then_some(())
    }
}

/// Pushes feature `f`'s series in each slot's row (`NO_SERIES` where there
/// is none yet: then not `made`). Always inlined (as a closure, whether it
/// was followed how the crate fell into codegen units: +100 instructions
/// an event when not).
#[inline(always)]
fn series_of(rows: &[&[u32]], f: u32, sids: &mut Vec<u32>, made: &mut bool) {
    for row in rows {
        let sid = row.get(f as usize).copied().unwrap_or(NO_SERIES);
        *made &= sid != NO_SERIES;
        sids.push(sid);
    }
}

/// Slots an event has at most: the overall one and one per tracked slice
/// dimension.
const MAX_SLOTS: usize = crate::registry::MAX_SLICE_DIMENSIONS + 1;

/// `Engine::observe` in a view: None where it would learn a kind or give
/// (or overflow) a category.
#[inline(always)]
fn observe(model: &Model, f: u32, v: Val<'_>, dd: &DdConfig) -> Option<Observation> {
    let feat = &model.features[f as usize];
    Some(match (feat.kind, v) {
        (_, Val::Null) => Observation::Null,
        (None, _) => return None,
        (Some(ValueKind::Numeric), Val::Num(x)) => Observation::Number {
            x,
            ordinal: crate::sketch::edges::ordinal(dd, x),
        },
        (Some(ValueKind::Categorical), Val::Cat(s)) => {
            Observation::Category(feat.find_category(s)? as usize)
        }
        _ => Observation::Violation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::event::Value;
    use proptest::prelude::*;

    const T0: i64 = 1_767_225_600_000;

    /// One event as drawn: features (name, value), slices (dimension,
    /// value), a text prediction or a number, a score.
    type Drawn = (
        usize,
        Vec<(usize, u8)>,
        Vec<(usize, usize)>,
        Option<usize>,
        Option<u8>,
    );

    const MODELS: [&str; 2] = ["m", "n"];
    const FEATURES: [&str; 6] = ["a", "b", "c", "d", "e", "ign"];
    const DIMS: [&str; 3] = ["region", "shop", "x"];
    const VALUES: [&str; 5] = ["EU", "US", "APAC", "s1", "s2"];
    const CLASSES: [&str; 3] = ["yes", "no", "maybe"];

    fn value(v: u8, i: usize) -> Value {
        match v % 8 {
            0 => Value::Null,
            1 => Value::Bool(i.is_multiple_of(2)),
            2 | 3 => Value::Text(VALUES[(v as usize + i) % 5].into()),
            _ => Value::Number(f64::from(v) * 0.37 - 20.0 + (i % 7) as f64),
        }
    }

    fn event(i: usize, d: &Drawn) -> Prediction {
        let (m, features, slices, class, score) = d;
        Prediction {
            trace_id: format!("{i:032x}"),
            model_id: MODELS[*m].into(),
            model_version: None,
            // ten minutes' worth of buckets close along the way
            event_time: T0 + i as i64 * 7_000,
            features: features
                .iter()
                .map(|&(f, v)| (FEATURES[f].into(), value(v, i)))
                .collect(),
            slices: slices
                .iter()
                .map(|&(dm, v)| (DIMS[dm].into(), VALUES[v].into()))
                .collect(),
            prediction: match class {
                Some(c) => Scalar::Text(CLASSES[*c].into()),
                None => Scalar::Number((i % 11) as f64),
            },
            score: score.map(|s| f64::from(s) / 255.0),
            shadow: false,
            prepared: Default::default(),
        }
    }

    fn drawn() -> impl Strategy<Value = Drawn> {
        (
            prop_oneof![9 => Just(0usize), 1 => Just(1usize)],
            proptest::collection::vec((0..FEATURES.len(), any::<u8>()), 0..6),
            proptest::collection::vec((0..DIMS.len(), 0..VALUES.len()), 0..3),
            prop_oneof![4 => Just(None), 1 => (0..CLASSES.len()).prop_map(Some)],
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(m, mut f, mut s, c, sc)| {
                // names once each, as a decoder gives them
                f.sort_by_key(|x| x.0);
                f.dedup_by_key(|x| x.0);
                s.sort_by_key(|x| x.0);
                s.dedup_by_key(|x| x.0);
                (m, f, s, c, sc)
            })
    }

    fn config(caps: (usize, usize, usize), dims: bool, slices: bool) -> Config {
        let mut cfg = Config::from_toml_with_env(
            "[reference]\nwarmup = \"10m\"\n[window]\nbucket = \"1m\"\ncurrent = \"10m\"\nevaluate_every = \"1m\"\n[policy]\nmin_samples = 5\nmin_reference_samples = 5\n",
            "test.toml",
            &[],
        )
        .unwrap();
        cfg.input.time_consensus = 3;
        cfg.series.max_features = caps.0;
        cfg.series.max_categories = caps.1;
        cfg.series.max_slice_values = caps.2;
        cfg.series.ignore_features = vec!["ign".into()];
        if dims {
            cfg.series.slice_dimensions = vec!["region".into(), "shop".into()];
        }
        cfg.series.track_slices = slices;
        cfg
    }

    /// What an engine gives: its alerts, its saved state, its counts.
    fn outcome(e: &mut Engine) -> (Vec<String>, Vec<u8>, String) {
        e.flush();
        let state = e.save_state().unwrap();
        e.finish();
        let alerts = e
            .drain_alerts()
            .map(|a| serde_json::to_string(&a).unwrap())
            .collect();
        let counts = format!(
            "{:?} {} {} {}",
            e.overflow(),
            e.stats.predictions,
            e.stats.series,
            e.stats.late
        );
        (alerts, state, counts)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Events looked up on another thread in copies of the engine's
        /// registry (each copy published whenever the test says, so most
        /// are behind the engine by a few events or many) give the alerts,
        /// the saved state and the counts of the engine looking every event
        /// up itself: new names, kinds, categories and slice values, caps
        /// reached, ignored features and untracked dimensions, features an
        /// event lacks, values of the wrong type, text predictions.
        #[test]
        fn looked_up_beside_the_engine_is_looked_up_by_it(
            events in proptest::collection::vec(drawn(), 1..400),
            ahead in 1usize..40,
            publish_every in 1usize..60,
            // whether the reader looks each chunk up (as busy as the engine)
            looks in proptest::collection::vec(proptest::bool::weighted(0.8), 40),
            caps in (1usize..6, 1usize..5, 1usize..4),
            dims in any::<bool>(),
            slices in any::<bool>(),
        ) {
            let cfg = config(caps, dims, slices);
            let events: Vec<Prediction> =
                events.iter().enumerate().map(|(i, d)| event(i, d)).collect();
            let mut plain = Engine::new(cfg.clone());
            let taken: Vec<_> = events.iter().map(|p| plain.apply_prediction(p)).collect();
            let mut beside = Engine::new(cfg);
            let mut resolver = beside.resolver();
            // looked up `ahead` events before they are applied, as the
            // reader's thread runs ahead of the engine's
            for (chunk_at, chunk) in events.chunks(ahead).enumerate() {
                let mut prepared: Vec<Prediction> = chunk.to_vec();
                for p in &mut prepared {
                    resolver.prepare(p, looks[chunk_at % looks.len()]);
                }
                for (i, p) in prepared.iter().enumerate() {
                    let r = beside.apply_prediction(p);
                    let at = chunk_at * ahead + i;
                    if at % publish_every == 0 {
                        beside.publish_view();
                    }
                    prop_assert_eq!(&r, &taken[at], "event {} taken otherwise", at);
                }
            }
            let (a, b) = (outcome(&mut plain), outcome(&mut beside));
            prop_assert_eq!(&a.0, &b.0, "alerts");
            prop_assert!(a.1 == b.1, "saved state");
            prop_assert_eq!(&a.2, &b.2, "counts");
        }
    }

    /// A producer's events — the same features and slices, kinds settled —
    /// are looked up beside the engine once it has published its registry
    /// (at most [`CHECK_EVERY`] events after the registry last grew, and
    /// the reader's lead), and applied alike.
    #[test]
    fn a_producers_events_are_looked_up_beside_once_the_registry_settles() {
        let cfg = config((8, 8, 8), false, true);
        let events: Vec<Prediction> = (0..6000)
            .map(|i| {
                let d: Drawn = (
                    0,
                    vec![(0, (i % 200) as u8 + 8), (1, (i % 3) as u8 + 2), (2, 100)],
                    vec![(0, i % 3), (1, 3 + i % 2)],
                    None,
                    Some((i % 250) as u8),
                );
                event(i, &d)
            })
            .collect();
        let mut plain = Engine::new(cfg.clone());
        for p in &events {
            plain.apply_prediction(p).unwrap();
        }
        let mut beside = Engine::new(cfg);
        let mut resolver = beside.resolver();
        for chunk in events.chunks(256) {
            let mut prepared = chunk.to_vec();
            for p in &mut prepared {
                resolver.prepare(p, true);
            }
            for p in &prepared {
                beside.apply_prediction(p).unwrap();
            }
        }
        // the first two checks publish (the registry grows in the first
        // events); from the third batch after, every event is looked up
        assert!(
            beside.resolved_used >= 6000 - 3 * 1024 - 256,
            "{} of 6000 looked up beside",
            beside.resolved_used
        );
        let (a, b) = (outcome(&mut plain), outcome(&mut beside));
        assert_eq!(a.0, b.0);
        assert!(a.1 == b.1, "saved state");
        assert_eq!(a.2, b.2);
    }
}
