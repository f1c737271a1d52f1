//! How a loop reads an IR value: from its buffer, or inlined as index arithmetic.
//!
//! In: a value and the coordinates (or row-major linear index) a loop reads it at. Out:
//! the scalar expression in the current loop: a load at an affine index, or the value's
//! own op (elementwise math, broadcasts, transposes, slices, reshapes, gathers, one-hot,
//! random numbers) applied to its operands' reads. What cannot be expressed affinely is
//! reported as the value to materialize, and scheduling restarts. Also strided views of
//! buffers for library kernels (matmul operands, segment operands).

use super::*;

impl<'g> Scheduler<'g> {
    /// `v` as a contiguous run of its buffer: `(buffer, offset)`, or the value to materialize.
    pub(super) fn contiguous(&self, v: ValueId) -> Res<(BufId, i64)> {
        let (b, offset, s) = self.view(v)?;
        let dense: Vec<i64> = strides(self.shape(v)).iter().map(|&s| s as i64).collect();
        if s == dense {
            Ok((b, offset))
        } else {
            Err(v.index())
        }
    }

    /// `v` as a strided 2-D view of a buffer, or the value that must be materialized.
    pub(super) fn view(&self, v: ValueId) -> Res<(BufId, i64, Vec<i64>)> {
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

    pub(super) fn view2(&self, v: ValueId) -> Res<View2> {
        let (buf, offset, s) = self.view(v)?;
        Ok(View2 {
            buf,
            offset,
            rs: s[0],
            cs: s[1],
        })
    }

    /// An expression reading `v` at `acc` in the current loop.
    pub(super) fn access(&mut self, v: ValueId, acc: Acc) -> Res<ExprId> {
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
    pub(super) fn inline(&mut self, v: ValueId, acc: Acc) -> Res<ExprId> {
        let g = self.g;
        let node = g.node(v);
        let x = &node.operands;
        let rank = self.cur.domain.len();
        match node.op {
            Op::Unary(op) => {
                let a = self.access(x[0], acc)?;
                return Ok(self.push(Expr::Unary(op, a)));
            }
            Op::Binary(op) => {
                let acc2 = match &acc {
                    Acc::Coords(c) => Acc::Coords(c.clone()),
                    Acc::Linear(l) => Acc::Linear(l.clone()),
                };
                let a = self.access(x[0], acc)?;
                let b = self.access(x[1], acc2)?;
                return Ok(self.push(Expr::Binary(op, a, b)));
            }
            _ => {}
        }
        // A broadcast or gather read at a linear index (under a reshape) takes
        // coordinates when the index splits into them exactly: a flattened `x W + b`
        // reads its bias in place, GAT's per-edge rows `[E, H*C]` read as `[E, H, C]`
        // are gathered in place, instead of each from a buffer of its own.
        let acc = match acc {
            Acc::Linear(l) if needs_coords(&node.op) => match self.delinearize(&l, self.shape(v)) {
                Some(c) => Acc::Coords(c),
                None => match self.trailing_broadcast(v, &l) {
                    Some(inner) => return self.access(x[0], Acc::Linear(inner)),
                    None => Acc::Linear(l),
                },
            },
            acc => acc,
        };
        match (&node.op, acc) {
            (Op::Const { value, .. }, _) => Ok(self.push(Expr::Const((*value as f32).to_bits()))),
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
            // A slice with nothing but unit axes before its axis is one contiguous block
            // of its operand: a linear index moves by the block's start (an edge list's
            // sources and destinations, `edges[0]` and `edges[1]` flattened, are read in
            // place instead of copied every step).
            (Op::Slice { axis, start, .. }, Acc::Linear(mut l))
                if self.shape(x[0])[..*axis].iter().all(|&n| n == 1) =>
            {
                l.offset += (*start * strides(self.shape(x[0]))[*axis]) as i64;
                self.access(x[0], Acc::Linear(l))
            }
            (Op::Reshape { .. }, Acc::Coords(c)) => {
                let l = Affine::linear(&c, self.shape(v), rank);
                self.access(x[0], Acc::Linear(l))
            }
            (Op::Reshape { .. }, Acc::Linear(l)) => self.access(x[0], Acc::Linear(l)),
            (Op::Gather, Acc::Coords(c)) => {
                let table = self.gather_table(x[0])?;
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
            (Op::RandomUniform { stream, offset, .. }, acc) => {
                let mut at = match acc {
                    Acc::Coords(c) => Affine::linear(&c, self.shape(v), rank),
                    Acc::Linear(l) => l,
                };
                at.offset += *offset as i64;
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

    /// The buffer a gather reads rows of `table` from: its own, or through reshapes that
    /// keep the rows (`[N, H*C] -> [N, H, C]`, the same memory), the reshaped value's.
    /// Err: the value to give a buffer (the innermost such reshape's operand).
    fn gather_table(&self, table: ValueId) -> Res<BufId> {
        let mut t = table;
        loop {
            if let Some(&buf) = self.buf_of.get(&t.index()) {
                return Ok(buf);
            }
            let node = self.g.node(t);
            match node.op {
                Op::Reshape { .. } if self.shape(node.operands[0]).first() == self.shape(t).first() => {
                    t = node.operands[0];
                }
                _ => return Err(t.index()),
            }
        }
    }

    /// A broadcast of `x` along leading axes only (`x`'s axes are the output's last
    /// ones, in order) read at linear index `l`: `x`'s own linear index, `l` mod
    /// `x`'s size, when `l` splits exactly into a multiple of that size and a rest
    /// below it. GAT's per-head attention vectors `[H, C]`, read per edge through a
    /// reshape `[E, H*C] -> [E, H, C]`, are read in place instead of from an `[E, H, C]`
    /// buffer written every step.
    fn trailing_broadcast(&self, v: ValueId, l: &Affine) -> Option<Affine> {
        let Op::Broadcast { shape, dims } = &self.g.node(v).op else {
            return None;
        };
        let lead = shape.len().checked_sub(dims.len())?;
        if dims.iter().enumerate().any(|(k, &d)| d != lead + k) {
            return None;
        }
        let size: usize = shape[lead..].iter().product();
        let rows: usize = shape[..lead].iter().product();
        let [_, inner] = <[Affine; 2]>::try_from(self.delinearize(l, &[rows, size])?).ok()?;
        Some(inner)
    }

    /// The coordinates in a tensor of `shape` of the row-major linear index `l`, when
    /// they are affine in the loop indices: each loop axis's coefficient goes to the
    /// outermost dimension whose stride divides it, the offset is split in mixed radix,
    /// and every coordinate must stay inside its dimension over the whole domain (so no
    /// carry ever crosses a dimension and the split is exact). `None` otherwise.
    fn delinearize(&self, l: &Affine, shape: &[usize]) -> Option<Vec<Affine>> {
        let rank = self.cur.domain.len();
        let strides: Vec<i64> = strides(shape).iter().map(|&s| s as i64).collect();
        if l.offset < 0 || l.coef.iter().any(|&c| c < 0) || strides.iter().any(|&s| s <= 0) {
            return None;
        }
        let mut coords = vec![Affine::zero(rank); shape.len()];
        let mut rest = l.offset;
        for (c, &s) in coords.iter_mut().zip(&strides) {
            c.offset = rest / s;
            rest %= s;
        }
        for (a, &k) in l.coef.iter().enumerate() {
            if k != 0 {
                let d = strides.iter().position(|&s| k % s == 0)?;
                coords[d].coef[a] = k / strides[d];
            }
        }
        let fits = coords.iter().zip(shape).all(|(c, &n)| {
            let top = c
                .coef
                .iter()
                .zip(&self.cur.domain)
                .fold(c.offset, |acc, (&k, &ext)| acc + k * (ext as i64 - 1).max(0));
            top < n as i64
        });
        fits.then_some(coords)
    }
}

/// Ops read at coordinates when a linear index splits into them: broadcasts and
/// gathers. (A transpose or slice under a reshape stays a failed access, so the value
/// gets a buffer: attention's per-head `q`, `k`, `v` are such values, and their buffers
/// are what lets their products run as batched GEMM calls, `fuse/bmm.rs`.)
fn needs_coords(op: &Op) -> bool {
    matches!(op, Op::Broadcast { .. } | Op::Gather)
}
