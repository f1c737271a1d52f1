//! Whole-model gradient checks: autodiff of every example model's forward pass (dropout
//! active, with a fixed mask) against finite differences, for every parameter.

mod common;

use common::{example_files, small_dims};
use mpc_compiler::internals::gradcheck;
use mpc_compiler::interp::{Args, Value};
use mpc_compiler::ir::{ArgKind, DType, Graph};
use mpc_compiler::pipeline::compile;
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
            (_, DType::I32) if name == "@positions" => Value::Int((0..n as i32).collect()),
            (_, DType::I32) if name.starts_with('@') => Value::Int(vec![3]),
            (_, DType::I32) => Value::Int((0..n).map(|_| rng.below(int_bound(name)) as i32).collect()),
            (ArgKind::Param, _) => Value::Float((0..n).map(|_| 0.5 * rng.normal()).collect()),
            _ => Value::Float((0..n).map(|_| rng.normal()).collect()),
        };
        args.insert(name.clone(), v);
    }
    args
}

/// Every parameter's autodiff gradient within 1e-5 relative of finite differences.
fn assert_gradients_match(report: &[gradcheck::Mismatch]) {
    for m in report {
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
    }
    assert_gradients_match(&report);
}

fn check_model(src: &str, int_bound: impl Fn(&str) -> u64, expected_params: usize) {
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let args = random_args(&c.forward, int_bound, 17);
    let report = gradcheck::check(&c.forward, &args, 30, 3);
    assert_eq!(report.len(), expected_params, "{report:?}");
    assert_gradients_match(&report);
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
          let s = softmax(a, axis: 1) * sigmoid(a) - tanh(a) / 2 + gelu(a, approximate: tanh)
          let m = max(s, axis: 1) + sum(s, axis: 1) + mean(relu(s), axis: 1)
          let f = flatten(reshape(a, [B, T, 2, 4]))
          let logits = linear(f, 3) + log_softmax(linear(m, 3), axis: -1)
          loss cross_entropy(dropout(logits, 0.2), y) + 0.1 * mse(-linear(m, 3, name: head, bias: false), logits)
        }
        train { optimizer sgd(lr: 0.1, momentum: 0.9) }";
    let bound = |name: &str| if name == "tokens" { 50 } else { 3 };
    // embed, a.linear (2), logits.linear (2), logits.linear_1 (2), head (weight only)
    check_model(src, bound, 8);
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

