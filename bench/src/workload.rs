//! The benchmarked models and their seeded data: what the mpc side and the Python peers
//! (`bench/models_torch.py`, `bench/models_jax.py`) train on.
//!
//! In: a [`Workload`] and the batch size and count. Out: the model's source and a
//! [`Dataset`] whose batches are rows `[b i, b (i + 1))` (full-batch for the graph), and
//! [`write_columns`], the `.npy` files of the run directory the peers read.
//!
//! - `text`: `examples/text_classifier.mp` (B=64, T=32, vocab 10000, Adam), data from the
//!   seeded synthetic `TokenTask` (`tokens.npy` i32 [N, 32], `y.npy` i32 [N]).
//! - `fusion`: `examples/fusion.mp` (B=32, text i32[B,16] vocab 5000, image
//!   f32[B,3,32,32], audio f32[B,50,40], 3 classes): seeded uniform tokens, N(0,1) image
//!   and audio, uniform labels (`text.npy`, `image.npy`, `audio.npy`, `y.npy`).
//! - `graph`: `examples/graph.mp` widened (N=2000, E=10000, F=32, 64 hidden units, 4
//!   classes, inlined below), full batch: seeded uniform random directed edges
//!   (`g.edges.npy` i32 [2, E]: sources, destinations), x N(0,1) (`x.npy` f32 [N, 32]),
//!   uniform labels (`y.npy` i32 [N]).
//! - `transformer`: `examples/transformer.mp` as shipped (B=64, L=16, D=64, 4 heads, 5
//!   classes) on its default data, the language-id words (the first `batches` x 64
//!   training words: `chars.npy`, `bigrams.npy` i32 [R, 16], `y.npy` i32 [R]).
//! - `gat`: `examples/gat.mp` at N=2000, E=10000, F=32 (the `--dim` override of the
//!   example, the graph benchmark's size) on its default data there, mpc's seeded
//!   stochastic block model: half the nodes labeled (-1 elsewhere), full batch
//!   (`g.edges.npy`, `x.npy`, `y.npy`). The example's `self_loops` adds N loops: 12,000
//!   edges per layer.
//! - `gat-karate`: `examples/gat.mp` as shipped on the karate club (34 nodes, 156 edges +
//!   34 loops, 8 labeled): microseconds of work, so mostly per-step overhead.
//! - `gnn-nonlinear`: a 2-layer GNN whose messages are nonlinear in both ends,
//!   `tanh(linear(concat(src, dst), 32))`, max then sum aggregation (N=3000, E=15000,
//!   F=16, 32 hidden units, 4 classes, inlined below), full batch: seeded uniform random
//!   directed edges, x N(0,1), uniform labels on the even nodes and -1 (no label) on the
//!   odd ones (`g.edges.npy`, `x.npy`, `y.npy`).

use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize::DimValues;
use mpc_compiler::CheckedModel;
use mpc_runtime::data::defaults::default_dataset;
use mpc_runtime::data::synthetic::TokenTask;
use mpc_runtime::data::{npy, Dataset, Tensor};
use std::path::Path;

/// The seed of every workload's data (the model's initial weights use `MODEL_SEED`).
pub const DATA_SEED: u64 = 7;
pub const MODEL_SEED: u64 = 42;

/// The fusion model, as the example ships it. (Until 2b7fe63 the checker lowered round
/// 2's `t += e` as `t0 + e`, the round-0 value; the peers implement the documented
/// synchronous rule, so the initial-loss check would catch a regression.)
const FUSION: &str = include_str!("../../examples/fusion.mp");

const TEXT: &str = include_str!("../../examples/text_classifier.mp");

/// The character Transformer and the two-layer GAT, compiled from the example files
/// themselves (the GAT at other sizes through `--dim`-style overrides, `Workload::dims`).
const TRANSFORMER: &str = include_str!("../../examples/transformer.mp");
const GAT: &str = include_str!("../../examples/gat.mp");

/// examples/graph.mp at N=2000, E=10000, F=32, 64 hidden units, 4 classes.
const GRAPH: &str = "
model GraphSage {
  dims { N = 2000, E = 10000, F = 32 }
  graph g { nodes N, edges i32[2, E] }
  input x: f32[N, F]
  label y: i32[N] classes 4

  message m1(src, dst) = linear(src, 64)
  message m2(src, dst) = linear(src, 4)
  let h = relu(propagate(g, x, m1, aggregate: mean) + linear(x, 64))
  let logits = propagate(g, h, m2, aggregate: mean) + linear(h, 4)
  loss cross_entropy(logits, y)
}
train { optimizer adam(lr: 1e-2) epochs 50 seed 0 }
";

