//! `mpc completions SHELL` prints a completion script that the shell accepts and that
//! knows mpc's commands and flags; `mpc --help` lists every command.

mod common;

use common::{mpc, ok, scratch};
use std::process::Command;

/// Whether `program` runs here (zsh and fish are often not installed).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completion_scripts_parse_and_know_the_commands() {
    let dir = scratch("completions", "scripts");
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        for word in ["train", "run", "compile", "completions", "resume", "out-class", "emit"] {
            assert!(script.contains(word), "{shell}: no '{word}'");
        }
        // The shell's own syntax check (`-n`: parse, do not run), where it is installed.
        if !installed(shell) {
            println!("{shell} is not installed: its script's syntax is not checked");
            continue;
        }
        let path = dir.join(format!("mpc.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let o = Command::new(shell).arg("-n").arg(&path).output().unwrap();
        assert!(o.status.success(), "{shell} -n: {}", String::from_utf8_lossy(&o.stderr));
    }
    // In bash, completing `mpc tr` offers `train`.
    let path = dir.join("mpc.bash");
    let probe = format!(
        "source {}; COMP_WORDS=(mpc tr); COMP_CWORD=1; _mpc mpc tr mpc; echo \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let o = Command::new("bash").arg("-c").arg(probe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "train");
}

#[test]
fn an_unknown_shell_is_one_line() {
    let o = mpc(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("invalid value 'tcsh'") && err.contains("bash"), "{err}");
}

#[test]
fn help_lists_every_command() {
    let help = ok(&["--help"]);
    for command in [
        "check",
        "compile",
        "inspect",
        "train",
        "run",
        "export",
        "plot",
        "completions",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from:\n{help}"
        );
    }
}
