//! One kernel expression as PTX, with the address arithmetic and inline Philox.
//!
//! In: an expression whose operands are computed (their registers in `val`). Out: the
//! register holding its value (f32, or s32 for integer loads and checked indices), with a
//! comment showing the expression as `--emit kernels` does. Elementwise ops go through
//! the op table in [`crate::codegen::ptx::ops`]; loads, bounds checks (`atom.cas` of the
//! error word), one-hot and Philox (constants from `ir::philox`) are rendered here.

use super::{fconst, ops, Gen, Ty};
use crate::ir::{philox, DType};
use crate::schedule::printer::expr_text;
use crate::schedule::{Affine, BufId, Expr};

impl Gen<'_> {
    /// `at` as an s64 element index.
    pub(super) fn affine(&mut self, at: &Affine) -> Result<String, String> {
        let x = self.b.rd();
        self.b.op(format!("mov.s64 {x}, {};", at.offset));
        for (a, &c) in at.coef.iter().enumerate() {
            if c != 0 {
                let i = self.ax.get(a).filter(|s| !s.is_empty()).cloned();
                let i = i.ok_or_else(|| format!("an index reads axis {a}, which is not in scope"))?;
                self.b.op(format!("mad.lo.s64 {x}, {i}, {c}, {x};"));
            }
        }
        Ok(x)
    }

    /// Byte address of element `index` (an s64 register) of `buf`.
    pub(super) fn addr_of(&mut self, buf: BufId, index: &str) -> Result<String, String> {
        let base = self.base.get(buf).filter(|s| !s.is_empty()).cloned();
        let base = base.ok_or_else(|| format!("buffer b{buf} is not a parameter"))?;
        let a = self.b.rd();
        self.b.op(format!("mad.lo.s64 {a}, {index}, 4, {base};"));
        Ok(a)
    }

    pub(super) fn address(&mut self, buf: BufId, at: &Affine) -> Result<String, String> {
        let i = self.affine(at)?;
        self.addr_of(buf, &i)
    }

    pub(super) fn row_address(&mut self, buf: BufId, row: usize, row_len: i64, at: &Affine) -> Result<String, String> {
        let rv = self.v(row)?;
        let i = self.affine(at)?;
        let r64 = self.b.rd();
        self.b.op(format!("cvt.s64.s32 {r64}, {rv};"));
        self.b.op(format!("mad.lo.s64 {i}, {r64}, {row_len}, {i};"));
        self.addr_of(buf, &i)
    }

    pub(super) fn v(&self, e: usize) -> Result<String, String> {
        self.val
            .get(e)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("e{e} is used before it is computed"))
    }

    pub(super) fn f32_operand(&self, e: usize) -> Result<String, String> {
        if self.ty[e] != Ty::F32 {
            return Err(format!("e{e} is an integer where a float is expected"));
        }
        self.v(e)
    }

    pub(super) fn i32_operand(&self, e: usize) -> Result<String, String> {
        if self.ty[e] != Ty::I32 {
            return Err(format!("e{e} is a float where an integer is expected"));
        }
        self.v(e)
    }

    pub(super) fn expr(&mut self, e: usize) -> Result<String, String> {
        let ex = self.lk.exprs[e].clone();
        self.b.comment(&format!("e{e} = {}", short(&ex)));
        #[allow(unreachable_patterns)]
        let v = match ex {
            Expr::Load { buf, at } => {
                let a = self.address(buf, &at)?;
                self.load(buf, &a)
            }
            Expr::LoadRow { buf, row, row_len, at } => {
                self.i32_operand(row)?;
                let a = self.row_address(buf, row, row_len, &at)?;
                self.load(buf, &a)
            }
            Expr::Const(bits) => {
                let f = self.b.f();
                self.b
                    .op(format!("mov.f32 {f}, 0f{bits:08X}; // {:?}", f32::from_bits(bits)));
                f
            }
            Expr::Unary(op, a) => {
                let x = match op.operand() {
                    DType::F32 => self.f32_operand(a)?,
                    DType::I32 => self.i32_operand(a)?,
                };
                ops::unary(self.b, op, &x)
            }
            Expr::Binary(op, a, b) => {
                let (x, y) = (self.f32_operand(a)?, self.f32_operand(b)?);
                ops::binary(self.b, op, &x, &y)
            }
            Expr::Fma(a, b, c) => {
                let (x, y, z) = (self.f32_operand(a)?, self.f32_operand(b)?, self.f32_operand(c)?);
                let f = self.b.f();
                self.b.op(format!("fma.rn.f32 {f}, {x}, {y}, {z};"));
                f
            }
            Expr::CheckIndex { index, bound, check } => {
                let x = self.i32_operand(index)?;
                if !(0..=i32::MAX as i64).contains(&bound) {
                    return Err(format!("e{e}: bound {bound} does not fit in 32 bits"));
                }
                let (bad, ok) = (self.b.p(), self.b.p());
                let (old, y) = (self.b.r(), self.b.r());
                let skip = self.b.label("in_bounds");
                let err = self.err.to_string();
                // Unsigned compare: negative indices are out of range too.
                self.b.op(format!("setp.ge.u32 {bad}, {x}, {bound};"));
                self.b.op(format!("@!{bad} bra {skip};"));
                self.b
                    .op(format!("atom.global.cas.b32 {old}, [{err}], 0, {};", check as u64 + 1));
                self.b.op(format!("setp.eq.u32 {ok}, {old}, 0;"));
                self.b.op(format!("@{ok} st.global.u32 [{err}+4], {x};"));
                self.b.put_label(&skip);
                self.b.op(format!("selp.b32 {y}, 0, {x}, {bad};"));
                y
            }
            Expr::OneHot { index, class } => {
                let x = self.i32_operand(index)?;
                let c = self.affine(&class)?;
                let (x64, eq, f) = (self.b.rd(), self.b.p(), self.b.f());
                self.b.op(format!("cvt.s64.s32 {x64}, {x};"));
                self.b.op(format!("setp.eq.s64 {eq}, {x64}, {c};"));
                self.b.op(format!("selp.f32 {f}, 0f3F800000, 0f00000000, {eq};"));
                f
            }
            Expr::Philox { seed, step, stream, at } => {
                let (seed, step) = (self.i32_operand(seed)?, self.i32_operand(step)?);
                let i = self.affine(&at)?;
                let idx = self.b.r();
                self.b.op(format!("cvt.u32.u64 {idx}, {i};"));
                self.philox(&idx, &step, &seed, stream)
            }
            other => return Err(format!("e{e}: {other:?} has no PTX rendering yet")),
        };
        Ok(v)
    }

    pub(super) fn load(&mut self, buf: BufId, a: &str) -> String {
        if self.p.buffers[buf].dtype == DType::I32 {
            let r = self.b.r();
            self.b.op(format!("ld.global.u32 {r}, [{a}];"));
            r
        } else {
            let f = self.b.f();
            self.b.op(format!("ld.global.f32 {f}, [{a}];"));
            f
        }
    }

    /// `ir::philox::uniform`, inline, with its constants: word `index % 4` of counter
    /// (index / 4, step, 0, 0),
    /// key (seed, stream).
    pub(super) fn philox(&mut self, index: &str, step: &str, seed: &str, stream: u32) -> String {
        let b = &mut *self.b;
        let (block, word) = (b.r(), b.r());
        b.op(format!("shr.u32 {block}, {index}, 2;"));
        b.op(format!("and.b32 {word}, {index}, 3;"));
        let mut c = [block, step.to_string(), b.r(), b.r()];
        b.op(format!("mov.b32 {}, 0;", c[2]));
        b.op(format!("mov.b32 {}, 0;", c[3]));
        let (k0, k1) = (b.r(), b.r());
        b.op(format!("mov.b32 {k0}, {seed};"));
        b.op(format!("mov.b32 {k1}, {stream};"));
        let (m0, m1) = (philox::M0, philox::M1);
        for round in 0..philox::ROUNDS {
            let (hi0, lo0, hi1, lo1, x0, x2) = (b.r(), b.r(), b.r(), b.r(), b.r(), b.r());
            b.op(format!("mul.hi.u32 {hi0}, {}, 0x{m0:08X}; // round {round}", c[0]));
            b.op(format!("mul.lo.u32 {lo0}, {}, 0x{m0:08X};", c[0]));
            b.op(format!("mul.hi.u32 {hi1}, {}, 0x{m1:08X};", c[2]));
            b.op(format!("mul.lo.u32 {lo1}, {}, 0x{m1:08X};", c[2]));
            b.op(format!("xor.b32 {x0}, {hi1}, {};", c[1]));
            b.op(format!("xor.b32 {x0}, {x0}, {k0};"));
            b.op(format!("xor.b32 {x2}, {hi0}, {};", c[3]));
            b.op(format!("xor.b32 {x2}, {x2}, {k1};"));
            c = [x0, lo1, x2, lo0];
            // The reference bumps the key after the last round too; nothing reads it.
            if round + 1 < philox::ROUNDS {
                b.op(format!("add.u32 {k0}, {k0}, 0x{:08X};", philox::W0));
                b.op(format!("add.u32 {k1}, {k1}, 0x{:08X};", philox::W1));
            }
        }
        // The word `index % 4` names: c[3] unless it is 0, 1 or 2.
        let (pick, is) = (b.r(), b.p());
        b.op(format!("mov.b32 {pick}, {};", c[3]));
        for w in (0..3).rev() {
            b.op(format!("setp.eq.u32 {is}, {word}, {w};"));
            b.op(format!("selp.b32 {pick}, {}, {pick}, {is};", c[w]));
        }
        let (bits, f) = (b.r(), b.f());
        b.op(format!("shr.u32 {bits}, {pick}, {};", philox::UNIFORM_SHIFT));
        b.op(format!("cvt.rn.f32.u32 {f}, {bits};"));
        b.op(format!(
            "mul.rn.f32 {f}, {f}, {}; // 2^-24",
            fconst(philox::UNIFORM_SCALE)
        ));
        f
    }
}

