//! `basalt tune check`: reads the machine (changes nothing) and reports, for
//! the kernel, limits, CPUs and each drive, whether basalt will run well, with
//! the advice of tuning/README.md. `basalt server` runs the fatal subset at
//! start ([`fatal_problems`]) and refuses to start with a clear message.
//!
//! Everything here is start-up or operator tooling: plain blocking std I/O on
//! /proc and /sys, never on an executor.

pub mod malloc;

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Open files basalt cannot run without: a few per drive and per connection.
pub const MIN_NOFILE: u64 = 1024;
/// Open files below which a busy node runs out under load.
pub const GOOD_NOFILE: u64 = 65_536;
/// Locked memory each executor's io_uring rings need on kernels that charge
/// the rings to RLIMIT_MEMLOCK (before [`RINGS_UNCHARGED_KERNEL`]): without it
/// they cannot be set up at all.
pub const MEMLOCK_RINGS_PER_CORE_BYTES: u64 = 16 << 20;
/// Kernels from here on charge io_uring's rings to the memory cgroup, not
/// memlock. Registered buffers are charged to memlock on every kernel.
const RINGS_UNCHARGED_KERNEL: (u32, u32) = (5, 12);
/// How many times the kernel charges an executor's registered I/O arena
/// ([`crate::runtime::IO_MEMORY_BYTES_PER_CORE`]) to RLIMIT_MEMLOCK: glommio
/// registers it with each of its three rings (main, poll, latency), and each
/// registration is counted (`VmPin` in /proc shows it three times).
pub const IO_BUFFER_REGISTRATIONS: u64 = 3;
/// The `CapEff` bit of CAP_IPC_LOCK, which exempts a process from memlock.
const CAP_IPC_LOCK_BIT: u32 = 14;
/// Oldest kernel glommio's io_uring use is tested on.
const MIN_KERNEL: (u32, u32) = (5, 10);
/// Free space below which a drive is reported.
const LOW_FREE_FRACTION: f64 = 0.10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub detail: String,
    /// What to do about it (empty when all is well).
    pub advice: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {}: {}", self.what, self.detail)?;
        if !self.advice.is_empty() {
            write!(f, "\n     -> {}", self.advice)?;
        }
        Ok(())
    }
}

fn check(level: Level, what: impl Into<String>, detail: impl Into<String>, advice: impl Into<String>) -> Check {
    Check { level, what: what.into(), detail: detail.into(), advice: advice.into() }
}

fn kernel_version() -> Option<(u32, u32, String)> {
    let release = nix::sys::utsname::uname().ok()?.release().to_string_lossy().to_string();
    let mut nums = release.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    let major = nums.next()?.parse().ok()?;
    let minor = nums.next()?.parse().ok()?;
    Some((major, minor, release))
}

fn kernel_check() -> Check {
    match kernel_version() {
        Some((ma, mi, rel)) if (ma, mi) >= MIN_KERNEL => check(Level::Ok, "kernel", rel, ""),
        Some((_, _, rel)) => check(
            Level::Warn,
            "kernel",
            rel,
            format!("basalt is tested on Linux {}.{} or newer; upgrade the kernel", MIN_KERNEL.0, MIN_KERNEL.1),
        ),
        None => check(Level::Warn, "kernel", "version unknown", ""),
    }
}

/// Whether the kernel lets this process create an io_uring.
fn io_uring_check() -> Check {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        && v.trim() == "2"
    {
        return check(
            Level::Fail,
            "io_uring",
            "disabled by kernel.io_uring_disabled=2",
            "set the sysctl kernel.io_uring_disabled=0 (tuning/sysctl.d/60-basalt.conf)",
        );
    }
    // io_uring_setup(2) with one entry; the parameter block is 120 bytes of zeros.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes exactly the 120-byte parameter block
    // we pass; on success it returns a file descriptor we own and close at once.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        return check(
            Level::Fail,
            "io_uring",
            format!("unavailable ({err})"),
            "basalt does all drive and network I/O through io_uring: use Linux 5.10+ with io_uring enabled, \
             and allow it in seccomp/container profiles",
        );
    }
    // SAFETY: fd is a valid descriptor returned above and not used elsewhere.
    unsafe { nix::libc::close(fd as i32) };
    check(Level::Ok, "io_uring", "available", "")
}

