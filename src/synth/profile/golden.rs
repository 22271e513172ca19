//! The golden capture: one hand-written instance of each case a tracker must
//! handle, each on its own addresses so that its output is easy to find.
//!
//! Addressing, for case number K (a = 1 ... z = 26, aa = 27):
//!
//! * initiator ("client") `10.1.K.10`, port `40000 + K`
//! * responder ("server") `10.2.K.20`
//! * router / firewall sending ICMP errors `10.3.K.1`
//! * IPv6 cases: `fd00:1:0:KK::10`, `fd00:2:0:KK::20`, `fd00:3:0:KK::1`, where
//!   KK is K written in decimal digits (case j = 10 is `fd00:1:0:10::10`)
//! * ARP cases (t, u) are on one subnet: `10.1.K.10` asks for `10.1.K.20`
//! * client ISN `K * 1_000_000`, server ISN `2_000_000_000 + K * 1_000_000`
//!
//! Case K starts at 2024-03-01T10:00:00Z + (K - 1) * 10 s; nothing of one case
//! comes within 2 s of the next one. Background traffic (DNS between 10.0.0.100
//! and 10.0.0.53, pings from 10.0.0.100 to 10.0.0.1 and fd00::100 to fd00::1)
//! sits at +5 s / +6 s inside some slots and is all successful. The capture ends
//! with a ping reply exactly 1 s after case aa's SYN.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::sim::{Seg, SynOpts, dns_message};
use super::{CaseTruth, GenOptions, MS, Out, Profile, SEC, START_NS, Truth, US, ip_str};
use crate::synth::frame::{
    ArpOp, Ext6, Frag, Frame, Ip, L4, Payload, Quote, Vlan, proto, tcp_flags as F,
};
use crate::synth::writer::Sink;

/// Start of case `k` (1-based).
pub fn case_start(k: u32) -> i64 {
    START_NS + (k as i64 - 1) * 10 * SEC
}

fn c4(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, k as u8, 10))
}
fn s4(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 2, k as u8, 20))
}
fn r4(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 3, k as u8, 1))
}
/// K's decimal digits read as hex, so the address shows the case number.
fn kk(k: u32) -> u16 {
    u16::from_str_radix(&k.to_string(), 16).expect("decimal digits are hex digits")
}
fn c6(k: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, kk(k), 0, 0, 0, 0x10))
}
fn s6(k: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, kk(k), 0, 0, 0, 0x20))
}
fn r6(k: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 3, 0, kk(k), 0, 0, 0, 1))
}
fn cport(k: u32) -> u16 {
    40000 + k as u16
}
fn c_isn(k: u32) -> u32 {
    k * 1_000_000
}
fn s_isn(k: u32) -> u32 {
    2_000_000_000 + k * 1_000_000
}

/// TCP timestamp clock: milliseconds since the capture start.
fn tsval_at(t: i64) -> u32 {
    ((t - START_NS) / MS) as u32
}

/// Collects frames so they can be written in timestamp order (cases are
/// written one after the other, background traffic interleaves).
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

struct G<'a> {
    out: Out<'a, Collect>,
    qf: Frame,
    cases: Vec<CaseTruth>,
    ip_id: u16,
}

