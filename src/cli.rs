//! The commands: `replay`, `baseline`, `check-config`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::alert::sink::JsonLines;
use crate::baseline::Baseline;
use crate::codec::avro;
use crate::config::{Config, HumanDuration};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::{BadEvent, Event};
use crate::source::file::{Location, Record, open_merged};

/// Bad events printed with their place before the rest are only counted.
const BAD_EVENTS_PRINTED: u64 = 100;

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
        /// Stop at the first bad event with exit code 1.
        #[arg(long)]
        strict: bool,
    },
    /// Everything in one process: an in-process Kafka, a simulated inference
    /// service with drifts injected, the monitor, and the alerts as they arrive.
    Demo {
        /// Stop after this long (e.g. "90s"); default: until Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Kafka {
            what: "runtime".into(),
            message: e.to_string(),
        })
}

/// Logs with `tracing`: lowercase messages, structured fields; level from
/// `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    init_logging_with(format, "info")
}

fn init_logging_with(format: LogFormat, default_level: &str) {
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

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AvroCodec {
    Null,
    Deflate,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Predictions,
    Outcomes,
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Replay {
            config,
            predictions,
            outcomes,
            output,
            strict,
        } => {
            let cfg = Config::load(&config)?;
            replay(cfg, &predictions, &outcomes, output, strict)
        }
        Command::Demo { duration } => {
            if std::env::var_os("RUST_LOG").is_none() {
                // the demo's output is the alerts; the service only speaks up when something is wrong
                init_logging_with(LogFormat::Text, "warn");
            }
            runtime()?.block_on(async {
                let stop = crate::service::stop_on_signals();
                crate::demo::run(duration, stop).await
            })?;
            Ok(0)
        }
        Command::Run {
            config,
            log_format,
            until_end,
        } => {
            let cfg = Config::load(&config)?;
            init_logging(log_format);
            runtime()?.block_on(async {
                let stop = crate::service::stop_on_signals();
                let mut service = crate::service::Service::new(cfg)?;
                service.until_end = until_end;
                service.run(stop).await
            })?;
            Ok(0)
        }
        Command::Route {
            config,
            log_format,
            until_end,
        } => {
            let cfg = Config::load(&config)?;
            init_logging(log_format);
            runtime()?.block_on(async {
                let stop = crate::service::stop_on_signals();
                tokio::task::spawn_blocking(move || {
                    let mut router = crate::route::Router::new(cfg)?;
                    router.until_end = until_end;
                    router.run(stop)
                })
                .await
                .map_err(|e| Error::Kafka {
                    what: "router".into(),
                    message: e.to_string(),
                })?
            })?;
            Ok(0)
        }
        Command::Baseline {
            config,
            predictions,
            output,
        } => {
            let cfg = Config::load(&config)?;
            baseline(cfg, &predictions, &output)
        }
        Command::Convert {
            kind,
            input,
            output,
            codec,
        } => convert(kind, &input, &output, codec),
        Command::CheckConfig { config } => {
            let cfg = Config::load(&config)?;
            print!("{}", cfg.to_toml());
            Ok(0)
        }
        Command::Checkpoints { config } => {
            let cfg = Config::load(&config)?;
            describe_checkpoints(&cfg)
        }
    }
}

