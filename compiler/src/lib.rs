//! mpc-compiler: from `.mp` source to a differentiated tensor-IR training step.
//!
//! Stages, each a module read top to bottom:
//! `syntax` (pest grammar -> AST with spans), `check` (names, dtypes, symbolic shapes,
//! parameters), `lower` (checked model -> tensor IR), `ir` (the IR, its builder and
//! printer), `interp` (reference interpreter, the oracle), `autodiff` (IR -> IR reverse
//! mode and optimizer update). `diag` renders errors for every stage.

pub mod autodiff;
pub mod check;
pub mod codegen;
pub mod diag;
pub mod gradcheck;
pub mod interp;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod pipeline;
pub mod schedule;
pub mod seeded;
pub mod signature;
pub mod specialize;
pub mod syntax;
pub mod tensor;
