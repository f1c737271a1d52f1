//! A training session: parameters, optimizer state and step count of one model, and
//! the steps that update them.
//!
//! In: a compiled model (its training step and evaluation graphs) and batches of data.
//! Out: per-step loss and accuracy, updated parameters. The graphs run on the reference
//! interpreter in f32; the native backends will run the same graphs behind this API.

use crate::data::{Column, Dataset};
use crate::init;
use mpc_compiler::autodiff::{SEED, STEP};
use mpc_compiler::driver::Compiled;
use mpc_compiler::interp::{self, Args, Value};
use mpc_compiler::ir::{ArgKind, Graph};
use mpc_compiler::lower;
use mpc_compiler::seeded::SplitMix64;
use std::collections::BTreeMap;

pub struct Session {
    pub compiled: Compiled,
    pub params: BTreeMap<String, Vec<f32>>,
    /// Optimizer state by state-argument name (`adam.m:<param>` ...), zero at the start.
    pub state: BTreeMap<String, Vec<f32>>,
    /// Steps taken so far; the next step is number `step + 1` (Adam's t, dropout's key).
    pub step: i32,
    pub seed: u64,
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
    pub fn new(compiled: Compiled, seed: u64) -> Result<Session, String> {
        let params = init::initialize(&lower::params(&compiled.model, &compiled.dims)?, seed);
        let state = compiled
            .train_step
            .args(ArgKind::State)
            .map(|(_, name, ty)| (name.to_string(), vec![0.0; ty.numel()]))
            .collect();
        Ok(Session {
            compiled,
            params,
            state,
            step: 0,
            seed,
        })
    }

    /// Rows per batch: the size of the label's first axis.
    pub fn batch_size(&self) -> usize {
        let label = self.compiled.model.inputs.iter().find(|i| i.is_label);
        label
            .and_then(|l| self.compiled.eval.arg(ArgKind::Input, &l.name))
            .map(|v| self.compiled.eval.ty(v).shape[0])
            .unwrap_or(1)
    }

    fn label_name(&self) -> Option<&str> {
        self.compiled
            .model
            .inputs
            .iter()
            .find(|i| i.is_label)
            .map(|i| i.name.as_str())
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
            args.insert(name.to_string(), Value::Float(self.params[name].clone()));
        }
        for (_, name, _) in graph.args(ArgKind::State) {
            args.insert(name.to_string(), Value::Float(self.state[name].clone()));
        }
        args.insert(SEED.into(), Value::Int(vec![self.seed as i32]));
        args.insert(STEP.into(), Value::Int(vec![step]));
        args
    }

    /// Rows whose prediction's arg-max equals the label.
    fn correct(&self, predictions: &[f32], batch: &[(String, Column)]) -> Option<usize> {
        let label = self.label_name()?;
        let Some((_, Column::I32(labels))) = batch.iter().find(|(n, _)| n == label) else {
            return None;
        };
        let classes = predictions.len() / labels.len().max(1);
        if classes < 2 {
            return None;
        }
        let hits = predictions
            .chunks(classes)
            .zip(labels)
            .filter(|(row, &l)| argmax(row) == l as usize)
            .count();
        Some(hits)
    }

    /// One training step on one batch: forward, backward, optimizer update.
    pub fn train_step(&mut self, batch: &[(String, Column)]) -> Result<Metrics, String> {
        let step = self.step + 1;
        let outputs = interp::run(
            &self.compiled.train_step,
            &self.args(&self.compiled.train_step, batch, step),
        )
        .map_err(|e| e.to_string())?;
        let mut metrics = Metrics {
            loss: f64::NAN,
            accuracy: None,
            rows: self.batch_size(),
        };
        for (name, value) in outputs {
            if let Some(p) = name.strip_prefix("param:") {
                self.params.insert(p.to_string(), value.floats().to_vec());
            } else if let Some(s) = name.strip_prefix("state:") {
                self.state.insert(s.to_string(), value.floats().to_vec());
            } else if name == "loss" {
                metrics.loss = value.floats()[0] as f64;
            } else if name == "predictions" {
                metrics.accuracy = self
                    .correct(value.floats(), batch)
                    .map(|c| c as f64 / metrics.rows as f64);
            }
        }
        self.step = step;
        Ok(metrics)
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

    /// Loss and accuracy on `data` in evaluation mode (no dropout), over full batches.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metrics, String> {
        let b = self.batch_size();
        let order: Vec<usize> = (0..data.rows).collect();
        let mut all = Vec::new();
        for chunk in order.chunks_exact(b) {
            let batch = data.batch(chunk);
            let outputs = interp::run(&self.compiled.eval, &self.args(&self.compiled.eval, &batch, self.step))
                .map_err(|e| e.to_string())?;
            let loss = outputs
                .iter()
                .find(|(n, _)| n == "loss")
                .map(|(_, v)| v.floats()[0] as f64)
                .unwrap_or(f64::NAN);
            let accuracy = outputs
                .iter()
                .find(|(n, _)| n == "predictions")
                .and_then(|(_, v)| self.correct(v.floats(), &batch))
                .map(|c| c as f64 / b as f64);
            all.push(Metrics {
                loss,
                accuracy,
                rows: b,
            });
        }
        Ok(mean(&all))
    }
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
