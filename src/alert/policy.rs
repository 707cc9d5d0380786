//! When a series alerts: persistence (k of the last n evaluations breach),
//! escalation as its own event, resolution with hysteresis, and a cool-down
//! after each resolve.

use crate::alert::{AlertState, Severity};
use crate::config::PolicyConfig;

/// What one evaluation of a channel (a series and an alert kind) found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Tier reached by the effect size, when the shift is also significant
    /// and the samples are large enough.
    pub breach: Option<Severity>,
    /// Every effect size is below `hysteresis` × its warning tier.
    pub calm: bool,
}

/// A change of a channel's alert state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Fire(Severity),
    Escalate,
    Resolve,
}

/// An open alert episode.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    pub alert_id: String,
    pub severity: Severity,
    pub started_at: i64,
}

/// Policy state of one channel.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ChannelState {
    history: u64,
    critical_history: u64,
    evaluations: u32,
    calm_streak: u32,
    cooldown_until: i64,
    pub episode: Option<Episode>,
}

impl ChannelState {
    /// Breaches among the last n evaluations, and how many evaluations that is.
    pub fn persistence(&self, p: &PolicyConfig) -> (u32, u32) {
        (
            self.history.count_ones(),
            self.evaluations.min(p.persistence_n as u32),
        )
    }

    /// Whether a verdict of too few samples would leave this channel as
    /// anything reads it: no episode, no breach or calm to remember, and
    /// enough evaluations that the count in `persistence` stays at n.
    pub fn idle(&self, p: &PolicyConfig) -> bool {
        self.episode.is_none()
            && self.history == 0
            && self.critical_history == 0
            && self.calm_streak == 0
            && self.evaluations as usize >= p.persistence_n
    }

    /// Feeds one evaluation at event time `now`; returns the transition, if any.
    /// On `Fire`, the caller opens the episode with [`ChannelState::open`].
    pub fn step(&mut self, v: Verdict, now: i64, p: &PolicyConfig) -> Option<Transition> {
        let mask = if p.persistence_n >= 64 {
            u64::MAX
        } else {
            (1u64 << p.persistence_n) - 1
        };
        self.history = ((self.history << 1) | v.breach.is_some() as u64) & mask;
        self.critical_history =
            ((self.critical_history << 1) | (v.breach == Some(Severity::Critical)) as u64) & mask;
        self.evaluations = self.evaluations.saturating_add(1);
        self.calm_streak = if v.calm { self.calm_streak + 1 } else { 0 };
        let k = p.persistence_k as u32;
        match &mut self.episode {
            None => {
                let sev = v.breach?;
                (self.history.count_ones() >= k && now >= self.cooldown_until)
                    .then_some(Transition::Fire(sev))
            }
            Some(ep) => {
                if self.calm_streak as usize >= p.resolve_after {
                    self.cooldown_until = now + p.cooldown.as_millis();
                    return Some(Transition::Resolve);
                }
                if ep.severity == Severity::Warning
                    && v.breach == Some(Severity::Critical)
                    && self.critical_history.count_ones() >= k
                {
                    ep.severity = Severity::Critical;
                    return Some(Transition::Escalate);
                }
                None
            }
        }
    }

    pub fn open(&mut self, alert_id: String, severity: Severity, now: i64) {
        self.episode = Some(Episode {
            alert_id,
            severity,
            started_at: now,
        });
    }

    /// Carries out a transition: opens the episode (its id made by `id` on a
    /// fire), or reads or closes it. Returns the alert's state, severity, id
    /// and persistence (breaches, evaluations) as they stood at this
    /// evaluation; None when there is no episode to escalate or resolve.
    pub fn apply(
        &mut self,
        t: Transition,
        now: i64,
        p: &PolicyConfig,
        id: impl FnOnce() -> String,
    ) -> Option<(AlertState, Severity, String, (u32, u32))> {
        let (state, severity, alert_id) = match t {
            Transition::Fire(sev) => {
                let id = id();
                self.open(id.clone(), sev, now);
                (AlertState::Firing, sev, id)
            }
            Transition::Escalate => {
                let ep = self.episode.as_ref()?;
                (AlertState::Escalated, ep.severity, ep.alert_id.clone())
            }
            Transition::Resolve => {
                let ep = self.close()?;
                (AlertState::Resolved, ep.severity, ep.alert_id)
            }
        };
        // a resolve clears the history
        let persistence = if state == AlertState::Resolved {
            (0, 0)
        } else {
            self.persistence(p)
        };
        Some((state, severity, alert_id, persistence))
    }

