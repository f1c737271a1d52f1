//! Sampling sequences from a trained token model, one token at a time.
//!
//! In: a [`Session`] (the trained parameters) whose model reads one token input
//! `i32[B, T] vocab V` and scores per-position logits `[B, T, V]` with `cross_entropy`
//! (a causal language model such as `examples/char_lm.mp`), a boundary token, how to
//! pick (greedy or softmax with a temperature) and a seed. Out: sequences of token ids
//! without the boundary tokens.
//!
//! Each sequence starts with the boundary token. The evaluation step runs on the tokens
//! so far (the positions after them hold padding, which a causal model never reads), and
//! the logits at the last position give the next token: the highest-scoring one, or one
//! drawn from `softmax(logits / temperature)`. Sequence k draws from its own
//! [`SplitMix64`], seeded with the k-th number of a generator seeded with the seed, so a
//! sequence depends only on the seed and its number: the same seed gives the same
//! sequences, and asking for fewer gives the first ones. A sequence ends when the boundary
//! token is drawn or when the logits of the last position `T - 1` have been used. The
//! input's pad id is never drawn: padding is not a token.
//!
//! Sequences are sampled a batch (`B` rows) at a time; a last, smaller group fills the
//! rest of the batch with rows that are computed and ignored, so no step is compiled for
//! another batch size.

use crate::data::Tensor;
use crate::session::{batch_rows, Session};
use mpc_compiler::ir::ArgKind;
use mpc_compiler::pipeline::Compiled;
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::Role;
use mpc_compiler::specialize::show_shape;

/// What sampling needs to know about a model: its token input, the label the
/// evaluation step also takes (filled with -1, "no label"), and their sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenModel {
    pub input: String,
    pub label: String,
    /// Rows per step (`B`), positions (`T`) and token ids (`V`).
    pub batch: usize,
    pub len: usize,
    pub vocab: usize,
    /// The input's `pad` id, never drawn.
    pub pad: Option<usize>,
}

/// How the next token is chosen from the logits of one position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pick {
    /// The highest-scoring token (the lowest id on ties).
    Greedy,
    /// A draw from `softmax(logits / temperature)`; `temperature > 0`.
    Temperature(f64),
}

const NEEDS: &str = "--sample needs a model with one token input i32[B, T] (vocab V) whose loss is \
                     cross_entropy(logits, label) with per-position logits [B, T, V]";

impl TokenModel {
    /// The model's token input and label, or one line saying what the model lacks.
    pub fn of(compiled: &Compiled) -> Result<TokenModel, String> {
        let model = &compiled.model;
        let lacks = |what: String| Err(format!("{NEEDS}; model '{}' {what}", model.name));
        let eval = &compiled.eval;
        let inputs: Vec<_> = model.inputs.iter().filter(|i| !i.is_label).collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            [] => return lacks("has no input".into()),
            many => {
                let names: Vec<String> = many.iter().map(|i| format!("'{}'", i.name)).collect();
                return lacks(format!("has {} inputs ({})", many.len(), names.join(", ")));
            }
        };
        let ty = eval
            .ty(eval
                .arg(ArgKind::Input, &input.name)
                .expect("every input is an argument"))
            .clone();
        let declared = format!(
            "input '{}' is {}{}",
            input.name,
            input.ty.dtype,
            show_shape(&input.ty.shape)
        );
        let batch = batch_rows(compiled);
        let (mpc_compiler::ir::DType::I32, [b, len]) = (ty.dtype, ty.shape.as_slice()) else {
            return lacks(format!("has {declared}, not i32[B, T]"));
        };
        let (b, len) = (*b, *len);
        if b != batch {
            return lacks(format!("has {declared}, whose first axis is not the batch axis"));
        }
        let Some(vocab) = input.vocab else {
            return lacks(format!("has {declared} without a vocab"));
        };
        let label = model.inputs.iter().find(|i| i.is_label);
        let Some(label) = label.filter(|l| l.classes.is_some()) else {
            return lacks("has no class label, so its loss scores no logits".into());
        };
        let want = [b, len, vocab];
        let scored = eval
            .output(&Role::Predictions.output_name())
            .map(|p| eval.ty(p).shape.clone());
        if scored.as_deref() != Some(want.as_slice()) {
            let scored = scored.map(|s| format!("{s:?}")).unwrap_or_else(|| "nothing".into());
            return lacks(format!(
                "scores {scored} with its loss, not logits {want:?} (B, T and the vocab of input '{}')",
                input.name
            ));
        }
        Ok(TokenModel {
            input: input.name.clone(),
            label: label.name.clone(),
            batch: b,
            len,
            vocab,
            pad: input.pad,
        })
    }

    /// An id that may start and end sequences: in `[0, V)` and not the pad id.
    pub fn check_boundary(&self, boundary: usize) -> Result<(), String> {
        if boundary >= self.vocab {
            return Err(format!(
                "boundary token {boundary} is outside [0, {}) (vocab of input '{}')",
                self.vocab, self.input
            ));
        }
        if Some(boundary) == self.pad {
            return Err(format!(
                "boundary token {boundary} is the pad id of input '{}'; padding cannot start a sequence",
                self.input
            ));
        }
        Ok(())
    }
}

