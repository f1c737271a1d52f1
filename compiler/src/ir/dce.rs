//! Dead-code elimination: drops nodes no output depends on, renumbering the rest.
//!
//! In: a graph (e.g. a training step whose backward pass computed cotangents nobody
//! reads). Out: the same graph without them; graph arguments are always kept, so the
//! signature does not change with the body.

use super::{Graph, Op, ValueId};

pub fn eliminate_dead_code(g: &Graph) -> Graph {
    let mut live = vec![false; g.nodes.len()];
    for (_, v) in &g.outputs {
        live[v.index()] = true;
    }
    for i in (0..g.nodes.len()).rev() {
        if matches!(g.nodes[i].op, Op::Arg { .. }) {
            live[i] = true;
        }
        if live[i] {
            for o in &g.nodes[i].operands {
                live[o.index()] = true;
            }
        }
    }
    let mut new_id = vec![ValueId(u32::MAX); g.nodes.len()];
    let mut out = Graph {
        name: g.name.clone(),
        ..Graph::default()
    };
    for (i, node) in g.nodes.iter().enumerate() {
        if live[i] {
            new_id[i] = ValueId(out.nodes.len() as u32);
            let mut node = node.clone();
            for o in &mut node.operands {
                *o = new_id[o.index()];
            }
            out.nodes.push(node);
        }
    }
    out.outputs = g.outputs.iter().map(|(n, v)| (n.clone(), new_id[v.index()])).collect();
    out
}
