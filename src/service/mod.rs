//! `driftline run`: the Kafka service. Consumes predictions and outcomes,
//! feeds the same [`Engine`] as `replay`, publishes alerts, dead-letters bad
//! input, and stops cleanly on SIGINT/SIGTERM.
//!
//! Per message: decode (Confluent, Avro or JSON) → apply to the engine (its
//! partition is one of the engine's sources, so the watermark is the
//! slowest active partition's) → publish the alerts it caused and wait for
//! their acknowledgement → store the message's offset. A message that cannot
//! be decoded or validated goes to the dead-letter topic unchanged, with
//! headers saying where it came from and why; then its offset is stored.
//!
//! The service's rooms:
//!
//! - `tasks`: units of state (an engine, its partitions, its checkpoint
//!   name), the partitions and routed origins each one reads.
//! - `rebalance`: assignment changes, restore from a checkpoint or rebuild
//!   from the start, and writing checkpoints (then committing what they cover).
//! - `ahead`: the messages the consumer already holds, taken as a batch
//!   and handled one by one in order while a thread decodes them.
//! - `handle`: one message — decode, apply, publish, store its offset.
//! - `flow`: housekeeping each tick — idle partitions, flow control in event time.
//! - `publish`: alerts to the alert topic, bad input to the dead-letter topic.
//! - `observe`: the telemetry snapshot and the OTel batch spans.
//! - `control`: the control topic (feedback on incidents), read by every member.

mod ahead;
mod apart;
mod control;
mod flow;
mod handle;
mod observe;
mod publish;
mod rebalance;
mod tasks;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;

use crate::alert::Alert;
use crate::alert::sink::KafkaSink;
use crate::baseline::Baseline;
use crate::checkpoint::{self, Store};
use crate::codec::StreamKind;
use crate::codec::confluent::ValueDecoder;
use crate::config::{Config, StartFrom};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::HistoryRequest;
use crate::kafka::consumer::{self, Context};
use crate::kafka::{client_config, kafka_err, producer};
use crate::stats::ServiceStats;
use crate::telemetry::{self, Shared};

use observe::Batch;
use tasks::{PartitionState, Task};

/// The service: consumer, tasks (engines), alert and DLQ producers.
pub struct Service {
    cfg: Config,
    tasks: Vec<Task>,
    /// Where checkpoints go: a directory or a compacted topic.
    store: Store,
    /// The topics consumed (predictions, outcomes; "" when none): the
    /// `[kafka]` ones, or with `kafka.routed` the `[route]` ones.
    topics: [String; 2],
    /// `kafka.routed`: every partition of the input topics (the routers'),
    /// as origin names `<topic>/<partition>`, with the kind (0 predictions,
    /// 1 outcomes). Each task tracks every one of them.
    inputs: Vec<(String, usize)>,
    baselines: HashMap<String, Baseline>,
    consumer: std::sync::Arc<StreamConsumer<Context>>,
    /// `kafka.control_topic`'s consumer, and the control events read (for tasks created later).
    control: Option<std::sync::Arc<StreamConsumer<crate::kafka::client::Logged>>>,
    control_log: VecDeque<crate::incident::feedback::Control>,
    alerts: KafkaSink,
    dlq: Option<FutureProducer>,
    predictions: ValueDecoder,
    outcomes: ValueDecoder,
    /// Assigned partitions (few: a linear scan, no allocation per message).
    partitions: Vec<PartitionState>,
    /// Never turns true: for alert publishing outside a message.
    never: watch::Receiver<bool>,
    /// The stop signal `run` was given (`never` before).
    stop: watch::Receiver<bool>,
    /// Configured input topics the cluster does not have, and when that was checked.
    missing_topics: Vec<String>,
    topics_checked: Option<Instant>,
    pub stats: ServiceStats,
    /// Messages an engine holds (its first events, until enough agree on
    /// the time): (task, tag, topic, partition, offset), to name them if refused.
    held: Vec<(usize, u64, String, i32, i64)>,
    /// Offsets of the batch's messages done, stored at its end: (index in
    /// `partitions`, offset of the last one done).
    to_store: Vec<(usize, i64)>,
    /// Stop once every assigned partition is idle at its end.
    pub until_end: bool,
    /// Wall time of the first and the last message handled.
    first_message: Option<Instant>,
    last_message: Option<Instant>,
    /// The partitions assigned to this member.
    assignment: Vec<(String, i32)>,
    last_checkpoint: Instant,
    /// Models already reported as split across tasks.
    split_reported: std::collections::HashSet<String>,
    /// Test hook (`DRIFTLINE_FAULT_ABORT_AFTER_CHECKPOINT=N`): abort right
    /// after the N-th checkpoint is written, before its offsets are committed.
    crash_after_checkpoint: Option<u64>,
    /// Test hook (`DRIFTLINE_FAULT_SKIP_REBUILD_SEEK=1`): a rebuilt
    /// partition is not sought to its start, as when librdkafka's fetch of
    /// the committed offset lands after the seek (the race `handle.rs`'s
    /// re-seek answers), so a test can force what load only sometimes does.
    skip_rebuild_seek: bool,
    /// What the HTTP side reads, refreshed once a second.
    pub snapshot: Shared,
    last_snapshot: Instant,
    /// Messages per topic (predictions, outcomes).
    consumed: [u64; 2],
    /// The newest alerts, for the API and the dashboard.
    recent_alerts: VecDeque<Alert>,
    /// The newest actions, for the API and the dashboard.
    recent_actions: VecDeque<crate::release::Action>,
    /// Batch processing time and alert latency (HDR histograms).
    latency: telemetry::latency::Latency,
    otel: Option<telemetry::otel::Otel>,
    /// The batch being processed, per topic (predictions, outcomes), for
    /// its `process` span: messages, busy time, start, producers' traces.
    batch: [Batch; 2],
    /// When the current poll period (one tick) began, monotonic and wall.
    poll_started: (Instant, std::time::SystemTime),
    /// With 2 workers or more: the thread decoding a batch while this one
    /// handles it (`None` with one, or if it stopped: then this thread
    /// decodes the batch first).
    decode_ahead: Option<ahead::DecodeAhead>,
    /// `run --workers`: each task's engine closes a bucket's windows on up
    /// to this many threads (from 1,024 series on, as in replay).
    workers: usize,
    /// A batch's decoded events, in order (buffers kept between batches).
    decoded: Vec<Result<crate::event::Event, crate::event::BadEvent>>,
    /// Sources of a task found woken by `admit` (task, source): set active
    /// in their engine before the message is applied.
    woken: Vec<(usize, usize)>,
    /// With 2 workers or more, each worker's decoders for the batches
    /// applied task by task on the workers (`apart`).
    task_decoders: Vec<ahead::Decoders>,
}

