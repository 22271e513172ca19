//! The traffic simulator behind the benchmark profiles.
//!
//! Two clocks drive it:
//!
//! * the **bulk** process: a stream of instants spaced by a random gap (the
//!   average packet rate). At each instant one random "action" happens: most
//!   often a random live TCP conversation sends its next segment, sometimes a
//!   new DNS query, a failed connection attempt, a scanner-free background
//!   exchange, a masscan probe or a flood SYN (flood profile).
//! * a **timer heap** of events due at precise times: SYN-ACKs one RTT after the
//!   SYN, SYN retransmissions on the OS schedule (1 s, 3 s, 7 s...), DNS
//!   responses, ICMP errors, scanner probes at their own pace.
//!
//! The next frame is whichever comes first, so frames are emitted in timestamp
//! order without sorting, and memory stays bounded by the live state (about
//! `live` conversations plus pending timers) whatever the capture size.
//!
//! Picking a random live conversation for each bulk instant is O(1) and gives
//! every connection its own interleaving; the handshake goes through the heap so
//! that its timing (RTT, retransmission schedule) is exact, which is what a
//! tracker's timers depend on.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{AttemptCounts, FloodTruth, MS, Out, SEC, ScannerTruth, US, UdpCounts};
use crate::synth::frame::{ArpOp, Frame, Ip, L4, Payload, Quote, Tcp, Vlan, tcp_flags as F};
use crate::synth::rng::{Permutation, Rng, mix64};
use crate::synth::writer::Sink;

/// Linux SYN retransmission times after the first SYN (tcp_syn_retries = 6,
/// initial RTO 1 s doubling): +1, +3, +7, +15, +31, +63 s.
pub(crate) const LINUX_SYN_RETX: [i64; 6] = [1, 3, 7, 15, 31, 63];
/// Windows 10/11 (TcpMaxConnectRetransmissions = 2): +1, +3 s.
pub(crate) const WINDOWS_SYN_RETX: [i64; 2] = [1, 3];

/// Per-profile knobs. Probabilities are per bulk instant.
#[derive(Clone, Debug)]
pub(crate) struct Mix {
    /// Average bulk instants per second.
    pub rate_pps: f64,
    /// Live TCP conversations (in progress at start, replaced as they end).
    pub live: usize,
    /// Client population size (at most 64 * 200).
    pub n_clients: u32,
    /// Share of conversations over IPv6.
    pub v6_frac: f64,
    /// Client subnets (of 64) that sit behind an 802.1Q trunk.
    pub vlan_subnets: u32,
    /// Flood profile: every frame fits in 60 bytes (IPv4, no TCP timestamps,
    /// payloads of at most 6 bytes, SYNs with the MSS option only).
    pub small: bool,
    /// Scale of a conversation's data-segment budget: the mean budget is
    /// about 1.05 x this. Conversations cut by the capture's end shorten the
    /// average, so the enterprise profile needs ~112 for its 0.9% SYN-ACK.
    pub budget_mean: f64,
    /// Share of ended conversations that close with RST instead of FIN.
    pub abort_frac: f64,
    /// Share of ended conversations that simply go quiet (idle until the
    /// capture ends, or closed long after).
    pub vanish_frac: f64,
    /// Share of successful connections whose first SYN gets no answer (the
    /// SYN-ACK follows the retransmission at +1 s).
    pub syn_loss: f64,
    /// DNS query/response exchange.
    pub p_dns: f64,
    /// DNS response arriving after the client gave up (client answers with
    /// ICMP port unreachable), as a share of DNS queries.
    pub dns_late: f64,
    /// TCP attempt rejected by RST.
    pub p_reject: f64,
    /// TCP attempt never answered.
    pub p_unanswered: f64,
    /// TCP attempt answered by ICMP unreachable.
    pub p_icmp_tcp: f64,
    /// UDP datagram to a closed port (ICMP port unreachable).
    pub p_udp_closed: f64,
    /// ICMP fragmentation-needed about a live conversation.
    pub p_pmtu: f64,
    /// ICMP echo exchange.
    pub p_echo: f64,
    /// NTP exchange.
    pub p_ntp: f64,
    /// ARP exchange.
    pub p_arp: f64,
    /// One-way syslog datagram.
    pub p_syslog: f64,
    /// Masscan probe (flood profile).
    pub p_masscan: f64,
    /// Spoofed flood SYN (flood profile).
    pub p_flood: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            rate_pps: 25_000.0,
            live: 1000,
            n_clients: 4000,
            v6_frac: 0.0,
            vlan_subnets: 0,
            small: false,
            budget_mean: 100.0,
            abort_frac: 0.1,
            vanish_frac: 0.07,
            syn_loss: 0.03,
            p_dns: 0.0,
            dns_late: 0.0,
            p_reject: 0.0,
            p_unanswered: 0.0,
            p_icmp_tcp: 0.0,
            p_udp_closed: 0.0,
            p_pmtu: 0.0,
            p_echo: 0.0,
            p_ntp: 0.0,
            p_arp: 0.0,
            p_syslog: 0.0,
            p_masscan: 0.0,
            p_flood: 0.0,
        }
    }
}

/// SYN options in the style of a given stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SynOpts {
    /// No options (RST, ACK, masscan).
    None,
    /// MSS only (nmap SYN scan, small-frame profile).
    Mss,
    /// Linux: MSS, SACK permitted, timestamps, window scale 7 (40-byte header).
    Linux,
    /// Windows: MSS, window scale 8, SACK permitted (32-byte header).
    Windows,
    /// Timestamps only (NOP NOP TS): a Linux data segment.
    Ts,
}

/// One TCP segment without payload, enough to build it and to quote it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg {
    pub vlan: Vlan,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub win: u16,
    pub opts: SynOpts,
    pub ttl: u8,
    /// Payload length (fill bytes).
    pub len: u16,
    /// TSval to send (Linux options); 0: derive from the send time. Set for
    /// SYNs an ICMP error may quote, so the quote matches the SYN sent.
    pub tsval: u32,
}

impl Seg {
    /// The TCP header; `tsval` is used unless the segment carries its own.
    pub fn tcp(&self, tsval: u32) -> Tcp {
        let tsval = if self.tsval != 0 { self.tsval } else { tsval };
        let mut t = Tcp::new(
            self.sport, self.dport, self.seq, self.ack, self.flags, self.win,
        );
        let mss = if self.src.is_ipv6() { 1440 } else { 1460 };
        match self.opts {
            SynOpts::None => {}
            SynOpts::Mss => t.mss = Some(mss),
            SynOpts::Linux => {
                t.mss = Some(mss);
                t.sack_perm = true;
                t.ts = Some((
                    tsval,
                    if self.flags & F::ACK != 0 {
                        tsval.saturating_sub(7)
                    } else {
                        0
                    },
                ));
                t.wscale = Some(7);
            }
            SynOpts::Windows => {
                t.mss = Some(mss);
                t.wscale = Some(8);
                t.sack_perm = true;
            }
            SynOpts::Ts => t.ts = Some((tsval, tsval.wrapping_sub(3))),
        }
        t
    }

    /// IPv4 identification of this segment: a hash of its fields, so that an
    /// ICMP error quoting it can rebuild it byte for byte.
    pub fn ip_id(&self) -> u32 {
        let k = (self.sport as u64) << 48
            ^ (self.dport as u64) << 32
            ^ self.seq as u64
            ^ (self.flags as u64) << 40;
        mix64(k ^ self.len as u64) as u32
    }

