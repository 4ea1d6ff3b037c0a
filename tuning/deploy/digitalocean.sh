#!/usr/bin/env bash
# Four basalt nodes on DigitalOcean, behind a DigitalOcean load balancer.
#
#   export BASALT_ROOT_USER=... BASALT_ROOT_PASSWORD=...
#   tuning/deploy/digitalocean.sh --ssh-key 12345678 \
#       --binary-url https://example.com/basalt-x86_64-linux [--region fra1]
#
# Run with --dry-run first: it prints every doctl command, and the cloud-init
# user-data of the first node, without creating anything.
#
# What it creates, all in one region and in that region's default VPC:
#   - 4 block volumes basalt-1-data .. basalt-4-data (one data drive per node);
#   - 4 droplets basalt-1 .. basalt-4 with the tag (default "basalt"), whose
#     cloud-init user-data installs the basalt binary, this repository's
#     sysctl, udev and systemd files, and a first-boot script that waits for
#     the volume, formats it XFS with the label basalt-data (only when it holds
#     no filesystem yet) and mounts it by label on /mnt/data with noatime;
#   - the volume attachments;
#   - a load balancer for the tag, HTTP 80 -> 9000, health-checking
#     GET /minio/health/live on port 9000;
#   - a cloud firewall for the tag: port 9000 only from the load balancer and
#     the other nodes, SSH and ICMP from anywhere.
#
# How node names resolve: every node runs with the same drive list,
# BASALT_VOLUMES="http://basalt-{1...4}:9000/mnt/data", so basalt-1..basalt-4
# must resolve on every node, to the private (VPC) addresses, so that
# node-to-node traffic stays inside the VPC. DigitalOcean offers no private DNS
# for droplets, and the addresses are known only once the droplets exist, so
# cloud-init cannot write them. This script does it after creation: it reads
# each droplet's private IPv4 and writes the four "IP name" lines into
# /etc/hosts of every node over SSH (doctl compute ssh). The user-data sets
# manage_etc_hosts: false so that cloud-init does not rewrite /etc/hosts at the
# next boot.
#
# Where the root keys go: not into user-data, which any process on a droplet
# can read back from the metadata service (169.254.169.254) and which the
# DigitalOcean API shows to anyone with read access to the droplet. The same
# SSH step feeds them on standard input into /etc/basalt/credentials (mode
# 0600, root), which a systemd drop-in adds as a second EnvironmentFile; basalt
# is not started on a node until that file exists. They never appear on a
# command line, in a file on this machine, or in this script's output.
#
# The SSH step needs the private half of --ssh-key on this machine (pass
# --ssh-key-path if it is not ssh's default) and, on first contact, accepting
# each droplet's host key: run from a terminal, or set
# "StrictHostKeyChecking accept-new" in ~/.ssh/config.
#
# Every node runs the same drive list, http://node{1...4}:9000/mnt/data; the
# nodes wait for each other and node 1 formats the drives (README.md, "Run a
# cluster"). `basalt admin info --endpoint http://node1:9000` shows the result.
set -euo pipefail

readonly NODES=4
readonly PORT=9000
readonly MOUNT_POINT=/mnt/data
readonly FS_LABEL=basalt-data
# DigitalOcean accepts at most 64 KiB of user-data.
readonly USER_DATA_MAX_BYTES=65536
# Waiting for droplets to become active: 120 polls, 5 s apart.
readonly ACTIVE_POLLS=120
readonly ACTIVE_POLL_SECONDS=5
# SSH to a fresh droplet: sshd may not listen yet when the droplet reports
# active. 30 attempts, 10 s apart.
readonly SSH_ATTEMPTS=30
readonly SSH_RETRY_SECONDS=10

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tuning_dir=$(cd "$here/.." && pwd)

region=nyc3
size=s-4vcpu-8gb
image=ubuntu-24-04-x64
volume_size=100GiB
tag=basalt
ssh_key=${BASALT_DO_SSH_KEY:-}
ssh_key_path=
binary_url=${BASALT_BINARY_URL:-}
binary_sha256=
dry_run=0

