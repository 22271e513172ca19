//! Packet builder: Ethernet II frames carrying ARP, IPv4 or IPv6 with TCP, UDP,
//! ICMP or raw (fragment) payloads, written into one reused `Vec<u8>`.
//!
//! The builder is on the hot path of the benchmark profiles (millions of frames a
//! second), so it never allocates after warm-up, and it only materialises the
//! bytes that will be captured: a frame built with a capture limit (`cap`, the
//! snaplen) stops writing payload at the limit, while every length field and
//! checksum still describes the whole packet on the wire. Payloads are either a
//! constant fill byte, whose checksum contribution is computed in O(1) whatever
//! its length, or explicit bytes (DNS messages, ICMP quotes).
//!
//! All checksums (IPv4 header, TCP, UDP, ICMPv4, ICMPv6) are correct for the full
//! packet; the tests check them against `etherparse`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Minimum Ethernet frame length without FCS. Frames observed on a SPAN port
/// carry the sender's padding, so short frames are padded to this by default.
pub const ETH_MIN_FRAME: usize = 60;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u8 = 0x20;
}

/// IP protocol numbers used here.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// 802.1Q tagging of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Vlan {
    /// Untagged.
    #[default]
    None,
    /// One 802.1Q tag (TPID 0x8100) with this VLAN id.
    Dot1Q(u16),
    /// 802.1ad QinQ: outer service tag (TPID 0x88a8), inner customer tag (0x8100).
    QinQ {
        /// Service VLAN id (outer tag).
        outer: u16,
        /// Customer VLAN id (inner tag).
        inner: u16,
    },
}

impl Vlan {
    /// Bytes the tags add to the Ethernet header.
    pub fn len(self) -> usize {
        match self {
            Vlan::None => 0,
            Vlan::Dot1Q(_) => 4,
            Vlan::QinQ { .. } => 8,
        }
    }

    /// Whether the frame is untagged.
    pub fn is_empty(self) -> bool {
        self == Vlan::None
    }
}

/// The MAC address we give a host: locally administered (0x02), derived from
/// its IP so that a capture's MACs are consistent and readable (02:00:a.b.c.d for
/// IPv4, 02:06 + the low 32 bits for IPv6).
pub fn mac_of(ip: IpAddr) -> Mac {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x02, 0x00, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x02, 0x06, o[12], o[13], o[14], o[15]]
        }
    }
}

/// IPv4 fragmentation fields / IPv6 fragment extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frag {
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
}

/// An optional IPv6 extension header placed before the upper layer (and before
/// the fragment header, if any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ext6 {
    /// None.
    #[default]
    None,
    /// Hop-by-hop options (next header 0), 8 bytes, one PadN option.
    HopByHop,
    /// Destination options (next header 60), 8 bytes, one PadN option.
    DestOpts,
}

/// The IP layer of a packet. `src` and `dst` must be of the same family.
#[derive(Clone, Copy, Debug)]
pub struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// IPv4 identification (low 16 bits); IPv6 fragment identification.
    pub id: u32,
    /// IPv4 don't-fragment flag.
    pub df: bool,
    /// Fragmentation (IPv4 header fields, or an IPv6 fragment header).
    pub frag: Option<Frag>,
    /// IPv4 options, padded with end-of-options to a multiple of 4 bytes (max 40).
    pub options: &'a [u8],
    /// IPv6 extension header.
    pub ext: Ext6,
}

impl<'a> Ip<'a> {
    /// A plain packet: TTL 64, DF set, no options, no fragmentation.
    pub fn new(src: IpAddr, dst: IpAddr) -> Self {
        Ip {
            src,
            dst,
            ttl: 64,
            tos: 0,
            id: 0,
            df: true,
            frag: None,
            options: &[],
            ext: Ext6::None,
        }
    }

    /// Set the TTL / hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Set the IPv4 identification / IPv6 fragment id.
    pub fn id(mut self, id: u32) -> Self {
        self.id = id;
        self
    }

    /// Whether this is an IPv6 packet.
    pub fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }
}

/// A TCP header. Options are laid out the way the common stacks do it: MSS,
/// SACK-permitted, timestamps, window scale (Linux order), NOP-padded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags, see [`tcp_flags`].
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// Urgent pointer.
    pub urg: u16,
    /// MSS option (SYN and SYN-ACK).
    pub mss: Option<u16>,
    /// Window-scale option (SYN and SYN-ACK).
    pub wscale: Option<u8>,
    /// SACK-permitted option (SYN and SYN-ACK).
    pub sack_perm: bool,
    /// Timestamps option (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
}

