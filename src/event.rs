//! The event contracts of DESIGN.md as Rust types: prediction and outcome in,
//! and the reasons an event can be refused.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Latest event time accepted at all: 2100-01-01T00:00:00Z.
pub const MAX_EVENT_TIME_MS: i64 = 4_102_444_800_000;

/// A name or a short text of an event (model id, feature and slice names
/// and values, a category): kept inline up to 24 bytes, so decoding one
/// event allocates for its trace id and its two lists only, and the engine
/// reads its names from the lists' own memory.
pub type Text = compact_str::CompactString;

/// A feature's value. `Null` is a missing value: counted, never dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Number(f64),
    Text(Text),
    Bool(bool),
}

/// A model output or a label: a number (regression, binary 0/1) or a class name.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(Text),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub trace_id: String,
    pub model_id: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<Text>,
    #[serde(deserialize_with = "de_event_time")]
    pub event_time: i64,
    #[serde(serialize_with = "ser_pairs", deserialize_with = "de_features")]
    pub features: Vec<(Text, Value)>,
    #[serde(default, serialize_with = "ser_pairs", deserialize_with = "de_slices")]
    pub slices: Vec<(Text, Text)>,
    pub prediction: Scalar,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Scored but not served (a shadow deployment): compared with
    /// production, never counted as production.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shadow: bool,
    /// What the thread that decoded it worked out for the engine (its
    /// numbers' bins, its registry ids); not part of the event.
    #[serde(skip)]
    pub prepared: Prepared,
}

/// What the thread that decoded a prediction worked out for the engine's,
/// beside it (`--workers` 2 or more), so that the engine's thread reads it
/// rather than working it out: its numbers' bins ([`Ordinals`]) and its
/// registry ids (`engine::resolve`). Held for one event: decoding into a
/// spent prediction empties it ([`Prediction::reset`]). Not part of the
/// event: equal and printed alike whatever it holds.
#[derive(Clone, Default)]
pub struct Prepared {
    pub ordinals: Ordinals,
    pub ids: Resolved,
    /// The learned line shape (`codec::json`) whose feature and slice names
    /// the event holds, in its places (0: none): a spent event read again
    /// with that shape keeps them and takes new values only.
    pub names: u64,
}

/// One value as a series' bucket records it (`window`).
#[derive(Clone, Copy, Debug)]
pub enum Observation {
    /// A missing value.
    Null,
    /// A number, with its DDSketch bin (`sketch::ordinal`).
    Number { x: f64, ordinal: i64 },
    /// A category id of the feature (0 is the overflow).
    Category(usize),
    /// A value of the wrong type for the feature.
    Violation,
}

/// What the reader's thread looked up for the engine in a copy of its
/// registry (`engine::resolve`, which fills it and says when it may be
/// used): the event's slots, then each of its values' observation and its
/// series in each slot, in the order the engine's own lookup gives them.
#[derive(Clone, Default)]
pub struct Resolved {
    /// The epoch of the engine whose copy it was looked up in (0: none).
    pub(crate) epoch: u64,
    /// The model's layout in that copy (`registry::Model::layout`).
    pub(crate) layout: u64,
    pub(crate) model: u32,
    pub(crate) carried: bool,
    pub(crate) slots: Vec<u32>,
    pub(crate) planned: Vec<Observation>,
    pub(crate) sids: Vec<u32>,
}

impl Resolved {
    /// What it holds, if it was looked up for engine `epoch`'s model `m`
    /// as that model's layout still is.
    #[inline]
    pub(crate) fn usable(&self, epoch: u64, m: u32, layout: u64) -> Option<&Resolved> {
        (self.epoch == epoch && self.model == m && self.layout == layout).then_some(self)
    }

    /// Holds nothing.
    pub fn clear(&mut self) {
        self.epoch = 0;
    }

    /// Where its lists are (cache hints: `engine::prefetch_event`).
    #[inline]
    pub(crate) fn parts(&self) -> (*const Observation, *const u32) {
        (self.planned.as_ptr(), self.sids.as_ptr())
    }
}

