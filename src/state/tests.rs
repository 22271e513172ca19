//! State database tests: a checkpoint restores the analytics exactly, newer
//! schemas and damaged files are refused with clear messages, permissions.

use super::*;
use crate::analyze::Record;
use crate::config::Config;
use crate::decode::{FlowKey, Proto};
use crate::track::{Alive, Carried, Event, Order, Reason, Seen};

const H: i64 = 3_600_000_000_000;
const D: i64 = 24 * H;

fn cfg() -> DetectorSection {
    let sets = [
        "detector.activation_period=1d".to_string(),
        "detector.training_period=3d".to_string(),
    ];
    Config::from_toml("t", "", &sets).unwrap().detector
}

/// Day `d`: hosts 10.1.0.x alive, a client failing on one dead host, and on
/// day 5 a sweep of never-seen hosts.
fn day(d: i64, n: &mut i64) -> Vec<Record> {
    let mut v = Vec::new();
    let mut order = || {
        *n += 1;
        Order {
            block: 0,
            phase: 1,
            at: *n,
        }
    };
    for i in 0..20u8 {
        v.push(Record::Alive(Alive {
            addr: Addr::v4([10, 1, 0, i]),
            ts: d * D + H,
            how: Seen::SynAck,
            order: order(),
        }));
    }
    let fail = |ts: i64, src: [u8; 4], dst: [u8; 4], order: Order| {
        let key = FlowKey {
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            sport: 1,
            dport: 445,
            proto: Proto::Tcp,
        };
        Record::Failed(Event::syn_failure(key, Reason::Unanswered, ts, order))
    };
    v.push(fail(d * D + 2 * H, [10, 0, 2, 1], [10, 1, 9, 9], order()));
    if d == 5 {
        for i in 0..30u8 {
            v.push(fail(
                d * D + 3 * H + i as i64,
                [10, 0, 2, 66],
                [10, 5, 0, i],
                order(),
            ));
        }
    }
    v
}

fn alerts(a: &mut Analytics) -> Vec<String> {
    let mut v = Vec::new();
    a.drain_alerts(&mut v);
    v.into_iter().map(|x| x.json).collect()
}

#[test]
fn checkpoint_and_restore_continue_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // One run over 7 days.
    let mut whole = Analytics::new(cfg());
    let mut n = 0;
    let mut expected = Vec::new();
    for d in 0..7 {
        whole.process(&day(d, &mut n));
        expected.extend(alerts(&mut whole));
    }
    assert_eq!(expected.len(), 1, "the day-5 sweep is alerted");
    // Days 0-2, checkpoint, new process, days 3-6.
    let mut n = 0;
    let mut got = Vec::new();
    let held;
    {
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut a = db.load(cfg()).unwrap();
        for d in 0..3 {
            a.process(&day(d, &mut n));
            got.extend(alerts(&mut a));
        }
        db.save(&a).unwrap();
        held = (a.evidence_items(), a.data_windows.clone());
    }
    let db = StateDb::open(dir.path()).unwrap();
    let mut a = db.load(cfg()).unwrap();
    assert_eq!(a.inventory().len(), 20);
    // The windows that had records (for learning scanners) come back.
    assert_eq!(a.data_windows, held.1);
    assert_eq!(a.data_windows.as_ref().map(|d| d.len()), Some(2));
    let held = held.0;
    // The evidence total is counted again from the loaded sources.
    assert!(held > 0);
    assert_eq!(a.evidence_items(), held);
    for d in 3..7 {
        a.process(&day(d, &mut n));
        got.extend(alerts(&mut a));
    }
    assert_eq!(got, expected);
    // What `scanwatch hosts` reads.
    let hosts = db.hosts(Some(Addr::v4([10, 1, 0, 3]))).unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].1.seen, Seen::SynAck as u8);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    StateDb::open(dir.path())
        .unwrap()
        .set_meta("schema_version", "99")
        .unwrap();
    let e = StateDb::open(dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("newer scanwatch") && e.contains("99"), "{e}");
    let e = StateDb::open_existing(dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("newer scanwatch"), "{e}");
}

#[test]
fn damaged_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
    let e = StateDb::open(dir.path())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("damaged") && e.contains(DB_FILE), "{e}");
}

