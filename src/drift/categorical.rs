//! Tests for categorical series: chi-square test of homogeneity (p-value
//! from statrs) and the share of current values in categories the reference
//! never saw. PSI, Jensen–Shannon and total variation live in [`crate::drift`].

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Chi-square statistic, degrees of freedom and p-value of the 2×K
/// contingency table (reference, current) over categories seen on either
/// side, as `scipy.stats.chi2_contingency(..., correction=False)`.
pub fn chi_square(reference: &[u64], current: &[u64]) -> (f64, usize, f64) {
    let nr: u64 = reference.iter().sum();
    let nc: u64 = current.iter().sum();
    if nr == 0 || nc == 0 {
        return (0.0, 0, 1.0);
    }
    let n = (nr + nc) as f64;
    let (mut stat, mut k) = (0.0, 0usize);
    for i in 0..reference.len().max(current.len()) {
        let r = reference.get(i).copied().unwrap_or(0) as f64;
        let c = current.get(i).copied().unwrap_or(0) as f64;
        let col = r + c;
        if col == 0.0 {
            continue;
        }
        k += 1;
        let er = col * nr as f64 / n;
        let ec = col * nc as f64 / n;
        stat += (r - er).powi(2) / er + (c - ec).powi(2) / ec;
    }
    if k < 2 {
        return (0.0, 0, 1.0);
    }
    let dof = k - 1;
    let p = ChiSquared::new(dof as f64)
        .map(|d| d.sf(stat))
        .unwrap_or(1.0);
    (stat, dof, p)
}

/// Share of current values in categories with no reference count.
pub fn new_category_share(reference: &[u64], current: &[u64]) -> f64 {
    let nc: u64 = current.iter().sum();
    if nc == 0 {
        return 0.0;
    }
    let new: u64 = current
        .iter()
        .enumerate()
        .filter(|(i, _)| reference.get(*i).copied().unwrap_or(0) == 0)
        .map(|(_, c)| c)
        .sum();
    new as f64 / nc as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fixtures::*;

    /// Statistic: 1e-9 relative. p-value: 1e-9 relative (or 1e-300 absolute
    /// where it underflows); statrs and scipy compute the same regularised
    /// gamma function differently.
    #[test]
    fn chi_square_matches_scipy() {
        for case in STATS["categorical"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (stat, dof, p) = chi_square(&u64s(&case["reference"]), &u64s(&case["current"]));
            assert!(
                close(stat, case["chi2"].as_f64().unwrap(), 1e-12, 1e-9),
                "{name} stat={stat}"
            );
            assert_eq!(dof as u64, case["dof"].as_u64().unwrap(), "{name}");
            assert!(
                close(p, case["p"].as_f64().unwrap(), 1e-300, 1e-7),
                "{name} p={p} want {}",
                case["p"]
            );
        }
    }

    #[test]
    fn new_categories_are_counted() {
        assert_eq!(new_category_share(&[5, 5, 0], &[1, 1, 2]), 0.5);
        assert_eq!(new_category_share(&[5, 5], &[1, 1, 2, 4]), 0.75);
        assert_eq!(new_category_share(&[5], &[]), 0.0);
    }
}
