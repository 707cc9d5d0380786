//! Where events come from. `file` reads JSON Lines and Avro container files
//! and merges them by event time; the Kafka source comes with the service.

pub mod file;
pub mod threaded;
