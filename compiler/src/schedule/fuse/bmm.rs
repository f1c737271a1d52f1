//! Reductions that are matrix products, run as (batched) GEMM calls instead of loops.
//!
//! In: the loop a `reduce_sum` root has just built, before it is placed (one `sum=`
//! store of the product of two f32 loads: every broadcast, transpose, slice or reshape
//! of the operands is already index arithmetic in the loads). Out: a [`MatMul`] with
//! up to [`MAX_BATCH_AXES`] batch axes when the domain is a matrix product and the cost
//! rule says a GEMM pays, else `None` and the loop stays.
//!
//! Each domain axis is classified by who reads it (a load's coefficient is nonzero) and
//! whether the output keeps it: in both operands and the output, a batch axis; in the
//! output and one operand, an M (that operand is `a`) or N axis; in both operands and
//! not the output, the K axis. Axes of one class merge when their strides nest (outer
//! stride = inner stride x inner extent, for both operands and the output), so a
//! `[B, T, D]` x `[D, E]` product over two row axes is one M axis. Anything else (an
//! axis only one operand or only the output reads, two K axes left after merging,
//! more than two batch axes, an M or N axis missing) stays a loop, as does a product
//! with anything else fused into it (a scale, a mask): only pure views of two buffers
//! qualify, so the GEMM computes exactly the interpreter's sum of products.
//!
//! Cost rule: m, n and k all at least [`MIN_DIM`]. Below that a GEMM call's fixed cost
//! (packing, dispatch) outweighs the product, and the loop kernel, vectorized along
//! its innermost axis, is as fast; attention with 16-wide heads and 16 positions
//! (`examples/transformer.mp`) is above it and measured faster as batched GEMMs
//! (`bench/README.md`).

use super::*;
use crate::ir::Binary;

/// The smallest m, n and k that get a GEMM call (see the module doc).
pub(super) const MIN_DIM: usize = 8;

/// One domain axis: its extent and its strides in `a`, `b` and the output.
#[derive(Clone, Copy, Debug)]
struct Axis {
    len: usize,
    a: i64,
    b: i64,
    out: i64,
}

impl Axis {
    /// `self` (outer) and `inner` as one axis, when every stride nests.
    fn merge(self, inner: Axis) -> Option<Axis> {
        let n = inner.len as i64;
        (self.a == inner.a * n && self.b == inner.b * n && self.out == inner.out * n).then_some(Axis {
            len: self.len * inner.len,
            ..inner
        })
    }
}

impl Axis {
    /// The same axis with the operands' roles exchanged.
    fn swapped(self) -> Axis {
        Axis {
            a: self.b,
            b: self.a,
            ..self
        }
    }
}

/// Merges neighbours (in domain order, outer first) whose strides nest.
fn merged(axes: Vec<Axis>) -> Vec<Axis> {
    let mut out: Vec<Axis> = Vec::with_capacity(axes.len());
    for x in axes {
        match out.last().and_then(|last| last.merge(x)) {
            Some(m) => *out.last_mut().unwrap() = m,
            None => out.push(x),
        }
    }
    out
}

/// The (batched) matmul that computes the reduction loop `lk`, if it is one and pays.
pub(super) fn as_matmul(lk: &LoopKernel, buffers: &[Buffer]) -> Option<MatMul> {
    let [Store::Reduce {
        buf: out,
        at,
        value,
        op: ReduceOp::Sum,
    }] = lk.stores.as_slice()
    else {
        return None;
    };
    if lk.exprs.len() != 3 {
        return None;
    }
    let Expr::Binary(Binary::Mul, x, y) = lk.exprs[*value] else {
        return None;
    };
    let load = |e: ExprId| match &lk.exprs[e] {
        Expr::Load { buf, at } if buffers[*buf].dtype == DType::F32 => Some((*buf, at)),
        _ => None,
    };
    let ((xb, xat), (yb, yat)) = (load(x)?, load(y)?);
    let (mut batch, mut ms, mut ns, mut ks) = (vec![], vec![], vec![], vec![]);
    for (d, &len) in lk.domain.iter().enumerate() {
        if len == 1 {
            continue; // index 0 only: no stride matters
        }
        let ax = Axis {
            len,
            a: xat.coef[d],
            b: yat.coef[d],
            out: at.coef[d],
        };
        match (ax.a != 0, ax.b != 0, ax.out != 0) {
            (true, true, true) => batch.push(ax),
            (true, false, true) => ms.push(ax),
            (false, true, true) => ns.push(ax),
            (true, true, false) => ks.push(ax),
            _ => return None,
        }
    }
    let (mut ms, mut ns, ks) = (merged(ms), merged(ns), merged(ks));
    let [k] = ks.as_slice() else { return None };
    // Extra M (N) axes that do not merge are batch axes that `b` (`a`) does not move
    // along (a weight shared across them); the innermost stays the GEMM's M (N).
    let (m, n) = (ms.pop()?, ns.pop()?);
    batch.extend(ms);
    batch.extend(ns);
    let mut batch = merged(batch);
    if batch.len() > MAX_BATCH_AXES || m.len.min(n.len).min(k.len) < MIN_DIM {
        return None;
    }
    // The GEMM writes rows of `out` fastest when they are contiguous: an output whose N
    // stride is the larger is computed as `out^T = b^T a^T` (operands swapped).
    let (mut m, mut n, mut k, mut xb, mut xat, mut yb, mut yat) = (m, n, *k, xb, xat, yb, yat);
    if n.out.abs() > m.out.abs() {
        (m, n) = (n.swapped(), m.swapped());
        k = k.swapped();
        batch = batch.into_iter().map(Axis::swapped).collect();
        (xb, xat, yb, yat) = (yb, yat, xb, xat);
    }
    Some(MatMul {
        a: View2 {
            buf: xb,
            offset: xat.offset,
            rs: m.a,
            cs: k.a,
        },
        b: View2 {
            buf: yb,
            offset: yat.offset,
            rs: k.b,
            cs: n.b,
        },
        out: View2 {
            buf: *out,
            offset: at.offset,
            rs: m.out,
            cs: n.out,
        },
        m: m.len,
        k: k.len,
        n: n.len,
        batch: batch
            .into_iter()
            .map(|x| BatchAxis {
                len: x.len,
                a: x.a,
                b: x.b,
                out: x.out,
            })
            .collect(),
    })
}
