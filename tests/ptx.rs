//! The PTX backend without a GPU: every example's training and evaluation steps render as
//! PTX (snapshots of the training step, reviewed by eye), `ptxas` assembles them for
//! sm_80 and sm_90, the GPU's own kernel program (its store groups and row blocks) trains
//! every example like the CPU's when the CPU runs it, and `--device cuda` without a
//! driver is one error line, not a panic.
//!
//! `ptxas` is found through `MPC_PTXAS` (a path) or `PATH`; `.ci/run` installs it from
//! PyPI (`nvidia-cuda-nvcc`). Without it the ptxas test says it was skipped and passes.
//! The numbers themselves need a GPU: `scripts/gpu-check.sh`.

mod common;

use common::{examples, json_lines};
use mpc_compiler::internals::codegen::ptx;
use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::pipeline::{compile, schedule_gpu};
use std::path::PathBuf;
use std::process::Command;

/// (example, "train" | "eval", PTX text) for every example, as `--emit ptx` renders them
/// (deterministic optimizer limits, so the text does not depend on the machine).
fn all_ptx() -> Vec<(String, &'static str, ptx::PtxProgram)> {
    let mut out = Vec::new();
    for (name, src) in examples() {
        let c = compile(&src, &[]).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        for (which, graph) in [("train", &c.train_step), ("eval", &c.eval)] {
            let (opt, _) = optimize(graph, &Limits::deterministic()).unwrap();
            let program = schedule_gpu(&opt);
            let p = ptx::emit(&program).unwrap_or_else(|e| panic!("{name} ({which}): {e}"));
            assert_eq!(p.launches.len(), program.kernels.len(), "{name}: one launch per kernel");
            out.push((name.clone(), which, p));
        }
    }
    out
}

#[test]
fn snapshots_of_every_example() {
    for (name, which, p) in all_ptx() {
        if which != "train" {
            continue;
        }
        insta::with_settings!({ snapshot_suffix => name.as_str(), description => format!("examples/{name}.mp") }, {
            insta::assert_snapshot!("ptx", p.text);
        });
    }
}

#[test]
fn emission_is_stable() {
    let a: Vec<String> = all_ptx().into_iter().map(|(_, _, p)| p.text).collect();
    let b: Vec<String> = all_ptx().into_iter().map(|(_, _, p)| p.text).collect();
    assert_eq!(a, b);
    for text in &a {
        assert!(text.contains(".version 8.0\n.target sm_80\n.address_size 64\n"));
        // No racing atomics: the only atomic is the error word's compare-and-swap.
        let atomic = |l: &&str| {
            l.split_whitespace()
                .any(|t| t.starts_with("atom.") || t.starts_with("red."))
        };
        for line in text.lines().filter(atomic) {
            assert!(line.contains("atom.global.cas.b32") && line.contains("[%rd"), "{line}");
        }
        // No approximate math: every transcendental is range reduction + polynomial.
        assert!(!text.contains(".approx"), "approximate instruction in the PTX");
    }
}

/// `MPC_PTXAS`, else `ptxas` on PATH.
fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MPC_PTXAS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

#[test]
fn ptxas_assembles_every_example_for_sm80_and_sm90() {
    let Some(ptxas) = ptxas() else {
        eprintln!(
            "SKIPPED: ptxas not found (set MPC_PTXAS or put ptxas on PATH; \
             `pip install --no-deps nvidia-cuda-nvcc` provides it, .ci/run does this)"
        );
        return;
    };
    if let Some(p) = std::env::var_os("MPC_PTXAS") {
        assert!(PathBuf::from(&p).is_file(), "MPC_PTXAS={p:?} is not a file");
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptx");
    std::fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    for (name, which, p) in all_ptx() {
        let file = dir.join(format!("{name}_{which}.ptx"));
        std::fs::write(&file, &p.text).unwrap();
        for arch in ["sm_80", "sm_90"] {
            let out = Command::new(&ptxas)
                .arg(format!("-arch={arch}"))
                .arg(&file)
                .arg("-o")
                .arg(dir.join(format!("{name}_{which}_{arch}.cubin")))
                .output()
                .expect("run ptxas");
            assert!(
                out.status.success(),
                "ptxas -arch={arch} rejected {name} ({which}), {}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    eprintln!("ptxas ({}) assembled {checked} modules", ptxas.display());
}

/// The GPU's passes (`split_store_groups`, `block_reductions`) only regroup and
/// reassociate: with the CPU running the GPU's kernel program (`MPC_GPU_SCHEDULE`), every
/// example's first epoch ends with the losses of the CPU's own program, to 1e-4 relative
/// (a sum in other blocks rounds differently; Adam's steps magnify that a little).
#[test]
fn the_gpu_kernel_program_trains_like_the_cpu_one() {
    let losses = |gpu_schedule: bool, file: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mpc"));
        cmd.args(["train", file, "--epochs", "1", "--json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if gpu_schedule {
            cmd.env("MPC_GPU_SCHEDULE", "1");
        }
        let out = cmd.output().expect("run mpc");
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let last = json_lines(&String::from_utf8_lossy(&out.stdout))
            .pop()
            .expect("a final line");
        ["loss", "eval_loss"].map(|k| last[k].as_f64().unwrap_or_else(|| panic!("{file}: no {k}")))
    };
    for (name, _) in examples() {
        let file = format!("examples/{name}.mp");
        let (cpu, gpu) = (losses(false, &file), losses(true, &file));
        for (a, b) in cpu.iter().zip(&gpu) {
            let rel = (a - b).abs() / a.abs().max(1e-12);
            assert!(rel <= 1e-4, "{name}: CPU program {cpu:?}, GPU program {gpu:?}");
        }
    }
}

/// `mpc train|run --device cuda` on a machine without a CUDA driver: exactly one error
/// line, exit 1, no panic. (On a machine with a driver this is the GPU check's job.)
#[test]
fn device_cuda_without_a_driver_is_one_error_line() {
    if mpc_runtime::backend::cuda::probe(0).is_ok() {
        eprintln!("SKIPPED: this machine has a CUDA device; scripts/gpu-check.sh covers it");
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let runs: [&[&str]; 3] = [
        &["train", "examples/text_classifier.mp", "--device", "cuda"],
        &[
            "train",
            "examples/text_classifier.mp",
            "--device",
            "cuda",
            "--epochs",
            "1",
        ],
        &[
            "run",
            "examples/text_classifier.mp",
            "--weights",
            "nowhere.safetensors",
            "--device",
            "cuda",
        ],
    ];
    for args in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_mpc"))
            .args(args)
            .current_dir(root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "mpc {args:?} panicked:\n{stderr}");
        assert_eq!(out.status.code(), Some(1), "mpc {args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "mpc {args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "mpc {args:?}: {stderr}");
        assert!(
            lines[0].starts_with("error: --device cuda: ") && lines[0].contains("CUDA"),
            "{}",
            lines[0]
        );
    }
}
