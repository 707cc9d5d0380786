//! One event with an absurd timestamp, anywhere in a stream, changes
//! nothing but one counter; a real gap in the stream is crossed.

use std::path::Path;

use crate::util::*;

/// A 5-hour stream with a shift at hour 3 (alerts on `x`), as lines.
fn lines(dir: &Path) -> Vec<String> {
    let p = dir.join("clean.jsonl");
    write_stream(
        &p,
        &Stream {
            hours: 5.0,
            per_second: 2.0,
            shift_at_hour: Some(3.0),
            seed: 3,
        },
    );
    std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The line with its event time replaced.
fn dated(line: &str, t: i64) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let old = v["event_time"].as_i64().unwrap();
    line.replace(
        &format!("\"event_time\":{old}"),
        &format!("\"event_time\":{t}"),
    )
    .replace("\"trace_id\":\"t", "\"trace_id\":\"odd-t")
}

/// An outcome for every prediction, ten minutes after it (labels at random).
fn outcomes(dir: &Path, lines: &[String]) -> std::path::PathBuf {
    let mut rng = Rng::new(5);
    let text: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                r#"{{"trace_id":{},"model_id":"m1","event_time":{},"label":{}}}"#,
                v["trace_id"],
                v["event_time"].as_i64().unwrap() + 600_000,
                (rng.uniform() < 0.3) as u8
            )
        })
        .collect();
    let p = dir.join("outcomes.jsonl");
    std::fs::write(&p, text.join("\n") + "\n").unwrap();
    p
}

