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
        ..GenOptions::default()
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
    let cases: [(Profile, Format, u64, u32); 5] = [
        (Profile::Golden, Format::Pcap, 0, 65535),
        (Profile::Golden, Format::PcapNg, 0, 65535),
        (Profile::Enterprise, Format::PcapNs, 3000, 65535),
        (Profile::Flood, Format::PcapNg, 3000, 256),
        (Profile::Multiday, Format::Pcap, 0, 65535),
    ];
    for (profile, format, packets, snaplen) in cases {
        let path = dir.join(format!("{}.{format}", profile.name()));
        let mut w = CaptureWriter::create(&path, format, snaplen).unwrap();
        // Multiday: the day the first new scanners appear (ARP and ICMP
        // included), and the one before.
        let o = GenOptions {
            day_range: Some((14, 16)),
            ..opts(packets, 5, snaplen)
        };
        let truth = generate(profile, &o, &mut w).unwrap();
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
        if profile == Profile::Multiday {
            assert_eq!(run("_ws.malformed"), 0, "malformed frames in {path:?}");
            // Sequence numbers add up: no segment acknowledged unseen, none
            // missing.
            let odd = "tcp.analysis.ack_lost_segment || tcp.analysis.lost_segment \
                       || tcp.analysis.out_of_order";
            assert_eq!(run(odd), 0, "TCP sequence anomalies in {path:?}");
        }
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
        ..GenOptions::default()
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

// ---------------------------------------------------------------- multiday

fn md(first: u32, end: u32, seed: u64, snaplen: u32) -> GenOptions {
    GenOptions {
        seed,
        snaplen,
        days: end,
        day_range: Some((first, end)),
        ..GenOptions::default()
    }
}

/// The records of a pcap file, without its 24-byte header.
fn records(file: &[u8]) -> &[u8] {
    &file[24..]
}

#[test]
fn multiday_is_deterministic_and_seeded() {
    let o = GenOptions {
        days: 16,
        snaplen: 96,
        seed: 3,
        ..GenOptions::default()
    };
    let a = bytes_of(Profile::Multiday, &o, Format::Pcap);
    let b = bytes_of(Profile::Multiday, &o, Format::Pcap);
    assert!(a == b, "multiday differs between runs");
    // --days N is the range 0..N.
    let c = bytes_of(Profile::Multiday, &md(0, 16, 3, 96), Format::Pcap);
    assert!(a == c);
    let d = bytes_of(
        Profile::Multiday,
        &GenOptions { seed: 4, ..o },
        Format::Pcap,
    );
    assert!(a != d, "the seed changes nothing");
}

/// Days generated apart and concatenated are exactly the days generated in
/// one go, record for record and byte for byte.
#[test]
fn multiday_day_ranges_concatenate() {
    let started = std::time::Instant::now();
    let whole = bytes_of(Profile::Multiday, &md(0, 45, 7, 96), Format::Pcap);
    let secs = started.elapsed().as_secs_f64();
    #[cfg(not(debug_assertions))]
    assert!(secs < 2.0, "45 days took {secs:.2} s");
    let _ = secs;
    for cuts in [&[0u32, 20, 45][..], &[0, 1, 15, 16, 31, 44, 45]] {
        let mut joined = Vec::new();
        for w in cuts.windows(2) {
            let part = bytes_of(Profile::Multiday, &md(w[0], w[1], 7, 96), Format::Pcap);
            joined.extend_from_slice(records(&part));
        }
        assert!(joined == records(&whole), "split at {cuts:?} differs");
    }
    // The records read back in order, with every day in its own 24 hours.
    let (snaplen, recs) = read_capture(&whole);
    assert_eq!(snaplen, 96);
    assert!(
        recs.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps go back"
    );
    assert_eq!(recs[0].0 / multiday::DAY, multiday::DAY0_NS / multiday::DAY);
    assert!(recs.last().unwrap().0 < multiday::day_start(45));
    // An empty range is an empty capture; a range past the limit an error.
    let empty = bytes_of(Profile::Multiday, &md(5, 5, 7, 96), Format::Pcap);
    assert_eq!(empty.len(), 24);
    let mut w = CaptureWriter::new(Vec::new(), Format::Pcap, 96, LINKTYPE_ETHERNET).unwrap();
    assert!(multiday(&mut w, &md(6, 5, 7, 96)).is_err());
    assert!(multiday(&mut w, &md(0, multiday::MAX_DAYS + 1, 7, 96)).is_err());
}

/// Checks every frame as it is generated: etherparse parses it, every
/// checksum verifies, timestamps never go back.
struct CheckAll {
    classify: Classify,
}

impl Sink for CheckAll {
    fn packet(&mut self, ts: i64, data: &[u8], wire_len: usize) -> io::Result<()> {
        assert_eq!(data.len(), wire_len, "frame cut");
        check_frame(data);
        self.classify.packet(ts, data, wire_len)
    }
}

#[test]
fn multiday_frames_decode_with_valid_checksums() {
    let mut c = CheckAll {
        classify: Classify::default(),
    };
    let truth = multiday(&mut c, &md(0, 45, 1, 65535)).unwrap();
    assert_eq!(
        c.classify.counts, truth.frames,
        "etherparse and the generator disagree"
    );
    let f = truth.frames;
    assert!(f.ipv6 > 0 && f.arp > 0 && f.udp_dns > 0 && f.icmp_unreach > 0 && f.icmp_other > 0);
    // ICMP errors quote packets sent before them (days with the scanners).
    for (a, b) in [(14, 16), (24, 26), (39, 41)] {
        let mut col = Collect::default();
        let truth = multiday(&mut col, &md(a, b, 1, 65535)).unwrap();
        assert_eq!(check_quotes(&col.recs) as u64, truth.frames.icmp_unreach);
    }
    // At snaplen 96 every frame is cut to at most 96 bytes and still decodes.
    let mut cl = Classify::default();
    let truth = multiday(&mut cl, &md(0, 16, 1, 96)).unwrap();
    assert_eq!(cl.counts, truth.frames);
}

/// A decoded frame, enough for the daily facts.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    ts: i64,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    what: What,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Syn,
    SynAck,
    Rst,
    Tcp,
    Udp,
    Unreach,
    EchoRequest,
    ArpRequest,
    ArpReply,
}

