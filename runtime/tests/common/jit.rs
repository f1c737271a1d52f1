//! The JIT against the reference interpreter, for the runtime's JIT tests and the root
//! crate's mutation test (`tests/common/mod.rs` includes this file by path: one copy).
//!
//! In: an IR graph and seeded random arguments. Out: `Ok` when every output agrees
//! within a relative tolerance on 1 and 2 threads, else the first difference.

use mpc_compiler::interp::{self, Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph};
use mpc_compiler::pipeline;
use mpc_compiler::seeded::SplitMix64;
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
    let program = pipeline::schedule_cpu(g);
    let code = pipeline::codegen_cpu(&program)?;
    let mut exe = Executable::new(program, code, Arc::new(Pool::new(threads)));
    exe.run(&mut |name| args.get(name).map(|v| v.view()))?;
    Ok(g.outputs
        .iter()
        .map(|(n, _)| (n.clone(), exe.output(n).unwrap().floats().to_vec()))
        .collect())
}

/// Every output of `g` on the JIT with each of `threads` against the interpreter:
/// `|a - b| <= rtol (max(|a|, |b|) + 1e-3 max |a|)` (or both NaN), the max over the
/// output's elements. Err names the first output element that differs, or the backend
/// that failed.
pub fn jit_vs_interp(g: &Graph, args: &Args<f32>, rtol: f32, threads: &[usize]) -> Result<(), String> {
    let want = interp::run(g, args).map_err(|e| format!("interpreter: {e:?}"))?;
    for &threads in threads {
        let got = run_jit(g, args, threads).map_err(|e| format!("jit ({threads} threads): {e}"))?;
        for ((name, w), (_, v)) in want.iter().zip(&got) {
            let w = w.floats();
            if w.len() != v.len() {
                return Err(format!("{name}: interpreter {} values, jit {}", w.len(), v.len()));
            }
            let scale = w.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for (i, (a, b)) in w.iter().zip(v).enumerate() {
                let tol = rtol * (a.abs().max(b.abs()) + 1e-3 * scale);
                if !((a - b).abs() <= tol || (a.is_nan() && b.is_nan())) {
                    return Err(format!("({threads} threads): {name}[{i}] interpreter {a} vs jit {b}"));
                }
            }
        }
    }
    Ok(())
}

/// Asserts every output of `g` agrees between the JIT (1 and 2 threads) and the
/// interpreter.
pub fn assert_matches_interp(g: &Graph, args: &Args<f32>, rtol: f32, what: &str) {
    if let Err(e) = jit_vs_interp(g, args, rtol, &[1, 2]) {
        panic!("{what} {e}");
    }
}
