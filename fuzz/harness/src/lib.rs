//! Entry points for fuzzing mpc: each takes arbitrary bytes, runs them through one part
//! of the compiler or runtime, and returns `Ok` or a clean error message. None may
//! panic, hang or allocate without bound: the cargo-fuzz targets in `fuzz/` call them,
//! and `tests/replay.rs` replays the checked-in corpus (`fuzz/corpus/<target>/`)
//! through them on every `cargo test --workspace`.
//!
//! - [`model_source`]: model text through the whole pipeline with every dim clamped
//!   to at most [`TINY_DIM`]: parse, check (diagnostics rendered), specialize, lower
//!   and autodiff, e-graph optimization, scheduling, Cranelift and PTX code generation,
//!   then one reference-interpreter training step (and a partial-batch step and an
//!   evaluation) on generated valid inputs, unless the step's values hold more than
//!   [`INTERP_ELEMENTS`] elements.
//! - [`npy`] and [`csv`]: a data file's bytes read as the column of each of several
//!   inputs and labels ([`data_specs`]: tokens, images, class labels, regression targets,
//!   a graph's edge list).
//! - [`safetensors`]: a checkpoint's bytes loaded (through a temporary file, the only
//!   way `mpc_runtime::checkpoint` reads) against a small model's parameters.

use mpc_compiler::diag::render;
use mpc_compiler::ir::{DType, Graph};
use mpc_compiler::pipeline::{self, Compiled, Steps};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::{graph_of, ROW_MASK};
use mpc_compiler::specialize;
use mpc_compiler::tensor::Tensor;
use mpc_runtime::backend::Backend;
use mpc_runtime::checkpoint;
use mpc_runtime::data::load::{batched_graph, column_from_csv, column_from_npy, input_specs, InputSpec};
use mpc_runtime::session::Session;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The largest value any dim gets in [`model_source`] (defaults above it are clamped).
pub const TINY_DIM: usize = 3;

/// Elements in all the values of a training step above which [`model_source`] skips
/// the interpreter step (literal sizes such as `linear(x, 4000000000)` stay large when
/// the dims are tiny).
pub const INTERP_ELEMENTS: usize = 1 << 25;

/// Model sources longer than this are refused unread (the fuzzer's inputs are short;
/// a long input only slows the parser down).
pub const MAX_SOURCE: usize = 1 << 16;

/// Model text through the whole pipeline, with tiny dims, and one interpreter step.
/// `Err` is the first clean error (a diagnostic, a size refusal, a skipped step).
pub fn model_source(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_SOURCE {
        return Err("too long".into());
    }
    let src = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let (program, model) = pipeline::check(src).map_err(|d| rendered(&d, src))?;
    let overrides: Vec<(String, usize)> = model
        .dims
        .iter()
        .map(|d| (d.name.clone(), d.default.unwrap_or(2).clamp(1, TINY_DIM)))
        .collect();
    let dims = pipeline::specialize(&program, &model, &overrides).map_err(|d| rendered(&d, src))?;
    let Steps {
        forward,
        eval,
        train_step,
    } = pipeline::steps(&model, &dims, 0)?;
    // for_cpu and for_ptx, sharing one optimization (the slow part).
    let (optimized, _) = pipeline::optimize(&train_step)?;
    let program_k = pipeline::schedule(&optimized);
    pipeline::codegen_cpu(&program_k)?;
    if let Err(e) = pipeline::codegen_ptx(&program_k) {
        // PTX uses 32-bit sizes: a refusal of a larger value is clean.
        if !has_value_over(&optimized, i32::MAX as usize) {
            return Err(format!("ptx: {e}"));
        }
    }
    let total = elements(&train_step).unwrap_or(usize::MAX);
    if total > INTERP_ELEMENTS {
        return Err(format!("skipped: the training step holds {total} elements"));
    }
    let compiled = Compiled {
        program,
        model,
        dims,
        first_row: 0,
        forward,
        eval,
        train_step,
    };
    interpreter_steps(compiled)
}

/// Diagnostics as the CLI renders them (both with and without colour), as one string.
fn rendered(diags: &[mpc_compiler::diag::Diagnostic], src: &str) -> String {
    render(diags, "fuzz.mp", src, true);
    render(diags, "fuzz.mp", src, false)
}