fn pkt(ts: i64, data: &[u8]) -> Pkt {
    let p = LaxSlicedPacket::from_ethernet(data).unwrap();
    if let Some(LaxNetSlice::Arp(a)) = &p.net {
        let ip = |b: &[u8]| IpAddr::from(<[u8; 4]>::try_from(b).unwrap());
        let what = if a.operation() == etherparse::ArpOperation::REQUEST {
            What::ArpRequest
        } else {
            What::ArpReply
        };
        return Pkt {
            ts,
            src: ip(a.sender_protocol_addr()),
            dst: ip(a.target_protocol_addr()),
            sport: 0,
            dport: 0,
            what,
        };
    }
    let k = decode(data).1.expect("IP frame");
    let what = match &p.transport {
        Some(TransportSlice::Tcp(t)) if t.rst() => What::Rst,
        Some(TransportSlice::Tcp(t)) if t.syn() && t.ack() => What::SynAck,
        Some(TransportSlice::Tcp(t)) if t.syn() => What::Syn,
        Some(TransportSlice::Tcp(_)) => What::Tcp,
        Some(TransportSlice::Udp(_)) => What::Udp,
        Some(TransportSlice::Icmpv4(i)) if i.type_u8() == 3 => What::Unreach,
        Some(TransportSlice::Icmpv4(i)) if i.type_u8() == 8 => What::EchoRequest,
        other => panic!("unexpected frame {other:?}"),
    };
    Pkt {
        ts,
        src: k.src,
        dst: k.dst,
        sport: k.sport,
        dport: k.dport,
        what,
    }
}

fn a4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::from([a, b, c, d])
}

