//! A watermark's evaluation, once its buckets have closed (`close`):
//! pinned series are tested (drift and data quality), model quality is
//! evaluated, the p-values of each model pass one false-discovery gate,
//! and each channel's policy steps — transitions go to `emit`.

use crate::alert::policy::Verdict;
use crate::alert::{AlertKind, Severity, TestResult};
use crate::config::Tier;
use crate::drift::{self, categorical, fdr, numeric, quality};
use crate::drift::{Scored, Test};
use crate::quality::monitor::QChannel;
use crate::registry::Role;
use crate::sketch::{Sketch, ValueKind};
use crate::telemetry::HISTORY;
use crate::window::Reference;

use super::{Engine, Point};

/// A label distribution whose chi-square p-value against the reference's is
/// below this counts as moved when a quality alert is triaged.
const LABEL_SHIFT_P: f64 = 1e-3;

/// Series per worker below which a watermark's tests run on one thread.
const PARALLEL_EVAL_SERIES: usize = 256;

/// Which of a series' two alert channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Channel {
    Drift,
    Quality,
}

/// One channel's evaluation at one watermark.
#[derive(Clone, Debug)]
pub(super) struct ChannelEval {
    pub(super) series: u32,
    pub(super) channel: Channel,
    pub(super) kind: AlertKind,
    pub(super) severity: Option<Severity>,
    pub(super) calm: bool,
    pub(super) test: Test,
    pub(super) statistic: f64,
    pub(super) threshold: f64,
    pub(super) p_value: Option<f64>,
    pub(super) gate_p: Option<f64>,
    pub(super) enough: bool,
    /// Every test of the channel (made into `TestResult`s only for an alert).
    pub(super) scored: Vec<Scored>,
    pub(super) current_n: u64,
    pub(super) reference_n: u64,
}

/// What a channel's tests add up to at one evaluation.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    pub(super) severity: Option<Severity>,
    pub(super) calm: bool,
    pub(super) test: Test,
    pub(super) statistic: f64,
    pub(super) threshold: f64,
    pub(super) p_value: Option<f64>,
    /// The gate: the smallest p-value among the channel's tests.
    pub(super) gate_p: Option<f64>,
}

/// Each test's result as an alert carries it.
pub(super) fn test_results(scored: &[Scored]) -> Vec<TestResult> {
    scored
        .iter()
        .map(|s| TestResult {
            test: s.test.to_string(),
            statistic: s.statistic,
            p_value: s.p_value,
        })
        .collect()
}

/// What a channel's tests add up to; no allocation (it runs for every
/// series at every evaluation).
fn summarize(scored: &[Scored], hysteresis: f64) -> Summary {
    let tiered = || scored.iter().filter(|s| s.tier.warning.is_finite());
    let top = tiered().max_by(|a, b| {
        let ka = (
            severity_of(a.statistic, a.tier),
            a.statistic / a.tier.warning,
        );
        let kb = (
            severity_of(b.statistic, b.tier),
            b.statistic / b.tier.warning,
        );
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
    });
    let (test, statistic, tier, p_value) = top
        .map_or((Test::None, 0.0, Tier::new(1.0, 1.0), None), |s| {
            (s.test, s.statistic, s.tier, s.p_value)
        });
    let severity = severity_of(statistic, tier);
    Summary {
        severity,
        calm: tiered().all(|s| s.statistic < hysteresis * s.tier.warning),
        test,
        statistic,
        threshold: if severity == Some(Severity::Critical) {
            tier.critical
        } else {
            tier.warning
        },
        p_value,
        gate_p: scored
            .iter()
            .filter_map(|s| s.p_value)
            .min_by(f64::total_cmp),
    }
}

/// Benjamini–Hochberg adjusted p-values, each model's p-values a family of
/// their own; in the order given.
fn bh_per_model(ps: &[(u32, f64)]) -> Vec<f64> {
    let mut out = vec![1.0; ps.len()];
    let mut models: Vec<u32> = ps.iter().map(|(m, _)| *m).collect();
    models.sort_unstable();
    models.dedup();
    for m in models {
        let idx: Vec<usize> = (0..ps.len()).filter(|&i| ps[i].0 == m).collect();
        let family: Vec<f64> = idx.iter().map(|&i| ps[i].1).collect();
        for (&i, a) in idx.iter().zip(fdr::bh_adjust(&family)) {
            out[i] = a;
        }
    }
    out
}

