//! Lower: a checked model and concrete dim values -> a forward tensor-IR graph.
//!
//! In: a [`CheckedModel`] (symbolic shapes) and a value for every dim (defaults, or
//! overrides from the command line or the data). Out: a [`Graph`] with outputs `loss`
//! and, when the loss scores a prediction, `predictions`. In [`Mode::Train`] dropout
//! draws its mask from `random_uniform(@seed, @step)`; in [`Mode::Eval`] it is the
//! identity. Composite builtins become primitives here: softmax is max-shifted exp and
//! sum, cross-entropy is log-softmax picked by a one-hot, linear is a matmul over the
//! flattened leading axes plus a broadcast bias.

use crate::check::dim::Dim;
use crate::check::{
    Activation, Arith, CheckedModel, EdgeEnd, GraphInfo, PadMask, Reduction, TExpr, TKind, LAYER_NORM_EPS,
};
use crate::ir::{ArgKind, Builder, Graph, Type, ValueId};
use crate::signature::{Role, Signature, Step, POSITIONS, ROW_MASK, SEED, STEP};
use crate::specialize::{concrete, params, DimValues};
use std::collections::HashMap;

#[path = "lower/attention.rs"]
mod attention;
#[path = "lower/graph.rs"]
mod graph;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

struct Lowering<'m> {
    dims: &'m DimValues,
    graphs: &'m [GraphInfo],
    /// The batch axis (the label's first): a per-row loss averages over its real rows.
    batch_dim: Option<&'m Dim>,
    mode: Mode,
    b: Builder,
    args: HashMap<String, ValueId>,
    bindings: Vec<ValueId>,
    rng: Option<(ValueId, ValueId)>,
    /// The batch row this graph's row 0 is (a data-parallel shard's first row): dropout
    /// over the batch axis draws that row's numbers, so shards see the whole batch's masks.
    first_row: usize,
}

/// Lowers the model's forward pass.
///
/// `dims` must have passed [`crate::specialize::check_sizes`] (the pipeline's specialize
/// pass), so that no element count overflows.
pub fn lower(model: &CheckedModel, dims: &DimValues, mode: Mode) -> Result<Graph, String> {
    lower_rows_from(model, dims, mode, 0)
}

/// [`lower`] for the rows of a batch from `first_row` on (a data-parallel shard): the
/// same graph, its dropout masks those of the batch's rows `first_row..`.
pub fn lower_rows_from(model: &CheckedModel, dims: &DimValues, mode: Mode, first_row: usize) -> Result<Graph, String> {
    let name = match mode {
        Mode::Train => "forward",
        Mode::Eval => "eval",
    };
    let mut l = Lowering {
        dims,
        graphs: &model.graphs,
        batch_dim: model.batch_dim.as_ref(),
        mode,
        b: Builder::new(name),
        args: HashMap::new(),
        bindings: Vec::new(),
        rng: None,
        first_row,
    };
    for input in &model.inputs {
        let shape = concrete(&input.ty.shape, dims)?;
        let ty = Type {
            dtype: input.ty.dtype,
            shape,
        };
        let v = l.b.arg(ArgKind::Input, &input.name, ty);
        l.args.insert(input.name.clone(), v);
    }
    for p in params(model, dims)? {
        let v = l.b.arg(ArgKind::Param, &p.name, Type::f32(p.shape));
        l.args.insert(p.name, v);
    }
    for (_, t) in &model.bindings {
        let v = l.value(t)?;
        l.bindings.push(v);
    }
    let loss = l.value(&model.loss)?;
    l.b.output(Role::Loss.output_name(), loss);
    if let Some(p) = &model.prediction {
        let v = l.value(p)?;
        l.b.output(Role::Predictions.output_name(), v);
    }
    let graph = l.b.finish();
    debug_assert_eq!(graph.validate(), Ok(()));
    Ok(graph)
}

/// [`lower`], with the step's signature: the loss, and the predictions when the loss
/// scores some.
pub fn lower_step(model: &CheckedModel, dims: &DimValues, mode: Mode) -> Result<Step, String> {
    lower_step_rows_from(model, dims, mode, 0)
}

