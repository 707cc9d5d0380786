//! A DDSketch whose bins are ours to read: counts per DDSketch bin
//! (`ordinal`, sketches-ddsketch's key mapping), sorted, with the exact
//! minimum and maximum. Quantiles are answered as sketches-ddsketch answers
//! them (rank `⌊q·(n−1)⌋`, the bin's representative value, the exact
//! extremes at 0 and 1); the crate's own sketch does not expose its bins,
//! which a window needs twice: to count a bucket into the reference's bin
//! edges exactly, and to keep a closed bucket as a few packed bytes
//! ([`crate::window::Closed`]). Bins are never collapsed: a bucket holds at
//! most one bin per distinct value, and a value range wide enough to make
//! DDSketch collapse (10^17 at 1 %) stays exact here.

use sketches_ddsketch::Config as DdConfig;

use super::edges::signed_key;

/// Counts per ordinal, ascending, and the exact extremes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "Stored", from = "Stored")]
#[repr(C)]
pub struct Quantiles {
    /// First: what each value written reaches ([`Quantiles::note`]).
    n: u64,
    min: f64,
    max: f64,
    bins: Vec<(i64, u64)>,
}

/// As written (a baseline file is JSON, which has no infinities): the
/// extremes of an empty sketch are absent.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    bins: Vec<(i64, u64)>,
    min: Option<f64>,
    max: Option<f64>,
}

impl From<Quantiles> for Stored {
    fn from(q: Quantiles) -> Stored {
        Stored {
            min: q.min(),
            max: q.max(),
            bins: q.bins,
        }
    }
}

