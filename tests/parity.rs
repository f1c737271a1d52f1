//! Parity with PyTorch: the transformer building blocks (`embed(positions(..))`,
//! `layer_norm`, `linear(.., bias: false)`, `gelu`) in `tests/fixtures/parity/blocks.mp`
//! and a post-norm encoder layer with `self_attention` (`encoder.mp`, against
//! `nn.MultiheadAttention`) with a causal mask (`decoder.mp`) and with padded sequences (`padded.mp`: a key padding
//! mask and masked mean pooling), each against the same layers in PyTorch from mpc's initial
//! parameters (`bench/parity.py` made `<model>.json` and says how): the initial logits
//! and the loss of 20 full-batch Adam steps agree to 1e-4 relative.

mod common;

use common::parity::matches_reference;

/// `name`'s initial logits and 20-step loss curve on `data` against PyTorch's.
fn matches_pytorch(name: &str, data: &str) {
    matches_reference(name, data, "PyTorch");
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
fn a_causal_layer_matches_pytorch() {
    matches_pytorch("decoder", "data");
}

#[test]
fn padding_masks_match_pytorch() {
    matches_pytorch("padded", "data_padded");
}
