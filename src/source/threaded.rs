//! Reading beside the engine (`replay --workers`).

use super::file::{Merge, Record};

/// Records read, decoded and merged on a thread of their own, handed over
/// in batches: reading and decoding run beside the engine (`--workers` 2
/// or more). The sequence is the one the merge makes on the caller's thread.
pub struct Threaded {
    rx: std::sync::mpsc::Receiver<Vec<Record>>,
    back: std::sync::mpsc::SyncSender<Vec<Record>>,
    batch: std::vec::IntoIter<Record>,
}

/// Records per hand-over.
const BATCH: usize = 1024;

impl Threaded {
    pub fn spawn(mut merge: Merge) -> Threaded {
        // two batches in flight, their buffers sent back to be refilled
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(2);
        let (back, empty) = std::sync::mpsc::sync_channel::<Vec<Record>>(4);
        std::thread::Builder::new()
            .name("driftline-read".into())
            .spawn(move || {
                loop {
                    let mut b = empty
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    b.extend(merge.by_ref().take(BATCH));
                    let last = b.len() < BATCH;
                    // the reader stopped early (an error, --strict): stop too
                    if (!b.is_empty() && tx.send(b).is_err()) || last {
                        return;
                    }
                }
            })
            .expect("a thread can be started");
        Threaded {
            rx,
            back,
            batch: Vec::new().into_iter(),
        }
    }
}

impl Iterator for Threaded {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            let b = self.rx.recv().ok()?;
            let spent = std::mem::replace(&mut self.batch, b.into_iter());
            // the drained buffer goes back for reuse (dropped if the reader has enough)
            let mut v: Vec<Record> = spent.collect();
            v.clear();
            let _ = self.back.try_send(v);
        }
    }
}
