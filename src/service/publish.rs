//! Out of the service: alerts to the alert topic (acknowledged before the
//! message that caused them is stored), bad input to the dead-letter topic.

use std::time::Instant;

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureRecord;
use tokio::sync::watch;

use crate::event::BadEvent;
use crate::kafka::dead_letter::bad_message;
use crate::kafka::send::send_until_acked;
use crate::telemetry;

use super::{Service, now_ms};

impl Service {
    /// Publishes the engine's pending alerts; false when stopping cut it short.
    pub(super) async fn publish_alerts(&mut self, stop: &watch::Receiver<bool>) -> bool {
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
            if self.recent_alerts.len() >= telemetry::RECENT_ALERTS {
                self.recent_alerts.pop_front();
            }
            self.recent_alerts.push_back(a);
        }
        self.stats.alert_delivery_retries = self.alerts.failed_deliveries;
        true
    }

    /// Sends a bad message to the dead-letter topic unchanged, with headers.
    pub(super) async fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> bool {
        self.stats.dead_lettered += 1;
        let headers = bad_message(self.stats.dead_lettered, msg, bad);
        let Some(p) = &self.dlq else { return true };
        let failures = &mut self.stats.dlq_failures;
        // (retried until delivered, stopping or not: a dead letter is never dropped)
        send_until_acked(
            p,
            || {
                let mut record =
                    FutureRecord::to(&self.cfg.kafka.dlq_topic).headers(headers.clone());
                if let Some(k) = msg.key() {
                    record = record.key(k);
                }
                if let Some(v) = msg.payload() {
                    record = record.payload(v);
                }
                record
            },
            None,
            |e| {
                *failures += 1;
                tracing::warn!(error = %e, "dead-letter delivery failed; retrying");
            },
        )
        .await
    }
}
