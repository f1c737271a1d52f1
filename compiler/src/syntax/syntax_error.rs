//! Syntax errors: pest's error -> one [`Diagnostic`] in words.
//!
//! In: the source and pest's error (a position and the rules it expected there). Out:
//! `syntax error: expected '}'` with a one-character span at that position (zero-width at
//! the end of the file), a label saying what was found, and a hint when a keyword stands
//! where a name should be.

use pest::error::{ErrorVariant, InputLocation};

use super::ast::Span;
use super::parser::Rule;
use crate::diag::{line_col, Diagnostic};

/// Turns pest's error into a diagnostic: the expected rules in words, at one position.
pub(super) fn syntax_error(src: &str, err: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    // At the end of the file, point just after the last token (as rustc does) rather
    // than at an empty line below it.
    let span = if pos >= src.len() {
        let end = src.trim_end().len();
        Span::new(end, end)
    } else {
        point_span(src, pos)
    };
    let positives: &[Rule] = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => &[],
    };
    let expected = expected_words(positives);
    let found = if span.start >= src.trim_end().len() {
        ", found end of file".to_string()
    } else {
        describe_found(src, span)
    };
    // A long list of expectations is said once, in the headline; the label then only
    // says what was found.
    let label = if expected.len() <= 40 {
        format!("expected {expected} here{found}")
    } else if let Some(what) = found.strip_prefix(", found ") {
        format!("unexpected {what}")
    } else {
        "unexpected text here".to_string()
    };
    let mut diag = Diagnostic::new(format!("syntax error: expected {expected}"), span, label);
    // An unclosed bracket on an earlier line is the likely cause; on the same line it
    // is just the construct being written, and pointing at it would be noise.
    if let Some(open) = unclosed(src, span.start, positives) {
        if line_col(src, open.start).0 < line_col(src, span.start).0 {
            diag = diag.with_secondary(open, "unclosed delimiter opened here");
        }
    }
    // Only when a name is the sole expectation: elsewhere (`rounds { let ...`) the
    // keyword is more likely a statement in the wrong place than a name.
    if positives == [Rule::ident] {
        if let Some(kw) = keyword_at(src, span.start) {
            diag = diag.with_help(format!(
                "`{kw}` is a keyword and cannot be used as a name; choose another name"
            ));
        }
    }
    if positives.contains(&Rule::dtype) {
        diag = diag.with_help("element types are `i32` (ids, labels) and `f32`");
    }
    diag
}

/// A one-character span at `pos` (or zero-width at the end of the source), clamped to
/// the source and to char boundaries.
fn point_span(src: &str, pos: usize) -> Span {
    let mut start = pos.min(src.len());
    while !src.is_char_boundary(start) {
        start -= 1;
    }
    let len = src[start..].chars().next().map_or(0, char::len_utf8);
    Span::new(start, start + len)
}

