//! The `scanwatch` command: flags and wiring only; the work is in the library.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use scanwatch::analyze::Analytics;
use scanwatch::config::{Config, ConfigError};
use scanwatch::decode::{Addr, Skip};
use scanwatch::output::open_sink;
use scanwatch::pipeline::{
    Analysis, Checkpoint, Progress, ReplayConfig, RunError, RunOutcome, replay,
};
use scanwatch::state::StateDb;
use scanwatch::track::{Reason, Seen};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults favour speed over footprint: freed pages are purged
/// after a delay, and with transparent huge pages each first touch of a
/// 2 MiB range commits (and zeroes) all of it. A sensor's memory should be
/// its caps: purge at once and map 4 KiB pages (but for the tables the
/// tracker advises for huge pages, `track::huge`). Measured on the 5M-packet
/// flood bench (2-vCPU VM): peak 658 → 519 MB, system time 2.3 → 1.4 s; on
/// the 15M-packet enterprise capture CPU time 2.55 → 2.24 s (fewer pages
/// zeroed). The option id is from mimalloc v3's `mi_option_t`
/// (libmimalloc-sys 0.1.49, pinned in Cargo.lock); a user's MIMALLOC_*
/// environment variables still win, as this sets only the default.
fn tune_allocator() {
    unsafe extern "C" {
        fn mi_option_set_default(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    const PURGE_DELAY: std::ffi::c_int = 15;
    // Linux 6.18: THP stay off except where the program asks for them with
    // MADV_HUGEPAGE (the tracker's sketch, liveness cache and attempt tables
    // at their cap, see `track::huge`).
    const PR_THP_DISABLE_EXCEPT_ADVISED: std::ffi::c_ulong = 1 << 1;
    // SAFETY: a plain setter of mimalloc's option table and prctls on this
    // process, called before any thread but main exists.
    unsafe {
        mi_option_set_default(PURGE_DELAY, 0);
        // Transparent huge pages under mimalloc's heap cost ~150 MB of peak on
        // the flood for nothing measurable, so they are turned off for the
        // process, but for the regions advised for them where the kernel can
        // tell the two apart. An older kernel cannot: there they stay on only
        // where the system gives them to advised regions alone (`madvise`
        // mode, which mimalloc never asks for).
        if libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1,
            PR_THP_DISABLE_EXCEPT_ADVISED,
            0,
            0,
        ) != 0
            && std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                .is_ok_and(|m| m.contains("[always]"))
        {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Find network reconnaissance through failed connections.
///
/// scanwatch reads packets (capture files, or a mirror port), infers every
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
    /// every timer. Alerts go to stdout unless --alerts says otherwise; failed
    /// connection events go to --events. The output is the same for any number
    /// of threads.
    ///
    /// Exit status: 0 when every file was read (and, with --state, the final
    /// checkpoint was saved), 2 when a file could not be read or was damaged
    /// (every packet before the damage is still processed) or the
    /// configuration is wrong, 1 on other errors, among them a final
    /// checkpoint that failed: the state directory then holds the last one
    /// that succeeded. Checkpoints that failed during the run (a full disk)
    /// but were followed by one that succeeded are reported in the summary
    /// and do not change the status.
    Replay(ReplayArgs),
    /// Watch a network interface (a SPAN or TAP port) and alert as it goes.
    ///
    /// Opens the interface with libpcap (several handles in a PACKET_FANOUT
    /// group, a kernel BPF filter keeping only what the tracker needs), then
    /// switches to an unprivileged user, then runs the pipeline until SIGINT
    /// or SIGTERM, when it flushes pending attempts and alerts, checkpoints
    /// the state and exits. SIGHUP reopens the output files. A stats line is
    /// logged every capture.stats_interval. Needs CAP_NET_RAW.
    ///
    /// A checkpoint that fails (a full disk, a file system gone read-only) is
    /// logged, counted (scanwatch_checkpoint_errors_total) and tried again at
    /// the next interval; capture and alerts go on. A state directory that
    /// cannot be written at start but holds an intact database is loaded
    /// read-only: the sensor says so once and runs without saving (each
    /// checkpoint counts as failed, and saving resumes if the directory
    /// becomes writable). A state that cannot be read is an error.
    ///
    /// Exit status: 0 when the final checkpoint was saved (or there is no
    /// --state), even if some failed before it (the summary says how many);
    /// 1 when the final checkpoint failed (the state directory holds the last
    /// one that succeeded) or on other errors; 2 when the configuration is
    /// wrong.
    Live(LiveArgs),
    /// Show what the inventory knows of a host (or of all hosts): when it was
    /// last seen alive, and how.
    Hosts {
        /// The state directory of a replay or live run.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// One address; all hosts when absent.
        addr: Option<std::net::IpAddr>,
    },
    /// List the sources learned as sanctioned scanners (suppressed).
    Scanners {
        /// The state directory of a replay or live run.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
    },
    /// Validate a configuration and print the effective settings.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(clap::Args, Debug)]
struct ConfigArgs {
    /// TOML configuration file (the defaults apply without one).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. --set detector.activation_period=0s (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct LiveArgs {
    /// The interface to capture on (capture.interface).
    #[arg(long, short = 'i', value_name = "IF")]
    interface: Option<String>,
    /// Capture handles and decode/track threads, 1 to 64 (capture.threads;
    /// default, or 0: the number of CPUs, at most 16).
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    /// Kernel BPF filter instead of the default ("" keeps every packet).
    #[arg(long, value_name = "FILTER")]
    bpf: Option<String>,
    /// Alerts as JSON lines to PATH ("-" for stdout; output.alerts).
    #[arg(long, value_name = "PATH|-")]
    alerts: Option<String>,
    /// Failed-connection events as JSON lines to PATH (output.events).
    #[arg(long, value_name = "PATH|-")]
    events: Option<String>,
    /// Send alerts to syslog: unix:PATH, udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT
    /// (repeatable; output.syslog).
    #[arg(long, value_name = "ADDR")]
    syslog: Vec<String>,
    /// State directory (inventory, baselines, scanners, dedup, syslog spool).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// If the state database is damaged, keep it aside and start from nothing
    /// (without this, a damaged state is an error).
    #[arg(long)]
    reset_state: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture files, read in this order ("-" reads standard input).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,
    /// Write one JSON line per failed connection attempt to PATH ("-" for stdout).
    #[arg(long, value_name = "PATH|-")]
    events: Option<PathBuf>,
    /// Write alerts (JSON lines) to PATH instead of stdout.
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    alerts: PathBuf,
    /// Also send alerts to syslog: unix:PATH, udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT
    /// (repeatable; settings from [output.syslog]).
    #[arg(long, value_name = "ADDR")]
    syslog: Vec<String>,
    /// Keep the inventory, baselines, learned scanners and dedup in DIR
    /// (SQLite), and continue from what is there. Without it, state lives in
    /// memory for the run.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// If the state database is damaged, keep it aside and start from nothing
    /// (without this, a damaged state is an error).
    #[arg(long)]
    reset_state: bool,
    /// Decode workers and tracker shards (1 to 64). The output does not depend
    /// on it. Default: the number of CPUs, at most 16.
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    tune_allocator();
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
            if e.downcast_ref::<UsageError>().is_some() {
                return ExitCode::from(2);
            }
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
    // Colours only for a person at a terminal: journald, a pipe or a log
    // shipper would get the escape codes as text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Replay(a) => replay_cmd(a, cli.quiet),
        Cmd::Live(a) => live_cmd(a, cli.quiet),
        Cmd::Hosts { state, addr } => hosts_cmd(&state, addr),
        Cmd::Scanners { state } => scanners_cmd(&state),
        Cmd::CheckConfig { config } => {
            let cfg = load_config(&config)?;
            cfg.validate_capture().map_err(UsageError::Config)?;
            print!("{}", cfg.to_toml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A configuration or argument error is the user's input: exit status 2.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Args(String),
}

fn load_config(c: &ConfigArgs) -> anyhow::Result<Config> {
    Ok(Config::load(c.config.as_deref(), &c.sets).map_err(UsageError::Config)?)
}

fn replay_cmd(a: ReplayArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(&a.config)?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16)
    });
    let cfg = ReplayConfig {
        threads,
        track: config.tracker.track_config(),
    };
    // Check the inputs before touching the state or the outputs.
    check_paths(&a)?;
    check_syslog_flags(&a.syslog)?;
    scanwatch::pipeline::check_inputs(&a.pcaps).map_err(RunError::Capture)?;
    let mut db = match &a.state {
        Some(dir) => Some(StateDb::open_or_quarantine(dir, a.reset_state)?),
        None => None,
    };
    let analytics = match &db {
        Some(db) => db.load(config.detector.clone())?,
        None => Analytics::new(config.detector.clone()),
    };
    // The counters are saved with the state: the summary shows this run's.
    let stats_at_start = analytics.stats.clone();
    let health = Arc::new(CheckpointHealth::default());
    let checkpoint = db
        .take()
        .map(|db| checkpoint(db, config.state.checkpoint_interval.ns(), health.clone()));
    let alerts = open_sink(&a.alerts)
        .with_context(|| format!("cannot open alerts file '{}'", a.alerts.display()))?;
    let events = match &a.events {
        Some(p) => Some(
            open_sink(p).with_context(|| format!("cannot open events file '{}'", p.display()))?,
        ),
        None => None,
    };
    let sinks = scanwatch::output::syslog_sinks(
        config.output.syslog.as_ref(),
        &a.syslog,
        a.state.as_deref(),
    )?;
    let event_sinks =
        scanwatch::output::syslog_event_sinks(config.output.syslog.as_ref(), &a.syslog)?;
    let syslog_stats = SyslogCounters {
        alerts: sinks.iter().map(|s| s.stats()).collect(),
        events: event_sinks.iter().map(|s| s.stats()).collect(),
    };
    let analysis = Analysis {
        analytics,
        alerts: Some(alerts),
        sinks: sinks
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn scanwatch::pipeline::AlertSink>)
            .collect(),
        event_sinks: event_sinks
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn scanwatch::pipeline::EventSink>)
            .collect(),
        checkpoint,
    };
    let progress = Arc::new(Progress::default());
    let bar = (!quiet && std::io::stderr().is_terminal())
        .then(|| progress_bar(&a.pcaps, progress.clone()));
    let result = replay(&a.pcaps, &cfg, events, Some(analysis), progress);
    if let Some((pb, stop)) = bar {
        stop.store(1, Ordering::Relaxed);
        pb.finish_and_clear();
    }
    let mut outcome = result?;
    this_runs_counts(&mut outcome, &stats_at_start);
    for p in &outcome.problems {
        if p.is_error() {
            tracing::error!("{p}");
        } else {
            tracing::warn!("{p}");
        }
    }
    report_checkpoints(&outcome, &health, a.state.as_deref());
    // Said as a warning too (-q keeps warnings): the events and alerts of
    // such a run are not to be trusted as they are.
    if let Some(t) = time_problem(&outcome.stats.time) {
        tracing::warn!("timestamps: {t}");
    }
    if !quiet {
        eprint!("{}", summary(&outcome, threads, &health));
        if let Some(l) = syslog_stats.summary() {
            eprintln!("  {l}");
        }
    }
    // Lost to syslog is said even with -q: an analyst may rely on the SIEM.
    if let Some(w) = syslog_stats.losses() {
        tracing::warn!("{w}");
    }
    let code = if outcome.problems.iter().any(|p| p.is_error()) {
        ExitCode::from(2)
    } else if health.final_failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // The process ends here: freeing the detector's state one allocation at
    // a time (hundreds of thousands of sources after a flood) only delays
    // the exit; the kernel takes the pages back at once. Everything was
    // written and checkpointed already.
    std::mem::forget(outcome);
    Ok(code)
}

/// A `--syslog` address that does not parse is a usage error (exit 2), as
/// the same address in the configuration is.
fn check_syslog_flags(addrs: &[String]) -> Result<(), UsageError> {
    for a in addrs {
        if let Err(e) = a.parse::<scanwatch::output::syslog::SyslogAddr>() {
            return Err(UsageError::Args(format!("--syslog '{a}': {e}")));
        }
    }
    Ok(())
}

/// Refuse what would destroy evidence or mix outputs before anything is
/// opened: an output file that is one of the captures (opening it for
/// writing empties it) or the other output (their lines would interleave
/// and overwrite each other), and standard input read twice.
fn check_paths(a: &ReplayArgs) -> Result<(), UsageError> {
    use std::os::unix::fs::MetadataExt;
    let stdin = Path::new("-");
    if a.pcaps.iter().filter(|p| p.as_path() == stdin).count() > 1 {
        return Err(UsageError::Args(
            "standard input (\"-\") can be replayed only once".into(),
        ));
    }
    // A regular file's identity; devices (/dev/null), pipes and terminals
    // are not files anything could overwrite. `-` is what standard input
    // (a capture) or standard output (an output) is: `< cap.pcap` with
    // `--events cap.pcap` would empty the capture, `--events /dev/stdout`
    // with alerts on `-` opens the file a second time, at offset 0.
    let regular = |m: std::fs::Metadata| m.is_file().then(|| (m.dev(), m.ino()));
    let fd = |n: i32| {
        // SAFETY: fstat(2) into a zeroed stat of our own; on failure (fd
        // closed) nothing is read from it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::fstat(n, &mut st) } == 0;
        (ok && st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((st.st_dev, st.st_ino))
    };
    let id = |p: &Path, std_fd: i32| {
        if p == stdin {
            fd(std_fd)
        } else {
            std::fs::metadata(p).ok().and_then(regular)
        }
    };
    let mut outputs = vec![("--alerts", a.alerts.as_path())];
    if let Some(e) = &a.events {
        outputs.push(("--events", e.as_path()));
    }
    for (flag, out) in &outputs {
        if let Some(o) = id(out, 1)
            && let Some(input) = a.pcaps.iter().find(|p| id(p, 0) == Some(o))
        {
            return Err(UsageError::Args(format!(
                "{flag} '{}' is the capture '{}': writing to it would erase it",
                out.display(),
                input.display()
            )));
        }
    }
    // Both on `-` share standard output, one file offset: their lines
    // interleave, whole (said in the README).
    if let [(_, x), (_, y)] = outputs.as_slice()
        && !(*x == stdin && *y == stdin)
    {
        let same = match (id(x, 1), id(y, 1)) {
            (Some(i), Some(j)) => i == j,
            _ => *x != stdin && *y != stdin && same_new_file(x, y),
        };
        if same {
            return Err(same_outputs(x, y));
        }
    }
    Ok(())
}

/// The directory a file path is in (`.` for a bare name).
fn dir_of(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Two output paths name one file not created yet: the same name, its
/// directory resolved.
fn same_new_file(x: &Path, y: &Path) -> bool {
    let named = |p: &Path| {
        Some((
            std::fs::canonicalize(dir_of(p)).ok()?,
            p.file_name()?.to_owned(),
        ))
    };
    !x.exists() && named(x).is_some() && named(x) == named(y)
}

fn same_outputs(x: &Path, y: &Path) -> UsageError {
    UsageError::Args(format!(
        "--alerts '{}' and --events '{}' are the same file: give each its own",
        x.display(),
        y.display()
    ))
}

/// Whether this process may create files in `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Live's outputs (appended to, "" for none, "-" for stdout): one file for
/// both is refused, as in replay (alerts would be buried among events).
fn check_live_outputs(alerts: &str, events: &str) -> Result<(), UsageError> {
    use std::os::unix::fs::MetadataExt;
    if alerts.is_empty() || events.is_empty() || alerts == "-" || events == "-" {
        return Ok(());
    }
    let (x, y) = (Path::new(alerts), Path::new(events));
    let id = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
    };
    let same = match (id(x), id(y)) {
        (Some(i), Some(j)) => i == j,
        _ => same_new_file(x, y),
    };
    if same {
        return Err(same_outputs(x, y));
    }
    Ok(())
}

fn threads_or_cpus(n: usize) -> usize {
    if n > 0 {
        return n;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(16)
}

/// Open an output: "" none, "-" stdout, else a file appended to and reopened
/// after SIGHUP.
/// A live output and, for a file, the count of lines it could not write
/// (see [`scanwatch::output::Reopen`]).
type LiveOutput = (
    Option<Box<dyn std::io::Write + Send>>,
    Arc<std::sync::atomic::AtomicU64>,
);

fn live_output(
    path: &str,
    generation: &Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<LiveOutput> {
    Ok(match path {
        "" => (None, Default::default()),
        "-" => (
            Some(open_sink(std::path::Path::new("-"))?),
            Default::default(),
        ),
        p => {
            let f = scanwatch::output::Reopen::open(std::path::Path::new(p), generation.clone())
                .with_context(|| format!("cannot open '{p}'"))?;
            let lost = f.lost();
            (Some(Box::new(f)), lost)
        }
    })
}

fn live_cmd(a: LiveArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use scanwatch::capture::live::{LiveCapture, LiveConfig, LiveStats};
    use scanwatch::pipeline::{Gauges, Source, run};
    use std::sync::atomic::{AtomicBool, AtomicU64};

    // SIGHUP first: a logrotate's postrotate signal during the start (the
    // state's load can take seconds) would otherwise kill the sensor, and
    // systemd counts death by SIGHUP as a clean exit (no restart). The
    // signal is taken now and acted on once the outputs are open.
    let mut hup = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("cannot handle SIGHUP")?;
    let mut config = load_config(&a.config)?;
    let c = &mut config.capture;
    if let Some(i) = a.interface {
        c.interface = i;
    }
    if let Some(t) = a.threads {
        c.threads = t;
    }
    if let Some(b) = a.bpf {
        c.bpf = Some(b);
    }
    let o = &mut config.output;
    if let Some(p) = a.alerts {
        o.alerts = p;
    }
    if let Some(p) = a.events {
        o.events = p;
    }
    // The flags change settings the file's validation passed.
    config
        .validate()
        .and_then(|()| config.validate_capture())
        .map_err(UsageError::Config)?;
    check_syslog_flags(&a.syslog)?;
    check_live_outputs(&config.output.alerts, &config.output.events)?;
    if config.capture.interface.is_empty() {
        return Err(UsageError::Config(ConfigError::Invalid(
            "no interface: give --interface or capture.interface".into(),
        ))
        .into());
    }
    let threads = threads_or_cpus(config.capture.threads);
    let live_cfg = LiveConfig {
        interface: config.capture.interface.clone(),
        handles: threads,
        snaplen: config.capture.snaplen as i32,
        buffer_size: config.capture.buffer_size as i32,
        filter: config.capture.bpf.clone(),
        promisc: config.capture.promisc,
    };
    // 1. Open the capture (the only step that needs CAP_NET_RAW), and give
    // up the capability at once when not root (root gives up everything at
    // step 3): no thread has started yet, so none keeps it.
    let capture = LiveCapture::open(&live_cfg)?;
    match scanwatch::daemon::drop_capabilities() {
        Ok(true) => tracing::debug!("capabilities given up once the capture was open"),
        Ok(false) => {}
        // A system-call filter that forbids capset (the shipped unit
        // allows it): the sensor runs, with the capability, and says so.
        Err(e) => tracing::warn!("{e}; the sensor keeps CAP_NET_RAW while it runs"),
    }
    // 2. Open state and outputs.
    let generation = Arc::new(AtomicU64::new(0));
    let mut db = match &a.state {
        Some(dir) => Some(open_live_state(dir, a.reset_state)?),
        None => None,
    };
    let analytics = match &db {
        Some(db) => db.load(config.detector.clone())?,
        None => Analytics::new(config.detector.clone()),
    };
    // The counters are saved with the state: the summary shows this run's.
    let stats_at_start = analytics.stats.clone();
    let health = Arc::new(CheckpointHealth::default());
    // A read-only state directory: no checkpoint, no syslog spool, and
    // nothing to hand over to the unprivileged user.
    let read_only = db.as_ref().is_some_and(|db| db.read_only().is_some());
    if let Some((db, dir)) = db.as_ref().zip(a.state.as_ref())
        && let Some(why) = db.read_only()
    {
        let spool = if a.syslog.is_empty() && config.output.syslog.is_none() {
            ""
        } else {
            "; there is no syslog spool (alerts syslog cannot take at once are dropped and counted)"
        };
        tracing::warn!(
            "state directory '{}' is read-only ({why}): running without saving; the state was loaded from '{}', what is learned from now on is lost at exit unless the directory becomes writable, and each checkpoint is counted as failed (scanwatch_checkpoint_errors_total){spool}",
            dir.display(),
            db.path().display()
        );
        // The refusal at start is the first failed checkpoint: the stats
        // line shows the problem from its first line on.
        health.errors.store(1, Ordering::Relaxed);
        health.failing.store(true, Ordering::Relaxed);
    }
    let (alerts, alerts_lost) = live_output(&config.output.alerts, &generation)?;
    let (events, events_lost) = live_output(&config.output.events, &generation)?;
    let lost = LostLines {
        alerts: alerts_lost,
        events: events_lost,
    };
    let sinks = scanwatch::output::syslog_sinks(
        config.output.syslog.as_ref(),
        &a.syslog,
        a.state.as_deref().filter(|_| !read_only),
    )?;
    let event_sinks =
        scanwatch::output::syslog_event_sinks(config.output.syslog.as_ref(), &a.syslog)?;
    let syslog_stats = SyslogCounters {
        alerts: sinks.iter().map(|s| s.stats()).collect(),
        events: event_sinks.iter().map(|s| s.stats()).collect(),
    };
    // 3. Drop privileges.
    let owned: Vec<&std::path::Path> = a
        .state
        .iter()
        .filter(|_| !read_only)
        .map(|p| p.as_path())
        .collect();
    match scanwatch::daemon::drop_privileges(&config.capture.user, &owned)? {
        Some(u) => tracing::info!("capturing on {} as user {u}", capture.interface()),
        None => tracing::info!("capturing on {}", capture.interface()),
    }
    // A rotated file is reopened by name after SIGHUP, as the user the
    // sensor now runs as: said now, not at the first rotation.
    for path in [&config.output.alerts, &config.output.events] {
        if path.is_empty() || path == "-" {
            continue;
        }
        let dir = dir_of(Path::new(path));
        if !writable(dir) {
            tracing::warn!(
                "'{}' is not writable by the user the sensor runs as: after a rotation, SIGHUP cannot reopen '{path}' and its lines go on to the moved file; give the directory to that user (the unit's LogsDirectory= does)",
                dir.display()
            );
        }
    }
    // 4. Signals, workers, stats.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot handle signals")?;
    }
    {
        let generation = generation.clone();
        std::thread::spawn(move || {
            for _ in hup.forever() {
                generation.fetch_add(1, Ordering::Relaxed);
                tracing::info!("SIGHUP: reopening output files");
            }
        });
    }
    let checkpoint = db
        .take()
        .map(|db| checkpoint(db, config.state.checkpoint_interval.ns(), health.clone()));
    let analysis = Analysis {
        analytics,
        alerts,
        sinks: sinks
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn scanwatch::pipeline::AlertSink>)
            .collect(),
        event_sinks: event_sinks
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn scanwatch::pipeline::EventSink>)
            .collect(),
        checkpoint,
    };
    let (tx, rx) = crossbeam_channel::bounded(64);
    let live_stats = Arc::new(LiveStats::default());
    let captures = capture.start(tx, stop.clone(), live_stats.clone());
    let gauges = Arc::new(Gauges::default());
    // Set once the pipeline has drained after the stop: until then the
    // watchdog is fed while the drain moves (a SIGTERM from outside systemd
    // leaves its watchdog running). A checkpoint moves nothing while it
    // saves: one that takes longer than the watchdog's period (~1 s for
    // 200,000 sources on local disk; state on slow network storage) gets
    // the sensor restarted like any other hang.
    let drained = Arc::new(AtomicBool::new(false));
    let reporter = {
        let (stop, drained, live_stats, gauges, health, lost) = (
            stop.clone(),
            drained.clone(),
            live_stats.clone(),
            gauges.clone(),
            health.clone(),
            lost.clone(),
        );
        let every = config.capture.stats_interval.0;
        let cap = config.tracker.max_pending;
        let mut watchdog = sd_notify::watchdog_enabled().map(Watchdog::new);
        std::thread::spawn(move || {
            let mut last = std::time::Instant::now();
            while !drained.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(w) = watchdog.as_mut() {
                    w.tick(gauges.progress.load(Ordering::Relaxed));
                }
                if !stop.load(Ordering::Relaxed) && last.elapsed() >= every {
                    last = std::time::Instant::now();
                    tracing::info!(
                        "{}",
                        stats_line(&live_stats, &gauges, &health, cap, &syslog_stats, &lost)
                    );
                }
            }
            // The last line is written once the capture threads have
            // added their final kernel counters (see below).
            (gauges, syslog_stats)
        })
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let cfg = ReplayConfig {
        threads,
        track: config.tracker.track_config(),
    };
    let result = run(
        Source::Live {
            blocks: rx,
            stop: stop.clone(),
        },
        &cfg,
        events,
        Some(analysis),
        gauges,
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    stop.store(true, Ordering::Relaxed);
    drained.store(true, Ordering::Relaxed);
    // Each capture thread reads the kernel's counters one last time as it
    // ends: the last stats line must come after that, or it would miss up
    // to a second of drops, those of an overloaded sensor above all.
    for c in captures {
        let _ = c.join();
    }
    let (last, syslog_end) = match reporter.join() {
        Ok((gauges, syslog_stats)) => (
            stats_line(
                &live_stats,
                &gauges,
                &health,
                config.tracker.max_pending,
                &syslog_stats,
                &lost,
            ),
            Some(syslog_stats),
        ),
        Err(_) => ("(the stats reporter failed)".to_string(), None),
    };
    let mut outcome = result?;
    this_runs_counts(&mut outcome, &stats_at_start);
    tracing::info!("stopped: {last}");
    report_checkpoints(&outcome, &health, a.state.as_deref());
    for (what, n) in [("alerts", &lost.alerts), ("events", &lost.events)] {
        let n = n.load(Ordering::Relaxed);
        if n > 0 {
            tracing::warn!("{n} {what} line(s) could not be written to their file and were lost");
        }
    }
    if !quiet {
        eprint!("{}", summary_for("live", &outcome, threads, &health));
        if let Some(l) = syslog_end.as_ref().and_then(|s| s.summary()) {
            eprintln!("  {l}");
        }
    }
    // Lost to syslog is said even with -q, as in replay.
    if let Some(w) = syslog_end.as_ref().and_then(|s| s.losses()) {
        tracing::warn!("{w}");
    }
    // A capture that failed (the interface disappeared, a driver reset)
    // stopped the sensor: exit 1, so that systemd's Restart=on-failure
    // starts it again; an exit 0 would leave a SPAN port unwatched.
    if live_stats.failed.load(Ordering::Relaxed) {
        tracing::error!(
            "the capture on {} failed (see above): exiting with status 1, so that a supervisor restarts the sensor",
            config.capture.interface
        );
        return Ok(ExitCode::from(1));
    }
    // A fault the sensor recovered from (checkpoints succeeded again) is in
    // the log and the summary; only a state left unsaved is a failure.
    Ok(if health.final_failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Open the state of a live sensor. A directory that cannot be written (a
/// read-only file system) holding an intact database is opened read-only, so
/// that capture goes on without saving; without a database, or with one that
/// cannot be read, the error of the read-write open stands (or the read-only
/// open's, when it says more: damaged, newer).
fn open_live_state(
    dir: &std::path::Path,
    reset: bool,
) -> Result<StateDb, scanwatch::state::StateError> {
    use scanwatch::state::StateError;
    let e = match StateDb::open_or_quarantine(dir, reset) {
        Ok(db) => return Ok(db),
        Err(e) => e,
    };
    let Some(why) = e.unwritable() else {
        return Err(e);
    };
    match StateDb::open_read_only(dir, &why) {
        Ok(db) => Ok(db),
        Err(ro @ (StateError::Damaged { .. } | StateError::Newer { .. })) => Err(ro),
        Err(_) => Err(e),
    }
}

/// Lines a live sensor's output files could not write.
#[derive(Clone)]
struct LostLines {
    alerts: Arc<std::sync::atomic::AtomicU64>,
    events: Arc<std::sync::atomic::AtomicU64>,
}

/// systemd's watchdog (`WatchdogSec=` in the unit): fed every half period,
/// but only while the pipeline moves (`Gauges::progress`), so that a hung
/// stage (a write blocked on a dead NFS mount or a full pipe, a deadlock)
/// gets the sensor restarted instead of leaving it capturing into a queue
/// nobody empties, dropping everything for good. A stats thread that merely
/// runs proves nothing.
struct Watchdog {
    half: Duration,
    last_ping: std::time::Instant,
    /// The progress count last read, and when it last moved.
    seen: u64,
    moved: std::time::Instant,
    warned: bool,
}

impl Watchdog {
    fn new(period: Duration) -> Watchdog {
        let now = std::time::Instant::now();
        Watchdog {
            half: period / 2,
            last_ping: now,
            seen: 0,
            moved: now,
            warned: false,
        }
    }

    fn tick(&mut self, progress: u64) {
        let now = std::time::Instant::now();
        if progress != self.seen {
            self.seen = progress;
            self.moved = now;
            if self.warned {
                self.warned = false;
                tracing::warn!("the pipeline moves again: feeding systemd's watchdog again");
            }
        }
        let still = now.duration_since(self.moved) >= self.half;
        if !still {
            if now.duration_since(self.last_ping) >= self.half {
                self.last_ping = now;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        } else if !self.warned {
            self.warned = true;
            tracing::error!(
                "the pipeline has not moved for {:.1} s (a stage hangs: an output that cannot be written?); systemd's watchdog is not fed and will restart the sensor",
                now.duration_since(self.moved).as_secs_f64()
            );
        }
    }
}

/// One stats line, metric names after Vector's conventions.
fn stats_line(
    l: &scanwatch::capture::live::LiveStats,
    g: &scanwatch::pipeline::Gauges,
    health: &CheckpointHealth,
    pending_cap: usize,
    syslog: &SyslogCounters,
    lost: &LostLines,
) -> String {
    let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (ev_sent, ev_dropped) = syslog.events_sent_dropped();
    let syslog = &syslog.alerts;
    format!(
        "stats: scanwatch_packets_received_total={} scanwatch_packets_captured_total={} scanwatch_kernel_dropped_total={} scanwatch_interface_dropped_total={} scanwatch_queue_dropped_total={} scanwatch_pending_attempts={} scanwatch_pending_attempts_cap={} scanwatch_pending_evicted_total={} scanwatch_hosts={} scanwatch_hosts_forgotten_total={} scanwatch_hosts_forgotten_active_total={} scanwatch_sources={} scanwatch_events_total={} scanwatch_alerts_total={} scanwatch_syslog_sent_total={} scanwatch_syslog_backlog={} scanwatch_syslog_dropped_total={} scanwatch_syslog_spool_dropped_total={} scanwatch_syslog_events_sent_total={ev_sent} scanwatch_syslog_events_dropped_total={ev_dropped} scanwatch_records_behind_clock_total={} scanwatch_checkpoint_errors_total={} scanwatch_pending_refused_total={} scanwatch_sources_refused_total={} scanwatch_sources_evicted_total={} scanwatch_target_sets_full_total={} scanwatch_evidence_cap_hits_total={} scanwatch_reorder_overflow_total={} scanwatch_external_failures_total={} scanwatch_alerts_lost_total={} scanwatch_events_lost_total={}",
        r(&l.received),
        r(&l.packets),
        r(&l.kernel_dropped),
        r(&l.if_dropped),
        r(&l.queue_dropped),
        r(&g.pending),
        pending_cap,
        r(&g.evicted),
        r(&g.hosts),
        r(&g.caps.hosts_forgotten),
        r(&g.caps.hosts_forgotten_active),
        r(&g.sources),
        r(&g.events),
        r(&g.alerts),
        syslog.iter().map(|s| r(&s.sent)).sum::<u64>(),
        syslog.iter().map(|s| r(&s.backlog)).sum::<u64>(),
        syslog.iter().map(|s| r(&s.dropped)).sum::<u64>(),
        syslog.iter().map(|s| r(&s.spool_dropped)).sum::<u64>(),
        r(&g.behind_clock),
        r(&health.errors),
        r(&g.pending_refused),
        r(&g.caps.sources_refused),
        r(&g.caps.sources_evicted),
        r(&g.caps.target_sets_full),
        r(&g.caps.evidence_cap_hits),
        r(&g.caps.reorder_overflow),
        r(&g.external_failures),
        r(&lost.alerts),
        r(&lost.events),
    )
}

/// The syslog destinations' counters: alerts (`scanwatch_syslog_*`) and,
/// with `output.syslog.events`, events on their own connections.
struct SyslogCounters {
    alerts: Vec<Arc<scanwatch::output::syslog::SyslogStats>>,
    events: Vec<Arc<scanwatch::output::syslog::SyslogStats>>,
}

impl SyslogCounters {
    /// Sent, backlog, dropped and (of those) dropped for a full spool.
    fn sum(v: &[Arc<scanwatch::output::syslog::SyslogStats>]) -> (u64, u64, u64, u64) {
        v.iter().fold((0, 0, 0, 0), |(s, b, d, f), x| {
            let x = x.snapshot();
            (
                s + x.sent,
                b + x.backlog,
                d + x.dropped,
                f + x.spool_dropped,
            )
        })
    }

    fn events_sent_dropped(&self) -> (u64, u64) {
        let (s, _, d, _) = Self::sum(&self.events);
        (s, d)
    }

    /// The end-of-replay line, when there is a syslog destination.
    fn summary(&self) -> Option<String> {
        if self.alerts.is_empty() {
            return None;
        }
        let (s, b, d, f) = Self::sum(&self.alerts);
        let mut l = format!("syslog: alerts {s} sent, {b} spooled for later, {d} dropped");
        if f > 0 {
            l.push_str(&format!(" ({f} of them: the spool was full)"));
        }
        if !self.events.is_empty() {
            let (s, d) = self.events_sent_dropped();
            l.push_str(&format!("; events {s} sent, {d} dropped"));
        }
        Some(l)
    }

    /// What syslog lost, if anything.
    fn losses(&self) -> Option<String> {
        let (_, _, d, f) = Self::sum(&self.alerts);
        let (_, e) = self.events_sent_dropped();
        let alerts = (d > 0).then(|| {
            const OTHER: &str = "too long even without samples, or the server could not take them and there is no spool without --state";
            const FULL: &str = "the spool was full: output.syslog.spool_max, per destination";
            match f {
                0 => format!("{d} alert(s) dropped ({OTHER})"),
                f if f == d => format!("{d} alert(s) dropped ({FULL})"),
                f => format!("{d} alert(s) dropped ({f}: {FULL}; the others: {OTHER})"),
            }
        });
        let events = (e > 0).then(|| {
            format!(
                "{e} event(s) dropped (events have no spool: a queue of output.syslog.queue messages per destination; --events keeps them all)"
            )
        });
        let said: Vec<String> = alerts.into_iter().chain(events).collect();
        (!said.is_empty()).then(|| format!("syslog: {}", said.join("; ")))
    }
}

/// How the checkpoints of a run went, for the stats line and the end of the run.
#[derive(Debug, Default)]
struct CheckpointHealth {
    /// Checkpoints that failed (`scanwatch_checkpoint_errors_total`).
    errors: std::sync::atomic::AtomicU64,
    /// Whether the latest one failed.
    failing: std::sync::atomic::AtomicBool,
}

impl CheckpointHealth {
    /// Whether the run ends with its state unsaved: the final checkpoint
    /// (the latest) failed. Failures followed by a success are recovered.
    fn final_failed(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// The checkpoint hook: save to `db`, counting failures in `health`. The
/// pipeline logs each failure as it happens (and goes on); a success after
/// failures is logged here, so that the log says when the state is safe again.
fn checkpoint(mut db: StateDb, interval: i64, health: Arc<CheckpointHealth>) -> Checkpoint {
    let mut failed_in_a_row = 0u64;
    Checkpoint {
        interval,
        // A state opened read-only would lose them: decided at the end instead.
        carry: db.read_only().is_none(),
        save: Box::new(move |a: &Analytics| match db.save(a) {
            Ok(()) => {
                if failed_in_a_row > 0 {
                    tracing::info!(
                        "checkpoint to '{}' succeeded again, after {failed_in_a_row} failed attempt(s)",
                        db.path().display()
                    );
                }
                failed_in_a_row = 0;
                health.failing.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                failed_in_a_row += 1;
                health.errors.fetch_add(1, Ordering::Relaxed);
                health.failing.store(true, Ordering::Relaxed);
                Err(e.to_string())
            }
        }),
    }
}

/// At the end of a run: say whether the state on disk is the final one.
/// (The pipeline logged each failure when it happened, but the final one.)
fn report_checkpoints(o: &RunOutcome, health: &CheckpointHealth, dir: Option<&std::path::Path>) {
    let (Some(last), Some(dir)) = (o.checkpoint_errors.last(), dir) else {
        return;
    };
    let n = health.errors();
    if health.final_failed() {
        tracing::error!(
            "the final checkpoint failed: {last}; '{}' holds the last checkpoint that succeeded ({n} failed in all)",
            dir.display()
        );
    } else {
        tracing::warn!(
            "{n} checkpoint(s) failed during the run (the last: {last}); the final one succeeded"
        );
    }
}

fn minute(ns: i64) -> String {
    let mut s = String::new();
    scanwatch::output::time::rfc3339(ns, &mut s);
    format!("{}Z", &s[..16])
}

fn hosts_cmd(dir: &std::path::Path, addr: Option<std::net::IpAddr>) -> anyhow::Result<ExitCode> {
    let db = StateDb::open_existing(dir)?;
    let (_, clock) = db.clocks()?;
    let hosts = db.hosts(addr.map(Addr::from))?;
    if hosts.is_empty() {
        match addr {
            Some(a) => println!("{a}: never seen alive"),
            None => println!("the inventory is empty"),
        }
        return Ok(if addr.is_some() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut out = std::io::stdout().lock();
    for (a, h) in hosts {
        let ago = clock
            .map(|c| c.saturating_sub(h.last_alive) / 60_000_000_000)
            .map(|m| format!(" ({}h{:02}m before the last event)", m / 60, m % 60));
        let line = writeln!(
            out,
            "{a}  last seen alive {}{}  first {}  seen as {}",
            minute(h.last_alive),
            ago.unwrap_or_default(),
            minute(h.first_alive),
            Seen::names(h.seen).join(", ")
        );
        // `scanwatch hosts --state d | head`: the reader left.
        if line.is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scanners_cmd(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let db = StateDb::open_existing(dir)?;
    let rows = db.scanners()?;
    if rows.is_empty() {
        println!("no learned scanners");
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        if writeln!(
            out,
            "{}  scanned on {} day(s) of the training period: learned, suppressed",
            r.addr, r.scanning_windows
        )
        .is_err()
        {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar over the total input size, fed by the reader's byte counter.
fn progress_bar(
    paths: &[PathBuf],
    progress: Arc<Progress>,
) -> (indicatif::ProgressBar, Arc<std::sync::atomic::AtomicU64>) {
    // Standard input, a FIFO: no length to measure progress against.
    let sizes: Option<Vec<u64>> = paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| p.as_os_str() != "-" && m.is_file())
                .map(|m| m.len())
        })
        .collect();
    let (pb, template) = match sizes {
        Some(s) => (
            indicatif::ProgressBar::new(s.iter().sum()),
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {bytes} read, {bytes_per_sec}",
        ),
    };
    pb.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
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

fn summary(o: &RunOutcome, threads: usize, checkpoints: &CheckpointHealth) -> String {
    summary_for("replay", o, threads, checkpoints)
}

fn summary_for(
    what: &str,
    o: &RunOutcome,
    threads: usize,
    checkpoints: &CheckpointHealth,
) -> String {
    use std::fmt::Write;
    let s = &o.stats;
    let (d, t) = (&s.decode, &s.track);
    let secs = s.wall.as_secs_f64().max(1e-9);
    let mut out = String::new();
    // A live capture reads no file.
    let files = if what == "live" {
        String::new()
    } else {
        format!("{} file(s), ", s.files)
    };
    let _ = writeln!(
        out,
        "scanwatch {what}: {files}{} packets, {} bytes captured ({} on the wire), {:.3} s, {:.0} packets/s, {} thread(s)",
        d.packets,
        d.bytes_captured,
        d.bytes_wire,
        secs,
        d.packets as f64 / secs,
        threads
    );
    let skipped: Vec<String> = Skip::ALL
        .iter()
        .filter(|k| d.skipped(**k) > 0)
        .map(|k| format!("{} {}", k.name(), d.skipped(*k)))
        .collect();
    let _ = writeln!(
        out,
        "  kept: {} interesting, {} established-flow segments; skipped: {}",
        d.interesting,
        d.established,
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
    let _ = writeln!(out, "  failed: {}; events: {}", failed.join(", "), s.events);
    let _ = writeln!(
        out,
        "  unmatched: {} SYN-ACK, {} RST, {} ICMP errors ({} with another ISN); cap hits: {} attempts decided early, {} dropped (peak {} held)",
        t.synack_unmatched,
        t.rst_unmatched,
        t.icmp_unmatched,
        t.icmp_seq_mismatch,
        t.pending_evicted,
        t.pending_cap_dropped,
        t.peak_pending
    );
    if t.carried_in + t.carried_out + t.carried_refused > 0 {
        let _ = writeln!(
            out,
            "  carried through the state: {} attempts taken up from the last run ({} of them past their timeout at this input's start, decided unanswered; {} refused: this input starts before the last run ended, or beyond the cap, or damaged), {} still undecided left to the next",
            t.carried_in, t.carried_expired, t.carried_refused, t.carried_out
        );
    }
    if let Some(a) = &o.analytics {
        let st = &a.stats;
        let _ = writeln!(
            out,
            "  alerts: {} ({} low, {} informational); not sent: {} before activation, {} allowlisted, {} learned scanners, {} deduplicated; inventory: {} hosts",
            st.alerts,
            st.alerts_low,
            st.alerts_informational,
            st.suppressed_activation,
            st.suppressed_allowlist,
            st.suppressed_learned_scanner,
            st.suppressed_dedup,
            a.inventory().len()
        );
        let x = s.external;
        if x.failures + x.contacts > 0 {
            let _ = writeln!(
                out,
                "  not analysed: {} failures, and {} successful connections to home_net hosts, of sources outside home_net (in the events; detector.alert_external_sources = true judges them too)",
                x.failures, x.contacts
            );
        }
        let inv = a.inventory();
        if st.sources_cap_dropped
            + st.sources_evicted
            + st.targets_cap_hit
            + st.evidence_cap_hit
            + inv.hosts_forgotten
            + st.reorder_overflow
            > 0
        {
            let _ = writeln!(
                out,
                "  analytics cap hits: {} one-off sources evicted, {} sources refused, {} target sets full, {} failures or contacts beyond the evidence total ({} items held), {} hosts forgotten ({} of them still active), {} records analysed before their reorder delay ran out (buffer full)",
                st.sources_evicted,
                st.sources_cap_dropped,
                st.targets_cap_hit,
                st.evidence_cap_hit,
                a.evidence_items(),
                inv.hosts_forgotten,
                inv.hosts_forgotten_active,
                st.reorder_overflow
            );
        }
    }
    if let Some(last) = o.checkpoint_errors.last() {
        let end = if checkpoints.final_failed() {
            "the final one among them: the state directory holds the last that succeeded"
        } else {
            "the final one succeeded: the state is saved"
        };
        let _ = writeln!(
            out,
            "  state: {} checkpoint(s) failed ({end}), the last: {last}",
            checkpoints.errors()
        );
    }
    if let Some((name, most)) = s.busiest() {
        let each: Vec<String> = s
            .cpu
            .iter()
            .map(|(n, d)| format!("{n} {:.3}", d.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "  cpu seconds by thread: {}; busiest: {name} (with a core for each thread, this run could not beat its pace: {:.0} packets/s)",
            each.join(", "),
            d.packets as f64 / most.as_secs_f64().max(1e-9)
        );
    }
    if s.oversize_records > 0 {
        let _ = writeln!(
            out,
            "  note: {} records longer than their file's snaplen were read as they are",
            s.oversize_records
        );
    }
    if let Some(t) = time_problem(&s.time) {
        let _ = writeln!(out, "  time: {t}");
    }
    if let Some(a) = o.analytics.as_ref().filter(|a| a.stats.behind_clock > 0) {
        let mut clock = String::new();
        scanwatch::output::time::rfc3339(a.clock(), &mut clock);
        let _ = writeln!(
            out,
            "  time: {} record(s) more than a test period older than the detector's clock ({clock})",
            a.stats.behind_clock
        );
    }
    out
}

/// Make the detector's counters this run's (they were loaded with the
/// state), after the final checkpoint saved the totals.
fn this_runs_counts(o: &mut RunOutcome, at_start: &scanwatch::analyze::AnalyticsStats) {
    if let Some(a) = o.analytics.as_mut() {
        a.stats = a.stats.since(at_start);
    }
}

/// What went wrong with the capture's timestamps, if anything.
fn time_problem(t: &scanwatch::pipeline::TimeCheck) -> Option<String> {
    let mut said = Vec::new();
    if t.beyond > 0 {
        said.push(format!(
            "{} record(s) stamped after 2199 dropped (garbage times, or a pcapng time offset or resolution past what scanwatch holds)",
            t.beyond
        ));
    }
    if t.bad_fraction > 0 {
        said.push(format!(
            "{} record(s) whose fraction of a second was a second or more, read as the end of their second (a broken capture writer)",
            t.bad_fraction
        ));
    }
    if t.late > 0 {
        said.push(format!(
            "{} record(s) up to {} earlier than a packet before them: attempts they start time out at once and their answers can go unmatched, so failures are overcounted (a capture out of order, files given out of order, or a clock that jumped)",
            t.late,
            human_span(t.max_lag)
        ));
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// A span of nanoseconds in the largest fitting unit.
fn human_span(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        s if s >= 86_400 => format!("{:.1} days", ns as f64 / 86_400e9),
        s if s >= 3_600 => format!("{:.1} h", ns as f64 / 3_600e9),
        s if s >= 60 => format!("{:.1} min", ns as f64 / 60e9),
        _ => format!("{:.1} s", ns as f64 / 1e9),
    }
}
