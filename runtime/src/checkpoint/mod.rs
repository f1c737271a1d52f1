//! Checkpoints: a model's parameters, and what a run needs to go on, as a safetensors file.
//!
//! In: parameter values by name, their shapes (from the compiled model), optionally the
//! optimizer state, and metadata (model name, step, seed, dim values, and for a run's
//! checkpoint the epochs done and the data order's position). Out: a `.safetensors` file
//! that PyTorch, `safetensors.torch.load_file` and numpy readers open: one F32 tensor per
//! parameter, keyed by the parameter's name, and `__metadata__` with `format: mpc`,
//! `model`, `step`, `seed` and `dims` (`B=64,T=32`), plus `epoch` and `data_order` (the
//! shuffling generator's state after that epoch) when the run can be resumed. Shapes are
//! the model's: a linear weight is `[in, out]`, the transpose of `torch.nn.Linear.weight`
//! (`[out, in]`).
//!
//! Optimizer state (Adam's moments, SGD's momentum: `adam.m:<param>` in the IR) is stored
//! under keys that start with [`OPTIMIZER_PREFIX`] (`@optimizer/adam.m:<param>`, the
//! parameter's shape). No parameter name starts with `@`, so a PyTorch user drops them
//! with `if not k.startswith("@")`; [`load`] ignores them, [`load_state`] reads them.
//!
//! The container (an 8-byte little-endian header length, the JSON header padded to a
//! multiple of 8, then the little-endian tensor data in header order) is written and
//! read by the `safetensors` crate; this module adds what mpc needs around it.
//!
//! Writing is atomic: the bytes go to a temporary file in the target's directory, are
//! fsync'd, and the file is renamed over the target; on any failure the temporary file
//! is removed and an existing checkpoint is left as it was.
//!
//! Reading lets the crate validate the container (header length, JSON, offsets that
//! tile the data exactly), words its errors as one line (`truncated: ...`, `not a
//! safetensors file (...)`), and then checks names, dtypes and shapes against the model,
//! that every weight is finite, and that the mpc metadata present is well-formed (an
//! invalid `seed`, `step` or `dims` entry is an error, not a silent default).

use mpc_compiler::specialize::ConcreteParam;
use safetensors::tensor::{Dtype, SafeTensorError, TensorInfo, View};
use safetensors::SafeTensors;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

mod meta;
pub use meta::{Meta, Progress, OPTIMIZER_PREFIX};

/// A parameter as the crate writes it: little-endian F32 with the model's shape.
struct F32Tensor<'a> {
    shape: &'a [usize],
    values: &'a [f32],
}

impl View for F32Tensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

/// The bytes of a safetensors file holding `params` with `shapes`, in name order.
pub fn encode(params: &BTreeMap<String, Vec<f32>>, shapes: &[ConcreteParam], meta: &Meta) -> Result<Vec<u8>, String> {
    encode_run(params, &BTreeMap::new(), shapes, meta)
}

/// The bytes of a checkpoint holding `params` and the optimizer `state` (`<slot>:<param>`,
/// each with its parameter's shape, under [`OPTIMIZER_PREFIX`]).
pub fn encode_run(
    params: &BTreeMap<String, Vec<f32>>,
    state: &BTreeMap<String, Vec<f32>>,
    shapes: &[ConcreteParam],
    meta: &Meta,
) -> Result<Vec<u8>, String> {
    let shape_of: BTreeMap<&str, &[usize]> = shapes.iter().map(|p| (p.name.as_str(), p.shape.as_slice())).collect();
    let keyed_state: Vec<(String, &Vec<f32>)> = state
        .iter()
        .map(|(name, v)| (format!("{OPTIMIZER_PREFIX}{name}"), v))
        .collect();
    let all = params.iter().map(|(n, v)| (n, v, n.as_str())).chain(
        keyed_state
            .iter()
            .zip(state.keys())
            .map(|((key, v), name)| (key, *v, name.split_once(':').map_or("", |(_, p)| p))),
    );
    let mut tensors = Vec::with_capacity(params.len() + state.len());
    for (name, values, shaped_like) in all {
        let shape = *shape_of
            .get(shaped_like)
            .ok_or_else(|| format!("parameter '{shaped_like}' of '{name}' has no shape in the model"))?;
        if shape.iter().product::<usize>() != values.len() {
            return Err(format!(
                "parameter '{name}' holds {} values, its shape {shape:?} needs {}",
                values.len(),
                shape.iter().product::<usize>()
            ));
        }
        tensors.push((name.as_str(), F32Tensor { shape, values }));
    }
    let metadata = meta.to_strings();
    let mut bytes = safetensors::serialize(tensors, Some(metadata.clone().into_iter().collect()))
        .map_err(|e| format!("cannot encode the checkpoint: {e}"))?;
    sort_metadata(&mut bytes, &metadata);
    Ok(bytes)
}

