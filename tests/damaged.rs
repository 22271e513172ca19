//! Damaged captures: a committed corpus (tests/corpus/damaged/, made from
//! pcaps/golden.pcap by `damaged_corpus()` below; regenerate with
//! `SCANWATCH_BLESS=1 cargo test --release --test damaged`). Each file gives
//! the right exit status and a one-line error or warning naming the file, the
//! offset and the reason, and every valid packet before the damage is
//! processed: its events are emitted (the events of the undamaged capture, up
//! to the damage, plus attempts cut short, marked `at_capture_end`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The golden capture's records: (header bytes, data).
fn records(pcap: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        out.push((
            pcap[off..off + 16].to_vec(),
            pcap[off + 16..off + 16 + incl].to_vec(),
        ));
        off += 16 + incl;
    }
    out
}

fn assemble(header: &[u8], recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut v = header.to_vec();
    for (h, d) in recs {
        v.extend_from_slice(h);
        v.extend_from_slice(d);
    }
    v
}

fn set_u32(b: &mut [u8], at: usize, x: u32) {
    b[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

/// Shift the timestamps of records `from..` by `secs`.
fn shift(recs: &mut [(Vec<u8>, Vec<u8>)], from: usize, secs: i64) {
    for (h, _) in recs.iter_mut().skip(from) {
        let s = u32::from_le_bytes(h[0..4].try_into().unwrap()) as i64 + secs;
        set_u32(h, 0, s as u32);
    }
}

/// The golden capture as pcapng: SHB, one IDB (µs), one EPB per record.
fn pcapng(recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    let block = |v: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let len = 12 + body.len().div_ceil(4) * 4;
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.resize(v.len() + (len - 12 - body.len()), 0);
        v.extend_from_slice(&(len as u32).to_le_bytes());
    };
    let mut shb = 0x1A2B3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut v, 0x0A0D0D0A, &shb);
    block(&mut v, 1, &[1, 0, 0, 0, 0xff, 0xff, 0, 0]);
    for (h, d) in recs {
        let us = u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64 * 1_000_000
            + u32::from_le_bytes(h[4..8].try_into().unwrap()) as u64;
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(us as u32).to_le_bytes());
        body.extend_from_slice(&h[8..16]);
        body.extend_from_slice(d);
        block(&mut v, 6, &body);
    }
    v
}

/// (file name, bytes) of the corpus. `n` is the golden record count.
fn damaged_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let golden = std::fs::read(repo("pcaps/golden.pcap")).unwrap();
    let header = golden[..24].to_vec();
    let recs = records(&golden);
    let half = recs.len() / 2;
    let mut out = Vec::new();
    out.push(("empty.pcap", Vec::new()));
    out.push(("truncated-header.pcap", header[..20].to_vec()));
    let mut bad_magic = golden.clone();
    bad_magic[..4].copy_from_slice(b"\x7fELF");
    out.push(("bad-magic.pcap", bad_magic));
    let mut unknown_link = golden.clone();
    set_u32(&mut unknown_link, 20, 147);
    out.push(("unknown-linktype.pcap", unknown_link));
    // Cut inside the record half way through.
    let full = assemble(&header, &recs);
    let cut = assemble(&header, &recs[..half]).len() + 16 + 10;
    out.push(("truncated-record.pcap", full[..cut].to_vec()));
    // caplen above the file's snaplen (64): read as they are, counted.
    let mut small_snap = header.clone();
    set_u32(&mut small_snap, 16, 64);
    out.push(("caplen-over-snaplen.pcap", assemble(&small_snap, &recs)));
    // An empty record in the middle.
    let mut with_zero = recs.clone();
    let mut zh = recs[half].0.clone();
    set_u32(&mut zh, 8, 0);
    with_zero.insert(half, (zh, Vec::new()));
    out.push(("caplen-zero.pcap", assemble(&header, &with_zero)));
    // A record claiming 2 GiB: the file is damaged from there on.
    let mut huge = recs.clone();
    set_u32(&mut huge[half].0, 8, 0x7fff_ffff);
    out.push(("huge-caplen.pcap", assemble(&header, &huge)));
    // Time going back an hour half way, and jumping ten years.
    let mut back = recs.clone();
    shift(&mut back, half, -3600);
    out.push(("time-backwards.pcap", assemble(&header, &back)));
    let mut jump = recs.clone();
    shift(&mut jump, half, 10 * 365 * 86_400);
    out.push(("time-jumps-years.pcap", assemble(&header, &jump)));
    // pcapng whose block half way through has a length not a multiple of 4.
    let ng = pcapng(&recs);
    let ng_off = pcapng(&recs[..half]).len();
    let mut bad_len = ng.clone();
    set_u32(&mut bad_len, ng_off + 4, 13);
    out.push(("pcapng-bad-block-length.pcapng", bad_len));
    out.push(("pcapng-ok.pcapng", ng));
    out
}

