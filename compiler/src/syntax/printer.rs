//! AST printer: [`Program`] -> an indented tree, for `mpc compile --emit ast`.
//!
//! In: a parsed program and its source (to turn spans into `line:col`). Out: text, one
//! node per line, children indented two spaces, items and compound expressions tagged
//! `@line:col`. Deterministic (it is snapshot-tested), so nothing here depends on hashing
//! or addresses.

use std::fmt::Write as _;

use super::ast::*;
use crate::diag::line_col;

/// Prints the whole program as a tree.
pub fn print_ast(p: &Program, src: &str) -> String {
    let mut pr = Printer {
        src,
        out: String::new(),
    };
    pr.program(p);
    pr.out
}

struct Printer<'a> {
    src: &'a str,
    out: String,
}

impl Printer<'_> {
    fn at(&self, span: Span) -> String {
        let (l, c) = line_col(self.src, span.start);
        format!("@{l}:{c}")
    }

    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.out, "{:width$}{text}", "", width = indent * 2);
    }

    fn program(&mut self, p: &Program) {
        let m = &p.model;
        self.line(0, &format!("model {} {}", m.name.name, self.at(m.span)));
        for item in &m.items {
            self.item(item);
        }
        if let Some(t) = &p.train {
            self.line(0, &format!("train {}", self.at(t.span)));
            for s in &t.settings {
                self.line(1, &format!("{} {}", s.key.name, self.at(s.span)));
                self.expr(2, "", &s.value);
            }
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Dims(dims) => {
                let mut text = String::from("dims");
                for d in dims {
                    match &d.default {
                        Some(v) => {
                            let _ = write!(text, " {}={}", d.name.name, v.value);
                        }
                        None => {
                            let _ = write!(text, " {}", d.name.name);
                        }
                    }
                }
                if let Some(first) = dims.first() {
                    text = format!("{text} {}", self.at(first.name.span));
                }
                self.line(1, &text);
            }
            Item::Input(d) => self.input("input", d),
            Item::Label(d) => self.input("label", d),
            Item::Graph(g) => {
                self.line(1, &format!("graph {} {}", g.name.name, self.at(g.span)));
                if let Some(n) = &g.nodes {
                    self.line(2, &format!("nodes {}", dim_ref(n)));
                }
                if let Some(t) = &g.edges {
                    self.line(2, &format!("edges {}", ty(t)));
                }
                if let Some(t) = &g.features {
                    self.line(2, &format!("features {}", ty(t)));
                }
                if g.self_loops.is_some() {
                    self.line(2, "self_loops");
                }
                if let Some(n) = &g.graphs {
                    self.line(2, &format!("graphs {}", dim_ref(n)));
                }
            }
            Item::Let(b) => self.binding("let", b),
            Item::Node(b) => self.binding("node", b),
            Item::Message(m) => {
                let params: Vec<&str> = m.params.iter().map(|p| p.name.as_str()).collect();
                let head = format!("message {}({})", m.name.name, params.join(", "));
                self.line(1, &format!("{head} {}", self.at(m.span)));
                self.expr(2, "", &m.body);
            }
            Item::Rounds(r) => {
                self.line(1, &format!("rounds {} {}", r.count.value, self.at(r.span)));
                self.updates(&r.updates);
            }
            Item::Layers(l) => {
                self.line(1, &format!("layers {} {}", l.count.value, self.at(l.span)));
                self.updates(&l.updates);
            }
            Item::Loss(l) => {
                self.line(1, &format!("loss {}", self.at(l.span)));
                self.expr(2, "", &l.value);
            }
        }
    }

    /// The updates of a `rounds` or `layers` block.
    fn updates(&mut self, updates: &[Update]) {
        for u in updates {
            let op = match u.op {
                UpdateOp::Assign => "=",
                UpdateOp::AddAssign => "+=",
            };
            let head = format!("{} {op} {}", u.target.name, self.at(u.span));
            self.line(2, &head);
            self.expr(3, "", &u.value);
        }
    }

    fn input(&mut self, kw: &str, d: &InputDecl) {
        let mut text = format!("{kw} {}: {}", d.name.name, ty(&d.ty));
        for a in &d.annotations {
            let _ = write!(text, " {}={}", a.key.name, a.value.value);
        }
        let _ = write!(text, " {}", self.at(d.span));
        self.line(1, &text);
    }

    fn binding(&mut self, kw: &str, b: &Binding) {
        self.line(1, &format!("{kw} {} {}", b.name.name, self.at(b.span)));
        self.expr(2, "", &b.value);
    }

    /// One expression; `prefix` is `"axis: "` for a named argument.
    fn expr(&mut self, indent: usize, prefix: &str, e: &Expr) {
        match &e.kind {
            ExprKind::Int(v) => self.line(indent, &format!("{prefix}int {v}")),
            ExprKind::Float(v) => self.line(indent, &format!("{prefix}float {v:?}")),
            ExprKind::Name(n) => self.line(indent, &format!("{prefix}name {n}")),
            ExprKind::Call { func, args } => {
                let head = format!("{prefix}call {} {}", func.name, self.at(e.span));
                self.line(indent, &head);
                for a in args {
                    let p = a.name.as_ref().map(|n| format!("{}: ", n.name));
                    self.expr(indent + 1, p.as_deref().unwrap_or(""), &a.value);
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let head = format!("{prefix}binary {} {}", op.symbol(), self.at(e.span));
                self.line(indent, &head);
                self.expr(indent + 1, "", lhs);
                self.expr(indent + 1, "", rhs);
            }
            ExprKind::Neg(inner) => {
                self.line(indent, &format!("{prefix}neg {}", self.at(e.span)));
                self.expr(indent + 1, "", inner);
            }
            ExprKind::List(items) => {
                self.line(indent, &format!("{prefix}list {}", self.at(e.span)));
                for i in items {
                    self.expr(indent + 1, "", i);
                }
            }
        }
    }
}

fn ty(t: &TensorTypeExpr) -> String {
    let dtype = match t.dtype {
        DType::I32 => "i32",
        DType::F32 => "f32",
    };
    let dims: Vec<String> = t.shape.iter().map(dim_ref).collect();
    format!("{dtype}[{}]", dims.join(", "))
}

fn dim_ref(d: &DimRef) -> String {
    match d {
        DimRef::Named(i) => i.name.clone(),
        DimRef::Lit(l) => l.value.to_string(),
    }
}
