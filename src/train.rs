//! `mpc train`: train a model on its default (seeded, synthetic) data or on `--data DIR`,
//! report the loss and accuracy of every epoch on the training rows and on held-out
//! rows, and save the parameters as a safetensors checkpoint (`--save`).
//!
//! Output: per epoch one line for people, or with `--json` one JSON object per line
//! (`{"epoch":1,"loss":..,"accuracy":..,"eval_loss":..,"eval_accuracy":..,"seconds":..,
//! "steps":..,"step_ms":..}`, `step_ms` the median time of the epoch's training steps,
//! batch assembly excluded) and a final `{"final":true,...}`. A progress bar runs on stderr while an
//! epoch trains, only when stderr is a terminal and without `--json`.
//!
//! The step runs on the Cranelift JIT (`--threads`, default every core), after e-graph
//! optimization; `Session` hides the backend.
//!
//! `--save` writes the checkpoint after every epoch (atomically), with what `--resume`
//! needs to go on: the run is the same, bit for bit, whether it stopped in between or not
//! (`resume.rs`).

use crate::budget;
use crate::data::{batch_override, eval_batches, fit_graph_capacity, parse_fraction, parse_lr, parse_positive, Source};
use crate::load::{error, fail, Loaded};
use crate::parallel::{self, Parallel};
use crate::plot;
use crate::resume::{self, Resume};
use crate::ModelArgs;
use indicatif::{ProgressBar, ProgressStyle};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize::{self, ConcreteParam};
use mpc_compiler::CheckedModel;
use mpc_runtime::backend::Backend;
use mpc_runtime::budget::Budget;
use mpc_runtime::checkpoint;
use mpc_runtime::data::{Dataset, Tensor};
use mpc_runtime::session::{mean, Metrics, Session};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TrainOpts {
    /// A directory with <input>.npy or <input>.csv for every input and label (default: the model's synthetic data)
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub data: Option<PathBuf>,
    /// Hold out this fraction of the rows of --data (its last rows) for evaluation, when DIR has no test/
    #[arg(long, value_name = "FRACTION", requires = "data", value_parser = parse_fraction, allow_hyphen_values = true)]
    pub holdout: Option<f64>,
    /// Epochs (default: the model's `train` block, else 10)
    #[arg(long, allow_hyphen_values = true)]
    pub epochs: Option<usize>,
    /// Rows per batch: sets the model's batch dim (default: the `train` block's `batch`, else the dim's value)
    #[arg(long, value_name = "N", value_parser = parse_positive, allow_hyphen_values = true)]
    pub batch: Option<usize>,
    /// Learning rate, replacing the optimizer's
    #[arg(long, value_name = "X", value_parser = parse_lr, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Seed for initialization, data and dropout (default: the model's, else 0)
    #[arg(long, allow_hyphen_values = true)]
    pub seed: Option<u64>,
    /// Threads of the compiled (JIT) step (default: every core); results do not depend on it
    #[arg(long, value_name = "N", value_parser = parse_positive, allow_hyphen_values = true)]
    pub threads: Option<usize>,
    /// Where to train: cpu (the Cranelift JIT) or cuda (PTX kernels on an NVIDIA GPU)
    #[arg(long, value_enum, default_value_t = crate::run::Device::Cpu)]
    pub device: crate::run::Device,
    /// Start from these parameters (a safetensors file with every parameter of the model, by mpc's names and shapes; e.g. converted from a PyTorch state_dict) instead of the seeded initialization
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub init: Option<PathBuf>,
    /// Go on with the run that wrote this checkpoint (--save): its parameters, optimizer state, step, epoch, data order, seed and dims; --epochs counts the whole run. Give the same --data
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath, conflicts_with_all = ["init", "seed", "batch"])]
    pub resume: Option<PathBuf>,
    /// Write the parameters, optimizer state and progress to this safetensors file after every epoch (what --resume reads)
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub save: Option<PathBuf>,
    /// Draw the loss and accuracy (or MAE) of every epoch, training and held-out, to this SVG file
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub plot: Option<PathBuf>,
    /// One JSON object per epoch and a final one, instead of text
    #[arg(long)]
    pub json: bool,
    /// Refuse to start a run that needs more memory than SIZE (8G, 512MiB, bytes); default: what the machine has available
    #[arg(long, value_name = "SIZE", value_parser = mpc_runtime::budget::parse_size, allow_hyphen_values = true)]
    pub max_memory: Option<u128>,
}

