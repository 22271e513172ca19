//! Syslog output: alerts (and, if wanted, failed-connection events) to a
//! SOC's syslog server, without ever making the caller wait for the network.
//!
//! # Configuration (`[output.syslog]`)
//!
//! ```toml
//! [output.syslog]
//! address = "tls:siem.example.org:6514"   # unix:PATH | udp:HOST:PORT | tcp:HOST:PORT | tls:HOST:PORT
//! format = "rfc5424"                      # or "rfc3164"
//! facility = "local0"                     # user, daemon, auth, local0 .. local7
//! max_message = 8192                      # bytes, unix and UDP
//! tcp_max_message = 65536                 # bytes, TCP and TLS
//! queue = 4096                            # messages held in memory for the sender
//! spool_max = "256MiB"                    # the spool file's cap, per destination
//! reconnect_min = "100ms"                 # retry delay, doubling ...
//! reconnect_max = "5s"                    # ... up to this
//! timeout = "2s"                          # TCP connect, and any one send
//! flush_timeout = "5s"                    # how long close() keeps trying
//! events = false                          # also send failed-connection events
//!                                         # (own connection and queue, no spool)
//! tls_ca = "/etc/scanwatch/syslog-ca.pem" # TLS: who may sign the server's certificate
//!                                         # (default: the system's trust store)
//! tls_cert = "/etc/scanwatch/sensor.pem"  # TLS: a client certificate chain and its key,
//! tls_key = "/etc/scanwatch/sensor.key"   # for servers that ask for one (both or neither)
//! tls_server_name = "siem.example.org"    # TLS: the name the server's certificate must
//!                                         # carry (default: HOST)
//! tls_verdict_wait = "200ms"              # TLS: how long a new session waits to be refused
//! ```
//!
//! See [`SyslogConfig`]. HOST is a name (resolved at each connection) or an
//! address, an IPv6 one in brackets: `udp:[2001:db8::1]:514`.
//!
//! # TLS
//!
//! `tls:HOST:PORT` is RFC 5425: TCP, a TLS 1.2 or 1.3 session (rustls,
//! post-quantum hybrid key exchange preferred), and the same octet-counted
//! frames as TCP inside it (port 6514 is the registered one). The server's
//! certificate must chain to `tls_ca` (or to the system's trust store) and
//! name `tls_server_name` (or HOST: a DNS name or an IP address in the
//! certificate's subjectAltName); there is no option to skip that check.
//! The CA file, and the client's certificate and key, are read at start
//! (by the config's validation and by each destination), before
//! privileges are dropped, so they may be readable by root alone, and
//! again only at a restart (SIGHUP does not reload them); a missing or
//! unreadable file, or one with no certificate (or key) in it, is an error
//! at start and in `scanwatch check-config`. A server that rejects the handshake
//! (an unknown CA, a wrong name, a client certificate it does not accept)
//! is treated like an unreachable one: the message waits in the spool and
//! the failure is logged, with rustls's reason, once until a send
//! succeeds. A server may judge the client's certificate after the client
//! has finished its side of the handshake (TLS 1.3 does so; rsyslog checks
//! the peer after the handshake with any version) and then close the
//! session, so after each handshake the sender listens `tls_verdict_wait`
//! (200 ms) for that before it sends anything: otherwise a rejected client
//! certificate would cost the first message of every connection, counted
//! as sent. A server slower than that to say no still costs one message a
//! connection, counted as sent, and with alerts far apart that can be
//! every one of them: a session the server ends is logged (at most once
//! a minute) so that it does not go unseen. The handshake as
//! a whole is bounded by `timeout`.
//!
//! # Messages
//!
//! RFC 5424 (the default):
//!
//! ```text
//! <132>1 2024-03-16T10:00:00.034000Z sensor1 scanwatch 4242 alert [scanwatch@32473 src="10.10.2.66" severity="low" signature="Failed Connections" variation="sequential_test"] {"timestamp":...}
//! ```
//!
//! PRI is `facility * 8 + severity`: an alert of severity `low` is a syslog
//! *warning* (4), an `informational` alert and a failed-connection event are
//! *informational* (6). TIMESTAMP is the event time of the message (the JSON's
//! `timestamp`), not the time of sending, so a spooled message keeps its time.
//! MSGID is `alert` or `failed_connection`. The structured data repeats the
//! fields a SOC filters on, escaped as RFC 5424 §6.3.3 says (`"`, `\` and `]`
//! get a backslash; control characters, which would break the line-based
//! spool, become spaces). MSG is the JSON line itself, without a BOM: JSON is
//! UTF-8 by definition (RFC 8259), and collectors that keep the BOM in the
//! message (rsyslog's `%msg%` does) would hand JSON parsers a line that does
//! not start with `{`.
//!
//! RFC 3164 (BSD): `<132>Mar 16 10:00:00 sensor1 scanwatch[4242]: {"timestamp":...}`,
//! the time in UTC, to the second. Over a unix socket the HOSTNAME is left
//! out, as syslog(3) and logger(1) do: the local socket's usual parsers
//! (rsyslog's imuxsock "special parser", journald) expect `<PRI>TIMESTAMP
//! TAG: MSG` there and would read the host name as the tag.
//!
//! **RFC 5424 over a unix socket** needs a server that parses it there: a
//! stock rsyslog reads `/dev/log` with the special parser, which keeps the
//! whole RFC 5424 line as the message (with tag `1`). Either set
//! `module(load="imuxsock" SysSock.UseSpecialParser="off"
//! SysSock.ParseHostname="on")`, or use `format = "rfc3164"` for `/dev/log`.
//! imuxsock also replaces TIMESTAMP with the time of receipt unless
//! `SysSock.IgnoreTimestamp="off"` (the JSON keeps the event time either
//! way). rsyslog's default `maxMessageSize` is 8 KiB: raise it
//! (`global(maxMessageSize="64k")`) to receive longer TCP messages whole.
//!
//! # Length
//!
//! A message longer than the transport takes (`max_message` for unix and UDP,
//! `tcp_max_message` for TCP) is shortened by removing entries from the ends
//! of the alert's lists ([`TRIMMABLE`]: the sample first, then what the
//! previous alert did not name, the live hosts, the subnets and the ports)
//! and serialising the JSON again, with `trimmed_for_syslog` saying how many
//! entries each list lost (a list whose emptying saves less than saying so
//! costs is left whole; when nothing fits with that marker, the same without
//! it); the JSON is never cut. A message still too long with every list
//! empty is dropped and counted in [`SyslogStats::dropped`].
//!
//! # Delivery
//!
//! [`SyslogSink::send`] formats the message on the caller's thread and hands
//! it to a sender thread through a bounded queue; it never waits for the
//! network. When the queue is full, or the server is unreachable, messages go
//! to the **spool**, `syslog.spool` in the spool directory: append-only, one
//! message per line, mode 0600. While the spool holds messages, new ones are
//! appended to it too, and the sender sends the spool, oldest first, before
//! anything newer, so the order is kept across an outage. How far the spool
//! was sent is kept in `syslog.spool.sent` (a byte offset and the spool
//! file's inode, rewritten after each message), so a crash does not send it
//! again; `close()` compacts the spool to what is left, and the next
//! [`SyslogSink::start`] with the same directory sends that first. A
//! `syslog.lock` file keeps two processes from sharing a spool, and
//! `syslog.destination` names the address it was made for. Without a spool
//! directory, what the queue cannot hold is dropped and counted. Appending to
//! the spool is the only I/O the caller does: a local file write, under a
//! lock the sender holds only to append, truncate, or finish a compaction.
//!
//! ## The spool's cap
//!
//! The spool file never grows past `spool_max` bytes (256 MiB): a message
//! that would take it further is dropped and counted, in
//! [`SyslogStats::dropped`] and, as the reason, [`SyslogStats::spool_dropped`]
//! (`scanwatch_syslog_spool_dropped_total`); the first such drop is logged,
//! and so is the first message taken again. It is the **newest** that go:
//! what is spooled stays, in order (dropping the oldest would rewrite the
//! file under the callers), so the server gets an outage's first alerts;
//! the later ones are lost to syslog (an alerts file, if any, has them).
//! The sender gives
//! the disk back as it sends: once the sent part of the file is half the
//! cap and at least as large as the unsent rest, it copies the rest to
//! `syslog.spool.tmp` and renames it over the spool (callers wait only for
//! the copy of what they appended during it), so a spool that is never
//! quite empty, alerts coming as fast as they are sent, neither grows nor
//! refuses alerts while less than half the cap is unsent. During a
//! compaction the unsent part is on disk twice. A spool larger than the cap
//! at start (the cap was lowered) is kept and sent whole; new messages are
//! dropped until it is below the cap.
//!
//! Memory does not grow with the spool: it is checked, counted, sent and
//! compacted in 64 KiB pieces, a line at a time (until 2026-12-07 it was
//! read whole at start and copied twice in memory by `close()`: a 1.05 GB
//! spool took 1.04 GB at start and 2.06 GB at exit).
//!
//! Retries back off from `reconnect_min`, doubling, to `reconnect_max`.
//!
//! ## What "exactly once" means per transport
//!
//! A message leaves the queue or the spool only when its send succeeded, so
//! scanwatch sends nothing twice, with two exceptions: a crash between a
//! successful send and the update of `syslog.spool.sent` repeats that one
//! message at the next start, and a TCP write that times out part-way (a
//! server that stopped reading for `timeout`) closes the connection and sends
//! the whole message again on a new one, while the server may keep the
//! partial frame as a truncated message. What "succeeded" promises depends on
//! the transport:
//!
//! - **unix datagram**: a successful `sendto` put the whole message into the
//!   receiving socket's queue. A server that then exits before reading its
//!   queue loses those messages; while the server is down `sendto` fails
//!   (`ENOENT` or `ECONNREFUSED`) and nothing is lost.
//! - **TCP**: success means the kernel accepted the bytes. Before each write
//!   the sender checks, without blocking, whether the server closed the
//!   connection (a read returning 0 or an error) and reconnects first, so a
//!   server that was stopped or restarted costs nothing. But bytes accepted
//!   just before the server (or the path to it) dies are lost without an
//!   error: TCP has no application acknowledgement (RFC 6587 framing; RELP
//!   would be needed for that).
//! - **UDP**: fire and forget. A datagram to a port with no server is lost;
//!   the ICMP error makes the *next* send fail, which is then spooled and
//!   retried. So the first message (or first few) after a server goes away is
//!   lost. Retries while it is away lose nothing where the ICMP error comes
//!   back within 20 ms (the first send on a new socket waits that long for
//!   it); where ICMP is filtered, UDP loses everything sent while the server
//!   is down, and the counters cannot tell.
//!
//! Messages in the queue when the process dies (not closed) are lost; those
//! in the spool are not.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, select};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use tracing::{info, warn};

