//! Fuzz target: the bytes of a CSV data file read as each kind of column
//! (`mpc_fuzz_harness::csv`; it must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mpc_fuzz_harness::csv(data);
});
