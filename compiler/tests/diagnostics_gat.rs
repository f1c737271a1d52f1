//! The errors a user sees when writing graph attention: each case is the GAT model below
//! with one mistake, rendered as on a terminal without colour. The snapshots are the
//! specification of the messages.

use mpc_compiler::diag::render;
use mpc_compiler::pipeline::compile;

const GAT: &str = "\
model Gat {
  dims { N = 34, E = 156, F = 34 }
  graph g { nodes N, edges i32[2, E], self_loops }
  input x: f32[N, F]
  label y: i32[N] classes 2

  message source(src) = src
  message score(src, dst) = leaky_relu(
      sum(reshape(src, [-1, 4, 8]) * parameter([4, 8], name: att_src), axis: -1)
    + sum(reshape(dst, [-1, 4, 8]) * parameter([4, 8], name: att_dst), axis: -1), 0.2)
  let z = linear(x, 32, bias: false)
  let h = elu(propagate(g, z, source, aggregate: softmax, score: score) + parameter([32], init: zeros))
  loss cross_entropy(linear(h, 2), y)
}
";

/// GAT with `from` replaced by `to` (which must occur exactly once); its rendered errors.
fn errors_with(from: &str, to: &str) -> String {
    assert_eq!(GAT.matches(from).count(), 1, "'{from}' must occur once");
    let src = GAT.replace(from, to);
    match compile(&src, &[]) {
        Ok(_) => panic!("expected errors, but this compiled:\n{src}"),
        Err(diags) => render(&diags, "gat.mp", &src, false),
    }
}

#[test]
fn the_gat_model_compiles_with_self_loops_counted_in_the_messages() {
    let c = compile(GAT, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = c.model.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "z.linear.weight",
            "att_src",
            "att_dst",
            "h.parameter",
            "loss.linear.weight",
            "loss.linear.bias"
        ]
    );
    // 156 edges and 34 self-loops: the projected sources are gathered once per message.
    let text = mpc_compiler::ir::printer::print_graph(&c.forward);
    assert!(text.contains("f32[190, 32]"), "{text}");
}

#[test]
fn softmax_without_a_score() {
    insta::assert_snapshot!(errors_with("aggregate: softmax, score: score)", "aggregate: softmax)"));
}

#[test]
fn a_score_with_another_aggregation() {
    insta::assert_snapshot!(errors_with(
        "aggregate: softmax, score: score)",
        "aggregate: mean, score: score)"
    ));
}

#[test]
fn a_score_that_is_not_a_message() {
    insta::assert_snapshot!(errors_with(
        "aggregate: softmax, score: score)",
        "aggregate: softmax, score: z)"
    ));
}

#[test]
fn heads_that_do_not_divide_the_message() {
    insta::assert_snapshot!(errors_with(
        "message source(src) = src",
        "message source(src) = linear(src, 10)"
    ));
}

#[test]
fn self_loops_with_edge_features() {
    insta::assert_snapshot!(errors_with(
        "edges i32[2, E], self_loops }",
        "edges i32[2, E], features f32[E, 3], self_loops }"
    ));
}

#[test]
fn a_vector_parameter_names_its_init() {
    insta::assert_snapshot!(errors_with("parameter([32], init: zeros)", "parameter([32])"));
}

#[test]
fn an_unknown_init() {
    insta::assert_snapshot!(errors_with(
        "parameter([32], init: zeros)",
        "parameter([32], init: kaiming)"
    ));
}

#[test]
fn reshape_infers_one_size_only() {
    insta::assert_snapshot!(errors_with("reshape(src, [-1, 4, 8])", "reshape(src, [-1, -1, 8])"));
}

#[test]
fn reshape_cannot_infer_a_size_that_does_not_divide() {
    insta::assert_snapshot!(errors_with("reshape(src, [-1, 4, 8])", "reshape(src, [-1, 5, 8])"));
}
