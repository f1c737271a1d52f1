//! Specialize: a checked model's symbolic sizes -> concrete sizes.
//!
//! In: a [`CheckedModel`] (shapes in dims such as `B`, `T`, `N`) and dim values from the
//! defaults, the command line, a checkpoint or the data. Out: [`DimValues`] (validated:
//! every dim has a positive value, overrides name real dims), the parameters with their
//! concrete shapes and initializers ([`params`], which init and checkpoints use), and
//! the guarantee of [`check_sizes`] that every tensor of the model fits in memory's
//! address space, so that no later element count overflows.

use crate::check::dim::Dim;
use crate::check::{CheckedModel, Init, TExpr, TKind};
use crate::diag::Diagnostic;
use std::collections::HashMap;

pub use crate::check::dim::show_shape;

/// Concrete values for the model's dims.
pub type DimValues = HashMap<String, usize>;

/// Dim values from the defaults, with `overrides` (name, value) applied; an error names
/// a dim that has no value or an override for an unknown dim.
pub fn dim_values(model: &CheckedModel, overrides: &[(String, usize)]) -> Result<DimValues, Vec<Diagnostic>> {
    let mut values = DimValues::new();
    let mut errors = Vec::new();
    for (name, v) in overrides {
        if !model.dims.iter().any(|d| &d.name == name) {
            let known: Vec<&str> = model.dims.iter().map(|d| d.name.as_str()).collect();
            let span = model.dims.first().map(|d| d.span).unwrap_or_default();
            errors.push(
                Diagnostic::new(
                    format!("--dim {name}={v}: the model has no dim '{name}'"),
                    span,
                    "dims are declared here",
                )
                .with_help(format!("its dims are: {}", known.join(", "))),
            );
        } else if *v == 0 {
            errors.push(Diagnostic::new(
                format!("--dim {name}=0: sizes must be positive"),
                Default::default(),
                "",
            ));
        }
        values.insert(name.clone(), *v);
    }
    for d in &model.dims {
        if !values.contains_key(&d.name) {
            match d.default {
                Some(v) => {
                    values.insert(d.name.clone(), v);
                }
                None => errors.push(
                    Diagnostic::new(
                        format!("dim '{}' has no value", d.name),
                        d.span,
                        "declared without a default",
                    )
                    .with_help(format!(
                        "give it a default (`{} = 32`) or a value (`--dim {}=32`)",
                        d.name, d.name
                    )),
                ),
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// Evaluates a symbolic shape; dims are validated by [`dim_values`], so a failure here
/// is an overflow of an absurd size.
pub fn concrete(shape: &[Dim], dims: &DimValues) -> Result<Vec<usize>, String> {
    shape
        .iter()
        .map(|d| {
            d.eval(dims)
                .ok_or_else(|| format!("size {d} is too large with these dim values (it overflows)"))
        })
        .collect()
}

/// A parameter with its concrete shape and initializer.
#[derive(Clone, Debug, PartialEq)]
pub struct ConcreteParam {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: ConcreteInit,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConcreteInit {
    Normal { std: f64 },
    Uniform { bound: f64 },
    Constant { value: f64 },
}

pub fn params(model: &CheckedModel, dims: &DimValues) -> Result<Vec<ConcreteParam>, String> {
    model
        .params
        .iter()
        .map(|p| {
            let shape = concrete(&p.shape, dims)?;
            let init = match &p.init {
                Init::Normal { std } => ConcreteInit::Normal { std: *std },
                Init::Constant { value } => ConcreteInit::Constant { value: *value },
                Init::XavierUniform { fan_in, fan_out } => {
                    let fans = concrete(&[fan_in.clone(), fan_out.clone()], dims)?;
                    ConcreteInit::Uniform {
                        bound: (6.0 / (fans[0] + fans[1]).max(1) as f64).sqrt(),
                    }
                }
                Init::UniformFanIn { fan_in } => {
                    let n = concrete(std::slice::from_ref(fan_in), dims)?[0].max(1);
                    ConcreteInit::Uniform {
                        bound: 1.0 / (n as f64).sqrt(),
                    }
                }
            };
            Ok(ConcreteParam {
                name: p.name.clone(),
                shape,
                init,
            })
        })
        .collect()
}

/// The most elements one tensor may have: its f32 bytes must be addressable.
pub const MAX_ELEMENTS: usize = (isize::MAX as usize) / 4;

/// Checks that every value of the model, with these dims, has a size that can be
/// counted and stored. Lowering and autodiff only create tensors the size of some
/// model value, so after this no element count they compute can overflow.
pub fn check_sizes(model: &CheckedModel, dims: &DimValues) -> Result<(), String> {
    fn walk(t: &TExpr, dims: &DimValues) -> Result<(), String> {
        let shape = concrete(&t.ty.shape, dims)?;
        let fits = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_some_and(|n| n <= MAX_ELEMENTS);
        if !fits {
            let sym: Vec<String> = t.ty.shape.iter().map(|d| d.to_string()).collect();
            let values: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            return Err(format!(
                "a value of shape [{}] = [{}] has too many elements to store (more than {MAX_ELEMENTS})",
                sym.join(", "),
                values.join(", ")
            ));
        }
        match &t.kind {
            TKind::Input(_) | TKind::Binding(_) | TKind::Scalar(_) | TKind::Param(_) => Ok(()),
            TKind::Arith(_, a, b) => walk(a, dims).and_then(|_| walk(b, dims)),
            TKind::Neg(x)
            | TKind::Activation(_, x)
            | TKind::LeakyRelu { x, .. }
            | TKind::Reshape(x)
            | TKind::Dropout { x, .. }
            | TKind::Reduce { x, .. }
            | TKind::Softmax { x, .. }
            | TKind::Linear { x, .. }
            | TKind::LayerNorm { x, .. }
            | TKind::PositionEmbed { x, .. } => walk(x, dims),
            TKind::Embed { tokens, .. } => walk(tokens, dims),
            TKind::MaskedMean { x, .. } => walk(x, dims),
            // The scores of every pair of positions, [B, H, T, T], and their products
            // with the values, B*T*T*D elements, exist while the step runs.
            TKind::SelfAttention { x, .. } => {
                let [b, t, d] = &x.ty.shape[..] else {
                    return walk(x, dims);
                };
                walk(
                    &TExpr {
                        kind: TKind::Scalar(0.0),
                        ty: crate::check::SymType {
                            dtype: crate::ir::DType::F32,
                            shape: vec![b.clone(), t.clone(), t.clone(), d.clone()],
                        },
                    },
                    dims,
                )?;
                walk(x, dims)
            }
            TKind::Concat { xs, .. } => xs.iter().try_for_each(|x| walk(x, dims)),
            TKind::CrossEntropy { logits: a, labels: b } | TKind::Mse { pred: a, target: b } => {
                walk(a, dims).and_then(|_| walk(b, dims))
            }
            TKind::EdgeGather { x, .. }
            | TKind::Aggregate { messages: x, .. }
            | TKind::Readout { x, .. }
            | TKind::Patches { x, .. } => walk(x, dims),
            TKind::SoftmaxAggregate { messages, scores, .. } => walk(messages, dims).and_then(|_| walk(scores, dims)),
            TKind::Attention { xs, .. } => xs.iter().try_for_each(|x| walk(x, dims)),
        }
    }
    for input in &model.inputs {
        walk(
            &TExpr {
                kind: TKind::Input(input.name.clone()),
                ty: input.ty.clone(),
            },
            dims,
        )?;
    }
    for p in &model.params {
        walk(
            &TExpr {
                kind: TKind::Scalar(0.0),
                ty: crate::check::SymType {
                    dtype: crate::ir::DType::F32,
                    shape: p.shape.clone(),
                },
            },
            dims,
        )?;
    }
    for (_, t) in &model.bindings {
        walk(t, dims)?;
    }
    walk(&model.loss, dims)?;
    model.prediction.as_ref().map_or(Ok(()), |p| walk(p, dims))
}

/// The dim values for batches of `rows` rows: `dims` with the model's batch dim set to
/// `rows` (the last partial batch of an epoch runs a step specialized this way).
pub fn with_batch_rows(model: &CheckedModel, dims: &DimValues, rows: usize) -> Result<DimValues, String> {
    model.batch_dim.as_ref().ok_or("the model has no batch dim")?;
    let name = batch_dim_name(model)
        .ok_or("the batch dim is not a plain dim name, so a partial batch cannot be compiled")?
        .to_string();
    let mut overrides: Vec<(String, usize)> = dims.iter().map(|(k, v)| (k.clone(), *v)).collect();
    overrides.retain(|(k, _)| *k != name);
    overrides.push((name, rows));
    dim_values(model, &overrides).map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))
}

/// The name of the model's batch dim (the label's first axis), if it is a named dim.
pub fn batch_dim_name(model: &CheckedModel) -> Option<&str> {
    let b = model.batch_dim.as_ref()?;
    model
        .dims
        .iter()
        .find(|d| &Dim::named(&d.name) == b)
        .map(|d| d.name.as_str())
}
