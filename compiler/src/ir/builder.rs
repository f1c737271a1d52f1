//! Builder: appends nodes to a [`Graph`], inferring each result type.
//!
//! In: ops and operands from `lower` and `autodiff`. Out: a valid graph. Type errors
//! here mean a compiler bug (the checker has already proved the user's shapes), so they
//! panic with the op and the message instead of returning an error.

use super::{infer::infer_type, ArgKind, Binary, Graph, Node, Op, Type, Unary, ValueId};
use std::collections::HashMap;

/// Appends nodes with hash-consing: asking twice for the same op on the same operands
/// returns the first node, so common subexpressions (shared constants, the Adam bias
/// corrections of every parameter) exist once. Every op is a pure function of its
/// operands (random numbers included), so this never changes a value.
pub struct Builder {
    pub graph: Graph,
    existing: HashMap<(String, Vec<ValueId>), ValueId>,
}

/// The hash-consing key of a node: its op (attributes included) and operands.
fn key(op: &Op, operands: &[ValueId]) -> (String, Vec<ValueId>) {
    (format!("{op:?}"), operands.to_vec())
}

impl Builder {
    pub fn new(name: &str) -> Self {
        Builder {
            graph: Graph {
                name: name.to_string(),
                ..Graph::default()
            },
            existing: HashMap::new(),
        }
    }

