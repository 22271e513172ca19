//! The `scanwatch` binary as a user meets it: help, exit codes, one-line errors
//! naming the file, warnings for truncated captures with everything before the
//! damage processed.

mod common;
use common::real;

use std::path::Path;
use std::process::{Command, Output};

fn scanwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(args)
        .output()
        .expect("run scanwatch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_describes_replay_and_its_flags() {
    let o = scanwatch(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("replay"), "{out}");
    let o = scanwatch(&["replay", "--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--events",
        "--alerts",
        "--state",
        "--config",
        "--set",
        "--threads",
        "Exit status",
    ] {
        assert!(out.contains(flag), "replay --help lacks {flag}:\n{out}");
    }
}

#[test]
fn not_a_capture_is_exit_2_with_one_line_naming_the_file() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let o = scanwatch(&["replay", manifest]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains("Cargo.toml") && e.contains("not a pcap or pcapng file"),
        "{e}"
    );
}

#[test]
fn missing_empty_directory_and_bad_threads_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.pcap");
    for (path, words) in [
        (missing.as_path(), "missing.pcap"),
        (empty.as_path(), "empty.pcap"),
        (dir.path(), "directory"),
    ] {
        let o = scanwatch(&["replay", p(path)]);
        assert_eq!(o.status.code(), Some(2), "{}", path.display());
        assert!(stderr(&o).contains(words), "{}", stderr(&o));
    }
    // A bad file later in the list stops the run before anything is processed.
    let good = real("tcp-syn-refused-rst-chrissanders.pcapng");
    let o = scanwatch(&[
        "replay",
        "--alerts",
        "/dev/null",
        "--events",
        "-",
        p(&good),
        p(&missing),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    let o = scanwatch(&["replay", "--threads", "0", p(&good)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));
}

#[test]
fn unknown_link_type_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("usb.pcap");
    // Classic pcap header, µs, snaplen 65535, link type 189 (USB Linux).
    let mut h = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0,
    ];
    h.extend_from_slice(&189u32.to_le_bytes());
    std::fs::write(&f, h).unwrap();
    let o = scanwatch(&["replay", p(&f)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("usb.pcap") && stderr(&o).contains("189"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn truncated_capture_warns_and_keeps_everything_before() {
    let src = std::fs::read(real("nmap-syn-scan-evilfingers.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cut.pcap");
    // Cut in the middle of a record, about half way.
    let cut = src.len() / 2 + 7;
    std::fs::write(&f, &src[..cut]).unwrap();
    let o = scanwatch(&[
        "replay",
        "--alerts",
        "/dev/null",
        "--threads",
        "2",
        "--events",
        "-",
        p(&f),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARN") && e.contains("cut.pcap") && e.contains("truncated at offset"),
        "{e}"
    );
    let full = scanwatch(&[
        "replay",
        "--events",
        "-",
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    let (half, all) = (
        o.stdout.split(|&b| b == b'\n').count(),
        full.stdout.split(|&b| b == b'\n').count(),
    );
    assert!(
        half > all / 3 && half < all,
        "{half} of {all} events before the cut"
    );
    // Every event decided before the cut is one the full run made too; the
    // attempts still pending at the cut are reported `at_capture_end`.
    let full_lines: std::collections::HashSet<&[u8]> = full.stdout.split(|&b| b == b'\n').collect();
    let mut at_end = 0;
    for line in o.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        if v["at_capture_end"] == true {
            at_end += 1;
        } else {
            assert!(full_lines.contains(line), "not in the full run: {v}");
        }
    }
    assert!(at_end > 0, "the cut leaves some attempts pending");
}

#[test]
fn summary_on_stderr_and_quiet_silences_it() {
    let f = real("nmap-syn-scan-evilfingers.pcap");
    let o = scanwatch(&["replay", p(&f)]);
    assert!(o.status.success());
    let e = stderr(&o);
    for w in [
        "2020 packets",
        "packets/s",
        "1002 SYN",
        "rejected 995",
        "unanswered 2",
        "skipped: udp 4",
    ] {
        assert!(e.contains(w), "summary lacks {w:?}:\n{e}");
    }
    let o = scanwatch(&["-q", "replay", p(&f)]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

/// The summary's CPU line names every pipeline thread of the run, in
/// pipeline order, and the busiest is the one with the most CPU time: what
/// an operator reads to see which stage limits a sensor.
#[test]
fn summary_gives_each_threads_cpu_time() {
    let f = real("nmap-syn-scan-evilfingers.pcap");
    let o = scanwatch(&["replay", "--threads", "2", "--alerts", "/dev/null", p(&f)]);
    assert!(o.status.success());
    let e = stderr(&o);
    let line = e
        .lines()
        .find_map(|l| l.trim().strip_prefix("cpu seconds by thread: "))
        .unwrap_or_else(|| panic!("no cpu line:\n{e}"));
    let (each, busiest) = line.split_once("; busiest: ").expect("busiest named");
    let threads: Vec<(&str, f64)> = each
        .split(", ")
        .map(|t| {
            let (name, secs) = t.split_once(' ').expect("name and seconds");
            (name, secs.parse::<f64>().expect("seconds"))
        })
        .collect();
    let names: Vec<&str> = threads.iter().map(|t| t.0).collect();
    assert_eq!(
        names,
        [
            "reader",
            "decode-0",
            "decode-1",
            "track-0",
            "track-1",
            "reorder",
            "analytics",
            "output"
        ]
    );
    assert!(threads.iter().all(|t| t.1 >= 0.0) && threads.iter().any(|t| t.1 > 0.0));
    let most = threads.iter().map(|t| t.1).fold(0.0, f64::max);
    let named = busiest.split(' ').next().expect("a name");
    assert_eq!(
        threads.iter().find(|t| t.0 == named).map(|t| t.1),
        Some(most)
    );
    assert!(busiest.ends_with("packets/s)"), "{busiest}");
}

#[test]
fn files_are_one_continuous_capture() {
    // The nmap SYN scan split in two at a record boundary: attempts started in
    // the first part are answered in the second. Same events as the whole file.
    let src = std::fs::read(real("nmap-syn-scan-evilfingers.pcap")).unwrap();
    // Walk records to the one nearest the middle (classic pcap, little-endian).
    let mut off = 24;
    while off < src.len() / 2 {
        let incl = u32::from_le_bytes(src[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + incl;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
    std::fs::write(&a, &src[..off]).unwrap();
    let mut second = src[..24].to_vec();
    second.extend_from_slice(&src[off..]);
    std::fs::write(&b, second).unwrap();
    let split = scanwatch(&[
        "replay",
        "--alerts",
        "/dev/null",
        "--events",
        "-",
        p(&a),
        p(&b),
    ]);
    let whole = scanwatch(&[
        "replay",
        "--events",
        "-",
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    assert!(split.status.success());
    assert_eq!(split.stdout, whole.stdout);
}

/// Nothing the analyst gave is destroyed by a slip in the arguments: an
/// output that names a capture, two outputs that name one file, and
/// standard input given twice are refused (exit 2) before anything is
/// opened for writing. /dev/null for both outputs stays allowed.
#[test]
fn outputs_that_would_erase_a_capture_or_each_other_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("evidence.pcap");
    std::fs::copy(repo_pcap("demo-16d.pcap"), &cap).unwrap();
    let before = std::fs::read(&cap).unwrap();
    for flag in ["--events", "--alerts"] {
        let o = scanwatch(&["replay", flag, p(&cap), p(&cap)]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(flag) && e.contains("evidence.pcap") && e.contains("erase"),
            "{e}"
        );
        assert_eq!(
            std::fs::read(&cap).unwrap(),
            before,
            "{flag}: capture changed"
        );
    }
    // The same file under two names, created or not yet.
    let out = dir.path().join("out.json");
    let other = format!("{}/./out.json", p(dir.path()));
    for exists in [false, true] {
        if exists {
            std::fs::write(&out, b"kept\n").unwrap();
        }
        let o = scanwatch(&["replay", "--events", p(&out), "--alerts", &other, p(&cap)]);
        assert_eq!(o.status.code(), Some(2), "exists {exists}: {}", stderr(&o));
        assert!(stderr(&o).contains("same file"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"kept\n");
    // Live appends, but one file for both is refused there too, before
    // any capture is opened (no interface named `nonexistent0` is needed).
    let o = scanwatch(&[
        "live",
        "-i",
        "nonexistent0",
        "--events",
        p(&out),
        "--alerts",
        &other,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("same file"), "{}", stderr(&o));
    let o = scanwatch(&["replay", "-", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("only once"), "{}", stderr(&o));
    // `-` is what it stands for: the capture on standard input, and an
    // output named /dev/stdout when the alerts go to standard output (a
    // second opening of the same file, at offset 0).
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["replay", "--alerts", "/dev/null", "--events", p(&cap), "-"])
        .stdin(std::fs::File::open(&cap).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("erase"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&cap).unwrap(),
        before,
        "stdin: capture changed"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["replay", "--events", "/dev/stdout", p(&cap)])
        .stdout(std::fs::File::create(dir.path().join("all.json")).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("same file"), "{}", stderr(&o));
    // Both on `-`, into one file: allowed (one file offset, whole lines).
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["-q", "replay", "--events", "-", p(&cap)])
        .stdout(std::fs::File::create(dir.path().join("all.json")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = scanwatch(&[
        "-q",
        "replay",
        "--events",
        "/dev/null",
        "--alerts",
        "/dev/null",
        p(&cap),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Log lines on a pipe or in the journal carry no colour escape codes.
#[test]
fn log_lines_off_a_terminal_are_plain_text() {
    let src = std::fs::read(real("nmap-syn-scan-evilfingers.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cut.pcap");
    std::fs::write(&f, &src[..src.len() / 2 + 7]).unwrap();
    let o = scanwatch(&["-q", "replay", "--alerts", "/dev/null", p(&f)]);
    let e = stderr(&o);
    assert!(e.contains("WARN"), "{e}");
    assert!(!e.contains('\u{1b}'), "escape codes in {e:?}");
}

fn repo_pcap(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(name)
}

/// Run scanwatch, killed after `limit` (then the test fails): for inputs
/// that once made it wait forever.
fn scanwatch_within(args: &[&str], limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scanwatch");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scanwatch {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Reads that yield no packet (header-only files, as `tcpdump -G` leaves on
/// a quiet link; a pcapng stretch of blocks without packets) used to lose
/// a buffer each, and once the pool was empty the replay waited forever.
/// Many of them, then a real capture: the run ends, and its events are
/// those of the capture alone.
#[test]
fn many_reads_without_packets_do_not_stall_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cap = real("nmap-syn-scan-evilfingers.pcap");
    let header = std::fs::read(&cap).unwrap()[..24].to_vec();
    let mut args: Vec<String> = Vec::new();
    for i in 0..40 {
        let f = dir.path().join(format!("quiet-{i:02}.pcap"));
        std::fs::write(&f, &header).unwrap();
        args.push(p(&f).to_string());
    }
    args.push(p(&cap).to_string());
    // A pcapng: a section and an interface, 40 MiB of blocks of an unknown
    // type (skipped), one SYN at the end.
    let mut ng = Vec::new();
    let block = |ty: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        let mut b = Vec::new();
        b.extend(ty.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    };
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend((-1i64).to_le_bytes());
    ng.extend(block(0x0a0d0d0a, &shb));
    ng.extend(block(1, &[1, 0, 0, 0, 0, 0, 1, 0]));
    let filler = block(0x0000_0bad, &vec![0u8; (1 << 20) - 12]);
    for _ in 0..40 {
        ng.extend(&filler);
    }
    let syn = std::fs::read(&cap).unwrap();
    let syn = &syn[40..40 + u32::from_le_bytes(syn[32..36].try_into().unwrap()) as usize];
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend(((1_231_000_000_000_000u64 >> 32) as u32).to_le_bytes());
    epb.extend((1_231_000_000_000_000u64 as u32).to_le_bytes());
    epb.extend((syn.len() as u32).to_le_bytes());
    epb.extend((syn.len() as u32).to_le_bytes());
    epb.extend(syn);
    epb.resize(epb.len().div_ceil(4) * 4, 0);
    ng.extend(block(6, &epb));
    let ngf = dir.path().join("sparse.pcapng");
    std::fs::write(&ngf, ng).unwrap();
    for threads in ["1", "2"] {
        let mut a = vec!["replay", "--alerts", "/dev/null", "--threads", threads];
        a.extend(args.iter().map(String::as_str));
        let o = scanwatch_within(&a, std::time::Duration::from_secs(60));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("2020 packets"), "{}", stderr(&o));
        let o = scanwatch_within(
            &[
                "-q",
                "replay",
                "--alerts",
                "/dev/null",
                "--events",
                "-",
                "--threads",
                threads,
                p(&ngf),
            ],
            std::time::Duration::from_secs(60),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        // The SYN after the empty stretch got through: pending at the end.
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("\"at_capture_end\":true"), "{out}");
    }
}

/// Timestamps a replay cannot trust are said, not silently acted on: a
/// capture whose packets go back in time warns (with -q too) with the count
/// and how far; a record stamped after 2199 (no capture holds one; a
/// pcapng offset past what i64 nanoseconds hold saturates at 2262) is
/// dropped and counted, so no clock jumps to the end of time. A capture in
/// order says nothing.
#[test]
fn untrustworthy_timestamps_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(real("nmap-syn-scan-evilfingers.pcap")).unwrap();
    // Classic pcap, µs, little-endian: append the first record again, two
    // hours earlier than the last one.
    let first_len = u32::from_le_bytes(src[32..36].try_into().unwrap()) as usize;
    let mut rec = src[24..24 + 16 + first_len].to_vec();
    let last_secs = {
        let mut at = 24;
        let mut secs = 0;
        while at + 16 <= src.len() {
            secs = u32::from_le_bytes(src[at..at + 4].try_into().unwrap());
            at += 16 + u32::from_le_bytes(src[at + 8..at + 12].try_into().unwrap()) as usize;
        }
        secs
    };
    rec[0..4].copy_from_slice(&(last_secs - 7200).to_le_bytes());
    let mut late = src.clone();
    late.extend_from_slice(&rec);
    let f = dir.path().join("late.pcap");
    std::fs::write(&f, &late).unwrap();
    let o = scanwatch(&["-q", "replay", "--alerts", "/dev/null", p(&f)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARN") && e.contains("1 record(s) up to 2.0 h earlier"),
        "{e}"
    );
    // The capture as it is: nothing to say.
    let o = scanwatch(&[
        "-q",
        "replay",
        "--alerts",
        "/dev/null",
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    // The first record's fraction of a second is u32::MAX µs (71 minutes):
    // read as it stands it would put every later record 71 minutes late.
    let mut broken = src.clone();
    broken[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    let f = dir.path().join("fraction.pcap");
    std::fs::write(&f, &broken).unwrap();
    let o = scanwatch(&["-q", "replay", "--alerts", "/dev/null", p(&f)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("WARN") && e.contains("1 record(s) whose fraction of a second"),
        "{e}"
    );
    assert!(!e.contains("earlier than a packet"), "{e}");

    // pcapng: one Ethernet interface (µs), the nmap capture's first frame
    // twice, the second stamped 8e15 µs (year 2223).
    let frame = &src[40..40 + first_len];
    let block = |ty: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend(len.to_le_bytes());
        b.extend(body);
        b.extend(len.to_le_bytes());
        b
    };
    let epb = |us: u64| {
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend(((us >> 32) as u32).to_le_bytes());
        b.extend((us as u32).to_le_bytes());
        b.extend((frame.len() as u32).to_le_bytes());
        b.extend((frame.len() as u32).to_le_bytes());
        b.extend(frame);
        b.resize(b.len().div_ceil(4) * 4, 0);
        block(6, &b)
    };
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend((-1i64).to_le_bytes());
    let mut ng = block(0x0a0d0d0a, &shb);
    ng.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
    ng.extend(epb(1_231_000_000_000_000));
    ng.extend(epb(8_000_000_000_000_000));
    let f = dir.path().join("beyond.pcapng");
    std::fs::write(&f, &ng).unwrap();
    let o = scanwatch(&["replay", "--alerts", "/dev/null", "--events", "-", p(&f)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("1 packets"), "{e}");
    assert!(e.contains("1 record(s) stamped after 2199 dropped"), "{e}");
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["timestamp"].as_str().unwrap().starts_with("2009-"), "{v}");
    }
}

/// `--state` naming a directory that holds other files and no state (a
/// mistaken `--state .` or `/var/lib`) is refused before anything in it is
/// changed: it used to be made 0700 and, as root, handed to the capture
/// user.
#[test]
fn a_state_directory_of_other_files_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let o = scanwatch(&[
        "replay",
        "--state",
        p(&other),
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds files scanwatch did not make ('notes.txt')"),
        "{}",
        stderr(&o)
    );
    let mode = std::fs::metadata(&other).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert!(!other.join("scanwatch.db").exists());
    // An empty directory, or one scanwatch made, is a state directory: one
    // with a database moved aside (and, say, an operator's notes) starts
    // afresh with --reset-state; a file system's lost+found is no one's.
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    std::fs::write(aside.join("scanwatch.db.damaged-1700000000"), b"junk").unwrap();
    std::fs::write(aside.join("notes.txt"), b"mine").unwrap();
    let o = scanwatch(&[
        "-q",
        "replay",
        "--state",
        p(&aside),
        "--reset-state",
        "--alerts",
        "/dev/null",
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mount = dir.path().join("mount");
    std::fs::create_dir_all(mount.join("lost+found")).unwrap();
    let o = scanwatch(&[
        "-q",
        "replay",
        "--state",
        p(&mount),
        "--alerts",
        "/dev/null",
        p(&real("nmap-syn-scan-evilfingers.pcap")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for _ in 0..2 {
        let o = scanwatch(&[
            "-q",
            "replay",
            "--state",
            p(&empty),
            "--alerts",
            "/dev/null",
            p(&real("nmap-syn-scan-evilfingers.pcap")),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

/// With --state the summary counts this run's alerts (the counters are
/// saved with the state and keep growing), and a capture older than the
/// state's clock (the same capture replayed again) is warned about.
#[test]
fn summary_counts_this_run_and_warns_of_a_state_ahead_of_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let demo = repo_pcap("demo-16d.pcap");
    let run = || {
        scanwatch(&[
            "replay",
            "--alerts",
            "/dev/null",
            "--state",
            p(&state),
            p(&demo),
        ])
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    let e = stderr(&first);
    assert!(e.contains("alerts: 2 (2 low"), "{e}");
    assert!(!e.contains("WARN"), "{e}");
    let again = run();
    assert!(again.status.success(), "{}", stderr(&again));
    let e = stderr(&again);
    assert!(e.contains("alerts: 0 (0 low"), "{e}");
    assert!(
        e.contains("WARN") && e.contains("older than the detector's clock (2024-03-16T"),
        "{e}"
    );
}
