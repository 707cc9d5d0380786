//! End-to-end tests of the `driftwatch` binary: one integration-test binary
//! built from modules (helpers in `util.rs`).

mod util;

mod baseline;
mod bad_input;
mod config;
mod engine;
mod replay;