/// The scenario's daily facts, measured on a 45-day capture at the default
/// snaplen.
#[test]
fn multiday_daily_facts() {
    use multiday::{
        CHURN_NEW, CHURN_NEW_FIRST_DAY, CHURN_OLD, CHURN_OLD_LAST_DAY, DECOMMISSIONED,
        DECOMMISSIONED_LAST_DAY, DECOMMISSIONED_USERS, SERVERS, clients_on, day_start,
    };
    let mut col = Collect::default();
    let truth = multiday(&mut col, &md(0, 45, 1, 96)).unwrap();
    let all: Vec<Pkt> = col.recs.iter().map(|(ts, d, _)| pkt(*ts, d)).collect();
    let mdt = truth.multiday.as_ref().unwrap();
    assert_eq!((mdt.first_day, mdt.end_day, mdt.daily.len()), (0, 45, 45));

    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (monitor, dead, gw) = (ip("10.10.3.5"), ip("10.10.1.250"), ip("10.10.0.1"));
    let nightly = ip("10.10.9.9");
    let (s66, s77, s88, s99) = (
        a4(10, 10, 2, 66),
        a4(10, 10, 2, 77),
        a4(10, 10, 2, 88),
        a4(10, 10, 2, 99),
    );
    let in_net = |a: IpAddr, c: u8| matches!(a, IpAddr::V4(v) if v.octets()[..3] == [10, 10, c]);
    let hour = |p: &Pkt, t0: i64| (p.ts - t0) as f64 / 3.6e12;

    let mut scanner_syns = [0u64; 4];
    let mut prev = 0usize;
    for d in 0..45u32 {
        let t0 = day_start(d);
        let end = prev
            + all[prev..]
                .iter()
                .take_while(|p| p.ts < day_start(d + 1))
                .count();
        let day = &all[prev..end];
        prev = end;
        let facts = &mdt.daily[d as usize];
        assert_eq!(facts.day, d);
        assert_eq!(
            day.len() as u64,
            facts.frames,
            "day {d}: frames outside their day"
        );
        assert!(day.iter().all(|p| p.ts >= t0));
        let count = |f: &dyn Fn(&Pkt) -> bool| day.iter().filter(|p| f(p)).count();

        // Monitoring: 48 checks, each a SYN and one retransmission 1 s later;
        // the dead host never says anything.
        let checks: HashSet<u16> = day
            .iter()
            .filter(|p| p.src == monitor && p.dst == dead && p.dport == 443 && p.what == What::Syn)
            .map(|p| p.sport)
            .collect();
        assert_eq!(checks.len(), 48, "day {d}");
        assert_eq!(count(&|p| p.src == monitor && p.what == What::Syn), 96);
        assert_eq!(count(&|p| p.src == dead || p.dst == monitor), 0);
        assert_eq!(facts.monitor_attempts, 48);

        // Servers: every live one answers a client in the morning and in the
        // afternoon; the decommissioned one answers on days 0-2, then is silent.
        for s in 1..=SERVERS {
            let srv = a4(10, 10, 1, s);
            for (lo, hi) in [(6.0, 12.0), (12.0, 20.0)] {
                assert!(
                    day.iter().any(|p| p.src == srv
                        && p.what == What::SynAck
                        && in_net(p.dst, 2)
                        && (lo..hi).contains(&hour(p, t0))),
                    "day {d}: server {srv} not contacted in {lo}-{hi} h"
                );
            }
        }
        let decom = a4(10, 10, 1, DECOMMISSIONED);
        let from_decom = count(&|p| p.src == decom);
        // Each attempt is a Windows SYN sent 3 times (+1 s, +3 s).
        let decom_syns =
            |u: u8| count(&|p| p.src == a4(10, 10, 2, u) && p.dst == decom && p.what == What::Syn);
        let all_decom = count(&|p| p.dst == decom && p.what == What::Syn && in_net(p.src, 2));
        if d <= DECOMMISSIONED_LAST_DAY {
            assert!(from_decom > 0);
            assert_eq!(facts.decommissioned_attempts, 0);
        } else {
            assert_eq!(from_decom, 0, "day {d}: 10.10.1.41 answers");
            let mut users = 0;
            for u in DECOMMISSIONED_USERS {
                let n = decom_syns(u);
                assert!(
                    n % 3 == 0 && (2..=4).contains(&(n / 3)),
                    "day {d}: user {u}: {n} SYNs"
                );
                users += n;
            }
            assert_eq!(users, all_decom, "day {d}: others try 10.10.1.41");
            assert_eq!(all_decom as u64, 3 * facts.decommissioned_attempts);
        }

        // Clients: exactly the day's clients complete a connection.
        let connected: HashSet<IpAddr> = day
            .iter()
            .filter(|p| p.what == What::SynAck && in_net(p.src, 1) && in_net(p.dst, 2))
            .map(|p| p.dst)
            .collect();
        let want: HashSet<IpAddr> = clients_on(d).iter().map(|&c| a4(10, 10, 2, c)).collect();
        assert_eq!(connected, want, "day {d}: clients");
        let churn_old = a4(10, 10, 2, CHURN_OLD);
        let churn_new = a4(10, 10, 2, CHURN_NEW);
        assert_eq!(
            count(&|p| p.src == churn_old || p.dst == churn_old) > 0,
            d <= CHURN_OLD_LAST_DAY
        );
        assert_eq!(
            count(&|p| p.src == churn_new || p.dst == churn_new) > 0,
            d >= CHURN_NEW_FIRST_DAY
        );

        // About 150 successful connections (IPv4 and IPv6), a diurnal pattern,
        // 1-2 rejected attempts (each a Windows SYN sent 3 times, 3 RSTs).
        let conns = count(&|p| {
            p.what == What::SynAck
                && p.dst != nightly
                && (in_net(p.src, 1) || matches!(p.src, IpAddr::V6(_)))
        });
        assert_eq!(conns as u64, facts.connections);
        assert!((140..=300).contains(&conns), "day {d}: {conns} connections");
        let ipv6 = count(&|p| p.what == What::SynAck && matches!(p.src, IpAddr::V6(_)));
        assert_eq!(ipv6, 4);
        let work = count(&|p| {
            p.what == What::Syn
                && in_net(p.src, 2)
                && in_net(p.dst, 1)
                && (8.0..18.0).contains(&hour(p, t0))
        });
        let night = count(&|p| {
            p.what == What::Syn
                && in_net(p.src, 2)
                && in_net(p.dst, 1)
                && !(6.0..20.0).contains(&hour(p, t0))
        });
        assert!(
            work > 10 * night.max(1),
            "day {d}: no diurnal pattern ({work} vs {night})"
        );
        let rejected = count(&|p| p.what == What::Rst && in_net(p.src, 1) && in_net(p.dst, 2));
        assert_eq!(rejected as u64, 3 * facts.rejected);
        assert!((1..=2).contains(&facts.rejected));

        // DNS and ARP with the gateway are always answered.
        let q = count(&|p| p.what == What::Udp && p.dport == 53);
        let r = count(&|p| p.what == What::Udp && p.sport == 53);
        assert!(q > 5 && q == r && q as u64 == facts.dns);
        let gw_req = count(&|p| p.what == What::ArpRequest && (p.dst == gw || p.src == gw));
        let gw_rep = count(&|p| p.what == What::ArpReply && (p.src == gw || p.dst == gw));
        assert!(gw_req >= 4 && gw_req == gw_rep && gw_req as u64 == facts.arp);

        // The sanctioned scanner: 1024 SYNs between 02:00 and 02:21, one per
        // (address, port) of 10.10.1.0/24 and 10.10.4.0/24 x {22, 445}.
        let probes: Vec<&Pkt> = day
            .iter()
            .filter(|p| p.src == nightly && p.what == What::Syn)
            .collect();
        assert_eq!(probes.len(), 1024, "day {d}");
        assert!(probes.iter().all(|p| (2.0..2.35).contains(&hour(p, t0))));
        let targets: HashSet<(IpAddr, u16)> = probes.iter().map(|p| (p.dst, p.dport)).collect();
        assert_eq!(targets.len(), 1024);
        assert!(
            targets
                .iter()
                .all(|&(a, port)| (in_net(a, 1) || in_net(a, 4)) && (port == 22 || port == 445))
        );
        let answers = count(&|p| p.dst == nightly && in_net(p.src, 1));
        assert_eq!(answers, 80 + 2 * (d <= DECOMMISSIONED_LAST_DAY) as usize);
        assert!(
            day.iter()
                .filter(|p| p.dst == nightly && p.what == What::Unreach)
                .all(|p| p.src == gw)
        );

        // The new scanners, on their day only; on every other day their
        // SYNs all succeed.
        let syns_to = |src: IpAddr, net: &[u8]| {
            count(&|p| p.src == src && p.what == What::Syn && net.iter().any(|&c| in_net(p.dst, c)))
        };
        let n66 = syns_to(s66, &[5, 6]);
        let arp66 = count(&|p| p.src == s66 && p.what == What::ArpRequest && p.dst != gw);
        let n77 = syns_to(s77, &[7]);
        let n88 = syns_to(s88, &[8]);
        let n99 = syns_to(s99, &[4]);
        let scan_day = |sd: u32| if d == sd { 1 } else { 0 };
        assert_eq!(
            (n66, arp66),
            (1024 * scan_day(15), 100 * scan_day(15)),
            "day {d}"
        );
        assert_eq!(n88, 1024 * scan_day(25), "day {d}");
        assert_eq!(n99, 256 * scan_day(40), "day {d}");
        if d == 15 {
            assert!((60..=100).contains(&n77), "{n77} slow probes");
            let slow: Vec<&Pkt> = day
                .iter()
                .filter(|p| p.src == s77 && p.what == What::Syn && in_net(p.dst, 7))
                .collect();
            assert!(slow.iter().all(|p| (12.0..18.0).contains(&hour(p, t0))));
            assert!(
                slow.windows(2)
                    .all(|w| (180..=360).contains(&((w[1].ts - w[0].ts) / SEC)))
            );
            assert_eq!(
                slow.iter().map(|p| p.dst).collect::<HashSet<_>>().len(),
                slow.len()
            );
            // Nobody answers the sweeps; the ARP targets are unused addresses.
            assert_eq!(
                count(&|p| p.dst == s66 && (in_net(p.src, 5) || in_net(p.src, 6))),
                0
            );
            assert_eq!(count(&|p| p.what == What::ArpReply && p.dst == s66), 0);
            assert_eq!(count(&|p| p.dst == s77 && in_net(p.src, 7)), 0);
        } else {
            assert_eq!(n77, 0);
        }
        if d == 25 {
            let target = a4(10, 10, 8, 8);
            assert_eq!(
                count(&|p| p.src == target && p.what == What::Rst && p.dst == s88),
                1024
            );
            let ports: HashSet<u16> = day
                .iter()
                .filter(|p| p.src == s88 && p.dst == target && p.what == What::Syn)
                .map(|p| p.dport)
                .collect();
            assert_eq!(ports, (1..=1024).collect());
            assert_eq!(count(&|p| p.src == s88 && p.what == What::EchoRequest), 254);
            assert_eq!(
                count(&|p| p.src == gw && p.dst == s88 && p.what == What::Unreach),
                253
            );
        }
        for (s, sd) in [(s66, 15), (s77, 15), (s88, 25), (s99, 40)] {
            let syns: HashSet<(IpAddr, u16)> = day
                .iter()
                .filter(|p| p.src == s && p.what == What::Syn)
                .map(|p| (p.dst, p.sport))
                .collect();
            // Answered by SYN-ACK, or by a live server's RST (the benign
            // closed-port attempts may come from any client).
            let answered: HashSet<(IpAddr, u16)> = day
                .iter()
                .filter(|p| {
                    p.dst == s
                        && (p.what == What::SynAck || (p.what == What::Rst && in_net(p.src, 1)))
                })
                .map(|p| (p.src, p.dport))
                .collect();
            if d != sd {
                assert!(!syns.is_empty() && syns == answered, "day {d}: {s} fails");
            }
        }
        scanner_syns[0] += n66 as u64;
        scanner_syns[1] += n77 as u64;
        scanner_syns[2] += n88 as u64;
        scanner_syns[3] += n99 as u64;
    }
    assert_eq!(prev, all.len());

    // The truth file: scanners with the probes measured, benign actors never
    // alerted, one alert per new scanner on its day.
    type Row<'a> = (&'a str, &'a str, Option<bool>, Option<u32>, u64);
    let sc: Vec<Row> = truth
        .scanners
        .iter()
        .map(|s| {
            (
                s.ip.as_str(),
                s.kind.as_str(),
                s.sanctioned,
                s.first_day,
                s.probes,
            )
        })
        .collect();
    assert_eq!(
        sc,
        vec![
            ("10.10.9.9", "tcp_sweep", Some(true), Some(0), 45 * 1024),
            (
                "10.10.2.66",
                "tcp_sweep",
                Some(false),
                Some(15),
                scanner_syns[0]
            ),
            ("10.10.2.66", "arp_sweep", Some(false), Some(15), 100),
            (
                "10.10.2.77",
                "tcp_slow",
                Some(false),
                Some(15),
                scanner_syns[1]
            ),
            (
                "10.10.2.88",
                "tcp_vertical",
                Some(false),
                Some(25),
                scanner_syns[2]
            ),
            ("10.10.2.88", "icmp_sweep", Some(false), Some(25), 254),
            (
                "10.10.2.99",
                "tcp_sweep",
                Some(false),
                Some(40),
                scanner_syns[3]
            ),
        ]
    );
    for s in &truth.scanners {
        assert_eq!(
            s.probes,
            s.syn_ack + s.rst + s.icmp + s.unanswered,
            "{}",
            s.ip
        );
        assert_eq!(s.expect_alert, Some(!s.sanctioned.unwrap()));
    }
    let alerts: Vec<(u32, &str)> = mdt
        .expected_alerts
        .iter()
        .map(|a| (a.day, a.ip.as_str()))
        .collect();
    assert_eq!(
        alerts,
        vec![
            (15, "10.10.2.66"),
            (15, "10.10.2.77"),
            (25, "10.10.2.88"),
            (40, "10.10.2.99")
        ]
    );
    assert!(
        mdt.expected_alerts
            .iter()
            .all(|a| a.day >= mdt.activation_days)
    );
    assert!(mdt.benign.iter().all(|b| !b.expect_alert));
    let monitor_truth = &mdt.benign[0];
    assert_eq!(
        (monitor_truth.ip.as_str(), monitor_truth.failed_attempts),
        ("10.10.3.5", 45 * 48)
    );
    let decom: u64 = mdt.daily.iter().map(|d| d.decommissioned_attempts).sum();
    assert_eq!(
        decom,
        mdt.benign[1..4]
            .iter()
            .map(|b| b.failed_attempts)
            .sum::<u64>()
    );
    let t = truth.tcp_attempts;
    assert_eq!(t.started, t.success + t.rejected + t.unanswered);
    assert!(truth.notes.len() >= 5);
}

