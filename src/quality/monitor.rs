//! Model quality over time: joined pairs land in the bucket of their
//! prediction's event time, per model and slice; a quality window is
//! evaluated once its labels have had time to arrive (the median label delay
//! seen so far, in whole buckets), against the quality of the model's first
//! warm-up range; a Page–Hinkley detector watches the per-pair error stream.

use std::collections::BTreeMap;

use sketches_ddsketch::DDSketch;

use crate::alert::policy::ChannelState;
use crate::config::{Config, Tier};
use crate::drift::quality::{normal_two_sided, two_proportion};
use crate::drift::sequential::PageHinkley;
use crate::drift::{Scored, Test};
use crate::join::{JoinBuffer, Joined, Label, MAX_SLOTS, Waiting};
use crate::quality::{LabelKind, Pair, QualitySketch, auc_standard_error};

/// Quality of one model in one slot (overall or a slice value).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct QualitySeries {
    pub model: u32,
    pub slot: u32,
    first_bucket: i64,
    pub buckets: BTreeMap<i64, QualitySketch>,
    /// Predictions per bucket (for label coverage).
    pub predictions: BTreeMap<i64, u64>,
    /// Quality of the reference range, its predictions, its start and end (ms).
    pub reference: Option<(QualitySketch, u64, i64, i64)>,
    /// Labelled pairs and predictions of the reference range, once 95 % of labels are in.
    pub coverage_reference: Option<(u64, u64)>,
    pub ph: PageHinkley,
    /// The pairs since the detector's last minimum — those whose errors
    /// raised its statistic: (oldest and newest prediction time, pairs).
    /// A concept-drift alert's window and sample size are theirs.
    pub since_min: Option<(i64, i64, u64)>,
    pub performance: ChannelState,
    pub concept: ChannelState,
    pub label_shift: ChannelState,
    pub coverage: ChannelState,
}

impl QualitySeries {
    /// The alert state of one of its channels.
    pub fn channel_mut(&mut self, c: QChannel) -> &mut ChannelState {
        match c {
            QChannel::Performance => &mut self.performance,
            QChannel::Concept => &mut self.concept,
            QChannel::LabelShift => &mut self.label_shift,
            QChannel::Coverage => &mut self.coverage,
        }
    }
}

/// Per-model state of the join side.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ModelQuality {
    pub kind: Option<LabelKind>,
    classes: rustc_hash::FxHashMap<Box<str>, u32>,
    pub class_names: Vec<String>,
    delays: DDSketch,
    /// Quality series by slot.
    series: Vec<Option<u32>>,
}

/// Which quality channel an evaluation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QChannel {
    Performance,
    Concept,
    LabelShift,
    Coverage,
}

/// A quality channel's evaluation at one watermark.
#[derive(Clone, Debug)]
pub struct QualityEval {
    pub series: u32,
    pub channel: QChannel,
    pub scored: Vec<Scored>,
    pub enough: bool,
    pub window_start: i64,
    pub window_end: i64,
    pub reference_start: i64,
    pub reference_end: i64,
    pub current_n: u64,
    pub reference_n: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct QualityMonitor {
    pub join: JoinBuffer,
    /// Joined pairs not yet counted: they count at the first bucket close
    /// after their outcome's event time, in (outcome time, key) order, so the
    /// result does not depend on how prediction and outcome streams interleave.
    staged: Vec<(i64, u128, Waiting, Label)>,
    /// While on (a model has a candidate version), the pairs counted are
    /// copied here for the release comparison to take (drained in the same
    /// evaluation; never checkpointed).
    #[serde(skip)]
    pub tap: bool,
    #[serde(skip)]
    pub tapped: Vec<Joined>,
    pub models: Vec<ModelQuality>,
    pub series: Vec<QualitySeries>,
    bucket_ms: i64,
    window_buckets: i64,
    warmup_buckets: i64,
    ttl_buckets: i64,
    threshold: f64,
    ph_delta: f64,
    max_classes: usize,
    dd: sketches_ddsketch::Config,
}

impl QualityMonitor {
    pub fn new(cfg: &Config) -> Self {
        let bucket_ms = cfg.window.bucket.as_millis();
        let j = &cfg.join;
        QualityMonitor {
            join: JoinBuffer::new(
                j.ttl.as_millis(),
                j.orphan_hold.as_millis(),
                j.max_waiting,
                j.max_orphans,
            ),
            staged: Vec::new(),
            tap: false,
            tapped: Vec::new(),
            models: Vec::new(),
            series: Vec::new(),
            bucket_ms,
            window_buckets: cfg.window.current.as_millis() / bucket_ms,
            warmup_buckets: cfg.reference.warmup.as_millis() / bucket_ms,
            ttl_buckets: j.ttl.as_millis() / bucket_ms + 1,
            threshold: j.score_threshold,
            ph_delta: cfg.tests.page_hinkley.delta,
            max_classes: cfg.series.max_categories,
            dd: crate::sketch::dd_config(0.02),
        }
    }

