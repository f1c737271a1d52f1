//! Stable textual form of a [`Graph`], for `mpc compile --emit ir|grad` and snapshots.
//!
//! One line per node: `%id: type = op[attributes] operands`, then the named outputs.
//! Constants print with Rust's shortest round-trip float format, so the text is exact.

use super::{Graph, Op};
use std::fmt::Write;

fn list(xs: &[usize]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The bracketed attributes of an op, or "" when it has none.
fn attributes(op: &Op) -> String {
    match op {
        Op::Arg { name, .. } => format!(" \"{name}\""),
        Op::Const { value, .. } => format!(" {value:?}"),
        Op::Broadcast { dims, .. } => format!("[dims={}]", list(dims)),
        Op::Transpose { perm } => format!("[perm={}]", list(perm)),
        Op::Concat { axis } => format!("[axis={axis}]"),
        Op::Slice { axis, start, end } => format!("[axis={axis}, {start}..{end}]"),
        Op::ReduceSum { axes } | Op::ReduceMax { axes } => format!("[axes={}]", list(axes)),
        Op::ScatterAdd { rows } | Op::ScatterMax { rows } | Op::ScatterArgmax { rows } => format!("[rows={rows}]"),
        Op::ArgmaxScatter { len } => format!("[len={len}]"),
        Op::OneHot { classes } => format!("[classes={classes}]"),
        Op::RandomUniform { stream, offset: 0, .. } => format!("[stream={stream}]"),
        Op::RandomUniform { stream, offset, .. } => format!("[stream={stream}, offset={offset}]"),
        _ => String::new(),
    }
}

pub fn print_graph(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "graph {} {{", g.name);
    for (i, node) in g.nodes.iter().enumerate() {
        let _ = write!(
            out,
            "  %{i}: {} = {}{}",
            node.ty,
            node.op.mnemonic(),
            attributes(&node.op)
        );
        for (k, o) in node.operands.iter().enumerate() {
            let _ = write!(out, "{}{o}", if k == 0 { " " } else { ", " });
        }
        out.push('\n');
    }
    out.push_str("  outputs {\n");
    for (name, v) in &g.outputs {
        let _ = writeln!(out, "    {name} = {v}");
    }
    out.push_str("  }\n}\n");
    out
}
