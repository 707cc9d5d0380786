//! Engine checkpoints: a run saved and restored at any event continues
//! exactly as the uninterrupted run (same alerts, same counts), and the file
//! format refuses what it cannot read.

use driftline::alert::Alert;
use driftline::checkpoint::{self, Body, CheckpointError};
use driftline::config::Config;
use driftline::engine::Engine;
use driftline::event::{Event, Outcome, Prediction, Scalar, Value};

use crate::util::{Rng, T0};

/// 10 h at 2 predictions/s; from hour 5 `x` shifts and the model turns
/// wrong for half of region=US; outcomes arrive 5–15 min after their
/// prediction (every fifth never does). Events in arrival (event-time) order.
fn stream() -> Vec<Event> {
    let mut rng = Rng::new(11);
    let mut events = Vec::new();
    for i in 0..72_000i64 {
        let t = T0 + i * 500;
        let late = t >= T0 + 5 * 3_600_000;
        let mut x = rng.normal();
        if late {
            x += 1.0;
        }
        let us = rng.uniform() < 0.4;
        let truth = (rng.uniform() < 0.3) as u8;
        let mut pred = truth;
        if late && us && rng.uniform() < 0.5 {
            pred = 1 - truth;
        }
        let device = ["ios", "android", "web"][(rng.next_u64() % 3) as usize];
        events.push((
            t,
            Event::Prediction(Box::new(Prediction {
                trace_id: format!("t{i}"),
                model_id: "m".into(),
                model_version: Some("v1".into()),
                event_time: t,
                features: vec![
                    ("x".into(), Value::Number(x)),
                    ("device".into(), Value::Text(device.into())),
                    (
                        "n".into(),
                        if i % 50 == 0 {
                            Value::Null
                        } else {
                            Value::Number(rng.uniform())
                        },
                    ),
                ],
                slices: vec![("region".into(), if us { "US".into() } else { "EU".into() })],
                prediction: Scalar::Number(pred as f64),
                score: Some(if pred == 1 { 0.8 } else { 0.2 }),
                shadow: false,
                prepared: Default::default(),
            })),
        ));
        if i % 5 != 0 {
            let at = t + 300_000 + (rng.uniform() * 600_000.0) as i64;
            events.push((
                at,
                Event::Outcome(Outcome {
                    trace_id: format!("t{i}"),
                    model_id: "m".into(),
                    event_time: at,
                    label: Scalar::Number(truth as f64),
                }),
            ));
        }
    }
    events.sort_by_key(|(t, _)| *t);
    events.into_iter().map(|(_, e)| e).collect()
}

fn counts(e: &Engine) -> Vec<String> {
    let mut v: Vec<String> = e
        .series_counts()
        .map(|c| format!("{} {} {:?} {}", c.model, c.feature, c.slice, c.applied))
        .collect();
    v.sort();
    v
}

/// The engine's state through the checkpoint file format.
fn encoded(e: &Engine, cfg: &Config) -> Vec<u8> {
    checkpoint::encode(&Body {
        written_at_ms: 0,
        crate_version: "test".into(),
        config_fingerprint: checkpoint::config_fingerprint(cfg),
        group: "g".into(),
        offsets: Vec::new(),
        engine: e.save_state().unwrap(),
        origins: Vec::new(),
    })
    .unwrap()
}

/// The uninterrupted run: its engine at the end, and every alert it made.
fn uninterrupted(events: &[Event], cfg: &Config) -> (Engine, Vec<Alert>) {
    let mut whole = Engine::new(cfg.clone());
    let mut want = Vec::new();
    feed(&mut whole, events, &mut want);
    whole.finish();
    want.extend(whole.drain_alerts());
    (whole, want)
}

fn feed(e: &mut Engine, events: &[Event], out: &mut Vec<Alert>) {
    for ev in events {
        e.apply(ev).unwrap();
        out.extend(e.drain_alerts());
    }
}

