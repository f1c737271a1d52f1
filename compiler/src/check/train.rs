//! The `train { ... }` block: optimizer and hyper-parameters, epochs, batch, seed.
//!
//! In: the block's `key value` settings. Out: a [`TrainConfig`] with defaults filled in
//! (Adam with lr 1e-3, 10 epochs, the label's batch dim, seed 0), or diagnostics for
//! unknown keys, repeated keys, unknown optimizers and out-of-range values.

use super::suggest;
use super::typed::TrainConfig;
use super::{Checker, Entry};
use crate::autodiff::Optimizer;
use crate::diag::Diagnostic;
use crate::syntax::ast::{Expr, ExprKind, TrainBlock};
use std::collections::HashMap;

const KEYS: &[&str] = &["optimizer", "epochs", "batch", "seed"];

/// Hyper-parameters each optimizer takes, with PyTorch's defaults.
const OPTIMIZERS: &[(&str, &[(&str, f64)])] = &[
    ("sgd", &[("lr", 1e-2), ("momentum", 0.0)]),
    ("adam", &[("lr", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)]),
    (
        "adamw",
        &[
            ("lr", 1e-3),
            ("beta1", 0.9),
            ("beta2", 0.999),
            ("eps", 1e-8),
            ("weight_decay", 1e-2),
        ],
    ),
];

pub(super) fn train_block(c: &mut Checker, block: Option<&TrainBlock>) -> Option<TrainConfig> {
    let mut config = TrainConfig {
        optimizer: Optimizer::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        epochs: 10,
        batch: None,
        seed: 0,
    };
    let Some(block) = block else { return Some(config) };
    let mut seen = HashMap::new();
    let mut ok = true;
    for s in &block.settings {
        let key = s.key.name.as_str();
        if !KEYS.contains(&key) {
            let help = suggest::did_you_mean(key, KEYS.iter().copied())
                .unwrap_or_else(|| format!("the settings are: {}", KEYS.join(", ")));
            c.error(
                Diagnostic::new(format!("unknown train setting '{key}'"), s.key.span, "not a setting").with_help(help),
            );
            ok = false;
            continue;
        }
        if let Some(&first) = seen.get(key) {
            c.error(
                Diagnostic::new(
                    format!("train setting '{key}' is given twice"),
                    s.key.span,
                    "again here",
                )
                .with_secondary(first, "first here"),
            );
            ok = false;
            continue;
        }
        seen.insert(key, s.key.span);
        let done = match key {
            "optimizer" => optimizer(c, &s.value).map(|o| config.optimizer = o),
            "epochs" => positive(c, &s.value, "epochs").map(|n| config.epochs = n),
            "seed" => match s.value.kind {
                ExprKind::Int(v) if v >= 0 => {
                    config.seed = v as u64;
                    Some(())
                }
                _ => {
                    c.error(Diagnostic::new(
                        "seed must be a non-negative integer",
                        s.value.span,
                        "not a seed",
                    ));
                    None
                }
            },
            _ => batch(c, &s.value).map(|b| config.batch = b),
        };
        ok &= done.is_some();
    }
    ok.then_some(config)
}

fn positive(c: &mut Checker, e: &Expr, what: &str) -> Option<usize> {
    match e.kind {
        ExprKind::Int(v) if v > 0 => Some(v as usize),
        _ => {
            c.error(Diagnostic::new(
                format!("{what} must be a positive integer"),
                e.span,
                "not a positive integer",
            ));
            None
        }
    }
}

/// `batch 32` sets the batch size; `batch B` names the batch dim (its default is used).
fn batch(c: &mut Checker, e: &Expr) -> Option<Option<usize>> {
    if let ExprKind::Name(n) = &e.kind {
        if let Some(Entry::Dim) = c.scope.get(n).map(|d| &d.entry) {
            return Some(c.dims.iter().find(|d| &d.name == n).and_then(|d| d.default));
        }
        c.error(
            Diagnostic::new(format!("'{n}' is not a dim"), e.span, "expected a batch size or dim")
                .with_help("write `batch 32` or `batch B` with B declared in dims"),
        );
        return None;
    }
    positive(c, e, "batch").map(Some)
}

