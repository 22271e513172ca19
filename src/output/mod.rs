//! Output: the JSON schema of events, and where lines go.
//!
//! # Failed-connection event (`--events`)
//! One JSON object per line, field names after Suricata's EVE so that SOC
//! pipelines already know them:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `timestamp` | RFC 3339 UTC, µs | first probe of the attempt (the answer's time for probes not tracked: UDP, ICMP, IP protocol, ACK probes) |
//! | `event_type` | `"failed_connection"` | |
//! | `src_ip`, `src_port` | string, number | the initiator (always; for ICMP errors, the prober named in the quote) |
//! | `dest_ip`, `dest_port` | string, number | the target; ports absent for ARP, ICMP and other IP protocols |
//! | `proto` | `"TCP"`, `"UDP"`, `"ICMP"`, `"IPv6-ICMP"`, `"ARP"`, or the IP protocol number | |
//! | `reason` | `"rejected"`, `"unanswered"`, `"unreachable"`, `"unresolved"` | see [`crate::track`] |
//! | `probe` | `"syn"`, `"fin"`, `"null"`, `"xmas"`, `"other_flags"`, `"ack"`, `"udp"`, `"icmp"`, `"ip_proto"`, `"arp"` | what the initiator sent |
//! | `conn_state` | `"REJ"`, `"S0"`, `"RSTOS0"` | Zeek's state, for SYN attempts rejected or unanswered |
//! | `community_id` | string | Community ID v1 (absent for ARP and ICMP probes) |
//! | `retransmissions` | number | probes re-sent before the outcome |
//! | `last_probe` | RFC 3339 | last probe before the outcome |
//! | `decided_at` | RFC 3339 | the answer's time, or when the timeout ran out |
//! | `icmp` | object | `{"type", "code", "sender"}` of the error, for `unreachable` |
//! | `vlan` | array | 802.1Q ids of the first probe, outer first, when tagged |
//! | `at_capture_end` | `true` | present when the input ended before the timeout ran out |
//! | `evicted` | `true` | present when decided before the timeout because the pending table was full |
//!
//! Example:
//! ```json
//! {"timestamp":"2024-03-01T10:00:05.000000Z","event_type":"failed_connection","src_ip":"10.1.0.2","src_port":40001,"dest_ip":"10.1.0.3","dest_port":445,"proto":"TCP","reason":"rejected","probe":"syn","conn_state":"REJ","community_id":"1:...","retransmissions":0,"last_probe":"2024-03-01T10:00:05.000000Z","decided_at":"2024-03-01T10:00:05.000210Z"}
//! ```

pub mod community_id;
pub mod syslog;
pub mod time;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::decode::Proto;
use crate::track::{Event, Probe, Reason};

pub use community_id::community_id;

/// The EVE `proto` string.
pub fn proto_name(p: Proto) -> std::borrow::Cow<'static, str> {
    match p {
        Proto::Tcp => "TCP".into(),
        Proto::Udp => "UDP".into(),
        Proto::Icmp => "ICMP".into(),
        Proto::Icmpv6 => "IPv6-ICMP".into(),
        Proto::Arp => "ARP".into(),
        Proto::Ip(n) => n.to_string().into(),
    }
}

