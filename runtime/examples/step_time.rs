//! Median time of one training step of the text classifier (B=64, T=32, vocab 10000,
//! Adam) on the JIT: `cargo run --release -p mpc-runtime --example step_time [threads]`.

use mpc_compiler::driver::compile;
use mpc_runtime::data::synthetic::TokenTask;
use mpc_runtime::session::{Backend, Session};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let src = include_str!("../../examples/text_classifier.mp");
    let t0 = Instant::now();
    let compiled = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut session = Session::with_backend(compiled, 42, Backend::Jit { threads }).unwrap();
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let data = TokenTask {
        rows: 64 * 20,
        seq_len: 32,
        vocab: 10000,
        classes: 2,
        keywords: 20,
        signal: 0.3,
        seed: 7,
    }
    .generate("tokens", "y");
    let batches: Vec<_> = (0..20)
        .map(|i| data.batch(&(i * 64..(i + 1) * 64).collect::<Vec<_>>()))
        .collect();
    for b in &batches {
        session.train_step(b).unwrap();
    }
    let mut times = Vec::new();
    for round in 0..25 {
        for b in &batches {
            let t = Instant::now();
            session.train_step(b).unwrap();
            if round > 0 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let eval = &batches[0];
    let mut etimes = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        session.evaluate_batch(eval).unwrap();
        etimes.push(t.elapsed().as_secs_f64() * 1e3);
    }
    etimes.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "threads {threads}: train step median {:.3} ms (p10 {:.3}, p90 {:.3}), eval batch median {:.3} ms, parse-to-JIT {:.1} ms",
        times[times.len() / 2],
        times[times.len() / 10],
        times[times.len() * 9 / 10],
        etimes[etimes.len() / 2],
        compile_ms
    );
}
