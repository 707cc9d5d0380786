//! `driftline replay`: files through the engine, alerts as JSON Lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use crate::alert::sink::JsonLines;
use crate::baseline::Baseline;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
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

/// Incident events to their file (`--incidents`), or dropped.
fn drain_incidents<W: Write>(engine: &mut Engine, sink: Option<&mut JsonLines<W>>) -> Result<()> {
    match sink {
        Some(s) => {
            for ev in engine.drain_incidents() {
                s.write(&ev)?;
            }
        }
        None => {
            engine.drain_incidents().for_each(drop);
        }
    }
    Ok(())
}

/// Control events (`--control`, JSON Lines) applied after the run: feedback
/// on the incidents it opened. A line that cannot be taken is reported with
/// its line number and skipped; the verdict counts go to the summary.
fn apply_control(engine: &mut Engine, path: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let taken = serde_json::from_str::<crate::incident::feedback::Control>(line)
            .map_err(|e| e.to_string())
            .and_then(|c| engine.apply_control(&c));
        if let Err(e) = taken {
            crate::cli::note!("{}:{}: control event not taken: {e}", path.display(), i + 1);
        }
    }
    for ((verdict, key), n) in engine.feedback_counts() {
        crate::cli::note!(
            "feedback: {n} {} on {} {} ({})",
            match verdict {
                crate::incident::feedback::Verdict::Confirmed => "confirmed",
                crate::incident::feedback::Verdict::FalsePositive => "false positive",
            },
            key.test,
            key.feature.as_deref().unwrap_or("(model)"),
            key.cause.as_str()
        );
    }
    Ok(())
}

/// Runs files through the engine, writing alerts as JSON Lines.
pub fn replay(
    cfg: Config,
    predictions: &[PathBuf],
    outcomes: &[PathBuf],
    output: Option<PathBuf>,
    incidents: Option<PathBuf>,
    control: Option<PathBuf>,
    strict: bool,
) -> Result<i32> {
    let baselines = Baseline::load_configured(&cfg)?;
    let mut engine = Engine::with_baselines(cfg, baselines);
    let input = &engine.config().input;
    let merged = open_merged(
        predictions,
        outcomes,
        input.max_line_bytes,
        input.max_future_skew.as_millis(),
    )?;
    let out: Box<dyn Write> = match &output {
        Some(p) => {
            check_output(p, &predictions.iter().chain(outcomes).collect::<Vec<_>>())?;
            Box::new(std::fs::File::create(p).map_err(|e| Error::write(p, e))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = JsonLines::new(std::io::BufWriter::with_capacity(1 << 16, out));
    let inputs: Vec<&PathBuf> = predictions.iter().chain(outcomes).collect();
    let mut incident_sink = match &incidents {
        Some(p) => {
            check_output(p, &inputs)?;
            if output.as_ref().is_some_and(|o| o == p) {
                return Err(Error::Usage(format!(
                    "--incidents {} is also --output: give each its own file",
                    p.display()
                )));
            }
            let f = std::fs::File::create(p).map_err(|e| Error::write(p, e))?;
            Some(JsonLines::new(std::io::BufWriter::new(f)))
        }
        None => None,
    };
    let pb = progress();
    let started = Instant::now();
    let mut n: u64 = 0;
    let mut feeder = Feeder::default();
    for rec in merged {
        feeder.feed(&mut engine, &rec, strict)?;
        for a in engine.drain_alerts() {
            sink.write(&a)?;
        }
        drain_incidents(&mut engine, incident_sink.as_mut())?;
        n += 1;
        if n.is_multiple_of(16384) {
            pb.set_position(n);
        }
    }
    engine.finish();
    feeder.settle(&mut engine, strict)?;
    for a in engine.drain_alerts() {
        sink.write(&a)?;
    }
    drain_incidents(&mut engine, incident_sink.as_mut())?;
    if let Some(p) = &control {
        apply_control(&mut engine, p)?;
    }
    sink.flush()?;
    if let Some(s) = incident_sink.as_mut() {
        s.flush()?;
    }
    pb.finish_and_clear();
    engine.stats.join = Some(engine.quality.join.stats);
    engine.stats.overflow = Some(engine.overflow());
    crate::cli::note_raw!("{}", engine.stats.summary(started.elapsed().as_secs_f64()));
    Ok(0)
}
