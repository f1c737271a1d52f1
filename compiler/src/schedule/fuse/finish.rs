//! Finishing a fused loop kernel: `fma` contraction and how threads split each kernel.
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
        if let Store::ScatterAdd { row, .. } = s {
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

pub(super) fn finish(body: KernelBody) -> Kernel {
    match body {
        KernelBody::Loop(mut lk) => {
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
                    (lk.domain[0], split_ok, numel)
                }
            };
            Kernel {
                body: KernelBody::Loop(lk),
                range,
                parallel,
                work,
            }
        }
        KernelBody::MatMul(mm) => Kernel {
            range: mm.m.div_ceil(MATMUL_BLOCK),
            parallel: true,
            work: mm.m * mm.n * mm.k / 8,
            body: KernelBody::MatMul(mm),
        },
        KernelBody::Segment(seg) => Kernel {
            range: seg.rows,
            parallel: false, // as scatters: every thread would scan every position
            work: seg.positions * seg.row_len,
            body: KernelBody::Segment(seg),
        },
    }
}