/// The truth of a partial capture lists only what it covers.
#[test]
fn multiday_truth_follows_the_day_range() {
    let summary = |a, b| {
        let mut cl = Classify::default();
        let truth = multiday(&mut cl, &md(a, b, 1, 96)).unwrap();
        let scanners: Vec<String> = truth
            .scanners
            .iter()
            .map(|s| format!("{} {}", s.ip, s.kind))
            .collect();
        let m = truth.multiday.unwrap();
        let alerts: Vec<u32> = m.expected_alerts.iter().map(|a| a.day).collect();
        assert_eq!(m.daily.first().map(|d| d.day), (a < b).then_some(a));
        assert_eq!(m.daily.len() as u32, b - a);
        assert_eq!(
            truth.frames.total,
            m.daily.iter().map(|d| d.frames).sum::<u64>()
        );
        if a < b {
            assert!(truth.first_ts_ns >= multiday::day_start(a));
            assert!(truth.last_ts_ns < multiday::day_start(b));
        }
        (scanners, alerts)
    };
    let (s, a) = summary(0, 14);
    assert_eq!((s, a), (vec!["10.10.9.9 tcp_sweep".to_string()], vec![]));
    let (s, a) = summary(0, 16);
    assert_eq!(s.len(), 4);
    assert_eq!(a, vec![15, 15]);
    let (s, a) = summary(20, 30);
    assert_eq!(
        s,
        vec![
            "10.10.9.9 tcp_sweep",
            "10.10.2.88 tcp_vertical",
            "10.10.2.88 icmp_sweep"
        ]
    );
    assert_eq!(a, vec![25]);
    let (s, a) = summary(16, 16);
    assert!(s.is_empty() && a.is_empty());
}

