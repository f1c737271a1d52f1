//! Graph -> kernels: decides which IR values get a buffer, builds each buffered value's
//! loop (inlining the elementwise and view ops that feed it), and fuses loops of equal
//! domain into multi-output kernels.
//!
//! Rules:
//! - reductions, matmuls, scatter-adds, concats, graph outputs, values with several
//!   users and compute values that a broadcast expands get a buffer ("materialized");
//!   everything else (elementwise math, constants, broadcasts, transposes, slices,
//!   reshapes, one-hot, gathers, random numbers) is inlined into its consumer's loop as
//!   index arithmetic; a gather is inlined into each of its consumers even when it has
//!   several (a row load through an index costs less than a buffer's write and read);
//! - a value whose access pattern cannot be expressed affinely (a transpose under a
//!   reshape, a non-contiguous matmul operand...) is materialized and scheduling restarts;
//! - a new loop joins the earliest kernel of the same domain after everything it reads
//!   is written, unless that kernel would exceed `MAX_LOOP_EXPRS` expressions (so one
//!   kernel, one Cranelift function, stays small on deep models); inside that kernel it reads values the kernel computes at the same
//!   element directly from registers (so Adam's m, v and p updates share one loop);
//!   except a scalar loop that reads only arguments, which gets its own first kernel;
//! - `a * b + c` becomes one `fma` when the product has no other use;
//! - a `reduce_sum` of the product of two views that is a matrix product (attention's
//!   per-head `q k^T` and `weights v`, and their gradients) becomes a batched matmul
//!   call instead of a loop (`fuse/bmm.rs`, with its cost rule).
//!
//! This file decides what is buffered and where each loop goes; `fuse/roots.rs` builds
//! the kernels of each buffered value, `fuse/access.rs` inlines reads, `fuse/finish.rs`
//! contracts `fma` and sets how threads split each kernel.

mod access;
mod bmm;
mod finish;
mod roots;

