//! A run of ASCII digits read eight bytes at a time (an event time's 13
//! digits: two words rather than 13 bytes).

/// Powers of ten as integers, to 10^7 (a word's digits less one).
const POW10_U64: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The eight bytes at `b[i..]` less `'0'` each (a digit's value where a
/// digit is), and how many digits lead them (8: all are); `None` when
/// fewer than eight bytes are left.
#[inline]
fn digit_word(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let w = u64::from_le_bytes(b.get(i..i.checked_add(8)?)?.try_into().ok()?);
    let t = w ^ 0x3030_3030_3030_3030;
    // a byte's high bit is set where it is not a digit (above 9 once `'0'`
    // is taken away); a carry out of a byte that is not a digit changes
    // only the bytes after it, which the count does not look at
    let not_digit = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
    Some((t, (not_digit.trailing_zeros() / 8) as usize))
}

/// The value of the first `n` (1 to 8) digits of a word from
/// [`digit_word`]: the rest shifted out, then two digits, four and eight
/// combined by three multiplications (the SWAR reading fast_float and
/// simdjson use).
#[inline]
fn digits_value(t: u64, n: usize) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    // the first digit is the lowest byte: what is shifted out is after
    // the run, and the zeros shifted in lead it
    let v = t << (64 - 8 * n as u32);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v = (v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2));
    u64::from((v >> 32) as u32)
}

/// The run of digits from `b[i]`, a word at a time: its value and length,
/// when it is shorter than 16 digits and has a whole word after its start
/// (and after its first eight digits); `None` otherwise (the caller reads
/// it a byte at a time).
#[inline]
pub(super) fn digit_run(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let (t, n) = digit_word(b, i)?;
    if n < 8 {
        return Some((if n == 0 { 0 } else { digits_value(t, n) }, n));
    }
    let (t2, n2) = digit_word(b, i + 8)?;
    if n2 == 8 {
        return None;
    }
    let low = if n2 == 0 { 0 } else { digits_value(t2, n2) };
    Some((digits_value(t, 8) * POW10_U64[n2] + low, 8 + n2))
}
