//! The mpc side of the peer benchmark (`bench/compare.sh`): the text classifier
//! (B=64, T=32, vocab 10000, Adam) on the JIT backend.
//!
//! ```sh
//! cargo run --release -p mpc-runtime --example bench_step -- --out DIR [--threads N]
//! ```
//!
//! Writes the run directory the peers read (`tokens.npy` i32 [N, 32], `y.npy` i32 [N],
//! `init.safetensors`: the session's initial parameters, linear weights `[in, out]`),
//! then times, in this order and on the same batches as the peers:
//! - compile: parse, check, lower, autodiff (`pipeline::compile`) and session creation
//!   (scheduling and Cranelift JIT of the training and evaluation steps);
//! - the loss of the initial parameters on batch 0 in evaluation mode (deterministic:
//!   the peers must print the same number);
//! - the first training step (batch 0), then steps 2..=`--sanity` on batches 1.. (their
//!   losses are printed for the cross-check with the peers);
//! - `--warmup` more steps, then the median of `--steps` training steps, batches in
//!   order, cycling;
//! - the median of `--eval` inference batches (`evaluate_batch`, no dropout);
//! - peak RSS (`VmHWM`).
//!
//! Prints one JSON line. `--write-only` writes the run directory and exits.
//!
//! `--profile` instead times every kernel of the training step on its own (same
//! scheduling, Cranelift code and thread split as the JIT executor, run kernel by kernel
//! with a clock around each, buffers allocated separately instead of in one arena) and
//! prints a table, slowest first: where a step's time goes. `--kernels FILE` also writes
//! the listing of those kernels (as `mpc compile FILE --emit kernels` prints them), so the
//! `k` numbers of the table can be looked up.

use mpc_compiler::pipeline::compile;
use mpc_compiler::specialize;
use mpc_runtime::checkpoint::{self, Meta};
use mpc_runtime::data::npy;
use mpc_runtime::data::synthetic::TokenTask;
use mpc_runtime::data::Column;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

const SOURCE: &str = include_str!("../../examples/text_classifier.mp");
const MODEL_SEED: u64 = 42;
const DATA_SEED: u64 = 7;

struct Opts {
    out: PathBuf,
    threads: usize,
    batches: usize,
    warmup: usize,
    steps: usize,
    eval: usize,
    sanity: usize,
    write_only: bool,
    profile: bool,
    /// With `--profile`: write the kernel listing of the profiled (optimized) training
    /// step here.
    kernels: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        out: PathBuf::from("target/bench-run"),
        threads: 2,
        batches: 64,
        warmup: 50,
        steps: 300,
        eval: 300,
        sanity: 10,
        write_only: false,
        profile: false,
        kernels: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--write-only" || a == "--profile" {
            o.write_only |= a == "--write-only";
            o.profile |= a == "--profile";
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        let n = || v.parse::<usize>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
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
    if o.threads == 0 || o.batches == 0 || o.steps == 0 || o.eval == 0 {
        return Err("--threads, --batches, --steps and --eval must be positive".into());
    }
    Ok(o)
}

#[path = "common/bench.rs"]
mod bench;
use bench::{median, ms, peak_rss_mb, profile};
fn run(o: &Opts) -> Result<(), String> {
    // Compile first, before any data exists, so peak RSS and timings are the step's own.
    let t = Instant::now();
    let compiled = compile(SOURCE, &[]).map_err(|d| format!("{d:?}"))?;
    let frontend_ms = ms(t);
    let shapes = specialize::params(&compiled.model, &compiled.dims)?;
    let model_name = compiled.model.name.clone();
    let dims = compiled.dims.clone();
    let t = Instant::now();
    let mut session = Session::with_backend(compiled, MODEL_SEED, Backend::Jit { threads: o.threads })?;
    let session_ms = ms(t);
    let b = session.batch_size();

    let (seq_len, vocab) = (32, 10000);
    let data = TokenTask {
        rows: b * o.batches,
        seq_len,
        vocab,
        classes: 2,
        keywords: 20,
        signal: 0.3,
        seed: DATA_SEED,
    }
    .generate("tokens", "y");
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    for (name, shape, col) in &data.columns {
        let mut full = vec![data.rows];
        full.extend(shape);
        let bytes = match col {
            Column::I32(v) => npy::encode_i32(&full, v),
            Column::F32(v) => npy::encode_f32(&full, v),
        };
        let path = o.out.join(format!("{name}.npy"));
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

    let batches: Vec<_> = (0..o.batches)
        .map(|i| data.batch(&(i * b..(i + 1) * b).collect::<Vec<_>>()))
        .collect();
    if o.profile {
        return profile(&mut session, &batches[0], o.threads, o.steps, o.kernels.as_deref());
    }
    let mut next = 0usize;
    let mut batch = || {
        let i = next % batches.len();
        next += 1;
        &batches[i]
    };

    // Loss of the initial parameters on batch 0 without dropout: deterministic, so every
    // framework must print the same number (a check of data and weight layout).
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

    for b in batches.iter().take(10) {
        session.evaluate_batch(b)?;
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
