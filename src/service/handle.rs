//! One message: decode, apply to its task's engine (its partition or origin
//! is the engine's source), dead-letter it if bad, publish the alerts it
//! caused, pace its partition, store its offset.

use std::time::Instant;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers};
use tokio::sync::watch;

use crate::engine::{Applied, Engine};
use crate::event::{BadEvent, Event};
use crate::kafka::pacer::Pace;
use crate::telemetry;

use super::Service;

impl Service {
    /// The first message of a partition since its state began lies past the
    /// state's start (its checkpoint's offset, or 0 when rebuilt): the seek
    /// made on assignment was overridden — librdkafka's fetch of the
    /// group's committed offset can land after it — and applying this
    /// message would skip every one in between (seen under load: a member
    /// rebuilding a partition it had owned before started at the offset it
    /// had committed, and its checkpoint lacked the first 43,027 events).
    /// Seeks to the start again and returns false (this message comes again
    /// in order); true when the log simply begins later (retention).
    fn reseek_if_past_start(&mut self, pi: usize, msg: &BorrowedMessage<'_>) -> bool {
        let st = &mut self.partitions[pi];
        let mut want = st.start_offset;
        if want == 0 {
            // rebuilt: the log's first offset may be past 0
            let low = crate::blocking(|| {
                self.consumer.fetch_watermarks(
                    msg.topic(),
                    msg.partition(),
                    std::time::Duration::from_secs(5),
                )
            });
            match low {
                Ok((low, _)) if msg.offset() <= low + super::flow::MARKER_SLACK => {
                    st.start_offset = low;
                    return true;
                }
                Ok((low, _)) => want = low.max(0),
                Err(_) => {}
            }
        }
        st.reseeks += 1;
        self.stats.reseeks += 1;
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            start = want,
            "first message past the state's start (the seek on assignment was overridden): seeking to the start again"
        );
        if let Err(e) = self.consumer.seek(
            msg.topic(),
            msg.partition(),
            rdkafka::Offset::Offset(want),
            std::time::Duration::from_secs(10),
        ) {
            tracing::error!(topic = msg.topic(), partition = msg.partition(), error = %e, "cannot seek to the state's start");
        }
        false
    }

    /// One message: decode, apply, publish alerts, store the offset.
    /// False when the service is stopping before the message was done.
    /// `(topic, stream)`: its topic's name (`msg.topic()`, read once by
    /// the caller) and stream (0 predictions, 1 outcomes). `decoded`: its
    /// value decoded already (read ahead), or None to decode it here.
    /// `apply_changes`: pending assignment changes are applied first (not
    /// for a message read ahead before them).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        (topic, stream): (&str, usize),
        decoded: Option<&Decoded>,
        apply_changes: bool,
        stop: &watch::Receiver<bool>,
        now: Instant,
    ) -> bool {
        let a = match self.admit(msg, (topic, stream), apply_changes, now) {
            Admit::Done => return true,
            Admit::Apply(a) => a,
        };
        self.wake_sources();
        let here;
        let decoded = match decoded {
            Some(d) => d,
            None => {
                let decoder = if stream == 0 {
                    &mut self.predictions
                } else {
                    &mut self.outcomes
                };
                here = decoder.decode(msg.payload());
                &here
            }
        };
        let place = Place {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
        };
        let timed = self.otel.is_some();
        let (result, timing) = apply(
            &mut self.tasks[a.task].engine,
            decoded,
            (a.source, a.tag),
            place,
            timed,
        );
        self.report_evaluations(timing);
        if !self.note_result(msg, topic, &a, result).await {
            return false;
        }
        if !self.settle_engine(a.task).await {
            return false;
        }
        if !self.publish_alerts(stop).await {
            return false;
        }
        self.pace(&a);
        self.store_unless_held(&a, msg.offset());
        true
    }

    /// What comes before applying a message: assignment changes (when
    /// `apply_changes`), its partition's registration, a redelivery or a
    /// first message past the state's start (not applied), a router's idle
    /// marker, a woken partition (its task's idle sources noted in
    /// `Service::woken`, set active by the caller in their turn), the
    /// counts. [`Admit::Done`]: nothing to apply.
    pub(super) fn admit(
        &mut self,
        msg: &BorrowedMessage<'_>,
        (topic, stream): (&str, usize),
        apply_changes: bool,
        now: Instant,
    ) -> Admit {
        if apply_changes && self.apply_assignment_changes() {
            // this message comes again from the start of its partition
            return Admit::Done;
        }
        self.stats.messages += 1;
        self.first_message.get_or_insert(now);
        // a message may come before its assignment event was seen: then it registers here
        let pi = self.partition(topic, msg.partition());
        let st = &mut self.partitions[pi];
        st.last_message = now;
        if msg.offset() <= st.last_offset {
            // a redelivery of a message this engine has already applied
            // (librdkafka re-fetching after a pause or an error): applying
            // it again would count it twice
            self.stats.redelivered += 1;
            return Admit::Done;
        }
        if st.last_offset < st.start_offset
            && msg.offset() > st.start_offset + super::flow::MARKER_SLACK
            && st.reseeks < 3
            && !self.reseek_if_past_start(pi, msg)
        {
            return Admit::Done;
        }
        let st = &mut self.partitions[pi];
        st.last_offset = msg.offset();
        let woke = st.idle;
        let (task, source) = (st.task, st.source);
        self.tasks[task].since_checkpoint += 1;
        let source = if self.cfg.kafka.routed {
            let (source, marker) = self.origin_source(task, msg);
            if marker {
                // the router's word that an input partition is idle: no event
                self.stats.idle_markers += 1;
                self.store_later(pi, msg.offset());
                return Admit::Done;
            }
            source
        } else {
            source
        };
        if woke {
            // traffic is back: every idle partition holds the watermark again
            // until it delivers or stays silent for idle_timeout once more, so
            // the first partition to wake cannot run ahead of the others
            tracing::info!(topic, partition = msg.partition(), "partition active again");
            for p in self
                .partitions
                .iter_mut()
                .filter(|p| p.idle && p.task == task)
            {
                p.idle = false;
                p.last_message = now;
                self.woken.push((task, p.source));
            }
        }
        self.consumed[stream] += 1;
        self.batch[stream].messages += 1;
        if self.otel.is_some() {
            let b = &mut self.batch[stream];
            if b.started.is_none() {
                b.started = Some(std::time::SystemTime::now());
            }
            // producers' trace contexts from the batch's first messages only:
            // reading headers is a librdkafka call, not free per message
            if b.messages <= 64
                && b.links.len() < telemetry::otel::MAX_LINKS
                && let Some(h) = msg.headers()
            {
                for hd in h.iter() {
                    if hd.key == "traceparent"
                        && let Some(c) = hd.value.and_then(telemetry::otel::parse_traceparent)
                    {
                        b.links.push(c);
                    }
                }
            }
        }
        Admit::Apply(Admitted {
            pi,
            task,
            source,
            tag: self.stats.messages,
        })
    }

    /// The sources `admit` found woken set active in their engines now.
    pub(super) fn wake_sources(&mut self) {
        for (task, source) in self.woken.drain(..) {
            self.tasks[task].engine.set_idle(source, false);
        }
    }

    /// An evaluation span for what applying a message evaluated (OTLP).
    pub(super) fn report_evaluations(&self, timing: Option<Timing>) {
        if let (Some(o), Some(t)) = (&self.otel, timing)
            && t.evaluations > 0
        {
            o.evaluate(t.watermark, t.evaluations, t.took, t.started);
        }
    }

    /// What applying a message came to, noted: a held message's place (to
    /// name it if refused), a bad event counted and dead-lettered. False
    /// when the service is stopping.
    pub(super) async fn note_result(
        &mut self,
        msg: &BorrowedMessage<'_>,
        topic: &str,
        a: &Admitted,
        result: Result<Applied, BadEvent>,
    ) -> bool {
        match result {
            Ok(Applied::Held) => {
                // one of the first events: where it came from, should it be refused
                self.held.push((
                    a.task,
                    a.tag,
                    topic.to_string(),
                    msg.partition(),
                    msg.offset(),
                ));
                true
            }
            Ok(_) => true,
            Err(bad) => {
                self.tasks[a.task].engine.stats.count_bad(bad.reason);
                self.dead_letter(msg, &bad).await
            }
        }
    }

    /// Flow control: a partition far ahead of the slowest waits for it
    /// (routed: a routed partition mixes origins; the routers align them).
    pub(super) fn pace(&mut self, a: &Admitted) {
        let engine = &self.tasks[a.task].engine;
        if !self.cfg.kafka.routed
            && self.pacer().pace(
                self.partitions[a.pi].paused,
                engine.source_max(a.source),
                engine.pace_reference(),
            ) == Pace::Pause
        {
            self.set_paused(a.pi, true);
        }
    }

    /// The message's offset to be stored with the batch's, unless its
    /// engine holds it: a held message's offset is stored once the engine
    /// applied it (settle_engine) — stored now, a crash while it is held
    /// would lose it.
    pub(super) fn store_unless_held(&mut self, a: &Admitted, offset: i64) {
        if self.held.iter().any(|h| h.0 == a.task && h.1 == a.tag) {
            return;
        }
        self.store_later(a.pi, offset);
    }

    /// Marks the message at `offset` of partition `pi` done: its offset is
    /// stored with the batch's others ([`Service::store_offsets`]), one
    /// librdkafka call per partition instead of one per message. Only a
    /// commit reads stored offsets, and none happens inside a batch.
    fn store_later(&mut self, pi: usize, offset: i64) {
        match self.to_store.iter_mut().find(|(p, _)| *p == pi) {
            Some((_, o)) => *o = offset.max(*o),
            None => self.to_store.push((pi, offset)),
        }
    }

    /// Stores the offsets of the messages done since the last call (see
    /// [`Service::store_later`]): at a batch's end, before assignment
    /// changes (they move the partitions' places), and before a held
    /// message's own offset is stored.
    pub(super) fn store_offsets(&mut self) {
        for (pi, offset) in self.to_store.drain(..) {
            let p = &self.partitions[pi];
            if let Err(e) = self.consumer.store_offset(&p.topic, p.partition, offset) {
                tracing::warn!(error = %e, topic = %p.topic, partition = p.partition, offset, "cannot store offset");
            }
        }
    }
}

