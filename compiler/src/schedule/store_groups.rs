//! Fused loops split by the axes their stores keep (the pass `split_store_groups`, for
//! the GPU).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a loop kernel whose
//! stores keep different axes, and that therefore would run on too few GPU threads, is
//! one kernel per group of stores that keep the same axes, in the original order.
//!
//! Why: a GPU thread owns the output elements of the axes that *every* store keeps
//! (`analysis::parallel_axes`). Fusion puts a layer norm's backward pass in one loop:
//! per-row stores (`[rows]`) and per-column weight gradients (`[columns]`, summed over
//! the rows) share no axis, so the fused loop ran on one thread, 65536 iterations one
//! after the other (the transformer's training step took 40 ms on an H200, 6.9 ms on one
//! CPU core). Split, the per-row kernel runs a thread per row and the per-column one a
//! thread per column. Each group's kernel recomputes the expressions it needs (they are
//! elementwise; the loads are what costs, and those were there already); the results
//! are the same bits, since every element is still combined in the interpreter's order.
//!
//! A loop that loads a buffer it also stores stays whole: splitting it would change
//! which values the loads see.

use super::analysis::{parallel_axes, written};
use super::{Expr, Kernel, KernelBody, LoopKernel, Program, Store};

/// A fused loop with fewer GPU threads than this is split when a group of its stores
/// would get more. Splitting costs a launch and loads again what the groups share, so a
/// loop of a thread per row (a layer norm's 1024 rows, 64 steps each) stays whole; one
/// thread, or one per column of a bias, does not (an H200 holds 132 x 2048 threads).
pub const MIN_THREADS: usize = 1024;
/// ... and when each thread walks at least this many elements: below that the walk costs
/// less than a launch more (a `[64, 5]` head, 5 steps a thread, stays whole).
pub const MIN_STEPS: usize = 256;

/// Whether a loop runs on too few GPU threads, each walking too long (see above).
pub fn too_serial(lk: &LoopKernel) -> bool {
    let total: usize = lk.domain.iter().product();
    let threads = threads(lk).max(1);
    threads < MIN_THREADS && total / threads >= MIN_STEPS
}

/// Rewrites `p`'s loop kernels as described in the module doc.
pub fn split_store_groups(p: &mut Program) {
    let kernels = std::mem::take(&mut p.kernels);
    for kernel in kernels {
        match split(&kernel) {
            Some(parts) => p.kernels.extend(parts),
            None => p.kernels.push(kernel),
        }
    }
}

/// How many GPU threads a loop kernel runs on.
pub fn threads(lk: &LoopKernel) -> usize {
    let par = parallel_axes(lk);
    lk.domain
        .iter()
        .zip(&par)
        .filter(|(_, &p)| p)
        .map(|(&n, _)| n)
        .product()
}

/// The axes a store keeps: those of extent > 1 its element index moves with.
fn kept(lk: &LoopKernel, store: &Store) -> Option<Vec<bool>> {
    match store {
        Store::Write { at, .. } | Store::Reduce { at, .. } => {
            Some(at.coef.iter().zip(&lk.domain).map(|(&c, &n)| c != 0 && n > 1).collect())
        }
        Store::Scatter { .. } => None,
    }
}

fn split(kernel: &Kernel) -> Option<Vec<Kernel>> {
    let KernelBody::Loop(lk) = &kernel.body else {
        return None;
    };
    if lk.scatter_rows.is_some() || lk.stores.len() < 2 || !too_serial(lk) {
        return None;
    }
    let stored = written(kernel);
    let loads_own = lk.exprs.iter().any(|e| match e {
        Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => stored.contains(buf),
        _ => false,
    });
    if loads_own {
        return None;
    }
    // Groups in the order of their first store.
    let mut groups: Vec<(Vec<bool>, Vec<Store>)> = Vec::new();
    for store in &lk.stores {
        let key = kept(lk, store)?;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, stores)) => stores.push(store.clone()),
            None => groups.push((key, vec![store.clone()])),
        }
    }
    let parts: Vec<Kernel> = groups
        .into_iter()
        .map(|(_, stores)| Kernel {
            body: KernelBody::Loop(LoopKernel { stores, ..lk.clone() }),
            ..kernel.clone()
        })
        .collect();
    let gains = parts.iter().any(|k| match &k.body {
        KernelBody::Loop(part) => threads(part) > threads(lk),
        _ => false,
    });
    (parts.len() > 1 && gains).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Binary;
    use crate::schedule::{one_loop_program, Affine, ReduceOp};

    fn at(coef: Vec<i64>) -> Affine {
        Affine { coef, offset: 0 }
    }

    /// A layer norm's backward shape: `y[i, j] = x[i, j] * 2`, row sums `r[i] += x[i, j]`,
    /// column sums `c[j] += x[i, j]`.
    fn rows_and_columns() -> Program {
        let (n, m) = (256, 64);
        let lk = LoopKernel {
            domain: vec![n, m],
            exprs: vec![
                Expr::Load {
                    buf: 0,
                    at: at(vec![m as i64, 1]),
                },
                Expr::Const(2f32.to_bits()),
                Expr::Binary(Binary::Mul, 0, 1),
            ],
            stores: vec![
                Store::Write {
                    buf: 1,
                    at: at(vec![m as i64, 1]),
                    value: 2,
                },
                Store::Reduce {
                    buf: 2,
                    at: at(vec![1, 0]),
                    value: 0,
                    op: ReduceOp::Sum,
                },
                Store::Reduce {
                    buf: 3,
                    at: at(vec![0, 1]),
                    value: 0,
                    op: ReduceOp::Sum,
                },
            ],
            scatter_rows: None,
            row_blocks: None,
            zeroed: false,
            col_chunks: None,
        };
        one_loop_program(lk, &[n * m, n * m, n, m])
    }

    fn loops(p: &Program) -> Vec<&LoopKernel> {
        p.kernels
            .iter()
            .filter_map(|k| match &k.body {
                KernelBody::Loop(lk) => Some(lk),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stores_of_disjoint_axes_get_their_own_threads() {
        let mut p = rows_and_columns();
        assert_eq!(threads(loops(&p)[0]), 1, "fused, no axis is kept by every store");
        split_store_groups(&mut p);
        let parts = loops(&p);
        // A thread per element for the write, per row for the row sums, per column for
        // the column sums.
        let bufs: Vec<Vec<usize>> = parts
            .iter()
            .map(|lk| lk.stores.iter().map(Store::buf).collect())
            .collect();
        assert_eq!(bufs, [vec![1], vec![2], vec![3]]);
        let counts: Vec<usize> = parts.iter().map(|lk| threads(lk)).collect();
        assert_eq!(counts, [256 * 64, 256, 64]);
    }

    #[test]
    fn a_loop_that_reads_what_it_writes_stays_whole() {
        let mut p = rows_and_columns();
        let KernelBody::Loop(lk) = &mut p.kernels[0].body else {
            unreachable!()
        };
        lk.exprs[0] = Expr::Load {
            buf: 1,
            at: at(vec![64, 1]),
        };
        let before = p.clone();
        split_store_groups(&mut p);
        assert_eq!(p, before);
    }
}