fn severity_of(stat: f64, t: Tier) -> Option<Severity> {
    if stat >= t.critical {
        Some(Severity::Critical)
    } else if stat >= t.warning {
        Some(Severity::Warning)
    } else {
        None
    }
}

impl Engine {
    pub(super) fn evaluate(&mut self, b: i64) {
        let now = (b + 1) * self.bucket_ms;
        // each series' tests read only its own windows: with many series,
        // in ranges on the workers, joined in series order (the same list)
        let n = self.series.len();
        // (an asleep series is passed by)
        let threads = self
            .close_threads
            .min(self.awake_series() / PARALLEL_EVAL_SERIES)
            .max(1);
        let mut evals = Vec::new();
        if threads == 1 {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.eval_series(0..n, &mut scratch, &mut evals);
            self.scratch = scratch;
        } else {
            let chunk = n.div_ceil(threads);
            let this = &*self;
            let rest: Vec<Vec<ChannelEval>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (1..threads)
                    .map(|i| {
                        scope.spawn(move || {
                            let mut out = Vec::new();
                            let range = i * chunk..((i + 1) * chunk).min(n);
                            this.eval_series(range, &mut Vec::new(), &mut out);
                            out
                        })
                    })
                    .collect();
                this.eval_series(0..chunk.min(n), &mut Vec::new(), &mut evals);
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an evaluation thread does not panic"))
                    .collect()
            });
            evals.extend(rest.into_iter().flatten());
        }
        // production's pairs, as the quality monitor counts them, to the release comparison
        self.quality.tap = self.release.comparing_any();
        let qevals = self.quality.evaluate(b, &self.cfg);
        self.release.production_pairs(self.quality.tapped.drain(..));
        let h = self.cfg.policy.hysteresis;
        let qsums: Vec<Summary> = qevals.iter().map(|e| summarize(&e.scored, h)).collect();
        self.stats.evaluations += (evals.len() + qevals.len()) as u64;
        // a false-discovery gate per model over every series and channel of
        // this watermark: one model's family of tests, so a model's alerts do
        // not depend on which other models share the instance
        let ps: Vec<(u32, f64)> = evals
            .iter()
            .filter(|e| e.enough)
            .filter_map(|e| e.gate_p.map(|p| (self.series[e.series as usize].model, p)))
            .chain(
                qevals
                    .iter()
                    .zip(&qsums)
                    .filter(|(e, _)| e.enough)
                    .filter_map(|(e, s)| {
                        s.gate_p
                            .map(|p| (self.quality.series[e.series as usize].model, p))
                    }),
            )
            .collect();
        let adjusted = bh_per_model(&ps);
        let mut next = adjusted.iter();
        let q = self.cfg.policy.fdr_q;
        let mut significant = |enough: bool, gate: Option<f64>| match (enough, gate) {
            (true, Some(_)) => next.next().is_some_and(|a| *a <= q),
            (true, None) => true,
            (false, _) => false,
        };
        let first_new = self.out.len();
        // a breach counts only when it passed the gate; the gate is asked of
        // every channel in order (it walks the adjusted p-values)
        let mut verdict =
            |enough: bool, gate: Option<f64>, severity: Option<Severity>, calm: bool| {
                let passed = significant(enough, gate);
                Verdict {
                    breach: if passed { severity } else { None },
                    calm,
                }
            };
        let feature_verdicts: Vec<Verdict> = evals
            .iter()
            .map(|e| verdict(e.enough, e.gate_p, e.severity, e.calm))
            .collect();
        let quality_verdicts: Vec<Verdict> = qevals
            .iter()
            .zip(&qsums)
            .map(|(e, s)| verdict(e.enough, s.gate_p, s.severity, s.calm))
            .collect();
        for (e, verdict) in evals.iter().zip(feature_verdicts) {
            let s = &mut self.series[e.series as usize];
            if e.channel == Channel::Drift && e.enough {
                if s.history.len() >= HISTORY {
                    s.history.pop_front();
                }
                s.history.push_back(Point::new(
                    now,
                    e.test,
                    e.statistic,
                    e.p_value,
                    verdict.breach,
                ));
            }
            let ch = match e.channel {
                Channel::Drift => &mut s.drift,
                Channel::Quality => &mut s.quality,
            };
            if let Some(t) = ch.step(verdict, now, &self.cfg.policy) {
                self.emit(e, t, now);
            }
        }
        // a series' evaluations are adjacent (quality, then drift): each
        // series judged once
        let mut last = None;
        for e in &evals {
            if last == Some(e.series) {
                continue;
            }
            last = Some(e.series);
            let s = &mut self.series[e.series as usize];
            s.settled = s.settles(&self.cfg.policy);
            if s.settled {
                self.doze(e.series);
            }
        }
        // quality after inputs, and label alerts before quality ones: triage
        // weighs the input and label alerts open at this watermark
        // the label distribution moved significantly at this watermark (per quality series)
        let labels_moved: Vec<u32> = qevals
            .iter()
            .zip(&qsums)
            .filter(|(e, sm)| {
                e.channel == QChannel::LabelShift
                    && e.enough
                    && sm.gate_p.is_some_and(|p| p < LABEL_SHIFT_P)
            })
            .map(|(e, _)| e.series)
            .collect();
        let mut order: Vec<usize> = (0..qevals.len()).collect();
        order.sort_by_key(|&i| {
            !matches!(qevals[i].channel, QChannel::LabelShift | QChannel::Coverage)
        });
        for i in order {
            let (e, sm, verdict) = (&qevals[i], &qsums[i], quality_verdicts[i]);
            let ch = self.quality.series[e.series as usize].channel_mut(e.channel);
            if let Some(t) = ch.step(verdict, now, &self.cfg.policy) {
                self.emit_quality(e, sm, t, now, labels_moved.contains(&e.series));
            }
        }
        // one canonical order per watermark, whatever order series were met in
        self.out[first_new..].sort_by(|a, b| {
            (&a.model_id, a.kind, &a.feature, &a.slice).cmp(&(
                &b.model_id,
                b.kind,
                &b.feature,
                &b.slice,
            ))
        });
        // grouped into incidents by cause (each alert gets its incident_id)
        let cx = super::incident_context(&self.owners, &self.cfg, &self.config_hash);
        self.incidents.observe(&mut self.out[first_new..], now, &cx);
        // release gates and retrain triggers, on the same evaluation
        let rcx = crate::release::Context {
            owners: &self.owners,
            runbook_base: &self.cfg.incidents.runbook_base_url,
            config_hash: &self.config_hash,
        };
        let (models, series) = (&self.models, &self.series);
        let score_reference = |m: usize| {
            let model = models.get(m)?;
            let sid = model.series_at(crate::registry::SCORE, 0);
            match series.get(sid as usize)?.windows.reference() {
                crate::window::RefState::Pinned(r) if !r.quantiles.is_empty() => {
                    Some(r.quantiles.as_slice())
                }
                _ => None,
            }
        };
        self.release
            .evaluate(now, &self.models, &self.cfg, &rcx, score_reference);
        let open = self.incidents.open_events(&cx);
        let open: Vec<crate::release::retrain::OpenIncident<'_>> = open
            .iter()
            .map(|e| crate::release::retrain::OpenIncident {
                id: &e.incident_id,
                model_id: &e.model_id,
                model_version: e.model_version.as_deref(),
                severity: e.severity,
                cause: e.suspected_cause.as_str(),
                opened_at: e.opened_at,
                slices: &e.scope.slices,
                summary: e.summary.clone(),
            })
            .collect();
        let mut actions = Vec::new();
        self.release.retrain.evaluate(
            now,
            &open,
            self.models
                .iter()
                .map(|m| (m.id.clone(), m.version.clone())),
            &self.cfg,
            &rcx,
            &mut actions,
        );
        for a in actions {
            self.release.push(a);
        }
    }

    /// The quality and drift evaluations of the series in `range`, in
    /// order, appended to `out`.
    fn eval_series(
        &self,
        range: std::ops::Range<usize>,
        scratch: &mut Vec<u64>,
        out: &mut Vec<ChannelEval>,
    ) {
        // an asleep series is dormant, so settled: not reached into at all
        let awake_at = |j: usize| j < range.end && !self.asleep[j];
        for sid in range.clone() {
            // with thousands of series, the next ones are fetched meanwhile
            if awake_at(sid + 8) {
                let s = &self.series[sid + 8];
                crate::sketch::prefetch(s);
                s.windows.prefetch_evaluate(0);
            }
            if awake_at(sid + 4) {
                self.series[sid + 4].windows.prefetch_evaluate(1);
            }
            if self.asleep[sid] {
                continue;
            }
            let s = &self.series[sid];
            // below min_samples with nothing pending: a "too few" verdict
            // would change nothing, so none is computed or stepped
            if s.settled || s.windows.pinned().is_none() {
                continue;
            }
            if let Some(e) = self.eval_quality(sid as u32) {
                out.push(e);
            }
            if let Some(e) = self.eval_drift(sid as u32, scratch) {
                out.push(e);
            }
        }
    }

    fn eval_quality(&self, sid: u32) -> Option<ChannelEval> {
        let s = &self.series[sid as usize];
        let r = s.windows.pinned()?;
        let cur = s.windows.totals();
        let t = &self.cfg.tests;
        let (rn, cn) = (r.sketch.rows(), cur.rows());
        if cn == 0 {
            return None;
        }
        if !self.cfg.policy.enough(cn, rn) {
            return Some(too_few(
                sid,
                Channel::Quality,
                AlertKind::DataQuality,
                cn,
                rn,
            ));
        }
        // a rate now against the reference's: the rise is the effect, the z-test gates
        let rise = |test, x_ref: u64, x_cur: u64, tier| Scored {
            test,
            statistic: ratio(x_cur, cn) - ratio(x_ref, rn),
            tier,
            p_value: Some(quality::two_proportion(x_ref, rn, x_cur, cn).1),
        };
        let mut scored = vec![
            rise(Test::NullRate, r.sketch.nulls, cur.nulls, t.null_rate),
            rise(
                Test::TypeViolation,
                r.sketch.type_violations,
                cur.type_violations,
                t.type_violation,
            ),
        ];
        let kind = self.models[s.model as usize].features[s.feature as usize].kind;
        if kind == Some(ValueKind::Categorical) && cur.values > 0 {
            let share = categorical::new_category_share(&r.counts, &cur.hist);
            let new = (share * cur.values as f64).round() as u64;
            let (_, p_new) = quality::two_proportion(0, r.sketch.values, new, cur.values);
            scored.push(Scored {
                test: Test::NewCategoryShare,
                statistic: share,
                tier: t.new_category_share,
                p_value: Some(p_new),
            });
        }
        Some(self.channel_eval(
            sid,
            Channel::Quality,
            AlertKind::DataQuality,
            scored,
            true,
            cn,
            rn,
        ))
    }

    fn eval_drift(&self, sid: u32, scratch: &mut Vec<u64>) -> Option<ChannelEval> {
        let s = &self.series[sid as usize];
        let r = s.windows.pinned()?;
        let cur = s.windows.totals();
        let feat = &self.models[s.model as usize].features[s.feature as usize];
        let kind = match feat.role {
            Role::Input => AlertKind::DataDrift,
            Role::Prediction | Role::Score => AlertKind::PredictionDrift,
        };
        let t = &self.cfg.tests;
        let (rn, cn) = (r.sketch.values, cur.values);
        if cn == 0 || rn == 0 {
            return None;
        }
        if !self.cfg.policy.enough(cn, rn) {
            return Some(too_few(sid, Channel::Drift, kind, cn, rn));
        }
        let mut scored = Vec::with_capacity(4);
        match feat.kind? {
            ValueKind::Numeric => {
                let edges = r.edges.as_ref()?;
                edges.coarse(&cur.hist, scratch);
                let psi = drift::psi(&r.coarse, scratch);
                let js = drift::jensen_shannon(&r.coarse, scratch);
                let d = numeric::ks_statistic(&r.counts, &cur.hist);
                let p = numeric::ks_p_value(d, rn, cn);
                let w = normalised_wasserstein(r, cur);
                scored.push(Scored {
                    test: Test::Psi,
                    statistic: psi,
                    tier: t.psi,
                    p_value: None,
                });
                scored.push(Scored {
                    test: Test::Ks,
                    statistic: d,
                    tier: t.ks,
                    p_value: Some(p),
                });
                scored.push(Scored {
                    test: Test::JensenShannon,
                    statistic: js,
                    tier: t.jensen_shannon,
                    p_value: None,
                });
                scored.push(Scored {
                    test: Test::Wasserstein,
                    statistic: w,
                    tier: t.wasserstein,
                    p_value: None,
                });
            }
            ValueKind::Categorical => {
                let psi = drift::psi(&r.counts, &cur.hist);
                let js = drift::jensen_shannon(&r.counts, &cur.hist);
                let tv = drift::total_variation(&r.counts, &cur.hist);
                let (chi2, _, p) = categorical::chi_square(&r.counts, &cur.hist);
                scored.push(Scored {
                    test: Test::Psi,
                    statistic: psi,
                    tier: t.psi,
                    p_value: None,
                });
                scored.push(Scored {
                    test: Test::JensenShannon,
                    statistic: js,
                    tier: t.jensen_shannon,
                    p_value: None,
                });
                scored.push(Scored {
                    test: Test::TotalVariation,
                    statistic: tv,
                    tier: t.total_variation,
                    p_value: None,
                });
                // chi-square gates significance; its statistic grows with n, so it sets no tier
                scored.push(Scored {
                    test: Test::ChiSquare,
                    statistic: chi2,
                    tier: Tier::new(f64::INFINITY, f64::INFINITY),
                    p_value: Some(p),
                });
            }
        }
        Some(self.channel_eval(sid, Channel::Drift, kind, scored, true, cn, rn))
    }

    #[allow(clippy::too_many_arguments)]
    fn channel_eval(
        &self,
        sid: u32,
        channel: Channel,
        kind: AlertKind,
        scored: Vec<Scored>,
        enough: bool,
        cn: u64,
        rn: u64,
    ) -> ChannelEval {
        let sm = summarize(&scored, self.cfg.policy.hysteresis);
        ChannelEval {
            series: sid,
            channel,
            kind,
            severity: sm.severity,
            calm: sm.calm,
            test: sm.test,
            statistic: sm.statistic,
            threshold: sm.threshold,
            p_value: sm.p_value,
            gate_p: sm.gate_p,
            enough,
            scored,
            current_n: cn,
            reference_n: rn,
        }
    }
}