impl From<Stored> for Quantiles {
    /// Bins out of order, repeated or empty (a hand-edited file) are
    /// sorted and summed, so the sketch is one `add` could have made.
    fn from(s: Stored) -> Quantiles {
        let mut q = Quantiles::default();
        let mut bins = s.bins;
        bins.sort_unstable_by_key(|b| b.0);
        q.merge_bins(
            bins.into_iter(),
            s.min.unwrap_or(f64::INFINITY),
            s.max.unwrap_or(f64::NEG_INFINITY),
        );
        q
    }
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles {
            bins: Vec::new(),
            n: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// The value sketches-ddsketch reports for the bin of `ordinal`.
#[inline]
pub fn representative(cfg: &DdConfig, ordinal: i64) -> f64 {
    match signed_key(ordinal) {
        Some((true, k)) => -cfg.value(k),
        Some((false, k)) => cfg.value(k),
        None => 0.0,
    }
}

/// [`representative`] remembered by ordinal, bit for bit the same: a
/// window's close takes a median bin's value for each edge bin of every
/// series it slides, and working each out (`exp`) was ~4 % of the engine's
/// thread. Per sign, the values of a span of keys grown to what was asked.
#[derive(Clone, Debug, Default)]
pub struct Representatives {
    /// The configuration's gamma the values are for (0 before the first).
    gamma: f64,
    /// Per sign (positive, negative): the first key held and the
    /// magnitudes from it (NaN: not worked out yet).
    sides: [(i32, Vec<f64>); 2],
}

/// Keys a side holds at most (every finite value's key fits, ~36,500 of
/// them at 1 % accuracy; at finer accuracy a value outside is worked out
/// each time).
const MAX_KEYS: usize = 1 << 16;

impl Representatives {
    /// [`representative`]`(cfg, ordinal)`.
    #[inline]
    pub fn value(&mut self, cfg: &DdConfig, ordinal: i64) -> f64 {
        let Some((negative, k)) = signed_key(ordinal) else {
            return 0.0;
        };
        let (first, values) = &self.sides[usize::from(negative)];
        if self.gamma == cfg.gamma
            && let Some(&v) = values.get(k.wrapping_sub(*first) as u32 as usize)
            && !v.is_nan()
        {
            return if negative { -v } else { v };
        }
        self.learn(cfg, negative, k)
    }

    #[cold]
    fn learn(&mut self, cfg: &DdConfig, negative: bool, k: i32) -> f64 {
        let v = cfg.value(k);
        if self.gamma != cfg.gamma {
            *self = Representatives {
                gamma: cfg.gamma,
                ..Default::default()
            };
        }
        let (first, values) = &mut self.sides[usize::from(negative)];
        if let Some(slot) = values.get_mut(k.wrapping_sub(*first) as u32 as usize) {
            *slot = v;
            return if negative { -v } else { v };
        }
        let (lo, hi) = if values.is_empty() {
            (i64::from(k), i64::from(k))
        } else {
            let last = i64::from(*first) + values.len() as i64 - 1;
            (i64::from(k).min(i64::from(*first)), i64::from(k).max(last))
        };
        // grown with room for the keys near it, half again as many as it
        // held (a span widening key by key is copied a few times, not at
        // each key), within what a side holds
        let needed = hi - lo + 1;
        let room = (values.len() as i64 / 2)
            .max(32)
            .min((MAX_KEYS as i64 - needed) / 2)
            .max(0);
        let (lo, hi) = (
            (lo - room).max(i64::from(i32::MIN)),
            (hi + room).min(i64::from(i32::MAX)),
        );
        let span = (hi - lo + 1) as usize;
        if span <= MAX_KEYS {
            let mut grown = vec![f64::NAN; span];
            if !values.is_empty() {
                let at = (i64::from(*first) - lo) as usize;
                grown[at..at + values.len()].copy_from_slice(values);
            }
            grown[(i64::from(k) - lo) as usize] = v;
            *values = grown;
            *first = lo as i32;
        }
        if negative { -v } else { v }
    }
}

impl Quantiles {
    /// Values summarised.
    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }

    /// (ordinal, count) pairs, ascending.
    pub fn bins(&self) -> &[(i64, u64)] {
        &self.bins
    }

    /// Empties, keeping the allocation.
    pub fn clear(&mut self) {
        self.bins.clear();
        self.n = 0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    /// Holding no bins, swaps its room with `buf` (empty) when that has
    /// less.
    pub fn trade_room(&mut self, buf: &mut Vec<(i64, u64)>) {
        if self.bins.is_empty() && buf.is_empty() && buf.capacity() < self.bins.capacity() {
            std::mem::swap(&mut self.bins, buf);
        }
    }

    /// Gives back room beyond `bins` bins.
    pub fn shrink_to(&mut self, bins: usize) {
        self.bins.shrink_to(bins);
    }

    /// Adds value `x`, whose bin is `ordinal` (`sketch::ordinal`).
    #[inline]
    pub fn add(&mut self, x: f64, ordinal: i64) {
        // values arrive in no order, but most land in a bin already held.
        // Ordinals ascend by at least one per bin, so the bin of `ordinal`
        // is at most `ordinal − first` places in: where the bins are
        // contiguous (a well-fed bucket's middle) that place is it, and
        // the search (a chain of dependent loads) is skipped
        let end = match self.bins.first() {
            Some(&(first, _)) if ordinal >= first => {
                let at = ordinal.wrapping_sub(first) as u64;
                if let Some(b) = self.bins.get_mut(at as usize)
                    && b.0 == ordinal
                {
                    b.1 += 1;
                    self.n += 1;
                    self.min = self.min.min(x);
                    self.max = self.max.max(x);
                    return;
                }
                (at as usize).min(self.bins.len())
            }
            _ => 0,
        };
        match self.bins[..end].binary_search_by_key(&ordinal, |b| b.0) {
            Ok(i) => self.bins[i].1 += 1,
            Err(i) => self.bins.insert(i, (ordinal, 1)),
        }
        self.n += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Adds sorted (ordinal, count) pairs and their extremes: the union of
    /// two sketches' bins, exactly.
    pub fn merge_bins(&mut self, bins: impl Iterator<Item = (i64, u64)>, min: f64, max: f64) {
        let added = self.add_counts(bins);
        if added > 0 {
            self.n += added;
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
    }

    /// Counts a value whose bin is counted elsewhere, to be added with
    /// [`Quantiles::add_counts`] before the bins are read (a busy open
    /// bucket's values, `window::Open`): its count and the extremes.
    #[inline]
    pub fn note(&mut self, x: f64) {
        self.n += 1;
        // values are finite (events are validated): plain comparisons,
        // not `f64::min`'s care for NaN
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
    }

    /// [`Quantiles::add_counts`] of `pairs`, strictly ascending and none
    /// 0, which become its bins (no copy) when it holds none: `pairs` then
    /// comes back empty, with their room.
    pub fn add_ascending_counts(&mut self, pairs: &mut Vec<(i64, u64)>) {
        if self.bins.is_empty() {
            debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
            debug_assert!(pairs.iter().all(|p| p.1 > 0));
            std::mem::swap(&mut self.bins, pairs);
        } else {
            self.add_counts(pairs.iter().copied());
            pairs.clear();
        }
    }

    /// Adds sorted (ordinal, count) pairs to the bins only (their values
    /// were counted by [`Quantiles::note`]); returns the count added.
    pub fn add_counts(&mut self, bins: impl Iterator<Item = (i64, u64)>) -> u64 {
        let before = self.bins.len();
        if before == 0 {
            // nothing to merge with: the pairs in their order (the
            // general loop below does this too, by way of the thread's
            // buffer and a copy: 166 instructions an event more on the
            // engine's thread, most settles being into empty bins)
            let mut added = 0;
            let mut ascending = true;
            for (o, c) in bins {
                if c == 0 {
                    continue;
                }
                added += c;
                ascending &= self.bins.last().is_none_or(|l| l.0 < o);
                self.bins.push((o, c));
            }
            if !ascending {
                self.sort_bins();
            }
            return added;
        }
        NEW_BINS.with_borrow_mut(|new| {
            new.clear();
            let mut added = 0;
            let mut cursor = 0;
            // the pairs strictly ascending: then the walk finds each one
            // the bins hold, and the new ones are none of theirs
            let (mut ascending, mut last) = (true, None);
            for (o, c) in bins {
                if c == 0 {
                    continue;
                }
                added += c;
                ascending &= last.is_none_or(|l| l < o);
                last = Some(o);
                // both sides ascend: walk rather than search
                while cursor < before && self.bins[cursor].0 < o {
                    cursor += 1;
                }
                if cursor < before && self.bins[cursor].0 == o {
                    self.bins[cursor].1 += c;
                } else {
                    new.push((o, c));
                }
            }
            if ascending {
                merge_from_the_back(&mut self.bins, new);
            } else {
                // an input out of order or repeating an ordinal (only a
                // hand-made one is): what the walk passed by is added anew
                self.bins.extend_from_slice(new);
                self.sort_bins();
            }
            added
        })
    }

    /// Sorts the bins and sums those of one ordinal.
    fn sort_bins(&mut self) {
        self.bins.sort_by_key(|b| b.0);
        self.bins.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
    }

    /// Hands each bin to `take`, removing those it takes (their values stay
    /// counted: they are counted elsewhere now and come back through
    /// [`Quantiles::add_counts`], as a busy open bucket's do, `window::Open`).
    pub fn take_counts(&mut self, mut take: impl FnMut(i64, u64) -> bool) {
        self.bins.retain(|&(o, c)| !take(o, c));
    }

    pub fn merge(&mut self, o: &Quantiles) {
        let added = self.add_bins_of(o);
        if added > 0 {
            self.n += added;
            self.min = self.min.min(o.min);
            self.max = self.max.max(o.max);
        }
    }

    /// Adds `o`'s bins to this one's (only the bins); the count added.
    /// Into none they are copied whole: they ascend, none 0 (a carrier
    /// slice's bucket into the overall series' empty one).
    fn add_bins_of(&mut self, o: &Quantiles) -> u64 {
        if self.bins.is_empty() {
            self.bins.extend_from_slice(&o.bins);
            o.bins.iter().map(|b| b.1).sum()
        } else {
            self.add_counts(o.bins.iter().copied())
        }
    }

    /// [`Quantiles::merge`] of a sketch whose bins do not hold all its
    /// values (the rest [`Quantiles::note`]d, their bins counted elsewhere
    /// and added to this one's already): its count and extremes as noted,
    /// its bins as they are.
    pub fn merge_noted(&mut self, o: &Quantiles) {
        if o.n == 0 {
            return;
        }
        self.add_bins_of(o);
        self.n += o.n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The ordinal holding the value of rank `rank` (0-based, ascending).
    pub fn ordinal_at_rank(&self, rank: u64) -> Option<i64> {
        let mut seen = 0;
        for &(o, c) in &self.bins {
            seen += c;
            if seen > rank {
                return Some(o);
            }
        }
        self.bins.last().map(|b| b.0)
    }

    /// Quantile `q` in [0, 1], as sketches-ddsketch answers it.
    pub fn quantile(&self, cfg: &DdConfig, q: f64) -> Option<f64> {
        if self.n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        let rank = (q * (self.n as f64 - 1.0)) as u64;
        self.ordinal_at_rank(rank).map(|o| representative(cfg, o))
    }
}

std::thread_local! {
    /// [`Quantiles::add_counts`]'s new bins, before they are merged in
    /// (kept for the thread's next: no allocation once grown).
    static NEW_BINS: std::cell::RefCell<Vec<(i64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Merges `new` (ascending, no ordinal of `bins`) into `bins` (ascending):
/// each element moved once, from the largest down, into room made at the
/// end — the old ones not past every new one stay where they are.
fn merge_from_the_back(bins: &mut Vec<(i64, u64)>, new: &[(i64, u64)]) {
    let (mut i, mut j) = (bins.len(), new.len());
    bins.resize(i + j, (0, 0));
    while j > 0 {
        let w = i + j - 1;
        if i > 0 && bins[i - 1].0 > new[j - 1].0 {
            bins[w] = bins[i - 1];
            i -= 1;
        } else {
            bins[w] = new[j - 1];
            j -= 1;
        }
    }
}

/// Appends `v` as LEB128.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one LEB128 value at `*pos`, advancing it. The bytes are our own
/// (written by `put_varint`), so a short buffer is a defect: it reads as 0.
#[inline]
pub fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    // most are one byte: a gap of a bin or two, a count below 128
    if let Some(&b) = bytes.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        return u64::from(b);
    }
    get_varint_past_a_byte(bytes, pos)
}

#[inline(never)]
fn get_varint_past_a_byte(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
        if shift >= 64 {
            break;
        }
    }
    v
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::{dd_config, ordinal};
    use proptest::prelude::*;
    use sketches_ddsketch::DDSketch;

    /// What [`Quantiles::note`] writes comes first, 24 bytes (a sketch's
    /// layout counts on it: `sketch::tests::a_numeric_write_reaches_three_lines`).
    #[test]
    fn what_a_value_writes_comes_first() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(Quantiles, n), 0);
        assert_eq!(offset_of!(Quantiles, min), 8);
        assert_eq!(offset_of!(Quantiles, max), 16);
    }

    /// Settled by a swap and cleared, a sketch gives the larger room back
    /// to the buffer it was settled with; holding bins, or given a buffer
    /// as large or holding pairs, it keeps its own.
    #[test]
    fn room_goes_back_to_the_larger() {
        let mut q = Quantiles::default();
        let mut buf: Vec<(i64, u64)> = Vec::with_capacity(64);
        buf.extend([(1, 2), (5, 1)]);
        q.add_ascending_counts(&mut buf);
        assert_eq!(q.bins(), &[(1, 2), (5, 1)]);
        assert!(buf.is_empty() && buf.capacity() < 64);
        // holding bins: nothing traded
        q.trade_room(&mut buf);
        assert!(buf.capacity() < 64);
        q.clear();
        let mut full = vec![(3, 1)];
        q.trade_room(&mut full);
        assert_eq!(full.capacity(), 1);
        q.trade_room(&mut buf);
        assert!(buf.capacity() >= 64 && q.bins.capacity() < 64);
        // the buffer now the larger: kept
        q.trade_room(&mut buf);
        assert!(buf.capacity() >= 64);
    }

    #[test]
    fn written_as_json_and_read_back() {
        let cfg = dd_config(0.01);
        let empty = Quantiles::default();
        let text = serde_json::to_string(&empty).unwrap();
        assert_eq!(serde_json::from_str::<Quantiles>(&text).unwrap(), empty);
        let mut q = Quantiles::default();
        for x in [2.5, -1.0, 0.0, 2.5, 1e9] {
            q.add(x, ordinal(&cfg, x));
        }
        let text = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<Quantiles>(&text).unwrap(), q);
        // a hand-edited file: bins out of order and repeated are summed in order
        let o = ordinal(&cfg, 2.5);
        let edited = format!(r#"{{"bins":[[{o},1],[0,1],[{o},1]],"min":0.0,"max":2.5}}"#);
        let r: Quantiles = serde_json::from_str(&edited).unwrap();
        assert_eq!(r.bins(), &[(0, 1), (o, 2)]);
        assert_eq!(r.count(), 3);
    }

    proptest! {
        /// A remembered value is the one worked out, bit for bit: any
        /// value (both signs, zero, the extremes), in any order, its
        /// configuration changing between them, the span of keys held
        /// growing either way and past what a side holds.
        #[test]
        fn a_remembered_value_is_the_one_worked_out(
            asked in prop::collection::vec(
                (prop_oneof![
                    -1e6f64..1e6,
                    Just(0.0),
                    1e-3f64..10.0,
                    prop::num::f64::NORMAL,
                    Just(f64::MAX),
                    Just(-f64::MAX),
                    Just(1e-9),
                ], 0usize..3, 1usize..3),
                1..300,
            ),
        ) {
            let cfgs = [dd_config(0.01), dd_config(0.001), dd_config(0.05)];
            let mut memo = Representatives::default();
            for (x, c, times) in asked {
                let cfg = &cfgs[c];
                let o = ordinal(cfg, x);
                for _ in 0..times {
                    prop_assert_eq!(
                        memo.value(cfg, o).to_bits(),
                        representative(cfg, o).to_bits(),
                        "{} at {}", x, o
                    );
                }
            }
        }
    }

    proptest! {
        /// Every quantile is the one sketches-ddsketch gives for the same values.
        #[test]
        fn answers_as_ddsketch_does(
            xs in prop::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0), 1e-3f64..10.0], 1..400),
            qs in prop::collection::vec(0.0f64..=1.0, 1..20),
        ) {
            let cfg = dd_config(0.01);
            let mut dd = DDSketch::new(cfg);
            let mut ours = Quantiles::default();
            for &x in &xs {
                dd.add(x);
                ours.add(x, ordinal(&cfg, x));
            }
            prop_assert_eq!(ours.count(), xs.len() as u64);
            for q in qs.iter().copied().chain([0.0, 0.5, 1.0]) {
                prop_assert_eq!(ours.quantile(&cfg, q), dd.quantile(q).unwrap(), "q = {}", q);
            }
        }