/// One training step on a full batch of generated valid data, then (when the batch has
/// more than one row and the model is not a graph model) one on a partial batch, then
/// an evaluation.
fn interpreter_steps(compiled: Compiled) -> Result<(), String> {
    let specs = input_specs(&compiled.model, &compiled.dims)?;
    let graph_model = specs.iter().any(|s| s.graph.is_some());
    let mut session = Session::with_backend(compiled, 7, Backend::Interpreter)?;
    let rows = session.batch_size();
    let mut rng = SplitMix64::new(11);
    session.train_step(&batch(&specs, rows, &mut rng))?;
    if rows > 1 && !graph_model {
        session.train_step(&batch(&specs, rows - 1, &mut rng))?;
    }
    session.evaluate_batch(&batch(&specs, rows, &mut rng))?;
    Ok(())
}

/// Valid data for `specs`: `rows` rows (whole inputs at their declared shape), token
/// ids, labels and edge ends in range, floats in [-1, 1).
pub fn batch(specs: &[InputSpec], rows: usize, rng: &mut SplitMix64) -> Vec<(String, Tensor)> {
    // A batch of graphs: node inputs have a row per node, edge features one per edge.
    let batched = batched_graph(specs);
    let edges = specs.iter().find(|s| s.graph.is_some()).map_or(0, |s| s.row_shape[1]);
    let mut columns: Vec<(String, Tensor)> = specs
        .iter()
        .map(|s| {
            let width: usize = s.row_shape.iter().product();
            let n = match (s.whole, s.per_node, batched) {
                (true, _, _) => width,
                (_, true, Some(g)) => g.nodes * width,
                (_, _, Some(g)) if s.name == format!("{}.features", g.name) => edges * width,
                _ => rows * width,
            };
            let bound = s
                .graph
                .as_ref()
                .map(|g| g.nodes)
                .or(s.vocab)
                .or(s.classes)
                .unwrap_or(2)
                .max(1) as u64;
            let column = match s.dtype {
                DType::I32 => Tensor::Int((0..n).map(|_| rng.below(bound) as i32).collect()),
                DType::F32 => Tensor::Float((0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect()),
            };
            (s.name.clone(), column)
        })
        .collect();
    if let Some(g) = batched {
        let owner = (0..g.nodes).map(|_| rng.below(rows as u64 + 1) as i32).collect();
        columns.push((graph_of(&g.name), Tensor::Int(owner)));
        columns.push((ROW_MASK.into(), Tensor::Float(vec![1.0; rows])));
    }
    columns
}

/// Elements in every value of `graph`, if that count fits in a usize.
pub fn elements(graph: &Graph) -> Option<usize> {
    graph.nodes.iter().try_fold(0usize, |sum, node| {
        let n = node.ty.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        sum.checked_add(n)
    })
}

/// Whether some value of `graph` has more than `limit` elements.
fn has_value_over(graph: &Graph, limit: usize) -> bool {
    graph.nodes.iter().any(|node| {
        let n = node.ty.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        n.is_none_or(|n| n > limit)
    })
}

/// Models whose inputs and labels give [`data_specs`] (tiny dims, every kind of column).
const DATA_MODELS: &[(&str, &[(&str, usize)])] = &[
    (
        "model Data {
  dims { B = 4, T = 3 }
  input tokens: i32[B, T] vocab 10
  input image: f32[B, 2, 3]
  label y: i32[B] classes 3
  let z = mean(embed(tokens, 4), axis: 1) + linear(flatten(image), 4)
  loss cross_entropy(linear(z, 3), y)
}",
        &[],
    ),
    (
        "model Regress {
  dims { B = 4 }
  input x: f32[B, 2]
  label target: f32[B, 1]
  loss mse(linear(x, 1), target)
}",
        &[],
    ),
    (
        include_str!("../../../examples/graph.mp"),
        &[("N", 5), ("E", 6), ("F", 2)],
    ),
];

/// The specs of every input and label of [`DATA_MODELS`]: what [`npy`] and [`csv`]
/// read each file as.
pub fn data_specs() -> &'static [InputSpec] {
    static SPECS: OnceLock<Vec<InputSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let mut out = Vec::new();
        for (src, dims) in DATA_MODELS {
            let dims: Vec<(String, usize)> = dims.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            let c = pipeline::compile(src, &dims).unwrap_or_else(|d| panic!("{d:?}"));
            out.extend(input_specs(&c.model, &c.dims).expect("specs"));
        }
        out
    })
}

/// The bytes of a `.npy` file read as each of [`data_specs`]; `Ok` if some spec took it.
pub fn npy(bytes: &[u8]) -> Result<(), String> {
    read_as_any_spec(|spec| column_from_npy(bytes, spec))
}

