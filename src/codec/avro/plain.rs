//! A prediction written with the shipped schema (`schemas/prediction.avsc`,
//! compared in its Parsing Canonical Form, so the same binary layout), read
//! straight into an event whose buffers are reused.
//!
//! Nearly every producer writes with the contract's own schema. For that
//! one layout the fields come in a known order with known types, so a
//! datum is read here in one pass with no deserializer between the bytes
//! and the fields, into an event already applied (its trace id, features
//! and slices keep their memory: nothing is allocated). Anything this
//! reader is unsure of — a varint longer than a long, a negative length,
//! text that is not UTF-8, a union branch or boolean byte out of range, a
//! map block written with its byte size, bytes running out — is not read
//! here at all: [`read_prediction`] says `None` and the caller reads the
//! datum with serde_avro_fast, whose result (or error) is the datum's. So
//! this reader never accepts what serde_avro_fast refuses, and what it
//! accepts it reads to the same values (a proptest holds the two equal,
//! over encoded predictions and over their bytes changed at random).
//!
//! What [`Prediction::validate`] checks is seen as the datum is read
//! (`codec::vouch`): a datum that passes needs no second pass.

use crate::codec::vouch::Seen;
use crate::event::{Prediction, Scalar, Text, Value};

/// Reads the datum at the start of `bytes` into `p`; the bytes it took, or
/// `None` when it is not read here (`p` then holds a part of it).
#[cfg(test)]
pub fn prediction_into(bytes: &[u8], p: &mut Prediction) -> Option<usize> {
    read_prediction(bytes, p).map(|(used, _)| used)
}

/// Reads the datum at the start of `bytes` into `p`: the bytes it took, and
/// whether the event passes every check of [`Prediction::validate`] as
/// seen while it was read (false: not sure; `validate` decides). `None`
/// when it is not read here (`p` then holds a part of it).
pub fn read_prediction(bytes: &[u8], p: &mut Prediction) -> Option<(usize, bool)> {
    let mut d = Datum { b: bytes, at: 0 };
    let mut seen = Seen::default();
    // a spent event whose names a datum gave, vouched for: a name equal to
    // the one in its place is kept (not checked, noted or copied again)
    let same = p.prepared.names == NAMES;
    if same {
        p.reset_keeping_names();
    } else {
        p.reset();
    }
    p.trace_id.push_str(d.string()?);
    p.model_id.push_str(d.string()?);
    p.model_version = match d.long()? {
        0 => None,
        1 => Some(Text::from(d.string()?)),
        _ => return None,
    };
    p.event_time = d.long()?;
    let mut named = Named::new(same);
    d.map(|d| {
        let name = d.bytes()?;
        let value = match d.long()? {
            0 => Value::Null,
            1 => Value::Number(d.double()?),
            2 => Value::Text(Text::from(d.string()?)),
            3 => Value::Bool(d.boolean()?),
            _ => return None,
        };
        match named.place(&mut p.features, name) {
            Some(at) => at.1 = value,
            None => {
                let name = utf8(name)?;
                seen.feature(bytes, name);
                p.features.push((Text::from(name), value));
            }
        }
        Some(())
    })?;
    if let Some(n) = named.end(&mut p.features, |n| seen.feature(n.as_bytes(), n)) {
        seen.features_given_once(n);
    }
    let mut named = Named::new(same);
    d.map(|d| {
        let name = d.bytes()?;
        let value = d.string()?;
        match named.place(&mut p.slices, name) {
            Some(at) => at.1 = Text::from(value),
            None => {
                let name = utf8(name)?;
                seen.slice(bytes, name);
                p.slices.push((Text::from(name), Text::from(value)));
            }
        }
        Some(())
    })?;
    if let Some(n) = named.end(&mut p.slices, |n| seen.slice(n.as_bytes(), n)) {
        seen.slices_given_once(n);
    }
    p.prediction = match d.long()? {
        0 => Scalar::Number(d.double()?),
        1 => Scalar::Text(Text::from(d.string()?)),
        _ => return None,
    };
    p.score = match d.long()? {
        0 => None,
        1 => Some(d.double()?),
        _ => return None,
    };
    p.shadow = d.boolean()?;
    let valid = seen.valid(p);
    p.prepared.names = if valid { NAMES } else { 0 };
    Some((d.at, valid))
}

/// `Prepared::names` of an event whose names this reader gave and vouched
/// for (given once each); a learned JSON shape's stamps count up from 1.
const NAMES: u64 = u64::MAX;

