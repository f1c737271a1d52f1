//! Checking calls of the builtins that create no parameters: activations, dropout,
//! reductions, shapes (`concat`, `flatten`, `reshape`, `patches`), softmax and the losses.
//!
//! In: a builtin's name and its arguments bound to the signature's slots ([`Bound`]).
//! Out: the typed call, or `None` after reporting why not. `builtin` is the dispatch for
//! every builtin: the layers with parameters are checked in [`super::layers`],
//! `propagate` in [`super::messages`].

use super::builtins::Bound;
use super::dim::{self, Dim};
use super::expr::{boxed, f32_scalar};
use super::typed::*;
use super::{show_type, Checker};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{Expr, ExprKind, Ident, Span};

impl<'p> Checker<'p> {
    pub(super) fn builtin(&mut self, name: &'static str, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        match name {
            "embed" => self.embed(bound, func, span),
            "linear" => self.linear(bound, func, span),
            "layer_norm" => self.layer_norm(bound, func, span),
            "self_attention" => self.self_attention(bound, func, span),
            "positions" => {
                self.error(
                    Diagnostic::new(
                        "positions(x) is only an argument of embed",
                        span,
                        "used here on its own",
                    )
                    .with_help("learned positional embeddings: `embed(positions(tokens), D)`"),
                );
                None
            }
            "relu" | "tanh" | "sigmoid" | "gelu" | "elu" => {
                let x = self.float_tensor_arg(bound, 0, name);
                let act = match name {
                    "relu" => Some(Activation::Relu),
                    "tanh" => Some(Activation::Tanh),
                    "sigmoid" => Some(Activation::Sigmoid),
                    "elu" => Some(Activation::Elu),
                    _ => self.gelu_form(bound.slots[1]),
                };
                let (x, act) = (x?, act?);
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::Activation(act, boxed(x)),
                    ty,
                })
            }
            "leaky_relu" => {
                let x = self.float_tensor_arg(bound, 0, name);
                let slope = match bound.slots[1] {
                    Some(e) => self.number(e)?,
                    None => 0.01,
                };
                let x = x?;
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::LeakyRelu { x: boxed(x), slope },
                    ty,
                })
            }
            "parameter" => self.parameter(bound, func, span),
            "dropout" => {
                let x = self.float_tensor_arg(bound, 0, name);
                let p_expr = bound.slots[1]?;
                let p = self.number(p_expr)?;
                if !(0.0..1.0).contains(&p) {
                    self.error(
                        Diagnostic::new("dropout probability must be in [0, 1)", p_expr.span, format!("p = {p}"))
                            .with_help("p is the chance that an element is zeroed, e.g. `dropout(h, 0.1)`"),
                    );
                    return None;
                }
                let x = x?;
                let stream = self.dropouts;
                self.dropouts += 1;
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::Dropout { x: boxed(x), p, stream },
                    ty,
                })
            }
            "sum" | "mean" | "max" => {
                let x = self.float_tensor_arg(bound, 0, name)?;
                let axis = self.axis(bound.slots[1], &x.ty, Some(0))?;
                if let Some(m) = bound.slots.get(2).copied().flatten() {
                    let mask = self.pad_mask(m, &x.ty.shape[..=axis])?;
                    let mut shape = x.ty.shape.clone();
                    shape.remove(axis);
                    return Some(TExpr {
                        kind: TKind::MaskedMean {
                            x: boxed(x),
                            axis,
                            mask,
                        },
                        ty: SymType {
                            dtype: DType::F32,
                            shape,
                        },
                    });
                }
                let op = match name {
                    "sum" => Reduction::Sum,
                    "mean" => Reduction::Mean,
                    _ => Reduction::Max,
                };
                let mut shape = x.ty.shape.clone();
                shape.remove(axis);
                Some(TExpr {
                    kind: TKind::Reduce { op, x: boxed(x), axis },
                    ty: SymType {
                        dtype: DType::F32,
                        shape,
                    },
                })
            }
            "concat" => self.concat(bound, span),
            "flatten" => {
                let x = self.tensor_arg(bound, 0)?;
                if x.ty.shape.is_empty() {
                    self.error(Diagnostic::new(
                        "cannot flatten a scalar",
                        bound.slots[0]?.span,
                        "this is a scalar",
                    ));
                    return None;
                }
                let shape = vec![x.ty.shape[0].clone(), dim::product(&x.ty.shape[1..])];
                let ty = SymType {
                    dtype: x.ty.dtype,
                    shape,
                };
                Some(TExpr {
                    kind: TKind::Reshape(boxed(x)),
                    ty,
                })
            }
            "reshape" => {
                let x = self.tensor_arg(bound, 0);
                let shape_expr = bound.slots[1]?;
                let ExprKind::List(items) = &shape_expr.kind else {
                    self.error(
                        Diagnostic::new("reshape needs a shape list", shape_expr.span, "not a list")
                            .with_help("write the new shape as a list, e.g. `reshape(x, [B, 8, 8])`"),
                    );
                    return None;
                };
                // One entry may be -1: the size that keeps the element count.
                let inferred: Vec<usize> = (0..items.len()).filter(|&k| is_minus_one(&items[k])).collect();
                if let [_, second, ..] = inferred[..] {
                    self.error(
                        Diagnostic::new("reshape can infer one size only", items[second].span, "a second -1")
                            .with_help("give every other size, e.g. `reshape(x, [-1, 8, 8])`"),
                    );
                    return None;
                }
                let dims: Option<Vec<Dim>> = items
                    .iter()
                    .map(|i| {
                        if is_minus_one(i) {
                            Some(Dim::lit(1))
                        } else {
                            self.size(i)
                        }
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect();
                let (x, mut dims) = (x?, dims?);
                if let Some(&k) = inferred.first() {
                    let known = dim::product(&dims);
                    let Some(size) = dim::product(&x.ty.shape).div_exact(&known) else {
                        self.error(
                            Diagnostic::new(
                                format!(
                                    "cannot reshape {} to {}",
                                    dim::show_shape(&x.ty.shape),
                                    show_items(items)
                                ),
                                shape_expr.span,
                                format!("{} elements do not divide into {known}", dim::product(&x.ty.shape)),
                            )
                            .with_help("the other sizes must divide the element count"),
                        );
                        return None;
                    };
                    dims[k] = size;
                }
                if dim::product(&dims) != dim::product(&x.ty.shape) {
                    self.error(
                        Diagnostic::new(
                            format!(
                                "cannot reshape {} to {}",
                                dim::show_shape(&x.ty.shape),
                                dim::show_shape(&dims)
                            ),
                            shape_expr.span,
                            format!(
                                "{} elements, but the input has {}",
                                dim::product(&dims),
                                dim::product(&x.ty.shape)
                            ),
                        )
                        .with_help("reshape keeps the number of elements"),
                    );
                    return None;
                }
                let ty = SymType {
                    dtype: x.ty.dtype,
                    shape: dims,
                };
                Some(TExpr {
                    kind: TKind::Reshape(boxed(x)),
                    ty,
                })
            }
            "softmax" | "log_softmax" => {
                let x = self.float_tensor_arg(bound, 0, name)?;
                if x.ty.shape.is_empty() {
                    self.error(Diagnostic::new(
                        format!("cannot take {name} of a scalar"),
                        bound.slots[0]?.span,
                        "scalar",
                    ));
                    return None;
                }
                let axis = self.axis(bound.slots[1], &x.ty, None)?;
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::Softmax {
                        x: boxed(x),
                        axis,
                        log: name == "log_softmax",
                    },
                    ty,
                })
            }
            "cross_entropy" => self.cross_entropy(bound),
            "propagate" => self.propagate(bound, span),
            "readout" => self.readout(bound),
            "attention" => self.attention(bound, func, span),
            "patches" => self.patches(bound),
            "mse" => {
                let pred = self.float_tensor_arg(bound, 0, name);
                let target = self.float_tensor_arg(bound, 1, name);
                let (pred, target) = (pred?, target?);
                if pred.ty.shape != target.ty.shape {
                    self.error(
                        Diagnostic::new(
                            format!(
                                "shape mismatch in 'mse': expected {}, found {}",
                                dim::show_shape(&pred.ty.shape),
                                dim::show_shape(&target.ty.shape)
                            ),
                            bound.slots[1]?.span,
                            format!("the target is {}", dim::show_shape(&target.ty.shape)),
                        )
                        .with_secondary(
                            bound.slots[0]?.span,
                            format!("the prediction is {}", dim::show_shape(&pred.ty.shape)),
                        )
                        .with_help("the prediction and the target must have the same shape"),
                    );
                    return None;
                }
                Some(TExpr {
                    kind: TKind::Mse {
                        pred: boxed(pred),
                        target: boxed(target),
                    },
                    ty: f32_scalar(),
                })
            }
            other => unreachable!("builtin '{other}' is in the table but has no checker"),
        }
    }

    pub(super) fn concat(&mut self, bound: &Bound, span: Span) -> Option<TExpr> {
        let xs: Vec<Option<TExpr>> = bound.rest.iter().map(|e| self.expr(e)).collect();
        let xs: Vec<TExpr> = xs.into_iter().collect::<Option<_>>()?;
        let first = &xs[0];
        if first.ty.shape.is_empty() {
            // Without an axis, `axis` picks the last one and a scalar has none: say so
            // here (it would return None without a diagnostic).
            self.error(
                Diagnostic::new("cannot concat a scalar", bound.rest[0].span, "scalar")
                    .with_help("concat joins tensors along an axis; e.g. `reshape` a scalar to [1] first"),
            );
            return None;
        }
        let axis = self.axis(bound.slots[1], &first.ty, None)?;
        let mut shape = first.ty.shape.clone();
        shape[axis] = Dim::lit(0);
        for (x, e) in xs.iter().zip(&bound.rest) {
            let rest_equal = x.ty.shape.len() == first.ty.shape.len()
                && x.ty
                    .shape
                    .iter()
                    .zip(&first.ty.shape)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if x.ty.dtype != first.ty.dtype || !rest_equal {
                self.error(
                    Diagnostic::new(
                        format!(
                            "cannot concat {} and {} along axis {axis}",
                            show_type(&first.ty),
                            show_type(&x.ty)
                        ),
                        e.span,
                        format!("this is {}", show_type(&x.ty)),
                    )
                    .with_secondary(bound.rest[0].span, format!("this is {}", show_type(&first.ty)))
                    .with_help("all axes but the concat axis must be equal"),
                );
                return None;
            }
            shape[axis] = shape[axis].add(&x.ty.shape[axis]);
        }
        let _ = span;
        let ty = SymType {
            dtype: first.ty.dtype,
            shape,
        };
        Some(TExpr {
            kind: TKind::Concat { xs, axis },
            ty,
        })
    }

    pub(super) fn cross_entropy(&mut self, bound: &Bound) -> Option<TExpr> {
        let logits = self.float_tensor_arg(bound, 0, "cross_entropy");
        let labels = self.tensor_arg(bound, 1);
        let (logits, labels) = (logits?, labels?);
        let (logits_span, labels_span) = (bound.slots[0]?.span, bound.slots[1]?.span);
        if labels.ty.dtype != DType::I32 {
            self.error(
                Diagnostic::new(
                    format!(
                        "wrong dtype for cross_entropy labels: expected i32 class ids, found {}",
                        show_type(&labels.ty)
                    ),
                    labels_span,
                    "this is f32",
                )
                .with_help("for f32 targets use `mse(pred, target)`"),
            );
            return None;
        }
        let Some((classes, batch)) = logits.ty.shape.split_last() else {
            self.error(Diagnostic::new(
                "cross_entropy needs logits with a class axis",
                logits_span,
                "this is a scalar",
            ));
            return None;
        };
        if batch != labels.ty.shape.as_slice() {
            let mut expected = labels.ty.shape.clone();
            expected.push(classes.clone());
            self.error(
                Diagnostic::new(
                    format!(
                        "shape mismatch in 'cross_entropy': expected logits {}, found {}",
                        dim::show_shape(&expected),
                        dim::show_shape(&logits.ty.shape)
                    ),
                    logits_span,
                    format!("this is {}", dim::show_shape(&logits.ty.shape)),
                )
                .with_secondary(labels_span, format!("labels are {}", dim::show_shape(&labels.ty.shape)))
                .with_help("logits are the labels' shape plus a class axis"),
            );
            return None;
        }
        if let TKind::Input(name) = &labels.kind {
            let declared = self
                .inputs
                .iter()
                .find(|i| &i.name == name)
                .and_then(|i| Some((i.classes?, i.span)));
            if let (Some((n, label_span)), Some(c)) = (declared, classes.as_lit()) {
                if n as i64 != c {
                    self.error(
                        Diagnostic::new(
                            format!("logits have {c} classes but '{name}' declares classes {n}"),
                            logits_span,
                            format!("{c} classes"),
                        )
                        .with_secondary(label_span, format!("declared with classes {n}"))
                        .with_help(format!(
                            "the last layer should produce {n} values, e.g. `linear(h, {n})`"
                        )),
                    );
                    return None;
                }
            }
        }
        Some(TExpr {
            kind: TKind::CrossEntropy {
                logits: boxed(logits),
                labels: boxed(labels),
            },
            ty: f32_scalar(),
        })
    }

    /// `patches(image, P)`: `[B, C, H, W]` with literal C, H, W divisible by P.
    pub(super) fn patches(&mut self, bound: &Bound) -> Option<TExpr> {
        let x = self.float_tensor_arg(bound, 0, "patches");
        let size = self.size(bound.slots[1]?);
        let (x, size) = (x?, size?);
        let lits: Option<Vec<i64>> = x.ty.shape.iter().skip(1).map(Dim::as_lit).collect();
        let p = size.as_lit().unwrap_or(0);
        let ok = x.ty.shape.len() == 4 && p > 0 && lits.as_ref().is_some_and(|l| l[1] % p == 0 && l[2] % p == 0);
        if !ok {
            self.error(
                Diagnostic::new(
                    format!("patches of size {size} need an image [B, C, H, W] with H and W divisible by {size}"),
                    bound.slots[0]?.span,
                    format!("this is {}", dim::show_shape(&x.ty.shape)),
                )
                .with_help("channels, height and width must be numbers, e.g. `input image: f32[B, 3, 32, 32]`"),
            );
            return None;
        }
        let l = lits?;
        let shape = vec![
            x.ty.shape[0].clone(),
            Dim::lit((l[1] / p) * (l[2] / p)),
            Dim::lit(l[0] * p * p),
        ];
        Some(TExpr {
            kind: TKind::Patches {
                x: Box::new(x),
                size: p as usize,
            },
            ty: SymType {
                dtype: DType::F32,
                shape,
            },
        })
    }
}

