//! What the tests that run `scanwatch live` on a real link share: shell
//! commands, waiting, root, network namespaces, a real rsyslogd, children
//! that cannot outlive a failed test, and a temp dir open to the sensor after
//! it dropped its privileges. Everything a helper creates is removed when it
//! is dropped, on failure too.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `--set` arguments that make a live test quick: alerts from the first
/// probes (no activation or training period), a 3 s SYN timeout, 1 s of
/// reorder tolerance, a stats line every second.
pub const QUICK_LIVE: [&str; 10] = [
    "--set",
    "detector.activation_period=0s",
    "--set",
    "detector.training_period=0s",
    "--set",
    "tracker.syn_timeout=3s",
    "--set",
    "tracker.reorder_tolerance=1s",
    "--set",
    "capture.stats_interval=1s",
];

/// Run `cmd` with `sh -c`; fail the test with its stderr if it fails; its
/// stdout.
pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fail the test, saying how to get them, unless every tool is on the PATH.
pub fn need(tools: &[&str]) {
    for tool in tools {
        assert!(
            have(tool),
            "{tool} is needed: run `bash scripts/setup-deps test`"
        );
    }
}

/// Wait up to `secs` for `f`; on a timeout, fail with `log()` (what the
/// process under test said; `String::new` when there is none).
pub fn wait_for(what: &str, secs: u64, log: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}; its log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the test runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the test can mount file systems; if not, says why it is skipped.
/// With it, the lock that keeps such tests apart: `ip netns exec` copies the
/// mounts of the moment into the sensor's mount namespace, where another
/// test's file system would stay mounted after that test unmounted it.
pub fn root_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    static MOUNTS: Mutex<()> = Mutex::new(());
    if !is_root() {
        eprintln!("skipped {test}: it mounts file systems and needs root (CI runs as root)");
        return None;
    }
    Some(MOUNTS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A temp dir the sensor can write in after it dropped to `nobody`.
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    dir
}

