"""Checks of the operator files under tuning/: the load-balancer configurations
pass their own validators, the systemd unit passes systemd-analyze, the
DigitalOcean deploy script passes shellcheck and, run against a stub doctl,
makes the calls the README promises without ever showing the root secret.

Needs (Debian/Ubuntu packages): haproxy, nginx, shellcheck, systemd (for
systemd-analyze); python3-yaml is optional (the user-data checks use it when
present). A test whose tool is missing is skipped with the tool's name. Nothing
here contacts a network or a real DigitalOcean account: doctl is always a stub
placed first on PATH.

Run: python3 -m pytest -q tests/tuning
"""

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUNING = ROOT / "tuning"
HAPROXY_CFG = TUNING / "lb" / "haproxy.cfg"
NGINX_CONF = TUNING / "lb" / "nginx.conf"
UNIT = TUNING / "systemd" / "basalt.service"
ENV_EXAMPLE = TUNING / "systemd" / "basalt.env.example"
SYSCTL = TUNING / "sysctl.d" / "60-basalt.conf"
UDEV = TUNING / "udev" / "60-basalt-scheduler.rules"
DEPLOY = TUNING / "deploy" / "digitalocean.sh"

NODES = 4
PORT = 9000
# Distinctive values, so that a leak shows up as an exact substring.
ROOT_USER = "tuningtestuser7"
ROOT_SECRET = "Zq7-unique-Secret-4711-xyz"
# Long enough for every validator here; each runs in well under a second.
TOOL_TIMEOUT_S = 60


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {APT_PACKAGE.get(tool, tool)})")
    return path


APT_PACKAGE = {"haproxy": "haproxy", "nginx": "nginx", "shellcheck": "shellcheck", "systemd-analyze": "systemd", "udevadm": "udev"}


def run(argv, **kwargs):
    kwargs.setdefault("timeout", TOOL_TIMEOUT_S)
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


# ---- load balancers ----------------------------------------------------------


