//! `exp`, `log`, `tanh` and `erf` in PTX, as straight-line code (no branches, no `.approx`).
//!
//! `ex2.approx` / `lg2.approx` are fast but their error grows with the argument (for
//! `exp(x) = ex2(x·log2 e)` the rounding of the product alone costs `|x|·2^-24`), so each
//! function is a range reduction plus a polynomial, all in IEEE `f32` (`.rn`) arithmetic
//! and `fma`:
//!
//! - `exp`: `n = rint(x·log2 e)`, `r = x - n·ln2` (two-constant Cody-Waite, with fma), a
//!   degree-7 Taylor polynomial of `e^r` on `|r| ≤ ln2/2` (truncation < 6e-9), then scaling
//!   by `2^n` as two exact powers of two built from bits (so overflow to `inf` comes out
//!   right). A result below the smallest normal f32 is 0, as with `ex2.approx.ftz` and
//!   XLA's flush-to-zero CPU code: making a subnormal costs an x86 core a microcode assist
//!   (a masked softmax's padded scores made its exp loop twice as slow), and the 1.2e-38
//!   it loses is below every tolerance a model's numbers have.
//! - `log`: `x = m·2^e` with `m` in `[√½, √2)` (subnormals scaled by `2^23` first), then
//!   fdlibm's `logf` kernel: `s = f/(2+f)`, `R(s²)` of degree 7, and
//!   `e·ln2_hi - ((hfsq - (s·(hfsq+R) + e·ln2_lo)) - f)`.
//! - `tanh`: `sign(x)·c·P(c²)/Q(c²)` with `c = min(|x|, 7.905)` and `P`, `Q` of degree 4
//!   fitted to tanh's relative error (2.9e-7 at most in f32, 1.6e-7 below 1e-3), 1 from
//!   `|x| = 9` on: one division, no `exp` (it was `1 - 2/(e^{2|x|} + 1)` and a Taylor
//!   series, both computed, twice the instructions).
//! - `erf`: `ir::erf`'s formula, the same shape as `tanh` (`P`, `Q` of degree 5,
//!   `c = min(|x|, 4)`, then at most 1): it was a Taylor series and Abramowitz–Stegun
//!   7.1.26 with an `exp`, both computed, then a select. The CPU runs the same formula
//!   with fma, so the backends agree bit for bit (`ir::erf` tests it against f64).
//!
//! Every function here has a Rust model ([`exp_model`], [`log_model`], [`tanh_model`])
//! performing the same `f32` operations in the same order; the tests check the models
//! against `f64` and against Rust's `f32` functions (what the CPU backend calls) to
//! 1e-6 relative, so the PTX text and the CPU agree within the 1e-5 the backends promise.

use super::Body;
use crate::ir::erf as erf_formula;

pub(crate) const LOG2E: u32 = 0x3FB8_AA3B; // 1.442695
pub(crate) const LN2_HI: f32 = f32::from_bits(0x3F31_7200); // 0.69314575: exact times any |n| <= 2^15
pub(crate) const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E); // 1.4286068e-6
/// Taylor coefficients of e^r, 1/7! .. 1/0!.
pub(crate) const EXP_C: [f32; 8] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// The smallest argument whose `exp` is a normal f32 (`ln(f32::MIN_POSITIVE)`, rounded
/// up): below it `exp` is 0 (see the module doc), and arguments are clamped to it.
pub(crate) const EXP_LO: f32 = -87.336_54;
pub(crate) const EXP_HI: f32 = 89.0;

/// fdlibm `logf` constants (Lg1..Lg7, by their bits).
pub(crate) const LG: [f32; 7] = [
    f32::from_bits(0x3f2a_aaab),
    f32::from_bits(0x3ecc_cccd),
    f32::from_bits(0x3e92_4925),
    f32::from_bits(0x3e63_8e29),
    f32::from_bits(0x3e3a_3325),
    f32::from_bits(0x3e1c_d04f),
    f32::from_bits(0x3e17_8897),
];
pub(crate) const LOG_LN2_HI: f32 = f32::from_bits(0x3f31_7180);
pub(crate) const LOG_LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
pub(crate) const SQRT_HALF_BITS: i32 = 0x3F35_04F3;

