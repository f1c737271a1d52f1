//! The elementwise op table: every unary and binary elementwise op, one row each.
//!
//! In: nothing (definitions). Out: [`Unary`] and [`Binary`] and, per op, its row: the
//! mnemonic (the IR and kernel printers' name and the e-graph symbol, so rule patterns
//! like `(exp ?x)` parse), the operand dtype, the cost in FLOPs per element, and the
//! reference evaluation, generic over the float type (the interpreter runs it in f32 or
//! f64, constant folding in f64). The tensor IR (`Op::Unary`/`Op::Binary`), the e-graph
//! language and the kernel IR (`schedule::Expr`) all carry these enums, so an op is
//! spelled once here; what each backend emits for it is one row of that backend's table
//! (`codegen::cranelift::ops`, `codegen::ptx::ops`), and its derivative one row of
//! `autodiff::vjp`. ARCHITECTURE.md, "How to add an op", lists every place.
//!
//! Every op returns f32 of its operands' shape; binary operands have equal types.

use super::DType;
use crate::interp::Real;
use std::fmt;
use std::str::FromStr;

fn one<T: Real>() -> T {
    T::from_f64(1.0)
}
fn zero<T: Real>() -> T {
    T::from_f64(0.0)
}

/// Declares [`Unary`] and [`Binary`] and their rows from one table.
macro_rules! elementwise_ops {
    (
        unary { $( $(#[$um:meta])* $u:ident = $uname:literal, $udt:ident, $uflops:literal, |$x:ident| $ueval:expr; )* }
        binary { $( $(#[$bm:meta])* $b:ident = $bname:literal, $bflops:literal, |$l:ident, $r:ident| $beval:expr; )* }
    ) => {
        /// An elementwise op of one operand.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Unary { $( $(#[$um])* $u, )* }

        /// An elementwise op of two operands of equal type.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Binary { $( $(#[$bm])* $b, )* }

        impl Unary {
            pub const ALL: &'static [Unary] = &[$(Unary::$u),*];
            /// The mnemonic: printers' name and e-graph symbol.
            pub fn name(self) -> &'static str {
                match self { $(Unary::$u => $uname,)* }
            }
            /// The dtype the operand must have (the result is always f32).
            pub fn operand(self) -> DType {
                match self { $(Unary::$u => DType::$udt,)* }
            }
            /// Cost in FLOPs per element (a libm-style function counts as 10).
            pub fn flops(self) -> f64 {
                match self { $(Unary::$u => $uflops,)* }
            }
            /// The reference value for operand `x` (an i32 operand arrives converted).
            pub fn eval<T: Real>(self, x: T) -> T {
                match self { $(Unary::$u => { let $x = x; $ueval })* }
            }
        }

        impl Binary {
            pub const ALL: &'static [Binary] = &[$(Binary::$b),*];
            /// The mnemonic: printers' name and e-graph symbol.
            pub fn name(self) -> &'static str {
                match self { $(Binary::$b => $bname,)* }
            }
            /// Cost in FLOPs per element.
            pub fn flops(self) -> f64 {
                match self { $(Binary::$b => $bflops,)* }
            }
            /// The reference value for operands `a` and `b`.
            pub fn eval<T: Real>(self, a: T, b: T) -> T {
                match self { $(Binary::$b => { let ($l, $r) = (a, b); $beval })* }
            }
        }
    };
}

#[rustfmt::skip]
elementwise_ops! {
    unary {
        // op     mnemonic   operand flops  reference
        Neg     = "neg",     F32,    1.0,   |x| -x;
        Exp     = "exp",     F32,    10.0,  |x| x.exp();
        Log     = "log",     F32,    10.0,  |x| x.ln();
        Tanh    = "tanh",    F32,    10.0,  |x| x.tanh();
        Sqrt    = "sqrt",    F32,    10.0,  |x| x.sqrt();
        /// The error function (exact GELU's); backends run `ir::erf`'s formula.
        Erf     = "erf",     F32,    20.0,  |x| T::from_f64(super::erf::reference(x.to_f64()));
        /// i32 -> f32.
        Convert = "convert", I32,    1.0,   |x| x;
        /// `x`, with no gradient: a shift that cancels (a softmax's max), kept out of
        /// the backward pass.
        StopGradient = "stop_gradient", F32, 0.0, |x| x;
    }
    binary {
        // op     mnemonic   flops  reference
        Add     = "add",     1.0,   |a, b| a + b;
        Sub     = "sub",     1.0,   |a, b| a - b;
        Mul     = "mul",     1.0,   |a, b| a * b;
        Div     = "div",     1.0,   |a, b| a / b;
        /// `if b > a { b } else { a }` (NaN included: every backend uses this rule).
        Max     = "max",     1.0,   |a, b| if b > a { b } else { a };
        /// `1.0` where `a > b`, else `0.0`.
        Greater = "greater", 1.0,   |a, b| if a > b { one() } else { zero() };
    }
}

impl fmt::Display for Unary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Unary {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Unary::ALL
            .iter()
            .copied()
            .find(|op| op.name() == s)
            .ok_or_else(|| format!("not a unary op: {s}"))
    }
}

impl FromStr for Binary {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Binary::ALL
            .iter()
            .copied()
            .find(|op| op.name() == s)
            .ok_or_else(|| format!("not a binary op: {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut names: Vec<&str> = Unary::ALL.iter().map(|o| o.name()).collect();
        names.extend(Binary::ALL.iter().map(|o| o.name()));
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        for &op in Unary::ALL {
            assert_eq!(op.name().parse::<Unary>(), Ok(op));
        }
        for &op in Binary::ALL {
            assert_eq!(op.name().parse::<Binary>(), Ok(op));
        }
    }

    #[test]
    fn reference_rules() {
        assert_eq!(Binary::Max.eval(1.0f32, f32::NAN), 1.0);
        assert_eq!(Binary::Greater.eval(2.0f64, 1.0), 1.0);
        assert_eq!(Binary::Greater.eval(1.0f64, 1.0), 0.0);
        assert_eq!(Unary::Exp.eval(0.0f32), 1.0);
        assert_eq!(Unary::Erf.eval(0.0f64), 0.0);
        assert_eq!(Unary::Erf.eval(-0.5f32), -0.520_499_877_813_046_5f64 as f32);
    }
}