/// The median of `values` (`None` when empty), e.g. an epoch's step times.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn show(m: &Metrics) -> String {
    match (m.accuracy, m.mae) {
        (Some(a), _) => format!("loss {:.4}  accuracy {:.3}", m.loss, a),
        (None, Some(e)) => format!("loss {:.4}  mae {:.3}", m.loss, e),
        (None, None) => format!("loss {:.4}", m.loss),
    }
}

fn progress(steps: usize, epoch: usize, epochs: usize, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  ({eta} left)")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// A run set up on this process: what the epochs need.
struct Run {
    session: Session,
    train: Dataset,
    held_out: Option<Dataset>,
    /// The data order, from the seed or where a resumed run stopped.
    rng: SplitMix64,
    /// Rows per batch (of the whole batch, when data-parallel).
    batch: usize,
    epochs: usize,
    first_epoch: usize,
    /// What a checkpoint records: the parameters' shapes and the run's dims.
    shapes: Vec<ConcreteParam>,
    dims: BTreeMap<String, usize>,
    /// The data's name (`synthetic data`, `data/`).
    data_name: String,
    label: Option<String>,
    /// The line that says what the run does (printed once every rank is ready).
    description: String,
}

impl Run {
    fn labeled(&self, d: &Dataset) -> usize {
        labeled_rows(self.label.as_deref(), d)
    }
}

/// A graph's nodes: all of them in every step; labeled ones (not -1) count.
fn labeled_rows(label: Option<&str>, d: &Dataset) -> usize {
    match label.and_then(|l| d.column(l)) {
        Some(Tensor::Int(y)) => y.iter().filter(|&&l| l != -1).count(),
        _ => d.rows,
    }
}

pub fn train(model_args: &ModelArgs, opts: &TrainOpts) -> Result<(), ExitCode> {
    let mut parallel = parallel::world()?.map(Parallel::new);
    let file = &model_args.file;
    let run = match parallel.as_mut() {
        None => setup(model_args, opts, None)?,
        Some(p) => {
            let run = setup(model_args, opts, Some(&mut *p));
            let mut run = p.agree(run)?;
            let fingerprint = fingerprint(model_args, opts, &mut run).map_err(|e| fail(file, &e));
            let fingerprint = p.agree(fingerprint)?;
            p.agree_on(fingerprint, "model, options, data or starting parameters")?;
            run
        }
    };
    if !opts.json {
        outln!("{}", run.description);
    }
    epochs(model_args, opts, run, parallel.as_mut())
}

/// Everything before the first epoch: the model compiled (for this rank's rows when
/// data-parallel), the data loaded and split, the session made and started from
/// `--init` or `--resume`, the run described in one line.
fn setup(model_args: &ModelArgs, opts: &TrainOpts, mut parallel: Option<&mut Parallel>) -> Result<Run, ExitCode> {
    let file = &model_args.file;
    let speaks = parallel.as_ref().is_none_or(|p| p.rank() == 0);
    // Before the run, not after it: a --save that cannot be written fails at once.
    if let (Some(path), true) = (&opts.save, speaks) {
        mpc_runtime::files::check_writable(path)
            .map_err(|e| fail(path, &e.replacen("cannot write", "cannot write the checkpoint", 1)))?;
    }
    if let (Some(path), true) = (&opts.plot, speaks) {
        mpc_runtime::files::check_writable(path).map_err(|e| fail(path, &e))?;
    }
    let source = Source::new(opts.data.as_deref(), opts.holdout)?;
    let resume = opts.resume.as_deref().map(Resume::read).transpose()?;
    // The batch size of --batch, or the dims of the run being resumed.
    let dims_of = |m: &CheckedModel| match &resume {
        Some(r) => r.dims(model_args, m),
        None => batch_override(m, opts.batch, &model_args.dims),
    };
    let loaded = Loaded::compile_with(model_args, opts.lr, dims_of)?;
    let config = loaded.compiled.model.train.clone();
    let seed = resume
        .as_ref()
        .map_or(opts.seed.unwrap_or(config.seed), |r| r.meta.seed);
    let epochs = opts.epochs.unwrap_or(config.epochs);
    let first_epoch = resume.as_ref().map_or(0, |r| r.progress.epoch);
    if let Some(r) = resume.as_ref().filter(|_| first_epoch >= epochs) {
        return Err(error(&format!(
            "{}: the run has trained {first_epoch} epoch{}; --epochs {epochs} asks for no more (--epochs counts \
             the whole run, so --epochs {} trains one more)",
            r.path.display(),
            if first_epoch == 1 { "" } else { "s" },
            first_epoch + 1
        )));
    }
    let batch = mpc_runtime::session::batch_rows(&loaded.compiled);
    if let Some(p) = parallel.as_deref_mut() {
        p.split_batches(&loaded.compiled.model, batch, opts.device)
            .map_err(|e| fail(file, &e))?;
    }
    // The data order: from the seed, or where the resumed run stopped.
    let rng = resume.as_ref().map_or(SplitMix64::new(seed), Resume::data_order);
    // Sizes first: nothing big is allocated before the run is known to fit.
    let budget = Budget::new(opts.max_memory);
    if source.dir.is_none() {
        budget::check(file, "training", &loaded.compiled, None, &budget)?;
    }
    let (mut train, mut held_out) = source.train_split(file, &loaded.compiled.model, &loaded.compiled.dims, seed)?;
    // The rows each step holds: this rank's part of a batch when data-parallel.
    let step_rows = parallel.as_ref().map_or(batch, |p| p.rows);
    // A batch of graphs: one step compiled for the largest batch the run will assemble
    // (when data-parallel: the largest part of a batch on any rank, the same on all).
    let mut sizes = Vec::new();
    if train.graphs.is_some() {
        let mut ahead = rng.clone();
        let train_batches = (first_epoch..epochs)
            .flat_map(|_| train.epoch_batches(batch, &mut ahead))
            .flat_map(|order| match parallel.as_ref() {
                None => vec![order],
                Some(p) => p
                    .shards(&order)
                    .filter(|s| !s.is_empty())
                    .map(<[usize]>::to_vec)
                    .collect(),
            })
            .collect();
        let mut sets = vec![(&mut train, train_batches)];
        if let Some(h) = held_out.as_mut() {
            let chunks = eval_batches(h, step_rows);
            sets.push((h, chunks));
        }
        // Graph slots per step: the batch dim at this rank's rows.
        let mut step_dims = loaded.compiled.dims.clone();
        if let Some(b) = specialize::batch_dim_name(&loaded.compiled.model) {
            step_dims.insert(b.to_string(), step_rows);
        }
        sizes = fit_graph_capacity(&loaded.compiled.model, &step_dims, sets).map_err(|e| fail(file, &e))?;
    }
    // The model as the session runs it: at the graphs' sizes, and at this rank's rows
    // from its first row when data-parallel.
    let first_row = parallel.as_ref().map_or(0, |p| p.first_row());
    let loaded = match (sizes.is_empty(), step_rows == batch) {
        (true, true) => loaded,
        _ => Loaded::compile_rows_from(model_args, opts.lr, first_row, |m| {
            let mut dims = dims_of(m)?;
            let mut more = sizes.clone();
            if step_rows != batch {
                more.extend(specialize::batch_dim_name(m).map(|b| (b.to_string(), step_rows)));
            }
            dims.retain(|(name, _)| !more.iter().any(|(n, _)| n == name));
            dims.extend(more);
            Ok(dims)
        })?,
    };
    if source.dir.is_some() {
        let sets: Vec<&Dataset> = std::iter::once(&train).chain(held_out.as_ref()).collect();
        budget::check(file, "training", &loaded.compiled, Some(&sets), &budget)?;
    }
    let shapes = specialize::params(&loaded.compiled.model, &loaded.compiled.dims).map_err(|e| fail(file, &e))?;
    let mut dims: BTreeMap<String, usize> = loaded.compiled.dims.iter().map(|(k, v)| (k.clone(), *v)).collect();
    // A checkpoint records the whole batch, not a rank's part of it.
    if let Some(b) = specialize::batch_dim_name(&loaded.compiled.model).filter(|_| step_rows != batch) {
        dims.insert(b.to_string(), batch);
    }
    // Ranks on one machine share its cores.
    let threads = opts.threads.or(parallel.as_ref().map(|p| p.threads_per_rank()));
    let backend = crate::run::backend(opts.device, threads)?;
    // Read before the session allocates: a bad file fails at once, naming what is wrong.
    let init = match &opts.init {
        Some(path) => Some(checkpoint::load(path, &shapes).map_err(|e| error(&e))?.0),
        None => None,
    };
    let mut session = match parallel {
        None => Session::with_backend(loaded.compiled, seed, backend),
        Some(_) => Session::data_parallel(loaded.compiled, seed, backend),
    }
    .map_err(|e| fail(file, &e))?;
    if let Some(params) = init {
        session.set_params(params).map_err(|e| fail(file, &e))?;
    }
    if let Some(r) = &resume {
        r.restore(&mut session, &shapes)?;
    }
    let label = session
        .compiled
        .model
        .inputs
        .iter()
        .find(|i| i.is_label)
        .map(|i| i.name.clone());
    let run = Run {
        session,
        train,
        held_out,
        rng,
        batch,
        epochs,
        first_epoch,
        shapes,
        dims,
        data_name: source.name(),
        label,
        description: String::new(),
    };
    if run.labeled(&run.train) == 0 && run.label.is_some() {
        errln!(
            "warning: {}: every training label is -1 (unlabeled), so there is nothing to learn: the loss and its \
             gradients are 0",
            source.name()
        );
    }
    let description = describe(&run, &source, resume.as_ref(), parallel.as_deref());
    Ok(Run { description, ..run })
}

/// `training TextClassifier on 800 synthetic rows (200 held out), batch 64, ...`
fn describe(run: &Run, source: &Source, resume: Option<&Resume>, parallel: Option<&Parallel>) -> String {
    let (train, session) = (&run.train, &run.session);
    let held = match &run.held_out {
        Some(h) if h.full_batch => format!("{} held out", run.labeled(h)),
        Some(h) => format!("{} held out", h.rows),
        None => "none held out".into(),
    };
    let (rows, batch) = if train.full_batch {
        let edges = train.whole.iter().find(|(n, _, _)| n.ends_with(".edges"));
        let edges = edges
            .map(|(_, shape, _)| format!(" and {} edges", shape[1]))
            .unwrap_or_default();
        let nodes = format!(
            "{} nodes{edges} of {} ({} labeled",
            train.rows,
            source.name(),
            run.labeled(train)
        );
        (nodes, "full batch".to_string())
    } else {
        let batch = match parallel {
            Some(p) => format!("batch {} over {} ranks ({} rows each)", run.batch, p.ranks(), p.rows),
            None => format!("batch {}", run.batch),
        };
        (format!("{} {}", train.rows, source.describe(false)), batch)
    };
    let held = if train.full_batch {
        format!(", {held})")
    } else {
        format!(" ({held})")
    };
    let from = match resume {
        Some(r) => format!(
            " from {} (epoch {}, step {})",
            r.path.display(),
            run.first_epoch,
            session.step
        ),
        None => String::new(),
    };
    let epochs = run.epochs;
    format!(
        "training {}{from} on {rows}{held}, {batch}, {epochs} epoch{}, lr {}, seed {}, {}",
        session.compiled.model.name,
        if epochs == 1 { "" } else { "s" },
        session.compiled.model.train.optimizer.lr(),
        session.seed,
        match session.backend() {
            Backend::Jit { threads } => format!("{threads} thread{}", if threads == 1 { "" } else { "s" }),
            Backend::Interpreter => "reference interpreter".into(),
            Backend::Cuda { device } => format!("CUDA device {device}"),
        },
    )
}

/// What every rank of a data-parallel run must agree on: the model's text, the options
/// that change the numbers, the training data and the starting parameters.
fn fingerprint(model_args: &ModelArgs, opts: &TrainOpts, run: &mut Run) -> Result<u64, String> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&model_args.file).map_err(|e| e.to_string())?.hash(&mut h);
    (
        &run.dims,
        run.session.seed,
        run.epochs,
        run.first_epoch,
        run.session.step,
    )
        .hash(&mut h);
    opts.lr.map(f64::to_bits).hash(&mut h);
    for (name, _, column) in &run.train.whole {
        name.hash(&mut h);
        match column {
            Tensor::Float(v) => v.iter().for_each(|x| x.to_bits().hash(&mut h)),
            Tensor::Int(v) => v.hash(&mut h),
        }
    }
    for (name, values) in run.session.params()? {
        name.hash(&mut h);
        values.iter().for_each(|x| x.to_bits().hash(&mut h));
    }
    Ok(h.finish())
}

