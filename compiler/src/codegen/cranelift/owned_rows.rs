//! Scatters whose threads own output rows: the guard that skips the other threads'
//! rows, and the positions gathered before they run.
//!
//! In: the loop of the axis at whose level the scatter's row is known (`Gen::guard`).
//! Out: that loop in blocks of [`BLOCK`] positions: first every position's row is
//! computed and the position written to a stack array, the count advanced by whether
//! the row is this thread's (no branch), then the owned positions run one after the
//! other. A branch per position on "is this row mine" was a coin toss for two threads
//! (each owns half the rows of a random graph); the block's second loop branches only
//! on its count. Positions keep their order, so each row's values combine in position
//! order as before.

use super::loops::{Gen, I64};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{Block, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value};

/// Positions gathered at a time (8 bytes each on the stack).
pub(super) const BLOCK: i64 = 256;

impl Gen<'_, '_, '_> {
    /// Axis `d`'s loop over `lo..hi`, the guard's level being `d + 1`.
    pub(super) fn emit_owned_positions(&mut self, d: usize, lo: Value, hi: Value) {
        let (row, _) = self.guard.expect("a guarded axis");
        let slot =
            self.fb
                .create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (BLOCK * 8) as u32, 3));
        let flags = MemFlagsData::trusted();
        // The row's own expressions at this level: all the first loop computes.
        let lk = self.lk;
        let mut needed = vec![false; lk.exprs.len()];
        needed[row] = true;
        for e in (0..=row).rev() {
            if needed[e] {
                for o in lk.exprs[e].operands() {
                    needed[o] |= self.level[o] == d + 1;
                }
            }
        }
        let row_exprs: Vec<usize> = (0..=row).filter(|&e| needed[e]).collect();
        let block_math = self.block_math(d);
        self.counted_loop(lo, hi, BLOCK, |g, first| {
            let last = g.fb.ins().iadd_imm_s(first, BLOCK);
            let last = g.fb.ins().smin(last, hi);
            let base = g.fb.ins().stack_addr(I64, slot, 0);
            let count = g.fb.declare_var(I64);
            let zero = g.iconst(0);
            g.fb.def_var(count, zero);
            g.counted_loop(first, last, 1, |g, i| {
                g.ival[d] = Some(i);
                for &e in &row_exprs {
                    let v = g.scalar(e);
                    g.sval[e] = Some(v);
                }
                let n = g.fb.use_var(count);
                let at = g.fb.ins().ishl_imm_u(n, 3);
                let at = g.fb.ins().iadd(base, at);
                g.fb.ins().store(flags, i, at, 0);
                let r = g.sval[row].expect("row computed");
                let r = g.fb.ins().sextend(I64, r);
                let ge = g.fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, r, g.start);
                let lt = g.fb.ins().icmp(IntCC::SignedLessThan, r, g.end);
                let mine = g.fb.ins().band(ge, lt);
                let mine = g.fb.ins().uextend(I64, mine);
                let n = g.fb.ins().iadd(n, mine);
                g.fb.def_var(count, n);
            });
            let n = g.fb.use_var(count);
            if let Some(plan) = &block_math {
                g.emit_block_math(plan, d, base, n);
                return;
            }
            let zero = g.iconst(0);
            g.counted_loop(zero, n, 1, |g, j| {
                let at = g.fb.ins().ishl_imm_u(j, 3);
                let at = g.fb.ins().iadd(base, at);
                let i = g.fb.ins().load(I64, flags, at, 0);
                g.ival[d] = Some(i);
                g.emit_inside(d);
            });
        });
    }

    /// Skips to `skip` when the scatter row at this level is not this call's.
    pub(super) fn emit_guard(&mut self, level: usize, skip: Block) {
        let Some((row, l)) = self.guard else { return };
        if l != level {
            return;
        }
        let r = self.sval[row].unwrap();
        let r = self.fb.ins().sextend(I64, r);
        let ge = self.fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, r, self.start);
        let lt = self.fb.ins().icmp(IntCC::SignedLessThan, r, self.end);
        let ok = self.fb.ins().band(ge, lt);
        let cont = self.fb.create_block();
        self.fb.ins().brif(ok, cont, &[], skip, &[]);
        self.fb.switch_to_block(cont);
    }

    /// One iteration of axis `d` whose scatter rows are this thread's already.
    pub(super) fn emit_inside(&mut self, d: usize) {
        let guard = self.guard.take();
        let skip = self.exit;
        self.emit_guard_and_inside(d, skip);
        self.guard = guard;
    }
}
