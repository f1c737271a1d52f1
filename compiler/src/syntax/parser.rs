//! Parser: `.mp` source text -> [`Program`], or one syntax-error [`Diagnostic`].
//!
//! In: the whole source of one file. Out: the AST of `ast.rs`, every node with its byte
//! span; or the first syntax error, worded for users (`syntax error: expected '}'`) and
//! pointing at the place pest stopped. The grammar is `grammar/mp.pest`.
//!
//! Never panics: nesting of brackets is limited before pest runs (pest recurses once per
//! bracket), expression depth is limited while building (so that neither this code nor the
//! recursive `Drop` of `Box<Expr>` overflows the stack), and integer literals that do not
//! fit `i64` are errors.

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use super::ast::*;
use super::syntax_error::{rule_words, syntax_error};
use crate::diag::Diagnostic;

#[derive(Parser)]
#[grammar = "../grammar/mp.pest"]
pub(super) struct MpParser;

/// The deepest expression tree the parser builds (a long sum counts one level per `+`).
/// Far above what a readable model needs; bounds the recursion of every later pass.
pub const MAX_DEPTH: usize = 256;

/// The deepest nesting of `(` and `[` handed to pest, which recurses through about ten
/// rules (a few KiB of stack in a debug build) per bracket: 64 levels stay well inside
/// a 1 MiB stack, while no readable model nests more than a handful.
pub const MAX_NESTING: usize = 64;

type PResult<T> = Result<T, Diagnostic>;

/// Parses one `.mp` file.
pub fn parse(src: &str) -> Result<Program, Diagnostic> {
    prescan_nesting(src)?;
    let mut pairs = MpParser::parse(Rule::program, src).map_err(|e| syntax_error(src, e))?;
    let program = pairs.next().expect("pest returns the program rule on success");
    build_program(program)
}

/// Rejects bracket nesting deeper than [`MAX_NESTING`] before pest sees it. Comments are
/// skipped (a `(` in a comment is not nesting); there are no string literals to skip.
fn prescan_nesting(src: &str) -> PResult<()> {
    let mut depth = 0usize;
    let mut in_comment = false;
    let bytes = src.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_comment {
            in_comment = b != b'\n';
            continue;
        }
        match b {
            b'#' => in_comment = true,
            b'/' if bytes.get(i + 1) == Some(&b'/') => in_comment = true,
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(Span::new(i, i + 1), MAX_NESTING));
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(span: Span, limit: usize) -> Diagnostic {
    Diagnostic::new(
        "syntax error: expression nested too deeply",
        span,
        format!("more than {limit} levels of nesting here"),
    )
    .with_help("split the expression into several `let` bindings")
}

// ---- pairs -> AST --------------------------------------------------------------------

fn span_of(p: &Pair<Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

/// The children that carry meaning: punctuation and keywords are dropped, so builders
/// can walk the rest positionally.
fn parts(p: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    p.into_inner().filter(|c| {
        !matches!(
            c.as_rule(),
            Rule::lbrace
                | Rule::rbrace
                | Rule::lparen
                | Rule::call_open
                | Rule::rparen
                | Rule::lbrack
                | Rule::rbrack
                | Rule::comma
                | Rule::colon
                | Rule::eq
                | Rule::EOI
                | Rule::kw_model
                | Rule::kw_dims
                | Rule::kw_input
                | Rule::kw_label
                | Rule::kw_graph
                | Rule::kw_let
                | Rule::kw_node
                | Rule::kw_message
                | Rule::kw_rounds
                | Rule::kw_layers
                | Rule::kw_loss
                | Rule::kw_train
                | Rule::kw_nodes
                | Rule::kw_edges
                | Rule::kw_features
                | Rule::kw_graphs
        )
    })
}

/// Takes the next meaningful child; the grammar guarantees it exists, but a mismatch
/// between grammar and builder is reported rather than panicking.
fn next<'a>(it: &mut impl Iterator<Item = Pair<'a, Rule>>, parent: Span) -> PResult<Pair<'a, Rule>> {
    it.next().ok_or_else(|| internal(parent))
}

