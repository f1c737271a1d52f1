//! The reference interpreter: runs an IR [`Graph`] on plain vectors.
//!
//! In: a graph and its arguments by name. Out: the graph's outputs, or an error for
//! missing/mistyped arguments and out-of-range indices. It is written to be obviously
//! correct, not fast: every later stage (rewrites, CPU and GPU backends) is tested
//! against it. Generic over the float type: `f32` mirrors what backends compute, `f64`
//! makes finite-difference gradient checks meaningful.

use crate::ir::{philox, DType, Graph, Op, Type};
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// The float type the interpreter computes in.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// A tensor value: float data in the interpreter's precision, or i32 data (the host
/// tensor every engine takes and returns).
pub type Value<T> = crate::tensor::Tensor<T>;

/// Arguments by name (inputs, parameters, optimizer state, `@seed`, `@step`).
pub type Args<T> = HashMap<String, Value<T>>;

#[derive(Clone, Debug, PartialEq)]
pub enum InterpError {
    MissingArg(String),
    ArgMismatch {
        name: String,
        expected: Type,
        found: String,
    },
    IndexOutOfRange {
        node: usize,
        op: &'static str,
        index: i64,
        bound: usize,
        position: usize,
    },
}

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpError::MissingArg(n) => write!(f, "missing argument '{n}'"),
            InterpError::ArgMismatch { name, expected, found } => {
                write!(f, "argument '{name}': expected {expected}, found {found}")
            }
            InterpError::IndexOutOfRange {
                node,
                op,
                index,
                bound,
                position,
            } => write!(
                f,
                "%{node} ({op}): index {index} at position {position} is outside [0, {bound})"
            ),
        }
    }
}

