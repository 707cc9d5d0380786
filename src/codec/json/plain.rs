//! A prediction (or an outcome) of the common shape, read in one pass over
//! its text.
//!
//! Nearly every line a producer writes is plain: the contract's fields,
//! each once, strings without escapes, numbers in JSON's grammar, feature
//! values that are null, a bool, a number or a string. Such a line is read
//! here directly into a [`Prediction`] in one pass, with no visitor
//! between the text and the fields (serde_json spent ~10k instructions an
//! event on this shape, most of them in its generic map and string
//! machinery). Anything else — an escape, a control byte, an unknown or
//! repeated field, a missing one, a value of another type, a time as text,
//! a number that is not finite — is not read here at all:
//! [`read_prediction`] says [`Read::NotPlain`] and the caller reads the line
//! with serde_json, whose result (or error, with its line and column) is
//! the line's. So this reader never accepts what serde_json refuses, and
//! what it accepts it reads to the same values (numbers correctly rounded,
//! as serde_json's `float_roundtrip` reads them: the test below holds the
//! two equal).
//!
//! What [`Prediction::validate`] checks is seen here as the line is read
//! where that is quick (ids, time, score; names given once, by their
//! fingerprints): a line that passes needs no second pass over the event
//! (validation was ~1,200 instructions an event, an eighth of the reader's
//! thread). One it cannot vouch for is validated as before, so a bad
//! event's reason and message are the same either way.

use crate::codec::vouch::Seen;
use crate::event::{Outcome, Prediction, Scalar, Text, Value};

mod digits;
mod shape;

use digits::digit_run;
pub use shape::{Shape, read_shaped};

/// Bytes that end the plain part of a string: its closing quote, an
/// escape, a control byte (which JSON refuses inside a string).
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The fields of a prediction, as bits of what was seen.
const TRACE_ID: u16 = 1;
const MODEL_ID: u16 = 1 << 1;
const MODEL_VERSION: u16 = 1 << 2;
const EVENT_TIME: u16 = 1 << 3;
const FEATURES: u16 = 1 << 4;
const SLICES: u16 = 1 << 5;
const PREDICTION: u16 = 1 << 6;
const SCORE: u16 = 1 << 7;
const SHADOW: u16 = 1 << 8;
const REQUIRED: u16 = TRACE_ID | MODEL_ID | EVENT_TIME | FEATURES | PREDICTION;

/// Reads `text` as a plain prediction; `None` when it is not one (the
/// caller reads it with serde_json then).
#[cfg(test)]
pub fn prediction(text: &str) -> Option<Prediction> {
    let mut p = Prediction::default();
    prediction_into(text, &mut p).then_some(p)
}

/// [`prediction`] into `p`, whose buffers (trace id, features, slices) are
/// reused: a reader that hands its spent events back decodes without
/// allocating. False when `text` is not plain (`p` then holds a part of it).
#[cfg(test)]
pub fn prediction_into(text: &str, p: &mut Prediction) -> bool {
    read_prediction(text, p) != Read::NotPlain
}

/// What [`read_prediction`] made of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Not of the common shape: the caller reads it with serde_json.
    NotPlain,
    /// Read; [`Prediction::validate`] still to run.
    Plain,
    /// Read, and seen as it went to pass every check of
    /// [`Prediction::validate`] (so it need not run): ids that are not
    /// blank, a time in range, names given once, a score in [0, 1] (every
    /// number read here is finite). One this cannot vouch for is `Plain`.
    Valid,
}

