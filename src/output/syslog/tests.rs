use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::analyze::{Alert, Severity};
use crate::decode::Addr;

const TS: i64 = 1_710_583_200_034_000_000; // 2024-03-16T10:00:00.034000Z

fn fmt(format: SyslogFormat, local: bool) -> Formatter {
    Formatter {
        format,
        facility: Facility::Local0,
        hostname: "sensor1.example.org".into(),
        pid: 4242,
        local,
    }
}

fn alert(severity: Severity, json: &str) -> Alert {
    Alert {
        ts: TS,
        src: Addr::v4([10, 10, 2, 66]),
        severity,
        variation: "sequential_test",
        json: json.to_string(),
    }
}

fn format_alert(f: &Formatter, a: &Alert) -> String {
    let src = a.src.to_string();
    let sd = alert_sd(a, &src);
    let mut out = String::new();
    f.format(
        &Message {
            kind: MsgKind::Alert,
            ts_ns: a.ts,
            severity: a.severity.into(),
            sd: &sd,
            json: &a.json,
        },
        &mut out,
    );
    out
}

#[test]
fn rfc5424_alert() {
    let a = alert(Severity::Low, "{\"event_type\":\"alert\",\"seq\":1}\n");
    assert_eq!(
        format_alert(&fmt(SyslogFormat::Rfc5424, false), &a),
        "<132>1 2024-03-16T10:00:00.034000Z sensor1.example.org scanwatch 4242 alert \
         [scanwatch@32473 src=\"10.10.2.66\" severity=\"low\" signature=\"Failed Connections\" \
         variation=\"sequential_test\"] {\"event_type\":\"alert\",\"seq\":1}"
    );
    // An informational alert, facility auth: PRI 4 * 8 + 6.
    let a = alert(Severity::Informational, "{}");
    let mut f = fmt(SyslogFormat::Rfc5424, true);
    f.facility = Facility::Auth;
    assert!(format_alert(&f, &a).starts_with("<38>1 "));
}

#[test]
fn rfc5424_escapes_structured_data() {
    let f = fmt(SyslogFormat::Rfc5424, false);
    let mut out = String::new();
    f.format(
        &Message {
            kind: MsgKind::FailedConnection,
            ts_ns: 1_709_283_907_000_000_000,
            severity: SyslogSeverity::Informational,
            sd: &[
                ("signature", r#"a "quoted" \ back]slash"#),
                ("bad name=", "line\nbreak"),
            ],
            json: "{\"a\":1}",
        },
        &mut out,
    );
    assert_eq!(
        out,
        "<134>1 2024-03-01T09:05:07.000000Z sensor1.example.org scanwatch 4242 failed_connection \
         [scanwatch@32473 signature=\"a \\\"quoted\\\" \\\\ back\\]slash\" badname=\"line break\"] {\"a\":1}"
    );
    // No parameters: the nil value.
    let mut out = String::new();
    f.format(
        &Message {
            kind: MsgKind::Alert,
            ts_ns: TS,
            severity: SyslogSeverity::Warning,
            sd: &[],
            json: "{}",
        },
        &mut out,
    );
    assert!(out.ends_with(" 4242 alert - {}"), "{out}");
}

#[test]
fn rfc3164_alert() {
    let a = alert(Severity::Informational, "{\"event_type\":\"alert\"}");
    // Over the network: short host name; the day is space-padded.
    assert_eq!(
        format_alert(&fmt(SyslogFormat::Rfc3164, false), &a),
        "<134>Mar 16 10:00:00 sensor1 scanwatch[4242]: {\"event_type\":\"alert\"}"
    );
    // To a local socket: no host name, as syslog(3) writes it.
    let mut a = alert(Severity::Low, "{}");
    a.ts = 1_709_283_907_000_000_000;
    assert_eq!(
        format_alert(&fmt(SyslogFormat::Rfc3164, true), &a),
        "<132>Mar  1 09:05:07 scanwatch[4242]: {}"
    );
}

#[test]
fn json_stays_one_line() {
    assert_eq!(one_line("{\"a\":1}\n"), "{\"a\":1}");
    assert_eq!(one_line("{\"a\":\r\n1}\r\n"), "{\"a\":  1}");
}

#[test]
fn octet_counting() {
    assert_eq!(
        octet_frame("<134>1 - - - - - - x"),
        b"20 <134>1 - - - - - - x"
    );
    // The count is in octets, not characters.
    assert_eq!(octet_frame("é"), "2 é".as_bytes());
}

#[test]
fn addresses() {
    let p = |s: &str| s.parse::<SyslogAddr>();
    assert_eq!(
        p("unix:/dev/log").unwrap(),
        SyslogAddr::Unix("/dev/log".into())
    );
    assert_eq!(
        p("udp:siem.example.org:514").unwrap(),
        SyslogAddr::Udp {
            host: "siem.example.org".into(),
            port: 514
        }
    );
    assert_eq!(
        p("tcp:192.0.2.7:6514").unwrap(),
        SyslogAddr::Tcp {
            host: "192.0.2.7".into(),
            port: 6514
        }
    );
    let v6 = p("tcp:[2001:db8::1]:514").unwrap();
    assert_eq!(
        v6,
        SyslogAddr::Tcp {
            host: "2001:db8::1".into(),
            port: 514
        }
    );
    assert_eq!(
        p("tls:siem.example.org:6514").unwrap(),
        SyslogAddr::Tls {
            host: "siem.example.org".into(),
            port: 6514
        }
    );
    for s in [
        "unix:/dev/log",
        "udp:siem.example.org:514",
        "tcp:[2001:db8::1]:514",
        "tls:siem.example.org:6514",
        "tls:[2001:db8::1]:6514",
    ] {
        assert_eq!(p(s).unwrap().to_string(), s);
    }
    assert_eq!(SyslogAddr::default().to_string(), "unix:/dev/log");
    for bad in [
        "x",
        "/dev/log",
        "unix:",
        "http://x:1",
        "udp:host",
        "udp:host:",
        "udp:host:0",
        "udp:host:65536",
        "tcp::514",
        "tcp:2001:db8::1:514",
        "tcp:[2001:db8::1:514",
        "tcp:[not-v6]:514",
        "tcp:bad host:514",
        "tls:host",
        "tls:bad host:6514",
        "ssl:host:6514",
    ] {
        let e = p(bad).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "syslog address '{bad}': expected unix:PATH, udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT"
            )
        );
    }
}

