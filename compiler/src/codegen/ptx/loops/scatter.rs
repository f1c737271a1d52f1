//! Scatter kernels (scatter-add, scatter-max) as PTX: one thread per output row, or per
//! output element when the rows are few and the columns are the domain's last axis.
//!
//! In: a loop kernel whose stores are all scatters with one row expression. Out: the
//! entry body: each thread starts its row (or element) at the scatter's identity (zero,
//! `-inf`), walks the domain in row-major order and combines the contributions whose row
//! index is its own (the CPU's per-thread guard with one row per thread), so sums are in
//! the interpreter's order without atomics.
//!
//! Per element ([`column_axis`]): a `[positions.., columns]` scatter whose row index does
//! not read the columns and whose every store writes column `j` of its row, into fewer
//! than [`ELEMENT_ROWS`] rows. Thread `(row, j)` then walks the positions only. Measured
//! on an H200 (`MPC_CUDA_PROFILE`): a molecule batch's `[2732, 64]` edge sums into 1307
//! rows took 2.6 ms a thread per row and 0.4 ms per element, the character LM's
//! `[64, 17, 64]` embedding gradient into 52 rows 2.7 and 0.13 ms (the steps 16 -> 4.4
//! ms and 3.9 -> 1.35 ms). With many rows the threads per row are enough, and a thread
//! per element walks the positions once per column: the text classifier's 10000-row
//! embedding gradient went from 0.22 to about 1 ms that way.
//!
//! Either way a thread computes a position's row index first and its value only when
//! the row is its own (`Gen::guarded_level`).

use super::{fconst, Gen, Ty};
use crate::schedule::analysis::expr_levels;
use crate::schedule::{LoopKernel, Store};

/// Scatters into this many rows or more run a thread per row.
pub(super) const ELEMENT_ROWS: usize = 4096;

/// The axis whose columns threads split, for a scatter kernel that runs one thread per
/// output element (see the module doc): the last axis, when every store is a scatter
/// writing column `i_last` of rows as long as that axis, and the row index does not
/// read it.
pub(super) fn column_axis(lk: &LoopKernel) -> Option<usize> {
    let r = lk.domain.len();
    let last = r.checked_sub(1)?;
    if r < 2 || lk.domain[last] < 2 || lk.scatter_rows? >= ELEMENT_ROWS {
        return None;
    }
    let mut row = None;
    for st in &lk.stores {
        let Store::Scatter {
            row: e, row_len, at, ..
        } = st
        else {
            return None;
        };
        let column_only = at.offset == 0 && at.coef.iter().enumerate().all(|(a, &c)| c == i64::from(a == last));
        if !column_only || *row_len != lk.domain[last] as i64 || row.is_some_and(|x| x != *e) {
            return None;
        }
        row = Some(*e);
    }
    let depth: Vec<usize> = (0..r).map(|a| usize::from(a == last)).collect();
    (expr_levels(lk, &depth)[row?] == 0).then_some(last)
}

