//! Seeded synthetic datasets whose labels depend on the inputs, for tests, benchmarks
//! and examples that ship no data. The same parameters and seed give the same data.
//!
//! - [`TokenTask`], token classification: every class owns a small set of keyword ids;
//!   a sequence of class `c` has each position drawn from `c`'s keywords with
//!   probability `signal`, otherwise uniformly from the vocabulary (which includes every
//!   class's keywords, so single tokens are noisy evidence and the model must weigh the
//!   whole sequence).
//! - [`FusionTask`], multimodal classification that needs two modalities: text, image
//!   and audio each carry a latent class of their own, recoverable from that modality
//!   only; the label is `(text class + image class) mod classes`, so one modality alone
//!   says nothing about it (chance), and audio is a distractor.
//! - [`GraphTask`] / [`graph`], node classification on a stochastic block model:
//!   communities are the classes, most edges stay inside a community, and node features
//!   are a noisy community signature, so a node's neighbours say more than its own
//!   features.

use super::{Dataset, Tensor};
use mpc_compiler::seeded::SplitMix64;

pub struct TokenTask {
    pub rows: usize,
    pub seq_len: usize,
    pub vocab: usize,
    pub classes: usize,
    /// Keyword ids per class.
    pub keywords: usize,
    /// Probability that a position is one of its class's keywords.
    pub signal: f64,
    pub seed: u64,
}

impl TokenTask {
    /// Columns named `tokens` (`i32[seq_len]`) and `labels` (i32[]) unless renamed.
    pub fn generate(&self, tokens_name: &str, labels_name: &str) -> Dataset {
        assert!(
            self.classes * self.keywords <= self.vocab,
            "keywords must fit in the vocabulary"
        );
        let mut rng = SplitMix64::new(self.seed);
        // Keyword sets: a seeded choice of distinct ids.
        let mut ids: Vec<usize> = (0..self.vocab).collect();
        rng.shuffle(&mut ids);
        let keywords: Vec<&[usize]> = ids.chunks(self.keywords).take(self.classes).collect();
        let mut tokens = Vec::with_capacity(self.rows * self.seq_len);
        let mut labels = Vec::with_capacity(self.rows);
        for _ in 0..self.rows {
            let c = rng.below(self.classes as u64) as usize;
            labels.push(c as i32);
            for _ in 0..self.seq_len {
                let t = if rng.uniform() < self.signal {
                    keywords[c][rng.below(self.keywords as u64) as usize]
                } else {
                    rng.below(self.vocab as u64) as usize
                };
                tokens.push(t as i32);
            }
        }
        Dataset::new(
            self.rows,
            vec![
                (tokens_name.to_string(), vec![self.seq_len], Tensor::Int(tokens)),
                (labels_name.to_string(), vec![], Tensor::Int(labels)),
            ],
        )
    }
}

/// The fusion task: rows of `text` (`i32[seq_len]` ids below `vocab`), `image`
/// (f32[image...], e.g. [3, 32, 32]) and `audio` (f32[frames, features]) with a label
/// below `classes`.
///
/// Each row draws three independent latent classes `a`, `b`, `c` in `[0, classes)`:
/// the text is a keyword sequence of class `a` (as in [`TokenTask`]), the image is
/// class `b`'s seeded prototype plus Gaussian noise, the audio is class `c`'s prototype
/// frames plus noise. The label is `(a + b) mod classes`: given the text alone (or the
/// image alone) every label is equally likely, so a model needs both.
pub struct FusionTask {
    pub rows: usize,
    pub seq_len: usize,
    pub vocab: usize,
    pub image: Vec<usize>,
    pub audio: Vec<usize>,
    pub classes: usize,
    pub seed: u64,
}

impl FusionTask {
    /// Keyword ids per class, probability that a text position is a keyword, and the
    /// standard deviation of the image and audio noise (prototypes are N(0, 1)).
    pub const KEYWORDS: usize = 8;
    pub const SIGNAL: f64 = 0.5;
    pub const NOISE: f64 = 1.0;

