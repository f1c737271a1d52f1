//! Bad data and bad checkpoints: each gets ONE line on stderr that names the file and the
//! place (`error: DIR/tokens.npy: row 2, column 1: token id 1000 is outside [0, 1000)
//! ...`), exit code 1, and no panic. And checkpoints are written atomically: a failed or
//! interrupted write leaves the previous checkpoint as it was.

mod common;

use common::{mpc, ok, s, scratch, stderr};
use mpc_runtime::data::npy;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROWS: usize = common::TINY_ROWS;

/// `dir/model.mp` (the tiny model, 2 epochs) and a valid data set in `dir/data`.
fn tiny(name: &str) -> (PathBuf, PathBuf) {
    common::tiny_model("data_errors", name, 2)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// `mpc train MODEL --data DATA --epochs 1` fails with exactly `expected` on one line.
fn train_fails_with(model: &Path, data: &Path, expected: &str) {
    let o = mpc(&["train", s(model), "--data", s(data), "--epochs", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert_eq!(err.trim_end(), expected);
}

#[test]
fn valid_data_trains() {
    let (model, data) = tiny("valid");
    let o = mpc(&["train", s(&model), "--data", s(&data), "--epochs", "1", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("\"steps\":2"), "{out}");
}

#[test]
fn token_id_out_of_range() {
    let (model, data) = tiny("token_npy");
    let mut tokens = vec![1i32; ROWS * 3];
    tokens[2 * 3 + 1] = 1000;
    write(&data.join("tokens.npy"), &npy::encode_i32(&[ROWS, 3], &tokens));
    let f = data.join("tokens.npy");
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: row 2, column 1: token id 1000 is outside [0, 1000) (vocab of input 'tokens')",
            f.display()
        ),
    );
}

#[test]
fn negative_token_id_in_csv() {
    let (model, data) = tiny("token_csv");
    std::fs::remove_file(data.join("tokens.npy")).unwrap();
    let mut csv = String::from("t0,t1,t2\n");
    for r in 0..ROWS {
        csv += if r == 3 { "1,-1,2\n" } else { "1,2,3\n" };
    }
    write(&data.join("tokens.csv"), csv.as_bytes());
    let f = data.join("tokens.csv");
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: line 5, field 2: token id -1 is outside [0, 1000) (vocab of input 'tokens')",
            f.display()
        ),
    );
}

#[test]
fn label_out_of_range() {
    let (model, data) = tiny("label");
    let mut y = vec![0i32; ROWS];
    y[5] = 3;
    write(&data.join("y.npy"), &npy::encode_i32(&[ROWS], &y));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: row 5: label 3 is outside [0, 3) (classes of label 'y')",
            data.join("y.npy").display()
        ),
    );
}

#[test]
fn wrong_dtype() {
    let (model, data) = tiny("dtype");
    write(&data.join("y.npy"), &npy::encode_f32(&[ROWS, 2], &[0.0; ROWS * 2]));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: expected i32 [rows], found <f4 [8, 2] (label 'y' is i32[B]; save integers, e.g. \
             a.astype(np.int32))",
            data.join("y.npy").display()
        ),
    );
    // Integers where floats are declared read exactly; one f32 cannot hold is located.
    let (model, data) = tiny("dtype_f32");
    let mut ints = [0; ROWS * 2];
    ints[7] = (1 << 24) + 1;
    write(&data.join("x.npy"), &npy::encode_i32(&[ROWS, 2], &ints));
    let o = mpc(&["train", s(&model), "--data", s(&data), "--epochs", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(
            "x.npy: row 3, column 1: integer 16777217 is not exact as f32 (magnitude above 2^24); save floats"
        ),
        "{err}"
    );
    ints[7] = 1 << 24;
    write(&data.join("x.npy"), &npy::encode_i32(&[ROWS, 2], &ints));
    ok(&["train", s(&model), "--data", s(&data), "--epochs", "1"]);
}

