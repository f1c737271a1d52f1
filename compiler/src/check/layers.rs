//! Checking the builtins that create parameters (`embed`, `linear`, `attention`,
//! `parameter`, ...), and
//! the registry of parameters.
//!
//! In: the call's bound arguments. Out: the typed call, with its parameters registered
//! in the checker, named `<scope>.<builtin>[_k].<weight|bias>` (or `<name>.<..>` with
//! `name: x`), where the scope is the binding's name (`loss` for the loss, the message's
//! name inside a message) and `_k` counts the scope's earlier calls of that builtin. A
//! name registered again (a message called twice, a repeated `name:`) is shared, and
//! must keep its shape.

use super::builtins::Bound;
use super::dim::{self, Dim};
use super::expr::boxed;
use super::typed::*;
use super::{show_type, Checker};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{Expr, ExprKind, Ident, Span};

impl<'p> Checker<'p> {
    pub(super) fn embed(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        if let Some(x) = positions_of(bound.slots[0]?) {
            return self.position_embed(x, bound, func, span);
        }
        let tokens = self.tensor_arg(bound, 0);
        let dim = self.size(bound.slots[1]?);
        let vocab_arg = match bound.slots[2] {
            Some(e) => Some(self.size(e)?),
            None => None,
        };
        let (tokens, dim) = (tokens?, dim?);
        let tokens_span = bound.slots[0]?.span;
        if tokens.ty.dtype != DType::I32 {
            self.error(
                Diagnostic::new(
                    format!(
                        "wrong dtype for 'embed': expected i32 token ids, found {}",
                        show_type(&tokens.ty)
                    ),
                    tokens_span,
                    "this is f32",
                )
                .with_help("embed looks up rows of a table by integer id; for f32 features use `linear(x, dim)`"),
            );
            return None;
        }
        let vocab = match vocab_arg.or_else(|| self.vocab_of(&tokens).map(|v| Dim::lit(v as i64))) {
            Some(v) => v,
            None => {
                self.error(
                    Diagnostic::new("embed needs the vocabulary size", tokens_span, "vocabulary unknown").with_help(
                        "declare it on the input (`input tokens: i32[B, T] vocab 10000`) or pass `vocab: N`",
                    ),
                );
                return None;
            }
        };
        let base = self.param_base("embed", bound.slots[3], span)?;
        let table = self.param(
            &format!("{base}.weight"),
            vec![vocab, dim.clone()],
            Init::Normal { std: 1.0 },
            func.span,
        )?;
        let mut shape = tokens.ty.shape.clone();
        shape.push(dim);
        Some(TExpr {
            kind: TKind::Embed {
                tokens: boxed(tokens),
                table,
            },
            ty: SymType {
                dtype: DType::F32,
                shape,
            },
        })
    }

    /// The `vocab` of the input that token ids come from, looking through bindings and
    /// reshapes.
    pub(super) fn vocab_of(&self, t: &TExpr) -> Option<usize> {
        match &t.kind {
            TKind::Input(name) => self.inputs.iter().find(|i| &i.name == name)?.vocab,
            TKind::Binding(i) => self.vocab_of(&self.bindings[*i].1),
            TKind::Reshape(x) => self.vocab_of(x),
            _ => None,
        }
    }

    pub(super) fn linear(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let x = self.float_tensor_arg(bound, 0, "linear");
        let out = self.size(bound.slots[1]?);
        let (x, out) = (x?, out?);
        let Some(fan_in) = x.ty.shape.last().cloned() else {
            self.error(Diagnostic::new(
                "linear needs at least one axis",
                bound.slots[0]?.span,
                "this is a scalar",
            ));
            return None;
        };
        let has_bias = self.flag(bound.slots[3], "bias", true)?;
        let base = self.param_base("linear", bound.slots[2], span)?;
        // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        let init = Init::UniformFanIn { fan_in: fan_in.clone() };
        let weight = self.param(
            &format!("{base}.weight"),
            vec![fan_in, out.clone()],
            init.clone(),
            func.span,
        )?;
        let bias = match has_bias {
            true => Some(self.param(&format!("{base}.bias"), vec![out.clone()], init, func.span)?),
            false => None,
        };
        let mut shape = x.ty.shape.clone();
        *shape.last_mut().expect("checked non-empty") = out;
        Some(TExpr {
            kind: TKind::Linear {
                x: boxed(x),
                weight,
                bias,
            },
            ty: SymType {
                dtype: DType::F32,
                shape,
            },
        })
    }

