//! A small persistent thread pool for kernel launches.
//!
//! `run(f)` calls `f(t)` for every thread number `t` in `0..threads` (the caller is
//! thread 0) and returns when all are done. While a [`Pool::hold`] guard lives (a step
//! is running), workers spin between jobs: a step launches its parallel kernels between
//! serial ones, and waking a sleeping thread costs tens of microseconds (more in a VM),
//! which made 2 threads slower than 1 on steps of many small kernels. Without a hold
//! they spin briefly, then sleep on a condition variable, so an idle pool (batch
//! assembly, evaluation on the host) costs no core.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    generation: AtomicUsize,
    job: Mutex<Option<JobPtr>>,
    wake: Condvar,
    remaining: AtomicUsize,
    shutdown: AtomicBool,
    /// Steps in progress ([`Pool::hold`]): workers keep spinning between jobs.
    holds: AtomicUsize,
    /// Workers waiting on `wake`, changed only under `job`'s lock: `run` skips the
    /// notification (a system call, a microsecond or more in a VM, per kernel) when
    /// every worker is spinning.
    sleepers: AtomicUsize,
}

#[derive(Clone, Copy)]
struct JobPtr(Job);
// The pointer is only dereferenced while `run` keeps the closure alive.
unsafe impl Send for JobPtr {}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Serializes `run` calls from several sessions sharing the pool.
    busy: Mutex<()>,
}

/// How long a worker keeps spinning after the last step released the pool (a few ms).
const IDLE_SPINS: usize = 200_000;

impl Pool {
    /// A pool of `threads` threads in all (at least 1; the caller counts as one).
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            job: Mutex::new(None),
            wake: Condvar::new(),
            remaining: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            holds: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
        });
        let workers = (1..threads)
            .map(|t| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("mpc-worker-{t}"))
                    .spawn(move || worker(&s, t))
                    .expect("spawning a worker thread")
            })
            .collect();
        Pool {
            shared,
            workers,
            threads,
            busy: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Keeps the workers awake (spinning between jobs) until the guard drops.
    pub fn hold(&self) -> Hold<'_> {
        self.shared.holds.fetch_add(1, Ordering::SeqCst);
        Hold(self)
    }

    /// Runs `f(t)` on every thread `t` and waits for all of them.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 {
            f(0);
            return;
        }
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY of the lifetime erasure: we wait below until every worker is done with it.
        let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        self.shared.remaining.store(self.threads - 1, Ordering::SeqCst);
        {
            let mut job = self.shared.job.lock().unwrap();
            *job = Some(JobPtr(ptr));
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
            if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
                self.shared.wake.notify_all();
            }
        }
        f(0);
        // Spin a little, then yield: on a loaded machine the worker may need this core.
        let mut spins = 0u32;
        while self.shared.remaining.load(Ordering::Acquire) != 0 {
            if spins < 2000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// While it lives, the pool's workers spin between jobs instead of sleeping.
pub struct Hold<'a>(&'a Pool);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.shared.holds.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker(s: &Shared, t: usize) {
    let mut seen = 0;
    // A new worker sleeps until the first job: the pool is made before the steps are
    // compiled, and spinning then took a core from the compiling threads (the
    // transformer's session: about 10 ms of `pause` on one of two cores).
    let mut ran = false;
    loop {
        // Spin while a step holds the pool, and IDLE_SPINS more after (the gap to the
        // next step, its batch's assembly, is shorter than a wake-up).
        let mut spins = 0usize;
        while ran && s.generation.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Relaxed) {
            std::hint::spin_loop();
            spins = if s.holds.load(Ordering::Relaxed) > 0 {
                0
            } else {
                spins + 1
            };
            if spins > IDLE_SPINS {
                break;
            }
        }
        let job = {
            let mut guard = s.job.lock().unwrap();
            while s.generation.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Acquire) {
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                guard = s.wake.wait(guard).unwrap();
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            seen = s.generation.load(Ordering::Acquire);
            *guard
        };
        if let Some(JobPtr(f)) = job {
            // SAFETY: `run` keeps the closure alive until `remaining` reaches zero.
            unsafe { (*f)(t) };
        }
        ran = true;
        s.remaining.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let _guard = self.shared.job.lock().unwrap();
            self.shared.shutdown.store(true, Ordering::SeqCst);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
