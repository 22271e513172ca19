//! State that is never lost or silently replaced: a damaged or truncated
//! database is kept aside and refused unless `--reset-state`; `kill -9`
//! leaves the last checkpoint, never a corrupt file; a full disk or a state
//! directory gone read-only while running is logged, counted and survived:
//! capture and alerts go on, and the next checkpoint once there is room again
//! succeeds. The file-system tests mount file systems and need root (CI runs
//! as root); without it they say so and pass.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use scanwatch::synth::profile::{GenOptions, Profile, generate};
use scanwatch::synth::writer::{CaptureWriter, Format};

mod common;
use common::lab::{
    Ns, Proc, QUICK_LIVE, Rsyslogd, RsyslogdConf, have, need, open_tempdir, root_or_skip, sh,
    wait_for,
};

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
        let replay = |reset: bool| {
            let mut args = vec![
                "-q",
                "replay",
                "--alerts",
                "/dev/null",
                "--state",
                p(&state),
            ];
            if reset {
                args.push("--reset-state");
            }
            args.push(p(&golden));
            scanwatch(&args)
        };
        let o = replay(false);
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
        let o = replay(false);
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
        // A second start without --reset-state (systemd's restart) is
        // refused too: the quarantine does not lapse after one try.
        let o = replay(false);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{damage}, again: {err}");
        assert!(
            err.contains(&aside[0]) && err.contains("--reset-state"),
            "{damage}, again: {err}"
        );
        assert!(!db.exists(), "{damage}: nothing started on the second try");
        // With --reset-state: a fresh database, the damaged one still kept.
        let o = replay(true);
        assert!(
            o.status.success(),
            "{damage}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(db.exists());
        assert_eq!(aside_files(&state).len(), 1);
        // Later starts use it, without the flag.
        let o = replay(false);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
    // The day-40 scanner is alerted: activation and inventory came through.
    restart_alerts_the_day_40_scanner(&state, &dir.path().join("rest.pcap"), 30);
}

/// Replay days `from`..45 of the multi-day capture (written to `rest`) with
/// `state`: it must succeed and alert the scanner that starts on day 40, which
/// only a state that kept the activation clock and the inventory allows.
fn restart_alerts_the_day_40_scanner(state: &Path, rest: &Path, from: u32) {
    multiday(rest, from, 45);
    let o = scanwatch(&[
        "-q",
        "replay",
        "--alerts",
        "-",
        "--state",
        p(state),
        p(rest),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"src_ip\":\"10.10.2.99\""));
}

// ---- A full disk and a read-only file system (root) ----

/// A file system mounted for a test, unmounted when dropped (failed test or
/// not; lazily if something still holds it), with its loop device if any.
struct Mount {
    at: PathBuf,
    loop_dev: Option<String>,
}

