//! Helpers shared by the runtime's tests (`mod common;` in each test file): the text
//! classifier and its synthetic data, and the JIT-vs-interpreter comparison (`jit`).

// Each test file uses a different subset.
#![allow(dead_code)]

pub mod jit;

use mpc_runtime::data::synthetic::TokenTask;
use mpc_runtime::data::Dataset;

/// `examples/text_classifier.mp`.
pub const TEXT_CLASSIFIER: &str = include_str!("../../../examples/text_classifier.mp");

/// The text classifier's keyword task (vocab 10000, 2 classes, 20 keywords per class,
/// signal 0.3, seed 7): `rows` rows of `seq_len` tokens, columns `tokens` and `y`.
pub fn keyword_task(rows: usize, seq_len: usize) -> Dataset {
    TokenTask {
        rows,
        seq_len,
        vocab: 10000,
        classes: 2,
        keywords: 20,
        signal: 0.3,
        seed: 7,
    }
    .generate("tokens", "y")
}
