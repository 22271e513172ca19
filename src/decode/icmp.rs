//! ICMPv4 type 3 and ICMPv6 type 1: key the error by the probe it quotes.
//!
//! The quote is parsed leniently with etherparse's `LaxIpSlice`: routers quote
//! the original IP header plus "at least the first 8 bytes" of its payload
//! (RFC 792), so the quoted IP length field nearly always promises more than is
//! there. Eight transport bytes hold both ports and, for TCP, the sequence number
//! that ties the error to one attempt; we read them ourselves because
//! etherparse's TCP slice wants a whole 20-byte header.

use etherparse::{IpNumber, LaxIpSlice};

use super::{Addr, Decoded, FlowKey, Proto, Skip, Summary, What};

/// ICMPv4 destination-unreachable code 4: "fragmentation needed and DF set".
const CODE_FRAG_NEEDED: u8 = 4;

pub(super) fn icmpv4(icmp: &[u8], sender: Addr, ts: i64, vlan: [u16; 2]) -> Decoded {
    let (Some(&ty), Some(&code)) = (icmp.first(), icmp.get(1)) else {
        return Decoded::Skip(Skip::Truncated);
    };
    match (ty, code) {
        (3, CODE_FRAG_NEEDED) => Decoded::Skip(Skip::IcmpPmtu),
        (3, _) => quoted(icmp, ty, code, sender, ts, vlan, false),
        _ => Decoded::Skip(Skip::IcmpOther),
    }
}

pub(super) fn icmpv6(icmp: &[u8], sender: Addr, ts: i64, vlan: [u16; 2]) -> Decoded {
    let (Some(&ty), Some(&code)) = (icmp.first(), icmp.get(1)) else {
        return Decoded::Skip(Skip::Truncated);
    };
    match ty {
        1 => quoted(icmp, ty, code, sender, ts, vlan, true),
        // Packet Too Big: IPv6's path-MTU discovery.
        2 => Decoded::Skip(Skip::IcmpPmtu),
        _ => Decoded::Skip(Skip::IcmpOther),
    }
}

/// An ICMP (`v6` false) or ICMPv6 error, its quote after 8 bytes.
fn quoted(
    icmp: &[u8],
    icmp_type: u8,
    code: u8,
    sender: Addr,
    ts: i64,
    vlan: [u16; 2],
    v6: bool,
) -> Decoded {
    // An error quotes a packet of its own family and travels in that family
    // (RFC 792, RFC 4443). ICMPv6 carried by IPv4 (or ICMP by IPv6), or a
    // quote of the other family, would charge a probe to hosts of a family
    // the error never came from: forged, like an IPv4-mapped quote.
    if sender.is_v4() == v6 {
        return Decoded::Skip(Skip::IcmpBadQuote);
    }
    // 8 bytes of ICMP header (type, code, checksum, unused/MTU), then the quote.
    let Some(quote) = icmp.get(8..) else {
        return Decoded::Skip(Skip::Truncated);
    };
    match parse_quote(quote, v6) {
        Some(Quote::NotProbe) => Decoded::Skip(Skip::IcmpNotProbe),
        Some(Quote::Probe(key, quoted_seq, quoted_flags)) => Decoded::Interesting(Summary {
            ts,
            key,
            vlan,
            what: What::Unreach {
                icmp_type,
                code,
                sender,
                quoted_seq,
                quoted_flags,
            },
        }),
        None => Decoded::Skip(Skip::IcmpBadQuote),
    }
}

/// What an ICMP error quotes.
enum Quote {
    /// A probe: its flow key, and for TCP the quoted sequence number and flags.
    Probe(FlowKey, Option<u32>, Option<u8>),
    /// An ICMP error or answer (see [`Skip::IcmpNotProbe`]).
    NotProbe,
}