fn limit_checks(cores: usize) -> Vec<Check> {
    use nix::sys::resource::{Resource, getrlimit};
    let mut out = Vec::new();
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) if hard < MIN_NOFILE => out.push(check(
            Level::Fail,
            "open files (nofile)",
            format!("hard limit {hard}"),
            format!("basalt needs at least {MIN_NOFILE}; set LimitNOFILE=1048576 (tuning/systemd/basalt.service)"),
        )),
        Ok((_, hard)) if hard < GOOD_NOFILE => out.push(check(
            Level::Warn,
            "open files (nofile)",
            format!("hard limit {hard}"),
            "raise it to 65536 or more (LimitNOFILE in the systemd unit, or ulimit -n)",
        )),
        Ok((soft, hard)) => out.push(check(
            Level::Ok,
            "open files (nofile)",
            format!("soft {soft}, hard {hard} (basalt raises soft to hard)"),
            "",
        )),
        Err(e) => out.push(check(Level::Warn, "open files (nofile)", format!("unknown ({e})"), "")),
    }
    let kernel = kernel_version().map(|(major, minor, _)| (major, minor));
    out.push(memlock_check(getrlimit(Resource::RLIMIT_MEMLOCK).ok(), has_cap_ipc_lock(), kernel, cores));
    out
}

/// Locked memory for `cores` executors, given the memlock limits (soft, hard)
/// if known, whether the process has CAP_IPC_LOCK (then nothing is charged),
/// and the kernel's (major, minor) if known. basalt raises its soft limit to
/// the hard one at start, so the hard limit is what counts.
fn memlock_check(limits: Option<(u64, u64)>, cap_ipc_lock: bool, kernel: Option<(u32, u32)>, cores: usize) -> Check {
    const WHAT: &str = "locked memory (memlock)";
    const ADVICE: &str = "set LimitMEMLOCK=infinity (tuning/systemd/basalt.service) or ulimit -l unlimited";
    let Some((soft, hard)) = limits else {
        return check(Level::Warn, WHAT, "unknown", "");
    };
    let cores = cores as u64;
    let rings = MEMLOCK_RINGS_PER_CORE_BYTES * cores;
    let buffers = IO_BUFFER_REGISTRATIONS * crate::runtime::IO_MEMORY_BYTES_PER_CORE as u64 * cores;
    let rings_charged = kernel.is_none_or(|k| k < RINGS_UNCHARGED_KERNEL);
    let unlimited = hard == nix::sys::resource::RLIM_INFINITY;
    if cap_ipc_lock || unlimited {
        let why = if cap_ipc_lock { "CAP_IPC_LOCK: nothing is charged" } else { "unlimited" };
        return check(Level::Ok, WHAT, format!("soft {soft}, hard {hard} ({why}); I/O buffers registered"), "");
    }
    let need = buffers + if rings_charged { rings } else { 0 };
    if rings_charged && hard < rings {
        return check(
            Level::Fail,
            WHAT,
            format!("hard limit {} KiB, {cores} executors need {} KiB on this kernel", hard >> 10, need >> 10),
            ADVICE,
        );
    }
    if hard < need {
        return check(
            Level::Warn,
            WHAT,
            format!(
                "hard limit {} KiB: the I/O buffers of {cores} executors need {} KiB to be registered with io_uring; \
                 without that, every direct read and write pins its pages (large GETs and PUTs cost 7-8% more CPU)",
                hard >> 10,
                need >> 10
            ),
            ADVICE,
        );
    }
    check(Level::Ok, WHAT, format!("soft {soft}, hard {hard}; I/O buffers registered"), "")
}

/// Whether this process holds CAP_IPC_LOCK (as root normally does).
fn has_cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK_BIT) != 0)
}

/// The checks that do not stop basalt but that it should say at start: the
/// I/O buffers it cannot register.
pub fn start_warnings(cores: usize) -> Vec<Check> {
    let mut out = limit_checks(cores);
    out.retain(|c| c.level == Level::Warn && c.what.starts_with("locked memory"));
    out
}

fn cpu_checks() -> Vec<Check> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let isolated = std::fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let isolated = isolated.trim();
    vec![check(
        Level::Ok,
        "cpus",
        format!("{cpus} available to basalt, isolated: {}", if isolated.is_empty() { "none" } else { isolated }),
        if cpus > 2 && isolated.is_empty() {
            "optional: isolate the cores given to basalt (isolcpus/nohz_full) and steer IRQs away (tuning/README.md)"
        } else {
            ""
        },
    )]
}

/// Filesystem name from statfs's magic.
fn fs_name(magic: i64) -> &'static str {
    match magic {
        0x5846_5342 => "xfs",
        0xEF53 => "ext4",
        0x0102_1994 => "tmpfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        _ => "other",
    }
}

/// The filesystem holding `path`, by name.
#[allow(clippy::unnecessary_cast)] // f_type is i64 here but narrower on other architectures
fn fs_of(path: &Path) -> &'static str {
    nix::sys::statfs::statfs(path).map(|s| fs_name(s.filesystem_type().0 as i64)).unwrap_or("unknown")
}

