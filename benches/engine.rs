//! Criterion benches of the hot path, piece by piece: sketch update and
//! merge, each test, decoding, the engine per event, the outcome join, one
//! watermark's bucket close and evaluation per series (at ~50, ~600 and ~3,000
//! series), and incident grouping. `cargo bench --bench engine`; numbers in
//! docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use driftline::codec::{StreamKind, avro, json};
use driftline::config::Config;
use driftline::drift::{self, categorical, fdr, numeric, quality};
use driftline::engine::Engine;
use driftline::event::{Event, Prediction, Scalar, Value};
use driftline::sketch::{Edges, Quantiles, Sketch, dd_config, ordinal};
use driftline::window::Closed;

/// The allocator the binary ships with, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn prediction(rng: &mut Rng, i: u64, t: i64) -> Prediction {
    const DEV: [&str; 5] = ["ios", "android", "desktop", "tablet", "tv"];
    const REG: [&str; 3] = ["EU", "US", "APAC"];
    let r = |rng: &mut Rng| rng.next();
    Prediction {
        trace_id: format!("{i:032x}"),
        model_id: "checkout-fraud".into(),
        model_version: Some("v7".into()),
        event_time: t,
        features: vec![
            ("amount".into(), Value::Number((r(rng) * 4.0).exp())),
            ("age".into(), Value::Number((18.0 + r(rng) * 60.0).round())),
            ("tenure_days".into(), Value::Number(r(rng) * 800.0)),
            ("clicks".into(), Value::Number((r(rng) * 14.0).round())),
            ("score_a".into(), Value::Number(r(rng) * 4.0 - 2.0)),
            ("latency_ms".into(), Value::Number(r(rng) * 120.0)),
            (
                "device".into(),
                Value::Text(DEV[(r(rng) * 5.0) as usize].into()),
            ),
            (
                "country".into(),
                Value::Text(format!("C{}", (r(rng) * 12.0) as u32).into()),
            ),
        ],
        slices: vec![
            ("region".into(), REG[(r(rng) * 3.0) as usize].into()),
            ("channel".into(), "web".into()),
        ],
        prediction: Scalar::Number(0.0),
        score: Some(r(rng)),
        shadow: false,
        prepared: Default::default(),
    }
}

