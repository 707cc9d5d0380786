//! A closed bucket of a series' current window, packed into one allocation.
//!
//! A window is 30 closed buckets by default, kept for every series: as
//! `Sketch`es (a histogram and bin sums of 8-byte words, a quantile store,
//! nine exemplar strings) they were ~2.5 KiB each. Packed, a bucket is its
//! moments and extremes, then LEB128 varints: its counts, its quantile bins
//! (first ordinal, then the gaps, each with its count), its category counts
//! and its exemplars (a 32-hex-digit trace id as its 16 bytes, keys as
//! gaps, a high-tail id the low tail holds as a reference to it). Its
//! histogram over the reference's edges and its per-bin sums are not kept:
//! they are counted from its bins when it enters the running totals and
//! counted again, the same way, when it leaves, so the two cancel.

use sketches_ddsketch::Config as DdConfig;

use crate::sketch::moments::Moments;
use crate::sketch::quantiles::{Representatives, get_varint, put_varint, unzigzag, zigzag};
use crate::sketch::{Edges, Exemplars, Sketch};

/// Which of a bucket's exemplar lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExemplarList {
    /// Numbers: the lowest values; categories: one per category.
    Low = 0,
    /// Numbers: the highest values.
    High = 1,
    /// Nulls and values of the wrong type.
    Null = 2,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Closed {
    pub bucket: i64,
    moments: Moments,
    min: f64,
    max: f64,
    /// values, nulls, type violations; bins; categories; three exemplar lists.
    data: Box<[u8]>,
    /// Where the category counts and the exemplar lists start in `data`.
    categories_at: u32,
    exemplars_at: u32,
}

impl Closed {
    /// Packs an open bucket's sketch, using `buf` as scratch.
    pub fn pack(bucket: i64, s: &Sketch, buf: &mut Vec<u8>) -> Closed {
        buf.clear();
        put_varint(buf, s.values);
        put_varint(buf, s.nulls);
        put_varint(buf, s.type_violations);
        let bins = s.quantiles.bins();
        put_varint(buf, bins.len() as u64);
        let mut prev = 0i64;
        for (i, &(o, c)) in bins.iter().enumerate() {
            if i == 0 {
                put_varint(buf, zigzag(o));
            } else {
                put_varint(buf, (o - prev) as u64);
            }
            put_varint(buf, c);
            prev = o;
        }
        let categories_at = buf.len() as u32;
        // a numeric bucket's `hist` is empty: only categories count here
        let used = s.hist.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        put_varint(buf, used as u64);
        for &c in &s.hist[..used] {
            put_varint(buf, c);
        }
        let exemplars_at = buf.len() as u32;
        put_exemplars(buf, &s.exemplars, None);
        put_exemplars(buf, &s.high_exemplars, Some(&s.exemplars));
        put_exemplars(buf, &s.null_exemplars, None);
        Closed {
            bucket,
            moments: s.moments,
            min: s.quantiles.min().unwrap_or(0.0),
            max: s.quantiles.max().unwrap_or(0.0),
            data: buf.as_slice().into(),
            categories_at,
            exemplars_at,
        }
    }

    /// (values, nulls, type violations).
    pub fn counts(&self) -> (u64, u64, u64) {
        let mut pos = 0;
        let v = get_varint(&self.data, &mut pos);
        let n = get_varint(&self.data, &mut pos);
        let t = get_varint(&self.data, &mut pos);
        (v, n, t)
    }

    /// The quantile bins, (ordinal, count) ascending.
    pub fn bins(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        let mut pos = 0;
        for _ in 0..3 {
            get_varint(&self.data, &mut pos);
        }
        let n = get_varint(&self.data, &mut pos);
        let mut prev = 0i64;
        (0..n).map(move |i| {
            let d = get_varint(&self.data, &mut pos);
            let o = if i == 0 { unzigzag(d) } else { prev + d as i64 };
            prev = o;
            (o, get_varint(&self.data, &mut pos))
        })
    }

