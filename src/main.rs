//! The `basalt` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "basalt", version, about = "S3-compatible, erasure-coded object storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve S3 on the given drives: directories (/mnt/disk{1...4}) for one node, or
    /// http://host:port/path endpoints for a cluster (http://node{1...4}:9000/mnt/disk{1...4});
    /// every node of a cluster gets the same arguments.
    Server {
        /// Address to listen on; ":9000" means every interface.
        #[arg(long, default_value = ":9000")]
        address: String,
        /// Executors (pinned threads) to run; default: one per CPU.
        #[arg(long)]
        cores: Option<usize>,
        /// Parity shards per erasure set; default by set size (4 drives: 2, 16: 4).
        #[arg(long)]
        parity: Option<usize>,
        /// Region reported to clients (GetBucketLocation) and accepted in signatures.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Domain for virtual-host style requests (bucket.DOMAIN); path style always works.
        #[arg(long)]
        domain: Option<String>,
        /// Also serve the web console (only the console) on this address, e.g. ":9001".
        #[arg(long)]
        console_address: Option<String>,
        /// Drive directories (/mnt/disk{1...4}) or cluster endpoints (http://node{1...4}:9000/mnt/disk1).
        #[arg(required = true)]
        drives: Vec<String>,
    },
    /// Print how the drives (paths or cluster endpoints, as for `server`) would be
    /// grouped into erasure sets, and exit.
    Layout {
        /// Parity shards per erasure set, as for `server`.
        #[arg(long)]
        parity: Option<usize>,
        #[arg(required = true)]
        drives: Vec<String>,
    },
    /// Load-test S3 endpoints (warp-style): put, get, stat, list, delete, mixed,
    /// multipart; `bench compare A.json B.json` prints the differences of two runs.
    Bench {
        #[command(subcommand)]
        what: basalt::bench::BenchCommand,
    },
    /// Ask a running node about the cluster, or have it heal.
    Admin {
        #[command(subcommand)]
        what: AdminCommand,
    },
    /// Check this machine for running basalt (reads only, changes nothing).
    Tune {
        #[command(subcommand)]
        what: TuneCommand,
    },
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The node to ask, e.g. http://127.0.0.1:9000 (any node of the cluster).
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// Root access key; default from BASALT_ROOT_USER (or MINIO_ROOT_USER).
    #[arg(long)]
    access_key: Option<String>,
    /// Root secret key; default from BASALT_ROOT_PASSWORD (or MINIO_ROOT_PASSWORD).
    #[arg(long)]
    secret_key: Option<String>,
    /// Region the node was started with.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Print the node's JSON answer instead of the report.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Nodes, drives (state, free space), erasure sets and quorum. Exits 1 when
    /// the cluster lacks read or write quorum.
    Info(AdminArgs),
    /// Check every object and rebuild missing or damaged shards; prints what was
    /// fixed. Exits 1 when some object could not be healed.
    Heal(AdminArgs),
}

fn admin(what: AdminCommand) -> ExitCode {
    let (args, heal) = match what {
        AdminCommand::Info(a) => (a, false),
        AdminCommand::Heal(a) => (a, true),
    };
    let creds = basalt::auth::Credentials::from_lookup(|k| std::env::var(k).ok()).ok().map(|(c, _)| c);
    let access_key = args.access_key.or_else(|| creds.as_ref().map(|c| c.access_key.clone()));
    let secret_key = args.secret_key.or_else(|| creds.as_ref().map(|c| c.secret_key.clone()));
    let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
        eprintln!("basalt: give --access-key and --secret-key, or set BASALT_ROOT_USER and BASALT_ROOT_PASSWORD");
        return ExitCode::from(2);
    };
    let target = basalt::admin::AdminTarget { endpoint: args.endpoint, access_key, secret_key, region: args.region };
    let result = if heal { basalt::admin::heal(&target, args.json) } else { basalt::admin::info(&target, args.json) };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("basalt: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum TuneCommand {
    /// Kernel, io_uring, limits, CPUs and, for each drive, device, filesystem,
    /// mount options, scheduler, read-ahead, O_DIRECT and free space. Exits 1
    /// when something would stop basalt from running.
    Check {
        /// Executors the server would run (for the locked-memory check); default: one per CPU.
        #[arg(long)]
        cores: Option<usize>,
        /// Drive directories, e.g. /mnt/disk{1...4}.
        drives: Vec<String>,
    },
}

fn expand(args: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for a in args {
        out.extend(basalt::config::ellipsis::expand(a)?.into_iter().map(PathBuf::from));
    }
    Ok(out)
}

fn parse_address(flag: &str, a: &str) -> Result<SocketAddr, String> {
    let full = if a.starts_with(':') { format!("0.0.0.0{a}") } else { a.to_string() };
    full.parse().map_err(|_| format!("{flag} {a:?} is not HOST:PORT (for example :9000 or 127.0.0.1:9000)"))
}

fn tune_check(drives: &[PathBuf], cores: Option<usize>) -> ExitCode {
    let cores = cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let checks = basalt::tune::all_checks(drives, cores);
    for c in &checks {
        basalt::outln!("{c}");
    }
    let failed = checks.iter().filter(|c| c.level == basalt::tune::Level::Fail).count();
    let warned = checks.iter().filter(|c| c.level == basalt::tune::Level::Warn).count();
    basalt::outln!("\n{} checks: {failed} failed, {warned} warnings (advice: tuning/README.md)", checks.len());
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BASALT_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (the log's disk is full) is lost;
        // by default the subscriber reports that with `eprintln!`, which panics
        // when stderr fails too, inside whatever task was logging.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server { address, cores, parity, region, domain, console_address, drives } => (|| {
            let opts = basalt::server::ServerOptions {
                address: parse_address("--address", &address)?,
                cores,
                parity,
                drives,
                region,
                domain: domain.map(|d| d.trim_start_matches('.').to_ascii_lowercase()),
                console_address: console_address.map(|a| parse_address("--console-address", &a)).transpose()?,
            };
            if opts.cores == Some(0) {
                return Err("--cores must be at least 1".to_string());
            }
            basalt::server::run(opts)
        })(),
        Command::Tune { what: TuneCommand::Check { cores, drives } } => {
            return match expand(&drives) {
                Ok(drives) => tune_check(&drives, cores),
                Err(e) => {
                    eprintln!("basalt: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Bench { what } => {
            return match basalt::bench::main(what) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("basalt bench: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Admin { what } => return admin(what),
        Command::Layout { drives, parity } => {
            basalt::config::topology::parse_as(&drives, parity, None).map_err(|e| e.to_string()).map(|t| {
                basalt::outln!("{}", t.describe());
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("basalt: {e}");
            ExitCode::from(2)
        }
    }
}
