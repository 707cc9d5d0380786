//! Dead letters: a message that cannot be decoded or validated goes to the
//! dead-letter topic unchanged, with headers saying where it came from and
//! why (the service and the router write the same ones).

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};

use crate::event::BadEvent;

/// The dead letter's source topic, partition and offset.
pub const SOURCE_TOPIC: &str = "dlq.source.topic";
pub const SOURCE_PARTITION: &str = "dlq.source.partition";
pub const SOURCE_OFFSET: &str = "dlq.source.offset";
/// Why it was refused: the reason's name (`BadReason::as_str`) and its message.
pub const ERROR_CLASS: &str = "dlq.error.class";
pub const ERROR_MESSAGE: &str = "dlq.error.message";
/// Present when the value is the event re-encoded as JSON (the engine held
/// it, then refused it: the original bytes were no longer at hand).
pub const PAYLOAD_ENCODING: &str = "dlq.payload.encoding";

/// Reports a bad message (the first 100 of a run are logged, the `n`-th
/// here) and gives the headers of its dead letter: where it came from and why.
pub fn bad_message(n: u64, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> OwnedHeaders {
    bad_message_onto(OwnedHeaders::new(), n, msg, bad)
}

/// [`bad_message`] after `headers` (the message's own, kept).
pub fn bad_message_onto(
    headers: OwnedHeaders,
    n: u64,
    msg: &BorrowedMessage<'_>,
    bad: &BadEvent,
) -> OwnedHeaders {
    bad_onto(headers, n, msg.topic(), msg.partition(), msg.offset(), bad)
}

/// [`bad_message`] for a message known by its place only (one the engine
/// held and refused later).
pub fn bad_at(n: u64, topic: &str, partition: i32, offset: i64, bad: &BadEvent) -> OwnedHeaders {
    bad_onto(OwnedHeaders::new(), n, topic, partition, offset, bad)
}

fn bad_onto(
    headers: OwnedHeaders,
    n: u64,
    topic: &str,
    partition: i32,
    offset: i64,
    bad: &BadEvent,
) -> OwnedHeaders {
    if n <= 100 {
        tracing::warn!(
            topic,
            partition,
            offset,
            reason = bad.reason.as_str(),
            error = %bad.message,
            "bad message"
        );
    }
    let (partition, offset) = (partition.to_string(), offset.to_string());
    headers
        .insert(Header {
            key: SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: SOURCE_OFFSET,
            value: Some(&offset),
        })
        .insert(Header {
            key: ERROR_CLASS,
            value: Some(bad.reason.as_str()),
        })
        .insert(Header {
            key: ERROR_MESSAGE,
            value: Some(&bad.message),
        })
}
