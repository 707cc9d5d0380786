//! `driftline replay`: files through the engine, alerts as JSON Lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use crate::alert::sink::JsonLines;
use crate::baseline::Baseline;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::incident::feedback::Control;
use crate::source::file::{check_output, open_merged};

use super::Feeder;

fn progress() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {human_pos} events {per_sec} {elapsed}")
    {
        pb.set_style(style);
    }
    pb
}

/// Where replay writes: alerts (stdout by default), and optionally
/// incident and action events.
pub struct Outputs {
    pub alerts: Option<PathBuf>,
    pub incidents: Option<PathBuf>,
    pub actions: Option<PathBuf>,
}

/// A JSON Lines file for `--incidents` / `--actions`, refused when it is an
/// input or another output.
fn side_file(
    p: &Option<PathBuf>,
    flag: &str,
    inputs: &[&PathBuf],
    others: &[(&str, &Option<PathBuf>)],
) -> Result<Option<JsonLines<std::io::BufWriter<std::fs::File>>>> {
    let Some(p) = p else { return Ok(None) };
    check_output(p, inputs)?;
    for (other, o) in others {
        if o.as_ref().is_some_and(|o| o == p) {
            return Err(Error::Usage(format!(
                "{flag} {} is also {other}: give each its own file",
                p.display()
            )));
        }
    }
    let f = std::fs::File::create(p).map_err(|e| Error::write(p, e))?;
    Ok(Some(JsonLines::new(std::io::BufWriter::new(f))))
}

/// Incident and action events to their files, or dropped.
fn drain_events(
    engine: &mut Engine,
    incidents: Option<&mut JsonLines<std::io::BufWriter<std::fs::File>>>,
    actions: Option<&mut JsonLines<std::io::BufWriter<std::fs::File>>>,
) -> Result<()> {
    match incidents {
        Some(s) => {
            for ev in engine.drain_incidents() {
                s.write(&ev)?;
            }
        }
        None => engine.drain_incidents().for_each(drop),
    }
    match actions {
        Some(s) => {
            for a in engine.drain_actions() {
                s.write(&a)?;
            }
        }
        None => engine.drain_actions().for_each(drop),
    }
    Ok(())
}

