//! JSON decoding of prediction and outcome events (one JSON object per line
//! in files, one per message on Kafka).

mod plain;

use plain::Shape;

use crate::codec::StreamKind;
use crate::event::{BadEvent, BadReason, Event, Outcome, Prediction};

/// Decodes and validates one JSON event.
pub fn decode(kind: StreamKind, bytes: &[u8]) -> Result<Event, BadEvent> {
    decode_reusing(kind, bytes, None)
}

/// [`decode`], reading a prediction of the common shape into `spare` (an
/// event handed back once applied): its trace id, features and slices keep
/// their buffers, and nothing is allocated.
pub fn decode_reusing(
    kind: StreamKind,
    bytes: &[u8],
    spare: Option<Event>,
) -> Result<Event, BadEvent> {
    decode_shaped(kind, bytes, spare, None)
}

/// [`decode_reusing`] for one stream of lines, whose shapes (the text
/// between a prediction's values) `shapes` holds: a line of a known shape
/// is read by comparing the text and reading only the values
/// (`plain::read_shaped`); a line of another is read whole, and its shape
/// learned if it was vouched for.
pub fn decode_shaped(
    kind: StreamKind,
    bytes: &[u8],
    spare: Option<Event>,
    shapes: Option<&mut Shapes>,
) -> Result<Event, BadEvent> {
    let ev = match kind {
        StreamKind::Predictions => {
            let mut p = match spare {
                Some(Event::Prediction(p)) => p,
                _ => Box::default(),
            };
            match simdutf8::basic::from_utf8(bytes) {
                Ok(text) => match read_prediction(text, &mut p, shapes) {
                    // checked as it was read: nothing left to validate
                    plain::Read::Valid => return Ok(Event::Prediction(p)),
                    plain::Read::Plain => Ok(p),
                    plain::Read::NotPlain => serde_json::from_str(text),
                },
                // its error names where the text is not UTF-8
                Err(_) => serde_json::from_slice(bytes),
            }
            .map(Event::Prediction)
        }
        StreamKind::Outcomes => read(bytes, plain::outcome).map(Event::Outcome),
    }
    .map_err(|e| classify(&e, bytes))?;
    ev.validate()?;
    Ok(ev)
}

/// The shapes of one stream's prediction lines (`plain::Shape`): a few,
/// for a file or a topic whose producers (models, services) write lines
/// of different shapes in turn — one shape would be learned anew at
/// nearly every line then.
#[derive(Default)]
pub struct Shapes {
    known: Vec<Shape>,
    /// The one the last line had (tried first).
    last: usize,
    /// The one learned over next, when all are taken (in turn).
    next: usize,
    /// Shapes learned so far.
    learned: u64,
}

/// Shapes a stream keeps.
const SHAPES: usize = 4;

impl Shapes {
    /// Reads `text` with the shape it has, if known; else whole, and its
    /// shape learned if it was vouched for.
    #[inline]
    fn read(&mut self, text: &str, p: &mut Prediction) -> plain::Read {
        let n = self.known.len();
        for k in 0..n {
            let i = (self.last + k) % n;
            if let Some(read) = plain::read_shaped(text, p, &self.known[i]) {
                self.last = i;
                return read;
            }
        }
        let read = plain::read_prediction(text, p);
        if read == plain::Read::Valid {
            let i = if n < SHAPES {
                self.known.push(Shape::default());
                n
            } else {
                self.next = (self.next + 1) % SHAPES;
                self.next
            };
            self.known[i].learn(text);
            self.learned += 1;
            self.last = i;
        }
        read
    }
}

/// A prediction line, read with `shapes` if given.
#[inline]
fn read_prediction(text: &str, p: &mut Prediction, shapes: Option<&mut Shapes>) -> plain::Read {
    match shapes {
        Some(shapes) => shapes.read(text, p),
        None => plain::read_prediction(text, p),
    }
}

