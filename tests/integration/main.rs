//! End-to-end tests of the `driftline` binary: one integration-test binary
//! built from modules (helpers in `util.rs`).

mod util;

mod bad_input;
mod baseline;
mod checkpoint;
mod config;
mod engine;
mod fuzz_corpus;
mod hostile_files;
mod hostile_time;
mod layout;
mod mock;
mod release_order;
mod replay;
mod runbooks;
