//! Scatter targets zeroed by a parallel kernel (the pass `zero_scatter_targets`, for
//! the CPU, after scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which every scatter-add that
//! runs on one thread (its adds must follow position order) and writes enough rows has
//! its output zeroed by a fill kernel placed right before it, which threads split, and
//! no longer zeroes it itself (`LoopKernel::zeroed`). An embedding table's gradient is
//! a scatter of a few thousand rows into a table of ten thousand: the zeroing was most
//! of that serial kernel's time. So is an argmax scatter's (the gradient of a max
//! aggregation: one element per node and column into an edges-by-columns table), which
//! then splits its positions between threads (`Segment::zeroed`) instead of having
//! every thread read every position and keep its rows' (a data-dependent branch per
//! element, 670 us of gnn-nonlinear's training step).

use super::{Affine, BufId, Expr, Kernel, KernelBody, LoopKernel, Program, ReduceOp, SegmentOp, Store};
use std::collections::BTreeMap;

/// Scatters whose outputs hold fewer elements than this zero them themselves.
const MIN_ELEMENTS: usize = 16 * 1024;

/// Rewrites `p`'s serial scatter-adds (see the module doc).
pub fn zero_scatter_targets(p: &mut Program) {
    let mut kernels = Vec::with_capacity(p.kernels.len());
    for mut kernel in std::mem::take(&mut p.kernels) {
        if let KernelBody::Segment(seg) = &mut kernel.body {
            let elements = seg.rows * seg.row_len;
            if seg.op == SegmentOp::ArgmaxScatter && !seg.zeroed && elements >= MIN_ELEMENTS {
                kernels.push(fill(seg.out, seg.rows, seg.row_len));
                seg.zeroed = true;
                kernel.range = seg.positions;
            }
        }
        if let KernelBody::Loop(lk) = &mut kernel.body {
            if let (Some(rows), false, false) = (lk.scatter_rows, kernel.parallel, lk.zeroed) {
                let targets: BTreeMap<BufId, usize> = lk
                    .stores
                    .iter()
                    .filter_map(|s| match s {
                        Store::Scatter {
                            buf,
                            row_len,
                            op: ReduceOp::Sum,
                            ..
                        } => Some((*buf, *row_len as usize)),
                        _ => None,
                    })
                    .collect();
                let whole = |(&buf, &row_len): (&BufId, &usize)| p.buffers[buf].len == rows * row_len;
                // A scatter-max's rows start at -inf, not zero: such a kernel keeps its own start.
                let sums = targets.len() == lk.stores.iter().filter(|s| matches!(s, Store::Scatter { .. })).count();
                let elements: usize = targets.iter().map(|(&b, _)| p.buffers[b].len).sum();
                if sums && elements >= MIN_ELEMENTS && targets.iter().all(whole) {
                    kernels.extend(targets.iter().map(|(&buf, &row_len)| fill(buf, rows, row_len)));
                    lk.zeroed = true;
                }
            }
        }
        kernels.push(kernel);
    }
    p.kernels = kernels;
}

/// `buf[r, c] = 0` over `rows` rows of `row_len`; threads split the rows.
fn fill(buf: BufId, rows: usize, row_len: usize) -> Kernel {
    let (domain, at) = match row_len {
        1 => (vec![rows], vec![1]),
        _ => (vec![rows, row_len], vec![row_len as i64, 1]),
    };
    Kernel {
        range: rows,
        parallel: true,
        work: rows * row_len,
        body: KernelBody::Loop(LoopKernel {
            domain,
            exprs: vec![Expr::Const(0f32.to_bits())],
            stores: vec![Store::Write {
                buf,
                at: Affine { coef: at, offset: 0 },
                value: 0,
            }],
            scatter_rows: None,
            row_blocks: None,
            zeroed: false,
            col_chunks: None,
        }),
    }
}