/// Reads `text` into `p`, whose buffers (trace id, features, slices) are
/// reused: a reader that hands its spent events back decodes without
/// allocating. Says whether it was plain (if not, `p` holds a part of it)
/// and whether the event is already known valid.
pub fn read_prediction(text: &str, p: &mut Prediction) -> Read {
    let mut c = Cursor { text, at: 0 };
    p.reset();
    let mut seen = 0u16;
    // what `Prediction::validate` checks, seen as the line is read
    let mut checks = Seen::default();
    let read = c.object(|c, name| {
        let field = field(name)?;
        once(&mut seen, field)?;
        match field {
            TRACE_ID => p.trace_id.push_str(c.string()?),
            MODEL_ID => p.model_id.push_str(c.string()?),
            MODEL_VERSION => {
                p.model_version = match c.peek()? {
                    b'n' => c.null()?,
                    _ => Some(Text::from(c.string()?)),
                }
            }
            EVENT_TIME => p.event_time = c.integer()?,
            FEATURES => c.features(&mut p.features, &mut checks)?,
            SLICES => match c.peek()? {
                b'n' => c.null::<()>().map(drop)?,
                _ => c.slices(&mut p.slices, &mut checks)?,
            },
            PREDICTION => p.prediction = c.scalar()?,
            SCORE => {
                p.score = match c.peek()? {
                    b'n' => c.null()?,
                    _ => Some(c.number()?),
                }
            }
            _ => p.shadow = c.bool()?,
        }
        Some(())
    });
    c.skip_ws();
    if read.is_none() || c.at != text.len() || seen & REQUIRED != REQUIRED {
        return Read::NotPlain;
    }
    let valid = checks.valid(p);
    if valid { Read::Valid } else { Read::Plain }
}

/// A prediction's field by its name; `None` for a name it has not.
#[inline]
fn field(name: &str) -> Option<u16> {
    Some(match name {
        "trace_id" => TRACE_ID,
        "model_id" => MODEL_ID,
        "model_version" => MODEL_VERSION,
        "event_time" => EVENT_TIME,
        "features" => FEATURES,
        "slices" => SLICES,
        "prediction" => PREDICTION,
        "score" => SCORE,
        "shadow" => SHADOW,
        _ => return None,
    })
}

/// Reads `text` as a plain outcome (its four fields once each); `None`
/// when it is not one.
pub fn outcome(text: &str) -> Option<Outcome> {
    let mut c = Cursor { text, at: 0 };
    let mut o = Outcome {
        trace_id: String::new(),
        model_id: Text::default(),
        event_time: 0,
        label: Scalar::Number(0.0),
    };
    let mut seen = 0u16;
    c.object(|c, name| {
        let field = match name {
            "trace_id" => TRACE_ID,
            "model_id" => MODEL_ID,
            "event_time" => EVENT_TIME,
            "label" => PREDICTION,
            _ => return None,
        };
        once(&mut seen, field)?;
        match field {
            TRACE_ID => o.trace_id = c.string()?.to_owned(),
            MODEL_ID => o.model_id = Text::from(c.string()?),
            EVENT_TIME => o.event_time = c.integer()?,
            _ => o.label = c.scalar()?,
        }
        Some(())
    })?;
    c.skip_ws();
    (c.at == text.len() && seen == TRACE_ID | MODEL_ID | EVENT_TIME | PREDICTION).then_some(o)
}

/// Marks `field` seen; `None` if it was (serde_json refuses a repeated field).
#[inline]
fn once(seen: &mut u16, field: u16) -> Option<()> {
    let first = *seen & field == 0;
    *seen |= field;
    first.then_some(())
}

