//! Backend-neutral facts about one kernel, which the code generators and the passes
//! over programs need.
//!
//! In: a [`LoopKernel`] (or any [`Kernel`]). Out: which expressions are live (needed by
//! a store), the loop depth at which each expression can first be computed (the
//! deepest loop whose index it reads, directly or through its operands: a backend
//! computes an expression once per iteration of that loop, hoisted out of the deeper
//! ones), and the buffers a kernel reads or writes.

use super::{Affine, BufId, Expr, Kernel, KernelBody, LoopKernel, Store};

/// The buffers `kernel` reads or writes (a buffer may appear more than once).
pub fn touched(kernel: &Kernel) -> Vec<BufId> {
    match &kernel.body {
        KernelBody::Loop(lk) => {
            let loaded = lk.exprs.iter().filter_map(|e| match e {
                Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => Some(*buf),
                _ => None,
            });
            loaded.chain(lk.stores.iter().map(Store::buf)).collect()
        }
        KernelBody::MatMul(mm) => vec![mm.a.buf, mm.b.buf, mm.out.buf],
        KernelBody::Segment(seg) => [seg.values.0, seg.index.0, seg.out]
            .into_iter()
            .chain(seg.maxima)
            .collect(),
        KernelBody::Attention(att) => att.reads().into_iter().chain([att.out.buf]).collect(),
    }
}

/// The buffers `kernel` writes.
pub fn written(kernel: &Kernel) -> Vec<BufId> {
    match &kernel.body {
        KernelBody::Loop(lk) => lk.stores.iter().map(Store::buf).collect(),
        KernelBody::MatMul(mm) => vec![mm.out.buf],
        KernelBody::Segment(seg) => [seg.out].into_iter().chain(seg.maxima).collect(),
        KernelBody::Attention(att) => vec![att.out.buf],
    }
}

/// `live[e]`: expression `e` is needed by a store (its value, or a scatter's row).
/// Fails when a store or an expression reads an expression that does not exist or comes
/// later (a malformed kernel).
pub fn live_exprs(lk: &LoopKernel) -> Result<Vec<bool>, String> {
    let n = lk.exprs.len();
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    for s in &lk.stores {
        stack.push(s.value());
        if let Store::Scatter { row, .. } = s {
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
    for (i, e) in lk.exprs.iter().enumerate() {
        if e.operands().iter().any(|&o| o >= i) {
            return Err(format!("e{i} reads a later expression"));
        }
    }
    Ok(live)
}

/// The loop depth of each expression, given the depth of each domain axis' loop
/// (`axis_depth[a]`, 0 for outside every loop): the deepest axis its own index reads,
/// or its operands' depth if deeper.
pub fn expr_levels(lk: &LoopKernel, axis_depth: &[usize]) -> Vec<usize> {
    let mut level = vec![0; lk.exprs.len()];
    for (i, e) in lk.exprs.iter().enumerate() {
        let own = e.affine().map_or(0, |at| {
            at.coef
                .iter()
                .zip(axis_depth)
                .filter(|(&c, _)| c != 0)
                .map(|(_, &d)| d)
                .max()
                .unwrap_or(0)
        });
        level[i] = e.operands().iter().map(|&o| level[o]).fold(own, usize::max);
    }
    level
}

/// True when `sum(coef[a] * i[a])` over axes with extent > 1 takes distinct values for
/// distinct indices (a mixed-radix check: a sufficient condition).
pub fn injective(at: &Affine, domain: &[usize]) -> bool {
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

/// The axes that threads of a GPU split (one thread per element of their product): kept
/// by every reduction and written injectively by every store; none (one thread) when
/// that cannot be shown.
pub fn parallel_axes(lk: &LoopKernel) -> Vec<bool> {
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
        Store::Scatter { .. } => false,
    });
    if ok {
        par
    } else {
        vec![false; r]
    }
}
