//! Model quality from joined (prediction, outcome) pairs: a mergeable
//! per-bucket summary and the metrics read from it.
//!
//! Binary labels with a score: accuracy at a threshold, precision, recall,
//! log loss, Brier score, expected calibration error, AUC. Multiclass:
//! accuracy and per-class recall. Regression: MAE, RMSE, bias. The label
//! distribution itself (label shift) is kept too. Checked against
//! scikit-learn in `tests/fixtures/quality/`.

pub mod monitor;

/// Equal-width score bins of the calibration error.
pub const CALIBRATION_BINS: usize = 10;
/// Score bins per class for the AUC (ties within a bin count one half).
pub const AUC_BINS: usize = 200;
/// Probabilities are clipped to [EPS, 1 − EPS] in the log loss.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// What the labels of a model are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LabelKind {
    /// 0/1 labels; a score is the probability of 1.
    Binary,
    /// Class names (strings).
    Multiclass,
    /// Numbers other than 0/1.
    Regression,
}

/// One joined pair as the quality summary sees it.
#[derive(Clone, Copy, Debug)]
pub enum Pair {
    Binary {
        label: bool,
        predicted: bool,
        score: Option<f64>,
    },
    Multiclass {
        label: u32,
        correct: bool,
    },
    Regression {
        label: f64,
        prediction: f64,
    },
}

/// Mergeable quality summary of one bucket (or a window of them).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualitySketch {
    pub n: u64,
    pub correct: u64,
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
    /// Pairs with a score.
    pub scored: u64,
    pub log_loss: f64,
    pub brier: f64,
    /// Sum of squared per-pair Brier terms (for its variance).
    pub brier_sq: f64,
    pub calib_n: [u64; CALIBRATION_BINS],
    pub calib_score: [f64; CALIBRATION_BINS],
    pub calib_label: [f64; CALIBRATION_BINS],
    pub auc_pos: Vec<u64>,
    pub auc_neg: Vec<u64>,
    pub abs_err: f64,
    pub abs_err_sq: f64,
    pub sq_err: f64,
    pub err: f64,
    /// Multiclass: pairs and correct pairs by label class id.
    pub class_n: Vec<u64>,
    pub class_correct: Vec<u64>,
    /// Label distribution by label id (binary: 0 and 1).
    pub labels: Vec<u64>,
}

impl Default for QualitySketch {
    fn default() -> Self {
        QualitySketch {
            n: 0,
            correct: 0,
            tp: 0,
            fp: 0,
            tn: 0,
            fn_: 0,
            scored: 0,
            log_loss: 0.0,
            brier: 0.0,
            brier_sq: 0.0,
            calib_n: [0; CALIBRATION_BINS],
            calib_score: [0.0; CALIBRATION_BINS],
            calib_label: [0.0; CALIBRATION_BINS],
            auc_pos: Vec::new(),
            auc_neg: Vec::new(),
            abs_err: 0.0,
            abs_err_sq: 0.0,
            sq_err: 0.0,
            err: 0.0,
            class_n: Vec::new(),
            class_correct: Vec::new(),
            labels: Vec::new(),
        }
    }
}

fn bump(v: &mut Vec<u64>, i: usize, by: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += by;
}