fn internal(span: Span) -> Diagnostic {
    Diagnostic::new(
        "internal error: the parser's tree does not match the grammar",
        span,
        "while reading this",
    )
    .with_help("this is a bug in mpc; please report it with this file")
}

fn build_program(p: Pair<Rule>) -> PResult<Program> {
    let span = span_of(&p);
    let mut it = parts(p);
    let model = build_model(next(&mut it, span)?)?;
    let train = match it.next() {
        Some(t) if t.as_rule() == Rule::train => Some(build_train(t)?),
        _ => None,
    };
    Ok(Program { model, train })
}

fn ident(p: Pair<Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span_of(&p),
    }
}

fn int_lit(p: Pair<Rule>) -> PResult<IntLit> {
    let span = span_of(&p);
    let value = p.as_str().parse::<i64>().map_err(|_| {
        Diagnostic::new(
            "integer literal too large",
            span,
            "this does not fit in a 64-bit signed integer",
        )
        .with_help(format!("the largest integer is {}", i64::MAX))
    })?;
    Ok(IntLit { value, span })
}

fn build_model(p: Pair<Rule>) -> PResult<Model> {
    let span = span_of(&p);
    let mut it = parts(p);
    let name = ident(next(&mut it, span)?);
    let items = it.map(build_item).collect::<PResult<Vec<_>>>()?;
    Ok(Model { name, items, span })
}

fn build_item(p: Pair<Rule>) -> PResult<Item> {
    let outer = span_of(&p);
    let inner = next(&mut p.into_inner(), outer)?;
    let span = span_of(&inner);
    let rule = inner.as_rule();
    let mut it = parts(inner);
    Ok(match rule {
        Rule::dims => Item::Dims(it.map(build_dim_decl).collect::<PResult<_>>()?),
        Rule::input | Rule::label => {
            let name = ident(next(&mut it, span)?);
            let ty = build_type(next(&mut it, span)?)?;
            let annotations = it.map(build_annotation).collect::<PResult<_>>()?;
            let decl = InputDecl {
                name,
                ty,
                annotations,
                span,
            };
            if rule == Rule::input {
                Item::Input(decl)
            } else {
                Item::Label(decl)
            }
        }
        Rule::graph => Item::Graph(build_graph(span, it)?),
        Rule::let_item | Rule::node_item => {
            let name = ident(next(&mut it, span)?);
            let value = build_expr(next(&mut it, span)?)?;
            let b = Binding { name, value, span };
            if rule == Rule::let_item {
                Item::Let(b)
            } else {
                Item::Node(b)
            }
        }
        Rule::message => {
            let mut params: Vec<Pair<Rule>> = it.collect();
            let body = params.pop().ok_or_else(|| internal(span))?;
            let mut params = params.into_iter();
            let name = ident(next(&mut params, span)?);
            Item::Message(MessageDef {
                name,
                params: params.map(ident).collect(),
                body: build_expr(body)?,
                span,
            })
        }
        Rule::rounds => {
            let count = int_lit(next(&mut it, span)?)?;
            let updates = it.map(build_update).collect::<PResult<_>>()?;
            Item::Rounds(Rounds { count, updates, span })
        }
        Rule::layers => {
            let count = int_lit(next(&mut it, span)?)?;
            let updates = it.map(build_layer_update).collect::<PResult<_>>()?;
            Item::Layers(Layers { count, updates, span })
        }
        Rule::loss => Item::Loss(LossDecl {
            value: build_expr(next(&mut it, span)?)?,
            span,
        }),
        _ => return Err(internal(span)),
    })
}

fn build_dim_decl(p: Pair<Rule>) -> PResult<DimDecl> {
    let span = span_of(&p);
    let mut it = parts(p);
    let name = ident(next(&mut it, span)?);
    let default = it.next().map(int_lit).transpose()?;
    Ok(DimDecl { name, default })
}

