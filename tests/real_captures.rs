//! Inference on real third-party captures (../shared/pcaps/real), checked
//! against the counts PROVENANCE.md states (measured there with tshark).
//!
//! PROVENANCE.md counts one attempt per distinct (src, sport, dst, dport) of a
//! SYN; scanwatch counts one per 5-tuple *and ISN* (a client that gives up and
//! reconnects from the same port with a new ISN makes a new attempt). Where the
//! two differ, the row says why.

mod common;
use common::*;

/// (file, SYN attempts, answered by SYN-ACK, rejected, unreachable, unanswered)
/// for SYN probes; `successes` includes capture gaps (none of these files has a
/// SYN-ACK missing from an answered attempt, except where noted).
const SYN_ROWS: &[(&str, u64, u64, usize, usize, usize)] = &[
    // nmap -sS of one host: 1002 attempts, 5 open, 995 closed, 2 unanswered.
    ("nmap-syn-scan-evilfingers.pcap", 1002, 5, 995, 0, 2),
    // nmap -sT (connect): 2012 attempts (retransmissions excluded: 5147 SYN packets).
    ("nmap-connect-scan-evilfingers.pcap", 2012, 22, 1983, 0, 7),
    ("nmap-ftp-bounce-scan-evilfingers.pcap", 1003, 6, 996, 0, 1),
    // PROVENANCE: 7427 attempts / 6002 RST. nmap reused source port 36136 to
    // 10.42.42.56:1 two seconds later with a new ISN (1405980936, then
    // 1040205397), which is a second attempt here, also rejected: 7428 / 6003.
    (
        "nmap-syn-scan-3hosts-forensicscontest-puzzle4.pcap",
        7428,
        27,
        6003,
        0,
        1398,
    ),
    // pcapng: 1000 ports, mostly filtered.
    (
        "nmap-syn-scan-1000ports-mostly-filtered-chrissanders.pcapng",
        1994,
        3,
        5,
        0,
        1986,
    ),
    ("xscan-vuln-scanner-evilfingers.pcap", 632, 382, 250, 0, 0),
    ("xprobe2-tcp-scan-evilfingers.pcap", 149, 5, 144, 0, 0),
    (
        "xprobe2-udp-scan-icmp-port-unreach-evilfingers.pcap",
        2,
        0,
        2,
        0,
        0,
    ),
    ("portscan-29syn-unanswered-ppa1e.pcap", 29, 0, 0, 0, 29),
    ("tcp-syn-refused-rst-chrissanders.pcapng", 1, 0, 1, 0, 0),
    // 802.1Q-tagged masscan: 1001 SYNs, no answer captured.
    ("masscan-tcp-0-1000-vlan-esnet.pcap", 1001, 0, 0, 0, 1001),
    (
        "nmap-A-port80-icmp-admin-prohibited-esnet.pcap",
        35,
        35,
        0,
        0,
        0,
    ),
    (
        "syn-portscan-1-10000-scanner-side-only-sgr.pcapng",
        10003,
        0,
        0,
        0,
        10003,
    ),
    (
        "tcp-syn-ping-sweep-256hosts-unanswered-sgr.pcap",
        511,
        0,
        0,
        0,
        511,
    ),
    ("nmap-version-scan-7hosts-zeek.pcap", 17, 3, 6, 0, 8),
    // IPv6 SYNs answered by ICMPv6 no-route: 10 SYN packets, 2 attempts.
    (
        "ipv6-syn-icmpv6-no-route-suricata-verify.pcap",
        2,
        0,
        0,
        2,
        0,
    ),
    (
        "syn-flood-spoofed-sources-stopddos.pcap",
        37669,
        0,
        0,
        0,
        37669,
    ),
    ("synack-reflection-backscatter-stopddos.pcap", 1, 0, 0, 0, 1),
    // PROVENANCE: 9 attempts (8 source ports to :4445 + 1 to :4444), 7 rejected,
    // 2 by SYN-ACK. The Windows client re-sends each SYN 3 times after a RST
    // (same ISN, one attempt), then retries with a new ISN: 5 ISNs on each of 8
    // source ports = 40 attempts to :4445, all rejected, plus the one to :4444.
    // On port 1044 the fifth ISN's third SYN found the listener up (SYN-ACK at
    // 123.67 s) after two RSTs: `rejected` was reported at the first RST, and
    // the attempt is counted as a success too: 2 successes.
    (
        "repeated-rst-to-one-port-forensicscontest-puzzle6.pcap",
        41,
        2,
        40,
        0,
        0,
    ),
    // Benign browsing: every attempt answered.
    (
        "benign-http-espn-browsing-chrissanders.pcapng",
        25,
        25,
        0,
        0,
        0,
    ),
    ("benign-wikipedia-browsing-zeek.pcap", 8, 8, 0, 0, 0),
    ("benign-http-bro-org-browsing-zeek.pcap", 13, 13, 0, 0, 0),
    (
        "benign-appletv-browsing-forensicscontest-puzzle3.pcap",
        20,
        20,
        0,
        0,
        0,
    ),
    ("benign-teams-call-ndpi.pcap", 38, 38, 0, 0, 0),
    // PROVENANCE: 121 attempts, 116 SYN-ACKed. Frame 1313 re-sends a SYN after
    // its SYN-ACK was seen (tcp.stream 64); the tracker forgets successful
    // attempts at once (to hold no state per healthy connection), so that SYN
    // is a second attempt, answered too: 122 / 117. The failures agree.
    ("benign-alexa-app-ndpi.pcapng", 122, 117, 2, 0, 3),
    // P2P with many dead peers: 61 answered, 7 refused, 2 ICMP, 67 silent.
    (
        "benign-p2p-gnutella-many-failed-peers-ndpi.pcap",
        137,
        61,
        7,
        2,
        67,
    ),
    // Linux cooked v1 and v2.
    ("benign-linux-sll-kakaotalk-ndpi.pcap", 4, 4, 0, 0, 0),
    ("benign-linux-sll2-http-suricata-verify.pcap", 1, 1, 0, 0, 0),
    // VLAN-tagged; the SYN is retransmitted once then answered: one attempt.
    (
        "benign-vlan-syn-retransmit-suricata-verify.pcap",
        1,
        1,
        0,
        0,
        0,
    ),
];

