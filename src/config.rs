//! Configuration: a TOML file, `--set key=value` overrides, defaults that work
//! without either.
//!
//! Keys are snake_case; durations are strings with their unit (`"40s"`,
//! `"14d"`, `"24h"`, humantime syntax); sizes are bytes or strings with
//! their unit (`"256MiB"`, [`Size`]); an unknown key is an error that names
//! its line. `scanwatch check-config` prints the effective settings.
//!
//! ```toml
//! [tracker]
//! syn_timeout = "40s"
//!
//! [detector]
//! activation_period = "14d"
//! home_net = ["10.0.0.0/8", "192.168.0.0/16"]
//! allowlist = ["10.1.2.3/32"]
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decode::Addr;
use crate::track::TrackConfig;

/// Errors of configuration: what, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The reason is in the message, not a `source()` too: printed with its
    // chain (`{:#}`), it would be said twice.
    #[error("cannot read config '{path}': {error}")]
    Read { path: String, error: std::io::Error },
    #[error("config '{path}': {message}")]
    Parse { path: String, message: String },
    #[error("--set {arg}: {message}")]
    Set { arg: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// A duration written with its unit ("40s", "14d").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    /// Nanoseconds, saturating at i64::MAX.
    pub fn ns(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "'{s}' is not a duration like \"40s\" or \"14d\" ({e})"
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A size in bytes, written as a number of bytes (`268435456`) or with its
/// unit (`"256MiB"`, `"1GiB"`, `"500MB"`; `B`, `kB`/`KB`, `MB`, `GB`, `TB` are
/// powers of 1000, `KiB`, `MiB`, `GiB`, `TiB` of 1024; the unit's case does
/// not matter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;
}

impl FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Size, String> {
        let s = text.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '_')
            .unwrap_or(s.len());
        let (num, unit) = (s[..split].replace('_', ""), s[split..].trim());
        let bad =
            || format!("'{text}' is not a size like \"256MiB\", \"1GB\" or a number of bytes");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => Size::KIB,
            "mib" => Size::MIB,
            "gib" => Size::GIB,
            "tib" => Size::GIB << 10,
            _ => return Err(bad()),
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("'{text}' is out of range (at most {} bytes)", u64::MAX))
    }
}

impl fmt::Display for Size {
    /// In the largest binary unit that divides it (`"256MiB"`), else bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, m) in [("GiB", Size::GIB), ("MiB", Size::MIB), ("KiB", Size::KIB)] {
            if n >= m && n.is_multiple_of(m) {
                return write!(f, "{}{unit}", n / m);
            }
        }
        write!(f, "{n}B")
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string like \"256MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// An IPv4 or IPv6 network ("10.0.0.0/8", "fd00::/8"; a bare address is /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: Addr,
    /// Prefix length over the 128-bit form (IPv4 prefixes + 96).
    bits: u8,
    text_v4: bool,
}

impl Cidr {
    pub fn contains(&self, a: &Addr) -> bool {
        // IPv4 addresses are kept IPv4-mapped (::ffff:a.b.c.d): an IPv6
        // network wider than /96 (`::/0`) would hold all of IPv4 too,
        // which no one writing it means. (IPv4-mapped addresses on the wire
        // are skipped by the decoder.)
        if !self.text_v4 && self.bits < 96 && a.is_v4() {
            return false;
        }
        let n = u128::from_be_bytes(self.net.0);
        let x = u128::from_be_bytes(a.0);
        let mask = if self.bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.bits))
        };
        n & mask == x & mask
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an address or network"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u32 = match len {
            Some(l) => l
                .trim()
                .parse()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?,
            None => max,
        };
        let bits = if ip.is_ipv4() { len + 96 } else { len } as u8;
        let mut c = Cidr {
            net: Addr::from(ip),
            bits,
            text_v4: ip.is_ipv4(),
        };
        // Normalise the host bits away, so "10.1.2.3/8" means 10.0.0.0/8.
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        c.net = Addr((u128::from_be_bytes(c.net.0) & mask).to_be_bytes());
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = if self.text_v4 {
            self.bits - 96
        } else {
            self.bits
        };
        write!(f, "{}/{}", self.net, len)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Whether `a` is inside any of `nets`.