/// Exact powers of ten as doubles (10^22 is the last one that is).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A byte of `w` (little-endian) that is a quote, a backslash or below
/// 0x20 has its high bit set in the result; bits above the first such byte
/// may be set by borrows, bits below it are not.
#[inline]
fn stop_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) | below_space
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn skip_ws(&mut self) {
        // a producer's line has little or no whitespace: one compare says so
        while let Some(&b) = self.bytes().get(self.at) {
            if b > b' ' || !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.at).copied()
    }

    /// The next byte after whitespace, taken.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// A string without escapes or control bytes.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.at;
        let mut i = start;
        // eight bytes at a time while eight remain, then one at a time
        while let Some(word) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().ok()?);
            let stop = stop_bytes(w);
            if stop != 0 {
                i += (stop.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while !STOP[*b.get(i)? as usize] {
            i += 1;
        }
        if b[i] != b'"' {
            return None;
        }
        self.at = i + 1;
        // quotes are ASCII: the text between two is whole characters
        self.text.get(start..i)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_ws();
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `null`, as a `None` of any type.
    fn null<T>(&mut self) -> Option<Option<T>> {
        self.literal(b"null").map(|()| None)
    }

    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            _ => self.literal(b"false").map(|()| false),
        }
    }

    /// Digits from `i` on; where they end.
    #[inline]
    fn digits(b: &[u8], mut i: usize) -> usize {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    }

    /// A number in JSON's grammar (`-? (0 | [1-9][0-9]*) (. [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?`), correctly rounded; not one that is not
    /// finite (serde_json's error names it).
    #[inline]
    fn number(&mut self) -> Option<f64> {
        self.skip_ws();
        let b = self.bytes();
        let start = self.at;
        let negative = b.get(start) == Some(&b'-');
        let mut i = start + usize::from(negative);
        // the digits' value while it fits (19 digits), and how many
        // digits followed the point
        let (mut m, mut digits, mut scale) = (0u64, 0u32, 0i32);
        let mut take = |i: usize| {
            let mut i = i;
            while let Some(&d) = b.get(i)
                && d.is_ascii_digit()
            {
                m = m.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                digits += u32::from(m != 0);
                i += 1;
            }
            i
        };
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = take(i),
            _ => return None,
        }
        let mut exact = true;
        if b.get(i) == Some(&b'.') {
            let end = take(i + 1);
            if end == i + 1 {
                return None;
            }
            scale = (end - i - 1) as i32;
            i = end;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            // rare in a producer's output: the standard parse reads it
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let end = Self::digits(b, i);
            if end == i {
                return None;
            }
            i = end;
            exact = false;
        }
        // a digit straight after (`01`) is not JSON: the caller's next
        // byte check refuses it
        self.at = i;
        // Clinger's fast path: a significand below 2^53 and a power of ten
        // of at most 22 are both exact doubles, so one division (or none)
        // rounds once, correctly; anything else, the standard parse
        // (also correctly rounded)
        let x = if exact && digits <= 19 && m < (1 << 53) && scale <= 22 {
            let x = m as f64 / POW10[scale as usize];
            if negative { -x } else { x }
        } else {
            self.text.get(start..i)?.parse().ok()?
        };
        x.is_finite().then_some(x)
    }

    /// A model output or a label: a number, a string, or a bool (1 or 0).
    fn scalar(&mut self) -> Option<Scalar> {
        Some(match self.peek()? {
            b'"' => Scalar::Text(Text::from(self.string()?)),
            b't' | b'f' => Scalar::Number(if self.bool()? { 1.0 } else { 0.0 }),
            _ => Scalar::Number(self.number()?),
        })
    }

    /// An integer of up to 18 digits (an event time); any other number is
    /// left to serde_json.
    fn integer(&mut self) -> Option<i64> {
        self.skip_ws();
        let b = self.bytes();
        let negative = b.get(self.at) == Some(&b'-');
        let start = self.at + usize::from(negative);
        // an event time's 13 digits a word at a time
        if let Some((x, n)) = digit_run(b, start)
            && n > 0
            && (n == 1 || b[start] != b'0')
            && !matches!(b.get(start + n), Some(b'.' | b'e' | b'E'))
        {
            // fewer than 16 digits: fits an i64
            let x = x as i64;
            self.at = start + n;
            return Some(if negative { -x } else { x });
        }
        let end = Self::digits(b, start);
        let n = end - start;
        if n == 0 || n > 18 || (n > 1 && b[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = b.get(end) {
            return None;
        }
        let x = b[start..end]
            .iter()
            .fold(0i64, |x, d| x * 10 + i64::from(d - b'0'));
        self.at = end;
        Some(if negative { -x } else { x })
    }

    /// `{` name `:` value, … `}`, each entry read by `entry` (given the
    /// name, the cursor at its value).
    #[inline]
    fn object(&mut self, mut entry: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            entry(self, name)?;
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Features: null, a bool, a number or a string each; their names
    /// noted in `seen`.
    fn features(&mut self, out: &mut Vec<(Text, Value)>, seen: &mut Seen) -> Option<()> {
        out.reserve(8);
        self.object(|c, name| {
            seen.feature(c.bytes(), name);
            let value = match c.peek()? {
                b'"' => Value::Text(Text::from(c.string()?)),
                b'n' => c.null().map(|_: Option<()>| Value::Null)?,
                b't' | b'f' => Value::Bool(c.bool()?),
                _ => Value::Number(c.number()?),
            };
            out.push((Text::from(name), value));
            Some(())
        })
    }

    /// Slices: a string each; their names noted in `seen`.
    fn slices(&mut self, out: &mut Vec<(Text, Text)>, seen: &mut Seen) -> Option<()> {
        self.object(|c, name| {
            seen.slice(c.bytes(), name);
            out.push((Text::from(name), Text::from(c.string()?)));
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::BadReason;

    /// What serde_json reads a line to (its error, if it refuses it).
    fn by_serde(line: &str) -> Result<Prediction, String> {
        serde_json::from_str::<Prediction>(line).map_err(|e| e.to_string())
    }

    /// A number as producers write it (mostly), and as they should not.
    pub(super) fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            12 => finite().prop_map(|x| format!("{x}")),
            4 => finite().prop_map(|x| format!("{x:e}")),
            12 => (-1e6f64..1e6).prop_map(|x| format!("{x:.6}")),
            4 => any::<i64>().prop_map(|x| x.to_string()),
            4 => any::<u64>().prop_map(|x| x.to_string()),
            // long significands, leading zeros, exponents, subnormals
            8 => "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
            // not JSON, or not finite
            1 => "-?0[0-9]{1,3}",
            1 => prop::sample::select(vec![
                "-0", "-0.0", "0.0", "1e400", "-1e400", "1e-400", "4.9e-324", "2.2250738585072011e-308",
                "9007199254740993", "9007199254740993.0", "0.1", "1.", ".5", "+1", "1e", "1e+", "--1",
                "NaN", "Infinity", "1.7976931348623157e308", "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880.0",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// A finite double of any magnitude, subnormals and zeros among them.
    fn finite() -> impl Strategy<Value = f64> {
        use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
    }

    /// A JSON string as producers write it (mostly), and as they should not.
    pub(super) fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            24 => "[a-z_0-9]{0,40}".prop_map(|s| format!("\"{s}\"")),
            6 => "[a-zé✓€ -]{0,12}".prop_map(|s| format!("\"{s}\"")),
            // an escape, a control byte or a quote anywhere in a long one
            1 => ("[a-z]{0,20}", prop::sample::select(vec!["\\\"", "\\n", "\t", "\u{1}", "\u{7f}", "\\u00e9"]), "[a-z]{0,20}")
                .prop_map(|(a, e, b)| format!("\"{a}{e}{b}\"")),
            1 => prop::sample::select(vec![
                r#""a\"b""#, r#""a\\b""#, r#""\u00e9""#, "\"tab\there\"", "\"new\nline\"", "\"\u{1f}\"",
                "\"\"", "\"unterminated", "'single'", "\"x\"\"y\"",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// A feature's value.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            24 => number(),
            12 => string(),
            8 => prop::sample::select(vec!["null", "true", "false"]).prop_map(str::to_owned),
            1 => prop::sample::select(vec!["nul", "[1]", "{}", "truex"]).prop_map(str::to_owned),
        ]
    }

    fn object(entries: Vec<(String, String)>, ws: &str) -> String {
        let body: Vec<String> = entries
            .into_iter()
            .map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// A prediction line: the contract's fields in any order, some left
    /// out, some given twice or of another type, unknown ones, whitespace.
    pub(super) fn line() -> impl Strategy<Value = String> {
        let names = prop_oneof![
            8 => "[a-z_]{1,12}".prop_map(|s| format!("\"{s}\"")),
            1 => string(),
        ];
        let features =
            prop::collection::vec((names.clone(), value()), 0..6).prop_map(|e| object(e, ""));
        let slices = prop_oneof![
            4 => prop::collection::vec((names, string()), 0..4).prop_map(|e| object(e, "")),
            1 => prop::sample::select(vec!["null", "[]", "{\"a\":1}", "{\"a\":null}"]).prop_map(str::to_owned),
        ];
        let field = |name: &'static str, v: BoxedStrategy<String>| (Just(format!("\"{name}\"")), v);
        let fields = (
            field("trace_id", string().boxed()),
            field("model_id", string().boxed()),
            field(
                "model_version",
                prop_oneof![8 => string(), 2 => Just("null".to_owned()), 1 => number()].boxed(),
            ),
            field(
                "event_time",
                prop_oneof![
                    12 => (0i64..4_102_444_800_000).prop_map(|t| t.to_string()),
                    1 => number(),
                    1 => "-?0[0-9]{1,13}",
                    1 => Just("\"2026-01-01T00:00:00.250Z\"".to_owned()),
                ]
                .boxed(),
            ),
            field("features", prop_oneof![8 => features, 1 => value()].boxed()),
            field("slices", slices.boxed()),
            field("prediction", value().boxed()),
            field(
                "score",
                prop_oneof![8 => number(), 2 => Just("null".to_owned()), 1 => string()].boxed(),
            ),
            field(
                "shadow",
                prop_oneof![
                    10 => prop::sample::select(vec!["true", "false"]).prop_map(str::to_owned),
                    1 => value(),
                ]
                .boxed(),
            ),
            field("unknown", value().boxed()),
        );
        (
            fields,
            prop::collection::vec(any::<u8>(), 10),
            prop::sample::select(vec!["", "", "", " ", "\n\t ", "\r"]),
            prop::sample::select(vec!["", "", "", "", "", "x", " ", "}"]),
        )
            .prop_map(|(f, picks, ws, trailing)| {
                let all = [f.0, f.1, f.2, f.3, f.4, f.5, f.6, f.7, f.8, f.9];
                let mut entries = Vec::new();
                for (i, (entry, pick)) in all.into_iter().zip(picks).enumerate() {
                    // required fields mostly there, others sometimes, any twice rarely
                    let keep = if i < 2 || i == 3 || i == 4 || i == 6 {
                        pick > 2
                    } else {
                        pick > 128 && (i < 9 || pick > 240)
                    };
                    if keep {
                        entries.push(entry.clone());
                    }
                    if pick > 250 {
                        entries.push(entry);
                    }
                }
                let n = entries.len();
                entries.rotate_left(usize::from(picks_rotation(n)));
                format!("{}{ws}{trailing}", object(entries, ws))
            })
    }

    fn picks_rotation(n: usize) -> u8 {
        (n % 3) as u8
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// A line read here reads to what serde_json reads it to (bit for
        /// bit: `-0.0` is not `0.0`); one it refuses is never read here.
        #[test]
        fn reads_what_serde_json_reads_or_leaves_it(line in line()) {
            if let Some(p) = prediction(&line) {
                match by_serde(&line) {
                    Ok(q) => prop_assert_eq!(format!("{p:?}"), format!("{q:?}")),
                    Err(e) => prop_assert!(false, "read {p:?}, serde_json refused: {e}"),
                }
            }
        }

        /// A line read here and called valid as it was read passes every
        /// check `Prediction::validate` makes; one called plain only is
        /// checked by it as before.
        #[test]
        fn what_is_called_valid_is_valid(line in line()) {
            let mut p = Prediction::default();
            if read_prediction(&line, &mut p) == Read::Valid {
                prop_assert_eq!(p.validate(), Ok(()));
            }
        }

        /// Read into an event left from another line (one read partly and
        /// refused, too), a line reads to what it reads to alone: nothing
        /// of the other stays.
        #[test]
        fn reading_into_a_spent_event_leaves_nothing_of_it(before in line(), line in line()) {
            let mut p = prediction(&before).unwrap_or_else(|| {
                let mut p = prediction(r#"{"trace_id":"t","model_id":"m","model_version":"v9","event_time":1,"features":{"a":1,"b":"x"},"slices":{"r":"eu"},"prediction":"yes","score":0.5,"shadow":true}"#).unwrap();
                prediction_into(&before, &mut p);
                p
            });
            let alone = prediction(&line);
            prop_assert_eq!(prediction_into(&line, &mut p), alone.is_some());
            if let Some(alone) = alone {
                prop_assert_eq!(format!("{p:?}"), format!("{alone:?}"));
            }
        }

        /// The same for outcomes: the label is any value, the time mostly
        /// epoch milliseconds.
        #[test]
        fn reads_outcomes_as_serde_json_does(
            fields in (string(), string(), prop_oneof![8 => (0i64..4_102_444_800_000).prop_map(|t| t.to_string()), 1 => number()], value(), "(\"[a-z_]{1,10}\")?"),
            picks in prop::collection::vec(any::<u8>(), 5),
            ws in prop::sample::select(vec!["", "", " ", "\n"]),
            trailing in prop::sample::select(vec!["", "", "", "x", " ", "}"]),
        ) {
            let (trace, model, time, label, other) = fields;
            let all = [
                ("\"trace_id\"".to_owned(), trace),
                ("\"model_id\"".to_owned(), model),
                ("\"event_time\"".to_owned(), time),
                ("\"label\"".to_owned(), label.clone()),
                (if other.is_empty() { "\"label\"".to_owned() } else { other }, label),
            ];
            // each field mostly there, the fifth (another or a repeat) rarely
            let entries: Vec<_> = all
                .into_iter()
                .zip(&picks)
                .enumerate()
                .filter(|(i, (_, p))| if *i < 4 { **p > 8 } else { **p > 230 })
                .map(|(_, (e, _))| e)
                .collect();
            let line = format!("{}{ws}{trailing}", object(entries, ws));
            if let Some(o) = outcome(&line) {
                match serde_json::from_str::<Outcome>(&line) {
                    Ok(q) => prop_assert_eq!(format!("{o:?}"), format!("{q:?}")),
                    Err(e) => prop_assert!(false, "read {o:?}, serde_json refused: {e}"),
                }
            }
        }

        /// Event times and numbers of every length, with a word's bytes
        /// after them or fewer (where a time's word-at-a-time reading gives
        /// way to the byte-at-a-time one), and a byte next to a digit's
        /// after them, are read as serde_json reads them.
        #[test]
        fn times_and_numbers_of_any_length_are_read_as_serde_json_reads_them(
            x in prop_oneof![
                4 => number(),
                4 => "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?",
                1 => "-?0[0-9]{1,9}(\\.[0-9]{1,3})?",
                1 => "[0-9]{1,8}(\\.|\\.e1|e)[0-9]{0,3}",
            ],
            time in prop_oneof!["-?(0|[1-9][0-9]{0,19})", "0[0-9]{1,14}", "[0-9]{1,16}(\\.[0-9]|e1|E2)"],
            pad in "[a-z]{0,20}",
            // a byte next to a digit's (`:` and `/` are next to `0`–`9`)
            junk in (0usize..16, 0usize..16),
        ) {
            // mostly nothing
            let next = ["", ":", "/", " ", "x", "-"];
            let (jt, jx) = (next.get(junk.0).unwrap_or(&""), next.get(junk.1).unwrap_or(&""));
            // the number last but for a field of `pad`'s length, and first
            let line = format!(r#"{{"trace_id":"t","model_id":"m","prediction":1,"event_time":{time}{jt},"features":{{"a":{x}{jx},"b":"{pad}"}}}}"#);
            let last = format!(r#"{{"trace_id":"t","model_id":"m","features":{{"b":"{pad}"}},"prediction":1,"event_time":{time},"score":{x}{jx}}}"#);
            for line in [line, last] {
                match (prediction(&line), by_serde(&line)) {
                    (Some(p), Ok(q)) => prop_assert_eq!(format!("{p:?}"), format!("{q:?}")),
                    (Some(p), Err(e)) => prop_assert!(false, "read {p:?}, serde_json refused: {e}"),
                    // a time of 19 digits or more, or one with a point
                    // or an exponent, is left to serde_json (as before)
                    (None, Ok(q)) => prop_assert!(
                        time.trim_start_matches('-').len() > 18 || time.contains(['.', 'e', 'E']),
                        "left a line serde_json reads: {q:?}"
                    ),
                    (None, Err(_)) => {}
                }
            }
        }

        /// Every number serde_json reads in a feature is read here to the
        /// same bits.
        #[test]
        fn numbers_are_read_to_the_same_bits(x in number()) {
            let line = format!(r#"{{"trace_id":"t","model_id":"m","event_time":1,"features":{{"a":{x}}},"prediction":{x}}}"#);
            match (prediction(&line), by_serde(&line)) {
                (Some(p), Ok(q)) => prop_assert_eq!(format!("{p:?}"), format!("{q:?}")),
                (Some(p), Err(e)) => prop_assert!(false, "read {p:?}, serde_json refused: {e}"),
                (None, Ok(q)) => prop_assert!(false, "left a line serde_json reads: {q:?}"),
                (None, Err(_)) => {}
            }
        }
    }

    /// Each check `Prediction::validate` makes, failed alone: the line is
    /// read but not vouched for, and validation refuses it as before; a
    /// producer's line passes them all as it is read.
    #[test]
    fn a_line_failing_a_check_is_left_to_validate() {
        let line = |trace: &str, time: &str, features: &str, slices: &str, score: &str| {
            format!(
                r#"{{"trace_id":"{trace}","model_id":"m","event_time":{time},"features":{{{features}}},"slices":{{{slices}}},"prediction":1,"score":{score}}}"#
            )
        };
        let good = line(
            "t1",
            "1767225600000",
            r#""amount":1.5,"age":3,"tenure_days":2,"device":"ios""#,
            r#""region":"EU","channel":"web""#,
            "0.5",
        );
        let mut p = Prediction::default();
        assert_eq!(read_prediction(&good, &mut p), Read::Valid);
        assert_eq!(p.validate(), Ok(()));
        let bad = [
            (
                line(" ", "1", r#""a":1"#, "", "0.5"),
                BadReason::EmptyTraceId,
            ),
            (
                line("t", "4102444800000", r#""a":1"#, "", "0.5"),
                BadReason::TimeOutOfRange,
            ),
            (
                line("t", "1", r#""a":1,"b":2,"a":3"#, "", "0.5"),
                BadReason::DuplicateKey,
            ),
            (
                line(
                    "t",
                    "1",
                    r#""tenure_days":1,"b":2,"tenure_days":3"#,
                    "",
                    "0.5",
                ),
                BadReason::DuplicateKey,
            ),
            (
                line("t", "1", r#""a":1"#, r#""r":"x","r":"y""#, "0.5"),
                BadReason::DuplicateKey,
            ),
            (
                line("t", "1", r#""a":1"#, "", "1.5"),
                BadReason::ScoreOutOfRange,
            ),
        ];
        for (text, reason) in bad {
            let mut p = Prediction::default();
            assert_eq!(read_prediction(&text, &mut p), Read::Plain, "{text}");
            assert_eq!(p.validate().map_err(|e| e.reason), Err(reason), "{text}");
        }
        // names compared by what they are, not where they end: two short
        // names the last one ending the text, and seventeen names (more
        // than are noted) left to validate
        let mut p = Prediction::default();
        let end = r#"{"trace_id":"t","model_id":"m","event_time":1,"prediction":1,"features":{"ab":1,"b":2}}"#;
        assert_eq!(read_prediction(end, &mut p), Read::Valid);
        let twice = r#"{"trace_id":"t","model_id":"m","event_time":1,"prediction":1,"features":{"b":1,"b":2}}"#;
        assert_eq!(read_prediction(twice, &mut p), Read::Plain);
        assert_eq!(
            p.validate().map_err(|e| e.reason),
            Err(BadReason::DuplicateKey)
        );
        let many: Vec<String> = (0..17).map(|i| format!(r#""f{i}":1"#)).collect();
        let text = line("t", "1", &many.join(","), "", "0.5");
        assert_eq!(read_prediction(&text, &mut p), Read::Plain);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn a_producers_line_is_read_here() {
        let lines = [
            r#"{"trace_id":"595dae84f52a16650311c704311df301","model_id":"checkout-fraud","model_version":"v7","event_time":1767225600007,"features":{"amount":23.6405,"age":34.0,"clicks":7,"score_a":-0.63194,"device":"android","vip":true,"gone":null},"slices":{"region":"US","channel":"app"},"prediction":0,"score":0.164117}"#,
            "{ \"trace_id\" : \"t\",\n \"model_id\": \"m\", \"event_time\": 5, \"features\": {}, \"slices\": null, \"prediction\": \"fraud\", \"score\": null, \"shadow\": true, \"model_version\": null }\n",
        ];
        for line in lines {
            let p = prediction(line).unwrap_or_else(|| panic!("left: {line}"));
            assert_eq!(p, by_serde(line).unwrap());
        }
        let line = r#"{"trace_id":"t1","model_id":"m","event_time":5,"label":"fraud"}"#;
        let o = outcome(line).unwrap_or_else(|| panic!("left: {line}"));
        assert_eq!(o, serde_json::from_str::<Outcome>(line).unwrap());
        // and what is not of the common shape is left to serde_json
        for line in [
            r#"{"trace_id":"a\"b","model_id":"m","event_time":5,"features":{},"prediction":1}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":"2026-01-01T00:00:00Z","features":{},"prediction":1}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":5,"features":{},"prediction":1,"extra":2}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":5,"features":{},"prediction":1,"prediction":1}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":5,"features":{"a":1e400},"prediction":1}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":5,"features":{"a":01},"prediction":1}"#,
            r#"{"trace_id":"t","model_id":"m","event_time":5,"prediction":1}"#,
        ] {
            assert_eq!(prediction(line), None, "{line}");
        }
    }
}
