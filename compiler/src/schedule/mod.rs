//! The kernel IR: a training step as a list of kernels over named buffers.
//!
//! In: any valid [`crate::ir::Graph`] (from autodiff or the optimizer). Out: a
//! [`Program`]: buffers (graph arguments, graph outputs, temporaries) and kernels in
//! execution order. It is backend-neutral: the Cranelift backend renders each kernel as
//! one JIT function and the PTX backend renders the same kernels as one CUDA entry each;
//! [`analysis`] holds what both need to know about a loop kernel (live expressions, the
//! loop depth of each expression) and [`printer`] its text, shared with PTX comments.
//!
//! Kernel kinds:
//! - [`LoopKernel`]: a loop nest over a `domain`; an SSA list of scalar expressions
//!   ([`Expr`]: loads at affine indices, elementwise math, gathers with a bounds check,
//!   one-hot, Philox random numbers) and stores ([`Store`]: plain writes, reductions that
//!   accumulate into their output in row-major order of the domain, and scatter-adds).
//!   Fused chains of elementwise ops, broadcasts, transposes, slices and reshapes all
//!   end up here as index arithmetic; several outputs of the same domain share one loop.
//! - [`MatMul`]: a library call on strided 2-D views (a transpose is a swapped stride),
//!   repeated over up to two batch axes: `Op::MatMul`, and reductions of a product of
//!   two views that form a (batched) matrix product (attention's per-head products).
//! - [`Segment`]: scatter-max, its argmax and its transpose, as library code.
//! - [`attention::Attention`]: `softmax(f(Q K^T)) V` per batch item as library code,
//!   made only by the CPU pass `fuse_attention` from the kernels above.
//!
//! Determinism: every output element is computed by one thread, and reductions and
//! scatter-adds accumulate in the interpreter's order (row-major over the domain), so
//! results never depend on the thread count. A kernel's `range` is what threads split:
//! domain axis 0 for loops, output rows for scatter-adds, (64-row block, column block) pairs for matmuls.

pub mod analysis;
pub mod argmax_maxima;
pub mod attention;
pub mod block_reductions;
pub mod dynamic;
mod fuse;
pub mod long_math;
pub mod max_messages;
pub mod plan;
pub mod printer;
pub mod row_blocks;
pub mod scatter_columns;
pub mod store_groups;
pub mod zero_fill;

pub use fuse::schedule;
pub use printer::print_program;

use crate::ir::{Binary, DType, Unary};

pub type BufId = usize;
pub type ExprId = usize;

/// Where a buffer's memory comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufKind {
    /// A graph argument (input, parameter, state), supplied by the caller per run.
    Arg(String),
    /// A graph output, owned by the caller and live after the run.
    Output(String),
    /// An intermediate value, placed in the arena by [`plan`].
    Temp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub kind: BufKind,
    pub dtype: DType,
    /// Elements.
    pub len: usize,
    /// The IR value it holds (`%n`), for printing and errors.
    pub value: u32,
}

/// `sum(coef[a] * i[a]) + offset` over the loop indices of a kernel's domain, in elements.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub coef: Vec<i64>,
    pub offset: i64,
}

