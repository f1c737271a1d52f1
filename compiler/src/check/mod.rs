//! Check: the AST of a model -> a [`CheckedModel`] with symbolic types and parameters.
//!
//! In: a parsed [`Program`]. Out: the checked model, or every error found in it (the
//! checker keeps going after an error, marking the faulty value as unknown so one
//! mistake does not cascade into many). It resolves names, infers symbolic shapes over
//! the model's dims, checks dtypes and axes, creates parameters with stable names, and
//! reads the `train` block. Expressions are checked in [`expr`], the train block in
//! [`train`].

pub mod builtins;
pub mod dim;
mod expr;
pub mod suggest;
mod train;
pub mod typed;

pub use typed::*;

use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{self, DimRef, Item, Program, Span, TensorTypeExpr};
use dim::Dim;
use std::collections::HashMap;

/// What a name in the model's scope refers to.
#[derive(Clone, Debug)]
enum Entry {
    Dim,
    /// An input or label (index into `inputs`).
    Input(usize),
    /// A `let` or `node` binding (index into `bindings`); `node` marks message-passing nodes.
    Binding {
        index: usize,
        node: bool,
    },
    /// A message function (index into the program's message definitions).
    Message(usize),
    Graph(usize),
    /// A name whose definition had an error: uses of it report nothing more.
    Poisoned,
}

struct Defined {
    entry: Entry,
    span: Span,
}

pub(crate) struct Checker<'p> {
    diags: Vec<Diagnostic>,
    /// When set (rounds after the first), errors are already reported: stay quiet.
    quiet: bool,
    scope: HashMap<String, Defined>,
    messages: Vec<&'p ast::MessageDef>,
    dims: Vec<dim_info::DimSlot>,
    inputs: Vec<InputInfo>,
    params: Vec<ParamInfo>,
    graphs: Vec<GraphInfo>,
    bindings: Vec<(String, TExpr)>,
    /// Where new parameters are named: the binding (or message) being checked.
    param_scope: String,
    /// Calls per (scope, builtin) so far, for `_k` suffixes.
    param_counts: HashMap<(String, &'static str), usize>,
    /// Message parameters bound to argument values while a message body is checked.
    locals: Vec<HashMap<String, TExpr>>,
    /// The message calls being checked, innermost last: (call span, message name).
    call_sites: Vec<(Span, String)>,
    /// Where each parameter was first used: the message call that created it, or the
    /// layer call itself outside messages.
    param_sites: HashMap<String, Span>,
    /// Every name the model defines, anywhere (first definition), to tell "used before
    /// its definition" from "unknown".
    all_names: HashMap<String, Span>,
    dropouts: u32,
}

mod dim_info {
    use super::Span;
    pub struct DimSlot {
        pub name: String,
        pub default: Option<usize>,
        pub span: Span,
    }
}

