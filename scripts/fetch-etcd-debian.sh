#!/usr/bin/env bash
# scripts/fetch-etcd-debian.sh SUITE MINOR CACHE_DIR
# Fetches Debian SUITE's etcd-server and etcd-client (trixie: 3.5.16, sid: 3.5.30) into CACHE_DIR,
# without adding SUITE to the machine's apt sources: a sources file and list dir of muster's own,
# `apt-get download`, `dpkg -x`. The Go binaries are static enough to run on Debian 12.
# Idempotent: a cache whose etcd reports MINOR (e.g. 3.5) is kept. Prints the etcd binary's path.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2p' "$0" >&2; exit 2; }
suite=$1 minor=$2 cache=$3
case "$suite" in *[!a-z]*|'') echo "fetch-etcd-debian.sh: suite '$suite' must be a Debian code name" >&2; exit 2 ;; esac
if [ -x "$cache/usr/bin/etcd" ] && "$cache/usr/bin/etcd" --version | grep -q "Version: ${minor//./\\.}\\."; then
    echo "$cache/usr/bin/etcd"; exit 0
fi
work=/var/lib/muster/apt-$suite
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts" "$cache"
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
cat > "$work/parts/$suite.sources" <<SOURCES
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
          -o "Dir::State::Status=/dev/null" -o "APT::Architecture=$(dpkg --print-architecture)")
apt-get "${apt_opts[@]}" update -qq >&2
cd "$work/archives"
rm -f etcd-server_*.deb etcd-client_*.deb
apt-get "${apt_opts[@]}" download etcd-server etcd-client >&2
for deb in etcd-server_*.deb etcd-client_*.deb; do dpkg -x "$deb" "$cache"; done
"$cache/usr/bin/etcd" --version >&2
"$cache/usr/bin/etcd" --version | grep -q "Version: ${minor//./\\.}\\." ||
    { echo "fetch-etcd-debian.sh: $suite's etcd is not $minor" >&2; exit 1; }
echo "$cache/usr/bin/etcd"
