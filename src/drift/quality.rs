//! Data-quality tests: a rate (nulls, type violations) now against the
//! reference's, by the pooled two-proportion z-test; and the normal
//! distribution's two-sided p-value the quality tests share.

use statrs::distribution::{ContinuousCDF, Normal};

/// Two-sided pooled two-proportion z-test of `x1/n1` (reference) against
/// `x2/n2` (current). Returns (z, p).
pub fn two_proportion(x1: u64, n1: u64, x2: u64, n2: u64) -> (f64, f64) {
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (p2 - p1) / se;
    (z, normal_two_sided(z))
}

/// Two-sided p-value of a standard normal statistic `z` (NaN: 1, ±∞: 0).
pub fn normal_two_sided(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    (2.0 * Normal::standard().sf(z.abs())).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fixtures::*;

    /// z: 1e-9 relative; p: 1e-7 relative (or 1e-300 absolute).
    #[test]
    fn two_proportion_matches_scipy() {
        for case in STATS["two_proportion"].as_array().unwrap() {
            let c = u64s(&case["counts"]);
            let (z, p) = two_proportion(c[0], c[1], c[2], c[3]);
            assert!(
                close(z, case["z"].as_f64().unwrap(), 1e-12, 1e-9),
                "{case} z={z}"
            );
            assert!(
                close(p, case["p"].as_f64().unwrap(), 1e-300, 1e-7),
                "{case} p={p}"
            );
        }
    }
}
