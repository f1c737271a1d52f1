//! Segment kernels as library code, called from JIT code: scatter-max, its argmax, and
//! the argmax scatter that is scatter-max's transpose.
//!
//! In: contiguous operands and the part `start..end` of the output rows this thread
//! owns. Out: those rows, exactly as the interpreter computes them (every thread scans
//! all positions in order, so the result never depends on the thread count). An argmax
//! scatter into an output zeroed before (`Segment::zeroed`) takes the positions
//! `start..end` instead: each element it writes belongs to one position. An index
//! outside `[0, rows)` writes nothing and is reported through `err` (check number + 1,
//! offending index), like a bounds check in a loop kernel. An argmax may write its
//! running maxima to a segment max's output too (`maxima`, null when not).

use crate::schedule::SegmentOp;
use std::sync::atomic::{AtomicI32, Ordering};

/// `op` as the integer the JIT passes.
pub fn op_code(op: SegmentOp, zeroed: bool) -> i64 {
    match op {
        SegmentOp::Max => 0,
        SegmentOp::Argmax => 1,
        SegmentOp::ArgmaxScatter if zeroed => 3,
        SegmentOp::ArgmaxScatter => 2,
    }
}

fn report(err: *mut i32, check: i64, index: i32) {
    // Threads may report at once: atomics keep that defined.
    // SAFETY: `err` points at the run's two i32 error slots.
    let (code, value) = unsafe { (AtomicI32::from_ptr(err), AtomicI32::from_ptr(err.add(1))) };
    code.store(check as i32 + 1, Ordering::Relaxed);
    value.store(index, Ordering::Relaxed);
}