impl G<'_> {
    /// A client -> server SYN of case k with Linux options.
    fn syn(&self, k: u32, v6: bool, dport: u16) -> Seg {
        let (c, s) = if v6 { (c6(k), s6(k)) } else { (c4(k), s4(k)) };
        Seg {
            vlan: Vlan::None,
            src: c,
            dst: s,
            sport: cport(k),
            dport,
            seq: c_isn(k),
            ack: 0,
            flags: F::SYN,
            win: 64240,
            opts: SynOpts::Linux,
            ttl: 64,
            len: 0,
            tsval: 0,
        }
    }

    fn ip<'i>(&mut self, src: IpAddr, dst: IpAddr, ttl: u8) -> Ip<'i> {
        self.ip_id = self.ip_id.wrapping_add(1);
        Ip::new(src, dst).ttl(ttl).id(self.ip_id as u32)
    }

    /// Send a segment with `len` payload bytes.
    fn seg(&mut self, t: i64, s: &Seg) {
        let tcp = s.tcp(tsval_at(t));
        let ip = self.ip(s.src, s.dst, s.ttl);
        let p = Payload::Fill {
            byte: b'x',
            len: s.len as usize,
        };
        self.out
            .send(t, s.vlan, &ip, &L4::Tcp(tcp, p))
            .expect("in-memory sink");
    }

    /// A follow-up segment of an established connection (no options).
    #[allow(clippy::too_many_arguments)]
    fn data(&mut self, t: i64, from: &Seg, seq: u32, ack: u32, flags: u8, len: u16) {
        let s = Seg {
            seq,
            ack,
            flags,
            len,
            opts: SynOpts::None,
            win: 502,
            ..*from
        };
        self.seg(t, &s);
    }

    /// ICMP error from `from` to the sender of the packet last built in `qf`.
    #[allow(clippy::too_many_arguments)]
    fn unreach(
        &mut self,
        t: i64,
        vlan: Vlan,
        from: IpAddr,
        to: IpAddr,
        code: u8,
        mtu: u16,
        q: Quote,
    ) {
        let ip = self.ip(from, to, 255);
        let quote = self.qf.quote(q);
        self.out
            .send(t, vlan, &ip, &L4::Unreach { code, mtu, quote })
            .expect("in-memory sink");
    }

    /// Build `s`, as sent at `t`, into the quote frame (what an ICMP error
    /// will quote).
    fn remember(&mut self, s: &Seg, t: i64) {
        let tcp = s.tcp(tsval_at(t));
        let ip = Ip::new(s.src, s.dst).ttl(s.ttl).id(self.ip_id as u32);
        let p = Payload::Fill {
            byte: b'x',
            len: s.len as usize,
        };
        self.qf.build(s.vlan, &ip, &L4::Tcp(tcp, p));
    }

    fn dns(&mut self, t: i64, name: u32) {
        let (c, s) = (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
        );
        let mut msg = Vec::new();
        let qid = 0x4000 + name as u16;
        dns_message(&mut msg, qid, name, false, false);
        let ip = self.ip(c, s, 64);
        let l4 = L4::Udp {
            sport: 53000 + name as u16,
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
            dport: 53000 + name as u16,
            payload: Payload::Bytes(&msg),
        };
        self.out
            .send(t + 2 * MS, Vlan::None, &ip, &l4)
            .expect("in-memory sink");
    }

    fn ping(&mut self, t: i64, v6: bool, seq: u16) {
        let (c, s) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            )
        };
        let p = Payload::Fill {
            byte: 0x61,
            len: 56,
        };
        let ip = self.ip(c, s, 64);
        self.out
            .send(
                t,
                Vlan::None,
                &ip,
                &L4::Echo {
                    reply: false,
                    id: 0x5157,
                    seq,
                    payload: p,
                },
            )
            .expect("in-memory sink");
        let ip = self.ip(s, c, 64);
        self.out
            .send(
                t + 200 * US,
                Vlan::None,
                &ip,
                &L4::Echo {
                    reply: true,
                    id: 0x5157,
                    seq,
                    payload: p,
                },
            )
            .expect("in-memory sink");
    }

    /// Record a case; `frames_before` is the frame count before it was emitted.
    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        k: u32,
        frames_before: u64,
        title: &str,
        expect: &str,
        outcome: &str,
        proto: &str,
        (client, server): (IpAddr, IpAddr),
        (client_port, server_port): (u16, u16),
        icmp_from: Option<IpAddr>,
        (attempts, retransmissions): (u32, u32),
    ) {
        let id = if k <= 26 {
            ((b'a' + k as u8 - 1) as char).to_string()
        } else {
            "aa".to_string()
        };
        self.cases.push(CaseTruth {
            id,
            title: title.to_string(),
            expect: expect.to_string(),
            outcome: outcome.to_string(),
            proto: proto.to_string(),
            client: ip_str(client),
            server: ip_str(server),
            client_port,
            server_port,
            icmp_from: icmp_from.map(ip_str),
            attempts,
            retransmissions,
            first_ts_ns: case_start(k),
            frames: (self.out.counts.total - frames_before) as u32,
        });
    }
}

