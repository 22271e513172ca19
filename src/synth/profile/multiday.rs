//! Multiday profile: a compact capture of a small enterprise network over days
//! or weeks, for the analytics that learn each source's usual failed
//! connections (14-day activation, rolling 30-day baseline, 1-day test windows,
//! a host is "active" when seen alive within 24 h) and alert on the abnormal.
//!
//! **Each day is a function of (seed, day index) only**: days `0..k` and
//! `k..n` generated separately and concatenated are exactly the packets of
//! days `0..n`. Day 0 starts at 2024-03-01T00:00:00Z ([`DAY0_NS`]); nothing of a
//! day spills past its midnight, and frames are written in timestamp order.
//! Frames are IPv4 (a little IPv6) over Ethernet with valid checksums; the
//! default snaplen (96) keeps every header and cuts payloads, so 16 days make
//! a file of about 3 MB.
//!
//! Network `10.10.0.0/16`; all times UTC, offsets from the day's midnight:
//!
//! | who | what |
//! |---|---|
//! | `10.10.0.1` | gateway: answers ARP, sends ICMP host unreachable for absent hosts of `10.10.4.0/24` and `10.10.8.0/24` |
//! | `10.10.0.53` | DNS server, answers every query (12-20 a day) |
//! | `10.10.1.1-40` | servers, see [`open_ports`]: `.1-.10` Linux 22/80/443, `.11-.30` Windows 445/3389, `.31-.40` Linux 22/443; each is connected to at least once in 06:00-12:00 and once in 12:00-20:00 every day, so none is ever inactive |
//! | `10.10.2.1-60`, `.66 .77 .88 .99` | clients (Windows): about 150 successful connections a day in all with a diurnal pattern, every client at least once a day; 1-2 a day to a closed port of a live server (RST, the Windows retry twice after 0.5 s) |
//! | `fd10:10:2::1-8` → `fd10:10:1::1-4` | a few IPv6 connections a day (port 443) |
//! | `10.10.3.5` | monitoring: checks `10.10.1.250:443` (never alive) every 30 min from 00:00:07, SYN plus one retransmission 1 s later, never answered (48 attempts a day). Benign |
//! | `10.10.1.41` | decommissioned server (Windows 445/3389): live on days 0-2, silent from day 3 |
//! | `10.10.2.11 .23 .35` | its users: SMB to it 2-3 times a day; from day 3, 2-4 attempts a day on 445, each a SYN retransmitted at +1 s and +3 s, never answered. Benign |
//! | `10.10.2.61` / `.62` | DHCP churn: `.61` is a client on days 0-4 only, `.62` a new client from day 8. Benign |
//! | `10.10.9.9` | sanctioned scanner, every night 02:00-02:20: SYN to every address of `10.10.1.0/24` and `10.10.4.0/24` on 22 and 445 (1,024 probes, random order); live servers answer SYN-ACK (then the scanner's RST) or RST, `10.10.4.x` draws an ICMP host unreachable (8-byte quote) 3 s later for 1 probe in 8. Learned, never alerted |
//! | `10.10.2.66` | day 15, 10:00: SYN sweep of `10.10.5.0/24` and `10.10.6.0/24` on 445 and 3389, 2-5 ms apart (1,024 probes, unanswered), then ARP requests for the unused `10.10.2.101-200` (100, unanswered). Alert |
//! | `10.10.2.77` | day 15, 12:00-18:00: one SYN to a random new address of `10.10.7.0/24` on port 22 every 3-6 min (about 80), unanswered. Alert |
//! | `10.10.2.88` | day 25, 14:00: SYN to ports 1-1024 of `10.10.8.8` (never active; answers RST to all), 1-3 ms apart; 14:05: echo requests to `10.10.8.1-254`, 10 ms apart, the gateway answers host unreachable quoting the echo (none for `.8`, which drops pings). Alert |
//! | `10.10.2.99` | day 40, 09:30: SYN sweep of `10.10.4.0/24` port 22 (256 probes, 2-4 ms apart; ICMP for 1 in 8 as above). Alert |
//!
//! The scanners' ordinary client traffic goes on before and after their day.
//! The truth file lists the scanners present, the benign actors, the expected
//! alerts (day, source) and per-day facts.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::sim::{Seg, SynOpts, WINDOWS_SYN_RETX, dns_message};
use super::{
    ActorTruth, AlertTruth, AttemptCounts, DayTruth, GenOptions, MS, MultidayTruth, Out, Profile,
    SEC, ScannerTruth, Truth, US, UdpCounts, ip_str,
};
use crate::synth::frame::{ArpOp, Frame, Ip, L4, Payload, Quote, Vlan, tcp_flags as F};
use crate::synth::rng::{Permutation, Rng, mix64};
use crate::synth::writer::Sink;

/// 2024-03-01T00:00:00Z in nanoseconds since the Unix epoch: the start of day 0.
pub const DAY0_NS: i64 = 1_709_251_200 * SEC;
/// Nanoseconds per day.
pub const DAY: i64 = 86_400 * SEC;
const MINUTE: i64 = 60 * SEC;
const HOUR: i64 = 3600 * SEC;

/// Days of learning before alerts may be raised (days 0 ..= 13).
pub const ACTIVATION_DAYS: u32 = 14;
/// Longest scenario accepted (pcap seconds are 32-bit).
pub const MAX_DAYS: u32 = 3650;

/// Start of day `d`, ns since the epoch.
pub fn day_start(d: u32) -> i64 {
    DAY0_NS + d as i64 * DAY
}

