//! Softmax attention as one kernel (the pass `fuse_attention`, for the CPU, after
//! scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which each chain
//!
//! ```text
//! S = Q K^T (batched matmul)      X = f(S, ..), M = max over keys of X     (loop)
//! E = exp(X - M), Z = sum of E    (loop)        P = E / Z                  (loop)
//! O = P V (batched matmul)
//! ```
//!
//! whose intermediates nothing else reads (an evaluation step's attention: training
//! keeps `P` for the gradient) is one [`Attention`] kernel at `O`'s place: per batch
//! item (a sequence and a head) the scores, their transform `f` (a scale, the masks'
//! additive penalties: loads, constants and exact arithmetic), the softmax and the
//! product with `V`, with every intermediate in a thread's cache instead of six kernels
//! writing and reading `[B, H, T, T]` buffers between barriers. The transformer's
//! inference ran those six kernels in ~145 us of its ~750.
//!
//! The kernel computes what the six did (each score and each output one fma chain over
//! its depth in order, the models' `exp`), with its own order of summation for `Z` and
//! the normalization applied to the output rows (`(Σ_k E V) / Z`, as a product with the
//! reciprocal) instead of to the weights; the interpreter is the reference (1e-4, as
//! for every product).
//! Programs whose extents are read at run time keep their kernels, and
//! `MPC_UNFUSED_ATTENTION=1` turns the pass off (for `mpc-bench --compare`).

use super::analysis::{touched, written};
use super::{
    Affine, BatchAxis, BufId, BufKind, DType, Expr, ExprId, Kernel, KernelBody, LoopKernel, MatMul, Program, ReduceOp,
    Store, View2,
};
use crate::ir::{Binary, Unary};

mod absorb;

/// A strided operand: element (item, row, column) at `offset + Σ batch[a] * j_a +
/// row * rs + col * cs`, `j` the item's coordinates on the batch axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Strided {
    pub buf: BufId,
    pub offset: i64,
    pub batch: Vec<i64>,
    pub rs: i64,
    pub cs: i64,
    /// Added to every element read (`Q`, `K`, `V`: the bias that the loop which split
    /// the heads added, [`absorb`]).
    pub plus: Option<Box<Strided>>,
}

/// One step of the score transform, over a tile of (query, key) pairs; operands are
/// earlier steps. The last step's value is the score the softmax takes.
#[derive(Clone, Debug, PartialEq)]
pub enum ScoreOp {
    /// `Σ_d Q[q, d] K[k, d]` (one fma chain over `d` in order).
    Product,
    /// A tensor read at (query, key): rows are queries, columns keys.
    Load(Strided),
    Const(f32),
    Unary(Unary, usize),
    Binary(Binary, usize, usize),
    Fma(usize, usize, usize),
}

/// `O = softmax_keys(f(Q K^T)) V` per batch item (see the module doc). `q`: rows are
/// queries, columns the depth; `k`: keys by depth; `v`: keys by width; `out`: queries
/// by width.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    /// The batch axes' extents, outermost first (items are numbered row-major).
    pub batch: Vec<usize>,
    pub queries: usize,
    pub keys: usize,
    pub depth: usize,
    pub width: usize,
    pub q: Strided,
    pub k: Strided,
    pub v: Strided,
    pub out: Strided,
    pub scores: Vec<ScoreOp>,
}

impl Attention {
    /// Batch items: the batch axes' extents multiplied.
    pub fn items(&self) -> usize {
        self.batch.iter().product()
    }

    /// The buffers it reads.
    pub fn reads(&self) -> Vec<BufId> {
        let loads = self.scores.iter().filter_map(|op| match op {
            ScoreOp::Load(s) => Some(s.buf),
            _ => None,
        });
        let plus = [&self.q, &self.k, &self.v]
            .into_iter()
            .filter_map(|x| x.plus.as_ref().map(|p| p.buf));
        [self.q.buf, self.k.buf, self.v.buf]
            .into_iter()
            .chain(plus)
            .chain(loads)
            .collect()
    }
}

