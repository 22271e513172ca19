//! Profile tests: frames decode with etherparse and carry valid checksums, the
//! files are valid pcap/pcapng (read back by hand, and by tshark when it is
//! installed), output is deterministic, and the enterprise / flood mixes hit
//! their targets when measured on the generated frames.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice};

use super::enterprise::target;
use super::*;
use crate::synth::frame::tests::check_frame;
use crate::synth::writer::tests::read_capture;
use crate::synth::writer::{CaptureWriter, Format, LINKTYPE_ETHERNET};

/// Collects records in memory.
#[derive(Default)]
struct Collect {
    recs: Vec<(i64, Vec<u8>, usize)>,
}

impl Sink for Collect {
    fn packet(&mut self, ts: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        self.recs.push((ts, data.to_vec(), wire_len));
        Ok(())
    }
}

/// A decoded frame's essentials, from etherparse (lax: frames may be cut at
/// the snaplen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
}

/// Classifies every frame with etherparse into the truth's classes, checking
/// order and lengths as it goes.
#[derive(Default)]
struct Classify {
    counts: FrameCounts,
    last_ts: i64,
    /// (source, SYN count) for SYNs, to check scanners.
    syn_src: Vec<IpAddr>,
    keys: Option<HashSet<Key>>,
    sizes: HashSet<usize>,
}

fn decode(data: &[u8]) -> (LaxSlicedPacket<'_>, Option<Key>) {
    let p = LaxSlicedPacket::from_ethernet(data).expect("ethernet header present");
    let (src, dst, proto) = match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            (
                IpAddr::from(h.source()),
                IpAddr::from(h.destination()),
                h.protocol().0,
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            (
                IpAddr::from(h.source()),
                IpAddr::from(h.destination()),
                ip.payload().ip_number.0,
            )
        }
        _ => return (p, None),
    };
    let (sport, dport) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        _ => (0, 0),
    };
    (
        p,
        Some(Key {
            src,
            dst,
            sport,
            dport,
            proto,
        }),
    )
}

impl Sink for Classify {
    fn packet(&mut self, ts: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        assert!(ts >= self.last_ts, "timestamps go backwards");
        assert!(wire_len >= data.len());
        self.last_ts = ts;
        self.sizes.insert(wire_len);
        let (p, key) = decode(data);
        let c = &mut self.counts;
        c.total += 1;
        c.vlan += !p.link_exts.is_empty() as u64;
        match &p.net {
            Some(LaxNetSlice::Arp(_)) => c.arp += 1,
            Some(LaxNetSlice::Ipv6(_)) => c.ipv6 += 1,
            _ => {}
        }
        match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                if t.rst() {
                    c.tcp_rst += 1;
                } else if t.syn() && t.ack() {
                    c.tcp_syn_ack += 1;
                } else if t.syn() {
                    c.tcp_syn += 1;
                    self.syn_src.push(key.expect("IP").src);
                } else if t.fin() {
                    c.tcp_fin += 1;
                } else {
                    c.tcp_other += 1;
                }
            }
            Some(TransportSlice::Udp(u)) => {
                if u.source_port() == 53 || u.destination_port() == 53 {
                    c.udp_dns += 1;
                } else {
                    c.udp_other += 1;
                }
            }
            Some(TransportSlice::Icmpv4(i)) => {
                if i.type_u8() == 3 {
                    c.icmp_unreach += 1;
                } else {
                    c.icmp_other += 1;
                }
            }
            Some(TransportSlice::Icmpv6(i)) => {
                if i.type_u8() == 1 {
                    c.icmp_unreach += 1;
                } else {
                    c.icmp_other += 1;
                }
            }
            _ => {
                if matches!(
                    p.net,
                    Some(LaxNetSlice::Ipv4(_)) | Some(LaxNetSlice::Ipv6(_))
                ) {
                    c.ip_fragment += 1;
                }
            }
        }
        if let (Some(keys), Some(k)) = (self.keys.as_mut(), key)
            && k.proto == 6
        {
            // Direction-independent 5-tuple.
            let k = if (k.src, k.sport) <= (k.dst, k.dport) {
                k
            } else {
                Key {
                    src: k.dst,
                    dst: k.src,
                    sport: k.dport,
                    dport: k.sport,
                    proto: k.proto,
                }
            };
            keys.insert(k);
        }
        Ok(())
    }
}

