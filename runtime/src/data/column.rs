//! One column of data from one file, checked value by value against its [`InputSpec`].
//!
//! In: the bytes of a `.npy` file or the text of a CSV file, and the spec of the input
//! or label it holds. Out: (rows, [`Tensor`]), or ONE line saying where and what is
//! wrong (without the path, except [`load_column`], which reads the file and prefixes
//! it). Checks: dtype (integers for `i32`, with `<i8` and unsigned converted when each
//! value fits; floats for `f32`, `<f8` converted when in range), per-row shape, token
//! ids in `[0, vocab)`, labels in `[0, classes)` or -1 (unlabeled), finite `f32` values,
//! edge indices in `[0, N)` for the graph's `N` nodes. Places in `.npy` files are numpy
//! indices (0-based: `row 17, column 3` is `a[17, 3]`); places in CSV files are 1-based
//! line and field numbers. In CSV a whole input has one line per index of its first
//! axis, and an edge list one edge `source,destination` per line.

use super::load::at;
use super::spec::InputSpec;
use super::{csv, npy, Tensor};
use crate::files::clip;
use mpc_compiler::ir::DType;
use std::path::Path;

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

/// The largest integer magnitude below which every integer is an f32.
const EXACT_IN_F32: u64 = 1 << 24;

/// One column from the bytes of a `.npy` file: (rows, values); a whole input counts one
/// row. An f32 input also reads integer files (each value exact in f32). Errors without
/// the path.
pub fn column_from_npy(bytes: &[u8], spec: &InputSpec) -> Result<(usize, Tensor), String> {
    let a = npy::parse(bytes)?;
    let dtype_ok = match spec.dtype {
        DType::I32 => matches!(a.kind, npy::Kind::Int | npy::Kind::Uint),
        // Integer files (features that are small integers, stored narrow) read exactly.
        DType::F32 => true,
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
            Tensor::Int(check_edges(spec, &values, &|e, _| format!("edge {e} (column {e})"))?)
        }
        DType::I32 => Tensor::Int(
            (0..a.len())
                .map(|i| match a.int(i) {
                    Some(v) => check_int(v, spec, &place(i)),
                    None => Err(format!("{}: value does not fit in i32", place(i)())),
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::F32 if a.kind == npy::Kind::Float => Tensor::Float(
            (0..a.len())
                .map(|i| check_float(a.float(i).unwrap_or(f64::NAN), &place(i)))
                .collect::<Result<_, _>>()?,
        ),
        DType::F32 => Tensor::Float(
            (0..a.len())
                .map(|i| match a.int(i) {
                    Some(v) if v.unsigned_abs() <= EXACT_IN_F32 => Ok(v as f32),
                    big => Err(format!(
                        "{}: integer {} is not exact as f32 (magnitude above 2^24); save floats",
                        place(i)(),
                        big.map_or("above i64::MAX".to_string(), |v| v.to_string())
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok((rows, column))
}

/// One column from the text of a CSV file: (rows, values); a whole input counts one row
/// and has one line per index of its first axis, except an edge list, which has one
/// edge `source,destination` per line. Errors without the path.
pub fn column_from_csv(text: &str, spec: &InputSpec) -> Result<(usize, Tensor), String> {
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
                            _ => return Err(format!("{}: '{}' is not an integer", place(), clip(field))),
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
                        .map_err(|_| format!("{}: '{}' is not a number", place(), clip(field)))?;
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
        DType::I32 => Tensor::Int(ints),
        DType::F32 => Tensor::Float(floats),
    };
    Ok((if spec.whole { 1 } else { lines }, column))
}

/// One column from a file, by its extension.
pub fn load_column(path: &Path, spec: &InputSpec) -> Result<(usize, Tensor), String> {
    let bytes = crate::files::read(path, crate::files::DATA_LIMIT).map_err(|e| at(path, e))?;
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
            per_node: false,
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
        assert_eq!((rows, col), (2, Tensor::Int(vec![1, 2, 3, 99])));
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
        // Integer files for f32 inputs: exact values, and a located error past 2^24.
        let bytes = npy::encode_raw("|i1", false, &[3], &[0xff, 0, 7]);
        assert_eq!(
            column_from_npy(&bytes, &s).unwrap(),
            (3, Tensor::Float(vec![-1.0, 0.0, 7.0]))
        );
        let data: Vec<u8> = [3i32, 16_777_217].iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = column_from_npy(&npy::encode_raw("<i4", false, &[2], &data), &s).unwrap_err();
        assert_eq!(
            e,
            "row 1: integer 16777217 is not exact as f32 (magnitude above 2^24); save floats"
        );
    }

    #[test]
    fn csv_conversions() {
        let s = spec(DType::I32, &[2], Some(10));
        let (rows, col) = column_from_csv("a,b\n1,2\n3.000e+00, 9\n", &s).unwrap();
        assert_eq!((rows, col), (2, Tensor::Int(vec![1, 2, 3, 9])));
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
