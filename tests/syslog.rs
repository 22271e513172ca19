//! The syslog output against a real rsyslogd (Debian's `rsyslog`, installed
//! by `bash scripts/setup-deps test`), started by each test in its own
//! temporary directory: a unix socket (imuxsock), TCP and UDP on free loopback
//! ports, and every message from scanwatch written to a file with its
//! transport, facility, severity, host, app, pid, MSGID, structured data and
//! MSG, which the tests read back. The TLS tests add an imtcp input with
//! rsyslog's gtls driver (Debian's `rsyslog-gnutls`), with certificates
//! made by `openssl` for each test.

use std::fs;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use scanwatch::analyze::{Alert, Severity};
use scanwatch::config::Dur;
use scanwatch::decode::Addr;
use scanwatch::output::syslog::{
    Message, MsgKind, Outcome, SyslogAddr, SyslogConfig, SyslogFormat, SyslogSeverity, SyslogSink,
};

/// Every wait is bounded by this, so a broken setup fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

fn rsyslogd_path() -> PathBuf {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("rsyslogd");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "rsyslogd is not installed: these tests need a real syslog server; \
         run `bash scripts/setup-deps test` (it installs Debian's rsyslog)"
    );
}

/// A private rsyslogd: killed when dropped, failed test or not.
struct Rsyslog {
    dir: tempfile::TempDir,
    conf: PathBuf,
    sock: PathBuf,
    out: PathBuf,
    tcp_port: u16,
    udp_port: u16,
    /// The TLS input's port (input name `imtls`), with `new_tls`.
    tls_port: Option<u16>,
    child: Option<Child>,
}

