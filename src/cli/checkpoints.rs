//! `driftline checkpoints`: the group's checkpoints described, one JSON line each.

use std::collections::HashMap;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// One JSON line per checkpoint of the group; exit 1 if one is unreadable.
pub fn describe_checkpoints(cfg: &Config) -> Result<i32> {
    use crate::checkpoint::{self, Body, CheckpointError};
    // (where, size in bytes, what was read)
    type Entry = (
        String,
        u64,
        std::result::Result<Option<Body>, CheckpointError>,
    );
    let entries: Vec<Entry> = match cfg.checkpoint.store {
        crate::config::CheckpointStore::Dir => {
            let dir = std::path::Path::new(&cfg.checkpoint.dir);
            let files =
                checkpoint::files(dir, &cfg.kafka.group_id).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            files
                .into_iter()
                .map(|path| {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let read = checkpoint::read(&path, cfg);
                    (path.display().to_string(), size, read)
                })
                .collect()
        }
        crate::config::CheckpointStore::Kafka => {
            let kafka_err = |e: CheckpointError| Error::Kafka {
                what: "checkpoint topic".into(),
                message: e.to_string(),
            };
            let mut store = checkpoint::topic::TopicStore::new(
                &cfg.checkpoint.topic,
                crate::kafka::client_config(&cfg.kafka),
            )
            .map_err(kafka_err)?;
            store
                .list(&cfg.kafka.group_id, cfg)
                .map_err(kafka_err)?
                .into_iter()
                .map(|(name, r)| {
                    let size = r
                        .as_ref()
                        .ok()
                        .and_then(|o| o.as_ref())
                        .map_or(0, |(_, n)| *n);
                    (name, size as u64, r.map(|o| o.map(|(b, _)| b)))
                })
                .collect()
        }
    };
    let mut bad = 0;
    for (path, size, read) in entries {
        let line = match read {
            Ok(Some(body)) => match Engine::restore(cfg.clone(), HashMap::new(), &body.engine) {
                Ok(engine) => serde_json::json!({
                    "path": path,
                    "written_at_ms": body.written_at_ms,
                    "bytes": size,
                    "crate_version": body.crate_version,
                    "offsets": body.offsets,
                    "predictions": engine.stats.predictions,
                    "outcomes": engine.stats.outcomes,
                    "late": engine.stats.late,
                    "series": engine.series_counts().collect::<Vec<_>>(),
                }),
                Err(e) => {
                    bad += 1;
                    serde_json::json!({"path": path, "error": e.to_string()})
                }
            },
            Ok(None) => continue,
            Err(e) => {
                bad += 1;
                serde_json::json!({"path": path, "error": e.to_string()})
            }
        };
        super::out(&format!("{line}\n"))?;
    }
    Ok(if bad > 0 { 1 } else { 0 })
}
