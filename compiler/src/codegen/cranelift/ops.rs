//! The Cranelift rendering of each elementwise op, one row per op, for a scalar f32
//! value or an f32x4 vector alike (`exp`, `log`, `tanh`, `erf` are inline polynomials
//! from `math.rs`; comparisons use lane masks).
//!
//! In: an op of `ir::ops` and its operand values. Out: the result value. Adding an
//! elementwise op means one row here (see ARCHITECTURE.md, "How to add an op").

use super::loops::Gen;
use crate::ir::{Binary, Unary};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Value};

impl Gen<'_, '_, '_> {
    /// `op(x)`; `x` is f32 or f32x4 (i32 or i32x4 for `convert`).
    pub(super) fn unary(&mut self, op: Unary, x: Value) -> Value {
        match op {
            Unary::Neg => self.fb.ins().fneg(x),
            Unary::Exp => self.exp_inline(x),
            Unary::Log => self.log_inline(x),
            Unary::Tanh => self.tanh_inline(x),
            Unary::Sqrt => self.fb.ins().sqrt(x),
            Unary::Erf => self.erf_inline(x),
            Unary::Convert => self.int_to_float(x),
            Unary::StopGradient => x,
        }
    }

    /// `op(x, y)` on two f32 or two f32x4 values.
    pub(super) fn binary(&mut self, op: Binary, x: Value, y: Value) -> Value {
        match op {
            Binary::Add => self.fb.ins().fadd(x, y),
            Binary::Sub => self.fb.ins().fsub(x, y),
            Binary::Mul => self.fb.ins().fmul(x, y),
            Binary::Div => self.fb.ins().fdiv(x, y),
            Binary::Max => self.select_greater(y, x),
            Binary::Greater => self.one_if_greater(x, y),
        }
    }

    pub(super) fn is_vector(&self, x: Value) -> bool {
        self.fb.func.dfg.value_type(x).is_vector()
    }

    /// The constant `v` as an f32, or splat to f32x4 when `like` is a vector.
    pub(super) fn float_like(&mut self, like: Value, v: f32) -> Value {
        let c = self.fb.ins().f32const(v);
        if self.is_vector(like) {
            self.fb.ins().splat(types::F32X4, c)
        } else {
            c
        }
    }

    fn int_to_float(&mut self, x: Value) -> Value {
        let ty = if self.is_vector(x) { types::F32X4 } else { types::F32 };
        self.fb.ins().fcvt_from_sint(ty, x)
    }

    /// A comparison's lane mask as f32x4 bits.
    fn mask_f(&mut self, m: Value) -> Value {
        self.fb
            .ins()
            .bitcast(types::F32X4, MemFlagsData::new().with_endianness(Endianness::Little), m)
    }

    /// `if a > b { a } else { b }` (the interpreter's max rule: NaN in `a` gives `b`).
    pub(super) fn select_greater(&mut self, a: Value, b: Value) -> Value {
        if !self.is_vector(a) {
            return self.pick_scalar(FloatCC::GreaterThan, a, b, a, b);
        }
        let c = self.fb.ins().fcmp(FloatCC::GreaterThan, a, b);
        let m = self.mask_f(c);
        self.fb.ins().bitselect(m, a, b)
    }

    /// `if cc(a, b) { then } else { other }` for f32 `a`, `b` and f32 or i32 `then`,
    /// `other`, without a branch: Cranelift lowers a scalar float `select` to a compare
    /// and a jump, which mispredicts on data (half of a ReLU's inputs are negative,
    /// at random); the same in lane 0 of vectors is a compare and a blend.
    pub(super) fn pick_scalar(&mut self, cc: FloatCC, a: Value, b: Value, then: Value, other: Value) -> Value {
        let lift = |g: &mut Self, x: Value| {
            let ty = g.fb.func.dfg.value_type(x);
            let vty = if ty == types::I32 { types::I32X4 } else { types::F32X4 };
            g.fb.ins().scalar_to_vector(vty, x)
        };
        let (va, vb) = (lift(self, a), lift(self, b));
        let (vt, vo) = (lift(self, then), lift(self, other));
        let c = self.fb.ins().fcmp(cc, va, vb);
        let vty = self.fb.func.dfg.value_type(vt);
        let m = self
            .fb
            .ins()
            .bitcast(vty, MemFlagsData::new().with_endianness(Endianness::Little), c);
        let picked = self.fb.ins().bitselect(m, vt, vo);
        self.fb.ins().extractlane(picked, 0)
    }

    /// `1.0` where `a > b`, else `0.0`.
    fn one_if_greater(&mut self, a: Value, b: Value) -> Value {
        if self.is_vector(a) {
            let c = self.fb.ins().fcmp(FloatCC::GreaterThan, a, b);
            let m = self.mask_f(c);
            let one = self.fb.ins().f32const(1.0);
            let one = self.fb.ins().splat(types::F32X4, one);
            self.fb.ins().band(m, one)
        } else {
            let one = self.fb.ins().f32const(1.0);
            let zero = self.fb.ins().f32const(0.0);
            self.pick_scalar(FloatCC::GreaterThan, a, b, one, zero)
        }
    }

    /// `x * y + z`: one `fma` when the host has it, else a multiply and an add.
    pub(super) fn fma(&mut self, x: Value, y: Value, z: Value) -> Value {
        if self.fma {
            self.fb.ins().fma(x, y, z)
        } else {
            let p = self.fb.ins().fmul(x, y);
            self.fb.ins().fadd(p, z)
        }
    }
}