impl Tcp {
    /// A header with no options.
    pub fn new(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, window: u16) -> Self {
        Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            ..Tcp::default()
        }
    }

    /// Length of the options, padded to a multiple of 4.
    fn options_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        match (self.sack_perm, self.ts.is_some()) {
            (true, true) => n += 12,  // SACK_PERM + TS share a 12-byte block
            (false, true) => n += 12, // NOP NOP TS
            (true, false) => n += 4,  // NOP NOP SACK_PERM
            (false, false) => {}
        }
        if self.wscale.is_some() {
            n += 4; // NOP WS
        }
        n
    }

    /// Header length including options.
    pub fn header_len(&self) -> usize {
        20 + self.options_len()
    }
}

/// Transport payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// `len` bytes all equal to `byte`. Checksummed in O(1) and only written up
    /// to the capture limit, which is what makes 1500-byte data segments cheap.
    Fill {
        /// The fill byte.
        byte: u8,
        /// Length on the wire.
        len: usize,
    },
    /// Explicit bytes.
    Bytes(&'a [u8]),
}

impl Payload<'_> {
    /// No payload.
    pub const EMPTY: Payload<'static> = Payload::Fill { byte: 0, len: 0 };

    /// Length on the wire.
    pub fn len(&self) -> usize {
        match self {
            Payload::Fill { len, .. } => *len,
            Payload::Bytes(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The layer above IP.
#[derive(Clone, Copy, Debug)]
pub enum L4<'a> {
    /// TCP segment.
    Tcp(Tcp, Payload<'a>),
    /// UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: Payload<'a>,
    },
    /// Destination unreachable: ICMPv4 type 3 or ICMPv6 type 1 (by address
    /// family), quoting (part of) the offending packet, see [`Frame::quote`].
    Unreach {
        /// ICMP code (v4: 0 net, 1 host, 3 port, 4 frag-needed, 13 admin
        /// prohibited...; v6: 0 no route, 1 admin prohibited, 3 address, 4 port).
        code: u8,
        /// Next-hop MTU for ICMPv4 code 4 (fragmentation needed), else 0.
        mtu: u16,
        /// The quoted bytes: the original IP header and the start of its payload.
        quote: &'a [u8],
    },
    /// ICMP echo request or reply (v4 type 8/0, v6 type 128/129).
    Echo {
        /// Reply rather than request.
        reply: bool,
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
        /// Payload.
        payload: Payload<'a>,
    },
    /// Raw upper-layer bytes with the given protocol number and no checksum
    /// processing: the pieces of a fragmented datagram.
    Raw {
        /// IP protocol / IPv6 next header of the fragmented datagram.
        proto: u8,
        /// The bytes of this fragment.
        data: &'a [u8],
    },
}

/// How much of the offending packet an ICMP error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quote {
    /// The IP header (with options / extension headers) plus the first 8 bytes of
    /// the transport header, the RFC 792 minimum (old routers).
    Bytes8,
    /// As much as fits in a 576-byte (IPv4, RFC 1812) or 1280-byte (IPv6,
    /// RFC 4443) ICMP error, what modern hosts and routers send.
    Full,
}

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// Who-has (broadcast).
    Request,
    /// Is-at (unicast to the requester).
    Reply,
}