#[test]
fn a_file_given_as_the_state_directory_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statefile");
    std::fs::write(&file, b"not a directory").unwrap();
    let e = StateDb::open(&file).err().expect("refused").to_string();
    assert!(
        e.contains("statefile") && e.contains("is not a directory"),
        "{e}"
    );
    // And it is left as it was.
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn missing_state_for_queries() {
    let dir = tempfile::tempdir().unwrap();
    let e = StateDb::open_existing(&dir.path().join("nope"))
        .err()
        .expect("missing")
        .to_string();
    assert!(e.contains("no state database"), "{e}");
}

#[cfg(unix)]
#[test]
fn state_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("state");
    StateDb::open(&d).unwrap();
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(d.join(DB_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

/// A checkpoint rewrites every table, so without truncation the WAL stays as
/// large as the whole state after each save (SQLite reuses it but never
/// shrinks it), and a small state disk holds the state twice.
#[test]
fn wal_is_truncated_after_each_save() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = StateDb::open(dir.path()).unwrap();
    let mut a = db.load(cfg()).unwrap();
    let wal = dir.path().join(format!("{DB_FILE}-wal"));
    for round in 0..4i64 {
        // 120,000 hosts: several MB of rows and index, all rewritten.
        for i in 0..120_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            a.inv.restore(
                Addr::v4([10, b, c, d]),
                Host {
                    first_alive: 0,
                    // Minute starts, as the inventory keeps them.
                    last_alive: round * H + i64::from(i) * crate::inventory::GRANULARITY,
                    seen: Seen::SynAck as u8,
                },
            );
        }
        db.save(&a).unwrap();
        let db_len = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        assert!(db_len > 4 << 20, "a big state: {db_len} bytes");
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(
            wal_len <= 64 << 10,
            "save {round}: the WAL holds {wal_len} bytes after the checkpoint (database {db_len})"
        );
    }
    // Everything is in the database proper: it reads back whole.
    drop(db);
    let db = StateDb::open_existing(dir.path()).unwrap();
    let hosts = db.hosts(None).unwrap();
    assert_eq!(hosts.len(), 120_000);
    assert_eq!(
        hosts[5].1.last_alive,
        3 * H + 5 * crate::inventory::GRANULARITY
    );
}

/// A database opened read-only loads like any other; a save first opens the
/// directory for writing, and once that works (here at once: the directory
/// is writable) saving goes on as usual.
#[test]
fn read_only_database_loads_and_saves_once_writable() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    {
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut a = db.load(cfg()).unwrap();
        for d in 0..3 {
            a.process(&day(d, &mut n));
        }
        db.save(&a).unwrap();
    }
    // A clean close leaves no WAL: read as immutable if need be.
    let mut db =
        StateDb::open_read_only(dir.path(), "Read-only file system (os error 30)").unwrap();
    assert_eq!(db.read_only(), Some("Read-only file system (os error 30)"));
    let mut a = db.load(cfg()).unwrap();
    assert_eq!(a.inventory().len(), 20);
    a.process(&day(3, &mut n));
    db.save(&a).unwrap();
    assert_eq!(db.read_only(), None, "opened for writing by the save");
    let (_, clock) = StateDb::open_existing(dir.path())
        .unwrap()
        .clocks()
        .unwrap();
    assert_eq!(clock, Some(a.clock()));
    // No database: nothing to read.
    let e = StateDb::open_read_only(&dir.path().join("none"), "x")
        .err()
        .expect("missing");
    assert!(matches!(e, StateError::Missing { .. }), "{e}");
}

#[test]
fn unwritable_errors_are_told_apart() {
    let dir = |errno| StateError::Dir {
        path: "/s".into(),
        error: std::io::Error::from_raw_os_error(errno),
    };
    for errno in [libc::EROFS, libc::EACCES, libc::EPERM] {
        let why = dir(errno).unwritable().expect("unwritable");
        assert_eq!(why, std::io::Error::from_raw_os_error(errno).to_string());
    }
    assert_eq!(dir(libc::ENOENT).unwritable(), None);
    assert_eq!(dir(libc::ENOSPC).unwritable(), None);
    let damaged = StateError::Damaged {
        path: "/s/scanwatch.db".into(),
        detail: "x".into(),
    };
    assert_eq!(damaged.unwritable(), None);
}