#[test]
fn config_section() {
    let c: SyslogConfig = toml::from_str("").unwrap();
    assert_eq!(c, SyslogConfig::default());
    assert_eq!(c.address, SyslogAddr::Unix("/dev/log".into()));
    assert_eq!(c.format, SyslogFormat::Rfc5424);
    assert_eq!(c.facility, Facility::Local0);
    assert_eq!(c.max_message, 8192);
    assert_eq!(c.max_len(), 8192);
    c.validate().unwrap();
    let c: SyslogConfig = toml::from_str(
        "address = \"tcp:[::1]:6514\"\nformat = \"rfc3164\"\nfacility = \"local7\"\nreconnect_max = \"2s\"\n",
    )
    .unwrap();
    assert_eq!(c.facility.code(), 23);
    assert_eq!(c.format, SyslogFormat::Rfc3164);
    assert_eq!(c.reconnect_max, Dur::secs(2));
    assert_eq!(c.max_len(), 65_536);
    // Round trip, as `check-config` prints it.
    let again: SyslogConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(again, c);
    for (text, needle) in [
        ("adress = \"unix:/x\"", "adress"),
        ("address = \"syslog.example.org\"", "expected unix:PATH"),
        ("facility = \"local8\"", "local8"),
        ("format = \"json\"", "json"),
    ] {
        let e = toml::from_str::<SyslogConfig>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    let c = SyslogConfig {
        max_message: 100,
        ..SyslogConfig::default()
    };
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("max_message")
    );
    let c = SyslogConfig {
        reconnect_min: Dur::secs(10),
        ..SyslogConfig::default()
    };
    assert!(c.validate().is_err());
    // TLS: the frames of TCP, its length limit, and the tls_* keys, which
    // check-config prints back.
    let c: SyslogConfig = toml::from_str(
        "address = \"tls:siem.example.org:6514\"\ntls_ca = \"/etc/scanwatch/ca.pem\"\n\
         tls_cert = \"/etc/scanwatch/sensor.pem\"\ntls_key = \"/etc/scanwatch/sensor.key\"\n\
         tls_server_name = \"collector.example.org\"\n",
    )
    .unwrap();
    assert_eq!(c.max_len(), 65_536);
    assert_eq!(
        c.tls_ca.as_deref(),
        Some(Path::new("/etc/scanwatch/ca.pem"))
    );
    let again: SyslogConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(again, c);
    for (name, code) in [("user", 1), ("daemon", 3), ("auth", 4), ("local0", 16)] {
        let c: SyslogConfig = toml::from_str(&format!("facility = \"{name}\"")).unwrap();
        assert_eq!(c.facility.code(), code);
    }
}

fn big_alert(samples: usize) -> String {
    let sample: Vec<Value> = (0..samples)
        .map(|i| {
            json!({"timestamp": "2024-03-16T10:00:00.000000Z", "dest_ip": format!("10.1.0.{i}"),
                   "dest_port": 445, "proto": "TCP", "reason": "unanswered",
                   "target_state": "never_seen", "community_id": "1:abcdefghijklmnopqrstuvwxyz0="})
        })
        .collect();
    json!({"timestamp": "2024-03-16T10:00:00.034000Z", "event_type": "alert",
           "src_ip": "10.10.2.66", "alert": {"signature": "Failed Connections", "score": 5.55},
           "evidence": {"failed_attempts": 40, "sample": sample, "ports": [445]},
           "summary": "x".repeat(300)})
    .to_string()
}

