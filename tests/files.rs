//! Files that are not files, too large files, byte order marks and safe writes, through
//! the `mpc` binary: each refusal is ONE `error:` line, exit code 1, no hang, and nothing
//! overwritten (a symbolic link's target keeps its bytes, a FIFO stays a FIFO).

#![cfg(unix)]

mod common;

use common::{mpc, s, scratch, stderr};
use mpc_runtime::files::{DATA_LIMIT, SOURCE_LIMIT};
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROWS: usize = common::TINY_ROWS;

/// `dir/model.mp` (the tiny model, 1 epoch) and a valid data set in `dir/data`.
fn tiny(name: &str) -> (PathBuf, PathBuf) {
    common::tiny_model("files", name, 1)
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("run mkfifo").success();
    assert!(ok, "mkfifo {}", path.display());
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).unwrap().file_type().is_fifo()
}

/// `o` failed with exit code 1 and exactly one line, `error: <path>: <what>`.
fn fails_with(o: &Output, path: &Path, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert_eq!(err.trim_end(), format!("error: {}: {what}", path.display()));
}

#[test]
fn a_model_file_that_is_not_a_regular_file_is_refused() {
    let dir = scratch("files", "model_kinds");
    let fifo = dir.join("fifo.mp");
    mkfifo(&fifo);
    let lp = dir.join("loop.mp");
    symlink(&lp, &lp).unwrap();
    for (path, what) in [
        (dir.clone(), "a directory"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (fifo.clone(), "a FIFO"),
        (lp.clone(), "a symbolic link loop"),
    ] {
        fails_with(
            &mpc(&["check", s(&path)]),
            &path,
            &format!("not a regular file ({what})"),
        );
    }
    assert!(is_fifo(&fifo));
}

#[test]
fn data_and_weights_that_are_not_regular_files_are_refused() {
    let (model, data) = tiny("data_kinds");
    let tokens = data.join("tokens.npy");
    std::fs::remove_file(&tokens).unwrap();
    mkfifo(&tokens);
    let o = mpc(&["train", s(&model), "--data", s(&data)]);
    fails_with(&o, &tokens, "not a regular file (a FIFO)");
    assert!(is_fifo(&tokens));
    std::fs::remove_file(&tokens).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data)]);
    fails_with(&o, &tokens, "not a regular file (a directory)");

    let weights = Path::new("/dev/zero");
    let o = mpc(&["run", s(&model), "--weights", s(weights)]);
    fails_with(&o, weights, "not a regular file (a character device)");
}

#[test]
fn files_over_the_size_limit_are_refused() {
    // Sparse files: the limit is checked on the size, before anything is read.
    let (model, data) = tiny("too_large");
    let big = model.with_file_name("big.mp");
    std::fs::File::create(&big).unwrap().set_len(SOURCE_LIMIT + 1).unwrap();
    let o = mpc(&["check", s(&big)]);
    fails_with(
        &o,
        &big,
        &format!("too large: {} bytes (the limit is 64 MiB)", SOURCE_LIMIT + 1),
    );

    let tokens = data.join("tokens.npy");
    std::fs::File::create(&tokens).unwrap().set_len(DATA_LIMIT + 1).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data)]);
    fails_with(
        &o,
        &tokens,
        &format!("too large: {} bytes (the limit is 1 GiB)", DATA_LIMIT + 1),
    );
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let (model, data) = tiny("bom");
    let mut source = "\u{feff}".to_string();
    source += &common::tiny_source(1);
    std::fs::write(&model, source).unwrap();
    // A numeric first line behind a BOM is data, not a header: 8 labels for 8 rows.
    std::fs::remove_file(data.join("y.npy")).unwrap();
    let labels: String = (0..ROWS).map(|i| format!("{}\n", i % 3)).collect();
    std::fs::write(data.join("y.csv"), format!("\u{feff}{labels}")).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_huge_field_is_quoted_in_part() {
    let (model, data) = tiny("huge_field");
    std::fs::remove_file(data.join("x.npy")).unwrap();
    let huge = "z".repeat(10 << 20);
    let mut text = format!("{huge},1\n");
    for _ in 1..ROWS {
        text += "0.5,1\n";
    }
    let x = data.join("x.csv");
    std::fs::write(&x, text).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data)]);
    let cut = format!("{}...", "z".repeat(80));
    fails_with(&o, &x, &format!("line 1, field 1: '{cut}' is not a number"));
}

