//! Mergeable per-bucket summaries of one series: counts, nulls, type
//! violations, moments, category counts, exemplars and, for numbers, the
//! DDSketch bins of the values ([`Quantiles`]). A window's running totals
//! are a `Sketch` too, with a histogram over the reference's bin edges and
//! per-bin sums (`window::Closed::fold_into`).
//!
//! Everything merges exactly: counts add, moments are order-independent
//! sums, and merging DDSketch bins is the exact union of the values' bins.

pub mod edges;
pub mod moments;
pub mod quantiles;

use sketches_ddsketch::Config as DdConfig;

pub use edges::{Edges, ordinal};
use moments::Moments;
pub use quantiles::Quantiles;

/// What a series holds: numbers or categories (strings and booleans). Fixed
/// by the first non-null value; values of the other type are violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Numeric,
    Categorical,
}

/// Up to a few trace ids kept per bucket as examples: those with the
/// smallest keys among the ids offered (by default the key is the id's
/// hash; tails are kept by value, categories one per category), so which
/// are kept does not depend on the order events arrive in (partitions
/// interleave differently from run to run; a re-emitted alert carries the
/// same exemplars) nor on when the reference was pinned: what qualifies as
/// unusual is decided when an alert is made. Fixed slots, kept sorted by
/// key, whose string buffers are reused.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(from = "StoredExemplars<Vec<(u64, TraceId)>>")]
#[repr(C)]
pub struct Exemplars {
    /// The largest kept pair's key and [`head`] (never below them; the
    /// largest possible when not known): an offer past it is turned away without reading the
    /// slots — most offers, once a bucket's slots are full. First, beside
    /// `len`: all an offer turned away reads.
    bound: (u64, u64),
    len: usize,
    slots: Vec<(u64, TraceId)>,
}

/// Exemplars as written and read: the pairs kept, then their number (a
/// checkpoint is read by field order). The slots past the pairs are
/// buffers kept for reuse, whose contents depend on which recycled sketch
/// a bucket took: not written.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "Exemplars")]
struct StoredExemplars<S> {
    slots: S,
    len: usize,
}

impl From<StoredExemplars<Vec<(u64, TraceId)>>> for Exemplars {
    fn from(s: StoredExemplars<Vec<(u64, TraceId)>>) -> Exemplars {
        Exemplars {
            bound: unbounded(),
            len: s.len,
            slots: s.slots,
        }
    }
}

impl Default for Exemplars {
    fn default() -> Self {
        Exemplars {
            slots: Vec::new(),
            len: 0,
            bound: unbounded(),
        }
    }
}

impl serde::Serialize for Exemplars {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredExemplars {
            slots: &self.slots[..self.len],
            len: self.len,
        }
        .serialize(s)
    }
}

fn unbounded() -> (u64, u64) {
    (u64::MAX, u64::MAX)
}

/// An id's first 8 bytes (zero-padded, big-endian): (key, head) pairs are
/// ordered as (key, id) pairs are wherever they differ; equal ones say
/// nothing.
#[inline]
fn head(id: &[u8]) -> u64 {
    match id.first_chunk::<8>() {
        Some(h) => u64::from_be_bytes(*h),
        None => {
            let mut h = [0u8; 8];
            h[..id.len()].copy_from_slice(id);
            u64::from_be_bytes(h)
        }
    }
}

/// An event's trace id as its exemplar offers compare it — the id, its
/// first bytes as a number and its hash — made once per event, not once
/// per series it is offered to.
#[derive(Clone, Copy, Debug)]
pub struct Offered<'a> {
    pub id: &'a str,
    head: u64,
    hash: u64,
}

impl<'a> Offered<'a> {
    #[inline]
    pub fn new(id: &'a str) -> Self {
        Offered {
            id,
            head: head(id.as_bytes()),
            hash: exemplar_hash(id),
        }
    }

