//! Enterprise SPAN-port mix (benchmark profile).
//!
//! Targets, measured on a real enterprise SPAN capture (shares of frames):
//! 94% mid-connection TCP data/ACK, 1.3% SYN, 0.9% SYN-ACK, 0.25% RST,
//! 1.5% FIN, 0.15% ICMP unreachable, 1.5% DNS, ~8% IPv6, ~14% 802.1Q; about
//! 315k conversations per 15M frames with ~10k live at once.
//!
//! The scanners have a fixed size (a /22 sweep is 1024 probes whatever the
//! capture length), so the background's failure rates are computed from the
//! targets *minus* what the scanners contribute: the mix stays on target from
//! ~1M frames up (below that the scanners alone exceed the RST budget).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::sim::{Answer, LINUX_SYN_RETX, Mix, Scanner, Sim, SynOpts, WINDOWS_SYN_RETX};
use super::{GenOptions, MS, Out, Profile, SEC, START_NS, ScannerTruth, Truth, ip_str};
use crate::synth::frame::Vlan;
use crate::synth::rng::{Rng, mix64};
use crate::synth::writer::Sink;

/// Frame shares the profile aims for.
pub mod target {
    /// TCP SYN (no ACK).
    pub const SYN: f64 = 0.013;
    /// TCP SYN+ACK.
    pub const SYN_ACK: f64 = 0.009;
    /// TCP RST.
    pub const RST: f64 = 0.0025;
    /// TCP FIN.
    pub const FIN: f64 = 0.015;
    /// ICMP destination unreachable.
    pub const ICMP_UNREACH: f64 = 0.0015;
    /// DNS (UDP port 53).
    pub const DNS: f64 = 0.015;
    /// Mid-connection TCP (data, pure ACK).
    pub const TCP_OTHER: f64 = 0.94;
    /// IPv6.
    pub const IPV6: f64 = 0.08;
    /// 802.1Q tagged.
    pub const VLAN: f64 = 0.14;
    /// Conversations per frame (315k per 15M).
    pub const CONVERSATIONS: f64 = 315_000.0 / 15_000_000.0;
}

/// Average frame rate: 15M frames make a 10-minute capture, long enough for
/// the low-and-slow scanner to show a few probes.
pub const RATE_PPS: f64 = 25_000.0;

/// Fixed scanner addresses (also in the truth file).
pub const SMB_SWEEPER: Ipv4Addr = Ipv4Addr::new(10, 13, 37, 5);
/// Vertical port scanner and its target.
pub const VERTICAL_SCANNER: Ipv4Addr = Ipv4Addr::new(10, 66, 1, 10);
/// Target of the vertical scan.
pub const VERTICAL_TARGET: Ipv4Addr = Ipv4Addr::new(10, 30, 5, 20);
/// IPv6 sweeper.
pub const V6_SWEEPER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0x77, 0, 0, 0, 0xbad);
/// Low-and-slow scanner.
pub const SLOW_SCANNER: Ipv4Addr = Ipv4Addr::new(10, 99, 3, 7);

/// Ports the vertical scan finds open (SYN-ACK), and filtered (silent).
const VERTICAL_OPEN: [u16; 6] = [22, 80, 135, 139, 443, 445];
const VERTICAL_FILTERED: [u16; 3] = [25, 110, 143];

/// A uniform value in [0, 1) from a hash: scan answers depend on the target,
/// not on the order of generation.
fn h01(x: u64) -> f64 {
    (mix64(x) >> 11) as f64 / (1u64 << 53) as f64
}

fn scanner(ip: IpAddr, kind: &str, ports: Vec<u16>, targets: &str) -> ScannerTruth {
    ScannerTruth {
        ip: ip_str(ip),
        kind: kind.to_string(),
        ports,
        targets: targets.to_string(),
        ..ScannerTruth::default()
    }
}

