#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halfveil_fuzz::disclosure_shares(data));
