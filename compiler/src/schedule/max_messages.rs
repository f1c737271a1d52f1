//! Max aggregations computed where their messages are (the pass `fuse_max_messages`,
//! for the CPU, after scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a segment max
//! ([`SegmentOp::Max`]) whose values only one loop writes and nothing else reads is
//! that loop instead: the loop's per-position value goes straight into the output row
//! of its index (`Store::Scatter` with [`ReduceOp::Max`], rows starting at `-inf`),
//! threads own output rows as in any scatter, and the `[positions, row]` buffer and its
//! segment kernel are gone. An evaluation step's max aggregation of nonlinear messages
//! (`tanh(linear(concat(src, dst)))` per edge) wrote 1.9 MB of messages and read them
//! back; its training step keeps them, for the argmax that the gradient needs.
//!
//! The result is the segment kernel's bit for bit: a value replaces the row's running
//! maximum only when strictly greater (NaN never does, of equal values the first in
//! position order stays), and each thread visits its rows' positions in order.
//! Programs whose extents are read at run time (batches of graphs) keep their segment
//! kernels.

use super::analysis::touched;
use super::{Affine, BufKind, Expr, Kernel, KernelBody, LoopKernel, Program, ReduceOp, SegmentOp, Store};

/// Rewrites `p`'s fusable segment maxima (see the module doc).
pub fn fuse_max_messages(p: &mut Program) {
    let mut k = 0;
    while k < p.kernels.len() {
        match fused(p, k) {
            Some((producer, kernel)) => {
                // In the segment's place: every buffer the loop reads is written by then.
                p.kernels[k] = kernel;
                p.kernels.remove(producer);
            }
            None => k += 1,
        }
    }
}

/// For the segment max at kernel `k`: the index of the loop that writes its values and
/// the scatter-max loop that replaces both.
fn fused(p: &Program, k: usize) -> Option<(usize, Kernel)> {
    let KernelBody::Segment(seg) = &p.kernels[k].body else {
        return None;
    };
    let (values, offset) = seg.values;
    let fixed = [seg.positions, seg.rows, seg.row_len]
        .iter()
        .all(|&n| p.dynamic_slot(n).is_none());
    if seg.op != SegmentOp::Max || offset != 0 || p.buffers[values].kind != BufKind::Temp || !fixed {
        return None;
    }
    let users: Vec<usize> = (0..p.kernels.len())
        .filter(|&j| touched(&p.kernels[j]).contains(&values))
        .collect();
    let [producer, segment] = users[..] else { return None };
    if segment != k {
        return None;
    }
    let KernelBody::Loop(lk) = &p.kernels[producer].body else {
        return None;
    };
    let [Store::Write { buf, at, value }] = &lk.stores[..] else {
        return None;
    };
    let plain = lk.scatter_rows.is_none() && lk.row_blocks.is_none() && lk.col_chunks.is_none() && !lk.zeroed;
    let rank = lk.domain.len();
    let rows_of_positions = rank >= 2
        && lk.domain[0] == seg.positions
        && lk.domain[1..].iter().product::<usize>() == seg.row_len
        && *at == Affine::linear(&identity(rank), &lk.domain, rank);
    if *buf != values || !plain || !rows_of_positions {
        return None;
    }
    let mut lk: LoopKernel = lk.clone();
    let (index, index_offset) = seg.index;
    let mut by_position = Affine::zero(rank);
    by_position.coef[0] = 1;
    by_position.offset = index_offset;
    let load = Expr::Load {
        buf: index,
        at: by_position,
    };
    // The message's own read of the same index (its destination end), if it has one.
    let row = match lk.exprs.iter().position(|e| *e == load) {
        Some(e) => e,
        None => {
            lk.exprs.push(load);
            lk.exprs.len() - 1
        }
    };
    lk.exprs.push(Expr::CheckIndex {
        index: row,
        bound: seg.rows as i64,
        check: seg.check,
    });
    // The element's place within its row: the write's index without the position's part.
    let mut within = at.clone();
    within.coef[0] = 0;
    lk.stores = vec![Store::Scatter {
        buf: seg.out,
        row: lk.exprs.len() - 1,
        row_len: seg.row_len as i64,
        at: within,
        value: *value,
        op: ReduceOp::Max,
    }];
    lk.scatter_rows = Some(seg.rows);
    let kernel = Kernel {
        body: KernelBody::Loop(lk),
        range: seg.rows,
        parallel: true,
        work: seg.positions * seg.row_len,
    };
    Some((producer, kernel))
}

/// Each axis's own index: `i0, i1, ..`.
fn identity(rank: usize) -> Vec<Affine> {
    (0..rank).map(|a| Affine::axis(rank, a)).collect()
}