/// A message's value, decoded (or refused).
pub(super) type Decoded = Result<Event, BadEvent>;

/// What [`Service::admit`] made of a message.
pub(super) enum Admit {
    /// Nothing to apply (a redelivery, a re-seek, a router's marker, an
    /// assignment change): done.
    Done,
    /// To apply to its task's engine.
    Apply(Admitted),
}

/// A message admitted: its partition (index in `Service::partitions`), its
/// task, its source in the task's engine, and its tag (the service's
/// message count: the engine names a held event by it).
pub(super) struct Admitted {
    pub(super) pi: usize,
    pub(super) task: usize,
    pub(super) source: usize,
    pub(super) tag: u64,
}

/// Where a message came from, for the operator.
#[derive(Clone, Copy)]
pub(super) struct Place<'a> {
    pub(super) topic: &'a str,
    pub(super) partition: i32,
    pub(super) offset: i64,
}

/// What applying a message evaluated, and how long it took (OTLP only: a
/// clock read per message costs).
#[derive(Clone, Copy)]
pub(super) struct Timing {
    watermark: i64,
    evaluations: u64,
    took: std::time::Duration,
    started: std::time::SystemTime,
}

/// Applies a decoded message (a refusal stays one) to its task's `engine`
/// as `source`, tagged `tag`; the first late events are logged with their
/// place. `timed`: its evaluations timed, for a span. Touches nothing but
/// the engine: tasks apply on threads of their own (`service::apart`).
pub(super) fn apply(
    engine: &mut Engine,
    decoded: &Decoded,
    (source, tag): (usize, u64),
    place: Place<'_>,
    timed: bool,
) -> (Result<Applied, BadEvent>, Option<Timing>) {
    let late_before = engine.stats.late;
    let evaluations_before = engine.stats.evaluations;
    let started = timed.then(Instant::now);
    // (a bad event's refusal is copied: the decoded one may be the decode
    // thread's, freed there)
    let result = decoded.as_ref().map_err(Clone::clone).and_then(|ev| {
        let r = engine.apply_tagged(ev, Some(source), tag);
        if engine.stats.late > late_before && engine.stats.late <= 20 {
            // the first few, for the operator: where late events come from
            tracing::warn!(
                topic = place.topic,
                partition = place.partition,
                offset = place.offset,
                event_time = ev.event_time(),
                watermark = engine.watermark(),
                "late event: behind the watermark, counted and not applied"
            );
        }
        r
    });
    let timing = started.map(|started| {
        let took = started.elapsed();
        Timing {
            watermark: engine.watermark().unwrap_or(0),
            evaluations: engine.stats.evaluations - evaluations_before,
            took,
            started: std::time::SystemTime::now() - took,
        }
    });
    (result, timing)
}
