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

use mpc_compiler::autodiff::{SEED, STEP};
use mpc_compiler::codegen::cranelift;
use mpc_compiler::driver::compile;
use mpc_compiler::lower;
use mpc_compiler::opt;
use mpc_compiler::schedule::{self, BufKind, KernelBody};
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::backend::pool::Pool;
use mpc_runtime::checkpoint::{self, Meta};
use mpc_runtime::data::npy;
use mpc_runtime::data::Column;
use mpc_runtime::session::{Backend, Session};
use serde_json::json;
use std::path::{Path, PathBuf};
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

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A named column with its full shape (first axis: rows, or the edge list's 2).
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
    let shapes = lower::params(&compiled.model, &compiled.dims)?;
    let model_name = compiled.model.name.clone();
    let dims = compiled.dims.clone();
    let t = Instant::now();
    let mut session = Session::with_backend(compiled, MODEL_SEED, Backend::Jit { threads: o.threads })?;
    let session_ms = ms(t);
    if o.params {
        let mut names: Vec<_> = session.params.iter().map(|(k, v)| (k.clone(), v.len())).collect();
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
    checkpoint::save(&o.out.join("init.safetensors"), &session.params, &shapes, &meta)?;
    if o.write_only {
        println!("{}", json!({"framework": "mpc", "out": o.out.display().to_string()}));
        return Ok(());
    }
    if o.profile {
        return profile(&session, &batches[0], o.threads, o.steps, o.kernels.as_deref());
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

use mpc_runtime::backend::jit::splits;

/// A buffer for the profiler: 64-byte aligned, zeroed.
fn aligned(bytes: usize) -> Vec<[u8; 64]> {
    vec![[0u8; 64]; bytes.div_ceil(64).max(1)]
}

/// Times each kernel of the training step separately, `reps` times, and prints the
/// median per kernel, slowest first.
fn profile(
    session: &Session,
    batch: &[(String, Column)],
    threads: usize,
    reps: usize,
    kernels_out: Option<&Path>,
) -> Result<(), String> {
    // What the JIT session runs: the e-graph-optimized training step.
    let (graph, _) = mpc_compiler::opt::optimize(&session.compiled.train_step, &opt::Limits::default())?;
    let program = schedule::schedule(&graph);
    if let Some(path) = kernels_out {
        std::fs::write(path, schedule::print_program(&program)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let jit = cranelift::compile(&program)?;
    let pool = Pool::new(threads);
    let (seed, step) = ([session.seed as i32], [1i32]);
    let mut storage: Vec<Vec<[u8; 64]>> = Vec::new();
    let mut ptrs: Vec<*mut u8> = Vec::new();
    for buf in &program.buffers {
        let mut mem = aligned(buf.len * 4);
        if let BufKind::Arg(name) = &buf.kind {
            let src: Vec<u8> = match name.as_str() {
                SEED => seed.iter().flat_map(|v| v.to_le_bytes()).collect(),
                STEP => step.iter().flat_map(|v| v.to_le_bytes()).collect(),
                _ => match batch.iter().find(|(n, _)| n == name).map(|(_, c)| c) {
                    Some(Column::I32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    Some(Column::F32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    None => {
                        let v = session
                            .params
                            .get(name)
                            .or_else(|| session.state.get(name))
                            .ok_or_else(|| format!("no value for argument '{name}'"))?;
                        v.iter().flat_map(|x| x.to_le_bytes()).collect()
                    }
                },
            };
            if src.len() != buf.len * 4 {
                return Err(format!(
                    "argument '{name}': {} bytes, expected {}",
                    src.len(),
                    buf.len * 4
                ));
            }
            // SAFETY: `mem` holds at least `src.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), mem.as_mut_ptr() as *mut u8, src.len()) };
        }
        ptrs.push(mem.as_mut_ptr() as *mut u8);
        storage.push(mem);
    }
    let bufs = ptrs.as_ptr() as usize;
    let mut errors = vec![[0i32; 2]; threads];
    let errs = errors.as_mut_ptr() as usize;
    let n = program.kernels.len();
    let mut times = vec![Vec::with_capacity(reps); n];
    let mut whole = Vec::with_capacity(reps);
    for rep in 0..reps + 20 {
        let t_all = Instant::now();
        for (k, kernel) in program.kernels.iter().enumerate() {
            let f = jit.fns[k];
            let range = kernel.range as i64;
            let t = Instant::now();
            if splits(kernel, threads) {
                pool.run(&|th: usize| {
                    let lo = range * th as i64 / threads as i64;
                    let hi = range * (th as i64 + 1) / threads as i64;
                    if lo < hi {
                        // SAFETY: every buffer is allocated at its full length; threads
                        // write disjoint parts; each has its own error slot.
                        unsafe {
                            f(
                                bufs as *const *mut u8,
                                lo,
                                hi,
                                (errs as *mut [i32; 2]).add(th) as *mut i32,
                            )
                        };
                    }
                });
            } else {
                // SAFETY: as above, one thread.
                unsafe { f(bufs as *const *mut u8, 0, range, errs as *mut i32) };
            }
            if rep >= 20 {
                times[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        if rep >= 20 {
            whole.push(t_all.elapsed().as_secs_f64() * 1e3);
        }
    }
    if errors.iter().any(|e| e[0] != 0) {
        return Err("a bounds check failed while profiling".into());
    }
    let label = |b: usize| -> String {
        let buf = &program.buffers[b];
        match &buf.kind {
            BufKind::Arg(n) | BufKind::Output(n) => n.clone(),
            BufKind::Temp => format!("%{}", buf.value),
        }
    };
    let mut rows: Vec<(usize, f64)> = times.into_iter().map(median).enumerate().collect();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "train step, {threads} thread(s): whole program median {:.3} ms (kernel by kernel, {reps} runs); sum of kernel medians {:.3} ms",
        median(whole),
        total / 1e3
    );
    println!(
        "{:>4} {:>9} {:>6}  {:<8} {:<22} writes",
        "k", "median us", "share", "threads", "kind"
    );
    for (k, us) in rows {
        let kernel = &program.kernels[k];
        let split = splits(kernel, threads);
        let (kind, writes) = match &kernel.body {
            KernelBody::MatMul(m) => (format!("matmul {}x{}x{}", m.m, m.k, m.n), label(m.out)),
            KernelBody::Loop(l) => {
                let what = if l.scatter_rows.is_some() { "scatter" } else { "loop" };
                let mut outs: Vec<String> = l.stores.iter().map(|s| label(s.buf())).collect();
                outs.dedup();
                (format!("{what} {:?}", l.domain), outs.join(", "))
            }
            KernelBody::Segment(g) => (format!("segment {}x{}", g.rows, g.row_len), label(g.out)),
        };
        println!(
            "{k:>4} {us:>9.1} {:>5.1}%  {:<8} {kind:<22} {writes}",
            100.0 * us / total,
            if split { threads.to_string() } else { "1".into() }
        );
    }
    drop(storage);
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|o| run(&o));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
