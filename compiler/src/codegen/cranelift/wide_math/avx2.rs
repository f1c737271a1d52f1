//! The models' operations on eight lanes (AVX2 + FMA), for hosts without AVX-512: the
//! sixteen-lane routines' operations one for one, in 256-bit registers, with the
//! compares' masks as vectors (`blendv` takes the second value where a lane's mask is
//! set, as the sixteen-lane `mask_blend` does). Their bits are the models'
//! (`eight_lanes_give_the_models_bits`).

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
        while i + 8 <= $n {
            let x = _mm256_loadu_ps($src.add(i));
            _mm256_storeu_ps($dst.add(i), $f(x));
            i += 8;
        }
        if i < $n {
            // The tail through a zeroed row: lanes past `n` are neither read nor written.
            let mut row = [0.0f32; 8];
            std::ptr::copy_nonoverlapping($src.add(i), row.as_mut_ptr(), $n - i);
            let y = $f(_mm256_loadu_ps(row.as_ptr()));
            _mm256_storeu_ps(row.as_mut_ptr(), y);
            std::ptr::copy_nonoverlapping(row.as_ptr(), $dst.add(i), $n - i);
        }
    }};
}

/// `dst[i] = op(src[i])` for `i < n`, eight lanes at a time.
///
/// # Safety
/// The host has AVX2 and FMA; `src` and `dst` hold `n` f32s each (`src` may be `dst`).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn map(op: i64, src: *const f32, dst: *mut f32, n: usize) {
    // SAFETY: the caller's `n` f32s at `src` and `dst`.
    unsafe {
        match op {
            0 => map_with!(exp, src, dst, n),
            1 => map_with!(log, src, dst, n),
            2 => map_with!(tanh, src, dst, n),
            _ => map_with!(erf8, src, dst, n),
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn cmp<const CC: i32>(a: __m256, b: __m256) -> __m256 {
    _mm256_cmp_ps::<CC>(a, b)
}

/// `b` where `mask` is set, else `a`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn blend(a: __m256, b: __m256, mask: __m256) -> __m256 {
    _mm256_blendv_ps(a, b, mask)
}

/// `k[0] + k[1] s + ..` by Horner's rule with fma from the highest coefficient.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn horner(k: &[f32], s: __m256) -> __m256 {
    let (last, rest) = k.split_last().expect("a polynomial has a coefficient");
    let mut acc = splat(*last);
    for &c in rest.iter().rev() {
        acc = _mm256_fmadd_ps(acc, s, splat(c));
    }
    acc
}

/// 2^k for integer lanes `k` in [-126, 127], from bits.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pow2(k: __m256i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k, _mm256_set1_epi32(127))))
}

/// `y` with the sign bit of `x`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn copysign(y: __m256, x: __m256) -> __m256 {
    let sign = _mm256_set1_epi32(i32::MIN);
    let magnitude = _mm256_andnot_si256(sign, _mm256_castps_si256(y));
    let s = _mm256_and_si256(sign, _mm256_castps_si256(x));
    _mm256_castsi256_ps(_mm256_or_si256(magnitude, s))
}

/// `|x|`: the sign bit cleared.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn abs(x: __m256) -> __m256 {
    _mm256_andnot_ps(splat(-0.0), x)
}

/// `exp_model`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp(x: __m256) -> __m256 {
    let xc = _mm256_min_ps(_mm256_max_ps(x, splat(EXP_LO)), splat(EXP_HI));
    let t = _mm256_mul_ps(xc, splat(f32::from_bits(LOG2E)));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let r = _mm256_fmadd_ps(n, splat(-LN2_HI), xc);
    let r = _mm256_fmadd_ps(n, splat(-LN2_LO), r);
    let mut p = splat(EXP_C[0]);
    for &c in &EXP_C[1..] {
        p = _mm256_fmadd_ps(p, r, splat(c));
    }
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let y = _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(n2));
    let y = blend(y, _mm256_setzero_ps(), cmp::<LT>(x, splat(EXP_LO)));
    blend(y, x, cmp::<NAN>(x, x))
}

/// `log_model`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn log(x: __m256) -> __m256 {
    let sub = cmp::<LT>(x, splat(f32::MIN_POSITIVE));
    let xm = blend(x, _mm256_mul_ps(x, splat(8_388_608.0)), sub);
    let bits = _mm256_castps_si256(xm);
    let e = _mm256_srai_epi32::<23>(_mm256_sub_epi32(bits, _mm256_set1_epi32(SQRT_HALF_BITS)));
    let m = _mm256_castsi256_ps(_mm256_sub_epi32(bits, _mm256_slli_epi32::<23>(e)));
    let e = _mm256_add_epi32(e, _mm256_and_si256(_mm256_castps_si256(sub), _mm256_set1_epi32(-23)));
    let e = _mm256_cvtepi32_ps(e);
    let one = splat(1.0);
    let f = _mm256_sub_ps(m, one);
    let s = _mm256_div_ps(f, _mm256_add_ps(m, one));
    let z = _mm256_mul_ps(s, s);
    let mut q = splat(LG[6]);
    for &c in LG[..6].iter().rev() {
        q = _mm256_fmadd_ps(q, z, splat(c));
    }
    let r = _mm256_mul_ps(z, q);
    let hfsq = _mm256_mul_ps(_mm256_mul_ps(f, f), splat(0.5));
    let t = _mm256_fmadd_ps(s, _mm256_add_ps(hfsq, r), _mm256_mul_ps(e, splat(LOG_LN2_LO)));
    let inner = _mm256_sub_ps(_mm256_sub_ps(hfsq, t), f);
    let minus = _mm256_xor_ps(inner, splat(-0.0));
    let y = _mm256_fmadd_ps(e, splat(LOG_LN2_HI), minus);
    let y = blend(y, splat(f32::INFINITY), cmp::<EQ>(x, splat(f32::INFINITY)));
    let y = blend(y, splat(f32::NEG_INFINITY), cmp::<EQ>(x, _mm256_setzero_ps()));
    let bad = _mm256_or_ps(cmp::<LT>(x, _mm256_setzero_ps()), cmp::<NAN>(x, x));
    blend(y, splat(f32::NAN), bad)
}

/// `c P(c²) / Q(c²)` with `c = min(|x|, clamp)`: the models' odd rational function.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn odd_rational(a: __m256, p: &[f32], q: &[f32], clamp: f32) -> __m256 {
    let c = blend(splat(clamp), a, cmp::<LT>(a, splat(clamp)));
    let s = _mm256_mul_ps(c, c);
    _mm256_div_ps(_mm256_mul_ps(c, horner(p, s)), horner(q, s))
}

/// `tanh_model`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh(x: __m256) -> __m256 {
    let a = abs(x);
    let y = odd_rational(a, &TANH_P, &TANH_Q, TANH_CLAMP);
    let y = blend(y, splat(1.0), cmp::<GE>(a, splat(TANH_ONE)));
    blend(copysign(y, x), x, cmp::<NAN>(x, x))
}

/// `ir::erf::model`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn erf8(x: __m256) -> __m256 {
    let a = abs(x);
    // `min(|x|, CLAMP)`: |x| is not NaN where the result is used.
    let c = _mm256_min_ps(a, splat(erf::CLAMP));
    let s = _mm256_mul_ps(c, c);
    let y = _mm256_div_ps(_mm256_mul_ps(c, horner(&erf::P, s)), horner(&erf::Q, s));
    let y = _mm256_min_ps(y, splat(1.0));
    blend(copysign(y, x), x, cmp::<NAN>(x, x))
}
