//! Graph -> kernels: decides which IR values get a buffer, builds each buffered value's
//! loop (inlining the elementwise and view ops that feed it), and fuses loops of equal
//! domain into multi-output kernels.
//!
//! Rules:
//! - reductions, matmuls, scatter-adds, concats, graph outputs, values with several
//!   users and compute values that a broadcast expands get a buffer ("materialized");
//!   everything else (elementwise math, constants, broadcasts, transposes, slices,
//!   reshapes, one-hot, gathers, random numbers) is inlined into its consumer's loop as
//!   index arithmetic;
//! - a value whose access pattern cannot be expressed affinely (a transpose under a
//!   reshape, a non-contiguous matmul operand...) is materialized and scheduling restarts;
//! - a new loop joins the earliest kernel of the same domain after everything it reads
//!   is written; inside that kernel it reads values the kernel computes at the same
//!   element directly from registers (so Adam's m, v and p updates share one loop);
//!   except a scalar loop that reads only arguments, which gets its own first kernel;
//! - `a * b + c` becomes one `fma` when the product has no other use.

use super::*;
use crate::ir::{Graph, Op, ValueId};
use std::collections::{HashMap, HashSet};

/// Schedules `graph` (which must be valid) into kernels.
pub fn schedule(graph: &Graph) -> Program {
    let mut materialized = initial_materialized(graph);
    loop {
        match Scheduler::new(graph, &materialized).run() {
            Ok(p) => return p,
            Err(v) => {
                let fresh = materialized.insert(v);
                assert!(fresh, "scheduler: %{v} is already materialized");
            }
        }
    }
}

fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Broadcast { .. } | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. }
    )
}

fn initial_materialized(g: &Graph) -> HashSet<usize> {
    let mut uses = vec![0usize; g.nodes.len()];
    for n in &g.nodes {
        for o in &n.operands {
            uses[o.index()] += 1;
        }
    }
    let mut m = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        match &n.op {
            Op::Arg { .. } | Op::Const { .. } => {}
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul | Op::ScatterAdd { .. } | Op::Concat { .. } => {
                m.insert(i);
            }
            Op::ScatterMax { .. } | Op::ScatterArgmax { .. } | Op::ArgmaxScatter { .. } => {
                m.insert(i);
            }
            op if is_view(op) => {
                if let Op::Broadcast { .. } = op {
                    let o = n.operands[0].index();
                    let src = &g.nodes[o].op;
                    if !matches!(src, Op::Arg { .. } | Op::Const { .. }) && !is_view(src) {
                        m.insert(o);
                    }
                }
            }
            _ => {
                if uses[i] > 1 {
                    m.insert(i);
                }
            }
        }
    }
    for (_, v) in &g.outputs {
        if !matches!(g.node(*v).op, Op::Arg { .. }) {
            m.insert(v.index());
        }
    }
    m
}

/// How a consumer reads a value: at coordinates, or at a row-major linear index.
enum Acc {
    Coords(Vec<Affine>),
    Linear(Affine),
}

/// A kernel under construction.
struct Building {
    body: KernelBody,
    memo: HashMap<Expr, ExprId>,
}

fn intern(lk: &mut LoopKernel, memo: &mut HashMap<Expr, ExprId>, e: Expr) -> ExprId {
    if let Some(&id) = memo.get(&e) {
        return id;
    }
    lk.exprs.push(e.clone());
    memo.insert(e, lk.exprs.len() - 1);
    lk.exprs.len() - 1
}

struct Scheduler<'g> {
    g: &'g Graph,
    mat: &'g HashSet<usize>,
    buffers: Vec<Buffer>,
    buf_of: HashMap<usize, BufId>,
    kernels: Vec<Building>,
    /// Kernel ids in execution order.
    order: Vec<usize>,
    writers: HashMap<BufId, Vec<usize>>,
    checks: Vec<Check>,
    /// The loop being built.
    cur: LoopKernel,
    cur_memo: HashMap<Expr, ExprId>,
}