/// The most queries or keys a fused kernel takes: a thread's tiles are `keys x 64`
/// floats per transform step.
const MAX_KEYS: usize = 4096;

/// Rewrites `p`'s attention chains (see the module doc).
pub fn fuse_attention(p: &mut Program) {
    if std::env::var_os("MPC_UNFUSED_ATTENTION").is_some() || !p.dynamic.is_empty() {
        return;
    }
    let mut s = 0;
    while s < p.kernels.len() {
        match chain(p, s) {
            Some((at, fused, mut gone)) => {
                p.kernels[at] = fused;
                gone.sort_unstable();
                // `s` went too: the next kernel to look at takes its index, less the
                // kernels before it that went (the head split).
                let before = gone.iter().filter(|&&k| k < s).count();
                for k in gone.into_iter().rev() {
                    p.kernels.remove(k);
                }
                s -= before;
            }
            None => s += 1,
        }
    }
}

/// The kernels that touch `buf`, in order.
fn users(p: &Program, buf: BufId) -> Vec<usize> {
    (0..p.kernels.len())
        .filter(|&j| touched(&p.kernels[j]).contains(&buf))
        .collect()
}

/// The one kernel other than `from` that touches the temporary `buf`, when there is
/// exactly one and it comes after `from`.
fn only_reader(p: &Program, buf: BufId, from: usize) -> Option<usize> {
    if p.buffers[buf].kind != BufKind::Temp {
        return None;
    }
    match users(p, buf)[..] {
        [w, r] if w == from && r > from => Some(r),
        _ => None,
    }
}

fn plain_loop(p: &Program, k: usize) -> Option<&LoopKernel> {
    match &p.kernels[k].body {
        KernelBody::Loop(lk)
            if lk.scatter_rows.is_none() && lk.row_blocks.is_none() && lk.col_chunks.is_none() && !lk.zeroed =>
        {
            Some(lk)
        }
        _ => None,
    }
}

/// A loop's two stores: a write and a reduction (`op`) of the same value along the
/// last axis: `(write's buffer and index, reduction's buffer and index, value)`.
/// A store's buffer and index.
type Stored<'a> = (BufId, &'a Affine);

fn write_and_reduce(lk: &LoopKernel, op: ReduceOp) -> Option<(Stored<'_>, Stored<'_>, ExprId)> {
    let (w, r) = match &lk.stores[..] {
        [w @ Store::Write { .. }, r @ Store::Reduce { .. }] | [r @ Store::Reduce { .. }, w @ Store::Write { .. }] => {
            (w, r)
        }
        _ => return None,
    };
    let (
        Store::Write { buf, at, value },
        Store::Reduce {
            buf: rb,
            at: ra,
            value: rv,
            op: o,
        },
    ) = (w, r)
    else {
        return None;
    };
    let last = lk.domain.len() - 1;
    (*o == op && rv == value && ra.coef[last] == 0 && at.coef[last] != 0).then_some(((*buf, at), (*rb, ra), *value))
}

fn load(lk: &LoopKernel, e: ExprId) -> Option<(BufId, &Affine)> {
    match &lk.exprs[e] {
        Expr::Load { buf, at } => Some((*buf, at)),
        _ => None,
    }
}

/// An operand of a matmul as rows by columns, its batch strides those of `pick`.
fn strided(v: &View2, batch: &[BatchAxis], pick: fn(&BatchAxis) -> i64, transposed: bool) -> Strided {
    let (rs, cs) = if transposed { (v.cs, v.rs) } else { (v.rs, v.cs) };
    Strided {
        buf: v.buf,
        offset: v.offset,
        batch: batch.iter().map(pick).collect(),
        rs,
        cs,
        plus: None,
    }
}