impl PartialEq for Prepared {
    fn eq(&self, _: &Prepared) -> bool {
        true
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// Each number's DDSketch bin of a prediction — its features' in order,
/// then its prediction's and its score's — worked out on the thread that
/// decoded it, beside the engine's (`--workers` 2 or more), so the
/// engine's thread reads them rather than taking a logarithm per value
/// (`sketch::edges::prepare` fills them, `prepared` reads them). Held
/// for one sketch configuration (`config`, opaque here) and one event:
/// decoding into a spent prediction empties them ([`Prediction::reset`]).
#[derive(Clone, Default)]
pub struct Ordinals {
    /// The configuration they were worked out for ((0, 0): none held).
    config: (u64, u64),
    bins: Vec<i64>,
}

impl Ordinals {
    /// Where the bins are (a cache hint: `engine::prefetch_event`).
    #[inline]
    pub fn as_ptr(&self) -> *const i64 {
        self.bins.as_ptr()
    }

    /// The `n` bins held for `config`, if those are what is held.
    #[inline]
    pub fn get(&self, config: (u64, u64), n: usize) -> Option<&[i64]> {
        (config != (0, 0) && self.config == config && self.bins.len() == n)
            .then_some(self.bins.as_slice())
    }

    /// Holds `bins`, worked out for `config`.
    pub fn fill(&mut self, config: (u64, u64), bins: impl IntoIterator<Item = i64>) {
        self.bins.clear();
        self.bins.extend(bins);
        self.config = config;
    }

    fn clear(&mut self) {
        self.config = (0, 0);
        self.bins.clear();
    }
}

/// An empty prediction: a buffer for a decoder to read into.
impl Default for Prediction {
    fn default() -> Prediction {
        Prediction {
            trace_id: String::new(),
            model_id: Text::default(),
            model_version: None,
            event_time: 0,
            features: Vec::new(),
            slices: Vec::new(),
            prediction: Scalar::Number(0.0),
            score: None,
            shadow: false,
            prepared: Prepared::default(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub trace_id: String,
    pub model_id: Text,
    #[serde(deserialize_with = "de_event_time")]
    pub event_time: i64,
    pub label: Scalar,
}

/// One input record, prediction or outcome. A prediction is boxed: it
/// is most of an event's bytes (~200 of them), and an event moves several
/// times between being decoded and applied (into the merge, out of it,
/// into a batch for the engine's thread); those copies were 18 % of the
/// reader's thread (`perf`, 1M replay with two workers). Boxed, they are
/// gone, though the reader's thread is about as busy: its decoding now
/// first touches the bytes (docs/performance.md).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Prediction(Box<Prediction>),
    Outcome(Outcome),
}

impl Event {
    pub fn event_time(&self) -> i64 {
        match self {
            Event::Prediction(p) => p.event_time,
            Event::Outcome(o) => o.event_time,
        }
    }
}

/// Why an event was refused. Each reason is a counter in the run summary and,
/// on Kafka, the `error class` header of the dead-letter copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    MalformedJson,
    MalformedAvro,
    MissingField,
    WrongType,
    NonFinite,
    EmptyTraceId,
    EmptyModelId,
    TimeOutOfRange,
    ScoreOutOfRange,
    TooManyModels,
    BadMagicByte,
    UnknownSchema,
    /// A line longer than `input.max_line_bytes`.
    LineTooLong,
    /// A key given twice in `features` or `slices`.
    DuplicateKey,
    /// An event time the watermark's robustness rule refuses (far from the
    /// stream's event time, or the first events' consensus).
    TimeOutlier,
}

impl BadReason {
    pub const ALL: [BadReason; 15] = [
        BadReason::MalformedJson,
        BadReason::MalformedAvro,
        BadReason::MissingField,
        BadReason::WrongType,
        BadReason::NonFinite,
        BadReason::EmptyTraceId,
        BadReason::EmptyModelId,
        BadReason::TimeOutOfRange,
        BadReason::ScoreOutOfRange,
        BadReason::TooManyModels,
        BadReason::BadMagicByte,
        BadReason::UnknownSchema,
        BadReason::LineTooLong,
        BadReason::DuplicateKey,
        BadReason::TimeOutlier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::MalformedJson => "malformed_json",
            BadReason::MalformedAvro => "malformed_avro",
            BadReason::MissingField => "missing_field",
            BadReason::WrongType => "wrong_type",
            BadReason::NonFinite => "non_finite",
            BadReason::EmptyTraceId => "empty_trace_id",
            BadReason::EmptyModelId => "empty_model_id",
            BadReason::TimeOutOfRange => "time_out_of_range",
            BadReason::ScoreOutOfRange => "score_out_of_range",
            BadReason::TooManyModels => "too_many_models",
            BadReason::BadMagicByte => "bad_magic_byte",
            BadReason::UnknownSchema => "unknown_schema",
            BadReason::LineTooLong => "line_too_long",
            BadReason::DuplicateKey => "duplicate_key",
            BadReason::TimeOutlier => "time_outlier",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for BadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: the reason (a counter) and a lowercase message for people.
#[derive(Clone, Debug, PartialEq)]
pub struct BadEvent {
    pub reason: BadReason,
    pub message: String,
}

impl BadEvent {
    pub fn new(reason: BadReason, message: impl Into<String>) -> Self {
        BadEvent {
            reason,
            message: message.into(),
        }
    }
}

impl Prediction {
    /// Cache hints for decoding into this spent event soon: its lines
    /// asked for owned (they were last read on the engine's core). Its own
    /// fields an event before its parts ([`Event::claim`]).
    #[inline]
    fn claim_parts(&self) {
        prefetch_write_slice(&self.features, 8);
        prefetch_write_slice(&self.slices, 2);
        prefetch_write(self.trace_id.as_ptr());
        prefetch_write(self.prepared.ordinals.as_ptr());
    }

    /// Empties it for a decoder to read the next event into, keeping its
    /// buffers — but not one grown past what a producer's event needs (a
    /// hostile event's thousands of features are not held on to).
    pub fn reset(&mut self) {
        const KEEP_PAIRS: usize = 256;
        const KEEP_BYTES: usize = 256;
        // a spent event was last read on the engine's core: its lines are
        // asked for, owned, before any is written (else each write below
        // and in the decoder waits its turn for one) — if its reader has
        // not asked a few events ahead already (`claim`)
        prefetch_write_slice(std::slice::from_ref(self), 4);
        self.claim_parts();
        if self.trace_id.capacity() > KEEP_BYTES {
            self.trace_id = String::new();
        }
        if self.features.capacity() > KEEP_PAIRS {
            self.features = Vec::new();
        }
        if self.slices.capacity() > KEEP_PAIRS {
            self.slices = Vec::new();
        }
        if self.model_id.capacity() > KEEP_BYTES {
            self.model_id = Text::default();
        }
        self.trace_id.clear();
        self.model_id.clear();
        self.model_version = None;
        self.event_time = 0;
        self.features.clear();
        self.slices.clear();
        self.prediction = Scalar::Number(0.0);
        self.score = None;
        self.shadow = false;
        self.prepared.ordinals.clear();
        self.prepared.ids.clear();
        self.prepared.names = 0;
    }

    /// [`Prediction::reset`] but for its features and slices, kept as they
    /// are: for a reader that found their names the ones it reads (a
    /// learned shape's, an Avro datum's) and writes only the values.
    pub fn reset_keeping_names(&mut self) {
        let features = std::mem::take(&mut self.features);
        let slices = std::mem::take(&mut self.slices);
        self.reset();
        (self.features, self.slices) = (features, slices);
    }

    /// Checks what types cannot: non-empty ids, finite numbers, a score in
    /// [0, 1], an event time after the epoch and before 2100.
    pub fn validate(&self) -> Result<(), BadEvent> {
        check_ids(&self.trace_id, &self.model_id)?;
        check_time(self.event_time)?;
        check_unique("features", self.features.iter().map(|(k, _)| k.as_str()))?;
        check_unique("slices", self.slices.iter().map(|(k, _)| k.as_str()))?;
        for (name, v) in &self.features {
            if let Value::Number(x) = v
                && !x.is_finite()
            {
                return Err(BadEvent::new(
                    BadReason::NonFinite,
                    format!("feature `{name}` is {x}"),
                ));
            }
        }
        if let Scalar::Number(x) = self.prediction
            && !x.is_finite()
        {
            return Err(BadEvent::new(
                BadReason::NonFinite,
                format!("prediction is {x}"),
            ));
        }
        if let Some(s) = self.score {
            if !s.is_finite() {
                return Err(BadEvent::new(BadReason::NonFinite, format!("score is {s}")));
            }
            if !(0.0..=1.0).contains(&s) {
                return Err(BadEvent::new(
                    BadReason::ScoreOutOfRange,
                    format!("score {s} is outside [0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

impl Outcome {
    pub fn validate(&self) -> Result<(), BadEvent> {
        check_ids(&self.trace_id, &self.model_id)?;
        check_time(self.event_time)?;
        if let Scalar::Number(x) = self.label
            && !x.is_finite()
        {
            return Err(BadEvent::new(BadReason::NonFinite, format!("label is {x}")));
        }
        Ok(())
    }
}

impl Event {
    /// Cache hints for the spent events a reader decodes into next, last
    /// to first (`spares`, popped from its end): the next one's parts and
    /// the one after's own fields, asked for owned — they were last read
    /// on the engine's core, and a write to such a line waits for it.
    #[inline]
    pub fn claim(spares: &[Event]) {
        let n = spares.len();
        if let Some(Event::Prediction(p)) = n.checked_sub(1).map(|i| &spares[i]) {
            p.claim_parts();
        }
        if let Some(Event::Prediction(p)) = n.checked_sub(2).map(|i| &spares[i]) {
            prefetch_write_slice(std::slice::from_ref(&**p), 4);
        }
    }

    pub fn validate(&self) -> Result<(), BadEvent> {
        match self {
            Event::Prediction(p) => p.validate(),
            Event::Outcome(o) => o.validate(),
        }
    }
}

/// A key's length, first and last 8 bytes, mixed: equal keys have equal
/// fingerprints (a pair with equal ones is compared in full).
#[inline]
pub(crate) fn fingerprint(k: &str) -> u64 {
    let b = k.as_bytes();
    match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        (Some(h), Some(t)) => mix(b.len(), u64::from_le_bytes(*h), u64::from_le_bytes(*t)),
        _ => mix(b.len(), short_word(b), 0),
    }
}

/// [`fingerprint`] of `k` where it lies in `buf` (a decoder's bytes, `k`
/// a slice of them): a short key is read in one load of the eight bytes
/// that end it, the bytes before it shifted off — the same number.
#[inline]
pub(crate) fn fingerprint_in(buf: &[u8], k: &str) -> u64 {
    let b = k.as_bytes();
    let len = b.len();
    if len >= 8 {
        return fingerprint(k);
    }
    let end = (b.as_ptr() as usize)
        .checked_sub(buf.as_ptr() as usize)
        .map(|at| at + len)
        .filter(|&end| end <= buf.len() && end >= 8);
    let word = match end {
        Some(end) => {
            let w = u64::from_le_bytes(buf[end - 8..end].try_into().expect("eight bytes"));
            w.checked_shr(8 * (8 - len) as u32).unwrap_or(0)
        }
        None => short_word(b),
    };
    mix(len, word, 0)
}

/// Up to 8 bytes as a little-endian number.
#[inline]
fn short_word(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |w, &c| (w << 8) | u64::from(c))
}

#[inline]
fn mix(len: usize, head: u64, tail: u64) -> u64 {
    (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ head ^ tail.rotate_left(29)
}

/// A key given twice in `features` or `slices` is a bad event: which copy
/// counts would be a guess (JSON objects and Avro maps both allow it).
fn check_unique<'a>(
    what: &str,
    keys: impl ExactSizeIterator<Item = &'a str> + Clone,
) -> Result<(), BadEvent> {
    let n = keys.len();
    let dup = if n <= 16 {
        // a few keys: compare pairwise, no allocation — their fingerprints
        // first (equal keys have equal ones), the keys where those agree
        let (mut ks, mut prints) = ([""; 16], [0u64; 16]);
        for (i, k) in keys.clone().enumerate().take(16) {
            ks[i] = k;
            prints[i] = fingerprint(k);
        }
        let mut dup = None;
        'pairs: for i in 0..n {
            for j in i + 1..n {
                if prints[i] == prints[j] && ks[i] == ks[j] {
                    dup = Some(ks[i]);
                    break 'pairs;
                }
            }
        }
        dup
    } else {
        // many keys: sort their hashes in a buffer reused by the thread;
        // equal hashes are confirmed on the keys themselves
        use std::hash::BuildHasher;
        thread_local! {
            static HASHES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let build = rustc_hash::FxBuildHasher;
        HASHES.with_borrow_mut(|h| {
            h.clear();
            h.extend(keys.clone().map(|k| build.hash_one(k)));
            h.sort_unstable();
            let twice = h.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]);
            for x in twice {
                let same = keys.clone().filter(|k| build.hash_one(*k) == x);
                if let Some(k) = same
                    .clone()
                    .enumerate()
                    .find_map(|(i, k)| same.clone().skip(i + 1).any(|o| o == k).then_some(k))
                {
                    return Some(k);
                }
            }
            None
        })
    };
    match dup {
        Some(k) => Err(BadEvent::new(
            BadReason::DuplicateKey,
            format!("`{k}` is given twice in {what}"),
        )),
        None => Ok(()),
    }
}

fn check_ids(trace_id: &str, model_id: &str) -> Result<(), BadEvent> {
    if trace_id.trim().is_empty() {
        return Err(BadEvent::new(BadReason::EmptyTraceId, "trace_id is empty"));
    }
    if model_id.trim().is_empty() {
        return Err(BadEvent::new(BadReason::EmptyModelId, "model_id is empty"));
    }
    Ok(())
}

fn check_time(t: i64) -> Result<(), BadEvent> {
    if !(0..MAX_EVENT_TIME_MS).contains(&t) {
        return Err(BadEvent::new(
            BadReason::TimeOutOfRange,
            format!("event_time {t} is before the epoch or after 2100-01-01"),
        ));
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

// ---- serde -------------------------------------------------------------

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // unit, not none: JSON writes both as null, and an Avro union
            // of more than two branches (a feature's) takes only unit for it
            Value::Null => s.serialize_unit(),
            Value::Number(x) => s.serialize_f64(*x),
            Value::Text(t) => s.serialize_str(t),
            Value::Bool(b) => s.serialize_bool(*b),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, string, bool or null")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
                Ok(Value::Number(x))
            }
            fn visit_i64<E>(self, x: i64) -> Result<Value, E> {
                Ok(Value::Number(x as f64))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Value, E> {
                Ok(Value::Number(x as f64))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Text(s.into()))
            }
            fn visit_string<E>(self, s: String) -> Result<Value, E> {
                Ok(Value::Text(s.into()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::Number(x) => s.serialize_f64(*x),
            Scalar::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar::Number(if b { 1.0 } else { 0.0 }))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(x))
            }
            fn visit_i64<E>(self, x: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(x as f64))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(x as f64))
            }
            fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(s.into()))
            }
            fn visit_string<E>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(s.into()))
            }
        }
        d.deserialize_any(V)
    }
}