    /// `embed(positions(x), D)`: a table `[T, D]` (`[vocab, D]` with `vocab: N >= T`) whose
    /// row `t` is added at position `t` of every sequence: `nn.Embedding(T, D)` applied to
    /// `arange(T)`, as BERT and GPT-2 learn positions.
    fn position_embed(&mut self, x: &Expr, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let xt = self.expr(x);
        let dim = self.size(bound.slots[1]?);
        let vocab = match bound.slots[2] {
            Some(e) => Some(self.size(e)?),
            None => None,
        };
        let (xt, dim) = (xt?, dim?);
        let (Some(b), Some(t)) = (xt.ty.shape.first().cloned(), xt.ty.shape.get(1).cloned()) else {
            self.error(
                Diagnostic::new(
                    format!("positions needs a sequence [B, T, ..], found {}", show_type(&xt.ty)),
                    x.span,
                    "fewer than two axes",
                )
                .with_help("positions count along axis 1, e.g. of `tokens: i32[B, T]`"),
            );
            return None;
        };
        let base = self.param_base("embed", bound.slots[3], span)?;
        let table = self.param(
            &format!("{base}.weight"),
            vec![vocab.unwrap_or_else(|| t.clone()), dim.clone()],
            Init::Normal { std: 1.0 },
            func.span,
        )?;
        Some(TExpr {
            kind: TKind::PositionEmbed { x: boxed(xt), table },
            ty: SymType {
                dtype: DType::F32,
                shape: vec![b, t, dim],
            },
        })
    }

    /// `self_attention(x, heads: H)`: `nn.MultiheadAttention(D, H)` over the positions
    /// of `x: f32[B, T, D]`; `D` must divide by `H`. PyTorch's initialization: Xavier
    /// for the input projection, zero biases, U(+-1/sqrt(D)) for the output projection.
    pub(super) fn self_attention(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let x = self.float_tensor_arg(bound, 0, "self_attention");
        let heads = self.size(bound.slots[1]?);
        let causal = self.flag(bound.slots[3], "causal", false);
        let (x, heads, causal) = (x?, heads?, causal?);
        let mask = match bound.slots[4] {
            Some(m) => Some(self.pad_mask(m, &x.ty.shape[..x.ty.shape.len().min(2)])?),
            None => None,
        };
        let [_, _, d] = &x.ty.shape[..] else {
            self.error(
                Diagnostic::new(
                    format!(
                        "self_attention needs a sequence f32[B, T, D], found {}",
                        show_type(&x.ty)
                    ),
                    bound.slots[0]?.span,
                    format!("{} axes", x.ty.shape.len()),
                )
                .with_help("embed tokens first: `self_attention(embed(tokens, 64), heads: 4)`"),
            );
            return None;
        };
        let d = d.clone();
        if let (Some(dv), Some(h)) = (d.as_lit(), heads.as_lit()) {
            if dv % h != 0 {
                self.error(
                    Diagnostic::new(
                        format!("{h} heads do not divide the model width {dv}"),
                        bound.slots[1]?.span,
                        format!("{dv} is not a multiple of {h}"),
                    )
                    .with_help("each head attends over D / heads features: choose heads that divide D"),
                );
                return None;
            }
        }
        let base = self.param_base("self_attention", bound.slots[2], span)?;
        let three_d = d.mul(&Dim::lit(3));
        let in_weight = self.param(
            &format!("{base}.in_proj.weight"),
            vec![d.clone(), three_d.clone()],
            Init::XavierUniform {
                fan_in: d.clone(),
                fan_out: three_d.clone(),
            },
            func.span,
        )?;
        let in_bias = self.zeros(&format!("{base}.in_proj.bias"), three_d, func.span)?;
        let out_weight = self.param(
            &format!("{base}.out_proj.weight"),
            vec![d.clone(), d.clone()],
            Init::UniformFanIn { fan_in: d.clone() },
            func.span,
        )?;
        let out_bias = self.zeros(&format!("{base}.out_proj.bias"), d, func.span)?;
        let ty = x.ty.clone();
        Some(TExpr {
            kind: TKind::SelfAttention {
                x: boxed(x),
                heads,
                causal,
                mask,
                in_weight,
                in_bias,
                out_weight,
                out_bias,
            },
            ty,
        })
    }

    /// `layer_norm(x)`: `nn.LayerNorm(D)` over the last axis `D`, with `weight` (ones)
    /// and `bias` (zeros) of shape `[D]`, PyTorch's names and initial values.
    pub(super) fn layer_norm(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let x = self.float_tensor_arg(bound, 0, "layer_norm")?;
        let Some(d) = x.ty.shape.last().cloned() else {
            self.error(Diagnostic::new(
                "layer_norm needs at least one axis",
                bound.slots[0]?.span,
                "this is a scalar",
            ));
            return None;
        };
        let base = self.param_base("layer_norm", bound.slots[1], span)?;
        let weight = self.param(
            &format!("{base}.weight"),
            vec![d.clone()],
            Init::Constant { value: 1.0 },
            func.span,
        )?;
        let bias = self.zeros(&format!("{base}.bias"), d, func.span)?;
        let ty = x.ty.clone();
        Some(TExpr {
            kind: TKind::LayerNorm {
                x: boxed(x),
                weight,
                bias,
            },
            ty,
        })
    }

