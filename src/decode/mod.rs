//! Frame bytes → one small `Copy` [`Summary`] per packet that matters.
//!
//! # What is kept
//! The tracker needs only the packets that start, answer or end a connection
//! attempt, so the decoder keeps:
//! * TCP segments with SYN, RST or FIN set, and segments without ACK (stealth
//!   probes: FIN, NULL, Xmas scans never carry ACK, while every segment of an
//!   established connection does);
//! * ICMPv4 type 3 / ICMPv6 type 1 (destination unreachable) with the quoted
//!   original header, except "fragmentation needed" (path-MTU discovery, not a
//!   failure);
//! * ARP requests and replies.
//!
//! Every other TCP segment (ACK or data of an established flow, about 94% of a
//! SPAN port's traffic) is reported as [`Decoded::Established`]: the tracker uses
//! it only as proof that a handshake completed when the SYN-ACK was not captured,
//! and to tell an ACK probe from a connection abort.
//!
//! # Fast reject
//! For the common frame (Ethernet, at most two VLAN tags, IPv4 or IPv6 without
//! extension headers, TCP) the verdict comes from a handful of byte loads at fixed
//! offsets, before anything else is read.
//!
//! # Untrusted input
//! [`decode`] is the one entry point for untrusted bytes. Every offset is checked
//! against the slice length before it is read (`get`, never unchecked indexing), so
//! no input can make it panic; a packet too short for the headers it announces is
//! [`Skip::Truncated`], one whose headers contradict themselves is
//! [`Skip::Malformed`]. Both are counted by the caller, never logged per packet.

mod addr;
mod icmp;
mod link;

pub use addr::Addr;

/// TCP header flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}
use tcp_flags::*;

/// The protocol of a flow key. ARP is not an IP protocol, but an unanswered ARP
/// request is a failed attempt to reach an on-link address, so it is keyed too.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Arp,
    /// Any other IP protocol, by its IANA number (seen in IP protocol scans).
    Ip(u8),
}

impl Proto {
    pub(crate) fn from_ip_number(n: u8) -> Proto {
        match n {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            1 => Proto::Icmp,
            58 => Proto::Icmpv6,
            n => Proto::Ip(n),
        }
    }

    /// The IANA protocol number (ARP has none: 0).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
            Proto::Icmpv6 => 58,
            Proto::Arp => 0,
            Proto::Ip(n) => n,
        }
    }
}

/// A directed flow: `src` is the side that sent the packet (or, for ICMP errors,
/// the side that sent the quoted probe).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: Proto,
}

impl FlowKey {
    /// The same flow seen from the other side.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

/// What an interesting packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A TCP segment with SYN, FIN or RST set, or without ACK.
    Tcp { flags: u8, seq: u32, ack: u32 },
    /// ICMPv4 type 3 or ICMPv6 type 1. The summary's key is the *quoted* probe
    /// (source = the prober), so it lands where the probe's attempt lives.
    Unreach {
        /// ICMP type (3 for ICMPv4, 1 for ICMPv6) and code.
        icmp_type: u8,
        code: u8,
        /// Who sent the error: a router, or the target itself. Proves that
        /// address is alive, not the probed one.
        sender: Addr,
        /// The quoted TCP sequence number, when the quote holds it (8 bytes do).
        quoted_seq: Option<u32>,
        /// The quoted TCP flags, when the quote holds 14 bytes or more.
        quoted_flags: Option<u8>,
    },
    /// ARP request (`reply == false`) or reply; key.src is the sender protocol
    /// address, key.dst the target protocol address.
    Arp { reply: bool },
}

/// One interesting packet, summarised. Small and `Copy`: it travels through the
/// channels by value; the frame never leaves the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Capture time, ns since the Unix epoch.
    pub ts: i64,
    pub key: FlowKey,
    /// Outer and inner 802.1Q/802.1ad VLAN ids, 0 when absent.
    pub vlan: [u16; 2],
    pub what: What,
}