/// The epochs: training steps, the held-out evaluation, a line per epoch, the
/// checkpoint; then the summary and the plot.
fn epochs(
    model_args: &ModelArgs,
    opts: &TrainOpts,
    run: Run,
    mut parallel: Option<&mut Parallel>,
) -> Result<(), ExitCode> {
    let file = &model_args.file;
    let speaks = parallel.as_ref().is_none_or(|p| p.rank() == 0);
    let Run {
        mut session,
        train,
        held_out,
        mut rng,
        batch,
        epochs,
        first_epoch,
        ref shapes,
        ref dims,
        ref data_name,
        ref label,
        ..
    } = run;
    let labeled = |d: &Dataset| labeled_rows(label.as_deref(), d);
    let save = |session: &mut Session, epoch: usize, rng: &SplitMix64| match (&opts.save, speaks) {
        (Some(path), true) => resume::save(path, session, shapes, dims, epoch, rng).map_err(|e| error(&e)),
        _ => Ok(()),
    };
    let layout = session.gradient_layout(parallel.as_ref().map_or(1, |p| p.ranks()));
    let started = Instant::now();
    let (mut last, mut last_eval) = (None, None);
    let mut curves = Vec::new();
    for epoch in first_epoch + 1..=epochs {
        let start = Instant::now();
        let batches = train.epoch_batches(batch, &mut rng);
        let bar = progress(batches.len(), epoch, epochs, opts.json || !speaks);
        let mut steps = Vec::with_capacity(batches.len());
        let mut step_times = Vec::with_capacity(batches.len());
        for order in &batches {
            let (m, step_ms) = match parallel.as_deref_mut() {
                None => {
                    let batch = train.batch(order);
                    let step_start = Instant::now();
                    let m = session.train_step(&batch).map_err(|e| fail(file, &e))?;
                    (m, step_start.elapsed().as_secs_f64() * 1e3)
                }
                Some(p) => {
                    let mine = p.mine(order);
                    let batch = (!mine.is_empty()).then(|| train.batch(mine));
                    let step_start = Instant::now();
                    let m = p.step(&mut session, &layout, order, batch.as_deref(), |e| fail(file, e))?;
                    (m, step_start.elapsed().as_secs_f64() * 1e3)
                }
            };
            step_times.push(step_ms);
            bar.set_message(format!("loss {:.4}", m.loss));
            bar.inc(1);
            steps.push(m);
        }
        bar.finish_and_clear();
        let m = mean(&steps);
        // Every rank evaluates (the same numbers: the parameters are equal); only
        // rank 0 prints and saves, and every rank learns whether that went well.
        let mut end_of_epoch = || -> Result<Option<Metrics>, ExitCode> {
            let h = match &held_out {
                Some(h) => Some(session.evaluate(h).map_err(|e| fail(file, &e))?),
                None => None,
            };
            let seconds = start.elapsed().as_secs_f64();
            let line = json!({
                    "epoch": epoch,
                    "loss": m.loss,
                    "accuracy": m.accuracy,
                    "eval_loss": h.map(|h| h.loss),
                    "eval_accuracy": h.and_then(|h| h.accuracy),
                    "mae": m.mae,
                    "eval_mae": h.and_then(|h| h.mae),
                    "seconds": seconds,
                    "steps": steps.len(),
                    "step_ms": median(&mut step_times),
            });
            curves.extend(plot::Epoch::from_json(&line));
            if opts.json {
                outln!("{line}");
            } else {
                let held = h.map(|h| format!("  held-out {}", show(&h))).unwrap_or_default();
                outln!("epoch {epoch}/{epochs}  train {}{held}  {seconds:.2} s", show(&m));
            }
            save(&mut session, epoch, &rng)?;
            Ok(h)
        };
        let h = end_of_epoch();
        let h = match parallel.as_deref_mut() {
            Some(p) => p.agree(h)?,
            None => h?,
        };
        (last, last_eval) = (Some(m), h);
    }
    // Without epochs, the numbers are those of the initial parameters.
    if epochs == 0 {
        if let Some(h) = &held_out {
            last_eval = Some(session.evaluate(h).map_err(|e| fail(file, &e))?);
        }
        save(&mut session, 0, &rng)?;
    }
    match &opts.plot {
        _ if !speaks => {}
        Some(path) if curves.is_empty() => errln!(
            "warning: {}: no epochs ran, so there are no curves to draw",
            path.display()
        ),
        Some(path) => plot::write(
            path,
            &format!("{} on {data_name}", session.compiled.model.name),
            &curves,
        )?,
        None => {}
    }
    let seconds = started.elapsed().as_secs_f64();
    if opts.json {
        let line = json!({
            "final": true,
            "epochs": epochs,
            "steps": session.step,
            "seconds": seconds,
            "loss": last.map(|m| m.loss),
            "accuracy": last.and_then(|m| m.accuracy),
            "eval_loss": last_eval.map(|h| h.loss),
            "eval_accuracy": last_eval.and_then(|h| h.accuracy),
            "eval_mae": last_eval.and_then(|h| h.mae),
            "eval_rows": match &held_out {
                Some(d) if d.full_batch => Some(labeled(d)),
                _ => last_eval.map(|h| h.rows),
            },
            "checkpoint": opts.save.as_ref().map(|p| p.display().to_string()),
            "compiles": {"train": session.compiles.0, "eval": session.compiles.1},
        });
        outln!("{line}");
    } else {
        let mut summary = format!("done: {} steps in {seconds:.2} s", session.step);
        if let Some(h) = last_eval {
            summary += &format!("; held-out loss {:.6}", h.loss);
            if let Some(a) = h.accuracy {
                summary += &format!("  accuracy {a:.4}");
            }
            if let Some(e) = h.mae {
                summary += &format!("  mae {e:.4}");
            }
            match &held_out {
                Some(d) if d.full_batch => summary += &format!(" ({} labeled nodes)", labeled(d)),
                _ => summary += &format!(" ({} rows)", h.rows),
            }
        }
        outln!("{summary}");
        if let Some(path) = &opts.save {
            outln!("saved {}", path.display());
        }
    }
    Ok(())
}
