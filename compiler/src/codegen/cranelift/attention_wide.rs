//! The attention kernel's body on sixteen lanes (AVX-512): the queries of a block are
//! the lanes of one register, so a key's scores, its transform and the softmax's
//! running maximum, exponentials and sums are a few registers each, and an output row
//! is one register per sixteen columns.
//!
//! In: a [`Plan`] and the items to run. Out: the same bits as the portable body in
//! [`super::attention`], which performs the same operations in the same order
//! (each score and output one fma chain from zero in order, the models' `exp`, the sum
//! over the keys in key order, the output times its reciprocal; tested in
//! `attention.rs`): only the layout differs.

use super::attention::{Item, Plan};
use super::small_matmul::avx512::transpose16;
use super::wide_math::avx512::exp as exp16;
use crate::ir::{Binary, Unary};
use crate::schedule::attention::{Attention, ScoreOp, Strided};
use std::arch::x86_64::*;

const LANES: usize = 16;

/// Lanes `0..n` of `base + i * stride`: a broadcast, a contiguous load or a gather.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn load(base: *const f32, stride: i64, mask: __mmask16) -> __m512 {
    // SAFETY: the caller's lanes `0..n` are in the buffer.
    unsafe {
        match stride {
            0 => _mm512_set1_ps(*base),
            1 => _mm512_maskz_loadu_ps(mask, base),
            s => {
                let at = _mm512_mullo_epi32(
                    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                    _mm512_set1_epi32(s as i32),
                );
                _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, at, base)
            }
        }
    }
}

/// Whether every stride the lanes walk fits the gathers' 32-bit indices.
pub(super) fn fits(plan: &Plan) -> bool {
    let att = &plan.att;
    let small = |s: i64| s.unsigned_abs() * LANES as u64 <= i32::MAX as u64;
    let loads = att.scores.iter().all(|op| match op {
        ScoreOp::Load(s) => small(s.rs),
        _ => true,
    });
    loads
}

/// Items `start..end` (see the module doc). Only where the host has AVX-512 and
/// [`fits`] holds.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn items(plan: &Plan, bufs: *const *mut f32, start: usize, end: usize) {
    let att = &plan.att;
    let zero = _mm512_setzero_ps();
    let mut qt = vec![zero; att.depth.next_multiple_of(LANES)];
    let mut x = vec![zero; att.keys];
    let mut vals = vec![zero; att.keys * att.scores.len()];
    // Operands read in place where their rows are contiguous and nothing is added,
    // else packed per item (K, V) or block (Q).
    let in_place = |x: &Strided| x.cs == 1 && x.plus.is_none();
    let mut vt = vec![0f32; if in_place(&att.v) { 0 } else { att.keys * att.width }];
    let mut kp = vec![0f32; if att.k.plus.is_none() { 0 } else { att.keys * att.depth }];
    let mut qrows = vec![0f32; if in_place(&att.q) { 0 } else { LANES * att.depth }];
    let mut item = Item::new(plan);
    for j in start..end {
        // SAFETY (every access below): the caller's table and buffers, the operands'
        // elements for this item, lanes past the block's queries masked off.
        unsafe { item.locate(plan, bufs, j) };
        // V's rows in place where they are contiguous, else packed.
        let (v_rows, v_stride) = if in_place(&att.v) {
            (item.v as *const f32, att.v.rs as isize)
        } else {
            unsafe { pack(&att.v, item.operand(2), 0, att.keys, att.width, &mut vt) };
            (vt.as_ptr(), att.width as isize)
        };
        let keys = if att.k.plus.is_none() {
            (item.k as *const f32, att.k.rs as isize, att.k.cs as isize)
        } else {
            unsafe { pack(&att.k, item.operand(1), 0, att.keys, att.depth, &mut kp) };
            (kp.as_ptr(), att.depth as isize, 1)
        };
        let mut q0 = 0;
        while q0 < att.queries {
            let n = LANES.min(att.queries - q0);
            let rows = if in_place(&att.q) {
                (
                    unsafe { item.q.offset(q0 as isize * att.q.rs as isize) } as *const f32,
                    att.q.rs as isize,
                )
            } else {
                unsafe { pack(&att.q, item.operand(0), q0, n, att.depth, &mut qrows) };
                (qrows.as_ptr(), att.depth as isize)
            };
            unsafe { queries_transposed(att.depth, rows, n, &mut qt) };
            unsafe { products(att, keys, &qt, &mut x) };
            let max = unsafe { transform(att, &item, (q0, n), &mut x, &mut vals) };
            let mut sum = zero;
            for e in x.iter_mut() {
                *e = exp16(_mm512_sub_ps(*e, max));
                sum = _mm512_add_ps(sum, *e);
            }
            let inv = _mm512_div_ps(_mm512_set1_ps(1.0), sum);
            unsafe { outputs(att, &item, (q0, n), (&x, inv), (v_rows, v_stride)) };
            q0 += n;
        }
    }
}

