//! One place that builds an [`Alert`]: a channel's transition becomes an
//! alert event with its evidence (what moved, by how much, the quantiles and
//! null rates), its suspected cause (triage from the evidence alone) and a
//! sentence a person reads at a glance.

use crate::alert::policy::Transition;
use crate::alert::{
    Alert, AlertKind, AlertState, Cause, Evidence, Move, Persistence, QuantilePair, SampleSize,
    Severity, episode_id,
};
use crate::drift::{Test, categorical};
use crate::quality::monitor::{QChannel, QualityEval};
use crate::registry::{Feature, Role};
use crate::sketch::{Sketch, ValueKind, edges::format_num};
use crate::window::{ExemplarList, Reference};

use super::Engine;
use super::evaluate::{Channel, ChannelEval, Summary, ratio};

/// Newest buckets whose median (numbers) or new-category share (categories)
/// is compared with the reference's to tell a unit change or a new category set.
const RECENT_BUCKETS: usize = 3;

/// What an alert says besides its episode (id, state, severity,
/// persistence): a series' channel or a model-quality channel fills it in,
/// [`Engine::push_alert`] builds the alert.
struct Draft {
    model_id: String,
    model_version: Option<String>,
    kind: AlertKind,
    feature: Option<String>,
    slice: std::collections::BTreeMap<String, String>,
    test: Test,
    statistic: f64,
    p_value: Option<f64>,
    threshold: f64,
    /// (start, end), event time.
    window: (i64, i64),
    reference: (i64, i64),
    /// (current, reference) sample sizes.
    sizes: (u64, u64),
    evidence: Evidence,
    cause: Cause,
    exemplars: Vec<String>,
}

impl Engine {
    /// Open input-drift episodes of a model in a slot: (alert id) — what a quality alert's triage weighs.
    fn open_input_drift(&self, model: u32, slot: u32) -> Vec<String> {
        self.series
            .iter()
            .filter(|s| s.model == model && s.slot == slot)
            .filter(|s| {
                self.models[s.model as usize].features[s.feature as usize].role == Role::Input
            })
            .filter_map(|s| s.drift.episode.as_ref().map(|e| e.alert_id.clone()))
            .collect()
    }