/// `tanh(x) = x P(x²) / Q(x²)` for `|x|` up to [`TANH_CLAMP`], coefficients of `x⁰` up,
/// fitted to tanh's relative error in f32 with fma (largest 2.9e-7 over the whole
/// line, 1.6e-7 below 1e-3) by `scripts/fit_rational.py tanh`: one division and no `exp`.
pub(crate) const TANH_P: [f32; 5] = [
    1.0,
    f32::from_bits(0x3e09_c819),
    f32::from_bits(0x3b6a_ea3e),
    f32::from_bits(0x37b9_879f),
    f32::from_bits(0x3285_b572),
];
pub(crate) const TANH_Q: [f32; 5] = [
    1.0,
    f32::from_bits(0x3eef_8eb6),
    f32::from_bits(0x3cd6_bcf2),
    f32::from_bits(0x39b3_fa1e),
    f32::from_bits(0x3568_48d6),
];
/// Where the fit ends (`|x|` is clamped to it), and from where `tanh` is 1 in f32.
pub(crate) const TANH_CLAMP: f32 = 7.905_311;
pub(crate) const TANH_ONE: f32 = 9.0;

fn fconst(v: f32) -> String {
    format!("0f{:08X}", v.to_bits())
}

/// 2^k for k in [-126, 127], from bits.
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// The `exp` the PTX computes, in Rust.
pub fn exp_model(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let xc = x.clamp(EXP_LO, EXP_HI);
    let n = (xc * f32::from_bits(LOG2E)).round_ties_even();
    let r = n.mul_add(-LN2_HI, xc);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP_C[0];
    for &c in &EXP_C[1..] {
        p = p.mul_add(r, c);
    }
    let ni = n as i32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    if x < EXP_LO {
        return 0.0;
    }
    p * pow2(n1) * pow2(n2)
}

/// The `log` the PTX computes, in Rust.
pub fn log_model(x: f32) -> f32 {
    let sub = x < f32::MIN_POSITIVE;
    let xm = if sub { x * 8_388_608.0 } else { x };
    let bits = xm.to_bits() as i32;
    let e = bits.wrapping_sub(SQRT_HALF_BITS) >> 23;
    let m = f32::from_bits(bits.wrapping_sub(e << 23) as u32);
    let e = (e + if sub { -23 } else { 0 }) as f32;
    let f = m - 1.0;
    let s = f / (m + 1.0);
    let z = s * s;
    let mut q = LG[6];
    for &c in LG[..6].iter().rev() {
        q = q.mul_add(z, c);
    }
    let r = z * q;
    let hfsq = f * f * 0.5;
    let t = s.mul_add(hfsq + r, e * LOG_LN2_LO);
    let mut y = e.mul_add(LOG_LN2_HI, -((hfsq - t) - f));
    if x == f32::INFINITY {
        y = f32::INFINITY;
    }
    if x == 0.0 {
        y = f32::NEG_INFINITY;
    }
    if x < 0.0 || x.is_nan() {
        y = f32::NAN;
    }
    y
}

/// The `tanh` the PTX computes, in Rust.
pub fn tanh_model(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let c = if a < TANH_CLAMP { a } else { TANH_CLAMP };
    let s = c * c;
    let y = c * erf_formula::horner(&TANH_P, s) / erf_formula::horner(&TANH_Q, s);
    let y = if a >= TANH_ONE { 1.0 } else { y };
    // tanh(-0) = -0.
    y.copysign(x)
}