/// [`Item::pack`], sixteen columns a register where the operand's and its addend's
/// rows are contiguous.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn pack(
    x: &Strided,
    (main, plus): (*const f32, *const f32),
    r0: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
) {
    let contiguous = x.cs == 1 && x.plus.as_ref().is_none_or(|p| p.cs == 1);
    if !contiguous {
        return unsafe { Item::pack(x, (main, plus), r0, rows, cols, dst) };
    }
    let prs = x.plus.as_ref().map_or(0, |p| p.rs as isize);
    for r in 0..rows {
        let (m, d) = (
            unsafe { main.offset((r0 + r) as isize * x.rs as isize) },
            &mut dst[r * cols..],
        );
        let p = unsafe { plus.offset((r0 + r) as isize * prs) };
        let mut c = 0;
        while c < cols {
            let mask = ((1u32 << LANES.min(cols - c)) - 1) as __mmask16;
            let mut v = unsafe { _mm512_maskz_loadu_ps(mask, m.add(c)) };
            if !plus.is_null() {
                v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(mask, p.add(c)) });
            }
            unsafe { _mm512_mask_storeu_ps(d.as_mut_ptr().add(c), mask, v) };
            c += LANES;
        }
    }
}

/// `qt[d]`: depth `d` of the block's `n` queries, one per lane (zero past `n`), from
/// rows of contiguous depths (`rows`: the first row and the row stride), 16 rows of 16
/// depths through a register transpose at a time.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn queries_transposed(depth: usize, (rows, stride): (*const f32, isize), n: usize, qt: &mut [__m512]) {
    let mut d0 = 0;
    while d0 < depth {
        let dmask = ((1u32 << LANES.min(depth - d0)) - 1) as __mmask16;
        let mut r = [_mm512_setzero_ps(); LANES];
        for (i, r) in r[..n].iter_mut().enumerate() {
            *r = unsafe { _mm512_maskz_loadu_ps(dmask, rows.offset(i as isize * stride).add(d0)) };
        }
        unsafe { transpose16(&mut r) };
        qt[d0..d0 + LANES].copy_from_slice(&r);
        d0 += LANES;
    }
}

/// `x[key]` = the scores of `key` with the block's queries, each one fma chain over the
/// depth in order; four keys' chains side by side. `k`: the item's K, row and column
/// strides.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn products(att: &Attention, (k, rs, cs): (*const f32, isize, isize), qt: &[__m512], x: &mut [__m512]) {
    let row = |key: usize| unsafe { k.offset(key as isize * rs) };
    let mut key = 0;
    while key + 4 <= att.keys {
        let r = [row(key), row(key + 1), row(key + 2), row(key + 3)];
        let mut acc = [_mm512_setzero_ps(); 4];
        for (d, &qd) in qt[..att.depth].iter().enumerate() {
            let at = d as isize * cs;
            for (a, r) in acc.iter_mut().zip(&r) {
                *a = _mm512_fmadd_ps(_mm512_set1_ps(unsafe { *r.offset(at) }), qd, *a);
            }
        }
        x[key..key + 4].copy_from_slice(&acc);
        key += 4;
    }
    for (key, x) in x.iter_mut().enumerate().skip(key) {
        let mut acc = _mm512_setzero_ps();
        for (d, &qd) in qt[..att.depth].iter().enumerate() {
            acc = _mm512_fmadd_ps(_mm512_set1_ps(unsafe { *row(key).offset(d as isize * cs) }), qd, acc);
        }
        *x = acc;
    }
}

