//! The kernels that compute each buffered ("materialized") value.
//!
//! In: a materialized IR value and its buffer. Out: its kernel(s), placed in the
//! program: a reduction or any elementwise/view value becomes one loop (its operands
//! inlined through [`super::access`]), a scatter-add a loop whose threads own output
//! rows, a concat one loop per part, scatter-max, its argmax and its transpose a segment
//! kernel, a matmul a library call on strided views; a sum of a product of two views
//! that is a matrix product ([`super::bmm`]) a batched matmul. Bounds checks are
//! registered here.

use super::*;

impl<'g> Scheduler<'g> {
    /// The number of the bounds check of `node` (registered on first use).
    pub(super) fn register_check(&mut self, node: ValueId, op: &'static str, bound: usize) -> u32 {
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

    pub(super) fn check(&mut self, node: ValueId, op: &'static str, bound: usize, index: ExprId) -> ExprId {
        let check = self.register_check(node, op, bound);
        self.push(Expr::CheckIndex {
            index,
            bound: bound as i64,
            check,
        })
    }

    /// Builds the kernel(s) that compute materialized value `v` into `buf`.
    pub(super) fn root(&mut self, v: ValueId, buf: BufId) -> Res<()> {
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
                // A product of two views summed over one axis: a (batched) GEMM call.
                match bmm::as_matmul(&self.cur, &self.buffers) {
                    Some(mm) => {
                        self.cur = empty();
                        let reads = [mm.a.buf, mm.b.buf];
                        self.place_library(KernelBody::MatMul(mm), &reads, buf);
                    }
                    None => self.place_loop(),
                }
            }
            Op::ScatterAdd { rows } => {
                let ni = self.shape(x[1]).len();
                let values = self.unflattened_rows(x[0], ni);
                let domain = self.shape(values).to_vec();
                self.start(&domain);
                let ident = self.identity();
                let index = self.access(x[1], Acc::Coords(ident[..ni].to_vec()))?;
                let row = self.check(v, "scatter_add", *rows, index);
                let value = self.access(values, Acc::Coords(ident.clone()))?;
                let out_strides = strides(self.shape(v));
                // Within a row, the values' trailing axes in row-major order: the
                // output row's order (a reshape keeps it).
                let rest = ident[ni..]
                    .iter()
                    .zip(&strides(&domain[ni..]))
                    .fold(Affine::zero(domain.len()), |acc, (c, &s)| acc.scaled_add(c, s as i64));
                self.cur.stores.push(Store::Scatter {
                    buf,
                    row,
                    row_len: out_strides[0] as i64,
                    at: rest,
                    value,
                    op: ReduceOp::Sum,
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
                    zeroed: false,
                    maxima: None,
                };
                self.place_library(KernelBody::Segment(seg), &[values.0, index.0], buf);
            }
            Op::MatMul => {
                let a = self.view2(x[0])?;
                let b = self.view2(x[1])?;
                let (m, k, n) = (self.shape(x[0])[0], self.shape(x[0])[1], self.shape(x[1])[1]);
                let out = View2 {
                    buf,
                    offset: 0,
                    rs: n as i64,
                    cs: 1,
                };
                let mm = MatMul {
                    a,
                    b,
                    out,
                    m,
                    k,
                    n,
                    batch: vec![],
                };
                let reads = [mm.a.buf, mm.b.buf];
                self.place_library(KernelBody::MatMul(mm), &reads, buf);
            }
            _ => {
                // A reshape of a transpose (attention's heads merged back into rows): the
                // loop runs over the transpose's shape and writes each element at its
                // row-major linear index, which a reshape keeps, so the transpose stays
                // index arithmetic instead of a buffer and a copy. (Other reshapes keep
                // their own domain, and so their place in the kernels of that domain.)
                let through = matches!(node.op, Op::Reshape { .. }) && self.unbuffered_transpose(x[0]);
                let domain = if through { self.shape(x[0]) } else { self.shape(v) }.to_vec();
                self.start(&domain);
                let ident = self.identity();
                let acc = Acc::Coords(ident.clone());
                let value = if through {
                    self.access(x[0], acc)?
                } else {
                    self.inline(v, acc)?
                };
                let at = Affine::linear(&ident, &domain, domain.len());
                self.cur.stores.push(Store::Write { buf, at, value });
                self.place_loop();
            }
        }
        Ok(())
    }

    fn unbuffered_transpose(&self, v: ValueId) -> bool {
        matches!(self.g.node(v).op, Op::Transpose { .. }) && !self.buf_of.contains_key(&v.index())
    }

    /// The values a scatter-add of `ni` index axes reads: `values` itself, or, when it
    /// is an unbuffered reshape that keeps the index axes and only flattens each row
    /// (GAT's `[E, H, C] -> [E, H*C]`), the reshape's operand, so that the loop runs
    /// over `[E, H, C]` and per-head values (`[E, H]` attention weights broadcast over
    /// `C`) are read at affine indices instead of from a buffer of their own.
    fn unflattened_rows(&self, values: ValueId, ni: usize) -> ValueId {
        let node = self.g.node(values);
        match node.op {
            Op::Reshape { .. } if !self.buf_of.contains_key(&values.index()) => {
                let inner = node.operands[0];
                let (outer, flat) = (self.shape(inner), self.shape(values));
                if outer.len() > ni && outer[..ni] == flat[..ni] {
                    inner
                } else {
                    values
                }
            }
            _ => values,
        }
    }
}
