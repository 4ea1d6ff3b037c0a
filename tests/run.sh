#!/usr/bin/env bash
# The whole test suite, as README.md documents it: formatting, lints, unit and
# end-to-end tests. Installs nothing beyond the Rust toolchain the machine has;
# later suites (S3 clients, browsers) add their installs here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks are built (not run) so they cannot rot.
cargo build --benches --locked
cargo test --locked --lib --bins --tests