/// Gateway: ARP replies, ICMP errors.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// DNS server.
pub const DNS_SERVER: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 53);
/// Servers are `10.10.1.1 ..= 10.10.1.SERVERS`.
pub const SERVERS: u8 = 40;
/// Regular clients are `10.10.2.1 ..= 10.10.2.CLIENTS`.
pub const CLIENTS: u8 = 60;
/// Dual-stack servers `fd10:10:1::1 ..= V6_SERVERS` and clients
/// `fd10:10:2::1 ..= V6_CLIENTS`.
pub const V6_SERVERS: u16 = 4;
/// See [`V6_SERVERS`].
pub const V6_CLIENTS: u16 = 8;

/// The decommissioned server `10.10.1.41` (last octet).
pub const DECOMMISSIONED: u8 = 41;
/// Its last live day; from the next one on it never answers.
pub const DECOMMISSIONED_LAST_DAY: u32 = 2;
/// The clients that keep trying it (last octets of `10.10.2.x`).
pub const DECOMMISSIONED_USERS: [u8; 3] = [11, 23, 35];

/// DHCP churn: `10.10.2.61` is a client on days 0 ..= CHURN_OLD_LAST_DAY.
pub const CHURN_OLD: u8 = 61;
/// See [`CHURN_OLD`].
pub const CHURN_OLD_LAST_DAY: u32 = 4;
/// DHCP churn: `10.10.2.62` is a client from day CHURN_NEW_FIRST_DAY on.
pub const CHURN_NEW: u8 = 62;
/// See [`CHURN_NEW`].
pub const CHURN_NEW_FIRST_DAY: u32 = 8;

/// Monitoring host.
pub const MONITOR: Ipv4Addr = Ipv4Addr::new(10, 10, 3, 5);
/// The host it checks, never alive.
pub const DEAD_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 250);
/// The port it checks.
pub const DEAD_PORT: u16 = 443;
/// Checks a day (every 30 minutes).
pub const MONITOR_CHECKS: u32 = 48;

/// Sanctioned nightly scanner.
pub const NIGHTLY_SCANNER: Ipv4Addr = Ipv4Addr::new(10, 10, 9, 9);
/// Ports it scans.
pub const NIGHTLY_PORTS: [u16; 2] = [22, 445];

/// Compromised client (last octet) sweeping 10.10.5.0/24 and 10.10.6.0/24.
pub const SWEEPER: u8 = 66;
/// Its day.
pub const SWEEP_DAY: u32 = 15;
/// Ports it sweeps.
pub const SWEEP_PORTS: [u16; 2] = [445, 3389];
/// Low-and-slow scanner (last octet) of 10.10.7.0/24.
pub const SLOW: u8 = 77;
/// Its day.
pub const SLOW_DAY: u32 = 15;
/// Vertical scanner (last octet) of [`VERTICAL_TARGET`], and ping sweeper of
/// 10.10.8.0/24.
pub const VERTICAL: u8 = 88;
/// Its day.
pub const VERTICAL_DAY: u32 = 25;
/// Target of the vertical scan: exists, answers RST, never active.
pub const VERTICAL_TARGET: Ipv4Addr = Ipv4Addr::new(10, 10, 8, 8);
/// Client (last octet) sweeping 10.10.4.0/24 port 22, the nightly scanner's
/// range.
pub const SUBNET_SWEEPER: u8 = 99;
/// Its day.
pub const SUBNET_SWEEP_DAY: u32 = 40;

/// `10.10.1.i`.
pub fn server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 1, i)
}

/// `10.10.2.i`.
pub fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 2, i)
}

/// `fd10:10:1::i`.
pub fn server6(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd10, 0x10, 1, 0, 0, 0, 0, i)
}

/// `fd10:10:2::i`.
pub fn client6(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd10, 0x10, 2, 0, 0, 0, 0, i)
}

/// Whether server `10.10.1.i` runs Windows (TTL 128).
pub fn windows_server(i: u8) -> bool {
    matches!(i, 11..=30) || i == DECOMMISSIONED
}

/// Open TCP ports of server `10.10.1.i` (every other port answers RST).
pub fn open_ports(i: u8) -> &'static [u16] {
    match i {
        1..=10 => &[22, 80, 443],
        _ if windows_server(i) => &[445, 3389],
        _ => &[22, 443],
    }
}

/// Servers alive on day `d` (last octets).
pub fn servers_on(d: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (1..=SERVERS).collect();
    if d <= DECOMMISSIONED_LAST_DAY {
        v.push(DECOMMISSIONED);
    }
    v
}

/// Clients active on day `d` (last octets): 1-60, the DHCP churn address of
/// the day, and the four that turn scanner on their day.
pub fn clients_on(d: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (1..=CLIENTS).collect();
    if d <= CHURN_OLD_LAST_DAY {
        v.push(CHURN_OLD);
    }
    if d >= CHURN_NEW_FIRST_DAY {
        v.push(CHURN_NEW);
    }
    v.extend([SWEEPER, SLOW, VERTICAL, SUBNET_SWEEPER]);
    v
}

/// Relative activity by hour of day (UTC), for the diurnal pattern.
const HOURLY: [f64; 24] = [
    0.04, 0.03, 0.03, 0.03, 0.03, 0.05, 0.15, 0.45, // 00-07
    0.9, 1.0, 1.0, 1.0, 0.7, 0.9, 1.0, 1.0, // 08-15
    0.9, 0.7, 0.4, 0.2, 0.12, 0.08, 0.06, 0.05, // 16-23
];

/// A time in `[lo, hi)` (offsets from midnight) drawn with the diurnal weights.
fn diurnal(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    loop {
        let t = rng.range(lo as u64, hi as u64) as i64;
        if rng.chance(HOURLY[(t / HOUR) as usize % 24]) {
            return t;
        }
    }
}

/// Windows ephemeral port.
fn ephemeral(rng: &mut Rng) -> u16 {
    rng.range(49152, 65536) as u16
}