    /// `mask: tokens`: a token input declared with `pad P`, shaped like `leading` (the
    /// axes of the masked value up to the one masked).
    pub(super) fn pad_mask(&mut self, e: &Expr, leading: &[Dim]) -> Option<PadMask> {
        let tokens = self.expr(e)?;
        let declared = match &tokens.kind {
            TKind::Input(name) => self.inputs.iter().find(|i| &i.name == name),
            _ => None,
        };
        let Some(pad) = declared.and_then(|i| i.pad) else {
            self.error(
                Diagnostic::new("a mask is a token input with a pad id", e.span, "no pad id declared for this")
                    .with_help("declare the pad id on the input, `input tokens: i32[B, T] vocab 5000 pad 0`, and pass it: `mask: tokens`"),
            );
            return None;
        };
        if tokens.ty.shape != leading {
            self.error(
                Diagnostic::new(
                    format!(
                        "the mask is {}, the masked positions are {}",
                        show_type(&tokens.ty),
                        dim::show_shape(leading)
                    ),
                    e.span,
                    "shape does not match",
                )
                .with_help("a mask has one token per masked position, e.g. tokens [B, T] for h [B, T, D] over axis 1"),
            );
            return None;
        }
        Some(PadMask {
            tokens: boxed(tokens),
            pad,
        })
    }

    /// A bias of `len` zeros (PyTorch's init of layer norm and attention biases).
    fn zeros(&mut self, name: &str, len: Dim, span: Span) -> Option<String> {
        self.param(name, vec![len], Init::Constant { value: 0.0 }, span)
    }

    /// A `true`/`false` argument such as `bias: false`; absent means `default`.
    pub(super) fn flag(&mut self, arg: Option<&Expr>, name: &str, default: bool) -> Option<bool> {
        match arg.map(|e| &e.kind) {
            None => Some(default),
            Some(ExprKind::Name(n)) if n == "true" => Some(true),
            Some(ExprKind::Name(n)) if n == "false" => Some(false),
            Some(_) => {
                let e = arg?;
                self.error(
                    Diagnostic::new(format!("{name} takes true or false"), e.span, "not true or false")
                        .with_help(format!("write `{name}: true` or `{name}: false`")),
                );
                None
            }
        }
    }

    /// `attention(t, v, a)`: node vectors of one type `[B, D]`, fused with a learned query.
    pub(super) fn attention(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let xs: Vec<Option<TExpr>> = bound.rest.iter().map(|e| self.expr(e)).collect();
        let xs: Vec<TExpr> = xs.into_iter().collect::<Option<_>>()?;
        let first = xs[0].ty.clone();
        for (x, e) in xs.iter().zip(&bound.rest) {
            if x.ty.dtype != DType::F32 || x.ty.shape.len() != 2 || x.ty != first {
                self.error(
                    Diagnostic::new(
                        format!(
                            "attention fuses node vectors of one type: expected {}, found {}",
                            show_type(&first),
                            show_type(&x.ty)
                        ),
                        e.span,
                        format!("this is {}", show_type(&x.ty)),
                    )
                    .with_help("every input is a [B, D] node vector with the same D"),
                );
                return None;
            }
        }
        let base = self.param_base("attention", None, span)?;
        let query = self.param(
            &format!("{base}.query"),
            vec![first.shape[1].clone()],
            Init::Normal { std: 0.1 },
            func.span,
        )?;
        Some(TExpr {
            kind: TKind::Attention { xs, query },
            ty: first,
        })
    }

