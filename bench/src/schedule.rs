//! The timed schedule every side of the peer benchmark runs (`bench/common.py`'s
//! `run_schedule` is the Python twin), on a JIT session.
//!
//! In: a session and the batches to cycle through. Out: the timings and losses of:
//! the loss of the initial parameters on batch 0 in evaluation mode (deterministic: every
//! side must print the same number, a check of data and weight layout); the first
//! training step (batch 0, timed); steps 2..=`sanity` (losses recorded); `warmup` more
//! steps; `steps` timed training steps (batches in order, cycling); 10 warm-up and `eval`
//! timed inference batches.

use crate::timing::{median, ms, p10};
use mpc_runtime::data::Tensor;
use mpc_runtime::session::Session;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// How many steps of each phase.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    pub sanity: usize,
    pub warmup: usize,
    pub steps: usize,
    pub eval: usize,
}

/// Runs the schedule; returns its JSON fields (`first_step_ms`, `train_step_ms`,
/// `train_step_p10_ms`, `infer_ms`, `steps`, `init_eval_loss`, `sanity_losses`,
/// `last_loss`, `eval_loss`).
pub fn run(session: &mut Session, batches: &[Vec<(String, Tensor)>], n: Counts) -> Result<Map<String, Value>, String> {
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
    for _ in 1..n.sanity {
        losses.push(session.train_step(batch())?.loss);
    }
    for _ in 0..n.warmup {
        session.train_step(batch())?;
    }
    let mut train = Vec::with_capacity(n.steps);
    let mut last_loss = f64::NAN;
    for _ in 0..n.steps {
        let batch = batch();
        let t = Instant::now();
        last_loss = session.train_step(batch)?.loss;
        train.push(ms(t));
    }
    let steps_taken = session.step;

    for i in 0..10 {
        session.evaluate_batch(&batches[i % batches.len()])?;
    }
    let mut infer = Vec::with_capacity(n.eval);
    let mut eval_loss = f64::NAN;
    for i in 0..n.eval {
        let b = &batches[i % batches.len()];
        let t = Instant::now();
        eval_loss = session.evaluate_batch(b)?.loss;
        infer.push(ms(t));
    }

    let fields = json!({
        "first_step_ms": first_step_ms,
        "train_step_ms": median(train.clone()),
        "train_step_p10_ms": p10(train),
        "infer_ms": median(infer),
        "steps": steps_taken,
        "init_eval_loss": init_eval_loss,
        "sanity_losses": losses,
        "last_loss": last_loss,
        "eval_loss": eval_loss,
    });
    match fields {
        Value::Object(map) => Ok(map),
        _ => unreachable!("json! of an object literal"),
    }
}
