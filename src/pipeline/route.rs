//! A decode worker's work on one block, and a tracker shard's: public so that
//! the decoder and tracker benchmarks time exactly what the pipeline runs.
//!
//! ```text
//! Block ──Router::route──▶ one Routed per shard ──track_block──▶ Tracker
//!         (decode, fast reject,  (interesting packets,    (both lists merged
//!          hash, partition,       ACK/data segments)       in capture order)
//!          dedup ACK/data)
//! ```

use crate::capture::{Block, RecordMeta};
use crate::decode::{Addr, Decoded, Skip, Summary, What, decode, tcp_flags};
use crate::track::{Order, PARTITIONS, Tracker, flow_hash_and_partition, prefetch};

/// Direct-mapped cache slots for deduplicating ACK/data segments per block.
const DEDUP_SLOTS: usize = 4096;

/// How many ACK/data segments (or other packets) ahead a shard prefetches
/// the tracker's tables: enough to cover a memory access (~100 ns) at ~10
/// ns a segment.
const PREFETCH_AHEAD: usize = 8;

/// An ACK/data segment for a shard: index in the block, partition, whether it
/// carries payload, sender, time and directional flow hash.
#[derive(Clone, Copy, Debug)]
pub struct Est {
    pub idx: u32,
    pub part: u8,
    pub payload: bool,
    pub src: Addr,
    pub ts: i64,
    pub hash: u64,
}

/// One shard's share of a block, each list in capture order.
#[derive(Default, Debug)]
pub struct Routed {
    /// Interesting packets, with their index in the block.
    pub items: Vec<(u32, Summary)>,
    /// ACK/data segments, at most one per flow direction and block.
    pub est: Vec<Est>,
}

impl Routed {
    pub fn clear(&mut self) {
        self.items.clear();
        self.est.clear();
    }
}

/// What a decode worker counts (summed over workers for a run's summary).
#[derive(Default, Debug, Clone)]
pub struct WorkerStats {
    pub packets: u64,
    /// Bytes captured (record contents), and bytes on the wire (original lengths).
    pub bytes_captured: u64,
    pub bytes_wire: u64,
    pub skipped: [u64; Skip::ALL.len()],
    /// Packets kept for the tracker.
    pub interesting: u64,
    /// ACK/data segments, before deduplication (the tracker gets one per
    /// flow direction and block).
    pub established: u64,
}

impl WorkerStats {
    pub fn skipped(&self, s: Skip) -> u64 {
        self.skipped[s as usize]
    }

    /// Add another worker's counts.
    pub fn add(&mut self, w: &WorkerStats) {
        self.packets += w.packets;
        self.bytes_captured += w.bytes_captured;
        self.bytes_wire += w.bytes_wire;
        self.interesting += w.interesting;
        self.established += w.established;
        for (a, b) in self.skipped.iter_mut().zip(w.skipped.iter()) {
            *a += b;
        }
    }
}

/// A decode worker's state between blocks.
pub struct Router {
    dedup: Box<[u64]>,
    /// Partition → shard (`p % shards`), looked up: a division per packet
    /// by a number known only at run time costs more than the rest of the
    /// routing.
    shard_of: [u8; PARTITIONS],
    pub stats: WorkerStats,
}

impl Router {
    /// A router for `shards` tracker shards (1..=[`PARTITIONS`]).
    pub fn new(shards: usize) -> Router {
        assert!((1..=PARTITIONS).contains(&shards), "{shards} shards");
        Router {
            dedup: vec![0; DEDUP_SLOTS].into(),
            shard_of: std::array::from_fn(|p| (p % shards) as u8),
            stats: WorkerStats::default(),
        }
    }

