//! The watermark's robustness rule: which event times the engine trusts.
//!
//! "Max event time seen" must not be one event's word. So:
//!
//! - **The first events are held** until `input.time_consensus` of them
//!   have come (or the input ends, or every input is idle). Their median
//!   time is the anchor; those within `max(input.max_future_skew, 10 ×
//!   their median absolute deviation)` of it are applied, in the order they
//!   came; the others are refused (`time_outlier`). One event dated 1970,
//!   2099 or in epoch seconds before the rest can no longer set the
//!   stream's time.
//! - **Afterwards**, an event more than `input.max_future_skew` ahead of the
//!   newest trusted time is refused (`time_outlier`), and so is one that far
//!   behind it while no bucket has closed yet (later, such an event is
//!   late). Refused events never move time.
//! - **A real jump** (a producer down for days, a backfill after an
//!   outage) is accepted once `input.time_consensus` refused events agree
//!   on a new time (each within `max_future_skew` of the first) and
//!   outnumber the trusted events that came meanwhile: time jumps there,
//!   the buckets in between close (empty), and the jump is reported. A few
//!   events of one broken clock among healthy traffic never agree in
//!   numbers, so they never move time.
//!
//! In `replay` the merged stream is one input. In the service every input
//! (a Kafka partition, or a routed origin) is its own stream for this rule:
//! its first events are held until they agree (or it goes idle), and later
//! ones are judged against its *own* newest trusted time — never against
//! another partition's: one may legitimately be hours behind another (a
//! backlog, a restart from a checkpoint), and the watermark already waits
//! for the slowest. A jump is agreed per input too; the watermark follows it
//! once every active input has moved (or gone idle).

use crate::codec::{StreamKind, json};
use crate::event::{BadEvent, BadReason, Event};

/// An event held before the anchor: its JSON, its input, the caller's tag.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Held {
    outcome: bool,
    json: Vec<u8>,
    time: i64,
    source: Option<u32>,
    tag: u64,
}

/// Refused events agreeing on a time far ahead: a jump, if enough agree.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Jump {
    first: i64,
    newest: i64,
    agreeing: u64,
    /// Trusted events applied since the first of them.
    trusted: u64,
}

/// A held event refused at the anchor: the caller reports it (where it
/// came from is the caller's `tag`).
#[derive(Clone, Debug)]
pub struct Refused {
    pub tag: u64,
    pub event: Event,
    pub bad: BadEvent,
}

/// What to do with an event's time.
pub(crate) enum Gate {
    Apply,
    Hold,
    Refuse(BadEvent),
    /// A jump confirmed: time moves to this event's first.
    Jump {
        from: i64,
        to: i64,
    },
}

/// One input's state of the rule (service).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct SourceClock {
    anchored: bool,
    jump: Option<Jump>,
}

/// The rule's state (checkpointed with the engine).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Clock {
    anchored: bool,
    held: Vec<Held>,
    /// The merged stream's jump candidate (replay).
    jump: Option<Jump>,
    /// Each input's own state (service), by source id.
    sources: Vec<SourceClock>,
    /// Jumps accepted.
    pub(crate) jumps: u64,
    #[serde(skip)]
    refused: Vec<Refused>,
}

impl Clock {
    pub(crate) fn anchored(&self) -> bool {
        self.anchored
    }

    pub(crate) fn has_refused(&self) -> bool {
        !self.refused.is_empty()
    }

    pub(crate) fn holding(&self) -> usize {
        self.held.len()
    }

    /// A source's slot was (re)used for a new input: none of the old one's
    /// state, and its held events go (they were never applied nor stored
    /// as handled: the partition's next owner reads them again).
    pub(crate) fn reset_source(&mut self, source: usize) {
        if let Some(c) = self.sources.get_mut(source) {
            *c = SourceClock::default();
        }
        self.held.retain(|h| h.source != Some(source as u32));
    }

    fn source(&mut self, s: usize) -> &mut SourceClock {
        if self.sources.len() <= s {
            self.sources.resize_with(s + 1, SourceClock::default);
        }
        &mut self.sources[s]
    }

    /// Whether the input's first events have agreed (None: the merged stream).
    pub(crate) fn anchored_for(&mut self, source: Option<usize>) -> bool {
        match source {
            None => self.anchored,
            Some(s) => self.source(s).anchored,
        }
    }

