//! IR graph <-> e-graph.
//!
//! In: an IR [`Graph`] (checked with `validate` first). Out: an e-graph holding every
//! node, with the e-class of each output as a root. Back: a choice of one e-node per
//! needed e-class (from extraction) becomes an IR graph through the hash-consing
//! builder; graph arguments keep their original order, used or not, so the signature
//! never changes.

use super::analysis::{to_op, TensorAnalysis, TensorGraph};
use super::lang::{Attr, TensorLang};
use crate::ir::{Builder, Graph, Op, ValueId};
use egg::{Id, Symbol};
use std::collections::HashMap;

/// The e-graph of `g` and the e-class of each of its nodes.
pub fn to_egraph(g: &Graph) -> (TensorGraph, Vec<Id>) {
    let mut analysis = TensorAnalysis::default();
    for node in &g.nodes {
        if let Op::Arg { kind, name, ty } = &node.op {
            analysis.args.insert(Symbol::from(name.as_str()), (*kind, ty.clone()));
        }
    }
    let mut eg = TensorGraph::new(analysis);
    let mut ids: Vec<Id> = Vec::with_capacity(g.nodes.len());
    for node in &g.nodes {
        let x = |k: usize| ids[node.operands[k].index()];
        let mut attr = |a: Attr| eg.add(TensorLang::Attr(a));
        let list = |v: &[usize]| Attr::List(v.to_vec());
        let int = |v: usize| Attr::Int(v as i64);
        use TensorLang as T;
        let enode = match &node.op {
            Op::Arg { name, .. } => T::Arg(Symbol::from(name.as_str())),
            Op::Const { value, ty } => T::Const([attr(Attr::float(*value)), attr(list(&ty.shape))]),
            Op::Unary(op) => T::Unary(*op, [x(0)]),
            Op::Binary(op) => T::Binary(*op, [x(0), x(1)]),
            Op::Broadcast { shape, dims } => T::Broadcast([attr(list(shape)), attr(list(dims)), x(0)]),
            Op::Reshape { shape } => T::Reshape([attr(list(shape)), x(0)]),
            Op::Transpose { perm } => T::Transpose([attr(list(perm)), x(0)]),
            Op::Concat { axis } => {
                let mut children = vec![attr(int(*axis))];
                children.extend((0..node.operands.len()).map(x));
                T::Concat(children.into_boxed_slice())
            }
            Op::Slice { axis, start, end } => T::Slice([attr(int(*axis)), attr(int(*start)), attr(int(*end)), x(0)]),
            Op::ReduceSum { axes } => T::ReduceSum([attr(list(axes)), x(0)]),
            Op::ReduceMax { axes } => T::ReduceMax([attr(list(axes)), x(0)]),
            Op::MatMul => T::MatMul([x(0), x(1)]),
            Op::Gather => T::Gather([x(0), x(1)]),
            Op::ScatterAdd { rows } => T::ScatterAdd([attr(int(*rows)), x(0), x(1)]),
            Op::ScatterMax { rows } => T::ScatterMax([attr(int(*rows)), x(0), x(1)]),
            Op::ScatterArgmax { rows } => T::ScatterArgmax([attr(int(*rows)), x(0), x(1)]),
            Op::ArgmaxScatter { len } => T::ArgmaxScatter([attr(int(*len)), x(0), x(1)]),
            Op::OneHot { classes } => T::OneHot([attr(int(*classes)), x(0)]),
            Op::RandomUniform { stream, offset, ty } => T::RandomUniform([
                attr(Attr::Int(*stream as i64)),
                attr(Attr::Int(*offset as i64)),
                attr(list(&ty.shape)),
                x(0),
                x(1),
            ]),
        };
        ids.push(eg.add(enode));
    }
    eg.rebuild();
    (eg, ids)
}

/// Builds the IR graph that `choice` (an e-node per e-class) selects for `original`'s
/// outputs, whose e-classes are `roots`.
pub fn from_choice(eg: &TensorGraph, choice: &HashMap<Id, TensorLang>, original: &Graph, roots: &[Id]) -> Graph {
    let mut b = Builder::new(&original.name);
    let mut built: HashMap<Id, ValueId> = HashMap::new();
    for node in &original.nodes {
        if let Op::Arg { kind, name, ty } = &node.op {
            let v = b.arg(*kind, name.clone(), ty.clone());
            built.insert(
                eg.find(
                    eg.lookup(TensorLang::Arg(Symbol::from(name.as_str())))
                        .expect("argument in e-graph"),
                ),
                v,
            );
        }
    }
    for ((name, _), &root) in original.outputs.iter().zip(roots) {
        let v = build(eg, choice, eg.find(root), &mut b, &mut built);
        b.output(name.clone(), v);
    }
    b.finish()
}

/// Builds class `id` (children first), with an explicit stack: graphs can be deep.
fn build(
    eg: &TensorGraph,
    choice: &HashMap<Id, TensorLang>,
    id: Id,
    b: &mut Builder,
    built: &mut HashMap<Id, ValueId>,
) -> ValueId {
    let mut stack = vec![(id, false)];
    while let Some((class, children_done)) = stack.pop() {
        if built.contains_key(&class) {
            continue;
        }
        let node = &choice[&class];
        if !children_done {
            stack.push((class, true));
            for &c in node.tensor_children() {
                let c = eg.find(c);
                if !built.contains_key(&c) {
                    stack.push((c, false));
                }
            }
            continue;
        }
        let xs: Vec<ValueId> = node.tensor_children().iter().map(|c| built[&eg.find(*c)]).collect();
        let v = match node {
            TensorLang::MatMulTN(_) => {
                let at = b.transpose(xs[0], &[1, 0]);
                b.matmul(at, xs[1])
            }
            TensorLang::MatMulNT(_) => {
                let bt = b.transpose(xs[1], &[1, 0]);
                b.matmul(xs[0], bt)
            }
            _ => {
                let op =
                    to_op(node, |c| eg[c].data.attr.clone(), &eg.analysis.args).expect("extracted e-node is an IR op");
                b.push(op, &xs)
            }
        };
        built.insert(class, v);
    }
    built[&id]
}
