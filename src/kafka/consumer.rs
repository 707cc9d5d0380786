//! The service's consumer: one consumer group over the predictions and
//! outcomes topics, at-least-once.
//!
//! Auto offset store is off: the service stores a message's offset only
//! after its event is applied to the window store and the alerts it caused
//! are acknowledged (rust-rdkafka's `at_least_once` pattern). Rebalances are
//! reported to the service as events; a revoke commits stored offsets first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::config::{KafkaConfig, StartFrom, StatePer};

use super::client::{Logged, SetIfAbsent, client_config};

/// A change of the consumer's assignment, seen by the service loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Where a partition's log ends, as librdkafka last saw it (statistics
/// callback, every `statistics.interval.ms`; no broker round trip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEnd {
    /// First offset still in the log.
    pub low: i64,
    /// Offset the next produced message gets (last stable offset under
    /// `read_committed`): the partition has no backlog once read up to here.
    pub end: i64,
    /// Next offset librdkafka fetches: at or past `end`, everything up to
    /// the end has been fetched (transaction markers included, which are
    /// never delivered: a routed partition's last offset is one).
    pub fetched: i64,
    /// When the statistics were taken.
    pub seen: Instant,
}

/// Log ends per (topic, partition).
pub type PartitionEnds = Arc<Mutex<HashMap<(String, i32), PartitionEnd>>>;

/// Consumer callbacks: rebalances become [`Assignment`]s; a revoke commits
/// the offsets stored so far (when committing at all) before the partitions
/// go; statistics update the partitions' log ends.
pub struct Context {
    changes: Mutex<Vec<Assignment>>,
    /// `changes` is not empty: read per message without taking the lock.
    pending: AtomicBool,
    pub ends: PartitionEnds,
    commit: bool,
}

impl Context {
    fn push_change(&self, a: Assignment) {
        if let Ok(mut c) = self.changes.lock() {
            c.push(a);
            self.pending.store(true, Ordering::Release);
        }
    }

    /// Whether assignment changes wait to be taken (no lock taken).
    pub fn changes_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// The assignment changes since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<Assignment> {
        if !self.changes_pending() {
            return Vec::new();
        }
        match self.changes.lock() {
            Ok(mut c) => {
                self.pending.store(false, Ordering::Release);
                c.drain(..).collect()
            }
            Err(_) => Vec::new(),
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        Logged.log(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        let seen = Instant::now();
        let Ok(mut ends) = self.ends.lock() else {
            return;
        };
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // partition -1 is librdkafka's internal "unassigned" queue
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if partition < 0 || end < 0 {
                    continue;
                }
                let e = PartitionEnd {
                    low: p.lo_offset.max(0),
                    end,
                    fetched: p.next_offset,
                    seen,
                };
                match ends.get_mut(&(topic.clone(), partition)) {
                    Some(old) => *old = e,
                    None => {
                        ends.insert((topic.clone(), partition), e);
                    }
                }
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if self.commit {
                // at-least-once: only offsets of applied events were stored
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::warn!(error = %e, "commit on revoke failed");
                }
            }
            self.push_change(Assignment::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.push_change(Assignment::Assigned(partitions(tpl)));
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

/// The consumer, subscribed to the configured topics.
pub fn consumer(k: &KafkaConfig) -> KafkaResult<StreamConsumer<Context>> {
    let commit = k.start_from == StartFrom::Committed;
    let mut c = client_config(k);
    c.set("group.id", &k.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", if commit { "true" } else { "false" })
        .set("auto.commit.interval.ms", "5000")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // bounded buffering: a consumer far behind does not balloon
        .set_if_absent("queued.max.messages.kbytes", "65536")
        // once that bound is reached librdkafka waits fetch.queue.backoff.ms
        // (default 1 s) before it fetches again, and the queue ran dry:
        // 115k events/s with the default, 250k with 100 ms (benches/kafka.sh)
        .set_if_absent("fetch.queue.backoff.ms", "100")
        .set_if_absent("session.timeout.ms", "10000")
        // log ends per partition: a partition is idle only once it has no backlog
        .set_if_absent("statistics.interval.ms", "1000");
    if k.state_per == StatePer::Partition {
        // partition p of the predictions and of the outcomes topic to the
        // same member: one task's state is read by one member
        c.set_if_absent("partition.assignment.strategy", "range");
        // fetched a partition's 64 KiB at a time (the default is 1 MiB,
        // ~5,000 events): a batch then holds several partitions' messages,
        // whose tasks apply on their own workers (`service::apart`)
        c.set_if_absent("max.partition.fetch.bytes", "65536");
    }
    let consumer: StreamConsumer<Context> = c.create_with_context(Context {
        changes: Mutex::default(),
        pending: AtomicBool::new(false),
        ends: Arc::default(),
        commit,
    })?;
    let mut topics = vec![k.predictions_topic.as_str()];
    if !k.outcomes_topic.is_empty() {
        topics.push(k.outcomes_topic.as_str());
    }
    consumer.subscribe(&topics)?;
    Ok(consumer)
}
