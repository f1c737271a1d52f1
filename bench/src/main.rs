//! `mpc-bench`: the Rust side of mpc's benchmarks (`bench/run.sh` drives it against the
//! Python peers; `bench/README.md` has the method and the results).
//!
//! In: a subcommand and flags. Out: one JSON line per run on stdout (or a table).
//!
//! ```sh
//! cargo run --release -p mpc-bench -- step [--threads N] [--out DIR] [--profile]
//! cargo run --release -p mpc-bench -- models --model fusion|graph|transformer|gat|gat-karate|gnn-nonlinear [--params] [--profile]
//! cargo run --release -p mpc-bench -- opt
//! cargo run --release -p mpc-bench -- chain --layers N [--threads T] [--session | --session-only]
//! ```
//!
//! - `step`: the text classifier (`examples/text_classifier.mp`, B=64, T=32, vocab 10000,
//!   Adam) on the JIT backend; the same as `models --model text`.
//! - `models --model fusion|graph|text|transformer|gat|gat-karate|gnn-nonlinear`: see `workload.rs` for each model and its data.
//!   Both write the run directory the peers read (`--out`, default `target/bench-run`:
//!   the data as `.npy` and `init.safetensors`, the session's initial parameters, linear
//!   weights `[in, out]`), then time compilation (`pipeline::compile` and session creation:
//!   e-graph optimization, scheduling and Cranelift JIT of the training and evaluation
//!   steps) and the schedule of `schedule.rs`, and print one JSON line with peak RSS.
//!   `--write-only` writes the run directory and exits; `--params` prints the parameter
//!   names and sizes and exits; `--profile` times every kernel of the training step on
//!   its own instead (`profile.rs`), `--kernels FILE` also writes their listing;
//!   `--profile --compare VAR` runs the step compiled with the compiler switch `VAR` (an
//!   environment variable an experiment adds) unset and set, alternated in one process.
//! - `opt`: e-graph optimization time of every example's training step.
//! - `chain`: compile time and peak RSS of an N-layer chain model, stage by stage
//!   (`chain.rs`); `--session` also times the JIT session's creation on T threads, and
//!   `--session-only` times it alone, as the first compile of a process.

mod bandwidth;
mod chain;
mod graph_shapes;
mod opt_time;
mod profile;
mod schedule;
mod timing;
mod workload;

use clap::{Parser, Subcommand};
use mpc_compiler::pipeline::compile;
use mpc_compiler::specialize;
use mpc_runtime::checkpoint::{self, Meta};
use mpc_runtime::session::{Backend, Session};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;
use timing::{ms, peak_rss_mb};
use workload::{Workload, MODEL_SEED};

#[derive(Parser, Debug)]
#[command(
    name = "mpc-bench",
    about = "mpc benchmarks (bench/run.sh runs them against PyTorch and JAX)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The text classifier's training step, inference and compile time (= models --model text)
    Step(RunOpts),
    /// A model's training step, inference and compile time (text, fusion, graph, transformer, gat, gat-karate, gnn-nonlinear)
    Models {
        #[arg(long, value_enum)]
        model: Workload,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// E-graph optimization time of every example's training step
    Opt {
        /// Runs per example
        #[arg(long, default_value_t = 21)]
        reps: usize,
        /// The folder of .mp files
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))]
        examples: PathBuf,
    },
    /// A molecule batch's training step padded to the run's capacity vs compiled for its exact shape
    GraphShapes {
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Batches of the first epoch to time
        #[arg(long, default_value_t = 12)]
        batches: usize,
        /// Steps per batch and side
        #[arg(long, default_value_t = 30)]
        reps: usize,
        /// Time every kernel of the padded step on its own instead
        #[arg(long)]
        profile: bool,
    },
    /// The Adam update's memory bandwidth against a copy loop's (28 against 8 bytes per element)
    Bandwidth {
        /// Parameters updated (one embedding table; beyond the caches by default)
        #[arg(long, default_value_t = 8 << 20)]
        elements: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Timed runs of each side
        #[arg(long, default_value_t = 30)]
        reps: usize,
        /// Print the update step's kernels instead
        #[arg(long)]
        kernels: bool,
    },
    /// Compile time and peak memory of an N-layer chain model (or of --file), stage by stage
    Chain {
        /// Hidden layers of the chain
        #[arg(long, default_value_t = 1)]
        layers: usize,
        /// Time this model's stages instead of the chain's
        #[arg(long)]
        file: Option<PathBuf>,
        /// JIT threads (with --session)
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Also time the JIT session's creation (what `mpc train` does before step 1)
        #[arg(long)]
        session: bool,
        /// Time only the session's creation, as the first compile of the process does it
        /// (no stage-by-stage compile before it to warm the allocator and caches)
        #[arg(long)]
        session_only: bool,
    },
}

#[derive(clap::Args, Debug)]
struct RunOpts {
    /// The run directory: data (.npy) and initial weights for the peers
    #[arg(long, default_value = "target/bench-run")]
    out: PathBuf,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Batches of data to generate (default: text and transformer 64, fusion 32; a graph is one batch)
    #[arg(long)]
    batches: Option<usize>,
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Timed training steps (with --profile: runs per kernel)
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Timed inference batches
    #[arg(long, default_value_t = 300)]
    eval: usize,
    /// Steps whose losses are recorded for the cross-check with the peers
    #[arg(long, default_value_t = 10)]
    sanity: usize,
    /// Write the run directory and exit
    #[arg(long)]
    write_only: bool,
    /// Print the parameter names and sizes and exit
    #[arg(long)]
    params: bool,
    /// Time every kernel of the training step on its own instead
    #[arg(long)]
    profile: bool,
    /// With --profile: write the listing of the profiled kernels here
    #[arg(long)]
    kernels: Option<PathBuf>,
    /// With --profile: the evaluation (inference) step instead of the training step
    #[arg(long)]
    eval_step: bool,
    /// With --profile: compare the step compiled with this compiler switch (an
    /// environment variable) unset and set to 1, alternated in one process
    #[arg(long)]
    compare: Option<String>,
}

