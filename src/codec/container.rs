//! Avro object container files, read block by block: the header (magic,
//! metadata with the writer schema and the codec, the sync marker), then
//! blocks of datums, each read (and inflated, for `deflate`) into a buffer
//! reused from block to block and decoded in place by [`DatumDecoder`].
//!
//! Why not a crate's reader: apache-avro's decodes each record through its
//! schema-aware serde reader (twice the time of [`DatumDecoder`]) and hands
//! out no block's raw bytes; serde_avro_fast's inflates each block through a
//! reader whose allocation cap is fixed at 512 MiB. Here every length read
//! from the file is checked against [`MAX_ALLOCATION_BYTES`] before anything
//! is allocated for it, and the format's rules are few: the spec's
//! "Object Container Files".

use std::io::Read;

use apache_avro::Schema;
use integer_encoding::VarIntReader;

use crate::codec::StreamKind;
use crate::codec::avro::{DatumDecoder, MAX_ALLOCATION_BYTES};
use crate::event::{BadEvent, BadReason, Event};

const MAGIC: &[u8; 4] = b"Obj\x01";

/// Metadata entries a header may hold (the spec's are two; writers add a few).
const MAX_METADATA_ENTRIES: i64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Null,
    Deflate,
}

/// A container file's records, in order.
pub struct Container<R> {
    input: R,
    writer: Schema,
    decoder: DatumDecoder,
    codec: Codec,
    sync: [u8; 16],
    /// The current block, as read (`null`) or inflated (`deflate`), up to
    /// `end` (past it: room an inflated block may take, kept zeroed once
    /// rather than at each block).
    block: Vec<u8>,
    end: usize,
    /// The compressed block (`deflate`).
    raw: Vec<u8>,
    inflate: libdeflater::Decompressor,
    /// Where the next datum starts in `block`.
    at: usize,
    /// Datums left in the current block.
    left: u64,
    /// A framing or decoding error ended the file.
    broken: bool,
}

/// Why a container cannot be opened (the file is not one of ours).
pub type OpenError = String;

