//! The architecture's two boundaries hold in the source: `compiler/src/pipeline.rs` is the
//! only code that calls the compiler's passes, and the runtime and the CLI use only the
//! compiler's public API (never `mpc_compiler::internals`).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(dirs: &[&str]) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in dirs {
        rust_files(&root.join(d), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

/// Lines of `text` that are code (not comments), up to its unit tests (a
/// `#[cfg(test)]` module, which by convention ends a file).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

#[test]
fn only_the_pipeline_sequences_the_passes() {
    // A call of each pass's entry point, as the pipeline spells it.
    let passes = [
        "syntax::parse(",
        "check::check(",
        "lower::lower(",
        "lower::lower_step(",
        "autodiff::training_step(",
        "opt::optimize(",
        "schedule::schedule(",
        "cranelift::compile(",
        "ptx::emit(",
    ];
    let mut found = Vec::new();
    for (file, text) in sources(&["compiler/src", "runtime/src", "src"]) {
        if file.ends_with("compiler/src/pipeline.rs") {
            // `lower_step` wraps `lower`, so the pipeline calls one of the two.
            let missing: Vec<_> = passes
                .iter()
                .filter(|p| **p != "lower::lower(" && !text.contains(*p))
                .collect();
            assert!(missing.is_empty(), "pipeline.rs no longer calls {missing:?}");
            continue;
        }
        for (n, line) in code_lines(&text) {
            for p in passes.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{}:{n}: {p}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "passes called outside pipeline.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_runtime_and_the_cli_use_only_the_public_api() {
    let mut found = Vec::new();
    for (file, text) in sources(&["runtime/src", "src"]) {
        for (n, line) in code_lines(&text) {
            if line.contains("mpc_compiler::internals") {
                found.push(format!("{}:{n}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "internals used by the runtime or CLI:\n{}",
        found.join("\n")
    );
}
