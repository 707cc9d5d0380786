//! Reading ahead: the messages the consumer already holds are taken as one
//! batch (up to [`AHEAD`]), decoded on the workers at once (on the
//! service's thread alone with `--workers 1`: a batch still saves the
//! select over the other inputs per message), then handled
//! one by one in the order they came, exactly as if each had been received
//! alone. Decoding is pure (bytes in, event or refusal out), so where it
//! runs changes nothing; what could change is what happens *between*
//! messages, and the batch keeps that as it was:
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

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use tokio::sync::watch;

use crate::codec::confluent::ValueDecoder;
use crate::event::{BadEvent, Event};
use crate::kafka::consumer::Context as ConsumerContext;

use super::Service;

/// Messages taken at once at most.
pub(super) const AHEAD: usize = 256;

/// Fewer than this are decoded on the service's thread alone (a thread
/// costs more than it saves).
const PARALLEL_FROM: usize = 64;

/// A worker's own decoders (predictions, outcomes): a decoder caches the
/// writer schemas it has fetched.
pub(super) type Decoders = (ValueDecoder, ValueDecoder);

/// The future's value if it is ready now, without waiting.
fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn decode_one(
    predictions: &mut ValueDecoder,
    outcomes: &mut ValueDecoder,
    topic: &str,
    msg: &BorrowedMessage<'_>,
) -> Decoded {
    if msg.topic() == topic {
        predictions.decode(msg.payload())
    } else {
        outcomes.decode(msg.payload())
    }
}

type Decoded = Result<Event, BadEvent>;

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
        while batch.len() < AHEAD && !pending {
            match ready(consumer.recv()) {
                Some(Ok(m)) => {
                    batch.push(m);
                    pending = self.changes_pending();
                }
                Some(Err(e)) => return (pending, Some(e)),
                None => break,
            }
        }
        (pending, None)
    }

    fn is_paused(&self, msg: &BorrowedMessage<'_>) -> bool {
        self.partitions
            .iter()
            .any(|p| p.paused && p.partition == msg.partition() && p.topic == msg.topic())
    }

    fn changes_pending(&self) -> bool {
        self.consumer.context().changes_pending()
    }

    /// Decodes the batch into `self.decoded`, split over the workers.
    fn decode_batch(&mut self, batch: &[BorrowedMessage<'_>]) {
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        let topic = self.topics[0].as_str();
        let (pred, out) = (&mut self.predictions, &mut self.outcomes);
        let extra = self.worker_decoders.len();
        if batch.len() < PARALLEL_FROM || extra == 0 {
            decoded.extend(batch.iter().map(|m| decode_one(pred, out, topic, m)));
        } else {
            // the first chunk here, chunk k + 1 on worker k, joined in order
            let per = batch.len().div_ceil(extra + 1);
            let mut chunks = batch.chunks(per);
            let parts = &mut self.decoded_parts;
            parts.resize_with(extra, Vec::new);
            parts.iter_mut().for_each(Vec::clear);
            std::thread::scope(|s| {
                let mine = chunks.next().unwrap_or_default();
                let handles: Vec<_> = self
                    .worker_decoders
                    .iter_mut()
                    .zip(parts.iter_mut())
                    .zip(chunks)
                    .map(|(((p, o), part), chunk)| {
                        s.spawn(move || {
                            part.clear();
                            part.extend(chunk.iter().map(|m| decode_one(p, o, topic, m)));
                        })
                    })
                    .collect();
                decoded.extend(mine.iter().map(|m| decode_one(pred, out, topic, m)));
                for h in handles {
                    if let Err(p) = h.join() {
                        std::panic::resume_unwind(p);
                    }
                }
            });
            for p in parts.iter_mut() {
                decoded.append(p);
            }
            self.stats.decoded_on_workers += batch.len() as u64;
        }
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
        if batch.len() == 1 {
            let msg = batch.pop().expect("one message");
            return self.handle(&msg, None, last_applies, stop).await;
        }
        self.decode_batch(batch);
        let mut decoded = std::mem::take(&mut self.decoded);
        // partitions sought back during this batch: their later messages come again
        let mut sought: Vec<(&str, i32)> = Vec::new();
        let last = batch.len() - 1;
        let mut go = true;
        let mut events = decoded.drain(..).peekable();
        for (i, msg) in batch.iter().enumerate() {
            let Some(ev) = events.next() else { break };
            // decoded on a worker's core: the next one's parts come over meanwhile
            if let Some(Ok(next)) = events.peek() {
                crate::engine::prefetch_event(next);
            }
            if *stop.borrow() {
                go = false;
                break;
            }
            if sought.contains(&(msg.topic(), msg.partition())) {
                continue;
            }
            let reseeks = self.stats.reseeks;
            let was_paused = self.is_paused(msg);
            if !self
                .handle(msg, Some(ev), i == last && last_applies, stop)
                .await
            {
                go = false;
                break;
            }
            if self.stats.reseeks > reseeks {
                sought.push((msg.topic(), msg.partition()));
            } else if !was_paused
                && self.is_paused(msg)
                && let Some(next) = batch[i + 1..]
                    .iter()
                    .find(|m| m.topic() == msg.topic() && m.partition() == msg.partition())
            {
                // flow control paused it: its messages read ahead wait, as
                // librdkafka's queued ones do — read again once resumed
                match self.consumer.seek(
                    next.topic(),
                    next.partition(),
                    rdkafka::Offset::Offset(next.offset()),
                    std::time::Duration::from_secs(10),
                ) {
                    Ok(()) => sought.push((msg.topic(), msg.partition())),
                    // applied now instead: flow control a batch late, nothing lost
                    Err(e) => tracing::warn!(
                        topic = next.topic(),
                        partition = next.partition(),
                        error = %e,
                        "cannot seek a paused partition back to its messages read ahead"
                    ),
                }
            }
        }
        drop(events);
        decoded.clear();
        self.decoded = decoded;
        batch.clear();
        go
    }
}
