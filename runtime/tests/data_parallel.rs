//! Data-parallel training without MPI: K shard sessions in one process, their gradient
//! buffers summed in rank order as the MPI collective sums them, against one session
//! on the whole batch. The text classifier has dropout, so equal losses also show that
//! each shard draws its rows' masks of the whole batch.

use mpc_compiler::pipeline::{compile, compile_with, Options};
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::backend::Backend;
use mpc_runtime::data::Tensor;
use mpc_runtime::parallel::{shard, shard_rows, sum_in_rank_order};
use mpc_runtime::session::Session;

const MODEL: &str = include_str!("../../examples/text_classifier.mp");
const T: usize = 6;
const SEED: u64 = 7;

fn dims(b: usize) -> Vec<(String, usize)> {
    vec![("B".to_string(), b), ("T".to_string(), T)]
}

/// Seeded rows: token ids below 50, labels 0 or 1.
fn rows(n: usize) -> (Vec<i32>, Vec<i32>) {
    let mut rng = SplitMix64::new(11);
    let tokens = (0..n * T).map(|_| rng.below(50) as i32).collect();
    let labels = (0..n).map(|_| rng.below(2) as i32).collect();
    (tokens, labels)
}

fn batch((tokens, labels): &(Vec<i32>, Vec<i32>), order: &[usize]) -> Vec<(String, Tensor)> {
    let t: Vec<i32> = order
        .iter()
        .flat_map(|&r| tokens[r * T..(r + 1) * T].to_vec())
        .collect();
    let y: Vec<i32> = order.iter().map(|&r| labels[r]).collect();
    vec![("tokens".into(), Tensor::Int(t)), ("y".into(), Tensor::Int(y))]
}

const JIT: Backend = Backend::Jit { threads: 1 };

/// Trains the batches `orders` on `ranks` simulated ranks; returns each step's loss and
/// rank 0's final parameters (checked equal on every rank).
fn train_sharded(ranks: usize, b: usize, data: &(Vec<i32>, Vec<i32>), orders: &[Vec<usize>]) -> (Vec<f64>, Vec<f32>) {
    let rows = shard_rows(b, ranks);
    let mut sessions: Vec<Session> = (0..ranks)
        .map(|r| {
            let options = Options {
                dims: dims(rows),
                first_row: r * rows,
                ..Options::default()
            };
            let c = compile_with(MODEL, &options).unwrap_or_else(|e| panic!("{e:?}"));
            Session::data_parallel(c, SEED, JIT).unwrap()
        })
        .collect();
    let layout = sessions[0].gradient_layout(ranks);
    let mut losses = Vec::new();
    for order in orders {
        let mut all = Vec::new();
        for (r, s) in sessions.iter_mut().enumerate() {
            let mine = shard(order, r, rows);
            let share = mine.len() as f64 / order.len() as f64;
            let mut buf = Vec::new();
            match mine.is_empty() {
                true => layout.empty(false, &mut buf),
                false => s.shard_gradients(&batch(data, mine), share, &layout, &mut buf).unwrap(),
            }
            all.extend(buf);
        }
        let mut summed = vec![0.0; layout.len];
        sum_in_rank_order(&all, ranks, &mut summed);
        let metrics: Vec<_> = sessions
            .iter_mut()
            .map(|s| s.apply_gradients(&summed, &layout).unwrap())
            .collect();
        assert_eq!(metrics[0].rows, order.len());
        losses.push(metrics[0].loss);
    }
    let mut params: Vec<Vec<f32>> = sessions.iter_mut().map(|s| flat(s.params().unwrap())).collect();
    assert!(
        params.iter().all(|p| p == &params[0]),
        "ranks hold different parameters"
    );
    (losses, params.swap_remove(0))
}

fn flat(params: &std::collections::BTreeMap<String, Vec<f32>>) -> Vec<f32> {
    params.values().flatten().copied().collect()
}

fn train_whole(b: usize, data: &(Vec<i32>, Vec<i32>), orders: &[Vec<usize>]) -> (Vec<f64>, Vec<f32>) {
    let c = compile(MODEL, &dims(b)).unwrap_or_else(|e| panic!("{e:?}"));
    let mut s = Session::with_backend(c, SEED, JIT).unwrap();
    let losses = orders
        .iter()
        .map(|o| s.train_step(&batch(data, o)).unwrap().loss)
        .collect();
    (losses, flat(s.params().unwrap()))
}

/// Full batches of 8 rows, then a partial one of 5 (3 ranks: blocks of 3, 3, 2, and of
/// 3, 2, 0 for the partial batch).
fn orders() -> Vec<Vec<usize>> {
    let mut rng = SplitMix64::new(3);
    let mut orders: Vec<Vec<usize>> = (0..9)
        .map(|_| (0..8).map(|_| rng.below(40) as usize).collect())
        .collect();
    orders.push(vec![1, 5, 9, 13, 17]);
    orders
}

#[test]
fn shards_train_as_one_process_on_the_whole_batch() {
    let data = rows(40);
    let orders = orders();
    let (whole_losses, whole_params) = train_whole(8, &data, &orders);
    for ranks in [2, 3] {
        let (losses, params) = train_sharded(ranks, 8, &data, &orders);
        for (step, (a, b)) in losses.iter().zip(&whole_losses).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{ranks} ranks, step {}: loss {a} against {b} in one process",
                step + 1
            );
        }
        let worst = params
            .iter()
            .zip(&whole_params)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{ranks} ranks: parameters differ by up to {worst}");
        eprintln!("{ranks} ranks: largest parameter difference {worst:e}");
    }
}

#[test]
fn two_sharded_runs_give_the_same_bits() {
    let data = rows(40);
    let orders = orders();
    let a = train_sharded(2, 8, &data, &orders);
    let b = train_sharded(2, 8, &data, &orders);
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
}