/// TCP timestamp clock: milliseconds since day 0.
fn tsval_at(t: i64) -> u32 {
    ((t - DAY0_NS) / MS) as u32
}

fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// A SYN from `src` with the given options.
#[allow(clippy::too_many_arguments)]
fn syn(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    win: u16,
    opts: SynOpts,
    ttl: u8,
) -> Seg {
    Seg {
        vlan: Vlan::None,
        src,
        dst,
        sport,
        dport,
        seq,
        ack: 0,
        flags: F::SYN,
        win,
        opts,
        ttl,
        len: 0,
        tsval: 0,
    }
}

/// Records of one day, sorted before they are written.
#[derive(Default)]
struct Collect {
    recs: Vec<(i64, Vec<u8>, usize)>,
}

impl Sink for Collect {
    fn packet(&mut self, ts_ns: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        self.recs.push((ts_ns, data.to_vec(), wire_len));
        Ok(())
    }
}

/// Indexes of the scanners' truth records.
mod sc {
    pub const NIGHTLY: usize = 0;
    pub const SWEEP: usize = 1;
    pub const ARP_SWEEP: usize = 2;
    pub const SLOW: usize = 3;
    pub const VERTICAL: usize = 4;
    pub const PING_SWEEP: usize = 5;
    pub const SUBNET: usize = 6;
}

/// Indexes of the benign actors' truth records.
mod bn {
    pub const MONITOR: usize = 0;
    /// 1, 2, 3: the decommissioned server's users, in `DECOMMISSIONED_USERS`
    /// order; then the two DHCP churn addresses.
    pub const DECOM: usize = 1;
}

fn scanner_truths() -> Vec<ScannerTruth> {
    let s = |ip: Ipv4Addr, kind: &str, ports: &[u16], targets: &str, day: u32| ScannerTruth {
        ip: ip.to_string(),
        kind: kind.to_string(),
        ports: ports.to_vec(),
        targets: targets.to_string(),
        sanctioned: Some(day == 0),
        first_day: Some(day),
        expect_alert: Some(day != 0),
        ..ScannerTruth::default()
    };
    vec![
        s(
            NIGHTLY_SCANNER,
            "tcp_sweep",
            &NIGHTLY_PORTS,
            "10.10.1.0/24 and 10.10.4.0/24, every address, random order, every night 02:00-02:20",
            0,
        ),
        s(
            client(SWEEPER),
            "tcp_sweep",
            &SWEEP_PORTS,
            "10.10.5.0/24 and 10.10.6.0/24 (never seen), day 15 from 10:00, 2-5 ms apart",
            SWEEP_DAY,
        ),
        s(
            client(SWEEPER),
            "arp_sweep",
            &[],
            "10.10.2.101-200 (unused), day 15 after the TCP sweep",
            SWEEP_DAY,
        ),
        s(
            client(SLOW),
            "tcp_slow",
            &[22],
            "random new addresses of 10.10.7.0/24, day 15 12:00-18:00, every 3-6 min",
            SLOW_DAY,
        ),
        s(
            client(VERTICAL),
            "tcp_vertical",
            &[],
            "10.10.8.8 ports 1-1024 (answers RST, never active), day 25 from 14:00",
            VERTICAL_DAY,
        ),
        s(
            client(VERTICAL),
            "icmp_sweep",
            &[],
            "echo to 10.10.8.1-254, day 25 from 14:05; the gateway answers host unreachable",
            VERTICAL_DAY,
        ),
        s(
            client(SUBNET_SWEEPER),
            "tcp_sweep",
            &[22],
            "10.10.4.0/24 (never alive; the nightly scanner's range), day 40 from 09:30",
            SUBNET_SWEEP_DAY,
        ),
    ]
}

fn benign_truths() -> Vec<ActorTruth> {
    let a = |ip: Ipv4Addr,
             role: &str,
             first_day: u32,
             last_day: Option<u32>,
             targets: &str,
             ports: &[u16],
             description: &str| ActorTruth {
        ip: ip.to_string(),
        role: role.to_string(),
        expect_alert: false,
        first_day,
        last_day,
        targets: targets.to_string(),
        ports: ports.to_vec(),
        description: description.to_string(),
        ..ActorTruth::default()
    };
    let mut v = vec![a(
        MONITOR,
        "monitoring_dead_host",
        0,
        None,
        "10.10.1.250 (never alive)",
        &[DEAD_PORT],
        "monitoring checks a dead host every 30 minutes, every day: SYN, one retransmission after 1 s, no answer",
    )];
    for u in DECOMMISSIONED_USERS {
        v.push(a(
            client(u),
            "decommissioned_server_client",
            DECOMMISSIONED_LAST_DAY + 1,
            None,
            "10.10.1.41 (live on days 0-2, gone from day 3)",
            &[445],
            "a user of the decommissioned file server: 2-4 unanswered SMB attempts a day from day 3 (SYN retransmitted at +1 s, +3 s)",
        ));
    }
    v.push(a(
        client(CHURN_OLD),
        "dhcp_churn_old",
        0,
        Some(CHURN_OLD_LAST_DAY),
        "an ordinary client on days 0-4, silent afterwards",
        &[],
        "DHCP churn: its lease ends after day 4; no failures",
    ));
    v.push(a(
        client(CHURN_NEW),
        "dhcp_churn_new",
        CHURN_NEW_FIRST_DAY,
        None,
        "an ordinary client from day 8 on, never seen before",
        &[],
        "DHCP churn: a new client address from day 8; no failures",
    ));
    v
}