    /// Its keys (first bytes and hash), to offer it again from a copy of the id.
    pub fn keys(&self) -> (u64, u64) {
        (self.head, self.hash)
    }

    /// The offer of `id` whose keys [`Offered::keys`] gave.
    #[inline]
    pub fn with_keys(id: &'a str, (head, hash): (u64, u64)) -> Self {
        Offered { id, head, hash }
    }
}

/// A kept trace id: up to 32 bytes (a W3C trace id's 32 hex digits) in
/// place, longer ones on the heap. Every open bucket of every series keeps a
/// few; in place, reading one is not a trip to a separate allocation (with
/// thousands of sparse series each was a cache miss, on every offer and
/// again when the bucket closed). Serialized as the string it holds.
#[derive(Clone, Debug)]
pub enum TraceId {
    Inline { len: u8, bytes: [u8; 32] },
    Heap(Box<str>),
}

impl Default for TraceId {
    fn default() -> Self {
        TraceId::Inline {
            len: 0,
            bytes: [0; 32],
        }
    }
}

impl TraceId {
    /// Its bytes (string order is byte order).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            TraceId::Inline { len, bytes } => &bytes[..*len as usize],
            TraceId::Heap(s) => s.as_bytes(),
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            // only ever a whole `&str` is copied in
            TraceId::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            TraceId::Heap(s) => s,
        }
    }

    #[inline]
    fn set(&mut self, id: &str) {
        if let Ok(whole) = <&[u8; 32]>::try_from(id.as_bytes()) {
            // a W3C trace id: one fixed copy
            *self = TraceId::Inline {
                len: 32,
                bytes: *whole,
            };
        } else if id.len() <= 32 {
            let mut bytes = [0; 32];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            *self = TraceId::Inline {
                len: id.len() as u8,
                bytes,
            };
        } else {
            *self = TraceId::Heap(id.into());
        }
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut t = TraceId::default();
        t.set(&s);
        Ok(t)
    }
}

/// A trace id's hash for exemplar choice: FxHash (fixed, unseeded) of its bytes.
#[inline]
pub fn exemplar_hash(trace_id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(trace_id)
}

/// Exemplar keys of a numeric value: for the lowest values (its DDSketch
/// ordinal, order kept) and for the highest (the same, reversed); equal
/// ordinals are ordered by trace id. The ordinal is the value's DDSketch
/// bin, which reference edges sit on.
#[inline]
pub fn tail_keys(ordinal: i64) -> (u64, u64) {
    let low = (ordinal as u64) ^ (1 << 63);
    (low, !low)
}

/// The DDSketch ordinal a low-tail (`high` false) or high-tail key was made from.
#[inline]
pub fn tail_ordinal(key: u64, high: bool) -> i64 {
    let low = if high { !key } else { key };
    (low ^ (1 << 63)) as i64
}

impl Exemplars {
    pub fn offer(&mut self, t: &Offered<'_>, cap: usize) {
        self.offer_keyed(t.hash, t, cap);
    }

    /// One id per category (the one with the smallest hash), for every
    /// category seen: the key is the category id, then the hash.
    pub fn offer_per_category(&mut self, category: u32, t: &Offered<'_>) {
        self.offer_category_key(((category as u64) << 32) | (t.hash >> 32), t.id);
    }

    /// [`Exemplars::offer_per_category`] of a key made already (its
    /// category in the high 32 bits).
    #[inline]
    fn offer_category_key(&mut self, key: u64, trace_id: &str) {
        let category = key >> 32;
        let kept = &self.slots[..self.len];
        let held_at = |i: usize| kept.get(i).is_some_and(|s| s.0 >> 32 == category);
        // once a bucket has seen every category (each kept once, in
        // order), category `c` is at place `c`, or `c - 1` when the
        // overflow (0) has not come: looked at before searching
        let c = category as usize;
        let pos = if held_at(c) {
            c
        } else if c > 0 && held_at(c - 1) {
            c - 1
        } else {
            kept.partition_point(|s| (s.0 >> 32) < category)
        };
        if let Some(s) = kept.get(pos)
            && s.0 >> 32 == category
        {
            // the keys first: the ids are compared only on a tie
            if key < s.0 || (key == s.0 && trace_id.as_bytes() < s.1.as_bytes()) {
                self.set(pos, key, trace_id);
            }
            return;
        }
        self.insert(pos, key, trace_id, usize::MAX);
    }

