//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod lab;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use scanwatch::analyze::Analytics;
use scanwatch::config::Config;
use scanwatch::pipeline::{Analysis, Progress, ReplayConfig, RunOutcome, replay};

/// `../shared/pcaps/real/NAME`: the third-party captures beside the repo.
pub fn real(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/pcaps/real")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: the real captures must sit beside the repo",
        p.display()
    );
    p
}

/// Every capture in ../shared/pcaps/real, sorted by name.
pub fn all_real() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps/real");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    assert_eq!(
        v.len(),
        41,
        "expected the 41 captures listed in PROVENANCE.md"
    );
    v
}

/// A Write that keeps what it is given, shared with the test.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replay `paths` with `threads` workers; returns the outcome and the event lines.
pub fn run(paths: &[PathBuf], threads: usize) -> (RunOutcome, Vec<u8>) {
    let buf = SharedBuf::default();
    let cfg = ReplayConfig {
        threads,
        ..ReplayConfig::default()
    };
    let out = replay(
        paths,
        &cfg,
        Some(Box::new(buf.clone())),
        None,
        Arc::new(Progress::default()),
    )
    .expect("replay");
    let bytes = buf.0.lock().unwrap().clone();
    (out, bytes)
}

/// Parsed event lines.
pub fn events(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// Number of events with this reason and probe.
pub fn count(ev: &[serde_json::Value], reason: &str, probe: &str) -> usize {
    ev.iter()
        .filter(|e| e["reason"] == reason && e["probe"] == probe)
        .count()
}

/// Replay with the analytics on, configured by `--set`-style overrides;
/// returns the outcome and the alert lines.
pub fn run_alerts(paths: &[PathBuf], threads: usize, sets: &[&str]) -> (RunOutcome, Vec<u8>) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::from_toml("test", "", &sets).expect("test config");
    let buf = SharedBuf::default();
    let cfg = ReplayConfig {
        threads,
        track: config.tracker.track_config(),
    };
    let analysis = Analysis {
        analytics: Analytics::new(config.detector.clone()),
        alerts: Some(Box::new(buf.clone())),
        sinks: Vec::new(),
        event_sinks: Vec::new(),
        checkpoint: None,
    };
    let out = replay(
        paths,
        &cfg,
        None,
        Some(analysis),
        Arc::new(Progress::default()),
    )
    .expect("replay");
    let bytes = buf.0.lock().unwrap().clone();
    (out, bytes)
}
