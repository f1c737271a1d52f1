//! Fuzz target: model source text through the whole pipeline (tiny dims) and one interpreter step
//! (`mpc_fuzz_harness::model_source`; it must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mpc_fuzz_harness::model_source(data);
});
