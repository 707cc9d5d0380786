//! The driftwatch binary: parse arguments, run, report the error and exit code.

use clap::Parser;

fn main() {
    let args = driftwatch::cli::Cli::parse();
    match driftwatch::cli::run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("driftwatch: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
