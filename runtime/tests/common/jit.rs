// Shared by the JIT test files (included, not a test of its own).

use mpc_compiler::interp::{self, Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::pipeline;
use mpc_runtime::backend::jit::Executable;
use mpc_runtime::backend::pool::Pool;
use std::sync::Arc;

/// Random arguments: floats in [-1, 1), ints below `bound(name)`, `@seed`/`@step` fixed.
pub fn random_args(g: &Graph, bound: impl Fn(&str) -> u64, seed: u64) -> Args<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut args = Args::new();
    for kind in [ArgKind::Input, ArgKind::Param, ArgKind::State] {
        for (_, name, ty) in g.args(kind) {
            let v = match (name, ty.dtype) {
                ("@seed", _) => Value::Int(vec![42]),
                ("@step", _) => Value::Int(vec![3]),
                (_, DType::F32) if name.starts_with("adam.v") => {
                    Value::Float((0..ty.numel()).map(|_| rng.range(0.0, 1.0) as f32).collect())
                }
                (_, DType::F32) => Value::Float((0..ty.numel()).map(|_| rng.range(-1.0, 1.0) as f32).collect()),
                (_, DType::I32) => Value::Int((0..ty.numel()).map(|_| rng.below(bound(name)) as i32).collect()),
            };
            args.insert(name.to_string(), v);
        }
    }
    args
}

/// Runs `g` as it is (scheduled and compiled, not optimized) on the JIT with `threads`
/// threads; outputs by name.
pub fn run_jit(g: &Graph, args: &Args<f32>, threads: usize) -> Result<Vec<(String, Vec<f32>)>, String> {
    let program = pipeline::schedule(g);
    let code = pipeline::codegen_cpu(&program)?;
    let mut exe = Executable::new(program, code, Arc::new(Pool::new(threads)));
    exe.run(&mut |name| args.get(name).map(|v| v.view()))?;
    Ok(g.outputs
        .iter()
        .map(|(n, _)| (n.clone(), exe.output(n).unwrap().floats().to_vec()))
        .collect())
}

/// Asserts every output of `g` agrees between the JIT and the interpreter.
pub fn assert_matches_interp(g: &Graph, args: &Args<f32>, rtol: f32, what: &str) {
    let want = interp::run(g, args).unwrap();
    for threads in [1, 2] {
        let got = run_jit(g, args, threads).unwrap();
        for ((name, w), (_, v)) in want.iter().zip(&got) {
            let w = w.floats();
            assert_eq!(w.len(), v.len(), "{what}: {name} length");
            let scale = w.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for (i, (a, b)) in w.iter().zip(v).enumerate() {
                let tol = rtol * (a.abs().max(b.abs()) + 1e-3 * scale);
                assert!(
                    (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                    "{what} ({threads} threads): {name}[{i}] interpreter {a} vs jit {b}"
                );
            }
        }
    }
}
