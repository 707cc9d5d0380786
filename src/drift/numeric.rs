//! Tests for numeric series: two-sample Kolmogorov–Smirnov (statistic over
//! shared bins, p-value from the Kolmogorov limiting distribution) and the
//! Wasserstein-1 distance between weighted points. PSI and Jensen–Shannon
//! over reference-quantile bins live in [`crate::drift`].

/// KS statistic from counts over the same ordered bins: the largest gap
/// between the two cumulative distributions at the bin edges. Exact when
/// the bins separate every distinct value; otherwise a lower bound off by
/// at most the mass of one bin.
pub fn ks_statistic(reference: &[u64], current: &[u64]) -> f64 {
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr == 0 || nc == 0 {
        return 0.0;
    }
    let (mut cr, mut cc, mut d) = (0u64, 0u64, 0.0f64);
    for i in 0..reference.len().max(current.len()) {
        cr += reference.get(i).copied().unwrap_or(0);
        cc += current.get(i).copied().unwrap_or(0);
        d = d.max((cr as f64 / nr as f64 - cc as f64 / nc as f64).abs());
    }
    d
}

/// Two-sided p-value of a two-sample KS statistic `d` for sample sizes `n`
/// and `m`: the Kolmogorov distribution's survival function at
/// √(nm/(n+m))·d, as `scipy.stats.kstwobign.sf`.
pub fn ks_p_value(d: f64, n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = (n as f64 * m as f64) / (n as f64 + m as f64);
    kolmogorov_sf(en.sqrt() * d)
}

/// Survival function of the Kolmogorov distribution.
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        // the alternating series converges slowly here; use the dual form
        // P(K <= x) = √(2π)/x · Σ_{k≥1} exp(−(2k−1)²π²/(8x²))
        // the terms fall fast (the second is below 1e-5 of the first even
        // at x = 1): once one is under half a unit in the last place of the
        // sum, it and every later one leave the sum as it is, so stopping
        // there gives the same bits as all twenty terms
        let mut s = 0.0f64;
        for k in 1..=20 {
            let t = (2 * k - 1) as f64;
            let term = (-(t * t) * std::f64::consts::PI.powi(2) / (8.0 * x * x)).exp();
            if term == 0.0 || term < s * f64::EPSILON / 4.0 {
                break;
            }
            s += term;
        }
        return (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * s).clamp(0.0, 1.0);
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let kf = k as f64;
        let term = (-2.0 * kf * kf * x * x).exp();
        s += if k % 2 == 1 { term } else { -term };
        if term < 1e-18 {
            break;
        }
    }
    (2.0 * s).clamp(0.0, 1.0)
}

/// Wasserstein-1 distance between two discrete distributions given as
/// (value, weight) points sorted by value: ∫ |F(x) − G(x)| dx. Weights are
/// normalised. With every sample as a point of weight 1 this is the exact
/// distance between the empirical distributions.
pub fn wasserstein(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    wasserstein_points(a.iter().copied(), b.iter().copied())
}

/// [`wasserstein`] over points as iterators (each walked twice: once for
/// the total weight), so the engine's evaluation allocates nothing.
pub fn wasserstein_points<A, B>(a: A, b: B) -> f64
where
    A: Iterator<Item = (f64, f64)> + Clone,
    B: Iterator<Item = (f64, f64)> + Clone,
{
    let wa: f64 = a.clone().map(|p| p.1).sum();
    let wb: f64 = b.clone().map(|p| p.1).sum();
    if wa <= 0.0 || wb <= 0.0 {
        return 0.0;
    }
    between_cdfs(a.map(|p| (p.0, p.1 / wa)), b.map(|q| (q.0, q.1 / wb)))
}

/// [`wasserstein_points`] from a quantile function kept as `k` equal-mass
/// points (each 1/k) to points `b` of total weight `wb`: the same bits,
/// without a pass to weigh the quantile points (k of them, weight 1 each,
/// is k exactly) nor a division per point (1/k once).
pub fn wasserstein_from_quantiles<B>(quantiles: &[f64], b: B, wb: f64) -> f64
where
    B: Iterator<Item = (f64, f64)>,
{
    if quantiles.is_empty() || wb <= 0.0 {
        return 0.0;
    }
    let step = 1.0 / quantiles.len() as f64;
    between_cdfs(
        quantiles.iter().map(|&x| (x, step)),
        b.map(|q| (q.0, q.1 / wb)),
    )
}

