//! The tensor IR: an SSA graph of primitive operations on statically shaped tensors.
//!
//! In: built by `lower` (forward model) and extended by `autodiff` (backward pass and
//! optimizer update). Out: read by the interpreter, the printer, and every later stage.
//!
//! Invariants (checked by [`Graph::validate`]):
//! - nodes are in topological order: a node's operands have smaller ids;
//! - every node's type is what [`infer::infer_type`] computes from its op and operands;
//! - broadcasting is explicit (`broadcast`), binary elementwise ops take equal shapes;
//! - graph arguments (`input`, `param`, `state`) have unique names across all kinds
//!   (inputs are identifiers, parameters contain a dot, state a colon, and the RNG
//!   scalars are `@seed` and `@step`).

pub mod builder;
pub mod dce;
pub mod erf;
pub mod infer;
pub mod ops;
pub mod philox;
pub mod printer;

pub use builder::Builder;
pub use ops::{Binary, Unary};

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I32,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
        })
    }
}

/// A tensor type with a concrete shape. Rank 0 is a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Type {
    pub fn f32(shape: impl Into<Vec<usize>>) -> Self {
        Type {
            dtype: DType::F32,
            shape: shape.into(),
        }
    }
    pub fn i32(shape: impl Into<Vec<usize>>) -> Self {
        Type {
            dtype: DType::I32,
            shape: shape.into(),
        }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Index of a node in [`Graph::nodes`]; a node defines exactly one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What kind of graph argument a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// Data fed per step: model inputs, labels, and the `seed`/`step` scalars.
    Input,
    /// A trainable parameter.
    Param,
    /// Optimizer state (Adam moments, SGD momentum), named `<slot>:<param>`.
    State,
}

/// The primitive set. Shapes needed to build a node that cannot be inferred from its
/// operands (reshape target, broadcast target, constants) live in the op.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A graph argument with its declared type.
    Arg { kind: ArgKind, name: String, ty: Type },
    /// A tensor whose every element is `value`.
    Const { value: f64, ty: Type },

    /// Elementwise, one operand (the ops and their rules: [`ops`]).
    Unary(Unary),
    /// Elementwise, two operands of equal type.
    Binary(Binary),

    /// Numpy-style broadcast to `shape`: input axis `i` becomes output axis `dims[i]`
    /// (same size); the other output axes are new.
    Broadcast { shape: Vec<usize>, dims: Vec<usize> },
    /// Same elements in row-major order, new shape.
    Reshape { shape: Vec<usize> },
    /// Output axis `i` is input axis `perm[i]`.
    Transpose { perm: Vec<usize> },
    /// Operands joined along `axis`; other axes equal.
    Concat { axis: usize },
    /// `start..end` along `axis`.
    Slice { axis: usize, start: usize, end: usize },

    /// Sum over `axes` (removed from the shape).
    ReduceSum { axes: Vec<usize> },
    /// Max over `axes` (removed from the shape).
    ReduceMax { axes: Vec<usize> },

    /// `[m, k] x [k, n] -> [m, n]`.
    MatMul,

    /// `table[V, D..]`, `index i32[I..]` -> `[I.., D..]`: rows of the table. An index
    /// outside `[0, V)` is a runtime error.
    Gather,
    /// `values[I.., D..]`, `index i32[I..]` -> `[rows, D..]`: row `r` is the sum of the
    /// values whose index is `r` (zero for rows no index names). Gather's transpose.
    ScatterAdd { rows: usize },
    /// `values[I.., D..]`, `index i32[I..]` -> `[rows, D..]`: row `r` is the elementwise
    /// max of the values whose index is `r`; `-inf` for rows no index names (lowering
    /// turns those into 0 for `aggregate: max`).
    ScatterMax { rows: usize },
    /// Same operands -> `i32[rows, D..]`: for each output element, the position in
    /// `I..` (row-major) of the value `scatter_max` picked, the lowest on ties; -1 for
    /// empty rows. Kept for scatter-max's backward pass.
    ScatterArgmax { rows: usize },
    /// `g[rows, D..]`, `argmax i32[rows, D..]` -> `f32[len, D..]`: each `g` element is
    /// written at the position its argmax names (no two collide), zero elsewhere; -1 is
    /// skipped. Scatter-max's transpose; it appears only in backward passes and has no
    /// VJP of its own.
    ArgmaxScatter { len: usize },
    /// `index i32[I..]` -> `f32[I.., classes]` with a 1.0 at each index; an index outside
    /// `[0, classes)` (label -1 means "ignored") gives a row of zeros. It only compares,
    /// so it never reads out of bounds; data loaders reject labels other than those.
    OneHot { classes: usize },

    /// Uniform `[0, 1)` f32 of type `ty`, from Philox4x32-10 keyed by the `seed` and
    /// `step` operands (i32 scalars) and `stream`; element `i` depends only on
    /// `(seed, step, stream, offset + i)`, so every backend draws the same numbers.
    /// `offset` is the index of element 0 in a larger draw: a data-parallel shard that
    /// holds rows `r..` of a batch draws their numbers (`r` times the row's elements),
    /// so its dropout masks are the whole batch's rows.
    RandomUniform { stream: u32, offset: u32, ty: Type },
}

