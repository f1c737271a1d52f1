//! `mpc compile FILE --emit dot`: every example's message-passing structure as Graphviz
//! that names its inputs, labels, messages and loss, draws blocks as clusters, and that
//! `dot -Tsvg` renders to well-formed SVG where Graphviz is installed.

mod common;

use common::{examples, ok, s, scratch};
use std::process::Command;

fn dot_installed() -> bool {
    Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// The SVG `dot` makes of `text` (asserting it succeeds), or `None` without Graphviz.
fn render(name: &str, text: &str) -> Option<String> {
    if !dot_installed() {
        println!("Graphviz (dot) is not installed: {name}'s DOT is not rendered");
        return None;
    }
    let path = scratch("emit_dot", name).join("model.dot");
    std::fs::write(&path, text).unwrap();
    let o = Command::new("dot").arg("-Tsvg").arg(&path).output().unwrap();
    assert!(
        o.status.success(),
        "{name}: dot -Tsvg: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8(o.stdout).unwrap())
}

#[test]
fn every_example_draws_and_renders() {
    for (name, source) in examples() {
        let text = ok(&["compile", &format!("examples/{name}.mp"), "--emit", "dot"]);
        assert!(text.starts_with("digraph"), "{name}");
        // Every declared input, label and message is a node, and there is a loss.
        for line in source.lines().map(str::trim_start) {
            let mut words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            let (Some(kw), Some(id)) = (words.next(), words.next()) else {
                continue;
            };
            if ["input", "label", "message"].contains(&kw) {
                assert!(
                    text.contains(&format!("label=\"{kw} {id}")),
                    "{name}: no node for {kw} {id}"
                );
            }
        }
        assert!(text.contains("label=\"loss\\n"), "{name}");
        assert!(text.contains(" -> "), "{name}");
        if let Some(svg) = render(&name, &text) {
            // Graphviz writes a DOCTYPE: allowed, it is standard SVG.
            let options = roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            };
            let doc = roxmltree::Document::parse_with_options(&svg, options)
                .unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
        }
    }
}

#[test]
fn blocks_are_clusters_that_repeat() {
    let dir = scratch("emit_dot", "layers");
    let model = dir.join("m.mp");
    let src = "model Deep { dims { B = 4, D = 8 } input x: f32[B, D] label y: i32[B] classes 2 \
               let h = linear(x, D) \
               layers 3 { h = relu(linear(h, D)) + h } \
               loss cross_entropy(linear(h, 2), y) }";
    std::fs::write(&model, src).unwrap();
    let text = ok(&["compile", s(&model), "--emit", "dot"]);
    assert!(
        text.contains("subgraph cluster_") && text.contains("label=\"layers 3\""),
        "{text}"
    );
    // Arrows are written outside the cluster (inside, they would pull their ends in).
    let start = text.find("subgraph cluster_").unwrap();
    let end = start + text[start..].find("\n  }\n").unwrap();
    assert!(!text[start..end].contains("->"), "{text}");
    // The block's output feeds its input again: a dashed "next" arrow.
    assert!(
        text.contains("[style=dashed, constraint=false, label=\"next\"]"),
        "{text}"
    );
    assert!(text.contains("h = relu(linear(h, D)) + h\\nf32 [B, D]"), "{text}");
    render("layers", &text);
}

#[test]
fn fusion_as_dot() {
    let text = ok(&["compile", "examples/fusion.mp", "--emit", "dot"]);
    insta::assert_snapshot!(text);
}
