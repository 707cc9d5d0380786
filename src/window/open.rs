//! An open bucket: the sketch its values go into, and for a busy one a
//! dense count per quantile bin.
//!
//! A bucket's quantile bins are kept sorted ([`Quantiles`]): a value whose
//! bin is held is found by a binary search (a chain of dependent loads), a
//! new one is inserted, shifting the rest. For a sparse bucket (most of a
//! high-cardinality model's) that is a handful of bins and cheap; a busy
//! one holds hundreds, where the search and the shifting were most of the
//! time of writing a value. Once a bucket holds [`DENSE_FROM_VALUES`]
//! values in [`DENSE_FROM`] bins or more, its values are counted in an
//! array indexed by their bin's ordinal over the span seen (and as much
//! again around it), if that fits in [`DENSE_SPAN`] ordinals; an ordinal
//! outside it widens the array, or past that goes to the sorted bins. The counts join the sorted bins when the bucket is read
//! — closed, or written to a checkpoint — through [`Open::settled`], the
//! only way to its sketch's quantiles.
//!
//! A series whose last bucket was busy counts its next one densely from
//! the first value, over the spans that one ended with ([`Spans`], kept
//! by the series): its first values are not searched for and inserted
//! one by one, nor the counts built from them again.

use crate::sketch::{Sketch, ValueKind};

/// Bins, and values, a bucket holds before its values are counted densely
/// (a search over fewer bins is a few steps; a bucket of few values would
/// not repay the counts' allocation).
const DENSE_FROM: usize = 4;
const DENSE_FROM_VALUES: u64 = 32;
/// Most ordinals the dense counts span (8 KiB; at 1 % accuracy the values
/// of a bin at each end are a factor of e^80 apart).
const DENSE_SPAN: usize = 4096;

/// A dense count: 16 bits, half the room of 32 (the counts of the open
/// buckets of every series are what a write reaches for; halved, more of
/// them stay in the caches). A count that fills goes to the sorted bins
/// and counts on from 0 — once per 65,535 values of one bin in one bucket.
type Count = u16;

/// Laid out as written, on a line of its own: the dense counts' bases
/// first (a line), then the sketch, whose fields a numeric write reaches
/// come first ([`Sketch`]) — four lines in all where the compiler's order
/// spread them over six (`tests::a_numeric_write_reaches_four_lines`).
#[derive(Clone, Default)]
#[repr(C, align(64))]
pub struct Open {
    /// Positive values' ordinals, and negative values' (by their magnitude,
    /// `−ordinal`): the two sides are ~2^31 ordinals apart (`sketch::ordinal`),
    /// so a feature of either sign has a span on each. Zero has a bin.
    dense: [Dense; 2],
    /// Counts, nulls, moments and exemplars are current; its quantiles
    /// are not while `dense` holds counts (read them through [`Open::settled`]).
    pub(super) sketch: Sketch,
}

/// Counts per magnitude `base + i`, not yet in the sketch's bins.
#[derive(Clone, Default)]
#[repr(C)]
struct Dense {
    base: i64,
    counts: Vec<Count>,
}

impl Dense {
    /// Counts over magnitudes `lo..=hi` (covering what it counts over now),
    /// its counts kept where they are.
    fn widen(&mut self, lo: i64, hi: i64) {
        let len = (hi - lo + 1) as usize;
        if self.counts.is_empty() {
            self.base = lo;
            self.counts.resize(len, 0);
        } else if self.base != lo || self.counts.len() != len {
            debug_assert!(lo <= self.base && self.base + self.counts.len() as i64 - 1 <= hi);
            let mut counts = vec![0; len];
            let at = (self.base - lo) as usize;
            counts[at..at + self.counts.len()].copy_from_slice(&self.counts);
            (self.base, self.counts) = (lo, counts);
        }
    }
}

/// Where a bucket counted densely, per side (positive, negative): the
/// first magnitude and how many (0: that side was not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    base: [i64; 2],
    len: [u16; 2],
}

