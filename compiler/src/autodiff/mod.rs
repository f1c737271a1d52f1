//! Reverse-mode automatic differentiation as an IR-to-IR transform.
//!
//! In: a forward graph with a scalar `loss` output and `param` arguments, and an
//! optimizer. Out: one training-step graph: the forward pass, the backward pass built
//! from the per-primitive rules in [`vjp`], and the optimizer update from [`optimizer`];
//! its outputs are the forward outputs, then the new values of the parameters and the
//! optimizer state, each with its [`Role`] in the step's [`Signature`] (the output names,
//! `param:<name>` and `state:<name>`, come from the roles). Only nodes between a
//! parameter and the loss get cotangents.
//!
//! Data-parallel training splits that step in two around the gradients' all-reduce:
//! [`gradient_step`] (forward and backward, `grad:<param>` outputs) and [`update_step`]
//! (the optimizer update, which takes the summed gradients as `grad:<param>` inputs).

pub mod optimizer;
pub mod vjp;

pub use optimizer::Optimizer;

use crate::ir::{ArgKind, Builder, Graph, ValueId};
use crate::signature::{Role, Signature, Step, STEP};
use std::collections::HashMap;

/// Appends the backward pass of `loss` to `b`; returns d loss / d w for each `w` in
/// `wrt` (a zero constant where the loss does not depend on `w`).
pub fn gradients(b: &mut Builder, loss: ValueId, wrt: &[ValueId]) -> Vec<ValueId> {
    assert!(b.ty(loss).shape.is_empty(), "the loss must be a scalar");
    // Which nodes depend on some `wrt` value: only they need cotangents.
    let n = loss.index() + 1;
    let mut needs = vec![false; n];
    for &w in wrt {
        if w.index() < n {
            needs[w.index()] = true;
        }
    }
    for i in 0..n {
        if !needs[i] {
            needs[i] = b.graph.nodes[i].operands.iter().any(|o| needs[o.index()]);
        }
    }

    let mut adjoint: HashMap<ValueId, ValueId> = HashMap::new();
    let one = b.scalar(1.0);
    adjoint.insert(loss, one);
    for i in (0..n).rev() {
        let y = ValueId(i as u32);
        let Some(&g) = adjoint.get(&y) else { continue };
        if !needs[i] {
            continue;
        }
        let node = b.graph.nodes[i].clone();
        let cotangents = vjp::vjp(b, &node, y, g);
        for (&x, dx) in node.operands.iter().zip(cotangents) {
            let Some(dx) = dx else { continue };
            if !needs[x.index()] {
                continue;
            }
            let total = match adjoint.get(&x) {
                Some(&prev) => b.add(prev, dx),
                None => dx,
            };
            adjoint.insert(x, total);
        }
    }
    wrt.iter()
        .map(|w| match adjoint.get(w) {
            Some(&g) => g,
            None => {
                let s = b.shape(*w);
                b.constant(0.0, &s)
            }
        })
        .collect()
}

/// The forward graph plus `grad:<param>` outputs for every parameter (for checks and
/// tests; training uses [`training_step`]).
pub fn with_gradients(forward: &Graph) -> Graph {
    let loss = forward.output("loss").expect("forward graph has a loss output");
    let params: Vec<(ValueId, String)> = forward
        .args(ArgKind::Param)
        .map(|(v, n, _)| (v, n.to_string()))
        .collect();
    let mut b = Builder::extend(forward.clone());
    b.graph.name = format!("{}_grad", forward.name);
    let ids: Vec<ValueId> = params.iter().map(|(v, _)| *v).collect();
    let grads = gradients(&mut b, loss, &ids);
    for ((_, name), g) in params.iter().zip(grads) {
        b.output(Role::Gradient(name.clone()).output_name(), g);
    }
    crate::ir::dce::eliminate_dead_code(&b.finish())
}

/// Forward, backward and optimizer update as one graph; its signature is the forward
/// step's outputs, then the new value of every parameter and of its optimizer state.
pub fn training_step(forward_step: &Step, opt: &Optimizer) -> Step {
    let forward = &forward_step.graph;
    let loss = forward.output("loss").expect("forward graph has a loss output");
    let params: Vec<(ValueId, String)> = forward
        .args(ArgKind::Param)
        .map(|(v, n, _)| (v, n.to_string()))
        .collect();
    let mut b = Builder::extend(forward.clone());
    b.graph.name = "train_step".to_string();
    let ids: Vec<ValueId> = params.iter().map(|(v, _)| *v).collect();
    let grads = gradients(&mut b, loss, &ids);
    let step = step_arg(&mut b);
    let mut roles: Vec<Role> = forward_step.signature.outputs.iter().map(|(_, r)| r.clone()).collect();
    for ((p, name), g) in params.iter().zip(grads) {
        roles.extend(optimizer::update(&mut b, opt, name, *p, g, step));
    }
    let graph = crate::ir::dce::eliminate_dead_code(&b.finish());
    let signature = Signature::new(&graph, roles);
    Step { graph, signature }
}

/// Forward and backward: the forward step's outputs, then `grad:<param>` (role
/// [`Role::Gradient`]) for every parameter, in the forward graph's parameter order.
pub fn gradient_step(forward_step: &Step) -> Step {
    let graph = with_gradients(&forward_step.graph);
    let mut roles: Vec<Role> = forward_step.signature.outputs.iter().map(|(_, r)| r.clone()).collect();
    roles.extend(
        forward_step
            .signature
            .params
            .iter()
            .map(|(name, _)| Role::Gradient(name.clone())),
    );
    let signature = Signature::new(&graph, roles);
    Step { graph, signature }
}

/// The optimizer update alone: for every parameter of `forward_step`, its value, its
/// optimizer state and its gradient (an input named `grad:<param>`, what
/// [`gradient_step`] outputs) in; the new parameter and state out, as in
/// [`training_step`].
pub fn update_step(forward_step: &Step, opt: &Optimizer) -> Step {
    let mut b = Builder::new("update_step");
    let step = b.arg(ArgKind::Input, STEP, crate::ir::Type::i32([]));
    let mut roles = Vec::new();
    for (name, ty) in &forward_step.signature.params {
        let p = b.arg(ArgKind::Param, name, ty.clone());
        let g = b.arg(ArgKind::Input, Role::Gradient(name.clone()).output_name(), ty.clone());
        roles.extend(optimizer::update(&mut b, opt, name, p, g, step));
    }
    let graph = crate::ir::dce::eliminate_dead_code(&b.finish());
    let signature = Signature::new(&graph, roles);
    Step { graph, signature }
}

/// The `@step` scalar (1-based step count), shared with dropout if the forward pass has it.
fn step_arg(b: &mut Builder) -> ValueId {
    match b.graph.arg(ArgKind::Input, STEP) {
        Some(v) => v,
        None => b.arg(ArgKind::Input, STEP, crate::ir::Type::i32([])),
    }
}
