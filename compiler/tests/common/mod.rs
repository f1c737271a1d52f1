//! Helpers shared by the compiler's tests (`mod common;` in each test file): the example
//! models (paths, or names and sources), and their dims shrunk for the f64 interpreter
//! and finite differences.
//!
//! In: nothing (the `examples/` folder). Out: paths, sources, dim overrides.

// Each test file uses a different subset.
#![allow(dead_code)]

use std::path::PathBuf;

/// Every `examples/*.mp`, sorted.
pub fn example_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// Overrides shrinking every dim whose default is above 8 (batch, sequence, graph sizes)
/// to 8; literal sizes in the model (such as the fusion example's 3x32x32 image) stay.
pub fn small_dims(src: &str, what: &str) -> Vec<(String, usize)> {
    let (_, model) = mpc_compiler::pipeline::check(src).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    model
        .dims
        .iter()
        .filter_map(|d| d.default.map(|v| (d.name.clone(), v.min(8))))
        .collect()
}

/// Every example as (name, source), sorted by name.
pub fn examples() -> Vec<(String, String)> {
    example_files()
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}
