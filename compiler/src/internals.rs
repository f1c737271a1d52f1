//! The stages' modules: private to the compiler, re-exported here only for the crate's
//! own integration tests and benchmarks (no promise; hidden from the docs). The files
//! stay at `src/<stage>`; inside the crate they are `crate::<stage>` (see lib.rs).

#[path = "autodiff/mod.rs"]
pub mod autodiff;
#[path = "check/mod.rs"]
pub mod check;
#[path = "codegen/mod.rs"]
pub mod codegen;
#[path = "export/mod.rs"]
pub mod export;
#[path = "gradcheck.rs"]
pub mod gradcheck;
#[path = "lower.rs"]
pub mod lower;
#[path = "opt/mod.rs"]
pub mod opt;
#[path = "syntax/mod.rs"]
pub mod syntax;