fn sketches(c: &mut Criterion) {
    let dd = dd_config(0.01);
    let mut rng = Rng(7);
    let xs: Vec<f64> = (0..10_000).map(|_| (rng.next() * 6.0).exp()).collect();
    let mut reference = Quantiles::default();
    xs.iter().for_each(|&x| reference.add(x, ordinal(&dd, x)));
    let edges = Edges::from_reference(&dd, &reference, 10, 40);
    let mut g = c.benchmark_group("sketch");
    g.throughput(Throughput::Elements(xs.len() as u64));
    g.bench_function("update_numeric_10k", |b| {
        b.iter_batched_ref(
            Sketch::new,
            |s| {
                for &x in &xs {
                    s.add_number(x, ordinal(&dd, x));
                }
            },
            BatchSize::SmallInput,
        )
    });
    // the same values as an open bucket writes them (dense counts once busy),
    // settled into the sketch as a close does
    g.bench_function("update_numeric_open_bucket_10k", |b| {
        b.iter_batched_ref(
            driftline::window::Open::default,
            |s| {
                for &x in &xs {
                    s.add_number(x, ordinal(&dd, x));
                }
                s.settled().values
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("update_categorical_10k", |b| {
        b.iter_batched_ref(
            Sketch::new,
            |s| xs.iter().for_each(|&x| s.add_category(x as usize % 12)),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    let mut one = Sketch::new();
    xs[..120]
        .iter()
        .for_each(|&x| one.add_number(x, ordinal(&dd, x)));
    g.bench_function("merge_bucket", |b| {
        b.iter_batched_ref(
            || one.clone(),
            |s| s.merge(black_box(&one)),
            BatchSize::SmallInput,
        )
    });
    // a bucket of 120 values closes: packed, counted into the running
    // totals over the reference's edges, and later counted out
    let mut totals = Sketch::new();
    totals.size_numeric_hist(edges.bins());
    let (mut bytes, mut scratch) = (Vec::new(), driftline::window::FoldScratch::default());
    g.bench_function("close_and_slide_bucket", |b| {
        b.iter(|| {
            let c = Closed::pack(7, black_box(&one), &mut bytes);
            c.fold_into(&mut totals, Some(&edges), &dd, &mut scratch, true);
            c.fold_into(&mut totals, Some(&edges), &dd, &mut scratch, false);
            c.heap_bytes()
        })
    });
    g.bench_function("edges_from_reference", |b| {
        b.iter(|| Edges::from_reference(&dd, black_box(&reference), 10, 40))
    });
    g.finish();
}

fn tests(c: &mut Criterion) {
    let mut rng = Rng(9);
    let r10: Vec<u64> = (0..10)
        .map(|_| 1000 + (rng.next() * 100.0) as u64)
        .collect();
    let c10: Vec<u64> = (0..10).map(|_| 300 + (rng.next() * 100.0) as u64).collect();
    let r41: Vec<u64> = (0..41).map(|_| 300 + (rng.next() * 30.0) as u64).collect();
    let c41: Vec<u64> = (0..41).map(|_| 80 + (rng.next() * 30.0) as u64).collect();
    let pa: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 1.0)).collect();
    let pb: Vec<(f64, f64)> = (0..41)
        .map(|i| (i as f64 * 2.5 + 0.3, 1.0 + rng.next()))
        .collect();
    let ps: Vec<f64> = (0..120).map(|_| rng.next().powi(3)).collect();
    let mut g = c.benchmark_group("test");
    g.bench_function("psi_10_bins", |b| {
        b.iter(|| drift::psi(black_box(&r10), black_box(&c10)))
    });
    g.bench_function("jensen_shannon_10_bins", |b| {
        b.iter(|| drift::jensen_shannon(black_box(&r10), black_box(&c10)))
    });
    g.bench_function("total_variation_10", |b| {
        b.iter(|| drift::total_variation(black_box(&r10), black_box(&c10)))
    });
    g.bench_function("ks_41_bins_with_p", |b| {
        b.iter(|| {
            let d = numeric::ks_statistic(black_box(&r41), black_box(&c41));
            numeric::ks_p_value(d, 14_000, 3_600)
        })
    });
    g.bench_function("wasserstein_100_vs_41_points", |b| {
        b.iter(|| numeric::wasserstein(black_box(&pa), black_box(&pb)))
    });
    // the engine's: a reference's 100 quantile points against a window's bins
    let qs: Vec<f64> = pa.iter().map(|p| p.0).collect();
    let wb: f64 = pb.iter().map(|p| p.1).sum();
    g.bench_function("wasserstein_from_100_quantiles_vs_41_bins", |b| {
        b.iter(|| {
            numeric::wasserstein_from_quantiles(
                black_box(&qs),
                black_box(&pb).iter().copied(),
                black_box(wb),
            )
        })
    });
    g.bench_function("chi_square_10_with_p", |b| {
        b.iter(|| categorical::chi_square(black_box(&r10), black_box(&c10)))
    });
    g.bench_function("null_rate_two_proportion", |b| {
        b.iter(|| {
            quality::two_proportion(
                black_box(140),
                black_box(14_000),
                black_box(90),
                black_box(3_600),
            )
        })
    });
    g.bench_function("new_category_share_10", |b| {
        b.iter(|| categorical::new_category_share(black_box(&r10), black_box(&c10)))
    });
    g.bench_function("bh_120_p_values", |b| {
        b.iter(|| fdr::bh_adjust(black_box(&ps)))
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut rng = Rng(11);
    let p = prediction(&mut rng, 1, 1_767_225_600_000);
    let line = serde_json::to_vec(&p).unwrap();
    let s = avro::schemas().unwrap();
    let datum = avro::encode(&s.prediction, &p).unwrap();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_prediction", |b| {
        b.iter(|| json::decode(StreamKind::Predictions, black_box(&line)).unwrap())
    });
    // the same line through serde_json alone (what read every line before
    // the one-pass reader, and reads every line it leaves)
    g.bench_function("json_prediction_serde_json", |b| {
        b.iter(|| {
            let p: Prediction = serde_json::from_slice(black_box(&line)).unwrap();
            p.validate().unwrap();
            p
        })
    });
    // into the buffers of the event decoded before, as replay and the
    // decode thread do (no allocation)
    g.bench_function("json_prediction_reused", |b| {
        let mut spare = None;
        b.iter(|| {
            let ev = json::decode_reusing(StreamKind::Predictions, black_box(&line), spare.take());
            spare = Some(black_box(ev.unwrap()));
        })
    });
    // lines as producers write them (numbers to a few decimals, not the
    // 17 digits of a double's shortest form), a thousand of them in turn
    let lines: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            let mut p = prediction(&mut rng, i, 1_767_225_600_000 + i as i64 * 60);
            for (_, v) in &mut p.features {
                if let Value::Number(x) = v {
                    *x = (*x * 1e4).round() / 1e4;
                }
            }
            p.score = p.score.map(|s| (s * 1e6).round() / 1e6);
            serde_json::to_vec(&p).unwrap()
        })
        .collect();
    g.bench_function("json_producer_lines_reused", |b| {
        let mut spare = None;
        let mut i = 0;
        b.iter(|| {
            let line = &lines[i % lines.len()];
            i += 1;
            let ev = json::decode_reusing(StreamKind::Predictions, black_box(line), spare.take());
            spare = Some(black_box(ev.unwrap()));
        })
    });
    // the same lines as a file's or a topic's, whose shape is learned from
    // the first and the rest read with it (`json::Shapes`)
    g.bench_function("json_producer_lines_shaped", |b| {
        let mut spare = None;
        let mut shapes = json::Shapes::default();
        let mut i = 0;
        b.iter(|| {
            let line = &lines[i % lines.len()];
            i += 1;
            let ev = json::decode_shaped(
                StreamKind::Predictions,
                black_box(line),
                spare.take(),
                Some(&mut shapes),
            );
            spare = Some(black_box(ev.unwrap()));
        })
    });
    // a decoder is built once per writer schema, as the service and replay
    // hold it; the shipped schema's datums are read in one pass
    let d = avro::DatumDecoder::new(StreamKind::Predictions, &s.prediction).unwrap();
    g.bench_function("avro_prediction", |b| {
        b.iter(|| d.decode(black_box(&datum)).unwrap())
    });
    // what the reader's thread does to each prediction for the engine's
    // (`--workers` 2 or more): each number's DDSketch ordinal
    let dd = dd_config(0.01);
    g.bench_function("prepare_ordinals", |b| {
        let Ok(Event::Prediction(mut p)) = json::decode(StreamKind::Predictions, &line) else {
            unreachable!()
        };
        b.iter(|| driftline::sketch::edges::prepare(black_box(&mut p), &dd))
    });
    g.bench_function("avro_prediction_reused", |b| {
        let mut spare = None;
        b.iter(|| {
            let ev = d.decode_reusing(black_box(&datum), spare.take());
            spare = Some(black_box(ev.unwrap()));
        })
    });
    // the same bytes under another schema name (any writer schema but the
    // shipped one): serde_avro_fast, specialised to it
    let other = apache_avro::Schema::parse_str(
        &avro::PREDICTION_AVSC.replace("\"name\": \"Prediction\"", "\"name\": \"PredictionV2\""),
    )
    .unwrap();
    let d2 = avro::DatumDecoder::new(StreamKind::Predictions, &other).unwrap();
    g.bench_function("avro_prediction_serde_avro_fast", |b| {
        b.iter(|| d2.decode(black_box(&datum)).unwrap())
    });
    // the same datum through apache-avro's schema-aware serde reader (what
    // decoded datums before serde_avro_fast): the reason for the choice
    let r = apache_avro::reader::datum::GenericDatumReader::builder(&s.prediction)
        .build()
        .unwrap();
    g.bench_function("avro_prediction_apache_avro", |b| {
        b.iter(|| {
            let mut rest: &[u8] = black_box(&datum);
            let p: Prediction = r.read_deser(&mut rest).unwrap();
            p.validate().unwrap();
            p
        })
    });
    g.finish();
}

fn engine(c: &mut Criterion) {
    let mut rng = Rng(13);
    // 3 hours at 20 events/s: references pinned, windows full
    let t0 = 1_767_225_600_000i64;
    let warm: Vec<Prediction> = (0..216_000)
        .map(|i| prediction(&mut rng, i, t0 + i as i64 * 50))
        .collect();
    let mut e = Engine::new(Config::default());
    for p in &warm {
        e.apply_prediction(p).unwrap();
    }
    e.drain_alerts().for_each(drop);
    let next: Vec<Prediction> = (0..20_000)
        .map(|i| prediction(&mut rng, i, t0 + 216_000 * 50 + i as i64 * 50))
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(next.len() as u64));
    g.sample_size(20);
    // each iteration continues the stream (bucket closes and evaluations
    // included); cloning the events is setup, not measured. Prepared: each
    // event's ordinals worked out beforehand, as the reader's thread does
    // with two workers (what the engine's thread is spared)
    let dd = e.sketch_config();
    let mut k = 0i64;
    for (name, prepared) in [
        ("apply_prediction_8_features_2_slices", false),
        ("apply_prediction_8_features_2_slices_prepared", true),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    k += 1;
                    next.iter()
                        .map(|p| {
                            let mut p = p.clone();
                            p.event_time += k * 20_000 * 50;
                            if prepared {
                                driftline::sketch::edges::prepare(&mut p, &dd);
                            }
                            p
                        })
                        .collect::<Vec<_>>()
                },
                |events| apply_all(&mut e, events),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Applies `events` and drops their alerts; gives the events back (freed
/// outside the measurement).
fn apply_all(e: &mut Engine, events: Vec<Prediction>) -> Vec<Prediction> {
    for p in &events {
        e.apply_prediction(p).unwrap();
    }
    e.drain_alerts().for_each(drop);
    events
}

/// One model's stream over ~3,000 series (a `shop` slice of 294 values),
/// with the engine on one thread, on two (its closes split), and on two
/// with its writes in two groups of series as well (`defer_writes`): what
/// the groups gain with a core for each, without decoding beside them. Each iteration goes on with the stream, bucket
/// closes and evaluations included.
fn engine_groups(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_groups");
    g.sample_size(10);
    let shops = 294usize;
    let mut cfg = Config::default();
    cfg.series.max_slice_values = 1000;
    let t0 = 1_767_225_600_000i64;
    let per_minute = 700i64;
    let step = 60_000 / per_minute;
    let event = |rng: &mut Rng, i: i64| {
        let mut p = prediction(rng, i as u64, t0 + i * step);
        p.slices
            .push(("shop".into(), format!("s{}", i as usize % shops).into()));
        p
    };
    for (workers, groups) in [(1usize, false), (2, false), (2, true)] {
        let mut rng = Rng(31);
        let mut e = Engine::new(cfg.clone());
        e.set_workers(workers);
        e.defer_writes(groups);
        // 3 h: references pinned, windows full
        let warm = 180 * per_minute;
        for i in 0..warm {
            e.apply_prediction(&event(&mut rng, i)).unwrap();
        }
        e.drain_alerts().for_each(drop);
        let chunk = 20_000i64;
        let mut at = warm;
        g.throughput(Throughput::Elements(chunk as u64));
        let name = match groups {
            true => format!("apply_3k_series_{workers}_workers_write_groups"),
            false => format!("apply_3k_series_{workers}_workers"),
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let events: Vec<Prediction> =
                        (at..at + chunk).map(|i| event(&mut rng, i)).collect();
                    at += chunk;
                    events
                },
                |events| apply_all(&mut e, events),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Grouping one evaluation's alerts into incidents: 60 alerts of one model
/// (10 features × 6 slices, inputs and downstream kinds), firing then
/// resolving, against incidents already open.
fn incidents(c: &mut Criterion) {
    use driftline::alert::*;
    use driftline::incident::{Context, Incidents};
    let owners = driftline::config::owners::Owners::new(&Default::default()).unwrap();
    let cx = Context {
        owners: &owners,
        runbook_base: "docs/runbooks/",
        config_hash: "0",
        engine_version: "bench",
        cooldown_ms: 1_800_000,
    };
    let kinds = [
        AlertKind::DataDrift,
        AlertKind::DataDrift,
        AlertKind::DataQuality,
        AlertKind::PredictionDrift,
        AlertKind::Performance,
    ];
    let slices: Vec<std::collections::BTreeMap<String, String>> =
        std::iter::once(Default::default())
            .chain(
                ["EU", "US", "APAC", "web", "app"].iter().map(|v| {
                    std::collections::BTreeMap::from([("region".to_string(), v.to_string())])
                }),
            )
            .collect();
    let batch = |state: AlertState, round: u64| -> Vec<Alert> {
        let mut v = Vec::new();
        for f in 0..10 {
            for (si, sl) in slices.iter().enumerate() {
                let kind = kinds[f % kinds.len()];
                v.push(Alert {
                    alert_id: format!("a{round}-{f}-{si}"),
                    model_id: "m".into(),
                    model_version: None,
                    kind,
                    feature: Some(format!("f{f}")),
                    slice: sl.clone(),
                    test: "psi".into(),
                    statistic: 0.3,
                    p_value: None,
                    threshold: 0.25,
                    severity: Severity::Warning,
                    state,
                    window_start: 0,
                    window_end: 60_000,
                    reference_start: 0,
                    reference_end: 0,
                    sample_size: SampleSize {
                        current: 1,
                        reference: 1,
                    },
                    persistence: Persistence {
                        breaches: 3,
                        evaluations: 5,
                    },
                    evidence: Evidence::default(),
                    suspected_cause: Cause::CovariateShift,
                    exemplar_trace_ids: Vec::new(),
                    emitted_at: 60_000,
                    incident_id: String::new(),
                    owner: String::new(),
                    runbook_url: String::new(),
                    config_hash: String::new(),
                    engine_version: String::new(),
                });
            }
        }
        v
    };
    let mut g = c.benchmark_group("incidents");
    g.throughput(Throughput::Elements(120));
    let mut round = 0u64;
    g.bench_function("observe_60_alerts_fire_then_resolve", |b| {
        let mut inc = Incidents::default();
        b.iter_batched(
            || {
                round += 1;
                let at = 120_000 * round as i64;
                (
                    batch(AlertState::Firing, round),
                    batch(AlertState::Resolved, round),
                    at,
                )
            },
            |(mut fire, mut resolve, at)| {
                inc.observe(&mut fire, at, &cx);
                inc.observe(&mut resolve, at + 60_000, &cx);
                inc.drain().for_each(drop);
                (fire, resolve)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The outcome join in steady state: 100,000 predictions waiting; each
/// element is one prediction arriving, the outcome of one that arrived
/// 100,000 earlier joining it, and expiry as event time moves on.
fn join(c: &mut Criterion) {
    use driftline::join::{JoinBuffer, Label, MAX_SLOTS, Waiting, key};
    const WAITING: u64 = 100_000;
    const BATCH: u64 = 20_000;
    let keys: Vec<u128> = (0..WAITING + 64 * BATCH)
        .map(|i| key("checkout-fraud", &format!("{i:032x}")))
        .collect();
    let waiting = |i: u64| Waiting {
        model: 0,
        bucket: i as i64 / 1200,
        event_time: i as i64 * 50,
        slots: [0; MAX_SLOTS],
        n_slots: 3,
        prediction: 0.0,
        class: 1,
        score: 0.5,
    };
    // a TTL of 2 h of event time at 20 predictions/s: nothing expires unjoined
    let mut buf = JoinBuffer::new(7_200_000, 600_000, 1_000_000, 100_000);
    for i in 0..WAITING {
        buf.prediction(keys[i as usize], waiting(i));
    }
    let mut next = WAITING;
    let mut g = c.benchmark_group("join");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("prediction_and_outcome_100k_waiting", |b| {
        b.iter(|| {
            if next + BATCH > keys.len() as u64 {
                // start over on a fresh buffer in the same steady state (rarely)
                buf = JoinBuffer::new(7_200_000, 600_000, 1_000_000, 100_000);
                for i in 0..WAITING {
                    buf.prediction(keys[i as usize], waiting(i));
                }
                next = WAITING;
            }
            let mut joined = 0u64;
            for i in next..next + BATCH {
                buf.prediction(keys[i as usize], waiting(i));
                let old = i - WAITING;
                joined += buf
                    .outcome(keys[old as usize], Label::Class(1), i as i64 * 50, true)
                    .is_some() as u64;
            }
            buf.expire((next + BATCH) as i64 * 50);
            next += BATCH;
            black_box(joined)
        })
    });
    g.finish();
}

/// One watermark: a bucket closes in every series and every series is
/// evaluated (tests, the false-discovery gate, policies), with full
/// windows and pinned references. Elements are series, so the rate is
/// series per second and its inverse the cost per series per evaluation.
/// More series come from a third slice dimension `shop` (10 series per value).
/// Last, a watermark of 3,000 series most of which are dormant (can never
/// alert: `engine::Series::settled`) and the rest settled.
fn watermark(c: &mut Criterion) {
    let mut g = c.benchmark_group("watermark");
    g.sample_size(10);
    for shops in [0usize, 54, 294] {
        let mut cfg = Config::default();
        cfg.series.max_slice_values = 1000;
        let mut rng = Rng(29);
        let t0 = 1_767_225_600_000i64;
        // 3 h: 2 h of warm-up pins the references, then a full 30 min window;
        // at least ~400 events per shop value per window, so every series is tested
        let per_minute = (60 * 20).max(shops as i64 * 14);
        let step = 60_000 / per_minute;
        let n = 180 * per_minute;
        let mut e = Engine::new(cfg.clone());
        let mut p = prediction(&mut rng, 0, t0);
        for i in 0..n {
            p = prediction(&mut rng, i as u64, t0 + i * step);
            if shops > 0 {
                p.slices
                    .push(("shop".into(), format!("s{}", i as usize % shops).into()));
            }
            e.apply_prediction(&p).unwrap();
        }
        e.drain_alerts().for_each(drop);
        let series = e.series().len();
        let state = e.save_state().unwrap();
        // one event a minute past the last: the watermark passes one more bucket
        p.event_time += 60_000;
        g.throughput(Throughput::Elements(series as u64));
        g.bench_function(format!("close_and_evaluate_{series}_series"), |b| {
            b.iter_batched(
                || Engine::restore(cfg.clone(), Default::default(), &state).unwrap(),
                |mut e| {
                    e.apply_prediction(&p).unwrap();
                    e.drain_alerts().for_each(drop);
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    // most series dormant: 294 shops of ~2 events a minute, whose
    // references (~250 values) are below `min_reference_samples`; the
    // engine plays on, one event and one more bucket closing at each
    // iteration (so the 50 others soon settle too: what this row
    // measures is a watermark passing series by)
    let mut cfg = Config::default();
    cfg.series.max_slice_values = 1000;
    let mut rng = Rng(31);
    let t0 = 1_767_225_600_000i64;
    let (per_minute, shops) = (600i64, 294);
    let mut e = Engine::new(cfg);
    let mut p = prediction(&mut rng, 0, t0);
    for i in 0..180 * per_minute {
        p = prediction(&mut rng, i as u64, t0 + i * (60_000 / per_minute));
        p.slices
            .push(("shop".into(), format!("s{}", i as usize % shops).into()));
        e.apply_prediction(&p).unwrap();
    }
    e.drain_alerts().for_each(drop);
    let (series, dormant) = (e.series().len(), e.dormant_series());
    assert!(
        dormant * 10 > series as u64 * 9,
        "{dormant} of {series} dormant"
    );
    g.throughput(Throughput::Elements(series as u64));
    g.bench_function(
        format!("close_and_evaluate_{series}_series_{dormant}_dormant"),
        |b| {
            b.iter(|| {
                p.event_time += 60_000;
                e.apply_prediction(&p).unwrap();
                e.drain_alerts().for_each(drop);
            })
        },
    );
    g.finish();
}

criterion_group!(
    benches,
    sketches,
    tests,
    decode,
    engine,
    engine_groups,
    join,
    watermark,
    incidents
);
criterion_main!(benches);