/// `y = exp(x)`; returns y's register.
pub(super) fn exp(b: &mut Body, x: &str) -> String {
    let xc = b.f();
    b.op(format!("max.f32 {xc}, {x}, {};", fconst(EXP_LO)));
    b.op(format!("min.f32 {xc}, {xc}, {};", fconst(EXP_HI)));
    let n = b.f();
    b.op(format!("mul.rn.f32 {n}, {xc}, 0f{LOG2E:08X};"));
    b.op(format!("cvt.rni.f32.f32 {n}, {n};"));
    let r = b.f();
    b.op(format!("fma.rn.f32 {r}, {n}, {}, {xc};", fconst(-LN2_HI)));
    b.op(format!("fma.rn.f32 {r}, {n}, {}, {r};", fconst(-LN2_LO)));
    let p = b.f();
    b.op(format!("mov.f32 {p}, {};", fconst(EXP_C[0])));
    for &c in &EXP_C[1..] {
        b.op(format!("fma.rn.f32 {p}, {p}, {r}, {};", fconst(c)));
    }
    let (ni, n1, n2) = (b.r(), b.r(), b.r());
    b.op(format!("cvt.rzi.s32.f32 {ni}, {n};"));
    b.op(format!("shr.s32 {n1}, {ni}, 1;"));
    b.op(format!("sub.s32 {n2}, {ni}, {n1};"));
    let (s1, s2) = (b.f(), b.f());
    for (k, s) in [(&n1, &s1), (&n2, &s2)] {
        b.op(format!("add.s32 {k}, {k}, 127;"));
        b.op(format!("shl.b32 {k}, {k}, 23;"));
        b.op(format!("mov.b32 {s}, {k};"));
    }
    let y = b.f();
    b.op(format!("mul.rn.f32 {y}, {p}, {s1};"));
    b.op(format!("mul.rn.f32 {y}, {y}, {s2};"));
    let flush = b.p();
    b.op(format!("setp.lt.f32 {flush}, {x}, {};", fconst(EXP_LO)));
    b.op(format!("selp.f32 {y}, 0f00000000, {y}, {flush};"));
    let nan = b.p();
    b.op(format!("setp.nan.f32 {nan}, {x}, {x};"));
    b.op(format!("selp.f32 {y}, {x}, {y}, {nan};"));
    y
}

/// `y = log(x)`.
pub(super) fn log(b: &mut Body, x: &str) -> String {
    let sub = b.p();
    b.op(format!("setp.lt.f32 {sub}, {x}, {};", fconst(f32::MIN_POSITIVE)));
    let xm = b.f();
    b.op(format!("mul.rn.f32 {xm}, {x}, 0f4B000000;"));
    b.op(format!("selp.f32 {xm}, {xm}, {x}, {sub};"));
    let (bits, e, t) = (b.r(), b.r(), b.r());
    b.op(format!("mov.b32 {bits}, {xm};"));
    b.op(format!("sub.s32 {e}, {bits}, {SQRT_HALF_BITS};"));
    b.op(format!("shr.s32 {e}, {e}, 23;"));
    b.op(format!("shl.b32 {t}, {e}, 23;"));
    b.op(format!("sub.s32 {t}, {bits}, {t};"));
    let m = b.f();
    b.op(format!("mov.b32 {m}, {t};"));
    let adj = b.r();
    b.op(format!("selp.s32 {adj}, -23, 0, {sub};"));
    b.op(format!("add.s32 {e}, {e}, {adj};"));
    let ef = b.f();
    b.op(format!("cvt.rn.f32.s32 {ef}, {e};"));
    let (f, d, s, z) = (b.f(), b.f(), b.f(), b.f());
    b.op(format!("sub.rn.f32 {f}, {m}, 0f3F800000;"));
    b.op(format!("add.rn.f32 {d}, {m}, 0f3F800000;"));
    b.op(format!("div.rn.f32 {s}, {f}, {d};"));
    b.op(format!("mul.rn.f32 {z}, {s}, {s};"));
    let q = b.f();
    b.op(format!("mov.f32 {q}, {};", fconst(LG[6])));
    for &c in LG[..6].iter().rev() {
        b.op(format!("fma.rn.f32 {q}, {q}, {z}, {};", fconst(c)));
    }
    let (r, hf, t1, t2, y) = (b.f(), b.f(), b.f(), b.f(), b.f());
    b.op(format!("mul.rn.f32 {r}, {z}, {q};"));
    b.op(format!("mul.rn.f32 {hf}, {f}, {f};"));
    b.op(format!("mul.rn.f32 {hf}, {hf}, 0f3F000000;"));
    b.op(format!("add.rn.f32 {t1}, {hf}, {r};"));
    b.op(format!("mul.rn.f32 {t2}, {ef}, {};", fconst(LOG_LN2_LO)));
    b.op(format!("fma.rn.f32 {t1}, {s}, {t1}, {t2};"));
    b.op(format!("sub.rn.f32 {t1}, {hf}, {t1};"));
    b.op(format!("sub.rn.f32 {t1}, {t1}, {f};"));
    b.op(format!("neg.f32 {t1}, {t1};"));
    b.op(format!("fma.rn.f32 {y}, {ef}, {}, {t1};", fconst(LOG_LN2_HI)));
    let c = b.p();
    b.op(format!("setp.eq.f32 {c}, {x}, 0f7F800000;"));
    b.op(format!("selp.f32 {y}, 0f7F800000, {y}, {c};"));
    b.op(format!("setp.eq.f32 {c}, {x}, 0f00000000;"));
    b.op(format!("selp.f32 {y}, 0fFF800000, {y}, {c};"));
    b.op(format!("setp.ltu.f32 {c}, {x}, 0f00000000;"));
    b.op(format!("selp.f32 {y}, 0f7FFFFFFF, {y}, {c};"));
    y
}

