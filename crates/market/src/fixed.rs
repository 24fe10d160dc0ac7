//! Fixed-point arithmetic in [`SCALE`] units (1.0 = 1,000,000).

use crate::SCALE;

/// Fractional bits computed by [`log2`].
const FRACTION_BITS: u32 = 24;

/// log2(x) in SCALE units, for x >= 1 (log2(0) is taken as 0). Exact integer
/// part; the fraction by repeated squaring, accurate to about 1e-6.
pub fn log2(x: u128) -> u64 {
    if x <= 1 {
        return 0;
    }
    let int = 127 - x.leading_zeros();
    // Mantissa in [1, 2) with 62 fractional bits.
    let mut m: u128 = if int >= 62 {
        x >> (int - 62)
    } else {
        x << (62 - int)
    };
    let mut frac: u64 = 0;
    for _ in 0..FRACTION_BITS {
        m = (m * m) >> 62;
        frac <<= 1;
        if m >= 1 << 63 {
            m >>= 1;
            frac |= 1;
        }
    }
    int as u64 * SCALE + ((frac as u128 * SCALE as u128) >> FRACTION_BITS) as u64
}

/// log10(x) in SCALE units.
pub fn log10(x: u128) -> u64 {
    /// log2(10) in SCALE units.
    const LOG2_10: u128 = 3_321_928;
    (log2(x) as u128 * SCALE as u128 / LOG2_10) as u64
}

/// `a * b / SCALE` without overflow for SCALE-unit values.
pub fn mul(a: u64, b: u64) -> u64 {
    (a as u128 * b as u128 / SCALE as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logarithms_of_powers_are_exact_and_others_close() {
        assert_eq!(log2(1), 0);
        assert_eq!(log2(2), SCALE);
        assert_eq!(log2(256), 8 * SCALE);
        assert_eq!(log2(1 << 100), 100 * SCALE);
        // log2(3) = 1.5849625
        assert!(log2(3).abs_diff(1_584_962) <= 1, "{}", log2(3));
        // log2(1000) = 9.9657843
        assert!(log2(1000).abs_diff(9_965_784) <= 1, "{}", log2(1000));
        assert!(log10(1000).abs_diff(3 * SCALE) <= 2, "{}", log10(1000));
        assert!(log10(10u128.pow(18)).abs_diff(18 * SCALE) <= 5);
        assert_eq!(log2(u128::MAX) / SCALE, 127);
    }

    #[test]
    fn logarithm_is_monotonic() {
        let mut prev = 0;
        for x in 1..5000u128 {
            let l = log2(x);
            assert!(l >= prev, "log2({x})");
            prev = l;
        }
    }
}