/// Format one event as a JSON line (with the trailing newline) into `out`.
///
/// Every string written is an address, a fixed word or a number, so nothing
/// needs escaping.
pub fn event_json(e: &Event, out: &mut String) {
    let k = &e.key;
    out.push_str("{\"timestamp\":\"");
    time::rfc3339(e.first_ts, out);
    out.push_str("\",\"event_type\":\"failed_connection\",\"src_ip\":\"");
    push_addr(out, &k.src);
    out.push('"');
    let ports = matches!(k.proto, Proto::Tcp | Proto::Udp);
    if ports {
        out.push_str(",\"src_port\":");
        push_port(out, k.sport);
    }
    out.push_str(",\"dest_ip\":\"");
    push_addr(out, &k.dst);
    out.push('"');
    if ports {
        out.push_str(",\"dest_port\":");
        push_port(out, k.dport);
    }
    out.push_str(",\"proto\":\"");
    match k.proto {
        Proto::Ip(n) => push_num(out, n),
        p => out.push_str(&proto_name(p)),
    }
    out.push_str("\",\"reason\":\"");
    out.push_str(e.reason.name());
    out.push_str("\",\"probe\":\"");
    out.push_str(e.probe.name());
    out.push('"');
    if e.probe == Probe::Syn {
        let state = match e.reason {
            Reason::Rejected => Some("REJ"),
            Reason::Unanswered if e.initiator_reset => Some("RSTOS0"),
            Reason::Unanswered => Some("S0"),
            _ => None,
        };
        if let Some(s) = state {
            out.push_str(",\"conn_state\":\"");
            out.push_str(s);
            out.push('"');
        }
    }
    let mark = out.len();
    out.push_str(",\"community_id\":\"");
    if community_id::write_community_id(k, out) {
        out.push('"');
    } else {
        out.truncate(mark);
    }
    out.push_str(",\"retransmissions\":");
    push_num(out, e.retransmissions);
    out.push_str(",\"last_probe\":\"");
    time::rfc3339(e.last_ts, out);
    out.push_str("\",\"decided_at\":\"");
    time::rfc3339(e.decided_ts, out);
    out.push('"');
    if let Some(i) = e.icmp {
        let _ = write!(
            out,
            ",\"icmp\":{{\"type\":{},\"code\":{},\"sender\":\"{}\"}}",
            i.icmp_type, i.code, i.sender
        );
    }
    match e.vlan {
        [0, 0] => {}
        [v, 0] => {
            let _ = write!(out, ",\"vlan\":[{v}]");
        }
        [v, w] => {
            let _ = write!(out, ",\"vlan\":[{v},{w}]");
        }
    }
    if e.at_capture_end {
        out.push_str(",\"at_capture_end\":true");
    }
    if e.evicted {
        out.push_str(",\"evicted\":true");
    }
    out.push_str("}\n");
}

/// Append `b`, which its caller built of ASCII alone (digits, and bytes
/// from fixed ASCII tables). Checking it as UTF-8 again was a tenth of the
/// output thread's time under a flood: four short checks an event, for
/// bytes that cannot fail them.
///
/// # Safety
/// `b` must be ASCII (checked in debug builds only).
#[inline]
unsafe fn push_ascii(out: &mut String, b: &[u8]) {
    debug_assert!(b.is_ascii(), "{b:?}");
    // SAFETY: ASCII bytes are valid UTF-8 on their own (the caller's
    // promise), so the string stays UTF-8.
    unsafe { out.as_mut_vec() }.extend_from_slice(b);
}

/// An integer in decimal, without `fmt`: a flood writes millions of events.
#[inline]
fn push_num(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Decimal digits of a byte, left-aligned, and their count in the last
/// byte: a dotted quad is four lookups.
static OCTET: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, u) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = match i {
            0..10 => [b'0' + u, 0, 0, 1],
            10..100 => [b'0' + d, b'0' + u, 0, 2],
            _ => [b'0' + h, b'0' + d, b'0' + u, 3],
        };
        i += 1;
    }
    t
};

/// `n` in decimal (a port), without `fmt`.
#[inline]
fn push_port(out: &mut String, n: u16) {
    let digits = 1
        + usize::from(n >= 10)
        + usize::from(n >= 100)
        + usize::from(n >= 1000)
        + usize::from(n >= 10000);
    let mut b = [b'0'; 8];
    let mut v = n;
    for i in (0..digits).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // SAFETY: digits, and at most 5 of the 8.
    unsafe { push_padded(out, &b, digits) };
}

/// Append the first `n` bytes of `b` as a copy of all 8 or 16 and a
/// truncation: a copy of a length known at compile time is a store or two,
/// where copying `n` bytes was a call to `memcpy` (half of an event's
/// copies were such short ones: octets, ports).
///
/// # Safety
/// `b` must be ASCII and `n <= N`: the string must stay UTF-8.
#[inline]
unsafe fn push_padded<const N: usize>(out: &mut String, b: &[u8; N], n: usize) {
    debug_assert!(n <= N && b.is_ascii());
    let len = out.len();
    // SAFETY: the caller's promise: ASCII bytes, cut between two of them.
    let v = unsafe { out.as_mut_vec() };
    v.extend_from_slice(b);
    v.truncate(len + n);
}

