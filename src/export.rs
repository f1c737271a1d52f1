//! `mpc export FILE --weights W --onnx OUT.onnx`: a checkpoint's evaluation step (no
//! dropout) as an ONNX model (opset 18) that maps the model's inputs to `predictions`.
//!
//! In: a model, a checkpoint (its dims, `--dim` on top, fix every shape). Out: the
//! `.onnx` file (written atomically), and on stdout what it takes and gives: one line
//! per input and output, `name dtype [shape]`. With `--sample-inputs DIR`, the first
//! batch of the rows `mpc run` evaluates is also written as those inputs, one
//! `DIR/<input>.npy` each, so that a runtime can be fed exactly what mpc computes on.
//!
//! A batch of graphs (`graph g { .., graphs G }`) exports at the checkpoint's capacity:
//! the model takes the batch's block-diagonal graph padded to `N` nodes and `E` edges
//! (`g.edges`, `g.features`, the node inputs, `g.graph_of`), as `mpc run` assembles it.

use crate::data::Source;
use crate::load::{fail, Loaded};
use crate::run::{checkpoint_params, compile_for_checkpoint};
use crate::ModelArgs;
use mpc_compiler::pipeline::{self, OnnxElem, OnnxModel};
use mpc_compiler::specialize;
use mpc_runtime::data::graphs::Capacity;
use mpc_runtime::data::{npy, Tensor};
use mpc_runtime::files::{check_writable, write_atomic};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExportOpts {
    /// The checkpoint (.safetensors) whose parameters the ONNX model holds
    #[arg(long, value_name = "PATH")]
    pub weights: PathBuf,
    /// Where to write the ONNX model
    #[arg(long, value_name = "PATH")]
    pub onnx: PathBuf,
    /// Also write the first batch that `mpc run` evaluates as the ONNX model's inputs, one DIR/<input>.npy each
    #[arg(long, value_name = "DIR")]
    pub sample_inputs: Option<PathBuf>,
    /// With --sample-inputs: take the rows from this directory, as `mpc run --data` does
    #[arg(long, value_name = "DIR", requires = "sample_inputs")]
    pub data: Option<PathBuf>,
    /// With --data: the last FRACTION of its rows, as `mpc run --holdout` does
    #[arg(long, value_name = "FRACTION", requires = "data", value_parser = crate::data::parse_fraction)]
    pub holdout: Option<f64>,
}

pub fn export(model_args: &ModelArgs, opts: &ExportOpts) -> Result<(), ExitCode> {
    let file = &model_args.file;
    // Before any work: an output that cannot be written fails at once.
    check_writable(&opts.onnx).map_err(|e| fail(&opts.onnx, &e))?;
    if let Some(dir) = &opts.sample_inputs {
        if !dir.is_dir() {
            return Err(fail(dir, "--sample-inputs: not a directory"));
        }
    }
    let source = Source::new(opts.data.as_deref(), opts.holdout)?;
    let loaded = compile_for_checkpoint(model_args, &opts.weights)?;
    let (params, meta) = checkpoint_params(file, &opts.weights, &loaded)?;
    let model = pipeline::export_onnx(&loaded.compiled, &params).map_err(|e| fail(file, &e))?;
    if let Some(dir) = &opts.sample_inputs {
        let batch = sample_batch(file, &source, &loaded, meta.seed)?;
        write_inputs(dir, &model, &batch)?;
    }
    write_atomic(&opts.onnx, &model.bytes).map_err(|e| fail(&opts.onnx, &e))?;
    outln!(
        "wrote {} (ONNX opset {}, {} nodes, {} of model {})",
        opts.onnx.display(),
        pipeline::ONNX_OPSET,
        model.op_types.len(),
        human_bytes(model.bytes.len()),
        loaded.compiled.model.name
    );
    for (what, values) in [("input", &model.inputs), ("output", &model.outputs)] {
        for v in values {
            let shape: Vec<String> = v.shape.iter().map(|d| d.to_string()).collect();
            outln!("{what} {} {} [{}]", v.name, dtype(v.elem), shape.join(", "));
        }
    }
    if let Some(dir) = &opts.sample_inputs {
        outln!("wrote {} sample input(s) to {}", model.inputs.len(), dir.display());
    }
    Ok(())
}

fn dtype(e: OnnxElem) -> &'static str {
    match e {
        OnnxElem::F32 => "float32",
        OnnxElem::I32 => "int32",
        OnnxElem::I64 => "int64",
    }
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / (1 << 10) as f64),
        n => format!("{n} bytes"),
    }
}

/// The first batch of the rows `mpc run` evaluates, assembled at the compiled sizes (a
/// batch of graphs padded to the step's capacity).
fn sample_batch(file: &Path, source: &Source, loaded: &Loaded, seed: u64) -> Result<Vec<(String, Tensor)>, ExitCode> {
    let compiled = &loaded.compiled;
    let (mut rows, _) = source.eval_rows(file, &compiled.model, &compiled.dims, seed)?;
    let batch = mpc_runtime::session::batch_rows(compiled);
    let order: Vec<usize> = if rows.full_batch {
        (0..rows.rows).collect()
    } else {
        (0..rows.rows.min(batch)).collect()
    };
    if !rows.full_batch && order.len() < batch {
        return Err(fail(
            file,
            &format!(
                "--sample-inputs: the evaluation rows are {}, fewer than one batch of {batch}",
                rows.rows
            ),
        ));
    }
    if let (Some(set), Some(g)) = (
        rows.graphs.as_mut(),
        compiled.model.graphs.iter().find(|g| g.graphs.is_some()),
    ) {
        let sizes =
            specialize::concrete(&[g.nodes.clone(), g.edges.clone()], &compiled.dims).map_err(|e| fail(file, &e))?;
        let cap = Capacity {
            graphs: batch,
            nodes: sizes[0],
            edges: sizes[1],
        };
        let need = set.capacity_for(batch, [order.as_slice()]);
        if need.nodes > cap.nodes || need.edges > cap.edges {
            return Err(fail(
                file,
                &format!(
                    "--sample-inputs: the first batch has {} nodes (with the padding node) and {} edges, more \
                     than the checkpoint's capacity of {} and {} (--dim sets them)",
                    need.nodes, need.edges, cap.nodes, cap.edges
                ),
            ));
        }
        set.capacity = Some(cap);
    }
    Ok(rows.batch(&order))
}

/// Each ONNX input of `model` from `batch`, as `DIR/<name>.npy`.
fn write_inputs(dir: &Path, model: &OnnxModel, batch: &[(String, Tensor)]) -> Result<(), ExitCode> {
    for input in &model.inputs {
        let path = dir.join(format!("{}.npy", input.name));
        let Some((_, column)) = batch.iter().find(|(n, _)| *n == input.name) else {
            return Err(fail(&path, &format!("the data has no input '{}'", input.name)));
        };
        let numel: usize = input.shape.iter().product();
        if column.len() != numel {
            return Err(fail(
                &path,
                &format!(
                    "input '{}' has {} values in the batch, the model takes {numel}",
                    input.name,
                    column.len()
                ),
            ));
        }
        let bytes = match column {
            Tensor::Float(v) => npy::encode_f32(&input.shape, v),
            Tensor::Int(v) => npy::encode_i32(&input.shape, v),
        };
        write_atomic(&path, &bytes).map_err(|e| fail(&path, &e))?;
    }
    Ok(())
}