    /// The answer a closed port gives to this SYN / probe (RFC 793: RST+ACK
    /// acknowledging the probe, or a bare RST with seq = the probe's ack if the
    /// probe carried ACK).
    pub fn reset_reply(&self, ttl: u8) -> Seg {
        let (seq, ack, flags) = if self.flags & F::ACK != 0 {
            (self.ack, 0, F::RST)
        } else {
            let len = self.len as u32
                + (self.flags & F::SYN != 0) as u32
                + (self.flags & F::FIN != 0) as u32;
            (0, self.seq.wrapping_add(len), F::RST | F::ACK)
        };
        Seg {
            vlan: self.vlan,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            seq,
            ack,
            flags,
            win: 0,
            opts: SynOpts::None,
            ttl,
            len: 0,
            tsval: 0,
        }
    }

    /// The SYN-ACK an open port gives to this SYN.
    pub fn syn_ack_reply(&self, isn: u32, ttl: u8, opts: SynOpts) -> Seg {
        Seg {
            vlan: self.vlan,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            seq: isn,
            ack: self.seq.wrapping_add(1),
            flags: F::SYN | F::ACK,
            win: 65160,
            opts,
            ttl,
            len: 0,
            tsval: 0,
        }
    }
}

/// A UDP datagram to quote in an ICMP error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dgram {
    pub vlan: Vlan,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub len: u16,
    pub ttl: u8,
}

impl Dgram {
    /// IPv4 identification, a hash of the datagram (see [`Seg::ip_id`]).
    pub fn ip_id(&self) -> u32 {
        mix64((self.sport as u64) << 32 ^ (self.dport as u64) << 16 ^ self.len as u64 ^ 0x0075_6470)
            as u32
    }
}

/// A DNS exchange (enough to rebuild query and response).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dns {
    pub vlan: Vlan,
    pub client: IpAddr,
    pub server: IpAddr,
    pub cport: u16,
    pub qid: u16,
    pub name: u32,
}

impl Dns {
    /// IPv4 identification of the response (see [`Seg::ip_id`]).
    pub fn ip_id(&self) -> u32 {
        mix64((self.qid as u64) << 16 ^ self.cport as u64 ^ 0x0064_6e73) as u32
    }
}

/// What an ICMP error quotes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Orig {
    Tcp(Seg),
    Udp(Dgram),
    DnsResponse(Dns),
}

/// Which counter an event's frame settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    None,
    /// First answer to a background TCP attempt.
    Rejected,
    Unreachable,
    /// Scanner `k` got this kind of answer.
    ScanSynAck(u8),
    ScanRst(u8),
    ScanIcmp(u8),
    FloodSynAck(u8),
    DnsLate,
    UdpClosed,
    Pmtu,
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    /// Retransmitted SYN of a conversation that will succeed.
    ConvSyn(u32),
    ConvSynAck(u32),
    ConvAck(u32),
    /// One segment, settling `tag` when sent.
    Seg(Seg, Tag),
    /// Unanswered SYN: retransmission number `k` of the series started at `t0`.
    Retx {
        seg: Seg,
        t0: i64,
        k: u8,
        linux: bool,
    },
    Unreach {
        orig: Orig,
        from: IpAddr,
        code: u8,
        mtu: u16,
        quote: Quote,
        tag: Tag,
    },
    DnsResp(Dns),
    Echo {
        vlan: Vlan,
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
    },
    Ntp(Dgram),
    ArpReply {
        vlan: Vlan,
        from: Ipv4Addr,
        to: Ipv4Addr,
    },
    /// Scanner `k` sends its next probe.
    Scan(u8),
}

struct Timed {
    t: i64,
    n: u64,
    ev: Ev,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.n) == (o.t, o.n)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest event;
    /// ties broken by insertion order so the output never depends on heap
    /// internals.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.n).cmp(&(self.t, self.n))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Handshake in flight (parked in the heap, not pickable).
    Handshake,
    Established,
    /// Closer has sent FIN; the other side sends its FIN.
    Fin2,
    /// Closer acknowledges the FIN.
    LastAck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    Fin,
    Abort,
    Vanish,
}

/// A TCP conversation. seq numbers are the next byte each side sends.
#[derive(Clone, Copy, Debug)]
struct Conv {
    vlan: Vlan,
    c: IpAddr,
    s: IpAddr,
    cport: u16,
    sport: u16,
    c_seq: u32,
    s_seq: u32,
    c_win: u16,
    s_win: u16,
    c_ttl: u8,
    s_ttl: u8,
    /// TCP timestamps in use (Linux peers).
    ts: bool,
    /// Client stack style for the SYN.
    linux: bool,
    rtt: u32,
    budget: u32,
    state: State,
    close: Close,
    client_closes: bool,
    /// Index in `active`, or `NONE`.
    pos: u32,
    fill: u8,
}

const NONE: u32 = u32::MAX;

/// A scanner driven by the timer heap: a precomputed list of targets and the
/// answer each gets.
pub(crate) struct Scanner {
    pub truth: ScannerTruth,
    pub src: IpAddr,
    pub vlan: Vlan,
    pub sport: u16,
    pub ttl: u8,
    pub opts: SynOpts,
    pub win: u16,
    pub targets: Vec<(IpAddr, u16, Answer)>,
    /// Probe spacing: uniform in [min, max) ns.
    pub gap: (i64, i64),
    /// When the first probe goes out.
    pub start: i64,
    pub next: usize,
}

/// How a scan target answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Silent,
    Rst,
    SynAck,
    /// ICMP unreachable with `code` from `from`, after `delay` ns.
    Icmp {
        from: IpAddr,
        code: u8,
        delay: i64,
    },
}

/// A masscan-style scanner driven by the bulk process: visits a random
/// permutation of (10/8 address, port list index) without repeats.
pub(crate) struct Masscan {
    pub truth: ScannerTruth,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub weight: f64,
    pub perm: Permutation,
    pub counter: u64,
    /// Share of probed (address, port) pairs that answer: (SYN-ACK, RST).
    pub open: f64,
    pub closed: f64,
}

/// A spoofed-source SYN flood against one service.
pub(crate) struct Flood {
    pub truth: FloodTruth,
    pub target: Ipv4Addr,
    pub port: u16,
    pub weight: f64,
    /// Share of flood SYNs the victim answers with a SYN-ACK.
    pub answer: f64,
}

/// Public first octets for made-up "outside" addresses.
const PUBLIC_OCTETS: [u8; 16] = [
    13, 20, 23, 34, 35, 40, 52, 54, 64, 93, 104, 142, 151, 157, 185, 199,
];

/// Internal service ports and their popularity (cumulative weight).
const INTERNAL_PORTS: [(u16, u32); 10] = [
    (445, 25),
    (443, 45),
    (80, 55),
    (389, 63),
    (88, 70),
    (3389, 76),
    (1433, 81),
    (8080, 88),
    (22, 95),
    (5985, 100),
];

/// Ports that are closed on the servers rejected attempts go to.
const CLOSED_PORTS: [u16; 10] = [8443, 8081, 5000, 9000, 3306, 5432, 6379, 27017, 21, 23];

/// DNS names clients look up (the number in `host{n}` varies).
const DNS_NAMES: [&str; 8] = [
    "www.example.com",
    "api.example.net",
    "login.example.org",
    "cdn.example.com",
    "mail.corp.example",
    "fs.corp.example",
    "update.example.net",
    "telemetry.example.org",
];

/// Address of the enterprise's DNS servers.
pub(crate) fn dns_server(k: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0x53 + k as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53 + k as u8))
    }
}

/// Client `i`: subnet `s = i % 64` (10.(16+s).0.0/16, fd00:0:0:(16+s)::/64),
/// host `h = i / 64`. The first `vlan_subnets` subnets are tagged with VLAN
/// 100 + s.
pub(crate) fn client(i: u32, v6: bool, vlan_subnets: u32) -> (IpAddr, Vlan) {
    let s = i % 64;
    let h = i / 64;
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            16 + s as u16,
            0,
            0,
            0,
            10 + h as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            10,
            16 + s as u8,
            (h / 200) as u8,
            10 + (h % 200) as u8,
        ))
    };
    let vlan = if s < vlan_subnets {
        Vlan::Dot1Q(100 + s as u16)
    } else {
        Vlan::None
    };
    (ip, vlan)
}

