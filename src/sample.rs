//! `mpc run FILE --weights W --sample N`: draw N sequences from a trained token model and
//! print them, one per line.
//!
//! In: the model compiled with the checkpoint's dims, the checkpoint, and the sampling
//! flags. Out: N lines on stdout, each a sequence decoded through the vocabulary (the
//! token names joined, `examples/char_lm.mp`'s words) or, without one, its token ids
//! separated by spaces. The drawing itself is `mpc_runtime::sample`; this module finds
//! the vocabulary and the boundary token and checks every flag first, so that a model
//! that cannot be sampled, a vocabulary of the wrong size or an unknown boundary is one
//! error line before any work.

use crate::budget;
use crate::load::{error, fail, Loaded};
use crate::run::{checkpoint_params, checkpoint_session};
use mpc_runtime::backend::Backend;
use mpc_runtime::budget::Budget;
use mpc_runtime::data::defaults::default_vocab;
use mpc_runtime::files;
use mpc_runtime::sample::{Pick, TokenModel};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The token that starts and ends sequences, looked up by this name in the vocabulary.
pub const BOUNDARY_NAME: &str = "<w>";

#[derive(clap::Args)]
pub struct SampleOpts {
    /// Draw N sequences from the checkpoint instead of evaluating it, one per line (a model with one
    /// token input i32[B, T] and per-position logits [B, T, V])
    #[arg(long, value_name = "N", value_parser = crate::data::parse_positive,
          conflicts_with_all = ["data", "out", "json"])]
    pub sample: Option<usize>,
    /// With --sample: draw from softmax(logits / T) (default 1; lower is more conservative)
    #[arg(long, value_name = "T", requires = "sample", conflicts_with = "greedy", value_parser = parse_temperature)]
    pub temperature: Option<f64>,
    /// With --sample: take the most likely token every time
    #[arg(long, requires = "sample")]
    pub greedy: bool,
    /// With --sample: the seed of the draws (default 0); the same seed gives the same samples, and fewer
    /// samples are the first ones
    #[arg(long, value_name = "S", requires = "sample")]
    pub seed: Option<u64>,
    /// With --sample: token names, one per line (line k names id k); default: the vocab.txt of the
    /// model's default data, else ids are printed
    #[arg(long, value_name = "FILE", requires = "sample")]
    pub vocab: Option<PathBuf>,
    /// With --sample: the token id that starts each sequence and ends it when drawn (default: the
    /// vocabulary's <w>)
    #[arg(long, value_name = "ID", requires = "sample")]
    pub boundary: Option<usize>,
}

/// `--temperature 0.8`: a positive finite number.
fn parse_temperature(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("'{s}' is not a positive temperature")),
    }
}

/// Checks the model and the flags, loads the checkpoint, draws `count` sequences and
/// prints them.
pub fn sample(
    file: &Path,
    weights: &Path,
    loaded: Loaded,
    backend: Backend,
    budget: &Budget,
    count: usize,
    opts: &SampleOpts,
) -> Result<(), ExitCode> {
    let model = TokenModel::of(&loaded.compiled).map_err(|e| fail(file, &e))?;
    let vocab = vocabulary(opts, &loaded, &model)?;
    let boundary = match (opts.boundary, &vocab) {
        (Some(id), _) => id,
        (None, Some(names)) => names.iter().position(|n| n == BOUNDARY_NAME).ok_or_else(|| {
            error(&format!(
                "--sample: the vocabulary names no boundary token '{BOUNDARY_NAME}'; give its id with --boundary ID"
            ))
        })?,
        (None, None) => {
            return Err(fail(
                file,
                &format!(
                    "--sample needs the boundary token that starts and ends a sequence: --boundary ID, or \
                     --vocab FILE with a line '{BOUNDARY_NAME}'"
                ),
            ))
        }
    };
    model
        .check_boundary(boundary)
        .map_err(|e| error(&format!("--boundary: {e}")))?;
    // No data: the parameters, their step buffers and one batch of tokens.
    budget::check(file, "sampling", &loaded.compiled, Some(&[]), budget)?;
    let checkpoint = checkpoint_params(file, weights, &loaded)?;
    let mut session = checkpoint_session(file, loaded, checkpoint, backend)?;
    let pick = match (opts.greedy, opts.temperature) {
        (true, _) => Pick::Greedy,
        (false, t) => Pick::Temperature(t.unwrap_or(1.0)),
    };
    let seed = opts.seed.unwrap_or(0);
    let sequences =
        mpc_runtime::sample::sample(&mut session, &model, boundary, count, pick, seed).map_err(|e| fail(file, &e))?;
    for ids in sequences {
        let line: Vec<String> = match &vocab {
            Some(names) => ids.iter().map(|&i| names[i].clone()).collect(),
            None => ids.iter().map(|i| i.to_string()).collect(),
        };
        outln!("{}", line.join(if vocab.is_some() { "" } else { " " }));
    }
    Ok(())
}

/// The names of the input's token ids: `--vocab FILE`, else those of the model's
/// default data, else none (ids are printed).
fn vocabulary(opts: &SampleOpts, loaded: &Loaded, model: &TokenModel) -> Result<Option<Vec<String>>, ExitCode> {
    if let Some(path) = &opts.vocab {
        let bytes = files::read(path, files::DATA_LIMIT).map_err(|e| fail(path, &e))?;
        return parse_vocab(&bytes, model).map(Some).map_err(|e| fail(path, &e));
    }
    let compiled = &loaded.compiled;
    match default_vocab(&compiled.model, &compiled.dims) {
        Some((name, bytes)) => parse_vocab(bytes, model)
            .map(Some)
            .map_err(|e| error(&format!("examples/data/{name}: {e}"))),
        None => Ok(None),
    }
}

/// One token name per line, line k (from 0) naming id k; exactly the input's vocab.
fn parse_vocab(bytes: &[u8], model: &TokenModel) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (byte {}): a vocabulary is one token name per line",
            e.valid_up_to()
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let names: Vec<String> = text.lines().map(str::to_string).collect();
    if names.len() != model.vocab {
        return Err(format!(
            "{} lines, but input '{}' has vocab {}: a vocabulary names every token id, one per line (line k \
             names id k - 1)",
            names.len(),
            model.input,
            model.vocab
        ));
    }
    if let Some(k) = names.iter().position(|n| n.trim().is_empty()) {
        return Err(format!("line {}: the name of token id {k} is empty", k + 1));
    }
    Ok(names)
}