/// A reusable frame buffer and the builder that fills it.
#[derive(Clone, Debug)]
pub struct Frame {
    data: Vec<u8>,
    /// Header scratch, reused so it is not zeroed for every frame.
    hdr: Hdr,
    wire_len: usize,
    cap: usize,
    pad: bool,
    l3: usize,
    l4: usize,
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl Frame {
    /// A builder that materialises whole frames and pads them to 60 bytes.
    pub fn new() -> Self {
        Self::with_cap(usize::MAX)
    }

    /// A builder that writes at most `cap` bytes of each frame (the snaplen);
    /// [`Frame::wire_len`] still reports the full length.
    pub fn with_cap(cap: usize) -> Self {
        Frame {
            data: Vec::with_capacity(cap.min(2048)),
            hdr: Hdr::new(),
            wire_len: 0,
            cap,
            pad: true,
            l3: 0,
            l4: 0,
        }
    }

    /// Whether frames shorter than 60 bytes get Ethernet padding (default: yes,
    /// as seen on a SPAN port; a capture on the sending host has none).
    pub fn set_pad(&mut self, pad: bool) {
        self.pad = pad;
    }

    /// The captured bytes of the last frame built (at most `cap`).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Length of the last frame on the wire.
    #[inline]
    pub fn wire_len(&self) -> usize {
        self.wire_len
    }

    /// The IP packet of the last frame (captured part), from its IP header on.
    pub fn ip_packet(&self) -> &[u8] {
        &self.data[self.l3.min(self.data.len())..]
    }

    /// The transport bytes of the last frame (captured part), after the IP
    /// header and any extension headers.
    pub fn transport(&self) -> &[u8] {
        &self.data[self.l4.min(self.data.len())..]
    }

    /// The bytes an ICMP error about the last frame quotes. The frame must have
    /// been built without a capture limit cutting into that range.
    pub fn quote(&self, q: Quote) -> &[u8] {
        let ip = &self.data[self.l3..];
        // Exclude Ethernet padding: the IP packet ends where its length says.
        let ip_len = self.wire_len.min(self.data.len()) - self.l3;
        let ip_len = if ip[0] >> 4 == 4 {
            (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip_len)
        } else {
            (40 + u16::from_be_bytes([ip[4], ip[5]]) as usize).min(ip_len)
        };
        let want = match q {
            Quote::Bytes8 => self.l4 - self.l3 + 8,
            // 576 / 1280 minus the outer IP header and the 8-byte ICMP header.
            Quote::Full if ip[0] >> 4 == 4 => 576 - 20 - 8,
            Quote::Full => 1280 - 40 - 8,
        };
        &ip[..want.min(ip_len)]
    }

    /// Build an IP frame: Ethernet II with MACs derived from the IPs, `vlan`
    /// tags, the IP header described by `ip`, and `l4`.
    ///
    /// # Panics
    /// If `ip.src` and `ip.dst` are of different families, or a Raw/ICMP payload
    /// does not fit the family.
    pub fn build(&mut self, vlan: Vlan, ip: &Ip, l4: &L4) {
        // Headers are assembled in a stack buffer and copied into `data` in one
        // go: cheaper than a dozen small pushes with a capacity check each.
        let v6 = ip.is_v6();
        let h = &mut self.hdr;
        h.n = 0;
        h.eth(
            &mac_of(ip.dst),
            &mac_of(ip.src),
            vlan,
            if v6 { 0x86dd } else { 0x0800 },
        );
        let l3 = h.n;

        let (proto, l4_hdr_len, payload) = match l4 {
            L4::Tcp(t, p) => (proto::TCP, t.header_len(), *p),
            L4::Udp { payload, .. } => (proto::UDP, 8, *payload),
            L4::Unreach { quote, .. } => (icmp_proto(v6), 8, Payload::Bytes(quote)),
            L4::Echo { payload, .. } => (icmp_proto(v6), 8, *payload),
            L4::Raw { proto, data } => (*proto, 0, Payload::Bytes(data)),
        };
        let l4_len = l4_hdr_len + payload.len();

        // IP header, and the pseudo-header sum for the transport checksum.
        let pseudo = match (ip.src, ip.dst) {
            (IpAddr::V4(s), IpAddr::V4(t)) => h.ipv4(ip, s, t, proto, l4_len),
            (IpAddr::V6(s), IpAddr::V6(t)) => h.ipv6(ip, s, t, proto, l4_len),
            _ => panic!("IP source and destination of different families"),
        };
        let l4_off = h.n;

        // Transport header with a zero checksum, then the checksum over header
        // and payload.
        let ck_at = match l4 {
            L4::Tcp(t, _) => {
                h.tcp(t);
                Some(l4_off + 16)
            }
            L4::Udp { sport, dport, .. } => {
                h.u16(*sport);
                h.u16(*dport);
                h.u16(l4_len as u16);
                h.u16(0);
                Some(l4_off + 6)
            }
            L4::Unreach { code, mtu, .. } => {
                let ty = if v6 { 1 } else { 3 };
                h.put(&[ty, *code, 0, 0, 0, 0]);
                h.u16(*mtu);
                Some(l4_off + 2)
            }
            L4::Echo { reply, id, seq, .. } => {
                let ty = match (v6, reply) {
                    (false, false) => 8,
                    (false, true) => 0,
                    (true, false) => 128,
                    (true, true) => 129,
                };
                h.put(&[ty, 0, 0, 0]);
                h.u16(*id);
                h.u16(*seq);
                Some(l4_off + 2)
            }
            L4::Raw { .. } => None,
        };
        if let Some(at) = ck_at {
            // ICMPv4 has no pseudo-header; everything else does.
            let mut sum = if proto == proto::ICMP { 0 } else { pseudo };
            sum = sum_bytes(sum, &h.b[l4_off..h.n]);
            sum = match payload {
                Payload::Fill { byte, len } => sum_fill(sum, byte, len),
                Payload::Bytes(b) => sum_bytes(sum, b),
            };
            let mut ck = fold(sum);
            if proto == proto::UDP && ck == 0 {
                ck = 0xffff; // 0 means "no checksum" in UDP
            }
            h.b[at..at + 2].copy_from_slice(&ck.to_be_bytes());
        }

        let d = &mut self.data;
        d.clear();
        d.extend_from_slice(&h.b[..h.n]);
        let room = self.cap.saturating_sub(d.len());
        match payload {
            Payload::Fill { byte, len } => d.resize(d.len() + len.min(room), byte),
            Payload::Bytes(b) => d.extend_from_slice(&b[..b.len().min(room)]),
        }
        self.l3 = l3;
        self.l4 = l4_off;
        self.wire_len = l4_off + l4_len;
        self.finish();
    }

    /// Build an ARP frame (Ethernet, IPv4). A request is broadcast with an empty
    /// target MAC; a reply goes to the requester. MACs come from [`mac_of`].
    pub fn arp(&mut self, vlan: Vlan, op: ArpOp, sender: Ipv4Addr, target: Ipv4Addr) {
        let d = &mut self.data;
        d.clear();
        let smac = mac_of(IpAddr::V4(sender));
        let (eth_dst, tmac) = match op {
            ArpOp::Request => ([0xff; 6], [0; 6]),
            ArpOp::Reply => (mac_of(IpAddr::V4(target)), mac_of(IpAddr::V4(target))),
        };
        let mut h = Hdr::new();
        h.eth(&eth_dst, &smac, vlan, 0x0806);
        d.extend_from_slice(&h.b[..h.n]);
        self.l3 = d.len();
        let opcode: u16 = if op == ArpOp::Request { 1 } else { 2 };
        d.extend_from_slice(&[0, 1, 8, 0, 6, 4]); // Ethernet / IPv4, lengths
        d.extend_from_slice(&opcode.to_be_bytes());
        d.extend_from_slice(&smac);
        d.extend_from_slice(&sender.octets());
        d.extend_from_slice(&tmac);
        d.extend_from_slice(&target.octets());
        self.l4 = d.len();
        self.wire_len = d.len();
        self.finish();
    }

    /// Ethernet padding, then the capture limit.
    fn finish(&mut self) {
        if self.pad && self.wire_len < ETH_MIN_FRAME {
            let room = self.cap.saturating_sub(self.data.len());
            let n = (ETH_MIN_FRAME - self.wire_len).min(room);
            self.data.resize(self.data.len() + n, 0);
            self.wire_len = ETH_MIN_FRAME;
        }
        self.data.truncate(self.cap);
    }
}

fn icmp_proto(v6: bool) -> u8 {
    if v6 { proto::ICMPV6 } else { proto::ICMP }
}

/// Stack buffer for the headers of one frame (Ethernet with two tags 22 +
/// IPv4 with options 60 or IPv6 with extensions 56 + TCP with options 60 +
/// ICMP 8 fits in 160).
#[derive(Clone, Debug)]
struct Hdr {
    b: [u8; 160],
    n: usize,
}

impl Hdr {
    #[inline(always)]
    fn new() -> Self {
        Hdr { b: [0; 160], n: 0 }
    }

