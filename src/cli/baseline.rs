//! `driftline baseline`: historical events summarised into a baseline file.

use std::path::PathBuf;
use std::time::Instant;

use crate::config::{Config, HumanDuration};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::source::file::{check_output, open_merged};

use super::Feeder;

/// Summarises historical events into a baseline file.
pub fn baseline(mut cfg: Config, predictions: &[PathBuf], output: &PathBuf) -> Result<i32> {
    // a warm-up longer than any history keeps every series accumulating
    let bucket = cfg.window.bucket.0.as_secs().max(1);
    cfg.reference.warmup = HumanDuration::secs((100 * 365 * 86_400 / bucket) * bucket);
    cfg.reference.models.clear();
    check_output(output, &predictions.iter().collect::<Vec<_>>())?;
    let mut engine = Engine::new(cfg);
    let started = Instant::now();
    let mut feeder = Feeder::default();
    for rec in open_merged(
        predictions,
        &[],
        engine.config().input.max_line_bytes,
        engine.config().input.max_future_skew.as_millis(),
    )? {
        feeder.feed(&mut engine, &rec, false)?;
    }
    engine.finish();
    feeder.settle(&mut engine, false)?;
    let file = engine.export_baseline();
    let text = serde_json::to_string(&file).map_err(|e| Error::Output(e.into()))?;
    std::fs::write(output, text).map_err(|e| Error::write(output, e))?;
    crate::cli::note_raw!("{}", engine.stats.summary(started.elapsed().as_secs_f64()));
    crate::cli::note!(
        "baseline: {} models, {} series written to {}",
        file.models.len(),
        file.models.iter().map(|m| m.series.len()).sum::<usize>(),
        output.display()
    );
    Ok(0)
}
