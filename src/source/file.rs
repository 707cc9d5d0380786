//! Files for `replay` and `baseline`: JSON Lines (one event per line) and
//! Avro object container files, merged by event time.
//!
//! Each file is read in order; the merge takes, at every step, the pending
//! event with the smallest event time (ties: the file given first), so
//! several files replay as one stream. Bad records are reported where they
//! are met, with file and line (or record number).
//!
//! A file is opened once and read as a stream (`-` is standard input; a pipe
//! or FIFO works like a file): its first bytes tell Avro (the container's
//! magic) from JSON Lines. A JSON line ends at `\n`, `\r\n` or a lone `\r`;
//! a UTF-8 byte-order mark before the first line is skipped; a line longer
//! than `input.max_line_bytes` is one bad event (`line_too_long`) and the
//! reader goes on with the next line without holding it in memory. The same
//! file given twice is refused (it would count every event twice).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::codec::{StreamKind, avro, json};
use crate::error::{Error, Result};
use crate::event::{BadEvent, BadReason, Event};

/// One record read from a file: an event or the reason it is bad, with where it was.
pub struct Record {
    pub location: Location,
    pub event: std::result::Result<Event, BadEvent>,
}

/// File and line (JSON Lines) or record number (Avro), 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Interned (kept once per process): a record's location is made on the
    /// reader's thread and dropped on the engine's; an `Arc`'s count,
    /// raised on one core and lowered on the other every event, moved its
    /// cache line between them each time.
    pub path: &'static Path,
    pub line: u64,
    pub avro: bool,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.avro {
            write!(f, "{}: record {}", self.path.display(), self.line)
        } else {
            write!(f, "{}:{}", self.path.display(), self.line)
        }
    }
}

/// A file (or standard input) read once, as a stream.
type Input = BufReader<Box<dyn Read + Send>>;

enum Reader {
    Jsonl {
        r: Input,
        buf: Vec<u8>,
        max_line: usize,
        /// The shapes of the file's prediction lines (`json::Shapes`).
        shapes: Box<json::Shapes>,
    },
    Avro(Box<crate::codec::container::Container<Input>>),
}

pub use crate::config::MAX_LINE_BYTES;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// `path`, kept for the process's life: each path a process opens is
/// kept once (a run opens a few files; a test process, a few hundred).
fn interned(path: &Path) -> &'static Path {
    static PATHS: std::sync::Mutex<Vec<&'static Path>> = std::sync::Mutex::new(Vec::new());
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = paths.iter().find(|p| **p == path) {
        return p;
    }
    let p: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
    paths.push(p);
    p
}

/// A file of one stream kind, read record by record.
pub struct FileSource {
    kind: StreamKind,
    path: &'static Path,
    reader: Reader,
    line: u64,
    done: bool,
}

const AVRO_MAGIC: &[u8; 4] = b"Obj\x01";