fn scanners(seed: u64, dur: i64) -> Vec<Scanner> {
    let mut rng = Rng::new(seed, 2);
    let mut out = Vec::new();

    // Fast SMB sweep of 10.20.0.0/22 from an infected Windows host: one SYN to
    // 445 every 1-3 ms in address order. A quarter of the addresses are alive;
    // 40% of those have SMB open.
    let targets = (0..1024u32)
        .map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20, 0, 0)) + i);
            let h = h01(seed ^ u32::from(ip) as u64 ^ 0x0073_6d62);
            let a = if h < 0.10 {
                Answer::SynAck
            } else if h < 0.25 {
                Answer::Rst
            } else {
                Answer::Silent
            };
            (IpAddr::V4(ip), 445, a)
        })
        .collect();
    out.push(Scanner {
        truth: scanner(
            IpAddr::V4(SMB_SWEEPER),
            "tcp_sweep",
            vec![445],
            "10.20.0.0/22",
        ),
        src: IpAddr::V4(SMB_SWEEPER),
        vlan: Vlan::None,
        sport: 49_731,
        ttl: 128,
        opts: SynOpts::Windows,
        win: 8192,
        targets,
        gap: (MS, 3 * MS),
        start: START_NS + dur * 3 / 10,
        next: 0,
    });

    // Vertical scan of one host, ports 1-1000 in random order, nmap-style
    // (fixed source port, window 1024, MSS only): mostly RST.
    let mut ports: Vec<u16> = (1..=1000).collect();
    rng.shuffle(&mut ports);
    let targets = ports
        .iter()
        .map(|&p| {
            let a = if VERTICAL_OPEN.contains(&p) {
                Answer::SynAck
            } else if VERTICAL_FILTERED.contains(&p) {
                Answer::Silent
            } else {
                Answer::Rst
            };
            (IpAddr::V4(VERTICAL_TARGET), p, a)
        })
        .collect();
    out.push(Scanner {
        truth: scanner(
            IpAddr::V4(VERTICAL_SCANNER),
            "tcp_vertical",
            (1..=1000).collect(),
            "10.30.5.20 ports 1-1000",
        ),
        src: IpAddr::V4(VERTICAL_SCANNER),
        vlan: Vlan::None,
        sport: 61_337,
        ttl: 52,
        opts: SynOpts::Mss,
        win: 1024,
        targets,
        gap: (MS / 2, 2 * MS),
        start: START_NS + dur / 2,
        next: 0,
    });

    // IPv6 sweep of fd00:0:0:20::100-::1ff, port 22. Dead addresses get
    // ICMPv6 address unreachable from the router after its 3 s ND timeout.
    let router = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0x20, 0, 0, 0, 1));
    let targets = (0..256u16)
        .map(|i| {
            let ip = Ipv6Addr::new(0xfd00, 0, 0, 0x20, 0, 0, 0, 0x100 + i);
            let h = h01(seed ^ i as u64 ^ 0x7636);
            let a = if h < 0.05 {
                Answer::SynAck
            } else if h < 0.10 {
                Answer::Rst
            } else {
                Answer::Icmp {
                    from: router,
                    code: 3,
                    delay: 3 * SEC,
                }
            };
            (IpAddr::V6(ip), 22, a)
        })
        .collect();
    out.push(Scanner {
        truth: scanner(
            IpAddr::V6(V6_SWEEPER),
            "tcp_sweep",
            vec![22],
            "fd00:0:0:20::100 - fd00:0:0:20::1ff",
        ),
        src: IpAddr::V6(V6_SWEEPER),
        vlan: Vlan::None,
        sport: 50_022,
        ttl: 64,
        opts: SynOpts::Mss,
        win: 1024,
        targets,
        gap: (5 * MS, 15 * MS),
        start: START_NS + dur * 65 / 100,
        next: 0,
    });

    // Low-and-slow: one probe every 2-4 minutes to a random 10.30.0.0/16
    // host and a common port. Enough targets for the longest capture; the
    // truth counts those actually sent.
    let slow_ports = [22u16, 23, 80, 443, 445, 3389, 5900, 8080];
    let n = (dur / (120 * SEC) + 2) as usize;
    let targets = (0..n)
        .map(|_| {
            let ip = Ipv4Addr::new(10, 30, rng.below(256) as u8, 1 + rng.below(254) as u8);
            let port = *rng.pick(&slow_ports);
            let h = rng.unit();
            let a = if h < 0.5 {
                Answer::Silent
            } else if h < 0.9 {
                Answer::Rst
            } else {
                Answer::SynAck
            };
            (IpAddr::V4(ip), port, a)
        })
        .collect();
    out.push(Scanner {
        truth: scanner(
            IpAddr::V4(SLOW_SCANNER),
            "tcp_slow",
            slow_ports.to_vec(),
            "10.30.0.0/16, one probe every 2-4 minutes",
        ),
        src: IpAddr::V4(SLOW_SCANNER),
        vlan: Vlan::None,
        sport: 0, // drawn below
        ttl: 64,
        opts: SynOpts::Linux,
        win: 64240,
        targets,
        gap: (120 * SEC, 240 * SEC),
        start: START_NS + (dur / 20).min(30 * SEC),
        next: 0,
    });
    out[3].sport = 40_000 + rng.below(20_000) as u16;
    out
}

/// Expected SYNs of an unanswered attempt started at a uniform time in a
/// capture of `dur` ns: the first plus each retransmission that fits.
fn unanswered_syns(dur: i64) -> f64 {
    let fit = |sched: &[i64]| -> f64 {
        1.0 + sched
            .iter()
            .map(|&s| (1.0 - (s * SEC) as f64 / dur as f64).max(0.0))
            .sum::<f64>()
    };
    0.6 * fit(&LINUX_SYN_RETX) + 0.4 * fit(&WINDOWS_SYN_RETX)
}