#[test]
fn wrong_shape() {
    let (model, data) = tiny("shape");
    write(&data.join("tokens.npy"), &npy::encode_i32(&[ROWS, 4], &[0; ROWS * 4]));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: expected i32 [rows, 3], found <i4 [8, 4] (input 'tokens' is i32[B, T], T = 3)",
            data.join("tokens.npy").display()
        ),
    );
    // A CSV line with the wrong number of values.
    let (model, data) = tiny("shape_csv");
    std::fs::remove_file(data.join("x.npy")).unwrap();
    write(&data.join("x.csv"), b"0.5,1\n0.25,2\n1\n0,0\n0,0\n0,0\n0,0\n0,0\n");
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: line 3: 1 value, expected 2 (input 'x' is f32[B, 2]: one sample of 2 values per line)",
            data.join("x.csv").display()
        ),
    );
}

#[test]
fn truncated_npy() {
    let (model, data) = tiny("truncated");
    let full = npy::encode_i32(&[ROWS, 3], &[1; ROWS * 3]);
    write(&data.join("tokens.npy"), &full[..full.len() - 10]);
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: truncated: header says 24 values, file holds 21",
            data.join("tokens.npy").display()
        ),
    );
    // Cut inside the header.
    write(&data.join("tokens.npy"), &full[..40]);
    let o = mpc(&["train", s(&model), "--data", s(&data), "--epochs", "1"]);
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("tokens.npy: truncated: the header is"), "{err}");
}

#[test]
fn missing_file_and_directory() {
    let (model, data) = tiny("missing");
    std::fs::remove_file(data.join("x.npy")).unwrap();
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: not found (input 'x' needs x.npy or x.csv)",
            data.join("x.npy").display()
        ),
    );
    std::fs::remove_file(data.join("y.npy")).unwrap();
    write(&data.join("x.npy"), &npy::encode_f32(&[ROWS, 2], &[0.0; ROWS * 2]));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: not found (label 'y' needs y.npy or y.csv)",
            data.join("y.npy").display()
        ),
    );
    let nowhere = data.join("nowhere");
    train_fails_with(
        &model,
        &nowhere,
        &format!(
            "error: {}: not found (--data names a directory of .npy or .csv files)",
            nowhere.display()
        ),
    );
}

#[test]
fn nan_and_infinity() {
    let (model, data) = tiny("nan");
    let mut x = vec![0.5f32; ROWS * 2];
    x[3] = f32::NAN;
    write(&data.join("x.npy"), &npy::encode_f32(&[ROWS, 2], &x));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: row 1, column 1: NaN (f32 data must be finite)",
            data.join("x.npy").display()
        ),
    );
    std::fs::remove_file(data.join("x.npy")).unwrap();
    let mut csv = String::new();
    for r in 0..ROWS {
        csv += if r == 6 { "-inf,1\n" } else { "0,1\n" };
    }
    write(&data.join("x.csv"), csv.as_bytes());
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: line 7, field 1: -inf (f32 data must be finite)",
            data.join("x.csv").display()
        ),
    );
}

#[test]
fn mismatched_row_counts() {
    let (model, data) = tiny("rows");
    write(&data.join("y.npy"), &npy::encode_i32(&[ROWS - 1], &[0; ROWS - 1]));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: 7 rows, but {} has 8 (every input and label needs one row per sample)",
            data.join("y.npy").display(),
            data.join("tokens.npy").display()
        ),
    );
}