    /// Columns named by `names`: (text, image, audio, label).
    pub fn generate(&self, names: [&str; 4]) -> Dataset {
        let classes = self.classes.max(1);
        let mut rng = SplitMix64::new(self.seed);
        let keywords = Self::KEYWORDS.min(self.vocab / classes).max(1);
        let mut ids: Vec<usize> = (0..self.vocab).collect();
        rng.shuffle(&mut ids);
        let keyword_sets: Vec<&[usize]> = ids.chunks(keywords).take(classes).collect();
        let image_len: usize = self.image.iter().product();
        let audio_len: usize = self.audio.iter().product();
        let mut prototypes = |len: usize| -> Vec<Vec<f32>> {
            (0..classes)
                .map(|_| (0..len).map(|_| rng.normal() as f32).collect())
                .collect()
        };
        let image_protos = prototypes(image_len);
        let audio_protos = prototypes(audio_len);
        let (mut text, mut image, mut audio, mut labels) = (
            Vec::with_capacity(self.rows * self.seq_len),
            Vec::with_capacity(self.rows * image_len),
            Vec::with_capacity(self.rows * audio_len),
            Vec::with_capacity(self.rows),
        );
        for _ in 0..self.rows {
            let a = rng.below(classes as u64) as usize;
            let b = rng.below(classes as u64) as usize;
            let c = rng.below(classes as u64) as usize;
            labels.push(((a + b) % classes) as i32);
            for _ in 0..self.seq_len {
                let t = if rng.uniform() < Self::SIGNAL {
                    keyword_sets[a][rng.below(keyword_sets[a].len() as u64) as usize]
                } else {
                    rng.below(self.vocab as u64) as usize
                };
                text.push(t as i32);
            }
            for &p in &image_protos[b] {
                image.push(p + (Self::NOISE * rng.normal()) as f32);
            }
            for &p in &audio_protos[c] {
                audio.push(p + (Self::NOISE * rng.normal()) as f32);
            }
        }
        Dataset::new(
            self.rows,
            vec![
                (names[0].to_string(), vec![self.seq_len], Tensor::Int(text)),
                (names[1].to_string(), self.image.clone(), Tensor::Float(image)),
                (names[2].to_string(), self.audio.clone(), Tensor::Float(audio)),
                (names[3].to_string(), vec![], Tensor::Int(labels)),
            ],
        )
    }
}

/// A stochastic block model for node classification: `nodes` nodes in `classes`
/// communities (the labels, balanced: node `i` is in community `i mod classes` after a
/// seeded shuffle), `edges` directed edges, node features `f32[nodes, features]`.
///
/// Each edge picks a source uniformly and, with probability `homophily`, a destination
/// in the source's community, else anywhere (never itself). A node's features are its
/// community's seeded N(0, 1) signature scaled by `signal`, plus N(0, 1) noise: alone
/// they classify a node only roughly; the mean over its in-neighbours, mostly of the
/// same community, averages the noise away.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphTask {
    pub nodes: usize,
    pub edges: usize,
    pub features: usize,
    pub classes: usize,
    pub homophily: f64,
    pub signal: f64,
    pub seed: u64,
}

/// A generated graph: `edges` is `[2, E]` row-major (row 0 sources, row 1
/// destinations), `x` is `[nodes, features]`, `labels` is `[nodes]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub nodes: usize,
    pub features: usize,
    pub edges: Vec<i32>,
    pub x: Vec<f32>,
    pub labels: Vec<i32>,
}

impl Graph {
    pub fn edge_count(&self) -> usize {
        self.edges.len() / 2
    }
}

impl GraphTask {
    /// The benchmark graph: 2000 nodes, 10000 edges, 32 features, 4 communities.
    pub fn benchmark(seed: u64) -> GraphTask {
        GraphTask {
            nodes: 2000,
            edges: 10000,
            features: 32,
            classes: 4,
            homophily: 0.8,
            signal: 0.25,
            seed,
        }
    }

