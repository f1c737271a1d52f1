//! One loop kernel as a Cranelift function: buffer bases and reduction/scatter
//! initialization at entry, a loop nest over the domain, each expression at the depth of
//! the deepest axis it reads, and a vectorized innermost loop where possible.

use super::Imports;
use crate::ir::DType;
use crate::schedule::{Affine, BinOp, Expr, LoopKernel, Program, ReduceOp, Store, UnOp};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Block, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

const F32X4: Type = types::F32X4;
const I64: Type = types::I64;
const I32: Type = types::I32;
const F32: Type = types::F32;

struct Gen<'a, 'f, 'b> {
    fb: &'a mut FunctionBuilder<'f>,
    p: &'b Program,
    lk: &'b LoopKernel,
    im: &'b Imports,
    fma: bool,
    r: usize,
    level: Vec<usize>,
    live: Vec<bool>,
    vector: bool,
    base: Vec<Option<Value>>,
    ival: Vec<Option<Value>>,
    sval: Vec<Option<Value>>,
    vval: Vec<Option<Value>>,
    start: Value,
    end: Value,
    err: Value,
    exit: Block,
    /// The scatter row expression and the level its guard sits at.
    guard: Option<(usize, usize)>,
}

fn scalar_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}
fn vector_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

pub(super) fn emit(fb: &mut FunctionBuilder, p: &Program, lk: &LoopKernel, im: &Imports, fma: bool) {
    let r = lk.domain.len();
    let n = lk.exprs.len();
    // Live expressions: what the stores need.
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    for s in &lk.stores {
        stack.push(s.value());
        if let Store::ScatterAdd { row, .. } = s {
            stack.push(*row);
        }
    }
    while let Some(e) = stack.pop() {
        if !live[e] {
            live[e] = true;
            stack.extend(lk.exprs[e].operands());
        }
    }
    let mut level = vec![0; n];
    for (i, e) in lk.exprs.iter().enumerate() {
        let own = e.affine().map_or(0, Affine::level);
        level[i] = e.operands().iter().map(|&o| level[o]).fold(own, usize::max);
    }
    let dtype = |b: usize| p.buffers[b].dtype;
    let vector = r >= 1 && lk.domain[r - 1] >= 4 && {
        let inner = r - 1;
        let exprs_ok = lk.exprs.iter().enumerate().all(|(i, e)| {
            if !live[i] || level[i] < r {
                return true;
            }
            match e {
                Expr::Load { buf, at } => dtype(*buf) == DType::F32 && at.coef[inner] == 1,
                Expr::LoadRow { buf, row, at, .. } => {
                    dtype(*buf) == DType::F32 && at.coef[inner] == 1 && level[*row] < r
                }
                Expr::Unary(..) | Expr::Binary(..) | Expr::Fma(..) | Expr::Const(_) => true,
                Expr::Convert(a) => {
                    matches!(&lk.exprs[*a], Expr::Load { buf, at } if dtype(*buf) == DType::I32 && at.coef[inner] == 1)
                }
                _ => false,
            }
        });
        let value_f32 = |v: usize| {
            !matches!(&lk.exprs[v], Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } if dtype(*buf) == DType::I32)
                && !matches!(lk.exprs[v], Expr::CheckIndex { .. })
        };
        let stores_ok = lk.stores.iter().all(|s| match s {
            Store::Write { at, value, .. } | Store::Reduce { at, value, .. } => {
                at.coef[inner] == 1 && value_f32(*value)
            }
            Store::ScatterAdd { at, row, value, .. } => at.coef[inner] == 1 && level[*row] < r && value_f32(*value),
        });
        exprs_ok && stores_ok
    };
    let guard = lk.stores.iter().find_map(|s| match s {
        Store::ScatterAdd { row, .. } => Some((*row, level[*row])),
        _ => None,
    });

    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let exit = fb.create_block();
    let mut g = Gen {
        fb,
        p,
        lk,
        im,
        fma,
        r,
        level,
        live,
        vector,
        base: vec![None; p.buffers.len()],
        ival: vec![None; r],
        sval: vec![None; n],
        vval: vec![None; n],
        start: params[1],
        end: params[2],
        err: params[3],
        exit,
        guard,
    };
    // Buffer bases.
    let mut used: Vec<usize> = lk.stores.iter().map(Store::buf).collect();
    used.extend(lk.exprs.iter().filter_map(|e| match e {
        Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => Some(*buf),
        _ => None,
    }));
    used.sort();
    used.dedup();
    for b in used {
        g.base[b] = Some(g.fb.ins().load(I64, scalar_flags(), params[0], (b * 8) as i32));
    }
    g.init_outputs();
    g.emit_level(0);
    if r == 0 {
        g.emit_stores_scalar();
    } else {
        g.emit_loop(0);
    }
    g.fb.ins().jump(exit, &[]);
    g.fb.switch_to_block(exit);
    g.fb.ins().return_(&[]);
    g.fb.seal_all_blocks();
}