impl Gen<'_> {
    /// `column`: the axis of [`column_axis`], if threads split it too.
    pub(super) fn scatter_kernel(&mut self, rows: usize, column: Option<usize>) -> Result<(u32, String), String> {
        let lk = self.lk;
        let r = lk.domain.len();
        let mut row_expr = None;
        for st in &lk.stores {
            match st {
                Store::Scatter { row, .. } => {
                    if row_expr.is_some_and(|e| e != *row) {
                        return Err("scatters with different row indices in one kernel".into());
                    }
                    row_expr = Some(*row);
                }
                _ => return Err("a scatter kernel with stores other than scatters".into()),
            }
        }
        let row = row_expr.ok_or("a scatter kernel without scatters")?;
        if self.ty[row] != Ty::I32 {
            return Err("a scatter row index that is not an integer".into());
        }
        if rows > i32::MAX as usize {
            return Err(format!("{rows} rows are too many for one launch"));
        }
        if let Some(col) = column {
            return self.scatter_by_element(rows, col, row);
        }
        let what = format!(
            "scatter-add {:?} into {rows} rows: one thread per row, walking the domain in order",
            lk.domain
        );
        let (t, s, head, done) = self.grid_loop(rows as u32);
        // The row starts at the identity.
        for st in &lk.stores {
            if let Store::Scatter { buf, row_len, op, .. } = st {
                let (j, start, a, c) = (self.b.rd(), self.b.rd(), self.b.rd(), self.b.p());
                let l = self.b.label("zero");
                self.b.op(format!("cvt.u64.u32 {start}, {t};"));
                self.b.op(format!("mul.lo.s64 {start}, {start}, {row_len};"));
                self.b.op(format!("mov.u64 {j}, 0;"));
                self.b.put_label(&l);
                self.b.op(format!("add.s64 {a}, {start}, {j};"));
                self.b.op(format!("mad.lo.s64 {a}, {a}, 4, {};", self.base[*buf]));
                self.b.op(format!("st.global.f32 [{a}], {};", fconst(op.init())));
                self.b.op(format!("add.s64 {j}, {j}, 1;"));
                self.b.op(format!("setp.lt.s64 {c}, {j}, {row_len};"));
                self.b.op(format!("@{c} bra {l};"));
            }
        }
        let next_row = self.b.label("next_row");
        match self.level[row] {
            0 => self.guarded_level(0, row, &t, &next_row)?,
            _ => self.emit_level(0)?,
        }
        let axes: Vec<usize> = (0..r).collect();
        let acc = vec![None; lk.stores.len()];
        self.seq_loops(&axes, 0, &acc, Some((row, &t, &next_row)))?;
        self.b.put_label(&next_row);
        self.grid_next(&t, &s, &head, &done);
        Ok((rows.max(1) as u32, what))
    }

    /// One thread per output element `(row, j)`: it starts the element at the identity,
    /// walks every axis but the columns in order and combines its row's contributions.
    fn scatter_by_element(&mut self, rows: usize, col: usize, row: usize) -> Result<(u32, String), String> {
        let lk = self.lk;
        let cols = lk.domain[col];
        let elements = rows as u64 * cols as u64;
        if elements > i32::MAX as u64 {
            return Err(format!("{elements} output elements are too many for one launch"));
        }
        let what = format!(
            "scatter-add {:?} into {rows} rows of {cols}: one thread per output element, walking the other axes in order",
            lk.domain
        );
        let (t, s, head, done) = self.grid_loop(elements as u32);
        let (my_row, j) = (self.b.r(), self.b.r());
        self.b.op(format!("div.u32 {my_row}, {t}, {cols};"));
        self.b.op(format!("rem.u32 {j}, {t}, {cols};"));
        let i = self.b.rd();
        self.b.op(format!("cvt.u64.u32 {i}, {j};"));
        self.ax[col] = i;
        // The element starts at the identity (rows are `cols` long: element `t`).
        for st in &lk.stores {
            if let Store::Scatter { buf, op, .. } = st {
                let a = self.b.rd();
                self.b.op(format!("mul.wide.u32 {a}, {t}, 4;"));
                self.b.op(format!("add.s64 {a}, {a}, {};", self.base[*buf]));
                self.b.op(format!("st.global.f32 [{a}], {};", fconst(op.init())));
            }
        }
        let next_row = self.b.label("next_row");
        match self.level[row] {
            0 => self.guarded_level(0, row, &my_row, &next_row)?,
            _ => self.emit_level(0)?,
        }
        let axes: Vec<usize> = (0..lk.domain.len()).filter(|&a| a != col).collect();
        let acc = vec![None; lk.stores.len()];
        self.seq_loops(&axes, 0, &acc, Some((row, &my_row, &next_row)))?;
        self.b.put_label(&next_row);
        self.grid_next(&t, &s, &head, &done);
        Ok((elements.max(1) as u32, what))
    }

    /// Skips to `skip` unless the scatter row expression equals the thread's row `r`.
    pub(super) fn row_guard(&mut self, row: usize, r: &str, skip: &str) {
        let v = self.val[row].clone().expect("row computed");
        let c = self.b.p();
        self.b
            .op(format!("setp.ne.s32 {c}, {v}, {r}; // not this thread's row"));
        self.b.op(format!("@{c} bra {skip};"));
    }
}
