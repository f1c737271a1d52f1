//! Resource limits and hostile checkpoints, through the `mpc` binary: sizes beyond the
//! machine stop before anything is allocated (one `error:` line naming the part and the
//! tensor responsible, exit 1, no abort), `check` and `inspect` report the memory a run
//! needs, a checkpoint's metadata and weights are validated, and a data set with nothing
//! to learn gets a warning.

mod common;

use common::{mpc, ok, s, stderr, tiny_model, tiny_source};
use mpc_compiler::pipeline;
use mpc_compiler::specialize;
use mpc_runtime::checkpoint::{self, Meta};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `o` failed with exit code 1 and one `error:` line that contains every one of `parts`.
fn one_error(o: &Output, parts: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    for p in parts {
        assert!(err.contains(p), "'{p}' missing from: {err}");
    }
}

/// The tiny model with `from` replaced by `to` in its source, and its data.
fn variant(name: &str, from: &str, to: &str) -> (PathBuf, PathBuf) {
    let (model, data) = tiny_model("limits", name, 1);
    let source = tiny_source(1);
    assert!(source.contains(from), "{from}");
    std::fs::write(&model, source.replace(from, to)).unwrap();
    (model, data)
}

#[test]
fn sizes_beyond_the_machine_stop_before_allocating_with_one_line() {
    // (model edit, extra flags, what the message must name)
    let cases: [(&str, &str, &[&str], &str); 4] = [
        ("B = 4", "B = 4000000000", &[], "(B = 4000000000)"),
        ("vocab 1000", "vocab 2000000000", &[], "[2000000000, 4]"),
        ("embed(tokens, 4)", "embed(tokens, 3000000000)", &[], "3000000000]"),
        ("T = 3", "T = 3", &["--batch", "4000000000"], "(B = 4000000000)"),
    ];
    for (from, to, flags, names) in cases {
        let (model, data) = variant("huge", from, to);
        let mut args = vec!["train", s(&model), "--data", s(&data)];
        args.extend(flags);
        let o = mpc(&args);
        one_error(&o, &["training needs", "of memory, more than", names]);
        // The same with an explicit budget: the flag is named as the budget's source.
        args.extend(["--max-memory", "100G"]);
        one_error(
            &mpc(&args),
            &["more than the budget of 100 GB set by --max-memory", names],
        );
    }
    // The default data is sized before it is generated: 5120 rows of T = 4e9 tokens.
    let o = mpc(&["train", "examples/text_classifier.mp", "--dim", "T=4000000000"]);
    one_error(
        &o,
        &[
            "the largest part is the default data",
            "input 'tokens' [B, T] = [64, 4000000000]",
        ],
    );
}

#[test]
fn max_memory_sets_the_budget_and_is_parsed_strictly() {
    let (model, data) = tiny_model("limits", "max_memory", 1);
    let base = ["train", s(&model), "--data", s(&data)];
    let o = mpc(&[&base[..], &["--max-memory", "2k"]].concat());
    one_error(
        &o,
        &[
            "training needs",
            "more than the budget of 2.00 kB set by --max-memory",
            "the largest part is",
        ],
    );
    ok(&[&base[..], &["--max-memory", "1GiB"]].concat());
    for bad in ["-1G", "0", "lots", "8X"] {
        one_error(
            &mpc(&[&base[..], &["--max-memory", bad]].concat()),
            &["'--max-memory <SIZE>'", bad],
        );
    }
}

#[test]
fn check_and_inspect_report_the_memory_to_train() {
    let (model, _) = tiny_model("limits", "report", 1);
    let check = ok(&["check", s(&model)]);
    assert!(check.trim_end().ends_with("of memory to train"), "{check}");
    let inspect = ok(&["inspect", s(&model)]);
    // Tiny: embed 1000x4 + linear 6x3 + bias 3 = 4021 parameters, 16,084 bytes; Adam
    // keeps two moments of each.
    for line in [
        "memory to train",
        "parameters             16.1 kB",
        "optimizer state        32.2 kB",
        "total",
    ] {
        assert!(inspect.contains(line), "'{line}' missing:\n{inspect}");
    }
}

/// The tiny model trained for one epoch and saved; returns (model, data, checkpoint).
fn trained(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (model, data) = tiny_model("limits", name, 1);
    let w = model.with_file_name("w.safetensors");
    ok(&["train", s(&model), "--data", s(&data), "--save", s(&w)]);
    (model, data, w)
}

/// The parameters of checkpoint `w` of the tiny model.
fn params_of(w: &Path) -> (BTreeMap<String, Vec<f32>>, Vec<specialize::ConcreteParam>) {
    let compiled = pipeline::compile(&tiny_source(1), &[]).unwrap();
    let shapes = specialize::params(&compiled.model, &compiled.dims).unwrap();
    (checkpoint::load(w, &shapes).unwrap().0, shapes)
}

