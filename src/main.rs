//! The `scanwatch` command: flags and wiring only; the work is in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use scanwatch::decode::Skip;
use scanwatch::output::open_sink;
use scanwatch::pipeline::{Progress, ReplayConfig, RunError, RunOutcome, replay};
use scanwatch::track::{PARTITIONS, Reason, TrackConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Find network reconnaissance through failed connections.
///
/// scanwatch reads packets (capture files, or later a mirror port), infers every
/// failed connection attempt (rejected by RST, unanswered, ICMP-unreachable,
/// unresolved ARP) and reports them as JSON lines.
#[derive(Parser, Debug)]
#[command(name = "scanwatch", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No summary or progress bar on stderr; warnings and errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay capture files (pcap or pcapng) through the pipeline.
    ///
    /// Files are read in the order given, as one continuous capture: attempts
    /// started in one file can be answered in the next. Packet timestamps drive
    /// every timer. The output is the same for any number of threads.
    ///
    /// Exit status: 0 when every file was read, 2 when a file could not be
    /// read or was damaged (every packet before the damage is still processed),
    /// 1 on other errors.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture files, read in this order ("-" reads standard input).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,
    /// Write one JSON line per failed connection attempt to PATH ("-" for stdout).
    #[arg(long, value_name = "PATH|-")]
    events: Option<PathBuf>,
    /// Decode workers and tracker shards (1 to 64). The output does not depend
    /// on it. Default: the number of CPUs, at most 16.
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    /// Seconds after an attempt's last SYN before it counts as unanswered.
    /// Above Linux's largest retransmission gap (32 s) so that one connect()
    /// stays one attempt; longer holds more state in a SYN flood.
    #[arg(long, value_name = "SECONDS", default_value_t = 40.0)]
    syn_timeout: f64,
    /// Seconds after the last ARP request before the address counts as unresolved.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    arp_timeout: f64,
    /// Seconds of timestamp disorder tolerated between packets.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    reorder_tolerance: f64,
    /// Most connection attempts held at once; new ones beyond it are counted and dropped.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    max_pending: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // `scanwatch replay --events - x.pcap | head`: the reader left; not an error.
            if let Some(RunError::Output(io)) = e.downcast_ref::<RunError>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("scanwatch: {e:#}");
            match e.downcast_ref::<RunError>() {
                Some(RunError::Capture(_) | RunError::Threads(_)) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .init();
}

fn secs(s: f64, what: &str) -> anyhow::Result<i64> {
    anyhow::ensure!(
        (0.0..1e9).contains(&s),
        "--{what} must be a number of seconds ≥ 0, not {s}"
    );
    Ok((s * 1e9) as i64)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cmd::Replay(a) = cli.cmd;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16)
    });
    let cfg = ReplayConfig {
        threads,
        track: TrackConfig {
            syn_timeout: secs(a.syn_timeout, "syn-timeout")?,
            arp_timeout: secs(a.arp_timeout, "arp-timeout")?,
            reorder_tolerance: secs(a.reorder_tolerance, "reorder-tolerance")?,
            max_pending: a.max_pending.max(PARTITIONS),
        },
    };
    let sink = match &a.events {
        Some(p) => Some(
            open_sink(p).with_context(|| format!("cannot open events file '{}'", p.display()))?,
        ),
        None => None,
    };
    let progress = Arc::new(Progress::default());
    let bar = (!cli.quiet && std::io::stderr().is_terminal())
        .then(|| progress_bar(&a.pcaps, progress.clone()));
    let result = replay(&a.pcaps, &cfg, sink, progress);
    if let Some((pb, stop)) = bar {
        stop.store(1, Ordering::Relaxed);
        pb.finish_and_clear();
    }
    let outcome = result?;
    for p in &outcome.problems {
        if p.is_error() {
            tracing::error!("{p}");
        } else {
            tracing::warn!("{p}");
        }
    }
    if !cli.quiet {
        eprint!("{}", summary(&outcome, threads));
    }
    Ok(if outcome.problems.iter().any(|p| p.is_error()) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar over the total input size, fed by the reader's byte counter.
fn progress_bar(
    paths: &[PathBuf],
    progress: Arc<Progress>,
) -> (indicatif::ProgressBar, Arc<std::sync::atomic::AtomicU64>) {
    let total: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let stop = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (pb2, stop2) = (pb.clone(), stop.clone());
    std::thread::spawn(move || {
        while stop2.load(Ordering::Relaxed) == 0 {
            pb2.set_position(progress.bytes.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (pb, stop)
}

fn summary(o: &RunOutcome, threads: usize) -> String {
    use std::fmt::Write;
    let s = &o.stats;
    let t = &s.track;
    let secs = s.wall.as_secs_f64().max(1e-9);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scanwatch replay: {} file(s), {} packets, {} bytes captured ({} on the wire), {:.3} s, {:.0} packets/s, {} thread(s)",
        s.files,
        s.packets,
        s.bytes_captured,
        s.bytes_wire,
        secs,
        s.packets as f64 / secs,
        threads
    );
    let skipped: Vec<String> = Skip::ALL
        .iter()
        .filter(|k| s.skipped(**k) > 0)
        .map(|k| format!("{} {}", k.name(), s.skipped(*k)))
        .collect();
    let _ = writeln!(
        out,
        "  kept: {} interesting, {} established-flow segments; skipped: {}",
        s.interesting,
        s.established,
        if skipped.is_empty() {
            "none".into()
        } else {
            skipped.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  attempts: {} SYN ({} retransmissions), {} stealth probes; {} succeeded ({} seen only through a capture gap)",
        t.syn_attempts, t.retransmissions, t.stealth_probes, t.successes, t.capture_gaps
    );
    let failed: Vec<String> = Reason::ALL
        .iter()
        .map(|r| format!("{} {}", r.name(), t.failed(*r)))
        .collect();
    let _ = writeln!(
        out,
        "  failed: {}; events written: {}",
        failed.join(", "),
        s.events
    );
    let _ = writeln!(
        out,
        "  unmatched: {} SYN-ACK, {} RST, {} ICMP errors ({} with another ISN); cap hits: {} attempts dropped (peak {} held)",
        t.synack_unmatched,
        t.rst_unmatched,
        t.icmp_unmatched,
        t.icmp_seq_mismatch,
        t.pending_cap_dropped,
        t.peak_pending
    );
    if s.oversize_records > 0 {
        let _ = writeln!(
            out,
            "  note: {} records longer than their file's snaplen were read as they are",
            s.oversize_records
        );
    }
    out
}
