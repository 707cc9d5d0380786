use crate::util::*;

fn shifted(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("p.jsonl");
    write_stream(
        &p,
        &Stream {
            hours: 5.0,
            per_second: 2.0,
            shift_at_hour: Some(3.0),
            seed: 1,
        },
    );
    p
}

#[test]
fn replay_finds_the_shift_and_is_byte_identical_across_runs() {
    let dir = tempdir("replay-determinism");
    let p = shifted(&dir);
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    for out in [&a, &b] {
        let o = run(&[
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("events read: 36000"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let alerts = alerts(&a);
    let first = alerts
        .iter()
        .find(|x| x["feature"] == "x" && x["slice"].as_object().unwrap().is_empty())
        .expect("an alert on x overall");
    assert_eq!(first["kind"], "data_drift");
    assert_eq!(first["state"], "firing");
    let onset = T0 + 3 * 3_600_000;
    let end = first["window_end"].as_i64().unwrap();
    assert!(
        end > onset && end <= onset + 30 * 60_000,
        "window_end {end} vs onset {onset}"
    );
    assert_eq!(first["suspected_cause"], "covariate_shift");
    assert_eq!(
        first["emitted_at"], first["window_end"],
        "replay takes no wall-clock value"
    );
    assert!(!first["exemplar_trace_ids"].as_array().unwrap().is_empty());
    assert!(
        first["evidence"]["summary"]
            .as_str()
            .unwrap()
            .contains("feature `x` moved")
    );
    // nothing fires before the shift, and nothing on the features that did not move
    assert!(
        alerts
            .iter()
            .all(|x| x["window_end"].as_i64().unwrap() > onset)
    );
    assert!(
        alerts
            .iter()
            .all(|x| x["feature"] != "y" && x["feature"] != "cat"),
        "{alerts:#?}"
    );
    // every alert has the contract's fields
    for x in &alerts {
        for k in [
            "alert_id",
            "model_id",
            "model_version",
            "kind",
            "feature",
            "slice",
            "test",
            "statistic",
            "p_value",
            "threshold",
            "severity",
            "state",
            "window_start",
            "window_end",
            "reference_start",
            "reference_end",
            "sample_size",
            "persistence",
            "evidence",
            "suspected_cause",
            "exemplar_trace_ids",
            "emitted_at",
        ] {
            assert!(x.get(k).is_some(), "missing {k}");
        }
    }
}

#[test]
fn avro_container_and_split_files_replay_like_one_jsonl_file() {
    let dir = tempdir("replay-avro");
    let p = shifted(&dir);
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
    // the same stream split in two files, by alternating lines
    let text = std::fs::read_to_string(&p).unwrap();
    let (mut odd, mut even) = (String::new(), String::new());
    for (i, l) in text.lines().enumerate() {
        let s = if i % 2 == 0 { &mut even } else { &mut odd };
        s.push_str(l);
        s.push('\n');
    }
    let (p1, p2) = (dir.join("even.jsonl"), dir.join("odd.jsonl"));
    std::fs::write(&p1, even).unwrap();
    std::fs::write(&p2, odd).unwrap();
    let outs: Vec<Vec<u8>> = [vec![p.clone()], vec![avro], vec![p1, p2]]
        .iter()
        .enumerate()
        .map(|(i, inputs)| {
            let out = dir.join(format!("alerts{i}.jsonl"));
            let mut args = vec![
                "replay".to_string(),
                "--output".into(),
                out.to_str().unwrap().into(),
                "--predictions".into(),
            ];
            args.extend(inputs.iter().map(|p| p.to_str().unwrap().to_string()));
            let o = bin().args(&args).output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            std::fs::read(out).unwrap()
        })
        .collect();
    assert!(!outs[0].is_empty());
    assert_eq!(outs[0], outs[1], "avro differs from jsonl");
    assert_eq!(outs[0], outs[2], "split files differ from one file");
}

#[test]
fn a_stationary_stream_raises_nothing() {
    let dir = tempdir("replay-stationary");
    let p = dir.join("p.jsonl");
    write_stream(
        &p,
        &Stream {
            hours: 6.0,
            per_second: 2.0,
            shift_at_hour: None,
            seed: 2,
        },
    );
    let out = dir.join("a.jsonl");
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(alerts(&out), Vec::<serde_json::Value>::new());
    assert!(stderr(&o).contains("alerts: none"));
}

#[test]
fn control_feedback_is_counted_per_root_and_a_bad_control_line_is_named() {
    let dir = tempdir("replay-control");
    let p = shifted(&dir);
    let inc = dir.join("incidents.jsonl");
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        "/dev/null",
        "--incidents",
        inc.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let incidents = alerts(&inc);
    let first = &incidents[0];
    let id = first["incident_id"].as_str().unwrap();
    let (test, feature, cause) = (
        first["root"]["test"].as_str().unwrap(),
        first["root"]["feature"].as_str().unwrap(),
        first["suspected_cause"].as_str().unwrap(),
    );
    // a false positive replaced by a later confirmation (event time orders
    // them, not the file), and a verdict on an incident this run never opened
    let control = dir.join("control.jsonl");
    let late = first["opened_at"].as_i64().unwrap() + 60_000;
    std::fs::write(
        &control,
        format!(
            "{{\"type\":\"incident_feedback\",\"incident_id\":\"{id}\",\"verdict\":\"confirmed\",\"by\":\"a\",\"event_time\":{late}}}\n\
             {{\"type\":\"incident_feedback\",\"incident_id\":\"{id}\",\"verdict\":\"false_positive\",\"by\":\"b\",\"event_time\":{}}}\n\
             \n\
             {{\"type\":\"incident_feedback\",\"incident_id\":\"inc-elsewhere\",\"verdict\":\"false_positive\"}}\n",
            late - 1
        ),
    )
    .unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        "/dev/null",
        "--control",
        control.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "feedback: 1 confirmed on {test} {feature} ({cause})"
        )),
        "{err}"
    );
    assert!(!err.contains("feedback: 1 false_positive"), "{err}");
    assert!(
        err.contains("1 verdicts name no incident of this run (not counted): inc-elsewhere"),
        "{err}"
    );

    // a line that is not a control event: file and line, nothing run
    std::fs::write(
        &control,
        "{\"type\":\"incident_feedback\",\"incident_id\":\"x\",\"verdict\":\"confirmed\"}\n{\"type\":\"incident_feedback\",\"incident_id\":\"x\",\"verdict\":\"maybe\"}\n",
    )
    .unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        "/dev/null",
        "--control",
        control.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:2: not a control event", control.display())),
        "{}",
        stderr(&o)
    );
    // the control file as the output: refused, the file kept
    let before = std::fs::read(&control).unwrap();
    let o = run(&[
        "replay",
        "--predictions",
        p.to_str().unwrap(),
        "--output",
        control.to_str().unwrap(),
        "--control",
        control.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&control).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retraining_is_requested_once_until_acknowledged_then_after_the_cooldown() {
    let dir = tempdir("replay-retrain");
    let p = dir.join("p.jsonl");
    write_stream(
        &p,
        &Stream {
            hours: 12.0,
            per_second: 1.0,
            shift_at_hour: Some(2.0),
            seed: 3,
        },
    );
    let actions = |control: Option<&std::path::Path>| {
        let out = dir.join("actions.jsonl");
        let mut c = bin();
        c.args([
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            "/dev/null",
            "--actions",
            out.to_str().unwrap(),
        ])
        .env("DRIFTLINE__RETRAIN__COOLDOWN", "2h");
        if let Some(f) = control {
            c.args(["--control", f.to_str().unwrap()]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        alerts(&out)
    };
    // unanswered: one request, however long the incident stays open
    let first = actions(None);
    assert_eq!(first.len(), 1, "{first:?}");
    let a = &first[0];
    assert_eq!(a["action"], "retrain_requested");
    assert_eq!(a["rule"], "retrain.causes");
    assert!(a["incident_id"].as_str().unwrap().starts_with("inc-"));
    let at = a["decided_at"].as_i64().unwrap();
    let ev = &a["evidence"];
    assert_eq!(ev["train_to"].as_i64(), Some(at));
    assert_eq!(ev["train_from"].as_i64(), Some(at - 7 * 24 * 3_600_000));
    // opened after the shift, asked for once it persisted an hour
    assert!(
        (T0 + 3 * 3_600_000..=T0 + 4 * 3_600_000).contains(&at),
        "{at}"
    );

    // acknowledged 30 min later: asked again once the 2 h cool-down is over, then waits
    let control = dir.join("control.jsonl");
    std::fs::write(
        &control,
        format!(
            "{{\"type\":\"retrain_ack\",\"action_id\":\"{}\",\"by\":\"ml\",\"event_time\":{}}}\n",
            a["action_id"].as_str().unwrap(),
            at + 1_800_000
        ),
    )
    .unwrap();
    let acked = actions(Some(&control));
    assert_eq!(acked.len(), 2, "{acked:?}");
    assert_eq!(acked[0], first[0]);
    let second = acked[1]["decided_at"].as_i64().unwrap();
    assert!(
        second >= at + 2 * 3_600_000 && second < at + 2 * 3_600_000 + 15 * 60_000,
        "{second} vs {at}"
    );
    assert_ne!(acked[1]["action_id"], acked[0]["action_id"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Before any label: a shadow whose scores drift from production's reference
/// while production's do not is rolled back by `release.unique_drift`; a
/// shadow that scores like production is not, and neither touches
/// production's alerts.
#[test]
fn a_shadow_scoring_apart_is_rolled_back_before_any_label() {
    let dir = tempdir("replay-unique-drift");
    let p = dir.join("p.jsonl");
    write_stream(
        &p,
        &Stream {
            hours: 6.0,
            per_second: 1.0,
            shift_at_hour: None,
            seed: 11,
        },
    );
    let shadow_from = T0 + 3 * 3_600_000;
    let with_shadow = |name: &str, lift: f64| {
        let out = dir.join(name);
        let mut lines = Vec::new();
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            lines.push(line.to_string());
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event_time"].as_i64().unwrap() < shadow_from {
                continue;
            }
            let s = (v["score"].as_f64().unwrap() + lift).min(1.0);
            v["score"] = s.into();
            v["prediction"] = ((s > 0.5) as u8).into();
            v["model_version"] = "v2".into();
            v["shadow"] = true.into();
            lines.push(v.to_string());
        }
        std::fs::write(&out, lines.join("\n") + "\n").unwrap();
        out
    };
    let replay = |input: &std::path::Path, tag: &str| {
        let (alerts, actions) = (dir.join(format!("{tag}.a")), dir.join(format!("{tag}.x")));
        let o = run(&[
            "replay",
            "--predictions",
            input.to_str().unwrap(),
            "--output",
            alerts.to_str().unwrap(),
            "--actions",
            actions.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let acts: Vec<serde_json::Value> = std::fs::read_to_string(&actions)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (std::fs::read_to_string(&alerts).unwrap(), acts, stderr(&o))
    };
    let (plain, none, _) = replay(&p, "plain");
    assert!(none.is_empty(), "{none:?}");
    let (alerts, acts, err) = replay(&with_shadow("apart.jsonl", 0.4), "apart");
    assert_eq!(alerts, plain, "the shadow changed production's alerts");
    let rollbacks: Vec<_> = acts
        .iter()
        .filter(|a| a["action"] == "rollback_recommended")
        .collect();
    assert_eq!(rollbacks.len(), 1, "{acts:#?}");
    let a = rollbacks[0];
    assert_eq!(a["model_version"], "v2");
    assert_eq!(a["mode"], "shadow");
    assert_eq!(a["rule"], "release.unique_drift");
    assert_eq!(a["evidence"]["statistic"], "score_psi");
    assert!(a["evidence"]["candidate"].as_f64().unwrap() >= 0.25, "{a}");
    assert!(a["evidence"]["production"].as_f64().unwrap() < 0.25, "{a}");
    // persistence evaluations after the first with enough scores, not hours
    let delay = a["decided_at"].as_i64().unwrap() - shadow_from;
    assert!(
        (0..=3_600_000).contains(&delay),
        "decided {delay} ms after the shadow's start"
    );
    assert!(err.contains("version v2 of m1 (shadow)"), "{err}");
    // the same scores in shadow: nothing to decide without labels
    let (alerts, acts, _) = replay(&with_shadow("twin.jsonl", 0.0), "twin");
    assert_eq!(alerts, plain);
    assert!(acts.is_empty(), "{acts:#?}");
}

/// Reading and decoding on a thread of their own changes nothing: the same
/// alerts, byte for byte, and the same bad lines named in the same order.
#[test]
fn workers_change_nothing_in_the_output() {
    let dir = tempdir("replay-workers");
    let p = shifted(&dir);
    let mut text = std::fs::read_to_string(&p).unwrap();
    // bad lines at the start, mid-way (past a hand-over batch) and at the end
    let at = text.match_indices('\n').nth(2500).unwrap().0 + 1;
    text.insert_str(at, "{\"not\": \"an event\"}\n");
    let text = format!("garbage\n{text}{{\"trace_id\":\n");
    std::fs::write(&p, text).unwrap();
    let replay = |w: &str| {
        let out = dir.join(format!("alerts-{w}.jsonl"));
        let o = run(&[
            "replay",
            "--predictions",
            p.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--workers",
            w,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let named: Vec<String> = stderr(&o)
            .lines()
            .filter(|l| l.contains("p.jsonl:"))
            .map(str::to_string)
            .collect();
        (std::fs::read(&out).unwrap(), named)
    };
    let (one, bad_one) = replay("1");
    let (three, bad_three) = replay("3");
    assert!(!one.is_empty());
    assert_eq!(one, three, "alerts differ between --workers 1 and 3");
    assert_eq!(bad_one.len(), 3, "{bad_one:#?}");
    assert_eq!(bad_one, bad_three);
}
