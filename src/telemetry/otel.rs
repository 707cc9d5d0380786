//! OpenTelemetry export over OTLP/HTTP (protobuf): the same instruments as
//! `/metrics`, observed from the published [`Snapshot`] when the periodic
//! reader collects (nothing is recorded per event), plus a histogram of batch
//! processing time and spans for processing batches, evaluations and alert
//! sends, and polls. Off unless `[otel] endpoint` is set.
//!
//! Semantic conventions: messaging v1.27 (`messaging.client.consumed.messages`,
//! `messaging.client.sent.messages`, `messaging.process.duration` with
//! `messaging.system`, `messaging.destination.name`,
//! `messaging.consumer.group.name`, `messaging.batch.message_count`).

use std::time::{Duration, SystemTime};

use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::{
    Link, Span, SpanContext, SpanKind, TraceFlags, TraceId, TraceState, Tracer, TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::alert::Alert;
use crate::config::OtelConfig;
use crate::telemetry::{Shared, Snapshot};

/// Semantic-conventions version the attribute names follow.
pub const SEMCONV: &str = "https://opentelemetry.io/schemas/1.27.0";
/// Span links kept per batch span (traces of the producers).
pub const MAX_LINKS: usize = 8;

/// The exporters, meter instruments and tracer of one service.
pub struct Otel {
    meters: SdkMeterProvider,
    traces: SdkTracerProvider,
    tracer: SdkTracer,
    process: Histogram<f64>,
    group: String,
}

fn kv(k: &'static str, v: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(k, v)
}

impl Otel {
    /// Starts the exporters; `None` when `[otel] endpoint` is empty.
    pub fn start(
        cfg: &OtelConfig,
        group: &str,
        snapshot: Shared,
        max_series: usize,
    ) -> Result<Option<Otel>, String> {
        if cfg.endpoint.is_empty() {
            return Ok(None);
        }
        let base = cfg.endpoint.trim_end_matches('/');
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .with_attributes([kv("service.version", env!("CARGO_PKG_VERSION"))])
            .build();
        let metrics = MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/metrics"))
            .build()
            .map_err(|e| e.to_string())?;
        let reader = PeriodicReader::builder(metrics)
            .with_interval(cfg.interval.0)
            .build();
        let meters = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource.clone())
            .build();
        let spans = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/traces"))
            .build()
            .map_err(|e| e.to_string())?;
        let traces = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("driftline")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(SEMCONV)
            .build();
        let meter = meters.meter_with_scope(scope.clone());
        register(&meter, group, snapshot, max_series);
        let process = meter
            .f64_histogram("messaging.process.duration")
            .with_unit("s")
            .with_description("Duration of processing a batch of consumed messages")
            .build();
        let tracer = traces.tracer_with_scope(scope);
        Ok(Some(Otel {
            meters,
            traces,
            tracer,
            process,
            group: group.to_string(),
        }))
    }

    /// One processed batch: its duration in the histogram and a span linked
    /// to (at most [`MAX_LINKS`]) producers' traces.
    pub fn batch(
        &self,
        topic: &str,
        messages: u64,
        busy: Duration,
        started: SystemTime,
        links: &[SpanContext],
    ) {
        let attrs = [
            kv("messaging.system", "kafka"),
            kv("messaging.operation.type", "process"),
            kv("messaging.destination.name", topic.to_string()),
            kv("messaging.consumer.group.name", self.group.clone()),
        ];
        self.process.record(busy.as_secs_f64(), &attrs);
        let mut span = self
            .tracer
            .span_builder(format!("process {topic}"))
            .with_kind(SpanKind::Consumer)
            .with_start_time(started)
            .with_attributes(
                attrs
                    .into_iter()
                    .chain([kv("messaging.batch.message_count", messages as i64)]),
            )
            .with_links(
                links
                    .iter()
                    .map(|c| Link::with_context(c.clone()))
                    .collect(),
            )
            .start(&self.tracer);
        span.end_with_timestamp(started + busy);
    }

    /// One poll period (a 250 ms tick of the service loop) that received
    /// messages: its length, and how much of it went to waiting for them.
    pub fn poll(&self, messages: u64, took: Duration, waited: Duration, started: SystemTime) {
        let mut span = self
            .tracer
            .span_builder("poll")
            .with_kind(SpanKind::Consumer)
            .with_start_time(started)
            .with_attributes([
                kv("messaging.system", "kafka"),
                kv("messaging.operation.type", "receive"),
                kv("messaging.consumer.group.name", self.group.clone()),
                kv("messaging.batch.message_count", messages as i64),
                kv("driftline.poll.wait_ms", waited.as_secs_f64() * 1e3),
            ])
            .start(&self.tracer);
        span.end_with_timestamp(started + took);
    }

    /// One evaluation at a watermark (event time `watermark`), with how long it took.
    pub fn evaluate(&self, watermark: i64, evaluations: u64, took: Duration, started: SystemTime) {
        let mut span = self
            .tracer
            .span_builder("evaluate")
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes([
                kv("driftline.watermark", watermark),
                kv("driftline.evaluations", evaluations as i64),
            ])
            .start(&self.tracer);
        span.end_with_timestamp(started + took);
    }

    /// One alert published (acknowledged by the broker).
    pub fn send_alert(&self, a: &Alert, topic: &str, took: Duration, started: SystemTime) {
        let mut span = self
            .tracer
            .span_builder(format!("send {topic}"))
            .with_kind(SpanKind::Producer)
            .with_start_time(started)
            .with_attributes([
                kv("messaging.system", "kafka"),
                kv("messaging.operation.type", "send"),
                kv("messaging.destination.name", topic.to_string()),
                kv("driftline.alert_id", a.alert_id.clone()),
                kv("driftline.alert.kind", a.kind.as_str()),
                kv("driftline.alert.severity", a.severity.as_str()),
                kv("driftline.alert.state", a.state.as_str()),
                kv("driftline.model_id", a.model_id.clone()),
                kv(
                    "driftline.exemplar_trace_ids",
                    a.exemplar_trace_ids.join(","),
                ),
            ])
            .start(&self.tracer);
        span.end_with_timestamp(started + took);
    }

    /// Exports what is pending and stops the exporters.
    pub fn shutdown(&self) {
        if let Err(e) = self.meters.shutdown() {
            tracing::warn!(error = %e, "otel metrics shutdown");
        }
        if let Err(e) = self.traces.shutdown() {
            tracing::warn!(error = %e, "otel traces shutdown");
        }
    }
}

