//! Event-time windows of one series: the open buckets still accepting
//! events, the reference being pinned, and the sliding current window kept
//! as a ring of closed buckets plus running totals.
//!
//! A slide adds the closing bucket's counts to the totals and subtracts the
//! bucket that leaves: O(bins), not O(window). Moments and quantiles are
//! merged from the ring when an alert needs them. A closed bucket is kept
//! packed ([`Closed`]): a window of 30 buckets is most of a series' memory.

mod closed;
mod open;

use std::collections::VecDeque;

use sketches_ddsketch::Config as DdConfig;

pub use closed::{Closed, ExemplarList, FoldScratch};
pub use open::Open;

use crate::sketch::{Edges, Sketch, ValueKind};

/// A reference profile, pinned: the summary and what was derived from it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Reference {
    pub start_ms: i64,
    pub end_ms: i64,
    pub sketch: Sketch,
    /// Numeric series: bin edges and the reference's exact counts over them.
    pub edges: Option<Edges>,
    /// Counts over fine bins (numbers) or categories (categories).
    pub counts: Vec<u64>,
    /// Counts over coarse bins (numbers).
    pub coarse: Vec<u64>,
    /// Quantile function at `WASSERSTEIN_LEVELS` mid-points (numbers).
    pub quantiles: Vec<f64>,
}

/// Quantile levels at which Wasserstein distances are taken.
pub const WASSERSTEIN_LEVELS: usize = 100;

/// Where a series' reference comes from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum RefState {
    /// Accumulating buckets of its warm-up range, until bucket `end` (exclusive).
    WarmingUp {
        start: i64,
        end: i64,
        acc: Box<Sketch>,
    },
    Pinned(Box<Reference>),
}

/// The windows of one series. Written through [`SeriesWindows::record`]
/// (one value into an open bucket) and [`SeriesWindows::close`] (a bucket
/// closes, the window slides); read through the accessors.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SeriesWindows {
    /// Open buckets, index 0 = the engine's first open bucket.
    open: VecDeque<Option<Box<Open>>>,
    reference: RefState,
    /// Closed buckets of the current window, oldest first.
    ring: VecDeque<Closed>,
    /// Integer parts of the ring's sum.
    totals: Sketch,
    /// What it keeps of its current window ([`SeriesWindows::go_dormant`]);
    /// not checkpointed: a restored series keeps everything again.
    #[serde(skip)]
    kept: Kept,
    /// Where its last bucket to close counted densely: the next bucket
    /// opened counts there from its first value (`open::Spans`). Not
    /// checkpointed: a restored series finds them again.
    #[serde(skip)]
    spans: open::Spans,
}

/// What a series keeps of its current window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kept {
    /// Everything: its open buckets, and its closed ones in the ring and totals.
    #[default]
    All,
    /// Dormant, a carrier slice: its open buckets are written (they make
    /// its model's overall series, `registry::Model::carrier_slots`) and
    /// dropped when they close.
    Open,
    /// Dormant: nothing is written to it, nothing kept.
    Nothing,
}

/// One value as a series' bucket records it (defined with the event, whose
/// [`crate::event::Resolved`] carries them from the reader's thread).
pub use crate::event::Observation;

impl SeriesWindows {
    pub fn new(first_bucket: i64, warmup_buckets: i64, open_len: usize) -> Self {
        let mut open = VecDeque::with_capacity(open_len + 2);
        open.resize_with(open_len, || None);
        SeriesWindows {
            open,
            reference: RefState::WarmingUp {
                start: first_bucket,
                end: first_bucket + warmup_buckets,
                acc: Box::new(Sketch::new()),
            },
            ring: VecDeque::new(),
            totals: Sketch::new(),
            kept: Kept::All,
            spans: open::Spans::default(),
        }
    }