#[test]
fn foreign_and_fortran_files() {
    let (model, data) = tiny("foreign");
    write(&data.join("x.npy"), b"PK\x03\x04 this is a zip file");
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: not a .npy file (it does not start with the magic \\x93NUMPY)",
            data.join("x.npy").display()
        ),
    );
    // A transposed array saved by numpy is in Fortran order: read, not refused.
    let raw: Vec<u8> = (0..ROWS * 2).flat_map(|_| 1.0f32.to_le_bytes()).collect();
    write(&data.join("x.npy"), &npy::encode_raw("<f4", true, &[ROWS, 2], &raw));
    let o = mpc(&["train", s(&model), "--data", s(&data), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn wide_dtypes_are_converted_with_range_checks() {
    let (model, data) = tiny("wide");
    let tokens: Vec<u8> = (0..ROWS * 3).flat_map(|i| (i as i64).to_le_bytes()).collect();
    write(
        &data.join("tokens.npy"),
        &npy::encode_raw("<i8", false, &[ROWS, 3], &tokens),
    );
    let x: Vec<u8> = (0..ROWS * 2).flat_map(|i| (i as f64 * 0.1).to_le_bytes()).collect();
    write(&data.join("x.npy"), &npy::encode_raw("<f8", false, &[ROWS, 2], &x));
    let o = mpc(&["train", s(&model), "--data", s(&data), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut x: Vec<u8> = (0..ROWS * 2).flat_map(|_| 1.0f64.to_le_bytes()).collect();
    x[8 * 9..8 * 10].copy_from_slice(&1e39f64.to_le_bytes());
    write(&data.join("x.npy"), &npy::encode_raw("<f8", false, &[ROWS, 2], &x));
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: row 4, column 1: value 1e39 is outside the range of f32",
            data.join("x.npy").display()
        ),
    );
}

#[test]
fn ambiguous_files_and_holdout_with_test_dir() {
    let (model, data) = tiny("ambiguous");
    write(&data.join("y.csv"), b"0\n1\n2\n0\n1\n2\n0\n1\n");
    train_fails_with(
        &model,
        &data,
        &format!(
            "error: {}: y.npy and y.csv both exist (label 'y' reads one; remove the other)",
            data.join("y.npy").display()
        ),
    );
    std::fs::remove_file(data.join("y.npy")).unwrap();
    std::fs::create_dir_all(data.join("test")).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data), "--holdout", "0.5"]);
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("test: exists, so it is the held-out set"), "{err}");
}

// ---- checkpoints ----