/// ∫ |F(x) − G(x)| dx for two step functions given as their jumps
/// (position, height), each sorted by position. Walked along `b`, with the
/// points of `a` up to each of b's taken in between: a branch on which side
/// comes next would be mispredicted at every crossing, this loop's exit once
/// per point of `b`. Tied points add nothing (no width between them).
fn between_cdfs(
    mut a: impl Iterator<Item = (f64, f64)>,
    b: impl Iterator<Item = (f64, f64)>,
) -> f64 {
    let mut pa = a.next();
    let (mut fa, mut fb) = (0.0f64, 0.0f64);
    let mut x_prev: Option<f64> = None;
    let mut dist = 0.0;
    let mut width = |x: f64, fa: f64, fb: f64, x_prev: Option<f64>| {
        if let Some(xp) = x_prev
            && x != xp
        {
            dist += (fa - fb).abs() * (x - xp);
        }
    };
    for (xb, db) in b {
        while let Some((xa, da)) = pa.filter(|p| p.0 <= xb) {
            width(xa, fa, fb, x_prev);
            fa += da;
            x_prev = Some(xa);
            pa = a.next();
        }
        width(xb, fa, fb, x_prev);
        fb += db;
        x_prev = Some(xb);
    }
    while let Some((xa, da)) = pa {
        width(xa, fa, fb, x_prev);
        fa += da;
        x_prev = Some(xa);
        pa = a.next();
    }
    dist
}

