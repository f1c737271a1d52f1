//! The front half of the pipeline as one call, for the command line and tests.
//!
//! In: source text. Out: the parsed program, the checked model, dim values and the IR
//! graphs (forward, evaluation, training step), or the diagnostics of the first stage
//! that failed. Later stages only run on a model the earlier ones accepted.

use crate::autodiff;
use crate::check::{self, CheckedModel};
use crate::diag::Diagnostic;
use crate::ir::Graph;
use crate::lower::{self, DimValues, Mode};
use crate::syntax::{self, ast::Program};

/// A model taken through every stage of the compiler front half.
pub struct Compiled {
    pub program: Program,
    pub model: CheckedModel,
    pub dims: DimValues,
    /// Forward pass with dropout active, outputs `loss` (and `predictions`).
    pub forward: Graph,
    /// Forward pass without dropout.
    pub eval: Graph,
    /// Forward, backward and optimizer update.
    pub train_step: Graph,
}

/// Parses and checks `src`.
pub fn check_source(src: &str) -> Result<(Program, CheckedModel), Vec<Diagnostic>> {
    let program = syntax::parse(src).map_err(|d| vec![d])?;
    let model = check::check(&program)?;
    Ok((program, model))
}

/// Runs every stage: parse, check, specialize dims, lower, differentiate.
pub fn compile(src: &str, dim_overrides: &[(String, usize)]) -> Result<Compiled, Vec<Diagnostic>> {
    let (program, model) = check_source(src)?;
    let dims = lower::dim_values(&model, dim_overrides)?;
    let at_model = |e: String| vec![Diagnostic::new(e, program.model.name.span, "in this model")];
    let forward = lower::lower(&model, &dims, Mode::Train).map_err(at_model)?;
    let eval = lower::lower(&model, &dims, Mode::Eval).map_err(at_model)?;
    let train_step = autodiff::training_step(&forward, &model.train.optimizer);
    Ok(Compiled {
        program,
        model,
        dims,
        forward,
        eval,
        train_step,
    })
}
