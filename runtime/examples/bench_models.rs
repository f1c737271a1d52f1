//! The mpc side of the multimodal-fusion and graph benchmarks (`bench/compare_models.sh`),
//! on the JIT backend. Same schedule and JSON line as `bench_step.rs` (the text
//! classifier); see there and `bench/README.md`.
//!
//! ```sh
//! cargo run --release -p mpc-runtime --example bench_models -- --model fusion|graph \
//!     --out DIR [--threads N] [--write-only] [--profile] [--kernels FILE] [--params]
//! ```
//!
//! - `fusion`: `examples/fusion.mp` (B=32, text i32[B,16] vocab 5000,
//!   image f32[B,3,32,32], audio f32[B,50,40], one shared message function, 2 rounds,
//!   3 classes, Adam lr 1e-3). Data: `--batches` (default 32) batches of seeded uniform
//!   tokens, N(0,1) image and audio, uniform labels, written as `text.npy`, `image.npy`,
//!   `audio.npy`, `y.npy`.
//! - `graph`: a 2-layer GraphSAGE-style GNN (mean aggregation, 32 -> 64 -> 4, Adam lr
//!   1e-2), full batch: N=2000 nodes, E=10000 seeded uniform random directed edges
//!   (`g.edges.npy`, i32 [2, E]: sources, destinations), x N(0,1) f32 [N, 32]
//!   (`x.npy`), labels uniform in 0..4 (`y.npy`). `examples/graph.mp` is the same model
//!   with 16 hidden units and 2 classes (karate club), so its source is inlined here.
//!
//! Both write `init.safetensors` (the session's initial parameters, linear weights
//! `[in, out]`). `--params` prints the parameter names and shapes and exits.

use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize;
use mpc_runtime::checkpoint::{self, Meta};
use mpc_runtime::data::npy;
use mpc_runtime::data::Column;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// The fusion model, as the example ships it. (Until 2b7fe63 the checker lowered round
/// 2's `t += e` as `t0 + e`, the round-0 value; the peers implement the documented
/// synchronous rule, so the initial-loss check would catch a regression.)
const FUSION: &str = include_str!("../../examples/fusion.mp");

/// examples/graph.mp at N=2000, E=10000, F=32, 64 hidden units, 4 classes.
const GRAPH: &str = "
model GraphSage {
  dims { N = 2000, E = 10000, F = 32 }
  graph g { nodes N, edges i32[2, E] }
  input x: f32[N, F]
  label y: i32[N] classes 4

  message m1(src, dst) = linear(src, 64)
  message m2(src, dst) = linear(src, 4)
  let h = relu(propagate(g, x, m1, aggregate: mean) + linear(x, 64))
  let logits = propagate(g, h, m2, aggregate: mean) + linear(h, 4)
  loss cross_entropy(logits, y)
}
train { optimizer adam(lr: 1e-2) epochs 50 seed 0 }
";

const MODEL_SEED: u64 = 42;
const DATA_SEED: u64 = 7;

struct Opts {
    model: String,
    out: PathBuf,
    threads: usize,
    batches: usize,
    warmup: usize,
    steps: usize,
    eval: usize,
    sanity: usize,
    write_only: bool,
    profile: bool,
    params: bool,
    kernels: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        model: "fusion".into(),
        out: PathBuf::from("target/bench-run"),
        threads: 2,
        batches: 32,
        warmup: 50,
        steps: 300,
        eval: 300,
        sanity: 10,
        write_only: false,
        profile: false,
        params: false,
        kernels: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--write-only" => o.write_only = true,
            "--profile" => o.profile = true,
            "--params" => o.params = true,
            _ => {
                let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
                let n = || v.parse::<usize>().map_err(|e| format!("{a} {v}: {e}"));
                match a.as_str() {
                    "--model" => o.model = v.clone(),
                    "--out" => o.out = PathBuf::from(&v),
                    "--kernels" => o.kernels = Some(PathBuf::from(&v)),
                    "--threads" => o.threads = n()?,
                    "--batches" => o.batches = n()?,
                    "--warmup" => o.warmup = n()?,
                    "--steps" => o.steps = n()?,
                    "--eval" => o.eval = n()?,
                    "--sanity" => o.sanity = n()?,
                    _ => return Err(format!("unknown flag {a}")),
                }
            }
        }
    }
    if o.threads == 0 || o.batches == 0 || o.steps == 0 || o.eval == 0 {
        return Err("--threads, --batches, --steps and --eval must be positive".into());
    }
    if o.model != "fusion" && o.model != "graph" {
        return Err(format!("--model {}: fusion or graph", o.model));
    }
    Ok(o)
}

#[path = "common/bench.rs"]
mod bench;
use bench::{median, ms, peak_rss_mb, profile};
struct Col {
    name: &'static str,
    shape: Vec<usize>,
    data: Column,
}

fn ints(rng: &mut SplitMix64, n: usize, below: u64) -> Column {
    Column::I32((0..n).map(|_| rng.below(below) as i32).collect())
}

fn normals(rng: &mut SplitMix64, n: usize) -> Column {
    Column::F32((0..n).map(|_| rng.normal() as f32).collect())
}

