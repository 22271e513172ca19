//! `scanwatch live` on a real network: namespaces joined by a bridge (a
//! scanner, a client, three target addresses: one answering RST, one silently
//! dropping with nftables, one rejecting with ICMP admin-prohibited), a real
//! `nmap -sS` and `nmap -sU`, and the sensor capturing on the bridge. Its
//! failed-connection counts must equal what nmap itself reports, the scanner
//! must be alerted, the kernel must drop nothing, and SIGTERM must end it
//! cleanly. In the same lab, rsyslogd is stopped for minutes while more
//! scanners scan: their alerts are spooled and reach it, once each and in
//! order, when it is back (`SCANWATCH_OUTAGE_SECS` shortens the outage for a
//! run by hand). Everything the tests create is deleted, on failure too; all
//! traffic stays inside the namespaces. Needs root (CI runs as root).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::lab::{
    Ns, Proc, QUICK_LIVE, Rsyslogd, RsyslogdConf, is_root, need, open_tempdir, sh, signal, wait_for,
};

/// The namespaces (and with them their veths and the bridge), removed on drop.
struct Lab {
    p: String,
    _ns: Vec<Ns>,
}

impl Lab {
    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.p)
    }
    fn exec(&self, n: &str, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.ns(n)))
    }
    /// Named `PREFIX` and the process id: each test of this file (they run
    /// in parallel threads of one process) its own prefix.
    fn new(prefix: &str) -> Lab {
        assert!(is_root(), "the live tests need root (CI runs as root)");
        need(&["ip", "nft", "nmap"]);
        let p = format!("{prefix}{}", std::process::id() % 100_000);
        let lab = Lab {
            _ns: ["sensor", "scan", "client", "tgt"]
                .iter()
                .map(|n| Ns::named(format!("{p}{n}")))
                .collect(),
            p,
        };
        let s = lab.ns("sensor");
        sh(&format!(
            "ip -n {s} link add br0 type bridge && ip -n {s} link set br0 up"
        ));
        for (i, (n, addrs)) in [
            ("scan", vec!["10.99.0.10"]),
            ("client", vec!["10.99.0.30"]),
            ("tgt", vec!["10.99.0.20", "10.99.0.21", "10.99.0.22"]),
        ]
        .iter()
        .enumerate()
        {
            let host = lab.ns(n);
            let port = format!("{}p{i}", lab.p);
            sh(&format!(
                "ip link add {port} type veth peer name eth0 netns {host}"
            ));
            sh(&format!(
                "ip link set {port} netns {s} && ip -n {s} link set {port} master br0 up"
            ));
            sh(&format!("ip -n {host} link set eth0 up"));
            for a in addrs {
                sh(&format!("ip -n {host} addr add {a}/24 dev eth0"));
            }
        }
        // Linux limits ICMP errors to a burst of 50 by default: lift it so
        // every closed UDP port and every rejected SYN gets its error.
        lab.exec("tgt", "sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=100000 net.ipv4.icmp_msgs_burst=100000");
        let rules = "table inet f {\n chain in {\n  type filter hook input priority 0;\n  ip daddr 10.99.0.21 tcp dport != 22 drop\n  ip daddr 10.99.0.22 tcp dport != 22 reject with icmp type admin-prohibited\n }\n}\n";
        // Through stdin: no rules file for a killed run to leave behind.
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &lab.ns("tgt"), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(nft.wait().unwrap().success(), "nft -f - failed");
        lab
    }
}

