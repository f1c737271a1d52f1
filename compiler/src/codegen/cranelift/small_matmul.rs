//! Small matrix products (a side of 32 or less against a depth of 64 or less) as
//! AVX2 + FMA code of our own, or AVX-512 where the host has it, instead of a `gemm`
//! call.
//!
//! In: one task of `mpc_sgemm` (a 64-row block of one batch's product) on strided
//! views. Out: its rows of `c`, when the host has AVX2 and FMA and the product is small
//! (`fits`); otherwise nothing, and the caller calls `gemm`.
//!
//! Why: attention's per-head products are 16x16 by 16, one call per (batch, head), 256
//! per step on the transformer example. `gemm` packs both operands and dispatches per
//! call, which for such a product costs several times its 4096 multiply-adds (the
//! `q k^T` product ran at a tenth of the machine's peak). Here `b` is read in place when
//! its rows are contiguous and a whole number of 16 columns (attention's `v`), else
//! copied into a zero-padded row-major tile on the stack (any strides: a transposed `k`);
//! each block of 4 rows by 16 columns of `c` accumulates in 8 f32x8 registers over the
//! depth, then is written with `c`'s strides.
//!
//! Every element is `a[i,0] b[0,j]` then `+ a[i,p] b[p,j]` for `p = 1..k` in order, each
//! step one fma: the same on every thread and at every thread count, with AVX2 or
//! AVX-512. AVX-512 (16 columns a register, a transposed `b` packed by 16x16 register
//! transposes) took the transformer's `q k^T` from 51 to 30 us and `weights v` from 33
//! to 27 us a step on an Emerald Rapids Xeon (2 threads; in the training step its
//! backward products 5-30% less, runs alternated).

/// The widest `n` and deepest `k` this path takes; `b`'s tile is `k` by `n` rounded
/// up to 16.
const MAX_N: usize = 32;
const MAX_K: usize = 64;
const TILE_COLS: usize = 16;
const TILE_ROWS: usize = 4;
/// Columns of a packed tile: `MAX_N` rounded up to whole column blocks.
const PACKED: usize = MAX_N.div_ceil(TILE_COLS) * TILE_COLS;

/// A strided matrix view: base, row stride, column stride (in elements).
type View = (*const f32, isize, isize);
type ViewMut = (*mut f32, isize, isize);

/// Whether `c (rows x n) = a (rows x k) · b (k x n)` runs here on this host.
pub(super) fn fits(n: usize, k: usize) -> bool {
    (1..=MAX_N).contains(&n) && (1..=MAX_K).contains(&k) && host_has_avx2_fma()
}