/// Send `sig` to `pid` (a child of the test).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A child killed when dropped (a test that fails leaves no process behind).
/// Under `ip netns exec`, which execs it, the child's pid is the program's.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// SIGTERM, and the exit status within `secs`.
    pub fn term(&mut self, secs: u64) -> ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        self.wait(secs)
    }

    /// The exit status within `secs`, without a signal.
    pub fn wait(&mut self, secs: u64) -> ExitStatus {
        let mut c = self.0.take().expect("running");
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() >= Duration::from_secs(secs) {
                let _ = c.kill();
                let _ = c.wait();
                panic!("no exit within {secs} s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A network namespace with its loopback up, deleted when dropped (with the
/// veths and bridges in it).
pub struct Ns(pub String);

/// The prefixes of the namespaces the tests make: a prefix, the process id
/// modulo 100,000 and, in the live lab, one of [`NS_HOSTS`]. The reaper
/// deletes names of this form only: a developer's own namespaces are never
/// touched. A new test adds its prefix here ([`Ns::named`] checks).
const NS_PREFIXES: [&str; 14] = [
    "swl", "swo", "swlc", "swlh", "swlk", "swld", "swlf", "swlw", "swlg", "swle", "swsr", "swst",
    "swf", "swzt",
];
/// The live lab's hosts (`tests/live.rs`).
const NS_HOSTS: [&str; 5] = ["", "sensor", "scan", "client", "tgt"];

/// The process-id part of a test namespace's name (`swo4242sensor`: 4242),
/// or `None` for a name no test makes.
pub fn test_ns_pid(name: &str) -> Option<u32> {
    NS_PREFIXES.iter().find_map(|p| {
        let rest = name.strip_prefix(p)?;
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits > 5 || !NS_HOSTS.contains(&&rest[digits..]) {
            return None;
        }
        rest[..digits].parse().ok()
    })
}

/// Delete the namespaces of test runs that are gone (a run killed before
/// its `Drop`s left them, with their veth pairs): a name whose process-id
/// part no running process has, modulo 100,000 as the names take it.
/// Processes of another PID namespace that shares `/run/netns` (a
/// container) are not seen: two such test runs at once must not share it.
pub fn reap_stale_namespaces() {
    // The list first, the processes after: a namespace listed was made by a
    // process that, if it still runs, is in /proc by then (the other order
    // would miss a test process started between the two).
    let names = namespaces();
    let running = running_pid_parts();
    if running.is_empty() {
        return; // no /proc to tell: delete nothing
    }
    for name in names {
        if test_ns_pid(&name).is_some_and(|pid| !running.contains(&pid)) {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// The names `ip netns list` gives (empty if it cannot run).
pub fn namespaces() -> Vec<String> {
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| Some(l.split_whitespace().next()?.to_owned()))
        .collect()
}

/// The running processes' ids modulo 100,000, as namespace names hold them
/// (empty without /proc).
pub fn running_pid_parts() -> std::collections::HashSet<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .map(|pid| pid % 100_000)
                .collect()
        })
        .unwrap_or_default()
}

impl Ns {
    /// `NAME`, exactly (at most 15 characters leave room for veth names).
    /// The first namespace a test process makes first removes those that
    /// killed runs left behind.
    pub fn named(name: String) -> Ns {
        assert!(is_root(), "network namespaces need root (CI runs as root)");
        assert!(
            test_ns_pid(&name).is_some(),
            "{name}: add its prefix to NS_PREFIXES"
        );
        static REAP: std::sync::Once = std::sync::Once::new();
        REAP.call_once(reap_stale_namespaces);
        sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        Ns(name)
    }

    /// `PREFIX` and this process's id (tests in parallel processes apart).
    pub fn new(prefix: &str) -> Ns {
        Ns::named(format!("{prefix}{}", std::process::id() % 100_000))
    }

    /// `ip netns exec NS cmd` through `sh`; its stdout.
    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.0))
    }

    /// A Python program in the namespace; fails the test if it fails.
    pub fn python(&self, code: &str) {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-c", code])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// How [`Rsyslogd`] listens and writes.
#[derive(Clone, Debug, Default)]
pub struct RsyslogdConf {
    /// The network namespace to run in (`ip netns exec`); the host's if none.
    pub netns: Option<String>,
    /// Also TCP (imtcp) on 127.0.0.1:PORT.
    pub tcp_port: Option<u16>,
    /// Start each output line with the input it came from (`imuxsock`,
    /// `imtcp`).
    pub input_name: bool,
}

/// A real rsyslogd, killed when dropped: a unix socket `DIR/log.sock`
/// (imuxsock, RFC 5424 parsed), TCP if asked, and every message of app
/// `scanwatch` written to `DIR/syslog.out` as `[INPUT ]MSGID SD MSG`.
/// Stopped and started again, it appends to the same file.
pub struct Rsyslogd {
    dir: PathBuf,
    conf: RsyslogdConf,
    proc: Proc,
}

impl Rsyslogd {
    /// Write its configuration in `dir`, start it, wait until it takes
    /// messages.
    pub fn start(dir: &Path, conf: RsyslogdConf) -> Rsyslogd {
        need(&["rsyslogd"]);
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let work = dir.join("rsyslog");
        std::fs::create_dir_all(&work).unwrap();
        let (tcp_module, tcp_input) = match conf.tcp_port {
            Some(port) => (
                "module(load=\"imtcp\")\n".to_string(),
                format!("input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n"),
            ),
            None => (String::new(), String::new()),
        };
        let input = if conf.input_name { "%inputname% " } else { "" };
        let text = format!(
            r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
{tcp_module}input(type="imuxsock" Socket="{sock}" CreatePath="on" UseSpecialParser="off" ParseHostname="on" RateLimit.Interval="0")
{tcp_input}template(name="t" type="string" string="{input}%msgid% %structured-data% %msg%\n")
if $app-name == "scanwatch" then {{
    action(type="omfile" file="{out}" template="t")
    stop
}}
"#,
            work = s(&work),
            sock = s(&dir.join("log.sock")),
            out = s(&dir.join("syslog.out")),
        );
        std::fs::write(dir.join("rsyslog.conf"), text).unwrap();
        let mut r = Rsyslogd {
            dir: dir.to_path_buf(),
            conf,
            proc: Proc(None),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let s = |f: &str| self.dir.join(f).to_str().unwrap().to_string();
        let mut cmd = match &self.conf.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "rsyslogd"]);
                c
            }
            None => Command::new("rsyslogd"),
        };
        let child = cmd
            .args(["-n", "-f", &s("rsyslog.conf"), "-i", &s("rsyslog.pid")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Proc(Some(child));
        let sock = self.sock();
        // The socket file may be a stale one of a stopped rsyslogd: wait
        // until a datagram goes through (of another app, so not written).
        wait_for("rsyslogd's unix socket", 10, String::new, || {
            sock.exists()
                && UnixDatagram::unbound()
                    .and_then(|u| u.send_to(b"<14>1 - - probe - - - ready?", &sock))
                    .is_ok()
        });
        if let Some(port) = self.conf.tcp_port {
            let code =
                format!("import socket; socket.create_connection(('127.0.0.1',{port}),1).close()");
            wait_for("rsyslogd's TCP port", 10, String::new, || {
                let mut c = match &self.conf.netns {
                    Some(ns) => {
                        let mut c = Command::new("ip");
                        c.args(["netns", "exec", ns, "python3"]);
                        c
                    }
                    None => Command::new("python3"),
                };
                c.args(["-c", &code])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
        }
    }

    /// Its unix socket.
    pub fn sock(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    /// The file it writes to.
    pub fn out_path(&self) -> PathBuf {
        self.dir.join("syslog.out")
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.out_path()).unwrap_or_default()
    }

    /// SIGTERM, and wait (at most 20 s) until it exited.
    pub fn stop(&mut self) {
        let status = self.proc.term(20);
        assert!(
            status.success() || status.code().is_none(),
            "rsyslogd: {status}"
        );
    }

    /// Start it again (after [`Rsyslogd::stop`]), with the same settings.
    pub fn restart(&mut self) {
        assert!(self.proc.0.is_none(), "rsyslogd still runs");
        self.spawn();
    }
}