    /// Stops keeping its current window: a series that no evaluation
    /// under the configuration can alert on (its reference is below
    /// `policy.min_reference_samples`, and a reference never changes once
    /// pinned), so nothing reads it (see `engine::Series::settled`). Its
    /// closed buckets are dropped and its totals zeroed — as a window
    /// just begun, which is what a checkpoint keeps of it — and from now
    /// on its buckets are dropped as they close; a `carrier` slice's are
    /// still written (its overall series' values come from them), any
    /// other's are not, and its open buckets are dropped now: nothing
    /// reaches into it any more (`Engine`'s loops over every series pass
    /// it by).
    pub fn go_dormant(&mut self, carrier: bool, pool: &mut Pool) {
        if !carrier {
            // nothing will close them: its open buckets go now
            for s in self.open.drain(..).flatten() {
                pool.recycle(s);
            }
            self.open = VecDeque::new();
        }
        self.ring = VecDeque::new();
        let t = &mut self.totals;
        (t.values, t.nulls, t.type_violations) = (0, 0, 0);
        t.hist.fill(0);
        t.hist_sum.fill(0.0);
        self.kept = if carrier { Kept::Open } else { Kept::Nothing };
    }

    /// Whether it keeps no current window ([`SeriesWindows::go_dormant`]).
    pub fn dormant(&self) -> bool {
        self.kept != Kept::All
    }

    /// Opens `n` buckets before the first open one (an event older than
    /// every open bucket, before any bucket has closed).
    pub fn open_earlier(&mut self, n: usize) {
        for _ in 0..n {
            self.open.push_front(None);
        }
    }

    /// Records one value in open bucket `idx` (counted from the engine's
    /// first open bucket), taking a recycled sketch from `pool` when the
    /// bucket is new, and offers its trace id as an exemplar.
    ///
    /// `CALLER` tells its two callers apart (the per-event path, 0, and a
    /// flush of queued writes, 1) so each has a copy of its own: with one
    /// copy called from both, the compiler stopped inlining it and what it
    /// calls into the per-event path, 3 % slower.
    #[inline]
    pub fn record<const CALLER: u8>(
        &mut self,
        idx: usize,
        obs: Observation,
        trace: &crate::sketch::Offered<'_>,
        max_exemplars: usize,
        pool: &mut Pool,
    ) {
        // an asleep series is passed by before this (`Engine::asleep`)
        debug_assert!(self.kept != Kept::Nothing, "a write to an asleep series");
        if self.open.len() <= idx {
            self.open.resize_with(idx + 1, || None);
        }
        let spans = &self.spans;
        let open = self.open[idx].get_or_insert_with(|| {
            let mut o = pool.sketches.pop().unwrap_or_default();
            o.arm(spans);
            o
        });
        // exemplars are offered whatever the reference: which of them are
        // unusual is decided when an alert is made, so buckets opened
        // before the reference was pinned (how many depends on batching)
        // keep the same ones
        match obs {
            Observation::Null => {
                open.sketch.add_null();
                open.sketch.null_exemplars.offer(trace, max_exemplars);
            }
            Observation::Number { x, ordinal } => {
                // its histogram bin is counted when the bucket closes, from its quantile bins
                open.add_number(x, ordinal);
                let sketch = &mut open.sketch;
                let (low, high) = crate::sketch::tail_keys(ordinal);
                sketch.exemplars.offer_keyed(low, trace, max_exemplars);
                sketch
                    .high_exemplars
                    .offer_keyed(high, trace, max_exemplars);
            }
            Observation::Category(id) => {
                open.sketch.add_category(id);
                if max_exemplars > 0 {
                    open.sketch.exemplars.offer_per_category(id as u32, trace);
                }
            }
            Observation::Violation => {
                open.sketch.add_violation();
                open.sketch.null_exemplars.offer(trace, max_exemplars);
            }
        }
    }

    /// Merges `part`'s oldest open bucket into this one's (the same
    /// bucket: both count from the engine's first open one) — a carrier
    /// slice's values into the overall series' before the bucket closes
    /// (`registry::Model::carrier_slots`). `kind` is the feature's.
    pub fn absorb_front(
        &mut self,
        part: &mut SeriesWindows,
        kind: Option<ValueKind>,
        max_exemplars: usize,
        pool: &mut Pool,
    ) {
        let Some(Some(from)) = part.open.front_mut() else {
            return;
        };
        if self.dormant() {
            // its closing bucket would be dropped
            return;
        }
        if self.open.is_empty() {
            self.open.push_back(None);
        }
        let into = self.open[0].get_or_insert_with(|| pool.sketches.pop().unwrap_or_default());
        into.absorb(from, kind, max_exemplars);
    }

    /// Where the reference stands: warming up, or pinned.
    pub fn reference(&self) -> &RefState {
        &self.reference
    }