/// Checks a parsed program.
pub fn check(program: &Program) -> Result<CheckedModel, Vec<Diagnostic>> {
    let mut c = Checker {
        diags: Vec::new(),
        quiet: false,
        scope: HashMap::new(),
        messages: Vec::new(),
        dims: Vec::new(),
        inputs: Vec::new(),
        params: Vec::new(),
        graphs: Vec::new(),
        bindings: Vec::new(),
        param_scope: String::new(),
        param_counts: HashMap::new(),
        locals: Vec::new(),
        call_sites: Vec::new(),
        param_sites: HashMap::new(),
        all_names: HashMap::new(),
        dropouts: 0,
    };
    let model = &program.model;
    for item in &model.items {
        let names: Vec<&ast::Ident> = match item {
            Item::Dims(decls) => decls.iter().map(|d| &d.name).collect(),
            Item::Input(d) | Item::Label(d) => vec![&d.name],
            Item::Graph(g) => vec![&g.name],
            Item::Let(b) | Item::Node(b) => vec![&b.name],
            Item::Message(m) => vec![&m.name],
            Item::Rounds(_) | Item::Loss(_) => vec![],
        };
        for n in names {
            c.all_names.entry(n.name.clone()).or_insert(n.span);
        }
    }
    let mut loss: Option<(TExpr, Option<TExpr>)> = None;
    let mut loss_span: Option<Span> = None;
    for item in &model.items {
        match item {
            Item::Dims(decls) => c.dims_block(decls),
            Item::Input(decl) => c.input(decl, false),
            Item::Label(decl) => c.input(decl, true),
            Item::Graph(g) => c.graph(g),
            Item::Let(b) => c.binding(b, false),
            Item::Node(b) => c.binding(b, true),
            Item::Message(m) => c.message(m),
            Item::Rounds(r) => c.rounds(r),
            Item::Loss(l) => {
                // The statement's span runs on over the whitespace after it: end it at
                // its expression.
                let stmt = Span::new(l.span.start, l.value.span.end.max(l.span.start));
                if let Some(first) = loss_span {
                    c.error(
                        Diagnostic::new("a model has exactly one loss", stmt, "second loss here")
                            .with_secondary(first, "first loss here")
                            .with_help("combine them into one expression, e.g. `loss a + b`"),
                    );
                    continue;
                }
                loss_span = Some(stmt);
                c.param_scope = "loss".into();
                if let Some(t) = c.expr(&l.value) {
                    if !t.ty.shape.is_empty() || t.ty.dtype != DType::F32 {
                        c.error(
                            Diagnostic::new(
                                "the loss must be an f32 scalar",
                                l.value.span,
                                format!("this is {}", show_type(&t.ty)),
                            )
                            .with_help(
                                "a loss is one number: score predictions with `cross_entropy(logits, y)` or \
                                 `mse(pred, target)`, or reduce with `mean(x, axis: k)` until no axis is left",
                            ),
                        );
                    } else {
                        let prediction = match &t.kind {
                            TKind::CrossEntropy { logits, .. } => Some((**logits).clone()),
                            TKind::Mse { pred, .. } => Some((**pred).clone()),
                            _ => None,
                        };
                        loss = Some((t, prediction));
                    }
                }
            }
        }
    }
    if loss_span.is_none() {
        c.error(
            Diagnostic::new(
                format!("model '{}' has no loss", model.name.name),
                model.name.span,
                "this model",
            )
            .with_help("add a loss statement, e.g. `loss cross_entropy(logits, y)`"),
        );
    }
    let train = train::train_block(&mut c, program.train.as_ref());
    let batch_dim = c
        .inputs
        .iter()
        .find(|i| i.is_label)
        .and_then(|l| l.ty.shape.first().cloned());
    if !c.diags.is_empty() {
        return Err(c.diags);
    }
    let (loss, prediction) = loss.expect("no errors means a loss was checked");
    Ok(CheckedModel {
        name: model.name.name.clone(),
        dims: c
            .dims
            .into_iter()
            .map(|d| DimInfo {
                name: d.name,
                default: d.default,
                span: d.span,
            })
            .collect(),
        inputs: c.inputs,
        params: c.params,
        graphs: c.graphs,
        bindings: c.bindings,
        loss,
        prediction,
        train: train.expect("no errors means the train block was read"),
        batch_dim,
    })
}

/// `f32[B, 64]`
pub fn show_type(t: &SymType) -> String {
    format!("{}{}", t.dtype, dim::show_shape(&t.shape))
}

impl<'p> Checker<'p> {
    fn error(&mut self, d: Diagnostic) {
        if !self.quiet {
            self.diags.push(d);
        }
    }

    /// Adds `name` to the scope, or reports a duplicate (and poisons nothing: the first
    /// definition stays).
    fn define(&mut self, name: &ast::Ident, entry: Entry) -> bool {
        if let Some(prev) = self.scope.get(&name.name) {
            let first = prev.span;
            self.error(
                Diagnostic::new(
                    format!("'{}' is defined twice", name.name),
                    name.span,
                    "defined again here",
                )
                .with_secondary(first, "first defined here")
                .with_help("every dim, input, label, binding, message and graph needs its own name"),
            );
            return false;
        }
        self.scope.insert(name.name.clone(), Defined { entry, span: name.span });
        true
    }

