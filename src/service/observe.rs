//! What the people on call see: the snapshot the HTTP side and OTLP export
//! read (built once a second, not per event), and one `process` span and
//! duration per topic per tick.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::telemetry::{PartitionLag, Snapshot, TopicCount};

use super::{Service, now_ms};

#[derive(Default)]
pub(super) struct Batch {
    pub(super) messages: u64,
    pub(super) busy: Duration,
    pub(super) started: Option<std::time::SystemTime>,
    pub(super) links: Vec<opentelemetry::trace::SpanContext>,
}

impl Service {
    /// Ends the batches processed since the last tick: one `process` span
    /// and one `messaging.process.duration` observation per topic.
    pub(super) fn end_batches(&mut self) {
        for b in &self.batch {
            if b.messages > 0 {
                self.latency.batch(b.busy);
            }
        }
        let Some(otel) = &self.otel else {
            for b in &mut self.batch {
                b.messages = 0;
                b.busy = Duration::ZERO;
            }
            return;
        };
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

    /// Input topics the cluster does not have: named in a warning every
    /// 10 s while missing (and once when they appear), shown by `/readyz`.
    pub(super) fn check_topics(&mut self) {
        if self
            .topics_checked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.topics_checked = Some(Instant::now());
        let mut missing = Vec::new();
        for topic in self.topics.iter().filter(|t| !t.is_empty()) {
            let md = crate::blocking(|| {
                self.consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(2))
            });
            // (the brokers away is not a missing topic: consumer errors say that)
            let Ok(md) = md else { continue };
            let gone = md
                .topics()
                .first()
                .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
            if gone {
                missing.push(topic.clone());
            }
        }
        for topic in &missing {
            tracing::warn!(
                topic = %topic,
                "input topic does not exist: nothing is consumed from it (create it, or fix kafka.predictions_topic / kafka.outcomes_topic)"
            );
        }
        // the control topic: named while missing, but not a readiness matter
        let control = &self.cfg.kafka.control_topic;
        if !control.is_empty()
            && let Ok(md) = crate::blocking(|| {
                self.consumer
                    .fetch_metadata(Some(control), Duration::from_secs(2))
            })
            && md
                .topics()
                .first()
                .is_none_or(|t| t.error().is_some() || t.partitions().is_empty())
        {
            tracing::warn!(
                topic = %control,
                "control topic does not exist: no incident feedback is read (create it, or set kafka.control_topic = \"\")"
            );
        }
        for topic in self.missing_topics.iter().filter(|t| !missing.contains(t)) {
            tracing::info!(topic = %topic, "input topic exists now");
        }
        self.missing_topics = missing;
    }

    /// Publishes what the HTTP side shows (not per event: once a second).
    pub(super) fn publish_snapshot(&mut self) {
        self.last_snapshot = Instant::now();
        let mut s = Snapshot {
            taken_at_ms: now_ms(),
            // assigned partitions are restored (or rebuilt) in the same step
            ready: !self.assignment.is_empty() && self.missing_topics.is_empty(),
            missing_topics: self.missing_topics.clone(),
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
            incidents: self
                .tasks
                .iter()
                .flat_map(|t| t.engine.open_incidents())
                .collect(),
            versions: self
                .tasks
                .iter()
                .flat_map(|t| t.engine.versions())
                .collect(),
            recent_actions: self.recent_actions.iter().cloned().collect(),
            latency: self.latency.view(),
            feedback: crate::incident::feedback::rows(
                self.tasks
                    .iter()
                    .map(|t| t.engine.feedback_counts())
                    .collect::<Vec<_>>()
                    .iter(),
            ),
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
}