impl Affine {
    pub fn zero(rank: usize) -> Affine {
        Affine {
            coef: vec![0; rank],
            offset: 0,
        }
    }
    /// Loop axis `a` itself.
    pub fn axis(rank: usize, a: usize) -> Affine {
        let mut z = Affine::zero(rank);
        z.coef[a] = 1;
        z
    }
    pub fn scaled_add(&self, other: &Affine, k: i64) -> Affine {
        Affine {
            coef: self.coef.iter().zip(&other.coef).map(|(a, b)| a + k * b).collect(),
            offset: self.offset + k * other.offset,
        }
    }
    /// Row-major linear index of coordinates `coords` in a tensor of `shape`.
    pub fn linear(coords: &[Affine], shape: &[usize], rank: usize) -> Affine {
        let strides = strides(shape);
        coords
            .iter()
            .zip(strides)
            .fold(Affine::zero(rank), |acc, (c, s)| acc.scaled_add(c, s as i64))
    }
    /// The row-major index of an element of a loop over `domain`.
    pub fn row_major(domain: &[usize]) -> Affine {
        Affine {
            coef: strides(domain).iter().map(|&s| s as i64).collect(),
            offset: 0,
        }
    }
    /// The deepest loop axis it depends on, plus one (0: loop-invariant).
    pub fn level(&self) -> usize {
        self.coef.iter().rposition(|&c| c != 0).map_or(0, |a| a + 1)
    }
}

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// One scalar expression of a loop kernel; operands are earlier expressions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `buf[at]`, of the buffer's dtype.
    Load {
        buf: BufId,
        at: Affine,
    },
    /// `buf[row * row_len + at]`: a gather; `row` is an i32 expression already checked.
    LoadRow {
        buf: BufId,
        row: ExprId,
        row_len: i64,
        at: Affine,
    },
    /// An f32 constant, by its bits.
    Const(u32),
    /// An elementwise op of the IR's table (`ir::ops`); `convert` takes an i32 operand.
    Unary(Unary, ExprId),
    Binary(Binary, ExprId, ExprId),
    /// `a * b + c` with one rounding.
    Fma(ExprId, ExprId, ExprId),
    /// The i32 `index` if it is in `[0, bound)`; otherwise 0, and the run fails with
    /// check number `check` (see [`Program::checks`]). Never reads out of bounds.
    CheckIndex {
        index: ExprId,
        bound: i64,
        check: u32,
    },
    /// f32 `1.0` where the (checked) i32 `index` equals `class`, else `0.0`.
    OneHot {
        index: ExprId,
        class: Affine,
    },
    /// Philox4x32-10 uniform `[0, 1)` for element `at` (bit-identical with `ir::philox`);
    /// `seed` and `step` are i32 expressions.
    Philox {
        seed: ExprId,
        step: ExprId,
        stream: u32,
        at: Affine,
    },
}

