//! Kafka plumbing the service, the router and the checkpoint topic share:
//! client settings and the producer ([`client`]), the service's consumer and
//! its rebalance and log-end callbacks ([`consumer`]), sending until the
//! broker takes a record ([`send`]), dead-letter headers ([`dead_letter`]),
//! and event-time flow control across partitions ([`pacer`]).

pub mod client;
pub mod consumer;
pub mod dead_letter;
pub mod pacer;
pub mod send;

pub use client::{client_config, kafka_err, producer};

/// Header on a routed record: the input partition it came from, `<topic>/<partition>`.
pub const ORIGIN_HEADER: &str = "driftline.origin";
/// Header of a router's idle marker (no event): the origin it names is
/// read to its end and silent.
pub const IDLE_HEADER: &str = "driftline.idle";
