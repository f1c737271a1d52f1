//! The tensor IR as an egg language.
//!
//! In: nothing (definitions). Out: [`TensorLang`], one e-node kind per IR primitive, with
//! the op's attributes (shapes, axes, constants) as leaf children of kind [`Attr`], and
//! graph arguments as [`TensorLang::Arg`] leaves named like the IR argument. Elementwise
//! ops are two data-carrying kinds, [`TensorLang::Unary`] and [`TensorLang::Binary`],
//! whose symbol is the op's mnemonic from `ir::ops` (so `(exp ?x)` and `(mul ?a ?b)` parse). Two e-node
//! kinds exist only here: `matmul_tn` / `matmul_nt` (a matmul whose left / right operand is
//! transposed), so that the cost model can see a transpose folded into a GEMM call; they
//! convert back to `matmul(transpose(..), ..)`, which the backends run as one GEMM.

use crate::ir::{Binary, Unary};
use egg::{define_language, Id, Symbol};
use std::fmt;
use std::str::FromStr;

/// An attribute leaf: an integer, a list of sizes or axes, or a float constant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attr {
    Int(i64),
    List(Vec<usize>),
    /// The bits of an f64, so that the leaf can be hashed and ordered.
    Float(u64),
}

impl Attr {
    pub fn float(v: f64) -> Attr {
        // One zero: -0.0 and 0.0 are the same constant for every rule here.
        Attr::Float(if v == 0.0 { 0 } else { v.to_bits() })
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[usize]> {
        match self {
            Attr::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Attr::Float(b) => Some(f64::from_bits(*b)),
            _ => None,
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(i) => write!(f, "#{i}"),
            Attr::List(l) => {
                let parts: Vec<String> = l.iter().map(|x| x.to_string()).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Attr::Float(b) => write!(f, "f{:?}", f64::from_bits(*b)),
        }
    }
}

impl FromStr for Attr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix('#') {
            return rest.parse().map(Attr::Int).map_err(|e| format!("{e}"));
        }
        if let Some(rest) = s.strip_prefix('f') {
            return rest.parse::<f64>().map(Attr::float).map_err(|e| format!("{e}"));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if inner.is_empty() {
                return Ok(Attr::List(Vec::new()));
            }
            return inner
                .split(',')
                .map(|x| x.parse::<usize>())
                .collect::<Result<_, _>>()
                .map(Attr::List)
                .map_err(|e| format!("{e}"));
        }
        Err(format!("not an attribute: {s}"))
    }
}

define_language! {
    pub enum TensorLang {
        // (value, shape)
        "const" = Const([Id; 2]),
        // Elementwise: (x) and (a, b); the symbol is the op's mnemonic. Declared here, where
        // the per-op kinds were, so that e-nodes sort in the same order as before.
        Unary(Unary, [Id; 1]),
        Binary(Binary, [Id; 2]),
        // (shape, dims, x)
        "broadcast" = Broadcast([Id; 3]),
        // (shape, x)
        "reshape" = Reshape([Id; 2]),
        // (perm, x)
        "transpose" = Transpose([Id; 2]),
        // (axis, xs...)
        "concat" = Concat(Box<[Id]>),
        // (axis, start, end, x)
        "slice" = Slice([Id; 4]),
        // (axes, x)
        "reduce_sum" = ReduceSum([Id; 2]),
        "reduce_max" = ReduceMax([Id; 2]),
        "matmul" = MatMul([Id; 2]),
        // matmul(transpose(a), b) and matmul(a, transpose(b)), both with 2-D operands
        "matmul_tn" = MatMulTN([Id; 2]),
        "matmul_nt" = MatMulNT([Id; 2]),
        "gather" = Gather([Id; 2]),
        // (rows, values, index)
        "scatter_add" = ScatterAdd([Id; 3]),
        // (rows, values, index)
        "scatter_max" = ScatterMax([Id; 3]),
        "scatter_argmax" = ScatterArgmax([Id; 3]),
        // (len, cotangent, argmax)
        "argmax_scatter" = ArgmaxScatter([Id; 3]),
        // (classes, index)
        "one_hot" = OneHot([Id; 2]),
        // (stream, offset, shape, seed, step)
        "random_uniform" = RandomUniform([Id; 5]),
        Attr(Attr),
        Arg(Symbol),
    }
}

impl TensorLang {
    /// The children that are tensors (not attribute leaves), in operand order.
    pub fn tensor_children(&self) -> &[Id] {
        use TensorLang::*;
        match self {
            Const(_) | Attr(_) | Arg(_) => &[],
            Unary(_, xs) => xs,
            Binary(_, xs) | MatMul(xs) | MatMulTN(xs) | MatMulNT(xs) | Gather(xs) => xs,
            Broadcast(xs) => &xs[2..],
            Reshape(xs) | Transpose(xs) | ReduceSum(xs) | ReduceMax(xs) | OneHot(xs) => &xs[1..],
            Concat(xs) => &xs[1..],
            Slice(xs) => &xs[3..],
            ScatterAdd(xs) | ScatterMax(xs) | ScatterArgmax(xs) | ArgmaxScatter(xs) => &xs[1..],
            RandomUniform(xs) => &xs[3..],
        }
    }
}