impl Expr {
    pub fn operands(&self) -> Vec<ExprId> {
        match self {
            Expr::Load { .. } | Expr::Const(_) => vec![],
            Expr::OneHot { index, .. } => vec![*index],
            Expr::LoadRow { row, .. } => vec![*row],
            Expr::Unary(_, a) | Expr::CheckIndex { index: a, .. } => vec![*a],
            Expr::Binary(_, a, b) => vec![*a, *b],
            Expr::Fma(a, b, c) => vec![*a, *b, *c],
            Expr::Philox { seed, step, .. } => vec![*seed, *step],
        }
    }
    /// The same expression with its operands renumbered by `map` (old id to new).
    pub fn remapped(&self, map: &[ExprId]) -> Expr {
        let m = |i: &ExprId| map[*i];
        match self {
            Expr::Load { .. } | Expr::Const(_) => self.clone(),
            Expr::LoadRow { buf, row, row_len, at } => Expr::LoadRow {
                buf: *buf,
                row: m(row),
                row_len: *row_len,
                at: at.clone(),
            },
            Expr::Unary(op, a) => Expr::Unary(*op, m(a)),
            Expr::Binary(op, a, b) => Expr::Binary(*op, m(a), m(b)),
            Expr::Fma(a, b, c) => Expr::Fma(m(a), m(b), m(c)),
            Expr::CheckIndex { index, bound, check } => Expr::CheckIndex {
                index: m(index),
                bound: *bound,
                check: *check,
            },
            Expr::OneHot { index, class } => Expr::OneHot {
                index: m(index),
                class: class.clone(),
            },
            Expr::Philox { seed, step, stream, at } => Expr::Philox {
                seed: m(seed),
                step: m(step),
                stream: *stream,
                at: at.clone(),
            },
        }
    }
    /// The affine index it reads at, if any.
    pub fn affine(&self) -> Option<&Affine> {
        match self {
            Expr::Load { at, .. } | Expr::LoadRow { at, .. } | Expr::Philox { at, .. } => Some(at),
            Expr::OneHot { class, .. } => Some(class),
            _ => None,
        }
    }
    /// The affine index it reads at, if any, to rewrite.
    pub fn affine_mut(&mut self) -> Option<&mut Affine> {
        match self {
            Expr::Load { at, .. } | Expr::LoadRow { at, .. } | Expr::Philox { at, .. } => Some(at),
            Expr::OneHot { class, .. } => Some(class),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
}

impl ReduceOp {
    /// The value a reduction starts from.
    pub fn init(self) -> f32 {
        match self {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Store {
    /// `buf[at] = value`.
    Write { buf: BufId, at: Affine, value: ExprId },
    /// `buf[at] = op(buf[at], value)`; `buf` starts at `op.init()` (the kernel fills its
    /// part first). `at` ignores the reduced axes.
    Reduce {
        buf: BufId,
        at: Affine,
        value: ExprId,
        op: ReduceOp,
    },
    /// `buf[row * row_len + at] = op(buf[..], value)`, `buf` starting at `op.init()`
    /// (zero for a scatter-add, `-inf` for a scatter-max); a thread owns the rows
    /// `range` gives it and skips the others.
    Scatter {
        buf: BufId,
        row: ExprId,
        row_len: i64,
        at: Affine,
        value: ExprId,
        op: ReduceOp,
    },
}

impl Store {
    pub fn buf(&self) -> BufId {
        match self {
            Store::Write { buf, .. } | Store::Reduce { buf, .. } | Store::Scatter { buf, .. } => *buf,
        }
    }
    pub fn value(&self) -> ExprId {
        match self {
            Store::Write { value, .. } | Store::Reduce { value, .. } | Store::Scatter { value, .. } => *value,
        }
    }
    /// The same store with the expressions it reads renumbered by `map`.
    pub fn remapped(mut self, map: &[ExprId]) -> Store {
        match &mut self {
            Store::Write { value, .. } | Store::Reduce { value, .. } => *value = map[*value],
            Store::Scatter { row, value, .. } => {
                *row = map[*row];
                *value = map[*value];
            }
        }
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoopKernel {
    pub domain: Vec<usize>,
    pub exprs: Vec<Expr>,
    pub stores: Vec<Store>,
    /// For a scatter-add kernel, the output rows threads split (the domain is walked
    /// whole by every thread); otherwise `None` and threads split domain axis 0.
    pub scatter_rows: Option<usize>,
    /// On the CPU, for a loop that reduces over its outermost axis: threads split it in
    /// blocks of this many rows, each block summing into its own slice of the reduced
    /// buffers, which a combine kernel then adds in block order (`row_blocks.rs`).
    pub row_blocks: Option<usize>,
    /// A scatter-add whose output an earlier kernel already zeroed (on the CPU, a
    /// parallel fill: `zero_fill.rs`), so it does not zero its rows itself.
    pub zeroed: bool,
    /// On the CPU, a rank-2 scatter-add that threads split by chunks of this many
    /// columns: each walks every position, over its chunks' columns only
    /// (`scatter_columns.rs`).
    pub col_chunks: Option<usize>,
}

/// A strided 2-D view of a buffer: element `(i, j)` is `buf[offset + i*rs + j*cs]`.
#[derive(Clone, Debug, PartialEq)]
pub struct View2 {
    pub buf: BufId,
    pub offset: i64,
    pub rs: i64,
    pub cs: i64,
}

impl View2 {
    /// Stored column-major, i.e. a folded transpose.
    pub fn transposed(&self) -> bool {
        self.cs != 1
    }
}

/// One batch axis of a batched matmul: its extent and how far (in elements) each
/// operand and the output move per step along it (0: that operand is shared).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchAxis {
    pub len: usize,
    pub a: i64,
    pub b: i64,
    pub out: i64,
}

/// `out[m, n] = a[m, k] · b[k, n]` on strided views, once per index of the batch axes:
/// for batch coordinates `(j0, j1)` each view's offset moves by `j0 * stride0 + j1 *
/// stride1`. A plain matmul (`Op::MatMul`) has no batch axes and a contiguous `out`
/// (`rs = n`, `cs = 1`); a reduction recognized as a product of two views
/// (`fuse/bmm.rs`, e.g. attention's per-head `q k^T`) has up to two and writes `out`
/// with the strides its IR layout gives.
#[derive(Clone, Debug, PartialEq)]
pub struct MatMul {
    pub a: View2,
    pub b: View2,
    pub out: View2,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Outermost first; at most [`MAX_BATCH_AXES`].
    pub batch: Vec<BatchAxis>,
}

/// The batch axes a matmul kernel carries (attention: batch and heads, whose strides
/// do not merge because the heads sit inside a row).
pub const MAX_BATCH_AXES: usize = 2;

impl MatMul {
    /// Products computed: the batch axes' extents multiplied (1 without batch axes).
    pub fn batches(&self) -> usize {
        self.batch.iter().map(|x| x.len).product()
    }
    /// The element offsets of `a`, `b` and `out` for flat batch index `j` (row-major
    /// over the batch axes).
    pub fn batch_offsets(&self, mut j: usize) -> (i64, i64, i64) {
        let (mut oa, mut ob, mut oc) = (0, 0, 0);
        for x in self.batch.iter().rev() {
            let i = (j % x.len) as i64;
            j /= x.len;
            oa += i * x.a;
            ob += i * x.b;
            oc += i * x.out;
        }
        (oa, ob, oc)
    }
}

/// Rows per matmul block: threads split blocks, so the result is thread-count independent.
pub const MATMUL_BLOCK: usize = 64;

/// The narrowest column block a matmul is split into (see [`MatMul::col_blocks`]).
pub const MATMUL_MIN_COLS: usize = 16;

impl MatMul {
    /// How many column blocks each (batch, row block) pair is split into: 1, unless
    /// the pairs are too few to keep two threads busy (a weight gradient `[in, B]·[B, out]`
    /// with a small batch, a wide layer on 32 rows), then up to 4 blocks of at least
    /// [`MATMUL_MIN_COLS`] columns. It depends on the compiled shapes only, never on the
    /// thread count, so a result does not depend on how threads split the work.
    pub fn col_blocks(&self) -> usize {
        if self.batches() * self.m.div_ceil(MATMUL_BLOCK) >= 4 {
            return 1;
        }
        (self.n / MATMUL_MIN_COLS).clamp(1, 4)
    }

    /// The GEMM calls threads split when the rows are `m` (the compiled `m`, or a batch
    /// of graphs' count at run time): (batch, row block, column block) triples.
    pub fn tasks(&self, m: usize) -> usize {
        self.batches() * m.div_ceil(MATMUL_BLOCK) * self.col_blocks()
    }
}

/// The segment reductions that message aggregation by max needs, run as library code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentOp {
    /// `out[r, d]` = max of `values[p, d]` over positions `p` with `index[p] == r`
    /// (`-inf` for empty rows).
    Max,
    /// `out[r, d]` (i32) = the lowest such `p` holding that max (-1 for empty rows).
    Argmax,
    /// `out[index[r, d], d] = values[r, d]` (zero elsewhere; `index` -1 skipped): the
    /// transpose of `Max`, with `index` its argmax.
    ArgmaxScatter,
}

/// A segment kernel over contiguous operands (`(buffer, offset)`): `positions` rows of
/// `row_len` values in, `rows` rows out. Deterministic: a thread owns a range of output
/// rows and scans every position in order. Indices outside `[0, rows)` fail check `check`.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub op: SegmentOp,
    pub values: (BufId, i64),
    pub index: (BufId, i64),
    pub out: BufId,
    pub positions: usize,
    pub row_len: usize,
    pub rows: usize,
    pub check: u32,
    /// The output is zeroed by a fill kernel just before (the CPU's
    /// `zero_scatter_targets`): an `ArgmaxScatter` then splits its positions between
    /// threads instead of its rows (a position's elements go to rows no other position
    /// writes, those of its own segment), and writes only what it scatters.
    pub zeroed: bool,
    /// With `Argmax`: the running maxima are written here too, the output of a segment
    /// max over the same values that this kernel replaced (the CPU's
    /// `share_argmax_maxima`).
    pub maxima: Option<BufId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum KernelBody {
    Loop(LoopKernel),
    MatMul(MatMul),
    Segment(Segment),
    /// Softmax attention per batch item, library code (the CPU's `fuse_attention`).
    Attention(attention::Attention),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub body: KernelBody,
    /// Threads split `0..range` into contiguous pieces.
    pub range: usize,
    /// False when the kernel must run as one piece (e.g. it reduces over axis 0).
    pub parallel: bool,
    /// Rough cost in elements touched, for deciding whether splitting pays.
    pub work: usize,
}

/// Where threads cut a rank-1 loop: at multiples of this, so that only the part that
/// ends the domain has a remainder below a vector body (the codegen emits the shorter
/// loops only for the domain's own remainder).
pub const SPLIT_ALIGN: usize = 8;

impl LoopKernel {
    /// How many row blocks a kernel split in row blocks runs (`row_blocks`), else 0.
    pub fn blocks(&self) -> usize {
        self.row_blocks.map_or(0, |rows| self.domain[0].div_ceil(rows))
    }

    /// How many column chunks a scatter split by columns has (`col_chunks`), else 0.
    pub fn chunks(&self) -> usize {
        self.col_chunks
            .map_or(0, |c| self.domain[self.domain.len() - 1].div_ceil(c))
    }

    /// Whether threads cut its range at multiples of [`SPLIT_ALIGN`] (see [`Kernel::part`]).
    pub fn aligned_split(&self) -> bool {
        self.domain.len() == 1 && self.scatter_rows.is_none() && self.row_blocks.is_none()
    }

    /// Whether each call of this scatter runs only the positions whose output rows are
    /// its own (`parallel`: threads split its range): split by rows, or whole on one
    /// thread while its rows are a count read at run time (a row past it is no one's).
    pub fn threads_own_rows(&self, p: &Program, parallel: bool) -> bool {
        let scatters = self.stores.iter().any(|s| matches!(s, Store::Scatter { .. }));
        let owns_all_rows = !parallel && self.scatter_rows.is_some_and(|r| p.dynamic_slot(r).is_none());
        scatters && self.col_chunks.is_none() && !owns_all_rows
    }
}

impl Kernel {
    /// The part of `0..range` that thread `t` of `threads` runs: contiguous parts in
    /// thread order, cut at multiples of [`SPLIT_ALIGN`] for a rank-1 loop.
    pub fn part(&self, range: usize, t: usize, threads: usize) -> (usize, usize) {
        let aligned = matches!(&self.body, KernelBody::Loop(lk) if lk.aligned_split());
        let cut = |t: usize| {
            let at = range * t / threads;
            if aligned && t < threads {
                at / SPLIT_ALIGN * SPLIT_ALIGN
            } else {
                at
            }
        };
        (cut(t), cut(t + 1))
    }
}

/// A bounds check's site, for the error message.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub node: u32,
    pub op: &'static str,
    pub bound: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub name: String,
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// Graph outputs in order and their buffers (kind `Output`).
    pub outputs: Vec<(String, BufId)>,
    pub checks: Vec<Check>,
    /// Capacities the runtime replaces batch by batch with the batch's own counts
    /// (`dynamic.rs`); slot `i` of the run-time sizes holds the count of capacity
    /// `dynamic[i]` (0: that slot is not read). Empty for a program of fixed sizes.
    pub dynamic: Vec<usize>,
}

impl Program {
    /// The run-time sizes slot of an extent, if it is a dynamic capacity.
    pub fn dynamic_slot(&self, extent: usize) -> Option<usize> {
        self.dynamic.iter().position(|&c| c != 0 && c == extent)
    }
}

impl Program {
    /// Buffer of the graph argument called `name`.
    pub fn arg(&self, name: &str) -> Option<BufId> {
        self.buffers
            .iter()
            .position(|b| b.kind == BufKind::Arg(name.to_string()))
    }
}

/// A program of one loop kernel over F32 temporaries of these lengths (unit tests of the
/// passes over programs).
#[cfg(test)]
pub(crate) fn one_loop_program(lk: LoopKernel, lens: &[usize]) -> Program {
    let buffers = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| Buffer {
            kind: BufKind::Temp,
            dtype: DType::F32,
            len,
            value: i as u32,
        })
        .collect();
    Program {
        name: "t".into(),
        buffers,
        kernels: vec![fuse::finish(KernelBody::Loop(lk))],
        outputs: vec![],
        checks: vec![],
        dynamic: vec![],
    }
}
