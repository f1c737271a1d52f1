//! Syntax: `.mp` source text -> [`ast::Program`].
pub mod ast;
