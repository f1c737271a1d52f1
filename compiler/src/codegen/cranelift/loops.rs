//! One loop kernel as a Cranelift function: the loop structure.
//!
//! In: a [`LoopKernel`] of a [`Program`]. Out: the function body: buffer bases and
//! reduction/scatter initialization at entry, a loop nest over the domain (the outermost
//! axis, or the scatter rows, limited to this call's `start..end`), each expression at
//! the depth of the deepest axis it reads (`schedule::analysis`), the stores innermost,
//! and a vectorized innermost loop where everything along it is contiguous f32 math.
//! Short inner axes of a known extent (GAT's heads and channels, `[E, 4, 8]`) are
//! unrolled into straight-line code. The expressions are rendered by [`super::exprs`],
//! the ops by [`super::ops`], the stores and output initialization by [`super::stores`].

use super::{Imports, Table};
use crate::ir::{DType, Unary};
use crate::schedule::analysis::{expr_levels, live_exprs};
use crate::schedule::{Affine, Expr, LoopKernel, Program, Store};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, Block, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};

pub(super) const F32X4: Type = types::F32X4;

/// Loops with long math (`Gen::long`) of at least this many elements run two f32x4
/// bodies an iteration, as other loops do (measured 2026-12-03 on Intel: gnn-nonlinear's
/// `[15000, 32]` tanh loops 5-9% faster, 4.6% off its inference; smaller loops keep one
/// body, whose code compiles faster).
const LONG_UNROLLED_FROM: usize = 1 << 18;

pub(super) const I64: Type = types::I64;
pub(super) const I32: Type = types::I32;
pub(super) const F32: Type = types::F32;

/// Unrolling limits, for the loops over gathered rows or scatters (`per_position`),
/// where a short axis's counter and branches cost about as much as the work: an
/// innermost vector axis of up to this many elements runs as straight-line code (up to
/// 8 in any loop: no more code than the loop), and so does an outer axis of up to
/// [`UNROLLED_AXIS`] iterations (GAT's `[E, 4, 8]`: 8 bodies); either only while the
/// copies hold at most [`UNROLLED_OPS`] expressions and stores in all. In any loop, an
/// innermost axis of up to [`ROW_INNER`] elements runs straight too, long math
/// included, while its copies hold at most [`ROW_OPS`]: attention's rows of 16 keys
/// (the softmax's max, exp and sum, the heads' `[B, T, 4, 16]` layouts) ran their
/// loop 2-4 times per row, and straight-line bodies of one row overlap in the CPU
/// (measured 4.6% off the transformer's inference, 2.4% off its training step).
const UNROLLED_INNER: usize = 32;
const UNROLLED_AXIS: usize = 4;
const UNROLLED_OPS: usize = 64;
const ROW_INNER: usize = 16;
const ROW_OPS: usize = 256;

/// The state of one kernel's code generation.
pub(super) struct Gen<'a, 'f, 'b> {
    /// Each domain axis's loop bound (a dynamic capacity's is read at run time).
    pub(super) bounds: Vec<Value>,
    pub(super) fb: &'a mut FunctionBuilder<'f>,
    pub(super) p: &'b Program,
    pub(super) lk: &'b LoopKernel,
    pub(super) im: &'b Imports,
    pub(super) fma: bool,
    /// The domain's rank; loop depth `d + 1` is axis `d`'s loop.
    pub(super) r: usize,
    pub(super) level: Vec<usize>,
    pub(super) live: Vec<bool>,
    pub(super) vector: bool,
    pub(super) base: Vec<Option<Value>>,
    pub(super) ival: Vec<Option<Value>>,
    /// Scalar and vector values of the expressions computed so far.
    pub(super) sval: Vec<Option<Value>>,
    pub(super) vval: Vec<Option<Value>>,
    pub(super) start: Value,
    pub(super) end: Value,
    pub(super) err: Value,
    pub(super) exit: Block,
    /// The scatter row expression and the level its guard sits at.
    pub(super) guard: Option<(usize, usize)>,
    /// Per store, while the vector loops of the innermost axis run: the two f32x4
    /// accumulators (one per unrolled body) of a sum along that axis.
    pub(super) accumulators: Vec<Option<[Variable; 2]>>,
    /// In a kernel split in row blocks (`LoopKernel::row_blocks`), the block being run:
    /// its reductions over axis 0 go to that block's slice of their partial buffers.
    pub(super) block: Option<Value>,
    /// While a 16-element step of a loop with Philox runs: each Philox expression's
    /// four f32x4 uniforms, drawn at once (`philox::philox_x16`).
    pub(super) philox16: Vec<Option<[Value; 4]>>,
}

