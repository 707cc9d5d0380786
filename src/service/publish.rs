//! Out of the service: alerts to the alert topic (acknowledged before the
//! message that caused them is stored), bad input to the dead-letter topic.

use std::time::Instant;

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use tokio::sync::watch;

use crate::event::BadEvent;
use crate::kafka::dead_letter::{PAYLOAD_ENCODING, bad_at, bad_message_onto};
use crate::kafka::send::{DeadLetter, send_dead_letter};
use crate::telemetry;

use super::{Service, now_ms};

impl Service {
    /// Publishes the engine's pending alerts; false when stopping cut it short.
    pub(super) async fn publish_alerts(&mut self, stop: &watch::Receiver<bool>) -> bool {
        // (after every message: most leave nothing to publish)
        let go =
            !self.tasks.iter().any(|t| t.engine.has_output()) || self.publish_pending(stop).await;
        self.stats.alert_delivery_retries = self.alerts.failed_deliveries;
        go
    }

    /// [`Service::publish_alerts`] when an engine has something to publish.
    async fn publish_pending(&mut self, stop: &watch::Receiver<bool>) -> bool {
        let pending: Vec<_> = self
            .tasks
            .iter_mut()
            .flat_map(|t| t.engine.drain_alerts())
            .collect();
        for mut a in pending {
            a.emitted_at = now_ms();
            let (t, wall) = (Instant::now(), std::time::SystemTime::now());
            if !self.alerts.publish(&a, stop).await {
                return false;
            }
            if let Some(o) = &self.otel {
                o.send_alert(&a, &self.cfg.kafka.alerts_topic, t.elapsed(), wall);
            }
            self.stats.alerts_published += 1;
            self.latency.alert(a.emitted_at - a.window_end);
            if self.recent_alerts.len() >= telemetry::RECENT_ALERTS {
                self.recent_alerts.pop_front();
            }
            self.recent_alerts.push_back(a);
        }
        // then the incident events of those alerts (the same guarantees)
        let incidents: Vec<_> = self
            .tasks
            .iter_mut()
            .flat_map(|t| t.engine.drain_incidents())
            .collect();
        for mut ev in incidents {
            // (the name copied per event, not per call: this runs after
            // every message, and most have nothing to publish)
            let topic = self.cfg.kafka.incidents_topic.clone();
            ev.emitted_at = now_ms();
            let payload = self.payload(&ev, crate::incident::avro::encode_incident);
            if !self
                .send_event(&topic, payload, &ev.model_id, &ev.incident_id, stop)
                .await
            {
                return false;
            }
            self.stats.incidents_published += 1;
        }
        // then the actions those evaluations decided (the same guarantees)
        let actions: Vec<_> = self
            .tasks
            .iter_mut()
            .flat_map(|t| t.engine.drain_actions())
            .collect();
        for mut a in actions {
            let topic = self.cfg.kafka.actions_topic.clone();
            a.emitted_at = now_ms();
            // decisions are rare and consequential: each one in the log
            tracing::info!(action_id = %a.action_id, action = a.action.as_str(), model = %a.model_id,
                version = a.model_version.as_deref().unwrap_or(""), rule = %a.rule, summary = %a.evidence.summary, "action");
            let payload = self.payload(&a, crate::release::avro::encode_action);
            if !self
                .send_event(&topic, payload, &a.model_id, &a.action_id, stop)
                .await
            {
                return false;
            }
            self.stats.actions_published += 1;
            if self.recent_actions.len() >= telemetry::RECENT_ALERTS {
                self.recent_actions.pop_front();
            }
            self.recent_actions.push_back(a);
        }
        true
    }

    /// An incident or action event in `kafka.alert_encoding`.
    fn payload<T: serde::Serialize>(
        &self,
        ev: &T,
        avro: fn(&T) -> Result<Vec<u8>, String>,
    ) -> Result<Vec<u8>, String> {
        match self.alerts.encoding() {
            crate::config::AlertEncoding::Avro => avro(ev),
            crate::config::AlertEncoding::Json => serde_json::to_vec(ev).map_err(|e| e.to_string()),
        }
    }

    /// Sends an encoded event keyed by model (nothing when `topic` is
    /// empty); false when stopping cut it short. An event our own schema
    /// cannot carry is a defect: logged loudly, and passed.
    async fn send_event(
        &mut self,
        topic: &str,
        payload: Result<Vec<u8>, String>,
        model: &str,
        id: &str,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        if topic.is_empty() {
            return true;
        }
        match payload {
            Ok(p) => self.alerts.send(topic, model, &p, id, stop).await,
            Err(e) => {
                tracing::error!(id, topic, error = %e, "cannot encode event");
                true
            }
        }
    }

