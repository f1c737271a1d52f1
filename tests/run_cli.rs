//! `mpc run` on new data: a directory of inputs only (no labels) gets predictions and no
//! loss, `--out-class` writes each row's predicted class, and a model over batches of
//! graphs evaluates its checkpoint with one compiled step.

mod common;

use common::{json_lines, mpc, ok, s, scratch};
use mpc_runtime::data::npy;
use serde_json::Value;
use std::path::Path;

/// (descr, shape, values as f64) of a .npy file.
fn read_npy(path: &Path) -> (String, Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let a = npy::parse(&bytes).unwrap();
    let values = (0..a.len())
        .map(|i| a.float(i).or_else(|| a.int(i).map(|v| v as f64)).unwrap())
        .collect();
    (a.descr.clone(), a.shape.clone(), values)
}

#[test]
fn inputs_without_labels_get_predictions_and_classes() {
    let dir = scratch("run_cli", "unlabeled");
    let w = dir.join("w.safetensors");
    ok(&["train", "examples/text_classifier.mp", "--epochs", "1", "--save", s(&w)]);
    // 70 rows: a full batch and a partial one; labeled and unlabeled copies.
    let (labeled, unlabeled) = (dir.join("labeled"), dir.join("unlabeled"));
    let tokens: Vec<i32> = (0..70 * 32).map(|i| i * 7919 % 10000).collect();
    for d in [&labeled, &unlabeled] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("tokens.npy"), npy::encode_i32(&[70, 32], &tokens)).unwrap();
    }
    let y: Vec<i32> = (0..70).map(|i| i % 2).collect();
    std::fs::write(labeled.join("y.npy"), npy::encode_i32(&[70], &y)).unwrap();

    let run = |data: &Path, out: &str| {
        let (p, c) = (dir.join(format!("{out}.npy")), dir.join(format!("{out}_class.npy")));
        let args = [
            "run",
            "examples/text_classifier.mp",
            "--weights",
            s(&w),
            "--data",
            s(data),
        ];
        let line = json_lines(&ok(
            &[&args[..], &["--json", "--out", s(&p), "--out-class", s(&c)]].concat()
        ));
        (line[0].clone(), read_npy(&p), read_npy(&c))
    };
    let (with, preds, _) = run(&labeled, "with");
    let (without, same_preds, classes) = run(&unlabeled, "without");
    assert!(with["loss"].as_f64().is_some());
    assert_eq!(with["labeled"], true);
    // No labels: no loss or accuracy, the same predictions.
    assert_eq!((&without["loss"], &without["accuracy"]), (&Value::Null, &Value::Null));
    assert_eq!(without["labeled"], false);
    assert_eq!(preds, same_preds);
    // The class is the highest-scoring one.
    assert_eq!((preds.0.as_str(), preds.1.as_slice()), ("<f4", &[70, 2][..]));
    assert_eq!((classes.0.as_str(), classes.1.as_slice()), ("<i4", &[70][..]));
    for (row, &c) in preds.2.chunks(2).zip(&classes.2) {
        assert_eq!(c, if row[1] > row[0] { 1.0 } else { 0.0 });
    }
    // The text form says there are no labels, and nothing is written without --out.
    let p = dir.join("p.npy");
    let text = ok(&[
        "run",
        "examples/text_classifier.mp",
        "--weights",
        s(&w),
        "--data",
        s(&unlabeled),
        "--out",
        s(&p),
    ]);
    assert!(
        text.contains("on 70 rows of") && text.contains("without labels"),
        "{text}"
    );
    assert!(!text.contains("loss"), "{text}");
    let o = mpc(&[
        "run",
        "examples/text_classifier.mp",
        "--weights",
        s(&w),
        "--data",
        s(&unlabeled),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = common::stderr(&o);
    assert!(
        err.contains("no labels, so there is no loss to report: --out PATH"),
        "{err}"
    );
}

#[test]
fn batches_of_graphs_evaluate_their_checkpoint() {
    let dir = scratch("run_cli", "molecules");
    let w = dir.join("w.safetensors");
    let trained = json_lines(&ok(&[
        "train",
        "examples/molecules.mp",
        "--epochs",
        "1",
        "--json",
        "--save",
        s(&w),
    ]));
    // The held-out graphs, padded to one capacity: the loss training printed.
    let run = json_lines(&ok(&["run", "examples/molecules.mp", "--weights", s(&w), "--json"]));
    assert_eq!(run[0]["loss"], trained.last().unwrap()["eval_loss"]);
    // The same graphs from a directory without targets: the same predictions.
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let test = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/molecules/test");
    for f in ["x", "edges", "edge_features", "node_counts", "edge_counts"] {
        std::fs::copy(test.join(format!("{f}.npy")), data.join(format!("{f}.npy"))).unwrap();
    }
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    ok(&["run", "examples/molecules.mp", "--weights", s(&w), "--out", s(&a)]);
    ok(&[
        "run",
        "examples/molecules.mp",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--out",
        s(&b),
    ]);
    assert_eq!(read_npy(&a), read_npy(&b));
    // A regression has no classes to write.
    let c = dir.join("c.npy");
    let o = mpc(&[
        "run",
        "examples/molecules.mp",
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--out-class",
        s(&c),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(common::stderr(&o).contains("--out-class: model 'Molecules' is not a classifier"));
}