/// An address as text: dotted quad by hand (nearly every event), IPv6 by
/// the standard library (RFC 5952 form).
fn push_addr(out: &mut String, a: &crate::decode::Addr) {
    if a.is_v4() {
        // 15 bytes at most: three dots and four octets of three digits.
        let mut b = [0u8; 16];
        let mut n = 0;
        for (i, &o) in a.0[12..].iter().enumerate() {
            if i > 0 {
                b[n] = b'.';
                n += 1;
            }
            let d = OCTET[usize::from(o)];
            b[n..n + 3].copy_from_slice(&d[..3]);
            n += usize::from(d[3]);
        }
        // SAFETY: digits, dots and zero padding (ASCII), n at most 15.
        unsafe { push_padded(out, &b, n) };
    } else {
        let _ = write!(out, "{a}");
    }
}

/// A live sensor's output file. It reopens itself after a SIGHUP
/// (logrotate moves the file, then signals): each write checks a shared
/// generation counter that the signal handler's thread bumps.
///
/// A write that fails (a full disk, an I/O error) does not stop the file
/// for good, as it would a replay's output (there the run fails): the
/// lines it held are dropped and counted ([`Reopen::lost`]), the failure is
/// logged once, and every later write tries again; when one succeeds, the
/// recovery is logged with the count, and a line the failure cut short is
/// ended first, so that the lines after it stay whole JSON. A sensor runs
/// for weeks: a disk that filled for an hour must not cost the weeks after.
pub struct Reopen {
    path: std::path::PathBuf,
    file: File,
    /// Lines not yet written (whole lines: callers write whole lines).
    buf: Vec<u8>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    seen: u64,
    lost: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Writes are failing (logged once, until one succeeds).
    failing: bool,
    /// The file may end in a line cut short by a failed write.
    torn: bool,
}

/// Bytes a [`Reopen`] gathers before it writes.
const REOPEN_BUFFER: usize = 1 << 16;

impl Reopen {
    pub fn open(
        path: &Path,
        generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> io::Result<Reopen> {
        let seen = generation.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Reopen {
            path: path.to_path_buf(),
            file: Reopen::append(path)?,
            buf: Vec::with_capacity(REOPEN_BUFFER),
            generation,
            seen,
            lost: Default::default(),
            failing: false,
            torn: false,
        })
    }

    fn append(path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Lines dropped because they could not be written.
    pub fn lost(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.lost.clone()
    }

    /// Reopen the file if a SIGHUP came since the last write.
    fn follow_rotation(&mut self) {
        let g = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        if g != self.seen {
            self.seen = g;
            self.drain();
            match Reopen::append(&self.path) {
                Ok(f) => {
                    self.file = f;
                    self.torn = false;
                }
                // Losing output is worse than writing to the moved file: keep
                // the old one, say why, try again at the next SIGHUP. (After
                // the privilege drop the directory must be writable by the
                // capture user.)
                Err(e) => tracing::error!(
                    "cannot reopen '{}' after SIGHUP: {e}; still writing to the file open before",
                    self.path.display()
                ),
            }
        }
    }

    /// Write what is gathered; on failure drop it, counted (see above).
    fn drain(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // The newline ending a line a failure cut short: not a line of its
        // own (that one was counted lost when it was cut).
        let prefix = usize::from(self.torn);
        if self.torn {
            self.buf.insert(0, b'\n');
        }
        let mut done = 0;
        let result = loop {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    done += n;
                    if done == self.buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if done > 0 {
            self.torn = self.buf[done - 1] != b'\n';
        }
        match result {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    tracing::warn!(
                        "writing to '{}' again; {} line(s) lost in all since the sensor started",
                        self.path.display(),
                        self.lost.load(std::sync::atomic::Ordering::Relaxed)
                    );
                }
            }
            Err(e) => {
                let cut = self.buf[done.max(prefix)..]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                self.lost
                    .fetch_add(cut as u64, std::sync::atomic::Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        "cannot write to '{}': {e}; its lines are dropped and counted until a write succeeds again (each later write tries)",
                        self.path.display()
                    );
                }
            }
        }
        self.buf.clear();
    }
}