    /// Writes the alert of a model-quality channel's transition.
    pub(super) fn emit_quality(
        &mut self,
        e: &QualityEval,
        sm: &Summary,
        t: Transition,
        now: i64,
        labels_moved: bool,
    ) {
        let (model, slot) = (
            self.quality.series[e.series as usize].model,
            self.quality.series[e.series as usize].slot,
        );
        let m = &self.models[model as usize];
        let (model_id, model_version, slice) = (m.id.clone(), m.version.clone(), m.slice_map(slot));
        let (kind, feature) = match e.channel {
            QChannel::Performance => (AlertKind::Performance, None),
            QChannel::Concept => (AlertKind::ConceptDrift, None),
            QChannel::LabelShift => (AlertKind::DataDrift, Some("label".to_string())),
            QChannel::Coverage => (AlertKind::DataQuality, Some("label".to_string())),
        };
        // triage: inputs moved ⇒ covariate shift; else the labels moved ⇒
        // label shift; else (quality fell on unchanged inputs) concept drift
        let inputs = self.open_input_drift(model, slot);
        let qs = &self.quality.series[e.series as usize];
        let label_alert: Vec<String> = qs
            .label_shift
            .episode
            .iter()
            .map(|ep| ep.alert_id.clone())
            .collect();
        let (cause, related) = match e.channel {
            QChannel::Coverage => (Cause::Pipeline, Vec::new()),
            QChannel::LabelShift => (Cause::LabelShift, inputs),
            QChannel::Performance | QChannel::Concept => {
                if !inputs.is_empty() {
                    (
                        Cause::CovariateShift,
                        inputs.into_iter().chain(label_alert).collect(),
                    )
                } else if labels_moved || !label_alert.is_empty() {
                    (Cause::LabelShift, label_alert)
                } else {
                    (Cause::ConceptDrift, Vec::new())
                }
            }
        };
        let what = if slice.is_empty() {
            format!("model `{model_id}`")
        } else {
            format!(
                "model `{model_id}` in {}",
                slice
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let summary = format!(
            "{what}: {} {} (tier {}), {} labelled pairs vs {} in the reference; cause {}{}",
            sm.test,
            format_num(sm.statistic),
            format_num(sm.threshold),
            e.current_n,
            e.reference_n,
            cause,
            if related.is_empty() {
                String::new()
            } else {
                format!(" (weighed {} other alerts)", related.len())
            }
        );
        let qs = &mut self.quality.series[e.series as usize];
        let ch = qs.channel_mut(e.channel);
        let policy = &self.cfg.policy;
        let Some((state, severity, alert_id, (breaches, evaluations))) =
            ch.apply(t, now, policy, || {
                episode_id(&model_id, kind, feature.as_deref(), &slice, now)
            })
        else {
            return;
        };
        if state == AlertState::Resolved && e.channel == QChannel::Concept {
            qs.ph.reset();
            qs.since_min = None;
        }
        let draft = Draft {
            model_id,
            model_version,
            kind,
            feature,
            slice,
            test: sm.test,
            statistic: sm.statistic,
            p_value: sm.p_value,
            threshold: sm.threshold,
            window: (e.window_start, e.window_end),
            reference: (e.reference_start, e.reference_end),
            sizes: (e.current_n, e.reference_n),
            evidence: Evidence {
                summary,
                tests: super::evaluate::test_results(&e.scored),
                related_alert_ids: related,
                ..Evidence::default()
            },
            cause,
            exemplars: Vec::new(),
        };
        self.push_alert(
            draft,
            (state, severity, alert_id, (breaches, evaluations)),
            now,
        );
    }

    pub(super) fn emit(&mut self, e: &ChannelEval, t: Transition, now: i64) {
        let s = &self.series[e.series as usize];
        let model = &self.models[s.model as usize];
        let feat = &model.features[s.feature as usize];
        let slice = model.slice_map(s.slot);
        let Some(r) = s.windows.pinned() else { return };
        let evidence = self.evidence(e, r);
        let cause = cause_of(e, &evidence, self.cfg.tests.scale_jump_tolerance, feat.role);
        let exemplars = self.exemplars(e);
        let (model_id, model_version, feature) =
            (model.id.clone(), model.version.clone(), feat.name.clone());
        let (reference_start, reference_end) = (r.start_ms, r.end_ms);
        let window_start = s
            .windows
            .window_start_bucket()
            .map_or(now, |b| b * self.bucket_ms);
        let s = &mut self.series[e.series as usize];
        let ch = match e.channel {
            Channel::Drift => &mut s.drift,
            Channel::Quality => &mut s.quality,
        };
        let policy = &self.cfg.policy;
        let Some((state, severity, alert_id, (breaches, evaluations))) =
            ch.apply(t, now, policy, || {
                episode_id(&model_id, e.kind, Some(&feature), &slice, now)
            })
        else {
            return;
        };
        let draft = Draft {
            model_id,
            model_version,
            kind: e.kind,
            feature: Some(feature),
            slice,
            test: e.test,
            statistic: e.statistic,
            p_value: e.p_value,
            threshold: e.threshold,
            window: (window_start, now),
            reference: (reference_start, reference_end),
            sizes: (e.current_n, e.reference_n),
            evidence,
            cause,
            exemplars,
        };
        self.push_alert(
            draft,
            (state, severity, alert_id, (breaches, evaluations)),
            now,
        );
    }

    /// The one place an [`Alert`] is built: a draft and its episode's
    /// transition (state, severity, id, persistence), counted and queued.
    fn push_alert(
        &mut self,
        d: Draft,
        (state, severity, alert_id, (breaches, evaluations)): (
            AlertState,
            Severity,
            String,
            (u32, u32),
        ),
        now: i64,
    ) {
        self.stats.count_alert(d.kind, severity, state);
        let owner = self.owners.owner_of(
            &d.model_id,
            d.feature.as_deref(),
            &d.slice,
            d.cause.as_str(),
        );
        let runbook_url = format!(
            "{}{}.md",
            self.cfg.incidents.runbook_base_url,
            d.kind.as_str()
        );
        self.out.push(Alert {
            alert_id,
            model_id: d.model_id,
            model_version: d.model_version,
            kind: d.kind,
            feature: d.feature,
            slice: d.slice,
            test: d.test.to_string(),
            statistic: d.statistic,
            p_value: d.p_value,
            threshold: d.threshold,
            severity,
            state,
            window_start: d.window.0,
            window_end: d.window.1,
            reference_start: d.reference.0,
            reference_end: d.reference.1,
            sample_size: SampleSize {
                current: d.sizes.0 as i64,
                reference: d.sizes.1 as i64,
            },
            persistence: Persistence {
                breaches: breaches as i32,
                evaluations: evaluations as i32,
            },
            evidence: d.evidence,
            suspected_cause: d.cause,
            exemplar_trace_ids: d.exemplars,
            emitted_at: now,
            incident_id: String::new(),
            owner,
            runbook_url,
            config_hash: self.config_hash.clone(),
            engine_version: crate::config::engine_version().to_string(),
        });
    }

    /// Up to `policy.max_exemplars` trace ids, newest bucket first: nulls and
    /// wrong types for data quality; for drift, values in the reference's
    /// extreme bins (the most extreme of each bucket) or of categories rare
    /// in it (< 1 %). Within a bucket, by hash.
    fn exemplars(&self, e: &ChannelEval) -> Vec<String> {
        let s = &self.series[e.series as usize];
        let cap = self.cfg.policy.max_exemplars;
        let reference = s.windows.pinned();
        let categorical = self.models[s.model as usize].features[s.feature as usize].kind
            == Some(crate::sketch::ValueKind::Categorical);
        let mut out: Vec<String> = Vec::with_capacity(cap);
        let mut pick: Vec<(u64, String)> = Vec::new();
        for b in s.windows.ring().rev() {
            pick.clear();
            match (e.channel, reference) {
                (Channel::Quality, _) => pick.extend(b.exemplars(ExemplarList::Null)),
                (Channel::Drift, Some(r)) => match &r.edges {
                    Some(edges) => {
                        let last = edges.bins() - 1;
                        let tail =
                            |k: u64, high: bool| edges.bin_of(crate::sketch::tail_ordinal(k, high));
                        pick.extend(
                            b.exemplars(ExemplarList::Low)
                                .filter(|(k, _)| tail(*k, false) == 0),
                        );
                        pick.extend(
                            b.exemplars(ExemplarList::High)
                                .filter(|(k, _)| tail(*k, true) == last),
                        );
                    }
                    None if categorical => {
                        pick.extend(b.exemplars(ExemplarList::Low).filter(|(k, _)| {
                            let rc = r.counts.get((k >> 32) as usize).copied().unwrap_or(0);
                            rc * 100 < r.sketch.values
                        }))
                    }
                    None => {}
                },
                (Channel::Drift, None) => {}
            }
            // by hash, then id
            for c in pick.iter_mut() {
                c.0 = crate::sketch::exemplar_hash(&c.1);
            }
            pick.sort_unstable();
            for (_, t) in pick.drain(..) {
                if out.len() >= cap {
                    return out;
                }
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        out
    }

    fn evidence(&self, e: &ChannelEval, r: &Reference) -> Evidence {
        let s = &self.series[e.series as usize];
        let feat = &self.models[s.model as usize].features[s.feature as usize];
        let totals = s.windows.totals();
        let mut cur = Sketch::new();
        s.windows.merged_current(&mut cur);
        let mut ev = Evidence {
            reference_null_rate: ratio(r.sketch.nulls, r.sketch.rows()),
            current_null_rate: ratio(totals.nulls, totals.rows()),
            type_violation_rate: ratio(totals.type_violations, totals.rows()),
            tests: super::evaluate::test_results(&e.scored),
            ..Evidence::default()
        };
        let mut moves: Vec<Move> = Vec::new();
        match feat.kind {
            Some(ValueKind::Numeric) => {
                if r.sketch.values > 0 {
                    ev.reference_mean = Some(r.sketch.mean());
                }
                if cur.values > 0 {
                    ev.current_mean = Some(cur.mean());
                }
                for q in [0.05, 0.25, 0.5, 0.75, 0.95] {
                    if let (Some(a), Some(b)) =
                        (r.sketch.quantile(&self.dd, q), cur.quantile(&self.dd, q))
                    {
                        ev.quantiles.push(QuantilePair {
                            q,
                            reference: a,
                            current: b,
                        });
                    }
                }
                // the scale of the newest buckets: a unit change shows at once
                // there, while the whole window is still a mixture
                let mut recent = Sketch::new();
                for b in s.windows.ring().rev().take(RECENT_BUCKETS) {
                    b.merge_into(&mut recent);
                }
                if let (Some(a), Some(b)) = (
                    r.sketch.quantile(&self.dd, 0.5),
                    recent.quantile(&self.dd, 0.5),
                ) && a != 0.0
                {
                    ev.scale_ratio = Some(b / a);
                }
                if let Some(edges) = &r.edges {
                    let mut coarse = Vec::new();
                    edges.coarse(&totals.hist, &mut coarse);
                    moves = top_moves(&r.coarse, &coarse, |i| edges.coarse_label(&self.dd, i));
                }
            }
            Some(ValueKind::Categorical) => {
                // like the scale ratio, judged on the newest buckets
                let mut recent = Sketch::new();
                for b in s.windows.ring().rev().take(RECENT_BUCKETS) {
                    b.merge_into(&mut recent);
                }
                ev.new_category_share =
                    Some(categorical::new_category_share(&r.counts, &recent.hist));
                moves = top_moves(&r.counts, &totals.hist, |i| {
                    feat.category_names
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("#{i}"))
                });
            }
            None => {}
        }
        ev.top_moves = moves;
        ev.summary = summary_sentence(e, feat, &ev);
        ev
    }
}

/// The bins or categories whose share moved most, largest first (at most 3).
fn top_moves(reference: &[u64], current: &[u64], label: impl Fn(usize) -> String) -> Vec<Move> {
    let (nr, nc) = (
        reference.iter().sum::<u64>() as f64,
        current.iter().sum::<u64>() as f64,
    );
    if nr == 0.0 || nc == 0.0 {
        return Vec::new();
    }
    let len = reference.len().max(current.len());
    let mut idx: Vec<(usize, f64, f64)> = (0..len)
        .map(|i| {
            (
                i,
                reference.get(i).copied().unwrap_or(0) as f64 / nr,
                current.get(i).copied().unwrap_or(0) as f64 / nc,
            )
        })
        .filter(|(_, a, b)| a != b)
        .collect();
    idx.sort_by(|x, y| {
        (y.2 - y.1)
            .abs()
            .total_cmp(&(x.2 - x.1).abs())
            .then(x.0.cmp(&y.0))
    });
    idx.into_iter()
        .take(3)
        .map(|(i, a, b)| Move {
            bin: label(i),
            reference_share: a,
            current_share: b,
        })
        .collect()
}

/// Best guess of the cause, from the evidence alone.
fn cause_of(e: &ChannelEval, ev: &Evidence, tolerance: f64, role: Role) -> Cause {
    match e.channel {
        Channel::Quality => match e.test {
            Test::NewCategoryShare => Cause::FeatureChange,
            _ => Cause::Pipeline,
        },
        Channel::Drift => {
            if let Some(r) = ev.scale_ratio
                && is_power_of_ten_jump(r, tolerance)
            {
                return Cause::FeatureChange;
            }
            if ev.new_category_share.is_some_and(|s| s >= 0.5) {
                return Cause::FeatureChange;
            }
            match role {
                Role::Input => Cause::CovariateShift,
                Role::Prediction | Role::Score => Cause::Unknown,
            }
        }
    }
}

/// Whether `ratio` is within a factor `tolerance` of 10^k or 10^-k for k in 1..=6.
pub fn is_power_of_ten_jump(ratio: f64, tolerance: f64) -> bool {
    if !(ratio.is_finite() && ratio > 0.0) {
        return false;
    }
    let l = ratio.log10();
    let k = l.round();
    k != 0.0 && k.abs() <= 6.0 && (l - k).abs() <= tolerance.log10()
}

fn summary_sentence(e: &ChannelEval, feat: &Feature, ev: &Evidence) -> String {
    let what = match feat.role {
        Role::Input => format!("feature `{}`", feat.name),
        Role::Prediction => "the model's predictions".to_string(),
        Role::Score => "the model's scores".to_string(),
    };
    let stat = format!(
        "{} {} (tier {})",
        e.test,
        format_num(e.statistic),
        format_num(e.threshold)
    );
    match e.channel {
        Channel::Quality => format!(
            "{what}: null rate {:.1}% vs {:.1}% in the reference, type violations {:.1}%; {stat}",
            100.0 * ev.current_null_rate,
            100.0 * ev.reference_null_rate,
            100.0 * ev.type_violation_rate
        ),
        Channel::Drift => {
            let mut s = format!("{what} moved: {stat}");
            if let (Some(a), Some(b)) = (ev.reference_mean, ev.current_mean) {
                s.push_str(&format!(
                    "; mean {} vs {} in the reference",
                    format_num(b),
                    format_num(a)
                ));
            }
            if let Some(r) = ev.scale_ratio {
                s.push_str(&format!(
                    "; newest median ×{} the reference's",
                    format_num(r)
                ));
            }
            if let Some(m) = ev.top_moves.first() {
                s.push_str(&format!(
                    "; most moved {} {:.1}% → {:.1}%",
                    m.bin,
                    100.0 * m.reference_share,
                    100.0 * m.current_share
                ));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_ten_jumps() {
        assert!(is_power_of_ten_jump(1000.0, 1.5));
        assert!(is_power_of_ten_jump(9.0, 1.5));
        assert!(is_power_of_ten_jump(0.001, 1.5));
        assert!(!is_power_of_ten_jump(1.6, 1.5));
        assert!(!is_power_of_ten_jump(3.0, 1.5));
        assert!(!is_power_of_ten_jump(f64::NAN, 1.5));
    }
}