type Res<T> = Result<T, usize>;

impl<'g> Scheduler<'g> {
    fn new(g: &'g Graph, mat: &'g HashSet<usize>) -> Self {
        Scheduler {
            g,
            mat,
            buffers: Vec::new(),
            buf_of: HashMap::new(),
            kernels: Vec::new(),
            order: Vec::new(),
            writers: HashMap::new(),
            checks: Vec::new(),
            cur: LoopKernel {
                domain: vec![],
                exprs: vec![],
                stores: vec![],
                scatter_rows: None,
            },
            cur_memo: HashMap::new(),
        }
    }

    fn shape(&self, v: ValueId) -> &'g [usize] {
        &self.g.ty(v).shape
    }

    fn new_buffer(&mut self, v: ValueId, kind: BufKind) -> BufId {
        let ty = self.g.ty(v);
        self.buffers.push(Buffer {
            kind,
            dtype: ty.dtype,
            len: ty.numel(),
            value: v.0,
        });
        self.buffers.len() - 1
    }

    fn run(mut self) -> Res<Program> {
        let g = self.g;
        let mut output_of: HashMap<usize, &str> = HashMap::new();
        for (name, v) in g.outputs.iter().rev() {
            output_of.insert(v.index(), name);
        }
        for (i, node) in g.nodes.iter().enumerate() {
            let v = ValueId(i as u32);
            if let Op::Arg { name, .. } = &node.op {
                let b = self.new_buffer(v, BufKind::Arg(name.clone()));
                self.buf_of.insert(i, b);
                continue;
            }
            if !self.mat.contains(&i) {
                continue;
            }
            let kind = match output_of.get(&i) {
                Some(name) => BufKind::Output(name.to_string()),
                None => BufKind::Temp,
            };
            let buf = self.new_buffer(v, kind);
            self.root(v, buf)?;
            self.buf_of.insert(i, buf);
        }
        let mut outputs = Vec::new();
        for (name, v) in &g.outputs {
            let b = self.buf_of[&v.index()];
            if self.buffers[b].kind == BufKind::Output(name.clone()) {
                outputs.push((name.clone(), b));
                continue;
            }
            // An argument or a value already given to another output: copy it.
            let out = self.new_buffer(*v, BufKind::Output(name.clone()));
            let shape = self.shape(*v).to_vec();
            self.start(&shape);
            let ident = self.identity();
            let at = Affine::linear(&ident, &shape, shape.len());
            let value = self.push(Expr::Load { buf: b, at: at.clone() });
            self.cur.stores.push(Store::Write { buf: out, at, value });
            self.place_loop();
            outputs.push((name.clone(), out));
        }
        let kernels = self
            .order
            .iter()
            .map(|&k| finish(std::mem::replace(&mut self.kernels[k].body, KernelBody::Loop(empty()))))
            .collect();
        Ok(Program {
            name: g.name.clone(),
            buffers: self.buffers,
            kernels,
            outputs,
            checks: self.checks,
        })
    }

    fn start(&mut self, domain: &[usize]) {
        self.cur = LoopKernel {
            domain: domain.to_vec(),
            exprs: vec![],
            stores: vec![],
            scatter_rows: None,
        };
        self.cur_memo.clear();
    }

    fn identity(&self) -> Vec<Affine> {
        let r = self.cur.domain.len();
        (0..r).map(|a| Affine::axis(r, a)).collect()
    }

    fn push(&mut self, e: Expr) -> ExprId {
        intern(&mut self.cur, &mut self.cur_memo, e)
    }

    /// The number of the bounds check of `node` (registered on first use).
    fn register_check(&mut self, node: ValueId, op: &'static str, bound: usize) -> u32 {
        (match self.checks.iter().position(|c| c.node == node.0) {
            Some(c) => c,
            None => {
                self.checks.push(Check {
                    node: node.0,
                    op,
                    bound: bound as i64,
                });
                self.checks.len() - 1
            }
        }) as u32
    }

    /// `v` as a contiguous run of its buffer: `(buffer, offset)`, or the value to materialize.
    fn contiguous(&self, v: ValueId) -> Res<(BufId, i64)> {
        let (b, offset, s) = self.view(v)?;
        let dense: Vec<i64> = strides(self.shape(v)).iter().map(|&s| s as i64).collect();
        if s == dense {
            Ok((b, offset))
        } else {
            Err(v.index())
        }
    }

    /// Places a library kernel (matmul, segment) right after the writers of what it reads.
    fn place_library(&mut self, body: KernelBody, reads: &[BufId], out: BufId) {
        let pos = reads
            .iter()
            .flat_map(|r| self.writers.get(r).cloned().unwrap_or_default())
            .map(|w| self.pos(w) + 1)
            .max()
            .unwrap_or(0);
        let id = self.kernels.len();
        self.kernels.push(Building {
            body,
            memo: HashMap::new(),
        });
        self.order.insert(pos, id);
        self.writers.entry(out).or_default().push(id);
    }

    fn check(&mut self, node: ValueId, op: &'static str, bound: usize, index: ExprId) -> ExprId {
        let check = self.register_check(node, op, bound);
        self.push(Expr::CheckIndex {
            index,
            bound: bound as i64,
            check,
        })
    }

    /// Builds the kernel(s) that compute materialized value `v` into `buf`.
    fn root(&mut self, v: ValueId, buf: BufId) -> Res<()> {
        let g = self.g;
        let node = g.node(v);
        let x = &node.operands;
        match &node.op {
            Op::ReduceSum { axes } | Op::ReduceMax { axes } => {
                let domain = self.shape(x[0]).to_vec();
                self.start(&domain);
                let ident = self.identity();
                let value = self.access(x[0], Acc::Coords(ident.clone()))?;
                let kept: Vec<Affine> = (0..domain.len())
                    .filter(|a| !axes.contains(a))
                    .map(|a| ident[a].clone())
                    .collect();
                let at = Affine::linear(&kept, self.shape(v), domain.len());
                let op = if matches!(node.op, Op::ReduceSum { .. }) {
                    ReduceOp::Sum
                } else {
                    ReduceOp::Max
                };
                self.cur.stores.push(Store::Reduce { buf, at, value, op });
                self.place_loop();
            }
            Op::ScatterAdd { rows } => {
                let domain = self.shape(x[0]).to_vec();
                self.start(&domain);
                let ident = self.identity();
                let ni = self.shape(x[1]).len();
                let index = self.access(x[1], Acc::Coords(ident[..ni].to_vec()))?;
                let row = self.check(v, "scatter_add", *rows, index);
                let value = self.access(x[0], Acc::Coords(ident.clone()))?;
                let out_strides = strides(self.shape(v));
                let rest = ident[ni..]
                    .iter()
                    .zip(&out_strides[1..])
                    .fold(Affine::zero(domain.len()), |acc, (c, &s)| acc.scaled_add(c, s as i64));
                self.cur.stores.push(Store::ScatterAdd {
                    buf,
                    row,
                    row_len: out_strides[0] as i64,
                    at: rest,
                    value,
                });
                self.cur.scatter_rows = Some(*rows);
                self.place_loop();
            }
            Op::Concat { axis } => {
                let out_shape = self.shape(v).to_vec();
                let mut start = 0;
                for &part in x {
                    let domain = self.shape(part).to_vec();
                    self.start(&domain);
                    let ident = self.identity();
                    let value = self.access(part, Acc::Coords(ident.clone()))?;
                    let mut coords = ident;
                    coords[*axis].offset += start as i64;
                    let at = Affine::linear(&coords, &out_shape, domain.len());
                    self.cur.stores.push(Store::Write { buf, at, value });
                    self.place_loop();
                    start += domain[*axis];
                }
            }
            Op::ScatterMax { rows } | Op::ScatterArgmax { rows } | Op::ArgmaxScatter { len: rows } => {
                let (op, name) = match node.op {
                    Op::ScatterMax { .. } => (SegmentOp::Max, "scatter_max"),
                    Op::ScatterArgmax { .. } => (SegmentOp::Argmax, "scatter_argmax"),
                    _ => (SegmentOp::ArgmaxScatter, "argmax_scatter"),
                };
                let values = self.contiguous(x[0])?;
                let index = self.contiguous(x[1])?;
                let row_len: usize = self.shape(v)[1..].iter().product();
                let positions = match op {
                    SegmentOp::ArgmaxScatter => self.shape(x[0])[0],
                    _ => self.shape(x[1]).iter().product(),
                };
                let check = self.register_check(v, name, *rows);
                let seg = Segment {
                    op,
                    values,
                    index,
                    out: buf,
                    positions,
                    row_len,
                    rows: *rows,
                    check,
                };
                self.place_library(KernelBody::Segment(seg), &[values.0, index.0], buf);
            }
            Op::MatMul => {
                let a = self.view2(x[0])?;
                let b = self.view2(x[1])?;
                let (m, k, n) = (self.shape(x[0])[0], self.shape(x[0])[1], self.shape(x[1])[1]);
                let mm = MatMul {
                    a,
                    b,
                    out: buf,
                    m,
                    k,
                    n,
                };
                let reads = [mm.a.buf, mm.b.buf];
                self.place_library(KernelBody::MatMul(mm), &reads, buf);
            }
            _ => {
                let domain = self.shape(v).to_vec();
                self.start(&domain);
                let ident = self.identity();
                let value = self.inline(v, Acc::Coords(ident.clone()))?;
                let at = Affine::linear(&ident, &domain, domain.len());
                self.cur.stores.push(Store::Write { buf, at, value });
                self.place_loop();
            }
        }
        Ok(())
    }

    /// `v` as a strided 2-D view of a buffer, or the value that must be materialized.
    fn view(&self, v: ValueId) -> Res<(BufId, i64, Vec<i64>)> {
        if let Some(&b) = self.buf_of.get(&v.index()) {
            let s = strides(self.shape(v)).iter().map(|&s| s as i64).collect();
            return Ok((b, 0, s));
        }
        let node = self.g.node(v);
        match &node.op {
            Op::Transpose { perm } => {
                let (b, o, s) = self.view(node.operands[0])?;
                Ok((b, o, perm.iter().map(|&p| s[p]).collect()))
            }
            Op::Slice { axis, start, .. } => {
                let (b, o, s) = self.view(node.operands[0])?;
                let off = o + *start as i64 * s[*axis];
                Ok((b, off, s))
            }
            Op::Reshape { .. } => {
                let (b, o, s) = self.view(node.operands[0])?;
                let contiguous: Vec<i64> = strides(self.shape(node.operands[0]))
                    .iter()
                    .map(|&s| s as i64)
                    .collect();
                if s == contiguous {
                    Ok((b, o, strides(self.shape(v)).iter().map(|&s| s as i64).collect()))
                } else {
                    Err(v.index())
                }
            }
            _ => Err(v.index()),
        }
    }

    fn view2(&self, v: ValueId) -> Res<View2> {
        let (buf, offset, s) = self.view(v)?;
        Ok(View2 {
            buf,
            offset,
            rs: s[0],
            cs: s[1],
        })
    }

    /// An expression reading `v` at `acc` in the current loop.
    fn access(&mut self, v: ValueId, acc: Acc) -> Res<ExprId> {
        if let Some(&buf) = self.buf_of.get(&v.index()) {
            let rank = self.cur.domain.len();
            let at = match acc {
                Acc::Coords(c) => Affine::linear(&c, self.shape(v), rank),
                Acc::Linear(l) => l,
            };
            return Ok(self.push(Expr::Load { buf, at }));
        }
        self.inline(v, acc)
    }

    /// `v`'s own op, inlined at `acc`.
    fn inline(&mut self, v: ValueId, acc: Acc) -> Res<ExprId> {
        let g = self.g;
        let node = g.node(v);
        let x = &node.operands;
        let rank = self.cur.domain.len();
        let un = |op| Some(op);
        let unary = match node.op {
            Op::Neg => un(UnOp::Neg),
            Op::Exp => un(UnOp::Exp),
            Op::Log => un(UnOp::Log),
            Op::Tanh => un(UnOp::Tanh),
            Op::Sqrt => un(UnOp::Sqrt),
            _ => None,
        };
        if let Some(op) = unary {
            let a = self.access(x[0], acc)?;
            return Ok(self.push(Expr::Unary(op, a)));
        }
        let binary = match node.op {
            Op::Add => Some(BinOp::Add),
            Op::Sub => Some(BinOp::Sub),
            Op::Mul => Some(BinOp::Mul),
            Op::Div => Some(BinOp::Div),
            Op::Max => Some(BinOp::Max),
            Op::Greater => Some(BinOp::Greater),
            _ => None,
        };
        if let Some(op) = binary {
            let acc2 = match &acc {
                Acc::Coords(c) => Acc::Coords(c.clone()),
                Acc::Linear(l) => Acc::Linear(l.clone()),
            };
            let a = self.access(x[0], acc)?;
            let b = self.access(x[1], acc2)?;
            return Ok(self.push(Expr::Binary(op, a, b)));
        }
        match (&node.op, acc) {
            (Op::Const { value, .. }, _) => Ok(self.push(Expr::Const((*value as f32).to_bits()))),
            (Op::Convert, acc) => {
                let a = self.access(x[0], acc)?;
                Ok(self.push(Expr::Convert(a)))
            }
            (Op::Broadcast { dims, .. }, Acc::Coords(c)) => {
                let inner = dims.iter().map(|&d| c[d].clone()).collect();
                self.access(x[0], Acc::Coords(inner))
            }
            (Op::Transpose { perm }, Acc::Coords(c)) => {
                let mut inner = vec![Affine::zero(rank); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inner[p] = c[i].clone();
                }
                self.access(x[0], Acc::Coords(inner))
            }
            (Op::Slice { axis, start, .. }, Acc::Coords(mut c)) => {
                c[*axis].offset += *start as i64;
                self.access(x[0], Acc::Coords(c))
            }
            (Op::Reshape { .. }, Acc::Coords(c)) => {
                let l = Affine::linear(&c, self.shape(v), rank);
                self.access(x[0], Acc::Linear(l))
            }
            (Op::Reshape { .. }, Acc::Linear(l)) => self.access(x[0], Acc::Linear(l)),
            (Op::Gather, Acc::Coords(c)) => {
                let table = *self.buf_of.get(&x[0].index()).ok_or(x[0].index())?;
                let ni = self.shape(x[1]).len();
                let index = self.access(x[1], Acc::Coords(c[..ni].to_vec()))?;
                let tshape = self.shape(x[0]);
                let row = self.check(v, "gather", tshape[0], index);
                let ts = strides(tshape);
                let at = c[ni..]
                    .iter()
                    .zip(&ts[1..])
                    .fold(Affine::zero(rank), |acc, (c, &s)| acc.scaled_add(c, s as i64));
                Ok(self.push(Expr::LoadRow {
                    buf: table,
                    row,
                    row_len: ts[0] as i64,
                    at,
                }))
            }
            (Op::OneHot { classes }, Acc::Coords(c)) => {
                let r = c.len();
                // No bounds check: a one-hot only compares, never reads memory; label -1
                // (an ignored label) and anything else out of range give a zero row.
                // Loaders reject labels outside [0, classes) and -1.
                let _ = classes;
                let index = self.access(x[0], Acc::Coords(c[..r - 1].to_vec()))?;
                Ok(self.push(Expr::OneHot {
                    index,
                    class: c[r - 1].clone(),
                }))
            }
            (Op::RandomUniform { stream, .. }, acc) => {
                let at = match acc {
                    Acc::Coords(c) => Affine::linear(&c, self.shape(v), rank),
                    Acc::Linear(l) => l,
                };
                let seed = self.access(x[0], Acc::Coords(vec![]))?;
                let step = self.access(x[1], Acc::Coords(vec![]))?;
                Ok(self.push(Expr::Philox {
                    seed,
                    step,
                    stream: *stream,
                    at,
                }))
            }
            // Linear access through a broadcast, transpose, slice, gather or one-hot,
            // or an op that always has a buffer: give `v` a buffer.
            _ => Err(v.index()),
        }
    }

    fn pos(&self, kernel: usize) -> usize {
        self.order.iter().position(|&k| k == kernel).expect("placed kernel")
    }

    /// Places the loop in `self.cur`: into an existing kernel of the same domain where
    /// that is valid, else as a new kernel right after what it reads.
    fn place_loop(&mut self) {
        let lk = std::mem::replace(&mut self.cur, empty());
        let reads: Vec<(BufId, Option<&Affine>)> = lk
            .exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Load { buf, at } => Some((*buf, Some(at))),
                Expr::LoadRow { buf, .. } => Some((*buf, None)),
                _ => None,
            })
            .collect();
        let writers_of = |b: BufId| self.writers.get(&b).cloned().unwrap_or_default();
        let min_pos = reads
            .iter()
            .flat_map(|(b, _)| writers_of(*b))
            .map(|w| self.pos(w) + 1)
            .max()
            .unwrap_or(0);
        let mut target = None;
        // A scalar computed from arguments alone (Adam's bias corrections from `@step`)
        // gets its own kernel first: joining a later scalar kernel (the loss) would delay
        // it and keep every parameter update that reads it out of its m/v kernel.
        let from_args_only = reads.iter().all(|(b, _)| writers_of(*b).is_empty());
        if lk.scatter_rows.is_none() && !(lk.domain.is_empty() && from_args_only) {
            // Earliest same-domain kernel where every read is either written before it
            // or written by it at the same element.
            'cand: for p in 0..self.order.len() {
                let k = self.order[p];
                let KernelBody::Loop(kl) = &self.kernels[k].body else {
                    continue;
                };
                if kl.domain != lk.domain || kl.scatter_rows.is_some() {
                    continue;
                }
                for (b, at) in &reads {
                    for w in writers_of(*b) {
                        if w == k {
                            let same = at.is_some_and(|at| {
                                kl.stores
                                    .iter()
                                    .any(|s| matches!(s, Store::Write { buf, at: a, .. } if buf == b && a == at))
                            });
                            if !same {
                                continue 'cand;
                            }
                        } else if self.pos(w) >= p {
                            continue 'cand;
                        }
                    }
                }
                target = Some(k);
                break;
            }
        }
        let written: Vec<BufId> = lk.stores.iter().map(|s| s.buf()).collect();
        let k = match target {
            Some(k) => {
                let b = &mut self.kernels[k];
                let KernelBody::Loop(kl) = &mut b.body else {
                    unreachable!()
                };
                let mut map = Vec::with_capacity(lk.exprs.len());
                for e in &lk.exprs {
                    let e = remap(e, &map);
                    if let Expr::Load { buf, at } = &e {
                        let hit = kl.stores.iter().find_map(|s| match s {
                            Store::Write { buf: sb, at: sa, value } if sb == buf && sa == at => Some(*value),
                            _ => None,
                        });
                        if let Some(v) = hit {
                            map.push(v);
                            continue;
                        }
                    }
                    map.push(intern(kl, &mut b.memo, e));
                }
                for s in lk.stores {
                    kl.stores.push(remap_store(s, &map));
                }
                k
            }
            None => {
                let id = self.kernels.len();
                self.kernels.push(Building {
                    body: KernelBody::Loop(lk),
                    memo: std::mem::take(&mut self.cur_memo),
                });
                self.order.insert(min_pos, id);
                id
            }
        };
        for b in written {
            self.writers.entry(b).or_default().push(k);
        }
    }
}

