//! The e-class analysis: every e-class knows its tensor type, its attribute value (for
//! attribute leaves) and, when all its elements are one known number, that constant.
//!
//! In: e-nodes as egg adds them. Out: [`Data`] per e-class. Types come from the IR's own
//! rules (`ir::infer`), so a rewrite that would change a type is caught at once (the
//! merge asserts equal types). Constants fold: an e-class found to be a constant gets a
//! `const` e-node, so `x * (2 * 0.5)` meets the `x * 1` rule.

use super::lang::{Attr, TensorLang};
use crate::ir::{infer::infer_type, ArgKind, DType, Op, Type};
use egg::{Analysis, DidMerge, EGraph, Id, Symbol};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub ty: Option<Type>,
    pub attr: Option<Attr>,
    pub constant: Option<f64>,
}

#[derive(Default, Clone)]
pub struct TensorAnalysis {
    /// Graph arguments by name: their kind and type.
    pub args: HashMap<Symbol, (ArgKind, Type)>,
}

pub type TensorGraph = EGraph<TensorLang, TensorAnalysis>;

/// The IR op of an e-node, given its children's attributes; `None` for attribute leaves,
/// the e-graph-only matmul forms, and malformed attributes.
pub fn to_op(
    node: &TensorLang,
    attr: impl Fn(Id) -> Option<Attr>,
    args: &HashMap<Symbol, (ArgKind, Type)>,
) -> Option<Op> {
    use TensorLang as T;
    let list = |id: Id| attr(id).and_then(|a| a.as_list().map(|l| l.to_vec()));
    let int = |id: Id| attr(id).and_then(|a| a.as_int()).and_then(|i| usize::try_from(i).ok());
    Some(match node {
        T::Attr(_) | T::MatMulTN(_) | T::MatMulNT(_) => return None,
        T::Arg(name) => {
            let (kind, ty) = args.get(name)?.clone();
            Op::Arg {
                kind,
                name: name.to_string(),
                ty,
            }
        }
        T::Const([v, s]) => Op::Const {
            value: attr(*v)?.as_float()?,
            ty: Type::f32(list(*s)?),
        },
        T::Unary(op, _) => Op::Unary(*op),
        T::Binary(op, _) => Op::Binary(*op),
        T::Broadcast([s, d, _]) => Op::Broadcast {
            shape: list(*s)?,
            dims: list(*d)?,
        },
        T::Reshape([s, _]) => Op::Reshape { shape: list(*s)? },
        T::Transpose([p, _]) => Op::Transpose { perm: list(*p)? },
        T::Concat(xs) => Op::Concat { axis: int(xs[0])? },
        T::Slice([a, s, e, _]) => Op::Slice {
            axis: int(*a)?,
            start: int(*s)?,
            end: int(*e)?,
        },
        T::ReduceSum([a, _]) => Op::ReduceSum { axes: list(*a)? },
        T::ReduceMax([a, _]) => Op::ReduceMax { axes: list(*a)? },
        T::MatMul(_) => Op::MatMul,
        T::Gather(_) => Op::Gather,
        T::ScatterAdd([r, _, _]) => Op::ScatterAdd { rows: int(*r)? },
        T::ScatterMax([r, _, _]) => Op::ScatterMax { rows: int(*r)? },
        T::ScatterArgmax([r, _, _]) => Op::ScatterArgmax { rows: int(*r)? },
        T::ArgmaxScatter([l, _, _]) => Op::ArgmaxScatter { len: int(*l)? },
        T::OneHot([c, _]) => Op::OneHot { classes: int(*c)? },
        T::RandomUniform([st, o, s, _, _]) => Op::RandomUniform {
            stream: int(*st)? as u32,
            offset: int(*o)? as u32,
            ty: Type::f32(list(*s)?),
        },
    })
}