const _: () = assert!(DENSE_SPAN <= u16::MAX as usize);

/// The side of an ordinal and its magnitude there.
#[inline]
fn side(ordinal: i64) -> (usize, i64) {
    if ordinal >= 0 {
        (0, ordinal)
    } else {
        (1, ordinal.wrapping_neg())
    }
}

impl Open {
    /// Adds a number, whose DDSketch bin is `ordinal`. The dense count is
    /// the per-event path (always inlined into it: left to the compiler,
    /// whether it was depended on how the crate's code fell into codegen
    /// units, and an unrelated change took it out — ~340 instructions an
    /// event more).
    #[inline(always)]
    pub fn add_number(&mut self, x: f64, ordinal: i64) {
        let (side, m) = side(ordinal);
        let dense = &mut self.dense[side];
        let k = m.wrapping_sub(dense.base) as u64;
        if let Some(c) = dense.counts.get_mut(k as usize)
            && *c < Count::MAX
        {
            *c += 1;
            self.counted(x);
            return;
        }
        if !dense.counts.is_empty() {
            return self.add_outside(x, side, m);
        }
        self.sketch.add_number(x, ordinal);
        if self.sketch.values >= DENSE_FROM_VALUES
            && self.sketch.quantiles.bins().len() >= DENSE_FROM
            && ordinal != 0
        {
            self.start_dense(side, m);
        }
    }

    /// A busy bucket starts counting one side densely, over the span of its
    /// bins there around `m` (the value just added) that fits.
    #[cold]
    fn start_dense(&mut self, side: usize, m: i64) {
        let reach = (DENSE_SPAN / 2 - 1) as i64;
        let near = |b: &(i64, u64)| {
            let (s, bm) = self::side(b.0);
            (s == side && b.0 != 0 && bm.abs_diff(m) <= reach as u64).then_some(bm)
        };
        let bins = self.sketch.quantiles.bins();
        let (lo, hi) = bins
            .iter()
            .filter_map(near)
            .fold((m, m), |(lo, hi), bm| (lo.min(bm), hi.max(bm)));
        self.densify(side, lo, hi);
    }

    /// [`Open::add_number`] for a value outside its side's dense span, or
    /// whose count there is full.
    #[cold]
    fn add_outside(&mut self, x: f64, side: usize, m: i64) {
        let dense = &mut self.dense[side];
        let (base, last) = (
            dense.base,
            dense.base.saturating_add(dense.counts.len() as i64 - 1),
        );
        if (base..=last).contains(&m) {
            // its count is full: that goes to the bins, and it counts on afresh
            let c = std::mem::take(&mut dense.counts[(m - base) as usize]);
            let ordinal = if side == 0 { m } else { -m };
            self.sketch
                .quantiles
                .add_counts(std::iter::once((ordinal, u64::from(c))));
        } else if m == 0 || !self.densify(side, base.min(m), last.max(m)) {
            // zero, or too far out to count densely: a bin of its own
            let ordinal = if side == 0 { m } else { m.wrapping_neg() };
            self.sketch.add_number(x, ordinal);
            return;
        }
        let dense = &mut self.dense[side];
        dense.counts[(m - dense.base) as usize] += 1;
        self.counted(x);
    }

    /// A value counted densely: the sketch's count, moments and extremes.
    #[inline]
    fn counted(&mut self, x: f64) {
        self.sketch.values += 1;
        self.sketch.moments.add(x);
        self.sketch.quantiles.note(x);
    }