    /// Puts (key, id) at `pos`, shifting the rest right; at `cap` the
    /// largest is dropped (its slot, with its buffer, is reused).
    fn insert(&mut self, pos: usize, key: u64, trace_id: &str, cap: usize) {
        if self.len < cap {
            if self.slots.len() <= self.len {
                self.slots.push((0, TraceId::default()));
            }
            self.len += 1;
        }
        self.slots[pos..self.len].rotate_right(1);
        self.set(pos, key, trace_id);
    }

    fn set(&mut self, pos: usize, key: u64, trace_id: &str) {
        let s = &mut self.slots[pos];
        s.0 = key;
        s.1.set(trace_id);
        let last = &self.slots[self.len - 1];
        self.bound = (last.0, head(last.1.as_bytes()));
    }

    /// Keeps the `cap` smallest (key, id) pairs offered.
    #[inline]
    pub fn offer_keyed(&mut self, h: u64, t: &Offered<'_>, cap: usize) {
        if cap == 0 || (self.len >= cap && (h, t.head) > self.bound) {
            return;
        }
        self.offer_slow(h, t.head, t.id, cap);
    }

    /// [`Exemplars::offer_keyed`] for a pair its bound does not turn away
    /// (`head`: the id's [`head`]).
    #[inline(never)]
    fn offer_slow(&mut self, h: u64, head: u64, trace_id: &str, cap: usize) {
        let id = trace_id.as_bytes();
        // the keys first, then the ids' first bytes: the ids themselves
        // are compared only on a tie of both
        let below = |s: &(u64, TraceId)| {
            s.0 < h
                || (s.0 == h && {
                    let held = s.1.as_bytes();
                    let hh = self::head(held);
                    hh < head || (hh == head && held < id)
                })
        };
        let kept = &self.slots[..self.len];
        // the pairs below it are the first: a few (`cap`), walked from the last
        let mut pos = kept.len();
        while pos > 0 && !below(&kept[pos - 1]) {
            pos -= 1;
        }
        if pos == kept.len() && kept.len() >= cap {
            return;
        }
        if kept
            .get(pos)
            .is_some_and(|s| s.0 == h && s.1.as_bytes() == id)
        {
            return;
        }
        self.insert(pos, h, trace_id, cap);
    }

    /// Keeps what it would had `other`'s ids been offered to it too, by
    /// [`Exemplars::offer_keyed`] with the same `cap`: the smallest of
    /// both (what each kept is all of its ids that can be).
    pub fn merge_keyed(&mut self, other: &Exemplars, cap: usize) {
        if cap == 0 {
            return;
        }
        for (key, id) in &other.slots[..other.len] {
            let id = id.as_str();
            let head = head(id.as_bytes());
            if self.len >= cap && (*key, head) > self.bound {
                // the rest are larger still
                break;
            }
            self.offer_slow(*key, head, id, cap);
        }
    }

    /// [`Exemplars::merge_keyed`] for lists kept by
    /// [`Exemplars::offer_per_category`]: the smaller of each category's.
    pub fn merge_per_category(&mut self, other: &Exemplars) {
        for (key, id) in &other.slots[..other.len] {
            self.offer_category_key(*key, id.as_str());
        }
    }

