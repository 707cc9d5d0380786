//! Errors at the crate boundary. Messages are lowercase and name the place
//! (file and line, or config key) so one line is enough to act on.

use std::path::PathBuf;

/// Everything that can stop a command. Bad *events* are not errors of this
/// kind: they are counted by [`crate::event::BadReason`] and skipped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    ConfigKey { key: String, message: String },
    #[error("schema {name}: {message}")]
    Schema { name: String, message: String },
    #[error("{path}: not an avro object container file: {message}")]
    AvroFile { path: PathBuf, message: String },
    #[error("baseline {path}: {message}")]
    Baseline { path: PathBuf, message: String },
    #[error("{location}: bad event ({reason}): {message}")]
    Strict {
        location: String,
        reason: &'static str,
        message: String,
    },
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A command line that would lose data or cannot work: refused before anything is written.
    #[error("{0}")]
    Usage(String),
    #[error("kafka {what}: {message}")]
    Kafka { what: String, message: String },
    #[error("http.listen {listen}: cannot listen: {message}")]
    Http { listen: String, message: String },
}

impl Error {
    /// An output file that cannot be created or written.
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Exit code for the command line: 2 for unusable config or input files,
    /// 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. }
            | Error::Config { .. }
            | Error::ConfigKey { .. }
            | Error::Schema { .. }
            | Error::AvroFile { .. }
            | Error::Baseline { .. }
            | Error::Http { .. }
            | Error::Usage(_) => 2,
            Error::Strict { .. } | Error::Output(_) | Error::Write { .. } | Error::Kafka { .. } => {
                1
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
