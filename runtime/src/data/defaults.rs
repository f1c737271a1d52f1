//! Default datasets: what `mpc train` uses when no data is given.
//!
//! In: a checked model and its dim values. Out: a dataset that fits the model's
//! declared inputs, with a held-out part, or an explanation of why the model has no
//! default. The first rule that fits the model's inputs (by shape, dtype and label
//! classes; names are the model's own unless said otherwise) gives its data:
//!
//! 1. **Karate club** (shipped, `examples/data/karate/`): a graph model with 34 nodes,
//!    156 edges, one node input `f32[N, 34]` and a label of 2 classes. Zachary's karate
//!    club; 8 labeled training nodes, the other 26 held out.
//! 2. **Language id** (shipped, `examples/data/language_id/`): inputs named `chars`
//!    and/or `bigrams`, `i32[B, 16]`, and a label of 5 classes. Real words of 5 languages
//!    (15000 training, 5000 held out).
//! 3. **Character LM** (shipped, `examples/data/char_lm/`): one token input named
//!    `tokens`, `i32[B, 17] vocab 52`, and a label `i32[B, 17] classes 52` (any name):
//!    the language-id words as next-character targets (15000 training, 5000 held out).
//! 4. **Molecules** (shipped, `examples/data/molecules/`): a model with a batch of
//!    graphs (`graphs G`), one node input `f32[N, 18]` and a label `f32[G]`.
//! 5. **Graph** ([`synthetic::GraphTask`]): any other graph model with one node input
//!    `f32[N, F]` and a label of C classes: a stochastic block model with the model's N,
//!    E, F and C (`--dim N=2000 --dim E=10000` gives the benchmark's size). A seeded half
//!    of the nodes are labeled for training; the other half is held out (-1 in the
//!    training labels, labeled in the held-out ones, and the reverse).
//! 6. **Fusion** ([`synthetic::FusionTask`]): one token input `i32[B, T]`, one image
//!    `f32[B, C, H, W]`, one sequence `f32[B, T', F]` and a label: 4096 training rows,
//!    1024 held out.
//! 7. **Keywords** ([`synthetic::TokenTask`]): one token input (`i32[B, T] vocab V`) and
//!    one label (`i32[B] classes C`): 4096 training rows, 1024 held out.
//!
//! [`synthetic::GraphTask`]: super::synthetic::GraphTask
//! [`synthetic::FusionTask`]: super::synthetic::FusionTask
//! [`synthetic::TokenTask`]: super::synthetic::TokenTask

use super::load::{batched_graph, column_from_npy, input_specs, is_graph, InputSpec};
use super::synthetic::{FusionTask, GraphTask, TokenTask};
use super::{Dataset, Tensor};
use mpc_compiler::ir::DType;
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize::DimValues;
use mpc_compiler::CheckedModel;

/// Rows in the default training set, and in its held-out set (synthetic row data).
pub const TRAIN_ROWS: usize = 4096;
pub const HELD_OUT_ROWS: usize = 1024;

/// A shipped file: its path under `examples/data/` and its bytes.
pub type Shipped = (&'static str, &'static [u8]);

macro_rules! shipped {
    ($path:literal) => {
        ($path, include_bytes!(concat!("../../../examples/data/", $path)))
    };
}

/// Zachary's karate club (see `examples/data/README.md`).
pub mod karate {
    use super::Shipped;
    pub const NODES: usize = 34;
    pub const EDGES: usize = 156;
    pub const CLASSES: usize = 2;
    pub const EDGE_LIST: Shipped = shipped!("karate/g.edges.npy");
    pub const X: Shipped = shipped!("karate/x.npy");
    pub const Y: Shipped = shipped!("karate/y.npy");
    pub const TEST_Y: Shipped = shipped!("karate/test/y.npy");
}

