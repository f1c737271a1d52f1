//! The loops on either side of a fused attention kernel that only move its operands,
//! folded into its operands' strides.
//!
//! In: the program, the [`Attention`] being built for the chain `s..=o`. Out: the index
//! of a kernel that can go, with the attention's operands rewritten to do its work:
//!
//! - [`sums`]: the loop that split the in-projection's output into heads and added the
//!   bias (`q = qkv[.., 0:D] + b`, the same for `k` and `v`, one loop writing three
//!   `[B, H, T, dh]` buffers), or only split them: the operands read the projection
//!   (and the bias, `Strided::plus`) instead, and the buffers are never written.
//! - [`copy`]: the loop that joined the heads (`[B, H, T, dh]` to `[B, T, H, dh]` for
//!   the out-projection): the kernel writes the joined layout itself.
//!
//! Either applies only when the loop is nothing else: every store of the split is one
//! of the operands' and nothing else reads them; the copy's one expression is the load
//! of the output, which nothing else reads. The values are the loops' own (an add is an
//! add wherever it happens), so the results do not change.

use super::{users, Attention, Strided};
use crate::ir::Binary;
use crate::schedule::analysis::{touched, written};
use crate::schedule::{Affine, BufId, BufKind, DType, Expr, LoopKernel, Program, Store};

fn plain(p: &Program, k: usize) -> Option<&LoopKernel> {
    super::plain_loop(p, k)
}

/// An operand's dimensions as (extent, stride): the batch axes, rows, columns.
fn dims(x: &Strided, batch: &[usize], rows: usize, cols: usize) -> Vec<(usize, i64)> {
    let extents = batch.iter().copied().chain([rows, cols]);
    extents.zip(x.batch.iter().copied().chain([x.rs, x.cs])).collect()
}

/// `x` (dimensions `dims`, at `offset` in a buffer that a loop over `domain` stores
/// row-major) read through `via` instead: the loop's load of the same element. `None`
/// when a dimension is not one of the loop's axes.
fn through(x_offset: i64, dims: &[(usize, i64)], domain: &[usize], via: (BufId, &Affine)) -> Option<Strided> {
    let flat = Affine::row_major(domain);
    // The loop's coordinates of the operand's element (0, 0, ..).
    let mut first = vec![0i64; domain.len()];
    let mut rest = x_offset;
    for (c, &s) in first.iter_mut().zip(&flat.coef) {
        *c = rest / s;
        rest %= s;
    }
    let mut used = vec![false; domain.len()];
    let mut coefs = Vec::with_capacity(dims.len());
    for &(n, stride) in dims {
        if n == 1 || stride == 0 {
            coefs.push(0);
            continue;
        }
        let t = (0..domain.len())
            .find(|&t| !used[t] && flat.coef[t] == stride && first[t] + n as i64 <= domain[t] as i64)?;
        used[t] = true;
        coefs.push(via.1.coef[t]);
    }
    let (rs, cs) = (coefs[coefs.len() - 2], coefs[coefs.len() - 1]);
    coefs.truncate(coefs.len() - 2);
    let offset = via.1.offset + first.iter().zip(&via.1.coef).map(|(c, k)| c * k).sum::<i64>();
    Some(Strided {
        buf: via.0,
        offset,
        batch: coefs,
        rs,
        cs,
        plus: None,
    })
}