#[test]
fn trimming_keeps_valid_json() {
    let f = fmt(SyslogFormat::Rfc5424, false);
    let json = big_alert(10);
    let m = Message {
        kind: MsgKind::Alert,
        ts_ns: TS,
        severity: SyslogSeverity::Warning,
        sd: &[("src", "10.10.2.66")],
        json: &json,
    };
    let Fit::Whole(whole) = f.fit(&m, 100_000) else {
        panic!("fits")
    };
    let limit = whole.len() - 500;
    let Fit::Trimmed { line, removed } = f.fit(&m, limit) else {
        panic!("trimmed")
    };
    assert!(line.len() <= limit);
    let j = &line[line.find("] {").unwrap() + 2..];
    let v: Value = serde_json::from_str(j).unwrap();
    let kept = v["evidence"]["sample"].as_array().unwrap().len();
    assert_eq!(kept + removed, 10);
    assert!(kept > 0 && removed > 0, "kept {kept}");
    // As many as fit: one more would not.
    assert!(line.len() + 220 > limit);
    // Everything else is untouched, in order.
    let orig: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["summary"], orig["summary"]);
    assert_eq!(v["alert"], orig["alert"]);
    assert_eq!(v["evidence"]["sample"][0], orig["evidence"]["sample"][0]);
    assert!(j.starts_with("{\"timestamp\":"));
    assert_eq!(
        v["trimmed_for_syslog"],
        json!({ "/evidence/sample": removed })
    );
    // Down to none.
    let header = whole.len() - json.len();
    let empty = serde_json::to_string(&{
        let mut o = orig.clone();
        o["evidence"]["sample"] = json!([]);
        o["trimmed_for_syslog"] = json!({ "/evidence/sample": 10 });
        o
    })
    .unwrap();
    let Fit::Trimmed { line, removed } = f.fit(&m, header + empty.len()) else {
        panic!("trimmed to none")
    };
    assert_eq!(removed, 10);
    assert!(line.ends_with(&empty));
    // A byte less: emptying the one port would save less than saying so
    // costs, so it stays; without the marker the emptied sample fits (an
    // unmarked copy beats none at all).
    let unmarked = serde_json::to_string(&{
        let mut o = orig.clone();
        o["evidence"]["sample"] = json!([]);
        o
    })
    .unwrap();
    let Fit::Trimmed { line, removed } = f.fit(&m, header + empty.len() - 1) else {
        panic!("trimmed, unmarked")
    };
    assert_eq!((removed, line.ends_with(&unmarked)), (10, true), "{line}");
    // Then, unmarked, the port goes too; not even then: too long.
    let bare = serde_json::to_string(&{
        let mut o = orig.clone();
        o["evidence"]["sample"] = json!([]);
        o["evidence"]["ports"] = json!([]);
        o
    })
    .unwrap();
    let Fit::Trimmed { line, removed } = f.fit(&m, header + unmarked.len() - 1) else {
        panic!("trimmed to no port, unmarked")
    };
    assert_eq!((removed, line.ends_with(&bare)), (11, true), "{line}");
    assert_eq!(
        f.fit(&m, header + bare.len() - 1),
        Fit::TooLong(whole.len())
    );
    // No sample to trim.
    let plain = format!("{{\"a\":\"{}\"}}", "y".repeat(1000));
    let m = Message { json: &plain, ..m };
    assert!(matches!(f.fit(&m, 900), Fit::TooLong(_)));
}

/// A sweep of 256 /64s, reported the next day with 256 new ones: too long
/// for an 8 KiB datagram even without its sample. The lists go in
/// [`TRIMMABLE`]'s order, each emptied before the next is touched, the last
/// one touched keeps as many entries as fit, and the alert says what it
/// lost; what no list holds is untouched.
#[test]
fn a_sweep_of_many_subnets_is_trimmed_list_by_list_not_dropped() {
    let f = fmt(SyslogFormat::Rfc3164, true);
    let nets = |base: u32| -> Vec<Value> {
        (0..256)
            .map(|i| json!(format!("2001:db8:{base:04x}:{i:04x}::/64")))
            .collect()
    };
    let orig = json!({"timestamp": "2024-03-16T10:00:00.034000Z", "event_type": "alert",
        "src_ip": "fd00::66", "alert": {"signature": "Failed Connections"},
        "summary": "a sweep",
        "evidence": {"failed_targets": 900, "distinct_ports": 2,
            "sample": serde_json::from_str::<Value>(&big_alert(5)).unwrap()["evidence"]["sample"],
            "subnets": nets(0xaaaa), "ports": [22, 445], "active_hosts": []},
        "previous_alert": {"timestamp": "2024-03-15T10:00:00.000000Z",
            "failed_attempts_since": 800, "new_subnets": nets(0xbbbb), "new_ports": [445]}});
    let json = orig.to_string();
    let m = Message {
        kind: MsgKind::Alert,
        ts_ns: TS,
        severity: SyslogSeverity::Warning,
        sd: &[],
        json: &json,
    };
    // An 8 KiB datagram: without its sample it is still too long; the
    // previous alert's new subnets give way, as many as needed.
    assert!(json.len() > 8192);
    let Fit::Trimmed { line, .. } = f.fit(&m, 8192) else {
        panic!("trimmed, not dropped")
    };
    assert!(line.len() <= 8192 && line.len() > 8192 - 40);
    let v: Value = serde_json::from_str(&line[line.find(": {").unwrap() + 2..]).unwrap();
    let len = |v: &Value, p: &str| v.pointer(p).unwrap().as_array().unwrap().len();
    assert_eq!(len(&v, "/evidence/sample"), 0);
    let new = len(&v, "/previous_alert/new_subnets");
    assert!(new > 0 && new < 256, "{new}");
    assert_eq!(len(&v, "/evidence/subnets"), 256);
    // 6,000 bytes: the subnets themselves must give way.
    let Fit::Trimmed { line, removed } = f.fit(&m, 6000) else {
        panic!("trimmed, not dropped")
    };
    assert!(line.len() <= 6000 && line.len() > 6000 - 40);
    let v: Value = serde_json::from_str(&line[line.find(": {").unwrap() + 2..]).unwrap();
    let len = |p: &str| len(&v, p);
    // The sample and the previous alert's new subnets went first, whole
    // (its one new port stays: emptying it would save less than saying so
    // costs); then the subnets, down to what fits; the ports were not
    // needed.
    assert_eq!(len("/evidence/sample"), 0);
    assert_eq!(len("/previous_alert/new_subnets"), 0);
    assert_eq!(len("/previous_alert/new_ports"), 1);
    let kept = len("/evidence/subnets");
    assert!(kept > 100 && kept < 256, "{kept}");
    assert_eq!(v["evidence"]["ports"], orig["evidence"]["ports"]);
    assert_eq!(
        v["trimmed_for_syslog"],
        json!({"/evidence/sample": 5, "/previous_alert/new_subnets": 256,
               "/evidence/subnets": 256 - kept})
    );
    assert_eq!(removed, 5 + 256 + 256 - kept);
    // The subnets kept are the first ones; the rest of the alert is as it was.
    assert_eq!(
        v["evidence"]["subnets"][kept - 1],
        orig["evidence"]["subnets"][kept - 1]
    );
    for k in ["timestamp", "src_ip", "alert", "summary"] {
        assert_eq!(v[k], orig[k]);
    }
    assert_eq!(v["evidence"]["failed_targets"], 900);
    assert_eq!(v["previous_alert"]["failed_attempts_since"], 800);
}

