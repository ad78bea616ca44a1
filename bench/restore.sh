#!/usr/bin/env bash
# Restore (issue #31, item 2; a benchmark, not a test): `muster restore` of a ~MIB MiB snapshot on
# a 3-member TLS cluster of the sandbox against the by-hand floor, trial by trial, the order
# alternating. The floor has the snapshot and the restore tool already on each host; over plain
# `ssh`, the three hosts side by side, it runs the members' own restore tool (etcdutl for 3.5,
# etcdctl for 3.4) into a fresh data dir and starts etcd on muster's conf.yml (data dir changed),
# then polls every member's /health over TLS until all three answer. muster's time is the whole
# command: the file's checks, the snapshot and the tool to every host, stop, restore, conf.yml,
# start, health, verify, record. Both start from the same state: every member stopped.
#   bench/restore.sh [TRIALS] [MIB] [3.5|3.4]   (defaults 3, 200, 3.5; results also go to
#   bench/results-restore.txt, the last muster run's progress lines with their times to
#   bench/results-restore-timeline.txt; MUSTER_BIN=PATH skips the release build,
#   MUSTER_BENCH_SANDBOX=DIR names the sandbox's state dir, MUSTER_BASELINE_BIN=PATH adds another
#   muster binary's restore to every trial, e.g. main's, to measure a change)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-3}
mib=${2:-200}
minor=${3:-3.5}
root=$PWD
out=bench/results-restore.txt
case $minor in
    3.5) etcd=/var/cache/muster/etcd-3.5/usr/bin/etcd; tool=/var/cache/muster/etcd-3.5/usr/bin/etcdutl; tool_name=etcdutl ;;
    3.4) etcd=/usr/bin/etcd; tool=/usr/bin/etcdctl; tool_name=etcdctl ;;
    *) echo "minor must be 3.5 or 3.4" >&2; exit 2 ;;
esac
ctl_bin=/var/cache/muster/etcd-sid/usr/bin/etcdctl
[ -x "$etcd" ] && [ -x "$tool" ] && [ -x "$ctl_bin" ] || scripts/setup.sh
export MUSTER_SANDBOX_ONLY=1

if [ -n "${MUSTER_BIN:-}" ]; then
    muster=$MUSTER_BIN
else
    export PATH=/opt/swift/usr/bin:$PATH
    . scripts/release-flags.sh
    swift build "${release_flags[@]}" 2>&1 | tail -n 1
    muster=$root/.build/release/muster
fi