use crate::analyze::{Alert, Severity};
use crate::config::{Dur, Size};
use crate::output::time::rfc3339;
use crate::track::Event;

/// APP-NAME (and the RFC 3164 tag).
pub const APP_NAME: &str = "scanwatch";
/// SD-ID of the structured data element: `scanwatch@32473`, under the private
/// enterprise number that RFC 5612 reserves for documentation and examples.
pub const SD_ID: &str = "scanwatch@32473";
/// The spool, its sent offset and its lock, in the spool directory.
pub const SPOOL_FILE: &str = "syslog.spool";
pub const SPOOL_SENT_FILE: &str = "syslog.spool.sent";
pub const SPOOL_LOCK_FILE: &str = "syslog.lock";

/// How long a new UDP socket waits after its first send for an ICMP error.
const UDP_CHECK: Duration = Duration::from_millis(20);

/// Warnings about TLS sessions the server ended come at most this often.
const TLS_WARN_EVERY: Duration = Duration::from_secs(60);

/// Errors of the syslog output.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error(
        "syslog address '{0}': expected unix:PATH, udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT"
    )]
    Address(String),
    #[error("syslog TLS: {0}")]
    Tls(String),
    #[error("syslog: {0}")]
    Invalid(String),
    #[error("syslog spool '{path}': {source}")]
    Spool { path: String, source: io::Error },
    #[error("syslog spool '{0}' is in use (by another scanwatch?)")]
    SpoolLocked(String),
    #[error("syslog: cannot start the sender thread: {0}")]
    Thread(io::Error),
}

// ---------------------------------------------------------------------------
// Configuration

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddr {
    /// A unix datagram socket (`/dev/log`).
    Unix(PathBuf),
    Udp {
        host: String,
        port: u16,
    },
    /// TCP with octet-counting framing (RFC 6587 §3.4.1).
    Tcp {
        host: String,
        port: u16,
    },
    /// The same frames in a TLS session (RFC 5425).
    Tls {
        host: String,
        port: u16,
    },
}

impl Default for SyslogAddr {
    fn default() -> Self {
        SyslogAddr::Unix(PathBuf::from("/dev/log"))
    }
}

impl FromStr for SyslogAddr {
    type Err = SyslogError;
    fn from_str(s: &str) -> Result<SyslogAddr, SyslogError> {
        let bad = || SyslogError::Address(s.to_string());
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        match scheme {
            "unix" if !rest.is_empty() => Ok(SyslogAddr::Unix(PathBuf::from(rest))),
            "udp" | "tcp" | "tls" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
                let host = if let Some(h) = host.strip_prefix('[') {
                    let h = h.strip_suffix(']').ok_or_else(bad)?;
                    h.parse::<Ipv6Addr>().map_err(|_| bad())?;
                    h
                } else {
                    let ok = !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                    if !ok {
                        return Err(bad());
                    }
                    host
                };
                let host = host.to_string();
                Ok(match scheme {
                    "udp" => SyslogAddr::Udp { host, port },
                    "tcp" => SyslogAddr::Tcp { host, port },
                    _ => SyslogAddr::Tls { host, port },
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SyslogAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = |f: &mut fmt::Formatter<'_>, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "[{host}]:{port}")
            } else {
                write!(f, "{host}:{port}")
            }
        };
        match self {
            SyslogAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogAddr::Udp { host, port } => {
                f.write_str("udp:")?;
                hp(f, host, *port)
            }
            SyslogAddr::Tcp { host, port } => {
                f.write_str("tcp:")?;
                hp(f, host, *port)
            }
            SyslogAddr::Tls { host, port } => {
                f.write_str("tls:")?;
                hp(f, host, *port)
            }
        }
    }
}

impl<'de> Deserialize<'de> for SyslogAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SyslogAddr, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for SyslogAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The message format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// The syslog facility (the part of PRI that says who logs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    User,
    Daemon,
    Auth,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::User => 1,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

/// `[output.syslog]`. Every field has a default, so an empty section sends
/// RFC 5424 to `unix:/dev/log`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// `unix:PATH`, `udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT`.
    pub address: SyslogAddr,
    pub format: SyslogFormat,
    pub facility: Facility,
    /// Longest message, in bytes, over unix and UDP; longer ones lose
    /// entries of their lists ([`TRIMMABLE`]), and are dropped if that is
    /// not enough.
    pub max_message: usize,
    /// The same for TCP and TLS.
    pub tcp_max_message: usize,
    /// Messages waiting in memory for the sender thread; beyond, the spool.
    pub queue: usize,
    /// The most the spool file of one destination may hold, in bytes. A
    /// message that would take it past this is dropped and counted
    /// ([`SyslogStats::spool_dropped`]): the newest go, what is spooled keeps
    /// its order. A larger cap rides out a longer outage at the cost of disk
    /// (an alert takes 0.5 to 3 KB; while the spool is compacted, what is
    /// unsent is on disk twice). Memory does not grow with it: the spool is
    /// read and compacted in 64 KiB pieces.
    pub spool_max: Size,
    /// First delay before retrying an unreachable server ...
    pub reconnect_min: Dur,
    /// ... doubled after each failure up to this.
    pub reconnect_max: Dur,
    /// Limit on a TCP connect and on any one send.
    pub timeout: Dur,
    /// How long `close()` keeps sending what is queued and spooled.
    pub flush_timeout: Dur,
    /// Send failed-connection events too, not only alerts, on senders of
    /// their own ([`crate::output::syslog_event_sinks`]), not by this sink.
    pub events: bool,
    /// TLS: a PEM file of the certificate authorities that may sign the
    /// server's certificate (default: the system's trust store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// TLS: a PEM certificate chain to show a server that asks for one ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// ... and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// TLS: the name the server's certificate must carry (default: HOST).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// TLS: how long a new session listens, after its handshake, for the
    /// server to refuse it before anything is sent. A TLS 1.3 server judges
    /// the client's certificate only then, and rsyslog checks its peer after
    /// the handshake with any version; a refusal that comes later costs the
    /// message sent meanwhile. 200 ms covers a round trip across a
    /// continent; a session is opened at start and after an outage, not per
    /// message.
    pub tls_verdict_wait: Dur,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            address: SyslogAddr::default(),
            format: SyslogFormat::default(),
            facility: Facility::default(),
            max_message: 8192,
            tcp_max_message: 65_536,
            queue: 4096,
            spool_max: Size(256 * Size::MIB),
            reconnect_min: Dur(Duration::from_millis(100)),
            reconnect_max: Dur::secs(5),
            timeout: Dur::secs(2),
            flush_timeout: Dur::secs(5),
            events: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
            tls_verdict_wait: Dur(Duration::from_millis(200)),
        }
    }
}

impl SyslogConfig {
    /// Check the values together; the message names the key.
    pub fn validate(&self) -> Result<(), SyslogError> {
        self.check_values()?;
        // Read the TLS files now, so that check-config and the start report
        // a missing or wrong one, not the first connection.
        self.tls_client()?;
        Ok(())
    }

    /// [`validate`](Self::validate) without reading the TLS files.
    fn check_values(&self) -> Result<(), SyslogError> {
        let bad = |m: &str| Err(SyslogError::Invalid(m.to_string()));
        // RFC 5424 §6.1: every receiver takes 480 bytes; less leaves no room
        // for an alert anyway.
        if self.max_message < 480 {
            return bad("output.syslog.max_message must be at least 480 bytes");
        }
        if self.tcp_max_message < 480 {
            return bad("output.syslog.tcp_max_message must be at least 480 bytes");
        }
        if self.queue == 0 {
            return bad("output.syslog.queue must be at least 1");
        }
        // One message of the longest a transport takes, and its newline.
        let least = self.max_message.max(self.tcp_max_message) as u64 + 1;
        if self.spool_max.0 < least {
            return Err(SyslogError::Invalid(format!(
                "output.syslog.spool_max ({}) must hold at least one message of the longest \
                 max_message or tcp_max_message allows ({least} bytes); there is no spool \
                 without a state directory",
                self.spool_max
            )));
        }
        if self.reconnect_min.0.is_zero() || self.reconnect_min > self.reconnect_max {
            return bad("output.syslog: need 0 < reconnect_min <= reconnect_max");
        }
        if self.timeout.0.is_zero() {
            return bad("output.syslog.timeout must be longer than 0");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("output.syslog: tls_cert and tls_key go together (both or neither)");
        }
        Ok(())
    }

    /// The longest message the configured transport takes.
    pub fn max_len(&self) -> usize {
        match self.address {
            SyslogAddr::Tcp { .. } | SyslogAddr::Tls { .. } => self.tcp_max_message,
            _ => self.max_message,
        }
    }

