//! State database tests: a checkpoint restores the analytics exactly, newer
//! schemas and damaged files are refused with clear messages, permissions.

use super::*;
use crate::analyze::Record;
use crate::config::Config;
use crate::decode::{FlowKey, Proto};
use crate::track::{Alive, Event, Order, Probe, Reason, Seen};

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
        Record::Failed(Event {
            key: FlowKey {
                src: Addr::v4(src),
                dst: Addr::v4(dst),
                sport: 1,
                dport: 445,
                proto: Proto::Tcp,
            },
            reason: Reason::Unanswered,
            probe: Probe::Syn,
            first_ts: ts,
            last_ts: ts,
            decided_ts: ts,
            retransmissions: 0,
            icmp: None,
            vlan: [0, 0],
            initiator_reset: false,
            at_capture_end: false,
            evicted: false,
            order,
        })
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
    {
        let mut db = StateDb::open(dir.path()).unwrap();
        let mut a = db.load(cfg()).unwrap();
        for d in 0..3 {
            a.process(&day(d, &mut n));
            got.extend(alerts(&mut a));
        }
        db.save(&a).unwrap();
    }
    let db = StateDb::open(dir.path()).unwrap();
    let mut a = db.load(cfg()).unwrap();
    assert_eq!(a.inventory().len(), 20);
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