    fn model(&mut self, m: u32) -> &mut ModelQuality {
        while self.models.len() <= m as usize {
            self.models.push(ModelQuality {
                kind: None,
                classes: Default::default(),
                class_names: vec![crate::registry::OTHER.to_string()],
                delays: DDSketch::new(self.dd),
                series: Vec::new(),
            });
        }
        &mut self.models[m as usize]
    }

    /// Class id of a class name (prediction or label) of model `m`.
    pub fn class(&mut self, m: u32, name: &str) -> u32 {
        let cap = self.max_classes;
        let mq = self.model(m);
        if let Some(&c) = mq.classes.get(name) {
            return c;
        }
        if mq.classes.len() >= cap {
            return 0;
        }
        let c = mq.class_names.len() as u32;
        mq.classes.insert(name.into(), c);
        mq.class_names.push(name.to_string());
        c
    }

    fn series_for(&mut self, m: u32, slot: u32, bucket: i64) -> usize {
        let n = self.series.len() as u32;
        let mq = self.model(m);
        if mq.series.len() <= slot as usize {
            mq.series.resize(slot as usize + 1, None);
        }
        if let Some(s) = mq.series[slot as usize] {
            return s as usize;
        }
        mq.series[slot as usize] = Some(n);
        self.series.push(QualitySeries {
            model: m,
            slot,
            first_bucket: bucket,
            buckets: BTreeMap::new(),
            predictions: BTreeMap::new(),
            reference: None,
            coverage_reference: None,
            ph: PageHinkley::new(self.ph_delta),
            since_min: None,
            performance: ChannelState::default(),
            concept: ChannelState::default(),
            label_shift: ChannelState::default(),
            coverage: ChannelState::default(),
        });
        n as usize
    }

    /// A prediction: counted for coverage, then joined or left waiting.
    pub fn prediction(&mut self, key: u128, w: Waiting) {
        for &slot in &w.slots[..w.n_slots as usize] {
            let s = self.series_for(w.model, slot, w.bucket);
            *self.series[s].predictions.entry(w.bucket).or_default() += 1;
        }
        if let Some((w, label, t)) = self.join.prediction(key, w) {
            self.staged.push((t, key, w, label));
        }
    }

    /// An outcome: joined with its prediction, or held for it (unless
    /// `hold` is false: a candidate version's prediction took it).
    pub fn outcome(&mut self, key: u128, label: Label, t: i64, hold: bool) {
        if let Some((w, label, t)) = self.join.outcome(key, label, t, hold) {
            self.staged.push((t, key, w, label));
        }
    }

    /// Counts the staged pairs whose outcome came before `until`.
    fn count_staged(&mut self, until: i64) {
        if self.staged.is_empty() {
            return;
        }
        self.staged.sort_unstable_by_key(|a| (a.0, a.1));
        let n = self.staged.partition_point(|p| p.0 < until);
        let ready: Vec<_> = self.staged.drain(..n).collect();
        for (t, _, w, label) in ready {
            if self.tap {
                self.tapped.push((w, label, t));
            }
            self.pair((w, label, t));
        }
    }