impl Service {
    pub fn new(cfg: Config) -> Result<Service> {
        let baselines = Baseline::load_configured(&cfg)?;
        let mut consumed = cfg.kafka.clone();
        if cfg.kafka.routed {
            consumed.predictions_topic = cfg.route.predictions_topic.clone();
            if !cfg.kafka.outcomes_topic.is_empty() {
                consumed.outcomes_topic = cfg.route.outcomes_topic.clone();
            }
        }
        let consumer = consumer::consumer(&consumed).map_err(|e| kafka_err("consumer", e))?;
        let producer = producer(&cfg)?;
        let dlq = (!cfg.kafka.dlq_topic.is_empty()).then(|| producer.clone());
        Ok(Service {
            alerts: KafkaSink::new(producer, &cfg.kafka),
            dlq,
            predictions: ValueDecoder::new(StreamKind::Predictions, &cfg.kafka)?,
            outcomes: ValueDecoder::new(StreamKind::Outcomes, &cfg.kafka)?,
            tasks: Vec::new(),
            topics: [consumed.predictions_topic, consumed.outcomes_topic],
            inputs: Vec::new(),
            store: Store::open(&cfg).map_err(|e| Error::Kafka {
                what: "checkpoint store".into(),
                message: e.to_string(),
            })?,
            baselines,
            consumer: std::sync::Arc::new(consumer),
            control: control::consumer(&cfg.kafka)?,
            control_log: VecDeque::new(),
            partitions: Vec::new(),
            never: watch::channel(false).1,
            stop: watch::channel(false).1,
            missing_topics: Vec::new(),
            topics_checked: None,
            stats: ServiceStats::default(),
            held: Vec::new(),
            to_store: Vec::new(),
            until_end: false,
            first_message: None,
            last_message: None,
            assignment: Vec::new(),
            last_checkpoint: Instant::now(),
            split_reported: Default::default(),
            crash_after_checkpoint: std::env::var("DRIFTLINE_FAULT_ABORT_AFTER_CHECKPOINT")
                .ok()
                .and_then(|v| v.parse().ok()),
            skip_rebuild_seek: std::env::var("DRIFTLINE_FAULT_SKIP_REBUILD_SEEK")
                .is_ok_and(|v| v == "1"),
            snapshot: Shared::default(),
            last_snapshot: Instant::now(),
            consumed: [0; 2],
            recent_alerts: VecDeque::new(),
            recent_actions: VecDeque::new(),
            latency: Default::default(),
            otel: None,
            batch: Default::default(),
            poll_started: (Instant::now(), std::time::SystemTime::now()),
            decode_ahead: None,
            workers: 1,
            decoded: Vec::with_capacity(ahead::AHEAD),
            woken: Vec::new(),
            task_decoders: Vec::new(),
            cfg,
        })
    }