sandbox=${MUSTER_BENCH_SANDBOX:-/var/lib/muster/sandbox-bench-restore}
work=$(mktemp -d /var/lib/muster/bench-restore.XXXXXX)
cleanup() {
    [ -f "$work/inventory.yml" ] && "$muster" down "$work/inventory.yml" --state "$work/state" --wipe-data >/dev/null 2>&1 || true
    "$muster" sandbox down --state-dir "$sandbox" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$muster" sandbox up --state-dir "$sandbox" --hosts 3 >/dev/null
"$muster" sandbox inventory --state-dir "$sandbox" --member-binary "$etcd" --out "$work/inventory.yml" >/dev/null
m() {  # muster COMMAND [SUBCOMMAND] [FLAGS] on the bench's inventory and state
    local words=("$1"); [ "$1" = snapshot ] && { words+=("$2"); shift; }
    "$muster" "${words[@]}" "$work/inventory.yml" --state "$work/state" --templates "$root/templates" "${@:2}"
}
m up --skip-disk-check >/dev/null 2>"$work/up.log" || { tail -n 20 "$work/up.log" >&2; exit 1; }
eval "$(m env)"
mapfile -t addresses < <(python3 -c 'import json,sys; [print(h["address"]) for h in json.load(open(sys.argv[1]))["hosts"]]' "$sandbox/state.json")
for a in "${addresses[@]}"; do
    ip -o route get "$a" | grep -q " dev mstr-br" || { echo "refusing $a: not routed through a sandbox bridge" >&2; exit 1; }
done
ssh_opts=(-i "$sandbox/client_ed25519" -o UserKnownHostsFile="$sandbox/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR)
on_all() {  # runs $1 on every host side by side, fails if one fails
    local pids=() a
    for a in "${addresses[@]}"; do ssh "${ssh_opts[@]}" "root@$a" "$1" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
}

# 1 MiB values of random printable bytes (nothing for a transport to compress), on stdin: a
# 1 MiB argument is over the kernel's limit for one.
for i in $(seq 1 "$mib"); do head -c 786432 /dev/urandom | base64 -w0 | "$ctl_bin" put "/bench/$i" >/dev/null; done
m snapshot save --out "$work/snapshots" >/dev/null 2>"$work/save.log" || { tail -n 20 "$work/save.log" >&2; exit 1; }
file=$(ls "$work"/snapshots/main-*.db)
size_mib=$(python3 -c "import os; print(f'{os.path.getsize(\"$file\") / 1048576:.1f}')")
data=$(ssh "${ssh_opts[@]}" "root@${addresses[0]}" "sed -n 's/^data-dir: *//p' /etc/etcd/main/conf.yml" | tr -d "\"'")

# The floor's files, once: the snapshot and the tool on each host, muster's conf.yml with the
# floor's own data dir.
for a in "${addresses[@]}"; do
    ssh "${ssh_opts[@]}" "root@$a" "rm -rf /tmp/floor && mkdir -p /tmp/floor && sed 's#^data-dir: .*#data-dir: /tmp/floor/data#' /etc/etcd/main/conf.yml > /tmp/floor/conf.yml"
    scp -q "${ssh_opts[@]}" "$file" "root@$a:/tmp/floor/snapshot.db"
    scp -q "${ssh_opts[@]}" "$tool" "root@$a:/tmp/floor/$tool_name"
    scp -q "${ssh_opts[@]}" "$etcd" "root@$a:/tmp/floor/etcd"
done

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
health_all() {  # every member's /health over TLS until all three answer true (bounded: 60 s)
    local deadline=$(( $(date +%s) + 60 )) ok a
    while [ "$(date +%s)" -lt "$deadline" ]; do
        ok=0
        for a in "${addresses[@]}"; do
            curl -s -m 1 --cacert "$ETCDCTL_CACERT" --cert "$ETCDCTL_CERT" --key "$ETCDCTL_KEY" "https://$a:2379/health" 2>/dev/null | grep -q '"health":"true"' && ok=$((ok+1))
        done
        [ $ok = 3 ] && return 0
        sleep 0.05
    done
    echo "floor: cluster not healthy in 60 s" >&2; return 1
}
keys_back() {  # the restored cluster holds every key written
    local n
    n=$("$ctl_bin" get /bench/ --prefix --count-only -w fields | sed -n 's/^"Count" : //p')
    [ "$n" = "$mib" ] || { echo "$1: $n keys of $mib after the restore" >&2; exit 1; }
}
# Untimed, before each contender: every member stopped (muster's and the floor's), the floor's
# data and muster's moved-aside data dirs removed, writeback flushed.
stopped() {
    m down >/dev/null 2>&1
    on_all "[ -f /tmp/floor/pid ] && kill \$(cat /tmp/floor/pid) 2>/dev/null; while [ -f /tmp/floor/pid ] && kill -0 \$(cat /tmp/floor/pid) 2>/dev/null; do sleep 0.05; done; rm -rf /tmp/floor/data /tmp/floor/pid $data.muster-before-restore-*; true"
    sync
}
floor() {
    local t0 t1
    t0=$(now)
    on_all "set -e; cd /tmp/floor; v() { sed -n \"s/^\$1: *//p\" conf.yml | tr -d \"\\\"'\"; }
        ETCDCTL_API=3 ./$tool_name snapshot restore snapshot.db --name \"\$(v name)\" --initial-cluster \"\$(v initial-cluster)\" \
            --initial-cluster-token \"\$(v initial-cluster-token)\" --initial-advertise-peer-urls \"\$(v initial-advertise-peer-urls)\" \
            --data-dir /tmp/floor/data >restore.log 2>&1
        { setsid ./etcd --config-file=/tmp/floor/conf.yml </dev/null >etcd.log 2>&1 & }; echo \$! > pid"
    health_all
    t1=$(now)
    elapsed "$t0" "$t1"
}
copy_by_scp() {  # the snapshot to every host side by side, as an operator would copy it
    local t0 t1 pids=() a
    on_all "rm -f /tmp/floor/snapshot.db"; sync
    t0=$(now)
    for a in "${addresses[@]}"; do scp -q "${ssh_opts[@]}" "$file" "root@$a:/tmp/floor/snapshot.db" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    t1=$(now)
    elapsed "$t0" "$t1"
}
muster_restore() {  # [BINARY] (default: the muster under test)
    local t0 t1 muster=${1:-$muster}
    t0=$(now)
    # The progress lines, each with the seconds since the start (where muster's time goes).
    m restore --from "$file" 2>&1 >/dev/null | python3 -u -c 'import sys, time
t = time.monotonic()
for line in sys.stdin: sys.stdout.write(f"{time.monotonic() - t:7.3f} {line}")' >"$work/restore.log" || { tail -n 30 "$work/restore.log" >&2; exit 1; }
    t1=$(now)
    elapsed "$t0" "$t1"
}

declare -A series
record() { series[$1]="${series[$1]:-} $2"; }
for t in $(seq 1 "$trials"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [ $((t % 2)) = 1 ]; then
        stopped; v=$(copy_by_scp); record scp "$v"
        stopped; v=$(floor); keys_back floor; record floor "$v"
        stopped; v=$(muster_restore); keys_back muster; record muster "$v"
    else
        stopped; v=$(muster_restore); keys_back muster; record muster "$v"
        stopped; v=$(copy_by_scp); record scp "$v"
        stopped; v=$(floor); keys_back floor; record floor "$v"
    fi
    if [ -n "${MUSTER_BASELINE_BIN:-}" ]; then
        stopped; v=$(muster_restore "$MUSTER_BASELINE_BIN"); keys_back baseline; record baseline "$v"
    fi
    record load "$load"
    [ -n "${MUSTER_BASELINE_BIN:-}" ] || cp "$work/restore.log" "$root/bench/results-restore-timeline.txt"
    echo "  $(date -u +%T) trial $t (load $load): muster restore ${series[muster]##* } s, floor ${series[floor]##* } s (scp of the snapshot ${series[scp]##* } s)" >&2
done
stopped

python3 - "$root/$out" "$trials" "$size_mib" "$minor" "$tool_name" <<PY
import statistics as st, sys, platform, os
out, trials, size, minor, tool = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
s = {k: [float(x) for x in v.split()] for k, v in {
$(for k in "${!series[@]}"; do echo "    \"$k\": \"${series[$k]}\","; done)
}.items()}
r = [a / b for a, b in zip(s["muster"], s["floor"])]
rc = [a / (b + c) for a, b, c in zip(s["muster"], s["floor"], s["scp"])]
spread = lambda k: f"{min(s[k]):.2f}-{max(s[k]):.2f}"
lines = [
    f"# bench/restore.sh, {trials} trials, {platform.node()}, {os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in s['load'])} at each trial's start",
    f"restore of a {size} MiB snapshot, 3 members, etcd {minor}, TLS                median    min-max",
    f"  muster restore (ships snapshot and {tool}, stop, restore, start, verify)   {st.median(s['muster']):5.2f} s  {spread('muster')}",
    f"  floor: {tool} restore on each host over ssh, start, healthy (file there)   {st.median(s['floor']):5.2f} s  {spread('floor')}",
    f"  scp of the snapshot to the 3 hosts side by side (not in the floor)        {st.median(s['scp']):5.2f} s  {spread('scp')}",
    f"muster / floor (target <= 1.2)                                             {st.median(r):5.2f}    (trials: {', '.join(f'{x:.2f}' for x in r)})",
    f"muster / (floor + scp)                                                     {st.median(rc):5.2f}    (trials: {', '.join(f'{x:.2f}' for x in rc)})",
]
if "baseline" in s:
    rb = [a / b for a, b in zip(s["baseline"], s["floor"])]
    lines[4:4] = [f"  baseline muster restore ({os.environ['MUSTER_BASELINE_BIN']})".ljust(78) + f"{st.median(s['baseline']):5.2f} s  {spread('baseline')}"]
    lines.append(f"baseline / floor                                                           {st.median(rb):5.2f}    (trials: {', '.join(f'{x:.2f}' for x in rb)})")
text = "\n".join(lines) + "\n"
print(text, end="")
open(out, "w").write(text)
PY