pub(super) fn scalar_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}
pub(super) fn vector_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The body of `lk`'s function; `split`: whether threads may split its range (else
/// every call runs the whole of it).
pub(super) fn emit(
    fb: &mut FunctionBuilder,
    p: &Program,
    lk: &LoopKernel,
    im: &Imports,
    table: &mut Table,
    fma: bool,
    split: bool,
) -> Result<(), String> {
    if super::wide_math::emit_map(fb, p, lk, im, table) || super::gather_sum::emit(fb, p, lk, im, table) {
        return Ok(());
    }
    let r = lk.domain.len();
    let n = lk.exprs.len();
    let live = live_exprs(lk)?;
    // Axis `a` is loop depth `a + 1`.
    let level = expr_levels(lk, &(1..=r).collect::<Vec<_>>());
    let dtype = |b: usize| p.buffers[b].dtype;
    let vector = r >= 1 && lk.domain[r - 1] >= 4 && {
        let inner = r - 1;
        let exprs_ok = lk.exprs.iter().enumerate().all(|(i, e)| {
            if !live[i] || level[i] < r {
                return true;
            }
            match e {
                Expr::Load { buf, at } => dtype(*buf) == DType::F32 && at.coef[inner] == 1,
                Expr::LoadRow { buf, row, at, .. } => {
                    dtype(*buf) == DType::F32 && at.coef[inner] == 1 && level[*row] < r
                }
                Expr::Unary(Unary::Convert, a) => {
                    matches!(&lk.exprs[*a], Expr::Load { buf, at } if dtype(*buf) == DType::I32 && at.coef[inner] == 1)
                }
                Expr::Unary(..) | Expr::Binary(..) | Expr::Fma(..) | Expr::Const(_) => true,
                // Four consecutive elements: one Philox call's four words (`philox_x4`).
                Expr::Philox { at, .. } => at.coef[inner] == 1,
                _ => false,
            }
        });
        let value_f32 = |v: usize| {
            !matches!(&lk.exprs[v], Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } if dtype(*buf) == DType::I32)
                && !matches!(lk.exprs[v], Expr::CheckIndex { .. })
        };
        let stores_ok = lk.stores.iter().all(|s| match s {
            Store::Write { at, value, .. } => at.coef[inner] == 1 && value_f32(*value),
            // A sum or max along the innermost axis accumulates in registers
            // (`emit_inner_vector`).
            Store::Reduce { at, value, .. } => (at.coef[inner] == 1 || at.coef[inner] == 0) && value_f32(*value),
            Store::Scatter { at, row, value, .. } => at.coef[inner] == 1 && level[*row] < r && value_f32(*value),
        });
        exprs_ok && stores_ok
    };
    // Threads that own output rows skip the others' positions; threads that own
    // column chunks (`col_chunks`) take every position, and so does a scatter that
    // runs whole on one thread, unless its rows are a batch's count read at run time
    // (a row past the count belongs to no one).
    let guard = lk.stores.iter().find_map(|s| match s {
        Store::Scatter { row, .. } if lk.threads_own_rows(p, split) => Some((*row, level[*row])),
        _ => None,
    });

    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let exit = fb.create_block();
    // Each axis's bound: a constant, or a dynamic capacity's count read at run time.
    let bounds = lk
        .domain
        .iter()
        .map(|&n| super::extent(fb, params[0], table, p, n))
        .collect();
    let mut g = Gen {
        bounds,
        fb,
        p,
        lk,
        im,
        fma,
        r,
        level,
        live,
        vector,
        base: vec![None; p.buffers.len()],
        ival: vec![None; r],
        sval: vec![None; n],
        vval: vec![None; n],
        start: params[1],
        end: params[2],
        err: params[3],
        exit,
        guard,
        accumulators: vec![None; lk.stores.len()],
        block: None,
        philox16: vec![None; n],
    };
    // Buffer bases, in the order the kernel names them (the table's order).
    let stored = lk.stores.iter().map(Store::buf);
    let loaded = lk.exprs.iter().filter_map(|e| match e {
        Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => Some(*buf),
        _ => None,
    });
    for b in stored.chain(loaded) {
        if g.base[b].is_none() {
            g.base[b] = Some(table.base(g.fb, params[0], b));
        }
    }
    g.init_outputs();
    g.emit_level(0);
    if r == 0 {
        g.emit_stores_scalar();
    } else {
        g.emit_loop(0);
    }
    g.fb.ins().jump(exit, &[]);
    g.fb.switch_to_block(exit);
    g.fb.ins().return_(&[]);
    g.fb.seal_all_blocks();
    Ok(())
}

