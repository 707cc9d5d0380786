//! Release gates: a candidate model version (a canary serving a share of
//! traffic, or a shadow scored on every request but not served) judged
//! against production on the same live traffic, per slice, with delayed
//! labels; and the decisions that follow, as action events.
//!
//! **Versions.** Production is the version `release.production` names for
//! the model, or else the first version that held its traffic (an event
//! without a version is production's). Any other version, and every event
//! flagged `shadow`, is a candidate's: the engine never counts it in
//! production's series (drift, quality, incidents), only here.
//!
//! **Comparison.** From a candidate's first event on, each labelled
//! prediction of either version (its own join, keyed by model and trace id:
//! a shadow and its production twin share a trace id and both join the one
//! outcome) adds its loss — Brier score with a score, squared error for a
//! regression, error rate for classes — to its version's totals, overall
//! and per slice. Every `release.evaluate_every` of event time each slice
//! with `min_pairs` pairs per version is tested: Welch's t-test, one-sided
//! (is the candidate's mean loss higher?), Benjamini–Hochberg over the
//! slices of that evaluation. A slice is *worse* when its adjusted p-value
//! is at most `alpha` and the candidate's loss is at least `worse_by`
//! (relative) above production's.
//!
//! **Decisions** (`Action`), at most one open per candidate:
//! - `rollback_recommended` when some slice (or the overall series) has been
//!   worse for `persistence` consecutive evaluations, naming the worst such
//!   slice; or when the fairness gate fails (the candidate's loss gap between
//!   the values of `fairness_dimension` exceeds production's by more than
//!   `fairness_margin`). A rollback supersedes an earlier `promote_ok`, and
//!   says so; it is final for that candidate.
//! - `promote_ok` once the candidate has been live `promote_after`, with
//!   `promote_min_pairs` pairs overall, no slice worse by `worse_by` (point
//!   estimate, slices with `min_pairs`), and the fairness gate passing.
//!
//! Pairs are counted at evaluation only when their outcome's event time is
//! before the evaluation's, and sums are order-independent: the decisions
//! are the same in `replay` and `run`, whatever the interleaving.

mod action;
pub mod avro;
mod gate;
pub mod retrain;
mod view;

pub use action::{Action, ActionKind, Context, Evidence, action_id};
pub use gate::welch_greater;
use gate::{judge, summary};
pub use view::{CandidateView, VersionsView, views};

use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ReleaseConfig};
use crate::join::{Label, MAX_SLOTS};
use crate::registry::Model;
use crate::sketch::moments::Moments;

/// Candidates tracked per model; events of more versions are counted and
/// left out of comparisons (never counted as production either).
pub const MAX_CANDIDATES: usize = 8;
/// Score histogram bins (AUC evidence, score distribution).
const SCORE_BINS: usize = 50;
/// Scores are clamped to [this, 1 − this] before a log loss is taken.
const LOG_LOSS_FLOOR: f64 = 1e-15;

/// Whose an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Production,
    /// Index into the model's candidates.
    Candidate(usize),
    /// A candidate past `MAX_CANDIDATES`.
    Untracked,
}

/// One version's totals in one slice (0: overall).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Predictions seen since the candidate started (labelled or not).
    pub traffic: u64,
    /// Their scores (binary models), for the prediction-distribution comparison.
    pub scores: Vec<u64>,
    /// Labelled pairs, and the sum of their losses (order-independent).
    pub pairs: u64,
    pub loss: Moments,
    /// Scores by label (binary with scores only), for AUC.
    pub pos: Vec<u32>,
    pub neg: Vec<u32>,
    /// Pairs whose predicted class was right (binary and classes).
    pub correct: u64,
    /// Binary with scores: pairs with a score, their log loss, their
    /// scores and positives summed (calibration-in-the-large).
    pub scored: u64,
    pub log_loss: Moments,
    pub score_sum: Moments,
    pub positives: u64,
}