    /// Threads for decoding (`run --workers`): what the consumer already
    /// holds is read ahead as a batch (see `ahead`); with 2 or more it is
    /// decoded on a thread of its own while this one handles it (with 1,
    /// here first). Each task's engine closes a bucket's windows on up to
    /// `n` threads when it has many series (`Engine::set_workers`).
    pub fn set_workers(&mut self, n: usize) -> Result<()> {
        self.workers = n.max(1);
        for t in &mut self.tasks {
            t.engine.set_workers(self.workers);
        }
        self.task_decoders = if n > 1 {
            (0..self.workers)
                .map(|_| {
                    Ok((
                        self.predictions.sharing(&self.cfg.kafka)?,
                        self.outcomes.sharing(&self.cfg.kafka)?,
                    ))
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        self.decode_ahead = if n > 1 {
            let decoders = (
                self.predictions.sharing(&self.cfg.kafka)?,
                self.outcomes.sharing(&self.cfg.kafka)?,
            );
            let dd = crate::sketch::dd_config(self.cfg.series.quantile_accuracy);
            let thread = ahead::DecodeAhead::spawn(decoders, dd).map_err(|e| Error::Kafka {
                what: "decode thread".into(),
                message: e.to_string(),
            })?;
            Some(thread)
        } else {
            None
        };
        Ok(())
    }

    /// The counters of every task's engine, summed.
    pub fn engine_stats(&self) -> crate::stats::Stats {
        let mut s = crate::stats::Stats::default();
        for t in &self.tasks {
            s.add(&t.engine.stats);
            let mut o = s.overflow.unwrap_or_default();
            o.add(&t.engine.overflow());
            s.overflow = Some(o);
            *s.dormant_series.get_or_insert(0) += t.engine.dormant_series();
        }
        s
    }

    /// Runs until `stop` turns true; then commits (when committing) and returns.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        self.stop = stop.clone();
        tracing::info!(
            bootstrap = %self.cfg.kafka.bootstrap_servers,
            group = %self.cfg.kafka.group_id,
            predictions = %self.topics[0],
            outcomes = %self.topics[1],
            alerts = %self.cfg.kafka.alerts_topic,
            control = %self.cfg.kafka.control_topic,
            "driftline service started"
        );
        if let Store::Topic(t) = &self.store
            && self.cfg.kafka.start_from == StartFrom::Checkpoint
            && let Err(e) =
                checkpoint::topic::ensure_topic(t.topic(), &client_config(&self.cfg.kafka)).await
        {
            tracing::warn!(topic = t.topic(), error = %e, "cannot create the checkpoint topic (using it as it is)");
        }
        if self.cfg.kafka.routed {
            self.inputs = self.input_partitions()?;
            tracing::info!(
                origins = self.inputs.len(),
                "routed topics: the watermark waits for every input partition"
            );
        }
        let consumer = self.consumer.clone();
        let control = self.control.clone();
        let (history_tx, mut history_rx) = tokio::sync::mpsc::channel::<HistoryRequest>(16);
        if !self.cfg.http.listen.is_empty() {
            // a busy port is a start-up error: a service without its health
            // endpoints would be restarted by its orchestrator, or never watched
            let addr = crate::http::serve(
                &self.cfg.http,
                self.snapshot.clone(),
                history_tx.clone(),
                self.cfg.to_toml(),
                stop.clone(),
            )
            .await
            .map_err(|e| Error::Http {
                listen: self.cfg.http.listen.clone(),
                message: e.to_string(),
            })?;
            tracing::info!(url = %format!("http://{addr}/"), "http: dashboard, /metrics, /healthz, /readyz, /api");
        }
        drop(history_tx);
        match telemetry::otel::Otel::start(
            &self.cfg.otel,
            &self.cfg.kafka.group_id,
            self.snapshot.clone(),
            self.cfg.http.max_series_metrics,
        ) {
            Ok(Some(o)) => {
                tracing::info!(endpoint = %self.cfg.otel.endpoint, "otel: exporting metrics and traces over OTLP/HTTP");
                self.otel = Some(o);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "otel export not started"),
        }
        let (mut errors, mut last_error) = (0u64, None);
        let mut batch = Vec::with_capacity(ahead::AHEAD);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.snapshot.beat(now_ms());
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some((id, reply)) = history_rx.recv() => {
                    let (task, sid) = ((id >> telemetry::TASK_SHIFT) as usize, id & ((1 << telemetry::TASK_SHIFT) - 1));
                    let h = self.tasks.get(task).and_then(|t| t.engine.series().get(sid as usize)).map(|s| s.history.iter().map(|p| p.view(&self.cfg.tests)).collect());
                    let _ = reply.send(h);
                }
                _ = tick.tick() => {
                    self.housekeeping().await;
                    if self.until_end && self.all_at_end() {
                        tracing::info!("every assigned partition read to its end: stopping");
                        break;
                    }
                }
                c = control::recv(&control) => match c {
                    Ok(msg) => {
                        if !self.handle_control(&msg).await {
                            break;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if last_error.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                            tracing::warn!(error = %e, topic = %self.cfg.kafka.control_topic, errors, "control consumer error");
                            last_error = Some(Instant::now());
                            errors = 0;
                        }
                    }
                },
                m = consumer.recv() => match m {
                    Ok(msg) => {
                        batch.push(msg);
                        let (last_applies, failed) = self.read_ahead(&consumer, &mut batch);
                        if !self.handle_batch(&mut batch, last_applies, &stop).await {
                            break;
                        }
                        if let Some(e) = failed {
                            consumer_error(&e, &mut errors, &mut last_error);
                        }
                    }
                    Err(e) => consumer_error(&e, &mut errors, &mut last_error),
                },
            }
        }
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.end_batches();
        if let Some(o) = self.otel.take() {
            // the last snapshot for the final export
            self.publish_snapshot();
            o.shutdown();
        }
        if self.cfg.kafka.start_from == StartFrom::Checkpoint {
            self.checkpoint();
        }
        if self.cfg.kafka.start_from == StartFrom::Committed {
            match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                // nothing stored yet is not a failure
                Err(rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                )) => {}
                Err(e) => tracing::warn!(error = %e, "final commit failed"),
            }
        }
        let engine = self.engine_stats();
        let mut join = crate::join::JoinStats::default();
        for t in &self.tasks {
            join.add(&t.engine.join_stats());
        }
        let busy_s = match (self.first_message, self.last_message) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        tracing::info!(
            messages = self.stats.messages,
            // first to last message: throughput without start-up and idle time
            busy_s,
            messages_per_s = if busy_s > 0.0 {
                (self.stats.messages as f64 / busy_s).round()
            } else {
                0.0
            },
            dead_lettered = self.stats.dead_lettered,
            dead_letters_cut = self.stats.dlq_cut,
            dead_letters_undeliverable = self.stats.dlq_undeliverable,
            joined = join.joined,
            orphans_evicted = join.orphans_evicted,
            alerts = self.stats.alerts_published,
            late = engine.late,
            redelivered = self.stats.redelivered,
            decoded_on_workers = self.stats.decoded_on_workers,
            applied_on_task_workers = self.stats.applied_on_task_workers,
            checkpoints = self.stats.checkpoints,
            checkpoint_bytes = self.stats.checkpoint_bytes,
            checkpoint_ms = self.stats.checkpoint_ms,
            series = engine.series,
            tasks = self.tasks.len(),
            capped = engine.overflow.map_or(0, |o| o.total()),
            "driftline service stopped"
        );
        Ok(())
    }
}