/// Why a packet was not kept. Counted per reason in the run summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Skip {
    /// Neither IPv4, IPv6 nor ARP (LLDP, STP, IPX, ...).
    NotIp = 0,
    /// UDP: not tracked (a UDP probe counts only through the ICMP error it draws).
    Udp,
    /// ICMP other than destination unreachable (echo, time exceeded, NDP, ...).
    IcmpOther,
    /// ICMP "fragmentation needed" / path-MTU discovery: not a failure.
    IcmpPmtu,
    /// ICMP error whose quote is too short or not an IP/TCP/UDP header we can key.
    IcmpBadQuote,
    /// Other IP protocols (GRE, ESP, OSPF, ...).
    OtherProto,
    /// A non-first IP fragment: no transport header to read.
    Fragment,
    /// Shorter than the headers it announces (snaplen, or a cut frame).
    Truncated,
    /// Header fields that contradict themselves (IHL < 5, bad version, ...).
    Malformed,
    /// IPv6 with an IPv4-mapped source or destination (`::ffff:0:0/96`).
    /// Such addresses never appear on the wire (RFC 4291 §2.5.5.2; RFC 6890
    /// marks the block not forwardable), and [`Addr`] stores IPv4 addresses
    /// in exactly that form: decoded, a forged IPv6 packet would speak for
    /// the IPv4 host, making it look alive or framing it as a scanner.
    V4Mapped,
    /// ARP that is not an Ethernet/IPv4 request or reply, gratuitous ARP and probes.
    ArpOther,
    /// An ICMP error about an ICMP message that is not a request: an error
    /// (RFC 1122 §3.2.2 and RFC 4443 §2.4 forbid errors about errors) or an
    /// answer (an echo reply that could not be delivered, as the replies of
    /// a server pinged from spoofed sources). Nobody probed anything: counted
    /// as failures, they would frame the answering host as a scanner.
    IcmpNotProbe,
}

impl Skip {
    /// Every reason, in display order.
    pub const ALL: [Skip; 12] = [
        Skip::NotIp,
        Skip::Udp,
        Skip::IcmpOther,
        Skip::IcmpPmtu,
        Skip::IcmpBadQuote,
        Skip::OtherProto,
        Skip::Fragment,
        Skip::Truncated,
        Skip::Malformed,
        Skip::V4Mapped,
        Skip::ArpOther,
        Skip::IcmpNotProbe,
    ];

    /// snake_case name used in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotIp => "not_ip",
            Skip::Udp => "udp",
            Skip::IcmpOther => "icmp_other",
            Skip::IcmpPmtu => "icmp_pmtu",
            Skip::IcmpBadQuote => "icmp_bad_quote",
            Skip::OtherProto => "other_proto",
            Skip::Fragment => "fragment",
            Skip::Truncated => "truncated",
            Skip::Malformed => "malformed",
            Skip::V4Mapped => "v4_mapped",
            Skip::ArpOther => "arp_other",
            Skip::IcmpNotProbe => "icmp_not_probe",
        }
    }
}

/// The decoder's verdict on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A packet the tracker needs.
    Interesting(Summary),
    /// A TCP ACK/data segment (no SYN, FIN or RST; ACK set) of the flow `key`;
    /// the flag says whether it carries payload (an ACK probe carries none).
    Established(FlowKey, bool),
    /// Not kept, and why.
    Skip(Skip),
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Decode one captured frame of link type `link` (a `capture::linktype` value).
///
/// Never panics, whatever `pkt` holds: every read is bounds-checked.
#[inline]
pub fn decode(link: u16, ts: i64, pkt: &[u8]) -> Decoded {
    let mut vlan = [0u16; 2];
    let (ethertype, l3) = match link::l3_start(link, pkt, &mut vlan) {
        Ok(x) => x,
        Err(s) => return Decoded::Skip(s),
    };
    decode_l3(ethertype, &pkt[l3.min(pkt.len())..], ts, vlan)
}

