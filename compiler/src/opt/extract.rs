//! DAG-aware extraction: pick one e-node per needed e-class so that the total cost of
//! the resulting graph, counting each shared e-class ONCE, is small.
//!
//! In: a saturated e-graph, its roots, and the cost model. Out: the chosen e-node for
//! every e-class the roots need. egg's `Extractor` sums children's costs as trees, so a
//! product read by two messages would count twice and the rewrite that shares it would
//! look worse than it is. Here (greedy DAG extraction, as in extraction-gym's
//! "faster-greedy-dag") each e-class carries the SET of e-classes its best term needs,
//! and a node's cost is the sum of the own costs of the classes in the union of its
//! children's sets and itself. A worklist re-examines parents when a class improves;
//! nodes whose children's sets contain the class itself (cycles) are skipped.
//!
//! The sets are bitsets over class ids (a training step's e-graph has a few thousand
//! ids: a union is a few dozen word ORs), summed in id order with each class's own cost
//! as its best node has it when the sum is taken. Hash sets of (class, cost) pairs,
//! cloned for every node examined, were 40% of the transformer's optimization time.

use super::analysis::{to_op, TensorGraph};
use super::cost::{cost, work, Cost, Work};
use super::lang::TensorLang;
use crate::ir::Type;
use egg::Id;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// The cost of one e-node on its own (its children's costs not included).
pub fn node_cost(eg: &TensorGraph, node: &TensorLang, class: Id) -> Option<Cost> {
    let out = eg[class].data.ty.as_ref()?;
    let children: Vec<(&Type, bool)> = node
        .tensor_children()
        .iter()
        .map(|&c| {
            Some((
                eg[c].data.ty.as_ref()?,
                eg[c].nodes.iter().any(|n| matches!(n, TensorLang::Const(_))),
            ))
        })
        .collect::<Option<_>>()?;
    let types: Vec<&Type> = children.iter().map(|(t, _)| *t).collect();
    let w = match node {
        TensorLang::MatMulTN(_) => Work::MatMul {
            m: types[0].shape[1],
            k: types[0].shape[0],
            n: types[1].shape[1],
        },
        TensorLang::MatMulNT(_) => Work::MatMul {
            m: types[0].shape[0],
            k: types[0].shape[1],
            n: types[1].shape[0],
        },
        _ => work(&to_op(node, |c| eg[c].data.attr.clone(), &eg.analysis.args)?, &types),
    };
    Some(cost(w, &children, out))
}

/// The classes a choice needs: bit `id` of word `id / 64`.
#[derive(Clone)]
struct ClassSet(Vec<u64>);

impl ClassSet {
    fn empty(ids: usize) -> ClassSet {
        ClassSet(vec![0; ids.div_ceil(64)])
    }
    fn contains(&self, id: usize) -> bool {
        self.0[id / 64] >> (id % 64) & 1 == 1
    }
    fn insert(&mut self, id: usize) {
        self.0[id / 64] |= 1 << (id % 64);
    }
    fn union_with(&mut self, other: &ClassSet) {
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w |= o;
        }
    }
    /// The classes in id order.
    fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let bit = w.trailing_zeros() as usize;
                    w &= w - 1;
                    64 * k + bit
                })
            })
        })
    }
}

struct Best {
    node: TensorLang,
    /// The node's own cost, scalar.
    own: f64,
    set: Rc<ClassSet>,
    total: f64,
}

/// Chooses an e-node for every e-class reachable from `roots`.
pub fn extract(eg: &TensorGraph, roots: &[Id]) -> HashMap<Id, TensorLang> {
    let ids = eg.classes().map(|c| usize::from(c.id) + 1).max().unwrap_or(0);
    // Parents of each class, to know whom to revisit.
    let mut parents: Vec<Vec<Id>> = vec![Vec::new(); ids];
    for class in eg.classes() {
        for node in &class.nodes {
            for &c in node.tensor_children() {
                parents[usize::from(eg.find(c))].push(class.id);
            }
        }
    }
    let mut best: Vec<Option<Best>> = (0..ids).map(|_| None).collect();
    let mut queue: VecDeque<Id> = eg
        .classes()
        .filter(|c| c.data.ty.is_some() && c.nodes.iter().any(|n| n.tensor_children().is_empty()))
        .map(|c| c.id)
        .collect();
    let mut queued = vec![false; ids];
    for &c in &queue {
        queued[usize::from(c)] = true;
    }
    while let Some(class) = queue.pop_front() {
        let at = usize::from(class);
        queued[at] = false;
        let mut improved = false;
        for node in &eg[class].nodes {
            let Some(own) = node_cost(eg, node, class) else {
                continue;
            };
            let children: Vec<usize> = node
                .tensor_children()
                .iter()
                .map(|&c| usize::from(eg.find(c)))
                .collect();
            if children.iter().any(|&c| best[c].is_none()) {
                continue;
            }
            let mut set = ClassSet::empty(ids);
            for &c in &children {
                set.union_with(&best[c].as_ref().expect("checked above").set);
            }
            if set.contains(at) {
                continue; // a cycle through this class
            }
            set.insert(at);
            let own = own.scalar();
            let total: f64 = set
                .ids()
                .map(|c| {
                    if c == at {
                        own
                    } else {
                        best[c].as_ref().map_or(0.0, |b| b.own)
                    }
                })
                .sum();
            if best[at].as_ref().is_none_or(|b| total < b.total - 1e-9 * b.total.abs()) {
                best[at] = Some(Best {
                    node: node.clone(),
                    own,
                    set: Rc::new(set),
                    total,
                });
                improved = true;
            }
        }
        if improved {
            for &p in &parents[at] {
                let p = eg.find(p);
                if !std::mem::replace(&mut queued[usize::from(p)], true) {
                    queue.push_back(p);
                }
            }
        }
    }
    // Keep the classes the roots actually need.
    let mut choice = HashMap::new();
    let mut stack: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    while let Some(class) = stack.pop() {
        if choice.contains_key(&class) {
            continue;
        }
        let node = best[usize::from(class)]
            .as_ref()
            .expect("every root is extractable")
            .node
            .clone();
        stack.extend(node.tensor_children().iter().map(|&c| eg.find(c)));
        choice.insert(class, node);
    }
    choice
}

/// Whether the chosen nodes form a DAG (greedy choices can, rarely, close a cycle when a
/// class improves after its parents were decided).
pub fn is_acyclic(eg: &TensorGraph, choice: &HashMap<Id, TensorLang>) -> bool {
    let mut indegree: HashMap<Id, usize> = choice.keys().map(|&k| (k, 0)).collect();
    for node in choice.values() {
        for &c in node.tensor_children() {
            *indegree.get_mut(&eg.find(c)).expect("children are chosen") += 1;
        }
    }
    let mut ready: Vec<Id> = indegree.iter().filter(|(_, &d)| d == 0).map(|(&k, _)| k).collect();
    let mut seen = 0;
    while let Some(class) = ready.pop() {
        seen += 1;
        for &c in choice[&class].tensor_children() {
            let d = indegree.get_mut(&eg.find(c)).expect("children are chosen");
            *d -= 1;
            if *d == 0 {
                ready.push(eg.find(c));
            }
        }
    }
    seen == choice.len()
}
