//! The model's message-passing structure as Graphviz (`mpc compile FILE --emit dot`).
//!
//! In: the syntax tree, the source text (labels quote expressions as written) and the
//! checked model (each binding's symbolic shape). Out: a `digraph` in DOT: inputs and
//! labels, graphs, messages, every `let`/`node` binding with its shape, the `rounds` and
//! `layers` blocks as clusters, and the loss; an arrow from every name an expression
//! uses to the binding it defines. Nodes are colored by the role the brief gives them:
//! embeddings (E), message passing (F: `propagate`, attention), and the head and loss
//! (G). It draws the model as written, not the unrolled IR: a block of 6 layers is one
//! cluster labeled "× 6".

use crate::check::dim::show_shape;
use crate::check::CheckedModel;
use crate::syntax::ast::{Expr, ExprKind, Item, Program, Span, Update, UpdateOp};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Calls that make embeddings (E).
const EMBEDDINGS: &[&str] = &["embed", "patches", "positions"];
/// Calls that pass messages (F).
const MESSAGE_PASSING: &[&str] = &["propagate", "attention", "self_attention"];

/// Fill colors of the roles.
const INPUT: &str = "#dbeafe";
const LABEL: &str = "#fef9c3";
const GRAPH: &str = "#e0e7ff";
const MESSAGE: &str = "#fce7f3";
const EMBEDDING: &str = "#dcfce7";
const PASSING: &str = "#fde68a";
const PLAIN: &str = "#f3f4f6";
const HEAD: &str = "#fecaca";

/// Labels quote at most this many characters of an expression.
const QUOTE: usize = 44;

struct Dot<'a> {
    source: &'a str,
    out: String,
    /// The node that currently defines each name (updates in blocks redefine them).
    defined: HashMap<String, String>,
    /// Each binding's shape, by name (the last binding of a name wins).
    shapes: HashMap<&'a str, String>,
    /// Nodes of graphs and messages: what they feed is drawn dashed (structure, not data).
    structural: HashSet<String>,
    /// Arrows drawn inside a cluster, written after it: an arrow written in a cluster
    /// would pull both its ends into it.
    deferred: Vec<String>,
    next: usize,
}

/// The DOT text of the model (see the module doc).
pub fn model_dot(program: &Program, source: &str, model: &CheckedModel) -> String {
    let shapes = model
        .bindings
        .iter()
        .map(|(name, e)| (name.as_str(), format!("{} {}", e.ty.dtype, show_shape(&e.ty.shape))))
        .collect();
    let mut d = Dot {
        source,
        out: String::new(),
        defined: HashMap::new(),
        shapes,
        structural: HashSet::new(),
        deferred: Vec::new(),
        next: 0,
    };
    let name = &program.model.name.name;
    let _ = writeln!(d.out, "digraph {} {{", quote(name));
    let _ = writeln!(
        d.out,
        "  label={}; labelloc=t; fontname=\"Helvetica\";",
        quote(&format!("model {name}"))
    );
    d.out += "  rankdir=TB; node [fontname=\"Helvetica\", fontsize=11, style=\"filled,rounded\", shape=box];\n";
    d.out += "  edge [color=\"#6b7280\", fontname=\"Helvetica\", fontsize=10];\n";
    for item in &program.model.items {
        d.item(item, model);
    }
    d.out += "}\n";
    d.out
}

impl<'a> Dot<'a> {
    fn node(&mut self, indent: &str, label: &str, attrs: &str) -> String {
        let id = format!("n{}", self.next);
        self.next += 1;
        let _ = writeln!(self.out, "{indent}{id} [label={}, {attrs}];", quote(label));
        id
    }

    fn text(&self, span: Span) -> String {
        let raw = self.source.get(span.start..span.end).unwrap_or("");
        let words: Vec<&str> = raw.split_whitespace().collect();
        let text = words.join(" ");
        match text.char_indices().nth(QUOTE) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }

    fn item(&mut self, item: &Item, model: &CheckedModel) {
        match item {
            Item::Dims(_) => {}
            Item::Input(i) | Item::Label(i) => {
                let is_label = matches!(item, Item::Label(_));
                let what = if is_label { "label" } else { "input" };
                let label = format!("{what} {}\n{}", i.name.name, self.text(i.ty.span));
                let color = if is_label { LABEL } else { INPUT };
                let id = self.node(
                    "  ",
                    &label,
                    &format!("shape=parallelogram, style=filled, fillcolor=\"{color}\""),
                );
                self.defined.insert(i.name.name.clone(), id);
            }
            Item::Graph(g) => {
                let info = model.graphs.iter().find(|i| i.name == g.name.name);
                let mut label = format!("graph {}", g.name.name);
                if let Some(info) = info {
                    let _ = write!(label, "\nnodes {}, edges {}", info.nodes, info.edges);
                    if let Some(graphs) = &info.graphs {
                        let _ = write!(label, "\na batch of {graphs} graphs");
                    }
                    if info.self_loops {
                        label += "\n+ self loops";
                    }
                }
                let attrs = format!("shape=box3d, style=filled, fillcolor=\"{GRAPH}\"");
                let id = self.node("  ", &label, &attrs);
                self.structural.insert(id.clone());
                self.defined.insert(g.name.name.clone(), id);
            }
            Item::Message(m) => {
                let params: Vec<&str> = m.params.iter().map(|p| p.name.as_str()).collect();
                let label = format!(
                    "message {}({})\n{}",
                    m.name.name,
                    params.join(", "),
                    self.text(m.body.span)
                );
                let attrs = format!("shape=note, style=filled, fillcolor=\"{MESSAGE}\"");
                let id = self.node("  ", &label, &attrs);
                self.structural.insert(id.clone());
                self.defined.insert(m.name.name.clone(), id);
            }
            Item::Let(b) | Item::Node(b) => {
                let kw = if matches!(item, Item::Node(_)) { "node" } else { "let" };
                self.binding("  ", kw, &b.name.name, "=", &b.value);
            }
            Item::Rounds(r) => self.block("rounds", r.count.value, &r.updates),
            Item::Layers(l) => self.block("layers", l.count.value, &l.updates),
            Item::Loss(l) => {
                let label = format!("loss\n{}", self.text(l.value.span));
                let attrs = format!("shape=doubleoctagon, style=filled, fillcolor=\"{HEAD}\"");
                let id = self.node("  ", &label, &attrs);
                self.arrows("  ", &l.value, &id);
            }
        }
    }

