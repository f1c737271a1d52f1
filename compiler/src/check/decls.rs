//! Checking declarations: `dims`, inputs and labels, and graphs.
//!
//! In: the AST of a declaration. Out: the declared names in the checker's scope (dims,
//! inputs with their symbolic types, graphs with their edge-list inputs), or errors; a
//! faulty declaration defines its name as poisoned, so its uses report nothing more.

use super::dim::Dim;
use super::suggest;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::ir::DType;
use crate::syntax::ast::{self, DimRef, TensorTypeExpr};

impl<'p> Checker<'p> {
    pub(super) fn dims_block(&mut self, decls: &[ast::DimDecl]) {
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
                self.dims.push(super::dim_info::DimSlot {
                    name: d.name.name.clone(),
                    default,
                    span: d.name.span,
                });
            }
        }
    }

    /// A written size: a declared dim or a positive literal.
    pub(super) fn dim_ref(&mut self, r: &DimRef) -> Option<Dim> {
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

    pub(super) fn tensor_type(&mut self, t: &TensorTypeExpr) -> Option<SymType> {
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

    pub(super) fn input(&mut self, decl: &ast::InputDecl, is_label: bool) {
        let ty = self.tensor_type(&decl.ty);
        let mut vocab = None;
        let mut classes = None;
        let mut pad = None;
        for a in &decl.annotations {
            let slot = match a.key.name.as_str() {
                "vocab" => &mut vocab,
                "classes" => &mut classes,
                // Any token id, 0 included: checked against the vocabulary below.
                "pad" => {
                    match usize::try_from(a.value.value) {
                        Ok(p) => pad = Some((p, a.value.span)),
                        Err(_) => self.error(Diagnostic::new(
                            "'pad' must be a token id (0 or more)",
                            a.value.span,
                            format!("{} is negative", a.value.value),
                        )),
                    }
                    continue;
                }
                other => {
                    let hint = suggest::did_you_mean(other, ["vocab", "classes", "pad"]).unwrap_or_else(|| {
                        "inputs take `vocab N` and `pad P` (token ids) and labels `classes N`".into()
                    });
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
        let pad = match (pad, vocab) {
            (Some((p, _)), Some(v)) if p < v && !is_label => Some(p),
            (Some((p, span)), _) => {
                let (message, help) = if is_label {
                    (
                        "a label has no pad id".to_string(),
                        "label positions to ignore hold -1".to_string(),
                    )
                } else if let Some(v) = vocab {
                    (
                        format!("pad id {p} is not a token id of vocab {v}"),
                        format!("the pad id must lie in [0, {v})"),
                    )
                } else {
                    (
                        "`pad` needs a `vocab`".to_string(),
                        "declare both: `vocab 5000 pad 0`".to_string(),
                    )
                };
                self.error(Diagnostic::new(message, span, "this pad id").with_help(help));
                None
            }
            (None, _) => None,
        };
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
                pad,
                is_label,
                span: decl.name.span,
            });
        }
    }

    /// `graph g { nodes N, edges i32[2, E], features f32[E, F] }`: registers the edge list
    /// (and edge features) as inputs `g.edges` (and `g.features`) without a batch axis.
    pub(super) fn graph(&mut self, g: &ast::GraphDecl) {
        let nodes = g.nodes.as_ref().and_then(|n| self.dim_ref(n));
        let graphs = g.graphs.as_ref().and_then(|n| self.dim_ref(n));
        if let (Some(r), Some(first)) = (&g.graphs, self.graphs.iter().find(|i| i.graphs.is_some())) {
            self.error(
                Diagnostic::new(
                    format!("graph '{}' is a second batch of graphs", g.name.name),
                    r.span(),
                    "second `graphs`",
                )
                .with_help(format!(
                    "a model reads one data set of graphs, batched in graph '{}'; drop `graphs` here",
                    first.name
                )),
            );
        }
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
        if let (Some(loops), Some(f)) = (g.self_loops, &g.features) {
            self.error(
                Diagnostic::new(
                    format!("graph '{}' has edge features and self_loops", g.name.name),
                    loops,
                    "a self-loop has no features",
                )
                .with_secondary(f.span, "features of the listed edges only")
                .with_help("drop `self_loops` and list each node's loop as an edge in the data, with its features"),
            );
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
                pad: None,
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
            self_loops: g.self_loops.is_some(),
            graphs,
        });
        self.define(&g.name, Entry::Graph(self.graphs.len() - 1));
    }
}