/// `y = tanh(x)`.
pub(super) fn tanh(b: &mut Body, x: &str) -> String {
    let (a, y) = odd_rational(b, x, &TANH_P, &TANH_Q, TANH_CLAMP);
    let pr = b.p();
    b.op(format!("setp.ge.f32 {pr}, {a}, {};", fconst(TANH_ONE)));
    b.op(format!("selp.f32 {y}, 0f3F800000, {y}, {pr};"));
    signed_like(b, x, &y);
    y
}

/// `y = erf(x)`: [`erf_formula::model`].
pub(super) fn erf(b: &mut Body, x: &str) -> String {
    let (_, y) = odd_rational(b, x, &erf_formula::P, &erf_formula::Q, erf_formula::CLAMP);
    b.op(format!("min.f32 {y}, {y}, 0f3F800000;"));
    signed_like(b, x, &y);
    y
}

/// `(|x|, c P(c²) / Q(c²))` with `c = min(|x|, clamp)`, each polynomial by Horner's rule
/// with fma from its highest coefficient.
fn odd_rational(b: &mut Body, x: &str, p: &[f32], q: &[f32], clamp: f32) -> (String, String) {
    let (a, c, s, y) = (b.f(), b.f(), b.f(), b.f());
    b.op(format!("abs.f32 {a}, {x};"));
    b.op(format!("min.f32 {c}, {a}, {};", fconst(clamp)));
    b.op(format!("mul.rn.f32 {s}, {c}, {c};"));
    let mut poly = |k: &[f32]| {
        let r = b.f();
        let (last, rest) = k.split_last().expect("a polynomial has a coefficient");
        b.op(format!("mov.f32 {r}, {};", fconst(*last)));
        for &coef in rest.iter().rev() {
            b.op(format!("fma.rn.f32 {r}, {r}, {s}, {};", fconst(coef)));
        }
        r
    };
    let (p, q) = (poly(p), poly(q));
    b.op(format!("mul.rn.f32 {y}, {c}, {p};"));
    b.op(format!("div.rn.f32 {y}, {y}, {q};"));
    (a, y)
}