/// A GNN whose messages are nonlinear in both ends (issue 14): each edge's message is
/// `tanh(linear(concat(src, dst), 32))`, so it cannot be computed per node and gathered
/// (unlike `graph`'s `linear(src)`); layer 1 takes the max over incoming edges, layer 2
/// the sum.
const GNN_NONLINEAR: &str = "
model GnnNonlinear {
  dims { N = 3000, E = 15000, F = 16 }
  graph g { nodes N, edges i32[2, E] }
  input x: f32[N, F]
  label y: i32[N] classes 4

  message m1(src, dst) = tanh(linear(concat(src, dst), 32))
  message m2(src, dst) = tanh(linear(concat(src, dst), 32))
  let h1 = relu(propagate(g, x, m1, aggregate: max) + linear(x, 32))
  let h2 = relu(propagate(g, h1, m2, aggregate: sum) + linear(h1, 32))
  let logits = linear(h2, 4)
  loss cross_entropy(logits, y)
}
train { optimizer adam(lr: 1e-2) epochs 50 seed 0 }
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Text,
    Fusion,
    Graph,
    Transformer,
    Gat,
    GatKarate,
    GnnNonlinear,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Text => "text",
            Workload::Fusion => "fusion",
            Workload::Graph => "graph",
            Workload::Transformer => "transformer",
            Workload::Gat => "gat",
            Workload::GatKarate => "gat-karate",
            Workload::GnnNonlinear => "gnn-nonlinear",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Workload::Text => TEXT,
            Workload::Fusion => FUSION,
            Workload::Graph => GRAPH,
            Workload::Transformer => TRANSFORMER,
            Workload::Gat | Workload::GatKarate => GAT,
            Workload::GnnNonlinear => GNN_NONLINEAR,
        }
    }

    /// Dim values other than the source's defaults (`mpc --dim NAME=SIZE`).
    pub fn dims(self) -> Vec<(String, usize)> {
        match self {
            Workload::Gat => [("N", 2000), ("E", 10000), ("F", 32)]
                .iter()
                .map(|&(k, v)| (k.to_string(), v))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How many batches of data to generate when the caller does not say.
    pub fn default_batches(self) -> usize {
        match self {
            Workload::Text => 64,
            Workload::Fusion => 32,
            Workload::Graph | Workload::Gat | Workload::GatKarate | Workload::GnnNonlinear => 1,
            Workload::Transformer => 64,
        }
    }

    /// `batches` batches of `b` rows (a graph: its nodes, one full batch). The examples
    /// (`transformer`, `gat`, `gat-karate`) get the default data `mpc train` would train
    /// them on (their training part), for the model and dims compiled.
    pub fn data(self, model: &CheckedModel, dims: &DimValues, b: usize, batches: usize) -> Result<Dataset, String> {
        let mut rng = SplitMix64::new(DATA_SEED);
        Ok(match self {
            Workload::Text => TokenTask {
                rows: b * batches,
                seq_len: 32,
                vocab: 10000,
                classes: 2,
                keywords: 20,
                signal: 0.3,
                seed: DATA_SEED,
            }
            .generate("tokens", "y"),
            Workload::Fusion => {
                let r = b * batches;
                // Drawn in this order: text, image, audio, labels.
                let text = ints(&mut rng, r * 16, 5000);
                let image = normals(&mut rng, r * 3 * 32 * 32);
                let audio = normals(&mut rng, r * 50 * 40);
                let y = ints(&mut rng, r, 3);
                Dataset::new(
                    r,
                    vec![
                        ("text".into(), vec![16], text),
                        ("image".into(), vec![3, 32, 32], image),
                        ("audio".into(), vec![50, 40], audio),
                        ("y".into(), vec![], y),
                    ],
                )
            }
            Workload::Graph => {
                let (n, e) = (2000, 10000);
                // Drawn in this order: edges, features, labels.
                let edges = ints(&mut rng, 2 * e, n as u64);
                let x = normals(&mut rng, n * 32);
                let y = ints(&mut rng, n, 4);
                Dataset {
                    rows: n,
                    columns: vec![("x".into(), vec![32], x), ("y".into(), vec![], y)],
                    whole: vec![("g.edges".into(), vec![2, e], edges)],
                    full_batch: true,
                    graphs: None,
                }
            }
            Workload::GnnNonlinear => {
                let (n, e, f) = (3000, 15000, 16);
                // Drawn in this order: edges, features, labels; odd nodes unlabeled.
                let edges = ints(&mut rng, 2 * e, n as u64);
                let x = normals(&mut rng, n * f);
                let y = (0..n).map(|i| (rng.below(4) as i32, i % 2 == 0));
                let y = Tensor::Int(y.map(|(c, labeled)| if labeled { c } else { -1 }).collect());
                Dataset {
                    rows: n,
                    columns: vec![("x".into(), vec![f], x), ("y".into(), vec![], y)],
                    whole: vec![("g.edges".into(), vec![2, e], edges)],
                    full_batch: true,
                    graphs: None,
                }
            }
            Workload::Transformer => {
                let (train, _) = default_dataset(model, dims, DATA_SEED)?;
                let keep = (b * batches).min(train.rows);
                train.split_tail(train.rows - keep).0
            }
            Workload::Gat | Workload::GatKarate => default_dataset(model, dims, DATA_SEED)?.0,
        })
    }
}

fn ints(rng: &mut SplitMix64, n: usize, below: u64) -> Tensor {
    Tensor::Int((0..n).map(|_| rng.below(below) as i32).collect())
}

fn normals(rng: &mut SplitMix64, n: usize) -> Tensor {
    Tensor::Float((0..n).map(|_| rng.normal() as f32).collect())
}

/// The batches the schedule cycles through: rows `[b i, b (i + 1))` of `data`, or one
/// batch of every row for full-batch data.
pub fn batches(data: &Dataset, b: usize) -> Vec<Vec<(String, Tensor)>> {
    if data.full_batch {
        return vec![data.batch(&(0..data.rows).collect::<Vec<_>>())];
    }
    (0..data.rows / b)
        .map(|i| data.batch(&(i * b..(i + 1) * b).collect::<Vec<_>>()))
        .collect()
}

/// Writes every column of `data` as `dir/<name>.npy` (per-row columns with the row axis
/// first).
pub fn write_columns(dir: &Path, data: &Dataset) -> Result<(), String> {
    let per_row = data.columns.iter().map(|(name, shape, col)| {
        let mut full = vec![data.rows];
        full.extend(shape);
        (name, full, col)
    });
    let whole = data.whole.iter().map(|(name, shape, col)| (name, shape.clone(), col));
    for (name, shape, col) in per_row.chain(whole) {
        let bytes = match col {
            Tensor::Int(v) => npy::encode_i32(&shape, v),
            Tensor::Float(v) => npy::encode_f32(&shape, v),
        };
        let path = dir.join(format!("{name}.npy"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
