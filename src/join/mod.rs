//! The streaming join of outcomes to predictions by (`model_id`,
//! `trace_id`), bounded in time and memory.
//!
//! A prediction waits for its outcome for `join.ttl` of event time; an
//! outcome that arrives before its prediction waits `join.orphan_hold`. Both
//! waits are capped in entries (the oldest is evicted first). Expiries,
//! evictions, unmatched and duplicate outcomes are counted. Keys are a
//! 128-bit hash of model and trace id, so a waiting prediction costs a fixed
//! ~100 bytes whatever its trace id's length.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// Slots (overall and slices) a joined pair is counted in.
pub const MAX_SLOTS: usize = 4;

/// 128-bit key of a (model, trace id) pair: two independent FNV-1a lanes.
pub fn key(model: &str, trace_id: &str) -> u128 {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x84222325_cbf29ce4;
    for &x in model
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(trace_id.as_bytes())
    {
        a = (a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ x as u64)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(7);
    }
    ((a as u128) << 64) | b as u128
}

/// What the join keeps of a prediction while it waits.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    pub model: u32,
    /// The prediction's event-time bucket: the pair is counted there.
    pub bucket: i64,
    pub event_time: i64,
    pub slots: [u32; MAX_SLOTS],
    pub n_slots: u8,
    /// Numeric prediction, or the class id of a class prediction.
    pub prediction: f64,
    pub class: u32,
    /// Score, NaN when there is none.
    pub score: f32,
}

/// An outcome's label as the join keeps it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Label {
    Number(f64),
    Class(u32),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinStats {
    pub joined: u64,
    /// Predictions whose outcome did not come within the TTL.
    pub expired: u64,
    /// Predictions dropped to keep under the cap before their TTL.
    pub evicted: u64,
    /// Outcomes whose prediction never came (within the orphan hold).
    pub unmatched: u64,
    /// Outcomes for a prediction already joined.
    pub duplicates: u64,
    pub orphans_evicted: u64,
}

impl JoinStats {
    pub fn add(&mut self, o: &JoinStats) {
        self.joined += o.joined;
        self.expired += o.expired;
        self.evicted += o.evicted;
        self.unmatched += o.unmatched;
        self.duplicates += o.duplicates;
        self.orphans_evicted += o.orphans_evicted;
    }
}

/// A joined pair: the prediction, its outcome's label and event time.
pub type Joined = (Waiting, Label, i64);

#[derive(serde::Serialize, serde::Deserialize)]
pub struct JoinBuffer {
    ttl_ms: i64,
    hold_ms: i64,
    max_waiting: usize,
    max_orphans: usize,
    waiting: FxHashMap<u128, Waiting>,
    /// (expires at, key) in arrival order; entries already joined are skipped lazily.
    order: VecDeque<(i64, u128)>,
    orphans: FxHashMap<u128, (Label, i64)>,
    orphan_order: VecDeque<(i64, u128)>,
    /// Recently joined keys, to tell duplicates from unmatched outcomes.
    recent: FxHashMap<u128, ()>,
    recent_order: VecDeque<u128>,
    pub stats: JoinStats,
}

