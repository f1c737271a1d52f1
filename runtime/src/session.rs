//! A training session: parameters, optimizer state and step count of one model, and
//! the steps that update them.
//!
//! In: a compiled model (its training step and evaluation graphs) and batches of data.
//! Out: per-step loss and accuracy, updated parameters. The graphs run on a [`Backend`]:
//! the Cranelift JIT (default), which runs them after e-graph optimization
//! (`mpc_compiler::opt`), or the reference interpreter, which runs them as autodiff
//! produced them; both give the same numbers (to rounding) from the same seed, dropout
//! masks included.
//!
//! A batch with fewer rows than the compiled batch size (the last partial batch) runs a
//! step compiled for exactly that many rows (lowered again with the batch dim changed,
//! then cached), so losses and accuracies over all rows are exact.

use crate::backend::jit::{ArgRef, Executable, OutBuf};
use crate::backend::pool::Pool;
pub use crate::backend::Backend;
use crate::data::{Column, Dataset};
use crate::init;
use mpc_compiler::autodiff::{self, SEED, STEP};
use mpc_compiler::check::dim::Dim;
use mpc_compiler::driver::Compiled;
use mpc_compiler::interp::{self, Args, Value};
use mpc_compiler::ir::{ArgKind, Graph};
use mpc_compiler::lower::{self, Mode};
use mpc_compiler::seeded::SplitMix64;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

pub struct Session {
    pub compiled: Compiled,
    pub params: BTreeMap<String, Vec<f32>>,
    /// Optimizer state by state-argument name (`adam.m:<param>` ...), zero at the start.
    pub state: BTreeMap<String, Vec<f32>>,
    /// Steps taken so far; the next step is number `step + 1` (Adam's t, dropout's key).
    pub step: i32,
    pub seed: u64,
    backend: Backend,
    engines: RefCell<Engines>,
}

/// Graphs and compiled steps by batch size (rows).
#[derive(Default)]
struct Engines {
    pool: Option<Arc<Pool>>,
    /// (training step, evaluation) graphs for batch sizes other than the compiled one.
    graphs: HashMap<usize, Rc<(Graph, Graph)>>,
    train: HashMap<usize, Executable>,
    eval: HashMap<usize, Executable>,
    /// The CUDA device (`Backend::Cuda`), with resident parameters and compiled steps.
    cuda: Option<crate::backend::cuda::Device>,
}

/// Loss and accuracy over some rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    pub loss: f64,
    /// Fraction of rows whose highest-scoring class is the label (classification only).
    pub accuracy: Option<f64>,
    pub rows: usize,
}

impl Session {
    /// A session on the default backend (the JIT on every core).
    pub fn new(compiled: Compiled, seed: u64) -> Result<Session, String> {
        Session::with_backend(compiled, seed, Backend::default())
    }