    /// Decode `recs` (records of `block`) and append each shard's packets to
    /// `out[shard]`, which must have one entry per shard.
    pub fn route(&mut self, block: &Block, recs: &[RecordMeta], out: &mut [Routed]) {
        // Deduplication must depend on the block alone (not on which blocks
        // this worker saw before), or the output would depend on the thread
        // count.
        self.dedup.fill(0);
        let st = &mut self.stats;
        for (i, r) in recs.iter().enumerate() {
            // The reader's core wrote these bytes: start fetching the headers
            // of a packet a few ahead.
            if let Some(ahead) = recs.get(i + 4) {
                prefetch(&block.data[(ahead.off as usize).min(block.data.len())..]);
            }
            st.packets += 1;
            st.bytes_captured += u64::from(r.caplen);
            st.bytes_wire += u64::from(r.origlen);
            match decode(r.link, r.ts, block.packet(r)) {
                Decoded::Established(k, payload) => {
                    st.established += 1;
                    let (h, part) = flow_hash_and_partition(&k);
                    let slot = &mut self.dedup[h as usize % DEDUP_SLOTS];
                    if *slot != h {
                        *slot = h;
                        out[usize::from(self.shard_of[part])].est.push(Est {
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
                    st.interesting += 1;
                    let (h, part) = flow_hash_and_partition(&s.key);
                    // After a SYN the flow's next ACK must reach the tracker
                    // (it may prove the handshake), even if one was sent before.
                    if let What::Tcp { flags, .. } = s.what
                        && flags & tcp_flags::SYN != 0
                    {
                        let slot = &mut self.dedup[h as usize % DEDUP_SLOTS];
                        if *slot == h {
                            *slot = 0;
                        }
                    }
                    out[usize::from(self.shard_of[part])]
                        .items
                        .push((i as u32, s));
                }
                Decoded::Skip(why) => st.skipped[why as usize] += 1,
            }
        }
    }
}

/// Feed shard `t` block `block` (whose first record is packet `base_idx` of
/// the run, and before which the latest timestamp was `watermark`): fire the
/// due timers, then both lists merged in capture order. The caller drains
/// the events and evidence after.
pub fn track_block(t: &mut Tracker, block: u64, base_idx: u64, watermark: i64, r: &Routed) {
    t.begin_block(block, watermark);
    let (items, est) = (&r.items, &r.est);
    let (mut i, mut e) = (0, 0);
    while i < items.len() || e < est.len() {
        if e == est.len() || (i < items.len() && items[i].0 < est[e].idx) {
            if let Some((_, y)) = items.get(i + PREFETCH_AHEAD) {
                t.prefetch_packet(y);
            }
            let (idx, s) = &items[i];
            t.packet(s, block, base_idx + u64::from(*idx));
            i += 1;
        } else {
            // The sketch and the liveness cache are far larger than the
            // cache: start the misses a few segments ahead.
            if let Some(y) = est.get(e + PREFETCH_AHEAD) {
                t.prefetch_established(y.part as usize, &y.src, y.hash);
            }
            let x = est[e];
            let order = Order {
                block,
                phase: 1,
                at: (base_idx + u64::from(x.idx)) as i64,
            };
            t.established(x.part as usize, x.src, x.hash, x.ts, x.payload, order);
            e += 1;
        }
    }
    t.end_block();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::linktype;
    use crate::decode::tcp_flags::{ACK, SYN};
    use crate::synth::frame::{Frame, Ip, L4, Payload, Tcp, Vlan};
    use std::net::{IpAddr, Ipv4Addr};

    /// One block of Ethernet frames: (source host, source port, flags).
    fn block(pkts: &[(u8, u16, u8)]) -> Block {
        let mut f = Frame::new();
        let mut b = Block::default();
        for (i, &(h, sp, flags)) in pkts.iter().enumerate() {
            let (s, d) = (Ipv4Addr::new(10, 0, 0, h), Ipv4Addr::new(10, 0, 1, 1));
            let seg = L4::Tcp(Tcp::new(sp, 80, 1, 1, flags, 1024), Payload::EMPTY);
            f.build(Vlan::None, &Ip::new(IpAddr::V4(s), IpAddr::V4(d)), &seg);
            b.recs.push(RecordMeta {
                ts: i as i64,
                off: b.data.len() as u32,
                caplen: f.bytes().len() as u32,
                origlen: f.bytes().len() as u32,
                link: linktype::ETHERNET,
            });
            b.data.extend_from_slice(f.bytes());
        }
        b
    }

    /// Indices of the ACK/data segments that reach the tracker, and of the
    /// interesting packets.
    fn route(r: &mut Router, b: &Block) -> (Vec<u32>, Vec<u32>) {
        let mut out = [Routed::default()];
        r.route(b, &b.recs, &mut out);
        let est = out[0].est.iter().map(|e| e.idx).collect();
        (est, out[0].items.iter().map(|i| i.0).collect())
    }

    /// The tracker gets the first ACK/data segment of each flow direction
    /// in a block, and the first again after that flow's SYN (it may
    /// complete the new handshake); each block starts afresh, whatever the
    /// worker saw before (the output must not depend on the thread count).
    #[test]
    fn one_segment_per_flow_direction_and_block_and_again_after_a_syn() {
        // The dedup slot of host `h`'s flow from port `sp`.
        let slot = |h: u8, sp: u16| {
            let b = block(&[(h, sp, ACK)]);
            let Decoded::Established(k, _) = decode(b.recs[0].link, 0, b.packet(&b.recs[0])) else {
                panic!("an ACK is an established segment");
            };
            flow_hash_and_partition(&k).0 as usize % DEDUP_SLOTS
        };
        let mut r = Router::new(1);
        let pkts = [
            (1, 1000, ACK), // 0: flow a, first
            (1, 1000, ACK), // 1: a again: dropped
            (2, 1000, ACK), // 2: flow b, first
            (1, 1001, ACK), // 3: flow c (other port), first
            (1, 1000, ACK), // 4: a: dropped
            (1, 1000, SYN), // 5: a's SYN (interesting)
            (1, 1000, ACK), // 6: a after its SYN: kept
            (1, 1000, ACK), // 7: dropped
            (2, 1000, SYN), // 8: b's SYN (interesting)
            (2, 1000, ACK), // 9: b after a SYN of its own: kept
        ];
        let b = block(&pkts);
        // Flows a, b and c fall in different slots (sharing one is below).
        let slots = [slot(1, 1000), slot(2, 1000), slot(1, 1001)];
        assert!(slots[0] != slots[1] && slots[1] != slots[2] && slots[0] != slots[2]);
        assert_eq!(route(&mut r, &b), (vec![0, 2, 3, 6, 9], vec![5, 8]));
        assert_eq!(r.stats.established, 8);
        assert_eq!(r.stats.interesting, 2);
        // The same block again: the same choice, not "all seen already".
        assert_eq!(route(&mut r, &b), (vec![0, 2, 3, 6, 9], vec![5, 8]));
        // Two flows that share a slot: each takes it from the other, so a
        // flow's second segment comes through again (never the other way:
        // a flow whose slot another took is not mistaken for a repeat).
        let mut first = std::collections::HashMap::new();
        let (x, y) = (10_000u16..)
            .find_map(|p| first.insert(slot(3, p), p).map(|q| (q, p)))
            .unwrap();
        let b = block(&[(3, x, ACK), (3, y, ACK), (3, x, ACK), (3, x, ACK)]);
        assert_eq!(route(&mut r, &b).0, vec![0, 1, 2]);
    }
}
