//! The op table of the ONNX export: each IR op as a short sequence of ONNX nodes.
//!
//! In: one IR node, the ONNX names of its operands, and the name its result must have.
//! Out: ONNX nodes (and the small i64/scalar initializers they take) appended to the
//! [`Model`], the last of which writes that name; or an error naming an op that has no
//! place in an inference graph.
//!
//! Semantics follow `interp.rs` (the reference). Opset 18, because it is the first in
//! which `ScatterElements` has `reduction="max"` (scatter-max, graph attention's softmax
//! shift and `aggregate: max`) and `ReduceMax` takes its axes as an input like
//! `ReduceSum` does since 13. The table, one row per op:
//!
//! ```text
//! IR op                         ONNX
//! neg exp log tanh sqrt erf     Neg Exp Log Tanh Sqrt Erf
//! convert                       Cast(to=FLOAT)
//! stop_gradient                 Identity
//! add sub mul div max           Add Sub Mul Div Max
//! greater                       Cast(Greater, to=FLOAT)
//! const                         Expand(scalar initializer, shape)
//! broadcast[dims]               Transpose (dims out of order) Unsqueeze (new axes) Expand
//! reshape / transpose / concat  Reshape / Transpose / Concat
//! slice[axis, a..b]             Slice(starts=[a], ends=[b], axes=[axis])
//! reduce_sum / reduce_max       ReduceSum / ReduceMax(axes, keepdims=0); no axes: Identity
//! matmul                        MatMul
//! gather                        Gather(axis=0)
//! scatter_add[rows]             ScatterElements(reduction="add") onto zeros [rows, D]
//! scatter_max[rows]             ScatterElements(reduction="max") onto -inf [rows, D]
//! one_hot[classes]              Cast(Equal(Unsqueeze(index, -1), Range(0, classes)))
//! ```
//!
//! A scatter flattens its positions and trailing axes (`[I.., D..]` to `[I, D]`), expands
//! the index to `[I, D]` (ScatterElements wants indices of the updates' shape) and
//! reshapes the result back; ONNX runtimes apply the updates in position order, as the
//! interpreter does. `one_hot` is not ONNX `OneHot`, which wraps negative indices: the
//! IR gives label -1 a row of zeros. `random_uniform` (dropout), `scatter_argmax` and
//! `argmax_scatter` (backward passes) never occur in an evaluation graph and are refused.

use super::proto::{Attr, Data, Elem, Model};
use crate::ir::{Binary, DType, Graph, Node, Op, Unary};

/// The opset the table targets (see the module doc for why 18).
pub const OPSET: i64 = 18;

pub fn elem(dtype: DType) -> Elem {
    match dtype {
        DType::F32 => Elem::F32,
        DType::I32 => Elem::I32,
    }
}

fn ints(values: &[usize]) -> Vec<i64> {
    values.iter().map(|&v| v as i64).collect()
}

/// Appends the nodes computing `node` (whose operands are called `x`) into `out`.
pub fn emit(m: &mut Model, graph: &Graph, node: &Node, x: &[String], out: &str) -> Result<(), String> {
    let shape_of = |k: usize| graph.ty(node.operands[k]).shape.as_slice();
    let ty = &node.ty;
    match &node.op {
        Op::Arg { name, .. } => return Err(format!("argument '{name}' is not a computed value")),
        Op::Const { value, ty } => {
            let scalar = m.scalar(Data::F32(vec![*value as f32]));
            let shape = m.ints(&ints(&ty.shape));
            m.node_to("Expand", &[&scalar, &shape], vec![], out);
        }
        Op::Unary(op) => unary(m, *op, &x[0], out),
        Op::Binary(op) => binary(m, *op, &x[0], &x[1], out),
        Op::Broadcast { shape, dims } => broadcast(m, &x[0], shape_of(0), shape, dims, out),
        Op::Reshape { shape } => {
            let target = m.ints(&ints(shape));
            m.node_to("Reshape", &[&x[0], &target], vec![], out);
        }
        Op::Transpose { perm } => m.node_to("Transpose", &[&x[0]], vec![Attr::Ints("perm", ints(perm))], out),
        Op::Concat { axis } => {
            let inputs: Vec<&str> = x.iter().map(String::as_str).collect();
            m.node_to("Concat", &inputs, vec![Attr::Int("axis", *axis as i64)], out);
        }
        Op::Slice { axis, start, end } => {
            let (starts, ends, axes) = (
                m.ints(&[*start as i64]),
                m.ints(&[*end as i64]),
                m.ints(&[*axis as i64]),
            );
            m.node_to("Slice", &[&x[0], &starts, &ends, &axes], vec![], out);
        }
        Op::ReduceSum { axes } => reduce(m, "ReduceSum", &x[0], axes, out),
        Op::ReduceMax { axes } => reduce(m, "ReduceMax", &x[0], axes, out),
        Op::MatMul => m.node_to("MatMul", &[&x[0], &x[1]], vec![], out),
        Op::Gather => m.node_to("Gather", &[&x[0], &x[1]], vec![Attr::Int("axis", 0)], out),
        Op::ScatterAdd { rows } => scatter(m, "add", 0.0, &x[0], shape_of(0), &x[1], shape_of(1), *rows, out),
        Op::ScatterMax { rows } => scatter(
            m,
            "max",
            f32::NEG_INFINITY,
            &x[0],
            shape_of(0),
            &x[1],
            shape_of(1),
            *rows,
            out,
        ),
        Op::OneHot { classes } => {
            let axes = m.ints(&[-1]);
            let index = m.node("Unsqueeze", &[&x[0], &axes], vec![]);
            let (start, limit, delta) = (
                m.scalar(Data::I32(vec![0])),
                m.scalar(Data::I32(vec![*classes as i32])),
                m.scalar(Data::I32(vec![1])),
            );
            let classes = m.node("Range", &[&start, &limit, &delta], vec![]);
            let equal = m.node("Equal", &[&index, &classes], vec![]);
            m.node_to("Cast", &[&equal], vec![Attr::Int("to", Elem::F32.code())], out);
        }
        Op::ScatterArgmax { .. } | Op::ArgmaxScatter { .. } | Op::RandomUniform { .. } => {
            return Err(format!(
                "{} ({ty}) has no ONNX export: it belongs to training (dropout or a backward pass), not to an \
                 evaluation graph",
                node.op.mnemonic()
            ))
        }
    }
    Ok(())
}

