//! `out[m, n] = a[m, k] · b[k, n]` as a 16x16-tiled kernel, once per batch index.
//!
//! A block of 16x16 threads computes a 16x16 tile of `out`, one element per thread.
//! For each 16-wide slice of k, the block stages a tile of `a` and a tile of `b` in shared
//! memory (zero outside the matrices), then each thread runs 16 `fma`s in k order. The
//! sum order is fixed (k ascending), so results do not depend on the launch. The strided
//! views of the kernel IR (a transpose is a swapped stride) are constants in the code.
//! A batched matmul runs its batches over grid z: block z does batches z, z + nctaid.z,
//! ... (at most 65,535 blocks in z), moving each operand's base by the batch axes'
//! strides; each output element still has one thread and one k-ordered sum.

use super::Body;
use crate::schedule::{MatMul, Program, MAX_BATCH_AXES};

pub const TILE: u32 = 16;

/// Emits the body; declares its shared tiles in `shared`; returns the grid (x over m
/// tiles, y over n tiles, z over batches: rows are the axis that grows with the data,
/// e.g. a graph's edges, and a grid's x may hold 2^31 - 1 blocks where y holds 65535).
pub(super) fn emit(
    b: &mut Body,
    p: &Program,
    mm: &MatMul,
    base: &[String],
    shared: &mut Vec<String>,
) -> Result<(u32, u32, u32), String> {
    let t = TILE as usize;
    let gx = mm.m.div_ceil(t).max(1);
    let gy = mm.n.div_ceil(t).max(1);
    if gx > i32::MAX as usize || gy > 65535 {
        return Err(format!("matmul [m={} n={}] is too large for one launch", mm.m, mm.n));
    }
    if mm.batch.len() > MAX_BATCH_AXES || mm.batches() > u32::MAX as usize {
        return Err(format!("matmul with batch axes {:?} cannot be launched", mm.batch));
    }
    for buf in [mm.a.buf, mm.b.buf, mm.out.buf] {
        if p.buffers.get(buf).is_none() {
            return Err(format!("matmul on b{buf}, which does not exist"));
        }
    }
    shared.push(format!(".shared .align 4 .f32 tile_a[{}];", t * t));
    shared.push(format!(".shared .align 4 .f32 tile_b[{}];", t * t));
    // Each operand's base pointer for the current batch (the buffer's own without one).
    let (ba, bb, bc) = if mm.batch.is_empty() {
        (base[mm.a.buf].clone(), base[mm.b.buf].clone(), base[mm.out.buf].clone())
    } else {
        (b.rd(), b.rd(), b.rd())
    };
    let batches = mm.batches();
    // (flat batch register, loop head, exit) of a batched matmul.
    let batch_loop = (!mm.batch.is_empty()).then(|| (b.r(), b.label("batch"), b.label("batch_done")));
    if let Some((bz, batch_head, batch_done)) = &batch_loop {
        b.comment(&format!("batches z, z + nctaid.z, .. < {batches}"));
        b.op(format!("mov.u32 {bz}, %ctaid.z;"));
        b.put_label(batch_head);
        let c = b.p();
        b.op(format!("setp.ge.u32 {c}, {bz}, {batches};"));
        b.op(format!("@{c} bra {batch_done};"));
        // Batch coordinates, outermost first, from the flat index (row-major).
        let (rest, coord) = (b.r(), b.r());
        b.op(format!("mov.u32 {rest}, {bz};"));
        let offs = [(&ba, mm.a.buf), (&bb, mm.b.buf), (&bc, mm.out.buf)];
        for (reg, buf) in offs {
            b.op(format!("mov.u64 {reg}, {};", base[buf]));
        }
        for x in mm.batch.iter().rev() {
            let c64 = b.rd();
            b.op(format!("rem.u32 {coord}, {rest}, {};", x.len));
            b.op(format!("div.u32 {rest}, {rest}, {};", x.len));
            b.op(format!("cvt.u64.u32 {c64}, {coord};"));
            for (reg, stride) in [(&ba, x.a), (&bb, x.b), (&bc, x.out)] {
                b.op(format!("mad.lo.s64 {reg}, {c64}, {}, {reg};", stride * 4));
            }
        }
    }
    let (tx, ty, row, col) = (b.r(), b.r(), b.r(), b.r());
    b.comment(&format!(
        "row = ctaid.x*16 + tid.y < {}, col = ctaid.y*16 + tid.x < {}",
        mm.m, mm.n
    ));
    b.op(format!("mov.u32 {tx}, %tid.x;"));
    b.op(format!("mov.u32 {ty}, %tid.y;"));
    b.op(format!("mov.u32 {row}, %ctaid.x;"));
    b.op(format!("mad.lo.u32 {row}, {row}, {TILE}, {ty};"));
    b.op(format!("mov.u32 {col}, %ctaid.y;"));
    b.op(format!("mad.lo.u32 {col}, {col}, {TILE}, {tx};"));
    let (row64, col64) = (b.rd(), b.rd());
    b.op(format!("cvt.u64.u32 {row64}, {row};"));
    b.op(format!("cvt.u64.u32 {col64}, {col};"));
    // Shared addresses of this thread's slots: tile[ty*16 + tx], and the rows/columns
    // it reads: tile_a[ty*16 + kk], tile_b[kk*16 + tx].
    let (sa, sb, slot, ra, cb) = (b.r(), b.r(), b.r(), b.r(), b.r());
    b.op(format!("mov.u32 {sa}, tile_a;"));
    b.op(format!("mov.u32 {sb}, tile_b;"));
    b.op(format!("mad.lo.u32 {slot}, {ty}, {TILE}, {tx};"));
    b.op(format!("shl.b32 {slot}, {slot}, 2;"));
    b.op(format!("mul.lo.u32 {ra}, {ty}, {};", TILE * 4));
    b.op(format!("add.u32 {ra}, {ra}, {sa};"));
    b.op(format!("shl.b32 {cb}, {tx}, 2;"));
    b.op(format!("add.u32 {cb}, {cb}, {sb};"));
    let (in_m, in_n) = (b.p(), b.p());
    b.op(format!("setp.lt.u32 {in_m}, {row}, {};", mm.m));
    b.op(format!("setp.lt.u32 {in_n}, {col}, {};", mm.n));
    let acc = b.f();
    b.op(format!("mov.f32 {acc}, 0f00000000;"));
    let tiles = mm.k.div_ceil(t);
    if tiles > 0 {
        let (kt, head) = (b.r(), b.label("k_tile"));
        b.op(format!("mov.u32 {kt}, 0;"));
        b.put_label(&head);
        // a[row, kt*16 + tx] and b[kt*16 + ty, col], zero outside.
        let (ka, kb) = (b.r(), b.r());
        b.op(format!("mad.lo.u32 {ka}, {kt}, {TILE}, {tx};"));
        b.op(format!("mad.lo.u32 {kb}, {kt}, {TILE}, {ty};"));
        for (is_a, view, vbase, i64reg, kreg, inside, tile) in [
            (true, &mm.a, &ba, &row64, &ka, &in_m, &sa),
            (false, &mm.b, &bb, &col64, &kb, &in_n, &sb),
        ] {
            let (ok, k64, idx, v, dst) = (b.p(), b.rd(), b.rd(), b.f(), b.r());
            b.op(format!("setp.lt.u32 {ok}, {kreg}, {};", mm.k));
            b.op(format!("and.pred {ok}, {ok}, {inside};"));
            b.op(format!("cvt.u64.u32 {k64}, {kreg};"));
            b.op(format!("mov.s64 {idx}, {};", view.offset));
            // a: (i = row, j = k); b: (i = k, j = col).
            let (ri, ci) = if is_a { (i64reg, &k64) } else { (&k64, i64reg) };
            b.op(format!("mad.lo.s64 {idx}, {ri}, {}, {idx};", view.rs));
            b.op(format!("mad.lo.s64 {idx}, {ci}, {}, {idx};", view.cs));
            b.op(format!("mad.lo.s64 {idx}, {idx}, 4, {vbase};"));
            b.op(format!("mov.f32 {v}, 0f00000000;"));
            b.op(format!("@{ok} ld.global.f32 {v}, [{idx}];"));
            b.op(format!("add.u32 {dst}, {tile}, {slot};"));
            b.op(format!("st.shared.f32 [{dst}], {v};"));
        }
        b.op("bar.sync 0;".into());
        for kk in 0..TILE {
            let (x, y) = (b.f(), b.f());
            b.op(format!("ld.shared.f32 {x}, [{ra}+{}];", kk * 4));
            b.op(format!("ld.shared.f32 {y}, [{cb}+{}];", kk * TILE * 4));
            b.op(format!("fma.rn.f32 {acc}, {x}, {y}, {acc};"));
        }
        b.op("bar.sync 0;".into());
        let c = b.p();
        b.op(format!("add.u32 {kt}, {kt}, 1;"));
        b.op(format!("setp.lt.u32 {c}, {kt}, {tiles};"));
        b.op(format!("@{c} bra {head};"));
    }
    let (ok, idx) = (b.p(), b.rd());
    b.op(format!("and.pred {ok}, {in_m}, {in_n};"));
    if mm.out.rs == mm.n as i64 && mm.out.cs == 1 && mm.out.offset == 0 {
        b.op(format!("mad.lo.s64 {idx}, {row64}, {}, {col64};", mm.n));
    } else {
        b.op(format!("mov.s64 {idx}, {};", mm.out.offset));
        b.op(format!("mad.lo.s64 {idx}, {row64}, {}, {idx};", mm.out.rs));
        b.op(format!("mad.lo.s64 {idx}, {col64}, {}, {idx};", mm.out.cs));
    }
    b.op(format!("mad.lo.s64 {idx}, {idx}, 4, {bc};"));
    b.op(format!("@{ok} st.global.f32 [{idx}], {acc};"));
    if let Some((bz, batch_head, batch_done)) = &batch_loop {
        let nz = b.r();
        b.op(format!("mov.u32 {nz}, %nctaid.z;"));
        b.op(format!("add.u32 {bz}, {bz}, {nz};"));
        b.op(format!("bra {batch_head};"));
        b.put_label(batch_done);
    }
    b.op("ret;".into());
    Ok((gx as u32, gy as u32, batches.clamp(1, 65535) as u32))
}