fn empty() -> LoopKernel {
    LoopKernel {
        domain: vec![],
        exprs: vec![],
        stores: vec![],
        scatter_rows: None,
    }
}

fn remap(e: &Expr, map: &[ExprId]) -> Expr {
    let m = |i: &ExprId| map[*i];
    match e {
        Expr::Load { .. } | Expr::Const(_) => e.clone(),
        Expr::LoadRow { buf, row, row_len, at } => Expr::LoadRow {
            buf: *buf,
            row: m(row),
            row_len: *row_len,
            at: at.clone(),
        },
        Expr::Unary(op, a) => Expr::Unary(*op, m(a)),
        Expr::Binary(op, a, b) => Expr::Binary(*op, m(a), m(b)),
        Expr::Fma(a, b, c) => Expr::Fma(m(a), m(b), m(c)),
        Expr::Convert(a) => Expr::Convert(m(a)),
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

fn remap_store(s: Store, map: &[ExprId]) -> Store {
    match s {
        Store::Write { buf, at, value } => Store::Write {
            buf,
            at,
            value: map[value],
        },
        Store::Reduce { buf, at, value, op } => Store::Reduce {
            buf,
            at,
            value: map[value],
            op,
        },
        Store::ScatterAdd {
            buf,
            row,
            row_len,
            at,
            value,
        } => Store::ScatterAdd {
            buf,
            row: map[row],
            row_len,
            at,
            value: map[value],
        },
    }
}

/// Contracts `a * b + c` into `fma` where the product has no other use.
fn contract_fma(lk: &mut LoopKernel) {
    let mut uses = vec![0usize; lk.exprs.len()];
    for e in &lk.exprs {
        for o in e.operands() {
            uses[o] += 1;
        }
    }
    for s in &lk.stores {
        uses[s.value()] += 1;
        if let Store::ScatterAdd { row, .. } = s {
            uses[*row] += 1;
        }
    }
    for i in 0..lk.exprs.len() {
        if let Expr::Binary(BinOp::Add, a, b) = lk.exprs[i] {
            let product = |x: usize| match lk.exprs[x] {
                Expr::Binary(BinOp::Mul, p, q) if uses[x] == 1 => Some((p, q)),
                _ => None,
            };
            if let Some((p, q)) = product(a) {
                lk.exprs[i] = Expr::Fma(p, q, b);
            } else if let Some((p, q)) = product(b) {
                lk.exprs[i] = Expr::Fma(p, q, a);
            }
        }
    }
}

fn finish(body: KernelBody) -> Kernel {
    match body {
        KernelBody::Loop(mut lk) => {
            contract_fma(&mut lk);
            let numel: usize = lk.domain.iter().product();
            let (range, parallel, work) = match lk.scatter_rows {
                // Splitting a scatter by output rows makes every thread scan every
                // position: measured slower on 2 threads than on 1 (bench/README.md), so
                // CPU threads leave scatters whole (the GPU gives each row a thread).
                Some(rows) => (rows, false, numel * 2),
                None if lk.domain.is_empty() => (1, false, 1),
                None => {
                    let split_ok = lk.stores.iter().all(|s| match s {
                        Store::Reduce { at, .. } => at.coef[0] != 0,
                        _ => true,
                    });
                    (lk.domain[0], split_ok, numel)
                }
            };
            Kernel {
                body: KernelBody::Loop(lk),
                range,
                parallel,
                work,
            }
        }
        KernelBody::MatMul(mm) => Kernel {
            range: mm.m.div_ceil(MATMUL_BLOCK),
            parallel: true,
            work: mm.m * mm.n * mm.k / 8,
            body: KernelBody::MatMul(mm),
        },
        KernelBody::Segment(seg) => Kernel {
            range: seg.rows,
            parallel: false, // as scatters: every thread would scan every position
            work: seg.positions * seg.row_len,
            body: KernelBody::Segment(seg),
        },
    }
}
