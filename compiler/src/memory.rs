//! Memory: what training a compiled model needs, in bytes, known before anything is
//! allocated.
//!
//! In: a [`Compiled`] model and the kernel [`Program`]s of its training and evaluation
//! steps (`pipeline::memory` schedules them). Out: a [`Footprint`]: the bytes of the
//! parameters, the optimizer state, one batch of inputs, and each step's own buffers
//! (its outputs and the arena its temporaries share, as `schedule::plan` places them),
//! each part with the largest tensor behind it, named with the model's dims
//! (`parameter 'emb.weight' [V, 64] = [2000000000, 64]`) so that a budget error can say
//! which dim or input is responsible.
//!
//! The steps are scheduled as autodiff made them, not after e-graph optimization: the
//! footprint is then a fast, deterministic bound (the optimizer only removes work).
//! Sizes are `u128`: the sum of tensors that each fit in memory can still overflow `usize`.

use crate::check::dim::Dim;
use crate::ir::{ArgKind, DType, Graph};
use crate::pipeline::Compiled;
use crate::schedule::{plan::plan, BufKind, Program};
use crate::specialize::{show_shape, DimValues};

/// One part of the footprint and the largest tensor in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// `parameters`, `optimizer state`, `training step`, ...
    pub name: &'static str,
    pub bytes: u128,
    /// The largest tensor of the part, described for people, and its bytes.
    pub largest: Option<(String, u128)>,
}

/// What one training run holds at once (besides its data set): the session's
/// variables, one batch, and the buffers of the training and evaluation steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    pub parameters: Part,
    pub state: Part,
    pub batch: Part,
    pub train_step: Part,
    pub eval_step: Part,
}

impl Footprint {
    /// Sizes `compiled`'s variables and inputs from its training step, and each step's
    /// buffers from its scheduled program.
    pub fn new(compiled: &Compiled, train: &Program, eval: &Program) -> Footprint {
        let c = compiled;
        let arg_part = |name, kind, what: &'static str| {
            part(
                name,
                c.train_step.args(kind).map(|(_, arg, ty)| {
                    let symbolic = symbolic_shape(c, arg);
                    (
                        describe(what, arg, &ty.shape, symbolic, &c.dims),
                        bytes(ty.dtype, ty.numel()),
                    )
                }),
            )
        };
        Footprint {
            parameters: arg_part("parameters", ArgKind::Param, "parameter"),
            state: arg_part("optimizer state", ArgKind::State, "optimizer state"),
            batch: arg_part("one batch of inputs", ArgKind::Input, "input"),
            train_step: step_part("training step", train, c, &c.train_step),
            eval_step: step_part("evaluation step", eval, c, &c.eval),
        }
    }

    pub fn parts(&self) -> [&Part; 5] {
        [
            &self.parameters,
            &self.state,
            &self.batch,
            &self.train_step,
            &self.eval_step,
        ]
    }

    /// Everything together.
    pub fn total(&self) -> u128 {
        self.parts().iter().map(|p| p.bytes).sum()
    }
}

fn bytes(dtype: DType, elements: usize) -> u128 {
    let size = match dtype {
        DType::F32 | DType::I32 => 4,
    };
    size * elements as u128
}

fn part(name: &'static str, items: impl Iterator<Item = (String, u128)>) -> Part {
    let mut total = 0;
    let mut largest: Option<(String, u128)> = None;
    for (what, b) in items {
        total += b;
        if largest.as_ref().is_none_or(|(_, l)| b > *l) {
            largest = Some((what, b));
        }
    }
    Part {
        name,
        bytes: total,
        largest,
    }
}

/// The declared shape of a model input or parameter called `name` (optimizer state
/// `m:emb.weight` has its parameter's).
fn symbolic_shape<'a>(c: &'a Compiled, name: &str) -> Option<&'a [Dim]> {
    let name = name.split_once(':').map_or(name, |(_, param)| param);
    let input = c.model.inputs.iter().find(|i| i.name == name).map(|i| &i.ty.shape[..]);
    input.or_else(|| c.model.params.iter().find(|p| p.name == name).map(|p| &p.shape[..]))
}

