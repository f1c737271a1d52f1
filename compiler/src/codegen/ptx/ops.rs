//! The PTX rendering of each elementwise op, one row per op.
//!
//! In: an op of `ir::ops` and its operand registers (f32, or s32 for `convert`). Out: the
//! f32 register holding the result. IEEE round-to-nearest everywhere (`.rn`, no `.ftz`,
//! no `.approx`); `exp`, `log`, `tanh`, `erf` come from [`super::math`]. Adding an elementwise op
//! means one row here (see ARCHITECTURE.md, "How to add an op").

use super::{math, Body};
use crate::ir::{Binary, Unary};

pub(super) fn unary(b: &mut Body, op: Unary, x: &str) -> String {
    match op {
        Unary::Neg => one_instruction(b, "neg.f32", x),
        Unary::Exp => math::exp(b, x),
        Unary::Log => math::log(b, x),
        Unary::Tanh => math::tanh(b, x),
        Unary::Erf => math::erf(b, x),
        Unary::Sqrt => one_instruction(b, "sqrt.rn.f32", x),
        Unary::Convert => one_instruction(b, "cvt.rn.f32.s32", x),
        Unary::StopGradient => x.to_string(),
    }
}

pub(super) fn binary(b: &mut Body, op: Binary, x: &str, y: &str) -> String {
    let f = b.f();
    match op {
        Binary::Add => b.op(format!("add.rn.f32 {f}, {x}, {y};")),
        Binary::Sub => b.op(format!("sub.rn.f32 {f}, {x}, {y};")),
        Binary::Mul => b.op(format!("mul.rn.f32 {f}, {x}, {y};")),
        Binary::Div => b.op(format!("div.rn.f32 {f}, {x}, {y};")),
        Binary::Max => select_greater(b, &f, y, x),
        Binary::Greater => {
            let c = b.p();
            b.op(format!("setp.gt.f32 {c}, {x}, {y};"));
            b.op(format!("selp.f32 {f}, 0f3F800000, 0f00000000, {c};"));
        }
    }
    f
}

/// `dst = if a > b { a } else { b }`: the interpreter's max rule (NaN in `a` gives `b`).
pub(super) fn select_greater(body: &mut Body, dst: &str, a: &str, b: &str) {
    let c = body.p();
    body.op(format!("setp.gt.f32 {c}, {a}, {b};"));
    body.op(format!("selp.f32 {dst}, {a}, {b}, {c};"));
}

/// A fresh f32 register `f` and `instr f, x;`.
fn one_instruction(b: &mut Body, instr: &str, x: &str) -> String {
    let f = b.f();
    b.op(format!("{instr} {f}, {x};"));
    f
}