/// Folds the head split with its bias add into `Q`, `K` and `V` (see the module doc):
/// the split loop's index, which can go.
pub(super) fn sums(p: &Program, att: &mut Attention, s: usize, o: usize) -> Option<usize> {
    let producer = *users(p, att.q.buf).first()?;
    let lk = plain(p, producer)?;
    if producer >= s || lk.domain.is_empty() {
        return None;
    }
    let flat = Affine::row_major(&lk.domain);
    let (queries, keys, depth, width) = (att.queries, att.keys, att.depth, att.width);
    let batch = att.batch.clone();
    let mut rewritten = [None, None, None];
    for store in &lk.stores {
        let Store::Write { buf, at, value } = store else {
            return None;
        };
        let load = |e: usize| match &lk.exprs[e] {
            Expr::Load { buf, at } if p.buffers[*buf].dtype == DType::F32 => Some((*buf, at)),
            _ => None,
        };
        // A sum of two tensors, or a copy of one.
        let (a, b) = match lk.exprs[*value] {
            Expr::Binary(Binary::Add, a, b) => (load(a)?, Some(load(b)?)),
            _ => (load(*value)?, None),
        };
        // The operand this store makes, read by its consumer in the chain alone.
        let (slot, x, rows, cols, consumer) = match *buf {
            q if q == att.q.buf => (0, &att.q, queries, depth, s),
            k if k == att.k.buf => (1, &att.k, keys, depth, s),
            v if v == att.v.buf => (2, &att.v, keys, width, o),
            _ => return None,
        };
        let only_theirs = users(p, *buf) == [producer, consumer] && p.buffers[*buf].kind == BufKind::Temp;
        if *at != flat || !only_theirs || rewritten[slot].is_some() {
            return None;
        }
        let dims = dims(x, &batch, rows, cols);
        let mut main = through(x.offset, &dims, &lk.domain, a)?;
        if let Some(b) = b {
            main.plus = Some(Box::new(through(x.offset, &dims, &lk.domain, b)?));
        }
        // What the loop read is still there when the fused kernel runs.
        let read = [Some(a.0), b.map(|b| b.0)];
        if (producer + 1..o).any(|j| written(&p.kernels[j]).iter().any(|w| read.contains(&Some(*w)))) {
            return None;
        }
        rewritten[slot] = Some(main);
    }
    let [q, k, v] = rewritten;
    // Every store went into an operand; operands not from this loop stay as they are.
    att.q = q.unwrap_or_else(|| att.q.clone());
    att.k = k.unwrap_or_else(|| att.k.clone());
    att.v = v.unwrap_or_else(|| att.v.clone());
    Some(producer)
}

/// Folds the copy that joins the heads into the output (see the module doc): the
/// copy's index, which can go.
pub(super) fn copy(p: &Program, att: &mut Attention, o: usize) -> Option<usize> {
    let out = att.out.buf;
    let [first, c] = users(p, out)[..] else { return None };
    let lk = plain(p, c)?;
    if first != o || c <= o || p.buffers[out].kind != BufKind::Temp {
        return None;
    }
    let [Expr::Load { buf, at: from }] = &lk.exprs[..] else {
        return None;
    };
    let [Store::Write {
        buf: dst,
        at: to,
        value: 0,
    }] = &lk.stores[..]
    else {
        return None;
    };
    let covers = lk.domain.iter().product::<usize>() == att.items() * att.queries * att.width;
    if *buf != out || from.offset != att.out.offset || !covers {
        return None;
    }
    // Each output dimension is one axis of the copy: the copy's store strides replace
    // its load strides.
    let dims = dims(&att.out, &att.batch, att.queries, att.width);
    let mut used = vec![false; lk.domain.len()];
    let mut coefs = Vec::with_capacity(dims.len());
    for (n, stride) in dims {
        if n == 1 {
            coefs.push(0);
            continue;
        }
        let t = (0..lk.domain.len())
            .find(|&t| !used[t] && from.coef[t] == stride && lk.domain[t] == n && to.coef[t] != 0)?;
        used[t] = true;
        coefs.push(to.coef[t]);
    }
    // Nothing between the kernel and the copy touches the copy's destination.
    if (o + 1..c).any(|j| touched(&p.kernels[j]).contains(dst)) {
        return None;
    }
    let (rs, cs) = (coefs[coefs.len() - 2], coefs[coefs.len() - 1]);
    coefs.truncate(coefs.len() - 2);
    att.out = Strided {
        buf: *dst,
        offset: to.offset,
        batch: coefs,
        rs,
        cs,
        plus: None,
    };
    Some(c)
}
