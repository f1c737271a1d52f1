//! `mpirun -np 2 mpc train`: data-parallel training equals one process on the same
//! batches, two runs give the same bits, and a rank that fails stops every rank with
//! one error line and no hang.
//!
//! Needs an `mpc` built with the `mpi` feature (`cargo test --features mpi`) and
//! `mpirun` (Open MPI) on PATH; without them each test says it skipped, unless
//! `MPC_REQUIRE_MPI=1` (as `.ci/run` sets), which makes that a failure.
//!
//! Tolerance: every epoch's training and held-out loss, accuracy and MAE within 1e-5
//! relative of the single process, and the parameters within 1e-5 absolute after the
//! run: the sum of two half-batch gradients reassociates the one-process sum, and Adam
//! carries the rounding differences from step to step.

mod common;

use common::{json_lines, s, scratch};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether the MPI tests can run here; says why not (or fails when they must run).
fn mpi_ready(test: &str) -> bool {
    let mpirun = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = match (cfg!(feature = "mpi"), mpirun) {
        (true, true) => return true,
        (false, _) => "mpc was built without the mpi feature (cargo test --features mpi)",
        (true, false) => "mpirun is not on PATH (apt-get install openmpi-bin)",
    };
    assert!(
        std::env::var("MPC_REQUIRE_MPI").is_err(),
        "{test}: MPC_REQUIRE_MPI is set, but {why}"
    );
    eprintln!("{test}: skipped: {why}");
    false
}

/// A run that takes longer than this is taken to hang.
const HANG: Duration = Duration::from_secs(180);

/// `mpirun` with `ranks`, each group of ranks with its own arguments (`:` between
/// them), from the repository root; killed and failed after [`HANG`].
fn mpirun(groups: &[(usize, Vec<&str>)]) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-q"]);
    for (i, (ranks, args)) in groups.iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", &ranks.to_string(), env!("CARGO_BIN_EXE_mpc")])
            .args(args);
    }
    let mut child = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mpirun");
    let started = Instant::now();
    while child.try_wait().expect("wait for mpirun").is_none() {
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("mpirun {groups:?} ran for more than {HANG:?}: a rank hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("mpirun output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a rank panicked:\n{stderr}");
    out
}

fn succeeded(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn params(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with('@'))
        .map(|(name, t)| {
            let values = t
                .data()
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, values)
        })
        .collect()
}

fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