/// The seeded data of `model`: the columns, and the batches (each a list of columns).
fn data(model: &str, b: usize, batches: usize) -> (Vec<Col>, Vec<Vec<(String, Column)>>) {
    let mut rng = SplitMix64::new(DATA_SEED);
    let cols = if model == "fusion" {
        let r = b * batches;
        vec![
            Col {
                name: "text",
                shape: vec![r, 16],
                data: ints(&mut rng, r * 16, 5000),
            },
            Col {
                name: "image",
                shape: vec![r, 3, 32, 32],
                data: normals(&mut rng, r * 3 * 32 * 32),
            },
            Col {
                name: "audio",
                shape: vec![r, 50, 40],
                data: normals(&mut rng, r * 50 * 40),
            },
            Col {
                name: "y",
                shape: vec![r],
                data: ints(&mut rng, r, 3),
            },
        ]
    } else {
        let (n, e) = (2000, 10000);
        vec![
            Col {
                name: "g.edges",
                shape: vec![2, e],
                data: ints(&mut rng, 2 * e, n as u64),
            },
            Col {
                name: "x",
                shape: vec![n, 32],
                data: normals(&mut rng, n * 32),
            },
            Col {
                name: "y",
                shape: vec![n],
                data: ints(&mut rng, n, 4),
            },
        ]
    };
    let batch_list = if model == "fusion" {
        (0..batches)
            .map(|i| {
                cols.iter()
                    .map(|c| {
                        let per: usize = c.shape[1..].iter().product();
                        let (lo, hi) = (i * b * per, (i + 1) * b * per);
                        let part = match &c.data {
                            Column::I32(v) => Column::I32(v[lo..hi].to_vec()),
                            Column::F32(v) => Column::F32(v[lo..hi].to_vec()),
                        };
                        (c.name.to_string(), part)
                    })
                    .collect()
            })
            .collect()
    } else {
        vec![cols.iter().map(|c| (c.name.to_string(), c.data.clone())).collect()]
    };
    (cols, batch_list)
}

fn run(o: &Opts) -> Result<(), String> {
    let source = if o.model == "fusion" { FUSION } else { GRAPH };
    let t = Instant::now();
    let compiled = compile(source, &[]).map_err(|d| format!("{d:?}"))?;
    let frontend_ms = ms(t);
    let shapes = specialize::params(&compiled.model, &compiled.dims)?;
    let model_name = compiled.model.name.clone();
    let dims = compiled.dims.clone();
    let t = Instant::now();
    let mut session = Session::with_backend(compiled, MODEL_SEED, Backend::Jit { threads: o.threads })?;
    let session_ms = ms(t);
    if o.params {
        let mut names: Vec<_> = session.params()?.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        names.sort();
        for (k, n) in names {
            println!("{k} {n}");
        }
        return Ok(());
    }
    let b = session.batch_size();
    let (cols, batches) = data(&o.model, b, o.batches);
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    for c in &cols {
        let bytes = match &c.data {
            Column::I32(v) => npy::encode_i32(&c.shape, v),
            Column::F32(v) => npy::encode_f32(&c.shape, v),
        };
        let path = o.out.join(format!("{}.npy", c.name));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let meta = Meta {
        model: model_name,
        step: 0,
        seed: MODEL_SEED,
        dims: dims.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    };
    checkpoint::save(&o.out.join("init.safetensors"), session.params()?, &shapes, &meta)?;
    if o.write_only {
        println!("{}", json!({"framework": "mpc", "out": o.out.display().to_string()}));
        return Ok(());
    }
    if o.profile {
        return profile(&mut session, &batches[0], o.threads, o.steps, o.kernels.as_deref());
    }
    let mut next = 0usize;
    let mut batch = || {
        let i = next % batches.len();
        next += 1;
        &batches[i]
    };

    let init_eval_loss = session.evaluate_batch(&batches[0])?.loss;
    let t = Instant::now();
    let first = session.train_step(batch())?;
    let first_step_ms = ms(t);
    let mut losses = vec![first.loss];
    for _ in 1..o.sanity {
        losses.push(session.train_step(batch())?.loss);
    }
    for _ in 0..o.warmup {
        session.train_step(batch())?;
    }
    let mut train = Vec::with_capacity(o.steps);
    let mut last_loss = f64::NAN;
    for _ in 0..o.steps {
        let batch = batch();
        let t = Instant::now();
        last_loss = session.train_step(batch)?.loss;
        train.push(ms(t));
    }
    let steps_taken = session.step;
    for i in 0..10 {
        session.evaluate_batch(&batches[i % batches.len()])?;
    }
    let mut eval = Vec::with_capacity(o.eval);
    let mut eval_loss = 0.0;
    for i in 0..o.eval {
        let b = &batches[i % batches.len()];
        let t = Instant::now();
        eval_loss = session.evaluate_batch(b)?.loss;
        eval.push(ms(t));
    }
    let mut sorted = train.clone();
    sorted.sort_by(f64::total_cmp);
    let p10 = sorted[sorted.len() / 10];
    let line = json!({
        "framework": "mpc",
        "variant": "jit",
        "model": o.model,
        "threads": o.threads,
        "batch": b,
        "compile_ms": frontend_ms + session_ms,
        "frontend_ms": frontend_ms,
        "session_ms": session_ms,
        "first_step_ms": first_step_ms,
        "train_step_ms": median(train),
        "train_step_p10_ms": p10,
        "infer_ms": median(eval),
        "peak_rss_mb": peak_rss_mb(),
        "steps": steps_taken,
        "init_eval_loss": init_eval_loss,
        "sanity_losses": losses,
        "last_loss": last_loss,
        "eval_loss": eval_loss,
    });
    println!("{line}");
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|o| run(&o));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
