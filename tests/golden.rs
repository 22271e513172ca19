//! Golden test: `pcaps/golden.pcap` (made by `scanwatch-synth golden`, one case
//! per inference rule) gives exactly the committed events, and each case's
//! events agree with the outcome the generator states for it in `golden.json`.
//!
//! After an intended change of the output, regenerate the expected file with
//! `SCANWATCH_BLESS=1 cargo test --release --test golden` and review the diff.

mod common;
use common::*;

use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn golden_events_match_the_committed_file() {
    let (out, bytes) = run(&[repo("pcaps/golden.pcap")], 3);
    assert!(out.problems.is_empty());
    let expected_path = repo("tests/golden/golden.events.jsonl");
    if std::env::var_os("SCANWATCH_BLESS").is_some() {
        std::fs::write(&expected_path, &bytes).unwrap();
    }
    let expected = std::fs::read(&expected_path).expect("tests/golden/golden.events.jsonl");
    if bytes != expected {
        let (got, want) = (
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&expected),
        );
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(a, b)| a != b)
            .take(3)
            .map(|(a, b)| format!("got  {a}\nwant {b}"))
            .collect();
        panic!(
            "events differ from {} ({} vs {} lines):\n{}",
            expected_path.display(),
            got.lines().count(),
            want.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn each_golden_case_has_the_outcome_the_generator_states() {
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo("pcaps/golden.json")).unwrap()).unwrap();
    let (_, bytes) = run(&[repo("pcaps/golden.pcap")], 1);
    let ev = events(&bytes);
    let cases = truth["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 27);
    let mut seen = 0;
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let mine: Vec<&serde_json::Value> =
            ev.iter().filter(|e| e["src_ip"] == c["client"]).collect();
        seen += mine.len();
        let outcome = c["outcome"].as_str().unwrap();
        // The failure the case must produce, if any: (reason, proto).
        let want = match (outcome, c["proto"].as_str().unwrap()) {
            ("success" | "none", _) => None,
            ("rejected" | "rejected,success", _) => Some(("rejected", "TCP")),
            ("unanswered", "arp") => Some(("unresolved", "ARP")),
            ("unanswered", _) => Some(("unanswered", "TCP")),
            ("unreachable", _) => Some(("unreachable", "TCP")),
            ("port_unreachable", _) => Some(("unreachable", "UDP")),
            (o, p) => panic!("case {id}: unknown outcome {o} / {p}"),
        };
        match want {
            None => assert!(
                mine.is_empty(),
                "case {id} ({outcome}) must not fail: {mine:?}"
            ),
            Some((reason, proto)) => {
                assert_eq!(
                    mine.len(),
                    1,
                    "case {id}: one failed attempt expected, got {mine:?}"
                );
                let e = mine[0];
                assert_eq!(
                    (e["reason"].as_str().unwrap(), e["proto"].as_str().unwrap()),
                    (reason, proto),
                    "case {id}"
                );
                assert_eq!(e["dest_ip"], c["server"], "case {id}");
                if proto != "ARP" {
                    assert_eq!(e["src_port"], c["client_port"], "case {id}");
                    assert_eq!(e["dest_port"], c["server_port"], "case {id}");
                }
                if reason == "unreachable" {
                    assert_eq!(e["icmp"]["sender"], c["icmp_from"], "case {id}");
                }
                if reason == "unanswered" || reason == "unresolved" {
                    assert_eq!(e["retransmissions"], c["retransmissions"], "case {id}");
                }
            }
        }
    }
    assert_eq!(seen, ev.len(), "every event belongs to a case");
}