def test_haproxy_config_is_valid():
    haproxy = need("haproxy")
    result = run([haproxy, "-c", "-f", str(HAPROXY_CFG)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output, output
    # The only acceptable warnings: node names that do not resolve on this
    # machine, which init-addr none turns into disabled servers.
    for line in output.splitlines():
        if "[WARNING]" in line or "[ALERT]" in line:
            assert "could not resolve address" in line, line


def test_haproxy_config_shape():
    text = HAPROXY_CFG.read_text()
    assert re.search(r"^\s*balance\s+roundrobin\s*$", text, re.M)
    assert re.search(r"^\s*option\s+httpchk\s+GET\s+/minio/health/live\s*$", text, re.M)
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+)", text, re.M)
    assert [address for _, address in servers] == [f"node{i}:{PORT}" for i in range(1, NODES + 1)]
    assert "init-addr last,libc,none" in text
    # Request buffering would hold whole uploads in the proxy.
    assert not re.search(r"^\s*option\s+http-buffer-request", text, re.M)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def nginx_test_copy(tmp_path):
    """A copy nginx can load anywhere: nodes at 127.0.0.1 (open-source nginx
    resolves upstream names at load time and fails on unknown ones), listening
    on a free unprivileged port (nginx -t binds its listen sockets), and every
    file nginx opens or creates moved into tmp_path."""
    text = NGINX_CONF.read_text()
    text, replaced = re.subn(r"\bserver\s+node[1-4]:9000\b", "server 127.0.0.1:9000", text)
    assert replaced == NODES, "expected one upstream server line per node"
    text, replaced = re.subn(r"^(\s*)listen\s+80;", rf"\1listen 127.0.0.1:{free_port()};", text, flags=re.M)
    assert replaced == 1, "expected one listen line"
    text = re.sub(r"^(\s*)access_log\s+\S+;", rf"\1access_log {tmp_path}/access.log;", text, flags=re.M)
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    copy = tmp_path / "nginx.conf"
    copy.write_text(text)
    return copy


def test_nginx_config_is_valid(tmp_path):
    nginx = need("nginx")
    copy = nginx_test_copy(tmp_path)
    argv = [nginx, "-t", "-c", str(copy), "-p", f"{tmp_path}/", "-g", f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"]
    # -e (1.19.5+) also moves the log nginx opens before it reads the file.
    if "-e filename" in run([nginx, "-h"]).stderr:
        argv[2:2] = ["-e", str(tmp_path / "startup-error.log")]
    result = run(argv)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "test is successful" in output, output


def test_nginx_config_shape():
    text = NGINX_CONF.read_text()
    for directive in (
        r"proxy_request_buffering\s+off;",
        r"client_max_body_size\s+0;",
        r"proxy_http_version\s+1\.1;",
        # $http_host keeps the port, which SigV4 signs; $host drops it.
        r"proxy_set_header\s+Host\s+\$http_host;",
        r"max_fails=\d+\s+fail_timeout=\d+s",
    ):
        assert re.search(directive, text), directive
    assert "/minio/health/cluster" in text
    assert "NGINX Plus" in text


# ---- systemd ------------------------------------------------------------------


def unit_settings(text):
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def shutdown_grace_s():
    server = ROOT / "src" / "server.rs"
    found = server.exists() and re.search(r"SHUTDOWN_GRACE: Duration = Duration::from_secs\((\d+)\)", server.read_text())
    return int(found.group(1)) if found else 10


def test_unit_settings():
    s = unit_settings(UNIT.read_text())
    assert s["Type"] == ["simple"]
    assert s["ExecStart"] == ["/usr/local/bin/basalt server $BASALT_OPTS $BASALT_VOLUMES"]
    assert s["EnvironmentFile"] == ["/etc/default/basalt"]
    assert s["LimitMEMLOCK"] == ["infinity"]
    assert s["LimitNOFILE"] == ["1048576"]
    assert s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert "network-online.target" in s["After"][0]
    assert "network-online.target" in s["Wants"][0]
    assert s["User"] == ["basalt"]
    timeout = re.fullmatch(r"(\d+)s?", s["TimeoutStopSec"][0])
    assert timeout and int(timeout.group(1)) > shutdown_grace_s() + 5, "stop timeout must exceed the server's grace"
    # io_uring must stay allowed by the system call filter.
    filters = " ".join(s["SystemCallFilter"])
    for call in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert call in filters


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = need("systemd-analyze")
    # verify insists that ExecStart= is executable; basalt is not installed
    # here, so the copy points at a binary that exists.
    true = shutil.which("true")
    copy = tmp_path / "basalt.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/basalt", true))
    result = run([analyze, "verify", str(copy)])
    output = result.stdout + result.stderr
    if result.returncode != 0 and re.search(r"Failed to (initialize|set up|setup|connect)|System has not been booted", output):
        pytest.skip(f"systemd-analyze cannot run in this container: {output.strip()[:300]}")
    assert result.returncode == 0, output
    # verify reports unknown or malformed settings as warnings only.
    problems = [line for line in output.splitlines() if re.search(r"Unknown|ignoring|Failed|Invalid|not ", line)]
    assert not problems, output


def test_unit_security_exposure(tmp_path):
    analyze = need("systemd-analyze")
    copy = tmp_path / "basalt.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/basalt", shutil.which("true")))
    result = run([analyze, "security", "--offline=yes", "--no-pager", str(copy)])
    found = re.search(r"Overall exposure level for basalt\.service: ([\d.]+)", result.stdout + result.stderr)
    if result.returncode != 0 and found is None:
        pytest.skip(f"systemd-analyze security --offline needs systemd 250+: {result.stderr.strip()[:200]}")
    assert found, result.stdout + result.stderr
    # 0 is fully locked down, 10 fully exposed; below 2 is systemd's "OK".
    assert float(found.group(1)) < 2.0, result.stdout


def test_env_example():
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip('"')
    assert values["BASALT_VOLUMES"] == "http://node{1...4}:9000/mnt/data"
    assert values["BASALT_OPTS"] == "--address :9000"
    assert 5 <= len(values["BASALT_ROOT_USER"]) <= 20
    assert 8 <= len(values["BASALT_ROOT_PASSWORD"]) <= 40


# ---- sysctl and udev ----------------------------------------------------------


