//! # driftline
//!
//! A streaming drift monitor for machine-learning models in production:
//! prediction and outcome events in, tiered, persistence-aware alert events
//! out. See `README.md` for use and `../shared/DESIGN.md` for the contracts.
//!
//! ```
//! use driftline::codec::{StreamKind, json};
//! use driftline::config::Config;
//! use driftline::engine::Engine;
//! use driftline::event::Event;
//!
//! let mut engine = Engine::new(Config::default());
//! let line = br#"{"trace_id":"t1","model_id":"m","event_time":1767225600000,
//!                 "features":{"amount":12.5,"device":"ios"},"slices":{"region":"EU"},"prediction":0}"#;
//! let Event::Prediction(p) = json::decode(StreamKind::Predictions, line).unwrap() else { unreachable!() };
//! engine.apply_prediction(&p).unwrap();
//! engine.finish();
//! // amount, device and prediction, each overall and for region=EU
//! assert_eq!(engine.series().len(), 6);
//! assert_eq!(engine.drain_alerts().count(), 0, "one event is no drift");
//! ```
//!
//! # Layout
//!
//! The modules follow an event through the monitor:
//!
//! - [`source`]: where events come from (files merged by event time; a Kafka consumer group).
//! - [`codec`]: bytes to events (JSON, Avro) with a reason for every refusal.
//! - [`event`]: the prediction and outcome contracts and their validation.
//! - [`engine`]: routes events to series, closes event-time buckets at the
//!   watermark, evaluates and applies the alert policy.
//! - [`window`]: one series' open buckets, reference and sliding window.
//! - [`sketch`]: mergeable per-bucket summaries and the reference's bin edges.
//! - [`drift`]: the statistical tests, one file per family, and the FDR gate.
//! - [`alert`]: the alert event, the persistence/tier policy, and sinks.
//! - [`baseline`]: reference profiles built from history.
//! - [`config`]: TOML config, environment overrides, validation.
//! - [`stats`]: counters of a run and its summary.
//! - [`service`]: `driftline run`, the Kafka service around the engine.
//! - [`telemetry`]: the service's counters and series states, as a snapshot and as Prometheus text.
//! - [`http`]: health, readiness, `/metrics`, the JSON API and the dashboard.
//! - [`checkpoint`]: the engine's state and the offsets it covers, saved and restored together.
//! - [`demo`]: `driftline demo`, an in-process Kafka, a simulated model and the service.
//! - [`cli`]: the commands behind the binary.

pub mod alert;
pub mod baseline;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod config;
pub mod demo;
pub mod drift;
pub mod engine;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod join;
pub mod kafka;
pub mod quality;
pub mod registry;
pub mod route;
pub mod service;
pub mod sketch;
pub mod source;
pub mod stats;
pub mod telemetry;
pub mod window;

/// Runs blocking work (file I/O, an HTTP call) from async code, telling a
/// multi-threaded runtime to move its other tasks off this thread meanwhile;
/// elsewhere it just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
