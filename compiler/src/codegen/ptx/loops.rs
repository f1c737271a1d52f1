//! One loop kernel as a PTX entry: the thread layout, the loops and the stores.
//!
//! In: a [`LoopKernel`] of a [`Program`], the buffers' parameter registers and the error
//! word. Out: the entry's body, its thread count and a one-line description. Each
//! expression is rendered by [`exprs`], scatter-add kernels by [`scatter`].
//!
//! The domain's axes split in two: *parallel* axes (kept by every reduction, and written
//! injectively by every store) are flattened into the thread index, walked grid-stride;
//! the other axes are loops inside each thread, in row-major order. An expression is
//! computed in the loop of the deepest axis it depends on. A reduction whose output
//! element does not change inside the thread's loops accumulates in a register and is
//! stored once; any other reduction reads, combines and writes its element in memory,
//! starting from the identity at the element's first contribution. Either way the
//! combination order is the interpreter's, and one thread owns each element.
//!
//! Scatter-add kernels run one thread per output row: the thread zeroes its row, walks the
//! whole domain in row-major order and adds the contributions whose row is its own
//! (exactly the CPU's per-thread guard, with one row per thread).

mod exprs;
mod scatter;

use super::ops;
use super::Body;
use crate::ir::DType;
use crate::schedule::analysis::{expr_levels, live_exprs, parallel_axes};
use crate::schedule::{BufId, Expr, LoopKernel, Program, ReduceOp, Store};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    F32,
    I32,
}

struct Gen<'a> {
    b: &'a mut Body,
    p: &'a Program,
    lk: &'a LoopKernel,
    base: &'a [String],
    err: &'a str,
    /// Register of each domain axis' index (s64), once in scope.
    ax: Vec<String>,
    /// Loop depth of each axis: 0 for parallel axes, 1.. for the thread's loops.
    depth: Vec<usize>,
    level: Vec<usize>,
    live: Vec<bool>,
    ty: Vec<Ty>,
    val: Vec<Option<String>>,
}

fn fconst(v: f32) -> String {
    format!("0f{:08X}", v.to_bits())
}

/// Emits the body of a loop kernel; returns the number of threads it wants and a
/// one-line description.
pub(super) fn emit(
    b: &mut Body,
    p: &Program,
    lk: &LoopKernel,
    base: &[String],
    err: &str,
) -> Result<(u32, String), String> {
    let r = lk.domain.len();
    if lk.domain.contains(&0) {
        return Err("a loop over an empty axis".into());
    }
    let n = lk.exprs.len();
    let live = live_exprs(lk)?;
    let dtype = |buf: BufId| p.buffers[buf].dtype;
    let mut ty = Vec::with_capacity(n);
    for (i, e) in lk.exprs.iter().enumerate() {
        #[allow(unreachable_patterns)]
        let t = match e {
            Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => {
                if dtype(*buf) == DType::I32 {
                    Ty::I32
                } else {
                    Ty::F32
                }
            }
            Expr::CheckIndex { .. } => Ty::I32,
            Expr::Const(_)
            | Expr::Unary(..)
            | Expr::Binary(..)
            | Expr::Fma(..)
            | Expr::OneHot { .. }
            | Expr::Philox { .. } => Ty::F32,
            _ => {
                return Err(format!(
                    "e{i}: this kind of expression has no PTX rendering yet ({e:?})"
                ))
            }
        };
        ty.push(t);
    }
    let scatter = lk.scatter_rows;
    let column = scatter::column_axis(lk);
    let par = match scatter {
        Some(_) => (0..r).map(|a| Some(a) == column).collect(),
        None => parallel_axes(lk),
    };
    let mut depth = vec![0; r];
    let mut d = 0;
    for a in 0..r {
        if !par[a] {
            d += 1;
            depth[a] = d;
        }
    }
    let level = expr_levels(lk, &depth);
    let mut g = Gen {
        b,
        p,
        lk,
        base,
        err,
        ax: vec![String::new(); r],
        depth,
        level,
        live,
        ty,
        val: vec![None; n],
    };
    match scatter {
        Some(rows) => g.scatter_kernel(rows, column),
        None => g.loop_kernel(&par),
    }
}

