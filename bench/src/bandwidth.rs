//! `mpc-bench bandwidth`: the Adam update, a memory-bound kernel, against a plain copy
//! loop on the same machine and threads.
//!
//! In: a parameter count and a thread count. Out: one JSON line: the update's time and
//! its bandwidth (Adam reads a parameter, its gradient and two moments and writes the
//! parameter and the moments: 28 bytes per parameter), the copy loop's bandwidth
//! (`dst = src`, split over the same threads: 8 bytes per element moved), and their
//! ratio. The copy moves as many bytes as the update does (3.5 elements per parameter):
//! bandwidth depends on which cache level holds the working set, and a 260 MB L3 held
//! a copy of one element per parameter (67 MB) where the update's 235 MB spilled out
//! of it, which made the copy look 2x faster than any loop over the update's bytes. The update is mpc's own compiled step: the optimizer half of
//! a data-parallel step (`Session::apply_gradients`), which runs nothing else.

use crate::timing::{median, ms};
use mpc_compiler::pipeline::{self, compile_with, Options};
use mpc_compiler::schedule;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::time::Instant;

/// A model whose parameters are almost all one embedding table of `rows` x 64.
fn model(rows: usize) -> String {
    format!(
        "model AdamBandwidth {{
  dims {{ B = 1, T = 1 }}
  input tokens: i32[B, T] vocab {rows}
  label y: i32[B] classes 2
  let z = embed(tokens, 64)
  loss cross_entropy(linear(mean(z, axis: 1), 2), y)
}}
train {{ optimizer adam(lr: 1e-3) }}"
    )
}

pub fn run(elements: usize, threads: usize, reps: usize, kernels: bool) -> Result<(), String> {
    let rows = elements.div_ceil(64).max(1);
    let options = Options {
        first_row: 0,
        ..Options::default()
    };
    let compiled = compile_with(&model(rows), &options).map_err(|d| format!("{d:?}"))?;
    if kernels {
        let opt = &compiled.model.train.optimizer;
        let update = pipeline::update_step(&compiled.forward, opt);
        let (optimized, _) = pipeline::optimize(&update)?;
        print!("{}", schedule::print_program(&pipeline::schedule(&optimized)));
        return Ok(());
    }
    let mut session = Session::data_parallel(compiled, 1, Backend::Jit { threads })?;
    let layout = session.gradient_layout(1);
    let params = layout.tail;
    let gradients = vec![1e-3f32; layout.len];
    let mut adam = Vec::with_capacity(reps);
    for rep in 0..reps + 3 {
        let t = Instant::now();
        session.apply_gradients(&gradients, &layout)?;
        if rep >= 3 {
            adam.push(ms(t));
        }
    }
    let adam_ms = median(adam);

    // The copy loop: the same threads, each copying its contiguous part.
    let copied = params * 28 / 8;
    let src = vec![1.0f32; copied];
    let mut dst = vec![0.0f32; copied];
    let part = copied.div_ceil(threads.max(1));
    let mut copy = Vec::with_capacity(reps);
    for rep in 0..reps + 3 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, from) in dst.chunks_mut(part).zip(src.chunks(part)) {
                s.spawn(move || d.copy_from_slice(from));
            }
        });
        if rep >= 3 {
            copy.push(ms(t));
        }
    }
    std::hint::black_box(&dst);
    let copy_ms = median(copy);
    let gbps = |bytes: f64, ms: f64| bytes / ms / 1e6;
    let adam_gbps = gbps(28.0 * params as f64, adam_ms);
    let copy_gbps = gbps(8.0 * copied as f64, copy_ms);
    println!(
        "{}",
        json!({
            "params": params,
            "threads": threads,
            "copy_elements": copied,
            "adam_ms": adam_ms,
            "adam_gb_per_s": adam_gbps,
            "copy_ms": copy_ms,
            "copy_gb_per_s": copy_gbps,
            "adam_over_copy": adam_gbps / copy_gbps,
        })
    );
    Ok(())
}
