//! The errors a user sees: each case is a small model (mostly the text classifier with
//! one mistake) compiled through the whole pipeline and rendered as on a terminal
//! without colour. The snapshots are the specification of the messages: each must say
//! what is wrong, point at the right place and say how to fix it.

use mpc_compiler::diag::render;
use mpc_compiler::pipeline::compile;

const BASE: &str = "\
model TextClassifier {
  dims { B = 64, T = 32 }
  input tokens: i32[B, T] vocab 10000
  label y: i32[B] classes 2

  let z = embed(tokens, 64)
  let h = dropout(relu(linear(mean(z, axis: 1), 128)), 0.5)
  let logits = linear(h, 2)
  loss cross_entropy(logits, y)
}

train {
  optimizer adam(lr: 1e-3)
  epochs 10
  batch B
  seed 42
}
";

/// The rendered errors of `src`; panics if it compiles.
fn errors(src: &str) -> String {
    match compile(src, &[]) {
        Ok(_) => panic!("expected errors, but this compiled:\n{src}"),
        Err(diags) => {
            assert!(!diags.is_empty());
            render(&diags, "model.mp", src, false)
        }
    }
}

/// BASE with `from` replaced by `to` (which must occur exactly once).
fn base_with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "'{from}' must occur once in BASE");
    BASE.replace(from, to)
}

#[test]
fn base_compiles() {
    assert!(compile(BASE, &[]).is_ok());
}

#[test]
fn linear_bias_takes_true_or_false() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "linear(h, 2, bias: maybe)")));
}

#[test]
fn positions_outside_embed() {
    insta::assert_snapshot!(errors(&base_with(
        "mean(z, axis: 1)",
        "mean(z, axis: 1) + positions(tokens)"
    )));
}

#[test]
fn self_attention_heads_must_divide_the_width() {
    insta::assert_snapshot!(errors(&base_with(
        "let z = embed(tokens, 64)",
        "let z = self_attention(embed(tokens, 64), heads: 5)"
    )));
}

#[test]
fn self_attention_of_a_matrix() {
    insta::assert_snapshot!(errors(&base_with(
        "mean(z, axis: 1)",
        "self_attention(mean(z, axis: 1), heads: 2)"
    )));
}

#[test]
fn pad_outside_the_vocabulary() {
    insta::assert_snapshot!(errors(&base_with("vocab 10000", "vocab 10000 pad 10000")));
}

#[test]
fn mask_without_a_pad_id() {
    insta::assert_snapshot!(errors(&base_with("mean(z, axis: 1)", "mean(z, axis: 1, mask: tokens)")));
}

#[test]
fn mask_of_the_wrong_shape() {
    insta::assert_snapshot!(errors(&base_with(
        "vocab 10000\n  label y: i32[B] classes 2\n\n  let z = embed(tokens, 64)\n  let h = dropout(relu(linear(mean(z, axis: 1), 128)), 0.5)",
        "vocab 10000 pad 0\n  label y: i32[B] classes 2\n\n  let z = embed(tokens, 64)\n  let h = dropout(relu(linear(mean(z, axis: 2, mask: tokens), 128)), 0.5)"
    )));
}

#[test]
fn syntax_error_missing_paren() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "linear(h, 2")));
}

#[test]
fn syntax_error_missing_type() {
    insta::assert_snapshot!(errors(&base_with("input tokens: i32[B, T]", "input tokens: [B, T]")));
}

#[test]
fn unknown_name_did_you_mean() {
    insta::assert_snapshot!(errors(&base_with("embed(tokens, 64)", "embed(tokns, 64)")));
}

#[test]
fn unknown_name_used_before_definition() {
    insta::assert_snapshot!(errors(&base_with(
        "  let z = embed(tokens, 64)\n",
        "  let q = relu(h)\n  let z = embed(tokens, 64)\n"
    )));
}

#[test]
fn shape_mismatch_in_add() {
    insta::assert_snapshot!(errors(&base_with(
        "  let logits = linear(h, 2)",
        "  let a = linear(h, 64)\n  let s = a + h\n  let logits = linear(h, 2)"
    )));
}

#[test]
fn shape_mismatch_cross_entropy() {
    insta::assert_snapshot!(errors(&base_with(
        "let logits = linear(h, 2)",
        "let logits = linear(z, 2)"
    )));
}

#[test]
fn wrong_dtype_embed_of_f32() {
    insta::assert_snapshot!(errors(&base_with(
        "input tokens: i32[B, T] vocab 10000",
        "input tokens: f32[B, T]"
    )));
}

#[test]
fn wrong_dtype_linear_of_tokens() {
    insta::assert_snapshot!(errors(&base_with(
        "linear(mean(z, axis: 1), 128)",
        "linear(tokens, 128)"
    )));
}

#[test]
fn wrong_dtype_f32_labels() {
    insta::assert_snapshot!(errors(&base_with("label y: i32[B] classes 2", "label y: f32[B]")));
}

#[test]
fn bad_axis() {
    insta::assert_snapshot!(errors(&base_with("mean(z, axis: 1)", "mean(z, axis: 3)")));
}

#[test]
fn duplicate_name() {
    insta::assert_snapshot!(errors(&base_with(
        "let logits = linear(h, 2)",
        "let h = linear(h, 2)\n  let logits = linear(h, 2)"
    )));
}

#[test]
fn no_loss() {
    insta::assert_snapshot!(errors(&base_with("  loss cross_entropy(logits, y)\n", "")));
}

#[test]
fn two_losses() {
    insta::assert_snapshot!(errors(&base_with(
        "  loss cross_entropy(logits, y)\n",
        "  loss cross_entropy(logits, y)\n  loss cross_entropy(logits, y)\n"
    )));
}