impl Gen<'_, '_, '_> {
    fn iconst(&mut self, v: i64) -> Value {
        self.fb.ins().iconst(I64, v)
    }

    /// Fills `[lo, hi)` elements of buffer `b` with `v`.
    fn fill(&mut self, b: usize, lo: Value, hi: Value, v: f32) {
        let base = self.base[b].unwrap();
        let byte = self.fb.ins().ishl_imm_u(lo, 2);
        let ptr = self.fb.ins().iadd(base, byte);
        let n = self.fb.ins().isub(hi, lo);
        let val = self.fb.ins().f32const(v);
        self.fb.ins().call(self.im.fill, &[ptr, n, val]);
    }

    /// Reductions start at their identity and scatter targets at zero, over the part of
    /// the output this call owns.
    fn init_outputs(&mut self) {
        for s in &self.lk.stores {
            match s {
                Store::Reduce { buf, at, op, .. } => {
                    let len = self.p.buffers[*buf].len as i64;
                    let (lo, hi) = if self.r > 0 && at.coef[0] != 0 {
                        let lo = self.fb.ins().imul_imm_s(self.start, at.coef[0]);
                        let hi = self.fb.ins().imul_imm_s(self.end, at.coef[0]);
                        (lo, hi)
                    } else {
                        (self.iconst(0), self.iconst(len))
                    };
                    self.fill(*buf, lo, hi, op.init());
                }
                Store::ScatterAdd { buf, row_len, .. } => {
                    let lo = self.fb.ins().imul_imm_s(self.start, *row_len);
                    let hi = self.fb.ins().imul_imm_s(self.end, *row_len);
                    self.fill(*buf, lo, hi, 0.0);
                }
                Store::Write { .. } => {}
            }
        }
    }

    /// `at` with the loop indices' current values; `lane` is added to the innermost.
    fn affine(&mut self, at: &Affine, lane: i64) -> Value {
        let mut acc = self.iconst(at.offset + if self.r > 0 { at.coef[self.r - 1] * lane } else { 0 });
        for (a, &c) in at.coef.iter().enumerate() {
            if c != 0 {
                let i = self.ival[a].expect("loop index in scope");
                let t = self.fb.ins().imul_imm_s(i, c);
                acc = self.fb.ins().iadd(acc, t);
            }
        }
        acc
    }

    fn addr(&mut self, buf: usize, index: Value) -> Value {
        let byte = self.fb.ins().ishl_imm_u(index, 2);
        let base = self.base[buf].unwrap();
        self.fb.ins().iadd(base, byte)
    }

    fn row_index(&mut self, row: usize, row_len: i64, at: &Affine, lane: i64) -> Value {
        let r = self.sval[row].unwrap();
        let r = self.fb.ins().sextend(I64, r);
        let r = self.fb.ins().imul_imm_s(r, row_len);
        let rest = self.affine(at, lane);
        self.fb.ins().iadd(r, rest)
    }

    /// Scalar expressions of `level`, then the scatter guard if it sits there.
    fn emit_level(&mut self, level: usize) {
        for e in 0..self.lk.exprs.len() {
            if self.live[e] && self.level[e] == level {
                let v = self.scalar(e);
                self.sval[e] = Some(v);
            }
        }
    }

    /// Skips to `skip` when the scatter row at this level is not this call's.
    fn emit_guard(&mut self, level: usize, skip: Block) {
        let Some((row, l)) = self.guard else { return };
        if l != level {
            return;
        }
        let r = self.sval[row].unwrap();
        let r = self.fb.ins().sextend(I64, r);
        let ge = self.fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, r, self.start);
        let lt = self.fb.ins().icmp(IntCC::SignedLessThan, r, self.end);
        let ok = self.fb.ins().band(ge, lt);
        let cont = self.fb.create_block();
        self.fb.ins().brif(ok, cont, &[], skip, &[]);
        self.fb.switch_to_block(cont);
    }

    fn emit_loop(&mut self, d: usize) {
        let split = d == 0 && self.lk.scatter_rows.is_none();
        let (lo, hi) = if split {
            (self.start, self.end)
        } else {
            (self.iconst(0), self.iconst(self.lk.domain[d] as i64))
        };
        if d == 0 {
            self.emit_guard(0, self.exit);
        }
        if d == self.r - 1 && self.vector {
            self.emit_inner_vector(lo, hi);
            return;
        }
        let var = self.fb.declare_var(I64);
        self.fb.def_var(var, lo);
        let (header, body, latch, done) = (
            self.fb.create_block(),
            self.fb.create_block(),
            self.fb.create_block(),
            self.fb.create_block(),
        );
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(header);
        let i = self.fb.use_var(var);
        let c = self.fb.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.fb.ins().brif(c, body, &[], done, &[]);
        self.fb.switch_to_block(body);
        self.ival[d] = Some(i);
        self.emit_level(d + 1);
        self.emit_guard(d + 1, latch);
        if d + 1 < self.r {
            self.emit_loop(d + 1);
        } else {
            self.emit_stores_scalar();
        }
        self.fb.ins().jump(latch, &[]);
        self.fb.switch_to_block(latch);
        let next = self.fb.ins().iadd_imm_s(i, 1);
        self.fb.def_var(var, next);
        self.fb.ins().jump(header, &[]);
        self.fb.switch_to_block(done);
    }

    /// The innermost axis: two f32x4 bodies per iteration, then one, then scalars.
    fn emit_inner_vector(&mut self, lo: Value, hi: Value) {
        let d = self.r - 1;
        let var = self.fb.declare_var(I64);
        self.fb.def_var(var, lo);
        for (step, lanes) in [(8i64, vec![0i64, 4]), (4, vec![0]), (1, vec![])] {
            let (header, body, done) = (self.fb.create_block(), self.fb.create_block(), self.fb.create_block());
            self.fb.ins().jump(header, &[]);
            self.fb.switch_to_block(header);
            let i = self.fb.use_var(var);
            let last = self.fb.ins().iadd_imm_s(i, step);
            let c = self.fb.ins().icmp(IntCC::SignedLessThanOrEqual, last, hi);
            self.fb.ins().brif(c, body, &[], done, &[]);
            self.fb.switch_to_block(body);
            self.ival[d] = Some(i);
            if step == 1 {
                self.emit_level(self.r);
                self.emit_stores_scalar();
            } else {
                for lane in lanes {
                    self.emit_vector_body(lane);
                }
            }
            self.fb.def_var(var, last);
            self.fb.ins().jump(header, &[]);
            self.fb.switch_to_block(done);
        }
    }

    fn splat_f(&mut self, e: usize) -> Value {
        if self.level[e] == self.r {
            self.vval[e].unwrap()
        } else {
            let s = self.sval[e].unwrap();
            self.fb.ins().splat(F32X4, s)
        }
    }

    fn mask_f(&mut self, m: Value) -> Value {
        self.fb
            .ins()
            .bitcast(F32X4, MemFlagsData::new().with_endianness(Endianness::Little), m)
    }

    fn call1(&mut self, f: cranelift_codegen::ir::FuncRef, x: Value) -> Value {
        let c = self.fb.ins().call(f, &[x]);
        self.fb.inst_results(c)[0]
    }

    fn unary_fn(&self, op: UnOp) -> cranelift_codegen::ir::FuncRef {
        match op {
            UnOp::Exp => self.im.exp,
            UnOp::Log => self.im.log,
            _ => self.im.tanh,
        }
    }

    fn emit_vector_body(&mut self, lane: i64) {
        for e in 0..self.lk.exprs.len() {
            if !self.live[e] || self.level[e] != self.r {
                continue;
            }
            let v = match self.lk.exprs[e].clone() {
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
                Expr::Unary(op, a) => {
                    let x = self.splat_f(a);
                    match op {
                        UnOp::Neg => self.fb.ins().fneg(x),
                        UnOp::Sqrt => self.fb.ins().sqrt(x),
                        _ => {
                            let f = self.unary_fn(op);
                            let mut acc = x;
                            for l in 0..4u8 {
                                let xl = self.fb.ins().extractlane(x, l);
                                let y = self.call1(f, xl);
                                acc = self.fb.ins().insertlane(acc, y, l);
                            }
                            acc
                        }
                    }
                }
                Expr::Binary(op, a, b) => {
                    let (x, y) = (self.splat_f(a), self.splat_f(b));
                    match op {
                        BinOp::Add => self.fb.ins().fadd(x, y),
                        BinOp::Sub => self.fb.ins().fsub(x, y),
                        BinOp::Mul => self.fb.ins().fmul(x, y),
                        BinOp::Div => self.fb.ins().fdiv(x, y),
                        BinOp::Max => {
                            let m = self.fb.ins().fcmp(FloatCC::GreaterThan, y, x);
                            let m = self.mask_f(m);
                            self.fb.ins().bitselect(m, y, x)
                        }
                        BinOp::Greater => {
                            let m = self.fb.ins().fcmp(FloatCC::GreaterThan, x, y);
                            let m = self.mask_f(m);
                            let one = self.fb.ins().f32const(1.0);
                            let one = self.fb.ins().splat(F32X4, one);
                            self.fb.ins().band(m, one)
                        }
                    }
                }
                Expr::Fma(a, b, c) => {
                    let (x, y, z) = (self.splat_f(a), self.splat_f(b), self.splat_f(c));
                    self.fma(x, y, z)
                }
                Expr::Convert(a) => {
                    let Expr::Load { buf, at } = self.lk.exprs[a].clone() else {
                        unreachable!()
                    };
                    let idx = self.affine(&at, lane);
                    let ad = self.addr(buf, idx);
                    let iv = self.fb.ins().load(types::I32X4, vector_flags(), ad, 0);
                    self.fb.ins().fcvt_from_sint(F32X4, iv)
                }
                _ => unreachable!("not vectorizable"),
            };
            self.vval[e] = Some(v);
        }
        for s in self.lk.stores.clone() {
            match s {
                Store::Write { buf, at, value } => {
                    let v = self.splat_f(value);
                    let idx = self.affine(&at, lane);
                    let a = self.addr(buf, idx);
                    self.fb.ins().store(vector_flags(), v, a, 0);
                }
                Store::Reduce { buf, at, value, op } => {
                    let v = self.splat_f(value);
                    let idx = self.affine(&at, lane);
                    let a = self.addr(buf, idx);
                    let old = self.fb.ins().load(F32X4, vector_flags(), a, 0);
                    let new = match op {
                        ReduceOp::Sum => self.fb.ins().fadd(old, v),
                        ReduceOp::Max => {
                            let m = self.fb.ins().fcmp(FloatCC::GreaterThan, v, old);
                            let m = self.mask_f(m);
                            self.fb.ins().bitselect(m, v, old)
                        }
                    };
                    self.fb.ins().store(vector_flags(), new, a, 0);
                }
                Store::ScatterAdd {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                } => {
                    let v = self.splat_f(value);
                    let idx = self.row_index(row, row_len, &at, lane);
                    let a = self.addr(buf, idx);
                    let old = self.fb.ins().load(F32X4, vector_flags(), a, 0);
                    let new = self.fb.ins().fadd(old, v);
                    self.fb.ins().store(vector_flags(), new, a, 0);
                }
            }
        }
    }

    fn fma(&mut self, x: Value, y: Value, z: Value) -> Value {
        if self.fma {
            self.fb.ins().fma(x, y, z)
        } else {
            let p = self.fb.ins().fmul(x, y);
            self.fb.ins().fadd(p, z)
        }
    }

    fn s(&self, e: usize) -> Value {
        self.sval[e].expect("operand computed")
    }

    fn scalar(&mut self, e: usize) -> Value {
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
                match op {
                    UnOp::Neg => self.fb.ins().fneg(x),
                    UnOp::Sqrt => self.fb.ins().sqrt(x),
                    _ => {
                        let f = self.unary_fn(op);
                        self.call1(f, x)
                    }
                }
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.s(a), self.s(b));
                match op {
                    BinOp::Add => self.fb.ins().fadd(x, y),
                    BinOp::Sub => self.fb.ins().fsub(x, y),
                    BinOp::Mul => self.fb.ins().fmul(x, y),
                    BinOp::Div => self.fb.ins().fdiv(x, y),
                    BinOp::Max => {
                        let c = self.fb.ins().fcmp(FloatCC::GreaterThan, y, x);
                        self.fb.ins().select(c, y, x)
                    }
                    BinOp::Greater => {
                        let c = self.fb.ins().fcmp(FloatCC::GreaterThan, x, y);
                        let one = self.fb.ins().f32const(1.0);
                        let zero = self.fb.ins().f32const(0.0);
                        self.fb.ins().select(c, one, zero)
                    }
                }
            }
            Expr::Fma(a, b, c) => {
                let (x, y, z) = (self.s(a), self.s(b), self.s(c));
                self.fma(x, y, z)
            }
            Expr::Convert(a) => {
                let x = self.s(a);
                self.fb.ins().fcvt_from_sint(F32, x)
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

    /// `ir::philox::uniform`, inline: counter (index, step, 0, 0), key (seed, stream).
    fn philox(&mut self, index: Value, step: Value, seed: Value, stream: u32) -> Value {
        let k = |g: &mut Self, v: u32| g.fb.ins().iconst(I32, v as i64);
        let (m0, m1) = (k(self, 0xD251_1F53), k(self, 0xCD9E_8D57));
        let zero = k(self, 0);
        let mut c = [index, step, zero, zero];
        let mut key = [seed, k(self, stream)];
        for round in 0..10 {
            let hi0 = self.fb.ins().umulhi(m0, c[0]);
            let lo0 = self.fb.ins().imul(m0, c[0]);
            let hi1 = self.fb.ins().umulhi(m1, c[2]);
            let lo1 = self.fb.ins().imul(m1, c[2]);
            let x0 = self.fb.ins().bxor(hi1, c[1]);
            let x0 = self.fb.ins().bxor(x0, key[0]);
            let x2 = self.fb.ins().bxor(hi0, c[3]);
            let x2 = self.fb.ins().bxor(x2, key[1]);
            c = [x0, lo1, x2, lo0];
            if round < 9 {
                key = [
                    self.fb.ins().iadd_imm_u(key[0], 0x9E37_79B9i64),
                    self.fb.ins().iadd_imm_u(key[1], 0xBB67_AE85i64),
                ];
            }
        }
        let bits = self.fb.ins().ushr_imm_u(c[0], 8);
        let f = self.fb.ins().fcvt_from_uint(F32, bits);
        let scale = self.fb.ins().f32const(1.0 / 16_777_216.0);
        self.fb.ins().fmul(f, scale)
    }

    fn emit_stores_scalar(&mut self) {
        for s in self.lk.stores.clone() {
            match s {
                Store::Write { buf, at, value } => {
                    let v = self.s(value);
                    let idx = self.affine(&at, 0);
                    let a = self.addr(buf, idx);
                    self.fb.ins().store(scalar_flags(), v, a, 0);
                }
                Store::Reduce { buf, at, value, op } => {
                    let v = self.s(value);
                    let idx = self.affine(&at, 0);
                    let a = self.addr(buf, idx);
                    let old = self.fb.ins().load(F32, scalar_flags(), a, 0);
                    let new = match op {
                        ReduceOp::Sum => self.fb.ins().fadd(old, v),
                        ReduceOp::Max => {
                            let c = self.fb.ins().fcmp(FloatCC::GreaterThan, v, old);
                            self.fb.ins().select(c, v, old)
                        }
                    };
                    self.fb.ins().store(scalar_flags(), new, a, 0);
                }
                Store::ScatterAdd {
                    buf,
                    row,
                    row_len,
                    at,
                    value,
                } => {
                    let v = self.s(value);
                    let idx = self.row_index(row, row_len, &at, 0);
                    let a = self.addr(buf, idx);
                    let old = self.fb.ins().load(F32, scalar_flags(), a, 0);
                    let new = self.fb.ins().fadd(old, v);
                    self.fb.ins().store(scalar_flags(), new, a, 0);
                }
            }
        }
    }
}
