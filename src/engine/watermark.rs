//! Event time reached: the newest event time seen, and the engine's inputs
//! (Kafka partitions, or routed origins), each with its own newest event
//! time and idleness. The watermark is what every active input has reached,
//! less the allowed lateness: the slowest active input holds it back, an idle
//! one does not, and one that has delivered nothing yet holds it entirely.
//!
//! In replay there are no inputs: the one merged stream is its own, and event
//! time reached is the newest event time.

/// One input of the engine: its newest event time and whether it is idle
/// (then it does not hold the watermark back).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Source {
    max: Option<i64>,
    idle: bool,
    removed: bool,
}

/// The newest event time and the inputs that hold the watermark back.
/// (Checkpointed in this field order: the checkpoint format depends on it.)
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Watermark {
    max_time: Option<i64>,
    sources: Vec<Source>,
    /// The oldest event time delivered by any source.
    min_delivered: Option<i64>,
}

impl Watermark {
    /// The newest event time applied (any input).
    pub(crate) fn newest(&self) -> Option<i64> {
        self.max_time
    }

    /// An event at `t` was applied.
    pub(crate) fn see(&mut self, t: i64) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }

    /// An event at `t` was applied from `source`: the source is active and
    /// has reached at least `t`.
    pub(crate) fn delivered(&mut self, source: usize, t: i64) {
        if let Some(s) = self.sources.get_mut(source) {
            s.max = Some(s.max.map_or(t, |m| m.max(t)));
            s.idle = false;
            self.min_delivered = Some(self.min_delivered.map_or(t, |m| m.min(t)));
        }
    }

    /// Adds an input and returns its id (a removed one's slot is reused).
    pub(crate) fn add_source(&mut self) -> usize {
        if let Some(i) = self.sources.iter().position(|s| s.removed) {
            self.sources[i] = Source::default();
            return i;
        }
        self.sources.push(Source::default());
        self.sources.len() - 1
    }

    /// Removes an input: it no longer holds the watermark back.
    pub(crate) fn remove_source(&mut self, id: usize) {
        if let Some(s) = self.sources.get_mut(id) {
            s.removed = true;
        }
    }

    /// The newest event time a source has delivered.
    pub(crate) fn source_max(&self, id: usize) -> Option<i64> {
        self.sources.get(id).and_then(|s| s.max)
    }

    /// Marks a source idle or active again; true when it just turned idle
    /// (the watermark may move on).
    pub(crate) fn set_idle(&mut self, id: usize, idle: bool) -> bool {
        match self.sources.get_mut(id) {
            Some(s) if s.idle != idle => {
                s.idle = idle;
                idle
            }
            _ => false,
        }
    }

    /// The newest event time the slowest active source has reached (None
    /// while an active source has delivered nothing, or none is active).
    pub(crate) fn slowest_active(&self) -> Option<i64> {
        let mut active = self.active().peekable();
        active.peek()?;
        active
            .map(|s| s.max)
            .try_fold(i64::MAX, |acc, m| m.map(|m| acc.min(m)))
    }

    /// The newest event time every active source has reached: with no
    /// sources (replay) the newest event time; otherwise the smallest newest
    /// time among active sources (None while one has delivered nothing), or
    /// the newest event time when every source is idle.
    pub(crate) fn reached(&self) -> Option<i64> {
        if self.active().next().is_none() {
            return self.max_time;
        }
        self.slowest_active()
    }

    /// Where flow control paces the inputs against: the slowest active
    /// source's newest time; while an active source has delivered nothing
    /// yet, the oldest event time any source delivered (that source's
    /// events are not known to be newer, so the others wait for it rather
    /// than run ahead: a partition whose head is slow to read, a large
    /// dead letter say, holds flow control instead of releasing it). None
    /// with no active source or nothing delivered.
    pub(crate) fn pace_reference(&self) -> Option<i64> {
        self.slowest_active().or_else(|| {
            self.active().next()?;
            self.min_delivered
        })
    }

    /// True when there are inputs and none is active.
    pub(crate) fn all_idle(&self) -> bool {
        self.sources.iter().any(|s| !s.removed) && self.active().next().is_none()
    }

    fn active(&self) -> impl Iterator<Item = &Source> {
        self.sources.iter().filter(|s| !s.removed && !s.idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_active_source_holds_the_watermark() {
        let mut w = Watermark::default();
        w.see(100);
        assert_eq!(w.reached(), Some(100), "no sources: the newest event time");
        let (a, b) = (w.add_source(), w.add_source());
        w.delivered(a, 50);
        assert_eq!(w.reached(), None, "b has delivered nothing: it holds");

        w.delivered(b, 80);
        assert_eq!(w.reached(), Some(50));
        assert!(w.set_idle(a, true));
        assert!(!w.set_idle(a, true), "already idle");
        assert_eq!(w.reached(), Some(80));
        assert!(!w.set_idle(b, true) || w.reached() == Some(100));
        assert_eq!(w.reached(), Some(100), "all idle: the newest event time");
        w.remove_source(a);
        assert_eq!(w.add_source(), a, "a removed source's slot is reused");
    }

    #[test]
    fn a_source_that_delivered_nothing_holds_flow_control() {
        let mut w = Watermark::default();
        let (a, b) = (w.add_source(), w.add_source());
        assert_eq!(w.pace_reference(), None, "nothing delivered: no reference");
        w.delivered(a, 50);
        w.delivered(a, 5_000);
        assert_eq!(w.slowest_active(), None);
        assert_eq!(
            w.pace_reference(),
            Some(50),
            "b has delivered nothing: a is paced against the oldest time delivered"
        );
        w.delivered(b, 4_000);
        assert_eq!(w.pace_reference(), Some(4_000), "then against the slowest");
        w.set_idle(a, true);
        w.set_idle(b, true);
        assert_eq!(w.pace_reference(), None, "none active");
    }
}