#[test]
fn a_restored_engine_continues_exactly_as_the_uninterrupted_one() {
    let events = stream();
    let cfg = Config::default();
    let (whole, want) = uninterrupted(&events, &cfg);
    let kinds: std::collections::BTreeSet<_> = want.iter().map(|a| a.kind).collect();
    assert!(
        want.len() >= 3 && kinds.len() >= 2,
        "the stream must alert on inputs and quality: {kinds:?}"
    );

    // restored at several points, through the file format, every time
    let cuts = [1usize, 20_000, 61_111, 90_000, events.len() - 1];
    let mut e = Engine::new(cfg.clone());
    let mut got = Vec::new();
    let mut from = 0;
    for &cut in &cuts {
        feed(&mut e, &events[from..cut], &mut got);
        let bytes = encoded(&e, &cfg);
        let back = checkpoint::decode(std::path::Path::new("mem"), &bytes, &cfg).unwrap();
        e = Engine::restore(cfg.clone(), Default::default(), &back.engine).unwrap();
        from = cut;
    }
    feed(&mut e, &events[from..], &mut got);
    e.finish();
    got.extend(e.drain_alerts());

    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert_eq!(counts(&e), counts(&whole));
    assert_eq!(e.stats.predictions, whole.stats.predictions);
    assert_eq!(e.stats.outcomes, whole.stats.outcomes);
    assert_eq!(e.quality.join.stats, whole.quality.join.stats);
    // the recount: every prediction counted once in each of its series
    let n_predictions = events
        .iter()
        .filter(|e| matches!(e, Event::Prediction(_)))
        .count() as u64;
    let overall_x = e
        .series_counts()
        .find(|c| c.feature == "x" && c.slice.is_none())
        .unwrap();
    assert_eq!(overall_x.applied, n_predictions);
}

#[test]
fn a_checkpoint_under_another_state_shaping_config_is_refused() {
    let cfg = Config::default();
    let e = Engine::new(cfg.clone());
    let bytes = encoded(&e, &cfg);
    let mut other = cfg.clone();
    other.series.max_slice_values += 1;
    let err = checkpoint::decode(std::path::Path::new("c.ckpt"), &bytes, &other).unwrap_err();
    assert!(matches!(err, CheckpointError::Config { .. }));
    assert!(err.to_string().contains("c.ckpt"), "{err}");
    // thresholds are not state: tuning them keeps the checkpoint
    let mut tuned = cfg.clone();
    tuned.policy.persistence_k = 2;
    assert!(checkpoint::decode(std::path::Path::new("c.ckpt"), &bytes, &tuned).is_ok());
    // garbage engine state is an error, not a misread
    assert!(Engine::restore(cfg, Default::default(), &[0xff; 7]).is_err());
}

/// The revoke race (issue: the service checkpoints a revoked partition's
/// state when its loop next turns, after the rebalance callback returned):
/// the new owner may restore the periodic checkpoint from before, run on and
/// checkpoint, and then the old owner's revoke checkpoint lands over it.
/// Every checkpoint is one consistent (state, offsets) pair, and the old
/// owner applies nothing of a revoked partition after the callback
/// (librdkafka drops fetched messages of a revoked partition, and the loop
/// drains assignment changes before it handles a message), so whoever
/// restores whichever checkpoint continues exactly: the race costs
/// re-reading, and re-emits alerts with the same ids and content.
#[test]
fn a_late_revoke_checkpoint_over_a_newer_one_costs_rereading_not_correctness() {
    let events = stream();
    let cfg = Config::default();
    let (whole, want) = uninterrupted(&events, &cfg);
    let restore = |bytes: &[u8]| {
        let back = checkpoint::decode(std::path::Path::new("mem"), bytes, &cfg).unwrap();
        Engine::restore(cfg.clone(), Default::default(), &back.engine).unwrap()
    };
    let (w, x, y) = (20_000usize, 45_000usize, 80_000usize);
    let mut published = Vec::new();
    // the old owner: a periodic checkpoint at w, revoked at x
    let mut old = Engine::new(cfg.clone());
    feed(&mut old, &events[..w], &mut published);
    let periodic = encoded(&old, &cfg);
    feed(&mut old, &events[w..x], &mut published);
    let late = encoded(&old, &cfg);
    // the new owner restored the periodic one before the late write, ran to y
    let mut new = restore(&periodic);
    feed(&mut new, &events[w..y], &mut published);
    let newer = encoded(&new, &cfg);
    // the late write lands over `newer`; a third owner restores what is there
    for (from, bytes) in [(x, &late), (y, &newer)] {
        let mut third = restore(bytes);
        let mut out = published.clone();
        feed(&mut third, &events[from..], &mut out);
        third.finish();
        out.extend(third.drain_alerts());
        assert_eq!(counts(&third), counts(&whole), "restored at {from}");
        assert_eq!(third.stats.predictions, whole.stats.predictions);
        // every alert published by anyone is the uninterrupted run's, and
        // none of its alerts is missing
        let key = |a: &Alert| (a.alert_id.clone(), a.state, a.window_end);
        let by_key: std::collections::HashMap<_, _> = want.iter().map(|a| (key(a), a)).collect();
        for a in &out {
            assert_eq!(Some(&a), by_key.get(&key(a)), "restored at {from}");
        }
        let got: std::collections::HashSet<_> = out.iter().map(key).collect();
        assert!(
            want.iter().all(|a| got.contains(&key(a))),
            "restored at {from}: alerts missing"
        );
    }
}
