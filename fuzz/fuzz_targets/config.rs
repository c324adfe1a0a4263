#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vgate_fuzz::config::run(data));
