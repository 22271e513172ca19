//! Floods against small caps: the tables stay within their caps, the counters
//! say what was evicted, and a real scanner inside the flood is still alerted.
//! The caps here are a few thousand entries so that a capture of a few
//! hundred thousand packets puts them under the pressure a 400k-SYN/s flood
//! puts the defaults under.

mod common;
use common::*;

use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

const SMALL_CAPS: &[&str] = &[
    "detector.activation_period=0s",
    "detector.training_period=0s",
    "detector.alert_external_sources=true",
    // 100 pending attempts per partition, 2,000 sources, 8,000 evidence
    // items in all (the one-off sources alone would hold ~12,000).
    "tracker.max_pending=6400",
    "detector.max_sources=2000",
    "detector.max_evidence_items=8000",
];

fn alerted(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = events(bytes)
        .iter()
        .map(|a| a["src_ip"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn scanners_inside_a_spoofed_syn_flood_are_alerted_under_small_caps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.pcap");
    let mut w = CaptureWriter::create(&path, Format::Pcap, 256).unwrap();
    let opts = GenOptions {
        packets: 600_000,
        seed: 3,
        snaplen: 256,
        ..GenOptions::default()
    };
    let truth = serde_json::to_value(generate(Profile::Flood, &opts, &mut w).unwrap()).unwrap();
    w.finish().unwrap();

    let (out1, alerts1) = run_alerts(std::slice::from_ref(&path), 1, SMALL_CAPS);
    let (out2, alerts2) = run_alerts(std::slice::from_ref(&path), 2, SMALL_CAPS);
    // Eviction decisions are per partition: the same for any thread count.
    assert_eq!(alerts1, alerts2);

    let alerted = alerted(&alerts1);
    for s in truth["scanners"].as_array().unwrap() {
        let ip = s["ip"].as_str().unwrap();
        assert!(
            alerted.iter().any(|a| a == ip),
            "scanner {ip} not alerted; alerts for {alerted:?}"
        );
    }
    // No victim of the flood and no spoofed source is alerted: the flood's
    // sources each send one SYN.
    for f in truth["floods"].as_array().unwrap() {
        let victim = f["target"].as_str().unwrap();
        assert!(!alerted.iter().any(|a| a == victim), "{victim} alerted");
    }

    for out in [&out1, &out2] {
        let t = &out.stats.track;
        // The pending table was full and made room by deciding its oldest
        // attempts early; nothing was refused.
        assert!(t.pending_evicted > 10_000, "{}", t.pending_evicted);
        assert_eq!(t.pending_cap_dropped, 0);
        let a = out.analytics.as_ref().unwrap();
        // One-off spoofed sources made room for new ones; the scanners stayed.
        assert!(
            a.stats.sources_evicted > 10_000,
            "{}",
            a.stats.sources_evicted
        );
        assert!(a.sources_len() <= 2000, "{}", a.sources_len());
        assert!(a.evidence_items() <= 8000, "{}", a.evidence_items());
    }
}

#[test]
fn evicted_attempts_are_marked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.pcap");
    let mut w = CaptureWriter::create(&path, Format::Pcap, 256).unwrap();
    let opts = GenOptions {
        packets: 100_000,
        seed: 5,
        snaplen: 256,
        ..GenOptions::default()
    };
    generate(Profile::Flood, &opts, &mut w).unwrap();
    w.finish().unwrap();
    let mut cfg = scanwatch::pipeline::ReplayConfig {
        threads: 2,
        ..Default::default()
    };
    cfg.track.max_pending = 6400;
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct W(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = scanwatch::pipeline::replay(
        &[path],
        &cfg,
        Some(Box::new(W(buf.clone()))),
        None,
        Default::default(),
    )
    .unwrap();
    let ev = events(&buf.lock().unwrap());
    let marked = ev.iter().filter(|e| e["evicted"] == true).count() as u64;
    // Every early decision of a SYN attempt is an `unanswered` event marked
    // `evicted`, decided before its timeout.
    assert!(marked > 1000, "{marked}");
    assert!(marked <= out.stats.track.pending_evicted);
    for e in ev.iter().filter(|e| e["evicted"] == true) {
        assert_eq!(e["reason"], "unanswered");
    }
    assert!(out.stats.track.peak_pending <= 6400);
}

/// The real spoofed-source SYN flood (37,841 SYNs from 37,623 addresses to
/// one port) with the caps a hundredth of its size: no alert, caps held.
#[test]
fn real_spoofed_flood_under_small_caps() {
    let caps = &[
        "detector.activation_period=0s",
        "detector.training_period=0s",
        "detector.alert_external_sources=true",
        "detector.home_net=[\"0.0.0.0/0\"]",
        "tracker.max_pending=320",
        "detector.max_sources=300",
    ];
    let (out, alerts) = run_alerts(&[real("syn-flood-spoofed-sources-stopddos.pcap")], 2, caps);
    assert!(alerted(&alerts).is_empty(), "{:?}", alerted(&alerts));
    let a = out.analytics.as_ref().unwrap();
    assert!(a.sources_len() <= 300);
    assert!(out.stats.track.pending_evicted > 30_000);
    assert!(
        a.stats.sources_evicted > 30_000,
        "{}",
        a.stats.sources_evicted
    );
}