/// The bytes of a CSV file read as each of [`data_specs`]; `Ok` if some spec took it.
pub fn csv(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    read_as_any_spec(|spec| column_from_csv(text, spec))
}

/// `read` with every spec: each accepted column must keep the reader's promises; `Ok`
/// if some spec took it, else the last error.
fn read_as_any_spec(read: impl Fn(&InputSpec) -> Result<(usize, Tensor), String>) -> Result<(), String> {
    let mut last = String::new();
    let mut any = false;
    for spec in data_specs() {
        match read(spec) {
            Ok((rows, column)) => {
                check_column(spec, rows, &column);
                any = true;
            }
            Err(e) => last = e,
        }
    }
    if any {
        Ok(())
    } else {
        Err(last)
    }
}

/// What a reader promises of an accepted column: its length, dtype and value ranges.
fn check_column(spec: &InputSpec, rows: usize, column: &Tensor) {
    let width: usize = spec.row_shape.iter().product();
    assert_eq!(column.len(), rows * width, "{}: length", spec.name);
    match (spec.dtype, column) {
        (DType::I32, Tensor::Int(v)) => {
            let bound = spec.graph.as_ref().map(|g| g.nodes).or(spec.vocab).or(spec.classes);
            if let Some(bound) = bound {
                let low = if spec.is_label && spec.classes.is_some() { -1 } else { 0 };
                assert!(
                    v.iter().all(|&x| x >= low && (x as i64) < bound as i64),
                    "{}: value out of range",
                    spec.name
                );
            }
        }
        (DType::F32, Tensor::Float(v)) => assert!(v.iter().all(|x| x.is_finite()), "{}: not finite", spec.name),
        _ => panic!("{}: wrong dtype", spec.name),
    }
}

/// The model whose parameters [`safetensors`] loads checkpoints against.
pub const CHECKPOINT_MODEL: &str = "model Ckpt {
  dims { B = 2, T = 3 }
  input tokens: i32[B, T] vocab 5
  label y: i32[B] classes 2
  let h = relu(linear(mean(embed(tokens, 3), axis: 1), 4))
  loss cross_entropy(linear(h, 2), y)
}";

/// [`CHECKPOINT_MODEL`], compiled.
pub fn checkpoint_model() -> &'static Compiled {
    static MODEL: OnceLock<Compiled> = OnceLock::new();
    MODEL.get_or_init(|| pipeline::compile(CHECKPOINT_MODEL, &[]).unwrap_or_else(|d| panic!("{d:?}")))
}

/// A valid checkpoint of [`CHECKPOINT_MODEL`] (initial parameters): a seed for the corpus.
pub fn checkpoint_seed() -> Vec<u8> {
    let c = checkpoint_model();
    let shapes = specialize::params(&c.model, &c.dims).expect("params");
    let params = mpc_runtime::init::initialize(&shapes, 3);
    let meta = checkpoint::Meta {
        model: c.model.name.clone(),
        step: 1,
        seed: 3,
        dims: c.dims.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        progress: None,
    };
    checkpoint::encode(&params, &shapes, &meta).expect("encode")
}

/// A checkpoint's bytes: its metadata read, then its parameters loaded against
/// [`CHECKPOINT_MODEL`]'s; a loaded checkpoint holds each parameter's element count.
pub fn safetensors(bytes: &[u8]) -> Result<(), String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = checkpoint_model();
    let shapes = specialize::params(&c.model, &c.dims)?;
    let path = std::env::temp_dir().join(format!(
        "mpc-fuzz-{}-{}.safetensors",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = TempFile(path);
    std::fs::write(&file.0, bytes).map_err(|e| format!("temp file: {e}"))?;
    let meta = checkpoint::read_meta(&file.0);
    let loaded = checkpoint::load(&file.0, &shapes);
    if let Ok((params, _)) = &loaded {
        assert!(meta.is_ok(), "load accepted what read_meta refused");
        for p in &shapes {
            let n: usize = p.shape.iter().product();
            assert_eq!(params[&p.name].len(), n, "{}: element count", p.name);
        }
    }
    loaded.map(|_| ())
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A harness function: bytes in, `Ok` or a clean error out, never a panic.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// The four targets by corpus directory name.
pub const TARGETS: &[(&str, Target)] = &[
    ("model_source", model_source),
    ("npy", npy),
    ("csv", csv),
    ("safetensors", safetensors),
];
