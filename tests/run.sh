#!/usr/bin/env bash
# The whole test suite, as README.md documents it: formatting, lints, unit and
# end-to-end tests of the storage engine, the real S3 clients against the real
# `basalt server` binary, and the operations kit (tuning/) checked by haproxy,
# nginx, shellcheck and systemd-analyze. Installs what is missing (pip, apt).
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
# The web console's browser tests drive Debian's Chromium through chromedriver.
python3 -c "import selenium" 2>/dev/null || need_pip+=(selenium)
need_apt=()
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
ruby -e 'require "fog/aws"' >/dev/null 2>&1 || need_apt+=(ruby-fog-aws)
# The operations kit's configs are checked by the real tools.
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing test clients: ${need_apt[*]}"
  # Packages only: keep their services (nginx, haproxy) from starting on this machine.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing test clients: ${need_pip[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

# The build takes about 1.5 GB and one test's drives at most 1.5 GB (README):
# say so up front when the disk is short, rather than fail tests one by one.
need_mib=3500
for where in . "${TMPDIR:-/tmp}"; do
  free_mib=$(df -Pm "$where" | awk 'NR == 2 {print $4}')
  if [ -n "$free_mib" ] && [ "$free_mib" -lt "$need_mib" ]; then
    echo "warning: $(cd "$where" && pwd) has ${free_mib} MiB free; the tests need about ${need_mib} MiB" >&2
  fi
done

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks are built (not run) so they cannot rot.
cargo build --benches --locked
cargo build --locked
cargo test --locked --lib --bins --tests
# The console tests save screenshots in tests/artifacts/ (ignored by git).
python3 -m pytest -q tests/clients tests/tuning tests/console
# The cluster suite has its own harness (tests/cluster/cluster_harness.py).
python3 -m pytest -q tests/cluster
