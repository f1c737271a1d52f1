//! The scalar and f32x4 rendering of one kernel expression, and inline Philox.
//!
//! In: an expression of the loop kernel whose operands are already computed (at its
//! level or outside). Out: its Cranelift value. Elementwise ops go through the op table
//! in [`super::ops`]; loads, bounds checks, one-hot and Philox are rendered here.

use super::loops::{scalar_flags, vector_flags, Gen, F32, F32X4, I32, I64};
use crate::ir::{philox, DType, Unary};
use crate::schedule::Expr;
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
            Expr::Philox { seed, step, stream, at } => {
                let idx = self.affine(&at, lane);
                let idx = self.fb.ins().ireduce(I32, idx);
                let (seed, step) = (self.s(seed), self.s(step));
                self.philox_x4(idx, step, seed, stream)
            }
            _ => unreachable!("not vectorizable"),
        }
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
                let eq = self.fb.ins().icmp(IntCC::Equal, x, c);
                let one = self.fb.ins().f32const(1.0);
                let zero = self.fb.ins().f32const(0.0);
                self.fb.ins().select(eq, one, zero)
            }
            Expr::Philox { seed, step, stream, at } => {
                let idx = self.affine(&at, 0);
                let idx = self.fb.ins().ireduce(I32, idx);
                let (seed, step) = (self.s(seed), self.s(step));
                self.philox(idx, step, seed, stream)
            }
        }
    }

    /// `ir::philox::uniform`, inline: word `index % 4` of the call on block `index / 4`.
    fn philox(&mut self, index: Value, step: Value, seed: Value, stream: u32) -> Value {
        let block = self.fb.ins().ushr_imm_u(index, 2);
        let word = self.fb.ins().band_imm_u(index, 3);
        let c = self.philox_words(block, step, seed, stream);
        let mut pick = c[3];
        for w in (0..3).rev() {
            let is = self.fb.ins().icmp_imm_u(IntCC::Equal, word, w as i64);
            pick = self.fb.ins().select(is, c[w], pick);
        }
        let bits = self.fb.ins().ushr_imm_u(pick, philox::UNIFORM_SHIFT as i64);
        let f = self.fb.ins().fcvt_from_uint(F32, bits);
        let scale = self.fb.ins().f32const(philox::UNIFORM_SCALE);
        self.fb.ins().fmul(f, scale)
    }

    /// The uniforms of elements `first..first + 4`: when `first` is a multiple of 4, the
    /// four words of one call (the common case: rows of a multiple of 4), else four
    /// scalar draws. Either way each element gets `ir::philox::uniform`'s value.
    fn philox_x4(&mut self, first: Value, step: Value, seed: Value, stream: u32) -> Value {
        let result = self.fb.declare_var(F32X4);
        let (aligned, unaligned, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
        let low = self.fb.ins().band_imm_u(first, 3);
        self.fb.ins().brif(low, unaligned, &[], aligned, &[]);

        self.fb.switch_to_block(aligned);
        let block = self.fb.ins().ushr_imm_u(first, 2);
        let c = self.philox_words(block, step, seed, stream);
        let mut v = self.fb.ins().scalar_to_vector(types::I32X4, c[0]);
        for (lane, &w) in c.iter().enumerate().skip(1) {
            v = self.fb.ins().insertlane(v, w, lane as u8);
        }
        let bits = self.fb.ins().ushr_imm_u(v, philox::UNIFORM_SHIFT as i64);
        // Below 2^24 after the shift: the signed conversion is the unsigned one.
        let f = self.fb.ins().fcvt_from_sint(F32X4, bits);
        let scale = self.fb.ins().f32const(philox::UNIFORM_SCALE);
        let scale = self.fb.ins().splat(F32X4, scale);
        let u = self.fb.ins().fmul(f, scale);
        self.fb.def_var(result, u);
        self.fb.ins().jump(done, &[]);

        self.fb.switch_to_block(unaligned);
        let zero = self.fb.ins().f32const(0.0);
        let mut acc = self.fb.ins().splat(F32X4, zero);
        for lane in 0..4u8 {
            let i = self.fb.ins().iadd_imm_u(first, lane as i64);
            let u = self.philox(i, step, seed, stream);
            acc = self.fb.ins().insertlane(acc, u, lane);
        }
        self.fb.def_var(result, acc);
        self.fb.ins().jump(done, &[]);

        self.fb.switch_to_block(done);
        self.fb.use_var(result)
    }

    /// The four words of Philox4x32-10 (`ir::philox::philox4x32`), inline, with its
    /// constants: counter (block, step, 0, 0), key (seed, stream).
    fn philox_words(&mut self, block: Value, step: Value, seed: Value, stream: u32) -> [Value; 4] {
        let k = |g: &mut Self, v: u32| g.fb.ins().iconst(I32, v as i64);
        let (m0, m1) = (k(self, philox::M0), k(self, philox::M1));
        let zero = k(self, 0);
        let mut c = [block, step, zero, zero];
        let mut key = [seed, k(self, stream)];
        for round in 0..philox::ROUNDS {
            let hi0 = self.fb.ins().umulhi(m0, c[0]);
            let lo0 = self.fb.ins().imul(m0, c[0]);
            let hi1 = self.fb.ins().umulhi(m1, c[2]);
            let lo1 = self.fb.ins().imul(m1, c[2]);
            let x0 = self.fb.ins().bxor(hi1, c[1]);
            let x0 = self.fb.ins().bxor(x0, key[0]);
            let x2 = self.fb.ins().bxor(hi0, c[3]);
            let x2 = self.fb.ins().bxor(x2, key[1]);
            c = [x0, lo1, x2, lo0];
            // The reference bumps the key after the last round too; nothing reads it.
            if round + 1 < philox::ROUNDS {
                key = [
                    self.fb.ins().iadd_imm_u(key[0], philox::W0 as i64),
                    self.fb.ins().iadd_imm_u(key[1], philox::W1 as i64),
                ];
            }
        }
        c
    }
}