    /// A session on `backend`; the JIT compiles the training and evaluation steps now.
    pub fn with_backend(compiled: Compiled, seed: u64, backend: Backend) -> Result<Session, String> {
        let params = init::initialize(&lower::params(&compiled.model, &compiled.dims)?, seed);
        let state = compiled
            .train_step
            .args(ArgKind::State)
            .map(|(_, name, ty)| (name.to_string(), vec![0.0; ty.numel()]))
            .collect();
        let mut engines = Engines::default();
        let graphs = Rc::new(for_backend(
            backend,
            compiled.train_step.clone(),
            compiled.eval.clone(),
        )?);
        if let Backend::Jit { threads } = backend {
            let pool = Arc::new(Pool::new(threads));
            let b = batch_rows(&compiled);
            engines.train.insert(b, Executable::new(&graphs.0, pool.clone())?);
            engines.eval.insert(b, Executable::new(&graphs.1, pool.clone())?);
            engines.pool = Some(pool);
        }
        if let Backend::Cuda { device } = backend {
            use crate::backend::cuda::{Device, Step};
            let mut dev = Device::new(device)?;
            let b = batch_rows(&compiled);
            dev.prepare(Step::Train, b, &graphs.0)?;
            dev.prepare(Step::Eval, b, &graphs.1)?;
            engines.cuda = Some(dev);
        }
        engines.graphs.insert(batch_rows(&compiled), graphs);
        Ok(Session {
            compiled,
            params,
            state,
            step: 0,
            seed,
            backend,
            engines: RefCell::new(engines),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rows per batch: the size of the label's first axis.
    pub fn batch_size(&self) -> usize {
        batch_rows(&self.compiled)
    }

    fn label_name(&self) -> Option<&str> {
        self.compiled
            .model
            .inputs
            .iter()
            .find(|i| i.is_label)
            .map(|i| i.name.as_str())
    }

    /// Rows in `batch`, from the length of its label (else its first input) column.
    fn rows_in(&self, batch: &[(String, Column)]) -> Result<usize, String> {
        let b = self.batch_size();
        let name = self
            .label_name()
            .or_else(|| self.compiled.model.inputs.first().map(|i| i.name.as_str()));
        let Some(name) = name else { return Ok(b) };
        let Some(arg) = self.compiled.eval.arg(ArgKind::Input, name) else {
            return Ok(b);
        };
        let per_row = (self.compiled.eval.ty(arg).numel() / b.max(1)).max(1);
        let Some((_, col)) = batch.iter().find(|(n, _)| n == name) else {
            return Err(format!("the batch has no column '{name}'"));
        };
        let len = match col {
            Column::F32(v) => v.len(),
            Column::I32(v) => v.len(),
        };
        if len % per_row != 0 || len == 0 || len / per_row > b {
            return Err(format!(
                "column '{name}' has {len} elements: not 1 to {b} rows of {per_row}"
            ));
        }
        Ok(len / per_row)
    }

    /// Lowers the model again for batches of `rows` rows (cached).
    fn ensure_graphs(&self, rows: usize) -> Result<(), String> {
        if self.engines.borrow().graphs.contains_key(&rows) {
            return Ok(());
        }
        let model = &self.compiled.model;
        let batch_dim = model.batch_dim.as_ref().ok_or("the model has no batch dim")?;
        let name = model
            .dims
            .iter()
            .find(|d| &Dim::named(&d.name) == batch_dim)
            .map(|d| d.name.clone())
            .ok_or("the batch dim is not a plain dim name, so a partial batch cannot be compiled")?;
        let mut overrides: Vec<(String, usize)> = self.compiled.dims.iter().map(|(k, v)| (k.clone(), *v)).collect();
        overrides.retain(|(k, _)| *k != name);
        overrides.push((name, rows));
        let words =
            |d: Vec<mpc_compiler::diag::Diagnostic>| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; ");
        let dims = lower::dim_values(model, &overrides).map_err(words)?;
        let forward = lower::lower(model, &dims, Mode::Train)?;
        let eval = lower::lower(model, &dims, Mode::Eval)?;
        let train = autodiff::training_step(&forward, &model.train.optimizer);
        let graphs = for_backend(self.backend, train, eval)?;
        self.engines.borrow_mut().graphs.insert(rows, Rc::new(graphs));
        Ok(())
    }

    /// The (training step, evaluation) graphs for batches of `rows` rows.
    fn graphs(&self, rows: usize) -> Result<Rc<(Graph, Graph)>, String> {
        self.ensure_graphs(rows)?;
        Ok(self.engines.borrow().graphs[&rows].clone())
    }

    fn args(&self, graph: &Graph, batch: &[(String, Column)], step: i32) -> Args<f32> {
        let mut args = Args::new();
        for (name, col) in batch {
            let v = match col {
                Column::F32(v) => Value::Float(v.clone()),
                Column::I32(v) => Value::Int(v.clone()),
            };
            args.insert(name.clone(), v);
        }
        for (_, name, _) in graph.args(ArgKind::Param) {
            if let Some(p) = self.params.get(name) {
                args.insert(name.to_string(), Value::Float(p.clone()));
            }
        }
        for (_, name, _) in graph.args(ArgKind::State) {
            if let Some(s) = self.state.get(name) {
                args.insert(name.to_string(), Value::Float(s.clone()));
            }
        }
        args.insert(SEED.into(), Value::Int(vec![self.seed as i32]));
        args.insert(STEP.into(), Value::Int(vec![step]));
        args
    }

    /// Class labels must lie in `[0, classes)`, or be -1 ("no label", ignored by the loss
    /// and accuracy). Loaders check files; this guards batches built in code.
    fn check_labels(&self, batch: &[(String, Column)]) -> Result<(), String> {
        for input in self.compiled.model.inputs.iter().filter(|i| i.is_label) {
            let (Some(classes), Some((_, Column::I32(labels)))) =
                (input.classes, batch.iter().find(|(n, _)| *n == input.name))
            else {
                continue;
            };
            if let Some((row, &l)) = labels.iter().enumerate().find(|(_, &l)| l < -1 || l >= classes as i32) {
                return Err(format!(
                    "label '{}' row {row}: {l} is outside [0, {classes}) (-1 marks a row without a label)",
                    input.name
                ));
            }
        }
        Ok(())
    }

    /// (rows whose prediction's arg-max is the label, labeled rows); label -1 is no label.
    fn correct(&self, predictions: &[f32], batch: &[(String, Column)]) -> Option<(usize, usize)> {
        let label = self.label_name()?;
        let Some((_, Column::I32(labels))) = batch.iter().find(|(n, _)| n == label) else {
            return None;
        };
        let classes = predictions.len() / labels.len().max(1);
        if classes < 2 {
            return None;
        }
        // Label -1 means "no label" (e.g. a graph's held-out nodes): not counted.
        let labeled = labels.iter().filter(|&&l| l >= 0).count();
        let hits = predictions
            .chunks(classes)
            .zip(labels)
            .filter(|(row, &l)| l >= 0 && argmax(row) == l as usize)
            .count();
        Some((hits, labeled))
    }

    fn metrics(&self, loss: f64, predictions: Option<&[f32]>, batch: &[(String, Column)], rows: usize) -> Metrics {
        Metrics {
            loss,
            accuracy: predictions
                .and_then(|p| self.correct(p, batch))
                .filter(|&(_, labeled)| labeled > 0)
                .map(|(hits, labeled)| hits as f64 / labeled as f64),
            rows,
        }
    }

    /// One training step on one batch (full or partial): forward, backward, optimizer
    /// update.
    pub fn train_step(&mut self, batch: &[(String, Column)]) -> Result<Metrics, String> {
        let step = self.step + 1;
        let rows = self.rows_in(batch)?;
        self.check_labels(batch)?;
        let graphs = self.graphs(rows)?;
        let graph = &graphs.0;
        let (loss, predictions) = match self.backend {
            Backend::Interpreter => {
                let outputs = interp::run(graph, &self.args(graph, batch, step)).map_err(|e| e.to_string())?;
                let (mut loss, mut predictions) = (f64::NAN, None);
                for (name, value) in outputs {
                    if let Some(p) = name.strip_prefix("param:") {
                        self.params.insert(p.to_string(), value.floats().to_vec());
                    } else if let Some(s) = name.strip_prefix("state:") {
                        self.state.insert(s.to_string(), value.floats().to_vec());
                    } else if name == "loss" {
                        loss = value.floats()[0] as f64;
                    } else if name == "predictions" {
                        predictions = Some(value.floats().to_vec());
                    }
                }
                (loss, predictions)
            }
            Backend::Jit { .. } => {
                let Session {
                    engines,
                    params,
                    state,
                    seed,
                    ..
                } = self;
                let mut engines = engines.borrow_mut();
                let engines = &mut *engines;
                let exe = match engines.train.entry(rows) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let pool = engines.pool.clone().expect("JIT sessions have a pool");
                        e.insert(Executable::new(graph, pool)?)
                    }
                };
                run_exe(exe, batch, params, state, *seed as i32, step)?;
                let names: Vec<String> = exe.output_names().map(str::to_string).collect();
                let (mut loss, mut predictions) = (f64::NAN, None);
                for name in names {
                    let target = if let Some(p) = name.strip_prefix("param:") {
                        params.get_mut(p)
                    } else if let Some(s) = name.strip_prefix("state:") {
                        state.get_mut(s)
                    } else {
                        let out = exe.output(&name).expect("named output").floats();
                        if name == "loss" {
                            loss = out[0] as f64;
                        } else if name == "predictions" {
                            predictions = Some(out.to_vec());
                        }
                        continue;
                    };
                    // The new values become the session's; the old vector is the output
                    // buffer of the next step.
                    if let (Some(target), Some(OutBuf::F32(out))) = (target, exe.output_mut(&name)) {
                        std::mem::swap(target, out);
                    }
                }
                (loss, predictions)
            }
            Backend::Cuda { .. } => {
                let mut engines = self.engines.borrow_mut();
                let dev = engines.cuda.as_mut().expect("CUDA sessions have a device");
                let (seed, kind) = (self.seed as i32, crate::backend::cuda::Step::Train);
                dev.run(kind, rows, graph, batch, &self.params, &self.state, seed, step)?
            }
        };
        self.step = step;
        Ok(self.metrics(loss, predictions.as_deref(), batch, rows))
    }

    /// Makes `params` and `state` current: on CUDA the device holds the newest values
    /// (they stay there across steps), so call this before reading them, e.g. to write a
    /// checkpoint. A no-op on the CPU backends.
    pub fn sync_host(&mut self) -> Result<(), String> {
        let Session {
            engines, params, state, ..
        } = self;
        match engines.get_mut().cuda.as_mut() {
            Some(dev) => dev.download(params, state),
            None => Ok(()),
        }
    }

    /// One pass over `data` in a shuffled order; returns the mean of the batch metrics.
    pub fn train_epoch(&mut self, data: &Dataset, rng: &mut SplitMix64) -> Result<Metrics, String> {
        let batches = data.epoch_batches(self.batch_size(), rng);
        let metrics: Vec<Metrics> = batches
            .iter()
            .map(|order| self.train_step(&data.batch(order)))
            .collect::<Result<_, _>>()?;
        Ok(mean(&metrics))
    }

    /// Loss and accuracy on one batch (full or partial) in evaluation mode (no dropout).
    pub fn evaluate_batch(&self, batch: &[(String, Column)]) -> Result<Metrics, String> {
        let (rows, loss, predictions) = self.eval_outputs(batch)?;
        Ok(self.metrics(loss, predictions.as_deref(), batch, rows))
    }

    /// The evaluation step's `predictions` output for one batch (full or partial): row
    /// after row, `None` when the loss scores no prediction.
    pub fn predict_batch(&self, batch: &[(String, Column)]) -> Result<Option<Vec<f32>>, String> {
        Ok(self.eval_outputs(batch)?.2)
    }

    /// Rows, loss and predictions of the evaluation step on one batch.
    fn eval_outputs(&self, batch: &[(String, Column)]) -> Result<(usize, f64, Option<Vec<f32>>), String> {
        let rows = self.rows_in(batch)?;
        self.check_labels(batch)?;
        let graphs = self.graphs(rows)?;
        let graph = &graphs.1;
        let (loss, predictions) = match self.backend {
            Backend::Interpreter => {
                let outputs = interp::run(graph, &self.args(graph, batch, self.step)).map_err(|e| e.to_string())?;
                let find = |n: &str| outputs.iter().find(|(o, _)| o == n).map(|(_, v)| v.floats().to_vec());
                (find("loss").map_or(f64::NAN, |l| l[0] as f64), find("predictions"))
            }
            Backend::Jit { .. } => {
                let mut engines = self.engines.borrow_mut();
                let engines = &mut *engines;
                let exe = match engines.eval.entry(rows) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let pool = engines.pool.clone().expect("JIT sessions have a pool");
                        e.insert(Executable::new(graph, pool)?)
                    }
                };
                run_exe(exe, batch, &self.params, &self.state, self.seed as i32, self.step)?;
                let loss = exe.output("loss").map_or(f64::NAN, |o| o.floats()[0] as f64);
                (loss, exe.output("predictions").map(|o| o.floats().to_vec()))
            }
            Backend::Cuda { .. } => {
                let mut engines = self.engines.borrow_mut();
                let dev = engines.cuda.as_mut().expect("CUDA sessions have a device");
                let (seed, kind) = (self.seed as i32, crate::backend::cuda::Step::Eval);
                dev.run(kind, rows, graph, batch, &self.params, &self.state, seed, self.step)?
            }
        };
        Ok((rows, loss, predictions))
    }

    /// Loss and accuracy on every row of `data` in evaluation mode (no dropout); the
    /// last partial batch included.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metrics, String> {
        let b = self.batch_size();
        let order: Vec<usize> = (0..data.rows).collect();
        let all = order
            .chunks(b)
            .map(|chunk| self.evaluate_batch(&data.batch(chunk)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(mean(&all))
    }
}

