//! Writes held back and applied to their series on several threads at once
//! (`replay --workers` 2 or more, from 256 series on): the per-event path
//! plans an event's writes (model, slots, series, each value's observation)
//! on the engine's thread and queues them here; at a flush the series are
//! cut into as many contiguous groups as there are workers, weighed by each
//! group's measured time per write, and every group applies its own
//! writes, in the order they came, on its own thread.
//!
//! A series sees the same writes in the same order as when each is made at
//! once, so the output does not depend on the number of workers. Nothing
//! in the engine reads a series while writes wait: every step that does (a
//! bucket closing, earlier buckets opening, the end of input) flushes
//! first, and the readers from outside refuse until [`Engine::flush`].

use crate::sketch::Offered;
use crate::window::{Observation, Pool};

use super::{Engine, Series};

/// Writes queued before a flush. Big enough that starting a flush's threads
/// is small beside the writes (~40 bytes each: 1.3 MB).
const FLUSH_WRITES: usize = 1 << 15;

/// Fewer writes than this in a group say nothing of its time per write.
const WRITES_TIMED: usize = 1024;

/// How many writes apart the stages of a write's cache hints run
/// ([`Series::prefetch_record`]: the series, its bucket's slot, the bucket,
/// its bins), the last one this far ahead of the write.
const STAGE_APART: usize = 3;

/// One value for one series' open bucket.
#[derive(Clone, Copy)]
struct Write {
    sid: u32,
    /// The open bucket, counted from the engine's first open one (a flush
    /// comes before that moves).
    idx: u32,
    /// Its event's trace id, in [`Queued::traces`].
    trace: u32,
    obs: Observation,
}

/// An event's trace id: where it is in [`Queued::text`], and its offer keys.
#[derive(Clone, Copy)]
struct Trace {
    start: u32,
    len: u32,
    keys: (u64, u64),
}

/// The writes waiting for a flush, by group, and what they borrow from
/// their events.
#[derive(Default)]
pub(super) struct Queued {
    /// On: writes wait here (`Engine::defer_writes`).
    pub(super) on: bool,
    /// Each group's writes, in order.
    groups: Vec<Vec<Write>>,
    /// Where each group but the last ends (a series id): group `g` holds
    /// series `bounds[g - 1]..bounds[g]`, the last one every series after
    /// (one fewer than there are groups).
    bounds: Vec<u32>,
    /// Each group's time per write at the flushes so far (smoothed, ns):
    /// a write to one of thousands of sparse series is a few cache misses,
    /// one to a busy series is not, so the groups are cut by time, not by
    /// writes.
    cost: Vec<f64>,
    waiting: usize,
    traces: Vec<Trace>,
    text: String,
}

impl Queued {
    /// Queues one event's trace id; its writes name it by the number returned.
    pub(super) fn trace(&mut self, t: &Offered<'_>) -> u32 {
        let start = self.text.len() as u32;
        self.text.push_str(t.id);
        self.traces.push(Trace {
            start,
            len: t.id.len() as u32,
            keys: t.keys(),
        });
        (self.traces.len() - 1) as u32
    }

    /// Queues a write; true when the queue is full (flush it).
    #[inline]
    pub(super) fn push(&mut self, sid: u32, idx: usize, trace: u32, obs: Observation) -> bool {
        let g = self.bounds.iter().take_while(|&&b| sid >= b).count();
        self.groups[g].push(Write {
            sid,
            idx: idx as u32,
            trace,
            obs,
        });
        self.waiting += 1;
        self.waiting >= FLUSH_WRITES
    }

    fn offered(&self, trace: u32) -> Offered<'_> {
        let t = self.traces[trace as usize];
        let (start, len) = (t.start as usize, t.len as usize);
        Offered::with_keys(&self.text[start..start + len], t.keys)
    }

    /// Cuts the series into `groups` contiguous ranges that should take
    /// about as long each: a series weighs the values it has taken so far
    /// times its group's time per write (the next writes go by these).
    fn balance(&mut self, applied: &[u64], groups: usize) {
        self.groups.resize_with(groups, Vec::new);
        self.cost.resize(groups, 1.0);
        let (old, cost) = (&self.bounds, &self.cost);
        let group_of = |sid: usize| old.iter().take_while(|&&b| sid >= b as usize).count();
        let weight = |sid: usize, n: u64| n as f64 * cost[group_of(sid).min(groups - 1)];
        let total: f64 = applied.iter().enumerate().map(|(i, &n)| weight(i, n)).sum();
        let mut bounds = Vec::with_capacity(groups);
        let mut acc = 0.0;
        for (sid, &n) in applied.iter().enumerate() {
            acc += weight(sid, n);
            if bounds.len() + 1 < groups && acc * groups as f64 >= total * (bounds.len() + 1) as f64
            {
                bounds.push(sid as u32 + 1);
            }
        }
        // series that come later go to the last group
        bounds.resize(groups - 1, applied.len() as u32);
        self.bounds = bounds;
    }

    /// Takes what each group's writes took at a flush into its time per write.
    fn timed(&mut self, took: &[(usize, std::time::Duration)]) {
        for (g, &(writes, t)) in took.iter().enumerate() {
            if writes >= WRITES_TIMED {
                let per = t.as_nanos() as f64 / writes as f64;
                self.cost[g] = 0.7 * self.cost[g] + 0.3 * per.max(0.1);
            }
        }
    }

    /// No write waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    fn clear(&mut self) {
        for g in &mut self.groups {
            g.clear();
        }
        self.waiting = 0;
        self.traces.clear();
        self.text.clear();
    }
}

