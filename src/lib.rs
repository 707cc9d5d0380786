//! # driftline
//!
//! A streaming drift monitor for machine-learning models in production:
//! prediction and outcome events in, tiered, persistence-aware alert events
//! out. See `README.md` for use and `docs/` for the contracts, operations and architecture.
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
//! The modules follow an event through the monitor; each imports only the
//! ones below it (a module never imports the engine or the service that use it).
//!
//! In:
//! - [`source`]: files, merged by event time (`replay`); the Kafka side is in [`kafka`] and `service`.
//! - [`codec`]: bytes to events (JSON, Avro, the Confluent wire format) with a reason for every refusal.
//! - [`event`]: the prediction and outcome contracts and their validation.
//!
//! The engine and what it is made of:
//! - [`engine`]: routes events to series, closes event-time buckets at the
//!   watermark, evaluates, and turns verdicts into alerts (`engine/`: watermark,
//!   ingest, evaluate, emit, state, observe).
//! - `registry`: models, features, slices, the cardinality caps and `__other__`.
//! - `window`: one series' open buckets, reference and sliding window.
//! - [`sketch`]: mergeable per-bucket summaries and the reference's bin edges.
//! - [`drift`]: the statistical tests, one file per family, the typed [`drift::Test`] list, the FDR gate.
//! - `join` and `quality`: outcomes joined to predictions by trace id; model quality over time.
//! - `baseline`: reference profiles built from history.
//!
//! Out:
//! - [`alert`]: the alert event, its Avro form, the persistence/tier policy, and sinks.
//! - [`checkpoint`]: the engine's state and the offsets it covers, saved and restored together.
//! - `stats` and `telemetry`: counters of a run; the snapshot, Prometheus text and OTLP export.
//! - `http`: health, readiness, `/metrics`, the JSON API and the dashboard.
//!
//! Around it:
//! - [`kafka`]: client settings, the consumer, sends, dead-letter headers, flow control in event time.
//! - [`service`]: `driftline run`, the Kafka service around the engine (`service/`: tasks,
//!   rebalance, handle, flow, publish, observe).
//! - `route`: `driftline route`, the first stage that re-keys input topics by model.
//! - `demo`: `driftline demo`, an in-process Kafka, a simulated model and the service.
//! - [`config`]: TOML config, environment overrides, validation.
//! - [`cli`]: the commands behind the binary, one file each.
//! - [`error`]: the crate's error type.

// what `replay`, the binary, the tests and the benches use
pub mod alert;
pub mod checkpoint;
pub mod cli;
pub mod codec;
pub mod config;
pub mod drift;
pub mod engine;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod incident;
pub mod join;
pub mod kafka;
pub mod release;
pub mod service;
pub mod sketch;
pub mod source;
pub mod window;

// the engine's parts and the service's, not API
pub(crate) mod baseline;
pub(crate) mod demo;
pub(crate) mod http;
pub(crate) mod quality;
pub(crate) mod registry;
pub(crate) mod route;
pub(crate) mod stats;
pub(crate) mod telemetry;

/// Runs blocking work (file I/O, an HTTP call) from async code, telling a
/// multi-threaded runtime to move its other tasks off this thread meanwhile;
/// elsewhere it just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
