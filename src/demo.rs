//! `driftline demo`: everything in one process. An in-process Kafka
//! (librdkafka's mock cluster), a simulated inference service writing
//! prediction and outcome events (Confluent-framed Avro) in compressed time
//! with drifts injected, the monitor itself, and a reader of the alert topic
//! that prints each alert on one line.
//!
//! Time runs 60× faster than the wall clock (one event-minute per second),
//! with a 30 min warm-up and a 10 min window, so the first drift (`amount`
//! scaled ×1.8 at event minute 40) alerts within a minute. At minute 70
//! `latency_ms` switches to microseconds (×1000), at minute 100 a fifth of
//! `tenure_days` goes missing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::codec::avro::{encode, schemas};
use crate::codec::confluent::frame;
use crate::config::{Config, Encoding, HumanDuration, StartFrom};
use crate::error::{Error, Result};
use crate::event::{Outcome, Prediction, Scalar, Value};
use crate::service::Service;

/// Event-time milliseconds per wall-clock millisecond.
pub const SPEEDUP: i64 = 60;
/// Events per event-time second.
const RATE: f64 = 2.0;
const T0: i64 = 1_767_225_600_000;

fn mock_err(e: rdkafka::error::KafkaError) -> Error {
    Error::Kafka {
        what: "mock cluster".into(),
        message: e.to_string(),
    }
}

/// The demo's config: the shipped defaults with a shorter warm-up and
/// window, pointed at the in-process cluster.
pub fn demo_config(bootstrap: &str) -> Config {
    let mut cfg = Config::default();
    cfg.reference.warmup = HumanDuration::secs(30 * 60);
    cfg.window.current = HumanDuration::secs(10 * 60);
    cfg.policy.cooldown = HumanDuration::secs(10 * 60);
    let k = &mut cfg.kafka;
    k.bootstrap_servers = bootstrap.to_string();
    k.group_id = "driftline-demo".into();
    k.encoding = Encoding::Confluent;
    k.idle_timeout = HumanDuration::secs(2);
    // the in-process cluster lives as long as the demo: nothing to resume
    k.start_from = StartFrom::Earliest;
    cfg.http.listen = DEMO_HTTP.into();
    cfg
}

/// Where the demo serves its dashboard.
pub const DEMO_HTTP: &str = "127.0.0.1:9464";

/// Runs the demo until `stop` turns true or `duration` passes.
pub async fn run(
    duration: Option<Duration>,
    listen: String,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    // a port another process holds: say so, rather than print its URL
    if let Err(e) = std::net::TcpListener::bind(&listen) {
        return Err(Error::Http {
            listen,
            message: format!("{e} (choose another address with --listen)"),
        });
    }
    let mock = MockCluster::new(1).map_err(mock_err)?;
    let mut cfg = demo_config(&mock.bootstrap_servers());
    cfg.http.listen = listen;
    for t in [
        &cfg.kafka.predictions_topic,
        &cfg.kafka.outcomes_topic,
        &cfg.kafka.alerts_topic,
        &cfg.kafka.dlq_topic,
        &cfg.kafka.incidents_topic,
        &cfg.kafka.control_topic,
        &cfg.kafka.actions_topic,
    ] {
        mock.create_topic(t, 1, 1).map_err(mock_err)?;
    }
    eprintln!(
        "driftline demo: in-process kafka at {}, time ×{SPEEDUP} (one event-minute per second); \
         drifts at event minutes 40 (amount ×1.8), 70 (latency_ms ×1000), 100 (tenure_days nulls). Ctrl-C stops.\n\
         driftline demo: dashboard at http://{}/ (metrics at /metrics)",
        cfg.kafka.bootstrap_servers, cfg.http.listen
    );
    let (tx, rx) = watch::channel(false);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.bootstrap_servers)
        .set("linger.ms", "20")
        .create()
        .map_err(mock_err)?;
    let sim = tokio::spawn(simulate(producer, cfg.clone(), rx.clone()));
    let printer = tokio::spawn(print_incidents(cfg.clone(), rx.clone()));
    let mut service = Service::new(cfg)?;
    let svc = tokio::spawn(async move {
        let r = service.run(rx).await;
        (r, service.engine_stats(), service.stats.clone())
    });
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    tokio::select! {
        _ = stop.changed() => {}
        _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
    }
    let _ = tx.send(true);
    let _ = sim.await;
    let (r, stats, svc_stats) = svc.await.map_err(|e| Error::Kafka {
        what: "service task".into(),
        message: e.to_string(),
    })?;
    let _ = printer.await;
    r?;
    eprintln!(
        "driftline demo: {} messages, {} alerts published, {} series",
        svc_stats.messages, svc_stats.alerts_published, stats.series
    );
    drop(mock);
    Ok(())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-300), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn pick<'a>(&mut self, xs: &[&'a str], p: &[f64]) -> &'a str {
        let mut u = self.next();
        for (x, w) in xs.iter().zip(p) {
            if u < *w {
                return x;
            }
            u -= w;
        }
        xs[xs.len() - 1]
    }
}

