#!/usr/bin/env bash
# Snapshots to object storage (issue #32; a benchmark, not a test): a one-member etcd 3.5.16 on a
# sandbox host holding ~MIB MiB (TLS), moto's S3 server on loopback. Per trial, back to back:
# `muster snapshot save --out s3://...` (stream from etcd, multipart upload, checked, copied to its
# final key), boto3's upload_file of the same snapshot file (timed inside Python, so its start-up
# is not counted against it), and `muster snapshot check` of the file (the restore drill).
# Two ratios: muster/boto3 (boto3's upload alone, which starts from a file already saved) and
# muster/(local save + boto3), the same job both ways: a checked snapshot out of etcd into S3.
#   bench/s3.sh [TRIALS] [MIB]   (defaults 3 and 200; results also go to bench/results-s3.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-3}
mib=${2:-200}
root=$PWD
out=bench/results-s3.txt
venv=${MUSTER_S3_VENV:-/var/lib/muster/venv}
etcd=/var/cache/muster/etcd-3.5/usr/bin/etcd
etcdctl=/var/cache/muster/etcd-sid/usr/bin/etcdctl
[ -x "$venv/bin/python" ] && [ -x "$etcd" ] && [ -x "$etcdctl" ] || scripts/setup.sh

export PATH=/opt/swift/usr/bin:$PATH
. scripts/release-flags.sh
swift build "${release_flags[@]}" 2>&1 | tail -n 1
muster=$root/.build/release/muster

sandbox=${MUSTER_BENCH_SANDBOX:-/var/lib/muster/sandbox-bench-s3}
work=$(mktemp -d /tmp/muster-bench-s3.XXXXXX)
moto_pid=
cleanup() {
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null || true
    [ -f "$work/inventory.yml" ] && MUSTER_SANDBOX_ONLY=1 "$muster" down "$work/inventory.yml" --wipe-data >/dev/null 2>&1 || true
    "$muster" sandbox down --state-dir "$sandbox" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$muster" sandbox up --state-dir "$sandbox" --hosts 1 >/dev/null
"$muster" sandbox inventory --state-dir "$sandbox" --member-binary "$etcd" --out "$work/inventory.yml" >/dev/null
MUSTER_SANDBOX_ONLY=1 "$muster" up "$work/inventory.yml" --skip-disk-check >/dev/null 2>&1
eval "$("$muster" env "$work/inventory.yml")"
head -c 1048576 /dev/zero | tr '\0' v > "$work/value"
# The value on stdin: a 1 MiB argument is over the kernel's limit for one.
for i in $(seq 1 "$mib"); do "$etcdctl" put "/bench/$i" < "$work/value" >/dev/null; done

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" -c 'import sys, threading
from moto.server import ThreadedMotoServer
ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False).start()
threading.Event().wait()' "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port
for _ in $(seq 1 100); do "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break; sleep 0.2; done
"$venv/bin/python" -c "import boto3; boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL_S3').create_bucket(Bucket='bench')"

seconds() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
lines=()
for trial in $(seq 1 "$trials"); do
    start=$(date +%s.%N)
    MUSTER_SANDBOX_ONLY=1 "$muster" snapshot save "$work/inventory.yml" --out s3://bench/muster --keep-last 1 >/dev/null 2>&1
    muster_s=$(seconds "$start")
    rm -rf "$work/local"
    start=$(date +%s.%N)
    MUSTER_SANDBOX_ONLY=1 "$muster" snapshot save "$work/inventory.yml" --out "$work/local" --keep 1 >/dev/null 2>&1
    local_s=$(seconds "$start")
    file=$(ls "$work"/local/main-*.db)
    bytes=$(stat -c %s "$file")
    boto3_s=$("$venv/bin/python" -c "import boto3, sys, time
c = boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL_S3')
t = time.monotonic(); c.upload_file(sys.argv[1], 'bench', 'boto3/snapshot.db'); print(time.monotonic() - t)" "$file")
    start=$(date +%s.%N)
    MUSTER_SANDBOX_ONLY=1 "$muster" snapshot check "$work/inventory.yml" "$file" >/dev/null 2>&1
    check_s=$(seconds "$start")
    line=$(awk -v b="$bytes" -v m="$muster_s" -v l="$local_s" -v p="$boto3_s" -v c="$check_s" -v t="$trial" 'BEGIN {
        printf "trial %d: %.1f MiB  muster save to S3 %.2f s (%.1f MiB/s), to a local dir %.2f s  boto3 upload_file %.2f s (%.1f MiB/s)  muster/boto3 %.2f  muster/(local save + boto3) %.2f  restore drill %.2f s",
            t, b / 1048576, m, b / 1048576 / m, l, p, b / 1048576 / p, p / m, (l + p) / m, c }')
    echo "$line"
    lines+=("$line")
done
{
    echo "snapshots to S3, $trials trials, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
    echo "(muster's time includes streaming the snapshot from etcd and the server-side copy to its final key;"
    echo " muster/(local save + boto3) compares it with the same job done in two steps: the snapshot saved to a file, then uploaded)"
    printf '%s\n' "${lines[@]}"
} > "$root/$out"
echo "written to $out"