pub fn in_any(nets: &[Cidr], a: &Addr) -> bool {
    nets.iter().any(|n| n.contains(a))
}

/// `[tracker]`: see [`TrackConfig`] for what each does.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerSection {
    pub syn_timeout: Dur,
    pub arp_timeout: Dur,
    pub reorder_tolerance: Dur,
    pub max_pending: usize,
}

impl Default for TrackerSection {
    fn default() -> Self {
        let t = TrackConfig::default();
        TrackerSection {
            syn_timeout: Dur(Duration::from_nanos(t.syn_timeout as u64)),
            arp_timeout: Dur(Duration::from_nanos(t.arp_timeout as u64)),
            reorder_tolerance: Dur(Duration::from_nanos(t.reorder_tolerance as u64)),
            max_pending: t.max_pending,
        }
    }
}

impl TrackerSection {
    pub fn track_config(&self) -> TrackConfig {
        TrackConfig {
            syn_timeout: self.syn_timeout.ns(),
            arp_timeout: self.arp_timeout.ns(),
            reorder_tolerance: self.reorder_tolerance.ns(),
            max_pending: self.max_pending.max(crate::track::PARTITIONS),
            evidence_nets: None,
        }
    }
}

/// `[detector]`: the Failed Connections analytics. Every threshold is here,
/// with its unit and its trade-off.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSection {
    /// No alert before the sensor has observed this much event time: the
    /// inventory must first learn which hosts are alive. Shorter alerts sooner
    /// but calls hosts "never seen" that were merely quiet.
    pub activation_period: Dur,
    /// Rolling baseline: each source's own history and the population's, and
    /// the window in which sanctioned scanners are learned.
    pub training_period: Dur,
    /// The window that is judged (and the granularity of the baseline).
    pub test_period: Dur,
    /// At most one alert per source per this period; activity in between is
    /// aggregated into the next alert.
    pub dedup_period: Dur,
    /// A host not seen alive for longer than this is `inactive`.
    pub inactive_after: Dur,
    /// Sources never alerted (sanctioned scanners, monitoring systems).
    pub allowlist: Vec<Cidr>,
    /// The monitored networks: only targets inside are tracked in the
    /// inventory, and by default only sources inside are analysed.
    pub home_net: Vec<Cidr>,
    /// Analyse and alert on sources outside `home_net` too (internet
    /// scanners against a DMZ). Off by default: internet background noise
    /// would drown the rest, and a spoofed-source flood would fill the
    /// analytics' tables (`analyze::SourceScope`).
    pub alert_external_sources: bool,
    /// Distinct failed targets (host, protocol, port) to inactive or
    /// never-seen hosts in one test window that count as an abnormally large
    /// number when no baseline says otherwise. Lower catches smaller scans,
    /// with more false positives from misconfigured clients.
    pub min_failed_targets: u32,
    /// A source's count is abnormal above this multiple of its own largest
    /// daily count in training.
    pub own_baseline_factor: f64,
    /// ... and above this multiple of the population's 99th percentile.
    pub population_factor: f64,
    /// Distinct inactive or never-seen hosts that make an abnormal mixture.
    pub mixture_min_hosts: u32,
    /// Sequential test (Threshold Random Walk, Jung et al. 2004): probability
    /// that a benign source's first contact with a host succeeds ...
    pub trw_benign_success: f64,
    /// ... and that a scanner's does. Further apart decides with fewer probes.
    pub trw_scanner_success: f64,
    /// Target false-positive and detection probabilities of the test. With the
    /// defaults 4 failed first contacts in a row decide.
    pub trw_false_positive: f64,
    pub trw_detection: f64,
    /// Distinct failed ports on one *active* host that make a vertical port
    /// scan (an `informational` variation).
    pub vertical_min_ports: u32,
    /// A source that looked like a scanner on at least this share of the days
    /// observed in the training window ...
    pub scanner_min_share: f64,
    /// ... and on at least this many days, is learned as a sanctioned scanner.
    pub scanner_min_days: u32,
    /// Caps: sources with state, hosts in the inventory, distinct targets
    /// remembered per source and window.
    pub max_sources: usize,
    pub max_hosts: usize,
    pub max_targets_per_source: usize,
    /// Evidence items (entries of the current window's sets: targets, hosts,
    /// contacted hosts, subnets, ports, samples, active hosts and their
    /// ports) all sources together hold. The per-source caps alone would not
    /// bound memory: 200,000 sources of 10,000 targets each. Near the total
    /// a one-off source is forgotten first; when none is, sets stop growing,
    /// `evidence_cap_hit` counts it and the source's next alert says
    /// `failed_targets_capped`. An item takes 24–37 bytes, measured.
    pub max_evidence_items: usize,
    /// Forget a host of the inventory not seen alive for longer than this
    /// (checked once a test window); 0 (the default) never does, below the
    /// cap. A host forgotten is `never_seen` again, which the rules count as
    /// they count `inactive`; shorter frees memory sooner (IPv6 privacy
    /// addresses come and go daily) but loses the `inactive` label, which
    /// alerts show and the mixture rule's "never-seen targets" reads. At
    /// `max_hosts` the stalest hosts are forgotten whatever this says.
    pub forget_hosts_after: Dur,
    /// Failed attempts kept as evidence in each alert.
    pub alert_sample: usize,
}

