//! Fuzz target: `turf_host::fuzz::update_config` (see docs/FUZZING.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turf_host::fuzz::update_config(data));
