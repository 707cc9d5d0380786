//! Where alerts and incident events go: JSON Lines (a file or stdout), or
//! the alert and incident topics.

use std::io::Write;

use rdkafka::producer::FutureRecord;

use crate::alert::Alert;
use crate::error::{Error, Result};

/// Writes one event (alert or incident) per line.
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }

    pub fn write<T: serde::Serialize>(&mut self, a: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, a).map_err(|e| Error::Output(e.into()))?;
        self.out.write_all(b"\n").map_err(Error::Output)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::Output)
    }
}

/// The alert topic: every alert, key = model id, Avro (`schemas/alert.avsc`)
/// or JSON; idempotent producer, `acks=all`. A failed delivery is logged,
/// counted and retried until it succeeds or the service is told to stop.
pub struct KafkaSink {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
    encoding: crate::config::AlertEncoding,
    /// Deliveries that failed and were retried.
    pub failed_deliveries: u64,
    pub delivered: u64,
}

impl KafkaSink {
    pub fn new(
        producer: rdkafka::producer::FutureProducer,
        k: &crate::config::KafkaConfig,
    ) -> Self {
        KafkaSink {
            producer,
            topic: k.alerts_topic.clone(),
            encoding: k.alert_encoding,
            failed_deliveries: 0,
            delivered: 0,
        }
    }

    /// Avro or JSON (`kafka.alert_encoding`), for alerts and incidents alike.
    pub fn encoding(&self) -> crate::config::AlertEncoding {
        self.encoding
    }

    /// Encodes an alert as the topic's value.
    pub fn encode(&self, a: &Alert) -> std::result::Result<Vec<u8>, String> {
        match self.encoding {
            crate::config::AlertEncoding::Avro => crate::alert::avro::encode_alert(a),
            crate::config::AlertEncoding::Json => serde_json::to_vec(a).map_err(|e| e.to_string()),
        }
    }

    /// Publishes one alert; returns once the broker acknowledged it, or
    /// `false` if `stop` turned true while retrying.
    pub async fn publish(&mut self, a: &Alert, stop: &tokio::sync::watch::Receiver<bool>) -> bool {
        let payload = match self.encode(a) {
            Ok(p) => p,
            Err(e) => {
                // an alert our own schema cannot carry is a defect; say so loudly, keep running
                tracing::error!(alert_id = %a.alert_id, error = %e, "cannot encode alert");
                return true;
            }
        };
        let topic = self.topic.clone();
        self.send(&topic, &a.model_id, &payload, &a.alert_id, stop)
            .await
    }

    /// Publishes one encoded record (another event type: incidents) with
    /// the alert topic's guarantees; false if `stop` cut the retries short.
    pub async fn send(
        &mut self,
        topic: &str,
        key: &str,
        payload: &[u8],
        id: &str,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        let failed = &mut self.failed_deliveries;
        let delivered = crate::kafka::send::send_until_acked(
            &self.producer,
            || FutureRecord::to(topic).key(key.as_bytes()).payload(payload),
            Some(stop),
            |e| {
                *failed += 1;
                tracing::warn!(id, topic, error = %e, "delivery failed; retrying");
            },
        )
        .await;
        if delivered {
            self.delivered += 1;
        } else {
            tracing::error!(
                id,
                topic,
                "stopping with an undelivered event; it is re-emitted after restart"
            );
        }
        delivered
    }
}