/// Replays a file (with the outcomes file, if any): (alert ids in order,
/// stderr, peak RSS in KiB).
fn replay(dir: &Path, name: &str, lines: &[String]) -> (Vec<String>, String, u64) {
    let p = dir.join(format!("{name}.jsonl"));
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let out = dir.join(format!("{name}.alerts.jsonl"));
    let o_path = dir.join("outcomes.jsonl");
    let with_outcomes: Vec<&str> = if o_path.exists() {
        vec!["--outcomes", o_path.to_str().unwrap()]
    } else {
        vec![]
    };
    let o = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("peak_rss_kb=%M")
        .arg(env!("CARGO_BIN_EXE_driftline"))
        .args([
            "replay",
            "--config",
            "config/driftline.toml",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(&with_outcomes)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let rss = err
        .rsplit("peak_rss_kb=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let ids = alerts(&out)
        .iter()
        .map(|a| format!("{} {}", a["alert_id"], a["state"]))
        .collect();
    (ids, err, rss)
}

fn count(err: &str, reason: &str) -> u64 {
    err.split(&format!("{reason} "))
        .nth(1)
        .and_then(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn one_absurd_timestamp_changes_nothing_but_a_counter() {
    let dir = tempdir("absurd-time");
    let clean = lines(&dir);
    // with outcomes too: an outlier held back in the merge of two files
    // once made every later prediction late
    outcomes(&dir, &clean);
    let (want, _, clean_rss) = replay(&dir, "clean", &clean);
    assert!(!want.is_empty(), "the clean stream alerts");
    let mid = clean.len() / 2;
    let cases: [(&str, usize, i64); 5] = [
        ("far past first", 0, 86_400_000),          // 1970-01-02
        ("epoch seconds first", 0, T0 / 1000),      // seconds among milliseconds
        ("far future first", 0, 4_102_444_800_000), // 2100-01-01
        (
            "far future mid-stream",
            mid,
            T0 + 23 * 3_600_000 + (mid as i64) * 500,
        ),
        ("far past mid-stream", mid, 86_400_000),
    ];
    for (name, at, t) in cases {
        let mut ls = clean.clone();
        ls.insert(at, dated(&clean[at], t));
        let (got, err, rss) = replay(&dir, &name.replace(' ', "-"), &ls);
        assert_eq!(got, want, "{name}: the alerts of the clean stream\n{err}");
        let refused = count(&err, "time_outlier") + count(&err, "time_out_of_range");
        let late: u64 = err
            .split("late events: ")
            .nth(1)
            .and_then(|s| s.lines().next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        assert_eq!(refused + late, 1, "{name}: the outlier counted once\n{err}");
        assert!(
            err.contains(".jsonl:"),
            "{name}: named with its file and line\n{err}"
        );
        assert!(
            rss < 2 * clean_rss.max(1),
            "{name}: {rss} KiB vs {clean_rss} KiB clean"
        );
    }
}

#[test]
fn a_real_gap_is_crossed_and_reported() {
    let dir = tempdir("gap");
    let clean = lines(&dir);
    // the stream stops for 40 days after hour 2 and goes on from there
    let gap = 40 * 86_400_000i64;
    let cut = clean.len() * 2 / 5;
    let mut ls: Vec<String> = clean[..cut].to_vec();
    for l in &clean[cut..] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = v["event_time"].as_i64().unwrap();
        ls.push(l.replace(
            &format!("\"event_time\":{t}"),
            &format!("\"event_time\":{}", t + gap),
        ));
    }
    let after = (clean.len() - cut) as u64;
    let (_, err, _) = replay(&dir, "gap", &ls);
    assert!(
        err.contains("event time jumped"),
        "the jump is reported\n{err}"
    );
    let refused = count(&err, "time_outlier");
    let late: u64 = err
        .split("late events: ")
        .nth(1)
        .and_then(|s| s.lines().next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        (refused + late) * 100 < after,
        "{refused} refused and {late} late of the {after} events after the gap\n{err}"
    );
}

/// One finite but absurd value (2^64 among values near 0) in the current
/// window pages no one (hour 2.5: past the 2-hour reference, before the
/// shift). The FDR gate holds it here (KS sees no shift); the Wasserstein
/// clamp itself is checked in `engine::evaluate`'s unit test.
#[test]
fn one_absurd_value_changes_no_alert() {
    let dir = tempdir("absurd-value");
    let clean = lines(&dir);
    let (want, _, _) = replay(&dir, "clean-v", &clean);
    let at = clean.len() / 2;
    let v: serde_json::Value = serde_json::from_str(&clean[at]).unwrap();
    let x = v["features"]["x"].as_f64().unwrap();
    let mut ls = clean.clone();
    ls[at] = clean[at].replace(&format!("\"x\":{x:.6}"), "\"x\":18446744073709551616.0");
    assert_ne!(ls[at], clean[at]);
    let (got, err, _) = replay(&dir, "absurd-value", &ls);
    assert_eq!(got, want, "the alerts of the clean stream\n{err}");
}

/// In the service every partition is its own stream for the rule: one hours
/// behind another is not refused for it (a backlog, a restart), while one
/// absurd first event of a partition still is, and a whole partition in
/// another era cannot stretch the open buckets (memory) past the bound.
#[test]
fn each_partition_is_judged_against_itself() {
    use driftline::config::Config;
    use driftline::engine::{Applied, Engine};
    use driftline::event::{Event, Prediction, Scalar, Value};
    let ev = |i: i64, t: i64| {
        Event::Prediction(Box::new(Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: None,
            event_time: t,
            features: vec![("x".into(), Value::Number((i % 7) as f64))],
            slices: vec![],
            prediction: Scalar::Number(0.0),
            score: None,
            shadow: false,
            prepared: Default::default(),
        }))
    };
    let mut e = Engine::new(Config::default());
    let (ahead, behind, other_era) = (e.add_source(), e.add_source(), e.add_source());
    const H: i64 = 3_600_000;
    let mut refused_now = 0;
    // partition `ahead` runs 4 h in front (more than max_future_skew, 3 h)
    for i in 0..200 {
        if e.apply_from(&ev(i, T0 + 4 * H + i * 1000), ahead).is_err() {
            refused_now += 1;
        }
    }
    // partition `behind`: its first event in epoch seconds, then 4 h behind `ahead`
    let mut late = 0;
    match e.apply_from(&ev(1000, T0 / 1000), behind) {
        Ok(Applied::Held) => {}
        other => panic!("a partition's first event is held: {other:?}"),
    }
    for i in 0..200 {
        match e.apply_from(&ev(2000 + i, T0 + i * 1000), behind) {
            Ok(Applied::Late) => late += 1,
            Ok(_) => {}
            Err(b) => panic!("a lagging partition's event refused: {}", b.message),
        }
    }
    let refused: Vec<_> = e.drain_refused().collect();
    assert_eq!(refused.len(), 1, "only the epoch-seconds event");
    assert_eq!(refused[0].bad.reason.as_str(), "time_outlier");
    assert_eq!((refused_now, late), (0, 0));
    // a whole partition 40 years ahead agrees with itself, but cannot
    // stretch the open buckets past the bound
    let mut far = 0;
    for i in 0..50 {
        if let Err(b) = e.apply_from(&ev(5000 + i, T0 + 40 * 365 * 24 * H + i * 1000), other_era) {
            assert_eq!(b.reason.as_str(), "time_outlier");
            far += 1;
        }
    }
    let held_refused = e
        .drain_refused()
        .filter(|r| r.bad.reason.as_str() == "time_outlier")
        .count();
    assert_eq!(far + held_refused, 50, "every event 40 years ahead refused");
}