fn build_annotation(p: Pair<Rule>) -> PResult<Annotation> {
    let span = span_of(&p);
    let mut it = parts(p);
    let key = ident(next(&mut it, span)?);
    let value = int_lit(next(&mut it, span)?)?;
    Ok(Annotation { key, value })
}

fn build_type(p: Pair<Rule>) -> PResult<TensorTypeExpr> {
    let span = span_of(&p);
    let mut it = parts(p);
    let d = next(&mut it, span)?;
    let dtype = if d.as_str() == "i32" { DType::I32 } else { DType::F32 };
    let dtype_span = span_of(&d);
    let shape = it.map(build_dim_ref).collect::<PResult<_>>()?;
    Ok(TensorTypeExpr {
        dtype,
        dtype_span,
        shape,
        span,
    })
}

fn build_dim_ref(p: Pair<Rule>) -> PResult<DimRef> {
    let span = span_of(&p);
    let inner = next(&mut p.into_inner(), span)?;
    Ok(match inner.as_rule() {
        Rule::int => DimRef::Lit(int_lit(inner)?),
        _ => DimRef::Named(ident(inner)),
    })
}

fn build_graph<'a>(span: Span, mut it: impl Iterator<Item = Pair<'a, Rule>>) -> PResult<GraphDecl> {
    let name = ident(next(&mut it, span)?);
    let mut g = GraphDecl {
        name,
        nodes: None,
        edges: None,
        features: None,
        self_loops: None,
        graphs: None,
        span,
    };
    // Each entry may appear once; a repeat is an error that points at both.
    let mut seen: Vec<(Rule, Span)> = Vec::new();
    for entry in it {
        let espan = span_of(&entry);
        let e = next(&mut entry.into_inner(), espan)?;
        let rule = e.as_rule();
        if let Some((_, first)) = seen.iter().find(|(r, _)| *r == rule) {
            let what = rule_words(rule);
            return Err(Diagnostic::new(
                format!("syntax error: {what} given twice in graph `{}`", g.name.name),
                espan,
                "second entry here",
            )
            .with_secondary(*first, "first given here"));
        }
        seen.push((rule, espan));
        if rule == Rule::graph_self_loops {
            g.self_loops = Some(espan);
            continue;
        }
        let mut parts_it = parts(e);
        let value = next(&mut parts_it, espan)?;
        match rule {
            Rule::graph_nodes => g.nodes = Some(build_dim_ref(value)?),
            Rule::graph_edges => g.edges = Some(build_type(value)?),
            Rule::graph_graphs => g.graphs = Some(build_dim_ref(value)?),
            _ => g.features = Some(build_type(value)?),
        }
    }
    Ok(g)
}

/// An update of a `layers` block; a block inside it is an error here, where its span is
/// known (the grammar parses one level of nesting for this).
fn build_layer_update(p: Pair<Rule>) -> PResult<Update> {
    if p.as_rule() != Rule::nested_layers {
        return build_update(p);
    }
    let span = span_of(&p);
    let head = Span::new(span.start, span.start + "layers".len());
    Err(
        Diagnostic::new("`layers` blocks do not nest", head, "a block inside a `layers` block").with_help(
            "write the inner updates out in the outer block, or use two `layers` blocks one after the other",
        ),
    )
}

fn build_update(p: Pair<Rule>) -> PResult<Update> {
    let span = span_of(&p);
    let mut it = parts(p);
    let target = ident(next(&mut it, span)?);
    let op = match next(&mut it, span)?.as_str() {
        "+=" => UpdateOp::AddAssign,
        _ => UpdateOp::Assign,
    };
    let value = build_expr(next(&mut it, span)?)?;
    Ok(Update {
        target,
        op,
        value,
        span,
    })
}

