//! The optimizer updates in the training-step graph follow PyTorch's formulas: three
//! steps of the IR update against a plain re-implementation of torch.optim's SGD
//! (momentum), Adam (bias-corrected) and AdamW (decoupled decay).

use mpc_compiler::internals::autodiff::{self, Optimizer};
use mpc_compiler::interp::{run, Args, Value};
use mpc_compiler::ir::{ArgKind, Builder, Graph, Type};
use mpc_compiler::signature::STEP;
use mpc_compiler::signature::{Role, Signature, Step};

/// loss = sum(w * c) for a fixed c: the gradient is c at every step, which makes the
/// reference easy to follow.
fn model() -> (Graph, Vec<f64>) {
    let c = vec![0.5, -2.0, 1e-3, 3.0];
    let mut b = Builder::new("forward");
    let w = b.arg(ArgKind::Param, "w", Type::f32([4]));
    let cv = b.arg(ArgKind::Input, "c", Type::f32([4]));
    let wc = b.mul(w, cv);
    let loss = b.reduce_sum(wc, &[0]);
    b.output("loss", loss);
    (b.finish(), c)
}

/// torch.optim semantics, one parameter vector, gradient `g` at each step.
fn reference(opt: &Optimizer, w0: &[f64], g: &[f64], steps: usize) -> Vec<f64> {
    let mut w = w0.to_vec();
    let (mut m, mut v) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    for t in 1..=steps {
        for i in 0..w.len() {
            match *opt {
                Optimizer::Sgd { lr, momentum } => {
                    m[i] = if t == 1 { g[i] } else { momentum * m[i] + g[i] };
                    w[i] -= lr * m[i];
                }
                Optimizer::Adam { lr, beta1, beta2, eps }
                | Optimizer::AdamW {
                    lr, beta1, beta2, eps, ..
                } => {
                    if let Optimizer::AdamW { weight_decay, .. } = *opt {
                        w[i] -= lr * weight_decay * w[i];
                    }
                    m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
                    v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
                    let m_hat = m[i] / (1.0 - beta1.powi(t as i32));
                    let v_hat = v[i] / (1.0 - beta2.powi(t as i32));
                    w[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            }
        }
    }
    w
}

fn run_steps(opt: &Optimizer, steps: usize) -> (Vec<f64>, Vec<f64>) {
    let (forward, c) = model();
    let forward = Step {
        signature: Signature::new(&forward, vec![Role::Loss]),
        graph: forward,
    };
    let step = autodiff::training_step(&forward, opt);
    let step_graph = &step.graph;
    step_graph.validate().unwrap();
    let w0 = vec![1.0, -0.5, 0.25, 2.0];
    let mut args: Args<f64> = Args::new();
    args.insert("w".into(), Value::Float(w0.clone()));
    args.insert("c".into(), Value::Float(c.clone()));
    for (_, name, ty) in step_graph.args(ArgKind::State) {
        args.insert(name.to_string(), Value::Float(vec![0.0; ty.numel()]));
    }
    for t in 1..=steps {
        args.insert(STEP.into(), Value::Int(vec![t as i32]));
        for (name, value) in run(step_graph, &args).unwrap() {
            if let Some(Role::NewParam(v) | Role::NewState(v)) = step.signature.role(&name) {
                args.insert(v.clone(), value);
            }
        }
    }
    let got = args["w"].floats().to_vec();
    (got, reference(opt, &w0, &c, steps))
}

#[test]
fn updates_match_torch_optim() {
    let optimizers = [
        Optimizer::Sgd { lr: 0.1, momentum: 0.0 },
        Optimizer::Sgd { lr: 0.1, momentum: 0.9 },
        Optimizer::Adam {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        Optimizer::AdamW {
            lr: 1e-2,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        },
    ];
    for opt in &optimizers {
        let (got, want) = run_steps(opt, 3);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{opt:?}: got {got:?}, want {want:?}"
            );
        }
        // And the update moved the weights (a no-op update would fail above only by luck).
        assert!(
            got.iter()
                .zip([1.0, -0.5, 0.25, 2.0])
                .any(|(g, w0)| (g - w0).abs() > 1e-3),
            "{opt:?} did not move"
        );
    }
}
