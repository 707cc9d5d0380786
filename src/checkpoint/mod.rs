//! Checkpoints: the engine's whole state and, with it, the next offset of
//! every partition that state covers, written together and read together
//! (as Flink does). Offsets are committed to Kafka only for positions a
//! durable checkpoint covers, and on assignment the consumer seeks to the
//! checkpoint's offsets, not the group's.
//!
//! # File format (version 10)
//!
//! ```text
//! offset  size  field
//! 0       8     magic "DLCKPT\r\n"
//! 8       4     format version, u32 little endian (10)
//! 12      4     flags, u32 little endian (0)
//! 16      8     body length in bytes, u64 little endian
//! 24      4     CRC-32 (IEEE) of the body, u32 little endian
//! 28      n     body: postcard encoding of [`Body`]
//! ```
//!
//! A file whose magic, version, length or checksum is wrong is rejected with
//! an error saying which; a checkpoint of another format version is never
//! read as this one (version 3 came with the rename to driftline and the
//! engine state's new bad-event reasons: no checkpoint of an older one
//! carries this magic; version 10, when an overall series' open buckets
//! began to hold only what its carrier slices do not, merged in as each
//! closes: `registry::Model::carrier_slots`). A checkpoint written under a
//! config that shapes state differently (`[window]`, `[series]`,
//! `[reference]`, `[join]`) is rejected too: its fingerprint differs.
//!
//! One file per consumer group and task (the set of partitions the state
//! covers: the member's assignment, or one partition number):
//! `<dir>/<group>-<hash of the set>.ckpt`, written as `.tmp`, fsynced,
//! renamed over the last one (which is kept as `.prev`), and the directory
//! fsynced. With `checkpoint.store = "kafka"` the same bytes go to a
//! compacted topic instead ([`topic`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{CheckpointStore, Config};

pub mod topic;

pub const MAGIC: &[u8; 8] = b"DLCKPT\r\n";
/// 8: closed buckets packed (`window::Closed`), quantiles as own bins.
/// 9: closed buckets' exemplar keys as gaps, high-tail ids by reference.
/// 10: an overall series' open buckets hold only the values outside its
/// carrier slices. 11: each series' count of values beside the series.
pub const FORMAT_VERSION: u32 = 11;
const HEADER: usize = 28;

/// A checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: not a driftline checkpoint (bad magic bytes)")]
    Magic { path: PathBuf },
    #[error(
        "checkpoint {path}: format version {found}, this build reads version {FORMAT_VERSION}; delete it to start over (the topics are then read from their start)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("checkpoint {path}: truncated or corrupt ({what})")]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "checkpoint {path}: written under a config that shapes state differently ([window], [series], [reference] or [join] changed); delete it to start over"
    )]
    Config { path: PathBuf },
}

/// The next offset to read of one partition the state covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// The engine source (watermark input) of this partition.
    pub source: u32,
}

/// A partition routed records came from (`kafka.routed`) and the engine
/// source that tracks its event time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginSource {
    /// `<input topic>/<partition>` (the `driftline.origin` header).
    pub origin: String,
    /// The routed partition its records arrive on.
    pub via_topic: String,
    pub via_partition: i32,
    pub source: u32,
}

/// What a checkpoint holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Body {
    pub written_at_ms: i64,
    pub crate_version: String,
    pub config_fingerprint: u64,
    pub group: String,
    pub offsets: Vec<PartitionOffset>,
    /// `Engine::save_state`.
    pub engine: Vec<u8>,
    /// `kafka.routed`: the input partitions routed records came from.
    pub origins: Vec<OriginSource>,
}

/// Fingerprint of the config sections that shape the engine's state.
pub fn config_fingerprint(cfg: &Config) -> u64 {
    let shaped = serde_json::to_string(&(&cfg.window, &cfg.series, &cfg.reference, &cfg.join))
        .unwrap_or_default();
    fnv1a(shaped.as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn file_safe(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A hash naming a set of partitions, whatever their order.
fn set_hash(partitions: &[(String, i32)]) -> u64 {
    let mut set: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}/{p}")).collect();
    set.sort();
    fnv1a(set.join(",").as_bytes())
}

/// The file of a group's checkpoint for a set of partitions.
pub fn path_for(dir: &Path, group: &str, partitions: &[(String, i32)]) -> PathBuf {
    let hash = set_hash(partitions);
    dir.join(format!("{}-{hash:016x}.ckpt", file_safe(group)))
}

/// Where checkpoints are kept: files in a directory, or a compacted topic.
pub enum Store {
    Dir(PathBuf),
    Topic(topic::TopicStore),
}

impl Store {
    /// The configured store (`[checkpoint] store`).
    pub fn open(cfg: &Config) -> Result<Store, CheckpointError> {
        match cfg.checkpoint.store {
            CheckpointStore::Dir => Ok(Store::Dir(PathBuf::from(&cfg.checkpoint.dir))),
            CheckpointStore::Kafka => topic::TopicStore::new(
                &cfg.checkpoint.topic,
                crate::kafka::client_config(&cfg.kafka),
            )
            .map(Store::Topic),
        }
    }

    /// The name of a group's checkpoint of a set of partitions: its file,
    /// or its record key (`<group>/<hash>`).
    pub fn name(&self, group: &str, partitions: &[(String, i32)]) -> String {
        match self {
            Store::Dir(dir) => path_for(dir, group, partitions).display().to_string(),
            Store::Topic(_) => format!("{group}/{:016x}", set_hash(partitions)),
        }
    }

    /// Writes a checkpoint's bytes durably under `name`.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        match self {
            Store::Dir(_) => write_atomic(Path::new(name), bytes),
            Store::Topic(t) => t.write(name, bytes),
        }
    }

    /// Reads the checkpoints `names` (one scan of the topic for them all).
    pub fn read_many(
        &mut self,
        names: &[String],
        cfg: &Config,
    ) -> Vec<Result<Option<Body>, CheckpointError>> {
        match self {
            Store::Dir(_) => names.iter().map(|n| read(Path::new(n), cfg)).collect(),
            Store::Topic(t) => t.read_many(names, cfg),
        }
    }
}

