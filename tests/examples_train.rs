//! The examples train on their default data to the accuracy the README promises:
//! fusion.mp (synthetic, needs two modalities), graph.mp (the karate club, and the
//! synthetic benchmark graph), gat.mp (graph attention on the karate club),
//! language_id.mp (real words). Also: fusion fed one
//! modality stays near chance, graph training is bit-identical on 1 and 2 threads, and
//! bad graph data is one line naming the file, the edge and the value. char_lm.mp (the
//! same words as next characters) beats the unigram baseline, and `mpc run --sample` draws
//! words of its alphabet from the trained checkpoint. molecules.mp (a data set of graphs)
//! predicts the molecules' TPSA far better than their mean, with one compiled step of
//! each kind for batches of every size.

mod common;

use common::{json_lines, mpc, ok, s, scratch};
use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::data::defaults::default_dataset;
use mpc_runtime::data::{npy, Dataset, Tensor};
use mpc_runtime::session::Session;
use serde_json::Value;
use std::path::PathBuf;

/// README promises: held-out accuracy after the epochs named.
const FUSION_ACCURACY: f64 = 0.9; // 3 epochs (measured 0.953)
const KARATE_ACCURACY: f64 = 0.88; // 50 epochs (the train block's)
const GAT_KARATE_ACCURACY: f64 = 0.9; // gat.mp, 50 epochs (the train block's); measured 0.923-0.962 over seeds 0-5
const BENCHMARK_GRAPH_ACCURACY: f64 = 0.9; // 30 epochs, N=2000, E=10000
const LANGUAGE_ID_ACCURACY: f64 = 0.85; // 10 epochs (the train block's)
/// The README's promise for transformer.mp, besides beating language_id.mp in the same
/// run. 12 epochs (the train block's); measured 0.873 at its seed 1, 0.884 and 0.880 at
/// seeds 2 and 3 (dropout masks from all four Philox words; 0.887 with the first word
/// only), language_id.mp 0.870.
const TRANSFORMER_ACCURACY: f64 = 0.87;

/// char_lm.mp: held-out cross-entropy per character (nats, every character and the end
/// of the word) of the unigram model of the training characters with add-one smoothing,
/// as make_char_lm.py prints it, and the README's promise, clearly below it.
const CHAR_LM_UNIGRAM_CE: f64 = 2.9896;

/// molecules.mp: held-out mean absolute error of the TPSA (square angstroms) after the
/// train block's 30 epochs, against the mean predictor's 29.33 (make_molecules.py).
const MOLECULES_MEAN_PREDICTOR_MAE: f64 = 29.33;
const MOLECULES_MAE: f64 = 2.0; // measured 0.55-1.36 over seeds 0-2
const CHAR_LM_CE: f64 = 2.30; // 3 epochs (the train block's); measured 2.246
const _: () = assert!(
    CHAR_LM_CE <= CHAR_LM_UNIGRAM_CE - 0.3,
    "the promise must be clearly below the baseline"
);

/// The JSON lines of a successful `mpc train ... --json`.
fn train_json(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["train"];
    all.extend_from_slice(args);
    all.push("--json");
    json_lines(&ok(&all))
}

fn final_eval_accuracy(lines: &[Value]) -> f64 {
    let last = lines.last().expect("a final line");
    assert_eq!(last["final"], true);
    last["eval_accuracy"].as_f64().expect("an accuracy")
}

#[test]
fn fusion_reaches_the_readme_accuracy() {
    let lines = train_json(&["examples/fusion.mp", "--epochs", "3"]);
    let acc = final_eval_accuracy(&lines);
    assert!(
        acc >= FUSION_ACCURACY,
        "fusion: held-out accuracy {acc} < {FUSION_ACCURACY}"
    );
    assert_eq!(lines.last().unwrap()["eval_rows"], 1024);
}

/// `data` with the named columns set to zero (token id 0, or 0.0).
fn blank(mut data: Dataset, names: &[&str]) -> Dataset {
    for name in names {
        match data.column_mut(name).unwrap() {
            Tensor::Float(v) => v.iter_mut().for_each(|x| *x = 0.0),
            Tensor::Int(v) => v.iter_mut().for_each(|x| *x = 0),
        }
    }
    data
}