/// The generator's state: the frame emitter, the truth being accumulated and
/// the current day.
struct Gen<'c> {
    out: Out<'c, Collect>,
    /// Frames rebuilt whole, for ICMP quotes.
    qf: Frame,
    seed: u64,
    day: u32,
    ip_id: u16,
    scanners: Vec<ScannerTruth>,
    benign: Vec<ActorTruth>,
    attempts: AttemptCounts,
    udp: UdpCounts,
    conversations: u64,
    today: DayTruth,
}

impl Gen<'_> {
    /// An independent random stream for one activity of the current day.
    fn rng(&self, stream: u64) -> Rng {
        Rng::new(self.seed, (self.day as u64) << 16 | stream)
    }

    /// Absolute time of `offset` into the current day.
    fn at(&self, offset: i64) -> i64 {
        day_start(self.day) + offset
    }

    fn ip(&mut self, src: IpAddr, dst: IpAddr, ttl: u8) -> Ip<'static> {
        self.ip_id = self.ip_id.wrapping_add(1);
        Ip::new(src, dst).ttl(ttl).id(self.ip_id as u32)
    }

    fn tcp_ip(&mut self, t: i64, s: &Seg) -> (Ip<'static>, L4<'static>) {
        let ip = self.ip(s.src, s.dst, s.ttl);
        let p = Payload::Fill {
            byte: b'x',
            len: s.len as usize,
        };
        let l4 = L4::Tcp(s.tcp(tsval_at(t)), p);
        self.out
            .send(t, Vlan::None, &ip, &l4)
            .expect("in-memory sink");
        (ip, l4)
    }

    /// Send a TCP segment.
    fn tcp(&mut self, t: i64, s: &Seg) {
        self.tcp_ip(t, s);
    }

    /// Send a TCP segment and return what an ICMP error about it quotes (the
    /// IP header and 8 bytes of TCP).
    fn tcp_quoted(&mut self, t: i64, s: &Seg) -> Vec<u8> {
        let (ip, l4) = self.tcp_ip(t, s);
        self.qf.build(Vlan::None, &ip, &l4);
        self.qf.quote(Quote::Bytes8).to_vec()
    }

    /// ICMP host unreachable from the gateway to `to`.
    fn host_unreachable(&mut self, t: i64, to: IpAddr, quote: &[u8]) {
        let ip = self.ip(v4(GATEWAY), to, 64);
        let l4 = L4::Unreach {
            code: 1,
            mtu: 0,
            quote,
        };
        self.out
            .send(t, Vlan::None, &ip, &l4)
            .expect("in-memory sink");
    }

    fn arp(&mut self, t: i64, op: ArpOp, sender: Ipv4Addr, target: Ipv4Addr) {
        self.out
            .arp(t, Vlan::None, op, sender, target)
            .expect("in-memory sink");
    }

    fn probe(&mut self, k: usize, t: i64) {
        let s = &mut self.scanners[k];
        if s.probes == 0 {
            s.first_ts_ns = t;
        }
        s.probes += 1;
        s.last_ts_ns = t;
        self.today.scanner_probes += 1;
        self.conversations += 1;
    }

    // ------------------------------------------------------------ background

    /// A successful connection from a Windows client, in five frames: SYN,
    /// SYN-ACK, the handshake's ACK carrying the request and the client's FIN
    /// (PSH|ACK|FIN: the client sends its request and half-closes), the
    /// response with the server's FIN (PSH|ACK|FIN, acknowledging both), and
    /// the client's last ACK.
    fn connection(&mut self, rng: &mut Rng, t: i64, c: IpAddr, s: IpAddr, dport: u16, ttl: u8) {
        let rtt = rng.range(150, 700) as i64 * US;
        let syn = syn(
            c,
            s,
            ephemeral(rng),
            dport,
            rng.next_u32(),
            64240,
            SynOpts::Windows,
            128,
        );
        self.tcp(t, &syn);
        let sa = syn.syn_ack_reply(rng.next_u32(), ttl, SynOpts::Windows);
        let t = t + rtt;
        self.tcp(t, &sa);
        let (cs, ss) = (syn.seq.wrapping_add(1), sa.seq.wrapping_add(1));
        let req = rng.range(40, 400) as u16;
        let request = Seg {
            seq: cs,
            ack: ss,
            flags: F::PSH | F::ACK | F::FIN,
            win: 1026,
            opts: SynOpts::None,
            len: req,
            ..syn
        };
        let t = t + rng.range(30, 300) as i64 * US;
        self.tcp(t, &request);
        let resp = rng.range(80, 1400) as u16;
        let cs = cs.wrapping_add(req as u32 + 1);
        let t = t + rtt + rng.range(200, 20_000) as i64 * US;
        self.tcp(
            t,
            &Seg {
                seq: ss,
                ack: cs,
                flags: F::PSH | F::ACK | F::FIN,
                win: 509,
                opts: SynOpts::None,
                len: resp,
                ..sa
            },
        );
        let t = t + rng.range(60, 400) as i64 * US;
        self.tcp(
            t,
            &Seg {
                seq: cs,
                ack: ss.wrapping_add(resp as u32 + 1),
                flags: F::ACK,
                len: 0,
                ..request
            },
        );
        self.attempts.started += 1;
        self.attempts.success += 1;
        self.conversations += 1;
        self.today.connections += 1;
    }

    /// Client `c` connects to a random open port of server `s`.
    fn connect_server(&mut self, rng: &mut Rng, t: i64, c: u8, s: u8) {
        let port = *rng.pick(open_ports(s));
        let ttl = if windows_server(s) { 128 } else { 64 };
        self.connection(rng, t, v4(client(c)), v4(server(s)), port, ttl);
    }

    /// The clients' connections: every live server twice (06:00-12:00 and
    /// 12:00-20:00), every client once (07:00-19:00), a few more at any hour,
    /// a few over IPv6; and 1-2 attempts to a closed port.
    fn background(&mut self) {
        let mut rng = self.rng(1);
        let clients = clients_on(self.day);
        // The decommissioned server has its own users (see `decommissioned`).
        let servers: Vec<u8> = (1..=SERVERS).collect();
        for &s in &servers {
            for (lo, hi) in [(6 * HOUR, 12 * HOUR), (12 * HOUR, 20 * HOUR)] {
                let t = self.at(diurnal(&mut rng, lo, hi));
                let c = *rng.pick(&clients);
                self.connect_server(&mut rng, t, c, s);
            }
        }
        for &c in &clients {
            let t = self.at(diurnal(&mut rng, 7 * HOUR, 19 * HOUR));
            let s = *rng.pick(&servers);
            self.connect_server(&mut rng, t, c, s);
        }
        for _ in 0..rng.range(0, 5) {
            let t = self.at(diurnal(&mut rng, 0, 23 * HOUR + 30 * MINUTE));
            let (c, s) = (*rng.pick(&clients), *rng.pick(&servers));
            self.connect_server(&mut rng, t, c, s);
        }
        // IPv6: each dual-stack server once a day, from a dual-stack client.
        for s in 1..=V6_SERVERS {
            let t = self.at(diurnal(&mut rng, 7 * HOUR, 19 * HOUR));
            let c = rng.range(1, V6_CLIENTS as u64 + 1) as u16;
            let ttl = 64;
            self.connection(
                &mut rng,
                t,
                IpAddr::V6(client6(c)),
                IpAddr::V6(server6(s)),
                443,
                ttl,
            );
        }
        // A closed port of a live server: RST+ACK; Windows re-sends the same
        // SYN twice, 0.5 s apart, each answered by RST.
        for _ in 0..rng.range(1, 3) {
            let t = self.at(diurnal(&mut rng, 8 * HOUR, 18 * HOUR));
            let (c, s) = (*rng.pick(&clients), *rng.pick(&servers));
            let (port, ttl) = if windows_server(s) {
                (22, 128)
            } else {
                (3389, 64)
            };
            let syn = syn(
                v4(client(c)),
                v4(server(s)),
                ephemeral(&mut rng),
                port,
                rng.next_u32(),
                64240,
                SynOpts::Windows,
                128,
            );
            for i in 0..3 {
                let ti = t + i * 500 * MS;
                self.tcp(ti, &syn);
                let rtt = rng.range(150, 600) as i64 * US;
                self.tcp(ti + rtt, &syn.reset_reply(ttl));
            }
            self.attempts.started += 1;
            self.attempts.rejected += 1;
            self.attempts.syn_retransmissions += 2;
            self.conversations += 1;
            self.today.rejected += 1;
        }
    }

    /// The decommissioned file server's users: SMB to it while it lives, then
    /// unanswered attempts (Windows: SYN, +1 s, +3 s).
    fn decommissioned(&mut self) {
        let mut rng = self.rng(2);
        for (k, &u) in DECOMMISSIONED_USERS.iter().enumerate() {
            if self.day <= DECOMMISSIONED_LAST_DAY {
                for _ in 0..rng.range(2, 4) {
                    let t = self.at(diurnal(&mut rng, 7 * HOUR, 19 * HOUR));
                    self.connect_server(&mut rng, t, u, DECOMMISSIONED);
                }
                continue;
            }
            for _ in 0..rng.range(2, 5) {
                let t = self.at(diurnal(&mut rng, 7 * HOUR, 19 * HOUR));
                let syn = syn(
                    v4(client(u)),
                    v4(server(DECOMMISSIONED)),
                    ephemeral(&mut rng),
                    445,
                    rng.next_u32(),
                    64240,
                    SynOpts::Windows,
                    128,
                );
                self.tcp(t, &syn);
                for dt in WINDOWS_SYN_RETX {
                    self.tcp(t + dt * SEC, &syn);
                }
                let n = WINDOWS_SYN_RETX.len() as u64;
                self.attempts.started += 1;
                self.attempts.unanswered += 1;
                self.attempts.syn_retransmissions += n;
                self.conversations += 1;
                self.today.decommissioned_attempts += 1;
                let b = &mut self.benign[bn::DECOM + k];
                b.failed_attempts += 1;
                b.syn_retransmissions += n;
            }
        }
    }

    /// 10.10.3.5 checks 10.10.1.250:443 every 30 minutes (Linux: SYN, one
    /// retransmission after 1 s, then the check times out).
    fn monitoring(&mut self) {
        let mut rng = self.rng(3);
        // Linux picks ephemeral ports in 32768-60999; successive checks get
        // distinct ones.
        let base = rng.below(28232);
        for k in 0..MONITOR_CHECKS as i64 {
            let t = self.at(k * 30 * MINUTE + 7 * SEC + rng.range(0, 50_000) as i64 * US);
            let syn = syn(
                v4(MONITOR),
                v4(DEAD_HOST),
                (32768 + (base + k as u64 * 577) % 28232) as u16,
                DEAD_PORT,
                rng.next_u32(),
                64240,
                SynOpts::Linux,
                64,
            );
            self.tcp(t, &syn);
            self.tcp(t + SEC + rng.range(0, 2000) as i64 * US, &syn);
            self.attempts.started += 1;
            self.attempts.unanswered += 1;
            self.attempts.syn_retransmissions += 1;
            self.conversations += 1;
            self.today.monitor_attempts += 1;
            let b = &mut self.benign[bn::MONITOR];
            b.failed_attempts += 1;
            b.syn_retransmissions += 1;
        }
    }

    /// DNS lookups, all answered.
    fn dns(&mut self) {
        let mut rng = self.rng(4);
        let clients = clients_on(self.day);
        let mut msg = Vec::with_capacity(64);
        for _ in 0..rng.range(12, 21) {
            let t = self.at(diurnal(&mut rng, 0, 23 * HOUR + 50 * MINUTE));
            let c = v4(client(*rng.pick(&clients)));
            let s = v4(DNS_SERVER);
            let (cport, qid, name) = (ephemeral(&mut rng), rng.next_u32() as u16, rng.next_u32());
            dns_message(&mut msg, qid, name, false, false);
            let ip = self.ip(c, s, 128);
            let l4 = L4::Udp {
                sport: cport,
                dport: 53,
                payload: Payload::Bytes(&msg),
            };
            self.out
                .send(t, Vlan::None, &ip, &l4)
                .expect("in-memory sink");
            dns_message(&mut msg, qid, name, false, true);
            let ip = self.ip(s, c, 64);
            let l4 = L4::Udp {
                sport: 53,
                dport: cport,
                payload: Payload::Bytes(&msg),
            };
            let t = t + rng.range(300, 3000) as i64 * US;
            self.out
                .send(t, Vlan::None, &ip, &l4)
                .expect("in-memory sink");
            self.udp.dns_queries += 1;
            self.udp.dns_responses += 1;
            self.conversations += 1;
            self.today.dns += 1;
        }
    }

    /// ARP between clients and the gateway, both ways, always answered.
    fn arp_gateway(&mut self) {
        let mut rng = self.rng(5);
        let clients = clients_on(self.day);
        let n = rng.range(4, 8);
        for i in 0..n + rng.range(1, 3) {
            let t = self.at(diurnal(&mut rng, 0, 23 * HOUR + 50 * MINUTE));
            let c = client(*rng.pick(&clients));
            let (a, b) = if i < n { (c, GATEWAY) } else { (GATEWAY, c) };
            self.arp(t, ArpOp::Request, a, b);
            self.arp(t + rng.range(100, 900) as i64 * US, ArpOp::Reply, b, a);
            self.udp.arp_exchanges += 1;
            self.conversations += 1;
            self.today.arp += 1;
        }
    }

    // -------------------------------------------------------------- scanners

    /// An nmap-style raw SYN probe (MSS option only, window 1024).
    fn raw_syn(
        rng: &mut Rng,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        ttl: u8,
    ) -> Seg {
        syn(
            v4(src),
            v4(dst),
            sport,
            dport,
            rng.next_u32(),
            1024,
            SynOpts::Mss,
            ttl,
        )
    }

    /// A probe to an absent address of 10.10.4.0/24: the gateway answers one
    /// in 8 with host unreachable after 3 s (its ARP for the address failed).
    fn absent_10_10_4(&mut self, rng: &mut Rng, k: usize, t: i64, s: &Seg) {
        if rng.below(8) == 0 {
            let quote = self.tcp_quoted(t, s);
            self.host_unreachable(t + 3 * SEC + rng.range(0, 5000) as i64 * US, s.src, &quote);
            self.scanners[k].icmp += 1;
        } else {
            self.tcp(t, s);
            self.scanners[k].unanswered += 1;
        }
    }

    /// 10.10.9.9, 02:00-02:20: every (address, port) of 10.10.1.0/24 and
    /// 10.10.4.0/24 x {22, 445}, in a random order, one every ~1.17 s.
    fn nightly_scan(&mut self) {
        let mut rng = self.rng(10);
        let perm = Permutation::new(10, rng.next_u64());
        let sport = rng.range(40000, 65000) as u16;
        let ttl = rng.range(37, 60) as u8;
        let live = servers_on(self.day);
        let k = sc::NIGHTLY;
        for i in 0..1024i64 {
            let j = perm.apply(i as u64);
            let (net, port, host) = (
                if j >> 9 == 0 { 1 } else { 4 },
                NIGHTLY_PORTS[(j >> 8) as usize & 1],
                j as u8,
            );
            let t = self.at(2 * HOUR + i * 1_171_875 * US + rng.range(0, 20_000) as i64 * US);
            let dst = Ipv4Addr::new(10, 10, net, host);
            let s = Self::raw_syn(&mut rng, NIGHTLY_SCANNER, dst, sport, port, ttl);
            self.probe(k, t);
            if net == 4 {
                self.absent_10_10_4(&mut rng, k, t, &s);
                continue;
            }
            self.tcp(t, &s);
            if !live.contains(&host) {
                self.scanners[k].unanswered += 1;
                continue;
            }
            let sttl = if windows_server(host) { 128 } else { 64 };
            let rtt = rng.range(150, 600) as i64 * US;
            if open_ports(host).contains(&port) {
                let sa = s.syn_ack_reply(rng.next_u32(), sttl, SynOpts::Mss);
                self.tcp(t + rtt, &sa);
                // The scanner's kernel knows no such connection: RST.
                self.tcp(t + rtt + 30 * US, &sa.reset_reply(64));
                self.scanners[k].syn_ack += 1;
            } else {
                self.tcp(t + rtt, &s.reset_reply(sttl));
                self.scanners[k].rst += 1;
            }
        }
    }

    /// Day 15 from 10:00: 10.10.2.66 sweeps 10.10.5.0/24 and 10.10.6.0/24 on
    /// 445 and 3389, then ARP-sweeps 10.10.2.101-200.
    fn sweep(&mut self) {
        let mut rng = self.rng(11);
        let perm = Permutation::new(10, rng.next_u64());
        let sport = ephemeral(&mut rng);
        let ttl = rng.range(37, 60) as u8;
        let mut t = self.at(10 * HOUR);
        for i in 0..1024u64 {
            let j = perm.apply(i);
            let dst = Ipv4Addr::new(10, 10, 5 + (j >> 9) as u8, j as u8);
            let port = SWEEP_PORTS[(j >> 8) as usize & 1];
            let s = Self::raw_syn(&mut rng, client(SWEEPER), dst, sport, port, ttl);
            self.tcp(t, &s);
            self.probe(sc::SWEEP, t);
            self.scanners[sc::SWEEP].unanswered += 1;
            t += rng.range(2000, 5000) as i64 * US;
        }
        t += SEC;
        for h in 101..=200u8 {
            self.arp(t, ArpOp::Request, client(SWEEPER), client(h));
            self.probe(sc::ARP_SWEEP, t);
            self.scanners[sc::ARP_SWEEP].unanswered += 1;
            t += rng.range(5000, 10_000) as i64 * US;
        }
    }

    /// Day 15, 12:00-18:00: 10.10.2.77 sends one SYN to port 22 of a new
    /// random address of 10.10.7.0/24 every 3-6 minutes.
    fn slow_scan(&mut self) {
        let mut rng = self.rng(12);
        let mut hosts: Vec<u8> = (1..=254).collect();
        rng.shuffle(&mut hosts);
        let ttl = rng.range(37, 60) as u8;
        let mut t = 12 * HOUR + rng.range(0, 60_000) as i64 * MS;
        for &h in &hosts {
            if t >= 18 * HOUR {
                break;
            }
            let at = self.at(t);
            let sport = ephemeral(&mut rng);
            let dst = Ipv4Addr::new(10, 10, 7, h);
            let s = Self::raw_syn(&mut rng, client(SLOW), dst, sport, 22, ttl);
            self.tcp(at, &s);
            self.probe(sc::SLOW, at);
            self.scanners[sc::SLOW].unanswered += 1;
            t += rng.range(180_000, 360_000) as i64 * MS;
        }
    }

    /// Day 25: 10.10.2.88 scans ports 1-1024 of 10.10.8.8 from 14:00 (all
    /// RST), then pings 10.10.8.1-254 from 14:05 (host unreachable from the
    /// gateway for all but .8, which drops pings).
    fn vertical(&mut self) {
        let mut rng = self.rng(13);
        let perm = Permutation::new(10, rng.next_u64());
        let sport = ephemeral(&mut rng);
        let ttl = rng.range(37, 60) as u8;
        let src = client(VERTICAL);
        let mut t = self.at(14 * HOUR);
        for i in 0..1024u64 {
            let port = perm.apply(i) as u16 + 1;
            let s = Self::raw_syn(&mut rng, src, VERTICAL_TARGET, sport, port, ttl);
            self.tcp(t, &s);
            self.probe(sc::VERTICAL, t);
            let rtt = rng.range(150, 600) as i64 * US;
            self.tcp(t + rtt, &s.reset_reply(64));
            self.scanners[sc::VERTICAL].rst += 1;
            t += rng.range(1000, 3000) as i64 * US;
        }
        let mut t = self.at(14 * HOUR + 5 * MINUTE);
        let id = rng.next_u32() as u16;
        for h in 1..=254u8 {
            let dst = Ipv4Addr::new(10, 10, 8, h);
            let ip = self.ip(v4(src), v4(dst), ttl);
            let l4 = L4::Echo {
                reply: false,
                id,
                seq: h as u16,
                payload: Payload::EMPTY,
            };
            self.out
                .send(t, Vlan::None, &ip, &l4)
                .expect("in-memory sink");
            self.probe(sc::PING_SWEEP, t);
            if dst == VERTICAL_TARGET {
                self.scanners[sc::PING_SWEEP].unanswered += 1;
            } else {
                self.qf.build(Vlan::None, &ip, &l4);
                let quote = self.qf.quote(Quote::Bytes8).to_vec();
                let dt = 3 * SEC + rng.range(0, 5000) as i64 * US;
                self.host_unreachable(t + dt, v4(src), &quote);
                self.scanners[sc::PING_SWEEP].icmp += 1;
            }
            t += 10 * MS;
        }
    }

    /// Day 40 from 09:30: 10.10.2.99 sweeps 10.10.4.0/24 port 22.
    fn subnet_sweep(&mut self) {
        let mut rng = self.rng(14);
        let perm = Permutation::new(8, rng.next_u64());
        let sport = ephemeral(&mut rng);
        let ttl = rng.range(37, 60) as u8;
        let mut t = self.at(9 * HOUR + 30 * MINUTE);
        for i in 0..256u64 {
            let dst = Ipv4Addr::new(10, 10, 4, perm.apply(i) as u8);
            let s = Self::raw_syn(&mut rng, client(SUBNET_SWEEPER), dst, sport, 22, ttl);
            self.probe(sc::SUBNET, t);
            self.absent_10_10_4(&mut rng, sc::SUBNET, t, &s);
            t += rng.range(2000, 4000) as i64 * US;
        }
    }

    /// Generate day `d` into the collector (unsorted).
    fn run_day(&mut self, d: u32) {
        self.day = d;
        self.ip_id = mix64(self.seed ^ (d as u64) << 32) as u16;
        self.today = DayTruth {
            day: d,
            date: {
                let mut s = String::new();
                crate::output::time::rfc3339(day_start(d), &mut s);
                s.truncate(10);
                s
            },
            clients: clients_on(d).len() as u64,
            servers: servers_on(d).len() as u64,
            ..DayTruth::default()
        };
        let n0 = self.out.counts.total;
        self.background();
        self.decommissioned();
        self.monitoring();
        self.dns();
        self.arp_gateway();
        self.nightly_scan();
        if d == SWEEP_DAY {
            self.sweep();
        }
        if d == SLOW_DAY {
            self.slow_scan();
        }
        if d == VERTICAL_DAY {
            self.vertical();
        }
        if d == SUBNET_SWEEP_DAY {
            self.subnet_sweep();
        }
        self.today.frames = self.out.counts.total - n0;
    }
}

