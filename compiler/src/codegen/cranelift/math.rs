//! `exp`, `log`, `tanh` and `erf` as straight-line Cranelift code, for an f32 or an
//! f32x4 alike: no library call, no branch, so the vectorized loops stay vectorized.
//!
//! In: an f32 or f32x4 value. Out: the function's value. Each is the algorithm of the
//! PTX backend ([`crate::codegen::ptx::math`]: range reduction, polynomial, scaling by
//! powers of two built from bits, special values by selects), performing the same f32
//! operations in the same order as its Rust model (`exp_model`, `log_model`,
//! `tanh_model`, `ir::erf::model`); `tanh` and `erf` on the signed argument where the
//! models take its magnitude and copy the sign back, which rounds to the same bits
//! (`odd_rational`) in fewer instructions. With the host's `fma` the CPU's results are those
//! models' bit for bit, and so the GPU's; without it (a multiply and an add) they stay within the models'
//! 1e-6. A scalar and a vector lane run the same instructions, so a value never depends
//! on whether its element fell in a vector body or a scalar tail (results stay
//! independent of the thread count).

use super::loops::Gen;
use crate::codegen::ptx::math::{
    EXP_C, EXP_HI, EXP_LO, LG, LN2_HI, LN2_LO, LOG2E, LOG_LN2_HI, LOG_LN2_LO, SQRT_HALF_BITS, TANH_CLAMP, TANH_ONE,
    TANH_P, TANH_Q,
};
use crate::ir::erf;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};

/// `1.5 · 2^23`: adding and subtracting it rounds an f32 of magnitude below 2^22 to the
/// nearest integer, ties to even (what `cvt.rni` and `round_ties_even` do), with no
/// SSE4.1 `round` needed.
const ROUNDER: f32 = 12_582_912.0;