/// Generate the golden capture. `opts.packets` and `opts.seed` are ignored:
/// the scenario is fixed. Records are cut at `opts.snaplen` by the writer.
pub fn golden<S: Sink>(sink: &mut S, opts: &GenOptions) -> io::Result<Truth> {
    let mut collect = Collect::default();
    let mut g = G {
        out: Out::new(&mut collect, u32::MAX, u64::MAX).unordered(),
        qf: Frame::new(),
        cases: Vec::new(),
        ip_id: 0x0100,
    };
    let (ack, rst, fin, psh) = (F::ACK, F::RST, F::FIN, F::PSH);
    let rtt = 500 * US;

    // (a) Success. 10.1.1.10:40001 -> 10.2.1.20:80: SYN, SYN-ACK, ACK, a
    // request and a response, FIN from both sides.
    // Tracker: 1 attempt, outcome success, no failure.
    let k = 1;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    g.seg(t, &s);
    let sa = s.syn_ack_reply(s_isn(k), 64, SynOpts::Linux);
    g.seg(t + rtt, &sa);
    let (mut cs, mut ss) = (c_isn(k) + 1, s_isn(k) + 1);
    g.data(t + rtt + 100 * US, &s, cs, ss, ack, 0);
    g.data(t + MS, &s, cs, ss, ack | psh, 100);
    cs += 100;
    g.data(t + MS + rtt, &sa, ss, cs, ack | psh, 300);
    ss += 300;
    g.data(t + MS + rtt + 100 * US, &s, cs, ss, ack, 0);
    g.data(t + 2 * MS, &s, cs, ss, fin | ack, 0);
    cs += 1;
    g.data(t + 2 * MS + rtt, &sa, ss, cs, fin | ack, 0);
    ss += 1;
    g.data(t + 2 * MS + rtt + 100 * US, &s, cs, ss, ack, 0);
    g.case(
        k,
        n0,
        "SYN answered by SYN-ACK, data, FIN close",
        "1 attempt, success; no failure",
        "success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (b) Rejected. 10.1.2.10:40002 -> 10.2.2.20:443 SYN, RST+ACK (ack = ISN+1).
    // Tracker: 1 attempt, outcome rejected (closed port).
    let k = 2;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 443);
    g.seg(t, &s);
    g.seg(t + 300 * US, &s.reset_reply(64));
    g.case(
        k,
        n0,
        "SYN answered by RST+ACK",
        "1 attempt, rejected",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (c) Unanswered with Linux retransmissions. 10.1.3.10:40003 ->
    // 10.2.3.20:22 SYN at +0, +1, +3, +7 s, same ISN, never answered.
    // Tracker: 1 attempt (not 4), outcome unanswered, 3 retransmissions.
    let k = 3;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 22);
    for dt in [0, 1, 3, 7] {
        g.seg(t + dt * SEC, &s);
    }
    g.case(
        k,
        n0,
        "SYN retransmitted at +1 s, +3 s, +7 s, never answered",
        "1 attempt, unanswered, 3 retransmissions",
        "unanswered",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 3),
    );

    // (d) One retransmission then success. 10.1.4.10:40004 -> 10.2.4.20:80:
    // SYN, SYN again at +1 s, SYN-ACK, ACK.
    // Tracker: 1 attempt, success, 1 retransmission.
    let k = 4;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    g.seg(t, &s);
    g.seg(t + SEC, &s);
    let sa = s.syn_ack_reply(s_isn(k), 64, SynOpts::Linux);
    g.seg(t + SEC + rtt, &sa);
    g.data(
        t + SEC + rtt + 100 * US,
        &s,
        c_isn(k) + 1,
        s_isn(k) + 1,
        ack,
        0,
    );
    g.case(
        k,
        n0,
        "SYN retransmitted once, then answered by SYN-ACK",
        "1 attempt, success, 1 retransmission",
        "success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 1),
    );

    // (e) Windows-style retry after RST: 10.1.5.10:40005 -> 10.2.5.20:3389,
    // the same SYN (same ISN) at +0, +0.5 s, +1 s, each answered by RST+ACK.
    // Tracker: 1 attempt (same ISN), rejected; 2 retransmissions.
    let k = 5;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = Seg {
        opts: SynOpts::Windows,
        ttl: 128,
        ..g.syn(k, false, 3389)
    };
    for i in 0..3 {
        g.seg(t + i * 500 * MS, &s);
        g.seg(t + i * 500 * MS + 300 * US, &s.reset_reply(128));
    }
    g.case(
        k,
        n0,
        "same SYN (same ISN) sent 3 times, each answered by RST",
        "1 attempt, rejected, 2 retransmissions",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 2),
    );

    // (f) 5-tuple reuse: 10.1.6.10:40006 -> 10.2.6.20:8080 SYN (ISN 6000000)
    // rejected by RST+ACK; 2 s later the same 5-tuple with a new ISN
    // (6500000) gets SYN-ACK, ACK.
    // Tracker: 2 attempts: the first rejected, the second success.
    let k = 6;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 8080);
    g.seg(t, &s);
    g.seg(t + 300 * US, &s.reset_reply(64));
    let s2 = Seg {
        seq: c_isn(k) + 500_000,
        ..s
    };
    g.seg(t + 2 * SEC, &s2);
    g.seg(
        t + 2 * SEC + rtt,
        &s2.syn_ack_reply(s_isn(k), 64, SynOpts::Linux),
    );
    g.data(
        t + 2 * SEC + rtt + 100 * US,
        &s2,
        s2.seq + 1,
        s_isn(k) + 1,
        ack,
        0,
    );
    g.case(
        k,
        n0,
        "5-tuple reused with a new ISN after a rejected attempt",
        "2 attempts: first rejected, second success",
        "rejected,success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (2, 0),
    );

    // (g) Host unreachable from a router: 10.1.7.10:40007 -> 10.2.7.20:80
    // SYN; 10.3.7.1 -> 10.1.7.10 ICMP type 3 code 1 quoting the IP header and
    // only the first 8 bytes of TCP (ports and sequence number).
    // Tracker: 1 attempt, unreachable (host), reported by router 10.3.7.1;
    // must match the attempt from the 8-byte quote.
    let k = 7;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    g.seg(t, &s);
    g.remember(&s, t);
    g.unreach(t + 2 * MS, Vlan::None, r4(k), c4(k), 1, 0, Quote::Bytes8);
    g.case(
        k,
        n0,
        "SYN answered by ICMPv4 host unreachable (code 1) from a router, 8-byte quote",
        "1 attempt, unreachable (host) from 10.3.7.1",
        "unreachable",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        Some(r4(k)),
        (1, 0),
    );

    // (h) Administratively prohibited: 10.1.8.10:40008 -> 10.2.8.20:25 SYN;
    // firewall 10.3.8.1 sends ICMP 3/13 quoting the whole SYN (IP + 40-byte
    // TCP header with options).
    // Tracker: 1 attempt, unreachable (admin prohibited / filtered).
    let k = 8;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 25);
    g.seg(t, &s);
    g.remember(&s, t);
    g.unreach(t + 400 * US, Vlan::None, r4(k), c4(k), 13, 0, Quote::Full);
    g.case(
        k,
        n0,
        "SYN answered by ICMPv4 admin prohibited (code 13), full quote",
        "1 attempt, unreachable (admin prohibited) from 10.3.8.1",
        "unreachable",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        Some(r4(k)),
        (1, 0),
    );

    // (i) UDP to a closed port: 10.1.9.10:40009 -> 10.2.9.20:161 (40 bytes);
    // the server itself answers ICMP 3/3 quoting the whole datagram.
    // Tracker: 1 UDP attempt, port unreachable.
    let k = 9;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let udp = L4::Udp {
        sport: cport(k),
        dport: 161,
        payload: Payload::Fill {
            byte: 0x30,
            len: 40,
        },
    };
    let ip = g.ip(c4(k), s4(k), 64);
    g.out.send(t, Vlan::None, &ip, &udp)?;
    g.qf.build(Vlan::None, &ip, &udp);
    g.unreach(t + 300 * US, Vlan::None, s4(k), c4(k), 3, 0, Quote::Full);
    g.case(
        k,
        n0,
        "UDP datagram to a closed port answered by ICMP port unreachable (code 3)",
        "1 UDP attempt, port unreachable",
        "port_unreachable",
        "udp",
        (c4(k), s4(k)),
        (cport(k), 161),
        Some(s4(k)),
        (1, 0),
    );

    // (j) IPv6 no route: fd00:1:0:10::10:40010 -> fd00:2:0:10::20:443 SYN;
    // router fd00:3:0:10::1 answers ICMPv6 type 1 code 0, full quote.
    // Tracker: 1 attempt, unreachable (no route) from fd00:3:0:10::1.
    let k = 10;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, true, 443);
    g.seg(t, &s);
    g.remember(&s, t);
    g.unreach(t + rtt, Vlan::None, r6(k), c6(k), 0, 0, Quote::Full);
    g.case(
        k,
        n0,
        "IPv6 SYN answered by ICMPv6 destination unreachable code 0 (no route) from a router",
        "1 attempt, unreachable (no route) from fd00:3:0:10::1",
        "unreachable",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        Some(r6(k)),
        (1, 0),
    );

    // (k) IPv6 UDP to a closed port: fd00:1:0:11::10:40011 ->
    // fd00:2:0:11::20:9999 (32 bytes); server answers ICMPv6 1/4.
    // Tracker: 1 UDP attempt, port unreachable.
    let k = 11;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let udp = L4::Udp {
        sport: cport(k),
        dport: 9999,
        payload: Payload::Fill {
            byte: 0x31,
            len: 32,
        },
    };
    let ip = g.ip(c6(k), s6(k), 64);
    g.out.send(t, Vlan::None, &ip, &udp)?;
    g.qf.build(Vlan::None, &ip, &udp);
    g.unreach(t + 300 * US, Vlan::None, s6(k), c6(k), 4, 0, Quote::Full);
    g.case(
        k,
        n0,
        "IPv6 UDP datagram answered by ICMPv6 port unreachable (code 4)",
        "1 UDP attempt, port unreachable",
        "port_unreachable",
        "udp",
        (c6(k), s6(k)),
        (cport(k), 9999),
        Some(s6(k)),
        (1, 0),
    );

    // (l) 802.1Q VLAN 100: 10.1.12.10:40012 -> 10.2.12.20:80 SYN, RST+ACK,
    // both tagged 100.
    // Tracker: 1 attempt, rejected (decodes through the tag; VLAN 100).
    let k = 12;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = Seg {
        vlan: Vlan::Dot1Q(100),
        ..g.syn(k, false, 80)
    };
    g.seg(t, &s);
    g.seg(t + 300 * US, &s.reset_reply(64));
    g.case(
        k,
        n0,
        "SYN in 802.1Q VLAN 100 answered by RST",
        "1 attempt, rejected, VLAN 100",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (m) QinQ: outer 0x88a8 VLAN 200, inner 0x8100 VLAN 300:
    // 10.1.13.10:40013 -> 10.2.13.20:443 SYN, nothing else.
    // Tracker: 1 attempt, unanswered (after its timeout), 0 retransmissions.
    let k = 13;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = Seg {
        vlan: Vlan::QinQ {
            outer: 200,
            inner: 300,
        },
        ..g.syn(k, false, 443)
    };
    g.seg(t, &s);
    g.case(
        k,
        n0,
        "SYN in QinQ (outer 802.1ad VLAN 200, inner 802.1Q VLAN 300), unanswered",
        "1 attempt, unanswered, VLANs 200/300",
        "unanswered",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (n) Capture gap: 10.1.14.10:40014 -> 10.2.14.20:80 SYN; the SYN-ACK is
    // missing from the capture; the client's ACK (ack = server ISN + 1) and
    // two data segments follow.
    // Tracker: 1 attempt, success (inferred), counted as a capture gap; not
    // unanswered.
    let k = 14;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    g.seg(t, &s);
    let (cs, ss) = (c_isn(k) + 1, s_isn(k) + 1);
    g.data(t + 20 * MS, &s, cs, ss, ack, 0);
    g.data(t + 20 * MS + 100 * US, &s, cs, ss, ack | psh, 120);
    g.data(t + 40 * MS, &s, cs + 120, ss, ack | psh, 80);
    g.case(
        k,
        n0,
        "SYN, SYN-ACK not captured, then the initiator's ACK and data",
        "1 attempt, success via capture gap",
        "success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (o)-(q) Stealth probes to a closed port, answered by RST+ACK with
    // seq 0 and ack = probe seq + (1 if FIN): nmap-like, window 1024, no
    // options. Tracker: 1 probe each, of kind FIN / NULL / Xmas, rejected.
    for (k, flags, title) in [
        (15u32, fin, "FIN probe (FIN only) answered by RST+ACK"),
        (16, 0, "NULL probe (no flags) answered by RST+ACK"),
        (
            17,
            fin | psh | F::URG,
            "Xmas probe (FIN+PSH+URG) answered by RST+ACK",
        ),
    ] {
        let n0 = g.out.counts.total;
        let t = case_start(k);
        let p = Seg {
            flags,
            win: 1024,
            opts: SynOpts::None,
            ttl: 48,
            ..g.syn(k, false, 80)
        };
        g.seg(t, &p);
        g.seg(t + 300 * US, &p.reset_reply(64));
        let kind = ["FIN", "NULL", "Xmas"][k as usize - 15];
        g.case(
            k,
            n0,
            title,
            &format!("1 {kind} probe, rejected (closed port)"),
            "rejected",
            "tcp",
            (p.src, p.dst),
            (p.sport, p.dport),
            None,
            (1, 0),
        );
    }

    // (r) ACK probe: 10.1.18.10:40018 -> 10.2.18.20:80 with ACK only
    // (seq 18000000, ack 777000), no prior SYN; answered by a bare RST with
    // seq = 777000 and no ACK flag.
    // Tracker: 1 ACK probe, answered by RST (port unfiltered); not a
    // connection attempt of a client.
    let k = 18;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let p = Seg {
        flags: ack,
        ack: 777_000,
        win: 1024,
        opts: SynOpts::None,
        ttl: 48,
        ..g.syn(k, false, 80)
    };
    g.seg(t, &p);
    g.seg(t + 300 * US, &p.reset_reply(64));
    g.case(
        k,
        n0,
        "ACK probe (ACK only, no SYN) answered by a bare RST (seq = probe ack)",
        "1 ACK probe, answered by RST (unfiltered)",
        "rejected",
        "tcp",
        (p.src, p.dst),
        (p.sport, p.dport),
        None,
        (1, 0),
    );

    // (s) Abort of an established connection: 10.1.19.10:40019 ->
    // 10.2.19.20:443 handshake, 80 bytes up, 300 down, then the client sends
    // a bare RST (seq = its next sequence number).
    // Tracker: 1 attempt, success; the RST ends the connection and is NOT a
    // probe or a rejection.
    let k = 19;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 443);
    g.seg(t, &s);
    let sa = s.syn_ack_reply(s_isn(k), 64, SynOpts::Linux);
    g.seg(t + rtt, &sa);
    let (cs, ss) = (c_isn(k) + 1, s_isn(k) + 1);
    g.data(t + rtt + 100 * US, &s, cs, ss, ack, 0);
    g.data(t + MS, &s, cs, ss, ack | psh, 80);
    g.data(t + MS + rtt, &sa, ss, cs + 80, ack | psh, 300);
    g.data(t + MS + rtt + 100 * US, &s, cs + 80, ss + 300, ack, 0);
    g.data(t + 3 * MS, &s, cs + 80, 0, rst, 0);
    g.case(
        k,
        n0,
        "established connection aborted by the client with a bare RST after data",
        "1 attempt, success; the RST is not a probe",
        "success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (t) Unresolved ARP: 10.1.20.10 asks who-has 10.1.20.20 at +0, +1, +2 s;
    // nobody answers.
    // Tracker: 1 unresolved ARP attempt (3 requests).
    let k = 20;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let (a, b) = (Ipv4Addr::new(10, 1, 20, 10), Ipv4Addr::new(10, 1, 20, 20));
    for i in 0..3 {
        g.out.arp(t + i * SEC, Vlan::None, ArpOp::Request, a, b)?;
    }
    g.case(
        k,
        n0,
        "ARP request for an address nobody answers, 3 times 1 s apart",
        "1 unresolved ARP attempt (2 repeats)",
        "unanswered",
        "arp",
        (IpAddr::V4(a), IpAddr::V4(b)),
        (0, 0),
        None,
        (1, 2),
    );

    // (u) Resolved ARP: 10.1.21.10 asks for 10.1.21.20, which replies
    // (is-at 02:00:0a:01:15:14). Tracker: nothing to report.
    let k = 21;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let (a, b) = (Ipv4Addr::new(10, 1, 21, 10), Ipv4Addr::new(10, 1, 21, 20));
    g.out.arp(t, Vlan::None, ArpOp::Request, a, b)?;
    g.out.arp(t + 100 * US, Vlan::None, ArpOp::Reply, b, a)?;
    g.case(
        k,
        n0,
        "ARP request answered by an ARP reply",
        "nothing to report",
        "none",
        "arp",
        (IpAddr::V4(a), IpAddr::V4(b)),
        (0, 0),
        None,
        (1, 0),
    );

    // (v) IPv4 options: 10.1.22.10:40022 -> 10.2.22.20:80 SYN with a 4-byte
    // Router Alert option (IHL 6); RST+ACK.
    // Tracker: 1 attempt, rejected (finds TCP after a 24-byte IP header).
    let k = 22;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    let mut ip = g.ip(s.src, s.dst, 64);
    ip.options = &[0x94, 0x04, 0x00, 0x00];
    g.out.send(
        t,
        Vlan::None,
        &ip,
        &L4::Tcp(s.tcp(tsval_at(t)), Payload::EMPTY),
    )?;
    g.seg(t + 300 * US, &s.reset_reply(64));
    g.case(
        k,
        n0,
        "IPv4 SYN with IP options (IHL 6) answered by RST",
        "1 attempt, rejected",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (w) IPv6 extension header: fd00:1:0:23::10:40023 -> fd00:2:0:23::20:80
    // SYN behind a hop-by-hop options header; RST+ACK (no extension).
    // Tracker: 1 attempt, rejected (walks the extension header chain).
    let k = 23;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, true, 80);
    let mut ip = g.ip(s.src, s.dst, 64);
    ip.ext = Ext6::HopByHop;
    g.out.send(
        t,
        Vlan::None,
        &ip,
        &L4::Tcp(s.tcp(tsval_at(t)), Payload::EMPTY),
    )?;
    g.seg(t + 300 * US, &s.reset_reply(64));
    g.case(
        k,
        n0,
        "IPv6 SYN behind a hop-by-hop extension header answered by RST",
        "1 attempt, rejected",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (x) Fragmented UDP: 10.1.24.10:40024 -> 10.2.24.20:7777, a 300-byte UDP
    // datagram (IP id 0x1824) sent as two fragments: the first (MF, offset
    // 0) holds the UDP header and 152 payload bytes, the second (offset 160
    // bytes) the remaining 140. The server answers ICMP 3/3 quoting the first
    // fragment's IP header and the 8-byte UDP header.
    // Tracker: 1 UDP attempt, port unreachable (ports from the first
    // fragment; the second fragment has no transport header to read).
    let k = 24;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let whole = Ip::new(c4(k), s4(k)).id(0x1824);
    g.qf.build(
        Vlan::None,
        &whole,
        &L4::Udp {
            sport: cport(k),
            dport: 7777,
            payload: Payload::Fill {
                byte: 0x58,
                len: 292,
            },
        },
    );
    let dgram = g.qf.transport().to_vec();
    let first = Ip {
        df: false,
        frag: Some(Frag {
            offset: 0,
            more: true,
        }),
        ..whole
    };
    let second = Ip {
        df: false,
        frag: Some(Frag {
            offset: 20,
            more: false,
        }),
        ..whole
    };
    g.out.send(
        t,
        Vlan::None,
        &first,
        &L4::Raw {
            proto: proto::UDP,
            data: &dgram[..160],
        },
    )?;
    g.out.send(
        t + 10 * US,
        Vlan::None,
        &second,
        &L4::Raw {
            proto: proto::UDP,
            data: &dgram[160..],
        },
    )?;
    g.qf.build(
        Vlan::None,
        &first,
        &L4::Raw {
            proto: proto::UDP,
            data: &dgram[..160],
        },
    );
    g.unreach(t + 400 * US, Vlan::None, s4(k), c4(k), 3, 0, Quote::Bytes8);
    g.case(k, n0, "UDP datagram fragmented in two answered by ICMP port unreachable quoting the first fragment", "1 UDP attempt, port unreachable", "port_unreachable", "udp", (c4(k), s4(k)), (cport(k), 7777), Some(s4(k)), (1, 0));

    // (y) Truncated SYN: 10.1.25.10:40025 -> 10.2.25.20:80, a Linux SYN (74
    // bytes on the wire) recorded with caplen 48: only the first 14 bytes of
    // the TCP header (ports, seq, ack, offset, flags) are present. RST+ACK.
    // Tracker: 1 attempt, rejected (reads ports and flags from a cut header).
    let k = 25;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    let ip = g.ip(s.src, s.dst, 64);
    g.out.send_truncated(
        t,
        Vlan::None,
        &ip,
        &L4::Tcp(s.tcp(tsval_at(t)), Payload::EMPTY),
        14 + 20 + 14,
    )?;
    g.seg(t + 300 * US, &s.reset_reply(64));
    g.case(
        k,
        n0,
        "SYN cut by snaplen to 14 bytes of TCP header, answered by RST",
        "1 attempt, rejected",
        "rejected",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // (z) PMTU discovery: 10.1.26.10:40026 -> 10.2.26.20:443 handshake and
    // request; the server's 1400-byte segment (DF) hits a 1280-byte link and
    // router 10.3.26.1 sends the server ICMP 3/4 (frag needed, MTU 1280)
    // quoting it; the server resends in two smaller segments, the client
    // acknowledges, both close with FIN.
    // Tracker: 1 attempt, success; the ICMP is NOT a failure.
    let k = 26;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 443);
    g.seg(t, &s);
    let sa = s.syn_ack_reply(s_isn(k), 64, SynOpts::Linux);
    g.seg(t + rtt, &sa);
    let (cs, ss) = (c_isn(k) + 1, s_isn(k) + 1);
    g.data(t + rtt + 100 * US, &s, cs, ss, ack, 0);
    g.data(t + MS, &s, cs, ss, ack | psh, 100);
    let cs = cs + 100;
    let big = Seg {
        seq: ss,
        ack: cs,
        flags: ack,
        len: 1400,
        opts: SynOpts::None,
        win: 509,
        ..sa
    };
    g.seg(t + MS + rtt, &big);
    g.remember(&big, t + MS + rtt);
    g.unreach(
        t + MS + rtt + 50 * US,
        Vlan::None,
        r4(k),
        s4(k),
        4,
        1280,
        Quote::Bytes8,
    );
    g.data(t + MS + rtt + 100 * US, &sa, ss, cs, ack, 1228);
    g.data(t + MS + rtt + 110 * US, &sa, ss + 1228, cs, ack | psh, 172);
    let ss = ss + 1400;
    g.data(t + 2 * MS + rtt, &s, cs, ss, ack, 0);
    g.data(t + 3 * MS, &s, cs, ss, fin | ack, 0);
    g.data(t + 3 * MS + rtt, &sa, ss, cs + 1, fin | ack, 0);
    g.data(t + 3 * MS + rtt + 100 * US, &s, cs + 1, ss + 1, ack, 0);
    g.case(
        k,
        n0,
        "ICMP fragmentation needed (3/4) quoting a mid-connection segment (PMTU discovery)",
        "1 attempt, success; ICMP 3/4 is not a failure",
        "success",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        Some(r4(k)),
        (1, 0),
    );

    // (aa) Last case: 10.1.27.10:40027 -> 10.2.27.20:80 SYN 1 s before the
    // end of the capture, never answered.
    // Tracker: 1 attempt, unanswered at capture end (reported when the
    // capture is drained, not lost).
    let k = 27;
    let n0 = g.out.counts.total;
    let t = case_start(k);
    let s = g.syn(k, false, 80);
    g.seg(t, &s);
    g.case(
        k,
        n0,
        "SYN 1 s before the end of the capture, never answered",
        "1 attempt, unanswered at capture end",
        "unanswered",
        "tcp",
        (s.src, s.dst),
        (s.sport, s.dport),
        None,
        (1, 0),
    );

    // Background: DNS lookups and pings, all answered (nothing to report).
    for (i, k) in [2u32, 6, 11, 16, 21].into_iter().enumerate() {
        g.dns(case_start(k) + 5 * SEC, i as u32 * 9);
    }
    for (i, k) in [3u32, 9, 15, 22].into_iter().enumerate() {
        g.ping(case_start(k) + 6 * SEC, false, i as u16 + 1);
    }
    g.ping(case_start(13) + 6 * SEC, true, 1);
    // The capture's last frame: a ping reply exactly 1 s after case aa's SYN.
    g.ping(case_start(27) + SEC - 200 * US, false, 9);

    // Write in timestamp order (stable: frames of one case keep their order).
    let counts = g.out.counts;
    let cases = std::mem::take(&mut g.cases);
    drop(g);
    collect.recs.sort_by_key(|r| r.0);
    for (ts, data, wire) in &collect.recs {
        let cut = &data[..data.len().min(opts.snaplen as usize)];
        sink.packet(*ts, cut, *wire)?;
    }
    let mut truth = Truth {
        profile: Profile::Golden.name().to_string(),
        seed: opts.seed,
        snaplen: opts.snaplen,
        first_ts_ns: collect.recs.first().map_or(START_NS, |r| r.0),
        last_ts_ns: collect.recs.last().map_or(START_NS, |r| r.0),
        frames: counts,
        cases,
        ..Truth::default()
    };
    truth.conversations = truth.cases.len() as u64 + 5 + 6;
    truth.notes = vec![
        "Case K (a=1 .. aa=27) starts at 2024-03-01T10:00:00Z + (K-1)*10 s; initiator 10.1.K.10:(40000+K), responder 10.2.K.20, ICMP from 10.3.K.1; IPv6 cases use fd00:1:0:KK::10, fd00:2:0:KK::20, fd00:3:0:KK::1 with KK = K's decimal digits.".to_string(),
        "Background (DNS 10.0.0.100 <-> 10.0.0.53, pings 10.0.0.100 -> 10.0.0.1 and fd00::100 -> fd00::1) is all answered and must produce no findings.".to_string(),
        "Case y's SYN is recorded with caplen 48 (orig_len 74).".to_string(),
        "tcp_attempts and udp are not filled for golden: each case carries its own expectation (cases[].outcome, attempts, retransmissions).".to_string(),
    ];
    Ok(truth)
}
