//! What a one-pass reader sees of a prediction as it reads it, to vouch for
//! the event without [`Prediction::validate`]'s second pass over it: ids
//! that are not blank, a time in range, a score in [0, 1], finite numbers,
//! feature and slice names each given once (by their fingerprints, taken
//! from the bytes being read). An event it cannot vouch for — a check
//! failed, or one not quick to see here (an id that starts with a space or
//! a character beyond ASCII, more names than are noted, two fingerprints
//! alike) — is validated as before, so a bad event's reason and message
//! are the same either way.

use crate::event::{MAX_EVENT_TIME_MS, Prediction, Scalar, Value, fingerprint_in};

/// Noted while a prediction is read.
#[derive(Default)]
pub(crate) struct Seen {
    features: Prints,
    slices: Prints,
}

impl Seen {
    /// A feature's name, a slice of `buf` (the bytes being read).
    #[inline]
    pub(crate) fn feature(&mut self, buf: &[u8], name: &str) {
        self.features.add(buf, name);
    }

    /// A slice dimension's name, a slice of `buf`.
    #[inline]
    pub(crate) fn slice(&mut self, buf: &[u8], name: &str) {
        self.slices.add(buf, name);
    }

    /// The event's `n` feature names are a part of names vouched for as
    /// given once each (a spent event's, kept): none is noted.
    #[inline]
    pub(crate) fn features_given_once(&mut self, n: usize) {
        self.features.vouch(n);
    }

    /// [`Seen::features_given_once`] for the slice dimensions' names.
    #[inline]
    pub(crate) fn slices_given_once(&mut self, n: usize) {
        self.slices.vouch(n);
    }

    /// Whether `p` (read with these names noted) passes every check of
    /// [`Prediction::validate`] — true only when that is sure.
    #[inline]
    pub(crate) fn valid(&self, p: &Prediction) -> bool {
        values_valid(p)
            && self.features.distinct(p.features.len())
            && self.slices.distinct(p.slices.len())
    }
}

/// [`Seen::valid`]'s checks of `p`'s values, for a prediction whose
/// feature and slice names are known to be given once each (those of a
/// line vouched for: `codec::json::plain::Shape`).
#[inline]
pub(crate) fn values_valid(p: &Prediction) -> bool {
    graphic_first(&p.trace_id)
        && graphic_first(&p.model_id)
        && (0..MAX_EVENT_TIME_MS).contains(&p.event_time)
        && p.score.is_none_or(|s| (0.0..=1.0).contains(&s))
        && match p.prediction {
            Scalar::Number(x) => x.is_finite(),
            Scalar::Text(_) => true,
        }
        && p.features.iter().all(|(_, v)| match v {
            Value::Number(x) => x.is_finite(),
            _ => true,
        })
}

/// Its first byte is printable ASCII (not a space): not blank when trimmed.
#[inline]
fn graphic_first(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_graphic)
}

/// Up to [`Prints::MAX`] names' fingerprints (equal names have equal ones).
struct Prints {
    prints: [u64; Prints::MAX],
    n: usize,
    /// The `n` names are known to be given once each (none noted).
    vouched: bool,
}

impl Default for Prints {
    fn default() -> Prints {
        Prints {
            prints: [0; Prints::MAX],
            n: 0,
            vouched: false,
        }
    }
}

impl Prints {
    const MAX: usize = 16;

    #[inline]
    fn add(&mut self, buf: &[u8], name: &str) {
        if let Some(slot) = self.prints.get_mut(self.n) {
            *slot = fingerprint_in(buf, name);
        }
        self.n += 1;
    }

    /// `n` names known to be given once each, none noted.
    #[inline]
    fn vouch(&mut self, n: usize) {
        self.n = n;
        self.vouched = true;
    }

    /// No two fingerprints are equal (so no two names are), over the `n`
    /// names the event holds — all of them noted (or vouched for), or false.
    #[inline]
    fn distinct(&self, n: usize) -> bool {
        if self.vouched {
            return self.n == n;
        }
        if self.n != n || n > Self::MAX {
            return false;
        }
        let p = &self.prints[..n];
        for i in 1..n {
            for j in 0..i {
                if p[i] == p[j] {
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A name's fingerprint is the same wherever it lies (at a
        /// buffer's start, its end, or alone): equal names, equal prints.
        #[test]
        fn a_name_prints_the_same_wherever_it_lies(
            name in "[a-z_é]{0,20}",
            before in "[ -~]{0,12}",
            after in "[ -~]{0,12}",
        ) {
            let buf = format!("{before}{name}{after}");
            let inside = &buf[before.len()..before.len() + name.len()];
            prop_assert_eq!(fingerprint_in(buf.as_bytes(), inside), crate::event::fingerprint(&name));
        }
    }

    #[test]
    fn different_short_names_print_differently() {
        let buf = b"{\"ab\":1,\"b\":2,\"ba\":3}";
        let text = std::str::from_utf8(buf).unwrap();
        let prints: Vec<u64> = [(2, 4), (9, 10), (14, 16)]
            .iter()
            .map(|&(a, b)| fingerprint_in(buf, &text[a..b]))
            .collect();
        assert_ne!(prints[0], prints[1]);
        assert_ne!(prints[0], prints[2]);
        assert_ne!(prints[1], prints[2]);
    }
}
