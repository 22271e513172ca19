//! The decoder alone, in packets per second, on preloaded captures.
//!
//!     cargo bench --bench decode
//!     cargo bench --bench decode -- --quick
//!
//! The enterprise and flood profiles of `scanwatch-synth` (200,000 packets
//! each, snaplen 256) are generated into memory once. Two cases per profile:
//!
//! * `decode`: `scanwatch::decode::decode` over every record, nothing else;
//! * `decode+route`: what a decode worker does per block (see `decode_worker`
//!   in `src/pipeline.rs`): decode, then flow hash, partition and per-block
//!   deduplication of the ACK/data segments, and the batches the tracker
//!   shards get, for one shard. No channels.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scanwatch::capture::{Block, RecordMeta};
use scanwatch::decode::{Addr, Decoded, Summary, What, decode, tcp_flags};
use scanwatch::track::{flow_hash, partition_of};

mod common;

/// `DEDUP_SLOTS` of `src/pipeline.rs` (private there).
const DEDUP_SLOTS: usize = 4096;

/// Decode every record; count the interesting ones so nothing is optimised away.
fn decode_all(block: &Block) -> u64 {
    let mut kept = 0u64;
    for r in &block.recs {
        if let Decoded::Interesting(s) = decode(r.link, r.ts, block.packet(r)) {
            kept += 1;
            black_box(&s);
        }
    }
    kept
}

/// An ACK/data segment as a worker hands it to a shard (`Est` in the pipeline).
#[derive(Clone, Copy)]
#[allow(dead_code)] // fields are written for their cost, never read
struct Est {
    idx: u32,
    part: u8,
    payload: bool,
    src: Addr,
    ts: i64,
    hash: u64,
}

/// The worker's reusable state: dedup cache and one shard's batch.
struct Worker {
    dedup: Vec<u64>,
    items: Vec<(u32, Summary)>,
    est: Vec<Est>,
}

/// One block as `decode_worker` processes it, for a single shard.
fn route_block(w: &mut Worker, block: &Block, recs: &[RecordMeta]) {
    w.items.clear();
    w.est.clear();
    w.dedup.fill(0);
    for (i, r) in recs.iter().enumerate() {
        match decode(r.link, r.ts, block.packet(r)) {
            Decoded::Established(k, payload) => {
                let h = flow_hash(&k);
                let slot = &mut w.dedup[h as usize % DEDUP_SLOTS];
                if *slot != h {
                    *slot = h;
                    let part = partition_of(&k);
                    w.est.push(Est {
                        idx: i as u32,
                        part: part as u8,
                        payload,
                        src: k.src,
                        ts: r.ts,
                        hash: h,
                    });
                }
            }
            Decoded::Interesting(s) => {
                if let What::Tcp { flags, .. } = s.what
                    && flags & tcp_flags::SYN != 0
                {
                    let h = flow_hash(&s.key);
                    let slot = &mut w.dedup[h as usize % DEDUP_SLOTS];
                    if *slot == h {
                        *slot = 0;
                    }
                }
                black_box(partition_of(&s.key));
                w.items.push((i as u32, s));
            }
            Decoded::Skip(why) => {
                black_box(why);
            }
        }
    }
    black_box((&w.items, &w.est));
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for cap in common::captures() {
        let block = &cap.block;
        let blocks = common::blocks(&block.recs);
        eprintln!(
            "{}: {} packets, {:.1} MB captured, {} blocks, {} interesting",
            cap.name,
            block.recs.len(),
            block.data.len() as f64 / 1e6,
            blocks.len(),
            decode_all(block)
        );
        g.throughput(Throughput::Elements(block.recs.len() as u64));
        g.bench_function(format!("{}/decode", cap.name), |b| {
            b.iter(|| decode_all(block))
        });
        let mut w = Worker {
            dedup: vec![0; DEDUP_SLOTS],
            items: Vec::new(),
            est: Vec::new(),
        };
        g.bench_function(format!("{}/decode+route", cap.name), |b| {
            b.iter(|| {
                for recs in &blocks {
                    route_block(&mut w, block, recs);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