/// `y = |y|` with `x`'s sign (`f(-0) = -0` for odd `f`), and `x` itself when it is NaN.
fn signed_like(b: &mut Body, x: &str, y: &str) {
    b.op(format!("copysign.f32 {y}, {x}, {y}; // f(-0) = -0"));
    let pr = b.p();
    b.op(format!("setp.nan.f32 {pr}, {x}, {x};"));
    b.op(format!("selp.f32 {y}, {x}, {y}, {pr};"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        if a as f64 == b {
            return 0.0;
        }
        ((a as f64 - b) / b.abs().max(1e-30)).abs()
    }

    /// Points spread over the range of interest, plus edges.
    fn sweep(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_matches_f64_and_the_cpu() {
        let mut worst = 0.0f64;
        for x in sweep(-87.0, 88.5, 200_000) {
            let y = exp_model(x);
            worst = worst.max(rel(y, (x as f64).exp()));
            assert!(rel(y, x.exp() as f64) < 1e-6, "exp({x}) = {y}, cpu {}", x.exp());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_model(0.0), 1.0);
        assert_eq!(exp_model(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_model(100.0), f32::INFINITY);
        assert_eq!(exp_model(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_model(-200.0), 0.0);
        assert!(exp_model(f32::NAN).is_nan());
        // Results stay normal down to the flush point, and are 0 below it.
        assert!(exp_model(EXP_LO) >= f32::MIN_POSITIVE);
        assert!(rel(exp_model(EXP_LO), (EXP_LO as f64).exp()) < 5e-7);
        for x in sweep(-103.0, EXP_LO.next_down(), 1000) {
            assert_eq!(exp_model(x), 0.0, "{x}");
        }
    }

    #[test]
    fn log_matches_f64_and_the_cpu() {
        let mut worst = 0.0f64;
        let mut x = 1e-44f32;
        while x < 3e38 {
            for k in 0..50 {
                let v = x * (1.0 + k as f32 / 50.0);
                if !v.is_finite() {
                    continue;
                }
                let y = log_model(v);
                let exact = (v as f64).ln();
                if exact.abs() > 1e-3 {
                    worst = worst.max(rel(y, exact));
                } else {
                    assert!((y as f64 - exact).abs() < 1e-9, "log({v})");
                }
                assert!(
                    (y - v.ln()).abs() <= 1e-6 * v.ln().abs().max(1e-3),
                    "log({v}) = {y}, cpu {}",
                    v.ln()
                );
            }
            x *= 1.7;
        }
        for v in sweep(0.5, 2.0, 100_000) {
            let exact = (v as f64).ln();
            assert!(
                (log_model(v) as f64 - exact).abs() < 1.2e-7 * exact.abs().max(1e-7) + 1e-12,
                "log({v})"
            );
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(log_model(1.0), 0.0);
        assert_eq!(log_model(0.0), f32::NEG_INFINITY);
        assert_eq!(log_model(f32::INFINITY), f32::INFINITY);
        assert!(log_model(-1.0).is_nan());
        assert!(log_model(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_matches_f64_and_the_cpu() {
        let mut worst = 0.0f64;
        for x in sweep(-12.0, 12.0, 200_001) {
            let y = tanh_model(x);
            let exact = (x as f64).tanh();
            if x != 0.0 {
                worst = worst.max(rel(y, exact));
            }
            assert!(
                (y - x.tanh()).abs() <= 1e-6 * x.tanh().abs().max(1e-30),
                "tanh({x}) = {y}, cpu {}",
                x.tanh()
            );
        }
        for x in sweep(-1e-3, 1e-3, 10_000) {
            assert!(rel(tanh_model(x), (x as f64).tanh()) < 2e-7, "tanh({x})");
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(tanh_model(f32::INFINITY), 1.0);
        assert_eq!(tanh_model(f32::NEG_INFINITY), -1.0);
        assert!(tanh_model(f32::NAN).is_nan());
        assert_eq!(tanh_model(-0.0).to_bits(), (-0.0f32).to_bits());
    }
}
