//! Text form of a kernel program (`mpc compile --emit kernels`).
//!
//! In: a [`Program`]. Out: its text; a batched matmul prints each view as
//! `buffer+offset(row stride, column stride)` and each batch axis as
//! `extent:a stride,b stride,out stride`. [`expr_text`] and [`affine_text`] also give the
//! PTX backend its per-expression comments, so both show an expression the same way.

use super::*;
use std::fmt::Write;

/// `c*i0 + i1 + offset`.
pub fn affine_text(a: &Affine) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (i, &c) in a.coef.iter().enumerate() {
        match c {
            0 => {}
            1 => parts.push(format!("i{i}")),
            c => parts.push(format!("{c}*i{i}")),
        }
    }
    if a.offset != 0 || parts.is_empty() {
        parts.push(a.offset.to_string());
    }
    parts.join(" + ")
}

fn buf(p: &Program, b: BufId) -> String {
    let buffer = &p.buffers[b];
    match &buffer.kind {
        BufKind::Arg(n) => format!("b{b}<{n}>"),
        BufKind::Output(n) => format!("b{b}<out {n}>"),
        BufKind::Temp => format!("b{b}<%{}>", buffer.value),
    }
}

/// One expression; `buf` names a buffer, `check` describes a bounds check's site (or "").
pub fn expr_text(e: &Expr, buf: &dyn Fn(BufId) -> String, check: &dyn Fn(u32) -> String) -> String {
    match e {
        Expr::Load { buf: b, at } => format!("load {}[{}]", buf(*b), affine_text(at)),
        Expr::LoadRow {
            buf: b,
            row,
            row_len,
            at,
        } => format!("load {}[e{row} * {row_len} + {}]", buf(*b), affine_text(at)),
        Expr::Const(bits) => format!("const {:?}", f32::from_bits(*bits)),
        Expr::Unary(op, a) => format!("{} e{a}", op.name()),
        Expr::Binary(op, a, b) => format!("{} e{a}, e{b}", op.name()),
        Expr::Fma(a, b, c) => format!("fma e{a}, e{b}, e{c}"),
        Expr::CheckIndex { index, bound, check: c } => format!("check_index e{index} < {bound}{}", check(*c)),
        Expr::OneHot { index, class } => format!("one_hot e{index} == {}", affine_text(class)),
        Expr::Philox { seed, step, stream, at } => {
            format!(
                "philox seed=e{seed} step=e{step} stream={stream} at {}",
                affine_text(at)
            )
        }
    }
}

fn expr(p: &Program, e: &Expr) -> String {
    expr_text(e, &|b| buf(p, b), &|c| {
        let c = &p.checks[c as usize];
        format!(" (%{} {})", c.node, c.op)
    })
}