/// One simulated request at event time `t` (minutes since start `m`).
fn request(rng: &mut Rng, i: u64, t: i64, m: f64) -> (Prediction, Outcome) {
    let mut amount = (3.0 + rng.normal()).exp();
    if m >= 40.0 {
        amount *= 1.8;
    }
    let mut latency = 60.0 * (-rng.next().max(1e-12).ln() - rng.next().max(1e-12).ln()) / 2.0;
    if m >= 70.0 {
        latency *= 1000.0;
    }
    let tenure = if m >= 100.0 && rng.next() < 0.2 {
        Value::Null
    } else {
        Value::Number(-400.0 * rng.next().max(1e-12).ln())
    };
    let device = rng.pick(
        &["ios", "android", "desktop", "tablet"],
        &[0.35, 0.35, 0.22, 0.08],
    );
    let region = rng.pick(&["EU", "US", "APAC"], &[0.45, 0.4, 0.15]);
    let z = -3.0 + 0.6 * (1.0 + amount).ln() + if device == "android" { 0.4 } else { 0.0 };
    let score = 1.0 / (1.0 + (-z).exp());
    let trace_id = format!("{:016x}{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
    let p = Prediction {
        trace_id: trace_id.clone(),
        model_id: "checkout-fraud".into(),
        model_version: Some("v7".into()),
        event_time: t,
        features: vec![
            (
                "amount".into(),
                Value::Number((amount * 100.0).round() / 100.0),
            ),
            (
                "latency_ms".into(),
                Value::Number((latency * 1000.0).round() / 1000.0),
            ),
            ("tenure_days".into(), tenure),
            ("device".into(), Value::Text(device.into())),
        ],
        slices: vec![("region".into(), region.into())],
        prediction: Scalar::Number(if score > 0.5 { 1.0 } else { 0.0 }),
        score: Some((score * 1e6).round() / 1e6),
        shadow: false,
        prepared: Default::default(),
    };
    let label = if rng.next() < score { 1.0 } else { 0.0 };
    let o = Outcome {
        trace_id,
        model_id: "checkout-fraud".into(),
        event_time: t + 300_000 + (rng.next() * 600_000.0) as i64,
        label: Scalar::Number(label),
    };
    (p, o)
}

/// The simulated inference service: predictions now, outcomes 5–15 event-minutes later.
async fn simulate(producer: FutureProducer, cfg: Config, stop: watch::Receiver<bool>) {
    let Ok(s) = schemas() else { return };
    let mut rng = Rng(0x5eed);
    let start = Instant::now();
    let mut pending: VecDeque<Outcome> = VecDeque::new();
    let mut i: u64 = 0;
    let step_ms = (1000.0 / RATE) as i64;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut inflight = Vec::new();
    while !*stop.borrow() {
        tick.tick().await;
        // enqueue this tick's events, then wait for their acknowledgements together
        for d in inflight.drain(..) {
            if let Ok(Err((e, _))) = d.await {
                tracing::warn!(error = %e, "demo producer could not send");
            }
        }
        let now = T0 + start.elapsed().as_millis() as i64 * SPEEDUP;
        while T0 + i as i64 * step_ms <= now {
            let t = T0 + i as i64 * step_ms;
            let (p, o) = request(&mut rng, i, t, (t - T0) as f64 / 60_000.0);
            if let Ok(bytes) = encode(&s.prediction, &p) {
                inflight.extend(send(
                    &producer,
                    &cfg.kafka.predictions_topic,
                    &p.model_id,
                    frame(1, &bytes),
                ));
            }
            let at = pending.partition_point(|x| x.event_time <= o.event_time);
            pending.insert(at, o);
            i += 1;
        }
        while pending.front().is_some_and(|o| o.event_time <= now) {
            let Some(o) = pending.pop_front() else { break };
            if let Ok(bytes) = encode(&s.outcome, &o) {
                inflight.extend(send(
                    &producer,
                    &cfg.kafka.outcomes_topic,
                    &o.model_id,
                    frame(2, &bytes),
                ));
            }
        }
    }
}

fn send(
    p: &FutureProducer,
    topic: &str,
    key: &str,
    value: Vec<u8>,
) -> Option<rdkafka::producer::DeliveryFuture> {
    match p.send_result(FutureRecord::to(topic).key(key).payload(&value)) {
        Ok(f) => Some(f),
        Err((e, _)) => {
            tracing::warn!(error = %e, topic, "demo producer could not enqueue");
            None
        }
    }
}

/// Reads the alert topic and prints each alert on one line.
/// Prints the incident events as they are published: what pages, one
/// incident per cause (every alert stays on the alert topic).
async fn print_incidents(cfg: Config, mut stop: watch::Receiver<bool>) {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.bootstrap_servers)
        .set("group.id", "driftline-demo-printer")
        .set("auto.offset.reset", "earliest")
        .create()
    {
        Ok(c) => c,
        Err(e) => return eprintln!("demo: cannot read incidents: {e}"),
    };
    if let Err(e) = consumer.subscribe(&[&cfg.kafka.incidents_topic]) {
        return eprintln!("demo: cannot read incidents: {e}");
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            m = consumer.recv() => {
                if let Ok(m) = m {
                    match m.payload().map(crate::incident::avro::decode_incident) {
                        Some(Ok(i)) => println!("{}", incident_line(&i)),
                        Some(Err(e)) => eprintln!("demo: unreadable incident: {e}"),
                        None => {}
                    }
                }
            }
        }
    }
}

/// An incident event at a glance: when, what happened to it, its summary,
/// then its root, owner and what to do.
pub fn incident_line(i: &crate::incident::IncidentEvent) -> String {
    let minute = (i.updated_at - T0) / 60_000;
    let state = match i.state {
        crate::incident::IncidentState::Open => "OPEN    ",
        crate::incident::IncidentState::Updated => "UPDATED ",
        crate::incident::IncidentState::Resolved => "RESOLVED",
    };
    format!(
        "[event {:02}:{:02}] {state} {:<8} {} #{}  {}\n    root {} {} [{}] {} {:.3} · owner {} · {}\n    do: {}",
        minute / 60,
        minute % 60,
        i.severity.as_str().to_uppercase(),
        i.incident_id,
        i.seq,
        i.summary,
        i.root.kind.as_str(),
        i.root.feature.as_deref().unwrap_or("-"),
        crate::incident::slice_words(&i.root.slice),
        i.root.test,
        i.root.statistic,
        i.owner,
        i.runbook_url,
        i.recommended_action
    )
}