impl std::error::Error for InterpError {}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f(linear_index, coords)` for every element of `shape` in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = shape.iter().product();
    let mut coords = vec![0; shape.len()];
    for i in 0..n {
        f(i, &coords);
        for a in (0..shape.len()).rev() {
            coords[a] += 1;
            if coords[a] < shape[a] {
                break;
            }
            coords[a] = 0;
        }
    }
}

fn broadcast<E: Copy>(x: &[E], in_shape: &[usize], shape: &[usize], dims: &[usize]) -> Vec<E> {
    let in_strides = strides(in_shape);
    let mut out = Vec::with_capacity(shape.iter().product());
    for_each_index(shape, |_, c| {
        let src: usize = dims.iter().enumerate().map(|(i, &d)| c[d] * in_strides[i]).sum();
        out.push(x[src]);
    });
    out
}

fn transpose<E: Copy>(x: &[E], in_shape: &[usize], perm: &[usize]) -> Vec<E> {
    let in_strides = strides(in_shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| in_shape[p]).collect();
    let mut out = Vec::with_capacity(x.len());
    for_each_index(&out_shape, |_, c| {
        let src: usize = perm.iter().enumerate().map(|(i, &p)| c[i] * in_strides[p]).sum();
        out.push(x[src]);
    });
    out
}

/// Splits `shape` around `axis` into (outer, axis size, inner) element counts.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn concat<E: Copy>(parts: &[(&[E], &[usize])], axis: usize) -> Vec<E> {
    let (outer, _, _) = around(parts[0].1, axis);
    let mut out = Vec::new();
    for o in 0..outer {
        for (x, shape) in parts {
            let (_, len, inner) = around(shape, axis);
            out.extend_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
        }
    }
    out
}

fn slice<E: Copy>(x: &[E], shape: &[usize], axis: usize, start: usize, end: usize) -> Vec<E> {
    let (outer, len, inner) = around(shape, axis);
    let mut out = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        out.extend_from_slice(&x[(o * len + start) * inner..(o * len + end) * inner]);
    }
    out
}

/// Reduces `x` over `axes` with `combine`, starting every output at `init`.
fn reduce<T: Copy>(x: &[T], shape: &[usize], axes: &[usize], init: T, combine: impl Fn(T, T) -> T) -> Vec<T> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let out_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
    let out_strides = strides(&out_shape);
    let mut out = vec![init; out_shape.iter().product()];
    for_each_index(shape, |i, c| {
        let dst: usize = kept.iter().enumerate().map(|(k, &a)| c[a] * out_strides[k]).sum();
        out[dst] = combine(out[dst], x[i]);
    });
    out
}

/// Checks an index tensor against `[0, bound)`.
fn check_indices(index: &[i32], bound: usize, node: usize, op: &'static str) -> Result<(), InterpError> {
    match index.iter().position(|&i| i < 0 || i as usize >= bound) {
        None => Ok(()),
        Some(position) => Err(InterpError::IndexOutOfRange {
            node,
            op,
            index: index[position] as i64,
            bound,
            position,
        }),
    }
}

fn same_kind<T: Real>(x: &Value<T>, f: impl Fn(&[T]) -> Vec<T>, g: impl Fn(&[i32]) -> Vec<i32>) -> Value<T> {
    match x {
        Value::Float(v) => Value::Float(f(v)),
        Value::Int(v) => Value::Int(g(v)),
    }
}

/// Runs `graph` and returns its outputs in order, each with its name.
pub fn run<T: Real>(graph: &Graph, args: &Args<T>) -> Result<Vec<(String, Value<T>)>, InterpError> {
    let values = eval_all(graph, args)?;
    Ok(graph
        .outputs
        .iter()
        .map(|(name, v)| (name.clone(), values[v.index()].clone()))
        .collect())
}

/// Evaluates every node; returns all values (useful for tests of intermediate results).
pub fn eval_all<T: Real>(graph: &Graph, args: &Args<T>) -> Result<Vec<Value<T>>, InterpError> {
    let mut vals: Vec<Value<T>> = Vec::with_capacity(graph.nodes.len());
    for (id, node) in graph.nodes.iter().enumerate() {
        let x = |k: usize| &vals[node.operands[k].index()];
        let shape_of = |k: usize| graph.ty(node.operands[k]).shape.as_slice();
        let out_shape = node.ty.shape.as_slice();
        let value = match &node.op {
            Op::Arg { name, ty, .. } => {
                let v = args.get(name).ok_or_else(|| InterpError::MissingArg(name.clone()))?;
                if v.dtype() != ty.dtype || v.len() != ty.numel() {
                    return Err(InterpError::ArgMismatch {
                        name: name.clone(),
                        expected: ty.clone(),
                        found: format!("{} with {} elements", v.dtype(), v.len()),
                    });
                }
                v.clone()
            }
            Op::Const { value, ty } => Value::Float(vec![T::from_f64(*value); ty.numel()]),
            Op::Unary(op) => Value::Float(match op.operand() {
                DType::F32 => x(0).floats().iter().map(|&a| op.eval(a)).collect(),
                DType::I32 => x(0).ints().iter().map(|&i| op.eval(T::from_f64(i as f64))).collect(),
            }),
            Op::Binary(op) => Value::Float(
                x(0).floats()
                    .iter()
                    .zip(x(1).floats())
                    .map(|(&a, &b)| op.eval(a, b))
                    .collect(),
            ),
            Op::Broadcast { shape, dims } => same_kind(
                x(0),
                |v| broadcast(v, shape_of(0), shape, dims),
                |v| broadcast(v, shape_of(0), shape, dims),
            ),
            Op::Reshape { .. } => x(0).clone(),
            Op::Transpose { perm } => same_kind(
                x(0),
                |v| transpose(v, shape_of(0), perm),
                |v| transpose(v, shape_of(0), perm),
            ),
            Op::Concat { axis } => {
                let shapes: Vec<&[usize]> = (0..node.operands.len()).map(shape_of).collect();
                match x(0) {
                    Value::Float(_) => {
                        let parts: Vec<(&[T], &[usize])> =
                            (0..shapes.len()).map(|k| (x(k).floats(), shapes[k])).collect();
                        Value::Float(concat(&parts, *axis))
                    }
                    Value::Int(_) => {
                        let parts: Vec<(&[i32], &[usize])> =
                            (0..shapes.len()).map(|k| (x(k).ints(), shapes[k])).collect();
                        Value::Int(concat(&parts, *axis))
                    }
                }
            }
            Op::Slice { axis, start, end } => same_kind(
                x(0),
                |v| slice(v, shape_of(0), *axis, *start, *end),
                |v| slice(v, shape_of(0), *axis, *start, *end),
            ),
            Op::ReduceSum { axes } => {
                Value::Float(reduce(x(0).floats(), shape_of(0), axes, T::from_f64(0.0), |a, b| a + b))
            }
            Op::ReduceMax { axes } => Value::Float(reduce(
                x(0).floats(),
                shape_of(0),
                axes,
                T::from_f64(f64::NEG_INFINITY),
                |a, b| if b > a { b } else { a },
            )),
            Op::MatMul => {
                let (a, b) = (x(0).floats(), x(1).floats());
                let (m, k, n) = (shape_of(0)[0], shape_of(0)[1], shape_of(1)[1]);
                let mut out = vec![T::from_f64(0.0); m * n];
                for i in 0..m {
                    for p in 0..k {
                        let aip = a[i * k + p];
                        for j in 0..n {
                            out[i * n + j] = out[i * n + j] + aip * b[p * n + j];
                        }
                    }
                }
                Value::Float(out)
            }
            Op::Gather => {
                let index = x(1).ints();
                let rows = shape_of(0)[0];
                check_indices(index, rows, id, "gather")?;
                let row: usize = shape_of(0)[1..].iter().product();
                let pick = |i: &i32| *i as usize * row..(*i as usize + 1) * row;
                same_kind(
                    x(0),
                    |t| index.iter().flat_map(|i| t[pick(i)].to_vec()).collect(),
                    |t| index.iter().flat_map(|i| t[pick(i)].to_vec()).collect(),
                )
            }
            Op::ScatterAdd { rows } => {
                let (values, index) = (x(0).floats(), x(1).ints());
                check_indices(index, *rows, id, "scatter_add")?;
                let row = out_shape[1..].iter().product::<usize>();
                let mut out = vec![T::from_f64(0.0); rows * row];
                for (k, &i) in index.iter().enumerate() {
                    for j in 0..row {
                        let dst = i as usize * row + j;
                        out[dst] = out[dst] + values[k * row + j];
                    }
                }
                Value::Float(out)
            }
            Op::ScatterMax { rows } | Op::ScatterArgmax { rows } => {
                let (values, index) = (x(0).floats(), x(1).ints());
                check_indices(index, *rows, id, node.op.mnemonic())?;
                let row = out_shape[1..].iter().product::<usize>();
                let mut best = vec![T::from_f64(f64::NEG_INFINITY); rows * row];
                let mut arg = vec![-1i32; rows * row];
                // In position order, a strictly greater value wins: ties keep the lowest.
                for (k, &i) in index.iter().enumerate() {
                    for j in 0..row {
                        let (dst, v) = (i as usize * row + j, values[k * row + j]);
                        if arg[dst] < 0 || v > best[dst] {
                            best[dst] = v;
                            arg[dst] = k as i32;
                        }
                    }
                }
                match node.op {
                    Op::ScatterMax { .. } => Value::Float(best),
                    _ => Value::Int(arg),
                }
            }
            Op::ArgmaxScatter { len } => {
                let (g, argmax) = (x(0).floats(), x(1).ints());
                let row = out_shape[1..].iter().product::<usize>();
                check_indices(
                    &argmax.iter().map(|&a| a.max(-1) + 1).collect::<Vec<_>>(),
                    len + 1,
                    id,
                    "argmax_scatter",
                )?;
                let mut out = vec![T::from_f64(0.0); len * row];
                for (e, (&a, &v)) in argmax.iter().zip(g).enumerate() {
                    if a >= 0 {
                        out[a as usize * row + e % row] = v;
                    }
                }
                Value::Float(out)
            }
            Op::OneHot { classes } => {
                let index = x(0).ints();
                let mut out = vec![T::from_f64(0.0); index.len() * classes];
                for (k, &i) in index.iter().enumerate() {
                    // -1 (an ignored label) and other out-of-range ids give a zero row.
                    if i >= 0 && (i as usize) < *classes {
                        out[k * classes + i as usize] = T::from_f64(1.0);
                    }
                }
                Value::Float(out)
            }
            Op::RandomUniform { stream, offset, ty } => {
                let (seed, step) = (x(0).ints()[0], x(1).ints()[0]);
                Value::Float(
                    (0..ty.numel())
                        .map(|i| {
                            let index = offset.wrapping_add(i as u32);
                            T::from_f64(philox::uniform(seed, step, *stream, index) as f64)
                        })
                        .collect(),
                )
            }
        };
        debug_assert_eq!(value.len(), node.ty.numel(), "%{id} {}", node.op.mnemonic());
        vals.push(value);
    }
    Ok(vals)
}