/// Generate days `opts.days_covered()` of the multiday scenario.
/// `opts.packets` is ignored.
pub fn multiday<S: Sink>(sink: &mut S, opts: &GenOptions) -> io::Result<Truth> {
    let days = opts.days_covered();
    if days.start > days.end || days.end > MAX_DAYS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "multiday: day range {}..{} is empty or ends after day {MAX_DAYS}",
                days.start, days.end
            ),
        ));
    }
    let mut collect = Collect::default();
    let mut g = Gen {
        out: Out::new(&mut collect, opts.snaplen, u64::MAX).unordered(),
        qf: Frame::new(),
        seed: opts.seed,
        day: 0,
        ip_id: 0,
        scanners: scanner_truths(),
        benign: benign_truths(),
        attempts: AttemptCounts::default(),
        udp: UdpCounts::default(),
        conversations: 0,
        today: DayTruth::default(),
    };
    let mut daily = Vec::new();
    let (mut first_ts, mut last_ts) = (None, day_start(days.start));
    for d in days.clone() {
        g.run_day(d);
        daily.push(std::mem::take(&mut g.today));
        // Stable: frames with equal timestamps keep their generation order.
        let recs = &mut g.out.sink.recs;
        recs.sort_by_key(|r| r.0);
        for (ts, data, wire) in recs.drain(..) {
            debug_assert!(ts >= day_start(d) && ts < day_start(d + 1));
            first_ts.get_or_insert(ts);
            last_ts = ts;
            sink.packet(ts, &data, wire)?;
        }
    }

    let covered = |day: u32| days.contains(&day);
    let scanners: Vec<ScannerTruth> = g
        .scanners
        .iter()
        .filter(|s| s.probes > 0)
        .cloned()
        .collect();
    let mut expected_alerts = Vec::new();
    for (ip, day, kinds) in [
        (client(SWEEPER), SWEEP_DAY, "tcp_sweep,arp_sweep"),
        (client(SLOW), SLOW_DAY, "tcp_slow"),
        (client(VERTICAL), VERTICAL_DAY, "tcp_vertical,icmp_sweep"),
        (client(SUBNET_SWEEPER), SUBNET_SWEEP_DAY, "tcp_sweep"),
    ] {
        if covered(day) {
            expected_alerts.push(AlertTruth {
                day,
                ip: ip_str(v4(ip)),
                kind: kinds.to_string(),
            });
        }
    }
    let first_ts = first_ts.unwrap_or(day_start(days.start));
    let truth = Truth {
        profile: Profile::Multiday.name().to_string(),
        seed: opts.seed,
        snaplen: opts.snaplen,
        first_ts_ns: first_ts,
        last_ts_ns: last_ts,
        frames: g.out.counts,
        conversations: g.conversations,
        tcp_attempts: g.attempts,
        udp: g.udp,
        scanners,
        multiday: Some(MultidayTruth {
            first_day: days.start,
            end_day: days.end,
            day0_ns: DAY0_NS,
            activation_days: ACTIVATION_DAYS,
            benign: g.benign,
            expected_alerts,
            daily,
        }),
        notes: notes(),
        ..Truth::default()
    };
    Ok(truth)
}