/// `-1` in a reshape's shape list.
fn is_minus_one(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Neg(x) if matches!(x.kind, ExprKind::Int(1)))
}

/// A shape list as written, `[-1, 8, 8]`.
fn show_items(items: &[Expr]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match &i.kind {
            ExprKind::Int(v) => v.to_string(),
            ExprKind::Name(n) => n.clone(),
            _ if is_minus_one(i) => "-1".to_string(),
            _ => "?".to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

impl Checker<'_> {
    /// `gelu(x)` is PyTorch's default exact form (`approximate="none"`, written here by
    /// leaving the argument out); `approximate: tanh` its tanh form.
    fn gelu_form(&mut self, approximate: Option<&Expr>) -> Option<Activation> {
        match approximate.map(|e| &e.kind) {
            None => Some(Activation::Gelu),
            Some(ExprKind::Name(n)) if n == "tanh" => Some(Activation::GeluTanh),
            Some(_) => {
                let e = approximate?;
                self.error(
                    Diagnostic::new("gelu's approximation can only be tanh", e.span, "not `tanh`").with_help(
                        "write `gelu(x)` for the exact form (erf, PyTorch's default) or `gelu(x, approximate: tanh)`",
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::check;

    /// The errors of `src` as one string; panics if it checks.
    fn errors(src: &str) -> String {
        let Err(diags) = check(src) else {
            panic!("this checked:\n{src}")
        };
        diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("\n")
    }

    /// Found by the fuzzer (`fuzz/corpus/model_source/found-concat-scalar.mp`): a scalar
    /// first argument of `concat` without `axis:` gave no diagnostic, and `check`
    /// panicked on the missing loss.
    #[test]
    fn concat_of_a_scalar_is_an_error() {
        let model = |call: &str| {
            format!("model R {{ dims {{ B = 2 }} input x: f32[B, 3] label y: f32[B, 6] loss mse({call}, y) }}")
        };
        assert_eq!(errors(&model("concat(8, x)")), "cannot concat a scalar");
        assert_eq!(errors(&model("concat(8 * 1, 2)")), "cannot concat a scalar");
        assert!(errors(&model("concat(8, 8, axis: 0)")).contains("cannot concat a scalar"));
        assert!(errors(&model("concat(x, 8)")).contains("cannot concat f32[B, 3] and f32[]"));
    }
}
