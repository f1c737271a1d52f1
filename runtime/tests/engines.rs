//! The engine contract, engine by engine through the `Engine` trait alone: the same
//! steps on the same data give the same losses and variables on the interpreter and on
//! the JIT (1 and 2 threads), and a run that fails on bad data changes no variable.
//! (CUDA implements the same trait; `scripts/gpu-check.sh` runs it where a GPU exists.)

use mpc_compiler::pipeline::{compile, Compiled};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::{SEED, STEP};
use mpc_compiler::specialize;
use mpc_compiler::tensor::TensorRef;
use mpc_runtime::backend::{Backend, Engine, StepKey, StepKind, Variables};
use mpc_runtime::init;

const MODEL: &str = include_str!("../../examples/text_classifier.mp");
const B: usize = 8;
const T: usize = 6;

fn model() -> Compiled {
    let dims = [("B".to_string(), B), ("T".to_string(), T)];
    compile(MODEL, &dims).unwrap_or_else(|e| panic!("{e:?}"))
}

fn initial_variables(c: &Compiled) -> Variables {
    let params = init::initialize(&specialize::params(&c.model, &c.dims).unwrap(), 5);
    let state = c
        .train_step
        .signature
        .state
        .iter()
        .map(|(n, t)| (n.clone(), vec![0.0; t.numel()]))
        .collect();
    Variables {
        params,
        state,
        ..Variables::default()
    }
}

/// Seeded batches: token ids below 50, labels 0 or 1.
fn batches(n: usize) -> Vec<(Vec<i32>, Vec<i32>)> {
    let mut rng = SplitMix64::new(11);
    (0..n)
        .map(|_| {
            let tokens = (0..B * T).map(|_| rng.below(50) as i32).collect();
            let labels = (0..B).map(|_| rng.below(2) as i32).collect();
            (tokens, labels)
        })
        .collect()
}

/// Trains `steps` steps through the trait; returns the losses and the final variables.
fn train(backend: Backend, c: &Compiled, steps: usize) -> (Vec<f64>, Variables) {
    let mut engine: Box<dyn Engine> = backend.engine().unwrap();
    let key = StepKey {
        kind: StepKind::Train,
        rows: B,
    };
    engine.prepare(key, &c.train_step).unwrap();
    let mut vars = initial_variables(c);
    let mut losses = Vec::new();
    for (i, (tokens, labels)) in batches(steps).iter().enumerate() {
        let (seed, step) = ([3], [i as i32 + 1]);
        let inputs = [
            ("tokens", TensorRef::Int(tokens)),
            ("y", TensorRef::Int(labels)),
            (SEED, TensorRef::Int(&seed)),
            (STEP, TensorRef::Int(&step)),
        ];
        losses.push(engine.run(key, &inputs, &mut vars).unwrap().loss);
    }
    engine.sync(&mut vars).unwrap();
    (losses, vars)
}

#[test]
fn interpreter_and_jit_agree_through_the_trait() {
    let c = model();
    let (want, want_vars) = train(Backend::Interpreter, &c, 5);
    for threads in [1, 2] {
        let (got, vars) = train(Backend::Jit { threads }, &c, 5);
        for (step, (a, b)) in want.iter().zip(&got).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs(),
                "step {step}: interpreter {a} vs JIT {b}"
            );
        }
        assert_eq!(
            want_vars.params.keys().collect::<Vec<_>>(),
            vars.params.keys().collect::<Vec<_>>()
        );
        for (name, p) in &want_vars.params {
            let worst = p
                .iter()
                .zip(&vars.params[name])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{name} ({threads} threads): drifted by {worst}");
        }
        for (name, s) in &want_vars.state {
            let worst = s
                .iter()
                .zip(&vars.state[name])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{name} ({threads} threads): drifted by {worst}");
        }
    }
}

#[test]
fn a_failed_run_changes_no_variable() {
    let c = model();
    for backend in [Backend::Interpreter, Backend::Jit { threads: 2 }] {
        let mut engine = backend.engine().unwrap();
        let key = StepKey {
            kind: StepKind::Train,
            rows: B,
        };
        engine.prepare(key, &c.train_step).unwrap();
        let mut vars = initial_variables(&c);
        let before = vars.clone();
        let (mut tokens, labels) = batches(1).remove(0);
        tokens[7] = 10_000; // the vocabulary is 10000: one past the end
        let (seed, step) = ([3], [1]);
        let inputs = [
            ("tokens", TensorRef::Int(&tokens)),
            ("y", TensorRef::Int(&labels)),
            (SEED, TensorRef::Int(&seed)),
            (STEP, TensorRef::Int(&step)),
        ];
        let err = engine.run(key, &inputs, &mut vars).unwrap_err();
        assert!(
            err.contains("index 10000") && err.contains("outside [0, 10000)"),
            "{backend:?}: {err}"
        );
        assert_eq!(vars, before, "{backend:?}: a failed step changed the variables");
        // A missing input is an error naming it, not a crash.
        let err = engine.run(key, &inputs[1..], &mut vars).unwrap_err();
        assert!(err.contains("'tokens'"), "{backend:?}: {err}");
    }
}