    /// A `let`, `node` or block update: its node, colored by role, and arrows from the
    /// names its value uses (as they were defined before it).
    fn binding(&mut self, indent: &str, kw: &str, name: &str, op: &str, value: &Expr) -> String {
        let calls = called(value);
        let is_message = |c: &&str| self.defined.get(*c).is_some_and(|id| self.structural.contains(id));
        let color = if calls.iter().any(|c| MESSAGE_PASSING.contains(c) || is_message(c)) {
            PASSING
        } else if calls.iter().any(|c| EMBEDDINGS.contains(c)) {
            EMBEDDING
        } else {
            PLAIN
        };
        let shape = self.shapes.get(name).cloned().unwrap_or_default();
        let label = format!("{kw} {name} {op} {}\n{shape}", self.text(value.span));
        let id = self.node(indent, label.trim(), &format!("fillcolor=\"{color}\""));
        self.arrows(indent, value, &id);
        self.defined.insert(name.to_string(), id.clone());
        id
    }

    /// `rounds K { .. }` or `layers N { .. }`: a cluster of its updates, and an arrow
    /// from each updated name's last node back to its first use in the block (the
    /// repetition).
    fn block(&mut self, kw: &str, count: i64, updates: &[Update]) {
        let cluster = self.next;
        let _ = writeln!(self.out, "  subgraph cluster_{cluster} {{");
        let _ = writeln!(
            self.out,
            "    label={}; style=\"rounded,dashed\"; color=\"#9ca3af\";",
            quote(&format!("{kw} {count}"))
        );
        let mut first_use: Vec<(String, String)> = Vec::new();
        for u in updates {
            let op = match u.op {
                UpdateOp::Assign => "=",
                UpdateOp::AddAssign => "+=",
            };
            let name = u.target.name.clone();
            let prev = self.defined.get(&name).cloned();
            let id = self.binding("    ", "", &name, op, &u.value);
            // `t += e` is `t = t + e`: an arrow from t's previous node.
            if let (UpdateOp::AddAssign, false, Some(prev)) = (u.op, mentions(&u.value, &name), prev) {
                self.deferred.push(format!("  {prev} -> {id};"));
            }
            if !first_use.iter().any(|(n, _)| n == &name) {
                first_use.push((name, id));
            }
        }
        self.out += "  }\n";
        for arrow in std::mem::take(&mut self.deferred) {
            self.out += &arrow;
            self.out += "\n";
        }
        if count > 1 {
            for (name, first) in first_use {
                if let Some(last) = self.defined.get(&name) {
                    let _ = writeln!(
                        self.out,
                        "  {last} -> {first} [style=dashed, constraint=false, label=\"next\"];"
                    );
                }
            }
        }
    }

    /// Arrows into `to` from every defined name `value` uses or calls (a message), each
    /// once; inside a cluster (`indent` deeper than the top level) they wait for its end.
    fn arrows(&mut self, indent: &str, value: &Expr, to: &str) {
        let mut names = Vec::new();
        names_in(value, &mut names);
        names.extend(called(value));
        let mut seen = Vec::new();
        for n in names {
            let Some(from) = self.defined.get(n).cloned() else {
                continue;
            };
            if from == to || seen.contains(&from) {
                continue;
            }
            let style = if self.structural.contains(&from) {
                " [style=dashed]"
            } else {
                ""
            };
            let arrow = format!("  {from} -> {to}{style};");
            match indent.len() > 2 {
                true => self.deferred.push(arrow),
                false => {
                    self.out += &arrow;
                    self.out += "\n";
                }
            }
            seen.push(from);
        }
    }
}

/// The functions `e` calls, outermost first.
fn called(e: &Expr) -> Vec<&str> {
    let mut out = Vec::new();
    walk(e, &mut |e| {
        if let ExprKind::Call { func, .. } = &e.kind {
            out.push(func.name.as_str());
        }
    });
    out
}

/// The names `e` uses as values, in order.
fn names_in<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    walk(e, &mut |e| {
        if let ExprKind::Name(n) = &e.kind {
            out.push(n.as_str());
        }
    });
}

fn mentions(e: &Expr, name: &str) -> bool {
    let mut names = Vec::new();
    names_in(e, &mut names);
    names.contains(&name)
}

/// Visits `e` and its subexpressions, parents first.
fn walk<'e>(e: &'e Expr, f: &mut impl FnMut(&'e Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Call { args, .. } => args.iter().for_each(|a| walk(&a.value, f)),
        ExprKind::Binary { lhs, rhs, .. } => {
            walk(lhs, f);
            walk(rhs, f);
        }
        ExprKind::Neg(x) => walk(x, f),
        ExprKind::List(xs) => xs.iter().for_each(|x| walk(x, f)),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Name(_) => {}
    }
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("\"{escaped}\"")
}
