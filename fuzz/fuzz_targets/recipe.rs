//! Fuzz target: `turf_host::fuzz::recipe` (see docs/FUZZING.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turf_host::fuzz::recipe(data));
