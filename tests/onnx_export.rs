//! `mpc export --onnx` against onnxruntime: for every example, a one-epoch checkpoint,
//! `mpc run --out` on its evaluation rows, `mpc export --sample-inputs` (the first of
//! those batches as the ONNX inputs), and `tests/onnx_check.py`, which runs the model in
//! onnxruntime and compares with mpc's predictions (|onnx - mpc| <= 1e-5 + 1e-5 |mpc|).
//! The same check runs small graphs of one IR op each against the interpreter, so each
//! row of `compiler/src/export/onnx.rs` is checked for its values, including those that
//! no example's predictions use (one_hot, an i32 gather, multi-axis scatters).
//!
//! Python with onnxruntime and numpy is found through `MPC_ONNX_PYTHON` (`.ci/run` makes
//! the venv `.venv-onnx` and sets it), else `.venv-onnx/bin/python`. Without it the
//! runtime comparison says it was skipped; the rest (export, inputs, errors) still runs.

mod common;

use common::{examples, mpc, ok, s, scratch, stderr};
use mpc_compiler::internals::export;
use mpc_compiler::interp;
use mpc_compiler::ir::{ArgKind, Builder, Type, ValueId};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::tensor::Tensor;
use mpc_runtime::data::npy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx_check.py");

/// The Python that has onnxruntime, or why there is none.
fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MPC_ONNX_PYTHON") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MPC_ONNX_PYTHON={} is not a file", p.display());
        return Ok(p);
    }
    // A venv left by a pip run that failed has Python but no onnxruntime: skipped too.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-onnx/bin/python");
    let imports = |p: &Path| {
        Command::new(p)
            .args(["-c", "import onnxruntime, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if venv.is_file() && imports(&venv) {
        return Ok(venv);
    }
    Err(
        "no Python with onnxruntime (set MPC_ONNX_PYTHON; .ci/run makes .venv-onnx with \
         `pip install onnxruntime numpy`)"
            .into(),
    )
}

/// Runs `onnx_check.py`; returns (exit code, its output).
fn check(python: &Path, model: &Path, inputs: &Path, preds: &Path) -> (Option<i32>, String) {
    let out = Command::new(python)
        .args([CHECK, s(model), s(inputs), s(preds)])
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Train one epoch, run, export with sample inputs; returns (model, inputs dir, preds).
fn export_example(name: &str, test: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch(test, name);
    let file = format!("examples/{name}.mp");
    let weights = dir.join("w.safetensors");
    ok(&["train", &file, "--epochs", "1", "--save", s(&weights)]);
    let preds = dir.join("preds.npy");
    ok(&["run", &file, "--weights", s(&weights), "--out", s(&preds)]);
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let onnx = dir.join("model.onnx");
    let printed = ok(&[
        "export",
        &file,
        "--weights",
        s(&weights),
        "--onnx",
        s(&onnx),
        "--sample-inputs",
        s(&inputs),
    ]);
    // Every input line names a file that was written, with the printed shape.
    let mut inputs_seen = 0;
    for line in printed.lines().filter(|l| l.starts_with("input ")) {
        let mut words = line.split_whitespace().skip(1);
        let (input, dtype) = (words.next().unwrap(), words.next().unwrap());
        let bytes = std::fs::read(inputs.join(format!("{input}.npy"))).expect("sample input written");
        let array = npy::parse(&bytes).unwrap();
        let shape: Vec<String> = array.shape.iter().map(|d| d.to_string()).collect();
        assert!(line.ends_with(&format!("[{}]", shape.join(", "))), "{name}: {line}");
        assert!(dtype == "int32" || dtype == "float32", "{line}");
        inputs_seen += 1;
    }
    assert!(inputs_seen > 0, "{name}: no inputs printed:\n{printed}");
    assert!(printed.contains("output predictions float32 ["), "{printed}");
    assert!(printed.contains("ONNX opset 18"), "{printed}");
    (onnx, inputs, preds)
}

#[test]
fn every_example_matches_onnxruntime() {
    let python = python();
    if let Err(why) = &python {
        eprintln!("SKIPPED the onnxruntime comparison: {why}");
    }
    let mut failures = Vec::new();
    for (name, _) in examples() {
        let (onnx, inputs, preds) = export_example(&name, "onnx_export_examples");
        if let Ok(py) = &python {
            let (code, text) = check(py, &onnx, &inputs, &preds);
            eprint!("{name}: {text}");
            if code != Some(0) {
                failures.push(format!("{name}: {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "ONNX and mpc disagree:\n{}", failures.join("\n"));
}

#[test]
fn the_check_fails_on_wrong_predictions() {
    // The comparison must be able to fail: one element off by 1e-3 is caught.
    let Ok(py) = python() else {
        eprintln!("SKIPPED: no Python with onnxruntime");
        return;
    };
    let (onnx, inputs, preds) = export_example("text_classifier", "onnx_export_wrong");
    let bytes = std::fs::read(&preds).unwrap();
    let array = npy::parse(&bytes).unwrap();
    let mut values: Vec<f32> = (0..array.len()).map(|i| array.float(i).unwrap() as f32).collect();
    values[3] += 1e-3;
    let wrong = preds.with_file_name("wrong.npy");
    std::fs::write(&wrong, npy::encode_f32(&array.shape, &values)).unwrap();
    let (code, text) = check(&py, &onnx, &inputs, &wrong);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("MISMATCH") && text.contains("1 of 128 elements"),
        "{text}"
    );
}

/// A graph of one op (and a `predictions` output) with its arguments, and its name.
type OpCase = (&'static str, Builder, Vec<(String, Tensor)>);

fn op_cases() -> Vec<OpCase> {
    let mut rng = SplitMix64::new(7);
    let mut floats = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform() as f32 * 4.0 - 2.0).collect() };
    let mut cases = Vec::new();
    let mut case = |name, build: &dyn Fn(&mut Builder) -> ValueId, args: Vec<(&str, Tensor)>| {
        let mut b = Builder::new(name);
        let out = build(&mut b);
        b.output("predictions", out);
        let args = args.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
        cases.push((name, b, args));
    };
    let x = |b: &mut Builder, shape: &[usize]| b.arg(ArgKind::Input, "x", Type::f32(shape));
    let index = |b: &mut Builder, shape: &[usize]| b.arg(ArgKind::Input, "index", Type::i32(shape));

    let (x34, x234, pos) = (
        floats(12),
        floats(24),
        floats(12).iter().map(|v| v.abs() + 0.1).collect::<Vec<_>>(),
    );
    case(
        "unary",
        &|b| {
            let x = x(b, &[3, 4]);
            let w = b.arg(ArgKind::Input, "w", Type::f32([3, 4]));
            let (l, q) = (b.log(w), b.sqrt(w));
            let (e, t, r) = (b.exp(x), b.tanh(x), b.erf(x));
            let (n, g) = (b.neg(x), b.stop_gradient(x));
            let sum = [l, q, e, t, r, n, g].into_iter().reduce(|a, v| b.add(a, v)).unwrap();
            b.div(sum, w)
        },
        vec![("x", Tensor::Float(x34.clone())), ("w", Tensor::Float(pos.clone()))],
    );
    case(
        "binary",
        &|b| {
            let x = x(b, &[3, 4]);
            let w = b.arg(ArgKind::Input, "w", Type::f32([3, 4]));
            let (m, g, s) = (b.max(x, w), b.greater(x, w), b.sub(x, w));
            let p = b.mul(m, g);
            b.add(p, s)
        },
        vec![("x", Tensor::Float(x34.clone())), ("w", Tensor::Float(pos.clone()))],
    );
    case(
        "broadcast",
        &|b| {
            let x = x(b, &[3, 4]);
            let y = b.broadcast(x, &[2, 3, 2, 4], &[1, 3]);
            let c = b.constant(0.5, &[2, 3, 2, 4]);
            b.mul(y, c)
        },
        vec![("x", Tensor::Float(x34.clone()))],
    );
    case(
        "layout",
        &|b| {
            let x = x(b, &[2, 3, 4]);
            let t = b.transpose(x, &[2, 0, 1]);
            let r = b.reshape(t, &[4, 6]);
            let s = b.slice(r, 1, 1, 5);
            let c = b.concat(&[s, s], 1);
            let m = b.reduce_max(c, &[1]);
            let k = b.reduce_sum(x, &[0, 2]);
            let none = b.reduce_sum(m, &[]);
            let w = b.reshape(k, &[3, 1]);
            let v = b.reshape(none, &[1, 4]);
            b.matmul(w, v)
        },
        vec![("x", Tensor::Float(x234.clone()))],
    );
    case(
        "gather_int_table",
        &|b| {
            let table = b.arg(ArgKind::Input, "table", Type::i32([4, 3]));
            let i = index(b, &[2, 3]);
            let g = b.gather(table, i);
            let c = b.concat(&[g, g], 0);
            b.convert(c)
        },
        vec![
            ("table", Tensor::Int((0..12).map(|v| v * 7 - 30).collect())),
            ("index", Tensor::Int(vec![3, 0, 0, 2, 1, 3])),
        ],
    );
    case(
        "one_hot",
        &|b| {
            let i = index(b, &[2, 3]);
            b.one_hot(i, 4)
        },
        vec![("index", Tensor::Int(vec![0, 3, -1, 2, 4, 1]))],
    );
    case(
        "scatter_add",
        &|b| {
            let (v, i) = (x(b, &[2, 3, 4]), index(b, &[2, 3]));
            let r = b.reshape(v, &[2, 3, 2, 2]);
            b.scatter_add(r, i, 5)
        },
        vec![
            ("x", Tensor::Float(x234.clone())),
            ("index", Tensor::Int(vec![4, 0, 4, 1, 4, 0])),
        ],
    );
    case(
        "scatter_max",
        &|b| {
            let (v, i) = (x(b, &[6, 4]), index(b, &[6]));
            let m = b.scatter_max(v, i, 5);
            // Row 2 is empty (-inf): kept finite as `aggregate: max` does.
            let floor = b.constant(-100.0, &[5, 4]);
            b.max(m, floor)
        },
        vec![
            ("x", Tensor::Float(x234.clone())),
            ("index", Tensor::Int(vec![4, 0, 4, 1, 3, 0])),
        ],
    );
    cases
}

#[test]
fn each_op_matches_the_interpreter_in_onnxruntime() {
    let python = python();
    let mut failures = Vec::new();
    for (name, builder, args) in op_cases() {
        let graph = builder.finish();
        graph.validate().unwrap();
        let dir = scratch("onnx_export_ops", name);
        let model = export::export(&graph, &BTreeMap::new(), &["predictions"]).unwrap();
        let onnx = dir.join("model.onnx");
        std::fs::write(&onnx, &model.bytes).unwrap();
        let mut named = interp::Args::new();
        for (n, t) in &args {
            let shape = &graph.ty(graph.arg(ArgKind::Input, n).unwrap()).shape;
            let bytes = match t {
                Tensor::Float(v) => npy::encode_f32(shape, v),
                Tensor::Int(v) => npy::encode_i32(shape, v),
            };
            std::fs::write(dir.join(format!("{n}.npy")), bytes).unwrap();
            named.insert(n.clone(), t.clone());
        }
        let out = interp::run::<f32>(&graph, &named).unwrap();
        let expected = dir.join("expected.npy");
        let shape = &graph.ty(graph.output("predictions").unwrap()).shape;
        std::fs::write(&expected, npy::encode_f32(shape, out[0].1.floats())).unwrap();
        if let Ok(py) = &python {
            let (code, text) = check(py, &onnx, &dir, &expected);
            eprint!("{name}: {text}");
            if code != Some(0) {
                failures.push(format!("{name}: {text}"));
            }
        }
    }
    if let Err(why) = python {
        eprintln!("SKIPPED the onnxruntime comparison: {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every example's export parses back as a model whose nodes read only values defined
/// before them (graph inputs, initializers, earlier nodes); GAT's op list is a snapshot.
#[test]
fn exports_parse_back_as_valid_graphs() {
    use std::collections::HashSet;
    for (name, source) in examples() {
        let compiled = mpc_compiler::pipeline::compile(&source, &[]).unwrap();
        let params = mpc_compiler::specialize::params(&compiled.model, &compiled.dims).unwrap();
        let values = params
            .iter()
            .map(|p| (p.name.clone(), vec![0.25f32; p.shape.iter().product()]))
            .collect();
        let exported = mpc_compiler::pipeline::export_onnx(&compiled, &values).unwrap();
        let model = onnx_rs::parse(&exported.bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(model.opset_import[0].version, 18, "{name}");
        let graph = model.graph.as_ref().unwrap();
        let mut defined: HashSet<&str> = graph.input.iter().map(|i| i.name).collect();
        defined.extend(graph.initializer.iter().map(|t| t.name()));
        assert_eq!(graph.node.len(), exported.op_types.len(), "{name}");
        for (node, op) in graph.node.iter().zip(&exported.op_types) {
            assert_eq!(node.op_type.to_string(), *op, "{name}");
            for input in &node.input {
                assert!(
                    defined.contains(input),
                    "{name}: {} reads undefined '{input}'",
                    node.name
                );
            }
            for output in &node.output {
                assert!(defined.insert(output), "{name}: '{output}' is defined twice");
            }
        }
        assert_eq!(graph.output.len(), 1, "{name}");
        assert!(defined.contains("predictions"), "{name}");
        let inputs: Vec<&str> = graph.input.iter().map(|i| i.name).collect();
        let labels: Vec<&str> = compiled
            .model
            .inputs
            .iter()
            .filter(|i| i.is_label)
            .map(|i| i.name.as_str())
            .collect();
        assert!(
            inputs.iter().all(|i| !labels.contains(i) && !i.starts_with('@')),
            "{name}: {inputs:?}"
        );
        if name == "gat" {
            insta::assert_snapshot!("gat_onnx_ops", exported.op_types.join("\n"));
        }
    }
}

#[test]
fn training_ops_are_refused_in_one_line() {
    let mut b = Builder::new("eval");
    let x = b.arg(ArgKind::Input, "x", Type::f32([4]));
    let seed = b.arg(ArgKind::Input, "@seed", Type::i32([]));
    let step = b.arg(ArgKind::Input, "@step", Type::i32([]));
    let u = b.random_uniform(seed, step, 0, &[4]);
    let y = b.mul(x, u);
    b.output("predictions", y);
    let err = export::export(&b.finish(), &BTreeMap::new(), &["predictions"])
        .err()
        .expect("refused");
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("@seed"), "{err}");

    let mut b = Builder::new("eval");
    let x = b.arg(ArgKind::Param, "layer.weight", Type::f32([4]));
    b.output("predictions", x);
    let err = export::export(&b.finish(), &BTreeMap::new(), &["predictions"])
        .err()
        .expect("refused");
    assert_eq!(err, "no value for parameter 'layer.weight'");
}

#[test]
fn bad_export_arguments_are_one_line_errors() {
    let dir = scratch("onnx_export", "errors");
    let weights = dir.join("w.safetensors");
    ok(&["train", "examples/graph.mp", "--epochs", "1", "--save", s(&weights)]);
    let onnx = dir.join("m.onnx");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "export",
                "examples/graph.mp",
                "--weights",
                "nope.safetensors",
                "--onnx",
                s(&onnx),
            ],
            "nope.safetensors",
        ),
        (
            vec![
                "export",
                "examples/gat.mp",
                "--weights",
                s(&weights),
                "--onnx",
                s(&onnx),
            ],
            "a checkpoint of model 'GraphSage', not of 'Gat'",
        ),
        (
            vec![
                "export",
                "examples/graph.mp",
                "--weights",
                s(&weights),
                "--onnx",
                "/nonexistent/m.onnx",
            ],
            "/nonexistent/m.onnx",
        ),
        (
            vec![
                "export",
                "examples/graph.mp",
                "--weights",
                s(&weights),
                "--onnx",
                s(&onnx),
                "--sample-inputs",
                s(&weights),
            ],
            "--sample-inputs: not a directory",
        ),
        (
            vec!["export", "examples/graph.mp", "--weights", s(&weights)],
            "--onnx <PATH>",
        ),
    ];
    for (args, needle) in cases {
        let out = mpc(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
        assert!(!onnx.exists(), "{args:?} wrote the model");
    }
}
