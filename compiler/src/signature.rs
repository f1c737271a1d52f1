//! A step's interface, typed: what each argument and each output of a step graph is.
//!
//! In: built while the graph is built (lowering names the forward outputs, autodiff and
//! the optimizer name the new parameters and state). Out: read by the runtime, which
//! feeds arguments and routes outputs by their [`Role`] instead of parsing names. The
//! graph's output names are derived from the roles ([`Role::output_name`]), so the two
//! never disagree.

use crate::ir::{ArgKind, Graph, Type};
use std::fmt;

/// The 1-based step count, an i32 scalar input (Adam's `t`, dropout's key).
pub const STEP: &str = "@step";
/// The run's seed, an i32 scalar input (dropout's key).
pub const SEED: &str = "@seed";
/// The positions `0..n-1`, an i32 `[n]` input (causal masks): the runtime fills it to
/// the length the step declares.
pub const POSITIONS: &str = "@positions";
/// For a batch of graphs, `f32[G]`: 1.0 for each graph slot that holds a graph, 0.0 for
/// the empty slots of a partial batch (a regression loss averages over the real ones).
pub const ROW_MASK: &str = "@row_mask";
/// A batch of graphs' real counts, `i32[2]`: its nodes and its edges (without the
/// padding), which kernels compiled with dynamic sizes run over (`Program::dynamic`).
pub const SIZES: &str = "@sizes";
/// The input of a batch of graphs `g` that says which graph each node belongs to:
/// `i32[N]`, `G` for the padding nodes after the last graph (`g.graph_of`).
pub fn graph_of(graph: &str) -> String {
    format!("{graph}.graph_of")
}

/// What a step output is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The scalar loss.
    Loss,
    /// The scores the loss compares with the labels, one row per example.
    Predictions,
    /// d loss / d parameter (graphs built for checks, not training steps).
    Gradient(String),
    /// A parameter's value after the optimizer update.
    NewParam(String),
    /// An optimizer state slot's value after the update (`adam.m:<param>` ...).
    NewState(String),
}

impl Role {
    /// The graph output's name: `loss`, `predictions`, `grad:<p>`, `param:<p>`, `state:<s>`.
    pub fn output_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Loss => f.write_str("loss"),
            Role::Predictions => f.write_str("predictions"),
            Role::Gradient(p) => write!(f, "grad:{p}"),
            Role::NewParam(p) => write!(f, "param:{p}"),
            Role::NewState(s) => write!(f, "state:{s}"),
        }
    }
}

/// A step graph's arguments by kind and its outputs by role, in graph order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Signature {
    /// Data fed per step: model inputs, labels, `@seed`, `@step`.
    pub inputs: Vec<(String, Type)>,
    /// Trainable parameters (checkpoint keys).
    pub params: Vec<(String, Type)>,
    /// Optimizer state.
    pub state: Vec<(String, Type)>,
    /// (graph output name, role).
    pub outputs: Vec<(String, Role)>,
}

impl Signature {
    /// The arguments of `graph`, and `roles` as its outputs (each must be one of the
    /// graph's outputs; the graph builders guarantee it).
    pub fn new(graph: &Graph, roles: Vec<Role>) -> Signature {
        let args = |kind| {
            graph
                .args(kind)
                .map(|(_, n, t): (_, &str, &Type)| (n.to_string(), t.clone()))
                .collect()
        };
        let outputs = roles.into_iter().map(|r| (r.output_name(), r)).collect::<Vec<_>>();
        debug_assert!(outputs.iter().all(|(n, _)| graph.output(n).is_some()));
        Signature {
            inputs: args(ArgKind::Input),
            params: args(ArgKind::Param),
            state: args(ArgKind::State),
            outputs,
        }
    }

    /// The role of the output called `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Whether `name` is a parameter or optimizer-state argument (they persist across
    /// steps; engines may keep them resident).
    pub fn is_variable(&self, name: &str) -> bool {
        self.params.iter().chain(&self.state).any(|(n, _)| n == name)
    }
}

/// A step graph with its signature.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub graph: Graph,
    pub signature: Signature,
}

/// A step reads as its graph (printing, interpreting, optimizing it); the signature is
/// there for whoever runs it.
impl std::ops::Deref for Step {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.graph
    }
}