/// Decode from the network layer on; `ethertype` says which network layer.
///
/// Inlined into the decode worker's loop: returned through memory, the flow
/// key was written in pieces and read back in words, and the failed store
/// forwarding stalled the router on every packet (`cargo bench --bench
/// decode`: decode+route 3% faster on the enterprise mix, 20% on the flood).
#[inline(always)]
fn decode_l3(ethertype: u16, ip: &[u8], ts: i64, vlan: [u16; 2]) -> Decoded {
    let l = match ethertype {
        ETH_IPV4 => match ipv4(ip) {
            Ok(l) => l,
            Err(s) => return Decoded::Skip(s),
        },
        ETH_IPV6 => match ipv6(ip) {
            Ok(l) => l,
            Err(s) => return Decoded::Skip(s),
        },
        ETH_ARP => return arp(ip, ts, vlan),
        _ => return Decoded::Skip(Skip::NotIp),
    };
    let l4 = &ip[l.l4..l.end];
    match l.proto {
        6 => tcp(l4, l.l4_len, l.src, l.dst, ts, vlan),
        17 => Decoded::Skip(Skip::Udp),
        1 => icmp::icmpv4(l4, l.src, ts, vlan),
        58 => icmp::icmpv6(l4, l.src, ts, vlan),
        _ => Decoded::Skip(Skip::OtherProto),
    }
}

/// Where an IP packet's transport header is.
struct L3 {
    src: Addr,
    dst: Addr,
    proto: u8,
    /// Offset of the transport header in the IP slice.
    l4: usize,
    /// End of the IP packet's bytes in the slice (≤ slice length; the IP
    /// length field trims Ethernet padding).
    end: usize,
    /// Transport length as the IP header declares it (more than is captured
    /// when snaplen cut the packet).
    l4_len: usize,
}

/// Inlined into [`decode_l3`] (its one caller): returned through memory, its
/// `L3` was written in pieces and copied at once, the same failed store
/// forwarding as in [`Addr::v4`].
#[inline(always)]
fn ipv4(ip: &[u8]) -> Result<L3, Skip> {
    let b0 = *ip.first().ok_or(Skip::Truncated)?;
    if b0 >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = usize::from(b0 & 0x0f) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    if ip.len() < ihl {
        return Err(Skip::Truncated);
    }
    // Non-first fragments carry no transport header.
    let frag = be16(ip, 6).ok_or(Skip::Truncated)?;
    if frag & 0x1fff != 0 {
        return Err(Skip::Fragment);
    }
    let total = usize::from(be16(ip, 2).ok_or(Skip::Truncated)?);
    // total_len 0 appears in captures of TSO-offloaded segments: trust the capture.
    let end = if total == 0 {
        ip.len()
    } else if total < ihl {
        return Err(Skip::Malformed);
    } else {
        total.min(ip.len())
    };
    let mut s = [0u8; 4];
    let mut d = [0u8; 4];
    s.copy_from_slice(&ip[12..16]);
    d.copy_from_slice(&ip[16..20]);
    Ok(L3 {
        src: Addr::v4(s),
        dst: Addr::v4(d),
        proto: ip[9],
        l4: ihl,
        end,
        l4_len: if total == 0 { end - ihl } else { total - ihl },
    })
}

/// IPv6 extension headers walked before the transport header at most: more
/// is an evasion attempt or garbage, and either way not a probe we can key.
pub(crate) const MAX_IPV6_EXTENSIONS: usize = 8;

/// Walk IPv6 extension headers to the transport header (at most
/// [`MAX_IPV6_EXTENSIONS`] of them).
pub(crate) fn ipv6_transport(ip: &[u8]) -> Result<(u8, usize), Skip> {
    let mut nh = *ip.get(6).ok_or(Skip::Truncated)?;
    let mut off = 40usize;
    // One more turn than extensions: the last reads the transport's number.
    for _ in 0..=MAX_IPV6_EXTENSIONS {
        match nh {
            // hop-by-hop, routing, destination options: length in 8-octet units, not counting the first 8
            0 | 43 | 60 => {
                let len = usize::from(*ip.get(off + 1).ok_or(Skip::Truncated)?) * 8 + 8;
                nh = ip[off];
                off += len;
            }
            // fragment header: fixed 8 bytes; a non-first fragment has no transport header
            44 => {
                let fo = be16(ip, off + 2).ok_or(Skip::Truncated)?;
                if fo & 0xfff8 != 0 {
                    return Err(Skip::Fragment);
                }
                nh = ip[off];
                off += 8;
            }
            // authentication header: length in 4-octet units, not counting the first 2
            51 => {
                let len = (usize::from(*ip.get(off + 1).ok_or(Skip::Truncated)?) + 2) * 4;
                nh = ip[off];
                off += len;
            }
            _ => return Ok((nh, off)),
        }
    }
    Err(Skip::Malformed)
}

