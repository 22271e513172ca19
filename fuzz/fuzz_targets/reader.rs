//! The pcap/pcapng reader, then the decoder on what it reads: whatever the
//! file holds, records stay inside their block and nothing panics.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use scanwatch::capture::{Block, CaptureReader, Fill};

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CaptureReader::from_reader("fuzz", Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    r.set_max_span(1_000_000_000);
    let mut blk = Block::default();
    for _ in 0..10_000 {
        match r.fill(&mut blk, 4096) {
            Ok(f) => {
                for rec in &blk.recs {
                    assert!(rec.off as usize + rec.caplen as usize <= blk.data.len());
                    let _ = scanwatch::decode::decode(rec.link, rec.ts, blk.packet(rec));
                }
                if f != Fill::More {
                    break;
                }
            }
            Err(_) => break,
        }
    }
});
