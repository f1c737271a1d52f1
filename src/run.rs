//! `mpc run`: evaluate a trained checkpoint: loss and accuracy on data, in evaluation
//! mode (no dropout), and the predictions on request (`--out preds.npy`); or, with
//! `--sample N`, draw N sequences from it (`sample.rs`).
//!
//! The checkpoint's metadata supplies the dims and seed it was trained with (so the
//! default data and batch are the same as in `mpc train`); `--dim` overrides them.
//! Without `--data` the rows are the default data's held-out part, so `mpc run` on a
//! checkpoint of `mpc train` prints the final held-out loss that training printed.

use crate::budget;
use crate::data::Source;
use crate::load::{error, fail, Loaded};
use crate::ModelArgs;
use clap::ValueEnum;
use mpc_compiler::specialize;
use mpc_runtime::backend::{cuda, default_threads, Backend};
use mpc_runtime::budget::Budget;
use mpc_runtime::checkpoint::{self, Meta};
use mpc_runtime::data::npy;
use mpc_runtime::data::Dataset;
use mpc_runtime::session::Session;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Parameters by name, as checkpoints hold them.
type Params = BTreeMap<String, Vec<f32>>;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// This machine's CPU
    Cpu,
    /// An NVIDIA GPU (CUDA driver needed; PTX kernels through cudarc)
    Cuda,
}

/// The session backend for `device`: the JIT on `threads` threads (default: every core
/// this process may use), or CUDA device 0 after checking for a driver (without one: a
/// single error line, exit 1, no panic).
pub fn backend(device: Device, threads: Option<usize>) -> Result<Backend, ExitCode> {
    match device {
        Device::Cpu => Ok(Backend::Jit {
            threads: cap_threads(threads),
        }),
        Device::Cuda => {
            cuda::probe(0).map_err(|e| error(&format!("--device cuda: {e}")))?;
            Ok(Backend::Cuda { device: 0 })
        }
    }
}

/// `--threads N` as the JIT gets it: at most the cores this process may use. More
/// threads than cores only add contention (and `--threads 1000000` would try to spawn
/// them all), so a larger N is capped, with one warning line, rather than obeyed.
fn cap_threads(requested: Option<usize>) -> usize {
    let cores = default_threads();
    match requested {
        Some(n) if n > cores => {
            let s = if cores == 1 { "" } else { "s" };
            errln!("warning: --threads {n}: this machine has {cores} core{s}; using {cores}");
            cores
        }
        Some(n) => n,
        None => cores,
    }
}

#[derive(clap::Args)]
pub struct RunOpts {
    /// The checkpoint (.safetensors) to evaluate, e.g. written by `mpc train --save`
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub weights: PathBuf,
    /// A directory laid out as for `mpc train --data`: its test/ rows if it has them, else all rows
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub data: Option<PathBuf>,
    /// Evaluate the last FRACTION of the rows of --data (what `mpc train --holdout` held out)
    #[arg(long, value_name = "FRACTION", requires = "data", value_parser = crate::data::parse_fraction)]
    pub holdout: Option<f64>,
    /// Where to run
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Write the predictions (what the loss scores, e.g. logits: f32 [rows, classes]) to this .npy file
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub out: Option<PathBuf>,
    /// Write each row's predicted class (the highest-scoring one: i32 [rows]) to this .npy file (classifiers)
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub out_class: Option<PathBuf>,
    /// One JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Refuse to start a run that needs more memory than SIZE (8G, 512MiB, bytes); default: what the machine has available
    #[arg(long, value_name = "SIZE", value_parser = mpc_runtime::budget::parse_size, allow_hyphen_values = true)]
    pub max_memory: Option<u128>,
    #[command(flatten)]
    pub sampling: crate::sample::SampleOpts,
}

/// The model compiled with the checkpoint's dims (those the model declares; `--dim` on
/// top), after checking that the checkpoint is of this model.
pub fn compile_for_checkpoint(model_args: &ModelArgs, weights: &Path) -> Result<Loaded, ExitCode> {
    let meta = checkpoint::read_meta(weights).map_err(|e| error(&e))?;
    Loaded::compile_with(model_args, None, |m| checkpoint_dims(&meta, weights, model_args, m))
}