    /// `parameter([H, C], init: xavier)`: a learned tensor. Xavier-uniform over the last
    /// two axes (PyG's `glorot`, as GATConv initializes its attention vectors) is the
    /// default for two or more axes; a vector has no fan, so it names its init.
    pub(super) fn parameter(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        let shape_expr = bound.slots[0]?;
        let ExprKind::List(items) = &shape_expr.kind else {
            self.error(
                Diagnostic::new("parameter needs a shape list", shape_expr.span, "not a list")
                    .with_help("e.g. `parameter([8, 16])`"),
            );
            return None;
        };
        let shape: Vec<Dim> = items
            .iter()
            .map(|i| self.size(i))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Option<_>>()?;
        let word = bound.slots[1].map(|e| match &e.kind {
            ExprKind::Name(n) => n.as_str(),
            _ => "",
        });
        let init = match (word, &shape[..]) {
            (Some("zeros"), _) => Init::Constant { value: 0.0 },
            (Some("ones"), _) => Init::Constant { value: 1.0 },
            (Some("normal"), _) => Init::Normal { std: 1.0 },
            (None | Some("xavier"), [.., fan_in, fan_out]) => Init::XavierUniform {
                fan_in: fan_in.clone(),
                fan_out: fan_out.clone(),
            },
            (None | Some("xavier"), _) => {
                let message = match word {
                    None => "a parameter with one axis needs an init",
                    _ => "xavier init needs two axes (a fan in and a fan out)",
                };
                self.error(
                    Diagnostic::new(message, span, "a parameter with one axis")
                        .with_help("write `init: zeros`, `init: ones` or `init: normal`"),
                );
                return None;
            }
            (Some(_), _) => {
                self.error(
                    Diagnostic::new(
                        "unknown init",
                        bound.slots[1]?.span,
                        "not xavier, zeros, ones or normal",
                    )
                    .with_help("xavier (two or more axes, the default), zeros, ones or normal (N(0, 1))"),
                );
                return None;
            }
        };
        let name = self.param_base("parameter", bound.slots[2], span)?;
        let name = self.param(&name, shape.clone(), init, func.span)?;
        Some(TExpr {
            kind: TKind::Param(name),
            ty: SymType {
                dtype: DType::F32,
                shape,
            },
        })
    }

    /// The parameter base name of a call: `name: x` if given, else `<scope>.<builtin>[_k]`.
    pub(super) fn param_base(&mut self, builtin: &'static str, explicit: Option<&Expr>, span: Span) -> Option<String> {
        if let Some(e) = explicit {
            return match &e.kind {
                // In a `layers` block (outside a message's shared body) each layer has its own.
                ExprKind::Name(n) => Some(match &self.layer_scope {
                    Some(layer) if self.call_sites.is_empty() => format!("{layer}.{n}"),
                    _ => n.clone(),
                }),
                _ => {
                    self.error(
                        Diagnostic::new("a parameter name must be an identifier", e.span, "not a name")
                            .with_help("e.g. `linear(h, 128, name: fc1)` creates fc1.weight and fc1.bias"),
                    );
                    None
                }
            };
        }
        let _ = span;
        let count = self
            .param_counts
            .entry((self.param_scope.clone(), builtin))
            .or_insert(0);
        let base = if *count == 0 {
            format!("{}.{builtin}", self.param_scope)
        } else {
            format!("{}.{builtin}_{count}", self.param_scope)
        };
        *count += 1;
        Some(base)
    }

    /// Registers a parameter; a name seen before (a shared message parameter, or a
    /// repeated `name:`) must have the same shape, and then is reused.
    pub(super) fn param(&mut self, name: &str, shape: Vec<Dim>, init: Init, span: Span) -> Option<String> {
        let site = self.call_sites.last().cloned();
        if let Some(prev) = self.params.iter().find(|p| p.name == name) {
            if prev.shape != shape {
                let first = prev.span;
                let prev_shape = dim::show_shape(&prev.shape);
                if let Some((call, message)) = site {
                    // A message's layer sees inputs of another size: the call is at fault.
                    let first_call = self.param_sites.get(name).copied().unwrap_or(first);
                    self.error(
                        Diagnostic::new(
                            format!("message '{message}' is called with inputs of different sizes"),
                            call,
                            format!("here its weight '{name}' would be {}", dim::show_shape(&shape)),
                        )
                        .with_secondary(first_call, format!("an earlier call made it {prev_shape}"))
                        .with_secondary(span, format!("this layer's weights are shared by every call of '{message}'"))
                        .with_help(format!(
                            "every call of '{message}' shares its weights, so each call must pass inputs of the same sizes"
                        )),
                    );
                    return None;
                }
                self.error(
                    Diagnostic::new(
                        format!("shared parameter '{name}' is used with two shapes"),
                        span,
                        format!("expected {prev_shape}, found {}", dim::show_shape(&shape)),
                    )
                    .with_secondary(first, format!("first used here with {prev_shape}"))
                    .with_help(
                        "every use of a message or named layer shares one weight, so its inputs need equal sizes",
                    ),
                );
                return None;
            }
            return Some(name.to_string());
        }
        self.param_sites
            .insert(name.to_string(), site.map_or(span, |(call, _)| call));
        self.params.push(ParamInfo {
            name: name.to_string(),
            shape,
            init,
            span,
        });
        Some(name.to_string())
    }
}

/// `x` of an argument written `positions(x)`.
fn positions_of(arg: &Expr) -> Option<&Expr> {
    match &arg.kind {
        ExprKind::Call { func, args } if func.name == "positions" && args.len() == 1 && args[0].name.is_none() => {
            Some(&args[0].value)
        }
        _ => None,
    }
}
