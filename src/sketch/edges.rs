//! Histogram bin edges taken from a reference's quantiles and placed on
//! DDSketch bin boundaries.
//!
//! A value's *ordinal* is its DDSketch bin as one ordered integer (negative
//! bins, zero, positive bins). Edges are ordinals, so a histogram over them
//! is exact, and the reference's counts per bin can be read back exactly
//! from its DDSketch, although the edges were chosen after the reference
//! was summarised.

use sketches_ddsketch::Config as DdConfig;

use super::Quantiles;
use crate::event::{Prediction, Scalar, Value};

const POS: i64 = 1 << 32;

/// The ordered DDSketch bin of `x`.
#[inline]
pub fn ordinal(cfg: &DdConfig, x: f64) -> i64 {
    let m = cfg.min_possible();
    if x > m {
        POS + key(cfg, x) as i64
    } else if x < -m {
        -(POS + key(cfg, -x) as i64)
    } else {
        0
    }
}

/// `cfg.key(x)`, bit for bit: `⌊log_γ x⌋` as an `i32` (saturating), its
/// floor taken by truncating and stepping down — without SSE4.1 (the
/// baseline x86-64 target) `f64::floor` is a call into libm, ~18
/// instructions a value.
#[inline]
fn key(cfg: &DdConfig, x: f64) -> i32 {
    let y = cfg.log_gamma(x);
    // |y| < 2^53 whenever it fits an i32: truncation is exact there
    let t = y as i64;
    let floor = if (t as f64) > y {
        t.saturating_sub(1)
    } else {
        t
    };
    floor.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// A prediction's place that holds no number (a category, a null).
const NOT_A_NUMBER: i64 = i64::MIN;

/// `dd` as [`Ordinals`] hold it: its γ and smallest indexable value.
fn config_key(dd: &DdConfig) -> (u64, u64) {
    (dd.gamma.to_bits(), dd.min_possible().to_bits())
}

/// Works out the ordinal of each of `p`'s numbers for `dd` ([`Ordinals`]):
/// on the thread that decoded it, so the engine's need not.
pub fn prepare(p: &mut Prediction, dd: &DdConfig) {
    let bin = |x: Option<f64>| x.map_or(NOT_A_NUMBER, |x| ordinal(dd, x));
    let features = p.features.iter().map(|(_, v)| {
        bin(match v {
            Value::Number(x) => Some(*x),
            _ => None,
        })
    });
    let prediction = bin(match p.prediction {
        Scalar::Number(x) => Some(x),
        Scalar::Text(_) => None,
    });
    let score = bin(p.score);
    let bins = features.chain([prediction, score]);
    let mut o = std::mem::take(&mut p.prepared.ordinals);
    o.fill(config_key(dd), bins);
    p.prepared.ordinals = o;
}

/// The ordinals [`prepare`] worked out for `p` and `dd`, if any: its
/// features' in order, then its prediction's and its score's.
#[inline]
pub fn prepared<'a>(p: &'a Prediction, dd: &DdConfig) -> Option<&'a [i64]> {
    p.prepared
        .ordinals
        .get(config_key(dd), p.features.len() + 2)
}

/// The ordinal of `x`, the number at place `i` of a prediction whose
/// [`prepared`] ordinals are `pre`: read from them, or worked out here.
#[inline]
pub fn ordinal_at(pre: Option<&[i64]>, i: usize, dd: &DdConfig, x: f64) -> i64 {
    match pre.and_then(|b| b.get(i)) {
        Some(&o) if o != NOT_A_NUMBER => o,
        _ => ordinal(dd, x),
    }
}

/// The DDSketch key of an ordinal and whether its values are negative
/// (`None`: the zero bin).
#[inline]
pub fn signed_key(ordinal: i64) -> Option<(bool, i32)> {
    if ordinal > POS / 2 {
        Some((false, (ordinal - POS) as i32))
    } else if ordinal < -POS / 2 {
        Some((true, (-ordinal - POS) as i32))
    } else {
        None
    }
}

/// The value at which bins of ordinal `e - 1` end and bins of ordinal `e` begin (approximately, for display).
pub fn boundary_value(cfg: &DdConfig, e: i64) -> f64 {
    match signed_key(e) {
        Some((false, k)) => cfg.gamma.powi(k),
        Some((true, k)) => -cfg.gamma.powi(k + 1),
        None => 0.0,
    }
}

/// Bin edges of a numeric series: fine bins (for KS) of which every coarse
/// boundary (for PSI and Jensen–Shannon) is one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Edges {
    /// Sorted, distinct ordinals; a value goes right of an edge when its ordinal is >= the edge.
    pub fine: Vec<i64>,
    /// Fine-bin indices at which each coarse bin after the first starts.
    pub coarse_starts: Vec<usize>,
}

