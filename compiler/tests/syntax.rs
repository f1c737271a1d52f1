//! Front-end tests: the grammar, the parser's errors as users see them, the AST printer,
//! and the promise that no input makes the parser panic or overflow the stack.
//!
//! In: the example model and small hand-written sources. Out: pass/fail and insta
//! snapshots under `tests/snapshots/` (reviewed by eye).

use mpc_compiler::diag::{line_col, render, Diagnostic};
use mpc_compiler::internals::syntax::ast::*;
use mpc_compiler::internals::syntax::{parse, print_ast};

const EXAMPLE: &str = include_str!("../../examples/text_classifier.mp");

fn err(src: &str) -> Diagnostic {
    match parse(src) {
        Ok(p) => panic!("expected a syntax error, parsed {p:#?}"),
        Err(d) => d,
    }
}

/// The rendered, uncoloured error as a user would see it for `test.mp`.
fn rendered(src: &str) -> String {
    render(&[err(src)], "test.mp", src, false)
}

fn wrap(items: &str) -> String {
    format!("model M {{\n{items}\n}}\n")
}

#[test]
fn example_parses() {
    let p = parse(EXAMPLE).unwrap();
    assert_eq!(p.model.name.name, "TextClassifier");
    assert_eq!(p.model.items.len(), 7);
    let t = p.train.unwrap();
    let keys: Vec<&str> = t.settings.iter().map(|s| s.key.name.as_str()).collect();
    assert_eq!(keys, ["optimizer", "epochs", "batch", "seed"]);
}

#[test]
fn example_ast_snapshot() {
    let p = parse(EXAMPLE).unwrap();
    insta::assert_snapshot!("text_classifier_ast", print_ast(&p, EXAMPLE));
}

#[test]
fn every_construct_parses() {
    let src = r#"
    // slash comments too
    model Everything {
      dims { N = 2000, E, F = 4, }
      graph g { edges i32[2, E], nodes N, features f32[E, F] }
      input x: f32[N, 32]
      input image: f32[N, 3, 32, 32]
      label y: i32[N] classes 4 smoothing 0
      node t = mean(embed(x, 64), axis: 1)
      message m(src, dst) = linear(concat(src, dst, axis: -1), 64)
      rounds 2 {
        t += m(t, t) + m(t, t)
        t = relu(t)
      }
      let r = reshape(x, [N, 8, 4,])
      let s = -a * b - c / d + .5 * 2.5e4 - 1E+2
      let p = propagate(g, x, m, aggregate: mean)
      loss cross_entropy(p, y)
    }
    train { optimizer adamw(lr: 1e-3, weight_decay: 0.01) epochs 3 }
    "#;
    let p = parse(src).unwrap();
    let items = &p.model.items;
    assert_eq!(items.len(), 12);
    let Item::Graph(g) = &items[1] else { panic!() };
    assert!(g.nodes.is_some() && g.edges.is_some() && g.features.is_some());
    let Item::Rounds(r) = &items[7] else { panic!() };
    assert_eq!(r.updates[0].op, UpdateOp::AddAssign);
    assert_eq!(r.updates[1].op, UpdateOp::Assign);
    insta::assert_snapshot!("every_construct_ast", print_ast(&p, src));
}

#[test]
fn precedence_and_associativity() {
    let src = wrap("let a = -x * y - z - w / v * u");
    let p = parse(&src).unwrap();
    let Item::Let(b) = &p.model.items[0] else { panic!() };
    // ((( -x * y) - z) - ((w / v) * u))
    let ExprKind::Binary {
        op: BinOp::Sub,
        lhs,
        rhs,
    } = &b.value.kind
    else {
        panic!()
    };
    assert!(matches!(rhs.kind, ExprKind::Binary { op: BinOp::Mul, .. }));
    let ExprKind::Binary {
        op: BinOp::Sub,
        lhs: l2,
        ..
    } = &lhs.kind
    else {
        panic!()
    };
    let ExprKind::Binary {
        op: BinOp::Mul,
        lhs: neg,
        ..
    } = &l2.kind
    else {
        panic!()
    };
    assert!(matches!(neg.kind, ExprKind::Neg(_)));
    assert_eq!(&src[b.value.span.start..b.value.span.end], "-x * y - z - w / v * u");
}

#[test]
fn statements_do_not_swallow_keywords() {
    let src = wrap("let a = x\nlet b = y\nnode c = f(a)\nloss cross_entropy(a, y)");
    let p = parse(&src).unwrap();
    assert_eq!(p.model.items.len(), 4);
    // `letter` and `nodes` are names, not keywords.
    assert!(parse(&wrap("let letter = nodes + losses")).is_ok());
}

#[test]
fn keyword_as_name_is_an_error_with_help() {
    let d = err(&wrap("let let = 1"));
    assert!(d.message.contains("expected a name"), "{}", d.message);
    assert!(d.help.unwrap().contains("`let` is a keyword"));
}

#[test]
fn overflowing_integer_is_a_diagnostic() {
    let d = err(&wrap("let a = 99999999999999999999"));
    assert!(d.message.contains("too large"), "{}", d.message);
    let d = err(&wrap("dims { B = 99999999999999999999 }"));
    assert!(d.message.contains("too large"), "{}", d.message);
}

#[test]
fn duplicate_graph_entry() {
    let src = wrap("graph g { nodes N, nodes M }");
    let d = err(&src);
    assert!(d.message.contains("`nodes` given twice"), "{}", d.message);
    assert_eq!(d.secondary.len(), 1);
}