fn corpus_dir() -> PathBuf {
    repo("tests/corpus/damaged")
}

#[test]
fn committed_corpus_is_current() {
    let dir = corpus_dir();
    if std::env::var_os("SCANWATCH_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in damaged_corpus() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in damaged_corpus() {
        let committed = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("tests/corpus/damaged/{name}: {e}"));
        assert!(
            committed == bytes,
            "{name} drifted from its generator (SCANWATCH_BLESS=1 regenerates)"
        );
    }
}

struct Run {
    code: i32,
    stderr: String,
    events: Vec<String>,
}

fn replay(path: &Path) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args([
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--events",
            "-",
            "--threads",
            "2",
        ])
        .arg(path)
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        events: String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

/// Every event decided before the damage is one the undamaged run made;
/// attempts still pending at the damage are reported `at_capture_end`.
fn events_before_damage_are_kept(name: &str, r: &Run, golden: &HashSet<String>, at_least: usize) {
    let mut kept = 0;
    for e in &r.events {
        if e.contains("\"at_capture_end\":true") {
            continue;
        }
        assert!(
            golden.contains(e),
            "{name}: an event the undamaged capture does not have: {e}"
        );
        kept += 1;
    }
    assert!(
        kept >= at_least,
        "{name}: {kept} events kept, expected at least {at_least}"
    );
}

#[test]
fn each_damaged_file_is_reported_and_what_precedes_is_processed() {
    let golden = replay(&repo("pcaps/golden.pcap"));
    assert_eq!(golden.code, 0);
    let golden_set: HashSet<String> = golden.events.iter().cloned().collect();
    let n = golden.events.len();
    let dir = corpus_dir();
    let f = |name: &str| dir.join(name);
    let one_line = |r: &Run, name: &str, words: &[&str]| {
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: one line, got:\n{}", r.stderr);
        for w in words {
            assert!(
                lines[0].contains(w),
                "{name}: '{w}' missing in: {}",
                lines[0]
            );
        }
    };

    // Not a capture at all, or nothing to read: exit 2 before anything runs.
    for (name, words) in [
        ("empty.pcap", vec!["empty.pcap", "empty"]),
        (
            "truncated-header.pcap",
            vec!["truncated-header.pcap", "header"],
        ),
        (
            "bad-magic.pcap",
            vec!["bad-magic.pcap", "not a pcap or pcapng file", "magic"],
        ),
        (
            "unknown-linktype.pcap",
            vec!["unknown-linktype.pcap", "147"],
        ),
    ] {
        let r = replay(&f(name));
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.events.is_empty(), "{name}");
        one_line(&r, name, &words);
    }

    // Cut mid-record: a warning, exit 0, the first half's events.
    let r = replay(&f("truncated-record.pcap"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    one_line(
        &r,
        "truncated-record.pcap",
        &["WARN", "truncated-record.pcap", "truncated at offset"],
    );
    events_before_damage_are_kept("truncated-record.pcap", &r, &golden_set, n / 4);

    // Damaged from the middle: an error naming the offset, exit 2, the first
    // half processed.
    for (name, words) in [
        (
            "huge-caplen.pcap",
            vec!["huge-caplen.pcap", "at offset", "2147483647"],
        ),
        (
            "pcapng-bad-block-length.pcapng",
            vec!["pcapng-bad-block-length.pcapng", "at offset", "13"],
        ),
    ] {
        let r = replay(&f(name));
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        one_line(&r, name, &words);
        events_before_damage_are_kept(name, &r, &golden_set, n / 4);
    }

    // Odd but readable: exit 0, no message; the same events as the golden
    // capture (records longer than the snaplen are read as they are; an empty
    // record is a counted skip; the pcapng twin is the same capture).
    for name in [
        "caplen-over-snaplen.pcap",
        "caplen-zero.pcap",
        "pcapng-ok.pcapng",
    ] {
        let r = replay(&f(name));
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(r.stderr.is_empty(), "{name}: {}", r.stderr);
        assert_eq!(r.events, golden.events, "{name}");
    }

    // Time going back an hour, or jumping ten years, half way: processed to
    // the end without a complaint (event time is what the packets say).
    for name in ["time-backwards.pcap", "time-jumps-years.pcap"] {
        let r = replay(&f(name));
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(
            r.events.len() >= n - 2 && r.events.len() <= n + 2,
            "{name}: {} events vs {n}",
            r.events.len()
        );
    }

    // A directory, and a FIFO (read once, as it comes).
    let tmp = tempfile::tempdir().unwrap();
    let r = replay(tmp.path());
    assert_eq!(r.code, 2);
    one_line(&r, "directory", &["is a directory"]);
    let fifo = tmp.path().join("capture.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(fifo, std::fs::read(repo("pcaps/golden.pcap")).unwrap()).unwrap()
        })
    };
    let r = replay(&fifo);
    writer.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events, golden.events);
}