/// Words of 5 languages from Debian's word lists (see `examples/data/README.md`).
pub mod language_id {
    use super::Shipped;
    /// Characters per word, character vocabulary, bigram vocabulary, languages.
    pub const LEN: usize = 16;
    pub const CHARS_VOCAB: usize = 52;
    pub const BIGRAMS_VOCAB: usize = 52 * 52;
    pub const CLASSES: usize = 5;
    /// (input name, training file, held-out file)
    pub const INPUTS: [(&str, Shipped, Shipped); 2] = [
        (
            "chars",
            shipped!("language_id/chars.npy"),
            shipped!("language_id/test/chars.npy"),
        ),
        (
            "bigrams",
            shipped!("language_id/bigrams.npy"),
            shipped!("language_id/test/bigrams.npy"),
        ),
    ];
    pub const Y: Shipped = shipped!("language_id/y.npy");
    pub const TEST_Y: Shipped = shipped!("language_id/test/y.npy");
}

/// The language-id words as a causal language model's data (see `examples/data/README.md`
/// and `examples/data/make_char_lm.py`): `<w>` then the characters in, the characters
/// then `<w>` as labels, -1 after the end.
pub mod char_lm {
    use super::Shipped;
    /// Positions (the boundary and up to 16 characters), and token ids (`vocab.txt`).
    pub const LEN: usize = 17;
    pub const VOCAB: usize = 52;
    /// The input's name (the label's is the model's own).
    pub const INPUT: &str = "tokens";
    pub const TOKENS: Shipped = shipped!("char_lm/tokens.npy");
    pub const TEST_TOKENS: Shipped = shipped!("char_lm/test/tokens.npy");
    pub const NEXT: Shipped = shipped!("char_lm/next.npy");
    pub const TEST_NEXT: Shipped = shipped!("char_lm/test/next.npy");
    /// One token per line, line k = id k (`<pad>`, `<unk>`, the letters, `<w>`).
    pub const VOCAB_FILE: Shipped = shipped!("char_lm/vocab.txt");
}

/// The molecules (see `examples/data/README.md` and `examples/data/make_molecules.py`):
/// a data set of graphs, for a model with a batch of graphs (`graphs G`).
pub mod molecules {
    use super::Shipped;
    /// Node features per atom, bond features per edge.
    pub const NODE_FEATURES: usize = 18;
    pub const BOND_FEATURES: usize = 4;
    pub const FILES: &[Shipped] = &[
        shipped!("molecules/x.npy"),
        shipped!("molecules/edges.npy"),
        shipped!("molecules/edge_features.npy"),
        shipped!("molecules/node_counts.npy"),
        shipped!("molecules/edge_counts.npy"),
        shipped!("molecules/y.npy"),
        shipped!("molecules/test/x.npy"),
        shipped!("molecules/test/edges.npy"),
        shipped!("molecules/test/edge_features.npy"),
        shipped!("molecules/test/node_counts.npy"),
        shipped!("molecules/test/edge_counts.npy"),
        shipped!("molecules/test/y.npy"),
    ];
}

/// The shipped molecules as the data of a model with a batch of graphs: one node input
/// `f32[N, 18]`, a label `f32[G]` (the TPSA), and edge features `f32[E, 4]` if declared.
fn shipped_molecules(specs: &[InputSpec], graph: &str) -> Result<(Dataset, Dataset), String> {
    use super::graphs::{load_graphs, Files};
    let fits = |s: &InputSpec| match (s.per_node, s.is_label, s.graph.is_some()) {
        (_, _, true) => true,
        (true, false, _) => s.dtype == DType::F32 && s.row_shape == [molecules::NODE_FEATURES],
        (false, true, _) => s.dtype == DType::F32 && s.row_shape.is_empty() && s.classes.is_none(),
        _ if s.name == format!("{graph}.features") => s.row_shape == [molecules::BOND_FEATURES],
        _ => false,
    };
    if !specs.iter().all(fits) || specs.iter().filter(|s| s.per_node).count() != 1 {
        return Err(
            "the default data of a batch of graphs is the shipped molecules (one node input f32[N, 18], a label              f32[G], edge features f32[E, 4] if any)"
                .into(),
        );
    }
    let train = load_graphs(Files::Shipped("molecules", molecules::FILES), specs, graph)?;
    let held = load_graphs(Files::Shipped("molecules/test", molecules::FILES), specs, graph)?;
    Ok((train, held))
}