impl Write for Reopen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    /// The whole buffer to one file: the output thread writes a block's
    /// lines at once, and a SIGHUP between two pieces of a line must not
    /// put its start in the rotated file and its end in the new one.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.follow_rotation();
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= REOPEN_BUFFER {
            self.drain();
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.drain();
        Ok(())
    }
}

impl Drop for Reopen {
    fn drop(&mut self) {
        self.drain();
    }
}

/// One syslog sink per destination: `addrs` (the `--syslog` flags), or the
/// `[output.syslog]` address when none is given. Each spools in a directory
/// of its own under `state`, named after its address
/// ([`syslog::spool_dir_name`]), so that a backlog follows its destination
/// whatever the order of the flags (no spool, and counted drops, without
/// `--state`). Spool directories there that no destination uses and that
/// still hold messages are warned about, and left alone.
pub fn syslog_sinks(
    settings: Option<&syslog::SyslogConfig>,
    addrs: &[String],
    state: Option<&Path>,
) -> Result<Vec<syslog::SyslogSink>, syslog::SyslogError> {
    let targets = syslog_targets(settings, addrs)?;
    if targets.len() < addrs.len() {
        tracing::warn!("--syslog: an address given more than once is sent to once");
    }
    let names: Vec<String> = targets
        .iter()
        .map(|t| syslog::spool_dir_name(&t.address))
        .collect();
    if let Some(dir) = state {
        for o in orphan_spools(dir, &names) {
            let whose = match &o.destination {
                Some(d) => format!("messages for {d}, which is not a destination now"),
                None => "messages of an older scanwatch, which named spool directories by \
                         position (syslog-0 was the first --syslog, or [output.syslog]'s \
                         address)"
                    .to_string(),
            };
            tracing::warn!(
                "syslog spool '{}' holds {} bytes of {whose}: they are kept, not sent; to send them, stop scanwatch and move that directory's syslog.spool and syslog.spool.sent into the destination's own directory when it holds none ({}), or remove it",
                o.dir.display(),
                o.unsent,
                names
                    .iter()
                    .zip(&targets)
                    .map(|(n, t)| format!("{n} for {}", t.address))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    targets
        .iter()
        .zip(&names)
        .map(|(cfg, name)| {
            let spool = state.map(|d| d.join(name));
            syslog::SyslogSink::start(cfg, spool.as_deref())
        })
        .collect()
}

/// A spool directory under the state directory that no destination uses
/// and that holds messages not yet sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanSpool {
    pub dir: std::path::PathBuf,
    /// The address it was made for (its `syslog.destination`); `None` for
    /// the directories scanwatch named by position until 2026-12-07
    /// (`syslog-0`, ...).
    pub destination: Option<String>,
    /// Bytes not sent.
    pub unsent: u64,
}

/// The `syslog-*` directories of `state` not named in `in_use` that hold
/// messages not yet sent, by name.
pub fn orphan_spools(state: &Path, in_use: &[String]) -> Vec<OrphanSpool> {
    let Ok(entries) = std::fs::read_dir(state) else {
        return Vec::new();
    };
    let mut found: Vec<OrphanSpool> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with("syslog-") || in_use.contains(&name) {
                return None;
            }
            let dir = e.path();
            let unsent = syslog::spool_unsent(&dir);
            let destination = std::fs::read_to_string(dir.join(syslog::SPOOL_DEST_FILE))
                .ok()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty());
            (unsent > 0).then_some(OrphanSpool {
                dir,
                destination,
                unsent,
            })
        })
        .collect();
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    found
}

