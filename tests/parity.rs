//! Parity with PyTorch: the transformer building blocks (`embed(positions(..))`,
//! `layer_norm`, `linear(.., bias: false)`, `gelu(.., approximate: tanh)`) in
//! `tests/fixtures/parity/blocks.mp` and a post-norm encoder layer (`encoder.mp`, against
//! `nn.TransformerEncoderLayer`, exact gelu), two of them from `layers 2 { .. }`
//! (`encoder2.mp`, against `nn.TransformerEncoder(num_layers=2)`), one with a causal mask
//! (`decoder.mp`) and padded sequences (`padded.mp`: a key padding mask and masked mean
//! pooling), each against the same layers in PyTorch from mpc's initial
//! parameters (`bench/parity.py` made `<model>.json` and says how): the initial logits
//! and the loss of 20 full-batch Adam steps agree to 1e-4 relative.

mod common;

use common::parity::matches_reference;

/// `name`'s initial logits and 20-step loss curve on `data` against PyTorch's; returns
/// mpc's losses.
fn matches_pytorch(name: &str, data: &str) -> Vec<f64> {
    matches_reference(name, data, "PyTorch")
}

#[test]
fn transformer_blocks_match_pytorch() {
    matches_pytorch("blocks", "data");
}

#[test]
fn an_encoder_layer_with_self_attention_matches_pytorch() {
    matches_pytorch("encoder", "data");
}

#[test]
fn two_layers_from_a_layers_block_train_and_match_pytorch() {
    let losses = matches_pytorch("encoder2", "data");
    assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
}

#[test]
fn a_causal_layer_matches_pytorch() {
    matches_pytorch("decoder", "data");
}

#[test]
fn padding_masks_match_pytorch() {
    matches_pytorch("padded", "data_padded");
}