// --- The sink, against a unix datagram socket of our own -----------------

fn test_cfg(sock: &Path) -> SyslogConfig {
    SyslogConfig {
        address: SyslogAddr::Unix(sock.to_path_buf()),
        reconnect_min: Dur(Duration::from_millis(10)),
        reconnect_max: Dur(Duration::from_millis(100)),
        timeout: Dur(Duration::from_millis(100)),
        flush_timeout: Dur::secs(2),
        ..SyslogConfig::default()
    }
}

fn msg_json(seq: usize) -> String {
    format!("{{\"event_type\":\"alert\",\"seq\":{seq}}}")
}

fn send_seq(sink: &SyslogSink, seq: usize) -> Outcome {
    let json = msg_json(seq);
    sink.send(&Message {
        kind: MsgKind::Alert,
        ts_ns: TS,
        severity: SyslogSeverity::Warning,
        sd: &[("src", "10.0.0.1")],
        json: &json,
    })
}

/// Read datagrams until `n` arrived (or 10 s): the sequence numbers.
fn receive(rx: &UnixDatagram, n: usize) -> Vec<u64> {
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seqs = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while seqs.len() < n && Instant::now() < deadline {
        if let Ok(len) = rx.recv(&mut buf) {
            let m = std::str::from_utf8(&buf[..len]).unwrap();
            let v: Value = serde_json::from_str(&m[m.find('{').unwrap()..]).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    seqs
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn outage_spools_in_order_and_resends() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let spool = dir.path().join("spool");
    let sink = SyslogSink::start(&test_cfg(&sock), Some(&spool)).unwrap();
    let stats = sink.stats();
    let mode = std::fs::metadata(spool.join(SPOOL_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Nobody listens yet: everything goes to the spool.
    for i in 0..20 {
        send_seq(&sink, i);
    }
    wait_for("backlog 20", || stats.snapshot().backlog == 20);
    assert_eq!(stats.snapshot().sent, 0);
    assert!(!stats.snapshot().connected);
    // While the spool holds messages, new ones join it.
    assert_eq!(send_seq(&sink, 20), Outcome::Spooled);
    let rx = UnixDatagram::bind(&sock).unwrap();
    let got = receive(&rx, 21);
    assert_eq!(got, (0..21).collect::<Vec<_>>());
    wait_for("empty spool", || stats.snapshot().backlog == 0);
    assert_eq!(
        std::fs::metadata(spool.join(SPOOL_FILE)).unwrap().len(),
        0,
        "the spool is emptied once sent"
    );
    // Back to the queue.
    wait_for("queue mode", || send_seq(&sink, 21) == Outcome::Queued);
    let s = sink.close();
    assert_eq!(s.spooled, 21);
    assert_eq!(s.dropped, 0);
    assert_eq!(s.sent, 22);
    assert_eq!(receive(&rx, 1), vec![21]);
}

#[test]
fn full_queue_spills_to_the_spool_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    // A server that does not read: its socket queue fills, sends time out.
    let rx = UnixDatagram::bind(&sock).unwrap();
    let cfg = SyslogConfig {
        queue: 4,
        ..test_cfg(&sock)
    };
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut outcomes = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        outcomes.push(send_seq(&sink, i));
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(100),
        "send waited {slowest:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(outcomes.contains(&Outcome::Spooled));
    assert!(!outcomes.contains(&Outcome::Dropped));
    let got = receive(&rx, 300);
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "exactly once, in order");
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.backlog), (300, 0, 0));
}

#[test]
fn close_keeps_the_spool_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let cfg = SyslogConfig {
        flush_timeout: Dur(Duration::from_millis(300)),
        ..test_cfg(&sock)
    };
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    // One process per spool.
    let e = SyslogSink::start(&cfg, Some(dir.path())).err().unwrap();
    assert!(matches!(e, SyslogError::SpoolLocked(_)), "{e}");
    for i in 0..5 {
        send_seq(&sink, i);
    }
    let s = sink.close();
    assert_eq!((s.sent, s.backlog, s.dropped), (0, 5, 0));
    let text = std::fs::read_to_string(dir.path().join(SPOOL_FILE)).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.lines().all(|l| l.starts_with("<132>1 ")));

    let rx = UnixDatagram::bind(&sock).unwrap();
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    for i in 5..8 {
        send_seq(&sink, i);
    }
    assert_eq!(receive(&rx, 8), (0..8).collect::<Vec<_>>());
    let s = sink.close();
    assert_eq!((s.sent, s.backlog, s.dropped), (8, 0, 0));
}

#[test]
fn a_partly_sent_spool_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    // A spool of 4 whose first 2 were sent before a crash.
    let f = fmt(SyslogFormat::Rfc5424, true);
    let mut text = String::new();
    for i in 0..4 {
        text.push_str(&spool_line(&f, i));
        text.push('\n');
    }
    let second_end = text.match_indices('\n').nth(1).unwrap().0 + 1;
    text.push_str("<132>1 torn"); // a crash in the middle of a write
    std::fs::write(dir.path().join(SPOOL_FILE), &text).unwrap();
    std::fs::write(dir.path().join(SPOOL_SENT_FILE), format!("{second_end}\n")).unwrap();
    let rx = UnixDatagram::bind(&sock).unwrap();
    let sink = SyslogSink::start(&test_cfg(&sock), Some(dir.path())).unwrap();
    assert_eq!(receive(&rx, 2), vec![2, 3]);
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.backlog), (2, 1, 0));
}