/// Held-out accuracy of fusion.mp after `epochs` on its default data with `blanked`
/// inputs zeroed in training and held-out rows alike.
fn fusion_accuracy(blanked: &[&str], epochs: usize) -> f64 {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fusion.mp")).unwrap();
    let compiled = compile(&src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let (train, held) = default_dataset(&compiled.model, &compiled.dims, 42).unwrap();
    let (train, held) = (blank(train, blanked), blank(held, blanked));
    let mut session = Session::new(compiled, 42).unwrap();
    let mut rng = SplitMix64::new(42);
    for _ in 0..epochs {
        session.train_epoch(&train, &mut rng).unwrap();
    }
    session.evaluate(&held).unwrap().accuracy.unwrap()
}

/// The label is (text class + image class) mod 3: the same model fed the text alone, or
/// the image alone, stays near chance (1/3) where the fused model passes 0.9.
#[test]
fn fusion_with_one_modality_stays_near_chance() {
    for (only, blanked) in [("text", ["image", "audio"]), ("image", ["text", "audio"])] {
        let acc = fusion_accuracy(&blanked, 3);
        eprintln!("fusion fed only the {only}: held-out accuracy {acc:.3}");
        assert!(
            acc < 0.42,
            "fusion fed only the {only}: held-out accuracy {acc}, not near chance"
        );
    }
}

#[test]
fn language_id_reaches_the_readme_accuracy() {
    let lines = train_json(&["examples/language_id.mp"]);
    let acc = final_eval_accuracy(&lines);
    assert!(
        acc >= LANGUAGE_ID_ACCURACY,
        "language_id: held-out accuracy {acc} < {LANGUAGE_ID_ACCURACY}"
    );
    assert_eq!(lines.last().unwrap()["eval_rows"], 5000);
}

#[test]
fn the_transformer_beats_the_bag_of_bigrams_on_language_id() {
    let lines = train_json(&["examples/transformer.mp"]);
    let acc = final_eval_accuracy(&lines);
    assert!(
        acc >= TRANSFORMER_ACCURACY,
        "transformer: held-out accuracy {acc} < {TRANSFORMER_ACCURACY}"
    );
    let bigrams = final_eval_accuracy(&train_json(&["examples/language_id.mp"]));
    assert!(
        acc > bigrams,
        "transformer: held-out accuracy {acc}, the bag of bigrams (language_id.mp) {bigrams}"
    );
    assert_eq!(lines.last().unwrap()["eval_rows"], 5000);
}

#[test]
fn char_lm_beats_the_unigram_baseline_and_samples_words_of_its_alphabet() {
    let ckpt = scratch("examples_train", "char_lm").join("lm.safetensors");
    let lines = train_json(&["examples/char_lm.mp", "--save", s(&ckpt)]);
    let last = lines.last().expect("a final line");
    let ce = last["eval_loss"].as_f64().expect("a held-out loss");
    assert!(
        ce <= CHAR_LM_CE,
        "char_lm: held-out cross-entropy {ce} > {CHAR_LM_CE} nats per character"
    );
    // Every held-out word: its characters and the end of the word.
    assert_eq!(last["eval_rows"], 5000);

    let vocab =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/char_lm/vocab.txt")).unwrap();
    let letters: String = vocab.lines().filter(|l| l.chars().count() == 1).collect();
    assert_eq!(letters.chars().count(), 49, "a-z and 23 accented letters");
    let sample = |extra: &[&str]| {
        let mut args = vec!["run", "examples/char_lm.mp", "--weights", s(&ckpt), "--sample", "12"];
        args.extend_from_slice(extra);
        ok(&args).lines().map(str::to_string).collect::<Vec<_>>()
    };
    let words = sample(&["--seed", "7", "--temperature", "0.8"]);
    assert_eq!(words.len(), 12, "{words:?}");
    for w in &words {
        let n = w.chars().count();
        assert!(
            (1..=17).contains(&n) && w.chars().all(|c| letters.contains(c)),
            "{words:?}"
        );
    }
    // Words, not noise: most are between 3 and 14 letters, as the training words are.
    let wordlike = words.iter().filter(|w| (3..=14).contains(&w.chars().count())).count();
    assert!(wordlike >= 9, "{words:?}");
    assert_eq!(sample(&["--seed", "7", "--temperature", "0.8"]), words);
    assert_ne!(sample(&["--seed", "8", "--temperature", "0.8"]), words);
    eprintln!("char_lm samples: {}", words.join(" "));
}

#[test]
fn karate_club_reaches_the_readme_accuracy_bit_identically_on_1_and_2_threads() {
    let one = train_json(&["examples/graph.mp", "--threads", "1"]);
    let two = train_json(&["examples/graph.mp", "--threads", "2"]);
    let numbers = |lines: &[Value]| {
        lines
            .iter()
            .map(|l| (l["loss"].as_f64(), l["eval_loss"].as_f64(), l["eval_accuracy"].as_f64()))
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&one), numbers(&two), "--threads 1 and 2 differ");
    let acc = final_eval_accuracy(&one);
    assert!(
        acc >= KARATE_ACCURACY,
        "karate: held-out accuracy {acc} < {KARATE_ACCURACY}"
    );
    // Scored on the 26 held-out members; one full-batch step per epoch.
    assert_eq!(one.last().unwrap()["eval_rows"], 26);
    assert_eq!(one[0]["steps"], 1);
}