/// The failed-connection events' syslog senders, one per destination of
/// [`syslog_sinks`], when `events` is set in `[output.syslog]`; none
/// otherwise. Each has a connection and a queue of its own, so that a burst
/// of events (a flood decides millions) never delays or crowds out an
/// alert, and no spool: what the queue cannot take is dropped and counted
/// (the events file, `--events`, is the complete record).
pub fn syslog_event_sinks(
    settings: Option<&syslog::SyslogConfig>,
    addrs: &[String],
) -> Result<Vec<syslog::SyslogSink>, syslog::SyslogError> {
    if !settings.is_some_and(|s| s.events) {
        return Ok(Vec::new());
    }
    let targets = syslog_targets(settings, addrs)?;
    for t in &targets {
        if let syslog::SyslogAddr::Unix(p) = &t.address {
            tracing::warn!(
                "output.syslog.events to the unix socket '{}': if it is journald's, its rate limit (10,000 messages in 30 s by default) drops alerts together with the events, and they count as sent; send events to a collector",
                p.display()
            );
        }
    }
    targets
        .iter()
        .map(|cfg| syslog::SyslogSink::start(cfg, None))
        .collect()
}

/// Each destination's settings: the `--syslog` addresses (an address given
/// twice counts once: it would send everything twice, and both would
/// claim the one spool directory of that address), else the configured
/// one, with the rest of `[output.syslog]`.
fn syslog_targets(
    settings: Option<&syslog::SyslogConfig>,
    addrs: &[String],
) -> Result<Vec<syslog::SyslogConfig>, syslog::SyslogError> {
    let base = settings.cloned().unwrap_or_default();
    let mut targets: Vec<syslog::SyslogAddr> = Vec::new();
    for a in addrs {
        let addr: syslog::SyslogAddr = a.parse()?;
        if !targets.contains(&addr) {
            targets.push(addr);
        }
    }
    if targets.is_empty() && settings.is_some() {
        targets.push(base.address.clone());
    }
    Ok(targets
        .into_iter()
        .map(|address| syslog::SyslogConfig {
            address,
            ..base.clone()
        })
        .collect())
}

impl crate::pipeline::EventSink for syslog::SyslogSink {
    fn event(&mut self, e: &crate::track::Event, line: &str) {
        self.send_event(e, line);
    }
    fn request_stop(&mut self) {
        syslog::SyslogSink::request_stop(self);
    }
    fn close(&mut self) {
        self.shutdown();
    }
}

impl crate::pipeline::AlertSink for syslog::SyslogSink {
    fn alert(&mut self, a: &crate::analyze::Alert) {
        self.send_alert(a);
    }
    fn request_stop(&mut self) {
        syslog::SyslogSink::request_stop(self);
    }
    fn close(&mut self) {
        // Delivers or spools what is queued; a second call (drop) does nothing.
        self.shutdown();
    }
}