pub fn print_program(p: &Program) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "kernels {} {{", p.name);
    for (b, buffer) in p.buffers.iter().enumerate() {
        if buffer.kind == BufKind::Temp {
            let _ = writeln!(s, "  {}: {}[{}]", buf(p, b), buffer.dtype, buffer.len);
        }
    }
    for (k, kernel) in p.kernels.iter().enumerate() {
        let split = if kernel.parallel {
            format!("split 0..{}", kernel.range)
        } else {
            "serial".to_string()
        };
        match &kernel.body {
            KernelBody::Loop(lk) => {
                let kind = match (lk.scatter_rows, lk.row_blocks, lk.col_chunks) {
                    (Some(_), _, Some(chunk)) => format!("scatter in column chunks of {chunk}"),
                    (Some(_), _, None) => "scatter".to_string(),
                    (None, Some(rows), _) => format!("loop in blocks of {rows} rows"),
                    (None, None, _) => "loop".to_string(),
                };
                let _ = writeln!(s, "  k{k}: {kind} {:?} {split} {{", lk.domain);
                for (i, e) in lk.exprs.iter().enumerate() {
                    let _ = writeln!(s, "    e{i} = {}", expr(p, e));
                }
                for st in &lk.stores {
                    let line = match st {
                        Store::Write { buf: b, at, value } => format!("{}[{}] = e{value}", buf(p, *b), affine_text(at)),
                        Store::Reduce { buf: b, at, value, op } => {
                            format!("{}[{}] {:?}= e{value}", buf(p, *b), affine_text(at), op).to_lowercase()
                        }
                        Store::Scatter {
                            buf: b,
                            row,
                            row_len,
                            at,
                            value,
                            op,
                        } => {
                            let op = match op {
                                ReduceOp::Sum => "+",
                                ReduceOp::Max => "max",
                            };
                            format!(
                                "{}[e{row} * {row_len} + {}] {op}= e{value}",
                                buf(p, *b),
                                affine_text(at)
                            )
                        }
                    };
                    let _ = writeln!(s, "    store {line}");
                }
                let _ = writeln!(s, "  }}");
            }
            KernelBody::MatMul(mm) => {
                let v = |x: &View2| {
                    format!(
                        "{}{}{}",
                        buf(p, x.buf),
                        if x.offset != 0 {
                            format!("+{}", x.offset)
                        } else {
                            String::new()
                        },
                        if x.transposed() { "^T" } else { "" }
                    )
                };
                if mm.batch.is_empty() && mm.out.rs == mm.n as i64 && mm.out.cs == 1 {
                    let _ = writeln!(
                        s,
                        "  k{k}: matmul {} = {} x {}  [m={} k={} n={}] {split}",
                        buf(p, mm.out.buf),
                        v(&mm.a),
                        v(&mm.b),
                        mm.m,
                        mm.k,
                        mm.n
                    );
                } else {
                    // Batched (or a strided output): every view with its (row, column)
                    // strides, every batch axis with its extent and strides.
                    let vs = |x: &View2| {
                        let off = if x.offset != 0 {
                            format!("+{}", x.offset)
                        } else {
                            String::new()
                        };
                        format!("{}{off}({}, {})", buf(p, x.buf), x.rs, x.cs)
                    };
                    let batch: Vec<String> = mm
                        .batch
                        .iter()
                        .map(|x| format!("{}:{},{},{}", x.len, x.a, x.b, x.out))
                        .collect();
                    let batch = if batch.is_empty() { "1".into() } else { batch.join(" ") };
                    let _ = writeln!(
                        s,
                        "  k{k}: matmul {} = {} x {}  [batch={} m={} k={} n={}] {split}",
                        vs(&mm.out),
                        vs(&mm.a),
                        vs(&mm.b),
                        batch,
                        mm.m,
                        mm.k,
                        mm.n
                    );
                }
            }
            KernelBody::Segment(seg) => {
                let at = |(b, o): (BufId, i64)| {
                    if o != 0 {
                        format!("{}+{o}", buf(p, b))
                    } else {
                        buf(p, b)
                    }
                };
                let zeroed = if seg.zeroed { ", zeroed, by positions" } else { "" };
                let maxima = seg
                    .maxima
                    .map(|m| format!(" (maxima {})", buf(p, m)))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  k{k}: segment {:?} {}{maxima} = {} by {}  [positions={} row={} rows={}{zeroed}] {split}",
                    seg.op,
                    buf(p, seg.out),
                    at(seg.values),
                    at(seg.index),
                    seg.positions,
                    seg.row_len,
                    seg.rows
                );
            }
            KernelBody::Attention(att) => {
                let batch: Vec<String> = att.batch.iter().map(|n| n.to_string()).collect();
                let _ = writeln!(
                    s,
                    "  k{k}: attention {} = softmax_k(s{}) v  [batch={} queries={} keys={} depth={} width={}] {split} {{",
                    buf(p, att.out.buf),
                    att.scores.len() - 1,
                    batch.join("x"),
                    att.queries,
                    att.keys,
                    att.depth,
                    att.width
                );
                for line in att.body_text(&|b| buf(p, b)) {
                    let _ = writeln!(s, "    {line}");
                }
                s.push_str("  }\n");
            }
        }
    }
    for (name, b) in &p.outputs {
        let _ = writeln!(s, "  output {name} = b{b}");
    }
    s.push_str("}\n");
    s
}