    fn pair(&mut self, (w, label, t): Joined) {
        let threshold = self.threshold;
        let mq = self.model(w.model);
        mq.delays.add(((t - w.event_time).max(0)) as f64 + 1.0);
        let kind = *mq.kind.get_or_insert(match label {
            Label::Class(_) => LabelKind::Multiclass,
            Label::Number(x) if (x == 0.0 || x == 1.0) => LabelKind::Binary,
            Label::Number(_) => LabelKind::Regression,
        });
        let pair = match (kind, label) {
            (LabelKind::Binary, Label::Number(y)) if y == 0.0 || y == 1.0 => {
                let score = (!w.score.is_nan()).then_some(w.score as f64);
                let predicted = score.map_or(w.prediction >= threshold, |s| s >= threshold);
                Pair::Binary {
                    label: y == 1.0,
                    predicted,
                    score,
                }
            }
            (LabelKind::Multiclass, Label::Class(c)) => Pair::Multiclass {
                label: c,
                correct: c == w.class && c != 0,
            },
            (LabelKind::Regression, Label::Number(y)) => Pair::Regression {
                label: y,
                prediction: w.prediction,
            },
            // a label of another kind than the model's first: not comparable
            _ => return,
        };
        for &slot in &w.slots[..w.n_slots as usize] {
            let s = self.series_for(w.model, slot, w.bucket);
            let qs = &mut self.series[s];
            let err = qs.buckets.entry(w.bucket).or_default().add(pair);
            if qs.ph.update(err) {
                qs.since_min = None;
            } else {
                let t = w.event_time;
                qs.since_min = Some(match qs.since_min {
                    Some((lo, hi, n)) => (lo.min(t), hi.max(t), n + 1),
                    None => (t, t, 1),
                });
            }
        }
    }

    /// Buckets of label wait for model `m`: quantile `q` of its label delays, rounded up.
    fn wait_buckets(&self, m: u32, q: f64) -> i64 {
        let d = self
            .models
            .get(m as usize)
            .and_then(|mq| mq.delays.quantile(q).ok().flatten())
            .unwrap_or(0.0);
        ((d / self.bucket_ms as f64).ceil() as i64).clamp(0, self.ttl_buckets)
    }

