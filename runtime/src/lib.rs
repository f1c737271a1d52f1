//! mpc-runtime: executes compiled models: parameter initialization, datasets and
//! batching, and the training loop.
//!
//! Today the training step runs on the reference interpreter (`backend::interp`);
//! the Cranelift and CUDA backends plug in behind the same [`session::Session`].

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod init;
pub mod session;
