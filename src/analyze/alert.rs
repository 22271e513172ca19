//! The alert: one JSON line, EVE naming, with the evidence an analyst needs.
//!
//! ```json
//! {"timestamp":"2024-03-16T10:00:00.034000Z","decided_at":"2024-03-16T10:00:45.034000Z",
//!  "event_type":"alert","src_ip":"10.10.2.66",
//!  "alert":{"signature":"Failed Connections","severity":"low","category":"Discovery",
//!           "mitre_tactic_id":"TA0007","mitre_tactic_name":"Discovery",
//!           "mitre_technique_id":"T1018","mitre_technique_name":"Remote System Discovery",
//!           "variation":"sequential_test","rules":["sequential_test","count"]},
//!  "summary":"10.10.2.66 failed to reach 4 never-seen hosts ...",
//!  "evidence":{"window_start":..., "first_attempt":..., "last_attempt":...,
//!              "failed_attempts":4, "failed_targets":4, "failed_attempts_all_targets":4,
//!              "by_target_state":{"never_seen":4,"inactive":0,"active":0},
//!              "by_reason":{"unanswered":4}, "distinct_hosts":4, "never_seen_hosts":4,
//!              "inactive_hosts":0, "distinct_ports":1, "subnets":["10.10.5.0/24"], "ports":[445],
//!              "baseline":{"threshold_failed_targets":20,"own_max_failed_targets":null,
//!                          "population_p99_failed_targets":3,"training_windows":0},
//!              "sequential_test":{"score":5.55,"decision_threshold":4.6,
//!                                 "first_contact_failures":4,"first_contact_successes":0},
//!              "sample":[{"timestamp":...,"dest_ip":...,"dest_port":445,"proto":"TCP",
//!                         "reason":"unanswered","target_state":"never_seen","community_id":"1:..."}]},
//!  "previous_alert":{"timestamp":...,"failed_attempts_since":812,"new_subnets":[...],"new_ports":[...]}}
//! ```
//!
//! `timestamp` is the event time of the probe that completed the evidence (the
//! first probe of the attempt whose failure decided the alert), as EVE stamps
//! an alert with its triggering packet; `decided_at` is when that failure was
//! known, up to `syn_timeout` later for an unanswered probe, which is when a
//! live sensor emits the alert.
//!
//! `previous_alert` appears when the source was alerted before (at most once
//! per `dedup_period`): what it did since, and which subnets and ports are new.

use serde_json::{Value, json};

use super::source::{Source, Verdict, subnet_str};
use crate::decode::{Addr, Proto};
use crate::output::{community_id, proto_name, time::rfc3339};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Low,
    Informational,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Informational => "informational",
        }
    }
}

/// The baseline figures the rules used, and where the window starts.
pub struct Baseline {
    pub own_max: Option<u32>,
    pub population_p99: Option<u32>,
    pub threshold: u32,
    pub training_windows: usize,
    /// The sequential test's decision threshold.
    pub trw_decide: f64,
    pub window_start: i64,
}

/// One alert, formatted.
#[derive(Clone, Debug)]
pub struct Alert {
    pub ts: i64,
    pub src: Addr,
    pub severity: Severity,
    pub variation: &'static str,
    /// The JSON object, on one line, without the newline.
    pub json: String,
}

/// Live hosts an alert lists, and failed ports shown for each.
const ACTIVE_HOSTS_SHOWN: usize = 4;
const ACTIVE_PORTS_SHOWN: usize = 64;

fn t(ns: i64) -> String {
    let mut s = String::new();
    rfc3339(ns, &mut s);
    s
}

fn list<T: std::fmt::Display>(v: &[T], max: usize) -> String {
    let mut s: Vec<String> = v.iter().take(max).map(|x| x.to_string()).collect();
    if v.len() > max {
        s.push(format!("and {} more", v.len() - max));
    }
    s.join(", ")
}

