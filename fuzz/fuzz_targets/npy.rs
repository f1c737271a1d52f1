//! Fuzz target: the bytes of a .npy data file read as each kind of column
//! (`mpc_fuzz_harness::npy`; it must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mpc_fuzz_harness::npy(data);
});
