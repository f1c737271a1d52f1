//! The CUDA backend: graphs scheduled into kernels, rendered as PTX
//! (`mpc_compiler::codegen::ptx`), loaded and launched through cudarc on one stream.
//!
//! In: IR graphs (the session's training and evaluation steps), batches, and the
//! session's host parameters and optimizer state. Out: loss and predictions per step; the
//! parameters and state live on the device across steps.
//!
//! - [`probe`] checks for the driver *before* any cudarc call that could panic (cudarc
//!   panics when `libcuda.so` is missing): `--device cuda` without a driver is one error.
//! - Parameters and optimizer state are *resident*: uploaded once (and again only when the
//!   session's host vector for a name is replaced, e.g. after loading a checkpoint), then
//!   a training step's `param:*` / `state:*` outputs are swapped with them (no copy).
//!   The host maps are refreshed on request ([`Device::download`], which
//!   `Session::sync_host` calls before a checkpoint is written). Edits of a host vector
//!   in place are not seen: replace the vector instead.
//! - Every other buffer (inputs, temporaries, outputs) is allocated once per compiled
//!   step and reused; a step uploads the batch, launches every kernel and reads back the
//!   bounds-check word, the loss and the predictions.

use crate::data::Column;
use mpc_compiler::autodiff::{SEED, STEP};
use mpc_compiler::codegen::ptx::{self, Launch};
use mpc_compiler::ir::{DType, Graph};
use mpc_compiler::schedule::{self, BufKind, Program};
use std::collections::{BTreeMap, HashMap};
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

/// A borrowed host argument.
#[derive(Clone, Copy)]
enum Host<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

enum DevBuf {
    F32(CudaSlice<f32>),
    I32(CudaSlice<i32>),
}

/// One compiled graph: its kernels and its own device buffers.
struct CudaExecutable {
    program: Program,
    launches: Vec<Launch>,
    funcs: Vec<CudaFunction>,
    /// Per buffer: its memory, unless it is a resident parameter or state argument.
    own: Vec<Option<DevBuf>>,
    err: CudaSlice<i32>,
}

/// Which compiled step.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Train,
    Eval,
}

/// A CUDA device with a session's resident parameters and compiled steps.
pub struct Device {
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    /// Parameters and optimizer state by argument name.
    resident: HashMap<String, CudaSlice<f32>>,
    /// The host vector (pointer, length) each resident buffer was last synced with.
    host_ids: HashMap<String, (usize, usize)>,
    /// The device holds newer parameters than the host maps.
    host_stale: bool,
    compiled: HashMap<(Step, usize), CudaExecutable>,
}

impl Device {
    /// Opens device `ordinal` (after [`probe`]).
    pub fn new(ordinal: usize) -> Result<Device, String> {
        probe(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("opening the device"))?;
        // One stream: no cross-stream events needed.
        // SAFETY: every buffer is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(Device {
            stream,
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

    /// Compiles `graph` for (`step`, `rows`) unless done already.
    pub fn prepare(&mut self, step: Step, rows: usize, graph: &Graph) -> Result<(), String> {
        if self.compiled.contains_key(&(step, rows)) {
            return Ok(());
        }
        let program = schedule::schedule(graph);
        let ptx = ptx::emit(&program)?;
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
            let resident = matches!(&buf.kind, BufKind::Arg(n) if is_resident(graph, n));
            own.push(if resident {
                None
            } else {
                let len = buf.len.max(1);
                Some(match buf.dtype {
                    DType::F32 => DevBuf::F32(self.stream.alloc_zeros(len).map_err(cuda_err("allocating"))?),
                    DType::I32 => DevBuf::I32(self.stream.alloc_zeros(len).map_err(cuda_err("allocating"))?),
                })
            });
        }
        let err = self.stream.alloc_zeros(2).map_err(cuda_err("allocating"))?;
        self.compiled.insert(
            (step, rows),
            CudaExecutable {
                program,
                launches: ptx.launches,
                funcs,
                own,
                err,
            },
        );
        Ok(())
    }

