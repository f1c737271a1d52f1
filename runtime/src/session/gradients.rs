//! A session's half of a data-parallel training step (see [`crate::parallel`]).
//!
//! In: this rank's shard of a batch and its share of the batch's rows. Out: the
//! gradient buffer ([`GradientLayout`]) for the ranks' sum; then, from the summed
//! buffer, the optimizer update (the same on every rank, so the parameters stay equal)
//! and the batch's metrics.

use super::{Metrics, Session};
use crate::backend::StepKind;
use crate::data::Tensor;
use crate::parallel::{GradientLayout, Tail};
use mpc_compiler::signature::Role;
use mpc_compiler::tensor::TensorRef;

impl Session {
    /// Where each gradient and metric lies in the buffer summed over `ranks` ranks.
    pub fn gradient_layout(&self, ranks: usize) -> GradientLayout {
        let params = &self.compiled.forward.signature.params;
        GradientLayout::new(params.iter().map(|(name, ty)| (name.clone(), ty.numel())), ranks)
    }

    /// Forward and backward on `shard` (rows of a batch, as `Session::train_step` takes
    /// them), as the training step numbered `self.step + 1`: into `buf`, its gradients
    /// times `share` (the shard's rows over the batch's), then its metric sums, laid out
    /// by `layout`. The session's parameters, state and step stay as they were.
    pub fn shard_gradients(
        &mut self,
        shard: &[(String, Tensor)],
        share: f64,
        layout: &GradientLayout,
        buf: &mut Vec<f32>,
    ) -> Result<(), String> {
        let (rows, out) = self.run(StepKind::Gradients, shard, self.step + 1)?;
        // Reused from step to step: a fresh buffer of this size costs page faults.
        buf.resize(layout.len, 0.0);
        for (name, first, len) in &layout.params {
            let Some(g) = self.vars.grads.get(name).filter(|g| g.len() == *len) else {
                return Err(format!("the gradient step left no gradient of '{name}'"));
            };
            let share = share as f32;
            for (b, g) in buf[*first..first + len].iter_mut().zip(g) {
                *b = g * share;
            }
        }
        buf[layout.tail..].fill(0.0);
        let predictions = out.predictions.as_deref();
        let mut tail = |t: Tail, v: f64| buf[layout.at(t)] = v as f32;
        tail(Tail::Loss, out.loss * share);
        if let Some((hits, labeled)) = predictions.and_then(|p| self.correct(p, shard, rows)) {
            tail(Tail::Hits, hits as f64);
            tail(Tail::Labeled, labeled as f64);
        }
        if let (Some(p), Some(mae)) = (predictions, predictions.and_then(|p| self.absolute_error(p, shard))) {
            tail(Tail::AbsError, mae * p.len() as f64);
            tail(Tail::Predicted, p.len() as f64);
        }
        tail(Tail::Rows, rows as f64);
        Ok(())
    }

    /// The optimizer update from `summed` (every rank's [`Session::shard_gradients`]
    /// added), as training step `self.step + 1`; returns the batch's metrics.
    pub fn apply_gradients(&mut self, summed: &[f32], layout: &GradientLayout) -> Result<Metrics, String> {
        let step = [self.step + 1];
        let names: Vec<String> = layout
            .params
            .iter()
            .map(|(p, _, _)| Role::Gradient(p.clone()).output_name())
            .collect();
        let mut inputs: Vec<(&str, TensorRef)> = layout
            .params
            .iter()
            .zip(&names)
            .map(|((_, first, len), name)| (name.as_str(), TensorRef::Float(&summed[*first..first + len])))
            .collect();
        inputs.push((mpc_compiler::signature::STEP, TensorRef::Int(&step)));
        let key = self.prepare(StepKind::Update, self.batch_size())?;
        self.engine.run(key, &inputs, &mut self.vars)?;
        self.step = step[0];
        let at = |t: Tail| summed[layout.at(t)] as f64;
        Ok(Metrics {
            loss: at(Tail::Loss) + 0.0,
            accuracy: (at(Tail::Labeled) > 0.0).then(|| at(Tail::Hits) / at(Tail::Labeled)),
            mae: (at(Tail::Predicted) > 0.0).then(|| at(Tail::AbsError) / at(Tail::Predicted)),
            rows: at(Tail::Rows) as usize,
        })
    }
}
