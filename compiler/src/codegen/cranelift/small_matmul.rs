//! Small matrix products (a side of 32 or less against a depth of 64 or less) as
//! AVX2 + FMA code of our own instead of a `gemm` call.
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
//! step one fma: the same on every thread and at every thread count.

/// The widest `n` and deepest `k` this path takes; `b`'s tile is `k` by `n` rounded
/// up to 16.
const MAX_N: usize = 32;
const MAX_K: usize = 64;
const TILE_COLS: usize = 16;
const TILE_ROWS: usize = 4;

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

/// `c = a · b` (see the module doc).
///
/// # Safety
/// `fits(n, k)` holds; the views cover `rows x k`, `k x n` and `rows x n` elements at
/// their strides; `c` does not overlap `a` or `b`.
pub(super) unsafe fn matmul(rows: usize, n: usize, k: usize, a: View, b: View, c: ViewMut) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `fits` checked AVX2 and FMA; the caller vouches for the views.
    unsafe {
        avx2::matmul(rows, n, k, a, b, c)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, n, k, a, b, c);
        unreachable!("small_matmul::fits is false off x86-64");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{View, ViewMut, MAX_K, MAX_N, TILE_COLS, TILE_ROWS};
    use std::arch::x86_64::*;

    /// Columns of the packed tile: `MAX_N` rounded up to whole column blocks.
    const PACKED: usize = MAX_N.div_ceil(TILE_COLS) * TILE_COLS;

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
            for j in 0..n {
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

    /// Every shape and layout the path takes (rows of whole tiles and not, `n` of whole
    /// column blocks (read in place when `b`'s rows are contiguous) and not, a
    /// transposed `b`, a transposed `c`) against the plain product.
    #[test]
    fn small_products_match_the_plain_product() {
        if !fits(16, 16) {
            return; // no AVX2 + FMA: `mpc_sgemm` calls gemm for everything
        }
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
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
}