fn add_vec(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl QualitySketch {
    /// The per-pair error fed to the sequential detector: the Brier term for
    /// scored binary pairs, 0/1 error otherwise, absolute error for regression.
    pub fn add(&mut self, p: Pair) -> f64 {
        self.n += 1;
        match p {
            Pair::Binary {
                label,
                predicted,
                score,
            } => {
                bump(&mut self.labels, label as usize, 1);
                self.correct += (label == predicted) as u64;
                match (label, predicted) {
                    (true, true) => self.tp += 1,
                    (false, true) => self.fp += 1,
                    (false, false) => self.tn += 1,
                    (true, false) => self.fn_ += 1,
                }
                match score {
                    Some(s) => {
                        let y = label as u8 as f64;
                        let pc = s.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
                        self.scored += 1;
                        self.log_loss -= y * pc.ln() + (1.0 - y) * (1.0 - pc).ln();
                        let b = (s - y) * (s - y);
                        self.brier += b;
                        self.brier_sq += b * b;
                        let c = ((s * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
                        self.calib_n[c] += 1;
                        self.calib_score[c] += s;
                        self.calib_label[c] += y;
                        let a = ((s * AUC_BINS as f64) as usize).min(AUC_BINS - 1);
                        if label {
                            bump(&mut self.auc_pos, a, 1)
                        } else {
                            bump(&mut self.auc_neg, a, 1)
                        }
                        b
                    }
                    None => (label != predicted) as u8 as f64,
                }
            }
            Pair::Multiclass { label, correct } => {
                bump(&mut self.labels, label as usize, 1);
                bump(&mut self.class_n, label as usize, 1);
                bump(&mut self.class_correct, label as usize, correct as u64);
                self.correct += correct as u64;
                (!correct) as u8 as f64
            }
            Pair::Regression { label, prediction } => {
                let e = prediction - label;
                self.abs_err += e.abs();
                self.abs_err_sq += e * e;
                self.sq_err += e * e;
                self.err += e;
                e.abs()
            }
        }
    }

    pub fn merge(&mut self, o: &QualitySketch) {
        self.n += o.n;
        self.correct += o.correct;
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
        self.scored += o.scored;
        self.log_loss += o.log_loss;
        self.brier += o.brier;
        self.brier_sq += o.brier_sq;
        for i in 0..CALIBRATION_BINS {
            self.calib_n[i] += o.calib_n[i];
            self.calib_score[i] += o.calib_score[i];
            self.calib_label[i] += o.calib_label[i];
        }
        add_vec(&mut self.auc_pos, &o.auc_pos);
        add_vec(&mut self.auc_neg, &o.auc_neg);
        self.abs_err += o.abs_err;
        self.abs_err_sq += o.abs_err_sq;
        self.sq_err += o.sq_err;
        self.err += o.err;
        add_vec(&mut self.class_n, &o.class_n);
        add_vec(&mut self.class_correct, &o.class_correct);
        add_vec(&mut self.labels, &o.labels);
    }

    pub fn accuracy(&self) -> Option<f64> {
        (self.n > 0).then(|| self.correct as f64 / self.n as f64)
    }
    pub fn precision(&self) -> Option<f64> {
        (self.tp + self.fp > 0).then(|| self.tp as f64 / (self.tp + self.fp) as f64)
    }
    pub fn recall(&self) -> Option<f64> {
        (self.tp + self.fn_ > 0).then(|| self.tp as f64 / (self.tp + self.fn_) as f64)
    }
    pub fn mean_log_loss(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.log_loss / self.scored as f64)
    }
    pub fn mean_brier(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.brier / self.scored as f64)
    }
    /// Variance of the per-pair Brier terms.
    pub fn brier_variance(&self) -> f64 {
        if self.scored < 2 {
            return 0.0;
        }
        let m = self.brier / self.scored as f64;
        (self.brier_sq / self.scored as f64 - m * m).max(0.0)
    }
    /// Expected calibration error over equal-width score bins.
    pub fn ece(&self) -> Option<f64> {
        (self.scored > 0).then(|| {
            (0..CALIBRATION_BINS)
                .filter(|&i| self.calib_n[i] > 0)
                .map(|i| (self.calib_score[i] - self.calib_label[i]).abs())
                .sum::<f64>()
                / self.scored as f64
        })
    }
    pub fn auc(&self) -> Option<f64> {
        auc_from_histograms(&self.auc_pos, &self.auc_neg)
    }
    pub fn mae(&self) -> Option<f64> {
        (self.n > 0 && self.labels.is_empty()).then(|| self.abs_err / self.n as f64)
    }
    pub fn rmse(&self) -> Option<f64> {
        (self.n > 0 && self.labels.is_empty()).then(|| (self.sq_err / self.n as f64).sqrt())
    }
    pub fn bias(&self) -> Option<f64> {
        (self.n > 0 && self.labels.is_empty()).then(|| self.err / self.n as f64)
    }
    /// Recall of each class id (None for classes never seen as labels).
    pub fn class_recall(&self) -> Vec<Option<f64>> {
        self.class_n
            .iter()
            .zip(&self.class_correct)
            .map(|(n, c)| (*n > 0).then(|| *c as f64 / *n as f64))
            .collect()
    }
}

/// Area under the ROC curve from score histograms of the positive and
/// negative class over the same ordered bins: the Mann–Whitney statistic,
/// ties within a bin counting one half. Exact when bins separate distinct scores.
pub fn auc_from_histograms(pos: &[u64], neg: &[u64]) -> Option<f64> {
    let np: u64 = pos.iter().sum();
    let nn: u64 = neg.iter().sum();
    if np == 0 || nn == 0 {
        return None;
    }
    let mut neg_below = 0u64;
    let mut wins = 0.0f64;
    for i in 0..pos.len().max(neg.len()) {
        let p = pos.get(i).copied().unwrap_or(0) as f64;
        let n = neg.get(i).copied().unwrap_or(0);
        wins += p * (neg_below as f64 + 0.5 * n as f64);
        neg_below += n;
    }
    Some(wins / (np as f64 * nn as f64))
}

/// Hanley–McNeil standard error of an AUC with `np` positives and `nn` negatives.
pub fn auc_standard_error(auc: f64, np: u64, nn: u64) -> f64 {
    if np == 0 || nn == 0 {
        return f64::INFINITY;
    }
    let (a, p, n) = (auc, np as f64, nn as f64);
    let q1 = a / (2.0 - a);
    let q2 = 2.0 * a * a / (1.0 + a);
    ((a * (1.0 - a) + (p - 1.0) * (q1 - a * a) + (n - 1.0) * (q2 - a * a)) / (p * n))
        .max(0.0)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fixtures::close;
    use serde_json::Value;

    fn fixtures() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/quality/quality.json")).unwrap()
    }

    fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    /// Against scikit-learn: counts-based metrics 1e-12; log loss and Brier
    /// 1e-9 relative; ECE (numpy, equal-width bins) 1e-9; AUC exact over
    /// distinct scores 1e-12, and within 0.005 from the 200-bin histograms
    /// the engine keeps.
    #[test]
    fn binary_metrics_match_sklearn() {
        for case in fixtures()["binary"].as_array().unwrap() {
            let y = f64s(&case["y"]);
            let s = f64s(&case["score"]);
            let mut q = QualitySketch::default();
            for (y, s) in y.iter().zip(&s) {
                q.add(Pair::Binary {
                    label: *y == 1.0,
                    predicted: *s >= 0.5,
                    score: Some(*s),
                });
            }
            let want = |k: &str| case[k].as_f64().unwrap();
            let name = case["name"].as_str().unwrap();
            assert!(
                close(q.accuracy().unwrap(), want("accuracy"), 1e-12, 0.0),
                "{name}"
            );
            assert!(
                close(q.precision().unwrap(), want("precision"), 1e-12, 0.0),
                "{name}"
            );
            assert!(
                close(q.recall().unwrap(), want("recall"), 1e-12, 0.0),
                "{name}"
            );
            assert!(
                close(q.mean_log_loss().unwrap(), want("log_loss"), 1e-12, 1e-9),
                "{name}"
            );
            assert!(
                close(q.mean_brier().unwrap(), want("brier"), 1e-12, 1e-9),
                "{name}"
            );
            assert!(close(q.ece().unwrap(), want("ece"), 1e-12, 1e-9), "{name}");
            assert!(
                close(q.auc().unwrap(), want("auc"), 0.005, 0.0),
                "{name} binned auc {}",
                q.auc().unwrap()
            );
            // exact: one bin per distinct score
            let mut distinct = s.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let (mut pos, mut neg) = (vec![0u64; distinct.len()], vec![0u64; distinct.len()]);
            for (y, s) in y.iter().zip(&s) {
                let i = distinct.binary_search_by(|v| v.total_cmp(s)).unwrap();
                if *y == 1.0 { pos[i] += 1 } else { neg[i] += 1 }
            }
            assert!(
                close(
                    auc_from_histograms(&pos, &neg).unwrap(),
                    want("auc"),
                    1e-12,
                    0.0
                ),
                "{name} exact auc"
            );
        }
    }

    #[test]
    fn multiclass_and_regression_match_sklearn() {
        let f = fixtures();
        for case in f["multiclass"].as_array().unwrap() {
            let y: Vec<u32> = case["y"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let p: Vec<u32> = case["pred"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let mut q = QualitySketch::default();
            for (y, p) in y.iter().zip(&p) {
                q.add(Pair::Multiclass {
                    label: *y,
                    correct: y == p,
                });
            }
            assert!(close(
                q.accuracy().unwrap(),
                case["accuracy"].as_f64().unwrap(),
                1e-12,
                0.0
            ));
            let want = f64s(&case["recall"]);
            let got: Vec<f64> = q.class_recall().into_iter().map(|r| r.unwrap()).collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(close(*g, *w, 1e-12, 0.0), "{got:?} vs {want:?}");
            }
        }
        for case in f["regression"].as_array().unwrap() {
            let y = f64s(&case["y"]);
            let p = f64s(&case["pred"]);
            let mut q = QualitySketch::default();
            for (y, p) in y.iter().zip(&p) {
                q.add(Pair::Regression {
                    label: *y,
                    prediction: *p,
                });
            }
            assert!(close(
                q.mae().unwrap(),
                case["mae"].as_f64().unwrap(),
                1e-12,
                1e-9
            ));
            assert!(close(
                q.rmse().unwrap(),
                case["rmse"].as_f64().unwrap(),
                1e-12,
                1e-9
            ));
            assert!(close(
                q.bias().unwrap(),
                case["bias"].as_f64().unwrap(),
                1e-12,
                1e-9
            ));
        }
    }

    #[test]
    fn merge_equals_one_sketch_of_the_union() {
        let pairs: Vec<Pair> = (0..500)
            .map(|i| Pair::Binary {
                label: i % 3 == 0,
                predicted: i % 4 == 0,
                score: Some((i % 97) as f64 / 97.0),
            })
            .collect();
        let mut whole = QualitySketch::default();
        pairs.iter().for_each(|p| {
            whole.add(*p);
        });
        let mut a = QualitySketch::default();
        let mut b = QualitySketch::default();
        pairs[..200].iter().for_each(|p| {
            a.add(*p);
        });
        pairs[200..].iter().for_each(|p| {
            b.add(*p);
        });
        a.merge(&b);
        assert_eq!(
            (a.n, a.tp, a.auc_pos.clone(), a.calib_n),
            (whole.n, whole.tp, whole.auc_pos.clone(), whole.calib_n)
        );
        assert!(close(
            a.mean_log_loss().unwrap(),
            whole.mean_log_loss().unwrap(),
            1e-12,
            1e-12
        ));
    }

    #[test]
    fn auc_standard_error_shrinks_with_samples() {
        let a = auc_standard_error(0.75, 100, 300);
        let b = auc_standard_error(0.75, 1000, 3000);
        assert!(a > b && b > 0.0);
        // by hand: Q1 = 0.6, Q2 = 0.642857; (0.1875 + 99·0.0375 + 299·0.080357) / 30000 = 0.000931
        assert!((a - 0.030511).abs() < 1e-5, "{a}");
    }
}