impl JoinBuffer {
    pub fn new(ttl_ms: i64, hold_ms: i64, max_waiting: usize, max_orphans: usize) -> Self {
        JoinBuffer {
            ttl_ms,
            hold_ms,
            max_waiting: max_waiting.max(1),
            max_orphans: max_orphans.max(1),
            waiting: FxHashMap::default(),
            order: VecDeque::new(),
            orphans: FxHashMap::default(),
            orphan_order: VecDeque::new(),
            recent: FxHashMap::default(),
            recent_order: VecDeque::new(),
            stats: JoinStats::default(),
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn orphans(&self) -> usize {
        self.orphans.len()
    }

    /// A prediction arrives: joined at once with a waiting outcome, or waits.
    pub fn prediction(&mut self, k: u128, w: Waiting) -> Option<Joined> {
        if let Some((label, t)) = self.orphans.remove(&k) {
            self.joined(k);
            return Some((w, label, t));
        }
        if self.waiting.insert(k, w).is_none() {
            self.order.push_back((w.event_time + self.ttl_ms, k));
        }
        while self.waiting.len() > self.max_waiting {
            match self.order.pop_front() {
                Some((_, old)) => {
                    if self.waiting.remove(&old).is_some() {
                        self.stats.evicted += 1;
                    }
                }
                None => break,
            }
        }
        if self.order.len() > 2 * self.max_waiting.max(self.waiting.len()) + 1024 {
            let waiting = &self.waiting;
            self.order.retain(|(_, k)| waiting.contains_key(k));
        }
        None
    }

    /// An outcome arrives: joined with its waiting prediction, or held as
    /// an orphan (when `hold`; else it was another's, and is let go).
    pub fn outcome(&mut self, k: u128, label: Label, t: i64, hold: bool) -> Option<Joined> {
        if let Some(w) = self.waiting.remove(&k) {
            self.joined(k);
            return Some((w, label, t));
        }
        if !hold {
            return None;
        }
        if self.recent.contains_key(&k) {
            self.stats.duplicates += 1;
            return None;
        }
        if self.orphans.insert(k, (label, t)).is_none() {
            self.orphan_order.push_back((t + self.hold_ms, k));
        }
        while self.orphans.len() > self.max_orphans {
            match self.orphan_order.pop_front() {
                Some((_, old)) => {
                    if self.orphans.remove(&old).is_some() {
                        self.stats.orphans_evicted += 1;
                    }
                }
                None => break,
            }
        }
        None
    }

    fn joined(&mut self, k: u128) {
        self.stats.joined += 1;
        if self.recent.insert(k, ()).is_none() {
            self.recent_order.push_back(k);
            if self.recent_order.len() > self.max_waiting
                && let Some(old) = self.recent_order.pop_front()
            {
                self.recent.remove(&old);
            }
        }
    }

    /// Expires predictions and orphans whose wait ended at event time `now`.
    pub fn expire(&mut self, now: i64) {
        while let Some(&(at, k)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if let Some(w) = self.waiting.get(&k)
                && w.event_time + self.ttl_ms == at
            {
                self.waiting.remove(&k);
                self.stats.expired += 1;
            }
        }
        while let Some(&(at, k)) = self.orphan_order.front() {
            if at > now {
                break;
            }
            self.orphan_order.pop_front();
            if self.orphans.remove(&k).is_some() {
                self.stats.unmatched += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: i64) -> Waiting {
        Waiting {
            model: 0,
            bucket: t / 60_000,
            event_time: t,
            slots: [0; MAX_SLOTS],
            n_slots: 1,
            prediction: 0.0,
            class: 0,
            score: 0.5,
        }
    }

    #[test]
    fn joins_in_either_order_and_counts_the_rest() {
        let mut j = JoinBuffer::new(60_000, 10_000, 100, 100);
        assert!(j.prediction(key("m", "a"), w(0)).is_none());
        let (p, l, t) = j
            .outcome(key("m", "a"), Label::Number(1.0), 5_000, true)
            .unwrap();
        assert_eq!((p.event_time, l, t), (0, Label::Number(1.0), 5_000));
        // the same trace again: a duplicate
        assert!(
            j.outcome(key("m", "a"), Label::Number(1.0), 6_000, true)
                .is_none()
        );
        assert_eq!(j.stats.duplicates, 1);
        // outcome first, then its prediction
        assert!(
            j.outcome(key("m", "b"), Label::Class(3), 7_000, true)
                .is_none()
        );
        assert_eq!(j.orphans(), 1);
        assert!(j.prediction(key("m", "b"), w(6_000)).is_some());
        // another model's trace with the same id is another key
        assert!(j.prediction(key("n", "b"), w(6_000)).is_none());
        // expiry by event time
        j.expire(70_000);
        assert_eq!(j.stats.expired, 1, "n/b waited longer than the ttl");
        assert!(
            j.outcome(key("m", "z"), Label::Number(0.0), 70_000, true)
                .is_none()
        );
        j.expire(80_000);
        assert_eq!(j.stats.unmatched, 1);
        assert_eq!(j.stats.joined, 2);
        assert_eq!((j.waiting(), j.orphans()), (0, 0));
    }

    #[test]
    fn the_cap_evicts_the_oldest() {
        let mut j = JoinBuffer::new(1_000_000, 10_000, 10, 10);
        for i in 0..25 {
            j.prediction(key("m", &format!("t{i}")), w(i));
        }
        assert_eq!(j.waiting(), 10);
        assert_eq!(j.stats.evicted, 15);
        assert!(
            j.outcome(key("m", "t24"), Label::Number(1.0), 30, true)
                .is_some()
        );
        assert!(
            j.outcome(key("m", "t0"), Label::Number(1.0), 30, true)
                .is_none(),
            "evicted: held as an orphan"
        );
        // the order queue stays bounded though entries leave by join
        for i in 100..10_000 {
            let k = key("m", &format!("t{i}"));
            j.prediction(k, w(i));
            j.outcome(k, Label::Number(0.0), i, true);
        }
        assert!(j.order.len() < 2 * 10 + 1024 + 2, "{}", j.order.len());
    }
}