/// A W3C `traceparent` header value (`00-<trace id>-<span id>-<flags>`) as
/// a remote span context, to link to.
pub fn parse_traceparent(v: &[u8]) -> Option<SpanContext> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.trim().split('-');
    let (version, trace, span, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = opentelemetry::trace::SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let c = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    c.is_valid().then_some(c)
}

/// Observable instruments reading the latest snapshot.
fn register(meter: &Meter, group: &str, snapshot: Shared, max_series: usize) {
    let group = group.to_string();
    let messaging = move |topic: &str| {
        [
            kv("messaging.system", "kafka"),
            kv("messaging.destination.name", topic.to_string()),
            kv("messaging.consumer.group.name", group.clone()),
        ]
    };
    let snap = move || -> std::sync::Arc<Snapshot> { snapshot.get() };

    let s = snap.clone();
    let m = messaging.clone();
    meter
        .u64_observable_counter("messaging.client.consumed.messages")
        .with_unit("{message}")
        .with_description("Messages consumed")
        .with_callback(move |o| {
            for t in &s().consumed {
                o.observe(t.messages, &m(&t.topic));
            }
        })
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("messaging.client.sent.messages")
        .with_unit("{message}")
        .with_description("Messages produced: alerts and dead letters")
        .with_callback(move |o| {
            let x = s();
            o.observe(
                x.service.alerts_published,
                &[
                    kv("messaging.system", "kafka"),
                    kv("driftline.output", "alerts"),
                ],
            );
            o.observe(
                x.service.dead_lettered,
                &[
                    kv("messaging.system", "kafka"),
                    kv("driftline.output", "dlq"),
                ],
            );
        })
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("driftline.events")
        .with_unit("{event}")
        .with_description("Events applied to the windows")
        .with_callback(move |o| {
            let x = s();
            o.observe(x.predictions, &[kv("kind", "prediction")]);
            o.observe(x.outcomes, &[kv("kind", "outcome")]);
        })
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("driftline.events.late")
        .with_unit("{event}")
        .with_description("Events behind the watermark: counted, not applied")
        .with_callback(move |o| o.observe(s().late, &[]))
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("driftline.events.bad")
        .with_unit("{event}")
        .with_description("Events refused, by reason")
        .with_callback(move |o| {
            for (reason, n) in &s().bad {
                o.observe(*n, &[kv("reason", *reason)]);
            }
        })
        .build();
    let s = snap.clone();
    let m = messaging.clone();
    meter
        .i64_observable_gauge("driftline.consumer.lag")
        .with_unit("{message}")
        .with_description("Messages between the next offset to read and the partition's log end")
        .with_callback(move |o| {
            for p in &s().lag {
                let mut a = m(&p.topic).to_vec();
                a.push(kv(
                    "messaging.destination.partition.id",
                    p.partition.to_string(),
                ));
                o.observe(p.lag, &a);
            }
        })
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("driftline.join.outcomes")
        .with_unit("{outcome}")
        .with_description("Outcome join results")
        .with_callback(move |o| {
            let j = s().join;
            for (r, n) in [
                ("joined", j.joined),
                ("expired", j.expired),
                ("evicted", j.evicted),
                ("unmatched", j.unmatched),
                ("duplicate", j.duplicates),
            ] {
                o.observe(n, &[kv("result", r)]);
            }
        })
        .build();
    let s = snap.clone();
    meter
        .f64_observable_gauge("driftline.join.coverage")
        .with_unit("1")
        .with_description("Share of predictions past their wait that were joined to an outcome")
        .with_callback(move |o| {
            let j = s().join;
            let decided = j.joined + j.expired + j.evicted;
            o.observe(
                if decided > 0 {
                    j.joined as f64 / decided as f64
                } else {
                    0.0
                },
                &[],
            );
        })
        .build();
    let s = snap.clone();
    meter
        .f64_observable_gauge("driftline.checkpoint.duration")
        .with_unit("s")
        .with_description("Time to write the last checkpoint")
        .with_callback(move |o| o.observe(s().service.checkpoint_ms / 1e3, &[]))
        .build();
    let s = snap.clone();
    meter
        .u64_observable_gauge("driftline.checkpoint.size")
        .with_unit("By")
        .with_description("Size of the last checkpoint")
        .with_callback(move |o| o.observe(s().service.checkpoint_bytes, &[]))
        .build();
    let s = snap.clone();
    meter
        .u64_observable_counter("driftline.alerts")
        .with_unit("{alert}")
        .with_description("Alert events emitted")
        .with_callback(move |o| {
            for (k, sev, st, n) in &s().alerts {
                o.observe(
                    *n,
                    &[
                        kv("kind", k.as_str()),
                        kv("severity", sev.as_str()),
                        kv("state", st.as_str()),
                    ],
                );
            }
        })
        .build();
    let s = snap;
    meter
        .f64_observable_gauge("driftline.drift.statistic")
        .with_unit("1")
        .with_description("Latest drift statistic of a series' leading test (effect size)")
        .with_callback(move |o| {
            for v in s().series.iter().take(max_series) {
                if let Some(p) = &v.last {
                    o.observe(
                        p.statistic,
                        &[
                            kv("model", v.model.clone()),
                            kv("feature", v.feature.clone()),
                            kv("slice", v.slice.clone()),
                            kv("test", p.test.clone()),
                        ],
                    );
                }
            }
        })
        .build();
}
