//! The message-passing rule on the pattern it exists for: `f(t, v) + f(t, a)` with
//! `f(x, y) = tanh(concat(x, y) W)` and one shared `W`. After optimization `t W[:d]` is
//! computed once for both messages, so the graph (forward and backward) does fewer
//! matmul FLOPs, and its loss and gradients are unchanged.

use mpc_compiler::internals::autodiff::with_gradients;
use mpc_compiler::internals::opt::{cost::matmul_flops, format_stats, optimize, Limits};
use mpc_compiler::interp::{run, Args, Value};
use mpc_compiler::ir::{ArgKind, Builder, Type, ValueId};
use mpc_compiler::seeded::SplitMix64;

const B: usize = 32;
const D: usize = 48;
const H: usize = 64;

#[test]
fn shared_message_product_is_computed_once() {
    let mut b = Builder::new("messages");
    let t = b.arg(ArgKind::Param, "t", Type::f32([B, D]));
    let v = b.arg(ArgKind::Param, "v", Type::f32([B, D]));
    let a = b.arg(ArgKind::Param, "a", Type::f32([B, D]));
    let w = b.arg(ArgKind::Param, "W", Type::f32([2 * D, H]));
    let r = b.arg(ArgKind::Input, "r", Type::f32([B, H]));
    let f = |b: &mut Builder, x: ValueId, y: ValueId| {
        let xy = b.concat(&[x, y], 1);
        let p = b.matmul(xy, w);
        b.tanh(p)
    };
    let m1 = f(&mut b, t, v);
    let m2 = f(&mut b, t, a);
    let h = b.add(m1, m2);
    b.output("h", h);
    let weighted = b.mul(h, r);
    let loss = b.reduce_sum(weighted, &[0, 1]);
    b.output("loss", loss);
    let graph = with_gradients(&b.finish());

    let (optimized, stats) = optimize(&graph, &Limits::deterministic()).unwrap();
    eprintln!("{}", format_stats(&stats, false));
    let fired = |name: &str| stats.rule_fires.iter().any(|(r, n)| *r == name && *n > 0);
    assert!(fired("concat-matmul-split"), "the split rule did not fire");
    let (before, after) = (matmul_flops(&graph), matmul_flops(&optimized));
    assert!(after < before, "matmul FLOPs {before} -> {after}: no saving");
    // The forward pass alone goes from 2 products of [B, 2D] x [2D, H] to 3 of [B, D] x [D, H].
    assert!(
        before - after >= (2 * B * D * H) as f64,
        "saved only {} FLOPs",
        before - after
    );

    let mut rng = SplitMix64::new(4);
    let mut args: Args<f64> = Args::new();
    for (name, n) in [("t", B * D), ("v", B * D), ("a", B * D), ("W", 2 * D * H), ("r", B * H)] {
        args.insert(
            name.into(),
            Value::Float((0..n).map(|_| rng.range(-1.0, 1.0)).collect()),
        );
    }
    let want = run(&graph, &args).unwrap();
    let got = run(&optimized, &args).unwrap();
    assert_eq!(want.len(), got.len());
    for ((name, w), (name2, g)) in want.iter().zip(&got) {
        assert_eq!(name, name2);
        for (x, y) in w.floats().iter().zip(g.floats()) {
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{name}: {x} vs {y}");
        }
    }
}

/// A GNN layer's message `linear(src)` runs on every edge; the optimizer moves the
/// product to the nodes (`gather(x) W = gather(x W)`, and the same for the backward
/// pass's `scatter_add` and weight gradient), so with 5 edges per node it does far
/// fewer matmul FLOPs, with the same loss and gradients.
#[test]
fn graph_messages_are_computed_per_node_not_per_edge() {
    let src = "
        model Gnn {
          dims { N = 200, E = 1000 }
          graph g { nodes N, edges i32[2, E] }
          input x: f32[N, 16]
          label y: i32[N] classes 4
          message m(src, dst) = linear(src, 32)
          message out(src, dst) = linear(src, 4)
          let h = relu(propagate(g, x, m, aggregate: mean) + linear(x, 32))
          loss cross_entropy(propagate(g, h, out, aggregate: sum) + linear(h, 4), y)
        }";
    let c = mpc_compiler::pipeline::compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let graph = with_gradients(&c.forward);
    let (optimized, stats) = optimize(&graph, &Limits::deterministic()).unwrap();
    eprintln!("{}", format_stats(&stats, false));
    let fired = |name: &str| stats.rule_fires.iter().any(|(r, n)| *r == name && *n > 0);
    assert!(fired("matmul-of-gather") && fired("scatter-of-matmul"), "{stats:?}");
    let (before, after) = (matmul_flops(&graph), matmul_flops(&optimized));
    assert!(after * 2.0 < before, "matmul FLOPs {before} -> {after}");

    let mut rng = SplitMix64::new(8);
    let mut args: Args<f64> = Args::new();
    for (_, name, ty) in graph.args(ArgKind::Param).chain(graph.args(ArgKind::Input)) {
        let v = match (name, ty.dtype) {
            ("g.edges", _) => Value::Int((0..ty.numel()).map(|_| rng.below(200) as i32).collect()),
            (_, mpc_compiler::ir::DType::I32) => Value::Int((0..ty.numel()).map(|_| rng.below(4) as i32).collect()),
            _ => Value::Float((0..ty.numel()).map(|_| rng.range(-1.0, 1.0)).collect()),
        };
        args.insert(name.to_string(), v);
    }
    let (want, got) = (run(&graph, &args).unwrap(), run(&optimized, &args).unwrap());
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        for (x, y) in w.floats().iter().zip(g.floats()) {
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{name}: {x} vs {y}");
        }
    }
}
