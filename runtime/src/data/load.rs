//! Datasets from files (`mpc train --data DIR`), validated against the model.
//!
//! In: a directory and the model's declared inputs and labels with concrete dims
//! ([`InputSpec`]s, from [`input_specs`]). Out: a [`Dataset`] (and a held-out one), or
//! ONE line naming the file and the place that is wrong: `data/tokens.npy: row 17,
//! column 3: token id 10000 is outside [0, 10000) (vocab of input 'tokens')`.
//!
//! Layout: every input and label `x` the model declares is `DIR/x.npy` or `DIR/x.csv`;
//! other files are ignored. A row is one sample: an input declared `i32[B, T]` is an
//! array `[rows, T]` (the batch axis becomes the row axis), a label `i32[B]` is `[rows]`.
//! Each file is read and checked value by value in `column.rs`; here the files are
//! found and their row counts must agree. Held-out rows are `DIR/test/` (same layout)
//! when it exists, else the last `--holdout` fraction of the rows.
//!
//! A graph model's rows are its nodes: there must be exactly `N` of them, the data
//! trains full-batch, and its held-out part is `DIR/test/` with at least the label (the
//! other inputs default to the training ones), never a `--holdout` tail.
//!
//! A model with a batch of graphs (`graphs G`) reads a data set of graphs instead: its
//! rows are graphs, in the layout that `graphs.rs` reads.

pub use super::column::{column_from_csv, column_from_npy, load_column};
pub use super::spec::{batched_graph, input_specs, is_graph, GraphRef, InputSpec};

use super::Dataset;
use std::path::{Path, PathBuf};

/// `path: message`
pub(super) fn at(path: &Path, message: impl std::fmt::Display) -> String {
    format!("{}: {message}", path.display())
}

/// `DIR/x.npy` or `DIR/x.csv`, whichever exists (both is an error).
fn find_file(dir: &Path, spec: &InputSpec) -> Result<PathBuf, String> {
    let npy = dir.join(format!("{}.npy", spec.name));
    let csv = dir.join(format!("{}.csv", spec.name));
    // Anything under the name counts as there (a directory, a FIFO, a link loop): the
    // reader then says what it is, rather than "not found".
    let there = |p: &Path| p.symlink_metadata().is_ok();
    match (there(&npy), there(&csv)) {
        (true, false) => Ok(npy),
        (false, true) => Ok(csv),
        (true, true) => Err(at(
            &npy,
            format!(
                "{0}.npy and {0}.csv both exist ({1} '{0}' reads one; remove the other)",
                spec.name,
                spec.what()
            ),
        )),
        (false, false) => Err(at(
            &npy,
            format!("not found ({} '{1}' needs {1}.npy or {1}.csv)", spec.what(), spec.name),
        )),
    }
}

/// Every input and label from `dir`, with equal row counts.
pub fn load_dir(dir: &Path, specs: &[InputSpec]) -> Result<Dataset, String> {
    load_dir_with(dir, specs, None)
}

/// Every input and label from `dir`; an input (not a label) without a file there is
/// taken from `fallback` when given (a graph's held-out `test/` directory may hold only
/// the labels). A graph model's rows must be the graph's nodes.
pub fn load_dir_with(dir: &Path, specs: &[InputSpec], fallback: Option<&Dataset>) -> Result<Dataset, String> {
    if !dir.is_dir() {
        let why = if dir.exists() { "not a directory" } else { "not found" };
        return Err(at(
            dir,
            format!("{why} (--data names a directory of .npy or .csv files)"),
        ));
    }
    if let Some(g) = batched_graph(specs) {
        return super::graphs::load_graphs(super::graphs::Files::Dir(dir), specs, &g.name);
    }
    let mut data = Dataset {
        full_batch: is_graph(specs),
        ..Dataset::default()
    };
    let mut first: Option<(PathBuf, usize)> = None;
    for spec in specs {
        let path = match find_file(dir, spec) {
            Ok(path) => path,
            Err(e) => match fallback.and_then(|f| f.column(&spec.name)).filter(|_| !spec.is_label) {
                Some(column) => {
                    let place = if spec.whole { &mut data.whole } else { &mut data.columns };
                    place.push((spec.name.clone(), spec.row_shape.clone(), column.clone()));
                    continue;
                }
                None => return Err(e),
            },
        };
        let (rows, column) = load_column(&path, spec)?;
        if spec.whole {
            data.whole.push((spec.name.clone(), spec.row_shape.clone(), column));
            continue;
        }
        if rows == 0 {
            return Err(at(&path, "no rows"));
        }
        match &first {
            Some((p, n)) if *n != rows => {
                return Err(at(
                    &path,
                    format!(
                        "{rows} rows, but {} has {n} (every input and label needs one row per sample)",
                        p.display()
                    ),
                ))
            }
            Some(_) => {}
            None => {
                if let Some(g) = specs.iter().find_map(|s| s.graph.as_ref()).filter(|g| g.nodes != rows) {
                    return Err(at(
                        &path,
                        format!(
                            "{rows} rows, but graph '{}' has {} nodes ({}): a graph model has one row per node \
                             (--dim sets the node count)",
                            g.name, g.nodes, g.nodes_dim
                        ),
                    ));
                }
                first = Some((path.clone(), rows));
            }
        }
        data.columns.push((spec.name.clone(), spec.row_shape.clone(), column));
    }
    data.rows = match (&first, fallback) {
        (Some(f), _) => f.1,
        (None, Some(f)) => f.rows,
        (None, None) => 0,
    };
    Ok(data)
}

