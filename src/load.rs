//! Reading a model file and taking it through the compiler, with errors rendered for
//! the terminal: a file that cannot be read or is not UTF-8 gets one line naming it,
//! a model with errors gets every diagnostic with its source line.

use crate::ModelArgs;
use mpc_compiler::diag::{line_col, render};
use mpc_compiler::ir::ArgKind;
use mpc_compiler::memory::{show_bytes, Footprint};
use mpc_compiler::pipeline::{self, Compiled, Options};
use mpc_compiler::specialize;
use mpc_compiler::CheckedModel;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

pub struct Loaded {
    pub source: String,
    pub compiled: Compiled,
}

/// Prints `error: <file>: <message>` and returns the failure exit code.
pub fn fail(file: &Path, message: &str) -> ExitCode {
    errln!("error: {}: {message}", file.display());
    ExitCode::from(1)
}

/// Prints `error: <message>` (a message that names its own file) and returns the
/// failure exit code.
pub fn error(message: &str) -> ExitCode {
    errln!("error: {message}");
    ExitCode::from(1)
}

/// `--dim B=32`
pub fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=SIZE, found '{s}'"))?;
    let value: usize = value.trim().parse().map_err(|_| format!("'{value}' is not a size"))?;
    if value == 0 {
        return Err("sizes must be positive".into());
    }
    Ok((name.trim().to_string(), value))
}

fn read_source(file: &Path) -> Result<String, ExitCode> {
    let mut bytes = mpc_runtime::files::read(file, mpc_runtime::files::SOURCE_LIMIT).map_err(|e| fail(file, &e))?;
    // A UTF-8 byte order mark (some Windows editors write one) is not source text.
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or_default();
        let (line, col) = line_col(prefix, prefix.len());
        fail(
            file,
            &format!(
                "not UTF-8 text: invalid byte 0x{:02x} at {line}:{col}",
                e.as_bytes()[valid]
            ),
        )
    })
}

impl Loaded {
    pub fn compile(args: &ModelArgs) -> Result<Loaded, ExitCode> {
        Loaded::compile_with(args, None, |_| Ok(Vec::new()))
    }

    /// Compiles with more dim values, chosen by `extra` from the checked model (the
    /// batch size of `--batch`, the dims a checkpoint was trained with); they replace
    /// `--dim` values of the same name. `extra`'s error is printed as `error: <it>`.
    /// `lr` replaces the train block's learning rate.
    pub fn compile_with(
        args: &ModelArgs,
        lr: Option<f64>,
        extra: impl FnOnce(&CheckedModel) -> Result<Vec<(String, usize)>, String>,
    ) -> Result<Loaded, ExitCode> {
        Loaded::compile_rows_from(args, lr, 0, extra)
    }

    /// [`Loaded::compile_with`] for the rows of a batch from `first_row` on (a
    /// data-parallel rank's part: its dropout masks are those rows').
    pub fn compile_rows_from(
        args: &ModelArgs,
        lr: Option<f64>,
        first_row: usize,
        extra: impl FnOnce(&CheckedModel) -> Result<Vec<(String, usize)>, String>,
    ) -> Result<Loaded, ExitCode> {
        let source = read_source(&args.file)?;
        let mut dims = args.dims.clone();
        // A model with errors skips `extra`: `compile` reports its diagnostics below.
        if let Ok((_, model)) = pipeline::check(&source) {
            let more = extra(&model).map_err(|e| {
                errln!("error: {e}");
                ExitCode::from(1)
            })?;
            dims.retain(|(name, _)| !more.iter().any(|(n, _)| n == name));
            dims.extend(more);
        }
        match pipeline::compile_with(&source, &Options { dims, lr, first_row }) {
            Ok(compiled) => Ok(Loaded { source, compiled }),
            Err(diags) => {
                let origin = args.file.display().to_string();
                let color = std::io::stderr().is_terminal();
                errln!("{}", render(&diags, &origin, &source, color));
                let n = diags.len();
                errln!(
                    "error: could not compile '{origin}' ({n} error{})",
                    if n == 1 { "" } else { "s" }
                );
                Err(ExitCode::from(1))
            }
        }
    }

    /// `ok: TextClassifier: 2 inputs, 5 parameters (646,530 values), training step of 120 IR nodes`
    pub fn summary(&self, footprint: &Footprint) -> String {
        let c = &self.compiled;
        // u128: the compiler bounds each tensor, not their sum.
        let values: u128 = c.forward.args(ArgKind::Param).map(|(_, _, t)| t.numel() as u128).sum();
        format!(
            "ok: model {}: {} inputs, {} parameters ({} values), training step of {} IR nodes, {} of memory to train",
            c.model.name,
            c.model.inputs.len(),
            c.model.params.len(),
            thousands(values),
            c.train_step.nodes.len(),
            show_bytes(footprint.total())
        )
    }

    /// A model summary in the manner of `torchinfo`: one row per parameter.
    pub fn parameter_table(&self) -> Result<String, String> {
        let c = &self.compiled;
        let params = specialize::params(&c.model, &c.dims)?;
        let rows: Vec<(String, String, String)> = params
            .iter()
            .zip(&c.model.params)
            .map(|(p, sym)| {
                let dims: Vec<String> = sym.shape.iter().map(|d| d.to_string()).collect();
                let concrete: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
                let shape = if dims == concrete {
                    format!("[{}]", dims.join(", "))
                } else {
                    format!("[{}] = [{}]", dims.join(", "), concrete.join(", "))
                };
                (
                    p.name.clone(),
                    shape,
                    thousands(p.shape.iter().product::<usize>() as u128),
                )
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max("parameter".len());
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("shape".len());
        let total: u128 = params.iter().map(|p| p.shape.iter().product::<usize>() as u128).sum();
        let w2 = thousands(total).len().max("count".len());
        let mut out = format!("model {}\n", c.model.name);
        out += &format!("{:<w0$}  {:<w1$}  {:>w2$}\n", "parameter", "shape", "count");
        for (name, shape, count) in &rows {
            out += &format!("{name:<w0$}  {shape:<w1$}  {count:>w2$}\n");
        }
        out += &format!("{:<w0$}  {:<w1$}  {:>w2$}\n", "total", "", thousands(total));
        let bytes = total * 4;
        out += &format!("{} parameters, {:.2} MB as f32\n", thousands(total), bytes as f64 / 1e6);
        Ok(out)
    }
}

/// 646530 -> "646,530"
fn thousands(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