fn ipv6(ip: &[u8]) -> Result<L3, Skip> {
    let b0 = *ip.first().ok_or(Skip::Truncated)?;
    if b0 >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    if ip.len() < 40 {
        return Err(Skip::Truncated);
    }
    let payload = usize::from(be16(ip, 4).ok_or(Skip::Truncated)?);
    // payload length 0: jumbogram or offloaded segment; trust the capture.
    let end = if payload == 0 {
        ip.len()
    } else {
        (40 + payload).min(ip.len())
    };
    let (proto, l4) = ipv6_transport(&ip[..end])?;
    if l4 > end {
        return Err(Skip::Truncated);
    }
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&ip[8..24]);
    d.copy_from_slice(&ip[24..40]);
    let (src, dst) = (Addr::v6(s), Addr::v6(d));
    if src.is_v4() || dst.is_v4() {
        return Err(Skip::V4Mapped);
    }
    Ok(L3 {
        src,
        dst,
        proto,
        l4,
        end,
        l4_len: if payload == 0 {
            end - l4
        } else {
            (40 + payload).saturating_sub(l4)
        },
    })
}

/// TCP: the first 14 bytes (ports, seq, ack, data offset, flags) are enough, so a
/// snaplen-cut header still yields its flags.
#[inline]
fn tcp(t: &[u8], declared_len: usize, src: Addr, dst: Addr, ts: i64, vlan: [u16; 2]) -> Decoded {
    if t.len() < 14 {
        return Decoded::Skip(Skip::Truncated);
    }
    let flags = t[13];
    let key = FlowKey {
        src,
        dst,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        proto: Proto::Tcp,
    };
    // Fast reject: ACK set and none of SYN/FIN/RST is an established flow's segment.
    if flags & (SYN | FIN | RST) == 0 && flags & ACK != 0 {
        let header = usize::from(t[12] >> 4) * 4;
        return Decoded::Established(key, declared_len > header);
    }
    Decoded::Interesting(Summary {
        ts,
        key,
        vlan,
        what: What::Tcp {
            flags,
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        },
    })
}

fn arp(a: &[u8], ts: i64, vlan: [u16; 2]) -> Decoded {
    if a.len() < 28 {
        return Decoded::Skip(Skip::Truncated);
    }
    // Ethernet hardware (1), IPv4 protocol, 6-byte MACs, 4-byte addresses.
    if be16(a, 0) != Some(1) || be16(a, 2) != Some(ETH_IPV4) || a[4] != 6 || a[5] != 4 {
        return Decoded::Skip(Skip::ArpOther);
    }
    let reply = match be16(a, 6) {
        Some(1) => false,
        Some(2) => true,
        _ => return Decoded::Skip(Skip::ArpOther),
    };
    let mut s = [0u8; 4];
    let mut t = [0u8; 4];
    s.copy_from_slice(&a[14..18]);
    t.copy_from_slice(&a[24..28]);
    // Gratuitous ARP (sender == target) and probes (sender 0.0.0.0, RFC 5227)
    // announce or check the sender's own address: no attempt to reach anyone.
    if s == t || s == [0; 4] || t == [0; 4] {
        return Decoded::Skip(Skip::ArpOther);
    }
    Decoded::Interesting(Summary {
        ts,
        key: FlowKey {
            src: Addr::v4(s),
            dst: Addr::v4(t),
            sport: 0,
            dport: 0,
            proto: Proto::Arp,
        },
        vlan,
        what: What::Arp { reply },
    })
}

#[cfg(test)]
mod tests;
