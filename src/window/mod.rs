//! Event-time windows of one series: the open buckets still accepting
//! events, the reference being pinned, and the sliding current window kept
//! as a ring of closed buckets plus running totals.
//!
//! A slide adds the closing bucket's counts to the totals and subtracts the
//! bucket that leaves: O(bins), not O(window). Moments and quantiles are
//! merged from the ring when the series is evaluated.

use std::collections::VecDeque;

use sketches_ddsketch::Config as DdConfig;

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
    open: VecDeque<Option<Box<Sketch>>>,
    reference: RefState,
    /// Closed buckets of the current window, oldest first.
    ring: VecDeque<(i64, Box<Sketch>)>,
    /// Integer parts of the ring's sum.
    totals: Sketch,
}

/// One value as a series' bucket records it.
#[derive(Clone, Copy, Debug)]
pub enum Observation {
    /// A missing value.
    Null,
    /// A number, with its DDSketch bin (`sketch::ordinal`).
    Number { x: f64, ordinal: i64 },
    /// A category id of the feature (0 is the overflow).
    Category(usize),
    /// A value of the wrong type for the feature.
    Violation,
}

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
        }
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
    #[allow(clippy::vec_box)]
    pub fn record(
        &mut self,
        idx: usize,
        obs: Observation,
        trace_id: &str,
        max_exemplars: usize,
        dd: &DdConfig,
        pool: &mut Vec<Box<Sketch>>,
    ) {
        if self.open.len() <= idx {
            self.open.resize_with(idx + 1, || None);
        }
        let pinned = match &self.reference {
            RefState::Pinned(r) => Some(&**r),
            RefState::WarmingUp { .. } => None,
        };
        let sketch = self.open[idx].get_or_insert_with(|| {
            let mut s = pool.pop().unwrap_or_default();
            if let Some(e) = pinned.and_then(|r| r.edges.as_ref()) {
                s.size_numeric_hist(e.bins());
            }
            s
        });
        // exemplars are offered whatever the reference: which of them are
        // unusual is decided when an alert is made, so buckets opened
        // before the reference was pinned (how many depends on batching)
        // keep the same ones
        match obs {
            Observation::Null => {
                sketch.add_null();
                sketch.null_exemplars.offer(trace_id, max_exemplars);
            }
            Observation::Number { x, ordinal } => {
                match pinned.and_then(|r| r.edges.as_ref()) {
                    Some(edges) => sketch.add_number(x, Some(edges.bin_of(ordinal)), dd),
                    None => sketch.add_number(x, None, dd),
                }
                let (low, high) = crate::sketch::tail_keys(ordinal);
                sketch.exemplars.offer_keyed(low, trace_id, max_exemplars);
                sketch
                    .high_exemplars
                    .offer_keyed(high, trace_id, max_exemplars);
            }
            Observation::Category(id) => {
                sketch.add_category(id);
                if max_exemplars > 0 {
                    sketch.exemplars.offer_per_category(id as u32, trace_id);
                }
            }
            Observation::Violation => {
                sketch.add_violation();
                sketch.null_exemplars.offer(trace_id, max_exemplars);
            }
        }
    }

    /// Where the reference stands: warming up, or pinned.
    pub fn reference(&self) -> &RefState {
        &self.reference
    }

    /// The current window's running totals (counts, nulls, histogram).
    pub fn totals(&self) -> &Sketch {
        &self.totals
    }

    /// The current window's closed buckets, oldest first, with their bucket numbers.
    pub fn ring(&self) -> impl DoubleEndedIterator<Item = (i64, &Sketch)> + ExactSizeIterator {
        self.ring.iter().map(|(b, s)| (*b, &**s))
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

    /// Closes the oldest open bucket (`bucket`), sliding the window to end at
    /// it. Returns true when this close pinned the reference. (Sketches are
    /// boxed: they move between open buckets, the ring and the pool.)
    #[allow(clippy::vec_box)]
    pub fn close(
        &mut self,
        bucket: i64,
        window_buckets: i64,
        kind: Option<ValueKind>,
        bins: &BinSpec,
        bucket_ms: i64,
        pool: &mut Vec<Box<Sketch>>,
    ) -> bool {
        let closing = self.open.pop_front().flatten();
        let mut pinned_now = false;
        match &mut self.reference {
            RefState::WarmingUp { start, end, acc } => {
                if let Some(s) = closing {
                    acc.merge(&s);
                    recycle(pool, s);
                }
                if bucket + 1 >= *end {
                    let (start_ms, end_ms) = (*start * bucket_ms, *end * bucket_ms);
                    let acc = std::mem::take(&mut **acc);
                    self.pin(
                        Reference::build(acc, start_ms, end_ms, kind, bins),
                        &bins.dd,
                    );
                    pinned_now = true;
                }
            }
            RefState::Pinned(_) => {
                if let Some(mut s) = closing {
                    if !s.hist.is_empty() && kind == Some(ValueKind::Numeric) {
                        fill_bin_sums(&mut s);
                    }
                    self.totals.merge_counts(&s);
                    self.ring.push_back((bucket, s));
                }
            }
        }
        while let Some((b, _)) = self.ring.front() {
            if *b > bucket - window_buckets {
                break;
            }
            if let Some((_, s)) = self.ring.pop_front() {
                self.totals.subtract_counts(&s);
                recycle(pool, s);
            }
        }
        pinned_now
    }

    /// Pins a reference and fills in histograms of buckets opened before the
    /// edges were known (exactly: edges sit on DDSketch bin boundaries).
    pub fn pin(&mut self, r: Reference, dd: &DdConfig) {
        if let Some(edges) = &r.edges {
            for s in self.open.iter_mut().flatten() {
                s.size_numeric_hist(edges.bins());
                if let Some(q) = &s.quantiles {
                    s.hist = edges.counts_from_sketch(dd, q);
                }
            }
            self.totals.size_numeric_hist(edges.bins());
        }
        self.reference = RefState::Pinned(Box::new(r));
    }

    /// Merges the ring into one sketch with moments and quantiles.
    pub fn merged_current(&self, out: &mut Sketch) {
        *out = Sketch::new();
        for (_, s) in &self.ring {
            out.merge(s);
        }
    }

    /// Event time at which the current window starts (its oldest bucket).
    pub fn window_start_bucket(&self) -> Option<i64> {
        self.ring.front().map(|(b, _)| *b)
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
        match (kind, &r.sketch.quantiles) {
            (Some(ValueKind::Numeric), Some(q)) => {
                let edges = Edges::from_reference(&bins.dd, q, bins.coarse, bins.fine);
                r.counts = edges.counts_from_sketch(&bins.dd, q);
                edges.coarse(&r.counts, &mut r.coarse);
                r.quantiles = crate::drift::numeric::quantile_levels(WASSERSTEIN_LEVELS)
                    .map(|l| q.quantile(l).ok().flatten().unwrap_or(0.0))
                    .collect();
                r.edges = Some(edges);
            }
            (Some(ValueKind::Numeric), None) => {
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

/// Fills a bucket's per-bin sums from its own sketch: each bin's count
/// times the median of its values (within the sketch's relative accuracy).
/// Every bucket gets the same treatment when it closes, so the Wasserstein
/// distance does not depend on which buckets were open when the reference
/// was pinned (that depends on how partitions interleave).
pub fn fill_bin_sums(s: &mut Sketch) {
    let n: u64 = s.hist.iter().sum();
    s.hist_sum.clear();
    s.hist_sum.resize(s.hist.len(), 0.0);
    let Some(q) = &s.quantiles else { return };
    let mut before = 0u64;
    for (i, &c) in s.hist.iter().enumerate() {
        if c > 0 {
            let mid = before as f64 + (c as f64 - 1.0) / 2.0;
            let level = if n > 1 { mid / (n - 1) as f64 } else { 0.0 };
            let median = q
                .quantile(level.clamp(0.0, 1.0))
                .ok()
                .flatten()
                .unwrap_or(0.0);
            s.hist_sum[i] = c as f64 * median;
        }
        before += c;
    }
}

#[allow(clippy::vec_box)]
fn recycle(pool: &mut Vec<Box<Sketch>>, mut s: Box<Sketch>) {
    if pool.len() < 4096 {
        s.reset();
        pool.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::{dd_config, ordinal};
    use proptest::prelude::*;

    fn bins() -> BinSpec {
        BinSpec {
            coarse: 4,
            fine: 8,
            dd: dd_config(0.01),
        }
    }

    /// A bucket's sketch of `xs` (None = null) over the series' edges, if any.
    fn bucket(w: &SeriesWindows, xs: &[Option<f64>]) -> Box<Sketch> {
        let dd = dd_config(0.01);
        let mut s = Box::new(Sketch::new());
        let edges = w.edges().cloned();
        if let Some(e) = &edges {
            s.size_numeric_hist(e.bins());
        }
        for x in xs {
            match x {
                Some(x) => {
                    s.add_number(*x, edges.as_ref().map(|e| e.bin_of(ordinal(&dd, *x))), &dd)
                }
                None => s.add_null(),
            }
        }
        s
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
            let mut w = SeriesWindows::new(0, warmup, 0);
            let mut pool = Vec::new();
            let mut closed: Vec<(i64, Vec<Option<f64>>)> = Vec::new();
            for (b, xs) in buckets.iter().enumerate() {
                let b = b as i64;
                w.open.push_back(Some(bucket(&w, xs)));
                let pinned_before = w.pinned().is_some();
                w.close(b, window, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool);
                if !pinned_before {
                    continue;
                }
                closed.push((b, xs.clone()));
                let live: Vec<Option<f64>> = closed.iter().filter(|(cb, _)| *cb > b - window).flat_map(|(_, xs)| xs.clone()).collect();
                let scratch = bucket(&w, &live);
                prop_assert_eq!(w.totals.values, scratch.values);
                prop_assert_eq!(w.totals.nulls, scratch.nulls);
                prop_assert_eq!(&w.totals.hist, &scratch.hist);
                // per-bin sums: the running total equals the ring's buckets summed afresh
                let mut sums = vec![0.0f64; w.totals.hist_sum.len()];
                for (_, b) in &w.ring {
                    for (x, y) in sums.iter_mut().zip(&b.hist_sum) {
                        *x += y;
                    }
                }
                for (a, e) in w.totals.hist_sum.iter().zip(&sums) {
                    prop_assert!((a - e).abs() <= 1e-6 * (1.0 + e.abs()), "{} vs {}", a, e);
                }
                let mut merged = Sketch::new();
                w.merged_current(&mut merged);
                prop_assert_eq!(merged.values, scratch.values);
                prop_assert_eq!(merged.quantile(0.5), scratch.quantile(0.5));
            }
        }
    }

    #[test]
    fn reference_pins_after_warmup_and_backfills_open_buckets() {
        let dd = dd_config(0.01);
        let mut w = SeriesWindows::new(10, 2, 0);
        let mut pool = Vec::new();
        let xs: Vec<Option<f64>> = (0..1000).map(|i| Some(i as f64)).collect();
        w.open.push_back(Some(bucket(&w, &xs)));
        w.open.push_back(Some(bucket(&w, &xs)));
        // a bucket opened before the reference is pinned, with no edges yet
        w.open
            .push_back(Some(bucket(&w, &[Some(5.0), Some(995.0), None])));
        assert!(!w.close(10, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool));
        assert!(w.close(11, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool));
        let r = w.pinned().unwrap();
        assert_eq!((r.start_ms, r.end_ms), (600_000, 720_000));
        assert_eq!(r.counts.iter().sum::<u64>(), 2000);
        let edges = r.edges.clone().unwrap();
        let open = w.open[0].as_ref().unwrap();
        let mut want = vec![0u64; edges.bins()];
        want[edges.bin_of(ordinal(&dd, 5.0))] += 1;
        want[edges.bin_of(ordinal(&dd, 995.0))] += 1;
        assert_eq!(open.hist, want);
        w.close(12, 5, Some(ValueKind::Numeric), &bins(), 60_000, &mut pool);
        assert_eq!(w.totals.hist, want);
        assert_eq!(w.totals.nulls, 1);
    }
}