/// The names of the token ids of the model's default data, when it has them (one per
/// line, line k = id k): the character LM's `vocab.txt`.
pub fn default_vocab(model: &CheckedModel, dims: &DimValues) -> Option<Shipped> {
    let specs = input_specs(model, dims).ok()?;
    char_lm_fit(&specs).map(|_| char_lm::VOCAB_FILE)
}

/// (token input, label) when the model fits the character LM's data (rule 3).
fn char_lm_fit(specs: &[InputSpec]) -> Option<(&InputSpec, &InputSpec)> {
    let fits = |s: &InputSpec| s.dtype == DType::I32 && !s.whole && s.row_shape == [char_lm::LEN];
    match specs {
        [a, b] => {
            let (tokens, label) = if a.is_label { (b, a) } else { (a, b) };
            let ok = !tokens.is_label
                && label.is_label
                && tokens.name == char_lm::INPUT
                && fits(tokens)
                && fits(label)
                && tokens.vocab == Some(char_lm::VOCAB)
                && label.classes == Some(char_lm::VOCAB);
            ok.then_some((tokens, label))
        }
        _ => None,
    }
}

/// (training set, held-out set)
pub fn default_dataset(model: &CheckedModel, dims: &DimValues, seed: u64) -> Result<(Dataset, Dataset), String> {
    default_dataset_named(model, dims, seed).map(|(train, held, _)| (train, held))
}

/// (training set, held-out set, what they are: `synthetic`, `karate-club`, `language-id`)
pub fn default_dataset_named(
    model: &CheckedModel,
    dims: &DimValues,
    seed: u64,
) -> Result<(Dataset, Dataset, &'static str), String> {
    let specs = input_specs(model, dims)?;
    let labels: Vec<&InputSpec> = specs.iter().filter(|s| s.is_label).collect();
    let features: Vec<&InputSpec> = specs.iter().filter(|s| !s.is_label).collect();
    let (Some(label), [_]) = (labels.first().copied(), labels.as_slice()) else {
        return Err(unsupported(model));
    };
    let classes = label.classes.unwrap_or(0);
    if is_graph(&specs) {
        return graph(model, &specs, label, seed);
    }
    if let Some(g) = batched_graph(&specs) {
        let (train, held) = shipped_molecules(&specs, &g.name)?;
        return Ok((train, held, "molecules"));
    }
    if classes == language_id::CLASSES
        && !features.is_empty()
        && features.iter().all(|s| {
            language_id::INPUTS.iter().any(|(name, _, _)| *name == s.name)
                && s.dtype == DType::I32
                && !s.whole
                && s.row_shape == [language_id::LEN]
        })
    {
        let (train, held) = shipped_language_id(&specs)?;
        return Ok((train, held, "language-id"));
    }
    if let Some((tokens, label)) = char_lm_fit(&specs) {
        let (train, held) = shipped_char_lm(tokens, label)?;
        return Ok((train, held, "char-lm"));
    }
    let row_input = |dtype: DType, rank: usize| {
        let found: Vec<&&InputSpec> = features
            .iter()
            .filter(|s| !s.whole && s.dtype == dtype && s.row_shape.len() == rank)
            .collect();
        match found.as_slice() {
            [one] => Some(**one),
            _ => None,
        }
    };
    let rows = TRAIN_ROWS + HELD_OUT_ROWS;
    if let (3, Some(text), Some(image), Some(audio), Some(_)) = (
        features.len(),
        row_input(DType::I32, 1),
        row_input(DType::F32, 3),
        row_input(DType::F32, 2),
        label.classes,
    ) {
        let Some(vocab) = text.vocab else {
            return Err(unsupported(model));
        };
        synthetic_classes(model, classes, vocab)?;
        let task = FusionTask {
            rows,
            seq_len: text.row_shape[0],
            vocab,
            image: image.row_shape.clone(),
            audio: audio.row_shape.clone(),
            classes,
            seed,
        };
        let data = task.generate([&text.name, &image.name, &audio.name, &label.name]);
        let (train, held) = data.split_tail(HELD_OUT_ROWS);
        return Ok((train, held, "synthetic"));
    }
    if let (1, Some(tokens), Some(vocab)) = (features.len(), row_input(DType::I32, 1), features[0].vocab) {
        if classes > 0 && label.row_shape.is_empty() {
            synthetic_classes(model, classes, vocab)?;
            let keywords = (vocab / (classes * 4)).clamp(1, 20);
            let task = TokenTask {
                rows,
                seq_len: tokens.row_shape[0],
                vocab,
                classes,
                keywords,
                signal: 0.3,
                seed,
            };
            let (train, held) = task.generate(&tokens.name, &label.name).split_tail(HELD_OUT_ROWS);
            return Ok((train, held, "synthetic"));
        }
    }
    Err(unsupported(model))
}

