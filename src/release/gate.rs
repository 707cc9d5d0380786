//! The comparison's test and the rules that turn it into decisions.

use std::collections::BTreeMap;

use crate::config::{ReleaseConfig, Tier};
use crate::registry::Model;

use super::{
    ActionKind, Candidate, Decided, Evidence, MixComparison, SCORE_BINS, ScoreDrift,
    SliceComparison, Totals, slice_of,
};

/// One-sided Welch test that `c`'s mean loss is above `p`'s: the p-value.
pub fn welch_greater(p: &Totals, c: &Totals) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let (np, nc) = (p.pairs as f64, c.pairs as f64);
    let (vp, vc) = (p.var() / np, c.var() / nc);
    let se2 = vp + vc;
    let d = c.mean() - p.mean();
    if se2 <= 0.0 {
        return if d > 0.0 { 0.0 } else { 1.0 };
    }
    let t = d / se2.sqrt();
    let df = se2 * se2
        / (vp * vp / (np - 1.0).max(1.0) + vc * vc / (nc - 1.0).max(1.0)).max(f64::MIN_POSITIVE);
    match StudentsT::new(0.0, 1.0, df.clamp(1.0, 1e7)) {
        Ok(dist) => dist.sf(t),
        Err(_) => 1.0,
    }
}

/// Bins the score drift check uses (groups of the `SCORE_BINS` histogram).
const DRIFT_BINS: usize = 10;

/// Each version's scores since the candidate started against production's
/// reference (its quantiles at evenly spaced levels), as PSI over
/// `DRIFT_BINS` equal-width bins: see [`ScoreDrift`].
pub(super) fn score_drift(
    c: &Candidate,
    reference: &[f64],
    psi: Tier,
    min_n: u64,
) -> Option<ScoreDrift> {
    let t = c.totals.first()?;
    let group = |h: &[u64]| {
        let mut out = [0u64; DRIFT_BINS];
        for (i, &x) in h.iter().enumerate() {
            out[i * DRIFT_BINS / SCORE_BINS] += x;
        }
        out
    };
    let (p, k) = (group(&t[0].scores), group(&t[1].scores));
    let n = [p.iter().sum::<u64>(), k.iter().sum::<u64>()];
    if reference.is_empty() || n[0] < min_n || n[1] < min_n {
        return None;
    }
    let mut reference_counts = [0u64; DRIFT_BINS];
    for q in reference.iter().filter(|q| q.is_finite()) {
        reference_counts[((q.clamp(0.0, 1.0) * DRIFT_BINS as f64) as usize).min(DRIFT_BINS - 1)] +=
            1;
    }
    let (pp, pk) = (
        crate::drift::psi(&reference_counts, &p),
        crate::drift::psi(&reference_counts, &k),
    );
    Some(ScoreDrift {
        statistic: "psi".into(),
        candidate: pk,
        production: pp,
        critical: psi.critical,
        n,
        unique: pk >= psi.critical && pp < psi.critical,
    })
}