    /// Counts one side densely over magnitudes `first..=last` and as much
    /// again around them, if that fits in [`DENSE_SPAN`] (else changes
    /// nothing and says so): its counts so far and the bins of that span
    /// move into the new counts.
    fn densify(&mut self, side: usize, first: i64, last: i64) -> bool {
        let span = last.abs_diff(first).saturating_add(1);
        if span > DENSE_SPAN as u64 {
            return false;
        }
        self.settle();
        let len = (2 * span as usize).clamp(4 * DENSE_FROM, DENSE_SPAN);
        let base = first
            .saturating_sub(((len as u64 - span) / 2) as i64)
            .max(1);
        let counts = &mut self.dense[side].counts;
        counts.clear();
        counts.resize(len, 0);
        self.sketch.quantiles.take_counts(|o, c| {
            let (s, m) = self::side(o);
            let k = m.wrapping_sub(base) as u64;
            match counts.get_mut(k as usize) {
                Some(slot) if s == side && c < u64::from(Count::MAX) => {
                    *slot = c as Count;
                    true
                }
                _ => false,
            }
        });
        self.dense[side].base = base;
        true
    }

    /// Moves the dense counts into the sketch's bins, in ascending order:
    /// the negative side from its largest magnitude, then the positive.
    fn settle(&mut self) {
        if self.dense.iter().all(|d| d.counts.is_empty()) {
            return;
        }
        let [pos, neg] = &mut self.dense;
        HELD.with_borrow_mut(|held| {
            held.clear();
            push_held(&neg.counts, true, |i| -(neg.base + i as i64), held);
            push_held(&pos.counts, false, |i| pos.base + i as i64, held);
            self.sketch.quantiles.add_ascending_counts(held);
        });
        pos.counts.fill(0);
        neg.counts.fill(0);
    }

    /// Cache hints for the sketch itself.
    #[inline]
    pub fn prefetch(&self) {
        crate::sketch::prefetch_slice(std::slice::from_ref(self), usize::MAX);
    }

    /// Cache hints for what a write reads behind the sketch: the count
    /// of the value `obs` (a busy bucket's dense count, a category's), its
    /// bins and its exemplars (none given: a close's, all of them).
    #[inline]
    pub fn prefetch_contents(&self, obs: Option<super::Observation>) {
        use super::Observation;
        use crate::sketch::prefetch;
        let s = &self.sketch;
        match obs {
            Some(Observation::Number { ordinal, .. }) => {
                let (side, m) = side(ordinal);
                let dense = &self.dense[side];
                match dense.counts.get(m.wrapping_sub(dense.base) as u64 as usize) {
                    Some(c) => prefetch(c),
                    None => prefetch(s.quantiles.bins().as_ptr()),
                }
            }
            Some(Observation::Category(id)) => prefetch(s.hist.as_ptr().wrapping_add(id)),
            Some(_) => {}
            None => prefetch(s.quantiles.bins().as_ptr()),
        }
        match obs {
            Some(Observation::Null | Observation::Violation) => s.null_exemplars.prefetch(),
            _ => {
                s.exemplars.prefetch();
                s.high_exemplars.prefetch();
            }
        }
    }

    /// Adds the values of `other`, a bucket of another series of the same
    /// feature (`kind`), and its exemplars as `max_exemplars` keeps them:
    /// this one then holds what it would had they come to it.
    ///
    /// Its dense counts take `other`'s as they are, added side by side
    /// (widened to cover both, within [`DENSE_SPAN`]), and its bins take
    /// `other`'s sorted ones: neither is settled here. The overall series'
    /// bucket absorbs the carrier's slices' (`SeriesWindows::absorb_front`),
    /// busy buckets of one feature whose spans are alike: each settled and
    /// its bins merged into the growing sorted list was ~370 instructions
    /// an event of the peers stream's engine thread (`Quantiles::add_counts`).
    pub fn absorb(&mut self, other: &mut Open, kind: Option<ValueKind>, max_exemplars: usize) {
        if self.add_dense_of(other) {
            // `other`'s sketch but for its dense counts, now this one's
            let (s, o) = (&mut self.sketch, &other.sketch);
            s.moments.merge(&o.moments);
            s.merge_counts(o);
            s.quantiles.merge_noted(&o.quantiles);
        } else {
            self.settle();
            self.sketch.merge(other.settled());
        }
        let (s, o) = (&mut self.sketch, &other.sketch);
        if kind == Some(ValueKind::Categorical) {
            if max_exemplars > 0 {
                s.exemplars.merge_per_category(&o.exemplars);
            }
        } else {
            s.exemplars.merge_keyed(&o.exemplars, max_exemplars);
            s.high_exemplars
                .merge_keyed(&o.high_exemplars, max_exemplars);
        }
        s.null_exemplars
            .merge_keyed(&o.null_exemplars, max_exemplars);
    }

