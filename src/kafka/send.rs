//! Sending records until the broker takes them: a `BaseProducer` waiting
//! for room in librdkafka's queue, and a `FutureProducer` retrying a failed
//! delivery with backoff.

use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

/// Sends a record with a `BaseProducer`, waiting for room (serving
/// delivery reports) while librdkafka's queue is full.
pub fn send_retrying<'a, C, K, P>(
    producer: &rdkafka::producer::BaseProducer<C>,
    mut record: rdkafka::producer::BaseRecord<'a, K, P, C::DeliveryOpaque>,
) -> KafkaResult<()>
where
    C: rdkafka::producer::ProducerContext,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(std::time::Duration::from_millis(20));
                record = r;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Sends the record `make` builds until the broker acknowledges it, with
/// exponential backoff (100 ms to 5 s) between attempts; `failed` sees each
/// failure. With `stop`, gives up (false) once it turns true; without, keeps
/// trying.
pub async fn send_until_acked<'a>(
    producer: &FutureProducer,
    make: impl Fn() -> FutureRecord<'a, [u8], [u8]>,
    stop: Option<&watch::Receiver<bool>>,
    mut failed: impl FnMut(&KafkaError),
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match producer.send(make(), rdkafka::util::Timeout::Never).await {
            Ok(_) => return true,
            Err((e, _)) => {
                failed(&e);
                if stop.is_some_and(|s| *s.borrow()) {
                    return false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A dead letter's value beyond this is cut (when the whole one is refused
/// for its size): enough to see what the message was.
pub const DEAD_LETTER_PREFIX: usize = 64 * 1024;
/// Header on a dead letter whose value was cut or left out: the original
/// value's size in bytes.
pub const VALUE_BYTES: &str = "dlq.value.original_bytes";

/// What became of a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetter {
    /// Delivered as it came.
    Whole,
    /// Too large for the producer or the topic: delivered with its value cut
    /// to [`DEAD_LETTER_PREFIX`] bytes, or (still too large) without a
    /// value; header [`VALUE_BYTES`] gives the original size.
    Cut,
    /// Not even its headers could be delivered for their size: counted and
    /// logged with its place, not retried.
    Undeliverable,
    /// Stopping cut the retries short (a transient failure): the message is
    /// not stored as handled, so it is read again on restart.
    Stopped,
}

/// True for errors that retrying the same record can never cure: it is too
/// large for the producer or the topic.
pub fn too_large(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize)
    )
}

/// A dead letter at `level` of degradation: 0 whole, 1 its value cut to
/// [`DEAD_LETTER_PREFIX`], 2 without a value (1 and 2 say the original
/// size in header [`VALUE_BYTES`]).
pub fn degrade<'v>(
    level: u8,
    value: Option<&'v [u8]>,
    headers: &rdkafka::message::OwnedHeaders,
) -> (Option<&'v [u8]>, rdkafka::message::OwnedHeaders) {
    if level == 0 {
        return (value, headers.clone());
    }
    let size = value.map_or(0, <[u8]>::len).to_string();
    (
        value
            .filter(|_| level == 1)
            .map(|v| &v[..v.len().min(DEAD_LETTER_PREFIX)]),
        headers.clone().insert(rdkafka::message::Header {
            key: VALUE_BYTES,
            value: Some(&size),
        }),
    )
}

/// Sends a dead letter until the broker takes it. Transient failures are
/// retried with backoff (100 ms to 5 s), but never past `stop`; a value too
/// large for the producer or the dead-letter topic is cut, then left out,
/// so one message can never wedge its partition.
pub async fn send_dead_letter(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &rdkafka::message::OwnedHeaders,
    stop: &watch::Receiver<bool>,
    mut failed: impl FnMut(&KafkaError),
) -> DeadLetter {
    let mut backoff = Duration::from_millis(100);
    let mut level = 0;
    let mut stop = stop.clone();
    loop {
        let (value, headers) = degrade(level, value, headers);
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        match producer.send(record, rdkafka::util::Timeout::Never).await {
            Ok(_) if level == 0 => return DeadLetter::Whole,
            Ok(_) => return DeadLetter::Cut,
            Err((e, _)) if too_large(&e) => {
                failed(&e);
                level += 1;
                if level > 2 {
                    return DeadLetter::Undeliverable;
                }
            }
            Err((e, _)) => {
                failed(&e);
                if *stop.borrow() {
                    return DeadLetter::Stopped;
                }
                // (a receiver whose sender is gone never stops)
                let stopped = async {
                    if stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped => return DeadLetter::Stopped,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