impl Gen<'_, '_, '_> {
    pub(super) fn iconst(&mut self, v: i64) -> Value {
        self.fb.ins().iconst(I64, v)
    }

    /// `at` with the loop indices' current values; `lane` is added to the innermost.
    pub(super) fn affine(&mut self, at: &Affine, lane: i64) -> Value {
        let mut acc = self.iconst(at.offset + if self.r > 0 { at.coef[self.r - 1] * lane } else { 0 });
        for (a, &c) in at.coef.iter().enumerate() {
            if c != 0 {
                let i = self.ival[a].expect("loop index in scope");
                let t = self.fb.ins().imul_imm_s(i, c);
                acc = self.fb.ins().iadd(acc, t);
            }
        }
        acc
    }

    pub(super) fn addr(&mut self, buf: usize, index: Value) -> Value {
        let byte = self.fb.ins().ishl_imm_u(index, 2);
        let base = self.base[buf].unwrap();
        self.fb.ins().iadd(base, byte)
    }

    pub(super) fn row_index(&mut self, row: usize, row_len: i64, at: &Affine, lane: i64) -> Value {
        let r = self.sval[row].unwrap();
        let r = self.fb.ins().sextend(I64, r);
        let r = self.fb.ins().imul_imm_s(r, row_len);
        let rest = self.affine(at, lane);
        self.fb.ins().iadd(r, rest)
    }

    /// Scalar expressions of `level`, then the scatter guard if it sits there.
    fn emit_level(&mut self, level: usize) {
        for e in 0..self.lk.exprs.len() {
            if self.live[e] && self.level[e] == level {
                let v = self.scalar(e);
                self.sval[e] = Some(v);
            }
        }
    }

    fn emit_loop(&mut self, d: usize) {
        if let (0, Some(rows)) = (d, self.lk.row_blocks) {
            self.emit_blocks(rows as i64);
            return;
        }
        let split = d == 0 && self.lk.scatter_rows.is_none();
        if let (false, Some(chunk)) = (split, self.lk.col_chunks) {
            let whole_chunks = self.lk.domain[d].is_multiple_of(chunk) && chunk.is_multiple_of(4);
            if d + 1 == self.r && self.vector && whole_chunks {
                self.emit_chunks(d, chunk);
                return;
            }
        }
        let (lo, hi) = match (split, self.lk.col_chunks) {
            (true, _) => (self.start, self.end),
            // The innermost axis of a scatter split by columns: this call's chunks.
            (false, Some(chunk)) if d + 1 == self.r => {
                let lo = self.fb.ins().imul_imm_s(self.start, chunk as i64);
                let hi = self.fb.ins().imul_imm_s(self.end, chunk as i64);
                (lo, self.fb.ins().smin(hi, self.bounds[d]))
            }
            (false, _) => (self.iconst(0), self.bounds[d]),
        };
        if d == 0 {
            self.emit_guard(0, self.exit);
        }
        self.emit_axis(d, lo, hi);
    }

    /// The innermost axis of a scatter split by columns, whose chunks are whole vectors:
    /// a loop over this call's chunks, each chunk's vector bodies as straight-line code.
    fn emit_chunks(&mut self, d: usize, chunk: usize) {
        self.emit_parts(|g, c| {
            let first = g.fb.ins().imul_imm_s(c, chunk as i64);
            g.ival[d] = Some(first);
            for lane in (0..chunk as i64).step_by(4) {
                g.emit_vector_body(lane);
            }
        });
    }

    /// A loop over this call's parts `start..end` (row blocks, column chunks): `body`
    /// emits one part's code from its number.
    fn emit_parts(&mut self, body: impl FnOnce(&mut Self, Value)) {
        self.counted_loop(self.start, self.end, 1, body);
    }

    /// `for i in (lo..hi).step_by(step) { body(i) }`.
    pub(super) fn counted_loop(&mut self, lo: Value, hi: Value, step: i64, body: impl FnOnce(&mut Self, Value)) {
        let var = self.fb.declare_var(I64);
        self.fb.def_var(var, lo);
        let (header, block, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(header);
        let i = self.fb.use_var(var);
        let more = self.fb.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.fb.ins().brif(more, block, &[], done, &[]);
        self.fb.switch_to_block(block);
        body(self, i);
        let next = self.fb.ins().iadd_imm_s(i, step);
        self.fb.def_var(var, next);
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(done);
    }

    /// Whether the loop has inline exp/log/tanh/erf or Philox, which are long: it runs
    /// one f32x4 body per iteration (below [`LONG_UNROLLED_FROM`] elements) and unrolls
    /// nothing but rows of up to [`ROW_INNER`] (the unrolled copies would multiply code
    /// and compile time for little gain on such latency-bound math).
    fn long(&self) -> bool {
        self.lk.exprs.iter().enumerate().any(|(e, x)| {
            self.live[e]
                && self.level[e] == self.r
                && matches!(
                    x,
                    Expr::Unary(Unary::Exp | Unary::Log | Unary::Tanh | Unary::Erf, _) | Expr::Philox { .. }
                )
        })
    }

    /// Whether short axes of a known extent may become straight-line code.
    fn unrolls(&self) -> bool {
        self.lk.col_chunks.is_none() && !self.long()
    }

    /// The extent of axis `d` when it runs unrolled: an axis inside the outermost, not
    /// innermost-vectorized, of a known extent up to [`UNROLLED_AXIS`], whose unrolled
    /// copies fit [`UNROLLED_OPS`], and where no scatter guard sits.
    fn unrolled_extent(&self, d: usize) -> Option<usize> {
        let n = self.lk.domain[d];
        let below: usize = self.lk.domain[d..].iter().product();
        let guarded = matches!(self.guard, Some((_, l)) if l == d + 1);
        let fits = d > 0 && n <= UNROLLED_AXIS && self.unrolled_ops(below) <= UNROLLED_OPS && self.per_position();
        (fits && !guarded && self.p.dynamic_slot(n).is_none() && self.unrolls()).then_some(n)
    }

    /// Whether the loop reads gathered rows or scatters: work per position of a message
    /// (a few heads of a few channels), where a short axis's loop counter and branches
    /// cost about as much as the work. Elsewhere an unrolled axis only adds code.
    fn per_position(&self) -> bool {
        self.lk.exprs.iter().any(|e| matches!(e, Expr::LoadRow { .. }))
            || self.lk.stores.iter().any(|s| matches!(s, Store::Scatter { .. }))
    }

    /// Expressions and stores of the innermost level when `elements` of it run as
    /// straight-line code, four per vector body.
    fn unrolled_ops(&self, elements: usize) -> usize {
        let inner = (0..self.lk.exprs.len())
            .filter(|&e| self.live[e] && self.level[e] == self.r)
            .count();
        elements.div_ceil(4) * (inner + self.lk.stores.len())
    }

    /// Axis 0 of a kernel split in blocks of `rows` rows: for each block `start..end`,
    /// its partial slices start at the reductions' identity, then its rows run.
    fn emit_blocks(&mut self, rows: i64) {
        self.emit_parts(|g, block| {
            g.block = Some(block);
            let lk = g.lk;
            for s in &lk.stores {
                if let Store::Reduce { buf, at, op, .. } = s {
                    if at.coef[0] == 0 {
                        let len = g.block_len(*buf);
                        let lo = g.fb.ins().imul_imm_s(block, len);
                        let hi = g.fb.ins().iadd_imm_s(lo, len);
                        g.fill(*buf, lo, hi, op.init());
                    }
                }
            }
            let lo = g.fb.ins().imul_imm_s(block, rows);
            let hi = g.fb.ins().iadd_imm_s(lo, rows);
            let hi = g.fb.ins().smin(hi, g.bounds[0]);
            g.emit_axis(0, lo, hi);
        });
        self.block = None;
    }

    /// The loop of axis `d` over `lo..hi` and everything inside it.
    fn emit_axis(&mut self, d: usize, lo: Value, hi: Value) {
        if d == self.r - 1 && self.vector {
            self.emit_inner_vector(lo, hi);
            return;
        }
        // A short axis inside the outermost (GAT's heads, a 2-class output): its
        // iterations one after another, each index a constant.
        if let Some(n) = self.unrolled_extent(d) {
            for k in 0..n {
                let i = self.iconst(k as i64);
                self.ival[d] = Some(i);
                self.emit_level(d + 1);
                if d + 1 < self.r {
                    self.emit_loop(d + 1);
                } else {
                    self.emit_stores_scalar();
                }
            }
            return;
        }
        // The scatter's row is known in this loop: its owned positions, gathered first.
        if matches!(self.guard, Some((_, l)) if l == d + 1) {
            self.emit_owned_positions(d, lo, hi);
            return;
        }
        let var = self.fb.declare_var(I64);
        self.fb.def_var(var, lo);
        let (header, body, latch, done) = (
            self.fb.create_block(),
            self.fb.create_block(),
            self.fb.create_block(),
            self.fb.create_block(),
        );
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(header);
        let i = self.fb.use_var(var);
        let c = self.fb.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.fb.ins().brif(c, body, &[], done, &[]);
        self.fb.switch_to_block(body);
        self.ival[d] = Some(i);
        self.emit_guard_and_inside(d, latch);
        self.fb.ins().jump(latch, &[]);
        self.fb.switch_to_block(latch);
        let next = self.fb.ins().iadd_imm_s(i, 1);
        self.fb.def_var(var, next);
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(done);
    }

    /// One iteration of axis `d` (its index set): the next level's expressions, the
    /// guard, then the loops inside or the stores.
    pub(super) fn emit_guard_and_inside(&mut self, d: usize, skip: Block) {
        self.emit_level(d + 1);
        self.emit_guard(d + 1, skip);
        if d + 1 < self.r {
            self.emit_loop(d + 1);
        } else {
            self.emit_stores_scalar();
        }
    }

    /// The innermost axis: two f32x4 bodies per iteration, then one, then scalars. A
    /// sum or max along this axis accumulates in two f32x4 registers (not in memory,
    /// whose read-modify-write would chain every element), which the scalar tail's first
    /// step combines into the output: the two bodies lane-wise, then the lanes, in a
    /// fixed order. (A max is the same value in any order; of an equal -0 and +0 it may
    /// keep the other one, which no later op tells apart but by its sign bit.)
    fn emit_inner_vector(&mut self, lo: Value, hi: Value) {
        let d = self.r - 1;
        let var = self.fb.declare_var(I64);
        self.fb.def_var(var, lo);
        for (k, store) in self.lk.stores.iter().enumerate() {
            if let Store::Reduce { at, op, .. } = store {
                if at.coef[d] != 0 {
                    continue;
                }
                let init = self.fb.ins().f32const(op.init());
                let init = self.fb.ins().splat(F32X4, init);
                let accs = [self.fb.declare_var(F32X4), self.fb.declare_var(F32X4)];
                for acc in accs {
                    self.fb.def_var(acc, init);
                }
                self.accumulators[k] = Some(accs);
            }
        }
        // Long math over many elements runs two bodies an iteration like any loop: their
        // independent chains overlap (gnn-nonlinear's per-edge tanh 5-9% faster), and
        // at this size the extra code's compile time is repaid.
        let elements: usize = self.lk.domain.iter().product();
        let long = self.long() && elements < LONG_UNROLLED_FROM;
        let philox: Vec<usize> = (0..self.lk.exprs.len())
            .filter(|&e| self.live[e] && self.level[e] == self.r && matches!(self.lk.exprs[e], Expr::Philox { .. }))
            .collect();
        // With Philox: sixteen elements a step, four calls drawn at once.
        let steps: &[(i64, &[i64])] = if !philox.is_empty() {
            &[(16, &[0, 4, 8, 12]), (4, &[0]), (1, &[])]
        } else if long {
            &[(4, &[0]), (1, &[])]
        } else {
            &[(8, &[0, 4]), (4, &[0]), (1, &[])]
        };
        // An inner axis that is not split between threads runs over its whole extent (a
        // scatter's column chunks are whole multiples of 16, ending at the extent), and
        // a rank-1 loop's parts start at multiples of 8 (`Kernel::part`), so the part that
        // ends the extent alone has the remainder: when the extent is known now, only
        // the loops it reaches are emitted (code that never runs still costs Cranelift
        // its time, and most extents are multiples of 8).
        let whole = (d > 0 || self.lk.aligned_split())
            .then_some(self.lk.domain[d])
            .filter(|&n| self.p.dynamic_slot(n).is_none());
        // A short inner axis of a known extent, walked whole: straight-line code, one
        // f32x4 body per four elements, then the remainder's scalars (a loop for one
        // or two iterations costs its counter and branches at every outer iteration).
        // Up to 8 elements that is no more code than the loop; up to 16 ([`ROW_INNER`]) a
        // row's bodies overlap; beyond, only per position.
        let straight = |n: usize| {
            let row = n <= ROW_INNER && self.lk.col_chunks.is_none() && self.unrolled_ops(n) <= ROW_OPS;
            let short = n <= 8 || (n <= UNROLLED_INNER && self.per_position());
            row || (short && self.unrolled_ops(n) <= UNROLLED_OPS && self.unrolls())
        };
        if let Some(n) = whole.filter(|&n| d > 0 && straight(n)) {
            let zero = self.iconst(0);
            self.ival[d] = Some(zero);
            for b in 0..n as i64 / 4 {
                self.emit_vector_body(4 * b);
            }
            self.flush_accumulators();
            for j in n / 4 * 4..n {
                let i = self.iconst(j as i64);
                self.ival[d] = Some(i);
                self.emit_level(self.r);
                self.emit_stores_scalar();
            }
            return;
        }
        let reached = |step: i64| match whole.map(|n| n as i64) {
            None => true,
            Some(n) if step == 1 => n % 4 != 0,
            // A rank-1 loop's parts start at multiples of 8, not 16: the four-element
            // step finishes every part.
            Some(_) if step == 4 && !philox.is_empty() && d == 0 => true,
            Some(n) if step == 4 && !philox.is_empty() => n % 16 >= 4,
            Some(n) if step == 4 && !long => n % 8 >= 4,
            Some(n) => n >= step,
        };
        for &(step, lanes) in steps {
            if step == 1 {
                self.flush_accumulators();
            }
            if !reached(step) {
                continue;
            }
            let (header, body, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
            self.fb.ins().jump(header, &[]);
            self.fb.switch_to_block(header);
            let i = self.fb.use_var(var);
            let last = self.fb.ins().iadd_imm_s(i, step);
            let c = self.fb.ins().icmp(IntCC::SignedLessThanOrEqual, last, hi);
            self.fb.ins().brif(c, body, &[], done, &[]);
            self.fb.switch_to_block(body);
            self.ival[d] = Some(i);
            if step == 1 {
                self.emit_level(self.r);
                self.emit_stores_scalar();
            } else {
                if step == 16 {
                    for &e in &philox {
                        self.philox16[e] = Some(self.vector_philox16(e));
                    }
                }
                for &lane in lanes {
                    self.emit_vector_body(lane);
                }
                self.philox16.iter_mut().for_each(|p| *p = None);
            }
            self.fb.def_var(var, last);
            self.fb.ins().jump(header, &[]);
            self.fb.switch_to_block(done);
        }
    }

    /// The vector body for lane offset `lane`: the innermost level's expressions, then
    /// the stores, four elements at a time.
    fn emit_vector_body(&mut self, lane: i64) {
        for e in 0..self.lk.exprs.len() {
            if self.live[e] && self.level[e] == self.r {
                let v = self.vector_expr(e, lane);
                self.vval[e] = Some(v);
            }
        }
        self.emit_vector_stores(lane);
    }
}