use super::*;
use crate::ir::{Graph, Op, ValueId};
pub(crate) use finish::finish;
// Fx hashing: the memo of expressions (structs of vectors) was hashed with SipHash.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

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
    let mut m = HashSet::default();
    for (i, n) in g.nodes.iter().enumerate() {
        match &n.op {
            Op::Arg { .. } | Op::Const { .. } => {}
            Op::MatMul => {
                m.insert(i);
                m.extend(unviewable_operands(g, n));
            }
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ScatterAdd { .. } | Op::Concat { .. } => {
                m.insert(i);
            }
            Op::ScatterMax { .. } | Op::ScatterArgmax { .. } | Op::ArgmaxScatter { .. } => {
                m.insert(i);
                m.extend(unviewable_operands(g, n));
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
            // A gather is a row load through an index from a table that always has a
            // buffer (`access.rs`): each consumer repeats it, which costs an index load
            // per element where a buffer of its own would cost a write and a read of the
            // whole `[E, F]` (graph and GAT backward passes: the gathered gradient feeds
            // both a bias sum and a scatter).
            Op::Gather => {}
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

/// The operands of a library kernel (matmul, segment op) that it can only read from a
/// buffer of their own: computed values that are not views. Scheduling would discover
/// each of them by failing and restarting from scratch (`access::view`), which made
/// deep models quadratic (one restart per layer); they are materialized up front.
fn unviewable_operands<'a>(g: &'a Graph, n: &'a crate::ir::Node) -> impl Iterator<Item = usize> + 'a {
    n.operands
        .iter()
        .map(|o| o.index())
        .filter(|&o| !matches!(g.nodes[o].op, Op::Arg { .. }) && !is_view(&g.nodes[o].op))
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
    /// The index in `order` of each kernel id, kept up to date on every insertion, so
    /// that a kernel's position is an O(1) look-up on models with thousands of kernels.
    position: Vec<usize>,
    /// Loop kernels that later loops may join (no scatter rows), by domain, in
    /// execution order: where `place_loop` looks for a kernel to join, instead of
    /// scanning every kernel (quadratic on deep models).
    by_domain: HashMap<Vec<usize>, Vec<usize>>,
    writers: HashMap<BufId, Vec<usize>>,
    checks: Vec<Check>,
    /// The loop being built.
    cur: LoopKernel,
    cur_memo: HashMap<Expr, ExprId>,
}

type Res<T> = Result<T, usize>;

/// The most expressions a loop kernel gets by fusion: far above any example model's
/// kernels (69), small enough that Cranelift compiles each kernel in bounded time.
const MAX_LOOP_EXPRS: usize = 512;

impl<'g> Scheduler<'g> {
    fn new(g: &'g Graph, mat: &'g HashSet<usize>) -> Self {
        Scheduler {
            g,
            mat,
            buffers: Vec::new(),
            buf_of: HashMap::default(),
            kernels: Vec::new(),
            order: Vec::new(),
            position: Vec::new(),
            by_domain: HashMap::default(),
            writers: HashMap::default(),
            checks: Vec::new(),
            cur: LoopKernel {
                domain: vec![],
                exprs: vec![],
                stores: vec![],
                scatter_rows: None,
                row_blocks: None,
                zeroed: false,
                col_chunks: None,
            },
            cur_memo: HashMap::default(),
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
        let mut output_of: HashMap<usize, &str> = HashMap::default();
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
            dynamic: Vec::new(),
        })
    }

    fn start(&mut self, domain: &[usize]) {
        self.cur = LoopKernel {
            domain: domain.to_vec(),
            exprs: vec![],
            stores: vec![],
            scatter_rows: None,
            row_blocks: None,
            zeroed: false,
            col_chunks: None,
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

    fn pos(&self, kernel: usize) -> usize {
        self.position[kernel]
    }

    /// Puts kernel `id` (the newest) at index `pos` of the execution order.
    fn insert_kernel(&mut self, pos: usize, id: usize) {
        self.order.insert(pos, id);
        self.position.resize(self.kernels.len(), 0);
        for (q, &k) in self.order.iter().enumerate().skip(pos) {
            self.position[k] = q;
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
            memo: HashMap::default(),
        });
        self.insert_kernel(pos, id);
        self.writers.entry(out).or_default().push(id);
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
            // or written by it at the same element. No kernel before the last writer of
            // a read qualifies (that writer would come at or after it without being
            // it), so the search starts there; and a kernel that is already
            // MAX_LOOP_EXPRS long takes nothing more, which bounds the size of one
            // function for codegen (deep models would fuse every parameter update into
            // one kernel of tens of thousands of expressions).
            let candidates = self.by_domain.get(&lk.domain).map(Vec::as_slice).unwrap_or(&[]);
            let first = candidates.partition_point(|&k| self.pos(k) < min_pos.saturating_sub(1));
            'cand: for &k in &candidates[first..] {
                let p = self.pos(k);
                let KernelBody::Loop(kl) = &self.kernels[k].body else {
                    unreachable!("by_domain holds loop kernels")
                };
                if kl.exprs.len() + lk.exprs.len() > MAX_LOOP_EXPRS {
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
                    let e = e.remapped(&map);
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
                    kl.stores.push(s.remapped(&map));
                }
                k
            }
            None => {
                let id = self.kernels.len();
                let joinable = lk.scatter_rows.is_none().then(|| lk.domain.clone());
                self.kernels.push(Building {
                    body: KernelBody::Loop(lk),
                    memo: std::mem::take(&mut self.cur_memo),
                });
                self.insert_kernel(min_pos, id);
                if let Some(domain) = joinable {
                    let list = self.by_domain.entry(domain).or_default();
                    let at = list.partition_point(|&k| self.position[k] < min_pos);
                    list.insert(at, id);
                }
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
        row_blocks: None,
        zeroed: false,
        col_chunks: None,
    }
}