    /// Counts per category id (categories only).
    pub fn categories(&self) -> impl Iterator<Item = u64> + '_ {
        let mut pos = self.categories_at as usize;
        let n = get_varint(&self.data, &mut pos);
        (0..n).map(move |_| get_varint(&self.data, &mut pos))
    }

    /// One exemplar list as (key, trace id), smallest key first.
    pub fn exemplars(&self, list: ExemplarList) -> std::vec::IntoIter<(u64, String)> {
        let mut pos = self.exemplars_at as usize;
        let low = read_exemplars(&self.data, &mut pos, &[]);
        let high = match list {
            ExemplarList::Low => return low.into_iter(),
            _ => read_exemplars(&self.data, &mut pos, &low),
        };
        match list {
            ExemplarList::High => high.into_iter(),
            _ => read_exemplars(&self.data, &mut pos, &[]).into_iter(),
        }
    }

    /// Merges this bucket into `out` (moments, counts, categories, quantiles).
    pub fn merge_into(&self, out: &mut Sketch) {
        let (v, n, t) = self.counts();
        out.values += v;
        out.nulls += n;
        out.type_violations += t;
        out.moments.merge(&self.moments);
        for (i, c) in self.categories().enumerate() {
            if out.hist.len() <= i {
                out.hist.resize(i + 1, 0);
            }
            out.hist[i] += c;
        }
        out.quantiles.merge_bins(self.bins(), self.min, self.max);
    }

    /// Adds this bucket to a window's running totals (`add`), or takes it
    /// out: counts, category counts and, for numbers with edges, the
    /// histogram over them and each bin's sum, its count times the median
    /// of its values (rank `⌊(c − 1)/2⌋` within the bin; the exact extreme
    /// at either end of the bucket). `scratch` holds the bins meanwhile,
    /// and the bins' values worked out so far.
    pub fn fold_into(
        &self,
        totals: &mut Sketch,
        edges: Option<&Edges>,
        dd: &DdConfig,
        scratch: &mut FoldScratch,
        add: bool,
    ) {
        let FoldScratch { bins, values } = scratch;
        bins.clear();
        if edges.is_some() {
            bins.extend(self.bins());
        }
        self.fold(bins, totals, edges, dd, values, add);
    }

    /// [`Closed::fold_into`] adding the bucket just packed from `packed`
    /// (whose bins it holds: they are not read back from its bytes).
    pub fn fold_in_packed(
        &self,
        packed: &Sketch,
        totals: &mut Sketch,
        edges: Option<&Edges>,
        dd: &DdConfig,
        scratch: &mut FoldScratch,
    ) {
        let bins = packed.quantiles.bins();
        debug_assert!(bins.iter().copied().eq(self.bins()));
        self.fold(bins, totals, edges, dd, &mut scratch.values, true);
    }

    /// [`Closed::fold_into`] given the bucket's bins.
    fn fold(
        &self,
        bins: &[(i64, u64)],
        totals: &mut Sketch,
        edges: Option<&Edges>,
        dd: &DdConfig,
        values: &mut Representatives,
        add: bool,
    ) {
        let (v, n, t) = self.counts();
        let apply = |a: &mut u64, b: u64| {
            if add {
                *a += b
            } else {
                debug_assert!(*a >= b);
                *a -= b
            }
        };
        apply(&mut totals.values, v);
        apply(&mut totals.nulls, n);
        apply(&mut totals.type_violations, t);
        for (i, c) in self.categories().enumerate() {
            if totals.hist.len() <= i {
                totals.hist.resize(i + 1, 0);
            }
            apply(&mut totals.hist[i], c);
        }
        let Some(edges) = edges else { return };
        let total: u64 = bins.iter().map(|b| b.1).sum();
        if total == 0 || totals.hist.len() < edges.bins() {
            return;
        }
        // the value of bucket rank `rank`, walking from bin `start`, which holds rank `seen`
        let mut value_at = |rank: u64, start: usize, mut seen: u64| -> f64 {
            if rank == 0 {
                return self.min;
            }
            if rank + 1 == total {
                return self.max;
            }
            for &(o, c) in &bins[start..] {
                seen += c;
                if seen > rank {
                    return values.value(dd, o);
                }
            }
            self.max
        };
        let (mut i, mut before) = (0, 0u64);
        // bins and edges both ascend: the edge bin is found by walking on
        // from the last one (`Edges::bin_of`, without its search)
        let mut bin = 0;
        while i < bins.len() {
            let o = bins[i].0;
            while edges.fine.get(bin).is_some_and(|&e| e <= o) {
                bin += 1;
            }
            debug_assert_eq!(bin, edges.bin_of(o));
            let upper = edges.fine.get(bin).copied().unwrap_or(i64::MAX);
            let start = i;
            let mut c = 0;
            while i < bins.len() && bins[i].0 < upper {
                c += bins[i].1;
                i += 1;
            }
            let median = value_at(before + (c - 1) / 2, start, before);
            apply(&mut totals.hist[bin], c);
            let sum = c as f64 * median;
            if add {
                totals.hist_sum[bin] += sum;
            } else {
                totals.hist_sum[bin] -= sum;
            }
            before += c;
        }
    }

    /// Where its packed bytes are (a cache hint's address).
    pub fn data_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }

    /// Heap bytes of the packed data.
    pub fn heap_bytes(&self) -> usize {
        self.data.len()
    }
}

/// What [`Closed::fold_into`] works in: a bucket's bins, and the values
/// of the bins met so far (kept between calls).
#[derive(Clone, Debug, Default)]
pub struct FoldScratch {
    bins: Vec<(i64, u64)>,
    values: Representatives,
}

