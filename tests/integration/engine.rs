//! The engine through the library API: causes, caps, lateness.

use driftline::alert::{Alert, AlertKind, AlertState, Cause};
use driftline::config::Config;
use driftline::engine::{Applied, Engine};
use driftline::event::{Event, Prediction, Scalar, Value};

use crate::util::{Rng, T0};

/// Two events per second for `hours`; `f(hour, rng)` gives the features.
fn run(
    hours: f64,
    cfg: Config,
    mut f: impl FnMut(f64, &mut Rng) -> Vec<(String, Value)>,
) -> (Engine, Vec<Alert>) {
    let mut e = Engine::new(cfg);
    let mut rng = Rng::new(5);
    let mut out = Vec::new();
    let n = (hours * 7200.0) as i64;
    for i in 0..n {
        let t = T0 + i * 500;
        let p = Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: f((t - T0) as f64 / 3.6e6, &mut rng)
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
            slices: vec![(
                "region".into(),
                if i % 2 == 0 { "EU".into() } else { "US".into() },
            )],
            prediction: Scalar::Number(0.0),
            score: None,
            shadow: false,
            prepared: Default::default(),
        };
        e.apply_prediction(&p).unwrap();
        out.extend(e.drain_alerts());
    }
    e.finish();
    out.extend(e.drain_alerts());
    (e, out)
}

fn first<'a>(alerts: &'a [Alert], kind: AlertKind, feature: &str) -> &'a Alert {
    alerts
        .iter()
        .find(|a| {
            a.kind == kind
                && a.feature.as_deref() == Some(feature)
                && a.slice.is_empty()
                && a.state == AlertState::Firing
        })
        .unwrap_or_else(|| panic!("no {kind:?} alert on {feature}: {alerts:#?}"))
}

#[test]
fn a_new_category_set_is_a_feature_change() {
    let (_, alerts) = run(4.0, Config::default(), |h, rng| {
        let r = (rng.next_u64() % 3) as usize;
        let cat = if h < 3.0 {
            ["a", "b", "c"][r]
        } else {
            ["A", "B", "C"][r]
        };
        vec![("cat".into(), Value::Text(cat.into()))]
    });
    let a = first(&alerts, AlertKind::DataQuality, "cat");
    assert_eq!(a.test, "new_category_share");
    assert_eq!(a.suspected_cause, Cause::FeatureChange);
    let d = first(&alerts, AlertKind::DataDrift, "cat");
    assert_eq!(d.suspected_cause, Cause::FeatureChange, "{:#?}", d.evidence);
    assert!(d.evidence.new_category_share.unwrap() > 0.5);
    assert!(
        d.evidence
            .top_moves
            .iter()
            .any(|m| m.reference_share == 0.0)
    );
}

#[test]
fn strings_in_a_numeric_feature_are_a_pipeline_problem() {
    let (_, alerts) = run(4.0, Config::default(), |h, rng| {
        let x = rng.normal();
        let v = if h >= 3.0 && rng.uniform() < 0.2 {
            Value::Text("n/a".into())
        } else {
            Value::Number(x)
        };
        vec![("x".into(), v)]
    });
    let a = first(&alerts, AlertKind::DataQuality, "x");
    assert_eq!(a.test, "type_violation");
    assert_eq!(a.suspected_cause, Cause::Pipeline);
    assert!(a.evidence.type_violation_rate > 0.01, "{:#?}", a.evidence);
    assert!(!a.exemplar_trace_ids.is_empty());
    assert!(
        alerts.iter().all(|a| a.kind != AlertKind::DataDrift),
        "the numbers did not move"
    );
}

#[test]
fn a_feature_that_stops_arriving_counts_as_missing() {
    let (_, alerts) = run(4.0, Config::default(), |h, rng| {
        let mut f = vec![("x".to_string(), Value::Number(rng.normal()))];
        if h < 3.0 || rng.uniform() < 0.5 {
            f.push(("y".into(), Value::Number(rng.normal())));
        }
        f
    });
    let a = first(&alerts, AlertKind::DataQuality, "y");
    assert_eq!(a.test, "null_rate");
    assert!(a.evidence.current_null_rate > 0.05 && a.evidence.reference_null_rate == 0.0);
    assert!(
        alerts
            .iter()
            .any(|x| x.alert_id == a.alert_id && x.state == AlertState::Escalated),
        "half the events lack y: critical in the end"
    );
}