#[test]
fn a_save_target_that_is_not_a_regular_file_is_refused_before_training() {
    let (model, data) = tiny("save_kinds");
    let dir = model.parent().unwrap();
    // A link: refused, and its target keeps its bytes.
    let target = dir.join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("w.safetensors");
    symlink(&target, &link).unwrap();
    let o = mpc(&["train", s(&model), "--save", s(&link)]);
    fails_with(
        &o,
        &link,
        "cannot write the checkpoint: a symbolic link (not replaced: name the file it points to)",
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");

    let fifo = dir.join("fifo.safetensors");
    mkfifo(&fifo);
    let o = mpc(&["train", s(&model), "--save", s(&fifo)]);
    fails_with(&o, &fifo, "cannot write the checkpoint: not a regular file (a FIFO)");
    assert!(is_fifo(&fifo));

    let o = mpc(&["train", s(&model), "--save", s(dir)]);
    fails_with(&o, dir, "cannot write the checkpoint: not a regular file (a directory)");

    // A missing directory fails before training: nothing on stdout.
    let missing = Path::new("/nonexistent/dir/w.safetensors");
    let o = mpc(&["train", s(&model), "--save", s(missing)]);
    fails_with(
        &o,
        missing,
        "cannot write the checkpoint: directory /nonexistent/dir not found",
    );
    assert!(o.stdout.is_empty());

    // --out of `mpc run` likewise.
    let weights = dir.join("real.safetensors");
    let o = mpc(&["train", s(&model), "--data", s(&data), "--save", s(&weights)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = mpc(&[
        "run",
        s(&model),
        "--weights",
        s(&weights),
        "--data",
        s(&data),
        "--out",
        s(&link),
    ]);
    fails_with(
        &o,
        &link,
        "cannot write: a symbolic link (not replaced: name the file it points to)",
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

#[test]
fn a_save_removes_temporary_files_of_dead_saves() {
    let (model, data) = tiny("stale_tmp");
    let dir = model.parent().unwrap();
    // A pid that was alive and is not any more: a child that has exited and was reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.join(format!(".w.safetensors.tmp-{dead}"));
    std::fs::write(&stale, "half a checkpoint").unwrap();
    // This test process is alive: its (pretend) temporary file stays.
    let live = dir.join(format!(".w.safetensors.tmp-{}", std::process::id()));
    std::fs::write(&live, "in progress").unwrap();
    let w = dir.join("w.safetensors");
    let o = mpc(&["train", s(&model), "--data", s(&data), "--save", s(&w)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(w.is_file());
    assert!(!stale.exists(), "stale temporary file left");
    assert!(live.exists(), "a live process's temporary file removed");
}

#[test]
fn a_dangling_symbolic_link_says_where_it_points() {
    let dir = scratch("files", "dangling");
    let link = dir.join("model.mp");
    symlink(dir.join("gone.mp"), &link).unwrap();
    fails_with(
        &mpc(&["check", s(&link)]),
        &link,
        &format!(
            "cannot read the file: it is a symbolic link to '{}', which does not exist",
            dir.join("gone.mp").display()
        ),
    );
}

/// `mpc args` with stdout and stderr as given; (exit code, stderr if readable).
fn with_streams(args: &[&str], stdout: std::process::Stdio, stderr: std::process::Stdio) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("run mpc");
    // A closed pipe: the read end goes away before mpc writes.
    drop(child.stdout.take());
    child.wait().expect("wait for mpc").code()
}

#[test]
fn output_to_a_full_device_or_a_closed_pipe_is_no_panic() {
    use std::process::Stdio;
    let full = || Stdio::from(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
    let (model, data) = tiny("streams");
    let train = ["train", s(&model), "--data", s(&data)];
    // stdout full: one error line, exit 1, and the run still completes.
    let o = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(train)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "error: cannot write the output to stdout: No space left on device (os error 28)"
    );
    // A reader that stopped reading is not an error; a save still happens.
    let w = model.with_file_name("w.safetensors");
    let save = ["train", s(&model), "--data", s(&data), "--save", s(&w)];
    assert_eq!(with_streams(&save, Stdio::piped(), Stdio::inherit()), Some(0));
    assert!(w.exists(), "the checkpoint was saved");
    // Errors to a full stderr: the exit code still says so, and nothing panics (101).
    assert_eq!(
        with_streams(&["check", "/nonexistent.mp"], Stdio::null(), full()),
        Some(1)
    );
    assert_eq!(with_streams(&["check", s(&model)], full(), full()), Some(1));
    assert_eq!(with_streams(&["inspect", s(&model)], Stdio::piped(), full()), Some(0));
}
