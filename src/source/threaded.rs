//! Reading beside the engine (`replay --workers`).

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
    back: std::sync::mpsc::SyncSender<Vec<Record>>,
}

/// What the reader's thread does to each prediction it reads, for the
/// engine.
pub type Prepare = Box<dyn Fn(&mut crate::event::Prediction) + Send>;

/// Records per hand-over: small enough that the records in flight stay in
/// the caches (1,024 with 8 ahead was as fast, with 12 MiB more peak RSS).
const BATCH: usize = 256;

/// Batches decoded ahead of the engine, to ride out a bucket close (every
/// series evaluated at once) without the reader waiting.
const AHEAD: usize = 4;

impl Threaded {
    /// Reads `merge` on a thread of its own, calling `prepare` there on
    /// each prediction read (work of the engine's that needs only the
    /// event, done beside it).
    pub fn spawn(mut merge: Merge, prepare: Prepare) -> Threaded {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(AHEAD);
        // every batch in flight fits: AHEAD queued, one being filled, one applied
        let (back, empty) = std::sync::mpsc::sync_channel::<Vec<Record>>(AHEAD + 2);
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
                    while b.len() < BATCH {
                        match merge.next_reusing(spares.pop()) {
                            Some(mut r) => {
                                if let Ok(Event::Prediction(p)) = &mut r.event {
                                    prepare(p);
                                }
                                b.push(r)
                            }
                            None => break,
                        }
                    }
                    let last = b.len() < BATCH;
                    // the reader stopped early (an error, --strict): stop too
                    if (!b.is_empty() && tx.send(b).is_err()) || last {
                        return;
                    }
                }
            })
            .expect("a thread can be started");
        Threaded { rx, back }
    }

    /// The next batch, in order; `None` at the end. Hand it back with
    /// [`Threaded::done`] once applied.
    pub fn batch(&mut self) -> Option<Vec<Record>> {
        self.rx.recv().ok()
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
    /// error, with the record after it when that one is already read
    /// (read beside: the caller may hint its memory over from the reader's core).
    pub fn try_for_each<E>(
        self,
        mut f: impl FnMut(&Record, Option<&Record>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match self {
            Records::Here(mut merge) => {
                // each event applied is the next one's buffers
                let mut spare = None;
                while let Some(r) = merge.next_reusing(spare.take()) {
                    f(&r, None)?;
                    spare = r.event.ok();
                }
                Ok(())
            }
            Records::Beside(mut t) => {
                while let Some(b) = t.batch() {
                    for (i, r) in b.iter().enumerate() {
                        f(r, b.get(i + 1))?;
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
        Threaded::spawn(Merge::new(vec![src]), Box::new(|_| {}))
    }

    /// Many more batches than are ever queued: each record once, in
    /// order.
    #[test]
    fn every_record_comes_once_in_order() {
        let n = BATCH * AHEAD * 5 + 7;
        let p = file("all", n);
        let mut t = threaded(&p);
        let mut line = 0;
        while let Some(b) = t.batch() {
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
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }
}
