//! Checking `layers N { h = ... }`: a block of updates repeated N times, each repetition
//! with parameters of its own (a stack of Transformer layers).
//!
//! In: the block. Out: one binding per update per repetition (`h@layer1.2`: layer 1's
//! second update; the IR
//! has no loops, as for `rounds`), and the repetitions' parameters, named
//! `<target>.layers.<i>.<builtin>[_k].<weight|bias>` with `i` counted from 0 over every
//! `layers` block of that target (PyTorch's `nn.TransformerEncoder` prefix `layers.<i>.`).
//!
//! Unlike `rounds`, whose updates are synchronous and share their weights across
//! rounds, updates here run in order (each reads the latest value of every name) and a
//! repetition's calls create new parameters; a message called inside keeps its one set
//! of weights. Targets are `let` bindings, and every update keeps its target's type, so
//! that the next layer reads what the previous one wrote.

use super::suggest;
use super::{show_type, Arith, Checker, Entry, TExpr, TKind};
use crate::diag::Diagnostic;
use crate::syntax::ast;
use std::collections::HashMap;

/// The most repetitions of one block: far more than a model this compiler trains needs,
/// and a bound on the unrolled graph.
const MAX_LAYERS: i64 = 64;

impl Checker<'_> {
    pub(super) fn layers(&mut self, block: &ast::Layers) {
        let n = block.count.value;
        if !(1..=MAX_LAYERS).contains(&n) {
            self.error(
                Diagnostic::new(
                    format!("layers must be between 1 and {MAX_LAYERS}"),
                    block.count.span,
                    format!("{n} layers"),
                )
                .with_help("`layers 2 { h = ... }` runs its updates twice, each time with new parameters"),
            );
            return;
        }
        // Each target is judged (and any error reported) once, however many updates it has.
        let mut judged: HashMap<&str, bool> = HashMap::new();
        let mut targets = Vec::new();
        for u in &block.updates {
            let ok = match judged.get(u.target.name.as_str()) {
                Some(&ok) => ok,
                None => self.layer_target(&u.target),
            };
            judged.insert(&u.target.name, ok);
            targets.push(ok);
        }
        // Layer numbers continue over earlier blocks of the same target, so that two
        // blocks never name a parameter alike (which would share it).
        let first_layer: Vec<usize> = block
            .updates
            .iter()
            .map(|u| self.layer_counts.get(&u.target.name).copied().unwrap_or(0))
            .collect();
        let was_quiet = self.quiet;
        for rep in 0..n as usize {
            for (step, ((u, &ok), &first)) in block.updates.iter().zip(&targets).zip(&first_layer).enumerate() {
                let scope = format!("{}.layers.{}", u.target.name, first + rep);
                self.param_scope = scope.clone();
                self.layer_scope = Some(scope);
                let value = self.expr(&u.value);
                self.layer_scope = None;
                if let (true, Some(value)) = (ok, value) {
                    let name = format!("{}@layer{}.{}", u.target.name, first + rep + 1, step + 1);
                    self.apply_layer_update(u, value, name);
                }
            }
            // Errors are the same in every repetition: report the first only.
            self.quiet = true;
        }
        self.quiet = was_quiet;
        for (u, &first) in block.updates.iter().zip(&first_layer) {
            self.layer_counts.insert(u.target.name.clone(), first + n as usize);
        }
    }

    /// The new value of an update of binding `index`: `value` for `h = value`, the sum
    /// for `h += value` (`None` when the sum does not check). Shared by `rounds` and
    /// `layers`.
    pub(super) fn updated(&mut self, u: &ast::Update, index: usize, value: TExpr) -> Option<TExpr> {
        match u.op {
            ast::UpdateOp::Assign => Some(value),
            ast::UpdateOp::AddAssign => {
                let current = TExpr {
                    kind: TKind::Binding(index),
                    ty: self.bindings[index].1.ty.clone(),
                };
                self.arith(Arith::Add, current, u.target.span, value, u.value.span)
            }
        }
    }

    /// `h = value` (or `h += value`): a new binding `name` for `h`, which must keep its
    /// type.
    fn apply_layer_update(&mut self, u: &ast::Update, value: TExpr, name: String) {
        let Some(Entry::Binding { index, .. }) = self.scope.get(&u.target.name).map(|d| d.entry.clone()) else {
            return;
        };
        let old_ty = self.bindings[index].1.ty.clone();
        let Some(value) = self.updated(u, index, value) else {
            return;
        };
        if value.ty != old_ty {
            self.error(
                Diagnostic::new(
                    format!("a layer changes the type of '{}'", u.target.name),
                    u.value.span,
                    format!("{} becomes {}", show_type(&old_ty), show_type(&value.ty)),
                )
                .with_help(format!(
                    "the next layer reads '{}', so every update must keep it {}: e.g. project back with `linear(.., D)`",
                    u.target.name,
                    show_type(&old_ty)
                )),
            );
            return;
        }
        self.bindings.push((name, value));
        let index = self.bindings.len() - 1;
        if let Some(d) = self.scope.get_mut(&u.target.name) {
            d.entry = Entry::Binding { index, node: false };
        }
    }

    /// Whether `target` is a `let` binding a layer may update; reports why not.
    fn layer_target(&mut self, target: &ast::Ident) -> bool {
        let name = &target.name;
        let help = match self.scope.get(name).map(|d| d.entry.clone()) {
            Some(Entry::Binding { node: false, .. }) => return true,
            Some(Entry::Poisoned) => return false,
            Some(Entry::Binding { node: true, .. }) => format!(
                "'{name}' is a node: `rounds` update nodes with shared weights; declare it with \
                 `let {name} = ...` for layers with weights of their own"
            ),
            Some(_) => format!(
                "layers update `let` bindings: e.g. `let h = embed({name}, 64)` before the block, then `h = ...` in it"
            ),
            None => {
                let lets = self
                    .scope
                    .iter()
                    .filter(|(_, d)| matches!(d.entry, Entry::Binding { node: false, .. }))
                    .map(|(n, _)| n.as_str());
                match suggest::did_you_mean(name, lets) {
                    Some(h) => h,
                    None if self.all_names.contains_key(name) => {
                        format!("'{name}' is defined after this block: move `let {name} = ...` before it")
                    }
                    None => format!("layers update a value defined before them: `let {name} = ...`"),
                }
            }
        };
        let message = if self.scope.contains_key(name) {
            format!("'{name}' is not a let binding")
        } else {
            format!("unknown value '{name}'")
        };
        self.error(Diagnostic::new(message, target.span, "updated here").with_help(help));
        false
    }
}