    fn dims_block(&mut self, decls: &[ast::DimDecl]) {
        for d in decls {
            let default = match d.default {
                Some(lit) if lit.value <= 0 => {
                    self.error(Diagnostic::new(
                        format!("dim '{}' must be positive", d.name.name),
                        lit.span,
                        format!("{} is not a valid size", lit.value),
                    ));
                    None
                }
                Some(lit) => Some(lit.value as usize),
                None => None,
            };
            if self.define(&d.name, Entry::Dim) {
                self.dims.push(dim_info::DimSlot {
                    name: d.name.name.clone(),
                    default,
                    span: d.name.span,
                });
            }
        }
    }

    /// A written size: a declared dim or a positive literal.
    fn dim_ref(&mut self, r: &DimRef) -> Option<Dim> {
        match r {
            DimRef::Lit(lit) if lit.value > 0 => Some(Dim::lit(lit.value)),
            DimRef::Lit(lit) => {
                self.error(Diagnostic::new(
                    "sizes must be positive",
                    lit.span,
                    format!("{} is not a valid size", lit.value),
                ));
                None
            }
            DimRef::Named(id) => match self.scope.get(&id.name).map(|d| &d.entry) {
                Some(Entry::Dim) => Some(Dim::named(&id.name)),
                Some(Entry::Poisoned) => None,
                Some(_) => {
                    self.error(
                        Diagnostic::new(format!("'{}' is not a dim", id.name), id.span, "used as a size here")
                            .with_help("sizes are integers or names declared in `dims { ... }`"),
                    );
                    None
                }
                None => {
                    let dims: Vec<&str> = self.dims.iter().map(|d| d.name.as_str()).collect();
                    let hint = suggest::did_you_mean(&id.name, dims)
                        .unwrap_or_else(|| format!("declare it: `dims {{ {} = ... }}`", id.name));
                    self.error(
                        Diagnostic::new(format!("unknown dim '{}'", id.name), id.span, "not declared").with_help(hint),
                    );
                    None
                }
            },
        }
    }

    fn tensor_type(&mut self, t: &TensorTypeExpr) -> Option<SymType> {
        let dtype = match t.dtype {
            ast::DType::F32 => DType::F32,
            ast::DType::I32 => DType::I32,
        };
        let shape: Vec<Option<Dim>> = t.shape.iter().map(|r| self.dim_ref(r)).collect();
        shape
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .map(|shape| SymType { dtype, shape })
    }

    fn input(&mut self, decl: &ast::InputDecl, is_label: bool) {
        let ty = self.tensor_type(&decl.ty);
        let mut vocab = None;
        let mut classes = None;
        for a in &decl.annotations {
            let slot = match a.key.name.as_str() {
                "vocab" => &mut vocab,
                "classes" => &mut classes,
                other => {
                    let hint = suggest::did_you_mean(other, ["vocab", "classes"])
                        .unwrap_or_else(|| "inputs take `vocab N` (token ids) and labels `classes N`".into());
                    self.error(
                        Diagnostic::new(format!("unknown annotation '{other}'"), a.key.span, "not an annotation")
                            .with_help(hint),
                    );
                    continue;
                }
            };
            if a.value.value <= 0 {
                self.error(Diagnostic::new(
                    format!("'{}' must be positive", a.key.name),
                    a.value.span,
                    format!("{} is not a valid count", a.value.value),
                ));
                continue;
            }
            *slot = Some(a.value.value as usize);
        }
        if let Some(ty) = &ty {
            if (vocab.is_some() || classes.is_some()) && ty.dtype != DType::I32 {
                self.error(
                    Diagnostic::new(
                        format!("'{}' has `vocab`/`classes` but is not i32", decl.name.name),
                        decl.ty.dtype_span,
                        format!("this is {}", ty.dtype),
                    )
                    .with_help("token ids and class labels are i32"),
                );
            }
        }
        let Some(ty) = ty else {
            self.define(&decl.name, Entry::Poisoned);
            return;
        };
        let index = self.inputs.len();
        if self.define(&decl.name, Entry::Input(index)) {
            self.inputs.push(InputInfo {
                name: decl.name.name.clone(),
                ty,
                vocab,
                classes,
                is_label,
                span: decl.name.span,
            });
        }
    }