impl Default for DetectorSection {
    fn default() -> Self {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
        ];
        DetectorSection {
            activation_period: Dur::secs(14 * 86_400),
            training_period: Dur::secs(30 * 86_400),
            test_period: Dur::secs(86_400),
            dedup_period: Dur::secs(86_400),
            inactive_after: Dur::secs(86_400),
            allowlist: Vec::new(),
            home_net: nets
                .iter()
                .map(|n| n.parse().expect("valid default"))
                .collect(),
            alert_external_sources: false,
            min_failed_targets: 20,
            own_baseline_factor: 3.0,
            population_factor: 2.0,
            mixture_min_hosts: 5,
            trw_benign_success: 0.8,
            trw_scanner_success: 0.2,
            trw_false_positive: 0.01,
            trw_detection: 0.99,
            vertical_min_ports: 100,
            scanner_min_share: 0.6,
            scanner_min_days: 7,
            max_sources: 200_000,
            max_hosts: 1_000_000,
            max_targets_per_source: 10_000,
            max_evidence_items: 2_000_000,
            forget_hosts_after: Dur::secs(0),
            alert_sample: 10,
        }
    }
}

/// `[state]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Checkpoint the state database this often, in event time.
    pub checkpoint_interval: Dur,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            checkpoint_interval: Dur::secs(3600),
        }
    }
}

/// `[capture]`: `scanwatch live`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// Network interface of the SPAN/TAP port (`--interface`).
    pub interface: String,
    /// Capture handles in the fanout group, and decode/track threads
    /// (`--threads`); 0 means the number of CPUs, at most 16.
    pub threads: usize,
    /// Bytes kept of each packet: headers are all scanwatch reads.
    pub snaplen: u32,
    /// Kernel ring buffer per handle, bytes. Larger rides out bursts.
    pub buffer_size: u64,
    /// Kernel BPF filter; absent: the default (SYN/FIN/RST and probe-like TCP,
    /// ICMP and ICMPv6 errors, ARP, also under one or two VLAN tags); "" keeps
    /// every packet (needed for capture-gap and ACK-probe inference).
    pub bpf: Option<String>,
    pub promisc: bool,
    /// After opening the capture, switch to this user (when started as root);
    /// falls back to `nobody` when it does not exist.
    pub user: String,
    /// How often a stats line is logged.
    pub stats_interval: Dur,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection {
            interface: String::new(),
            threads: 0,
            snaplen: 256,
            buffer_size: 64 << 20,
            bpf: None,
            promisc: true,
            user: "scanwatch".into(),
            stats_interval: Dur::secs(60),
        }
    }
}

