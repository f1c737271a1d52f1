//! The optimizer on deep models (issue 10): a graph above `REGION_NODES` nodes is
//! saturated region by region, so each e-graph stays small however deep the model, the
//! result is never costlier than the input, rewrites inside regions still happen, and
//! the stitched graph computes the same numbers; scheduling keeps every fused loop
//! kernel bounded. Structure only, never time.

use mpc_compiler::internals::opt::cost::graph_cost;
use mpc_compiler::internals::opt::regions::REGION_NODES;
use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::interp::{run, Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph, Op};
use mpc_compiler::pipeline::{compile, schedule};
use mpc_compiler::schedule::KernelBody;
use mpc_compiler::seeded::SplitMix64;

/// A chain of `layers` layers `relu(linear(z, 4))`, each followed by `tail`.
fn chain(layers: usize, tail: &str) -> String {
    let mut s =
        String::from("model Chain {\n dims { B = 8 }\n input x: f32[B, 4]\n label y: i32[B] classes 4\n let z0 = x\n");
    for i in 1..=layers {
        s += &format!(" let z{i} = relu(linear(z{}, 4)){tail}\n", i - 1);
    }
    s += &format!(" loss cross_entropy(linear(z{layers}, 4), y)\n}}\ntrain {{ optimizer adam(lr: 1e-3) }}\n");
    s
}

fn args_of(g: &Graph) -> Vec<(ArgKind, String)> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Arg { kind, name, .. } => Some((*kind, name.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_deep_chain_is_optimized_in_bounded_regions_at_no_higher_cost() {
    let c = compile(&chain(400, ""), &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let g = &c.train_step.graph;
    assert!(g.nodes.len() > 10 * REGION_NODES, "{} nodes", g.nodes.len());
    let (opt, stats) = optimize(g, &Limits::deterministic()).unwrap();
    opt.validate().unwrap();
    // Every region's e-graph is bounded by the region's size, not the model's.
    let body = g.nodes.iter().filter(|n| !matches!(n.op, Op::Arg { .. })).count();
    assert_eq!(stats.regions, body.div_ceil(REGION_NODES), "{stats:?}");
    assert!(stats.egraph_nodes <= 4 * REGION_NODES, "{stats:?}");
    assert!(graph_cost(&opt).scalar() <= graph_cost(g).scalar());
    assert!(stats.after.scalar() <= stats.before.scalar(), "{stats:?}");
    assert!(opt.nodes.len() <= g.nodes.len());
    assert_eq!(args_of(&opt), args_of(g), "the signature is unchanged");
    assert_eq!(opt.outputs.len(), g.outputs.len());
}

#[test]
fn regions_still_rewrite_and_the_stitched_graph_computes_the_same_numbers() {
    // `* 2 * 0.5` folds to `* 1` and disappears, in the forward and the backward pass.
    let c = compile(&chain(40, " * 2 * 0.5"), &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let g = &c.train_step.graph;
    let (opt, stats) = optimize(g, &Limits::deterministic()).unwrap();
    assert!(stats.regions > 1, "{stats:?}");
    assert!(
        stats.improved && stats.after.scalar() < stats.before.scalar(),
        "{stats:?}"
    );
    assert_eq!(args_of(&opt), args_of(g));

    let mut rng = SplitMix64::new(7);
    let mut args = Args::new();
    for node in &g.nodes {
        let Op::Arg { kind, name, ty } = &node.op else { continue };
        let low = if *kind == ArgKind::State { 0.0 } else { -1.0 };
        let v = match ty.dtype {
            DType::I32 if name == "@positions" => Value::Int((0..ty.numel() as i32).collect()),
            DType::I32 if name.starts_with('@') => Value::Int(vec![2]),
            DType::I32 => Value::Int((0..ty.numel()).map(|_| rng.below(4) as i32).collect()),
            DType::F32 => Value::Float((0..ty.numel()).map(|_| rng.range(low, 1.0)).collect()),
        };
        args.insert(name.clone(), v);
    }
    let (want, got) = (run(g, &args).unwrap(), run(&opt, &args).unwrap());
    assert_eq!(want.len(), got.len());
    for ((name, u), (name2, v)) in want.iter().zip(&got) {
        assert_eq!(name, name2);
        for (p, q) in u.floats().iter().zip(v.floats()) {
            assert!((p - q).abs() <= 1e-9 * p.abs().max(1.0), "output {name}: {p} vs {q}");
        }
    }
}

#[test]
fn a_deep_chain_schedules_into_bounded_loop_kernels() {
    let c = compile(&chain(400, ""), &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let p = schedule(&c.train_step.graph);
    let sizes: Vec<usize> = p
        .kernels
        .iter()
        .filter_map(|k| match &k.body {
            KernelBody::Loop(l) => Some(l.exprs.len()),
            _ => None,
        })
        .collect();
    // 800 Adam updates of ~25 expressions each used to be one kernel; they still fuse,
    // into kernels of at most 512 expressions (a bounded Cranelift function each).
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(largest <= 512, "largest loop kernel: {largest} expressions");
    assert!(largest > 256, "updates should still fuse: largest {largest}");
    // About five kernels per layer (forward: a matmul and a loop; backward: two matmuls
    // and a loop), not one per node.
    assert!(p.kernels.len() < 8 * 400, "{} kernels", p.kernels.len());
}
