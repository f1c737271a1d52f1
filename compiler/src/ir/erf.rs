//! The error function `erf`, behind exact GELU (`0.5 x (1 + erf(x / sqrt 2))`).
//!
//! In: an f32 or f64 value. Out: `erf` of it, two ways:
//!
//! - [`reference`]: libm's `erf` in f64 (accurate to about 1 ulp of f64): what the
//!   interpreter and constant folding compute (the oracle).
//! - the backends' formula, whose constants both code generators take from here and whose
//!   f32 operations, in order, [`model`] performs: a rational function of `x²`,
//!   `c P(c²) / Q(c²)` with `c = min(|x|, CLAMP)`, P and Q of degree 5, then at most 1
//!   and the sign of `x`. `scripts/fit_rational.py erf` fitted it to erf's relative
//!   error (Loeb's method) and reproduces these bits. In f32 with fma it is within
//!   3.3e-7 relative of `erf` everywhere (tested), a thirtieth of the 1e-5 the backends
//!   promise against the interpreter. It is straight-line code (no branch, no `exp`, one
//!   division): PTX has no `erf` instruction and libm's would be a branchy call per lane
//!   on the CPU. Both backends run it with fma, so their results are the same bits.

/// `|x|` beyond this is evaluated here (erf is 1 in f32 from about 3.92 on).
pub const CLAMP: f32 = 4.0;

/// `P`'s coefficients from `x⁰` up (`P(0)` is 2/√π in f32).
pub const P: [f32; 6] = [
    f32::from_bits(0x3f90_6ebb),
    f32::from_bits(0x3e43_c3a8),
    f32::from_bits(0x3d58_43f4),
    f32::from_bits(0x3b78_1cee),
    f32::from_bits(0x3994_6a08),
    f32::from_bits(0x3607_1bf1),
];

/// `Q`'s coefficients from `x⁰` up.
pub const Q: [f32; 6] = [
    1.0,
    f32::from_bits(0x3f00_b4c4),
    f32::from_bits(0x3dea_407e),
    f32::from_bits(0x3c75_ec86),
    f32::from_bits(0x3a98_7bbc),
    f32::from_bits(0x381d_c940),
];

/// `erf(x)` to f64 precision: the interpreter's and constant folding's value.
pub fn reference(x: f64) -> f64 {
    libm::erf(x)
}

/// `k[0] + k[1] s + ..` by Horner's rule with fma, highest coefficient first: the order
/// both backends evaluate it in (for `tanh`'s model too).
pub fn horner(k: &[f32], s: f32) -> f32 {
    let (last, rest) = k.split_last().expect("a polynomial has a coefficient");
    rest.iter().rev().fold(*last, |acc, &c| acc.mul_add(s, c))
}

/// The backends' formula in Rust: the same f32 operations in the same order.
pub fn model(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let c = x.abs().min(CLAMP);
    let s = c * c;
    let y = (c * horner(&P, s) / horner(&Q, s)).min(1.0);
    // erf(-0) = -0.
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_is_within_3_3e_7_of_erf() {
        let mut worst = 0.0f64;
        for i in -800_000..=800_000 {
            let x = i as f32 * 1e-5;
            let exact = reference(x as f64);
            let y = model(x) as f64;
            if x != 0.0 {
                worst = worst.max(((y - exact) / exact).abs());
            }
            assert!(y.abs() <= 1.0, "|erf({x})| = {y} > 1");
        }
        assert!(worst < 3.3e-7, "worst relative error {worst}");
        for x in [1e-30f32, 1e-8, 1e-4, -1e-4, 1e-3] {
            let exact = reference(x as f64);
            assert!(((model(x) as f64 - exact) / exact).abs() < 2.5e-7, "erf({x})");
        }
    }

    #[test]
    fn edges() {
        assert_eq!(model(0.0), 0.0);
        assert_eq!(model(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(model(f32::INFINITY), 1.0);
        assert_eq!(model(f32::NEG_INFINITY), -1.0);
        assert_eq!(model(3.92), 1.0);
        assert_eq!(model(30.0), 1.0);
        assert!(model(f32::NAN).is_nan());
        assert_eq!(reference(0.0), 0.0);
        assert!((reference(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
    }
}