thread_local! {
    /// Running maxima and their positions, reused across calls (no allocation per step).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<i32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// See the module docs. Pointers are the operands' first elements.
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn mpc_segment(
    op: i64,
    values: *const f32,
    index: *const i32,
    out: *mut u8,
    positions: i64,
    row_len: i64,
    rows: i64,
    check: i64,
    start: i64,
    end: i64,
    err: *mut i32,
    maxima: *mut f32,
) {
    let (positions, d, rows) = (positions as usize, row_len as usize, rows as usize);
    if op == 3 {
        let (start, end) = (start as usize, end.min(positions as i64) as usize);
        if start < end {
            unsafe { scatter_positions(values, index, out as *mut f32, (start, end), d, rows, (check, err)) };
        }
        return;
    }
    let (start, end) = (start as usize, end.min(rows as i64) as usize);
    if start >= end {
        return;
    }
    // SAFETY: the scheduler sized every buffer for these shapes.
    let own = (end - start) * d;
    match op {
        0 => {
            // The maxima alone, written in place: a row's first position is copied, a
            // later one wins where it is strictly greater (as with the argmax below,
            // without a position per element to keep).
            let values = unsafe { std::slice::from_raw_parts(values, positions * d) };
            let index = unsafe { std::slice::from_raw_parts(index, positions) };
            let out = unsafe { std::slice::from_raw_parts_mut((out as *mut f32).add(start * d), own) };
            out.fill(f32::NEG_INFINITY);
            SCRATCH.with(|scratch| {
                let seen = &mut scratch.borrow_mut().1;
                own_positions(index, rows, start, end, (check, err), seen, |p, row, first| {
                    let (slot, v) = (row * d, &values[p * d..p * d + d]);
                    let best = &mut out[slot..slot + d];
                    if first {
                        best.copy_from_slice(v);
                    } else {
                        for (b, &v) in best.iter_mut().zip(v) {
                            *b = if v > *b { v } else { *b };
                        }
                    }
                });
            });
        }
        1 => {
            // The positions of the maxima, written in place (-1 for a row without any);
            // the running maxima in scratch. A row's first position is taken whole; a
            // later one wins where strictly greater, so ties keep the lowest position.
            let values = unsafe { std::slice::from_raw_parts(values, positions * d) };
            let index = unsafe { std::slice::from_raw_parts(index, positions) };
            let out = unsafe { std::slice::from_raw_parts_mut((out as *mut i32).add(start * d), own) };
            out.fill(-1);
            SCRATCH.with(|scratch| {
                let (scratch, seen) = &mut *scratch.borrow_mut();
                // The running maxima are a segment max's output when the kernel writes
                // it too (`Segment::maxima`): rows without positions stay -inf there.
                let best: &mut [f32] = if maxima.is_null() {
                    scratch.clear();
                    scratch.resize(own, f32::NEG_INFINITY);
                    scratch
                } else {
                    let m = unsafe { std::slice::from_raw_parts_mut(maxima.add(start * d), own) };
                    m.fill(f32::NEG_INFINITY);
                    m
                };
                own_positions(index, rows, start, end, (check, err), seen, |p, row, first| {
                    // Whole rows as slices: no bounds check per element.
                    let (slot, v, pos) = (row * d, &values[p * d..p * d + d], p as i32);
                    let (best, arg) = (&mut best[slot..slot + d], &mut out[slot..slot + d]);
                    if first {
                        best.copy_from_slice(v);
                        arg.fill(pos);
                    } else {
                        take_greater(best, arg, v, pos);
                    }
                });
            });
        }
        _ => {
            // values: cotangent [positions, d]; index: argmax [positions, d]; out [rows, d].
            let g = unsafe { std::slice::from_raw_parts(values, positions * d) };
            let argmax = unsafe { std::slice::from_raw_parts(index, positions * d) };
            let out = unsafe { std::slice::from_raw_parts_mut((out as *mut f32).add(start * d), own) };
            out.fill(0.0);
            // Row by row: the column is the position in the row (no division). Every
            // thread reads every argmax and keeps those of its rows, which are half of
            // them at random on two threads: a branch on it mispredicted every other
            // element (670 us for gnn-nonlinear's 3000 x 32), so the store goes to the
            // row or to a sink, picked without a branch.
            let (own_rows, out) = (end - start, out.as_mut_ptr());
            let mut sink = 0.0f32;
            let sink: *mut f32 = &mut sink;
            each_argmax(argmax, g, d, rows, (check, err), |a, c, v| {
                let r = a.wrapping_sub(start);
                // SAFETY: `r < own_rows` puts the element inside this thread's rows.
                let at = if r < own_rows {
                    unsafe { out.add(r * d + c) }
                } else {
                    sink
                };
                unsafe { *at = v };
            });
        }
    }
}

/// Calls `put(row, column, value)` for each element of an argmax scatter's rows of `d`
/// (`argmax`, `g`) whose row is in `[0, rows)`; -1 (a segment without positions) passes
/// nothing, and another row outside is reported through `(check, err)`.
fn each_argmax(
    argmax: &[i32],
    g: &[f32],
    d: usize,
    rows: usize,
    (check, err): (i64, *mut i32),
    mut put: impl FnMut(usize, usize, f32),
) {
    for (args, g) in argmax.chunks_exact(d).zip(g.chunks_exact(d)) {
        for (c, (&a, &v)) in args.iter().zip(g).enumerate() {
            if a as usize >= rows {
                if a >= 0 {
                    report(err, check, a);
                }
                continue;
            }
            put(a as usize, c, v);
        }
    }
}

/// `out[argmax[p, c], c] = g[p, c]` for the positions `p` in `start..end` of an output
/// zeroed before: a position's elements go to rows of its own segment, which no other
/// position writes, so threads that split the positions never write the same element.
///
/// # Safety
/// `g` and `argmax` hold `end` rows of `d`; `out` holds `rows` rows of `d`.
unsafe fn scatter_positions(
    g: *const f32,
    argmax: *const i32,
    out: *mut f32,
    (start, end): (usize, usize),
    d: usize,
    rows: usize,
    (check, err): (i64, *mut i32),
) {
    let g = unsafe { std::slice::from_raw_parts(g.add(start * d), (end - start) * d) };
    let argmax = unsafe { std::slice::from_raw_parts(argmax.add(start * d), (end - start) * d) };
    // SAFETY: `each_argmax` passes rows below `rows`, columns below `d`.
    each_argmax(argmax, g, d, rows, (check, err), |a, c, v| unsafe {
        *out.add(a * d + c) = v
    });
}

/// Calls `visit(position, row - start, first)` for each position whose row lies in
/// `start..end`, in position order; `first` is true for a row's first position (`seen`
/// is scratch: a flag per owned row, then the owned positions). An index outside `[0, rows)` is reported
/// through `(check, err)` and skipped.
fn own_positions(
    index: &[i32],
    rows: usize,
    start: usize,
    end: usize,
    (check, err): (i64, *mut i32),
    seen: &mut Vec<i32>,
    mut visit: impl FnMut(usize, usize, bool),
) {
    // `seen` holds a flag per owned row, then this thread's positions: gathered first
    // without a branch on the row (on two threads half the positions are another's, at
    // random, and a branch on it mispredicted every other one).
    let own_rows = end - start;
    seen.clear();
    seen.resize(own_rows + index.len(), 0);
    let (flags, own) = seen.split_at_mut(own_rows);
    let (mut n, mut bad) = (0, false);
    for (p, &i) in index.iter().enumerate() {
        own[n] = p as i32;
        n += ((i as usize).wrapping_sub(start) < own_rows) as usize;
        bad |= i as usize >= rows;
    }
    if bad {
        // Reported in position order, as a loop kernel's bounds check would be.
        for &i in index.iter().filter(|&&i| i as usize >= rows) {
            report(err, check, i);
        }
    }
    for &p in &own[..n] {
        let r = index[p as usize] as usize - start;
        let first = flags[r] == 0;
        flags[r] = 1;
        visit(p as usize, r, first);
    }
}

/// Where `v` is strictly greater than `best`, takes it and records `pos` in `arg` (NaN
/// never wins). Four lanes at a time with SSE2 masks on x86-64: the compiler leaves the
/// two-array select scalar, with a branch per element.
fn take_greater(best: &mut [f32], arg: &mut [i32], v: &[f32], pos: i32) {
    let n = best.len().min(arg.len()).min(v.len());
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every access is below `n`, the shortest length.
        unsafe {
            let p = _mm_set1_epi32(pos);
            while j + 4 <= n {
                let b = _mm_loadu_ps(best.as_ptr().add(j));
                let x = _mm_loadu_ps(v.as_ptr().add(j));
                let take = _mm_cmpgt_ps(x, b);
                _mm_storeu_ps(
                    best.as_mut_ptr().add(j),
                    _mm_or_ps(_mm_and_ps(take, x), _mm_andnot_ps(take, b)),
                );
                let a = _mm_loadu_si128(arg.as_ptr().add(j) as *const __m128i);
                let t = _mm_castps_si128(take);
                let a = _mm_or_si128(_mm_and_si128(t, p), _mm_andnot_si128(t, a));
                _mm_storeu_si128(arg.as_mut_ptr().add(j) as *mut __m128i, a);
                j += 4;
            }
        }
    }
    for j in j..n {
        if v[j] > best[j] {
            best[j] = v[j];
            arg[j] = pos;
        }
    }
}