fn build_train(p: Pair<Rule>) -> PResult<TrainBlock> {
    let span = span_of(&p);
    let settings = parts(p)
        .map(|s| {
            let sspan = span_of(&s);
            let mut it = parts(s);
            let key = ident(next(&mut it, sspan)?);
            let value = build_expr(next(&mut it, sspan)?)?;
            Ok(TrainSetting {
                key,
                value,
                span: sspan,
            })
        })
        .collect::<PResult<_>>()?;
    Ok(TrainBlock { settings, span })
}

// ---- expressions ---------------------------------------------------------------------

fn build_expr(p: Pair<Rule>) -> PResult<Expr> {
    expr_depth(p).map(|(e, _)| e)
}

/// Builds an expression and returns its depth (a leaf is 1). Fails as soon as the depth
/// passes [`MAX_DEPTH`], before a deeper tree exists.
fn expr_depth(p: Pair<Rule>) -> PResult<(Expr, usize)> {
    let span = span_of(&p);
    match p.as_rule() {
        Rule::expr | Rule::product => {
            let mut it = p.into_inner();
            let (mut acc, mut depth) = expr_depth(next(&mut it, span)?)?;
            while let Some(op) = it.next() {
                let (rhs, rd) = expr_depth(next(&mut it, span)?)?;
                depth = check_depth(depth.max(rd) + 1, span_of(&op))?;
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let span = acc.span.to(rhs.span);
                acc = Expr {
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(acc),
                        rhs: Box::new(rhs),
                    },
                    span,
                };
            }
            Ok((acc, depth))
        }
        Rule::unary => {
            let inner: Vec<Pair<Rule>> = p.into_inner().collect();
            let (last, negs) = inner.split_last().ok_or_else(|| internal(span))?;
            let (mut e, depth) = expr_depth(last.clone())?;
            let depth = check_depth(depth + negs.len(), span)?;
            // Innermost minus first, so each Neg's span starts at its own '-'.
            for n in negs.iter().rev() {
                let span = span_of(n).to(e.span);
                e = Expr {
                    kind: ExprKind::Neg(Box::new(e)),
                    span,
                };
            }
            Ok((e, depth))
        }
        Rule::primary => expr_depth(next(&mut p.into_inner(), span)?),
        Rule::paren => expr_depth(next(&mut parts(p), span)?),
        Rule::int => {
            let lit = int_lit(p)?;
            Ok((leaf(ExprKind::Int(lit.value), span), 1))
        }
        Rule::float => {
            // The grammar admits only well-formed decimals, which always parse; huge
            // exponents become infinity, which the checker may reject.
            let v = p.as_str().parse::<f64>().map_err(|_| internal(span))?;
            Ok((leaf(ExprKind::Float(v), span), 1))
        }
        Rule::ident => Ok((leaf(ExprKind::Name(p.as_str().to_string()), span), 1)),
        Rule::list => {
            let mut depth = 1;
            let mut items = Vec::new();
            for c in parts(p) {
                let (e, d) = expr_depth(c)?;
                depth = depth.max(d + 1);
                items.push(e);
            }
            Ok((leaf(ExprKind::List(items), span), check_depth(depth, span)?))
        }
        Rule::call => {
            let mut it = parts(p);
            let func = ident(next(&mut it, span)?);
            let mut depth = 1;
            let mut args = Vec::new();
            for a in it {
                let aspan = span_of(&a);
                let mut ait = parts(a);
                let first = next(&mut ait, aspan)?;
                let (name, value) = match ait.next() {
                    Some(v) => (Some(ident(first)), v),
                    None => (None, first),
                };
                let (value, d) = expr_depth(value)?;
                depth = depth.max(d + 1);
                args.push(Arg { name, value });
            }
            let kind = ExprKind::Call { func, args };
            Ok((leaf(kind, span), check_depth(depth, span)?))
        }
        _ => Err(internal(span)),
    }
}

fn leaf(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

fn check_depth(depth: usize, span: Span) -> PResult<usize> {
    if depth > MAX_DEPTH {
        Err(too_deep(span, MAX_DEPTH))
    } else {
        Ok(depth)
    }
}