    /// The TLS client for a `tls:` address (`None` for the others), from
    /// the files named by `tls_*`; with any `tls_*` key set the files are
    /// read and checked whatever the address (`--syslog tls:...` takes the
    /// section's settings).
    pub fn tls_client(&self) -> Result<Option<TlsClient>, SyslogError> {
        let host = match &self.address {
            SyslogAddr::Tls { host, .. } => Some(host),
            _ => None,
        };
        let any_key = self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_server_name.is_some();
        if host.is_none() && !any_key {
            return Ok(None);
        }
        let name = self.tls_server_name.as_ref().or(host);
        let server_name = name
            .map(|n| {
                rustls::pki_types::ServerName::try_from(n.clone()).map_err(|_| {
                    SyslogError::Tls(format!(
                        "'{n}' is neither a DNS name nor an IP address (output.syslog.tls_server_name)"
                    ))
                })
            })
            .transpose()?;
        let config = tls_config(self)?;
        // A TLS address always has a server name (HOST at least).
        Ok(match (host, server_name) {
            (Some(_), Some(server_name)) => Some(TlsClient {
                config,
                server_name,
                verdict_wait: self.tls_verdict_wait.0,
            }),
            _ => None,
        })
    }
}

/// What a TLS connection needs: the client configuration (trusted CAs,
/// client certificate) and the name to check in the server's certificate.
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
    verdict_wait: Duration,
}