fn host_has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn host_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c = a · b` (see the module doc).
///
/// # Safety
/// `fits(n, k)` holds; the views cover `rows x k`, `k x n` and `rows x n` elements at
/// their strides; `c` does not overlap `a` or `b`.
pub(super) unsafe fn matmul(rows: usize, n: usize, k: usize, a: View, b: View, c: ViewMut) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `fits` checked AVX2 and FMA, `host_has_avx512` AVX-512F; the caller
    // vouches for the views.
    unsafe {
        if host_has_avx512() {
            avx512::matmul(rows, n, k, a, b, c)
        } else {
            avx2::matmul(rows, n, k, a, b, c)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, n, k, a, b, c);
        unreachable!("small_matmul::fits is false off x86-64");
    }
}

/// Columns `from..n` of `b` (`k x n`, any strides) into `dst`'s `k` rows of `width`
/// floats, one element at a time, and zeros in columns `n..width`.
///
/// # Safety
/// `b` covers `k x n` elements at its strides; `dst` holds `k * width` floats.
#[cfg(target_arch = "x86_64")]
unsafe fn pack_columns(from: usize, n: usize, k: usize, (b, brs, bcs): View, dst: *mut f32, width: usize) {
    // SAFETY: the caller vouches for `b` and `dst`.
    unsafe {
        for j in from..n {
            let src = b.offset(j as isize * bcs);
            for p in 0..k {
                *dst.add(p * width + j) = *src.offset(p as isize * brs);
            }
        }
        for p in 0..k {
            for j in n..width {
                *dst.add(p * width + j) = 0.0;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{View, ViewMut, MAX_K, PACKED, TILE_COLS, TILE_ROWS};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn matmul(rows: usize, n: usize, k: usize, a: View, (b, brs, bcs): View, c: ViewMut) {
        // `b` as `k` rows of `width` floats (zeros past column `n`), unless its rows
        // are such rows already (`v` in attention's `weights v`).
        let width = n.next_multiple_of(TILE_COLS);
        // (Uninitialized: zeroing all of it cost as much as a 16x16 product.)
        let mut packed = [std::mem::MaybeUninit::<f32>::uninit(); MAX_K * PACKED];
        let (tile, stride) = if bcs == 1 && width == n {
            (b, brs)
        } else {
            let dst = packed.as_mut_ptr() as *mut f32;
            super::pack_columns(0, n, k, (b, brs, bcs), dst, width);
            (dst as *const f32, width as isize)
        };
        let mut i = 0;
        while i < rows {
            if rows - i >= TILE_ROWS {
                rows_of::<TILE_ROWS>(i, n, k, (tile, stride), a, c);
                i += TILE_ROWS;
            } else {
                rows_of::<1>(i, n, k, (tile, stride), a, c);
                i += 1;
            }
        }
    }

    /// Rows `i..i + R` of `c`, 16 columns at a time, from `b`'s rows of `stride` floats
    /// at `tile` (16 columns readable past `n`, zeros in the packed tile).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows_of<const R: usize>(
        i: usize,
        n: usize,
        k: usize,
        (tile, stride): (*const f32, isize),
        (a, ars, acs): View,
        (c, crs, ccs): ViewMut,
    ) {
        for col in (0..n).step_by(TILE_COLS) {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for p in 0..k {
                let row = tile.offset(p as isize * stride + col as isize);
                let (b0, b1) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a.offset((i + r) as isize * ars + p as isize * acs));
                    acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
                }
            }
            let width = TILE_COLS.min(n - col);
            for (r, acc) in acc.iter().enumerate() {
                let out = c.offset((i + r) as isize * crs + col as isize * ccs);
                if ccs == 1 && width == TILE_COLS {
                    _mm256_storeu_ps(out, acc[0]);
                    _mm256_storeu_ps(out.add(8), acc[1]);
                } else {
                    let mut lanes = [0f32; TILE_COLS];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
                    _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
                    for (j, &v) in lanes.iter().enumerate().take(width) {
                        *out.offset(j as isize * ccs) = v;
                    }
                }
            }
        }
    }
}

/// The same products with AVX-512: a block of 16 columns is one register, and a
/// transposed `b` (attention's `k^T`) is packed by 16x16 register transposes instead of
/// one scalar copy per element. The same fma per element and step, in the same order,
/// so the same bits as the AVX2 code.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::{View, ViewMut, MAX_K, PACKED, TILE_COLS};
    use std::arch::x86_64::*;

    /// Rows of `c` a block accumulates at once (one register each).
    const ROWS: usize = 8;

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn matmul(rows: usize, n: usize, k: usize, a: View, (b, brs, bcs): View, c: ViewMut) {
        let width = n.next_multiple_of(TILE_COLS);
        let mut packed = [std::mem::MaybeUninit::<f32>::uninit(); MAX_K * PACKED];
        let (tile, stride) = if bcs == 1 && width == n {
            (b, brs)
        } else {
            let dst = packed.as_mut_ptr() as *mut f32;
            pack(n, k, (b, brs, bcs), dst, width);
            (dst as *const f32, width as isize)
        };
        let mut i = 0;
        while i < rows {
            let step = match rows - i {
                left if left >= ROWS => ROWS,
                left if left >= 4 => 4,
                _ => 1,
            };
            match step {
                ROWS => rows_of::<ROWS>(i, n, k, (tile, stride), a, c),
                4 => rows_of::<4>(i, n, k, (tile, stride), a, c),
                _ => rows_of::<1>(i, n, k, (tile, stride), a, c),
            }
            i += step;
        }
    }

    /// `b` (`k x n`, any strides) into `dst` as `k` rows of `width` floats, zeros past
    /// column `n`. Where `b` is a transposed matrix with contiguous columns (`brs == 1`),
    /// 16x16 blocks go through registers: 16 loads of 16 contiguous floats, a transpose,
    /// 16 stores.
    #[target_feature(enable = "avx512f")]
    unsafe fn pack(n: usize, k: usize, (b, brs, bcs): View, dst: *mut f32, width: usize) {
        let mut j0 = 0;
        if brs == 1 {
            while j0 + 16 <= n {
                let mut p0 = 0;
                while p0 + 16 <= k {
                    let mut r = [_mm512_setzero_ps(); 16];
                    for (jj, r) in r.iter_mut().enumerate() {
                        *r = _mm512_loadu_ps(b.offset((j0 + jj) as isize * bcs + p0 as isize));
                    }
                    transpose16(&mut r);
                    for (pp, r) in r.iter().enumerate() {
                        _mm512_storeu_ps(dst.add((p0 + pp) * width + j0), *r);
                    }
                    p0 += 16;
                }
                for p in p0..k {
                    for j in j0..j0 + 16 {
                        *dst.add(p * width + j) = *b.offset(j as isize * bcs + p as isize);
                    }
                }
                j0 += 16;
            }
        }
        super::pack_columns(j0, n, k, (b, brs, bcs), dst, width);
    }

    /// Transposes 16 registers of 16 floats (row `i` lane `j` becomes row `j` lane `i`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(in crate::internals::codegen::cranelift) unsafe fn transpose16(r: &mut [__m512; 16]) {
        // Pairs of rows interleaved by 32-bit, then 64-bit elements, then 128-bit
        // lanes twice: the classic four stages.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
            r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
            r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
            r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
        }
        for i in 0..4 {
            t[i] = _mm512_shuffle_f32x4::<0x88>(r[i], r[i + 4]);
            t[i + 4] = _mm512_shuffle_f32x4::<0xDD>(r[i], r[i + 4]);
            t[i + 8] = _mm512_shuffle_f32x4::<0x88>(r[i + 8], r[i + 12]);
            t[i + 12] = _mm512_shuffle_f32x4::<0xDD>(r[i + 8], r[i + 12]);
        }
        for i in 0..4 {
            r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
            r[i + 8] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[i + 8]);
            r[i + 4] = _mm512_shuffle_f32x4::<0x88>(t[i + 4], t[i + 12]);
            r[i + 12] = _mm512_shuffle_f32x4::<0xDD>(t[i + 4], t[i + 12]);
        }
    }

    /// Rows `i..i + R` of `c`, 16 columns (one register) at a time.
    #[target_feature(enable = "avx512f,fma")]
    #[inline]
    unsafe fn rows_of<const R: usize>(
        i: usize,
        n: usize,
        k: usize,
        (tile, stride): (*const f32, isize),
        (a, ars, acs): View,
        (c, crs, ccs): ViewMut,
    ) {
        for col in (0..n).step_by(TILE_COLS) {
            let mut acc = [_mm512_setzero_ps(); R];
            for p in 0..k {
                let row = _mm512_loadu_ps(tile.offset(p as isize * stride + col as isize));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.offset((i + r) as isize * ars + p as isize * acs));
                    *acc = _mm512_fmadd_ps(x, row, *acc);
                }
            }
            let width = TILE_COLS.min(n - col);
            for (r, acc) in acc.iter().enumerate() {
                let out = c.offset((i + r) as isize * crs + col as isize * ccs);
                if ccs == 1 && width == TILE_COLS {
                    _mm512_storeu_ps(out, *acc);
                } else {
                    let mut lanes = [0f32; TILE_COLS];
                    _mm512_storeu_ps(lanes.as_mut_ptr(), *acc);
                    for (j, &v) in lanes.iter().enumerate().take(width) {
                        *out.offset(j as isize * ccs) = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c = a · b` on the views, the plain way in f64.
    fn reference(
        rows: usize,
        n: usize,
        k: usize,
        a: &[f32],
        (ars, acs): (usize, usize),
        b: &[f32],
        (brs, bcs): (usize, usize),
    ) -> Vec<f64> {
        let mut c = vec![0f64; rows * n];
        for i in 0..rows {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * ars + p * acs] as f64 * b[p * brs + j * bcs] as f64)
                    .sum();
            }
        }
        c
    }

    /// Seeded floats in `[-0.5, 0.5)`.
    fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        }
    }

    /// Every shape and layout the path takes (rows of whole tiles and not, `n` of whole
    /// column blocks (read in place when `b`'s rows are contiguous) and not, a
    /// transposed `b`, a transposed `c`) against the plain product.
    #[test]
    fn small_products_match_the_plain_product() {
        if !fits(16, 16) {
            return; // no AVX2 + FMA: `mpc_sgemm` calls gemm for everything
        }
        let mut next = uniform(7);
        for &(rows, n, k) in &[
            (16, 16, 16),
            (64, 5, 64),
            (7, 32, 3),
            (1, 1, 1),
            (13, 17, 64),
            (64, 31, 9),
        ] {
            for b_transposed in [false, true] {
                for c_transposed in [false, true] {
                    let a: Vec<f32> = (0..rows * k).map(|_| next()).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
                    let (brs, bcs) = if b_transposed { (1, k) } else { (n, 1) };
                    let (crs, ccs) = if c_transposed { (1, rows) } else { (n, 1) };
                    let mut c = vec![f32::NAN; rows * n];
                    assert!(fits(n, k));
                    // SAFETY: the views cover the vectors; `c` is its own.
                    unsafe {
                        matmul(
                            rows,
                            n,
                            k,
                            (a.as_ptr(), k as isize, 1),
                            (b.as_ptr(), brs as isize, bcs as isize),
                            (c.as_mut_ptr(), crs as isize, ccs as isize),
                        );
                    }
                    let want = reference(rows, n, k, &a, (k, 1), &b, (brs, bcs));
                    for i in 0..rows {
                        for j in 0..n {
                            let (got, want) = (c[i * crs + j * ccs] as f64, want[i * n + j]);
                            assert!(
                                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{rows}x{n}x{k} b^T {b_transposed} c^T {c_transposed}: c[{i},{j}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
        assert!(!fits(33, 16) && !fits(16, 65) && !fits(0, 4));
    }

    /// The AVX-512 code gives the AVX2 code's bits (the same fma chain per element), on
    /// every shape and layout, transposed `b` (packed through register transposes) too.
    #[test]
    fn sixteen_lanes_give_the_eight_lane_bits() {
        if !fits(16, 16) || !host_has_avx512() {
            return;
        }
        let mut next = uniform(11);
        for &(rows, n, k) in &[
            (16, 16, 16),
            (64, 5, 64),
            (7, 32, 3),
            (13, 17, 64),
            (64, 31, 9),
            (9, 32, 40),
        ] {
            for (brs, bcs) in [(n, 1), (1, k)] {
                let a: Vec<f32> = (0..rows * k).map(|_| next()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
                let run = |wide: bool| {
                    let mut c = vec![f32::NAN; rows * n];
                    let views = (
                        (a.as_ptr(), k as isize, 1),
                        (b.as_ptr(), brs as isize, bcs as isize),
                        (c.as_mut_ptr(), n as isize, 1),
                    );
                    // SAFETY: AVX2, FMA and AVX-512F checked; the views cover the vectors.
                    unsafe {
                        match wide {
                            true => avx512::matmul(rows, n, k, views.0, views.1, views.2),
                            false => avx2::matmul(rows, n, k, views.0, views.1, views.2),
                        }
                    }
                    c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                assert_eq!(run(true), run(false), "{rows}x{n}x{k}, b strides ({brs}, {bcs})");
            }
        }
    }
}