/// A free loopback TCP port (the kernel's choice, released for rsyslogd).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Test certificates, made with openssl: a CA, a server certificate it
/// signed for `localhost` and `127.0.0.1`, a client certificate it signed,
/// and a second CA that signed nothing here.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run openssl ({e}): run `bash scripts/setup-deps test`")
                });
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=scanwatch test {ca}"),
            );
            a.extend([
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            openssl(&a);
        }
        for (name, ext) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            ),
            (
                "client",
                "subjectAltName=DNS:sensor.test\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
            ),
        ] {
            let (key, csr, pem, ext_file, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
                format!("/CN={name}"),
            );
            fs::write(d.join(&ext_file), ext).unwrap();
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&a);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext_file,
            ]);
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Rsyslog {
    /// Write the configuration; `start` runs it.
    fn new() -> Rsyslog {
        Rsyslog::with_tls(None)
    }

    /// Also a TLS input (`imtls`) that takes only clients with a
    /// certificate signed by `certs`' CA (gtls, `x509/certvalid`).
    fn new_tls(certs: &Certs) -> Rsyslog {
        Rsyslog::with_tls(Some(certs))
    }

    fn with_tls(certs: Option<&Certs>) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("work")).unwrap();
        let tcp_port = free_tcp_port();
        let udp_port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = d.join("log.sock");
        let out = d.join("scanwatch.log");
        let conf = d.join("rsyslog.conf");
        let tls_port = certs.map(|_| free_tcp_port());
        let (tls_global, tls_input) = match (certs, tls_port) {
            (Some(c), Some(port)) => (
                format!(
                    " DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    c.path("ca.pem").display(),
                    c.path("server.pem").display(),
                    c.path("server.key").display()
                ),
                format!(
                    "input(type=\"imtcp\" name=\"imtls\" address=\"127.0.0.1\" port=\"{port}\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")\n"
                ),
            ),
            _ => (String::new(), String::new()),
        };
        // imuxsock: the regular parsers (RFC 5424 included) instead of the
        // "special parser" meant for syslog(3)'s format, host names parsed,
        // the message's own TIMESTAMP kept (imuxsock replaces it with the
        // time of receipt by default), no rate limit.
        let text = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k"{tls_global})
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
module(load="imudp")
input(type="imuxsock" Socket="{sock}" CreatePath="on" UseSpecialParser="off" ParseHostname="on" IgnoreTimestamp="off" RateLimit.Interval="0")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
{tls_input}template(name="t" type="string" string="%inputname% %timereported:::date-rfc3339% %syslogfacility-text% %syslogseverity-text% %hostname% %app-name% %procid% %msgid% %structured-data% %msg%\n")
if $app-name == "scanwatch" then {{
    action(type="omfile" file="{out}" template="t")
    stop
}}
action(type="omfile" file="{other}")
"#,
            work = d.join("work").display(),
            sock = sock.display(),
            out = out.display(),
            other = d.join("other.log").display(),
        );
        fs::write(&conf, text).unwrap();
        Rsyslog {
            dir,
            conf,
            sock,
            out,
            tcp_port,
            udp_port,
            tls_port,
            child: None,
        }
    }

    fn diagnostics(&self) -> String {
        let read = |n: &str| fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "rsyslogd output:\n{}\nother messages:\n{}\nscanwatch messages:\n{}",
            read("rsyslogd.out"),
            read("other.log"),
            read("scanwatch.log")
        )
    }

    /// Start rsyslogd and wait until its socket and ports are there.
    fn start(&mut self) {
        assert!(self.child.is_none());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rsyslogd.out"))
            .unwrap();
        let child = Command::new(rsyslogd_path())
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rsyslogd: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("rsyslogd exited at start ({st})\n{}", self.diagnostics());
            }
            let ready = self.sock.exists()
                && TcpStream::connect(("127.0.0.1", self.tcp_port)).is_ok()
                && udp_listening(self.udp_port)
                && self
                    .tls_port
                    .is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd not ready after {WAIT:?} (socket {}, tcp {}, udp {})\n{}",
                self.sock.display(),
                self.tcp_port,
                self.udp_port,
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and wait for it to exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) of our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rsyslogd ignored SIGTERM for {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The lines written so far (not one rsyslogd is still writing).
    fn lines(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines().map(str::to_string).collect()
    }

    /// Wait until `n` lines came from `input` (bounded); the lines.
    fn wait_lines(&self, input: &str, n: usize) -> Vec<Line> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<Line> = self
                .lines()
                .iter()
                .map(|l| Line::parse(l))
                .filter(|l| l.input == input)
                .collect();
            if got.len() >= n {
                // A moment more, to see duplicates arrive if there were any.
                std::thread::sleep(Duration::from_millis(200));
                return self
                    .lines()
                    .iter()
                    .map(|l| Line::parse(l))
                    .filter(|l| l.input == input)
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages from {input} after {WAIT:?}\n{}",
                got.len(),
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether something listens on UDP `port` on loopback (/proc/net/udp).
fn udp_listening(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X} ");
    fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&needle))
}

/// One line of the output file, per the template.
#[derive(Debug)]
struct Line {
    input: String,
    /// TIMESTAMP as rsyslog parsed it.
    time: String,
    facility: String,
    severity: String,
    host: String,
    app: String,
    procid: String,
    msgid: String,
    /// The structured data as rsyslog kept it.
    sd_raw: String,
    /// Its parameters, unescaped.
    sd: Vec<(String, String)>,
    msg: String,
}

impl Line {
    fn parse(l: &str) -> Line {
        let mut it = l.splitn(9, ' ');
        let mut next = || {
            it.next()
                .unwrap_or_else(|| panic!("short line: {l}"))
                .to_string()
        };
        let (input, time, facility, severity, host, app, procid, msgid) = (
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
        );
        let rest = next();
        let (sd_raw, sd, msg) = if let Some(m) = rest.strip_prefix("- ") {
            ("-".to_string(), Vec::new(), m.to_string())
        } else {
            let (sd, end) = parse_sd(&rest).unwrap_or_else(|| panic!("bad SD: {l}"));
            let msg = rest[end..].strip_prefix(' ').unwrap_or(&rest[end..]);
            (rest[..end].to_string(), sd, msg.to_string())
        };
        Line {
            input,
            time,
            facility,
            severity,
            host,
            app,
            procid,
            msgid,
            sd_raw,
            sd,
            msg,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.msg.trim_start())
            .unwrap_or_else(|e| panic!("MSG is not JSON ({e}): {}", self.msg))
    }