#[test]
fn without_a_spool_what_cannot_be_sent_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let cfg = SyslogConfig {
        queue: 2,
        flush_timeout: Dur(Duration::from_millis(200)),
        ..test_cfg(&sock)
    };
    let sink = SyslogSink::start(&cfg, None).unwrap();
    let outcomes: Vec<Outcome> = (0..10).map(|i| send_seq(&sink, i)).collect();
    assert!(outcomes.contains(&Outcome::Dropped));
    assert!(!outcomes.contains(&Outcome::Spooled));
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.spooled), (0, 10, 0));
}

#[test]
fn too_long_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    let cfg = SyslogConfig {
        max_message: 600,
        ..test_cfg(&sock)
    };
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    let long = format!("{{\"seq\":0,\"pad\":\"{}\"}}", "z".repeat(700));
    let o = sink.send(&Message {
        kind: MsgKind::Alert,
        ts_ns: TS,
        severity: SyslogSeverity::Warning,
        sd: &[],
        json: &long,
    });
    assert_eq!(o, Outcome::Dropped);
    // An alert whose sample can go: trimmed, sent.
    let a = alert(Severity::Low, &big_alert(3));
    let mut cfg_json: Value = serde_json::from_str(&a.json).unwrap();
    cfg_json["seq"] = json!(1);
    cfg_json["summary"] = json!("s");
    let a = Alert {
        json: cfg_json.to_string(),
        ..a
    };
    assert_eq!(sink.send_alert(&a), Outcome::Queued);
    assert_eq!(receive(&rx, 1), vec![1]);
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.trimmed), (1, 1, 1));
}

#[test]
fn close_with_a_stuck_server_keeps_every_message_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    // A server that never reads: once its socket queue is full every send
    // times out.
    let rx = UnixDatagram::bind(&sock).unwrap();
    let cfg = SyslogConfig {
        queue: 4,
        flush_timeout: Dur(Duration::from_millis(300)),
        ..test_cfg(&sock)
    };
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    let stats = sink.stats();
    // One at a time until one does not go through: the sender is stuck
    // sending it (the socket queue holds /proc/sys/net/unix/max_dgram_qlen).
    let mut n = 0;
    loop {
        assert!(n < 10_000, "the socket never filled");
        assert_eq!(send_seq(&sink, n), Outcome::Queued);
        n += 1;
        let t = Instant::now();
        while stats.snapshot().sent < n as u64 && t.elapsed() < Duration::from_millis(50) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if stats.snapshot().sent < n as u64 {
            break;
        }
    }
    // Now the queue fills and the rest goes to the spool, behind the message
    // the sender holds: when its send fails it must stay first.
    for i in n..n + 40 {
        assert_ne!(send_seq(&sink, i), Outcome::Dropped);
    }
    let total = n + 40;
    std::thread::sleep(Duration::from_millis(150));
    let s = sink.close();
    assert_eq!(s.dropped, 0);
    // What reached the socket, then what the spool kept: all, once, in order.
    let mut got = Vec::new();
    rx.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65_536];
    while let Ok(len) = rx.recv(&mut buf) {
        let m = std::str::from_utf8(&buf[..len]).unwrap();
        let v: Value = serde_json::from_str(&m[m.find('{').unwrap()..]).unwrap();
        got.push(v["seq"].as_u64().unwrap());
    }
    let sent = got.len();
    assert_eq!(s.sent as usize, sent);
    assert!(sent < total);
    let text = std::fs::read_to_string(dir.path().join(SPOOL_FILE)).unwrap();
    for l in text.lines() {
        let v: Value = serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap();
        got.push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(got, (0..total as u64).collect::<Vec<_>>());
    assert_eq!(s.backlog as usize, total - sent);
    // The next start sends the rest.
    rx.set_nonblocking(false).unwrap();
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    assert_eq!(
        receive(&rx, total - sent),
        (sent as u64..total as u64).collect::<Vec<_>>()
    );
    let s = sink.close();
    assert_eq!((s.backlog, s.dropped), (0, 0));
}