/// `mm`'s batch axes as the loop's (`extents`, outermost first): a matmul axis that
/// merged several of them (their strides nest) is split back, its stride the
/// innermost's. `None` when they do not line up.
fn batch_axes(mm: &MatMul, extents: &[usize]) -> Option<Vec<BatchAxis>> {
    let mut axes = Vec::with_capacity(extents.len());
    let mut rest = extents;
    for x in &mm.batch {
        let mut len = 1;
        let mut take = 0;
        while len < x.len && take < rest.len() {
            len *= rest[take];
            take += 1;
        }
        if len != x.len || take == 0 {
            return None;
        }
        let mut inner = 1i64;
        let mut split: Vec<BatchAxis> = rest[..take]
            .iter()
            .rev()
            .map(|&n| {
                let axis = BatchAxis {
                    len: n,
                    a: x.a * inner,
                    b: x.b * inner,
                    out: x.out * inner,
                };
                inner *= n as i64;
                axis
            })
            .collect();
        split.reverse();
        axes.extend(split);
        rest = &rest[take..];
    }
    rest.is_empty().then_some(axes)
}

/// Whether `batch` (a matmul's, as the loop's axes) moves one operand (`pick`) by `coef`.
fn same_batch(batch: &[BatchAxis], coef: &[i64], pick: fn(&BatchAxis) -> i64) -> bool {
    batch.len() == coef.len() && batch.iter().zip(coef).all(|(x, &c)| pick(x) == c)
}

/// The chain whose scores matmul is kernel `s`: where the fused kernel goes (the
/// product with `V`'s place), the kernel, and the kernels that go.
fn chain(p: &Program, s: usize) -> Option<(usize, Kernel, Vec<usize>)> {
    let KernelBody::MatMul(scores_mm) = &p.kernels[s].body else {
        return None;
    };
    let l1 = only_reader(p, scores_mm.out.buf, s)?;
    let lk1 = plain_loop(p, l1)?;
    let rank = lk1.domain.len();
    if !(2..=4).contains(&rank) {
        return None;
    }
    let nb = rank - 2;
    let (queries, keys) = (lk1.domain[nb], lk1.domain[nb + 1]);
    if keys > MAX_KEYS || queries == 0 || keys == 0 {
        return None;
    }
    let ((x, x_at), (m, m_at), value) = write_and_reduce(lk1, ReduceOp::Max)?;
    // Q and K from the scores' matmul, in whichever orientation it computes them.
    let mut qk = None;
    let mut scores = Vec::new();
    let mut made = vec![None; lk1.exprs.len()];
    let mut transform_reads = Vec::new();
    for e in 0..=value {
        if !reaches(lk1, e, value) {
            continue;
        }
        let op = match &lk1.exprs[e] {
            Expr::Load { buf, at } if *buf == scores_mm.out.buf => {
                let found = scores_operands(scores_mm, &lk1.domain, at)?;
                if qk.is_some_and(|prev| prev != found) {
                    return None;
                }
                qk = Some(found);
                ScoreOp::Product
            }
            Expr::Load { buf, at } if p.buffers[*buf].dtype == DType::F32 => {
                transform_reads.push(*buf);
                ScoreOp::Load(Strided {
                    buf: *buf,
                    offset: at.offset,
                    batch: at.coef[..nb].to_vec(),
                    rs: at.coef[nb],
                    cs: at.coef[nb + 1],
                    plus: None,
                })
            }
            Expr::Const(bits) => ScoreOp::Const(f32::from_bits(*bits)),
            Expr::Unary(op @ (Unary::Neg | Unary::StopGradient), a) => ScoreOp::Unary(*op, made[*a]?),
            Expr::Binary(op, a, b) => ScoreOp::Binary(*op, made[*a]?, made[*b]?),
            Expr::Fma(a, b, c) => ScoreOp::Fma(made[*a]?, made[*b]?, made[*c]?),
            _ => return None,
        };
        made[e] = Some(scores.len());
        scores.push(op);
    }
    let (swapped_scores, depth) = qk?;
    let batch = batch_axes(scores_mm, &lk1.domain[..nb])?;
    let (q, k) = if swapped_scores {
        (
            strided(&scores_mm.b, &batch, |x| x.b, true),
            strided(&scores_mm.a, &batch, |x| x.a, false),
        )
    } else {
        (
            strided(&scores_mm.a, &batch, |x| x.a, false),
            strided(&scores_mm.b, &batch, |x| x.b, true),
        )
    };
    // E = exp(X - M), Z = its sum over the keys.
    let l2 = only_reader(p, x, l1)?;
    if only_reader(p, m, l1)? != l2 {
        return None;
    }
    let lk2 = plain_loop(p, l2)?;
    let ((e, e_at), (z, z_at), ev) = write_and_reduce(lk2, ReduceOp::Sum)?;
    let Expr::Unary(Unary::Exp, diff) = lk2.exprs[ev] else {
        return None;
    };
    let Expr::Binary(Binary::Sub, xl, ml) = lk2.exprs[diff] else {
        return None;
    };
    if lk2.domain != lk1.domain || load(lk2, xl)? != (x, x_at) || load(lk2, ml)? != (m, m_at) {
        return None;
    }
    // P = E / Z.
    let l3 = only_reader(p, e, l2)?;
    if only_reader(p, z, l2)? != l3 {
        return None;
    }
    let lk3 = plain_loop(p, l3)?;
    let [Store::Write {
        buf: weights,
        at: p_at,
        value: pv,
    }] = &lk3.stores[..]
    else {
        return None;
    };
    let Expr::Binary(Binary::Div, el, zl) = lk3.exprs[*pv] else {
        return None;
    };
    if lk3.domain != lk1.domain || load(lk3, el)? != (e, e_at) || load(lk3, zl)? != (z, z_at) {
        return None;
    }
    // O = P V.
    let o = only_reader(p, *weights, l3)?;
    let KernelBody::MatMul(out_mm) = &p.kernels[o].body else {
        return None;
    };
    let (v, out, width) = weighted_sum(out_mm, &lk1.domain, p_at, *weights)?;
    // At `o`, where the fused kernel runs, Q and K still hold what `s` read and the
    // transform's tensors what `l1` read (V is `o`'s own operand).
    let changed =
        |reads: &[BufId], from: usize| (from + 1..o).any(|j| written(&p.kernels[j]).iter().any(|b| reads.contains(b)));
    if changed(&[q.buf, k.buf], s) || changed(&transform_reads, l1) {
        return None;
    }
    let mut att = Attention {
        batch: lk1.domain[..nb].to_vec(),
        queries,
        keys,
        depth,
        width,
        q,
        k,
        v,
        out,
        scores,
    };
    let mut gone = vec![s, l1, l2, l3];
    gone.extend(absorb::sums(p, &mut att, s, o));
    gone.extend(absorb::copy(p, &mut att, o));
    Some((o, super::fuse::finish(KernelBody::Attention(att)), gone))
}

