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
