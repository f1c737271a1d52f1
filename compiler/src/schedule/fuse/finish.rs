//! Finishing a fused loop kernel: unit axes dropped, `fma` contraction, and how threads
//! split each kernel.
//!
//! In: a kernel body as fusion left it. Out: a [`Kernel`] with its `range` (what threads
//! split), whether splitting is allowed, and a rough amount of work.

use super::*;
use crate::ir::Binary;

/// Contracts `a * b + c` into `fma` where the product has no other use.
fn contract_fma(lk: &mut LoopKernel) {
    let mut uses = vec![0usize; lk.exprs.len()];
    for e in &lk.exprs {
        for o in e.operands() {
            uses[o] += 1;
        }
    }
    for s in &lk.stores {
        uses[s.value()] += 1;
        if let Store::Scatter { row, .. } = s {
            uses[*row] += 1;
        }
    }
    for i in 0..lk.exprs.len() {
        if let Expr::Binary(Binary::Add, a, b) = lk.exprs[i] {
            let product = |x: usize| match lk.exprs[x] {
                Expr::Binary(Binary::Mul, p, q) if uses[x] == 1 => Some((p, q)),
                _ => None,
            };
            if let Some((p, q)) = product(a) {
                lk.exprs[i] = Expr::Fma(p, q, b);
            } else if let Some((p, q)) = product(b) {
                lk.exprs[i] = Expr::Fma(p, q, a);
            }
        }
    }
}

/// Drops the domain's axes of extent 1 (a scatter keeps its positions axis 0): their
/// index is always 0, so no address changes, but a loop over one element would cost a
/// loop nest level per element of the axis outside it and, as the innermost axis, the
/// f32x4 loop (measured: GAT's one-head `[E, 1]` score loops ran scalar at ~5 ns an
/// edge).
fn drop_unit_axes(lk: &mut LoopKernel) {
    let first = usize::from(lk.scatter_rows.is_some());
    let keep: Vec<usize> = (0..lk.domain.len())
        .filter(|&a| a < first || lk.domain[a] != 1)
        .collect();
    if keep.len() == lk.domain.len() {
        return;
    }
    let squeeze = |at: &mut Affine| at.coef = keep.iter().map(|&a| at.coef[a]).collect();
    for e in &mut lk.exprs {
        match e {
            Expr::Load { at, .. } | Expr::LoadRow { at, .. } | Expr::Philox { at, .. } => squeeze(at),
            Expr::OneHot { class, .. } => squeeze(class),
            Expr::Const(_) | Expr::Unary(..) | Expr::Binary(..) | Expr::Fma(..) | Expr::CheckIndex { .. } => {}
        }
    }
    for s in &mut lk.stores {
        match s {
            Store::Write { at, .. } | Store::Reduce { at, .. } | Store::Scatter { at, .. } => squeeze(at),
        }
    }
    lk.domain = keep.iter().map(|&a| lk.domain[a]).collect();
}

/// Flops of one Philox4x32-10 draw (10 rounds of two 32x32 multiplies and the key
/// schedule), on the op table's scale.
const PHILOX_FLOPS: f64 = 60.0;

/// A loop's work per element, in units of about 8 flops (at least 1), from the op
/// table's costs: a kernel of a few adds counts its elements, one that draws random
/// numbers or calls `exp` counts more, so that the executor splits it across threads
/// at fewer elements (measured: the transformer's dropout masks, 65,536 Philox draws,
/// ran on one thread).
fn cost_per_element(lk: &LoopKernel) -> usize {
    let flops: f64 = lk
        .exprs
        .iter()
        .map(|e| match e {
            Expr::Unary(op, _) => op.flops(),
            Expr::Binary(op, _, _) => op.flops(),
            Expr::Fma(..) => 2.0,
            Expr::Philox { .. } => PHILOX_FLOPS,
            _ => 0.0,
        })
        .sum();
    ((flops / 8.0).ceil() as usize).max(1)
}

pub(crate) fn finish(body: KernelBody) -> Kernel {
    match body {
        KernelBody::Loop(mut lk) => {
            drop_unit_axes(&mut lk);
            contract_fma(&mut lk);
            let numel: usize = lk.domain.iter().product();
            let (range, parallel, work) = match lk.scatter_rows {
                // Splitting a scatter by output rows makes every thread scan every
                // position: measured slower on 2 threads than on 1 (bench/README.md), so
                // CPU threads leave scatters whole (the GPU gives each row a thread).
                Some(rows) => (rows, false, numel * 2),
                None if lk.domain.is_empty() => (1, false, 1),
                None => {
                    let split_ok = lk.stores.iter().all(|s| match s {
                        Store::Reduce { at, .. } => at.coef[0] != 0,
                        _ => true,
                    });
                    (lk.domain[0], split_ok, numel.saturating_mul(cost_per_element(&lk)))
                }
            };
            Kernel {
                body: KernelBody::Loop(lk),
                range,
                parallel,
                work,
            }
        }
        // Threads split (batch, 64-row block, column block) triples, flattened
        // batch-major: each is one GEMM call whose output no other call writes.
        KernelBody::MatMul(mm) => Kernel {
            range: mm.tasks(mm.m),
            parallel: true,
            work: mm.batches() * mm.m * mm.n * mm.k / 8,
            body: KernelBody::MatMul(mm),
        },
        KernelBody::Segment(seg) => Kernel {
            range: seg.rows,
            parallel: true, // every thread scans every position, but updates only its own rows
            work: seg.positions * seg.row_len,
            body: KernelBody::Segment(seg),
        },
        // Threads split the batch items (a sequence and a head each).
        KernelBody::Attention(att) => Kernel {
            range: att.items(),
            parallel: true,
            work: att.items() * att.queries * att.keys * (att.depth + att.width + 8),
            body: KernelBody::Attention(att),
        },
    }
}
