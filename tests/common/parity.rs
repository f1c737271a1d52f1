//! Comparing mpc with a reference framework's fixture (`tests/fixtures/parity/<name>.json`,
//! made by `bench/parity.py` for PyTorch and `bench/parity_gat.py` for PyG): the
//! logits at mpc's initial parameters, and the loss of each full-batch training step.

use super::{json_lines, ok, s, scratch};
use serde_json::Value;

pub const DIR: &str = "tests/fixtures/parity";

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Every element within 1e-4 relative (absolute below 1e-2).
fn close(what: &str, who: &str, mpc: &[f64], reference: &[f64]) {
    assert_eq!(mpc.len(), reference.len(), "{what}");
    for (i, (a, b)) in mpc.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
            "{what}[{i}]: mpc {a} vs {who} {b}\nmpc: {mpc:?}\n{who}: {reference:?}"
        );
    }
}

/// `<DIR>/<name>.mp` on `<DIR>/<data>`: its initial logits (`mpc run` on the parameters
/// `mpc train --epochs 0` saves) and the losses of the train block's epochs, each one
/// full-batch step, agree with `<name>.json` made by `who`. Returns mpc's losses.
pub fn matches_reference(name: &str, data: &str, who: &str) -> Vec<f64> {
    let model = format!("{DIR}/{name}.mp");
    let data = format!("{DIR}/{data}");
    let text = std::fs::read_to_string(format!("{}/{DIR}/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();

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
    close("initial logits", who, &logits, &floats(&expected["initial_logits"]));

    let out = ok(&["train", &model, "--data", &data, "--json"]);
    let losses: Vec<f64> = json_lines(&out)
        .iter()
        .filter(|l| l.get("epoch").is_some())
        .map(|l| l["loss"].as_f64().unwrap())
        .collect();
    close("losses", who, &losses, &floats(&expected["losses"]));
    losses
}