/// Valid UTF-8 is checked once for the whole line (word at a time), not
/// string by string; a line that is not is read as bytes, so that its
/// error names where. Valid text of the common shape is read by `plain`;
/// the rest by serde_json.
fn read<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    plain: impl FnOnce(&'a str) -> Option<T>,
) -> serde_json::Result<T> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => match plain(text) {
            Some(x) => Ok(x),
            None => serde_json::from_str(text),
        },
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Whether the one-pass reader and serde_json agree on `bytes`: either the
/// former leaves it, or both read it to the same event, bit for bit — and
/// a prediction it calls valid as read passes [`Prediction::validate`]
/// (the fuzz target `json` holds this on every input it makes).
///
/// [`Prediction::validate`]: crate::event::Prediction::validate
pub fn readers_agree(kind: StreamKind, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return true;
    };
    let same = |ours: &dyn std::fmt::Debug, theirs: &dyn std::fmt::Debug| {
        format!("{ours:?}") == format!("{theirs:?}")
    };
    match kind {
        StreamKind::Predictions => {
            let mut p = crate::event::Prediction::default();
            match plain::read_prediction(text, &mut p) {
                plain::Read::NotPlain => true,
                read => {
                    serde_json::from_str::<crate::event::Prediction>(text)
                        .is_ok_and(|q| same(&p, &q))
                        // one it vouches for passes every check
                        && (read == plain::Read::Plain || p.validate().is_ok())
                }
            }
        }
        StreamKind::Outcomes => plain::outcome(text)
            .is_none_or(|o| serde_json::from_str::<Outcome>(text).is_ok_and(|q| same(&o, &q))),
    }
}

fn classify(e: &serde_json::Error, bytes: &[u8]) -> BadEvent {
    use serde_json::error::Category;
    let msg = e.to_string();
    let reason = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            // JSON has no NaN or Infinity; writers that emit them (Python's
            // json.dumps does) deserve the clearer reason.
            // (a number too large for a double, 1e400, is not finite either)
            if contains_non_finite_token(bytes) || msg.starts_with("number out of range") {
                BadReason::NonFinite
            } else {
                BadReason::MalformedJson
            }
        }
        Category::Data => {
            if msg.starts_with("missing field") {
                BadReason::MissingField
            } else if msg.contains("before the epoch") {
                BadReason::TimeOutOfRange
            } else {
                BadReason::WrongType
            }
        }
    };
    BadEvent::new(reason, msg)
}

