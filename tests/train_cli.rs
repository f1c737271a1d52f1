//! `mpc train` and `mpc run` end to end: the README's promise (held-out accuracy passes
//! 0.9 within 3 epochs on the default data), the JSON lines, the flags, and that `mpc run`
//! on a checkpoint written by `mpc train` reproduces training's final held-out loss.

mod common;

use common::{json_lines, mpc, ok, s, scratch};
use mpc_compiler::pipeline::compile;
use mpc_runtime::data::defaults::default_dataset;
use mpc_runtime::data::synthetic::TokenTask;
use mpc_runtime::data::{npy, Tensor};
use serde_json::Value;
use std::path::Path;

const EXAMPLE: &str = "examples/text_classifier.mp";

/// The held-out accuracy the README promises after 3 epochs on the default data.
const README_ACCURACY: f64 = 0.9;

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number '{key}' in {v}"))
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-12), "{what}: {a} vs {b}");
}

#[test]
fn three_epochs_json_reach_the_readme_accuracy() {
    let out = ok(&["train", EXAMPLE, "--epochs", "3", "--json"]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{out}");
    for (i, l) in lines[..3].iter().enumerate() {
        assert_eq!(l["epoch"], i + 1);
        for key in ["loss", "accuracy", "eval_loss", "eval_accuracy", "seconds"] {
            assert!(l[key].is_f64(), "{key} in {l}");
        }
        assert_eq!(l["steps"], 4096 / 64, "{l}");
        // The median step: positive, and no more than the epoch's time per step.
        let step_ms = f(l, "step_ms");
        assert!(step_ms > 0.0 && step_ms * 64.0 <= 2.0 * f(l, "seconds") * 1e3, "{l}");
    }
    let last = &lines[3];
    assert_eq!(last["final"], true);
    assert_eq!(last["steps"], 3 * 4096 / 64);
    assert!(f(&lines[2], "loss") < f(&lines[0], "loss"), "{out}");
    assert!(f(last, "eval_accuracy") >= README_ACCURACY, "{out}");
    assert_eq!(f(last, "eval_loss"), f(&lines[2], "eval_loss"));
}

#[test]
fn run_reproduces_the_final_eval_loss_and_writes_predictions() {
    let dir = scratch("train_cli", "reproduce");
    let ckpt = dir.join("w.safetensors");
    let preds = dir.join("preds.npy");
    // B=256 and T=8 keep the interpreter quick: 16 steps.
    let dims = ["--dim", "T=8"];
    let train = json_lines(&ok(&[
        &[
            "train",
            EXAMPLE,
            "--epochs",
            "1",
            "--batch",
            "256",
            "--json",
            "--save",
            s(&ckpt),
        ][..],
        &dims[..],
    ]
    .concat()));
    let fin = train.last().unwrap();
    assert_eq!(fin["checkpoint"], s(&ckpt));
    // The checkpoint remembers B=256 and T=8 and the seed; --dim may repeat them.
    let run = json_lines(&ok(&[
        "run",
        EXAMPLE,
        "--weights",
        s(&ckpt),
        "--json",
        "--out",
        s(&preds),
    ]));
    assert_eq!(run.len(), 1);
    assert_close(f(&run[0], "loss"), f(fin, "eval_loss"), "run loss vs train eval_loss");
    assert_close(f(&run[0], "accuracy"), f(fin, "eval_accuracy"), "accuracy");
    assert_eq!(run[0]["rows"], 1024);
    assert_eq!(run[0]["step"], 16);
    let again = json_lines(&ok(&[
        &["run", EXAMPLE, "--weights", s(&ckpt), "--json"][..],
        &dims[..],
    ]
    .concat()));
    assert_eq!(again[0]["loss"], run[0]["loss"]);

    // Predictions: logits [rows, classes] whose arg-max scores the reported accuracy.
    let bytes = std::fs::read(&preds).unwrap();
    let a = npy::parse(&bytes).unwrap();
    assert_eq!((a.descr.as_str(), a.shape.as_slice()), ("<f4", &[1024, 2][..]));
    let src = std::fs::read_to_string(EXAMPLE).unwrap();
    let c = compile(&src, &[("B".into(), 256), ("T".into(), 8)]).unwrap_or_else(|e| panic!("{e:?}"));
    let (_, held_out) = default_dataset(&c.model, &c.dims, 42).unwrap();
    let Tensor::Int(labels) = &held_out.columns[1].2 else {
        panic!("labels are i32")
    };
    let hits = (0..1024)
        .filter(|&r| {
            let (l0, l1) = (a.float(2 * r).unwrap(), a.float(2 * r + 1).unwrap());
            (l1 > l0) as i32 == labels[r]
        })
        .count();
    assert_close(
        hits as f64 / 1024.0,
        f(&run[0], "accuracy"),
        "accuracy from predictions",
    );
}

#[test]
fn human_output_and_flags() {
    let out = ok(&[
        "train",
        EXAMPLE,
        "--epochs",
        "1",
        "--batch",
        "512",
        "--dim",
        "T=8",
        "--threads",
        "2",
        "--seed",
        "3",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("training TextClassifier on 4096 synthetic rows (1024 held out), batch 512"));
    assert!(lines[0].contains("seed 3"), "{out}");
    assert!(lines[1].starts_with("epoch 1/1  train loss "), "{out}");
    assert!(lines[1].contains("held-out loss"), "{out}");
    assert!(lines[2].starts_with("done: 8 steps"), "{out}");
    // No progress bar when stderr is not a terminal.
    let o = mpc(&["train", EXAMPLE, "--epochs", "0", "--dim", "T=4"]);
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn lr_overrides_the_optimizer() {
    let eval_loss = |lr: &str| {
        let out = ok(&[
            "train", EXAMPLE, "--epochs", "1", "--batch", "512", "--dim", "T=8", "--json", "--lr", lr,
        ]);
        let lines = json_lines(&out);
        assert!(String::from(&out).contains("\"steps\":8"));
        f(lines.last().unwrap(), "eval_loss")
    };
    let (tiny, big) = (eval_loss("1e-9"), eval_loss("1e-2"));
    // With a negligible step the loss stays at its initial value (about ln 2 for two classes).
    assert!(tiny > 0.6 && big < 0.5 * tiny, "lr 1e-9: {tiny}, lr 1e-2: {big}");
    for bad in ["0", "-1", "x", "inf"] {
        let o = mpc(&["train", EXAMPLE, "--lr", bad]);
        assert_eq!(o.status.code(), Some(1), "--lr {bad}");
    }
    let o = mpc(&["train", EXAMPLE, "--batch", "0"]);
    assert_eq!(o.status.code(), Some(1));
}

/// Writes the keyword task as files: `tokens.npy` and `y.csv`, with `test/` when asked.
fn write_data(dir: &Path, rows: usize, test_rows: usize) {
    let task = TokenTask {
        rows: rows + test_rows,
        seq_len: 8,
        vocab: 10000,
        classes: 2,
        keywords: 20,
        signal: 0.3,
        seed: 11,
    };
    let (train, test) = task.generate("tokens", "y").split_tail(test_rows);
    let mut parts = vec![(dir.to_path_buf(), train)];
    if test_rows > 0 {
        parts.push((dir.join("test"), test));
    }
    for (d, data) in parts {
        std::fs::create_dir_all(&d).unwrap();
        for (name, shape, col) in &data.columns {
            match (name.as_str(), col) {
                ("tokens", Tensor::Int(v)) => {
                    std::fs::write(d.join("tokens.npy"), npy::encode_i32(&[data.rows, shape[0]], v)).unwrap()
                }
                ("y", Tensor::Int(v)) => {
                    let text: String = std::iter::once("label\n".to_string())
                        .chain(v.iter().map(|l| format!("{l}\n")))
                        .collect();
                    std::fs::write(d.join("y.csv"), text).unwrap()
                }
                _ => unreachable!(),
            }
        }
    }
}

#[test]
fn data_dir_with_test_split() {
    let dir = scratch("train_cli", "data_test_split");
    let data = dir.join("data");
    write_data(&data, 1024, 256);
    let ckpt = dir.join("w.safetensors");
    let common = ["--dim", "T=8", "--data", s(&data)];
    let train = json_lines(&ok(&[
        &[
            "train",
            EXAMPLE,
            "--epochs",
            "2",
            "--batch",
            "128",
            "--json",
            "--save",
            s(&ckpt),
        ][..],
        &common[..],
    ]
    .concat()));
    assert_eq!(train[0]["steps"], 8);
    let fin = train.last().unwrap();
    assert_eq!(fin["eval_rows"], 256);
    let run = json_lines(&ok(&[
        &["run", EXAMPLE, "--weights", s(&ckpt), "--json"][..],
        &common[..],
    ]
    .concat()));
    assert_close(f(&run[0], "loss"), f(fin, "eval_loss"), "run on DIR/test");
    // Human output names the data.
    let out = ok(&[&["run", EXAMPLE, "--weights", s(&ckpt)][..], &common[..]].concat());
    assert!(
        out.contains(&format!("on 256 rows of {}", data.join("test").display())),
        "{out}"
    );
}

#[test]
fn data_dir_with_holdout() {
    let dir = scratch("train_cli", "data_holdout");
    let data = dir.join("data");
    write_data(&data, 1000, 0);
    let ckpt = dir.join("w.safetensors");
    let common = ["--dim", "T=8", "--data", s(&data), "--holdout", "0.25"];
    let train = json_lines(&ok(&[
        &[
            "train",
            EXAMPLE,
            "--epochs",
            "1",
            "--batch",
            "250",
            "--json",
            "--save",
            s(&ckpt),
        ][..],
        &common[..],
    ]
    .concat()));
    // 750 training rows: 3 full batches of 250; 250 held out.
    assert_eq!(train[0]["steps"], 3);
    let fin = train.last().unwrap();
    assert_eq!(fin["eval_rows"], 250);
    let run = json_lines(&ok(&[
        &["run", EXAMPLE, "--weights", s(&ckpt), "--json"][..],
        &common[..],
    ]
    .concat()));
    assert_close(f(&run[0], "loss"), f(fin, "eval_loss"), "run on the held-out tail");
    // Without --holdout, run evaluates every row of DIR.
    let all = json_lines(&ok(&[
        "run",
        EXAMPLE,
        "--weights",
        s(&ckpt),
        "--json",
        "--dim",
        "T=8",
        "--data",
        s(&data),
    ]));
    assert_eq!(all[0]["rows"], 1000);
    // Training without a held-out part reports no eval numbers.
    let out = ok(&[
        "train",
        EXAMPLE,
        "--epochs",
        "1",
        "--batch",
        "500",
        "--json",
        "--dim",
        "T=8",
        "--data",
        s(&data),
    ]);
    let lines = json_lines(&out);
    assert!(lines[0]["eval_loss"].is_null(), "{out}");
    // --holdout needs --data.
    let o = mpc(&["train", EXAMPLE, "--holdout", "0.5"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn partial_batches_train_and_evaluate() {
    let dir = scratch("train_cli", "partial");
    let data = dir.join("data");
    write_data(&data, 150, 50);
    let ckpt = dir.join("w.safetensors");
    // 150 rows in batches of 64: 64, 64 and 22; 50 held-out rows: one partial batch.
    let common = ["--dim", "T=8", "--data", s(&data)];
    let out = ok(&[
        &["train", EXAMPLE, "--epochs", "2", "--json", "--save", s(&ckpt)][..],
        &common[..],
    ]
    .concat());
    let lines = json_lines(&out);
    assert_eq!(lines[0]["steps"], 3, "{out}");
    let fin = lines.last().unwrap();
    assert_eq!(
        (fin["steps"].clone(), fin["eval_rows"].clone()),
        (6.into(), 50.into()),
        "{out}"
    );
    let preds = dir.join("p.npy");
    let run = json_lines(&ok(&[
        &["run", EXAMPLE, "--weights", s(&ckpt), "--json", "--out", s(&preds)][..],
        &common[..],
    ]
    .concat()));
    assert_close(f(&run[0], "loss"), f(fin, "eval_loss"), "partial held-out batch");
    let bytes = std::fs::read(&preds).unwrap();
    assert_eq!(npy::parse(&bytes).unwrap().shape, vec![50, 2]);
}

#[test]
fn device_cuda_is_one_clear_line() {
    let dir = scratch("train_cli", "cuda");
    let o = mpc(&[
        "run",
        EXAMPLE,
        "--weights",
        s(&dir.join("none.safetensors")),
        "--device",
        "cuda",
    ]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err,
        "error: --device cuda: no CUDA driver found (libcuda.so could not be loaded)\n"
    );
}

#[test]
fn model_without_default_data_asks_for_data() {
    let dir = scratch("train_cli", "no_default");
    let model = dir.join("m.mp");
    std::fs::write(
        &model,
        "model R { dims { B = 4 } input x: f32[B, 3] label t: f32[B, 2] loss mse(linear(x, 2), t) }",
    )
    .unwrap();
    let o = mpc(&["train", s(&model)]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("has no default dataset"), "{err}");
    assert!(err.contains("--data DIR"), "{err}");
    // With data it trains: an f32 label, no accuracy.
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let x: Vec<f32> = (0..24).map(|i| i as f32 / 24.0).collect();
    let t: Vec<f32> = x.chunks(3).flat_map(|r| [r[0] + r[1], r[2]]).collect();
    std::fs::write(data.join("x.npy"), npy::encode_f32(&[8, 3], &x)).unwrap();
    std::fs::write(data.join("t.npy"), npy::encode_f32(&[8, 2], &t)).unwrap();
    let out = ok(&["train", s(&model), "--data", s(&data), "--epochs", "2", "--json"]);
    let lines = json_lines(&out);
    assert!(lines[0]["accuracy"].is_null() && lines[0]["loss"].is_f64(), "{out}");
}

/// `--init`: training starts from the given parameters (mpc's own checkpoint, or a file
/// written by Python's `safetensors`), and a file that does not fit the model is one
/// line naming the first parameter that is missing or mismatched.
#[test]
fn init_starts_from_given_parameters() {
    let dir = scratch("train_cli", "init");
    let saved = dir.join("graph.safetensors");
    let trained = json_lines(&ok(&[
        "train",
        "examples/graph.mp",
        "--epochs",
        "3",
        "--json",
        "--save",
        s(&saved),
    ]));
    // No epochs: the numbers of the parameters it starts from, the saved ones.
    let from = json_lines(&ok(&[
        "train",
        "examples/graph.mp",
        "--epochs",
        "0",
        "--init",
        s(&saved),
        "--json",
    ]));
    let eval = |lines: &[Value]| f(lines.last().unwrap(), "eval_loss");
    assert_eq!(eval(&from).to_bits(), eval(&trained).to_bits());
    let fresh = json_lines(&ok(&["train", "examples/graph.mp", "--epochs", "0", "--json"]));
    assert_ne!(eval(&fresh), eval(&trained));

    // runtime/tests/fixtures/python.safetensors (h.linear.weight [2, 3], bias [3]).
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/tests/fixtures/python.safetensors");
    let model = dir.join("py.mp");
    let src = "model Py { dims { B = 4 } input x: f32[B, 2] label y: i32[B] classes 3 \
               let h = linear(x, 3) loss cross_entropy(h, y) }";
    std::fs::write(&model, src).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
    std::fs::write(data.join("x.npy"), npy::encode_f32(&[8, 2], &x)).unwrap();
    let y = [0, 1, 2, 0, 1, 2, 0, 1];
    std::fs::write(data.join("y.npy"), npy::encode_i32(&[8], &y)).unwrap();
    std::fs::create_dir_all(data.join("test")).unwrap();
    std::fs::write(data.join("test/x.npy"), npy::encode_f32(&[8, 2], &x)).unwrap();
    std::fs::write(data.join("test/y.npy"), npy::encode_i32(&[8], &y)).unwrap();
    let run = |init: &Path, epochs: &str| {
        let args = [
            "train",
            s(&model),
            "--data",
            s(&data),
            "--init",
            s(init),
            "--epochs",
            epochs,
            "--json",
        ];
        mpc(&args)
    };
    let o = run(&python, "2");
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // Without epochs, the held-out loss is that of the file's weights: the cross-entropy
    // of x W + b, W = [[-0.5, -0.25, 0], [0.25, 0.5, 0.75]], b = [1.5, -2, 0.001].
    let o = run(&python, "0");
    let zero = json_lines(&common::stdout(&o));
    let (w, b) = ([[-0.5, -0.25, 0.0], [0.25, 0.5, 0.75]], [1.5, -2.0, 1e-3]);
    let expected: f64 = (0..8)
        .map(|r| {
            let z: Vec<f64> = (0..3)
                .map(|c| x[2 * r] as f64 * w[0][c] + x[2 * r + 1] as f64 * w[1][c] + b[c])
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            lse - z[y[r] as usize]
        })
        .sum::<f64>()
        / 8.0;
    assert_close(
        f(zero.last().unwrap(), "eval_loss"),
        expected,
        "the Python file's weights",
    );
    // A file of another model.
    let o = run(&saved, "1");
    let err = common::stderr(&o);
    assert_eq!((o.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(
        err.contains("graph.safetensors: parameter 'h.linear.weight' has shape [34, 16], the model's is [2, 3]"),
        "{err}"
    );
}