impl Edges {
    /// Edges from explicit ordinals; every `coarse_every`-th one is also a coarse edge.
    pub fn from_ordinals(mut fine: Vec<i64>, coarse_every: usize) -> Edges {
        fine.sort_unstable();
        fine.dedup();
        let coarse_starts = (1..=fine.len())
            .filter(|i| i % coarse_every.max(1) == 0)
            .collect();
        Edges {
            fine,
            coarse_starts,
        }
    }

    /// Edges at the reference's quantiles: `coarse` equal-mass bins and
    /// `fine` equal-mass bins, each edge just above the DDSketch bin that
    /// holds the quantile (so tied values stay in one bin).
    pub fn from_reference(
        cfg: &DdConfig,
        reference: &Quantiles,
        coarse: usize,
        fine: usize,
    ) -> Edges {
        let edge_at = |q: f64| reference.quantile(cfg, q).map(|x| ordinal(cfg, x) + 1);
        let coarse_edges: Vec<i64> = (1..coarse)
            .filter_map(|i| edge_at(i as f64 / coarse as f64))
            .collect();
        let mut all: Vec<i64> = (1..fine)
            .filter_map(|i| edge_at(i as f64 / fine as f64))
            .collect();
        all.extend_from_slice(&coarse_edges);
        // an edge above every value of the reference makes an empty last bin; drop it
        if let Some(max) = reference.max() {
            let top = ordinal(cfg, max) + 1;
            all.retain(|&e| e < top);
        }
        all.sort_unstable();
        all.dedup();
        let mut coarse_starts: Vec<usize> = coarse_edges
            .iter()
            .filter_map(|e| all.binary_search(e).ok().map(|i| i + 1))
            .collect();
        coarse_starts.sort_unstable();
        coarse_starts.dedup();
        Edges {
            fine: all,
            coarse_starts,
        }
    }

    /// Number of fine bins.
    pub fn bins(&self) -> usize {
        self.fine.len() + 1
    }

    #[inline]
    pub fn bin_of(&self, ordinal: i64) -> usize {
        self.fine.partition_point(|&e| e <= ordinal)
    }

    /// Sums fine-bin counts into coarse bins.
    pub fn coarse(&self, fine_counts: &[u64], out: &mut Vec<u64>) {
        out.clear();
        let mut start = 0;
        for &end in self
            .coarse_starts
            .iter()
            .chain(std::iter::once(&fine_counts.len()))
        {
            out.push(fine_counts[start..end.min(fine_counts.len())].iter().sum());
            start = end.min(fine_counts.len());
        }
    }

    /// Display label of coarse bin `i`, e.g. "[12.1, 40.4)".
    pub fn coarse_label(&self, cfg: &DdConfig, i: usize) -> String {
        let lo = if i == 0 {
            None
        } else {
            Some(self.fine[self.coarse_starts[i - 1] - 1])
        };
        let hi = self.coarse_starts.get(i).map(|&s| self.fine[s - 1]);
        let fmt = |e: Option<i64>, inf: &str| {
            e.map(|e| format_num(boundary_value(cfg, e)))
                .unwrap_or_else(|| inf.to_string())
        };
        format!("[{}, {})", fmt(lo, "-inf"), fmt(hi, "inf"))
    }

    /// Exact counts per fine bin of the values summarised in `q`.
    pub fn counts_from_sketch(&self, q: &Quantiles) -> Vec<u64> {
        let mut out = vec![0; self.bins()];
        let mut bin = 0;
        for &(o, c) in q.bins() {
            // both ascend: walk the edges rather than search them
            while bin < self.fine.len() && self.fine[bin] <= o {
                bin += 1;
            }
            out[bin] += c;
        }
        out
    }
}

