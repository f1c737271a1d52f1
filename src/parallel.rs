//! `mpirun -np K mpc train ...`: data-parallel training over MPI.
//!
//! In: the process's MPI world (when `mpirun` launched it and mpc was built with the
//! `mpi` feature) and a run set up on every rank. Out: training steps whose gradients
//! are summed over the ranks in a fixed order (`mpc_runtime::parallel`), and one
//! error line when any rank fails: every rank reaches the same collective calls in the
//! same order (the setup's agreement, each step's sum, each epoch's agreement), a
//! failing rank joins them with a failure flag, and the lowest failing rank's error is
//! the one printed, so no rank waits forever on one that stopped. A panic aborts the
//! whole job (`MPI_Abort`).
//!
//! Rank 0 speaks for the run (progress, `--json`, checkpoints, plots); the other ranks'
//! output is held (`output::hold`).

use crate::output;
use crate::run::Device;
use mpc_compiler::specialize;
use mpc_compiler::CheckedModel;
use mpc_runtime::data::Tensor;
use mpc_runtime::parallel::{shard, shard_rows, Collective, GradientLayout, Tail};
use mpc_runtime::session::{Metrics, Session};
use std::process::ExitCode;

/// The ranks of a data-parallel run and this rank's part of each batch.
pub struct Parallel {
    world: Box<dyn Collective>,
    /// Rows of a batch per rank.
    pub rows: usize,
    /// The gradient buffer, reused from step to step.
    buf: Vec<f32>,
}

/// The environment variables by which launchers tell a process its world size
/// (Open MPI, MPICH and Intel MPI's Hydra, Slurm's PMI2/PMIx).
const SIZE_VARIABLES: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"];