/// Puts `__metadata__` in key order, so that equal checkpoints are equal bytes: the
/// crate writes it first in the header, in its hash map's order, which changes from run
/// to run. The same entries in key order are text of the same length, written in place;
/// if the header does not hold them where expected, the bytes stay as they are (valid,
/// in another order).
fn sort_metadata(bytes: &mut [u8], metadata: &BTreeMap<String, String>) {
    let prefix = br#"{"__metadata__":"#;
    let Ok(sorted) = serde_json::to_vec(metadata) else {
        return;
    };
    let start = 8 + prefix.len();
    let Some(region) = bytes.get(start..start + sorted.len()) else {
        return;
    };
    let same = serde_json::from_slice::<BTreeMap<String, String>>(region).is_ok_and(|m| &m == metadata);
    if same && bytes[8..].starts_with(prefix) {
        bytes[start..start + sorted.len()].copy_from_slice(&sorted);
    }
}

/// Writes `bytes` to `path` atomically (see [`crate::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    // Messages name what is written ("cannot write the checkpoint: ...").
    let noun = |e: String| e.replacen("cannot write", "cannot write the checkpoint", 1);
    crate::files::write_atomic(path, bytes).map_err(|e| format!("{}: {}", path.display(), noun(e)))
}

/// Saves a checkpoint of `params` (see the module doc).
pub fn save(
    path: &Path,
    params: &BTreeMap<String, Vec<f32>>,
    shapes: &[ConcreteParam],
    meta: &Meta,
) -> Result<(), String> {
    save_run(path, params, &BTreeMap::new(), shapes, meta)
}