/// A channel with too few values to test: no statistic is computed (the
/// cost of a sparse series is then its bucket bookkeeping only), it breaches
/// nothing and is not calm — an open alert neither fires again nor resolves
/// on a handful of values.
fn too_few(sid: u32, channel: Channel, kind: AlertKind, cn: u64, rn: u64) -> ChannelEval {
    ChannelEval {
        series: sid,
        channel,
        kind,
        severity: None,
        calm: false,
        test: Test::None,
        statistic: 0.0,
        threshold: 0.0,
        p_value: None,
        gate_p: None,
        enough: false,
        scored: Vec::new(),
        current_n: cn,
        reference_n: rn,
    }
}

pub(super) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Wasserstein-1 between the reference (its quantile function as equal-mass
/// points) and the current window (each fine bin's values at their mean),
/// divided by the reference's standard deviation — at most twice the spread
/// of its quantile function, so one wild value in the reference window
/// (2^64 among dollars: its standard deviation ~10^17) cannot blind the test.
fn normalised_wasserstein(r: &Reference, cur: &Sketch) -> f64 {
    // one wild value (2^64 among dollars) must not page: a bin's mean is held
    // within the reference's range widened by a quarter of it on each side.
    // Only the two open-ended outer bins can reach past it, and a real shift
    // or unit change still reads as far away (all its mass moves there).
    let (lo, hi) = match (r.quantiles.first(), r.quantiles.last()) {
        (Some(&l), Some(&h)) => (l - 0.25 * (h - l), h + 0.25 * (h - l)),
        _ => (f64::MIN, f64::MAX),
    };
    let b = cur
        .hist
        .iter()
        .zip(&cur.hist_sum)
        .filter(|(c, _)| **c > 0)
        .map(|(c, s)| ((s / *c as f64).clamp(lo, hi), *c as f64));
    // the counts' total, summed as integers: the same number a sum of
    // them as floats makes (exact below 2^53)
    let wb = cur.hist.iter().sum::<u64>() as f64;
    let w = numeric::wasserstein_from_quantiles(&r.quantiles, b, wb);
    let sd = r.sketch.variance().sqrt();
    let robust = quantile_spread(&r.quantiles);
    let sd = if robust > 0.0 {
        sd.min(2.0 * robust)
    } else {
        sd
    };
    let scale = if sd > 0.0 {
        sd
    } else {
        r.sketch.mean().abs().max(1e-12)
    };
    w / scale
}

/// Standard deviation of equal-mass quantile points: the spread of a
/// distribution without its extreme half-percent on each side.
fn quantile_spread(q: &[f64]) -> f64 {
    if q.len() < 2 {
        return 0.0;
    }
    let n = q.len() as f64;
    let mean = q.iter().sum::<f64>() / n;
    (q.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::Edges;
    use crate::sketch::{dd_config, ordinal};
    use crate::window::{BinSpec, Closed};

    /// Running totals of one closed bucket of `xs`.
    fn closed_totals(xs: &[f64], edges: &Edges, dd: &sketches_ddsketch::Config) -> Sketch {
        let mut s = Sketch::new();
        for &v in xs {
            s.add_number(v, ordinal(dd, v));
        }
        let mut totals = Sketch::new();
        totals.size_numeric_hist(edges.bins());
        Closed::pack(0, &s, &mut Vec::new()).fold_into(
            &mut totals,
            Some(edges),
            dd,
            &mut crate::window::FoldScratch::default(),
            true,
        );
        totals
    }

    fn setup() -> (sketches_ddsketch::Config, BinSpec) {
        let dd = dd_config(0.01);
        let bins = BinSpec {
            coarse: 10,
            fine: 40,
            dd,
        };
        (dd, bins)
    }

    /// A fixed, spread-out sequence: uniform over ±3 around 0.
    fn spread(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 6.0
        }
    }

    /// A window whose values match the reference but for one 2^64, alone in
    /// the top bin of its bucket: the Wasserstein distance stays below the
    /// warning tier (it was ~10^17 reference deviations).
    #[test]
    fn one_wild_value_does_not_move_wasserstein() {
        let (dd, bins) = setup();
        let mut normal = spread(0);
        let mut acc = Sketch::new();
        for _ in 0..5000 {
            let v = normal();
            acc.add_number(v, ordinal(&dd, v));
        }
        let r = Reference::build(acc, 0, 1, Some(ValueKind::Numeric), &bins);
        let edges = r.edges.clone().unwrap();
        let bucket = |xs: &[f64]| closed_totals(xs, &edges, &dd);
        let calm: Vec<f64> = (0..3000).map(|_| normal()).collect();
        let mut window = bucket(&calm);
        let before = normalised_wasserstein(&r, &window);
        let wild = bucket(&[2f64.powi(64)]);
        window.merge_counts(&wild);
        let after = normalised_wasserstein(&r, &window);
        assert!(before < 0.05, "{before}");
        assert!(after < 0.2, "one value moved it to {after}");
    }

    /// One 2^64 inside the reference window: a shift of the whole window
    /// by two deviations still reads past the default warning tier (0.25;
    /// the scale is then at most twice the quantile function's spread, and
    /// the shifted mass is clamped at the widened range: ~0.5). The
    /// reference's standard deviation alone made it ~10^-17.
    #[test]
    fn one_wild_value_in_the_reference_does_not_blind_wasserstein() {
        let (dd, bins) = setup();
        let mut uniform = spread(7);
        let mut acc = Sketch::new();
        for _ in 0..5000 {
            let v = uniform();
            acc.add_number(v, ordinal(&dd, v));
        }
        acc.add_number(2f64.powi(64), ordinal(&dd, 2f64.powi(64)));
        let r = Reference::build(acc, 0, 1, Some(ValueKind::Numeric), &bins);
        let edges = r.edges.clone().unwrap();
        let shifted: Vec<f64> = (0..3000).map(|_| uniform() + 3.5).collect();
        let window = closed_totals(&shifted, &edges, &dd);
        let w = normalised_wasserstein(&r, &window);
        assert!(w > 0.4, "a shift of ~2 deviations read {w}");
    }
}