/// The knobs for `n` frames, given what the scanners will add.
fn mix_for(n: u64, dur: i64, scanners: &[Scanner]) -> Mix {
    let nf = n.max(1) as f64;
    // Scanner frames by class that fall inside the capture: probe k goes out
    // around start + k * mean gap, its answer a little (or, for ICMP after a
    // neighbour-discovery timeout, a lot) later.
    let end = START_NS + dur;
    let (mut s_syn, mut s_sa, mut s_rst, mut s_icmp) = (0.0, 0.0, 0.0, 0.0);
    for s in scanners {
        let mean_gap = (s.gap.0 + s.gap.1) / 2;
        for (k, t) in s.targets.iter().enumerate() {
            let sent = s.start + k as i64 * mean_gap;
            if sent >= end {
                break;
            }
            s_syn += 1.0;
            match t.2 {
                Answer::SynAck => {
                    s_sa += 1.0;
                    s_rst += 1.0; // the scanner resets each SYN-ACK
                }
                Answer::Rst => s_rst += 1.0,
                Answer::Icmp { delay, .. } if sent + delay < end => s_icmp += 1.0,
                Answer::Icmp { .. } | Answer::Silent => {}
            }
        }
    }
    // Bulk instants are ~97% of frames; the rest are timer events (answers).
    let per_instant = 1.0 / (0.97 * nf);

    let aborts = 0.1 * target::SYN_ACK * nf;
    let rst_budget = (target::RST * nf - s_rst - aborts).max(0.0);
    // Rejected attempt: 1 RST, plus 2 more for the 20% of Windows retries.
    let rejects = rst_budget / 1.4;

    let icmp_budget = (target::ICMP_UNREACH * nf - s_icmp).max(0.0);
    // A TCP attempt answered by ICMP yields 1.5 ICMP (half retransmit once).
    let icmp_attempts = 0.40 * icmp_budget / 1.5;
    let udp_closed = 0.25 * icmp_budget;
    let dns_late = 0.20 * icmp_budget;
    let pmtu = 0.15 * icmp_budget / 0.92; // IPv6 conversations are skipped

    let syn_budget = target::SYN * nf
        - s_syn
        - 1.03 * (target::SYN_ACK * nf - s_sa)
        - 1.4 * rejects
        - 1.5 * icmp_attempts;
    let unanswered = syn_budget.max(0.0) / unanswered_syns(dur);

    let p_dns = target::DNS / 2.0 / 0.97;
    Mix {
        rate_pps: RATE_PPS,
        live: (n / 1500).clamp(16, 10_000) as usize,
        n_clients: 4000,
        v6_frac: target::IPV6,
        vlan_subnets: 9, // 9/64 = 14.1% of clients
        small: false,
        budget_mean: 112.0,
        abort_frac: 0.1,
        vanish_frac: 0.07,
        syn_loss: 0.03,
        p_dns,
        dns_late: (dns_late / (p_dns * 0.97 * nf)).min(0.5),
        p_reject: rejects * per_instant,
        p_unanswered: unanswered * per_instant,
        p_icmp_tcp: icmp_attempts * per_instant,
        p_udp_closed: udp_closed * per_instant,
        p_pmtu: pmtu * per_instant,
        p_echo: 0.0005,
        p_ntp: 0.0004,
        p_arp: 0.0003,
        p_syslog: 0.0005,
        p_masscan: 0.0,
        p_flood: 0.0,
    }
}

/// Generate `opts.packets` frames of enterprise traffic.
pub fn enterprise<S: Sink>(sink: &mut S, opts: &GenOptions) -> io::Result<Truth> {
    let n = opts.packets;
    let dur = (n as f64 / RATE_PPS * SEC as f64) as i64;
    let scanners = scanners(opts.seed, dur);
    let mix = mix_for(n, dur, &scanners);
    let out = Out::new(sink, opts.snaplen, n);
    let mut sim = Sim::new(out, mix, opts.seed, START_NS);
    sim.scanners = scanners;
    sim.prime();
    sim.run()?;
    sim.finish();

    let mut truth = sim.out.truth(Profile::Enterprise, opts);
    truth.conversations = sim.stats.conversations;
    truth.tcp_in_progress_at_start = sim.stats.in_progress;
    truth.tcp_attempts = sim.stats.tcp;
    truth.udp = sim.stats.udp;
    truth.pmtu_frag_needed = sim.stats.pmtu;
    truth.scanners = sim.scanners.iter().map(|s| s.truth.clone()).collect();
    truth.notes = vec![
        "Hosts: clients 10.(16+s).0.x / fd00:0:0:(16+s)::x for subnet s < 64 (subnets 0-8 tagged with VLAN 100+s); internal servers 10.1.0.0/16, fd00:0:0:1::/64; DNS 10.0.0.53-54, fd00:0:0:1::53-54; outside servers public IPv4 / 2001:db8::/32.".to_string(),
        "tcp_attempts counts the background only; each scanner probe is one attempt of its scanner.".to_string(),
        "udp.dns_late_port_unreachable: DNS servers whose late responses drew ICMP port unreachable from the client; a tracker may count these as failed UDP attempts of 10.0.0.53/54 (benign).".to_string(),
        "pmtu_frag_needed: ICMP 3/4 from 10.0.0.1 about live connections; not failures.".to_string(),
    ];
    Ok(truth)
}
