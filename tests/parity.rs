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

use common::{json_lines, ok, s, scratch};
use serde_json::Value;

const DIR: &str = "tests/fixtures/parity";

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{DIR}/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(what: &str, mpc: &[f64], torch: &[f64]) {
    assert_eq!(mpc.len(), torch.len(), "{what}");
    for (i, (a, b)) in mpc.iter().zip(torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
            "{what}[{i}]: mpc {a} vs PyTorch {b}\nmpc:     {mpc:?}\nPyTorch: {torch:?}"
        );
    }
}

/// `name`'s initial logits and 20-step loss curve on `data` against PyTorch's; returns
/// mpc's losses.
fn matches_pytorch(name: &str, data: &str) -> Vec<f64> {
    let model = format!("{DIR}/{name}.mp");
    let data = format!("{DIR}/{data}");
    let expected = expected(name);

    let dir = scratch("parity", name);
    let init = dir.join("init.safetensors");
    let preds = dir.join("logits.npy");
    ok(&["train", &model, "--data", &data, "--epochs", "0", "--save", s(&init)]);
    ok(&[
        "run",
        &model,
        "--weights",
        s(&init),
        "--data",
        &data,
        "--out",
        s(&preds),
    ]);
    let bytes = std::fs::read(&preds).unwrap();
    let array = mpc_runtime::data::npy::parse(&bytes).unwrap();
    let logits: Vec<f64> = (0..array.len()).map(|i| array.float(i).unwrap()).collect();
    close("initial logits", &logits, &floats(&expected["initial_logits"]));

    // One batch of every row per epoch: each epoch's loss is one step's.
    let out = ok(&["train", &model, "--data", &data, "--json"]);
    let losses: Vec<f64> = json_lines(&out)
        .iter()
        .filter(|l| l.get("epoch").is_some())
        .map(|l| l["loss"].as_f64().unwrap())
        .collect();
    close("losses", &losses, &floats(&expected["losses"]));
    losses
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