impl Mount {
    /// A tmpfs of `size` (mount's syntax: "16m") at `at`.
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={size},mode=0755 tmpfs '{}'",
            p(at)
        ));
        Mount {
            at: at.to_path_buf(),
            loop_dev: None,
        }
    }

    /// The ext4 image `img` at `at`, remounted read-only by the kernel at its
    /// first error, as a data disk usually is (errors=remount-ro). A loop
    /// device of its own each time: `mount -o loop` would reuse one still
    /// attached to the image, and with it the old, read-only, file system.
    fn ext4(img: &Path, at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let dev = sh(&format!("losetup --find --show '{}'", p(img)))
            .trim()
            .to_string();
        let m = Mount {
            at: at.to_path_buf(),
            loop_dev: Some(dev.clone()),
        };
        sh(&format!("mount -o errors=remount-ro {dev} '{}'", p(at)));
        m
    }

    /// Make the kernel see an error in this ext4 file system, so that it
    /// turns it read-only under the open files (what a failing disk does).
    fn ext4_error(&self) {
        let dev = self
            .loop_dev
            .as_deref()
            .unwrap()
            .trim_start_matches("/dev/");
        std::fs::write(
            format!("/sys/fs/ext4/{dev}/trigger_fs_error"),
            "scanwatch state_faults test\n",
        )
        .unwrap();
    }

    /// Unmount, and wait until the loop device has let the image go (the
    /// kernel may take a moment after an error).
    fn unmount(&mut self) {
        sh(&format!("umount '{}'", p(&self.at)));
        if let Some(dev) = self.loop_dev.take() {
            let _ = Command::new("losetup").args(["-d", &dev]).status();
            let backing = format!(
                "/sys/block/{}/loop/backing_file",
                dev.trim_start_matches("/dev/")
            );
            wait_for("the loop device to let go", 15, String::new, || {
                !Path::new(&backing).exists()
            });
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let mounted = Command::new("findmnt")
            .arg(&self.at)
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted
            && !Command::new("umount")
                .arg(&self.at)
                .status()
                .is_ok_and(|s| s.success())
        {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
        if let Some(dev) = &self.loop_dev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// Fill the file system holding `dir` to the last byte; the file to remove
/// to give the room back.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    let mut n = chunk.len();
    while n > 0 {
        match f.write(&chunk[..n]) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => n /= 2,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    path
}

/// A network namespace with only a loopback holding 10.77.0.0/24 (every
/// address of it local): a private link to capture on, where connections
/// to closed ports are refused with a RST.
fn lo_net() -> Ns {
    let ns = Ns::new("swf");
    sh(&format!("ip -n {} addr add 10.77.0.1/24 dev lo", ns.0));
    ns
}

/// The database opens and SQLite finds nothing wrong in it.
fn assert_intact(state: &Path) {
    let c = rusqlite::Connection::open(state.join("scanwatch.db")).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", state.display());
}

/// `scanwatch live` whose state directory's disk fills up while it runs: each
/// failed checkpoint is logged with the file and the reason and counted in
/// the stats line, while the scan it sees meanwhile is alerted to the alert
/// file and to a real rsyslogd. Once there is room again the next checkpoint
/// succeeds (and says so), holding what was learned during the outage; the
/// database is intact and the sensor starts again from it.
#[test]
fn live_sensor_survives_a_full_disk() {
    let Some(_mounts) = root_or_skip("live_sensor_survives_a_full_disk") else {
        return;
    };
    need(&["ip", "python3"]);
    let dir = open_tempdir();
    let d = |f: &str| dir.path().join(f);
    let rsyslogd = Rsyslogd::start(dir.path(), RsyslogdConf::default());
    // A small disk of the state's own, to fill.
    let disk = Mount::tmpfs(&d("disk"), "16m");
    let state = disk.at.join("state");
    let db = p(&state.join("scanwatch.db")).to_string();
    let ns = lo_net();
    let live = |log: &Path| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(env!("CARGO_BIN_EXE_scanwatch"))
            .args(["live", "--interface", "lo", "--state", p(&state)])
            .args(["--alerts", p(&d("alerts.json"))])
            .args(["--syslog", &format!("unix:{}", p(&rsyslogd.sock()))])
            .args(QUICK_LIVE)
            .args(["--set", "state.checkpoint_interval=1s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    };
    let log = || std::fs::read_to_string(d("sensor.log")).unwrap_or_default();
    let mut sensor = Proc(Some(live(&d("sensor.log"))));
    wait_for("the sensor's first stats line", 15, log, || {
        log().contains("stats:")
    });
    // The disk fills up (the database exists, its WAL must grow to take the
    // next checkpoint).
    let filler = fill(&disk.at);
    // Then: a scan (connections from 10.77.0.1 to 30 addresses, all
    // refused) and an ordinary connection that proves 10.77.0.200 alive.
    ns.python(
        "import socket\n\
         srv = socket.socket(); srv.bind(('10.77.0.200', 22)); srv.listen(4)\n\
         c = socket.socket(); c.bind(('10.77.0.50', 0)); c.connect(('10.77.0.200', 22))\n\
         a, _ = srv.accept(); c.sendall(b'x'); a.recv(1); c.close(); a.close()\n\
         for i in range(10, 40):\n\
         \x20   s = socket.socket(); s.bind(('10.77.0.1', 0)); s.settimeout(1)\n\
         \x20   try: s.connect(('10.77.0.%d' % i, 445))\n\
         \x20   except OSError: pass\n\
         \x20   s.close()\n",
    );
    wait_for("a checkpoint to fail", 15, log, || {
        log().contains("checkpoint failed")
    });
    // A failed checkpoint says which file and why, and that the sensor goes on.
    let line = log()
        .lines()
        .find(|l| l.contains("checkpoint failed"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&db) && line.contains("disk is full"),
        "{line}"
    );
    assert!(line.contains("capture and alerts go on"), "{line}");
    // The scanner is alerted, to the file and to syslog, while the
    // checkpoints keep failing.
    let alerts = || std::fs::read_to_string(d("alerts.json")).unwrap_or_default();
    wait_for("the scanner's alert in the alert file", 20, log, || {
        alerts().contains("\"src_ip\":\"10.77.0.1\"")
    });
    let syslog = || rsyslogd.output();
    wait_for("the scanner's alert in rsyslogd's file", 10, log, || {
        syslog().contains("\"src_ip\":\"10.77.0.1\"")
    });
    assert!(
        syslog().starts_with("alert [scanwatch@32473 src=\"10.77.0.1\""),
        "{}",
        syslog()
    );
    // The stats line counts the failures.
    let failures = |l: &str| -> u64 {
        l.split("scanwatch_checkpoint_errors_total=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // The analytics' clock is event time: on this otherwise idle link, each
    // further checkpoint needs a packet to move the clock on.
    let poke = || {
        ns.python(
            "import socket\n\
             s = socket.socket(); s.bind(('10.77.0.60', 0)); s.settimeout(1)\n\
             try: s.connect(('10.77.0.61', 9))\n\
             except OSError: pass\n",
        )
    };
    wait_for("failed checkpoints in the stats line", 20, log, || {
        poke();
        log()
            .lines()
            .filter(|l| l.contains("stats:"))
            .any(|l| failures(l) >= 2)
    });
    assert!(
        !log().contains("succeeded again"),
        "no checkpoint can succeed on a full disk:\n{}",
        log()
    );

    // Room again: the next checkpoint succeeds, and says so.
    std::fs::remove_file(&filler).unwrap();
    wait_for("a checkpoint to succeed again", 20, log, || {
        poke();
        log().contains("succeeded again")
    });
    // It holds what was learned while the disk was full.
    let o = scanwatch(&["hosts", "--state", p(&state), "10.77.0.200"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("last seen alive"),
        "{out}"
    );
    let total = log()
        .lines()
        .filter(|l| l.contains("stats:"))
        .map(failures)
        .max()
        .unwrap();
    // SIGTERM: a final checkpoint, which succeeds. The fault was recovered:
    // exit status 0; the log says there were failures and that the final
    // state is saved.
    let status = sensor.term(20);
    let text = log();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        text.contains("checkpoint(s) failed during the run")
            && text.contains("the final one succeeded"),
        "{text}"
    );
    assert!(total >= 2, "{text}");
    assert_intact(&state);

    // A restart from the same state runs and stops cleanly.
    let mut again = Proc(Some(live(&d("again.log"))));
    let log2 = || std::fs::read_to_string(d("again.log")).unwrap_or_default();
    wait_for("the restarted sensor's first stats line", 15, log2, || {
        log2().contains("stats:")
    });
    assert!(
        log2().contains("scanwatch_checkpoint_errors_total=0"),
        "{}",
        log2()
    );
    let status = again.term(20);
    assert!(status.success(), "{}", log2());
    let o = scanwatch(&["hosts", "--state", p(&state), "10.77.0.200"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_intact(&state);
    drop(ns);
    drop(disk);
}

/// A replay whose state directory turns read-only under it (the kernel does
/// this to an ext4 file system with errors=remount-ro at its first error):
/// the failed checkpoints name the file and the reason, the scanners of the
/// data read afterwards are still alerted, the run ends with exit status 1
/// and a summary line that counts the failures, and after the file system is
/// repaired the database holds the last checkpoint before the failure,
/// intact, from which a restart goes on to alert the next scanner.
#[test]
fn replay_survives_a_state_directory_turned_read_only() {
    let Some(_mounts) = root_or_skip("replay_survives_a_state_directory_turned_read_only") else {
        return;
    };
    for tool in ["mkfs.ext4", "e2fsck", "losetup", "mkfifo"] {
        assert!(have(tool), "{tool} is needed (e2fsprogs, util-linux)");
    }
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: no loop devices here (/dev/loop-control) to mount an ext4 image");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f);
    // Days 0-14 (the activation period), 15-19 (two new scanners on day
    // 15), 20-21.
    let parts: Vec<Vec<u8>> = [(0, 15), (15, 20), (20, 22)]
        .iter()
        .enumerate()
        .map(|(i, &(from, to))| {
            let f = d(&format!("days{from}.pcap"));
            multiday(&f, from, to);
            let b = std::fs::read(&f).unwrap();
            // One stream: the header once, then records.
            if i == 0 { b } else { b[24..].to_vec() }
        })
        .collect();
    let img = d("state.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    sh(&format!("mkfs.ext4 -q -F '{}'", p(&img)));
    let mut disk = Mount::ext4(&img, &d("disk"));
    let dev = disk.loop_dev.clone().unwrap();
    let dev = dev.trim_start_matches("/dev/");
    if !Path::new(&format!("/sys/fs/ext4/{dev}/trigger_fs_error")).exists() {
        eprintln!("skipped: this kernel has no /sys/fs/ext4/{dev}/trigger_fs_error");
        return;
    }
    let state = disk.at.join("state");
    let db = p(&state.join("scanwatch.db")).to_string();
    let fifo = d("feed");
    sh(&format!("mkfifo '{}'", p(&fifo)));
    let log = || std::fs::read_to_string(d("replay.log")).unwrap_or_default();
    let mut replay = Proc(Some(
        Command::new(env!("CARGO_BIN_EXE_scanwatch"))
            .args([
                "replay",
                "--alerts",
                p(&d("alerts.json")),
                "--state",
                p(&state),
            ])
            .args(["--set", "state.checkpoint_interval=1h", p(&fifo)])
            .stderr(std::fs::File::create(d("replay.log")).unwrap())
            .spawn()
            .unwrap(),
    ));
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    feed.write_all(&parts[0]).unwrap();
    feed.flush().unwrap();
    let hosts = || {
        let o = scanwatch(&["hosts", "--state", p(&state)]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).lines().count() > 50
    };
    wait_for("a checkpoint holding the inventory", 30, log, hosts);
    assert!(!log().contains("checkpoint failed"), "{}", log());

    // The file system turns read-only under the open database.
    disk.ext4_error();
    feed.write_all(&parts[1]).unwrap();
    feed.flush().unwrap();
    let alerts = || std::fs::read_to_string(d("alerts.json")).unwrap_or_default();
    wait_for("the day-15 scanners' alerts", 30, log, || {
        alerts().contains("\"src_ip\":\"10.10.2.66\"")
            && alerts().contains("\"src_ip\":\"10.10.2.77\"")
    });
    wait_for("a checkpoint to fail", 30, log, || {
        log().contains("checkpoint failed")
    });
    let line = log()
        .lines()
        .find(|l| l.contains("checkpoint failed"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&db) && line.contains("Read-only file system"),
        "{line}"
    );
    // Reading goes on to the end.
    feed.write_all(&parts[2]).unwrap();
    drop(feed);
    let status = replay.wait(60);
    let text = log();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("the final checkpoint failed") && text.contains(&db),
        "{text}"
    );
    let summary = text
        .lines()
        .find(|l| l.contains("state:") && l.contains("checkpoint(s) failed"))
        .unwrap_or_else(|| panic!("no summary line on the checkpoints:\n{text}"));
    let n: u64 = summary
        .trim()
        .trim_start_matches("state: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Days 15-21 at one checkpoint an hour of event time, and the final one.
    assert!(n >= 24 * 6, "{summary}");
    assert!(
        text.contains("packets"),
        "the run summary is printed: {text}"
    );
    // While it stays read-only, a new run refuses to start, in one line that
    // names the directory and the reason (once).
    let o = scanwatch(&[
        "-q",
        "replay",
        "--alerts",
        "/dev/null",
        "--state",
        p(&state),
        p(&d("days20.pcap")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(p(&state)) && err.matches("Read-only file system").count() == 1,
        "{err}"
    );

    // Repaired (unmount, fsck, mount): the last checkpoint before the
    // failure is there, intact.
    disk.unmount();
    // 0: clean, 1: errors corrected (the one the kernel recorded).
    let o = Command::new("e2fsck")
        .args(["-fy", p(&img)])
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let disk = Mount::ext4(&img, &d("disk"));
    assert_intact(&state);
    let o = scanwatch(&["hosts", "--state", p(&state), "10.10.1.5"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("last seen alive 2024-03-"),
        "{out}"
    );
    // A restart from it goes on: the day-40 scanner is alerted.
    restart_alerts_the_day_40_scanner(&state, &d("rest.pcap"), 40);
    assert_intact(&state);
    drop(disk);
}

/// The value of `scanwatch_NAME=` in a stats line (0 when absent).
fn stat(line: &str, name: &str) -> u64 {
    line.split(&format!("scanwatch_{name}="))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `scanwatch live` on `lo` in `ns`, with a state directory, alerts to
/// `alerts`, syslog to `syslog` if any, fast timers, a stats line every
/// second and a checkpoint every `checkpoint`; its stderr to `log`.
fn live_sensor(
    ns: &Ns,
    state: &Path,
    alerts: &Path,
    syslog: Option<&Path>,
    checkpoint: &str,
    log: &Path,
) -> Proc {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["live", "--interface", "lo", "--state", p(state)])
        .args(["--alerts", p(alerts)]);
    if let Some(s) = syslog {
        c.args(["--syslog", &format!("unix:{}", p(s))]);
    }
    c.args(QUICK_LIVE)
        .args(["--set", &format!("state.checkpoint_interval={checkpoint}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    Proc(Some(c.spawn().unwrap()))
}

/// A connection in `ns` from 10.77.0.50 to a listener on `server`:22 that
/// accepts it: the SYN-ACK proves `server` alive.
fn connect(ns: &Ns, server: &str) {
    ns.python(&format!(
        "import socket\n\
         srv = socket.socket(); srv.bind(('{server}', 22)); srv.listen(4)\n\
         c = socket.socket(); c.bind(('10.77.0.50', 0)); c.connect(('{server}', 22))\n\
         a, _ = srv.accept(); c.sendall(b'x'); a.recv(1); c.close(); a.close(); srv.close()\n"
    ));
}

/// Whether the state in `state` knows `host` alive (`scanwatch hosts`).
fn knows_alive(state: &Path, host: &str) -> bool {
    let o = scanwatch(&["hosts", "--state", p(state), host]);
    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("last seen alive")
}

/// An idle live sensor saves what it learned: the checkpoint clock moves
/// with the wall clock when no packet comes (the watermark of the idle
/// ticks), not only with packet timestamps. Host A is learned and saved;
/// host B, learned one second later, inside the checkpoint interval, and
/// followed by no packet at all, is saved one interval later without
/// waiting for traffic (with packet time alone it waited for the next
/// packet, for ever on a quiet link).
#[test]
fn idle_live_sensor_checkpoints_what_it_learned() {
    let Some(_mounts) = root_or_skip("idle_live_sensor_checkpoints_what_it_learned") else {
        return;
    };
    need(&["ip", "python3"]);
    let dir = open_tempdir();
    let d = |f: &str| dir.path().join(f);
    let state = d("state");
    let ns = lo_net();
    let log = || std::fs::read_to_string(d("sensor.log")).unwrap_or_default();
    let mut sensor = live_sensor(&ns, &state, &d("alerts.json"), None, "5s", &d("sensor.log"));
    wait_for("the sensor's first stats line", 15, log, || {
        log().contains("stats:")
    });
    connect(&ns, "10.77.0.200");
    std::thread::sleep(Duration::from_millis(1500));
    connect(&ns, "10.77.0.201");
    // Both saved while the sensor runs on a silent link: within the reorder
    // delay (4 s) and one interval (5 s), with room to spare.
    wait_for("host B in a checkpoint of the idle sensor", 20, log, || {
        knows_alive(&state, "10.77.0.201")
    });
    assert!(knows_alive(&state, "10.77.0.200"));
    assert!(!log().contains("checkpoint failed"), "{}", log());
    let status = sensor.term(20);
    assert!(status.success(), "{}", log());
    assert_intact(&state);
}

/// `scanwatch live` whose state directory is read-only when it starts (an
/// ext4 file system remounted read-only) but holds an intact database: it
/// says so once, loads the state, captures and alerts (alert file and
/// syslog), counts every checkpoint as failed in the stats line from the
/// first line on, leaves the database as it was, and exits 1 at SIGTERM
/// (the state is not saved). The same with a WAL left by a killed run. A
/// read-only directory without a database stays a one-line error.
#[test]
fn live_sensor_runs_on_a_state_directory_read_only_from_the_start() {
    let Some(_mounts) =
        root_or_skip("live_sensor_runs_on_a_state_directory_read_only_from_the_start")
    else {
        return;
    };
    need(&["ip", "python3", "mkfs.ext4", "losetup"]);
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: no loop devices here (/dev/loop-control) to mount an ext4 image");
        return;
    }
    let dir = open_tempdir();
    let d = |f: &str| dir.path().join(f);
    let rsyslogd = Rsyslogd::start(dir.path(), RsyslogdConf::default());
    let img = d("state.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    sh(&format!("mkfs.ext4 -q -F '{}'", p(&img)));
    let disk = Mount::ext4(&img, &d("disk"));
    let state = disk.at.join("state");
    let empty = disk.at.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let db_file = state.join("scanwatch.db");
    let ns = lo_net();

    // A first run on the writable disk learns 10.77.0.200 alive.
    let log1 = || std::fs::read_to_string(d("first.log")).unwrap_or_default();
    let mut first = live_sensor(&ns, &state, &d("alerts.json"), None, "1s", &d("first.log"));
    wait_for("the first sensor's stats line", 15, log1, || {
        log1().contains("stats:")
    });
    connect(&ns, "10.77.0.200");
    wait_for("10.77.0.200 in a checkpoint", 20, log1, || {
        knows_alive(&state, "10.77.0.200")
    });
    assert!(first.term(20).success(), "{}", log1());

    // The file system turns read-only before the next start.
    sh(&format!("mount -o remount,ro '{}'", p(&disk.at)));
    let before = std::fs::read(&db_file).unwrap();
    let run = |log_name: &str| {
        live_sensor(
            &ns,
            &state,
            &d("alerts.json"),
            Some(&rsyslogd.sock()),
            "1s",
            &d(log_name),
        )
    };
    let log = || std::fs::read_to_string(d("ro.log")).unwrap_or_default();
    let mut sensor = run("ro.log");
    wait_for("the read-only sensor's first stats line", 15, log, || {
        log().contains("stats:")
    });
    // Said once, with the directory and the reason.
    let text = log();
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("running without saving"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(
        warned[0].contains(p(&state))
            && warned[0].contains("Read-only file system")
            && warned[0].contains("scanwatch_checkpoint_errors_total"),
        "{}",
        warned[0]
    );
    // The stats line says so from the first line; the state was loaded.
    let first_stats = text.lines().find(|l| l.contains("stats:")).unwrap();
    assert!(
        stat(first_stats, "checkpoint_errors_total") >= 1,
        "{first_stats}"
    );
    assert!(stat(first_stats, "hosts") >= 1, "{first_stats}");
    // A scan is alerted, to the file and to syslog.
    ns.python(
        "import socket\n\
         for i in range(10, 40):\n\
         \x20   s = socket.socket(); s.bind(('10.77.0.1', 0)); s.settimeout(1)\n\
         \x20   try: s.connect(('10.77.0.%d' % i, 445))\n\
         \x20   except OSError: pass\n\
         \x20   s.close()\n",
    );
    let alerts = || std::fs::read_to_string(d("alerts.json")).unwrap_or_default();
    wait_for("the scanner's alert in the alert file", 20, log, || {
        alerts().contains("\"src_ip\":\"10.77.0.1\"")
    });
    wait_for("the scanner's alert in rsyslogd's file", 10, log, || {
        rsyslogd.output().contains("\"src_ip\":\"10.77.0.1\"")
    });
    // Each checkpoint fails, on an idle link too, and is counted.
    wait_for("failed checkpoints in the stats line", 20, log, || {
        log()
            .lines()
            .filter(|l| l.contains("stats:"))
            .any(|l| stat(l, "checkpoint_errors_total") >= 3)
    });
    let failed = log()
        .lines()
        .find(|l| l.contains("checkpoint failed"))
        .unwrap()
        .to_string();
    assert!(
        failed.contains(p(&state)) && failed.contains("is read-only"),
        "{failed}"
    );
    // What was saved can be read meanwhile.
    assert!(knows_alive(&state, "10.77.0.200"));
    // SIGTERM: the final checkpoint fails too; the state is not saved: 1.
    let status = sensor.term(20);
    let text = log();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("the final checkpoint failed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("state: ") && l.contains("checkpoint(s) failed")),
        "{text}"
    );
    assert!(
        std::fs::read(&db_file).unwrap() == before,
        "the database changed"
    );

    // A read-only directory without a database: nothing to load, an error.
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["live", "--interface", "lo", "--state", p(&empty)])
        .args(["--alerts", p(&d("alerts.json"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(p(&empty)) && err.contains("Read-only file system"),
        "{err}"
    );

    // A run killed with its WAL not yet folded back, then the file system
    // read-only: the state still opens, WAL included.
    sh(&format!("mount -o remount,rw '{}'", p(&disk.at)));
    ns.python(&format!(
        "import os, sqlite3\n\
         c = sqlite3.connect('{}')\n\
         c.execute(\"INSERT OR REPLACE INTO meta (key, value) SELECT 'clock', value FROM meta WHERE key = 'clock'\")\n\
         c.commit()\n\
         os._exit(0)\n",
        p(&db_file)
    ));
    let wal = state.join("scanwatch.db-wal");
    assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0));
    sh(&format!("mount -o remount,ro '{}'", p(&disk.at)));
    let log3 = || std::fs::read_to_string(d("wal.log")).unwrap_or_default();
    let mut sensor = run("wal.log");
    wait_for("the sensor's stats line (WAL left)", 15, log3, || {
        log3().contains("stats:")
    });
    assert!(log3().contains("running without saving"), "{}", log3());
    assert_eq!(sensor.term(20).code(), Some(1), "{}", log3());

    sh(&format!("mount -o remount,rw '{}'", p(&disk.at)));
    assert_intact(&state);
    drop(ns);
    drop(disk);
}
