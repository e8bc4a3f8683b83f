//! `policy_json`: see `keelson::fuzz_entry::policy_json`, which the regression test
//! (compiler/tests/fuzz_regressions.rs) also runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keelson::fuzz_entry::policy_json(data));