    /// How many it keeps.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.slots[..self.len].iter().map(|s| s.1.as_str())
    }
    /// (key, id bytes): what a closing bucket packs (no UTF-8 check).
    pub fn iter_keyed_bytes(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.slots[..self.len].iter().map(|s| (s.0, s.1.as_bytes()))
    }
    pub fn iter_keyed(&self) -> impl Iterator<Item = (u64, &str)> {
        self.slots[..self.len].iter().map(|s| (s.0, s.1.as_str()))
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Cache hints for its slots (the first few lines of them).
    #[inline]
    pub fn prefetch(&self) {
        prefetch_slice(&self.slots, 3);
    }
}

/// [`prefetch`] for the memory of `s`, up to `max_lines` cache lines of it.
#[inline(always)]
pub fn prefetch_slice<T>(s: &[T], max_lines: usize) {
    let p: *const u8 = s.as_ptr().cast();
    let bytes = std::mem::size_of_val(s).min(max_lines.saturating_mul(64));
    for line in (0..bytes).step_by(64) {
        prefetch(p.wrapping_add(line));
    }
}

/// Asks the CPU to bring the cache line at `p` in, without waiting for it
/// (nothing is read: any address will do). With thousands of sparse
/// series a bucket close or a value's write is a chain of cache misses —
/// the series, its open bucket, that bucket's bins and exemplars — which
/// the loops over series start early for the series a few places ahead.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing and cannot fault,
    // whatever the address; SSE is in every x86_64 target's baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The summary of one series over one bucket (or a merge of buckets).
///
/// Laid out in the order written (`repr(C)`): what every numeric write
/// reaches for first — the count, the moments, the quantiles' count and
/// extremes (one cache line), then each tail's exemplar bound — and what
/// only a close or a category reads after (`window::open::tests::
/// a_numeric_write_reaches_four_lines`).
#[derive(Clone, serde::Deserialize)]
#[serde(from = "Owned")]
#[repr(C)]
pub struct Sketch {
    /// Non-null values of the series' own kind.
    pub values: u64,
    /// Sum and sum of squares of numeric values, in any order the same.
    pub moments: Moments,
    /// Quantile sketch of numeric values.
    pub quantiles: Quantiles,
    /// Example events, offered whatever the reference (which decides, when
    /// an alert is made, which of them are unusual): numbers, the lowest
    /// values (`tail_keys`); categories, one per category.
    pub exemplars: Exemplars,
    /// Numbers: the highest values.
    pub high_exemplars: Exemplars,
    pub nulls: u64,
    /// Non-null values of the other kind (a string where numbers are expected, …).
    pub type_violations: u64,
    /// Categories: counts per category id. Numbers, in a window's running
    /// totals: counts over the reference's `Edges` bins, counted from each
    /// closing bucket's quantile bins (an open bucket keeps none).
    pub hist: Vec<u64>,
    /// Numbers, in running totals: sum of the values in each histogram bin
    /// (for Wasserstein), from each closing bucket (`window::Closed::bin_counts`).
    pub hist_sum: Vec<f64>,
    /// Example events with a null or a value of the wrong type.
    pub null_exemplars: Exemplars,
}

/// A sketch as written: its fields in the order checkpoints have always
/// had them (postcard reads by order), whatever its layout in memory.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "Sketch")]
struct Stored<V, M, H, S, Q, E> {
    values: V,
    nulls: V,
    type_violations: V,
    moments: M,
    hist: H,
    hist_sum: S,
    quantiles: Q,
    exemplars: E,
    high_exemplars: E,
    null_exemplars: E,
}

/// A sketch as read.
type Owned = Stored<u64, Moments, Vec<u64>, Vec<f64>, Quantiles, Exemplars>;

impl From<Owned> for Sketch {
    fn from(s: Owned) -> Sketch {
        Sketch {
            values: s.values,
            moments: s.moments,
            quantiles: s.quantiles,
            exemplars: s.exemplars,
            high_exemplars: s.high_exemplars,
            nulls: s.nulls,
            type_violations: s.type_violations,
            hist: s.hist,
            hist_sum: s.hist_sum,
            null_exemplars: s.null_exemplars,
        }
    }
}

