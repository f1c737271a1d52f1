//! Checking expressions: names, numbers, arithmetic and the dispatch of calls.
//!
//! In: an AST expression in the current scope. Out: a typed expression ([`TExpr`]), or
//! `None` after reporting why not. A call goes to a message ([`super::messages`]) or to a
//! builtin ([`super::calls`], whose parameter-creating layers are in [`super::layers`]);
//! argument literals (sizes, numbers, axes) are read in [`super::args`].

use super::builtins::{self, Bound};
use super::dim;
use super::suggest;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{BinOp, Expr, ExprKind, Ident, Span};

pub(super) fn boxed(t: TExpr) -> Box<TExpr> {
    Box::new(t)
}

impl<'p> Checker<'p> {
    pub(super) fn expr(&mut self, e: &Expr) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Name(name) => self.name(name, e.span),
            ExprKind::Int(v) => Some(scalar(*v as f64)),
            ExprKind::Float(v) => Some(scalar(*v)),
            ExprKind::Neg(x) => {
                let x = self.expr(x)?;
                self.want_float(&x, e.span, "'-'")?;
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::Neg(boxed(x)),
                    ty,
                })
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.expr(lhs), self.expr(rhs));
                let op = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                };
                self.arith_spanned(op, a?, lhs.span, b?, rhs.span, e.span)
            }
            ExprKind::List(_) => {
                self.error(
                    Diagnostic::new("a list is not a tensor", e.span, "list here")
                        .with_help("lists are shapes, as in `reshape(x, [B, 8, 8])`"),
                );
                None
            }
            ExprKind::Call { func, args } => self.call(func, args, e.span),
        }
    }

    pub(super) fn name(&mut self, name: &str, span: Span) -> Option<TExpr> {
        for frame in self.locals.iter().rev() {
            if let Some(t) = frame.get(name) {
                return Some(t.clone());
            }
        }
        let Some(defined) = self.scope.get(name) else {
            if let Some(&def) = self.all_names.get(name) {
                // Defined in the model, but not yet: later, or by this very binding.
                let d = if def.start > span.start {
                    Diagnostic::new(format!("'{name}' is used before its definition"), span, "used here")
                        .with_secondary(def, "defined later here")
                        .with_help(format!(
                            "a name can only be used below its definition: move the definition of '{name}' above this line"
                        ))
                } else {
                    Diagnostic::new(format!("'{name}' is used in its own definition"), span, "used here")
                        .with_secondary(def, "being defined here")
                        .with_help("a binding cannot refer to itself; to update a value repeatedly, make it a `node` and use `rounds`")
                };
                self.error(d);
                return None;
            }
            // Suggest only names that are values here: message parameters, inputs and bindings.
            let mut candidates: Vec<String> = self.locals.iter().flat_map(|f| f.keys().cloned()).collect();
            candidates.extend(
                self.scope
                    .iter()
                    .filter(|(_, d)| matches!(d.entry, Entry::Input(_) | Entry::Binding { .. } | Entry::Poisoned))
                    .map(|(n, _)| n.clone()),
            );
            let mut d = Diagnostic::new(format!("unknown name '{name}'"), span, "not defined");
            d = match suggest::did_you_mean(name, candidates.iter().map(String::as_str)) {
                Some(h) => d.with_help(h),
                None if builtins::lookup(name).is_some() => d.with_help(format!("'{name}' is a function: call it")),
                None => d.with_help("names must be defined (input, label, let, node) before they are used"),
            };
            self.error(d);
            return None;
        };
        match defined.entry.clone() {
            Entry::Input(i) => {
                let input = &self.inputs[i];
                Some(TExpr {
                    kind: TKind::Input(input.name.clone()),
                    ty: input.ty.clone(),
                })
            }
            Entry::Binding { index, .. } => Some(TExpr {
                kind: TKind::Binding(index),
                ty: self.bindings[index].1.ty.clone(),
            }),
            Entry::Poisoned => None,
            Entry::Dim => {
                self.error(
                    Diagnostic::new(format!("'{name}' is a dim, not a tensor"), span, "used as a value here")
                        .with_help("dims are sizes: use them in shapes and size arguments such as `linear(x, H)`"),
                );
                None
            }
            Entry::Message(_) => {
                self.error(
                    Diagnostic::new(
                        format!("'{name}' is a message, not a tensor"),
                        span,
                        "used as a value here",
                    )
                    .with_help(format!("call it: `{name}(x, y)`")),
                );
                None
            }
            Entry::Graph(_) => {
                self.error(
                    Diagnostic::new(
                        format!("'{name}' is a graph, not a tensor"),
                        span,
                        "used as a value here",
                    )
                    .with_help("graphs are read by `propagate`, which arrives with graph message passing"),
                );
                None
            }
        }
    }

    pub(super) fn want_float(&mut self, t: &TExpr, span: Span, what: &str) -> Option<()> {
        if t.ty.dtype == DType::F32 {
            return Some(());
        }
        self.error(
            Diagnostic::new(
                format!("wrong dtype for {what}: expected f32, found {}", show_type(&t.ty)),
                span,
                "this is i32",
            )
            .with_help("i32 tensors hold token ids and labels; embed them first, e.g. `embed(tokens, 64)`"),
        );
        None
    }

    pub(super) fn arith(&mut self, op: Arith, a: TExpr, a_span: Span, b: TExpr, b_span: Span) -> Option<TExpr> {
        let span = Span::new(a_span.start, b_span.end.max(a_span.start));
        self.arith_spanned(op, a, a_span, b, b_span, span)
    }

    /// Elementwise arithmetic with right-aligned broadcasting: the shorter shape must be
    /// a suffix of the longer one; numbers broadcast to anything.
    pub(super) fn arith_spanned(
        &mut self,
        op: Arith,
        a: TExpr,
        a_span: Span,
        b: TExpr,
        b_span: Span,
        span: Span,
    ) -> Option<TExpr> {
        let symbol = ["+", "-", "*", "/"][op as usize];
        self.want_float(&a, a_span, &format!("'{symbol}'"))?;
        self.want_float(&b, b_span, &format!("'{symbol}'"))?;
        let (long, short) = if a.ty.shape.len() >= b.ty.shape.len() {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let scalar_literal = matches!(short.kind, TKind::Scalar(_));
        if !scalar_literal && !long.ty.shape.ends_with(&short.ty.shape) {
            self.error(
                Diagnostic::new(
                    format!(
                        "shape mismatch in '{symbol}': {} and {}",
                        dim::show_shape(&a.ty.shape),
                        dim::show_shape(&b.ty.shape)
                    ),
                    b_span,
                    format!("this is {}", dim::show_shape(&b.ty.shape)),
                )
                .with_secondary(a_span, format!("this is {}", dim::show_shape(&a.ty.shape)))
                .with_help("operands must have equal shapes, or one must match the other's trailing axes"),
            );
            return None;
        }
        let _ = span;
        let ty = long.ty.clone();
        Some(TExpr {
            kind: TKind::Arith(op, boxed(a), boxed(b)),
            ty,
        })
    }

    pub(super) fn call(&mut self, func: &Ident, args: &[crate::syntax::ast::Arg], span: Span) -> Option<TExpr> {
        if let Some(Entry::Message(m)) = self.scope.get(&func.name).map(|d| d.entry.clone()) {
            return self.message_call(m, func, args, span);
        }
        let Some(builtin) = builtins::lookup(&func.name) else {
            let mut d = Diagnostic::new(
                format!("unknown function '{}'", func.name),
                func.span,
                "not a builtin or message",
            );
            let names = builtins::BUILTINS.iter().map(|b| b.name);
            d = match suggest::did_you_mean(&func.name, names) {
                Some(h) => d.with_help(h),
                None if func.name == "propagate" => {
                    d.with_help("graph message passing (`propagate`) is not implemented yet")
                }
                None => d.with_help(format!(
                    "the builtins are: {}",
                    builtins::BUILTINS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
                )),
            };
            self.error(d);
            // Still check the arguments, for their own errors.
            for a in args {
                self.expr(&a.value);
            }
            return None;
        };
        let bound = match builtin.bind(args, span) {
            Ok(b) => b,
            Err(d) => {
                self.error(d);
                return None;
            }
        };
        self.builtin(builtin.name, &bound, func, span)
    }

    /// The tensor in slot `k`.
    pub(super) fn tensor_arg(&mut self, bound: &Bound, k: usize) -> Option<TExpr> {
        self.expr(bound.slots[k]?)
    }

    pub(super) fn float_tensor_arg(&mut self, bound: &Bound, k: usize, func: &str) -> Option<TExpr> {
        let t = self.tensor_arg(bound, k)?;
        self.want_float(&t, bound.slots[k]?.span, &format!("'{func}'"))?;
        Some(t)
    }
}

pub(super) fn scalar(v: f64) -> TExpr {
    TExpr {
        kind: TKind::Scalar(v),
        ty: f32_scalar(),
    }
}

pub(super) fn f32_scalar() -> SymType {
    SymType {
        dtype: DType::F32,
        shape: Vec::new(),
    }
}
