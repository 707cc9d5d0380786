//! The commands behind the binary, one file each: `replay`, `baseline`,
//! `convert`, `checkpoints`, and the long-running ones (`run`, `route`,
//! `demo`) in `service`. This file holds the argument parser, the dispatch,
//! logging set-up, and how a bad event in a file is reported.

mod baseline;
mod checkpoints;
mod convert;
mod replay;
mod service;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::engine::{Applied, Engine};
use crate::error::{Error, Result};
use crate::event::BadEvent;
use crate::source::file::{Location, Record};

pub use convert::{AvroCodec, Kind};

/// A line on stderr for the person running the command. A stderr that
/// cannot be written (closed, full) loses the line, never the run.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
/// [`note!`] without the newline.
macro_rules! note_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use {note, note_raw};

/// Writes a command's result to stdout; a stdout that cannot take it is an
/// output error (exit 1), not a panic.
fn out(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(Error::Output)
}

/// Bad events printed with their place before the rest are only counted.
pub(crate) const BAD_EVENTS_PRINTED: u64 = 100;

#[derive(Parser, Debug)]
#[command(
    name = "driftline",
    version,
    about = "Streaming drift monitor for machine-learning models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay prediction (and outcome) files through the engine; alerts as JSON Lines.
    Replay {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
        /// Prediction files (JSON Lines or Avro container files); repeat or list several.
        #[arg(long, required = true, num_args = 1..)]
        predictions: Vec<PathBuf>,
        /// Outcome files.
        #[arg(long, num_args = 1..)]
        outcomes: Vec<PathBuf>,
        /// Where alerts go (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where incident events go (JSON Lines; default: not written).
        #[arg(long)]
        incidents: Option<PathBuf>,
        /// Where action events go (release decisions, retrain requests; JSON Lines; default: not written).
        #[arg(long)]
        actions: Option<PathBuf>,
        /// Control events (JSON Lines: incident feedback, retrain acknowledgements), applied in event time.
        #[arg(long)]
        control: Option<PathBuf>,
        /// Stop at the first bad event with exit code 1.
        #[arg(long)]
        strict: bool,
        /// Threads: 1 reads, decodes and applies on one; 2 or more read and
        /// decode on a thread of their own beside the engine (default: the
        /// cores available). The output is the same whatever the number.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Everything in one process: an in-process Kafka, a simulated inference
    /// service with drifts injected, the monitor, and the alerts as they arrive.
    Demo {
        /// Stop after this long (e.g. "90s"); default: until Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Where the dashboard listens.
        #[arg(long, default_value = crate::demo::DEMO_HTTP)]
        listen: String,
    },
    /// The Kafka service: consume predictions and outcomes, publish alerts,
    /// dead-letter bad input. Stops cleanly on SIGINT/SIGTERM.
    Run {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Stop (drain, flush, commit, exit 0) once every assigned partition
        /// has been read to its end and stayed silent for `idle_timeout`: a
        /// backfill, or a benchmark.
        #[arg(long)]
        until_end: bool,
        /// Threads decoding: 2 or more take what the consumer already holds
        /// as a batch and decode it on them, then apply it in order; 1
        /// decodes each message as it comes (default: the cores available).
        /// What is applied, published and stored is the same whatever the number.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Re-key the input topics by model id into `[route]`'s topics, exactly
    /// once (Kafka transactions): the first stage when several `run`
    /// instances share topics not keyed by model.
    Route {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Stop once every assigned partition has been routed to its end.
        #[arg(long)]
        until_end: bool,
    },
    /// Build a baseline file from historical events; point a model at it with
    /// `[reference.models.<id>] baseline = "file"`.
    Baseline {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
        #[arg(long, required = true, num_args = 1..)]
        predictions: Vec<PathBuf>,
        #[arg(long)]
        output: PathBuf,
    },
    /// Convert event files (JSON Lines or Avro) into an Avro object container
    /// file (deflate) of `schemas/prediction.avsc` or `schemas/outcome.avsc`.
    Convert {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        #[arg(long)]
        output: PathBuf,
        /// Block compression.
        #[arg(long, value_enum, default_value = "deflate")]
        codec: AvroCodec,
    },
    /// Print the effective config (file plus DRIFTLINE__ overrides) or name the bad key.
    CheckConfig {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
    },
    /// Describe the consumer group's checkpoints (in `checkpoint.dir`, or the
    /// checkpoint topic), one JSON object per line: when written, size,
    /// offsets, and each series' count.
    Checkpoints {
        #[arg(long, default_value = "config/driftline.toml")]
        config: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs with `tracing`: lowercase messages, structured fields; level from
/// `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    init_logging_with(format, "info")
}

pub(crate) fn init_logging_with(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        b.json().try_init()
    } else {
        b.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Runs one command; the exit code on success.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Replay {
            config,
            predictions,
            outcomes,
            output,
            incidents,
            actions,
            control,
            strict,
            workers,
        } => replay::replay(
            Config::load(&config)?,
            &predictions,
            &outcomes,
            replay::Outputs {
                alerts: output,
                incidents,
                actions,
            },
            control,
            strict,
            workers.unwrap_or_else(cores),
        ),
        Command::Demo { duration, listen } => service::demo(duration, listen),
        Command::Run {
            config,
            log_format,
            until_end,
            workers,
        } => service::run(
            &config,
            log_format,
            until_end,
            workers.unwrap_or_else(cores),
        ),
        Command::Route {
            config,
            log_format,
            until_end,
        } => service::route(&config, log_format, until_end),
        Command::Baseline {
            config,
            predictions,
            output,
        } => baseline::baseline(Config::load(&config)?, &predictions, &output),
        Command::Convert {
            kind,
            input,
            output,
            codec,
        } => convert::convert(kind, &input, &output, codec),
        Command::CheckConfig { config } => {
            out(&Config::load(&config)?.to_toml())?;
            Ok(0)
        }
        Command::Checkpoints { config } => {
            checkpoints::describe_checkpoints(&Config::load(&config)?)
        }
    }
}

/// Late events printed with their place before the rest are only counted.
const LATE_EVENTS_PRINTED: u64 = 20;

/// Feeds file records to an engine and reports what it refused, where it
/// was: bad events, late events, and the first events it held and then
/// refused (their places are kept while the engine holds them).
#[derive(Default)]
pub(crate) struct Feeder {
    records: u64,
    held: Vec<(u64, Location)>,
}

impl Feeder {
    /// Applies one record; a bad one is counted and reported (in strict mode it ends the run).
    pub(crate) fn feed(&mut self, engine: &mut Engine, rec: &Record, strict: bool) -> Result<()> {
        self.records += 1;
        let bad = match &rec.event {
            Ok(ev) => match engine.apply_tagged(ev, None, self.records) {
                Ok(Applied::Held) => {
                    self.held.push((self.records, rec.location.clone()));
                    None
                }
                Ok(Applied::Late) => {
                    if engine.stats.late <= LATE_EVENTS_PRINTED {
                        note!(
                            "{}: late event: event_time {} is behind the watermark ({}); counted, not applied",
                            rec.location,
                            ev.event_time(),
                            engine.watermark().unwrap_or(0)
                        );
                    }
                    None
                }
                Ok(Applied::Applied) => None,
                Err(bad) => Some(bad),
            },
            Err(bad) => Some(bad.clone()),
        };
        if let Some(bad) = bad {
            report_bad(engine, &rec.location, &bad, strict)?;
        }
        self.settle(engine, strict)
    }

    /// Reports the held events the engine refused and the jumps it
    /// accepted; call after each record and after `finish`.
    pub(crate) fn settle(&mut self, engine: &mut Engine, strict: bool) -> Result<()> {
        if self.held.is_empty() && !engine.has_news() {
            return Ok(());
        }
        let refused: Vec<_> = engine.drain_refused().collect();
        for r in refused {
            let location = self
                .held
                .iter()
                .find(|(tag, _)| *tag == r.tag)
                .map(|(_, l)| l.clone());
            match location {
                Some(l) => report_bad(engine, &l, &r.bad, strict)?,
                None => {
                    engine.stats.count_bad(r.bad.reason);
                    note!("bad event ({}): {}", r.bad.reason, r.bad.message);
                }
            }
        }
        if engine.holding() == 0 {
            self.held.clear();
        }
        let jumps: Vec<(i64, i64)> = engine.drain_jumps().collect();
        for (from, to) in jumps {
            note!(
                "event time jumped from {from} to {to} ({} later): enough events agreed on it; the buckets in between closed empty",
                crate::engine::clock::humanize_ms(to - from)
            );
        }
        Ok(())
    }
}

/// Counts and reports one bad event; in strict mode it ends the run.
fn report_bad(
    engine: &mut Engine,
    location: &Location,
    bad: &BadEvent,
    strict: bool,
) -> Result<()> {
    engine.stats.count_bad(bad.reason);
    if strict {
        return Err(Error::Strict {
            location: location.to_string(),
            reason: bad.reason.as_str(),
            message: bad.message.clone(),
        });
    }
    let n = engine.stats.bad_total();
    if n <= BAD_EVENTS_PRINTED {
        crate::cli::note!("{location}: bad event ({}): {}", bad.reason, bad.message);
        if n == BAD_EVENTS_PRINTED {
            crate::cli::note!("further bad events are counted, not printed");
        }
    }
    Ok(())
}

/// The cores available: the default number of workers.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
