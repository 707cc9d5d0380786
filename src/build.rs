//! Build script: `DRIFTLINE_VERSION`, the crate version and (built from a
//! git checkout) its revision, for the `engine_version` of alerts and
//! incidents.

use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|r| !r.is_empty());
    let full = match rev {
        Some(r) => format!("{version} ({r})"),
        None => version,
    };
    println!("cargo:rustc-env=DRIFTLINE_VERSION={full}");
    // a new commit moves HEAD or the branch it points to (a loose ref, or
    // one of the packed refs). Only files that exist are named: cargo
    // takes a missing one as changed, and rebuilt the crate on every build
    // of a checkout without packed refs (a minute each here)
    let mut watched = vec![".git/HEAD".to_string(), ".git/packed-refs".to_string()];
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(r) = head.strip_prefix("ref: ")
    {
        watched.push(format!(".git/{}", r.trim()));
    }
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=src/build.rs");
}
