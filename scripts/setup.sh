#!/usr/bin/env bash
# Installs what muster, its sandbox and its tests need on Debian 12 (as root), and fetches
# etcd 3.5.16 and sid's 3.5 for the other member versions. Idempotent; never run from inside a test.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "setup needs root (apt-get, network namespaces)" >&2; exit 1; }
# systemd-container: systemd-nspawn, for `muster sandbox up --init systemd|mixed`.
packages=(libssh2-1-dev libyaml-dev libssl-dev openssh-server openssh-client etcd-server etcd-client
          dnsmasq-base iproute2 util-linux procps python3 ca-certificates curl openssl zstd sudo
          systemd-container time patroni postgresql age prometheus)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts etcd-server's, patroni's and prometheus' own services where systemd runs; muster
# ships its own members, and the tests start their own Patroni and Prometheus.
if [ -d /run/systemd/system ]; then systemctl disable --now etcd patroni prometheus >/dev/null 2>&1 || true; fi
# etcd 3.5.16 (Debian 13) and sid's 3.5 (3.5.30 when written), beside Debian 12's 3.4.23.
"$(dirname "$0")/fetch-etcd-debian.sh" trixie 3.5 "${MUSTER_ETCD35_DIR:-/var/cache/muster/etcd-3.5}" >/dev/null
"$(dirname "$0")/fetch-etcd-debian.sh" sid 3.5 "${MUSTER_ETCD_SID_DIR:-/var/cache/muster/etcd-sid}" >/dev/null
command -v swift >/dev/null || { echo "swift is not on PATH (expected /opt/swift/usr/bin)" >&2; exit 1; }
# The S3 tests' server and cross-checks: moto's S3 server and boto3 (botocore's SigV4) from PyPI,
# in a virtual environment of their own. Fast when it is there already.
venv="${MUSTER_S3_VENV:-/var/lib/muster/venv}"
if ! "$venv/bin/python" -c "import moto.server, boto3, flask" >/dev/null 2>&1; then
    python3 -c "import ensurepip" >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]' boto3
fi
