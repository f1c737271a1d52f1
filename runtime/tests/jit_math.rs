//! The JIT's inline `exp`, `log`, `tanh` and `erf` (f32x4 polynomials,
//! `codegen::cranelift::math`) are the PTX backend's algorithms (`erf`'s is
//! `ir::erf::model`): equal to their Rust models bit for bit when the host has `fma`
//! (within 1e-6 otherwise), special values included, in the vector body and the scalar
//! tail alike, and within 1e-6 of libm's f32 functions (f64 `erf` rounded to f32).

mod common;

use common::jit::run_jit;
use mpc_compiler::internals::codegen::cranelift::host_has_fma;
use mpc_compiler::internals::codegen::ptx::math::{exp_model, log_model, tanh_model};
use mpc_compiler::interp::{Args, Value};
use mpc_compiler::ir::{erf, ArgKind, Builder, Type};

/// A sweep over `lo..hi`, then special values; 4·k + 3 values so that a row ends in a
/// scalar tail.
fn inputs(lo: f32, hi: f32) -> Vec<f32> {
    let mut x: Vec<f32> = (0..4000).map(|i| lo + (hi - lo) * i as f32 / 3999.0).collect();
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        1e-30,
        88.72,
        89.5,
        -87.5,
        -103.9,
        -200.0,
        1e30,
        0.3999,
        0.4,
        -0.4001,
        9.0,
        -20.0,
    ]);
    while x.len() % 4 != 3 {
        x.push(0.5);
    }
    x
}

fn same(got: f32, want: f32) -> bool {
    (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits()
}

fn close(got: f32, want: f32) -> bool {
    same(got, want) || ((got - want).abs() as f64) <= 1e-6 * (want.abs() as f64).max(1e-30)
}

#[test]
fn inline_functions_are_the_ptx_models() {
    for (name, lo, hi, model, libm) in [
        (
            "exp",
            -90.0,
            90.0,
            exp_model as fn(f32) -> f32,
            f32::exp as fn(f32) -> f32,
        ),
        ("log", 1e-6, 1e6, log_model, f32::ln),
        ("tanh", -12.0, 12.0, tanh_model, f32::tanh),
        ("erf", -6.0, 6.0, erf::model, |x| erf::reference(x as f64) as f32),
    ] {
        let x = inputs(lo, hi);
        let mut b = Builder::new(name);
        let a = b.arg(ArgKind::Param, "x", Type::f32([1, x.len()]));
        let y = match name {
            "exp" => b.exp(a),
            "log" => b.log(a),
            "erf" => b.erf(a),
            _ => b.tanh(a),
        };
        b.output("y", y);
        let g = b.finish();
        let mut args = Args::new();
        args.insert("x".to_string(), Value::Float(x.clone()));
        for threads in [1, 2] {
            let out = run_jit(&g, &args, threads).unwrap();
            for (&xi, &got) in x.iter().zip(&out[0].1) {
                let want = model(xi);
                if host_has_fma() {
                    assert!(same(got, want), "{name}({xi:e}) = {got:e}, the model gives {want:e}");
                } else {
                    assert!(close(got, want), "{name}({xi:e}) = {got:e}, the model gives {want:e}");
                }
                let reference = libm(xi);
                let ok = close(got, reference) || (reference.abs() < 1e-37 && got.abs() < 1e-37);
                assert!(ok, "{name}({xi:e}) = {got:e}, libm gives {reference:e}");
            }
        }
    }
}
