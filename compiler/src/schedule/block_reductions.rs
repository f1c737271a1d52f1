//! Reductions over a loop's outermost axis in row blocks, for the GPU (the pass
//! `block_reductions`, after `split_store_groups`).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a loop kernel that sums
//! (or maxes) over its outermost axis, and so runs on few GPU threads (a loss summed over
//! the batch: one thread; a bias gradient: one thread per column, each walking every
//! row), walks its rows as `blocks x block` instead: the block index becomes an axis
//! that threads split, each block reduces into its own slice of a partial buffer
//! (`[blocks, len]`), and a combine kernel right after reduces each element's partials
//! in block order into the real output.
//!
//! The blocks are a divisor of the row count near its square root (so neither the
//! blocks nor the combine walk is long), fixed by the compiled shape: the result is the
//! same on every run and every launch shape, and differs from the interpreter's
//! row-by-row sum by reassociation only. The CPU's `row_blocks.rs` does the same for
//! threads of a CPU, with fewer and longer blocks.
//!
//! Why: a GPU thread runs about a thousand times slower than a GPU, so a loop of 56576
//! steps on one thread (the character LM's loss) cost milliseconds on an H200.

use super::analysis::injective;
use super::fuse::finish;
use super::row_blocks::combine;
use super::store_groups::too_serial;
use super::{Affine, BufId, BufKind, Buffer, Expr, Kernel, KernelBody, LoopKernel, Program, ReduceOp, Store};
use std::collections::BTreeMap;

/// Loops of fewer rows stay as they are.
const MIN_ROWS: usize = 64;
/// At least this many blocks, or the loop stays as it is.
const MIN_BLOCKS: usize = 4;

/// Rewrites `p`'s outer-axis reductions (see the module doc).
pub fn block_reductions(p: &mut Program) {
    let mut kernels = Vec::with_capacity(p.kernels.len());
    for mut kernel in std::mem::take(&mut p.kernels) {
        let combines = match &mut kernel.body {
            KernelBody::Loop(lk) => split(p, lk),
            _ => Vec::new(),
        };
        if !combines.is_empty() {
            kernel = finish(kernel.body);
        }
        kernels.push(kernel);
        kernels.extend(combines);
    }
    p.kernels = kernels;
}

/// The block length: the smallest divisor of `rows` at least its square root.
fn block_rows(rows: usize) -> usize {
    let root = (rows as f64).sqrt().ceil() as usize;
    (root.max(1)..=rows).find(|&d| rows.is_multiple_of(d)).unwrap_or(rows)
}

/// A reduction over axis 0 whose elements are exactly `0..len` of its buffer, once each
/// (so that the combine kernel writes what the loop wrote and nothing else).
fn covers(p: &Program, lk: &LoopKernel, store: &Store) -> bool {
    let Store::Reduce { buf, at, .. } = store else {
        return false;
    };
    let kept: usize = at
        .coef
        .iter()
        .zip(&lk.domain)
        .filter(|(&c, _)| c != 0)
        .map(|(_, &n)| n)
        .product();
    let top: i64 = at.offset
        + at.coef
            .iter()
            .zip(&lk.domain)
            .map(|(&c, &n)| c * (n as i64 - 1))
            .sum::<i64>();
    at.offset >= 0
        && at.coef.iter().all(|&c| c >= 0)
        && kept == p.buffers[*buf].len
        && top < kept as i64
        && injective(at, &lk.domain)
}