fn optimizer(c: &mut Checker, e: &Expr) -> Option<Optimizer> {
    let (name, args) = match &e.kind {
        ExprKind::Call { func, args } => (func, args.as_slice()),
        _ => {
            c.error(
                Diagnostic::new("expected an optimizer", e.span, "not an optimizer call")
                    .with_help("e.g. `optimizer adam(lr: 1e-3)`; optimizers are sgd, adam and adamw"),
            );
            return None;
        }
    };
    let Some(&(_, params)) = OPTIMIZERS.iter().find(|(n, _)| *n == name.name) else {
        let help = suggest::did_you_mean(&name.name, OPTIMIZERS.iter().map(|o| o.0))
            .unwrap_or_else(|| "optimizers are sgd, adam and adamw".into());
        c.error(
            Diagnostic::new(
                format!("unknown optimizer '{}'", name.name),
                name.span,
                "not an optimizer",
            )
            .with_help(help),
        );
        return None;
    };
    let mut values: HashMap<&str, f64> = params.iter().copied().collect();
    let mut ok = true;
    for a in args {
        let Some(key) = &a.name else {
            c.error(
                Diagnostic::new("optimizer settings are named", a.value.span, "unnamed value")
                    .with_help(format!("write e.g. `{}(lr: 1e-3)`", name.name)),
            );
            ok = false;
            continue;
        };
        let Some(&(k, _)) = params.iter().find(|(k, _)| *k == key.name) else {
            let known: Vec<&str> = params.iter().map(|p| p.0).collect();
            let help = suggest::did_you_mean(&key.name, known.iter().copied())
                .unwrap_or_else(|| format!("{} takes: {}", name.name, known.join(", ")));
            c.error(
                Diagnostic::new(
                    format!("'{}' has no setting '{}'", name.name, key.name),
                    key.span,
                    "unknown",
                )
                .with_help(help),
            );
            ok = false;
            continue;
        };
        let value = match &a.value.kind {
            ExprKind::Int(v) => *v as f64,
            ExprKind::Float(v) => *v,
            ExprKind::Neg(x) if matches!(x.kind, ExprKind::Int(_) | ExprKind::Float(_)) => match x.kind {
                ExprKind::Int(v) => -(v as f64),
                ExprKind::Float(v) => -v,
                _ => unreachable!("matched above"),
            },
            _ => {
                c.error(Diagnostic::new(
                    format!("'{k}' must be a number"),
                    a.value.span,
                    "not a number",
                ));
                ok = false;
                continue;
            }
        };
        let valid = match k {
            "lr" | "eps" => value > 0.0 && value.is_finite(),
            "beta1" | "beta2" | "momentum" => (0.0..1.0).contains(&value),
            _ => value >= 0.0 && value.is_finite(),
        };
        if !valid {
            let range = match k {
                "lr" | "eps" => "must be positive",
                "beta1" | "beta2" | "momentum" => "must be in [0, 1)",
                _ => "must be non-negative",
            };
            c.error(Diagnostic::new(
                format!("'{k}' {range}"),
                a.value.span,
                format!("{k} = {value}"),
            ));
            ok = false;
            continue;
        }
        values.insert(k, value);
    }
    if !ok {
        return None;
    }
    let v = |k: &str| values[k];
    Some(match name.name.as_str() {
        "sgd" => Optimizer::Sgd {
            lr: v("lr"),
            momentum: v("momentum"),
        },
        "adam" => Optimizer::Adam {
            lr: v("lr"),
            beta1: v("beta1"),
            beta2: v("beta2"),
            eps: v("eps"),
        },
        _ => Optimizer::AdamW {
            lr: v("lr"),
            beta1: v("beta1"),
            beta2: v("beta2"),
            eps: v("eps"),
            weight_decay: v("weight_decay"),
        },
    })
}