impl serde::Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            values: &self.values,
            nulls: &self.nulls,
            type_violations: &self.type_violations,
            moments: &self.moments,
            hist: &self.hist,
            hist_sum: &self.hist_sum,
            quantiles: &self.quantiles,
            exemplars: &self.exemplars,
            high_exemplars: &self.high_exemplars,
            null_exemplars: &self.null_exemplars,
        }
        .serialize(s)
    }
}

impl Sketch {
    pub fn new() -> Self {
        Sketch {
            values: 0,
            nulls: 0,
            type_violations: 0,
            moments: Moments::default(),
            hist: Vec::new(),
            hist_sum: Vec::new(),
            quantiles: Quantiles::default(),
            exemplars: Exemplars::default(),
            high_exemplars: Exemplars::default(),
            null_exemplars: Exemplars::default(),
        }
    }

    /// Events this sketch saw for its series (values, nulls and violations).
    pub fn rows(&self) -> u64 {
        self.values + self.nulls + self.type_violations
    }

    /// Empties the sketch, keeping its allocations for reuse.
    pub fn reset(&mut self) {
        self.values = 0;
        self.nulls = 0;
        self.type_violations = 0;
        self.moments = Moments::default();
        self.hist.clear();
        self.hist_sum.clear();
        self.quantiles.clear();
        self.exemplars.clear();
        self.high_exemplars.clear();
        self.null_exemplars.clear();
    }

    #[inline]
    pub fn add_null(&mut self) {
        self.nulls += 1;
    }

    #[inline]
    pub fn add_violation(&mut self) {
        self.type_violations += 1;
    }

    /// Adds a number, whose DDSketch bin is `ordinal`.
    #[inline]
    pub fn add_number(&mut self, x: f64, ordinal: i64) {
        self.values += 1;
        self.moments.add(x);
        self.quantiles.add(x, ordinal);
    }

    /// Adds a category by id.
    #[inline]
    pub fn add_category(&mut self, id: usize) {
        self.values += 1;
        if self.hist.len() <= id {
            self.hist.resize(id + 1, 0);
        }
        self.hist[id] += 1;
    }

    /// Merges another summary of the same series into this one.
    pub fn merge(&mut self, o: &Sketch) {
        self.moments.merge(&o.moments);
        self.merge_counts(o);
        self.quantiles.merge(&o.quantiles);
    }

    /// Adds the integer parts (counts and histogram) of `o`.
    pub fn merge_counts(&mut self, o: &Sketch) {
        self.values += o.values;
        self.nulls += o.nulls;
        self.type_violations += o.type_violations;
        if self.hist.len() < o.hist.len() {
            self.hist.resize(o.hist.len(), 0);
        }
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            *a += *b;
        }
        if self.hist_sum.len() < o.hist_sum.len() {
            self.hist_sum.resize(o.hist_sum.len(), 0.0);
        }
        for (a, b) in self.hist_sum.iter_mut().zip(&o.hist_sum) {
            *a += *b;
        }
    }

    /// Sizes the histogram for `bins` numeric bins (empty when edges are not known yet).
    pub fn size_numeric_hist(&mut self, bins: usize) {
        self.hist.clear();
        self.hist.resize(bins, 0);
        self.hist_sum.clear();
        self.hist_sum.resize(bins, 0.0);
    }

    /// Mean of the numeric values.
    pub fn mean(&self) -> f64 {
        self.moments.mean(self.values)
    }

    /// Sum of squared deviations from the mean.
    pub fn m2(&self) -> f64 {
        self.moments.m2(self.values)
    }

    /// Population variance of the numeric values.
    pub fn variance(&self) -> f64 {
        if self.values > 1 {
            self.m2() / self.values as f64
        } else {
            0.0
        }
    }

    pub fn quantile(&self, dd: &DdConfig, q: f64) -> Option<f64> {
        self.quantiles.quantile(dd, q)
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("values", &self.values)
            .field("nulls", &self.nulls)
            .field("type_violations", &self.type_violations)
            .field("mean", &self.mean())
            .field("hist", &self.hist)
            .field("quantile_values", &self.quantiles.count())
            .finish()
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::new()
    }
}

