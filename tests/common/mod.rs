//! Helpers shared by the root crate's tests (`mod common;` in each test file): running
//! the `mpc` binary, scratch directories, the example models, and (for the mutation
//! test) JIT-vs-interpreter comparison.
//!
//! In: arguments, names. Out: process outputs, paths, sources; every helper panics with
//! a message naming what failed, as a test assertion does.

// Each test file uses a different subset.
#![allow(dead_code)]

/// The runtime's JIT-vs-interpreter helpers, one copy for both crates.
#[path = "../../runtime/tests/common/jit.rs"]
pub mod jit;
pub mod parity;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `mpc` binary from the repository root; asserts it did not panic.
pub fn mpc(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run mpc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "mpc {args:?} panicked:\n{stderr}");
    out
}

/// The stdout of a successful `mpc` run (asserts exit code 0).
pub fn ok(args: &[&str]) -> String {
    let o = mpc(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "mpc {args:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

/// Every line of `out` parsed as JSON.
pub fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A fresh (emptied) scratch directory `<target tmp>/<test>/<name>`.
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A path as the `&str` a command line takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every `examples/*.mp`, sorted: (file stem, source). New files are picked up.
pub fn examples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples found");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Rows of the data set [`tiny_model`] writes.
pub const TINY_ROWS: usize = 8;

/// A small model with a token input, an f32 input and a label, quick to train, whose
/// train block runs `epochs` epochs.
pub fn tiny_source(epochs: usize) -> String {
    format!(
        "model Tiny {{
  dims {{ B = 4, T = 3 }}
  input tokens: i32[B, T] vocab 1000
  input x: f32[B, 2]
  label y: i32[B] classes 3
  let z = mean(embed(tokens, 4), axis: 1)
  loss cross_entropy(linear(concat(z, x), 3), y)
}}
train {{ optimizer adam(lr: 1e-2) epochs {epochs} seed 5 }}
"
    )
}

/// A scratch dir of `test` with `model.mp` ([`tiny_source`]) and a valid data set in
/// `data/` (`tokens.npy`, `x.npy`, `y.npy`, [`TINY_ROWS`] rows); returns both paths.
pub fn tiny_model(test: &str, name: &str, epochs: usize) -> (PathBuf, PathBuf) {
    use mpc_runtime::data::npy;
    let dir = scratch(test, name);
    let model = dir.join("model.mp");
    std::fs::write(&model, tiny_source(epochs)).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let rows = TINY_ROWS;
    let tokens: Vec<i32> = (0..rows * 3).map(|i| (i * 37 % 1000) as i32).collect();
    let x: Vec<f32> = (0..rows * 2).map(|i| i as f32 / 10.0).collect();
    let y: Vec<i32> = (0..rows).map(|i| (i % 3) as i32).collect();
    std::fs::write(data.join("tokens.npy"), npy::encode_i32(&[rows, 3], &tokens)).unwrap();
    std::fs::write(data.join("x.npy"), npy::encode_f32(&[rows, 2], &x)).unwrap();
    std::fs::write(data.join("y.npy"), npy::encode_i32(&[rows], &y)).unwrap();
    (model, data)
}
