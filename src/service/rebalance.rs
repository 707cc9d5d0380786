//! Assignment changes: a newly assigned task is restored from its
//! checkpoint (and its partitions sought to the checkpoint's offsets) or
//! rebuilt from the start; a revoked one is checkpointed before it goes.
//! Checkpoints are written on an interval, on revoke and at shutdown, and
//! the offsets they cover are committed only once they are durable.

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};

use crate::checkpoint::{self, Body, CheckpointError, OriginSource, PartitionOffset};
use crate::config::{StartFrom, StatePer};
use crate::engine::Engine;
use crate::kafka::consumer::Assignment;

use super::tasks::{Origin, PartitionState};
use super::{Service, new_engine, now_ms};

impl Service {
    /// Applies rebalances; true when the windows were rebuilt (the
    /// partitions were sent back to their start).
    pub(super) fn apply_assignment_changes(&mut self) -> bool {
        // the offsets of the messages done, stored while their partitions
        // are still this member's and at the places `store_later` noted
        self.store_offsets();
        let mut rebuilt = false;
        let changes = self.consumer.context().take_changes();
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
                        // messages of it held by the engine are not stored as handled
                        self.held.retain(|h| !(h.2 == topic && h.3 == partition));
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

    /// A fresh task; every partition in `ps` is read from its start.
    pub(super) fn rebuild(&mut self, key: Vec<(String, i32)>, ps: &[(String, i32)]) {
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
        if self.skip_rebuild_seek {
            tracing::warn!(
                "fault injection: the seek to the start of rebuilt partitions is skipped"
            );
            return;
        }
        if let Err(e) = self.consumer.seek_partitions(tpl, Duration::from_secs(10)) {
            tracing::warn!(error = %e, "cannot seek to the start of the assigned partitions");
        }
    }

    /// The checkpoint of the task `key` restored and its partitions `ps`
    /// sought to its offsets; without a usable one, a rebuild from the start.
    pub(super) fn restore_or_rebuild(
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
                reseeks: 0,
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
    pub(super) fn checkpoint(&mut self) {
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
}