/// nmap's XML: (target, state reason) → ports, counting the collapsed
/// `extraports` too.
fn nmap_counts(xml: &str) -> HashMap<(String, String), u64> {
    let mut out = HashMap::new();
    for host in xml.split("<host ").skip(1) {
        let addr = host
            .split("addr=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        for er in host.split("<extrareasons ").skip(1) {
            let attr = |k: &str| {
                er.split(&format!("{k}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
            };
            *out.entry((addr.clone(), attr("reason").to_string()))
                .or_default() += attr("count").parse::<u64>().unwrap_or(0);
        }
        for st in host.split("<state ").skip(1) {
            if let Some(r) = st
                .split("reason=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                *out.entry((addr.clone(), r.to_string())).or_default() += 1;
            }
        }
    }
    out
}

#[test]
fn live_sensor_sees_a_real_scan_exactly() {
    let lab = Lab::new("swl");
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    // A service on 10.99.0.20:22 for the client's ordinary connection.
    let server = Proc(Some(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("tgt"), "python3", "-c"])
            .arg("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('10.99.0.20',22)); s.listen(8)\nwhile True:\n c,_=s.accept(); c.close()")
            .spawn()
            .unwrap(),
    ));
    // A real rsyslogd in the sensor's namespace: a unix socket and a loopback
    // TCP port, writing what scanwatch sends to a file.
    let rsyslogd = Rsyslogd::start(
        dir.path(),
        RsyslogdConf {
            netns: Some(lab.ns("sensor")),
            tcp_port: Some(10514),
            input_name: true,
        },
    );

    let bin = env!("CARGO_BIN_EXE_scanwatch");
    let stderr = std::fs::File::create(p("sensor.log")).unwrap();
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("sensor"),
            bin,
            "live",
            "--interface",
            "br0",
            "--threads",
            "2",
        ])
        .args([
            "--alerts",
            &p("alerts.json"),
            "--events",
            &p("events.json"),
            "--state",
            &p("state"),
        ])
        .args([
            "--syslog",
            &format!("unix:{}", rsyslogd.sock().display()),
            "--syslog",
            "tcp:127.0.0.1:10514",
        ])
        // Short timers so the test does not wait the 40 s SYN timeout.
        .args(QUICK_LIVE)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut sensor = Proc(Some(child));
    let log = || std::fs::read_to_string(p("sensor.log")).unwrap_or_default();
    wait_for("the sensor's first stats line", 15, log, || {
        log().contains("stats:")
    });

    // An ordinary client connection first, then the scans.
    lab.exec(
        "client",
        "python3 -c \"import socket; socket.create_connection(('10.99.0.20',22),2).close()\"",
    );
    let tcp = lab.exec(
        "scan",
        "nmap -sS -n -Pn --max-retries 0 -p 1-100 -oX - 10.99.0.20 10.99.0.21 10.99.0.22",
    );
    let udp = lab.exec(
        "scan",
        "nmap -sU -n -Pn --max-retries 0 -p 1-40 -oX - 10.99.0.20",
    );
    let alerts = || std::fs::read_to_string(p("alerts.json")).unwrap_or_default();
    wait_for("an alert for the scanner", 30, log, || {
        alerts().contains("\"src_ip\":\"10.99.0.10\"")
    });

    // SIGTERM: flush, checkpoint, exit 0.
    let status = sensor.term(20);
    drop(server);
    assert!(status.success(), "exit {status}:\n{}", log());

    // Every alert line is JSON; the scanner, and only it, is alerted.
    let mut alerted = Vec::new();
    for line in alerts().lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(a["alert"]["mitre_technique_id"], "T1018");
        alerted.push(a["src_ip"].as_str().unwrap().to_string());
    }
    assert_eq!(alerted, vec!["10.99.0.10"], "{}", alerts());

    // Failed connections per target and reason, against nmap's own report.
    let mut ours: HashMap<(String, String), u64> = HashMap::new();
    for line in std::fs::read_to_string(p("events.json")).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["src_ip"], "10.99.0.10", "only the scanner fails: {e}");
        let reason = match (e["proto"].as_str().unwrap(), e["reason"].as_str().unwrap()) {
            ("TCP", "rejected") => "reset",
            ("TCP", "unanswered") => "no-response",
            ("TCP", "unreachable") => "admin-prohibited",
            ("UDP", "unreachable") => "port-unreach",
            other => panic!("unexpected event {other:?}: {e}"),
        };
        *ours
            .entry((
                e["dest_ip"].as_str().unwrap().to_string(),
                reason.to_string(),
            ))
            .or_default() += 1;
    }
    let mut theirs = nmap_counts(&tcp);
    for ((a, r), n) in nmap_counts(&udp) {
        if r == "port-unreach" {
            *theirs.entry((a, r)).or_default() += n;
        }
    }
    // The port-22 listener answered SYN-ACK: a success, not in either list.
    theirs.remove(&("10.99.0.20".to_string(), "syn-ack".to_string()));
    assert!(
        theirs.values().sum::<u64>() >= 250,
        "nmap saw the scans: {theirs:?}"
    );
    eprintln!("failed connections (target, nmap's reason) -> count: {ours:?}");
    assert_eq!(ours, theirs, "scanwatch vs nmap (target, reason) counts");

    // The stats: nothing dropped anywhere.
    let last = log()
        .lines()
        .rfind(|l| l.contains("stats:"))
        .unwrap_or_default()
        .to_string();
    for m in [
        "scanwatch_kernel_dropped_total=0 ",
        "scanwatch_interface_dropped_total=0 ",
        "scanwatch_queue_dropped_total=0 ",
    ] {
        assert!(last.contains(m), "{m} in: {last}");
    }
    // The last line comes after the final flush: nothing is pending.
    assert!(last.contains("stopped:"), "{last}");
    assert!(
        last.split_whitespace()
            .any(|t| t == "scanwatch_pending_attempts=0"),
        "{last}"
    );
    // The summary says what syslog took, as replay's does.
    assert!(
        log()
            .lines()
            .any(|l| l.trim_start().starts_with("syslog: alerts 2 sent")),
        "{}",
        log()
    );
    // No cap hit either, and the line says so.
    for m in [
        "pending_refused",
        "sources_refused",
        "sources_evicted",
        "target_sets_full",
        "evidence_cap_hits",
        "hosts_forgotten",
        "hosts_forgotten_active",
        "reorder_overflow",
        "alerts_lost",
        "events_lost",
        "syslog_spool_dropped",
    ] {
        let token = format!("scanwatch_{m}_total=0");
        assert!(
            last.split_whitespace().any(|t| t == token),
            "{token} in: {last}"
        );
    }
    assert!(
        Path::new(&p("state")).join("scanwatch.db").exists(),
        "checkpointed at exit"
    );

    // The alert reached rsyslog, once per transport, as valid JSON with the
    // structured data a SOC filters on.
    let syslog_out = || rsyslogd.output();
    wait_for(
        "the alert in rsyslog's file (unix and TCP)",
        10,
        log,
        || syslog_out().matches("\"src_ip\":\"10.99.0.10\"").count() >= 2,
    );
    let out = syslog_out();
    let mut inputs = Vec::new();
    for line in out.lines() {
        let (input, rest) = line.split_once(' ').unwrap();
        let (msgid, rest) = rest.split_once(' ').unwrap();
        assert_eq!(msgid, "alert", "{line}");
        assert!(
            rest.starts_with("[scanwatch@32473 src=\"10.99.0.10\""),
            "{line}"
        );
        let json = &rest[rest.find("] ").unwrap() + 2..];
        let a: serde_json::Value =
            serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(a["src_ip"], "10.99.0.10");
        inputs.push(input.to_string());
    }
    inputs.sort();
    assert_eq!(inputs, vec!["imtcp", "imuxsock"], "{out}");
    drop(lab);
}