usage() {
    cat <<'EOF'
usage: digitalocean.sh [--dry-run] --ssh-key ID --binary-url URL [options]

Creates a four-node basalt deployment on DigitalOcean with doctl: 4 droplets
(basalt-1..4) with one block volume each, and a load balancer on port 80.

Root keys come from the environment and are required (except with --dry-run):
  BASALT_ROOT_USER       access key, 5-20 characters
  BASALT_ROOT_PASSWORD   secret key, 8-40 characters

options:
  --dry-run              print every doctl command instead of running it
  --region SLUG          region of droplets, volumes and load balancer (nyc3)
  --size SLUG            droplet size (s-4vcpu-8gb)
  --image SLUG           droplet image (ubuntu-24-04-x64)
  --volume-size SIZE     size of each data volume, e.g. 500GiB or 2TiB (100GiB)
  --tag NAME             tag of droplets and volumes, which the load balancer
                         and firewall follow (basalt)
  --ssh-key ID           DigitalOcean SSH key id or fingerprint for root
                         (or env BASALT_DO_SSH_KEY)
  --ssh-key-path FILE    private key for the SSH step, if not ssh's default
  --binary-url URL       where droplets download the basalt binary (or env
                         BASALT_BINARY_URL)
  --binary-sha256 HEX    refuse a downloaded binary with another SHA-256
  -h, --help             this text
EOF
}

die() {
    printf 'digitalocean.sh: %s\n' "$*" >&2
    exit 1
}

usage_error() {
    printf 'digitalocean.sh: %s\n\n' "$*" >&2
    usage >&2
    exit 2
}

step() {
    printf '==> %s\n' "$*" >&2
}

while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
        --*=*)
            set -- "${arg#*=}" "$@"
            arg=${arg%%=*}
            ;;
    esac
    case $arg in
        --dry-run) dry_run=1; continue ;;
        -h | --help) usage; exit 0 ;;
        --region | --size | --image | --volume-size | --tag | --ssh-key | --ssh-key-path | --binary-url | --binary-sha256)
            [ $# -gt 0 ] || usage_error "$arg needs a value"
            value=$1
            shift
            ;;
        *) usage_error "unknown argument: $arg" ;;
    esac
    case $arg in
        --region) region=$value ;;
        --size) size=$value ;;
        --image) image=$value ;;
        --volume-size) volume_size=$value ;;
        --tag) tag=$value ;;
        --ssh-key) ssh_key=$value ;;
        --ssh-key-path) ssh_key_path=$value ;;
        --binary-url) binary_url=$value ;;
        --binary-sha256) binary_sha256=$value ;;
    esac
done

# ---- validation: everything below ends up in doctl arguments or in shell code
# on the droplets, so only plain values pass.

[[ $region =~ ^[a-z]+[0-9]+$ ]] || usage_error "--region: not a region slug: $region"
[[ $size =~ ^[a-z0-9-]+$ ]] || usage_error "--size: not a size slug: $size"
[[ $image =~ ^[a-z0-9._-]+$ ]] || usage_error "--image: not an image slug or id: $image"
[[ $volume_size =~ ^[0-9]+$ ]] && volume_size="${volume_size}GiB"
[[ $volume_size =~ ^[1-9][0-9]*(GiB|TiB)$ ]] || usage_error "--volume-size: expected e.g. 500GiB or 2TiB: $volume_size"
[[ $tag =~ ^[A-Za-z0-9_:.-]{1,64}$ ]] || usage_error "--tag: letters, digits, '_', ':', '.', '-' only: $tag"
[ -z "$ssh_key" ] || [[ $ssh_key =~ ^([0-9]+|[0-9a-f]{2}(:[0-9a-f]{2}){15})$ ]] ||
    usage_error "--ssh-key: expected a key id or an MD5 fingerprint: $ssh_key"
