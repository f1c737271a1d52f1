//! Scatter kernels (scatter-add, scatter-max) as PTX: one thread per output row.
//!
//! In: a loop kernel whose stores are all scatters with one row expression. Out: the
//! entry body: each thread starts its row at the scatter's identity (zero, `-inf`),
//! walks the whole domain in row-major order and combines the contributions whose row
//! index is its own (the CPU's per-thread guard with one row per thread), so sums are in
//! the interpreter's order without atomics.

use super::{fconst, Gen, Ty};
use crate::schedule::Store;

impl Gen<'_> {
    pub(super) fn scatter_kernel(&mut self, rows: usize) -> Result<(u32, String), String> {
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
        self.emit_level(0)?;
        let next_row = self.b.label("next_row");
        if self.level[row] == 0 {
            self.row_guard(row, &t, &next_row);
        }
        let axes: Vec<usize> = (0..r).collect();
        let acc = vec![None; lk.stores.len()];
        self.seq_loops(&axes, 0, &acc, Some((row, &t, &next_row)))?;
        self.b.put_label(&next_row);
        self.grid_next(&t, &s, &head, &done);
        Ok((rows.max(1) as u32, what))
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
