//! Checking message calls and `propagate`.
//!
//! In: a call of a message `f(x, y) = body`, or `propagate(g, x, m, aggregate: ..)`.
//! Out: the message's body checked with its parameters bound to the argument values
//! (inlined: the typed body, not a call), or for `propagate` an aggregation over the
//! graph's edges of the body checked with gathered source/destination rows (and edge
//! features). The parameters a message creates are named after it and shared by every
//! call.

use super::builtins::Bound;
use super::dim;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{Arg, ExprKind, Ident, Span};

impl<'p> Checker<'p> {
    /// `f(a, b)` for a message `f(x, y) = body`: the body checked with `x = a, y = b`;
    /// its parameters are named after `f` and shared by every call.
    pub(super) fn message_call(&mut self, m: usize, func: &Ident, args: &[Arg], span: Span) -> Option<TExpr> {
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
    pub(super) fn inline_message(&mut self, m: usize, values: Vec<TExpr>, span: Span, call: &str) -> Option<TExpr> {
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

    /// `propagate(g, x, m, aggregate: mean)`: message `m(src, dst[, edge])` on every edge
    /// of `g`, aggregated at the destination nodes.
    pub(super) fn propagate(&mut self, bound: &Bound, span: Span) -> Option<TExpr> {
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
}
