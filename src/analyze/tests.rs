//! Analytics tests on hand-made records: inventory states, periods, the rules,
//! suppression, dedup.

use super::*;
use crate::config::{Config, Dur};
use crate::decode::{FlowKey, Proto};
use crate::track::{Probe, Seen};

const M: i64 = 60_000_000_000;
const H: i64 = 60 * M;
const D: i64 = 24 * H;

fn a(x: [u8; 4]) -> Addr {
    Addr::v4(x)
}

/// Test config: no activation, no training, unless a test sets them.
fn cfg(sets: &[&str]) -> DetectorSection {
    let mut all = vec![
        "detector.activation_period=0s".to_string(),
        "detector.training_period=0s".to_string(),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    Config::from_toml("test", "", &all).unwrap().detector
}

struct Feed {
    a: Analytics,
    n: i64,
    alerts: Vec<serde_json::Value>,
}

impl Feed {
    fn new(c: DetectorSection) -> Feed {
        Feed {
            a: Analytics::new(c),
            n: 0,
            alerts: Vec::new(),
        }
    }
    fn order(&mut self) -> Order {
        self.n += 1;
        Order {
            block: 0,
            phase: 1,
            at: self.n,
        }
    }
    fn push(&mut self, r: Record) {
        self.a.process(&[r]);
        let mut v = Vec::new();
        self.a.drain_alerts(&mut v);
        self.alerts
            .extend(v.iter().map(|x| serde_json::from_str(&x.json).unwrap()));
    }
    fn fail(&mut self, ts: i64, src: Addr, dst: Addr, dport: u16, reason: Reason) {
        let order = self.order();
        let key = FlowKey {
            src,
            dst,
            sport: 40000,
            dport,
            proto: Proto::Tcp,
        };
        self.push(Record::Failed(Event::syn_failure(key, reason, ts, order)));
    }
    /// An unanswered SYN sent at `ts`, known 40 s later.
    fn timed_out(&mut self, ts: i64, src: Addr, dst: Addr, dport: u16) {
        let order = self.order();
        let key = FlowKey {
            src,
            dst,
            sport: 40000,
            dport,
            proto: Proto::Tcp,
        };
        let mut e = Event::syn_failure(key, Reason::Unanswered, ts, order);
        e.decided_ts = ts + 40_000_000_000;
        self.push(Record::Failed(e));
    }
    fn alive(&mut self, ts: i64, addr: Addr) {
        let order = self.order();
        self.push(Record::Alive(Alive {
            addr,
            ts,
            how: Seen::SynAck,
            order,
        }));
    }
    fn contact(&mut self, ts: i64, src: Addr, dst: Addr) {
        let order = self.order();
        self.push(Record::Contact(Contact {
            src,
            dst,
            ts,
            order,
        }));
    }
    fn alerts_for(&self, src: &str) -> Vec<&serde_json::Value> {
        self.alerts.iter().filter(|x| x["src_ip"] == src).collect()
    }
}

const SCANNER: [u8; 4] = [10, 0, 9, 9];

#[test]
fn sequential_test_decides_on_the_fourth_failed_first_contact() {
    let mut f = Feed::new(cfg(&[]));
    for i in 0..3u8 {
        f.fail(
            i as i64 * M,
            a(SCANNER),
            a([10, 1, 0, i]),
            445,
            Reason::Unanswered,
        );
    }
    assert!(f.alerts.is_empty(), "three failures do not decide");
    f.fail(3 * M, a(SCANNER), a([10, 1, 0, 3]), 445, Reason::Unanswered);
    assert_eq!(f.alerts.len(), 1);
    let al = &f.alerts[0];
    assert_eq!(al["event_type"], "alert");
    assert_eq!(al["alert"]["severity"], "low");
    assert_eq!(al["alert"]["variation"], "sequential_test");
    assert_eq!(al["alert"]["mitre_tactic_id"], "TA0007");
    assert_eq!(al["alert"]["mitre_technique_id"], "T1018");
    assert_eq!(al["alert"]["category"], "Discovery");
    assert_eq!(al["evidence"]["never_seen_hosts"], 4);
    assert_eq!(
        al["evidence"]["sequential_test"]["first_contact_failures"],
        4
    );
    assert_eq!(
        al["timestamp"], "1970-01-01T00:03:00.000000Z",
        "alert time is the deciding failure's"
    );
    assert!(
        al["summary"]
            .as_str()
            .unwrap()
            .starts_with("10.0.9.9 failed to reach 4 never-seen")
    );
}

#[test]
fn successful_first_contacts_offset_failures() {
    let mut f = Feed::new(cfg(&[]));
    let src = a([10, 0, 2, 5]);
    // A client that connects fine to many servers and fails on a few stale ones.
    for i in 0..40u8 {
        f.contact(i as i64 * M, src, a([10, 1, 1, i]));
        if i % 8 == 0 {
            f.fail(
                i as i64 * M + 1,
                src,
                a([10, 1, 9, i]),
                443,
                Reason::Unanswered,
            );
        }
    }
    assert!(f.alerts.is_empty(), "{:?}", f.alerts);
}

#[test]
fn repeated_failures_to_one_dead_host_are_not_scanning() {
    let mut f = Feed::new(cfg(&[]));
    // A monitoring check every 5 minutes for a day, and 30 clients of a
    // decommissioned server trying it all day.
    for i in 0..288 {
        f.fail(
            i * 5 * M,
            a([10, 0, 3, 5]),
            a([10, 1, 1, 250]),
            443,
            Reason::Unanswered,
        );
    }
    for c in 0..30u8 {
        for i in 0..20 {
            f.fail(
                i * H + c as i64,
                a([10, 0, 2, c]),
                a([10, 1, 1, 41]),
                445,
                Reason::Rejected,
            );
        }
    }
    assert!(f.alerts.is_empty(), "{:?}", f.alerts);
}

#[test]
fn active_targets_do_not_count_as_dead() {
    let mut f = Feed::new(cfg(&[]));
    for i in 0..10u8 {
        f.alive(0, a([10, 1, 0, i]));
    }
    // Closed ports on live hosts, a few per host: not host discovery.
    for i in 0..10u8 {
        for p in 0..3u16 {
            f.fail(M, a(SCANNER), a([10, 1, 0, i]), 8000 + p, Reason::Rejected);
        }
    }
    assert!(f.alerts.is_empty(), "{:?}", f.alerts);
    // 25 h later the hosts are inactive: the same failures now count.
    for i in 0..10u8 {
        f.fail(
            25 * H,
            a(SCANNER),
            a([10, 1, 0, i]),
            9000,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.alerts[0]["evidence"]["inactive_hosts"], 4);
}

#[test]
fn no_alert_during_activation() {
    let mut f = Feed::new(cfg(&["detector.activation_period=1d"]));
    f.alive(0, a([10, 0, 0, 1])); // the sensor starts observing at 0
    for i in 0..50u8 {
        f.fail(
            H + i as i64,
            a(SCANNER),
            a([10, 2, 0, i]),
            22,
            Reason::Unanswered,
        );
    }
    assert!(f.alerts.is_empty());
    assert_eq!(f.a.stats.suppressed_activation, 1);
    for i in 0..50u8 {
        f.fail(
            D + H + i as i64,
            a(SCANNER),
            a([10, 3, 0, i]),
            22,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts.len(), 1);
}

#[test]
fn dedup_one_alert_per_period_and_the_next_says_what_is_new() {
    let mut f = Feed::new(cfg(&["detector.dedup_period=1d"]));
    for i in 0..30u8 {
        f.fail(
            H + i as i64,
            a(SCANNER),
            a([10, 2, 0, i]),
            22,
            Reason::Unanswered,
        );
    }
    // More the same day: aggregated, not alerted.
    for i in 0..30u8 {
        f.fail(
            2 * H + i as i64,
            a(SCANNER),
            a([10, 2, 1, i]),
            23,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.a.stats.suppressed_dedup, 1);
    // Next day, new subnet and port.
    for i in 0..30u8 {
        f.fail(
            D + 2 * H + i as i64,
            a(SCANNER),
            a([10, 7, 0, i]),
            3389,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts.len(), 2);
    let p = &f.alerts[1]["previous_alert"];
    assert_eq!(p["timestamp"], f.alerts[0]["timestamp"]);
    assert_eq!(p["new_subnets"], serde_json::json!(["10.7.0.0/24"]));
    assert_eq!(p["new_ports"], serde_json::json!([3389]));
    assert!(p["failed_attempts_since"].as_u64().unwrap() >= 30 + 4);
}

/// A second attack during the dedup period is not lost: when the period
/// ends with the attack's window still open, the window is judged again and
/// alerted then (`deferred_by_dedup`), even with no later failure of the
/// source. `previous_alert.timestamp` is the first alert's `timestamp`.
#[test]
fn an_attack_held_back_by_dedup_is_alerted_when_the_period_ends() {
    let mut f = Feed::new(cfg(&["detector.dedup_period=1d"]));
    let other = a([10, 0, 3, 3]);
    // Day 0, 22:00: a sweep of 10 silent hosts.
    for i in 0..10u8 {
        f.timed_out(22 * H + i64::from(i), a(SCANNER), a([10, 2, 0, i]), 445);
    }
    assert_eq!(f.alerts.len(), 1);
    let first = f.alerts[0].clone();
    // Day 1, 10:00: 60 more in two new subnets on new ports, then quiet.
    for i in 0..60u8 {
        let net = if i < 30 { 5 } else { 6 };
        f.timed_out(
            D + 10 * H + i64::from(i),
            a(SCANNER),
            a([10, 2, net, i]),
            3389,
        );
    }
    assert_eq!(f.alerts.len(), 1, "held back by the dedup period");
    // Other traffic moves the clock past 22:00:40 on day 1.
    f.alive(D + 22 * H + M, other);
    assert_eq!(f.alerts.len(), 2, "{:?}", f.alerts);
    let second = &f.alerts[1];
    assert_eq!(second["timestamp"], "1970-01-02T22:00:40.000000Z");
    assert_eq!(second["decided_at"], second["timestamp"]);
    assert_eq!(second["evidence"]["deferred_by_dedup"], true);
    assert_eq!(first["evidence"]["deferred_by_dedup"], false);
    assert_eq!(second["evidence"]["failed_targets"], 60);
    let p = &second["previous_alert"];
    assert_eq!(p["timestamp"], first["timestamp"]);
    assert_ne!(first["timestamp"], first["decided_at"]);
    assert_eq!(
        p["new_subnets"],
        serde_json::json!(["10.2.5.0/24", "10.2.6.0/24"])
    );
    assert_eq!(p["new_ports"], serde_json::json!([3389]));
    // Nothing more: one alert per dedup period.
    f.alive(2 * D + 23 * H, other);
    assert_eq!(f.alerts.len(), 2);

    // When the attack's window closes before the period ends, it is gone
    // (counted in the next alert's `failed_attempts_since`), not alerted
    // in a window it does not belong to.
    let mut f = Feed::new(cfg(&["detector.dedup_period=1d"]));
    for i in 0..10u8 {
        f.timed_out(H + i64::from(i), a(SCANNER), a([10, 2, 0, i]), 445);
    }
    for i in 0..20u8 {
        f.timed_out(10 * H + i64::from(i), a(SCANNER), a([10, 2, 5, i]), 22);
    }
    f.alive(D + 2 * H, other);
    assert_eq!(f.alerts.len(), 1, "{:?}", f.alerts);

    // A dedup period shorter than the window: the rest of the sweep an
    // alert was raised on is not alerted again when the period ends; a
    // new subnet during it is.
    let mut f = Feed::new(cfg(&["detector.dedup_period=1h"]));
    for i in 0..10u8 {
        f.timed_out(H + i64::from(i), a(SCANNER), a([10, 2, 0, i]), 445);
    }
    f.alive(3 * H, other);
    assert_eq!(f.alerts.len(), 1, "{:?}", f.alerts);
    // The first alert's period ended at 2:00:40: a new subnet at 3:10 is
    // alerted at once.
    f.timed_out(3 * H + 10 * M, a(SCANNER), a([10, 2, 9, 1]), 445);
    assert_eq!(f.alerts.len(), 2, "{:?}", f.alerts);
    assert_eq!(f.alerts[1]["evidence"]["deferred_by_dedup"], false);
    // Within the period of that second alert (decided at 3:10:40, so until
    // 4:10:40): another new subnet waits for its end.
    f.timed_out(3 * H + 30 * M, a(SCANNER), a([10, 2, 8, 1]), 445);
    assert_eq!(f.alerts.len(), 2, "{:?}", f.alerts);
    f.alive(5 * H, other);
    assert_eq!(f.alerts.len(), 3, "{:?}", f.alerts);
    let f_alerts = &f.alerts[1..];
    assert_eq!(f_alerts[1]["evidence"]["deferred_by_dedup"], true);
    assert_eq!(f_alerts[1]["timestamp"], "1970-01-01T04:10:40.000000Z");
    assert_eq!(
        f_alerts[1]["previous_alert"]["new_subnets"],
        serde_json::json!(["10.2.8.0/24"])
    );
}

/// The deferral queue holds one entry a source and alert, however many
/// windows fire during a long dedup period.
#[test]
fn the_dedup_queue_holds_one_entry_a_source() {
    let mut f = Feed::new(cfg(&[
        "detector.test_period=1h",
        "detector.dedup_period=30d",
    ]));
    for h in 0..200i64 {
        for i in 0..5u8 {
            f.timed_out(
                h * H + i64::from(i),
                a(SCANNER),
                a([10, 3, h as u8, i]),
                445,
            );
        }
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.a.owed.len(), 1);
}

/// A window the source was alerted in is no baseline of its normal: a
/// source that swept 100 hosts once is alerted again for 100, not only
/// from 300 on.
#[test]
fn alerted_windows_are_left_out_of_the_own_baseline() {
    let c = cfg(&[
        "detector.training_period=5d",
        "detector.activation_period=2d",
        "detector.scanner_min_days=100",
        "detector.mixture_min_hosts=1000",
    ]);
    let mut f = Feed::new(c);
    let src = a([10, 0, 2, 8]);
    // 30 failed ports a day on days 0 and 1 (activation), 100 on days 2
    // and 3; the successes keep the sequential test down.
    for (day, n) in [(0i64, 30u16), (1, 30), (2, 100), (3, 100)] {
        for i in 0..n {
            f.contact(day * D + i64::from(i) * M, src, a([10, 1, 3, i as u8]));
            f.fail(
                day * D + i64::from(i) * M + 1,
                src,
                a([10, 1, 9, 1]),
                1000 + i,
                Reason::Rejected,
            );
        }
    }
    let al = f.alerts_for("10.0.2.8");
    assert_eq!(al.len(), 2, "{al:?}");
    for x in &al {
        let b = &x["evidence"]["baseline"];
        assert_eq!(b["own_max_failed_targets"], 30);
        assert_eq!(b["threshold_failed_targets"], 90);
    }
}

/// One day of spoofed one-off sources filling the source table leaves
/// nothing behind: the next day a scanner gets a place and is alerted. (A
/// window of one failure was kept as history, which made each one-off
/// source unevictable for a training period.)
#[test]
fn one_off_sources_of_one_day_do_not_hold_the_table_the_next() {
    let mut f = Feed::new(cfg(&[
        "detector.training_period=30d",
        "detector.max_sources=1000",
    ]));
    for i in 0..1000u32 {
        let b = i.to_be_bytes();
        f.fail(
            H + i64::from(i),
            a([10, 9, b[2], b[3]]),
            a([10, 2, 0, 1]),
            80,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.a.sources.len(), 1000);
    for i in 0..50u8 {
        f.fail(
            D + H + i64::from(i) * M,
            a(SCANNER),
            a([10, 3, 0, i]),
            445,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.a.stats.sources_cap_dropped, 0);
    assert_eq!(f.alerts_for("10.0.9.9").len(), 1, "{:?}", f.alerts);
}

#[test]
fn allowlisted_and_external_sources_are_not_alerted() {
    let mut f = Feed::new(cfg(&["detector.allowlist=[\"10.0.9.0/24\"]"]));
    for i in 0..30u8 {
        f.fail(
            i as i64,
            a(SCANNER),
            a([10, 2, 0, i]),
            22,
            Reason::Unanswered,
        );
        f.fail(
            i as i64,
            a([203, 0, 113, 5]),
            a([10, 2, 1, i]),
            22,
            Reason::Unanswered,
        );
    }
    assert!(f.alerts.is_empty());
    assert_eq!(f.a.stats.suppressed_allowlist, 1);
    assert_eq!(f.a.stats.suppressed_external, 1);
    let mut f = Feed::new(cfg(&["detector.alert_external_sources=true"]));
    for i in 0..30u8 {
        f.fail(
            i as i64,
            a([203, 0, 113, 5]),
            a([10, 2, 1, i]),
            22,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts_for("203.0.113.5").len(), 1);
}

#[test]
fn failures_to_targets_outside_home_net_are_not_counted() {
    let mut f = Feed::new(cfg(&[]));
    for i in 0..100u8 {
        f.fail(
            i as i64,
            a(SCANNER),
            a([8, 8, i, 1]),
            443,
            Reason::Unanswered,
        );
    }
    assert!(f.alerts.is_empty());
    assert_eq!(f.a.stats.failed_untracked, 100);
}

#[test]
fn count_and_mixture_is_low_count_alone_informational() {
    // A vertical scan of one never-seen host: many targets, one host: count.
    let mut f = Feed::new(cfg(&["detector.trw_false_positive=1e-30"]));
    for p in 1..=25u16 {
        f.fail(p as i64, a(SCANNER), a([10, 5, 0, 1]), p, Reason::Rejected);
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.alerts[0]["alert"]["variation"], "count");
    assert_eq!(f.alerts[0]["alert"]["severity"], "informational");
    // Many hosts in two subnets, two reasons: count and mixture.
    let mut f = Feed::new(cfg(&["detector.trw_false_positive=1e-30"]));
    for i in 0..25u8 {
        let r = if i % 2 == 0 {
            Reason::Rejected
        } else {
            Reason::Unanswered
        };
        f.fail(i as i64, a(SCANNER), a([10, 5 + i % 2, 0, i]), 445, r);
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.alerts[0]["alert"]["variation"], "count_and_mixture");
    assert_eq!(f.alerts[0]["alert"]["severity"], "low");
}

#[test]
fn vertical_scan_of_a_live_host_is_informational() {
    let mut f = Feed::new(cfg(&[]));
    f.alive(0, a([10, 1, 1, 1]));
    for p in 1..=100u16 {
        f.fail(
            M + p as i64,
            a(SCANNER),
            a([10, 1, 1, 1]),
            p,
            Reason::Rejected,
        );
    }
    assert_eq!(f.alerts.len(), 1);
    assert_eq!(f.alerts[0]["alert"]["variation"], "vertical_scan");
    assert_eq!(
        f.alerts[0]["evidence"]["max_failed_ports_on_active_host"],
        100
    );
    // Which host, and which ports: the first 64 in order.
    let hosts = &f.alerts[0]["evidence"]["active_hosts"];
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(hosts[0]["dest_ip"], "10.1.1.1");
    assert_eq!(hosts[0]["failed_ports"], 100);
    let ports = hosts[0]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 64);
    assert_eq!(
        (&ports[0], &ports[63]),
        (&serde_json::json!("TCP/1"), &serde_json::json!("TCP/64"))
    );
}

/// `several_reasons` and `by_reason` count failures to absent hosts only,
/// like `failed_attempts`: one refused connection to a live server does not
/// change what a sweep of silent hosts looks like.
#[test]
fn a_failure_on_a_live_host_is_no_second_reason() {
    let c = cfg(&[
        "detector.min_failed_targets=20",
        "detector.trw_detection=0.999999",
    ]);
    let run = |refused_on_live: bool| {
        let mut f = Feed::new(c.clone());
        let src = a([10, 0, 2, 9]);
        f.alive(0, a([10, 1, 1, 1]));
        if refused_on_live {
            f.fail(M, src, a([10, 1, 1, 1]), 8080, Reason::Rejected);
        }
        // 20 targets on 5 silent hosts of one subnet, with successes in
        // between that keep the sequential test down.
        for i in 0..20u8 {
            f.contact(2 * M + i64::from(i), src, a([10, 1, 2, i]));
            f.fail(
                3 * M + i64::from(i),
                src,
                a([10, 1, 3, i % 5]),
                1000 + u16::from(i),
                Reason::Unanswered,
            );
        }
        assert_eq!(f.alerts.len(), 1, "{:?}", f.alerts);
        f.alerts[0].clone()
    };
    let (plain, with_live) = (run(false), run(true));
    assert_eq!(plain["alert"]["mixture"], with_live["alert"]["mixture"]);
    assert_eq!(with_live["alert"]["severity"], plain["alert"]["severity"]);
    assert_eq!(
        with_live["evidence"]["by_reason"],
        serde_json::json!({"unanswered": 20})
    );
    assert_eq!(with_live["evidence"]["failed_attempts_all_targets"], 21);
}

#[test]
fn slow_scan_is_caught_by_the_sequential_test() {
    let mut f = Feed::new(cfg(&[]));
    // One probe every 5 minutes to a new never-seen host, between the
    // source's ordinary successful connections to servers it uses every day.
    for i in 0..12u8 {
        let t = 10 * H + i as i64 * 5 * M;
        f.contact(t, a([10, 0, 2, 77]), a([10, 1, 1, 1 + i % 3]));
        f.fail(
            t + M,
            a([10, 0, 2, 77]),
            a([10, 7, 0, i]),
            22,
            Reason::Unanswered,
        );
    }
    let al = f.alerts_for("10.0.2.77");
    assert_eq!(al.len(), 1);
    assert_eq!(al[0]["alert"]["variation"], "sequential_test");
    // Its first three successful contacts (to three servers) offset three
    // failures; four more decide: 7 probes, 35 minutes into a slow scan.
    assert_eq!(al[0]["evidence"]["failed_attempts"], 7);
    assert_eq!(
        al[0]["evidence"]["sequential_test"]["first_contact_successes"],
        3
    );
}

#[test]
fn own_baseline_raises_the_count_bar() {
    // 3 days of training; this source fails on 30 dead targets every day
    // (without deciding the sequential test, thanks to its successes).
    let c = cfg(&[
        "detector.training_period=3d",
        "detector.activation_period=3d",
        "detector.scanner_min_days=100",
        "detector.mixture_min_hosts=1000",
    ]);
    let mut f = Feed::new(c);
    let src = a([10, 0, 2, 8]);
    for day in 0..4i64 {
        for i in 0..30u8 {
            f.contact(day * D + i as i64 * M, src, a([10, 1, 1, i]));
            f.contact(day * D + i as i64 * M, src, a([10, 1, 2, i]));
            f.fail(
                day * D + i as i64 * M + 1,
                src,
                a([10, 1, 9, 1]),
                1000 + u16::from(i),
                Reason::Rejected,
            );
        }
    }
    assert!(f.alerts.is_empty(), "30/day is its normal: {:?}", f.alerts);
    // Day 4: four times its normal.
    for i in 0..120u16 {
        f.contact(4 * D + i as i64 * M, src, a([10, 1, 3, i as u8]));
        f.fail(
            4 * D + i as i64 * M + 1,
            src,
            a([10, 1, 9, 1]),
            2000 + i,
            Reason::Rejected,
        );
    }
    let al = f.alerts_for("10.0.2.8");
    assert_eq!(al.len(), 1);
    let b = &al[0]["evidence"]["baseline"];
    assert_eq!(b["own_max_failed_targets"], 30);
    assert_eq!(b["threshold_failed_targets"], 90);
    assert_eq!(al[0]["evidence"]["failed_targets"], 90);
}

#[test]
fn a_nightly_scanner_is_learned_and_a_new_one_is_alerted() {
    let c = cfg(&[
        "detector.training_period=30d",
        "detector.activation_period=10d",
        "detector.scanner_min_days=7",
    ]);
    let mut f = Feed::new(c);
    let nightly = a([10, 0, 9, 9]);
    for day in 0..12i64 {
        for i in 0..=255u8 {
            f.fail(
                day * D + 2 * H + i as i64,
                nightly,
                a([10, 4, 0, i]),
                22,
                Reason::Unanswered,
            );
        }
    }
    assert!(
        f.alerts_for("10.0.9.9").is_empty(),
        "learned before activation ended"
    );
    assert_eq!(f.a.learned_scanners().len(), 1);
    assert_eq!(f.a.learned_scanners()[0].0, nightly);
    // A new scanner after the activation period is alerted.
    for i in 0..10u8 {
        f.fail(
            11 * D + 10 * H + i as i64,
            a([10, 0, 2, 66]),
            a([10, 5, 0, i]),
            445,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts_for("10.0.2.66").len(), 1);
}

/// Days the sensor saw nothing (it was down, or the captures have a gap)
/// are not days a sanctioned scanner was absent: after 14 nightly scans, a
/// 12-day outage, and three more nights, it is still learned and not
/// alerted. (Counted by the calendar, 14 of 29 days fell below 60%, and it
/// was alerted every night after the outage.)
#[test]
fn an_outage_does_not_unlearn_a_sanctioned_scanner() {
    let c = cfg(&[
        "detector.training_period=30d",
        "detector.activation_period=10d",
        "detector.scanner_min_days=7",
    ]);
    let mut f = Feed::new(c);
    let nightly = a([10, 0, 9, 9]);
    for day in (0..14i64).chain(26..29) {
        // Other traffic through the day, as a sensor sees.
        for h in 0..24 {
            f.alive(day * D + h * H, a([10, 0, 1, 1]));
        }
        for i in 0..=255u8 {
            f.fail(
                day * D + 2 * H + i64::from(i),
                nightly,
                a([10, 4, 0, i]),
                22,
                Reason::Unanswered,
            );
        }
    }
    f.alive(29 * D + H, a([10, 0, 1, 1]));
    assert_eq!(f.a.learned_scanners().len(), 1, "{:?}", f.alerts);
    assert!(f.alerts_for("10.0.9.9").is_empty(), "{:?}", f.alerts);
}

#[test]
fn a_reset_source_is_a_new_one() {
    // A source with something in every part: failures to never-seen and
    // live hosts, a successful contact, an alert, a closed window.
    let mut f = Feed::new(cfg(&["detector.training_period=7d"]));
    let live = a([10, 1, 7, 7]);
    f.alive(0, live);
    for d in 0..2 {
        for i in 0..12u8 {
            let t = d * D + i64::from(i) * M + M;
            f.fail(t, a(SCANNER), a([10, 1, 0, i]), 445, Reason::Unanswered);
            f.fail(t, a(SCANNER), live, 1000 + u16::from(i), Reason::Rejected);
        }
        f.contact(d * D + H, a(SCANNER), a([10, 1, 3, 3]));
    }
    assert!(!f.alerts.is_empty());
    let used = f.a.sources[&a(SCANNER)].clone();
    let json = |s: &Source| serde_json::to_value(s).unwrap();
    assert!(!used.history.is_empty(), "a closed window");
    assert!(used.last_alert.is_some(), "an alert");
    assert!(!used.active_ports.is_empty() && !used.sample.is_empty());
    assert_ne!(json(&used), json(&Source::new(7)));
    let mut reset = used;
    reset.reset(7);
    assert_eq!(json(&reset), json(&Source::new(7)));
}

/// The evidence total as the sources hold it, counted afresh.
fn recounted(a: &Analytics) -> usize {
    a.sources.values().map(|s| s.items()).sum()
}

#[test]
fn evidence_of_all_sources_stays_within_its_total() {
    let mut f = Feed::new(cfg(&["detector.max_evidence_items=300"]));
    for s in 0..10u8 {
        for t in 0..100u8 {
            f.fail(
                (s as i64 * 100 + t as i64) * M,
                a([10, 0, 8, s]),
                a([10, 2, s, t]),
                445,
                Reason::Unanswered,
            );
            assert_eq!(f.a.evidence_items(), recounted(&f.a));
        }
    }
    // The sets stopped at the total.
    assert!(f.a.evidence_items() <= 300, "{}", f.a.evidence_items());
    assert!(f.a.stats.evidence_cap_hit > 0);
    // The first source got its evidence before the total was reached: its
    // alert (four failed first contacts decide) has whole counts.
    let first = f.alerts_for("10.0.8.0");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["evidence"]["failed_targets_capped"], false);
    // The last found no room: its counts would be lower bounds, and say so.
    assert!(f.a.sources[&a([10, 0, 8, 9])].targets_full);
    // Without the total, nothing is refused and a source holds 4 items a
    // failure (contacted, target, host, subnet) plus its port and samples.
    let mut g = Feed::new(cfg(&[]));
    for t in 0..100u8 {
        g.fail(
            t as i64 * M,
            a(SCANNER),
            a([10, 2, 0, t]),
            445,
            Reason::Unanswered,
        );
    }
    assert_eq!(g.a.stats.evidence_cap_hit, 0);
    assert_eq!(g.a.evidence_items(), recounted(&g.a));
    assert!(g.a.evidence_items() >= 300, "{}", g.a.evidence_items());
    // A window's close empties the sets: the total follows.
    g.fail(D + M, a(SCANNER), a([10, 2, 1, 0]), 445, Reason::Unanswered);
    assert_eq!(g.a.evidence_items(), recounted(&g.a));
    assert!(g.a.evidence_items() < 20, "{}", g.a.evidence_items());
}

#[test]
fn one_off_sources_make_room_in_the_evidence_total_for_a_scanner() {
    // Room for ~33 one-off sources (6 items each), not the 100 below.
    let mut f = Feed::new(cfg(&["detector.max_evidence_items=200"]));
    for s in 0..100u8 {
        f.fail(
            s as i64 * M,
            a([10, 0, 7, s]),
            a([10, 3, 0, s]),
            80,
            Reason::Unanswered,
        );
    }
    assert!(
        f.a.stats.sources_evicted > 60,
        "{}",
        f.a.stats.sources_evicted
    );
    assert!(f.a.evidence_items() <= 200);
    // A scanner's failed first contacts still grow its evidence: spoofed
    // one-offs are forgotten for it.
    for t in 0..4u8 {
        f.fail(
            (200 + t as i64) * M,
            a(SCANNER),
            a([10, 4, 0, t]),
            445,
            Reason::Unanswered,
        );
    }
    assert_eq!(f.alerts_for("10.0.9.9").len(), 1, "{:?}", f.a.stats);
    assert_eq!(f.a.stats.evidence_cap_hit, 0);
    assert!(f.a.evidence_items() <= 200);
    assert_eq!(f.a.evidence_items(), recounted(&f.a));
}

#[test]
fn test_period_must_fit_training() {
    let e = Config::from_toml("t", "", &["detector.training_period=12h".into()]).unwrap_err();
    assert!(e.to_string().contains("shorter than test_period"));
    let _ = Dur::secs(1);
}

#[test]
fn sweep_is_judged_in_probe_order_and_stamped_with_the_deciding_probe() {
    let mut f = Feed::new(cfg(&[]));
    f.a.set_delay(46 * 1_000_000_000);
    // 20 SYNs 10 ms apart to silent hosts: each failure is known 40 s after its
    // probe. Meanwhile (t = 5 s) an ARP request of the same source goes
    // unanswered and is known at 10 s, long before the SYN failures.
    let probe = |i: i64| i * 10_000_000;
    let mut records = Vec::new();
    let mut n = 0;
    let mut mk = |first: i64, decided: i64, dst: [u8; 4], proto: Proto, reason: Reason| {
        n += 1;
        let key = FlowKey {
            src: a(SCANNER),
            dst: a(dst),
            sport: 1,
            dport: if proto == Proto::Arp { 0 } else { 445 },
            proto,
        };
        let order = Order {
            block: 0,
            phase: 1,
            at: n,
        };
        Record::Failed(Event {
            probe: if proto == Proto::Arp {
                Probe::Arp
            } else {
                Probe::Syn
            },
            decided_ts: decided,
            ..Event::syn_failure(key, reason, first, order)
        })
    };
    records.push(mk(
        5_000_000_000,
        10_000_000_000,
        [10, 0, 9, 77],
        Proto::Arp,
        Reason::Unresolved,
    ));
    for i in 0..20 {
        records.push(mk(
            probe(i),
            probe(i) + 40_000_000_000,
            [10, 5, 0, i as u8],
            Proto::Tcp,
            Reason::Unanswered,
        ));
    }
    // Arrival order is decision order: the ARP first.
    records.sort_by_key(|r| match r {
        Record::Failed(e) => e.decided_ts,
        _ => 0,
    });
    f.a.process(&records);
    f.a.finish();
    let mut v = Vec::new();
    f.a.drain_alerts(&mut v);
    assert_eq!(v.len(), 1);
    let al: serde_json::Value = serde_json::from_str(&v[0].json).unwrap();
    // Decided by the 4th SYN, sent at 30 ms; known 40 s later.
    assert_eq!(al["timestamp"], "1970-01-01T00:00:00.030000Z");
    assert_eq!(al["decided_at"], "1970-01-01T00:00:40.030000Z");
    assert_eq!(al["evidence"]["failed_attempts"], 4);
    assert_eq!(al["evidence"]["ports"], serde_json::json!([445]));
}

mod reorder {
    use super::*;
    use crate::track::Order;
    use proptest::prelude::*;

    // The reference: one binary heap of every record, earliest first.
    impl PartialEq for Pending {
        fn eq(&self, o: &Self) -> bool {
            (self.0, self.1) == (o.0, o.1)
        }
    }
    impl Eq for Pending {}
    impl PartialOrd for Pending {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Pending {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            // Reversed: BinaryHeap is a max-heap and we pop the earliest.
            (o.0, o.1).cmp(&(self.0, self.1))
        }
    }

    fn rec(ts: i64) -> Record {
        Record::Alive(Alive {
            addr: a([10, 0, 0, 1]),
            ts,
            how: Seen::SynAck,
            order: Order {
                block: 0,
                phase: 0,
                at: 0,
            },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The sorted-runs buffer releases records in exactly the order of
        /// one binary heap by (time, arrival), for any arrival pattern: mostly
        /// in order, two streams late by a steady lag (timers, evictions),
        /// records from anywhere in the past, ties, pops between pushes.
        /// With `filling`, fewer pops than pushes: hundreds of late keys,
        /// several staging areas sorted into runs and merged. With 1 or 3
        /// piles, most late keys find no pile and go to the merged runs.
        #[test]
        fn reorder_buffer_orders_like_one_heap(
            ops in prop::collection::vec((0u8..5, -3i64..4, 0usize..3), 0..600),
            filling in any::<bool>(),
            piles in prop::sample::select(vec![1usize, 3, piles::MAX_PILES]),
        ) {
            let mut split = Reorder::default();
            split.late.piles = piles::Piles::with_max(piles);
            let mut heap = std::collections::BinaryHeap::new();
            let (mut t, mut arrivals) = (0i64, 0u64);
            for (kind, step, pops) in ops {
                let ts = match kind {
                    0 | 1 => t + step.max(0),
                    2 => t - 10 + step,
                    3 => t - 40 + step,
                    _ => t - step.abs() * 5,
                };
                t = t.max(ts);
                arrivals += 1;
                split.push(Pending(ts, arrivals, Held::from(&rec(ts))));
                heap.push(Pending(ts, arrivals, Held::from(&rec(ts))));
                prop_assert_eq!(split.first(), heap.peek().map(|p| p.0));
                prop_assert_eq!(split.len(), heap.len());
                let pops = if filling { pops / 2 } else { pops };
                for _ in 0..pops {
                    let (x, y) = (split.pop(), heap.pop());
                    prop_assert_eq!(x.as_ref().map(|p| (p.0, p.1)), y.as_ref().map(|p| (p.0, p.1)));
                    prop_assert_eq!(split.first(), heap.peek().map(|p| p.0));
                    prop_assert_eq!(split.len(), heap.len());
                }
            }
            while let Some(y) = heap.pop() {
                let x = split.pop().expect("same length");
                prop_assert_eq!((x.0, x.1), (y.0, y.1));
            }
            prop_assert!(split.pop().is_none());
        }
    }
}

mod merge {
    use super::*;
    use crate::track::{Contact, Order, sort_events};
    use proptest::prelude::*;

    fn order(block: u64, phase: u8, at: i64) -> Order {
        Order { block, phase, at }
    }

    /// A record's canonical identity, to compare sequences.
    fn id(r: &Record) -> (Order, u8, Addr, Addr, i64, Option<Reason>) {
        match r {
            Record::Failed(e) => (e.order, 0, e.key.src, e.key.dst, e.first_ts, Some(e.reason)),
            Record::Contact(c) => (c.order, 1, c.src, c.dst, c.ts, None),
            Record::Alive(x) => (x.order, 2, x.addr, x.addr, x.ts, None),
        }
    }

    proptest! {
        /// A block's failures in event order merged with its sorted contacts
        /// and liveness give exactly what sorting all of them gives: the
        /// analytics sees the same sequence as before the merge existed.
        #[test]
        fn merging_sorted_failures_equals_sorting_everything(
            failed in prop::collection::vec((0u8..2, 0i64..6, 0u8..4, 0i64..3, 0usize..3), 0..80),
            others in prop::collection::vec((0u8..2, 0i64..6, 0u8..4, any::<bool>()), 0..40),
            drop_odd in any::<bool>(),
        ) {
            let mut events: Vec<Event> = failed
                .iter()
                .map(|&(phase, at, dst, ts, reason)| {
                    let key = FlowKey {
                        src: a([10, 0, 0, 1]),
                        dst: a([10, 0, 1, dst]),
                        sport: 1,
                        dport: 445,
                        proto: Proto::Tcp,
                    };
                    // Ties but for the reason: see `cmp_records`.
                    Event::syn_failure(key, Reason::ALL[reason], ts, order(7, phase, at))
                })
                .collect();
            sort_events(&mut events);
            let mut rest: Vec<Record> = others
                .iter()
                .map(|&(phase, at, host, contact)| {
                    if contact {
                        Record::Contact(Contact {
                            src: a([10, 0, 0, host]),
                            dst: a([10, 0, 2, host]),
                            ts: at,
                            order: order(7, phase, at),
                        })
                    } else {
                        Record::Alive(Alive {
                            addr: a([10, 0, 3, host]),
                            ts: at,
                            how: Seen::SynAck,
                            order: order(7, phase, at),
                        })
                    }
                })
                .collect();
            // Failures to odd hosts are left out (as a source outside
            // home_net's would be): the rest merge as if they were alone.
            let keep = |e: &Event| e.key.dst.0[15].is_multiple_of(2) || !drop_odd;
            let mut all: Vec<Record> = rest.clone();
            all.extend(events.iter().copied().filter(keep).map(Record::Failed));
            sort_records(&mut all);
            sort_records(&mut rest);
            let mut merged = Vec::new();
            let left_out = merge_records(&rest, &events, keep, &mut merged);
            prop_assert_eq!(left_out as usize, events.len() - events.iter().filter(|e| keep(e)).count());
            prop_assert_eq!(
                merged.iter().map(id).collect::<Vec<_>>(),
                all.iter().map(id).collect::<Vec<_>>()
            );
        }
    }
}

/// The pipeline's reorder thread (a [`Reorderer`] whose releases reach
/// [`Analytics::analyse`] in pieces) and the analytics' own
/// [`Analytics::process_until`] analyse the same records in the same order:
/// same alerts, same counts, same state.
#[test]
fn a_separate_reorderer_analyses_like_process_until() {
    const S: i64 = 1_000_000_000;
    let delay = 46 * S;
    let mut records = Vec::new();
    for i in 0..600i64 {
        let order = Order {
            block: (i / 7) as u64,
            phase: 1,
            at: i,
        };
        let src = a([10, 0, (i % 3) as u8, 9]);
        let dst = a([10, 1, (i % 5) as u8, (i % 251) as u8]);
        let rec = match i % 4 {
            // Decided 40 s after the probe: late, as a SYN timeout is.
            0 | 1 => {
                let key = FlowKey {
                    src,
                    dst,
                    sport: 40000,
                    dport: 445 + (i % 7) as u16,
                    proto: Proto::Tcp,
                };
                Record::Failed(Event {
                    decided_ts: i * S + 40 * S,
                    ..Event::syn_failure(key, Reason::Unanswered, i * S, order)
                })
            }
            2 => Record::Alive(Alive {
                addr: dst,
                ts: i * S + 40 * S,
                how: Seen::SynAck,
                order,
            }),
            _ => Record::Contact(Contact {
                src,
                dst,
                ts: i * S + 40 * S,
                order,
            }),
        };
        records.push(rec);
    }
    let blocks: Vec<&[Record]> = records.chunks(7).collect();
    let watermark = |b: &[Record]| b.iter().map(|r| r.known_at()).max().unwrap_or(i64::MIN);

    let mut one = Analytics::new(cfg(&[]));
    one.set_delay(delay);
    for b in &blocks {
        one.process_until(b, watermark(b));
    }
    one.finish();

    let mut two = Analytics::new(cfg(&[]));
    let mut r = Reorderer::new(delay);
    let mut released = Vec::new();
    for b in &blocks {
        r.push(b, watermark(b), |p| released.push(p));
        let overflow = r.take_overflow();
        two.analyse(&mut released, overflow);
    }
    r.finish(|p| released.push(p));
    two.analyse(&mut released, 0);
    two.finish();

    let alerts = |x: &mut Analytics| {
        let mut v = Vec::new();
        x.drain_alerts(&mut v);
        v.into_iter().map(|a| a.json).collect::<Vec<_>>()
    };
    let (a1, a2) = (alerts(&mut one), alerts(&mut two));
    assert!(!a1.is_empty(), "the scanners alert");
    assert_eq!(a1, a2);
    assert_eq!(format!("{:?}", one.stats), format!("{:?}", two.stats));
    assert_eq!(
        (
            one.clock(),
            one.inventory().len(),
            one.sources_len(),
            one.evidence_items()
        ),
        (
            two.clock(),
            two.inventory().len(),
            two.sources_len(),
            two.evidence_items()
        )
    );
}
