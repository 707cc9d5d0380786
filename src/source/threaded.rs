//! Reading beside the engine (`replay --workers`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TryRecvError, TrySendError};

use super::file::{Merge, Record};
use crate::event::Event;

/// Records read, decoded and merged on a thread of their own, handed over
/// in batches: reading and decoding run beside the engine (`--workers` 2
/// or more). The sequence is the one the merge makes on the caller's thread.
///
/// A batch goes back to the reader with its records once applied: their
/// events are decoded into again on the thread that allocated them (a
/// free from the other thread costs the engine's thread more than the
/// allocation cost the reader's; reused, nothing is allocated or freed per
/// event), and the batch's buffer is refilled.
pub struct Threaded {
    rx: std::sync::mpsc::Receiver<Vec<Record>>,
    back: SyncSender<Vec<Record>>,
    /// Batches handed over and not yet taken.
    queued: Arc<AtomicUsize>,
}

/// What the reader's thread does to each prediction it reads, for the
/// engine; told whether to do all it can (`true`: the engine has
/// [`BUSY`] batches or more waiting, so work taken off it is time won) or
/// only what it must (`false`: the engine is about to wait for the reader,
/// so work the engine can do itself is better left to it). A prediction
/// prepared either way is applied alike; which way balances the two
/// threads, whatever the input costs each.
pub type Prepare = Box<dyn FnMut(&mut crate::event::Prediction, bool) + Send>;

/// Batches waiting for the engine at which the reader does all it can for
/// it (below, only what it must).
const BUSY: usize = 2;

/// Records per hand-over: small enough that the records in flight stay in
/// the caches (1,024 with 8 ahead was as fast, with 12 MiB more peak RSS).
const BATCH: usize = 256;

/// Batches decoded ahead of the engine, to ride out a bucket close (every
/// series evaluated at once) without the reader waiting.
const AHEAD: usize = 4;

/// How long a side first waits before it looks again: the reader when
/// the engine has [`AHEAD`] batches waiting, the engine when it has none.
/// Each side polls rather than blocks, so that neither wakes the other: a
/// blocked side is woken by the other's send or receive, a futex wake
/// that cost the engine's thread ~3 % of its time, on every batch, when
/// the reader was ahead (`perf`, docs/performance.md). A poll costs the
/// side that has time to spare; ahead or behind by a poll, the other side
/// never waits for it (a batch is ~0.3 ms of work, and four are queued).
/// A side that keeps finding nothing waits twice as long each time, up to
/// [`POLL_MAX`] (an input that comes slowly, a pipe: ~1,000 looks a
/// second, not 20,000).
const POLL: std::time::Duration = std::time::Duration::from_micros(50);

/// The longest a side waits between two looks.
const POLL_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// Waits between looks: [`POLL`], doubling up to [`POLL_MAX`].
struct Backoff(std::time::Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(POLL)
    }

    fn wait(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(POLL_MAX);
    }
}

/// Sends `b` to the engine, waiting by polling while [`AHEAD`] batches
/// wait; false when the engine has stopped.
fn hand_over(tx: &SyncSender<Vec<Record>>, mut b: Vec<Record>, queued: &AtomicUsize) -> bool {
    let mut backoff = Backoff::new();
    loop {
        // counted before it can be taken (the engine's count down never
        // comes first), and uncounted if it is not sent
        queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(b) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
            Err(TrySendError::Full(back)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                b = back;
                backoff.wait();
            }
        }
    }
}

impl Threaded {
    /// Reads `merge` on a thread of its own, calling `prepare` there on
    /// each prediction read (work of the engine's that needs only the
    /// event, done beside it).
    pub fn spawn(mut merge: Merge, mut prepare: Prepare) -> Threaded {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(AHEAD);
        // every batch in flight fits: AHEAD queued, one being filled, one applied
        let (back, empty) = std::sync::mpsc::sync_channel::<Vec<Record>>(AHEAD + 2);
        let queued = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("driftline-read".into())
            .spawn(move || {
                // a batch handed back gives its events to the next records
                // read: decoded into them, without allocating
                let mut spares: Vec<Event> = Vec::with_capacity(BATCH);
                loop {
                    let mut b = match empty.try_recv() {
                        Ok(mut b) => {
                            spares.extend(b.drain(..).filter_map(|r| r.event.ok()));
                            b
                        }
                        Err(_) => Vec::with_capacity(BATCH),
                    };
                    let busy = waiting.load(Ordering::Relaxed) >= BUSY;
                    while b.len() < BATCH {
                        let spare = spares.pop();
                        Event::claim(&spares);
                        match merge.next_reusing(spare) {
                            Some(mut r) => {
                                if let Ok(Event::Prediction(p)) = &mut r.event {
                                    prepare(p, busy);
                                }
                                b.push(r)
                            }
                            None => break,
                        }
                    }
                    let last = b.len() < BATCH;
                    // the reader stopped early (an error, --strict): stop too
                    if (!b.is_empty() && !hand_over(&tx, b, &waiting)) || last {
                        return;
                    }
                }
            })
            .expect("a thread can be started");
        Threaded { rx, back, queued }
    }