#[test]
fn syn_attempts_and_outcomes_match_provenance() {
    let mut bad = Vec::new();
    for &(file, attempts, answered, rej, unr, s0) in SYN_ROWS {
        let (out, bytes) = run(&[real(file)], 2);
        assert!(out.problems.is_empty(), "{file}: {:?}", out.problems);
        let ev = events(&bytes);
        let t = &out.stats.track;
        let got = (
            t.syn_attempts,
            t.successes,
            count(&ev, "rejected", "syn"),
            count(&ev, "unreachable", "syn"),
            count(&ev, "unanswered", "syn"),
        );
        if got != (attempts, answered, rej, unr, s0) {
            bad.push(format!(
                "{file}: got {got:?}, expected {:?}",
                (attempts, answered, rej, unr, s0)
            ));
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

#[test]
fn udp_scan_port_unreachables_are_failed_attempts() {
    // nmap -sU: 993 ICMP port-unreachables, each quoting a distinct UDP probe.
    let (_, bytes) = run(
        &[real("nmap-udp-scan-icmp-port-unreach-evilfingers.pcap")],
        1,
    );
    let ev = events(&bytes);
    assert_eq!(count(&ev, "unreachable", "udp"), 993);
    let e = ev.iter().find(|e| e["probe"] == "udp").unwrap();
    assert_eq!(
        e["src_ip"], "192.168.1.10",
        "src is the scanner (named in the quote)"
    );
    assert_eq!(e["proto"], "UDP");
    assert_eq!(e["icmp"]["type"], 3);
    assert_eq!(e["icmp"]["code"], 3);
    // xprobe2's UDP probes: 143 port-unreachables.
    let (_, bytes) = run(
        &[real("xprobe2-udp-scan-icmp-port-unreach-evilfingers.pcap")],
        1,
    );
    assert_eq!(count(&events(&bytes), "unreachable", "udp"), 143);
}

#[test]
fn ipv6_no_route_names_the_router() {
    let (_, bytes) = run(&[real("ipv6-syn-icmpv6-no-route-suricata-verify.pcap")], 1);
    let ev = events(&bytes);
    assert_eq!(ev.len(), 2);
    for e in &ev {
        assert_eq!(e["reason"], "unreachable");
        assert_eq!(e["src_ip"], "2001:db8:1:0:306e:739d:dea6:99a4");
        assert_eq!(e["dest_port"], 443);
        assert_eq!(e["icmp"]["type"], 1);
        assert_eq!(e["icmp"]["code"], 0);
        assert_eq!(e["icmp"]["sender"], "2001:db8:1::3");
        // 5 SYN packets for 2 attempts: retransmissions were absorbed.
        assert!(e["retransmissions"].as_u64().unwrap() <= 4);
    }
}

#[test]
fn vlan_ids_are_reported() {
    let (_, bytes) = run(&[real("masscan-tcp-0-1000-vlan-esnet.pcap")], 1);
    let ev = events(&bytes);
    assert_eq!(ev.len(), 1001);
    assert!(ev.iter().all(|e| e["vlan"] == serde_json::json!([943])));
}

#[test]
fn stealth_scans_are_failed_attempts_with_their_probe() {
    // nmap -sF: 1000 FIN probes, each answered by RST+ACK.
    let (_, bytes) = run(&[real("nmap-fin-scan-evilfingers.pcap")], 1);
    let ev = events(&bytes);
    assert_eq!(count(&ev, "rejected", "fin"), 1000);
    assert_eq!(ev.len(), 1000);
    // nmap -sA: 1000 ACK probes, each answered by a bare RST.
    let (_, bytes) = run(&[real("nmap-ack-scan-evilfingers.pcap")], 1);
    let ev = events(&bytes);
    assert_eq!(count(&ev, "rejected", "ack"), 1000);
    assert!(ev.iter().all(|e| e["src_ip"] == "192.168.1.10"));
}

#[test]
fn sweeps_through_icmp_errors() {
    // Ping sweep: 253 host-unreachables quoting echo requests.
    let (_, bytes) = run(&[real("icmp-ping-sweep-host-unreachable-sgr.pcap")], 1);
    assert_eq!(count(&events(&bytes), "unreachable", "icmp"), 253);
    // IP protocol scan: 252 protocol-unreachables (one quotes protocol 1, ICMP).
    let (_, bytes) = run(&[real("ip-protocol-scan-icmp-proto-unreach-sgr.pcap")], 1);
    let ev = events(&bytes);
    assert_eq!(
        count(&ev, "unreachable", "ip_proto") + count(&ev, "unreachable", "icmp"),
        252
    );
}

#[test]
fn arp_sweep_of_the_local_segment_is_visible() {
    // nmap's host discovery ARPs every address of the /24; the absent ones
    // answer nothing.
    let (_, bytes) = run(&[real("nmap-version-scan-7hosts-zeek.pcap")], 1);
    let ev = events(&bytes);
    let arp: Vec<_> = ev.iter().filter(|e| e["reason"] == "unresolved").collect();
    assert!(arp.len() >= 240, "{}", arp.len());
    let src: std::collections::BTreeSet<_> =
        arp.iter().map(|e| e["src_ip"].as_str().unwrap()).collect();
    assert_eq!(src.len(), 1, "one host swept the segment: {src:?}");
}

#[test]
fn benign_captures_have_few_failures() {
    // Web browsing, cooked captures, VLAN ICMP: no failed TCP attempt at all,
    // and no inferred stealth probe (the bare RSTs there are teardowns).
    for f in [
        "benign-http-espn-browsing-chrissanders.pcapng",
        "benign-http-bro-org-browsing-zeek.pcap",
        "benign-appletv-browsing-forensicscontest-puzzle3.pcap",
        "benign-linux-sll-kakaotalk-ndpi.pcap",
        "benign-linux-sll2-http-suricata-verify.pcap",
        "benign-vlan-icmp-dot1q-zeek.pcap",
        "benign-vlan-syn-retransmit-suricata-verify.pcap",
        "benign-teams-call-ndpi.pcap",
        "benign-wikipedia-browsing-zeek.pcap",
    ] {
        let (_, bytes) = run(&[real(f)], 1);
        let ev = events(&bytes);
        let tcp = ev.iter().filter(|e| e["proto"] == "TCP").count();
        assert_eq!(tcp, 0, "{f}: {ev:?}");
    }
}

#[test]
fn every_real_capture_replays_cleanly() {
    for p in all_real() {
        let (out, _) = run(std::slice::from_ref(&p), 2);
        assert!(
            out.problems.is_empty(),
            "{}: {:?}",
            p.display(),
            out.problems
        );
        let d = &out.stats.decode;
        assert!(d.packets > 0);
        let skipped: u64 = d.skipped.iter().sum();
        assert_eq!(
            d.packets,
            d.interesting + d.established + skipped,
            "{}: every packet is kept or skipped for a reason",
            p.display()
        );
    }
}
