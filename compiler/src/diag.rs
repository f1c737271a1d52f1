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
