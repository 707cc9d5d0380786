//! Where alerts go: JSON Lines (a file or stdout).

use std::io::Write;

use crate::alert::Alert;
use crate::error::{Error, Result};

/// Writes one alert event per line.
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }

    pub fn write(&mut self, a: &Alert) -> Result<()> {
        serde_json::to_writer(&mut self.out, a).map_err(|e| Error::Output(e.into()))?;
        self.out.write_all(b"\n").map_err(Error::Output)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(Error::Output)
    }
}