impl<R: Read> Container<R> {
    /// Reads the header; the writer schema must be a record (the event
    /// kind's fields are checked by the caller).
    pub fn open(mut input: R, kind: StreamKind) -> Result<Self, OpenError> {
        let mut magic = [0u8; 4];
        input
            .read_exact(&mut magic)
            .map_err(|e| format!("cannot read the container's magic: {e}"))?;
        if &magic != MAGIC {
            return Err("not an Avro object container file (no `Obj\\x01` magic)".into());
        }
        let (mut schema, mut codec) = (None, Codec::Null);
        let mut entries = 0i64;
        loop {
            let mut n = long(&mut input).map_err(|e| format!("header: {e}"))?;
            if n == 0 {
                break;
            }
            if n < 0 {
                // a negative count is followed by the block's size in bytes
                n = n
                    .checked_neg()
                    .ok_or("header: a metadata count out of range")?;
                long(&mut input).map_err(|e| format!("header: {e}"))?;
            }
            entries += n;
            if entries > MAX_METADATA_ENTRIES {
                return Err(format!(
                    "header: more than {MAX_METADATA_ENTRIES} metadata entries"
                ));
            }
            for _ in 0..n {
                let key = bytes(&mut input).map_err(|e| format!("header: {e}"))?;
                let value = bytes(&mut input).map_err(|e| format!("header: {e}"))?;
                match key.as_slice() {
                    b"avro.schema" => schema = Some(value),
                    b"avro.codec" => {
                        codec = match value.as_slice() {
                            b"null" | b"" => Codec::Null,
                            b"deflate" => Codec::Deflate,
                            other => {
                                return Err(format!(
                                    "codec `{}` is not supported (null and deflate are)",
                                    String::from_utf8_lossy(other)
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut sync = [0u8; 16];
        input
            .read_exact(&mut sync)
            .map_err(|e| format!("header: the sync marker: {e}"))?;
        let schema = schema.ok_or("header: no `avro.schema`")?;
        let text = std::str::from_utf8(&schema).map_err(|e| format!("header: the schema: {e}"))?;
        let writer = Schema::parse_str(text).map_err(|e| format!("its writer schema: {e}"))?;
        let decoder = DatumDecoder::new(kind, &writer)?;
        Ok(Container {
            input,
            writer,
            decoder,
            codec,
            sync,
            block: Vec::new(),
            end: 0,
            raw: Vec::new(),
            inflate: libdeflater::Decompressor::new(),
            at: 0,
            left: 0,
            broken: false,
        })
    }

    pub fn writer_schema(&self) -> &Schema {
        &self.writer
    }

    /// The next record: an event (validated), a bad record, or `None` at
    /// the end of the file. A datum that cannot be decoded skips the rest
    /// of its block (where the next record starts is lost; the next block
    /// says where it starts). A block that cannot be read ends the file with
    /// one bad record: past it no block's start can be trusted.
    pub fn next_record(&mut self) -> Option<Result<Event, BadEvent>> {
        self.next_record_reusing(None)
    }

    /// [`Container::next_record`], decoded into `spare` (an event already
    /// applied) when it can.
    pub fn next_record_reusing(&mut self, spare: Option<Event>) -> Option<Result<Event, BadEvent>> {
        if self.broken {
            return None;
        }
        while self.left == 0 {
            match self.next_block() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(message) => return Some(Err(self.fail(BadReason::MalformedAvro, message))),
            }
        }
        self.left -= 1;
        match self
            .decoder
            .read_reusing(&self.block[self.at..self.end], spare)
        {
            Ok((ev, used, valid)) => {
                self.at += used;
                Some(if valid {
                    Ok(ev)
                } else {
                    ev.validate().map(|_| ev)
                })
            }
            // where the next record starts is lost, the next block's is not
            Err(bad) => {
                let skipped = std::mem::take(&mut self.left);
                self.at = self.end;
                Some(Err(BadEvent::new(
                    bad.reason,
                    format!(
                        "{}; the {skipped} records after it in its block skipped",
                        bad.message
                    ),
                )))
            }
        }
    }

    fn fail(&mut self, reason: BadReason, message: String) -> BadEvent {
        self.broken = true;
        BadEvent::new(reason, format!("{message}; rest of file skipped"))
    }

    /// Ends the current block (its bytes all used, its sync marker) and
    /// reads the next. False at the end of the file, between blocks.
    fn next_block(&mut self) -> Result<bool, String> {
        if self.at < self.end {
            return Err(format!(
                "{} bytes in a block after its records",
                self.end - self.at
            ));
        }
        let count = match long_or_end(&mut self.input)? {
            None => return Ok(false),
            Some(n) => n,
        };
        if count < 0 {
            return Err(format!("a block's record count is negative ({count})"));
        }
        let size = long(&mut self.input)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_ALLOCATION_BYTES)
            .ok_or_else(|| {
                format!("a block of {size} bytes (the cap is {MAX_ALLOCATION_BYTES})")
            })?;
        let target = match self.codec {
            Codec::Null => &mut self.block,
            Codec::Deflate => &mut self.raw,
        };
        target.clear();
        (&mut self.input)
            .take(size as u64)
            .read_to_end(target)
            .map_err(|e| format!("a block: {e}"))?;
        if target.len() < size {
            return Err("the file ends inside a block".into());
        }
        self.end = match self.codec {
            Codec::Null => self.block.len(),
            Codec::Deflate => inflate(&mut self.inflate, &self.raw, &mut self.block)?,
        };
        let mut sync = [0u8; 16];
        self.input
            .read_exact(&mut sync)
            .map_err(|_| "the file ends before a block's sync marker".to_string())?;
        if sync != self.sync {
            return Err("a block's sync marker is not the header's (a corrupt block)".into());
        }
        // each record takes at least one byte (the spec allows empty ones
        // only for empty schemas, which are not events)
        if count as u64 > self.end as u64 {
            return Err(format!(
                "a block claims {count} records in {} bytes",
                self.end
            ));
        }
        self.at = 0;
        self.left = count as u64;
        Ok(true)
    }
}

/// Inflates raw deflate `from` into `to`, up to the allocation cap, and
/// says how many bytes it took. libdeflate inflates a whole buffer at once
/// (~20 % faster than zlib-rs streaming it, over the peers stream's 256 KiB
/// blocks): into room as large as the largest block so far (`to`, never
/// shortened: zeroed only as it grows) or four times the compressed size,
/// doubled while it is short.
fn inflate(
    d: &mut libdeflater::Decompressor,
    from: &[u8],
    to: &mut Vec<u8>,
) -> Result<usize, String> {
    use libdeflater::DecompressionError;
    let past_cap =
        || format!("a deflate block inflates past {MAX_ALLOCATION_BYTES} bytes (the cap)");
    let mut room = to
        .len()
        .max(from.len().saturating_mul(4))
        .clamp(4096, MAX_ALLOCATION_BYTES + 1);
    loop {
        if to.len() < room {
            to.resize(room, 0);
        }
        match d.deflate_decompress(from, to) {
            Ok(n) if n > MAX_ALLOCATION_BYTES => return Err(past_cap()),
            Ok(n) => return Ok(n),
            Err(DecompressionError::InsufficientSpace) if to.len() > MAX_ALLOCATION_BYTES => {
                return Err(past_cap());
            }
            Err(DecompressionError::InsufficientSpace) => {
                room = to.len().saturating_mul(2).min(MAX_ALLOCATION_BYTES + 1);
            }
            Err(DecompressionError::BadData) => {
                return Err("a deflate block: corrupt or truncated deflate data".into());
            }
        }
    }
}

/// A zig-zag varint long.
fn long<R: Read>(r: &mut R) -> Result<i64, String> {
    r.read_varint::<i64>()
        .map_err(|e| format!("a length or count: {e}"))
}

/// A long, or `None` at the end of the input (before its first byte).
fn long_or_end<R: Read>(r: &mut R) -> Result<Option<i64>, String> {
    let mut first = [0u8; 1];
    loop {
        match r.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("a block header: {e}")),
        }
    }
    let mut chained = (&first[..]).chain(r);
    long(&mut chained).map(Some)
}

/// Avro `bytes` or `string`: a length, then that many bytes (capped).
fn bytes<R: Read>(r: &mut R) -> Result<Vec<u8>, String> {
    let n = long(r)?;
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_ALLOCATION_BYTES)
        .ok_or_else(|| format!("a length of {n} (the cap is {MAX_ALLOCATION_BYTES})"))?;
    let mut v = Vec::with_capacity(n);
    r.take(n as u64)
        .read_to_end(&mut v)
        .map_err(|e| e.to_string())?;
    if v.len() < n {
        return Err("the file ends inside the header".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::avro::schemas;
    use crate::event::{Prediction, Value};

    fn prediction(i: i64) -> Prediction {
        Prediction {
            trace_id: format!("t{i}"),
            model_id: "m".into(),
            model_version: (i % 2 == 0).then(|| "v7".into()),
            event_time: 1_767_225_600_000 + i * 1000,
            features: vec![
                ("amount".into(), Value::Number(i as f64 * 1.5)),
                ("device".into(), Value::Text("ios".into())),
                ("vip".into(), Value::Null),
            ],
            slices: vec![("region".into(), "EU".into())],
            prediction: crate::event::Scalar::Number(0.5),
            score: Some(0.25),
            shadow: false,
            prepared: Default::default(),
        }
    }

    /// A container file of `n` predictions in blocks of about `block` bytes.
    fn file(n: i64, codec: apache_avro::Codec, block: usize) -> Vec<u8> {
        let s = &schemas().unwrap().prediction;
        let mut w = apache_avro::Writer::builder()
            .schema(s)
            .writer(Vec::new())
            .codec(codec)
            .block_size(block)
            .build()
            .unwrap();
        for i in 0..n {
            w.append_ser(prediction(i)).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Event, BadEvent>> {
        let mut c = Container::open(bytes, StreamKind::Predictions).unwrap();
        std::iter::from_fn(|| c.next_record()).collect()
    }

    /// Where the header ends, and its sync marker (the file ends with it too).
    fn header_end(file: &[u8]) -> (usize, Vec<u8>) {
        let sync = file[file.len() - 16..].to_vec();
        let end = file.windows(16).position(|w| w == sync.as_slice()).unwrap() + 16;
        (end, sync)
    }

    fn deflate() -> apache_avro::Codec {
        apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
    }

    #[test]
    fn reads_what_apache_avro_writes_in_both_codecs_and_many_blocks() {
        for codec in [apache_avro::Codec::Null, deflate()] {
            for block in [64, 100_000] {
                let got = read_all(&file(300, codec, block));
                assert_eq!(got.len(), 300, "{codec:?} {block}");
                for (i, r) in got.into_iter().enumerate() {
                    match r {
                        Ok(Event::Prediction(p)) => {
                            assert_eq!(p.trace_id, prediction(i as i64).trace_id);
                            let mut want = prediction(i as i64).features;
                            let mut got = p.features.clone();
                            // apache-avro writes the map from a hash map
                            want.sort_by(|a, b| a.0.cmp(&b.0));
                            got.sort_by(|a, b| a.0.cmp(&b.0));
                            assert_eq!(got, want);
                            assert_eq!(p.model_version, prediction(i as i64).model_version);
                        }
                        other => panic!("record {i}: {:?}", other.err()),
                    }
                }
            }
        }
    }

    #[test]
    fn every_cut_short_file_ends_with_one_bad_record_or_opens_with_an_error() {
        for codec in [apache_avro::Codec::Null, deflate()] {
            let whole = file(40, codec, 200);
            for cut in 0..whole.len() {
                let Ok(mut c) = Container::open(&whole[..cut], StreamKind::Predictions) else {
                    continue;
                };
                let got: Vec<_> = std::iter::from_fn(|| c.next_record()).collect();
                let bad: Vec<_> = got.iter().filter_map(|r| r.as_ref().err()).collect();
                // a cut at a block's end is a shorter, whole file
                assert!(bad.len() <= 1, "cut at {cut}: {bad:?}");
                if let Some(b) = bad.first() {
                    assert!(b.message.ends_with("rest of file skipped"), "{}", b.message);
                    assert!(got.last().unwrap().is_err(), "the bad record is the last");
                } else {
                    assert!(got.len() < 40 || cut == whole.len());
                }
            }
        }
    }

    #[test]
    fn a_record_that_cannot_be_decoded_skips_the_rest_of_its_block_only() {
        let whole = file(40, apache_avro::Codec::Null, 200);
        let blocks = read_all(&whole);
        assert_eq!(blocks.len(), 40);
        // the first record's trace id length, just after the first block's
        // record count and byte size: now -64
        let (end, _) = header_end(&whole);
        let mut bytes = whole.clone();
        let mut at = end;
        for _ in 0..2 {
            while bytes[at] & 0x80 != 0 {
                at += 1;
            }
            at += 1;
        }
        let count = (whole[end] >> 1) as usize;
        assert!(
            count > 1 && count < 40,
            "{count} records in the first block"
        );
        bytes[at] = 0x7F;
        let got = read_all(&bytes);
        let err = got[0].as_ref().unwrap_err();
        assert!(
            err.message.contains(&format!(
                "the {} records after it in its block skipped",
                count - 1
            )),
            "{}",
            err.message
        );
        assert_eq!(got.len(), 1 + 40 - count, "the later blocks are read");
        assert!(got[1..].iter().all(Result::is_ok));
    }

    #[test]
    fn a_codec_it_cannot_read_is_named_when_the_file_opens() {
        let mut bytes = file(3, deflate(), 100_000);
        let at = bytes
            .windows(8)
            .position(|w| w == b"\x0edeflate")
            .expect("the codec's metadata entry");
        // a codec of the same length the reader does not know
        bytes[at + 1..at + 8].copy_from_slice(b"snappy2");
        let err = Container::open(bytes.as_slice(), StreamKind::Predictions)
            .err()
            .expect("refused");
        assert!(err.contains("codec `snappy2` is not supported"), "{err}");
    }

    #[test]
    fn a_corrupt_sync_marker_ends_the_file_with_a_reason() {
        let mut bytes = file(10, apache_avro::Codec::Null, 100_000);
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        let got = read_all(&bytes);
        let err = got.last().unwrap().as_ref().unwrap_err();
        assert_eq!(err.reason, BadReason::MalformedAvro);
        assert!(err.message.contains("sync marker"), "{}", err.message);
        assert_eq!(
            got.len(),
            1,
            "the block is not used: its end cannot be trusted"
        );
    }

    #[test]
    fn lengths_past_the_cap_are_refused_before_anything_is_allocated() {
        let good = file(1, apache_avro::Codec::Null, 100_000);
        // the header ends with the sync marker the file also ends with
        let (end, _) = header_end(&good);
        let mut huge = good[..end].to_vec();
        huge.extend_from_slice(&[2]); // one record
        huge.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]); // 2^62 bytes
        let got = read_all(&huge);
        let err = got[0].as_ref().unwrap_err();
        assert!(err.message.contains("the cap is"), "{}", err.message);
        // a deflate block inflating past the cap
        let good = file(1, deflate(), 100_000);
        let (end, sync) = header_end(&good);
        let mut bomb = good[..end].to_vec();
        let zeros = vec![0u8; MAX_ALLOCATION_BYTES + 1];
        let mut z = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut raw = vec![0; z.deflate_compress_bound(zeros.len())];
        let n = z.deflate_compress(&zeros, &mut raw).unwrap();
        raw.truncate(n);
        push_block(&mut bomb, 1, &raw, &sync);
        let got = read_all(&bomb);
        let err = got[0].as_ref().unwrap_err();
        assert!(err.message.contains("inflates past"), "{}", err.message);
    }

    /// A block: its record count, its size, its bytes and the sync marker.
    fn push_block(file: &mut Vec<u8>, count: u64, raw: &[u8], sync: &[u8]) {
        for v in [count, raw.len() as u64] {
            let mut v = v << 1;
            while v >= 0x80 {
                file.push((v as u8) | 0x80);
                v >>= 7;
            }
            file.push(v as u8);
        }
        file.extend_from_slice(raw);
        file.extend_from_slice(sync);
    }

    /// Blocks that inflate to many times their size (past the first room
    /// given, four times it) read as the same records uncompressed do,
    /// after smaller ones and before them; a block that is not deflate
    /// data ends the file with a reason, the records before it kept.
    #[test]
    fn blocks_of_any_ratio_inflate_and_a_corrupt_one_is_named() {
        let plain = read_all(&file(3_000, apache_avro::Codec::Null, 1 << 24));
        assert!(plain.iter().all(Result::is_ok));
        for block in [100_000, 1 << 24, 2_000] {
            let bytes = file(3_000, deflate(), block);
            let got = read_all(&bytes);
            assert_eq!(got.len(), plain.len());
            for (a, b) in got.iter().zip(&plain) {
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
            }
        }
        let squeezed = file(3_000, deflate(), 1 << 24);
        let (end, _) = header_end(&squeezed);
        assert!(
            (squeezed.len() - end) * 4 < file(3_000, apache_avro::Codec::Null, 1 << 24).len() - end,
            "the test's one block inflates past four times its size"
        );
        let mut bytes = file(5, deflate(), 100_000);
        let (_, sync) = header_end(&bytes);
        push_block(&mut bytes, 1, &[0xFF; 64], &sync);
        let got = read_all(&bytes);
        assert_eq!(got.len(), 6);
        assert!(got[..5].iter().all(Result::is_ok));
        let err = got[5].as_ref().unwrap_err();
        assert_eq!(err.reason, BadReason::MalformedAvro);
        assert!(
            err.message.contains("corrupt or truncated deflate"),
            "{}",
            err.message
        );
    }
}