    /// Events held for an input (None: the merged stream's).
    pub(crate) fn holding_for(&self, source: Option<usize>) -> usize {
        let s = source.map(|s| s as u32);
        self.held.iter().filter(|h| h.source == s).count()
    }

    /// Inputs with events held, each once.
    pub(crate) fn held_sources(&self) -> Vec<Option<usize>> {
        let mut v: Vec<Option<usize>> = self
            .held
            .iter()
            .map(|h| h.source.map(|s| s as usize))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Decides on an event at `t` from `source` (None: the merged stream)
    /// given the newest trusted time of its input; `closed`: some bucket
    /// has closed (an event far behind is then simply late).
    pub(crate) fn gate(
        &mut self,
        t: i64,
        source: Option<usize>,
        newest: Option<i64>,
        closed: bool,
        skew_ms: i64,
        consensus: u64,
    ) -> Gate {
        if !self.anchored_for(source) {
            return Gate::Hold;
        }
        let Some(f) = newest else {
            return Gate::Apply;
        };
        let slot = match source {
            None => &mut self.jump,
            Some(s) => &mut self.source(s).jump,
        };
        if t > f.saturating_add(skew_ms) {
            let j = match *slot {
                Some(mut j) if (t - j.first).abs() <= skew_ms => {
                    j.agreeing += 1;
                    j.newest = j.newest.max(t);
                    j
                }
                _ => Jump {
                    first: t,
                    newest: t,
                    agreeing: 1,
                    trusted: 0,
                },
            };
            if j.agreeing >= consensus && j.agreeing > j.trusted {
                *slot = None;
                self.jumps += 1;
                return Gate::Jump {
                    from: f,
                    to: j.first,
                };
            }
            *slot = Some(j);
            return Gate::Refuse(BadEvent::new(
                BadReason::TimeOutlier,
                format!(
                    "event_time {t} is {} ahead of the stream's event time ({f}); refused unless {consensus} events agree on a jump ({} so far)",
                    humanize_ms(t - f),
                    j.agreeing
                ),
            ));
        }
        if !closed && t < f.saturating_sub(skew_ms) {
            return Gate::Refuse(BadEvent::new(
                BadReason::TimeOutlier,
                format!(
                    "event_time {t} is {} behind the stream's event time ({f}) before any bucket closed",
                    humanize_ms(f - t)
                ),
            ));
        }
        if let Some(j) = slot {
            j.trusted += 1;
            // healthy traffic has outnumbered the candidates for long: forget them
            if j.trusted > 4 * consensus.max(j.agreeing) {
                *slot = None;
            }
        }
        Gate::Apply
    }

    /// Holds an event until the anchor.
    pub(crate) fn hold(&mut self, ev: &Event, source: Option<usize>, tag: u64) {
        let (outcome, json) = match ev {
            Event::Prediction(p) => (false, serde_json::to_vec(p)),
            Event::Outcome(o) => (true, serde_json::to_vec(o)),
        };
        // an event we decoded always encodes; were it not to, it is dropped
        // here as refused rather than lost
        match json {
            Ok(json) => self.held.push(Held {
                outcome,
                json,
                time: ev.event_time(),
                source: source.map(|s| s as u32),
                tag,
            }),
            Err(e) => self.refused.push(Refused {
                tag,
                event: ev.clone(),
                bad: BadEvent::new(BadReason::MalformedJson, format!("cannot hold: {e}")),
            }),
        }
    }

    /// Ends holding: the anchor is the held events' median time. Returns
    /// the events to apply (in the order they came, with their input);
    /// those too far from the anchor are refused (see [`Clock::drain_refused`]).
    pub(crate) fn anchor(
        &mut self,
        source: Option<usize>,
        skew_ms: i64,
    ) -> Vec<(Event, Option<usize>, u64)> {
        match source {
            None => self.anchored = true,
            Some(s) => self.source(s).anchored = true,
        }
        let key = source.map(|s| s as u32);
        let (held, rest): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.source == key);
        self.held = rest;
        if held.is_empty() {
            return Vec::new();
        }
        let mut times: Vec<i64> = held.iter().map(|h| h.time).collect();
        times.sort_unstable();
        let median = times[(times.len() - 1) / 2];
        let mut dev: Vec<i64> = times.iter().map(|t| (t - median).abs()).collect();
        dev.sort_unstable();
        let mad = dev[(dev.len() - 1) / 2];
        let tolerance = skew_ms.max(mad.saturating_mul(10));
        let mut apply = Vec::with_capacity(held.len());
        for h in held {
            let kind = if h.outcome {
                StreamKind::Outcomes
            } else {
                StreamKind::Predictions
            };
            let event = match json::decode(kind, &h.json) {
                Ok(e) => e,
                Err(bad) => {
                    // (cannot happen for JSON we wrote; counted if it does)
                    self.refused.push(Refused {
                        tag: h.tag,
                        event: Event::Outcome(crate::event::Outcome {
                            trace_id: String::new(),
                            model_id: Default::default(),
                            event_time: h.time,
                            label: crate::event::Scalar::Number(0.0),
                        }),
                        bad,
                    });
                    continue;
                }
            };
            let off = h.time - median;
            if off.abs() <= tolerance {
                apply.push((event, h.source.map(|s| s as usize), h.tag));
            } else {
                let bad = BadEvent::new(
                    BadReason::TimeOutlier,
                    format!(
                        "event_time {} is {} from the first events' median time ({median})",
                        h.time,
                        humanize_ms(off.abs())
                    ),
                );
                self.refused.push(Refused {
                    tag: h.tag,
                    event,
                    bad,
                });
            }
        }
        apply
    }