/// The score transform of every key in place (`x[key]` the product in, the score out),
/// and the maximum over the keys. Step by step over all keys (`vals`: a step's keys
/// one after the other), so that each step's kind is decided once per block.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn transform(
    att: &Attention,
    item: &Item,
    (q0, n): (usize, usize),
    x: &mut [__m512],
    vals: &mut [__m512],
) -> __m512 {
    let mask = ((1u32 << n) - 1) as __mmask16;
    let (steps, keys) = (&att.scores[..], x.len());
    if steps.len() > 1 {
        for (step, op) in steps.iter().enumerate() {
            let (done, rest) = vals.split_at_mut(step * keys);
            let cur = &mut rest[..keys];
            let arg = |a: usize| &done[a * keys..(a + 1) * keys];
            match *op {
                ScoreOp::Product => cur.copy_from_slice(x),
                ScoreOp::Load(ref s) => {
                    let first = unsafe { item.loads[step].offset(q0 as isize * s.rs as isize) };
                    for (key, c) in cur.iter_mut().enumerate() {
                        *c = unsafe { load(first.offset(key as isize * s.cs as isize), s.rs, mask) };
                    }
                }
                ScoreOp::Const(c) => cur.fill(_mm512_set1_ps(c)),
                ScoreOp::Unary(Unary::Neg, a) => {
                    let sign = _mm512_set1_epi32(i32::MIN);
                    for (c, &a) in cur.iter_mut().zip(arg(a)) {
                        *c = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), sign));
                    }
                }
                ScoreOp::Unary(_, a) => cur.copy_from_slice(arg(a)),
                ScoreOp::Binary(op, a, b) => {
                    let pairs = cur.iter_mut().zip(arg(a).iter().zip(arg(b)));
                    match op {
                        Binary::Add => pairs.for_each(|(c, (&a, &b))| *c = _mm512_add_ps(a, b)),
                        Binary::Sub => pairs.for_each(|(c, (&a, &b))| *c = _mm512_sub_ps(a, b)),
                        Binary::Mul => pairs.for_each(|(c, (&a, &b))| *c = _mm512_mul_ps(a, b)),
                        Binary::Div => pairs.for_each(|(c, (&a, &b))| *c = _mm512_div_ps(a, b)),
                        // `if b > a { b } else { a }`: maxps gives its second operand
                        // unless the first is greater.
                        Binary::Max => pairs.for_each(|(c, (&a, &b))| *c = _mm512_max_ps(b, a)),
                        Binary::Greater => pairs.for_each(|(c, (&a, &b))| {
                            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b);
                            *c = _mm512_maskz_mov_ps(gt, _mm512_set1_ps(1.0));
                        }),
                    }
                }
                ScoreOp::Fma(a, b, c) => {
                    for (r, ((&a, &b), &c)) in cur.iter_mut().zip(arg(a).iter().zip(arg(b)).zip(arg(c))) {
                        *r = _mm512_fmadd_ps(a, b, c);
                    }
                }
            }
        }
        x.copy_from_slice(&vals[(steps.len() - 1) * keys..steps.len() * keys]);
    }
    x.iter()
        .fold(_mm512_set1_ps(f32::NEG_INFINITY), |max, &v| _mm512_max_ps(v, max))
}

/// The block's output rows: row `i` = `(Σ_key x[key][i] V[key]) inv[i]`, one fma chain
/// over the keys in order per element, then the softmax's normalization (`inv` the
/// reciprocals of the sums); four rows side by side, sixteen columns at a time.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn outputs(
    att: &Attention,
    item: &Item,
    (q0, n): (usize, usize),
    (x, inv): (&[__m512], __m512),
    (v, vs): (*const f32, isize),
) {
    let mut scale = [0f32; LANES];
    unsafe { _mm512_storeu_ps(scale.as_mut_ptr(), inv) };
    let mut w0 = 0;
    while w0 < att.width {
        let wn = LANES.min(att.width - w0);
        let wmask = ((1u32 << wn) - 1) as __mmask16;
        let v = unsafe { v.add(w0) };
        let mut i = 0;
        while i < n {
            // A fixed row count, so the accumulators stay in registers.
            let acc = if n - i >= 4 {
                unsafe { weighted_rows::<4>(att.keys, x, i, (v, vs), wmask) }
            } else {
                let [a] = unsafe { weighted_rows::<1>(att.keys, x, i, (v, vs), wmask) };
                [a, a, a, a]
            };
            let rows = if n - i >= 4 { 4 } else { 1 };
            for (r, a) in acc[..rows].iter().enumerate() {
                let dst = unsafe { item.out.offset((q0 + i + r) as isize * att.out.rs as isize) };
                let a = _mm512_mul_ps(*a, _mm512_set1_ps(scale[i + r]));
                unsafe { store_row(dst, att.out.cs, w0, wn, wmask, a) };
            }
            i += rows;
        }
        w0 += wn;
    }
}

/// Rows `i..i + R` of `Σ_key x[key] V[key]` (sixteen columns of `V` from `v`, rows
/// `vs` apart), each element one fma chain over the keys in order.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn weighted_rows<const R: usize>(
    keys: usize,
    x: &[__m512],
    i: usize,
    (v, vs): (*const f32, isize),
    wmask: __mmask16,
) -> [__m512; R] {
    let weights = x.as_ptr() as *const f32;
    let mut acc = [_mm512_setzero_ps(); R];
    for key in 0..keys {
        let vk = unsafe { _mm512_maskz_loadu_ps(wmask, v.offset(key as isize * vs)) };
        for (r, a) in acc.iter_mut().enumerate() {
            let p = _mm512_set1_ps(unsafe { *weights.add(key * LANES + i + r) });
            *a = _mm512_fmadd_ps(p, vk, *a);
        }
    }
    acc
}

/// Columns `w0..w0 + wn` of an output row.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn store_row(dst: *mut f32, cs: i64, w0: usize, wn: usize, wmask: __mmask16, acc: __m512) {
    if cs == 1 {
        unsafe { _mm512_mask_storeu_ps(dst.add(w0), wmask, acc) };
        return;
    }
    let mut row = [0f32; LANES];
    unsafe { _mm512_storeu_ps(row.as_mut_ptr(), acc) };
    for (w, &r) in row[..wn].iter().enumerate() {
        unsafe { *dst.offset((w0 + w) as isize * cs as isize) = r };
    }
}
