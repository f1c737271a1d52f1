//! The optimizer on every example model: the IR <-> e-graph round trip keeps the graph's
//! meaning, and the optimized training step (and gradient graph) computes the same loss,
//! gradients, updated parameters and optimizer state as the unoptimized one, at no
//! higher cost.

mod common;

use common::{example_files, small_dims};
use mpc_compiler::internals::autodiff::with_gradients;
use mpc_compiler::internals::opt::convert::{from_choice, to_egraph};
use mpc_compiler::internals::opt::cost::graph_cost;
use mpc_compiler::internals::opt::extract::extract;
use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::interp::{run, Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph, Op};
use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::POSITIONS;

/// Every example, with dims small enough for the f64 interpreter.
fn examples() -> Vec<(String, Graph, Graph)> {
    example_files()
        .into_iter()
        .map(|path| {
            let src = std::fs::read_to_string(&path).unwrap();
            let small = small_dims(&src, &format!("{path:?}"));
            let c = compile(&src, &small).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            (name, with_gradients(&c.forward), c.train_step.graph)
        })
        .collect()
}

/// Random arguments: f32 values in [-1, 1) ([0, 1) for optimizer state), i32 indices below each input's bound (found
/// from the gather / one-hot that reads it), `@seed`/`@step` fixed.
fn random_args(g: &Graph, seed: u64) -> Args<f64> {
    let mut rng = SplitMix64::new(seed);
    let bound = |arg: usize| -> u64 {
        g.nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Gather if n.operands[1].index() == arg => Some(g.ty(n.operands[0]).shape[0] as u64),
                Op::OneHot { classes } if n.operands[0].index() == arg => Some(*classes as u64),
                _ => None,
            })
            .min()
            .unwrap_or(3)
    };
    let mut args = Args::new();
    for (i, node) in g.nodes.iter().enumerate() {
        let Op::Arg { kind, name, ty } = &node.op else { continue };
        // Optimizer state is non-negative (Adam's second moment is under a square root).
        let low = if *kind == ArgKind::State { 0.0 } else { -1.0 };
        let v = match ty.dtype {
            // Positions (a causal mask's, a graph's self-loops) are 0..n-1, as the runtime fills them.
            DType::I32 if name == POSITIONS => Value::Int((0..ty.numel() as i32).collect()),
            DType::I32 if name.starts_with('@') => Value::Int(vec![2]),
            DType::I32 => Value::Int((0..ty.numel()).map(|_| rng.below(bound(i)) as i32).collect()),
            DType::F32 => Value::Float((0..ty.numel()).map(|_| rng.range(low, 1.0)).collect()),
        };
        args.insert(name.clone(), v);
    }
    args
}

fn assert_same_outputs(what: &str, a: &Graph, b: &Graph, tolerance: f64) {
    let args = random_args(a, 1);
    let (x, y) = (run(a, &args).unwrap(), run(b, &args).unwrap());
    assert_eq!(x.len(), y.len(), "{what}: output count");
    for ((name, u), (name2, v)) in x.iter().zip(&y) {
        assert_eq!(name, name2, "{what}: output order");
        for (p, q) in u.floats().iter().zip(v.floats()) {
            assert!(
                (p - q).abs() <= tolerance * p.abs().max(1.0),
                "{what}: output {name}: {p} vs {q}"
            );
        }
    }
}

#[test]
fn round_trip_through_the_egraph_keeps_meaning() {
    for (name, grads, step) in examples() {
        for (what, g) in [("gradients", &grads), ("train step", &step)] {
            let (eg, ids) = to_egraph(g);
            let roots: Vec<_> = g.outputs.iter().map(|(_, v)| eg.find(ids[v.index()])).collect();
            let back = from_choice(&eg, &extract(&eg, &roots), g, &roots);
            back.validate().unwrap();
            assert_same_outputs(&format!("{name} {what} round trip"), g, &back, 0.0);
        }
    }
}

#[test]
fn optimized_steps_compute_the_same_numbers_at_no_higher_cost() {
    for (name, grads, step) in examples() {
        for (what, g) in [("gradients", &grads), ("train step", &step)] {
            let (opt, stats) = optimize(g, &Limits::deterministic()).unwrap();
            assert!(
                graph_cost(&opt).scalar() <= graph_cost(g).scalar(),
                "{name} {what}: cost went up"
            );
            assert!(
                stats.after.flops <= stats.before.flops && stats.after.bytes <= stats.before.bytes,
                "{name} {what}: {stats:?}"
            );
            assert_same_outputs(&format!("{name} {what} optimized"), g, &opt, 1e-9);
        }
    }
}

#[test]
fn fusion_example_splits_concat_products_and_does_fewer_matmul_flops() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fusion.mp")).unwrap();
    let c = compile(&src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let (_, stats) = optimize(&c.train_step, &Limits::deterministic()).unwrap();
    let fired = |name: &str| stats.rule_fires.iter().any(|(r, n)| *r == name && *n > 0);
    assert!(fired("concat-matmul-split"), "{stats:?}");
    assert!(stats.matmul_flops_after < stats.matmul_flops_before, "{stats:?}");
}
