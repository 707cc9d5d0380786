use crate::util::*;

#[test]
fn a_baseline_file_replaces_the_warm_up() {
    let dir = tempdir("baseline");
    let hist = dir.join("history.jsonl");
    write_stream(
        &hist,
        &Stream {
            hours: 2.0,
            per_second: 2.0,
            shift_at_hour: None,
            seed: 3,
        },
    );
    let base = dir.join("base.json");
    let o = run(&[
        "baseline",
        "--predictions",
        hist.to_str().unwrap(),
        "--output",
        base.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("baseline: 1 models"), "{}", stderr(&o));
    // live data shifted from its first hour: with a baseline, no warm-up is needed
    let live = dir.join("live.jsonl");
    write_stream(
        &live,
        &Stream {
            hours: 2.0,
            per_second: 2.0,
            shift_at_hour: Some(0.5),
            seed: 4,
        },
    );
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[reference.models.m1]\nbaseline = \"base.json\"\n").unwrap();
    let out = dir.join("a.jsonl");
    let o = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--predictions",
        live.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let alerts = alerts(&out);
    let x = alerts
        .iter()
        .find(|a| a["feature"] == "x")
        .expect("drift on x against the baseline");
    assert_eq!(x["reference_start"], T0);
    assert_eq!(
        x["reference_end"].as_i64().unwrap(),
        T0 + 2 * 3_600_000 - 500 + 1
    );
    assert!(x["window_end"].as_i64().unwrap() <= T0 + 3_600_000 + 30 * 60_000);
    // without the baseline the first two hours are the warm-up: nothing can fire that early
    let o = run(&[
        "replay",
        "--predictions",
        live.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(alerts_before(&out, T0 + 2 * 3_600_000));
    // a baseline of another format version is refused, not misread
    let text = std::fs::read_to_string(&base)
        .unwrap()
        .replacen("\"format\":2", "\"format\":99", 1);
    std::fs::write(&base, text).unwrap();
    let o = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--predictions",
        live.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("format 99 is not supported"),
        "{}",
        stderr(&o)
    );
}

fn alerts_before(path: &std::path::Path, t: i64) -> bool {
    alerts(path)
        .iter()
        .all(|a| a["window_end"].as_i64().unwrap() > t)
}