impl FileSource {
    /// Opens a file (`-`: standard input) and reads it once; Avro container
    /// files are recognised by their magic bytes, read from the same stream.
    pub fn open(path: &Path, kind: StreamKind, max_line: usize) -> Result<FileSource> {
        let mut raw: Box<dyn Read + Send> = if path.as_os_str() == STDIN {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| Error::io(path, e))?)
        };
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut raw, &mut magic).map_err(|e| Error::io(path, e))?;
        // the sniffed bytes go back in front of the rest: nothing is read twice
        let stream: Box<dyn Read + Send> = Box::new(Cursor::new(magic[..n].to_vec()).chain(raw));
        let input = BufReader::with_capacity(1 << 16, stream);
        let reader = if n == 4 && &magic == AVRO_MAGIC {
            avro::schemas()?;
            let unreadable = |message| Error::AvroFile {
                path: path.to_path_buf(),
                message,
            };
            let r = crate::codec::container::Container::open(input, kind).map_err(unreadable)?;
            // a file of something else is an unreadable input, not one bad event
            check_writer_schema(r.writer_schema(), kind).map_err(unreadable)?;
            Reader::Avro(Box::new(r))
        } else {
            Reader::Jsonl {
                r: input,
                buf: Vec::with_capacity(1024),
                max_line,
                shapes: Box::default(),
            }
        };
        Ok(FileSource {
            kind,
            path: interned(path),
            reader,
            line: 0,
            done: false,
        })
    }

    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The next record, or `None` at the end of the file. An unreadable file
    /// part (an I/O error, a corrupt Avro block) ends the file with one bad record.
    pub fn next_record(&mut self) -> Option<Record> {
        self.next_record_reusing(None)
    }

    /// [`FileSource::next_record`], decoding into `spare` (an event already
    /// applied) when it can: a JSON line of the common shape, or an Avro
    /// datum of the shipped schema, takes no allocation then.
    pub fn next_record_reusing(&mut self, mut spare: Option<Event>) -> Option<Record> {
        loop {
            if self.done {
                return None;
            }
            self.line += 1;
            let location = Location {
                path: self.path,
                line: self.line,
                avro: !matches!(self.reader, Reader::Jsonl { .. }),
            };
            let event = match &mut self.reader {
                Reader::Jsonl {
                    r,
                    buf,
                    max_line,
                    shapes,
                } => {
                    // most lines are whole in the reader's buffer: read there,
                    // not copied out first
                    if self.line > 1
                        && let Ok(avail) = r.fill_buf()
                        && let Some(i) = memchr::memchr2(b'\n', b'\r', avail)
                        && avail[i] == b'\n'
                        && i <= *max_line
                    {
                        let line = trim(&avail[..i]);
                        let event = (!line.is_empty()).then(|| {
                            json::decode_shaped(self.kind, line, spare.take(), Some(shapes))
                        });
                        r.consume(i + 1);
                        match event {
                            Some(event) => event,
                            None => continue,
                        }
                    } else {
                        match read_line(r, buf, *max_line, self.line == 1) {
                            Ok(Line::Eof) => return None,
                            Ok(Line::Read) => {
                                let line = trim(buf);
                                if line.is_empty() {
                                    continue;
                                }
                                json::decode_shaped(self.kind, line, spare.take(), Some(shapes))
                            }
                            Ok(Line::TooLong(n)) => Err(BadEvent::new(
                                BadReason::LineTooLong,
                                format!(
                                    "line of {n} bytes is longer than input.max_line_bytes ({max_line}); skipped"
                                ),
                            )),
                            Err(e) => {
                                // stop this file: the rest cannot be trusted
                                self.done = true;
                                Err(BadEvent::new(
                                    BadReason::MalformedJson,
                                    format!("read error: {e}; rest of file skipped"),
                                ))
                            }
                        }
                    }
                }
                Reader::Avro(r) => match r.next_record_reusing(spare.take()) {
                    Some(ev) => ev,
                    None => {
                        self.done = true;
                        return None;
                    }
                },
            };
            return Some(Record { location, event });
        }
    }
}

/// The fields an event of `kind` cannot do without.
fn check_writer_schema(
    schema: &apache_avro::Schema,
    kind: StreamKind,
) -> std::result::Result<(), String> {
    let (what, required): (&str, &[&str]) = match kind {
        StreamKind::Predictions => (
            "prediction",
            &[
                "trace_id",
                "model_id",
                "event_time",
                "features",
                "prediction",
            ],
        ),
        StreamKind::Outcomes => ("outcome", &["trace_id", "model_id", "event_time", "label"]),
    };
    let apache_avro::Schema::Record(r) = schema else {
        return Err(format!(
            "its writer schema is not a record, so not a {what} event"
        ));
    };
    match required
        .iter()
        .find(|f| !r.fields.iter().any(|x| x.name == **f))
    {
        Some(f) => Err(format!(
            "its writer schema `{}` has no field `{f}`: not {what} events",
            r.name
        )),
        None => Ok(()),
    }
}

/// What one line read gave.
enum Line {
    Eof,
    /// A line is in the buffer (without its terminator).
    Read,
    /// A line of this many bytes, over the bound: skipped, not kept.
    TooLong(u64),
}

/// Reads one line ending at `\n`, `\r\n`, a lone `\r` or the end of the
/// input into `buf`, keeping at most `max` bytes of it (a longer line is
/// read through and reported, never held). `first`: skip a UTF-8 BOM.
fn read_line(r: &mut Input, buf: &mut Vec<u8>, max: usize, first: bool) -> std::io::Result<Line> {
    buf.clear();
    let (mut total, mut any) = (0u64, false);
    let mut bom = first;
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            break;
        }
        any = true;
        if bom {
            bom = false;
            if avail.starts_with(b"\xEF\xBB\xBF") {
                r.consume(3);
                continue;
            }
        }
        let chunk = avail;
        match memchr::memchr2(b'\n', b'\r', chunk) {
            Some(i) => {
                let cr = chunk[i] == b'\r';
                total += i as u64;
                if total as usize <= max {
                    buf.extend_from_slice(&chunk[..i]);
                }
                r.consume(i + 1);
                if cr {
                    // \r\n is one terminator
                    let next = r.fill_buf()?;
                    if next.first() == Some(&b'\n') {
                        r.consume(1);
                    }
                }
                return Ok(if total as usize > max {
                    Line::TooLong(total)
                } else {
                    Line::Read
                });
            }
            None => {
                let n = chunk.len();
                total += n as u64;
                if total as usize <= max {
                    buf.extend_from_slice(chunk);
                }
                r.consume(n);
            }
        }
    }
    Ok(match (any, total as usize > max) {
        (false, _) => Line::Eof,
        (true, true) => Line::TooLong(total),
        (true, false) => Line::Read,
    })
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn trim(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &b[..end]
}

