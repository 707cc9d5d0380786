//! Reading ahead: the messages the consumer already holds are taken as one
//! batch (up to [`AHEAD`]) and handled one by one in the order they came,
//! exactly as if each had been received alone. With `--workers` 2 or more
//! the batch is decoded on a thread of its own ([`DecodeAhead`]) while this
//! one handles the messages decoded so far (decoding here what the thread
//! has not reached yet); with 1, here first (a batch
//! still saves the select over the other inputs per message). Decoding is
//! pure (bytes in, event or refusal out), so where it runs changes nothing;
//! what could change is what happens *between* messages, and the batch
//! keeps that as it was:
//!
//! - a rebalance is seen by a poll: reading ahead stops at the first
//!   message whose poll left assignment changes pending, and only that
//!   (last) message applies them — the ones before it are handled under the
//!   assignment they were read in, as before;
//! - a partition sought back to its state's start (`handle`'s re-seek)
//!   drops the rest of the batch's messages from that partition: they come
//!   again from the start;
//! - a partition paused for flow control is sought back to its first
//!   message in the rest of the batch, which is dropped: librdkafka drops
//!   the messages it holds for a paused partition too, and fetches them
//!   again once it is resumed (applied now, they would let the partition
//!   run ahead of the others, and what the engine sees would change);
//! - a stop between messages leaves the rest unhandled and their offsets
//!   unstored: read again on restart.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use tokio::sync::watch;

use crate::codec::confluent::ValueDecoder;
use crate::event::Event;
use crate::kafka::consumer::Context as ConsumerContext;

use super::Service;
use super::handle::Decoded;

/// Messages taken at once at most.
pub(super) const AHEAD: usize = 1024;

/// The decode thread's own decoders (predictions, outcomes), sharing the
/// service's cache of writer schemas fetched from the registry.
pub(super) type Decoders = (ValueDecoder, ValueDecoder);

pub(super) fn decode_one(
    predictions: &mut ValueDecoder,
    outcomes: &mut ValueDecoder,
    stream: usize,
    msg: &BorrowedMessage<'_>,
) -> Decoded {
    if stream == 0 {
        predictions.decode(msg.payload())
    } else {
        outcomes.decode(msg.payload())
    }
}

/// The stream of a message of `topic`: 0 the predictions topic's, 1 the
/// outcomes topic's (`Service::batch`).
fn stream_of(topic: &str, predictions: &str) -> usize {
    usize::from(topic != predictions)
}

/// The topic of each message of a batch, and its stream, known by the
/// message's librdkafka topic handle. `Message::topic` reads the name and
/// checks it as UTF-8 at each call — at three calls a message, ~5 % of the
/// service's thread (`perf`, docs/performance.md); a batch has one or two
/// topics. Each message holds its topic's handle, so while the batch
/// lives no handle is freed and its address taken by another topic's.
#[derive(Default)]
pub(super) struct TopicNames<'b> {
    /// (handle's address, name, stream), in the order first seen.
    seen: [(usize, &'b str, usize); 2],
    n: usize,
}

impl<'b> TopicNames<'b> {
    /// `m`'s topic and stream (`predictions`: the predictions topic).
    pub(super) fn of(&mut self, m: &'b BorrowedMessage<'_>, predictions: &str) -> (&'b str, usize) {
        let handle = m.topic_ptr() as usize;
        if let Some(&(_, name, stream)) = self.seen[..self.n].iter().find(|s| s.0 == handle) {
            return (name, stream);
        }
        let name = m.topic();
        let stream = stream_of(name, predictions);
        if self.n < self.seen.len() {
            self.seen[self.n] = (handle, name, stream);
            self.n += 1;
        }
        (name, stream)
    }
}

/// A batch's processing time per stream (`Service::batch`): the clock read
/// at its start, where the stream changes and at its end — not twice per
/// message (a clock read is ~70 ns here, 5 % of the service's thread).
pub(super) struct BusyClock {
    /// When the current stretch began; the time the messages in it are
    /// stamped with (a partition's last message, for idleness).
    pub(super) since: std::time::Instant,
    stream: usize,
}

impl BusyClock {
    fn start(stream: usize) -> BusyClock {
        BusyClock {
            since: std::time::Instant::now(),
            stream,
        }
    }

    /// The next message is of `stream`: a stretch of the other ends.
    fn switch(&mut self, service: &mut Service, stream: usize) {
        if stream != self.stream {
            self.stop(service);
            self.stream = stream;
        }
    }

    /// The stretch ends: its time is its stream's.
    fn stop(&mut self, service: &mut Service) {
        let now = std::time::Instant::now();
        service.batch[self.stream].busy += now - self.since;
        service.last_message = Some(now);
        self.since = now;
    }

    /// The stretch ends, its time shared by the streams in proportion to
    /// `messages` of each (messages handled together: `service::apart`).
    pub(super) fn share(&mut self, service: &mut Service, messages: [u64; 2]) {
        let now = std::time::Instant::now();
        let spent = now - self.since;
        let all = (messages[0] + messages[1]).max(1);
        for (b, n) in service.batch.iter_mut().zip(messages) {
            b.busy += spent.mul_f64(n as f64 / all as f64);
        }
        service.last_message = Some(now);
        self.since = now;
    }
}

/// A message's place in its batch, its topic and stream ([`TopicNames`]).
#[derive(Clone, Copy)]
pub(super) struct At<'c> {
    pub(super) i: usize,
    pub(super) topic: &'c str,
    pub(super) stream: usize,
}

