//! Backend-neutral facts about one kernel, which the code generators and the passes
//! over programs need.
//!
//! In: a [`LoopKernel`] (or any [`Kernel`]). Out: which expressions are live (needed by
//! a store), the loop depth at which each expression can first be computed (the
//! deepest loop whose index it reads, directly or through its operands: a backend
//! computes an expression once per iteration of that loop, hoisted out of the deeper
//! ones), and the buffers a kernel reads or writes.

use super::{BufId, Expr, Kernel, KernelBody, LoopKernel, Store};

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
    }
}

/// The buffers `kernel` writes.
pub fn written(kernel: &Kernel) -> Vec<BufId> {
    match &kernel.body {
        KernelBody::Loop(lk) => lk.stores.iter().map(Store::buf).collect(),
        KernelBody::MatMul(mm) => vec![mm.out.buf],
        KernelBody::Segment(seg) => [seg.out].into_iter().chain(seg.maxima).collect(),
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