/// The rustls client configuration of `cfg`'s `tls_*` files.
fn tls_config(cfg: &SyslogConfig) -> Result<Arc<rustls::ClientConfig>, SyslogError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &str, p: &Path, e: &dyn fmt::Display| {
        SyslogError::Tls(format!("{what} '{}': {e}", p.display()))
    };
    let certs = |key: &str, p: &Path| -> Result<Vec<CertificateDer<'static>>, SyslogError> {
        let v = CertificateDer::pem_file_iter(p)
            .map_err(|e| err(key, p, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(key, p, &e))?;
        if v.is_empty() {
            return Err(err(key, p, &"no PEM certificate in it"));
        }
        Ok(v)
    };
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.tls_ca {
        Some(p) => {
            for c in certs("output.syslog.tls_ca", p)? {
                roots
                    .add(c)
                    .map_err(|e| err("output.syslog.tls_ca", p, &e))?;
            }
        }
        None => {
            // Unreadable entries of the system store are skipped, as
            // other TLS clients do; an empty store is an error.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(SyslogError::Tls(
                    "the system's trust store has no CA certificate: set output.syslog.tls_ca"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SyslogError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => {
            let chain = certs("output.syslog.tls_cert", c)?;
            let key =
                PrivateKeyDer::from_pem_file(k).map_err(|e| err("output.syslog.tls_key", k, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err("output.syslog.tls_cert and tls_key", c, &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

// ---------------------------------------------------------------------------
// Formatting

/// Syslog severity (RFC 5424 §6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogSeverity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

impl SyslogSeverity {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Severity> for SyslogSeverity {
    /// `low` alerts are warnings, `informational` ones informational.
    fn from(s: Severity) -> SyslogSeverity {
        match s {
            Severity::Low => SyslogSeverity::Warning,
            Severity::Informational => SyslogSeverity::Informational,
        }
    }
}

/// What a message carries: its MSGID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    Alert,
    FailedConnection,
}

impl MsgKind {
    pub fn msgid(self) -> &'static str {
        match self {
            MsgKind::Alert => "alert",
            MsgKind::FailedConnection => "failed_connection",
        }
    }
}

/// One message to send.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    pub kind: MsgKind,
    /// Event time, nanoseconds since the epoch (TIMESTAMP).
    pub ts_ns: i64,
    pub severity: SyslogSeverity,
    /// Structured-data parameters, in order (names: at most 32 printable
    /// ASCII characters other than `=`, space, `]` and `"`; others are removed).
    pub sd: &'a [(&'a str, &'a str)],
    /// The JSON object on one line (a trailing newline is removed).
    pub json: &'a str,
}

/// How a message fitted the length limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    Whole(String),
    /// `removed` list entries were taken out (see [`TRIMMABLE`]).
    Trimmed {
        line: String,
        removed: usize,
    },
    /// Too long even with every list emptied (the length it had).
    TooLong(usize),
}

/// Formats messages; holds what is the same in all of them.
#[derive(Clone, Debug)]
pub struct Formatter {
    pub format: SyslogFormat,
    pub facility: Facility,
    /// HOSTNAME (`-` when unknown).
    pub hostname: String,
    pub pid: u32,
    /// Sending to a local (unix) socket: RFC 3164 leaves out HOSTNAME.
    pub local: bool,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Formatter {
    /// For `cfg`, with this host's name and this process's id.
    pub fn new(cfg: &SyslogConfig) -> Formatter {
        Formatter {
            format: cfg.format,
            facility: cfg.facility,
            hostname: hostname(),
            pid: std::process::id(),
            local: matches!(cfg.address, SyslogAddr::Unix(_)),
        }
    }

    /// The message, without transport framing, into `out`.
    pub fn format(&self, m: &Message<'_>, out: &mut String) {
        let pri = self.facility.code() * 8 + m.severity.code();
        let json = one_line(m.json);
        match self.format {
            SyslogFormat::Rfc5424 => {
                out.push('<');
                out.push_str(&pri.to_string());
                out.push_str(">1 ");
                rfc3339(m.ts_ns, out);
                out.push(' ');
                out.push_str(&self.hostname);
                out.push(' ');
                out.push_str(APP_NAME);
                out.push(' ');
                out.push_str(&self.pid.to_string());
                out.push(' ');
                out.push_str(m.kind.msgid());
                out.push(' ');
                structured_data(m.sd, out);
                out.push(' ');
                out.push_str(&json);
            }
            SyslogFormat::Rfc3164 => {
                let mut t = String::with_capacity(32);
                rfc3339(m.ts_ns, &mut t);
                // "2024-03-01T10:00:05.000000Z" → "Mar  1 10:00:05"
                let month: usize = t[5..7].parse().unwrap_or(1);
                let day: u32 = t[8..10].parse().unwrap_or(1);
                out.push('<');
                out.push_str(&pri.to_string());
                out.push('>');
                out.push_str(MONTHS[month.clamp(1, 12) - 1]);
                out.push_str(&format!(" {day:>2} "));
                out.push_str(&t[11..19]);
                out.push(' ');
                if !self.local {
                    out.push_str(short_host(&self.hostname));
                    out.push(' ');
                }
                out.push_str(APP_NAME);
                out.push_str(&format!("[{}]: ", self.pid));
                out.push_str(&json);
            }
        }
    }

    /// The message if it is at most `max` bytes, else with the alert's lists
    /// shortened from their ends ([`TRIMMABLE`], in that order: each is
    /// emptied before the next is touched, and the last one touched keeps
    /// as many entries as fit), else [`Fit::TooLong`]. A shortened alert
    /// says what it lost in `trimmed_for_syslog` (list → entries removed),
    /// unless only leaving that out makes it fit; a list whose emptying
    /// would not shorten the line (the marker's entry costs more) stays
    /// whole. The alerts file has every alert whole.
    pub fn fit(&self, m: &Message<'_>, max: usize) -> Fit {
        let mut line = String::with_capacity(m.json.len() + 256);
        self.format(m, &mut line);
        if line.len() <= max {
            return Fit::Whole(line);
        }
        let too_long = Fit::TooLong(line.len());
        let Ok(v) = serde_json::from_str::<Value>(m.json) else {
            return too_long;
        };
        let totals: Vec<usize> = TRIMMABLE
            .iter()
            .map(|p| v.pointer(p).and_then(Value::as_array).map_or(0, Vec::len))
            .collect();
        // The line with list `i` cut to `keep[i]` entries, saying so when
        // `marked`.
        let render = |keep: &[usize], marked: bool| -> Option<String> {
            let mut w = v.clone();
            let mut lost = serde_json::Map::new();
            for ((p, &total), &k) in TRIMMABLE.iter().zip(&totals).zip(keep) {
                if k < total {
                    w.pointer_mut(p)?.as_array_mut()?.truncate(k);
                    lost.insert(p.to_string(), Value::from(total - k));
                }
            }
            if marked {
                w.as_object_mut()?
                    .insert("trimmed_for_syslog".into(), Value::Object(lost));
            }
            let json = serde_json::to_string(&w).ok()?;
            let mut line = String::with_capacity(json.len() + 256);
            self.format(&Message { json: &json, ..*m }, &mut line);
            Some(line)
        };
        // With the marker first; without it only if nothing fits with it
        // (its ~30 bytes a list must not cost the alert: dropped, an
        // analyst has nothing at that destination).
        for marked in [true, false] {
            let mut keep = totals.clone();
            let mut len = line.len();
            for i in 0..TRIMMABLE.len() {
                if totals[i] == 0 {
                    continue;
                }
                // Too long with list `i` whole (the lists before it empty
                // or left whole).
                keep[i] = 0;
                let Some(mut best) = render(&keep, marked) else {
                    return too_long;
                };
                if best.len() > max {
                    if best.len() >= len {
                        // Emptying it saves less than saying so costs.
                        keep[i] = totals[i];
                    } else {
                        len = best.len();
                    }
                    continue;
                }
                // Fewer entries, shorter line: the most that fit, by bisection.
                let (mut lo, mut hi) = (0, totals[i]); // lo fits, hi does not
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2;
                    keep[i] = mid;
                    match render(&keep, marked).filter(|l| l.len() <= max) {
                        Some(l) => {
                            lo = mid;
                            best = l;
                        }
                        None => hi = mid,
                    }
                }
                keep[i] = lo;
                return Fit::Trimmed {
                    line: best,
                    removed: totals.iter().zip(&keep).map(|(t, k)| t - k).sum(),
                };
            }
        }
        too_long
    }
}

/// The alert's lists a syslog message may shorten, least needed first: the
/// sample attempts, what the previous alert did not name, the live hosts of
/// a vertical scan, then the subnets and ports themselves (their counts,
/// `distinct_ports` and the summary's, stay). A sweep of hundreds of /24s or
/// /64s, reported again the next day with as many new ones, made an alert
/// longer than an 8 KiB datagram even without its sample: it was dropped
/// for that destination (until 2026-12-07 only the sample was shortened).
pub const TRIMMABLE: [&str; 6] = [
    "/evidence/sample",
    "/previous_alert/new_subnets",
    "/previous_alert/new_ports",
    "/evidence/active_hosts",
    "/evidence/subnets",
    "/evidence/ports",
];

/// The JSON without its trailing newline, and with any other CR or LF (only
/// possible as whitespace between tokens) turned into spaces: one message
/// must be one spool line.
fn one_line(json: &str) -> Cow<'_, str> {
    let json = json.trim_end_matches(['\n', '\r']);
    if json.contains(['\n', '\r']) {
        Cow::Owned(json.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(json)
    }
}

/// `[scanwatch@32473 name="value" ...]`, or `-` without parameters.
fn structured_data(sd: &[(&str, &str)], out: &mut String) {
    if sd.is_empty() {
        out.push('-');
        return;
    }
    out.push('[');
    out.push_str(SD_ID);
    for (name, value) in sd {
        out.push(' ');
        out.extend(
            name.chars()
                .filter(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"'))
                .take(32),
        );
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' | '\\' | ']' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
}

/// RFC 3164 wants the host name without its domain (an address stays whole).
fn short_host(h: &str) -> &str {
    if h.parse::<std::net::IpAddr>().is_ok() {
        h
    } else {
        h.split('.').next().filter(|s| !s.is_empty()).unwrap_or(h)
    }
}

/// gethostname(2), as printable ASCII (at most 255), or `-`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid and writable for buf.len() bytes; gethostname
    // writes at most that many.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "-".to_string();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h: String = String::from_utf8_lossy(&buf[..n])
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() { "-".to_string() } else { h }
}

/// Octet-counting framing (RFC 6587 §3.4.1): `LEN SP MSG`.
pub fn octet_frame(msg: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(msg.len() + 8);
    f.extend_from_slice(msg.len().to_string().as_bytes());
    f.push(b' ');
    f.extend_from_slice(msg.as_bytes());
    f
}

// ---------------------------------------------------------------------------
// Statistics

/// Counters, readable from any thread while the sink runs.
#[derive(Debug, Default)]
pub struct SyslogStats {
    /// Messages the transport accepted (see the module docs for what that
    /// promises).
    pub sent: AtomicU64,
    /// Messages written to the spool (since start).
    pub spooled: AtomicU64,
    /// Messages in the spool not yet sent.
    pub backlog: AtomicU64,
    /// Messages lost: too long even with every list emptied, or no spool to
    /// take them, or the spool full or not writable.
    pub dropped: AtomicU64,
    /// Of `dropped`, those the spool had no room for (`spool_max`).
    pub spool_dropped: AtomicU64,
    /// Messages shortened by removing list entries ([`TRIMMABLE`]).
    pub trimmed: AtomicU64,
    /// Connections made again after a failure or a closed connection.
    pub reconnects: AtomicU64,
    /// The last send (or TCP connect) succeeded.
    pub connected: AtomicBool,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub sent: u64,
    pub spooled: u64,
    pub backlog: u64,
    pub dropped: u64,
    pub spool_dropped: u64,
    pub trimmed: u64,
    pub reconnects: u64,
    pub connected: bool,
}

impl SyslogStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            sent: l(&self.sent),
            spooled: l(&self.spooled),
            backlog: l(&self.backlog),
            dropped: l(&self.dropped),
            spool_dropped: l(&self.spool_dropped),
            trimmed: l(&self.trimmed),
            reconnects: l(&self.reconnects),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
    fn sub(a: &AtomicU64, n: u64) {
        // Saturating: backlog never wraps, whatever the accounting.
        let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

// ---------------------------------------------------------------------------
// The spool

/// The spool is read, counted and copied in pieces of this size: memory
/// does not grow with the spool.
const SPOOL_CHUNK: usize = 1 << 16;

/// The address a spool directory was made for (one line), so that a
/// directory no configured destination uses can be named in the warning
/// about it.
pub const SPOOL_DEST_FILE: &str = "syslog.destination";

/// A compaction that failed is tried again after this long.
const COMPACT_RETRY: Duration = Duration::from_secs(60);

/// The name of `addr`'s spool directory under the state directory:
/// `syslog-`, the address with each character other than an ASCII letter,
/// a digit, `.` or `-` made `_` (64 at most), `-` and 12 hex digits of the
/// address's FNV-1a hash (two addresses that read alike there still get a
/// directory each). A backlog thus follows its destination, whatever the
/// order of the `--syslog` flags: `tcp:siem.example.org:6514` spools in
/// `syslog-tcp_siem.example.org_6514-` and its hash. (Until 2026-12-07 the
/// directories were `syslog-0`, `syslog-1`, ... by position.)
pub fn spool_dir_name(addr: &SyslogAddr) -> String {
    let text = addr.to_string();
    let readable: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    // FNV-1a, 64 bits: written out here so that the name never changes
    // with the standard library's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("syslog-{readable}-{:012x}", h >> 16)
}

/// What the spool in `dir` holds that was not sent, in bytes (0 without a
/// spool); reads two file lengths and the sent offset, not the spool.
pub fn spool_unsent(dir: &Path) -> u64 {
    let Ok(meta) = fs::metadata(dir.join(SPOOL_FILE)) else {
        return 0;
    };
    let (pos, ino) = read_sent(&dir.join(SPOOL_SENT_FILE));
    let pos = if ino.is_some_and(|i| i != meta.ino()) || pos > meta.len() {
        0
    } else {
        pos
    };
    meta.len() - pos
}

/// The offset and (since 2026-12-07) the spool's inode in a sent file;
/// (0, None) when it is missing or unreadable.
fn read_sent(path: &Path) -> (u64, Option<u64>) {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(128).read_to_string(&mut text));
    let mut words = text.split_whitespace();
    let pos = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    (pos, words.next().and_then(|w| w.parse().ok()))
}

/// The byte of `f` at `off`.
fn byte_at(f: &File, off: u64) -> io::Result<u8> {
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off)?;
    Ok(b[0])
}

/// Where the last complete line among the first `len` bytes of `f` ends
/// (after its newline; 0 without one), reading back from `len` `chunk`
/// bytes at a time.
fn last_line_end(f: &File, len: u64, chunk: usize) -> io::Result<u64> {
    let mut buf = vec![0u8; chunk];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk as u64);
        let part = &mut buf[..(end - start) as usize];
        f.read_exact_at(part, start)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Copy bytes `from..to` of `src` to `out` (when given), `chunk` bytes at a
/// time, and count the non-empty lines among them (`from` starts a line).
fn copy_lines(
    src: &File,
    from: u64,
    to: u64,
    mut out: Option<&mut dyn Write>,
    chunk: usize,
) -> io::Result<u64> {
    let mut buf = vec![0u8; chunk];
    let (mut at, mut prev, mut lines) = (from, b'\n', 0u64);
    while at < to {
        let n = (to - at).min(chunk as u64) as usize;
        let part = &mut buf[..n];
        src.read_exact_at(part, at)?;
        for &b in part.iter() {
            lines += u64::from(b == b'\n' && prev != b'\n');
            prev = b;
        }
        if let Some(o) = out.as_mut() {
            o.write_all(part)?;
        }
        at += n as u64;
    }
    Ok(lines)
}

/// A new, empty `syslog.spool.tmp` beside `spool` (mode 0600).
fn create_tmp(spool: &Path) -> io::Result<(File, PathBuf)> {
    let tmp = spool.with_extension("spool.tmp");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    Ok((f, tmp))
}

/// The writing side, shared by the caller and the sender under a mutex.
struct SpoolWriter {
    file: File,
    path: PathBuf,
    /// Bytes in the file.
    len: u64,
    /// `spool_max`: a line that would take `len` past it is dropped.
    max: u64,
    /// New messages go to the spool, not the queue.
    active: bool,
    /// A write failed already (logged once).
    failed: bool,
    /// Messages dropped since the spool was last found full (the first is
    /// logged, and the count when it takes one again).
    full_dropped: u64,
}

impl SpoolWriter {
    /// Whether a message of `n` bytes, and its newline, fits under the cap.
    fn has_room(&self, n: usize) -> bool {
        self.len.saturating_add(n as u64 + 1) <= self.max
    }
}

struct Shared {
    /// `None` without a spool directory.
    spool: Mutex<Option<SpoolWriter>>,
    /// `SpoolWriter::len`, for the sender to read without the lock; stored
    /// after the line is in the file.
    spool_len: AtomicU64,
    stats: Arc<SyslogStats>,
}

/// What [`Shared::try_append`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Appended {
    Yes,
    /// The spool is at its cap: dropped and counted.
    Full,
    /// The write failed: not counted, the caller drops or keeps it.
    Failed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<SpoolWriter>> {
        self.spool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Append one message as one line; false (and counted as dropped) when
    /// the spool is full or the write failed.
    fn append(&self, w: &mut SpoolWriter, msg: &str) -> bool {
        match self.try_append(w, msg) {
            Appended::Yes => true,
            Appended::Full => false,
            Appended::Failed => {
                SyslogStats::add(&self.stats.dropped, 1);
                false
            }
        }
    }

    /// [`Shared::append`], for a caller that keeps the message when the write
    /// fails (so that is no drop); a full spool still drops and counts.
    fn try_append(&self, w: &mut SpoolWriter, msg: &str) -> Appended {
        if !w.has_room(msg.len()) {
            if w.full_dropped == 0 {
                warn!(
                    "syslog spool {} is full ({} bytes, output.syslog.spool_max {}): dropping new messages until it is sent (scanwatch_syslog_spool_dropped_total)",
                    w.path.display(),
                    w.len,
                    Size(w.max)
                );
            }
            w.full_dropped += 1;
            SyslogStats::add(&self.stats.dropped, 1);
            SyslogStats::add(&self.stats.spool_dropped, 1);
            return Appended::Full;
        }
        let mut line = Vec::with_capacity(msg.len() + 1);
        line.extend_from_slice(msg.as_bytes());
        line.push(b'\n');
        match w.file.write_all(&line) {
            Ok(()) => {
                w.len += line.len() as u64;
                self.spool_len.store(w.len, Ordering::Release);
                SyslogStats::add(&self.stats.spooled, 1);
                SyslogStats::add(&self.stats.backlog, 1);
                w.failed = false;
                if w.full_dropped > 0 {
                    info!(
                        "syslog spool {}: taking messages again ({} dropped while it was full)",
                        w.path.display(),
                        w.full_dropped
                    );
                    w.full_dropped = 0;
                }
                Appended::Yes
            }
            Err(e) => {
                // Take back a partial line, so the next one starts a line.
                let _ = w.file.set_len(w.len);
                if !w.failed {
                    warn!("syslog spool {}: {e}: dropping messages", w.path.display());
                    w.failed = true;
                }
                Appended::Failed
            }
        }
    }

    /// Switch to the spool: what waits in the queue goes first (it is older
    /// than anything a caller sends from now on).
    fn activate(&self, w: &mut SpoolWriter, rx: &Receiver<String>) {
        w.active = true;
        while let Ok(m) = rx.try_recv() {
            self.append(w, &m);
        }
    }
}

/// The reading side, the sender's alone.
struct SpoolReader {
    reader: BufReader<File>,
    path: PathBuf,
    /// Offset of the first message not yet sent.
    pos: u64,
    /// Where `reader` is (past a message being sent).
    read_to: u64,
    sent: File,
    /// The spool file's inode, saved with `pos`: after a crash between a
    /// compaction's rename and the saving of its offset (0), the offset of
    /// the spool it replaced is not applied to it.
    ino: u64,
}

impl SpoolReader {
    fn save_pos(&self) {
        let _ = self
            .sent
            .write_at(format!("{:020} {:020}\n", self.pos, self.ino).as_bytes(), 0);
    }
}

/// Open (or create) the spool in `dir` for `addr`: lock it, drop a torn
/// last line, find where sending stopped, count the backlog, reading the
/// file in pieces.
fn open_spool(
    dir: &Path,
    addr: &SyslogAddr,
    max: u64,
    stats: &SyslogStats,
) -> Result<(SpoolWriter, SpoolReader, File), SyslogError> {
    let err = |p: &Path| {
        let p = p.display().to_string();
        move |source| SyslogError::Spool { path: p, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err(dir))?;
    let create = |name: &str, append: bool| -> Result<(File, PathBuf), SyslogError> {
        let p = dir.join(name);
        let f = OpenOptions::new()
            .read(true)
            .write(!append)
            .append(append)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .map_err(err(&p))?;
        // Ours: keep it private even if it was made otherwise.
        let _ = f.set_permissions(fs::Permissions::from_mode(0o600));
        Ok((f, p))
    };
    let (lock, lock_path) = create(SPOOL_LOCK_FILE, false)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(SyslogError::SpoolLocked(lock_path.display().to_string()));
        }
        Err(fs::TryLockError::Error(e)) => return Err(err(&lock_path)(e)),
    }
    let (file, path) = create(SPOOL_FILE, true)?;
    let (sent, sent_path) = create(SPOOL_SENT_FILE, false)?;
    // Whose spool this is, for the warning about directories no
    // destination uses (the spool works without it).
    let dest = format!("{addr}\n");
    if fs::read_to_string(dir.join(SPOOL_DEST_FILE))
        .ok()
        .as_deref()
        != Some(&dest)
    {
        let (mut f, p) = create(SPOOL_DEST_FILE, false)?;
        f.set_len(0)
            .and_then(|()| f.write_all(dest.as_bytes()))
            .map_err(err(&p))?;
    }

    let mut len = file.metadata().map_err(err(&path))?.len();
    // A crash in the middle of a write leaves a torn last line: never send
    // half a message.
    if len > 0 && byte_at(&file, len - 1).map_err(err(&path))? != b'\n' {
        let keep = last_line_end(&file, len, SPOOL_CHUNK).map_err(err(&path))?;
        warn!(
            "syslog spool {}: dropping a partly written last message",
            path.display()
        );
        file.set_len(keep).map_err(err(&path))?;
        len = keep;
        SyslogStats::add(&stats.dropped, 1);
    }
    let ino = file.metadata().map_err(err(&path))?.ino();
    let (mut pos, saved_ino) = read_sent(&sent_path);
    if saved_ino.is_some_and(|i| i != ino) {
        // Saved for the spool a compaction replaced (a crash between the
        // rename and the saving): nothing of this one was sent.
        pos = 0;
    }
    if pos > len || (pos > 0 && byte_at(&file, pos - 1).map_err(err(&path))? != b'\n') {
        warn!(
            "syslog spool {}: {} does not match it; sending the whole spool (some messages may be sent twice)",
            path.display(),
            sent_path.display()
        );
        pos = 0;
    }
    if pos == len && len > 0 {
        file.set_len(0).map_err(err(&path))?;
        pos = 0;
        len = 0;
    }
    let backlog = copy_lines(&file, pos, len, None, SPOOL_CHUNK).map_err(err(&path))?;
    stats.backlog.store(backlog, Ordering::Relaxed);
    let mut rf = File::open(&path).map_err(err(&path))?;
    rf.seek(SeekFrom::Start(pos)).map_err(err(&path))?;
    let reader = SpoolReader {
        reader: BufReader::with_capacity(SPOOL_CHUNK, rf),
        path: path.clone(),
        pos,
        read_to: pos,
        sent,
        ino,
    };
    reader.save_pos();
    if backlog > 0 {
        info!(
            "syslog spool {}: {backlog} messages from before to send first",
            path.display()
        );
    }
    if len > max {
        warn!(
            "syslog spool {}: {len} bytes, more than output.syslog.spool_max ({}): all are kept and sent, and new messages are dropped (scanwatch_syslog_spool_dropped_total) until the spool is below it",
            path.display(),
            Size(max)
        );
    }
    Ok((
        SpoolWriter {
            file,
            path,
            len,
            max,
            active: pos < len,
            failed: false,
            full_dropped: 0,
        },
        reader,
        lock,
    ))
}

/// Compact the spool while the sender runs: copy its unsent part
/// (`r.pos..`) to `syslog.spool.tmp` in pieces, without the lock (callers
/// only append past it), then under the lock what they appended meanwhile,
/// and rename it over the spool. The caller waits only for that last part.
fn compact_spool(shared: &Shared, r: &mut SpoolReader) -> io::Result<()> {
    let src = File::open(&r.path)?;
    let (mut out, tmp) = create_tmp(&r.path)?;
    let res = (|| {
        let pos = r.pos;
        let snap = shared.spool_len.load(Ordering::Acquire);
        copy_lines(&src, pos, snap, Some(&mut out), SPOOL_CHUNK)?;
        out.sync_data()?;
        // Opened before the rename, so that nothing can fail after it.
        let appender = OpenOptions::new().append(true).open(&tmp)?;
        let reading = File::open(&tmp)?;
        let ino = out.metadata()?.ino();
        let mut g = shared.lock();
        let w = g.as_mut().ok_or_else(|| io::Error::other("no spool"))?;
        copy_lines(&src, snap, w.len, Some(&mut out), SPOOL_CHUNK)?;
        fs::rename(&tmp, &r.path)?;
        w.file = appender;
        w.len -= pos;
        shared.spool_len.store(w.len, Ordering::Release);
        r.reader = BufReader::with_capacity(SPOOL_CHUNK, reading);
        r.pos = 0;
        r.read_to = 0;
        r.ino = ino;
        r.save_pos();
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

// ---------------------------------------------------------------------------
// Transports

enum Conn {
    Unix(UnixDatagram, PathBuf),
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsConn>),
}

/// A TLS session over a blocking TCP socket with read and write timeouts.
struct TlsConn {
    sock: TcpStream,
    tls: rustls::ClientConnection,
}

impl TlsConn {
    /// Complete the handshake within `timeout` in all (each read is given
    /// what is left of it, so a server that trickles bytes cannot hold the
    /// sender longer); then listen `verdict_wait` for the server to refuse
    /// the session.
    fn open(sock: TcpStream, c: &TlsClient, timeout: Duration) -> io::Result<TlsConn> {
        let deadline = Instant::now() + timeout;
        let mut tls = rustls::ClientConnection::new(c.config.clone(), c.server_name.clone())
            .map_err(io::Error::other)?;
        // Each message is written out whole before the next (see `send`),
        // so the buffer never holds more than one frame.
        tls.set_buffer_limit(None);
        let mut t = TlsConn { sock, tls };
        let late = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the TLS handshake took longer than {timeout:?}"),
            )
        };
        // By hand rather than rustls's `complete_io`, which goes on reading
        // as long as bytes come: each read here gets only what is left.
        while t.tls.is_handshaking() {
            t.flush()?;
            if !t.tls.is_handshaking() {
                break;
            }
            if !t.tls.wants_read() {
                // Neither side has anything to say: cannot happen with a
                // working rustls, and must not spin if it did.
                return Err(io::Error::other("the TLS handshake stalled"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(late());
            }
            t.sock.set_read_timeout(Some(left))?;
            match t.tls.read_tls(&mut &t.sock) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake",
                    ));
                }
                Ok(_) => {
                    if let Err(e) = t.tls.process_new_packets() {
                        // Tell the server why (rustls queued an alert).
                        let _ = t.flush();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(late());
                }
                Err(e) => return Err(e),
            }
        }
        t.sock.set_read_timeout(Some(timeout))?;
        t.flush()?;
        t.check(c.verdict_wait)?;
        Ok(t)
    }

    /// Write out what rustls holds (blocking, bounded by the write timeout).
    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut &self.sock)?;
        }
        Ok(())
    }

    /// Read what the server sent, for `wait` (zero: what is there now,
    /// without blocking): an error when it closed the session, sent an
    /// alert, or the connection failed. Whatever else it sent (session
    /// tickets; a syslog server sends no data) is taken and dropped.
    fn check(&mut self, wait: Duration) -> io::Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            self.sock.set_nonblocking(true)?;
            let r = self.read_all();
            self.sock.set_nonblocking(false)?;
            r?;
            // Not only until the first record: a server may send its
            // session ticket at once and judge the client afterwards.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd; the descriptor belongs to `sock`.
            // A timeout or EINTR just goes round again.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    /// What the socket holds now, 64 reads at most (as for TCP: a server
    /// that keeps sending cannot hold the sender here).
    fn read_all(&mut self) -> io::Result<()> {
        let closed = || {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the TLS session",
            )
        };
        let mut buf = [0u8; 512];
        for _ in 0..64 {
            match self.tls.read_tls(&mut &self.sock) {
                Ok(0) => return Err(closed()),
                Ok(_) => {
                    let st = self
                        .tls
                        .process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let mut left = st.plaintext_bytes_to_read();
                    while left > 0 {
                        let n = self.tls.reader().read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        left = left.saturating_sub(n);
                    }
                    if st.peer_has_closed() {
                        return Err(closed());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One octet-counted frame, written out before returning.
    fn send(&mut self, msg: &str) -> io::Result<()> {
        self.tls.writer().write_all(&octet_frame(msg))?;
        self.flush()
    }
}

impl Drop for TlsConn {
    /// Say goodbye (close_notify), without waiting for a server that
    /// stopped reading. Not after a send that failed part-way: the rest of
    /// its record would go out with the goodbye, and the message, counted
    /// as failed and sent again on the next session, would arrive twice.
    fn drop(&mut self) {
        if self.tls.wants_write() {
            return;
        }
        self.tls.send_close_notify();
        if self.sock.set_nonblocking(true).is_ok() {
            let _ = self.flush();
        }
    }
}

/// Why a send did not happen.
enum SendError {
    /// This message can never be sent (too long for the socket): drop it.
    Poison(io::Error),
    /// The server is unreachable: keep the message, retry later.
    Down(io::Error),
}

/// A TCP connection to the first of `host`'s addresses that takes it.
fn tcp_connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for a in resolve(host, port)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_write_timeout(Some(timeout))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("resolve returns an address"))
}

fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if v.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(v)
}

