//! `driftline run`, `driftline route` and `driftline demo`: the commands
//! that run on a tokio runtime until a signal (or the end of the input) stops them.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};

use super::{LogFormat, init_logging, init_logging_with};

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

/// `driftline run`: the Kafka service.
pub fn run(config: &Path, log_format: LogFormat, until_end: bool, workers: usize) -> Result<i32> {
    let cfg = Config::load(config)?;
    init_logging(log_format);
    runtime()?.block_on(async {
        let stop = crate::service::stop_on_signals(cfg.kafka.shutdown_timeout.0);
        let mut service = crate::service::Service::new(cfg)?;
        service.until_end = until_end;
        service.set_workers(workers)?;
        service.run(stop).await
    })?;
    Ok(0)
}

/// `driftline route`: the first stage, re-keying the input topics by model.
pub fn route(config: &Path, log_format: LogFormat, until_end: bool) -> Result<i32> {
    let cfg = Config::load(config)?;
    init_logging(log_format);
    runtime()?.block_on(async {
        let stop = crate::service::stop_on_signals(cfg.kafka.shutdown_timeout.0);
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

/// `driftline demo`: an in-process Kafka, a simulated model and the service.
pub fn demo(duration: Option<std::time::Duration>, listen: String) -> Result<i32> {
    if std::env::var_os("RUST_LOG").is_none() {
        // the demo's output is the alerts; the service only speaks up when something is wrong
        init_logging_with(LogFormat::Text, "warn");
    }
    runtime()?.block_on(async {
        let stop = crate::service::stop_on_signals(std::time::Duration::from_secs(30));
        crate::demo::run(duration, listen, stop).await
    })?;
    Ok(0)
}