fn contains_non_finite_token(bytes: &[u8]) -> bool {
    let s = String::from_utf8_lossy(bytes);
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|t| matches!(t, "NaN" | "Infinity" | "-Infinity" | "inf" | "-inf" | "nan"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Scalar, Value};

    const GOOD: &str = r#"{"trace_id":"t1","model_id":"m","model_version":"v7","event_time":1767225600000,"features":{"amount":12.5,"device":"ios","vip":true,"tenure_days":null},"slices":{"region":"EU"},"prediction":1,"score":0.73}"#;

    /// Producers of different shapes in turn: each shape is learned once
    /// and its lines read with it, to what they read to alone; a bad line
    /// among them is refused as ever; a fifth shape takes a place in turn.
    #[test]
    fn shapes_in_turn_are_each_learned_once() {
        let other = |i: usize| {
            format!(
                r#"{{"trace_id":"t{i}","model_id":"m{i}","event_time":1767225600000,"features":{{"f{i}":{i}.5,"g":"x"}},"prediction":0}}"#
            )
        };
        let mut shapes = Shapes::default();
        let mut spare = None;
        for round in 0..5 {
            for line in [GOOD.to_owned(), other(1), other(2)] {
                let alone = decode(StreamKind::Predictions, line.as_bytes()).unwrap();
                let ev = decode_shaped(
                    StreamKind::Predictions,
                    line.as_bytes(),
                    spare.take(),
                    Some(&mut shapes),
                )
                .unwrap();
                assert_eq!(format!("{ev:?}"), format!("{alone:?}"), "round {round}");
                spare = Some(ev);
            }
            let bad = GOOD.replace("\"score\":0.73", "\"score\":7.3");
            let err = decode_shaped(
                StreamKind::Predictions,
                bad.as_bytes(),
                spare.take(),
                Some(&mut shapes),
            )
            .unwrap_err();
            assert_eq!(
                err,
                decode(StreamKind::Predictions, bad.as_bytes()).unwrap_err()
            );
        }
        assert_eq!((shapes.known.len(), shapes.learned), (3, 3));
        for i in 3..=4 {
            decode_shaped(
                StreamKind::Predictions,
                other(i).as_bytes(),
                None,
                Some(&mut shapes),
            )
            .unwrap();
        }
        assert_eq!((shapes.known.len(), shapes.learned), (SHAPES, 5));
    }

    #[test]
    fn decodes_a_prediction() {
        let Event::Prediction(p) = decode(StreamKind::Predictions, GOOD.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.trace_id, "t1");
        assert_eq!(p.event_time, 1_767_225_600_000);
        assert_eq!(p.features[0], ("amount".into(), Value::Number(12.5)));
        assert_eq!(p.features[2], ("vip".into(), Value::Bool(true)));
        assert_eq!(p.features[3], ("tenure_days".into(), Value::Null));
        assert_eq!(p.slices, vec![("region".into(), "EU".into())]);
        assert_eq!(p.prediction, Scalar::Number(1.0));
        assert_eq!(p.score, Some(0.73));
    }

    #[test]
    fn accepts_rfc3339_time() {
        let line = GOOD.replace("1767225600000", "\"2026-01-01T00:00:00.250Z\"");
        let ev = decode(StreamKind::Predictions, line.as_bytes()).unwrap();
        assert_eq!(ev.event_time(), 1_767_225_600_250);
        let line = GOOD.replace("1767225600000", "\"2026-01-01T01:00:00+01:00\"");
        assert_eq!(
            decode(StreamKind::Predictions, line.as_bytes())
                .unwrap()
                .event_time(),
            1_767_225_600_000
        );
    }

    fn reason(line: &str) -> BadReason {
        decode(StreamKind::Predictions, line.as_bytes())
            .unwrap_err()
            .reason
    }

    #[test]
    fn text_is_read_as_utf8_whole_or_refused_where_it_breaks() {
        // valid UTF-8 beyond ASCII, in keys and values, reads as written
        let line = GOOD
            .replace(r#""ios""#, r#""iOS ✓ é""#)
            .replace("amount", "montant_€");
        let Event::Prediction(p) = decode(StreamKind::Predictions, line.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(p.features[0].0, "montant_€");
        assert_eq!(p.features[1].1, Value::Text("iOS ✓ é".into()));
        // a byte that is not UTF-8, in a string or outside one: malformed,
        // and the message says where (as serde_json reads bytes)
        let cases: [(&str, &[u8]); 2] = [
            (r#""ios""#, b"\"i\xffs\""),
            ("1767225600000", b"17672256000\xc300"),
        ];
        for (at, bad) in cases {
            let mut bytes = Vec::new();
            let (head, tail) = GOOD.split_once(at).unwrap();
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(bad);
            bytes.extend_from_slice(tail.as_bytes());
            let e = decode(StreamKind::Predictions, &bytes).unwrap_err();
            assert_eq!(e.reason, BadReason::MalformedJson, "{}", e.message);
            assert!(e.message.contains("column"), "{}", e.message);
        }
    }

    #[test]
    fn bad_input_is_classified() {
        assert_eq!(reason("{not json"), BadReason::MalformedJson);
        assert_eq!(
            reason(&GOOD.replace(r#""trace_id":"t1","#, "")),
            BadReason::MissingField
        );
        assert_eq!(
            reason(&GOOD.replace(r#""amount":12.5"#, r#""amount":[1]"#)),
            BadReason::WrongType
        );
        assert_eq!(reason(&GOOD.replace("12.5", "NaN")), BadReason::NonFinite);
        assert_eq!(reason(&GOOD.replace("12.5", "1e400")), BadReason::NonFinite);
        assert_eq!(
            reason(&GOOD.replace(r#""amount":12.5"#, r#""amount":12.5,"amount":3"#)),
            BadReason::DuplicateKey
        );
        assert_eq!(
            reason(&GOOD.replace(r#""region":"EU""#, r#""region":"EU","region":"US""#)),
            BadReason::DuplicateKey
        );
        assert_eq!(
            reason(&GOOD.replace("12.5", "Infinity")),
            BadReason::NonFinite
        );
        assert_eq!(
            reason(&GOOD.replace(r#""t1""#, r#""""#)),
            BadReason::EmptyTraceId
        );
        assert_eq!(
            reason(&GOOD.replace("1767225600000", "-5")),
            BadReason::TimeOutOfRange
        );
        assert_eq!(
            reason(&GOOD.replace("1767225600000", "99999999999999")),
            BadReason::TimeOutOfRange
        );
        assert_eq!(
            reason(&GOOD.replace("0.73", "1.5")),
            BadReason::ScoreOutOfRange
        );
        assert_eq!(
            reason(&GOOD.replace("1767225600000", "\"yesterday\"")),
            BadReason::WrongType
        );
    }

    #[test]
    fn decodes_an_outcome() {
        let Event::Outcome(o) = decode(
            StreamKind::Outcomes,
            br#"{"trace_id":"t1","model_id":"m","event_time":5,"label":0}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.label, Scalar::Number(0.0));
    }
}
