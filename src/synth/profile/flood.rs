//! Flood profile (benchmark worst case): 60-byte frames, ~71% SYN, almost every
//! SYN a new 5-tuple (about 10.6M distinct ones per 15M frames).
//!
//! * Three masscan-style scanners sweep all of 10.0.0.0/8 in a random
//!   permutation of (address, port) pairs: fixed source port, window 1024, no
//!   options, TTL 255. About 1.5% of targets answer (SYN-ACK, then the
//!   scanner's RST, or RST+ACK). Their addresses are fixed ([`MASSCANS`]) and
//!   listed in the truth file so a test can check they are found in the flood.
//! * A spoofed-source SYN flood against three servers: every SYN from a
//!   distinct (public address, port); the victims answer 10% with SYN-ACKs
//!   that nobody acknowledges.
//! * The rest (~25%) is normal traffic kept under 60 bytes: small TCP
//!   conversations (IPv4, untagged), a few rejected and unanswered attempts,
//!   pings and ARP.

use std::io;
use std::net::Ipv4Addr;

use super::sim::{Flood, Masscan, Mix, Sim};
use super::{FloodTruth, GenOptions, Out, Profile, START_NS, ScannerTruth, Truth};
use crate::synth::rng::Permutation;
use crate::synth::writer::Sink;

/// Frames per second: a 15M-frame flood lasts 37.5 s.
pub const RATE_PPS: f64 = 400_000.0;

/// The masscan scanners: (address, source port, ports scanned, share of the
/// masscan frames).
pub const MASSCANS: [(Ipv4Addr, u16, &[u16], f64); 3] = [
    (
        Ipv4Addr::new(198, 51, 100, 23),
        61_000,
        &[80, 443, 22, 3389, 8080],
        0.5,
    ),
    (Ipv4Addr::new(203, 0, 113, 77), 40_000, &[445], 0.3),
    (Ipv4Addr::new(10, 200, 0, 66), 55_555, &[23, 2323], 0.2),
];

/// The flood victims: (address, port, share of the flood).
pub const VICTIMS: [(Ipv4Addr, u16, f64); 3] = [
    (Ipv4Addr::new(10, 50, 0, 10), 80, 0.5),
    (Ipv4Addr::new(10, 50, 0, 11), 443, 0.3),
    (Ipv4Addr::new(10, 50, 0, 12), 25, 0.2),
];

/// Share of frames that are masscan probes / flood SYNs.
const MASSCAN_SHARE: f64 = 0.40;
const FLOOD_SHARE: f64 = 0.305;

/// Generate `opts.packets` frames of the flood profile.
pub fn flood<S: Sink>(sink: &mut S, opts: &GenOptions) -> io::Result<Truth> {
    let n = opts.packets;
    // Bulk instants are ~95.7% of frames (the rest: answers from the heap).
    let bulk = 0.957;
    let mix = Mix {
        rate_pps: RATE_PPS,
        live: (n / 1500).clamp(16, 10_000) as usize,
        n_clients: 4000,
        v6_frac: 0.0,
        vlan_subnets: 0,
        small: true,
        budget_mean: 98.0,
        p_reject: 0.0005,
        p_unanswered: 0.0002,
        p_echo: 0.0005,
        p_arp: 0.0003,
        p_masscan: MASSCAN_SHARE / bulk,
        p_flood: FLOOD_SHARE / bulk,
        ..Mix::default()
    };
    let out = Out::new(sink, opts.snaplen, n);
    let mut sim = Sim::new(out, mix, opts.seed, START_NS);
    for (i, (ip, sport, ports, weight)) in MASSCANS.iter().enumerate() {
        // Permutation domain: 2^24 addresses x next power of two >= ports.
        let bits = 24 + (ports.len() as u64).next_power_of_two().trailing_zeros();
        sim.masscans.push(Masscan {
            truth: ScannerTruth {
                ip: ip.to_string(),
                kind: "masscan".to_string(),
                ports: ports.to_vec(),
                targets: "10.0.0.0/8 (random order, no repeats)".to_string(),
                ..ScannerTruth::default()
            },
            src: *ip,
            sport: *sport,
            weight: *weight,
            perm: Permutation::new(bits.max(2), opts.seed ^ (0x6d61_7373 + i as u64)),
            counter: 0,
            open: 0.005,
            closed: 0.01,
        });
    }
    for (ip, port, weight) in VICTIMS {
        sim.floods.push(Flood {
            truth: FloodTruth {
                target: ip.to_string(),
                port,
                ..FloodTruth::default()
            },
            target: ip,
            port,
            weight,
            answer: 0.1,
        });
    }
    sim.prime();
    sim.run()?;
    sim.finish();

    let mut truth = sim.out.truth(Profile::Flood, opts);
    truth.conversations = sim.stats.conversations;
    truth.tcp_in_progress_at_start = sim.stats.in_progress;
    truth.tcp_attempts = sim.stats.tcp;
    truth.udp = sim.stats.udp;
    truth.scanners = sim.masscans.iter().map(|m| m.truth.clone()).collect();
    truth.floods = sim.floods.iter().map(|f| f.truth.clone()).collect();
    let dur = n as f64 / RATE_PPS;
    truth.notes = vec![
        format!("Nominal duration {dur:.1} s at {} frames/s.", RATE_PPS as u64),
        "Every flood SYN has a distinct spoofed (source address, source port); each masscan probe a distinct (destination address, port).".to_string(),
        "tcp_attempts counts the normal traffic only.".to_string(),
    ];
    Ok(truth)
}