fn de_event_time<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("epoch milliseconds or an RFC 3339 timestamp")
        }
        fn visit_i64<E: de::Error>(self, x: i64) -> Result<i64, E> {
            Ok(x)
        }
        fn visit_u64<E: de::Error>(self, x: u64) -> Result<i64, E> {
            i64::try_from(x).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(x), &self))
        }
        fn visit_f64<E: de::Error>(self, x: f64) -> Result<i64, E> {
            if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
                Ok(x as i64)
            } else {
                Err(E::invalid_value(de::Unexpected::Float(x), &self))
            }
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
            parse_rfc3339_ms(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
        }
    }
    d.deserialize_any(V)
}

fn ser_pairs<S: Serializer, V: Serialize>(pairs: &[(Text, V)], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

struct PairsVisitor<V>(std::marker::PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
    type Value = Vec<(Text, V)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // the hint comes from the input (an Avro block count): never trust it for more than a few
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some((k, v)) = map.next_entry::<Text, V>()? {
            out.push((k, v));
        }
        Ok(out)
    }
}

fn de_features<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Text, Value)>, D::Error> {
    d.deserialize_map(PairsVisitor(std::marker::PhantomData))
}

fn de_slices<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Text, Text)>, D::Error> {
    d.deserialize_any(PairsVisitor(std::marker::PhantomData))
}

