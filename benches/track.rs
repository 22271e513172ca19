//! The tracker alone, in packets per second, on pre-decoded captures.
//!
//!     cargo bench --bench track
//!     cargo bench --bench track -- --quick
//!
//! The enterprise and flood profiles of `scanwatch-synth` (1.5 M and 1 M
//! packets, snaplen 256, see [`CAPTURES`]) are generated block by block (at
//! most 5,000 records, or 1 s of capture time, as the reader cuts), and each
//! block is decoded once into what a decode worker sends a tracker shard: the
//! interesting packets' summaries and the ACK/data segments, deduplicated per
//! flow within the block, by the pipeline's own `route::Router`. The benchmark
//! feeds them to one tracker that owns every partition
//! (`Tracker::new(cfg, 0, 1)`, i.e. `--threads 1`) the way `shard()` does:
//! `route::track_block` (timers, then the two lists merged in capture
//! order), `drain_events`, `order_shard_events`, `drain_evidence`; at the
//! end the same for each partition's `flush_partition` (in a flood, most
//! attempts are still pending then, and the flush is a large share of the
//! time: the first pass prints both). Throughput counts every packet of the
//! capture, so the figure compares with the decoder's and the replay's.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use scanwatch::pipeline::route::{Routed, Router, track_block};
use scanwatch::synth::Profile;
use scanwatch::track::{PARTITIONS, TrackConfig, Tracker, order_shard_events};

mod common;

/// The captures and their lengths. Enterprise traffic runs at 25,000
/// packets/s: 1.5 M packets are 60 s, so the 40 s SYN timeout fires during
/// the run (in a shorter capture every `unanswered` decision waits for the
/// final flush); the generator also spreads a longer capture over more
/// concurrent flows (~1,400 TCP flow directions per 5,000 packets here,
/// ~400 in 200,000 packets). The flood runs at 400,000 packets/s: 1 M
/// packets are 2.5 s of flood, ~700,000 attempts pending at the end (no
/// timeout, below the default cap of 786,432: 64 tables of 2^14 buckets,
/// in the arena of huge pages), a table well beyond the CPU caches; 2 M
/// packets reach the cap, where each new SYN first decides the oldest
/// attempt of its partition (what the 5M and 15M floods of
/// `benches/compare.sh` do most of the time).
const CAPTURES: [(Profile, u64); 3] = [
    (Profile::Enterprise, 1_500_000),
    (Profile::Flood, 1_000_000),
    (Profile::Flood, 2_000_000),
];

/// One block's batch for the single shard (`ShardBatch` in the pipeline).
struct Batch {
    base_idx: u64,
    /// Latest timestamp of all blocks before this one.
    watermark: i64,
    routed: Routed,
}

/// A capture decoded into what the single shard receives, block by block.
struct Feed {
    batches: Vec<Batch>,
    /// The watermark at the end of input (latest timestamp of all).
    end: i64,
    packets: u64,
}

/// Generate `packets` frames of `profile` and decode and route each block as
/// `decode_worker` does, for one shard; the frames are not kept.
fn predecode(profile: Profile, packets: u64) -> Feed {
    let mut router = Router::new(1);
    let mut d = Feed {
        batches: Vec::new(),
        end: i64::MIN,
        packets: 0,
    };
    common::stream(profile, packets, |block| {
        let mut routed = [Routed::default()];
        router.route(block, &block.recs, &mut routed);
        let [routed] = routed;
        d.batches.push(Batch {
            base_idx: d.packets,
            watermark: d.end,
            routed,
        });
        d.packets += block.recs.len() as u64;
        d.end = d
            .end
            .max(block.recs.iter().map(|r| r.ts).max().unwrap_or(i64::MIN));
    });
    d
}

/// What the output thread would receive, kept between blocks to reuse the
/// allocations as `shard()` does.
#[derive(Default)]
struct Out {
    events: Vec<scanwatch::track::Event>,
    alive: Vec<scanwatch::track::Alive>,
    contacts: Vec<scanwatch::track::Contact>,
    total: u64,
}

impl Out {
    fn take(&mut self, t: &mut Tracker) {
        t.drain_events(&mut self.events);
        order_shard_events(&mut self.events);
        t.drain_evidence(&mut self.alive, &mut self.contacts);
        self.total += self.events.len() as u64;
        black_box((&self.events, &self.alive, &self.contacts));
        self.events.clear();
        self.alive.clear();
        self.contacts.clear();
    }
}

/// Feed every batch to `t` as `shard()` does, then end the input.
fn run(t: &mut Tracker, batches: &[Batch], end_watermark: i64, o: &mut Out) -> u64 {
    feed(t, batches, o) + end(t, end_watermark, o)
}

/// Feed every batch to `t` as `shard()` does. Returns the number of events
/// (rejections and unreachables as they come, timeouts as the blocks fire them).
fn feed(t: &mut Tracker, batches: &[Batch], o: &mut Out) -> u64 {
    o.total = 0;
    for (b, batch) in batches.iter().enumerate() {
        track_block(t, b as u64, batch.base_idx, batch.watermark, &batch.routed);
        o.take(t);
    }
    o.total
}

/// End of input, as `shard()` does it: a partition at a time. Returns the
/// number of events (every attempt still pending).
fn end(t: &mut Tracker, end_watermark: i64, o: &mut Out) -> u64 {
    o.total = 0;
    for part in 0..PARTITIONS {
        t.flush_partition(part, end_watermark);
        o.take(t);
    }
    o.total
}

fn bench(c: &mut Criterion) {
    let cfg: TrackConfig = scanwatch::config::Config::default().tracker.track_config();
    let mut g = c.benchmark_group("track");
    for (profile, packets) in CAPTURES {
        let d = predecode(profile, packets);
        let items: usize = d.batches.iter().map(|b| b.routed.items.len()).sum();
        let est: usize = d.batches.iter().map(|b| b.routed.est.len()).sum();
        let mut o = Out::default();
        let mut t = Tracker::new(cfg.clone(), 0, 1);
        let started = Instant::now();
        let during = feed(&mut t, &d.batches, &mut o);
        let fed = started.elapsed();
        let at_end = end(&mut t, d.end, &mut o);
        let ended = started.elapsed() - fed;
        eprintln!(
            "{}: {} packets in {} blocks -> {items} interesting, {est} ACK/data after dedup; \
             events: {during} during the blocks, {at_end} at the end; peak {} pending, \
             {} decided early at the cap; first pass: blocks {:.1} ms, end {:.1} ms",
            profile.name(),
            d.packets,
            d.batches.len(),
            t.stats.peak_pending,
            t.stats.pending_evicted,
            fed.as_secs_f64() * 1e3,
            ended.as_secs_f64() * 1e3
        );
        drop(t);
        g.throughput(Throughput::Elements(d.packets));
        // A flood iteration takes a quarter of a second: fewer samples.
        g.sample_size(if profile == Profile::Flood { 10 } else { 100 });
        g.bench_function(
            format!("{}-{}k/tracker", profile.name(), packets / 1000),
            |b| {
                b.iter_batched(
                    // A fresh tracker each time, built and dropped outside the timing.
                    || Tracker::new(cfg.clone(), 0, 1),
                    |mut t| {
                        black_box(run(&mut t, &d.batches, d.end, &mut o));
                        t
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
