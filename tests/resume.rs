//! `mpc train --resume`: a run that stops and goes on is the run that never stopped, bit
//! for bit (parameters, optimizer state, step, data order, dropout masks), and a
//! checkpoint that cannot be resumed says why in one line.

mod common;

use common::{json_lines, mpc, ok, s, scratch};
use serde_json::Value;
use std::path::Path;

/// An epoch's JSON line without its timings, which differ from run to run.
fn untimed(line: &Value) -> Value {
    let mut line = line.clone();
    line.as_object_mut().unwrap().remove("seconds");
    line.as_object_mut().unwrap().remove("step_ms");
    line
}

/// Trains `model` for `epochs` epochs in one run, and in two (`stop` epochs, then
/// resumed), with `extra` arguments; asserts that the checkpoints are the same bytes
/// and that the resumed epochs print what the same epochs of the whole run printed.
fn stop_and_resume_equals_one_run(name: &str, model: &str, epochs: usize, stop: usize, extra: &[&str]) {
    let dir = scratch("resume", name);
    let (whole, parted) = (dir.join("whole.safetensors"), dir.join("parted.safetensors"));
    let train = |epochs: usize, save: &Path, resume: bool| {
        let epochs = epochs.to_string();
        let mut args = vec!["train", model, "--epochs", &epochs, "--json", "--save", s(save)];
        if resume {
            args.extend(["--resume", s(save)]);
        }
        args.extend(extra);
        json_lines(&ok(&args))
    };
    let one_run = train(epochs, &whole, false);
    let first = train(stop, &parted, false);
    assert_eq!(first.len(), stop + 1);
    let rest = train(epochs, &parted, true);
    // Only the resumed epochs are printed, numbered as in the whole run.
    assert_eq!(rest.len(), epochs - stop + 1, "{rest:?}");
    for (resumed, same) in rest[..epochs - stop].iter().zip(&one_run[stop..epochs]) {
        assert_eq!(untimed(resumed), untimed(same));
    }
    let (a, b) = (untimed(&one_run[epochs]), untimed(&rest[epochs - stop]));
    for key in ["loss", "eval_loss", "steps", "epochs"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    let (a, b) = (std::fs::read(&whole).unwrap(), std::fs::read(&parted).unwrap());
    assert!(
        a == b,
        "{name}: the resumed run's checkpoint differs from the whole run's"
    );
}

#[test]
fn two_epochs_equal_one_and_a_resumed_one() {
    // Shuffled batches, dropout and Adam.
    stop_and_resume_equals_one_run("text", "examples/text_classifier.mp", 2, 1, &["--threads", "2"]);
}

#[test]
fn resuming_a_graph_with_dropout_and_batches_of_graphs() {
    // A full-batch graph with dropout, stopped twice over.
    stop_and_resume_equals_one_run("gat", "examples/gat.mp", 5, 2, &[]);
    // Batches of graphs: shuffled graphs, one compiled step at the run's capacity.
    stop_and_resume_equals_one_run("molecules", "examples/molecules.mp", 2, 1, &[]);
}

#[test]
fn checkpoints_hold_optimizer_state_under_keys_a_pytorch_user_can_skip() {
    let dir = scratch("resume", "keys");
    let path = dir.join("w.safetensors");
    ok(&["train", "examples/graph.mp", "--epochs", "1", "--save", s(&path)]);
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = &header["__metadata__"];
    assert_eq!(meta["epoch"], "1");
    assert!(meta["data_order"].as_str().unwrap().parse::<u64>().is_ok());
    let names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    let params: Vec<&&String> = names.iter().filter(|k| !k.starts_with('@')).collect();
    // Adam: a first and a second moment per parameter, shaped like it.
    for p in &params {
        for slot in ["adam.m", "adam.v"] {
            let key = format!("@optimizer/{slot}:{p}");
            assert_eq!(header[&key]["shape"], header[p.as_str()]["shape"], "{key}");
        }
    }
    assert_eq!(names.len(), 3 * params.len());
    // `mpc run` and `--init` read the parameters and skip the state.
    ok(&["run", "examples/graph.mp", "--weights", s(&path)]);
    ok(&["train", "examples/graph.mp", "--epochs", "1", "--init", s(&path)]);
}

#[test]
fn what_cannot_be_resumed_says_why() {
    let dir = scratch("resume", "errors");
    let path = dir.join("w.safetensors");
    ok(&["train", "examples/graph.mp", "--epochs", "2", "--save", s(&path)]);
    let fails = |args: &[&str], expected: &str| {
        let o = mpc(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = common::stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    };
    fails(
        &["train", "examples/graph.mp", "--resume", s(&path), "--epochs", "2"],
        "the run has trained 2 epochs; --epochs 2 asks for no more (--epochs counts the whole run, so --epochs 3 \
         trains one more)",
    );
    fails(
        &["train", "examples/gat.mp", "--resume", s(&path)],
        "a checkpoint of model 'GraphSage', not of 'Gat'",
    );
    fails(
        &["train", "examples/graph.mp", "--resume", s(&path), "--seed", "3"],
        "the argument '--resume <PATH>' cannot be used with '--seed <SEED>'",
    );
    // Parameters only (Python's safetensors wrote it): --init, not --resume.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/tests/fixtures/python.safetensors");
    fails(
        &["train", "examples/graph.mp", "--resume", s(&python)],
        "not a checkpoint of a run (it records no epoch or data order: it was not written by `mpc train --save`); \
         --init starts from its parameters",
    );
}
