//! `scanwatch live` on a real network: namespaces joined by a bridge (a
//! scanner, a client, three target addresses: one answering RST, one silently
//! dropping with nftables, one rejecting with ICMP admin-prohibited), a real
//! `nmap -sS` and `nmap -sU`, and the sensor capturing on the bridge. Its
//! failed-connection counts must equal what nmap itself reports, the scanner
//! must be alerted, the kernel must drop nothing, and SIGTERM must end it
//! cleanly. Everything the test creates is deleted, on failure too; all
//! traffic stays inside the namespaces. Needs root (CI runs as root).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The namespaces (and with them their veths and the bridge), removed on drop.
struct Lab {
    p: String,
}

impl Lab {
    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.p)
    }
    fn exec(&self, n: &str, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.ns(n)))
    }
    fn new() -> Lab {
        let uid = unsafe { libc_geteuid() };
        assert_eq!(uid, 0, "the live test needs root (CI runs as root)");
        for tool in ["ip", "nft", "nmap"] {
            assert!(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {tool}"))
                    .output()
                    .unwrap()
                    .status
                    .success(),
                "{tool} is needed: run `bash scripts/setup-deps test`"
            );
        }
        let lab = Lab {
            p: format!("swl{}", std::process::id() % 100_000),
        };
        for n in ["sensor", "scan", "client", "tgt"] {
            sh(&format!("ip netns add {}", lab.ns(n)));
        }
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
            sh(&format!(
                "ip -n {host} link set eth0 up && ip -n {host} link set lo up"
            ));
            for a in addrs {
                sh(&format!("ip -n {host} addr add {a}/24 dev eth0"));
            }
        }
        // Linux limits ICMP errors to a burst of 50 by default: lift it so
        // every closed UDP port and every rejected SYN gets its error.
        lab.exec("tgt", "sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=100000 net.ipv4.icmp_msgs_burst=100000");
        let rules = "table inet f {\n chain in {\n  type filter hook input priority 0;\n  ip daddr 10.99.0.21 tcp dport != 22 drop\n  ip daddr 10.99.0.22 tcp dport != 22 reject with icmp type admin-prohibited\n }\n}\n";
        std::fs::write(format!("/tmp/{}.nft", lab.p), rules).unwrap();
        lab.exec("tgt", &format!("nft -f /tmp/{}.nft", lab.p));
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in ["sensor", "scan", "client", "tgt"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
        let _ = std::fs::remove_file(format!("/tmp/{}.nft", self.p));
    }
}