/// A group's checkpoint files in `dir` (newest of each assignment; not
/// `.prev`/`.tmp`), sorted.
pub fn files(dir: &Path, group: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{}-", file_safe(group));
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&prefix) && name.ends_with(".ckpt") && name.len() == prefix.len() + 21 {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes a body into the file format.
pub fn encode(body: &Body) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_allocvec(body)?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and checks a file's bytes (`path` names it in errors).
pub fn decode(path: &Path, bytes: &[u8], cfg: &Config) -> Result<Body, CheckpointError> {
    let corrupt = |what: &str| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(CheckpointError::Magic {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER {
        return Err(corrupt("header cut short"));
    }
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let len = u64::from_le_bytes(len);
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(corrupt(&format!(
            "body is {} bytes, header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != u32_at(24) {
        return Err(corrupt("checksum mismatch"));
    }
    let body: Body = postcard::from_bytes(payload).map_err(|e| corrupt(&e.to_string()))?;
    if body.config_fingerprint != config_fingerprint(cfg) {
        return Err(CheckpointError::Config {
            path: path.to_path_buf(),
        });
    }
    Ok(body)
}

/// Writes `bytes` to `path` atomically: `.tmp`, fsync, the old file kept as
/// `.prev`, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("ckpt.tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    if path.exists() {
        let prev = path.with_extension("ckpt.prev");
        fs::rename(path, &prev).map_err(io(&prev))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Reads the checkpoint at `path`, or its `.prev` when the newest cannot be
/// read (a crash mid-rename leaves only `.prev`). Ok(None): there is none.
/// Both present and unreadable: the newest's error.
pub fn read(path: &Path, cfg: &Config) -> Result<Option<Body>, CheckpointError> {
    let prev = path.with_extension("ckpt.prev");
    let newest = match fs::read(path) {
        Ok(b) => Some(decode(path, &b, cfg)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(io(path)(e))),
    };
    match newest {
        Some(Ok(body)) => Ok(Some(body)),
        Some(Err(e)) => match fs::read(&prev) {
            Ok(b) => match decode(&prev, &b, cfg) {
                Ok(body) => {
                    tracing::warn!(error = %e, "newest checkpoint unreadable: using the previous one");
                    Ok(Some(body))
                }
                Err(_) => Err(e),
            },
            Err(_) => Err(e),
        },
        None => match fs::read(&prev) {
            Ok(b) => decode(&prev, &b, cfg).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&prev)(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(cfg: &Config) -> Body {
        Body {
            written_at_ms: 1,
            crate_version: "x".into(),
            config_fingerprint: config_fingerprint(cfg),
            group: "g".into(),
            offsets: vec![PartitionOffset {
                topic: "p".into(),
                partition: 2,
                next_offset: 42,
                source: 0,
            }],
            engine: vec![1, 2, 3],
            origins: vec![OriginSource {
                origin: "in/3".into(),
                via_topic: "p".into(),
                via_partition: 2,
                source: 1,
            }],
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let cfg = Config::default();
        let p = Path::new("x.ckpt");
        let bytes = encode(&body(&cfg)).unwrap();
        let back = decode(p, &bytes, &cfg).unwrap();
        assert_eq!(back.offsets, body(&cfg).offsets);
        assert_eq!(back.engine, vec![1, 2, 3]);

        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode(p, &flipped, &cfg),
            Err(CheckpointError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(p, &bytes[..bytes.len() - 1], &cfg),
            Err(CheckpointError::Corrupt { .. })
        ));
        for other in [(FORMAT_VERSION - 1) as u8, (FORMAT_VERSION + 1) as u8] {
            let mut v = bytes.clone();
            v[8] = other;
            assert!(matches!(
                decode(p, &v, &cfg),
                Err(CheckpointError::Version { found, .. }) if found == other as u32
            ));
        }
        assert_eq!(back.origins, body(&cfg).origins);
        assert!(matches!(
            decode(p, b"{\"json\":1}", &cfg),
            Err(CheckpointError::Magic { .. })
        ));
        let mut other = cfg.clone();
        other.window.bucket = crate::config::HumanDuration::secs(120);
        assert!(matches!(
            decode(p, &bytes, &other),
            Err(CheckpointError::Config { .. })
        ));
    }

    #[test]
    fn atomic_write_keeps_the_previous_and_falls_back_to_it() {
        let cfg = Config::default();
        let dir = std::env::temp_dir().join(format!("dl-ckpt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = path_for(&dir, "g/1", &[("t".into(), 0), ("o".into(), 0)]);
        assert_eq!(
            path,
            path_for(&dir, "g/1", &[("o".into(), 0), ("t".into(), 0)])
        );
        assert!(read(&path, &cfg).unwrap().is_none());
        let mut b = body(&cfg);
        write_atomic(&path, &encode(&b).unwrap()).unwrap();
        b.offsets[0].next_offset = 99;
        write_atomic(&path, &encode(&b).unwrap()).unwrap();
        assert_eq!(
            read(&path, &cfg).unwrap().unwrap().offsets[0].next_offset,
            99
        );
        // the newest damaged: the previous one is read
        fs::write(&path, b"DLCKPT\r\ngarbage").unwrap();
        assert_eq!(
            read(&path, &cfg).unwrap().unwrap().offsets[0].next_offset,
            42
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
