//! The vector-Jacobian product of every primitive, one table row per op.
//!
//! In: a forward node (its op, operands `x`, result `y`) and the cotangent `g` of its
//! result. Out: one cotangent per operand, `None` where an operand has no gradient
//! (integer indices, comparisons, random numbers). Each row is the textbook rule; the
//! gradient checks in `compiler/tests/gradcheck_primitives.rs` hold every row against
//! finite differences. Elementwise ops have one row each in [`unary`] and [`binary`].

use crate::ir::{Binary, Builder, Node, Op, Unary, ValueId};

/// Cotangents of `node`'s operands, given the cotangent `g` of its result `y`.
pub fn vjp(b: &mut Builder, node: &Node, y: ValueId, g: ValueId) -> Vec<Option<ValueId>> {
    let x = &node.operands;
    let in_shape = |b: &Builder, k: usize| b.shape(x[k]);
    match &node.op {
        // No gradient flows into arguments, constants, integers or random numbers.
        Op::Arg { .. } | Op::Const { .. } | Op::OneHot { .. } | Op::RandomUniform { .. } => vec![None; x.len()],
        Op::Unary(op) => vec![unary(b, *op, x[0], y, g)],
        Op::Binary(op) => binary(b, *op, [x[0], x[1]], y, g).to_vec(),

        // A broadcast's transpose is a sum over the new axes.
        Op::Broadcast { shape, dims } => {
            let new_axes: Vec<usize> = (0..shape.len()).filter(|a| !dims.contains(a)).collect();
            vec![Some(b.reduce_sum(g, &new_axes))]
        }
        Op::Reshape { .. } => {
            let s = in_shape(b, 0);
            vec![Some(b.reshape(g, &s))]
        }
        Op::Transpose { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            vec![Some(b.transpose(g, &inverse))]
        }
        // Concat's transpose slices the cotangent back into its parts.
        Op::Concat { axis } => {
            let mut start = 0;
            (0..x.len())
                .map(|k| {
                    let len = in_shape(b, k)[*axis];
                    let part = b.slice(g, *axis, start, start + len);
                    start += len;
                    Some(part)
                })
                .collect()
        }
        // Slice's transpose pads the cotangent with zeros.
        Op::Slice { axis, start, end } => {
            let full = in_shape(b, 0);
            let mut parts = Vec::new();
            for (from, to) in [(0, *start), (*end, full[*axis])] {
                if to > from {
                    let mut s = full.clone();
                    s[*axis] = to - from;
                    parts.push(b.constant(0.0, &s));
                }
            }
            let pos = if *start > 0 { 1 } else { 0 };
            parts.insert(pos, g);
            vec![Some(b.concat(&parts, *axis))]
        }

        // A sum's transpose broadcasts the cotangent over the summed axes.
        Op::ReduceSum { axes } => {
            let s = in_shape(b, 0);
            vec![Some(b.broadcast_reduced(g, &s, axes))]
        }
        // The max's cotangent is shared equally by every element equal to the max.
        Op::ReduceMax { axes } => {
            let s = in_shape(b, 0);
            let y_b = b.broadcast_reduced(y, &s, axes);
            let below = b.greater(y_b, x[0]);
            let one = b.constant(1.0, &s);
            let is_max = b.sub(one, below);
            let count = b.reduce_sum(is_max, axes);
            let share = b.div(g, count);
            let share_b = b.broadcast_reduced(share, &s, axes);
            vec![Some(b.mul(share_b, is_max))]
        }

        // d(A B) = (g B^T, A^T g)
        Op::MatMul => {
            let bt = b.transpose(x[1], &[1, 0]);
            let at = b.transpose(x[0], &[1, 0]);
            vec![Some(b.matmul(g, bt)), Some(b.matmul(at, g))]
        }

        // Gather's transpose adds each cotangent row into the row it was read from.
        Op::Gather => {
            let rows = in_shape(b, 0)[0];
            vec![Some(b.scatter_add(g, x[1], rows)), None]
        }
        // Scatter-add's transpose reads each row's cotangent back.
        Op::ScatterAdd { .. } => vec![Some(b.gather(g, x[1])), None],
        // Scatter-max sends each row's cotangent to the value it picked (the argmax,
        // lowest position on ties) and nothing to the others.
        Op::ScatterMax { rows } => {
            let values_shape = in_shape(b, 0);
            let index_rank = b.shape(x[1]).len();
            let positions: usize = values_shape[..index_rank].iter().product();
            let argmax = b.scatter_argmax(x[0], x[1], *rows);
            let flat = b.argmax_scatter(g, argmax, positions);
            vec![Some(b.reshape(flat, &values_shape)), None]
        }
        // Integer results, and a transpose that only backward passes contain.
        Op::ScatterArgmax { .. } | Op::ArgmaxScatter { .. } => vec![None, None],
    }
}

/// The cotangent of a unary op's operand `x`, given its result `y` and cotangent `g`.
fn unary(b: &mut Builder, op: Unary, x: ValueId, y: ValueId, g: ValueId) -> Option<ValueId> {
    Some(match op {
        // d(-x) = -g
        Unary::Neg => b.neg(g),
        // d(exp x) = g * y
        Unary::Exp => b.mul(g, y),
        // d(log x) = g / x
        Unary::Log => b.div(g, x),
        // d(tanh x) = g * (1 - y^2)
        Unary::Tanh => {
            let one = b.constant(1.0, &b.shape(y));
            let y2 = b.mul(y, y);
            let d = b.sub(one, y2);
            b.mul(g, d)
        }
        // d(erf x) = g * 2/sqrt(pi) * exp(-x^2)
        Unary::Erf => {
            let x2 = b.mul(x, x);
            let minus_x2 = b.neg(x2);
            let e = b.exp(minus_x2);
            let d = b.scale(e, std::f64::consts::FRAC_2_SQRT_PI);
            b.mul(g, d)
        }
        // d(sqrt x) = g / (2 y)
        Unary::Sqrt => {
            let two_y = b.scale(y, 2.0);
            b.div(g, two_y)
        }
        // An integer operand has no gradient; a stopped one by definition.
        Unary::Convert | Unary::StopGradient => return None,
    })
}

/// The cotangents of a binary op's operands `[a, b]`, given its result `y` and cotangent `g`.
fn binary(b: &mut Builder, op: Binary, [x0, x1]: [ValueId; 2], y: ValueId, g: ValueId) -> [Option<ValueId>; 2] {
    match op {
        // d(a + b) = (g, g); d(a - b) = (g, -g)
        Binary::Add => [Some(g), Some(g)],
        Binary::Sub => [Some(g), Some(b.neg(g))],
        // d(a * b) = (g b, g a)
        Binary::Mul => [Some(b.mul(g, x1)), Some(b.mul(g, x0))],
        // d(a / b) = (g / b, -g y / b)
        Binary::Div => {
            let da = b.div(g, x1);
            let gy = b.mul(da, y);
            [Some(da), Some(b.neg(gy))]
        }
        // d max(a, b) = (g [a > b], g [a <= b]): ties send the gradient to b.
        Binary::Max => {
            let a_wins = b.greater(x0, x1);
            let da = b.mul(g, a_wins);
            [Some(da), Some(b.sub(g, da))]
        }
        // A comparison has no gradient.
        Binary::Greater => [None, None],
    }
}