impl Op {
    /// The name the printer uses.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Arg { kind, .. } => match kind {
                ArgKind::Input => "input",
                ArgKind::Param => "param",
                ArgKind::State => "state",
            },
            Op::Const { .. } => "const",
            Op::Unary(op) => op.name(),
            Op::Binary(op) => op.name(),
            Op::Broadcast { .. } => "broadcast",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::ReduceSum { .. } => "reduce_sum",
            Op::ReduceMax { .. } => "reduce_max",
            Op::MatMul => "matmul",
            Op::Gather => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::ScatterMax { .. } => "scatter_max",
            Op::ScatterArgmax { .. } => "scatter_argmax",
            Op::ArgmaxScatter { .. } => "argmax_scatter",
            Op::OneHot { .. } => "one_hot",
            Op::RandomUniform { .. } => "random_uniform",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub operands: Vec<ValueId>,
    pub ty: Type,
}

/// An SSA graph with named outputs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, ValueId)>,
}

impl Graph {
    pub fn node(&self, v: ValueId) -> &Node {
        &self.nodes[v.index()]
    }

    pub fn ty(&self, v: ValueId) -> &Type {
        &self.nodes[v.index()].ty
    }

    /// The value of the output called `name`.
    pub fn output(&self, name: &str) -> Option<ValueId> {
        self.outputs.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// Graph arguments of one kind, in definition order.
    pub fn args(&self, kind: ArgKind) -> impl Iterator<Item = (ValueId, &str, &Type)> + '_ {
        self.nodes.iter().enumerate().filter_map(move |(i, n)| match &n.op {
            Op::Arg { kind: k, name, ty } if *k == kind => Some((ValueId(i as u32), name.as_str(), ty)),
            _ => None,
        })
    }

    /// The argument of `kind` called `name`.
    pub fn arg(&self, kind: ArgKind, name: &str) -> Option<ValueId> {
        self.args(kind).find(|(_, n, _)| *n == name).map(|(v, _, _)| v)
    }

    /// Checks the invariants listed in the module docs.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for &o in &node.operands {
                if o.index() >= i {
                    return Err(format!("%{i} uses {o}, which is not defined before it"));
                }
            }
            if let Op::Arg { name, .. } = &node.op {
                if !names.insert(name.clone()) {
                    return Err(format!("%{i}: argument '{name}' is defined twice"));
                }
            }
            let operand_types: Vec<&Type> = node.operands.iter().map(|&o| self.ty(o)).collect();
            let ty = infer::infer_type(&node.op, &operand_types)
                .map_err(|e| format!("%{i} ({}): {e}", node.op.mnemonic()))?;
            if ty != node.ty {
                return Err(format!("%{i}: recorded type {} but inferred {ty}", node.ty));
            }
        }
        for (name, v) in &self.outputs {
            if v.index() >= self.nodes.len() {
                return Err(format!("output '{name}' names undefined {v}"));
            }
        }
        Ok(())
    }
}
