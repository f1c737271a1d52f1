//! The TextMate grammar for editors (`editors/mpc.tmLanguage.json`) stays in step with
//! the language: every keyword of `grammar/mp.pest` and every builtin of the checker's
//! table gets its scope, and every example's comments, declarations and numbers are
//! scoped. `editors/tokenize.py` applies the grammar as an editor does (Python's `re`
//! for Oniguruma); without python3 the test says that it skipped.

use mpc_compiler::internals::check::builtins::BUILTINS;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// (line, scope, text) of every scoped token of `source`; `None` without python3.
fn tokens(name: &str, source: &str) -> Option<Vec<(usize, String, String)>> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("editor_grammar");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.mp"));
    std::fs::write(&file, source).unwrap();
    let out = Command::new("python3")
        .arg(root().join("editors/tokenize.py"))
        .arg(root().join("editors/mpc.tmLanguage.json"))
        .arg(&file)
        .output();
    let Ok(out) = out else {
        println!("python3 is not installed: the editor grammar is not checked");
        return None;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let parse = |l: &str| {
        let mut f = l.splitn(3, '\t');
        let line = f.next().unwrap().parse().unwrap();
        (
            line,
            f.next().unwrap().to_string(),
            f.next().unwrap_or_default().to_string(),
        )
    };
    Some(text.lines().map(parse).collect())
}

/// The keywords of `grammar/mp.pest`: the words of its `kw_*` rules.
fn pest_keywords() -> Vec<String> {
    let pest = std::fs::read_to_string(root().join("grammar/mp.pest")).unwrap();
    let words: Vec<String> = pest
        .lines()
        .filter(|l| l.starts_with("kw_"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect();
    assert!(words.len() >= 12, "{words:?}");
    words
}

#[test]
fn every_keyword_and_builtin_has_its_scope() {
    let keywords = pest_keywords();
    let source: String = keywords.iter().map(|k| format!("{k} x\n")).collect();
    let Some(toks) = tokens("keywords", &source) else {
        return;
    };
    for (i, k) in keywords.iter().enumerate() {
        let scope = toks.iter().find(|(line, _, text)| *line == i + 1 && text == k);
        assert!(
            scope.is_some_and(|(_, s, _)| s.starts_with("keyword.")),
            "keyword '{k}': {scope:?}"
        );
    }
    let source: String = BUILTINS.iter().map(|b| format!("let y = {}(x)\n", b.name)).collect();
    let toks = tokens("builtins", &source).unwrap();
    for (i, b) in BUILTINS.iter().enumerate() {
        let scope = toks.iter().find(|(line, _, text)| *line == i + 1 && text == b.name);
        assert!(
            scope.is_some_and(|(_, s, _)| s == "support.function.builtin.mp"),
            "builtin '{}': {scope:?}",
            b.name
        );
    }
    // A builtin's name used as a variable is not a call.
    let toks = tokens("not_a_call", "let mean = 1\n").unwrap();
    assert!(
        toks.iter().all(|(_, s, _)| !s.starts_with("support.function")),
        "{toks:?}"
    );
}

#[test]
fn examples_are_scoped() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let Some(toks) = tokens(name, &source) else { return };
        let scope_of = |line: usize, text: &str| {
            toks.iter()
                .find(|(l, _, t)| *l == line && t == text)
                .map(|(_, s, _)| s.as_str())
        };
        for (i, line) in source.lines().enumerate() {
            let n = i + 1;
            // A comment runs from its '#' to the end of the line.
            if let Some(at) = line.find('#') {
                assert_eq!(
                    scope_of(n, &line[at..]),
                    Some("comment.line.number-sign.mp"),
                    "{name}:{n}"
                );
            }
            let code = line.split('#').next().unwrap();
            let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
            if let Some(pair) = words.windows(2).find(|w| ["input", "label", "let"].contains(&w[0])) {
                assert_eq!(
                    scope_of(n, pair[1]),
                    Some("variable.other.declaration.mp"),
                    "{name}:{n}"
                );
            }
            for w in words.iter().filter(|w| ["i32", "f32"].contains(w)) {
                assert_eq!(scope_of(n, w), Some("storage.type.dtype.mp"), "{name}:{n}");
            }
        }
        assert_eq!(
            scope_of(
                source.lines().position(|l| l.starts_with("model")).unwrap() + 1,
                "model"
            ),
            Some("keyword.control.model.mp")
        );
    }
}
