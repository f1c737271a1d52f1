//! A segment max and the argmax of the same values, computed in one pass (the pass
//! `share_argmax_maxima`, for the CPU, after scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a [`SegmentOp::Max`]
//! kernel over the same values, index and shapes as a [`SegmentOp::Argmax`] kernel is
//! gone, and the argmax kernel writes the maxima too ([`Segment::maxima`]). A training
//! step's max aggregation needs both: the maxima for the forward pass, their positions
//! for the gradient. The argmax kernel keeps the running maxima anyway, so the separate
//! max kernel was a second scan of every message (gnn-nonlinear's 15000 x 32: 179 us of
//! a 4.9 ms step).
//!
//! The maxima are the max kernel's bit for bit: both start a row at its first
//! position's values and take a later value only where it is strictly greater (NaN
//! never wins), and a row without positions is `-inf` in both. The merged kernel runs
//! where the earlier of the two ran, so only when no kernel between them writes the
//! values or the index or touches the later one's output.

use super::analysis::{touched, written};
use super::{KernelBody, Program, Segment, SegmentOp};

/// Merges `p`'s segment max kernels into their argmax partners (see the module doc).
pub fn share_argmax_maxima(p: &mut Program) {
    let mut k = 0;
    while k < p.kernels.len() {
        match partner(p, k) {
            Some(later) => {
                let [first, second] = [k, later].map(|i| match &p.kernels[i].body {
                    KernelBody::Segment(s) => s.clone(),
                    _ => unreachable!("partners are segment kernels"),
                });
                let (argmax_at, max) = if first.op == SegmentOp::Argmax {
                    (k, second)
                } else {
                    (later, first)
                };
                let mut merged = p.kernels[argmax_at].clone();
                if let KernelBody::Segment(s) = &mut merged.body {
                    s.maxima = Some(max.out);
                    // An index out of range is reported as the earlier kernel did.
                    s.check = match &p.kernels[k].body {
                        KernelBody::Segment(e) => e.check,
                        _ => s.check,
                    };
                }
                p.kernels[k] = merged;
                p.kernels.remove(later);
            }
            None => k += 1,
        }
    }
}

/// For a segment max or argmax at kernel `k`: the later kernel that computes the other
/// one over the same values and index, when nothing between them stands in the way.
fn partner(p: &Program, k: usize) -> Option<usize> {
    let KernelBody::Segment(a) = &p.kernels[k].body else {
        return None;
    };
    let wanted = match a.op {
        SegmentOp::Max => SegmentOp::Argmax,
        SegmentOp::Argmax => SegmentOp::Max,
        SegmentOp::ArgmaxScatter => return None,
    };
    if a.maxima.is_some() {
        return None;
    }
    let later = (k + 1..p.kernels.len()).find(|&j| {
        matches!(&p.kernels[j].body, KernelBody::Segment(b) if b.op == wanted && b.maxima.is_none() && same_scan(a, b))
    })?;
    let KernelBody::Segment(b) = &p.kernels[later].body else {
        return None;
    };
    // The kernels between run after the merged kernel instead of before the later
    // one: they must not change what it reads or use what the later one wrote.
    let clear = p.kernels[k + 1..later].iter().all(|between| {
        !written(between).iter().any(|&w| w == a.values.0 || w == a.index.0) && !touched(between).contains(&b.out)
    });
    clear.then_some(later)
}

/// The same values, index and shapes: one scan serves both.
fn same_scan(a: &Segment, b: &Segment) -> bool {
    (a.values, a.index, a.positions, a.row_len, a.rows, a.zeroed)
        == (b.values, b.index, b.positions, b.row_len, b.rows, b.zeroed)
}