fn split(p: &mut Program, lk: &mut LoopKernel) -> Vec<Kernel> {
    let Some(&rows) = lk.domain.first() else {
        return Vec::new();
    };
    let plain = lk.scatter_rows.is_none() && lk.row_blocks.is_none() && lk.col_chunks.is_none();
    let outer = |s: &Store| matches!(s, Store::Reduce { at, .. } if at.coef[0] == 0);
    let block = block_rows(rows);
    let blocks = rows / block;
    let stored: Vec<BufId> = lk.stores.iter().map(Store::buf).collect();
    let loads_own = lk.exprs.iter().any(|e| match e {
        Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => stored.contains(buf),
        _ => false,
    });
    if !plain
        || rows < MIN_ROWS
        || blocks < MIN_BLOCKS
        || p.dynamic_slot(rows).is_some()
        || !too_serial(lk)
        || loads_own
        || !lk.stores.iter().any(outer)
        || !lk.stores.iter().filter(|s| outer(s)).all(|s| covers(p, lk, s))
    {
        return Vec::new();
    }
    // Axis 0 becomes (block, row in block): i0 = b * block + r.
    let reshape = |at: &mut Affine| {
        let c0 = at.coef[0];
        at.coef.splice(0..1, [c0 * block as i64, c0]);
    };
    lk.domain.splice(0..1, [blocks, block]);
    for e in &mut lk.exprs {
        if let Some(at) = e.affine_mut() {
            reshape(at);
        }
    }
    let mut partials: BTreeMap<BufId, (BufId, ReduceOp)> = BTreeMap::new();
    for s in &mut lk.stores {
        let is_outer = outer(s);
        match s {
            Store::Reduce { buf, at, op, .. } if is_outer => {
                reshape(at);
                let len = p.buffers[*buf].len;
                at.coef[0] = len as i64;
                let (partial, _) = *partials.entry(*buf).or_insert_with(|| {
                    p.buffers.push(Buffer {
                        kind: BufKind::Temp,
                        dtype: p.buffers[*buf].dtype,
                        len: blocks * len,
                        value: p.buffers[*buf].value,
                    });
                    (p.buffers.len() - 1, *op)
                });
                *buf = partial;
            }
            Store::Write { at, .. } | Store::Reduce { at, .. } | Store::Scatter { at, .. } => reshape(at),
        }
    }
    partials
        .into_iter()
        .map(|(out, (partial, op))| combine(out, partial, op, p.buffers[out].len, blocks))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Binary;
    use crate::schedule::analysis::parallel_axes;
    use crate::schedule::one_loop_program;

    fn at(coef: Vec<i64>) -> Affine {
        Affine { coef, offset: 0 }
    }

    /// A loss's shape: `loss += x[i, j] * 2` over `[rows, 52]`, plus per-row writes.
    fn loss_over(rows: usize) -> Program {
        let lk = LoopKernel {
            domain: vec![rows, 52],
            exprs: vec![
                Expr::Load {
                    buf: 0,
                    at: at(vec![52, 1]),
                },
                Expr::Const(2f32.to_bits()),
                Expr::Binary(Binary::Mul, 0, 1),
            ],
            stores: vec![Store::Reduce {
                buf: 1,
                at: at(vec![0, 0]),
                value: 2,
                op: ReduceOp::Sum,
            }],
            scatter_rows: None,
            row_blocks: None,
            zeroed: false,
            col_chunks: None,
        };
        one_loop_program(lk, &[rows * 52, 1])
    }

    /// Runs the program's loop kernels in order, each walking its domain row-major (the
    /// order every element's contributions arrive in, on any thread layout).
    fn run(p: &Program, x: &[f32]) -> f32 {
        let mut bufs: Vec<Vec<f32>> = p.buffers.iter().map(|b| vec![0.0; b.len]).collect();
        bufs[0].copy_from_slice(x);
        for k in &p.kernels {
            let KernelBody::Loop(lk) = &k.body else { unreachable!() };
            let Store::Reduce { buf, at, value, .. } = &lk.stores[0] else {
                unreachable!()
            };
            let mut out = vec![0.0f32; p.buffers[*buf].len];
            let total: usize = lk.domain.iter().product();
            for flat in 0..total {
                let mut idx = vec![0i64; lk.domain.len()];
                let mut rest = flat;
                for a in (0..lk.domain.len()).rev() {
                    idx[a] = (rest % lk.domain[a]) as i64;
                    rest /= lk.domain[a];
                }
                let addr = |a: &Affine| (a.offset + a.coef.iter().zip(&idx).map(|(c, i)| c * i).sum::<i64>()) as usize;
                let Expr::Load { buf: src, at: from } = &lk.exprs[0] else {
                    unreachable!()
                };
                let v = bufs[*src][addr(from)] * if *value == 2 { 2.0 } else { 1.0 };
                out[addr(at)] += v;
            }
            bufs[*buf] = out;
        }
        bufs[1][0]
    }

    #[test]
    fn a_loss_sums_in_blocks_then_combines() {
        let mut p = loss_over(1088);
        block_reductions(&mut p);
        assert_eq!(p.kernels.len(), 2, "the loop and its combine");
        let KernelBody::Loop(lk) = &p.kernels[0].body else {
            unreachable!()
        };
        // 1088 = 32 blocks of 34 rows.
        assert_eq!(lk.domain, [32, 34, 52]);
        assert_eq!(parallel_axes(lk), [true, false, false]);
        let x: Vec<f32> = (0..1088 * 52).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let want: f64 = x.iter().map(|&v| v as f64 * 2.0).sum();
        let got = run(&p, &x) as f64;
        assert!((got - want).abs() / want < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn short_or_prime_row_counts_stay_serial() {
        for rows in [32, 1031] {
            let mut p = loss_over(rows);
            let before = p.clone();
            block_reductions(&mut p);
            assert_eq!(p, before, "{rows} rows");
        }
    }
}