#[test]
fn graph_attention_on_the_karate_club_reaches_the_readme_accuracy_bit_identically_on_1_and_2_threads() {
    let one = train_json(&["examples/gat.mp", "--threads", "1"]);
    let two = train_json(&["examples/gat.mp", "--threads", "2"]);
    let losses = |lines: &[Value]| lines.iter().map(|l| l["loss"].as_f64()).collect::<Vec<_>>();
    assert_eq!(losses(&one), losses(&two), "--threads 1 and 2 differ");
    let acc = final_eval_accuracy(&one);
    assert!(
        acc >= GAT_KARATE_ACCURACY,
        "gat: held-out accuracy {acc} < {GAT_KARATE_ACCURACY}"
    );
    assert_eq!(one.last().unwrap()["eval_rows"], 26);
}

#[test]
fn benchmark_graph_reaches_the_readme_accuracy() {
    let args = [
        "examples/graph.mp",
        "--dim",
        "N=2000",
        "--dim",
        "E=10000",
        "--dim",
        "F=32",
    ];
    let mut all = args.to_vec();
    all.extend(["--epochs", "30"]);
    let lines = train_json(&all);
    let acc = final_eval_accuracy(&lines);
    assert!(
        acc >= BENCHMARK_GRAPH_ACCURACY,
        "synthetic graph: held-out accuracy {acc} < {BENCHMARK_GRAPH_ACCURACY}"
    );
    assert_eq!(lines.last().unwrap()["eval_rows"], 1000);
}

/// The karate club as files; `edit` changes the edge list first.
fn karate_dir(name: &str, edit: impl FnOnce(&mut Vec<i32>)) -> PathBuf {
    let dir = scratch("examples_train", name);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/karate");
    std::fs::create_dir_all(dir.join("test")).unwrap();
    for f in ["x.npy", "y.npy", "test/y.npy"] {
        std::fs::copy(data.join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(data.join("g.edges.npy")).unwrap();
    let a = npy::parse(&bytes).unwrap();
    let mut edges: Vec<i32> = (0..a.len()).map(|i| a.int(i).unwrap() as i32).collect();
    edit(&mut edges);
    std::fs::write(dir.join("g.edges.npy"), npy::encode_i32(&a.shape, &edges)).unwrap();
    dir
}

#[test]
fn karate_files_train_as_the_default_does_and_bad_edges_are_one_line() {
    let dir = karate_dir("ok", |_| {});
    let without_time = |lines: Vec<Value>| {
        lines
            .into_iter()
            .map(|mut l| {
                l.as_object_mut().unwrap().remove("seconds");
                l.as_object_mut().unwrap().remove("step_ms");
                l
            })
            .collect::<Vec<_>>()
    };
    let from_files = train_json(&["examples/graph.mp", "--data", dir.to_str().unwrap(), "--epochs", "5"]);
    let default = train_json(&["examples/graph.mp", "--epochs", "5"]);
    assert_eq!(without_time(from_files), without_time(default));

    let dir = karate_dir("bad", |e| e[156 + 17] = 40);
    let o = mpc(&["train", "examples/graph.mp", "--data", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        format!(
            "error: {}: edge 17 (column 17): destination 40 is outside [0, 34) (nodes of graph 'g')\n",
            dir.join("g.edges.npy").display()
        )
    );
    let o = mpc(&[
        "train",
        "examples/graph.mp",
        "--data",
        dir.to_str().unwrap(),
        "--batch",
        "8",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("--batch 8: model 'GraphSage' is a graph model"), "{e}");
}

#[test]
fn molecules_beat_the_mean_predictor_with_one_compile_per_step_kind() {
    let lines = train_json(&["examples/molecules.mp", "--threads", "2"]);
    let last = lines.last().unwrap();
    let mae = last["eval_mae"].as_f64().unwrap();
    assert!(
        mae < MOLECULES_MAE && MOLECULES_MAE < MOLECULES_MEAN_PREDICTOR_MAE / 10.0,
        "held-out MAE {mae}"
    );
    assert_eq!(last["eval_rows"], 998);
    // 63 batches of 64 molecules per epoch (the last of 25), each of its own node and
    // edge count, all run by one training step and one evaluation step.
    assert_eq!(last["compiles"], serde_json::json!({"train": 1, "eval": 1}), "{last}");
    assert_eq!(lines[0]["steps"], 63);
    // --batch counts graphs.
    let lines = train_json(&["examples/molecules.mp", "--batch", "50", "--epochs", "1"]);
    assert_eq!(
        (lines[0]["steps"].as_u64(), lines[1]["compiles"]["train"].as_u64()),
        (Some(80), Some(1))
    );
}