/// Applies a group's writes (series `first..first + series.len()`, and their
/// counts of values), in order.
fn apply(
    first: usize,
    (series, applied): (&mut [Series], &mut [u64]),
    writes: &[Write],
    q: &Queued,
    pool: &mut Pool,
    max_ex: usize,
    prefetch: bool,
) {
    for (i, w) in writes.iter().enumerate() {
        // with thousands of sparse series a write is a chain of cache
        // misses: the next writes' links are fetched meanwhile
        if prefetch {
            for stage in 0..4u8 {
                if let Some(n) = writes.get(i + STAGE_APART * (4 - stage as usize)) {
                    let s = &series[n.sid as usize - first];
                    s.prefetch_record(stage, n.idx as usize, n.obs);
                }
            }
        }
        applied[w.sid as usize - first] += 1;
        let s = &mut series[w.sid as usize - first];
        s.windows
            .record::<1>(w.idx as usize, w.obs, &q.offered(w.trace), max_ex, pool);
    }
}

impl Engine {
    /// Holds an event's writes back and applies many at once, the series
    /// in groups on up to `set_workers` threads (replay; the output is the
    /// same). What waits is applied whenever the engine itself needs the
    /// series (a bucket closing, the input's end); whoever reads them from
    /// outside (`series`, `save_state`, a snapshot) calls [`Engine::flush`]
    /// first, or they refuse. Call it after [`Engine::set_workers`].
    pub fn defer_writes(&mut self, on: bool) {
        self.flush();
        self.queued.on = on && self.close_threads > 1;
        self.queued.balance(&self.applied, self.close_threads);
    }

    /// Queues an event's writes (`planned`: its observations, `sids`:
    /// each one's series, `per` of them, the first `skip` of each not
    /// written), and flushes when the queue is full.
    #[inline(never)]
    pub(super) fn queue(
        &mut self,
        planned: &[Observation],
        sids: &[u32],
        per: usize,
        skip: usize,
        idx: usize,
        trace_id: &str,
    ) {
        let q = &mut self.queued;
        let trace = q.trace(&Offered::new(trace_id));
        let mut full = false;
        for (&obs, sids) in planned.iter().zip(sids.chunks(per)) {
            for &sid in &sids[skip..] {
                // an asleep series only counts it, here
                if self.asleep[sid as usize] {
                    self.applied[sid as usize] += 1;
                } else {
                    full |= q.push(sid, idx, trace, obs);
                }
            }
        }
        if full {
            self.flush();
        }
    }

    /// Applies every write waiting (see [`Engine::defer_writes`]), then
    /// cuts the groups afresh.
    pub fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let Engine {
            series,
            applied,
            queued,
            pool,
            close_pools,
            close_threads,
            cfg,
            asleep_count,
            ..
        } = self;
        let max_ex = cfg.policy.max_exemplars;
        let groups = queued.groups.len();
        // a group's writes reach into its series' memory ahead when they
        // are too many for the caches (asleep ones take none)
        let prefetch = (series.len() - *asleep_count) / groups >= super::PREFETCH_FROM_SERIES / 2;
        // the other groups' new buckets take from their own pools: each
        // gets a share of the engine's recycled sketches, and gives back
        // what is left
        close_pools.resize_with(groups - 1, Default::default);
        for p in close_pools.iter_mut() {
            pool.lend(p, groups);
        }
        let q = &*queued;
        // each group timed (a clock read per group per flush) for the next cut
        let timed = |first,
                     (series, applied): (&mut [Series], &mut [u64]),
                     writes: &[Write],
                     pool: &mut Pool| {
            let t = std::time::Instant::now();
            apply(first, (series, applied), writes, q, pool, max_ex, prefetch);
            (writes.len(), t.elapsed())
        };
        let took: Vec<(usize, std::time::Duration)> = std::thread::scope(|scope| {
            let mut rest: &mut [Series] = series;
            let mut rest_applied: &mut [u64] = applied;
            let mut first = 0;
            let (last, others) = q.groups.split_last().expect("a group");
            let mut spawned = Vec::with_capacity(others.len());
            for ((writes, &end), p) in others.iter().zip(&q.bounds).zip(close_pools.iter_mut()) {
                let end = end as usize;
                let (mine, after) = rest.split_at_mut(end - first);
                let (mine_applied, after_applied) = rest_applied.split_at_mut(end - first);
                let timed = &timed;
                spawned.push(scope.spawn(move || timed(first, (mine, mine_applied), writes, p)));
                (rest, rest_applied) = (after, after_applied);
                first = end;
            }
            let here = timed(first, (rest, rest_applied), last, pool);
            spawned
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .chain(std::iter::once(here))
                .collect()
        });
        for p in close_pools.iter_mut() {
            pool.absorb(p);
        }
        queued.clear();
        queued.timed(&took);
        queued.balance(applied, *close_threads);
    }
}