/// The most classes the synthetic tasks generate (each class gets its own keywords and
/// prototypes, so the task's size grows with the class count).
const MAX_SYNTHETIC_CLASSES: usize = 1000;

/// The synthetic token tasks give each class at least one keyword of its own: they need
/// `classes <= vocab`, and a class count they can hold in memory.
fn synthetic_classes(model: &CheckedModel, classes: usize, vocab: usize) -> Result<(), String> {
    let why = if classes > MAX_SYNTHETIC_CLASSES {
        format!("{classes} classes are more than its {MAX_SYNTHETIC_CLASSES}")
    } else if classes > vocab {
        format!("its {classes} classes need at least {classes} token ids, and the vocabulary has {vocab}")
    } else {
        return Ok(());
    };
    Err(format!(
        "model '{}': the synthetic default data cannot be made: {why}",
        model.name
    ))
}

fn unsupported(model: &CheckedModel) -> String {
    format!(
        "model '{}' has no default dataset: default data fits a graph model (edges i32[2, E], one node input \
         f32[N, F], a label i32[N] classes C), a token input with an image and a sequence \
         (i32[B, T], f32[B, C, H, W], f32[B, T, F]), inputs 'chars' and/or 'bigrams' i32[B, 16] with 5 classes, \
         an input 'tokens' i32[B, 17] vocab 52 with a label i32[B, 17] classes 52 (next characters), or one token input (i32[B, T] vocab V), each with one label (i32[B] classes C)",
        model.name
    )
}

/// Decodes a shipped `.npy` file as `spec`'s column.
fn decode(file: Shipped, spec: &InputSpec) -> Result<Tensor, String> {
    column_from_npy(file.1, spec)
        .map(|(_, c)| c)
        .map_err(|e| format!("examples/data/{}: {e}", file.0))
}

fn shipped_language_id(specs: &[InputSpec]) -> Result<(Dataset, Dataset), String> {
    let (mut train, mut test) = (Dataset::default(), Dataset::default());
    for spec in specs {
        let (train_file, test_file) = if spec.is_label {
            (language_id::Y, language_id::TEST_Y)
        } else {
            let (_, a, b) = language_id::INPUTS
                .iter()
                .find(|(name, _, _)| *name == spec.name)
                .expect("matched by name");
            (*a, *b)
        };
        for (data, file) in [(&mut train, train_file), (&mut test, test_file)] {
            let column = decode(file, spec)?;
            data.rows = column.len() / spec.row_shape.iter().product::<usize>().max(1);
            data.columns.push((spec.name.clone(), spec.row_shape.clone(), column));
        }
    }
    Ok((train, test))
}

