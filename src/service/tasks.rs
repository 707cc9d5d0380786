//! Units of state and what they read. A task is an engine and the
//! partitions its checkpoint covers: the member's whole assignment
//! (`state_per = "member"`) or one partition number of every consumed topic
//! (`"partition"`). Each partition is a watermark source of its task's
//! engine; with `kafka.routed`, each input partition a routed record came
//! from (its origin) is one instead.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::config::StatePer;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::kafka::{IDLE_HEADER, ORIGIN_HEADER, kafka_err};

use super::{Service, new_engine};

/// One unit of state: an engine and the partitions it reads, checkpointed
/// together. `state_per = "member"`: one task holding every assigned
/// partition; `"partition"`: one task per partition number.
pub(super) struct Task {
    /// The partitions its checkpoint covers, sorted: the checkpoint's name.
    pub(super) key: Vec<(String, i32)>,
    pub(super) engine: Engine,
    /// Messages applied since its last checkpoint.
    pub(super) since_checkpoint: u64,
    /// `kafka.routed`: the partitions routed records came from, each an
    /// engine source (the watermark waits for the slowest origin).
    pub(super) origins: Vec<Origin>,
}

/// A partition routed records came from.
pub(super) struct Origin {
    /// `<input topic>/<partition>` (header `driftline.origin`).
    pub(super) name: String,
    /// The routed partition (index in `Service::partitions` is not stable:
    /// topic and partition) its records arrive on.
    pub(super) via: (String, i32),
    pub(super) source: usize,
    pub(super) idle: bool,
}

pub(super) struct PartitionState {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Index of its task, and its source (watermark input) in the task's engine.
    pub(super) task: usize,
    pub(super) source: usize,
    pub(super) last_message: Instant,
    /// When the partition was (re)registered: older log-end statistics do not count.
    pub(super) assigned_at: Instant,
    pub(super) idle: bool,
    /// Paused for being too far ahead of the slowest partition.
    pub(super) paused: bool,
    /// Offset of the last message handled (-1 before any).
    pub(super) last_offset: i64,
    /// Where reading started (a checkpoint's offset, or 0).
    pub(super) start_offset: i64,
    /// Read to this offset: past the last message when only transaction
    /// markers follow it (set once the partition is idle at its end).
    pub(super) end_offset: i64,
    /// Times its start was sought again because its first message lay past
    /// it (see `handle`).
    pub(super) reseeks: u8,
}

/// No engine source: a routed partition's events feed their origins'.
pub(super) const NO_SOURCE: usize = usize::MAX;

impl Service {
    /// The key of the member's one task: its whole assignment, sorted.
    pub(super) fn member_key(&self) -> Vec<(String, i32)> {
        let mut key = self.assignment.clone();
        key.sort();
        key
    }

    /// The partitions of a partition number's task: that partition of every
    /// consumed topic, sorted (the task's checkpoint name).
    pub(super) fn partition_key(&self, partition: i32) -> Vec<(String, i32)> {
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
    pub(super) fn tasks_of(
        &self,
        ps: &[(String, i32)],
    ) -> Vec<(Vec<(String, i32)>, Vec<(String, i32)>)> {
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
    pub(super) fn task_of(&mut self, partition: i32) -> usize {
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

    pub(super) fn push_task(&mut self, key: Vec<(String, i32)>, mut engine: Engine) -> usize {
        // the control events this member has read (idempotent to apply again)
        super::control::catch_up(&mut engine, &self.control_log);
        engine.set_workers(self.workers);
        self.tasks.push(Task {
            key,
            engine,
            since_checkpoint: 0,
            origins: Vec::new(),
        });
        self.tasks.len() - 1
    }

    /// Removes a task and the state of its partitions.
    pub(super) fn drop_task(&mut self, i: usize) {
        self.tasks.remove(i);
        self.partitions.retain(|p| p.task != i);
        for p in &mut self.partitions {
            if p.task > i {
                p.task -= 1;
            }
        }
    }

    /// Replaces the task of `key` (if any) by `engine`; its partitions' state goes.
    pub(super) fn replace_task(&mut self, key: Vec<(String, i32)>, engine: Engine) -> usize {
        if let Some(i) = self.tasks.iter().position(|t| t.key == key) {
            self.drop_task(i);
        }
        self.push_task(key, engine)
    }

    /// The index of a registered partition's state, if it is registered.
    pub(super) fn find_partition(&self, topic: &str, partition: i32) -> Option<usize> {
        self.partitions
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
    }

    /// The state of a partition, registered as a source of its task's
    /// engine on first sight.
    pub(super) fn partition(&mut self, topic: &str, partition: i32) -> usize {
        match self.find_partition(topic, partition) {
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
                    reseeks: 0,
                });
                let task = self.partitions.last().map_or(0, |p| p.task);
                self.ensure_origins(task);
                self.partitions.len() - 1
            }
        }
    }

    /// `kafka.routed`: every partition of the routers' input topics.
    pub(super) fn input_partitions(&self) -> Result<Vec<(String, usize)>> {
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
    pub(super) fn ensure_origins(&mut self, task: usize) {
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
    pub(super) fn origin_source(
        &mut self,
        task: usize,
        msg: &BorrowedMessage<'_>,
    ) -> (usize, bool) {
        let (origin, marker) = origin_headers(msg);
        let t = &mut self.tasks[task];
        let found =
            origin.and_then(|name| t.origins.iter_mut().find(|o| o.name.as_bytes() == name));
        if let Some(o) = found {
            if marker {
                // only where the origin's records travel: there the marker
                // comes after every one of them. The router announces an idle
                // input on every routed partition of both routed topics; read
                // on the other topic (often ahead, being lighter), it would
                // let the watermark pass records still queued on this one
                let (topic, partition) = &o.via;
                if !o.idle && topic == msg.topic() && *partition == msg.partition() {
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
    pub(super) fn check_split_models(&mut self) {
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
}

/// A routed message's origin (header `driftline.origin`), and whether it
/// is the router's idle marker for it.
pub(super) fn origin_headers<'m>(msg: &'m BorrowedMessage<'_>) -> (Option<&'m [u8]>, bool) {
    let (mut origin, mut marker) = (None, false);
    if let Some(h) = msg.headers() {
        for hd in h.iter() {
            if hd.key == ORIGIN_HEADER {
                origin = hd.value;
            } else if hd.key == IDLE_HEADER {
                marker = true;
            }
        }
    }
    (origin, marker)
}