/// Short human formatting of a number (4 significant digits).
pub fn format_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..=8).contains(&mag) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::dd_config;
    use proptest::prelude::*;

    proptest! {
        /// A value's key is sketches-ddsketch's, bit for bit, for any
        /// positive double (subnormal, huge, infinite, a bin's edge and
        /// its neighbours) at any accuracy.
        #[test]
        fn keys_are_ddsketchs(
            bits in prop_oneof![
                any::<u64>().prop_map(|b| b & !(1 << 63)),
                Just(1.0f64.to_bits()),
                (0.0f64..100.0).prop_map(f64::to_bits),
                (-40i32..40, -2i64..3).prop_map(|(k, d)| {
                    let x = dd_config(0.01).pow_gamma(k);
                    (x.to_bits() as i64 + d) as u64
                }),
            ],
            alpha in prop_oneof![Just(0.01), Just(0.001), Just(0.05), 0.0001f64..0.2],
        ) {
            let x = f64::from_bits(bits);
            prop_assume!(!x.is_nan());
            let cfg = dd_config(alpha);
            prop_assert_eq!(key(&cfg, x), cfg.key(x), "x = {:e}", x);
        }
    }

    /// The ordinals worked out beside the engine are the ones it would
    /// work out: each number's, held only for their configuration and event.
    #[test]
    fn prepared_ordinals_are_each_numbers_and_held_for_one_event() {
        let dd = dd_config(0.01);
        let mut p = Prediction {
            features: vec![
                ("a".into(), Value::Number(3.5)),
                ("b".into(), Value::Text("x".into())),
                ("c".into(), Value::Null),
                ("d".into(), Value::Number(-1e-12)),
                ("e".into(), Value::Number(-7e5)),
            ],
            prediction: Scalar::Number(0.25),
            score: Some(0.9),
            ..Prediction::default()
        };
        assert!(prepared(&p, &dd).is_none());
        prepare(&mut p, &dd);
        let pre = prepared(&p, &dd);
        for (i, x) in [(0, 3.5), (3, -1e-12), (4, -7e5), (5, 0.25), (6, 0.9)] {
            assert_eq!(pre.unwrap()[i], ordinal(&dd, x), "number {i}");
            assert_eq!(ordinal_at(pre, i, &dd, x), ordinal(&dd, x));
        }
        // not a number there, or none held: worked out from the value given
        assert_eq!(ordinal_at(pre, 1, &dd, 2.0), ordinal(&dd, 2.0));
        assert_eq!(ordinal_at(None, 0, &dd, 2.0), ordinal(&dd, 2.0));
        // for another configuration, or another event's features: none
        assert!(prepared(&p, &dd_config(0.02)).is_none());
        let mut q = p.clone();
        q.features.pop();
        assert!(prepared(&q, &dd).is_none());
        // not part of the event
        let mut r = p.clone();
        r.prepared = Default::default();
        assert_eq!(p, r);
        assert_eq!(format!("{p:?}"), format!("{r:?}"));
        // a spent event decoded into holds none
        p.reset();
        p.features.push(("a".into(), Value::Number(1.0)));
        assert!(prepared(&p, &dd).is_none());
    }

    #[test]
    fn ordinals_are_monotone() {
        let cfg = dd_config(0.01);
        let xs = [
            -1e9, -3.5, -1.0, -1e-6, 0.0, 1e-12, 1e-6, 0.5, 1.0, 1.02, 7.0, 1e12,
        ];
        for w in xs.windows(2) {
            assert!(ordinal(&cfg, w[0]) <= ordinal(&cfg, w[1]), "{:?}", w);
        }
    }

    #[test]
    fn reference_counts_read_back_exactly() {
        let cfg = dd_config(0.01);
        // discrete values with ties, negatives and zeros
        let xs: Vec<f64> = (0..5000)
            .map(|i| ((i * 7919) % 23) as f64 - 5.0 + if i % 3 == 0 { 0.25 } else { 0.0 })
            .collect();
        let mut dd = Quantiles::default();
        xs.iter().for_each(|&x| dd.add(x, ordinal(&cfg, x)));
        let edges = Edges::from_reference(&cfg, &dd, 10, 40);
        let mut direct = vec![0u64; edges.bins()];
        for &x in &xs {
            direct[edges.bin_of(ordinal(&cfg, x))] += 1;
        }
        assert_eq!(edges.counts_from_sketch(&dd), direct);
        assert!(edges.bins() > 10);
        let mut coarse = Vec::new();
        edges.coarse(&direct, &mut coarse);
        assert_eq!(coarse.iter().sum::<u64>(), 5000);
        assert!(coarse.len() <= 10 && coarse.len() >= 5, "{coarse:?}");
    }

    #[test]
    fn continuous_reference_gives_near_equal_mass_bins() {
        let cfg = dd_config(0.01);
        let mut dd = Quantiles::default();
        let xs: Vec<f64> = (1..=10000)
            .map(|i| (i as f64 / 10001.0).ln() * -3.0)
            .collect();
        xs.iter().for_each(|&x| dd.add(x, ordinal(&cfg, x)));
        let edges = Edges::from_reference(&cfg, &dd, 10, 40);
        let fine = edges.counts_from_sketch(&dd);
        let mut coarse = Vec::new();
        edges.coarse(&fine, &mut coarse);
        assert_eq!(coarse.len(), 10);
        for c in coarse {
            assert!((800..=1200).contains(&c), "{c}");
        }
    }

    #[test]
    fn formats_numbers_briefly() {
        assert_eq!(format_num(12.345678), "12.35");
        assert_eq!(format_num(0.001234), "0.001234");
        assert_eq!(format_num(120000.0), "120000");
        assert_eq!(format_num(-2.5), "-2.5");
    }
}
