//! Reductions over a loop's outermost axis split into fixed blocks of rows (the pass
//! `split_reductions`, for the CPU, after scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which every loop kernel that
//! had to run on one thread because it reduces over its outermost axis (a bias's
//! gradient: the column sums of a `[rows, features]` value, often fused with the loop
//! that computes it; a loss summed over a batch) and has work enough to split, runs in
//! blocks of rows that threads share. Each block reduces into its own slice of a
//! partial buffer (`[blocks, len]`), and a combine kernel placed right after reduces
//! each element's partials in block order into the real output.
//!
//! The blocks depend only on the compiled row count, never on the thread count, so a
//! result is the same on any number of threads. It differs from the interpreter's
//! row-by-row sum by reassociation only (a partial sum per block). A kernel whose rows
//! are a batch's dynamic count keeps its serial loop (the blocks would move with it).

use super::{Affine, BufId, BufKind, Buffer, Expr, Kernel, KernelBody, LoopKernel, Program, ReduceOp, Store};
use std::collections::BTreeMap;

/// At most this many blocks (the combine kernel adds this many partials per element).
const MAX_BLOCKS: usize = 16;
/// At least this many rows per block.
const MIN_ROWS: usize = 16;
/// Kernels with less work (`Kernel::work`) stay serial: a split costs a combine kernel.
const MIN_WORK: usize = 16 * 1024;
/// Partial buffers of at most this many floats in all per kernel.
const MAX_PARTIAL: usize = 1 << 20;

/// Rewrites `p`'s serial outer-axis reductions (see the module doc).
pub fn split_reductions(p: &mut Program) {
    let mut kernels = Vec::with_capacity(p.kernels.len());
    for mut kernel in std::mem::take(&mut p.kernels) {
        let combines = match &mut kernel.body {
            KernelBody::Loop(lk) if !kernel.parallel && kernel.work >= MIN_WORK => split(p, lk),
            _ => Vec::new(),
        };
        if let (false, KernelBody::Loop(lk)) = (combines.is_empty(), &kernel.body) {
            kernel.range = lk.blocks();
            kernel.parallel = true;
        }
        kernels.push(kernel);
        kernels.extend(combines);
    }
    p.kernels = kernels;
}

/// Splits `lk` in row blocks when it qualifies: its reductions over axis 0 then go to
/// new partial buffers, and the combine kernels that finish them are returned.
fn split(p: &mut Program, lk: &mut LoopKernel) -> Vec<Kernel> {
    let Some(&rows) = lk.domain.first() else {
        return Vec::new();
    };
    let outer = |s: &Store| matches!(s, Store::Reduce { at, .. } if at.coef[0] == 0);
    let block = rows.div_ceil(MAX_BLOCKS).max(MIN_ROWS);
    let blocks = rows.div_ceil(block);
    let reduced: BTreeMap<BufId, ReduceOp> = lk
        .stores
        .iter()
        .filter_map(|s| match s {
            Store::Reduce { buf, op, .. } if outer(s) => Some((*buf, *op)),
            _ => None,
        })
        .collect();
    let partial_len: usize = reduced.keys().map(|&b| p.buffers[b].len * blocks).sum();
    if lk.scatter_rows.is_some()
        || blocks < 2
        || reduced.is_empty()
        || partial_len > MAX_PARTIAL
        || p.dynamic_slot(rows).is_some()
    {
        return Vec::new();
    }
    let mut combines = Vec::new();
    let mut partial_of = BTreeMap::new();
    for (&buf, &op) in &reduced {
        let len = p.buffers[buf].len;
        let partial = p.buffers.len();
        p.buffers.push(Buffer {
            kind: BufKind::Temp,
            len: len * blocks,
            ..p.buffers[buf].clone()
        });
        partial_of.insert(buf, partial);
        combines.push(combine(buf, partial, op, len, blocks));
    }
    for s in &mut lk.stores {
        if let Store::Reduce { buf, at, .. } = s {
            if at.coef[0] == 0 {
                *buf = partial_of[buf];
            }
        }
    }
    lk.row_blocks = Some(block);
    combines
}

/// `out[j] = op over b of partial[b * len + j]`, in block order; threads split `j`
/// (also the GPU's `block_reductions`).
pub(super) fn combine(out: BufId, partial: BufId, op: ReduceOp, len: usize, blocks: usize) -> Kernel {
    // A scalar output is one sum along the blocks (its domain has no unit axis).
    let (domain, load, store) = if len == 1 {
        (vec![blocks], vec![1], vec![0])
    } else {
        (vec![len, blocks], vec![1, len as i64], vec![1, 0])
    };
    let lk = LoopKernel {
        domain: domain.clone(),
        exprs: vec![Expr::Load {
            buf: partial,
            at: Affine { coef: load, offset: 0 },
        }],
        stores: vec![Store::Reduce {
            buf: out,
            at: Affine { coef: store, offset: 0 },
            value: 0,
            op,
        }],
        scatter_rows: None,
        row_blocks: None,
        zeroed: false,
        col_chunks: None,
    };
    Kernel {
        range: domain[0],
        parallel: len > 1,
        work: len * blocks,
        body: KernelBody::Loop(lk),
    }
}