impl Totals {
    fn mean(&self) -> f64 {
        self.loss.mean(self.pairs)
    }
    fn var(&self) -> f64 {
        if self.pairs < 2 {
            return 0.0;
        }
        self.loss.m2(self.pairs) / (self.pairs - 1) as f64
    }
    /// Share of pairs whose predicted class was right; None for regressions.
    pub fn accuracy(&self, statistic: &str) -> Option<f64> {
        (self.pairs > 0 && statistic != "squared_error")
            .then(|| self.correct as f64 / self.pairs as f64)
    }
    /// Mean log loss (binary with scores).
    pub fn log_loss(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.log_loss.mean(self.scored))
    }
    /// Calibration error in the large: |mean score − positive rate|.
    pub fn calibration(&self) -> Option<f64> {
        (self.scored > 0).then(|| {
            (self.score_sum.mean(self.scored) - self.positives as f64 / self.scored as f64).abs()
        })
    }
    /// Area under the ROC curve from the score histograms (ties within a bin count half).
    pub fn auc(&self) -> Option<f64> {
        let (p, n): (u64, u64) = (
            self.pos.iter().map(|&x| x as u64).sum(),
            self.neg.iter().map(|&x| x as u64).sum(),
        );
        if p == 0 || n == 0 {
            return None;
        }
        let mut below = 0u64;
        let mut s = 0.0;
        for i in 0..self.pos.len().min(self.neg.len()) {
            s += self.pos[i] as f64 * (below as f64 + 0.5 * self.neg[i] as f64);
            below += self.neg[i] as u64;
        }
        Some(s / (p as f64 * n as f64))
    }
}

/// What a candidate has been told so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decided {
    Nothing,
    Promoted,
    RolledBack,
}

/// A candidate version of a model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    pub version: String,
    /// Its events are flagged `shadow` (else it serves: a canary).
    pub shadow: bool,
    /// Event time of its first event.
    pub started: i64,
    /// Per slot (0 overall): [production, candidate].
    pub totals: Vec<[Totals; 2]>,
    /// Consecutive evaluations with a worse slice.
    pub streak: u32,
    /// Consecutive evaluations with a critical score drift only the candidate has.
    pub drift_streak: u32,
    /// The latest score-drift check against production's reference.
    pub drift: Option<ScoreDrift>,
    pub decided: Decided,
    /// The open decision's action id (a later one supersedes it).
    pub last_action: Option<String>,
    /// The latest comparison, per slot, for the API and dashboard.
    pub latest: Vec<SliceComparison>,
    /// The latest comparisons of what the versions see and say (input mix
    /// per slice dimension, score distribution): findings shown beside the
    /// quality comparison, not rules.
    pub mix: Vec<MixComparison>,
}

/// One distribution compared between production and a candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MixComparison {
    /// `input_mix` (over a slice dimension's values) or `score`.
    pub what: String,
    /// The slice dimension for `input_mix`; empty for `score`.
    pub dimension: String,
    /// Jensen–Shannon distance (base 2) between the two distributions.
    pub js_distance: f64,
    /// Chi-square test of homogeneity over the cells seen.
    pub chi2: f64,
    pub p_value: f64,
    /// The counts compared (production, candidate).
    pub n: [u64; 2],
    /// p below `release.alpha` and a distance of at least 0.1: the
    /// candidate sees (or says) something production does not.
    pub differs: bool,
}

/// Each version's score distribution since the candidate started, against
/// the reference of production's `score` series (the one its drift alerts
/// use), by the PSI over ten equal-width score bins with the `tests.psi`
/// tiers: a drift is the candidate's own when its PSI is critical and
/// production's, on the same traffic, is not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreDrift {
    pub statistic: String,
    pub candidate: f64,
    pub production: f64,
    pub critical: f64,
    /// Scores counted (production, candidate).
    pub n: [u64; 2],
    pub unique: bool,
}