fn bench(w: Workload, o: &RunOpts) -> Result<(), String> {
    if o.threads == 0 || o.batches == Some(0) || o.steps == 0 || o.eval == 0 || o.sanity == 0 {
        return Err("--threads, --batches, --steps, --eval and --sanity must be positive".into());
    }
    // Compile first, before any data exists, so peak RSS and timings are the step's own.
    let t = Instant::now();
    let compiled = compile(w.source(), &w.dims()).map_err(|d| format!("{d:?}"))?;
    let frontend_ms = ms(t);
    let shapes = specialize::params(&compiled.model, &compiled.dims)?;
    let meta = Meta {
        model: compiled.model.name.clone(),
        step: 0,
        seed: MODEL_SEED,
        dims: compiled.dims.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        progress: None,
    };
    let t = Instant::now();
    let mut session = Session::with_backend(compiled, MODEL_SEED, Backend::Jit { threads: o.threads })?;
    let session_ms = ms(t);
    if o.params {
        for (name, values) in session.params()? {
            println!("{name} {}", values.len());
        }
        return Ok(());
    }

    let b = session.batch_size();
    let (model, dims) = (&session.compiled.model, &session.compiled.dims);
    let data = w.data(model, dims, b, o.batches.unwrap_or(w.default_batches()))?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    workload::write_columns(&o.out, &data)?;
    checkpoint::save(&o.out.join("init.safetensors"), session.params()?, &shapes, &meta)?;
    if o.write_only {
        println!("{}", json!({"framework": "mpc", "out": o.out.display().to_string()}));
        return Ok(());
    }
    let batches = workload::batches(&data, b);
    if let (true, Some(var)) = (o.profile, &o.compare) {
        return profile::compare(&mut session, &batches[0], o.threads, o.steps, var, o.eval_step);
    }
    if o.profile {
        return profile::profile(
            &mut session,
            &batches[0],
            o.threads,
            o.steps,
            o.kernels.as_deref(),
            o.eval_step,
        );
    }
    let counts = schedule::Counts {
        sanity: o.sanity,
        warmup: o.warmup,
        steps: o.steps,
        eval: o.eval,
    };
    let timed = schedule::run(&mut session, &batches, counts)?;
    let mut line = json!({
        "framework": "mpc",
        "variant": "jit",
        "model": w.name(),
        "threads": o.threads,
        "batch": b,
        "compile_ms": frontend_ms + session_ms,
        "frontend_ms": frontend_ms,
        "session_ms": session_ms,
    });
    if let Value::Object(map) = &mut line {
        map.extend(timed);
        map.insert("peak_rss_mb".into(), json!(peak_rss_mb()));
    }
    println!("{line}");
    Ok(())
}

fn main() {
    let result = match Cli::parse().command {
        Command::Step(opts) => bench(Workload::Text, &opts),
        Command::Models { model, opts } => bench(model, &opts),
        Command::Opt { reps, examples } => opt_time::run(&examples, reps),
        Command::GraphShapes {
            threads,
            batches,
            reps,
            profile,
        } => graph_shapes::run(threads, batches, reps, profile),
        Command::Chain {
            layers,
            file,
            threads,
            session,
            session_only,
        } => chain::run(
            layers,
            threads,
            (session || session_only, session_only),
            file.as_deref(),
        ),
        Command::Bandwidth {
            elements,
            threads,
            reps,
            kernels,
        } => bandwidth::run(elements, threads, reps, kernels),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_runner_scripts_flags_parse() {
        // What bench/run.sh and scripts/gpu-check.sh pass.
        let cli = Cli::try_parse_from([
            "mpc-bench",
            "models",
            "--model",
            "graph",
            "--out",
            "d",
            "--threads",
            "1",
            "--steps",
            "200",
            "--warmup",
            "30",
        ])
        .unwrap();
        let Command::Models { model, opts } = cli.command else {
            panic!("models")
        };
        assert_eq!(model, Workload::Graph);
        assert_eq!((opts.threads, opts.steps, opts.warmup, opts.eval), (1, 200, 30, 300));
        let cli = Cli::try_parse_from(["mpc-bench", "step", "--out", "d", "--write-only"]).unwrap();
        assert!(matches!(cli.command, Command::Step(RunOpts { write_only: true, .. })));
        assert!(Cli::try_parse_from(["mpc-bench", "models", "--model", "nope"]).is_err());
        for (name, w) in [
            ("transformer", Workload::Transformer),
            ("gat", Workload::Gat),
            ("gat-karate", Workload::GatKarate),
            ("gnn-nonlinear", Workload::GnnNonlinear),
        ] {
            let cli = Cli::try_parse_from(["mpc-bench", "models", "--model", name, "--profile"]).unwrap();
            assert!(matches!(cli.command, Command::Models { model, opts } if model == w && opts.profile));
            assert_eq!(w.name(), name);
        }
    }
}
