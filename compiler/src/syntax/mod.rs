//! Syntax: `.mp` source text -> [`ast::Program`].
//!
//! `parser` (pest grammar `grammar/mp.pest` -> AST, syntax errors as diagnostics) and
//! `printer` (AST -> indented tree for `--emit ast`).
pub mod ast;
mod parser;
mod printer;
mod syntax_error;

pub use parser::{parse, MAX_DEPTH, MAX_NESTING};
pub use printer::print_ast;
