//! State that survives restarts: the host inventory, each source's baseline
//! and learned-scanner status, dedup, and the activation clock, in SQLite
//! (`DIR/scanwatch.db`, WAL journal).
//!
//! A checkpoint rewrites everything in one transaction, so the file always
//! holds one complete checkpoint: a crash loses at most the event time since
//! the last one (`state.checkpoint_interval`). The schema carries a version;
//! a state written by a newer scanwatch is refused rather than misread.
//!
//! After each checkpoint the WAL is folded back into the database and
//! truncated to nothing: a checkpoint rewrites every table, so the WAL would
//! otherwise stay as large as the whole state, doubling what the state needs
//! on disk (and filling a small one).
//!
//! A database in a directory that cannot be written (a file system mounted
//! read-only) can still be opened read-only ([`StateDb::open_read_only`]):
//! the state is loaded, each [`StateDb::save`] fails with
//! [`StateError::ReadOnly`], and tries to open the directory for writing
//! again first, so saving resumes when the directory is writable again.
//!
//! | table | holds |
//! |---|---|
//! | `meta` | schema version, activation clock (first event time), clock, current window, population baseline, counters, the latest packet time of the run that left `pending` |
//! | `hosts` | address, first and last minute seen alive, how (bit set) |
//! | `sources` | address, the source's state as JSON (current window, history, sequential test, last alert, learned flag) |
//! | `scanners` | learned sanctioned scanners (derived from `sources`, for listing) |
//! | `pending` | the tracker's attempts still undecided at the end of the last run, taken up by the next ([`crate::track::Carried`]); empty after any other checkpoint |

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::analyze::{Analytics, AnalyticsStats, PopWindow};
use crate::config::DetectorSection;
use crate::decode::{Addr, FlowKey, Proto};
use crate::inventory::Host;
use crate::track::Carried;

/// Version of the tables below; bump on any change, with a migration.
/// 2 (2026-12-08) added `pending`: a version-1 state opens and is brought to
/// 2 with the table empty; scanwatch before it refuses a version-2 state.
pub const SCHEMA_VERSION: i64 = 2;

/// `pending.proto` for ARP, which has no IP protocol number.
const PROTO_ARP: i64 = 256;

/// File name inside the state directory.
pub const DB_FILE: &str = "scanwatch.db";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    // The reason is in the message, not a `source()` too: printed with its
    // chain (`{:#}`), it would be said twice.
    #[error("state directory '{path}': {error}")]
    Dir { path: String, error: std::io::Error },
    #[error("state database '{path}': {error}")]
    Db {
        path: String,
        error: rusqlite::Error,
    },
    #[error(
        "state database '{path}' was written by a newer scanwatch (schema {found}, this one reads {SCHEMA_VERSION}); upgrade scanwatch or point --state elsewhere"
    )]
    Newer { path: String, found: i64 },
    #[error("state database '{path}' is damaged: {detail}")]
    Damaged { path: String, detail: String },
    #[error(
        "state database '{path}' is damaged ({detail}); it was moved to '{aside}' for inspection. Start again with --reset-state to begin from nothing (the inventory and baselines are relearned, and the activation period starts over)"
    )]
    Quarantined {
        path: String,
        detail: String,
        aside: String,
    },
    /// An earlier start found the database damaged and moved it aside:
    /// starting afresh in its place takes `--reset-state`, at every start
    /// until one has (a restart by systemd must not do it silently).
    #[error(
        "state database '{path}' was damaged and moved to '{aside}' by an earlier start; start with --reset-state to begin from nothing (the inventory and baselines are relearned, and the activation period starts over)"
    )]
    SetAside { path: String, aside: String },
    #[error("state directory '{path}' is not a directory")]
    NotDir { path: String },
    #[error(
        "'{path}' holds files scanwatch did not make ('{found}'), and no state: give a new or empty directory for --state (scanwatch makes it 0700 and, when it drops privileges, hands it to the capture user)"
    )]
    NotState { path: String, found: String },
    #[error("no state database in '{path}' (run replay or live with --state first)")]
    Missing { path: String },
    /// A save to a database opened read-only ([`StateDb::open_read_only`]):
    /// the directory still cannot be written.
    #[error("state directory '{dir}' is read-only ({reason}): the checkpoint was not saved")]
    ReadOnly { dir: String, reason: String },
    /// A write the file system refused, with the system's reason ("Read-only
    /// file system"), which tells the operator what to do where SQLite alone
    /// says "disk I/O error". (A full disk has a message of its own,
    /// "database or disk is full".)
    #[error("state database '{path}': {error} ({os})")]
    Write {
        path: String,
        error: rusqlite::Error,
        os: std::io::Error,
    },
}