    /// Runs a compiled step; returns the loss and the predictions. A training step's
    /// parameter and state outputs become the resident values.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        step: Step,
        rows: usize,
        graph: &Graph,
        batch: &[(String, Column)],
        params: &BTreeMap<String, Vec<f32>>,
        state: &BTreeMap<String, Vec<f32>>,
        seed: i32,
        step_no: i32,
    ) -> Result<(f64, Option<Vec<f32>>), String> {
        self.prepare(step, rows, graph)?;
        let Device {
            stream,
            resident,
            host_ids,
            host_stale,
            compiled,
            ..
        } = self;
        let exe = compiled.get_mut(&(step, rows)).expect("prepared");
        // Arguments: resident ones uploaded when the host replaced them, the rest per step.
        for (b, buf) in exe.program.buffers.iter().enumerate() {
            let BufKind::Arg(name) = &buf.kind else { continue };
            if exe.own[b].is_none() {
                let host = params
                    .get(name)
                    .or_else(|| state.get(name))
                    .ok_or_else(|| format!("missing argument '{name}'"))?;
                if host.len() != buf.len {
                    return Err(format!(
                        "argument '{name}': expected {} elements, found {}",
                        buf.len,
                        host.len()
                    ));
                }
                let id = (host.as_ptr() as usize, host.len());
                if host_ids.get(name) != Some(&id) || !resident.contains_key(name) {
                    let dev = stream.clone_htod(host.as_slice()).map_err(cuda_err("uploading"))?;
                    resident.insert(name.clone(), dev);
                    host_ids.insert(name.clone(), id);
                }
                continue;
            }
            let (seed_v, step_v) = ([seed], [step_no]);
            let host = if name == SEED {
                Host::I32(&seed_v)
            } else if name == STEP {
                Host::I32(&step_v)
            } else {
                match batch.iter().find(|(n, _)| n == name) {
                    Some((_, Column::F32(v))) => Host::F32(v),
                    Some((_, Column::I32(v))) => Host::I32(v),
                    None => return Err(format!("missing argument '{name}'")),
                }
            };
            match (exe.own[b].as_mut(), host) {
                (Some(DevBuf::F32(d)), Host::F32(v)) if v.len() == buf.len => {
                    stream.memcpy_htod(v, d).map_err(cuda_err("uploading"))?
                }
                (Some(DevBuf::I32(d)), Host::I32(v)) if v.len() == buf.len => {
                    stream.memcpy_htod(v, d).map_err(cuda_err("uploading"))?
                }
                _ => return Err(format!("argument '{name}': expected {}[{}]", buf.dtype, buf.len)),
            }
        }
        // Launch every kernel in order.
        for (k, launch) in exe.launches.iter().enumerate() {
            let mut args = stream.launch_builder(&exe.funcs[k]);
            for &b in &launch.params {
                match (&exe.own[b], &exe.program.buffers[b].kind) {
                    (Some(DevBuf::F32(d)), _) => args.arg(d),
                    (Some(DevBuf::I32(d)), _) => args.arg(d),
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
            // SAFETY: the kernel's parameters are the buffers `launch.params` names, in
            // order, then `err`; every buffer has the length the program was scheduled
            // with, and the PTX never indexes outside it (indices from data are checked).
            unsafe { args.launch(cfg) }.map_err(cuda_err("launching a kernel"))?;
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
        let (mut loss, mut predictions) = (f64::NAN, None);
        for (name, b) in &exe.program.outputs {
            if name == "loss" || name == "predictions" {
                if let Some(DevBuf::F32(d)) = &exe.own[*b] {
                    let v = stream.clone_dtoh(d).map_err(cuda_err("downloading"))?;
                    if name == "loss" {
                        loss = v.first().copied().map_or(f64::NAN, f64::from);
                    } else {
                        predictions = Some(v);
                    }
                }
                continue;
            }
            let target = name.strip_prefix("param:").or_else(|| name.strip_prefix("state:"));
            if let (Some(target), Some(DevBuf::F32(out))) = (target, exe.own[*b].as_mut()) {
                if let Some(res) = resident.get_mut(target) {
                    if res.len() == out.len() {
                        std::mem::swap(res, out);
                        *host_stale = true;
                    }
                }
            }
        }
        Ok((loss, predictions))
    }

    /// Copies the resident parameters and state into the host maps if the device has
    /// newer values.
    pub fn download(
        &mut self,
        params: &mut BTreeMap<String, Vec<f32>>,
        state: &mut BTreeMap<String, Vec<f32>>,
    ) -> Result<(), String> {
        if !self.host_stale {
            return Ok(());
        }
        for (name, dev) in &self.resident {
            let Some(host) = params.get_mut(name).or_else(|| state.get_mut(name)) else {
                continue;
            };
            if host.len() != dev.len() {
                continue;
            }
            self.stream
                .memcpy_dtoh(dev, host.as_mut_slice())
                .map_err(cuda_err("downloading"))?;
            self.host_ids.insert(name.clone(), (host.as_ptr() as usize, host.len()));
        }
        self.stream.synchronize().map_err(cuda_err("synchronizing"))?;
        self.host_stale = false;
        Ok(())
    }
}

/// Parameters and optimizer state stay on the device; everything else is per step.
fn is_resident(graph: &Graph, name: &str) -> bool {
    use mpc_compiler::ir::ArgKind;
    graph.arg(ArgKind::Param, name).is_some() || graph.arg(ArgKind::State, name).is_some()
}