/// The decision a candidate's comparison calls for now, if any:
/// (action, slot, rule, evidence). `score_reference`: production's score
/// reference quantiles, when its `score` series has pinned one.
pub(super) fn judge(
    c: &mut Candidate,
    model: &Model,
    now: i64,
    r: &ReleaseConfig,
    statistic: &str,
    score_reference: Option<&[f64]>,
    psi: Tier,
) -> Option<(ActionKind, usize, &'static str, Evidence)> {
    // every slot with enough pairs on both sides, tested
    let mut rows: Vec<(usize, SliceComparison)> = Vec::new();
    for (slot, [p, k]) in c.totals.iter().enumerate() {
        if p.pairs < r.min_pairs || k.pairs < r.min_pairs {
            continue;
        }
        let (lp, lc) = (p.mean(), k.mean());
        let relative = if lp > 0.0 { lc / lp - 1.0 } else { 0.0 };
        rows.push((
            slot,
            SliceComparison {
                slice: slice_of(model, slot),
                pairs: [p.pairs, k.pairs],
                traffic: [p.traffic, k.traffic],
                loss: [lp, lc],
                auc: [p.auc(), k.auc()],
                accuracy: [p.accuracy(statistic), k.accuracy(statistic)],
                log_loss: [p.log_loss(), k.log_loss()],
                calibration: [p.calibration(), k.calibration()],
                relative,
                p_value: welch_greater(p, k),
                p_adjusted: 1.0,
                worse: false,
            },
        ));
    }
    // Benjamini–Hochberg over this evaluation's slices
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[a]
            .1
            .p_value
            .total_cmp(&rows[b].1.p_value)
            .then(a.cmp(&b))
    });
    let n = rows.len() as f64;
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(rows[i].1.p_value * n / (rank as f64 + 1.0));
        rows[i].1.p_adjusted = running.min(1.0);
    }
    for (_, row) in &mut rows {
        row.worse = row.p_adjusted <= r.alpha && row.relative >= r.worse_by;
    }
    c.latest = rows.iter().map(|(_, row)| row.clone()).collect();
    c.mix = mix(c, model, r);
    c.drift = score_reference.and_then(|q| score_drift(c, q, psi, r.min_pairs));
    if c.drift.as_ref().is_some_and(|d| d.unique) {
        c.drift_streak += 1;
    } else {
        c.drift_streak = 0;
    }
    // a rollback is final: the comparison goes on (the API, the panel), decisions do not
    if c.decided == Decided::RolledBack {
        return None;
    }
    let evidence = |row: &SliceComparison, threshold: f64| Evidence {
        candidate: Some(row.loss[1]),
        production: Some(row.loss[0]),
        relative: Some(row.relative),
        threshold: Some(threshold),
        p_value: Some(row.p_value),
        p_adjusted: Some(row.p_adjusted),
        alpha: Some(r.alpha),
        candidate_pairs: Some(row.pairs[1] as i64),
        production_pairs: Some(row.pairs[0] as i64),
        candidate_auc: row.auc[1],
        production_auc: row.auc[0],
        ..Evidence::default()
    };
    let worst = rows
        .iter()
        .filter(|(_, row)| row.worse)
        .max_by(|a, b| a.1.relative.total_cmp(&b.1.relative).then(b.0.cmp(&a.0)));
    // worse in every tested value of its slice's dimension is worse as a
    // whole: the rollback names the model, not the value that happened to
    // be worst, so no one reads a global regression as a local one
    let worst = worst.map(|w| {
        let dim_all_worse = !w.1.slice.is_empty()
            && rows
                .iter()
                .filter(|(_, o)| o.slice.keys().eq(w.1.slice.keys()))
                .all(|(_, o)| o.worse);
        match rows.iter().find(|(slot, o)| *slot == 0 && o.worse) {
            Some(overall) if dim_all_worse => overall,
            _ => w,
        }
    });
    if let Some((slot, row)) = worst {
        c.streak += 1;
        if c.streak >= r.persistence {
            c.decided = Decided::RolledBack;
            return Some((
                ActionKind::RollbackRecommended,
                *slot,
                "release.worse_by",
                evidence(row, r.worse_by),
            ));
        }
        return None;
    }
    c.streak = 0;
    if c.drift_streak >= r.persistence
        && let Some(d) = &c.drift
    {
        c.decided = Decided::RolledBack;
        return Some((
            ActionKind::RollbackRecommended,
            0,
            "release.unique_drift",
            Evidence {
                statistic: "score_psi".into(),
                candidate: Some(d.candidate),
                production: Some(d.production),
                threshold: Some(d.critical),
                ..Evidence::default()
            },
        ));
    }
    if let Some((ev, dim)) = fairness(c, model, r) {
        c.decided = Decided::RolledBack;
        let _ = dim;
        return Some((
            ActionKind::RollbackRecommended,
            0,
            "release.fairness_margin",
            ev,
        ));
    }
    let overall = rows.iter().find(|(slot, _)| *slot == 0);
    if c.decided == Decided::Nothing
        && now - c.started >= r.promote_after.as_millis()
        && let Some((_, row)) = overall
        && row.pairs[1] >= r.promote_min_pairs
        && c.drift_streak == 0
        && rows.iter().all(|(_, row)| row.relative < r.worse_by)
    {
        c.decided = Decided::Promoted;
        return Some((
            ActionKind::PromoteOk,
            0,
            "release.promote_after",
            evidence(row, r.worse_by),
        ));
    }
    None
}

