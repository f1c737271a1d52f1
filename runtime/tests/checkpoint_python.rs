//! Checkpoints written by Python's `safetensors` package load in mpc with the right
//! values and metadata; the same file checked against another model gives mpc's
//! one-line errors.
//!
//! `fixtures/python.safetensors` was written with safetensors 0.8.0 and numpy 2.4.6 by:
//!
//! ```python
//! import numpy as np
//! from safetensors.numpy import save_file
//! save_file(
//!     {
//!         "h.linear.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 4 - 0.5,
//!         "h.linear.bias": np.array([1.5, -2.0, 1e-3], dtype=np.float32),
//!     },
//!     "python.safetensors",
//!     metadata={"format": "mpc", "model": "Py", "step": "3", "seed": "7", "dims": "B=2,T=3"},
//! )
//! ```

use mpc_compiler::specialize::{ConcreteInit, ConcreteParam};
use mpc_runtime::checkpoint::{self, Meta};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python.safetensors")
}

fn param(name: &str, shape: &[usize]) -> ConcreteParam {
    ConcreteParam {
        name: name.into(),
        shape: shape.to_vec(),
        init: ConcreteInit::Normal { std: 1.0 },
    }
}

#[test]
fn python_checkpoint_loads_with_its_values_and_metadata() {
    let model = [param("h.linear.weight", &[2, 3]), param("h.linear.bias", &[3])];
    let (params, meta) = checkpoint::load(&fixture(), &model).unwrap();
    assert_eq!(params["h.linear.weight"], [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75]);
    assert_eq!(params["h.linear.bias"], [1.5, -2.0, 1e-3]);
    let expected = Meta {
        model: "Py".into(),
        step: 3,
        seed: 7,
        dims: BTreeMap::from([("B".to_string(), 2), ("T".to_string(), 3)]),
        progress: None,
    };
    assert_eq!(meta, expected);
    assert_eq!(checkpoint::read_meta(&fixture()).unwrap(), expected);
}

#[test]
fn python_checkpoint_against_another_model() {
    let path = fixture();
    let fails_with = |model: &[ConcreteParam], expected: &str| {
        let e = checkpoint::load(&path, model).unwrap_err();
        assert_eq!(e, format!("{}: {expected}", path.display()));
    };
    fails_with(
        &[param("h.linear.weight", &[3, 2]), param("h.linear.bias", &[3])],
        "parameter 'h.linear.weight' has shape [2, 3], the model's is [3, 2]",
    );
    fails_with(
        &[
            param("h.linear.weight", &[2, 3]),
            param("h.linear.bias", &[3]),
            param("o.linear.bias", &[1]),
        ],
        "missing parameter 'o.linear.bias' (shape [1])",
    );
    fails_with(
        &[param("h.linear.weight", &[2, 3])],
        "tensor 'h.linear.bias' is not a parameter of the model",
    );
}