    /// The current window's running totals (counts, nulls, histogram).
    pub fn totals(&self) -> &Sketch {
        &self.totals
    }

    /// The current window's closed buckets, oldest first.
    pub fn ring(&self) -> impl DoubleEndedIterator<Item = &Closed> + ExactSizeIterator {
        self.ring.iter()
    }

    pub fn pinned(&self) -> Option<&Reference> {
        match &self.reference {
            RefState::Pinned(r) => Some(r),
            RefState::WarmingUp { .. } => None,
        }
    }

    pub fn edges(&self) -> Option<&Edges> {
        self.pinned().and_then(|r| r.edges.as_ref())
    }

    /// Cache hints for an evaluation soon: 0, the reference's place and
    /// the totals; 1, the reference's counts.
    #[inline]
    pub fn prefetch_evaluate(&self, stage: u8) {
        use crate::sketch::prefetch;
        match (stage, &self.reference) {
            (0, r) => {
                prefetch(r);
                prefetch(&self.totals);
            }
            (_, RefState::Pinned(r)) => prefetch(&r.sketch),
            _ => {}
        }
    }

    /// Cache hints for a [`SeriesWindows::record`] into open bucket `idx`
    /// soon (stages as [`crate::engine::Series::prefetch_record`]'s).
    /// Returns whether the write will take a new bucket from the pool
    /// (its bucket is not open yet: [`Pool::prefetch_next`]).
    #[inline]
    pub fn prefetch_record(&self, stage: u8, idx: usize, obs: Observation) -> bool {
        if stage == 0 {
            // the deque's place (its fields are read to find the slot)
            crate::sketch::prefetch(&self.open);
            return false;
        }
        let Some(slot) = self.open.get(idx) else {
            return true;
        };
        match (stage, slot) {
            (1, _) => crate::sketch::prefetch(slot),
            (_, None) => return true,
            (2, Some(o)) => o.prefetch(),
            (_, Some(o)) => o.prefetch_contents(Some(obs)),
        }
        false
    }

    /// Cache hints for a [`SeriesWindows::close`] soon, in three stages a
    /// few series apart, each touching only what the one before brought in:
    /// 0, what the series' own fields point at (its first open bucket's
    /// and its ring's slots, its totals, its reference); 1, the open
    /// bucket, the oldest closed bucket's bytes and the reference's edges;
    /// 2, the open bucket's bins and exemplars.
    #[inline]
    pub fn prefetch_close(&self, stage: u8) {
        use crate::sketch::{prefetch, prefetch_slice};
        if self.kept == Kept::Nothing {
            return;
        }
        match stage {
            0 => {
                if let Some(o) = self.open.front() {
                    prefetch(o);
                }
                if self.dormant() {
                    return;
                }
                // the oldest bucket leaves, the new one goes after the newest
                if let Some(c) = self.ring.front() {
                    prefetch_slice(std::slice::from_ref(c), 2);
                }
                if let Some(c) = self.ring.back() {
                    prefetch_slice(std::slice::from_ref(c), 2);
                }
                // both buckets count into some of the totals' bins
                prefetch_slice(&self.totals.hist, 8);
                prefetch_slice(&self.totals.hist_sum, 8);
                if let RefState::Pinned(r) = &self.reference {
                    prefetch(&r.edges);
                }
            }
            1 => {
                if let Some(Some(o)) = self.open.front() {
                    o.prefetch();
                }
                if let Some(c) = self.ring.front() {
                    prefetch(c.data_ptr());
                }
                if let Some(e) = self.edges().filter(|_| !self.dormant()) {
                    prefetch_slice(&e.fine, 8);
                }
            }
            _ => {
                if let Some(Some(o)) = self.open.front() {
                    o.prefetch_contents(None);
                }
            }
        }
    }

