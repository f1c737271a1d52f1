//! One loop kernel's outputs: their initialization at entry (reductions at their
//! identity, scatter targets at zero, over this call's part), the stores of the scalar
//! and f32x4 bodies, and inner reductions' register accumulators flushed into memory.
//!
//! In: the [`Gen`] state of `loops.rs` at the point of a store. Out: Cranelift stores.

use super::loops::{scalar_flags, vector_flags, Gen, F32, F32X4};
use crate::schedule::{Affine, ReduceOp, Store};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value};

impl Gen<'_, '_, '_> {
    /// Fills `[lo, hi)` elements of buffer `b` with `v`.
    pub(super) fn fill(&mut self, b: usize, lo: Value, hi: Value, v: f32) {
        let base = self.base[b].unwrap();
        let byte = self.fb.ins().ishl_imm_u(lo, 2);
        let ptr = self.fb.ins().iadd(base, byte);
        let n = self.fb.ins().isub(hi, lo);
        let val = self.fb.ins().f32const(v);
        self.fb.ins().call(self.im.fill, &[ptr, n, val]);
    }

    /// Reductions start at their identity and scatter targets at zero, over the part of
    /// the output this call owns.
    pub(super) fn init_outputs(&mut self) {
        for s in &self.lk.stores {
            match s {
                // A row block's partial sums start at the block (`emit_blocks`).
                Store::Reduce { at, .. } if self.lk.row_blocks.is_some() && at.coef[0] == 0 => {}
                Store::Reduce { buf, at, op, .. } => {
                    let len = self.p.buffers[*buf].len as i64;
                    let (lo, hi) = if self.r > 0 && at.coef[0] != 0 {
                        let (first, last) = self.own_rows();
                        let lo = self.fb.ins().imul_imm_s(first, at.coef[0]);
                        let hi = self.fb.ins().imul_imm_s(last, at.coef[0]);
                        (lo, hi)
                    } else {
                        (self.iconst(0), self.iconst(len))
                    };
                    self.fill(*buf, lo, hi, op.init());
                }
                Store::Scatter { .. } if self.lk.zeroed => {}
                Store::Scatter { buf, row_len, op, .. } => {
                    let lo = self.fb.ins().imul_imm_s(self.start, *row_len);
                    let hi = self.fb.ins().imul_imm_s(self.end, *row_len);
                    self.fill(*buf, lo, hi, op.init());
                }
                Store::Write { .. } => {}
            }
        }
    }

    /// The rows `start..end` stand for: themselves, or in a kernel split in row blocks,
    /// the rows of blocks `start..end`.
    pub(super) fn own_rows(&mut self) -> (Value, Value) {
        let Some(rows) = self.lk.row_blocks else {
            return (self.start, self.end);
        };
        let first = self.fb.ins().imul_imm_s(self.start, rows as i64);
        let last = self.fb.ins().imul_imm_s(self.end, rows as i64);
        let last = self.fb.ins().smin(last, self.bounds[0]);
        (first, last)
    }

    /// Elements of one block's slice of a partial buffer (`LoopKernel::row_blocks`).
    pub(super) fn block_len(&self, buf: usize) -> i64 {
        (self.p.buffers[buf].len / self.lk.blocks()) as i64
    }

    /// Where a reduction store writes: `at`, moved to the current row block's slice
    /// when it reduces over axis 0 in a kernel split in row blocks.
    pub(super) fn reduce_index(&mut self, buf: usize, at: &Affine, lane: i64) -> Value {
        let idx = self.affine(at, lane);
        match self.block {
            Some(block) if at.coef[0] == 0 => {
                let len = self.block_len(buf);
                let skip = self.fb.ins().imul_imm_s(block, len);
                self.fb.ins().iadd(idx, skip)
            }
            _ => idx,
        }
    }

    /// Combines each inner reduction's accumulators into its output element: `a op b`
    /// lane-wise, then a sum's lanes `((l0 + l1) + l2) + l3` (a max's by vector halves),
    /// then the element.
    pub(super) fn flush_accumulators(&mut self) {
        for k in 0..self.accumulators.len() {
            let Some([a, b]) = self.accumulators[k].take() else {
                continue;
            };
            let Store::Reduce { buf, at, op, .. } = self.lk.stores[k].clone() else {
                continue;
            };
            let (a, b) = (self.fb.use_var(a), self.fb.use_var(b));
            let v = self.combine(op, a, b);
            let idx = self.reduce_index(buf, &at, 0);
            let addr = self.addr(buf, idx);
            let old = self.fb.ins().load(F32, scalar_flags(), addr, 0);
            let new = match op {
                ReduceOp::Sum => {
                    let mut acc = self.fb.ins().extractlane(v, 0);
                    for lane in 1..4u8 {
                        let x = self.fb.ins().extractlane(v, lane);
                        acc = self.combine(op, acc, x);
                    }
                    self.combine(op, old, acc)
                }
                // Lanes by halves in vector registers, then the element: a scalar max
                // would branch on data (`combine`), and these maxima are not running
                // ones, so every branch would be a coin toss.
                ReduceOp::Max => {
                    let high = self.shuffle_lanes(F32X4, v, v, [2, 3, 2, 3]);
                    let v = self.combine(op, v, high);
                    let second = self.shuffle_lanes(F32X4, v, v, [1, 1, 1, 1]);
                    let v = self.combine(op, v, second);
                    let acc = self.fb.ins().extractlane(v, 0);
                    self.pick_scalar(FloatCC::GreaterThan, acc, old, acc, old)
                }
            };
            self.fb.ins().store(scalar_flags(), new, addr, 0);
        }
    }

    /// `op(old, v)` with the interpreter's rule.
    pub(super) fn combine(&mut self, op: ReduceOp, old: Value, v: Value) -> Value {
        match op {
            ReduceOp::Sum => self.fb.ins().fadd(old, v),
            // A running maximum rarely changes: a scalar one keeps the compare and
            // the (well predicted) branch, off the loop-carried chain that a blend
            // would lengthen.
            ReduceOp::Max if !self.is_vector(v) => {
                let c = self.fb.ins().fcmp(FloatCC::GreaterThan, v, old);
                self.fb.ins().select(c, v, old)
            }
            ReduceOp::Max => self.select_greater(v, old),
        }
    }

    /// `buf[idx] = f(buf[idx])` for an f32 (`F32`) or four (`F32X4`).
    fn update(&mut self, ty: Type, buf: usize, idx: Value, f: impl FnOnce(&mut Self, Value) -> Value) {
        let flags = if ty == F32X4 { vector_flags() } else { scalar_flags() };
        let a = self.addr(buf, idx);
        let old = self.fb.ins().load(ty, flags, a, 0);
        let new = f(self, old);
        self.fb.ins().store(flags, new, a, 0);
    }

    pub(super) fn emit_stores_scalar(&mut self) {
        for s in self.lk.stores.clone() {
            match s {
                Store::Write { buf, at, value } => {
                    let v = self.s(value);
                    let idx = self.affine(&at, 0);
                    let a = self.addr(buf, idx);
                    self.fb.ins().store(scalar_flags(), v, a, 0);
                }
                Store::Reduce { buf, at, value, op } => {
                    let v = self.s(value);
                    let idx = self.reduce_index(buf, &at, 0);
                    self.update(F32, buf, idx, |g, old| g.combine(op, old, v));
                }
                Store::Scatter {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                    op,
                } => {
                    let v = self.s(value);
                    let idx = self.row_index(row, row_len, &at, 0);
                    self.update(F32, buf, idx, |g, old| g.combine(op, old, v));
                }
            }
        }
    }

    /// The stores of the vector body for lane offset `lane`, four elements at a time.
    pub(super) fn emit_vector_stores(&mut self, lane: i64) {
        for (k, s) in self.lk.stores.clone().into_iter().enumerate() {
            match s {
                Store::Write { buf, at, value } => {
                    let v = self.splat_f(value);
                    let idx = self.affine(&at, lane);
                    let a = self.addr(buf, idx);
                    self.fb.ins().store(vector_flags(), v, a, 0);
                }
                Store::Reduce { value, op, .. } if self.accumulators[k].is_some() => {
                    let acc = self.accumulators[k].unwrap()[(lane / 4 % 2) as usize];
                    let v = self.splat_f(value);
                    let old = self.fb.use_var(acc);
                    let new = self.combine(op, old, v);
                    self.fb.def_var(acc, new);
                }
                Store::Reduce { buf, at, value, op } => {
                    let v = self.splat_f(value);
                    let idx = self.reduce_index(buf, &at, lane);
                    self.update(F32X4, buf, idx, |g, old| g.combine(op, old, v));
                }
                Store::Scatter {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                    op,
                } => {
                    let v = self.splat_f(value);
                    let idx = self.row_index(row, row_len, &at, lane);
                    self.update(F32X4, buf, idx, |g, old| g.combine(op, old, v));
                }
            }
        }
    }
}