fn infer(egraph: &TensorGraph, node: &TensorLang) -> Option<Type> {
    let ty = |id: Id| egraph[id].data.ty.clone();
    match node {
        TensorLang::Attr(_) => None,
        TensorLang::MatMulTN([a, b]) | TensorLang::MatMulNT([a, b]) => {
            let (a, b) = (ty(*a)?, ty(*b)?);
            let (m, k1) = if matches!(node, TensorLang::MatMulTN(_)) {
                (a.shape.get(1)?, a.shape.first()?)
            } else {
                (a.shape.first()?, a.shape.get(1)?)
            };
            let (k2, n) = if matches!(node, TensorLang::MatMulNT(_)) {
                (b.shape.get(1)?, b.shape.first()?)
            } else {
                (b.shape.first()?, b.shape.get(1)?)
            };
            (a.shape.len() == 2 && b.shape.len() == 2 && k1 == k2 && a.dtype == DType::F32).then(|| Type::f32([*m, *n]))
        }
        _ => {
            let op = to_op(node, |id| egraph[id].data.attr.clone(), &egraph.analysis.args)?;
            let types: Vec<Type> = node.tensor_children().iter().map(|&c| ty(c)).collect::<Option<_>>()?;
            let refs: Vec<&Type> = types.iter().collect();
            infer_type(&op, &refs).ok()
        }
    }
}

/// The constant an e-node evaluates to, when its inputs are constants.
fn fold(egraph: &TensorGraph, node: &TensorLang) -> Option<f64> {
    use TensorLang as T;
    let c = |id: &Id| egraph[*id].data.constant;
    let numel = |id: &Id| egraph[*id].data.ty.as_ref().map(|t| t.numel());
    match node {
        T::Const([v, _]) => egraph[*v].data.attr.as_ref()?.as_float(),
        T::Unary(op, [x]) => Some(op.eval(c(x)?)),
        T::Binary(op, [a, b]) => Some(op.eval(c(a)?, c(b)?)),
        T::Broadcast([_, _, x]) | T::Reshape([_, x]) | T::Transpose([_, x]) | T::Slice([_, _, _, x]) => c(x),
        T::ReduceMax([_, x]) => c(x),
        T::ReduceSum([_, x]) => {
            let (inner, total) = (numel(x)?, c(x)?);
            let out_numel = infer(egraph, node)?.numel();
            Some(total * (inner / out_numel.max(1)) as f64)
        }
        T::Concat(xs) => {
            let first = c(&xs[1])?;
            xs[2..].iter().all(|x| c(x) == Some(first)).then_some(first)
        }
        _ => None,
    }
}

impl Analysis<TensorLang> for TensorAnalysis {
    type Data = Data;

    fn make(egraph: &mut TensorGraph, node: &TensorLang, _id: Id) -> Data {
        let attr = match node {
            TensorLang::Attr(a) => Some(a.clone()),
            _ => None,
        };
        let ty = infer(egraph, node);
        let constant = if ty.as_ref().is_some_and(|t| t.dtype == DType::F32) {
            fold(egraph, node).filter(|v| v.is_finite())
        } else {
            None
        };
        Data { ty, attr, constant }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        assert_eq!(a.ty, b.ty, "a rewrite merged tensors of different types");
        let mut changed_a = false;
        if a.constant.is_none() && b.constant.is_some() {
            a.constant = b.constant;
            changed_a = true;
        }
        let changed_b = a.constant.is_some() && b.constant.is_none();
        DidMerge(changed_a, changed_b)
    }

    fn modify(egraph: &mut TensorGraph, id: Id) {
        let data = &egraph[id].data;
        let (Some(value), Some(ty)) = (data.constant, data.ty.clone()) else {
            return;
        };
        if egraph[id].nodes.iter().any(|n| matches!(n, TensorLang::Const(_))) {
            return;
        }
        let v = egraph.add(TensorLang::Attr(Attr::float(value)));
        let s = egraph.add(TensorLang::Attr(Attr::List(ty.shape)));
        let c = egraph.add(TensorLang::Const([v, s]));
        egraph.union(id, c);
    }
}
