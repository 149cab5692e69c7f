//! libFuzzer target: `cargo +nightly fuzz run --features libfuzzer head` (see README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rgun_h1_fuzz::check(data);
});
