//! `exp`, `log`, `tanh` and `erf` over a contiguous run of f32s, sixteen lanes at a
//! time (AVX-512) or eight (AVX2 + FMA, [`avx2`]), for the kernels that apply one of
//! them and nothing else, and for the long math of scatters (`block_math`).
//!
//! In: a loop kernel. Out: when it is such a map (`dst[i] = op(src[i])` over its whole
//! domain, which the CPU's `split_long_math` pass makes of a loop's long math) and the
//! host has either extension ([`maps`]), its function body: one call of
//! [`mpc_map_math`] over the rows this call runs; otherwise nothing, and the kernel is
//! an ordinary loop.
//!
//! Why: Cranelift's widest vector is f32x4, so its inline polynomials ([`super::math`])
//! run four lanes, and a loop with `exp` or `erf` is compute-bound (the transformer's
//! GELU took a sixth of its inference). Compiled by rustc for AVX-512 (or AVX2), the
//! same algorithm runs sixteen (eight) lanes per instruction. Each function performs
//! the f32 operations of its model (`exp_model`, `log_model`, `tanh_model`,
//! `ir::erf::model`) in the models' order with fma, so its results are the models' bit
//! for bit, the same as the inline code's on a host with fma (tested below on every
//! class of input, both widths).

use super::{Imports, Table};
use crate::ir::Unary;
use crate::schedule::{Affine, Expr, LoopKernel, Program, Store};
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_frontend::FunctionBuilder;