/// A cache hint (`sketch::prefetch`) for a line about to be written: it comes in owned, so
/// that the writes do not wait for another core to let it go (an event
/// decoded into again after the engine's core has read it).
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch_write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as `prefetch`: a hint that reads nothing and cannot fault
    // (`prefetchw`, in every x86_64 CPU this runs on; where it is not, a no-op).
    unsafe {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_ET0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch_write`] for the memory of `s`, up to `max_lines` cache lines of it.
#[inline(always)]
fn prefetch_write_slice<T>(s: &[T], max_lines: usize) {
    let p: *const u8 = s.as_ptr().cast();
    let bytes = std::mem::size_of_val(s).min(max_lines.saturating_mul(64));
    for line in (0..bytes).step_by(64) {
        prefetch_write(p.wrapping_add(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Keys alike at both ends, of one length or empty: refused exactly
        /// when one is given twice.
        #[test]
        fn a_key_given_twice_is_found_whatever_it_looks_like(
            keys in proptest::collection::vec("(feature_[ab]{0,3}_amount|x|)", 0..16),
        ) {
            let twice = keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
            let r = check_unique("features", keys.iter().map(String::as_str));
            proptest::prop_assert_eq!(r.is_err(), twice);
        }
    }

    /// A spent event is emptied for the next, and a hostile one's grown
    /// buffers are let go, not kept for every event after it.
    #[test]
    fn a_reset_prediction_is_empty_and_keeps_no_hostile_buffer() {
        let mut p = Prediction {
            trace_id: "t".repeat(10_000),
            model_id: "m".repeat(1_000).into(),
            model_version: Some("v".into()),
            event_time: 5,
            features: (0..100_000)
                .map(|i| (format!("f{i}").into(), Value::Null))
                .collect(),
            slices: vec![("r".into(), "eu".into())],
            prediction: Scalar::Text("yes".into()),
            score: Some(0.5),
            shadow: true,
            prepared: Default::default(),
        };
        p.reset();
        assert_eq!(p, Prediction::default());
        assert!(p.trace_id.capacity() <= 256 && p.features.capacity() <= 256);
        assert!(p.model_id.capacity() <= 256);
        let mut q = Prediction::default();
        q.features.reserve(8);
        q.trace_id.push_str("0123456789abcdef0123456789abcdef");
        let (features, trace) = (q.features.as_ptr(), q.trace_id.as_ptr());
        q.reset();
        // a producer's event keeps its buffers
        assert_eq!(
            (q.features.as_ptr(), q.trace_id.as_ptr()),
            (features, trace)
        );
    }

    #[test]
    fn a_key_given_twice_is_found_among_few_and_many() {
        for n in [3usize, 16, 17, 500] {
            let keys: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
            let it = || keys.iter().map(String::as_str);
            assert!(check_unique("features", it()).is_ok(), "{n} distinct keys");
            let mut twice = keys.clone();
            twice.push(format!("f{}", n / 2));
            let err = check_unique("features", twice.iter().map(String::as_str)).unwrap_err();
            assert_eq!(err.reason, BadReason::DuplicateKey);
            assert!(
                err.message.contains(&format!("`f{}`", n / 2)),
                "{}",
                err.message
            );
        }
    }
}