#[test]
fn graph_propagation_with_every_aggregation_differentiates() {
    // Edges are random, so some nodes have no incoming edge (aggregate 0) and some have
    // several; labels include -1 (ignored).
    let src = "
        model Gnn {
          dims { N = 7, E = 12, F = 3 }
          graph g { nodes N, edges i32[2, E], features f32[E, 2] }
          input x: f32[N, F]
          label y: i32[N] classes 3
          message m1(src, dst) = tanh(linear(concat(src, dst), 4))
          message m2(src) = linear(src, 4)
          message m3(src, dst, e) = linear(concat(src, e), 4) * sigmoid(linear(dst, 4))
          let h1 = propagate(g, x, m1, aggregate: sum)
          let h2 = propagate(g, x, m2, aggregate: mean)
          let h3 = propagate(g, x, m3, aggregate: max)
          let h = relu(h1 + h2 + h3 + linear(x, 4))
          message m2_out(src) = linear(src, 3)
          loss cross_entropy(propagate(g, h, m2_out, aggregate: mean) + linear(h, 3), y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut args = random_args(&c.forward, |name| if name == "g.edges" { 7 } else { 3 }, 21);
    // Labels: one ignored.
    args.insert("y".into(), Value::Int(vec![0, 2, -1, 1, 1, 0, 2]));
    let report = gradcheck::check(&c.forward, &args, 30, 5);
    assert_eq!(report.len(), c.model.params.len());
    assert_gradients_match(&report);
}

/// Graph attention: the softmax aggregation with two heads, on a graph with and one
/// without self-loops (random edges: some nodes get none, some several), with the
/// builtins a GAT layer is written with (`parameter`, `leaky_relu`, `elu`, `reshape`
/// with -1).
#[test]
fn graph_attention_differentiates() {
    let src = "
        model Gat {
          dims { N = 7, E = 12, F = 3 }
          graph g { nodes N, edges i32[2, E], self_loops }
          graph k { nodes N, edges i32[2, E] }
          input x: f32[N, F]
          label y: i32[N] classes 3
          message source(src) = src
          message score(src, dst) = leaky_relu(
              sum(reshape(src, [-1, 2, 3]) * parameter([2, 3], name: a_src), axis: -1)
            + sum(reshape(dst, [-1, 2, 3]) * parameter([2, 3], name: a_dst), axis: -1), 0.2)
          message plain(src, dst) = leaky_relu(linear(concat(src, dst), 2))
          let z = linear(x, 6, bias: false)
          let h = elu(propagate(g, z, source, aggregate: softmax, score: score)
                      + parameter([6], init: normal, name: bias))
          let k1 = propagate(k, h, source, aggregate: softmax, score: plain)
          loss cross_entropy(linear(h + k1, 3), y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut args = random_args(&c.forward, |name| if name.ends_with(".edges") { 7 } else { 3 }, 23);
    args.insert("y".into(), Value::Int(vec![0, 2, -1, 1, 1, 0, 2]));
    let report = gradcheck::check(&c.forward, &args, 30, 5);
    // z.linear, a_src, a_dst, bias, plain.linear (2), loss.linear (2)
    assert_eq!(report.len(), 8, "{report:?}");
    assert_gradients_match(&report);
}

#[test]
fn attention_fusion_and_patches_differentiate() {
    let src = "
        model Fuse {
          dims { B = 3 }
          input image: f32[B, 2, 4, 6]
          input audio: f32[B, 5, 3]
          label y: i32[B] classes 2
          node v = mean(linear(patches(image, 2), 4), axis: 1)
          node a = max(linear(audio, 4), axis: 1)
          node t = linear(flatten(image), 4)
          loss cross_entropy(linear(attention(t, v, a), 2), y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let args = random_args(&c.forward, |_| 2, 8);
    let report = gradcheck::check(&c.forward, &args, 30, 6);
    assert!(
        report.iter().any(|m| m.param.ends_with(".query")),
        "the attention query is a parameter"
    );
    assert_gradients_match(&report);
}

#[test]
fn patches_are_row_major_tiles_with_channel_row_column_inside() {
    use mpc_compiler::interp::run;
    let src = "
        model P {
          dims { B = 1 }
          input image: f32[B, 2, 4, 4]
          input t: f32[B, 4, 8]
          label y: f32[B, 4, 8]
          loss mse(patches(image, 2) + t, y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut args = Args::new();
    args.insert("image".into(), Value::Float((0..32).map(|i| i as f64).collect()));
    args.insert("t".into(), Value::Float(vec![0.0; 32]));
    args.insert("y".into(), Value::Float(vec![0.0; 32]));
    args.insert("@row_mask".into(), Value::Float(vec![1.0]));
    let out = run(&c.eval, &args).unwrap();
    let p = out
        .iter()
        .find(|(n, _)| n == "predictions")
        .unwrap()
        .1
        .floats()
        .to_vec();
    // Patch 1 (row 0, column 1): channel 0 rows 0-1 columns 2-3, then channel 1.
    assert_eq!(&p[8..16], &[2.0, 3.0, 6.0, 7.0, 18.0, 19.0, 22.0, 23.0]);
}

#[test]
fn rounds_update_from_the_previous_round() {
    use mpc_compiler::interp::run;
    // Synchronous rounds: t1 = t0 + t0 = 2x, t2 = t1 + t1 = 4x; v reads t of the previous
    // round: v1 = v0 + t0 = 2x, v2 = v1 + t1 = 4x.
    let src = "
        model Rounds {
          dims { B = 2 }
          input x: f32[B, 3]
          label y: f32[B, 6]
          node t = x * 1
          node v = x * 1
          rounds 2 {
            t += t
            v += t
          }
          loss mse(concat(t, v), y)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut args = Args::new();
    args.insert("x".into(), Value::Float(vec![1.0, 2.0, 3.0, -1.0, 0.5, 4.0]));
    args.insert("y".into(), Value::Float(vec![0.0; 12]));
    args.insert("@row_mask".into(), Value::Float(vec![1.0; 2]));
    let out = run(&c.eval, &args).unwrap();
    let p = out
        .iter()
        .find(|(n, _)| n == "predictions")
        .unwrap()
        .1
        .floats()
        .to_vec();
    assert_eq!(&p[..6], &[4.0, 8.0, 12.0, 4.0, 8.0, 12.0]);
}

/// Every example model end to end (dims above 8 shrunk to 8 so finite differences stay
/// cheap; literal sizes such as the fusion example's 3x32x32 image are kept).
#[test]
fn every_example_gradients_match_finite_differences() {
    for path in example_files() {
        let src = std::fs::read_to_string(&path).unwrap();
        let small = small_dims(&src, &format!("{path:?}"));
        let c = compile(&src, &small).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
        // Index bounds: vocabularies, classes, and graph node counts.
        let bound = |name: &str| -> u64 {
            if let Some(g) = c.model.graphs.iter().find(|g| g.edges_input == name) {
                return mpc_compiler::specialize::concrete(std::slice::from_ref(&g.nodes), &c.dims).unwrap()[0] as u64;
            }
            let input = c.model.inputs.iter().find(|i| i.name == name);
            input.and_then(|i| i.vocab.or(i.classes)).unwrap_or(2) as u64
        };
        let mut args = random_args(&c.forward, bound, 31);
        // Parameters at their real initial scale (PyTorch's defaults), where training
        // starts: not saturated, so finite differences are accurate.
        let mut rng = SplitMix64::new(77);
        for p in mpc_compiler::specialize::params(&c.model, &c.dims).unwrap() {
            let n: usize = p.shape.iter().product();
            let values = match p.init {
                mpc_compiler::specialize::ConcreteInit::Normal { std } => (0..n).map(|_| rng.normal() * std).collect(),
                mpc_compiler::specialize::ConcreteInit::Constant { value } => vec![value; n],
                mpc_compiler::specialize::ConcreteInit::Uniform { bound } => {
                    (0..n).map(|_| rng.range(-bound, bound)).collect()
                }
            };
            args.insert(p.name.clone(), Value::Float(values));
        }
        let report = gradcheck::check(&c.forward, &args, 12, 4);
        assert_eq!(report.len(), c.model.params.len(), "{path:?}");
        for m in &report {
            assert!(
                m.error < 1e-5,
                "{path:?} {}[{}]: autodiff {} vs numeric {}",
                m.param,
                m.index,
                m.autodiff,
                m.numeric
            );
        }
    }
}

#[test]
fn layer_norm_is_torchs_and_differentiates() {
    // With weight 1 and bias 0, mse(layer_norm(x), 0) is the mean over rows of
    // var / (var + eps): PyTorch's biased variance and eps inside the square root.
    let src = "
        model LayerNorm {
          dims { B = 3 }
          input x: f32[B, 6]
          input t: f32[B, 6]
          loss mse(layer_norm(x), t)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = c.model.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["loss.layer_norm.weight", "loss.layer_norm.bias"]);
    let mut args = random_args(&c.forward, |_| 2, 3);
    let x: Vec<f64> = (0..18).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.003).collect();
    args.insert("x".into(), Value::Float(x.clone()));
    args.insert("t".into(), Value::Float(vec![0.0; 18]));
    args.insert("loss.layer_norm.weight".into(), Value::Float(vec![1.0; 6]));
    args.insert("loss.layer_norm.bias".into(), Value::Float(vec![0.0; 6]));
    let outputs = mpc_compiler::interp::run(&c.forward, &args).unwrap();
    let loss = outputs.iter().find(|(n, _)| n == "loss").unwrap().1.floats()[0];
    let expected: f64 = x
        .chunks(6)
        .map(|row| {
            let mean = row.iter().sum::<f64>() / 6.0;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
            var / (var + 1e-5)
        })
        .sum::<f64>()
        / 3.0;
    assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
    // Small inputs (variance near eps) are where a wrong eps or variance would show.
    assert!(expected < 0.95, "{expected}");

    let deep = "
        model Norms {
          dims { B = 3, T = 4 }
          input x: f32[B, T, 6]
          label y: i32[B] classes 3
          let h = layer_norm(relu(linear(x, 5)) + linear(x, 5, bias: false))
          loss cross_entropy(linear(mean(layer_norm(h), axis: 1), 3), y)
        }";
    // h.linear (2), h.linear_1 (weight), h.layer_norm (2), loss.layer_norm (2), loss.linear (2)
    check_model(deep, |_| 3, 9);
}

#[test]
fn positional_embeddings_add_row_t_at_position_t() {
    let src = "
        model Positions {
          dims { B = 2, T = 3 }
          input tokens: i32[B, T] vocab 7
          input t: f32[B, T, 4]
          loss mse(embed(positions(tokens), 4), t)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let p = &c.model.params[0];
    assert_eq!(p.name, "loss.embed.weight");
    assert_eq!(
        mpc_compiler::specialize::concrete(&p.shape, &c.dims).unwrap(),
        [3, 4],
        "a row per position"
    );
    // mse against 0 is the mean square of the rows used: every row once per sequence.
    let mut args = random_args(&c.forward, |_| 7, 1);
    let table: Vec<f64> = (0..12).map(|i| i as f64).collect();
    args.insert("loss.embed.weight".into(), Value::Float(table.clone()));
    args.insert("t".into(), Value::Float(vec![0.0; 24]));
    let outputs = mpc_compiler::interp::run(&c.forward, &args).unwrap();
    let loss = outputs.iter().find(|(n, _)| n == "loss").unwrap().1.floats()[0];
    let expected = table.iter().map(|v| v * v).sum::<f64>() / 12.0;
    assert_eq!(loss, expected);

    // A longer table (vocab: N >= T) uses its first T rows; a shorter one is an error.
    let longer = src.replace("embed(positions(tokens), 4)", "embed(positions(tokens), 4, vocab: 16)");
    check_model(&longer, |_| 7, 1);
    let shorter = src.replace("embed(positions(tokens), 4)", "embed(positions(tokens), 4, vocab: 2)");
    let e = compile(&shorter, &[]).err().expect("a table shorter than T");
    assert!(
        e[0].message.contains("has 2 rows, fewer than the 3 positions"),
        "{}",
        e[0].message
    );

    let model = "
        model Tokens {
          dims { B = 3, T = 5 }
          input tokens: i32[B, T] vocab 11
          label y: i32[B] classes 2
          let h = layer_norm(embed(tokens, 6) + embed(positions(tokens), 6))
          loss cross_entropy(linear(mean(h, axis: 1), 2), y)
        }";
    // h.embed, h.embed_1 (positions), h.layer_norm (2), loss.linear (2)
    check_model(model, |n| if n == "tokens" { 11 } else { 2 }, 6);
}

#[test]
fn self_attention_differentiates() {
    let src = "
        model Attention {
          dims { B = 2, T = 3 }
          input tokens: i32[B, T] vocab 9
          label y: i32[B] classes 2
          let x = embed(tokens, 4)
          let h = self_attention(x, heads: 2)
          loss cross_entropy(linear(mean(h, axis: 1), 2), y)
        }";
    // x.embed, h.self_attention (in_proj weight and bias, out_proj weight and bias), loss.linear (2)
    check_model(src, |n| if n == "tokens" { 9 } else { 2 }, 7);
}

/// A batch of graphs: readouts by sum, mean and max over each graph's nodes, messages
/// along block-diagonal edges with features, padding nodes (graph `G`), an empty graph
/// slot (weight 0 in `@row_mask`) under the per-graph `mse`, and a cross-entropy over
/// graphs with one unlabeled (-1).
#[test]
fn readout_and_batches_of_graphs_differentiate() {
    let src = "
        model Graphs {
          dims { G = 3, N = 9, E = 10, F = 3 }
          graph g { nodes N, edges i32[2, E], features f32[E, 2], graphs G }
          input x: f32[N, F]
          label y: f32[G]
          label c: i32[G] classes 2
          message m(src, dst, e) = tanh(linear(concat(src, dst, e), 4))
          let h = relu(propagate(g, x, m, aggregate: sum) + linear(x, 4))
          let pooled = concat(readout(g, h, sum), readout(g, h, mean), readout(g, tanh(h), max))
          loss mse(reshape(linear(pooled, 1), [G]), y) + cross_entropy(linear(pooled, 2), c)
        }";
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let mut args = random_args(&c.forward, |_| 2, 23);
    // Graphs of 3, 2 and 0 nodes (slot 2 empty), then 4 padding nodes; edges within
    // graphs 0 and 1, padding edges on the last node.
    args.insert("g.graph_of".into(), Value::Int(vec![0, 0, 0, 1, 1, 3, 3, 3, 3]));
    let edges = [[0, 1, 2, 1, 3, 4, 8, 8, 8, 8], [1, 0, 1, 2, 4, 3, 8, 8, 8, 8]].concat();
    args.insert("g.edges".into(), Value::Int(edges));
    args.insert("@row_mask".into(), Value::Float(vec![1.0, 1.0, 0.0]));
    args.insert("c".into(), Value::Int(vec![1, -1, 0]));
    let report = gradcheck::check(&c.forward, &args, 30, 5);
    assert_eq!(report.len(), c.model.params.len());
    assert_gradients_match(&report);
}
