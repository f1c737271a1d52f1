//! The checked model: what the checker proves and lowering consumes.
//!
//! In: built by `check` from the AST. Out: read by `lower` (to IR), `mpc inspect`
//! (parameters) and the runtime (inputs, labels, train settings). Every expression has
//! a symbolic type; every parameter has a stable name, a symbolic shape and an init.

use super::dim::Dim;
use crate::autodiff::Optimizer;
use crate::ir::DType;
use crate::syntax::ast::Span;

/// A symbolic tensor type.
#[derive(Clone, Debug, PartialEq)]
pub struct SymType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DimInfo {
    pub name: String,
    pub default: Option<usize>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub ty: SymType,
    /// `vocab N`: token ids must lie in `[0, N)`.
    pub vocab: Option<usize>,
    /// `classes N`: labels must lie in `[0, N)`.
    pub classes: Option<usize>,
    /// `pad P`: token id `P` marks padding, which `mask: tokens` leaves out.
    pub pad: Option<usize>,
    pub is_label: bool,
    pub span: Span,
}

/// Token ids (an input declared with `pad P`) whose pad positions an operation leaves out.
#[derive(Clone, Debug, PartialEq)]
pub struct PadMask {
    pub tokens: Box<TExpr>,
    pub pad: usize,
}

/// `layer_norm`'s epsilon, PyTorch's default.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// How a parameter's initial values are drawn (PyTorch's defaults, documented in the
/// language reference).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// N(0, std^2): embedding tables (std 1).
    Normal { std: f64 },
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): linear weights and biases.
    UniformFanIn { fan_in: Dim },
    /// U(-a, a), a = sqrt(6 / (fan_in + fan_out)): `nn.init.xavier_uniform_`, as
    /// `nn.MultiheadAttention` initializes its input projection.
    XavierUniform { fan_in: Dim, fan_out: Dim },
    /// Every element `value`: layer norm's weight (1) and bias (0).
    Constant { value: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Stable name, the checkpoint key: `<scope>.<builtin>[_k].<weight|bias>`.
    pub name: String,
    pub shape: Vec<Dim>,
    pub init: Init,
    /// The call that created it.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    /// Exact: `0.5 x (1 + erf(x / sqrt 2))`, PyTorch's default.
    Gelu,
    /// `x` for `x > 0`, `exp(x) - 1` elsewhere (`nn.ELU()`, alpha 1).
    Elu,
    /// `approximate: tanh`.
    GeluTanh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    pub kind: TKind,
    pub ty: SymType,
}

