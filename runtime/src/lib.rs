//! mpc-runtime: runs compiled models: parameter initialization, datasets and batching,
//! checkpoints, and the training loop.
//!
//! [`session::Session`] holds a model's variables (parameters and optimizer state) and
//! one [`backend::Engine`]: the reference interpreter, the Cranelift JIT or CUDA. Every
//! engine gets its steps from `mpc_compiler::pipeline` and takes the same named host
//! tensors (`mpc_compiler::tensor`), so the session has no per-backend code.

pub mod backend;
pub mod budget;
pub mod checkpoint;
pub mod data;
pub mod files;
pub mod init;
pub mod parallel;
pub mod sample;
pub mod session;