    /// A held event the engine could not apply after all (a bad event of another kind).
    pub(crate) fn refuse(&mut self, tag: u64, event: Event, bad: BadEvent) {
        self.refused.push(Refused { tag, event, bad });
    }

    /// Held events refused since the last call, for the caller to report.
    pub(crate) fn drain_refused(&mut self) -> std::vec::Drain<'_, Refused> {
        self.refused.drain(..)
    }
}

pub(crate) fn humanize_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_broken_clock_among_healthy_traffic_never_moves_time() {
        let mut c = Clock {
            anchored: true,
            ..Clock::default()
        };
        let mut refused = 0;
        // one event in ten from a host a day ahead, the rest healthy
        for i in 0..10_000i64 {
            let now = i * 500;
            let t = if i % 10 == 0 { now + 24 * H } else { now };
            match c.gate(t, None, Some(now), true, 3 * H, 16) {
                Gate::Refuse(b) => {
                    assert_eq!(b.reason, BadReason::TimeOutlier);
                    refused += 1;
                }
                Gate::Jump { .. } => panic!("jumped at event {i}"),
                _ => {}
            }
        }
        assert_eq!(refused, 1000);
    }

    #[test]
    fn agreeing_events_past_a_gap_make_a_jump() {
        let mut c = Clock {
            anchored: true,
            ..Clock::default()
        };
        let after = 40 * 24 * H;
        let mut jumped_at = None;
        for i in 0..100i64 {
            match c.gate(after + i * 500, None, Some(0), true, 3 * H, 16) {
                Gate::Jump { from, to } => {
                    assert_eq!((from, to), (0, after));
                    jumped_at = Some(i);
                    break;
                }
                Gate::Refuse(_) => {}
                _ => panic!("applied before the jump"),
            }
        }
        assert_eq!(jumped_at, Some(15), "the 16th agreeing event");
        assert_eq!(c.jumps, 1);
    }

    #[test]
    fn the_anchor_refuses_the_first_events_far_from_their_median() {
        let mut c = Clock::default();
        let ev = |t: i64| {
            Event::Outcome(crate::event::Outcome {
                trace_id: "t".into(),
                model_id: "m".into(),
                event_time: t,
                label: crate::event::Scalar::Number(1.0),
            })
        };
        c.hold(&ev(86_400_000), None, 0); // 1970-01-02, first
        for i in 1..16 {
            c.hold(&ev(1_767_225_600_000 + i * 500), None, i as u64);
        }
        let applied = c.anchor(None, 3 * H);
        assert_eq!(applied.len(), 15);
        assert_eq!(applied[0].2, 1, "in the order they came");
        let refused: Vec<Refused> = c.drain_refused().collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].tag, 0);
        assert_eq!(refused[0].bad.reason, BadReason::TimeOutlier);
    }
}