#[test]
fn caps_hold_and_late_events_are_counted() {
    let mut cfg = Config::default();
    cfg.series.max_slice_values = 2;
    cfg.series.max_categories = 3;
    let mut e = Engine::new(cfg);
    for i in 0..300i64 {
        let p = Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: None,
            event_time: T0 + i * 1000,
            features: vec![("c".into(), Value::Text(format!("v{i}").into()))],
            slices: vec![("user".into(), format!("u{i}").into())],
            prediction: Scalar::Number(0.0),
            score: None,
            shadow: false,
            prepared: Default::default(),
        };
        // the first events are held until enough agree on the time
        assert_ne!(e.apply_prediction(&p).unwrap(), Applied::Late);
    }
    let m = &e.models()[0];
    // overall, `__other__` and two user values
    assert_eq!(m.slots.len(), 4);
    let c = m.features.iter().find(|f| f.name == "c").unwrap();
    assert_eq!(
        c.category_names.len(),
        4,
        "three categories and `__other__`"
    );
    // series: (c, prediction) × 4 slots
    assert_eq!(e.series().len(), 8);
    let late = Prediction {
        trace_id: "late".into(),
        model_id: "m".into(),
        model_version: None,
        event_time: T0,
        features: vec![],
        slices: vec![],
        prediction: Scalar::Number(0.0),
        score: None,
        shadow: false,
        prepared: Default::default(),
    };
    assert_eq!(e.apply_prediction(&late).unwrap(), Applied::Late);
    assert_eq!(e.stats.late, 1);
}

