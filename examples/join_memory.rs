//! Join memory and throughput: N predictions (default 5M) over 24 h of event
//! time, half of them never labelled, the rest labelled 5–15 min later, with
//! the default 1-day TTL and `join.max_waiting` cap. Prints the join's
//! counters, outcomes/s, and the bytes the waiting predictions cost.
//!
//!     cargo run --release --example join_memory -- [N]
//!     /usr/bin/time -v target/release/examples/join_memory 5000000   # peak RSS

use std::collections::VecDeque;
use std::time::Instant;

use driftline::config::Config;
use driftline::engine::Engine;
use driftline::event::{Outcome, Prediction, Scalar, Value};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let t0 = 1_767_225_600_000i64;
    let step = (24.0 * 3_600_000.0 / n as f64).max(1.0);
    let mut e = Engine::new(Config::default());
    let mut x = 0x1234_5678u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut pending: VecDeque<Outcome> = VecDeque::new();
    let rss0 = rss_kib();
    let started = Instant::now();
    let mut outcome_time = std::time::Duration::ZERO;
    let mut outcomes = 0u64;
    for i in 0..n {
        let t = t0 + (i as f64 * step) as i64;
        while pending.front().is_some_and(|o| o.event_time <= t) {
            let o = pending.pop_front().unwrap();
            let s = Instant::now();
            e.apply_outcome(&o).unwrap();
            outcome_time += s.elapsed();
            outcomes += 1;
        }
        let score = rnd();
        let p = Prediction {
            trace_id: format!("{i:032x}"),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: vec![("x".into(), Value::Number(rnd()))],
            slices: vec![(
                "region".into(),
                if i % 3 == 0 { "EU".into() } else { "US".into() },
            )],
            prediction: Scalar::Number((score > 0.5) as u8 as f64),
            score: Some(score),
            shadow: false,
            prepared: Default::default(),
        };
        e.apply_prediction(&p).unwrap();
        if rnd() < 0.5 {
            let at = t + 300_000 + (rnd() * 600_000.0) as i64;
            let o = Outcome {
                trace_id: p.trace_id.clone(),
                model_id: "m".into(),
                event_time: at,
                label: Scalar::Number((rnd() < score) as u8 as f64),
            };
            let k = pending.partition_point(|q| q.event_time <= at);
            pending.insert(k, o);
        }
        e.drain_alerts().for_each(drop);
    }
    let secs = started.elapsed().as_secs_f64();
    let j = e.quality.join.stats;
    let waiting = e.quality.join.waiting() as u64;
    let rss = rss_kib();
    println!("predictions: {n}, outcomes applied: {outcomes}, wall {secs:.1}s");
    println!(
        "join: joined {} expired {} evicted {} unmatched {} duplicates {}",
        j.joined, j.expired, j.evicted, j.unmatched, j.duplicates
    );
    println!(
        "waiting predictions at the end: {waiting} (cap {})",
        e.config().join.max_waiting
    );
    println!(
        "outcome apply: {:.0} outcomes/s",
        outcomes as f64 / outcome_time.as_secs_f64().max(1e-9)
    );
    println!(
        "RSS: start {} MiB, end {} MiB; ≈ {} bytes per waiting prediction (everything else included)",
        rss0 / 1024,
        rss / 1024,
        (rss.saturating_sub(rss0) * 1024) / waiting.max(1)
    );
}
