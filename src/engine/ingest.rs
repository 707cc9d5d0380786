//! The per-event path: check the event's time, find its model, slots and
//! series (registering them on first sight), write each value into its open
//! bucket, and hand predictions and outcomes to the join.

use crate::alert::policy::ChannelState;
use crate::codec::same;
use crate::event::{BadEvent, BadReason, Event, Outcome, Prediction, Scalar, Value};
use crate::join::{self, Label, Waiting};
use crate::quality::monitor::slots_of;
use crate::registry::{Model, NO_SERIES, PREDICTION, SCORE};
use crate::release::Role;
use crate::sketch::ValueKind;
use crate::window::{Observation, SeriesWindows};

use super::clock::{Gate, Refused};
use super::{Applied, Engine, PREFETCH_FROM_SERIES, Series};

/// A value as the engine sees it, borrowed from the event.
#[derive(Clone, Copy, Debug)]
pub(super) enum Val<'a> {
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

impl Engine {
    /// The event's bucket (None: late), after the robustness rule let it
    /// through. However the inputs disagree, the open buckets never span
    /// more than `max(input.max_future_skew, 7 days)`: an event that would
    /// stretch them further is refused (`time_outlier`), so memory never
    /// depends on the span between two timestamps.
    fn check_time(&mut self, t: i64) -> Result<Option<i64>, BadEvent> {
        let b = t.div_euclid(self.bucket_ms);
        let first_open = *self.first_open.get_or_insert(b);
        let max_span = self.max_span_buckets;
        let span = if b < first_open && !self.closed_any {
            first_open - b
        } else {
            b - first_open
        };
        if span > max_span {
            return Err(BadEvent::new(
                BadReason::TimeOutlier,
                format!(
                    "event_time {t} is {} from the first open bucket: the open buckets may span {} at most",
                    super::clock::humanize_ms(span * self.bucket_ms),
                    super::clock::humanize_ms(max_span * self.bucket_ms)
                ),
            ));
        }
        if b < first_open && !self.closed_any {
            // nothing closed yet: open the earlier buckets (the writes
            // waiting name open buckets by their place: they go first)
            self.flush();
            let extra = (first_open - b) as usize;
            for s in &mut self.series {
                s.windows.open_earlier(extra);
            }
            self.first_open = Some(b);
            return Ok(Some(b));
        }
        Ok((b >= first_open).then_some(b))
    }

    /// Applies one event read from `source`.
    pub fn apply_from(&mut self, ev: &Event, source: usize) -> Result<Applied, BadEvent> {
        self.apply_tagged(ev, Some(source), 0)
    }

    /// Applies one event read from `source` (None: the one merged stream of
    /// a replay); `tag` names it to the caller should it be held and then
    /// refused (see [`Engine::drain_refused`]).
    pub fn apply_tagged(
        &mut self,
        ev: &Event,
        source: Option<usize>,
        tag: u64,
    ) -> Result<Applied, BadEvent> {
        match self.gate(ev.event_time(), source) {
            Gate::Apply | Gate::Jump { .. } => self.apply_now(ev, source),
            Gate::Hold => {
                self.clock.hold(ev, source, tag);
                self.anchor_when_agreed(source);
                Ok(Applied::Held)
            }
            Gate::Refuse(bad) => Err(bad),
        }
    }

    /// The event's time through the robustness rule (`clock`): judged
    /// against its input's own newest trusted time (replay: the merged
    /// stream's; a partition: its own, never another's). A confirmed jump of
    /// the merged stream moves time before the event is applied; a
    /// partition's jump moves that partition, and the watermark follows the
    /// slowest.
    fn gate(&mut self, t: i64, source: Option<usize>) -> Gate {
        let newest = match source {
            Some(s) => self.time.source_max(s),
            None => self.time.newest(),
        };
        let gate = self.clock.gate(
            t,
            source,
            newest,
            self.closed_any,
            self.skew_ms,
            self.consensus,
        );
        match gate {
            Gate::Jump { from, to } => {
                self.stats.time_jumps += 1;
                self.jumped.push((from, to));
                if source.is_none() {
                    // the buckets in between close now, empty: the event that
                    // follows lands near the first open bucket, whatever the gap
                    self.advance_to(to);
                }
                Gate::Apply
            }
            g => g,
        }
    }

