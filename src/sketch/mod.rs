//! Mergeable per-bucket summaries of one series: counts, nulls, type
//! violations, moments, a histogram (numbers: over the reference's bin edges;
//! categories: counts per category id) and a DDSketch for quantiles.
//!
//! Integer parts subtract exactly, so a sliding window keeps them as running
//! totals; moments and quantiles merge (DDSketch merge is the exact union of
//! its bins).

pub mod edges;

use sketches_ddsketch::{Config as DdConfig, DDSketch};

pub use edges::{Edges, ordinal};

/// What a series holds: numbers or categories (strings and booleans). Fixed
/// by the first non-null value; values of the other type are violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Numeric,
    Categorical,
}

/// Up to a few trace ids kept per bucket as examples, in fixed slots whose
/// string buffers are reused when a sketch is recycled.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Exemplars {
    slots: Vec<String>,
    len: usize,
}

impl Exemplars {
    pub fn offer(&mut self, trace_id: &str, cap: usize) {
        if self.len >= cap {
            return;
        }
        if self.slots.len() <= self.len {
            self.slots.push(String::new());
        }
        let s = &mut self.slots[self.len];
        s.clear();
        s.push_str(trace_id);
        self.len += 1;
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.slots[..self.len].iter().map(String::as_str)
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// The summary of one series over one bucket (or a merge of buckets).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Sketch {
    /// Non-null values of the series' own kind.
    pub values: u64,
    pub nulls: u64,
    /// Non-null values of the other kind (a string where numbers are expected, …).
    pub type_violations: u64,
    /// Welford mean and sum of squared deviations of numeric values.
    pub mean: f64,
    pub m2: f64,
    /// Numbers: counts over `Edges` bins (empty until the reference fixes the
    /// edges). Categories: counts per category id.
    pub hist: Vec<u64>,
    /// Numbers: sum of the values in each histogram bin (for Wasserstein),
    /// filled from the sketch when the bucket closes (`window::fill_bin_sums`).
    pub hist_sum: Vec<f64>,
    /// Quantile sketch of numeric values.
    pub quantiles: Option<DDSketch>,
    /// Example events whose value is unusual against the reference (tails, rare categories).
    pub exemplars: Exemplars,
    /// Example events with a null or a value of the wrong type.
    pub null_exemplars: Exemplars,
}

impl Sketch {
    pub fn new() -> Self {
        Sketch {
            values: 0,
            nulls: 0,
            type_violations: 0,
            mean: 0.0,
            m2: 0.0,
            hist: Vec::new(),
            hist_sum: Vec::new(),
            quantiles: None,
            exemplars: Exemplars::default(),
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
        self.mean = 0.0;
        self.m2 = 0.0;
        self.hist.clear();
        self.hist_sum.clear();
        self.quantiles = None;
        self.exemplars.clear();
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

    /// Adds a number; `bin` is its histogram bin when edges are known.
    #[inline]
    pub fn add_number(&mut self, x: f64, bin: Option<usize>, dd: &DdConfig) {
        self.values += 1;
        let d = x - self.mean;
        self.mean += d / self.values as f64;
        self.m2 += d * (x - self.mean);
        if let Some(b) = bin {
            self.hist[b] += 1;
        }
        self.quantiles
            .get_or_insert_with(|| DDSketch::new(*dd))
            .add(x);
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
        let (n1, n2) = (self.values as f64, o.values as f64);
        if n2 > 0.0 {
            let n = n1 + n2;
            let d = o.mean - self.mean;
            self.mean += d * n2 / n;
            self.m2 += o.m2 + d * d * n1 * n2 / n;
        }
        self.merge_counts(o);
        if let Some(q) = &o.quantiles {
            match &mut self.quantiles {
                Some(mine) => {
                    // one config for every series by construction; a mismatch is a defect
                    let merged = mine.merge(q);
                    debug_assert!(merged.is_ok());
                }
                None => self.quantiles = Some(q.clone()),
            }
        }
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

    /// Subtracts the integer parts of `o`, which must have been added before.
    pub fn subtract_counts(&mut self, o: &Sketch) {
        debug_assert!(self.values >= o.values && self.nulls >= o.nulls);
        self.values -= o.values;
        self.nulls -= o.nulls;
        self.type_violations -= o.type_violations;
        for (a, b) in self.hist.iter_mut().zip(&o.hist) {
            debug_assert!(*a >= *b);
            *a -= *b;
        }
        for (a, b) in self.hist_sum.iter_mut().zip(&o.hist_sum) {
            *a -= *b;
        }
    }

    /// Sizes the histogram for `bins` numeric bins (empty when edges are not known yet).
    pub fn size_numeric_hist(&mut self, bins: usize) {
        self.hist.clear();
        self.hist.resize(bins, 0);
        self.hist_sum.clear();
        self.hist_sum.resize(bins, 0.0);
    }

    /// Population variance of the numeric values.
    pub fn variance(&self) -> f64 {
        if self.values > 1 {
            self.m2 / self.values as f64
        } else {
            0.0
        }
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles
            .as_ref()
            .and_then(|s| s.quantile(q).ok().flatten())
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("values", &self.values)
            .field("nulls", &self.nulls)
            .field("type_violations", &self.type_violations)
            .field("mean", &self.mean)
            .field("hist", &self.hist)
            .field(
                "quantile_values",
                &self.quantiles.as_ref().map(|q| q.count()),
            )
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

    fn sketch_of(xs: &[Option<f64>], edges: &Edges, dd: &DdConfig) -> Sketch {
        let mut s = Sketch::new();
        s.size_numeric_hist(edges.bins());
        for x in xs {
            match x {
                Some(x) => s.add_number(*x, Some(edges.bin_of(ordinal(dd, *x))), dd),
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
            let scale = 1.0 + whole.mean.abs();
            prop_assert!((merged.mean - whole.mean).abs() <= 1e-9 * scale * 1e3);
            let vscale = 1.0 + whole.variance();
            prop_assert!((merged.variance() - whole.variance()).abs() <= 1e-6 * vscale);
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                prop_assert_eq!(merged.quantile(q), whole.quantile(q));
            }
        }
    }

    #[test]
    fn subtract_undoes_merge() {
        let dd = dd_config(0.01);
        let edges = Edges::from_ordinals(vec![ordinal(&dd, 1.0)], 1);
        let a = sketch_of(&[Some(0.5), Some(2.0), None], &edges, &dd);
        let b = sketch_of(&[Some(3.0), None], &edges, &dd);
        let mut t = a.clone();
        t.merge_counts(&b);
        t.subtract_counts(&b);
        assert_eq!(
            (t.values, t.nulls, t.hist.clone()),
            (a.values, a.nulls, a.hist.clone())
        );
    }
}