/// Where lines go: a file, or stdout for `-`.
pub fn open_sink(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())))
    } else {
        Ok(Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(path)?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Addr, FlowKey};
    use crate::track::{IcmpInfo, Order};

    #[test]
    fn event_line_is_valid_json_with_eve_names() {
        let e = Event {
            key: FlowKey {
                src: Addr::v4([10, 0, 0, 1]),
                dst: Addr::v4([10, 0, 0, 2]),
                sport: 40000,
                dport: 445,
                proto: Proto::Tcp,
            },
            reason: Reason::Unreachable,
            probe: Probe::Syn,
            first_ts: 1_709_287_200_000_000_000,
            last_ts: 1_709_287_201_000_000_000,
            decided_ts: 1_709_287_201_000_100_000,
            retransmissions: 1,
            icmp: Some(IcmpInfo {
                icmp_type: 3,
                code: 13,
                sender: Addr::v4([10, 0, 0, 254]),
            }),
            vlan: [200, 300],
            initiator_reset: false,
            at_capture_end: false,
            evicted: false,
            order: Order {
                block: 0,
                phase: 1,
                at: 0,
            },
        };
        let mut s = String::new();
        event_json(&e, &mut s);
        assert!(s.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["timestamp"], "2024-03-01T10:00:00.000000Z");
        assert_eq!(v["event_type"], "failed_connection");
        assert_eq!(v["src_ip"], "10.0.0.1");
        assert_eq!(v["dest_port"], 445);
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["reason"], "unreachable");
        assert_eq!(v["icmp"]["code"], 13);
        assert_eq!(v["icmp"]["sender"], "10.0.0.254");
        assert_eq!(v["vlan"], serde_json::json!([200, 300]));
        assert_eq!(v["last_probe"], "2024-03-01T10:00:01.000000Z");
        assert!(v["community_id"].as_str().unwrap().starts_with("1:"));
        assert!(v.get("conn_state").is_none());
    }

    proptest::proptest! {
        /// The hand-made address and port text is the standard library's,
        /// appended after what the line already holds, for every value.
        #[test]
        fn addresses_and_ports_are_written_as_std_writes_them(
            a in proptest::prelude::any::<[u8; 4]>(),
            b in proptest::prelude::any::<[u8; 16]>(),
            p in proptest::prelude::any::<u16>(),
        ) {
            let mut s = String::from("x");
            push_addr(&mut s, &Addr::v4(a));
            push_port(&mut s, p);
            push_addr(&mut s, &Addr::v6(b));
            // IPv6 goes through `Display` (RFC 5952, std's own); an
            // IPv4-mapped draw would be written as IPv4, as its Addr is.
            let v6 = std::net::Ipv6Addr::from(b);
            let v6 = v6.to_ipv4_mapped().map_or(v6.to_string(), |v4| v4.to_string());
            let want = format!("x{}{p}{v6}", std::net::Ipv4Addr::from(a));
            proptest::prop_assert_eq!(s, want);
        }
    }

    #[test]
    fn octet_and_port_edges() {
        for (a, p, want) in [
            ([0, 0, 0, 0], 0, "0.0.0.00"),
            ([255, 255, 255, 255], 65535, "255.255.255.25565535"),
            ([10, 9, 100, 99], 10000, "10.9.100.9910000"),
            ([1, 10, 199, 200], 9999, "1.10.199.2009999"),
        ] {
            let mut s = String::new();
            push_addr(&mut s, &Addr::v4(a));
            push_port(&mut s, p);
            assert_eq!(s, want);
        }
    }
}

#[cfg(test)]
mod spool_dir_tests {
    use super::*;
    use std::fs;

    /// Each destination spools in the directory named after its address;
    /// an address given twice is one destination (two would fight over
    /// its spool: "in use by another scanwatch").
    #[test]
    fn sinks_spool_in_their_address_directory_once() {
        let state = tempfile::tempdir().unwrap();
        let a = format!("unix:{}", state.path().join("a.sock").display());
        let b = format!("unix:{}", state.path().join("b.sock").display());
        let sinks =
            syslog_sinks(None, &[a.clone(), b.clone(), a.clone()], Some(state.path())).unwrap();
        assert_eq!(sinks.len(), 2);
        for addr in [&a, &b] {
            let dir = state
                .path()
                .join(syslog::spool_dir_name(&addr.parse().unwrap()));
            assert!(dir.join(syslog::SPOOL_FILE).exists(), "{}", dir.display());
            assert_eq!(
                fs::read_to_string(dir.join(syslog::SPOOL_DEST_FILE)).unwrap(),
                format!("{addr}\n")
            );
        }
        assert!(!state.path().join("syslog-0").exists());
    }

