//! Export: an evaluation step and a checkpoint's parameters as an ONNX model.
//!
//! In: the evaluation graph (no dropout) of a specialized model, its parameters by
//! name, and which output to export (`predictions`). Out: [`OnnxModel`], the bytes of an
//! `.onnx` file (opset 18, see `onnx.rs`) plus the inputs it takes and the outputs it
//! gives, each with its fixed shape; or a one-line error.
//!
//! Only what the output depends on is exported: labels, `@row_mask` and the loss drop
//! out. Parameters become initializers, `@positions` (0..n-1, filled by the runtime)
//! becomes one too, and every other input the output reads is a graph input under its
//! model name (`tokens`, `g.edges`, `g.graph_of`), with the dims the step was
//! specialized to. Each other IR value `%k` is the ONNX value `%k`; `onnx.rs` holds the
//! table from IR ops to ONNX nodes.

pub mod onnx;
mod proto;

pub use proto::{Elem, ValueInfo};

use crate::ir::{ArgKind, Graph, Op, Type, ValueId};
use crate::signature::{POSITIONS, SEED, SIZES, STEP};
use proto::{Data, Model};
use std::collections::BTreeMap;

/// An exported model.
pub struct OnnxModel {
    /// The serialized `ModelProto`.
    pub bytes: Vec<u8>,
    /// Graph inputs in the order the evaluation graph declares them.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// ONNX op types of the nodes, in order.
    pub op_types: Vec<&'static str>,
}

/// Exports `outputs` of `graph` (an evaluation graph) with `params` as initializers.
pub fn export(graph: &Graph, params: &BTreeMap<String, Vec<f32>>, outputs: &[&str]) -> Result<OnnxModel, String> {
    let roots: Vec<ValueId> = outputs
        .iter()
        .map(|name| {
            graph
                .output(name)
                .ok_or_else(|| format!("the evaluation graph has no output '{name}'"))
        })
        .collect::<Result<_, _>>()?;
    let live = live(graph, &roots);
    let mut m = Model::new();
    // Parameters and inputs keep their names; other values are `%k` as the IR prints
    // them (no model name starts with `%`).
    let names: Vec<String> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match &n.op {
            Op::Arg { name, .. } => name.clone(),
            _ => format!("%{i}"),
        })
        .collect();
    let name = |v: ValueId| names[v.index()].clone();
    for (i, node) in graph.nodes.iter().enumerate() {
        let id = ValueId(i as u32);
        if !live[i] {
            continue;
        }
        m.origin = format!("%{i}");
        match &node.op {
            Op::Arg {
                kind: ArgKind::Param,
                name: p,
                ty,
            } => {
                let values = params.get(p).ok_or_else(|| format!("no value for parameter '{p}'"))?;
                if values.len() != ty.numel() {
                    return Err(format!(
                        "parameter '{p}' has {} values, the model's {ty} takes {}",
                        values.len(),
                        ty.numel()
                    ));
                }
                m.initializer(&name(id), &ty.shape, Data::F32(values.clone()));
            }
            Op::Arg {
                kind: ArgKind::Input,
                name: input,
                ty,
            } if input == POSITIONS => {
                let positions = (0..ty.numel() as i32).collect();
                m.initializer(&name(id), &ty.shape, Data::I32(positions));
            }
            Op::Arg {
                kind: ArgKind::Input,
                name: input,
                ty,
            } => {
                if [SEED, STEP, SIZES].contains(&input.as_str()) {
                    return Err(format!(
                        "the output depends on '{input}', which the runtime fills per step; it has no ONNX export"
                    ));
                }
                m.inputs.push(info(input, ty));
            }
            Op::Arg { name: s, .. } => {
                return Err(format!(
                    "the graph reads optimizer state '{s}': not an evaluation graph"
                ))
            }
            _ => {
                let operands: Vec<String> = node.operands.iter().map(|&o| name(o)).collect();
                onnx::emit(&mut m, graph, node, &operands, &name(id))
                    .map_err(|e| format!("%{i} ({}): {e}", node.op.mnemonic()))?;
            }
        }
    }
    m.origin = "output".into();
    for (out, &v) in outputs.iter().zip(&roots) {
        if names.iter().enumerate().any(|(i, n)| live[i] && n == out) {
            return Err(format!(
                "the model has an input or parameter called '{out}', the ONNX output's name"
            ));
        }
        m.node_to("Identity", &[&name(v)], vec![], out);
        m.outputs.push(info(out, graph.ty(v)));
    }
    Ok(OnnxModel {
        bytes: m.encode(&graph.name, onnx::OPSET),
        inputs: m.inputs.clone(),
        outputs: m.outputs.clone(),
        op_types: m.op_types(),
    })
}

fn info(name: &str, ty: &Type) -> ValueInfo {
    ValueInfo {
        name: name.to_string(),
        elem: onnx::elem(ty.dtype),
        shape: ty.shape.clone(),
    }
}

/// Which nodes `roots` depend on.
fn live(graph: &Graph, roots: &[ValueId]) -> Vec<bool> {
    let mut live = vec![false; graph.nodes.len()];
    for r in roots {
        live[r.index()] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if live[i] {
            for o in &graph.nodes[i].operands {
                live[o.index()] = true;
            }
        }
    }
    live
}