impl Alert {
    /// `ts`: first probe of the attempt that completed the evidence; `decided`:
    /// when its failure was known (a timeout can come 40 s after the probe).
    /// `deferred`: the evidence fired a rule during the dedup period of the
    /// previous alert, and both times are when that period ended.
    pub(super) fn new(
        src: Addr,
        (ts, decided): (i64, i64),
        variation: &'static str,
        v: &Verdict,
        s: &Source,
        b: &Baseline,
        deferred: bool,
    ) -> Alert {
        let (trw_decide, window_start) = (b.trw_decide, b.window_start);
        let severity = match variation {
            "sequential_test" | "count_and_mixture" => Severity::Low,
            _ => Severity::Informational,
        };
        let mut rules = Vec::new();
        if v.trw {
            rules.push("sequential_test");
        }
        if v.count {
            rules.push("count");
        }
        if v.mixture() {
            rules.push("mixture");
        }
        if v.vertical {
            rules.push("vertical_scan");
        }
        let subnets: Vec<String> = s.subnets.iter().map(subnet_str).collect();
        let ports: Vec<u16> = s.ports.iter().copied().collect();
        let reasons: serde_json::Map<String, Value> = s
            .reasons()
            .into_iter()
            .map(|(r, n)| (r.name().to_string(), json!(n)))
            .collect();
        let sample: Vec<Value> = s
            .sample
            .iter()
            .map(|x| {
                let mut o = json!({
                    "timestamp": t(x.ts),
                    "dest_ip": x.key.dst.to_string(),
                    "proto": proto_name(x.key.proto),
                    "reason": x.reason.name(),
                    "probe": x.probe.name(),
                    "target_state": x.state.name(),
                });
                if matches!(x.key.proto, Proto::Tcp | Proto::Udp) {
                    o["src_port"] = json!(x.key.sport);
                    o["dest_port"] = json!(x.key.dport);
                }
                if let Some(id) = community_id(&x.key) {
                    o["community_id"] = json!(id);
                }
                o
            })
            .collect();
        let mut top_active: Vec<(Addr, usize)> =
            s.active_ports.iter().map(|(a, p)| (*a, p.len())).collect();
        top_active.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // The live hosts it failed on, most failed ports first: what a
        // vertical scan's analyst asks first (which host, which services).
        let active_hosts: Vec<Value> = top_active
            .iter()
            .take(ACTIVE_HOSTS_SHOWN)
            .map(|(h, n)| {
                let mut ports: Vec<(Proto, u16)> = s
                    .active_ports
                    .iter()
                    .find(|(a, _)| *a == h)
                    .map(|(_, p)| p.iter().copied().collect())
                    .unwrap_or_default();
                ports.sort_unstable();
                let shown: Vec<String> = ports
                    .iter()
                    .take(ACTIVE_PORTS_SHOWN)
                    .map(|&(p, port)| match p {
                        Proto::Tcp | Proto::Udp => format!("{}/{port}", proto_name(p)),
                        _ => proto_name(p).into_owned(),
                    })
                    .collect();
                json!({"dest_ip": h.to_string(), "failed_ports": n, "ports": shown})
            })
            .collect();
        let mut summary = summary(src, variation, s, &subnets, &ports, top_active.first());
        if deferred {
            summary.push_str(" Held back until the dedup period of the previous alert ended.");
        }
        let mut o = json!({
            "timestamp": t(ts),
            "decided_at": t(decided),
            "event_type": "alert",
            "src_ip": src.to_string(),
            "alert": {
                "signature": "Failed Connections",
                "severity": severity.name(),
                "category": "Discovery",
                "mitre_tactic_id": "TA0007",
                "mitre_tactic_name": "Discovery",
                "mitre_technique_id": "T1018",
                "mitre_technique_name": "Remote System Discovery",
                "variation": variation,
                "rules": rules,
                "mixture": v.mixture,
            },
            "summary": summary,
            "evidence": {
                "window_start": t(window_start),
                "first_attempt": if s.first_ts == i64::MAX { Value::Null } else { json!(t(s.first_ts)) },
                "last_attempt": if s.last_ts == i64::MIN { Value::Null } else { json!(t(s.last_ts)) },
                "failed_attempts": s.attempts,
                "failed_attempts_all_targets": s.attempts_all,
                "failed_targets": s.targets.len(),
                "failed_targets_capped": s.targets_full,
                "by_target_state": {"never_seen": s.by_state[2], "inactive": s.by_state[1], "active": s.by_state[0]},
                "by_reason": reasons,
                "distinct_hosts": s.hosts.len(),
                "never_seen_hosts": s.never_hosts,
                "inactive_hosts": s.inactive_hosts,
                "distinct_ports": s.ports.len(),
                "subnets": subnets,
                "ports": ports,
                "max_failed_ports_on_active_host": s.max_active_ports,
                "active_hosts": active_hosts,
                "baseline": {
                    "threshold_failed_targets": b.threshold,
                    "own_max_failed_targets": b.own_max,
                    "population_p99_failed_targets": b.population_p99,
                    "training_windows": b.training_windows,
                },
                "sequential_test": {
                    "score": (s.trw * 100.0).round() / 100.0,
                    "decision_threshold": (trw_decide * 100.0).round() / 100.0,
                    "first_contact_failures": s.trw_fail,
                    "first_contact_successes": s.trw_succ,
                },
                "sample": sample,
                "deferred_by_dedup": deferred,
            },
        });
        if let Some(l) = &s.last_alert {
            let new_subnets: Vec<String> = s
                .subnets
                .iter()
                .filter(|n| !l.subnets.contains(n))
                .map(subnet_str)
                .collect();
            let new_ports: Vec<u16> = s
                .ports
                .iter()
                .filter(|p| !l.ports.contains(p))
                .copied()
                .collect();
            o["previous_alert"] = json!({
                "timestamp": t(l.at.unwrap_or(l.ts)),
                "failed_attempts_since": s.since_alert,
                "new_subnets": new_subnets,
                "new_ports": new_ports,
            });
        }
        Alert {
            ts,
            src,
            severity,
            variation,
            json: o.to_string(),
        }
    }
}

