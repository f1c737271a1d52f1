//! A run's checkpoints: written after every epoch by `mpc train --save`, read back by
//! `mpc train --resume`.
//!
//! In: the session (parameters, optimizer state, step count), the epochs done and the
//! data-order generator. Out: a checkpoint (`mpc_runtime::checkpoint`) that holds all of
//! them, so that a run resumed from it goes on bit for bit as if it had never stopped:
//! the same batches in the same order, the same dropout masks (keyed by seed and step),
//! the same Adam step count and moments. Writing is atomic, so a run killed while
//! saving leaves the previous epoch's checkpoint whole.

use crate::load::error;
use crate::ModelArgs;
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize::ConcreteParam;
use mpc_compiler::CheckedModel;
use mpc_runtime::checkpoint::{self, Meta, Progress};
use mpc_runtime::session::Session;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A checkpoint to resume from, its metadata read before compiling (its dims and seed
/// decide what is compiled).
pub struct Resume {
    pub path: PathBuf,
    pub meta: Meta,
    pub progress: Progress,
}

impl Resume {
    /// Reads the checkpoint's metadata; one written without a run's progress (by another
    /// tool, or as `--init` weights) cannot be resumed, and says what can be done instead.
    pub fn read(path: &Path) -> Result<Resume, ExitCode> {
        let meta = checkpoint::read_meta(path).map_err(|e| error(&e))?;
        let Some(progress) = meta.progress else {
            return Err(error(&format!(
                "{}: not a checkpoint of a run (it records no epoch or data order: it was not written by \
                 `mpc train --save`); --init starts from its parameters",
                path.display()
            )));
        };
        Ok(Resume {
            path: path.to_path_buf(),
            meta,
            progress,
        })
    }

    /// The dims to compile `m` with: the checkpoint's (see `run::checkpoint_dims`).
    pub fn dims(&self, model_args: &ModelArgs, m: &CheckedModel) -> Result<Vec<(String, usize)>, String> {
        crate::run::checkpoint_dims(&self.meta, &self.path, model_args, m)
    }

    /// The data order where the run stopped.
    pub fn data_order(&self) -> SplitMix64 {
        SplitMix64::new(self.progress.data_order)
    }

    /// Puts the checkpoint's parameters, optimizer state and step count into `session`.
    pub fn restore(&self, session: &mut Session, shapes: &[ConcreteParam]) -> Result<(), ExitCode> {
        let (params, state, _) =
            checkpoint::load_run(&self.path, shapes, &session.state_shapes()).map_err(|e| error(&e))?;
        let at = |e: String| error(&format!("{}: {e}", self.path.display()));
        session.set_params(params).map_err(at)?;
        session.set_state(state).map_err(at)?;
        session.step = self.meta.step;
        Ok(())
    }
}

/// Writes the run's checkpoint after `epoch` epochs: parameters, optimizer state, step,
/// and the data order `rng` will continue with.
pub fn save(
    path: &Path,
    session: &mut Session,
    shapes: &[ConcreteParam],
    dims: &BTreeMap<String, usize>,
    epoch: usize,
    rng: &SplitMix64,
) -> Result<(), String> {
    let meta = Meta {
        model: session.compiled.model.name.clone(),
        step: session.step,
        seed: session.seed,
        dims: dims.clone(),
        progress: Some(Progress {
            epoch,
            data_order: rng.state(),
        }),
    };
    let vars = session.variables()?;
    checkpoint::save_run(path, &vars.params, &vars.state, shapes, &meta)
}
