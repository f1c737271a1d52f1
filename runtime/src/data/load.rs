//! Datasets from files (`mpc train --data DIR`), validated against the model.
//!
//! In: a directory and the model's declared inputs and labels with concrete dims. Out:
//! a [`Dataset`] (and a held-out one), or ONE line naming the file and the place that is
//! wrong: `data/tokens.npy: row 17, column 3: token id 10000 is outside [0, 10000)
//! (vocab of input 'tokens')`.
//!
//! Layout: every input and label `x` the model declares is `DIR/x.npy` or `DIR/x.csv`;
//! other files are ignored. A row is one sample: an input declared `i32[B, T]` is an
//! array `[rows, T]` (the batch axis becomes the row axis), a label `i32[B]` is `[rows]`.
//! Held-out rows are `DIR/test/` (same layout) when it exists, else the last `--holdout`
//! fraction of the rows. Checks: dtype (integers for `i32`, with `<i8` and unsigned
//! converted when each value fits; floats for `f32`, `<f8` converted when in range),
//! per-row shape, equal row counts, token ids in `[0, vocab)`, labels in `[0, classes)`
//! or -1 (unlabeled: the loss and accuracy skip it), finite `f32` values. Places in
//! `.npy` files are numpy indices (0-based: `row 17, column 3` is `a[17, 3]`); places in
//! CSV files are 1-based line and field numbers.
//!
//! Inputs whose first axis is not the batch axis are "whole": read once with exactly
//! their declared shape and passed with every batch. A graph `g`'s edge list is the
//! whole input `g.edges`, `i32[2, E]` (row 0 sources, row 1 destinations; in CSV one
//! edge `source,destination` per line), every index in `[0, N)` for the graph's `N`
//! nodes. A graph model's rows are its nodes: there must be exactly `N` of them, the
//! data trains full-batch, and its held-out part is `DIR/test/` with at least the
//! label (the other inputs default to the training ones), never a `--holdout` tail.

use super::{csv, npy, Column, Dataset};
use mpc_compiler::ir::DType;
use mpc_compiler::specialize::show_shape;
use mpc_compiler::specialize::{concrete, DimValues};
use mpc_compiler::CheckedModel;
use std::path::{Path, PathBuf};

/// What one input or label of the model expects of its data file.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    /// The declared shape without the batch axis, with dims specialized.
    pub row_shape: Vec<usize>,
    /// `input 'tokens' is i32[B, T], T = 32`: how errors describe the declaration.
    pub declared: String,
    pub vocab: Option<usize>,
    pub classes: Option<usize>,
    pub is_label: bool,
    /// No batch axis: `row_shape` is the whole declared shape, read once.
    pub whole: bool,
    /// The edge list `g.edges` of a graph: its values are node indices.
    pub graph: Option<GraphRef>,
}

/// The graph whose edge list an input is.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphRef {
    /// The graph's name (`g` for the input `g.edges`).
    pub name: String,
    /// Its node count: edge indices lie in `[0, nodes)`, and the data has `nodes` rows.
    pub nodes: usize,
    /// `N = 34`: the dim that sets it, for messages.
    pub nodes_dim: String,
}

impl InputSpec {
    fn what(&self) -> &'static str {
        if self.is_label {
            "label"
        } else {
            "input"
        }
    }

    fn width(&self) -> usize {
        self.row_shape.iter().product()
    }

    /// `i32 [rows, 32]`, or for a whole input its shape: `i32 [2, 156]`.
    fn expected(&self) -> String {
        let mut dims = if self.whole { vec![] } else { vec!["rows".to_string()] };
        dims.extend(self.row_shape.iter().map(|d| d.to_string()));
        format!("{} [{}]", self.dtype, dims.join(", "))
    }

    /// Edges in the edge list of a graph.
    fn edge_count(&self) -> usize {
        self.row_shape.get(1).copied().unwrap_or(0)
    }
}

/// Whether `specs` are a graph model's: its rows are the nodes of a graph.
pub fn is_graph(specs: &[InputSpec]) -> bool {
    specs.iter().any(|s| s.graph.is_some())
}