impl StateError {
    /// When the error says the state directory or its database cannot be
    /// written (a read-only file system, no permission), the reason, e.g.
    /// "Read-only file system (os error 30)". A database that can still be
    /// read is then worth opening with [`StateDb::open_read_only`].
    pub fn unwritable(&self) -> Option<String> {
        let io = |e: &std::io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EROFS | libc::EACCES | libc::EPERM)
            )
            .then(|| e.to_string())
        };
        match self {
            StateError::Dir { error, .. } => io(error),
            StateError::Write { os, .. } => io(os),
            StateError::ReadOnly { reason, .. } => Some(reason.clone()),
            StateError::Db {
                error: rusqlite::Error::SqliteFailure(f, _),
                ..
            } if matches!(
                f.code,
                rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::PermissionDenied
            ) =>
            {
                Some(self.to_string())
            }
            _ => None,
        }
    }
}

/// An open state database.
pub struct StateDb {
    conn: Connection,
    path: PathBuf,
    /// The state directory.
    dir: PathBuf,
    /// Opened read-only ([`StateDb::open_read_only`]): why the directory
    /// could not be written. Each save first tries to open it for writing.
    read_only: Option<String>,
}

/// The WAL is truncated after each checkpoint; this bounds it should that
/// fail (a reader holding it): SQLite cuts it back to this size whenever it
/// starts over.
const WAL_SIZE_LIMIT: i64 = 1 << 20;

/// When to checkpoint, from event time: every `state.checkpoint_interval`,
/// when something changed since the last checkpoint that succeeded.
///
/// Event time is the later of the analytics' clock (the latest record it
/// processed) and the batch's watermark. In replay both come from packet
/// timestamps, so the checkpoints fall at the same points of the input
/// whatever the thread count. On an idle live link the watermark is the wall
/// clock (the live sequencer's empty blocks every 100 ms) while the clock
/// stays at the last record: without the watermark, an idle sensor that has
/// learned something would not save it until the next packet.
#[derive(Debug, Clone)]
pub struct CheckpointSchedule {
    interval: i64,
    /// Event time of the next checkpoint; `None` until event time is known.
    next: Option<i64>,
    /// The analytics' clock at the last checkpoint that succeeded (at start,
    /// the one loaded).
    saved_clock: i64,
    /// Records came since the last checkpoint that succeeded.
    dirty: bool,
}

impl CheckpointSchedule {
    /// `interval` in ns of event time; `clock` the analytics' clock at start.
    pub fn new(interval: i64, clock: i64) -> CheckpointSchedule {
        CheckpointSchedule {
            interval: interval.max(1),
            next: None,
            saved_clock: clock,
            dirty: false,
        }
    }

    /// After a batch: the analytics' `clock`, the batch's `watermark`, and
    /// whether it brought any records. True when a checkpoint is due; call
    /// [`CheckpointSchedule::done`] after it.
    ///
    /// A due checkpoint with nothing to save waits, due, for the next change
    /// (saved at once then, and the interval starts over).
    pub fn due(&mut self, clock: i64, watermark: i64, records: bool) -> bool {
        let now = clock.max(watermark);
        self.dirty |= records || clock != self.saved_clock;
        match self.next {
            None => {
                if now > i64::MIN {
                    self.next = Some(now.saturating_add(self.interval));
                }
                false
            }
            Some(next) => self.dirty && now >= next,
        }
    }

