//! Optimizer updates as IR, so that one compiled function runs a whole training step.
//!
//! In: a parameter `p`, its gradient `g`, the `@step` count `t` (1-based) and the
//! optimizer's hyper-parameters. Out: the new parameter and state values as step outputs,
//! and their [`Role`]s.
//! The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`), so results can be
//! compared with it step by step:
//!
//! - SGD:   `buf = momentum*buf + g` (no state when momentum is 0), `p -= lr*buf`
//! - Adam:  `m = b1*m + (1-b1)*g`, `v = b2*v + (1-b2)*g^2`,
//!   `p -= (lr/(1-b1^t)) * m / (sqrt(v) * (1/sqrt(1-b2^t)) + eps)` (as `torch.optim.Adam`
//!   arranges it: one sqrt and one division per element)
//! - AdamW: `p -= lr*wd*p` first (decoupled decay), then the Adam step.

use crate::ir::{ArgKind, Builder, Type, ValueId};
use crate::signature::Role;

#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd {
        lr: f64,
        momentum: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    AdamW {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

impl Optimizer {
    /// Optimizer state slots per parameter, in order.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            Optimizer::Sgd { .. } => &["momentum"],
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => &["adam.m", "adam.v"],
        }
    }

    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } | Optimizer::AdamW { lr, .. } => *lr,
        }
    }

    pub fn set_lr(&mut self, new: f64) {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } | Optimizer::AdamW { lr, .. } => *lr = new,
        }
    }
}

/// The state argument name of `slot` for parameter `param`.
pub fn state_name(slot: &str, param: &str) -> String {
    format!("{slot}:{param}")
}

/// Appends the update of parameter `p` (called `name`) with gradient `g`; returns the
/// roles of the outputs it added, in order.
pub fn update(b: &mut Builder, opt: &Optimizer, name: &str, p: ValueId, g: ValueId, step: ValueId) -> Vec<Role> {
    let mut roles = Vec::new();
    let shape = b.shape(p);
    let state = |b: &mut Builder, slot: &str| b.arg(ArgKind::State, state_name(slot, name), Type::f32(shape.clone()));
    let new_p = match *opt {
        Optimizer::Sgd { lr, momentum } => {
            let direction = if momentum == 0.0 {
                g
            } else {
                let buf = state(b, "momentum");
                let decayed = b.scale(buf, momentum);
                let new_buf = b.add(decayed, g);
                output(b, &mut roles, Role::NewState(state_name("momentum", name)), new_buf);
                new_buf
            };
            let delta = b.scale(direction, lr);
            b.sub(p, delta)
        }
        Optimizer::Adam { lr, beta1, beta2, eps } => {
            let (m, v) = (state(b, "adam.m"), state(b, "adam.v"));
            adam(b, &mut roles, name, p, g, step, m, v, [lr, beta1, beta2, eps])
        }
        Optimizer::AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let (m, v) = (state(b, "adam.m"), state(b, "adam.v"));
            let decay = b.scale(p, lr * weight_decay);
            let decayed = b.sub(p, decay);
            adam(b, &mut roles, name, decayed, g, step, m, v, [lr, beta1, beta2, eps])
        }
    };
    output(b, &mut roles, Role::NewParam(name.to_string()), new_p);
    roles
}

/// Makes `v` a step output with `role` (named after it).
fn output(b: &mut Builder, roles: &mut Vec<Role>, role: Role, v: ValueId) {
    b.output(role.output_name(), v);
    roles.push(role);
}

/// `1 - beta^t` as a scalar, from the i32 step count: `1 - exp(t * ln beta)`.
fn bias_correction(b: &mut Builder, step: ValueId, beta: f64) -> ValueId {
    let t = b.convert(step);
    let t_ln_beta = b.scale(t, beta.ln());
    let power = b.exp(t_ln_beta);
    let one = b.scalar(1.0);
    b.sub(one, power)
}

#[allow(clippy::too_many_arguments)]
fn adam(
    b: &mut Builder,
    roles: &mut Vec<Role>,
    name: &str,
    p: ValueId,
    g: ValueId,
    step: ValueId,
    m: ValueId,
    v: ValueId,
    [lr, beta1, beta2, eps]: [f64; 4],
) -> ValueId {
    let shape = b.shape(p);
    // m' = b1 m + (1 - b1) g
    let m_keep = b.scale(m, beta1);
    let m_new_part = b.scale(g, 1.0 - beta1);
    let m_new = b.add(m_keep, m_new_part);
    // v' = b2 v + (1 - b2) g^2
    let g2 = b.mul(g, g);
    let v_keep = b.scale(v, beta2);
    let v_new_part = b.scale(g2, 1.0 - beta2);
    let v_new = b.add(v_keep, v_new_part);
    // p' = p - (lr/c1) * m' / (sqrt(v') / sqrt(c2) + eps), PyTorch's arrangement: the
    // bias corrections are scalars, so each element costs one sqrt and one division
    // (the update is a memory-bound kernel only if its divisions are few), and
    // dividing by sqrt(c2) is multiplying by its reciprocal, computed once.
    let c1 = bias_correction(b, step, beta1);
    let c2 = bias_correction(b, step, beta2);
    let lr_s = b.scalar(lr);
    let step_size = b.div(lr_s, c1);
    let root_c2 = b.sqrt(c2);
    let one = b.scalar(1.0);
    let inv_root_c2 = b.div(one, root_c2);
    let root_v = b.sqrt(v_new);
    let inv_b = b.broadcast(inv_root_c2, &shape, &[]);
    let root = b.mul(root_v, inv_b);
    let eps_b = b.constant(eps, &shape);
    let denom = b.add(root, eps_b);
    let ratio = b.div(m_new, denom);
    let step_b = b.broadcast(step_size, &shape, &[]);
    let delta = b.mul(ratio, step_b);
    output(b, roles, Role::NewState(state_name("adam.m", name)), m_new);
    output(b, roles, Role::NewState(state_name("adam.v", name)), v_new);
    b.sub(p, delta)
}