/// Mid-point quantile levels ((i + ½)/k) at which a reference's quantile
/// function is kept.
pub fn quantile_levels(k: usize) -> impl Iterator<Item = f64> {
    (0..k).map(move |i| (i as f64 + 0.5) / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fixtures::*;

    /// Counts of both samples over every distinct value: the exact KS.
    fn counts_over_distinct(a: &[f64], b: &[f64]) -> (Vec<u64>, Vec<u64>) {
        let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
        all.sort_by(f64::total_cmp);
        all.dedup();
        let count = |s: &[f64]| {
            let mut c = vec![0u64; all.len()];
            for x in s {
                c[all.binary_search_by(|v| v.total_cmp(x)).unwrap()] += 1;
            }
            c
        };
        (count(a), count(b))
    }

    /// KS statistic: exact (1e-12). p-value: against scipy's kstwobign.sf
    /// (1e-9 relative), and within 0.02 absolute of ks_2samp's own p.
    /// Wasserstein: every sample a point of weight 1, against
    /// scipy.stats.wasserstein_distance, 1e-9 relative.
    #[test]
    fn ks_and_wasserstein_match_scipy() {
        for case in STATS["numeric"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let mut a = f64s(&case["reference"]);
            let mut b = f64s(&case["current"]);
            let (ca, cb) = counts_over_distinct(&a, &b);
            let d = ks_statistic(&ca, &cb);
            assert!(
                close(d, case["ks_d"].as_f64().unwrap(), 1e-12, 0.0),
                "{name} d={d}"
            );
            let p = ks_p_value(d, a.len() as u64, b.len() as u64);
            assert!(
                close(p, case["ks_p_asymp"].as_f64().unwrap(), 1e-300, 1e-9),
                "{name} p={p}"
            );
            assert!(
                close(p, case["ks_p_scipy"].as_f64().unwrap(), 0.02, 0.0),
                "{name} p={p}"
            );
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let pa: Vec<(f64, f64)> = a.iter().map(|&x| (x, 1.0)).collect();
            let pb: Vec<(f64, f64)> = b.iter().map(|&x| (x, 1.0)).collect();
            let w = wasserstein(&pa, &pb);
            assert!(
                close(w, case["wasserstein"].as_f64().unwrap(), 1e-9, 1e-9),
                "{name} w={w}"
            );
        }
    }

    #[test]
    fn kolmogorov_sf_is_continuous_at_the_switch() {
        let below = kolmogorov_sf(1.0 - 1e-9);
        let above = kolmogorov_sf(1.0 + 1e-9);
        assert!((below - above).abs() < 1e-7, "{below} {above}");
        assert_eq!(kolmogorov_sf(0.0), 1.0);
        assert!(kolmogorov_sf(10.0) < 1e-80);
    }

    /// Stopping the dual series once a term cannot move the sum gives the
    /// same bits as summing all twenty terms, over the whole range it serves.
    #[test]
    fn kolmogorov_sf_stops_early_without_changing_a_bit() {
        let all_twenty = |x: f64| {
            let s: f64 = (1..=20)
                .map(|k| {
                    let t = (2 * k - 1) as f64;
                    (-(t * t) * std::f64::consts::PI.powi(2) / (8.0 * x * x)).exp()
                })
                .sum();
            (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * s).clamp(0.0, 1.0)
        };
        for i in 1..20_000 {
            let x = i as f64 / 20_000.0;
            assert_eq!(
                kolmogorov_sf(x).to_bits(),
                all_twenty(x).to_bits(),
                "x = {x}"
            );
        }
    }

    /// The walk over both sides' points in merged order, each distinct
    /// position once (the implementation before the one along `b`).
    fn merged_walk(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
        let wa: f64 = a.iter().map(|p| p.1).sum();
        let wb: f64 = b.iter().map(|p| p.1).sum();
        if wa <= 0.0 || wb <= 0.0 {
            return 0.0;
        }
        let (mut i, mut j) = (0, 0);
        let (mut fa, mut fb) = (0.0f64, 0.0f64);
        let mut x_prev: Option<f64> = None;
        let mut dist = 0.0;
        loop {
            let x = match (a.get(i), b.get(j)) {
                (Some(p), Some(q)) => p.0.min(q.0),
                (Some(p), None) => p.0,
                (None, Some(q)) => q.0,
                (None, None) => break,
            };
            if let Some(xp) = x_prev {
                dist += (fa - fb).abs() * (x - xp);
            }
            while let Some(p) = a.get(i).filter(|p| p.0 <= x) {
                fa += p.1 / wa;
                i += 1;
            }
            while let Some(q) = b.get(j).filter(|q| q.0 <= x) {
                fb += q.1 / wb;
                j += 1;
            }
            x_prev = Some(x);
        }
        dist
    }

    proptest::proptest! {
        /// Walked along one side: the same bits as the merged walk, ties
        /// between and within the sides included.
        #[test]
        fn wasserstein_matches_the_merged_walk_bit_for_bit(
            mut a in proptest::collection::vec((-20i32..20, 0u32..5), 0..80),
            mut b in proptest::collection::vec((-20i32..20, 0u32..5), 0..80),
            scale in 0.01f64..1e6,
        ) {
            a.sort();
            b.sort();
            let pts = |v: &[(i32, u32)]| -> Vec<(f64, f64)> {
                v.iter().map(|&(x, w)| (x as f64 * scale, w as f64)).collect()
            };
            let (pa, pb) = (pts(&a), pts(&b));
            proptest::prop_assert_eq!(
                wasserstein(&pa, &pb).to_bits(),
                merged_walk(&pa, &pb).to_bits()
            );
        }
    }

    proptest::proptest! {
        /// From a quantile function's equal-mass points: the same bits as
        /// the general walk with every point of weight 1.
        #[test]
        fn wasserstein_from_quantiles_matches_the_general_walk_bit_for_bit(
            mut q in proptest::collection::vec(-20i32..20, 0..120),
            mut b in proptest::collection::vec((-20i32..20, 0u64..50), 0..60),
            scale in 0.01f64..1e6,
        ) {
            q.sort();
            b.sort();
            let qs: Vec<f64> = q.iter().map(|&x| x as f64 * scale).collect();
            let pb: Vec<(f64, f64)> =
                b.iter().map(|&(x, c)| (x as f64 * scale, c as f64)).collect();
            let wb = b.iter().map(|p| p.1).sum::<u64>() as f64;
            let special = wasserstein_from_quantiles(&qs, pb.iter().copied(), wb);
            let general =
                wasserstein_points(qs.iter().map(|&x| (x, 1.0)), pb.iter().copied());
            proptest::prop_assert_eq!(special.to_bits(), general.to_bits());
        }
    }
}
