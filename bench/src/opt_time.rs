//! `mpc-bench opt`: how long e-graph optimization of each example's training step takes
//! at the default limits (the budget is 100 ms per model in a release build).
//!
//! In: the `.mp` files of `examples/`. Out: a table on stdout: IR nodes, e-graph nodes,
//! median and maximum milliseconds over `reps` runs, and why the optimizer stopped.

use crate::timing::{median, ms};
use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::pipeline::compile;
use std::path::Path;
use std::time::Instant;

pub fn run(examples: &Path, reps: usize) -> Result<(), String> {
    let mut files: Vec<_> = std::fs::read_dir(examples)
        .map_err(|e| format!("{}: {e}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "example", "IR nodes", "e-nodes", "median ms", "max ms", "stop"
    );
    for path in files {
        let src = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Ok(c) = compile(&src, &[]) else {
            println!("{}: does not compile", path.display());
            continue;
        };
        let mut times = Vec::with_capacity(reps);
        let mut last = None;
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            let (_, stats) = optimize(&c.train_step, &Limits::default())?;
            times.push(ms(start));
            last = Some(stats);
        }
        let stats = last.expect("at least one run");
        let max = times.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "{:<24} {:>8} {:>10} {:>10.2} {:>10.2} {:>12}",
            path.file_stem().unwrap_or_default().to_string_lossy(),
            c.train_step.nodes.len(),
            stats.egraph_nodes,
            median(times),
            max,
            stats.stop_reason
        );
    }
    Ok(())
}
