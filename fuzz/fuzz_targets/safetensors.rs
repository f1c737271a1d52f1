//! Fuzz target: the bytes of a safetensors checkpoint loaded against a small model
//! (`mpc_fuzz_harness::safetensors`; it must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mpc_fuzz_harness::safetensors(data);
});