/// Runs `exe` with the batch's columns, the parameters, the state and the RNG scalars.
fn run_exe(
    exe: &mut Executable,
    batch: &[(String, Column)],
    params: &BTreeMap<String, Vec<f32>>,
    state: &BTreeMap<String, Vec<f32>>,
    seed: i32,
    step: i32,
) -> Result<(), String> {
    let (seed, step) = ([seed], [step]);
    exe.run(&mut |name| {
        if name == SEED {
            return Some(ArgRef::I32(&seed));
        }
        if name == STEP {
            return Some(ArgRef::I32(&step));
        }
        if let Some((_, col)) = batch.iter().find(|(n, _)| n == name) {
            return Some(match col {
                Column::F32(v) => ArgRef::F32(v),
                Column::I32(v) => ArgRef::I32(v),
            });
        }
        params.get(name).or_else(|| state.get(name)).map(|v| ArgRef::F32(v))
    })
}

/// The compiled batch size: the label's first axis.
fn batch_rows(c: &Compiled) -> usize {
    let label = c.model.inputs.iter().find(|i| i.is_label);
    label
        .and_then(|l| c.eval.arg(ArgKind::Input, &l.name))
        .map(|v| c.eval.ty(v).shape[0])
        .unwrap_or(1)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn mean(ms: &[Metrics]) -> Metrics {
    let rows: usize = ms.iter().map(|m| m.rows).sum();
    let w = |m: &Metrics| m.rows as f64 / rows.max(1) as f64;
    let loss = ms.iter().map(|m| m.loss * w(m)).sum();
    let accuracy = ms.iter().map(|m| m.accuracy.map(|a| a * w(m))).sum::<Option<f64>>();
    Metrics { loss, accuracy, rows }
}

/// The graphs a backend runs: the JIT runs the e-graph-optimized training and evaluation
/// steps; the interpreter, being the oracle, runs them as autodiff produced them.
fn for_backend(backend: Backend, train: Graph, eval: Graph) -> Result<(Graph, Graph), String> {
    match backend {
        Backend::Interpreter => Ok((train, eval)),
        Backend::Jit { .. } | Backend::Cuda { .. } => {
            let limits = mpc_compiler::opt::Limits::default();
            let (train, _) = mpc_compiler::opt::optimize(&train, &limits)?;
            let (eval, _) = mpc_compiler::opt::optimize(&eval, &limits)?;
            Ok((train, eval))
        }
    }
}