/// Counts a score into a histogram of `SCORE_BINS`.
fn add_score(h: &mut Vec<u64>, score: Option<f64>) {
    let Some(s) = score.filter(|s| s.is_finite()) else {
        return;
    };
    if h.is_empty() {
        h.resize(SCORE_BINS, 0);
    }
    h[((s.clamp(0.0, 1.0) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)] += 1;
}

/// One slice's comparison at an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceComparison {
    pub slice: BTreeMap<String, String>,
    pub pairs: [u64; 2],
    pub traffic: [u64; 2],
    pub loss: [f64; 2],
    pub auc: [Option<f64>; 2],
    /// Shown beside the tested loss: accuracy (classes, binary), log loss
    /// and calibration error in the large (binary with scores).
    pub accuracy: [Option<f64>; 2],
    pub log_loss: [Option<f64>; 2],
    pub calibration: [Option<f64>; 2],
    /// Candidate's loss relative to production's, less one.
    pub relative: f64,
    pub p_value: f64,
    pub p_adjusted: f64,
    pub worse: bool,
}

/// Release state of one model.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModelRelease {
    pub production: Option<String>,
    pub candidates: Vec<Candidate>,
    /// The loss compared: `brier`, `squared_error` or `error_rate` (set by the first pair).
    pub statistic: Option<String>,
    /// Candidate events past `MAX_CANDIDATES`.
    pub untracked: u64,
}

/// A prediction waiting in the comparison join.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Pending {
    model: u32,
    /// 0: production, else candidate index + 1.
    version: u8,
    slots: [u32; MAX_SLOTS],
    n_slots: u8,
    prediction: f64,
    class: u32,
    score: f32,
    event_time: i64,
}

/// The release tracker of one engine (checkpointed with it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Release {
    pub models: Vec<ModelRelease>,
    waiting: FxHashMap<u128, Vec<Pending>>,
    order: VecDeque<(i64, u128)>,
    orphans: FxHashMap<u128, (Label, i64)>,
    orphan_order: VecDeque<(i64, u128)>,
    /// Joined pairs not counted yet: (outcome time, pending, label).
    staged: Vec<(i64, Pending, Label)>,
    last_eval: Option<i64>,
    pub retrain: retrain::Retrain,
    out: Vec<Action>,
}

impl Release {
    fn model(&mut self, m: u32) -> &mut ModelRelease {
        let m = m as usize;
        if self.models.len() <= m {
            self.models.resize_with(m + 1, ModelRelease::default);
        }
        &mut self.models[m]
    }

    /// Whose a prediction is (production, or which candidate), registering
    /// production and candidates on first sight.
    pub fn role(
        &mut self,
        m: u32,
        model_id: &str,
        version: Option<&str>,
        shadow: bool,
        t: i64,
        cfg: &ReleaseConfig,
    ) -> Role {
        let mr = self.model(m);
        if mr.production.is_none() {
            mr.production = cfg
                .production
                .get(model_id)
                .cloned()
                .or_else(|| (!shadow).then(|| version.map(str::to_string)).flatten());
        }
        let production = match (version, mr.production.as_deref()) {
            (None, _) => true,
            (Some(v), Some(w)) => crate::codec::same(v, w),
            (Some(_), None) => false,
        };
        if !shadow && production {
            return Role::Production;
        }
        let v = version.unwrap_or("");
        // the comparison starts at the evaluation boundary before its first
        // event: the same in every interleaving of the partitions unless one
        // lags by more than that
        let start = t - t.rem_euclid(cfg.evaluate_every.as_millis().max(1));
        if let Some(i) = mr
            .candidates
            .iter()
            .position(|c| c.version == v && c.shadow == shadow)
        {
            let c = &mut mr.candidates[i];
            c.started = c.started.min(start);
            return Role::Candidate(i);
        }
        if mr.candidates.len() >= MAX_CANDIDATES {
            mr.untracked += 1;
            return Role::Untracked;
        }
        mr.candidates.push(Candidate {
            version: v.to_string(),
            shadow,
            started: start,
            totals: Vec::new(),
            streak: 0,
            drift_streak: 0,
            drift: None,
            decided: Decided::Nothing,
            last_action: None,
            latest: Vec::new(),
            mix: Vec::new(),
        });
        Role::Candidate(mr.candidates.len() - 1)
    }

