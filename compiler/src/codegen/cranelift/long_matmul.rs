//! Products with a long depth and a small result (`c = aᵀ b`-shaped weight gradients:
//! `[in, rows] x [rows, out]` over thousands of rows) as AVX-512 code of our own,
//! instead of a `gemm` call.
//!
//! In: one task of `mpc_sgemm` (a 64-row block of one batch's product) on strided
//! views. Out: its rows of `c`, when the host has AVX-512, `a`'s columns and `b`'s rows
//! are contiguous, and the depth is long against the result (`fits`); otherwise
//! nothing, and the caller calls `gemm`.
//!
//! Why: a linear layer's weight gradient over a graph's nodes is `xᵀ dy`, `64 x 2000`
//! by `2000 x 4` on the graph model: a result too small for `gemm`'s blocking to pay
//! (it packs both operands for 256 outputs) and for more than one task, so it ran at
//! a tenth of one core's peak on one thread (87-109 us). Here each depth step loads a
//! column of `a` (up to four registers of sixteen rows) and broadcasts the row of `b`,
//! and sixteen accumulators (rows by columns of `c`) take one fma each: the product
//! streams both operands once per tile of columns.
//!
//! Every element is one fma chain over the depth in order from zero, whichever thread
//! runs the task: the result does not depend on the split.

/// Products at least this deep run here (shallower ones are `gemm`'s or
/// `small_matmul`'s).
const MIN_K: usize = 256;
/// At most this many bytes of `a` per task: the operand is streamed once per tile of
/// columns, so it must stay in L2.
const MAX_A_BYTES: usize = 512 * 1024;
/// At most this many columns per task.
const MAX_N: usize = 64;

/// A strided matrix view: base, row stride, column stride (in elements).
type View = (*const f32, isize, isize);
type ViewMut = (*mut f32, isize, isize);

/// Whether `c (rows x n) = a (rows x k) · b (k x n)` runs here on this host: `a`'s
/// rows contiguous along a column (row stride 1), `b`'s columns along a row.
pub(super) fn fits(rows: usize, n: usize, k: usize, a: View, b: View) -> bool {
    let shaped = k >= MIN_K && (1..=MAX_N).contains(&n) && rows * k * 4 <= MAX_A_BYTES;
    shaped && a.1 == 1 && b.2 == 1 && super::wide_math::available()
}

/// `c = a · b` for the `rows x n` block (see the module doc). Only called where
/// [`fits`] holds.
///
/// # Safety
/// The views cover `rows x k`, `k x n` and `rows x n` elements.
pub(super) unsafe fn matmul(rows: usize, n: usize, k: usize, a: View, b: View, c: ViewMut) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `fits` checked AVX-512; the caller's views.
    unsafe {
        match rows.div_ceil(16) {
            1 => avx512::tiles::<1, 16>(rows, n, k, a, b, c),
            2 => avx512::tiles::<2, 8>(rows, n, k, a, b, c),
            3 => avx512::tiles::<3, 5>(rows, n, k, a, b, c),
            _ => avx512::tiles::<4, 4>(rows, n, k, a, b, c),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (rows, n, k, a, b, c);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{View, ViewMut};
    use std::arch::x86_64::*;

    /// `c`'s block in tiles of `R` registers of sixteen rows (the tail masked) by `C`
    /// columns: `R x C` accumulators, one fma chain each over the depth in order.
    ///
    /// # Safety
    /// AVX-512F; `rows <= 16 R`; the views cover their elements.
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn tiles<const R: usize, const C: usize>(
        rows: usize,
        n: usize,
        k: usize,
        (a, _, acs): View,
        (b, brs, _): View,
        (c, crs, ccs): ViewMut,
    ) {
        // Lanes of each row register that are inside the block.
        let masks: [__mmask16; R] = std::array::from_fn(|r| {
            let live = rows.saturating_sub(16 * r).min(16);
            ((1u32 << live) - 1) as __mmask16
        });
        for c0 in (0..n).step_by(C) {
            // A tile's columns past `n` read the last column again and are not stored.
            let col: [usize; C] = std::array::from_fn(|j| (c0 + j).min(n - 1));
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            for p in 0..k {
                // SAFETY (the loads): inside the views, lanes past `rows` masked off.
                let column = unsafe { a.offset(p as isize * acs) };
                let x: [__m512; R] =
                    std::array::from_fn(|r| unsafe { _mm512_maskz_loadu_ps(masks[r], column.add(16 * r)) });
                let row = unsafe { b.offset(p as isize * brs) };
                for (j, &cj) in col.iter().enumerate() {
                    let y = _mm512_set1_ps(unsafe { *row.add(cj) });
                    for r in 0..R {
                        acc[r][j] = _mm512_fmadd_ps(x[r], y, acc[r][j]);
                    }
                }
            }
            let mut lanes = [0f32; 16];
            for (j, _) in col.iter().enumerate().take(n - c0) {
                for (r, reg) in acc.iter().enumerate() {
                    // SAFETY: a 16-float stack row; `c`'s elements of the block.
                    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), reg[j]) };
                    for (i, &v) in lanes.iter().enumerate().take(rows.saturating_sub(16 * r).min(16)) {
                        let at = (16 * r + i) as isize * crs + (c0 + j) as isize * ccs;
                        unsafe { *c.offset(at) = v };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of 1 to 64 rows, columns in whole and partial tiles, against an f64 sum:
    /// within the f32 rounding of a 300-deep chain.
    #[test]
    fn long_products_match_a_reference() {
        if !super::super::wide_math::available() {
            eprintln!("no AVX-512 on this host: nothing to test");
            return;
        }
        let k = 300;
        for (rows, n) in [(1, 1), (5, 3), (16, 16), (17, 9), (33, 8), (40, 5), (64, 4), (64, 64)] {
            // a: `rows x k` stored column-major (a column of rows per depth step), as
            // `xᵀ` is; b: `k x n` row-major.
            let a: Vec<f32> = (0..rows * k).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5).collect();
            let mut c = vec![f32::NAN; rows * n + 1];
            let (av, bv) = ((a.as_ptr(), 1, rows as isize), (b.as_ptr(), n as isize, 1));
            assert!(fits(rows, n, k, av, bv));
            // SAFETY: the views cover their elements; `c` has one more, which must stay.
            unsafe { matmul(rows, n, k, av, bv, (c.as_mut_ptr(), n as isize, 1)) };
            for i in 0..rows {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| a[p * rows + i] as f64 * b[p * n + j] as f64).sum();
                    let got = c[i * n + j];
                    assert!(
                        (got as f64 - want).abs() < 1e-4,
                        "{rows}x{n}: [{i}, {j}] {got} vs {want}"
                    );
                }
            }
            assert!(c[rows * n].is_nan(), "{rows}x{n}: wrote past the block");
        }
    }
}
