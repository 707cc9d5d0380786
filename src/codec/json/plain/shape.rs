//! A producer's lines have one shape: the same fields in the same order,
//! the same feature and slice names, the same punctuation; only the values
//! change. [`Shape`] is that text between the values, learned from a line
//! [`read_prediction`](super::read_prediction) read whole and vouched for;
//! [`read_shaped`] reads a line of the same shape by comparing that text a
//! piece at a time and reading only the values — no name scanned, matched
//! or fingerprinted. A line that differs anywhere (another field order, a
//! name, a space, a value of another type, an escape) is not read here:
//! the caller reads it whole, as before. What is read here is what the
//! whole reading gives for the line, to the bit (the tests below hold the
//! two equal).
//!
//! A feature, the score and the model version may each be `null` in one
//! line and a value in the next (a feature's nulls are common): either is
//! read in their place, whichever the learned line had.

use super::{Cursor, Read, TRACE_ID};
use crate::codec::vouch;
use crate::event::{Prediction, Scalar, Text, Value};

/// What comes after a piece of the learned text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    TraceId,
    ModelId,
    /// A string, or null.
    ModelVersion,
    EventTime,
    /// Feature `i`: a number, a string or null (whichever the learned line
    /// had: any of the three).
    Feature(u16),
    /// Feature `i`: the learned line's bool, in the piece's text.
    FeatureBool(u16, bool),
    /// Slice `i`'s value (a string).
    Slice(u16),
    PredictionNumber,
    PredictionText,
    /// `true` or `false`, in the piece's text: 1 or 0.
    PredictionBool(bool),
    /// A number, or null.
    Score,
    /// `"shadow":true` (false is the reset's, and in the text).
    Shadow,
}

/// A piece of the learned text (its place in [`Shape::text`]) and what
/// follows it.
#[derive(Clone, Copy, Debug)]
struct Piece {
    start: u32,
    end: u32,
    then: Slot,
}

/// The text of a line between its values, learned from one line.
#[derive(Default)]
pub struct Shape {
    text: Vec<u8>,
    pieces: Vec<Piece>,
    /// The text after the last value (in `text`).
    tail: (u32, u32),
    features: Vec<Text>,
    slices: Vec<Text>,
    known: bool,
    /// This shape, once learned, among all learned in the process (an
    /// event's names say which shape's they are: `Prepared::names`).
    stamp: u64,
}