    /// Whether any model has a candidate (production's pairs are then wanted).
    pub fn comparing_any(&self) -> bool {
        self.models.iter().any(|mr| !mr.candidates.is_empty())
    }

    /// Production predictions per slot while comparing (shown, not tested).
    pub fn production_traffic(&mut self, m: u32, slots: &[u32], score: Option<f64>, t: i64) {
        for c in &mut self.model(m).candidates {
            if t < c.started {
                continue;
            }
            for &slot in slots {
                let slot = slot as usize;
                if c.totals.len() <= slot {
                    c.totals.resize_with(slot + 1, Default::default);
                }
                c.totals[slot][0].traffic += 1;
                if slot == 0 {
                    add_score(&mut c.totals[0][0].scores, score);
                }
            }
        }
    }

    /// Production's labelled pairs, as the quality monitor counted them
    /// (in its deterministic order, at the evaluation's cut-off).
    pub fn production_pairs(&mut self, pairs: impl Iterator<Item = crate::join::Joined>) {
        for (w, label, _) in pairs {
            if !self.comparing(w.model) {
                continue;
            }
            let p = Pending {
                model: w.model,
                version: 0,
                slots: w.slots,
                n_slots: w.n_slots,
                prediction: w.prediction,
                class: w.class,
                score: w.score,
                event_time: w.event_time,
            };
            self.count(&p, label);
        }
    }

    /// Whether a model has a candidate.
    pub fn comparing(&self, m: u32) -> bool {
        self.models
            .get(m as usize)
            .is_some_and(|mr| !mr.candidates.is_empty())
    }

