//! Long math of a scatter's owned positions, sixteen (or eight) lanes at a time.
//!
//! In: a loop kernel whose threads own its scatter's output rows ([`super::owned_rows`]
//! gathers each block's owned positions first) and whose long math `split_long_math`
//! left in it (`schedule::long_math::math_in_owned_blocks`): `exp`, `log`, `tanh` or
//! `erf` of per-element arguments along a vectorized innermost axis. Out: the code that
//! runs a block's owned positions in chunks: each position's arguments into a stack
//! array of at most [`CHUNK_FLOATS`] (it stays in L1), one [`super::wide_math`] call
//! per function over the chunk's array in place, then the positions again, reading the
//! functions' values from the array for the rest of the body and the stores.
//!
//! Why: Cranelift's inline polynomials run four lanes, the routine sixteen (AVX-512) or
//! eight (AVX2); and split into kernels of their own (an arguments loop, a map, then
//! the scatter), the math passed three times over a `[positions, row]` temporary, the
//! scatter reading its rows' values from wherever another thread had computed them.
//!
//! Values do not change: the routine computes the inline code's function of the same
//! argument bits, and the positions run in the same order.

use super::loops::{Gen, F32X4, I64};
use super::owned_rows::BLOCK;
use super::wide_math;
use crate::schedule::long_math::{first_round_math, owned_blocks_fit};
use crate::schedule::{Expr, Store};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};

/// The chunk's arrays hold at most this many floats (16 KiB: a third of L1), or one
/// position's rows where they are wider.
const CHUNK_FLOATS: usize = 4096;

/// Innermost extents up to this many elements run as straight-line vector bodies.
const STRAIGHT_WIDTH: usize = 32;

/// How one kernel's owned positions run their long math (see the module doc).
pub(super) struct BlockMath {
    /// The long expressions moved to the routine, with their op codes.
    longs: Vec<(usize, i64)>,
    /// The innermost axis's extent: floats per position in each array.
    width: i64,
    /// Positions per chunk.
    chunk: i64,
    /// The expressions inside the owned axis that the functions' arguments need.
    args: Vec<bool>,
    /// Those that the stores need, given the functions' values.
    rest: Vec<bool>,
}