fn opts(packets: u64, seed: u64, snaplen: u32) -> GenOptions {
    GenOptions {
        packets,
        seed,
        snaplen,
    }
}

fn within(measured: f64, target: f64, rel: f64) -> bool {
    (measured - target).abs() <= target * rel
}

// ------------------------------------------------------------------ golden

#[test]
fn golden_frames_decode_with_valid_checksums() {
    let mut c = Collect::default();
    let truth = golden(&mut c, &opts(0, 0, 65535)).unwrap();
    assert!(c.recs.len() < 200, "{} frames", c.recs.len());
    assert_eq!(c.recs.len() as u64, truth.frames.total);
    assert_eq!(c.recs[0].0, START_NS);
    assert!(c.recs.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
    let mut cut = 0;
    for (_, data, wire) in &c.recs {
        if data.len() == *wire {
            check_frame(data);
        } else {
            // Case y: 14 + 20 + 14 bytes of a 74-byte SYN.
            assert_eq!((data.len(), *wire), (48, 74));
            cut += 1;
        }
    }
    assert_eq!(cut, 1);
    // The classes etherparse sees match what the generator counted (the cut
    // SYN has no TCP slice for etherparse; count it by hand).
    let mut cl = Classify::default();
    for (ts, data, wire) in &c.recs {
        cl.packet(*ts, data, *wire).unwrap();
    }
    let mut seen = cl.counts;
    seen.tcp_syn += 1;
    seen.ip_fragment -= 1;
    assert_eq!(seen, truth.frames);
    assert_eq!(truth.frames.ip_fragment, 2);
}

#[test]
fn golden_cases_are_documented_and_separate() {
    let mut c = Collect::default();
    let truth = golden(&mut c, &opts(0, 0, 65535)).unwrap();
    let ids: Vec<&str> = truth.cases.iter().map(|c| c.id.as_str()).collect();
    let want: Vec<String> = (b'a'..=b'z')
        .map(|b| (b as char).to_string())
        .chain(["aa".to_string()])
        .collect();
    assert_eq!(ids, want);
    // Count each case's frames by its addresses and compare with the truth.
    for (k, case) in truth.cases.iter().enumerate() {
        let mut addrs: Vec<IpAddr> =
            vec![case.client.parse().unwrap(), case.server.parse().unwrap()];
        if let Some(r) = &case.icmp_from {
            addrs.push(r.parse().unwrap());
        }
        let mut n = 0;
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for (ts, data, _) in &c.recs {
            let p = LaxSlicedPacket::from_ethernet(data).unwrap();
            let hit = match &p.net {
                Some(LaxNetSlice::Arp(a)) => {
                    let s = IpAddr::from(<[u8; 4]>::try_from(a.sender_protocol_addr()).unwrap());
                    addrs.contains(&s)
                }
                _ => decode(data)
                    .1
                    .is_some_and(|k| addrs.contains(&k.src) && addrs.contains(&k.dst)),
            };
            if hit {
                n += 1;
                first = first.min(*ts);
                last = last.max(*ts);
            }
        }
        assert_eq!(n, case.frames, "case {} frame count", case.id);
        assert_eq!(
            first,
            golden::case_start(k as u32 + 1),
            "case {} start",
            case.id
        );
        // Each case stays in its 10-second slot with at least 2 s to spare.
        assert!(last - first <= 8 * SEC, "case {} lasts too long", case.id);
    }
    // Case aa's SYN is exactly 1 s before the capture's last frame.
    let aa = truth.cases.last().unwrap();
    assert_eq!(truth.last_ts_ns - aa.first_ts_ns, SEC);
    assert_eq!(c.recs.last().unwrap().0, truth.last_ts_ns);
}

/// Every ICMP error quotes (a prefix of) the IP packet of an earlier frame in
/// the capture, byte for byte: the errors answer real attempts. Returns the
/// number of ICMP errors checked.
fn check_quotes(recs: &[(i64, Vec<u8>, usize)]) -> usize {
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut checked = 0;
    for (_, data, wire) in recs {
        if data.len() != *wire {
            continue; // cut by the snaplen
        }
        let p = SlicedPacket::from_ethernet(data).unwrap();
        let quote = match &p.transport {
            Some(TransportSlice::Icmpv4(i)) if i.type_u8() == 3 => Some(i.payload()),
            Some(TransportSlice::Icmpv6(i)) if i.type_u8() == 1 => Some(i.payload()),
            _ => None,
        };
        if let Some(q) = quote {
            assert!(
                sent.iter().any(|ip| ip.starts_with(q)),
                "ICMP quote matches no earlier packet: {q:02x?}"
            );
            checked += 1;
        }
        let ip = match &p.net {
            Some(NetSlice::Ipv4(v)) => v.header().slice().as_ptr(),
            Some(NetSlice::Ipv6(v)) => v.header().slice().as_ptr(),
            _ => continue,
        };
        let off = ip as usize - data.as_ptr() as usize;
        // The IP packet without Ethernet padding.
        let len = match &p.net {
            Some(NetSlice::Ipv4(v)) => v.header().total_len() as usize,
            Some(NetSlice::Ipv6(v)) => 40 + v.header().payload_length() as usize,
            _ => unreachable!(),
        };
        sent.push(data[off..off + len].to_vec());
    }
    checked
}

#[test]
fn icmp_errors_quote_packets_in_the_capture() {
    let mut c = Collect::default();
    golden(&mut c, &opts(0, 0, 65535)).unwrap();
    assert_eq!(check_quotes(&c.recs), 7); // cases g h i j k x z
    let mut c = Collect::default();
    let truth = enterprise(&mut c, &opts(60_000, 8, 65535)).unwrap();
    let n = check_quotes(&c.recs) as u64;
    assert_eq!(n, truth.frames.icmp_unreach);
    assert!(n > 30, "only {n} ICMP errors");
}

// -------------------------------------------------------------- file format

#[test]
fn writer_output_reads_back_in_every_format() {
    for format in [Format::Pcap, Format::PcapNs, Format::PcapNg] {
        let mut c = Collect::default();
        enterprise(&mut c, &opts(5000, 3, 128)).unwrap();
        let mut w = CaptureWriter::new(Vec::new(), format, 128, LINKTYPE_ETHERNET).unwrap();
        enterprise(&mut w, &opts(5000, 3, 128)).unwrap();
        let bytes = w.finish().unwrap();
        let (snaplen, recs) = read_capture(&bytes);
        assert_eq!(snaplen, 128);
        assert_eq!(recs.len(), c.recs.len());
        for (r, (ts, data, wire)) in recs.iter().zip(&c.recs) {
            let ts_want = if format == Format::Pcap {
                ts / 1000 * 1000
            } else {
                *ts
            };
            assert_eq!((r.0, &r.1, r.2 as usize), (ts_want, data, *wire));
            assert!(r.1.len() <= 128);
        }
    }
}

/// Cross-check with tshark (installed by `scripts/setup-deps test`): it reads
/// every format, sees the right number of frames, and finds no bad checksum.
#[test]
fn tshark_reads_generated_captures() {
    let ok = std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "tshark is needed by this test: run `bash scripts/setup-deps test`"
    );
    let dir = std::env::temp_dir().join(format!("scanwatch-synth-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(Profile, Format, u64, u32); 4] = [
        (Profile::Golden, Format::Pcap, 0, 65535),
        (Profile::Golden, Format::PcapNg, 0, 65535),
        (Profile::Enterprise, Format::PcapNs, 3000, 65535),
        (Profile::Flood, Format::PcapNg, 3000, 256),
    ];
    for (profile, format, packets, snaplen) in cases {
        let path = dir.join(format!("{}.{format}", profile.name()));
        let mut w = CaptureWriter::create(&path, format, snaplen).unwrap();
        let truth = generate(profile, &opts(packets, 5, snaplen), &mut w).unwrap();
        w.finish().unwrap();
        let run = |filter: &str| {
            let out = std::process::Command::new("tshark")
                .args(["-n", "-r"])
                .arg(&path)
                .args([
                    "-o",
                    "tcp.check_checksum:TRUE",
                    "-o",
                    "udp.check_checksum:TRUE",
                    "-o",
                    "ip.check_checksum:TRUE",
                ])
                .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "tshark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).lines().count() as u64
        };
        assert_eq!(run("frame"), truth.frames.total, "{path:?}");
        // Wireshark checksum status 0 = bad. A segment quoted in an ICMP
        // error is usually cut, so its transport checksum cannot verify.
        let bad = "ip.checksum.status == 0 || icmp.checksum.status == 0 || icmpv6.checksum.status == 0 \
                   || ((tcp.checksum.status == 0 || udp.checksum.status == 0) && !icmp && !icmpv6)";
        assert_eq!(run(bad), 0, "bad checksums in {path:?}");
        if profile == Profile::Golden {
            assert_eq!(run("_ws.malformed"), 0, "malformed frames in {path:?}");
            // tshark cannot read the flags of case y's cut SYN; it must not
            // count the SYNs quoted inside ICMP errors either.
            let syns = run("tcp.flags.syn == 1 && tcp.flags.ack == 0 && !icmp && !icmpv6");
            assert_eq!(syns, truth.frames.tcp_syn - 1);
            assert_eq!(run("vlan.id == 300"), 1);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------- determinism

fn bytes_of(profile: Profile, o: &GenOptions, format: Format) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), format, o.snaplen, LINKTYPE_ETHERNET).unwrap();
    generate(profile, o, &mut w).unwrap();
    w.finish().unwrap()
}

#[test]
fn same_arguments_same_bytes() {
    for (profile, format) in [
        (Profile::Golden, Format::PcapNg),
        (Profile::Enterprise, Format::Pcap),
        (Profile::Flood, Format::PcapNs),
    ] {
        let o = opts(60_000, 11, 256);
        let a = bytes_of(profile, &o, format);
        let b = bytes_of(profile, &o, format);
        assert!(a == b, "{profile:?} differs between runs");
        if profile != Profile::Golden {
            let c = bytes_of(profile, &opts(60_000, 12, 256), format);
            assert!(a != c, "{profile:?}: the seed changes nothing");
        }
    }
}

// ---------------------------------------------------------------- enterprise

#[test]
fn enterprise_frames_have_valid_checksums() {
    let mut c = Collect::default();
    enterprise(&mut c, &opts(30_000, 4, 65535)).unwrap();
    assert_eq!(c.recs.len(), 30_000);
    for (_, data, wire) in &c.recs {
        assert_eq!(data.len(), *wire);
        check_frame(data);
    }
}

/// The mix measured on a 1M-frame capture, classified by etherparse, is within
/// 20% (relative) of each target, and agrees exactly with the truth file.
#[test]
fn enterprise_mix_matches_targets() {
    let n = 1_000_000;
    let mut cl = Classify::default();
    let truth = enterprise(&mut cl, &opts(n, 1, 256)).unwrap();
    let c = cl.counts;
    assert_eq!(c.total, n);
    assert_eq!(c, truth.frames, "etherparse and the generator disagree");
    let share = |v: u64| v as f64 / n as f64;
    let checks = [
        ("mid-connection TCP", share(c.tcp_other), target::TCP_OTHER),
        ("SYN", share(c.tcp_syn), target::SYN),
        ("SYN-ACK", share(c.tcp_syn_ack), target::SYN_ACK),
        ("RST", share(c.tcp_rst), target::RST),
        ("FIN", share(c.tcp_fin), target::FIN),
        (
            "ICMP unreachable",
            share(c.icmp_unreach),
            target::ICMP_UNREACH,
        ),
        ("DNS", share(c.udp_dns), target::DNS),
        ("IPv6", share(c.ipv6), target::IPV6),
        ("802.1Q", share(c.vlan), target::VLAN),
        (
            "conversations",
            share(truth.conversations),
            target::CONVERSATIONS,
        ),
    ];
    for (name, got, want) in checks {
        assert!(
            within(got, want, 0.2),
            "{name}: {:.3}% vs target {:.3}%",
            got * 100.0,
            want * 100.0
        );
    }
    // About n/1500 connections in progress at capture start (~10k at 15M).
    assert_eq!(truth.tcp_in_progress_at_start, n / 1500);
    let t = truth.tcp_attempts;
    assert_eq!(
        t.started,
        t.success + t.rejected + t.icmp_unreachable + t.unanswered
    );
    assert!(t.rejected > 0 && t.unanswered > 0 && t.icmp_unreachable > 0);
    // Every scanner is present: its SYNs in the capture equal its probes.
    assert_eq!(truth.scanners.len(), 4);
    for s in &truth.scanners {
        let ip: IpAddr = s.ip.parse().unwrap();
        let syns = cl.syn_src.iter().filter(|&&a| a == ip).count() as u64;
        assert_eq!(syns, s.probes, "scanner {}", s.ip);
        assert!(s.probes > 0);
        assert_eq!(s.probes, s.syn_ack + s.rst + s.icmp + s.unanswered);
    }
    let sweep = &truth.scanners[0];
    assert_eq!((sweep.kind.as_str(), sweep.probes), ("tcp_sweep", 1024));
    let vertical = &truth.scanners[1];
    assert_eq!(
        (vertical.probes, vertical.syn_ack, vertical.rst),
        (1000, 6, 991)
    );
    // JSON has the documented shape.
    let json = serde_json::to_value(&truth).unwrap();
    assert_eq!(json["profile"], "enterprise");
    assert_eq!(json["frames"]["total"], n);
    assert_eq!(json["scanners"][1]["ip"], "10.66.1.10");
}

// ------------------------------------------------------------------- flood

#[test]
fn flood_is_small_syn_heavy_and_keeps_scanners_findable() {
    let n = 300_000;
    let mut cl = Classify {
        keys: Some(HashSet::new()),
        ..Classify::default()
    };
    let truth = flood(&mut cl, &opts(n, 1, 256)).unwrap();
    let c = cl.counts;
    assert_eq!(c, truth.frames);
    // Every frame is 60 bytes on the wire.
    assert_eq!(cl.sizes.iter().copied().collect::<Vec<_>>(), vec![60]);
    let syn = c.tcp_syn as f64 / n as f64;
    assert!(within(syn, 0.71, 0.05), "SYN share {syn}");
    // ~10.6M distinct 5-tuples per 15M frames.
    let distinct = cl.keys.as_ref().unwrap().len() as f64 / n as f64;
    assert!(
        within(distinct, 10.6 / 15.0, 0.05),
        "distinct 5-tuples per frame {distinct}"
    );
    // The masscans are where the truth says, with every probe accounted for.
    assert_eq!(truth.scanners.len(), 3);
    for (s, (ip, ..)) in truth.scanners.iter().zip(flood::MASSCANS) {
        assert_eq!(s.ip, ip.to_string());
        let syns = cl.syn_src.iter().filter(|&&a| a == IpAddr::V4(ip)).count() as u64;
        assert_eq!(syns, s.probes);
        assert!(s.probes > 20_000);
    }
    let flood_syns: u64 = truth.floods.iter().map(|f| f.syns).sum();
    assert!(within(flood_syns as f64 / n as f64, 0.305, 0.05));
}

#[test]
fn masscan_never_repeats_a_target() {
    let mut c = Collect::default();
    flood(&mut c, &opts(200_000, 2, 256)).unwrap();
    let mut seen = HashSet::new();
    for (_, data, _) in &c.recs {
        if let (p, Some(k)) = decode(data)
            && let Some(TransportSlice::Tcp(t)) = &p.transport
            && t.syn()
            && !t.ack()
            && t.window_size() == 1024
        {
            assert!(seen.insert((k.src, k.dst, k.dport)), "repeated probe {k:?}");
            if let IpAddr::V4(d) = k.dst {
                assert_eq!(d.octets()[0], 10);
            }
        }
    }
    assert!(seen.len() > 50_000);
}

/// `pcaps/golden.pcap` and `pcaps/golden.json` are what the generator makes
/// today (regenerate them as pcaps/README.md says when the scenario changes).
#[test]
fn committed_golden_is_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let pcap = std::fs::read(dir.join("golden.pcap")).expect("pcaps/golden.pcap is committed");
    let json = std::fs::read(dir.join("golden.json")).expect("pcaps/golden.json is committed");
    let o = GenOptions {
        packets: 1_000_000,
        seed: 1,
        snaplen: Profile::Golden.default_snaplen(),
    };
    let mut w = CaptureWriter::new(Vec::new(), Format::Pcap, o.snaplen, LINKTYPE_ETHERNET).unwrap();
    let truth = golden(&mut w, &o).unwrap();
    assert!(w.finish().unwrap() == pcap, "pcaps/golden.pcap is stale");
    let committed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        serde_json::to_value(&truth).unwrap(),
        committed,
        "pcaps/golden.json is stale"
    );
}
