//! The acceptance test of the native backend: the text classifier trained for 50 steps
//! with the JIT and with the interpreter from the same seed (same data, same dropout
//! masks) has the same loss at every step (1e-4 relative), and the JIT's losses are
//! bit-identical on 1 and 2 threads.

use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::data::Tensor;
use mpc_runtime::session::{Backend, Session};

mod common;

use common::{keyword_task, TEXT_CLASSIFIER as MODEL};

fn losses(backend: Backend, dims: &[(String, usize)], steps: usize) -> (Vec<f64>, Session) {
    let compiled = compile(MODEL, dims).unwrap_or_else(|e| panic!("{e:?}"));
    let seq_len = compiled.dims["T"];
    let mut session = Session::with_backend(compiled, 42, backend).unwrap();
    let train = keyword_task(1024, seq_len);
    let mut rng = SplitMix64::new(1);
    let mut out = Vec::new();
    'outer: loop {
        for order in train.epoch_batches(session.batch_size(), &mut rng) {
            out.push(session.train_step(&train.batch(&order)).unwrap().loss);
            if out.len() == steps {
                break 'outer;
            }
        }
    }
    (out, session)
}

#[test]
fn jit_and_interpreter_losses_agree_for_50_steps_and_threads_agree_bitwise() {
    let dims: Vec<(String, usize)> = vec![];
    let (interp, si) = losses(Backend::Interpreter, &dims, 50);
    let (jit1, s1) = losses(Backend::Jit { threads: 1 }, &dims, 50);
    let (jit2, s2) = losses(Backend::Jit { threads: 2 }, &dims, 50);
    for (step, (a, b)) in interp.iter().zip(&jit1).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs(),
            "step {}: interpreter loss {a} vs JIT {b}",
            step + 1
        );
    }
    assert_eq!(jit1, jit2, "losses differ between 1 and 2 threads");
    let (mut si, mut s1, mut s2) = (si, s1, s2);
    let (pi, p1) = (si.params().unwrap().clone(), s1.params().unwrap().clone());
    assert_eq!(&p1, s2.params().unwrap(), "parameters differ between 1 and 2 threads");
    assert!(
        interp[49] < interp[0],
        "the loss did not fall: {} -> {}",
        interp[0],
        interp[49]
    );
    // Parameters after 50 steps agree too.
    for (name, p) in &pi {
        let q = &p1[name];
        let worst = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "{name}: parameters drifted by {worst}");
    }
}

#[test]
fn partial_batches_train_and_evaluate_exactly() {
    let dims = vec![("B".to_string(), 16), ("T".to_string(), 8)];
    let held_out = keyword_task(16 * 3 + 5, 8);
    let mut results = Vec::new();
    for backend in [Backend::Interpreter, Backend::Jit { threads: 2 }] {
        let compiled = compile(MODEL, &dims).unwrap();
        let mut s = Session::with_backend(compiled, 3, backend).unwrap();
        // A training step on 5 rows, then evaluation over 53 rows (3 full batches + 5).
        let order: Vec<usize> = (0..5).collect();
        let m = s.train_step(&held_out.batch(&order)).unwrap();
        assert_eq!(m.rows, 5);
        let e = s.evaluate(&held_out).unwrap();
        assert_eq!(e.rows, 53);
        // Partial batches are padded (labels -1) and run the steps compiled for 16 rows.
        assert_eq!(s.compiles, (1, 1));
        results.push((m.loss, e.loss, e.accuracy.unwrap()));
    }
    let (a, b) = (results[0], results[1]);
    assert!((a.0 - b.0).abs() < 1e-5 * a.0.abs(), "{a:?} vs {b:?}");
    assert!((a.1 - b.1).abs() < 1e-5 * a.1.abs(), "{a:?} vs {b:?}");
    assert_eq!(a.2, b.2);
}

#[test]
fn out_of_range_token_is_an_error_naming_the_node() {
    let dims = vec![("B".to_string(), 4), ("T".to_string(), 4)];
    let compiled = compile(MODEL, &dims).unwrap();
    let mut s = Session::with_backend(compiled, 3, Backend::Jit { threads: 2 }).unwrap();
    let mut batch = keyword_task(4, 4).batch(&[0, 1, 2, 3]);
    for (name, col) in &mut batch {
        if let (true, mpc_runtime::data::Tensor::Int(v)) = (name == "tokens", col) {
            v[5] = 10_000;
        }
    }
    let err = s.train_step(&batch).unwrap_err();
    assert!(err.contains("gather") && err.contains("10000"), "{err}");
    for (name, col) in &mut batch {
        match (name.as_str(), col) {
            ("tokens", mpc_runtime::data::Tensor::Int(v)) => v[5] = 1,
            ("y", mpc_runtime::data::Tensor::Int(v)) => v[2] = 7,
            _ => {}
        }
    }
    let err = s.train_step(&batch).unwrap_err();
    assert!(err.contains("label 'y' row 2: 7 is outside [0, 2)"), "{err}");
    assert_eq!(s.step, 0, "a failed step does not count");
    // Label -1 marks a row without a label: accepted, and left out of loss and accuracy.
    for (name, col) in &mut batch {
        if let ("y", mpc_runtime::data::Tensor::Int(v)) = (name.as_str(), col) {
            v[2] = -1;
        }
    }
    let m = s.train_step(&batch).unwrap();
    assert!(m.loss.is_finite() && s.step == 1, "{m:?}");
}

/// An `mse` over the batch's rows: a partial batch padded to the compiled size (weight 0
/// in `@row_mask`) has the loss and the update of a step compiled for its rows.
#[test]
fn a_padded_partial_batch_is_the_exact_one_under_mse() {
    let src = "model R { dims { B = 8 } input x: f32[B, 3] label y: f32[B, 2] loss mse(tanh(linear(x, 2)), y) }";
    let rows: Vec<(String, Tensor)> = vec![
        (
            "x".into(),
            Tensor::Float((0..15).map(|i| (i as f32 * 0.37).sin()).collect()),
        ),
        (
            "y".into(),
            Tensor::Float((0..10).map(|i| (i as f32 * 0.11).cos()).collect()),
        ),
    ];
    for backend in [Backend::Interpreter, Backend::Jit { threads: 2 }] {
        let run = |b: usize| {
            let c = compile(src, &[("B".to_string(), b)]).unwrap();
            let mut s = Session::with_backend(c, 3, backend).unwrap();
            let m = s.train_step(&rows).unwrap();
            (m.loss, m.mae, s.compiles, s.params().unwrap().clone())
        };
        let (padded, exact) = (run(8), run(5));
        assert!(
            (padded.0 - exact.0).abs() < 1e-6 * exact.0,
            "{} vs {}",
            padded.0,
            exact.0
        );
        assert!((padded.1.unwrap() - exact.1.unwrap()).abs() < 1e-6);
        assert_eq!(padded.2, (1, 1), "no step compiled for 5 rows");
        for (name, p) in &exact.3 {
            for (a, b) in p.iter().zip(&padded.3[name]) {
                assert!((a - b).abs() < 1e-6, "{name}: {a} vs {b}");
            }
        }
    }
}