/// Control events (`--control`, JSON Lines), each with its line, in the
/// order they apply: by `event_time` (those without one at the end of
/// input), ties in file order. A line that is not a control event is an
/// error naming the file and line: the run has not started yet, and a
/// verdict silently dropped would skew what the counts teach.
fn read_control(path: &std::path::Path) -> Result<Vec<(usize, Control)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let c = serde_json::from_str::<Control>(line).map_err(|e| {
            Error::Usage(format!(
                "{}:{}: not a control event: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push((i + 1, c));
    }
    out.sort_by_key(|(_, c)| c.event_time().unwrap_or(i64::MAX));
    Ok(out)
}

/// Applies the control events due by `now` (event time; `None`: all).
fn apply_due(
    engine: &mut Engine,
    pending: &mut std::collections::VecDeque<(usize, Control)>,
    now: Option<i64>,
) {
    while let Some((_, c)) = pending.front() {
        if now.is_some_and(|t| c.event_time().is_none_or(|at| at > t)) {
            break;
        }
        let (_, c) = pending.pop_front().expect("front exists");
        engine.apply_control(&c);
    }
}

/// Each candidate version's last comparison with production, overall.
fn report_versions(engine: &Engine) {
    let num = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:.4}"));
    for m in engine.versions() {
        let prod = m.production.as_deref().unwrap_or("production");
        for c in &m.candidates {
            let overall = c.slices.iter().find(|s| s.slice.is_empty());
            let quality = overall.map_or("too few labelled pairs to compare".to_string(), |s| {
                format!(
                    "{} {:.4} vs {:.4}, AUC {} vs {}, accuracy {} vs {}, over {} vs {} pairs",
                    m.statistic.as_deref().unwrap_or("loss"),
                    s.loss[1],
                    s.loss[0],
                    num(s.auc[1]),
                    num(s.auc[0]),
                    num(s.accuracy[1]),
                    num(s.accuracy[0]),
                    s.pairs[1],
                    s.pairs[0]
                )
            });
            let drift = c.drift.as_ref().map_or(String::new(), |d| {
                format!(
                    "; score PSI against the reference {:.3} vs {:.3}",
                    d.candidate, d.production
                )
            });
            crate::cli::note!(
                "version {} of {} ({}) against {prod}: {quality}{drift}; decided {:?}",
                c.version,
                m.model_id,
                c.mode,
                c.decided
            );
        }
    }
}

/// The feedback counts, and verdicts naming no incident of this run.
fn report_feedback(engine: &Engine, path: &std::path::Path) {
    for ((verdict, key), n) in engine.feedback_counts() {
        crate::cli::note!(
            "feedback: {n} {} on {} {} ({})",
            verdict.as_str(),
            key.test,
            key.feature.as_deref().unwrap_or("(model)"),
            key.cause.as_str()
        );
    }
    let waiting = engine.feedback_waiting();
    if !waiting.is_empty() {
        crate::cli::note!(
            "{}: {} verdicts name no incident of this run (not counted): {}",
            path.display(),
            waiting.len(),
            waiting.join(", ")
        );
    }
}

/// Runs files through the engine, writing alerts as JSON Lines.
pub fn replay(
    cfg: Config,
    predictions: &[PathBuf],
    outcomes: &[PathBuf],
    outputs: Outputs,
    control: Option<PathBuf>,
    strict: bool,
    workers: usize,
) -> Result<i32> {
    let mut pending: std::collections::VecDeque<(usize, Control)> = match &control {
        Some(p) => read_control(p)?.into(),
        None => Default::default(),
    };
    let baselines = Baseline::load_configured(&cfg)?;
    let mut engine = Engine::with_baselines(cfg, baselines);
    // without an outcomes file no prediction waits in the join
    engine.expect_outcomes(!outcomes.is_empty());
    engine.set_workers(workers);
    // writes applied in groups of series, on the workers
    engine.defer_writes(true);
    let input = &engine.config().input;
    let merged = open_merged(
        predictions,
        outcomes,
        input.max_line_bytes,
        input.max_future_skew.as_millis(),
    )?;
    // every file read, so no output overwrites one
    let inputs: Vec<&PathBuf> = predictions.iter().chain(outcomes).chain(&control).collect();
    let Outputs {
        alerts: output,
        incidents,
        actions,
    } = outputs;
    let out: Box<dyn Write> = match &output {
        Some(p) => {
            check_output(p, &inputs)?;
            Box::new(std::fs::File::create(p).map_err(|e| Error::write(p, e))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = JsonLines::new(std::io::BufWriter::with_capacity(1 << 16, out));
    let mut incident_sink =
        side_file(&incidents, "--incidents", &inputs, &[("--output", &output)])?;
    let mut action_sink = side_file(
        &actions,
        "--actions",
        &inputs,
        &[("--output", &output), ("--incidents", &incidents)],
    )?;
    let pb = progress();
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut feeder = Feeder::default();
    // read beside the engine: each prediction's bins worked out there, and
    // its ids looked up in a copy of the engine's registry (`resolve`)
    let prepare: crate::source::threaded::Prepare = if workers > 1 {
        let mut resolver = engine.resolver();
        // benches/instructions.py counts each thread's share with every
        // lookup on the reader (under callgrind, which runs one thread at a
        // time, the balance would follow its scheduling, not the work)
        let always = std::env::var_os("DRIFTLINE_LOOK_UP_BESIDE").is_some_and(|v| v == "always");
        Box::new(move |p: &mut _, busy| resolver.prepare(p, busy || always))
    } else {
        Box::new(|_: &mut _, _| {})
    };
    crate::source::threaded::Records::new(merged, workers, prepare).try_for_each(
        |rec, ahead| {
            // read on the reader's core: the next event's parts come over
            // while this one is applied, and the one after's own fields
            if let Some(Ok(next)) = ahead.first().map(|r| &r.event) {
                crate::engine::prefetch_event(next);
            }
            if let Some(Ok(after)) = ahead.get(1).map(|r| &r.event) {
                crate::engine::prefetch_event_itself(after);
            }
            if !pending.is_empty()
                && let Some(w) = engine.watermark()
            {
                apply_due(&mut engine, &mut pending, Some(w));
            }
            feeder.feed(&mut engine, rec, strict)?;
            // most events make no output: three empty drains were ~160
            // instructions an event
            if engine.has_output() {
                for a in engine.drain_alerts() {
                    sink.write(&a)?;
                }
                drain_events(&mut engine, incident_sink.as_mut(), action_sink.as_mut())?;
            }
            n += 1;
            if n.is_multiple_of(16384) {
                pb.set_position(n);
            }
            Ok::<(), Error>(())
        },
    )?;
    engine.finish();
    apply_due(&mut engine, &mut pending, None);
    feeder.settle(&mut engine, strict)?;
    for a in engine.drain_alerts() {
        sink.write(&a)?;
    }
    drain_events(&mut engine, incident_sink.as_mut(), action_sink.as_mut())?;
    if let Some(p) = &control {
        report_feedback(&engine, p);
    }
    report_versions(&engine);
    sink.flush()?;
    if let Some(s) = incident_sink.as_mut() {
        s.flush()?;
    }
    if let Some(s) = action_sink.as_mut() {
        s.flush()?;
    }
    pb.finish_and_clear();
    engine.stats.join = Some(engine.quality.join.stats);
    engine.stats.overflow = Some(engine.overflow());
    engine.stats.dormant_series = Some(engine.dormant_series());
    crate::cli::note_raw!("{}", engine.stats.summary(started.elapsed().as_secs_f64()));
    Ok(0)
}
