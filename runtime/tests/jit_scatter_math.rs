//! Long math (`exp`, `tanh`, ...) of the messages that a scatter aggregates, where the
//! scatter's threads own output rows: it stays in the scatter's loop
//! (`schedule::long_math::math_in_owned_blocks`), and on an AVX-512 host runs in chunks
//! of each block of owned positions, sixteen lanes at a time
//! (`codegen/cranelift/block_math.rs`). Widths in straight-line bodies (4, 32) and in
//! a loop (36), one function and two, a function of a function; chunks that end inside
//! a block of positions; the model functions' bits, the interpreter's values, the same
//! bits on 1, 2 and 3 threads, and an edge id out of range an error naming it.

mod common;

use common::jit::{assert_matches_interp, random_args, run_jit};
use mpc_compiler::internals::codegen::cranelift::host_has_fma;
use mpc_compiler::internals::codegen::ptx::math::{exp_model, log_model, tanh_model};
use mpc_compiler::interp::{Args, Value};
use mpc_compiler::ir::{ArgKind, Builder, Graph, Type, Unary, ValueId};
use mpc_compiler::schedule::{Expr, KernelBody, Store};

fn f(b: &mut Builder, name: &str, shape: &[usize]) -> ValueId {
    b.arg(ArgKind::Input, name, Type::f32(shape))
}

/// `src`, `dst`: the two ends of `e` edges.
fn ends(b: &mut Builder, e: usize) -> (ValueId, ValueId) {
    let src = b.arg(ArgKind::Input, "src", Type::i32([e]));
    let dst = b.arg(ArgKind::Input, "dst", Type::i32([e]));
    (src, dst)
}

/// Asserts that `g`'s CPU schedule keeps `op` inside a scatter split between threads
/// (and so has no map kernel of its own for it).
fn assert_math_stays_in_the_scatter(g: &Graph, op: Unary, what: &str) {
    let program = mpc_compiler::pipeline::schedule_cpu(g);
    let stays = program.kernels.iter().any(|k| {
        matches!(&k.body, KernelBody::Loop(lk) if k.parallel
            && lk.stores.iter().any(|s| matches!(s, Store::Scatter { .. }))
            && lk.exprs.iter().any(|x| matches!(x, Expr::Unary(o, _) if *o == op)))
    });
    let listing = mpc_compiler::schedule::print_program(&program);
    assert!(stays, "{what}: {op:?} is not in a split scatter:\n{listing}");
}

/// An edge id past the nodes fails the run with an error that names it.
fn rejects_an_edge_outside(g: &Graph, args: &mut Args<f32>, nodes: usize) {
    if let Some(Value::Int(v)) = args.get_mut("dst") {
        let last = v.len() - 1;
        v[last] = nodes as i32 + 3;
    }
    let err = run_jit(g, args, 2).unwrap_err();
    let want = format!("index {} is outside [0, {nodes})", nodes + 3);
    assert!(err.contains(&want), "{err}");
}

/// The arguments' floats and ints by name.
fn floats(args: &Args<f32>, name: &str) -> Vec<f32> {
    args[name].floats().to_vec()
}
fn ints(args: &Args<f32>, name: &str) -> Vec<usize> {
    match &args[name] {
        Value::Int(v) => v.iter().map(|&x| x as usize).collect(),
        Value::Float(_) => unreachable!("{name} is an int argument"),
    }
}

/// `got` has `want`'s bits (within 1e-6 where the host has no fma, whose inline math
/// rounds differently).
fn assert_bits(want: &[f32], got: &[f32], what: &str) {
    for (k, (w, v)) in want.iter().zip(got).enumerate() {
        let close = (w - v).abs() <= 1e-6 * w.abs().max(1.0);
        assert!(
            w.to_bits() == v.to_bits() || (!host_has_fma() && close),
            "{what}: [{k}] {w} vs {v}"
        );
    }
}