/// The dims a checkpoint was trained with, for compiling `m` again: those the model
/// declares and `--dim` does not set. A checkpoint that names its model (mpc writes the
/// name) must name this one; files from other tools name none.
pub fn checkpoint_dims(
    meta: &Meta,
    weights: &Path,
    model_args: &ModelArgs,
    m: &mpc_compiler::CheckedModel,
) -> Result<Vec<(String, usize)>, String> {
    if !meta.model.is_empty() && meta.model != m.name {
        return Err(format!(
            "{}: a checkpoint of model '{}', not of '{}' ({})",
            weights.display(),
            mpc_runtime::files::clip(&meta.model),
            m.name,
            model_args.file.display()
        ));
    }
    Ok(meta
        .dims
        .iter()
        .filter(|(k, _)| m.dims.iter().any(|d| &d.name == *k))
        .filter(|(k, _)| !model_args.dims.iter().any(|(d, _)| d == *k))
        .map(|(k, v)| (k.clone(), *v))
        .collect())
}

/// The checkpoint's parameters, checked against the model's names and shapes, and its
/// metadata.
pub fn checkpoint_params(file: &Path, weights: &Path, loaded: &Loaded) -> Result<(Params, Meta), ExitCode> {
    let shapes = specialize::params(&loaded.compiled.model, &loaded.compiled.dims).map_err(|e| fail(file, &e))?;
    checkpoint::load(weights, &shapes).map_err(|e| error(&e))
}

/// A session on `backend` holding a checkpoint's parameters and step count (after the
/// memory check: it allocates).
pub fn checkpoint_session(
    file: &Path,
    loaded: Loaded,
    (params, meta): (Params, Meta),
    backend: Backend,
) -> Result<Session, ExitCode> {
    let mut session = Session::with_backend(loaded.compiled, meta.seed, backend).map_err(|e| fail(file, &e))?;
    session.set_params(params).map_err(|e| fail(file, &e))?;
    session.step = meta.step;
    Ok(session)
}

pub fn run(model_args: &ModelArgs, opts: &RunOpts) -> Result<(), ExitCode> {
    let backend = backend(opts.device, None)?;
    let file = &model_args.file;
    // Before the run: an --out that cannot be written fails at once.
    for out in opts.out.iter().chain(&opts.out_class) {
        mpc_runtime::files::check_writable(out).map_err(|e| fail(out, &e))?;
    }
    let source = Source::new(opts.data.as_deref(), opts.holdout)?;
    let loaded = compile_for_checkpoint(model_args, &opts.weights)?;
    let budget = Budget::new(opts.max_memory);
    if let Some(count) = opts.sampling.sample {
        return crate::sample::sample(file, &opts.weights, loaded, backend, &budget, count, &opts.sampling);
    }
    // Sizes first: the checkpoint's dims may ask for more than the machine has.
    if source.dir.is_none() {
        budget::check(file, "evaluation", &loaded.compiled, None, &budget)?;
    }
    let checkpoint = checkpoint_params(file, &opts.weights, &loaded)?;
    let seed = checkpoint.1.seed;
    let (mut rows, labeled) = source.eval_rows(file, &loaded.compiled.model, &loaded.compiled.dims, seed)?;
    let loaded = fit_eval_capacity(model_args, &opts.weights, loaded, &mut rows)?;
    if !labeled && opts.out.is_none() && opts.out_class.is_none() {
        return Err(error(&format!(
            "{}: no labels, so there is no loss to report: --out PATH (or --out-class PATH) writes the predictions",
            source.name()
        )));
    }
    if source.dir.is_some() {
        budget::check(file, "evaluation", &loaded.compiled, Some(&[&rows]), &budget)?;
    }
    let mut session = checkpoint_session(file, loaded, checkpoint, backend)?;
    let start = Instant::now();
    let m = session.evaluate(&rows).map_err(|e| fail(file, &e))?;
    if opts.out.is_some() || opts.out_class.is_some() {
        let (shape, values) = predictions(&mut session, &rows).map_err(|e| fail(file, &e))?;
        if let Some(out) = &opts.out {
            mpc_runtime::files::write_atomic(out, &npy::encode_f32(&shape, &values)).map_err(|e| fail(out, &e))?;
        }
        if let Some(out) = &opts.out_class {
            let (shape, classes) = predicted_classes(&session, &shape, &values).map_err(|e| fail(file, &e))?;
            mpc_runtime::files::write_atomic(out, &npy::encode_i32(&shape, &classes)).map_err(|e| fail(out, &e))?;
        }
    }
    let written: Vec<String> = opts
        .out
        .iter()
        .chain(&opts.out_class)
        .map(|p| p.display().to_string())
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    if opts.json {
        let line = json!({
            "loss": labeled.then_some(m.loss),
            "accuracy": m.accuracy.filter(|_| labeled),
            "labeled": labeled,
            "rows": m.rows,
            "step": session.step,
            "seconds": seconds,
            "predictions": opts.out.as_ref().map(|p| p.display().to_string()),
            "classes": opts.out_class.as_ref().map(|p| p.display().to_string()),
        });
        outln!("{line}");
    } else {
        let acc = m.accuracy.map(|a| format!("  accuracy {a:.4}")).unwrap_or_default();
        let what = if rows.full_batch {
            // A graph: every node runs, the labeled ones are scored.
            let label = session.compiled.model.inputs.iter().find(|i| i.is_label);
            let labeled = match label.and_then(|l| rows.column(&l.name)) {
                Some(mpc_runtime::data::Tensor::Int(y)) => y.iter().filter(|&&l| l != -1).count(),
                _ => rows.rows,
            };
            format!("{labeled} labeled nodes of {}", source.name())
        } else {
            format!("{} {}", m.rows, source.describe(true))
        };
        if labeled {
            outln!(
                "{} (step {}) on {what}: loss {:.6}{acc}",
                session.compiled.model.name,
                session.step,
                m.loss
            );
        } else {
            let what = if rows.full_batch {
                format!("{} nodes of {}", rows.rows, source.name())
            } else {
                format!("{} {}", rows.rows, source.describe(true))
            };
            outln!(
                "{} (step {}) on {what}, without labels",
                session.compiled.model.name,
                session.step
            );
        }
        if !written.is_empty() {
            outln!("wrote predictions for {} rows to {}", rows.rows, written.join(" and "));
        }
    }
    Ok(())
}

