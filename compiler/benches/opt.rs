//! How long e-graph optimization of each example's training step takes at the default
//! limits (the budget is 100 ms per model in a release build). A benchmark, not a test:
//! run it on a quiet machine with `cargo bench -p mpc-compiler --bench opt`.

use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::pipeline::compile;
use std::time::Instant;

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("examples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "example", "IR nodes", "e-nodes", "median ms", "max ms", "stop"
    );
    for path in files {
        let src = std::fs::read_to_string(&path).expect("readable example");
        let Ok(c) = compile(&src, &[]) else {
            println!("{}: does not compile", path.display());
            continue;
        };
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..21 {
            let start = Instant::now();
            let (_, stats) = optimize(&c.train_step, &Limits::default()).expect("optimizes");
            times.push(start.elapsed().as_secs_f64() * 1e3);
            last = Some(stats);
        }
        times.sort_by(f64::total_cmp);
        let stats = last.expect("ran");
        println!(
            "{:<24} {:>8} {:>10} {:>10.2} {:>10.2} {:>12}",
            path.file_stem().unwrap().to_string_lossy(),
            c.train_step.nodes.len(),
            stats.egraph_nodes,
            times[times.len() / 2],
            times[times.len() - 1],
            stats.stop_reason
        );
    }
}