/// Internal server `k` (10.1.0.0/16, fd00:0:0:1::/64).
pub(crate) fn internal_server(k: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 1, 10 + k as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 1, (k / 200) as u8, 10 + (k % 200) as u8))
    }
}

/// Outside server `k`: a public-looking IPv4 address or 2001:db8:k::1.
pub(crate) fn external_server(k: u32, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, k as u16, 0, 0, 0, 0, 1))
    } else {
        let h = mix64(k as u64 ^ 0x6578_7465_726e);
        let o = PUBLIC_OCTETS[(h & 15) as usize];
        IpAddr::V4(Ipv4Addr::new(
            o,
            (h >> 8) as u8,
            (h >> 16) as u8,
            1 + (h >> 24) as u8 % 254,
        ))
    }
}

/// Background counters kept while simulating.
#[derive(Default)]
pub(crate) struct Stats {
    pub tcp: AttemptCounts,
    pub udp: UdpCounts,
    pub pmtu: u64,
    pub conversations: u64,
    pub in_progress: u64,
}

pub(crate) struct Sim<'s, S: Sink> {
    pub out: Out<'s, S>,
    pub stats: Stats,
    pub scanners: Vec<Scanner>,
    pub masscans: Vec<Masscan>,
    pub floods: Vec<Flood>,
    mix: Mix,
    rng: Rng,
    now: i64,
    next_bulk: i64,
    mean_gap: f64,
    heap: BinaryHeap<Timed>,
    n: u64,
    /// Scratch frame for building the packets ICMP errors quote.
    qframe: Frame,
    scratch: Vec<u8>,
    convs: Vec<Conv>,
    free: Vec<u32>,
    active: Vec<u32>,
    to_spawn: u32,
    client_ports: Vec<u16>,
    /// Cumulative action thresholds for the bulk process.
    cum: [f64; 13],
    flood_perm: Permutation,
    flood_counter: u64,
    /// Random draw for the next conversation pick.
    ahead: u64,
}

/// Bulk actions, in the order of `cum`.
const A_MASSCAN: usize = 0;
const A_FLOOD: usize = 1;
const A_DNS: usize = 2;
const A_REJECT: usize = 3;
const A_UNANSWERED: usize = 4;
const A_ICMP_TCP: usize = 5;
const A_UDP_CLOSED: usize = 6;
const A_PMTU: usize = 7;
const A_ECHO: usize = 8;
const A_NTP: usize = 9;
const A_ARP: usize = 10;
const A_SYSLOG: usize = 11;

impl<'s, S: Sink> Sim<'s, S> {
    pub fn new(out: Out<'s, S>, mix: Mix, seed: u64, start: i64) -> Self {
        let p = [
            mix.p_masscan,
            mix.p_flood,
            mix.p_dns,
            mix.p_reject,
            mix.p_unanswered,
            mix.p_icmp_tcp,
            mix.p_udp_closed,
            mix.p_pmtu,
            mix.p_echo,
            mix.p_ntp,
            mix.p_arp,
            mix.p_syslog,
            0.0,
        ];
        let mut cum = [0.0; 13];
        let mut acc = 0.0;
        for (c, p) in cum.iter_mut().zip(p) {
            acc += p;
            *c = acc;
        }
        assert!(acc < 1.0, "bulk action probabilities sum to {acc} >= 1");
        let mut rng = Rng::new(seed, 1);
        let client_ports = (0..mix.n_clients)
            .map(|_| rng.range(32768, 61000) as u16)
            .collect();
        let mean_gap = SEC as f64 / mix.rate_pps;
        Sim {
            out,
            stats: Stats::default(),
            scanners: Vec::new(),
            masscans: Vec::new(),
            floods: Vec::new(),
            rng,
            now: start,
            next_bulk: start,
            mean_gap,
            heap: BinaryHeap::new(),
            n: 0,
            qframe: Frame::new(),
            scratch: Vec::with_capacity(512),
            convs: Vec::with_capacity(mix.live + 64),
            free: Vec::new(),
            active: Vec::with_capacity(mix.live + 64),
            to_spawn: 0,
            client_ports,
            cum,
            flood_perm: Permutation::new(45, seed ^ 0x0066_6c6f_6f64),
            flood_counter: 0,
            ahead: 0,
            mix,
        }
    }

    fn at(&mut self, t: i64, ev: Ev) {
        self.n += 1;
        self.heap.push(Timed { t, n: self.n, ev });
    }

    /// Fill the live set with conversations already in progress at capture
    /// start, and queue the scanners' first probes.
    pub fn prime(&mut self) {
        for _ in 0..self.mix.live {
            let mut cv = self.new_conv();
            cv.state = State::Established;
            // Residual life of a connection found mid-stream.
            cv.budget = self.rng.range(1, cv.budget as u64 + 1) as u32;
            self.stats.in_progress += 1;
            self.stats.conversations += 1;
            let id = self.alloc(cv);
            self.activate(id);
        }
        for k in 0..self.scanners.len() {
            let t = self.scanners[k].start;
            self.at(t, Ev::Scan(k as u8));
        }
    }

