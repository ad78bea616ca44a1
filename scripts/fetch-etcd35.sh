#!/usr/bin/env bash
# Fetches etcd 3.5.16 (Debian 13 "trixie" etcd-server) into a cache dir, without adding trixie to
# the machine's apt sources: a sources file and list dir of muster's own, `apt-get download`,
# `dpkg -x`. The Go binary is static enough to run on Debian 12. Idempotent.
set -euo pipefail
cache=${MUSTER_ETCD35_DIR:-/var/cache/muster/etcd-3.5}
if [ -x "$cache/usr/bin/etcd" ] && "$cache/usr/bin/etcd" --version | grep -q '3\.5\.'; then
    echo "$cache/usr/bin/etcd"; exit 0
fi
work=/var/lib/muster/apt-trixie
mkdir -p "$work/lists/partial" "$work/archives/partial" "$cache"
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
cat > "$work/trixie.sources" <<SOURCES
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
          -o "Dir::State::Status=/dev/null" -o "APT::Architecture=$(dpkg --print-architecture)")
mkdir -p "$work/parts" && cp "$work/trixie.sources" "$work/parts/trixie.sources"
apt-get "${apt_opts[@]}" update -qq >&2
cd "$work/archives"
apt-get "${apt_opts[@]}" download etcd-server >&2
deb=$(ls -t "$work"/archives/etcd-server_*.deb | head -n 1)
dpkg -x "$deb" "$cache"
"$cache/usr/bin/etcd" --version >&2
echo "$cache/usr/bin/etcd"
