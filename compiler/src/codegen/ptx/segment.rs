//! Segment kernels (scatter-max, its argmax, and the argmax scatter) as PTX.
//!
//! One thread per output element `(r, j)` scans every position in order, exactly like the
//! CPU library code: a strictly greater value wins (ties keep the lowest position), and
//! for the argmax scatter the last write in position order wins. No atomics besides the
//! error word; an index outside `[0, rows)` is skipped and reported.

use super::Body;
use crate::ir::DType;
use crate::schedule::{Program, Segment, SegmentOp};

/// Emits the body; returns the number of threads.
pub(super) fn emit(b: &mut Body, p: &Program, seg: &Segment, base: &[String], err: &str) -> Result<u32, String> {
    let total = seg.rows as u64 * seg.row_len as u64;
    if total > i32::MAX as u64 {
        return Err(format!(
            "segment kernel with {total} outputs is too large for one launch"
        ));
    }
    for buf in [seg.values.0, seg.index.0, seg.out] {
        if p.buffers.get(buf).is_none() {
            return Err(format!("segment kernel on b{buf}, which does not exist"));
        }
    }
    if seg.maxima.is_some() {
        // A CPU pass (`share_argmax_maxima`); the GPU runs the plain program.
        return Err("segment kernel that writes maxima too: not in PTX programs".into());
    }
    let want_out = if seg.op == SegmentOp::Argmax {
        DType::I32
    } else {
        DType::F32
    };
    if p.buffers[seg.out].dtype != want_out || p.buffers[seg.index.0].dtype != DType::I32 {
        return Err("segment kernel with operands of unexpected types".into());
    }
    let d = seg.row_len as u64;
    let (t, s, x) = (b.r(), b.r(), b.r());
    b.op(format!("mov.u32 {t}, %tid.x;"));
    b.op(format!("mov.u32 {x}, %ctaid.x;"));
    b.op(format!("mov.u32 {s}, %ntid.x;"));
    b.op(format!("mad.lo.u32 {t}, {x}, {s}, {t};"));
    b.op(format!("mov.u32 {x}, %nctaid.x;"));
    b.op(format!("mul.lo.u32 {s}, {s}, {x};"));
    let (head, done) = (b.label("grid"), b.label("done"));
    b.put_label(&head);
    let c = b.p();
    b.op(format!("setp.ge.u32 {c}, {t}, {total};"));
    b.op(format!("@{c} bra {done};"));
    // r = t / d, j = t % d.
    let (r, j) = (b.r(), b.r());
    b.op(format!("div.u32 {r}, {t}, {d};"));
    b.op(format!("rem.u32 {j}, {t}, {d};"));
    let j64 = b.rd();
    b.op(format!("cvt.u64.u32 {j64}, {j};"));
    let (best, arg) = (b.f(), b.r());
    match seg.op {
        SegmentOp::Max | SegmentOp::Argmax => {
            b.op(format!("mov.f32 {best}, 0fFF800000; // -inf"));
            b.op(format!("mov.u32 {arg}, -1;"));
        }
        SegmentOp::ArgmaxScatter => b.op(format!("mov.f32 {best}, 0f00000000;")),
    }
    if seg.positions > 0 {
        let (pos, pl, next) = (b.rd(), b.label("position"), b.label("position_next"));
        b.op(format!("mov.u64 {pos}, 0;"));
        b.put_label(&pl);
        // The index this position (or element) goes to.
        let (ii, ia, i) = (b.rd(), b.rd(), b.r());
        match seg.op {
            SegmentOp::ArgmaxScatter => b.op(format!("mad.lo.s64 {ii}, {pos}, {d}, {j64};")),
            _ => b.op(format!("mov.u64 {ii}, {pos};")),
        }
        b.op(format!("add.s64 {ii}, {ii}, {};", seg.index.1));
        b.op(format!("mad.lo.s64 {ia}, {ii}, 4, {};", base[seg.index.0]));
        b.op(format!("ld.global.u32 {i}, [{ia}];"));
        if seg.op == SegmentOp::ArgmaxScatter {
            let neg = b.p();
            b.op(format!("setp.lt.s32 {neg}, {i}, 0; // no argmax: skipped"));
            b.op(format!("@{neg} bra {next};"));
        }
        let (bad, ok, old) = (b.p(), b.p(), b.r());
        let inb = b.label("in_bounds");
        b.op(format!("setp.ge.u32 {bad}, {i}, {};", seg.rows));
        b.op(format!("@!{bad} bra {inb};"));
        b.op(format!(
            "atom.global.cas.b32 {old}, [{err}], 0, {};",
            seg.check as u64 + 1
        ));
        b.op(format!("setp.eq.u32 {ok}, {old}, 0;"));
        b.op(format!("@{ok} st.global.u32 [{err}+4], {i};"));
        b.op(format!("bra.uni {next};"));
        b.put_label(&inb);
        let mine = b.p();
        b.op(format!("setp.ne.u32 {mine}, {i}, {r}; // not this thread's row"));
        b.op(format!("@{mine} bra {next};"));
        let (vi, va, v) = (b.rd(), b.rd(), b.f());
        b.op(format!("mad.lo.s64 {vi}, {pos}, {d}, {j64};"));
        b.op(format!("add.s64 {vi}, {vi}, {};", seg.values.1));
        b.op(format!("mad.lo.s64 {va}, {vi}, 4, {};", base[seg.values.0]));
        b.op(format!("ld.global.f32 {v}, [{va}];"));
        match seg.op {
            SegmentOp::ArgmaxScatter => b.op(format!("mov.f32 {best}, {v};")),
            _ => {
                let (first, gt, pos32) = (b.p(), b.p(), b.r());
                b.op(format!("setp.lt.s32 {first}, {arg}, 0;"));
                b.op(format!("setp.gt.f32 {gt}, {v}, {best};"));
                b.op(format!("or.pred {first}, {first}, {gt};"));
                b.op(format!("cvt.u32.u64 {pos32}, {pos};"));
                b.op(format!("@{first} mov.f32 {best}, {v};"));
                b.op(format!("@{first} mov.u32 {arg}, {pos32};"));
            }
        }
        b.put_label(&next);
        let c = b.p();
        b.op(format!("add.s64 {pos}, {pos}, 1;"));
        b.op(format!("setp.lt.s64 {c}, {pos}, {};", seg.positions));
        b.op(format!("@{c} bra {pl};"));
    }
    let (oi, oa) = (b.rd(), b.rd());
    b.op(format!("cvt.u64.u32 {oi}, {t};"));
    b.op(format!("mad.lo.s64 {oa}, {oi}, 4, {};", base[seg.out]));
    match seg.op {
        SegmentOp::Argmax => b.op(format!("st.global.u32 [{oa}], {arg};")),
        _ => b.op(format!("st.global.f32 [{oa}], {best};")),
    }
    b.op(format!("add.u32 {t}, {t}, {s};"));
    b.op(format!("bra.uni {head};"));
    b.put_label(&done);
    b.op("ret;".into());
    Ok(total.max(1) as u32)
}
