//! The service's tick: assignment changes, idle partitions (silent for
//! `idle_timeout` and at their log end) stop holding the watermark, paused
//! partitions resume once the others catch up, checkpoints on their
//! interval, the snapshot once a second.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::config::{StartFrom, StatePer};
use crate::kafka::pacer::{Pace, Pacer, set_paused};

use super::Service;

/// Offsets a partition's end may lie past the last message read while it
/// counts as read to its end: transaction commit markers, which consumers
/// never see.
pub(super) const MARKER_SLACK: i64 = 16;

impl Service {
    /// Idle partitions stop holding the watermark back. With every partition
    /// idle the watermark is the newest event time minus the allowed
    /// lateness, as if the stream went on: the last buckets are evaluated
    /// when newer events arrive, never early (an early flush would make the
    /// events that follow a pause late).
    pub(super) async fn housekeeping(&mut self) {
        self.apply_assignment_changes();
        self.check_topics();
        // resume partitions the others have caught up with
        let pacer = self.pacer();
        for i in 0..self.partitions.len() {
            let st = &self.partitions[i];
            if !st.paused {
                continue;
            }
            let engine = &self.tasks[st.task].engine;
            let pace = pacer.pace(true, engine.source_max(st.source), engine.pace_reference());
            if pace == Pace::Resume {
                self.set_paused(i, false);
            }
        }
        self.mark_idle();
        // with every input idle an engine stops waiting for more first
        // events to agree: what it decided about those it held is reported
        for task in 0..self.tasks.len() {
            if self.tasks[task].engine.has_news() || !self.held.is_empty() {
                self.settle_engine(task).await;
            }
        }
        if self.cfg.kafka.state_per == StatePer::Partition {
            self.check_split_models();
        }
        let never = self.never.clone();
        self.publish_alerts(&never).await;
        if self.cfg.kafka.start_from == StartFrom::Checkpoint
            && self.last_checkpoint.elapsed() >= self.cfg.checkpoint.interval.0
        {
            self.checkpoint();
        }
        // the snapshot has readers only with the HTTP side or OTLP export on
        let observed = !self.cfg.http.listen.is_empty() || self.otel.is_some();
        if observed && self.last_snapshot.elapsed() >= Duration::from_secs(1) {
            self.publish_snapshot();
        }
        self.end_batches();
    }

    /// True when partitions are assigned and every one is idle at its end.
    pub(super) fn all_at_end(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.idle)
    }

    /// Marks partitions idle that have been silent for `idle_timeout` and
    /// have no backlog.
    pub(super) fn mark_idle(&mut self) {
        let idle_after = self.cfg.kafka.idle_timeout.0;
        let ends = self.consumer.context().ends.clone();
        let Ok(ends) = ends.lock() else { return };
        for st in self.partitions.iter_mut() {
            if st.paused {
                st.last_message = Instant::now();
                continue;
            }
            if st.idle || st.last_message.elapsed() < idle_after {
                continue;
            }
            // silent, but is it at its end? A partition with a backlog that
            // has not delivered yet (just assigned, fetch not started) must
            // keep holding the watermark, or its events come in late. Unknown
            // ends (no statistics for it since it was assigned) hold too, up to
            // five idle timeouts: a partition without a leader cannot stall
            // the watermark forever.
            let end = ends
                .get(&(st.topic.clone(), st.partition))
                .filter(|e| e.seen >= st.assigned_at);
            // (fetched to the end, silent, and read to within a few offsets
            // of it: only transaction markers, never delivered, are left.
            // Fetched alone is not enough: under load librdkafka may hold
            // thousands of the partition's messages in its queue behind other
            // partitions' for longer than idle_timeout — declared idle then,
            // the watermark passed them and they came late)
            let at_end = match end {
                Some(e) => {
                    let next = (st.last_offset + 1).max(e.low);
                    e.end <= next || (e.fetched >= e.end && e.end - next <= MARKER_SLACK)
                }
                None => st.last_message.elapsed() >= idle_after * 5,
            };
            if at_end {
                st.idle = true;
                if let Some(e) = end
                    && e.end > (st.last_offset + 1).max(st.end_offset)
                {
                    // read past the markers: the next checkpoint commits the end
                    st.end_offset = e.end;
                    self.tasks[st.task].since_checkpoint += 1;
                }
                // (routed: origins go idle only on their router's word, not
                // when the routed partition is quiet — a router that died
                // with its partitions half read is not done)
                self.tasks[st.task].engine.set_idle(st.source, true);
                tracing::info!(topic = %st.topic, partition = st.partition, "partition idle: no longer holds the watermark");
            }
        }
    }

    /// The event-time skew rule for the service's partitions.
    pub(super) fn pacer(&self) -> Pacer {
        Pacer {
            max_skew_ms: self.cfg.kafka.max_skew.as_millis(),
        }
    }

    /// Pauses or resumes partition `i` (index in `partitions`).
    pub(super) fn set_paused(&mut self, i: usize, paused: bool) {
        let st = &mut self.partitions[i];
        match set_paused(&*self.consumer, &st.topic, st.partition, paused) {
            Ok(()) => {
                st.paused = paused;
                tracing::debug!(topic = %st.topic, partition = st.partition, paused, "partition flow control");
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %st.topic, partition = st.partition, "cannot pause or resume")
            }
        }
    }
}