url_re='^https?://[][A-Za-z0-9._~:/?#@!$&()*+,;=%-]+$'
[ -z "$binary_url" ] || [[ $binary_url =~ $url_re ]] ||
    usage_error "--binary-url: expected an http(s) URL without quotes or spaces: $binary_url"
[ -z "$binary_sha256" ] || [[ $binary_sha256 =~ ^[0-9a-f]{64}$ ]] ||
    usage_error "--binary-sha256: expected 64 lowercase hex digits"
[ -z "$ssh_key_path" ] || [ -r "$ssh_key_path" ] || usage_error "--ssh-key-path: cannot read $ssh_key_path"

root_user=${BASALT_ROOT_USER:-}
root_password=${BASALT_ROOT_PASSWORD:-}

if [ "$dry_run" -eq 1 ]; then
    # Placeholders keep a dry run possible without credentials, an SSH key or
    # doctl; nothing is created, so nothing uses them.
    [ -n "$root_user" ] || root_user='placeholder-user'
    [ -n "$root_password" ] || root_password='placeholder-secret'
    [ -n "$ssh_key" ] || ssh_key='<ssh-key-id>'
    [ -n "$binary_url" ] || binary_url=https://example.invalid/basalt
else
    if [ -z "$root_user" ] || [ -z "$root_password" ]; then
        die "BASALT_ROOT_USER and BASALT_ROOT_PASSWORD must be set: they become the root access key and secret key of every node. Refusing to deploy without them (--dry-run works without)."
    fi
    [ -n "$ssh_key" ] || usage_error "--ssh-key (or BASALT_DO_SSH_KEY) is required: the SSH step needs root access to the droplets"
    [ -n "$binary_url" ] || usage_error "--binary-url (or BASALT_BINARY_URL) is required"
    command -v doctl >/dev/null 2>&1 || die "doctl not found on PATH (https://docs.digitalocean.com/reference/doctl/)"