/// ICMP types that are errors or answers: a quote of one is no probe.
/// Echo reply, the errors (unreachable, source quench, redirect, time
/// exceeded, parameter problem), router advertisement, timestamp,
/// information and address mask replies, extended echo reply (RFC 792, 950,
/// 1256, 8335). Every other type, requests and types unknown here alike,
/// stays a probe: a sweep must not hide behind a type this list forgot.
const ICMP_NOT_PROBES: [u8; 11] = [0, 3, 4, 5, 9, 11, 12, 14, 16, 18, 43];

/// ICMPv6: the errors (below 128), echo reply, MLD reports and done,
/// router and neighbour advertisements, redirect, node information reply,
/// MLDv2 report, extended echo reply (RFC 4443, 2710, 4861, 4620, 3810,
/// 8335).
fn icmpv6_not_probe(ty: u8) -> bool {
    ty < 128 || matches!(ty, 129 | 131 | 132 | 134 | 136 | 137 | 140 | 143 | 161)
}

/// What the quote is; `None` unless it is an IPv6 (`v6`) or IPv4 packet
/// whose probe can be keyed.
fn parse_quote(quote: &[u8], v6: bool) -> Option<Quote> {
    let (ip, _ext_err) = LaxIpSlice::from_slice(quote).ok()?;
    if matches!(ip, LaxIpSlice::Ipv6(_)) != v6 {
        return None;
    }
    // A quoted non-first fragment has no transport header to key on.
    let later_fragment = match &ip {
        LaxIpSlice::Ipv4(v4) => v4.header().fragments_offset().value() != 0,
        // Our own walker, not etherparse's extension iterator: that one panics
        // on some truncated lax slices (etherparse 0.21,
        // ipv6_raw_ext_header_slice.rs:87; found by `cargo fuzz run decode`).
        LaxIpSlice::Ipv6(_) => matches!(super::ipv6_transport(quote), Err(Skip::Fragment)),
    };
    if later_fragment {
        return None;
    }
    let src = Addr::from(ip.source_addr());
    let dst = Addr::from(ip.destination_addr());
    // An IPv4-mapped address in a quoted IPv6 header would key the probe as
    // an IPv4 flow (see `Skip::V4Mapped`).
    if v6 && (src.is_v4() || dst.is_v4()) {
        return None;
    }
    let payload = ip.payload();
    let t = payload.payload;
    // A quote whose walk stops inside an extension header (IPv4's AH,
    // IPv6's options, routing, fragment) keys on that header's number: an
    // IP protocol scan (`nmap -sO`) probes those protocols with a bare or
    // garbage header, and an ICMP error quotes as much of its probe as fits
    // (ICMPv6: up to 1280 bytes), so a short walk is that probe, not a cut.
    match (payload.ip_number, t.first()) {
        (IpNumber::ICMP, Some(ty)) if !v6 && ICMP_NOT_PROBES.contains(ty) => {
            return Some(Quote::NotProbe);
        }
        (IpNumber::IPV6_ICMP, Some(&ty)) if v6 && icmpv6_not_probe(ty) => {
            return Some(Quote::NotProbe);
        }
        _ => {}
    }
    let proto = Proto::from_ip_number(payload.ip_number.0);
    let (sport, dport, seq, flags) = match payload.ip_number {
        IpNumber::TCP | IpNumber::UDP => {
            // Ports need 4 bytes; RFC 792's 8 bytes also give TCP's sequence number.
            if t.len() < 8 {
                return None;
            }
            let sport = u16::from_be_bytes([t[0], t[1]]);
            let dport = u16::from_be_bytes([t[2], t[3]]);
            if payload.ip_number == IpNumber::TCP {
                let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
                (sport, dport, Some(seq), t.get(13).copied())
            } else {
                (sport, dport, None, None)
            }
        }
        // ICMP echo, GRE, ... (ping sweeps, IP protocol scans): no ports to key.
        _ => (0, 0, None, None),
    };
    Some(Quote::Probe(
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        },
        seq,
        flags,
    ))
}