    /// Adds `other`'s dense counts to this one's, each side widened to
    /// cover both spans; false (nothing changed) where a side's would not
    /// fit in [`DENSE_SPAN`]. A sum past [`Count::MAX`] sends this one's
    /// count to the bins, as a write that fills it does.
    fn add_dense_of(&mut self, other: &Open) -> bool {
        let mut spans = [None; 2];
        for (side, span) in spans.iter_mut().enumerate() {
            let (od, sd) = (&other.dense[side], &self.dense[side]);
            if od.counts.is_empty() {
                continue;
            }
            let last = |d: &Dense| d.base + d.counts.len() as i64 - 1;
            let (lo, hi) = if sd.counts.is_empty() {
                (od.base, last(od))
            } else {
                (sd.base.min(od.base), last(sd).max(last(od)))
            };
            if hi.abs_diff(lo) >= DENSE_SPAN as u64 {
                return false;
            }
            *span = Some((lo, hi));
        }
        for (side, span) in spans.into_iter().enumerate() {
            let Some((lo, hi)) = span else { continue };
            let Open { dense, sketch } = self;
            let d = &mut dense[side];
            d.widen(lo, hi);
            let od = &other.dense[side];
            let at = (od.base - d.base) as usize;
            let into = &mut d.counts[at..at + od.counts.len()];
            let max = u32::from(Count::MAX);
            // or-ed whole (vectorized): a sum past the count's room is rare
            let full = into
                .iter()
                .zip(&od.counts)
                .fold(false, |f, (&a, &b)| f | (u32::from(a) + u32::from(b) > max));
            if !full {
                for (a, &b) in into.iter_mut().zip(&od.counts) {
                    *a += b;
                }
                continue;
            }
            for (i, (a, &b)) in into.iter_mut().zip(&od.counts).enumerate() {
                if u32::from(*a) + u32::from(b) > max {
                    let m = d.base + (at + i) as i64;
                    let ordinal = if side == 0 { m } else { -m };
                    let full = std::mem::replace(a, b);
                    sketch
                        .quantiles
                        .add_counts(std::iter::once((ordinal, u64::from(full))));
                } else {
                    *a += b;
                }
            }
        }
        true
    }

    /// The bucket's sketch, its quantiles complete.
    pub fn settled(&mut self) -> &Sketch {
        self.settle();
        &self.sketch
    }

    /// Where its values are counted densely, if it holds enough of them
    /// that a bucket of the same series is likely to as well (none
    /// otherwise: a series gone quiet counts its next bucket sparsely).
    pub fn spans(&self) -> Spans {
        let mut s = Spans::default();
        if self.sketch.values >= DENSE_FROM_VALUES {
            for (side, d) in self.dense.iter().enumerate() {
                s.base[side] = d.base;
                s.len[side] = d.counts.len() as u16;
            }
        }
        s
    }

    /// Counts densely over `spans` from the first value: a bucket just
    /// taken (empty, no dense counts), of a series whose last bucket
    /// ended with them. What it settles to is the same either way.
    pub fn arm(&mut self, spans: &Spans) {
        debug_assert!(self.sketch.values == 0 && self.dense.iter().all(|d| d.counts.is_empty()));
        for (side, d) in self.dense.iter_mut().enumerate() {
            if spans.len[side] > 0 {
                d.base = spans.base[side];
                d.counts.resize(usize::from(spans.len[side]), 0);
            }
        }
    }