    /// `graph g { nodes N, edges i32[2, E], features f32[E, F] }`: registers the edge list
    /// (and edge features) as inputs `g.edges` (and `g.features`) without a batch axis.
    fn graph(&mut self, g: &ast::GraphDecl) {
        let nodes = g.nodes.as_ref().and_then(|n| self.dim_ref(n));
        let mut edges = None;
        if let Some(e) = &g.edges {
            if let Some(t) = self.tensor_type(e) {
                if t.dtype != DType::I32 || t.shape.len() != 2 || t.shape[0] != Dim::lit(2) {
                    self.error(
                        Diagnostic::new(
                            "graph edges must be i32[2, E]",
                            e.span,
                            format!("this is {}", show_type(&t)),
                        )
                        .with_help("row 0 holds each edge's source node, row 1 its destination"),
                    );
                } else {
                    edges = Some(t);
                }
            }
        }
        let features = g.features.as_ref().and_then(|f| self.tensor_type(f));
        if g.nodes.is_none() || g.edges.is_none() {
            self.error(
                Diagnostic::new(
                    format!("graph '{}' needs its nodes and edges", g.name.name),
                    g.span,
                    "incomplete graph",
                )
                .with_help("declare both, e.g. `graph g { nodes N, edges i32[2, E] }`"),
            );
        }
        let (Some(nodes), Some(edges)) = (nodes, edges) else {
            self.define(&g.name, Entry::Poisoned);
            return;
        };
        let num_edges = edges.shape[1].clone();
        if let (Some(f), Some(span)) = (&features, g.features.as_ref().map(|f| f.span)) {
            if f.dtype != DType::F32 || f.shape.len() != 2 || f.shape[0] != num_edges {
                self.error(Diagnostic::new(
                    format!("edge features must be f32[{num_edges}, F]"),
                    span,
                    format!("this is {}", show_type(f)),
                ));
            }
        }
        let edges_input = format!("{}.edges", g.name.name);
        let features_input = features.as_ref().map(|_| format!("{}.features", g.name.name));
        let mut whole = vec![(edges_input.clone(), edges)];
        if let (Some(name), Some(ty)) = (&features_input, features) {
            whole.push((name.clone(), ty));
        }
        for (name, ty) in whole {
            self.inputs.push(InputInfo {
                name,
                ty,
                vocab: None,
                classes: None,
                is_label: false,
                span: g.name.span,
            });
        }
        self.graphs.push(GraphInfo {
            name: g.name.name.clone(),
            nodes,
            edges: num_edges,
            edges_input,
            features_input,
        });
        self.define(&g.name, Entry::Graph(self.graphs.len() - 1));
    }

    fn binding(&mut self, b: &ast::Binding, node: bool) {
        self.param_scope = b.name.name.clone();
        let value = self.expr(&b.value);
        let entry = match value {
            Some(t) => {
                self.bindings.push((b.name.name.clone(), t));
                Entry::Binding {
                    index: self.bindings.len() - 1,
                    node,
                }
            }
            None => Entry::Poisoned,
        };
        self.define(&b.name, entry);
    }