    /// Expires waits and old buckets; evaluates every quality series whose
    /// window has matured at the close of bucket `b`.
    pub fn evaluate(&mut self, b: i64, cfg: &Config) -> Vec<QualityEval> {
        self.count_staged((b + 1) * self.bucket_ms);
        self.join.expire((b + 1) * self.bucket_ms);
        let mut out = Vec::new();
        for sid in 0..self.series.len() {
            // quality: once half the labels are in (metrics need labelled pairs,
            // not all of them); coverage: once 95 % are, so it compares like with like
            let wait = self.wait_buckets(self.series[sid].model, 0.5);
            let end = b - wait; // last prediction bucket of the matured window
            let cov_end = b - self.wait_buckets(self.series[sid].model, 0.95);
            let (w, warm, ttl, bms) = (
                self.window_buckets,
                self.warmup_buckets,
                self.ttl_buckets,
                self.bucket_ms,
            );
            let kind = self.models[self.series[sid].model as usize].kind;
            let qs = &mut self.series[sid];
            // drop what no window will read again
            let keep_from = (cov_end - w).min(qs.first_bucket + warm) - ttl;
            while qs
                .buckets
                .first_key_value()
                .is_some_and(|(k, _)| *k < keep_from)
            {
                qs.buckets.pop_first();
            }
            while qs
                .predictions
                .first_key_value()
                .is_some_and(|(k, _)| *k < keep_from)
            {
                qs.predictions.pop_first();
            }
            let ref_end = qs.first_bucket + warm;
            if qs.reference.is_none() && end >= ref_end {
                let mut r = QualitySketch::default();
                for (_, q) in qs.buckets.range(qs.first_bucket..ref_end) {
                    r.merge(q);
                }
                let preds: u64 = qs
                    .predictions
                    .range(qs.first_bucket..ref_end)
                    .map(|(_, n)| n)
                    .sum();
                qs.reference = Some((r, preds, qs.first_bucket * bms, ref_end * bms));
            }
            if qs.coverage_reference.is_none() && cov_end >= ref_end {
                let labelled: u64 = qs
                    .buckets
                    .range(qs.first_bucket..ref_end)
                    .map(|(_, q)| q.n)
                    .sum();
                let preds: u64 = qs
                    .predictions
                    .range(qs.first_bucket..ref_end)
                    .map(|(_, n)| n)
                    .sum();
                qs.coverage_reference = Some((labelled, preds));
            }
            let Some((r, _, rs, re)) = &qs.reference else {
                continue;
            };
            let lo = (end - w + 1).max(ref_end);
            if end < lo {
                continue;
            }
            let mut cur = QualitySketch::default();
            for (_, q) in qs.buckets.range(lo..=end) {
                cur.merge(q);
            }
            let base = |channel, scored: Vec<Scored>, enough, cn, rn| QualityEval {
                series: sid as u32,
                channel,
                scored,
                enough,
                window_start: lo * bms,
                window_end: (end + 1) * bms,
                reference_start: *rs,
                reference_end: *re,
                current_n: cn,
                reference_n: rn,
            };
            let p = &cfg.policy;
            let enough = cur.n >= p.min_samples && r.n >= p.min_reference_samples;
            if let Some(kind) = kind {
                out.push(base(
                    QChannel::Performance,
                    performance_tests(kind, r, &cur, cfg),
                    enough,
                    cur.n,
                    r.n,
                ));
            }
            let ph = Scored {
                test: Test::PageHinkley,
                statistic: qs.ph.statistic(),
                tier: Tier::new(cfg.tests.page_hinkley.lambda, cfg.tests.page_hinkley.lambda),
                p_value: None,
            };
            // the detector's window: the predictions whose outcomes raised it
            // (with labels hours late, long after the matured window above)
            let mut e = base(QChannel::Concept, vec![ph], enough, cur.n, r.n);
            if let Some((lo, hi, n)) = qs.since_min {
                e.window_start = lo.div_euclid(bms) * bms;
                e.window_end = (hi.div_euclid(bms) + 1) * bms;
                e.current_n = n;
            }
            out.push(e);
            if kind != Some(LabelKind::Regression) && !r.labels.is_empty() {
                let psi = crate::drift::psi(&r.labels, &cur.labels);
                let (_, _, pv) = crate::drift::categorical::chi_square(&r.labels, &cur.labels);
                let s = Scored {
                    test: Test::Psi,
                    statistic: psi,
                    tier: cfg.tests.psi,
                    p_value: Some(pv),
                };
                out.push(base(QChannel::LabelShift, vec![s], enough, cur.n, r.n));
            }
            let cov_lo = (cov_end - w + 1).max(ref_end);
            if let (Some((r_lab, r_preds)), true) = (qs.coverage_reference, cov_end >= cov_lo) {
                let labelled: u64 = qs.buckets.range(cov_lo..=cov_end).map(|(_, q)| q.n).sum();
                let preds: u64 = qs.predictions.range(cov_lo..=cov_end).map(|(_, n)| n).sum();
                if r_preds > 0 && preds > 0 {
                    let drop = r_lab as f64 / r_preds as f64 - labelled as f64 / preds as f64;
                    let (_, pv) =
                        two_proportion(r_lab.min(r_preds), r_preds, labelled.min(preds), preds);
                    let s = Scored {
                        test: Test::LabelCoverageDrop,
                        statistic: drop,
                        tier: cfg.tests.label_coverage_drop,
                        p_value: Some(pv),
                    };
                    let enough_cov = preds >= p.min_samples && r_preds >= p.min_reference_samples;
                    let mut e = base(QChannel::Coverage, vec![s], enough_cov, preds, r_preds);
                    e.window_start = cov_lo * bms;
                    e.window_end = (cov_end + 1) * bms;
                    out.push(e);
                }
            }
        }
        out
    }
}

/// Quality now against the reference's, by label kind.
fn performance_tests(
    kind: LabelKind,
    r: &QualitySketch,
    c: &QualitySketch,
    cfg: &Config,
) -> Vec<Scored> {
    let t = &cfg.tests;
    let mut v = Vec::new();
    if let (Some(ra), Some(ca)) = (r.accuracy(), c.accuracy())
        && kind != LabelKind::Regression
    {
        let (_, p) = two_proportion(r.correct, r.n, c.correct, c.n);
        v.push(Scored {
            test: Test::AccuracyDrop,
            statistic: ra - ca,
            tier: t.accuracy_drop,
            p_value: Some(p),
        });
    }
    if kind == LabelKind::Binary {
        if let (Some(ra), Some(ca)) = (r.auc(), c.auc()) {
            let (rp, rn) = (r.auc_pos.iter().sum(), r.auc_neg.iter().sum());
            let (cp, cn) = (c.auc_pos.iter().sum(), c.auc_neg.iter().sum());
            let se = (auc_standard_error(ra, rp, rn).powi(2)
                + auc_standard_error(ca, cp, cn).powi(2))
            .sqrt();
            let p = normal_two_sided((ra - ca) / se);
            v.push(Scored {
                test: Test::AucDrop,
                statistic: ra - ca,
                tier: t.auc_drop,
                p_value: Some(p),
            });
        }
        if let (Some(rl), Some(cl)) = (r.mean_log_loss(), c.mean_log_loss())
            && rl > 0.0
        {
            v.push(Scored {
                test: Test::LogLossRise,
                statistic: (cl - rl) / rl,
                tier: t.log_loss_rise,
                p_value: None,
            });
        }
        if let (Some(rb), Some(cb)) = (r.mean_brier(), c.mean_brier())
            && rb > 0.0
        {
            let se = (r.brier_variance() / r.scored as f64 + c.brier_variance() / c.scored as f64)
                .sqrt();
            let p = normal_two_sided((cb - rb) / se);
            v.push(Scored {
                test: Test::BrierRise,
                statistic: (cb - rb) / rb,
                tier: t.brier_rise,
                p_value: Some(p),
            });
        }
        if let (Some(re), Some(ce)) = (r.ece(), c.ece()) {
            v.push(Scored {
                test: Test::CalibrationErrorRise,
                statistic: ce - re,
                tier: t.calibration_error_rise,
                p_value: None,
            });
        }
    }
    if kind == LabelKind::Regression
        && let (Some(rm), Some(cm)) = (r.mae(), c.mae())
        && rm > 0.0
    {
        let var = |q: &QualitySketch| {
            (q.abs_err_sq / q.n as f64 - (q.abs_err / q.n as f64).powi(2)).max(0.0)
        };
        let se = (var(r) / r.n as f64 + var(c) / c.n as f64).sqrt();
        let p = normal_two_sided((cm - rm) / se);
        v.push(Scored {
            test: Test::MaeRise,
            statistic: (cm - rm) / rm,
            tier: t.mae_rise,
            p_value: Some(p),
        });
    }
    v
}

/// Slots of a prediction for the join (overall first), at most [`MAX_SLOTS`].
pub fn slots_of(slots: &[u32]) -> ([u32; MAX_SLOTS], u8) {
    let mut out = [0u32; MAX_SLOTS];
    let n = slots.len().min(MAX_SLOTS);
    out[..n].copy_from_slice(&slots[..n]);
    (out, n as u8)
}