/// `pcaps/demo-16d.pcap` and `pcaps/demo-16d.json` are what
/// `scanwatch-synth multiday --days 16` makes today.
#[test]
fn committed_multiday_demo_is_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let pcap = std::fs::read(dir.join("demo-16d.pcap")).expect("pcaps/demo-16d.pcap is committed");
    let json = std::fs::read(dir.join("demo-16d.json")).expect("pcaps/demo-16d.json is committed");
    // What the CLI passes for `multiday --days 16`.
    let o = GenOptions {
        packets: 1_000_000,
        seed: 1,
        snaplen: Profile::Multiday.default_snaplen(),
        days: 16,
        day_range: None,
    };
    let mut w = CaptureWriter::new(Vec::new(), Format::Pcap, o.snaplen, LINKTYPE_ETHERNET).unwrap();
    let truth = generate(Profile::Multiday, &o, &mut w).unwrap();
    let bytes = w.finish().unwrap();
    assert!(
        (1_000_000..3_000_000).contains(&bytes.len()),
        "the demo is {} bytes",
        bytes.len()
    );
    assert!(bytes == pcap, "pcaps/demo-16d.pcap is stale");
    let committed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        serde_json::to_value(&truth).unwrap(),
        committed,
        "pcaps/demo-16d.json is stale"
    );
}