    /// Closes the oldest open bucket (`bucket`), sliding the window to end at
    /// it. Returns true when this close pinned the reference. (Open sketches
    /// are boxed: they move between open buckets and the pool.)
    pub fn close(
        &mut self,
        bucket: i64,
        window_buckets: i64,
        kind: Option<ValueKind>,
        bins: &BinSpec,
        bucket_ms: i64,
        pool: &mut Pool,
    ) -> bool {
        let closing = self.open.pop_front().flatten();
        if let Some(s) = &closing {
            self.spans = s.spans();
        }
        if self.dormant() {
            if let Some(s) = closing {
                pool.recycle(s);
            }
            return false;
        }
        let mut pinned_now = false;
        match &mut self.reference {
            RefState::WarmingUp { start, end, acc } => {
                if let Some(mut s) = closing {
                    acc.merge(s.settled());
                    pool.recycle(s);
                }
                if bucket + 1 >= *end {
                    let (start_ms, end_ms) = (*start * bucket_ms, *end * bucket_ms);
                    let acc = std::mem::take(&mut **acc);
                    self.pin(Reference::build(acc, start_ms, end_ms, kind, bins));
                    pinned_now = true;
                }
            }
            RefState::Pinned(r) => {
                if let Some(mut s) = closing {
                    let settled = s.settled();
                    let c = Closed::pack(bucket, settled, &mut pool.bytes);
                    let edges = r.edges.as_ref();
                    c.fold_in_packed(settled, &mut self.totals, edges, &bins.dd, &mut pool.fold);
                    pool.recycle(s);
                    self.ring.push_back(c);
                }
            }
        }
        let edges = match &self.reference {
            RefState::Pinned(r) => r.edges.as_ref(),
            RefState::WarmingUp { .. } => None,
        };
        while let Some(c) = self.ring.front() {
            if c.bucket > bucket - window_buckets {
                break;
            }
            c.fold_into(&mut self.totals, edges, &bins.dd, &mut pool.fold, false);
            self.ring.pop_front();
        }
        pinned_now
    }

    /// Pins a reference. Open buckets need nothing from it: a number's
    /// histogram bin is counted when its bucket closes.
    pub fn pin(&mut self, r: Reference) {
        if let Some(edges) = &r.edges {
            self.totals.size_numeric_hist(edges.bins());
        }
        self.reference = RefState::Pinned(Box::new(r));
    }

    /// Merges the ring into one sketch with moments and quantiles.
    pub fn merged_current(&self, out: &mut Sketch) {
        *out = Sketch::new();
        for c in &self.ring {
            c.merge_into(out);
        }
    }

    /// Event time at which the current window starts (its oldest bucket).
    pub fn window_start_bucket(&self) -> Option<i64> {
        self.ring.front().map(|c| c.bucket)
    }
}

/// Bin counts the reference's edges are built with.
#[derive(Clone, Copy, Debug)]
pub struct BinSpec {
    pub coarse: usize,
    pub fine: usize,
    pub dd: DdConfig,
}

impl Reference {
    /// Derives edges, bin counts and quantiles from a reference summary.
    pub fn build(
        sketch: Sketch,
        start_ms: i64,
        end_ms: i64,
        kind: Option<ValueKind>,
        bins: &BinSpec,
    ) -> Reference {
        let mut r = Reference {
            start_ms,
            end_ms,
            edges: None,
            counts: Vec::new(),
            coarse: Vec::new(),
            quantiles: Vec::new(),
            sketch,
        };
        // pinned for good: no room to grow into
        r.sketch.quantiles.shrink_to(0);
        let q = &r.sketch.quantiles;
        match kind {
            Some(ValueKind::Numeric) if !q.is_empty() => {
                let edges = Edges::from_reference(&bins.dd, q, bins.coarse, bins.fine);
                r.counts = edges.counts_from_sketch(q);
                edges.coarse(&r.counts, &mut r.coarse);
                r.quantiles = crate::drift::numeric::quantile_levels(WASSERSTEIN_LEVELS)
                    .map(|l| q.quantile(&bins.dd, l).unwrap_or(0.0))
                    .collect();
                r.edges = Some(edges);
            }
            Some(ValueKind::Numeric) => {
                // numeric but no values in the reference: one bin, everything later lands in it
                r.edges = Some(Edges::from_ordinals(Vec::new(), 1));
                r.counts = vec![0];
                r.coarse = vec![0];
            }
            _ => r.counts = r.sketch.hist.clone(),
        }
        r
    }
}

/// What closing buckets reuse: emptied open sketches, and scratch for
/// packing a bucket and reading its bins back.
#[derive(Default)]
pub struct Pool {
    // boxed: a sketch moves between an open bucket's slot and here
    #[allow(clippy::vec_box)]
    sketches: Vec<Box<Open>>,
    bytes: Vec<u8>,
    fold: FoldScratch,
    /// Sketches kept beyond [`POOLED_SKETCHES`]: one per series (with more
    /// series than that, a minute's closes recycle more sketches than the
    /// pool held, and the next minute's buckets were allocated anew).
    keep: usize,
}

