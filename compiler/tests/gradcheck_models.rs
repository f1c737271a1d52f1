//! Whole-model gradient checks: autodiff of every example model's forward pass (dropout
//! active, with a fixed mask) against finite differences, for every parameter.

use mpc_compiler::driver::compile;
use mpc_compiler::gradcheck;
use mpc_compiler::interp::{Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph};
use mpc_compiler::seeded::SplitMix64;

/// Random arguments for `g`: parameters N(0, 0.5^2), f32 inputs N(0, 1), i32 inputs
/// uniform below `int_bound(name)`, fixed `@seed`/`@step`.
fn random_args(g: &Graph, int_bound: impl Fn(&str) -> u64, seed: u64) -> Args<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut args = Args::new();
    for node in &g.nodes {
        let mpc_compiler::ir::Op::Arg { kind, name, ty } = &node.op else {
            continue;
        };
        let n = ty.numel();
        let v = match (kind, ty.dtype) {
            (_, DType::I32) if name.starts_with('@') => Value::Int(vec![3]),
            (_, DType::I32) => Value::Int((0..n).map(|_| rng.below(int_bound(name)) as i32).collect()),
            (ArgKind::Param, _) => Value::Float((0..n).map(|_| 0.5 * rng.normal()).collect()),
            _ => Value::Float((0..n).map(|_| rng.normal()).collect()),
        };
        args.insert(name.clone(), v);
    }
    args
}

#[test]
fn text_classifier_gradients_match_finite_differences() {
    let src = include_str!("../../examples/text_classifier.mp");
    let c = compile(src, &[("B".into(), 4), ("T".into(), 5)]).unwrap_or_else(|e| panic!("{e:?}"));
    let bound = |name: &str| if name == "tokens" { 10000 } else { 2 };
    let args = random_args(&c.forward, bound, 5);
    let report = gradcheck::check(&c.forward, &args, 40, 9);
    let names: Vec<&str> = report.iter().map(|m| m.param.as_str()).collect();
    assert_eq!(
        names,
        [
            "z.embed.weight",
            "h.linear.weight",
            "h.linear.bias",
            "logits.linear.weight",
            "logits.linear.bias"
        ]
    );
    for m in &report {
        eprintln!(
            "{:24} worst relative error {:.2e} (at {}: {} vs {})",
            m.param, m.error, m.index, m.autodiff, m.numeric
        );
        assert!(
            m.error < 1e-5,
            "{}[{}]: autodiff {} vs numeric {}",
            m.param,
            m.index,
            m.autodiff,
            m.numeric
        );
    }
}

fn check_model(src: &str, int_bound: impl Fn(&str) -> u64, expected_params: usize) {
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let args = random_args(&c.forward, int_bound, 17);
    let report = gradcheck::check(&c.forward, &args, 30, 3);
    assert_eq!(report.len(), expected_params, "{report:?}");
    for m in &report {
        assert!(
            m.error < 1e-5,
            "{}[{}]: autodiff {} vs numeric {}",
            m.param,
            m.index,
            m.autodiff,
            m.numeric
        );
    }
}

#[test]
fn every_builtin_composes_with_correct_gradients() {
    let src = "
        model AllBuiltins {
          dims { B = 3, T = 4 }
          input tokens: i32[B, T] vocab 50
          input x: f32[B, T, 6]
          label y: i32[B] classes 3
          let z = embed(tokens, 6)
          let a = gelu(linear(concat(z, x), 8))
          let s = softmax(a, axis: 1) * sigmoid(a) - tanh(a) / 2
          let m = max(s, axis: 1) + sum(s, axis: 1) + mean(relu(s), axis: 1)
          let f = flatten(reshape(a, [B, T, 2, 4]))
          let logits = linear(f, 3) + log_softmax(linear(m, 3), axis: -1)
          loss cross_entropy(dropout(logits, 0.2), y) + 0.1 * mse(-linear(m, 3, name: head), logits)
        }
        train { optimizer sgd(lr: 0.1, momentum: 0.9) }";
    let bound = |name: &str| if name == "tokens" { 50 } else { 3 };
    // embed, a.linear (2), logits.linear (2), logits.linear_1 (2), head (2)
    check_model(src, bound, 9);
}

#[test]
fn messages_and_rounds_share_weights_and_differentiate() {
    let src = "
        model Messages {
          dims { B = 3 }
          input a: f32[B, 5]
          input b: f32[B, 4]
          label y: i32[B] classes 2
          node t = linear(a, 6)
          node v = linear(b, 6)
          message f(x, y) = tanh(linear(concat(x, y), 6))
          rounds 2 {
            t += f(t, v)
            v += f(v, t)
          }
          loss cross_entropy(linear(concat(t, v), 2), y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = c.model.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "t.linear.weight",
            "t.linear.bias",
            "v.linear.weight",
            "v.linear.bias",
            "f.linear.weight",
            "f.linear.bias",
            "loss.linear.weight",
            "loss.linear.bias"
        ],
        "one weight for the message, shared by its four uses"
    );
    check_model(src, |_| 2, 8);
}
