//! Helpers: a seeded stream generator, temp dirs, running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const T0: i64 = 1_767_225_600_000;

/// A fresh directory under the target dir, unique per test.
pub fn tempdir(name: &str) -> PathBuf {
    let d =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_driftline"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    // the environment of the person running the tests must not change results
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("DRIFTLINE__") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// xorshift64*: a small seeded generator, so streams are the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// What a generated stream looks like.
pub struct Stream {
    pub hours: f64,
    pub per_second: f64,
    /// From this hour on, `x` is shifted by +1.5 standard deviations.
    pub shift_at_hour: Option<f64>,
    pub seed: u64,
}

/// Writes predictions as JSON Lines: features x (normal), y (uniform), cat
/// (a/b/c), slices region (EU/US) and channel (web/app), a score.
pub fn write_stream(path: &Path, s: &Stream) -> usize {
    use std::io::Write;
    let mut rng = Rng::new(s.seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let n = (s.hours * 3600.0 * s.per_second) as usize;
    let step = 1000.0 / s.per_second;
    for i in 0..n {
        let t = T0 + (i as f64 * step) as i64;
        let hour = (t - T0) as f64 / 3_600_000.0;
        let mut x = rng.normal();
        if s.shift_at_hour.is_some_and(|h| hour >= h) {
            x += 1.5;
        }
        let y = rng.uniform() * 10.0;
        let cat = ["a", "b", "c"][(rng.next_u64() % 3) as usize];
        let region = if rng.uniform() < 0.6 { "EU" } else { "US" };
        let channel = if rng.uniform() < 0.5 { "web" } else { "app" };
        let score = 1.0 / (1.0 + (-(0.3 * y - 1.5)).exp());
        writeln!(
            out,
            r#"{{"trace_id":"t{i:08}","model_id":"m1","model_version":"v1","event_time":{t},"features":{{"x":{x:.6},"y":{y:.6},"cat":"{cat}"}},"slices":{{"region":"{region}","channel":"{channel}"}},"prediction":{},"score":{score:.6}}}"#,
            (score > 0.5) as u8
        )
        .unwrap();
    }
    n
}

pub fn alerts(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