    /// A candidate's prediction: counted as traffic, and waits for its
    /// outcome when `join` (its ttl and the most waiting) says one can come.
    #[allow(clippy::too_many_arguments)]
    pub fn prediction(
        &mut self,
        key: u128,
        m: u32,
        role: Role,
        slots: &[u32],
        prediction: f64,
        class: u32,
        score: Option<f64>,
        t: i64,
        join: Option<(i64, usize)>,
    ) {
        let version = match role {
            Role::Production => 0u8,
            Role::Candidate(i) => i as u8 + 1,
            Role::Untracked => return,
        };
        let mut s = [0u32; MAX_SLOTS];
        let n = slots.len().min(MAX_SLOTS);
        s[..n].copy_from_slice(&slots[..n]);
        let p = Pending {
            model: m,
            version,
            slots: s,
            n_slots: n as u8,
            prediction,
            class,
            score: score.map_or(f32::NAN, |x| x as f32),
            event_time: t,
        };
        // traffic per version and slot, for every candidate it is compared with
        let mr = self.model(m);
        for (ci, c) in mr.candidates.iter_mut().enumerate() {
            if (version != 0 && version as usize != ci + 1) || t < c.started {
                continue;
            }
            let side = (version != 0) as usize;
            for &slot in &s[..n] {
                let slot = slot as usize;
                if c.totals.len() <= slot {
                    c.totals.resize_with(slot + 1, Default::default);
                }
                c.totals[slot][side].traffic += 1;
                if slot == 0 {
                    add_score(&mut c.totals[0][side].scores, score);
                }
            }
        }
        let Some((ttl_ms, max_waiting)) = join else {
            return;
        };
        if let Some(&(label, at)) = self.orphans.get(&key) {
            // the outcome came first; kept for a shadow's twin until its hold ends
            self.staged.push((at, p, label));
            return;
        }
        let w = self.waiting.entry(key).or_default();
        if w.is_empty() {
            self.order.push_back((t + ttl_ms, key));
        }
        w.push(p);
        while self.waiting.len() > max_waiting.max(1) {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.waiting.remove(&old);
                }
                None => break,
            }
        }
    }

    /// An outcome: joins every waiting prediction of its trace id; true when
    /// one was a candidate's (production's own join must then not hold it
    /// as an orphan if it has no prediction for it).
    pub fn outcome(
        &mut self,
        key: u128,
        label: Label,
        t: i64,
        hold_ms: i64,
        max_orphans: usize,
    ) -> bool {
        if let Some(ps) = self.waiting.remove(&key) {
            let candidate = ps.iter().any(|p| p.version != 0);
            for p in ps {
                self.staged.push((t, p, label));
            }
            return candidate;
        }
        // held whether or not the model has a candidate yet: an outcome
        // read before the candidate's first prediction (its partition ahead
        // of the predictions') must still meet it, as in replay's order
        if self.orphans.insert(key, (label, t)).is_none() {
            self.orphan_order.push_back((t + hold_ms, key));
        }
        while self.orphans.len() > max_orphans.max(1) {
            match self.orphan_order.pop_front() {
                Some((_, old)) => {
                    self.orphans.remove(&old);
                }
                None => break,
            }
        }
        false
    }

    /// Drops waits that ended by event time `now`.
    pub fn expire(&mut self, now: i64) {
        while let Some(&(at, k)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            self.waiting.remove(&k);
        }
        while let Some(&(at, k)) = self.orphan_order.front() {
            if at > now {
                break;
            }
            self.orphan_order.pop_front();
            self.orphans.remove(&k);
        }
    }

    /// Counts the staged pairs whose outcome came before `now`.
    fn count_staged(&mut self, now: i64) {
        let staged = std::mem::take(&mut self.staged);
        let mut keep = Vec::new();
        for (t, p, label) in staged {
            if t >= now {
                keep.push((t, p, label));
                continue;
            }
            self.count(&p, label);
        }
        self.staged = keep;
    }

    fn count(&mut self, p: &Pending, label: Label) {
        let score = (!p.score.is_nan()).then_some(p.score as f64);
        let (statistic, loss, binary, correct) = match label {
            Label::Class(c) => (
                "error_rate",
                (p.class != c) as u8 as f64,
                None,
                p.class == c,
            ),
            Label::Number(y) if (y == 0.0 || y == 1.0) => {
                let right = (p.prediction >= 0.5) == (y == 1.0);
                match score {
                    Some(s) => ("brier", (s - y) * (s - y), Some((s, y == 1.0)), right),
                    None => ("error_rate", (!right) as u8 as f64, None, right),
                }
            }
            Label::Number(y) if p.prediction.is_finite() => {
                ("squared_error", (p.prediction - y).powi(2), None, false)
            }
            Label::Number(_) => return,
        };
        let mr = self.model(p.model);
        let st = mr.statistic.get_or_insert_with(|| statistic.to_string());
        if st != statistic {
            return;
        }
        for (ci, c) in mr.candidates.iter_mut().enumerate() {
            if (p.version != 0 && p.version as usize != ci + 1) || p.event_time < c.started {
                continue;
            }
            let side = (p.version != 0) as usize;
            for &slot in &p.slots[..p.n_slots as usize] {
                let slot = slot as usize;
                if c.totals.len() <= slot {
                    c.totals.resize_with(slot + 1, Default::default);
                }
                let tot = &mut c.totals[slot][side];
                tot.pairs += 1;
                tot.loss.add(loss);
                tot.correct += correct as u64;
                if let Some((s, positive)) = binary {
                    let q = s.clamp(LOG_LOSS_FLOOR, 1.0 - LOG_LOSS_FLOOR);
                    tot.scored += 1;
                    tot.log_loss
                        .add(-if positive { q.ln() } else { (1.0 - q).ln() });
                    tot.score_sum.add(s);
                    tot.positives += positive as u64;
                    let h = if positive { &mut tot.pos } else { &mut tot.neg };
                    if h.is_empty() {
                        h.resize(SCORE_BINS, 0);
                    }
                    let bin =
                        ((s.clamp(0.0, 1.0) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1);
                    h[bin] += 1;
                }
            }
        }
    }

    /// Compares every live candidate (every `release.evaluate_every`) and
    /// queues the decisions; `models` names the slots; `score_reference(m)`
    /// is model `m`'s pinned score reference (quantiles), if any.
    pub fn evaluate<'r>(
        &mut self,
        now: i64,
        models: &[Model],
        cfg: &Config,
        cx: &Context<'_>,
        score_reference: impl Fn(usize) -> Option<&'r [f64]>,
    ) {
        self.expire(
            now - cfg
                .join
                .ttl
                .as_millis()
                .max(cfg.join.orphan_hold.as_millis()),
        );
        let every = cfg.release.evaluate_every.as_millis();
        if self.last_eval.is_some_and(|l| now - l < every) {
            return;
        }
        self.last_eval = Some(now);
        self.count_staged(now);
        let r = &cfg.release;
        for (m, mr) in self.models.iter_mut().enumerate() {
            let Some(model) = models.get(m) else { continue };
            let statistic = mr.statistic.clone().unwrap_or_else(|| "brier".into());
            let reference = score_reference(m);
            for c in &mut mr.candidates {
                let decision = judge(c, model, now, r, &statistic, reference, cfg.tests.psi);
                let Some((kind, slot, rule, evidence)) = decision else {
                    continue;
                };
                let slice = slice_of(model, slot);
                let mut evidence = evidence;
                if evidence.statistic.is_empty() {
                    evidence.statistic = statistic.clone();
                }
                let mode = if c.shadow { "shadow" } else { "canary" };
                evidence.summary = summary(
                    kind,
                    &model.id,
                    &c.version,
                    mr.production.as_deref(),
                    mode,
                    &slice,
                    &evidence,
                );
                let id = action_id(&[
                    &model.id,
                    &c.version,
                    mode,
                    kind.as_str(),
                    rule,
                    &crate::incident::slice_words(&slice),
                ]);
                let supersedes = c.last_action.replace(id.clone());
                self.out.push(Action {
                    action_id: id,
                    action: kind,
                    model_id: model.id.clone(),
                    model_version: Some(c.version.clone()),
                    baseline_version: mr.production.clone(),
                    mode: mode.into(),
                    slice: slice.clone(),
                    rule: rule.into(),
                    evidence,
                    incident_id: None,
                    supersedes,
                    decided_at: now,
                    owner: cx.owners.owner_of(&model.id, None, &slice, "release"),
                    runbook_url: format!("{}release.md", cx.runbook_base),
                    config_hash: cx.config_hash.to_string(),
                    engine_version: crate::config::engine_version().to_string(),
                    emitted_at: now,
                });
            }
        }
    }

    /// Queues an action made elsewhere (retraining).
    pub(crate) fn push(&mut self, a: Action) {
        self.out.push(a);
    }

    /// Action events produced since the last call, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.out.drain(..)
    }

    /// Whether actions wait for [`Release::drain`].
    pub fn pending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Predictions waiting in the comparison join.
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }
}