    /// A checkpoint was tried after the batch last given to
    /// [`CheckpointSchedule::due`]; `saved` whether it succeeded. A failed
    /// one is tried again one interval later.
    pub fn done(&mut self, clock: i64, watermark: i64, saved: bool) {
        self.next = Some(clock.max(watermark).saturating_add(self.interval));
        if saved {
            self.dirty = false;
            self.saved_clock = clock;
        }
    }
}

/// A learned sanctioned scanner, as listed by `scanwatch scanners`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannerRow {
    pub addr: Addr,
    /// Windows (days) it looked like a scanner in the training period.
    pub scanning_windows: i64,
}

/// Whether scanwatch makes an entry of this name in a state directory: the
/// database and its WAL files, databases moved aside, syslog spools.
pub fn is_ours(name: &str) -> bool {
    name.starts_with(DB_FILE) || name.starts_with("syslog-")
}

/// An entry of `dir` that scanwatch does not make, if `dir` holds nothing
/// scanwatch made (then it is no state directory). A database moved aside,
/// or a spool, make it one; a file system's `lost+found` is no one's.
fn foreign_entry(dir: &Path) -> Option<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok().or(Some("?".into())))
        .filter(|n| n != "lost+found")
        .collect();
    if names.iter().any(|n| is_ours(n)) {
        return None;
    }
    names.into_iter().next()
}

/// The newest database an earlier start moved aside as damaged
/// (`scanwatch.db.damaged-STAMP`, not its WAL files), if any.
fn set_aside(dir: &Path) -> Option<String> {
    let prefix = format!("{DB_FILE}.damaged-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|stamp| stamp.bytes().all(|b| b.is_ascii_digit()))
        })
        .max()
}