/// What the versions see (traffic per value of each slice dimension) and
/// say (score distribution), compared: a canary on a biased share of the
/// traffic, or a candidate that scores differently, is a finding of its own.
pub(super) fn mix(c: &Candidate, model: &Model, r: &ReleaseConfig) -> Vec<MixComparison> {
    let judge = |what: &str, dimension: &str, p: &[u64], k: &[u64]| {
        let n = [p.iter().sum::<u64>(), k.iter().sum::<u64>()];
        if n[0] < r.min_pairs || n[1] < r.min_pairs {
            return None;
        }
        let (chi2, _, p_value) = crate::drift::categorical::chi_square(p, k);
        let js_distance = crate::drift::jensen_shannon(p, k);
        Some(MixComparison {
            what: what.into(),
            dimension: dimension.into(),
            js_distance,
            chi2,
            p_value,
            n,
            differs: p_value < r.alpha && js_distance >= 0.1,
        })
    };
    let mut dims: BTreeMap<&str, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for (slot, tot) in c.totals.iter().enumerate() {
        if let Some(Some((d, _))) = model.slots.get(slot) {
            let e = dims.entry(d.as_str()).or_default();
            e.0.push(tot[0].traffic);
            e.1.push(tot[1].traffic);
        }
    }
    let mut out: Vec<MixComparison> = dims
        .iter()
        .filter_map(|(d, (p, k))| judge("input_mix", d, p, k))
        .collect();
    if let Some(t) = c.totals.first() {
        out.extend(judge("score", "", &t[0].scores, &t[1].scores));
    }
    out
}

/// The fairness gate: the candidate's loss gap across the values of
/// `fairness_dimension` exceeds production's by more than the margin.
fn fairness(c: &Candidate, model: &Model, r: &ReleaseConfig) -> Option<(Evidence, String)> {
    if r.fairness_dimension.is_empty() {
        return None;
    }
    let mut gaps = [(f64::INFINITY, f64::NEG_INFINITY); 2];
    let mut seen = 0;
    for (slot, tot) in c.totals.iter().enumerate() {
        let Some(Some((d, _))) = model.slots.get(slot) else {
            continue;
        };
        if *d != r.fairness_dimension || tot[0].pairs < r.min_pairs || tot[1].pairs < r.min_pairs {
            continue;
        }
        seen += 1;
        for side in 0..2 {
            let m = tot[side].mean();
            gaps[side] = (gaps[side].0.min(m), gaps[side].1.max(m));
        }
    }
    if seen < 2 {
        return None;
    }
    let (gp, gc) = (gaps[0].1 - gaps[0].0, gaps[1].1 - gaps[1].0);
    (gc - gp > r.fairness_margin).then(|| {
        (
            Evidence {
                statistic: "fairness_gap".into(),
                candidate: Some(gc),
                production: Some(gp),
                threshold: Some(r.fairness_margin),
                ..Evidence::default()
            },
            r.fairness_dimension.clone(),
        )
    })
}