        /// Bins are the ascending count of each ordinal added, whatever the
        /// order: dense runs (where `add` finds a bin by its place) and gaps.
        #[test]
        fn bins_count_each_ordinal(
            ords in prop::collection::vec(prop_oneof![-12i64..12, Just(i64::MIN + 1), Just(i64::MAX), -1000i64..1000], 1..300),
        ) {
            let mut q = Quantiles::default();
            let mut want = std::collections::BTreeMap::new();
            for &o in &ords {
                q.add(o as f64, o);
                *want.entry(o).or_insert(0u64) += 1;
            }
            prop_assert_eq!(q.bins(), &want.into_iter().collect::<Vec<_>>()[..]);
            prop_assert_eq!(q.count(), ords.len() as u64);
        }

        /// Merging in any split gives the sketch of the union.
        #[test]
        fn merge_is_the_union(
            parts in prop::collection::vec(prop::collection::vec(-1e4f64..1e4, 0..50), 1..6),
        ) {
            let cfg = dd_config(0.01);
            let mut whole = Quantiles::default();
            let mut merged = Quantiles::default();
            for p in &parts {
                let mut one = Quantiles::default();
                for &x in p {
                    whole.add(x, ordinal(&cfg, x));
                    one.add(x, ordinal(&cfg, x));
                }
                merged.merge(&one);
            }
            prop_assert_eq!(merged, whole);
        }

