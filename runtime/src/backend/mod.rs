//! Execution engines behind [`crate::session::Session`], all with one interface.
//!
//! In: the steps of a model ([`Step`]: a graph and its typed signature), batches of
//! named host tensors, and the model's [`Variables`] (parameters and optimizer state).
//! Out: each step's loss and predictions; a training step leaves the new variables
//! behind. Three engines implement [`Engine`]:
//!
//! - [`interp::Interpreter`]: the reference interpreter runs the step graph as autodiff
//!   made it (the oracle: slow, obviously correct);
//! - [`jit::Jit`]: the graph optimized, scheduled into kernels and compiled by Cranelift
//!   (`pipeline::for_cpu`), run on a [`pool::Pool`] of threads, temporaries in one arena;
//! - [`cuda::Cuda`]: the same kernels as PTX (`pipeline::for_ptx`) on an NVIDIA GPU
//!   through cudarc, variables resident on the device.

mod arena;
pub mod cuda;
mod cuda_profile;
pub mod interp;
pub mod jit;
pub mod pool;

use mpc_compiler::signature::{Role, Step};
use mpc_compiler::tensor::{Tensor, TensorRef};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which engine runs the steps of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter (slow, obviously correct).
    Interpreter,
    /// Native code from Cranelift, on `threads` threads (results do not depend on it).
    Jit { threads: usize },
    /// PTX kernels on CUDA device `device` (see [`cuda::probe`]).
    Cuda { device: usize },
}

impl Default for Backend {
    /// The JIT on every core.
    fn default() -> Self {
        Backend::Jit {
            threads: default_threads(),
        }
    }
}

impl Backend {
    /// A new engine of this kind (CUDA: after probing for the driver and device).
    pub fn engine(self) -> Result<Box<dyn Engine>, String> {
        Ok(match self {
            Backend::Interpreter => Box::new(interp::Interpreter::default()),
            Backend::Jit { threads } => Box::new(jit::Jit::new(threads)),
            Backend::Cuda { device } => Box::new(cuda::Cuda::new(device)?),
        })
    }
}

/// The number of cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Which step of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Forward, backward and optimizer update.
    Train,
    /// Forward without dropout.
    Eval,
    /// Data-parallel training, first half: forward and backward, the gradients out.
    Gradients,
    /// Data-parallel training, second half: the optimizer update from summed gradients.
    Update,
}

/// A step compiled for one batch shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StepKey {
    pub kind: StepKind,
    /// Rows in the batch (the batch dim's value).
    pub rows: usize,
}

/// What persists across steps: parameters and optimizer state by argument name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Variables {
    pub params: BTreeMap<String, Vec<f32>>,
    pub state: BTreeMap<String, Vec<f32>>,
    /// d loss / d parameter from the last [`StepKind::Gradients`] step (data-parallel
    /// training; empty otherwise): an engine swaps or copies them in as it does new
    /// parameter values.
    pub grads: BTreeMap<String, Vec<f32>>,
}

impl Variables {
    pub fn get(&self, name: &str) -> Option<&Vec<f32>> {
        self.params.get(name).or_else(|| self.state.get(name))
    }

    /// Where the output of `role` goes: the variable it replaces.
    pub fn target(&mut self, role: &Role) -> Option<&mut Vec<f32>> {
        match role {
            Role::NewParam(p) => self.params.get_mut(p),
            Role::NewState(s) => self.state.get_mut(s),
            Role::Gradient(p) => self.grads.get_mut(p),
            Role::Loss | Role::Predictions => None,
        }
    }
}

/// What a step reports back to the host.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Outputs {
    /// The loss (NaN if the step has none).
    pub loss: f64,
    /// Row after row, when the loss scores predictions.
    pub predictions: Option<Vec<f32>>,
}

/// One step for an engine to compile: under `key`, and for a batch of graphs the same
/// step at other capacities and the capacities it runs at ([`Engine::prepare_dynamic`]).
pub struct Job<'a> {
    pub key: StepKey,
    pub step: Cow<'a, Step>,
    pub dynamic: Option<(Cow<'a, Step>, &'a [usize])>,
}

/// An execution engine: prepare a step for a shape, run it on named host tensors, read
/// the results back.
pub trait Engine {
    /// Compiles `step` under `key` (once: preparing a key again does nothing).
    fn prepare(&mut self, key: StepKey, step: &Step) -> Result<(), String>;

    /// As `prepare`, for a step over a batch of graphs compiled at `capacities` (its
    /// node and edge counts): an engine that can runs kernels over each batch's own
    /// counts (the input `@sizes`), told apart by `probe`, the same step at other
    /// capacities. Padding is inert, so running at the capacities is also right.
    fn prepare_dynamic(
        &mut self,
        key: StepKey,
        step: &Step,
        _probe: &Step,
        _capacities: &[usize],
    ) -> Result<(), String> {
        self.prepare(key, step)
    }

    /// Prepares every job (`prepare` or `prepare_dynamic`), one after the other unless
    /// the engine can do better.
    fn prepare_all(&mut self, jobs: &[Job]) -> Result<(), String> {
        for j in jobs {
            match &j.dynamic {
                Some((probe, capacities)) => self.prepare_dynamic(j.key, &j.step, probe, capacities)?,
                None => self.prepare(j.key, &j.step)?,
            }
        }
        Ok(())
    }

    /// Runs the prepared step `key` on `inputs` (every data argument: the batch's
    /// columns, `@seed`, `@step`) and `vars`. A training step's new parameter and state
    /// values replace the old ones: in `vars`, or where the engine keeps them until
    /// [`Engine::sync`]. A failed run (an index out of range) changes nothing.
    fn run(&mut self, key: StepKey, inputs: &[(&str, TensorRef)], vars: &mut Variables) -> Result<Outputs, String>;

    /// Makes `vars` current: an engine that keeps variables elsewhere (a GPU) copies
    /// them back. Before reading `vars` after training, e.g. to write a checkpoint.
    fn sync(&mut self, _vars: &mut Variables) -> Result<(), String> {
        Ok(())
    }
}

/// The loss and predictions among a step's outputs, found by role; `read` gives an
/// output's elements by graph output name.
fn read_outputs<'a>(step: &Step, read: impl Fn(&str) -> Option<&'a Tensor>) -> Outputs {
    let mut out = Outputs {
        loss: f64::NAN,
        predictions: None,
    };
    for (name, role) in &step.signature.outputs {
        match (role, read(name)) {
            (Role::Loss, Some(Tensor::Float(v))) => out.loss = v.first().map_or(f64::NAN, |&l| l as f64),
            (Role::Predictions, Some(Tensor::Float(v))) => out.predictions = Some(v.clone()),
            _ => {}
        }
    }
    out
}

/// Finds a step argument among the inputs and variables.
fn lookup<'a>(inputs: &[(&str, TensorRef<'a>)], vars: &'a Variables, name: &str) -> Option<TensorRef<'a>> {
    inputs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .or_else(|| vars.get(name).map(|v| TensorRef::Float(v)))
}