/// One exemplar list: its length, then each (key, id). The first key is
/// 8 bytes, the others the varint gap from the one before (a list is sorted
/// by key: numbers' keys are DDSketch ordinals, gaps of a byte or two). An
/// id is a varint header, then: (header & 3) 1, a 32-hex-digit id as its 16
/// bytes; 0, `header >> 2` bytes as they are; 2, none, it is the id of entry
/// `header >> 2` of `earlier` (a sparse bucket's highest values are its
/// lowest too: the high list refers to the low one).
fn put_exemplars(buf: &mut Vec<u8>, list: &Exemplars, earlier: Option<&Exemplars>) {
    let n = list.len();
    put_varint(buf, n as u64);
    let mut prev = None;
    for (key, id) in list.iter_keyed_bytes() {
        match prev {
            None => buf.extend_from_slice(&key.to_le_bytes()),
            Some(p) => put_varint(buf, key - p),
        }
        prev = Some(key);
        if let Some(i) = earlier.and_then(|e| e.iter_keyed_bytes().position(|x| x.1 == id)) {
            put_varint(buf, ((i as u64) << 2) | 2);
            continue;
        }
        if let Some(packed) = pack_hex(id) {
            put_varint(buf, 1);
            buf.extend_from_slice(&packed);
        } else {
            put_varint(buf, (id.len() as u64) << 2);
            buf.extend_from_slice(id);
        }
    }
}

/// A lowercase hex digit's value; 0xff for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// A 32-lowercase-hex-digit id as its 16 bytes (any other id: none).
#[inline]
fn pack_hex(id: &[u8]) -> Option<[u8; 16]> {
    let id: &[u8; 32] = id.try_into().ok()?;
    let mut out = [0u8; 16];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(id.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 15);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// Reads one list (see [`put_exemplars`]); `earlier` is the list its
/// references point into.
fn read_exemplars(data: &[u8], pos: &mut usize, earlier: &[(u64, String)]) -> Vec<(u64, String)> {
    let n = get_varint(data, pos);
    let mut out = Vec::with_capacity(n.min(64) as usize);
    let mut key = 0u64;
    for i in 0..n {
        if i == 0 {
            let key_bytes = data.get(*pos..*pos + 8).unwrap_or(&[0; 8]);
            key = u64::from_le_bytes(key_bytes.try_into().unwrap_or([0; 8]));
            *pos += 8;
        } else {
            key += get_varint(data, pos);
        }
        let h = get_varint(data, pos);
        let id = match h & 3 {
            1 => {
                let raw = data.get(*pos..*pos + 16).unwrap_or(&[]);
                *pos += 16;
                const HEX: &[u8; 16] = b"0123456789abcdef";
                raw.iter()
                    .flat_map(|b| {
                        [
                            HEX[(b >> 4) as usize] as char,
                            HEX[(b & 15) as usize] as char,
                        ]
                    })
                    .collect()
            }
            0 => {
                let len = (h >> 2) as usize;
                let raw = data.get(*pos..*pos + len).unwrap_or(&[]);
                *pos += len;
                String::from_utf8_lossy(raw).into_owned()
            }
            _ => earlier
                .get((h >> 2) as usize)
                .map_or_else(String::new, |e| e.1.clone()),
        };
        out.push((key, id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::Offered;

    #[test]
    fn only_32_lowercase_hex_digits_pack() {
        let id = b"0123456789abcdef00ff10a0b0c0d0e9";
        let packed = pack_hex(id).unwrap();
        assert_eq!(packed[0], 0x01);
        assert_eq!(packed[7], 0xef);
        assert_eq!(packed[9], 0xff);
        assert_eq!(packed[15], 0xe9);
        for bad in [
            &b"0123456789ABCDEF00ff10a0b0c0d0e9"[..],
            b"0123456789abcdef00ff10a0b0c0d0eg",
            b"0123456789abcdef00ff10a0b0c0d0e",
            b"0123456789abcdef00ff10a0b0c0d0e90",
            b"0123456789abcdef00ff10a0b0c0d0e/",
        ] {
            assert_eq!(pack_hex(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // what is packed reads back as it was
        let mut e = Exemplars::default();
        e.offer_keyed(7, &Offered::new(std::str::from_utf8(id).unwrap()), 3);
        e.offer_keyed(9, &Offered::new("not-hex"), 3);
        let mut buf = Vec::new();
        put_exemplars(&mut buf, &e, None);
        let back = read_exemplars(&buf, &mut 0, &[]);
        assert_eq!(
            back,
            vec![
                (7, String::from_utf8(id.to_vec()).unwrap()),
                (9, "not-hex".into())
            ]
        );
    }
}