/// Trains the tiny model for one epoch and saves `dir/w.safetensors`.
fn tiny_checkpoint(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (model, data) = tiny(name);
    let ckpt = model.parent().unwrap().join("w.safetensors");
    let o = mpc(&[
        "train",
        s(&model),
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--save",
        s(&ckpt),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (model, data, ckpt)
}

fn run_fails_with(model: &Path, data: &Path, ckpt: &Path, expected: &str) {
    let o = mpc(&["run", s(model), "--weights", s(ckpt), "--data", s(data)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with(&format!("error: {}: ", ckpt.display())), "{err}");
    assert!(err.contains(expected), "expected '{expected}' in: {err}");
}

#[test]
fn truncated_and_corrupt_checkpoints() {
    let (model, data, ckpt) = tiny_checkpoint("ckpt_bad");
    let o = mpc(&["run", s(&model), "--weights", s(&ckpt), "--data", s(&data)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let good = std::fs::read(&ckpt).unwrap();
    let bad = ckpt.with_file_name("bad.safetensors");
    write(&bad, &good[..good.len() - 7]);
    run_fails_with(&model, &data, &bad, "truncated: the header describes");
    write(&bad, &good[..100]);
    run_fails_with(&model, &data, &bad, "truncated: the header is");
    write(&bad, &good[..5]);
    run_fails_with(&model, &data, &bad, "not a safetensors file");
    write(&bad, b"\x93NUMPY\x01\x00 not a checkpoint at all, just some bytes");
    run_fails_with(&model, &data, &bad, "not a safetensors file");
    let mut header_garbage = good.clone();
    header_garbage[9] = b'!';
    write(&bad, &header_garbage);
    run_fails_with(&model, &data, &bad, "not a safetensors file (unreadable header");
    run_fails_with(
        &model,
        &data,
        &ckpt.with_file_name("absent.safetensors"),
        "cannot read the checkpoint",
    );
}

#[test]
fn checkpoint_of_another_model() {
    let (_, data, ckpt) = tiny_checkpoint("ckpt_other");
    let dir = ckpt.parent().unwrap();
    // A wider embedding: same names, other shapes.
    let wide = dir.join("wide.mp");
    std::fs::write(
        &wide,
        common::tiny_source(2).replace("embed(tokens, 4)", "embed(tokens, 8)"),
    )
    .unwrap();
    run_fails_with(
        &wide,
        &data,
        &ckpt,
        "parameter 'z.embed.weight' has shape [1000, 4], the model's is [1000, 8]",
    );
    // One more layer: a parameter the checkpoint lacks.
    let deeper = dir.join("deeper.mp");
    std::fs::write(
        &deeper,
        common::tiny_source(2).replace(
            "mean(embed(tokens, 4), axis: 1)",
            "linear(mean(embed(tokens, 4), axis: 1), 4)",
        ),
    )
    .unwrap();
    run_fails_with(
        &deeper,
        &data,
        &ckpt,
        "missing parameter 'z.linear.weight' (shape [4, 4])",
    );
}

#[test]
fn failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file() {
    let (model, data, ckpt) = tiny_checkpoint("ckpt_atomic");
    let dir = ckpt.parent().unwrap().to_path_buf();
    let good = std::fs::read(&ckpt).unwrap();
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let train_saving_to = |target: &Path| {
        mpc(&[
            "train",
            s(&model),
            "--data",
            s(&data),
            "--epochs",
            "1",
            "--seed",
            "9",
            "--save",
            s(target),
        ])
    };

    // The parent of the target is a file: the temporary file cannot even be created.
    let o = train_saving_to(&model.join("w.safetensors"));
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("cannot write the checkpoint"), "{err}");

    // The target is a directory: the temporary file is written, the rename fails, and
    // the temporary file is removed.
    let target_dir = dir.join("taken.safetensors");
    std::fs::create_dir_all(&target_dir).unwrap();
    let o = train_saving_to(&target_dir);
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(
        err.starts_with(&format!("error: {}: cannot write the checkpoint", target_dir.display())),
        "{err}"
    );
    std::fs::remove_dir(&target_dir).unwrap();

    // A failed training run (bad data) never touches the checkpoint.
    let bad = dir.join("bad_data");
    std::fs::create_dir_all(&bad).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&bad), "--save", s(&ckpt)]);
    assert_eq!(o.status.code(), Some(1));

    let mut expected = [before.clone(), vec!["bad_data".to_string()]].concat();
    expected.sort();
    assert_eq!(listing(), expected, "a temporary file was left behind");
    assert_eq!(std::fs::read(&ckpt).unwrap(), good, "the good checkpoint changed");
}

/// The write itself fails or is cut short (file size limit, as on a full disk): the
/// previous checkpoint stays whole. With SIGXFSZ ignored the write returns an error and
/// mpc removes its temporary file; with the default action the process dies mid-write,
/// like a crash, and only a temporary file is left beside the intact checkpoint.
#[test]
fn interrupted_write_never_replaces_a_good_checkpoint() {
    let dir = scratch("data_errors", "ckpt_crash");
    let ckpt = dir.join("w.safetensors");
    let mpc_bin = env!("CARGO_BIN_EXE_mpc");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/text_classifier.mp");
    // The text classifier's checkpoint is 2.6 MB; no training (--epochs 0) keeps it quick.
    let save = |limit: &str, seed: &str| {
        let script = format!(
            "{limit} exec {mpc_bin} train {model} --epochs 0 --dim T=4 --seed {seed} --save {}",
            ckpt.display()
        );
        Command::new("bash").arg("-c").arg(script).output().expect("bash")
    };
    let o = save("", "1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let good = std::fs::read(&ckpt).unwrap();
    assert!(good.len() > 2_000_000);

    // The write fails with EFBIG: one error line, no temporary file.
    let o = save("trap '' XFSZ; ulimit -f 1000;", "2");
    let err = stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("cannot write the checkpoint"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a temporary file was left");
    assert_eq!(std::fs::read(&ckpt).unwrap(), good);

    // The process is killed mid-write.
    let o = save("ulimit -f 1000;", "3");
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        good,
        "a killed write replaced the checkpoint"
    );
    let o = mpc(&["run", model, "--weights", s(&ckpt), "--dim", "T=4"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
