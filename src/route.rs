//! `driftline route`: the first stage of scaling out (DESIGN, "Scaling out
//! is Kafka's job"). Producers key inference events however suits them
//! (trace id, nothing); the monitor's state is per model. The router reads
//! the input topics in a consumer group of its own and writes every record
//! unchanged (value, key replaced by the model id, headers kept) to
//! `[route] predictions_topic` / `outcomes_topic`, adding the header
//! `driftline.origin = <input topic>/<partition>`. `driftline run` with
//! `kafka.state_per = "partition"` and `kafka.routed = true` on those topics
//! then has each model on one partition number, and tracks its watermark
//! per origin partition (a router far ahead on one input partition cannot
//! make another's events late).
//!
//! Exactly once: the records of a batch and the input offsets after it are
//! one Kafka transaction (`send_offsets_to_transaction` with the consumer
//! group's metadata), committed at the latest in the revoke callback, before
//! the partitions go: a commit after the revoke is accepted by the broker
//! (the member is still in the group) while the new owner routes the same
//! records again. A failed commit aborts the batch and the consumer goes
//! back to the batch's first offsets. Bad input is dead-lettered in the same
//! transaction. The router also keeps its input partitions aligned in event
//! time (`kafka.max_skew`) and announces idle ones with markers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::codec::StreamKind;
use crate::codec::confluent::ValueDecoder;
use crate::config::Config;
use crate::error::Result;
use crate::event::{BadEvent, Event};
use crate::kafka::client::Logged;
use crate::kafka::dead_letter::bad_message;
use crate::kafka::pacer::{Pace, Pacer, set_paused};
use crate::kafka::send::{degrade, send_retrying, too_large};
use crate::kafka::{IDLE_HEADER, ORIGIN_HEADER, client_config, kafka_err};

/// An input partition as the router sees it.
struct Part {
    topic: String,
    partition: i32,
    /// `<topic>/<partition>`: its records' origin header.
    origin: String,
    /// Newest event time routed from it.
    max: Option<i64>,
    last_message: Instant,
    paused: bool,
    idle: bool,
    /// When its idle markers were last sent.
    marked: Option<Instant>,
}

/// Counters of a router run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteStats {
    /// Wall time from the first record routed to the last.
    pub busy: Duration,
    pub routed: u64,
    pub dead_lettered: u64,
    /// Dead letters delivered with their value cut or left out (too large).
    pub dlq_cut: u64,
    /// Dead letters not delivered at all (too large even without a value).
    pub dlq_undeliverable: u64,
    pub transactions: u64,
    pub aborted: u64,
}

/// The router's consumer group.
pub fn group(cfg: &Config) -> String {
    if cfg.route.group_id.is_empty() {
        format!("{}-route", cfg.kafka.group_id)
    } else {
        cfg.route.group_id.clone()
    }
}

/// The open transaction: what it covers. Shared with the consumer's
/// rebalance callback, which commits it before partitions are revoked (a
/// commit after the revoke would be accepted by the broker — the member is
/// still in the group — while the partitions' new owner routes the same
/// records again).
#[derive(Default)]
struct Txn {
    /// Per input partition in it: (topic, partition, first offset, next offset).
    batch: Batch,
    /// Idle markers sent in it.
    marked: bool,
    transactions: u64,
    aborted: u64,
}

impl Txn {
    fn is_open(&self) -> bool {
        !self.batch.is_empty() || self.marked
    }
}

type Batch = Vec<(String, i32, i64, i64)>;

/// Commits the open transaction with the input offsets after it and begins
/// the next one. When it cannot be committed it is aborted, and its batch is
/// returned: those records must be routed again.
fn commit_txn<C: ConsumerContext>(
    producer: &BaseProducer<Logged>,
    consumer: &BaseConsumer<C>,
    txn: &mut Txn,
) -> Result<Option<Batch>> {
    let mut offsets = TopicPartitionList::new();
    for (t, p, _, next) in &txn.batch {
        let _ = offsets.add_partition_offset(t, *p, Offset::Offset(*next));
    }
    let Some(meta) = consumer.group_metadata() else {
        return Err(kafka_err("route", "no consumer group metadata"));
    };
    let sent = if offsets.count() > 0 {
        producer.send_offsets_to_transaction(&offsets, &meta, Duration::from_secs(30))
    } else {
        Ok(())
    };
    let result = sent.and_then(|()| producer.commit_transaction(Duration::from_secs(60)));
    let batch = std::mem::take(&mut txn.batch);
    txn.marked = false;
    let aborted = match result {
        Ok(()) => {
            txn.transactions += 1;
            None
        }
        Err(e) => {
            let abortable = matches!(&e, rdkafka::error::KafkaError::Transaction(t) if t.txn_requires_abort() || t.is_retriable());
            if !abortable {
                return Err(kafka_err("route commit_transaction", e));
            }
            tracing::warn!(error = %e, "transaction not committed: aborting it and routing its records again");
            producer
                .abort_transaction(Duration::from_secs(60))
                .map_err(|e| kafka_err("route abort_transaction", e))?;
            txn.aborted += 1;
            Some(batch)
        }
    };
    producer
        .begin_transaction()
        .map_err(|e| kafka_err("begin_transaction", e))?;
    Ok(aborted)
}

