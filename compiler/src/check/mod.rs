//! Check: the AST of a model -> a [`CheckedModel`] with symbolic types and parameters.
//!
//! In: a parsed [`Program`]. Out: the checked model, or every error found in it (the
//! checker keeps going after an error, marking the faulty value as unknown so one
//! mistake does not cascade into many). It resolves names, infers symbolic shapes over
//! the model's dims, checks dtypes and axes, creates parameters with stable names, and
//! reads the `train` block. This module holds the checker's state, the scope, the
//! bindings, messages and rounds; declarations are checked in `decls.rs`, expressions in
//! `expr.rs` (builtin calls in `calls.rs`, layers and their parameters in `layers.rs`,
//! message calls and `propagate` in `messages.rs`, literal arguments in `args.rs`),
//! `layers N { .. }` blocks in `repeat.rs`, the train block in `train.rs`.

mod args;
pub mod builtins;
mod calls;
mod decls;
pub mod dim;
mod expr;
mod layers;
mod messages;
mod repeat;
pub mod suggest;
mod train;
pub mod typed;

pub use typed::*;

use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{self, Item, Program, Span};
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
    /// Layers of `layers` blocks so far, per target: the next block's first layer number.
    layer_counts: HashMap<String, usize>,
    /// The layer being checked (`h.layers.0`), which prefixes a `name:` given there.
    layer_scope: Option<String>,
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
        layer_counts: HashMap::new(),
        layer_scope: None,
    };
    let model = &program.model;
    for item in &model.items {
        let names: Vec<&ast::Ident> = match item {
            Item::Dims(decls) => decls.iter().map(|d| &d.name).collect(),
            Item::Input(d) | Item::Label(d) => vec![&d.name],
            Item::Graph(g) => vec![&g.name],
            Item::Let(b) | Item::Node(b) => vec![&b.name],
            Item::Message(m) => vec![&m.name],
            Item::Rounds(_) | Item::Layers(_) | Item::Loss(_) => vec![],
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
            Item::Layers(l) => c.layers(l),
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
                let Some(value) = self.updated(u, index, value) else {
                    continue;
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