fi
# The same limits basalt applies at start, checked here so a typo fails now
# rather than on four droplets. Quotes, backslashes and control characters are
# refused because the keys are written into a systemd environment file.
if [ ${#root_user} -lt 5 ] || [ ${#root_user} -gt 20 ]; then
    die "BASALT_ROOT_USER must be 5-20 characters"
fi
if [ ${#root_password} -lt 8 ] || [ ${#root_password} -gt 40 ]; then
    die "BASALT_ROOT_PASSWORD must be 8-40 characters"
fi
for key in "$root_user" "$root_password"; do
    if [[ $key == *[\'\"\\]* ]] || [[ $key =~ [[:cntrl:][:space:]] ]]; then
        die "BASALT_ROOT_USER and BASALT_ROOT_PASSWORD may not contain quotes, backslashes, spaces or control characters"
    fi
done

for f in sysctl.d/60-basalt.conf udev/60-basalt-scheduler.rules systemd/basalt.service; do
    [ -r "$tuning_dir/$f" ] || die "missing $tuning_dir/$f: run this script from a basalt checkout"
done

# ---- running doctl, or showing it

# Dry-run output goes to the original stdout (fd 3) even from inside $(...).
exec 3>&1

# Never print the secret, whatever the line (defence in depth: it is never
# passed on a command line in the first place).
mask() {
    local line=$1
    printf '%s' "${line//"$root_password"/********}"
}

# show ARGS...: prints a command as shell input, single-quoting only the
# arguments that need it, so that it reads (and pastes) like a typed command.
show() {
    local arg line=''
    local plain='^[A-Za-z0-9_./:,=@%+-]+$'
    for arg in "$@"; do
        if [[ $arg =~ $plain ]]; then
            line+=" $arg"
        else
            line+=" '${arg//\'/\'\\\'\'}'"
        fi
    done
    printf '+%s\n' "$(mask "$line")" >&3
}

# doctl_run PLACEHOLDER ARGS...: runs doctl ARGS; in a dry run prints the
# command instead and outputs PLACEHOLDER, so callers capture something.
doctl_run() {
    local placeholder=$1
    shift
    if [ "$dry_run" -eq 1 ]; then
        show doctl "$@"
        printf '%s\n' "$placeholder"
    else
        doctl "$@"
    fi
}

check_output() {
    local what=$1 pattern=$2 value=$3
    [ "$dry_run" -eq 1 ] && return 0
    [[ $value =~ $pattern ]] || die "unexpected $what from doctl: '$value'"
}

tmp_dir=$(mktemp -d)
trap 'rm -rf "$tmp_dir"' EXIT

# ---- user-data

# yaml_file PATH MODE: one write_files entry with standard input as content.
yaml_file() {
    printf '  - path: %s\n    owner: root:root\n    permissions: "%s"\n    content: |\n' "$1" "$2"
    sed 's/^/      /'
}

# DigitalOcean volumes are virtual disks on flash; whatever rotational flag
# they show, no guest scheduler helps them (see the udev rule's comments).
udev_rule_forced_none() {
    local force='ENV{BASALT_SCHEDULER}="none"'
    grep -qx "# $force" "$tuning_dir/udev/60-basalt-scheduler.rules" || die "the udev rule has no FORCE line to enable"
    sed "s/^# $force\$/$force/" "$tuning_dir/udev/60-basalt-scheduler.rules"
}

systemd_dropin() {
    cat <<EOF
# Written by tuning/deploy/digitalocean.sh.
[Unit]
# Never run on the root filesystem: without the data volume, do not start.
RequiresMountsFor=$MOUNT_POINT
# The root keys arrive over SSH after first boot; until then, do not start
# (without keys basalt would run with the well-known development pair).
ConditionPathExists=/etc/basalt/credentials

[Service]
EnvironmentFile=/etc/basalt/credentials
EOF
}

env_file() {
    cat <<EOF
# Written by tuning/deploy/digitalocean.sh; identical on every node. The root
# keys are in /etc/basalt/credentials (see basalt.service.d/10-digitalocean.conf).
BASALT_VOLUMES="http://basalt-{1...$NODES}:$PORT$MOUNT_POINT"
BASALT_OPTS="--address :$PORT"
EOF
}

# setup_script VOLUME_NAME: the first-boot script of one node.
setup_script() {
    local volume=$1
    cat <<EOF
#!/bin/sh
# First-boot setup of a basalt node, written by tuning/deploy/digitalocean.sh
# and run once by cloud-init. Output: /var/log/cloud-init-output.log.
set -eu
url='$binary_url'
sha256='$binary_sha256'
volume='$volume'
label='$FS_LABEL'
mnt='$MOUNT_POINT'
EOF
    cat <<'EOF'

id -u basalt >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin basalt

# Download beside the target and rename: an interrupted download never leaves
# a truncated executable at the real path.
curl -fsSL --retry 5 --retry-delay 3 -o /usr/local/bin/basalt.download "$url"
if [ -n "$sha256" ]; then
    echo "$sha256  /usr/local/bin/basalt.download" | sha256sum -c -
fi
chmod 0755 /usr/local/bin/basalt.download
mv -f /usr/local/bin/basalt.download /usr/local/bin/basalt

sysctl --system >/dev/null
udevadm control --reload

# The deploy script attaches the volume once the droplet is active, which can
# be after this script starts.
dev="/dev/disk/by-id/scsi-0DO_Volume_$volume"
tries=0
until [ -b "$dev" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 360 ]; then
        echo "volume $volume was not attached within 30 minutes" >&2
        exit 1
    fi
    sleep 5
done
udevadm settle

# Format only a blank volume (blkid -p exits 2 when it finds no signature):
# a volume that already holds data, re-attached to a new droplet, keeps it.
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
if [ "$rc" -eq 2 ]; then
    mkfs.xfs -L "$label" "$dev"
elif [ "$rc" -ne 0 ]; then
    echo "cannot probe $dev (blkid exit $rc)" >&2
    exit 1
fi
udevadm settle

# An immutable empty mount point: if the volume is ever missing, nothing
# (basalt included) can write into the root filesystem in its place.
mkdir -p "$mnt"
if ! mountpoint -q "$mnt"; then
    chattr +i "$mnt"
fi
# By label, not by device name: names follow discovery order. nofail: a
# missing volume must not stop the boot (the node stays reachable over SSH);
# basalt.service requires the mount and does not start without it.
if ! grep -q "^LABEL=$label " /etc/fstab; then
    echo "LABEL=$label $mnt xfs noatime,logbufs=8,logbsize=256k,nofail,x-systemd.device-timeout=5min 0 0" >>/etc/fstab
fi
systemctl daemon-reload
mountpoint -q "$mnt" || mount "$mnt"
chown basalt:basalt "$mnt"
chmod 0750 "$mnt"
udevadm trigger --action=change "$dev"

# Weekly TRIM instead of the "discard" mount option, which would issue a
# discard with every delete, in the path of requests.
systemctl enable --now fstrim.timer
systemctl enable basalt.service
mkdir -p /var/lib/basalt
touch /var/lib/basalt/setup-done
EOF
}

# write_user_data INDEX FILE
write_user_data() {
    local i=$1 out=$2
    {
        printf '#cloud-config\n'
        printf '# basalt-%s, generated by tuning/deploy/digitalocean.sh.\n' "$i"
        cat <<'EOF'
# The deploy script writes the node names into /etc/hosts; keep cloud-init
# from regenerating that file at every boot.
manage_etc_hosts: false
package_update: true
packages:
  - xfsprogs
  - curl
write_files:
EOF
        yaml_file /etc/sysctl.d/60-basalt.conf 0644 <"$tuning_dir/sysctl.d/60-basalt.conf"
        udev_rule_forced_none | yaml_file /etc/udev/rules.d/60-basalt-scheduler.rules 0644
        yaml_file /etc/systemd/system/basalt.service 0644 <"$tuning_dir/systemd/basalt.service"
        systemd_dropin | yaml_file /etc/systemd/system/basalt.service.d/10-digitalocean.conf 0644
        env_file | yaml_file /etc/default/basalt 0644
        setup_script "basalt-$i-data" | yaml_file /usr/local/sbin/basalt-node-setup 0755
        printf 'runcmd:\n  - [/usr/local/sbin/basalt-node-setup]\n'
    } >"$out"
    local bytes
    bytes=$(($(wc -c <"$out")))
    [ "$bytes" -le "$USER_DATA_MAX_BYTES" ] || die "user-data is $bytes bytes, over DigitalOcean's $USER_DATA_MAX_BYTES"
}

# ---- the deployment

if [ "$dry_run" -eq 1 ]; then
    printf '# dry run: nothing is created. Commands that would run are shown with "+ ".\n' >&3
fi

step "checking that region $region holds no basalt deployment yet"
existing=$(doctl_run "" compute droplet list --tag-name "$tag" --format ID,Name --no-header)
[ -z "$existing" ] || die "droplets tagged '$tag' already exist (delete them or pick another --tag):
$existing"
existing=$(doctl_run "" compute volume list --region "$region" --format Name --no-header)
for i in $(seq 1 "$NODES"); do
    if grep -qx "basalt-$i-data" <<<"$existing"; then
        die "a volume basalt-$i-data already exists in $region; volume names are unique per region"
    fi
done

declare -a volume_ids droplet_ids private_ips
name_prefix=${tag//[^A-Za-z0-9-]/-}

# The load balancer and the firewall come first: the firewall then covers each
# node from its first boot (port 9000 is never open to the internet), and the
# load balancer provisions while the droplets boot.
step "creating the tag '$tag' and the load balancer (HTTP 80 -> $PORT, checks GET /minio/health/live)"
doctl_run "" compute tag create "$tag" >/dev/null
lb_id=$(doctl_run "<load-balancer-id>" compute load-balancer create \
    --name "$name_prefix-lb" --region "$region" --tag-name "$tag" \
    --forwarding-rules "entry_protocol:http,entry_port:80,target_protocol:http,target_port:$PORT" \
    --health-check "protocol:http,port:$PORT,path:/minio/health/live,check_interval_seconds:10,response_timeout_seconds:5,healthy_threshold:3,unhealthy_threshold:3" \
    --format ID --no-header)
check_output "load balancer id" '^[0-9a-f-]{36}$' "$lb_id"

step "creating the firewall: port $PORT only from the load balancer and the nodes"
doctl_run "" compute firewall create --name "$name_prefix-fw" --tag-names "$tag" \
    --inbound-rules "protocol:tcp,ports:$PORT,load_balancer_uid:$lb_id protocol:tcp,ports:$PORT,tag:$tag protocol:tcp,ports:22,address:0.0.0.0/0,address:::/0 protocol:icmp,address:0.0.0.0/0,address:::/0" \
    --outbound-rules "protocol:tcp,ports:all,address:0.0.0.0/0,address:::/0 protocol:udp,ports:all,address:0.0.0.0/0,address:::/0 protocol:icmp,address:0.0.0.0/0,address:::/0" \
    --format ID --no-header >/dev/null

step "creating $NODES volumes of $volume_size"
for i in $(seq 1 "$NODES"); do
    id=$(doctl_run "<volume-id-of-basalt-$i-data>" compute volume create "basalt-$i-data" \
        --region "$region" --size "$volume_size" --tag "$tag" \
        --desc "basalt data drive of basalt-$i" --format ID --no-header)
    check_output "volume id" '^[0-9a-f-]{36}$' "$id"
    volume_ids[i]=$id
done

step "creating droplets basalt-1..$NODES ($size, $image)"
for i in $(seq 1 "$NODES"); do
    write_user_data "$i" "$tmp_dir/user-data-$i.yaml"
    id=$(doctl_run "<droplet-id-of-basalt-$i>" compute droplet create "basalt-$i" \
        --region "$region" --size "$size" --image "$image" --ssh-keys "$ssh_key" \
        --tag-name "$tag" --user-data-file "$tmp_dir/user-data-$i.yaml" \
        --enable-monitoring --format ID --no-header)
    check_output "droplet id" '^[0-9]+$' "$id"
    droplet_ids[i]=$id
done
if [ "$dry_run" -eq 1 ]; then
    printf '# user-data of basalt-1 (the others differ only in the volume name):\n' >&3
    sed 's/^/#   /' "$tmp_dir/user-data-1.yaml" >&3
fi

step "waiting for the droplets to become active"
for i in $(seq 1 "$NODES"); do
    polls=0
    while :; do
        out=$(doctl_run "active <private-ip-of-basalt-$i>" compute droplet get "${droplet_ids[i]}" \
            --format Status,PrivateIPv4 --no-header)
        status='' ip=''
        read -r status ip <<<"$out" || true
        [ "$status" = active ] && [ -n "$ip" ] && break
        polls=$((polls + 1))
        [ "$polls" -lt "$ACTIVE_POLLS" ] || die "basalt-$i is still '$status' after $((ACTIVE_POLLS * ACTIVE_POLL_SECONDS)) s"
        sleep "$ACTIVE_POLL_SECONDS"
    done
    check_output "private IPv4 of basalt-$i" '^[0-9]{1,3}(\.[0-9]{1,3}){3}$' "$ip"
    private_ips[i]=$ip
done

step "attaching the volumes"
for i in $(seq 1 "$NODES"); do
    doctl_run "" compute volume-action attach "${volume_ids[i]}" "${droplet_ids[i]}" --wait >/dev/null
done

# The remote half of the SSH step, run by root's shell on each node; the root
# keys arrive on its standard input.
hosts_lines="'# basalt nodes: begin'"
for i in $(seq 1 "$NODES"); do
    hosts_lines+=" '${private_ips[i]} basalt-$i'"
done
hosts_lines+=" '# basalt nodes: end'"
remote="set -eu"
remote+="; cloud-init status --wait >/dev/null 2>&1 || true"
remote+="; test -f /var/lib/basalt/setup-done || { echo 'node setup did not finish: see /var/log/cloud-init-output.log' >&2; exit 1; }"
remote+="; sed -i '/^# basalt nodes: begin/,/^# basalt nodes: end/d' /etc/hosts"
remote+="; printf '%s\n' $hosts_lines >>/etc/hosts"
remote+="; install -d -m 0700 /etc/basalt"
remote+="; umask 077; cat >/etc/basalt/credentials.new"
remote+="; mv -f /etc/basalt/credentials.new /etc/basalt/credentials"
remote+="; systemctl restart basalt.service"

ssh_args=()
[ -z "$ssh_key_path" ] || ssh_args+=(--ssh-key-path "$ssh_key_path")

# Single quotes: systemd takes the value literally (quotes, backslashes and
# whitespace were refused above).
credentials() {
    printf "BASALT_ROOT_USER='%s'\nBASALT_ROOT_PASSWORD='%s'\n" "$root_user" "$root_password"
}

step "writing node names and root keys over SSH, starting basalt"
for i in $(seq 1 "$NODES"); do
    if [ "$dry_run" -eq 1 ]; then
        printf '# stdin of the next command: BASALT_ROOT_USER=******** BASALT_ROOT_PASSWORD=********\n' >&3
        show doctl compute ssh "${droplet_ids[i]}" ${ssh_args[@]+"${ssh_args[@]}"} --ssh-command "$remote"
        continue
    fi
    attempt=1
    until credentials | doctl compute ssh "${droplet_ids[i]}" ${ssh_args[@]+"${ssh_args[@]}"} --ssh-command "$remote"; do
        [ "$attempt" -lt "$SSH_ATTEMPTS" ] || die "cannot finish basalt-$i over SSH after $SSH_ATTEMPTS attempts"
        attempt=$((attempt + 1))
        step "basalt-$i: SSH not ready, retrying in $SSH_RETRY_SECONDS s (attempt $attempt of $SSH_ATTEMPTS)"
        sleep "$SSH_RETRY_SECONDS"
    done
done

step "waiting for the load balancer"
polls=0
while :; do
    out=$(doctl_run "active <load-balancer-ip>" compute load-balancer get "$lb_id" --format Status,IP --no-header)
    status='' lb_ip=''
    read -r status lb_ip <<<"$out" || true
    [ "$status" = active ] && [ -n "$lb_ip" ] && break
    polls=$((polls + 1))
    [ "$polls" -lt "$ACTIVE_POLLS" ] || die "load balancer $lb_id is still '$status' after $((ACTIVE_POLLS * ACTIVE_POLL_SECONDS)) s"
    sleep "$ACTIVE_POLL_SECONDS"
done

if [ "$dry_run" -eq 1 ]; then
    printf '# dry run complete: nothing was created.\n' >&3
    exit 0
fi
cat <<EOF
basalt is deployed.
  S3 endpoint:  http://$lb_ip  (load balancer $lb_id)
  nodes:        $(for i in $(seq 1 "$NODES"); do printf 'basalt-%s=%s ' "$i" "${private_ips[i]}"; done)
  try:          AWS_ACCESS_KEY_ID=\$BASALT_ROOT_USER AWS_SECRET_ACCESS_KEY=\$BASALT_ROOT_PASSWORD \\
                  aws --endpoint-url http://$lb_ip s3 ls
The load balancer marks nodes up after 3 passed health checks (about 30 s).
Plain HTTP: add a certificate and an HTTPS forwarding rule before real use.
EOF
