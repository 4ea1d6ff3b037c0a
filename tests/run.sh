#!/usr/bin/env bash
# The whole test suite, as README.md documents it: formatting, lints, unit and
# end-to-end tests of the storage engine, then the real S3 clients (aws cli,
# boto3) against the real `basalt server` binary. Installs the clients from PyPI
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pip=()
python3 -c "import pytest" 2>/dev/null || need_pip+=(pytest)
python3 -c "import boto3" 2>/dev/null || need_pip+=(boto3)
# awscrt: botocore needs it for the CRC32C and CRC64NVME checksums.
python3 -c "import awscrt" 2>/dev/null || need_pip+=(awscrt)
command -v aws >/dev/null 2>&1 || need_pip+=(awscli)
python3 -c "import minio" 2>/dev/null || need_pip+=(minio)
command -v s3cmd >/dev/null 2>&1 || need_pip+=(s3cmd)
need_apt=()
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
ruby -e 'require "fog/aws"' >/dev/null 2>&1 || need_apt+=(ruby-fog-aws)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing test clients: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing test clients: ${need_pip[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks are built (not run) so they cannot rot.
cargo build --benches --locked
cargo build --locked
cargo test --locked --lib --bins --tests
python3 -m pytest -q tests/clients