/// Recycled sketches a pool keeps.
const POOLED_SKETCHES: usize = 4096;

/// Quantile bins a recycled sketch keeps room for: a sketch that held a busy
/// series' bucket must not carry its room to the many sparse ones (with
/// 3,000 series, 64 bins of room was 2 KiB a series; a busy bucket grows
/// back in a few doublings).
const POOLED_BINS: usize = 8;

impl Pool {
    /// Keeps recycled sketches for up to `series` series (at least
    /// [`POOLED_SKETCHES`]).
    pub fn keep_for(&mut self, series: usize) {
        self.keep = series;
    }

    fn capacity(&self) -> usize {
        POOLED_SKETCHES.max(self.keep)
    }

    /// Takes `other`'s recycled sketches (as many as this pool keeps).
    pub fn absorb(&mut self, other: &mut Pool) {
        let room = self.capacity().saturating_sub(self.sketches.len());
        let n = other.sketches.len().min(room);
        self.sketches.extend(other.sketches.drain(..n));
        other.sketches.clear();
    }

    /// Moves a `1/share` part of this pool's recycled sketches to `other`.
    pub fn lend(&mut self, other: &mut Pool, share: usize) {
        let n = self.sketches.len() / share.max(1);
        let from = self.sketches.len() - n;
        other.sketches.extend(self.sketches.drain(from..));
    }

    /// Cache hints for the next `n` sketches new buckets will take:
    /// `stage` 0, the sketches; 1, their bins and exemplars.
    pub fn prefetch_next(&self, n: usize, stage: u8) {
        for s in self.sketches.iter().rev().take(n) {
            match stage {
                0 => s.prefetch(),
                _ => s.prefetch_contents(None),
            }
        }
    }

