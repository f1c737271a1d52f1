//! The scalar and f32x4 rendering of one kernel expression.
//!
//! In: an expression of the loop kernel whose operands are already computed (at its
//! level or outside). Out: its Cranelift value. Elementwise ops go through the op table
//! in [`super::ops`], Philox through [`super::philox`]; loads, bounds checks and one-hot
//! are rendered here.

use super::loops::{scalar_flags, vector_flags, Gen, F32, F32X4, I32, I64};
use crate::ir::{DType, Unary};
use crate::schedule::{Affine, Expr};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

impl Gen<'_, '_, '_> {
    /// Expression `e`'s scalar value.
    pub(super) fn s(&self, e: usize) -> Value {
        self.sval[e].expect("operand computed")
    }

    /// Expression `e` as f32x4: its vector value, or its scalar value in every lane.
    pub(super) fn splat_f(&mut self, e: usize) -> Value {
        if self.level[e] == self.r {
            self.vval[e].unwrap()
        } else {
            let s = self.sval[e].unwrap();
            self.fb.ins().splat(F32X4, s)
        }
    }

    /// Expression `e` for the four innermost elements from lane offset `lane` (only the
    /// kinds the vectorization check admits).
    pub(super) fn vector_expr(&mut self, e: usize, lane: i64) -> Value {
        match self.lk.exprs[e].clone() {
            Expr::Load { buf, at } => {
                let idx = self.affine(&at, lane);
                let a = self.addr(buf, idx);
                self.fb.ins().load(F32X4, vector_flags(), a, 0)
            }
            Expr::LoadRow { buf, row, row_len, at } => {
                let idx = self.row_index(row, row_len, &at, lane);
                let a = self.addr(buf, idx);
                self.fb.ins().load(F32X4, vector_flags(), a, 0)
            }
            Expr::Const(bits) => {
                let c = self.fb.ins().f32const(f32::from_bits(bits));
                self.fb.ins().splat(F32X4, c)
            }
            // The i32 operand is a contiguous load: read it as i32x4.
            Expr::Unary(Unary::Convert, a) => {
                let Expr::Load { buf, at } = self.lk.exprs[a].clone() else {
                    unreachable!()
                };
                let idx = self.affine(&at, lane);
                let ad = self.addr(buf, idx);
                let iv = self.fb.ins().load(types::I32X4, vector_flags(), ad, 0);
                self.unary(Unary::Convert, iv)
            }
            Expr::Unary(op, a) => {
                let x = self.splat_f(a);
                self.unary(op, x)
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.splat_f(a), self.splat_f(b));
                self.binary(op, x, y)
            }
            Expr::Fma(a, b, c) => {
                let (x, y, z) = (self.splat_f(a), self.splat_f(b), self.splat_f(c));
                self.fma(x, y, z)
            }
            Expr::Philox { .. } if self.philox16[e].is_some() => self.philox16[e].unwrap()[(lane / 4 % 4) as usize],
            Expr::Philox { seed, step, stream, at } => {
                let idx = self.affine(&at, lane);
                let idx = self.fb.ins().ireduce(I32, idx);
                let (seed, step) = (self.s(seed), self.s(step));
                let aligned = self.philox_aligned(&at);
                self.philox_x4(idx, step, seed, stream, aligned)
            }
            _ => unreachable!("not vectorizable"),
        }
    }

    /// Philox expression `e` for the sixteen innermost elements from lane offset 0.
    pub(super) fn vector_philox16(&mut self, e: usize) -> [Value; 4] {
        let Expr::Philox { seed, step, stream, at } = self.lk.exprs[e].clone() else {
            unreachable!("a Philox expression")
        };
        let idx = self.affine(&at, 0);
        let idx = self.fb.ins().ireduce(I32, idx);
        let (seed, step) = (self.s(seed), self.s(step));
        let aligned = self.philox_aligned(&at);
        self.philox_x16(idx, step, seed, stream, aligned)
    }

    /// Whether a Philox index `at` read four elements at a time from a vector step is
    /// a multiple of 4 whatever the loop indices: every outer coefficient and the
    /// offset are, the innermost coefficient is 1, and the innermost loop starts at a
    /// multiple of 4 (at 0, at a column chunk, or at a rank-1 loop's thread part, cut
    /// at multiples of 8). Then the code needs no test and no scalar fallback.
    fn philox_aligned(&self, at: &Affine) -> bool {
        let inner = self.r - 1;
        let starts_aligned = inner > 0 || self.lk.aligned_split();
        starts_aligned && at.coef[inner] == 1 && at.offset % 4 == 0 && at.coef[..inner].iter().all(|c| c % 4 == 0)
    }

    /// Expression `e`'s scalar value, from its operands' scalar values.
    pub(super) fn scalar(&mut self, e: usize) -> Value {
        match self.lk.exprs[e].clone() {
            Expr::Load { buf, at } => {
                let ty = if self.p.buffers[buf].dtype == DType::F32 {
                    F32
                } else {
                    I32
                };
                let idx = self.affine(&at, 0);
                let a = self.addr(buf, idx);
                self.fb.ins().load(ty, scalar_flags(), a, 0)
            }
            Expr::LoadRow { buf, row, row_len, at } => {
                let ty = if self.p.buffers[buf].dtype == DType::F32 {
                    F32
                } else {
                    I32
                };
                let idx = self.row_index(row, row_len, &at, 0);
                let a = self.addr(buf, idx);
                self.fb.ins().load(ty, scalar_flags(), a, 0)
            }
            Expr::Const(bits) => self.fb.ins().f32const(f32::from_bits(bits)),
            Expr::Unary(op, a) => {
                let x = self.s(a);
                self.unary(op, x)
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.s(a), self.s(b));
                self.binary(op, x, y)
            }
            Expr::Fma(a, b, c) => {
                let (x, y, z) = (self.s(a), self.s(b), self.s(c));
                self.fma(x, y, z)
            }
            Expr::CheckIndex { index, bound, check } => {
                let x = self.s(index);
                let wide = self.fb.ins().sextend(I64, x);
                let oob = self.fb.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, wide, bound);
                let (bad, cont) = (self.fb.create_block(), self.fb.create_block());
                self.fb.ins().brif(oob, bad, &[], cont, &[]);
                self.fb.switch_to_block(bad);
                self.fb.set_cold_block(bad);
                let code = self.fb.ins().iconst(I32, check as i64 + 1);
                self.fb.ins().store(scalar_flags(), code, self.err, 0);
                self.fb.ins().store(scalar_flags(), x, self.err, 4);
                self.fb.ins().jump(cont, &[]);
                self.fb.switch_to_block(cont);
                let zero = self.fb.ins().iconst(I32, 0);
                self.fb.ins().select(oob, zero, x)
            }
            Expr::OneHot { index, class } => {
                let x = self.s(index);
                let x = self.fb.ins().sextend(I64, x);
                let c = self.affine(&class, 0);
                // 1.0 or 0.0 from the compare's 1 or 0, without a branch.
                let eq = self.fb.ins().icmp(IntCC::Equal, x, c);
                let eq = self.fb.ins().uextend(I32, eq);
                self.fb.ins().fcvt_from_sint(F32, eq)
            }
            Expr::Philox { seed, step, stream, at } => {
                let idx = self.affine(&at, 0);
                let idx = self.fb.ins().ireduce(I32, idx);
                let (seed, step) = (self.s(seed), self.s(step));
                self.philox(idx, step, seed, stream)
            }
        }
    }
}
