//! Fuzz target: `turf_host::fuzz::topic_filter` (see docs/FUZZING.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turf_host::fuzz::topic_filter(data));