/// `parameter 'emb.weight' [V, 64] = [2000000000, 64]`, or for a value without a
/// declared shape `a temporary [4000000000, 16] (B = 4000000000)`.
fn describe(what: &str, name: &str, shape: &[usize], symbolic: Option<&[Dim]>, dims: &DimValues) -> String {
    let concrete = format!(
        "[{}]",
        shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    );
    let label = if name.is_empty() {
        what.to_string()
    } else {
        format!("{what} '{name}'")
    };
    match symbolic.map(show_shape) {
        Some(sym) if sym != concrete => format!("{label} {sym} = {concrete}"),
        Some(_) => format!("{label} {concrete}"),
        None => {
            // Name the dims whose values the shape has: what the user can change.
            let mut named: Vec<(&String, &usize)> = dims.iter().filter(|(_, v)| **v > 1 && shape.contains(v)).collect();
            named.sort();
            let named: Vec<String> = named.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            if named.is_empty() {
                format!("{label} {concrete}")
            } else {
                format!("{label} {concrete} ({})", named.join(", "))
            }
        }
    }
}

/// A step's outputs plus its arena; the largest single buffer named.
fn step_part(name: &'static str, program: &Program, compiled: &Compiled, graph: &Graph) -> Part {
    let arena = plan(program).arena_bytes as u128;
    let mut p = part(
        name,
        program.buffers.iter().filter_map(|b| {
            let what = match &b.kind {
                BufKind::Arg(_) => return None,
                BufKind::Output(out) => format!("its output '{out}'"),
                BufKind::Temp => "a temporary".to_string(),
            };
            let shape = graph
                .nodes
                .get(b.value as usize)
                .map(|n| n.ty.shape.clone())
                .unwrap_or_else(|| vec![b.len]);
            Some((describe_value(&what, &shape, compiled), bytes(b.dtype, b.len)))
        }),
    );
    // Temporaries share the arena: count it, not their sum.
    let temps: u128 = program
        .buffers
        .iter()
        .filter(|b| b.kind == BufKind::Temp)
        .map(|b| bytes(b.dtype, b.len))
        .sum();
    p.bytes = p.bytes - temps + arena;
    p
}

/// A step's value of `shape`, tied to what the user declared: the parameter or input of
/// the same shape if there is one (a gradient, an Adam moment, an embedding lookup's
/// table), else the dims whose values the shape has.
fn describe_value(what: &str, shape: &[usize], c: &Compiled) -> String {
    let declared = c
        .train_step
        .args(ArgKind::Param)
        .chain(c.train_step.args(ArgKind::Input))
        .find(|(_, _, ty)| ty.shape == shape && ty.numel() > 1);
    match declared {
        Some((_, name, ty)) => {
            let kind = if c.model.params.iter().any(|p| p.name == name) {
                "parameter"
            } else {
                "input"
            };
            let like = describe(kind, name, &ty.shape, symbolic_shape(c, name), &c.dims);
            format!("{what} the size of {like}")
        }
        None => describe(what, "", shape, None, &c.dims),
    }
}

/// `1.50 GB`, `12.3 MB`, `640 B`: decimal units, as `free -h --si` and torchinfo print.
pub fn show_bytes(b: u128) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut x = b as f64 / 1000.0;
    let mut unit = 0;
    while x >= 1000.0 && unit + 1 < UNITS.len() {
        x /= 1000.0;
        unit += 1;
    }
    let digits = if x < 10.0 {
        2
    } else if x < 100.0 {
        1
    } else {
        0
    };
    format!("{x:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_free_and_torchinfo() {
        assert_eq!(show_bytes(640), "640 B");
        assert_eq!(show_bytes(2_586_120), "2.59 MB");
        assert_eq!(show_bytes(32_000_000_000), "32.0 GB");
        assert_eq!(show_bytes(512_000_000_000), "512 GB");
        assert_eq!(show_bytes(u128::from(u64::MAX)), "18447 PB");
    }
}