/// Saves a checkpoint of `params` and the optimizer `state`, which `--resume` reads.
pub fn save_run(
    path: &Path,
    params: &BTreeMap<String, Vec<f32>>,
    state: &BTreeMap<String, Vec<f32>>,
    shapes: &[ConcreteParam],
    meta: &Meta,
) -> Result<(), String> {
    let bytes = encode_run(params, state, shapes, meta).map_err(|e| format!("{}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// The header length that the first 8 bytes of `bytes` give (0 when there are fewer).
fn header_len(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// The tensors the header of `bytes` declares, in no particular order; empty when the
/// header cannot be read. Only for wording an error the crate found.
fn declared_tensors(bytes: &[u8]) -> Vec<(String, TensorInfo)> {
    let end = usize::try_from(header_len(bytes))
        .unwrap_or(usize::MAX)
        .saturating_add(8);
    let Some(header) = bytes.get(8..end) else {
        return Vec::new();
    };
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).unwrap_or_default();
    entries
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .filter_map(|(name, v)| Some((name, serde_json::from_value(v).ok()?)))
        .collect()
}

/// One line saying what is wrong with `bytes` (without the path), for the crate's `error`.
fn describe(error: SafeTensorError, bytes: &[u8]) -> String {
    let not = "not a safetensors file";
    let n = header_len(bytes);
    let rest = bytes.len().saturating_sub(8);
    let header_is_object = bytes.get(8) == Some(&b'{');
    match error {
        SafeTensorError::HeaderTooSmall => format!(
            "{not} (it is {} bytes long, shorter than the header length)",
            bytes.len()
        ),
        // A length far beyond any header is a foreign file, not a truncated checkpoint.
        SafeTensorError::HeaderTooLarge => format!("{not} (its first 8 bytes give a header length of {n})"),
        SafeTensorError::InvalidHeaderLength => {
            format!("truncated: the header is {n} bytes long, the file holds {rest} after the length")
        }
        SafeTensorError::InvalidHeader(_) | SafeTensorError::InvalidHeaderDeserialization(_) if !header_is_object => {
            format!("{not} (the header is not a JSON object)")
        }
        SafeTensorError::InvalidHeader(e) => format!("{not} (unreadable header: {e})"),
        SafeTensorError::InvalidHeaderDeserialization(e) => format!("{not} (unreadable header: {e})"),
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor '{name}': its data_offsets do not follow the previous tensor's end")
        }
        SafeTensorError::TensorInvalidInfo => {
            let wrong = declared_tensors(bytes).into_iter().find_map(|(name, t)| {
                let needs = t.shape.iter().product::<usize>() * t.dtype.bitsize() / 8;
                let (b, e) = t.data_offsets;
                (e.checked_sub(b) != Some(needs)).then(|| {
                    format!(
                        "tensor '{name}': data_offsets [{b}, {e}] hold {} bytes, its dtype and shape need {needs}",
                        e.saturating_sub(b)
                    )
                })
            });
            wrong.unwrap_or_else(|| "a tensor's data_offsets do not match its dtype and shape".into())
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            let end = declared_tensors(bytes)
                .iter()
                .map(|(_, t)| t.data_offsets.1)
                .max()
                .unwrap_or(0);
            let data = rest.saturating_sub(n as usize);
            if data < end {
                format!("truncated: the header describes {end} bytes of tensor data, the file holds {data}")
            } else {
                format!(
                    "the file holds {} bytes after the tensor data the header describes",
                    data - end
                )
            }
        }
        other => format!("{not} ({other})"),
    }
}

/// Reads a checkpoint: its tensors (validated by the crate) and its metadata.
fn read<'a>(path: &Path, bytes: &'a [u8]) -> Result<(SafeTensors<'a>, Meta), String> {
    let at = |e: SafeTensorError| format!("{}: {}", path.display(), describe(e, bytes));
    // The header (with `__metadata__`) and the tensor views come from two calls: the
    // crate's `SafeTensors` keeps the metadata to itself.
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(at)?;
    let strings = header.metadata().clone().unwrap_or_default();
    let meta = Meta::from_strings(|key| strings.get(key)).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = SafeTensors::deserialize(bytes).map_err(at)?;
    Ok((file, meta))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let noun = |e: String| e.replacen("cannot read the file", "cannot read the checkpoint", 1);
    crate::files::read(path, crate::files::CHECKPOINT_LIMIT).map_err(|e| format!("{}: {}", path.display(), noun(e)))
}

/// Only the metadata of a checkpoint (for `mpc run` to learn its dims and seed before
/// compiling).
pub fn read_meta(path: &Path) -> Result<Meta, String> {
    let bytes = read_bytes(path)?;
    Ok(read(path, &bytes)?.1)
}

/// Loads the parameters of a checkpoint, checking them against the model's: every
/// parameter present with dtype F32 and the model's shape, and nothing else (optimizer
/// state, under [`OPTIMIZER_PREFIX`], is left for [`load_state`]).
pub fn load(path: &Path, expected: &[ConcreteParam]) -> Result<(BTreeMap<String, Vec<f32>>, Meta), String> {
    let bytes = read_bytes(path)?;
    let (file, meta) = read(path, &bytes)?;
    Ok((params_of(path, &file, expected)?, meta))
}

/// Tensors by name.
pub type Tensors = BTreeMap<String, Vec<f32>>;

/// Loads a run's checkpoint in one read: the parameters as [`load`] does, the optimizer
/// state as [`load_state`] does, and the metadata.
pub fn load_run(
    path: &Path,
    params: &[ConcreteParam],
    state: &[(String, Vec<usize>)],
) -> Result<(Tensors, Tensors, Meta), String> {
    let bytes = read_bytes(path)?;
    let (file, meta) = read(path, &bytes)?;
    Ok((params_of(path, &file, params)?, state_of(path, &file, state)?, meta))
}

fn params_of(
    path: &Path,
    file: &SafeTensors,
    expected: &[ConcreteParam],
) -> Result<BTreeMap<String, Vec<f32>>, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let mut params = BTreeMap::new();
    for p in expected {
        let values = f32_tensor(file, &p.name, "parameter", &p.shape).map_err(at)?;
        params.insert(p.name.clone(), values);
    }
    let mut names = file.names();
    names.sort_unstable();
    let extra = names
        .into_iter()
        .filter(|k| !k.starts_with(OPTIMIZER_PREFIX))
        .find(|k| !expected.iter().any(|p| p.name == *k));
    if let Some(extra) = extra {
        return Err(at(format!("tensor '{extra}' is not a parameter of the model")));
    }
    Ok(params)
}

/// Loads a checkpoint's optimizer state: every entry of `expected` (`<slot>:<param>` and
/// its parameter's shape) present under [`OPTIMIZER_PREFIX`], and no other.
pub fn load_state(path: &Path, expected: &[(String, Vec<usize>)]) -> Result<BTreeMap<String, Vec<f32>>, String> {
    let bytes = read_bytes(path)?;
    let (file, _) = read(path, &bytes)?;
    state_of(path, &file, expected)
}