    #[inline(always)]
    fn put(&mut self, s: &[u8]) {
        self.b[self.n..self.n + s.len()].copy_from_slice(s);
        self.n += s.len();
    }

    #[inline(always)]
    fn u8(&mut self, v: u8) {
        self.b[self.n] = v;
        self.n += 1;
    }

    #[inline(always)]
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    #[inline(always)]
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    #[inline(always)]
    fn eth(&mut self, dst: &Mac, src: &Mac, vlan: Vlan, ethertype: u16) {
        self.put(dst);
        self.put(src);
        match vlan {
            Vlan::None => {}
            Vlan::Dot1Q(id) => {
                self.u16(0x8100);
                self.u16(id & 0x0fff);
            }
            Vlan::QinQ { outer, inner } => {
                self.u16(0x88a8);
                self.u16(outer & 0x0fff);
                self.u16(0x8100);
                self.u16(inner & 0x0fff);
            }
        }
        self.u16(ethertype);
    }

    /// IPv4 header; returns the TCP/UDP pseudo-header sum.
    #[inline]
    fn ipv4(&mut self, ip: &Ip, s: Ipv4Addr, t: Ipv4Addr, proto: u8, l4_len: usize) -> u64 {
        assert!(ip.options.len() <= 40, "IPv4 options longer than 40 bytes");
        let opt_len = ip.options.len().div_ceil(4) * 4;
        let hlen = 20 + opt_len;
        let total = hlen + l4_len;
        let start = self.n;
        let mut flags_off: u16 = 0;
        if ip.df {
            flags_off |= 0x4000;
        }
        if let Some(f) = ip.frag {
            flags_off |= f.offset & 0x1fff;
            if f.more {
                flags_off |= 0x2000;
            }
        }
        self.u8(0x40 | (hlen / 4) as u8);
        self.u8(ip.tos);
        self.u16(total as u16);
        self.u16(ip.id as u16);
        self.u16(flags_off);
        self.u8(ip.ttl);
        self.u8(proto);
        self.u16(0);
        self.put(&s.octets());
        self.put(&t.octets());
        self.put(ip.options);
        // Pad the options with end-of-options (0) to a multiple of 4 bytes.
        self.b[self.n..start + hlen].fill(0);
        self.n = start + hlen;
        let ck = fold(sum_bytes(0, &self.b[start..self.n]));
        self.b[start + 10..start + 12].copy_from_slice(&ck.to_be_bytes());

        let p = u32::from(s) as u64 + u32::from(t) as u64;
        p + proto as u64 + l4_len as u64
    }