    fn message(&mut self, m: &'p ast::MessageDef) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for p in &m.params {
            if let Some(&first) = seen.get(p.name.as_str()) {
                self.error(
                    Diagnostic::new(format!("parameter '{}' appears twice", p.name), p.span, "again here")
                        .with_secondary(first, "first here"),
                );
            }
            seen.insert(&p.name, p.span);
        }
        self.messages.push(m);
        self.define(&m.name, Entry::Message(self.messages.len() - 1));
    }

    /// `rounds K { t += e ... }`: unrolled K times; every right side reads the values of
    /// the previous round (synchronous updates), then all targets are updated together.
    fn rounds(&mut self, r: &ast::Rounds) {
        if r.count.value <= 0 || r.count.value > 64 {
            self.error(Diagnostic::new(
                "rounds must be between 1 and 64",
                r.count.span,
                format!("{} rounds", r.count.value),
            ));
            return;
        }
        // Targets must be nodes.
        let mut targets = Vec::new();
        for u in &r.updates {
            match self.scope.get(&u.target.name).map(|d| d.entry.clone()) {
                Some(Entry::Binding { index, node: true }) => targets.push(Some(index)),
                Some(Entry::Poisoned) => targets.push(None),
                Some(_) => {
                    self.error(
                        Diagnostic::new(
                            format!("'{}' is not a node", u.target.name),
                            u.target.span,
                            "updated here",
                        )
                        .with_help(format!(
                            "declare it with `node {} = ...` to update it in rounds",
                            u.target.name
                        )),
                    );
                    targets.push(None);
                }
                None => {
                    let nodes: Vec<&str> = self
                        .scope
                        .iter()
                        .filter(|(_, d)| matches!(d.entry, Entry::Binding { node: true, .. }))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let help = match suggest::did_you_mean(&u.target.name, nodes) {
                        Some(h) => h,
                        None if self.all_names.contains_key(&u.target.name) => format!(
                            "'{}' is defined after these rounds: declare it with `node {} = ...` before them",
                            u.target.name, u.target.name
                        ),
                        None => format!(
                            "rounds update nodes: declare it first with `node {} = ...`",
                            u.target.name
                        ),
                    };
                    self.error(
                        Diagnostic::new(
                            format!("unknown node '{}'", u.target.name),
                            u.target.span,
                            "not defined",
                        )
                        .with_help(help),
                    );
                    targets.push(None);
                }
            }
        }
        let was_quiet = self.quiet;
        for round in 0..r.count.value {
            let mut new_values = Vec::new();
            for (u, target) in r.updates.iter().zip(&targets) {
                // Parameters of plain calls in an update are shared by all rounds.
                self.param_scope = format!("{}.update", u.target.name);
                self.param_counts.retain(|(s, _), _| s != &self.param_scope);
                let value = self.expr(&u.value);
                let (Some(_), Some(value)) = (target, value) else {
                    continue;
                };
                // The node's value as of the previous round (its binding moves each round).
                let Some(Entry::Binding { index, .. }) = self.scope.get(&u.target.name).map(|d| d.entry.clone()) else {
                    continue;
                };
                let old_ty = self.bindings[index].1.ty.clone();
                let value = match u.op {
                    ast::UpdateOp::Assign => value,
                    ast::UpdateOp::AddAssign => {
                        let current = TExpr {
                            kind: TKind::Binding(index),
                            ty: old_ty.clone(),
                        };
                        match self.arith(Arith::Add, current, u.target.span, value, u.value.span) {
                            Some(v) => v,
                            None => continue,
                        }
                    }
                };
                if value.ty != old_ty {
                    self.error(Diagnostic::new(
                        format!("update changes the type of node '{}'", u.target.name),
                        u.value.span,
                        format!("{} becomes {}", show_type(&old_ty), show_type(&value.ty)),
                    ));
                    continue;
                }
                new_values.push((u.target.name.clone(), value));
            }
            for (name, value) in new_values {
                self.bindings.push((format!("{name}@round{}", round + 1), value));
                let index = self.bindings.len() - 1;
                if let Some(d) = self.scope.get_mut(&name) {
                    d.entry = Entry::Binding { index, node: true };
                }
            }
            self.quiet = true;
        }
        self.quiet = was_quiet;
    }
}