fn shipped_char_lm(tokens: &InputSpec, label: &InputSpec) -> Result<(Dataset, Dataset), String> {
    let (mut train, mut test) = (Dataset::default(), Dataset::default());
    let files = [
        (tokens, char_lm::TOKENS, char_lm::TEST_TOKENS),
        (label, char_lm::NEXT, char_lm::TEST_NEXT),
    ];
    for (spec, train_file, test_file) in files {
        for (data, file) in [(&mut train, train_file), (&mut test, test_file)] {
            let column = decode(file, spec)?;
            data.rows = column.len() / char_lm::LEN;
            data.columns.push((spec.name.clone(), spec.row_shape.clone(), column));
        }
    }
    Ok((train, test))
}

/// The default data of a graph model: the karate club when it fits, else a stochastic
/// block model of the model's sizes.
fn graph(
    model: &CheckedModel,
    specs: &[InputSpec],
    label: &InputSpec,
    seed: u64,
) -> Result<(Dataset, Dataset, &'static str), String> {
    let edges: Vec<&InputSpec> = specs.iter().filter(|s| s.graph.is_some()).collect();
    let nodes_in: Vec<&InputSpec> = specs
        .iter()
        .filter(|s| !s.is_label && !s.whole && s.dtype == DType::F32 && s.row_shape.len() == 1)
        .collect();
    let ([edges], [x], Some(classes)) = (edges.as_slice(), nodes_in.as_slice(), label.classes) else {
        return Err(unsupported(model));
    };
    if specs.len() != 3 || !label.row_shape.is_empty() {
        return Err(unsupported(model));
    }
    let g = edges.graph.as_ref().expect("an edge list");
    let (nodes, e_count, features) = (g.nodes, edges.row_shape[1], x.row_shape[0]);
    let data = |x_col: Tensor, edge_col: Tensor, y: Tensor| Dataset {
        rows: nodes,
        columns: vec![
            (x.name.clone(), x.row_shape.clone(), x_col),
            (label.name.clone(), vec![], y),
        ],
        whole: vec![(edges.name.clone(), edges.row_shape.clone(), edge_col)],
        full_batch: true,
        graphs: None,
    };
    if (nodes, e_count, features, classes) == (karate::NODES, karate::EDGES, karate::NODES, karate::CLASSES) {
        let x_col = decode(karate::X, x)?;
        let edge_col = decode(karate::EDGE_LIST, edges)?;
        let train = data(x_col.clone(), edge_col.clone(), decode(karate::Y, label)?);
        let test = data(x_col, edge_col, decode(karate::TEST_Y, label)?);
        return Ok((train, test, "karate-club"));
    }
    let task = GraphTask {
        nodes,
        edges: e_count,
        features,
        classes,
        ..GraphTask::benchmark(seed)
    };
    if nodes < 2 {
        return Err(format!("a synthetic graph needs at least 2 nodes, not {nodes}"));
    }
    let g = task.generate();
    let (train_y, test_y) = mask_split(&g.labels, seed);
    Ok((
        data(
            Tensor::Float(g.x.clone()),
            Tensor::Int(g.edges.clone()),
            Tensor::Int(train_y),
        ),
        data(Tensor::Float(g.x), Tensor::Int(g.edges), Tensor::Int(test_y)),
        "synthetic",
    ))
}

/// Training and held-out labels of a graph: a seeded half of the nodes keep their label
/// in training (-1 in held-out), the others the reverse.
pub fn mask_split(labels: &[i32], seed: u64) -> (Vec<i32>, Vec<i32>) {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    SplitMix64::new(seed ^ 0x6d61_736b).shuffle(&mut order);
    let (mut train, mut test) = (vec![-1; labels.len()], vec![-1; labels.len()]);
    for (k, &i) in order.iter().enumerate() {
        if k < labels.len().div_ceil(2) {
            train[i] = labels[i];
        } else {
            test[i] = labels[i];
        }
    }
    (train, test)
}