#[test]
fn udp_retries_lose_nothing_when_icmp_answers() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on, yet.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = SyslogConfig {
        address: SyslogAddr::Udp {
            host: "127.0.0.1".into(),
            port,
        },
        ..test_cfg(Path::new("/nonexistent"))
    };
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    let stats = sink.stats();
    for i in 0..10 {
        send_seq(&sink, i);
    }
    // The first send on a new socket waits for the port-unreachable error:
    // nothing went out into the void.
    wait_for("backlog 10", || stats.snapshot().backlog == 10);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(stats.snapshot().sent, 0);
    let rx = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 10 && Instant::now() < deadline {
        if let Ok(n) = rx.recv(&mut buf) {
            let m = std::str::from_utf8(&buf[..n]).unwrap();
            let v: Value = serde_json::from_str(&m[m.find('{').unwrap()..]).unwrap();
            got.push(v["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.backlog), (10, 0, 0));
}

/// What is wrong with the TLS settings is said at start (and by
/// check-config), naming the key and the file, not at the first connection.
#[test]
fn tls_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, "not a certificate\n").unwrap();
    let junk_pem = dir.path().join("junk.pem");
    fs::write(
        &junk_pem,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    let tls = |f: &dyn Fn(&mut SyslogConfig)| {
        let mut c = SyslogConfig {
            address: "tls:siem.example.org:6514".parse().unwrap(),
            tls_ca: Some(empty.clone()),
            ..SyslogConfig::default()
        };
        f(&mut c);
        c
    };
    let err = |c: SyslogConfig| {
        let e = c.validate().unwrap_err().to_string();
        // The same error when the sink starts.
        let e2 = SyslogSink::start(&c, None).err().unwrap().to_string();
        assert_eq!(e, e2);
        e
    };
    let e = err(tls(&|_| {}));
    assert!(
        e.contains("output.syslog.tls_ca")
            && e.contains("empty.pem")
            && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = err(tls(&|c| c.tls_ca = Some(missing.clone())));
    assert!(e.contains("tls_ca") && e.contains("missing.pem"), "{e}");
    let e = err(tls(&|c| c.tls_ca = Some(junk_pem.clone())));
    assert!(e.contains("tls_ca") && e.contains("junk.pem"), "{e}");
    let e = err(tls(&|c| c.tls_cert = Some(empty.clone())));
    assert!(e.contains("tls_cert and tls_key go together"), "{e}");
    let e = err(tls(&|c| c.tls_key = Some(empty.clone())));
    assert!(e.contains("tls_cert and tls_key go together"), "{e}");
    // A TLS key in a section whose address is not TLS is read too: the
    // `--syslog tls:...` destinations take the section's settings.
    let e = err(tls(&|c| c.address = SyslogAddr::default()));
    assert!(e.contains("tls_ca"), "{e}");
    let e = err(SyslogConfig {
        tls_server_name: Some("not a name".into()),
        address: "tls:127.0.0.1:6514".parse().unwrap(),
        ..SyslogConfig::default()
    });
    assert!(e.contains("'not a name' is neither"), "{e}");
    // No TLS anywhere: nothing is read.
    assert!(SyslogConfig::default().tls_client().unwrap().is_none());
}

/// A server that trickles bytes cannot hold the sender in the TLS
/// handshake longer than `timeout`: each read gets only what is left of it.
#[test]
fn a_trickling_tls_server_cannot_stretch_the_handshake() {
    use std::io::Write;
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // A handshake record announcing 16 KiB, then one byte every 50 ms
        // until the client hangs up (or 10 s).
        let _ = s.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(50));
            if s.write_all(&[0]).is_err() {
                return;
            }
        }
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = TlsClient {
        config: Arc::new(config),
        server_name: "localhost".try_into().unwrap(),
        verdict_wait: Duration::ZERO,
    };
    let timeout = Duration::from_millis(500);
    let sock = tcp_connect("127.0.0.1", port, timeout).unwrap();
    let t0 = Instant::now();
    let e = TlsConn::open(sock, &client, timeout).err().unwrap();
    let took = t0.elapsed();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(e.to_string().contains("took longer than"), "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    server.join().unwrap();
}

// --- The spool's cap, its pieces, its directory --------------------------

/// A sink with a small spool: `spool_max` bytes, messages of 600 at most.
fn capped_cfg(sock: &Path, spool_max: u64) -> SyslogConfig {
    SyslogConfig {
        max_message: 600,
        tcp_max_message: 600,
        spool_max: Size(spool_max),
        flush_timeout: Dur(Duration::from_millis(200)),
        ..test_cfg(sock)
    }
}

/// The sequence numbers of a spool's lines.
fn spool_seqs(dir: &Path) -> Vec<u64> {
    let text = fs::read_to_string(dir.join(SPOOL_FILE)).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(&l[l.find('{').unwrap()..]).unwrap();
            v["seq"].as_u64().unwrap()
        })
        .collect()
}

/// With the server away, the spool stops at `spool_max`: the newest
/// messages are dropped and counted (`spool_dropped`, and in `dropped`),
/// the oldest kept in order, and once they are sent it takes messages again.
#[test]
fn a_full_spool_drops_the_newest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let spool = dir.path().join("spool");
    let sink = SyslogSink::start(&capped_cfg(&sock, 2000), Some(&spool)).unwrap();
    let stats = sink.stats();
    // The first fails and switches to the spool; the rest go there from
    // `send` itself, as far as there is room.
    send_seq(&sink, 0);
    wait_for("the first spooled", || stats.snapshot().backlog == 1);
    let outcomes: Vec<Outcome> = (1..100).map(|i| send_seq(&sink, i)).collect();
    let s = stats.snapshot();
    assert_eq!(s.backlog + s.spool_dropped, 100, "{s:?}");
    let len = fs::metadata(spool.join(SPOOL_FILE)).unwrap().len();
    assert!(len <= 2000, "the spool grew to {len} bytes");
    let s = stats.snapshot();
    let kept = s.backlog;
    // Each line is ~120 bytes: 2000 hold more than 10, far from 100.
    assert!((10..30).contains(&kept), "{s:?}");
    assert_eq!(s.dropped, s.spool_dropped);
    assert!(outcomes.contains(&Outcome::Dropped));
    assert_eq!(
        spool_seqs(&spool),
        (0..kept).collect::<Vec<_>>(),
        "the oldest"
    );
    // The server comes: the kept ones go, and new ones are taken again.
    let rx = UnixDatagram::bind(&sock).unwrap();
    assert_eq!(receive(&rx, kept as usize), (0..kept).collect::<Vec<_>>());
    wait_for("an empty spool", || {
        fs::metadata(spool.join(SPOOL_FILE)).unwrap().len() == 0
    });
    assert_eq!(send_seq(&sink, 100), Outcome::Queued);
    assert_eq!(receive(&rx, 1), vec![100]);
    let s = sink.close();
    assert_eq!((s.sent, s.backlog), (kept + 1, 0));
    assert_eq!((s.dropped, s.spool_dropped), (100 - kept, 100 - kept));
}