/// `max over edges into d of tanh(a[src] + b[dst])`: the model's `tanh` of the same
/// sums, the running maximum's rule (a value replaces it only when greater).
#[test]
fn max_of_tanh_messages_has_the_models_bits() {
    for (nodes, edges, width) in [(300, 5000, 32), (50, 3000, 36), (700, 2100, 4)] {
        let mut b = Builder::new("max of tanh messages");
        let a = f(&mut b, "a", &[nodes, width]);
        let bt = f(&mut b, "b", &[nodes, width]);
        let (src, dst) = ends(&mut b, edges);
        let from = b.gather(a, src);
        let to = b.gather(bt, dst);
        let sum = b.add(from, to);
        let msg = b.tanh(sum);
        let agg = b.scatter_max(msg, dst, nodes);
        b.output("agg", agg);
        let g = b.finish();
        let what = format!("{nodes} nodes, {edges} edges, width {width}");
        assert_math_stays_in_the_scatter(&g, Unary::Tanh, &what);
        let mut args = random_args(&g, |_| nodes as u64, 7);
        let (av, bv) = (floats(&args, "a"), floats(&args, "b"));
        let mut want = vec![f32::NEG_INFINITY; nodes * width];
        for (s, d) in ints(&args, "src").into_iter().zip(ints(&args, "dst")) {
            for c in 0..width {
                let m = tanh_model(av[s * width + c] + bv[d * width + c]);
                if m > want[d * width + c] {
                    want[d * width + c] = m;
                }
            }
        }
        let one = run_jit(&g, &args, 1).unwrap();
        for threads in [2, 3] {
            assert_eq!(
                one,
                run_jit(&g, &args, threads).unwrap(),
                "{what}: 1 and {threads} threads"
            );
        }
        assert_bits(&want, &one[0].1, &what);
        rejects_an_edge_outside(&g, &mut args, nodes);
    }
}

/// A sum of messages with two functions, `tanh(a[src] + b[dst]) * exp(c[src])`, and
/// one of a function of a function, `log(exp(a[src] - b[dst]) + 1)` (the `exp` in the
/// blocks, the `log` inline): the models' bits summed in edge order, the interpreter's
/// values, the same bits on any threads.
#[test]
fn sums_of_messages_with_several_functions_have_the_models_bits() {
    for (nodes, edges, width) in [(700, 4000, 36), (2500, 6000, 8)] {
        let mut b = Builder::new("messages of two functions");
        let a = f(&mut b, "a", &[nodes, width]);
        let bt = f(&mut b, "b", &[nodes, width]);
        let c = f(&mut b, "c", &[nodes, width]);
        let (src, dst) = ends(&mut b, edges);
        let from = b.gather(a, src);
        let to = b.gather(bt, dst);
        let scale = b.gather(c, src);
        let sum = b.add(from, to);
        let t = b.tanh(sum);
        let e = b.exp(scale);
        let msg = b.mul(t, e);
        let agg = b.scatter_add(msg, dst, nodes);
        let diff = b.sub(from, to);
        let ex = b.exp(diff);
        let one = b.constant(1.0, &[edges, width]);
        let plus = b.add(ex, one);
        let soft = b.unary(Unary::Log, plus);
        let soft = b.scatter_add(soft, dst, nodes);
        b.output("agg", agg);
        b.output("soft", soft);
        let g = b.finish();
        let what = format!("{nodes} nodes, {edges} edges, width {width}");
        assert_math_stays_in_the_scatter(&g, Unary::Exp, &what);
        let mut args = random_args(&g, |_| nodes as u64, 11);
        let (av, bv, cv) = (floats(&args, "a"), floats(&args, "b"), floats(&args, "c"));
        let (mut agg, mut soft) = (vec![0f32; nodes * width], vec![0f32; nodes * width]);
        for (s, d) in ints(&args, "src").into_iter().zip(ints(&args, "dst")) {
            for k in 0..width {
                let (x, y, z) = (av[s * width + k], bv[d * width + k], cv[s * width + k]);
                agg[d * width + k] += tanh_model(x + y) * exp_model(z);
                soft[d * width + k] += log_model(exp_model(x - y) + 1.0);
            }
        }
        let got = run_jit(&g, &args, 1).unwrap();
        assert_eq!(got, run_jit(&g, &args, 3).unwrap(), "{what}: 1 and 3 threads");
        assert_bits(&agg, &got[0].1, &format!("{what}: agg"));
        assert_bits(&soft, &got[1].1, &format!("{what}: soft"));
        assert_matches_interp(&g, &args, 1e-4, &what);
        rejects_an_edge_outside(&g, &mut args, nodes);
    }
}