/// Messages of a batch the service's thread decodes itself before it takes
/// the decode thread's (the first ones: by the time they are handled, the
/// thread is ahead).
const DECODED_HERE: usize = 4;

/// Events the decode thread hands back at once.
const CHUNK: usize = 16;

/// A batch's payloads, copied for the decode thread: one buffer, and per
/// message its span in it (`None`: no value) and whether it is an outcome.
#[derive(Default)]
pub(super) struct Job {
    bytes: Vec<u8>,
    spans: Vec<(Option<(usize, usize)>, bool)>,
}

/// Room a job's buffer keeps between batches at most (a batch of large
/// values grows it; librdkafka holds those values anyway while they wait).
const JOB_BYTES_KEPT: usize = 16 << 20;

impl Job {
    fn clear(&mut self) {
        self.bytes.clear();
        self.bytes.shrink_to(JOB_BYTES_KEPT);
        self.spans.clear();
    }

    fn push(&mut self, payload: Option<&[u8]>, outcome: bool) {
        let span = payload.map(|p| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(p);
            (start, self.bytes.len())
        });
        self.spans.push((span, outcome));
    }
}

/// What the decode thread sends back: a job's events in order, a chunk at a
/// time, then the job itself (its buffers, for the next batch).
enum Done {
    Events(Vec<Decoded>),
    End(Job),
}

/// A thread decoding a batch's messages while the service's thread handles
/// the ones before (`run --workers` 2 or more): handling a message costs
/// about twice what decoding it does, so the thread stays ahead and the
/// service's thread mostly only applies. Where the thread is not ahead —
/// at a batch's start while it wakes, or set back by another thread on its
/// core — the service's thread decodes the message itself rather than
/// sleep until it is (a sleep and a wake-up cost 0.1–0.2 ms each on this
/// VM; waiting, twice a batch, was ~10 % of the service's time). Decoding
/// is pure: where it runs changes nothing.
pub(super) struct DecodeAhead {
    jobs: std::sync::mpsc::Sender<Job>,
    done: tokio::sync::mpsc::Receiver<Done>,
    /// Handled chunks, back to the thread: their events freed there, the
    /// vectors reused.
    spare: std::sync::mpsc::Sender<Vec<Decoded>>,
    /// The buffers of the last job, between batches.
    job: Option<Job>,
}

