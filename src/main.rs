//! The driftline binary: parse arguments, run, report the error and exit code.

use std::io::Write;

use clap::Parser;

/// mimalloc for the whole process, librdkafka's C allocations included (the
/// `override` feature replaces `malloc`/`free`): with glibc's allocator the
/// consumer thread blocked on the broker thread's arena lock when it freed
/// a message (most of its waits in `perf sched`, benches/kafka.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = driftline::cli::Cli::parse();
    match driftline::cli::run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // (a closed or full stderr loses the line, not the exit code)
            let _ = writeln!(std::io::stderr(), "driftline: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
