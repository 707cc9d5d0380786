//! Decoding bytes into events: JSON and Avro. A decode failure is a
//! [`BadEvent`](crate::event::BadEvent) with a reason, never a panic.

pub mod avro;
pub mod confluent;
pub mod container;
pub mod json;
mod vouch;

/// Which contract a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Predictions,
    Outcomes,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Predictions => "predictions",
            StreamKind::Outcomes => "outcomes",
        }
    }
}

/// `a == b`, without a call to `memcmp` for names of up to 32 bytes (a
/// model's, a feature's, a slice dimension's or value's, a version): two
/// or four overlapping words compared, or up to three bytes one by one.
/// An event's names are compared with the ones its model's last event had
/// at each place, a dozen an event (past 16 bytes, `memcmp` had been ~1 %
/// of the engine's thread: versions and longer feature names; below 4
/// bytes — "v7", "age", "US" — ~20 instructions a call, ~100 an event of
/// the reader's from Avro). Here, below the registry and the engine, for
/// the decoders too.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] of bytes (a datum's names, not yet checked for UTF-8).
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        // the first, middle and last bytes: every byte of up to three
        0 => true,
        1..4 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `same` is `==`: strings of every length up to past 16 bytes,
        /// equal, of equal length and differing in one byte anywhere, or of
        /// different lengths.
        #[test]
        fn same_is_equality(a in "[a-c]{0,40}", at in 0usize..40, other in "[a-c]{0,40}") {
            prop_assert!(same(&a, &a.clone()));
            prop_assert_eq!(same(&a, &other), a == other);
            if !a.is_empty() {
                let mut b = a.clone().into_bytes();
                let k = at % b.len();
                b[k] = b'd';
                let b = String::from_utf8(b).unwrap();
                prop_assert!(!same(&a, &b));
            }
        }
    }
}