    /// Spool directories no destination uses are found when they hold
    /// unsent messages (named with their destination when they know it),
    /// and only then; nothing is changed in them.
    #[test]
    fn orphan_spools_are_those_with_a_backlog_and_no_destination() {
        let state = tempfile::tempdir().unwrap();
        let d = state.path();
        let spool = |name: &str, text: &str, sent: Option<&str>, dest: Option<&str>| {
            let dir = d.join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join(syslog::SPOOL_FILE), text).unwrap();
            if let Some(s) = sent {
                fs::write(dir.join(syslog::SPOOL_SENT_FILE), s).unwrap();
            }
            if let Some(a) = dest {
                fs::write(dir.join(syslog::SPOOL_DEST_FILE), format!("{a}\n")).unwrap();
            }
        };
        let used = syslog::spool_dir_name(&"tcp:siem:514".parse().unwrap());
        let gone = syslog::spool_dir_name(&"tcp:old-siem:514".parse().unwrap());
        spool(&used, "a\nb\n", None, Some("tcp:siem:514"));
        spool(&gone, "a\nb\nc\n", Some("2\n"), Some("tcp:old-siem:514"));
        spool("syslog-0", "<132>1 x\n", None, None);
        spool("syslog-1", "a\nb\n", Some("4\n"), None); // all sent
        spool("syslog-2", "", None, None);
        fs::write(d.join("syslog-3"), "a file, not a spool\n").unwrap();
        fs::create_dir(d.join("other")).unwrap();
        let found = orphan_spools(d, std::slice::from_ref(&used));
        assert_eq!(
            found,
            vec![
                OrphanSpool {
                    dir: d.join("syslog-0"),
                    destination: None,
                    unsent: 9,
                },
                OrphanSpool {
                    dir: d.join(&gone),
                    destination: Some("tcp:old-siem:514".into()),
                    unsent: 4,
                },
            ]
        );
        // Left as they were.
        assert_eq!(
            fs::read_to_string(d.join(&gone).join(syslog::SPOOL_FILE)).unwrap(),
            "a\nb\nc\n"
        );
        assert!(orphan_spools(&d.join("missing"), &[]).is_empty());
    }
}

#[cfg(test)]
mod reopen_tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A write that fails (here /dev/full: no space left) drops its lines,
    /// counted, without failing the caller; later writes try again, and a
    /// line a failure cut short is ended before the next one.
    #[test]
    fn a_failed_write_drops_and_counts_its_lines_and_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let gen_ = Arc::new(AtomicU64::new(0));
        let mut w = Reopen::open(Path::new("/dev/full"), gen_).unwrap();
        let lost = w.lost();
        w.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        w.flush().unwrap();
        assert_eq!(lost.load(Ordering::Relaxed), 2);
        w.write_all(b"{\"a\":3}\n").unwrap();
        w.flush().unwrap();
        assert_eq!(
            lost.load(Ordering::Relaxed),
            3,
            "each later write tries and counts"
        );
        // Still full, with a line cut short before: its ending newline is
        // not one more line lost.
        w.torn = true;
        w.write_all(b"{\"a\":3.5}\n").unwrap();
        w.flush().unwrap();
        assert_eq!(lost.load(Ordering::Relaxed), 4);
        // Room again, after a failure that left half a line behind.
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"{\"a\":0}\n{\"cu").unwrap();
        w.file = Reopen::append(&path).unwrap();
        w.torn = true;
        w.write_all(b"{\"a\":4}\n").unwrap();
        w.flush().unwrap();
        w.write_all(b"{\"a\":5}\n").unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":0}\n{\"cu\n{\"a\":4}\n{\"a\":5}\n"
        );
        assert_eq!(lost.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn reopen_follows_a_rotation_and_survives_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let gen_ = Arc::new(AtomicU64::new(0));
        let mut w = Reopen::open(&path, gen_.clone()).unwrap();
        w.write_all(b"one\n").unwrap();
        w.flush().unwrap();
        std::fs::rename(&path, dir.path().join("out.json.1")).unwrap();
        gen_.fetch_add(1, Ordering::Relaxed);
        w.write_all(b"two\n").unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.json.1")).unwrap(),
            "one\n"
        );
        // The directory disappears: the reopen fails, writing goes on to the
        // file already open.
        let moved = dir.path().join("elsewhere");
        std::fs::create_dir(&moved).unwrap();
        std::fs::rename(&path, moved.join("out.json")).unwrap();
        let gone = Reopen::open(&moved.join("x/y.json"), gen_.clone());
        assert!(gone.is_err());
        let mut w2 = w;
        w2.path = dir.path().join("no-such-dir/out.json");
        gen_.fetch_add(1, Ordering::Relaxed);
        w2.write_all(b"three\n").unwrap();
        w2.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("out.json")).unwrap(),
            "two\nthree\n"
        );
    }
}
