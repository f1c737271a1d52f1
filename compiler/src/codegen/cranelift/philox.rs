//! Inline Philox4x32-10 (`ir::philox`, with its constants): the uniform `[0, 1)` of one
//! element, of four consecutive elements (one call's four words), and of sixteen (four
//! calls side by side in the lanes of i32x4 vectors).
//!
//! In: the element index, `@step`, `@seed` and the stream. Out: f32 or f32x4 values,
//! each element bit-identical with `ir::philox::uniform` (`runtime/tests/jit_math.rs`
//! and the dropout tests check the JIT against it).
//!
//! Why sixteen: one call's ten rounds are a chain of 32-bit multiplies; four calls in
//! the lanes of a vector take the same number of instructions as one (`pmulld` gives
//! the low words, two `pmuludq` of widened lanes the high ones), then a 4x4 transpose
//! puts each call's words next to each other, as the elements are.

use super::loops::{Gen, F32, F32X4, I32};
use crate::ir::philox;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, Value};

const I32X4: types::Type = types::I32X4;

impl Gen<'_, '_, '_> {
    /// `ir::philox::uniform`, inline: word `index % 4` of the call on block `index / 4`.
    pub(super) fn philox(&mut self, index: Value, step: Value, seed: Value, stream: u32) -> Value {
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
    /// `aligned`: `first` is known to be a multiple of 4 (no test, no scalar draws).
    pub(super) fn philox_x4(&mut self, first: Value, step: Value, seed: Value, stream: u32, aligned: bool) -> Value {
        if aligned {
            return self.philox_call_x4(first, step, seed, stream);
        }
        let result = self.fb.declare_var(F32X4);
        let (aligned, unaligned, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
        let low = self.fb.ins().band_imm_u(first, 3);
        self.fb.ins().brif(low, unaligned, &[], aligned, &[]);

        self.fb.switch_to_block(aligned);
        let u = self.philox_call_x4(first, step, seed, stream);
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

    /// The uniforms of elements `first..first + 4`, `first` a multiple of 4: one call.
    fn philox_call_x4(&mut self, first: Value, step: Value, seed: Value, stream: u32) -> Value {
        let block = self.fb.ins().ushr_imm_u(first, 2);
        let c = self.philox_words(block, step, seed, stream);
        let mut v = self.fb.ins().scalar_to_vector(types::I32X4, c[0]);
        for (lane, &w) in c.iter().enumerate().skip(1) {
            v = self.fb.ins().insertlane(v, w, lane as u8);
        }
        self.unit_x4(v)
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

    /// The uniforms of elements `first..first + 16` as four f32x4: when `first` is a
    /// multiple of 4, four calls at once in i32x4 lanes ([`Self::philox_words_x4`]),
    /// else four [`Self::philox_x4`].
    /// `aligned`: `first` is known to be a multiple of 4 (the vector path alone).
    pub(super) fn philox_x16(
        &mut self,
        first: Value,
        step: Value,
        seed: Value,
        stream: u32,
        aligned: bool,
    ) -> [Value; 4] {
        if aligned {
            return self.philox_calls_x16(first, step, seed, stream);
        }
        let result = [(); 4].map(|_| self.fb.declare_var(F32X4));
        let (aligned, unaligned, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
        let low = self.fb.ins().band_imm_u(first, 3);
        self.fb.ins().brif(low, unaligned, &[], aligned, &[]);

        self.fb.switch_to_block(aligned);
        let uniforms = self.philox_calls_x16(first, step, seed, stream);
        for (var, u) in result.iter().zip(uniforms) {
            self.fb.def_var(*var, u);
        }
        self.fb.ins().jump(done, &[]);

        self.fb.switch_to_block(unaligned);
        for (k, var) in result.iter().enumerate() {
            let at = self.fb.ins().iadd_imm_u(first, 4 * k as i64);
            let u = self.philox_x4(at, step, seed, stream, false);
            self.fb.def_var(*var, u);
        }
        self.fb.ins().jump(done, &[]);

        self.fb.switch_to_block(done);
        result.map(|var| self.fb.use_var(var))
    }

    /// The uniforms of elements `first..first + 16`, `first` a multiple of 4: four calls.
    fn philox_calls_x16(&mut self, first: Value, step: Value, seed: Value, stream: u32) -> [Value; 4] {
        let block = self.fb.ins().ushr_imm_u(first, 2);
        let words = self.philox_words_x4(block, step, seed, stream);
        // Element 4b + w is word w of call b: the words' transpose.
        self.transpose4(words).map(|bits| self.unit_x4(bits))
    }

    /// Four words' top 24 bits as f32x4 in `[0, 1)` (`ir::philox::to_unit`).
    fn unit_x4(&mut self, words: Value) -> Value {
        let bits = self.fb.ins().ushr_imm_u(words, philox::UNIFORM_SHIFT as i64);
        // Below 2^24 after the shift: the signed conversion is the unsigned one.
        let f = self.fb.ins().fcvt_from_sint(F32X4, bits);
        let scale = self.fb.ins().f32const(philox::UNIFORM_SCALE);
        let scale = self.fb.ins().splat(F32X4, scale);
        self.fb.ins().fmul(f, scale)
    }

    /// Philox4x32-10 on the blocks `block..block + 4` at once: word `w` of call `b` is
    /// lane `b` of the result's `w`-th vector.
    fn philox_words_x4(&mut self, block: Value, step: Value, seed: Value, stream: u32) -> [Value; 4] {
        let splat = |g: &mut Self, v: u32| {
            let c = g.fb.ins().iconst(I32, v as i64);
            g.fb.ins().splat(I32X4, c)
        };
        let (m0, m1) = (splat(self, philox::M0), splat(self, philox::M1));
        let (w0, w1) = (splat(self, philox::W0), splat(self, philox::W1));
        let lanes = self
            .fb
            .func
            .dfg
            .constants
            .insert(ConstantData::from(lanes_bytes(&[0, 1, 2, 3])));
        let lanes = self.fb.ins().vconst(I32X4, lanes);
        let first = self.fb.ins().splat(I32X4, block);
        let zero = splat(self, 0);
        let mut c = [
            self.fb.ins().iadd(first, lanes),
            self.fb.ins().splat(I32X4, step),
            zero,
            zero,
        ];
        let mut key = [self.fb.ins().splat(I32X4, seed), splat(self, stream)];
        for round in 0..philox::ROUNDS {
            let (hi0, lo0) = self.mulhilo_x4(m0, c[0]);
            let (hi1, lo1) = self.mulhilo_x4(m1, c[2]);
            let x0 = self.fb.ins().bxor(hi1, c[1]);
            let x0 = self.fb.ins().bxor(x0, key[0]);
            let x2 = self.fb.ins().bxor(hi0, c[3]);
            let x2 = self.fb.ins().bxor(x2, key[1]);
            c = [x0, lo1, x2, lo0];
            // The reference bumps the key after the last round too; nothing reads it.
            if round + 1 < philox::ROUNDS {
                key = [self.fb.ins().iadd(key[0], w0), self.fb.ins().iadd(key[1], w1)];
            }
        }
        c
    }

    /// The high and low 32 bits of each lane's 64-bit product `m * x` (u32 lanes).
    fn mulhilo_x4(&mut self, m: Value, x: Value) -> (Value, Value) {
        let lo = self.fb.ins().imul(m, x);
        let (ml, xl) = (self.fb.ins().uwiden_low(m), self.fb.ins().uwiden_low(x));
        let low_pair = self.fb.ins().imul(ml, xl);
        let (mh, xh) = (self.fb.ins().uwiden_high(m), self.fb.ins().uwiden_high(x));
        let high_pair = self.fb.ins().imul(mh, xh);
        // As i32 lanes: [lo0, hi0, lo1, hi1] and [lo2, hi2, lo3, hi3].
        let hi = self.shuffle32(low_pair, high_pair, [1, 3, 5, 7]);
        (hi, lo)
    }

    /// The 4x4 transpose of four i32x4 rows.
    fn transpose4(&mut self, [a, b, c, d]: [Value; 4]) -> [Value; 4] {
        let ab_low = self.shuffle32(a, b, [0, 4, 1, 5]);
        let cd_low = self.shuffle32(c, d, [0, 4, 1, 5]);
        let ab_high = self.shuffle32(a, b, [2, 6, 3, 7]);
        let cd_high = self.shuffle32(c, d, [2, 6, 3, 7]);
        [
            self.shuffle32(ab_low, cd_low, [0, 1, 4, 5]),
            self.shuffle32(ab_low, cd_low, [2, 3, 6, 7]),
            self.shuffle32(ab_high, cd_high, [0, 1, 4, 5]),
            self.shuffle32(ab_high, cd_high, [2, 3, 6, 7]),
        ]
    }

    /// The i32x4 of 32-bit lanes `pick` of `a`'s and `b`'s lanes (0-3 `a`, 4-7 `b`).
    fn shuffle32(&mut self, a: Value, b: Value, pick: [u8; 4]) -> Value {
        self.shuffle_lanes(I32X4, a, b, pick)
    }

    /// The 32-bit lanes `pick` of `a` (0-3) and `b` (4-7), as a vector of type `ty`.
    pub(super) fn shuffle_lanes(&mut self, ty: types::Type, a: Value, b: Value, pick: [u8; 4]) -> Value {
        let bytes: Vec<u8> = pick.iter().flat_map(|&l| (0..4).map(move |k| 4 * l + k)).collect();
        let mask = self.fb.func.dfg.immediates.push(ConstantData::from(bytes));
        let flags = MemFlagsData::new().with_endianness(Endianness::Little);
        let (a, b) = (
            self.fb.ins().bitcast(types::I8X16, flags, a),
            self.fb.ins().bitcast(types::I8X16, flags, b),
        );
        let v = self.fb.ins().shuffle(a, b, mask);
        self.fb.ins().bitcast(ty, flags, v)
    }
}

/// Little-endian bytes of i32 lanes.
fn lanes_bytes(lanes: &[i32; 4]) -> Vec<u8> {
    lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
}
