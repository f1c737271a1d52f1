//! The error function `erf`, behind exact GELU (`0.5 x (1 + erf(x / sqrt 2))`).
//!
//! In: an f32 or f64 value. Out: `erf` of it, two ways:
//!
//! - [`reference`]: libm's `erf` in f64 (accurate to about 1 ulp of f64): what the
//!   interpreter and constant folding compute (the oracle).
//! - the backends' formula, whose constants both code generators take from here and whose
//!   f32 operations, in order, [`model`] performs: for `|x| < SMALL` the odd Taylor series
//!   `x (c0 + c1 x² + .. + c5 x^10)` (truncation < 3e-8 relative), otherwise
//!   Abramowitz–Stegun 7.1.26, `sign(x) (1 - t (a1 + t (a2 + .. + t a5)) e^{-x²})` with
//!   `t = 1 / (1 + p |x|)` (absolute error ≤ 1.5e-7). In f32, rounding included, the
//!   formula is within 1e-6 relative of `erf` everywhere (tested), a tenth of the 1e-5
//!   the backends promise against the interpreter.
//!   PTX has no `erf` instruction and libm's would be a branchy call per lane on the CPU,
//!   so both backends run this one straight-line formula (both branches, then a select),
//!   and their results differ only by the rounding of their `exp`.

/// Below this `|x|` the Taylor branch; at and above it Abramowitz–Stegun.
pub const SMALL: f32 = 0.5;

/// Taylor coefficients of `erf(x) / x` in `x²`, highest first:
/// `2/√π (-1)^n / (n! (2n + 1))` for n = 5 down to 0.
pub const TAYLOR: [f32; 6] = [
    -0.000_854_832_7,
    0.005_223_977_6,
    -0.026_866_171,
    0.112_837_92,
    -0.376_126_39,
    std::f32::consts::FRAC_2_SQRT_PI,
];

/// Abramowitz–Stegun 7.1.26: `t = 1 / (1 + P |x|)`.
pub const AS_P: f32 = 0.327_591_1;
/// Its polynomial `a1 t + .. + a5 t^5` as `t (a1 + t (a2 + ..))`: a5 first, a1 last.
pub const AS_A: [f32; 5] = [1.061_405_4, -1.453_152, 1.421_413_7, -0.284_496_74, 0.254_829_6];

/// `erf(x)` to f64 precision: the interpreter's and constant folding's value.
pub fn reference(x: f64) -> f64 {
    libm::erf(x)
}

/// The backends' formula in Rust, with their `exp` passed in (the CPU calls Rust's
/// `f32::exp`, the PTX its own range-reduced one): the same operations in the same order.
pub fn model(x: f32, exp: impl Fn(f32) -> f32) -> f32 {
    let a = x.abs();
    let s = x * x;
    let mut p = TAYLOR[0];
    for &c in &TAYLOR[1..] {
        p = p.mul_add(s, c);
    }
    let small = x * p;
    let t = 1.0 / AS_P.mul_add(a, 1.0);
    let mut q = AS_A[0];
    for &c in &AS_A[1..] {
        q = q.mul_add(t, c);
    }
    let q = q * t;
    let big = 1.0 - q * exp(-s);
    let big = if x < 0.0 { -big } else { big };
    if a < SMALL {
        small
    } else {
        big
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_is_within_1e6_of_erf() {
        let mut worst = 0.0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let exact = reference(x as f64);
            let y = model(x, f32::exp) as f64;
            if x != 0.0 {
                worst = worst.max(((y - exact) / exact).abs());
            }
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        for x in [1e-30f32, 1e-8, 1e-4, -1e-4] {
            let exact = reference(x as f64);
            assert!(((model(x, f32::exp) as f64 - exact) / exact).abs() < 1e-7, "erf({x})");
        }
    }

    #[test]
    fn edges() {
        assert_eq!(model(0.0, f32::exp), 0.0);
        assert_eq!(model(-0.0, f32::exp).to_bits(), (-0.0f32).to_bits());
        assert_eq!(model(f32::INFINITY, f32::exp), 1.0);
        assert_eq!(model(f32::NEG_INFINITY, f32::exp), -1.0);
        assert_eq!(model(30.0, f32::exp), 1.0);
        assert!(model(f32::NAN, f32::exp).is_nan());
        assert_eq!(reference(0.0), 0.0);
        assert!((reference(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
    }
}