/// A partly sent spool that meets its cap: new messages are dropped while
/// it is full, and the compaction at close keeps every unsent line of the
/// spool, in order, within the cap.
#[test]
fn close_keeps_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let cfg = SyslogConfig {
        queue: 64,
        ..capped_cfg(&sock, 1000)
    };
    // A partly sent spool (so that close compacts it) of 6 lines, 2 sent.
    let f = fmt(SyslogFormat::Rfc5424, true);
    let lines: Vec<String> = (0..6).map(|i| spool_line(&f, i)).collect();
    let sent_to: usize = lines[..2].iter().map(|l| l.len() + 1).sum();
    fs::write(
        dir.path().join(SPOOL_FILE),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    fs::write(dir.path().join(SPOOL_SENT_FILE), format!("{sent_to}\n")).unwrap();
    let sink = SyslogSink::start(&cfg, Some(dir.path())).unwrap();
    for i in 6..40 {
        send_seq(&sink, i);
    }
    let s = sink.close();
    let kept = spool_seqs(dir.path());
    assert_eq!(kept[..4], [2, 3, 4, 5], "every unsent line of the spool");
    assert_eq!(
        kept,
        (2..2 + kept.len() as u64).collect::<Vec<_>>(),
        "then the oldest that fit, in order"
    );
    assert!(fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().len() <= 1000);
    assert_eq!(s.backlog as usize, kept.len());
    assert_eq!(s.spool_dropped, 40 - 2 - kept.len() as u64);
    assert_eq!(s.dropped, s.spool_dropped);
}

/// One spool line for message `seq`, as the sink writes it.
fn spool_line(f: &Formatter, seq: u64) -> String {
    let j = msg_json(seq as usize);
    let Fit::Whole(l) = f.fit(
        &Message {
            kind: MsgKind::Alert,
            ts_ns: TS,
            severity: SyslogSeverity::Warning,
            sd: &[],
            json: &j,
        },
        8192,
    ) else {
        panic!()
    };
    l
}

/// A spool sent past half its cap while it is sent is compacted (a file
/// of the unsent rest replaces it), and sending goes on from the right
/// line: every message once, in order, with new ones behind.
#[test]
fn a_spool_is_compacted_while_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let f = fmt(SyslogFormat::Rfc5424, true);
    let lines: Vec<String> = (0..40).map(|i| spool_line(&f, i)).collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let cap = text.len() as u64 + 1000;
    // The first 25 were sent before a restart: more than half the cap,
    // more than the 15 left.
    let sent_to: usize = lines[..25].iter().map(|l| l.len() + 1).sum();
    assert!(sent_to as u64 >= cap / 2);
    fs::write(dir.path().join(SPOOL_FILE), &text).unwrap();
    fs::write(dir.path().join(SPOOL_SENT_FILE), format!("{sent_to}\n")).unwrap();
    let before = fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().ino();
    let rx = UnixDatagram::bind(&sock).unwrap();
    let sink = SyslogSink::start(&capped_cfg(&sock, cap), Some(dir.path())).unwrap();
    for i in 40..45 {
        send_seq(&sink, i);
    }
    assert_eq!(receive(&rx, 20), (25..45).collect::<Vec<_>>());
    let s = sink.close();
    assert_eq!((s.sent, s.backlog, s.dropped), (20, 0, 0));
    let after = fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().ino();
    assert_ne!(before, after, "the spool was not compacted");
}

/// The compaction itself: the unsent rest moves to the front, what callers
/// append goes to the new file, the offset is 0 with the new file's inode,
/// and the room the sent part took is free again.
#[test]
fn compaction_keeps_the_unsent_rest_and_frees_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SyslogStats::default());
    let addr: SyslogAddr = "tcp:siem.example.org:514".parse().unwrap();
    let (w, mut r, _lock) = open_spool(dir.path(), &addr, 100, &stats).unwrap();
    let shared = Shared {
        spool: Mutex::new(Some(w)),
        spool_len: AtomicU64::new(0),
        stats: Arc::clone(&stats),
    };
    let mut g = shared.lock();
    for m in ["one", "two", "three", "four"] {
        assert!(shared.append(g.as_mut().unwrap(), &m.repeat(5)));
    }
    // 4 lines of 16, 16, 26, 21 bytes: 79; 22 more do not fit.
    assert!(!shared.append(g.as_mut().unwrap(), &"x".repeat(21)));
    assert_eq!(stats.snapshot().spool_dropped, 1);
    drop(g);
    // The first two were sent.
    r.pos = 32;
    r.read_to = 32;
    compact_spool(&shared, &mut r).unwrap();
    let path = dir.path().join(SPOOL_FILE);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n{}\n", "three".repeat(5), "four".repeat(5))
    );
    assert_eq!((r.pos, r.read_to), (0, 0));
    let ino = fs::metadata(&path).unwrap().ino();
    assert_eq!(r.ino, ino);
    assert_eq!(
        fs::read_to_string(dir.path().join(SPOOL_SENT_FILE)).unwrap(),
        format!("{:020} {ino:020}\n", 0)
    );
    let mut g = shared.lock();
    assert_eq!(g.as_ref().unwrap().len, 47);
    assert!(shared.append(g.as_mut().unwrap(), &"x".repeat(21)));
    drop(g);
    assert_eq!(shared.spool_len.load(Ordering::Relaxed), 69);
    let mut first = String::new();
    r.reader.read_line(&mut first).unwrap();
    assert_eq!(first, format!("{}\n", "three".repeat(5)));
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .ends_with(&format!("{}\n", "x".repeat(21)))
    );
    assert!(!dir.path().join("syslog.spool.tmp").exists());
}

/// The sent offset carries the spool's inode: a resumed spool starts where
/// sending stopped, and an offset saved for a spool that has since been
/// replaced (a crash between a compaction's rename and the saving of its
/// offset) is not applied to the new one.
#[test]
fn the_sent_offset_belongs_to_its_spool() {
    let f = fmt(SyslogFormat::Rfc5424, true);
    let text: String = (0..4).map(|i| format!("{}\n", spool_line(&f, i))).collect();
    let second_end = text.match_indices('\n').nth(1).unwrap().0 + 1;
    for (same_file, want) in [(true, vec![2, 3]), (false, vec![0, 1, 2, 3])] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("log.sock");
        fs::write(dir.path().join(SPOOL_FILE), &text).unwrap();
        let ino = fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().ino();
        let saved = if same_file { ino } else { ino + 1 };
        fs::write(
            dir.path().join(SPOOL_SENT_FILE),
            format!("{second_end:020} {saved:020}\n"),
        )
        .unwrap();
        let rx = UnixDatagram::bind(&sock).unwrap();
        let sink = SyslogSink::start(&test_cfg(&sock), Some(dir.path())).unwrap();
        assert_eq!(receive(&rx, want.len()), want, "same file: {same_file}");
        let s = sink.close();
        assert_eq!((s.sent, s.backlog), (want.len() as u64, 0));
    }
}

