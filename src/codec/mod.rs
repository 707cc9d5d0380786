//! Decoding bytes into events: JSON and Avro. A decode failure is a
//! [`BadEvent`](crate::event::BadEvent) with a reason, never a panic.

pub mod avro;
pub mod confluent;
pub mod container;
pub mod json;
mod vouch;

/// Which contract a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Predictions,
    Outcomes,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Predictions => "predictions",
            StreamKind::Outcomes => "outcomes",
        }
    }
}
