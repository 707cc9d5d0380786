//! The statistical tests, one file per family. Pure functions over counts
//! and quantiles, so each is checked against independently computed values
//! (`tests/fixtures/stats/`, made by the script beside them).

pub mod catalog;
pub mod categorical;
pub mod fdr;
pub mod numeric;
pub mod quality;
pub mod sequential;

pub use catalog::{Scored, Test};

/// Proportions are floored at this before taking logarithms (PSI), so an
/// empty bin on one side gives a large but finite contribution.
pub const PSI_EPSILON: f64 = 1e-4;

/// Population stability index over matching bins of two count vectors:
/// Σ (c − r) · ln(c / r) over proportions floored at [`PSI_EPSILON`].
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (nr, nc) = (total(reference), total(current));
    if nr == 0.0 || nc == 0.0 {
        return 0.0;
    }
    let len = reference.len().max(current.len());
    (0..len)
        .map(|i| {
            let r = (at(reference, i) / nr).max(PSI_EPSILON);
            let c = (at(current, i) / nc).max(PSI_EPSILON);
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// Jensen–Shannon distance, base 2 (in [0, 1]): the square root of the
/// divergence, as `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> f64 {
    let (nr, nc) = (total(reference), total(current));
    if nr == 0.0 || nc == 0.0 {
        return 0.0;
    }
    let len = reference.len().max(current.len());
    let mut d = 0.0;
    for i in 0..len {
        let p = at(reference, i) / nr;
        let q = at(current, i) / nc;
        let m = 0.5 * (p + q);
        if p > 0.0 {
            d += 0.5 * p * (p / m).log2();
        }
        if q > 0.0 {
            d += 0.5 * q * (q / m).log2();
        }
    }
    d.max(0.0).sqrt()
}

/// Total variation distance: half the L1 distance of the proportions.
pub fn total_variation(reference: &[u64], current: &[u64]) -> f64 {
    let (nr, nc) = (total(reference), total(current));
    if nr == 0.0 || nc == 0.0 {
        return 0.0;
    }
    let len = reference.len().max(current.len());
    0.5 * (0..len)
        .map(|i| (at(reference, i) / nr - at(current, i) / nc).abs())
        .sum::<f64>()
}

#[inline]
fn at(v: &[u64], i: usize) -> f64 {
    v.get(i).copied().unwrap_or(0) as f64
}

#[inline]
fn total(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Reference values made by `tests/fixtures/stats/make_fixtures.py`.
    use serde_json::Value;
    use std::sync::LazyLock;

    pub static STATS: LazyLock<Value> = LazyLock::new(|| {
        serde_json::from_str(include_str!("../../tests/fixtures/stats/stats.json")).unwrap()
    });

    pub fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }
    pub fn u64s(v: &Value) -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    }

    /// |a − b| <= abs + rel·|b|
    pub fn close(a: f64, b: f64, abs: f64, rel: f64) -> bool {
        (a - b).abs() <= abs + rel * b.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    /// Tolerance: 1e-9 relative; the formulas are the same, the code is not.
    #[test]
    fn distances_match_scipy_and_numpy() {
        for case in STATS["distances"].as_array().unwrap() {
            let r = u64s(&case["reference"]);
            let c = u64s(&case["current"]);
            let name = case["name"].as_str().unwrap();
            let want = |k: &str| case[k].as_f64().unwrap();
            assert!(
                close(psi(&r, &c), want("psi"), 1e-12, 1e-9),
                "{name} psi {} vs {}",
                psi(&r, &c),
                want("psi")
            );
            assert!(
                close(jensen_shannon(&r, &c), want("js"), 1e-12, 1e-9),
                "{name} js"
            );
            assert!(
                close(total_variation(&r, &c), want("tv"), 1e-12, 1e-9),
                "{name} tv"
            );
        }
    }

    #[test]
    fn identical_distributions_are_at_distance_zero() {
        let a = [10, 20, 30, 0];
        let b = [20, 40, 60, 0];
        assert!(psi(&a, &b).abs() < 1e-15);
        assert!(jensen_shannon(&a, &b).abs() < 1e-7);
        assert!(total_variation(&a, &b).abs() < 1e-15);
    }
}
