//! Sums of gathered rows (`mean(embed(tokens), axis: 1)` before its scale, an
//! embedding bag) as library code with the output row in registers.
//!
//! In: a loop kernel. Out: when it is `out[i, :] = Σ_t table[idx[i, t], :]` (domain
//! `[R, T, D]`: an i32 index load, its bounds check, the table's row `D` wide, one sum
//! store `out[D i + d]`), its function body: one call of [`mpc_gather_sum`] over the
//! rows this call owns; otherwise nothing, and the kernel is an ordinary loop.
//!
//! Why: the loop code keeps a reduction over a middle axis in memory, so each gathered
//! row is loaded, added to the output row in memory and stored back, four floats at a
//! time, with the index's bounds check redone per vector: the text classifier's
//! evaluation step spent half its time there. Here the output row stays in registers
//! (sixteen lanes where the host has AVX-512, eight with AVX2) while the row's indices
//! are walked.
//!
//! The same sums in the same order (each element `0 + r_0 + r_1 + ..` in `t` order),
//! the same bounds check: an index outside `[0, rows)` reads row 0 and reports the
//! check and the index in `err`, as the loop does.

use super::{Imports, Table};
use crate::schedule::{Affine, Expr, LoopKernel, Program, ReduceOp, Store};
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_frontend::FunctionBuilder;

/// The widest row the routine takes (its accumulators live on the stack).
const MAX_ROW: usize = 1024;

/// `(idx, idx at, table, table rows, row length, out, check)` when `lk` is such a sum.
fn pattern(p: &Program, lk: &LoopKernel) -> Option<(usize, Affine, usize, i64, usize, usize, u32)> {
    let [Expr::Load { buf: idx, at: idx_at }, Expr::CheckIndex { index: 0, bound, check }, Expr::LoadRow {
        buf: table,
        row: 1,
        row_len,
        at: within,
    }] = lk.exprs.as_slice()
    else {
        return None;
    };
    let [Store::Reduce {
        buf: out,
        at,
        value: 2,
        op: ReduceOp::Sum,
    }] = lk.stores.as_slice()
    else {
        return None;
    };
    let &[_, _, d] = lk.domain.as_slice() else { return None };
    let plain = lk.scatter_rows.is_none() && lk.row_blocks.is_none() && lk.col_chunks.is_none() && !lk.zeroed;
    let fixed = lk.domain.iter().all(|&n| p.dynamic_slot(n).is_none());
    let d64 = d as i64;
    let shapes = *row_len == d64
        && *within
            == Affine {
                coef: vec![0, 0, 1],
                offset: 0,
            }
        && *at
            == Affine {
                coef: vec![d64, 0, 1],
                offset: 0,
            }
        && idx_at.coef[2] == 0;
    (plain && fixed && shapes && d <= MAX_ROW && *bound > 0)
        .then(|| (*idx, idx_at.clone(), *table, *bound, d, *out, *check))
}

/// The body of such a sum as one call (see the module doc), if `lk` is one; `false`
/// leaves `fb` untouched.
pub(super) fn emit(fb: &mut FunctionBuilder, p: &Program, lk: &LoopKernel, im: &Imports, table: &mut Table) -> bool {
    let Some((idx, idx_at, rows_of, bound, d, out, check)) = pattern(p, lk) else {
        return false;
    };
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let (bufs, start, end, err) = (params[0], params[1], params[2], params[3]);
    let k = |fb: &mut FunctionBuilder, v: i64| fb.ins().iconst(types::I64, v);
    let idx_base = table.base(fb, bufs, idx);
    let idx_ptr = fb.ins().iadd_imm_s(idx_base, idx_at.offset * 4);
    let table_ptr = table.base(fb, bufs, rows_of);
    let out_ptr = table.base(fb, bufs, out);
    let args = [
        idx_ptr,
        k(fb, idx_at.coef[0]),
        k(fb, idx_at.coef[1]),
        k(fb, lk.domain[1] as i64),
        table_ptr,
        k(fb, bound),
        k(fb, d as i64),
        out_ptr,
        k(fb, check as i64),
        start,
        end,
        err,
    ];
    fb.ins().call(im.gather_sum, &args);
    fb.ins().return_(&[]);
    fb.seal_all_blocks();
    true
}

/// `out[i * d + c] = Σ_t table[idx[i * irs + t * ics] * d + c]` for rows `start..end`
/// (see the module doc).
///
/// # Safety
/// The pointers hold every element these indices address (`idx` within its buffer for
/// rows `start..end` and `t < steps`, `table` `rows * d` floats, `out` `end * d`), and
/// `err` two i32s.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe extern "C" fn mpc_gather_sum(
    idx: *const i32,
    irs: i64,
    ics: i64,
    steps: i64,
    table: *const f32,
    rows: i64,
    d: i64,
    out: *mut f32,
    check: i64,
    start: i64,
    end: i64,
    err: *mut i32,
) {
    let args = Args {
        idx,
        irs: irs as isize,
        ics: ics as isize,
        steps: steps.max(0) as usize,
        table,
        rows,
        d: d.max(0) as usize,
        out,
        check: check as i32,
        err,
    };
    let (start, end) = (start.max(0) as usize, end.max(0) as usize);
    #[cfg(target_arch = "x86_64")]
    if super::wide_math::available() {
        // SAFETY: the host has AVX-512; the caller's contract.
        return unsafe { rows_avx512(&args, start, end) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the host has AVX2; the caller's contract.
        return unsafe { rows_avx2(&args, start, end) };
    }
    // SAFETY: the caller's contract.
    unsafe { sum_rows(&args, start, end) }
}

struct Args {
    idx: *const i32,
    irs: isize,
    ics: isize,
    steps: usize,
    table: *const f32,
    rows: i64,
    d: usize,
    out: *mut f32,
    check: i32,
    err: *mut i32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn rows_avx512(a: &Args, start: usize, end: usize) {
    // SAFETY: the caller's contract.
    unsafe { sum_rows(a, start, end) }
}

/// The same on eight lanes, for AVX2 hosts without AVX-512 (the same adds in the same
/// order: the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows_avx2(a: &Args, start: usize, end: usize) {
    // SAFETY: the caller's contract.
    unsafe { sum_rows(a, start, end) }
}

/// The rows `start..end`: each output row accumulated on the stack (in registers
/// once the compiler keeps it there), gathered rows added in `t` order.
#[inline(always)]
unsafe fn sum_rows(a: &Args, start: usize, end: usize) {
    let mut acc = [0f32; MAX_ROW];
    let acc = &mut acc[..a.d];
    for i in start..end {
        acc.fill(0.0);
        for t in 0..a.steps {
            // SAFETY (the reads and writes below): the caller's contract.
            let j = unsafe { *a.idx.offset(i as isize * a.irs + t as isize * a.ics) };
            let row = if (0..a.rows).contains(&(j as i64)) {
                j as usize
            } else {
                unsafe { *a.err = a.check + 1 };
                unsafe { *a.err.add(1) = j };
                0
            };
            let src = unsafe { std::slice::from_raw_parts(a.table.add(row * a.d), a.d) };
            for (s, &x) in acc.iter_mut().zip(src) {
                *s += x;
            }
        }
        unsafe { std::slice::from_raw_parts_mut(a.out.add(i * a.d), a.d) }.copy_from_slice(acc);
    }
}