    fn seq(&self) -> u64 {
        self.json()["seq"].as_u64().expect("seq")
    }

    fn sd(&self, name: &str) -> &str {
        self.sd
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no SD parameter {name}: {}", self.sd_raw))
    }
}

/// RFC 5424 SD-ELEMENTs at the start of `s`: the parameters (unescaped) and
/// where the structured data ends.
fn parse_sd(s: &str) -> Option<(Vec<(String, String)>, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut params = Vec::new();
    while b.get(i) == Some(&b'[') {
        i += 1;
        while b.get(i).is_some_and(|&c| c != b' ' && c != b']') {
            i += 1; // SD-ID
        }
        loop {
            match b.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => i += 1,
                _ => return None,
            }
            let eq = i + s[i..].find('=')?;
            let name = s[i..eq].to_string();
            i = eq + 1;
            if b.get(i) != Some(&b'"') {
                return None;
            }
            i += 1;
            let mut value = String::new();
            loop {
                let c = s[i..].chars().next()?;
                i += c.len_utf8();
                match c {
                    '"' => break,
                    '\\' => {
                        let e = s[i..].chars().next()?;
                        i += e.len_utf8();
                        if !matches!(e, '"' | '\\' | ']') {
                            value.push('\\');
                        }
                        value.push(e);
                    }
                    c => value.push(c),
                }
            }
            params.push((name, value));
        }
    }
    Some((params, i))
}

fn cfg(addr: SyslogAddr) -> SyslogConfig {
    SyslogConfig {
        address: addr,
        reconnect_min: Dur(Duration::from_millis(50)),
        reconnect_max: Dur(Duration::from_millis(250)),
        timeout: Dur(Duration::from_secs(1)),
        flush_timeout: Dur(Duration::from_secs(2)),
        ..SyslogConfig::default()
    }
}

const TS: i64 = 1_710_583_200_034_000_000; // 2024-03-16T10:00:00.034000Z
/// A signature with every character RFC 5424 makes us escape.
const ODD_SIGNATURE: &str = r#"Failed "Connections" [C:\scan] \\ end"#;

fn json(seq: u64) -> String {
    format!(
        "{{\"timestamp\":\"2024-03-16T10:00:00.034000Z\",\"event_type\":\"alert\",\"seq\":{seq},\
         \"summary\":\"quote \\\" backslash \\\\ bracket ] é\"}}"
    )
}

/// Even `seq`: a real `Alert` through `send_alert` (low: warning);
/// odd: `send` with an odd signature (informational).
fn send(sink: &SyslogSink, seq: u64) -> Outcome {
    let j = json(seq);
    if seq.is_multiple_of(2) {
        sink.send_alert(&Alert {
            ts: TS + seq as i64 * 1000,
            src: Addr::v4([10, 10, 2, 66]),
            severity: Severity::Low,
            variation: "sequential_test",
            json: j,
        })
    } else {
        sink.send(&Message {
            kind: MsgKind::Alert,
            ts_ns: TS + seq as i64 * 1000,
            severity: SyslogSeverity::Informational,
            sd: &[
                ("src", "10.10.2.67"),
                ("severity", "informational"),
                ("signature", ODD_SIGNATURE),
                ("variation", "count"),
            ],
            json: &j,
        })
    }
}