impl Gen<'_, '_, '_> {
    fn int_type(&self, x: Value) -> Type {
        if self.is_vector(x) {
            types::I32X4
        } else {
            types::I32
        }
    }

    fn int(&mut self, like: Value, v: i32) -> Value {
        let c = self.fb.ins().iconst(types::I32, v as i64);
        if self.is_vector(like) {
            self.fb.ins().splat(types::I32X4, c)
        } else {
            c
        }
    }

    fn bits(&mut self, x: Value) -> Value {
        let ty = self.int_type(x);
        self.fb.ins().bitcast(ty, little(), x)
    }

    fn float_of_bits(&mut self, i: Value) -> Value {
        let ty = if self.fb.func.dfg.value_type(i).is_vector() {
            types::F32X4
        } else {
            types::F32
        };
        self.fb.ins().bitcast(ty, little(), i)
    }

    /// `if cond(a, b) { then } else { other }` per lane; `then`/`other` f32 or i32 alike.
    fn pick(&mut self, cc: FloatCC, a: Value, b: Value, then: Value, other: Value) -> Value {
        if !self.is_vector(a) {
            return self.pick_scalar(cc, a, b, then, other);
        }
        let c = self.fb.ins().fcmp(cc, a, b);
        // The compare's lanes are all-ones or zero: a bit mask of `then`'s type.
        let ty = self.fb.func.dfg.value_type(then);
        let m = self.fb.ins().bitcast(ty, little(), c);
        self.fb.ins().bitselect(m, then, other)
    }

    /// `x · 2^n` for an integer `n` (i32 or i32x4) in [-252, 254]: two exact powers of
    /// two, so subnormal results and overflow to infinity come out right.
    fn scale(&mut self, p: Value, n: Value) -> Value {
        let n1 = self.fb.ins().sshr_imm_u(n, 1);
        let n2 = self.fb.ins().isub(n, n1);
        let mut y = p;
        for k in [n1, n2] {
            let bias = self.int(k, 127);
            let biased = self.fb.ins().iadd(k, bias);
            let shifted = self.fb.ins().ishl_imm_u(biased, 23);
            let s = self.float_of_bits(shifted);
            y = self.fb.ins().fmul(y, s);
        }
        y
    }

    /// `exp(x)` (see the module doc).
    pub(super) fn exp_inline(&mut self, x: Value) -> Value {
        let lo = self.float_like(x, EXP_LO);
        let hi = self.float_like(x, EXP_HI);
        // NaN clamps to `lo` here and is put back at the end.
        let xc = self.pick(FloatCC::GreaterThan, x, lo, x, lo);
        let xc = self.pick(FloatCC::LessThan, xc, hi, xc, hi);
        let log2e = self.float_like(x, f32::from_bits(LOG2E));
        let t = self.fb.ins().fmul(xc, log2e);
        let rounder = self.float_like(x, ROUNDER);
        let t = self.fb.ins().fadd(t, rounder);
        let n = self.fb.ins().fsub(t, rounder);
        let minus_hi = self.float_like(x, -LN2_HI);
        let r = self.fma(n, minus_hi, xc);
        let minus_lo = self.float_like(x, -LN2_LO);
        let r = self.fma(n, minus_lo, r);
        let mut p = self.float_like(x, EXP_C[0]);
        for &c in &EXP_C[1..] {
            let c = self.float_like(x, c);
            p = self.fma(p, r, c);
        }
        // `n` as an integer from `t`'s bits: `t = 1.5 · 2^23 + n` has unit spacing, so
        // its bits are `bits(1.5 · 2^23) + n` (|n| < 2^22 after the clamp), the same
        // integer that a saturating conversion gives, in one integer subtraction
        // (x86 has no single instruction for that conversion on f32x4).
        let t_bits = self.bits(t);
        let rounder_bits = self.int(x, ROUNDER.to_bits() as i32);
        let ni = self.fb.ins().isub(t_bits, rounder_bits);
        let y = self.scale(p, ni);
        let zero = self.float_like(x, 0.0);
        let y = self.pick(FloatCC::LessThan, x, lo, zero, y);
        self.pick(FloatCC::Unordered, x, x, x, y)
    }

    /// `log(x)` (see the module doc).
    pub(super) fn log_inline(&mut self, x: Value) -> Value {
        let min_normal = self.float_like(x, f32::MIN_POSITIVE);
        let two23 = self.float_like(x, 8_388_608.0);
        let scaled = self.fb.ins().fmul(x, two23);
        let xm = self.pick(FloatCC::LessThan, x, min_normal, scaled, x);
        let bits = self.bits(xm);
        let sqrt_half = self.int(x, SQRT_HALF_BITS);
        let e = self.fb.ins().isub(bits, sqrt_half);
        let e = self.fb.ins().sshr_imm_u(e, 23);
        let e_shift = self.fb.ins().ishl_imm_u(e, 23);
        let m_bits = self.fb.ins().isub(bits, e_shift);
        let m = self.float_of_bits(m_bits);
        let (minus23, zero_i) = (self.int(x, -23), self.int(x, 0));
        let adj = self.pick(FloatCC::LessThan, x, min_normal, minus23, zero_i);
        let e = self.fb.ins().iadd(e, adj);
        let fty = self.fb.func.dfg.value_type(x);
        let ef = self.fb.ins().fcvt_from_sint(fty, e);
        let one = self.float_like(x, 1.0);
        let f = self.fb.ins().fsub(m, one);
        let d = self.fb.ins().fadd(m, one);
        let s = self.fb.ins().fdiv(f, d);
        let z = self.fb.ins().fmul(s, s);
        let mut q = self.float_like(x, LG[6]);
        for &c in LG[..6].iter().rev() {
            let c = self.float_like(x, c);
            q = self.fma(q, z, c);
        }
        let r = self.fb.ins().fmul(z, q);
        let half = self.float_like(x, 0.5);
        let hf = self.fb.ins().fmul(f, f);
        let hf = self.fb.ins().fmul(hf, half);
        let t1 = self.fb.ins().fadd(hf, r);
        let ln2_lo = self.float_like(x, LOG_LN2_LO);
        let t2 = self.fb.ins().fmul(ef, ln2_lo);
        let t1 = self.fma(s, t1, t2);
        let t1 = self.fb.ins().fsub(hf, t1);
        let t1 = self.fb.ins().fsub(t1, f);
        let t1 = self.fb.ins().fneg(t1);
        let ln2_hi = self.float_like(x, LOG_LN2_HI);
        let y = self.fma(ef, ln2_hi, t1);
        let (inf, zero) = (self.float_like(x, f32::INFINITY), self.float_like(x, 0.0));
        let y = self.pick(FloatCC::Equal, x, inf, inf, y);
        let minus_inf = self.float_like(x, f32::NEG_INFINITY);
        let y = self.pick(FloatCC::Equal, x, zero, minus_inf, y);
        let nan = self.float_like(x, f32::NAN);
        self.pick(FloatCC::UnorderedOrLessThan, x, zero, nan, y)
    }

    /// `tanh(x)` (see the module doc): a rational function of `x²`, no `exp`; `±1`
    /// from `|x| = TANH_ONE` on.
    pub(super) fn tanh_inline(&mut self, x: Value) -> Value {
        let y = self.odd_rational(x, &TANH_P, &TANH_Q, TANH_CLAMP);
        let a = self.fb.ins().fabs(x);
        let one_at = self.float_like(x, TANH_ONE);
        // 1 with x's sign bit: the bits of 1.0 or'ed with x's sign.
        let sign = self.bits(x);
        let sign_mask = self.int(x, i32::MIN);
        let sign = self.fb.ins().band(sign, sign_mask);
        let one = self.int(x, 1.0f32.to_bits() as i32);
        let signed_one = self.fb.ins().bor(sign, one);
        let signed_one = self.float_of_bits(signed_one);
        self.pick(FloatCC::GreaterThanOrEqual, a, one_at, signed_one, y)
    }

    /// `erf(x)`: `ir::erf`'s rational function of `x²`, within `[-1, 1]`.
    pub(super) fn erf_inline(&mut self, x: Value) -> Value {
        let y = self.odd_rational(x, &erf::P, &erf::Q, erf::CLAMP);
        let (one, minus_one) = (self.float_like(x, 1.0), self.float_like(x, -1.0));
        self.clamp_keeping_nan(y, minus_one, one)
    }

    /// `c P(c²) / Q(c²)` with `c` = `x` clamped to `[-clamp, clamp]`, each polynomial
    /// by Horner's rule with fma from its highest coefficient (`ir::erf::horner`'s
    /// order). The models compute `|c| P / Q` and then give it `x`'s sign; rounding to
    /// nearest is symmetric in sign, so the signed `c` gives the same bits (`-0` for
    /// `-0`) with no `abs` and no sign copy. A NaN `x` stays NaN through the clamp and
    /// the arithmetic, its own bits for a quiet NaN (the models return `x`).
    fn odd_rational(&mut self, x: Value, p: &[f32], q: &[f32], clamp: f32) -> Value {
        let (lo, hi) = (self.float_like(x, -clamp), self.float_like(x, clamp));
        let c = self.clamp_keeping_nan(x, lo, hi);
        let s = self.fb.ins().fmul(c, c);
        let poly = |g: &mut Self, k: &[f32]| {
            let (last, rest) = k.split_last().expect("a polynomial has a coefficient");
            let mut r = g.float_like(x, *last);
            for &coef in rest.iter().rev() {
                let coef = g.float_like(x, coef);
                r = g.fma(r, s, coef);
            }
            r
        };
        let (pv, qv) = (poly(self, p), poly(self, q));
        let y = self.fb.ins().fmul(c, pv);
        self.fb.ins().fdiv(y, qv)
    }

    /// `x` within `[lo, hi]`, NaN when `x` is: `hi < x ? hi : x`, then `x < lo ? lo : x`,
    /// whose false branches keep a NaN (on x86-64 one `minps` and one `maxps`, which
    /// return their second operand when either is NaN).
    fn clamp_keeping_nan(&mut self, x: Value, lo: Value, hi: Value) -> Value {
        let x = self.pick(FloatCC::LessThan, hi, x, hi, x);
        self.pick(FloatCC::LessThan, x, lo, lo, x)
    }
}

fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}
