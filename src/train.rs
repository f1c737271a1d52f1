//! `mpc train`: train a model on its default (seeded, synthetic) data and report the
//! loss and accuracy of every epoch, on the training rows and on held-out rows.
//!
//! The step runs on the reference interpreter for now; the compiled CPU backend will
//! replace it behind the same `Session`.

use crate::load::{fail, Loaded};
use crate::ModelArgs;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::data::defaults::default_dataset;
use mpc_runtime::session::{Metrics, Session};
use std::process::ExitCode;
use std::time::Instant;

pub struct TrainArgs<'a> {
    pub model: &'a ModelArgs,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
}

fn show(m: &Metrics) -> String {
    match m.accuracy {
        Some(a) => format!("loss {:.4}  accuracy {:.3}", m.loss, a),
        None => format!("loss {:.4}", m.loss),
    }
}

pub fn train(args: TrainArgs) -> Result<(), ExitCode> {
    let file = &args.model.file;
    let loaded = Loaded::compile(args.model)?;
    let config = loaded.compiled.model.train.clone();
    let seed = args.seed.unwrap_or(config.seed);
    let epochs = args.epochs.unwrap_or(config.epochs);
    let (train, held_out) =
        default_dataset(&loaded.compiled.model, &loaded.compiled.dims, seed).map_err(|e| fail(file, &e))?;
    let mut session = Session::new(loaded.compiled, seed).map_err(|e| fail(file, &e))?;
    println!(
        "training {} on {} synthetic rows ({} held out), batch {}, {} epochs, seed {seed} (reference interpreter)",
        session.compiled.model.name,
        train.rows,
        held_out.rows,
        session.batch_size(),
        epochs
    );
    let mut rng = SplitMix64::new(seed);
    for epoch in 1..=epochs {
        let start = Instant::now();
        let m = session.train_epoch(&train, &mut rng).map_err(|e| fail(file, &e))?;
        let h = session.evaluate(&held_out).map_err(|e| fail(file, &e))?;
        println!(
            "epoch {epoch}/{epochs}  train {}  held-out {}  {:.2} s",
            show(&m),
            show(&h),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
