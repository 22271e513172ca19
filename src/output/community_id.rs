//! Community ID v1 (corelight/community-id-spec): a hash of the flow tuple that
//! Zeek, Suricata and most SOC tools compute the same way, to pivot between them.

use crate::decode::{FlowKey, Proto};

/// `1:` + base64(SHA-1(seed, addresses, protocol, ports)), seed 0.
///
/// `None` for flows the spec keys by ICMP type/code (we do not keep the type of
/// a quoted ICMP probe) and for ARP, which is not IP.
pub fn community_id(k: &FlowKey) -> Option<String> {
    let mut out = String::with_capacity(30);
    write_community_id(k, &mut out).then_some(out)
}

/// [`community_id`] appended to `out`, without a `String` of its own (the
/// event writer calls it for every event); false, and nothing written, when
/// the flow has none.
pub fn write_community_id(k: &FlowKey, out: &mut String) -> bool {
    let (sport, dport) = match k.proto {
        Proto::Tcp | Proto::Udp => (Some(k.sport), Some(k.dport)),
        Proto::Icmp | Proto::Icmpv6 | Proto::Arp => return false,
        // SCTP has ports too; an SCTP probe reaches us only through ICMP quotes
        // read as "other protocol", without ports, so only the addresses count.
        Proto::Ip(_) => (None, None),
    };
    let (a, b) = (k.src.wire_bytes(), k.dst.wire_bytes());
    // The spec orders the endpoints so both directions hash alike: smaller
    // address first, the ports deciding between equal addresses.
    let flip = (a, sport.unwrap_or(0)) > (b, dport.unwrap_or(0));
    let (a, b, sport, dport) = if flip {
        (b, a, dport, sport)
    } else {
        (a, b, sport, dport)
    };
    // The hashed tuple, at most 40 bytes, is padded here into SHA-1's one
    // 64-byte block and compressed once: fed piece by piece, the hasher's
    // buffering cost as much as the compression, and even in one call its
    // buffer and finalization took half as much again (a flood writes
    // millions of events, each with its Community ID).
    let mut buf = [0u8; 64];
    let mut n = 2; // the seed, 0
    for part in [a, b] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    buf[n] = k.proto.number();
    n += 2;
    if let (Some(s), Some(d)) = (sport, dport) {
        buf[n..n + 2].copy_from_slice(&s.to_be_bytes());
        buf[n + 2..n + 4].copy_from_slice(&d.to_be_bytes());
        n += 4;
    }
    // SHA-1's padding: a 1 bit, zeros, and the length in bits at the end.
    buf[n] = 0x80;
    buf[56..].copy_from_slice(&(n as u64 * 8).to_be_bytes());
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    sha1::block_api::compress(&mut h, &[buf]);
    let mut digest = [0u8; 20];
    for (d, w) in digest.chunks_exact_mut(4).zip(h) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    let mut text = *b"1:0000000000000000000000000000";
    base64(&digest, &mut text[2..]);
    // SAFETY: `text` is "1:" and bytes of the base64 alphabet (`T`) or '='.
    unsafe { super::push_ascii(out, &text) };
    true
}

/// A SHA-1 digest in standard base64: 28 characters, one `=` of padding.
fn base64(data: &[u8; 20], out: &mut [u8]) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (c, o) in data.chunks(3).zip(out.chunks_mut(4)) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        o[0] = T[(n >> 18) as usize & 63];
        o[1] = T[(n >> 12) as usize & 63];
        o[2] = T[(n >> 6) as usize & 63];
        o[3] = if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;

    fn k(s: &str, d: &str, sp: u16, dp: u16, proto: Proto) -> FlowKey {
        FlowKey {
            src: Addr::from(s.parse::<std::net::IpAddr>().unwrap()),
            dst: Addr::from(d.parse::<std::net::IpAddr>().unwrap()),
            sport: sp,
            dport: dp,
            proto,
        }
    }

    proptest::proptest! {
        /// The block padded by hand hashes as the hasher does the tuple,
        /// for both families, with and without ports, either direction.
        #[test]
        fn the_padded_block_is_sha1_of_the_tuple(
            a in proptest::prelude::any::<[u8; 16]>(),
            b in proptest::prelude::any::<[u8; 16]>(),
            v4 in proptest::prelude::any::<bool>(),
            ports in proptest::prelude::any::<Option<(u16, u16)>>(),
        ) {
            use sha1::Digest;
            let addr = |x: [u8; 16]| if v4 { Addr::v4([x[0], x[1], x[2], x[3]]) } else { Addr::v6(x) };
            let (proto, (sp, dp)) = match ports {
                Some(p) => (Proto::Tcp, p),
                None => (Proto::Ip(47), (0, 0)),
            };
            let key = FlowKey { src: addr(a), dst: addr(b), sport: sp, dport: dp, proto };
            // The spec's tuple, fed to the hasher piece by piece.
            let (mut x, mut y, mut xp, mut yp) = (key.src.wire_bytes(), key.dst.wire_bytes(), sp, dp);
            if (x, xp) > (y, yp) {
                (x, y, xp, yp) = (y, x, yp, xp);
            }
            let mut h = sha1::Sha1::new();
            h.update([0, 0]);
            h.update(x);
            h.update(y);
            h.update([proto.number(), 0]);
            if ports.is_some() {
                h.update(xp.to_be_bytes());
                h.update(yp.to_be_bytes());
            }
            let mut want = *b"1:0000000000000000000000000000";
            base64(&h.finalize().into(), &mut want[2..]);
            proptest::prop_assert_eq!(
                community_id(&key).unwrap(),
                String::from_utf8(want.to_vec()).unwrap()
            );
        }
    }

    /// Expected values computed with the reference Python package
    /// (`pip install communityid`, CommunityID().calc(FlowTuple...)); the first
    /// is also the spec's own tcp.pcap baseline.
    #[test]
    fn matches_reference_implementation() {
        let tcp = k("128.232.110.120", "66.35.250.204", 34855, 80, Proto::Tcp);
        assert_eq!(
            community_id(&tcp).unwrap(),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(&tcp.reversed()).unwrap(),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        let udp = k("10.0.0.2", "10.0.0.1", 53, 5353, Proto::Udp);
        assert_eq!(
            community_id(&udp).unwrap(),
            "1:6ShADtBMSf9PCJmUQKnw1SEPH+c="
        );
        let v6 = k("2001:db8::1", "2001:db8::2", 443, 1234, Proto::Tcp);
        assert_eq!(community_id(&v6).unwrap(), "1:Uk4/++2abS+SlbPVug8GUHvKU54=");
        let gre = k("10.0.0.1", "10.0.0.2", 0, 0, Proto::Ip(47));
        assert_eq!(
            community_id(&gre).unwrap(),
            "1:+KlEHDT0vJgzs/eNmzHq0aSpRYw="
        );
    }
}
