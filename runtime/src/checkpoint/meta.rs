//! A checkpoint's metadata: what `__metadata__` records besides the parameters (model,
//! step, seed, dims, and a run's progress), to and from the header's strings.
//!
//! In: a [`Meta`]. Out: the key-value strings the safetensors header stores, and back,
//! where an entry that is present but malformed is an error, never silently a default.

use std::collections::BTreeMap;

/// What a checkpoint records besides the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub model: String,
    pub step: i32,
    pub seed: u64,
    /// Dim values the model was compiled with.
    pub dims: BTreeMap<String, usize>,
    /// Where a run stands, in a checkpoint it can be resumed from; `None` in one that
    /// holds parameters only (another tool's, or mpc's before resumable checkpoints).
    pub progress: Option<Progress>,
}

/// How far a run got: enough to go on as if it had never stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// The data-order generator's state after those epochs (`SplitMix64`).
    pub data_order: u64,
}

/// The prefix of the optimizer state's keys (see the module doc).
pub const OPTIMIZER_PREFIX: &str = "@optimizer/";

impl Meta {
    pub(super) fn to_strings(&self) -> BTreeMap<String, String> {
        let dims: Vec<String> = self.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut strings = BTreeMap::from([
            ("format".to_string(), "mpc".to_string()),
            ("model".to_string(), self.model.clone()),
            ("step".to_string(), self.step.to_string()),
            ("seed".to_string(), self.seed.to_string()),
            ("dims".to_string(), dims.join(",")),
        ]);
        if let Some(p) = self.progress {
            strings.insert("epoch".to_string(), p.epoch.to_string());
            strings.insert("data_order".to_string(), p.data_order.to_string());
        }
        strings
    }

    /// Reads what is there: a missing entry gets its default (a checkpoint written by
    /// another tool has no mpc metadata: model unknown, step 0, seed 0, no dims); an
    /// entry that is there but malformed is an error, never silently a default.
    pub(super) fn from_strings<'a>(mut get: impl FnMut(&str) -> Option<&'a String>) -> Result<Meta, String> {
        let invalid = |key: &str, value: &str, expected: &str| {
            format!(
                "invalid metadata: {key} '{}' is not {expected}",
                crate::files::clip(value)
            )
        };
        let mut dims = BTreeMap::new();
        if let Some(d) = get("dims").filter(|d| !d.trim().is_empty()) {
            for kv in d.split(',') {
                let entry = kv
                    .split_once('=')
                    .and_then(|(k, v)| Some((k.trim(), v.trim().parse::<usize>().ok().filter(|&v| v > 0)?)))
                    .filter(|(k, _)| is_dim_name(k));
                let (k, v) = entry.ok_or_else(|| invalid("dims entry", kv, "NAME=SIZE with a positive size"))?;
                if dims.insert(k.to_string(), v).is_some() {
                    return Err(invalid("dims", d, "a list of distinct dims"));
                }
            }
        }
        let step = match get("step") {
            Some(s) => s
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|&s| s >= 0)
                .ok_or_else(|| invalid("step", s, "a step count"))?,
            None => 0,
        };
        let seed = match get("seed") {
            Some(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid("seed", s, "an unsigned 64-bit seed"))?,
            None => 0,
        };
        let progress = match (get("epoch"), get("data_order")) {
            (None, None) => None,
            (Some(e), Some(d)) => Some(Progress {
                epoch: e.trim().parse().map_err(|_| invalid("epoch", e, "an epoch count"))?,
                data_order: d
                    .trim()
                    .parse()
                    .map_err(|_| invalid("data_order", d, "an unsigned 64-bit generator state"))?,
            }),
            (Some(_), None) => return Err("invalid metadata: 'epoch' without 'data_order'".into()),
            (None, Some(_)) => return Err("invalid metadata: 'data_order' without 'epoch'".into()),
        };
        Ok(Meta {
            model: get("model").cloned().unwrap_or_default(),
            step,
            seed,
            dims,
            progress,
        })
    }
}

/// `B`, `seq_len`: what the language accepts as a dim name.
fn is_dim_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