/// The mount entry (mount point, options, source) holding `path`.
fn mount_of(path: &Path) -> Option<(String, String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(String, String, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        if fields.len() < sep + 3 || fields.len() < 6 {
            continue;
        }
        let mount_point = fields[4];
        if path.starts_with(mount_point) && best.as_ref().is_none_or(|b| mount_point.len() >= b.0.len()) {
            best = Some((mount_point.to_string(), fields[5].to_string(), fields[sep + 2].to_string()));
        }
    }
    best
}

/// The block device under `path` as named in /sys/block (the whole disk).
fn block_device(path: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let link = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    // A partition's directory sits inside its disk's; the disk has the queue.
    if link.join("partition").exists() {
        return link.parent()?.file_name().map(|n| n.to_string_lossy().to_string());
    }
    link.file_name().map(|n| n.to_string_lossy().to_string())
}

fn direct_io_works(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".basalt-tune-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(&probe)
            .map_err(|e| e.to_string())?;
        let layout = std::alloc::Layout::from_size_align(4096, 4096).map_err(|e| e.to_string())?;
        // SAFETY: layout is non-zero sized; the buffer is zeroed, written once and freed below.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("out of memory".to_string());
        }
        // SAFETY: ptr points to 4096 initialised bytes owned here.
        let buf = unsafe { std::slice::from_raw_parts(ptr, 4096) };
        let r = f.write_all(buf).map_err(|e| e.to_string());
        // SAFETY: allocated above with the same layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
        r
    })();
    let _ = std::fs::remove_file(&probe);
    result
}