fn unary(m: &mut Model, op: Unary, x: &str, out: &str) {
    let onnx = match op {
        Unary::Neg => "Neg",
        Unary::Exp => "Exp",
        Unary::Log => "Log",
        Unary::Tanh => "Tanh",
        Unary::Sqrt => "Sqrt",
        Unary::Erf => "Erf",
        Unary::StopGradient => "Identity",
        Unary::Convert => {
            return m.node_to("Cast", &[x], vec![Attr::Int("to", Elem::F32.code())], out);
        }
    };
    m.node_to(onnx, &[x], vec![], out);
}

fn binary(m: &mut Model, op: Binary, a: &str, b: &str, out: &str) {
    let onnx = match op {
        Binary::Add => "Add",
        Binary::Sub => "Sub",
        Binary::Mul => "Mul",
        Binary::Div => "Div",
        Binary::Max => "Max",
        Binary::Greater => {
            let bools = m.node("Greater", &[a, b], vec![]);
            return m.node_to("Cast", &[&bools], vec![Attr::Int("to", Elem::F32.code())], out);
        }
    };
    m.node_to(onnx, &[a, b], vec![], out);
}

/// Input axis `i` becomes output axis `dims[i]`: the input's axes put in output order
/// (Transpose), size-1 axes inserted where the output has new ones (Unsqueeze), then
/// Expand.
fn broadcast(m: &mut Model, x: &str, in_shape: &[usize], shape: &[usize], dims: &[usize], out: &str) {
    let mut order: Vec<usize> = (0..dims.len()).collect();
    order.sort_by_key(|&i| dims[i]);
    let mut x = x.to_string();
    if order.iter().enumerate().any(|(i, &o)| i != o) {
        x = m.node("Transpose", &[&x], vec![Attr::Ints("perm", ints(&order))]);
    }
    let new_axes: Vec<i64> = (0..shape.len())
        .filter(|a| !dims.contains(a))
        .map(|a| a as i64)
        .collect();
    if !new_axes.is_empty() {
        let axes = m.ints(&new_axes);
        x = m.node("Unsqueeze", &[&x, &axes], vec![]);
    }
    debug_assert_eq!(in_shape.len(), dims.len());
    let target = m.ints(&ints(shape));
    m.node_to("Expand", &[&x, &target], vec![], out);
}

fn reduce(m: &mut Model, op: &'static str, x: &str, axes: &[usize], out: &str) {
    if axes.is_empty() {
        // ONNX reduces every axis when given none; the IR reduces none.
        return m.node_to("Identity", &[x], vec![], out);
    }
    let axes = m.ints(&ints(axes));
    m.node_to(op, &[x, &axes], vec![Attr::Int("keepdims", 0)], out);
}

/// Scatter `values[I.., D..]` by `index[I..]` into `rows` rows initialized to `init`,
/// combining with `reduction`.
#[allow(clippy::too_many_arguments)]
fn scatter(
    m: &mut Model,
    reduction: &'static str,
    init: f32,
    values: &str,
    values_shape: &[usize],
    index: &str,
    index_shape: &[usize],
    rows: usize,
    out: &str,
) {
    let positions: usize = index_shape.iter().product();
    let trailing = &values_shape[index_shape.len()..];
    let width: usize = trailing.iter().product();
    let flat = [positions as i64, width as i64];
    let flat_shape = m.ints(&flat);
    let updates = m.node("Reshape", &[values, &flat_shape], vec![]);
    let column = m.ints(&[positions as i64, 1]);
    let index = m.node("Reshape", &[index, &column], vec![]);
    let indices = m.node("Expand", &[&index, &flat_shape], vec![]);
    let fill = m.scalar(Data::F32(vec![init]));
    let data_shape = m.ints(&[rows as i64, width as i64]);
    let data = m.node("Expand", &[&fill, &data_shape], vec![]);
    let attrs = vec![Attr::Int("axis", 0), Attr::Str("reduction", reduction)];
    let mut out_shape = vec![rows];
    out_shape.extend_from_slice(trailing);
    if out_shape.len() == 2 {
        m.node_to("ScatterElements", &[&data, &indices, &updates], attrs, out);
    } else {
        let scattered = m.node("ScatterElements", &[&data, &indices, &updates], attrs);
        let target = m.ints(&ints(&out_shape));
        m.node_to("Reshape", &[&scattered, &target], vec![], out);
    }
}
