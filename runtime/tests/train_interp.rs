//! Training the seed text classifier with the reference interpreter learns a task
//! whose label depends on the tokens: the loss falls well below its start and held-out
//! accuracy rises well above chance.

use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::session::Session;

mod common;

use common::{keyword_task, TEXT_CLASSIFIER as MODEL};

#[test]
fn text_classifier_learns_keyword_task() {
    // Smaller batch and sequence than the defaults keep the interpreter quick; the
    // vocabulary (10000) and every layer are the example's own.
    let dims = [("B".to_string(), 32), ("T".to_string(), 16)];
    let compiled = compile(MODEL, &dims).unwrap_or_else(|e| panic!("{e:?}"));
    let (train, held_out) = keyword_task(2048 + 512, 16).split_tail(512);
    let mut session = Session::new(compiled, 42).unwrap();
    let mut rng = SplitMix64::new(1);

    let before = session.evaluate(&held_out).unwrap();
    let mut first_steps = Vec::new();
    let mut last_steps = Vec::new();
    while session.step < 320 {
        for order in train.epoch_batches(session.batch_size(), &mut rng) {
            let m = session.train_step(&train.batch(&order)).unwrap();
            assert!(m.loss.is_finite(), "loss became {} at step {}", m.loss, session.step);
            if session.step <= 20 {
                first_steps.push(m.loss);
            }
            if session.step > 300 {
                last_steps.push(m.loss);
            }
            if session.step == 320 {
                break;
            }
        }
    }
    let after = session.evaluate(&held_out).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (start, end) = (mean(&first_steps), mean(&last_steps));
    eprintln!("held-out before: {before:?}\nheld-out after:  {after:?}\ntrain loss: first 20 steps {start:.4}, last 20 steps {end:.4}");
    assert!(end < 0.5 * start, "training loss fell only from {start:.4} to {end:.4}");
    assert!(
        after.loss < 0.5 * before.loss,
        "held-out loss fell only from {:.4} to {:.4}",
        before.loss,
        after.loss
    );
    let accuracy = after.accuracy.unwrap();
    assert!(
        accuracy > 0.85,
        "held-out accuracy {accuracy:.3} is not well above chance (0.5)"
    );
}