    /// IPv6 header and extension headers; returns the pseudo-header sum.
    #[inline]
    fn ipv6(&mut self, ip: &Ip, s: Ipv6Addr, t: Ipv6Addr, proto: u8, l4_len: usize) -> u64 {
        let ext_len =
            if ip.ext == Ext6::None { 0 } else { 8 } + if ip.frag.is_some() { 8 } else { 0 };
        let first_next = match (ip.ext, ip.frag) {
            (Ext6::HopByHop, _) => 0,
            (Ext6::DestOpts, _) => 60,
            (Ext6::None, Some(_)) => 44,
            (Ext6::None, None) => proto,
        };
        self.put(&[0x60 | (ip.tos >> 4), ip.tos << 4, 0, 0]);
        self.u16((ext_len + l4_len) as u16);
        self.u8(first_next);
        self.u8(ip.ttl);
        self.put(&s.octets());
        self.put(&t.octets());
        if ip.ext != Ext6::None {
            let next = if ip.frag.is_some() { 44 } else { proto };
            // Header length 0 (= 8 bytes); one PadN option filling the 6 bytes.
            self.put(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        if let Some(f) = ip.frag {
            self.put(&[proto, 0]);
            self.u16((f.offset << 3) | f.more as u16);
            self.u32(ip.id);
        }
        let mut p = sum_bytes(0, &s.octets());
        p = sum_bytes(p, &t.octets());
        p + proto as u64 + l4_len as u64
    }

    #[inline]
    fn tcp(&mut self, t: &Tcp) {
        let hlen = t.header_len();
        self.u16(t.sport);
        self.u16(t.dport);
        self.u32(t.seq);
        self.u32(t.ack);
        self.u8(((hlen / 4) as u8) << 4);
        self.u8(t.flags);
        self.u16(t.window);
        self.u16(0);
        self.u16(t.urg);
        if let Some(mss) = t.mss {
            self.put(&[2, 4]);
            self.u16(mss);
        }
        match (t.sack_perm, t.ts) {
            (true, Some((val, ecr))) => {
                self.put(&[4, 2, 8, 10]);
                self.u32(val);
                self.u32(ecr);
            }
            (false, Some((val, ecr))) => {
                self.put(&[1, 1, 8, 10]);
                self.u32(val);
                self.u32(ecr);
            }
            (true, None) => self.put(&[1, 1, 4, 2]),
            (false, None) => {}
        }
        if let Some(ws) = t.wscale {
            self.put(&[1, 3, 3, ws]);
        }
    }
}

/// Add `b` to a one's-complement sum, as big-endian 16-bit words. `b` must start
/// at an even offset of the checksummed data; an odd tail byte is the high byte
/// of a zero-padded word. Summing 32-bit words and folding later gives the same
/// result because 2^16 = 1 (mod 2^16 - 1).
#[inline]
pub fn sum_bytes(mut acc: u64, b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let r = chunks.remainder();
    match r.len() {
        1 => acc += (r[0] as u64) << 8,
        2 => acc += u16::from_be_bytes([r[0], r[1]]) as u64,
        3 => acc += u16::from_be_bytes([r[0], r[1]]) as u64 + ((r[2] as u64) << 8),
        _ => {}
    }
    acc
}

/// Add `len` bytes of value `byte` (starting at an even offset) in O(1).
#[inline]
fn sum_fill(acc: u64, byte: u8, len: usize) -> u64 {
    let word = byte as u64 * 0x0101;
    let mut acc = acc + (len as u64 / 2) * word;
    if len % 2 == 1 {
        acc += (byte as u64) << 8;
    }
    acc
}

/// Fold a one's-complement sum to 16 bits and complement it.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::{LinkExtSlice, NetSlice, SlicedPacket, TransportSlice};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }
    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Parse a full (uncut) frame with etherparse and check every checksum it
    /// carries. Returns the parsed packet for further assertions.
    pub(crate) fn check_frame(bytes: &[u8]) -> SlicedPacket<'_> {
        let p = SlicedPacket::from_ethernet(bytes).expect("etherparse parses the frame");
        let (src4, dst4, src6, dst6) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(
                    h.header_checksum(),
                    h.to_header().calc_header_checksum(),
                    "IPv4 header checksum"
                );
                (h.source(), h.destination(), [0; 16], [0; 16])
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header();
                ([0; 4], [0; 4], h.source(), h.destination())
            }
            _ => return p,
        };
        let v6 = matches!(p.net, Some(NetSlice::Ipv6(_)));
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = if v6 {
                    t.calc_checksum_ipv6(src6, dst6).unwrap()
                } else {
                    t.calc_checksum_ipv4(src4, dst4).unwrap()
                };
                assert_eq!(t.checksum(), want, "TCP checksum");
            }
            Some(TransportSlice::Udp(u)) => {
                let h = u.to_header();
                let want = if v6 {
                    h.calc_checksum_ipv6_raw(src6, dst6, u.payload()).unwrap()
                } else {
                    h.calc_checksum_ipv4_raw(src4, dst4, u.payload()).unwrap()
                };
                assert_eq!(u.checksum(), want, "UDP checksum");
            }
            Some(TransportSlice::Icmpv4(i)) => {
                assert_eq!(
                    i.checksum(),
                    i.icmp_type().calc_checksum(i.payload()),
                    "ICMPv4 checksum"
                );
            }
            Some(TransportSlice::Icmpv6(i)) => {
                assert!(i.is_checksum_valid(src6, dst6), "ICMPv6 checksum");
            }
            _ => {}
        }
        p
    }

    #[test]
    fn tcp_syn_v4_vlan_parses_and_checksums() {
        let mut f = Frame::new();
        let ip = Ip::new(v4(10, 1, 2, 3), v4(192, 0, 2, 80)).id(0x1234);
        let mut t = Tcp::new(40000, 443, 1_000_000, 0, tcp_flags::SYN, 64240);
        t.mss = Some(1460);
        t.sack_perm = true;
        t.ts = Some((12345, 0));
        t.wscale = Some(7);
        f.build(Vlan::Dot1Q(100), &ip, &L4::Tcp(t, Payload::EMPTY));
        assert_eq!(f.wire_len(), 14 + 4 + 20 + 40);
        let p = check_frame(f.bytes());
        assert_eq!(p.link_exts.len(), 1);
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP")
        };
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(tcp.source_port(), 40000);
        assert_eq!(tcp.destination_port(), 443);
        let opts: Vec<_> = tcp.options_iterator().map(|o| o.unwrap()).collect();
        assert!(opts.contains(&etherparse::TcpOptionElement::MaximumSegmentSize(1460)));
        assert!(opts.contains(&etherparse::TcpOptionElement::WindowScale(7)));
    }

    #[test]
    fn tcp_v6_with_payload_and_ext_headers() {
        let mut f = Frame::new();
        for ext in [Ext6::None, Ext6::HopByHop, Ext6::DestOpts] {
            for len in [0usize, 1, 2, 3, 1000, 1447] {
                let mut ip = Ip::new(v6("fd00::1"), v6("2001:db8::80"));
                ip.ext = ext;
                let t = Tcp::new(50000, 80, 7, 9, tcp_flags::ACK | tcp_flags::PSH, 500);
                f.build(
                    Vlan::None,
                    &ip,
                    &L4::Tcp(t, Payload::Fill { byte: 0xa5, len }),
                );
                let p = check_frame(f.bytes());
                let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                    panic!("not TCP")
                };
                assert_eq!(tcp.payload().len(), len);
            }
        }
    }

    #[test]
    fn udp_icmp_echo_and_qinq() {
        let mut f = Frame::new();
        let dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";
        for (src, dst) in [
            (v4(10, 0, 0, 9), v4(10, 0, 0, 53)),
            (v6("fd00::9"), v6("fd00::53")),
        ] {
            let ip = Ip::new(src, dst);
            let qinq = Vlan::QinQ {
                outer: 200,
                inner: 300,
            };
            f.build(
                qinq,
                &ip,
                &L4::Udp {
                    sport: 53001,
                    dport: 53,
                    payload: Payload::Bytes(dns),
                },
            );
            let p = check_frame(f.bytes());
            assert_eq!(p.link_exts.len(), 2);
            let ids: Vec<u16> = p
                .link_exts
                .iter()
                .map(|e| match e {
                    LinkExtSlice::Vlan(v) => v.vlan_identifier().value(),
                    _ => 0,
                })
                .collect();
            assert_eq!(ids, vec![200, 300]);
            assert!(matches!(p.transport, Some(TransportSlice::Udp(_))));
            drop(p);
            for reply in [false, true] {
                let l4 = L4::Echo {
                    reply,
                    id: 7,
                    seq: 3,
                    payload: Payload::Fill {
                        byte: 0x61,
                        len: 33,
                    },
                };
                f.build(Vlan::None, &ip, &l4);
                let p = check_frame(f.bytes());
                assert!(matches!(
                    p.transport,
                    Some(TransportSlice::Icmpv4(_)) | Some(TransportSlice::Icmpv6(_))
                ));
            }
        }
    }

    #[test]
    fn unreachable_quotes_original() {
        let mut orig = Frame::new();
        let mut f = Frame::new();
        for (c, s, r) in [
            (v4(10, 1, 7, 10), v4(10, 2, 7, 20), v4(10, 3, 7, 1)),
            (v6("fd00:1::10"), v6("fd00:2::20"), v6("fd00:3::1")),
        ] {
            let mut t = Tcp::new(40007, 80, 77, 0, tcp_flags::SYN, 64240);
            t.mss = Some(1460);
            orig.build(Vlan::None, &Ip::new(c, s), &L4::Tcp(t, Payload::EMPTY));
            for q in [Quote::Bytes8, Quote::Full] {
                let quote = orig.quote(q);
                let hdr = if c.is_ipv4() { 20 } else { 40 };
                let want = if q == Quote::Bytes8 {
                    hdr + 8
                } else {
                    hdr + 24
                };
                assert_eq!(quote.len(), want, "{q:?}");
                for code in [0u8, 1, 3, 4, 13] {
                    let mtu = if code == 4 && c.is_ipv4() { 1280 } else { 0 };
                    f.build(
                        Vlan::None,
                        &Ip::new(r, c),
                        &L4::Unreach { code, mtu, quote },
                    );
                    let p = check_frame(f.bytes());
                    match &p.transport {
                        Some(TransportSlice::Icmpv4(i)) => {
                            assert_eq!((i.type_u8(), i.code_u8()), (3, code));
                            assert_eq!(i.payload(), quote);
                        }
                        Some(TransportSlice::Icmpv6(i)) => {
                            assert_eq!((i.type_u8(), i.code_u8()), (1, code));
                            assert_eq!(i.payload(), quote);
                        }
                        other => panic!("not ICMP: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let mut f = Frame::new();
        let mut ip = Ip::new(v4(10, 1, 22, 10), v4(10, 2, 22, 20));
        ip.options = &[0x94, 0x04, 0, 0]; // router alert
        f.build(
            Vlan::None,
            &ip,
            &L4::Tcp(Tcp::new(1, 2, 3, 0, tcp_flags::SYN, 1024), Payload::EMPTY),
        );
        let p = check_frame(f.bytes());
        let Some(NetSlice::Ipv4(v)) = &p.net else {
            panic!()
        };
        assert_eq!(v.header().ihl(), 6);
        drop(p);

        // Build a whole UDP datagram, then send it as two fragments; the UDP
        // checksum in the first fragment covers the whole datagram.
        let mut whole = Frame::new();
        let dg = Ip::new(v4(10, 1, 24, 10), v4(10, 2, 24, 20)).id(0x1824);
        whole.build(
            Vlan::None,
            &dg,
            &L4::Udp {
                sport: 40024,
                dport: 7777,
                payload: Payload::Fill {
                    byte: 0x42,
                    len: 292,
                },
            },
        );
        let udp = whole.transport().to_vec();
        assert_eq!(udp.len(), 300);
        let mut first = dg;
        first.df = false;
        first.frag = Some(Frag {
            offset: 0,
            more: true,
        });
        f.build(
            Vlan::None,
            &first,
            &L4::Raw {
                proto: proto::UDP,
                data: &udp[..160],
            },
        );
        let p = SlicedPacket::from_ethernet(f.bytes()).unwrap();
        let Some(NetSlice::Ipv4(v)) = &p.net else {
            panic!()
        };
        assert!(v.header().more_fragments());
        assert_eq!(
            v.header().header_checksum(),
            v.header().to_header().calc_header_checksum()
        );
        drop(p);
        let mut second = first;
        second.frag = Some(Frag {
            offset: 20,
            more: false,
        });
        f.build(
            Vlan::None,
            &second,
            &L4::Raw {
                proto: proto::UDP,
                data: &udp[160..],
            },
        );
        let p = SlicedPacket::from_ethernet(f.bytes()).unwrap();
        let Some(NetSlice::Ipv4(v)) = &p.net else {
            panic!()
        };
        assert_eq!(v.header().fragments_offset().value(), 20);
        assert_eq!(v.payload().payload.len(), 140);
        drop(p);
        // Reassembled, the UDP checksum verifies.
        let h = etherparse::UdpHeader::from_slice(&udp).unwrap().0;
        let ck = h
            .calc_checksum_ipv4_raw([10, 1, 24, 10], [10, 2, 24, 20], &udp[8..])
            .unwrap();
        assert_eq!(h.checksum, ck);

        // IPv6 fragment header.
        let mut ip6 = Ip::new(v6("fd00::1"), v6("fd00::2")).id(0xdead_beef);
        ip6.frag = Some(Frag {
            offset: 0,
            more: true,
        });
        ip6.ext = Ext6::HopByHop;
        f.build(
            Vlan::None,
            &ip6,
            &L4::Raw {
                proto: proto::UDP,
                data: &udp[..160],
            },
        );
        let p = SlicedPacket::from_ethernet(f.bytes()).unwrap();
        let Some(NetSlice::Ipv6(v)) = &p.net else {
            panic!()
        };
        assert!(v.is_payload_fragmented());
    }

    #[test]
    fn arp_and_padding() {
        let mut f = Frame::new();
        f.arp(
            Vlan::None,
            ArpOp::Request,
            Ipv4Addr::new(10, 1, 20, 10),
            Ipv4Addr::new(10, 1, 20, 20),
        );
        assert_eq!(f.bytes().len(), 60);
        assert_eq!(&f.bytes()[..6], &[0xff; 6]);
        let p = SlicedPacket::from_ethernet(f.bytes()).unwrap();
        let Some(NetSlice::Arp(a)) = &p.net else {
            panic!("not ARP")
        };
        assert_eq!(a.operation(), etherparse::ArpOperation::REQUEST);
        assert_eq!(a.target_protocol_addr(), &[10, 1, 20, 20]);
        drop(p);
        f.arp(
            Vlan::Dot1Q(5),
            ArpOp::Reply,
            Ipv4Addr::new(10, 1, 20, 20),
            Ipv4Addr::new(10, 1, 20, 10),
        );
        let p = SlicedPacket::from_ethernet(f.bytes()).unwrap();
        let Some(NetSlice::Arp(a)) = &p.net else {
            panic!("not ARP")
        };
        assert_eq!(a.operation(), etherparse::ArpOperation::REPLY);
        drop(p);

        // A bare ACK is 54 bytes on the wire before padding.
        let ip = Ip::new(v4(10, 0, 0, 1), v4(10, 0, 0, 2));
        f.build(
            Vlan::None,
            &ip,
            &L4::Tcp(Tcp::new(1, 2, 3, 4, tcp_flags::ACK, 100), Payload::EMPTY),
        );
        assert_eq!((f.bytes().len(), f.wire_len()), (60, 60));
        check_frame(f.bytes());
        f.set_pad(false);
        f.build(
            Vlan::None,
            &ip,
            &L4::Tcp(Tcp::new(1, 2, 3, 4, tcp_flags::ACK, 100), Payload::EMPTY),
        );
        assert_eq!((f.bytes().len(), f.wire_len()), (54, 54));
    }

    #[test]
    fn capture_limit_keeps_wire_length_and_checksum() {
        let ip = Ip::new(v4(10, 0, 0, 1), v4(10, 0, 0, 2));
        let t = Tcp::new(1000, 80, 5, 6, tcp_flags::ACK, 100);
        let l4 = L4::Tcp(
            t,
            Payload::Fill {
                byte: 0x77,
                len: 1460,
            },
        );
        let mut full = Frame::new();
        full.build(Vlan::None, &ip, &l4);
        let mut cut = Frame::with_cap(96);
        cut.build(Vlan::None, &ip, &l4);
        assert_eq!(full.wire_len(), 1514);
        assert_eq!(cut.wire_len(), 1514);
        assert_eq!(cut.bytes().len(), 96);
        assert_eq!(cut.bytes(), &full.bytes()[..96]);
        check_frame(full.bytes());
    }

    #[test]
    fn fill_sum_matches_bytes_sum() {
        for byte in [0u8, 1, 0x7f, 0xff] {
            for len in 0..20 {
                let v = vec![byte; len];
                assert_eq!(fold(sum_fill(5, byte, len)), fold(sum_bytes(5, &v)));
            }
        }
    }
}
