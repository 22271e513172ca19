//! Shared by the decoder and tracker benchmarks: captures generated in memory
//! with `scanwatch-synth`'s generator, and the pipeline's block cutting.

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::io;

use scanwatch::capture::{Block, RecordMeta, linktype};
use scanwatch::pipeline::BLOCK_SPAN;
use scanwatch::synth::{GenOptions, Profile, Sink, generate};

/// Packets per profile for [`captures`]: enough to leave the caches (about
/// 32 MB of enterprise records), small enough to generate in a second.
pub const PACKETS: u64 = 200_000;

/// Bytes kept per frame, as in `benches/replay.rs` and `benches/compare.sh`.
pub const SNAPLEN: u32 = 256;

/// Records per emulated block. The pipeline's reader cuts 1 MiB blocks (about
/// 6,000 enterprise records, 13,000 flood records) or at [`BLOCK_SPAN`] of
/// capture time, whichever comes first.
pub const BLOCK_RECORDS: usize = 5_000;

/// Append a generated frame to `b`, cut at the snaplen and with a microsecond
/// timestamp, as a classic pcap file read back would give it.
fn push(b: &mut Block, ts: i64, data: &[u8], wire_len: usize) {
    let data = &data[..data.len().min(SNAPLEN as usize)];
    b.recs.push(RecordMeta {
        ts: ts / 1_000 * 1_000,
        off: b.data.len() as u32,
        caplen: data.len() as u32,
        origlen: wire_len.max(data.len()) as u32,
        link: linktype::ETHERNET,
    });
    b.data.extend_from_slice(data);
}

/// Collects every frame into one [`Block`].
struct Collect(Block);

impl Sink for Collect {
    fn packet(&mut self, ts: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        push(&mut self.0, ts, data, wire_len);
        Ok(())
    }
}

/// Whether a block holding `recs` is complete (see [`blocks`]).
fn full(recs: &[RecordMeta]) -> bool {
    match (recs.first(), recs.last()) {
        (Some(a), Some(z)) => {
            recs.len() >= BLOCK_RECORDS || z.ts.saturating_sub(a.ts) >= BLOCK_SPAN
        }
        _ => false,
    }
}

/// Hands each block to a closure as soon as it is complete, so a long
/// capture never sits in memory whole.
struct Stream<F: FnMut(&Block)> {
    block: Block,
    f: F,
}

impl<F: FnMut(&Block)> Sink for Stream<F> {
    fn packet(&mut self, ts: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        push(&mut self.block, ts, data, wire_len);
        if full(&self.block.recs) {
            (self.f)(&self.block);
            self.block.clear();
        }
        Ok(())
    }
}

fn options(packets: u64) -> GenOptions {
    GenOptions {
        packets,
        seed: 1,
        snaplen: SNAPLEN,
        ..GenOptions::default()
    }
}

/// Generate `packets` frames of `profile` (seed 1) and hand them to `f` block
/// by block, cut as [`blocks`] cuts.
pub fn stream(profile: Profile, packets: u64, f: impl FnMut(&Block)) {
    let mut s = Stream {
        block: Block::default(),
        f,
    };
    generate(profile, &options(packets), &mut s).expect("generating into memory cannot fail");
    if !s.block.recs.is_empty() {
        (s.f)(&s.block);
    }
}

/// A generated capture, every record in one block.
pub struct Capture {
    pub name: &'static str,
    pub block: Block,
}

/// The enterprise and flood captures (seed 1, [`PACKETS`] each).
pub fn captures() -> Vec<Capture> {
    [Profile::Enterprise, Profile::Flood]
        .into_iter()
        .map(|p| {
            let mut c = Collect(Block::default());
            generate(p, &options(PACKETS), &mut c).expect("generating into memory cannot fail");
            assert_eq!(c.0.recs.len() as u64, PACKETS, "{} packets", p.name());
            Capture {
                name: p.name(),
                block: c.0,
            }
        })
        .collect()
}

/// Cut `recs` into blocks the way the reader does: at most
/// [`BLOCK_RECORDS`] records, and a block ends once it spans [`BLOCK_SPAN`].
pub fn blocks(recs: &[RecordMeta]) -> Vec<&[RecordMeta]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < recs.len() {
        let mut end = start + 1;
        while end < recs.len() && !full(&recs[start..end]) {
            end += 1;
        }
        out.push(&recs[start..end]);
        start = end;
    }
    out
}
