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
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(a);
    h.update(b);
    h.update([k.proto.number(), 0]);
    if let (Some(s), Some(d)) = (sport, dport) {
        h.update(s.to_be_bytes());
        h.update(d.to_be_bytes());
    }
    out.push_str("1:");
    base64(&h.finalize(), out);
    true
}

fn base64(data: &[u8], out: &mut String) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
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