fn state_of(
    path: &Path,
    file: &SafeTensors,
    expected: &[(String, Vec<usize>)],
) -> Result<BTreeMap<String, Vec<f32>>, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let mut names = file.names();
    names.sort_unstable();
    let stored: Vec<&str> = names.iter().filter_map(|k| k.strip_prefix(OPTIMIZER_PREFIX)).collect();
    if stored.is_empty() && !expected.is_empty() {
        return Err(at(
            "holds no optimizer state (it was not written by `mpc train --save`, or by an mpc \
                       before resumable checkpoints); --init starts from its parameters with a fresh optimizer"
                .into(),
        ));
    }
    if let Some(extra) = stored.iter().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        return Err(at(format!(
            "optimizer state '{extra}' is not this model's (another optimizer, or another model)"
        )));
    }
    let mut state = BTreeMap::new();
    for (name, shape) in expected {
        let key = format!("{OPTIMIZER_PREFIX}{name}");
        state.insert(
            name.clone(),
            f32_tensor(file, &key, "optimizer state", shape).map_err(at)?,
        );
    }
    Ok(state)
}

/// The values of tensor `name` (a `what`), which must be F32 of `shape` and finite.
fn f32_tensor(file: &SafeTensors, name: &str, what: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let Ok(t) = file.tensor(name) else {
        return Err(format!("missing {what} '{name}' (shape {shape:?})"));
    };
    if t.dtype() != Dtype::F32 {
        return Err(format!("{what} '{name}' is {}, expected F32", t.dtype()));
    }
    if t.shape() != shape {
        return Err(format!(
            "{what} '{name}' has shape {:?}, the model's is {shape:?}",
            t.shape()
        ));
    }
    // The crate checked that the data holds exactly the shape's bytes.
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    // A NaN or infinite weight poisons every loss and prediction it touches.
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "{what} '{name}' holds {} at element {i} of {}: not a usable weight",
            values[i],
            values.len()
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_compiler::specialize::ConcreteInit;
    use std::fs;
    use std::path::PathBuf;

    fn param(name: &str, shape: &[usize]) -> ConcreteParam {
        ConcreteParam {
            name: name.into(),
            shape: shape.to_vec(),
            init: ConcreteInit::Normal { std: 1.0 },
        }
    }

    fn sample() -> (BTreeMap<String, Vec<f32>>, Vec<ConcreteParam>, Meta) {
        let params = BTreeMap::from([
            ("a.linear.weight".to_string(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ("a.linear.bias".to_string(), vec![-1.0, 0.5, 0.25]),
        ]);
        let shapes = vec![param("a.linear.weight", &[2, 3]), param("a.linear.bias", &[3])];
        let meta = Meta {
            model: "M".into(),
            step: 7,
            seed: 42,
            dims: BTreeMap::from([("B".to_string(), 16)]),
            progress: None,
        };
        (params, shapes, meta)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mpc-ckpt-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The error of loading `bytes` as a checkpoint of `sample()`'s shapes.
    fn load_error(name: &str, bytes: &[u8]) -> String {
        let (_, shapes, _) = sample();
        let dir = scratch(name);
        let path = dir.join("w.safetensors");
        write_atomic(&path, bytes).unwrap();
        let e = load(&path, &shapes).unwrap_err();
        fs::remove_dir_all(&dir).unwrap();
        e.strip_prefix(&format!("{}: ", path.display())).unwrap().to_string()
    }

    #[test]
    fn round_trip() {
        let (params, shapes, meta) = sample();
        let bytes = encode(&params, &shapes, &meta).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        // Metadata in key order, whatever the crate's hash map did: equal checkpoints are
        // equal bytes.
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        let sorted = r#"{"__metadata__":{"dims":"B=16","format":"mpc","model":"M","seed":"42","step":"7"},"#;
        assert!(header.starts_with(sorted), "{header}");
        // Tensors in name order, little-endian F32: the bias's -1.0 comes first.
        assert_eq!(bytes[8 + n..8 + n + 4], (-1.0f32).to_le_bytes());
        let dir = scratch("round");
        let path = dir.join("w.safetensors");
        write_atomic(&path, &bytes).unwrap();
        let (back, m) = load(&path, &shapes).unwrap();
        assert_eq!((back, m), (params, meta.clone()));
        assert_eq!(read_meta(&path).unwrap(), meta);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_runs_checkpoint_round_trips_its_state_and_progress() {
        let (params, shapes, mut meta) = sample();
        meta.progress = Some(Progress {
            epoch: 3,
            data_order: u64::MAX - 5,
        });
        let state = BTreeMap::from([
            ("adam.m:a.linear.bias".to_string(), vec![0.5, 0.25, 0.125]),
            ("adam.v:a.linear.weight".to_string(), vec![1e-8; 6]),
        ]);
        let dir = scratch("state");
        let path = dir.join("w.safetensors");
        save_run(&path, &params, &state, &shapes, &meta).unwrap();
        // The parameters load as from any checkpoint, the state is skipped...
        assert_eq!(load(&path, &shapes).unwrap(), (params, meta));
        // ...and read under its own keys, shaped like its parameter.
        let expected = [
            ("adam.m:a.linear.bias".to_string(), vec![3]),
            ("adam.v:a.linear.weight".to_string(), vec![2, 3]),
        ];
        assert_eq!(load_state(&path, &expected).unwrap(), state);
        let e = load_state(&path, &expected[..1]).unwrap_err();
        assert!(
            e.ends_with(
                "optimizer state 'adam.v:a.linear.weight' is not this model's (another optimizer, or another model)"
            ),
            "{e}"
        );
        let wrong = [("adam.m:a.linear.bias".to_string(), vec![1, 3]), expected[1].clone()];
        let e = load_state(&path, &wrong).unwrap_err();
        assert!(
            e.ends_with("optimizer state '@optimizer/adam.m:a.linear.bias' has shape [3], the model's is [1, 3]"),
            "{e}"
        );
        // Half a progress record is an error, not a guess.
        let half = BTreeMap::from([("epoch".to_string(), "2".to_string())]);
        assert_eq!(
            Meta::from_strings(|k| half.get(k)).unwrap_err(),
            "invalid metadata: 'epoch' without 'data_order'"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_prefix_is_an_error() {
        let (params, shapes, meta) = sample();
        let bytes = encode(&params, &shapes, &meta).unwrap();
        for cut in 0..bytes.len() {
            let e = SafeTensors::deserialize(&bytes[..cut]).unwrap_err();
            let e = describe(e, &bytes[..cut]);
            assert!(e.contains("truncated") || e.contains("not a safetensors"), "{cut}: {e}");
        }
    }

    #[test]
    fn container_errors_are_worded() {
        let (params, shapes, meta) = sample();
        let good = encode(&params, &shapes, &meta).unwrap();
        let n = header_len(&good) as usize;
        let data = good.len() - 8 - n;
        assert_eq!(
            load_error("short", &good[..good.len() - 4]),
            format!(
                "truncated: the header describes {data} bytes of tensor data, the file holds {}",
                data - 4
            )
        );
        let long = [&good[..], &[0u8; 4]].concat();
        assert_eq!(
            load_error("long", &long),
            "the file holds 4 bytes after the tensor data the header describes"
        );
        assert_eq!(
            load_error("tiny", &good[..5]),
            "not a safetensors file (it is 5 bytes long, shorter than the header length)"
        );
        let mut not_json = good.clone();
        not_json[8] = b'[';
        assert_eq!(
            load_error("array", &not_json),
            "not a safetensors file (the header is not a JSON object)"
        );
    }

    #[test]
    fn wrong_dtype_and_extra_tensors() {
        use safetensors::tensor::TensorView;
        let weight = [0u8; 24];
        let bias = [0u8; 24];
        let tensors = [
            (
                "a.linear.weight",
                TensorView::new(Dtype::F32, vec![2, 3], &weight).unwrap(),
            ),
            ("a.linear.bias", TensorView::new(Dtype::F64, vec![3], &bias).unwrap()),
        ];
        let bytes = safetensors::serialize(tensors, None).unwrap();
        assert_eq!(
            load_error("f64", &bytes),
            "parameter 'a.linear.bias' is F64, expected F32"
        );

        let (mut params, shapes, meta) = sample();
        params.insert("x.extra".into(), vec![1.0]);
        let shapes = [shapes, vec![param("x.extra", &[1])]].concat();
        let bytes = encode(&params, &shapes, &meta).unwrap();
        assert_eq!(
            load_error("extra", &bytes),
            "tensor 'x.extra' is not a parameter of the model"
        );
    }
}
