//! The tracker on arbitrary packet sequences (addresses, ports, flags,
//! timestamps going back and forth, by milliseconds or by minutes, off the
//! microsecond by a few nanoseconds; VLAN tags): no panic, no hang, no
//! table above its cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scanwatch::decode::{Addr, FlowKey, Proto, Summary, What};
use scanwatch::track::{Order, PARTITIONS, TrackConfig, Tracker, flow_hash, partition_of};

fuzz_target!(|data: &[u8]| {
    let cfg = TrackConfig {
        max_pending: PARTITIONS * 2,
        ..TrackConfig::default()
    };
    let mut t = Tracker::new(cfg, 0, 1);
    let mut ts: i64 = 0;
    for (i, c) in data.chunks_exact(8).enumerate() {
        // Time moves by up to ±2^15 ms per packet, or ±2^15 minutes (the
        // partitions' bases move on), plus a few nanoseconds.
        let unit = if c[7] & 0x80 != 0 { 60_000_000_000 } else { 1_000_000 };
        let step = i64::from(i16::from_le_bytes([c[0], c[1]])) * unit;
        ts = ts.wrapping_add(step).wrapping_add(i64::from(c[7] >> 4 & 7));
        let key = FlowKey {
            src: Addr::v4([10, 0, 0, c[2] & 7]),
            dst: Addr::v4([10, 0, 1, (c[2] >> 3) & 7]),
            sport: u16::from(c[3] & 3) + 1000,
            dport: u16::from(c[3] >> 6) + 20,
            proto: [Proto::Tcp, Proto::Udp, Proto::Arp, Proto::Icmp][usize::from(c[4] & 3)],
        };
        let order = Order { block: 0, phase: 1, at: i as i64 };
        let what = match c[4] >> 6 {
            0 if key.proto == Proto::Arp => What::Arp { reply: c[5] & 1 == 1 },
            0 | 1 => What::Tcp { flags: c[5], seq: u32::from(c[6] & 3), ack: 0 },
            2 => What::Unreach {
                icmp_type: 3,
                code: c[5] & 15,
                sender: Addr::v4([10, 0, 2, 1]),
                quoted_seq: (c[6] & 4 == 0).then_some(u32::from(c[6] & 3)),
                quoted_flags: None,
            },
            _ => {
                t.established(partition_of(&key), key.src, flow_hash(&key), ts, c[7] & 1 == 1, order);
                continue;
            }
        };
        if i % 16 == 0 {
            t.begin_block(i as u64, ts);
        }
        let vlan = [u16::from(c[6] >> 4), u16::from(c[7] >> 3 & 1) * 7];
        t.packet(&Summary { ts, key, vlan, what }, 0, i as u64);
        assert!(t.len() <= PARTITIONS * 2 + PARTITIONS, "table above its cap: {}", t.len());
    }
    t.flush(ts);
    let mut ev = Vec::new();
    t.drain_events(&mut ev);
});
