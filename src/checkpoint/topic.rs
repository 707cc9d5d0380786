//! Checkpoints in a compacted Kafka topic (`checkpoint.store = "kafka"`),
//! so that a task's state follows its partitions to a member on another
//! machine — the local directory of a pod rescheduled elsewhere is gone.
//!
//! A checkpoint is the same bytes as a checkpoint file (header, checksum,
//! postcard body), cut into chunks of [`CHUNK`] bytes (under Kafka's default
//! 1 MB message limit). The topic has two partitions, and per checkpoint
//! name (`<group>/<hash of the task's partitions>`):
//!
//! ```text
//! partition 0  key <name>/c<slot>/<i>   chunk i of the checkpoint in slot 0 or 1
//! partition 1  key <name>               manifest: postcard of Manifest
//!                                       {current slot, each slot's chunk offsets}
//! ```
//!
//! A write fills the slot the manifest does *not* point at, waits until
//! every chunk is acknowledged (idempotent producer, acks=all; the
//! acknowledgements give the chunks' offsets), deletes (tombstones) that
//! slot's chunks past the new count, and only then writes the manifest
//! naming it: a crash mid-write leaves the manifest on the previous,
//! complete slot — the topic's `.prev`. A read scans the small manifest
//! partition, then fetches the chunks at the manifest's offsets (so a
//! restore does not read every checkpoint ever written that compaction has
//! not removed yet) and checks the assembled bytes like a file (magic,
//! version, length, CRC-32, config fingerprint, and each chunk's key); a
//! damaged current slot falls back to the other. Compaction keeps the newest
//! record per key: two checkpoints per name once the cleaner has run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{Body, CheckpointError, decode};
use crate::config::Config;

/// Bytes per chunk record.
pub const CHUNK: usize = 512 * 1024;

/// Topic settings when driftline creates the topic: compacted, and
/// segments small enough that the cleaner gets to them.
pub const TOPIC_CONFIG: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.bytes", "104857600"),
    ("segment.ms", "600000"),
    ("min.cleanable.dirty.ratio", "0.1"),
];

/// Where a name's checkpoints are: the slot the newest is in, and the
/// offsets (in partition 0) of each slot's chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    current: u8,
    slots: [Vec<i64>; 2],
}

const CHUNKS: i32 = 0;
const MANIFESTS: i32 = 1;

