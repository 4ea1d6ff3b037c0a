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

/// The `VmPin` line of a process's status, in bytes (0 when absent).
fn pinned_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPin:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib << 10)
}

/// Each executor's I/O arena is registered with io_uring, which the kernel
/// shows as pinned memory (once per ring); where the locked-memory limit
/// forbids that, the server says so at start, as `tune check` does.
#[test]
fn server_registers_its_io_buffers_or_says_why_not() {
    use std::io::Read;
    const CORES: u64 = 2;
    let check = basalt().args(["tune", "check", "--cores", &CORES.to_string()]).output().unwrap();
    let report = text(&check);
    let memlock = report.lines().find(|l| l.contains("locked memory (memlock)")).expect("a memlock line").to_string();
    let registrable = memlock.starts_with("OK");
    let dir = tempfile::tempdir().unwrap();
    let mut server = basalt()
        .args(["server", "--cores", &CORES.to_string(), "--address", "127.0.0.1:0"])
        .arg(dir.path().join("d{1...4}"))
        .env("BASALT_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = server.stderr.take().unwrap();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let arena = basalt::runtime::IO_MEMORY_BYTES_PER_CORE as u64;
    let want = CORES * basalt::tune::IO_BUFFER_REGISTRATIONS * arena;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pinned = 0;
    let seen = loop {
        pinned = pinned.max(pinned_bytes(server.id()));
        let said = log.lock().unwrap().contains("to be registered with io_uring");
        let done = if registrable { pinned >= want } else { said };
        if done || std::time::Instant::now() > deadline || server.try_wait().unwrap().is_some() {
            break done;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    if registrable {
        assert!(seen, "{memlock}\npinned {pinned} bytes, want {want} ({CORES} cores x 3 rings x {arena}):\n{log}");
        assert!(!log.contains("to be registered with io_uring"), "{log}");
    } else {
        assert!(seen, "{memlock}\nthe server did not warn:\n{log}");
        assert_eq!(pinned, 0, "{log}");
    }
}