fn drive_checks(drive: &Path) -> Vec<Check> {
    let name = |what: &str| format!("{} {what}", drive.display());
    let mut out = Vec::new();
    // A drive that does not exist yet is created by basalt; check where it would live.
    let existing: PathBuf = drive.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_path_buf();
    if existing != drive {
        out.push(check(
            Level::Warn,
            name("path"),
            format!("does not exist; basalt will create it on the filesystem of {}", existing.display()),
            "mount the drive's volume there first, or basalt writes to the parent filesystem",
        ));
    }
    let fs = fs_of(&existing);
    let (fs_level, fs_advice) = match fs {
        "xfs" => (Level::Ok, ""),
        "ext4" => (Level::Ok, "XFS is recommended for large files and parallel I/O (tuning/README.md)"),
        "tmpfs" => (Level::Warn, "tmpfs loses everything at reboot: for tests only"),
        _ => (Level::Warn, "use XFS (or ext4) on a dedicated block volume (tuning/README.md)"),
    };
    out.push(check(fs_level, name("filesystem"), fs, fs_advice));
    if let Some((mount_point, options, source)) = mount_of(&existing) {
        let atime = !options.split(',').any(|o| o == "noatime");
        let root = mount_point == "/";
        out.push(check(
            if atime || root { Level::Warn } else { Level::Ok },
            name("mount"),
            format!("{source} on {mount_point} ({options})"),
            match (root, atime) {
                (true, _) => "the drive is on the root filesystem: give each drive its own volume",
                (false, true) => "mount with noatime: every read would otherwise write an access time",
                _ => "",
            },
        ));
    }
    match block_device(&existing) {
        Some(dev) => {
            let queue = Path::new("/sys/block").join(&dev).join("queue");
            let scheduler = std::fs::read_to_string(queue.join("scheduler")).unwrap_or_default();
            let active = scheduler.split('[').nth(1).and_then(|s| s.split(']').next()).unwrap_or("unknown").to_string();
            let good = matches!(active.as_str(), "none" | "mq-deadline" | "noop" | "unknown");
            out.push(check(
                if good { Level::Ok } else { Level::Warn },
                name("scheduler"),
                format!("{dev}: {active}"),
                if good {
                    ""
                } else {
                    "use none (NVMe, cloud volumes) or mq-deadline (tuning/udev/60-basalt-scheduler.rules)"
                },
            ));
            let ra: u64 = std::fs::read_to_string(queue.join("read_ahead_kb"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let good = (64..=4096).contains(&ra);
            out.push(check(
                if good { Level::Ok } else { Level::Warn },
                name("read-ahead"),
                format!("{ra} KiB"),
                if good {
                    ""
                } else {
                    "set read_ahead_kb between 128 and 1024 (tuning/udev/60-basalt-scheduler.rules)"
                },
            ));
        }
        None => out.push(check(Level::Ok, name("device"), "not a block device (virtual or network filesystem)", "")),
    }
    match direct_io_works(&existing) {
        Ok(()) => out.push(check(Level::Ok, name("O_DIRECT"), "works", "")),
        Err(_) if fs == "tmpfs" => {
            out.push(check(Level::Warn, name("O_DIRECT"), "impossible on tmpfs; basalt falls back to buffered I/O", ""))
        }
        Err(e) => out.push(check(
            Level::Fail,
            name("O_DIRECT"),
            format!("refused ({e})"),
            "basalt writes shards with O_DIRECT: put the drive on XFS or ext4",
        )),
    }
    if let Ok(s) = nix::sys::statvfs::statvfs(&existing) {
        let unit = s.fragment_size();
        let (total, free) = (s.blocks() * unit, s.blocks_available() * unit);
        let (inodes, free_inodes) = (s.files(), s.files_available());
        let low = total > 0 && (free as f64) < LOW_FREE_FRACTION * total as f64;
        let low_inodes = inodes > 0 && (free_inodes as f64) < LOW_FREE_FRACTION * inodes as f64;
        out.push(check(
            if low || low_inodes { Level::Warn } else { Level::Ok },
            name("space"),
            format!("{} GiB free of {} GiB, {free_inodes} of {inodes} inodes free", free >> 30, total >> 30),
            if low || low_inodes { "less than 10% free: add capacity before writes fail" } else { "" },
        ));
    }
    out
}

/// Every check, for `basalt tune check`.
pub fn all_checks(drives: &[PathBuf], cores: usize) -> Vec<Check> {
    let mut out = vec![kernel_check(), io_uring_check()];
    out.extend(limit_checks(cores));
    out.extend(cpu_checks());
    for d in drives {
        out.extend(drive_checks(d));
    }
    out
}

/// The checks that stop basalt from running, for `basalt server` at start.
pub fn fatal_problems(drives: &[PathBuf], cores: usize) -> Vec<Check> {
    let mut out = vec![io_uring_check()];
    out.extend(limit_checks(cores));
    for d in drives {
        let existing = d.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
        let fs = fs_of(existing);
        if let Err(e) = direct_io_works(existing)
            && fs != "tmpfs"
        {
            out.push(check(
                Level::Fail,
                format!("{} O_DIRECT", d.display()),
                format!("refused ({e})"),
                "basalt writes shards with O_DIRECT: put the drive on XFS or ext4",
            ));
        }
    }
    out.retain(|c| c.level == Level::Fail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_a_temporary_drive() {
        let dir = tempfile::tempdir().unwrap();
        let checks = all_checks(&[dir.path().to_path_buf(), dir.path().join("not/yet")], 2);
        let text: Vec<String> = checks.iter().map(|c| c.to_string()).collect();
        assert!(text.iter().any(|t| t.contains("io_uring")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("O_DIRECT")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("does not exist")), "{text:?}");
        assert!(fatal_problems(&[dir.path().to_path_buf()], 2).is_empty(), "{text:?}");
    }

    #[test]
    fn memlock_is_judged_by_what_this_kernel_charges() {
        const MIB: u64 = 1 << 20;
        let arena = crate::runtime::IO_MEMORY_BYTES_PER_CORE as u64;
        let buffers = |cores: u64| IO_BUFFER_REGISTRATIONS * arena * cores;
        let level = |hard: u64, cap: bool, kernel: (u32, u32), cores: usize| {
            memlock_check(Some((hard, hard)), cap, Some(kernel), cores).level
        };
        // The distributions' default of 8 MiB: new kernels run, but unregistered.
        let warned = memlock_check(Some((8 * MIB, 8 * MIB)), false, Some((6, 8)), 2);
        assert_eq!(warned.level, Level::Warn, "{warned}");
        assert!(warned.detail.contains(&format!("need {} KiB", buffers(2) >> 10)), "{warned}");
        // Old kernels cannot even set up the rings.
        assert_eq!(level(8 * MIB, false, (5, 10), 2), Level::Fail);
        // Enough for every registration of every executor, and no more.
        assert_eq!(level(buffers(4), false, (6, 8), 4), Level::Ok);
        assert_eq!(level(buffers(4) - 1, false, (6, 8), 4), Level::Warn);
        // Old kernels charge the rings on top.
        assert_eq!(level(buffers(4), false, (5, 10), 4), Level::Warn);
        assert_eq!(level(buffers(4) + MEMLOCK_RINGS_PER_CORE_BYTES * 4, false, (5, 10), 4), Level::Ok);
        // CAP_IPC_LOCK (root) or no limit: nothing can fail.
        assert_eq!(level(64 << 10, true, (5, 10), 16), Level::Ok);
        assert_eq!(level(nix::sys::resource::RLIM_INFINITY, false, (5, 10), 16), Level::Ok);
        assert_eq!(memlock_check(None, false, None, 2).level, Level::Warn);
    }
}
