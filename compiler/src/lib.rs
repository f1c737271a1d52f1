//! mpc-compiler: from `.mp` source to a training step compiled for the CPU or a GPU.
//!
//! # The API
//!
//! [`pipeline`] is the compiler: every pass by name, in order, and the only code that
//! runs them in sequence (the module doc lists them with their `--emit` stages). What
//! crosses the boundary: [`CheckedModel`] (a model's inputs, dims, parameters and train
//! settings, which data loaders validate against), [`specialize`] (dim values and
//! parameter shapes), [`ir`] (step graphs), [`signature`] (what a step's arguments and
//! outputs are), [`tensor`] (host tensors), [`schedule`] (the kernel programs engines
//! run), [`diag`] (diagnostics and their rendering), [`memory`] (what a
//! run needs in bytes, before it allocates), [`interp`] (the reference
//! interpreter, the oracle) and [`seeded`] (the host RNG).
//!
//! # Internals
//!
//! The stages themselves (`syntax`, `check`, `lower`, `autodiff`, `opt`, `codegen`,
//! `export`, `gradcheck`) are private. [`internals`] re-exports them for this crate's own tests
//! and benchmarks only: no promise, hidden from the docs, and the runtime and the CLI do
//! not use it (`tests/api_boundary.rs` checks).

pub mod diag;
mod dot;
pub mod interp;
pub mod ir;
pub mod memory;
pub mod pipeline;
pub mod schedule;
pub mod seeded;
pub mod signature;
pub mod specialize;
pub mod tensor;

pub use check::CheckedModel;

/// The stages' modules, for the compiler's own tests and benchmarks (not an API).
#[doc(hidden)]
pub mod internals;
use internals::{autodiff, check, codegen, export, lower, opt, syntax};
