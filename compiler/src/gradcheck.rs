//! Finite-difference gradient checks of IR graphs, in f64 with the reference interpreter.
//!
//! In: a forward graph with a scalar `loss` output, its arguments, and which parameter
//! entries to probe. Out: the largest disagreement between the autodiff gradient and
//! the central difference `(L(w + h) - L(w - h)) / 2h`, per parameter.

use crate::autodiff;
use crate::interp::{self, Args, Value};
use crate::ir::{ArgKind, Graph};
use crate::seeded::SplitMix64;

/// The worst entry of one parameter's check.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub param: String,
    pub index: usize,
    pub autodiff: f64,
    pub numeric: f64,
    /// `|a - n| / max(|a|, |n|, floor)`.
    pub error: f64,
}

fn loss_of(forward: &Graph, args: &Args<f64>) -> f64 {
    let out = interp::run(forward, args).expect("forward graph runs");
    let loss = out.iter().find(|(n, _)| n == "loss").expect("loss output");
    loss.1.floats()[0]
}

/// Checks d loss / d param for every parameter of `forward`, at `probes` entries per
/// parameter (all entries when it has fewer), chosen with `seed`: half among entries
/// with a nonzero autodiff gradient (for an embedding table most rows are unused and
/// their zero gradient is trivially right), half uniformly. Returns the worst entry of
/// each parameter.
pub fn check(forward: &Graph, args: &Args<f64>, probes: usize, seed: u64) -> Vec<Mismatch> {
    const H: f64 = 1e-6;
    const FLOOR: f64 = 1e-3;
    let with_grads = autodiff::with_gradients(forward);
    let outputs = interp::run(&with_grads, args).expect("gradient graph runs");
    let mut rng = SplitMix64::new(seed);
    let mut report = Vec::new();
    for (_, name, ty) in forward.args(ArgKind::Param) {
        let grad = &outputs
            .iter()
            .find(|(n, _)| *n == format!("grad:{name}"))
            .expect("grad output")
            .1;
        let n = ty.numel();
        let nonzero: Vec<usize> = (0..n).filter(|&i| grad.floats()[i] != 0.0).collect();
        let indices: Vec<usize> = if n <= probes {
            (0..n).collect()
        } else {
            let mut chosen = Vec::with_capacity(probes);
            if !nonzero.is_empty() {
                for _ in 0..probes / 2 {
                    chosen.push(nonzero[rng.below(nonzero.len() as u64) as usize]);
                }
            }
            while chosen.len() < probes {
                chosen.push(rng.below(n as u64) as usize);
            }
            chosen
        };
        let mut worst: Option<Mismatch> = None;
        for index in indices {
            let probe = |delta: f64| {
                let mut a = args.clone();
                let Some(Value::Float(w)) = a.get_mut(name) else {
                    panic!("parameter {name} missing")
                };
                w[index] += delta;
                loss_of(forward, &a)
            };
            let numeric = (probe(H) - probe(-H)) / (2.0 * H);
            let auto = grad.floats()[index];
            let error = (auto - numeric).abs() / auto.abs().max(numeric.abs()).max(FLOOR);
            if worst.as_ref().is_none_or(|w| error > w.error) {
                worst = Some(Mismatch {
                    param: name.to_string(),
                    index,
                    autodiff: auto,
                    numeric,
                    error,
                });
            }
        }
        report.extend(worst);
    }
    report
}