/// Labels whose base rate triples while inputs and scores stay put: the
/// label distribution alerts (cause label_shift) and quality alerts name
/// label shift as their cause, weighing the label alert.
#[test]
fn a_moved_label_distribution_is_label_shift() {
    use driftline::event::Outcome;
    let mut e = Engine::new(Config::default());
    let mut rng = Rng::new(17);
    let mut pending: std::collections::VecDeque<Outcome> = Default::default();
    let mut alerts = Vec::new();
    for i in 0..(6 * 7200) {
        let t = T0 + i * 500;
        while pending.front().is_some_and(|o| o.event_time <= t) {
            let o = pending.pop_front().unwrap();
            e.apply_outcome(&o).unwrap();
        }
        let score = 0.1 + 0.3 * rng.uniform();
        let p = Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: vec![("x".into(), Value::Number(rng.normal()))],
            slices: vec![],
            prediction: Scalar::Number(0.0),
            score: Some(score),
            shadow: false,
            prepared: Default::default(),
        };
        e.apply_prediction(&p).unwrap();
        let rate = if t - T0 >= 4 * 3_600_000 { 0.75 } else { 0.25 };
        let o = Outcome {
            trace_id: p.trace_id.clone(),
            model_id: "m".into(),
            event_time: t + 120_000,
            label: Scalar::Number((rng.uniform() < rate) as u8 as f64),
        };
        pending.push_back(o);
        alerts.extend(e.drain_alerts());
    }
    let label = alerts
        .iter()
        .find(|a| {
            a.kind == AlertKind::DataDrift
                && a.feature.as_deref() == Some("label")
                && a.slice.is_empty()
        })
        .unwrap_or_else(|| {
            panic!(
                "no label drift: {:#?}",
                alerts
                    .iter()
                    .map(|a| (&a.kind, &a.feature, &a.test))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(label.suspected_cause, Cause::LabelShift);
    let perf = alerts
        .iter()
        .find(|a| {
            matches!(a.kind, AlertKind::Performance | AlertKind::ConceptDrift)
                && a.slice.is_empty()
                && a.suspected_cause == Cause::LabelShift
        })
        .unwrap_or_else(|| {
            panic!(
                "no quality alert blamed on label shift: {:#?}",
                alerts
                    .iter()
                    .map(|a| (
                        a.kind,
                        a.feature.clone(),
                        a.slice.clone(),
                        a.test.clone(),
                        a.suspected_cause,
                        (a.emitted_at - T0) / 60_000
                    ))
                    .collect::<Vec<_>>()
            )
        });
    // the quality alert may come first (the label alert waits for its persistence)
    assert!(
        perf.emitted_at <= label.emitted_at
            || perf.evidence.related_alert_ids.contains(&label.alert_id)
    );
    assert!(
        alerts.iter().all(|a| a.feature.as_deref() != Some("x")),
        "the input did not move"
    );
}

/// Labels 1–3 h late and a concept flip: the concept-drift alert's window
/// is the prediction-time range whose outcomes raised the detector — it
/// reaches past the flip — not the matured window that ended before it.
#[test]
fn a_delayed_label_alert_covers_the_predictions_that_moved_it() {
    use driftline::event::Outcome;
    let mut e = Engine::new(Config::default());
    let mut rng = Rng::new(29);
    let mut pending: Vec<Outcome> = Vec::new();
    let mut alerts = Vec::new();
    let flip = T0 + 5 * 3_600_000;
    for i in 0..(12 * 7200) {
        let t = T0 + i * 500;
        // outcomes in event-time order as they come due
        pending.sort_by_key(|o| std::cmp::Reverse(o.event_time));
        while pending.last().is_some_and(|o| o.event_time <= t) {
            e.apply_outcome(&pending.pop().unwrap()).unwrap();
        }
        let x = rng.normal();
        let score = 1.0 / (1.0 + (-2.0 * x).exp());
        let p = Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: vec![("x".into(), Value::Number(x))],
            slices: vec![],
            prediction: Scalar::Number((score > 0.5) as u8 as f64),
            score: Some(score),
            shadow: false,
            prepared: Default::default(),
        };
        e.apply_prediction(&p).unwrap();
        // before the flip labels follow the score; after it, the opposite
        let rate = if t < flip { score } else { 1.0 - score };
        let delay = 3_600_000 + (rng.uniform() * 7_200_000.0) as i64;
        pending.push(Outcome {
            trace_id: p.trace_id.clone(),
            model_id: "m".into(),
            event_time: t + delay,
            label: Scalar::Number((rng.uniform() < rate) as u8 as f64),
        });
        alerts.extend(e.drain_alerts());
    }
    let concept = alerts
        .iter()
        .find(|a| {
            a.kind == AlertKind::ConceptDrift && a.slice.is_empty() && a.state == AlertState::Firing
        })
        .unwrap_or_else(|| {
            panic!(
                "no concept drift: {:?}",
                alerts
                    .iter()
                    .map(|a| (a.kind, a.test.clone()))
                    .collect::<Vec<_>>()
            )
        });
    assert!(
        concept.window_end > flip,
        "window {}..{} (minutes from the start) ends before the flip at {}",
        (concept.window_start - T0) / 60_000,
        (concept.window_end - T0) / 60_000,
        (flip - T0) / 60_000
    );
    assert!(concept.window_start < concept.window_end);
    assert!(
        concept.emitted_at > concept.window_end,
        "labels come after their predictions"
    );
    // the pairs counted are those of the window: two per second of it at most
    let span_s = (concept.window_end - concept.window_start) / 1000;
    assert!(concept.sample_size.current > 0 && concept.sample_size.current <= 2 * span_s);
}

/// A window with fewer than `policy.min_samples` values is not tested: it
/// cannot fire, and an open drift alert does not resolve on a handful of
/// values that happen to look like the reference.
#[test]
fn too_few_values_neither_fire_nor_resolve() {
    let mut cfg = Config::default();
    cfg.policy.min_samples = 2000;
    let (_, alerts) = run(6.0, cfg, |h, rng| {
        let x = if h < 2.0 {
            Value::Number(rng.normal())
        } else if h < 3.0 {
            Value::Number(rng.normal() + 3.0)
        } else if rng.uniform() < 0.1 {
            // ~720 values an hour, like the reference's: enough to look calm, too few to test
            Value::Number(rng.normal())
        } else {
            Value::Null
        };
        vec![("x".to_string(), x)]
    });
    first(&alerts, AlertKind::DataDrift, "x");
    let drift: Vec<_> = alerts
        .iter()
        .filter(|x| x.kind == AlertKind::DataDrift)
        .collect();
    assert!(
        drift.iter().all(|x| x.state != AlertState::Resolved),
        "resolved on too few values: {drift:#?}"
    );
    // the overall series and each region fired once, for the one shift
    assert!(
        drift
            .iter()
            .filter(|x| x.state == AlertState::Firing)
            .count()
            <= 3
    );
}

/// A service may apply a whole partition before another lets the watermark
/// move, so the buckets after the reference are opened (and filled) before
/// the reference is pinned; replay applies the same events in time order
/// and pins it as soon as the reference's end passes. Exemplars are chosen
/// when an alert is made, not when a value is recorded, so both give the
/// same alerts, exemplars included.
#[test]
fn exemplars_do_not_depend_on_when_the_reference_was_pinned() {
    let cfg = || {
        Config::from_toml_with_env(
            "[reference]\nwarmup = \"20m\"\n[window]\ncurrent = \"10m\"\n\
             [policy]\nmin_samples = 50\nmin_reference_samples = 100\n",
            "small.toml",
            &[],
        )
        .unwrap()
    };
    let mut rng = Rng::new(11);
    let events: Vec<Event> = (0..600)
        .map(|i| {
            let t = T0 + i * 6_000;
            let shift = if i >= 300 { 3.0 } else { 1.0 };
            Event::Prediction(Box::new(Prediction {
                trace_id: format!("{:032x}", rng.next_u64()),
                model_id: "m".into(),
                model_version: None,
                event_time: t,
                features: vec![
                    (
                        "amount".into(),
                        Value::Number((3.3 + 0.6 * rng.normal()).exp() * shift),
                    ),
                    (
                        "device".into(),
                        Value::Text(
                            if rng.uniform() < 0.1 && i >= 300 {
                                "tv"
                            } else {
                                "ios"
                            }
                            .into(),
                        ),
                    ),
                ],
                slices: vec![],
                prediction: Scalar::Number(0.0),
                score: None,
                shadow: false,
                prepared: Default::default(),
            }))
        })
        .collect();
    // replay: one merged stream, in time order
    let mut a = Engine::new(cfg());
    let mut replayed = Vec::new();
    for ev in &events {
        a.apply(ev).unwrap();
        replayed.extend(a.drain_alerts());
    }
    a.finish();
    replayed.extend(a.drain_alerts());
    // a service: the predictions partition read whole while the other
    // partition has delivered nothing, so nothing closes until it goes
    let mut b = Engine::new(cfg());
    let (p, idle) = (b.add_source(), b.add_source());
    let mut served = Vec::new();
    for ev in &events {
        b.apply_from(ev, p).unwrap();
        served.extend(b.drain_alerts());
    }
    assert!(
        served.is_empty(),
        "nothing may close while a partition holds the watermark"
    );
    b.remove_source(idle);
    b.finish();
    served.extend(b.drain_alerts());
    let key = |x: &Alert| {
        (
            x.alert_id.clone(),
            x.state,
            x.window_end,
            x.exemplar_trace_ids.clone(),
        )
    };
    assert!(
        replayed
            .iter()
            .any(|x| x.feature.as_deref() == Some("amount")
                && x.state == AlertState::Firing
                && !x.exemplar_trace_ids.is_empty()),
        "no drift on amount with exemplars: {replayed:#?}"
    );
    assert_eq!(
        served.iter().map(key).collect::<Vec<_>>(),
        replayed.iter().map(key).collect::<Vec<_>>()
    );
}

/// Alerts as the JSON lines replay writes.
fn as_json(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

/// An engine with a one-hour warm-up, `policy` (TOML) and room for
/// `slice_values` values per slice dimension.
fn engine_of(policy: &str, slice_values: usize) -> Engine {
    let toml = format!("[reference]\nwarmup = \"1h\"\n{policy}");
    let mut cfg = Config::from_toml_with_env(&toml, "test.toml", &[]).unwrap();
    cfg.series.max_slice_values = slice_values;
    Engine::new(cfg)
}

/// A prediction of model `m` with numeric features and one slice.
fn sliced(trace: u64, t: i64, features: &[(&str, f64)], slice: (&str, &str)) -> Prediction {
    Prediction {
        trace_id: format!("{trace:032x}"),
        model_id: "m".into(),
        model_version: None,
        event_time: t,
        features: features
            .iter()
            .map(|&(k, v)| (k.into(), Value::Number(v)))
            .collect(),
        slices: vec![(slice.0.into(), slice.1.into())],
        prediction: Scalar::Number(0.0),
        score: None,
        shadow: false,
        prepared: Default::default(),
    }
}

/// With enough series a bucket's windows close on several threads, each
/// with its own pool of recycled sketches, and with `defer_writes` the
/// writes go to the series in groups on those threads too: the alerts and
/// the saved state (early, with buckets open, and late) are the same, byte
/// for byte, as on one.
#[test]
fn closing_windows_and_writing_on_threads_changes_nothing() {
    let shops: Vec<String> = (0..700).map(|i| format!("s{i}")).collect();
    let play = |workers: usize, groups: bool| {
        let mut e = engine_of("[policy]\nmin_samples = 50\n", 1000);
        e.set_workers(workers);
        e.defer_writes(groups);
        let mut rng = Rng::new(17);
        let (mut out, mut states) = (Vec::new(), Vec::new());
        for i in 0..4 * 7200i64 {
            // one event out of order before any bucket closed (with writes
            // queued): earlier buckets open, the queued writes' places move
            let t = T0 + if i == 100 { -90_000 } else { i * 500 };
            let shift = if t - T0 >= 3 * 3_600_000 { 2.0 } else { 0.0 };
            let trace = rng.next_u64();
            let features = [("x", rng.normal() + shift), ("y", rng.normal())];
            let shop = shops[(rng.next_u64() % 700) as usize].as_str();
            let p = sliced(trace, t, &features, ("shop", shop));
            e.apply_prediction(&p).unwrap();
            out.extend(e.drain_alerts());
            if i == 110 {
                // the open buckets, each value in its own
                e.flush();
                states.push(e.save_state().unwrap());
            }
        }
        e.flush();
        assert!(e.series().len() > 1400, "{} series", e.series().len());
        states.push(e.save_state().unwrap());
        e.finish();
        out.extend(e.drain_alerts());
        let alerts = as_json(&out);
        (alerts, states)
    };
    let (one, state_one) = play(1, false);
    assert!(
        one.iter().any(|a| a.contains("\"feature\":\"x\"")),
        "the shift in x fired nothing"
    );
    for (workers, groups) in [(2, false), (2, true), (3, true)] {
        let (other, state_other) = play(workers, groups);
        let how = format!("{workers} threads, write groups {groups}");
        assert_eq!(one, other, "alerts differ between one thread and {how}");
        assert!(state_one == state_other, "saved state differs with {how}");
    }
}

/// An overall series takes as they come only the values of events outside
/// its carrier (the model's first slice dimension); the carrier slices'
/// are merged in when each bucket closes. What it holds is what writing
/// every value to it gives — the same as with slices not tracked at all —
/// whatever comes: events before any slice, the carrier a dimension other
/// than the first one an event names, events without it, its values past
/// the cap (`__other__`), numbers, categories, nulls and wrong types, and
/// exemplars chosen from all of them.
#[test]
fn the_overall_series_merged_from_its_carrier_is_the_one_written_directly() {
    let regions = ["EU", "US", "APAC", "LATAM", "AF"];
    let play = |track_slices: bool| {
        let mut e = engine_of(
            &format!(
                "[policy]\nmin_samples = 50\nmax_exemplars = 3\n[series]\ntrack_slices = {track_slices}\n"
            ),
            3,
        );
        let mut rng = Rng::new(23);
        for i in 0..3 * 7200i64 {
            let t = T0 + i * 500;
            let shift = if t - T0 >= 2 * 3_600_000 { 1.5 } else { 0.0 };
            let amount = match rng.next_u64() % 50 {
                0 => Value::Null,
                1 => Value::Text("n/a".into()),
                _ => Value::Number(rng.normal() * 10.0 + 50.0 + shift * 10.0),
            };
            let device = match rng.next_u64() % 40 {
                0 => Value::Null,
                r => Value::Text(["ios", "android", "web", "tv"][(r % 4) as usize].into()),
            };
            let region = regions[(rng.next_u64() % 5) as usize];
            let channel = if rng.next_u64().is_multiple_of(2) {
                "app"
            } else {
                "site"
            };
            // none at first; then only `channel` (the carrier from then
            // on), then both, `region` first; every seventh event without
            let slices: Vec<(&str, &str)> = match i {
                _ if i < 1000 => vec![],
                _ if i < 2000 => vec![("channel", channel)],
                _ if i % 7 == 0 => vec![("region", region)],
                _ => vec![("region", region), ("channel", channel)],
            };
            let p = Prediction {
                trace_id: format!("{:032x}", rng.next_u64()),
                model_id: "m".into(),
                model_version: None,
                event_time: t,
                features: vec![("amount".into(), amount), ("device".into(), device)],
                slices: slices
                    .into_iter()
                    .map(|(d, v)| (d.into(), v.into()))
                    .collect(),
                prediction: Scalar::Number(rng.normal()),
                score: (i % 3 != 0).then(|| rng.normal()),
                shadow: false,
                prepared: Default::default(),
            };
            e.apply_prediction(&p).unwrap();
            e.drain_alerts();
        }
        e.finish();
        let m = &e.models()[0];
        let overall: Vec<(String, u64, String)> = e
            .series()
            .iter()
            .zip(e.applied())
            .filter(|(s, _)| s.slot == 0)
            .map(|(s, &applied)| {
                (
                    m.features[s.feature as usize].name.clone(),
                    applied,
                    rounded(serde_json::to_value(&s.windows).unwrap()).to_string(),
                )
            })
            .collect();
        (overall, e.series().len())
    };
    // a sum is kept as two doubles (`sketch::moments`), whose low parts
    // may differ in their last bits with the order of the terms; the sum
    // they make may not
    fn rounded(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::Object(o) if o.len() == 2 && o.contains_key("hi") && o.contains_key("lo") => {
                let (hi, lo) = (o["hi"].as_f64().unwrap(), o["lo"].as_f64().unwrap());
                J::from(hi + lo)
            }
            J::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, rounded(v))).collect()),
            J::Array(a) => J::Array(a.into_iter().map(rounded).collect()),
            v => v,
        }
    }
    let (merged, n) = play(true);
    let (direct, one_each) = play(false);
    assert!(n > 20 && one_each == 4, "{n} and {one_each} series");
    assert!(
        merged[0].2.contains("exemplars") && merged[0].2.contains("Pinned"),
        "{}",
        &merged[0].2[..200]
    );
    for (a, b) in merged.iter().zip(&direct) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1, "{}: values taken", a.0);
        assert!(a.2 == b.2, "{}: windows differ:\n{}\n{}", a.0, a.2, b.2);
    }
}