/// Whether expression `e` is `target` or one of its operands, transitively.
fn reaches(lk: &LoopKernel, e: ExprId, target: ExprId) -> bool {
    let mut stack = vec![target];
    let mut seen = vec![false; lk.exprs.len()];
    while let Some(x) = stack.pop() {
        if x == e {
            return true;
        }
        if !std::mem::replace(&mut seen[x], true) {
            stack.extend(lk.exprs[x].operands());
        }
    }
    false
}

/// When the loop reads the scores' matmul output `S` at `at` as (batch.., query, key):
/// whether the matmul computes `S^T` (keys as its rows) and the depth.
fn scores_operands(mm: &MatMul, domain: &[usize], at: &Affine) -> Option<(bool, usize)> {
    let nb = domain.len() - 2;
    let (queries, keys) = (domain[nb], domain[nb + 1]);
    let (qc, kc) = (at.coef[nb], at.coef[nb + 1]);
    let batch = batch_axes(mm, &domain[..nb])?;
    if at.offset != mm.out.offset || !same_batch(&batch, &at.coef[..nb], |x| x.out) {
        return None;
    }
    if (mm.m, mm.n, mm.out.rs, mm.out.cs) == (queries, keys, qc, kc) {
        Some((false, mm.k))
    } else if (mm.m, mm.n, mm.out.rs, mm.out.cs) == (keys, queries, kc, qc) {
        Some((true, mm.k))
    } else {
        None
    }
}