/// The router consumer's callbacks: logs, and the commit before a revoke.
struct RouteContext {
    producer: Arc<BaseProducer<Logged>>,
    txn: Arc<Mutex<Txn>>,
}

impl ClientContext for RouteContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        Logged.log(level, fac, message);
    }
}

impl ConsumerContext for RouteContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance
            && let Ok(mut t) = self.txn.lock()
            && t.is_open()
        {
            // aborted: nothing to rewind, the partitions' next owner
            // (maybe this router again) starts at the committed offsets
            if let Err(e) = commit_txn(&self.producer, consumer, &mut t) {
                tracing::error!(error = %e, "cannot end the transaction before a revoke");
            }
        }
    }
}

pub struct Router {
    cfg: Config,
    consumer: Arc<BaseConsumer<RouteContext>>,
    producer: Arc<BaseProducer<Logged>>,
    predictions: ValueDecoder,
    outcomes: ValueDecoder,
    txn: Arc<Mutex<Txn>>,
    batch_started: Instant,
    /// When the first record was routed.
    first: Option<Instant>,
    /// The assigned input partitions.
    parts: Vec<Part>,
    /// The oldest event time read from any partition (flow control's
    /// reference while one has delivered nothing yet).
    min_seen: Option<i64>,
    /// Partition counts of the routed topics (predictions, outcomes).
    routed_partitions: [i32; 2],
    pub stats: RouteStats,
    /// Stop once every assigned partition is read to its end.
    pub until_end: bool,
}

