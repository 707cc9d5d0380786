//! Client settings every Kafka client here shares (bootstrap servers, the
//! `[kafka.librdkafka]` pass-through, librdkafka's log through tracing),
//! the service's producer, and one way to turn a client error into ours.

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::producer::FutureProducer;

use crate::config::{Config, KafkaConfig};
use crate::error::{Error, Result};

/// librdkafka settings shared by every client: bootstrap servers and the
/// pass-through map.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers);
    for (key, v) in &k.librdkafka {
        c.set(key, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// The idempotent, `acks=all` producer of alerts and dead letters.
pub fn producer(cfg: &Config) -> Result<FutureProducer> {
    let mut c = client_config(&cfg.kafka);
    // statistics feed the consumer's partition ends; a producer would only log them
    c.remove("statistics.interval.ms");
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create().map_err(|e| kafka_err("producer", e))
}

/// A Kafka client failure, saying what was being done.
pub fn kafka_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// A client context that only logs librdkafka's messages through tracing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            _ => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }
}

impl ConsumerContext for Logged {}

impl rdkafka::producer::ProducerContext for Logged {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// A librdkafka default of ours that the pass-through map may override.
pub(crate) trait SetIfAbsent {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self;
}

impl SetIfAbsent for ClientConfig {
    fn set_if_absent(&mut self, key: &str, value: &str) -> &mut Self {
        if self.get(key).is_none() {
            self.set(key, value);
        }
        self
    }
}
