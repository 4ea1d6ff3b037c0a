//! `basalt tune check` and the start-up checks of `basalt server`, run as the
//! real binary: output parsed, and the fatal checks exercised by lowering a
//! limit in the child process.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

fn basalt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_basalt"))
}

/// Runs `cmd` with the open-files limit lowered to `nofile` (soft and hard).
fn with_nofile(mut cmd: Command, nofile: u64) -> Output {
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, nofile, nofile)
                .map_err(std::io::Error::from)
        });
    }
    cmd.output().expect("basalt runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn check_reports_every_drive_and_passes_here() {
    let dir = tempfile::tempdir().unwrap();
    let d1 = dir.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let out = basalt().args(["tune", "check", "--cores", "2"]).arg(&d1).arg(dir.path().join("d2")).output().unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for line in ["io_uring: available", "kernel:", "open files (nofile)", "locked memory (memlock)", "cpus:"] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
    for d in ["d1", "d2"] {
        for what in ["filesystem", "O_DIRECT", "space"] {
            assert!(report.lines().any(|l| l.contains(&format!("{d} {what}"))), "no {what} line for {d}:\n{report}");
        }
    }
    assert!(report.contains("d2 path: does not exist"), "{report}");
    // Every finding is OK, WARN or FAIL, and the summary counts them.
    let findings =
        report.lines().filter(|l| l.starts_with("OK ") || l.starts_with("WARN") || l.starts_with("FAIL")).count();
    assert!(report.contains(&format!("{findings} checks: 0 failed")), "{report}");
    // Nothing was left on the drive by the O_DIRECT probe.
    assert_eq!(std::fs::read_dir(&d1).unwrap().count(), 0);
}

#[test]
fn too_few_open_files_is_fatal_for_check_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut check = basalt();
    check.args(["tune", "check"]).arg(dir.path());
    let out = with_nofile(check, 256);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL open files (nofile): hard limit 256"), "{report}");
    let mut server = basalt();
    server.args(["server", "--address", "127.0.0.1:0"]).arg(dir.path().join("d{1...4}"));
    let out = with_nofile(server, 256);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(report.contains("cannot run basalt") && report.contains("nofile"), "{report}");
    assert!(!dir.path().join("d1").exists(), "the server refused before touching the drives");
}
