//! The control channel in `run`: `kafka.control_topic`, JSON control events
//! (see `incident::feedback`), read whole by every member.
//!
//! Every member must see every verdict (an incident lives in whichever
//! task holds its model), so the control consumer is not in the service's
//! group: it has a group of its own per process, commits nothing and reads
//! the topic from its start at every start. That is safe because applying a
//! control event is idempotent, and it is cheap because control events are
//! rare (people and their tools write them). The events read are kept
//! (the newest `feedback::KNOWN`) and given to every task created later, so
//! a task rebuilt from the start of its partitions, or restored from an
//! older checkpoint, learns them too.
//!
//! A value that is not a control event goes to the dead-letter topic with
//! the usual headers, is counted (`control_refused`, and as a bad message)
//! and logged with its topic, partition and offset.

use std::collections::VecDeque;
use std::sync::Arc;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;

use crate::config::KafkaConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::event::{BadEvent, BadReason};
use crate::incident::feedback::{self, Control, Recorded};
use crate::kafka::client::{Logged, SetIfAbsent, client_config};
use crate::kafka::kafka_err;

use super::Service;

/// The control consumer (`None` without `kafka.control_topic`).
pub(super) fn consumer(k: &KafkaConfig) -> Result<Option<Arc<StreamConsumer<Logged>>>> {
    if k.control_topic.is_empty() {
        return Ok(None);
    }
    let mut c = client_config(k);
    c.remove("statistics.interval.ms");
    // a group of its own, committing nothing: every member reads every event
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    c.set(
        "group.id",
        format!("{}.control.{}.{nonce:x}", k.group_id, std::process::id()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest")
    .set_if_absent("topic.metadata.refresh.interval.ms", "10000");
    let consumer: StreamConsumer<Logged> = c
        .create_with_context(Logged)
        .map_err(|e| kafka_err("control consumer", e))?;
    consumer
        .subscribe(&[&k.control_topic])
        .map_err(|e| kafka_err("control consumer", e))?;
    Ok(Some(Arc::new(consumer)))
}

/// Waits for the next control message (forever without a control consumer).
pub(super) async fn recv(
    c: &Option<Arc<StreamConsumer<Logged>>>,
) -> rdkafka::error::KafkaResult<BorrowedMessage<'_>> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// A control message's value as a control event, or why it is not one.
pub fn parse(value: Option<&[u8]>) -> std::result::Result<Control, BadEvent> {
    let Some(v) = value else {
        return Err(BadEvent::new(
            BadReason::MissingField,
            "empty control message",
        ));
    };
    serde_json::from_slice::<Control>(v).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data if e.to_string().starts_with("missing field") => {
                BadReason::MissingField
            }
            serde_json::error::Category::Data => BadReason::WrongType,
            _ => BadReason::MalformedJson,
        };
        BadEvent::new(reason, format!("not a control event: {e}"))
    })
}

/// Gives the control events read so far to an engine (a task created now).
pub(super) fn catch_up(engine: &mut Engine, log: &VecDeque<Control>) {
    for c in log {
        engine.apply_control(c);
    }
}

impl Service {
    /// One control message: applied to every task, or dead-lettered; false
    /// when stopping cut the dead letter short.
    pub(super) async fn handle_control(&mut self, msg: &BorrowedMessage<'_>) -> bool {
        match parse(msg.payload()) {
            Ok(c) => {
                let mut counted = false;
                for t in &mut self.tasks {
                    counted |= t.engine.apply_control(&c) == Recorded::Counted;
                    // the verdict is state: the next checkpoint must hold it
                    t.since_checkpoint += 1;
                }
                self.stats.control_applied += 1;
                // rare, and an audit trail: one line each
                match &c {
                    Control::IncidentFeedback {
                        incident_id,
                        verdict,
                        by,
                        ..
                    } => tracing::info!(
                        incident_id = %incident_id,
                        verdict = verdict.as_str(),
                        by = %by,
                        counted,
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "incident feedback recorded{}",
                        if counted { "" } else { " (its incident is not known here yet)" }
                    ),
                    Control::RetrainAck { action_id, by, .. } => tracing::info!(
                        action_id = %action_id,
                        by = %by,
                        answered = counted,
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "retrain request acknowledged{}",
                        if counted { "" } else { " (no open request of that id here)" }
                    ),
                }
                if self.control_log.len() >= feedback::KNOWN {
                    self.control_log.pop_front();
                }
                self.control_log.push_back(c);
                true
            }
            Err(bad) => {
                // (reported with its place by the dead letter's headers' maker)
                self.stats.control_refused += 1;
                self.dead_letter(msg, &bad).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_value_is_parsed_or_refused_with_a_reason() {
        assert!(
            parse(Some(
                br#"{"type":"incident_feedback","incident_id":"i","verdict":"confirmed"}"#
            ))
            .is_ok()
        );
        assert_eq!(
            parse(Some(b"{nope")).unwrap_err().reason,
            BadReason::MalformedJson
        );
        assert_eq!(
            parse(Some(
                br#"{"type":"incident_feedback","verdict":"confirmed"}"#
            ))
            .unwrap_err()
            .reason,
            BadReason::MissingField
        );
        assert_eq!(
            parse(Some(
                br#"{"type":"incident_feedback","incident_id":"i","verdict":3}"#
            ))
            .unwrap_err()
            .reason,
            BadReason::WrongType
        );
        assert_eq!(parse(None).unwrap_err().reason, BadReason::MissingField);
    }
}