impl Conn {
    fn open(addr: &SyslogAddr, tls: Option<&TlsClient>, timeout: Duration) -> io::Result<Conn> {
        match addr {
            SyslogAddr::Unix(p) => {
                let s = UnixDatagram::unbound()?;
                s.set_write_timeout(Some(timeout))?;
                Ok(Conn::Unix(s, p.clone()))
            }
            SyslogAddr::Udp { host, port } => {
                let mut last = None;
                for a in resolve(host, *port)? {
                    let local: SocketAddr = if a.is_ipv4() {
                        "0.0.0.0:0".parse().expect("valid")
                    } else {
                        "[::]:0".parse().expect("valid")
                    };
                    match UdpSocket::bind(local).and_then(|s| s.connect(a).map(|()| s)) {
                        Ok(s) => {
                            s.set_write_timeout(Some(timeout))?;
                            return Ok(Conn::Udp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.expect("resolve returns an address"))
            }
            SyslogAddr::Tcp { host, port } => Ok(Conn::Tcp(tcp_connect(host, *port, timeout)?)),
            SyslogAddr::Tls { host, port } => {
                let c = tls.ok_or_else(|| io::Error::other("no TLS settings"))?;
                let sock = tcp_connect(host, *port, timeout)?;
                Ok(Conn::Tls(Box::new(TlsConn::open(sock, c, timeout)?)))
            }
        }
    }

    /// For TCP and TLS: why the server closed the connection (or reset it),
    /// if it did. A syslog server never sends, so a non-blocking read that
    /// finds the end of the stream (or an error) means the connection is
    /// dead; anything it did send is read and ignored (over TLS, through
    /// rustls: session tickets, or the alert it closed with).
    fn peer_closed(&mut self) -> Option<io::Error> {
        let s = match self {
            Conn::Tcp(s) => s,
            Conn::Tls(t) => return t.check(Duration::ZERO).err(),
            _ => return None,
        };
        let mut buf = [0u8; 512];
        for _ in 0..64 {
            // SAFETY: the descriptor belongs to `s`, alive here; buf is
            // writable for buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                return Some(io::ErrorKind::ConnectionAborted.into());
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return None,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Some(e),
                }
            }
        }
        None
    }

    /// A pending error on a UDP socket (an ICMP error for an earlier send).
    fn udp_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Conn::Udp(s) => s.take_error(),
            _ => Ok(None),
        }
    }

    fn send(&mut self, msg: &str) -> Result<(), SendError> {
        let classify = |e: io::Error| {
            if e.raw_os_error() == Some(libc::EMSGSIZE) {
                SendError::Poison(e)
            } else {
                SendError::Down(e)
            }
        };
        match self {
            Conn::Unix(s, p) => s.send_to(msg.as_bytes(), &*p).map(drop).map_err(classify),
            Conn::Udp(s) => s.send(msg.as_bytes()).map(drop).map_err(classify),
            Conn::Tcp(s) => s.write_all(&octet_frame(msg)).map_err(SendError::Down),
            Conn::Tls(t) => t.send(msg).map_err(SendError::Down),
        }
    }
}

