//! A training session: parameters, optimizer state and step count of one model, and
//! the steps that update them.
//!
//! In: a compiled model (its training step and evaluation graphs) and batches of data.
//! Out: per-step loss and accuracy, updated parameters. The steps run on one
//! [`Engine`] chosen by a [`Backend`]: the Cranelift JIT (default) or CUDA, which run
//! them after e-graph optimization, or the reference interpreter, which runs them as
//! autodiff produced them; all give the same numbers (to rounding) from the same seed,
//! dropout masks included.
//!
//! A batch with fewer rows than the compiled batch size (the last partial batch) runs the
//! same compiled step, padded with rows that count for nothing (labels -1, weight 0 in
//! `@row_mask`) when the loss is a cross-entropy or an `mse`; a model with another loss
//! runs a step compiled for exactly that many rows (lowered again with the batch dim
//! changed, then cached). Either way losses and accuracies over all rows are exact.

pub use crate::backend::Backend;
use crate::backend::{Engine, Job, Outputs, StepKey, StepKind, Variables};
use crate::data::{Dataset, Tensor};
use crate::init;
use mpc_compiler::ir::ArgKind;
use mpc_compiler::pipeline::{self, Compiled, Steps};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::{Step, POSITIONS, ROW_MASK, SEED, STEP};
use mpc_compiler::specialize;
use mpc_compiler::tensor::TensorRef;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

#[path = "session/gradients.rs"]
mod gradients;

pub struct Session {
    pub compiled: Compiled,
    /// Parameters and optimizer state (`adam.m:<param>` ..., zero at the start). Read
    /// them through [`Session::variables`], which brings them back from a device.
    vars: Variables,
    /// Steps taken so far; the next step is number `step + 1` (Adam's t, dropout's key).
    pub step: i32,
    pub seed: u64,
    backend: Backend,
    engine: Box<dyn Engine>,
    /// Steps for batch sizes other than the compiled one (the last partial batch).
    other_rows: HashMap<usize, Steps>,
    /// The keys the engine has compiled.
    prepared: HashSet<StepKey>,
    /// A batch of graphs' capacities and its steps at the probe's (`pipeline::capacity_probe`),
    /// made once, on the first step prepared; `Some(None)` for other models.
    probe: Option<Option<(Vec<usize>, Steps)>>,
    /// Steps the engine compiled, training and evaluation (`--json` reports them).
    pub compiles: (usize, usize),
    /// `0..n-1` for the steps' [`POSITIONS`] input, as long as the step declares it.
    positions: Vec<i32>,
}

/// Loss and accuracy over some rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    pub loss: f64,
    /// Fraction of rows whose highest-scoring class is the label (classification only).
    pub accuracy: Option<f64>,
    /// Mean absolute error of the predictions against a float label (regression only).
    pub mae: Option<f64>,
    pub rows: usize,
}

impl Session {
    /// A session on the default backend (the JIT on every core).
    pub fn new(compiled: Compiled, seed: u64) -> Result<Session, String> {
        Session::with_backend(compiled, seed, Backend::default())
    }

    /// A session on `backend`, with the training and evaluation steps compiled now.
    pub fn with_backend(compiled: Compiled, seed: u64, backend: Backend) -> Result<Session, String> {
        Session::create(compiled, seed, backend, &[StepKind::Train, StepKind::Eval])
    }

    /// A session that trains one shard of data-parallel training (see
    /// [`crate::parallel`]): its gradient, update and evaluation steps compiled now.
    /// `compiled` is the model at the shard's rows, from the shard's first row.
    pub fn data_parallel(compiled: Compiled, seed: u64, backend: Backend) -> Result<Session, String> {
        Session::create(
            compiled,
            seed,
            backend,
            &[StepKind::Gradients, StepKind::Update, StepKind::Eval],
        )
    }