    /// Run until the requested number of frames is out.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.out.done() {
            match self.heap.peek() {
                Some(e) if e.t <= self.next_bulk => {
                    let e = self.heap.pop().expect("peeked");
                    self.now = e.t;
                    self.event(e.ev)?;
                }
                _ => {
                    self.now = self.next_bulk;
                    // Uniform gap with the configured mean: as good as an
                    // exponential for a tracker and much cheaper.
                    self.next_bulk = self.now + 1 + (self.rng.unit() * 2.0 * self.mean_gap) as i64;
                    self.bulk()?;
                }
            }
        }
        Ok(())
    }

    /// Settle end-of-capture counts.
    pub fn finish(&mut self) {
        let t = &mut self.stats.tcp;
        t.unanswered = t.started - t.success - t.rejected - t.icmp_unreachable;
        for s in &mut self.scanners {
            let tr = &mut s.truth;
            tr.unanswered = tr.probes - tr.syn_ack - tr.rst - tr.icmp;
        }
        for m in &mut self.masscans {
            let tr = &mut m.truth;
            tr.unanswered = tr.probes - tr.syn_ack - tr.rst - tr.icmp;
        }
    }

    // ---------------------------------------------------------------- bulk

    fn bulk(&mut self) -> io::Result<()> {
        let u = self.rng.unit();
        // Most instants are conversation steps: skip the scan for those.
        let a = if u >= self.cum[12] {
            usize::MAX
        } else {
            self.cum.iter().position(|&c| u < c).unwrap_or(usize::MAX)
        };
        match a {
            A_MASSCAN => self.masscan_probe(),
            A_FLOOD => self.flood_syn(),
            A_DNS => self.dns_query(),
            A_REJECT => self.attempt_rejected(),
            A_UNANSWERED => self.attempt_unanswered(),
            A_ICMP_TCP => self.attempt_icmp(),
            A_UDP_CLOSED => self.udp_closed(),
            A_PMTU => self.pmtu(),
            A_ECHO => self.echo(),
            A_NTP => self.ntp(),
            A_ARP => self.arp(),
            A_SYSLOG => self.syslog(),
            _ => {
                if self.to_spawn > 0 || self.active.is_empty() {
                    self.to_spawn = self.to_spawn.saturating_sub(1);
                    self.spawn()
                } else {
                    // The pick was drawn one step ahead (see `ahead`), so its
                    // record is already on its way into the cache.
                    let len = self.active.len() as u64;
                    let i = ((self.ahead as u128 * len as u128) >> 64) as usize;
                    let id = self.active[i];
                    self.ahead = self.rng.next_u64();
                    let next = self.active[((self.ahead as u128 * len as u128) >> 64) as usize];
                    // Load one field of the next pick now: 10k live records do
                    // not fit in cache, and an early load overlaps the miss
                    // with building this frame (black_box keeps the load).
                    std::hint::black_box(self.convs[next as usize].pos);
                    self.conv_step(id)
                }
            }
        }
    }

    fn pick_client(&mut self, v6: bool) -> (u32, IpAddr, Vlan) {
        let i = self.rng.below(self.mix.n_clients as u64) as u32;
        let (ip, vlan) = client(i, v6, self.mix.vlan_subnets);
        (i, ip, vlan)
    }

    fn is_v6(&mut self) -> bool {
        !self.mix.small && self.rng.chance(self.mix.v6_frac)
    }

    fn ephemeral(&mut self, ci: u32) -> u16 {
        // Per-client counter, as stacks hand out ports: no two live
        // conversations of a client share a 5-tuple.
        let p = &mut self.client_ports[ci as usize];
        *p = if *p >= 60999 { 32768 } else { *p + 1 };
        *p
    }

    /// A new conversation (not yet allocated), in handshake state.
    fn new_conv(&mut self) -> Conv {
        let v6 = self.is_v6();
        let (ci, c, vlan) = self.pick_client(v6);
        let r = &mut self.rng;
        let internal = r.chance(0.4);
        let (s, sport, rtt, s_ttl) = if internal {
            let k = r.below(200) as u32;
            let w = r.below(100) as u32;
            let port = INTERNAL_PORTS.iter().find(|p| w < p.1).map_or(443, |p| p.0);
            (
                internal_server(k, v6),
                port,
                r.range(100 * US as u64, 2 * MS as u64),
                64,
            )
        } else {
            let k = r.below(2000) as u32;
            let w = r.below(100);
            let port = if w < 85 {
                443
            } else if w < 97 {
                80
            } else {
                993
            };
            (
                external_server(k, v6),
                port,
                r.range(5 * MS as u64, 80 * MS as u64),
                52,
            )
        };
        let linux = r.chance(0.6);
        let ts = linux && !self.mix.small;
        let budget = self.draw_budget();
        let u = self.rng.unit();
        let close = if u < self.mix.abort_frac {
            Close::Abort
        } else if u < self.mix.abort_frac + self.mix.vanish_frac {
            Close::Vanish
        } else {
            Close::Fin
        };
        let cport = self.ephemeral(ci);
        let r = &mut self.rng;
        Conv {
            vlan,
            c,
            s,
            cport,
            sport,
            c_seq: r.next_u32(),
            s_seq: r.next_u32(),
            c_win: r.range(500, 2100) as u16,
            s_win: r.range(200, 1200) as u16,
            c_ttl: if linux { 64 } else { 128 },
            s_ttl,
            ts,
            linux,
            rtt: rtt as u32,
            budget,
            state: State::Handshake,
            close,
            client_closes: r.chance(0.6),
            pos: NONE,
            fill: r.next_u32() as u8,
        }
    }

    /// Data segments a conversation sends before it closes: many short
    /// exchanges, some medium, a few long transfers (mean ~`budget_mean`).
    fn draw_budget(&mut self) -> u32 {
        let scale = self.mix.budget_mean / 100.0;
        let u = self.rng.unit();
        let b = if u < 0.55 {
            self.rng.range(2, 21)
        } else if u < 0.9 {
            self.rng.range(20, 201)
        } else {
            self.rng.range(200, 1001)
        } as f64;
        ((b * scale) as u32).max(1)
    }

    fn alloc(&mut self, cv: Conv) -> u32 {
        if let Some(id) = self.free.pop() {
            self.convs[id as usize] = cv;
            id
        } else {
            self.convs.push(cv);
            (self.convs.len() - 1) as u32
        }
    }

    fn activate(&mut self, id: u32) {
        self.convs[id as usize].pos = self.active.len() as u32;
        self.active.push(id);
    }

    /// Drop a finished conversation and ask for a replacement.
    fn retire(&mut self, id: u32) {
        let pos = self.convs[id as usize].pos;
        if pos != NONE {
            self.active.swap_remove(pos as usize);
            if let Some(&moved) = self.active.get(pos as usize) {
                self.convs[moved as usize].pos = pos;
            }
        }
        self.convs[id as usize].pos = NONE;
        self.free.push(id);
        self.to_spawn += 1;
    }

    fn tsval(&self, client: bool) -> u32 {
        // Milliseconds clock with a per-side offset.
        let ms = (self.now / MS) as u32;
        if client {
            ms
        } else {
            ms.wrapping_add(0x1234_5678)
        }
    }

    fn conv_syn(&self, cv: &Conv) -> Seg {
        Seg {
            vlan: cv.vlan,
            src: cv.c,
            dst: cv.s,
            sport: cv.cport,
            dport: cv.sport,
            seq: cv.c_seq.wrapping_sub(1),
            ack: 0,
            flags: F::SYN,
            win: if cv.linux { 64240 } else { 65535 },
            opts: if self.mix.small {
                SynOpts::Mss
            } else if cv.linux {
                SynOpts::Linux
            } else {
                SynOpts::Windows
            },
            ttl: cv.c_ttl,
            len: 0,
            tsval: 0,
        }
    }

    fn send_seg(&mut self, seg: &Seg) -> io::Result<()> {
        let tcp = seg.tcp(self.tsval(true));
        let ip = Ip::new(seg.src, seg.dst).ttl(seg.ttl).id(seg.ip_id());
        let payload = Payload::Fill {
            byte: 0,
            len: seg.len as usize,
        };
        self.out
            .send(self.now, seg.vlan, &ip, &L4::Tcp(tcp, payload))
    }

    /// Start a connection that will succeed (replacing one that ended).
    fn spawn(&mut self) -> io::Result<()> {
        let mut cv = self.new_conv();
        // c_seq / s_seq hold the next byte; the ISN is one below.
        cv.c_seq = cv.c_seq.wrapping_add(1);
        cv.s_seq = cv.s_seq.wrapping_add(1);
        let syn = self.conv_syn(&cv);
        let lost = self.rng.chance(self.mix.syn_loss);
        let rtt = cv.rtt as i64;
        let id = self.alloc(cv);
        self.stats.tcp.started += 1;
        self.stats.conversations += 1;
        self.send_seg(&syn)?;
        if lost {
            self.at(self.now + SEC, Ev::ConvSyn(id));
        } else {
            self.at(self.now + rtt, Ev::ConvSynAck(id));
        }
        Ok(())
    }

    fn conv_step(&mut self, id: u32) -> io::Result<()> {
        let cv = self.convs[id as usize];
        let ts = cv.ts;
        let (from_client, flags, len) = match cv.state {
            State::Established if cv.budget > 0 => {
                self.convs[id as usize].budget -= 1;
                let mss: u32 = if cv.c.is_ipv6() { 1440 } else { 1460 } - if ts { 12 } else { 0 };
                let r = &mut self.rng;
                let w = r.below(100);
                let max = if self.mix.small { 6 } else { mss };
                if w < 45 {
                    let full = r.chance(0.7);
                    let len = if full {
                        max
                    } else {
                        r.range(1, max as u64 + 1) as u32
                    };
                    (false, F::ACK | if full { 0 } else { F::PSH }, len)
                } else if w < 85 {
                    (true, F::ACK, 0)
                } else if w < 95 {
                    let len = if self.mix.small {
                        r.range(1, 7)
                    } else {
                        r.range(40, 700)
                    };
                    (true, F::ACK | F::PSH, len as u32)
                } else {
                    (false, F::ACK, 0)
                }
            }
            State::Established => match cv.close {
                Close::Fin => {
                    self.convs[id as usize].state = State::Fin2;
                    (cv.client_closes, F::FIN | F::ACK, 0)
                }
                Close::Abort => {
                    self.retire(id);
                    // Most aborts carry ACK; some stacks send a bare RST.
                    let bare = self.rng.chance(0.3);
                    (
                        cv.client_closes,
                        if bare { F::RST } else { F::RST | F::ACK },
                        0,
                    )
                }
                Close::Vanish => {
                    self.retire(id);
                    return Ok(());
                }
            },
            State::Fin2 => {
                self.convs[id as usize].state = State::LastAck;
                (!cv.client_closes, F::FIN | F::ACK, 0)
            }
            State::LastAck => {
                self.retire(id);
                (cv.client_closes, F::ACK, 0)
            }
            State::Handshake => unreachable!("parked conversations are not pickable"),
        };
        // Sequence bookkeeping: FIN takes one sequence number.
        let c = &mut self.convs[id as usize];
        let consumed = len + (flags & F::FIN != 0) as u32;
        let (src, dst, sport, dport, seq, ack, win, ttl) = if from_client {
            let seq = c.c_seq;
            c.c_seq = seq.wrapping_add(consumed);
            (c.c, c.s, c.cport, c.sport, seq, c.s_seq, c.c_win, c.c_ttl)
        } else {
            let seq = c.s_seq;
            c.s_seq = seq.wrapping_add(consumed);
            (c.s, c.c, c.sport, c.cport, seq, c.c_seq, c.s_win, c.s_ttl)
        };
        let bare_rst = flags == F::RST;
        let mut tcp = Tcp::new(
            sport,
            dport,
            seq,
            if bare_rst { 0 } else { ack },
            flags,
            win,
        );
        if ts && flags & F::RST == 0 {
            let v = self.tsval(from_client);
            tcp.ts = Some((v, self.tsval(!from_client).wrapping_sub(3)));
        }
        let ip = Ip::new(src, dst).ttl(ttl).id(self.rng.next_u32());
        let payload = Payload::Fill {
            byte: cv.fill,
            len: len as usize,
        };
        self.out
            .send(self.now, cv.vlan, &ip, &L4::Tcp(tcp, payload))
    }

    // ------------------------------------------------------------- events

    fn event(&mut self, ev: Ev) -> io::Result<()> {
        match ev {
            Ev::ConvSyn(id) => {
                let cv = self.convs[id as usize];
                let syn = self.conv_syn(&cv);
                self.stats.tcp.syn_retransmissions += 1;
                self.send_seg(&syn)?;
                self.at(self.now + cv.rtt as i64, Ev::ConvSynAck(id));
            }
            Ev::ConvSynAck(id) => {
                let cv = self.convs[id as usize];
                let syn = self.conv_syn(&cv);
                // The server mirrors the client's options (timestamps only if
                // the client offered them).
                let sa = syn.syn_ack_reply(cv.s_seq.wrapping_sub(1), cv.s_ttl, syn.opts);
                self.stats.tcp.success += 1;
                self.send_seg(&sa)?;
                let d = self.rng.range(20 * US as u64, 300 * US as u64) as i64;
                self.at(self.now + d, Ev::ConvAck(id));
            }
            Ev::ConvAck(id) => {
                let cv = self.convs[id as usize];
                let mut tcp = Tcp::new(cv.cport, cv.sport, cv.c_seq, cv.s_seq, F::ACK, cv.c_win);
                if cv.ts {
                    tcp.ts = Some((self.tsval(true), self.tsval(false)));
                }
                let ip = Ip::new(cv.c, cv.s).ttl(cv.c_ttl).id(self.rng.next_u32());
                self.out
                    .send(self.now, cv.vlan, &ip, &L4::Tcp(tcp, Payload::EMPTY))?;
                self.convs[id as usize].state = State::Established;
                self.activate(id);
            }
            Ev::Seg(seg, tag) => {
                self.settle(tag);
                self.send_seg(&seg)?;
            }
            Ev::Retx { seg, t0, k, linux } => {
                self.stats.tcp.syn_retransmissions += 1;
                self.send_seg(&seg)?;
                let sched: &[i64] = if linux {
                    &LINUX_SYN_RETX
                } else {
                    &WINDOWS_SYN_RETX
                };
                if let Some(&dt) = sched.get(k as usize + 1) {
                    self.at(
                        t0 + dt * SEC,
                        Ev::Retx {
                            seg,
                            t0,
                            k: k + 1,
                            linux,
                        },
                    );
                }
            }
            Ev::Unreach {
                orig,
                from,
                code,
                mtu,
                quote,
                tag,
            } => {
                self.settle(tag);
                // Build the quoted packet exactly as it was sent.
                let (vlan, dst) = match orig {
                    Orig::Tcp(s) => {
                        let tcp = s.tcp(self.tsval(true));
                        let ip = Ip::new(s.src, s.dst).ttl(s.ttl).id(s.ip_id());
                        let p = Payload::Fill {
                            byte: 0,
                            len: s.len as usize,
                        };
                        self.qframe.build(s.vlan, &ip, &L4::Tcp(tcp, p));
                        (s.vlan, s.src)
                    }
                    Orig::Udp(u) => {
                        let ip = Ip::new(u.src, u.dst).ttl(u.ttl).id(u.ip_id());
                        let p = Payload::Fill {
                            byte: 0x20,
                            len: u.len as usize,
                        };
                        self.qframe.build(
                            u.vlan,
                            &ip,
                            &L4::Udp {
                                sport: u.sport,
                                dport: u.dport,
                                payload: p,
                            },
                        );
                        (u.vlan, u.src)
                    }
                    Orig::DnsResponse(d) => {
                        dns_message(&mut self.scratch, d.qid, d.name, d.server.is_ipv6(), true);
                        let ip = Ip::new(d.server, d.client).ttl(63).id(d.ip_id());
                        let l4 = L4::Udp {
                            sport: 53,
                            dport: d.cport,
                            payload: Payload::Bytes(&self.scratch),
                        };
                        self.qframe.build(d.vlan, &ip, &l4);
                        (d.vlan, d.server)
                    }
                };
                let q = self.qframe.quote(quote);
                let ip = Ip::new(from, dst).ttl(255).id(self.rng.next_u32());
                self.out.send(
                    self.now,
                    vlan,
                    &ip,
                    &L4::Unreach {
                        code,
                        mtu,
                        quote: q,
                    },
                )?;
            }
            Ev::DnsResp(d) => {
                self.stats.udp.dns_responses += 1;
                dns_message(&mut self.scratch, d.qid, d.name, d.server.is_ipv6(), true);
                let ip = Ip::new(d.server, d.client).ttl(63).id(d.ip_id());
                let l4 = L4::Udp {
                    sport: 53,
                    dport: d.cport,
                    payload: Payload::Bytes(&self.scratch),
                };
                self.out.send(self.now, d.vlan, &ip, &l4)?;
            }
            Ev::Echo {
                vlan,
                src,
                dst,
                id,
                seq,
            } => {
                let ip = Ip::new(src, dst).ttl(64).id(self.rng.next_u32());
                let l4 = L4::Echo {
                    reply: true,
                    id,
                    seq,
                    payload: Payload::Fill {
                        byte: 0x61,
                        len: self.echo_len(),
                    },
                };
                self.out.send(self.now, vlan, &ip, &l4)?;
            }
            Ev::Ntp(u) => {
                let ip = Ip::new(u.src, u.dst).ttl(u.ttl).id(self.rng.next_u32());
                let l4 = L4::Udp {
                    sport: u.sport,
                    dport: u.dport,
                    payload: Payload::Fill { byte: 0, len: 48 },
                };
                self.out.send(self.now, u.vlan, &ip, &l4)?;
            }
            Ev::ArpReply { vlan, from, to } => {
                self.out.arp(self.now, vlan, ArpOp::Reply, from, to)?;
            }
            Ev::Scan(k) => self.scan_probe(k as usize)?,
        }
        Ok(())
    }

    fn settle(&mut self, tag: Tag) {
        match tag {
            Tag::None => {}
            Tag::Rejected => self.stats.tcp.rejected += 1,
            Tag::Unreachable => self.stats.tcp.icmp_unreachable += 1,
            Tag::ScanSynAck(k) => self.scan_truth(k).syn_ack += 1,
            Tag::ScanRst(k) => self.scan_truth(k).rst += 1,
            Tag::ScanIcmp(k) => self.scan_truth(k).icmp += 1,
            Tag::FloodSynAck(k) => self.floods[k as usize].truth.syn_acks += 1,
            Tag::DnsLate => self.stats.udp.dns_late_port_unreachable += 1,
            Tag::UdpClosed => self.stats.udp.closed_port_unreachable += 1,
            Tag::Pmtu => self.stats.pmtu += 1,
        }
    }

    /// Scanner truth by tag index: heap scanners first, then masscans.
    fn scan_truth(&mut self, k: u8) -> &mut ScannerTruth {
        let k = k as usize;
        let n = self.scanners.len();
        if k < n {
            &mut self.scanners[k].truth
        } else {
            &mut self.masscans[k - n].truth
        }
    }

    // ------------------------------------------------- background exchanges

    fn dns_query(&mut self) -> io::Result<()> {
        let v6 = self.is_v6();
        let (_, c, vlan) = self.pick_client(v6);
        let r = &mut self.rng;
        let d = Dns {
            vlan,
            client: c,
            server: dns_server(r.below(2) as u32, v6),
            cport: r.range(1024, 65536) as u16,
            qid: r.next_u32() as u16,
            name: r.next_u32(),
        };
        let late = r.chance(self.mix.dns_late);
        let delay = if late {
            r.range(SEC as u64 * 3 / 2, 3 * SEC as u64) as i64
        } else {
            r.range(300 * US as u64, 20 * MS as u64) as i64
        };
        self.stats.udp.dns_queries += 1;
        self.stats.conversations += 1;
        dns_message(&mut self.scratch, d.qid, d.name, v6, false);
        let ip = Ip::new(c, d.server).ttl(64).id(self.rng.next_u32());
        let l4 = L4::Udp {
            sport: d.cport,
            dport: 53,
            payload: Payload::Bytes(&self.scratch),
        };
        self.out.send(self.now, vlan, &ip, &l4)?;
        self.at(self.now + delay, Ev::DnsResp(d));
        if late {
            // The client's socket is gone: its stack answers port unreachable,
            // quoting the whole response.
            let ev = Ev::Unreach {
                orig: Orig::DnsResponse(d),
                from: c,
                code: if v6 { 4 } else { 3 },
                mtu: 0,
                quote: Quote::Full,
                tag: Tag::DnsLate,
            };
            self.at(self.now + delay + 40 * US, ev);
        }
        Ok(())
    }

    /// A background attempt's SYN to a given server port.
    fn attempt_syn(&mut self, internal: bool, port: u16) -> (Seg, bool) {
        let v6 = self.is_v6();
        let (ci, c, vlan) = self.pick_client(v6);
        let linux = self.rng.chance(0.6);
        let s = if internal {
            internal_server(200 + self.rng.below(200) as u32, v6)
        } else {
            external_server(2000 + self.rng.below(5000) as u32, v6)
        };
        let sport = self.ephemeral(ci);
        let seg = Seg {
            vlan,
            src: c,
            dst: s,
            sport,
            dport: port,
            seq: self.rng.next_u32(),
            ack: 0,
            flags: F::SYN,
            win: 64240,
            opts: if self.mix.small {
                SynOpts::Mss
            } else if linux {
                SynOpts::Linux
            } else {
                SynOpts::Windows
            },
            ttl: if linux { 64 } else { 128 },
            len: 0,
            tsval: self.tsval(true),
        };
        self.stats.tcp.started += 1;
        self.stats.conversations += 1;
        (seg, linux)
    }

    /// SYN to a closed port, answered by RST+ACK. Windows clients retry the
    /// same SYN (same ISN) twice, 0.5 s apart: still one attempt.
    fn attempt_rejected(&mut self) -> io::Result<()> {
        let port = *self.rng.pick(&CLOSED_PORTS);
        let internal = self.rng.chance(0.8);
        let (syn, linux) = self.attempt_syn(internal, port);
        let rtt = self.rng.range(100 * US as u64, 3 * MS as u64) as i64;
        let rst = syn.reset_reply(if internal { 64 } else { 52 });
        self.send_seg(&syn)?;
        self.at(self.now + rtt, Ev::Seg(rst, Tag::Rejected));
        if !linux && self.rng.chance(0.5) {
            for k in 1..3 {
                let t = self.now + k * 500 * MS;
                self.at(t, Ev::Seg(syn, Tag::None));
                self.at(t + rtt, Ev::Seg(rst, Tag::None));
                self.stats.tcp.syn_retransmissions += 1;
            }
        }
        Ok(())
    }

    /// SYN nobody answers; retransmitted on the client OS schedule.
    fn attempt_unanswered(&mut self) -> io::Result<()> {
        let internal = self.rng.chance(0.5);
        let port = if internal { 445 } else { 443 };
        let (syn, linux) = self.attempt_syn(internal, port);
        self.send_seg(&syn)?;
        let t0 = self.now;
        self.at(
            t0 + SEC,
            Ev::Retx {
                seg: syn,
                t0,
                k: 0,
                linux,
            },
        );
        Ok(())
    }

    /// SYN answered by ICMP unreachable: from the router in front of a dead
    /// internal host (host unreachable, full quote), or from the perimeter
    /// firewall for outside destinations (admin prohibited, 8-byte quote).
    /// Half the clients retransmit once and get a second ICMP.
    fn attempt_icmp(&mut self) -> io::Result<()> {
        let internal = self.rng.chance(0.6);
        let port = if internal { 445 } else { 8443 };
        let (syn, _) = self.attempt_syn(internal, port);
        let v6 = syn.src.is_ipv6();
        let (from, code, quote) = match (internal, v6) {
            (true, false) => (IpAddr::V4(Ipv4Addr::new(10, 1, 255, 254)), 1, Quote::Full),
            (true, true) => (
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0xfffe)),
                3,
                Quote::Full,
            ),
            (false, false) => (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)), 13, Quote::Bytes8),
            (false, true) => (
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfffe)),
                1,
                Quote::Bytes8,
            ),
        };
        // Host-unreachable comes after the router's ARP/ND timeout (~1-3 s);
        // a firewall answers at once.
        let delay = if internal {
            self.rng.range(SEC as u64 / 2, 3 * SEC as u64 / 2) as i64
        } else {
            self.rng.range(200 * US as u64, 2 * MS as u64) as i64
        };
        self.send_seg(&syn)?;
        let ev = |tag| Ev::Unreach {
            orig: Orig::Tcp(syn),
            from,
            code,
            mtu: 0,
            quote,
            tag,
        };
        self.at(self.now + delay, ev(Tag::Unreachable));
        if self.rng.chance(0.5) {
            let t = self.now + SEC.max(delay + MS);
            self.at(t, Ev::Seg(syn, Tag::None));
            self.at(t + delay, ev(Tag::None));
            self.stats.tcp.syn_retransmissions += 1;
        }
        Ok(())
    }

    /// UDP to a closed port on an internal host: port unreachable.
    fn udp_closed(&mut self) -> io::Result<()> {
        let v6 = self.is_v6();
        let (_, c, vlan) = self.pick_client(v6);
        let s = internal_server(self.rng.below(400) as u32, v6);
        let dport = *self.rng.pick(&[161u16, 137, 1900, 5353, 8125, 514, 3702]);
        let u = Dgram {
            vlan,
            src: c,
            dst: s,
            sport: self.rng.range(1024, 65536) as u16,
            dport,
            len: self.rng.range(20, 120) as u16,
            ttl: 64,
        };
        self.stats.conversations += 1;
        let ip = Ip::new(c, s).ttl(u.ttl).id(u.ip_id());
        let l4 = L4::Udp {
            sport: u.sport,
            dport,
            payload: Payload::Fill {
                byte: 0x20,
                len: u.len as usize,
            },
        };
        self.out.send(self.now, vlan, &ip, &l4)?;
        let delay = self.rng.range(100 * US as u64, MS as u64) as i64;
        let ev = Ev::Unreach {
            orig: Orig::Udp(u),
            from: s,
            code: if v6 { 4 } else { 3 },
            mtu: 0,
            quote: Quote::Full,
            tag: Tag::UdpClosed,
        };
        self.at(self.now + delay, ev);
        Ok(())
    }

    /// PMTU discovery: the edge router (10.0.0.1) cannot forward a full-size
    /// client segment into a tunnel with a 1400-byte MTU and says so. The
    /// connection goes on: not a failure.
    fn pmtu(&mut self) -> io::Result<()> {
        if self.active.is_empty() || self.mix.small {
            return Ok(());
        }
        let id = self.active[self.rng.below(self.active.len() as u64) as usize];
        let cv = self.convs[id as usize];
        if cv.c.is_ipv6() || cv.state != State::Established {
            return Ok(()); // IPv6 uses Packet Too Big (type 2), not an unreachable
        }
        // The client sends a full-size segment (counted as mid-connection
        // data, not against the conversation's budget)...
        let len: u16 = if cv.ts { 1448 } else { 1460 };
        let seg = Seg {
            vlan: cv.vlan,
            src: cv.c,
            dst: cv.s,
            sport: cv.cport,
            dport: cv.sport,
            seq: cv.c_seq,
            ack: cv.s_seq,
            flags: F::ACK,
            win: cv.c_win,
            opts: if cv.ts { SynOpts::Ts } else { SynOpts::None },
            ttl: cv.c_ttl,
            len,
            tsval: self.tsval(true),
        };
        self.convs[id as usize].c_seq = cv.c_seq.wrapping_add(len as u32);
        self.send_seg(&seg)?;
        // ...and the router answers, quoting it.
        let ev = Ev::Unreach {
            orig: Orig::Tcp(seg),
            from: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            code: 4,
            mtu: 1400,
            quote: Quote::Full,
            tag: Tag::Pmtu,
        };
        self.at(self.now + 50 * US, ev);
        Ok(())
    }

    fn echo(&mut self) -> io::Result<()> {
        let v6 = self.is_v6();
        let (_, c, vlan) = self.pick_client(v6);
        let s = internal_server(self.rng.below(200) as u32, v6);
        let (id, seq) = (self.rng.next_u32() as u16, self.rng.below(100) as u16);
        self.stats.udp.echo_exchanges += 1;
        self.stats.conversations += 1;
        let ip = Ip::new(c, s).ttl(64).id(self.rng.next_u32());
        let l4 = L4::Echo {
            reply: false,
            id,
            seq,
            payload: Payload::Fill {
                byte: 0x61,
                len: self.echo_len(),
            },
        };
        self.out.send(self.now, vlan, &ip, &l4)?;
        let d = self.rng.range(100 * US as u64, 2 * MS as u64) as i64;
        self.at(
            self.now + d,
            Ev::Echo {
                vlan,
                src: s,
                dst: c,
                id,
                seq,
            },
        );
        Ok(())
    }

    /// Echo payload: 32 bytes (Windows ping), 18 in the small-frame profile so
    /// the frame stays at 60 bytes.
    fn echo_len(&self) -> usize {
        if self.mix.small { 18 } else { 32 }
    }

    fn ntp(&mut self) -> io::Result<()> {
        let (_, c, vlan) = self.pick_client(false);
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 123));
        let sport = self.rng.range(1024, 65536) as u16;
        self.stats.udp.other_exchanges += 1;
        self.stats.conversations += 1;
        let ip = Ip::new(c, s).ttl(64).id(self.rng.next_u32());
        let l4 = L4::Udp {
            sport,
            dport: 123,
            payload: Payload::Fill { byte: 0, len: 48 },
        };
        self.out.send(self.now, vlan, &ip, &l4)?;
        let d = self.rng.range(100 * US as u64, MS as u64) as i64;
        let reply = Dgram {
            vlan,
            src: s,
            dst: c,
            sport: 123,
            dport: sport,
            len: 48,
            ttl: 64,
        };
        self.at(self.now + d, Ev::Ntp(reply));
        Ok(())
    }

    fn arp(&mut self) -> io::Result<()> {
        let (_, c, vlan) = self.pick_client(false);
        let IpAddr::V4(c4) = c else {
            unreachable!("v4 client")
        };
        let o = c4.octets();
        let gw = Ipv4Addr::new(o[0], o[1], 0, 1);
        self.stats.udp.arp_exchanges += 1;
        self.stats.conversations += 1;
        self.out.arp(self.now, vlan, ArpOp::Request, gw, c4)?;
        let d = self.rng.range(20 * US as u64, 200 * US as u64) as i64;
        self.at(
            self.now + d,
            Ev::ArpReply {
                vlan,
                from: c4,
                to: gw,
            },
        );
        Ok(())
    }

    fn syslog(&mut self) -> io::Result<()> {
        let k = self.rng.below(200) as u32;
        let src = internal_server(k, false);
        let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
        let len = self.rng.range(60, 300) as usize;
        self.stats.conversations += 1;
        let ip = Ip::new(src, dst).ttl(64).id(self.rng.next_u32());
        let l4 = L4::Udp {
            sport: 514,
            dport: 514,
            payload: Payload::Fill { byte: 0x3c, len },
        };
        self.out.send(self.now, Vlan::None, &ip, &l4)
    }

    // ------------------------------------------------------------ scanners

    fn scan_probe(&mut self, k: usize) -> io::Result<()> {
        let sc = &self.scanners[k];
        let Some(&(dst, dport, answer)) = sc.targets.get(sc.next) else {
            return Ok(());
        };
        let syn = Seg {
            vlan: sc.vlan,
            src: sc.src,
            dst,
            sport: sc.sport,
            dport,
            seq: self.rng.next_u32(),
            ack: 0,
            flags: F::SYN,
            win: sc.win,
            opts: sc.opts,
            ttl: sc.ttl,
            len: 0,
            tsval: 0,
        };
        let gap = self.rng.range(sc.gap.0 as u64, sc.gap.1 as u64) as i64;
        let more = sc.next + 1 < sc.targets.len();
        let sc = &mut self.scanners[k];
        sc.next += 1;
        sc.truth.probes += 1;
        if sc.truth.probes == 1 {
            sc.truth.first_ts_ns = self.now;
        }
        sc.truth.last_ts_ns = self.now;
        self.stats.conversations += 1;
        self.send_seg(&syn)?;
        self.answer(k as u8, &syn, answer);
        if more {
            self.at(self.now + gap, Ev::Scan(k as u8));
        }
        Ok(())
    }

    /// Queue the target's answer to a probe (and the scanner's RST after a
    /// SYN-ACK, as a SYN scanner without a connection does).
    fn answer(&mut self, tag: u8, syn: &Seg, answer: Answer) {
        let rtt = self.rng.range(100 * US as u64, MS as u64) as i64;
        match answer {
            Answer::Silent => {}
            Answer::Rst => self.at(
                self.now + rtt,
                Ev::Seg(syn.reset_reply(64), Tag::ScanRst(tag)),
            ),
            Answer::SynAck => {
                let sa = syn.syn_ack_reply(self.rng.next_u32(), 64, SynOpts::Mss);
                self.at(self.now + rtt, Ev::Seg(sa, Tag::ScanSynAck(tag)));
                let mut rst = sa.reset_reply(syn.ttl);
                rst.flags = F::RST;
                rst.seq = syn.seq.wrapping_add(1);
                rst.ack = 0;
                self.at(self.now + rtt + 30 * US, Ev::Seg(rst, Tag::None));
            }
            Answer::Icmp { from, code, delay } => {
                let ev = Ev::Unreach {
                    orig: Orig::Tcp(*syn),
                    from,
                    code,
                    mtu: 0,
                    quote: Quote::Full,
                    tag: Tag::ScanIcmp(tag),
                };
                self.at(self.now + delay, ev);
            }
        }
    }

    fn masscan_probe(&mut self) -> io::Result<()> {
        // Pick a masscan by weight.
        let mut u = self.rng.unit() * self.masscans.iter().map(|m| m.weight).sum::<f64>();
        let mut k = 0;
        while k + 1 < self.masscans.len() && u >= self.masscans[k].weight {
            u -= self.masscans[k].weight;
            k += 1;
        }
        let m = &mut self.masscans[k];
        let n_ports = m.truth.ports.len() as u64;
        // Cycle-walk the permutation of 2^bits until an index inside
        // (2^24 addresses x ports) comes out, skipping our own address.
        let (addr, port) = loop {
            let v = m.perm.apply(m.counter);
            m.counter += 1;
            let (a, p) = (v & 0xff_ffff, v >> 24);
            let addr = Ipv4Addr::from(0x0a00_0000 | a as u32);
            if p < n_ports && addr != m.src && a & 0xff != 0 && a & 0xff != 255 {
                break (addr, m.truth.ports[p as usize]);
            }
        };
        // masscan's signature: fixed source port, window 1024, no options, TTL
        // 255, ISN derived from the target (a "syn cookie").
        let cookie = mix64(((u32::from(addr) as u64) << 16) ^ port as u64 ^ 0x6d61_7373) as u32;
        let syn = Seg {
            vlan: Vlan::None,
            src: IpAddr::V4(m.src),
            dst: IpAddr::V4(addr),
            sport: m.sport,
            dport: port,
            seq: cookie,
            ack: 0,
            flags: F::SYN,
            win: 1024,
            opts: SynOpts::None,
            ttl: 255,
            len: 0,
            tsval: 0,
        };
        m.truth.probes += 1;
        if m.truth.probes == 1 {
            m.truth.first_ts_ns = self.now;
        }
        m.truth.last_ts_ns = self.now;
        // Whether the target answers depends only on (address, port).
        let h = (mix64(cookie as u64 ^ 0x616e_7377) >> 11) as f64 / (1u64 << 53) as f64;
        let answer = if h < m.open {
            Answer::SynAck
        } else if h < m.open + m.closed {
            Answer::Rst
        } else {
            Answer::Silent
        };
        let tag = (self.scanners.len() + k) as u8;
        self.stats.conversations += 1;
        self.send_seg(&syn)?;
        self.answer(tag, &syn, answer);
        Ok(())
    }

    /// Spoofed-source SYN: every source (address, port) is distinct, drawn
    /// through a permutation of 2^45 = 64 public /8s x 2^24 hosts x 2^15 ports.
    fn flood_syn(&mut self) -> io::Result<()> {
        let mut u = self.rng.unit() * self.floods.iter().map(|f| f.weight).sum::<f64>();
        let mut k = 0;
        while k + 1 < self.floods.len() && u >= self.floods[k].weight {
            u -= self.floods[k].weight;
            k += 1;
        }
        let v = self.flood_perm.apply(self.flood_counter);
        self.flood_counter += 1;
        let sport = 32768 + (v & 0x7fff) as u16;
        let host = (v >> 15) & 0xff_ffff;
        let octet = SPOOF_OCTETS[(v >> 39) as usize & 63];
        let src = Ipv4Addr::from(((octet as u32) << 24) | host as u32);
        let f = &mut self.floods[k];
        let syn = Seg {
            vlan: Vlan::None,
            src: IpAddr::V4(src),
            dst: IpAddr::V4(f.target),
            sport,
            dport: f.port,
            seq: self.rng.next_u32(),
            ack: 0,
            flags: F::SYN,
            win: 512,
            opts: SynOpts::None,
            ttl: 32 + self.rng.below(200) as u8,
            len: 0,
            tsval: 0,
        };
        f.truth.syns += 1;
        if f.truth.syns == 1 {
            f.truth.first_ts_ns = self.now;
        }
        f.truth.last_ts_ns = self.now;
        let answered = self.rng.chance(f.answer);
        self.stats.conversations += 1;
        self.send_seg(&syn)?;
        if answered {
            let sa = syn.syn_ack_reply(self.rng.next_u32(), 64, SynOpts::Mss);
            let d = self.rng.range(20 * US as u64, 200 * US as u64) as i64;
            self.at(self.now + d, Ev::Seg(sa, Tag::FloodSynAck(k as u8)));
        }
        Ok(())
    }
}

