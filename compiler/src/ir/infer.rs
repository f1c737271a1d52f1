//! Type inference for one IR node: op + operand types -> result type, or why not.
//!
//! The builder calls it for every node it creates (an error there is a compiler bug),
//! and [`super::Graph::validate`] re-runs it to check a whole graph after a transform.

use super::{DType, Op, Type};

type Result<T> = std::result::Result<T, String>;

fn arity(op: &Op, n: usize, want: usize) -> Result<()> {
    if n == want {
        Ok(())
    } else {
        Err(format!("{} takes {want} operand(s), got {n}", op.mnemonic()))
    }
}

fn want_dtype(t: &Type, d: DType, what: &str) -> Result<()> {
    if t.dtype == d {
        Ok(())
    } else {
        Err(format!("{what} must be {d}, found {t}"))
    }
}

fn check_axes(axes: &[usize], rank: usize) -> Result<()> {
    let mut seen = vec![false; rank];
    for &a in axes {
        if a >= rank || seen[a] {
            return Err(format!("bad axes {axes:?} for rank {rank}"));
        }
        seen[a] = true;
    }
    Ok(())
}

pub fn infer_type(op: &Op, xs: &[&Type]) -> Result<Type> {
    let n = xs.len();
    match op {
        Op::Arg { ty, .. } | Op::Const { ty, .. } => {
            arity(op, n, 0)?;
            Ok(ty.clone())
        }
        Op::Unary(u) => {
            arity(op, n, 1)?;
            want_dtype(xs[0], u.operand(), "operand")?;
            Ok(Type::f32(xs[0].shape.clone()))
        }
        Op::Binary(_) => {
            arity(op, n, 2)?;
            want_dtype(xs[0], DType::F32, "left operand")?;
            if xs[0] != xs[1] {
                return Err(format!("operands differ: {} and {}", xs[0], xs[1]));
            }
            Ok(xs[0].clone())
        }
        Op::Broadcast { shape, dims } => {
            arity(op, n, 1)?;
            let x = xs[0];
            if dims.len() != x.shape.len() {
                return Err(format!("dims {dims:?} do not match operand rank {}", x.shape.len()));
            }
            for (i, &d) in dims.iter().enumerate() {
                if d >= shape.len() || shape[d] != x.shape[i] || (i > 0 && dims[i - 1] >= d) {
                    return Err(format!("cannot broadcast {x} to {shape:?} with dims {dims:?}"));
                }
            }
            Ok(Type {
                dtype: x.dtype,
                shape: shape.clone(),
            })
        }
        Op::Reshape { shape } => {
            arity(op, n, 1)?;
            if shape.iter().product::<usize>() != xs[0].numel() {
                return Err(format!("cannot reshape {} to {shape:?}", xs[0]));
            }
            Ok(Type {
                dtype: xs[0].dtype,
                shape: shape.clone(),
            })
        }
        Op::Transpose { perm } => {
            arity(op, n, 1)?;
            check_axes(perm, xs[0].shape.len())?;
            if perm.len() != xs[0].shape.len() {
                return Err(format!("permutation {perm:?} has the wrong length"));
            }
            Ok(Type {
                dtype: xs[0].dtype,
                shape: perm.iter().map(|&p| xs[0].shape[p]).collect(),
            })
        }
        Op::Concat { axis } => {
            if n == 0 {
                return Err("concat needs operands".into());
            }
            let first = xs[0];
            if *axis >= first.shape.len() {
                return Err(format!("axis {axis} out of range for {first}"));
            }
            let mut shape = first.shape.clone();
            shape[*axis] = 0;
            for x in xs {
                let same_rest = x.dtype == first.dtype
                    && x.shape.len() == first.shape.len()
                    && x.shape
                        .iter()
                        .zip(&first.shape)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !same_rest {
                    return Err(format!("cannot concat {first} and {x} along axis {axis}"));
                }
                shape[*axis] += x.shape[*axis];
            }
            Ok(Type {
                dtype: first.dtype,
                shape,
            })
        }
        Op::Slice { axis, start, end } => {
            arity(op, n, 1)?;
            let x = xs[0];
            if *axis >= x.shape.len() || start > end || *end > x.shape[*axis] {
                return Err(format!("bad slice {start}..{end} of axis {axis} of {x}"));
            }
            let mut shape = x.shape.clone();
            shape[*axis] = end - start;
            Ok(Type { dtype: x.dtype, shape })
        }
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
            arity(op, n, 1)?;
            want_dtype(xs[0], DType::F32, "operand")?;
            check_axes(axes, xs[0].shape.len())?;
            let shape = xs[0]
                .shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect::<Vec<_>>();
            Ok(Type::f32(shape))
        }
        Op::MatMul => {
            arity(op, n, 2)?;
            let (a, b) = (xs[0], xs[1]);
            want_dtype(a, DType::F32, "left operand")?;
            want_dtype(b, DType::F32, "right operand")?;
            if a.shape.len() != 2 || b.shape.len() != 2 || a.shape[1] != b.shape[0] {
                return Err(format!("cannot multiply {a} by {b}"));
            }
            Ok(Type::f32([a.shape[0], b.shape[1]]))
        }
        Op::Gather => {
            arity(op, n, 2)?;
            let (table, index) = (xs[0], xs[1]);
            want_dtype(index, DType::I32, "index")?;
            if table.shape.is_empty() {
                return Err("gather from a scalar".into());
            }
            let mut shape = index.shape.clone();
            shape.extend_from_slice(&table.shape[1..]);
            Ok(Type {
                dtype: table.dtype,
                shape,
            })
        }
        Op::ScatterAdd { rows } => {
            arity(op, n, 2)?;
            let (values, index) = (xs[0], xs[1]);
            want_dtype(values, DType::F32, "values")?;
            want_dtype(index, DType::I32, "index")?;
            if !values.shape.starts_with(&index.shape) {
                return Err(format!("values {values} do not start with index shape {index}"));
            }
            let mut shape = vec![*rows];
            shape.extend_from_slice(&values.shape[index.shape.len()..]);
            Ok(Type::f32(shape))
        }
        Op::ScatterMax { rows } | Op::ScatterArgmax { rows } => {
            arity(op, n, 2)?;
            let (values, index) = (xs[0], xs[1]);
            want_dtype(values, DType::F32, "values")?;
            want_dtype(index, DType::I32, "index")?;
            if !values.shape.starts_with(&index.shape) {
                return Err(format!("values {values} do not start with index shape {index}"));
            }
            let mut shape = vec![*rows];
            shape.extend_from_slice(&values.shape[index.shape.len()..]);
            Ok(Type {
                dtype: if matches!(op, Op::ScatterMax { .. }) {
                    DType::F32
                } else {
                    DType::I32
                },
                shape,
            })
        }
        Op::ArgmaxScatter { len } => {
            arity(op, n, 2)?;
            let (g, argmax) = (xs[0], xs[1]);
            want_dtype(g, DType::F32, "cotangent")?;
            want_dtype(argmax, DType::I32, "argmax")?;
            if g.shape != argmax.shape || g.shape.is_empty() {
                return Err(format!("cotangent {g} and argmax {argmax} differ"));
            }
            let mut shape = vec![*len];
            shape.extend_from_slice(&g.shape[1..]);
            Ok(Type::f32(shape))
        }
        Op::OneHot { classes } => {
            arity(op, n, 1)?;
            want_dtype(xs[0], DType::I32, "index")?;
            let mut shape = xs[0].shape.clone();
            shape.push(*classes);
            Ok(Type::f32(shape))
        }
        Op::RandomUniform { ty, .. } => {
            arity(op, n, 2)?;
            for x in xs {
                if **x != Type::i32([]) {
                    return Err(format!("seed and step must be i32[] scalars, found {x}"));
                }
            }
            want_dtype(ty, DType::F32, "result")?;
            Ok(ty.clone())
        }
    }
}
