//! A careless or hostile command line and input file: nothing is destroyed,
//! nothing vanishes silently, nothing panics.

use std::io::Write;
use std::process::Stdio;

use crate::util::*;

const GOOD: &str = r#"{"trace_id":"g","model_id":"m1","event_time":1767225600000,"features":{"x":1.0},"prediction":0}"#;

fn good(i: usize) -> String {
    GOOD.replace(r#""g""#, &format!(r#""g{i}""#))
        .replace("1767225600000", &(T0 + i as i64 * 1000).to_string())
}

/// Events read, as the replay summary states them (`events read: N (…`).
fn events_read(stderr: &str) -> u64 {
    let at = stderr.find("events read: ").expect(stderr) + "events read: ".len();
    stderr[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_output_that_is_an_input_is_refused_before_it_is_touched() {
    let dir = tempdir("out-is-in");
    let p = dir.join("p.jsonl");
    let text = format!("{}\n{}\n", good(1), good(2));
    std::fs::write(&p, &text).unwrap();
    // the same file, and another name of it (a hard link)
    let link = dir.join("link.jsonl");
    std::fs::hard_link(&p, &link).unwrap();
    for out in [&p, &link] {
        let o = run(&[
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("refusing to overwrite"),
            "{}",
            stderr(&o)
        );
        let o = run(&[
            "convert",
            "--kind",
            "predictions",
            "--input",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let o = run(&[
            "baseline",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        text,
        "the input is intact"
    );
}

#[test]
fn the_same_file_twice_is_refused() {
    let dir = tempdir("twice");
    let p = dir.join("p.jsonl");
    std::fs::write(&p, good(1) + "\n").unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
}

#[test]
fn a_pipe_loses_no_bytes_and_dash_is_stdin() {
    let lines: Vec<String> = (0..50).map(good).collect();
    let mut child = bin()
        .args(["replay", "--predictions", "-", "--output", "/dev/null"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        // written in small pieces, as a pipe delivers them
        for l in &lines {
            stdin.write_all(l.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
            stdin.flush().unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(events_read(&err), 50, "{err}");
    assert!(err.contains("bad events: 0"), "{err}");
}

#[test]
fn an_avro_file_through_a_pipe_is_read_whole() {
    let dir = tempdir("avro-pipe");
    let p = dir.join("p.jsonl");
    std::fs::write(&p, (0..40).map(good).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let avro = dir.join("p.avro");
    let o = run(&[
        "convert",
        "--kind",
        "predictions",
        "--input",
        p.to_str().unwrap(),
        "--output",
        avro.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .args(["replay", "--predictions", "-", "--output", "/dev/null"])
        .stdin(std::fs::File::open(&avro).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(events_read(&stderr(&o)), 40, "{}", stderr(&o));
}

#[test]
fn a_huge_line_is_one_bad_event_and_the_reader_goes_on() {
    let dir = tempdir("huge-line");
    let p = dir.join("p.jsonl");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, "{}", good(1)).unwrap();
    // 40 MiB of NUL bytes, then a line ending and good events
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..40 {
        f.write_all(&zeros).unwrap();
    }
    writeln!(f).unwrap();
    writeln!(f, "{}", good(2)).unwrap();
    writeln!(f, "{}", good(3)).unwrap();
    drop(f);
    let o = bin()
        .args([
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            "/dev/null",
        ])
        .env("DRIFTLINE__INPUT__MAX_LINE_BYTES", "1048576")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("p.jsonl:2: bad event (line_too_long)"),
        "{err}"
    );
    assert!(err.contains("3 predictions"), "{err}");
}

#[test]
fn bom_and_cr_line_endings_lose_no_event() {
    let dir = tempdir("bom-cr");
    let p = dir.join("p.jsonl");
    let body = format!(
        "\u{feff}{}\r{}\r\n{}\n{}",
        good(1),
        good(2),
        good(3),
        good(4)
    );
    std::fs::write(&p, body).unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        "/dev/null",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("bad events: 0"), "{err}");
    assert!(err.contains("4 predictions"), "{err}");
}

#[test]
fn output_failures_are_exit_1_and_never_a_panic() {
    let dir = tempdir("out-fail");
    let p = dir.join("p.jsonl");
    std::fs::write(&p, good(1) + "\n").unwrap();
    // a missing directory: a write failure, named as one
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        dir.join("no/such/dir/a.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    // a full stdout or stderr
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let o = bin()
        .args(["check-config", "--config", "config/driftline.toml"])
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let o = bin()
        .args([
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            "/dev/null",
        ])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_non_utf8_environment_never_panics() {
    use std::os::unix::ffi::OsStrExt;
    let junk = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    // someone else's variable: ignored
    let o = bin()
        .args(["check-config", "--config", "config/driftline.toml"])
        .env("SOMEONE_ELSES", junk)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // ours: an error naming it
    let o = bin()
        .args(["check-config", "--config", "config/driftline.toml"])
        .env("DRIFTLINE__KAFKA__GROUP_ID", junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("DRIFTLINE__KAFKA__GROUP_ID") && err.contains("UTF-8"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

fn convert(dir: &std::path::Path, lines: &[String], name: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.jsonl"));
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let avro = dir.join(format!("{name}.avro"));
    let o = run(&[
        "convert",
        "--kind",
        "predictions",
        "--codec",
        "null",
        "--input",
        p.to_str().unwrap(),
        "--output",
        avro.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    avro
}

#[test]
fn an_avro_block_with_a_negative_count_is_reported_not_dropped() {
    let dir = tempdir("avro-negative");
    let avro = convert(&dir, &(0..40).map(good).collect::<Vec<_>>(), "p");
    let mut bytes = std::fs::read(&avro).unwrap();
    // the header ends with the sync marker the file also ends with; the
    // first block's record count (zig-zag varint) follows it: 40 -> -40
    let sync = bytes[bytes.len() - 16..].to_vec();
    let header_end = bytes.windows(16).position(|w| w == sync).unwrap() + 16;
    assert_eq!(bytes[header_end], 80, "40 records, zig-zag encoded");
    bytes[header_end] = 79;
    std::fs::write(&avro, &bytes).unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        avro.to_str().unwrap(),
        "--output",
        "/dev/null",
    ]);
    let err = stderr(&o);
    assert!(
        err.contains("bad event (malformed_avro)") && err.contains("rest of file skipped"),
        "{err}"
    );
    assert!(err.contains("bad events: 1"), "{err}");
}

#[test]
fn an_avro_file_of_something_else_is_an_unreadable_input() {
    let dir = tempdir("avro-other");
    // an outcomes file given as predictions: its writer schema has no features
    let p = dir.join("o.jsonl");
    std::fs::write(
        &p,
        r#"{"trace_id":"t","model_id":"m1","event_time":1767225600000,"label":1}"#.to_string()
            + "\n",
    )
    .unwrap();
    let avro = dir.join("o.avro");
    let o = run(&[
        "convert",
        "--kind",
        "outcomes",
        "--input",
        p.to_str().unwrap(),
        "--output",
        avro.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["replay", "--predictions", avro.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no field `features`"), "{}", stderr(&o));
}

#[test]
fn convert_writes_only_what_replay_reads_back() {
    let dir = tempdir("avro-huge");
    // one event of ~12 MB between good ones
    let big = GOOD.replace(
        r#""features":{"x":1.0}"#,
        &format!(
            r#""features":{{"x":1.0,"blob":"{}"}}"#,
            "a".repeat(12 << 20)
        ),
    );
    let mut lines: Vec<String> = (0..20).map(good).collect();
    lines.insert(10, big);
    let p = dir.join("p.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let avro = dir.join("p.avro");
    let o = run(&[
        "convert",
        "--kind",
        "predictions",
        "--input",
        p.to_str().unwrap(),
        "--output",
        avro.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("converted 20 events (1 bad"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "replay",
        "--predictions",
        avro.to_str().unwrap(),
        "--output",
        "/dev/null",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("20 predictions"), "{}", stderr(&o));
}

#[test]
fn convert_keeps_each_events_feature_order_so_a_file_converts_to_the_same_bytes() {
    let dir = tempdir("avro-order");
    let features =
        r#""features":{"zeta":1.5,"alpha":null,"mid":"ios","beta":true,"omega":-2,"kappa":7.25}"#;
    let lines: Vec<String> = (0..40)
        .map(|i| good(i).replace(r#""features":{"x":1.0}"#, features))
        .collect();
    let (a, b) = (convert(&dir, &lines, "a"), convert(&dir, &lines, "b"));
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    // each file has a sync marker of its own (random, 16 bytes, ending it)
    let unsynced = |bytes: &[u8]| {
        let sync = &bytes[bytes.len() - 16..];
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(sync) {
                out.extend_from_slice(b"<sync>");
                i += 16;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    };
    assert!(
        unsynced(&a) == unsynced(&b),
        "two conversions of one file differ"
    );
    // and the order is the event's: each name first found after the one before it
    let at = |name: &str| {
        a.windows(name.len())
            .position(|w| w == name.as_bytes())
            .unwrap()
    };
    let names = ["zeta", "alpha", "mid", "beta", "omega", "kappa"];
    assert!(
        names.windows(2).all(|w| at(w[0]) < at(w[1])),
        "features out of the event's order"
    );
}