/// A map's names compared, place by place, with those a spent event holds
/// (`same`: names this reader gave and vouched for). While each is equal
/// the entry is the held one (its name kept, its value to be written); at
/// the first that is not, the held entries from it on are dropped, and
/// every name after is read anew.
struct Named {
    same: bool,
    /// Entries read so far.
    at: usize,
    /// Held names kept (the first `kept` entries).
    kept: usize,
}

impl Named {
    fn new(same: bool) -> Named {
        Named {
            same,
            at: 0,
            kept: 0,
        }
    }

    /// The held entry named `name` at the next place, if the names so far
    /// were all the held ones; `None`: push the entry.
    #[inline]
    fn place<'e, V>(
        &mut self,
        held: &'e mut Vec<(Text, V)>,
        name: &[u8],
    ) -> Option<&'e mut (Text, V)> {
        let at = self.at;
        self.at += 1;
        if !self.same {
            return None;
        }
        if held
            .get(at)
            .is_some_and(|(n, _)| crate::codec::same_bytes(n.as_bytes(), name))
        {
            self.kept += 1;
            return held.get_mut(at);
        }
        // another name (or more than were held): the rest are read anew
        self.same = false;
        held.truncate(at);
        None
    }

    /// After the map: when every name was the held one, drops the held
    /// entries past the last read and says how many names there are
    /// (`Some`: a part of names given once each); else notes the kept
    /// names with `note` (those after were noted as read) and says `None`.
    #[inline]
    fn end<V>(&self, held: &mut Vec<(Text, V)>, mut note: impl FnMut(&str)) -> Option<usize> {
        if self.same {
            held.truncate(self.at);
            return Some(self.at);
        }
        for (n, _) in &held[..self.kept] {
            note(n);
        }
        None
    }
}

struct Datum<'a> {
    b: &'a [u8],
    at: usize,
}

/// `b` as text, if it is UTF-8. An event's strings are short (ids, names,
/// categories: 2–40 bytes, ~25 an event) and nearly always ASCII:
/// `str::from_utf8`, a call that walks a short string a byte at a time,
/// was ~1,140 instructions an event of the reader's (cachegrind,
/// docs/performance.md); an inline ASCII check settles those, and
/// anything else is validated in full.
#[inline(always)]
#[allow(unsafe_code)]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

impl<'a> Datum<'a> {
    /// A zig-zag varint of at most ten bytes whose value fits a long.
    /// Most of a datum's are one byte (union branches, string lengths,
    /// map block counts: ~40 a prediction), read without the loop.
    #[inline]
    fn long(&mut self) -> Option<i64> {
        let byte = *self.b.get(self.at)?;
        if byte & 0x80 == 0 {
            self.at += 1;
            return Some(i64::from(byte >> 1) ^ -i64::from(byte & 1));
        }
        self.long_past_a_byte()
    }