#[test]
fn uri_paths_are_escaped() {
    assert_eq!(uri_path(Path::new("/var/lib/s/x.db")), "/var/lib/s/x.db");
    assert_eq!(
        uri_path(Path::new("/a b/c?d#e%f/é.db")),
        "/a%20b/c%3Fd%23e%25f/%C3%A9.db"
    );
}

const MIN: i64 = 60_000_000_000;

/// Live, idle: the clock stays at the last record while the watermark (the
/// wall clock) moves on; what was learned is saved one interval later, and
/// nothing more while nothing changes.
#[test]
fn idle_live_sensor_checkpoints_with_the_watermark() {
    let t0 = 1_700_000_000 * 1_000_000_000i64;
    let mut s = CheckpointSchedule::new(5 * MIN, i64::MIN);
    // The first block (no watermark yet) starts the clock.
    assert!(!s.due(i64::MIN, i64::MIN, false));
    assert!(!s.due(t0, t0, true));
    // A record at t0 + 1 s, then only idle ticks every 100 ms.
    let clock = t0 + 1_000_000_000;
    assert!(!s.due(clock, t0 + 1_000_000_000, true));
    let mut saved_at = Vec::new();
    let mut w = t0 + 1_000_000_000;
    while w < t0 + 30 * MIN {
        w += 100_000_000;
        if s.due(clock, w, false) {
            saved_at.push(w);
            s.done(clock, w, true);
        }
    }
    // Once, one interval after the first block; then nothing changes.
    assert_eq!(saved_at, vec![t0 + 5 * MIN]);
}

/// With the clock alone (before: `clock >= next`) an idle sensor never saved;
/// a failed save is tried again each interval, idle or not, until one works.
#[test]
fn failed_checkpoints_are_retried_every_interval() {
    let mut s = CheckpointSchedule::new(MIN, 0);
    assert!(!s.due(0, 0, true));
    let mut tries = Vec::new();
    let mut w = 0;
    while w < 5 * MIN {
        w += 100_000_000;
        if s.due(0, w, false) {
            tries.push(w / MIN);
            // The third try succeeds.
            s.done(0, w, tries.len() == 3);
        }
    }
    assert_eq!(tries, vec![1, 2, 3]);
    // A change after a quiet spell past the interval is saved at once.
    assert!(s.due(0, 7 * MIN, true));
}

/// Replay: the checkpoints fall where event time (records and watermarks,
/// both from packet timestamps) says, whatever else: the same input gives
/// the same checkpoints.
#[test]
fn replay_checkpoints_follow_event_time() {
    let run = || {
        let mut s = CheckpointSchedule::new(H, i64::MIN);
        let mut at = Vec::new();
        // One block a second of capture time for 5 h; the clock lags the
        // watermark by the reorder delay.
        for sec in 0..5 * 3600i64 {
            let w = sec * 1_000_000_000;
            let clock = (w - 46_000_000_000).max(0);
            if s.due(clock, w, true) {
                at.push(sec);
                s.done(clock, w, true);
            }
        }
        at
    };
    let first = run();
    assert_eq!(first, vec![3600, 7200, 10800, 14400]);
    assert_eq!(run(), first);
}

fn cfg_with(caps: &[&str]) -> DetectorSection {
    let mut sets = vec![
        "detector.activation_period=1d".to_string(),
        "detector.training_period=3d".to_string(),
    ];
    sets.extend(caps.iter().map(|s| s.to_string()));
    Config::from_toml("t", "", &sets).unwrap().detector
}

