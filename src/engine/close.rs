//! A watermark passing: each bucket it passes closes — the carrier
//! slices' values merged into their overall series first, then every
//! series' window slides — and the watermark's evaluation follows. A series
//! that can never alert goes dormant here.

use crate::registry::NO_SERIES;

use super::Engine;

/// Series per worker below which a bucket's windows close on one thread
/// (a thread's start costs about what closing a few hundred windows does).
const PARALLEL_CLOSE_SERIES: usize = 512;

impl Engine {
    /// Moves the watermark for a new newest event time and closes every bucket it passes.
    pub(super) fn advance_to(&mut self, t: i64) {
        self.time.see(t);
        self.advance();
    }

    pub(super) fn advance(&mut self) {
        let Some(reached) = self.time.reached() else {
            return;
        };
        let wm = reached - self.lateness_ms;
        while let Some(fo) = self.first_open {
            if (fo + 1) * self.bucket_ms > wm {
                break;
            }
            self.close_bucket(fo);
            self.first_open = Some(fo + 1);
        }
    }

    /// End of input: closes every bucket up to the newest event and evaluates.
    pub fn finish(&mut self) {
        self.anchor();
        self.flush();
        let Some(max) = self.time.newest() else {
            return;
        };
        let last = max.div_euclid(self.bucket_ms);
        while let Some(fo) = self.first_open {
            if fo > last {
                break;
            }
            self.close_bucket(fo);
            self.first_open = Some(fo + 1);
        }
    }

    fn close_bucket(&mut self, b: i64) {
        self.flush();
        self.gather_overall();
        self.closed_any = true;
        let Engine {
            models,
            series,
            asleep,
            bins,
            pool,
            close_pools,
            ..
        } = self;
        let (window, bucket_ms) = (self.window_buckets, self.bucket_ms);
        let policy = &self.cfg.policy;
        // an asleep series has nothing to close
        let awake = series.len() - self.asleep_count;
        let close =
            |series: &mut [super::Series], asleep: &[bool], pool: &mut crate::window::Pool| {
                // with thousands of sparse series a close is mostly waiting on
                // cache misses: the series a few places ahead are fetched
                // meanwhile (not an asleep one: nothing of it is read)
                const AHEAD: usize = 2;
                let awake_at = |j: usize| asleep.get(j).is_some_and(|a| !a);
                for i in 0..series.len() {
                    if awake_at(i + AHEAD * 4) {
                        let s = &series[i + AHEAD * 4];
                        crate::sketch::prefetch_slice(std::slice::from_ref(&s.windows), 8);
                    }
                    for stage in 0..3u8 {
                        let j = i + AHEAD * (3 - stage as usize);
                        if awake_at(j) {
                            series[j].windows.prefetch_close(stage);
                        }
                    }
                    if asleep[i] {
                        continue;
                    }
                    let s = &mut series[i];
                    let kind = models[s.model as usize].features[s.feature as usize].kind;
                    s.windows.close(b, window, kind, bins, bucket_ms, pool);
                    // still nothing to evaluate while the window stays below
                    // (a dormant series' reference always is)
                    s.settled = s.settled && (s.windows.dormant() || s.below_min_samples(policy));
                }
            };
        // every series' window slides on its own: with many series, in
        // chunks on the workers (each with its own pool, drained into the
        // engine's after: the next events' buckets take from it)
        let threads = self.close_threads.min(awake / PARALLEL_CLOSE_SERIES).max(1);
        pool.keep_for(awake);
        if threads == 1 {
            close(series, asleep, pool);
        } else {
            close_pools.resize_with(threads - 1, Default::default);
            for p in close_pools.iter_mut() {
                p.keep_for(awake / threads + 1);
            }
            let chunk = series.len().div_ceil(threads);
            let mut chunks = series.chunks_mut(chunk).zip(asleep.chunks(chunk));
            let first = chunks.next();
            std::thread::scope(|scope| {
                for ((chunk, asleep), p) in chunks.zip(close_pools.iter_mut()) {
                    let close = &close;
                    scope.spawn(move || close(chunk, asleep, p));
                }
                if let Some((chunk, asleep)) = first {
                    close(chunk, asleep, pool);
                }
            });
            for p in close_pools.iter_mut() {
                pool.absorb(p);
            }
        }
        self.stats.buckets_closed += 1;
        if (b + 1) % self.eval_every == 0 {
            self.evaluate(b);
        }
    }

    /// Merges the closing bucket of each carrier slice into its overall
    /// series' (`registry::Model::carrier_slots`): their values were
    /// written there only.
    fn gather_overall(&mut self) {
        let Engine {
            models,
            series,
            pool,
            cfg,
            ..
        } = self;
        let max_ex = cfg.policy.max_exemplars;
        for model in models.iter() {
            let carrier = model.carrier_slots();
            if carrier.is_empty() {
                continue;
            }
            for (f, feature) in model.features.iter().enumerate() {
                let f = f as u32;
                let overall = model.series_at(f, 0);
                if overall == NO_SERIES {
                    continue;
                }
                for &slot in carrier {
                    let part = model.series_at(f, slot);
                    if part == NO_SERIES {
                        continue;
                    }
                    let [o, p] = series
                        .get_disjoint_mut([overall as usize, part as usize])
                        .expect("a slice's series is not the overall one");
                    o.windows
                        .absorb_front(&mut p.windows, feature.kind, max_ex, pool);
                }
            }
        }
    }

    /// A series just settled: if its reference is below
    /// `min_reference_samples` it stays settled for the engine's life, and
    /// goes dormant ([`super::Series::settled`]).
    pub(super) fn doze(&mut self, sid: u32) {
        let s = &mut self.series[sid as usize];
        let below =
            |r: &crate::window::Reference| r.sketch.rows() < self.cfg.policy.min_reference_samples;
        if self.keep_dormant || s.windows.dormant() || !s.windows.pinned().is_some_and(below) {
            return;
        }
        let carrier = self.models[s.model as usize]
            .carrier_slots()
            .contains(&s.slot);
        s.windows.go_dormant(carrier, &mut self.pool);
        self.asleep[sid as usize] = !carrier;
        self.dormant += 1;
        self.asleep_count += usize::from(!carrier);
    }
}