fn close(a: &Value, b: &Value, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{what}: {x} against {y}"),
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// Trains `model` in one process and on 2 ranks, twice; asserts the 2-rank runs equal
/// the one process (see the tolerance above) and each other, bit for bit.
fn two_ranks_equal_one_process(test: &str, model: &str, epochs: &str) {
    if !mpi_ready(test) {
        return;
    }
    let dir = scratch("distributed", test);
    let saves = ["one", "two", "again"].map(|n| dir.join(format!("{n}.safetensors")));
    let args = |save: &Path| -> Vec<String> {
        ["train", model, "--epochs", epochs, "--json", "--save", s(save)]
            .map(String::from)
            .to_vec()
    };
    let [a0, a1, a2] = [0, 1, 2].map(|i| args(&saves[i]));
    let one = json_lines(&common::ok(&refs(&a0)));
    let two = json_lines(&succeeded(&mpirun(&[(2, refs(&a1))])));
    let again = json_lines(&succeeded(&mpirun(&[(2, refs(&a2))])));
    assert_eq!(one.len(), two.len(), "{two:?}");
    for (a, b) in two.iter().zip(&one) {
        for key in [
            "loss",
            "accuracy",
            "mae",
            "eval_loss",
            "eval_accuracy",
            "eval_mae",
            "steps",
            "epoch",
        ] {
            close(&a[key], &b[key], &format!("{test}: {key} of {a}"));
        }
    }
    let (p1, p2) = (params(&saves[0]), params(&saves[1]));
    assert_eq!(p1.keys().collect::<Vec<_>>(), p2.keys().collect::<Vec<_>>());
    let worst = p1
        .values()
        .flatten()
        .zip(p2.values().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{test}: 2 ranks against 1 process: largest parameter difference {worst:e}");
    assert!(worst <= 1e-5, "{test}: parameters differ by up to {worst}");
    // Two 2-rank runs: the same bits (checkpoints, and every printed number).
    assert_eq!(std::fs::read(&saves[1]).unwrap(), std::fs::read(&saves[2]).unwrap());
    let untimed = |v: &Value| {
        let mut v = v.clone();
        let o = v.as_object_mut().unwrap();
        o.remove("seconds");
        o.remove("step_ms");
        o.remove("checkpoint");
        v
    };
    assert_eq!(
        two.iter().map(untimed).collect::<Vec<_>>(),
        again.iter().map(untimed).collect::<Vec<_>>()
    );
}

#[test]
fn two_ranks_train_the_text_classifier_as_one_process() {
    // Shuffled batches, dropout (each rank draws its rows' masks of the whole batch), Adam.
    two_ranks_equal_one_process("text", "examples/text_classifier.mp", "2");
}

#[test]
fn a_two_rank_run_resumes_bit_for_bit() {
    if !mpi_ready("resume") {
        return;
    }
    let dir = scratch("distributed", "resume");
    let (whole, parted) = (dir.join("whole.safetensors"), dir.join("parted.safetensors"));
    let model = "examples/text_classifier.mp";
    succeeded(&mpirun(&[(
        2,
        vec!["train", model, "--epochs", "2", "--save", s(&whole)],
    )]));
    succeeded(&mpirun(&[(
        2,
        vec!["train", model, "--epochs", "1", "--save", s(&parted)],
    )]));
    let resumed = [
        "train",
        model,
        "--epochs",
        "2",
        "--resume",
        s(&parted),
        "--save",
        s(&parted),
    ];
    succeeded(&mpirun(&[(2, resumed.to_vec())]));
    assert!(std::fs::read(&whole).unwrap() == std::fs::read(&parted).unwrap());
}

#[test]
fn two_ranks_train_batches_of_graphs_as_one_process() {
    // Batches of molecules split by graphs; the last batch of each epoch is partial.
    two_ranks_equal_one_process("molecules", "examples/molecules.mp", "1");
}

/// The lines of `out`'s stderr that mpc wrote (mpirun's own notices aside).
fn error_lines(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_rank_with_bad_data_stops_every_rank_with_one_error_line() {
    if !mpi_ready("bad data") {
        return;
    }
    // Rank 1's copy of the data is cut short (as on a machine whose copy is broken).
    let bad = scratch("distributed", "bad");
    for entry in std::fs::read_dir("examples/data/molecules").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, bad.join(path.file_name().unwrap())).unwrap();
        }
    }
    let x = std::fs::read(bad.join("x.npy")).unwrap();
    std::fs::write(bad.join("x.npy"), &x[..1000]).unwrap();
    let good = [
        "train",
        "examples/molecules.mp",
        "--epochs",
        "1",
        "--data",
        "examples/data/molecules",
    ];
    let mut broken = good.to_vec();
    broken[5] = s(&bad);
    let out = mpirun(&[(1, good.to_vec()), (1, broken)]);
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("rank 1: error: ") && errors[0].contains("x.npy") && errors[0].contains("truncated"),
        "{errors:?}"
    );
    // Rank 0 did not start training alone.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("epoch 1/1"));
}

#[test]
fn ranks_that_disagree_or_cannot_split_refuse_with_one_error_line() {
    if !mpi_ready("disagree") {
        return;
    }
    let same = ["train", "examples/molecules.mp", "--epochs", "1"];
    let other_seed = [&same[..], &["--seed", "3"]].concat();
    let out = mpirun(&[(1, same.to_vec()), (1, other_seed)]);
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(
        errors,
        ["error: rank 1's model, options, data or starting parameters differ from rank 0's"],
    );
    // One graph trained whole cannot be split over ranks.
    let out = mpirun(&[(2, vec!["train", "examples/gat.mp", "--epochs", "1"])]);
    assert!(!out.status.success());
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("cannot be split over 2 ranks"), "{errors:?}");
}