/// A restart with lower caps than the state was saved with keeps, of the
/// hosts, those seen alive most recently, and of the sources those with the
/// most to lose. Before, `load` restored everything, whatever the caps.
#[test]
fn a_restart_with_lower_caps_keeps_the_right_hosts_and_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = StateDb::open(dir.path()).unwrap();
    let mut a = db.load(cfg()).unwrap();
    for x in 1..=10u8 {
        a.inv.restore(
            Addr::v4([10, 1, 0, x]),
            Host {
                first_alive: 0,
                last_alive: i64::from(x) * crate::inventory::GRANULARITY,
                seen: Seen::SynAck as u8,
            },
        );
    }
    // One source with one failure, the template of the others.
    let mut n = 0;
    a.process(&day(0, &mut n)[20..]);
    assert_eq!(a.sources_len(), 1);
    db.save(&a).unwrap();
    let template: serde_json::Value = serde_json::from_str(
        &db.conn
            .query_row("SELECT state FROM sources", [], |r| r.get::<_, String>(0))
            .unwrap(),
    )
    .unwrap();
    let win = |w: i64| serde_json::json!({"win": w, "failed_targets": 3, "never_hosts": 1, "scanning": false});
    let variants: Vec<([u8; 4], serde_json::Value)> = vec![
        ([10, 0, 4, 1], serde_json::json!({"learned": true})),
        (
            [10, 0, 4, 2],
            serde_json::json!({"last_alert": {"ts": 0, "at": 0, "subnets": [], "ports": []}}),
        ),
        (
            [10, 0, 4, 3],
            serde_json::json!({"history": [win(-2), win(-1)]}),
        ),
        ([10, 0, 4, 4], serde_json::json!({"history": [win(-1)]})),
        ([10, 0, 4, 5], serde_json::json!({"attempts_all": 50})),
    ];
    let mut rows = variants;
    for x in 1..=20u8 {
        rows.push(([10, 0, 3, x], serde_json::json!({})));
    }
    db.conn.execute("DELETE FROM sources", []).unwrap();
    for (addr, change) in &rows {
        let mut s = template.clone();
        for (k, v) in change.as_object().unwrap() {
            s[k] = v.clone();
        }
        db.conn
            .execute(
                "INSERT INTO sources (addr, state) VALUES (?1, ?2)",
                params![Addr::v4(*addr).to_string(), s.to_string()],
            )
            .unwrap();
    }
    drop(db);

    let db = StateDb::open(dir.path()).unwrap();
    // The caps it was saved with: everything comes back.
    let all = db.load(cfg()).unwrap();
    assert_eq!((all.inventory().len(), all.sources_len()), (10, 25));
    assert_eq!(all.inventory().hosts_forgotten, 0);

    let mut a = db
        .load(cfg_with(&[
            "detector.max_hosts=3",
            "detector.max_sources=4",
        ]))
        .unwrap();
    let hosts: Vec<Addr> = a.inventory().sorted().into_iter().map(|h| h.0).collect();
    assert_eq!(
        hosts,
        [8, 9, 10].map(|x| Addr::v4([10, 1, 0, x])),
        "the hosts seen alive most recently"
    );
    assert_eq!(a.inventory().hosts_forgotten, 7);
    let mut sources: Vec<Addr> = a.sources.iter().map(|(k, _)| *k).collect();
    sources.sort();
    assert_eq!(
        sources,
        [1, 2, 3, 4].map(|x| Addr::v4([10, 0, 4, x])),
        "learned, alerted, then the most history"
    );
    assert_eq!(a.learned_scanners().len(), 1);
    // The evidence total is that of the sources kept.
    let items: usize = a.sources.values().map(|s| s.items()).sum();
    assert_eq!(a.evidence_items(), items);
    // One more: the busiest current window.
    let b = db.load(cfg_with(&["detector.max_sources=5"])).unwrap();
    assert!(b.sources.contains_key(&Addr::v4([10, 0, 4, 5])));
    assert_eq!(b.sources_len(), 5);

    // Saved again, the state holds what was kept; the sensor goes on.
    let mut db = db;
    a.process(&day(1, &mut n));
    db.save(&a).unwrap();
    assert_eq!(db.hosts(None).unwrap().len(), 3);
    let kept: i64 = db
        .conn
        .query_row("SELECT count(*) FROM sources", [], |r| r.get(0))
        .unwrap();
    assert!(kept <= 4, "{kept}");
}