impl DecodeAhead {
    /// The thread, decoding with `decoders` and working out each
    /// prediction's DDSketch ordinals for `dd` ([`crate::event::Ordinals`]).
    pub(super) fn spawn(
        mut decoders: Decoders,
        dd: sketches_ddsketch::Config,
    ) -> std::io::Result<DecodeAhead> {
        let (jobs, jobs_rx) = std::sync::mpsc::channel::<Job>();
        let (done_tx, done) = tokio::sync::mpsc::channel::<Done>(AHEAD / CHUNK + 2);
        let (spare, spare_rx) = std::sync::mpsc::channel::<Vec<Decoded>>();
        std::thread::Builder::new()
            .name("driftline-decode".into())
            .spawn(move || {
                let (p, o) = (&mut decoders.0, &mut decoders.1);
                // the handled predictions, whose buffers the next ones are
                // decoded into
                let mut spares: Vec<Event> = Vec::new();
                for job in jobs_rx {
                    for spans in job.spans.chunks(CHUNK) {
                        // a chunk handed back holds its handled events:
                        // decoded into again (or freed) here, on the
                        // thread that allocated them
                        let mut out = spare_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                        spares.extend(
                            out.drain(..).filter_map(|d| {
                                d.ok().filter(|e| matches!(e, Event::Prediction(_)))
                            }),
                        );
                        out.extend(spans.iter().map(|&(span, outcome)| {
                            let value = span.map(|(a, b)| &job.bytes[a..b]);
                            if outcome {
                                o.decode(value)
                            } else {
                                let spare = spares.pop();
                                Event::claim(&spares);
                                let mut d = p.decode_reusing(value, spare);
                                if let Ok(Event::Prediction(p)) = &mut d {
                                    crate::sketch::edges::prepare(p, &dd);
                                }
                                d
                            }
                        }));
                        if done_tx.blocking_send(Done::Events(out)).is_err() {
                            return;
                        }
                    }
                    if done_tx.blocking_send(Done::End(job)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(DecodeAhead {
            jobs,
            done,
            spare,
            job: Some(Job::default()),
        })
    }
}

impl Service {
    /// Adds to `batch` (holding the message just received) what the
    /// consumer has ready now, up to [`AHEAD`], stopping after a message
    /// whose poll left assignment changes pending. Returns whether the
    /// batch's last message was read with changes pending (it applies
    /// them; changes seen by a poll that returned nothing wait for the
    /// next message, as they would without reading ahead), and a consumer
    /// error that ended the batch.
    pub(super) fn read_ahead<'c>(
        &self,
        consumer: &'c StreamConsumer<ConsumerContext>,
        batch: &mut Vec<BorrowedMessage<'c>>,
    ) -> (bool, Option<KafkaError>) {
        let mut pending = self.changes_pending();
        // one stream for the batch: `recv` makes one per message, and each
        // takes a place in the consumer's list of wakers and gives it back
        // (a lock each time)
        let mut stream = consumer.stream();
        let mut cx = Context::from_waker(Waker::noop());
        while batch.len() < AHEAD && !pending {
            match Pin::new(&mut stream).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(m))) => {
                    batch.push(m);
                    pending = self.changes_pending();
                }
                Poll::Ready(Some(Err(e))) => return (pending, Some(e)),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        (pending, None)
    }

    fn is_paused(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .iter()
            .any(|p| p.paused && p.partition == partition && p.topic == topic)
    }

    fn changes_pending(&self) -> bool {
        self.consumer.context().changes_pending()
    }

    /// Decodes the batch into `self.decoded`, here (one worker, or the
    /// decode thread gone).
    fn decode_batch(&mut self, batch: &[BorrowedMessage<'_>]) {
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        let mut names = TopicNames::default();
        let (pred, out) = (&mut self.predictions, &mut self.outcomes);
        let topic = self.topics[0].as_str();
        decoded.extend(
            batch
                .iter()
                .map(|m| decode_one(pred, out, names.of(m, topic).1, m)),
        );
        self.decoded = decoded;
    }

    /// Handles the batch in order (see the module's rules). False when the
    /// service is stopping.
    /// `last_applies`: the last message applies pending assignment changes
    /// (see [`Service::read_ahead`]).
    pub(super) async fn handle_batch(
        &mut self,
        batch: &mut Vec<BorrowedMessage<'_>>,
        last_applies: bool,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let Some(first) = batch.first() else {
            return true;
        };
        let first_stream = stream_of(first.topic(), &self.topics[0]);
        let mut clock = BusyClock::start(first_stream);
        let go = if batch.len() == 1 {
            let msg = batch.pop().expect("one message");
            let at = (msg.topic(), first_stream);
            self.handle(&msg, at, None, last_applies, stop, clock.since)
                .await
        } else if self.tasks_apart(batch.len()) {
            self.handle_batch_apart(batch, last_applies, stop, &mut clock)
                .await
        } else if batch.len() > DECODED_HERE && self.decode_ahead.is_some() {
            self.handle_batch_ahead(batch, last_applies, stop, &mut clock)
                .await
        } else {
            self.decode_batch(batch);
            let mut decoded = std::mem::take(&mut self.decoded);
            // partitions sought back during this batch: their later messages come again
            let mut sought: Vec<(&str, i32)> = Vec::new();
            let mut names = TopicNames::default();
            let mut go = true;
            for (i, ev) in decoded.iter().enumerate().take(batch.len()) {
                let (topic, stream) = names.of(&batch[i], &self.topics[0]);
                let at = At { i, topic, stream };
                if !self
                    .handle_one_of(batch, at, ev, last_applies, stop, &mut sought, &mut clock)
                    .await
                {
                    go = false;
                    break;
                }
            }
            decoded.clear();
            self.decoded = decoded;
            go
        };
        batch.clear();
        clock.stop(self);
        self.store_offsets();
        go
    }

    /// [`Service::handle_batch`] with the decode thread: its first messages
    /// decoded here, the rest there meanwhile, taken a chunk at a time as
    /// they are ready (one the thread has not reached is decoded here) (and
    /// each chunk, handled, given back with its events: they are freed on
    /// the thread that allocated them).
    async fn handle_batch_ahead(
        &mut self,
        batch: &mut Vec<BorrowedMessage<'_>>,
        last_applies: bool,
        stop: &watch::Receiver<bool>,
        clock: &mut BusyClock,
    ) -> bool {
        let batch: &[BorrowedMessage<'_>] = batch;
        let mut here = std::mem::take(&mut self.decoded);
        here.clear();
        let mut names = TopicNames::default();
        let sent = {
            let Service {
                topics,
                predictions,
                outcomes,
                decode_ahead,
                ..
            } = self;
            let ahead = decode_ahead.as_mut().expect("a decode thread");
            let mut job = ahead.job.take().unwrap_or_default();
            job.clear();
            let topic = topics[0].as_str();
            for m in &batch[DECODED_HERE..] {
                job.push(m.payload(), names.of(m, topic).1 == 1);
            }
            let sent = ahead.jobs.send(job).is_ok();
            here.extend(
                batch[..DECODED_HERE]
                    .iter()
                    .map(|m| decode_one(predictions, outcomes, names.of(m, topic).1, m)),
            );
            sent
        };
        let mut sought: Vec<(&str, i32)> = Vec::new();
        let mut go = true;
        // the decode thread's chunk being handled and the batch place of its
        // first event; `received`: the place after the thread's last event
        // so far; `ended`: its job is back (or the thread is gone)
        let (mut chunk, mut chunk_start, mut received) = (Vec::new(), DECODED_HERE, DECODED_HERE);
        let mut ended = !sent;
        let mut from_thread = 0u64;
        let mut fallback;
        for i in 0..batch.len() {
            let (topic, stream) = names.of(&batch[i], &self.topics[0]);
            let ev = if i < DECODED_HERE {
                &here[i]
            } else {
                // the thread's chunks up to this message, as far as they are ready
                while !ended && i >= received {
                    if !self.ready_chunk(&mut chunk, &mut ended) {
                        break;
                    }
                    (chunk_start, received) = (received, received + chunk.len());
                }
                if (chunk_start..received).contains(&i) {
                    from_thread += 1;
                    &chunk[i - chunk_start]
                } else {
                    // not decoded there yet (the thread is waking, or was
                    // set back by another on its core), or the thread is
                    // gone: decoded here rather than waited for — a wait
                    // is a sleep and a wake-up, ~0.1–0.2 ms here, at each
                    // batch's start. The thread decodes it too; its copy
                    // is passed over.
                    fallback =
                        decode_one(&mut self.predictions, &mut self.outcomes, stream, &batch[i]);
                    &fallback
                }
            };
            // the next event's parts, and the one after's own fields (within
            // the chunk at hand)
            let at = (i + 1).checked_sub(chunk_start);
            if let Some(Ok(next)) = at.and_then(|at| chunk.get(at)) {
                crate::engine::prefetch_event(next);
            }
            if let Some(Ok(after)) = at.and_then(|at| chunk.get(at + 1)) {
                crate::engine::prefetch_event_itself(after);
            }
            let at = At { i, topic, stream };
            if !self
                .handle_one_of(batch, at, ev, last_applies, stop, &mut sought, clock)
                .await
            {
                go = false;
                break;
            }
        }
        here.clear();
        self.decoded = here;
        // the rest of the job (a stop, an error) is waited for and given
        // back unhandled: its buffers come back with it
        while !ended {
            self.next_chunk(&mut chunk, &mut ended).await;
        }
        self.stats.decoded_on_workers += from_thread;
        go
    }

    /// Gives `chunk` back to the decode thread (its events freed there)
    /// and puts the thread's next one in its place (empty when the job
    /// ended or the thread is gone; `ended` set then).
    async fn next_chunk(&mut self, chunk: &mut Vec<Decoded>, ended: &mut bool) {
        let ahead = self.decode_ahead.as_mut().expect("a decode thread");
        if chunk.capacity() > 0 {
            let _ = ahead.spare.send(std::mem::take(chunk));
        }
        let done = ahead.done.recv().await;
        self.take_done(done, chunk, ended);
    }

    /// [`Service::next_chunk`] if the thread has one ready: false (and
    /// `chunk` kept) when it has not, without waiting.
    fn ready_chunk(&mut self, chunk: &mut Vec<Decoded>, ended: &mut bool) -> bool {
        use tokio::sync::mpsc::error::TryRecvError;
        let ahead = self.decode_ahead.as_mut().expect("a decode thread");
        let done = match ahead.done.try_recv() {
            Ok(done) => Some(done),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => None,
        };
        if chunk.capacity() > 0 {
            let _ = ahead.spare.send(std::mem::take(chunk));
        }
        self.take_done(done, chunk, ended);
        true
    }

    fn take_done(&mut self, done: Option<Done>, chunk: &mut Vec<Decoded>, ended: &mut bool) {
        let ahead = self.decode_ahead.as_mut().expect("a decode thread");
        match done {
            Some(Done::Events(v)) => *chunk = v,
            Some(Done::End(job)) => {
                ahead.job = Some(job);
                *ended = true;
            }
            None => {
                // the thread ended (a panic in a decoder): decode here from now on
                tracing::error!("the decode thread has stopped; decoding on the service's thread");
                self.decode_ahead = None;
                *ended = true;
            }
        }
    }

    /// Message `at.i` of a batch, decoded as `ev`, in its turn (the module's
    /// rules; `sought`: partitions sought back so far, whose later messages
    /// in the batch are skipped). False when the service is stopping.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn handle_one_of<'c>(
        &mut self,
        batch: &'c [BorrowedMessage<'_>],
        at: At<'c>,
        ev: &Decoded,
        last_applies: bool,
        stop: &watch::Receiver<bool>,
        sought: &mut Vec<(&'c str, i32)>,
        clock: &mut BusyClock,
    ) -> bool {
        let At { i, topic, stream } = at;
        let msg = &batch[i];
        if *stop.borrow() {
            return false;
        }
        if sought.contains(&(topic, msg.partition())) {
            return true;
        }
        clock.switch(self, stream);
        let reseeks = self.stats.reseeks;
        let was_paused = self.is_paused(topic, msg.partition());
        let last = i == batch.len() - 1;
        if !self
            .handle(
                msg,
                (topic, stream),
                Some(ev),
                last && last_applies,
                stop,
                clock.since,
            )
            .await
        {
            return false;
        }
        if self.stats.reseeks > reseeks {
            sought.push((topic, msg.partition()));
        } else if !was_paused
            && self.is_paused(topic, msg.partition())
            && let Some(next) = batch[i + 1..]
                .iter()
                .find(|m| m.topic() == topic && m.partition() == msg.partition())
        {
            // flow control paused it: its messages read ahead wait, as
            // librdkafka's queued ones do — read again once resumed
            match self.consumer.seek(
                next.topic(),
                next.partition(),
                rdkafka::Offset::Offset(next.offset()),
                std::time::Duration::from_secs(10),
            ) {
                Ok(()) => sought.push((topic, msg.partition())),
                // applied now instead: flow control a batch late, nothing lost
                Err(e) => tracing::warn!(
                    topic = next.topic(),
                    partition = next.partition(),
                    error = %e,
                    "cannot seek a paused partition back to its messages read ahead"
                ),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StreamKind;
    use crate::codec::confluent::ValueDecoder;
    use crate::config::{Config, Encoding};

    fn decoders() -> Decoders {
        let mut cfg = Config::default().kafka;
        cfg.encoding = Encoding::Json;
        (
            ValueDecoder::new(StreamKind::Predictions, &cfg).unwrap(),
            ValueDecoder::new(StreamKind::Outcomes, &cfg).unwrap(),
        )
    }

    /// The thread hands back every message of a job, in order, decoded as
    /// the service's thread decodes it — good, bad and valueless, of both
    /// streams, over more than one chunk — and then the job's buffers;
    /// a second job after it is read from the start of those buffers.
    #[test]
    fn the_decode_thread_hands_back_each_message_in_order() {
        // of two shapes: one decoded into the other's buffers keeps nothing of it
        let prediction = |i: usize| {
            let t = 1_700_000_000_000i64 + i as i64;
            if i.is_multiple_of(2) {
                format!(
                    r#"{{"trace_id":"t{i}","model_id":"m","event_time":{t},"features":{{"x":{i}.5}},"prediction":0.1}}"#
                )
            } else {
                format!(
                    r#"{{"trace_id":"trace-{i}","model_id":"m2","model_version":"v2","event_time":{t},"features":{{"x":1,"y":"b"}},"slices":{{"r":"eu"}},"prediction":"yes","score":0.5,"shadow":true}}"#
                )
            }
        };
        let outcome = |i: usize| {
            format!(r#"{{"trace_id":"t{i}","model_id":"m","event_time":1700000000000,"label":1}}"#)
        };
        let mut messages: Vec<(Option<Vec<u8>>, bool)> = Vec::new();
        for i in 0..3 * CHUNK + 5 {
            messages.push(match i % 7 {
                3 => (Some(outcome(i).into_bytes()), true),
                4 => (Some(b"{not json".to_vec()), false),
                5 => (None, false),
                _ => (Some(prediction(i).into_bytes()), false),
            });
        }
        let mut ahead = DecodeAhead::spawn(decoders(), crate::sketch::dd_config(0.01)).unwrap();
        let (mut p, mut o) = decoders();
        for round in 0..2 {
            let mut job = ahead.job.take().unwrap();
            job.clear();
            let these = &messages[round..];
            for (payload, outcome) in these {
                job.push(payload.as_deref(), *outcome);
            }
            ahead.jobs.send(job).unwrap();
            let mut got = Vec::new();
            loop {
                match ahead.done.blocking_recv().unwrap() {
                    Done::Events(v) => {
                        assert!(v.len() <= CHUNK);
                        // handed back holding its events: the next
                        // predictions are decoded into them
                        got.extend(v.iter().map(|d| (format!("{d:?}"), d.is_ok())));
                        ahead.spare.send(v).unwrap();
                    }
                    Done::End(job) => {
                        ahead.job = Some(job);
                        break;
                    }
                }
            }
            assert_eq!(got.len(), these.len());
            for (g, (payload, outcome)) in got.iter().zip(these) {
                let want = if *outcome {
                    o.decode(payload.as_deref())
                } else {
                    p.decode(payload.as_deref())
                };
                assert_eq!(g.0, format!("{want:?}"));
            }
            assert!(got.iter().any(|g| !g.1) && got.iter().filter(|g| g.1).count() > CHUNK);
        }
    }
}
