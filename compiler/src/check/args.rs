//! Reading literal arguments: sizes, numbers and axes.
//!
//! In: an argument expression (and for an axis, the tensor's type). Out: a [`Dim`], an
//! `f64` or an axis in `0..rank`, or `None` after reporting why the expression is not one.

use super::dim::Dim;
use super::typed::*;
use super::{show_type, Checker, Entry};
use crate::diag::Diagnostic;
use crate::syntax::ast::{Expr, ExprKind};

impl<'p> Checker<'p> {
    /// A size argument: a positive integer or a declared dim.
    pub(super) fn size(&mut self, e: &Expr) -> Option<Dim> {
        match &e.kind {
            ExprKind::Int(v) if *v > 0 && *v <= u32::MAX as i64 => Some(Dim::lit(*v)),
            ExprKind::Name(n) if matches!(self.scope.get(n).map(|d| &d.entry), Some(Entry::Dim)) => Some(Dim::named(n)),
            _ => {
                self.error(
                    Diagnostic::new("expected a size", e.span, "not a positive integer or dim")
                        .with_help("sizes are positive integers (`64`) or names from `dims { ... }`"),
                );
                None
            }
        }
    }

    /// A number literal (int or float, possibly negated).
    pub(super) fn number(&mut self, e: &Expr) -> Option<f64> {
        match &e.kind {
            ExprKind::Int(v) => Some(*v as f64),
            ExprKind::Float(v) => Some(*v),
            ExprKind::Neg(x) => self.number(x).map(|v| -v),
            _ => {
                self.error(Diagnostic::new("expected a number", e.span, "not a number literal"));
                None
            }
        }
    }

    /// An axis argument normalized to `0..rank`; `default` when omitted (`None`: -1).
    pub(super) fn axis(&mut self, e: Option<&Expr>, ty: &SymType, default: Option<usize>) -> Option<usize> {
        let rank = ty.shape.len() as i64;
        let Some(e) = e else {
            return match default {
                Some(a) if (a as i64) < rank => Some(a),
                _ if rank > 0 => Some(rank as usize - 1),
                _ => None,
            };
        };
        let value = match &e.kind {
            ExprKind::Int(v) => *v,
            ExprKind::Neg(x) => match x.kind {
                ExprKind::Int(v) => -v,
                _ => i64::MAX,
            },
            _ => i64::MAX,
        };
        if value == i64::MAX {
            self.error(
                Diagnostic::new("expected an axis", e.span, "not an integer")
                    .with_help("axes are integers, e.g. `axis: 1` or `axis: -1`"),
            );
            return None;
        }
        if value < -rank || value >= rank {
            let help = if rank == 0 {
                "a scalar has no axes".to_string()
            } else {
                format!(
                    "axes of a rank-{rank} tensor are 0..{} (or -{rank}..-1 from the end)",
                    rank - 1
                )
            };
            self.error(
                Diagnostic::new(
                    format!("axis {value} is out of range for {}", show_type(ty)),
                    e.span,
                    format!("rank {rank} has no axis {value}"),
                )
                .with_help(help),
            );
            return None;
        }
        Some(if value < 0 {
            (value + rank) as usize
        } else {
            value as usize
        })
    }
}
