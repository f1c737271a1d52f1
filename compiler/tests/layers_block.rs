//! `layers N { ... }`: parsing, the parameters each layer creates (distinct per layer,
//! named `<target>.layers.<i>.*` like `nn.TransformerEncoder`'s `layers.<i>.`), updates
//! in order, and the errors of its misuse (snapshots, read by eye).
//!
//! In: small models around one post-norm encoder layer. Out: pass/fail and insta
//! snapshots under `tests/snapshots/`.

use mpc_compiler::diag::render;
use mpc_compiler::internals::syntax::ast::*;
use mpc_compiler::internals::syntax::parse;
use mpc_compiler::pipeline::compile;

/// Two post-norm encoder layers: `nn.TransformerEncoder(nn.TransformerEncoderLayer(16,
/// 2, 32, dropout=0, activation="gelu", batch_first=True), num_layers=2)`.
const ENCODER: &str = "\
model Encoder {
  dims { B = 4, T = 5 }
  input tokens: i32[B, T] vocab 30 pad 0
  label y: i32[B] classes 3

  let h = embed(tokens, 16) + embed(positions(tokens), 16)
  layers 2 {
    h = layer_norm(h + self_attention(h, heads: 2, mask: tokens))
    h = layer_norm(h + linear(gelu(linear(h, 32)), 16))
  }
  loss cross_entropy(linear(mean(h, axis: 1, mask: tokens), 3), y)
}
";

fn encoder_with(from: &str, to: &str) -> String {
    assert_eq!(ENCODER.matches(from).count(), 1, "'{from}' must occur once in ENCODER");
    ENCODER.replace(from, to)
}

fn param_names(src: &str) -> Vec<String> {
    let compiled = compile(src, &[]).unwrap_or_else(|d| panic!("{}", render(&d, "model.mp", src, false)));
    compiled.model.params.iter().map(|p| p.name.clone()).collect()
}

/// The rendered errors of `src`; panics if it compiles.
fn errors(src: &str) -> String {
    match compile(src, &[]) {
        Ok(_) => panic!("expected errors, but this compiled:\n{src}"),
        Err(diags) => render(&diags, "model.mp", src, false),
    }
}

#[test]
fn a_block_parses_into_its_count_and_updates_in_order() {
    let p = parse(ENCODER).unwrap();
    let Item::Layers(block) = &p.model.items[4] else {
        panic!("{:?}", p.model.items[4])
    };
    assert_eq!(block.count.value, 2);
    assert_eq!(block.updates.len(), 2);
    assert!(block
        .updates
        .iter()
        .all(|u| u.target.name == "h" && u.op == UpdateOp::Assign));
    // Only where an item starts is `layers` a keyword: it stays a name elsewhere.
    let src = encoder_with("let h =", "let layers = embed(tokens, 16)\n  let h = layers +");
    assert!(compile(&src, &[]).is_ok());
}

#[test]
fn every_layer_has_its_own_parameters_named_by_its_index() {
    let names = param_names(ENCODER);
    let mut expected = vec!["h.embed.weight".to_string(), "h.embed_1.weight".to_string()];
    for i in 0..2 {
        for p in [
            "self_attention.in_proj.weight",
            "self_attention.in_proj.bias",
            "self_attention.out_proj.weight",
            "self_attention.out_proj.bias",
            "layer_norm.weight",
            "layer_norm.bias",
            "linear.weight",
            "linear.bias",
            "linear_1.weight",
            "linear_1.bias",
            "layer_norm_1.weight",
            "layer_norm_1.bias",
        ] {
            expected.push(format!("h.layers.{i}.{p}"));
        }
    }
    expected.extend(["loss.linear.weight".to_string(), "loss.linear.bias".to_string()]);
    let (mut got, mut want) = (names.clone(), expected);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_second_block_continues_the_numbering_and_names_are_per_layer() {
    let src = encoder_with("  loss", "  layers 1 { h += linear(h, 16, name: mix) }\n  loss");
    let names = param_names(&src);
    assert!(names.contains(&"h.layers.2.mix.weight".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("mix")), "{names:?}");
}

#[test]
fn updates_run_in_order_and_each_layer_reads_the_previous_one() {
    let model = compile(ENCODER, &[]).unwrap().model;
    let names: Vec<&str> = model.bindings.iter().map(|(n, _)| n.as_str()).collect();
    let at = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} in {names:?}"))
    };
    let reads = |name: &str, other: &str| {
        format!("{:?}", model.bindings[at(name)].1).contains(&format!("Binding({})", at(other)))
    };
    // Layer 1's MLP reads its attention update (not `h` before the block), and layer 2
    // reads layer 1's output.
    assert!(reads("h@layer1.2", "h@layer1.1"));
    assert!(!reads("h@layer1.2", "h"));
    assert!(reads("h@layer2.1", "h@layer1.2"));
    assert!(reads("h@layer2.2", "h@layer2.1"));
}

#[test]
fn a_count_of_zero_is_an_error() {
    insta::assert_snapshot!(errors(&encoder_with("layers 2 {", "layers 0 {")));
}

#[test]
fn a_count_above_the_limit_is_an_error() {
    insta::assert_snapshot!(errors(&encoder_with("layers 2 {", "layers 100 {")));
}

#[test]
fn a_count_that_is_not_an_integer_is_a_syntax_error() {
    insta::assert_snapshot!(errors(&encoder_with("layers 2 {", "layers L {")));
}

#[test]
fn a_target_that_is_an_input_is_an_error() {
    insta::assert_snapshot!(errors(&encoder_with(
        "    h = layer_norm(h + self_attention(h, heads: 2, mask: tokens))",
        "    tokens = layer_norm(h + self_attention(h, heads: 2, mask: tokens))"
    )));
}

#[test]
fn a_target_that_is_a_node_is_an_error_once() {
    insta::assert_snapshot!(errors(&encoder_with("let h =", "node h =")));
}

#[test]
fn an_unknown_target_is_an_error() {
    insta::assert_snapshot!(errors(&encoder_with(
        "    h = layer_norm(h + linear(gelu(linear(h, 32)), 16))",
        "    hidden = layer_norm(h + linear(gelu(linear(h, 32)), 16))"
    )));
}

#[test]
fn a_layer_that_changes_the_shape_is_an_error() {
    insta::assert_snapshot!(errors(&encoder_with(
        "    h = layer_norm(h + linear(gelu(linear(h, 32)), 16))",
        "    h = gelu(linear(h, 32))"
    )));
}

#[test]
fn nested_blocks_are_an_error() {
    insta::assert_snapshot!(errors(&encoder_with(
        "    h = layer_norm(h + linear(gelu(linear(h, 32)), 16))",
        "    layers 2 { h = layer_norm(h + linear(gelu(linear(h, 32)), 16)) }"
    )));
}