/// A series whose reference is below `min_reference_samples` can never
/// alert: once settled it goes dormant and keeps no current window (a
/// shop of a hundred, a rare value of the carrier dimension, whose open
/// buckets still make the overall series'). Nothing else changes: the
/// alerts, every other series' windows and every series' count of values
/// are those of an engine that keeps every window, written at once or in
/// groups on threads, and across a checkpoint taken while series are
/// dormant (restored, they keep their windows again until they settle).
#[test]
fn a_series_that_can_never_alert_keeps_no_window_and_changes_nothing() {
    let shops: Vec<String> = (0..100).map(|i| format!("s{i:03}")).collect();
    let cfg = || {
        let toml = "[reference]\nwarmup = \"1h\"\n[policy]\nmin_samples = 50\nmin_reference_samples = 500\n";
        let mut cfg = Config::from_toml_with_env(toml, "test.toml", &[]).unwrap();
        cfg.series.max_slice_values = 200;
        cfg
    };
    let event = |i: i64, rng: &mut Rng| {
        let t = T0 + i * 500;
        let shift = if t - T0 >= 3 * 3_600_000 { 1.0 } else { 0.0 };
        // `region` first: the carrier; XX is one event in a hundred
        let region = match rng.next_u64() % 100 {
            0 => "XX",
            r if r % 2 == 0 => "EU",
            _ => "US",
        };
        let shop = shops[(rng.next_u64() % 100) as usize].as_str();
        let device = ["ios", "android", "web"][(rng.next_u64() % 3) as usize];
        let mut slices = vec![("region".into(), region.into())];
        if i % 7 == 0 {
            // without the carrier: written to the overall series directly
            slices.clear();
        }
        if i % 5 != 0 {
            slices.push(("shop".into(), shop.into()));
        }
        Prediction {
            trace_id: format!("{:032x}", rng.next_u64()),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: vec![
                ("x".into(), Value::Number(rng.normal() + shift)),
                ("device".into(), Value::Text(device.into())),
            ],
            slices,
            prediction: Scalar::Number(rng.normal()),
            score: None,
            shadow: false,
            prepared: Default::default(),
        }
    };
    const EVENTS: i64 = 4 * 7200;
    const SAVED_AT: i64 = 3 * 7200;
    // the alerts, the state saved at SAVED_AT, and per series: its name,
    // values taken, whether dormant, and its windows
    let play = |keep: bool, workers: usize| {
        let mut e = Engine::new(cfg());
        if keep {
            e.keep_dormant_windows();
        }
        e.set_workers(workers);
        e.defer_writes(workers > 1);
        let mut rng = Rng::new(31);
        let (mut out, mut saved) = (Vec::new(), Vec::new());
        for i in 0..EVENTS {
            e.apply_prediction(&event(i, &mut rng)).unwrap();
            out.extend(e.drain_alerts());
            if i == SAVED_AT {
                e.flush();
                saved = e.save_state().unwrap();
            }
        }
        e.finish();
        out.extend(e.drain_alerts());
        let alerts = as_json(&out);
        let m = &e.models()[0];
        let series: Vec<(String, u64, bool, String)> = e
            .series()
            .iter()
            .zip(e.applied())
            .map(|(s, &applied)| {
                let name = format!(
                    "{} {:?}",
                    m.features[s.feature as usize].name, m.slots[s.slot as usize]
                );
                if s.windows.dormant() {
                    assert_eq!(s.windows.ring().len(), 0, "{name} keeps closed buckets");
                    assert_eq!(s.windows.totals().rows(), 0, "{name} keeps totals");
                }
                let w = serde_json::to_string(&s.windows).unwrap();
                (name, applied, s.windows.dormant(), w)
            })
            .collect();
        (alerts, saved, series)
    };
    let (kept, kept_saved, all) = play(true, 1);
    assert!(all.iter().all(|s| !s.2));
    assert!(
        kept.iter()
            .any(|a| a.contains("\"feature\":\"x\"") && a.contains("\"EU\"")),
        "the shift in x fired nothing in EU"
    );
    for workers in [1, 2] {
        let (alerts, saved, series) = play(false, workers);
        assert_eq!(kept, alerts, "alerts differ with {workers} workers");
        let dormant: Vec<&String> = series.iter().filter(|s| s.2).map(|s| &s.0).collect();
        // each shop's (3 values × 100) and XX's, not EU's, US's or the overall
        assert_eq!(dormant.len(), 303, "{dormant:?}");
        assert!(dormant.iter().any(|n| n.contains("\"XX\"")), "{dormant:?}");
        assert!(
            !dormant
                .iter()
                .any(|n| n.contains("EU") || n.contains("None"))
        );
        assert_eq!(series.len(), all.len());
        for (a, b) in series.iter().zip(&all) {
            assert_eq!((&a.0, a.1), (&b.0, b.1), "values taken");
            if !a.2 {
                assert!(a.3 == b.3, "{}: windows differ:\n{}\n{}", a.0, a.3, b.3);
            }
        }
        // (most of a shop's state is its reference)
        assert!(
            saved.len() < kept_saved.len() * 9 / 10,
            "{} against {}",
            saved.len(),
            kept_saved.len()
        );
        // restored from the state saved while dormant, and played on
        let mut e = Engine::restore(cfg(), Default::default(), &saved).unwrap();
        e.set_workers(workers);
        e.defer_writes(workers > 1);
        let mut rng = Rng::new(31);
        let mut out = Vec::new();
        for i in 0..EVENTS {
            let p = event(i, &mut rng);
            if i > SAVED_AT {
                e.apply_prediction(&p).unwrap();
                out.extend(e.drain_alerts());
            }
        }
        e.finish();
        out.extend(e.drain_alerts());
        let after = as_json(&out);
        let split = alerts.len() - after.len();
        assert_eq!(
            &alerts[split..],
            &after[..],
            "alerts after a restore differ"
        );
        assert!(
            e.dormant_series() >= 300,
            "{} dormant after the restore",
            e.dormant_series()
        );
    }
}