    pub fn generate(&self) -> Graph {
        let (n, classes) = (self.nodes, self.classes.max(1));
        assert!(n >= 2, "a graph of {n} node(s) has no edges between distinct nodes");
        let mut rng = SplitMix64::new(self.seed);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut labels = vec![0i32; n];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (k, &node) in order.iter().enumerate() {
            labels[node] = (k % classes) as i32;
            members[k % classes].push(node);
        }
        let signatures: Vec<Vec<f64>> = (0..classes)
            .map(|_| (0..self.features).map(|_| rng.normal()).collect())
            .collect();
        let mut x = Vec::with_capacity(n * self.features);
        for &label in &labels {
            for s in &signatures[label as usize] {
                x.push((self.signal * s + rng.normal()) as f32);
            }
        }
        let (mut src, mut dst) = (Vec::with_capacity(self.edges), Vec::with_capacity(self.edges));
        for _ in 0..self.edges {
            let s = rng.below(n as u64) as usize;
            let d = loop {
                let community = &members[labels[s] as usize];
                let d = if rng.uniform() < self.homophily && community.len() > 1 {
                    community[rng.below(community.len() as u64) as usize]
                } else {
                    rng.below(n as u64) as usize
                };
                if d != s {
                    break d;
                }
            };
            src.push(s as i32);
            dst.push(d as i32);
        }
        src.extend(dst);
        Graph {
            nodes: n,
            features: self.features,
            edges: src,
            x,
            labels,
        }
    }
}

/// The benchmark graph of [`GraphTask::benchmark`] with `nodes`, `edges` and
/// `features` replaced: `graph(2000, 10000, 32, 4, seed)` is what `bench/` trains on.
pub fn graph(nodes: usize, edges: usize, features: usize, classes: usize, seed: u64) -> Graph {
    GraphTask {
        nodes,
        edges,
        features,
        classes,
        ..GraphTask::benchmark(seed)
    }
    .generate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_seeded_in_range_and_homophilous() {
        let g = graph(2000, 10000, 32, 4, 1);
        assert_eq!(g, graph(2000, 10000, 32, 4, 1));
        assert_ne!(g.x, graph(2000, 10000, 32, 4, 2).x);
        assert_eq!((g.edge_count(), g.x.len(), g.labels.len()), (10000, 64000, 2000));
        assert!(g.edges.iter().all(|&v| (0..2000).contains(&v)));
        let (src, dst) = g.edges.split_at(10000);
        assert!(src.iter().zip(dst).all(|(s, d)| s != d), "no self loops");
        let same = src
            .iter()
            .zip(dst)
            .filter(|(&s, &d)| g.labels[s as usize] == g.labels[d as usize])
            .count();
        // 0.8 + 0.2 / 4 of the edges stay inside a community.
        assert!((8200..8800).contains(&same), "{same}");
        let counts: Vec<usize> = (0..4).map(|c| g.labels.iter().filter(|&&l| l == c).count()).collect();
        assert_eq!(counts, vec![500; 4]);
    }

    #[test]
    fn fusion_label_is_the_sum_of_text_and_image_classes() {
        let task = FusionTask {
            rows: 300,
            seq_len: 16,
            vocab: 5000,
            image: vec![3, 4, 4],
            audio: vec![5, 2],
            classes: 3,
            seed: 9,
        };
        let d = task.generate(["text", "image", "audio", "y"]);
        assert_eq!(d.rows, 300);
        assert_eq!(d.columns[1].2.len(), 300 * 48);
        assert_eq!(d.columns[2].2.len(), 300 * 10);
        let Tensor::Int(y) = &d.columns[3].2 else { panic!() };
        assert!(y.iter().all(|&l| (0..3).contains(&l)));
        assert_eq!(d, task.generate(["text", "image", "audio", "y"]));
    }
}