    fn recycle(&mut self, mut s: Box<Open>) {
        if self.sketches.len() < self.capacity() {
            s.reset();
            s.sketch.quantiles.shrink_to(POOLED_BINS);
            self.sketches.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::{Offered, dd_config, ordinal};
    use proptest::prelude::*;

    fn bins() -> BinSpec {
        BinSpec {
            coarse: 4,
            fine: 8,
            dd: dd_config(0.01),
        }
    }

    /// A bucket's sketch of `xs` (None = null).
    fn sketch_of(xs: &[Option<f64>]) -> Sketch {
        let dd = dd_config(0.01);
        let mut s = Sketch::new();
        for x in xs {
            match x {
                Some(x) => s.add_number(*x, ordinal(&dd, *x)),
                None => s.add_null(),
            }
        }
        s
    }

    /// An open bucket of `xs`, written as `record` writes one.
    fn bucket(xs: &[Option<f64>]) -> Box<Open> {
        let dd = dd_config(0.01);
        let mut s = Box::new(Open::default());
        for x in xs {
            match x {
                Some(x) => s.add_number(*x, ordinal(&dd, *x)),
                None => s.sketch.add_null(),
            }
        }
        s
    }

    /// Counts of `xs` over `edges`, directly.
    fn direct_hist(edges: &Edges, xs: &[Option<f64>]) -> Vec<u64> {
        let dd = dd_config(0.01);
        let mut h = vec![0u64; edges.bins()];
        for x in xs.iter().flatten() {
            h[edges.bin_of(ordinal(&dd, *x))] += 1;
        }
        h
    }

    proptest! {
        /// After every slide, the running totals equal the sum of the last
        /// `window` closed buckets recomputed from scratch.
        #[test]
        fn sliding_equals_recomputing(
            buckets in prop::collection::vec(prop::collection::vec(prop::option::weighted(0.9, -50.0f64..500.0), 0..40), 4..40),
            window in 1i64..8,
            warmup in 1i64..4,
        ) {
            let dd = dd_config(0.01);
            let mut w = SeriesWindows::new(0, warmup, 0);
            let mut pool = Pool::default();
            let mut closed: Vec<(i64, Vec<Option<f64>>)> = Vec::new();
            for (b, xs) in buckets.iter().enumerate() {
                let b = b as i64;
                w.open.push_back(Some(bucket(xs)));
                let pinned_before = w.pinned().is_some();
                w.close(b, window, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool);
                if !pinned_before {
                    continue;
                }
                closed.push((b, xs.clone()));
                let live: Vec<Option<f64>> = closed.iter().filter(|(cb, _)| *cb > b - window).flat_map(|(_, xs)| xs.clone()).collect();
                let scratch = sketch_of(&live);
                let edges = w.edges().unwrap().clone();
                prop_assert_eq!(w.totals.values, scratch.values);
                prop_assert_eq!(w.totals.nulls, scratch.nulls);
                prop_assert_eq!(&w.totals.hist, &direct_hist(&edges, &live));
                // per-bin sums: the running total equals the ring's buckets summed afresh
                let mut afresh = Sketch::new();
                afresh.size_numeric_hist(edges.bins());
                for c in &w.ring {
                    c.fold_into(&mut afresh, Some(&edges), &dd, &mut FoldScratch::default(), true);
                }
                prop_assert_eq!(&afresh.hist, &w.totals.hist);
                for (a, e) in w.totals.hist_sum.iter().zip(&afresh.hist_sum) {
                    prop_assert!((a - e).abs() <= 1e-6 * (1.0 + e.abs()), "{} vs {}", a, e);
                }
                let mut merged = Sketch::new();
                w.merged_current(&mut merged);
                prop_assert_eq!(merged.values, scratch.values);
                prop_assert_eq!(merged.quantile(&dd, 0.5), scratch.quantile(&dd, 0.5));
                prop_assert_eq!(merged.quantile(&dd, 0.0), scratch.quantile(&dd, 0.0));
                prop_assert_eq!(merged.quantile(&dd, 1.0), scratch.quantile(&dd, 1.0));
                prop_assert_eq!(merged.mean(), scratch.mean());
            }
        }

        /// A bin's sum is its count times the median of its values: the
        /// value of rank ⌊(c − 1)/2⌋ among them, as its DDSketch bin's
        /// representative (the exact value at either end of the bucket).
        #[test]
        fn bin_sums_are_count_times_median(xs in prop::collection::vec(-1e3f64..1e3, 1..200)) {
            let dd = dd_config(0.01);
            let edges = Edges::from_ordinals(
                [-100.0, -1.0, 0.5, 20.0, 300.0].iter().map(|&x| ordinal(&dd, x)).collect(), 2);
            let opt: Vec<Option<f64>> = xs.iter().map(|&x| Some(x)).collect();
            let c = Closed::pack(3, &sketch_of(&opt), &mut Vec::new());
            let mut t = Sketch::new();
            t.size_numeric_hist(edges.bins());
            c.fold_into(&mut t, Some(&edges), &dd, &mut FoldScratch::default(), true);
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            for b in 0..edges.bins() {
                let ranks: Vec<usize> = (0..n).filter(|&i| edges.bin_of(ordinal(&dd, sorted[i])) == b).collect();
                prop_assert_eq!(t.hist[b], ranks.len() as u64);
                if ranks.is_empty() {
                    prop_assert_eq!(t.hist_sum[b], 0.0);
                    continue;
                }
                let r = ranks[(ranks.len() - 1) / 2];
                let median = if r == 0 {
                    sorted[0]
                } else if r + 1 == n {
                    sorted[n - 1]
                } else {
                    crate::sketch::quantiles::representative(&dd, ordinal(&dd, sorted[r]))
                };
                prop_assert_eq!(t.hist_sum[b], ranks.len() as f64 * median);
            }
            // and taking it out again leaves nothing
            c.fold_into(&mut t, Some(&edges), &dd, &mut FoldScratch::default(), false);
            prop_assert!(t.hist.iter().all(|&h| h == 0));
            prop_assert!(t.hist_sum.iter().all(|&h| h == 0.0));
        }
    }

    #[test]
    fn a_closed_bucket_keeps_what_it_was_packed_from() {
        let dd = dd_config(0.01);
        let mut s = Sketch::new();
        for (i, x) in [3.5, -2.0, 0.0, 3.5, 1e12, -7e-3].iter().enumerate() {
            s.add_number(*x, ordinal(&dd, *x));
            let id = format!("{:032x}", 0xabcdef0123u64 * (i as u64 + 1));
            s.exemplars.offer_keyed(i as u64, &Offered::new(&id), 3);
        }
        s.add_null();
        s.add_violation();
        s.null_exemplars.offer(&Offered::new("not-a-w3c-id/é"), 3);
        s.high_exemplars
            .offer(&Offered::new("ABCDEF0123456789ABCDEF0123456789"), 3);
        let c = Closed::pack(42, &s, &mut Vec::new());
        assert_eq!(c.bucket, 42);
        assert_eq!(c.counts(), (6, 1, 1));
        assert_eq!(c.bins().collect::<Vec<_>>(), s.quantiles.bins());
        let list = |l| c.exemplars(l).collect::<Vec<_>>();
        let want = |e: &crate::sketch::Exemplars| {
            e.iter_keyed()
                .map(|(k, t)| (k, t.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(list(ExemplarList::Low), want(&s.exemplars));
        assert_eq!(list(ExemplarList::High), want(&s.high_exemplars));
        assert_eq!(list(ExemplarList::Null), want(&s.null_exemplars));
        let mut m = Sketch::new();
        c.merge_into(&mut m);
        assert_eq!(m.quantiles, s.quantiles);
        assert_eq!((m.values, m.nulls, m.type_violations), (6, 1, 1));
        assert_eq!(m.mean(), s.mean());
        // a categorical bucket: counts per category id
        let mut k = Sketch::new();
        for id in [0, 3, 3, 5] {
            k.add_category(id);
        }
        let c = Closed::pack(1, &k, &mut Vec::new());
        assert_eq!(c.categories().collect::<Vec<_>>(), vec![1, 0, 0, 2, 0, 1]);
        // the packed form is small: 4 categories and no exemplars in a few bytes
        assert!(c.heap_bytes() < 16, "{}", c.heap_bytes());
    }

    /// A sparse bucket's highest values are its lowest too: the high list
    /// refers to the low one's ids, and reads back the same.
    #[test]
    fn a_sparse_buckets_high_tail_refers_to_its_low_one() {
        let dd = dd_config(0.01);
        let ids: Vec<String> = (1..=3u64)
            .map(|i| format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let mut s = Sketch::new();
        for (x, id) in [2.0, 2.0, 40.0].iter().zip(&ids) {
            let o = ordinal(&dd, *x);
            let (low, high) = crate::sketch::tail_keys(o);
            s.add_number(*x, o);
            s.exemplars.offer_keyed(low, &Offered::new(id), 3);
            s.high_exemplars.offer_keyed(high, &Offered::new(id), 3);
        }
        let c = Closed::pack(7, &s, &mut Vec::new());
        let want = |e: &crate::sketch::Exemplars| {
            e.iter_keyed()
                .map(|(k, t)| (k, t.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            c.exemplars(ExemplarList::Low).collect::<Vec<_>>(),
            want(&s.exemplars)
        );
        assert_eq!(
            c.exemplars(ExemplarList::High).collect::<Vec<_>>(),
            want(&s.high_exemplars)
        );
        assert_eq!(c.exemplars(ExemplarList::Null).count(), 0);
        // the three ids once (16 bytes each), not twice (~126 bytes then)
        assert!(c.heap_bytes() < 100, "{}", c.heap_bytes());
    }

    #[test]
    fn a_bucket_open_when_the_reference_pins_counts_over_its_edges() {
        let mut w = SeriesWindows::new(10, 2, 0);
        let mut pool = Pool::default();
        let xs: Vec<Option<f64>> = (0..1000).map(|i| Some(i as f64)).collect();
        w.open.push_back(Some(bucket(&xs)));
        w.open.push_back(Some(bucket(&xs)));
        // a bucket opened before the reference is pinned, with no edges yet
        let late = [Some(5.0), Some(995.0), None];
        w.open.push_back(Some(bucket(&late)));
        assert!(!w.close(10, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool));
        assert!(w.close(11, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool));
        let r = w.pinned().unwrap();
        assert_eq!((r.start_ms, r.end_ms), (600_000, 720_000));
        assert_eq!(r.counts.iter().sum::<u64>(), 2000);
        let edges = r.edges.clone().unwrap();
        w.close(12, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool);
        assert_eq!(w.totals.hist, direct_hist(&edges, &late));
        assert_eq!(w.totals.nulls, 1);
    }
}
