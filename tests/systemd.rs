//! The systemd unit and sample configuration that ship in systemd/.

use std::path::Path;
use std::process::Command;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze is needed: run `bash scripts/setup-deps test`")
}

/// `systemd-analyze verify` exits 0 on some errors, so any output fails. The
/// unit names /usr/local/bin/scanwatch; the check runs on a copy that names
/// the binary just built (verify wants the executables to exist).
#[test]
fn unit_verifies_without_a_word() {
    let unit = std::fs::read_to_string(repo("systemd/scanwatch.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("scanwatch.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/scanwatch", env!("CARGO_BIN_EXE_scanwatch")),
    )
    .unwrap();
    let o = analyze(&["verify", copy.to_str().unwrap()]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn unit_is_hardened() {
    let unit = std::fs::read_to_string(repo("systemd/scanwatch.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/local/bin/scanwatch check-config",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "StateDirectory=scanwatch",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK",
        "SystemCallFilter=@system-service",
        "Restart=on-failure",
    ] {
        assert!(
            unit.lines()
                .any(|l| l.trim() == line || l.trim().starts_with(line)),
            "missing: {line}"
        );
    }
    // The README quotes the exposure score; keep it from creeping up.
    let o = analyze(&[
        "security",
        "--offline=true",
        repo("systemd/scanwatch.service").to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    let score: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for scanwatch.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{out}"));
    assert!(score <= 2.0, "exposure {score}");
}

#[test]
fn sample_config_is_valid() {
    let o = Command::new(env!("CARGO_BIN_EXE_scanwatch"))
        .args([
            "check-config",
            "--config",
            repo("systemd/scanwatch.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("interface = \"eth1\"") && out.contains("unix:/dev/log"),
        "{out}"
    );
}