fn summary(
    src: Addr,
    variation: &str,
    s: &Source,
    subnets: &[String],
    ports: &[u16],
    vertical: Option<&(Addr, usize)>,
) -> String {
    let span = if s.first_ts <= s.last_ts {
        let mut a = String::new();
        rfc3339(s.first_ts, &mut a);
        let mut b = String::new();
        rfc3339(s.last_ts, &mut b);
        format!(" between {} and {}", &a[..19].replace('T', " "), &b[11..19])
    } else {
        String::new()
    };
    if let ("vertical_scan", Some((h, n))) = (variation, vertical) {
        return format!(
            "{src} failed on {n} ports or protocols of the live host {h} ({} failed attempts in all){span}: a vertical port scan.",
            s.attempts_all
        );
    }
    let ports = if ports.is_empty() {
        String::new()
    } else {
        format!(" on {} port(s) ({})", ports.len(), list(ports, 6))
    };
    let unresolved = s.by_reason[crate::track::Reason::Unresolved as usize];
    let arp = if unresolved > 0 {
        format!(", {unresolved} of them ARP requests nobody answered")
    } else {
        String::new()
    };
    let what = format!(
        "{src} failed to reach {} never-seen and {} inactive host(s) ({} distinct targets, {} failed attempts{arp}) in {} subnet(s) ({}){ports}{span}",
        s.never_hosts,
        s.inactive_hosts,
        s.targets.len(),
        s.attempts,
        subnets.len(),
        list(subnets, 4),
    );
    let why = match variation {
        "sequential_test" => format!(
            "; {} failed first contacts against {} successful ones decided the sequential test",
            s.trw_fail, s.trw_succ
        ),
        "count_and_mixture" => {
            "; both the number and the mixture of failures are abnormal for it".to_string()
        }
        "count" => "; the number of failures is abnormal for it, their mixture is not".to_string(),
        _ => String::new(),
    };
    format!("{what}{why}.")
}