pub(super) fn summary(
    kind: ActionKind,
    model: &str,
    version: &str,
    production: Option<&str>,
    mode: &str,
    slice: &BTreeMap<String, String>,
    e: &Evidence,
) -> String {
    let base = production.unwrap_or("production");
    let where_ = if slice.is_empty() {
        "overall".to_string()
    } else {
        crate::incident::slice_words(slice)
    };
    match kind {
        ActionKind::RollbackRecommended if e.statistic == "score_psi" => format!(
            "{model}: roll back {mode} {version}: its scores drifted from production's reference (PSI {:.3}, critical {:.2}) while {base}'s on the same traffic did not ({:.3})",
            e.candidate.unwrap_or(0.0),
            e.threshold.unwrap_or(0.0),
            e.production.unwrap_or(0.0)
        ),
        ActionKind::RollbackRecommended if e.statistic == "fairness_gap" => format!(
            "{model}: roll back {mode} {version}: its quality gap across slices is {:.4} against {base}'s {:.4}",
            e.candidate.unwrap_or(0.0),
            e.production.unwrap_or(0.0)
        ),
        ActionKind::RollbackRecommended => format!(
            "{model}: roll back {mode} {version}: {} {:.4} vs {base}'s {:.4} ({:+.0}%) {where_}, p={:.2e} over {} labelled pairs",
            e.statistic,
            e.candidate.unwrap_or(0.0),
            e.production.unwrap_or(0.0),
            100.0 * e.relative.unwrap_or(0.0),
            e.p_adjusted.unwrap_or(1.0),
            e.candidate_pairs.unwrap_or(0)
        ),
        ActionKind::PromoteOk => format!(
            "{model}: {mode} {version} may be promoted: {} {:.4} vs {base}'s {:.4} over {} labelled pairs, no slice worse",
            e.statistic,
            e.candidate.unwrap_or(0.0),
            e.production.unwrap_or(0.0),
            e.candidate_pairs.unwrap_or(0)
        ),
        ActionKind::RetrainRequested => e.summary.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BRIER: &str = "brier";
    const PSI: Tier = Tier::new(0.1, 0.25);

    /// A score histogram (`SCORE_BINS` bins) with `n` scores spread evenly over [lo, hi).
    fn scores(n: u64, lo: f64, hi: f64) -> Vec<u64> {
        let mut h = vec![0u64; SCORE_BINS];
        for i in 0..n {
            let s = lo + (hi - lo) * (i as f64 + 0.5) / n as f64;
            h[((s * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)] += 1;
        }
        h
    }

    #[test]
    fn a_critical_score_drift_only_the_candidate_has_rolls_it_back_before_any_label() {
        let r = ReleaseConfig::default();
        let m = model();
        // production's reference: scores spread evenly over [0, 1)
        let reference: Vec<f64> = (0..100).map(|i| (i as f64 + 0.5) / 100.0).collect();
        let with = |p: Vec<u64>, k: Vec<u64>| {
            let mut c = candidate(vec![[Totals::default(), Totals::default()]]);
            c.totals[0][0].scores = p;
            c.totals[0][1].scores = k;
            c
        };
        // the candidate scores everything high, production as its reference: no labels yet
        let mut c = with(scores(4000, 0.0, 1.0), scores(1000, 0.7, 1.0));
        for i in 1..r.persistence {
            assert!(judge(&mut c, &m, 60_000, &r, BRIER, Some(&reference), PSI).is_none());
            assert_eq!(c.drift_streak, i);
        }
        let d = c.drift.clone().expect("checked");
        assert!(
            d.unique && d.candidate >= PSI.critical && d.production < 0.01,
            "{d:?}"
        );
        let (kind, slot, rule, ev) =
            judge(&mut c, &m, 60_000, &r, BRIER, Some(&reference), PSI).expect("a rollback");
        assert_eq!(
            (kind, slot, rule),
            (ActionKind::RollbackRecommended, 0, "release.unique_drift")
        );
        assert_eq!(ev.statistic, "score_psi");
        assert_eq!(ev.threshold, Some(PSI.critical));
        // the same drift in both versions is the traffic's, not the candidate's
        let mut c = with(scores(4000, 0.7, 1.0), scores(1000, 0.7, 1.0));
        for _ in 0..2 * r.persistence {
            assert!(judge(&mut c, &m, 60_000, &r, BRIER, Some(&reference), PSI).is_none());
        }
        let d = c.drift.expect("checked");
        assert!(!d.unique && d.production >= PSI.critical, "{d:?}");
        // too few scores, or no reference pinned yet: not checked
        let mut c = with(scores(4000, 0.0, 1.0), scores(r.min_pairs - 1, 0.7, 1.0));
        assert!(judge(&mut c, &m, 60_000, &r, BRIER, Some(&reference), PSI).is_none());
        assert!(c.drift.is_none());
        let mut c = with(scores(4000, 0.0, 1.0), scores(1000, 0.7, 1.0));
        assert!(judge(&mut c, &m, 60_000, &r, BRIER, None, PSI).is_none());
        assert!(c.drift.is_none());
    }

    /// `n` losses around `mean` (alternating ±0.05), order-independent totals.
    fn totals(n: u64, mean: f64) -> Totals {
        let mut t = Totals::default();
        for i in 0..n {
            t.pairs += 1;
            t.loss.add(mean + if i % 2 == 0 { 0.05 } else { -0.05 });
        }
        t
    }

    /// A model with slots overall, region=EU (1), region=APAC (2).
    fn model() -> Model {
        let cfg = Config::default();
        let mut m = Model::new("m");
        assert_eq!(m.slot("region", "EU", &cfg), Some(2));
        assert_eq!(m.slot("region", "APAC", &cfg), Some(3));
        m
    }

    fn candidate(slots: Vec<[Totals; 2]>) -> Candidate {
        Candidate {
            version: "v8".into(),
            shadow: false,
            started: 0,
            totals: slots,
            streak: 0,
            drift_streak: 0,
            drift: None,
            decided: Decided::Nothing,
            last_action: None,
            latest: Vec::new(),
            mix: Vec::new(),
        }
    }

    #[test]
    fn a_slice_worse_for_persistence_evaluations_is_rolled_back_by_name() {
        let r = ReleaseConfig::default();
        let m = model();
        let same = || [totals(3000, 0.19), totals(1000, 0.19)];
        // slot 1 is region=__other__ (made with the dimension): untested, too few pairs
        let mut c = candidate(vec![
            same(),
            [totals(10, 0.2), totals(10, 0.2)],
            same(),
            [totals(900, 0.19), totals(300, 0.25)],
        ]);
        for i in 1..r.persistence {
            assert!(
                judge(&mut c, &m, 3_600_000, &r, BRIER, None, PSI).is_none(),
                "decided after {i}"
            );
            assert_eq!(c.streak, i);
        }
        let (kind, slot, rule, ev) =
            judge(&mut c, &m, 3_600_000, &r, BRIER, None, PSI).expect("a rollback");
        assert_eq!(
            (kind, slot, rule),
            (ActionKind::RollbackRecommended, 3, "release.worse_by")
        );
        assert_eq!(
            slice_of(&m, slot),
            BTreeMap::from([("region".into(), "APAC".into())])
        );
        assert!(ev.p_adjusted.unwrap() <= r.alpha && ev.relative.unwrap() > 0.3);
        // final: nothing more for this candidate
        assert!(judge(&mut c, &m, 99 * 3_600_000, &r, BRIER, None, PSI).is_none());
    }

    #[test]
    fn a_candidate_worse_in_every_value_of_a_dimension_is_rolled_back_as_a_whole() {
        let r = ReleaseConfig::default();
        let m = model();
        let worse = |n| [totals(3 * n, 0.19), totals(n, 0.25)];
        // overall, __other__ (too few pairs), EU and APAC all worse; APAC the most
        let mut c = candidate(vec![
            worse(1200),
            [totals(10, 0.2), totals(10, 0.2)],
            worse(900),
            [totals(900, 0.19), totals(300, 0.30)],
        ]);
        let mut decided = None;
        for _ in 0..r.persistence {
            decided = judge(&mut c, &m, 3_600_000, &r, BRIER, None, PSI);
        }
        let (kind, slot, ..) = decided.take().expect("a rollback");
        assert_eq!((kind, slot), (ActionKind::RollbackRecommended, 0));
        // EU as good as production: the same APAC regression is named by its slice
        let mut c = candidate(vec![
            worse(1200),
            [totals(10, 0.2), totals(10, 0.2)],
            [totals(2700, 0.19), totals(900, 0.19)],
            [totals(900, 0.19), totals(300, 0.30)],
        ]);
        for _ in 0..r.persistence {
            decided = judge(&mut c, &m, 3_600_000, &r, BRIER, None, PSI);
        }
        assert_eq!(decided.expect("a rollback").1, 3);
    }

    #[test]
    fn a_good_candidate_is_promoted_only_after_its_span_and_pairs() {
        let r = ReleaseConfig::default();
        let m = model();
        let same = |n| [totals(3 * n, 0.19), totals(n, 0.19)];
        let mut c = candidate(vec![same(3000), same(10), same(1500), same(1500)]);
        let early = r.promote_after.as_millis() - 1;
        assert!(judge(&mut c, &m, early, &r, BRIER, None, PSI).is_none());
        let (kind, slot, _, _) =
            judge(&mut c, &m, early + 1, &r, BRIER, None, PSI).expect("promote");
        assert_eq!((kind, slot), (ActionKind::PromoteOk, 0));
        assert!(
            judge(&mut c, &m, early + 2, &r, BRIER, None, PSI).is_none(),
            "one promote"
        );
        // too few labelled pairs: no promote however long
        let mut thin = candidate(vec![same(500)]);
        assert!(judge(&mut thin, &m, 100 * early, &r, BRIER, None, PSI).is_none());
    }

    #[test]
    fn the_fairness_gate_refuses_a_wider_gap_between_slices() {
        let r = ReleaseConfig {
            fairness_dimension: "region".into(),
            // loss differences below worse_by are not "worse" by themselves
            worse_by: 0.5,
            critical_worse_by: 0.6,
            ..ReleaseConfig::default()
        };
        let m = model();
        let mut c = candidate(vec![
            [totals(6000, 0.19), totals(2000, 0.19)],
            [totals(10, 0.2), totals(10, 0.2)],
            [totals(3000, 0.19), totals(1000, 0.16)],
            [totals(3000, 0.19), totals(1000, 0.22)],
        ]);
        let (kind, _, rule, ev) = judge(&mut c, &m, 1, &r, BRIER, None, PSI).expect("fairness");
        assert_eq!(
            (kind, rule),
            (ActionKind::RollbackRecommended, "release.fairness_margin")
        );
        assert!((ev.candidate.unwrap() - 0.06).abs() < 1e-9 && ev.production.unwrap().abs() < 1e-9);
    }

    #[test]
    fn a_canary_on_a_biased_share_of_the_traffic_is_a_finding() {
        let r = ReleaseConfig::default();
        let m = model();
        let traffic = |p: u64, k: u64| {
            let mut t: [Totals; 2] = Default::default();
            t[0].traffic = p;
            t[1].traffic = k;
            t
        };
        // production 50/50 EU/APAC; the canary sees APAC only one time in ten
        let c = candidate(vec![
            traffic(6000, 2000),
            traffic(0, 0),
            traffic(3000, 1800),
            traffic(3000, 200),
        ]);
        let found = mix(&c, &m, &r);
        let region = found
            .iter()
            .find(|x| x.what == "input_mix" && x.dimension == "region")
            .expect("region");
        assert!(region.differs && region.p_value < 1e-9, "{region:?}");
        // the same shares: no finding
        let c = candidate(vec![
            traffic(6000, 2000),
            traffic(0, 0),
            traffic(3000, 1000),
            traffic(3000, 1000),
        ]);
        assert!(mix(&c, &m, &r).iter().all(|x| !x.differs));
    }
}