/// How long rsyslogd stays down in
/// `live_sensor_spools_alerts_through_a_syslog_outage`, in seconds: minutes,
/// as an outage of a SOC's collector is. `SCANWATCH_OUTAGE_SECS` shortens it
/// for a quick run by hand.
const OUTAGE_SECS: u64 = 120;

fn outage() -> Duration {
    let secs = match std::env::var("SCANWATCH_OUTAGE_SECS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SCANWATCH_OUTAGE_SECS={v}: not a number of seconds")),
        Err(_) => OUTAGE_SECS,
    };
    Duration::from_secs(secs)
}

/// `scanwatch_syslog_backlog` (messages spooled and not yet sent, all syslog
/// destinations together) of the last stats line in `log`.
fn last_backlog(log: &str) -> Option<u64> {
    last_stat(log, "scanwatch_syslog_backlog")
}

/// Metric `name` of the last stats line in `log`.
fn last_stat(log: &str, name: &str) -> Option<u64> {
    log.lines()
        .rfind(|l| l.contains("stats:"))?
        .split(&format!(" {name}="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The alerts rsyslogd wrote from `input` (`imuxsock`, `imtcp`), in the
/// order it received them, each checked to be MSGID `alert` with structured
/// data naming the JSON's source. Only complete lines.
fn syslog_alerts(out: &str, input: &str) -> Vec<serde_json::Value> {
    let complete = out.rfind('\n').map_or("", |i| &out[..i]);
    let mut v = Vec::new();
    for line in complete.lines() {
        let (i, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        if i != input {
            continue;
        }
        let (msgid, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert_eq!(msgid, "alert", "{line}");
        let (sd, json) = rest
            .split_once("] {")
            .unwrap_or_else(|| panic!("no structured data and JSON: {line}"));
        let a: serde_json::Value = serde_json::from_str(&format!("{{{}", json.trim_end()))
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let src = a["src_ip"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(
            sd.starts_with(&format!("[scanwatch@32473 src=\"{src}\"")),
            "{line}"
        );
        v.push(a);
    }
    v
}

/// The messages spooled for each syslog destination (`syslog-*/syslog.spool`
/// under the state directory), by destination, oldest first: the source of
/// each.
fn spooled(state: &Path) -> Vec<Vec<String>> {
    let mut dirs: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("syslog.spool").exists())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            std::fs::read_to_string(d.join("syslog.spool"))
                .unwrap()
                .lines()
                .map(|l| {
                    l.split("\"src_ip\":\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or_else(|| panic!("a spooled message without src_ip: {l}"))
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// The sensor's syslog server goes away for minutes ([`OUTAGE_SECS`]) while
/// scanners keep scanning, and comes back: each alert raised meanwhile is
/// spooled (the stats line counts the backlog, the log says the sensor
/// spools and, later, that it sends again), and rsyslogd ends up with every
/// alert of the alert file exactly once per transport (unix socket and TCP),
/// in the alert file's order, as the same JSON; nothing is left in the spool
/// and nothing more arrives after the sensor stopped.
#[test]
fn live_sensor_spools_alerts_through_a_syslog_outage() {
    let outage = outage();
    let lab = Lab::new("swo");
    // Five scanners: one before the outage, three during it, one just after.
    let scanners = [
        "10.99.0.10",
        "10.99.0.11",
        "10.99.0.12",
        "10.99.0.13",
        "10.99.0.14",
    ];
    for a in &scanners[1..] {
        lab.exec("scan", &format!("ip addr add {a}/24 dev eth0"));
    }
    // Each fails on 100 ports of 10.99.0.20, which answers ARP and so is a
    // live host: a vertical scan (alerted from 50 ports on, for a margin).
    let scan = |src: &str| {
        lab.exec(
            "scan",
            &format!(
                "nmap -sS -n -Pn -e eth0 -S {src} --max-retries 0 -p 1-100 -oX /dev/null 10.99.0.20 10.99.0.21 10.99.0.22"
            ),
        );
    };
    // Open to the sensor, which rewrites its spools there as `nobody`.
    let dir = open_tempdir();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let state = dir.path().join("state");
    let mut rsyslogd = Rsyslogd::start(
        dir.path(),
        RsyslogdConf {
            netns: Some(lab.ns("sensor")),
            tcp_port: Some(10514),
            input_name: true,
        },
    );
    let unix = format!("unix:{}", rsyslogd.sock().display());
    let tcp = "tcp:127.0.0.1:10514";
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.ns("sensor")])
        .arg(env!("CARGO_BIN_EXE_scanwatch"))
        .args(["live", "--interface", "br0", "--threads", "2"])
        .args(["--alerts", &p("alerts.json"), "--state", &p("state")])
        .args(["--syslog", &unix, "--syslog", tcp])
        .args(QUICK_LIVE)
        .args(["--set", "detector.vertical_min_ports=50"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(p("sensor.log")).unwrap())
        .spawn()
        .unwrap();
    let mut sensor = Proc(Some(child));
    let log = || std::fs::read_to_string(p("sensor.log")).unwrap_or_default();
    wait_for("the sensor's first stats line", 15, log, || {
        log().contains("stats:")
    });
    let alerts = || std::fs::read_to_string(p("alerts.json")).unwrap_or_default();
    let alerted = |src: &str| alerts().contains(&format!("\"src_ip\":\"{src}\""));
    let out_path = rsyslogd.out_path();
    let syslog_out = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let received = |input: &str| syslog_alerts(&syslog_out(), input).len();

    // Before the outage: the first scanner's alert reaches rsyslogd over
    // both transports (what a server took in but had not written when it
    // stopped is beyond what a sender can know).
    scan(scanners[0]);
    wait_for("the first scanner's alert", 30, log, || {
        alerted(scanners[0])
    });
    wait_for("the first alert in rsyslogd's file", 15, log, || {
        received("imuxsock") == 1 && received("imtcp") == 1
    });

    // The outage: three scanners, spread over it, each alerted to the file
    // and spooled for both destinations.
    rsyslogd.stop();
    let down = Instant::now();
    eprintln!("rsyslogd stopped for {outage:?}");
    for (k, src) in scanners[1..4].iter().enumerate() {
        let start = down + outage * k as u32 / 3;
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
        scan(src);
        wait_for(&format!("the alert for {src}"), 30, log, || alerted(src));
        let want = 2 * (k as u64 + 1);
        wait_for(
            &format!("scanwatch_syslog_backlog={want} in the stats line"),
            10,
            log,
            || last_backlog(&log()) == Some(want),
        );
        let expect: Vec<String> = scanners[1..k + 2].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            spooled(&state),
            vec![expect.clone(), expect],
            "the spool of each destination holds the alerts of the outage, in order"
        );
    }
    for addr in [unix.as_str(), tcp] {
        let said = format!("syslog {addr}: ");
        assert!(
            log()
                .lines()
                .any(|l| l.contains(&said) && l.contains("spooling until it is back")),
            "the log says that {addr} is down and alerts are spooled:\n{}",
            log()
        );
    }
    std::thread::sleep((down + outage).saturating_duration_since(Instant::now()));

    // Back: a fifth scanner right away; the spool goes first.
    rsyslogd.restart();
    eprintln!("rsyslogd started again after {:?}", down.elapsed());
    scan(scanners[4]);
    wait_for("the last scanner's alert", 30, log, || alerted(scanners[4]));
    wait_for("every alert in rsyslogd's file", 60, log, || {
        received("imuxsock") >= 5 && received("imtcp") >= 5
    });
    wait_for("an empty backlog in the stats line", 10, log, || {
        last_backlog(&log()) == Some(0)
    });
    // Five alerts to two destinations went out (a message the TCP stack
    // took as the server stopped may count too), none was lost.
    wait_for(
        "scanwatch_syslog_sent_total >= 10 in the stats line",
        10,
        log,
        || last_stat(&log(), "scanwatch_syslog_sent_total").is_some_and(|n| n >= 10),
    );
    assert_eq!(
        last_stat(&log(), "scanwatch_syslog_dropped_total"),
        Some(0),
        "{}",
        log()
    );
    for addr in [unix.as_str(), tcp] {
        let said = format!("syslog {addr}: sending again (");
        let line = log()
            .lines()
            .find(|l| l.contains(&said))
            .unwrap_or_else(|| panic!("no '{said}' in the log:\n{}", log()))
            .to_string();
        let n: u64 = line
            .split(&said)
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        // The outage's three, and the fifth if it came before the reconnection.
        assert!(n == 3 || n == 4, "{line}");
    }

    // SIGTERM: a clean exit, nothing left to send.
    let status = sensor.term(20);
    assert!(status.success(), "exit {status}:\n{}", log());
    assert_eq!(spooled(&state), vec![Vec::<String>::new(); 2], "{}", log());
    // Anything sent twice at the end would show up now.
    std::thread::sleep(Duration::from_secs(1));

    // The alert file: one alert per scanner, in the order they scanned.
    let file: Vec<serde_json::Value> = alerts()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let sources: Vec<&str> = file.iter().map(|a| a["src_ip"].as_str().unwrap()).collect();
    assert_eq!(sources, scanners, "{}", alerts());
    // rsyslogd: the same alerts, once each, in the same order, per transport.
    let out = syslog_out();
    for input in ["imuxsock", "imtcp"] {
        let got = syslog_alerts(&out, input);
        let got_sources: Vec<&str> = got.iter().map(|a| a["src_ip"].as_str().unwrap()).collect();
        assert_eq!(
            got_sources, scanners,
            "{input}: the sources of the alerts received"
        );
        assert!(
            got == file,
            "{input}: the JSON differs from the alert file's:\n{out}"
        );
    }
    drop(lab);
}

/// CAP_NET_RAW alone is enough; without it the error says what is missing.
#[test]
fn capture_needs_cap_net_raw_and_says_so() {
    let ns = Ns::new("swlc");
    let dir = open_tempdir();
    let bin = env!("CARGO_BIN_EXE_scanwatch");
    // As nobody, no capabilities: a clear error, exit status 1.
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([bin, "-q", "live", "--interface", "lo", "--alerts", ""])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW") && err.contains("'lo'"), "{err}");
    // As nobody with CAP_NET_RAW (ambient): it captures, and stops on SIGTERM.
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut c = Proc(Some(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .args([
                "--inh-caps=+net_raw",
                "--ambient-caps=+net_raw",
                bin,
                "live",
                "--interface",
                "lo",
                "--alerts",
                "",
            ])
            .args(["--set", "capture.stats_interval=1s"])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    wait_for(
        "a stats line from the unprivileged sensor",
        15,
        text,
        || text().contains("stats:"),
    );
    // Once the capture is open the capability is given up, in every thread:
    // a compromised sensor could open no new packet socket, and it still
    // captures.
    for task in std::fs::read_dir(format!("/proc/{}/task", c.pid())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
            let line = status.lines().find(|l| l.starts_with(set)).unwrap();
            assert!(line.ends_with("0000000000000000"), "{line}");
        }
    }
    refused(&ns, 7);
    wait_for("the refused connection captured", 15, text, || {
        last_stat(&text(), "scanwatch_packets_captured_total").is_some_and(|n| n > 0)
    });
    let status = c.term(20);
    assert!(status.success(), "{}", text());
}

/// A connection to 127.0.0.1:`port` in namespace `ns`, refused (nothing
/// listens there): one failed-connection event.
fn refused(ns: &Ns, port: u16) {
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c"])
        .arg(format!(
            "import socket\ntry: socket.create_connection(('127.0.0.1',{port}),1)\nexcept OSError: pass"
        ))
        .status();
}

/// `scanwatch live ARGS --set capture.stats_interval=1s` in namespace `ns`
/// with `env` added, its log in `log`, just started.
fn spawn_live(ns: &str, args: &[&str], env: &[(&str, &std::ffi::OsStr)], log: &Path) -> Proc {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_scanwatch"), "live"])
        .args(args)
        .args(["--set", "capture.stats_interval=1s"])
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// [`spawn_live`] without `env`, once it has logged its first stats line.
fn live_sensor(ns: &str, args: &[&str], log: &Path) -> Proc {
    let sensor = spawn_live(ns, args, &[], log);
    let text = || std::fs::read_to_string(log).unwrap_or_default();
    wait_for("the sensor's first stats line", 15, text, || {
        text().contains("stats:")
    });
    sensor
}

/// SIGHUP reopens the output files (logrotate moves them, then signals).
#[test]
fn sighup_reopens_output_files() {
    let ns = Ns::new("swlh");
    let dir = open_tempdir();
    let events = dir.path().join("events.json");
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let events_arg = events.to_str().unwrap();
    let mut sensor = live_sensor(
        &ns.0,
        &["--interface", "lo", "--alerts", "", "--events", events_arg],
        &log,
    );
    // A refused connection on loopback: one failed-connection event.
    refused(&ns, 7);
    wait_for("the first event", 10, text, || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("\"dest_port\":7")
    });
    // Rotate: move the file away, signal, make another event.
    let rotated = dir.path().join("events.json.1");
    std::fs::rename(&events, &rotated).unwrap();
    // The sensor runs under `ip netns exec`, which execs it: same pid.
    signal(sensor.pid(), libc::SIGHUP);
    wait_for("the reopen to be logged", 10, text, || {
        text().contains("reopening")
    });
    refused(&ns, 9);
    wait_for("the second event in a new file", 10, text, || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("\"dest_port\":9")
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("\"dest_port\":7") && !old.contains("\"dest_port\":9"),
        "{old}"
    );
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
}

/// A cap hit shows in the stats line while the sensor runs, not only in
/// the summary at exit: with one target a source, the second refused
/// connection of 127.0.0.1 (made part of home_net here) fills its set.
#[test]
fn a_cap_hit_shows_in_the_live_stats_line() {
    need(&["python3"]);
    let ns = Ns::new("swlk");
    let dir = open_tempdir();
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let args = [
        "--interface",
        "lo",
        "--alerts",
        "",
        "--set",
        "detector.home_net=[\"127.0.0.0/8\"]",
        "--set",
        "detector.max_targets_per_source=1",
    ];
    let mut sensor = live_sensor(&ns.0, &[&args[..], &QUICK_LIVE[..]].concat(), &log);
    refused(&ns, 7);
    refused(&ns, 9);
    wait_for("the cap hit in a stats line", 20, text, || {
        text().lines().any(|l| {
            l.contains("stats:")
                && l.split_whitespace()
                    .any(|t| t == "scanwatch_target_sets_full_total=1")
        })
    });
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
}

/// A full disk under the output files costs the lines written while it is
/// full, counted, not every line after it: the events file took nothing
/// more after the first failure, and at SIGTERM the sensor exited 1
/// without its last stats line or summary. A 1 MiB tmpfs is filled, a
/// refused connection's event is lost, the space is freed, and the next
/// event is written.
#[test]
fn a_full_disk_loses_only_what_came_while_it_was_full() {
    need(&["python3"]);
    let ns = Ns::new("swlf");
    let dir = open_tempdir();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=1m tmpfs {}",
        small.display()
    ));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _mounted = Unmount(small.clone());
    let (events, alerts) = (small.join("events.json"), small.join("alerts.json"));
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let args = [
        "--interface",
        "lo",
        "--events",
        events.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
    ];
    let mut sensor = live_sensor(&ns.0, &[&args[..], &QUICK_LIVE[..]].concat(), &log);
    let filler = small.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    refused(&ns, 7);
    wait_for("the write failure to be logged", 10, text, || {
        text().contains("cannot write to")
    });
    std::fs::remove_file(&filler).unwrap();
    refused(&ns, 9);
    let written = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_for("the next event in the file", 10, written, || {
        written().contains("\"dest_port\":9")
    });
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
    let all = text();
    assert!(all.contains("writing to") && all.contains("again"), "{all}");
    let last = all
        .lines()
        .rfind(|l| l.contains("stopped:"))
        .expect("a last stats line");
    assert!(
        last.split_whitespace()
            .any(|t| t == "scanwatch_events_lost_total=1"),
        "{last}"
    );
    for line in written().lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
        assert_ne!(e["dest_port"], 7, "{line}");
    }
}

/// Started as root, the sensor runs as an unprivileged user: an output in
/// a directory only root may write cannot be reopened after a rotation,
/// and the sensor says so when it starts, not at the first SIGHUP.
#[test]
fn an_output_directory_the_capture_user_cannot_write_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let ns = Ns::new("swlw");
    let dir = open_tempdir();
    let root_only = dir.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    let alerts = root_only.join("alerts.json");
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut sensor = live_sensor(
        &ns.0,
        &["--interface", "lo", "--alerts", alerts.to_str().unwrap()],
        &log,
    );
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
    assert!(
        text().contains("is not writable by the user the sensor runs as"),
        "{}",
        text()
    );
    // A directory it may write: nothing said.
    let log2 = dir.path().join("log2");
    let ok = dir.path().join("alerts.json");
    let mut sensor = live_sensor(
        &ns.0,
        &["--interface", "lo", "--alerts", ok.to_str().unwrap()],
        &log2,
    );
    assert!(sensor.term(20).success());
    assert!(
        !std::fs::read_to_string(&log2)
            .unwrap()
            .contains("not writable")
    );
}

/// An interface that disappears under the sensor (a driver reset, a VLAN
/// interface re-created) stops it with exit status 1, so that systemd's
/// `Restart=on-failure` starts it again; it exited 0 before, as if asked to
/// stop, and the port went unwatched.
#[test]
fn a_vanished_interface_is_a_failure() {
    let ns = Ns::new("swld");
    ns.exec("ip link add swdel0 type veth peer name swdel1");
    ns.exec("ip link set swdel0 up");
    ns.exec("ip link set swdel1 up");
    let dir = open_tempdir();
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut sensor = live_sensor(&ns.0, &["--interface", "swdel0", "--alerts", ""], &log);
    ns.exec("ip link del swdel0");
    let status = sensor.wait(20);
    assert_eq!(status.code(), Some(1), "{}", text());
    assert!(text().contains("capture stopped"), "{}", text());
}

/// The last stats line (the one logged at "stopped:") counts every packet
/// up to the stop. Each capture thread reads the kernel's counters once a
/// second and a last time as it ends; the line used to be made as soon as
/// the stop was seen, before those last reads, so it could miss up to a
/// second of packets and the kernel drops among them. On a veth every
/// packet the sensor captured was received by the kernel first, so a
/// consistent line has `received >= captured`; a burst right before
/// SIGTERM caught the old order in about half the runs, so this does two.
/// The burst must also be captured whole: a capture thread empties its
/// ring before it looks at the stop flag again.
#[test]
fn the_last_stats_line_counts_every_packet_up_to_the_stop() {
    need(&["python3"]);
    let (rx, tx) = (Ns::new("swsr"), Ns::new("swst"));
    let veth = format!("swsv{}", std::process::id() % 100_000);
    sh(&format!(
        "ip link add {veth} netns {} type veth peer name eth0 netns {}",
        rx.0, tx.0
    ));
    rx.exec(&format!("ip link set {veth} up"));
    rx.exec(&format!("ip addr add 10.98.0.1/24 dev {veth}"));
    tx.exec("ip link set eth0 up");
    tx.exec("ip addr add 10.98.0.2/24 dev eth0");
    let dir = open_tempdir();
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let field = |line: &str, name: &str| -> u64 {
        let at = line
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("{name} in {line}"));
        line[at + name.len() + 1..]
            .split(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    for round in 0..2 {
        let args = ["--interface", &veth, "--threads", "2", "--bpf", ""];
        let mut sensor = live_sensor(
            &rx.0,
            &[&args[..], &["--alerts", "", "--events", ""]].concat(),
            &log,
        );
        // One datagram and a pause first: the burst must not wait for
        // ARP (the kernel holds only a few packets for an unresolved
        // neighbour).
        const BURST: u64 = 2000;
        tx.python(&format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('10.98.0.1', 9))\ntime.sleep(0.5)\nfor i in range({BURST}): s.sendto(b'x', ('10.98.0.1', 9))"
        ));
        let status = sensor.term(20);
        assert!(status.success(), "{}", text());
        let all = text();
        let last = all
            .lines()
            .rfind(|l| l.contains("stopped:"))
            .unwrap_or_else(|| panic!("no stopped line in:\n{all}"));
        let received = field(last, "scanwatch_packets_received_total");
        let captured = field(last, "scanwatch_packets_captured_total");
        // The burst (and the port-unreachable errors it draws) was in the
        // kernel's count, and in the capture ring, before SIGTERM was sent.
        assert!(received >= BURST, "round {round}: {last}");
        assert!(received >= captured, "round {round}: {last}");
        assert!(captured >= BURST, "round {round}: {last}");
        assert_eq!(field(last, "scanwatch_kernel_dropped_total"), 0, "{last}");
    }
}

/// A namespace left by a killed test run (its process-id part held by no
/// running process) is deleted before a test makes its own; a live run's
/// is kept, and names no test makes are never touched.
#[test]
fn namespaces_of_killed_test_runs_are_reaped() {
    use common::lab::{namespaces, reap_stale_namespaces, running_pid_parts, test_ns_pid};
    assert_eq!(test_ns_pid("swo4242sensor"), Some(4242));
    assert_eq!(test_ns_pid("swlc17"), Some(17));
    assert_eq!(test_ns_pid("swf0"), Some(0));
    for other in [
        "blue",
        "sw",
        "swo",
        "swosensor",
        "swo12-x",
        "xswo12",
        "swo12X",
        "swan42",
        "swo123456",
        "swl12c",
    ] {
        assert_eq!(test_ns_pid(other), None, "{other}");
    }
    let running = running_pid_parts();
    let dead = (1..100_000).rev().find(|d| !running.contains(d)).unwrap();
    let ours = Ns::new("swzt");
    let stale = format!("swzt{dead}");
    // Not a test's name: stays.
    let foreign = format!("swan{dead}");
    sh(&format!("ip netns add {stale} && ip netns add {foreign}"));
    reap_stale_namespaces();
    let names = namespaces();
    let (left, kept) = (names.contains(&stale), names.contains(&foreign));
    for n in [&stale, &foreign] {
        let _ = Command::new("ip").args(["netns", "del", n]).status();
    }
    assert!(!left, "{stale} was not reaped: {names:?}");
    assert!(kept, "{foreign} was reaped: {names:?}");
    assert!(names.contains(&ours.0), "{} was reaped: {names:?}", ours.0);
}

/// A FIFO at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// The reading end of the FIFO at `path`, opened without waiting for a
/// writer (a writer's open waits for a reader), not read yet.
fn fifo_reader(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// Messages on the notify socket `sock` for `d`: (what, when).
fn notifications(sock: &std::os::unix::net::UnixDatagram, d: Duration) -> Vec<String> {
    let end = Instant::now() + d;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
        }
    }
    got
}

/// systemd's watchdog (`WatchdogSec=` in the unit) is fed while the
/// pipeline moves, and not while a stage hangs: here the output thread,
/// blocked writing events into a FIFO that its reader stopped reading. The
/// log says why; once the FIFO is read again the feeding resumes.
#[test]
fn the_watchdog_is_fed_only_while_the_pipeline_moves() {
    need(&["python3"]);
    let ns = Ns::new("swlg");
    let dir = open_tempdir();
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let notify = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    // The sensor sends as the user it drops to, as to systemd's socket.
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let events = dir.path().join("events");
    mkfifo(&events);
    let reader = fifo_reader(&events);
    let args = [
        "--interface",
        "lo",
        "--alerts",
        "",
        "--events",
        events.to_str().unwrap(),
    ];
    let env = [
        ("NOTIFY_SOCKET", notify.as_os_str()),
        // Fed every 0.3 s.
        ("WATCHDOG_USEC", "600000".as_ref()),
    ];
    let mut sensor = spawn_live(&ns.0, &[&args[..], &QUICK_LIVE[..]].concat(), &env, &log);
    let first = notifications(&sock, Duration::from_secs(3));
    assert!(
        first.iter().any(|m| m == "READY=1"),
        "{first:?}\n{}",
        text()
    );
    let pings = |v: &[String]| v.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings(&first) >= 4, "{first:?}\n{}", text());

    // ~600 refused connections: more event lines than the FIFO holds.
    let before = text().len();
    ns.python(
        "import socket\nfor p in range(2000, 2600):\n    try: socket.create_connection(('127.0.0.1', p), 1)\n    except OSError: pass",
    );
    // Only what is logged from here on: a hiccup at the start would not do.
    wait_for("the stall to be logged", 20, text, || {
        text().get(before..).unwrap_or("").contains("has not moved")
    });
    // What was sent before the stall was logged, then nothing.
    let _ = notifications(&sock, Duration::from_millis(100));
    let during = notifications(&sock, Duration::from_secs(2));
    assert_eq!(pings(&during), 0, "{during:?}\n{}", text());

    // Read the FIFO again, to its end (the sensor closes it at exit).
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut reader = reader;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
    wait_for("the pipeline to move again", 20, text, || {
        text().get(before..).unwrap_or("").contains("moves again")
    });
    let after = notifications(&sock, Duration::from_secs(2));
    assert!(pings(&after) >= 3, "{after:?}\n{}", text());
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
    // Every refused connection's event came through.
    let total = drain.join().unwrap();
    assert!(total > 600 * 300, "{total} bytes of events");
}

/// A SIGHUP while the sensor starts (logrotate's postrotate, while a large
/// state loads) must not kill it: SIGHUP's default action ends a process,
/// and systemd counts that death as a clean exit, so nothing would restart
/// the sensor. Here the start is held in the open of the alerts file, a
/// FIFO nobody reads yet; the signal comes then, and once the FIFO is read
/// the sensor starts, captures, and exits 0 at SIGTERM.
#[test]
fn a_sighup_during_the_start_does_not_kill_the_sensor() {
    let ns = Ns::new("swle");
    let dir = open_tempdir();
    let log = dir.path().join("log");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let alerts = dir.path().join("alerts");
    mkfifo(&alerts);
    let args = ["--interface", "lo", "--alerts", alerts.to_str().unwrap()];
    let mut sensor = spawn_live(&ns.0, &args, &[], &log);
    let pid = sensor.pid();
    // Blocked in the FIFO's open: past the capture's open, before the
    // outputs are.
    wait_for("the sensor to wait in the FIFO's open", 15, text, || {
        std::fs::read_to_string(format!("/proc/{pid}/stack"))
            .unwrap_or_default()
            .contains("fifo_open")
    });
    signal(pid, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let died = sensor.0.as_mut().unwrap().try_wait().unwrap();
    assert!(
        died.is_none(),
        "the sensor died while starting ({died:?}):\n{}",
        text()
    );
    // Read the FIFO (opened without waiting for its writer): the start goes
    // on.
    let reader = fifo_reader(&alerts);
    wait_for("a stats line after the start", 15, text, || {
        text().contains("stats:")
    });
    let status = sensor.term(20);
    assert!(status.success(), "{}", text());
    drop(reader);
}