impl StateDb {
    /// Open (creating when absent) the database in `dir`. The directory is
    /// made 0700 and the file 0600: it lists the network's hosts.
    pub fn open(dir: &Path) -> Result<StateDb, StateError> {
        let dir_err = |error| StateError::Dir {
            path: dir.display().to_string(),
            error,
        };
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(StateError::NotDir {
                path: dir.display().to_string(),
            });
        }
        if !dir.exists() {
            // A typo in --state would otherwise start a fresh state unseen.
            tracing::info!("creating the state directory '{}'", dir.display());
        } else if !dir.join(DB_FILE).exists()
            && let Some(found) = foreign_entry(dir)
        {
            // `--state /var/lib` or `--state .` by mistake: the directory
            // would be made 0700 and, as root, handed to the capture user.
            return Err(StateError::NotState {
                path: dir.display().to_string(),
                found,
            });
        }
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(dir_err)?;
        }
        let path = dir.join(DB_FILE);
        let fresh = !path.exists();
        if fresh {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(dir_err)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(dir_err)?;
            }
        }
        let db = StateDb::connect(&path, dir)?;
        db.init()?;
        Ok(db)
    }

    /// Open the database in `dir` for reading only: for a state directory
    /// that cannot be written (a file system mounted read-only), whose
    /// database exists and is intact. [`StateDb::load`] works;
    /// [`StateDb::save`] fails with [`StateError::ReadOnly`] (`why`, the
    /// reason the directory could not be written) until the directory can be
    /// opened for writing again.
    pub fn open_read_only(dir: &Path, why: &str) -> Result<StateDb, StateError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StateError::Missing {
                path: dir.display().to_string(),
            });
        }
        let mut db = StateDb::connect_read_only(&path, dir, false)?;
        db.read_only = Some(why.to_string());
        let error = match db.check_version() {
            Ok(()) => return Ok(db),
            Err(e @ StateError::Db { .. }) => e,
            Err(e) => return Err(e),
        };
        // A WAL database needs its -shm and -wal files, which a read-only
        // directory cannot get: absent after a clean stop. Then nothing is in
        // the WAL, and the file alone is the whole state: read it as
        // immutable. (With a non-empty WAL, immutable would read an older
        // state: the error stands.)
        let wal = dir.join(format!("{DB_FILE}-wal"));
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(error);
        }
        let mut db = StateDb::connect_read_only(&path, dir, true)?;
        db.read_only = Some(why.to_string());
        db.check_version()?;
        Ok(db)
    }

    /// Why the directory cannot be written, when opened read-only (and no
    /// save has opened it for writing since).
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// [`StateDb::open`], and if the database is damaged, move it aside (with
    /// its WAL files) for inspection; then start afresh only if `reset`, else
    /// fail with an error that says where the file went and what to do.
    pub fn open_or_quarantine(dir: &Path, reset: bool) -> Result<StateDb, StateError> {
        let path = dir.join(DB_FILE);
        if !reset
            && !path.exists()
            && let Some(aside) = set_aside(dir)
        {
            return Err(StateError::SetAside {
                path: path.display().to_string(),
                aside: dir.join(aside).display().to_string(),
            });
        }
        match StateDb::open(dir) {
            Err(StateError::Damaged { path, detail }) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = format!("{path}.damaged-{stamp}");
                for ext in ["", "-wal", "-shm"] {
                    let from = format!("{path}{ext}");
                    if Path::new(&from).exists() {
                        std::fs::rename(&from, format!("{aside}{ext}")).map_err(|error| {
                            StateError::Dir {
                                path: from.clone(),
                                error,
                            }
                        })?;
                    }
                }
                if reset {
                    tracing::warn!(
                        "state database '{path}' was damaged ({detail}); kept as '{aside}', starting afresh (--reset-state)"
                    );
                    StateDb::open(dir)
                } else {
                    Err(StateError::Quarantined {
                        path,
                        detail,
                        aside,
                    })
                }
            }
            other => other,
        }
    }

    /// Open an existing database for reading (`scanwatch hosts`, `scanners`).
    pub fn open_existing(dir: &Path) -> Result<StateDb, StateError> {
        let path = dir.join(DB_FILE);
        // Only a file that is not there is missing: a directory this user
        // may not read says so (`exists()` would call both "missing").
        match std::fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    path: dir.display().to_string(),
                });
            }
            Err(error) => {
                return Err(StateError::Dir {
                    path: dir.display().to_string(),
                    error,
                });
            }
        }
        let db = StateDb::connect(&path, dir)?;
        match db.check_version() {
            // A directory that cannot be written (a read-only copy): read it
            // as such.
            Err(e) if e.unwritable().is_some() => {
                let why = e.unwritable().unwrap_or_default();
                StateDb::open_read_only(dir, &why).map_err(|_| e)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(db),
        }
    }

    fn connect(path: &Path, dir: &Path) -> Result<StateDb, StateError> {
        let conn = Connection::open(path).map_err(|error| StateError::Db {
            path: path.display().to_string(),
            error,
        })?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            read_only: None,
        })
    }

    fn connect_read_only(path: &Path, dir: &Path, immutable: bool) -> Result<StateDb, StateError> {
        use rusqlite::OpenFlags;
        let err = |error| StateError::Db {
            path: path.display().to_string(),
            error,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(err)?;
        Ok(StateDb {
            conn,
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            read_only: None,
        })
    }

    fn db_err(&self, source: rusqlite::Error) -> StateError {
        match source {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                StateError::Damaged {
                    path: self.path.display().to_string(),
                    detail: e.to_string(),
                }
            }
            error => StateError::Db {
                path: self.path.display().to_string(),
                error,
            },
        }
    }

    fn init(&self) -> Result<(), StateError> {
        self.conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            ))
            .map_err(|e| self.db_err(e))?;
        // A newer scanwatch's state is refused before anything is written
        // to it.
        let version = self.meta("schema_version")?;
        if version.is_some() {
            self.check_version()?;
        }
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS hosts (addr TEXT PRIMARY KEY, first_alive INTEGER NOT NULL,
                                                   last_alive INTEGER NOT NULL, seen INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS sources (addr TEXT PRIMARY KEY, state TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS scanners (addr TEXT PRIMARY KEY, scanning_windows INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS pending (n INTEGER PRIMARY KEY, src TEXT NOT NULL, dst TEXT NOT NULL,
                     sport INTEGER NOT NULL, dport INTEGER NOT NULL, proto INTEGER NOT NULL,
                     first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, isn INTEGER NOT NULL,
                     retrans INTEGER NOT NULL, vlan0 INTEGER NOT NULL, vlan1 INTEGER NOT NULL,
                     state INTEGER NOT NULL, probe INTEGER NOT NULL, initiator_reset INTEGER NOT NULL);",
            )
            .map_err(|e| self.db_err(e))?;
        // New, or version 1 (which lacked only `pending`, made above).
        if version.as_deref() != Some(&SCHEMA_VERSION.to_string()) {
            self.set_meta("schema_version", &SCHEMA_VERSION.to_string())?;
        }
        Ok(())
    }

    fn check_version(&self) -> Result<(), StateError> {
        let v = self
            .meta("schema_version")?
            .ok_or_else(|| StateError::Damaged {
                path: self.path.display().to_string(),
                detail: "no schema version".into(),
            })?;
        let found: i64 = v.parse().map_err(|_| StateError::Damaged {
            path: self.path.display().to_string(),
            detail: format!("schema version '{v}'"),
        })?;
        if found > SCHEMA_VERSION {
            return Err(StateError::Newer {
                path: self.path.display().to_string(),
                found,
            });
        }
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.db_err(e))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.db_err(e))
    }

    fn damaged(&self, what: &str, e: impl std::fmt::Display) -> StateError {
        StateError::Damaged {
            path: self.path.display().to_string(),
            detail: format!("{what}: {e}"),
        }
    }

    /// Build the analytics from what was saved (or fresh, for a new database),
    /// within the caps of `cfg`: a state saved with larger ones is cut down
    /// to them (see [`crate::inventory::most_recent`] and
    /// `keep_sources_within_cap`), with one warning.
    pub fn load(&self, cfg: DetectorSection) -> Result<Analytics, StateError> {
        let mut a = Analytics::new(cfg);
        if let Some(v) = self.meta("first_ts")? {
            a.first_ts = Some(v.parse().map_err(|e| self.damaged("first_ts", e))?);
        }
        if let Some(v) = self.meta("clock")? {
            a.clock = v.parse().map_err(|e| self.damaged("clock", e))?;
        }
        if let Some(v) = self.meta("window")? {
            a.window = v.parse().map_err(|e| self.damaged("window", e))?;
        }
        // Absent from a state saved before they were kept: the calendar
        // since the first record stands in (see `Analytics::close_window`).
        a.data_windows = match self.meta("data_windows")? {
            Some(v) => Some(
                serde_json::from_str::<Vec<i64>>(&v)
                    .map_err(|e| self.damaged("data_windows", e))?
                    .into(),
            ),
            None if a.first_ts.is_some() => None,
            None => a.data_windows.take(),
        };
        if let Some(v) = self.meta("population")? {
            let p: Vec<PopWindow> =
                serde_json::from_str(&v).map_err(|e| self.damaged("population", e))?;
            a.population = p.into();
            a.pop_median = crate::analyze::population_median(&a.population);
        }
        if let Some(v) = self.meta("stats")? {
            a.stats =
                serde_json::from_str::<AnalyticsStats>(&v).map_err(|e| self.damaged("stats", e))?;
        }
        let hosts = self.hosts(None)?;
        let saved_hosts = hosts.len();
        let hosts_dropped = a.inv.restore_all(hosts);
        let mut st = self
            .conn
            .prepare("SELECT addr, state FROM sources")
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.db_err(e))?;
        for row in rows {
            let (addr, state) = row.map_err(|e| self.db_err(e))?;
            let key = parse_addr(&addr).ok_or_else(|| self.damaged("source address", &addr))?;
            let s = serde_json::from_str(&state)
                .map_err(|e| self.damaged(&format!("source {addr}"), e))?;
            a.sources.insert(key, s);
        }
        let saved_sources = a.sources.len();
        let sources_dropped = keep_sources_within_cap(&mut a);
        if hosts_dropped + sources_dropped > 0 {
            let mut what = Vec::new();
            if hosts_dropped > 0 {
                what.push(format!(
                    "{saved_hosts} hosts, more than detector.max_hosts ({}): kept those seen alive most recently, {hosts_dropped} forgotten (counted in hosts_forgotten)",
                    a.cfg.max_hosts
                ));
            }
            if sources_dropped > 0 {
                what.push(format!(
                    "{saved_sources} sources, more than detector.max_sources ({}): kept learned scanners, then those alerted, then those with the most history and evidence, {sources_dropped} forgotten",
                    a.cfg.max_sources
                ));
            }
            tracing::warn!(
                "state database '{}' holds {}",
                self.path.display(),
                what.join("; and ")
            );
        }
        a.carried = self.carried()?;
        if let Some(v) = self.meta("carried_until")? {
            a.carried_until = v.parse().map_err(|e| self.damaged("carried_until", e))?;
        }
        a.recount_evidence();
        Ok(a)
    }

    /// The attempts the last run left undecided (none in a version-1 state
    /// opened read-only, which has no table for them).
    fn carried(&self) -> Result<Vec<Carried>, StateError> {
        let has_table = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pending'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.db_err(e))?
            > 0;
        if !has_table {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT src, dst, sport, dport, proto, first_ts, last_ts, isn, retrans, vlan0, vlan1,
                        state, probe, initiator_reset FROM pending ORDER BY n",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| {
                let mut ints = [0i64; 12];
                for (i, v) in ints.iter_mut().enumerate() {
                    *v = r.get(i + 2)?;
                }
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, ints))
            })
            .map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (src, dst, v) = row.map_err(|e| self.db_err(e))?;
            let c = (|| {
                let proto = match v[2] {
                    PROTO_ARP => Proto::Arp,
                    n => Proto::from_ip_number(u8::try_from(n).ok()?),
                };
                let c = Carried {
                    key: FlowKey {
                        src: parse_addr(&src)?,
                        dst: parse_addr(&dst)?,
                        sport: u16::try_from(v[0]).ok()?,
                        dport: u16::try_from(v[1]).ok()?,
                        proto,
                    },
                    first_ts: v[3],
                    last_ts: v[4],
                    isn: u32::try_from(v[5]).ok()?,
                    retrans: u32::try_from(v[6]).ok()?,
                    vlan: [u16::try_from(v[7]).ok()?, u16::try_from(v[8]).ok()?],
                    state: u8::try_from(v[9]).ok()?,
                    probe: u8::try_from(v[10]).ok()?,
                    initiator_reset: v[11] != 0,
                };
                c.is_valid().then_some(c)
            })()
            .ok_or_else(|| self.damaged("pending attempt", format!("{src} -> {dst} {v:?}")))?;
            out.push(c);
        }
        Ok(out)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a checkpoint of `a`: everything, in one transaction, then fold
    /// the WAL into the database and truncate it. On failure (disk full,
    /// read-only file system) the transaction is rolled back, the file keeps
    /// the previous checkpoint, and the next call tries again.
    ///
    /// Opened read-only: first try to open the directory for writing (it may
    /// have been remounted read-write); while that fails,
    /// [`StateError::ReadOnly`].
    pub fn save(&mut self, a: &Analytics) -> Result<(), StateError> {
        if self.read_only.is_some() {
            match StateDb::open(&self.dir) {
                Ok(db) => {
                    tracing::info!(
                        "state directory '{}' can be written again: checkpoints are saved from now on",
                        self.dir.display()
                    );
                    *self = db;
                }
                Err(e) => {
                    return Err(match e.unwritable() {
                        Some(reason) => StateError::ReadOnly {
                            dir: self.dir.display().to_string(),
                            reason,
                        },
                        None => e,
                    });
                }
            }
        }
        self.write(a).map_err(|e| self.with_os_error(e))?;
        self.truncate_wal();
        Ok(())
    }

    /// Copy the WAL into the database and truncate it to nothing. The
    /// checkpoint is committed before: a failure here loses nothing (the WAL
    /// holds it) and is only logged; a reader holding the WAL (`scanwatch
    /// hosts`) lets it be done next time.
    fn truncate_wal(&self) {
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        match r {
            Ok(0) => {}
            Ok(_) => tracing::debug!(
                "state database '{}': WAL not truncated (a reader holds it); next checkpoint",
                self.path.display()
            ),
            Err(e) => tracing::warn!(
                "state database '{}': the checkpoint is saved, but its WAL could not be folded back and truncated: {e}",
                self.path.display()
            ),
        }
    }

    /// Add the system's reason to an I/O failure SQLite reports.
    fn with_os_error(&self, e: StateError) -> StateError {
        let StateError::Db {
            path,
            error: rusqlite::Error::SqliteFailure(f, msg),
        } = e
        else {
            return e;
        };
        // SQLite keeps the system's errno for these (a full disk has its own
        // code and message, "database or disk is full").
        use rusqlite::ErrorCode::*;
        let io = matches!(f.code, SystemIoFailure | CannotOpen);
        // SAFETY: the handle is this open connection's; the call only reads
        // the errno SQLite saved with its last failed system call.
        let errno = if io {
            unsafe { rusqlite::ffi::sqlite3_system_errno(self.conn.handle()) }
        } else {
            0
        };
        let error = rusqlite::Error::SqliteFailure(f, msg);
        if errno > 0 {
            StateError::Write {
                path,
                error,
                os: std::io::Error::from_raw_os_error(errno),
            }
        } else {
            StateError::Db { path, error }
        }
    }

    fn write(&mut self, a: &Analytics) -> Result<(), StateError> {
        let path = self.path.display().to_string();
        let e = |error| StateError::Db {
            path: path.clone(),
            error,
        };
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute_batch(
            "DELETE FROM hosts; DELETE FROM sources; DELETE FROM scanners; DELETE FROM pending;",
        )
        .map_err(e)?;
        {
            let mut m = tx
                .prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(e)?;
            if let Some(f) = a.first_ts {
                m.execute(params!["first_ts", f.to_string()]).map_err(e)?;
            }
            m.execute(params!["clock", a.clock.to_string()])
                .map_err(e)?;
            m.execute(params!["carried_until", a.carried_until.to_string()])
                .map_err(e)?;
            m.execute(params!["window", a.window.to_string()])
                .map_err(e)?;
            if let Some(d) = &a.data_windows {
                let d: Vec<i64> = d.iter().copied().collect();
                m.execute(params![
                    "data_windows",
                    serde_json::to_string(&d).expect("serialises")
                ])
                .map_err(e)?;
            }
            let pop: Vec<PopWindow> = a.population.iter().copied().collect();
            m.execute(params![
                "population",
                serde_json::to_string(&pop).expect("serialises")
            ])
            .map_err(e)?;
            m.execute(params![
                "stats",
                serde_json::to_string(&a.stats).expect("serialises")
            ])
            .map_err(e)?;
            let mut h = tx
                .prepare("INSERT INTO hosts (addr, first_alive, last_alive, seen) VALUES (?1, ?2, ?3, ?4)")
                .map_err(e)?;
            for (addr, host) in a.inv.sorted() {
                h.execute(params![
                    addr.to_string(),
                    host.first_alive,
                    host.last_alive,
                    i64::from(host.seen)
                ])
                .map_err(e)?;
            }
            let mut s = tx
                .prepare("INSERT INTO sources (addr, state) VALUES (?1, ?2)")
                .map_err(e)?;
            let mut sorted: Vec<_> = a.sources.iter().collect();
            sorted.sort_by_key(|(k, _)| **k);
            for (addr, src) in sorted {
                s.execute(params![
                    addr.to_string(),
                    serde_json::to_string(src).expect("serialises")
                ])
                .map_err(e)?;
            }
            let mut sc = tx
                .prepare("INSERT INTO scanners (addr, scanning_windows) VALUES (?1, ?2)")
                .map_err(e)?;
            for (addr, n) in a.learned_scanners() {
                sc.execute(params![addr.to_string(), n as i64]).map_err(e)?;
            }
            let mut pe = tx
                .prepare(
                    "INSERT INTO pending (n, src, dst, sport, dport, proto, first_ts, last_ts, isn, retrans,
                                          vlan0, vlan1, state, probe, initiator_reset)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(e)?;
            for (n, c) in a.carried.iter().enumerate() {
                let proto = match c.key.proto {
                    Proto::Arp => PROTO_ARP,
                    p => i64::from(p.number()),
                };
                pe.execute(params![
                    n as i64,
                    c.key.src.to_string(),
                    c.key.dst.to_string(),
                    c.key.sport,
                    c.key.dport,
                    proto,
                    c.first_ts,
                    c.last_ts,
                    c.isn,
                    c.retrans,
                    c.vlan[0],
                    c.vlan[1],
                    c.state,
                    c.probe,
                    c.initiator_reset
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Hosts of the inventory (one, or all sorted by address).
    pub fn hosts(&self, one: Option<Addr>) -> Result<Vec<(Addr, Host)>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT addr, first_alive, last_alive, seen FROM hosts")
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (addr, first_alive, last_alive, seen) = row.map_err(|e| self.db_err(e))?;
            let a = parse_addr(&addr).ok_or_else(|| self.damaged("host address", &addr))?;
            if one.is_none_or(|o| o == a) {
                out.push((
                    a,
                    Host {
                        first_alive,
                        last_alive,
                        seen: seen as u8,
                    },
                ));
            }
        }
        out.sort_by_key(|(a, _)| *a);
        Ok(out)
    }

    /// Learned sanctioned scanners.
    pub fn scanners(&self) -> Result<Vec<ScannerRow>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT addr, scanning_windows FROM scanners")
            .map_err(|e| self.db_err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (addr, n) = row.map_err(|e| self.db_err(e))?;
            if let Some(a) = parse_addr(&addr) {
                out.push(ScannerRow {
                    addr: a,
                    scanning_windows: n,
                });
            }
        }
        out.sort_by_key(|r| r.addr);
        Ok(out)
    }

    /// The activation clock and the latest event time saved, if any.
    pub fn clocks(&self) -> Result<(Option<i64>, Option<i64>), StateError> {
        let p = |v: Option<String>| v.and_then(|s| s.parse().ok());
        Ok((p(self.meta("first_ts")?), p(self.meta("clock")?)))
    }
}

/// Keep at most `detector.max_sources` of the sources just loaded (a state
/// saved with a larger cap): those with the most to lose, in this order:
/// learned sanctioned scanners (forgotten, one would be alerted on again
/// until relearned, days later), sources with an alert (forgotten, the
/// dedup and `previous_alert` go, and a scan going on is alerted again),
/// the most windows of history (their own baseline), the most evidence in
/// the current window, the latest activity; last, by address, so the choice
/// depends only on the state. Linear time; the sources forgotten and the
/// table that held them are freed. Returns how many were forgotten.
fn keep_sources_within_cap(a: &mut Analytics) -> usize {
    use std::cmp::Reverse;
    let cap = a.cfg.max_sources;
    if a.sources.len() <= cap {
        return 0;
    }
    let mut ranked: Vec<_> = a
        .sources
        .iter()
        .map(|(addr, s)| {
            let rank = (
                s.learned,
                s.last_alert.is_some(),
                s.history.len(),
                s.attempts_all.saturating_add(s.trw_succ),
                s.last_ts,
            );
            (Reverse((rank, *addr)), *addr)
        })
        .collect();
    let dropped = ranked.len() - cap;
    if cap > 0 {
        ranked.select_nth_unstable(cap - 1);
    }
    let mut all = std::mem::take(&mut a.sources);
    for (_, addr) in &ranked[..cap] {
        let s = all.remove(addr).expect("ranked from the table");
        a.sources.insert(*addr, s);
    }
    dropped
}

/// `path` for an SQLite URI: '%', '?' and '#' escaped (the rest passes).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            b if b.is_ascii_graphic() => out.push(*b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn parse_addr(s: &str) -> Option<Addr> {
    s.parse::<std::net::IpAddr>().ok().map(Addr::from)
}

#[cfg(test)]
mod tests;
