//! `mpc-bench graph-shapes`: what a batch of a new shape costs. One training step of
//! examples/molecules.mp compiled once, at the capacity of every batch of a 30-epoch run
//! (what `mpc train` does), against a step compiled for exactly each batch's node and
//! edge counts (a fixed-shape compile of the same size): per batch, the median time of
//! each over `--reps` steps, alternated, and their ratio. Issue 12 asks for at most 1.3.
//! With `--profile`, the padded step's kernels timed one by one instead.

use crate::timing::{median, ms};
use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::data::defaults::default_dataset;
use mpc_runtime::data::graphs::Capacity;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::time::Instant;

const SOURCE: &str = include_str!("../../examples/molecules.mp");
const GRAPHS: usize = 64;
const EPOCHS: usize = 30;

pub fn run(threads: usize, batches: usize, reps: usize, profile: bool) -> Result<(), String> {
    let dims = |cap: Capacity| {
        vec![
            ("G".into(), cap.graphs),
            ("N".into(), cap.nodes),
            ("E".into(), cap.edges),
        ]
    };
    let probe = compile(SOURCE, &[]).map_err(|d| format!("{d:?}"))?;
    let (mut train, _) = default_dataset(&probe.model, &probe.dims, 0)?;
    let mut rng = SplitMix64::new(0);
    let run: Vec<Vec<usize>> = (0..EPOCHS)
        .flat_map(|_| train.epoch_batches(GRAPHS, &mut rng))
        .collect();
    let rows = train.graphs.clone().ok_or("molecules are a data set of graphs")?;
    let cap = rows.capacity_for(GRAPHS, run.iter().map(|b| b.as_slice()));
    let session = |cap: Capacity| -> Result<Session, String> {
        let c = compile(SOURCE, &dims(cap)).map_err(|d| format!("{d:?}"))?;
        Session::with_backend(c, 0, Backend::Jit { threads })
    };
    let mut padded = session(cap)?;
    if profile {
        // Every kernel of the padded step on the first batch, timed on its own.
        train.graphs.as_mut().expect("graphs").capacity = Some(cap);
        let batch = train.batch(&run[0]);
        return crate::profile::profile(&mut padded, &batch, threads, reps, None, false);
    }
    let mut ratios = Vec::new();
    for order in run.iter().take(batches) {
        let ids: Vec<usize> = order.iter().map(|&r| rows.ids[r]).collect();
        let (nodes, edges) = rows.set.size(&ids);
        let exact_cap = Capacity {
            graphs: GRAPHS,
            nodes: nodes + 1,
            edges,
        };
        let mut exact = session(exact_cap)?;
        train.graphs.as_mut().expect("graphs").capacity = Some(cap);
        let padded_batch = train.batch(order);
        train.graphs.as_mut().expect("graphs").capacity = Some(exact_cap);
        let exact_batch = train.batch(order);
        let (mut t_pad, mut t_exact) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            padded.train_step(&padded_batch)?;
            t_pad.push(ms(t));
            let t = Instant::now();
            exact.train_step(&exact_batch)?;
            t_exact.push(ms(t));
        }
        let (p, e) = (median(t_pad), median(t_exact));
        ratios.push(p / e);
        println!(
            "{}",
            json!({"nodes": nodes, "edges": edges, "capacity_nodes": cap.nodes, "capacity_edges": cap.edges,
                   "padded_ms": p, "exact_ms": e, "ratio": p / e})
        );
    }
    let max = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "{}",
        json!({"summary": true, "threads": threads, "batches": ratios.len(), "median_ratio": median(ratios), "max_ratio": max})
    );
    Ok(())
}