/// An engine for the service: predictions wait for outcomes only when an
/// outcomes topic is consumed.
fn new_engine(cfg: &Config, baselines: &HashMap<String, Baseline>) -> Engine {
    let mut e = Engine::with_baselines(cfg.clone(), baselines.clone());
    e.expect_outcomes(!cfg.kafka.outcomes_topic.is_empty());
    e
}

/// Logs a consumer error — not once per poll while the brokers are away:
/// once per 10 s, with how many there were.
fn consumer_error(e: &rdkafka::error::KafkaError, errors: &mut u64, last: &mut Option<Instant>) {
    *errors += 1;
    if last.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
        tracing::warn!(error = %e, errors = *errors, "consumer error");
        *last = Some(Instant::now());
        *errors = 0;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A watch channel that turns true on SIGINT or SIGTERM. Stopping is
/// bounded: `grace` after the signal (or at a second one) the process exits
/// with code 1, whatever it was waiting for.
pub fn stop_on_signals(grace: Duration) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: draining, flushing and committing");
        let _ = tx.send(true);
        tokio::select! {
            _ = tokio::time::sleep(grace) => tracing::error!(
                grace = %humantime::format_duration(grace),
                "stopping took longer than kafka.shutdown_timeout: exiting now"
            ),
            _ = tokio::signal::ctrl_c() => tracing::error!("second signal: exiting now"),
            _ = term.recv() => tracing::error!("second signal: exiting now"),
        }
        std::process::exit(1);
    });
    rx
}