/// Deliveries of the records being written: (index, offset) of each
/// acknowledged chunk, and the first failure.
#[derive(Default)]
pub struct Deliveries {
    acked: Mutex<Vec<(usize, i64)>>,
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The chunk's index (usize::MAX: not a chunk).
    type DeliveryOpaque = Box<usize>;
    fn delivery(&self, r: &DeliveryResult<'_>, index: Box<usize>) {
        match r {
            Ok(m) => {
                if *index != usize::MAX
                    && let Ok(mut a) = self.acked.lock()
                {
                    a.push((*index, m.offset()));
                }
            }
            Err((e, _)) => {
                if let Ok(mut f) = self.failed.lock() {
                    f.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

pub struct TopicStore {
    topic: String,
    client: ClientConfig,
    producer: BaseProducer<Deliveries>,
    /// The manifest of every name this store has read or written.
    manifests: HashMap<String, Manifest>,
}

impl TopicStore {
    /// A store on `topic` with the service's client settings (`client`:
    /// bootstrap servers and the `[kafka.librdkafka]` pass-through).
    pub fn new(topic: &str, client: ClientConfig) -> Result<TopicStore, CheckpointError> {
        let mut pc = client.clone();
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.max.bytes", "1000000")
            .remove("statistics.interval.ms");
        let producer =
            pc.create_with_context(Deliveries::default())
                .map_err(|e| CheckpointError::Io {
                    path: PathBuf::from(topic),
                    source: std::io::Error::other(format!("checkpoint producer: {e}")),
                })?;
        Ok(TopicStore {
            topic: topic.to_string(),
            client,
            producer,
            manifests: HashMap::new(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn at(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.topic))
    }

    fn failed(&self, name: &str, what: String) -> CheckpointError {
        CheckpointError::Io {
            path: self.at(name),
            source: std::io::Error::other(what),
        }
    }

    /// Sends the records queued so far and waits for every acknowledgement.
    fn flush(&self, name: &str) -> Result<(), CheckpointError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| self.failed(name, format!("not acknowledged: {e}")))?;
        let failed = self
            .producer
            .context()
            .failed
            .lock()
            .ok()
            .and_then(|mut f| f.take());
        match failed {
            Some(e) => Err(self.failed(name, format!("delivery failed: {e}"))),
            None => Ok(()),
        }
    }

    fn send(
        &self,
        partition: i32,
        key: &str,
        payload: Option<&[u8]>,
        index: usize,
    ) -> Result<(), CheckpointError> {
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(index))
            .key(key)
            .partition(partition);
        if let Some(p) = payload {
            record = record.payload(p);
        }
        crate::kafka::send::send_retrying(&self.producer, record)
            .map_err(|e| self.failed(key, e.to_string()))
    }

    /// Writes one checkpoint (the bytes of a checkpoint file) under `name`;
    /// Ok once it is durable in Kafka and the manifest names it.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let old = self.manifests.get(name).cloned().unwrap_or_default();
        let slot = if old.slots[0].is_empty() && old.slots[1].is_empty() {
            0
        } else {
            1 - old.current
        };
        if let Ok(mut a) = self.producer.context().acked.lock() {
            a.clear();
        }
        let n = bytes.len().div_ceil(CHUNK);
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            self.send(CHUNKS, &format!("{name}/c{slot}/{i}"), Some(chunk), i)?;
            self.producer.poll(Duration::ZERO);
        }
        // the slot's chunks past the new count, for the cleaner
        for i in n..old.slots[slot as usize].len() {
            self.send(CHUNKS, &format!("{name}/c{slot}/{i}"), None, usize::MAX)?;
        }
        self.flush(name)?;
        let mut offsets = vec![-1; n];
        if let Ok(a) = self.producer.context().acked.lock() {
            for &(i, o) in a.iter().filter(|(i, _)| *i < n) {
                offsets[i] = o;
            }
        }
        if offsets.contains(&-1) {
            return Err(self.failed(name, "a chunk was not acknowledged".into()));
        }
        let mut m = old;
        m.current = slot;
        m.slots[slot as usize] = offsets;
        let manifest = postcard::to_allocvec(&m).map_err(|e| self.failed(name, e.to_string()))?;
        self.send(MANIFESTS, name, Some(&manifest), usize::MAX)?;
        self.flush(name)?;
        self.manifests.insert(name.to_string(), m);
        Ok(())
    }

    fn consumer(&self) -> Result<BaseConsumer, CheckpointError> {
        let mut cc = self.client.clone();
        cc.set("group.id", "driftline-checkpoint-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .remove("statistics.interval.ms");
        cc.create()
            .map_err(|e| self.failed("(reader)", e.to_string()))
    }

    /// Reads `partition` from `from` up to (not including) `until` (None:
    /// its end), handing each record to `each`.
    fn read_range(
        &self,
        consumer: &BaseConsumer,
        partition: i32,
        from: Offset,
        until: Option<i64>,
        mut each: impl FnMut(i64, &str, Option<&[u8]>),
    ) -> Result<(), CheckpointError> {
        let err = |what: String| self.failed(&format!("partition {partition}"), what);
        let (low, high) = match consumer.fetch_watermarks(
            &self.topic,
            partition,
            Duration::from_secs(30),
        ) {
            Ok(w) => w,
            Err(rdkafka::error::KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )) if partition == MANIFESTS => {
                return Err(err(format!(
                    "no partition {MANIFESTS}: the checkpoint topic needs two partitions (chunks, manifests)"
                )));
            }
            Err(e) => return Err(err(format!("log end: {e}"))),
        };
        let end = until.unwrap_or(high).min(high);
        let start = match from {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        if start >= end {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(start))
            .map_err(|e| err(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut next = start;
        while next < end {
            if Instant::now() > deadline {
                return Err(err(format!("read stopped at offset {next} of {end}")));
            }
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.map_err(|e| err(e.to_string()))?;
            next = m.offset() + 1;
            if m.offset() >= end {
                break;
            }
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                each(m.offset(), key, m.payload());
            }
        }
        Ok(())
    }

    /// The newest manifest of every name `wanted` keeps, from the manifest partition.
    fn manifests(
        &self,
        consumer: &BaseConsumer,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<HashMap<String, Manifest>, CheckpointError> {
        let mut out = HashMap::new();
        self.read_range(
            consumer,
            MANIFESTS,
            Offset::Beginning,
            None,
            |_, key, payload| {
                if !wanted(key) {
                    return;
                }
                match payload.and_then(|p| postcard::from_bytes::<Manifest>(p).ok()) {
                    Some(m) => {
                        out.insert(key.to_string(), m);
                    }
                    None => {
                        out.remove(key);
                    }
                }
            },
        )?;
        Ok(out)
    }

    /// The bytes of one slot: its chunks, fetched at their offsets, each
    /// checked to carry the key it should.
    fn slot_bytes(
        &self,
        consumer: &BaseConsumer,
        name: &str,
        slot: u8,
        offsets: &[i64],
    ) -> Result<Vec<u8>, CheckpointError> {
        let (Some(&first), Some(&last)) = (offsets.iter().min(), offsets.iter().max()) else {
            return Err(CheckpointError::Corrupt {
                path: self.at(name),
                what: format!("slot {slot} is empty"),
            });
        };
        let mut chunks: Vec<Option<Vec<u8>>> = vec![None; offsets.len()];
        let want: HashMap<i64, usize> = offsets.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        self.read_range(
            consumer,
            CHUNKS,
            Offset::Offset(first),
            Some(last + 1),
            |o, key, payload| {
                if let (Some(&i), Some(p)) = (want.get(&o), payload)
                    && key == format!("{name}/c{slot}/{i}")
                {
                    chunks[i] = Some(p.to_vec());
                }
            },
        )?;
        let mut out = Vec::new();
        for (i, c) in chunks.into_iter().enumerate() {
            match c {
                Some(c) => out.extend_from_slice(&c),
                None => {
                    return Err(CheckpointError::Corrupt {
                        path: self.at(name),
                        what: format!(
                            "chunk {i} of slot {slot} (offset {}) missing or replaced",
                            offsets[i]
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The newest valid checkpoint of a name: the manifest's slot, else the
    /// other one. (Body, its size in bytes.)
    fn assemble(
        &mut self,
        consumer: &BaseConsumer,
        name: &str,
        m: Manifest,
        cfg: &Config,
    ) -> Result<(Body, usize), CheckpointError> {
        let at = self.at(name);
        let read = |slot: u8| {
            self.slot_bytes(consumer, name, slot, &m.slots[slot as usize])
                .and_then(|b| decode(&at, &b, cfg).map(|body| (body, b.len())))
        };
        let other = 1 - m.current;
        let result = match read(m.current) {
            Ok(b) => Ok(b),
            Err(e) if !m.slots[other as usize].is_empty() => match read(other) {
                Ok(b) => {
                    tracing::warn!(error = %e, "newest checkpoint unreadable: using the previous one");
                    // the next write goes over the damaged slot, not the good one
                    let mut m = m.clone();
                    m.current = other;
                    self.manifests.insert(name.to_string(), m);
                    return Ok(b);
                }
                Err(_) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.manifests.insert(name.to_string(), m);
        result
    }

    /// Reads the checkpoints named `names` (one read of the manifests).
    pub fn read_many(
        &mut self,
        names: &[String],
        cfg: &Config,
    ) -> Vec<Result<Option<Body>, CheckpointError>> {
        let found = self.consumer().and_then(|c| {
            self.manifests(&c, |k| names.iter().any(|n| n == k))
                .map(|m| (c, m))
        });
        let (consumer, manifests) = match found {
            Ok(x) => x,
            Err(e) => {
                let msg = e.to_string();
                return names
                    .iter()
                    .map(|n| Err(self.failed(n, msg.clone())))
                    .collect();
            }
        };
        names
            .iter()
            .map(|n| match manifests.get(n) {
                Some(m) => self
                    .assemble(&consumer, n, m.clone(), cfg)
                    .map(|(b, _)| Some(b)),
                None => Ok(None),
            })
            .collect()
    }

    /// Every checkpoint of `group` in the topic: (name, body and size, or error).
    #[allow(clippy::type_complexity)]
    pub fn list(
        &mut self,
        group: &str,
        cfg: &Config,
    ) -> Result<Vec<(String, Result<Option<(Body, usize)>, CheckpointError>)>, CheckpointError>
    {
        let prefix = format!("{group}/");
        let consumer = self.consumer()?;
        let manifests = self.manifests(&consumer, |k| {
            k.strip_prefix(&prefix).is_some_and(|h| h.len() == 16)
        })?;
        let mut names: Vec<String> = manifests.keys().cloned().collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| {
                let r = self
                    .assemble(&consumer, &n, manifests[&n].clone(), cfg)
                    .map(Some);
                (n, r)
            })
            .collect())
    }
}

/// Creates the topic (compacted, two partitions: chunks and manifests, the
/// brokers' default replication) unless it exists.
pub async fn ensure_topic(topic: &str, client: &ClientConfig) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = client.create().map_err(|e| e.to_string())?;
    let mut t = NewTopic::new(topic, 2, TopicReplication::Fixed(-1));
    for (k, v) in TOPIC_CONFIG {
        t = t.set(k, v);
    }
    let r = admin
        .create_topics(
            &[t],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| e.to_string())?;
    match r.into_iter().next() {
        Some(Ok(_)) => {
            tracing::info!(topic, "checkpoint topic created (compacted)");
            Ok(())
        }
        Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(()),
        Some(Err((_, code))) => Err(code.to_string()),
    }
}
