use crate::util::*;

const GOOD: &str = r#"{"trace_id":"g","model_id":"m1","event_time":1767225600000,"features":{"x":1.0},"prediction":0}"#;

fn bad_file(dir: &std::path::Path) -> std::path::PathBuf {
    let lines = [
        GOOD.to_string(),
        "{this is not json".to_string(),
        GOOD.replace(r#""x":1.0"#, r#""x":[1,2]"#),
        GOOD.replace(r#""trace_id":"g","#, ""),
        GOOD.replace("1.0", "NaN"),
        GOOD.replace(r#""g""#, r#""""#),
        GOOD.replace("1767225600000", "4200000000000000"),
        GOOD.replace("1767225600000", "-1"),
        GOOD.replace("1767225600000", "1769904000000"), // a month ahead of the newest event
        GOOD.replace(r#""trace_id":"g""#, r#""trace_id":"last""#),
    ];
    let p = dir.join("bad.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn bad_events_are_named_with_file_and_line_counted_and_skipped() {
    let dir = tempdir("bad-input");
    let p = bad_file(&dir);
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        dir.join("a").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for (line, reason) in [
        (2, "malformed_json"),
        (3, "wrong_type"),
        (4, "missing_field"),
        (5, "non_finite"),
        (6, "empty_trace_id"),
        (7, "time_out_of_range"),
        (8, "time_out_of_range"),
        (9, "time_outlier"),
    ] {
        let want = format!("bad.jsonl:{line}: bad event ({reason})");
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }
    assert!(err.contains("events read: 10 (2 predictions"), "{err}");
    assert!(err.contains("bad events: 8 ("), "{err}");
    assert!(err.contains("time_out_of_range 2"), "{err}");
    assert!(err.contains("time_outlier 1"), "{err}");
}

#[test]
fn strict_stops_at_the_first_bad_event() {
    let dir = tempdir("bad-strict");
    let p = bad_file(&dir);
    let o = run(&[
        "replay",
        "--strict",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        dir.join("a").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("bad.jsonl:2: bad event (malformed_json)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unreadable_input_or_config_is_one_line_and_exit_2() {
    let dir = tempdir("bad-files");
    let o = run(&["replay", "--predictions", "/nonexistent/p.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/p.jsonl"));
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[window\nbucket=").unwrap();
    let o = run(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--predictions",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    // a corrupt avro container file: one bad record, the run goes on
    let avro = dir.join("broken.avro");
    std::fs::write(&avro, b"Obj\x01garbage").unwrap();
    let o = run(&["replay", "--predictions", avro.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
