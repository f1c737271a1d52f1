//! Replays the checked-in fuzz corpus: every file of `fuzz/corpus/<target>/` through
//! its harness function. Fails on a panic, and on any single input that takes longer
//! than [`PER_INPUT`] (a hang in the making). Clean errors are fine: most of the corpus
//! is inputs the compiler and readers must refuse (`MPC_FUZZ_VERBOSE=1` prints the first
//! line of each).

use mpc_fuzz_harness::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest one input may take (a debug build on a busy 2-core machine).
const PER_INPUT: Duration = Duration::from_secs(5);

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn replay(target: &str) {
    let f = TARGETS.iter().find(|(name, _)| *name == target).expect("a target").1;
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failures = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    let start = Instant::now();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| f(&bytes))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                refused += 1;
                if std::env::var_os("MPC_FUZZ_VERBOSE").is_some() {
                    let first = e.lines().next().unwrap_or_default();
                    eprintln!("{}: {first}", path.display());
                }
            }
            Err(e) => failures.push(format!("{}: panicked: {}", path.display(), panic_message(e))),
        }
        let dt = t.elapsed();
        if dt > PER_INPUT {
            failures.push(format!("{}: took {dt:?} (limit {PER_INPUT:?})", path.display()));
        }
    }
    eprintln!(
        "{target}: {} inputs in {:?}: {ok} accepted, {refused} refused cleanly",
        files.len(),
        start.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn model_source_corpus() {
    replay("model_source");
}

#[test]
fn npy_corpus() {
    replay("npy");
}

#[test]
fn csv_corpus() {
    replay("csv");
}

#[test]
fn safetensors_corpus() {
    replay("safetensors");
}

/// The valid inputs are accepted all the way (so the corpus starts from them): every
/// example model through the interpreter step, the seed checkpoint.
#[test]
fn valid_inputs_are_accepted() {
    mpc_fuzz_harness::safetensors(&mpc_fuzz_harness::checkpoint_seed()).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "mp") {
            let src = std::fs::read(&path).unwrap();
            mpc_fuzz_harness::model_source(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    mpc_fuzz_harness::model_source(mpc_fuzz_harness::CHECKPOINT_MODEL.as_bytes()).unwrap();
}