/// `, found end of file` / `, found '@'`: tells the user what stopped the parser.
fn describe_found(src: &str, span: Span) -> String {
    match src[span.start..].chars().next() {
        None => ", found end of file".into(),
        Some(c) if c.is_whitespace() => String::new(),
        Some(c) => {
            let word: String = src[span.start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(24)
                .collect();
            if word.is_empty() {
                format!(", found '{}'", c.escape_default())
            } else {
                format!(", found `{word}`")
            }
        }
    }
}

const KEYWORDS: [&str; 11] = [
    "model", "dims", "input", "label", "graph", "let", "node", "message", "rounds", "loss", "train",
];

fn keyword_at(src: &str, pos: usize) -> Option<&'static str> {
    let word: String = src[pos..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    KEYWORDS.iter().copied().find(|k| *k == word)
}

/// The expected rules as one phrase: deduplicated, most useful first, joined with `or`.
fn expected_words(positives: &[Rule]) -> String {
    let mut rules: Vec<Rule> = positives.to_vec();
    // After a name, a call's '(' is one of several ways to go on; saying so only helps
    // when it is the only way.
    if rules.len() > 1 {
        rules.retain(|r| *r != Rule::call_open);
    }
    rules.sort_by_key(|r| rank(*r));
    let mut words: Vec<&'static str> = Vec::new();
    for r in rules {
        let w = rule_words(r);
        if !words.contains(&w) {
            words.push(w);
        }
    }
    match words.len() {
        0 => "something else".into(),
        1 => words[0].into(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

/// Separators and closing delimiters first (the usual fix), operators last.
fn rank(r: Rule) -> u8 {
    match r {
        Rule::comma => 0,
        Rule::rbrace | Rule::rparen | Rule::rbrack => 1,
        Rule::add_op | Rule::mul_op | Rule::call_open => 3,
        Rule::EOI => 4,
        _ => 2,
    }
}

/// What users read for each rule in "expected ...".
pub(super) fn rule_words(r: Rule) -> &'static str {
    match r {
        Rule::EOI => "end of file",
        Rule::program | Rule::model | Rule::kw_model => "`model`",
        Rule::item => "an item (dims, input, label, graph, let, node, message, rounds, layers or loss)",
        Rule::dims | Rule::kw_dims => "`dims`",
        Rule::dim_decl => "a dim such as `B = 64`",
        Rule::input | Rule::kw_input => "`input`",
        Rule::label | Rule::kw_label => "`label`",
        Rule::annotation => "an annotation such as `vocab 10000`",
        Rule::tensor_type => "a type such as f32[B, 64]",
        Rule::dtype => "a type such as f32[B, 64]",
        Rule::dim_ref => "a dim name or size",
        Rule::graph | Rule::kw_graph => "`graph`",
        Rule::graph_entry => "a graph entry (nodes, edges, features, self_loops or graphs)",
        Rule::graph_nodes | Rule::kw_nodes => "`nodes`",
        Rule::graph_edges | Rule::kw_edges => "`edges`",
        Rule::graph_features | Rule::kw_features => "`features`",
        Rule::graph_self_loops | Rule::kw_self_loops => "`self_loops`",
        Rule::graph_graphs | Rule::kw_graphs => "`graphs`",
        Rule::let_item | Rule::kw_let => "`let`",
        Rule::node_item | Rule::kw_node => "`node`",
        Rule::message | Rule::kw_message => "`message`",
        Rule::rounds | Rule::kw_rounds => "`rounds`",
        Rule::layers | Rule::nested_layers | Rule::kw_layers => "`layers`",
        Rule::update => "an update such as `t += expr`",
        Rule::update_op => "'=' or '+='",
        Rule::loss | Rule::kw_loss => "`loss`",
        Rule::train | Rule::kw_train => "`train`",
        Rule::setting => "a setting such as `epochs 10`",
        Rule::expr | Rule::product | Rule::unary | Rule::primary | Rule::paren | Rule::neg => "an expression",
        Rule::call => "a call",
        Rule::arg => "an argument",
        Rule::list => "a list such as [B, 8]",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::ident | Rule::keyword => "a name",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::lbrace => "'{'",
        Rule::rbrace => "'}'",
        Rule::lparen | Rule::call_open => "'('",
        Rule::rparen => "')'",
        Rule::lbrack => "'['",
        Rule::rbrack => "']'",
        Rule::comma => "','",
        Rule::colon => "':'",
        Rule::eq => "'='",
        // Silent rules are never reported; listed so that the match stays exhaustive.
        Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char | Rule::exponent => "something else",
    }
}

/// When a closing delimiter is among the expectations, the innermost bracket still open
/// before `pos` of that kind: pointing at it is usually the fix.
fn unclosed(src: &str, pos: usize, positives: &[Rule]) -> Option<Span> {
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut in_comment = false;
    let bytes = &src.as_bytes()[..pos.min(src.len())];
    for (i, &b) in bytes.iter().enumerate() {
        if in_comment {
            in_comment = b != b'\n';
            continue;
        }
        match b {
            b'#' => in_comment = true,
            b'/' if bytes.get(i + 1) == Some(&b'/') => in_comment = true,
            b'(' | b'[' | b'{' => stack.push((b, i)),
            b')' | b']' | b'}' => {
                stack.pop();
            }
            _ => {}
        }
    }
    let (open, at) = stack.pop()?;
    let wanted = match open {
        b'(' => Rule::rparen,
        b'[' => Rule::rbrack,
        _ => Rule::rbrace,
    };
    positives.contains(&wanted).then(|| Span::new(at, at + 1))
}
