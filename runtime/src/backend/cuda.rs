//! The CUDA engine: steps taken through `pipeline::for_ptx` (optimize, schedule, PTX),
//! loaded and launched through cudarc on one stream.
//!
//! In: steps (the session's training and evaluation steps), batches, and the session's
//! variables. Out: loss and predictions per step; the parameters and optimizer state live
//! on the device across steps.
//!
//! - [`probe`] checks for the driver *before* any cudarc call that could panic (cudarc
//!   panics when `libcuda.so` is missing): `--device cuda` without a driver is one error.
//! - Parameters and optimizer state are *resident*: uploaded once (and again only when the
//!   session's host vector for a name is replaced, e.g. after loading a checkpoint), then
//!   a training step's outputs whose role is a new parameter or state value are swapped
//!   with them (no copy). The host is refreshed on request ([`Engine::sync`], which the
//!   session calls before its variables are read). Edits of a host vector in place are
//!   not seen: replace the vector instead.
//! - Every other buffer (inputs, temporaries, outputs) is allocated once per compiled
//!   step and reused; a step uploads the batch, launches every kernel and reads back the
//!   bounds-check word, the loss and the predictions.
//! - `MPC_CUDA_PROFILE=1` times every launch and prints the costliest kernels at the end
//!   ([`super::cuda_profile`]).

use super::cuda_profile::{descriptions, Profile};
use super::{lookup, read_outputs, Engine, Outputs, StepKey, Variables};
use mpc_compiler::ir::DType;
use mpc_compiler::pipeline;
use mpc_compiler::pipeline::Launch;
use mpc_compiler::schedule::{BufKind, Program};
use mpc_compiler::signature::{Role, Step};
use mpc_compiler::tensor::{Tensor, TensorRef};
use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

/// Checks that a CUDA driver and device `ordinal` exist, without panicking.
pub fn probe(ordinal: usize) -> Result<(), String> {
    // SAFETY: only tries to open the library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver found (libcuda.so could not be loaded)".into());
    }
    let count = std::panic::catch_unwind(CudaContext::device_count)
        .map_err(|_| "the CUDA driver could not be initialized".to_string())?
        .map_err(|e| format!("the CUDA driver could not be initialized: {e}"))?;
    if ordinal >= count.max(0) as usize {
        return Err(format!("no CUDA device {ordinal} (the driver reports {count})"));
    }
    Ok(())
}

fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> String + '_ {
    move |e| format!("CUDA: {what}: {e}")
}

/// A step's name in the profile: its kind and batch rows.
fn step_name(key: StepKey) -> String {
    format!("{:?}/{}", key.kind, key.rows).to_lowercase()
}

/// Device memory is 32-bit words: every tensor element is an f32 or an i32, and only
/// the kernels care which. Host tensors are viewed as words for the copies.
type DevBuf = CudaSlice<u32>;

fn words<'a>(t: TensorRef<'a>) -> &'a [u32] {
    // SAFETY: f32, i32 and u32 have the same size and alignment, and every bit pattern
    // is a valid u32.
    match t {
        TensorRef::Float(v) => unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u32, v.len()) },
        TensorRef::Int(v) => unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u32, v.len()) },
    }
}

fn words_mut(v: &mut [f32]) -> &mut [u32] {
    // SAFETY: as in `words`, and every u32 bit pattern is a valid f32.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u32, v.len()) }
}

fn floats(v: Vec<u32>) -> Vec<f32> {
    v.into_iter().map(f32::from_bits).collect()
}

/// One compiled step: its kernels and its own device buffers.
struct CudaExecutable {
    step: Step,
    program: Program,
    launches: Vec<Launch>,
    funcs: Vec<CudaFunction>,
    /// Per buffer: its memory, unless it is a resident parameter or state argument.
    own: Vec<Option<DevBuf>>,
    err: CudaSlice<i32>,
}