/// A safetensors file written by hand: F32 tensors and free-form metadata.
fn raw_checkpoint(
    tensors: &BTreeMap<String, Vec<f32>>,
    shapes: &[specialize::ConcreteParam],
    metadata: Option<&[(&str, &str)]>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata {
        let m: serde_json::Map<String, serde_json::Value> =
            m.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut data = Vec::new();
    for (name, values) in tensors {
        let shape = &shapes.iter().find(|p| &p.name == name).unwrap().shape;
        let begin = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text);
    bytes.extend(data);
    bytes
}

#[test]
fn checkpoint_metadata_and_weights_are_validated() {
    let (model, data, w) = trained("meta");
    let (params, shapes) = params_of(&w);
    let run = |weights: &Path| mpc(&["run", s(&model), "--weights", s(weights), "--data", s(&data)]);
    let bad = w.with_file_name("bad.safetensors");
    let good = [
        ("format", "mpc"),
        ("model", "Tiny"),
        ("step", "2"),
        ("seed", "5"),
        ("dims", "B=4,T=3"),
    ];
    let with = |key: &str, value: &str| -> Vec<(&str, String)> {
        good.iter()
            .map(|&(k, v)| (k, if k == key { value.to_string() } else { v.to_string() }))
            .collect()
    };
    for (key, value, message) in [
        (
            "seed",
            "-1",
            "invalid metadata: seed '-1' is not an unsigned 64-bit seed",
        ),
        ("seed", "abc", "invalid metadata: seed 'abc'"),
        ("step", "-3", "invalid metadata: step '-3' is not a step count"),
        (
            "dims",
            "B=0,T=3",
            "invalid metadata: dims entry 'B=0' is not NAME=SIZE with a positive size",
        ),
        ("dims", "B=4,T", "invalid metadata: dims entry 'T'"),
        (
            "dims",
            "B=4,B=5",
            "invalid metadata: dims 'B=4,B=5' is not a list of distinct dims",
        ),
        ("model", "Other", "a checkpoint of model 'Other', not of 'Tiny'"),
    ] {
        let meta = with(key, value);
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        std::fs::write(&bad, raw_checkpoint(&params, &shapes, Some(&meta))).unwrap();
        one_error(&run(&bad), &[s(&bad), message]);
    }
    // The same metadata, valid, loads: the hand-written file is a fair stand-in.
    std::fs::write(&bad, raw_checkpoint(&params, &shapes, Some(&good))).unwrap();
    ok(&["run", s(&model), "--weights", s(&bad), "--data", s(&data)]);
    // A file from another tool (no mpc metadata) loads with the defaults.
    std::fs::write(&bad, raw_checkpoint(&params, &shapes, None)).unwrap();
    let out = ok(&["run", s(&model), "--weights", s(&bad), "--data", s(&data)]);
    assert!(out.contains("(step 0)"), "{out}");
    // NaN and infinite weights.
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let mut poisoned = params.clone();
        poisoned.get_mut("loss.linear.bias").expect("a bias")[1] = value;
        std::fs::write(&bad, raw_checkpoint(&poisoned, &shapes, Some(&good))).unwrap();
        one_error(
            &run(&bad),
            &[&format!(
                "parameter 'loss.linear.bias' holds {shown} at element 1 of 3: not a usable weight"
            )],
        );
    }
}

#[test]
fn a_checkpoint_whose_dims_are_beyond_the_machine_is_refused_before_loading() {
    let (model, data, w) = trained("huge_meta");
    let (params, shapes) = params_of(&w);
    let meta = Meta {
        model: "Tiny".into(),
        step: 1,
        seed: 5,
        dims: BTreeMap::from([("B".to_string(), 4_000_000_000), ("T".to_string(), 3)]),
        progress: None,
    };
    checkpoint::save(&w, &params, &shapes, &meta).unwrap();
    let o = mpc(&[
        "run",
        s(&model),
        "--weights",
        s(&w),
        "--data",
        s(&data),
        "--max-memory",
        "8G",
    ]);
    one_error(
        &o,
        &[
            "evaluation needs",
            "more than the budget of 8.00 GB",
            "(B = 4000000000)",
        ],
    );
}

#[test]
fn training_on_rows_that_are_all_unlabeled_warns() {
    let (model, data) = tiny_model("limits", "unlabeled", 1);
    let rows = common::TINY_ROWS;
    let y = vec![-1; rows];
    std::fs::write(data.join("y.npy"), mpc_runtime::data::npy::encode_i32(&[rows], &y)).unwrap();
    let o = mpc(&["train", s(&model), "--data", s(&data), "--holdout", "0.5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: ") && err.contains("every training label is -1"),
        "{err}"
    );
    let out = common::stdout(&o);
    assert!(out.contains("train loss 0.0000") && !out.contains("-0.0000"), "{out}");
}

#[test]
#[cfg(target_os = "linux")]
fn ulimit_v_is_part_of_what_the_machine_has() {
    // 3 GB of address space: the 14.9 GB run is refused by the budget before it
    // allocates, not aborted by the allocator.
    let command = format!(
        "ulimit -v 3000000 && exec {} train examples/text_classifier.mp --dim B=4000000 --epochs 1",
        env!("CARGO_BIN_EXE_mpc")
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &command])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    one_error(
        &o,
        &[
            "training needs 14.9 GB of memory, more than the",
            "this machine has available",
        ],
    );
}
