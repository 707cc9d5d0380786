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

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::alert::Alert;
use crate::alert::sink::KafkaSink;
use crate::baseline::Baseline;
use crate::checkpoint::{self, Body, CheckpointError, OriginSource, PartitionOffset, Store};
use crate::codec::StreamKind;
use crate::codec::confluent::ValueDecoder;
use crate::config::{Config, StartFrom, StatePer};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::BadEvent;
use crate::http::HistoryRequest;
use crate::source::kafka::{self, Assignment, Context};
use crate::stats::ServiceStats;
use crate::telemetry::{self, PartitionLag, Shared, Snapshot, TopicCount};

/// One unit of state: an engine and the partitions it reads, checkpointed
/// together. `state_per = "member"`: one task holding every assigned
/// partition; `"partition"`: one task per partition number.
struct Task {
    /// The partitions its checkpoint covers, sorted: the checkpoint's name.
    key: Vec<(String, i32)>,
    engine: Engine,
    /// Messages applied since its last checkpoint.
    since_checkpoint: u64,
    /// `kafka.routed`: the partitions routed records came from, each an
    /// engine source (the watermark waits for the slowest origin).
    origins: Vec<Origin>,
}

/// A partition routed records came from.
struct Origin {
    /// `<input topic>/<partition>` (header `driftline.origin`).
    name: String,
    /// The routed partition (index in `Service::partitions` is not stable:
    /// topic and partition) its records arrive on.
    via: (String, i32),
    source: usize,
    idle: bool,
}

struct PartitionState {
    topic: String,
    partition: i32,
    /// Index of its task, and its source (watermark input) in the task's engine.
    task: usize,
    source: usize,
    last_message: Instant,
    /// When the partition was (re)registered: older log-end statistics do not count.
    assigned_at: Instant,
    idle: bool,
    /// Paused for being too far ahead of the slowest partition.
    paused: bool,
    /// Offset of the last message handled (-1 before any).
    last_offset: i64,
    /// Where reading started (a checkpoint's offset, or 0).
    start_offset: i64,
    /// Read to this offset: past the last message when only transaction
    /// markers follow it (set once the partition is idle at its end).
    end_offset: i64,
}

/// No engine source: a routed partition's events feed their origins'.
const NO_SOURCE: usize = usize::MAX;

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
    alerts: KafkaSink,
    dlq: Option<FutureProducer>,
    predictions: ValueDecoder,
    outcomes: ValueDecoder,
    /// Assigned partitions (few: a linear scan, no allocation per message).
    partitions: Vec<PartitionState>,
    /// Never turns true: for alert publishing outside a message.
    never: watch::Receiver<bool>,
    pub stats: ServiceStats,
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
    /// What the HTTP side reads, refreshed once a second.
    pub snapshot: Shared,
    last_snapshot: Instant,
    /// Messages per topic (predictions, outcomes).
    consumed: [u64; 2],
    /// The newest alerts, for the API and the dashboard.
    recent_alerts: VecDeque<Alert>,
    otel: Option<telemetry::otel::Otel>,
    /// The batch being processed, per topic (predictions, outcomes), for
    /// its `process` span: messages, busy time, start, producers' traces.
    batch: [Batch; 2],
    /// When the current poll period (one tick) began, monotonic and wall.
    poll_started: (Instant, std::time::SystemTime),
}

#[derive(Default)]
struct Batch {
    messages: u64,
    busy: Duration,
    started: Option<std::time::SystemTime>,
    links: Vec<opentelemetry::trace::SpanContext>,
}

