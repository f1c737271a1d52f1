//! The errors a user sees when writing a model over a data set of graphs (`graphs G`,
//! `readout`): each case is the model below with one mistake, rendered as on a terminal
//! without colour. The snapshots are the specification of the messages.

use mpc_compiler::diag::render;
use mpc_compiler::pipeline::compile;

const MOLECULES: &str = "\
model Molecules {
  dims { G = 64, N = 1400, E = 2900, F = 18, H = 64 }
  graph g { nodes N, edges i32[2, E], features f32[E, 4], graphs G }
  input x: f32[N, F]
  label y: f32[G]

  message bond(src, dst, b) = linear(concat(src, b), H)
  let h = relu(propagate(g, x, bond, aggregate: sum) + linear(x, H))
  loss mse(reshape(linear(readout(g, h, sum), 1), [G]), y)
}
";

/// The model with `from` replaced by `to` (which must occur exactly once); its errors.
fn errors_with(from: &str, to: &str) -> String {
    assert_eq!(MOLECULES.matches(from).count(), 1, "'{from}' must occur once");
    let src = MOLECULES.replace(from, to);
    match compile(&src, &[]) {
        Ok(_) => panic!("expected errors, but this compiled:\n{src}"),
        Err(diags) => render(&diags, "molecules.mp", &src, false),
    }
}

#[test]
fn the_model_compiles_with_a_readout_per_graph() {
    let c = compile(MOLECULES, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let text = mpc_compiler::ir::printer::print_graph(&c.forward);
    // Node i's graph is an input; graph G (the padding's) is pooled, then cut off.
    assert!(text.contains("i32[1400] = input \"g.graph_of\""), "{text}");
    assert!(text.contains("f32[65, 64] = scatter_add[rows=65]"), "{text}");
    assert!(text.contains("f32[64] = input \"@row_mask\""), "{text}");
}

#[test]
fn readout_of_a_single_graph() {
    insta::assert_snapshot!(errors_with(", graphs G }", " }"));
}

#[test]
fn readout_with_an_unknown_pooling() {
    insta::assert_snapshot!(errors_with("readout(g, h, sum)", "readout(g, h, average)"));
}

#[test]
fn readout_of_graph_vectors() {
    insta::assert_snapshot!(errors_with("readout(g, h, sum)", "readout(g, readout(g, h, sum), sum)"));
}

#[test]
fn readout_of_something_not_a_graph() {
    insta::assert_snapshot!(errors_with("readout(g, h, sum)", "readout(x, h, sum)"));
}

#[test]
fn two_batches_of_graphs() {
    insta::assert_snapshot!(errors_with(
        "  input x: f32[N, F]\n",
        "  graph k { nodes N, edges i32[2, E], graphs G }\n  input x: f32[N, F]\n"
    ));
}