def test_sysctl_keys_exist():
    if not Path("/proc/sys/kernel").is_dir():
        pytest.skip("/proc/sys is not available")
    for number, line in enumerate(SYSCTL.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep and value.strip(), f"line {number} is not an assignment: {line}"
        key = key.strip()
        optional = key.startswith("-")
        path = Path("/proc/sys") / key.lstrip("-").replace(".", "/")
        # Keys the running kernel may lack must carry the "-" prefix, or
        # sysctl --system fails on such kernels.
        assert optional or path.exists(), f"line {number}: {key} does not exist on this kernel"


UDEV_PAIR = re.compile(r'\s*(?P<key>[A-Z_]+(?:\{[^}]+\})?)\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*(?:,|$)')


def test_udev_rule_syntax():
    labels, gotos = set(), set()
    for number, line in enumerate(UDEV.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        position = 0
        while position < len(line):
            pair = UDEV_PAIR.match(line, position)
            assert pair, f"line {number}, column {position}: not a udev key/value pair: {line}"
            if pair["key"] == "LABEL":
                labels.add(pair["value"])
            if pair["key"] == "GOTO":
                gotos.add(pair["value"])
            position = pair.end()
    assert gotos <= labels, f"GOTO without LABEL: {gotos - labels}"
    text = UDEV.read_text()
    assert 'ATTR{queue/scheduler}="$env{BASALT_SCHEDULER}"' in text
    assert 'ATTR{queue/read_ahead_kb}=' in text


def test_udev_rule_passes_udevadm_verify():
    udevadm = need("udevadm")
    result = run([udevadm, "verify", str(UDEV)])
    if result.returncode != 0 and re.search(r"unknown (command|verb)", result.stderr, re.I):
        pytest.skip("udevadm verify needs systemd 254+")
    assert result.returncode == 0, result.stdout + result.stderr


# ---- DigitalOcean deploy script -------------------------------------------------


def test_deploy_script_passes_shellcheck():
    shellcheck = need("shellcheck")
    result = run([shellcheck, str(DEPLOY)])
    assert result.returncode == 0, result.stdout + result.stderr


STUB_DOCTL = textwrap.dedent(
    '''\
    #!/usr/bin/env python3
    """Stands in for doctl: records each call (and, for the calls that carry
    them, the user-data file and standard input), answers like doctl would
    with --format ... --no-header, and fails on anything unexpected."""
    import json, os, sys, uuid

    args = sys.argv[1:]
    record = {"argv": args}
    if "--user-data-file" in args:
        with open(args[args.index("--user-data-file") + 1]) as f:
            record["user_data"] = f.read()
    if args[:2] == ["compute", "ssh"]:
        record["stdin"] = sys.stdin.read()
    with open(os.environ["DOCTL_STUB_LOG"], "a") as f:
        f.write(json.dumps(record) + "\\n")

    def fixed_uuid(name):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "stub:" + name))

    command = args[:3]
    if command in (["compute", "droplet", "list"], ["compute", "volume", "list"]):
        pass  # nothing exists yet
    elif command == ["compute", "tag", "create"]:
        print(args[3])
    elif command == ["compute", "load-balancer", "create"]:
        print(fixed_uuid("lb"))
    elif command == ["compute", "load-balancer", "get"]:
        print("active    203.0.113.10")
    elif command == ["compute", "firewall", "create"]:
        print(fixed_uuid("fw"))
    elif command == ["compute", "volume", "create"]:
        print(fixed_uuid(args[3]))
    elif command == ["compute", "droplet", "create"]:
        print(400000000 + int(args[3].rsplit("-", 1)[1]))
    elif command == ["compute", "droplet", "get"]:
        print("active    10.110.0.%d" % (int(args[3]) - 400000000 + 10))
    elif command == ["compute", "volume-action", "attach"]:
        print("ID          Status         Type")
        print("1234567     completed      attach_volume")
    elif args[:2] == ["compute", "ssh"]:
        pass
    else:
        sys.stderr.write("stub doctl: unexpected call: %r\\n" % (args,))
        sys.exit(3)
    '''
)


@pytest.fixture
def stub_doctl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "doctl"
    stub.write_text(STUB_DOCTL)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    log = tmp_path / "doctl-calls.jsonl"
    log.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASALT_", "DIGITALOCEAN_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["DOCTL_STUB_LOG"] = str(log)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()]

    return env, calls


def deploy(env, *args, credentials=True):
    env = dict(env)
    if credentials:
        env["BASALT_ROOT_USER"] = ROOT_USER
        env["BASALT_ROOT_PASSWORD"] = ROOT_SECRET
    return run(["bash", str(DEPLOY), *args], env=env, stdin=subprocess.DEVNULL)


DEPLOY_FLAGS = ("--region", "fra1", "--ssh-key", "12345678", "--binary-url", "https://example.invalid/basalt", "--volume-size", "200GiB")


def flag(argv, name):
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def pairs(spec):
    """doctl's key:value,key:value notation (values may contain ':')."""
    return dict(item.split(":", 1) for item in spec.split(","))


def check_deployment_calls(argvs, tag):
    """The calls a deployment must make, whether recorded by the stub or
    printed by --dry-run."""
    by_command = {}
    for argv in argvs:
        by_command.setdefault(tuple(argv[:3]), []).append(argv)

    droplets = by_command.get(("compute", "droplet", "create"), [])
    assert [argv[3] for argv in droplets] == [f"basalt-{i}" for i in range(1, NODES + 1)]
    for argv in droplets:
        assert flag(argv, "--tag-name") == tag
        assert flag(argv, "--region") == "fra1"
        assert flag(argv, "--ssh-keys") == "12345678"
        assert "--user-data-file" in argv

    volumes = by_command.get(("compute", "volume", "create"), [])
    assert [argv[3] for argv in volumes] == [f"basalt-{i}-data" for i in range(1, NODES + 1)]
    for argv in volumes:
        assert flag(argv, "--region") == "fra1"
        assert flag(argv, "--size") == "200GiB"

    attaches = by_command.get(("compute", "volume-action", "attach"), [])
    assert len(attaches) == NODES

    (lb,) = by_command.get(("compute", "load-balancer", "create"), [])
    assert flag(lb, "--tag-name") == tag
    assert flag(lb, "--region") == "fra1"
    rules = [pairs(rule) for rule in flag(lb, "--forwarding-rules").split()]
    assert {"entry_protocol": "http", "entry_port": "80", "target_protocol": "http", "target_port": str(PORT)} in rules
    check = pairs(flag(lb, "--health-check"))
    assert check["protocol"] == "http"
    assert check["port"] == str(PORT)
    assert check["path"] == "/minio/health/live"

    ssh = [argv for argv in argvs if argv[:2] == ["compute", "ssh"]]
    assert len(ssh) == NODES
    return droplets, volumes, attaches, ssh


@pytest.mark.parametrize("tag", ["basalt", "staging-basalt"])
def test_deploy_against_stub_doctl(stub_doctl, tag):
    env, calls = stub_doctl
    args = DEPLOY_FLAGS + (("--tag", tag) if tag != "basalt" else ())
    result = deploy(env, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert ROOT_SECRET not in output
    assert ROOT_USER not in output

    recorded = calls()
    argvs = [call["argv"] for call in recorded]
    droplets, volumes, attaches, ssh = check_deployment_calls(argvs, tag)

    # Attachments pair each node's volume with that node's droplet, by the ids
    # doctl returned.
    expected = [
        [str(uuid.uuid5(uuid.NAMESPACE_URL, f"stub:basalt-{i}-data")), str(400000000 + i)] for i in range(1, NODES + 1)
    ]
    assert [argv[3:5] for argv in attaches] == expected

    # The secret travels only on the SSH step's standard input: never in an
    # argument, never in user-data (readable from the metadata service).
    for call in recorded:
        assert ROOT_SECRET not in " ".join(call["argv"])
        assert ROOT_SECRET not in call.get("user_data", "")
        assert ROOT_USER not in call.get("user_data", "")
    ssh_calls = [call for call in recorded if call["argv"][:2] == ["compute", "ssh"]]
    for call in ssh_calls:
        assert f"BASALT_ROOT_PASSWORD='{ROOT_SECRET}'" in call["stdin"]
        assert f"BASALT_ROOT_USER='{ROOT_USER}'" in call["stdin"]
        remote = flag(call["argv"], "--ssh-command")
        # Every node learns every node's private address.
        for i in range(1, NODES + 1):
            assert f"10.110.0.{10 + i} basalt-{i}" in remote

    # The same endpoint list on every node, and each node formats its own volume.
    for i, call in enumerate([c for c in recorded if c["argv"][:3] == ["compute", "droplet", "create"]], 1):
        user_data = call["user_data"]
        assert user_data.startswith("#cloud-config\n")
        assert 'BASALT_VOLUMES="http://basalt-{1...4}:9000/mnt/data"' in user_data
        assert f"volume='basalt-{i}-data'" in user_data
        assert "mkfs.xfs -L" in user_data and "noatime" in user_data

    # The cloud firewall keeps port 9000 off the internet.
    (firewall,) = [argv for argv in argvs if argv[:3] == ["compute", "firewall", "create"]]
    assert f"tag:{tag}" in flag(firewall, "--inbound-rules")
    assert "http://203.0.113.10" in result.stdout


def dry_run_commands(stdout):
    argvs = []
    for line in stdout.splitlines():
        if line.startswith("+ doctl "):
            argvs.append(shlex.split(line[len("+ doctl "):]))
    return argvs


def test_deploy_dry_run_prints_and_runs_nothing(stub_doctl):
    env, calls = stub_doctl
    result = deploy(env, "--dry-run", *DEPLOY_FLAGS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert calls() == [], "a dry run must not call doctl"
    assert ROOT_SECRET not in output
    assert ROOT_USER not in output
    check_deployment_calls(dry_run_commands(result.stdout), "basalt")
    assert "BASALT_ROOT_PASSWORD=********" in result.stdout


def test_deploy_dry_run_without_credentials_uses_placeholders(stub_doctl):
    env, calls = stub_doctl
    result = deploy(env, "--dry-run", credentials=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls() == []
    assert len(dry_run_commands(result.stdout)) > NODES * 3


@pytest.mark.parametrize("present", [(), ("BASALT_ROOT_USER",), ("BASALT_ROOT_PASSWORD",)])
def test_deploy_refuses_without_credentials(stub_doctl, present):
    env, calls = stub_doctl
    env = dict(env)
    for name in present:
        env[name] = ROOT_USER if name.endswith("USER") else ROOT_SECRET
    result = deploy(env, *DEPLOY_FLAGS, credentials=False)
    assert result.returncode != 0
    assert "BASALT_ROOT_USER and BASALT_ROOT_PASSWORD must be set" in result.stderr
    assert calls() == [], "nothing may be called before the credentials are checked"
    assert ROOT_SECRET not in result.stdout + result.stderr


def test_deploy_rejects_bad_flags(stub_doctl):
    env, calls = stub_doctl
    for args in (("--tag", "bad tag"), ("--volume-size", "lots"), ("--binary-url", "https://x/'; rm -rf /"), ("--bogus",)):
        result = deploy(env, *DEPLOY_FLAGS, *args)
        assert result.returncode == 2, (args, result.stderr)
    assert calls() == []


def test_deploy_help():
    result = run(["bash", str(DEPLOY), "--help"])
    assert result.returncode == 0
    for name in ("--dry-run", "--region", "--size", "--volume-size", "--tag", "--ssh-key", "--binary-url", "BASALT_ROOT_PASSWORD"):
        assert name in result.stdout


def user_data_from_dry_run(stdout):
    lines = stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("# user-data of basalt-1"))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("#   "):
            break
        body.append(line[4:])
    return "\n".join(body) + "\n"


def test_generated_user_data_and_node_scripts(stub_doctl, tmp_path):
    """The cloud-config parses, installs this repository's files unchanged (the
    udev rule with the cloud-volume override), and its shell parts pass
    shellcheck as POSIX sh."""
    yaml = pytest.importorskip("yaml", reason="python3-yaml (PyYAML) is not installed")
    shellcheck = need("shellcheck")
    env, _ = stub_doctl
    result = deploy(env, "--dry-run", *DEPLOY_FLAGS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(user_data_from_dry_run(result.stdout))
    assert config["manage_etc_hosts"] is False
    files = {entry["path"]: entry for entry in config["write_files"]}
    assert files["/etc/systemd/system/basalt.service"]["content"] == UNIT.read_text()
    assert files["/etc/sysctl.d/60-basalt.conf"]["content"] == SYSCTL.read_text()
    udev = files["/etc/udev/rules.d/60-basalt-scheduler.rules"]["content"]
    assert '\nENV{BASALT_SCHEDULER}="none"\n' in udev
    dropin = files["/etc/systemd/system/basalt.service.d/10-digitalocean.conf"]["content"]
    assert "RequiresMountsFor=/mnt/data" in dropin
    assert "EnvironmentFile=/etc/basalt/credentials" in dropin

    setup = tmp_path / "basalt-node-setup"
    setup.write_text(files["/usr/local/sbin/basalt-node-setup"]["content"])
    ssh_argv = next(argv for argv in dry_run_commands(result.stdout) if argv[:2] == ["compute", "ssh"])
    remote = tmp_path / "remote.sh"
    remote.write_text("#!/bin/sh\n" + flag(ssh_argv, "--ssh-command") + "\n")
    for script in (setup, remote):
        check = run([shellcheck, "-s", "sh", str(script)])
        assert check.returncode == 0, check.stdout
