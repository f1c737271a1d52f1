//! `mpc run --sample`: on a tiny causal language model trained here in a second, samples
//! are decoded through a vocabulary file (or printed as ids), are the same for the same
//! seed, and every bad flag, file or model is one error line. The character LM's samples
//! are checked in `tests/examples_train.rs`, after the example trains.

mod common;

use common::{mpc, ok, s, scratch, stderr, tiny_model};
use mpc_runtime::data::npy;
use std::path::{Path, PathBuf};

/// Ids: 0 padding, 1-4 the letters a-d, 5 the boundary `<w>`.
const VOCAB: [&str; 6] = ["<pad>", "a", "b", "c", "d", "<w>"];
const WORDS: [&str; 8] = ["ab", "abc", "abcd", "bad", "cab", "dab", "ba", "dcba"];
const T: usize = 5;

const TINY_LM: &str = "model TinyLM {
  dims { B = 4, T = 5 }
  input tokens: i32[B, T] vocab 6 pad 0
  label next: i32[B, T] classes 6
  let x = embed(tokens, 8) + embed(positions(tokens), 8)
  let h = x + self_attention(x, heads: 2, causal: true, mask: tokens)
  loss cross_entropy(linear(h, 6), next)
}
train { optimizer adam(lr: 3e-2) epochs 30 seed 3 }
";

/// A scratch dir with the tiny LM trained on [`WORDS`]: (model, checkpoint, vocab file).
fn trained_tiny_lm(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch("sample_cli", name);
    let model = dir.join("lm.mp");
    std::fs::write(&model, TINY_LM).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let id = |c: char| VOCAB.iter().position(|v| v.starts_with(c)).unwrap() as i32;
    let (mut tokens, mut next) = (Vec::new(), Vec::new());
    for w in WORDS {
        let ids: Vec<i32> = w.chars().map(id).collect();
        let mut row = vec![5];
        row.extend(&ids);
        row.resize(T, 0);
        let mut labels = ids.clone();
        labels.push(5);
        labels.resize(T, -1);
        tokens.extend(row);
        next.extend(labels);
    }
    let rows = WORDS.len();
    std::fs::write(data.join("tokens.npy"), npy::encode_i32(&[rows, T], &tokens)).unwrap();
    std::fs::write(data.join("next.npy"), npy::encode_i32(&[rows, T], &next)).unwrap();
    let ckpt = dir.join("w.safetensors");
    ok(&["train", s(&model), "--data", s(&data), "--save", s(&ckpt)]);
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, VOCAB.join("\n") + "\n").unwrap();
    (model, ckpt, vocab)
}

fn sample(model: &Path, ckpt: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["run", s(model), "--weights", s(ckpt)];
    args.extend_from_slice(extra);
    ok(&args).lines().map(str::to_string).collect()
}

#[test]
fn samples_decode_through_the_vocab_or_print_ids_and_repeat_for_a_seed() {
    let (model, ckpt, vocab) = trained_tiny_lm("decode");
    let words = sample(&model, &ckpt, &["--sample", "9", "--vocab", s(&vocab), "--seed", "4"]);
    assert_eq!(words.len(), 9, "{words:?}");
    for w in &words {
        // At most T tokens, each a letter: the boundary ends a word and is not printed.
        assert!(
            w.chars().count() <= T && w.chars().all(|c| "abcd".contains(c)),
            "{words:?}"
        );
    }
    assert!(
        words.iter().any(|w| WORDS.contains(&w.as_str())),
        "no training word in {words:?}"
    );
    let again = sample(&model, &ckpt, &["--sample", "9", "--vocab", s(&vocab), "--seed", "4"]);
    assert_eq!(words, again, "the same seed gave other samples");
    // Each sample depends on the seed and its number only: fewer samples are the first ones.
    let fewer = sample(&model, &ckpt, &["--sample", "3", "--vocab", s(&vocab), "--seed", "4"]);
    assert_eq!(fewer, words[..3]);
    let tempered = ["--sample", "9", "--vocab", s(&vocab), "--temperature", "3", "--seed"];
    let other = |seed: &str| sample(&model, &ckpt, &[&tempered[..], &[seed]].concat());
    assert_ne!(other("4"), other("5"), "seeds 4 and 5 drew the same samples");

    // Without a vocabulary: ids separated by spaces, the same words as decoded.
    let ids = sample(&model, &ckpt, &["--sample", "9", "--boundary", "5", "--seed", "4"]);
    let decoded: Vec<String> = ids
        .iter()
        .map(|l| {
            l.split_whitespace()
                .map(|i| VOCAB[i.parse::<usize>().unwrap()])
                .collect()
        })
        .collect();
    assert_eq!(decoded, words);

    // Greedy: every sample is the single most likely word; more samples than a batch.
    let greedy = sample(&model, &ckpt, &["--sample", "6", "--vocab", s(&vocab), "--greedy"]);
    assert_eq!(greedy.len(), 6);
    assert!(greedy.iter().all(|w| w == &greedy[0] && !w.is_empty()), "{greedy:?}");
}

