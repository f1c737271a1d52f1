//! `--profile`: where a training step's time goes. Times each kernel of a session's
//! training step on its own and prints a table, slowest first.
//!
//! In: a JIT session and one batch. Out: the table on stdout (and, with `--kernels FILE`,
//! the kernel listing as `mpc compile FILE --emit kernels` prints it, so the `k` numbers
//! can be looked up). Same e-graph optimization, scheduling, Cranelift code and thread
//! split (`jit::splits`) as the JIT executor; buffers are allocated separately instead of
//! in one arena, and a clock runs around each kernel.

use crate::timing::median;
use mpc_compiler::pipeline;
use mpc_compiler::schedule::{self, BufKind, KernelBody};
use mpc_compiler::signature::{POSITIONS, SEED, STEP};
use mpc_runtime::backend::jit::splits;
use mpc_runtime::backend::pool::Pool;
use mpc_runtime::data::Tensor;
use mpc_runtime::session::Session;
use std::path::Path;
use std::time::Instant;

/// A buffer for the profiler: 64-byte aligned, zeroed.
fn aligned(bytes: usize) -> Vec<[u8; 64]> {
    vec![[0u8; 64]; bytes.div_ceil(64).max(1)]
}

/// Times each kernel of the training step separately, `reps` times, and prints the
/// median per kernel, slowest first.
pub fn profile(
    session: &mut Session,
    batch: &[(String, Tensor)],
    threads: usize,
    reps: usize,
    kernels_out: Option<&Path>,
    eval: bool,
) -> Result<(), String> {
    // What the JIT session runs: the e-graph-optimized training (or evaluation) step.
    let step = if eval {
        &session.compiled.eval
    } else {
        &session.compiled.train_step
    };
    let (program, jit) = pipeline::for_cpu(step)?;
    if let Some(path) = kernels_out {
        std::fs::write(path, schedule::print_program(&program)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let pool = Pool::new(threads);
    let (seed, step) = ([session.seed as i32], [1i32]);
    let vars = session.variables()?.clone();
    let mut storage: Vec<Vec<[u8; 64]>> = Vec::new();
    let mut ptrs: Vec<*mut u8> = Vec::new();
    for buf in &program.buffers {
        let mut mem = aligned(buf.len * 4);
        if let BufKind::Arg(name) = &buf.kind {
            let src: Vec<u8> = match name.as_str() {
                SEED => seed.iter().flat_map(|v| v.to_le_bytes()).collect(),
                STEP => step.iter().flat_map(|v| v.to_le_bytes()).collect(),
                // 0..T, as the session fills it (`embed(positions(x), D)`, causal masks).
                POSITIONS => (0..buf.len as i32).flat_map(|v| v.to_le_bytes()).collect(),
                _ => match batch.iter().find(|(n, _)| n == name).map(|(_, c)| c) {
                    Some(Tensor::Int(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    Some(Tensor::Float(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    None => {
                        let v = vars
                            .get(name)
                            .ok_or_else(|| format!("no value for argument '{name}'"))?;
                        v.iter().flat_map(|x| x.to_le_bytes()).collect()
                    }
                },
            };
            if src.len() != buf.len * 4 {
                return Err(format!(
                    "argument '{name}': {} bytes, expected {}",
                    src.len(),
                    buf.len * 4
                ));
            }
            // SAFETY: `mem` holds at least `src.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), mem.as_mut_ptr() as *mut u8, src.len()) };
        }
        ptrs.push(mem.as_mut_ptr() as *mut u8);
        storage.push(mem);
    }
    let bufs = ptrs.as_ptr() as usize;
    let mut errors = vec![[0i32; 2]; threads];
    let errs = errors.as_mut_ptr() as usize;
    let n = program.kernels.len();
    let mut times = vec![Vec::with_capacity(reps); n];
    let mut whole = Vec::with_capacity(reps);
    // As the executor does during a step: workers spin between kernels instead of
    // sleeping, so a kernel's time holds no wake-up.
    let _awake = pool.hold();
    for rep in 0..reps + 20 {
        let t_all = Instant::now();
        for (k, kernel) in program.kernels.iter().enumerate() {
            let f = jit.fns[k];
            let range = kernel.range as i64;
            let t = Instant::now();
            if splits(kernel, threads) {
                pool.run(&|th: usize| {
                    let (lo, hi) = kernel.part(range as usize, th, threads);
                    let (lo, hi) = (lo as i64, hi as i64);
                    if lo < hi {
                        // SAFETY: every buffer is allocated at its full length; threads
                        // write disjoint parts; each has its own error slot.
                        unsafe {
                            f(
                                bufs as *const *mut u8,
                                lo,
                                hi,
                                (errs as *mut [i32; 2]).add(th) as *mut i32,
                            )
                        };
                    }
                });
            } else {
                // SAFETY: as above, one thread.
                unsafe { f(bufs as *const *mut u8, 0, range, errs as *mut i32) };
            }
            if rep >= 20 {
                times[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        if rep >= 20 {
            whole.push(t_all.elapsed().as_secs_f64() * 1e3);
        }
    }
    if errors.iter().any(|e| e[0] != 0) {
        return Err("a bounds check failed while profiling".into());
    }
    let label = |b: usize| -> String {
        let buf = &program.buffers[b];
        match &buf.kind {
            BufKind::Arg(n) | BufKind::Output(n) => n.clone(),
            BufKind::Temp => format!("%{}", buf.value),
        }
    };
    let mut rows: Vec<(usize, f64)> = times.into_iter().map(median).enumerate().collect();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "{} step, {threads} thread(s): whole program median {:.3} ms (kernel by kernel, {reps} runs); sum of kernel medians {:.3} ms",
        if eval { "eval" } else { "train" },
        median(whole),
        total / 1e3
    );
    println!(
        "{:>4} {:>9} {:>6}  {:<8} {:<22} writes",
        "k", "median us", "share", "threads", "kind"
    );
    for (k, us) in rows {
        let kernel = &program.kernels[k];
        let split = splits(kernel, threads);
        let (kind, writes) = match &kernel.body {
            KernelBody::MatMul(m) if m.batch.is_empty() => {
                (format!("matmul {}x{}x{}", m.m, m.k, m.n), label(m.out.buf))
            }
            KernelBody::MatMul(m) => (
                format!("matmul {}x[{}x{}x{}]", m.batches(), m.m, m.k, m.n),
                label(m.out.buf),
            ),
            KernelBody::Loop(l) => {
                let what = if l.scatter_rows.is_some() { "scatter" } else { "loop" };
                let mut outs: Vec<String> = l.stores.iter().map(|s| label(s.buf())).collect();
                outs.dedup();
                (format!("{what} {:?}", l.domain), outs.join(", "))
            }
            KernelBody::Segment(g) => (format!("segment {}x{}", g.rows, g.row_len), label(g.out)),
        };
        println!(
            "{k:>4} {us:>9.1} {:>5.1}%  {:<8} {kind:<22} {writes}",
            100.0 * us / total,
            if split { threads.to_string() } else { "1".into() }
        );
    }
    drop(storage);
    Ok(())
}
