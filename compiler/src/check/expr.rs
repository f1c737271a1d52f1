//! Checking expressions: names, arithmetic, builtin calls and message calls.
//!
//! In: an AST expression in the current scope. Out: a typed expression ([`TExpr`]), or
//! `None` after reporting why not. Parameter-creating builtins (`embed`, `linear`)
//! register their parameters here, named `<scope>.<builtin>[_k].<weight|bias>`, where
//! the scope is the binding's name (`loss` for the loss, the message's name inside a
//! message) and `_k` counts the scope's earlier calls of that builtin.

use super::builtins::{self, Bound};
use super::dim::{self, Dim};
use super::suggest;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{BinOp, Expr, ExprKind, Ident, Span};

fn boxed(t: TExpr) -> Box<TExpr> {
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

    fn name(&mut self, name: &str, span: Span) -> Option<TExpr> {
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

    fn want_float(&mut self, t: &TExpr, span: Span, what: &str) -> Option<()> {
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
    fn arith_spanned(
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

    fn call(&mut self, func: &Ident, args: &[crate::syntax::ast::Arg], span: Span) -> Option<TExpr> {
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
    fn tensor_arg(&mut self, bound: &Bound, k: usize) -> Option<TExpr> {
        self.expr(bound.slots[k]?)
    }

    fn float_tensor_arg(&mut self, bound: &Bound, k: usize, func: &str) -> Option<TExpr> {
        let t = self.tensor_arg(bound, k)?;
        self.want_float(&t, bound.slots[k]?.span, &format!("'{func}'"))?;
        Some(t)
    }

    fn builtin(&mut self, name: &'static str, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
        match name {
            "embed" => self.embed(bound, func, span),
            "linear" => self.linear(bound, func, span),
            "relu" | "tanh" | "sigmoid" | "gelu" => {
                let x = self.float_tensor_arg(bound, 0, name)?;
                let act = match name {
                    "relu" => Activation::Relu,
                    "tanh" => Activation::Tanh,
                    "sigmoid" => Activation::Sigmoid,
                    _ => Activation::Gelu,
                };
                let ty = x.ty.clone();
                Some(TExpr {
                    kind: TKind::Activation(act, boxed(x)),
                    ty,
                })
            }
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
                let dims: Option<Vec<Dim>> = items
                    .iter()
                    .map(|i| self.size(i))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect();
                let (x, dims) = (x?, dims?);
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

    fn embed(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
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
    fn vocab_of(&self, t: &TExpr) -> Option<usize> {
        match &t.kind {
            TKind::Input(name) => self.inputs.iter().find(|i| &i.name == name)?.vocab,
            TKind::Binding(i) => self.vocab_of(&self.bindings[*i].1),
            TKind::Reshape(x) => self.vocab_of(x),
            _ => None,
        }
    }

    fn linear(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
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
        let base = self.param_base("linear", bound.slots[2], span)?;
        // PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        let init = Init::UniformFanIn { fan_in: fan_in.clone() };
        let weight = self.param(
            &format!("{base}.weight"),
            vec![fan_in, out.clone()],
            init.clone(),
            func.span,
        )?;
        let bias = self.param(&format!("{base}.bias"), vec![out.clone()], init, func.span)?;
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

    fn concat(&mut self, bound: &Bound, span: Span) -> Option<TExpr> {
        let xs: Vec<Option<TExpr>> = bound.rest.iter().map(|e| self.expr(e)).collect();
        let xs: Vec<TExpr> = xs.into_iter().collect::<Option<_>>()?;
        let first = &xs[0];
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

    fn cross_entropy(&mut self, bound: &Bound) -> Option<TExpr> {
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

    /// `f(a, b)` for a message `f(x, y) = body`: the body checked with `x = a, y = b`;
    /// its parameters are named after `f` and shared by every call.
    fn message_call(&mut self, m: usize, func: &Ident, args: &[crate::syntax::ast::Arg], span: Span) -> Option<TExpr> {
        let def = self.messages[m];
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            self.error(Diagnostic::new(
                format!("message '{}' takes positional arguments only", func.name),
                named.span,
                "named argument",
            ));
            return None;
        }
        if args.len() != def.params.len() {
            let params: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
            self.error(
                Diagnostic::new(
                    format!(
                        "message '{}' takes {} arguments, found {}",
                        func.name,
                        def.params.len(),
                        args.len()
                    ),
                    span,
                    format!("expected {}({})", func.name, params.join(", ")),
                )
                .with_secondary(def.name.span, "defined here"),
            );
            return None;
        }
        if self.locals.len() >= 16 {
            self.error(Diagnostic::new(
                "messages call each other too deeply",
                span,
                "16 levels deep here",
            ));
            return None;
        }
        let values: Vec<Option<TExpr>> = args.iter().map(|a| self.expr(&a.value)).collect();
        let values: Vec<TExpr> = values.into_iter().collect::<Option<_>>()?;
        self.inline_message(m, values, span, &func.name)
    }

    /// The body of message `m` checked with its parameters bound to `values`; the
    /// parameters it creates are named after the message and shared by every use.
    fn inline_message(&mut self, m: usize, values: Vec<TExpr>, span: Span, call: &str) -> Option<TExpr> {
        let def = self.messages[m];
        let frame = def.params.iter().map(|p| p.name.clone()).zip(values).collect();
        let saved_scope = std::mem::replace(&mut self.param_scope, def.name.name.clone());
        self.param_counts.retain(|(s, _), _| s != &def.name.name);
        self.locals.push(frame);
        self.call_sites.push((span, call.to_string()));
        let result = self.expr(&def.body);
        self.call_sites.pop();
        self.locals.pop();
        self.param_scope = saved_scope;
        result
    }

    /// The parameter base name of a call: `name: x` if given, else `<scope>.<builtin>[_k]`.
    fn param_base(&mut self, builtin: &'static str, explicit: Option<&Expr>, span: Span) -> Option<String> {
        if let Some(e) = explicit {
            return match &e.kind {
                ExprKind::Name(n) => Some(n.clone()),
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
    fn param(&mut self, name: &str, shape: Vec<Dim>, init: Init, span: Span) -> Option<String> {
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

    /// A size argument: a positive integer or a declared dim.
    fn size(&mut self, e: &Expr) -> Option<Dim> {
        match &e.kind {
            ExprKind::Int(v) if *v > 0 && *v <= u32::MAX as i64 => Some(Dim::lit(*v)),
            ExprKind::Name(n) if matches!(self.scope.get(n).map(|d| &d.entry), Some(Entry::Dim)) => Some(Dim::named(n)),
            _ => {
                self.error(
                    Diagnostic::new("expected a size", e.span, "not a positive integer or dim")
                        .with_help("sizes are positive integers (`64`) or names from `dims { ... }`"),
                );
                None
            }
        }
    }

    /// A number literal (int or float, possibly negated).
    fn number(&mut self, e: &Expr) -> Option<f64> {
        match &e.kind {
            ExprKind::Int(v) => Some(*v as f64),
            ExprKind::Float(v) => Some(*v),
            ExprKind::Neg(x) => self.number(x).map(|v| -v),
            _ => {
                self.error(Diagnostic::new("expected a number", e.span, "not a number literal"));
                None
            }
        }
    }

    /// An axis argument normalized to `0..rank`; `default` when omitted (`None`: -1).
    fn axis(&mut self, e: Option<&Expr>, ty: &SymType, default: Option<usize>) -> Option<usize> {
        let rank = ty.shape.len() as i64;
        let Some(e) = e else {
            return match default {
                Some(a) if (a as i64) < rank => Some(a),
                _ if rank > 0 => Some(rank as usize - 1),
                _ => None,
            };
        };
        let value = match &e.kind {
            ExprKind::Int(v) => *v,
            ExprKind::Neg(x) => match x.kind {
                ExprKind::Int(v) => -v,
                _ => i64::MAX,
            },
            _ => i64::MAX,
        };
        if value == i64::MAX {
            self.error(
                Diagnostic::new("expected an axis", e.span, "not an integer")
                    .with_help("axes are integers, e.g. `axis: 1` or `axis: -1`"),
            );
            return None;
        }
        if value < -rank || value >= rank {
            let help = if rank == 0 {
                "a scalar has no axes".to_string()
            } else {
                format!(
                    "axes of a rank-{rank} tensor are 0..{} (or -{rank}..-1 from the end)",
                    rank - 1
                )
            };
            self.error(
                Diagnostic::new(
                    format!("axis {value} is out of range for {}", show_type(ty)),
                    e.span,
                    format!("rank {rank} has no axis {value}"),
                )
                .with_help(help),
            );
            return None;
        }
        Some(if value < 0 {
            (value + rank) as usize
        } else {
            value as usize
        })
    }
}

impl<'p> Checker<'p> {
    /// `propagate(g, x, m, aggregate: mean)`: message `m(src, dst[, edge])` on every edge
    /// of `g`, aggregated at the destination nodes.
    fn propagate(&mut self, bound: &Bound, span: Span) -> Option<TExpr> {
        let (g_expr, m_expr) = (bound.slots[0]?, bound.slots[2]?);
        let graph = match &g_expr.kind {
            ExprKind::Name(n) => match self.scope.get(n).map(|d| d.entry.clone()) {
                Some(Entry::Graph(g)) => Some(g),
                Some(Entry::Poisoned) => return None,
                _ => None,
            },
            _ => None,
        };
        let x = self.float_tensor_arg(bound, 1, "propagate");
        let message = match &m_expr.kind {
            ExprKind::Name(n) => match self.scope.get(n).map(|d| d.entry.clone()) {
                Some(Entry::Message(m)) => Some(m),
                Some(Entry::Poisoned) => return None,
                _ => None,
            },
            _ => None,
        };
        let op = match bound.slots[3].map(|e| &e.kind) {
            None => Some(Reduction::Sum),
            Some(ExprKind::Name(n)) if n == "sum" => Some(Reduction::Sum),
            Some(ExprKind::Name(n)) if n == "mean" => Some(Reduction::Mean),
            Some(ExprKind::Name(n)) if n == "max" => Some(Reduction::Max),
            Some(_) => {
                let e = bound.slots[3]?;
                self.error(
                    Diagnostic::new("unknown aggregation", e.span, "not sum, mean or max")
                        .with_help("write `aggregate: sum`, `aggregate: mean` or `aggregate: max`"),
                );
                None
            }
        };
        let Some(graph) = graph else {
            self.error(
                Diagnostic::new("propagate needs a graph", g_expr.span, "not a graph")
                    .with_help("declare one with `graph g { nodes N, edges i32[2, E] }` and pass its name"),
            );
            return None;
        };
        let Some(message) = message else {
            self.error(
                Diagnostic::new("propagate needs a message", m_expr.span, "not a message")
                    .with_help("define one, e.g. `message m(src, dst) = linear(src, 64)`, and pass its name"),
            );
            return None;
        };
        let (x, op) = (x?, op?);
        let info = self.graphs[graph].clone();
        let x_span = bound.slots[1]?.span;
        if x.ty.shape.len() != 2 || x.ty.shape[0] != info.nodes {
            self.error(
                Diagnostic::new(
                    format!(
                        "propagate over '{}' needs node features [{}, D], found {}",
                        info.name,
                        info.nodes,
                        dim::show_shape(&x.ty.shape)
                    ),
                    x_span,
                    format!("this is {}", dim::show_shape(&x.ty.shape)),
                )
                .with_help(format!("one row per node of graph '{}'", info.name)),
            );
            return None;
        }
        let def = self.messages[message];
        let arity = def.params.len();
        if !(1..=3).contains(&arity) || (arity == 3 && info.features_input.is_none()) {
            let help = if arity == 3 {
                format!(
                    "graph '{}' has no edge features: declare `features f32[{}, F]`",
                    info.name, info.edges
                )
            } else {
                "a message reads (src), (src, dst) or (src, dst, edge features)".to_string()
            };
            self.error(
                Diagnostic::new(
                    format!("message '{}' takes {arity} arguments", def.name.name),
                    m_expr.span,
                    "cannot be passed these",
                )
                .with_secondary(def.name.span, "defined here")
                .with_help(help),
            );
            return None;
        }
        let gathered = |end| TExpr {
            kind: TKind::EdgeGather {
                x: Box::new(x.clone()),
                graph,
                end,
            },
            ty: SymType {
                dtype: DType::F32,
                shape: vec![info.edges.clone(), x.ty.shape[1].clone()],
            },
        };
        let mut values = vec![gathered(EdgeEnd::Source), gathered(EdgeEnd::Destination)];
        if let Some(f) = &info.features_input {
            let ty = self.inputs.iter().find(|i| &i.name == f).map(|i| i.ty.clone())?;
            values.push(TExpr {
                kind: TKind::Input(f.clone()),
                ty,
            });
        }
        values.truncate(arity);
        let messages = self.inline_message(message, values, span, &def.name.name)?;
        if messages.ty.dtype != DType::F32 || messages.ty.shape.len() != 2 || messages.ty.shape[0] != info.edges {
            self.error(
                Diagnostic::new(
                    format!(
                        "message '{}' must give one f32 row per edge, [{}, D], found {}",
                        def.name.name,
                        info.edges,
                        show_type(&messages.ty)
                    ),
                    def.body.span,
                    "this body",
                )
                .with_secondary(m_expr.span, "used here"),
            );
            return None;
        }
        let ty = SymType {
            dtype: DType::F32,
            shape: vec![info.nodes.clone(), messages.ty.shape[1].clone()],
        };
        Some(TExpr {
            kind: TKind::Aggregate {
                graph,
                messages: Box::new(messages),
                op,
            },
            ty,
        })
    }

    /// `attention(t, v, a)`: node vectors of one type `[B, D]`, fused with a learned query.
    fn attention(&mut self, bound: &Bound, func: &Ident, span: Span) -> Option<TExpr> {
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

    /// `patches(image, P)`: `[B, C, H, W]` with literal C, H, W divisible by P.
    fn patches(&mut self, bound: &Bound) -> Option<TExpr> {
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

fn scalar(v: f64) -> TExpr {
    TExpr {
        kind: TKind::Scalar(v),
        ty: f32_scalar(),
    }
}

fn f32_scalar() -> SymType {
    SymType {
        dtype: DType::F32,
        shape: Vec::new(),
    }
}