fn kafka_err(what: &str, e: rdkafka::error::KafkaError) -> Error {
    Error::Kafka {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// The idempotent, `acks=all` producer of alerts and dead letters.
pub fn producer(cfg: &Config) -> Result<FutureProducer> {
    let mut c = kafka::client_config(&cfg.kafka);
    // statistics feed the consumer's partition ends; a producer would only log them
    c.remove("statistics.interval.ms");
    c.set("enable.idempotence", "true").set("acks", "all");
    c.create().map_err(|e| kafka_err("producer", e))
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
        let consumer = kafka::consumer(&consumed).map_err(|e| kafka_err("consumer", e))?;
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
            partitions: Vec::new(),
            never: watch::channel(false).1,
            stats: ServiceStats::default(),
            until_end: false,
            first_message: None,
            last_message: None,
            assignment: Vec::new(),
            last_checkpoint: Instant::now(),
            split_reported: Default::default(),
            crash_after_checkpoint: std::env::var("DRIFTLINE_FAULT_ABORT_AFTER_CHECKPOINT")
                .ok()
                .and_then(|v| v.parse().ok()),
            snapshot: Shared::default(),
            last_snapshot: Instant::now(),
            consumed: [0; 2],
            recent_alerts: VecDeque::new(),
            otel: None,
            batch: Default::default(),
            poll_started: (Instant::now(), std::time::SystemTime::now()),
            cfg,
        })
    }

    /// The counters of every task's engine, summed.
    pub fn engine_stats(&self) -> crate::stats::Stats {
        let mut s = crate::stats::Stats::default();
        for t in &self.tasks {
            s.add(&t.engine.stats);
            let mut o = s.overflow.unwrap_or_default();
            o.add(&t.engine.overflow());
            s.overflow = Some(o);
        }
        s
    }

    /// Runs until `stop` turns true; then commits (when committing) and returns.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        tracing::info!(
            bootstrap = %self.cfg.kafka.bootstrap_servers,
            group = %self.cfg.kafka.group_id,
            predictions = %self.topics[0],
            outcomes = %self.topics[1],
            alerts = %self.cfg.kafka.alerts_topic,
            "driftline service started"
        );
        if let Store::Topic(t) = &self.store
            && self.cfg.kafka.start_from == StartFrom::Checkpoint
            && let Err(e) =
                checkpoint::topic::ensure_topic(t.topic(), &kafka::client_config(&self.cfg.kafka))
                    .await
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
        let (history_tx, mut history_rx) = tokio::sync::mpsc::channel::<HistoryRequest>(16);
        if !self.cfg.http.listen.is_empty() {
            match crate::http::serve(
                &self.cfg.http.listen,
                self.snapshot.clone(),
                history_tx.clone(),
                self.cfg.to_toml(),
                self.cfg.http.max_series_metrics,
                stop.clone(),
            )
            .await
            {
                Ok(addr) => {
                    tracing::info!(url = %format!("http://{addr}/"), "http: dashboard, /metrics, /healthz, /readyz, /api")
                }
                Err(e) => {
                    tracing::error!(listen = %self.cfg.http.listen, error = %e, "http server not started")
                }
            }
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
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some((id, reply)) = history_rx.recv() => {
                    let (task, sid) = ((id >> telemetry::TASK_SHIFT) as usize, id & ((1 << telemetry::TASK_SHIFT) - 1));
                    let h = self.tasks.get(task).and_then(|t| t.engine.series().get(sid as usize)).map(|s| s.history.iter().cloned().collect());
                    let _ = reply.send(h);
                }
                _ = tick.tick() => {
                    self.housekeeping().await;
                    if self.until_end && self.all_at_end() {
                        tracing::info!("every assigned partition read to its end: stopping");
                        break;
                    }
                }
                m = consumer.recv() => match m {
                    Ok(msg) => {
                        if !self.handle(&msg, &stop).await {
                            break;
                        }
                    }
                    Err(e) => {
                        // not once per poll while the brokers are away: once per 10 s
                        errors += 1;
                        if last_error.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
                            tracing::warn!(error = %e, errors, "consumer error");
                            last_error = Some(Instant::now());
                            errors = 0;
                        }
                    }
                },
            }
        }
        self.shutdown()
    }

    /// Applies rebalances; true when the windows were rebuilt (the
    /// partitions were sent back to their start).
    fn apply_assignment_changes(&mut self) -> bool {
        let mut rebuilt = false;
        let changes: Vec<Assignment> = match self.consumer.context().changes.lock() {
            Ok(mut c) => c.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for ch in changes {
            match ch {
                Assignment::Assigned(ps) => {
                    tracing::info!(partitions = ?ps, "partitions assigned");
                    // librdkafka keeps a partition's pause across a rebalance:
                    // one paused for flow control before it was revoked would
                    // never deliver again once its state here is rebuilt
                    let mut tpl = rdkafka::TopicPartitionList::new();
                    for (topic, partition) in &ps {
                        tpl.add_partition(topic, *partition);
                    }
                    if let Err(e) = self.consumer.resume(&tpl) {
                        tracing::warn!(error = %e, "cannot resume the assigned partitions");
                    }
                    for tp in &ps {
                        if !self.assignment.contains(tp) {
                            self.assignment.push(tp.clone());
                        }
                    }
                    if self.cfg.kafka.state_per == StatePer::Member {
                        // the member's state is that of its whole assignment
                        while !self.tasks.is_empty() {
                            self.drop_task(0);
                        }
                    }
                    let fresh = match self.cfg.kafka.state_per {
                        StatePer::Member => self.assignment.clone(),
                        StatePer::Partition => ps.clone(),
                    };
                    let tasks = self.tasks_of(&fresh);
                    match self.cfg.kafka.start_from {
                        // the windows are rebuilt from nothing: every assigned partition
                        // is read from its start again (republished alerts keep their alert_id)
                        StartFrom::Earliest => {
                            for (key, parts) in tasks {
                                self.rebuild(key, &parts);
                                rebuilt = true;
                            }
                        }
                        StartFrom::Checkpoint => {
                            let group = &self.cfg.kafka.group_id;
                            let names: Vec<String> = tasks
                                .iter()
                                .map(|(k, _)| self.store.name(group, k))
                                .collect();
                            // one read (one scan of a checkpoint topic) for every new task
                            let (store, cfg) = (&mut self.store, &self.cfg);
                            let bodies = crate::blocking(|| store.read_many(&names, cfg));
                            for (((key, parts), name), body) in
                                tasks.into_iter().zip(names).zip(bodies)
                            {
                                self.restore_or_rebuild(key, &parts, &name, body);
                                rebuilt = true;
                            }
                        }
                        StartFrom::Committed => {}
                    }
                    for (topic, partition) in &ps {
                        self.partition(topic, *partition);
                    }
                }
                Assignment::Revoked(ps) => {
                    tracing::info!(partitions = ?ps, "partitions revoked");
                    if self.cfg.kafka.start_from == StartFrom::Checkpoint {
                        // the state of the partitions going away, before it goes
                        self.checkpoint();
                    }
                    self.assignment
                        .retain(|(t, p)| !ps.iter().any(|(rt, rp)| rt == t && rp == p));
                    for (topic, partition) in ps {
                        let found = self
                            .partitions
                            .iter()
                            .position(|p| p.partition == partition && p.topic == topic);
                        if let Some(i) = found {
                            let st = self.partitions.swap_remove(i);
                            let t = &mut self.tasks[st.task];
                            t.engine.remove_source(st.source);
                            let via = (st.topic, st.partition);
                            for o in t.origins.iter().filter(|o| o.via == via) {
                                t.engine.remove_source(o.source);
                            }
                            t.origins.retain(|o| o.via != via);
                        }
                    }
                    // a task without partitions left went to another member
                    let mut i = 0;
                    while i < self.tasks.len() {
                        if self.partitions.iter().any(|p| p.task == i) {
                            i += 1;
                        } else {
                            self.drop_task(i);
                        }
                    }
                }
            }
        }
        rebuilt
    }

    /// The key of the member's one task: its whole assignment, sorted.
    fn member_key(&self) -> Vec<(String, i32)> {
        let mut key = self.assignment.clone();
        key.sort();
        key
    }

    /// The partitions of a partition number's task: that partition of every
    /// consumed topic, sorted (the task's checkpoint name).
    fn partition_key(&self, partition: i32) -> Vec<(String, i32)> {
        let mut key = vec![(self.topics[0].clone(), partition)];
        if !self.topics[1].is_empty() {
            key.push((self.topics[1].clone(), partition));
        }
        key.sort();
        key
    }

    /// Newly assigned partitions grouped by the task they belong to: (the
    /// task's key, its partitions among them).
    #[allow(clippy::type_complexity)]
    fn tasks_of(&self, ps: &[(String, i32)]) -> Vec<(Vec<(String, i32)>, Vec<(String, i32)>)> {
        match self.cfg.kafka.state_per {
            StatePer::Member => vec![(self.member_key(), ps.to_vec())],
            StatePer::Partition => {
                let mut numbers: Vec<i32> = ps.iter().map(|(_, p)| *p).collect();
                numbers.sort_unstable();
                numbers.dedup();
                numbers
                    .into_iter()
                    .map(|n| {
                        let parts = ps.iter().filter(|(_, p)| *p == n).cloned().collect();
                        (self.partition_key(n), parts)
                    })
                    .collect()
            }
        }
    }

    /// The index of the task a partition belongs to, created (fresh) if none.
    fn task_of(&mut self, partition: i32) -> usize {
        let found = match self.cfg.kafka.state_per {
            StatePer::Member => (!self.tasks.is_empty()).then_some(0),
            StatePer::Partition => {
                let key = self.partition_key(partition);
                self.tasks.iter().position(|t| t.key == key)
            }
        };
        found.unwrap_or_else(|| {
            let key = match self.cfg.kafka.state_per {
                StatePer::Member => self.member_key(),
                StatePer::Partition => self.partition_key(partition),
            };
            self.push_task(key, new_engine(&self.cfg, &self.baselines))
        })
    }

    fn push_task(&mut self, key: Vec<(String, i32)>, engine: Engine) -> usize {
        self.tasks.push(Task {
            key,
            engine,
            since_checkpoint: 0,
            origins: Vec::new(),
        });
        self.tasks.len() - 1
    }

    /// Removes a task and the state of its partitions.
    fn drop_task(&mut self, i: usize) {
        self.tasks.remove(i);
        self.partitions.retain(|p| p.task != i);
        for p in &mut self.partitions {
            if p.task > i {
                p.task -= 1;
            }
        }
    }

    /// Replaces the task of `key` (if any) by `engine`; its partitions' state goes.
    fn replace_task(&mut self, key: Vec<(String, i32)>, engine: Engine) -> usize {
        if let Some(i) = self.tasks.iter().position(|t| t.key == key) {
            self.drop_task(i);
        }
        self.push_task(key, engine)
    }

    /// A fresh task; every partition in `ps` is read from its start.
    fn rebuild(&mut self, key: Vec<(String, i32)>, ps: &[(String, i32)]) {
        let task = self.replace_task(key, new_engine(&self.cfg, &self.baselines));
        self.ensure_origins(task);
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition) in ps {
            // offset 0, not the logical Beginning: librdkafka resumes a paused
            // partition from a logical seek target, not from where the
            // application got to, which re-delivers the partition from its
            // start. Past retention, 0 is out of range and
            // auto.offset.reset=earliest takes over.
            let _ = tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(0));
        }
        if let Err(e) = self.consumer.seek_partitions(tpl, Duration::from_secs(10)) {
            tracing::warn!(error = %e, "cannot seek to the start of the assigned partitions");
        }
    }

    /// The checkpoint of the task `key` restored and its partitions `ps`
    /// sought to its offsets; without a usable one, a rebuild from the start.
    fn restore_or_rebuild(
        &mut self,
        key: Vec<(String, i32)>,
        ps: &[(String, i32)],
        path: &str,
        read: Result<Option<Body>, CheckpointError>,
    ) {
        let body = match read {
            Ok(Some(b)) => b,
            Ok(None) => {
                tracing::info!(
                    path,
                    "no checkpoint for these partitions: reading them from their start"
                );
                return self.rebuild(key, ps);
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint not restored: reading the partitions from their start");
                return self.rebuild(key, ps);
            }
        };
        let engine = match Engine::restore(self.cfg.clone(), self.baselines.clone(), &body.engine) {
            Ok(mut e) => {
                e.expect_outcomes(!self.cfg.kafka.outcomes_topic.is_empty());
                e
            }
            Err(e) => {
                tracing::error!(path, error = %e, "checkpoint state unreadable: reading the partitions from their start");
                return self.rebuild(key, ps);
            }
        };
        let task = self.replace_task(key, engine);
        let now = Instant::now();
        let mut tpl = rdkafka::TopicPartitionList::new();
        let assigned =
            |o: &PartitionOffset| ps.iter().any(|(t, p)| *t == o.topic && *p == o.partition);
        for o in &body.offsets {
            let engine = &mut self.tasks[task].engine;
            if !assigned(o) {
                // not this member's (an assignor that split the task): it
                // must not hold the watermark at its checkpointed time
                engine.remove_source(o.source as usize);
                continue;
            }
            engine.set_idle(o.source as usize, false);
            self.partitions.push(PartitionState {
                topic: o.topic.clone(),
                partition: o.partition,
                task,
                source: o.source as usize,
                last_message: now,
                assigned_at: now,
                idle: false,
                paused: false,
                last_offset: o.next_offset - 1,
                start_offset: o.next_offset,
                end_offset: o.next_offset,
            });
            let _ = tpl.add_partition_offset(
                &o.topic,
                o.partition,
                rdkafka::Offset::Offset(o.next_offset),
            );
        }
        for o in &body.origins {
            let engine = &mut self.tasks[task].engine;
            if !ps
                .iter()
                .any(|(t, p)| *t == o.via_topic && *p == o.via_partition)
            {
                engine.remove_source(o.source as usize);
                continue;
            }
            engine.set_idle(o.source as usize, false);
            self.tasks[task].origins.push(Origin {
                name: o.origin.clone(),
                via: (o.via_topic.clone(), o.via_partition),
                source: o.source as usize,
                idle: false,
            });
        }
        self.ensure_origins(task);
        for (topic, partition) in ps {
            if !body
                .offsets
                .iter()
                .any(|o| o.topic == *topic && o.partition == *partition)
            {
                let _ = tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(0));
            }
        }
        if let Err(e) = self.consumer.seek_partitions(tpl, Duration::from_secs(10)) {
            tracing::warn!(error = %e, "cannot seek to the checkpoint's offsets");
        }
        // the restored offsets are covered by a durable checkpoint: commit
        // them now, or a member that restores a checkpoint at the end of its
        // partitions (nothing left to read) would never move the group's
        // committed offsets, and lag monitoring would see a stale backlog
        let mut commit = rdkafka::TopicPartitionList::new();
        for o in body.offsets.iter().filter(|o| assigned(o)) {
            let _ = commit.add_partition_offset(
                &o.topic,
                o.partition,
                rdkafka::Offset::Offset(o.next_offset),
            );
        }
        if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
            tracing::debug!(error = %e, "commit of the restored offsets failed");
        }
        tracing::info!(
            path,
            written_at_ms = body.written_at_ms,
            offsets = ?body.offsets.iter().map(|o| (o.topic.as_str(), o.partition, o.next_offset)).collect::<Vec<_>>(),
            series = self.tasks[task].engine.series().len(),
            "checkpoint restored"
        );
    }

    /// Writes a checkpoint of every task that applied messages since its
    /// last one (its engine and the next offset of each of its partitions),
    /// then commits the offsets those checkpoints cover. Between messages
    /// only (no alert pending: each message's alerts are acknowledged before
    /// the next).
    fn checkpoint(&mut self) {
        let t = Instant::now();
        let mut commit = rdkafka::TopicPartitionList::new();
        let (mut written, mut bytes_total) = (0, 0);
        for task in 0..self.tasks.len() {
            if self.tasks[task].since_checkpoint == 0 {
                continue;
            }
            let offsets: Vec<PartitionOffset> = self
                .partitions
                .iter()
                .filter(|p| p.task == task)
                .map(|p| PartitionOffset {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    next_offset: (p.last_offset + 1).max(p.start_offset).max(p.end_offset),
                    source: p.source as u32,
                })
                .collect();
            let origins: Vec<OriginSource> = self.tasks[task]
                .origins
                .iter()
                .map(|o| OriginSource {
                    origin: o.name.clone(),
                    via_topic: o.via.0.clone(),
                    via_partition: o.via.1,
                    source: o.source as u32,
                })
                .collect();
            if offsets.is_empty() {
                continue;
            }
            let path = self
                .store
                .name(&self.cfg.kafka.group_id, &self.tasks[task].key);
            let result = self.tasks[task]
                .engine
                .save_state()
                .map_err(|e| e.to_string())
                .and_then(|engine| {
                    checkpoint::encode(&checkpoint::Body {
                        written_at_ms: now_ms(),
                        crate_version: env!("CARGO_PKG_VERSION").to_string(),
                        config_fingerprint: checkpoint::config_fingerprint(&self.cfg),
                        group: self.cfg.kafka.group_id.clone(),
                        offsets: offsets.clone(),
                        engine,
                        origins,
                    })
                    .map_err(|e| e.to_string())
                })
                .and_then(|bytes| {
                    // a blocking write and fsync, off the async worker threads'
                    // fairness budget: this loop is the only user of the engine
                    let store = &mut self.store;
                    crate::blocking(|| store.write(&path, &bytes))
                        .map(|()| bytes.len())
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(bytes) => {
                    self.stats.checkpoints += 1;
                    if self.crash_after_checkpoint == Some(self.stats.checkpoints) {
                        // fault injection for the crash tests: the checkpoint is
                        // durable, its offsets are not committed yet
                        tracing::warn!("fault injection: aborting between checkpoint and commit");
                        std::process::abort();
                    }
                    written += 1;
                    bytes_total += bytes;
                    self.tasks[task].since_checkpoint = 0;
                    // commit exactly what the durable checkpoint covers
                    for o in &offsets {
                        let _ = commit.add_partition_offset(
                            &o.topic,
                            o.partition,
                            rdkafka::Offset::Offset(o.next_offset),
                        );
                    }
                    tracing::debug!(path, bytes, "checkpoint written");
                }
                Err(e) => {
                    self.stats.checkpoint_failures += 1;
                    tracing::error!(path, error = %e, "checkpoint failed; offsets not committed");
                }
            }
        }
        if written > 0 {
            self.stats.checkpoint_bytes = bytes_total as u64;
            self.stats.checkpoint_ms = t.elapsed().as_secs_f64() * 1e3;
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::debug!(error = %e, "commit after checkpoint failed (the checkpoint's offsets still rule)");
            }
        }
        self.last_checkpoint = Instant::now();
    }

    /// The state of a partition, registered as a source of its task's
    /// engine on first sight.
    fn partition(&mut self, topic: &str, partition: i32) -> usize {
        match self
            .partitions
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
        {
            Some(i) => i,
            None => {
                let task = self.task_of(partition);
                let source = if self.cfg.kafka.routed {
                    NO_SOURCE
                } else {
                    self.tasks[task].engine.add_source()
                };
                self.partitions.push(PartitionState {
                    topic: topic.to_string(),
                    partition,
                    task,
                    source,
                    last_message: Instant::now(),
                    assigned_at: Instant::now(),
                    idle: false,
                    paused: false,
                    last_offset: -1,
                    start_offset: 0,
                    end_offset: 0,
                });
                let task = self.partitions.last().map_or(0, |p| p.task);
                self.ensure_origins(task);
                self.partitions.len() - 1
            }
        }
    }

    /// `kafka.routed`: every partition of the routers' input topics.
    fn input_partitions(&self) -> Result<Vec<(String, usize)>> {
        let mut out = Vec::new();
        let inputs = [
            &self.cfg.kafka.predictions_topic,
            &self.cfg.kafka.outcomes_topic,
        ];
        for (kind, topic) in inputs.into_iter().enumerate() {
            if topic.is_empty() {
                continue;
            }
            let md = crate::blocking(|| {
                self.consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(30))
            })
            .map_err(|e| kafka_err("metadata of the routers' input topics", e))?;
            let n = md.topics().first().map_or(0, |t| t.partitions().len());
            if n == 0 {
                return Err(Error::Kafka {
                    what: format!("input topic {topic}"),
                    message: "no partitions: kafka.routed tracks the routers' input topics".into(),
                });
            }
            out.extend((0..n).map(|p| (format!("{topic}/{p}"), kind)));
        }
        Ok(out)
    }

    /// `kafka.routed`: a source in the task's engine for every input
    /// partition it does not track yet (the watermark waits for each until
    /// it delivers or is idle).
    fn ensure_origins(&mut self, task: usize) {
        if !self.cfg.kafka.routed || task >= self.tasks.len() {
            return;
        }
        let t = &mut self.tasks[task];
        let number = t.key.first().map_or(0, |k| k.1);
        for (name, kind) in &self.inputs {
            if t.origins.iter().any(|o| o.name == *name) {
                continue;
            }
            let source = t.engine.add_source();
            t.origins.push(Origin {
                name: name.clone(),
                via: (self.topics[*kind].clone(), number),
                source,
                idle: false,
            });
        }
    }

    /// `kafka.routed`: the engine source of the origin a routed message
    /// names, and whether the message is the router's idle marker for it.
    fn origin_source(&mut self, task: usize, msg: &BorrowedMessage<'_>) -> (usize, bool) {
        let (mut origin, mut marker) = (None, false);
        if let Some(h) = msg.headers() {
            for hd in h.iter() {
                if hd.key == crate::route::ORIGIN_HEADER {
                    origin = hd.value;
                } else if hd.key == crate::route::IDLE_HEADER {
                    marker = true;
                }
            }
        }
        let t = &mut self.tasks[task];
        let found =
            origin.and_then(|name| t.origins.iter_mut().find(|o| o.name.as_bytes() == name));
        if let Some(o) = found {
            if marker {
                if !o.idle {
                    o.idle = true;
                    t.engine.set_idle(o.source, true);
                }
            } else {
                o.idle = false;
            }
            return (o.source, marker);
        }
        if marker {
            // an origin this task does not track: nothing waits for it
            return (NO_SOURCE, true);
        }
        // not written by the router, or from a partition added to an input topic since the start
        let name = origin.map_or_else(
            || format!("{}/{}", msg.topic(), msg.partition()),
            |n| String::from_utf8_lossy(n).into_owned(),
        );
        let source = t.engine.add_source();
        t.origins.push(Origin {
            name,
            via: (msg.topic().to_string(), msg.partition()),
            source,
            idle: false,
        });
        (source, false)
    }

    /// Reports (once per model, and in `split_models`) a model whose events
    /// reached more than one task: with `state_per = "partition"` its
    /// windows are then split, and the topics must be keyed by model.
    fn check_split_models(&mut self) {
        if self.tasks.len() < 2 {
            return;
        }
        let mut seen: HashMap<&str, i32> = HashMap::new();
        let mut split = Vec::new();
        for t in &self.tasks {
            let p = t.key.first().map_or(-1, |k| k.1);
            for m in t.engine.models() {
                match seen.insert(&m.id, p) {
                    Some(q)
                        if q != p
                            && !self.split_reported.contains(&m.id)
                            && !split.iter().any(|(s, _, _)| *s == m.id) =>
                    {
                        split.push((m.id.clone(), q, p))
                    }
                    _ => {}
                }
            }
        }
        for (model, a, b) in split {
            tracing::error!(
                model = %model,
                partitions = ?(a, b),
                "model's events arrive on more than one partition: with kafka.state_per = \"partition\" its windows are split; key the topics by model_id or use state_per = \"member\""
            );
            self.stats.split_models += 1;
            self.split_reported.insert(model);
        }
    }

    /// Idle partitions stop holding the watermark back. With every partition
    /// idle the watermark is the newest event time minus the allowed
    /// lateness, as if the stream went on: the last buckets are evaluated
    /// when newer events arrive, never early (an early flush would make the
    /// events that follow a pause late).
    async fn housekeeping(&mut self) {
        self.apply_assignment_changes();
        // resume partitions the others have caught up with
        let skew = self.cfg.kafka.max_skew.as_millis();
        for i in 0..self.partitions.len() {
            let st = &self.partitions[i];
            if !st.paused {
                continue;
            }
            let engine = &self.tasks[st.task].engine;
            let caught_up = match (engine.source_max(st.source), engine.slowest_active()) {
                (Some(mine), Some(slow)) => mine - slow <= skew / 2,
                _ => true,
            };
            if caught_up {
                self.set_paused(i, false);
            }
        }
        self.mark_idle();
        if self.cfg.kafka.state_per == StatePer::Partition {
            self.check_split_models();
        }
        let never = self.never.clone();
        self.publish_alerts(&never).await;
        if self.cfg.kafka.start_from == StartFrom::Checkpoint
            && self.last_checkpoint.elapsed() >= self.cfg.checkpoint.interval.0
        {
            self.checkpoint();
        }
        // the snapshot has readers only with the HTTP side or OTLP export on
        let observed = !self.cfg.http.listen.is_empty() || self.otel.is_some();
        if observed && self.last_snapshot.elapsed() >= Duration::from_secs(1) {
            self.publish_snapshot();
        }
        self.end_batches();
    }

    /// Ends the batches processed since the last tick: one `process` span
    /// and one `messaging.process.duration` observation per topic.
    fn end_batches(&mut self) {
        let Some(otel) = &self.otel else { return };
        // the poll of this tick: how many messages came, and how long the
        // loop waited for them (the tick less the time spent processing)
        let (start, wall) = std::mem::replace(
            &mut self.poll_started,
            (Instant::now(), std::time::SystemTime::now()),
        );
        let messages: u64 = self.batch.iter().map(|b| b.messages).sum();
        if messages > 0 {
            let busy: Duration = self.batch.iter().map(|b| b.busy).sum();
            otel.poll(
                messages,
                start.elapsed(),
                start.elapsed().saturating_sub(busy),
                wall,
            );
        }
        for (i, b) in self.batch.iter_mut().enumerate() {
            if b.messages == 0 {
                continue;
            }
            let topic = if i == 0 {
                &self.topics[0]
            } else {
                &self.topics[1]
            };
            if let Some(started) = b.started {
                otel.batch(topic, b.messages, b.busy, started, &b.links);
            }
            b.messages = 0;
            b.busy = Duration::ZERO;
            b.started = None;
            b.links.clear();
        }
    }

    /// Publishes what the HTTP side shows (not per event: once a second).
    fn publish_snapshot(&mut self) {
        self.last_snapshot = Instant::now();
        let mut s = Snapshot {
            taken_at_ms: now_ms(),
            // assigned partitions are restored (or rebuilt) in the same step
            ready: !self.assignment.is_empty(),
            group: self.cfg.kafka.group_id.clone(),
            consumed: vec![
                TopicCount {
                    topic: self.topics[0].clone(),
                    messages: self.consumed[0],
                },
                TopicCount {
                    topic: self.topics[1].clone(),
                    messages: self.consumed[1],
                },
            ],
            service: self.stats.clone(),
            recent_alerts: self.recent_alerts.iter().cloned().collect(),
            bad: crate::event::BadReason::ALL
                .iter()
                .map(|r| (r.as_str(), 0))
                .collect(),
            ..Snapshot::default()
        };
        for (i, t) in self.tasks.iter().enumerate() {
            t.engine.view_into(i, &mut s);
        }
        if let Ok(ends) = self.consumer.context().ends.lock() {
            s.lag = self
                .partitions
                .iter()
                .map(|p| {
                    let position = (p.last_offset + 1).max(p.start_offset);
                    let end = ends
                        .get(&(p.topic.clone(), p.partition))
                        .map_or(-1, |e| e.end);
                    PartitionLag {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        position,
                        end,
                        lag: if end >= 0 { (end - position).max(0) } else { 0 },
                    }
                })
                .collect();
        }
        self.snapshot.publish(s);
    }

    /// True when partitions are assigned and every one is idle at its end.
    fn all_at_end(&self) -> bool {
        !self.partitions.is_empty() && self.partitions.iter().all(|p| p.idle)
    }

    /// Marks partitions idle that have been silent for `idle_timeout` and
    /// have no backlog.
    fn mark_idle(&mut self) {
        let idle_after = self.cfg.kafka.idle_timeout.0;
        let ends = self.consumer.context().ends.clone();
        let Ok(ends) = ends.lock() else { return };
        for st in self.partitions.iter_mut() {
            if st.paused {
                st.last_message = Instant::now();
                continue;
            }
            if st.idle || st.last_message.elapsed() < idle_after {
                continue;
            }
            // silent, but is it at its end? A partition with a backlog that
            // has not delivered yet (just assigned, fetch not started) must
            // keep holding the watermark, or its events come in late. Unknown
            // ends (no statistics for it since it was assigned) hold too, up to
            // five idle timeouts: a partition without a leader cannot stall
            // the watermark forever.
            let end = ends
                .get(&(st.topic.clone(), st.partition))
                .filter(|e| e.seen >= st.assigned_at);
            // (fetched to the end and silent: only transaction markers,
            // never delivered, are left)
            let at_end = match end {
                Some(e) => e.end <= (st.last_offset + 1).max(e.low) || e.fetched >= e.end,
                None => st.last_message.elapsed() >= idle_after * 5,
            };
            if at_end {
                st.idle = true;
                if let Some(e) = end
                    && e.end > (st.last_offset + 1).max(st.end_offset)
                {
                    // read past the markers: the next checkpoint commits the end
                    st.end_offset = e.end;
                    self.tasks[st.task].since_checkpoint += 1;
                }
                // (routed: origins go idle only on their router's word, not
                // when the routed partition is quiet — a router that died
                // with its partitions half read is not done)
                self.tasks[st.task].engine.set_idle(st.source, true);
                tracing::info!(topic = %st.topic, partition = st.partition, "partition idle: no longer holds the watermark");
            }
        }
    }

    fn set_paused(&mut self, i: usize, paused: bool) {
        let st = &mut self.partitions[i];
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&st.topic, st.partition);
        let r = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match r {
            Ok(()) => {
                st.paused = paused;
                tracing::debug!(topic = %st.topic, partition = st.partition, paused, "partition flow control");
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %st.topic, partition = st.partition, "cannot pause or resume")
            }
        }
    }

    /// Publishes the engine's pending alerts; false when stopping cut it short.
    async fn publish_alerts(&mut self, stop: &watch::Receiver<bool>) -> bool {
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

    /// One message: decode, apply, publish alerts, store the offset.
    /// False when the service is stopping before the message was done.
    async fn handle(&mut self, msg: &BorrowedMessage<'_>, stop: &watch::Receiver<bool>) -> bool {
        if self.apply_assignment_changes() {
            // this message comes again from the start of its partition
            return true;
        }
        self.stats.messages += 1;
        let now = Instant::now();
        self.first_message.get_or_insert(now);
        self.last_message = Some(now);
        // a message may come before its assignment event was seen: then it registers here
        let pi = self.partition(msg.topic(), msg.partition());
        let st = &mut self.partitions[pi];
        st.last_message = now;
        if msg.offset() <= st.last_offset {
            // a redelivery of a message this engine has already applied
            // (librdkafka re-fetching after a pause or an error): applying
            // it again would count it twice
            self.stats.redelivered += 1;
            return true;
        }
        st.last_offset = msg.offset();
        let woke = st.idle;
        let (task, source) = (st.task, st.source);
        self.tasks[task].since_checkpoint += 1;
        let source = if self.cfg.kafka.routed {
            let (source, marker) = self.origin_source(task, msg);
            if marker {
                // the router's word that an input partition is idle: no event
                self.stats.idle_markers += 1;
                if let Err(e) = self.consumer.store_offset_from_message(msg) {
                    tracing::warn!(error = %e, "cannot store offset");
                }
                return true;
            }
            source
        } else {
            source
        };
        if woke {
            // traffic is back: every idle partition holds the watermark again
            // until it delivers or stays silent for idle_timeout once more, so
            // the first partition to wake cannot run ahead of the others
            tracing::info!(
                topic = msg.topic(),
                partition = msg.partition(),
                "partition active again"
            );
            for p in self
                .partitions
                .iter_mut()
                .filter(|p| p.idle && p.task == task)
            {
                p.idle = false;
                p.last_message = now;
                self.tasks[task].engine.set_idle(p.source, false);
            }
        }
        let is_predictions = msg.topic() == self.topics[0];
        self.consumed[usize::from(!is_predictions)] += 1;
        let decoder = if is_predictions {
            &mut self.predictions
        } else {
            &mut self.outcomes
        };
        let engine = &mut self.tasks[task].engine;
        let late_before = engine.stats.late;
        let evaluations_before = engine.stats.evaluations;
        if self.otel.is_some() {
            let b = &mut self.batch[usize::from(!is_predictions)];
            b.messages += 1;
            if b.started.is_none() {
                b.started = Some(std::time::SystemTime::now());
            }
            // producers' trace contexts from the batch's first messages only:
            // reading headers is a librdkafka call, not free per message
            if b.messages <= 64
                && b.links.len() < telemetry::otel::MAX_LINKS
                && let Some(h) = msg.headers()
            {
                for hd in h.iter() {
                    if hd.key == "traceparent"
                        && let Some(c) = hd.value.and_then(telemetry::otel::parse_traceparent)
                    {
                        b.links.push(c);
                    }
                }
            }
        }
        let result = decoder.decode(msg.payload()).and_then(|ev| {
            let r = engine.apply_from(&ev, source);
            if engine.stats.late > late_before && engine.stats.late <= 20 {
                // the first few, for the operator: where late events come from
                tracing::warn!(
                    topic = msg.topic(),
                    partition = msg.partition(),
                    offset = msg.offset(),
                    event_time = ev.event_time(),
                    watermark = engine.watermark(),
                    "late event: behind the watermark, counted and not applied"
                );
            }
            r
        });
        if let Some(o) = &self.otel {
            let took = now.elapsed();
            self.batch[usize::from(!is_predictions)].busy += took;
            let evaluations = engine.stats.evaluations - evaluations_before;
            if evaluations > 0 {
                let started = std::time::SystemTime::now() - took;
                o.evaluate(engine.watermark().unwrap_or(0), evaluations, took, started);
            }
        }
        if let Err(bad) = result {
            engine.stats.count_bad(bad.reason);
            if !self.dead_letter(msg, &bad).await {
                return false;
            }
        }
        if !self.publish_alerts(stop).await {
            return false;
        }
        // flow control: a partition far ahead of the slowest waits for it
        // (routed: a routed partition mixes origins; the routers align them)
        let engine = &self.tasks[task].engine;
        if !self.cfg.kafka.routed
            && let (Some(mine), Some(slow)) = (engine.source_max(source), engine.slowest_active())
            && mine - slow > self.cfg.kafka.max_skew.as_millis()
            && !self.partitions[pi].paused
        {
            self.set_paused(pi, true);
        }
        if let Err(e) = self.consumer.store_offset_from_message(msg) {
            tracing::warn!(error = %e, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), "cannot store offset");
        }
        true
    }

    /// Sends a bad message to the dead-letter topic unchanged, with headers.
    async fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> bool {
        self.stats.dead_lettered += 1;
        let headers = bad_message(self.stats.dead_lettered, msg, bad);
        let Some(p) = &self.dlq else { return true };
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut record = FutureRecord::to(&self.cfg.kafka.dlq_topic).headers(headers.clone());
            if let Some(k) = msg.key() {
                record = record.key(k);
            }
            if let Some(v) = msg.payload() {
                record = record.payload(v);
            }
            match p.send(record, rdkafka::util::Timeout::Never).await {
                Ok(_) => return true,
                Err((e, _)) => {
                    self.stats.dlq_failures += 1;
                    tracing::warn!(error = %e, "dead-letter delivery failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
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
            alerts = self.stats.alerts_published,
            late = engine.late,
            redelivered = self.stats.redelivered,
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

/// Reports a bad message (the first 100 of a run are logged, the `n`-th
/// here) and gives the headers of its dead letter: where it came from and why.
pub(crate) fn bad_message(n: u64, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> OwnedHeaders {
    if n <= 100 {
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            reason = bad.reason.as_str(),
            error = %bad.message,
            "bad message"
        );
    }
    let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
    OwnedHeaders::new()
        .insert(Header {
            key: "dlq.source.topic",
            value: Some(msg.topic()),
        })
        .insert(Header {
            key: "dlq.source.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "dlq.source.offset",
            value: Some(&offset),
        })
        .insert(Header {
            key: "dlq.error.class",
            value: Some(bad.reason.as_str()),
        })
        .insert(Header {
            key: "dlq.error.message",
            value: Some(&bad.message),
        })
}

/// An engine for the service: predictions wait for outcomes only when an
/// outcomes topic is consumed.
fn new_engine(cfg: &Config, baselines: &HashMap<String, Baseline>) -> Engine {
    let mut e = Engine::with_baselines(cfg.clone(), baselines.clone());
    e.expect_outcomes(!cfg.kafka.outcomes_topic.is_empty());
    e
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A watch channel that turns true on SIGINT or SIGTERM.
pub fn stop_on_signals() -> watch::Receiver<bool> {
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
    });
    rx
}