/// Several files merged into one stream by event time.
pub struct Merge {
    sources: Vec<FileSource>,
    /// Pending good event per source.
    pending: Vec<Option<(Location, Event)>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// Bad records met while refilling, and events far ahead of their file
    /// (see [`Merge::with_jump`]), handed out before the next event.
    bad: std::collections::VecDeque<Record>,
    /// The event time each file's previous event had.
    prev: Vec<Option<i64>>,
    /// An event more than this ahead of its file's previous one is handed
    /// out at once, in file order, not merged by its time.
    jump_ms: i64,
}

impl Merge {
    pub fn new(sources: Vec<FileSource>) -> Merge {
        Merge::with_jump(sources, i64::MAX)
    }

    /// A merge in which an event more than `jump_ms` of event time ahead of
    /// its file's previous event is handed out at once rather than merged
    /// by its time: merged, one absurd timestamp (a year ahead) would hold
    /// its whole file back while the other files ran on, and every event
    /// after it would come late. Handed out, the engine judges it alone
    /// (`engine::clock`: refused, or the first of a real jump).
    pub fn with_jump(sources: Vec<FileSource>, jump_ms: i64) -> Merge {
        let n = sources.len();
        let mut m = Merge {
            sources,
            pending: (0..n).map(|_| None).collect(),
            heap: BinaryHeap::with_capacity(n),
            bad: Default::default(),
            prev: vec![None; n],
            jump_ms,
        };
        for i in 0..n {
            m.refill(i, None);
        }
        m
    }

    fn refill(&mut self, i: usize, mut spare: Option<Event>) {
        while let Some(rec) = self.sources[i].next_record_reusing(spare.take()) {
            match rec.event {
                Ok(ev) => {
                    let t = ev.event_time();
                    let ahead = self.prev[i].is_some_and(|p| t > p.saturating_add(self.jump_ms));
                    self.prev[i] = Some(t);
                    if ahead {
                        self.bad.push_back(Record {
                            location: rec.location,
                            event: Ok(ev),
                        });
                        continue;
                    }
                    self.heap.push(Reverse((t, i)));
                    self.pending[i] = Some((rec.location, ev));
                    return;
                }
                Err(_) => self.bad.push_back(rec),
            }
        }
    }
}

impl Merge {
    /// The next record, decoding the one after it from its file into
    /// `spare` (an event already applied) when it can.
    pub fn next_reusing(&mut self, spare: Option<Event>) -> Option<Record> {
        if let Some(b) = self.bad.pop_front() {
            return Some(b);
        }
        let Reverse((_, i)) = self.heap.pop()?;
        let (location, ev) = self.pending[i].take()?;
        self.refill(i, spare);
        Some(Record {
            location,
            event: Ok(ev),
        })
    }
}

impl Iterator for Merge {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.next_reusing(None)
    }
}

/// Opens prediction and outcome files as one merged stream. The same file
/// given twice (the same path, or two names of one file) is refused.
pub fn open_merged(
    predictions: &[PathBuf],
    outcomes: &[PathBuf],
    max_line: usize,
    jump_ms: i64,
) -> Result<Merge> {
    let mut seen: Vec<(FileId, &PathBuf)> = Vec::new();
    for p in predictions.iter().chain(outcomes) {
        if let Some(id) = file_id(p) {
            if let Some((_, first)) = seen.iter().find(|(i, _)| *i == id) {
                return Err(Error::Usage(format!(
                    "{} is given twice (as {} too): its events would count twice",
                    p.display(),
                    first.display()
                )));
            }
            seen.push((id, p));
        }
    }
    if predictions
        .iter()
        .chain(outcomes)
        .filter(|p| p.as_os_str() == STDIN)
        .count()
        > 1
    {
        return Err(Error::Usage("standard input (`-`) can be read once".into()));
    }
    let mut sources = Vec::new();
    for p in predictions {
        sources.push(FileSource::open(p, StreamKind::Predictions, max_line)?);
    }
    for p in outcomes {
        sources.push(FileSource::open(p, StreamKind::Outcomes, max_line)?);
    }
    Ok(Merge::with_jump(sources, jump_ms))
}

/// A file's identity (device and inode): two paths of one file have the same.
pub type FileId = (u64, u64);

