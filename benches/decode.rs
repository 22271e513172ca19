//! The decoder alone, in packets per second, on preloaded captures.
//!
//!     cargo bench --bench decode
//!     cargo bench --bench decode -- --quick
//!
//! The enterprise and flood profiles of `scanwatch-synth` (200,000 packets
//! each, snaplen 256) are generated into memory once. Two cases per profile:
//!
//! * `decode`: `scanwatch::decode::decode` over every record, nothing else;
//! * `decode+route`: what a decode worker does per block, by the pipeline's
//!   own `route::Router`: decode, then flow hash, partition and per-block
//!   deduplication of the ACK/data segments, and the batches the tracker
//!   shards get, for one shard. No channels.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scanwatch::capture::{Block, RecordMeta};
use scanwatch::decode::{Decoded, decode};
use scanwatch::pipeline::route::{Routed, Router};

mod common;

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

/// One block as a decode worker routes it, for a single shard.
fn route_block(router: &mut Router, out: &mut [Routed; 1], block: &Block, recs: &[RecordMeta]) {
    out[0].clear();
    router.route(block, recs, out);
    black_box(&out[0]);
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
        let mut router = Router::new(1);
        let mut out = [Routed::default()];
        g.bench_function(format!("{}/decode+route", cap.name), |b| {
            b.iter(|| {
                for recs in &blocks {
                    route_block(&mut router, &mut out, block, recs);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
