//! The decoder on every link type: no input may panic it.
#![no_main]
use libfuzzer_sys::fuzz_target;

const LINKS: [u16; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[sel as usize % LINKS.len()];
    let _ = scanwatch::decode::decode(link, 0, frame);
});