impl Gen<'_> {
    /// The thread's flat index and the grid stride, and the grid-stride loop head over
    /// `0..count`; returns (index register, stride register, head label, done label).
    fn grid_loop(&mut self, count: u32) -> (String, String, String, String) {
        let (t, s, x) = (self.b.r(), self.b.r(), self.b.r());
        self.b.op(format!("mov.u32 {t}, %tid.x;"));
        self.b.op(format!("mov.u32 {x}, %ctaid.x;"));
        self.b.op(format!("mov.u32 {s}, %ntid.x;"));
        self.b.op(format!("mad.lo.u32 {t}, {x}, {s}, {t};"));
        self.b.op(format!("mov.u32 {x}, %nctaid.x;"));
        self.b.op(format!("mul.lo.u32 {s}, {s}, {x};"));
        let (head, done) = (self.b.label("grid"), self.b.label("done"));
        self.b.put_label(&head);
        let c = self.b.p();
        self.b.op(format!("setp.ge.u32 {c}, {t}, {count};"));
        self.b.op(format!("@{c} bra {done};"));
        (t, s, head, done)
    }

    fn grid_next(&mut self, t: &str, s: &str, head: &str, done: &str) {
        self.b.op(format!("add.u32 {t}, {t}, {s};"));
        self.b.op(format!("bra.uni {head};"));
        self.b.put_label(done);
        self.b.op("ret;".into());
    }

    fn loop_kernel(&mut self, par: &[bool]) -> Result<(u32, String), String> {
        let lk = self.lk;
        let r = lk.domain.len();
        let par_axes: Vec<usize> = (0..r).filter(|&a| par[a]).collect();
        let seq_axes: Vec<usize> = (0..r).filter(|&a| !par[a]).collect();
        let threads: u64 = par_axes.iter().map(|&a| lk.domain[a] as u64).product();
        if threads > i32::MAX as u64 {
            return Err(format!("{threads} threads are too many for one launch"));
        }
        let threads = threads as u32;
        let show = |axes: &[usize]| {
            axes.iter()
                .map(|&a| format!("i{a}<{}", lk.domain[a]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = format!(
            "loop {:?}: threads over [{}], each thread loops [{}]",
            lk.domain,
            show(&par_axes),
            show(&seq_axes)
        );
        let (t, s, head, done) = self.grid_loop(threads);
        // Parallel axis indices from the flat thread index (last axis fastest).
        let rem = self.b.r();
        self.b.op(format!("mov.u32 {rem}, {t};"));
        for (k, &a) in par_axes.iter().enumerate().rev() {
            let q = self.b.r();
            if k == 0 {
                self.b.op(format!("mov.u32 {q}, {rem};"));
            } else {
                let ext = lk.domain[a];
                self.b.op(format!("rem.u32 {q}, {rem}, {ext};"));
                self.b.op(format!("div.u32 {rem}, {rem}, {ext};"));
            }
            let i = self.b.rd();
            self.b.op(format!("cvt.u64.u32 {i}, {q};"));
            self.ax[a] = i;
        }
        self.emit_level(0)?;
        // Register accumulators: reductions whose element is fixed for the thread.
        let mut acc: Vec<Option<String>> = vec![None; lk.stores.len()];
        for (si, st) in lk.stores.iter().enumerate() {
            if let Store::Reduce { at, op, .. } = st {
                if seq_axes.iter().all(|&a| at.coef[a] == 0) {
                    let f = self.b.f();
                    self.b.op(format!(
                        "mov.f32 {f}, {}; // s{si}: {op:?} accumulator",
                        fconst(op.init())
                    ));
                    acc[si] = Some(f);
                }
            }
        }
        self.seq_loops(&seq_axes, 0, &acc, None)?;
        for (si, st) in lk.stores.iter().enumerate() {
            if let (Store::Reduce { buf, at, .. }, Some(f)) = (st, &acc[si]) {
                let a = self.address(*buf, at)?;
                self.b.op(format!("st.global.f32 [{a}], {f};"));
            }
        }
        self.grid_next(&t, &s, &head, &done);
        Ok((threads.max(1), what))
    }

    /// The loops over `axes[k..]`, the stores innermost. `guard`: the scatter row check.
    fn seq_loops(
        &mut self,
        axes: &[usize],
        k: usize,
        acc: &[Option<String>],
        guard: Option<(usize, &str, &str)>,
    ) -> Result<(), String> {
        if k == axes.len() {
            return self.stores(acc);
        }
        let a = axes[k];
        let i = self.b.rd();
        self.ax[a] = i.clone();
        let (head, next) = (self.b.label(&format!("i{a}")), self.b.label(&format!("i{a}_next")));
        self.b.op(format!("mov.u64 {i}, 0;"));
        self.b.put_label(&head);
        let d = self.depth[a];
        match guard {
            Some((row, r, _)) if self.level[row] == d => self.guarded_level(d, row, r, &next)?,
            _ => self.emit_level(d)?,
        }
        self.seq_loops(axes, k + 1, acc, guard)?;
        self.b.put_label(&next);
        let c = self.b.p();
        self.b.op(format!("add.s64 {i}, {i}, 1;"));
        self.b.op(format!("setp.lt.s64 {c}, {i}, {};", self.lk.domain[a]));
        self.b.op(format!("@{c} bra {head};"));
        Ok(())
    }

    fn emit_level(&mut self, level: usize) -> Result<(), String> {
        self.emit_level_where(level, |_| true)
    }

    fn emit_level_where(&mut self, level: usize, want: impl Fn(usize) -> bool) -> Result<(), String> {
        for e in 0..self.lk.exprs.len() {
            if self.live[e] && self.level[e] == level && want(e) {
                let v = self.expr(e)?;
                self.val[e] = Some(v);
            }
        }
        Ok(())
    }

    /// A scatter's loop level at which its row index is known: the row index first, then
    /// the check that skips to `skip` unless it is the thread's row `r`, then the rest of
    /// the level. Only the thread that owns a position loads and computes its value (the
    /// others would all load every value for nothing: a molecule batch's edge sums took
    /// 1 ms that way on an H200).
    fn guarded_level(&mut self, level: usize, row: usize, r: &str, skip: &str) -> Result<(), String> {
        let mut row_deps = vec![false; self.lk.exprs.len()];
        let mut stack = vec![row];
        while let Some(e) = stack.pop() {
            if !std::mem::replace(&mut row_deps[e], true) {
                stack.extend(self.lk.exprs[e].operands());
            }
        }
        self.emit_level_where(level, |e| row_deps[e])?;
        self.row_guard(row, r, skip);
        self.emit_level_where(level, |e| !row_deps[e])
    }

    /// The stores, at the innermost loop.
    fn stores(&mut self, acc: &[Option<String>]) -> Result<(), String> {
        let lk = self.lk;
        for (si, st) in lk.stores.iter().enumerate() {
            match st {
                Store::Write { buf, at, value } => {
                    self.b.comment(&format!("s{si}: b{buf}[..] = e{value}"));
                    let v = self.v(*value)?;
                    let a = self.address(*buf, at)?;
                    let want = if self.p.buffers[*buf].dtype == DType::I32 {
                        Ty::I32
                    } else {
                        Ty::F32
                    };
                    if self.ty[*value] != want {
                        return Err(format!("s{si}: e{value} does not have b{buf}'s type"));
                    }
                    let suffix = if want == Ty::I32 { "u32" } else { "f32" };
                    self.b.op(format!("st.global.{suffix} [{a}], {v};"));
                }
                Store::Reduce { buf, at, value, op } => {
                    let v = self.f32_operand(*value)?;
                    self.b.comment(&format!("s{si}: b{buf}[..] {op:?}= e{value}"));
                    if let Some(acc) = &acc[si] {
                        combine(self.b, *op, acc, acc, &v);
                        continue;
                    }
                    // In memory: the identity at the element's first contribution (all
                    // reduced axes at 0), else what is there.
                    let a = self.address(*buf, at)?;
                    let old = self.b.f();
                    let reduced: Vec<usize> = (0..lk.domain.len())
                        .filter(|&ax| at.coef[ax] == 0 && lk.domain[ax] > 1)
                        .collect();
                    if reduced.is_empty() {
                        self.b.op(format!("mov.f32 {old}, {};", fconst(op.init())));
                    } else {
                        let first = self.b.p();
                        for (k, &ax) in reduced.iter().enumerate() {
                            let i = self.ax[ax].clone();
                            if k == 0 {
                                self.b.op(format!("setp.eq.s64 {first}, {i}, 0;"));
                            } else {
                                let c = self.b.p();
                                self.b.op(format!("setp.eq.s64 {c}, {i}, 0;"));
                                self.b.op(format!("and.pred {first}, {first}, {c};"));
                            }
                        }
                        self.b.op(format!("ld.global.f32 {old}, [{a}];"));
                        self.b
                            .op(format!("selp.f32 {old}, {}, {old}, {first};", fconst(op.init())));
                    }
                    combine(self.b, *op, &old, &old, &v);
                    self.b.op(format!("st.global.f32 [{a}], {old};"));
                }
                Store::Scatter {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                    op,
                } => {
                    let v = self.f32_operand(*value)?;
                    let sign = if *op == ReduceOp::Sum { "+" } else { "max" };
                    self.b
                        .comment(&format!("s{si}: b{buf}[e{row} * {row_len} + ..] {sign}= e{value}"));
                    let a = self.row_address(*buf, *row, *row_len, at)?;
                    let old = self.b.f();
                    self.b.op(format!("ld.global.f32 {old}, [{a}];"));
                    combine(self.b, *op, &old, &old, &v);
                    self.b.op(format!("st.global.f32 [{a}], {old};"));
                }
            }
        }
        Ok(())
    }
}

/// `dst = op(old, v)` with the interpreter's rule.
fn combine(b: &mut Body, op: ReduceOp, dst: &str, old: &str, v: &str) {
    match op {
        ReduceOp::Sum => b.op(format!("add.rn.f32 {dst}, {old}, {v};")),
        ReduceOp::Max => ops::select_greater(b, dst, v, old),
    }
}
