//! `driftline convert`: events to an Avro object container file of `schemas/*.avsc`.

use std::path::PathBuf;

use crate::codec::avro;
use crate::error::{Error, Result};
use crate::event::{BadEvent, BadReason, Event};
use crate::source::file::{MAX_LINE_BYTES, check_output, open_merged};

use super::BAD_EVENTS_PRINTED;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AvroCodec {
    Null,
    Deflate,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Predictions,
    Outcomes,
}

/// Largest datum written: half the decoder's allocation cap
/// (`codec::avro::MAX_ALLOCATION_BYTES`), so that a block — this datum and
/// the [`BLOCK_BYTES`] of others before it — is always one `replay` reads
/// back.
const MAX_DATUM_BYTES: usize = avro::MAX_ALLOCATION_BYTES / 2;

/// Bytes of datums a block holds before it is written (compressed) and
/// the next begins: 256 KiB, ~1,100 predictions of the peers stream.
/// apache-avro's default, 16,000 bytes (~69 of them), had the reader
/// build inflate's tables again every 69 events, 657 instructions an
/// event (`inflate_table`, callgrind); Java's writer defaults to 64,000.
const BLOCK_BYTES: usize = 256 * 1024;

const _: () = assert!(BLOCK_BYTES + MAX_DATUM_BYTES <= avro::MAX_ALLOCATION_BYTES);

/// Writes good events of `input` to an Avro container file; bad ones are reported and skipped.
pub fn convert(kind: Kind, input: &[PathBuf], output: &PathBuf, codec: AvroCodec) -> Result<i32> {
    let schemas = avro::schemas()?;
    let (schema, merged) = match kind {
        Kind::Predictions => (
            &schemas.prediction,
            open_merged(input, &[], MAX_LINE_BYTES, i64::MAX)?,
        ),
        Kind::Outcomes => (
            &schemas.outcome,
            open_merged(&[], input, MAX_LINE_BYTES, i64::MAX)?,
        ),
    };
    check_output(output, &input.iter().collect::<Vec<_>>())?;
    let file = std::fs::File::create(output).map_err(|e| Error::write(output, e))?;
    let mut w = apache_avro::Writer::builder()
        .schema(schema)
        .block_size(BLOCK_BYTES)
        .writer(std::io::BufWriter::new(file))
        .codec(match codec {
            AvroCodec::Null => apache_avro::Codec::Null,
            AvroCodec::Deflate => {
                apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
            }
        })
        .build()
        .map_err(|e| Error::AvroFile {
            path: output.clone(),
            message: e.to_string(),
        })?;
    let write_err = |message: String| Error::AvroFile {
        path: output.clone(),
        message,
    };
    let sizer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .map_err(|e| write_err(e.to_string()))?;
    let (mut good, mut bad) = (0u64, 0u64);
    for rec in merged {
        // written by serde straight into the schema (apache-avro's
        // schema-aware serializer), so a map's entries keep the event's
        // order and two conversions of one file are the same bytes (through
        // its `Value`, a `HashMap`, each record's features came out in an
        // order of their own)
        let datum = match &rec.event {
            Ok(Event::Prediction(p)) => sizer.write_ser_to_vec(p),
            Ok(Event::Outcome(o)) => sizer.write_ser_to_vec(o),
            Err(_) => Ok(Vec::new()),
        }
        .map_err(|e| write_err(e.to_string()))?;
        // a datum over half the reader's allocation cap would make a block
        // replay cannot read back: refused here, as a bad event
        let event = match rec.event {
            Ok(_) if datum.len() > MAX_DATUM_BYTES => Err(BadEvent::new(
                BadReason::LineTooLong,
                format!(
                    "encodes to {} bytes, over the {MAX_DATUM_BYTES} an Avro block may carry here",
                    datum.len()
                ),
            )),
            other => other,
        };
        match event {
            Ok(ev) => {
                match &ev {
                    Event::Prediction(p) => w.append_ser(p),
                    Event::Outcome(o) => w.append_ser(o),
                }
                .map_err(|e| write_err(e.to_string()))?;
                good += 1;
            }
            Err(e) => {
                bad += 1;
                if bad <= BAD_EVENTS_PRINTED {
                    crate::cli::note!("{}: bad event ({}): {}", rec.location, e.reason, e.message);
                }
            }
        }
    }
    w.flush().map_err(|e| write_err(e.to_string()))?;
    crate::cli::note!(
        "converted {good} events ({bad} bad, skipped) to {}",
        output.display()
    );
    Ok(0)
}