fn notes() -> Vec<String> {
    [
        "Day d covers [2024-03-01T00:00:00Z + d days, + 1 day); each day depends only on (seed, d), so captures of consecutive day ranges concatenate into the capture of their union. Times below are UTC.",
        "10.10.0.1: gateway (answers ARP; ICMP host unreachable for absent hosts of 10.10.4.0/24 and 10.10.8.0/24). 10.10.0.53: DNS server, answers every query.",
        "10.10.1.1-40: servers (.1-.10 Linux 22/80/443, .11-.30 Windows 445/3389, .31-.40 Linux 22/443), each connected to at least once in 06:00-12:00 and once in 12:00-20:00 every day. 10.10.2.1-60 and .66/.77/.88/.99: Windows clients, each connecting every day (diurnal, ~150 connections a day); 1-2 a day hit a closed port of a live server (RST, retried twice by Windows). fd10:10:2::1-8 -> fd10:10:1::1-4:443: a few IPv6 connections a day.",
        "10.10.3.5: monitoring, checks 10.10.1.250:443 (never alive) every 30 min (SYN + one retransmission after 1 s, unanswered): benign, expect_alert false.",
        "10.10.1.41: Windows file server decommissioned after day 2 (silent from day 3); its users 10.10.2.11, .23, .35 keep trying it on 445 2-4 times a day (SYN, +1 s, +3 s, unanswered): benign, expect_alert false.",
        "DHCP churn: 10.10.2.61 is a client on days 0-4 only; 10.10.2.62 a new client from day 8: nothing to alert.",
        "10.10.9.9: sanctioned scanner, every night 02:00-02:20 (every address of 10.10.1.0/24 and 10.10.4.0/24 on 22 and 445, 1,024 SYNs): to be learned, expect_alert false.",
        "To alert (after the 14-day activation): 10.10.2.66 day 15 10:00 (SYN sweep of 10.10.5.0/24 and 10.10.6.0/24 on 445/3389 + ARP sweep of unused 10.10.2.101-200); 10.10.2.77 day 15 12:00-18:00 (low-and-slow, 10.10.7.0/24:22); 10.10.2.88 day 25 14:00 (ports 1-1024 of 10.10.8.8, all RST; echo sweep of 10.10.8.0/24, host unreachable); 10.10.2.99 day 40 09:30 (10.10.4.0/24:22). All are ordinary clients on every other day.",
        "scanners lists the scanners with probes in the capture (counts are for the capture); benign lists every benign actor of the scenario with its failed attempts in the capture; expected_alerts lists the (day, source) pairs the capture covers.",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
