//! End-to-end tests of the `mpc` binary: exit codes, what goes to stdout and stderr,
//! and that no input makes it panic.

mod common;

use common::{mpc, stderr, stdout};
use std::path::PathBuf;

const EXAMPLE: &str = "examples/text_classifier.mp";

/// A scratch file under the target dir, unique per test.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

const PARAMS: [&str; 5] = [
    "z.embed.weight",
    "h.linear.weight",
    "h.linear.bias",
    "logits.linear.weight",
    "logits.linear.bias",
];

#[test]
fn check_prints_one_ok_line() {
    let o = mpc(&["check", EXAMPLE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("ok:"), "{out}");
    assert!(out.contains("TextClassifier"), "{out}");
    assert!(out.contains("648,578"), "{out}");
    assert!(stderr(&o).is_empty());
}

#[test]
fn compile_grad_has_the_adam_update() {
    let o = mpc(&["compile", EXAMPLE, "--emit", "grad"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("graph train_step {"), "{out}");
    for p in PARAMS {
        assert!(
            out.contains(&format!("state \"adam.m:{p}\"")),
            "no adam.m state for {p}"
        );
        assert!(
            out.contains(&format!("state \"adam.v:{p}\"")),
            "no adam.v state for {p}"
        );
        assert!(
            out.contains(&format!("state:adam.m:{p} = %")),
            "no adam.m output for {p}"
        );
        assert!(
            out.contains(&format!("state:adam.v:{p} = %")),
            "no adam.v output for {p}"
        );
        assert!(
            out.contains(&format!("param:{p} = %")),
            "no updated param output for {p}"
        );
    }
    assert_eq!(out.matches("param:").count(), 5, "{out}");
    assert!(out.contains(" sqrt %"), "{out}");
    assert!(out.contains("loss = %"), "{out}");
}

#[test]
fn compile_opt_with_stats_reports_what_the_optimizer_did() {
    let out = mpc(&["compile", EXAMPLE, "--emit", "opt", "--stats"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (graph, stats) = (stdout(&out), stderr(&out));
    assert!(graph.starts_with("graph train_step {"), "{graph}");
    assert_eq!(graph.matches("param:").count(), 5, "every parameter is still updated");
    for line in [
        "e-graph:",
        "e-nodes",
        "e-classes",
        "iterations:",
        "stopped:",
        "flops:",
        "bytes:",
        "rules fired:",
        "time:",
    ] {
        assert!(stats.contains(line), "stats lack '{line}':\n{stats}");
    }
    // FLOPs and bytes never grow.
    for key in ["flops:", "bytes:"] {
        let line = stats.lines().find(|l| l.starts_with(key)).unwrap();
        let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        assert!(nums[1] <= nums[0], "{line}");
    }
}

#[test]
fn compile_ast() {
    let o = mpc(&["compile", EXAMPLE, "--emit", "ast"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("model TextClassifier @2:1"), "{out}");
    assert!(out.contains("call embed @7:11"), "{out}");
    assert!(out.contains("call cross_entropy"), "{out}");
}

#[test]
fn compile_ir_is_the_default_and_has_dropout() {
    let explicit = mpc(&["compile", EXAMPLE, "--emit", "ir"]);
    let default = mpc(&["compile", EXAMPLE]);
    assert_eq!(explicit.status.code(), Some(0), "{}", stderr(&explicit));
    assert_eq!(stdout(&explicit), stdout(&default));
    let out = stdout(&explicit);
    assert!(out.starts_with("graph forward {"), "{out}");
    assert!(out.contains("random_uniform"), "the training forward pass has dropout");
    assert!(out.contains("%0: i32[64, 32] = input \"tokens\""), "{out}");
    assert!(out.contains("loss = %") && out.contains("predictions = %"), "{out}");
}

#[test]
fn compile_eval_has_no_dropout() {
    let o = mpc(&["compile", EXAMPLE, "--emit", "ir", "--eval"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("graph eval {"), "{out}");
    assert!(!out.contains("random_uniform"), "{out}");
    assert!(!out.contains("@seed"), "{out}");
}

#[test]
fn inspect_lists_parameters_and_total() {
    let o = mpc(&["inspect", EXAMPLE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for p in PARAMS {
        assert!(out.contains(p), "{p} missing:\n{out}");
    }
    assert!(out.contains("640,000"), "{out}");
    let total = out.lines().find(|l| l.starts_with("total")).expect("a total row");
    assert!(total.trim_end().ends_with("648,578"), "{out}");
}

#[test]
fn dim_override_changes_ir_shapes() {
    let o = mpc(&["compile", EXAMPLE, "--emit", "ir", "--dim", "B=8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("%0: i32[8, 32] = input \"tokens\""), "{out}");
    assert!(out.contains("%1: i32[8] = input \"y\""), "{out}");
    assert!(!out.contains("[64, 32]"), "{out}");
    // Two overrides, and inspect shows the parameter count does not depend on the batch.
    let o = mpc(&["compile", EXAMPLE, "--dim", "B=8", "--dim", "T=5"]);
    assert!(stdout(&o).contains("i32[8, 5] = input \"tokens\""));
    let o = mpc(&["inspect", EXAMPLE, "--dim", "B=8"]);
    assert!(stdout(&o).contains("648,578"));
}

#[test]
fn unknown_dim_override_is_a_clear_error() {
    let o = mpc(&["compile", EXAMPLE, "--dim", "Q=3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(err.contains("error: --dim Q=3: the model has no dim 'Q'"), "{err}");
    assert!(err.contains("its dims are: B, T"), "{err}");
    // The summary line starts a line of its own.
    assert!(err.lines().any(|l| l.starts_with("error: could not compile")), "{err}");
}

#[test]
fn malformed_dim_overrides_are_usage_errors() {
    for bad in ["B", "B=x", "B=0", "B=-1"] {
        let o = mpc(&["compile", EXAMPLE, "--dim", bad]);
        assert_eq!(o.status.code(), Some(1), "--dim {bad}");
        assert!(stderr(&o).contains("--dim"), "{}", stderr(&o));
    }
}

#[test]
fn model_errors_exit_1_with_located_diagnostics() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/text_classifier.mp"))
        .unwrap()
        .replace("linear(h, 2)", "lineer(h, 2)")
        .replace("mean(z, axis: 1)", "mean(z, axis: 3)");
    let path = temp_file("errors.mp", src.as_bytes());
    let file = path.to_str().unwrap();
    for cmd in ["check", "compile", "inspect"] {
        let o = mpc(&[cmd, file]);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert!(stdout(&o).is_empty(), "{cmd}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(err.contains("error: unknown function 'lineer'"), "{err}");
        assert!(err.contains(&format!("--> {file}:9:16")), "{err}");
        assert!(err.contains("did you mean 'linear'?"), "{err}");
        assert!(err.contains("error: axis 3 is out of range"), "{err}");
        assert!(err.contains(&format!("--> {file}:8:45")), "{err}");
        assert!(
            err.contains(&format!("error: could not compile '{file}' (2 errors)")),
            "{err}"
        );
        assert!(!err.contains('\x1b'), "no colour when stderr is not a terminal");
    }
}

#[test]
fn syntax_error_exits_1() {
    let path = temp_file("syntax.mp", b"model M {\n  let x = relu(\n}\n");
    let o = mpc(&["check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("error: syntax error"), "{err}");
    assert!(err.contains(&format!("{}:3:1", path.display())), "{err}");
}

#[test]
fn missing_file_is_one_line() {
    let o = mpc(&["check", "examples/no_such_model.mp"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: examples/no_such_model.mp: cannot read the file"),
        "{err}"
    );
}

#[test]
fn non_utf8_file_names_file_and_position() {
    let path = temp_file("latin1.mp", b"model M {\n  # caf\xe9\n}\n");
    let o = mpc(&["check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    assert!(err.contains("0xe9 at 2:8"), "{err}");
}

#[test]
fn usage_errors_are_one_line_exit_1() {
    for args in [
        &[][..],
        &["check"][..],
        &["compile", EXAMPLE, "--emit", "llvm"][..],
        &["frobnicate"][..],
    ] {
        let o = mpc(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn empty_and_garbage_files_do_not_panic() {
    for (name, bytes) in [
        ("empty.mp", &b""[..]),
        ("nul.mp", &b"\0\0\0"[..]),
        ("truncated.mp", &b"model M { let x = "[..]),
        ("brackets.mp", &b"model M { let x = ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((( }"[..]),
    ] {
        let path = temp_file(name, bytes);
        let o = mpc(&["check", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(!stderr(&o).is_empty(), "{name}");
    }
}
