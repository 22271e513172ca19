//! State survives restarts: replaying days 0-20 and then days 20-45 of a
//! generated 45-day capture through one `--state` directory gives the same
//! alerts as one run over all 45 days, and `scanwatch hosts` / `scanners`
//! answer from that state; a capture replayed in pieces through one state
//! gives the events of one run (the attempts pending at each cut are carried
//! through the state).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

fn days(dir: &Path, from: u32, to: u32) -> PathBuf {
    let path = dir.join(format!("days-{from}-{to}.pcap"));
    let mut w = CaptureWriter::create(&path, Format::Pcap, 96).unwrap();
    let opts = GenOptions {
        days: 45,
        day_range: Some((from, to)),
        snaplen: 96,
        ..GenOptions::default()
    };
    generate(Profile::Multiday, &opts, &mut w).unwrap();
    w.finish().unwrap();
    path
}

fn scanwatch(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scanwatch {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

#[test]
fn two_runs_through_one_state_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, all) = (
        days(dir.path(), 0, 20),
        days(dir.path(), 20, 45),
        days(dir.path(), 0, 45),
    );
    let state = dir.path().join("state");
    let once = scanwatch(&["-q", "replay", p(&all)]).stdout;
    let mut twice = scanwatch(&["-q", "replay", "--state", p(&state), p(&first)]).stdout;
    twice.extend(scanwatch(&["-q", "replay", "--state", p(&state), p(&second)]).stdout);
    let lines = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (once, twice) = (lines(&once), lines(&twice));
    // The scanners of days 15, 25 and 40 are alerted; the first run ends on
    // day 19, so the day-25 and day-40 ones need what the state carried over
    // (the activation clock, the inventory that makes 10.10.4.x inactive or
    // never seen, the learned nightly scanner that must stay suppressed).
    let srcs: Vec<String> = once
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["src_ip"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for s in ["10.10.2.66", "10.10.2.77", "10.10.2.88", "10.10.2.99"] {
        assert!(
            srcs.iter().any(|x| x == s),
            "{s} alerted in the single run: {srcs:?}"
        );
    }
    assert!(
        !srcs.iter().any(|x| x == "10.10.9.9"),
        "the nightly scanner is learned"
    );
    assert_eq!(
        twice, once,
        "alerts of two runs through one state differ from one run"
    );

    // The state answers questions about hosts and scanners.
    let out =
        String::from_utf8(scanwatch(&["hosts", "--state", p(&state), "10.10.1.5"]).stdout).unwrap();
    assert!(
        out.starts_with("10.10.1.5  last seen alive 2024-04-14"),
        "{out}"
    );
    assert!(out.contains("syn_ack"), "{out}");
    let out = String::from_utf8(scanwatch(&["scanners", "--state", p(&state)]).stdout).unwrap();
    assert!(out.starts_with("10.10.9.9 "), "{out}");
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["hosts", "--state", p(&state), "10.10.200.200"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("never seen alive"));
}

/// Split a classic pcap file after `k` records into two files.
fn split_pcap(src: &Path, k: usize, a: &Path, b: &Path) -> usize {
    let d = std::fs::read(src).unwrap();
    let le = matches!(d[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let (mut x, mut y) = (d[..24].to_vec(), d[..24].to_vec());
    let (mut off, mut n) = (24, 0);
    while off + 16 <= d.len() {
        let f: [u8; 4] = d[off + 8..off + 12].try_into().unwrap();
        let caplen = if le {
            u32::from_le_bytes(f)
        } else {
            u32::from_be_bytes(f)
        } as usize;
        let rec = &d[off..off + 16 + caplen];
        if n < k { &mut x } else { &mut y }.extend_from_slice(rec);
        off += 16 + caplen;
        n += 1;
    }
    std::fs::write(a, x).unwrap();
    std::fs::write(b, y).unwrap();
    n
}

/// Replay `files` in turn through one state directory (`tag` names it)
/// with `threads` threads and `extra` arguments; the events of all runs,
/// sorted, and each run's summary.
fn pieces(
    dir: &Path,
    tag: &str,
    files: &[&Path],
    threads: &[&str],
    extra: &[&str],
) -> (Vec<String>, Vec<String>) {
    let state = dir.join(format!("state-{tag}"));
    let (mut events, mut summaries) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let ev = dir.join(format!("events-{tag}-{i}"));
        let mut args = vec!["replay", "--threads", threads[i % threads.len()]];
        args.extend(extra);
        args.extend([
            "--state",
            p(&state),
            "--events",
            p(&ev),
            "--alerts",
            "/dev/null",
            p(f),
        ]);
        let o = scanwatch(&args);
        let lines = std::fs::read_to_string(&ev).unwrap();
        events.extend(lines.lines().map(str::to_owned));
        summaries.push(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    events.sort();
    (events, summaries)
}

/// The number before `what` in a summary line.
fn count(summary: &str, what: &str) -> u64 {
    let at = summary
        .find(what)
        .unwrap_or_else(|| panic!("no '{what}' in {summary}"));
    summary[..at]
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap()
}

/// A restart must not turn the handshakes and probes in flight into
/// failures. A real nmap connect scan, cut at two places inside the scan
/// and replayed piece by piece through one state (with 1, 3 and 2
/// threads), writes exactly the events of one run over the whole capture
/// (also with a state, which then keeps the attempts still undecided at
/// its end, as the last piece's run does): the attempts pending at each
/// cut are taken up by the next run, not decided `at_capture_end`. The
/// first piece alone, without a state, decides them so.
#[test]
fn a_capture_replayed_in_pieces_through_one_state_gives_the_events_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = common::real("nmap-connect-scan-evilfingers.pcap");
    let (a, rest, b, c) = (
        d.join("a.pcap"),
        d.join("rest.pcap"),
        d.join("b.pcap"),
        d.join("c.pcap"),
    );
    let n = split_pcap(&whole, 0, &d.join("none.pcap"), &d.join("all.pcap"));
    let first = n / 3;
    split_pcap(&whole, first, &a, &rest);
    split_pcap(&rest, n / 2 - first, &b, &c);

    let (once, s1) = pieces(d, "once", &[&whole], &["1"], &[]);
    let (split, s3) = pieces(d, "pieces", &[&a, &b, &c], &["1", "3", "2"], &[]);
    assert!(once.len() > 1000, "{} events", once.len());
    assert_eq!(split, once, "events of the pieces differ from one run's");
    // Attempts did cross each cut, and the last run keeps its own.
    assert!(count(&s3[1], "attempts taken up") > 0, "{}", s3[1]);
    assert!(count(&s3[2], "attempts taken up") > 0, "{}", s3[2]);
    assert_eq!(
        count(&s3[2], "still undecided"),
        count(&s1[0], "still undecided")
    );
    // Without the state, the cut decides them.
    let ev = d.join("alone");
    scanwatch(&["replay", "--events", p(&ev), "--alerts", "/dev/null", p(&a)]);
    let alone = std::fs::read_to_string(&ev).unwrap();
    let cut_short = alone
        .lines()
        .filter(|l| l.contains("\"at_capture_end\":true"))
        .count();
    assert!(
        cut_short > 0,
        "the first piece alone decides nothing at its end"
    );
    assert!(!split.iter().any(|l| l.contains("\"at_capture_end\":true")));
}

/// A flood fills the attempt table (a cap of 100 attempts a partition here),
/// so the pieces' runs evict attempts early as one run does: the attempts
/// carried at each cut keep their eviction order, and the pieces still
/// write exactly the events of one run.
#[test]
fn pieces_of_a_flood_at_the_attempt_cap_give_the_events_of_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = d.join("flood.pcap");
    let mut w = CaptureWriter::create(&whole, Format::Pcap, 96).unwrap();
    let opts = GenOptions {
        packets: 300_000,
        seed: 3,
        snaplen: 96,
        ..GenOptions::default()
    };
    generate(Profile::Flood, &opts, &mut w).unwrap();
    w.finish().unwrap();
    let (a, rest, b, c) = (
        d.join("a.pcap"),
        d.join("rest.pcap"),
        d.join("b.pcap"),
        d.join("c.pcap"),
    );
    split_pcap(&whole, 120_000, &a, &rest);
    split_pcap(&rest, 90_000, &b, &c);
    let cfg = d.join("cap.toml");
    std::fs::write(&cfg, "[tracker]\nmax_pending = 6400\n").unwrap();
    let cap = ["--config", p(&cfg)];
    let (once, s1) = pieces(d, "once", &[&whole], &["1"], &cap);
    let (split, s3) = pieces(d, "pieces", &[&a, &b, &c], &["1", "2"], &cap);
    assert!(
        count(&s1[0], "attempts decided early") > 10_000,
        "{}",
        s1[0]
    );
    assert!(count(&s3[1], "attempts taken up") > 5_000, "{}", s3[1]);
    assert_eq!(split.len(), once.len());
    assert!(split == once, "events of the pieces differ from one run's");
}

/// Replaying a capture again through the state it left (or any capture
/// that starts before the run that left the state ended): its attempts
/// cannot be placed in this run's time and are all refused, counted; this
/// run decides its own as the first run did (they used to wait forever
/// behind the carried ones, or a carried attempt stamped at the capture's
/// first packet swallowed that packet as a re-sent SYN).
#[test]
fn a_capture_replayed_again_through_its_state_is_decided_as_the_first_time() {
    for name in [
        "nmap-syn-scan-3hosts-forensicscontest-puzzle4.pcap",
        "nmap-syn-scan-evilfingers.pcap",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let f = common::real(name);
        let state = dir.path().join("state");
        let runs: Vec<String> = (0..2)
            .map(|_| {
                let o = scanwatch(&[
                    "replay",
                    "--state",
                    p(&state),
                    "--events",
                    "/dev/null",
                    "--alerts",
                    "/dev/null",
                    p(&f),
                ]);
                String::from_utf8_lossy(&o.stderr).into_owned()
            })
            .collect();
        let line = |s: &str, start: &str| -> String {
            s.lines()
                .find(|l| l.trim_start().starts_with(start))
                .unwrap()
                .to_owned()
        };
        for start in ["attempts:", "failed:"] {
            assert_eq!(line(&runs[1], start), line(&runs[0], start), "{name}");
        }
        let left = count(&runs[0], "still undecided");
        assert!(left > 0, "{name}: {}", runs[0]);
        assert_eq!(count(&runs[1], "refused"), left, "{name}: {}", runs[1]);
    }
}