    /// [`Datum::long`] of two bytes or more.
    #[inline(never)]
    fn long_past_a_byte(&mut self) -> Option<i64> {
        let mut x = 0u64;
        for i in 0..10 {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            x |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                // the tenth byte holds the long's last bit only
                if i == 9 && byte > 1 {
                    return None;
                }
                return Some((x >> 1) as i64 ^ -((x & 1) as i64));
            }
        }
        None
    }

    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.long()?).ok()?;
        let end = self.at.checked_add(n)?;
        let s = utf8(self.b.get(self.at..end)?)?;
        self.at = end;
        Some(s)
    }

    /// A string's bytes, not checked for UTF-8.
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.long()?).ok()?;
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    #[inline]
    fn double(&mut self) -> Option<f64> {
        let end = self.at + 8;
        let x = f64::from_le_bytes(self.b.get(self.at..end)?.try_into().ok()?);
        self.at = end;
        Some(x)
    }

    #[inline]
    fn boolean(&mut self) -> Option<bool> {
        let b = match *self.b.get(self.at)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        self.at += 1;
        Some(b)
    }

    /// A map's blocks, each entry read by `entry`. Every entry takes a
    /// byte at least, so a hostile count ends with the bytes.
    fn map(&mut self, mut entry: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        loop {
            match self.long()? {
                0 => return Some(()),
                n if n > 0 => {
                    for _ in 0..n {
                        entry(self)?;
                    }
                }
                // a block with its byte size: left to serde_avro_fast
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::StreamKind;
    use crate::codec::avro::{DatumDecoder, encode, schemas};
    use crate::event::Event;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z_]{0,12}",
            1 => "[a-zé😀 ]{20,40}",
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => -1e6f64..1e6,
            1 => any::<f64>(),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            1 => Just(Value::Null),
            4 => number().prop_map(Value::Number),
            2 => text().prop_map(|t| Value::Text(t.into())),
            1 => any::<bool>().prop_map(Value::Bool),
        ]
    }

    prop_compose! {
        fn prediction()(
            trace in text(),
            model in text(),
            version in proptest::option::of(text()),
            time in any::<i64>(),
            features in proptest::collection::vec((text(), value()), 0..12),
            slices in proptest::collection::vec((text(), text()), 0..4),
            out in prop_oneof![number().prop_map(Scalar::Number), text().prop_map(|t| Scalar::Text(t.into()))],
            score in proptest::option::of(number()),
            shadow in any::<bool>(),
        ) -> Prediction {
            Prediction {
                trace_id: trace,
                model_id: model.into(),
                model_version: version.map(Into::into),
                event_time: time,
                features: features.into_iter().map(|(k, v)| (k.into(), v)).collect(),
                slices: slices.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                prediction: out,
                score,
                shadow,
                prepared: Default::default(),
            }
        }
    }

    /// What serde_avro_fast reads the bytes to, or its error.
    fn theirs(bytes: &[u8]) -> Result<(String, usize), String> {
        let s = schemas().unwrap();
        let d = DatumDecoder::new(StreamKind::Predictions, &s.prediction).unwrap();
        d.read_general(bytes)
            .map(|(ev, used)| (format!("{ev:?}"), used))
            .map_err(|e| e.message)
    }

    fn ours(bytes: &[u8], into: &mut Prediction) -> Option<(String, usize)> {
        let used = prediction_into(bytes, into)?;
        Some((
            format!("{:?}", Event::Prediction(Box::new(into.clone()))),
            used,
        ))
    }

    proptest! {
        /// A long reads as the zig-zag varint it was written as, whatever
        /// its length (one byte, negative or not, or up to ten) and what
        /// follows it; cut short, it is refused.
        #[test]
        fn longs_read_as_written(
            v in prop_oneof![-64i64..64, any::<i64>()],
            after in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            use integer_encoding::VarInt;
            let mut b = v.encode_var_vec();
            let n = b.len();
            b.extend_from_slice(&after);
            let mut d = Datum { b: &b, at: 0 };
            prop_assert_eq!(d.long(), Some(v));
            prop_assert_eq!(d.at, n);
            let mut cut = Datum { b: &b[..n - 1], at: 0 };
            prop_assert_eq!(cut.long(), None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// A datum of the shipped schema reads here, into an event left from
        /// another, to what serde_avro_fast reads it to (bit for bit).
        #[test]
        fn reads_what_serde_avro_fast_reads(before in prediction(), p in prediction()) {
            let s = schemas().unwrap();
            let bytes = encode(&s.prediction, &p).unwrap();
            let mut into = before;
            let got = ours(&bytes, &mut into);
            prop_assert!(got.is_some());
            prop_assert_eq!(Ok(got.unwrap()), theirs(&bytes));
        }

        /// A datum vouched for as it is read passes every check of
        /// `Prediction::validate` (times mostly in range here, so that the
        /// other checks are reached); one that passes them all, with ids
        /// starting with printable ASCII and at most 16 features, is
        /// vouched for.
        #[test]
        fn what_is_vouched_for_is_valid(
            mut p in prediction(),
            time in prop_oneof![4 => 0i64..4_102_444_800_000, 1 => any::<i64>()],
        ) {
            p.event_time = time;
            let s = schemas().unwrap();
            let bytes = encode(&s.prediction, &p).unwrap();
            let mut into = Prediction::default();
            let (_, valid) = read_prediction(&bytes, &mut into).unwrap();
            let plain_ids = [p.trace_id.as_str(), p.model_id.as_str()]
                .iter()
                .all(|id| id.as_bytes().first().is_some_and(u8::is_ascii_graphic));
            if valid {
                prop_assert_eq!(into.validate(), Ok(()));
            } else if plain_ids && p.features.len() <= 16 {
                prop_assert!(into.validate().is_err(), "not vouched for: {:?}", into);
            }
        }

        /// A datum read into an event this reader read before — the same
        /// names, a part of them, more, others, or one twice — reads to
        /// what serde_avro_fast reads it to, and is vouched for only if it
        /// passes every check.
        #[test]
        fn reads_into_its_own_spent_event_as_into_any(
            mut first in prediction(),
            mut second in prediction(),
            keep in (0usize..14, 0usize..5),
            twice in proptest::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
            values in proptest::collection::vec(value(), 14),
        ) {
            // the first's names (some of them) before the second's own
            let features: Vec<(Text, Value)> = first.features.iter().take(keep.0).map(|(n, _)| n.clone()).zip(values)
                .chain(second.features.drain(..)).collect();
            let slices: Vec<(Text, Text)> = first.slices.iter().take(keep.1).map(|(n, _)| (n.clone(), Text::from("v")))
                .chain(second.slices.drain(..)).collect();
            second.features = features;
            second.slices = slices;
            if let Some((from, to)) = twice && !second.features.is_empty() {
                let n = second.features.len();
                second.features[to.index(n)].0 = second.features[from.index(n)].0.clone();
            }
            // both valid but for their names, mostly (the first vouched
            // for: its names kept)
            for p in [&mut first, &mut second] {
                p.event_time = 1_767_225_600_000;
                p.trace_id = "t".into();
                p.model_id = "m".into();
                p.score = None;
                p.prediction = Scalar::Number(1.0);
            }
            let s = schemas().unwrap();
            let mut into = Prediction::default();
            prop_assert!(ours(&encode(&s.prediction, &first).unwrap(), &mut into).is_some());
            let bytes = encode(&s.prediction, &second).unwrap();
            let (_, valid) = read_prediction(&bytes, &mut into).unwrap();
            let mut fresh = Prediction::default();
            let (_, valid_fresh) = read_prediction(&bytes, &mut fresh).unwrap();
            prop_assert_eq!(valid, valid_fresh);
            prop_assert_eq!(format!("{into:?}"), format!("{fresh:?}"));
            let again = ours(&bytes, &mut into);
            prop_assert_eq!(Ok(again.unwrap()), theirs(&bytes));
            if valid {
                prop_assert_eq!(into.validate(), Ok(()));
            }
        }

        /// Bytes changed, cut or added at random: read here only to what
        /// serde_avro_fast reads them to, never what it refuses.
        #[test]
        fn never_reads_what_serde_avro_fast_refuses(
            p in prediction(),
            changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            tail in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            let s = schemas().unwrap();
            let mut bytes = encode(&s.prediction, &p).unwrap();
            for (at, b) in changes {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if let Some(c) = cut {
                bytes.truncate(c.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            if let Some(got) = ours(&bytes, &mut Prediction::default()) {
                prop_assert_eq!(Ok(got), theirs(&bytes));
            }
        }
    }

    /// Text is what `str::from_utf8` says it is, the ASCII shortcut or not:
    /// short and long, a multi-byte character anywhere, and bytes that are
    /// not UTF-8 (a lone continuation byte, a cut sequence, an overlong one).
    #[test]
    fn text_is_utf8_as_std_reads_it() {
        let long = "abcdefghijklmnopqrstuvwxyz0123456789";
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"eu".to_vec(),
            long.as_bytes().to_vec(),
            "München".as_bytes().to_vec(),
            format!("{long}😀").into_bytes(),
            vec![0x80],
            b"abc\xe2\x82".to_vec(),
            vec![b'a', 0xc0, 0xaf],
            vec![0xff; 20],
        ];
        for at in [0, 7, 8, 15, 35] {
            let mut b = long.as_bytes().to_vec();
            b[at] = 0x9f;
            cases.push(b);
        }
        for b in cases {
            assert_eq!(utf8(&b), std::str::from_utf8(&b).ok(), "{b:?}");
        }
    }

    /// Lengths, counts and varints at their edges are left to serde_avro_fast.
    #[test]
    fn what_it_is_unsure_of_is_left() {
        let mut p = Prediction::default();
        // an eleven-byte varint, a negative length, a block with its size
        assert!(prediction_into(&[0xff; 11], &mut p).is_none());
        assert!(prediction_into(&[0x01, b'a'], &mut p).is_none());
        let s = schemas().unwrap();
        let mut q = Prediction::default();
        q.features.push(("a".into(), Value::Number(1.0)));
        let bytes = encode(&s.prediction, &q).unwrap();
        assert!(prediction_into(&bytes, &mut p).is_some());
        // the same features as one block of -1 entries and its byte size
        let at = 4;
        assert_eq!(bytes[at], 0x02);
        let mut sized = bytes[..at].to_vec();
        sized.extend([0x01, 0x16]);
        sized.extend(&bytes[at + 1..]);
        assert!(prediction_into(&sized, &mut p).is_none());
        assert!(theirs(&sized).is_ok(), "{:?}", theirs(&sized));
    }
}