    /// The next batch, in order; `None` at the end. Hand it back with
    /// [`Threaded::done`] once applied. Waits (when the reader is behind)
    /// by polling, as the reader does when it is ahead: see [`POLL`].
    pub fn batch(&mut self) -> Option<Vec<Record>> {
        let mut backoff = Backoff::new();
        loop {
            match self.rx.try_recv() {
                Ok(b) => {
                    // counted before it was sent
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    return Some(b);
                }
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => backoff.wait(),
            }
        }
    }

    /// Returns an applied batch to the reader (dropped here if the reader
    /// has ended).
    pub fn done(&mut self, b: Vec<Record>) {
        let _ = self.back.try_send(b);
    }
}

/// The merged records, read on this thread or beside it.
pub enum Records {
    Here(Merge),
    Beside(Threaded),
}

impl Records {
    /// `Beside` when `workers` > 1, calling `prepare` on each prediction
    /// there; here, the engine does that work itself.
    pub fn new(merge: Merge, workers: usize, prepare: Prepare) -> Records {
        if workers > 1 {
            Records::Beside(Threaded::spawn(merge, prepare))
        } else {
            Records::Here(merge)
        }
    }

    /// Calls `f` on each record in order, until the end or its first
    /// error, with the (up to two) records after it that are already read
    /// (read beside: the caller may hint their memory over from the
    /// reader's core).
    pub fn try_for_each<E>(
        self,
        mut f: impl FnMut(&Record, &[Record]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match self {
            Records::Here(mut merge) => {
                // each event applied is the next one's buffers
                let mut spare = None;
                while let Some(r) = merge.next_reusing(spare.take()) {
                    f(&r, &[])?;
                    spare = r.event.ok();
                }
                Ok(())
            }
            Records::Beside(mut t) => {
                while let Some(b) = t.batch() {
                    for (i, r) in b.iter().enumerate() {
                        f(r, &b[i + 1..b.len().min(i + 3)])?;
                    }
                    t.done(b);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StreamKind;
    use crate::event::Event;
    use crate::source::file::FileSource;

    fn file(name: &str, lines: usize) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dl-threaded-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.jsonl");
        let text: String = (0..lines)
            .map(|i| {
                format!(
                    "{{\"trace_id\":\"t{i}\",\"model_id\":\"m\",\"event_time\":{},\"features\":{{\"x\":{i}.5}},\"prediction\":0}}\n",
                    1_700_000_000_000i64 + i as i64
                )
            })
            .collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn threaded(p: &std::path::Path) -> Threaded {
        let src = FileSource::open(p, StreamKind::Predictions, 1 << 20).unwrap();
        Threaded::spawn(Merge::new(vec![src]), Box::new(|_, _| {}))
    }

    /// Many more batches than are ever queued: each record once, in
    /// order — taken as fast as they come, and by a slow engine (the
    /// reader waits with the queue full: `hand_over`'s polling).
    #[test]
    fn every_record_comes_once_in_order() {
        for (name, slow) in [("all", false), ("slow", true)] {
            every_record_once(name, slow);
        }
    }

    fn every_record_once(name: &str, slow: bool) {
        let n = BATCH * AHEAD * 5 + 7;
        let p = file(name, n);
        let mut t = threaded(&p);
        let mut line = 0;
        while let Some(b) = t.batch() {
            if slow {
                std::thread::sleep(POLL * 4);
            }
            for r in &b {
                line += 1;
                assert_eq!(r.location.line, line as u64);
                let Ok(Event::Prediction(p)) = &r.event else {
                    panic!("{:?}", r.location)
                };
                assert_eq!(p.trace_id, format!("t{}", line - 1));
            }
            t.done(b);
        }
        assert_eq!(line, n);
        // every batch counted in was counted out
        assert_eq!(t.queued.load(Ordering::Relaxed), 0);
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }
}
