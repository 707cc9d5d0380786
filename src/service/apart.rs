//! Tasks on their own workers: with `run --workers` 2 or more and several
//! tasks (`kafka.state_per = "partition"`), a batch's messages are applied
//! task by task on as many threads at once, each task's in the batch's
//! order. A task's engine sees exactly the messages, in exactly the order,
//! it would see handled one by one; no two tasks share anything an engine
//! reads or writes. What happens around applying keeps `ahead`'s rules,
//! in three steps:
//!
//! 1. on the service's thread, in order: each message admitted
//!    ([`Service::admit`]: redeliveries, re-seeks and routers' markers
//!    passed by, woken partitions noted in their task's turn);
//! 2. on the workers: each task's share decoded and applied a message at
//!    a time, into one reused event (woken sources set active where they
//!    woke) — the decode thread is not used: a worker decoding its own
//!    messages keeps both cores applying, where waiting for the batch's
//!    decoding first would leave one idle;
//! 3. on the service's thread, in order: held messages named, bad ones
//!    counted and dead-lettered, then every task's news settled and the
//!    alerts published, and only then the offsets stored — an offset is
//!    never stored before its message's alerts are acknowledged and its
//!    dead letter delivered (at-least-once, as one by one).
//!
//! One thing differs: flow control pauses a partition after the batch, not
//! between two of its messages (the rule `ahead` falls back to when it
//! cannot seek a paused partition back): a partition runs ahead of the
//! slowest by at most one batch more than `kafka.max_skew`, nothing is lost
//! or applied twice. A batch whose last message applies assignment changes
//! has that message handled alone, after the rest.

use rdkafka::Message;
use rdkafka::message::BorrowedMessage;
use tokio::sync::watch;

use crate::engine::{Applied, Engine};
use crate::event::BadEvent;

use super::Service;
use super::ahead::{At, BusyClock, Decoders, TopicNames, decode_one};
use super::handle::{Admit, Admitted, Decoded, Place, Timing, apply};

/// Fewer messages than this in a batch are handled one by one: a worker's
/// start and join (~160 µs on this VM, a scoped thread spawned and joined
/// in a loop) would take much of what sharing a small batch saves (a
/// message is applied in ~3 µs).
pub(super) const APART_FROM: usize = 256;

/// One step of a task's share of a batch.
enum Step<'b> {
    /// A source of its engine woke (`Service::admit`).
    Wake(usize),
    /// Message `k` of the admitted ones, its `value` (an outcome's or a
    /// prediction's), decoded and applied as `source`, tagged `tag`.
    Apply {
        k: usize,
        value: Option<&'b [u8]>,
        outcome: bool,
        source: usize,
        tag: u64,
        place: Place<'b>,
    },
}

/// What a task's worker made of message `k`.
type Outcome = (usize, Result<Applied, BadEvent>, Option<Timing>);

impl Service {
    /// Whether a batch of `n` messages is applied task by task on the workers.
    pub(super) fn tasks_apart(&self, n: usize) -> bool {
        self.workers > 1
            && self.tasks.len() > 1
            && n >= APART_FROM
            && !self.task_decoders.is_empty()
    }