    /// Sends a bad message to the dead-letter topic unchanged, with headers.
    pub(super) async fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> bool {
        self.stats.dead_lettered += 1;
        // the message's own headers first, ours after them
        let mut headers = OwnedHeaders::new();
        if let Some(h) = msg.headers() {
            for hd in h.iter() {
                headers = headers.insert(hd);
            }
        }
        let headers = bad_message_onto(headers, self.stats.dead_lettered, msg, bad);
        let place = (msg.topic(), msg.partition(), msg.offset());
        self.send_dead_letter(msg.key(), msg.payload(), &headers, place)
            .await
    }

    /// Delivers one dead letter (see `send_dead_letter`); false when
    /// stopping cut it short (the message is then not stored as handled).
    async fn send_dead_letter(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &OwnedHeaders,
        (topic, partition, offset): (&str, i32, i64),
    ) -> bool {
        let Some(p) = &self.dlq else { return true };
        let failures = &mut self.stats.dlq_failures;
        let outcome = send_dead_letter(
            p,
            &self.cfg.kafka.dlq_topic,
            key,
            value,
            headers,
            &self.stop,
            |e| {
                *failures += 1;
                tracing::warn!(error = %e, topic, partition, offset, "dead-letter delivery failed");
            },
        )
        .await;
        match outcome {
            DeadLetter::Whole => true,
            DeadLetter::Cut => {
                self.stats.dlq_cut += 1;
                tracing::warn!(
                    topic,
                    partition,
                    offset,
                    bytes = value.map_or(0, <[u8]>::len),
                    "dead letter too large to deliver whole: its value was cut (header dlq.value.original_bytes)"
                );
                true
            }
            DeadLetter::Undeliverable => {
                self.stats.dlq_undeliverable += 1;
                tracing::error!(
                    topic,
                    partition,
                    offset,
                    "dead letter undeliverable even without its value: counted and passed"
                );
                true
            }
            DeadLetter::Stopped => false,
        }
    }

    /// Reports what an engine decided about events it held (refused: logged
    /// with their place, counted, dead-lettered as JSON) and the event-time
    /// jumps it accepted. False when stopping cut a dead letter short.
    pub(super) async fn settle_engine(&mut self, task: usize) -> bool {
        let engine = &mut self.tasks[task].engine;
        if !engine.has_news() {
            if engine.holding() == 0 && self.held.iter().any(|h| h.0 == task) {
                self.release_held(task);
            }
            return true;
        }
        let refused: Vec<_> = engine.drain_refused().collect();
        let jumps: Vec<(i64, i64)> = engine.drain_jumps().collect();
        for (from, to) in jumps {
            tracing::warn!(
                from,
                to,
                "event time jumped: enough events agreed on it; the buckets in between closed empty"
            );
        }
        for r in refused {
            self.tasks[task].engine.stats.count_bad(r.bad.reason);
            self.stats.dead_lettered += 1;
            let (topic, partition, offset) = self
                .held
                .iter()
                .find(|h| h.0 == task && h.1 == r.tag)
                .map_or((String::new(), -1, -1), |h| (h.2.clone(), h.3, h.4));
            let headers = bad_at(self.stats.dead_lettered, &topic, partition, offset, &r.bad)
                .insert(rdkafka::message::Header {
                    key: PAYLOAD_ENCODING,
                    value: Some("json"),
                });
            let payload = match &r.event {
                crate::event::Event::Prediction(p) => serde_json::to_vec(p),
                crate::event::Event::Outcome(o) => serde_json::to_vec(o),
            }
            .unwrap_or_default();
            if !self
                .send_dead_letter(None, Some(&payload), &headers, (&topic, partition, offset))
                .await
            {
                return false;
            }
        }
        if self.tasks[task].engine.holding() == 0 {
            self.release_held(task);
        }
        true
    }

    /// The engine of `task` holds no event any more: the offsets of the
    /// messages it held are stored now (at-least-once: never before).
    fn release_held(&mut self, task: usize) {
        // the batch's messages done before, first: in offset order
        self.store_offsets();
        for (_, _, topic, partition, offset) in self.held.iter().filter(|h| h.0 == task) {
            // a later message of the partition handled since covers this
            // one: storing it now would move the stored offset back
            let later = self
                .partitions
                .iter()
                .any(|p| p.partition == *partition && p.topic == *topic && p.last_offset > *offset);
            if later {
                continue;
            }
            if let Err(e) = self.consumer.store_offset(topic, *partition, *offset) {
                tracing::warn!(error = %e, topic = %topic, partition, offset, "cannot store offset");
            }
        }
        self.held.retain(|h| h.0 != task);
    }
}
