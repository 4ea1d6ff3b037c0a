//! The `basalt` command. The S3 server (`basalt server`) arrives with the S3
//! front end; until then the binary reports its version and the storage layout
//! it would use for the drives it is given.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("basalt {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("layout") => {
            let drives: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
            match basalt::config::layout(&drives, None) {
                Ok(l) => {
                    println!("{}", l.describe());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("basalt: {e}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!(
                "usage: basalt --version\n       basalt layout DRIVE...   (print the erasure-set layout for these drives)\n\n\
                 The S3 server command is not built yet; the storage engine is a library (see README.md)."
            );
            ExitCode::from(2)
        }
    }
}