/// `[output]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Alerts as JSON lines: a path, "-" for stdout, "" for none.
    pub alerts: String,
    /// Failed-connection events as JSON lines: a path, "-", or "" for none.
    pub events: String,
    /// `[output.syslog]`: alerts to syslog (RFC 5424 by default) at its
    /// `address`; each `--syslog ADDR` adds a destination with these settings.
    #[serde(deserialize_with = "syslog_table")]
    pub syslog: Option<crate::output::syslog::SyslogConfig>,
}

/// `[output.syslog]` as a table only. serde would also fill the struct
/// from an array, by position: `syslog = ["tcp:siem:514"]` (the sample
/// config's own form until 2026-12-07) worked by accident, and a second
/// element became the format ("unknown variant `udp:...`").
fn syslog_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::output::syslog::SyslogConfig>, D::Error> {
    struct Table;
    impl<'de> serde::de::Visitor<'de> for Table {
        type Value = Option<crate::output::syslog::SyslogConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a table: [output.syslog] with address = \"tcp:HOST:PORT\" and its settings \
                 (more destinations: --syslog ADDR, repeated)",
            )
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_map(Table)
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            alerts: "-".into(),
            events: String::new(),
            syslog: None,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub tracker: TrackerSection,
    pub detector: DetectorSection,
    pub state: StateSection,
    pub capture: CaptureSection,
    pub output: OutputSection,
}