/// The pieces the spool is read in give what reading it whole gives: the
/// last complete line, the lines between two offsets and their count, for
/// pieces smaller and larger than a line, lines longer than a piece, empty
/// lines and a torn end.
#[test]
fn the_spool_read_in_pieces_is_the_spool_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut text = Vec::new();
    for i in 0..200usize {
        let n = (i * 37) % 150; // 0 (an empty line) to 149 bytes
        text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, n));
        text.push(b'\n');
    }
    let whole_len = text.len();
    text.extend_from_slice(b"torn, no newline");
    fs::write(&path, &text).unwrap();
    let f = File::open(&path).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i <= whole_len)
        .collect();
    let naive_count = |a: usize, b: usize| {
        text[a..b]
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64
            - u64::from(b > a && text[b - 1] != b'\n')
    };
    for chunk in [1, 2, 3, 7, 64, 149, 150, 151, 4096, SPOOL_CHUNK] {
        assert_eq!(
            last_line_end(&f, text.len() as u64, chunk).unwrap(),
            whole_len as u64,
            "chunk {chunk}"
        );
        assert_eq!(last_line_end(&f, 0, chunk).unwrap(), 0);
        let in_40 = text[..40]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        assert_eq!(last_line_end(&f, 40, chunk).unwrap(), in_40 as u64);
        for (a, b) in [
            (0, whole_len),
            (starts[5], starts[150]),
            (starts[7], starts[7]),
        ] {
            let mut out = Vec::new();
            let n = copy_lines(&f, a as u64, b as u64, Some(&mut out), chunk).unwrap();
            assert_eq!(out, &text[a..b], "chunk {chunk}, {a}..{b}");
            assert_eq!(n, naive_count(a, b), "chunk {chunk}, {a}..{b}");
            assert_eq!(copy_lines(&f, a as u64, b as u64, None, chunk).unwrap(), n);
        }
    }
    // 200 lines, of which 200 / gcd(37, 150)... those of length 0 are empty.
    let empty = (0..200usize).filter(|i| (i * 37) % 150 == 0).count() as u64;
    assert_eq!(
        copy_lines(&f, 0, whole_len as u64, None, 7).unwrap(),
        200 - empty
    );
}

/// A spool directory is named after its destination: readable, safe as a
/// file name, different for addresses that read alike once made safe, and
/// the same in every version (a change would strand every backlog).
#[test]
fn spool_directories_are_named_after_their_destination() {
    let name = |s: &str| spool_dir_name(&s.parse().unwrap());
    assert_eq!(
        name("tcp:siem.example.org:6514"),
        name("tcp:siem.example.org:6514")
    );
    let n = name("tcp:siem.example.org:6514");
    assert!(n.starts_with("syslog-tcp_siem.example.org_6514-"), "{n}");
    assert_eq!(n, "syslog-tcp_siem.example.org_6514-e78343617fec");
    let all = [
        "unix:/dev/log",
        "unix:/dev_log",
        "udp:127.0.0.1:514",
        "tcp:127.0.0.1:514",
        "tls:127.0.0.1:514",
        "tcp:[::1]:514",
        "tcp:[::1]:515",
    ];
    let names: std::collections::HashSet<String> = all.iter().map(|a| name(a)).collect();
    assert_eq!(names.len(), all.len(), "{names:?}");
    let long = format!("unix:/{}", "d/".repeat(200));
    for n in names.iter().chain([&name(&long)]) {
        assert!(n.len() <= 7 + 64 + 13, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
            "{n}"
        );
        // Never a name of the old kind (syslog-0, syslog-1, ...).
        assert!(!n["syslog-".len()..].starts_with(|c: char| c.is_ascii_digit()));
    }
}

/// `spool_max` is a size, with its unit or in bytes, checked against the
/// longest message.
#[test]
fn spool_max_is_a_size() {
    assert_eq!(SyslogConfig::default().spool_max, Size(256 << 20));
    for (text, bytes) in [
        ("spool_max = \"256MiB\"", 256 << 20),
        ("spool_max = \"1 GiB\"", 1 << 30),
        ("spool_max = \"500MB\"", 500_000_000),
        ("spool_max = \"70kb\"", 70_000),
        ("spool_max = 100000", 100_000),
        ("spool_max = \"100_000\"", 100_000),
    ] {
        let c: SyslogConfig = toml::from_str(text).unwrap();
        assert_eq!(c.spool_max, Size(bytes), "{text}");
        let again: SyslogConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c, "{text}");
    }
    for (text, says) in [
        ("spool_max = \"lots\"", "not a size"),
        ("spool_max = \"5 PB\"", "not a size"),
        ("spool_max = -1", "cannot be negative"),
        ("spool_max = \"99999999999TiB\"", "out of range"),
    ] {
        let e = toml::from_str::<SyslogConfig>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
    // Room for one message of the longest allowed, at least; 0 is no spool
    // size (there is no spool without a state directory).
    for bad in [0, 65_536] {
        let c = SyslogConfig {
            spool_max: Size(bad),
            ..SyslogConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("spool_max") && e.contains("65537 bytes"), "{e}");
        assert!(SyslogSink::start(&c, None).is_err());
    }
    let c = SyslogConfig {
        spool_max: Size(65_537),
        ..SyslogConfig::default()
    };
    c.validate().unwrap();
}
