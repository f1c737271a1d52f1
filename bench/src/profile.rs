//! `--profile`: where a training step's time goes. Times each kernel of a session's
//! training step on its own and prints a table, slowest first. `--compare VAR`: the
//! step compiled with a compiler switch unset and set, alternated in one process.
//!
//! In: a JIT session and one batch. Out: the table on stdout (and, with `--kernels FILE`,
//! the kernel listing as `mpc compile FILE --emit kernels` prints it, so the `k` numbers
//! can be looked up). Same e-graph optimization, scheduling, Cranelift code and thread
//! split (`jit::splits`) as the JIT executor; buffers are allocated separately instead of
//! in one arena, and a clock runs around each kernel.

use crate::timing::{median, p10};
use mpc_compiler::pipeline;
use mpc_compiler::pipeline::JitProgram;
use mpc_compiler::schedule::{self, BufKind, KernelBody, Program};
use mpc_compiler::signature::{POSITIONS, SEED, STEP};
use mpc_runtime::backend::jit::splits;
use mpc_runtime::backend::pool::Pool;
use mpc_runtime::data::Tensor;
use mpc_runtime::session::Session;
use std::path::Path;
use std::time::Instant;

/// What the JIT session runs: the training (or evaluation) step, before the e-graph.
fn step_graph(session: &Session, eval: bool) -> &mpc_compiler::ir::Graph {
    if eval {
        &session.compiled.eval
    } else {
        &session.compiled.train_step
    }
}

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
    let step = step_graph(session, eval);
    let (program, jit) = pipeline::for_cpu(step)?;
    if let Some(path) = kernels_out {
        std::fs::write(path, schedule::print_program(&program)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let pool = Pool::new(threads);
    let mut memory = Memory::new(&program, session, batch, threads)?;
    let n = program.kernels.len();
    let mut times = vec![Vec::with_capacity(reps); n];
    let mut whole = Vec::with_capacity(reps);
    // As the executor does during a step: workers spin between kernels instead of
    // sleeping, so a kernel's time holds no wake-up.
    let _awake = pool.hold();
    let mut each = vec![0.0; n];
    for rep in 0..reps + 20 {
        let all = run_once(&program, &jit, &mut memory, &pool, threads, &mut each);
        if rep >= 20 {
            for (t, &us) in times.iter_mut().zip(&each) {
                t.push(us);
            }
            whole.push(all);
        }
    }
    memory.check()?;
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
            KernelBody::Attention(a) => (
                format!("attention {}x[{}x{}x{}]", a.items(), a.queries, a.keys, a.depth),
                label(a.out.buf),
            ),
        };
        println!(
            "{k:>4} {us:>9.1} {:>5.1}%  {:<8} {kind:<22} {writes}",
            100.0 * us / total,
            if split { threads.to_string() } else { "1".into() }
        );
    }
    Ok(())
}

/// Every buffer of a program, allocated at its full length, arguments filled from the
/// batch and the session's variables, and one error slot per thread.
struct Memory {
    _storage: Vec<Vec<[u8; 64]>>,
    ptrs: Vec<*mut u8>,
    errors: Vec<[i32; 2]>,
}

impl Memory {
    fn new(
        program: &Program,
        session: &mut Session,
        batch: &[(String, Tensor)],
        threads: usize,
    ) -> Result<Memory, String> {
        let (seed, step) = ([session.seed as i32], [1i32]);
        let vars = session.variables()?;
        let mut storage = Vec::new();
        let mut ptrs = Vec::new();
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
        Ok(Memory {
            _storage: storage,
            ptrs,
            errors: vec![[0i32; 2]; threads],
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.errors.iter().any(|e| e[0] != 0) {
            return Err("a bounds check failed while profiling".into());
        }
        Ok(())
    }
}

/// Runs every kernel of `program` once, as the executor splits them; `each` receives
/// each kernel's microseconds. Returns the whole run's milliseconds.
fn run_once(
    program: &Program,
    jit: &JitProgram,
    memory: &mut Memory,
    pool: &Pool,
    threads: usize,
    each: &mut [f64],
) -> f64 {
    // The buffers' pointers, then the run-time sizes' (none: the programs profiled here
    // have static sizes), gathered into each kernel's table.
    let ptrs: Vec<usize> = memory.ptrs.iter().map(|&p| p as usize).chain([0]).collect();
    let mut tables = Vec::new();
    jit.fill_tables(&ptrs, &mut tables);
    let errs = memory.errors.as_mut_ptr() as usize;
    let t_all = Instant::now();
    for (k, kernel) in program.kernels.iter().enumerate() {
        let f = jit.fns[k];
        let bufs = tables[jit.table_start(k)..].as_ptr() as usize;
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
        each[k] = t.elapsed().as_secs_f64() * 1e6;
    }
    t_all.elapsed().as_secs_f64() * 1e3
}

/// `--compare VAR`: the step compiled with the compiler switch `VAR` unset (A) and set
/// to 1 (B), run alternately in this one process, `reps` times each, so that the
/// machine's slow phases hit both sides alike. Prints each side's median and 10th
/// percentile of the whole step, and the ratio.
pub fn compare(
    session: &mut Session,
    batch: &[(String, Tensor)],
    threads: usize,
    reps: usize,
    var: &str,
    eval: bool,
) -> Result<(), String> {
    let step = step_graph(session, eval);
    // SAFETY (set_var/remove_var): the bench is one thread here; no pool exists yet.
    unsafe { std::env::remove_var(var) };
    let a = pipeline::for_cpu(step)?;
    unsafe { std::env::set_var(var, "1") };
    let b = pipeline::for_cpu(step)?;
    unsafe { std::env::remove_var(var) };
    let pool = Pool::new(threads);
    let mut mem_a = Memory::new(&a.0, session, batch, threads)?;
    let mut mem_b = Memory::new(&b.0, session, batch, threads)?;
    let _awake = pool.hold();
    let (mut each_a, mut each_b) = (vec![0.0; a.0.kernels.len()], vec![0.0; b.0.kernels.len()]);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut ka = vec![Vec::with_capacity(reps); a.0.kernels.len()];
    let mut kb = vec![Vec::with_capacity(reps); b.0.kernels.len()];
    for rep in 0..reps + 20 {
        let x = run_once(&a.0, &a.1, &mut mem_a, &pool, threads, &mut each_a);
        let y = run_once(&b.0, &b.1, &mut mem_b, &pool, threads, &mut each_b);
        if rep >= 20 {
            ta.push(x);
            tb.push(y);
            for (k, &us) in ka.iter_mut().zip(&each_a).chain(kb.iter_mut().zip(&each_b)) {
                k.push(us);
            }
        }
    }
    mem_a.check()?;
    mem_b.check()?;
    let ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| y / x).collect();
    println!(
        "{var}: A (unset) median {:.3} ms p10 {:.3} | B (=1) median {:.3} ms p10 {:.3} | B/A median of pairs {:.3}",
        median(ta.clone()),
        p10(ta),
        median(tb.clone()),
        p10(tb),
        median(ratios)
    );
    // The kernels that differ most: each side's slowest, by median.
    let slowest = |times: Vec<Vec<f64>>| {
        let mut m: Vec<(usize, f64)> = times.into_iter().map(median).enumerate().collect();
        m.sort_by(|x, y| y.1.total_cmp(&x.1));
        m.truncate(8);
        m.iter()
            .map(|(k, us)| format!("k{k} {us:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  A slowest kernels (us): {}", slowest(ka));
    println!("  B slowest kernels (us): {}", slowest(kb));
    Ok(())
}