// std has no geteuid; the test links libc through the crate anyway.
unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Kills the sensor if the test fails before it stops it.
struct Sensor(Option<Child>);

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
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
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    // A service on 10.99.0.20:22 for the client's ordinary connection.
    let mut server = Command::new("ip")
        .args(["netns", "exec", &lab.ns("tgt"), "python3", "-c"])
        .arg("import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('10.99.0.20',22)); s.listen(8)\nwhile True:\n c,_=s.accept(); c.close()")
        .spawn()
        .unwrap();
    // A real rsyslogd in the sensor's namespace: a unix socket and a loopback
    // TCP port, writing what scanwatch sends to a file.
    std::fs::create_dir_all(p("rsyslog")).unwrap();
    let conf = format!(
        r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
input(type="imuxsock" Socket="{sock}" CreatePath="on" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")
input(type="imtcp" address="127.0.0.1" port="10514")
template(name="t" type="string" string="%inputname% %msgid% %structured-data% %msg%\n")
if $app-name == "scanwatch" then {{
    action(type="omfile" file="{out}" template="t")
    stop
}}
"#,
        work = p("rsyslog"),
        sock = p("log.sock"),
        out = p("syslog.out"),
    );
    std::fs::write(p("rsyslog.conf"), conf).unwrap();
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg("command -v rsyslogd")
            .output()
            .unwrap()
            .status
            .success(),
        "rsyslogd is needed: run `bash scripts/setup-deps test`"
    );
    lab.exec("sensor", "ip link set lo up");
    let rsyslogd = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("sensor"),
            "rsyslogd",
            "-n",
            "-f",
            &p("rsyslog.conf"),
            "-i",
            &p("rsyslog.pid"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _rsyslogd = Sensor(Some(rsyslogd));
    wait_for("rsyslogd's unix socket", 10, || {
        Path::new(&p("log.sock")).exists()
    });
    wait_for("rsyslogd's TCP port", 10, || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("sensor"),
                "python3",
                "-c",
                "import socket; socket.create_connection(('127.0.0.1',10514),1).close()",
            ])
            .status()
            .is_ok_and(|s| s.success())
    });

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
            &format!("unix:{}", p("log.sock")),
            "--syslog",
            "tcp:127.0.0.1:10514",
        ])
        // Short timers so the test does not wait the 40 s SYN timeout.
        .args([
            "--set",
            "detector.activation_period=0s",
            "--set",
            "detector.training_period=0s",
        ])
        .args([
            "--set",
            "tracker.syn_timeout=3s",
            "--set",
            "tracker.reorder_tolerance=1s",
            "--set",
            "capture.stats_interval=1s",
        ])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut sensor = Sensor(Some(child));
    let log = || std::fs::read_to_string(p("sensor.log")).unwrap_or_default();
    wait_for("the sensor's first stats line", 15, || {
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
    wait_for("an alert for the scanner", 30, || {
        alerts().contains("\"src_ip\":\"10.99.0.10\"")
    });

    // SIGTERM: flush, checkpoint, exit 0.
    let mut c = sensor.0.take().unwrap();
    unsafe { kill(c.id() as i32, 15) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the sensor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
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
    assert!(
        Path::new(&p("state")).join("scanwatch.db").exists(),
        "checkpointed at exit"
    );

    // The alert reached rsyslog, once per transport, as valid JSON with the
    // structured data a SOC filters on.
    let syslog_out = || std::fs::read_to_string(p("syslog.out")).unwrap_or_default();
    wait_for("the alert in rsyslog's file (unix and TCP)", 10, || {
        syslog_out().matches("\"src_ip\":\"10.99.0.10\"").count() >= 2
    });
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

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// One namespace with only a loopback: a private link to capture on.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let uid = unsafe { libc_geteuid() };
        assert_eq!(uid, 0, "the live tests need root (CI runs as root)");
        let n = format!("swl{tag}{}", std::process::id() % 100_000);
        sh(&format!("ip netns add {n} && ip -n {n} link set lo up"));
        Ns(n)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A temp dir the sensor can write in after it dropped to `nobody`.
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    dir
}

/// CAP_NET_RAW alone is enough; without it the error says what is missing.
#[test]
fn capture_needs_cap_net_raw_and_says_so() {
    let ns = Ns::new("c");
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
    let mut c = Command::new("ip")
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
        .unwrap();
    wait_for("a stats line from the unprivileged sensor", 15, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("stats:")
    });
    unsafe { kill(c.id() as i32, 15) };
    let status = c.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// SIGHUP reopens the output files (logrotate moves them, then signals).
#[test]
fn sighup_reopens_output_files() {
    let ns = Ns::new("h");
    let dir = open_tempdir();
    let events = dir.path().join("events.json");
    let log = dir.path().join("log");
    let bin = env!("CARGO_BIN_EXE_scanwatch");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            bin,
            "live",
            "--interface",
            "lo",
            "--alerts",
            "",
        ])
        .args([
            "--events",
            events.to_str().unwrap(),
            "--set",
            "capture.stats_interval=1s",
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut sensor = Sensor(Some(child));
    wait_for("the sensor's first stats line", 15, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("stats:")
    });
    // A refused connection on loopback: one failed-connection event.
    let refused = |port: u16| {
        let _ = Command::new("ip")
            .args(["netns", "exec", &ns.0, "python3", "-c"])
            .arg(format!("import socket\ntry: socket.create_connection(('127.0.0.1',{port}),1)\nexcept OSError: pass"))
            .status();
    };
    refused(7);
    wait_for("the first event", 10, || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("\"dest_port\":7")
    });
    // Rotate: move the file away, signal, make another event.
    let rotated = dir.path().join("events.json.1");
    std::fs::rename(&events, &rotated).unwrap();
    let pid = sensor.0.as_ref().unwrap().id();
    // The sensor runs under `ip netns exec`, which execs it: same pid.
    unsafe { kill(pid as i32, 1) };
    wait_for("the reopen to be logged", 10, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reopening")
    });
    refused(9);
    wait_for("the second event in a new file", 10, || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("\"dest_port\":9")
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("\"dest_port\":7") && !old.contains("\"dest_port\":9"),
        "{old}"
    );
    let mut c = sensor.0.take().unwrap();
    unsafe { kill(c.id() as i32, 15) };
    assert!(c.wait().unwrap().success());
}