impl Config {
    /// Load `path` (or the defaults), apply `--set` overrides, validate.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
        let (name, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.display().to_string(),
                    error,
                })?,
            ),
            None => ("(defaults)".to_string(), String::new()),
        };
        Config::from_toml(&name, &text, sets)
    }

    pub fn from_toml(name: &str, text: &str, sets: &[String]) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: name.to_string(),
                    message: one_line(&e.to_string()),
                })?;
        // Check the file alone first, so an error in it names its line.
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| ConfigError::Parse {
            path: name.to_string(),
            message: locate(text, &e.to_string()),
        })?;
        for arg in sets {
            apply_set(&mut table, arg)?;
        }
        let cfg =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                path: format!("{name} with --set"),
                message: one_line(&e.to_string()),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the values (after command-line flags changed any, again).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.detector;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if d.test_period.0.is_zero() {
            return bad("detector.test_period must be longer than 0".into());
        }
        if d.training_period < d.test_period && !d.training_period.0.is_zero() {
            return bad(format!(
                "detector.training_period ({}) is shorter than test_period ({})",
                d.training_period, d.test_period
            ));
        }
        if !(0.0 < d.trw_scanner_success
            && d.trw_scanner_success < d.trw_benign_success
            && d.trw_benign_success < 1.0)
        {
            return bad("detector: need 0 < trw_scanner_success < trw_benign_success < 1".into());
        }
        if !(0.0 < d.trw_false_positive
            && d.trw_false_positive < d.trw_detection
            && d.trw_detection < 1.0)
        {
            return bad("detector: need 0 < trw_false_positive < trw_detection < 1".into());
        }
        if !(0.0..=1.0).contains(&d.scanner_min_share) {
            return bad("detector.scanner_min_share must be between 0 and 1".into());
        }
        if d.max_evidence_items == 0 {
            return bad(
                "detector.max_evidence_items must be at least 1: 0 keeps no evidence and never alerts"
                    .into(),
            );
        }
        if !d.forget_hosts_after.0.is_zero() && d.forget_hosts_after.0 < d.inactive_after.0 {
            // It would forget hosts still active: failures to them would
            // count as to never-seen hosts.
            return bad(format!(
                "detector.forget_hosts_after ({}) must be 0 (never) or at least detector.inactive_after ({})",
                d.forget_hosts_after, d.inactive_after
            ));
        }
        if d.home_net.is_empty() {
            return bad("detector.home_net is empty: no target would be tracked".into());
        }
        if self.capture.snaplen < 64 || self.capture.snaplen > 262_144 {
            return bad(format!(
                "capture.snaplen {} is outside 64..=262144 (headers need 64 bytes or more)",
                self.capture.snaplen
            ));
        }
        if self.capture.buffer_size > i32::MAX as u64 {
            return bad("capture.buffer_size must be below 2 GiB".into());
        }
        if self.capture.stats_interval.0.is_zero() {
            return bad("capture.stats_interval must be longer than 0".into());
        }
        let t = &self.tracker;
        if t.syn_timeout.0.is_zero() || t.arp_timeout.0.is_zero() {
            return bad(
                "tracker.syn_timeout and tracker.arp_timeout must be longer than 0 (0 decides every attempt unanswered before its answer)"
                    .into(),
            );
        }
        if d.max_sources == 0 || d.max_targets_per_source == 0 {
            return bad(
                "detector.max_sources and detector.max_targets_per_source must be at least 1: 0 keeps no source or target and never alerts"
                    .into(),
            );
        }
        if d.max_hosts == 0 {
            return bad(
                "detector.max_hosts must be at least 1: 0 keeps no host, and every target would be never_seen"
                    .into(),
            );
        }
        if let Some(sl) = &self.output.syslog {
            sl.validate()
                .map_err(|e| ConfigError::Invalid(format!("output.syslog: {e}")))?;
        }
        if self.state.checkpoint_interval.0.is_zero() {
            return bad("state.checkpoint_interval must be longer than 0".into());
        }
        Ok(())
    }

    /// Check the live capture's settings: `check-config` (the unit's
    /// `ExecStartPre`) and `live` do; a replay, which uses none of them,
    /// does not (a filter naming a host of the sensor's network would not
    /// compile on an analyst's offline machine).
    pub fn validate_capture(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.capture.threads > crate::track::PARTITIONS {
            return bad(format!(
                "capture.threads (--threads) {} is above {} (0 means the number of CPUs, at most 16)",
                self.capture.threads,
                crate::track::PARTITIONS
            ));
        }
        if self.capture.buffer_size == 0 {
            // libpcap would quietly take its own default (2 MiB): a SPAN
            // port's bursts need the ring asked for.
            return bad(
                "capture.buffer_size must be above 0 (bytes of kernel ring per capture thread)"
                    .into(),
            );
        }
        // Each capture thread has its own ring, in locked kernel memory.
        // 0 threads: one a CPU, at most 16, as live takes it.
        let threads = match self.capture.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(16)),
            n => n,
        };
        let rings = (threads as u64).saturating_mul(self.capture.buffer_size);
        if let Some(total) = physical_memory()
            && rings > total / 2
        {
            return bad(format!(
                "capture.threads x capture.buffer_size is {} MiB of kernel ring, more than half of this machine's {} MiB of memory",
                rings >> 20,
                total >> 20
            ));
        }
        if let Some(f) = self.capture.bpf.as_deref().filter(|f| !f.trim().is_empty()) {
            // Compiled for Ethernet, what a SPAN or TAP port delivers: a
            // typo should stop check-config, not the sensor after it opened
            // its capture.
            let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
                .map_err(|e| ConfigError::Invalid(format!("capture.bpf: {e}")))?;
            if let Err(e) = dead.compile(f, true) {
                return bad(format!("capture.bpf (--bpf) does not compile: {e}"));
            }
        }
        Ok(())
    }

    /// The effective settings, as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// The machine's physical memory in bytes, if the system says.
fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions; a negative answer is an error.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| (pages as u64).saturating_mul(size as u64))
}

