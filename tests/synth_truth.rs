//! The tracker against the generator's ground truth on realistic mixes: every
//! attempt of the "enterprise" SPAN-port profile (background clients and
//! servers plus an SMB sweep, a vertical scan, an IPv6 sweep and a slow scan)
//! and of the "flood" worst case (masscan-style scanners inside a spoofed SYN
//! flood) must come out with the outcome the generator gave it.

mod common;
use common::*;

use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

fn generated(
    profile: Profile,
    packets: u64,
) -> (tempfile::TempDir, std::path::PathBuf, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.pcap");
    let mut w = CaptureWriter::create(&path, Format::Pcap, 256).unwrap();
    let opts = GenOptions {
        packets,
        seed: 7,
        snaplen: 256,
        ..GenOptions::default()
    };
    let truth = generate(profile, &opts, &mut w).unwrap();
    w.finish().unwrap();
    let truth = serde_json::to_value(&truth).unwrap();
    (dir, path, truth)
}

fn sum(truth: &serde_json::Value, list: &str, field: &str) -> u64 {
    truth[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn enterprise_mix_outcomes_match_ground_truth() {
    let (_dir, path, t) = generated(Profile::Enterprise, 400_000);
    let (out, bytes) = run(&[path], 2);
    let ev = events(&bytes);
    let st = &out.stats.track;
    let a = &t["tcp_attempts"];
    // Each scanner probe is one attempt of its scanner.
    assert_eq!(
        st.syn_attempts,
        n(&a["started"]) + sum(&t, "scanners", "probes")
    );
    assert_eq!(
        st.successes,
        n(&a["success"]) + sum(&t, "scanners", "syn_ack")
    );
    assert_eq!(
        count(&ev, "rejected", "syn") as u64,
        n(&a["rejected"]) + sum(&t, "scanners", "rst")
    );
    assert_eq!(
        count(&ev, "unreachable", "syn") as u64,
        n(&a["icmp_unreachable"]) + sum(&t, "scanners", "icmp")
    );
    assert_eq!(
        count(&ev, "unanswered", "syn") as u64,
        n(&a["unanswered"]) + sum(&t, "scanners", "unanswered")
    );
    // UDP: closed ports, and DNS answers that came after the client gave up.
    let u = &t["udp"];
    assert_eq!(
        count(&ev, "unreachable", "udp") as u64,
        n(&u["closed_port_unreachable"]) + n(&u["dns_late_port_unreachable"])
    );
    // Path-MTU errors are not failures.
    assert_eq!(
        out.stats.decode.skipped(scanwatch::decode::Skip::IcmpPmtu),
        n(&t["pmtu_frag_needed"])
    );
    // Connections in progress when the capture starts can look like an ACK
    // probe for their first RTTs (the other side has not spoken yet); nothing
    // else may produce a stealth-probe event.
    let stealth = ev
        .iter()
        .filter(|e| e["probe"] != "syn" && e["proto"] == "TCP")
        .count();
    assert!(
        stealth <= 2,
        "{stealth} stealth-probe events in benign-plus-SYN-scan traffic"
    );
}

#[test]
fn flood_outcomes_match_ground_truth() {
    let (_dir, path, t) = generated(Profile::Flood, 300_000);
    let (out, bytes) = run(&[path], 2);
    let ev = events(&bytes);
    let st = &out.stats.track;
    let a = &t["tcp_attempts"];
    let flood_syns = sum(&t, "floods", "syns");
    let flood_answered = sum(&t, "floods", "syn_acks");
    assert_eq!(
        st.syn_attempts,
        n(&a["started"]) + sum(&t, "scanners", "probes") + flood_syns
    );
    assert_eq!(
        st.successes,
        n(&a["success"]) + sum(&t, "scanners", "syn_ack") + flood_answered
    );
    assert_eq!(
        count(&ev, "rejected", "syn") as u64,
        n(&a["rejected"]) + sum(&t, "scanners", "rst")
    );
    assert_eq!(
        count(&ev, "unanswered", "syn") as u64,
        n(&a["unanswered"]) + sum(&t, "scanners", "unanswered") + flood_syns - flood_answered
    );
    assert_eq!(
        st.pending_cap_dropped, 0,
        "the default cap holds this flood"
    );
}
