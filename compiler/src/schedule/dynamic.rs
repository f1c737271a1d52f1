//! Sizes read at run time: which extents of a scheduled program a batch may shrink.
//!
//! In: the program of a step compiled at its capacities (a batch of graphs: `N` nodes,
//! `E` edges) and the program of the same step compiled at other capacities (the
//! probe). Out: the capacities that the runtime may replace, batch by batch, with the
//! batch's own counts (`Program::dynamic`), or none.
//!
//! The two programs must have the same kernels; an extent that differs between them
//! grows with a capacity. Such an extent may be any axis of a loop kernel (threads
//! split the outermost, a scatter walks it whole), a matmul's `m`, `k` or `n`, a
//! segment kernel's positions, or the rows a scatter or segment kernel writes: every
//! loop over it then runs over the batch's real count only. The program stays
//! consistent: a kernel writes only the real part of a buffer, and every kernel that
//! reads the buffer loops over that part only; a reduction over such an axis sums the
//! real rows, which is the padded sum (no real output reads a padding row, so the
//! padding's terms in a gradient are zero). Anything else (a matmul's batch axis, a
//! segment's row length, a concat or slice along a capacity, a static extent equal to
//! a capacity, an extent that is a product or sum of capacities) keeps the whole
//! program at its capacities, which is always correct: padding is inert.

use super::{KernelBody, Program};
use crate::ir::{Graph, Op};

/// One kernel's extents, each with whether it may be dynamic.
fn extents(body: &KernelBody) -> Vec<(usize, bool)> {
    match body {
        KernelBody::Loop(lk) => {
            let mut v: Vec<(usize, bool)> = lk.domain.iter().map(|&n| (n, true)).collect();
            v.extend(lk.scatter_rows.map(|r| (r, true)));
            v
        }
        KernelBody::MatMul(mm) => {
            let mut v = vec![(mm.m, true), (mm.k, true), (mm.n, true)];
            v.extend(mm.batch.iter().map(|x| (x.len, false)));
            v
        }
        KernelBody::Segment(seg) => vec![(seg.positions, true), (seg.rows, true), (seg.row_len, false)],
        KernelBody::Attention(att) => {
            let mut v: Vec<(usize, bool)> = att.batch.iter().map(|&n| (n, false)).collect();
            v.extend([att.queries, att.keys, att.depth, att.width].map(|n| (n, false)));
            v
        }
    }
}

/// Whether a concat or slice of `graph` runs along an axis whose extent differs in
/// `probe` (a capacity): its rows would not stay a prefix.
fn cuts_a_capacity(graph: &Graph, probe: &Graph) -> bool {
    if graph.nodes.len() != probe.nodes.len() {
        return true;
    }
    graph.nodes.iter().zip(&probe.nodes).any(|(a, b)| {
        let axis = match &a.op {
            Op::Concat { axis } | Op::Slice { axis, .. } => *axis,
            _ => return false,
        };
        a.ty.shape.get(axis) != b.ty.shape.get(axis)
            || a.operands.iter().zip(&b.operands).any(|(x, y)| {
                graph.nodes[x.0 as usize].ty.shape.get(axis) != probe.nodes[y.0 as usize].ty.shape.get(axis)
            })
    })
}

/// Which of `capacities` (`[N, E]`) `program` may read at run time: the same list
/// with each entry kept or set to 0, given the same step compiled at other
/// capacities; all 0 when an extent that grows with a capacity sits where the kernels
/// cannot shrink it, or is not one of `capacities` itself (a product or a sum of one).
pub fn dynamic_capacities(
    capacities: &[usize],
    (program, graph): (&Program, &Graph),
    (probe, probe_graph): (&Program, &Graph),
) -> Vec<usize> {
    let none = vec![0; capacities.len()];
    if program.kernels.len() != probe.kernels.len() || cuts_a_capacity(graph, probe_graph) {
        return none;
    }
    let mut grows = Vec::new();
    let mut fixed = Vec::new();
    for (k, q) in program.kernels.iter().zip(&probe.kernels) {
        let (a, b) = (extents(&k.body), extents(&q.body));
        if a.len() != b.len() || std::mem::discriminant(&k.body) != std::mem::discriminant(&q.body) {
            return none;
        }
        for (&(x, may), &(y, _)) in a.iter().zip(&b) {
            match (x == y, may) {
                (true, _) => fixed.push(x),
                (false, true) => grows.push(x),
                (false, false) => return none,
            }
        }
    }
    // Only the capacities themselves grow, and no static size equals one.
    if grows.iter().any(|g| !capacities.contains(g) || fixed.contains(g)) {
        return none;
    }
    capacities
        .iter()
        .map(|c| if grows.contains(c) { *c } else { 0 })
        .collect()
}