/// With enough series a watermark's tests run in ranges of series on
/// several threads: where the series in every range fire, the alerts are
/// the same, in the same order, byte for byte, as on one.
#[test]
fn evaluating_on_threads_changes_nothing() {
    let regions: Vec<String> = (0..64).map(|i| format!("r{i:02}")).collect();
    let names = ["a", "b", "c", "d", "e", "f", "g", "x"];
    let play = |workers: usize| {
        let mut e = engine_of(
            "[policy]\nmin_samples = 50\nmin_reference_samples = 50\n",
            100,
        );
        e.set_workers(workers);
        let mut rng = Rng::new(29);
        let mut out = Vec::new();
        // four an event-second for 4 h: ~110 a region in each 30-minute window
        for i in 0..4 * 14_400i64 {
            let t = T0 + i * 250;
            let shift = if t - T0 >= 3 * 3_600_000 { 3.0 } else { 0.0 };
            let mut features: Vec<(&str, f64)> = names.iter().map(|n| (*n, rng.normal())).collect();
            features[7].1 += shift;
            let region = regions[(rng.next_u64() % 64) as usize].as_str();
            let p = sliced(rng.next_u64(), t, &features, ("region", region));
            e.apply_prediction(&p).unwrap();
            out.extend(e.drain_alerts());
        }
        assert!(e.series().len() >= 512, "{} series", e.series().len());
        e.finish();
        out.extend(e.drain_alerts());
        as_json(&out)
    };
    let one = play(1);
    // the shift fired in the regions of the first range and of the last
    for r in ["r00", "r63"] {
        assert!(
            one.iter()
                .any(|a| a.contains(&format!("\"{r}\"")) && a.contains("\"feature\":\"x\"")),
            "nothing fired in region {r}"
        );
    }
    for workers in [2, 3] {
        assert_eq!(one, play(workers), "alerts differ with {workers} threads");
    }
}