/// Meaningful operations, after name resolution; axes are normalized (non-negative).
#[derive(Clone, Debug, PartialEq)]
pub enum TKind {
    /// A declared input or label.
    Input(String),
    /// The value of binding number `i` in [`CheckedModel::bindings`] (computed once).
    Binding(usize),
    /// A number in arithmetic, broadcast to the other operand.
    Scalar(f64),
    /// Elementwise arithmetic; operands are right-aligned and broadcast (numpy rules
    /// without size-1 stretching: missing leading axes only).
    Arith(Arith, Box<TExpr>, Box<TExpr>),
    Neg(Box<TExpr>),
    Embed {
        tokens: Box<TExpr>,
        table: String,
    },
    /// `embed(positions(x), D)`: row `t` of `table` at every `[b, t]` of `x`'s first two
    /// axes (learned positional embeddings; no index tensor exists).
    PositionEmbed {
        x: Box<TExpr>,
        table: String,
    },
    Linear {
        x: Box<TExpr>,
        weight: String,
        /// `None` for `linear(x, n, bias: false)`.
        bias: Option<String>,
    },
    /// `self_attention(x, heads: H)` on `[B, T, D]`: `nn.MultiheadAttention(D, H,
    /// batch_first=True)` with query = key = value = x. Weights `[D, 3D]` (q, k, v
    /// projections side by side) and `[D, D]`, biases `[3D]` and `[D]`.
    SelfAttention {
        x: Box<TExpr>,
        heads: Dim,
        /// Position `t` attends to positions `0..=t` only (a decoder's mask).
        causal: bool,
        /// `mask: tokens`: keys whose token is the pad id get no attention.
        mask: Option<PadMask>,
        in_weight: String,
        in_bias: String,
        out_weight: String,
        out_bias: String,
    },
    /// `layer_norm(x)`: the last axis normalized (eps [`LAYER_NORM_EPS`]), scaled by
    /// `weight` and shifted by `bias` (both `[D]`).
    LayerNorm {
        x: Box<TExpr>,
        weight: String,
        bias: String,
    },
    Activation(Activation, Box<TExpr>),
    /// `x` where `x > 0`, `slope * x` elsewhere (`nn.LeakyReLU(slope)`).
    LeakyRelu {
        x: Box<TExpr>,
        slope: f64,
    },
    /// `parameter([..])`: a learned tensor, the parameter of that name.
    Param(String),
    /// In training, zero each element with probability `p` (scale the rest by
    /// `1/(1-p)`); `stream` numbers the dropouts of a model for the RNG.
    Dropout {
        x: Box<TExpr>,
        p: f64,
        stream: u32,
    },
    Reduce {
        op: Reduction,
        x: Box<TExpr>,
        axis: usize,
    },
    /// `mean(x, axis: k, mask: tokens)`: the mean over the positions of axis `k` whose
    /// token is not the pad id (0 where every position is padding).
    MaskedMean {
        x: Box<TExpr>,
        axis: usize,
        mask: PadMask,
    },
    Concat {
        xs: Vec<TExpr>,
        axis: usize,
    },
    Reshape(Box<TExpr>),
    Softmax {
        x: Box<TExpr>,
        axis: usize,
        log: bool,
    },
    /// Mean over the batch of `-log softmax(logits)[label]`.
    CrossEntropy {
        logits: Box<TExpr>,
        labels: Box<TExpr>,
    },
    /// Mean of squared differences.
    Mse {
        pred: Box<TExpr>,
        target: Box<TExpr>,
    },
    /// Rows of node features `x` read at each edge's source or destination
    /// (PyTorch Geometric's `x_j` / `x_i`): `[E, D]`.
    EdgeGather {
        x: Box<TExpr>,
        graph: usize,
        end: EdgeEnd,
    },
    /// Per-edge messages `[E, D]` aggregated at their destination nodes: `[N, D]`; a node
    /// without incoming edges gets 0 (for sum, mean and max alike).
    Aggregate {
        graph: usize,
        messages: Box<TExpr>,
        op: Reduction,
    },
    /// `propagate(.., aggregate: softmax, score: s)`: messages `[E, D]` weighted by a
    /// softmax of their scores `[E, H]` over each destination's incoming edges (head `h`
    /// weighs columns `h*D/H..(h+1)*D/H`), summed at the destination: `[N, D]`; a node
    /// without incoming edges gets 0.
    SoftmaxAggregate {
        graph: usize,
        messages: Box<TExpr>,
        scores: Box<TExpr>,
    },
    /// `readout(g, x, op)`: node vectors `[N, D]` of a batch of graphs pooled per graph
    /// (sum, mean or max over its nodes): `[G, D]`; a graph without nodes gets 0.
    Readout {
        graph: usize,
        x: Box<TExpr>,
        op: Reduction,
    },
    /// Softmax-weighted sum of node vectors `[B, D]` each, weights from a learned query:
    /// `w = softmax_k(<x_k, q> / sqrt(D))`, result `sum_k w_k x_k`.
    Attention {
        xs: Vec<TExpr>,
        query: String,
    },
    /// Non-overlapping `size x size` patches of an image `[B, C, H, W]`:
    /// `[B, (H/size)*(W/size), C*size*size]`, patches in row-major order, each patch's
    /// values in (channel, row, column) order.
    Patches {
        x: Box<TExpr>,
        size: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeEnd {
    Source,
    Destination,
}

/// A `graph g { nodes N, edges i32[2, E] }` declaration: its edge list is the input
/// `g.edges` (row 0 sources, row 1 destinations), its optional edge features the input
/// `g.features`; neither has a batch axis.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphInfo {
    pub name: String,
    pub nodes: Dim,
    pub edges: Dim,
    pub edges_input: String,
    pub features_input: Option<String>,
    /// `self_loops`: a loop on every node follows the listed edges, so messages are
    /// computed for `edges + nodes` rows (edge `E + i` goes from node `i` to itself).
    pub self_loops: bool,
    /// `graphs G`: a mini-batch of `G` graphs, block-diagonal; `nodes` and `edges` are
    /// then the batch's capacities, and node `i` belongs to graph `@graph_of[i]`.
    pub graphs: Option<Dim>,
}

impl GraphInfo {
    /// How many messages `propagate` computes: one per edge, self-loops included.
    pub fn message_rows(&self) -> Dim {
        if self.self_loops {
            self.edges.add(&self.nodes)
        } else {
            self.edges.clone()
        }
    }
}

impl CheckedModel {
    /// Whether rows appended to a batch with label -1 (a cross-entropy) or weight 0 in
    /// `@row_mask` (an `mse` over the batch's rows) leave the loss as it is: a partial
    /// batch may then be padded to the compiled batch size.
    pub fn loss_ignores_padded_rows(&self) -> bool {
        match &self.loss.kind {
            TKind::CrossEntropy { .. } => true,
            TKind::Mse { pred, .. } => self.batch_dim.is_some() && pred.ty.shape.first() == self.batch_dim.as_ref(),
            _ => false,
        }
    }
}

/// Settings of the `train { ... }` block, with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub optimizer: Optimizer,
    pub epochs: usize,
    /// The batch size (the label's first dim, unless set with `batch N`).
    pub batch: Option<usize>,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckedModel {
    pub name: String,
    pub dims: Vec<DimInfo>,
    pub inputs: Vec<InputInfo>,
    pub params: Vec<ParamInfo>,
    pub graphs: Vec<GraphInfo>,
    /// `let` and `node` bindings in evaluation order (rounds unrolled).
    pub bindings: Vec<(String, TExpr)>,
    pub loss: TExpr,
    /// What the loss scores (its first argument, e.g. the logits), for evaluation.
    pub prediction: Option<TExpr>,
    pub train: TrainConfig,
    /// The batch dim: the first axis of the label.
    pub batch_dim: Option<Dim>,
}