fn check_line(l: &Line) {
    let seq = l.seq();
    assert_eq!(l.app, "scanwatch");
    assert_eq!(l.procid, std::process::id().to_string());
    assert_eq!(l.msgid, "alert");
    // The event time, to the microsecond.
    assert_eq!(
        l.time,
        format!("2024-03-16T10:00:00.{:06}Z", 34_000 + seq),
        "{l:?}"
    );
    assert_eq!(l.facility, "local0");
    assert_eq!(
        l.json()["summary"],
        "quote \" backslash \\ bracket ] é",
        "{}",
        l.msg
    );
    if seq.is_multiple_of(2) {
        assert_eq!(l.severity, "warning");
        assert_eq!(
            l.sd_raw,
            "[scanwatch@32473 src=\"10.10.2.66\" severity=\"low\" \
             signature=\"Failed Connections\" variation=\"sequential_test\"]"
        );
    } else {
        assert_eq!(l.severity, "info");
        assert_eq!(
            l.sd_raw,
            r#"[scanwatch@32473 src="10.10.2.67" severity="informational" signature="Failed \"Connections\" [C:\\scan\] \\\\ end" variation="count"]"#
        );
        assert_eq!(l.sd("signature"), ODD_SIGNATURE);
    }
    assert_eq!(
        l.sd("src"),
        if seq.is_multiple_of(2) {
            "10.10.2.66"
        } else {
            "10.10.2.67"
        }
    );
    assert!(!l.sd("variation").is_empty() && !l.sd("severity").is_empty());
}

fn seqs(lines: &[Line]) -> Vec<u64> {
    lines.iter().map(Line::seq).collect()
}

#[test]
fn alerts_arrive_over_unix_tcp_and_udp() {
    let mut rs = Rsyslog::new();
    rs.start();
    let spool = tempfile::tempdir().unwrap();
    let transports = [
        ("imuxsock", SyslogAddr::Unix(rs.sock.clone())),
        (
            "imtcp",
            // A name: connecting tries its addresses in turn (::1, then
            // 127.0.0.1 where rsyslogd listens).
            SyslogAddr::Tcp {
                host: "localhost".into(),
                port: rs.tcp_port,
            },
        ),
        (
            "imudp",
            SyslogAddr::Udp {
                host: "127.0.0.1".into(),
                port: rs.udp_port,
            },
        ),
    ];
    for (input, addr) in transports {
        let dir = spool.path().join(input);
        let sink = SyslogSink::start(&cfg(addr), Some(&dir)).unwrap();
        for seq in 0..50 {
            assert_ne!(send(&sink, seq), Outcome::Dropped);
        }
        let lines = rs.wait_lines(input, 50);
        let s = sink.close();
        assert_eq!((s.sent, s.dropped, s.backlog), (50, 0, 0), "{input}");
        assert_eq!(lines.len(), 50, "{input}: each once");
        let host = sink_host();
        for l in &lines {
            check_line(l);
            assert_eq!(l.host, host);
        }
        let mut got = seqs(&lines);
        if input == "imudp" {
            got.sort(); // UDP promises no order
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>(), "{input}");
    }

    // RFC 3164 to the unix socket: rsyslog finds the tag and pid, MSG is the
    // JSON (after the space that follows the colon).
    let c = SyslogConfig {
        format: SyslogFormat::Rfc3164,
        ..cfg(SyslogAddr::Unix(rs.sock.clone()))
    };
    let sink = SyslogSink::start(&c, None).unwrap();
    for seq in 100..105 {
        send(&sink, seq);
    }
    sink.close();
    let lines = rs.wait_lines("imuxsock", 55);
    let bsd = &lines[50..];
    assert_eq!(seqs(bsd), (100..105).collect::<Vec<_>>());
    for l in bsd {
        assert_eq!(
            (l.app.as_str(), l.msgid.as_str(), l.sd_raw.as_str()),
            ("scanwatch", "-", "-")
        );
        assert_eq!(l.procid, std::process::id().to_string());
    }
}

/// The HOSTNAME scanwatch sends, as rsyslog shows it.
fn sink_host() -> String {
    let h = scanwatch::output::syslog::hostname();
    if h == "-" { "localhost".into() } else { h }
}