/// The CUDA engine: a device with a session's resident variables and compiled steps.
pub struct Cuda {
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    /// Parameters and optimizer state by argument name.
    resident: HashMap<String, DevBuf>,
    /// The host vector (pointer, length) each resident buffer was last synced with.
    host_ids: HashMap<String, (usize, usize)>,
    /// The device holds newer variables than the host.
    host_stale: bool,
    compiled: HashMap<StepKey, CudaExecutable>,
    profile: Option<Profile>,
}

impl Cuda {
    /// Opens device `ordinal` (after [`probe`]).
    pub fn new(ordinal: usize) -> Result<Cuda, String> {
        probe(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("opening the device"))?;
        // One stream: no cross-stream events needed.
        // SAFETY: every buffer is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(Cuda {
            stream,
            profile: Profile::from_env(&ctx),
            ctx,
            resident: HashMap::new(),
            host_ids: HashMap::new(),
            host_stale: false,
            compiled: HashMap::new(),
        })
    }

    /// The device's name, e.g. "NVIDIA H100".
    pub fn name(&self) -> String {
        self.ctx.name().unwrap_or_else(|_| "CUDA device".into())
    }
}

impl Engine for Cuda {
    fn prepare(&mut self, key: StepKey, step: &Step) -> Result<(), String> {
        if self.compiled.contains_key(&key) {
            return Ok(());
        }
        let (program, ptx) = pipeline::for_ptx(step)?;
        if let Some(profile) = self.profile.as_mut() {
            profile.describe(&step_name(key), descriptions(&ptx.text, ptx.launches.len()));
        }
        let module = self
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx.text))
            .map_err(cuda_err("loading the PTX module"))?;
        let funcs = ptx
            .launches
            .iter()
            .map(|l| module.load_function(&l.name).map_err(cuda_err("finding a kernel")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut own = Vec::with_capacity(program.buffers.len());
        for buf in &program.buffers {
            let resident = matches!(&buf.kind, BufKind::Arg(n) if step.signature.is_variable(n));
            own.push(match resident {
                true => None,
                false => Some(
                    self.stream
                        .alloc_zeros(buf.len.max(1))
                        .map_err(cuda_err("allocating"))?,
                ),
            });
        }
        let err = self.stream.alloc_zeros(2).map_err(cuda_err("allocating"))?;
        let exe = CudaExecutable {
            step: step.clone(),
            program,
            launches: ptx.launches,
            funcs,
            own,
            err,
        };
        self.compiled.insert(key, exe);
        Ok(())
    }

    fn run(&mut self, key: StepKey, inputs: &[(&str, TensorRef)], vars: &mut Variables) -> Result<Outputs, String> {
        let Cuda {
            stream,
            resident,
            host_ids,
            host_stale,
            compiled,
            profile,
            ..
        } = self;
        let exe = compiled.get_mut(&key).ok_or("the step was not prepared")?;
        // Arguments: resident ones uploaded when the host replaced them, the rest per step.
        for (b, buf) in exe.program.buffers.iter().enumerate() {
            let BufKind::Arg(name) = &buf.kind else { continue };
            let host = lookup(inputs, vars, name).ok_or_else(|| format!("missing argument '{name}'"))?;
            let dtype_ok = matches!(
                (host, buf.dtype),
                (TensorRef::Float(_), DType::F32) | (TensorRef::Int(_), DType::I32)
            );
            if !dtype_ok || host.len() != buf.len {
                return Err(format!(
                    "argument '{name}': expected {}[{}], found {} elements",
                    buf.dtype,
                    buf.len,
                    host.len()
                ));
            }
            match exe.own[b].as_mut() {
                Some(dev) => stream.memcpy_htod(words(host), dev).map_err(cuda_err("uploading"))?,
                None => {
                    let TensorRef::Float(v) = host else { continue };
                    let id = (v.as_ptr() as usize, v.len());
                    if host_ids.get(name) != Some(&id) || !resident.contains_key(name) {
                        let dev = stream.clone_htod(words(host)).map_err(cuda_err("uploading"))?;
                        resident.insert(name.clone(), dev);
                        host_ids.insert(name.clone(), id);
                    }
                }
            }
        }
        // Launch every kernel in order.
        for (k, launch) in exe.launches.iter().enumerate() {
            let mut args = stream.launch_builder(&exe.funcs[k]);
            for &b in &launch.params {
                match (&exe.own[b], &exe.program.buffers[b].kind) {
                    (Some(d), _) => args.arg(d),
                    (None, BufKind::Arg(name)) => args.arg(resident.get(name).expect("uploaded above")),
                    (None, _) => return Err(format!("buffer b{b} has no device memory")),
                };
            }
            args.arg(&exe.err);
            let cfg = LaunchConfig {
                grid_dim: launch.grid,
                block_dim: launch.block,
                shared_mem_bytes: 0,
            };
            let start = profile
                .as_ref()
                .map(|p| p.mark(stream))
                .transpose()
                .map_err(cuda_err("profiling"))?;
            // SAFETY: the kernel's parameters are the buffers `launch.params` names, in
            // order, then `err`; every buffer has the length the program was scheduled
            // with, and the PTX never indexes outside it (indices from data are checked).
            unsafe { args.launch(cfg) }.map_err(cuda_err("launching a kernel"))?;
            if let (Some(p), Some(start)) = (profile.as_mut(), start) {
                let end = p.mark(stream).map_err(cuda_err("profiling"))?;
                p.launched(&step_name(key), k, start, end);
            }
        }
        if let Some(p) = profile.as_mut() {
            p.collect().map_err(cuda_err("profiling"))?;
        }
        let err = stream
            .clone_dtoh(&exe.err)
            .map_err(cuda_err("reading the error word"))?;
        if err[0] != 0 {
            stream
                .memset_zeros(&mut exe.err)
                .map_err(cuda_err("clearing the error word"))?;
            let check = exe
                .program
                .checks
                .get(err[0] as usize - 1)
                .ok_or("a kernel reported an unknown check")?;
            return Err(format!(
                "%{} ({}): index {} is outside [0, {})",
                check.node, check.op, err[1], check.bound
            ));
        }
        // Loss and predictions come back; new variables replace the resident ones.
        let mut host_outputs = HashMap::new();
        for (name, role) in &exe.step.signature.outputs {
            let Some(b) = exe.program.outputs.iter().find(|(n, _)| n == name).map(|&(_, b)| b) else {
                continue;
            };
            let Some(out) = exe.own[b].as_mut() else { continue };
            match role {
                Role::Loss | Role::Predictions => {
                    let v = stream.clone_dtoh(out).map_err(cuda_err("downloading"))?;
                    host_outputs.insert(name.clone(), Tensor::Float(floats(v)));
                }
                Role::NewParam(target) | Role::NewState(target) => {
                    if let Some(res) = resident.get_mut(target) {
                        if res.len() == out.len() {
                            std::mem::swap(res, out);
                            *host_stale = true;
                        }
                    }
                }
                Role::Gradient(_) => {}
            }
        }
        Ok(read_outputs(&exe.step, |n| host_outputs.get(n)))
    }

    /// Copies the resident variables into `vars` if the device has newer values.
    fn sync(&mut self, vars: &mut Variables) -> Result<(), String> {
        if !self.host_stale {
            return Ok(());
        }
        for (name, dev) in &self.resident {
            let Some(host) = vars.params.get_mut(name).or_else(|| vars.state.get_mut(name)) else {
                continue;
            };
            if host.len() != dev.len() {
                continue;
            }
            self.stream
                .memcpy_dtoh(dev, words_mut(host))
                .map_err(cuda_err("downloading"))?;
            self.host_ids.insert(name.clone(), (host.as_ptr() as usize, host.len()));
        }
        self.stream.synchronize().map_err(cuda_err("synchronizing"))?;
        self.host_stale = false;
        Ok(())
    }
}