    /// [`Service::handle_batch`] with the tasks on their own workers (the
    /// module's steps). False when the service is stopping.
    pub(super) async fn handle_batch_apart(
        &mut self,
        batch: &[BorrowedMessage<'_>],
        last_applies: bool,
        stop: &watch::Receiver<bool>,
        clock: &mut BusyClock,
    ) -> bool {
        let n = batch.len();
        let mut names = TopicNames::default();
        // 1. admitted in order (the last message alone when it applies
        // assignment changes: the others were read under the old ones)
        let together = if last_applies { n - 1 } else { n };
        let mut steps: Vec<Vec<Step<'_>>> = (0..self.tasks.len()).map(|_| Vec::new()).collect();
        let mut admitted: Vec<(usize, Admitted)> = Vec::with_capacity(together);
        let mut sought: Vec<(&str, i32)> = Vec::new();
        let mut messages = [0u64; 2];
        // a stop leaves the rest unadmitted: what was admitted is applied
        // and done (its place is the partition's now)
        let mut stopping = false;
        // steps not applied yet; what the workers made of the ones applied
        let mut pending = 0;
        let mut outcomes = Vec::new();
        for (i, msg) in batch.iter().enumerate().take(together) {
            if *stop.borrow() {
                stopping = true;
                break;
            }
            let (topic, stream) = names.of(msg, &self.topics[0]);
            if sought.contains(&(topic, msg.partition())) {
                continue;
            }
            messages[stream] += 1;
            if pending > 0 && self.changes_an_engine(msg, topic) {
                // what came before applied first, in its turn
                outcomes.extend(self.apply_apart(&steps));
                steps.iter_mut().for_each(Vec::clear);
                pending = 0;
            }
            let reseeks = self.stats.reseeks;
            match self.admit(msg, (topic, stream), false, clock.since) {
                Admit::Done => {
                    if self.stats.reseeks > reseeks {
                        // its later messages come again from the start
                        sought.push((topic, msg.partition()));
                    }
                }
                Admit::Apply(a) => {
                    // (a partition registered here may have made a task)
                    steps.resize_with(self.tasks.len(), Vec::new);
                    pending += 1;
                    for (task, source) in self.woken.drain(..) {
                        steps[task].push(Step::Wake(source));
                    }
                    steps[a.task].push(Step::Apply {
                        k: admitted.len(),
                        value: msg.payload(),
                        outcome: stream == 1,
                        source: a.source,
                        tag: a.tag,
                        place: Place {
                            topic,
                            partition: msg.partition(),
                            offset: msg.offset(),
                        },
                    });
                    admitted.push((i, a));
                }
            }
        }
        // 2. each task's share on a worker
        outcomes.extend(self.apply_apart(&steps));
        self.stats.applied_on_task_workers += admitted.len() as u64;
        // in the batch's order (each admitted message applied once)
        outcomes.sort_unstable_by_key(|o: &Outcome| o.0);
        debug_assert!(outcomes.iter().map(|o| o.0).eq(0..admitted.len()));
        // 3. in order: noted, dead-lettered; settled and published; paced; stored
        let mut go = true;
        for ((i, a), (_, result, timing)) in admitted.iter().zip(outcomes) {
            if !go {
                break;
            }
            self.report_evaluations(timing);
            let msg = &batch[*i];
            let topic = names.of(msg, &self.topics[0]).0;
            go = self.note_result(msg, topic, a, result).await;
        }
        if go {
            for task in 0..self.tasks.len() {
                if admitted.iter().any(|(_, a)| a.task == task) && !self.settle_engine(task).await {
                    go = false;
                    break;
                }
            }
        }
        go = go && self.publish_alerts(stop).await;
        if go {
            // each partition paced once, from its last message's place
            let mut paced: Vec<usize> = Vec::new();
            for (_, a) in admitted.iter().rev() {
                if !paced.contains(&a.pi) {
                    paced.push(a.pi);
                    self.pace(a);
                }
            }
            for (i, a) in &admitted {
                self.store_unless_held(a, batch[*i].offset());
            }
        }
        clock.share(self, messages);
        go &= !stopping;
        if go && together < n {
            let last = n - 1;
            let (topic, stream) = names.of(&batch[last], &self.topics[0]);
            let ev = decode_one(
                &mut self.predictions,
                &mut self.outcomes,
                stream,
                &batch[last],
            );
            let at = At {
                i: last,
                topic,
                stream,
            };
            // (skipped if its partition was sought back above)
            go = self
                .handle_one_of(batch, at, &ev, true, stop, &mut sought, clock)
                .await;
        }
        go
    }

    /// Whether admitting `msg` changes its task's engine beyond waking a
    /// source (`admit`): a partition not registered yet (a source added,
    /// or a task made), or with `kafka.routed` a router's idle marker or
    /// an origin its task does not track yet. The steps before it are
    /// applied first, as one by one.
    fn changes_an_engine(&self, msg: &BorrowedMessage<'_>, topic: &str) -> bool {
        let Some(pi) = self.find_partition(topic, msg.partition()) else {
            return true;
        };
        if !self.cfg.kafka.routed {
            return false;
        }
        let (origin, marker) = super::tasks::origin_headers(msg);
        let task = &self.tasks[self.partitions[pi].task];
        marker || origin.is_none_or(|name| !task.origins.iter().any(|o| o.name.as_bytes() == name))
    }

    /// Decodes and applies each task's steps: each worker takes the
    /// largest task left until none is (a task's messages stay on one
    /// thread, in order).
    fn apply_apart(&mut self, steps: &[Vec<Step<'_>>]) -> Vec<Outcome> {
        let timed = self.otel.is_some();
        let mut shares: Vec<(&mut Engine, &[Step<'_>])> = self
            .tasks
            .iter_mut()
            .zip(steps)
            .filter(|(_, s)| !s.is_empty())
            .map(|(t, s)| (&mut t.engine, s.as_slice()))
            .collect();
        let workers = self.workers.min(shares.len());
        // smallest first: the service's thread, which has the batch's other
        // work, takes from the front, the workers the largest from the back
        shares.sort_by_key(|(_, s)| s.len());
        let run = |(engine, steps): (&mut Engine, &[Step<'_>]),
                   (predictions, outcomes): &mut Decoders,
                   out: &mut Vec<Outcome>| {
            // the event applied last, decoded into next
            let mut spare = None;
            for step in steps {
                match *step {
                    Step::Wake(source) => engine.set_idle(source, false),
                    Step::Apply {
                        k,
                        value,
                        outcome,
                        source,
                        tag,
                        place,
                    } => {
                        let decoded: Decoded = if outcome {
                            outcomes.decode(value)
                        } else {
                            predictions.decode_reusing(value, spare.take())
                        };
                        let (r, t) = apply(engine, &decoded, (source, tag), place, timed);
                        out.push((k, r, t));
                        spare = decoded.ok();
                    }
                }
            }
        };
        // each worker takes the next task until none is left (a worker
        // that cannot be started leaves its share to the others)
        let queue = std::sync::Mutex::new(std::collections::VecDeque::from(shares));
        let work = |decoders: &mut Decoders, front: bool| {
            let mut out = Vec::new();
            loop {
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                let next = if front { q.pop_front() } else { q.pop_back() };
                drop(q);
                match next {
                    Some(share) => run(share, decoders, &mut out),
                    None => return out,
                }
            }
        };
        let mut decoders = self.task_decoders.iter_mut();
        let mine = decoders.next().expect("decoders for each worker");
        std::thread::scope(|scope| {
            let others: Vec<_> = decoders
                .take(workers.saturating_sub(1))
                .filter_map(|d| {
                    std::thread::Builder::new()
                        .name("driftline-task".into())
                        .spawn_scoped(scope, move || work(d, false))
                        .ok()
                })
                .collect();
            let mut out = work(mine, true);
            for h in others {
                out.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            out
        })
    }
}
