//! Writes the seeds of the npy, csv and safetensors corpora (small valid files of each
//! kind the readers take, and a few near misses) to `fuzz/corpus/<target>/seed-*`.
//! `cargo run -p mpc-fuzz-harness --example seeds` from the repository root; the model
//! seeds come from `fuzz/seeds/models.py`.

use mpc_compiler::ir::DType;
use mpc_fuzz_harness::{checkpoint_seed, data_specs};
use mpc_runtime::data::npy;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// A version 2 or 3 `.npy` file (u32 header length), header padded to 64 bytes.
fn npy_v(major: u8, descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (12 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    out.extend((header.len() as u32).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn main() {
    let rows = 3;
    for (k, spec) in data_specs().iter().enumerate() {
        let name = format!("{k}-{}", spec.name.replace('.', "_"));
        let mut shape = if spec.whole { vec![] } else { vec![rows] };
        shape.extend(&spec.row_shape);
        let n: usize = shape.iter().product();
        let bound = spec
            .graph
            .as_ref()
            .map(|g| g.nodes)
            .or(spec.vocab)
            .or(spec.classes)
            .unwrap_or(2);
        let ints: Vec<i32> = (0..n).map(|i| (i % bound) as i32).collect();
        let floats: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
        // npy: the native dtype, converted dtypes, versions 2 and 3.
        match spec.dtype {
            DType::I32 => {
                write("npy", &format!("{name}.npy"), &npy::encode_i32(&shape, &ints));
                let i8s: Vec<u8> = ints.iter().flat_map(|&v| i64::from(v).to_le_bytes()).collect();
                write(
                    "npy",
                    &format!("{name}-i8.npy"),
                    &npy::encode_raw("<i8", false, &shape, &i8s),
                );
                let u1: Vec<u8> = ints.iter().map(|&v| v as u8).collect();
                write(
                    "npy",
                    &format!("{name}-u1.npy"),
                    &npy::encode_raw("|u1", false, &shape, &u1),
                );
                let i4: Vec<u8> = ints.iter().flat_map(|v| v.to_le_bytes()).collect();
                write("npy", &format!("{name}-v2.npy"), &npy_v(2, "<i4", &shape, &i4));
                write("npy", &format!("{name}-v3.npy"), &npy_v(3, "<i4", &shape, &i4));
                write(
                    "npy",
                    &format!("{name}-fortran.npy"),
                    &npy::encode_raw("<i4", true, &shape, &i4),
                );
                let be: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
                write(
                    "npy",
                    &format!("{name}-be.npy"),
                    &npy::encode_raw(">i4", false, &shape, &be),
                );
            }
            DType::F32 => {
                write("npy", &format!("{name}.npy"), &npy::encode_f32(&shape, &floats));
                let f8: Vec<u8> = floats.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
                write(
                    "npy",
                    &format!("{name}-f8.npy"),
                    &npy::encode_raw("<f8", false, &shape, &f8),
                );
                let f4: Vec<u8> = floats.iter().flat_map(|v| v.to_le_bytes()).collect();
                write("npy", &format!("{name}-v2.npy"), &npy_v(2, "<f4", &shape, &f4));
            }
        }
        // CSV: one sample per line (an edge list: one edge per line), a header, a BOM.
        let values: Vec<String> = match spec.dtype {
            DType::I32 => ints.iter().map(|v| v.to_string()).collect(),
            DType::F32 => floats.iter().map(|v| v.to_string()).collect(),
        };
        let width = if spec.graph.is_some() {
            2
        } else if spec.whole {
            spec.row_shape.iter().skip(1).product()
        } else {
            spec.row_shape.iter().product()
        };
        let lines: Vec<String> = if spec.graph.is_some() {
            let e = spec.row_shape[1];
            (0..e).map(|j| format!("{},{}", values[j], values[e + j])).collect()
        } else {
            values.chunks(width.max(1)).map(|c| c.join(",")).collect()
        };
        let body = lines.join("\n") + "\n";
        write("csv", &format!("{name}.csv"), body.as_bytes());
        let header: Vec<String> = (0..width).map(|j| format!("c{j}")).collect();
        let with_header = format!("\u{feff}{}\r\n{}", header.join(","), lines.join("\r\n\r\n"));
        write("csv", &format!("{name}-header-bom.csv"), with_header.as_bytes());
        if spec.dtype == DType::I32 {
            let savetxt: Vec<String> = lines
                .iter()
                .map(|l| {
                    l.split(',')
                        .map(|v| format!("{:.18e}", v.parse::<f64>().unwrap()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            write(
                "csv",
                &format!("{name}-savetxt.csv"),
                (savetxt.join("\n") + "\n").as_bytes(),
            );
        }
        if spec.is_label && spec.classes.is_some() {
            write("csv", &format!("{name}-unlabeled.csv"), b"-1\n-1\n-1\n");
        }
    }
    write("npy", "empty", b"");
    write("npy", "magic-only", b"\x93NUMPY\x01\x00");
    write("csv", "empty", b"");
    // safetensors: a valid checkpoint, its header alone, and one truncated mid-data.
    let ckpt = checkpoint_seed();
    write("safetensors", "valid.safetensors", &ckpt);
    let header_len = u64::from_le_bytes(ckpt[..8].try_into().unwrap()) as usize;
    write("safetensors", "header-only.safetensors", &ckpt[..8 + header_len]);
    write("safetensors", "truncated.safetensors", &ckpt[..ckpt.len() - 5]);
    write("safetensors", "empty", b"");
}