// ---------------------------------------------------------------------------
// The sender thread

/// A message taken for sending, and where it came from.
enum Held {
    /// From the queue; only in memory.
    Memory(String),
    /// From the spool; `end` is the offset after its line.
    Spool { line: String, end: u64 },
}

impl Held {
    fn text(&self) -> &str {
        match self {
            Held::Memory(m) => m,
            Held::Spool { line, .. } => line,
        }
    }
}

enum Delivery {
    Sent,
    Dropped,
    Failed,
}

struct Worker {
    addr: SyslogAddr,
    tls: Option<TlsClient>,
    timeout: Duration,
    max_len: usize,
    backoff_min: Duration,
    backoff_max: Duration,
    flush_timeout: Duration,
    rx: Receiver<String>,
    wake: Receiver<()>,
    stop: Receiver<()>,
    shared: Arc<Shared>,
    stats: Arc<SyslogStats>,
    reader: Option<SpoolReader>,
    conn: Option<Conn>,
    head: Option<Held>,
    backoff: Duration,
    ever_connected: bool,
    /// `conn` was opened and has not sent yet.
    fresh: bool,
    /// Failing since the last success (logged once).
    failing: bool,
    /// When a TLS session ended with an error was last logged.
    tls_warned: Option<Instant>,
    /// `spool_max`: the sender compacts the spool once what it sent of it
    /// is half of this.
    spool_max: u64,
    /// After a compaction failed, none before this.
    no_compact_before: Option<Instant>,
    /// Kept to hold the spool's lock until the sender ends.
    _lock: Option<File>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.stopping() {
                break;
            }
            if self.head.is_none() {
                match self.next() {
                    Next::Got(h) => self.head = Some(h),
                    Next::Again => continue,
                    Next::Stop => break,
                }
            }
            match self.deliver_head() {
                Delivery::Sent | Delivery::Dropped => self.maybe_compact(),
                Delivery::Failed => {
                    self.park_head();
                    let stop = select! {
                        recv(self.stop) -> _ => true,
                        default(self.backoff) => false,
                    };
                    self.backoff = (self.backoff * 2).min(self.backoff_max);
                    if stop {
                        break;
                    }
                }
            }
        }
        self.finish();
    }

    fn stopping(&self) -> bool {
        matches!(self.stop.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Lines in the spool past the reader.
    fn spool_has_more(&self) -> bool {
        self.reader
            .as_ref()
            .is_some_and(|r| r.read_to < self.shared.spool_len.load(Ordering::Acquire))
    }

    fn spool_active(&self) -> bool {
        self.shared.lock().as_ref().is_some_and(|w| w.active)
    }

    /// The next message: from the spool while it is active, else the queue.
    fn next(&mut self) -> Next {
        if self.spool_active() {
            if let Some(h) = self.spool_line() {
                return Next::Got(h);
            }
            if self.try_close_spool() || self.spool_has_more() {
                return Next::Again;
            }
            // The spool cannot be read just now: do not spin.
            return select! {
                recv(self.stop) -> _ => Next::Stop,
                default(Duration::from_millis(50)) => Next::Again,
            };
        }
        select! {
            recv(self.rx) -> m => match m {
                Ok(m) => Next::Got(Held::Memory(m)),
                Err(_) => Next::Stop,
            },
            // A caller switched to the spool.
            recv(self.wake) -> _ => Next::Again,
            recv(self.stop) -> _ => Next::Stop,
        }
    }

    /// The next unsent line of the spool, if there is one.
    fn spool_line(&mut self) -> Option<Held> {
        let r = self.reader.as_mut()?;
        loop {
            if r.read_to >= self.shared.spool_len.load(Ordering::Acquire) {
                return None;
            }
            let mut buf = Vec::new();
            match r.reader.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    if !buf.ends_with(b"\n") {
                        // Cannot happen (lines are written whole before the
                        // length is published); read it again later.
                        let _ = r.reader.seek(SeekFrom::Start(r.read_to));
                        return None;
                    }
                    let end = r.read_to + n as u64;
                    r.read_to = end;
                    buf.pop();
                    if buf.is_empty() {
                        r.pos = end;
                        continue;
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    return Some(Held::Spool { line, end });
                }
                Err(e) => {
                    warn!("syslog spool: read: {e}");
                    let _ = r.reader.seek(SeekFrom::Start(r.read_to));
                    return None;
                }
            }
        }
    }

    /// Everything in the spool was sent: empty it and go back to the queue,
    /// unless a caller appended in the meantime. True when it was emptied.
    fn try_close_spool(&mut self) -> bool {
        let Some(r) = self.reader.as_mut() else {
            return false;
        };
        let mut g = self.shared.lock();
        let Some(w) = g.as_mut() else { return false };
        if w.len != r.read_to || r.pos != r.read_to {
            return false;
        }
        if let Err(e) = w.file.set_len(0) {
            warn!("syslog spool {}: cannot empty it: {e}", w.path.display());
            return false;
        }
        w.len = 0;
        self.shared.spool_len.store(0, Ordering::Release);
        let _ = r.reader.seek(SeekFrom::Start(0));
        r.pos = 0;
        r.read_to = 0;
        r.save_pos();
        w.active = false;
        self.stats.backlog.store(0, Ordering::Relaxed);
        true
    }

    /// Give back the disk the sent part of the spool takes, once it is half
    /// of `spool_max` and at least as large as the unsent rest (which is
    /// what a compaction copies: at most as much as was sent). Without this
    /// a spool that is never quite empty (alerts come as fast as they are
    /// sent) would only grow, and refuse new messages with little unsent.
    fn maybe_compact(&mut self) {
        let Some(r) = self.reader.as_mut() else {
            return;
        };
        let len = self.shared.spool_len.load(Ordering::Acquire);
        if self.head.is_some()
            || r.pos == 0
            || r.read_to != r.pos
            || r.pos < self.spool_max / 2
            || r.pos < len.saturating_sub(r.pos)
            || self.no_compact_before.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        if let Err(e) = compact_spool(&self.shared, r) {
            warn!(
                "syslog spool {}: cannot compact it ({e}); trying again in {}s",
                r.path.display(),
                COMPACT_RETRY.as_secs()
            );
            self.no_compact_before = Some(Instant::now() + COMPACT_RETRY);
        }
    }

    /// Send the held message; on success account for it.
    fn deliver_head(&mut self) -> Delivery {
        let Some(h) = self.head.take() else {
            return Delivery::Sent;
        };
        match self.deliver(h.text()) {
            Delivery::Failed => {
                self.head = Some(h);
                Delivery::Failed
            }
            d => {
                if let Held::Spool { end, .. } = h
                    && let Some(r) = self.reader.as_mut()
                {
                    r.pos = end;
                    r.save_pos();
                    SyslogStats::sub(&self.stats.backlog, 1);
                }
                d
            }
        }
    }

    fn deliver(&mut self, msg: &str) -> Delivery {
        if msg.len() > self.max_len {
            warn!(
                "syslog: dropping a spooled message of {} bytes, longer than {} allows",
                msg.len(),
                self.addr
            );
            SyslogStats::add(&self.stats.dropped, 1);
            return Delivery::Dropped;
        }
        // A dead TCP connection is replaced before writing into it.
        let tls = matches!(self.conn, Some(Conn::Tls(_)));
        if let Some(e) = self.conn.as_mut().and_then(Conn::peer_closed) {
            // A TLS session the server ended (it refused the client's
            // certificate later than the handshake's verdict wait, say, or
            // it restarted): what went out on it last may be lost. Say so,
            // now and then; a syslog server does not end sessions lightly.
            if tls
                && self
                    .tls_warned
                    .is_none_or(|t| t.elapsed() >= TLS_WARN_EVERY)
            {
                self.tls_warned = Some(Instant::now());
                warn!(
                    "syslog {}: the server ended the TLS session ({e}); what was sent on it \
                     last may be lost (a refused client certificate? see \
                     output.syslog.tls_verdict_wait)",
                    self.addr
                );
            }
            self.conn = None;
        }
        if self.conn.is_none() {
            match Conn::open(&self.addr, self.tls.as_ref(), self.timeout) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.fresh = true;
                }
                Err(e) => return self.failed(e),
            }
        }
        let conn = self.conn.as_mut().expect("opened above");
        let mut res = conn.send(msg);
        if res.is_ok() && self.fresh && matches!(conn, Conn::Udp(_)) {
            // A UDP send "succeeds" whether or not a server listens; the
            // ICMP error shows up on the socket a moment later. Wait for it
            // on a new socket (after a failure, the retry of the spool's
            // first message), so retries during an outage lose nothing
            // where the ICMP error comes back quickly.
            std::thread::sleep(UDP_CHECK);
            if let Ok(Some(e)) = conn.udp_error() {
                res = Err(SendError::Down(e));
            }
        }
        match res {
            Ok(()) => {
                if self.fresh {
                    // A connection that works (for unix and UDP, whose
                    // sockets are made without the server, the first send
                    // that went through).
                    if self.ever_connected {
                        SyslogStats::add(&self.stats.reconnects, 1);
                    }
                    self.ever_connected = true;
                    self.fresh = false;
                }
                SyslogStats::add(&self.stats.sent, 1);
                self.stats.connected.store(true, Ordering::Relaxed);
                self.backoff = self.backoff_min;
                if self.failing {
                    self.failing = false;
                    info!(
                        "syslog {}: sending again ({} messages in the spool)",
                        self.addr,
                        self.stats.backlog.load(Ordering::Relaxed)
                    );
                }
                Delivery::Sent
            }
            Err(SendError::Poison(e)) => {
                warn!(
                    "syslog {}: dropping a message of {} bytes: {e}",
                    self.addr,
                    msg.len()
                );
                SyslogStats::add(&self.stats.dropped, 1);
                Delivery::Dropped
            }
            Err(SendError::Down(e)) => {
                // A connection that failed part-way is unusable (framing).
                self.conn = None;
                self.failed(e)
            }
        }
    }

    fn failed(&mut self, e: io::Error) -> Delivery {
        self.stats.connected.store(false, Ordering::Relaxed);
        if !self.failing {
            self.failing = true;
            let then = if self.reader.is_some() {
                "spooling until it is back"
            } else {
                "queueing, dropping what the queue cannot hold (no spool)"
            };
            warn!("syslog {}: {e}: {then}", self.addr);
        }
        Delivery::Failed
    }

    /// After a failure: a message from the queue goes to the spool (with the
    /// rest of the queue behind it) unless the spool is active already, in
    /// which case it is older than the spool's content and waits in memory.
    fn park_head(&mut self) {
        let Some(Held::Memory(m)) = &self.head else {
            return;
        };
        let mut g = self.shared.lock();
        let Some(w) = g.as_mut() else { return };
        if w.active {
            return;
        }
        w.active = true;
        // A full spool leaves it in memory, first to be sent, not dropped.
        // A failed write keeps it in memory too: no drop to count.
        if w.has_room(m.len()) && self.shared.try_append(w, m) == Appended::Yes {
            self.head = None;
        }
        self.shared.activate(w, &self.rx);
    }

    /// On close: one more try at everything waiting, until the first failure
    /// or `flush_timeout`; what is left stays in the spool (or is dropped and
    /// counted without one).
    fn finish(&mut self) {
        let deadline = Instant::now() + self.flush_timeout;
        while Instant::now() < deadline {
            if self.head.is_none() {
                self.head = if self.spool_active() {
                    match self.spool_line() {
                        Some(h) => Some(h),
                        None if self.try_close_spool() => continue,
                        None if self.spool_has_more() => continue,
                        None => None,
                    }
                } else {
                    self.rx.try_recv().ok().map(Held::Memory)
                };
            }
            if self.head.is_none() {
                break;
            }
            if let Delivery::Failed = self.deliver_head() {
                break;
            }
        }
        self.persist();
    }

    /// Write what was not sent back to the spool, oldest first: the held
    /// message, the spool's unsent lines, the queue; the spool's lines all,
    /// the others as far as `spool_max` leaves room (the rest is dropped
    /// and counted). The spool is copied in pieces, never held in memory.
    fn persist(&mut self) {
        let queued: Vec<String> = self.rx.try_iter().collect();
        let memory = match self.head.take() {
            Some(Held::Memory(m)) => Some(m),
            _ => None, // a spool line is still in the spool (pos not moved)
        };
        let shared = Arc::clone(&self.shared);
        let mut g = shared.lock();
        let (Some(w), Some(r)) = (g.as_mut(), self.reader.as_mut()) else {
            let lost = queued.len() + usize::from(memory.is_some());
            if lost > 0 {
                warn!("syslog {}: {lost} messages not sent (no spool)", self.addr);
                SyslogStats::add(&self.stats.dropped, lost as u64);
            }
            return;
        };
        if memory.is_none() && r.pos == 0 {
            for m in &queued {
                shared.append(w, m);
            }
            let _ = w.file.sync_all();
            return;
        }
        // Compact: the held message first, then the unsent rest, then the
        // queue, each message if it fits under the cap.
        let mut room = w.max.saturating_sub(w.len - r.pos);
        let mut fits = |m: &&String| {
            let n = m.len() as u64 + 1;
            let ok = n <= room;
            if ok {
                room -= n;
            }
            ok
        };
        let first: Vec<&String> = memory.iter().filter(&mut fits).collect();
        let last: Vec<&String> = queued.iter().filter(&mut fits).collect();
        let added = (first.len() + last.len()) as u64;
        let full = (queued.len() + usize::from(memory.is_some())) as u64 - added;
        let res = (|| -> io::Result<(u64, u64, File, u64)> {
            let src = File::open(&w.path)?;
            let (t, tmp) = create_tmp(&w.path)?;
            let res = (|| {
                let mut out = io::BufWriter::with_capacity(SPOOL_CHUNK, &t);
                for m in &first {
                    out.write_all(m.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                let n = copy_lines(&src, r.pos, w.len, Some(&mut out), SPOOL_CHUNK)?;
                for m in &last {
                    out.write_all(m.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                drop(out);
                t.sync_all()?;
                let meta = t.metadata()?;
                let appender = OpenOptions::new().append(true).open(&tmp)?;
                fs::rename(&tmp, &w.path)?;
                Ok((n + added, meta.len(), appender, meta.ino()))
            })();
            if res.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            res
        })();
        match res {
            Ok((n, len, appender, ino)) => {
                w.file = appender;
                w.len = len;
                shared.spool_len.store(len, Ordering::Release);
                r.pos = 0;
                r.read_to = 0;
                r.ino = ino;
                r.save_pos();
                SyslogStats::add(&self.stats.spooled, added);
                self.stats.backlog.store(n, Ordering::Relaxed);
                if full > 0 {
                    warn!(
                        "syslog spool {}: {full} messages not kept at exit: the spool is full (output.syslog.spool_max {})",
                        w.path.display(),
                        Size(w.max)
                    );
                    SyslogStats::add(&self.stats.dropped, full);
                    SyslogStats::add(&self.stats.spool_dropped, full);
                }
            }
            Err(e) => {
                // The spool and its offset are as they were: only the
                // messages held in memory are lost.
                let lost = queued.len() + usize::from(memory.is_some());
                warn!(
                    "syslog spool {}: cannot compact it ({e}): {lost} messages lost",
                    w.path.display()
                );
                SyslogStats::add(&self.stats.dropped, lost as u64);
            }
        }
    }
}

enum Next {
    Got(Held),
    Again,
    Stop,
}

// ---------------------------------------------------------------------------
// The sink

/// What [`SyslogSink::send`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the sender thread.
    Queued,
    /// Written to the spool, to be sent when the server is back.
    Spooled,
    /// Lost (too long, or no room and no spool, or the spool full);
    /// counted.
    Dropped,
}

/// Sends messages to syslog from its own thread; see the module docs.
pub struct SyslogSink {
    fmt: Formatter,
    max_len: usize,
    /// Started with a spool (fixed for the sink's life).
    spooled: bool,
    tx: Sender<String>,
    /// To move the queue into the spool when switching to it.
    rx: Receiver<String>,
    wake: Sender<()>,
    stop: Option<Sender<()>>,
    shared: Arc<Shared>,
    stats: Arc<SyslogStats>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogSink {
    /// Start the sender thread. With `spool_dir`, messages that cannot be
    /// sent are kept in `spool_dir/syslog.spool` (up to `spool_max` bytes),
    /// and whatever an earlier run left there is sent first. An unreachable
    /// server is not an error here.
    pub fn start(cfg: &SyslogConfig, spool_dir: Option<&Path>) -> Result<SyslogSink, SyslogError> {
        // validate() less its reading of the TLS files, done once here.
        cfg.check_values()?;
        let tls = cfg.tls_client()?;
        let stats = Arc::new(SyslogStats::default());
        let (writer, reader, lock) = match spool_dir {
            Some(d) => {
                let (w, r, l) = open_spool(d, &cfg.address, cfg.spool_max.0, &stats)?;
                (Some(w), Some(r), Some(l))
            }
            None => (None, None, None),
        };
        let spool_len = writer.as_ref().map_or(0, |w| w.len);
        let shared = Arc::new(Shared {
            spool: Mutex::new(writer),
            spool_len: AtomicU64::new(spool_len),
            stats: Arc::clone(&stats),
        });
        let (tx, rx) = bounded(cfg.queue);
        let (wake_tx, wake_rx) = bounded(1);
        let (stop_tx, stop_rx) = bounded(0);
        let worker = Worker {
            addr: cfg.address.clone(),
            tls,
            timeout: cfg.timeout.0,
            max_len: cfg.max_len(),
            backoff_min: cfg.reconnect_min.0,
            backoff_max: cfg.reconnect_max.0,
            flush_timeout: cfg.flush_timeout.0,
            rx: rx.clone(),
            wake: wake_rx,
            stop: stop_rx,
            shared: Arc::clone(&shared),
            stats: Arc::clone(&stats),
            reader,
            conn: None,
            head: None,
            backoff: cfg.reconnect_min.0,
            ever_connected: false,
            fresh: false,
            failing: false,
            tls_warned: None,
            spool_max: cfg.spool_max.0,
            no_compact_before: None,
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || worker.run())
            .map_err(SyslogError::Thread)?;
        Ok(SyslogSink {
            fmt: Formatter::new(cfg),
            max_len: cfg.max_len(),
            spooled: spool_dir.is_some(),
            tx,
            rx,
            wake: wake_tx,
            stop: Some(stop_tx),
            shared,
            stats,
            thread: Some(thread),
        })
    }

    /// The counters, to read from any thread.
    pub fn stats(&self) -> Arc<SyslogStats> {
        Arc::clone(&self.stats)
    }

    /// The formatter in use (host name, pid, format).
    pub fn formatter(&self) -> &Formatter {
        &self.fmt
    }

    /// Send one message. Never waits for the network: the message is queued
    /// for the sender thread, or appended to the spool (queue full, server
    /// down, or older messages still spooled), or dropped and counted.
    pub fn send(&self, m: &Message<'_>) -> Outcome {
        let line = match self.fmt.fit(m, self.max_len) {
            Fit::Whole(l) => l,
            Fit::Trimmed { line, removed } => {
                SyslogStats::add(&self.stats.trimmed, 1);
                tracing::debug!("syslog: {removed} list entries removed to fit");
                line
            }
            Fit::TooLong(n) => {
                warn!(
                    "syslog: dropping a {} message of {n} bytes (limit {})",
                    m.kind.msgid(),
                    self.max_len
                );
                SyslogStats::add(&self.stats.dropped, 1);
                return Outcome::Dropped;
            }
        };
        let mut g = self.shared.lock();
        match g.as_mut() {
            Some(w) if w.active => {
                if self.shared.append(w, &line) {
                    Outcome::Spooled
                } else {
                    Outcome::Dropped
                }
            }
            Some(w) => match self.tx.try_send(line) {
                Ok(()) => Outcome::Queued,
                Err(e) => {
                    // Queue full (the sender is slow or stuck): switch to the
                    // spool, moving the queue there first to keep the order.
                    self.shared.activate(w, &self.rx);
                    let _ = self.wake.try_send(());
                    if self.shared.append(w, &e.into_inner()) {
                        Outcome::Spooled
                    } else {
                        Outcome::Dropped
                    }
                }
            },
            None => match self.tx.try_send(line) {
                Ok(()) => Outcome::Queued,
                Err(_) => {
                    SyslogStats::add(&self.stats.dropped, 1);
                    Outcome::Dropped
                }
            },
        }
    }

    /// An alert: MSGID `alert`, severity from the alert's, structured data
    /// `src`, `severity`, `signature`, `variation`.
    pub fn send_alert(&self, a: &Alert) -> Outcome {
        let src = a.src.to_string();
        let sd = alert_sd(a, &src);
        self.send(&Message {
            kind: MsgKind::Alert,
            ts_ns: a.ts,
            severity: a.severity.into(),
            sd: &sd,
            json: &a.json,
        })
    }

    /// A failed-connection event (its line from [`super::event_json`]):
    /// MSGID `failed_connection`, informational, structured data `src`,
    /// `dest`, `reason`, `probe`.
    pub fn send_event(&self, e: &Event, json: &str) -> Outcome {
        // Without a spool a full queue drops the message: counted before
        // it is formatted, since under a flood most are (formatting them
        // all tripled the output thread's CPU), and without taking the
        // spool's lock, millions of times.
        if !self.spooled && self.tx.is_full() {
            SyslogStats::add(&self.stats.dropped, 1);
            return Outcome::Dropped;
        }
        let (src, dest) = (e.key.src.to_string(), e.key.dst.to_string());
        let sd = [
            ("src", src.as_str()),
            ("dest", dest.as_str()),
            ("reason", e.reason.name()),
            ("probe", e.probe.name()),
        ];
        self.send(&Message {
            kind: MsgKind::FailedConnection,
            ts_ns: e.first_ts,
            severity: SyslogSeverity::Informational,
            sd: &sd,
            json,
        })
    }

    /// Stop: send what is queued and spooled (one more try, at most
    /// `flush_timeout`), keep the rest in the spool for the next start.
    /// Returns the final counters.
    pub fn close(mut self) -> StatsSnapshot {
        self.shutdown();
        self.stats.snapshot()
    }

    /// Tell the sender to stop (it then delivers what it can, within
    /// `flush_timeout`) without waiting for it: several destinations stop
    /// together, not one after the other.
    pub(crate) fn request_stop(&mut self) {
        drop(self.stop.take());
    }

    pub(crate) fn shutdown(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            warn!("syslog: the sender thread panicked");
        }
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The structured data of an alert.
pub fn alert_sd<'a>(a: &'a Alert, src: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("src", src),
        ("severity", a.severity.name()),
        ("signature", "Failed Connections"),
        ("variation", a.variation),
    ]
}

#[cfg(test)]
mod tests;
