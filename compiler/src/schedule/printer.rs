//! Text form of a kernel program (`mpc compile --emit kernels`).

use super::*;
use std::fmt::Write;

fn affine(a: &Affine) -> String {
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

fn expr(p: &Program, e: &Expr) -> String {
    match e {
        Expr::Load { buf: b, at } => format!("load {}[{}]", buf(p, *b), affine(at)),
        Expr::LoadRow {
            buf: b,
            row,
            row_len,
            at,
        } => {
            format!("load {}[e{row} * {row_len} + {}]", buf(p, *b), affine(at))
        }
        Expr::Const(bits) => format!("const {:?}", f32::from_bits(*bits)),
        Expr::Unary(op, a) => format!("{} e{a}", format!("{op:?}").to_lowercase()),
        Expr::Binary(op, a, b) => format!("{} e{a}, e{b}", format!("{op:?}").to_lowercase()),
        Expr::Fma(a, b, c) => format!("fma e{a}, e{b}, e{c}"),
        Expr::Convert(a) => format!("convert e{a}"),
        Expr::CheckIndex { index, bound, check } => {
            let c = &p.checks[*check as usize];
            format!("check_index e{index} < {bound} (%{} {})", c.node, c.op)
        }
        Expr::OneHot { index, class } => format!("one_hot e{index} == {}", affine(class)),
        Expr::Philox { seed, step, stream, at } => {
            format!("philox seed=e{seed} step=e{step} stream={stream} at {}", affine(at))
        }
    }
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
                let kind = if lk.scatter_rows.is_some() { "scatter" } else { "loop" };
                let _ = writeln!(s, "  k{k}: {kind} {:?} {split} {{", lk.domain);
                for (i, e) in lk.exprs.iter().enumerate() {
                    let _ = writeln!(s, "    e{i} = {}", expr(p, e));
                }
                for st in &lk.stores {
                    let line = match st {
                        Store::Write { buf: b, at, value } => format!("{}[{}] = e{value}", buf(p, *b), affine(at)),
                        Store::Reduce { buf: b, at, value, op } => {
                            format!("{}[{}] {:?}= e{value}", buf(p, *b), affine(at), op).to_lowercase()
                        }
                        Store::ScatterAdd {
                            buf: b,
                            row,
                            row_len,
                            at,
                            value,
                        } => format!("{}[e{row} * {row_len} + {}] += e{value}", buf(p, *b), affine(at)),
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
                let _ = writeln!(
                    s,
                    "  k{k}: matmul {} = {} x {}  [m={} k={} n={}] {split}",
                    buf(p, mm.out),
                    v(&mm.a),
                    v(&mm.b),
                    mm.m,
                    mm.k,
                    mm.n
                );
            }
            KernelBody::Segment(seg) => {
                let at = |(b, o): (BufId, i64)| {
                    if o != 0 {
                        format!("{}+{o}", buf(p, b))
                    } else {
                        buf(p, b)
                    }
                };
                let _ = writeln!(
                    s,
                    "  k{k}: segment {:?} {} = {} by {}  [positions={} row={} rows={}] {split}",
                    seg.op,
                    buf(p, seg.out),
                    at(seg.values),
                    at(seg.index),
                    seg.positions,
                    seg.row_len,
                    seg.rows
                );
            }
        }
    }
    for (name, b) in &p.outputs {
        let _ = writeln!(s, "  output {name} = b{b}");
    }
    s.push_str("}\n");
    s
}
