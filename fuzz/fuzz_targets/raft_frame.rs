#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halfveil_fuzz::raft_frame(data));