/// The expression as `--emit kernels` shows it, with plain buffer numbers.
fn short(e: &Expr) -> String {
    expr_text(e, &|b| format!("b{b}"), &|_| String::new())
}

#[cfg(test)]
mod tests {
    use crate::codegen::ptx;
    use crate::ir::{philox, ArgKind, Builder, Type};
    use crate::schedule::schedule;

    /// The PTX Philox is the reference's: its multipliers once per round, its Weyl keys
    /// between rounds, and its u32 -> [0, 1) conversion.
    #[test]
    fn philox_uses_the_reference_constants_and_rounds() {
        let mut b = Builder::new("dropout");
        let seed = b.arg(ArgKind::Input, "@seed", Type::i32([]));
        let step = b.arg(ArgKind::Input, "@step", Type::i32([]));
        let u = b.random_uniform(seed, step, 3, &[4, 8]);
        b.output("u", u);
        let text = ptx::emit(&schedule(&b.finish())).unwrap().text;
        let count = |s: &str| text.matches(s).count();
        let hex = |v: u32| format!("0x{v:08X};");
        assert_eq!(count("mul.hi.u32"), 2 * philox::ROUNDS, "{text}");
        assert_eq!(count(&hex(philox::M0)), 2 * philox::ROUNDS);
        assert_eq!(count(&hex(philox::M1)), 2 * philox::ROUNDS);
        assert_eq!(count(&hex(philox::W0)), philox::ROUNDS - 1);
        assert_eq!(count(&hex(philox::W1)), philox::ROUNDS - 1);
        let shift = format!(", {};", philox::UNIFORM_SHIFT);
        let shifts = text
            .lines()
            .filter(|l| l.trim_start().starts_with("shr.u32") && l.ends_with(&shift));
        assert_eq!(shifts.count(), 1);
        assert_eq!(count(&format!("0f{:08X}", philox::UNIFORM_SCALE.to_bits())), 1);
    }
}