    fn create(compiled: Compiled, seed: u64, backend: Backend, kinds: &[StepKind]) -> Result<Session, String> {
        let shapes = specialize::params(&compiled.model, &compiled.dims)?;
        let state = compiled
            .train_step
            .args(ArgKind::State)
            .map(|(_, name, ty)| (name.to_string(), vec![0.0; ty.numel()]))
            .collect();
        let mut session = Session {
            vars: Variables {
                params: BTreeMap::new(),
                state,
                grads: BTreeMap::new(),
            },
            step: 0,
            seed,
            backend,
            engine: backend.engine()?,
            other_rows: HashMap::new(),
            prepared: HashSet::new(),
            compiles: (0, 0),
            probe: None,
            positions: Vec::new(),
            compiled,
        };
        // Positions do not depend on the batch: a partial batch's step declares as many.
        let declared = session.compiled.train_step.arg(ArgKind::Input, POSITIONS);
        if let Some(p) = declared {
            let n = session.compiled.train_step.ty(p).shape[0];
            session.positions = (0..n as i32).collect();
        }
        let rows = session.batch_size();
        // The parameters' draws (a tenth of the transformer's compile time) do not need
        // the steps: they run on a thread of their own while the engine compiles.
        let params = std::thread::scope(|scope| {
            let draws = scope.spawn(|| init::initialize(&shapes, seed));
            let prepared = session.prepare_all(kinds, rows);
            let params = draws.join().expect("the parameter initialization panicked");
            prepared.map(|()| params)
        })?;
        // Where a gradient step leaves its gradients (the JIT swaps its outputs in).
        if kinds.contains(&StepKind::Gradients) {
            session.vars.grads = params.iter().map(|(n, v)| (n.clone(), vec![0.0; v.len()])).collect();
        }
        session.vars.params = params;
        Ok(session)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Parameters and optimizer state, current (copied back from a device if needed).
    pub fn variables(&mut self) -> Result<&Variables, String> {
        self.engine.sync(&mut self.vars)?;
        Ok(&self.vars)
    }

    /// The parameters, current (see [`Session::variables`]).
    pub fn params(&mut self) -> Result<&BTreeMap<String, Vec<f32>>, String> {
        Ok(&self.variables()?.params)
    }

    /// Replaces the parameters (e.g. with a checkpoint's); the optimizer state stays.
    pub fn set_params(&mut self, params: BTreeMap<String, Vec<f32>>) -> Result<(), String> {
        self.engine.sync(&mut self.vars)?;
        self.vars.params = params;
        Ok(())
    }

    /// Replaces the optimizer state (a checkpoint's, to resume a run): the same entries,
    /// each as long as the session's.
    pub fn set_state(&mut self, state: BTreeMap<String, Vec<f32>>) -> Result<(), String> {
        self.engine.sync(&mut self.vars)?;
        for (name, values) in &self.vars.state {
            let given = state.get(name).map(Vec::len);
            if given != Some(values.len()) {
                return Err(format!(
                    "optimizer state '{name}' needs {} values, the given state has {}",
                    values.len(),
                    given.map_or("none".to_string(), |n| n.to_string())
                ));
            }
        }
        if let Some(extra) = state.keys().find(|k| !self.vars.state.contains_key(*k)) {
            return Err(format!("'{extra}' is not optimizer state of this model"));
        }
        self.vars.state = state;
        Ok(())
    }

    /// The optimizer state's entries and their parameters' shapes (what a checkpoint
    /// holds under `@optimizer/`).
    pub fn state_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.compiled
            .train_step
            .args(ArgKind::State)
            .map(|(_, name, ty)| (name.to_string(), ty.shape.clone()))
            .collect()
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
    fn rows_in(&self, batch: &[(String, Tensor)]) -> Result<usize, String> {
        let b = self.batch_size();
        // A padded batch of graphs says which graph slots are real.
        if let Some((_, Tensor::Float(mask))) = batch.iter().find(|(n, _)| n == ROW_MASK) {
            if mask.len() != b {
                return Err(format!("the batch has {} graph slots, the step {b}", mask.len()));
            }
            return Ok(mask.iter().filter(|&&m| m > 0.0).count());
        }
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
        let len = col.len();
        if len % per_row != 0 || len == 0 || len / per_row > b {
            return Err(format!(
                "column '{name}' has {len} elements: not 1 to {b} rows of {per_row}"
            ));
        }
        Ok(len / per_row)
    }

    /// Has the engine compile step `kind` for batches of `rows` rows (once); other batch
    /// sizes than the compiled one are lowered again first (cached).
    fn prepare(&mut self, kind: StepKind, rows: usize) -> Result<StepKey, String> {
        self.prepare_all(&[kind], rows)?;
        Ok(StepKey { kind, rows })
    }

    /// [`Session::prepare`] for several steps at once, which an engine may compile side
    /// by side (a session's training and evaluation steps).
    fn prepare_all(&mut self, kinds: &[StepKind], rows: usize) -> Result<(), String> {
        let todo: Vec<StepKind> = kinds
            .iter()
            .copied()
            .filter(|&kind| !self.prepared.contains(&StepKey { kind, rows }))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let own_rows = rows == self.batch_size();
        if !own_rows && !self.other_rows.contains_key(&rows) {
            let steps = pipeline::steps_for_rows(&self.compiled, rows)?;
            self.other_rows.insert(rows, steps);
        }
        // A batch of graphs: kernels that run over each batch's own node and edge counts.
        if own_rows && self.probe.is_none() {
            self.probe = Some(pipeline::capacity_probe(&self.compiled)?);
        }
        let (c, opt) = (&self.compiled, &self.compiled.model.train.optimizer);
        let steps = if own_rows { None } else { self.other_rows.get(&rows) };
        let probe = self.probe.as_ref().and_then(Option::as_ref).filter(|_| own_rows);
        let jobs: Vec<Job> = todo
            .iter()
            .map(|&kind| {
                let step = match steps {
                    Some(s) => step_in(kind, opt, s),
                    None => step_of(kind, opt, [&c.forward, &c.eval, &c.train_step]),
                };
                let dynamic = match probe {
                    Some((capacities, probe)) if kind != StepKind::Update => {
                        Some((step_in(kind, opt, probe), &capacities[..]))
                    }
                    _ => None,
                };
                Job {
                    key: StepKey { kind, rows },
                    step,
                    dynamic,
                }
            })
            .collect();
        self.engine.prepare_all(&jobs)?;
        for kind in todo {
            self.prepared.insert(StepKey { kind, rows });
            match kind {
                StepKind::Train | StepKind::Gradients | StepKind::Update => self.compiles.0 += 1,
                StepKind::Eval => self.compiles.1 += 1,
            }
        }
        Ok(())
    }

    /// Runs step `kind` on `batch` with the session's variables (a training step
    /// updates them) as step number `step`.
    fn run(&mut self, kind: StepKind, batch: &[(String, Tensor)], step: i32) -> Result<(usize, Outputs), String> {
        let rows = self.rows_in(batch)?;
        self.check_labels(batch)?;
        let filled;
        let batch = match self.pad_partial(batch, rows) {
            Some(full) => {
                filled = full;
                &filled[..]
            }
            None => batch,
        };
        let padded = batch.iter().any(|(n, _)| n == ROW_MASK);
        let key = self.prepare(kind, if padded { self.batch_size() } else { rows })?;
        let (seed, step) = ([self.seed as i32], [step]);
        let mut inputs: Vec<(&str, TensorRef)> = batch.iter().map(|(n, c)| (n.as_str(), c.view())).collect();
        inputs.push((SEED, TensorRef::Int(&seed)));
        inputs.push((STEP, TensorRef::Int(&step)));
        inputs.push((POSITIONS, TensorRef::Int(&self.positions)));
        // A full batch: every row counts.
        let all_rows = vec![1.0f32; self.batch_size()];
        if !padded {
            inputs.push((ROW_MASK, TensorRef::Float(&all_rows)));
        }
        let mut outputs = self.engine.run(key, &inputs, &mut self.vars)?;
        if let (true, Some(p)) = (padded, outputs.predictions.as_mut()) {
            // The empty graph slots' predictions are not the user's.
            let width = p.len() / self.batch_size().max(1);
            p.truncate(rows * width);
        }
        Ok((rows, outputs))
    }

    /// A partial batch of `rows` rows padded to the compiled batch size, so that it runs
    /// the same compiled step: every column with the batch axis gets rows of zeros (a
    /// label's rows -1, which the loss and accuracy skip), and `@row_mask` says which
    /// rows are real (a per-row `mse` averages over those). Only when the loss is one of
    /// those two, which padding then leaves exact; `None` otherwise (the batch runs a step
    /// compiled for its size), for a full batch, and for a batch of graphs (padded when
    /// assembled).
    fn pad_partial(&self, batch: &[(String, Tensor)], rows: usize) -> Option<Vec<(String, Tensor)>> {
        let (model, b) = (&self.compiled.model, self.batch_size());
        if rows >= b
            || !model.loss_ignores_padded_rows()
            || !model.graphs.is_empty()
            || batch.iter().any(|(n, _)| n == ROW_MASK)
        {
            return None;
        }
        let batch_dim = model.batch_dim.as_ref()?;
        let mut out = Vec::with_capacity(batch.len() + 1);
        for (name, column) in batch {
            let input = model.inputs.iter().find(|i| &i.name == name);
            let mut column = column.clone();
            if let Some(i) = input.filter(|i| i.ty.shape.first() == Some(batch_dim)) {
                let width = column.len() / rows.max(1);
                match &mut column {
                    Tensor::Float(v) => v.resize(b * width, 0.0),
                    Tensor::Int(v) => v.resize(b * width, if i.is_label { -1 } else { 0 }),
                }
            }
            out.push((name.clone(), column));
        }
        let mut mask = vec![1.0f32; rows];
        mask.resize(b, 0.0);
        out.push((ROW_MASK.to_string(), Tensor::Float(mask)));
        Some(out)
    }

    /// Class labels must lie in `[0, classes)`, or be -1 ("no label", ignored by the loss
    /// and accuracy). Loaders check files; this guards batches built in code.
    fn check_labels(&self, batch: &[(String, Tensor)]) -> Result<(), String> {
        for input in self.compiled.model.inputs.iter().filter(|i| i.is_label) {
            let (Some(classes), Some((_, Tensor::Int(labels)))) =
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
    fn correct(&self, predictions: &[f32], batch: &[(String, Tensor)], rows: usize) -> Option<(usize, usize)> {
        let label = self.label_name()?;
        let Some((_, Tensor::Int(labels))) = batch.iter().find(|(n, _)| n == label) else {
            return None;
        };
        // A padded batch's labels have more rows than its predictions.
        let labels = match batch.iter().any(|(n, _)| n == ROW_MASK) {
            true => &labels[..rows * (labels.len() / self.batch_size().max(1))],
            false => &labels[..],
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

    fn metrics(&self, loss: f64, predictions: Option<&[f32]>, batch: &[(String, Tensor)], rows: usize) -> Metrics {
        Metrics {
            loss: loss + 0.0, // -0 (no labeled rows) prints as 0
            accuracy: predictions
                .and_then(|p| self.correct(p, batch, rows))
                .filter(|&(_, labeled)| labeled > 0)
                .map(|(hits, labeled)| hits as f64 / labeled as f64),
            mae: predictions.and_then(|p| self.absolute_error(p, batch)),
            rows,
        }
    }

    /// Mean of `|prediction - label|` over the rows, when the label is a float column
    /// with one value per prediction (a padded batch's predictions are its real rows).
    fn absolute_error(&self, predictions: &[f32], batch: &[(String, Tensor)]) -> Option<f64> {
        let label = self.label_name()?;
        let Some((_, Tensor::Float(target))) = batch.iter().find(|(n, _)| n == label) else {
            return None;
        };
        let n = predictions.len();
        if n == 0 || n > target.len() {
            return None;
        }
        let sum: f64 = predictions
            .iter()
            .zip(target)
            .map(|(p, t)| (*p as f64 - *t as f64).abs())
            .sum();
        Some(sum / n as f64)
    }

    /// One training step on one batch (full or partial): forward, backward, optimizer
    /// update.
    pub fn train_step(&mut self, batch: &[(String, Tensor)]) -> Result<Metrics, String> {
        let step = self.step + 1;
        let (rows, out) = self.run(StepKind::Train, batch, step)?;
        self.step = step;
        Ok(self.metrics(out.loss, out.predictions.as_deref(), batch, rows))
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
    pub fn evaluate_batch(&mut self, batch: &[(String, Tensor)]) -> Result<Metrics, String> {
        let (rows, out) = self.run(StepKind::Eval, batch, self.step)?;
        Ok(self.metrics(out.loss, out.predictions.as_deref(), batch, rows))
    }

    /// The evaluation step's `predictions` output for one batch (full or partial): row
    /// after row, `None` when the loss scores no prediction.
    pub fn predict_batch(&mut self, batch: &[(String, Tensor)]) -> Result<Option<Vec<f32>>, String> {
        Ok(self.run(StepKind::Eval, batch, self.step)?.1.predictions)
    }

    /// Loss and accuracy on every row of `data` in evaluation mode (no dropout); the
    /// last partial batch included.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Metrics, String> {
        let b = self.batch_size();
        let order: Vec<usize> = (0..data.rows).collect();
        let all = order
            .chunks(b)
            .map(|chunk| self.evaluate_batch(&data.batch(chunk)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(mean(&all))
    }
}

/// The step of `kind` among a model's `[forward, eval, train]` steps for one batch
/// shape; the data-parallel halves split off the forward step
/// (`pipeline::gradient_step`, `pipeline::update_step`).
fn step_of<'a>(kind: StepKind, opt: &pipeline::Optimizer, [forward, eval, train]: [&'a Step; 3]) -> Cow<'a, Step> {
    match kind {
        StepKind::Train => Cow::Borrowed(train),
        StepKind::Eval => Cow::Borrowed(eval),
        StepKind::Gradients => Cow::Owned(pipeline::gradient_step(forward)),
        StepKind::Update => Cow::Owned(pipeline::update_step(forward, opt)),
    }
}

/// [`step_of`] among `steps`.
fn step_in<'a>(kind: StepKind, opt: &pipeline::Optimizer, steps: &'a Steps) -> Cow<'a, Step> {
    step_of(kind, opt, [&steps.forward, &steps.eval, &steps.train_step])
}

/// The compiled batch size: the label's first axis.
pub fn batch_rows(c: &Compiled) -> usize {
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

/// Row-weighted mean of batch metrics. A loss of no labeled rows is 0, never -0 (the
/// float sum of nothing), which would print as `-0.0000`.
pub fn mean(ms: &[Metrics]) -> Metrics {
    let rows: usize = ms.iter().map(|m| m.rows).sum();
    let w = |m: &Metrics| m.rows as f64 / rows.max(1) as f64;
    let loss = ms.iter().map(|m| m.loss * w(m)).sum::<f64>() + 0.0;
    let accuracy = ms.iter().map(|m| m.accuracy.map(|a| a * w(m))).sum::<Option<f64>>();
    let mae = ms.iter().map(|m| m.mae.map(|a| a * w(m))).sum::<Option<f64>>();
    Metrics {
        loss,
        accuracy,
        mae,
        rows,
    }
}