/// Where held-out rows come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeldOut {
    /// `DIR/test/`
    TestDir,
    /// The last fraction of the rows of `DIR`.
    Tail(f64),
    None,
}

/// The held-out rule for `dir`: `DIR/test/` if it exists, else `--holdout`, else none.
/// Both is an error: the split would be ambiguous.
pub fn held_out_rule(dir: &Path, holdout: Option<f64>) -> Result<HeldOut, String> {
    let test = dir.join("test");
    match (test.is_dir(), holdout) {
        (true, Some(_)) => Err(at(
            &test,
            "exists, so it is the held-out set; --holdout would split another one off (use one or the other)",
        )),
        (true, None) => Ok(HeldOut::TestDir),
        (false, Some(f)) => Ok(HeldOut::Tail(f)),
        (false, None) => Ok(HeldOut::None),
    }
}

/// The held-out part of `dir` (`DIR/test/`), given its training part: for a graph
/// model, inputs missing in `test/` are the training ones.
fn load_test(dir: &Path, specs: &[InputSpec], train: &Dataset) -> Result<Dataset, String> {
    let fallback = if is_graph(specs) { Some(train) } else { None };
    load_dir_with(&dir.join("test"), specs, fallback)
}

/// `--holdout` on a graph model: an error, since nodes cannot be split off a graph.
fn no_tail_of_a_graph(dir: &Path, specs: &[InputSpec], f: f64) -> Result<(), String> {
    match specs.iter().find_map(|s| s.graph.as_ref()) {
        Some(g) => Err(at(
            dir,
            format!(
                "--holdout {f}: the rows are the nodes of graph '{}' and cannot be split off; put held-out labels \
                 in {} (-1 for the training nodes, and -1 in the training labels for the held-out ones)",
                g.name,
                dir.join("test").display()
            ),
        )),
        None => Ok(()),
    }
}

/// `(training rows, held-out rows)` of `dir` under `rule`.
pub fn load_split(dir: &Path, specs: &[InputSpec], rule: HeldOut) -> Result<(Dataset, Option<Dataset>), String> {
    if let HeldOut::Tail(f) = rule {
        no_tail_of_a_graph(dir, specs, f)?;
    }
    let all = load_dir(dir, specs)?;
    match rule {
        HeldOut::TestDir => {
            let test = load_test(dir, specs, &all)?;
            Ok((all, Some(test)))
        }
        HeldOut::None => Ok((all, None)),
        HeldOut::Tail(f) => {
            let n = ((all.rows as f64 * f).round() as usize).max(1);
            if n >= all.rows {
                return Err(at(
                    dir,
                    format!("--holdout {f} of {} rows leaves no rows to train on", all.rows),
                ));
            }
            let (train, held) = all.split_tail(n);
            Ok((train, Some(held)))
        }
    }
}

/// The rows `mpc run` predicts for: as [`load_eval`], except that a directory without
/// any label file (inputs only, new data) loads too, with labels that mark every row as
/// unlabeled (-1 for class labels, 0 for float targets) so that the step runs; the bool
/// says whether the labels were there (a loss and accuracy mean something).
pub fn load_predict(dir: &Path, specs: &[InputSpec], rule: HeldOut) -> Result<(Dataset, bool), String> {
    let eval_dir = match rule {
        HeldOut::TestDir => dir.join("test"),
        _ => dir.to_path_buf(),
    };
    let absent = |s: &InputSpec| {
        let there = |ext: &str| eval_dir.join(format!("{}.{ext}", s.name)).symlink_metadata().is_ok();
        !there("npy") && !there("csv")
    };
    let labels: Vec<&InputSpec> = specs.iter().filter(|s| s.is_label).collect();
    if labels.is_empty() || !labels.iter().all(|s| absent(s)) || (rule == HeldOut::TestDir && is_graph(specs)) {
        return Ok((load_eval(dir, specs, rule)?, true));
    }
    let inputs: Vec<InputSpec> = specs.iter().filter(|s| !s.is_label).cloned().collect();
    let mut data = load_eval(dir, &inputs, rule)?;
    for label in labels {
        let n = data.rows * label.width();
        let column = match label.dtype {
            mpc_compiler::ir::DType::I32 => super::Tensor::Int(vec![-1; n]),
            mpc_compiler::ir::DType::F32 => super::Tensor::Float(vec![0.0; n]),
        };
        data.columns.push((label.name.clone(), label.row_shape.clone(), column));
    }
    Ok((data, false))
}

/// The rows `mpc run` evaluates: the held-out rows of `dir` under `rule`, or all of
/// them when the rule gives none (a directory of evaluation data).
pub fn load_eval(dir: &Path, specs: &[InputSpec], rule: HeldOut) -> Result<Dataset, String> {
    match rule {
        HeldOut::TestDir if is_graph(specs) => load_test(dir, specs, &load_dir(dir, specs)?),
        HeldOut::TestDir => load_dir(&dir.join("test"), specs),
        HeldOut::None => load_dir(dir, specs),
        HeldOut::Tail(_) => Ok(load_split(dir, specs, rule)?.1.expect("a tail split has held-out rows")),
    }
}