/// Writes queued for a flush are applied before anyone outside reads the
/// series: reading them first is refused, not answered with stale counts.
#[test]
#[should_panic(expected = "Engine::flush first")]
fn series_are_not_read_while_writes_wait() {
    let mut e = engine_of("", 1000);
    e.set_workers(2);
    e.defer_writes(true);
    for i in 0..200i64 {
        let shop = format!("s{}", i % 150);
        let p = sliced(i as u64, T0 + i, &[("x", 1.0), ("y", 2.0)], ("shop", &shop));
        e.apply_prediction(&p).unwrap();
    }
    let _ = e.series();
}

/// A slice below `min_samples` is not evaluated while nothing is pending
/// (its series settle), and is again as soon as its window fills: a rare
/// slice that turns busy and shifted fires like any other.
#[test]
fn a_quiet_slice_is_skipped_until_its_window_fills_then_fires() {
    let mut e = engine_of(
        "[policy]\nmin_samples = 200\nmin_reference_samples = 20\n",
        10,
    );
    let mut rng = Rng::new(23);
    let mut out = Vec::new();
    let rare_settled = |e: &Engine| {
        e.series()
            .iter()
            .zip(e.series_counts())
            .filter(|(_, c)| c.slice == Some(("region", "rare")))
            .map(|(s, _)| s.settled)
            .collect::<Vec<bool>>()
    };
    let mut seen_settled = false;
    // two events a second: hours 0–3 one in 50 is "rare" (~70 per 30-minute
    // window, under 200); from hour 3 half are, shifted by three deviations
    for i in 0..6 * 7200i64 {
        let t = T0 + i * 500;
        let h = (t - T0) as f64 / 3.6e6;
        let busy = h >= 3.0;
        let rare = if busy { i % 2 == 0 } else { i % 50 == 0 };
        let x = rng.normal() + if rare && busy { 3.0 } else { 0.0 };
        let region = if rare { "rare" } else { "common" };
        let p = sliced(rng.next_u64(), t, &[("x", x)], ("region", region));
        e.apply_prediction(&p).unwrap();
        out.extend(e.drain_alerts());
        if i == 3 * 7200 - 1 {
            let settled = rare_settled(&e);
            assert!(!settled.is_empty(), "no rare series");
            seen_settled = settled.iter().all(|&s| s);
        }
    }
    e.finish();
    out.extend(e.drain_alerts());
    assert!(
        seen_settled,
        "the sparse slice's series were still evaluated at hour 3"
    );
    assert!(
        rare_settled(&e).iter().any(|&s| !s),
        "the busy slice stayed settled"
    );
    let fired = out.iter().any(|a| {
        a.kind == AlertKind::DataDrift
            && a.feature.as_deref() == Some("x")
            && a.slice.get("region").map(String::as_str) == Some("rare")
            && a.state == AlertState::Firing
    });
    assert!(fired, "the rare slice's shift fired nothing: {out:#?}");
}
