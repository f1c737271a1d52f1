//! Execution backends behind [`crate::session::Session`].
//!
//! - the reference interpreter (`mpc_compiler::interp`), the oracle;
//! - [`jit`]: the graph scheduled into kernels (`mpc_compiler::schedule`), compiled with
//!   Cranelift (`mpc_compiler::codegen::cranelift`) and run on a [`pool::Pool`] of
//!   threads, temporaries in one arena planned by liveness;
//! - [`cuda`]: the same kernels rendered as PTX (`mpc_compiler::codegen::ptx`) and run on
//!   an NVIDIA GPU through cudarc, parameters resident on the device.

pub mod cuda;
pub mod jit;
pub mod pool;

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

/// The number of cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
