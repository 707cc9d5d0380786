//! The house rules of the source tree, checked: every module imports only
//! modules listed below it in `docs/architecture.md`'s module table (so the
//! table is the truth about the layout), and no source file grows past 900
//! lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`engine` for
/// `src/engine/ingest.rs`, `stats` for `src/stats.rs`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::<module>` paths in code (comments and unit-test modules aside).
fn imports(text: &str) -> Vec<String> {
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let name: String = rest[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            out.push(name);
            rest = &rest[i + 7..];
        }
    }
    out
}

/// The modules of the architecture table, top (users) to bottom.
fn table_order() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find("| module | what it holds |")
        .expect("module table");
    doc[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cell = l.split('|').nth(1).unwrap().trim();
            let name = cell.split('`').nth(1).unwrap();
            name.trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect()
}

#[test]
fn modules_import_only_what_lies_below_them() {
    let order = table_order();
    assert!(order.len() > 20, "{order:?}");
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uphill = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let m = module_of(rel);
        // (build.rs is the build script, not a module of the crate)
        if m == "lib" || m == "fuzzing" || m == "build" {
            continue;
        }
        let Some(&mine) = rank.get(m.as_str()) else {
            panic!(
                "{} belongs to `{m}`, which the module table does not list",
                rel.display()
            );
        };
        for d in imports(&std::fs::read_to_string(f).unwrap()) {
            // (`crate::blocking` is lib.rs's one helper, below everything)
            if d == m || d == "blocking" {
                continue;
            }
            match rank.get(d.as_str()) {
                Some(&theirs) if theirs > mine => {}
                _ => uphill.push(format!("{} imports crate::{d}", rel.display())),
            }
        }
    }
    assert!(uphill.is_empty(), "imports up the table: {uphill:#?}");
}

#[test]
fn no_source_file_is_over_900_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 900).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}