/// The predicted class of every prediction: the arg-max over the predictions' last axis
/// (the classes), the first on ties, as the accuracy counts it. Only for a model whose
/// label has classes.
fn predicted_classes(session: &Session, shape: &[usize], values: &[f32]) -> Result<(Vec<usize>, Vec<i32>), String> {
    let model = &session.compiled.model;
    let classes = model.inputs.iter().find(|i| i.is_label).and_then(|l| l.classes);
    let width = shape.last().copied().unwrap_or(1);
    if classes.is_none() || shape.len() < 2 || width < 2 {
        return Err(format!(
            "--out-class: model '{}' is not a classifier (its label has no classes), so there is no predicted class; \
             --out writes its predictions",
            model.name
        ));
    }
    let argmax = |row: &[f32]| (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as i32;
    Ok((
        shape[..shape.len() - 1].to_vec(),
        values.chunks(width).map(argmax).collect(),
    ))
}

/// A batch of graphs: the evaluation step compiled at the capacity that holds every
/// batch of `rows` (as `mpc train` does for its own batches), which `rows` is padded to.
/// Without it each batch would be padded to its own size and not fit the step. Padding
/// is inert, so the capacity changes no number. Other models: `loaded` as it is.
fn fit_eval_capacity(
    model_args: &ModelArgs,
    weights: &Path,
    loaded: Loaded,
    rows: &mut Dataset,
) -> Result<Loaded, ExitCode> {
    if rows.graphs.is_none() {
        return Ok(loaded);
    }
    let batches = crate::data::eval_batches(rows, mpc_runtime::session::batch_rows(&loaded.compiled));
    let (model, dims) = (&loaded.compiled.model, &loaded.compiled.dims);
    let sizes =
        crate::data::fit_graph_capacity(model, dims, vec![(rows, batches)]).map_err(|e| fail(&model_args.file, &e))?;
    let mut with_sizes = model_args.dims.clone();
    with_sizes.retain(|(name, _)| !sizes.iter().any(|(n, _)| n == name));
    with_sizes.extend(sizes);
    let args = ModelArgs {
        file: model_args.file.clone(),
        dims: with_sizes,
    };
    compile_for_checkpoint(&args, weights)
}

/// The evaluation step's `predictions` for every row of `data`, batch by batch on the
/// session's backend (the last partial batch runs a step compiled for its size).
fn predictions(session: &mut Session, data: &Dataset) -> Result<(Vec<usize>, Vec<f32>), String> {
    let graph = &session.compiled.eval;
    let out = graph
        .output("predictions")
        .ok_or("the model's loss scores no predictions, so there are none to write")?;
    let Some((_, row_shape)) = graph.ty(out).shape.split_first() else {
        return Err("the model's predictions are a scalar, not one per row".into());
    };
    let row_shape = row_shape.to_vec();
    let mut values = Vec::with_capacity(data.rows * row_shape.iter().product::<usize>());
    let order: Vec<usize> = (0..data.rows).collect();
    for chunk in order.chunks(session.batch_size()) {
        let batch = session
            .predict_batch(&data.batch(chunk))?
            .ok_or("the evaluation step returned no predictions")?;
        values.extend_from_slice(&batch);
    }
    let mut shape = vec![data.rows];
    shape.extend(row_shape);
    Ok((shape, values))
}