/// The identity of an existing file (None: `-`, or no such file).
pub fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    if path.as_os_str() == STDIN {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses an output that is one of the inputs (checked before the output
/// is opened for writing, so a slip on the command line never truncates an input).
pub fn check_output(output: &Path, inputs: &[&PathBuf]) -> Result<()> {
    let Some(out) = file_id(output) else {
        return Ok(());
    };
    match inputs.iter().find(|p| file_id(p) == Some(out)) {
        Some(p) => Err(Error::Usage(format!(
            "output {} is the input {}: refusing to overwrite it",
            output.display(),
            p.display()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn pred(t: i64, id: &str) -> String {
        format!(
            r#"{{"trace_id":"{id}","model_id":"m","event_time":{t},"features":{{"x":1}},"prediction":0}}"#
        )
    }

    #[test]
    fn merges_by_event_time_and_reports_bad_lines_with_their_place() {
        let dir = std::env::temp_dir().join(format!("dl-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = write(
            &dir,
            "a.jsonl",
            &format!(
                "{}\n{}\n\n{{oops\n{}\n",
                pred(1, "a1"),
                pred(5, "a5"),
                pred(9, "a9")
            ),
        );
        let b = write(
            &dir,
            "b.jsonl",
            &format!("{}\n{}\n", pred(2, "b2"), pred(5, "b5")),
        );
        let o = write(
            &dir,
            "o.jsonl",
            r#"{"trace_id":"a1","model_id":"m","event_time":3,"label":1}"#,
        );
        let recs: Vec<Record> = open_merged(&[a, b], &[o], MAX_LINE_BYTES, i64::MAX)
            .unwrap()
            .collect();
        let mut order = Vec::new();
        let mut bad = Vec::new();
        for r in &recs {
            match &r.event {
                Ok(Event::Prediction(p)) => order.push(p.trace_id.clone()),
                Ok(Event::Outcome(o)) => order.push(format!("o:{}", o.trace_id)),
                Err(e) => bad.push((r.location.to_string(), e.reason)),
            }
        }
        assert_eq!(order, ["a1", "b2", "o:a1", "a5", "b5", "a9"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].0.ends_with("a.jsonl:4"), "{bad:?}");
        assert_eq!(bad[0].1, BadReason::MalformedJson);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Lines read in the reader's buffer or copied out of it (one across
    /// the buffer's end, a BOM, `\r\n`, blank and too-long lines), into
    /// spent events or fresh ones: each line is the event it is alone, at
    /// its own line number.
    #[test]
    fn every_line_reads_as_it_would_alone_wherever_it_lies() {
        let dir = std::env::temp_dir().join(format!("dl-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let max = 300;
        let mut lines = vec![format!("\u{feff}{}", pred(1, "bom"))];
        for i in 0..2_000 {
            lines.push(match i % 12 {
                3 => String::new(),
                4 => "   ".to_owned(),
                5 => format!("{}\r", pred(i, &format!("crlf{i}"))),
                6 => pred(i, &"x".repeat(max)),
                7 => "{oops".to_owned(),
                8 => format!(
                    r#"{{"trace_id":"w{i}","model_id":"m","model_version":"v2","event_time":{i},"features":{{"a":"b","c":null,"d":true}},"slices":{{"r":"eu"}},"prediction":"yes","score":0.25,"shadow":true}}"#
                ),
                // an escape: left by the one-pass reader to serde_json
                9 => pred(i, &format!("e\\u0041{i}")),
                _ => pred(i, &format!("t{i}")),
            });
        }
        let text = lines.join("\n");
        // a line runs across the reader's first 64 KiB
        assert!(text.len() > 1 << 17);
        let p = write(&dir, "p.jsonl", &text);
        let alone = |n: usize| {
            let line = lines[n].trim_start_matches('\u{feff}');
            let line = trim(line.as_bytes());
            if line.is_empty() {
                None
            } else if line.len() > max {
                Some(Err(BadReason::LineTooLong))
            } else {
                Some(json::decode(StreamKind::Predictions, line).map_err(|e| e.reason))
            }
        };
        for reuse in [false, true] {
            let mut src = FileSource::open(&p, StreamKind::Predictions, max).unwrap();
            let mut spare = None;
            let mut want = (0..lines.len()).filter_map(|n| alone(n).map(|ev| (n + 1, ev)));
            while let Some(r) = src.next_record_reusing(spare.take()) {
                let (line, ev) = want.next().expect("no more records than lines");
                assert_eq!(r.location.line, line as u64);
                let got = r.event.as_ref().map_err(|e| e.reason);
                assert_eq!(
                    format!("{got:?}"),
                    format!("{:?}", ev.as_ref()),
                    "line {line}"
                );
                if reuse {
                    spare = r.event.ok();
                }
            }
            assert!(want.next().is_none());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_file_is_one_clear_error() {
        let err = FileSource::open(
            Path::new("/nonexistent/p.jsonl"),
            StreamKind::Predictions,
            MAX_LINE_BYTES,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("/nonexistent/p.jsonl"));
        assert_eq!(err.exit_code(), 2);
    }
}
