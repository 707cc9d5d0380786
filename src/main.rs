//! The driftline binary: parse arguments, run, report the error and exit code.

use std::io::Write;

use clap::Parser;

/// mimalloc for the whole process, librdkafka's C allocations included (the
/// `override` feature replaces `malloc`/`free`): with glibc's allocator the
/// consumer thread blocked on the broker thread's arena lock when it freed
/// a message (most of its waits in `perf sched`, benches/kafka.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h;
/// libmimalloc-sys names only the options v2 and v3 share).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// In the file commands freed pages go back to the system after 10 ms, not
/// mimalloc v3's 1 s: a replay closes a minute of event time in
/// milliseconds, and with a second of its freed bucket memory held the
/// 3,000-series stream peaked at ~65 MiB against ~58 MiB, at the same speed
/// (docs/performance.md). The services (`run`, `route`) keep mimalloc's
/// 1 s: librdkafka's fetch buffers, a few MiB each, were returned and
/// faulted in again at every fetch — over a million events from the
/// broker, 131–141k page faults against 30–41k, system time ~0.5 s
/// against ~0.2 s, user+sys 3.7 s against 3.35 (means of eight runs
/// each, alternated; the rates' medians 406k and 427k events/s, within
/// this machine's noise). An operator's `MIMALLOC_PURGE_DELAY` is left
/// to rule.
#[allow(unsafe_code)]
fn allocator_defaults(command: &driftline::cli::Command) {
    use driftline::cli::Command;
    let service = matches!(command, Command::Run { .. } | Command::Route { .. });
    if !service && std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an option mimalloc reads when it next purges; any
        // value is valid (-1 never, 0 at once, else milliseconds)
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    }
}

fn main() {
    let args = driftline::cli::Cli::parse();
    allocator_defaults(&args.command);
    match driftline::cli::run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // (a closed or full stderr loses the line, not the exit code)
            let _ = writeln!(std::io::stderr(), "driftline: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
