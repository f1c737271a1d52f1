//! Per-kernel GPU times for the CUDA engine, when `MPC_CUDA_PROFILE` is set.
//!
//! In: a pair of CUDA events around each kernel launch of every step the engine runs.
//! Out: when the engine is dropped (the end of `mpc train` or `mpc run`), a table on
//! stderr of the kernels that took the most GPU time in all: step, kernel, launches,
//! mean microseconds, share of the total, and the kernel's one-line description from
//! the PTX (`// kN: loop [..]: threads over [..], each thread loops [..]`).
//!
//! Timing each launch between events serializes nothing the stream did not serialize
//! already (one stream), but the event records add a little host time per launch: read
//! the shares, not the step time, from a profiled run.

use cudarc::driver::{sys::CUevent_flags, CudaContext, CudaEvent, CudaStream, DriverError};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows of the table.
const TOP: usize = 25;

/// The kernel descriptions of a PTX module, by entry index (`// kN: ...` lines).
pub fn descriptions(ptx: &str, kernels: usize) -> Vec<String> {
    let mut out = vec![String::new(); kernels];
    for line in ptx.lines() {
        let Some(rest) = line.strip_prefix("// k") else {
            continue;
        };
        let Some((n, what)) = rest.split_once(": ") else {
            continue;
        };
        if let Some(slot) = n.parse::<usize>().ok().and_then(|k| out.get_mut(k)) {
            *slot = what.to_string();
        }
    }
    out
}

#[derive(Default)]
struct Total {
    launches: u64,
    ms: f64,
    what: String,
}

/// Events of the step in flight and the totals so far.
pub struct Profile {
    ctx: Arc<CudaContext>,
    pending: Vec<(String, usize, CudaEvent, CudaEvent)>,
    totals: HashMap<(String, usize), Total>,
    descriptions: HashMap<String, Vec<String>>,
}

impl Profile {
    /// A profile if `MPC_CUDA_PROFILE` is set.
    pub fn from_env(ctx: &Arc<CudaContext>) -> Option<Profile> {
        std::env::var_os("MPC_CUDA_PROFILE").map(|_| Profile {
            ctx: ctx.clone(),
            pending: Vec::new(),
            totals: HashMap::new(),
            descriptions: HashMap::new(),
        })
    }

    pub fn describe(&mut self, step: &str, descriptions: Vec<String>) {
        self.descriptions.insert(step.to_string(), descriptions);
    }

    /// An event recorded on `stream` now.
    pub fn mark(&self, stream: &CudaStream) -> Result<CudaEvent, DriverError> {
        let e = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        e.record(stream)?;
        Ok(e)
    }

    pub fn launched(&mut self, step: &str, kernel: usize, start: CudaEvent, end: CudaEvent) {
        self.pending.push((step.to_string(), kernel, start, end));
    }

    /// Adds the pending launches' times (after the step's last kernel was recorded).
    pub fn collect(&mut self) -> Result<(), DriverError> {
        for (step, k, start, end) in self.pending.drain(..) {
            let ms = start.elapsed_ms(&end)? as f64;
            let t = self.totals.entry((step.clone(), k)).or_default();
            t.launches += 1;
            t.ms += ms;
            if t.what.is_empty() {
                t.what = self
                    .descriptions
                    .get(&step)
                    .and_then(|d| d.get(k))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let all: f64 = self.totals.values().map(|t| t.ms).sum();
        let mut rows: Vec<(&(String, usize), &Total)> = self.totals.iter().collect();
        rows.sort_by(|a, b| b.1.ms.total_cmp(&a.1.ms));
        eprintln!("GPU time by kernel ({:.3} ms in all, the top {TOP}):", all);
        eprintln!(
            "{:<10} {:>5} {:>9} {:>10} {:>6}  what",
            "step", "k", "launches", "mean us", "share"
        );
        for ((step, k), t) in rows.into_iter().take(TOP) {
            eprintln!(
                "{:<10} {:>5} {:>9} {:>10.2} {:>5.1}%  {}",
                step,
                format!("k{k}"),
                t.launches,
                t.ms * 1e3 / t.launches as f64,
                100.0 * t.ms / all.max(1e-12),
                t.what
            );
        }
    }
}