    /// Continue appending to an existing graph (autodiff extends the forward graph).
    pub fn extend(graph: Graph) -> Self {
        let existing = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (key(&n.op, &n.operands), ValueId(i as u32)))
            .collect();
        Builder { graph, existing }
    }

    pub fn finish(self) -> Graph {
        self.graph
    }

    pub fn ty(&self, v: ValueId) -> &Type {
        self.graph.ty(v)
    }

    pub fn shape(&self, v: ValueId) -> Vec<usize> {
        self.graph.ty(v).shape.clone()
    }

    pub fn push(&mut self, op: Op, operands: &[ValueId]) -> ValueId {
        let k = key(&op, operands);
        if let Some(&v) = self.existing.get(&k) {
            return v;
        }
        let types: Vec<&Type> = operands.iter().map(|&o| self.graph.ty(o)).collect();
        let ty = match infer_type(&op, &types) {
            Ok(t) => t,
            Err(e) => panic!("internal compiler error: building {}: {e}", op.mnemonic()),
        };
        let id = ValueId(self.graph.nodes.len() as u32);
        self.graph.nodes.push(Node {
            op,
            operands: operands.to_vec(),
            ty,
        });
        self.existing.insert(k, id);
        id
    }

    pub fn output(&mut self, name: impl Into<String>, v: ValueId) {
        self.graph.outputs.push((name.into(), v));
    }

    // Arguments and constants.

    pub fn arg(&mut self, kind: ArgKind, name: impl Into<String>, ty: Type) -> ValueId {
        self.push(
            Op::Arg {
                kind,
                name: name.into(),
                ty,
            },
            &[],
        )
    }
    pub fn constant(&mut self, value: f64, shape: &[usize]) -> ValueId {
        self.push(
            Op::Const {
                value,
                ty: Type::f32(shape),
            },
            &[],
        )
    }
    pub fn scalar(&mut self, value: f64) -> ValueId {
        self.constant(value, &[])
    }

    // Elementwise.

    pub fn unary(&mut self, op: Unary, x: ValueId) -> ValueId {
        self.push(Op::Unary(op), &[x])
    }
    pub fn binary(&mut self, op: Binary, a: ValueId, b: ValueId) -> ValueId {
        self.push(Op::Binary(op), &[a, b])
    }
    pub fn neg(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Neg, x)
    }
    pub fn exp(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Exp, x)
    }
    pub fn log(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Log, x)
    }
    pub fn tanh(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Tanh, x)
    }
    pub fn erf(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Erf, x)
    }
    /// `x` without a gradient (see [`Unary::StopGradient`]).
    pub fn stop_gradient(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::StopGradient, x)
    }
    pub fn sqrt(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Sqrt, x)
    }
    pub fn convert(&mut self, x: ValueId) -> ValueId {
        self.unary(Unary::Convert, x)
    }
    pub fn add(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Add, a, b)
    }
    pub fn sub(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Sub, a, b)
    }
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Mul, a, b)
    }
    pub fn div(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Div, a, b)
    }
    pub fn max(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Max, a, b)
    }
    pub fn greater(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Binary::Greater, a, b)
    }

    /// `x * c` for a constant `c`, broadcast to `x`'s shape.
    pub fn scale(&mut self, x: ValueId, c: f64) -> ValueId {
        let k = self.constant(c, &self.shape(x));
        self.mul(x, k)
    }

    // Shapes.

    pub fn broadcast(&mut self, x: ValueId, shape: &[usize], dims: &[usize]) -> ValueId {
        if self.shape(x) == shape {
            return x;
        }
        self.push(
            Op::Broadcast {
                shape: shape.to_vec(),
                dims: dims.to_vec(),
            },
            &[x],
        )
    }

    /// Broadcast a value that was reduced over `axes` back to `shape` (the inverse of
    /// [`Builder::reduce_sum`]'s shape change).
    pub fn broadcast_reduced(&mut self, x: ValueId, shape: &[usize], axes: &[usize]) -> ValueId {
        let dims: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        self.broadcast(x, shape, &dims)
    }

    pub fn reshape(&mut self, x: ValueId, shape: &[usize]) -> ValueId {
        if self.shape(x) == shape {
            return x;
        }
        self.push(Op::Reshape { shape: shape.to_vec() }, &[x])
    }
    pub fn transpose(&mut self, x: ValueId, perm: &[usize]) -> ValueId {
        self.push(Op::Transpose { perm: perm.to_vec() }, &[x])
    }
    pub fn concat(&mut self, xs: &[ValueId], axis: usize) -> ValueId {
        if xs.len() == 1 {
            return xs[0];
        }
        self.push(Op::Concat { axis }, xs)
    }
    pub fn slice(&mut self, x: ValueId, axis: usize, start: usize, end: usize) -> ValueId {
        self.push(Op::Slice { axis, start, end }, &[x])
    }

    // Reductions and contractions.

    pub fn reduce_sum(&mut self, x: ValueId, axes: &[usize]) -> ValueId {
        if axes.is_empty() {
            return x;
        }
        self.push(Op::ReduceSum { axes: axes.to_vec() }, &[x])
    }
    pub fn reduce_max(&mut self, x: ValueId, axes: &[usize]) -> ValueId {
        if axes.is_empty() {
            return x;
        }
        self.push(Op::ReduceMax { axes: axes.to_vec() }, &[x])
    }
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.push(Op::MatMul, &[a, b])
    }

    // Indexing and randomness.

    pub fn gather(&mut self, table: ValueId, index: ValueId) -> ValueId {
        self.push(Op::Gather, &[table, index])
    }
    pub fn scatter_add(&mut self, values: ValueId, index: ValueId, rows: usize) -> ValueId {
        self.push(Op::ScatterAdd { rows }, &[values, index])
    }
    pub fn scatter_max(&mut self, values: ValueId, index: ValueId, rows: usize) -> ValueId {
        self.push(Op::ScatterMax { rows }, &[values, index])
    }
    pub fn scatter_argmax(&mut self, values: ValueId, index: ValueId, rows: usize) -> ValueId {
        self.push(Op::ScatterArgmax { rows }, &[values, index])
    }
    pub fn argmax_scatter(&mut self, g: ValueId, argmax: ValueId, len: usize) -> ValueId {
        self.push(Op::ArgmaxScatter { len }, &[g, argmax])
    }
    pub fn one_hot(&mut self, index: ValueId, classes: usize) -> ValueId {
        self.push(Op::OneHot { classes }, &[index])
    }
    pub fn random_uniform(&mut self, seed: ValueId, step: ValueId, stream: u32, shape: &[usize]) -> ValueId {
        self.random_uniform_at(seed, step, stream, 0, shape)
    }
    /// As `random_uniform`, element `i` drawing number `offset + i` (see `Op::RandomUniform`).
    pub fn random_uniform_at(
        &mut self,
        seed: ValueId,
        step: ValueId,
        stream: u32,
        offset: u32,
        shape: &[usize],
    ) -> ValueId {
        self.push(
            Op::RandomUniform {
                stream,
                offset,
                ty: Type::f32(shape),
            },
            &[seed, step],
        )
    }
}
