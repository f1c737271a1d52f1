//! Default data for models the synthetic tasks cannot serve is an error naming why, not
//! a panic or an allocation the size of the label space.

use mpc_compiler::pipeline::compile;
use mpc_runtime::data::defaults::default_dataset;

fn token_model(vocab: u64, classes: u64) -> String {
    format!(
        "model Tiny {{
  dims {{ B = 4, T = 3 }}
  input tokens: i32[B, T] vocab {vocab}
  label y: i32[B] classes {classes}
  loss cross_entropy(linear(mean(embed(tokens, 4), axis: 1), {classes}), y)
}}
train {{ optimizer adam(lr: 1e-2) epochs 1 seed 5 }}
"
    )
}

fn default_data(vocab: u64, classes: u64) -> Result<(), String> {
    let c = compile(&token_model(vocab, classes), &[]).unwrap_or_else(|d| panic!("{d:?}"));
    default_dataset(&c.model, &c.dims, 1).map(|_| ())
}

#[test]
fn more_classes_than_token_ids_is_an_error() {
    for (vocab, classes) in [(1, 2), (4, 8)] {
        let err = default_data(vocab, classes).unwrap_err();
        assert!(err.contains(&format!("vocabulary has {vocab}")), "{err}");
    }
}

#[test]
fn a_huge_class_count_is_an_error_not_an_allocation() {
    let err = default_data(10_000, 2_000_000_000).unwrap_err();
    assert!(err.contains("2000000000 classes are more than"), "{err}");
}

#[test]
fn models_within_the_limits_get_data() {
    default_data(4, 4).unwrap();
    default_data(10_000, 2).unwrap();
}