    /// Anchors an input once enough of its first events agree (see `clock`).
    fn anchor_when_agreed(&mut self, source: Option<usize>) {
        if self.clock.holding_for(source) as u64 >= self.consensus {
            self.anchor_input(source);
        }
    }

    /// Ends holding for one input: its held events near their median time
    /// are applied in the order they came, the others refused.
    pub(crate) fn anchor_input(&mut self, source: Option<usize>) {
        for (ev, source, tag) in self.clock.anchor(source, self.skew_ms) {
            if let Err(bad) = self.apply_now(&ev, source) {
                self.clock.refuse(tag, ev, bad);
            }
        }
    }

    /// Ends holding for every input (the input ended, or all are idle).
    pub(crate) fn anchor(&mut self) {
        if !self.clock.anchored() {
            self.anchor_input(None);
        }
        for source in self.clock.held_sources() {
            self.anchor_input(source);
        }
    }

    /// Held events refused at the anchor since the last call: the caller
    /// reports each (its `tag` says where it came from) and counts it.
    pub fn drain_refused(&mut self) -> impl Iterator<Item = Refused> + '_ {
        self.clock.drain_refused()
    }

    /// First events held, waiting for enough to agree on the time.
    pub fn holding(&self) -> usize {
        self.clock.holding()
    }

    /// Refused held events or accepted jumps wait to be drained.
    pub fn has_news(&self) -> bool {
        self.clock.has_refused() || !self.jumped.is_empty()
    }

    /// Event-time jumps accepted since the last call: (from, to).
    pub fn drain_jumps(&mut self) -> std::vec::Drain<'_, (i64, i64)> {
        self.jumped.drain(..)
    }

    /// Applies an event the rule let through.
    fn apply_now(&mut self, ev: &Event, source: Option<usize>) -> Result<Applied, BadEvent> {
        let r = match ev {
            Event::Prediction(p) => self.prediction_now(p),
            Event::Outcome(o) => self.outcome_now(o),
        };
        if let (Ok(_), Some(source)) = (&r, source) {
            self.time.delivered(source, ev.event_time());
            self.advance();
        }
        r
    }

    fn model(&mut self, id: &str) -> Result<u32, BadEvent> {
        // most events are the last one's model: compared before hashed
        if let Some(m) = self.models.get(self.last_model as usize)
            && same(&m.id, id)
        {
            return Ok(self.last_model);
        }
        if let Some(&m) = self.model_ids.get(id) {
            self.last_model = m;
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
        self.models.push(Model::new(id));
        self.model_baselines.push(self.baselines.remove(id));
        self.model_ids.insert(id.into(), m);
        Ok(m)
    }

    /// Applies one event of either kind.
    pub fn apply(&mut self, ev: &Event) -> Result<Applied, BadEvent> {
        self.apply_tagged(ev, None, 0)
    }

    /// Applies one prediction event (held while the first events are; the
    /// event is copied only then).
    pub fn apply_prediction(&mut self, p: &Prediction) -> Result<Applied, BadEvent> {
        match self.gate(p.event_time, None) {
            Gate::Apply | Gate::Jump { .. } => self.prediction_now(p),
            Gate::Hold => self.apply_tagged(&Event::Prediction(Box::new(p.clone())), None, 0),
            Gate::Refuse(bad) => Err(bad),
        }
    }

    /// Applies one outcome event (held as predictions are).
    pub fn apply_outcome(&mut self, o: &Outcome) -> Result<Applied, BadEvent> {
        match self.gate(o.event_time, None) {
            Gate::Apply | Gate::Jump { .. } => self.outcome_now(o),
            Gate::Hold => self.apply_tagged(&Event::Outcome(o.clone()), None, 0),
            Gate::Refuse(bad) => Err(bad),
        }
    }

    fn prediction_now(&mut self, p: &Prediction) -> Result<Applied, BadEvent> {
        let Some(bucket) = self.check_time(p.event_time)? else {
            self.stats.late += 1;
            return Ok(Applied::Late);
        };
        let m = self.model(&p.model_id)?;
        let role = self.release.role(
            m,
            &p.model_id,
            p.model_version.as_deref(),
            p.shadow,
            p.event_time,
            &self.cfg.release,
        );
        if role != Role::Production {
            return Ok(self.candidate_prediction(p, m, role));
        }
        self.stats.predictions += 1;
        self.stats.see_time(p.event_time);
        let idx = (bucket - self.first_open.unwrap_or(bucket)) as usize;
        let model = &mut self.models[m as usize];
        if let Some(v) = p.model_version.as_deref()
            && model.version.as_deref().is_none_or(|w| !same(w, v))
        {
            model.version = Some(v.to_string());
        }
        model.event_gen += 1;
        // the event's slots, and each value's observation and series: as
        // the reader's thread looked them up in a copy of the registry
        // (`resolve`), or looked up (and registered) here
        let mut slots_buf = std::mem::take(&mut self.slots);
        let mut planned_buf = std::mem::take(&mut self.planned);
        let mut sids_buf = std::mem::take(&mut self.planned_series);
        let (slots, planned, sids, carried) =
            match p.prepared.ids.usable(self.epoch, m, model.layout) {
                Some(r) => {
                    self.resolved_used += 1;
                    (&r.slots[..], &r.planned[..], &r.sids[..], r.carried)
                }
                None => {
                    let carried = self.plan(
                        p,
                        m,
                        bucket,
                        &mut slots_buf,
                        &mut planned_buf,
                        &mut sids_buf,
                    );
                    (&slots_buf[..], &planned_buf[..], &sids_buf[..], carried)
                }
            };
        // each value's series: the overall one first, written now or not
        let skip = usize::from(carried);
        let (join_slots, n_slots) = slots_of(slots);
        let (prediction, class) = match &p.prediction {
            Scalar::Number(x) => (*x, 0),
            Scalar::Text(c) => (f64::NAN, self.quality.class(m, c)),
        };
        if self.release.comparing(m) {
            self.release
                .production_traffic(m, slots, p.score, p.event_time);
        }
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
        // (an asleep series takes no write: what it holds is not reached)
        let many = self.awake_series() >= PREFETCH_FROM_SERIES;
        if skip == 1 {
            // counted as taken now all the same
            for sids in sids.chunks(slots.len()) {
                self.applied[sids[0] as usize] += 1;
            }
        }
        if self.queued.on && many {
            // written in groups of series on the workers (`shard`); few
            // series are in the caches, and writing at once is cheaper
            self.queue(planned, sids, slots.len(), skip, idx, &p.trace_id);
        } else {
            if many {
                for stage in 0..4 {
                    let mut new_buckets = 0;
                    for (&obs, sids) in planned.iter().zip(sids.chunks(slots.len())) {
                        for &sid in &sids[skip..] {
                            if self.asleep[sid as usize] {
                                continue;
                            }
                            let s = &self.series[sid as usize];
                            new_buckets += s.prefetch_record(stage, idx, obs) as usize;
                        }
                    }
                    if stage >= 2 {
                        self.pool.prefetch_next(new_buckets, stage - 2);
                    }
                }
            }
            let max_ex = self.cfg.policy.max_exemplars;
            let trace = crate::sketch::Offered::new(&p.trace_id);
            for (&obs, sids) in planned.iter().zip(sids.chunks(slots.len())) {
                for &sid in &sids[skip..] {
                    self.applied[sid as usize] += 1;
                    if self.asleep[sid as usize] {
                        continue;
                    }
                    self.series[sid as usize].windows.record::<0>(
                        idx,
                        obs,
                        &trace,
                        max_ex,
                        &mut self.pool,
                    );
                }
            }
        }
        self.planned = planned_buf;
        self.planned_series = sids_buf;
        self.slots = slots_buf;
        self.published_check();
        self.advance_to(p.event_time);
        Ok(Applied::Applied)
    }

    /// Looks up (and registers on first sight) `p`'s slots, and each of
    /// its values' observation and series (one per slot), into `slots`,
    /// `planned` and `sids`; returns whether a slot is the carrier's
    /// (`Model::carrier_slots`). What [`super::resolve::Resolver`] looks up in a
    /// copy of the registry on the reader's thread, which must agree.
    fn plan(
        &mut self,
        p: &Prediction,
        m: u32,
        bucket: i64,
        slots: &mut Vec<u32>,
        planned: &mut Vec<Observation>,
        sids: &mut Vec<u32>,
    ) -> bool {
        let model = &mut self.models[m as usize];
        let generation = model.event_gen;
        slots.clear();
        slots.push(0);
        // in a slice of the carrier (`Model::carrier_slots`): its values
        // reach the overall series when their bucket closes, merged from
        // that slice's, not one by one now
        let mut carried = false;
        if self.cfg.series.track_slices {
            for (i, (dim, value)) in p.slices.iter().enumerate() {
                match model.slot_in(i, dim, value, &self.cfg) {
                    // the carrier named twice (never from a decoder, which
                    // refuses a key given twice): its first value only
                    Some((_, true)) if carried => {}
                    Some((s, carrier)) => {
                        carried |= carrier;
                        slots.push(s);
                    }
                    None => {}
                }
            }
        }
        // each value's observation and series first, then the writes: with
        // thousands of sparse series a write is a chain of cache misses
        // (the series, its open bucket, that bucket's bins and exemplars),
        // fetched for all of an event's series at once, a link at a time
        planned.clear();
        sids.clear();
        // its numbers' bins, if the reader worked them out
        let pre = crate::sketch::edges::prepared(p, &self.dd);
        let mut plan = |e: &mut Self, f: u32, v: Val<'_>, at: usize| {
            planned.push(e.observe(m, f, v, pre, at));
            for &slot in slots.iter() {
                sids.push(e.series_id(m, f, slot, bucket));
            }
        };
        for (i, (name, v)) in p.features.iter().enumerate() {
            let model = &mut self.models[m as usize];
            let Some(f) = model.feature_at(i, name, &self.cfg) else {
                continue;
            };
            model.features[f as usize].seen_gen = generation;
            plan(self, f, v.into(), i);
        }
        let pred = match &p.prediction {
            Scalar::Number(x) => Val::Num(*x),
            Scalar::Text(s) => Val::Cat(s),
        };
        let n = p.features.len();
        plan(self, PREDICTION, pred, n);
        match p.score {
            Some(s) => plan(self, SCORE, Val::Num(s), n + 1),
            None if self.models[m as usize].features[SCORE as usize]
                .kind
                .is_some() =>
            {
                plan(self, SCORE, Val::Null, n + 1)
            }
            None => {}
        }
        // a feature the model had before but this event lacks is a null
        let n_features = self.models[m as usize].features.len() as u32;
        for f in 2..n_features {
            let feat = &self.models[m as usize].features[f as usize];
            if feat.seen_gen != generation && feat.kind.is_some() {
                plan(self, f, Val::Null, 0);
            }
        }
        carried
    }

    /// A candidate version's prediction (canary or shadow): never in
    /// production's series; its slices registered, its pair compared.
    fn candidate_prediction(&mut self, p: &Prediction, m: u32, role: Role) -> Applied {
        self.stats.candidate_predictions += 1;
        self.stats.see_time(p.event_time);
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        slots.push(0);
        if self.cfg.series.track_slices {
            let model = &mut self.models[m as usize];
            for (dim, value) in &p.slices {
                if let Some(s) = model.slot(dim, value, &self.cfg) {
                    slots.push(s);
                }
            }
        }
        let (prediction, class) = match &p.prediction {
            Scalar::Number(x) => (*x, 0),
            Scalar::Text(c) => (f64::NAN, self.quality.class(m, c)),
        };
        // counted as traffic always; waits for an outcome only when one can come
        let join = &self.cfg.join;
        self.release.prediction(
            join::key(&p.model_id, &p.trace_id),
            m,
            role,
            &slots,
            prediction,
            class,
            p.score,
            p.event_time,
            self.outcomes
                .then(|| (join.ttl.as_millis(), join.max_waiting)),
        );
        self.slots = slots;
        self.advance_to(p.event_time);
        Applied::Applied
    }

    /// An outcome joins its prediction (or waits for it), is counted and
    /// advances event time.
    fn outcome_now(&mut self, o: &Outcome) -> Result<Applied, BadEvent> {
        let on_time = self.check_time(o.event_time)?.is_some();
        let m = self.model(&o.model_id)?;
        // the pair counts in its prediction's bucket, whenever the outcome comes
        let label = match &o.label {
            Scalar::Number(x) => Label::Number(*x),
            Scalar::Text(c) => Label::Class(self.quality.class(m, c)),
        };
        let key = join::key(&o.model_id, &o.trace_id);
        let join = &self.cfg.join;
        let candidate = self.release.outcome(
            key,
            label,
            o.event_time,
            join.orphan_hold.as_millis(),
            join.max_orphans,
        );
        self.quality.outcome(key, label, o.event_time, !candidate);
        if !on_time {
            self.stats.late += 1;
            return Ok(Applied::Late);
        }
        self.stats.outcomes += 1;
        self.stats.see_time(o.event_time);
        self.advance_to(o.event_time);
        Ok(Applied::Applied)
    }

    /// What value `v` of feature `f` is to its series (with its DDSketch
    /// bin for a number), the feature's kind and categories updated.
    /// What `v`, the number at `at` of the event whose bins `pre` are
    /// (`Ordinals`), is to feature `f`.
    fn observe(
        &mut self,
        m: u32,
        f: u32,
        v: Val<'_>,
        pre: Option<&[i64]>,
        at: usize,
    ) -> Observation {
        let cap = self.cfg.series.max_categories;
        let model = &mut self.models[m as usize];
        let feat = &mut model.features[f as usize];
        let learned = match (feat.kind, v) {
            (None, Val::Num(_)) => Some(ValueKind::Numeric),
            (None, Val::Cat(_)) => Some(ValueKind::Categorical),
            _ => None,
        };
        if learned.is_some() {
            feat.kind = learned;
        }
        let kind = feat.kind;
        let known = feat.category_names.len();
        let cat = match (kind, v) {
            (Some(ValueKind::Categorical), Val::Cat(s)) => Some(feat.category_id(s, cap)),
            _ => None,
        };
        let given = feat.category_names.len() != known;
        if learned.is_some() {
            model.kind_learned();
        }
        if given {
            model.changes += 1;
        }
        if cat == Some(0) {
            model.overflow.categories += 1;
        }
        match (kind, v) {
            (_, Val::Null) => Observation::Null,
            (Some(ValueKind::Numeric), Val::Num(x)) => Observation::Number {
                x,
                ordinal: crate::sketch::edges::ordinal_at(pre, at, &self.dd, x),
            },
            (Some(ValueKind::Categorical), Val::Cat(_)) => {
                Observation::Category(cat.unwrap_or(0) as usize)
            }
            _ => Observation::Violation,
        }
    }

    fn series_id(&mut self, m: u32, f: u32, slot: u32, bucket: i64) -> u32 {
        let sid = self.models[m as usize].series_at(f, slot);
        if sid != NO_SERIES {
            return sid;
        }
        let sid = self.series.len() as u32;
        let open_len = self.first_open.map_or(0, |fo| (bucket - fo) as usize + 1);
        let mut windows = SeriesWindows::new(bucket, self.warmup_buckets, open_len);
        let model = &mut self.models[m as usize];
        if let Some(base) = &self.model_baselines[m as usize] {
            let slice = model.slots[slot as usize].clone();
            let feature = &mut model.features[f as usize];
            let kind = feature.kind;
            if let Some(r) = base.reference_for(
                feature,
                slice.as_ref(),
                &self.bins,
                self.cfg.series.max_categories,
            ) {
                windows.pin(r);
            }
            // (its categories, if any, are counted as the series is)
            if feature.kind != kind {
                model.kind_learned();
            }
        }
        model.set_series(f, slot, sid);
        self.asleep.push(false);
        self.applied.push(0);
        self.series.push(Series {
            model: m,
            feature: f,
            slot,
            history: std::collections::VecDeque::new(),
            windows,
            drift: ChannelState::default(),
            quality: ChannelState::default(),
            settled: false,
        });
        self.stats.series = self.series.len() as u64;
        sid
    }
}