/// `detector.forget_hosts_after`: at each window close, hosts not seen
/// alive for longer are forgotten (0, the default, forgets none).
#[test]
fn hosts_idle_longer_than_forget_hosts_after_are_forgotten_at_window_close() {
    let alive = |addr: [u8; 4], ts: i64, at: i64| {
        Record::Alive(Alive {
            addr: Addr::v4(addr),
            ts,
            how: Seen::SynAck,
            order: Order {
                block: 0,
                phase: 1,
                at,
            },
        })
    };
    for (set, kept) in [("0s", 21), ("2d", 1)] {
        let mut a = Analytics::new(cfg_with(&[&format!("detector.forget_hosts_after={set}")]));
        let mut n = 0;
        a.process(&day(0, &mut n)[..20]);
        for d in 1..=4 {
            a.process(&[alive([10, 2, 0, 1], d * D + H, d)]);
            if d == 2 {
                assert_eq!(a.inventory().len(), 21, "{set}: idle for 2 days, not more");
            }
        }
        assert_eq!(a.inventory().len(), kept, "{set}");
        assert_eq!(a.inventory().hosts_forgotten, 21 - kept as u64);
        assert_eq!(a.inventory().hosts_forgotten_active, 0);
    }
}

/// An attack held back by the dedup period is alerted when the period
/// ends, across a checkpoint and restart in between, as in one run.
#[test]
fn a_deferred_alert_survives_a_restart() {
    let sets = [
        "detector.activation_period=0s".to_string(),
        "detector.training_period=3d".to_string(),
        "detector.dedup_period=1d".to_string(),
    ];
    let c = Config::from_toml("t", "", &sets).unwrap().detector;
    let mut n = 0;
    let mut rec = |ts: i64, dst: Option<[u8; 4]>| {
        n += 1;
        let order = Order {
            block: 0,
            phase: 1,
            at: n,
        };
        match dst {
            Some(d) => {
                let key = FlowKey {
                    src: Addr::v4([10, 0, 2, 66]),
                    dst: Addr::v4(d),
                    sport: 1,
                    dport: 445,
                    proto: Proto::Tcp,
                };
                Record::Failed(Event::syn_failure(key, Reason::Unanswered, ts, order))
            }
            None => Record::Alive(Alive {
                addr: Addr::v4([10, 1, 0, 1]),
                ts,
                how: Seen::SynAck,
                order,
            }),
        }
    };
    let first: Vec<Record> = (0..10u8)
        .map(|i| rec(22 * H + i64::from(i), Some([10, 5, 0, i])))
        .collect();
    let second: Vec<Record> = (0..10u8)
        .map(|i| rec(D + 10 * H + i64::from(i), Some([10, 6, 0, i])))
        .collect();
    let later = vec![rec(D + 23 * H, None)];
    let mut whole = Analytics::new(c.clone());
    let mut expected = Vec::new();
    for r in [&first, &second, &later] {
        whole.process(r);
        expected.extend(alerts(&mut whole));
    }
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert!(
        expected[1].contains("\"deferred_by_dedup\":true"),
        "{}",
        expected[1]
    );
    let dir = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    {
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut a = db.load(c.clone()).unwrap();
        a.process(&first);
        a.process(&second);
        got.extend(alerts(&mut a));
        db.save(&a).unwrap();
    }
    let db = StateDb::open(dir.path()).unwrap();
    let mut a = db.load(c).unwrap();
    a.process(&later);
    got.extend(alerts(&mut a));
    assert_eq!(got, expected);
}