fn describe_checkpoints(cfg: &Config) -> Result<i32> {
    use crate::checkpoint::{self, Body, CheckpointError};
    // (where, size in bytes, what was read)
    type Entry = (
        String,
        u64,
        std::result::Result<Option<Body>, CheckpointError>,
    );
    let entries: Vec<Entry> = match cfg.checkpoint.store {
        crate::config::CheckpointStore::Dir => {
            let dir = std::path::Path::new(&cfg.checkpoint.dir);
            let files =
                checkpoint::files(dir, &cfg.kafka.group_id).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            files
                .into_iter()
                .map(|path| {
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    let read = checkpoint::read(&path, cfg);
                    (path.display().to_string(), size, read)
                })
                .collect()
        }
        crate::config::CheckpointStore::Kafka => {
            let kafka_err = |e: CheckpointError| Error::Kafka {
                what: "checkpoint topic".into(),
                message: e.to_string(),
            };
            let mut store = checkpoint::topic::TopicStore::new(
                &cfg.checkpoint.topic,
                crate::kafka::client_config(&cfg.kafka),
            )
            .map_err(kafka_err)?;
            store
                .list(&cfg.kafka.group_id, cfg)
                .map_err(kafka_err)?
                .into_iter()
                .map(|(name, r)| {
                    let size = r
                        .as_ref()
                        .ok()
                        .and_then(|o| o.as_ref())
                        .map_or(0, |(_, n)| *n);
                    (name, size as u64, r.map(|o| o.map(|(b, _)| b)))
                })
                .collect()
        }
    };
    let mut bad = 0;
    for (path, size, read) in entries {
        let line = match read {
            Ok(Some(body)) => match Engine::restore(cfg.clone(), HashMap::new(), &body.engine) {
                Ok(engine) => serde_json::json!({
                    "path": path,
                    "written_at_ms": body.written_at_ms,
                    "bytes": size,
                    "crate_version": body.crate_version,
                    "offsets": body.offsets,
                    "predictions": engine.stats.predictions,
                    "outcomes": engine.stats.outcomes,
                    "late": engine.stats.late,
                    "series": engine.series_counts().collect::<Vec<_>>(),
                }),
                Err(e) => {
                    bad += 1;
                    serde_json::json!({"path": path, "error": e.to_string()})
                }
            },
            Ok(None) => continue,
            Err(e) => {
                bad += 1;
                serde_json::json!({"path": path, "error": e.to_string()})
            }
        };
        println!("{line}");
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

/// Applies one record; a bad one is counted and reported (in strict mode it ends the run).
fn feed(engine: &mut Engine, rec: &Record, strict: bool) -> Result<()> {
    let bad = match &rec.event {
        Ok(ev) => match engine.apply(ev) {
            Ok(_) => return Ok(()),
            Err(bad) => bad,
        },
        Err(bad) => bad.clone(),
    };
    report_bad(engine, &rec.location, &bad, strict)
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
        eprintln!("{location}: bad event ({}): {}", bad.reason, bad.message);
        if n == BAD_EVENTS_PRINTED {
            eprintln!("further bad events are counted, not printed");
        }
    }
    Ok(())
}

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

/// Runs files through the engine, writing alerts as JSON Lines.
pub fn replay(
    cfg: Config,
    predictions: &[PathBuf],
    outcomes: &[PathBuf],
    output: Option<PathBuf>,
    strict: bool,
) -> Result<i32> {
    let baselines = Baseline::load_configured(&cfg)?;
    let mut engine = Engine::with_baselines(cfg, baselines);
    let merged = open_merged(predictions, outcomes)?;
    let out: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = JsonLines::new(std::io::BufWriter::with_capacity(1 << 16, out));
    let pb = progress();
    let started = Instant::now();
    let mut n: u64 = 0;
    for rec in merged {
        feed(&mut engine, &rec, strict)?;
        for a in engine.drain_alerts() {
            sink.write(&a)?;
        }
        n += 1;
        if n.is_multiple_of(16384) {
            pb.set_position(n);
        }
    }
    engine.finish();
    for a in engine.drain_alerts() {
        sink.write(&a)?;
    }
    sink.flush()?;
    pb.finish_and_clear();
    engine.stats.join = Some(engine.quality.join.stats);
    engine.stats.overflow = Some(engine.overflow());
    eprint!("{}", engine.stats.summary(started.elapsed().as_secs_f64()));
    Ok(0)
}

/// Summarises historical events into a baseline file.
pub fn baseline(mut cfg: Config, predictions: &[PathBuf], output: &PathBuf) -> Result<i32> {
    // a warm-up longer than any history keeps every series accumulating
    let bucket = cfg.window.bucket.0.as_secs().max(1);
    cfg.reference.warmup = HumanDuration::secs((100 * 365 * 86_400 / bucket) * bucket);
    cfg.reference.models.clear();
    let mut engine = Engine::new(cfg);
    let started = Instant::now();
    for rec in open_merged(predictions, &[])? {
        feed(&mut engine, &rec, false)?;
    }
    let file = engine.export_baseline();
    let text = serde_json::to_string(&file).map_err(|e| Error::Output(e.into()))?;
    std::fs::write(output, text).map_err(|e| Error::io(output, e))?;
    eprint!("{}", engine.stats.summary(started.elapsed().as_secs_f64()));
    eprintln!(
        "baseline: {} models, {} series written to {}",
        file.models.len(),
        file.models.iter().map(|m| m.series.len()).sum::<usize>(),
        output.display()
    );
    Ok(0)
}

/// Writes good events of `input` to an Avro container file; bad ones are reported and skipped.
pub fn convert(kind: Kind, input: &[PathBuf], output: &PathBuf, codec: AvroCodec) -> Result<i32> {
    let schemas = avro::schemas()?;
    let (schema, merged) = match kind {
        Kind::Predictions => (&schemas.prediction, open_merged(input, &[])?),
        Kind::Outcomes => (&schemas.outcome, open_merged(&[], input)?),
    };
    let file = std::fs::File::create(output).map_err(|e| Error::io(output, e))?;
    let mut w = apache_avro::Writer::builder()
        .schema(schema)
        .writer(std::io::BufWriter::new(file))
        .codec(match codec {
            AvroCodec::Null => apache_avro::Codec::Null,
            AvroCodec::Deflate => {
                apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
            }
        })
        .build()
        .map_err(|e| Error::AvroFile {
            path: output.clone(),
            message: e.to_string(),
        })?;
    let (mut good, mut bad) = (0u64, 0u64);
    let write_err = |message: String| Error::AvroFile {
        path: output.clone(),
        message,
    };
    for rec in merged {
        let value = match &rec.event {
            Ok(Event::Prediction(p)) => avro::to_avro_value(schema, p),
            Ok(Event::Outcome(o)) => avro::to_avro_value(schema, o),
            Err(_) => Ok(apache_avro::types::Value::Null),
        };
        match rec.event {
            Ok(_) => {
                w.append_value(value.map_err(write_err)?)
                    .map_err(|e| write_err(e.to_string()))?;
                good += 1;
            }
            Err(e) => {
                bad += 1;
                if bad <= BAD_EVENTS_PRINTED {
                    eprintln!("{}: bad event ({}): {}", rec.location, e.reason, e.message);
                }
            }
        }
    }
    w.flush().map_err(|e| write_err(e.to_string()))?;
    eprintln!(
        "converted {good} events ({bad} bad, skipped) to {}",
        output.display()
    );
    Ok(0)
}