/// The op numbers [`mpc_map_math`] takes.
pub(super) fn op_code(op: Unary) -> Option<i64> {
    match op {
        Unary::Exp => Some(0),
        Unary::Log => Some(1),
        Unary::Tanh => Some(2),
        Unary::Erf => Some(3),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Whether [`mpc_map_math`] runs wide on this host: sixteen lanes, or eight on a host
/// with AVX2 and FMA but not AVX-512 (AMD's Zen 2 and 3, Intel's client cores).
pub fn maps() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() || (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this host runs the sixteen-lane routines (AVX-512).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `(op, src, dst, row)` when `lk` is `dst[i] = op(src[i])` over its row-major domain
/// with every axis but the first of a fixed extent (`row` elements per index of the
/// first): a call can then cover this thread's rows as one contiguous run.
fn map_of(p: &Program, lk: &LoopKernel) -> Option<(i64, usize, usize, usize)> {
    let [Expr::Load { buf: src, at: from }, Expr::Unary(op, 0)] = lk.exprs.as_slice() else {
        return None;
    };
    let [Store::Write {
        buf: dst,
        at: to,
        value: 1,
    }] = lk.stores.as_slice()
    else {
        return None;
    };
    let flat = Affine::row_major(&lk.domain);
    let plain = lk.scatter_rows.is_none() && lk.row_blocks.is_none() && lk.col_chunks.is_none();
    let fixed = lk.domain.iter().skip(1).all(|&n| p.dynamic_slot(n).is_none());
    let code = op_code(*op)?;
    (plain && fixed && !lk.domain.is_empty() && *from == flat && *to == flat)
        .then(|| (code, *src, *dst, lk.domain[1..].iter().product()))
}

/// The body of a map kernel as one call (see the module doc), if `lk` is one and the
/// host runs the routines ([`maps`]); `false` leaves `fb` untouched.
pub(super) fn emit_map(
    fb: &mut FunctionBuilder,
    p: &Program,
    lk: &LoopKernel,
    im: &Imports,
    table: &mut Table,
) -> bool {
    let Some((code, src, dst, row)) = map_of(p, lk).filter(|_| maps()) else {
        return false;
    };
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let (bufs, start, end) = (params[0], params[1], params[2]);
    let first = fb.ins().imul_imm_s(start, row as i64);
    let rows = fb.ins().isub(end, start);
    let n = fb.ins().imul_imm_s(rows, row as i64);
    let byte = fb.ins().ishl_imm_u(first, 2);
    let mut at = |fb: &mut FunctionBuilder, buf: usize| {
        let base = table.base(fb, bufs, buf);
        fb.ins().iadd(base, byte)
    };
    let (from, to) = (at(fb, src), at(fb, dst));
    let op = fb.ins().iconst(types::I64, code);
    fb.ins().call(im.map_math, &[op, from, to, n]);
    fb.ins().return_(&[]);
    fb.seal_all_blocks();
    true
}

/// `dst[i] = op(src[i])` for `i < n` (op numbers: [`op_code`]); `src` may be `dst`.
/// Only called where [`maps`] holds.
///
/// # Safety
/// `src` and `dst` hold `n` f32s each.
pub unsafe extern "C" fn mpc_map_math(op: i64, src: *const f32, dst: *mut f32, n: i64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the code generator emits this call only where `maps()` holds: AVX-512,
    // else AVX2 and FMA.
    unsafe {
        if available() {
            avx512::map(op, src, dst, n.max(0) as usize)
        } else {
            avx2::map(op, src, dst, n.max(0) as usize)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (op, src, dst, n);
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    //! The models' operations on sixteen lanes: `std::arch` intrinsics, so every step
    //! is the instruction the model's scalar operation is (fma where it uses `mul_add`).
    use crate::codegen::ptx::math::{
        EXP_C, EXP_HI, EXP_LO, LG, LN2_HI, LN2_LO, LOG2E, LOG_LN2_HI, LOG_LN2_LO, SQRT_HALF_BITS, TANH_CLAMP, TANH_ONE,
        TANH_P, TANH_Q,
    };
    use crate::ir::erf;
    use std::arch::x86_64::*;

    const LT: i32 = _CMP_LT_OQ;
    const GE: i32 = _CMP_GE_OQ;
    const EQ: i32 = _CMP_EQ_OQ;
    const NAN: i32 = _CMP_UNORD_Q;

    macro_rules! map_with {
        ($f:ident, $src:ident, $dst:ident, $n:ident) => {{
            let mut i = 0;
            while i + 16 <= $n {
                let x = _mm512_loadu_ps($src.add(i));
                _mm512_storeu_ps($dst.add(i), $f(x));
                i += 16;
            }
            if i < $n {
                // The tail's lanes past `n` are neither read nor written.
                let mask: __mmask16 = (1u32 << ($n - i)) as u16 - 1;
                let x = _mm512_maskz_loadu_ps(mask, $src.add(i));
                _mm512_mask_storeu_ps($dst.add(i), mask, $f(x));
            }
        }};
    }

    /// # Safety
    /// The host has AVX-512F and FMA; `src` and `dst` hold `n` f32s each.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn map(op: i64, src: *const f32, dst: *mut f32, n: usize) {
        // SAFETY: the caller's `n` f32s at `src` and `dst`.
        unsafe {
            match op {
                0 => map_with!(exp, src, dst, n),
                1 => map_with!(log, src, dst, n),
                2 => map_with!(tanh, src, dst, n),
                _ => map_with!(erf16, src, dst, n),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn cmp<const CC: i32>(a: __m512, b: __m512) -> __mmask16 {
        _mm512_cmp_ps_mask::<CC>(a, b)
    }

    /// `k[0] + k[1] s + ..` by Horner's rule with fma from the highest coefficient
    /// (`ir::erf::horner`).
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn horner(k: &[f32], s: __m512) -> __m512 {
        let (last, rest) = k.split_last().expect("a polynomial has a coefficient");
        let mut acc = splat(*last);
        for &c in rest.iter().rev() {
            acc = _mm512_fmadd_ps(acc, s, splat(c));
        }
        acc
    }

    /// 2^k for integer lanes `k` in [-126, 127], from bits.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn pow2(k: __m512i) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(k, _mm512_set1_epi32(127))))
    }

    /// `y` with the sign bit of `x`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn copysign(y: __m512, x: __m512) -> __m512 {
        let sign = _mm512_set1_epi32(i32::MIN);
        let magnitude = _mm512_andnot_si512(sign, _mm512_castps_si512(y));
        let s = _mm512_and_si512(sign, _mm512_castps_si512(x));
        _mm512_castsi512_ps(_mm512_or_si512(magnitude, s))
    }

    /// `exp_model` (also the fused attention's, `attention_wide`).
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    pub(in crate::internals::codegen::cranelift) fn exp(x: __m512) -> __m512 {
        let xc = _mm512_min_ps(_mm512_max_ps(x, splat(EXP_LO)), splat(EXP_HI));
        let t = _mm512_mul_ps(xc, splat(f32::from_bits(LOG2E)));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        let r = _mm512_fmadd_ps(n, splat(-LN2_HI), xc);
        let r = _mm512_fmadd_ps(n, splat(-LN2_LO), r);
        let mut p = splat(EXP_C[0]);
        for &c in &EXP_C[1..] {
            p = _mm512_fmadd_ps(p, r, splat(c));
        }
        let ni = _mm512_cvtps_epi32(n);
        let n1 = _mm512_srai_epi32::<1>(ni);
        let n2 = _mm512_sub_epi32(ni, n1);
        let y = _mm512_mul_ps(_mm512_mul_ps(p, pow2(n1)), pow2(n2));
        let y = _mm512_mask_blend_ps(cmp::<LT>(x, splat(EXP_LO)), y, _mm512_setzero_ps());
        _mm512_mask_blend_ps(cmp::<NAN>(x, x), y, x)
    }

    /// `log_model`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn log(x: __m512) -> __m512 {
        let sub = cmp::<LT>(x, splat(f32::MIN_POSITIVE));
        let xm = _mm512_mask_blend_ps(sub, x, _mm512_mul_ps(x, splat(8_388_608.0)));
        let bits = _mm512_castps_si512(xm);
        let e = _mm512_srai_epi32::<23>(_mm512_sub_epi32(bits, _mm512_set1_epi32(SQRT_HALF_BITS)));
        let m = _mm512_castsi512_ps(_mm512_sub_epi32(bits, _mm512_slli_epi32::<23>(e)));
        let e = _mm512_mask_add_epi32(e, sub, e, _mm512_set1_epi32(-23));
        let e = _mm512_cvtepi32_ps(e);
        let one = splat(1.0);
        let f = _mm512_sub_ps(m, one);
        let s = _mm512_div_ps(f, _mm512_add_ps(m, one));
        let z = _mm512_mul_ps(s, s);
        let mut q = splat(LG[6]);
        for &c in LG[..6].iter().rev() {
            q = _mm512_fmadd_ps(q, z, splat(c));
        }
        let r = _mm512_mul_ps(z, q);
        let hfsq = _mm512_mul_ps(_mm512_mul_ps(f, f), splat(0.5));
        let t = _mm512_fmadd_ps(s, _mm512_add_ps(hfsq, r), _mm512_mul_ps(e, splat(LOG_LN2_LO)));
        let inner = _mm512_sub_ps(_mm512_sub_ps(hfsq, t), f);
        let minus = _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(inner),
            _mm512_set1_epi32(i32::MIN),
        ));
        let y = _mm512_fmadd_ps(e, splat(LOG_LN2_HI), minus);
        let y = _mm512_mask_blend_ps(cmp::<EQ>(x, splat(f32::INFINITY)), y, splat(f32::INFINITY));
        let y = _mm512_mask_blend_ps(cmp::<EQ>(x, _mm512_setzero_ps()), y, splat(f32::NEG_INFINITY));
        let bad = cmp::<LT>(x, _mm512_setzero_ps()) | cmp::<NAN>(x, x);
        _mm512_mask_blend_ps(bad, y, splat(f32::NAN))
    }

    /// `c P(c²) / Q(c²)` with `c = min(|x|, clamp)`: the models' odd rational function.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn odd_rational(a: __m512, p: &[f32], q: &[f32], clamp: f32) -> __m512 {
        let c = _mm512_mask_blend_ps(cmp::<LT>(a, splat(clamp)), splat(clamp), a);
        let s = _mm512_mul_ps(c, c);
        _mm512_div_ps(_mm512_mul_ps(c, horner(p, s)), horner(q, s))
    }

    /// `tanh_model`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn tanh(x: __m512) -> __m512 {
        let a = _mm512_abs_ps(x);
        let y = odd_rational(a, &TANH_P, &TANH_Q, TANH_CLAMP);
        let y = _mm512_mask_blend_ps(cmp::<GE>(a, splat(TANH_ONE)), y, splat(1.0));
        _mm512_mask_blend_ps(cmp::<NAN>(x, x), copysign(y, x), x)
    }

    /// `ir::erf::model`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn erf16(x: __m512) -> __m512 {
        let a = _mm512_abs_ps(x);
        // `min(|x|, CLAMP)`: |x| is not NaN where the result is used.
        let c = _mm512_min_ps(a, splat(erf::CLAMP));
        let s = _mm512_mul_ps(c, c);
        let y = _mm512_div_ps(_mm512_mul_ps(c, horner(&erf::P, s)), horner(&erf::Q, s));
        let y = _mm512_min_ps(y, splat(1.0));
        _mm512_mask_blend_ps(cmp::<NAN>(x, x), copysign(y, x), x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::ptx::math::{exp_model, log_model, tanh_model};

    /// Inputs of every class: a sweep of the line, both signs of zero, subnormals,
    /// infinities, NaN, the clamps' neighbourhoods, and a tail that is not a multiple
    /// of sixteen.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-40_000..=40_000).map(|i| i as f32 * 2.5e-3).collect();
        v.extend((0..4000).map(|i| f32::from_bits(0x3000_0000 + i * 0x9_1357)));
        v.extend((0..4000).map(|i| -f32::from_bits(0x0000_0001 + i * 0x7_1357)));
        v.extend([0.0, -0.0, f32::MIN_POSITIVE, 1e-40, -1e-40, f32::MAX, f32::MIN]);
        v.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN]);
        v.extend([-87.33654, -87.4, -103.9, 88.7, 89.0, 89.5, 3.9, 4.0, 7.905311, 9.0, 9.1]);
        v.extend([1.0, 0.5, 2.0, -1.0, 1e30, -1e30, 1.0e-30]);
        v
    }

    /// `map(op, src, dst, n)` of one width against the models, on every class of input.
    fn assert_models_bits(map: unsafe fn(i64, *const f32, *mut f32, usize)) {
        let x = inputs();
        type Model = fn(f32) -> f32;
        let models: [(Unary, Model); 4] = [
            (Unary::Exp, exp_model),
            (Unary::Log, log_model),
            (Unary::Tanh, tanh_model),
            (Unary::Erf, crate::ir::erf::model),
        ];
        for (op, model) in models {
            let mut y = vec![7.0f32; x.len() + 3];
            // SAFETY: both hold x.len() f32s; the three past them must stay untouched;
            // the callers check the host's extensions.
            unsafe { map(op_code(op).unwrap(), x.as_ptr(), y.as_mut_ptr(), x.len()) };
            for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
                let want = model(xi);
                assert!(
                    yi.to_bits() == want.to_bits() || (yi.is_nan() && want.is_nan()),
                    "{op:?}({xi:e}) at {i}: {yi:e} ({:#x}), the model gives {want:e} ({:#x})",
                    yi.to_bits(),
                    want.to_bits()
                );
            }
            assert_eq!(&y[x.len()..], &[7.0; 3], "{op:?} wrote past its run");
        }
    }

    #[test]
    fn sixteen_lanes_give_the_models_bits() {
        if !available() {
            eprintln!("no AVX-512 on this host: the routines are not used, nothing to test");
            return;
        }
        assert_models_bits(avx512::map);
    }

    #[test]
    fn eight_lanes_give_the_models_bits() {
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2 + FMA on this host: the routines are not used, nothing to test");
            return;
        }
        assert_models_bits(avx2::map);
        // Tails of every length, in place.
        for n in [0usize, 1, 7, 8, 9, 15, 17] {
            let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 2.0).collect();
            // SAFETY: the host has AVX2 and FMA; `v` holds n f32s, read and written in place.
            unsafe { avx2::map(2, v.as_ptr(), v.as_mut_ptr(), n) };
            for (i, y) in v.iter().enumerate() {
                assert_eq!(y.to_bits(), tanh_model(i as f32 * 0.25 - 2.0).to_bits(), "n {n} at {i}");
            }
        }
    }

    #[test]
    fn in_place_runs_of_any_length() {
        if !available() {
            return;
        }
        for n in [0usize, 1, 15, 16, 17, 33] {
            let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 2.0).collect();
            // SAFETY: `v` holds n f32s, read and written in place.
            unsafe { mpc_map_math(0, v.as_ptr(), v.as_mut_ptr(), n as i64) };
            for (i, y) in v.iter().enumerate() {
                assert_eq!(y.to_bits(), exp_model(i as f32 * 0.25 - 2.0).to_bits(), "n {n} at {i}");
            }
        }
    }
}