impl Router {
    pub fn new(cfg: Config) -> Result<Router> {
        let group = group(&cfg);
        let mut cc = client_config(&cfg.kafka);
        cc.set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false");
        let tid = if cfg.route.transactional_id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "host".into());
            format!("{group}-{host}")
        } else {
            cfg.route.transactional_id.clone()
        };
        let mut pc = client_config(&cfg.kafka);
        pc.set("transactional.id", &tid)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            // a router that died with a transaction open holds back
            // read_committed readers until it is aborted: at the latest
            // after this, at once when it restarts with the same id
            .set("transaction.timeout.ms", "30000");
        let producer: BaseProducer<Logged> = pc
            .create_with_context(Logged)
            .map_err(|e| kafka_err("route producer", e))?;
        producer
            .init_transactions(Duration::from_secs(60))
            .map_err(|e| kafka_err("route init_transactions", e))?;
        let producer = Arc::new(producer);
        let txn = Arc::new(Mutex::new(Txn::default()));
        let consumer: BaseConsumer<RouteContext> = cc
            .create_with_context(RouteContext {
                producer: producer.clone(),
                txn: txn.clone(),
            })
            .map_err(|e| kafka_err("route consumer", e))?;
        let mut topics = vec![cfg.kafka.predictions_topic.as_str()];
        if !cfg.kafka.outcomes_topic.is_empty() {
            topics.push(cfg.kafka.outcomes_topic.as_str());
        }
        consumer
            .subscribe(&topics)
            .map_err(|e| kafka_err("route subscribe", e))?;
        tracing::info!(group = %group, transactional_id = %tid, "router started");
        Ok(Router {
            predictions: ValueDecoder::new(StreamKind::Predictions, &cfg.kafka)?,
            outcomes: ValueDecoder::new(StreamKind::Outcomes, &cfg.kafka)?,
            cfg,
            consumer: Arc::new(consumer),
            producer,
            txn,
            batch_started: Instant::now(),
            first: None,
            parts: Vec::new(),
            min_seen: None,
            routed_partitions: [0, 0],
            stats: RouteStats::default(),
            until_end: false,
        })
    }

    /// Routes until `stop` turns true (or, with `until_end`, every assigned
    /// partition is read to its end); commits the open transaction first.
    pub fn run(&mut self, stop: watch::Receiver<bool>) -> Result<()> {
        for (i, topic) in [
            &self.cfg.route.predictions_topic,
            &self.cfg.route.outcomes_topic,
        ]
        .into_iter()
        .enumerate()
        {
            if i == 1 && self.cfg.kafka.outcomes_topic.is_empty() {
                continue;
            }
            let md = self
                .consumer
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(|e| kafka_err("routed topic metadata", e))?;
            let n = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
            if n == 0 {
                return Err(kafka_err(
                    "routed topic",
                    format!(
                        "{topic} does not exist (create it with as many partitions as the service's tasks)"
                    ),
                ));
            }
            self.routed_partitions[i] = n;
        }
        self.producer
            .begin_transaction()
            .map_err(|e| kafka_err("begin_transaction", e))?;
        let interval = self.cfg.route.commit_interval.0;
        let mut last_check = Instant::now();
        let mut last_housekeeping = Instant::now();
        let mut polled = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            let consumer = self.consumer.clone();
            // one clock reading per record (perf: the clock was 11 % of the router's time)
            let now = match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(msg)) => {
                    let now = Instant::now();
                    self.route(&msg, now)?;
                    now
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "route consumer error");
                    Instant::now()
                }
                None => Instant::now(),
            };
            // delivery reports: often enough to keep the queue short
            polled += 1;
            if polled.is_multiple_of(64) {
                self.producer.poll(Duration::ZERO);
            }
            if now.duration_since(last_housekeeping) >= Duration::from_millis(250) {
                last_housekeeping = now;
                self.producer.poll(Duration::ZERO);
                self.housekeeping()?;
            }
            if now.duration_since(self.batch_started) >= interval && self.txn_open() {
                self.commit()?;
            }
            if self.until_end && now.duration_since(last_check) >= Duration::from_secs(1) {
                last_check = now;
                // done: read to the end, the idle markers sent and committed
                let marked = !self.parts.is_empty()
                    && self.parts.iter().all(|p| p.idle && p.marked.is_some());
                // (the open transaction, with the markers, is committed below)
                if marked && self.at_end() {
                    tracing::info!("every assigned partition routed to its end: stopping");
                    break;
                }
            }
        }
        if self.txn_open() {
            self.commit()?;
        }
        if let Ok(t) = self.txn.lock() {
            self.stats.transactions = t.transactions;
            self.stats.aborted = t.aborted;
        }
        let _ = self.producer.abort_transaction(Duration::from_secs(10));
        let busy_s = self.stats.busy.as_secs_f64();
        tracing::info!(
            busy_s,
            events_per_s = if busy_s > 0.0 {
                (self.stats.routed as f64 / busy_s).round()
            } else {
                0.0
            },
            routed = self.stats.routed,
            dead_lettered = self.stats.dead_lettered,
            transactions = self.stats.transactions,
            aborted = self.stats.aborted,
            "router stopped"
        );
        Ok(())
    }

    /// True when partitions are assigned and each one's committed position
    /// is its last stable offset.
    fn at_end(&self) -> bool {
        let Ok(assigned) = self.consumer.assignment() else {
            return false;
        };
        if assigned.count() == 0 {
            return false;
        }
        let Ok(pos) = self.consumer.position() else {
            return false;
        };
        let committed = self
            .consumer
            .committed_offsets(pos.clone(), Duration::from_secs(5))
            .ok();
        pos.elements().iter().all(|e| {
            let at = match e.offset() {
                Offset::Offset(at) => Some(at),
                _ => committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .and_then(|c| match c.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    }),
            };
            let Some(at) = at else {
                return false;
            };
            self.consumer
                .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5))
                .is_ok_and(|(_, high)| at >= high)
        })
    }

    fn send(
        &self,
        topic: &str,
        key: &[u8],
        msg: &BorrowedMessage<'_>,
        headers: OwnedHeaders,
    ) -> Result<()> {
        let mut record = BaseRecord::to(topic).key(key).headers(headers);
        if let Some(v) = msg.payload() {
            record = record.payload(v);
        }
        send_retrying(&self.producer, record).map_err(|e| kafka_err("route send", e))
    }

    /// One input record: re-keyed to its routed topic, or dead-lettered.
    fn route(&mut self, msg: &BorrowedMessage<'_>, now: Instant) -> Result<()> {
        let is_predictions = msg.topic() == self.cfg.kafka.predictions_topic;
        let pi = self.part(msg.topic(), msg.partition());
        let decoder = if is_predictions {
            &mut self.predictions
        } else {
            &mut self.outcomes
        };
        let mut headers = OwnedHeaders::new();
        if let Some(h) = msg.headers() {
            for hd in h.iter().filter(|h| h.key != ORIGIN_HEADER) {
                headers = headers.insert(Header {
                    key: hd.key,
                    value: hd.value,
                });
            }
        }
        headers = headers.insert(Header {
            key: ORIGIN_HEADER,
            value: Some(&self.parts[pi].origin),
        });
        let first = *self.first.get_or_insert(now);
        self.stats.busy = now - first;
        let mut event_time = None;
        match decoder.decode(msg.payload()) {
            Ok(ev) => {
                let model = match &ev {
                    Event::Prediction(p) => &p.model_id,
                    Event::Outcome(o) => &o.model_id,
                };
                let topic = if is_predictions {
                    &self.cfg.route.predictions_topic
                } else {
                    &self.cfg.route.outcomes_topic
                };
                self.send(topic, model.as_bytes(), msg, headers)?;
                self.stats.routed += 1;
                event_time = Some(ev.event_time());
            }
            Err(bad) => self.dead_letter(msg, &bad)?,
        }
        let Ok(mut txn) = self.txn.lock() else {
            return Err(kafka_err("route", "transaction state poisoned"));
        };
        if !txn.is_open() {
            self.batch_started = now;
        }
        let part = &mut self.parts[pi];
        part.last_message = now;
        if let Some(t) = event_time {
            part.max = Some(part.max.map_or(t, |m| m.max(t)));
            self.min_seen = Some(self.min_seen.map_or(t, |m| m.min(t)));
        }
        if part.idle {
            part.idle = false;
            part.marked = None;
        }
        let next = msg.offset() + 1;
        match txn
            .batch
            .iter_mut()
            .find(|b| b.1 == msg.partition() && b.0 == msg.topic())
        {
            Some(b) => b.3 = next,
            None => txn
                .batch
                .push((msg.topic().to_string(), msg.partition(), msg.offset(), next)),
        }
        Ok(())
    }

    /// The index of an input partition's state, created on first sight
    /// (a linear scan of a few partitions: no allocation per record).
    fn part(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self
            .parts
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
        {
            return i;
        }
        self.parts.push(Part {
            topic: topic.to_string(),
            partition,
            origin: format!("{topic}/{partition}"),
            max: None,
            last_message: Instant::now(),
            paused: false,
            idle: false,
            marked: None,
        });
        self.parts.len() - 1
    }

    fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, bad: &BadEvent) -> Result<()> {
        self.stats.dead_lettered += 1;
        let headers = bad_message(self.stats.dead_lettered, msg, bad);
        if self.cfg.kafka.dlq_topic.is_empty() {
            return Ok(());
        }
        // too large for the producer: its value cut, then left out (as the
        // service does); a dead letter never stops the router
        let key = msg.key().unwrap_or_default();
        for level in 0..3u8 {
            let (value, headers) = degrade(level, msg.payload(), &headers);
            let mut record = BaseRecord::to(&self.cfg.kafka.dlq_topic)
                .key(key)
                .headers(headers);
            if let Some(v) = value {
                record = record.payload(v);
            }
            match send_retrying(&self.producer, record) {
                Ok(()) => {
                    if level > 0 {
                        self.stats.dlq_cut += 1;
                    }
                    return Ok(());
                }
                Err(e) if too_large(&e) => {}
                Err(e) => return Err(kafka_err("route dead letter", e)),
            }
        }
        self.stats.dlq_undeliverable += 1;
        tracing::error!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            "dead letter undeliverable even without its value: counted and passed"
        );
        Ok(())
    }

    /// Flow control and idleness of the input partitions: one far ahead (in
    /// event time) of the slowest waits for it; one read to its end and
    /// silent for `kafka.idle_timeout` is announced idle to every routed
    /// partition (and again every idle timeout while it stays so).
    fn housekeeping(&mut self) -> Result<()> {
        let assigned: Vec<(String, i32)> = match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return Ok(()),
        };
        self.parts.retain(|p| {
            assigned
                .iter()
                .any(|(t, n)| *n == p.partition && *t == p.topic)
        });
        for (topic, partition) in assigned {
            if !self
                .parts
                .iter()
                .any(|p| p.partition == partition && p.topic == topic)
            {
                // librdkafka keeps a pause across a rebalance
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topic, partition);
                let _ = self.consumer.resume(&tpl);
                self.part(&topic, partition);
            }
        }
        let idle_after = self.cfg.kafka.idle_timeout.0;
        let positions = self.consumer.position().ok();
        let mut newly_idle = Vec::new();
        for p in self.parts.iter_mut() {
            let k = (p.topic.as_str(), p.partition);
            if p.idle || p.paused || p.last_message.elapsed() < idle_after {
                continue;
            }
            let at = positions.as_ref().and_then(|tpl| {
                tpl.find_partition(k.0, k.1).and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
            });
            // nothing read since the assignment: where it starts (the group's commit)
            let at = at.or_else(|| {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(k.0, k.1);
                self.consumer
                    .committed_offsets(tpl, Duration::from_secs(5))
                    .ok()
                    .and_then(|c| match c.elements().first().map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => Some(o),
                        _ => None,
                    })
            });
            let high = self
                .consumer
                .fetch_watermarks(k.0, k.1, Duration::from_secs(5))
                .map(|(_, h)| h)
                .ok();
            // never read (no position) counts as at its end when the log is empty
            let at_end = match (at, high) {
                (Some(a), Some(h)) => a >= h,
                (None, Some(h)) => h == 0,
                _ => false,
            };
            if at_end {
                p.idle = true;
                newly_idle.push(p.origin.clone());
            }
        }
        for origin in newly_idle {
            tracing::info!(partition = %origin, "input partition idle: announced to the routed partitions");
        }
        // idle markers, in the open transaction
        let due: Vec<usize> = (0..self.parts.len())
            .filter(|&i| {
                let p = &self.parts[i];
                p.idle && p.marked.is_none_or(|t| t.elapsed() >= idle_after)
            })
            .collect();
        for pi in due {
            let origin = &self.parts[pi].origin;
            for (i, topic) in [
                &self.cfg.route.predictions_topic,
                &self.cfg.route.outcomes_topic,
            ]
            .into_iter()
            .enumerate()
            {
                for q in 0..self.routed_partitions[i] {
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: ORIGIN_HEADER,
                            value: Some(origin),
                        })
                        .insert(Header {
                            key: IDLE_HEADER,
                            value: Some("1"),
                        });
                    let record: BaseRecord<'_, [u8], [u8]> =
                        BaseRecord::to(topic).partition(q).headers(headers);
                    send_retrying(&self.producer, record)
                        .map_err(|e| kafka_err("route idle marker", e))?;
                }
            }
            if let Ok(mut t) = self.txn.lock() {
                if !t.is_open() {
                    self.batch_started = Instant::now();
                }
                t.marked = true;
            }
            self.parts[pi].marked = Some(Instant::now());
        }
        // flow control over the active partitions
        let active: Vec<Option<i64>> = self
            .parts
            .iter()
            .filter(|p| !p.idle)
            .map(|p| p.max)
            .collect();
        // (one that has delivered nothing yet holds the others at the oldest
        // time read, not released: see `Watermark::pace_reference`)
        let slowest = if active.is_empty() {
            None
        } else if active.contains(&None) {
            self.min_seen
        } else {
            active.into_iter().flatten().min()
        };
        let pacer = Pacer {
            max_skew_ms: self.cfg.kafka.max_skew.as_millis(),
        };
        for p in self.parts.iter_mut() {
            let pause = match pacer.pace(p.paused, p.max, slowest) {
                Pace::Keep => continue,
                Pace::Pause => true,
                Pace::Resume => false,
            };
            if set_paused(&*self.consumer, &p.topic, p.partition, pause).is_ok() {
                p.paused = pause;
                if pause || (p.max.is_some() && slowest.is_some()) {
                    p.last_message = Instant::now();
                }
            }
        }
        Ok(())
    }

    fn txn_open(&self) -> bool {
        self.txn.lock().is_ok_and(|t| t.is_open())
    }

    /// Commits the open transaction; when it had to be aborted, the
    /// consumer goes back to the start of its batch.
    fn commit(&mut self) -> Result<()> {
        let Ok(mut t) = self.txn.lock() else {
            return Err(kafka_err("route", "transaction state poisoned"));
        };
        if let Some(batch) = commit_txn(&self.producer, &self.consumer, &mut t)? {
            drop(t);
            for (topic, p, first, _) in batch {
                // partitions this router no longer owns cannot be sought: their new owner starts at the commit
                let _ =
                    self.consumer
                        .seek(&topic, p, Offset::Offset(first), Duration::from_secs(10));
            }
        }
        Ok(())
    }
}
