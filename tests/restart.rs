//! State survives restarts: replaying days 0-20 and then days 20-45 of a
//! generated 45-day capture through one `--state` directory gives the same
//! alerts as one run over all 45 days, and `scanwatch hosts` / `scanners`
//! answer from that state.

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