/// The specs of every input and label, in declaration order. Inputs whose first axis
/// is the batch dim (the label's first axis) are read as rows; the others (a graph's
/// `g.edges`) are whole. A label must have the batch axis.
pub fn input_specs(model: &CheckedModel, dims: &DimValues) -> Result<Vec<InputSpec>, String> {
    let batch = model
        .batch_dim
        .clone()
        .or_else(|| model.inputs.first().and_then(|i| i.ty.shape.first().cloned()));
    model
        .inputs
        .iter()
        .map(|i| {
            let what = if i.is_label { "label" } else { "input" };
            let declared_ty = format!("{}{}", i.ty.dtype, show_shape(&i.ty.shape));
            let rows = i.ty.shape.split_first().filter(|(f, _)| Some(*f) == batch.as_ref());
            if rows.is_none() && i.is_label {
                let b = batch.as_ref().map(|b| b.to_string()).unwrap_or_default();
                return Err(format!(
                    "{what} '{}' is {declared_ty}: its first axis is not the batch axis {b}, so it cannot be read \
                     as rows of data",
                    i.name
                ));
            }
            let whole = rows.is_none();
            let rest = match rows {
                Some((_, rest)) => rest,
                None => &i.ty.shape[..],
            };
            // `g.edges: i32[2, E]`: the edge list of graph `g`, whose nodes are the rows.
            let graph = match model.graphs.iter().find(|g| g.edges_input == i.name) {
                Some(g) => {
                    let nodes = concrete(std::slice::from_ref(&g.nodes), dims)?[0];
                    let n = g.nodes.to_string();
                    Some(GraphRef {
                        name: g.name.clone(),
                        nodes,
                        nodes_dim: if n.parse::<usize>().is_ok() {
                            n
                        } else {
                            format!("{n} = {nodes}")
                        },
                    })
                }
                None => None,
            };
            // Name the dims the row shape uses, with their values.
            let text = show_shape(rest);
            let used: Vec<String> = model
                .dims
                .iter()
                .filter(|d| {
                    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .any(|w| w == d.name)
                })
                .map(|d| format!("{} = {}", d.name, dims.get(&d.name).copied().unwrap_or(0)))
                .collect();
            let mut declared = format!("{what} '{}' is {declared_ty}", i.name);
            if !used.is_empty() {
                declared += &format!(", {}", used.join(", "));
            }
            Ok(InputSpec {
                name: i.name.clone(),
                dtype: i.ty.dtype,
                row_shape: concrete(rest, dims)?,
                declared,
                vocab: i.vocab,
                classes: i.classes,
                is_label: i.is_label,
                whole,
                graph,
            })
        })
        .collect()
}

/// `path: message`
fn at(path: &Path, message: impl std::fmt::Display) -> String {
    format!("{}: {message}", path.display())
}

