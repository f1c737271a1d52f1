//! The builtin functions' signatures, as a table, and the binding of call arguments to
//! them (positional then named, no duplicates, required ones present).
//!
//! In: a call's arguments. Out: one optional argument expression per signature slot,
//! or a diagnostic that shows the expected signature.

use crate::diag::Diagnostic;
use crate::syntax::ast::{Arg, Expr, Span};

/// What an argument slot accepts (for the signature shown in errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A tensor expression.
    Tensor,
    /// Any number of tensors (only as the first slot).
    Tensors,
    /// A size: an integer or a dim name.
    Size,
    /// An integer (possibly negative, e.g. an axis).
    Int,
    /// A number.
    Number,
    /// A shape list `[B, 8, 8]`.
    Shape,
    /// An identifier (a parameter name); only as a named argument.
    Name,
    /// A graph's name.
    Graph,
    /// A message's name.
    Message,
    /// One of a few words (e.g. `aggregate: mean`).
    Choice,
}

pub struct Param {
    pub name: &'static str,
    pub slot: Slot,
    pub required: bool,
}

pub struct Builtin {
    pub name: &'static str,
    pub params: &'static [Param],
    pub summary: &'static str,
}

const fn req(name: &'static str, slot: Slot) -> Param {
    Param {
        name,
        slot,
        required: true,
    }
}
const fn opt(name: &'static str, slot: Slot) -> Param {
    Param {
        name,
        slot,
        required: false,
    }
}

use Slot::*;

/// Every builtin. Optional `name:` sets the parameter name of calls that create weights.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "embed",
        params: &[
            req("x", Tensor),
            req("dim", Size),
            opt("vocab", Size),
            opt("name", Name),
        ],
        summary: "embedding lookup: i32[..] -> f32[.., dim]",
    },
    Builtin {
        name: "linear",
        params: &[
            req("x", Tensor),
            req("out", Size),
            opt("name", Name),
            opt("bias", Choice),
        ],
        summary: "x W + b over the last axis: [.., in] -> [.., out] (bias: false drops b)",
    },
    Builtin {
        name: "positions",
        params: &[req("x", Tensor)],
        summary: "the positions 0..T-1 along axis 1 of x: [B, T, ..], only as embed's argument (learned positional embeddings)",
    },
    Builtin {
        name: "self_attention",
        params: &[
            req("x", Tensor),
            req("heads", Size),
            opt("name", Name),
            opt("causal", Choice),
            opt("mask", Tensor),
        ],
        summary: "multi-head self-attention of a sequence f32[B, T, D] over its T positions: nn.MultiheadAttention(D, heads); causal: true lets position t attend to 0..t only",
    },
    Builtin {
        name: "layer_norm",
        params: &[req("x", Tensor), opt("name", Name)],
        summary: "normalize the last axis to mean 0, variance 1 (eps 1e-5), then scale and shift: nn.LayerNorm(D)",
    },
    Builtin {
        name: "relu",
        params: &[req("x", Tensor)],
        summary: "max(x, 0)",
    },
    Builtin {
        name: "tanh",
        params: &[req("x", Tensor)],
        summary: "hyperbolic tangent",
    },
    Builtin {
        name: "sigmoid",
        params: &[req("x", Tensor)],
        summary: "1 / (1 + exp(-x))",
    },
    Builtin {
        name: "gelu",
        params: &[req("x", Tensor), opt("approximate", Choice)],
        summary: "GELU, exact: 0.5 x (1 + erf(x / sqrt 2)) (nn.GELU()); approximate: tanh for the tanh form",
    },
    Builtin {
        name: "leaky_relu",
        params: &[req("x", Tensor), opt("slope", Number)],
        summary: "x where x > 0, slope * x elsewhere (default slope 0.01)",
    },
    Builtin {
        name: "elu",
        params: &[req("x", Tensor)],
        summary: "x where x > 0, exp(x) - 1 elsewhere",
    },
    Builtin {
        name: "parameter",
        params: &[req("shape", Shape), opt("init", Choice), opt("name", Name)],
        summary: "a learned tensor of the given shape (init: xavier, the default for 2+ axes, zeros, ones or normal)",
    },
    Builtin {
        name: "dropout",
        params: &[req("x", Tensor), req("p", Number)],
        summary: "zero elements with probability p while training",
    },
    Builtin {
        name: "sum",
        params: &[req("x", Tensor), req("axis", Int)],
        summary: "sum over an axis",
    },
    Builtin {
        name: "mean",
        params: &[req("x", Tensor), req("axis", Int), opt("mask", Tensor)],
        summary: "mean over an axis (mask: tokens, a token input with a pad id: over the positions that are not padding)",
    },
    Builtin {
        name: "max",
        params: &[req("x", Tensor), req("axis", Int)],
        summary: "max over an axis",
    },
    Builtin {
        name: "concat",
        params: &[req("xs", Tensors), opt("axis", Int)],
        summary: "join along an axis (default -1)",
    },
    Builtin {
        name: "flatten",
        params: &[req("x", Tensor)],
        summary: "[d0, d1, ..] -> [d0, d1*..]",
    },
    Builtin {
        name: "reshape",
        params: &[req("x", Tensor), req("shape", Shape)],
        summary: "same elements, new shape",
    },
    Builtin {
        name: "softmax",
        params: &[req("x", Tensor), opt("axis", Int)],
        summary: "softmax over an axis (default -1)",
    },
    Builtin {
        name: "log_softmax",
        params: &[req("x", Tensor), opt("axis", Int)],
        summary: "log of softmax over an axis (default -1)",
    },
    Builtin {
        name: "cross_entropy",
        params: &[req("logits", Tensor), req("labels", Tensor)],
        summary: "mean -log softmax(logits)[label]",
    },
    Builtin {
        name: "mse",
        params: &[req("pred", Tensor), req("target", Tensor)],
        summary: "mean squared error",
    },
    Builtin {
        name: "propagate",
        params: &[
            req("graph", Graph),
            req("x", Tensor),
            req("message", Message),
            opt("aggregate", Choice),
            opt("score", Message),
        ],
        summary: "message passing along a graph's edges: x [N, D] -> [N, D'] (aggregate: sum | mean | max, or softmax with score: a message giving [E, heads])",
    },
    Builtin {
        name: "readout",
        params: &[req("graph", Graph), req("x", Tensor), req("op", Choice)],
        summary: "pools the node vectors of each graph of a batch (graphs G): x [N, D] -> [G, D] (op: sum | mean | max)",
    },
    Builtin {
        name: "attention",
        params: &[req("xs", Tensors)],
        summary: "softmax-weighted sum of node vectors [B, D] with a learned query",
    },
    Builtin {
        name: "patches",
        params: &[req("x", Tensor), req("size", Size)],
        summary: "non-overlapping P x P patches: [B, C, H, W] -> [B, (H/P)*(W/P), C*P*P]",
    },
];

pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    /// `linear(x, out, name: ...)`
    pub fn signature(&self) -> String {
        let parts: Vec<String> = self
            .params
            .iter()
            .map(|p| match (p.slot, p.required) {
                (Tensors, _) => format!("{}...", p.name),
                (_, true) => p.name.to_string(),
                (_, false) => format!("{}: ...", p.name),
            })
            .collect();
        format!("{}({})", self.name, parts.join(", "))
    }

    fn required(&self) -> usize {
        self.params.iter().filter(|p| p.required).count()
    }

    /// Matches `args` to the slots. For a `Tensors` slot, every positional argument goes
    /// to it (returned in `rest`).
    pub fn bind<'e>(&self, args: &'e [Arg], call_span: Span) -> Result<Bound<'e>, Diagnostic> {
        let mut slots: Vec<Option<&'e Expr>> = vec![None; self.params.len()];
        let mut rest = Vec::new();
        let variadic = self.params.first().is_some_and(|p| p.slot == Tensors);
        let mut next = 0;
        for arg in args {
            match &arg.name {
                None if variadic => rest.push(&arg.value),
                None => {
                    // Positional arguments fill the slots in order, up to the required ones
                    // and then the optional ones too (e.g. `softmax(x, 1)` is allowed).
                    if next >= self.params.len() || self.params[next].slot == Name {
                        return Err(self.arity_error(args.len(), arg.value.span));
                    }
                    slots[next] = Some(&arg.value);
                    next += 1;
                }
                Some(name) => {
                    let Some(k) = self
                        .params
                        .iter()
                        .position(|p| p.name == name.name && p.slot != Tensors)
                    else {
                        let known: Vec<&str> = self
                            .params
                            .iter()
                            .filter(|p| p.slot != Tensors)
                            .map(|p| p.name)
                            .collect();
                        let mut d = Diagnostic::new(
                            format!("'{}' has no argument named '{}'", self.name, name.name),
                            name.span,
                            "unknown argument",
                        )
                        .with_help(format!("the signature is {}", self.signature()));
                        if let Some(s) = super::suggest::did_you_mean(&name.name, known) {
                            d = d.with_help(format!("{s} (the signature is {})", self.signature()));
                        }
                        return Err(d);
                    };
                    if slots[k].is_some() {
                        return Err(Diagnostic::new(
                            format!("argument '{}' of '{}' is given twice", name.name, self.name),
                            name.span,
                            "given again here",
                        ));
                    }
                    slots[k] = Some(&arg.value);
                }
            }
        }
        if variadic && rest.is_empty() {
            return Err(self.arity_error(args.len(), call_span));
        }
        let missing = self
            .params
            .iter()
            .zip(&slots)
            .any(|(p, s)| p.required && p.slot != Tensors && s.is_none());
        if missing {
            return Err(self.arity_error(args.len(), call_span));
        }
        Ok(Bound { slots, rest })
    }

    fn arity_error(&self, found: usize, span: Span) -> Diagnostic {
        let want = self.required();
        let noun = if want == 1 { "argument" } else { "arguments" };
        Diagnostic::new(
            format!("'{}' takes {want} {noun}, found {found}", self.name),
            span,
            format!("expected {}", self.signature()),
        )
        .with_help(format!("{}: {}", self.name, self.summary))
    }
}

/// Arguments matched to slots.
pub struct Bound<'e> {
    pub slots: Vec<Option<&'e Expr>>,
    /// Positional arguments of a variadic builtin.
    pub rest: Vec<&'e Expr>,
}
