//! State that is never lost or silently replaced: a damaged or truncated
//! database is kept aside and refused unless `--reset-state`; `kill -9`
//! leaves the last checkpoint, never a corrupt file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Days `from..to` of the generated 45-day capture, written to `path`.
fn multiday(path: &Path, from: u32, to: u32) {
    let mut w = CaptureWriter::create(path, Format::Pcap, 96).unwrap();
    let opts = GenOptions {
        days: 45,
        day_range: Some((from, to)),
        snaplen: 96,
        ..GenOptions::default()
    };
    generate(Profile::Multiday, &opts, &mut w).unwrap();
    w.finish().unwrap();
}

fn scanwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args(args)
        .output()
        .unwrap()
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn aside_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".damaged-"))
        .collect()
}

#[test]
fn damaged_or_truncated_state_is_kept_aside_and_refused() {
    let golden = repo("pcaps/golden.pcap");
    for damage in ["overwrite", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let o = scanwatch(&[
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--state",
            p(&state),
            p(&golden),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let db = state.join("scanwatch.db");
        let bytes = std::fs::read(&db).unwrap();
        let damaged = match damage {
            "overwrite" => vec![0x5a; bytes.len()],
            _ => bytes[..bytes.len() / 3].to_vec(),
        };
        std::fs::write(&db, &damaged).unwrap();
        let _ = std::fs::remove_file(state.join("scanwatch.db-wal"));
        // Refused, with the file kept aside and the way out named.
        let o = scanwatch(&[
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--state",
            p(&state),
            p(&golden),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{damage}: {err}");
        assert!(
            err.contains("damaged") && err.contains("moved to") && err.contains("--reset-state"),
            "{damage}: {err}"
        );
        let aside = aside_files(&state);
        assert_eq!(aside.len(), 1, "{damage}: {aside:?}");
        assert!(!db.exists(), "{damage}: nothing was started in its place");
        // Kept as it was, for inspection.
        assert!(
            std::fs::read(state.join(&aside[0])).unwrap() == damaged,
            "{damage}: the kept file differs"
        );
        // With --reset-state: a fresh database, the damaged one still kept.
        let o = scanwatch(&[
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--reset-state",
            "--state",
            p(&state),
            p(&golden),
        ]);
        assert!(
            o.status.success(),
            "{damage}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(db.exists());
        assert_eq!(aside_files(&state).len(), 1);
        let o = scanwatch(&["hosts", "--state", p(&state)]);
        assert!(o.status.success());
    }
}

/// Replay from a FIFO fed half of a 45-day capture, wait for checkpoints,
/// `kill -9` while it waits for more: the state database opens, holds a
/// complete checkpoint (inventory and clock), and a restart continues.
#[test]
fn kill_9_leaves_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("days.pcap");
    multiday(&cap, 0, 45);
    let bytes = std::fs::read(&cap).unwrap();
    let fifo = dir.path().join("feed");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args([
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--state",
            p(&state),
        ])
        .args(["--set", "state.checkpoint_interval=1h", p(&fifo)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // About 20 days of traffic, then nothing more: the replay waits.
    writer.write_all(&bytes[..bytes.len() * 20 / 45]).unwrap();
    writer.flush().unwrap();
    let db = state.join("scanwatch.db");
    let t = Instant::now();
    let checkpointed = || {
        scanwatch(&["hosts", "--state", p(&state)]).status.success()
            && String::from_utf8_lossy(&scanwatch(&["hosts", "--state", p(&state)]).stdout)
                .lines()
                .count()
                > 50
    };
    while !(db.exists() && checkpointed()) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no checkpoint with hosts appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(writer);
    // The database is whole: it opens, and holds the inventory.
    let o = scanwatch(&["hosts", "--state", p(&state), "10.10.1.5"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("last seen alive 2024-03-"),
        "{out}"
    );
    // A restart continues from it.
    let rest = dir.path().join("rest.pcap");
    multiday(&rest, 30, 45);
    let o = scanwatch(&[
        "-q",
        "replay",
        "--alerts",
        "-",
        "--state",
        p(&state),
        p(&rest),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The day-40 scanner is alerted: activation and inventory came through.
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"src_ip\":\"10.10.2.99\""));
}