/// [`lower_step`] for the rows from `first_row` on (see [`lower_rows_from`]).
pub fn lower_step_rows_from(
    model: &CheckedModel,
    dims: &DimValues,
    mode: Mode,
    first_row: usize,
) -> Result<Step, String> {
    let graph = lower_rows_from(model, dims, mode, first_row)?;
    let mut roles = vec![Role::Loss];
    roles.extend(model.prediction.as_ref().map(|_| Role::Predictions));
    let signature = Signature::new(&graph, roles);
    Ok(Step { graph, signature })
}

impl Lowering<'_> {
    fn shape(&self, t: &TExpr) -> Result<Vec<usize>, String> {
        concrete(&t.ty.shape, self.dims)
    }

    fn value(&mut self, t: &TExpr) -> Result<ValueId, String> {
        let b = &mut self.b;
        Ok(match &t.kind {
            TKind::Input(name) => self.args[name],
            TKind::Binding(i) => self.bindings[*i],
            TKind::Scalar(v) => b.scalar(*v),
            TKind::Arith(op, x, y) => {
                let (x, y) = (self.value(x)?, self.value(y)?);
                let (x, y) = self.broadcast_pair(x, y);
                let b = &mut self.b;
                match op {
                    Arith::Add => b.add(x, y),
                    Arith::Sub => b.sub(x, y),
                    Arith::Mul => b.mul(x, y),
                    Arith::Div => b.div(x, y),
                }
            }
            TKind::Neg(x) => {
                let x = self.value(x)?;
                self.b.neg(x)
            }
            TKind::Embed { tokens, table } => {
                let tokens = self.value(tokens)?;
                let table = self.args[table];
                self.b.gather(table, tokens)
            }
            TKind::Linear { x, weight, bias } => {
                let x = self.value(x)?;
                let (w, bias) = (self.args[weight], bias.as_ref().map(|b| self.args[b]));
                self.linear(x, w, bias)
            }
            TKind::PositionEmbed { table: name, .. } => {
                let shape = self.shape(t)?;
                let table = self.args[name];
                let rows = self.b.shape(table)[0];
                if rows < shape[1] {
                    return Err(format!(
                        "positional embedding '{name}' has {rows} rows, fewer than the {} positions of a sequence \
                         (vocab: must be at least T)",
                        shape[1]
                    ));
                }
                let b = &mut self.b;
                let used = if rows == shape[1] {
                    table
                } else {
                    b.slice(table, 0, 0, shape[1])
                };
                b.broadcast(used, &shape, &[1, 2])
            }
            TKind::SelfAttention {
                x,
                heads,
                causal,
                mask,
                in_weight,
                in_bias,
                out_weight,
                out_bias,
            } => {
                let heads = concrete(std::slice::from_ref(heads), self.dims)?[0];
                let x = self.value(x)?;
                let w = [in_weight, in_bias, out_weight, out_bias].map(|p| self.args[p]);
                let padding = match mask {
                    Some(m) => Some(self.padding(m)?),
                    None => None,
                };
                self.self_attention(x, heads, *causal, padding, w)?
            }
            TKind::MaskedMean { x, axis, mask } => {
                let x = self.value(x)?;
                let padding = self.padding(mask)?;
                self.masked_mean(x, *axis, padding)
            }
            TKind::LayerNorm { x, weight, bias } => {
                let x = self.value(x)?;
                let (w, bias) = (self.args[weight], self.args[bias]);
                self.layer_norm(x, w, bias)
            }
            TKind::Activation(act, x) => {
                let x = self.value(x)?;
                self.activation(*act, x)
            }
            TKind::Dropout { x, p, stream } => {
                let over_batch = self.batch_dim.is_some() && x.ty.shape.first() == self.batch_dim;
                let x = self.value(x)?;
                if self.mode == Mode::Eval || *p == 0.0 {
                    x
                } else {
                    let (seed, step) = self.rng();
                    let shape = self.b.shape(x);
                    // Numbers are drawn by element index, which wraps at 2^32.
                    let row: usize = shape.iter().skip(1).product();
                    let offset = if over_batch { (self.first_row * row) as u32 } else { 0 };
                    let b = &mut self.b;
                    let u = b.random_uniform_at(seed, step, *stream, offset, &shape);
                    let threshold = b.constant(*p, &shape);
                    let keep = b.greater(u, threshold);
                    let kept = b.mul(x, keep);
                    b.scale(kept, 1.0 / (1.0 - p))
                }
            }
            TKind::Reduce { op, x, axis } => {
                let x = self.value(x)?;
                let n = self.b.shape(x)[*axis];
                let b = &mut self.b;
                match op {
                    Reduction::Sum => b.reduce_sum(x, &[*axis]),
                    Reduction::Max => b.reduce_max(x, &[*axis]),
                    Reduction::Mean => {
                        let s = b.reduce_sum(x, &[*axis]);
                        b.scale(s, 1.0 / n as f64)
                    }
                }
            }
            TKind::Concat { xs, axis } => {
                let vs: Vec<ValueId> = xs.iter().map(|x| self.value(x)).collect::<Result<_, _>>()?;
                self.b.concat(&vs, *axis)
            }
            TKind::Reshape(x) => {
                let shape = self.shape(t)?;
                let x = self.value(x)?;
                self.b.reshape(x, &shape)
            }
            TKind::Softmax { x, axis, log } => {
                let x = self.value(x)?;
                self.softmax(x, *axis, *log)
            }
            TKind::CrossEntropy { logits, labels } => {
                let (logits, labels) = (self.value(logits)?, self.value(labels)?);
                self.cross_entropy(logits, labels)
            }
            TKind::EdgeGather { x, graph, end } => {
                let x = self.value(x)?;
                let (src, dst) = self.edge_ends(*graph)?;
                let at = if *end == EdgeEnd::Source { src } else { dst };
                self.b.gather(x, at)
            }
            TKind::Aggregate { graph, messages, op } => {
                let m = self.value(messages)?;
                self.aggregate(*graph, m, *op)?
            }
            TKind::SoftmaxAggregate {
                graph,
                messages,
                scores,
            } => {
                let (m, s) = (self.value(messages)?, self.value(scores)?);
                self.softmax_aggregate(*graph, m, s)?
            }
            TKind::Param(name) => self.args[name],
            TKind::LeakyRelu { x, slope } => {
                // relu(x) - slope relu(-x): x above 0, slope * x below, for any slope.
                let x = self.value(x)?;
                let shape = self.b.shape(x);
                let b = &mut self.b;
                let zero = b.constant(0.0, &shape);
                let pos = b.max(x, zero);
                let minus = b.neg(x);
                let neg = b.max(minus, zero);
                let neg = b.scale(neg, *slope);
                b.sub(pos, neg)
            }
            TKind::Attention { xs, query } => {
                let vs: Vec<ValueId> = xs.iter().map(|x| self.value(x)).collect::<Result<_, _>>()?;
                let q = self.args[query];
                self.attention(&vs, q)
            }
            TKind::Patches { x, size } => {
                let x = self.value(x)?;
                self.patches(x, *size)
            }
            TKind::Mse { pred, target } => {
                let per_row = self.batch_dim.is_some() && pred.ty.shape.first() == self.batch_dim;
                let (p, q) = (self.value(pred)?, self.value(target)?);
                self.mse(p, q, per_row)
            }
            TKind::Readout { graph, x, op } => {
                let x = self.value(x)?;
                self.readout(*graph, x, *op)?
            }
        })
    }

    /// The `@seed` and `@step` scalars, created on first use.
    fn rng(&mut self) -> (ValueId, ValueId) {
        *self.rng.get_or_insert_with(|| {
            let seed = self.b.arg(ArgKind::Input, SEED, Type::i32([]));
            let step = self.b.arg(ArgKind::Input, STEP, Type::i32([]));
            (seed, step)
        })
    }

    /// Right-aligned broadcast of the lower-rank operand to the other's shape.
    fn broadcast_pair(&mut self, x: ValueId, y: ValueId) -> (ValueId, ValueId) {
        let (sx, sy) = (self.b.shape(x), self.b.shape(y));
        let stretch = |b: &mut Builder, v: ValueId, from: &[usize], to: &[usize]| {
            let dims: Vec<usize> = (to.len() - from.len()..to.len()).collect();
            b.broadcast(v, to, &dims)
        };
        if sx.len() < sy.len() {
            (stretch(&mut self.b, x, &sx, &sy), y)
        } else {
            (x, stretch(&mut self.b, y, &sy, &sx))
        }
    }

    /// `x W + b` over the last axis: leading axes are flattened into the matmul's rows.
    fn linear(&mut self, x: ValueId, w: ValueId, bias: Option<ValueId>) -> ValueId {
        let shape = self.b.shape(x);
        let (fan_in, out) = (shape[shape.len() - 1], self.b.shape(w)[1]);
        let rows = shape[..shape.len() - 1].iter().product::<usize>();
        let b = &mut self.b;
        let flat = b.reshape(x, &[rows, fan_in]);
        let product = b.matmul(flat, w);
        let sum = match bias {
            Some(bias) => {
                let bias_b = b.broadcast(bias, &[rows, out], &[1]);
                b.add(product, bias_b)
            }
            None => product,
        };
        let mut out_shape = shape;
        *out_shape.last_mut().expect("linear input has an axis") = out;
        b.reshape(sum, &out_shape)
    }

    /// 1.0 where a token is the pad id, else 0.0 (ids compared as floats: exact below 2^24,
    /// and a vocabulary is smaller).
    fn padding(&mut self, mask: &PadMask) -> Result<ValueId, String> {
        let tokens = self.value(&mask.tokens)?;
        let shape = self.b.shape(tokens);
        let b = &mut self.b;
        let ids = b.convert(tokens);
        let pad = b.constant(mask.pad as f64, &shape);
        let diff = b.sub(ids, pad);
        let square = b.mul(diff, diff);
        let half = b.constant(0.25, &shape);
        Ok(b.greater(half, square))
    }

    /// The mean over `axis` of the positions that are not padding (`padding` has `x`'s
    /// axes up to `axis`); 0 where all are.
    fn masked_mean(&mut self, x: ValueId, axis: usize, padding: ValueId) -> ValueId {
        let shape = self.b.shape(x);
        let lead: Vec<usize> = (0..=axis).collect();
        let b = &mut self.b;
        let ones = b.constant(1.0, &shape[..=axis]);
        let keep = b.sub(ones, padding);
        let keep_b = b.broadcast(keep, &shape, &lead);
        let kept = b.mul(x, keep_b);
        let sum = b.reduce_sum(kept, &[axis]);
        let count = b.reduce_sum(keep, &[axis]);
        let one = b.constant(1.0, &shape[..axis]);
        let count = b.max(count, one);
        let mut out = shape.clone();
        out.remove(axis);
        let count = b.broadcast(count, &out, &(0..axis).collect::<Vec<_>>());
        b.div(sum, count)
    }

    /// `(x - mean) / sqrt(var + eps) * w + b` over the last axis, with the biased
    /// variance, as `nn.LayerNorm` computes it; autodiff differentiates the primitives.
    fn layer_norm(&mut self, x: ValueId, w: ValueId, bias: ValueId) -> ValueId {
        let shape = self.b.shape(x);
        let last = shape.len() - 1;
        let inv_d = 1.0 / shape[last] as f64;
        let b = &mut self.b;
        let sum = b.reduce_sum(x, &[last]);
        let mean = b.scale(sum, inv_d);
        let mean = b.broadcast_reduced(mean, &shape, &[last]);
        let centered = b.sub(x, mean);
        let squares = b.mul(centered, centered);
        let sum_sq = b.reduce_sum(squares, &[last]);
        let var = b.scale(sum_sq, inv_d);
        let eps = b.constant(LAYER_NORM_EPS, &shape[..last]);
        let std = b.add(var, eps);
        let std = b.sqrt(std);
        let std = b.broadcast_reduced(std, &shape, &[last]);
        let normalized = b.div(centered, std);
        let w = b.broadcast(w, &shape, &[last]);
        let scaled = b.mul(normalized, w);
        let bias = b.broadcast(bias, &shape, &[last]);
        b.add(scaled, bias)
    }

    fn activation(&mut self, act: Activation, x: ValueId) -> ValueId {
        let shape = self.b.shape(x);
        let b = &mut self.b;
        match act {
            Activation::Relu => {
                let zero = b.constant(0.0, &shape);
                b.max(x, zero)
            }
            Activation::Tanh => b.tanh(x),
            // elu(x) = relu(x) + exp(-relu(-x)) - 1: exp never sees a positive argument.
            Activation::Elu => {
                let zero = b.constant(0.0, &shape);
                let pos = b.max(x, zero);
                let minus = b.neg(x);
                let neg = b.max(minus, zero);
                let neg = b.neg(neg);
                let e = b.exp(neg);
                let one = b.constant(1.0, &shape);
                let em1 = b.sub(e, one);
                b.add(pos, em1)
            }
            // sigmoid(x) = (1 + tanh(x/2)) / 2: no overflow for large |x|.
            Activation::Sigmoid => {
                let half = b.scale(x, 0.5);
                let t = b.tanh(half);
                let one = b.constant(1.0, &shape);
                let s = b.add(t, one);
                b.scale(s, 0.5)
            }
            // gelu(x) = x/2 (1 + erf(x / sqrt 2)), PyTorch's default `nn.GELU()`.
            Activation::Gelu => {
                let scaled = b.scale(x, std::f64::consts::FRAC_1_SQRT_2);
                let e = b.erf(scaled);
                let one = b.constant(1.0, &shape);
                let s = b.add(e, one);
                let xs = b.mul(x, s);
                b.scale(xs, 0.5)
            }
            // gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's
            // `gelu(approximate="tanh")`.
            Activation::GeluTanh => {
                let x2 = b.mul(x, x);
                let x3 = b.mul(x2, x);
                let cubic = b.scale(x3, 0.044715);
                let inner = b.add(x, cubic);
                let scaled = b.scale(inner, (2.0 / std::f64::consts::PI).sqrt());
                let t = b.tanh(scaled);
                let one = b.constant(1.0, &shape);
                let s = b.add(t, one);
                let xs = b.mul(x, s);
                b.scale(xs, 0.5)
            }
        }
    }

    /// Max-shifted softmax (or log-softmax) over `axis`.
    fn softmax(&mut self, x: ValueId, axis: usize, log: bool) -> ValueId {
        let shape = self.b.shape(x);
        let b = &mut self.b;
        let m = b.reduce_max(x, &[axis]);
        let m_b = b.broadcast_reduced(m, &shape, &[axis]);
        let shifted = b.sub(x, m_b);
        let e = b.exp(shifted);
        let z = b.reduce_sum(e, &[axis]);
        if log {
            let log_z = b.log(z);
            let log_z_b = b.broadcast_reduced(log_z, &shape, &[axis]);
            b.sub(shifted, log_z_b)
        } else {
            let z_b = b.broadcast_reduced(z, &shape, &[axis]);
            b.div(e, z_b)
        }
    }

    /// Mean of the squared differences. Over rows of the batch (`per_row`: the first axis
    /// is the batch dim, e.g. the graphs of a batch of graphs), the mean is over the rows
    /// that hold data ([`ROW_MASK`]), so that the padding of a partial batch counts for
    /// nothing.
    fn mse(&mut self, p: ValueId, q: ValueId, per_graph: bool) -> ValueId {
        let b = &mut self.b;
        let d = b.sub(p, q);
        let mut d2 = b.mul(d, d);
        let shape = b.shape(d2);
        let n = b.ty(d2).numel();
        let all: Vec<usize> = (0..shape.len()).collect();
        if !per_graph {
            let s = b.reduce_sum(d2, &all);
            return b.scale(s, 1.0 / n as f64);
        }
        let rows = shape[0];
        let mask = match b.graph.arg(ArgKind::Input, ROW_MASK) {
            Some(m) => m,
            None => b.arg(ArgKind::Input, ROW_MASK, Type::f32([rows])),
        };
        let wide = b.broadcast(mask, &shape, &[0]);
        d2 = b.mul(d2, wide);
        let s = b.reduce_sum(d2, &all);
        let count = b.reduce_sum(mask, &[0]);
        let count = b.scale(count, (n / rows.max(1)) as f64);
        let one = b.scalar(1.0);
        let denom = b.max(count, one);
        b.div(s, denom)
    }

    /// Mean over all label positions of `-log_softmax(logits)[label]`.
    fn cross_entropy(&mut self, logits: ValueId, labels: ValueId) -> ValueId {
        let shape = self.b.shape(logits);
        let classes = shape[shape.len() - 1];
        let rows = shape[..shape.len() - 1].iter().product::<usize>();
        let flat = self.b.reshape(logits, &[rows, classes]);
        let flat_labels = self.b.reshape(labels, &[rows]);
        let log_p = self.softmax(flat, 1, true);
        let b = &mut self.b;
        // Label -1 means "no label": its one-hot row is zero, and it is not counted.
        let hot = b.one_hot(flat_labels, classes);
        let picked = b.mul(log_p, hot);
        let total = b.reduce_sum(picked, &[0, 1]);
        let as_float = b.convert(flat_labels);
        let half = b.constant(-0.5, &[rows]);
        let labeled = b.greater(as_float, half);
        let count = b.reduce_sum(labeled, &[0]);
        let one = b.scalar(1.0);
        let denom = b.max(count, one);
        let nll = b.neg(total);
        b.div(nll, denom)
    }

    /// `0..len` as `i32[len]`: the step input [`POSITIONS`], which the runtime fills with
    /// `0..n`; the first use declares `n = len`, so a later use may not need more.
    fn positions(&mut self, len: usize, what: &str) -> Result<ValueId, String> {
        let b = &mut self.b;
        let positions = match b.graph.arg(ArgKind::Input, POSITIONS) {
            Some(p) => p,
            None => b.arg(ArgKind::Input, POSITIONS, Type::i32([len])),
        };
        let n = b.shape(positions)[0];
        if n < len {
            return Err(format!(
                "{what} needs the positions 0..{len}, but the model already counts 0..{n} for another use: \
                 one model counts one range (a causal sequence of T, or a graph's N self-loops)"
            ));
        }
        Ok(if n == len {
            positions
        } else {
            b.slice(positions, 0, 0, len)
        })
    }

    /// `sum_k softmax_k(<x_k, q> / sqrt(D)) x_k` over node vectors `x_k: [B, D]`.
    fn attention(&mut self, xs: &[ValueId], query: ValueId) -> ValueId {
        let [batch, d] = self.b.shape(xs[0])[..] else {
            unreachable!("checked [B, D]")
        };
        let k = xs.len();
        let rows: Vec<ValueId> = xs.iter().map(|&x| self.b.reshape(x, &[batch, 1, d])).collect();
        let stack = self.b.concat(&rows, 1);
        let q = self.b.broadcast(query, &[batch, k, d], &[2]);
        let prod = self.b.mul(stack, q);
        let scores = self.b.reduce_sum(prod, &[2]);
        let scaled = self.b.scale(scores, 1.0 / (d as f64).sqrt());
        let weights = self.softmax(scaled, 1, false);
        let b = &mut self.b;
        let w = b.broadcast(weights, &[batch, k, d], &[0, 1]);
        let weighted = b.mul(stack, w);
        b.reduce_sum(weighted, &[1])
    }

    /// `[B, C, H, W]` -> `[B, (H/P)*(W/P), C*P*P]`.
    fn patches(&mut self, x: ValueId, p: usize) -> ValueId {
        let [batch, c, h, w] = self.b.shape(x)[..] else {
            unreachable!("checked [B, C, H, W]")
        };
        let b = &mut self.b;
        let split = b.reshape(x, &[batch, c, h / p, p, w / p, p]);
        let grouped = b.transpose(split, &[0, 2, 4, 1, 3, 5]);
        b.reshape(grouped, &[batch, (h / p) * (w / p), c * p * p])
    }
}