/// (source, expected phrase, line:col) for errors users will meet.
#[test]
fn syntax_errors_name_the_expectation_and_place() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "expected `model`", "1:1"),
        ("model", "expected a name", "1:6"),
        ("model M {\n  let z = f(x)\n\n", "expected '}'", "2:15"),
        (
            "model M {\n  let z = embed(x, 64\n}\n",
            "expected ',', ')' or an operator",
            "3:1",
        ),
        (
            "model M {\n  input x: f64[B]\n}\n",
            "expected a type such as f32[B, 64]",
            "2:12",
        ),
        (
            "model M {\n  input x: \n}\n",
            "expected a type such as f32[B, 64]",
            "3:1",
        ),
        ("model M {\n  let x = \n}\n", "expected an expression", "3:1"),
        ("model M {\n  let x = a\n  oops\n}\n", "expected '}', an item", "3:3"),
        ("model M {\n  rounds 2 { t -= x }\n}\n", "expected '=' or '+='", "2:16"),
        (
            "model M {\n  dims { B = 64 T = 32 }\n}\n",
            "expected ',' or '}'",
            "2:17",
        ),
        ("model M { }\ntrain { epochs }\n", "expected an expression", "2:16"),
        ("model M { }\nmodel N { }\n", "expected `train` or end of file", "2:1"),
        ("model M { let é = 1 }", "expected a name", "1:15"),
    ];
    for (src, phrase, at) in cases {
        let text = rendered(src);
        assert!(text.contains(phrase), "{src:?}: want {phrase:?} in\n{text}");
        let want = format!("test.mp:{at}");
        assert!(text.contains(&want), "{src:?}: want {want} in\n{text}");
    }
}

#[test]
fn rendered_error_snapshots() {
    let missing_paren = "model M {\n  let h = relu(linear(x, 128)\n  loss h\n}\n";
    insta::assert_snapshot!("error_missing_paren", rendered(missing_paren));
    insta::assert_snapshot!("error_keyword_as_name", rendered(&wrap("  let loss = 1")));
    insta::assert_snapshot!("error_eof", rendered("model M {\n  let z = embed(x, 64)\n"));
    let dup = "model G {\n  graph g { nodes N, edges i32[2, E], nodes M }\n}\n";
    insta::assert_snapshot!("error_duplicate_graph_entry", rendered(dup));
}

#[test]
fn render_survives_odd_spans() {
    let src = "model é";
    let d = Diagnostic::new("x", Span::new(7, 100), "here").with_secondary(Span::new(8, 2), "odd");
    let text = render(&[d.clone(), d], "t.mp", src, true);
    assert!(text.contains("t.mp:1:7"), "{text}");
    let empty = Diagnostic::new("empty", Span::new(0, 0), "here");
    assert!(render(&[empty], "t.mp", "", false).contains("error: empty"));
}

#[test]
fn line_col_counts_chars() {
    assert_eq!(line_col("ab\ncé d", 7), (2, 4));
    assert_eq!(line_col("ab\ncé d", 5), (2, 2)); // inside 'é': clamped to its start
    assert_eq!(line_col("ab", 99), (1, 3));
}

// ---- never panic -----------------------------------------------------------------------

#[test]
fn every_prefix_of_the_example() {
    for (i, _) in EXAMPLE.char_indices().chain([(EXAMPLE.len(), ' ')]) {
        let src = &EXAMPLE[..i];
        if let Err(d) = parse(src) {
            let _ = render(&[d], "p.mp", src, false);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Bytes biased towards the language's own characters, so parses get somewhere.
    let alphabet = b"model{}()[],:=+-*/#.e0123456789 \n\tletxyzBT f32i32 loss";
    for _ in 0..2000 {
        let len = (next() % 120) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                }
            })
            .collect();
        let src = String::from_utf8_lossy(&bytes);
        if let Err(d) = parse(&src) {
            let _ = render(&[d], "r.mp", &src, false);
        }
        // Mutations of the example reach deeper into the grammar.
        let mut ex = EXAMPLE.as_bytes().to_vec();
        for _ in 0..3 {
            let at = next() as usize % ex.len();
            ex[at] = alphabet[next() as usize % alphabet.len()];
        }
        let src = String::from_utf8_lossy(&ex);
        if let Err(d) = parse(&src) {
            let _ = render(&[d], "m.mp", &src, false);
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for open in ["(", "[", "f("] {
        let src = wrap(&format!("let a = {}", open.repeat(100_000)));
        let d = err(&src);
        assert!(d.message.contains("nested too deeply"), "{}", d.message);
    }
    let long_sum = wrap(&format!("let a = x{}", " + x".repeat(100_000)));
    assert!(err(&long_sum).message.contains("nested too deeply"));
    let negs = wrap(&format!("let a = {}x", "-".repeat(100_000)));
    assert!(err(&negs).message.contains("nested too deeply"));
}

#[test]
fn nesting_up_to_the_limit_parses() {
    // At the limits, on a 1 MiB stack (half the default for test threads).
    let n = mpc_compiler::internals::syntax::MAX_NESTING;
    let d = mpc_compiler::internals::syntax::MAX_DEPTH;
    let run = move || {
        for open in ["(", "[", "f(", "f(a, -"] {
            let close = if open == "[" { "]" } else { ")" };
            let src = wrap(&format!("let a = {}x{}", open.repeat(n), close.repeat(n)));
            parse(&src).unwrap();
        }
        let sum = wrap(&format!("let a = x{}", " + x".repeat(d - 1)));
        let p = parse(&sum).unwrap();
        print_ast(&p, &sum);
        let over = wrap(&format!("let a = {}x{}", "(".repeat(n + 1), ")".repeat(n + 1)));
        assert!(err(&over).message.contains("nested too deeply"));
    };
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}