/// `count` sequences (token ids, boundaries left out), each at most `T` tokens long.
pub fn sample(
    session: &mut Session,
    model: &TokenModel,
    boundary: usize,
    count: usize,
    pick: Pick,
    seed: u64,
) -> Result<Vec<Vec<usize>>, String> {
    model.check_boundary(boundary)?;
    let mut seeds = SplitMix64::new(seed);
    let mut rngs: Vec<SplitMix64> = (0..count).map(|_| SplitMix64::new(seeds.next_u64())).collect();
    let mut out = Vec::with_capacity(count);
    for group in rngs.chunks_mut(model.batch) {
        out.extend(sample_batch(session, model, boundary, pick, group)?);
    }
    Ok(out)
}

/// One sequence per generator in `rngs` (at most `B`), sampled side by side in one batch.
fn sample_batch(
    session: &mut Session,
    model: &TokenModel,
    boundary: usize,
    pick: Pick,
    rngs: &mut [SplitMix64],
) -> Result<Vec<Vec<usize>>, String> {
    let rows = rngs.len();
    let (b, t_len, v) = (model.batch, model.len, model.vocab);
    // Later positions hold padding (or, without a pad id, the boundary): a causal model
    // never reads them when it scores the positions before.
    let filler = model.pad.unwrap_or(boundary) as i32;
    let mut tokens = vec![filler; b * t_len];
    for r in 0..b {
        tokens[r * t_len] = boundary as i32;
    }
    let no_labels = Tensor::Int(vec![-1; b * t_len]);
    let mut seqs = vec![Vec::new(); rows];
    let mut done = vec![false; rows];
    for t in 0..t_len {
        if done.iter().all(|&d| d) {
            break;
        }
        let batch = [
            (model.input.clone(), Tensor::Int(tokens.clone())),
            (model.label.clone(), no_labels.clone()),
        ];
        let logits = session
            .predict_batch(&batch)?
            .ok_or("the evaluation step returned no logits")?;
        for r in 0..rows {
            if done[r] {
                continue;
            }
            let at = &logits[(r * t_len + t) * v..][..v];
            let next = choose(at, model.pad, pick, &mut rngs[r])
                .ok_or_else(|| format!("the logits at position {t} of sample {} are not finite", r + 1))?;
            if next == boundary || t + 1 == t_len {
                done[r] = true;
            }
            if next != boundary {
                seqs[r].push(next);
                if t + 1 < t_len {
                    tokens[r * t_len + t + 1] = next as i32;
                }
            }
        }
    }
    Ok(seqs)
}

/// The next token from one position's logits, never `pad`; `None` if a logit is not
/// finite (a diverged checkpoint cannot be sampled meaningfully).
fn choose(logits: &[f32], pad: Option<usize>, pick: Pick, rng: &mut SplitMix64) -> Option<usize> {
    if logits.iter().any(|l| !l.is_finite()) {
        return None;
    }
    let candidates = || (0..logits.len()).filter(|&i| Some(i) != pad);
    let best = candidates().fold(None, |best: Option<usize>, i| match best {
        Some(j) if logits[j] >= logits[i] => Some(j),
        _ => Some(i),
    })?;
    let Pick::Temperature(temperature) = pick else {
        return Some(best);
    };
    // Shifted by the maximum so that exp never overflows; weights are in (0, 1].
    let max = logits[best] as f64;
    let weight = |i: usize| ((logits[i] as f64 - max) / temperature).exp();
    let total: f64 = candidates().map(weight).sum();
    let mut u = rng.uniform() * total;
    let mut last = best;
    for i in candidates() {
        let w = weight(i);
        if w > 0.0 {
            last = i;
        }
        if u < w {
            return Some(i);
        }
        u -= w;
    }
    // Rounding left a sliver of u: the last token that had any weight.
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_highest_logit_and_never_the_pad() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(choose(&[1.0, 3.0, 3.0, 2.0], None, Pick::Greedy, &mut rng), Some(1));
        assert_eq!(choose(&[9.0, 3.0, 3.0, 2.0], Some(0), Pick::Greedy, &mut rng), Some(1));
        assert_eq!(choose(&[1.0, f32::NAN], None, Pick::Greedy, &mut rng), None);
    }

    #[test]
    fn draws_follow_the_tempered_softmax() {
        // logits ln 1, ln 3 at temperature 1: probabilities 1/4, 3/4; the pad never comes.
        let logits = [50.0, 0.0, 3f32.ln()];
        let mut rng = SplitMix64::new(7);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| choose(&logits, Some(0), Pick::Temperature(1.0), &mut rng) == Some(1))
            .count();
        assert!((ones as f64 / n as f64 - 0.25).abs() < 0.02, "{ones} of {n}");
        // A low temperature all but always takes the best; the same seed the same draws.
        let draws = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..200)
                .map(|_| choose(&logits, Some(0), Pick::Temperature(0.05), &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert!(draws(1).iter().all(|&i| i == 2));
        let tempered = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..50)
                .map(|_| choose(&logits, Some(0), Pick::Temperature(2.0), &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(tempered(3), tempered(3));
        assert_ne!(tempered(3), tempered(4));
    }
}