    /// Empties it for reuse, keeping the sketch's allocations (not the
    /// dense counts': a recycled bucket may next be a sparse one).
    pub fn reset(&mut self) {
        self.sketch.reset();
        self.dense = Default::default();
        // its bins' room is most often the thread's buffer it settled with
        // (swapped in: `Quantiles::add_ascending_counts`), the buffer then
        // holding this sketch's old room: the larger goes back to the
        // buffer, which else grew again by doublings at the next settle
        // (~35,000 reallocations in 200,000 events of the peers stream)
        HELD.with_borrow_mut(|held| self.sketch.quantiles.trade_room(held));
    }
}

std::thread_local! {
    /// [`Open::settle`]'s (ordinal, count) pairs, ascending, before they
    /// join the sorted bins (kept for the thread's next: no allocation once
    /// grown).
    static HELD: std::cell::RefCell<Vec<(i64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Pushes each count that is not 0 as (`ordinal(index)`, count), by index
/// ascending or (`descending`) the other way: a span is mostly 0 (the room
/// around what a bucket held), passed over 16 at a time. A plain loop, not
/// an iterator handed to the bins (as one, its steps were calls: ~90
/// instructions a bin).
#[inline]
fn push_held(
    counts: &[Count],
    descending: bool,
    ordinal: impl Fn(usize) -> i64,
    out: &mut Vec<(i64, u64)>,
) {
    let chunks = counts.len().div_ceil(16);
    for k in 0..chunks {
        let k = if descending { chunks - 1 - k } else { k };
        let chunk = &counts[k * 16..counts.len().min(k * 16 + 16)];
        // or-ed whole (vectorized), not tested one by one
        if chunk.iter().fold(0, |a, &c| a | c) == 0 {
            continue;
        }
        for j in 0..chunk.len() {
            let j = if descending { chunk.len() - 1 - j } else { j };
            if chunk[j] > 0 {
                out.push((ordinal(k * 16 + j), u64::from(chunk[j])));
            }
        }
    }
}

impl From<Sketch> for Open {
    fn from(sketch: Sketch) -> Open {
        Open {
            sketch,
            dense: Default::default(),
        }
    }
}

/// Written as its settled sketch (a checkpoint's format does not know the
/// dense counts), read back as one.
impl serde::Serialize for Open {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.dense.iter().all(|d| d.counts.iter().all(|&c| c == 0)) {
            return self.sketch.serialize(s);
        }
        let mut settled = self.clone();
        settled.settle();
        settled.sketch.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Open {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Sketch::deserialize(d).map(Open::from)
    }
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("values", &self.sketch.values)
            .field(
                "dense_spans",
                &[self.dense[0].counts.len(), self.dense[1].counts.len()],
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An open bucket starts a line, its dense counts' headers fill it,
    /// and its sketch starts the next: with the sketch's three
    /// (`sketch::tests::a_numeric_write_reaches_three_lines`), a numeric
    /// write reaches four lines of it.
    #[test]
    fn a_numeric_write_reaches_four_lines() {
        use std::mem::offset_of;
        assert_eq!(align_of::<Open>(), 64);
        assert_eq!(offset_of!(Open, dense), 0);
        assert!(size_of::<[Dense; 2]>() <= 64);
        assert_eq!(offset_of!(Open, sketch), 64);
    }

    /// Ordinals of numbers: mostly near one another, some far, on both
    /// sides as `sketch::ordinal` places them (2^31 apart).
    fn ordinals() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => -40i64..40,
            1 => -3000i64..3000,
            4 => (1i64 << 31)..(1i64 << 31) + 200,
            4 => -(1i64 << 31) - 200..-(1i64 << 31),
        ]
    }

    proptest! {
        /// Buckets absorbed into one (busy and sparse, armed from a last
        /// bucket or not, spans too far apart to count densely together)
        /// settle to the sketch of all their values, and each absorbed one
        /// to its own.
        #[test]
        fn absorbed_buckets_settle_to_the_direct_sketch(
            own in prop::collection::vec(ordinals(), 0..100),
            parts in prop::collection::vec(
                (
                    prop::collection::vec(ordinals(), 0..300),
                    prop::collection::vec(ordinals(), 0..100),
                    prop_oneof![3 => Just(0i64), 1 => Just(20_000i64)],
                ),
                1..5,
            ),
        ) {
            let shifted = |o: i64, by: i64| if o >= 0 { o + by } else { o - by };
            let mut into = Open::default();
            let mut direct = Sketch::new();
            for &o in &own {
                into.add_number(o as f64, o);
                direct.add_number(o as f64, o);
            }
            let mut absorbed = Vec::new();
            for (ords, last, by) in &parts {
                let mut before = Open::default();
                for &o in last {
                    let o = shifted(o, *by);
                    before.add_number(o as f64, o);
                }
                let mut open = Open::default();
                open.arm(&before.spans());
                let mut alone = Sketch::new();
                for &o in ords {
                    let o = shifted(o, *by);
                    open.add_number(o as f64, o);
                    alone.add_number(o as f64, o);
                    direct.add_number(o as f64, o);
                }
                into.absorb(&mut open, Some(ValueKind::Numeric), 4);
                absorbed.push((open, alone));
            }
            let settled = into.settled();
            prop_assert_eq!(&settled.quantiles, &direct.quantiles);
            prop_assert_eq!(settled.values, direct.values);
            for (mut open, alone) in absorbed {
                prop_assert_eq!(&open.settled().quantiles, &alone.quantiles);
            }
        }
    }

    /// Dense counts that sum past a count's room: this one's goes to the
    /// bins, the other's counts on, and the settled bins hold both.
    #[test]
    fn absorbed_counts_past_the_room_go_to_the_bins() {
        let busy = |sign: i64| {
            let mut open = Open::default();
            for o in 0..DENSE_FROM_VALUES as i64 {
                open.add_number(o as f64, sign * (o % DENSE_FROM as i64 + 1));
            }
            open
        };
        for sign in [1, -1] {
            let side = usize::from(sign < 0);
            let (mut into, mut other) = (busy(sign), busy(sign));
            for open in [&mut into, &mut other] {
                let k = (3 - open.dense[side].base) as usize;
                open.dense[side].counts[k] = 40_000;
            }
            into.absorb(&mut other, Some(ValueKind::Numeric), 4);
            let bins = into.settled().quantiles.bins().to_vec();
            assert_eq!(bins.iter().find(|b| b.0 == sign * 3).unwrap().1, 80_000);
            assert_eq!(bins.iter().find(|b| b.0 == sign).unwrap().1, 16);
        }
    }

    /// A busy bucket's spans arm its series' next; a quiet one's do not.
    #[test]
    fn a_busy_bucket_arms_the_next() {
        let mut busy = Open::default();
        for o in 0..DENSE_FROM_VALUES as i64 {
            busy.add_number(o as f64, 1 + o % 8);
        }
        let spans = busy.spans();
        assert!(spans.len[0] > 0 && spans.len[1] == 0, "{spans:?}");
        let mut next = Open::default();
        next.arm(&spans);
        next.add_number(3.0, 3);
        assert!(
            next.sketch.quantiles.bins().is_empty(),
            "counted densely from the first value"
        );
        assert_eq!(next.settled().quantiles.bins(), [(3, 1)]);
        let mut quiet = Open::default();
        quiet.add_number(3.0, 3);
        assert_eq!(quiet.spans(), Spans::default());
    }

    proptest! {
        /// Whatever the values (busy and sparse, spans too wide to count
        /// densely, counts read midway as a checkpoint does), and whatever
        /// the series' last bucket held (its spans counted in from the
        /// first value, or none), the settled sketch is the one the values
        /// make directly, and is written as it.
        #[test]
        fn settles_to_the_direct_sketch(
            mut ords in prop::collection::vec(ordinals(), 1..800),
            last in prop::collection::vec(ordinals(), 0..200),
            // at most one value at either end of the ordinals (too wide a span to count densely)
            extreme in prop::option::of((0usize..800, prop_oneof![Just(i64::MIN + 1), Just(i64::MAX)])),
            read_at in prop::collection::vec(0usize..800, 0..3),
        ) {
            if let Some((at, o)) = extreme {
                ords.insert(at.min(ords.len()), o);
            }
            let mut before = Open::default();
            for &o in &last {
                before.add_number(o as f64, o);
            }
            let spans = before.spans();
            let mut open = Open::default();
            open.arm(&spans);
            for side in 0..2 {
                prop_assert_eq!(open.dense[side].counts.len(), usize::from(spans.len[side]));
            }
            let mut direct = Sketch::new();
            for (i, &o) in ords.iter().enumerate() {
                open.add_number(o as f64, o);
                direct.add_number(o as f64, o);
                if read_at.contains(&i) {
                    let written = postcard::to_allocvec(&open).unwrap();
                    prop_assert_eq!(written, postcard::to_allocvec(&direct).unwrap());
                    let back: Open = postcard::from_bytes(&postcard::to_allocvec(&open).unwrap()).unwrap();
                    prop_assert_eq!(back.sketch.quantiles.bins(), direct.quantiles.bins());
                }
            }
            let settled = open.settled();
            prop_assert_eq!(settled.quantiles.bins(), direct.quantiles.bins());
            prop_assert_eq!(&settled.quantiles, &direct.quantiles);
            prop_assert_eq!(settled.values, direct.values);
            prop_assert_eq!(settled.moments, direct.moments);
            // settled twice, nothing counted twice
            let again = open.settled().quantiles.clone();
            prop_assert_eq!(&again, &direct.quantiles);
        }
    }

    /// A bin's count fills again and again (400,000 values in eight bins,
    /// one on either side past 2^16, read midway as a checkpoint
    /// does): the settled sketch is the one the values make directly.
    #[test]
    fn counts_that_fill_again_and_again_settle_to_the_direct_sketch() {
        let mut open = Open::default();
        let mut direct = Sketch::new();
        for i in 0..400_000i64 {
            let o = [5, 6, 6, 6, 6, 6, 7, 8, -8, -8, -8, -8, -9, -10, -11, 6][(i % 16) as usize];
            open.add_number(o as f64, o);
            direct.add_number(o as f64, o);
            if i == 131_072 {
                let written = postcard::to_allocvec(&open).unwrap();
                assert_eq!(written, postcard::to_allocvec(&direct).unwrap());
            }
        }
        assert!(open.dense.iter().all(|d| !d.counts.is_empty()), "{open:?}");
        let settled = open.settled();
        assert_eq!(settled.quantiles.bins(), direct.quantiles.bins());
        assert_eq!(&settled.quantiles, &direct.quantiles);
        assert_eq!(settled.values, 400_000);
        let count = |o: i64| {
            settled
                .quantiles
                .bins()
                .iter()
                .find(|b| b.0 == o)
                .unwrap()
                .1
        };
        assert_eq!((count(6), count(-8)), (150_000, 100_000));
    }

    #[test]
    fn a_full_count_goes_to_the_bins() {
        for sign in [1, -1] {
            let side = usize::from(sign < 0);
            let mut open = Open::default();
            for o in 0..DENSE_FROM_VALUES as i64 {
                open.add_number(o as f64, sign * (o % DENSE_FROM as i64));
            }
            assert!(!open.dense[side].counts.is_empty());
            // as if 2^16 - 1 values had landed in bin ±3 (its one so far moved into the counts)
            let k = (3 - open.dense[side].base) as usize;
            open.dense[side].counts[k] = Count::MAX;
            open.add_number(3.0, sign * 3);
            let bins = open.settled().quantiles.bins().to_vec();
            let three = bins.iter().find(|b| b.0 == sign * 3).unwrap();
            assert_eq!(three.1, u64::from(Count::MAX) + 1);
            // zero kept its bin
            assert_eq!(bins.iter().find(|b| b.0 == 0).unwrap().1, 8);
        }
    }
}
