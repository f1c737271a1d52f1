//! The abstract syntax tree of an `.mp` file.
//!
//! In: nothing (plain data). Out: the tree that `syntax::parse` builds and `check` reads.
//! Every node that a diagnostic may point at carries a [`Span`] (byte offsets into the
//! source). The tree is deliberately permissive: anything the grammar accepts is
//! representable, and the checker decides what is meaningful (unknown builtins, bad
//! train settings, dims without defaults ...), so that it can report all such errors in
//! one run instead of pest stopping at the first.

/// A half-open byte range `start..end` in the source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A name as written in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole file: one model and an optional `train { ... }` block after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub model: Model,
    pub train: Option<TrainBlock>,
}

/// `model Name { items }`
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `dims { B = 64, T }`: symbolic sizes, each with an optional default.
    Dims(Vec<DimDecl>),
    /// `input tokens: i32[B, T] vocab 10000`
    Input(InputDecl),
    /// `label y: i32[B] classes 2`
    Label(InputDecl),
    /// `graph g { nodes N, edges i32[2, E] }`
    Graph(GraphDecl),
    /// `let h = expr`
    Let(Binding),
    /// `node t = expr`
    Node(Binding),
    /// `message f(x, y) = expr`
    Message(MessageDef),
    /// `rounds 2 { t += expr ... }`
    Rounds(Rounds),
    /// `layers 2 { h = expr ... }`
    Layers(Layers),
    /// `loss expr`
    Loss(LossDecl),
}

#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    pub name: Ident,
    pub default: Option<IntLit>,
}

/// An integer literal with its span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntLit {
    pub value: i64,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    I32,
    F32,
}

/// `i32[B, T]`
#[derive(Clone, Debug, PartialEq)]
pub struct TensorTypeExpr {
    pub dtype: DType,
    pub dtype_span: Span,
    pub shape: Vec<DimRef>,
    pub span: Span,
}

/// One entry of a written shape: a dim name or a literal size.
#[derive(Clone, Debug, PartialEq)]
pub enum DimRef {
    Named(Ident),
    Lit(IntLit),
}

impl DimRef {
    pub fn span(&self) -> Span {
        match self {
            DimRef::Named(i) => i.span,
            DimRef::Lit(l) => l.span,
        }
    }
}

/// `input x: f32[B, 8] ...` or `label y: i32[B] classes 2`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: Ident,
    pub ty: TensorTypeExpr,
    /// Trailing `key value` pairs such as `vocab 10000` or `classes 2`.
    pub annotations: Vec<Annotation>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    pub key: Ident,
    pub value: IntLit,
}

/// `graph g { nodes N, edges i32[2, E], features f32[E, 4] }`
#[derive(Clone, Debug, PartialEq)]
pub struct GraphDecl {
    pub name: Ident,
    /// `nodes N`
    pub nodes: Option<DimRef>,
    /// `edges i32[2, E]`
    pub edges: Option<TensorTypeExpr>,
    /// `features f32[E, F]` (optional edge features)
    pub features: Option<TensorTypeExpr>,
    /// `self_loops`: one more edge per node, from it to itself (PyG's `add_self_loops`).
    pub self_loops: Option<Span>,
    /// `graphs G`: the graph is a mini-batch of `G` graphs (block-diagonal).
    pub graphs: Option<DimRef>,
    pub span: Span,
}

/// `let name = value` / `node name = value`
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// `message f(x, y) = body`
#[derive(Clone, Debug, PartialEq)]
pub struct MessageDef {
    pub name: Ident,
    pub params: Vec<Ident>,
    pub body: Expr,
    pub span: Span,
}

/// `rounds K { updates }`
#[derive(Clone, Debug, PartialEq)]
pub struct Rounds {
    pub count: IntLit,
    pub updates: Vec<Update>,
    pub span: Span,
}

/// `layers N { h = layer_norm(h + ...) ... }`: the updates run in order, N times over,
/// each time with parameters of their own (an `nn.TransformerEncoder`'s layers).
#[derive(Clone, Debug, PartialEq)]
pub struct Layers {
    pub count: IntLit,
    pub updates: Vec<Update>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOp {
    /// `t = expr`
    Assign,
    /// `t += expr`
    AddAssign,
}

/// One line of a `rounds` or `layers` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub target: Ident,
    pub op: UpdateOp,
    pub value: Expr,
    pub span: Span,
}

/// `loss expr`
#[derive(Clone, Debug, PartialEq)]
pub struct LossDecl {
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `42`
    Int(i64),
    /// `0.5`, `1e-3`
    Float(f64),
    /// `tokens`, `mean` (as a value, e.g. `aggregate: mean`)
    Name(String),
    /// `linear(x, 128)`, `mean(z, axis: 1)`
    Call { func: Ident, args: Vec<Arg> },
    /// `a + b`
    Binary { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr> },
    /// `-x`
    Neg(Box<Expr>),
    /// `[B, 8, 8]` (shapes for `reshape`)
    List(Vec<Expr>),
}

/// A call argument, positional (`name == None`) or named (`axis: 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

/// `train { optimizer adam(lr: 1e-3)  epochs 10  batch B  seed 7 }`: a list of
/// `key value` settings; the checker validates keys and values.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBlock {
    pub settings: Vec<TrainSetting>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainSetting {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}