#[test]
fn loss_not_scalar() {
    insta::assert_snapshot!(errors(&base_with("loss cross_entropy(logits, y)", "loss logits")));
}

#[test]
fn unknown_builtin() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "lineer(h, 2)")));
}

#[test]
fn wrong_arity() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "linear(h)")));
}

#[test]
fn too_many_arguments() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "linear(h, 2, 3)")));
}

#[test]
fn unknown_named_argument() {
    insta::assert_snapshot!(errors(&base_with("mean(z, axis: 1)", "mean(z, axes: 1)")));
}

#[test]
fn wrong_number_of_classes() {
    insta::assert_snapshot!(errors(&base_with("linear(h, 2)", "linear(h, 3)")));
}

#[test]
fn unknown_train_setting() {
    insta::assert_snapshot!(errors(&base_with("epochs 10", "epoch 10")));
}

#[test]
fn unknown_optimizer() {
    insta::assert_snapshot!(errors(&base_with("adam(lr: 1e-3)", "adma(lr: 1e-3)")));
}

#[test]
fn bad_optimizer_setting() {
    insta::assert_snapshot!(errors(&base_with("adam(lr: 1e-3)", "adam(lr: -1, beta: 0.9)")));
}

#[test]
fn dropout_probability() {
    insta::assert_snapshot!(errors(&base_with("0.5)", "1.5)")));
}

#[test]
fn unknown_dim() {
    insta::assert_snapshot!(errors(&base_with("label y: i32[B]", "label y: i32[b]")));
}

#[test]
fn reshape_wrong_size() {
    insta::assert_snapshot!(errors(&base_with(
        "let z = embed(tokens, 64)",
        "let z = reshape(embed(tokens, 64), [B, T, 32])"
    )));
}

#[test]
fn concat_mismatch() {
    insta::assert_snapshot!(errors(&base_with(
        "let logits = linear(h, 2)",
        "let c = concat(h, z)\n  let logits = linear(h, 2)"
    )));
}

const GRAPH: &str = "\
model Fusion {
  dims { B = 16, T = 8 }
  input text: i32[B, T] vocab 1000
  input image: f32[B, 32]
  label y: i32[B] classes 4

  node t = mean(embed(text, 64), axis: 1)
  node v = linear(image, 64)
  message f(x, y) = tanh(linear(concat(x, y), 64))
  rounds 2 {
    t += f(t, v)
    v = relu(f(v, t))
  }
  let logits = linear(concat(t, v), 4)
  loss cross_entropy(logits, y)
}
";

fn graph_with(from: &str, to: &str) -> String {
    assert_eq!(GRAPH.matches(from).count(), 1, "'{from}' must occur once in GRAPH");
    GRAPH.replace(from, to)
}

#[test]
fn graph_model_compiles() {
    assert!(compile(GRAPH, &[]).is_ok());
}

#[test]
fn rounds_update_of_a_non_node() {
    insta::assert_snapshot!(errors(&graph_with(
        "  let logits",
        "  let w = linear(image, 64)\n  rounds 1 { w = f(w, t) }\n  let logits"
    )));
}

#[test]
fn rounds_update_of_unknown_node() {
    insta::assert_snapshot!(errors(&graph_with("    v = relu(f(v, t))", "    u = relu(f(v, t))")));
}

#[test]
fn rounds_update_changes_type() {
    insta::assert_snapshot!(errors(&graph_with("    v = relu(f(v, t))", "    v = linear(v, 32)")));
}

#[test]
fn shared_message_weight_with_two_shapes() {
    insta::assert_snapshot!(errors(&graph_with(
        "  let logits = linear(concat(t, v), 4)",
        "  let w = f(t, image)\n  let logits = linear(concat(t, v), 4)"
    )));
}

#[test]
fn message_wrong_arity() {
    insta::assert_snapshot!(errors(&graph_with("t += f(t, v)", "t += f(t)")));
}

#[test]
fn message_used_as_value() {
    insta::assert_snapshot!(errors(&graph_with("concat(t, v), 4)", "concat(t, f), 4)")));
}

#[test]
fn mse_shape_mismatch() {
    insta::assert_snapshot!(errors(
        "model R {
  dims { B = 8 }
  input x: f32[B, 3]
  label y: f32[B, 1]
  let p = linear(x, 2)
  loss mse(p, y)
}
"
    ));
}

#[test]
fn several_independent_errors() {
    insta::assert_snapshot!(errors(
        "model Broken {
  dims { B = 64, T = 32 }
  input tokens: i32[B, T] vocab 10000
  label y: i32[B] classes 2

  let z = embed(tokns, 64)
  let e = embed(tokens, 64)
  let m = mean(e, axis: 3)
  let h = relu(lineer(m, 128))
  let g = linear(e)
  let e = relu(e)
  let logits = linear(mean(e, axis: 1), 3)
  loss cross_entropy(logits, y)
}

train {
  optimizer adma(lr: 1e-3)
  epoch 10
}
"
    ));
}

#[test]
fn name_used_in_its_own_definition() {
    insta::assert_snapshot!(errors(&base_with(
        "let logits = linear(h, 2)",
        "let logits = linear(logits, 2)"
    )));
}

#[test]
fn rounds_update_shape_mismatch() {
    insta::assert_snapshot!(errors(&graph_with(
        "    t += f(t, v)",
        "    t += mean(embed(text, 32), axis: 1)"
    )));
}

#[test]
fn gelu_approximation_other_than_tanh() {
    insta::assert_snapshot!(errors(&base_with(
        "relu(linear(mean(z, axis: 1), 128))",
        "gelu(linear(mean(z, axis: 1), 128), approximate: sigmoid)"
    )));
}