/// The slice of a slot (`{}` for 0, the overall series).
pub fn slice_of(model: &Model, slot: usize) -> BTreeMap<String, String> {
    model
        .slots
        .get(slot)
        .and_then(|s| s.clone())
        .map(|(d, v)| BTreeMap::from([(d, v)]))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(losses: &[f64]) -> Totals {
        let mut t = Totals::default();
        for &x in losses {
            t.pairs += 1;
            t.loss.add(x);
        }
        t
    }

    #[test]
    fn welch_agrees_with_scipy() {
        // scipy.stats.ttest_ind([.1,.2,.3,.4,.5], [.3,.4,.5,.6,.7,.8], equal_var=False, alternative="less")
        // -> pvalue 0.0199015: the second mean is greater (scipy 1.x, measured)
        let p = totals(&[0.1, 0.2, 0.3, 0.4, 0.5]);
        let c = totals(&[0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
        let pv = welch_greater(&p, &c);
        assert!((pv - 0.019_901_5).abs() < 1e-6, "{pv}");
        assert!(welch_greater(&c, &p) > 0.9);
    }

    #[test]
    fn accuracy_log_loss_and_calibration_of_labelled_pairs() {
        let cfg = ReleaseConfig::default();
        let mut r = Release::default();
        assert_eq!(r.role(0, "m", Some("v7"), false, 0, &cfg), Role::Production);
        assert_eq!(
            r.role(0, "m", Some("v8"), false, 0, &cfg),
            Role::Candidate(0)
        );
        for (s, y) in [(0.9, 1.0), (0.2, 0.0), (0.6, 0.0), (0.4, 1.0)] {
            let p = Pending {
                model: 0,
                version: 1,
                slots: [0; MAX_SLOTS],
                n_slots: 1,
                prediction: (s >= 0.5) as u8 as f64,
                class: 0,
                score: s as f32,
                event_time: 1,
            };
            r.count(&p, Label::Number(y));
        }
        let t = &r.models[0].candidates[0].totals[0][1];
        // sklearn.metrics.log_loss([1,0,0,1], [.9,.2,.6,.4]) = 0.5402710...
        let ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.4f64.ln()) / 4.0;
        assert!(
            (t.log_loss().unwrap() - ll).abs() < 1e-6,
            "{:?}",
            t.log_loss()
        );
        assert_eq!(t.accuracy("brier"), Some(0.5));
        assert!((t.calibration().unwrap() - 0.025).abs() < 1e-6);
        assert_eq!(t.accuracy("squared_error"), None);
        // production's side saw nothing
        assert_eq!(r.models[0].candidates[0].totals[0][0].log_loss(), None);
    }

    #[test]
    fn auc_from_histograms() {
        let mut t = Totals {
            pos: vec![0, 0, 3],
            neg: vec![2, 1, 0],
            ..Totals::default()
        };
        assert_eq!(t.auc(), Some(1.0));
        t.pos = vec![1, 1, 1];
        t.neg = vec![1, 1, 1];
        assert!((t.auc().unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn roles_production_first_version_and_shadow_never() {
        let cfg = ReleaseConfig::default();
        let mut r = Release::default();
        assert_eq!(
            r.role(0, "m", Some("v8"), true, 5, &cfg),
            Role::Candidate(0)
        );
        assert_eq!(r.role(0, "m", Some("v7"), false, 6, &cfg), Role::Production);
        assert_eq!(r.role(0, "m", None, false, 7, &cfg), Role::Production);
        assert_eq!(
            r.role(0, "m", Some("v8"), false, 8, &cfg),
            Role::Candidate(1)
        );
        assert_eq!(
            r.role(0, "m", Some("v8"), true, 9, &cfg),
            Role::Candidate(0)
        );
        let mut named = ReleaseConfig::default();
        named.production.insert("m".into(), "v9".into());
        let mut r = Release::default();
        assert_eq!(
            r.role(0, "m", Some("v7"), false, 1, &named),
            Role::Candidate(0)
        );
        assert_eq!(
            r.role(0, "m", Some("v9"), false, 2, &named),
            Role::Production
        );
        for i in 0..MAX_CANDIDATES {
            r.role(0, "m", Some(&format!("x{i}")), false, 3, &named);
        }
        assert_eq!(r.role(0, "m", Some("y"), false, 4, &named), Role::Untracked);
    }
}
