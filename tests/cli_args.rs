//! Bad command lines: every argument error is one `error:` line on stderr and exit 1
//! (not clap's usage block and exit 2), `--help`/`--version` still print and exit 0, and
//! `--threads` beyond the cores is capped with a warning rather than obeyed.

mod common;

use common::{mpc, stderr, stdout};

const EXAMPLE: &str = "examples/text_classifier.mp";

/// Asserts `mpc args` failed with exactly one `error:` line and exit 1; returns the line.
fn one_error_line(args: &[&str]) -> String {
    let o = mpc(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "mpc {args:?}:\n{err}");
    assert_eq!(err.lines().count(), 1, "mpc {args:?}:\n{err}");
    assert!(err.starts_with("error: "), "mpc {args:?}:\n{err}");
    assert!(!err.contains("error: error:"), "mpc {args:?}:\n{err}");
    assert!(stdout(&o).is_empty(), "mpc {args:?}:\n{}", stdout(&o));
    err
}

#[test]
fn every_argument_error_is_one_line_and_exit_1() {
    let cases: [(&[&str], &str); 18] = [
        (&["train", EXAMPLE, "--batch", "0"], "--batch"),
        // A value that starts with '-' is the flag's value, so the message names the flag.
        (&["train", EXAMPLE, "--lr", "-1"], "invalid value '-1' for '--lr <X>'"),
        (
            &["train", EXAMPLE, "--batch", "-3"],
            "invalid value '-3' for '--batch <N>'",
        ),
        (
            &["train", EXAMPLE, "--epochs", "-1"],
            "invalid value '-1' for '--epochs",
        ),
        (
            &["train", EXAMPLE, "--max-memory", "-1G"],
            "invalid value '-1G' for '--max-memory <SIZE>'",
        ),
        (&["train", EXAMPLE, "--lr", "nan"], "--lr"),
        (&["train", EXAMPLE, "--threads", "0"], "--threads"),
        (&["train", EXAMPLE, "--epochs", "abc"], "--epochs"),
        (&["train", EXAMPLE, "--frobnicate"], "--frobnicate"),
        (&["check", EXAMPLE, "--frobnicate"], "--frobnicate"),
        (&["check"], "<FILE>"),
        (&["train"], "<FILE>"),
        (&["frobnicate", EXAMPLE], "frobnicate"),
        (
            &["compile", EXAMPLE, "--emit", "bogus"],
            "[possible values: ast, dot, ir, grad, opt, kernels, clif, ptx]",
        ),
        (&["compile", EXAMPLE, "--dim", "B=0"], "--dim"),
        (&["compile", EXAMPLE, "--dim", "B"], "--dim"),
        (&["run", EXAMPLE], "--weights"),
        (&[], "command"),
    ];
    for (args, names) in cases {
        let line = one_error_line(args);
        assert!(line.contains(names), "mpc {args:?}: {line}");
        // Clap's usage and "For more information" tail are dropped.
        assert!(
            !line.contains("Usage") && !line.contains("--help'"),
            "mpc {args:?}: {line}"
        );
    }
}

#[test]
fn a_did_you_mean_tip_stays_on_the_line() {
    let line = one_error_line(&["train", EXAMPLE, "--epoch", "1"]);
    assert!(line.contains("'--epoch'") && line.contains("'--epochs'"), "{line}");
    let line = one_error_line(&["chek", EXAMPLE]);
    assert!(line.contains("'chek'") && line.contains("'check'"), "{line}");
}

#[test]
fn help_and_version_still_print_and_exit_0() {
    for args in [&["--help"][..], &["train", "--help"][..], &["--version"][..]] {
        let o = mpc(args);
        assert_eq!(o.status.code(), Some(0), "mpc {args:?}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty(), "mpc {args:?}");
        assert!(stderr(&o).is_empty(), "mpc {args:?}: {}", stderr(&o));
    }
    assert!(stdout(&mpc(&["train", "--help"])).contains("--threads"));
}

#[test]
fn threads_beyond_the_cores_are_capped_with_a_warning() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let o = mpc(&[
        "train",
        EXAMPLE,
        "--epochs",
        "1",
        "--batch",
        "512",
        "--dim",
        "T=4",
        "--threads",
        "1000",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let s = if cores == 1 { "" } else { "s" };
    let warning = format!("warning: --threads 1000: this machine has {cores} core{s}; using {cores}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).collect::<Vec<_>>(),
        [warning.as_str()],
        "{err}"
    );
    // The header says what the step really runs on.
    assert!(stdout(&o).contains(&format!("{cores} thread")), "{}", stdout(&o));
}
