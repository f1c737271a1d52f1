//! Checkpoints: a model's parameters as a safetensors file.
//!
//! In: parameter values by name, their shapes (from the compiled model) and metadata
//! (model name, step, seed, dim values). Out: a `.safetensors` file that PyTorch,
//! `safetensors.torch.load_file` and numpy readers open: one F32 tensor per parameter,
//! keyed by the parameter's name, and `__metadata__` with `format: mpc`, `model`, `step`,
//! `seed` and `dims` (`B=64,T=32`). Shapes are the model's: a linear weight is
//! `[in, out]`, the transpose of `torch.nn.Linear.weight` (`[out, in]`).
//!
//! Writing is atomic: the bytes go to a temporary file in the target's directory, are
//! fsync'd, and the file is renamed over the target; on any failure the temporary file
//! is removed and an existing checkpoint is left as it was.
//!
//! Reading validates the container (header length, JSON, offsets that tile the data
//! exactly) and then names, dtypes and shapes against the model; every error is one line.
//!
//! The format: an 8-byte little-endian header length `N`, `N` bytes of JSON
//! `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}`
//! (padded with spaces to a multiple of 8), then the tensor data, little-endian.

use mpc_compiler::specialize::ConcreteParam;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a checkpoint records besides the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub model: String,
    pub step: i32,
    pub seed: u64,
    /// Dim values the model was compiled with.
    pub dims: BTreeMap<String, usize>,
}

impl Meta {
    fn to_strings(&self) -> BTreeMap<String, String> {
        let dims: Vec<String> = self.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        BTreeMap::from([
            ("format".to_string(), "mpc".to_string()),
            ("model".to_string(), self.model.clone()),
            ("step".to_string(), self.step.to_string()),
            ("seed".to_string(), self.seed.to_string()),
            ("dims".to_string(), dims.join(",")),
        ])
    }

    /// Reads what is there; missing or malformed entries get defaults (a checkpoint
    /// written by another tool has no mpc metadata).
    fn from_strings(m: &BTreeMap<String, String>) -> Meta {
        let dims = m
            .get("dims")
            .map(|d| {
                d.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        Meta {
            model: m.get("model").cloned().unwrap_or_default(),
            step: m.get("step").and_then(|s| s.parse().ok()).unwrap_or(0),
            seed: m.get("seed").and_then(|s| s.parse().ok()).unwrap_or(0),
            dims,
        }
    }
}

/// The bytes of a safetensors file holding `params` with `shapes`, in name order.
pub fn encode(params: &BTreeMap<String, Vec<f32>>, shapes: &[ConcreteParam], meta: &Meta) -> Result<Vec<u8>, String> {
    let shape_of: BTreeMap<&str, &[usize]> = shapes.iter().map(|p| (p.name.as_str(), p.shape.as_slice())).collect();
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!(meta.to_strings()));
    let mut offset = 0usize;
    for (name, values) in params {
        let shape = shape_of
            .get(name.as_str())
            .ok_or_else(|| format!("parameter '{name}' has no shape in the model"))?;
        if shape.iter().product::<usize>() != values.len() {
            return Err(format!(
                "parameter '{name}' holds {} values, its shape {shape:?} needs {}",
                values.len(),
                shape.iter().product::<usize>()
            ));
        }
        let end = offset + values.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&Value::Object(header)).map_err(|e| e.to_string())?;
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for values in params.values() {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: cannot write the checkpoint: {e}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every platform opens directories).
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        at(e)
    })
}