/// When `mm` is `O = P V` with `P` (`weights`, written at `p_at` over the loop's
/// domain) one operand: `V` (keys by width), `O` (queries by width) and the width.
fn weighted_sum(mm: &MatMul, domain: &[usize], p_at: &Affine, weights: BufId) -> Option<(Strided, Strided, usize)> {
    let nb = domain.len() - 2;
    let (queries, keys) = (domain[nb], domain[nb + 1]);
    let (qc, kc) = (p_at.coef[nb], p_at.coef[nb + 1]);
    let coef = &p_at.coef[..nb];
    let batch = batch_axes(mm, &domain[..nb])?;
    if mm.k != keys {
        return None;
    }
    if mm.a.buf == weights && mm.b.buf != weights {
        // O = P V: `a` is P (queries by keys), `b` is V, `out` queries by width.
        let fits = (mm.m, mm.a.rs, mm.a.cs, mm.a.offset) == (queries, qc, kc, p_at.offset);
        (fits && same_batch(&batch, coef, |x| x.a)).then(|| {
            let v = strided(&mm.b, &batch, |x| x.b, false);
            let out = strided(&mm.out, &batch, |x| x.out, false);
            (v, out, mm.n)
        })
    } else if mm.b.buf == weights && mm.a.buf != weights {
        // O^T = V^T P^T: `b` is P^T (keys by queries), `a` is V^T, `out` width by queries.
        let fits = (mm.n, mm.b.rs, mm.b.cs, mm.b.offset) == (queries, kc, qc, p_at.offset);
        (fits && same_batch(&batch, coef, |x| x.b)).then(|| {
            let v = strided(&mm.a, &batch, |x| x.a, true);
            let out = strided(&mm.out, &batch, |x| x.out, true);
            (v, out, mm.m)
        })
    } else {
        None
    }
}

impl Strided {
    /// `buf[16*i0 + 64*q + d]`: the batch axes as `i0, i1, ..`, then `row`, `col`.
    fn text(&self, buf: &dyn Fn(BufId) -> String, row: &str, col: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        let names = (0..self.batch.len()).map(|a| format!("i{a}"));
        let names = names.chain([row.to_string(), col.to_string()]);
        let coefs = self.batch.iter().chain([&self.rs, &self.cs]);
        for (name, &c) in names.zip(coefs) {
            match c {
                0 => {}
                1 => parts.push(name),
                c => parts.push(format!("{c}*{name}")),
            }
        }
        if self.offset != 0 || parts.is_empty() {
            parts.push(self.offset.to_string());
        }
        let plus = self.plus.as_ref().map(|p| format!(" + {}", p.text(buf, row, col)));
        format!("{}[{}]{}", buf(self.buf), parts.join(" + "), plus.unwrap_or_default())
    }
}

impl Attention {
    /// The body's lines for `--emit kernels`: the operands, then the score transform
    /// (`s0, s1, ..`, the last one the softmax's input).
    pub fn body_text(&self, buf: &dyn Fn(BufId) -> String) -> Vec<String> {
        let mut lines = vec![
            format!("q = {}", self.q.text(buf, "q", "d")),
            format!("k = {}", self.k.text(buf, "k", "d")),
            format!("v = {}", self.v.text(buf, "k", "w")),
            format!("out = {}", self.out.text(buf, "q", "w")),
        ];
        for (i, op) in self.scores.iter().enumerate() {
            let rhs = match op {
                ScoreOp::Product => "sum_d q * k".to_string(),
                ScoreOp::Load(s) => format!("load {}", s.text(buf, "q", "k")),
                ScoreOp::Const(c) => format!("const {c:?}"),
                ScoreOp::Unary(op, a) => format!("{} s{a}", op.name()),
                ScoreOp::Binary(op, a, b) => format!("{} s{a}, s{b}", op.name()),
                ScoreOp::Fma(a, b, c) => format!("fma s{a}, s{b}, s{c}"),
            };
            lines.push(format!("s{i} = {rhs}"));
        }
        lines
    }
}