/// The world size a launcher gave this process, if any.
fn launched_ranks() -> Option<usize> {
    SIZE_VARIABLES.iter().find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// This process's MPI world when a launcher started it; `None` for a plain process.
pub fn world() -> Result<Option<Box<dyn Collective>>, ExitCode> {
    if launched_ranks().is_none() {
        return Ok(None);
    }
    mpi_world()
}

#[cfg(feature = "mpi")]
fn mpi_world() -> Result<Option<Box<dyn Collective>>, ExitCode> {
    match mpi_world::MpiWorld::new() {
        Some(w) => Ok(Some(Box::new(w))),
        None => {
            errln!("error: MPI could not be initialized (was it initialized twice?)");
            Err(ExitCode::FAILURE)
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn mpi_world() -> Result<Option<Box<dyn Collective>>, ExitCode> {
    match launched_ranks() {
        Some(k) if k > 1 => {
            errln!(
                "error: this mpc was built without MPI, so under mpirun each of the {k} ranks would train alone; \
                 build it with `cargo build --release --features mpi`"
            );
            Err(ExitCode::FAILURE)
        }
        _ => Ok(None),
    }
}

impl Parallel {
    /// Data-parallel training on `world` (its batch size set by [`Parallel::split_batches`]).
    pub fn new(world: Box<dyn Collective>) -> Parallel {
        if world.rank() > 0 {
            output::hold(world.rank());
        }
        Parallel {
            world,
            rows: 1,
            buf: Vec::new(),
        }
    }

    /// Splits `model`'s batches of `batch` rows over the ranks; refuses what cannot be
    /// split: one graph trained whole (every step holds all its nodes), a batch axis that
    /// is not a dim, a GPU (the all-reduce is on host memory).
    pub fn split_batches(&mut self, model: &CheckedModel, batch: usize, device: Device) -> Result<(), String> {
        let k = self.ranks();
        if device != Device::Cpu {
            return Err(format!(
                "data-parallel training over {k} ranks runs on the CPU; --device cuda under mpirun is not supported yet"
            ));
        }
        if let (Some(g), true) = (model.graphs.iter().find(|g| g.graphs.is_none()), k > 1) {
            return Err(format!(
                "model '{}' trains on every node of graph '{}' in every step (one full batch), which cannot be split \
                 over {k} ranks: run it without mpirun, or with -np 1",
                model.name, g.name
            ));
        }
        if specialize::batch_dim_name(model).is_none() && k > 1 {
            return Err(format!(
                "model '{}' has no batch dim to split over {k} ranks (its label's first axis must be a dim declared \
                 in dims)",
                model.name
            ));
        }
        self.rows = shard_rows(batch, k);
        Ok(())
    }

    pub fn rank(&self) -> usize {
        self.world.rank()
    }

    pub fn ranks(&self) -> usize {
        self.world.ranks()
    }

    /// Threads per rank by default: the machine's cores over the ranks that the
    /// launcher put on it (Open MPI's and MPICH's local size), at least one.
    pub fn threads_per_rank(&self) -> usize {
        let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        (mpc_runtime::backend::default_threads() / local.max(1)).max(1)
    }

    /// The row this rank's blocks start at.
    pub fn first_row(&self) -> usize {
        self.rank() * self.rows
    }

    /// This rank's rows of a batch.
    pub fn mine<'a>(&self, order: &'a [usize]) -> &'a [usize] {
        shard(order, self.rank(), self.rows)
    }

    /// Every rank's rows of a batch, rank by rank (to size a batch of graphs for all).
    pub fn shards<'a>(&self, order: &'a [usize]) -> impl Iterator<Item = &'a [usize]> + 'a {
        let rows = self.rows;
        (0..self.ranks()).map(move |r| shard(order, r, rows))
    }

    /// Every rank's `result` agreed on: `Ok` when all are, else `Err` on every rank, the
    /// lowest failing rank's error printed (the others' dropped). A rank that failed
    /// printed its error already (rank 0) or holds it (the others).
    pub fn agree<T>(&mut self, result: Result<T, ExitCode>) -> Result<T, ExitCode> {
        let failed = self.world.gather(result.is_err() as u64).map_err(mpi_error)?;
        match failed.iter().position(|&f| f != 0) {
            None => result,
            Some(first) => {
                if first == self.rank() {
                    output::release_held();
                } else {
                    output::drop_held();
                }
                Err(result.err().unwrap_or(ExitCode::FAILURE))
            }
        }
    }

    /// Every rank's `value` equal, else one error naming the first rank that differs
    /// and `what` (a fingerprint of the model, options and data).
    pub fn agree_on(&mut self, value: u64, what: &str) -> Result<(), ExitCode> {
        let values = self.world.gather(value).map_err(mpi_error)?;
        match values.iter().position(|&v| v != values[0]) {
            None => Ok(()),
            Some(r) => {
                output::drop_held();
                if self.rank() == 0 {
                    errln!("error: rank {r}'s {what} differ from rank 0's");
                }
                Err(ExitCode::FAILURE)
            }
        }
    }

    /// One training step of the batch `order`: this rank's rows (`batch`, `None` when
    /// it has none) through the gradient step, the ranks' gradients summed, the update;
    /// the batch's metrics. A rank whose step fails (`fail` prints its error) stops
    /// every rank.
    pub fn step(
        &mut self,
        session: &mut Session,
        layout: &GradientLayout,
        order: &[usize],
        batch: Option<&[(String, Tensor)]>,
        fail: impl Fn(&str) -> ExitCode,
    ) -> Result<Metrics, ExitCode> {
        let share = self.mine(order).len() as f64 / order.len().max(1) as f64;
        let mut failed_here = None;
        let mut buf = std::mem::take(&mut self.buf);
        match batch.map(|b| session.shard_gradients(b, share, layout, &mut buf)) {
            None => layout.empty(false, &mut buf),
            Some(Ok(())) => {}
            Some(Err(e)) => {
                failed_here = Some(fail(&e));
                layout.empty(true, &mut buf);
            }
        }
        let summed = self.world.sum(&mut buf).map_err(mpi_error);
        self.buf = buf;
        summed?;
        let buf = &self.buf;
        if buf[layout.at(Tail::Failed)] > 0.0 {
            // Some rank failed: all learn which, and stop.
            let status = failed_here.map_or(Ok(()), Err);
            return Err(self.agree(status).err().unwrap_or(ExitCode::FAILURE));
        }
        session.apply_gradients(buf, layout).map_err(|e| fail(&e))
    }
}

fn mpi_error(e: String) -> ExitCode {
    errln!("error: MPI: {e}");
    ExitCode::FAILURE
}

#[cfg(feature = "mpi")]
mod mpi_world {
    //! The [`Collective`] over MPI's world communicator (rsmpi).
    use mpc_runtime::parallel::{sum_in_rank_order, Collective};
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;

    pub struct MpiWorld {
        // Finalizes MPI when dropped, after the communicator.
        _universe: Universe,
        world: SimpleCommunicator,
        /// Scratch for the sum, reused: the chunks received, this rank's summed chunk.
        received: Vec<f32>,
        chunk: Vec<f32>,
    }

    impl MpiWorld {
        pub fn new() -> Option<MpiWorld> {
            let universe = mpi::initialize()?;
            let world = universe.world();
            // A panic on one rank must not leave the others waiting: abort the job.
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                mpi::topology::SimpleCommunicator::world().abort(101);
            }));
            Some(MpiWorld {
                _universe: universe,
                world,
                received: Vec::new(),
                chunk: Vec::new(),
            })
        }
    }

    impl Collective for MpiWorld {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn ranks(&self) -> usize {
            self.world.size() as usize
        }

        fn sum(&mut self, buf: &mut [f32]) -> Result<(), String> {
            let k = self.ranks();
            if !buf.len().is_multiple_of(k) {
                return Err(format!(
                    "a buffer of {} values does not split into {k} chunks",
                    buf.len()
                ));
            }
            let chunk = buf.len() / k;
            // Chunk j of every rank to rank j (reduce-scatter as an all-to-all), summed
            // in rank order there, then every summed chunk to every rank.
            self.received.resize(buf.len(), 0.0);
            self.chunk.resize(chunk, 0.0);
            self.world.all_to_all_into(&buf[..], &mut self.received[..]);
            sum_in_rank_order(&self.received, k, &mut self.chunk);
            self.world.all_gather_into(&self.chunk[..], buf);
            Ok(())
        }

        fn gather(&mut self, value: u64) -> Result<Vec<u64>, String> {
            let mut all = vec![0u64; self.ranks()];
            self.world.all_gather_into(&value, &mut all[..]);
            Ok(all)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Ranks as threads of one process (a `Collective` over a barrier), to check what
    //! MPI cannot be made to show on demand: a rank whose step fails mid-run stops
    //! every rank, and none waits forever.
    use super::*;
    use mpc_compiler::pipeline::{compile_with, Options};
    use mpc_runtime::parallel::sum_in_rank_order;
    use mpc_runtime::session::Backend;
    use std::sync::{mpsc, Arc, Barrier, Mutex};
    use std::time::Duration;

    struct Shared {
        barrier: Barrier,
        slots: Mutex<Vec<Vec<f32>>>,
        words: Mutex<Vec<u64>>,
    }

    struct ThreadRank {
        rank: usize,
        shared: Arc<Shared>,
    }

    impl Collective for ThreadRank {
        fn rank(&self) -> usize {
            self.rank
        }
        fn ranks(&self) -> usize {
            self.shared.words.lock().unwrap().len()
        }
        fn sum(&mut self, buf: &mut [f32]) -> Result<(), String> {
            self.shared.slots.lock().unwrap()[self.rank] = buf.to_vec();
            self.shared.barrier.wait();
            let all: Vec<f32> = self.shared.slots.lock().unwrap().concat();
            self.shared.barrier.wait();
            sum_in_rank_order(&all, self.ranks(), buf);
            Ok(())
        }
        fn gather(&mut self, value: u64) -> Result<Vec<u64>, String> {
            self.shared.words.lock().unwrap()[self.rank] = value;
            self.shared.barrier.wait();
            let all = self.shared.words.lock().unwrap().clone();
            self.shared.barrier.wait();
            Ok(all)
        }
    }

    const MODEL: &str = include_str!("../examples/text_classifier.mp");

    /// Rank `rank` of 2 trains two batches of 4 rows; rank 1's second batch holds a token
    /// id beyond the vocabulary (built in code: the loaders would refuse it).
    fn rank(rank: usize, shared: Arc<Shared>) -> Vec<Result<f64, ExitCode>> {
        let mut p = Parallel {
            world: Box::new(ThreadRank { rank, shared }),
            rows: 2,
            buf: Vec::new(),
        };
        let options = Options {
            dims: vec![("B".into(), 2), ("T".into(), 3)],
            first_row: p.first_row(),
            ..Options::default()
        };
        let compiled = compile_with(MODEL, &options).unwrap();
        let mut session = Session::data_parallel(compiled, 1, Backend::Jit { threads: 1 }).unwrap();
        let layout = session.gradient_layout(2);
        let order = [0, 1, 2, 3];
        (0..2)
            .map(|step| {
                let token = if step == 1 && rank == 1 { 10_000 } else { 7 };
                let batch = vec![
                    ("tokens".to_string(), Tensor::Int(vec![token; 6])),
                    ("y".to_string(), Tensor::Int(vec![1, 0])),
                ];
                p.step(&mut session, &layout, &order, Some(&batch), |_| ExitCode::from(3))
                    .map(|m| m.loss)
            })
            .collect()
    }

    #[test]
    fn a_rank_whose_step_fails_stops_every_rank() {
        let shared = Arc::new(Shared {
            barrier: Barrier::new(2),
            slots: Mutex::new(vec![Vec::new(); 2]),
            words: Mutex::new(vec![0; 2]),
        });
        let (send, receive) = mpsc::channel();
        for r in 0..2 {
            let (shared, send) = (shared.clone(), send.clone());
            std::thread::spawn(move || send.send((r, rank(r, shared))).unwrap());
        }
        let mut results = [None, None];
        for _ in 0..2 {
            let (r, steps) = receive
                .recv_timeout(Duration::from_secs(120))
                .expect("a rank is still waiting: it hangs");
            results[r] = Some(steps);
        }
        let [Some(rank0), Some(rank1)] = results else {
            unreachable!()
        };
        // The first step trains on both ranks, with the same loss.
        assert!(rank0[0].is_ok() && rank0[0] == rank1[0], "{rank0:?} {rank1:?}");
        // The second fails on rank 1 (its own error code) and stops rank 0 too.
        assert_eq!(rank1[1], Err(ExitCode::from(3)));
        assert!(rank0[1].is_err());
    }
}
