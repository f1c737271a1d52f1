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
//! Cost rule: a GEMM call costs about 200 ns on top of its arithmetic (packing,
//! dispatch; measured with the `gemm` crate on 256 batches), so it pays once the
//! loop it replaces costs more per batch. That loop is slow when it reduces along its
//! innermost axis (scalar code, ~1.3 ns per product: over [`MIN_SCALAR_PRODUCT`]
//! multiply-adds per batch, d >= 4 for cubes) and fast when the innermost axis is kept
//! (f32x4, ~0.25 ns per product: over [`MIN_VECTOR_PRODUCT`], d >= 10 for cubes).
//! Measured on 256 batches of d x d x d, 1 thread, loop / GEMM in us: reducing the
//! innermost axis, d = 2: 3.4 / 5.0, 3: 8.5 / 6.4, 4: 19 / 9.7, 8: 167 / 30, 16: 1791 /
//! 101; keeping it, d = 4: 9.1 / 53, 8: 39 / 50, 12: 106 / 67, 16: 230 / 47. Attention
//! with 16-wide heads and 16 positions (`examples/transformer.mp`) is above both.

use super::*;
use crate::ir::Binary;

/// The fewest multiply-adds per batch (m n k) worth a GEMM call when the loop would
/// reduce along its innermost axis (see the module doc).
pub(super) const MIN_SCALAR_PRODUCT: usize = 64;
/// The same when the loop would keep its innermost axis and run it in f32x4.
pub(super) const MIN_VECTOR_PRODUCT: usize = 1024;

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
    // Whether the loop would reduce along its innermost axis (scalar code).
    let mut reduces_innermost = false;
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
        reduces_innermost = ax.out == 0;
    }
    let (mut ms, mut ns, ks) = (merged(ms), merged(ns), merged(ks));
    let [k] = ks.as_slice() else { return None };
    // Extra M (N) axes that do not merge are batch axes that `b` (`a`) does not move
    // along (a weight shared across them); the innermost stays the GEMM's M (N).
    let (m, n) = (ms.pop()?, ns.pop()?);
    batch.extend(ms);
    batch.extend(ns);
    let mut batch = merged(batch);
    let min_product = if reduces_innermost {
        MIN_SCALAR_PRODUCT
    } else {
        MIN_VECTOR_PRODUCT
    };
    if batch.len() > MAX_BATCH_AXES || m.len * n.len * k.len < min_product {
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