/// The DDSketch configuration every series shares (so sketches merge).
pub fn dd_config(relative_accuracy: f64) -> DdConfig {
    DdConfig::new(relative_accuracy, 2048, 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A sketch is written as checkpoints (format 10) have always had it,
    /// whatever its layout in memory: these bytes are what the sketch
    /// below encoded to before its fields were laid out for the writes.
    #[test]
    fn a_sketch_is_written_as_before() {
        let mut s = Sketch::new();
        s.add_number(2.5, 7);
        s.add_number(-1.0, -3);
        s.add_null();
        s.hist = vec![1, 2];
        s.hist_sum = vec![0.5];
        for (i, id) in ["a1", "b2", "c3"].iter().enumerate() {
            let t = Offered::new(id);
            s.exemplars.offer_keyed(i as u64, &t, 2);
            s.high_exemplars.offer_keyed(9 - i as u64, &t, 2);
            s.null_exemplars.offer(&t, 2);
        }
        let bytes = postcard::to_allocvec(&s).unwrap();
        #[rustfmt::skip]
        let before: &[u8] = &[2, 1, 0, 0, 0, 0, 0, 0, 0, 248, 63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 29, 64, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 0, 0, 0, 0, 0, 0, 224, 63, 2, 5, 1, 14, 1, 1, 0, 0, 0, 0, 0, 0, 240, 191, 1, 0, 0, 0, 0, 0, 0, 4, 64, 2, 0, 2, 97, 49, 1, 2, 98, 50, 2, 2, 7, 2, 99, 51, 8, 2, 98, 50, 2, 2, 171, 151, 251, 209, 197, 198, 150, 152, 135, 1, 2, 99, 51, 237, 181, 218, 179, 239, 150, 179, 194, 149, 1, 2, 97, 49, 2];
        assert_eq!(bytes, before);
        let back: Sketch = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_allocvec(&back).unwrap(), bytes);
    }

    /// The lines of a sketch (at a line's start) that a numeric write
    /// reaches when its exemplars are full and turn it away: the count,
    /// moments and quantiles' count and extremes, then each tail's bound
    /// and length — three lines, not the six the compiler's order spread
    /// them over (`window::open` puts a sketch at a line's start).
    #[test]
    fn a_numeric_write_reaches_three_lines() {
        use std::mem::offset_of;
        let q = offset_of!(Sketch, quantiles);
        let ex = offset_of!(Sketch, exemplars);
        let high = offset_of!(Sketch, high_exemplars);
        let bound = offset_of!(Exemplars, bound);
        let reached = [
            (offset_of!(Sketch, values), 8),
            (offset_of!(Sketch, moments), size_of::<Moments>()),
            (q, 24), // n, min, max: quantiles::tests::what_a_value_writes_comes_first
            (ex + bound, 16),
            (ex + offset_of!(Exemplars, len), 8),
            (high + bound, 16),
            (high + offset_of!(Exemplars, len), 8),
        ];
        let mut lines: Vec<usize> = reached
            .iter()
            .flat_map(|&(at, len)| [at / 64, (at + len - 1) / 64])
            .collect();
        lines.sort();
        lines.dedup();
        assert_eq!(lines, [0, 1, 2], "{reached:?}");
    }

    proptest! {
        /// Lists kept apart and merged keep what one list offered all of
        /// their ids keeps: by key with a cap, and one per category.
        #[test]
        fn merged_lists_keep_what_one_list_keeps(
            offers in proptest::collection::vec(
                (0u64..4, 0u32..3, "(abcdefgh|abcdefg|ab|)[a-c]{0,2}", 0usize..3), 1..80),
            cap in 1usize..5,
        ) {
            let (mut one, mut one_cat) = (Exemplars::default(), Exemplars::default());
            let mut parts = vec![(Exemplars::default(), Exemplars::default()); 3];
            for (k, cat, id, part) in &offers {
                let t = Offered::new(id);
                one.offer_keyed(*k, &t, cap);
                one_cat.offer_per_category(*cat, &t);
                parts[*part].0.offer_keyed(*k, &t, cap);
                parts[*part].1.offer_per_category(*cat, &t);
            }
            let (mut merged, mut merged_cat) = (Exemplars::default(), Exemplars::default());
            for (p, c) in &parts {
                merged.merge_keyed(p, cap);
                merged_cat.merge_per_category(c);
            }
            let pairs = |e: &Exemplars| -> Vec<(u64, String)> {
                e.iter_keyed().map(|(k, id)| (k, id.to_string())).collect()
            };
            prop_assert_eq!(pairs(&merged), pairs(&one));
            prop_assert_eq!(pairs(&merged_cat), pairs(&one_cat));
        }

        /// Whatever is turned away by the bound alone, the kept pairs are the
        /// `cap` smallest (key, id) offered: keys that tie, ids that share
        /// their first 8 bytes or are shorter than 8, ids of 31 to 33 bytes
        /// (a W3C id's 32 are copied whole), an exemplar list read back
        /// from a checkpoint (its bound unknown).
        #[test]
        fn offers_keep_the_smallest_pairs(
            offers in proptest::collection::vec(
                (0u64..3, "(abcdefgh|abcdefg|ab|0123456789abcdef0123456789abcde|)[a-c]{0,2}"),
                1..60,
            ),
            cap in 1usize..5,
            restore_at in 0usize..60,
        ) {
            let mut e = Exemplars::default();
            let mut all: Vec<(u64, String)> = Vec::new();
            for (i, (k, id)) in offers.iter().enumerate() {
                if i == restore_at {
                    e = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
                }
                e.offer_keyed(*k, &Offered::new(id), cap);
                if !all.contains(&(*k, id.clone())) {
                    all.push((*k, id.clone()));
                }
            }
            all.sort();
            all.truncate(cap);
            let kept: Vec<(u64, String)> = e.iter_keyed().map(|(k, id)| (k, id.to_string())).collect();
            prop_assert_eq!(kept, all);
        }
    }

    fn sketch_of(xs: &[Option<f64>], edges: &Edges, dd: &DdConfig) -> Sketch {
        let mut s = Sketch::new();
        s.size_numeric_hist(edges.bins());
        for x in xs {
            match x {
                Some(x) => {
                    s.add_number(*x, ordinal(dd, *x));
                    s.hist[edges.bin_of(ordinal(dd, *x))] += 1;
                }
                None => s.add_null(),
            }
        }
        s
    }

    proptest! {
        #[test]
        fn merging_buckets_equals_sketching_the_union(
            parts in prop::collection::vec(prop::collection::vec(prop::option::weighted(0.9, -1e6f64..1e6), 0..60), 1..6)
        ) {
            let dd = dd_config(0.01);
            let edges = Edges::from_ordinals(vec![ordinal(&dd, -10.0), ordinal(&dd, 0.0), ordinal(&dd, 5.0), ordinal(&dd, 1000.0)], 2);
            let all: Vec<Option<f64>> = parts.iter().flatten().copied().collect();
            let whole = sketch_of(&all, &edges, &dd);
            let mut merged = Sketch::new();
            for p in &parts {
                merged.merge(&sketch_of(p, &edges, &dd));
            }
            prop_assert_eq!(merged.values, whole.values);
            prop_assert_eq!(merged.nulls, whole.nulls);
            prop_assert_eq!(&merged.hist, &whole.hist);
            // moments merge exactly: in any grouping, the same bits
            prop_assert_eq!(merged.mean(), whole.mean());
            prop_assert_eq!(merged.variance(), whole.variance());
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                prop_assert_eq!(merged.quantile(&dd, q), whole.quantile(&dd, q));
            }
        }
    }
}
