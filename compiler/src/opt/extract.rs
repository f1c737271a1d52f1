//! DAG-aware extraction: pick one e-node per needed e-class so that the total cost of
//! the resulting graph, counting each shared e-class ONCE, is small.
//!
//! In: a saturated e-graph, its roots, and the cost model. Out: the chosen e-node for
//! every e-class the roots need. egg's `Extractor` sums children's costs as trees, so a
//! product read by two messages would count twice and the rewrite that shares it would
//! look worse than it is. Here (greedy DAG extraction, as in extraction-gym's
//! "faster-greedy-dag") each e-class carries the SET of e-classes its best term needs with
//! their own costs, and a node's cost is the sum over the union of its children's sets.
//! A worklist re-examines parents when a class improves; nodes whose children's sets
//! contain the class itself (cycles) are skipped.

use super::analysis::{to_op, TensorGraph};
use super::cost::{cost, work, Cost, Work};
use super::lang::TensorLang;
use crate::ir::Type;
use egg::Id;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// Hashes an e-class id with one multiplication (Fx-style). The sets of needed classes
/// are most of extraction's work; std's SipHash (keyed per process) cost a third of it,
/// and a fixed hash also makes the sets' iteration order, hence the float sums of their
/// costs, the same in every run.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by e-class ids.
pub type IdMap<V> = HashMap<Id, V, BuildHasherDefault<IdHasher>>;

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

/// The classes a choice needs, each with its node's scalar cost.
type CostSet = Rc<IdMap<f64>>;

struct Best {
    node: TensorLang,
    set: CostSet,
    total: f64,
}

/// Chooses an e-node for every e-class reachable from `roots`.
pub fn extract(eg: &TensorGraph, roots: &[Id]) -> HashMap<Id, TensorLang> {
    // Parents of each class, to know whom to revisit.
    let mut parents: IdMap<Vec<Id>> = IdMap::default();
    for class in eg.classes() {
        for node in &class.nodes {
            for &c in node.tensor_children() {
                parents.entry(eg.find(c)).or_default().push(class.id);
            }
        }
    }
    let mut best: IdMap<Best> = IdMap::default();
    let mut queue: VecDeque<Id> = eg
        .classes()
        .filter(|c| c.data.ty.is_some() && c.nodes.iter().any(|n| n.tensor_children().is_empty()))
        .map(|c| c.id)
        .collect();
    let mut queued: HashSet<Id> = queue.iter().copied().collect();
    while let Some(class) = queue.pop_front() {
        queued.remove(&class);
        let mut improved = false;
        for node in &eg[class].nodes {
            let Some(own) = node_cost(eg, node, class) else {
                continue;
            };
            let children: Vec<Id> = node.tensor_children().iter().map(|&c| eg.find(c)).collect();
            if children.iter().any(|c| !best.contains_key(c)) {
                continue;
            }
            // Union of the children's sets, starting from the largest (cheapest copy).
            let largest = children.iter().max_by_key(|c| best[c].set.len()).copied();
            let mut set: IdMap<f64> = largest.map(|c| (*best[&c].set).clone()).unwrap_or_default();
            for c in &children {
                if Some(*c) != largest {
                    for (k, v) in best[c].set.iter() {
                        set.insert(*k, *v);
                    }
                }
            }
            if set.contains_key(&class) {
                continue; // a cycle through this class
            }
            set.insert(class, own.scalar());
            let total: f64 = set.values().sum();
            if best.get(&class).is_none_or(|b| total < b.total - 1e-9 * b.total.abs()) {
                best.insert(
                    class,
                    Best {
                        node: node.clone(),
                        set: Rc::new(set),
                        total,
                    },
                );
                improved = true;
            }
        }
        if improved {
            for &p in parents.get(&class).map(Vec::as_slice).unwrap_or(&[]) {
                let p = eg.find(p);
                if queued.insert(p) {
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
        let node = best.get(&class).expect("every root is extractable").node.clone();
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