impl Gen<'_, '_, '_> {
    /// The plan for axis `d`'s owned positions, when the host runs the routine and the
    /// loop has long math of math-free arguments along its vectorized innermost axis.
    pub(super) fn block_math(&self, d: usize) -> Option<BlockMath> {
        let lk = self.lk;
        if !wide_math::maps() || !self.vector || d + 2 != self.r || lk.col_chunks.is_some() {
            return None;
        }
        if !owned_blocks_fit(self.p, lk) {
            return None;
        }
        let width = lk.domain[self.r - 1];
        let longs: Vec<(usize, i64)> = first_round_math(lk, &self.live, &self.level)
            .into_iter()
            .filter_map(|(e, op)| Some((e, wide_math::op_code(op)?)))
            .collect();
        if longs.is_empty() {
            return None;
        }
        let n = lk.exprs.len();
        let is_long = |e: usize| longs.iter().any(|&(l, _)| l == e);
        // Backward closures over the expressions inside the owned axis (levels d + 1
        // and r); those outside are computed already.
        let close = |marked: &mut Vec<bool>, stop: &dyn Fn(usize) -> bool| {
            for e in (0..n).rev() {
                if marked[e] && !stop(e) {
                    for o in lk.exprs[e].operands() {
                        marked[o] |= self.level[o] > d;
                    }
                }
            }
        };
        let mut args = vec![false; n];
        for &(e, _) in &longs {
            args[e] = true;
        }
        close(&mut args, &|_| false);
        for &(e, _) in &longs {
            args[e] = false;
        }
        let mut rest = vec![false; n];
        for s in &lk.stores {
            rest[s.value()] = true;
            if let Store::Scatter { row, .. } = s {
                rest[*row] = true;
            }
        }
        close(&mut rest, &is_long);
        let chunk = (CHUNK_FLOATS / (width * longs.len())).clamp(1, BLOCK as usize);
        Some(BlockMath {
            longs,
            width: width as i64,
            chunk: chunk as i64,
            args,
            rest,
        })
    }

    /// The owned positions `list[0..count]` of axis `d` (see the module doc).
    pub(super) fn emit_block_math(&mut self, plan: &BlockMath, d: usize, list: Value, count: Value) {
        let per_long = plan.chunk * plan.width;
        let bytes = per_long * plan.longs.len() as i64 * 4;
        let slot = self
            .fb
            .create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 4));
        let zero = self.iconst(0);
        self.counted_loop(zero, count, plan.chunk, |g, first| {
            let last = g.fb.ins().iadd_imm_s(first, plan.chunk);
            let last = g.fb.ins().smin(last, count);
            let arrays = g.fb.ins().stack_addr(I64, slot, 0);
            // The arguments, each function's in its array.
            g.counted_loop(first, last, 1, |g, j| {
                g.owned_position(plan, d, list, j, first, arrays, true);
            });
            // The functions, in place.
            let positions = g.fb.ins().isub(last, first);
            let n = g.fb.ins().imul_imm_s(positions, plan.width);
            for (k, &(_, code)) in plan.longs.iter().enumerate() {
                let at = g.fb.ins().iadd_imm_s(arrays, k as i64 * per_long * 4);
                let op = g.iconst(code);
                g.fb.ins().call(g.im.map_math, &[op, at, at, n]);
            }
            // The rest, with the functions' values.
            g.counted_loop(first, last, 1, |g, j| {
                g.owned_position(plan, d, list, j, first, arrays, false);
            });
        });
    }

    /// Owned position `list[j]` of the chunk from `first`: its arguments into the arrays
    /// (`arguments`), or the rest of its body with the functions' values from them.
    #[allow(clippy::too_many_arguments)]
    fn owned_position(
        &mut self,
        plan: &BlockMath,
        d: usize,
        list: Value,
        j: Value,
        first: Value,
        arrays: Value,
        arguments: bool,
    ) {
        let at = self.fb.ins().ishl_imm_u(j, 3);
        let at = self.fb.ins().iadd(list, at);
        let i = self.fb.ins().load(I64, MemFlagsData::trusted(), at, 0);
        self.ival[d] = Some(i);
        let marked = if arguments { &plan.args } else { &plan.rest };
        for (e, &needed) in marked.iter().enumerate() {
            if needed && self.level[e] == d + 1 {
                let v = self.scalar(e);
                self.sval[e] = Some(v);
            }
        }
        // Byte offset of this position's row in each array.
        let row = self.fb.ins().isub(j, first);
        let row = self.fb.ins().imul_imm_s(row, plan.width * 4);
        let row = self.fb.ins().iadd(arrays, row);
        let inner = self.r - 1;
        let body = |g: &mut Self, lane: i64| {
            let column = g.ival[inner].expect("inner index set");
            let column = g.fb.ins().ishl_imm_u(column, 2);
            let base = g.fb.ins().iadd(row, column);
            let flags = super::loops::vector_flags();
            let per_long = plan.chunk * plan.width * 4;
            for (e, &needed) in marked.iter().enumerate() {
                let long = plan.longs.iter().position(|&(l, _)| l == e);
                let offset = long.map(|k| k as i64 * per_long + lane * 4);
                if g.level[e] != g.r {
                    continue;
                }
                if let (false, Some(offset)) = (arguments, offset) {
                    let v = g.fb.ins().load(F32X4, flags, base, offset as i32);
                    g.vval[e] = Some(v);
                } else if needed {
                    let v = g.vector_expr(e, lane);
                    g.vval[e] = Some(v);
                }
            }
            if arguments {
                for (k, &(e, _)) in plan.longs.iter().enumerate() {
                    let Expr::Unary(_, a) = g.lk.exprs[e] else {
                        unreachable!("a long expression is a unary op")
                    };
                    let v = g.splat_f(a);
                    g.fb.ins()
                        .store(flags, v, base, (k as i64 * per_long + lane * 4) as i32);
                }
            } else {
                g.emit_vector_stores(lane);
            }
        };
        if plan.width as usize <= STRAIGHT_WIDTH {
            let zero = self.iconst(0);
            self.ival[inner] = Some(zero);
            for lane in (0..plan.width).step_by(4) {
                body(self, lane);
            }
        } else {
            let (zero, end) = (self.iconst(0), self.iconst(plan.width));
            self.counted_loop(zero, end, 4, |g, c| {
                g.ival[inner] = Some(c);
                body(g, 0);
            });
        }
    }
}