/// `section.key=value`: the value is read as TOML (numbers, booleans, arrays),
/// else taken as a string, so `--set detector.activation_period=0s` works.
fn apply_set(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |m: &str| ConfigError::Set {
        arg: arg.to_string(),
        message: m.to_string(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value"))?;
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(err("expected a key like detector.activation_period"));
    }
    let value = value.trim();
    let v = match format!("v = {value}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        // A number TOML cannot hold would otherwise become a string, and
        // the error would say "invalid type: string".
        Err(_)
            if value
                .replace('_', "")
                .parse::<i128>()
                .is_ok_and(|n| i64::try_from(n).is_err()) =>
        {
            return Err(err(&format!(
                "{value} is out of range ({} to {})",
                i64::MIN,
                i64::MAX
            )));
        }
        Err(_) => toml::Value::String(value.to_string()),
    };
    let (last, parents) = path.split_last().expect("non-empty");
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| err(&format!("'{p}' is not a section")))?;
    }
    t.insert(last.to_string(), v);
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// serde's message for an unknown key names the key but not the line: find it.
fn locate(text: &str, message: &str) -> String {
    let m = one_line(message);
    if let Some(start) = m.find("unknown field `") {
        let rest = &m[start + 15..];
        if let Some(end) = rest.find('`') {
            let key = &rest[..end];
            if let Some((n, _)) = text.lines().enumerate().find(|(_, l)| {
                let l = l.trim_start();
                l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
                    || l.trim() == format!("[{key}]")
            }) {
                return format!("line {}: {m}", n + 1);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.detector.activation_period, Dur::secs(14 * 86_400));
        assert_eq!(c.detector.training_period, Dur::secs(30 * 86_400));
        assert_eq!(c.detector.test_period, Dur::secs(86_400));
        assert_eq!(c.detector.dedup_period, Dur::secs(86_400));
        assert_eq!(c.detector.inactive_after, Dur::secs(86_400));
        assert_eq!(c.tracker.track_config().syn_timeout, 40_000_000_000);
        let a = |s: &str| Addr::from(s.parse::<IpAddr>().unwrap());
        assert!(in_any(&c.detector.home_net, &a("10.1.2.3")));
        assert!(in_any(&c.detector.home_net, &a("192.168.1.1")));
        assert!(in_any(&c.detector.home_net, &a("fd00::1")));
        assert!(in_any(&c.detector.home_net, &a("fe80::1")));
        assert!(!in_any(&c.detector.home_net, &a("8.8.8.8")));
        assert!(!in_any(&c.detector.home_net, &a("2001:db8::1")));
    }

    #[test]
    fn file_and_overrides() {
        let text = "[detector]\nactivation_period = \"2d\"\nallowlist = [\"10.9.9.9\", \"fd00:1::/64\"]\n\n[tracker]\nsyn_timeout = \"30s\"\n";
        let c = Config::from_toml(
            "x.toml",
            text,
            &[
                "detector.test_period=12h".into(),
                "detector.min_failed_targets=7".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.detector.activation_period, Dur::secs(2 * 86_400));
        assert_eq!(c.detector.test_period, Dur::secs(12 * 3600));
        assert_eq!(c.detector.min_failed_targets, 7);
        assert_eq!(c.tracker.syn_timeout, Dur::secs(30));
        let a = |s: &str| Addr::from(s.parse::<IpAddr>().unwrap());
        assert!(in_any(&c.detector.allowlist, &a("10.9.9.9")));
        assert!(!in_any(&c.detector.allowlist, &a("10.9.9.8")));
        assert!(in_any(&c.detector.allowlist, &a("fd00:1::77")));
    }

    /// `[output.syslog]` must be a table (the error names the key); a key
    /// inside it is checked like any other, with its line.
    #[test]
    fn the_syslog_section_is_a_table() {
        let c = Config::from_toml(
            "x.toml",
            "[output.syslog]\naddress = \"tcp:siem.example.org:514\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.output.syslog.unwrap().address.to_string(),
            "tcp:siem.example.org:514"
        );
        for text in [
            "[output]\nsyslog = [\"unix:/dev/log\"]\n",
            "[output]\nsyslog = [\"tcp:a:514\", \"udp:b:514\"]\n",
            "[output]\nsyslog = \"tcp:a:514\"\n",
        ] {
            let e = Config::from_toml("x.toml", text, &[])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`output.syslog`") && e.contains("expected a table: [output.syslog]"),
                "{text}: {e}"
            );
        }
        let e = Config::from_toml("x.toml", "[output.syslog]\n\nadress = \"unix:/x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("adress"), "{e}");
        assert!(
            Config::from_toml("x.toml", "[output]\n", &[])
                .unwrap()
                .output
                .syslog
                .is_none()
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let text = "[detector]\nactivation_period = \"2d\"\n\nactivaton_period = \"3d\"\n";
        let e = Config::from_toml("x.toml", text, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml") && e.contains("line 4") && e.contains("activaton_period"),
            "{e}"
        );
        let e = Config::from_toml("x.toml", "[detecter]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("detecter"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = Config::from_toml("x.toml", "[detector]\ntest_period = \"soon\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon") && e.contains("duration"), "{e}");
        let e = Config::from_toml("x.toml", "[detector]\nhome_net = [\"10.0.0.0/33\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix length"), "{e}");
        let e = Config::from_toml("x.toml", "", &["detector.training_period=1h".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("shorter than test_period"), "{e}");
        let e = Config::from_toml("x.toml", "", &["detector.max_evidence_items=0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_evidence_items must be at least 1"), "{e}");
        // Values that parse but would quietly blind the sensor, or stop it
        // only after its capture opened: refused by check-config.
        for (set, says) in [
            ("tracker.syn_timeout=0s", "must be longer than 0"),
            ("tracker.arp_timeout=0s", "must be longer than 0"),
            ("detector.max_sources=0", "must be at least 1"),
            (
                "detector.max_hosts=0",
                "detector.max_hosts must be at least 1",
            ),
            ("detector.max_targets_per_source=0", "must be at least 1"),
            (
                "detector.forget_hosts_after=1h",
                "must be 0 (never) or at least detector.inactive_after",
            ),
            (
                "tracker.max_pending=18446744073709551615",
                "18446744073709551615 is out of range",
            ),
        ] {
            let e = Config::from_toml("x.toml", "", &[set.into()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{set}: {e}");
        }
        // The capture's settings: refused by validate_capture (check-config,
        // live), accepted by a replay's load, which does not use them.
        for (set, says) in [
            (
                "capture.threads=65",
                "capture.threads (--threads) 65 is above 64",
            ),
            (
                "capture.bpf=tcp and frobnicate",
                "capture.bpf (--bpf) does not compile",
            ),
            (
                "capture.buffer_size=0",
                "capture.buffer_size must be above 0",
            ),
        ] {
            let c = Config::from_toml("x.toml", "", &[set.into()]).unwrap();
            let e = c.validate_capture().unwrap_err().to_string();
            assert!(e.contains(says), "{set}: {e}");
        }
        // 64 rings of almost 2 GiB: 119 GiB of locked kernel memory.
        let sets = [
            "capture.threads=64".into(),
            "capture.buffer_size=2000000000".into(),
        ];
        let c = Config::from_toml("x.toml", "", &sets).unwrap();
        let e = c.validate_capture().unwrap_err().to_string();
        assert!(e.contains("MiB of kernel ring, more than half"), "{e}");
        for fine in [
            "tracker.max_pending=1",
            "capture.threads=64",
            "capture.threads=0",
            "capture.bpf=",
            "capture.bpf=tcp[tcpflags] & tcp-syn != 0",
        ] {
            Config::from_toml("x.toml", "", &[fine.into()])
                .and_then(|c| c.validate_capture())
                .unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
        let e = Config::from_toml("x.toml", "", &["nonsense".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key=value"), "{e}");
        let e = Config::from_toml("x.toml", "", &["detector.bogus=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn cidr_edges() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&Addr::v4([8, 8, 8, 8])));
        assert!(
            !all.contains(&Addr::v6([
                0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
            ])),
            "IPv4 /0 is IPv4 only"
        );
        // And IPv6 /0 is IPv6 only, though IPv4 is kept IPv4-mapped; the
        // mapped range itself, written so, holds IPv4.
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(!all6.contains(&Addr::v4([8, 8, 8, 8])) && all6.contains(&Addr::v6([0x20; 16])));
        let mapped: Cidr = "::ffff:0:0/96".parse().unwrap();
        assert!(mapped.contains(&Addr::v4([8, 8, 8, 8])));
        assert!("300.1.1.1".parse::<Cidr>().is_err());
    }

    #[test]
    fn effective_settings_round_trip() {
        let c = Config::from_toml("x", "", &["detector.dedup_period=2d".into()]).unwrap();
        let again = Config::from_toml("y", &c.to_toml(), &[]).unwrap();
        assert_eq!(again.detector.dedup_period, Dur::secs(2 * 86_400));
        assert_eq!(again.detector.home_net, c.detector.home_net);
    }
}