/// Send 30, stop rsyslogd, send 40 (spooled, quickly), start it again: all
/// 70 arrive once, in order.
fn outage(input: &str, addr: impl Fn(&Rsyslog) -> SyslogAddr) {
    let mut rs = Rsyslog::new();
    rs.start();
    let c = cfg(addr(&rs));
    outage_with(input, rs, c);
}

fn outage_with(input: &str, mut rs: Rsyslog, c: SyslogConfig) {
    let spool = tempfile::tempdir().unwrap();
    let sink = SyslogSink::start(&c, Some(spool.path())).unwrap();
    let stats = sink.stats();
    for seq in 0..30 {
        assert_eq!(send(&sink, seq), Outcome::Queued);
    }
    // All 30 are in rsyslog's file before it stops: what a server accepted
    // but had not written when it stopped is beyond what a sender can know.
    assert_eq!(rs.wait_lines(input, 30).len(), 30);
    assert_eq!(stats.snapshot().sent, 30);
    rs.stop();

    let mut slowest = Duration::ZERO;
    let t0 = Instant::now();
    for seq in 30..70 {
        let t = Instant::now();
        assert_ne!(send(&sink, seq), Outcome::Dropped);
        slowest = slowest.max(t.elapsed());
    }
    let all = t0.elapsed();
    assert!(
        slowest < Duration::from_millis(200) && all < Duration::from_secs(1),
        "send must not wait for the network: slowest {slowest:?}, all 40 {all:?}"
    );
    let deadline = Instant::now() + WAIT;
    while stats.snapshot().backlog < 40 {
        assert!(Instant::now() < deadline, "backlog {:?}", stats.snapshot());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = stats.snapshot();
    assert_eq!((s.backlog, s.spooled, s.sent, s.dropped), (40, 40, 30, 0));
    assert!(!s.connected);
    let spooled = fs::read_to_string(spool.path().join("syslog.spool")).unwrap();
    assert_eq!(spooled.lines().count(), 40);

    rs.start();
    let lines = rs.wait_lines(input, 70);
    assert_eq!(
        seqs(&lines),
        (0..70).collect::<Vec<_>>(),
        "exactly once, in order"
    );
    for l in &lines {
        check_line(l);
    }
    let deadline = Instant::now() + WAIT;
    while stats.snapshot().backlog > 0 {
        assert!(Instant::now() < deadline, "{:?}", stats.snapshot());
        std::thread::sleep(Duration::from_millis(10));
    }
    // Back to the queue once the spool is sent.
    let deadline = Instant::now() + WAIT;
    while send(&sink, 70) != Outcome::Queued {
        assert!(Instant::now() < deadline, "{:?}", stats.snapshot());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = sink.close();
    assert_eq!((s.backlog, s.dropped), (0, 0));
    assert!(s.reconnects >= 1, "{s:?}");
    assert_eq!(
        fs::metadata(spool.path().join("syslog.spool"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn outage_over_the_unix_socket_loses_and_repeats_nothing() {
    outage("imuxsock", |rs| SyslogAddr::Unix(rs.sock.clone()));
}

/// Reliable here because the test waits for rsyslogd to exit: its end of the
/// connection is closed by then, and the sender sees that before writing.
/// (A server that dies while the bytes are in flight loses them: see the
/// module docs.)
#[test]
fn outage_over_tcp_loses_and_repeats_nothing() {
    outage("imtcp", |rs| SyslogAddr::Tcp {
        host: "127.0.0.1".into(),
        port: rs.tcp_port,
    });
}

/// The TLS settings of a sink that trusts `certs`' CA and shows its client
/// certificate.
fn tls_cfg(certs: &Certs, host: &str, port: u16) -> SyslogConfig {
    SyslogConfig {
        tls_ca: Some(certs.path("ca.pem")),
        tls_cert: Some(certs.path("client.pem")),
        tls_key: Some(certs.path("client.key")),
        ..cfg(SyslogAddr::Tls {
            host: host.into(),
            port,
        })
    }
}

#[test]
fn alerts_arrive_over_tls() {
    let certs = Certs::new();
    let mut rs = Rsyslog::new_tls(&certs);
    rs.start();
    let spool = tempfile::tempdir().unwrap();
    // A name, checked against the certificate's DNS entry (and tried at
    // ::1 first, where nothing listens).
    let sink = SyslogSink::start(
        &tls_cfg(&certs, "localhost", rs.tls_port.unwrap()),
        Some(spool.path()),
    )
    .unwrap();
    for seq in 0..50 {
        assert_eq!(send(&sink, seq), Outcome::Queued);
    }
    let lines = rs.wait_lines("imtls", 50);
    let s = sink.close();
    assert_eq!((s.sent, s.dropped, s.backlog), (50, 0, 0));
    assert_eq!(
        seqs(&lines),
        (0..50).collect::<Vec<_>>(),
        "each once, in order"
    );
    for l in &lines {
        check_line(l);
        assert_eq!(l.host, sink_host());
    }
    // Nothing reached rsyslog in the clear: every message came through the
    // TLS input.
    assert_eq!(rs.lines().len(), 50, "{}", rs.diagnostics());
}

/// What the sinks log (warnings and up), for the tests that check why a
/// destination failed: one subscriber for this test binary.
fn log_text() -> String {
    use std::sync::{Arc, Mutex, OnceLock};
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOG: OnceLock<Buf> = OnceLock::new();
    let buf = LOG.get_or_init(|| {
        let buf = Buf(Arc::new(Mutex::new(Vec::new())));
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .init();
        buf
    });
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}

/// A server scanwatch cannot verify, or one that refuses scanwatch's
/// certificate, gets nothing: the messages wait in the spool, the failure
/// is logged with its reason, and none is counted as sent.
#[test]
fn tls_sends_nothing_to_a_server_it_cannot_trust_or_that_refuses_it() {
    let certs = Certs::new();
    let mut rs = Rsyslog::new_tls(&certs);
    rs.start();
    let port = rs.tls_port.unwrap();
    log_text(); // the subscriber, before the sinks start
    let cases = [
        (
            "a CA that did not sign the server's certificate",
            "invalid peer certificate: UnknownIssuer",
            SyslogConfig {
                tls_ca: Some(certs.path("other-ca.pem")),
                ..tls_cfg(&certs, "127.0.0.1", port)
            },
        ),
        (
            "a name the server's certificate does not carry",
            "certificate not valid for name \"siem.example.org\"",
            SyslogConfig {
                tls_server_name: Some("siem.example.org".into()),
                ..tls_cfg(&certs, "127.0.0.1", port)
            },
        ),
        (
            "no client certificate, which this server requires",
            "the server closed the TLS session",
            SyslogConfig {
                tls_cert: None,
                tls_key: None,
                ..tls_cfg(&certs, "127.0.0.1", port)
            },
        ),
    ];
    for (what, why, c) in cases {
        let logged = log_text().len();
        // rsyslogd refuses the certificate-less client after the handshake:
        // give it more than the default 200 ms on a loaded test machine.
        let c = SyslogConfig {
            tls_verdict_wait: Dur(Duration::from_secs(1)),
            ..c
        };
        let spool = tempfile::tempdir().unwrap();
        let sink = SyslogSink::start(&c, Some(spool.path())).unwrap();
        let stats = sink.stats();
        for seq in 0..5 {
            assert_ne!(send(&sink, seq), Outcome::Dropped, "{what}");
        }
        // Give the sender time for several attempts (backoff 50-250 ms).
        std::thread::sleep(Duration::from_millis(2500));
        let s = stats.snapshot();
        assert_eq!((s.sent, s.backlog, s.dropped), (0, 5, 0), "{what}: {s:?}");
        assert!(!s.connected, "{what}");
        let s = sink.close();
        assert_eq!((s.sent, s.backlog), (0, 5), "{what}");
        let spooled = fs::read_to_string(spool.path().join("syslog.spool")).unwrap();
        assert_eq!(spooled.lines().count(), 5, "{what}");
        let log = log_text()[logged..].to_string();
        assert!(
            log.contains(why) && log.contains("spooling until it is back"),
            "{what}: expected '{why}' in the log:\n{log}"
        );
    }
    assert!(
        rs.lines().is_empty(),
        "nothing may arrive\n{}",
        rs.diagnostics()
    );
}

/// As over TCP: an rsyslogd stopped and started again loses and repeats
/// nothing, through a new TLS session (to an IP address, checked against
/// the certificate's IP entry); the session it ended is logged.
#[test]
fn outage_over_tls_loses_and_repeats_nothing() {
    let certs = Certs::new();
    let mut rs = Rsyslog::new_tls(&certs);
    rs.start();
    let port = rs.tls_port.unwrap();
    let c = tls_cfg(&certs, "127.0.0.1", port);
    log_text(); // the subscriber, before the sink starts
    outage_with("imtls", rs, c);
    // The session rsyslogd ended when it stopped was noticed, and said.
    let log = log_text();
    assert!(
        log.contains(&format!(
            "syslog tls:127.0.0.1:{port}: the server ended the TLS session"
        )),
        "{log}"
    );
}

/// What a closed sink left in its spool goes first at the next start.
#[test]
fn the_spool_outlives_the_process() {
    let mut rs = Rsyslog::new();
    let spool = tempfile::tempdir().unwrap();
    let c = cfg(SyslogAddr::Unix(rs.sock.clone()));
    // The server is not there yet.
    let sink = SyslogSink::start(&c, Some(spool.path())).unwrap();
    for seq in 0..10 {
        send(&sink, seq);
    }
    let s = sink.close();
    assert_eq!((s.sent, s.backlog, s.dropped), (0, 10, 0));
    let text = fs::read_to_string(spool.path().join("syslog.spool")).unwrap();
    assert_eq!(text.lines().count(), 10);
    rs.start();
    let sink = SyslogSink::start(&c, Some(spool.path())).unwrap();
    for seq in 10..20 {
        send(&sink, seq);
    }
    let lines = rs.wait_lines("imuxsock", 20);
    assert_eq!(seqs(&lines), (0..20).collect::<Vec<_>>());
    let s = sink.close();
    assert_eq!((s.sent, s.backlog, s.dropped), (20, 0, 0));
}

/// `output.syslog.events = true`: a replay sends every failed-connection
/// event (MSGID `failed_connection`, informational, its source,
/// destination, reason and probe as structured data, the event's JSON line
/// as MSG) on a connection of its own, besides the alerts; the JSON is
/// byte for byte the events file's line, in the same order. Without the
/// key, only the alerts go.
#[test]
fn events_go_to_syslog_when_asked() {
    let mut rs = Rsyslog::new();
    rs.start();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/pcaps/real/nmap-syn-scan-evilfingers.pcap");
    let dir = tempfile::tempdir().unwrap();
    let replay = |events_to_syslog: bool, file: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
            .args(["-q", "replay", "--alerts", "/dev/null", "--events"])
            .arg(file)
            .arg("--syslog")
            .arg(format!("tcp:127.0.0.1:{}", rs.tcp_port))
            .args([
                "--set",
                "detector.activation_period=0s",
                "--set",
                &format!("output.syslog.events={events_to_syslog}"),
            ])
            .arg(&cap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        fs::read_to_string(file).unwrap()
    };
    let file = replay(true, &dir.path().join("events.json"));
    let want: Vec<&str> = file.lines().collect();
    assert!(want.len() > 1000, "{} events", want.len());
    let lines = rs.wait_lines("imtcp", want.len() + 1);
    let (alerts, events): (Vec<&Line>, Vec<&Line>) = lines.iter().partition(|l| l.msgid == "alert");
    assert_eq!(alerts.len(), 1, "the scan's one alert");
    let got: Vec<&str> = events.iter().map(|l| l.msg.trim_start()).collect();
    assert_eq!(got, want, "each event once, in order, as in the file");
    for l in &events {
        let j = l.json();
        assert_eq!(
            (l.msgid.as_str(), l.severity.as_str()),
            ("failed_connection", "info")
        );
        assert_eq!(l.sd("src"), j["src_ip"].as_str().unwrap());
        assert_eq!(l.sd("dest"), j["dest_ip"].as_str().unwrap());
        assert_eq!(l.sd("reason"), j["reason"].as_str().unwrap());
        assert_eq!(l.sd("probe"), j["probe"].as_str().unwrap());
    }
    // The default: alerts only.
    replay(false, &dir.path().join("again.json"));
    let lines = rs.wait_lines("imtcp", want.len() + 2);
    assert_eq!(lines.len(), want.len() + 2);
    assert_eq!(lines.last().unwrap().msgid, "alert");
}

/// A backlog follows its destination: spooled for a unix socket and a TCP
/// port while rsyslogd is down, it goes to the same ones when the
/// `--syslog` flags come in the other order (spool directories are named
/// after the address, not numbered). A spool of a destination no longer
/// configured is warned about at start, with its size, and left alone.
#[test]
fn a_backlog_follows_its_destination() {
    let mut rs = Rsyslog::new();
    let state = tempfile::tempdir().unwrap();
    let unix = format!("unix:{}", rs.sock.display());
    let tcp = format!("tcp:127.0.0.1:{}", rs.tcp_port);
    // A third destination that never answers: its backlog will be left.
    let gone = format!("unix:{}", state.path().join("gone.sock").display());
    let settings = cfg(SyslogAddr::default());
    let sinks = |addrs: &[&String]| {
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        scanwatch::output::syslog_sinks(Some(&settings), &addrs, Some(state.path())).unwrap()
    };
    // rsyslogd is down: unix gets 0..5, TCP 100..105, the third 200..203.
    let first = sinks(&[&unix, &tcp, &gone]);
    for (sink, seqs) in first.iter().zip([0..5, 100..105, 200..203]) {
        for seq in seqs {
            assert_ne!(send(sink, seq), Outcome::Dropped);
        }
    }
    for (sink, n) in first.into_iter().zip([5, 5, 3]) {
        let s = sink.close();
        assert_eq!((s.sent, s.backlog, s.dropped), (0, n, 0));
    }
    // Up again, the flags the other way round, the third one gone.
    rs.start();
    let second = sinks(&[&tcp, &unix]);
    let uxs = rs.wait_lines("imuxsock", 5);
    let tcps = rs.wait_lines("imtcp", 5);
    assert_eq!(seqs(&uxs), (0..5).collect::<Vec<_>>());
    assert_eq!(seqs(&tcps), (100..105).collect::<Vec<_>>());
    for sink in second {
        let s = sink.close();
        assert_eq!((s.sent, s.backlog, s.dropped), (5, 0, 0));
    }

    // A start with only TCP warns about the third one's 3 messages (and
    // not about the unix socket's spool, which is empty), and keeps them.
    let gone_dir = state.path().join(scanwatch::output::syslog::spool_dir_name(
        &gone.parse().unwrap(),
    ));
    let gone_spool = fs::read_to_string(gone_dir.join("syslog.spool")).unwrap();
    assert_eq!(gone_spool.lines().count(), 3);
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args([
            "-q",
            "replay",
            "--alerts",
            "/dev/null",
            "--syslog",
            &tcp,
            "--state",
        ])
        .arg(state.path())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/golden.pcap"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("syslog spool '"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains(&gone_dir.display().to_string())
            && warned[0].contains(&format!("holds {} bytes", gone_spool.len()))
            && warned[0].contains(&format!(
                "messages for {gone}, which is not a destination now"
            ))
            && warned[0].contains("kept, not sent"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(gone_dir.join("syslog.spool")).unwrap(),
        gone_spool
    );
}
