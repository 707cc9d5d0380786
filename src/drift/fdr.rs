//! The false-discovery-rate gate: Benjamini–Hochberg across every p-value
//! tested at one watermark.

/// Benjamini–Hochberg adjusted p-values, as
/// `scipy.stats.false_discovery_control(p, method="bh")`.
pub fn bh_adjust(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut adjusted = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        adjusted[i] = running;
    }
    adjusted
}

/// Which p-values are discoveries at false-discovery rate `q`.
pub fn bh_reject(p: &[f64], q: f64) -> Vec<bool> {
    bh_adjust(p).into_iter().map(|a| a <= q).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fixtures::*;

    /// 1e-12 relative.
    #[test]
    fn bh_matches_scipy() {
        for case in STATS["fdr"].as_array().unwrap() {
            let got = bh_adjust(&f64s(&case["p"]));
            let want = f64s(&case["adjusted"]);
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w, 1e-15, 1e-12), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn rejects_only_small_p_values() {
        assert_eq!(
            bh_reject(&[0.001, 0.5, 0.02, 0.9], 0.05),
            vec![true, false, true, false]
        );
        assert!(bh_reject(&[], 0.05).is_empty());
    }
}