        /// Counts added to bins held come out as the union, counted per
        /// ordinal: pairs ascending (a settled bucket's, another sketch's:
        /// merged in place from the back), or out of order, repeated or of
        /// count 0 (a hand-made file's: sorted), into bins or none.
        #[test]
        fn added_counts_are_the_union(
            held in prop::collection::btree_map(-60i64..60, 1u64..5, 0..40),
            added in prop::collection::vec((-80i64..80, 0u64..4), 0..8),
            sorted in any::<bool>(),
        ) {
            let mut added = added;
            if sorted {
                added.sort_by_key(|a| a.0);
                added.dedup_by_key(|a| a.0);
            }
            let mut q = Quantiles::default();
            q.add_counts(held.iter().map(|(&o, &c)| (o, c)));
            prop_assert_eq!(q.bins(), &held.iter().map(|(&o, &c)| (o, c)).collect::<Vec<_>>()[..]);
            let mut want = held.clone();
            for &(o, c) in &added {
                if c > 0 {
                    *want.entry(o).or_insert(0) += c;
                }
            }
            let n = q.add_counts(added.iter().copied());
            prop_assert_eq!(n, added.iter().map(|a| a.1).sum::<u64>());
            prop_assert_eq!(q.bins(), &want.into_iter().collect::<Vec<_>>()[..]);
        }

        #[test]
        fn added_counts_out_of_order_are_the_union_too(
            held in prop::collection::btree_map(0i64..8, 1u64..5, 0..8),
            added in prop::collection::vec((0i64..8, 1u64..4), 0..6),
        ) {
            let mut q = Quantiles::default();
            q.add_counts(held.iter().map(|(&o, &c)| (o, c)));
            let mut want = held.clone();
            for &(o, c) in &added {
                *want.entry(o).or_insert(0) += c;
            }
            q.add_counts(added.iter().copied());
            prop_assert_eq!(q.bins(), &want.into_iter().collect::<Vec<_>>()[..]);
        }

        #[test]
        fn varints_round_trip(vs in prop::collection::vec(any::<i64>(), 0..50)) {
            let mut buf = Vec::new();
            for &v in &vs {
                put_varint(&mut buf, zigzag(v));
            }
            let mut pos = 0;
            for &v in &vs {
                prop_assert_eq!(unzigzag(get_varint(&buf, &mut pos)), v);
            }
            prop_assert_eq!(pos, buf.len());
        }
    }
}
