//! What the live sensor does as a daemon: drop privileges once the capture is
//! open, and report.
//!
//! Order matters (as RustNet's sandbox does it): open the capture handles
//! (CAP_NET_RAW), open the state database and the output files, then switch
//! to an unprivileged user, then start the workers. After the switch nothing
//! can open a new capture or touch root-owned files.

use std::ffi::CString;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot switch to user '{user}': {detail}")]
    User { user: String, detail: String },
    #[error("cannot give up capabilities ({what}): {source}")]
    Capabilities {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot hand '{path}' to user '{user}': {source}")]
    Chown {
        path: String,
        user: String,
        source: std::io::Error,
    },
}

/// When running as root, switch to `user` (or `nobody` when it does not
/// exist), first handing `owned` paths (the state directory and its files) to
/// it so checkpoints keep working. Returns the user switched to, or `None`
/// when not root (a systemd `DynamicUser=` service already runs unprivileged,
/// with `AmbientCapabilities=CAP_NET_RAW`).
pub fn drop_privileges(user: &str, owned: &[&Path]) -> Result<Option<String>, DaemonError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let (name, uid, gid) = match lookup(user) {
        Some((u, g)) => (user.to_string(), u, g),
        None => match lookup("nobody") {
            Some((u, g)) => ("nobody".to_string(), u, g),
            None => {
                return Err(DaemonError::User {
                    user: user.into(),
                    detail: "neither it nor 'nobody' exists".into(),
                });
            }
        },
    };
    for p in owned {
        chown_tree(p, uid, gid).map_err(|source| DaemonError::Chown {
            path: p.display().to_string(),
            user: name.clone(),
            source,
        })?;
    }
    let err = |what: &str| DaemonError::User {
        user: name.clone(),
        detail: format!("{what}: {}", std::io::Error::last_os_error()),
    };
    // SAFETY: plain credential syscalls; the order (groups, gid, uid) is the
    // one that leaves no way back.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(err("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(err("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(err("setuid"));
        }
        if libc::getuid() != uid || libc::geteuid() != uid {
            return Err(err("still privileged after setuid"));
        }
    }
    Ok(Some(name))
}

/// Give up every capability, when not root: a `DynamicUser=` service (or
/// `setpriv --ambient-caps=+net_raw`) starts unprivileged with CAP_NET_RAW,
/// which only opening the capture needs. Kept, it would let a compromised
/// sensor open new raw sockets for the rest of its life. (The capture
/// handles already open stay usable: the kernel checks the capability when
/// a packet socket is made, not when it is bound to another interface or
/// sent on.) Call
/// it once the capture is open and before any thread starts: capabilities
/// belong to each thread, and a thread started later inherits the empty
/// sets. (As root, `drop_privileges`' switch of user clears them in every
/// thread.) Returns whether any capability was held.
pub fn drop_capabilities() -> Result<bool, DaemonError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(false);
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default, PartialEq)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let err = |what: &'static str| DaemonError::Capabilities {
        what,
        source: std::io::Error::last_os_error(),
    };
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut held = [Data::default(); 2];
    let none = [Data::default(); 2];
    // SAFETY: capget and capset with a version 3 header and room for its two
    // data words, as capget(2) describes; prctl with the ambient-set
    // arguments it documents. They only change this thread's capabilities.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h as *mut Header, held.as_mut_ptr()) != 0 {
            return Err(err("capget"));
        }
        if held == none {
            // Nothing to give up (the ambient set is within the permitted).
            return Ok(false);
        }
        // Kernels before 4.3 have no ambient set (EINVAL): capset below
        // is all there is to do.
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) != 0
            && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
        {
            return Err(err("clearing the ambient set"));
        }
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, none.as_ptr()) != 0 {
            return Err(err("capset"));
        }
    }
    Ok(true)
}

fn lookup(user: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let c = CString::new(user).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is
    // read at once, before any other call could overwrite it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, points to a valid passwd entry.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

/// Hand the state directory and what scanwatch made in it (the database,
/// the syslog spools and their files) to the capture user; nothing else in
/// it is touched.
fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    if !p.exists() {
        return Ok(());
    }
    // lchown: a link planted in the directory (it belongs to the capture
    // user after the first run) must not hand its target over at the next
    // start as root.
    let own = |q: &Path| std::os::unix::fs::lchown(q, Some(uid), Some(gid));
    own(p)?;
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            let e = e?;
            if !e.file_name().to_str().is_some_and(crate::state::is_ours) {
                continue;
            }
            own(&e.path())?;
            // The entry's own type: a link to a directory is not descended.
            if e.file_type()?.is_dir() {
                for f in std::fs::read_dir(e.path())? {
                    own(&f?.path())?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Only the state directory and what scanwatch made in it change hands:
    /// a file of someone else's in it keeps its owner.
    #[test]
    fn chown_tree_hands_over_only_what_scanwatch_made() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to change owners");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("scanwatch.db"), b"").unwrap();
        std::fs::create_dir(d.join("syslog-0")).unwrap();
        std::fs::write(d.join("syslog-0/spool"), b"").unwrap();
        std::fs::write(d.join("notes.txt"), b"").unwrap();
        // Links planted by the capture user, to files of root's.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("root-file"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path().join("root-file"), d.join("scanwatch.db-x"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path().join("root-file"), d.join("syslog-0/evil"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("syslog-link")).unwrap();
        chown_tree(d, 65534, 65534).unwrap();
        let root_file = std::fs::metadata(outside.path().join("root-file")).unwrap();
        assert_eq!(root_file.uid(), 0, "a link's target keeps its owner");
        assert_eq!(std::fs::metadata(outside.path()).unwrap().uid(), 0);
        let uid = |p: &str| std::fs::metadata(d.join(p)).unwrap().uid();
        assert_eq!(std::fs::metadata(d).unwrap().uid(), 65534);
        for ours in ["scanwatch.db", "syslog-0", "syslog-0/spool"] {
            assert_eq!(uid(ours), 65534, "{ours}");
        }
        assert_eq!(uid("notes.txt"), 0);
    }
}
