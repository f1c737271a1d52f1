//! Default datasets: what `mpc train` uses when no data is given.
//!
//! In: a checked model and its dim values. Out: a seeded synthetic dataset that fits the
//! model's declared inputs, with a held-out part, or an explanation of why the model
//! has no default. Today: models with one token input (`i32[B, T] vocab V`) and one
//! class label (`i32[B] classes C`) get the keyword task of [`super::synthetic`].

use super::synthetic::TokenTask;
use super::Dataset;
use mpc_compiler::check::CheckedModel;
use mpc_compiler::ir::DType;
use mpc_compiler::lower::{concrete, DimValues};

/// Rows in the default training set, and in its held-out set.
pub const TRAIN_ROWS: usize = 4096;
pub const HELD_OUT_ROWS: usize = 1024;

/// (training set, held-out set)
pub fn default_dataset(model: &CheckedModel, dims: &DimValues, seed: u64) -> Result<(Dataset, Dataset), String> {
    let features: Vec<_> = model.inputs.iter().filter(|i| !i.is_label).collect();
    let labels: Vec<_> = model.inputs.iter().filter(|i| i.is_label).collect();
    let unsupported = || {
        format!(
            "model '{}' has no default dataset: synthetic data is generated for one token input \
             (i32[B, T] vocab V) and one label (i32[B] classes C)",
            model.name
        )
    };
    let ([tokens], [label]) = (features.as_slice(), labels.as_slice()) else {
        return Err(unsupported());
    };
    let (Some(vocab), Some(classes)) = (tokens.vocab, label.classes) else {
        return Err(unsupported());
    };
    let shape = concrete(&tokens.ty.shape, dims)?;
    if tokens.ty.dtype != DType::I32 || shape.len() != 2 || label.ty.shape.len() != 1 {
        return Err(unsupported());
    }
    let keywords = (vocab / (classes * 4)).clamp(1, 20);
    let task = TokenTask {
        rows: TRAIN_ROWS + HELD_OUT_ROWS,
        seq_len: shape[1],
        vocab,
        classes,
        keywords,
        signal: 0.3,
        seed,
    };
    Ok(task.generate(&tokens.name, &label.name).split_tail(HELD_OUT_ROWS))
}
