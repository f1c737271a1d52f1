//! One loop kernel as a PTX entry.
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

use super::math;
use super::Body;
use crate::ir::DType;
use crate::schedule::{Affine, BinOp, BufId, Expr, LoopKernel, Program, ReduceOp, Store, UnOp};

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

/// True when `sum(coef[a] * i[a])` over axes with extent > 1 takes distinct values for
/// distinct indices (a mixed-radix check: a sufficient condition).
fn injective(at: &Affine, domain: &[usize]) -> bool {
    let mut terms: Vec<(i64, i64)> = at
        .coef
        .iter()
        .zip(domain)
        .filter(|(&c, &n)| c != 0 && n > 1)
        .map(|(&c, &n)| (c.abs(), n as i64))
        .collect();
    terms.sort();
    let mut span = 0i64;
    for (c, n) in terms {
        if c <= span {
            return false;
        }
        span += c * (n - 1);
    }
    true
}

/// The axes threads split: kept by every reduction and written injectively by every
/// store; empty (one thread) when that cannot be shown.
fn parallel_axes(lk: &LoopKernel) -> Vec<bool> {
    let r = lk.domain.len();
    let mut par = vec![true; r];
    for s in &lk.stores {
        if let Store::Reduce { at, .. } = s {
            for (p, &c) in par.iter_mut().zip(&at.coef) {
                if c == 0 {
                    *p = false;
                }
            }
        }
    }
    let ok = lk.stores.iter().all(|s| match s {
        Store::Write { at, .. } | Store::Reduce { at, .. } => {
            (0..r).all(|a| !par[a] || lk.domain[a] <= 1 || at.coef[a] != 0) && injective(at, &lk.domain)
        }
        Store::ScatterAdd { .. } => false,
    });
    if ok {
        par
    } else {
        vec![false; r]
    }
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
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    for s in &lk.stores {
        stack.push(s.value());
        if let Store::ScatterAdd { row, .. } = s {
            stack.push(*row);
        }
    }
    while let Some(e) = stack.pop() {
        if e >= n {
            return Err(format!("a store reads e{e}, which does not exist"));
        }
        if !live[e] {
            live[e] = true;
            stack.extend(lk.exprs[e].operands());
        }
    }
    let dtype = |buf: BufId| p.buffers[buf].dtype;
    let mut ty = Vec::with_capacity(n);
    for (i, e) in lk.exprs.iter().enumerate() {
        if e.operands().iter().any(|&o| o >= i) {
            return Err(format!("e{i} reads a later expression"));
        }
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
            | Expr::Convert(_)
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
    let par = if scatter.is_some() {
        vec![false; r]
    } else {
        parallel_axes(lk)
    };
    let mut depth = vec![0; r];
    let mut d = 0;
    for a in 0..r {
        if !par[a] {
            d += 1;
            depth[a] = d;
        }
    }
    let mut level = vec![0; n];
    for (i, e) in lk.exprs.iter().enumerate() {
        let own = e.affine().map_or(0, |at| {
            (0..r).filter(|&a| at.coef[a] != 0).map(|a| depth[a]).max().unwrap_or(0)
        });
        level[i] = e.operands().iter().map(|&o| level[o]).fold(own, usize::max);
    }
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
        Some(rows) => g.scatter_kernel(rows),
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
        self.emit_level(d)?;
        if let Some((row, r, _)) = guard {
            if self.level[row] == d {
                self.row_guard(row, r, &next);
            }
        }
        self.seq_loops(axes, k + 1, acc, guard)?;
        self.b.put_label(&next);
        let c = self.b.p();
        self.b.op(format!("add.s64 {i}, {i}, 1;"));
        self.b.op(format!("setp.lt.s64 {c}, {i}, {};", self.lk.domain[a]));
        self.b.op(format!("@{c} bra {head};"));
        Ok(())
    }

    /// Skips to `skip` unless the scatter row expression equals the thread's row `r`.
    fn row_guard(&mut self, row: usize, r: &str, skip: &str) {
        let v = self.val[row].clone().expect("row computed");
        let c = self.b.p();
        self.b
            .op(format!("setp.ne.s32 {c}, {v}, {r}; // not this thread's row"));
        self.b.op(format!("@{c} bra {skip};"));
    }

    fn scatter_kernel(&mut self, rows: usize) -> Result<(u32, String), String> {
        let lk = self.lk;
        let r = lk.domain.len();
        let mut row_expr = None;
        for st in &lk.stores {
            match st {
                Store::ScatterAdd { row, .. } => {
                    if row_expr.is_some_and(|e| e != *row) {
                        return Err("scatter-adds with different row indices in one kernel".into());
                    }
                    row_expr = Some(*row);
                }
                _ => return Err("a scatter kernel with stores other than scatter-adds".into()),
            }
        }
        let row = row_expr.ok_or("a scatter kernel without scatter-adds")?;
        if self.ty[row] != Ty::I32 {
            return Err("a scatter row index that is not an integer".into());
        }
        if rows > i32::MAX as usize {
            return Err(format!("{rows} rows are too many for one launch"));
        }
        let what = format!(
            "scatter-add {:?} into {rows} rows: one thread per row, walking the domain in order",
            lk.domain
        );
        let (t, s, head, done) = self.grid_loop(rows as u32);
        // Zero the row.
        for st in &lk.stores {
            if let Store::ScatterAdd { buf, row_len, .. } = st {
                let (j, start, a, c) = (self.b.rd(), self.b.rd(), self.b.rd(), self.b.p());
                let l = self.b.label("zero");
                self.b.op(format!("cvt.u64.u32 {start}, {t};"));
                self.b.op(format!("mul.lo.s64 {start}, {start}, {row_len};"));
                self.b.op(format!("mov.u64 {j}, 0;"));
                self.b.put_label(&l);
                self.b.op(format!("add.s64 {a}, {start}, {j};"));
                self.b.op(format!("mad.lo.s64 {a}, {a}, 4, {};", self.base[*buf]));
                self.b.op(format!("st.global.f32 [{a}], 0f00000000;"));
                self.b.op(format!("add.s64 {j}, {j}, 1;"));
                self.b.op(format!("setp.lt.s64 {c}, {j}, {row_len};"));
                self.b.op(format!("@{c} bra {l};"));
            }
        }
        self.emit_level(0)?;
        let next_row = self.b.label("next_row");
        if self.level[row] == 0 {
            self.row_guard(row, &t, &next_row);
        }
        let axes: Vec<usize> = (0..r).collect();
        let acc = vec![None; lk.stores.len()];
        self.seq_loops(&axes, 0, &acc, Some((row, &t, &next_row)))?;
        self.b.put_label(&next_row);
        self.grid_next(&t, &s, &head, &done);
        Ok((rows.max(1) as u32, what))
    }

    fn emit_level(&mut self, level: usize) -> Result<(), String> {
        for e in 0..self.lk.exprs.len() {
            if self.live[e] && self.level[e] == level {
                let v = self.expr(e)?;
                self.val[e] = Some(v);
            }
        }
        Ok(())
    }

    /// `at` as an s64 element index.
    fn affine(&mut self, at: &Affine) -> Result<String, String> {
        let x = self.b.rd();
        self.b.op(format!("mov.s64 {x}, {};", at.offset));
        for (a, &c) in at.coef.iter().enumerate() {
            if c != 0 {
                let i = self.ax.get(a).filter(|s| !s.is_empty()).cloned();
                let i = i.ok_or_else(|| format!("an index reads axis {a}, which is not in scope"))?;
                self.b.op(format!("mad.lo.s64 {x}, {i}, {c}, {x};"));
            }
        }
        Ok(x)
    }

    /// Byte address of element `index` (an s64 register) of `buf`.
    fn addr_of(&mut self, buf: BufId, index: &str) -> Result<String, String> {
        let base = self.base.get(buf).filter(|s| !s.is_empty()).cloned();
        let base = base.ok_or_else(|| format!("buffer b{buf} is not a parameter"))?;
        let a = self.b.rd();
        self.b.op(format!("mad.lo.s64 {a}, {index}, 4, {base};"));
        Ok(a)
    }

    fn address(&mut self, buf: BufId, at: &Affine) -> Result<String, String> {
        let i = self.affine(at)?;
        self.addr_of(buf, &i)
    }

    fn row_address(&mut self, buf: BufId, row: usize, row_len: i64, at: &Affine) -> Result<String, String> {
        let rv = self.v(row)?;
        let i = self.affine(at)?;
        let r64 = self.b.rd();
        self.b.op(format!("cvt.s64.s32 {r64}, {rv};"));
        self.b.op(format!("mad.lo.s64 {i}, {r64}, {row_len}, {i};"));
        self.addr_of(buf, &i)
    }

    fn v(&self, e: usize) -> Result<String, String> {
        self.val
            .get(e)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("e{e} is used before it is computed"))
    }

    fn f32_operand(&self, e: usize) -> Result<String, String> {
        if self.ty[e] != Ty::F32 {
            return Err(format!("e{e} is an integer where a float is expected"));
        }
        self.v(e)
    }

    fn i32_operand(&self, e: usize) -> Result<String, String> {
        if self.ty[e] != Ty::I32 {
            return Err(format!("e{e} is a float where an integer is expected"));
        }
        self.v(e)
    }

    fn expr(&mut self, e: usize) -> Result<String, String> {
        let ex = self.lk.exprs[e].clone();
        self.b.comment(&format!("e{e} = {}", short(&ex)));
        #[allow(unreachable_patterns)]
        let v = match ex {
            Expr::Load { buf, at } => {
                let a = self.address(buf, &at)?;
                self.load(buf, &a)
            }
            Expr::LoadRow { buf, row, row_len, at } => {
                self.i32_operand(row)?;
                let a = self.row_address(buf, row, row_len, &at)?;
                self.load(buf, &a)
            }
            Expr::Const(bits) => {
                let f = self.b.f();
                self.b
                    .op(format!("mov.f32 {f}, 0f{bits:08X}; // {:?}", f32::from_bits(bits)));
                f
            }
            Expr::Unary(op, a) => {
                let x = self.f32_operand(a)?;
                match op {
                    UnOp::Neg => {
                        let f = self.b.f();
                        self.b.op(format!("neg.f32 {f}, {x};"));
                        f
                    }
                    UnOp::Sqrt => {
                        let f = self.b.f();
                        self.b.op(format!("sqrt.rn.f32 {f}, {x};"));
                        f
                    }
                    UnOp::Exp => math::exp(self.b, &x),
                    UnOp::Log => math::log(self.b, &x),
                    UnOp::Tanh => math::tanh(self.b, &x),
                    #[allow(unreachable_patterns)]
                    _ => return Err(format!("e{e}: unary {op:?} has no PTX rendering yet")),
                }
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.f32_operand(a)?, self.f32_operand(b)?);
                let f = self.b.f();
                match op {
                    BinOp::Add => self.b.op(format!("add.rn.f32 {f}, {x}, {y};")),
                    BinOp::Sub => self.b.op(format!("sub.rn.f32 {f}, {x}, {y};")),
                    BinOp::Mul => self.b.op(format!("mul.rn.f32 {f}, {x}, {y};")),
                    BinOp::Div => self.b.op(format!("div.rn.f32 {f}, {x}, {y};")),
                    BinOp::Max => {
                        let c = self.b.p();
                        self.b.op(format!("setp.gt.f32 {c}, {y}, {x};"));
                        self.b.op(format!("selp.f32 {f}, {y}, {x}, {c};"));
                    }
                    BinOp::Greater => {
                        let c = self.b.p();
                        self.b.op(format!("setp.gt.f32 {c}, {x}, {y};"));
                        self.b.op(format!("selp.f32 {f}, 0f3F800000, 0f00000000, {c};"));
                    }
                    #[allow(unreachable_patterns)]
                    _ => return Err(format!("e{e}: binary {op:?} has no PTX rendering yet")),
                }
                f
            }
            Expr::Fma(a, b, c) => {
                let (x, y, z) = (self.f32_operand(a)?, self.f32_operand(b)?, self.f32_operand(c)?);
                let f = self.b.f();
                self.b.op(format!("fma.rn.f32 {f}, {x}, {y}, {z};"));
                f
            }
            Expr::Convert(a) => {
                let x = self.i32_operand(a)?;
                let f = self.b.f();
                self.b.op(format!("cvt.rn.f32.s32 {f}, {x};"));
                f
            }
            Expr::CheckIndex { index, bound, check } => {
                let x = self.i32_operand(index)?;
                if !(0..=i32::MAX as i64).contains(&bound) {
                    return Err(format!("e{e}: bound {bound} does not fit in 32 bits"));
                }
                let (bad, ok) = (self.b.p(), self.b.p());
                let (old, y) = (self.b.r(), self.b.r());
                let skip = self.b.label("in_bounds");
                let err = self.err.to_string();
                // Unsigned compare: negative indices are out of range too.
                self.b.op(format!("setp.ge.u32 {bad}, {x}, {bound};"));
                self.b.op(format!("@!{bad} bra {skip};"));
                self.b
                    .op(format!("atom.global.cas.b32 {old}, [{err}], 0, {};", check as u64 + 1));
                self.b.op(format!("setp.eq.u32 {ok}, {old}, 0;"));
                self.b.op(format!("@{ok} st.global.u32 [{err}+4], {x};"));
                self.b.put_label(&skip);
                self.b.op(format!("selp.b32 {y}, 0, {x}, {bad};"));
                y
            }
            Expr::OneHot { index, class } => {
                let x = self.i32_operand(index)?;
                let c = self.affine(&class)?;
                let (x64, eq, f) = (self.b.rd(), self.b.p(), self.b.f());
                self.b.op(format!("cvt.s64.s32 {x64}, {x};"));
                self.b.op(format!("setp.eq.s64 {eq}, {x64}, {c};"));
                self.b.op(format!("selp.f32 {f}, 0f3F800000, 0f00000000, {eq};"));
                f
            }
            Expr::Philox { seed, step, stream, at } => {
                let (seed, step) = (self.i32_operand(seed)?, self.i32_operand(step)?);
                let i = self.affine(&at)?;
                let idx = self.b.r();
                self.b.op(format!("cvt.u32.u64 {idx}, {i};"));
                self.philox(&idx, &step, &seed, stream)
            }
            other => return Err(format!("e{e}: {other:?} has no PTX rendering yet")),
        };
        Ok(v)
    }

    fn load(&mut self, buf: BufId, a: &str) -> String {
        if self.p.buffers[buf].dtype == DType::I32 {
            let r = self.b.r();
            self.b.op(format!("ld.global.u32 {r}, [{a}];"));
            r
        } else {
            let f = self.b.f();
            self.b.op(format!("ld.global.f32 {f}, [{a}];"));
            f
        }
    }

    /// `ir::philox::uniform`: counter (index, step, 0, 0), key (seed, stream), ten rounds.
    fn philox(&mut self, index: &str, step: &str, seed: &str, stream: u32) -> String {
        let b = &mut *self.b;
        let mut c = [index.to_string(), step.to_string(), b.r(), b.r()];
        b.op(format!("mov.b32 {}, 0;", c[2]));
        b.op(format!("mov.b32 {}, 0;", c[3]));
        let (k0, k1) = (b.r(), b.r());
        b.op(format!("mov.b32 {k0}, {seed};"));
        b.op(format!("mov.b32 {k1}, {stream};"));
        for round in 0..10 {
            let (hi0, lo0, hi1, lo1, x0, x2) = (b.r(), b.r(), b.r(), b.r(), b.r(), b.r());
            b.op(format!("mul.hi.u32 {hi0}, {}, 0xD2511F53; // round {round}", c[0]));
            b.op(format!("mul.lo.u32 {lo0}, {}, 0xD2511F53;", c[0]));
            b.op(format!("mul.hi.u32 {hi1}, {}, 0xCD9E8D57;", c[2]));
            b.op(format!("mul.lo.u32 {lo1}, {}, 0xCD9E8D57;", c[2]));
            b.op(format!("xor.b32 {x0}, {hi1}, {};", c[1]));
            b.op(format!("xor.b32 {x0}, {x0}, {k0};"));
            b.op(format!("xor.b32 {x2}, {hi0}, {};", c[3]));
            b.op(format!("xor.b32 {x2}, {x2}, {k1};"));
            c = [x0, lo1, x2, lo0];
            if round < 9 {
                b.op(format!("add.u32 {k0}, {k0}, 0x9E3779B9;"));
                b.op(format!("add.u32 {k1}, {k1}, 0xBB67AE85;"));
            }
        }
        let (bits, f) = (b.r(), b.f());
        b.op(format!("shr.u32 {bits}, {}, 8;", c[0]));
        b.op(format!("cvt.rn.f32.u32 {f}, {bits};"));
        b.op(format!("mul.rn.f32 {f}, {f}, 0f33800000; // 2^-24"));
        f
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
                Store::ScatterAdd {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                } => {
                    let v = self.f32_operand(*value)?;
                    self.b
                        .comment(&format!("s{si}: b{buf}[e{row} * {row_len} + ..] += e{value}"));
                    let a = self.row_address(*buf, *row, *row_len, at)?;
                    let old = self.b.f();
                    self.b.op(format!("ld.global.f32 {old}, [{a}];"));
                    self.b.op(format!("add.rn.f32 {old}, {old}, {v};"));
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
        ReduceOp::Max => {
            let c = b.p();
            b.op(format!("setp.gt.f32 {c}, {v}, {old};"));
            b.op(format!("selp.f32 {dst}, {v}, {old}, {c};"));
        }
    }
}

