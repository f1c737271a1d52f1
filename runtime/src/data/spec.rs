//! What the model expects of each data file: one [`InputSpec`] per input and label.
//!
//! In: the checked model and its concrete dim values. Out: the specs, in declaration
//! order: dtype, row shape (the declared shape without the batch axis), vocab and
//! classes, and how errors describe the declaration (`input 'tokens' is i32[B, T], T =
//! 32`). Inputs whose first axis is not the batch axis are "whole": read once with
//! exactly their declared shape and passed with every batch. A graph `g`'s edge list is
//! the whole input `g.edges`, `i32[2, E]`, whose spec knows the graph's node count.

use mpc_compiler::ir::DType;
use mpc_compiler::specialize::show_shape;
use mpc_compiler::specialize::{concrete, DimValues};
use mpc_compiler::CheckedModel;

/// What one input or label of the model expects of its data file.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    /// The declared shape without the batch axis, with dims specialized.
    pub row_shape: Vec<usize>,
    /// `input 'tokens' is i32[B, T], T = 32`: how errors describe the declaration.
    pub declared: String,
    pub vocab: Option<usize>,
    pub classes: Option<usize>,
    pub is_label: bool,
    /// No batch axis: `row_shape` is the whole declared shape, read once.
    pub whole: bool,
    /// The edge list `g.edges` of a graph: its values are node indices.
    pub graph: Option<GraphRef>,
    /// One row per node of a batch of graphs (first axis the graph's `nodes`): read as
    /// the rows of every graph of the data set, one after the other.
    pub per_node: bool,
}

/// The graph whose edge list an input is.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphRef {
    /// The graph's name (`g` for the input `g.edges`).
    pub name: String,
    /// Its node count: edge indices lie in `[0, nodes)`, and the data has `nodes` rows.
    pub nodes: usize,
    /// `N = 34`: the dim that sets it, for messages.
    pub nodes_dim: String,
    /// A batch of graphs (`graphs G`): the data is a data set of graphs, and `nodes` a
    /// capacity.
    pub batched: bool,
}

impl InputSpec {
    pub(super) fn what(&self) -> &'static str {
        if self.is_label {
            "label"
        } else {
            "input"
        }
    }

    pub(super) fn width(&self) -> usize {
        self.row_shape.iter().product()
    }

    /// `i32 [rows, 32]`, or for a whole input its shape: `i32 [2, 156]`.
    pub(super) fn expected(&self) -> String {
        let mut dims = if self.whole { vec![] } else { vec!["rows".to_string()] };
        dims.extend(self.row_shape.iter().map(|d| d.to_string()));
        format!("{} [{}]", self.dtype, dims.join(", "))
    }

    /// Edges in the edge list of a graph.
    pub(super) fn edge_count(&self) -> usize {
        self.row_shape.get(1).copied().unwrap_or(0)
    }
}

/// Whether `specs` are a graph model's: its rows are the nodes of a graph.
pub fn is_graph(specs: &[InputSpec]) -> bool {
    specs.iter().any(|s| s.graph.as_ref().is_some_and(|g| !g.batched))
}

/// The batch of graphs whose data set `specs` read (`graph g { .., graphs G }`).
pub fn batched_graph(specs: &[InputSpec]) -> Option<&GraphRef> {
    specs.iter().find_map(|s| s.graph.as_ref().filter(|g| g.batched))
}

/// The specs of every input and label, in declaration order. Inputs whose first axis
/// is the batch dim (the label's first axis) are read as rows; the others (a graph's
/// `g.edges`) are whole. A label must have the batch axis.
pub fn input_specs(model: &CheckedModel, dims: &DimValues) -> Result<Vec<InputSpec>, String> {
    let batch = model
        .batch_dim
        .clone()
        .or_else(|| model.inputs.first().and_then(|i| i.ty.shape.first().cloned()));
    model
        .inputs
        .iter()
        .map(|i| {
            let what = if i.is_label { "label" } else { "input" };
            let declared_ty = format!("{}{}", i.ty.dtype, show_shape(&i.ty.shape));
            // A batch of graphs reads its node inputs (first axis the nodes) and edge
            // features per node and per edge of each graph.
            let batched = model.graphs.iter().find(|g| g.graphs.is_some());
            let per_node = batched.is_some_and(|g| i.ty.shape.first() == Some(&g.nodes) && !i.is_label);
            let per_edge = batched.is_some_and(|g| g.features_input.as_deref() == Some(i.name.as_str()));
            let rows =
                i.ty.shape
                    .split_first()
                    .filter(|(f, _)| Some(*f) == batch.as_ref() || per_node || per_edge);
            if rows.is_none() && i.is_label {
                let b = batch.as_ref().map(|b| b.to_string()).unwrap_or_default();
                return Err(format!(
                    "{what} '{}' is {declared_ty}: its first axis is not the batch axis {b}, so it cannot be read \
                     as rows of data",
                    i.name
                ));
            }
            let whole = rows.is_none();
            let rest = match rows {
                Some((_, rest)) => rest,
                None => &i.ty.shape[..],
            };
            // `g.edges: i32[2, E]`: the edge list of graph `g`, whose nodes are the rows.
            let graph = match model.graphs.iter().find(|g| g.edges_input == i.name) {
                Some(g) => {
                    let nodes = concrete(std::slice::from_ref(&g.nodes), dims)?[0];
                    let n = g.nodes.to_string();
                    Some(GraphRef {
                        name: g.name.clone(),
                        nodes,
                        nodes_dim: if n.parse::<usize>().is_ok() {
                            n
                        } else {
                            format!("{n} = {nodes}")
                        },
                        batched: g.graphs.is_some(),
                    })
                }
                None => None,
            };
            // Name the dims the row shape uses, with their values.
            let text = show_shape(rest);
            let used: Vec<String> = model
                .dims
                .iter()
                .filter(|d| {
                    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .any(|w| w == d.name)
                })
                .map(|d| format!("{} = {}", d.name, dims.get(&d.name).copied().unwrap_or(0)))
                .collect();
            let mut declared = format!("{what} '{}' is {declared_ty}", i.name);
            if !used.is_empty() {
                declared += &format!(", {}", used.join(", "));
            }
            Ok(InputSpec {
                name: i.name.clone(),
                dtype: i.ty.dtype,
                row_shape: concrete(rest, dims)?,
                declared,
                vocab: i.vocab,
                classes: i.classes,
                is_label: i.is_label,
                whole,
                graph,
                per_node,
            })
        })
        .collect()
}
