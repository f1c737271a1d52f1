//! Checking message calls and `propagate`.
//!
//! In: a call of a message `f(x, y) = body`, or `propagate(g, x, m, aggregate: ..)`.
//! Out: the message's body checked with its parameters bound to the argument values
//! (inlined: the typed body, not a call), or for `propagate` an aggregation over the
//! graph's edges of the body checked with gathered source/destination rows (and edge
//! features), or with `aggregate: softmax, score: s` a softmax-weighted sum whose
//! weights come from the score message. The parameters a message creates are named
//! after it and shared by every call.

use super::builtins::Bound;
use super::dim;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{Arg, Expr, ExprKind, Ident, Span};

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
        let graph = self.graph_named(g_expr)?;
        let x = self.float_tensor_arg(bound, 1, "propagate");
        let message = self.message_named(m_expr)?;
        // `None` is the softmax aggregation, which weighs the messages by their scores.
        let op = match bound.slots[3].map(|e| &e.kind) {
            None => Some(Some(Reduction::Sum)),
            Some(ExprKind::Name(n)) if n == "sum" => Some(Some(Reduction::Sum)),
            Some(ExprKind::Name(n)) if n == "mean" => Some(Some(Reduction::Mean)),
            Some(ExprKind::Name(n)) if n == "max" => Some(Some(Reduction::Max)),
            Some(ExprKind::Name(n)) if n == "softmax" => Some(None),
            Some(_) => {
                let e = bound.slots[3]?;
                self.error(
                    Diagnostic::new("unknown aggregation", e.span, "not sum, mean, max or softmax").with_help(
                        "write `aggregate: sum`, `aggregate: mean`, `aggregate: max` or `aggregate: softmax, score: s`",
                    ),
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
        let score = match (op, bound.slots[4]) {
            (None, Some(s_expr)) => match self.message_named(s_expr)? {
                Some(s) => Some((s, s_expr)),
                None => {
                    self.error(
                        Diagnostic::new("a score is a message", s_expr.span, "not a message")
                            .with_help("define one giving a row of scores per edge, e.g. `message s(src, dst) = linear(concat(src, dst), 1)`"),
                    );
                    return None;
                }
            },
            (None, None) => {
                self.error(
                    Diagnostic::new("aggregate: softmax needs a score", span, "no `score:` given").with_help(
                        "pass a message giving each edge's scores [E, heads]: `aggregate: softmax, score: s`",
                    ),
                );
                return None;
            }
            (Some(_), Some(s_expr)) => {
                self.error(
                    Diagnostic::new(
                        "a score weighs messages only with aggregate: softmax",
                        s_expr.span,
                        "score given here",
                    )
                    .with_help("write `aggregate: softmax, score: s`, or drop the score"),
                );
                return None;
            }
            (Some(_), None) => None,
        };
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
        let messages = self.edge_message(message, m_expr, &info, graph, &x, span)?;
        let width = messages.ty.shape[1].clone();
        let ty = SymType {
            dtype: DType::F32,
            shape: vec![info.nodes.clone(), width.clone()],
        };
        let Some(op) = op else {
            let (score, s_expr) = score?;
            let scores = self.edge_message(score, s_expr, &info, graph, &x, span)?;
            let heads = scores.ty.shape[1].clone();
            if width.div_exact(&heads).is_none() {
                self.error(
                    Diagnostic::new(
                        format!("{heads} heads of scores cannot weigh messages of width {width}"),
                        s_expr.span,
                        format!("gives {} per edge", dim::show_shape(&scores.ty.shape[1..])),
                    )
                    .with_help("head h weighs its share of the message's columns, so the width must divide by the number of heads"),
                );
                return None;
            }
            return Some(TExpr {
                kind: TKind::SoftmaxAggregate {
                    graph,
                    messages: Box::new(messages),
                    scores: Box::new(scores),
                },
                ty,
            });
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

    /// The graph named by `e`: `Some(None)` when `e` names something else, `None` when
    /// its declaration failed to check.
    fn graph_named(&self, e: &Expr) -> Option<Option<usize>> {
        match &e.kind {
            ExprKind::Name(n) => match self.scope.get(n).map(|d| d.entry.clone()) {
                Some(Entry::Graph(g)) => Some(Some(g)),
                Some(Entry::Poisoned) => None,
                _ => Some(None),
            },
            _ => Some(None),
        }
    }

    /// `readout(g, x, sum|mean|max)`: the node vectors `x: [N, D]` of a batch of graphs
    /// (`graph g { .., graphs G }`) pooled per graph: `[G, D]`.
    pub(super) fn readout(&mut self, bound: &Bound) -> Option<TExpr> {
        let (g_expr, op_expr) = (bound.slots[0]?, bound.slots[2]?);
        let graph = self.graph_named(g_expr)?;
        let x = self.float_tensor_arg(bound, 1, "readout");
        let op = match &op_expr.kind {
            ExprKind::Name(n) if n == "sum" => Some(Reduction::Sum),
            ExprKind::Name(n) if n == "mean" => Some(Reduction::Mean),
            ExprKind::Name(n) if n == "max" => Some(Reduction::Max),
            _ => {
                self.error(
                    Diagnostic::new("unknown readout", op_expr.span, "not sum, mean or max")
                        .with_help("write `readout(g, h, sum)`, `readout(g, h, mean)` or `readout(g, h, max)`"),
                );
                None
            }
        };
        let Some(graph) = graph else {
            self.error(
                Diagnostic::new("readout needs a graph", g_expr.span, "not a graph").with_help(
                    "declare a batch of graphs with `graph g { nodes N, edges i32[2, E], graphs G }` and pass its name",
                ),
            );
            return None;
        };
        let info = self.graphs[graph].clone();
        let Some(graphs) = info.graphs.clone() else {
            self.error(
                Diagnostic::new(
                    format!("readout needs a batch of graphs, and '{}' is one graph", info.name),
                    g_expr.span,
                    "one graph",
                )
                .with_help(format!(
                    "declare `graphs G` in graph '{}' to train on a data set of many graphs, one target per graph",
                    info.name
                )),
            );
            return None;
        };
        let (x, op) = (x?, op?);
        if x.ty.shape.len() != 2 || x.ty.shape[0] != info.nodes {
            let shape = dim::show_shape(&x.ty.shape);
            self.error(
                Diagnostic::new(
                    format!(
                        "readout over '{}' needs node vectors [{}, D], found {shape}",
                        info.name, info.nodes
                    ),
                    bound.slots[1]?.span,
                    format!("this is {shape}"),
                )
                .with_help(format!("one row per node of the batch of graphs '{}'", info.name)),
            );
            return None;
        }
        let ty = SymType {
            dtype: DType::F32,
            shape: vec![graphs, x.ty.shape[1].clone()],
        };
        Some(TExpr {
            kind: TKind::Readout {
                graph,
                x: Box::new(x),
                op,
            },
            ty,
        })
    }

    /// The message named by `e`: `Some(None)` when `e` names something else,
    /// `None` when its definition failed to check.
    fn message_named(&mut self, e: &Expr) -> Option<Option<usize>> {
        Some(match &e.kind {
            ExprKind::Name(n) => match self.scope.get(n).map(|d| d.entry.clone()) {
                Some(Entry::Message(m)) => Some(m),
                Some(Entry::Poisoned) => return None,
                _ => None,
            },
            _ => None,
        })
    }

    /// Message `message` evaluated on every edge of graph `info` (self-loops included):
    /// its parameters bound to the source rows of `x`, the destination rows and the edge
    /// features, as many as it takes. The result must be one f32 row per edge.
    fn edge_message(
        &mut self,
        message: usize,
        m_expr: &Expr,
        info: &GraphInfo,
        graph: usize,
        x: &TExpr,
        span: Span,
    ) -> Option<TExpr> {
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
                shape: vec![info.message_rows(), x.ty.shape[1].clone()],
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
        let rows = info.message_rows();
        if messages.ty.dtype != DType::F32 || messages.ty.shape.len() != 2 || messages.ty.shape[0] != rows {
            self.error(
                Diagnostic::new(
                    format!(
                        "message '{}' must give one f32 row per edge, [{}, D], found {}",
                        def.name.name,
                        rows,
                        show_type(&messages.ty)
                    ),
                    def.body.span,
                    "this body",
                )
                .with_secondary(m_expr.span, "used here"),
            );
            return None;
        }
        Some(messages)
    }
}