    /// Ends the episode after a `Resolve`, clearing the breach history.
    pub fn close(&mut self) -> Option<Episode> {
        self.history = 0;
        self.critical_history = 0;
        self.evaluations = 0;
        self.calm_streak = 0;
        self.episode.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn cfg() -> PolicyConfig {
        PolicyConfig {
            persistence_k: 3,
            persistence_n: 5,
            resolve_after: 2,
            cooldown: HumanDuration::secs(600),
            ..PolicyConfig::default()
        }
    }
    const W: Verdict = Verdict {
        breach: Some(Severity::Warning),
        calm: false,
    };
    const C: Verdict = Verdict {
        breach: Some(Severity::Critical),
        calm: false,
    };
    const QUIET: Verdict = Verdict {
        breach: None,
        calm: true,
    };
    const NOISY: Verdict = Verdict {
        breach: None,
        calm: false,
    };

    fn run(s: &mut ChannelState, vs: &[Verdict], t0: i64) -> Vec<Option<Transition>> {
        let p = cfg();
        vs.iter()
            .enumerate()
            .map(|(i, v)| {
                let now = t0 + i as i64 * 60_000;
                let t = s.step(*v, now, &p);
                match t {
                    Some(Transition::Fire(sev)) => s.open(format!("id{now}"), sev, now),
                    Some(Transition::Resolve) => {
                        s.close();
                    }
                    _ => {}
                }
                t
            })
            .collect()
    }

    #[test]
    fn fires_only_after_k_of_n() {
        let mut s = ChannelState::default();
        let t = run(&mut s, &[W, NOISY, W, NOISY, W], 0);
        assert_eq!(
            t,
            vec![
                None,
                None,
                None,
                None,
                Some(Transition::Fire(Severity::Warning))
            ]
        );
        assert_eq!(s.persistence(&cfg()), (3, 5));
    }

    #[test]
    fn a_transient_breach_never_fires() {
        let mut s = ChannelState::default();
        let t = run(&mut s, &[C, C, QUIET, QUIET, QUIET, QUIET, C, QUIET], 0);
        assert!(t.iter().all(Option::is_none), "{t:?}");
    }

    #[test]
    fn escalates_once_then_resolves_with_hysteresis_then_cools_down() {
        let mut s = ChannelState::default();
        let t = run(
            &mut s,
            &[W, W, W, C, C, C, C, NOISY, QUIET, QUIET, W, W, W],
            0,
        );
        assert_eq!(t[2], Some(Transition::Fire(Severity::Warning)));
        assert_eq!(t[5], Some(Transition::Escalate));
        assert_eq!(t[6], None, "escalation is one event");
        assert_eq!(t[7], None, "not calm yet");
        assert_eq!(t[9], Some(Transition::Resolve));
        assert!(
            t[10..].iter().all(Option::is_none),
            "cool-down holds: {t:?}"
        );
        assert!(s.episode.is_none());
        // breaches during the cool-down still count: once it ends, the next breach fires
        let t = run(&mut s, &[W], 20 * 60_000);
        assert_eq!(t[0], Some(Transition::Fire(Severity::Warning)));
    }

    #[test]
    fn critical_from_the_start_fires_critical() {
        let mut s = ChannelState::default();
        let t = run(&mut s, &[C, C, C, C], 0);
        assert_eq!(t[2], Some(Transition::Fire(Severity::Critical)));
        assert_eq!(t[3], None);
    }
}