/// Attempts left undecided by the last run come back from the state as they
/// were saved, in order, of every kind a tracker holds (IPv4 and IPv6, ARP,
/// other IP protocols, VLAN tags); the next checkpoint, which the tracker
/// has taken them from, leaves none behind.
#[test]
fn undecided_attempts_are_carried_to_the_next_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = |src: Addr, dst: Addr, sport, dport, proto| FlowKey {
        src,
        dst,
        sport,
        dport,
        proto,
    };
    let v6 = |last: u8| Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
    let carried = vec![
        Carried {
            key: key(
                Addr::v4([10, 0, 0, 1]),
                Addr::v4([10, 0, 0, 2]),
                40000,
                445,
                Proto::Tcp,
            ),
            first_ts: 5 * D,
            last_ts: 5 * D + 3_000_000_000,
            isn: u32::MAX,
            retrans: 2,
            vlan: [10, 20],
            state: 0,
            probe: 0,
            initiator_reset: true,
        },
        Carried {
            key: key(v6(1), v6(2), 53, 53, Proto::Udp),
            first_ts: -7,
            last_ts: i64::MAX,
            isn: 0,
            retrans: 65_535,
            vlan: [0, 0],
            state: 3,
            probe: 6,
            initiator_reset: false,
        },
        Carried {
            key: key(
                Addr::v4([10, 0, 0, 1]),
                Addr::v4([10, 0, 0, 9]),
                0,
                0,
                Proto::Arp,
            ),
            first_ts: 1,
            last_ts: 2,
            isn: 0,
            retrans: 0,
            vlan: [4095, 0],
            state: 2,
            probe: 9,
            initiator_reset: false,
        },
        Carried {
            key: key(v6(3), v6(4), 0, 0, Proto::Ip(132)),
            first_ts: 9,
            last_ts: 9,
            isn: 0,
            retrans: 0,
            vlan: [0, 0],
            state: 3,
            probe: 8,
            initiator_reset: false,
        },
    ];
    assert!(carried.iter().all(Carried::is_valid));
    let mut db = StateDb::open(dir.path()).unwrap();
    let mut a = Analytics::new(cfg());
    a.carried = carried.clone();
    a.carried_until = 5 * D + 4_000_000_000;
    db.save(&a).unwrap();
    let mut b = StateDb::open(dir.path()).unwrap().load(cfg()).unwrap();
    assert_eq!(b.carried, carried);
    assert_eq!(b.carried_until, a.carried_until);
    // The next run took them: its checkpoints have none.
    b.carried.clear();
    db.save(&b).unwrap();
    let c = StateDb::open(dir.path()).unwrap().load(cfg()).unwrap();
    assert!(c.carried.is_empty());
}

/// A pending attempt no tracker makes (an unknown state, an ARP probe of a
/// TCP flow, a port beyond 16 bits) makes the state damaged, as a damaged
/// source does, rather than reaching the tracker.
#[test]
fn a_damaged_carried_attempt_is_refused() {
    for (column, value) in [
        ("state", 4),
        ("probe", 9),
        ("sport", 70_000),
        ("proto", 300),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut a = Analytics::new(cfg());
        a.carried = vec![Carried {
            key: FlowKey {
                src: Addr::v4([10, 0, 0, 1]),
                dst: Addr::v4([10, 0, 0, 2]),
                sport: 1,
                dport: 2,
                proto: Proto::Tcp,
            },
            first_ts: 1,
            last_ts: 1,
            isn: 1,
            retrans: 0,
            vlan: [0, 0],
            state: 0,
            probe: 0,
            initiator_reset: false,
        }];
        db.save(&a).unwrap();
        assert_eq!(db.load(cfg()).unwrap().carried, a.carried);
        db.conn
            .execute(&format!("UPDATE pending SET {column} = {value}"), [])
            .unwrap();
        let e = db.load(cfg()).err().expect("refused").to_string();
        assert!(
            e.contains("damaged") && e.contains("pending attempt"),
            "{column}: {e}"
        );
    }
}

/// A state written before the `pending` table existed (schema 1) opens, is
/// brought to schema 2, and carries nothing; read-only, it loads too.
#[test]
fn a_version_1_state_is_brought_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path()).unwrap();
        db.conn.execute_batch("DROP TABLE pending").unwrap();
        db.set_meta("schema_version", "1").unwrap();
    }
    let ro = StateDb::open_read_only(dir.path(), "test").unwrap();
    assert!(ro.load(cfg()).unwrap().carried.is_empty());
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.meta("schema_version").unwrap().as_deref(), Some("2"));
    assert!(db.load(cfg()).unwrap().carried.is_empty());
    // A newer scanwatch's state is refused before anything is written to
    // it (here: the table it lacks is not made).
    db.conn.execute_batch("DROP TABLE pending").unwrap();
    db.set_meta("schema_version", "3").unwrap();
    drop(db);
    assert!(StateDb::open(dir.path()).is_err());
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let tables: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}
