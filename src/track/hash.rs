//! Flow hashes: directional for table keys, symmetric for partitioning.
//!
//! A folded 64×64→128-bit multiply (the core of wyhash and foldhash) over the
//! address words: a few cycles per key, good avalanche, and the same value on
//! every machine and every run, so partition assignment (and with it which
//! attempts a full partition refuses) never depends on the build.

use crate::decode::{Addr, FlowKey, Proto};

const K: [u64; 6] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
];

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn words(a: &Addr) -> (u64, u64) {
    let (hi, lo) = a.0.split_at(8);
    (
        u64::from_le_bytes(hi.try_into().expect("8 bytes")),
        u64::from_le_bytes(lo.try_into().expect("8 bytes")),
    )
}

#[inline(always)]
fn addr_hash(a: &Addr) -> u64 {
    let (x, y) = words(a);
    fold(x ^ K[0], y ^ K[1])
}

/// A slot index for per-address caches.
#[inline]
pub fn addr_slot(a: &Addr) -> usize {
    (addr_hash(a) >> 32) as usize
}

/// Hash of the directed flow (source, destination, ports, protocol).
#[inline]
pub fn flow_hash(k: &FlowKey) -> u64 {
    let s = addr_hash(&k.src);
    let (d0, d1) = words(&k.dst);
    let h = fold(d0 ^ s ^ K[2], d1 ^ K[3]);
    let ports = (u64::from(k.sport) << 32) | (u64::from(k.dport) << 16) | proto_code(k.proto);
    fold(h ^ K[4], ports ^ K[5])
}

/// The protocol's part of a flow hash: its IP protocol number, and for ARP
/// (which has none, and whose number reads 0) a code no IP protocol has, so
/// that an ARP request and an IP protocol 0 probe between the same two
/// addresses (an `nmap -sO` sweep) are not one flow to the lookups by hash
/// alone.
#[inline(always)]
fn proto_code(p: Proto) -> u64 {
    match p {
        Proto::Arp => ARP_CODE,
        p => u64::from(p.number()),
    }
}

/// [`proto_code`] of ARP.
const ARP_CODE: u64 = 0x100;

/// The low word of an IPv4 address as [`Addr::v4`] lays it out (bytes
/// 8..16 of `::ffff:a.b.c.d`, little-endian); its high word is zero.
#[inline(always)]
fn v4_word(a: [u8; 4]) -> u64 {
    0xffff_0000 | u64::from(u32::from_le_bytes(a)) << 32
}

/// [`flow_hash`] of an IPv4 flow, from its parts. The packed attempt table
/// checks each candidate of a lookup by hash alone with it: built as a
/// [`FlowKey`] on the stack first, the key was read back in words right
/// after its narrower stores (a failed store forwarding on every eviction
/// of a flood).
#[inline(always)]
pub fn flow_hash_v4(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    arp: bool,
) -> u64 {
    let s = fold(K[0], v4_word(src) ^ K[1]);
    let h = fold(s ^ K[2], v4_word(dst) ^ K[3]);
    let code = if arp { ARP_CODE } else { u64::from(proto) };
    let ports = (u64::from(sport) << 32) | (u64::from(dport) << 16) | code;
    fold(h ^ K[4], ports ^ K[5])
}

/// [`flow_hash`] and [`partition_of`] together, the source address hashed
/// once: what a decode worker needs for every packet.
#[inline]
pub fn flow_hash_and_partition(k: &FlowKey) -> (u64, usize) {
    let s = addr_hash(&k.src);
    let (d0, d1) = words(&k.dst);
    let h = fold(d0 ^ s ^ K[2], d1 ^ K[3]);
    let ports = (u64::from(k.sport) << 32) | (u64::from(k.dport) << 16) | proto_code(k.proto);
    let sym = s.wrapping_add(fold(d0 ^ K[0], d1 ^ K[1]));
    (
        fold(h ^ K[4], ports ^ K[5]),
        (fold(sym ^ K[4], K[5]) >> 58) as usize,
    )
}

/// The partition of a flow: a symmetric function of the address pair, so both
/// directions (and ICMP errors keyed by their quote) meet in one partition.
#[inline]
pub fn partition_of(k: &FlowKey) -> usize {
    let sym = addr_hash(&k.src).wrapping_add(addr_hash(&k.dst));
    (fold(sym ^ K[4], K[5]) >> 58) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Proto;

    fn key(s: [u8; 4], d: [u8; 4], sp: u16, dp: u16) -> FlowKey {
        FlowKey {
            src: Addr::v4(s),
            dst: Addr::v4(d),
            sport: sp,
            dport: dp,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn partition_is_symmetric_and_spread() {
        let mut seen = [0u32; 64];
        for i in 0..64_000u32 {
            let k = key(
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                [192, 168, 1, 1],
                40000,
                80,
            );
            assert_eq!(partition_of(&k), partition_of(&k.reversed()));
            seen[partition_of(&k)] += 1;
        }
        // 1000 expected per partition; a weak hash would leave some nearly empty.
        assert!(seen.iter().all(|&n| (700..1300).contains(&n)), "{seen:?}");
    }

    #[test]
    fn the_combined_hash_is_both_hashes() {
        for i in 0..1000u32 {
            let mut k = key(
                [10, 0, (i >> 8) as u8, i as u8],
                [192, 168, 1, 1],
                40000,
                80,
            );
            assert_eq!(
                flow_hash_and_partition(&k),
                (flow_hash(&k), partition_of(&k))
            );
            k.src = Addr([i as u8; 16]);
            k.proto = Proto::Ip(i as u8);
            assert_eq!(
                flow_hash_and_partition(&k),
                (flow_hash(&k), partition_of(&k))
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_ipv4_hash_is_the_flow_hash(
            s in proptest::prelude::any::<[u8; 4]>(),
            d in proptest::prelude::any::<[u8; 4]>(),
            sp in proptest::prelude::any::<u16>(),
            dp in proptest::prelude::any::<u16>(),
            proto in proptest::prelude::any::<u8>(),
        ) {
            let mut k = key(s, d, sp, dp);
            k.proto = Proto::from_ip_number(proto);
            proptest::prop_assert_eq!(flow_hash_v4(s, d, sp, dp, proto, false), flow_hash(&k));
            k.proto = Proto::Arp;
            proptest::prop_assert_eq!(flow_hash_v4(s, d, sp, dp, 0, true), flow_hash(&k));
            // ARP is not IP protocol 0 (HOPOPT), whose number it shares.
            let ip0 = FlowKey { proto: Proto::Ip(0), ..k };
            proptest::prop_assert_ne!(flow_hash(&k), flow_hash(&ip0));
        }
    }

    #[test]
    fn flow_hash_is_directional() {
        let k = key([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
        assert_ne!(flow_hash(&k), flow_hash(&k.reversed()));
        let mut k2 = k;
        k2.sport = 1001;
        assert_ne!(flow_hash(&k), flow_hash(&k2));
    }
}