/// Saves a checkpoint of `params` (see the module doc).
pub fn save(
    path: &Path,
    params: &BTreeMap<String, Vec<f32>>,
    shapes: &[ConcreteParam],
    meta: &Meta,
) -> Result<(), String> {
    let bytes = encode(params, shapes, meta).map_err(|e| format!("{}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// A tensor as the file declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub offsets: (usize, usize),
}

/// A parsed safetensors file: metadata, tensor table and the data section.
#[derive(Debug)]
pub struct SafeTensors {
    pub metadata: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, TensorInfo>,
    pub data: Vec<u8>,
}

/// Parses a safetensors container (errors without the path).
pub fn parse(mut bytes: Vec<u8>) -> Result<SafeTensors, String> {
    let not = "not a safetensors file";
    if bytes.len() < 8 {
        return Err(format!(
            "{not} (it is {} bytes long, shorter than the header length)",
            bytes.len()
        ));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let rest = (bytes.len() - 8) as u64;
    if n > rest {
        // A length far beyond the file is a foreign file, not a truncated checkpoint.
        return Err(if n > 100 << 20 {
            format!("{not} (its first 8 bytes give a header length of {n})")
        } else {
            format!("truncated: the header is {n} bytes long, the file holds {rest} after the length")
        });
    }
    let header = &bytes[8..8 + n as usize];
    if header.first() != Some(&b'{') {
        return Err(format!("{not} (the header is not a JSON object)"));
    }
    let header: Value = serde_json::from_slice(header).map_err(|e| format!("{not} (unreadable header: {e})"))?;
    let Value::Object(header) = header else {
        return Err(format!("{not} (the header is not a JSON object)"));
    };
    let mut metadata = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            let Value::Object(m) = v else {
                return Err("__metadata__ is not an object".into());
            };
            for (k, v) in m {
                let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                metadata.insert(k, s);
            }
            continue;
        }
        let bad = |what: &str| format!("tensor '{name}': {what}");
        let dtype = v
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no dtype"))?
            .to_string();
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad("no shape (a list of sizes)"))?;
        let offsets = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
            .ok_or_else(|| bad("no data_offsets [begin, end]"))?;
        tensors.insert(name, TensorInfo { dtype, shape, offsets });
    }
    let data = bytes.split_off(8 + n as usize);
    // The tensors must tile the data section exactly (as the safetensors crate checks).
    let mut spans: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|(k, t)| (t.offsets.0, t.offsets.1, k.as_str()))
        .collect();
    spans.sort();
    let mut end = 0;
    for (b, e, name) in spans {
        if b != end || e < b {
            return Err(format!(
                "tensor '{name}': data_offsets [{b}, {e}] do not follow the previous tensor (which ends at {end})"
            ));
        }
        end = e;
    }
    if data.len() < end {
        return Err(format!(
            "truncated: the header describes {end} bytes of tensor data, the file holds {}",
            data.len()
        ));
    }
    if data.len() > end {
        return Err(format!(
            "the file holds {} bytes after the tensor data the header describes",
            data.len() - end
        ));
    }
    Ok(SafeTensors {
        metadata,
        tensors,
        data,
    })
}

/// Only the metadata of a checkpoint (for `mpc run` to learn its dims and seed before
/// compiling); reads the header, not the tensors.
pub fn read_meta(path: &Path) -> Result<Meta, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let bytes = fs::read(path).map_err(|e| at(format!("cannot read the checkpoint: {e}")))?;
    let file = parse(bytes).map_err(at)?;
    Ok(Meta::from_strings(&file.metadata))
}

/// Loads the parameters of a checkpoint, checking them against the model's: every
/// parameter present with dtype F32 and the model's shape, and nothing else.
pub fn load(path: &Path, expected: &[ConcreteParam]) -> Result<(BTreeMap<String, Vec<f32>>, Meta), String> {
    let at = |e: String| format!("{}: {e}", path.display());
    let bytes = fs::read(path).map_err(|e| at(format!("cannot read the checkpoint: {e}")))?;
    let file = parse(bytes).map_err(at)?;
    let mut params = BTreeMap::new();
    for p in expected {
        let Some(t) = file.tensors.get(&p.name) else {
            return Err(at(format!("missing parameter '{}' (shape {:?})", p.name, p.shape)));
        };
        if t.dtype != "F32" {
            return Err(at(format!("parameter '{}' is {}, expected F32", p.name, t.dtype)));
        }
        if t.shape != p.shape {
            return Err(at(format!(
                "parameter '{}' has shape {:?}, the model's is {:?}",
                p.name, t.shape, p.shape
            )));
        }
        let (b, e) = t.offsets;
        let n: usize = p.shape.iter().product();
        if e - b != n * 4 {
            return Err(at(format!(
                "parameter '{}': data_offsets [{b}, {e}] hold {} bytes, its shape needs {}",
                p.name,
                e - b,
                n * 4
            )));
        }
        let values = file.data[b..e]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        params.insert(p.name.clone(), values);
    }
    if let Some(extra) = file.tensors.keys().find(|k| !expected.iter().any(|p| &p.name == *k)) {
        return Err(at(format!("tensor '{extra}' is not a parameter of the model")));
    }
    Ok((params, Meta::from_strings(&file.metadata)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc_compiler::specialize::ConcreteInit;

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
        };
        (params, shapes, meta)
    }

    #[test]
    fn round_trip() {
        let (params, shapes, meta) = sample();
        let bytes = encode(&params, &shapes, &meta).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let dir = std::env::temp_dir().join(format!("mpc-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        write_atomic(&path, &bytes).unwrap();
        let (back, m) = load(&path, &shapes).unwrap();
        assert_eq!((back, m), (params, meta));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_prefix_is_an_error() {
        let (params, shapes, meta) = sample();
        let bytes = encode(&params, &shapes, &meta).unwrap();
        for cut in 0..bytes.len() {
            let e = parse(bytes[..cut].to_vec()).unwrap_err();
            assert!(e.contains("truncated") || e.contains("not a safetensors"), "{cut}: {e}");
        }
    }
}
