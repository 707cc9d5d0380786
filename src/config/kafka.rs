//! The Kafka side of the config: `[kafka]` (topics, group, encodings,
//! librdkafka pass-through), `[checkpoint]`, `[route]`, and which keys are
//! secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// `driftline route`, the first stage of scaling out: re-keys the input
/// topics by model id into `predictions_topic` and `outcomes_topic`, so that
/// `driftline run` with `kafka.state_per = "partition"` and `kafka.routed`
/// sees every event of a model on one partition however the producers keyed
/// them. Exactly once: each batch of routed records is a Kafka transaction
/// that also commits the input offsets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Output topics, keyed by `model_id`; both with the same partition count.
    pub predictions_topic: String,
    pub outcomes_topic: String,
    /// Consumer group of the routers; empty: `<kafka.group_id>-route`.
    pub group_id: String,
    /// Transactional id of this router, stable across its restarts (a
    /// restart then aborts the transaction the last run left open at once);
    /// empty: `<group>-<host name>`.
    pub transactional_id: String,
    /// Wall clock between transaction commits (records become visible to
    /// `read_committed` readers at a commit).
    pub commit_interval: HumanDuration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            predictions_topic: "driftline-predictions-by-model".into(),
            outcomes_topic: "driftline-outcomes-by-model".into(),
            group_id: String::new(),
            transactional_id: String::new(),
            commit_interval: HumanDuration(Duration::from_millis(200)),
        }
    }
}

/// Checkpoints of the service's state and the offsets it covers
/// (`kafka.start_from = "checkpoint"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Where checkpoints are kept: files in `dir`, or the compacted `topic`.
    pub store: CheckpointStore,
    /// Local directory of the checkpoint files (created when missing).
    pub dir: String,
    /// Compacted topic of the checkpoints with `store = "kafka"` (created,
    /// compacted and with one partition, when missing).
    pub topic: String,
    /// Wall-clock time between checkpoints; offsets are committed after each.
    pub interval: HumanDuration,
}

/// Where checkpoints are kept.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointStore {
    /// Files in a local directory: state survives restarts on this machine.
    Dir,
    /// A compacted Kafka topic: state follows partitions to any machine.
    Kafka,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            store: CheckpointStore::Dir,
            dir: "checkpoints".into(),
            topic: "driftline-checkpoints".into(),
            interval: HumanDuration::secs(10),
        }
    }
}

/// How event values are encoded on Kafka.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Magic byte 0, 4-byte big-endian schema id, Avro binary.
    Confluent,
    /// Avro binary written with the schema in `schemas/`.
    Avro,
    Json,
}

/// How alerts are encoded on the alert topic.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertEncoding {
    /// Avro binary of `schemas/alert.avsc`.
    Avro,
    Json,
}

/// What one unit of state (an engine, and one checkpoint) covers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatePer {
    /// Every partition assigned to this member feeds one engine: right
    /// whatever the topics are keyed by. The checkpoint belongs to the exact
    /// set of partitions; a member given another set reads it from the start.
    Member,
    /// One engine per partition number (partition p of the predictions and
    /// the outcomes topic together, as a Kafka Streams task): the state and
    /// checkpoint of a partition follow it from member to member. Needs each
    /// model's events on one partition number (topics keyed by `model_id`
    /// with the same partition count); the range assignor keeps partition p
    /// of both topics on one member.
    Partition,
}

/// Where a newly assigned partition is read from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// Restore the checkpoint of the assigned partitions and seek to its
    /// offsets; without one, read them from their start. Offsets are
    /// committed only once a checkpoint covers them.
    Checkpoint,
    /// Re-read every partition from its start to rebuild the windows on
    /// every assignment; offsets are stored after apply but not committed.
    Earliest,
    /// Resume at the group's committed offsets with fresh windows; stored
    /// offsets are committed every 5 s, on revoke and at shutdown.
    Committed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub group_id: String,
    pub predictions_topic: String,
    /// Empty: outcomes are not consumed.
    pub outcomes_topic: String,
    pub alerts_topic: String,
    /// Incident events (one per cause; key = model id; `alert_encoding`);
    /// empty: not published.
    pub incidents_topic: String,
    /// Action events (release decisions, retrain requests; key = model id;
    /// `alert_encoding`); empty: not published.
    pub actions_topic: String,
    /// Dead-letter topic for messages that cannot be decoded or validated; empty: count and skip.
    pub dlq_topic: String,
    /// Control events (JSON: feedback on incidents), read whole by every
    /// member at every start; empty: no control channel.
    pub control_topic: String,
    pub encoding: Encoding,
    pub alert_encoding: AlertEncoding,
    /// Schema Registry resolving Confluent schema ids; empty: `schemas/` is the writer schema.
    pub schema_registry_url: String,
    /// Without a registry: the schema ids accepted (empty: any id).
    pub local_schema_ids: Vec<u32>,
    pub start_from: StartFrom,
    /// What one unit of state and checkpoint covers: the member's whole
    /// assignment, or one partition number.
    pub state_per: StatePer,
    /// The topics were written by `driftline route`: each record names the
    /// partition it was first written to (header `driftline.origin`), and
    /// the watermark waits for the slowest of those, not of the routed
    /// partitions.
    pub routed: bool,
    /// A partition with no message for this long (wall clock) stops holding the watermark back.
    pub idle_timeout: HumanDuration,
    /// After SIGTERM/SIGINT, the longest the drain, final checkpoint and
    /// commit may take; past it the process exits with code 1 (what was not
    /// stored as handled is read again on restart).
    pub shutdown_timeout: HumanDuration,
    /// A partition more than this far ahead (event time) of the slowest is
    /// paused until it catches up: streams consumed at different paces (a
    /// backlog, a small outcomes topic) stay aligned, and the join buffers stay small.
    pub max_skew: HumanDuration,
    /// Extra librdkafka properties for every client (`security.protocol`, `sasl.*`, `ssl.*`, timeouts, …).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "driftline".into(),
            predictions_topic: "predictions".into(),
            outcomes_topic: "outcomes".into(),
            alerts_topic: "driftline-alerts".into(),
            incidents_topic: "driftline-incidents".into(),
            actions_topic: "driftline-actions".into(),
            dlq_topic: "driftline-dlq".into(),
            control_topic: "driftline-control".into(),
            encoding: Encoding::Confluent,
            alert_encoding: AlertEncoding::Avro,
            schema_registry_url: String::new(),
            local_schema_ids: Vec::new(),
            start_from: StartFrom::Checkpoint,
            state_per: StatePer::Member,
            routed: false,
            idle_timeout: HumanDuration::secs(5),
            shutdown_timeout: HumanDuration::secs(30),
            max_skew: HumanDuration::secs(7200),
            librdkafka: BTreeMap::new(),
        }
    }
}

/// Whether a librdkafka property holds a secret (never printed). By
/// pattern, so a misspelled secret key (`sasl.pasword`, `ssl.key.passwrd`)
/// is hidden too: separators dropped, any of a few stems anywhere.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    [
        "pass",
        "pasw",
        "pwd",
        "secre",
        "jaas",
        "token",
        "cred",
        "keypem",
        "keystore",
        "certificatepem",
        "private",
        "apikey",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// A URL with any user information replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}
