//! The reference interpreter as an engine.
//!
//! In: steps as autodiff made them (not optimized: the interpreter is the oracle that
//! the optimizer and the other engines are tested against). Out: their outputs,
//! computed by `mpc_compiler::interp` in f32. Arguments are copied into the
//! interpreter's map every step; speed is not its job.

use super::{lookup, read_outputs, Engine, Outputs, StepKey, Variables};
use mpc_compiler::interp::{self, Args};
use mpc_compiler::signature::Step;
use mpc_compiler::tensor::{Tensor, TensorRef};
use std::collections::HashMap;

#[derive(Default)]
pub struct Interpreter {
    steps: HashMap<StepKey, Step>,
}

impl Engine for Interpreter {
    fn prepare(&mut self, key: StepKey, step: &Step) -> Result<(), String> {
        self.steps.entry(key).or_insert_with(|| step.clone());
        Ok(())
    }

    fn run(&mut self, key: StepKey, inputs: &[(&str, TensorRef)], vars: &mut Variables) -> Result<Outputs, String> {
        let step = self.steps.get(&key).ok_or("the step was not prepared")?;
        let sig = &step.signature;
        let mut args = Args::new();
        for (name, _) in sig.inputs.iter().chain(&sig.params).chain(&sig.state) {
            let value = match lookup(inputs, vars, name) {
                Some(TensorRef::Float(v)) => Tensor::Float(v.to_vec()),
                Some(TensorRef::Int(v)) => Tensor::Int(v.to_vec()),
                None => return Err(format!("missing argument '{name}'")),
            };
            args.insert(name.clone(), value);
        }
        let outputs: HashMap<String, Tensor> = interp::run(&step.graph, &args)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        for (name, role) in &sig.outputs {
            if let (Some(target), Some(Tensor::Float(v))) = (vars.target(role), outputs.get(name)) {
                target.clone_from(v);
            }
        }
        Ok(read_outputs(step, |n| outputs.get(n)))
    }
}
