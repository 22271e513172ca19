//! The configuration parser: errors, never panics, for any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A line of the input may also be a --set override.
    let sets: Vec<String> = text.lines().take(2).filter(|l| l.contains('=')).map(str::to_owned).collect();
    let _ = scanwatch::config::Config::from_toml("fuzz", &text, &sets);
});