/// First octets of the spoofed flood sources: 64 public /8s (no 10/8, no
/// loopback, multicast or reserved space).
const SPOOF_OCTETS: [u8; 64] = [
    1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
    29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66,
];

/// Write a DNS query or its response into `buf` (replacing its content).
/// The response repeats the question and adds one A/AAAA answer.
pub(crate) fn dns_message(buf: &mut Vec<u8>, qid: u16, name: u32, v6: bool, response: bool) {
    buf.clear();
    buf.extend_from_slice(&qid.to_be_bytes());
    buf.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    buf.extend_from_slice(&[0, 1, 0, response as u8, 0, 0, 0, 0]);
    // host{n}.<name> for half the lookups, <name> for the others.
    let base = DNS_NAMES[(name & 7) as usize];
    if name & 8 != 0 {
        // "host" + decimal number, without allocating.
        let n = (name >> 4) & 0x3ff;
        let digits = if n >= 1000 {
            4
        } else if n >= 100 {
            3
        } else if n >= 10 {
            2
        } else {
            1
        };
        buf.push(4 + digits as u8);
        buf.extend_from_slice(b"host");
        for i in (0..digits).rev() {
            buf.push(b'0' + (n / 10u32.pow(i) % 10) as u8);
        }
    }
    for label in base.split('.') {
        buf.push(label.len() as u8);
        buf.extend_from_slice(label.as_bytes());
    }
    buf.push(0);
    let qtype: u16 = if v6 { 28 } else { 1 };
    buf.extend_from_slice(&qtype.to_be_bytes());
    buf.extend_from_slice(&[0, 1]);
    if response {
        buf.extend_from_slice(&[0xc0, 0x0c]); // pointer to the question name
        buf.extend_from_slice(&qtype.to_be_bytes());
        buf.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]); // IN, TTL 300
        let h = mix64(name as u64);
        if v6 {
            buf.extend_from_slice(&16u16.to_be_bytes());
            buf.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            buf.extend_from_slice(&h.to_be_bytes()[..8]);
            buf.extend_from_slice(&[0, 0, 0, 1]);
        } else {
            buf.extend_from_slice(&4u16.to_be_bytes());
            buf.extend_from_slice(&[
                PUBLIC_OCTETS[(h & 15) as usize],
                (h >> 8) as u8,
                (h >> 16) as u8,
                1 + (h >> 24) as u8 % 254,
            ]);
        }
    }
}
