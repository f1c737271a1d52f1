//! The cost model: FLOPs and bytes moved per operation, from shapes alone.
//!
//! In: an op (IR node or e-node) with its operand and result types. Out: [`Cost`].
//! - elementwise: the op's FLOPs per element from `ir::ops` (exp, log, tanh, sqrt: 10, a
//!   polynomial's worth; the others 1);
//!   bytes: the result written once. Its operands are results just written by other
//!   nodes (already counted), which a fused loop keeps in registers or cache; constants
//!   are splatted into the loop.
//! - reshape, and a slice of leading rows (axis 0): free, views of their operand.
//! - broadcast: the result written. transpose, other slices, concat: read + written.
//! - reductions: one FLOP per input element; bytes in + out.
//! - matmul `[m,k] x [k,n]`: `2mkn` FLOPs; bytes of both operands and the result. A
//!   transposed operand folded into it (`matmul_tn`/`matmul_nt`) costs the same.
//! - gather / scatter-add / one-hot: the rows moved and the indices read.
//! - random_uniform: 20 FLOPs per element (ten Philox rounds).
//!
//! The scalar that extraction minimizes is `flops + BYTE_WEIGHT * bytes`: with about
//! 300 GFLOP/s and 40 GB/s on this class of machine, moving a byte costs as much as ~8
//! FLOPs.

use crate::ir::{Graph, Op, Type};

pub const BYTE_WEIGHT: f64 = 8.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

impl Cost {
    pub fn scalar(self) -> f64 {
        self.flops + BYTE_WEIGHT * self.bytes
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            flops: self.flops + o.flops,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// The kind of work an op does, for costing (an e-graph-only matmul form costs as a matmul).
pub enum Work {
    Free,
    Elementwise {
        flops_per_element: f64,
    },
    /// Writes its result (a broadcast).
    Write,
    /// Reads and writes every element (transpose, concat, a strided slice).
    Move,
    Reduce,
    MatMul {
        m: usize,
        k: usize,
        n: usize,
    },
    Index,
    Random,
}

/// The work of an IR op whose operands have types `inputs`.
pub fn work(op: &Op, inputs: &[&Type]) -> Work {
    match op {
        Op::Arg { .. } | Op::Const { .. } | Op::Reshape { .. } | Op::Slice { axis: 0, .. } => Work::Free,
        Op::Unary(op) => Work::Elementwise {
            flops_per_element: op.flops(),
        },
        Op::Binary(op) => Work::Elementwise {
            flops_per_element: op.flops(),
        },
        Op::Broadcast { .. } => Work::Write,
        Op::Transpose { .. } | Op::Slice { .. } | Op::Concat { .. } => Work::Move,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } => Work::Reduce,
        Op::MatMul => Work::MatMul {
            m: inputs[0].shape[0],
            k: inputs[0].shape[1],
            n: inputs[1].shape[1],
        },
        Op::Gather
        | Op::ScatterAdd { .. }
        | Op::ScatterMax { .. }
        | Op::ScatterArgmax { .. }
        | Op::ArgmaxScatter { .. }
        | Op::OneHot { .. } => Work::Index,
        Op::RandomUniform { .. } => Work::Random,
    }
}

/// Cost of one op. `inputs` pairs each operand's type with whether it is a constant.
pub fn cost(w: Work, inputs: &[(&Type, bool)], out: &Type) -> Cost {
    let n_out = out.numel() as f64;
    let read: f64 = inputs.iter().filter(|(_, c)| !c).map(|(t, _)| t.numel() as f64).sum();
    match w {
        Work::Free => Cost::default(),
        Work::Elementwise { flops_per_element } => Cost {
            flops: n_out * flops_per_element,
            bytes: 4.0 * n_out,
        },
        Work::Write => Cost {
            flops: 0.0,
            bytes: 4.0 * n_out,
        },
        Work::Move => Cost {
            flops: 0.0,
            bytes: 4.0 * (read + n_out),
        },
        Work::Reduce => Cost {
            flops: read,
            bytes: 4.0 * (read + n_out),
        },
        Work::MatMul { m, k, n } => Cost {
            flops: 2.0 * (m * k * n) as f64,
            bytes: 4.0 * ((m * k) + (k * n) + (m * n)) as f64,
        },
        Work::Index => Cost {
            flops: read,
            bytes: 4.0 * (read + n_out),
        },
        Work::Random => Cost {
            flops: 20.0 * n_out,
            bytes: 4.0 * n_out,
        },
    }
}

/// Total cost of a graph: every node once.
pub fn graph_cost(g: &Graph) -> Cost {
    g.nodes
        .iter()
        .map(|node| {
            let inputs: Vec<(&Type, bool)> = node
                .operands
                .iter()
                .map(|&o| (g.ty(o), matches!(g.node(o).op, Op::Const { .. })))
                .collect();
            let types: Vec<&Type> = inputs.iter().map(|(t, _)| *t).collect();
            cost(work(&node.op, &types), &inputs, &node.ty)
        })
        .fold(Cost::default(), |a, b| a + b)
}

/// FLOPs of the graph's matmuls alone (the message-passing rule's target).
pub fn matmul_flops(g: &Graph) -> f64 {
    g.nodes
        .iter()
        .filter(|n| n.op == Op::MatMul)
        .map(|n| {
            let a = g.ty(n.operands[0]);
            2.0 * (a.shape[0] * a.shape[1] * n.ty.shape[1]) as f64
        })
        .sum()
}