/// `DIR/x.npy` or `DIR/x.csv`, whichever exists (both is an error).
fn find_file(dir: &Path, spec: &InputSpec) -> Result<PathBuf, String> {
    let npy = dir.join(format!("{}.npy", spec.name));
    let csv = dir.join(format!("{}.csv", spec.name));
    match (npy.is_file(), csv.is_file()) {
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

/// The checks every integer value passes: i32 range, vocab, classes.
fn check_int(v: i64, spec: &InputSpec, place: &dyn Fn() -> String) -> Result<i32, String> {
    if let Some(vocab) = spec.vocab {
        if v < 0 || v as u64 >= vocab as u64 {
            return Err(format!(
                "{}: token id {v} is outside [0, {vocab}) (vocab of {} '{}')",
                place(),
                spec.what(),
                spec.name
            ));
        }
    }
    if let Some(classes) = spec.classes {
        if (v < 0 && !(spec.is_label && v == -1)) || v >= classes as i64 {
            return Err(format!(
                "{}: label {v} is outside [0, {classes}) (classes of {} '{}')",
                place(),
                spec.what(),
                spec.name
            ));
        }
    }
    i32::try_from(v).map_err(|_| format!("{}: value {v} does not fit in i32", place()))
}

fn check_float(v: f64, place: &dyn Fn() -> String) -> Result<f32, String> {
    if v.is_nan() {
        return Err(format!("{}: NaN (f32 data must be finite)", place()));
    }
    if v.is_infinite() {
        return Err(format!("{}: {v} (f32 data must be finite)", place()));
    }
    let f = v as f32;
    if f.is_infinite() {
        return Err(format!("{}: value {v:e} is outside the range of f32", place()));
    }
    Ok(f)
}

/// `row 17`, `row 17, column 3`, `row 17, at [2, 5]` for element `flat` of a C-order
/// array whose rows have `row_shape`.
fn npy_place(row_shape: &[usize], flat: usize) -> String {
    let width: usize = row_shape.iter().product::<usize>().max(1);
    let (row, mut within) = (flat / width, flat % width);
    match row_shape.len() {
        0 => format!("row {row}"),
        1 => format!("row {row}, column {within}"),
        _ => {
            let mut index = vec![0; row_shape.len()];
            for (k, &d) in row_shape.iter().enumerate().rev() {
                index[k] = within % d.max(1);
                within /= d.max(1);
            }
            let index: Vec<String> = index.iter().map(|i| i.to_string()).collect();
            format!("row {row}, at [{}]", index.join(", "))
        }
    }
}

/// `at [1, 5]` for element `flat` of a C-order array of `shape` (a whole input).
fn npy_index(shape: &[usize], flat: usize) -> String {
    let mut within = flat;
    let mut index = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        index[k] = within % d.max(1);
        within /= d.max(1);
    }
    let index: Vec<String> = index.iter().map(|i| i.to_string()).collect();
    format!("at [{}]", index.join(", "))
}

/// Checks that every value of the edge list `edges` (`[2, E]` row-major) is a node of
/// `spec`'s graph; `place(e)` says where edge `e` is in the file.
fn check_edges(spec: &InputSpec, edges: &[i64], place: &dyn Fn(usize, usize) -> String) -> Result<Vec<i32>, String> {
    let Some(g) = &spec.graph else {
        return Ok(Vec::new());
    };
    let e_count = spec.edge_count().max(1);
    for (i, &v) in edges.iter().enumerate() {
        if v < 0 || v as usize >= g.nodes {
            let (end, e) = (i / e_count, i % e_count);
            return Err(format!(
                "{}: {} {v} is outside [0, {}) (nodes of graph '{}')",
                place(e, end),
                if end == 0 { "source" } else { "destination" },
                g.nodes,
                g.name
            ));
        }
    }
    Ok(edges.iter().map(|&v| v as i32).collect())
}

/// One column from the bytes of a `.npy` file: (rows, values); a whole input counts one
/// row. Errors without the path.
pub fn column_from_npy(bytes: &[u8], spec: &InputSpec) -> Result<(usize, Column), String> {
    let a = npy::parse(bytes)?;
    let dtype_ok = match spec.dtype {
        DType::I32 => matches!(a.kind, npy::Kind::Int | npy::Kind::Uint),
        DType::F32 => a.kind == npy::Kind::Float,
    };
    let shape_ok = if spec.whole {
        a.shape == spec.row_shape
    } else {
        a.shape.len() == spec.row_shape.len() + 1 && a.shape[1..] == spec.row_shape[..]
    };
    if !dtype_ok || !shape_ok {
        let transposed =
            spec.graph.is_some() && a.shape.len() == 2 && a.shape[0] == spec.edge_count() && a.shape[1] == 2;
        let hint = match (dtype_ok, spec.dtype) {
            (false, DType::I32) => "; save integers, e.g. a.astype(np.int32)",
            (false, DType::F32) => "; save floats, e.g. a.astype(np.float32)",
            _ if transposed => "; save one edge per column, row 0 sources and row 1 destinations, e.g. a.T",
            _ => "",
        };
        return Err(format!(
            "expected {}, found {} ({}{hint})",
            spec.expected(),
            npy::describe(&a.descr, &a.shape),
            spec.declared
        ));
    }
    let rows = if spec.whole { 1 } else { a.shape[0] };
    let place = |i: usize| {
        move || {
            if spec.whole {
                npy_index(&spec.row_shape, i)
            } else {
                npy_place(&spec.row_shape, i)
            }
        }
    };
    let column = match spec.dtype {
        DType::I32 if spec.graph.is_some() => {
            // Values above i64::MAX (u8 files) read as i64::MAX: outside the graph too.
            let values: Vec<i64> = (0..a.len()).map(|i| a.int(i).unwrap_or(i64::MAX)).collect();
            Column::I32(check_edges(spec, &values, &|e, _| format!("edge {e} (column {e})"))?)
        }
        DType::I32 => Column::I32(
            (0..a.len())
                .map(|i| match a.int(i) {
                    Some(v) => check_int(v, spec, &place(i)),
                    None => Err(format!("{}: value does not fit in i32", place(i)())),
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::F32 => Column::F32(
            (0..a.len())
                .map(|i| check_float(a.float(i).unwrap_or(f64::NAN), &place(i)))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok((rows, column))
}

/// One column from the text of a CSV file: (rows, values); a whole input counts one row
/// and has one line per index of its first axis, except an edge list, which has one
/// edge `source,destination` per line. Errors without the path.
pub fn column_from_csv(text: &str, spec: &InputSpec) -> Result<(usize, Column), String> {
    let table = csv::parse(text);
    let edges = spec.graph.is_some();
    let width = if edges {
        2
    } else if spec.whole {
        spec.row_shape.iter().skip(1).product()
    } else {
        spec.width()
    };
    let sample = if edges { "edge source,destination" } else { "sample" };
    let mut ints = Vec::new();
    let mut edge_values: Vec<i64> = Vec::new();
    let mut floats = Vec::new();
    for (line, fields) in &table.rows {
        if fields.len() != width {
            return Err(format!(
                "line {line}: {} value{}, expected {width} ({}: one {sample} of {width} value{} per line)",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                spec.declared,
                if width == 1 { "" } else { "s" },
            ));
        }
        for (j, field) in fields.iter().enumerate() {
            let place = || format!("line {line}, field {}", j + 1);
            match spec.dtype {
                DType::I32 => {
                    // `3` or an integral float such as numpy.savetxt's `3.000000000000000000e+00`.
                    let v = match field.parse::<i64>() {
                        Ok(v) => v,
                        Err(_) => match field.parse::<f64>() {
                            Ok(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => f as i64,
                            _ => return Err(format!("{}: '{field}' is not an integer", place())),
                        },
                    };
                    if edges {
                        edge_values.push(v);
                    } else {
                        ints.push(check_int(v, spec, &place)?);
                    }
                }
                DType::F32 => {
                    let v: f64 = field
                        .parse()
                        .map_err(|_| format!("{}: '{field}' is not a number", place()))?;
                    floats.push(check_float(v, &place)?);
                }
            }
        }
    }
    let lines = table.rows.len();
    let expected_lines = match (edges, spec.whole) {
        (true, _) => Some(spec.edge_count()),
        (false, true) => Some(spec.row_shape.first().copied().unwrap_or(1)),
        (false, false) => None,
    };
    if let Some(n) = expected_lines.filter(|&n| n != lines) {
        let what = if edges { "edges" } else { "lines" };
        return Err(format!("{lines} lines, expected {n} {what} ({})", spec.declared));
    }
    if edges {
        // Lines are edges: transpose to [2, E], then check against the graph's nodes.
        let sources = edge_values.iter().step_by(2).copied();
        let destinations = edge_values.iter().skip(1).step_by(2).copied();
        let values: Vec<i64> = sources.chain(destinations).collect();
        let line_of = |e: usize| table.rows[e].0;
        ints = check_edges(spec, &values, &|e, end| {
            format!("line {}, field {}: edge {e}", line_of(e), end + 1)
        })?;
    }
    let column = match spec.dtype {
        DType::I32 => Column::I32(ints),
        DType::F32 => Column::F32(floats),
    };
    Ok((if spec.whole { 1 } else { lines }, column))
}

/// One column from a file, by its extension.
pub fn load_column(path: &Path, spec: &InputSpec) -> Result<(usize, Column), String> {
    let bytes = std::fs::read(path).map_err(|e| at(path, format!("cannot read the file: {e}")))?;
    let result = if path.extension().is_some_and(|e| e == "csv") {
        match std::str::from_utf8(&bytes) {
            Ok(text) => column_from_csv(text, spec),
            Err(e) => Err(format!("not UTF-8 text (invalid byte at offset {})", e.valid_up_to())),
        }
    } else {
        column_from_npy(&bytes, spec)
    };
    result.map_err(|e| at(path, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dtype: DType, row_shape: &[usize], vocab: Option<usize>) -> InputSpec {
        InputSpec {
            name: "x".into(),
            dtype,
            row_shape: row_shape.to_vec(),
            declared: "input 'x' is ...".into(),
            vocab,
            classes: None,
            is_label: false,
            whole: false,
            graph: None,
        }
    }

    #[test]
    fn places() {
        assert_eq!(npy_place(&[], 4), "row 4");
        assert_eq!(npy_place(&[8], 17 * 8 + 3), "row 17, column 3");
        assert_eq!(npy_place(&[3, 4], 2 * 12 + 4 + 1), "row 2, at [1, 1]");
    }

    #[test]
    fn npy_conversions() {
        let s = spec(DType::I32, &[2], Some(100));
        let data: Vec<u8> = [1i64, 2, 3, 99].iter().flat_map(|v| v.to_le_bytes()).collect();
        let (rows, col) = column_from_npy(&npy::encode_raw("<i8", false, &[2, 2], &data), &s).unwrap();
        assert_eq!((rows, col), (2, Column::I32(vec![1, 2, 3, 99])));
        let data: Vec<u8> = [1i64, 2, 3, 100].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = column_from_npy(&npy::encode_raw("<i8", false, &[2, 2], &data), &s).unwrap_err();
        assert_eq!(
            e,
            "row 1, column 1: token id 100 is outside [0, 100) (vocab of input 'x')"
        );
        let s = spec(DType::I32, &[], None);
        let data: Vec<u8> = [5_000_000_000i64].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = column_from_npy(&npy::encode_raw("<i8", false, &[1], &data), &s).unwrap_err();
        assert_eq!(e, "row 0: value 5000000000 does not fit in i32");
        let s = spec(DType::F32, &[], None);
        let data: Vec<u8> = [0.5f64, 1e300].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = column_from_npy(&npy::encode_raw("<f8", false, &[2], &data), &s).unwrap_err();
        assert_eq!(e, "row 1: value 1e300 is outside the range of f32");
        let e = column_from_npy(&npy::encode_f32(&[2], &[0.5, f32::NAN]), &s).unwrap_err();
        assert_eq!(e, "row 1: NaN (f32 data must be finite)");
    }

    #[test]
    fn csv_conversions() {
        let s = spec(DType::I32, &[2], Some(10));
        let (rows, col) = column_from_csv("a,b\n1,2\n3.000e+00, 9\n", &s).unwrap();
        assert_eq!((rows, col), (2, Column::I32(vec![1, 2, 3, 9])));
        let e = column_from_csv("1,2\n3,10\n", &s).unwrap_err();
        assert_eq!(
            e,
            "line 2, field 2: token id 10 is outside [0, 10) (vocab of input 'x')"
        );
        let e = column_from_csv("1,2\n3\n", &s).unwrap_err();
        assert!(e.starts_with("line 2: 1 value, expected 2"), "{e}");
        let e = column_from_csv("1,2\n3,2.5\n", &s).unwrap_err();
        assert_eq!(e, "line 2, field 2: '2.5' is not an integer");
        let s = spec(DType::F32, &[1], None);
        let e = column_from_csv("1\ninf\n", &s).unwrap_err();
        assert_eq!(e, "line 2, field 1: inf (f32 data must be finite)");
    }
}