/// Shapes learned in the process, each its own stamp.
static STAMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A learned shape keeps at most this much text (a producer's line is a
/// few hundred bytes): a longer line is read whole each time.
const MAX_TEXT: usize = 4096;

impl Shape {
    /// Learns the shape of `text`, a line `read_prediction` read as
    /// [`Read::Valid`]; the shape stays unknown if it cannot (a line too
    /// long to hold).
    pub fn learn(&mut self, text: &str) {
        self.known = false;
        self.text.clear();
        self.pieces.clear();
        self.features.clear();
        self.slices.clear();
        if text.len() > MAX_TEXT {
            return;
        }
        self.known = self.walk(text).is_some();
        self.stamp = STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    }

    /// The text from `*last` to a value (`at..end`) as the next piece,
    /// followed by its slot — up to the value's end if its text is fixed
    /// (`then.1`); the next piece starts at `end`.
    fn value(&mut self, text: &str, last: &mut usize, at: usize, end: usize, then: (Slot, bool)) {
        let (then, fixed) = then;
        let upto = if fixed { end } else { at };
        let start = self.text.len() as u32;
        self.text.extend_from_slice(&text.as_bytes()[*last..upto]);
        self.pieces.push(Piece {
            start,
            end: self.text.len() as u32,
            then,
        });
        *last = end;
    }

    /// Walks `text` as `read_prediction` does, noting the text between
    /// values. A bool (a feature's, the prediction's, `shadow`), and
    /// `"slices":null`, stay in the pieces' text: a line with another is
    /// of another shape.
    fn walk(&mut self, text: &str) -> Option<()> {
        let mut c = Cursor { text, at: 0 };
        let mut last = 0;
        c.object(|c, name| {
            c.skip_ws();
            let at = c.at;
            // the slot a value is read into, and whether its text is fixed
            // (then in the piece's); None: read into pieces of their own
            let then = match super::field(name)? {
                TRACE_ID => c.string().map(|_| (Slot::TraceId, false))?,
                super::MODEL_ID => c.string().map(|_| (Slot::ModelId, false))?,
                super::MODEL_VERSION => {
                    match c.peek()? {
                        b'n' => c.null::<()>().map(drop)?,
                        _ => c.string().map(drop)?,
                    }
                    (Slot::ModelVersion, false)
                }
                super::EVENT_TIME => c.integer().map(|_| (Slot::EventTime, false))?,
                super::FEATURES => {
                    c.object(|c, name| {
                        let i = u16::try_from(self.features.len()).ok()?;
                        self.features.push(Text::from(name));
                        c.skip_ws();
                        let at = c.at;
                        let then = match c.peek()? {
                            b't' | b'f' => (Slot::FeatureBool(i, c.bool()?), true),
                            b'"' => c.string().map(|_| (Slot::Feature(i), false))?,
                            b'n' => c.null::<()>().map(|_| (Slot::Feature(i), false))?,
                            _ => c.number().map(|_| (Slot::Feature(i), false))?,
                        };
                        self.value(text, &mut last, at, c.at, then);
                        Some(())
                    })?;
                    return Some(());
                }
                super::SLICES => {
                    match c.peek()? {
                        b'n' => c.null::<()>().map(drop)?,
                        _ => c.object(|c, name| {
                            let i = u16::try_from(self.slices.len()).ok()?;
                            self.slices.push(Text::from(name));
                            c.skip_ws();
                            let at = c.at;
                            c.string()?;
                            self.value(text, &mut last, at, c.at, (Slot::Slice(i), false));
                            Some(())
                        })?,
                    }
                    return Some(());
                }
                super::PREDICTION => match c.peek()? {
                    b'"' => c.string().map(|_| (Slot::PredictionText, false))?,
                    b't' | b'f' => (Slot::PredictionBool(c.bool()?), true),
                    _ => c.number().map(|_| (Slot::PredictionNumber, false))?,
                },
                super::SCORE => {
                    match c.peek()? {
                        b'n' => c.null::<()>().map(drop)?,
                        _ => c.number().map(drop)?,
                    }
                    (Slot::Score, false)
                }
                // `false` is the reset's: it stays in the text
                _ => match c.bool()? {
                    true => (Slot::Shadow, true),
                    false => return Some(()),
                },
            };
            self.value(text, &mut last, at, c.at, then);
            Some(())
        })?;
        let start = self.text.len() as u32;
        self.text.extend_from_slice(&text.as_bytes()[last..]);
        self.tail = (start, self.text.len() as u32);
        Some(())
    }
}

/// Whether `b` holds `want` at `at`: a word at a time, the last one
/// overlapping (a piece is a few to a few dozen bytes: `memcmp`'s call
/// and dispatch had been ~300 instructions an event).
#[inline]
fn holds(b: &[u8], at: usize, want: &[u8]) -> bool {
    let Some(got) = b.get(at..at + want.len()) else {
        return false;
    };
    let n = want.len();
    if n < 8 {
        return got == want;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let mut i = 0;
    while i + 8 < n {
        if word(got, i) != word(want, i) {
            return false;
        }
        i += 8;
    }
    word(got, n - 8) == word(want, n - 8)
}

/// Reads `text` into `p` if it has `shape`'s shape: `None` when it has not
/// (`p` then holds a part of it; the caller reads it whole).
pub fn read_shaped(text: &str, p: &mut Prediction, shape: &Shape) -> Option<Read> {
    if !shape.known {
        return None;
    }
    let b = text.as_bytes();
    let mut c = Cursor { text, at: 0 };
    // a spent event this shape read keeps its names: only the values are new
    let keep = p.prepared.names == shape.stamp
        && p.features.len() == shape.features.len()
        && p.slices.len() == shape.slices.len();
    if keep {
        p.reset_keeping_names();
    } else {
        p.reset();
    }
    for piece in &shape.pieces {
        let want = &shape.text[piece.start as usize..piece.end as usize];
        if !holds(b, c.at, want) {
            return None;
        }
        c.at += want.len();
        match piece.then {
            Slot::TraceId => p.trace_id.push_str(c.string()?),
            Slot::ModelId => p.model_id.push_str(c.string()?),
            Slot::ModelVersion => {
                p.model_version = match c.peek()? {
                    b'n' => c.null()?,
                    _ => Some(Text::from(c.string()?)),
                }
            }
            Slot::EventTime => p.event_time = c.integer()?,
            Slot::Feature(i) => {
                let value = match c.peek()? {
                    b'n' => c.null().map(|_: Option<()>| Value::Null)?,
                    b'"' => Value::Text(Text::from(c.string()?)),
                    b't' | b'f' => return None,
                    _ => Value::Number(c.number()?),
                };
                feature(p, shape, keep, i, value);
            }
            Slot::FeatureBool(i, v) => feature(p, shape, keep, i, Value::Bool(v)),
            Slot::Slice(i) => {
                let value = c.string()?;
                match p.slices.get_mut(i as usize) {
                    Some((_, v)) if keep => *v = Text::from(value),
                    _ => p
                        .slices
                        .push((shape.slices[i as usize].clone(), Text::from(value))),
                }
            }
            Slot::PredictionNumber => p.prediction = Scalar::Number(c.number()?),
            Slot::PredictionText => p.prediction = Scalar::Text(Text::from(c.string()?)),
            Slot::PredictionBool(v) => p.prediction = Scalar::Number(if v { 1.0 } else { 0.0 }),
            Slot::Score => {
                p.score = match c.peek()? {
                    b'n' => c.null()?,
                    _ => Some(c.number()?),
                }
            }
            Slot::Shadow => p.shadow = true,
        }
    }
    let tail = &shape.text[shape.tail.0 as usize..shape.tail.1 as usize];
    if c.at + tail.len() != b.len() || !holds(b, c.at, tail) {
        return None;
    }
    p.prepared.names = shape.stamp;
    // the names are the learned line's: given once each
    Some(if vouch::values_valid(p) {
        Read::Valid
    } else {
        Read::Plain
    })
}

/// Feature `i`'s value, after its name: in its place when the event kept
/// the shape's names (`keep`), else pushed with its name.
#[inline(always)]
fn feature(p: &mut Prediction, shape: &Shape, keep: bool, i: u16, value: Value) {
    match p.features.get_mut(i as usize) {
        Some((_, v)) if keep => *v = value,
        _ => p.features.push((shape.features[i as usize].clone(), value)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::read_prediction;
    use super::super::tests::{line, number, string};
    use super::*;

    /// What a value of one place of a line's shape is.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Number,
        Text,
        Null,
        Bool(bool),
    }

    /// A line's shape: its fields in an order, each feature's and slice's
    /// name and kind, and how the optional ones are given.
    #[derive(Clone, Debug)]
    struct Form {
        features: Vec<(String, Kind)>,
        /// None: `"slices":null`.
        slices: Option<Vec<String>>,
        /// 0 left out, 1 null, 2 a string.
        version: u8,
        /// 0 left out, 1 null, 2 a number.
        score: u8,
        /// 0 left out, 1 false, 2 true.
        shadow: u8,
        prediction: Kind,
        rotate: usize,
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            6 => Just(Kind::Number),
            3 => Just(Kind::Text),
            1 => Just(Kind::Null),
            1 => any::<bool>().prop_map(Kind::Bool),
        ]
    }

    fn form() -> impl Strategy<Value = Form> {
        (
            prop::collection::btree_map("[a-z_]{1,10}", kind(), 0..9),
            prop_oneof![4 => prop::collection::btree_set("[a-z_]{1,8}", 0..4).prop_map(Some), 1 => Just(None)],
            (0u8..3, 0u8..3, 0u8..3),
            prop_oneof![Just(Kind::Number), Just(Kind::Text), any::<bool>().prop_map(Kind::Bool)],
            0usize..9,
        )
            .prop_map(|(features, slices, (version, score, shadow), prediction, rotate)| Form {
                features: features.into_iter().collect(),
                slices: slices.map(|s| s.into_iter().collect()),
                version,
                score,
                shadow,
                prediction,
                rotate,
            })
    }

    /// A value of `kind` as a producer writes one; `wild`: any of
    /// `number()`'s and `string()`'s (escapes, exponents, not finite, not
    /// JSON), and now and then a null or another type.
    fn written(kind: Kind, wild: bool, pick: u8, n: &str, s: &str) -> String {
        if wild && pick < 20 {
            return ["null", "true", "1", "\"x\""][usize::from(pick % 4)].to_owned();
        }
        match kind {
            Kind::Number => n.to_owned(),
            Kind::Text => s.to_owned(),
            Kind::Null => "null".to_owned(),
            Kind::Bool(b) => b.to_string(),
        }
    }

    /// A line of `form` with values from `numbers` and `strings` (taken in
    /// turn), the nullable ones null where `picks` say so.
    fn render(
        form: &Form,
        wild: bool,
        picks: &[u8],
        numbers: &[String],
        strings: &[String],
    ) -> String {
        let mut k = 0;
        let mut next = |kind: Kind, nullable: bool| {
            k += 1;
            let pick = picks[k % picks.len()];
            let (n, s) = (&numbers[k % numbers.len()], &strings[k % strings.len()]);
            // a feature's number or string may come as null (common)
            if nullable && matches!(kind, Kind::Number | Kind::Text) && pick > 230 {
                return "null".to_owned();
            }
            written(kind, wild, pick, n, s)
        };
        let mut fields = vec![
            format!("\"trace_id\":{}", next(Kind::Text, false)),
            format!("\"model_id\":{}", next(Kind::Text, false)),
            format!(
                "\"event_time\":{}",
                1_767_225_600_000u64 + u64::from(picks[0]) * 977
            ),
        ];
        let features: Vec<String> = form
            .features
            .iter()
            .map(|(name, kind)| format!("\"{name}\":{}", next(*kind, true)))
            .collect();
        fields.push(format!("\"features\":{{{}}}", features.join(",")));
        match &form.slices {
            Some(names) => {
                let slices: Vec<String> = names
                    .iter()
                    .map(|name| format!("\"{name}\":{}", next(Kind::Text, false)))
                    .collect();
                fields.push(format!("\"slices\":{{{}}}", slices.join(",")));
            }
            None => fields.push("\"slices\":null".to_owned()),
        }
        match form.version {
            1 => fields.push("\"model_version\":null".to_owned()),
            2 => fields.push(format!("\"model_version\":{}", next(Kind::Text, true))),
            _ => {}
        }
        fields.push(format!(
            "\"prediction\":{}",
            written(form.prediction, wild, picks[1], &numbers[0], &strings[0])
        ));
        match form.score {
            1 => fields.push("\"score\":null".to_owned()),
            2 => {
                let x = if picks[2] > 200 {
                    "null".to_owned()
                } else {
                    format!("0.{}", picks[3])
                };
                fields.push(format!(
                    "\"score\":{}",
                    if wild { next(Kind::Number, true) } else { x }
                ));
            }
            _ => {}
        }
        match form.shadow {
            1 => fields.push("\"shadow\":false".to_owned()),
            2 => fields.push("\"shadow\":true".to_owned()),
            _ => {}
        }
        let n = fields.len();
        fields.rotate_left(form.rotate % n);
        format!("{{{}}}", fields.join(","))
    }

    /// What `line` reads to after `shape` was learned: read with the shape
    /// if it has it (asserted to be what the whole reading gives), else
    /// None.
    fn shaped_is_whole(shape: &Shape, line: &str) -> Result<Option<Read>, TestCaseError> {
        // into an event spent on another line: nothing of it stays
        let mut shaped = Prediction::default();
        read_prediction(
            r#"{"trace_id":"t","model_id":"m","model_version":"v9","event_time":1,"features":{"a":1,"b":"x","c":null},"slices":{"r":"eu"},"prediction":"yes","score":0.5,"shadow":true}"#,
            &mut shaped,
        );
        let Some(read) = read_shaped(line, &mut shaped, shape) else {
            return Ok(None);
        };
        let mut whole = Prediction::default();
        prop_assert_eq!(read_prediction(line, &mut whole), read, "{}", line);
        prop_assert_eq!(format!("{shaped:?}"), format!("{whole:?}"), "{}", line);
        Ok(Some(read))
    }

    /// [`shaped_is_whole`] into an event `shape` read `before` into: the
    /// names it kept, the values all `line`'s.
    fn shaped_after_is_whole(shape: &Shape, before: &str, line: &str) -> Result<(), TestCaseError> {
        let mut spent = Prediction::default();
        if read_shaped(before, &mut spent, shape).is_none() {
            return Ok(());
        }
        let Some(read) = read_shaped(line, &mut spent, shape) else {
            return Ok(());
        };
        let mut whole = Prediction::default();
        prop_assert_eq!(read_prediction(line, &mut whole), read, "{}", line);
        prop_assert_eq!(
            format!("{spent:?}"),
            format!("{whole:?}"),
            "{} after {}",
            line,
            before
        );
        Ok(())
    }

    /// An event read with one shape, read again with another of as many
    /// features and slices (other names), has the other's names.
    #[test]
    fn names_kept_are_the_shapes_own() {
        let line = |a: &str, r: &str, v: f64| {
            format!(
                r#"{{"trace_id":"t","model_id":"m","event_time":1,"features":{{"{a}":{v},"b":"x"}},"slices":{{"{r}":"eu"}},"prediction":1}}"#
            )
        };
        let (one, two) = (line("a", "r", 1.5), line("z", "q", 2.5));
        let mut p = Prediction::default();
        let (mut first, mut second) = (Shape::default(), Shape::default());
        first.learn(&one);
        second.learn(&two);
        assert!(read_shaped(&one, &mut p, &first).is_some());
        assert!(read_shaped(&one, &mut p, &first).is_some());
        assert!(read_shaped(&two, &mut p, &second).is_some());
        let mut whole = Prediction::default();
        read_prediction(&two, &mut whole);
        assert_eq!(format!("{p:?}"), format!("{whole:?}"));
        // and the same shape learned again (another stamp) over the first
        first.learn(&two);
        assert!(read_shaped(&one, &mut p, &second).is_none());
        assert!(read_shaped(&two, &mut p, &first).is_some());
        assert_eq!(format!("{p:?}"), format!("{whole:?}"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// A line of the learned line's shape is read with it, to exactly
        /// what reading it whole gives (its values anything a producer
        /// writes, a feature's number or string null now and then).
        #[test]
        fn a_line_of_the_shape_reads_as_read_whole(
            form in form(),
            picks in prop::collection::vec(any::<u8>(), 4..40),
            numbers in prop::collection::vec("-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,7})?", 1..12),
            strings in prop::collection::vec("\"[a-zA-Z0-9_.-]{1,40}\"", 1..12),
        ) {
            let first = render(&form, false, &picks, &numbers, &strings);
            let mut p = Prediction::default();
            prop_assume!(read_prediction(&first, &mut p) == Read::Valid);
            let mut shape = Shape::default();
            shape.learn(&first);
            prop_assert!(shape.known);
            let mut again: Vec<u8> = picks.clone();
            again.rotate_left(1);
            let second = render(&form, false, &again, &numbers[1..].iter().chain(&numbers[..1]).cloned().collect::<Vec<_>>(), &strings);
            let read = shaped_is_whole(&shape, &second)?;
            prop_assert!(read.is_some(), "not read with the shape: {} after {}", second, first);
            // into the event the shape read the first into
            shaped_after_is_whole(&shape, &first, &second)?;
        }

        /// Whatever follows a learned line — wild values in its shape, or
        /// any line at all — what is read with the shape is what reading
        /// it whole gives.
        #[test]
        fn any_line_reads_as_read_whole_or_is_left(
            form in form(),
            picks in prop::collection::vec(any::<u8>(), 4..40),
            numbers in prop::collection::vec(number(), 1..12),
            strings in prop::collection::vec(string(), 1..12),
            other in line(),
            trailing in prop::sample::select(vec!["x", "}", " ", ",", "\n"]),
        ) {
            let clean = render(&form, false, &picks, &["1.5".to_owned()], &["\"a\"".to_owned()]);
            let mut p = Prediction::default();
            prop_assume!(read_prediction(&clean, &mut p) == Read::Valid);
            let mut shape = Shape::default();
            shape.learn(&clean);
            let wild = render(&form, true, &picks, &numbers, &strings);
            shaped_is_whole(&shape, &wild)?;
            shaped_is_whole(&shape, &other)?;
            // the same line with more after it
            shaped_is_whole(&shape, &format!("{clean}{trailing}"))?;
            shaped_is_whole(&shape, &format!("{wild}{trailing}"))?;
            shaped_after_is_whole(&shape, &clean, &wild)?;
            shaped_after_is_whole(&shape, &wild, &clean)?;
            shaped_after_is_whole(&shape, &clean, &other)?;
            // and a learned hostile line, if it was vouched for
            if read_prediction(&other, &mut p) == Read::Valid {
                shape.learn(&other);
                shaped_is_whole(&shape, &wild)?;
                shaped_is_whole(&shape, &clean)?;
            }
        }
    }
}
