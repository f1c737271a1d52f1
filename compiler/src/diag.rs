//! Diagnostics: what every stage reports about a user's model, and how it is shown.
//!
//! In: [`Diagnostic`]s (message, labelled spans, help) from the parser and the checker,
//! plus the file name and source. Out: text in the style of rustc
//! (`error: ...`, ` --> file:line:col`, the source line with carets, `= help: ...`),
//! coloured only when asked (a terminal), rendered with `annotate-snippets`.

use crate::syntax::ast::Span;

/// A span with a short text shown under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One error about the user's model.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The headline, e.g. `shape mismatch in '+'`.
    pub message: String,
    /// Where the error is; its text is shown under the carets.
    pub primary: Label,
    /// Related places (e.g. where a name was first defined).
    pub secondary: Vec<Label>,
    /// A suggestion, shown as `= help: ...`.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            primary: Label {
                span,
                text: label.into(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_secondary(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }
}

/// Renders diagnostics rustc-style, separated by blank lines. `origin` is the file name
/// shown after `-->`; `color` selects ANSI styling (for a terminal) or plain text.
/// Spans are clamped to the source and to char boundaries first, because
/// annotate-snippets may panic on a range that is not inside the source.
/// `src` with every whitespace or control character other than space, tab and line
/// breaks replaced by as many spaces as its UTF-8 bytes: the spans (byte offsets) stay
/// valid, and annotate-snippets, which measures some of those characters as whitespace
/// and others as text, lays the lines out consistently (a vertical tab at the start of a
/// long line made it subtract past zero).
fn printable(src: &str) -> String {
    src.chars()
        .flat_map(|c| {
            let odd = (c.is_whitespace() || c.is_control()) && !matches!(c, ' ' | '\t' | '\n' | '\r');
            let n = if odd { c.len_utf8() } else { 0 };
            (0..n).map(|_| ' ').chain((!odd).then_some(c))
        })
        .collect()
}

pub fn render(diags: &[Diagnostic], origin: &str, src: &str, color: bool) -> String {
    use annotate_snippets::{Level, Renderer, Snippet};

    // No width to fit: annotate-snippets 0.11's trimming of long lines subtracts past
    // zero when the label sits in a line's leading whitespace (found by the fuzzer).
    // Model lines are short; a long one is shown whole.
    let renderer = if color { Renderer::styled() } else { Renderer::plain() }.term_width(usize::MAX / 4);
    let shown = printable(src);
    let src = shown.as_str();
    let mut out = Vec::with_capacity(diags.len());
    for d in diags {
        let source = || Snippet::source(src).origin(origin).line_start(1).fold(true);
        let primary = clamp(src, d.primary.span);
        let mut snippet = source().annotation(Level::Error.span(primary.clone()).label(&d.primary.text));
        // annotate-snippets writes labels inline, so two labels on one line can overwrite
        // each other: a label sharing a line with another gets a snippet of its own.
        let mut lines = vec![line_col(src, primary.start).0];
        let mut extra = Vec::new();
        for s in &d.secondary {
            let range = clamp(src, s.span);
            let line = line_col(src, range.start).0;
            let note = Level::Note.span(range).label(&s.text);
            if lines.contains(&line) {
                extra.push(source().annotation(note));
            } else {
                lines.push(line);
                snippet = snippet.annotation(note);
            }
        }
        let mut msg = Level::Error.title(&d.message).snippet(snippet).snippets(extra);
        if let Some(h) = &d.help {
            msg = msg.footer(Level::Help.title(h));
        }
        out.push(renderer.render(msg).to_string());
    }
    out.join("\n\n")
}

/// A span as a byte range that is safe to hand to annotate-snippets: inside the source,
/// on char boundaries, start <= end.
fn clamp(src: &str, span: Span) -> std::ops::Range<usize> {
    let floor = |mut i: usize| {
        i = i.min(src.len());
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let mut start = floor(span.start);
    let mut end = floor(span.end).max(start);
    // A span at the very end, after the last newline, would be shown on no line at all:
    // move it back onto the end of the last line.
    if start == src.len() {
        let trimmed = src.trim_end_matches(['\n', '\r']).len();
        start = trimmed;
        end = end.min(trimmed).max(start);
    }
    start..end
}

/// 1-based line and column (counted in chars) of a byte offset; offsets past the end or
/// inside a multi-byte char are clamped to the nearest char start before them.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = clamp(src, Span::new(offset, offset)).start;
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