/// Runs `mpc run` with `args`; asserts exit 1 and one error line containing `expected`.
fn fails(args: &[&str], expected: &str) {
    let o = mpc(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?} printed to stdout");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(expected), "{args:?}: {err}");
}

#[test]
fn bad_sampling_flags_files_and_models_are_one_error_line() {
    let (model, ckpt, _) = trained_tiny_lm("errors");
    let dir = model.parent().unwrap();
    let base = ["run", s(&model), "--weights", s(&ckpt)];
    let run = |extra: &[&'static str]| [&base[..], extra].concat();
    fails(&run(&["--sample", "0"]), "'0' is not a positive integer");
    fails(
        &run(&["--sample", "2", "--temperature", "0"]),
        "'0' is not a positive temperature",
    );
    fails(
        &run(&["--sample", "2", "--temperature=-1"]),
        "'-1' is not a positive temperature",
    );
    fails(
        &run(&["--sample", "2", "--temperature", "inf"]),
        "'inf' is not a positive temperature",
    );
    fails(&run(&["--greedy"]), "--sample");
    fails(
        &run(&["--sample", "2", "--greedy", "--temperature", "2"]),
        "cannot be used with",
    );
    fails(&run(&["--sample", "2", "--out", "p.npy"]), "cannot be used with");
    fails(&["run", s(&model), "--sample", "2"], "--weights <PATH>");
    let missing = dir.join("missing.safetensors");
    let no_ckpt = [
        "run",
        s(&model),
        "--weights",
        s(&missing),
        "--sample",
        "2",
        "--boundary",
        "5",
    ];
    fails(&no_ckpt, "missing.safetensors");
    // The model has no default data, so no vocabulary of its own: the boundary is unknown.
    fails(
        &run(&["--sample", "2"]),
        "--boundary ID, or --vocab FILE with a line '<w>'",
    );
    fails(
        &run(&["--sample", "2", "--boundary", "6"]),
        "boundary token 6 is outside [0, 6)",
    );
    fails(
        &run(&["--sample", "2", "--boundary", "0"]),
        "the pad id of input 'tokens'",
    );

    let short = dir.join("short.txt");
    std::fs::write(&short, "<pad>\na\nb\n").unwrap();
    fails(
        &[&base[..], &["--sample", "2", "--vocab", s(&short)]].concat(),
        "3 lines, but input 'tokens' has vocab 6",
    );
    let unnamed = dir.join("unnamed.txt");
    std::fs::write(&unnamed, "<pad>\na\nb\nc\nd\nend\n").unwrap();
    fails(
        &[&base[..], &["--sample", "2", "--vocab", s(&unnamed)]].concat(),
        "names no boundary token '<w>'",
    );
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "<pad>\na\n\nc\nd\n<w>\n").unwrap();
    fails(
        &[&base[..], &["--sample", "2", "--vocab", s(&blank)]].concat(),
        "line 3: the name of token id 2 is empty",
    );
    let none = dir.join("none.txt");
    fails(
        &[&base[..], &["--sample", "2", "--vocab", s(&none)]].concat(),
        "none.txt",
    );

    // A classifier (two inputs, a label per row) cannot be sampled: the line says why.
    let (tiny, data) = tiny_model("sample_cli", "classifier", 1);
    let tiny_ckpt = tiny.parent().unwrap().join("w.safetensors");
    ok(&["train", s(&tiny), "--data", s(&data), "--save", s(&tiny_ckpt)]);
    fails(
        &[
            "run",
            s(&tiny),
            "--weights",
            s(&tiny_ckpt),
            "--sample",
            "2",
            "--boundary",
            "1",
        ],
        "model 'Tiny' has 2 inputs ('tokens', 'x')",
    );
}