/// The expression as `--emit kernels` would show it, without buffer names.
fn short(e: &Expr) -> String {
    let aff = |a: &Affine| {
        let mut parts: Vec<String> = Vec::new();
        for (i, &c) in a.coef.iter().enumerate() {
            match c {
                0 => {}
                1 => parts.push(format!("i{i}")),
                c => parts.push(format!("{c}*i{i}")),
            }
        }
        if a.offset != 0 || parts.is_empty() {
            parts.push(a.offset.to_string());
        }
        parts.join(" + ")
    };
    #[allow(unreachable_patterns)]
    match e {
        Expr::Load { buf, at } => format!("load b{buf}[{}]", aff(at)),
        Expr::LoadRow { buf, row, row_len, at } => format!("load b{buf}[e{row} * {row_len} + {}]", aff(at)),
        Expr::Const(bits) => format!("const {:?}", f32::from_bits(*bits)),
        Expr::Unary(op, a) => format!("{} e{a}", format!("{op:?}").to_lowercase()),
        Expr::Binary(op, a, b) => format!("{} e{a}, e{b}", format!("{op:?}").to_lowercase()),
        Expr::Fma(a, b, c) => format!("fma e{a}, e{b}, e{c}"),
        Expr::Convert(a) => format!("convert e{a}"),
        Expr::CheckIndex { index, bound, .. } => format!("check_index e{index} < {bound}"),
        Expr::OneHot { index, class } => format!("one_hot e{index} == {}", aff(class)),
        Expr::Philox { seed, step, stream, at } => {
            format!("philox seed=e{seed} step=e{step} stream={stream} at {}", aff(at))
        }
        other => format!("{other:?}"),
    }
}
