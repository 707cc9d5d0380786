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
    // a new commit moves HEAD or the branch it points to
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(r) = head.strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{}", r.trim());
    }
    println!("cargo:rerun-if-changed=.git/packed-refs");
    println!("cargo:rerun-if-changed=src/build.rs");
}
