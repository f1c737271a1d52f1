//! `mpc-bench chain --layers N`: compile time and peak memory of a deep chain model, stage
//! by stage (issue 10: compile time and memory should grow about linearly with the model).
//!
//! In: the number of layers. Out: one JSON line: the milliseconds of each pipeline stage
//! (parse+check, specialize, steps = lower + autodiff, optimize, schedule, Cranelift
//! codegen; the last three for the training AND the evaluation step, which is what
//! `mpc train` compiles before its first step), their total, the sizes of the graphs,
//! and the process's peak RSS. Each stage also has its CPU time (`*_cpu_ms`, every
//! thread), which other processes on the machine do not inflate. The model is generated in memory:
//!
//! ```text
//! let z1 = relu(linear(x, 4))  ...  let zN = relu(linear(z(N-1), 4))
//! loss cross_entropy(linear(zN, 4), y)
//! ```
//!
//! Every stage goes through the public `mpc_compiler::pipeline` functions, the same ones
//! the CLI and the JIT engine call, so the numbers are what a user waits for.

use crate::timing::{cpu_ms, ms, peak_rss_mb};
use mpc_compiler::pipeline;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::fmt::Write;
use std::time::Instant;

/// The chain model of `layers` hidden layers (at least 1).
pub fn source(layers: usize) -> String {
    let mut s = String::from(
        "model Chain {\n  dims { B = 8 }\n  input x: f32[B, 4]\n  label y: i32[B] classes 4\n  let z0 = x\n",
    );
    for i in 1..=layers.max(1) {
        let _ = writeln!(s, "  let z{i} = relu(linear(z{}, 4))", i - 1);
    }
    let _ = writeln!(s, "  loss cross_entropy(linear(z{}, 4), y)\n}}", layers.max(1));
    s += "train {\n  optimizer adam(lr: 1e-3)\n  epochs 1\n  seed 1\n}\n";
    s
}

/// Wall-clock and CPU milliseconds spent in each stage, summed over its calls.
#[derive(Default)]
struct Stages(Vec<(&'static str, f64, f64)>);

impl Stages {
    /// Runs `f` as (part of) stage `name`.
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let (t, cpu) = (Instant::now(), cpu_ms().unwrap_or(0.0));
        let out = f();
        let (wall, cpu) = (ms(t), cpu_ms().unwrap_or(0.0) - cpu);
        match self.0.iter_mut().find(|(n, _, _)| *n == name) {
            Some(s) => {
                s.1 += wall;
                s.2 += cpu;
            }
            None => self.0.push((name, wall, cpu)),
        }
        out
    }
}

/// Times every stage of compiling the `layers`-deep chain; with `session`, also the
/// JIT session's creation on `threads` threads (what `mpc train` does before step 1);
/// with `session_only`, the session alone (no stages compiled before it).
pub fn run(
    layers: usize,
    threads: usize,
    (session, session_only): (bool, bool),
    file: Option<&std::path::Path>,
) -> Result<(), String> {
    if layers == 0 || threads == 0 {
        return Err("--layers and --threads must be positive".into());
    }
    let src = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
        None => source(layers),
    };
    let (total, total_cpu) = (Instant::now(), cpu_ms().unwrap_or(0.0));
    let mut st = Stages::default();
    let (program, model) = st
        .time("check", || pipeline::check(&src))
        .map_err(|d| format!("{d:?}"))?;
    let dims = st
        .time("specialize", || pipeline::specialize(&program, &model, &[]))
        .map_err(|d| format!("{d:?}"))?;
    let steps = st.time("steps", || pipeline::steps(&model, &dims, 0))?;
    let mut graphs = Vec::new();
    let stages = [("train", &steps.train_step), ("eval", &steps.eval)];
    for (what, step) in stages.into_iter().filter(|_| !session_only) {
        let (optimized, stats) = st.time("optimize", || pipeline::optimize(step))?;
        let kernels = st.time("schedule", || pipeline::schedule(&optimized));
        let code = st.time("codegen", || pipeline::codegen_cpu(&kernels))?;
        graphs.push(json!({
            "step": what,
            "ir_nodes": step.nodes.len(),
            "opt_nodes": optimized.nodes.len(),
            "egraph_nodes": stats.egraph_nodes,
            "stop": stats.stop_reason,
            "cost_before": stats.before.scalar(),
            "cost_after": stats.after.scalar(),
            "kernels": kernels.kernels.len(),
        }));
        drop(code);
    }
    let mut line = json!({"bench": "chain", "layers": layers});
    for (name, wall, cpu) in &st.0 {
        line[format!("{name}_ms")] = json!(round(*wall));
        line[format!("{name}_cpu_ms")] = json!(round(*cpu));
    }
    line["total_ms"] = json!(round(ms(total)));
    line["total_cpu_ms"] = json!(round(cpu_ms().unwrap_or(0.0) - total_cpu));
    line["peak_rss_mb"] = json!(peak_rss_mb().map(round));
    line["graphs"] = json!(graphs);
    if session {
        let compiled = pipeline::compile(&src, &[]).map_err(|d| format!("{d:?}"))?;
        let (t, cpu) = (Instant::now(), cpu_ms().unwrap_or(0.0));
        let s = Session::with_backend(compiled, 1, Backend::Jit { threads })?;
        line["session_ms"] = json!(round(ms(t)));
        line["session_cpu_ms"] = json!(round(cpu_ms().unwrap_or(0.0) - cpu));
        line["threads"] = json!(threads);
        line["peak_rss_mb"] = json!(peak_rss_mb().map(round));
        drop(s);
    }
    println!("{line}");
    Ok(())
}

/// Milliseconds to one decimal, for a readable line.
fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_model_checks() {
        let (_, model) = pipeline::check(&source(3)).expect("the chain model is valid");
        assert_eq!(model.name, "Chain");
    }
}
