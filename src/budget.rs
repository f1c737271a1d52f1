//! The memory check of `mpc train` and `mpc run`, and the memory table of `mpc inspect`.
//!
//! In: a compiled model's [`Footprint`] (variables, one batch, the steps' buffers: sized
//! from the dims by the compiler) and the data: estimated from the dims for the
//! default data, before it is generated; counted for `--data`, whose files are already
//! bounded by the size limit of `mpc_runtime::files`. Out: nothing, or one `error:` line
//! naming the largest part and tensor, before the session allocates anything.

use crate::load::fail;
use mpc_compiler::memory::{show_bytes, Footprint, Part};
use mpc_compiler::pipeline::{self, Compiled};
use mpc_runtime::budget::{Budget, Need};
use mpc_runtime::data::defaults::{HELD_OUT_ROWS, TRAIN_ROWS};
use mpc_runtime::data::Dataset;
use mpc_runtime::session::batch_rows;
use std::path::Path;
use std::process::ExitCode;

/// What a run holds: the session's variables, a batch, the steps' buffers, the data.
/// An evaluation run (`mpc run`) prepares the training step too (a session does), so
/// both commands hold the same parts.
pub fn needs(footprint: &Footprint, data: Need) -> Vec<Need> {
    let mut needs: Vec<Need> = footprint.parts().iter().map(|p| need(p)).collect();
    needs.push(data);
    needs
}

fn need(p: &Part) -> Need {
    Need {
        name: p.name.to_string(),
        bytes: p.bytes,
        largest: p.largest.as_ref().map(|(what, _)| what.clone()),
    }
}

/// The default data, before it exists: a graph model's data is its one batch (every
/// node) for training and again for the held-out labels; other models get
/// `TRAIN_ROWS + HELD_OUT_ROWS` rows of the batch's per-row size.
pub fn default_data(footprint: &Footprint, batch_rows: usize, full_batch: bool) -> Need {
    let batch = &footprint.batch;
    let bytes = if full_batch {
        2 * batch.bytes
    } else {
        batch.bytes / batch_rows.max(1) as u128 * (TRAIN_ROWS + HELD_OUT_ROWS) as u128
    };
    Need {
        name: "default data".into(),
        bytes,
        largest: batch
            .largest
            .as_ref()
            .map(|(what, _)| format!("{what} (per batch; the data has more rows)")),
    }
}

/// Data read from files: the bytes its columns hold.
pub fn loaded_data(sets: &[&Dataset]) -> Need {
    let bytes = sets
        .iter()
        .flat_map(|d| d.columns.iter().chain(&d.whole))
        .map(|(_, _, t)| 4 * t.len() as u128)
        .sum();
    Need {
        name: "data".into(),
        bytes,
        largest: None,
    }
}

/// The default data of `compiled`, estimated from its footprint.
fn default_data_of(compiled: &Compiled, footprint: &Footprint) -> Need {
    default_data(footprint, batch_rows(compiled), !compiled.model.graphs.is_empty())
}

/// `error: <file>: training needs 96.0 GB of memory, more than ...` when `compiled`
/// with `data` (the default data's estimate when `None`) is over the budget.
pub fn check(
    file: &Path,
    what: &str,
    compiled: &Compiled,
    data: Option<&[&Dataset]>,
    budget: &Budget,
) -> Result<(), ExitCode> {
    let footprint = pipeline::memory(compiled);
    let data = match data {
        Some(sets) => loaded_data(sets),
        None => default_data_of(compiled, &footprint),
    };
    budget.check(what, &needs(&footprint, data)).map_err(|e| fail(file, &e))
}

/// `mpc check`'s warning for a model that this machine could not train: the budget
/// error `mpc train` would give, as a warning (checking needs no memory).
pub fn warn_if_over_machine(compiled: &Compiled, footprint: &Footprint) {
    let data = default_data_of(compiled, footprint);
    if let Err(e) = Budget::new(None).check("training", &needs(footprint, data)) {
        errln!("warning: {e}");
    }
}

/// The memory table of `mpc inspect`, like torchinfo's size estimate: the parts a
/// training run holds, their total, and the default data besides.
pub fn table(compiled: &Compiled) -> String {
    let footprint = pipeline::memory(compiled);
    let data = default_data_of(compiled, &footprint);
    let parts = footprint.parts();
    let width = parts
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max("default data".len());
    let mut out = String::from("memory to train, sized from the dims:\n");
    for p in parts {
        out += &format!("  {:<width$}  {:>9}\n", p.name, show_bytes(p.bytes));
    }
    out += &format!("  {:<width$}  {:>9}\n", "total", show_bytes(footprint.total()));
    out += &format!(
        "  {:<width$}  {:>9} (with --data: what its files hold)\n",
        "default data",
        show_bytes(data.bytes)
    );
    out
}
