#!/usr/bin/env bash
# muster day-two benchmarks (not tests), issues #17 and #18, on this machine's sandbox (5 hosts):
# grow 3 -> 4 and replace one member, each against a hand-made floor on the same hosts in the
# same trial; 3 -> 5 -> 3 (the leader among those removed) and a rolling 3.4 -> 3.5 upgrade with
# a client writing a key every few ms (longest gap between two acknowledged writes, every
# acknowledged key read back); snapshot throughput of `muster snapshot save` against
# `etcdctl snapshot save` on a TLS cluster holding ~50 MiB. Ratios are computed pair by pair
# within a trial, because these machines are noisy.
#   bench/day2.sh [TRIALS]   (default 3; MUSTER_BIN=PATH skips the release build; results also
#                             go to bench/results-day2.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-3}
root=$PWD
work=/var/lib/muster/bench2
sandbox_dir=/var/lib/muster/sandbox-bench2
out=bench/results-day2.txt
helper=$root/bench/day2.py
export MUSTER_SANDBOX_ONLY=1
etcd35=/var/cache/muster/etcd-3.5/usr/bin/etcd
snapshot_mib=50

[ -x "$etcd35" ] || scripts/setup.sh
if [ -n "${MUSTER_BIN:-}" ]; then
    muster=$MUSTER_BIN
else
    . scripts/release-flags.sh
    swift build "${release_flags[@]}" 2>&1 | tail -n 1
    muster=$root/.build/release/muster
fi
writer_pid=
cleanup() {
    [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null || true
    $muster sandbox down --state-dir "$sandbox_dir" >/dev/null 2>&1 || true
}
$muster sandbox down --state-dir "$sandbox_dir" >/dev/null 2>&1 || true
rm -rf "$work" && mkdir -p "$work"
trap cleanup EXIT
$muster sandbox up --hosts 5 --state-dir "$sandbox_dir" >/dev/null
state=$sandbox_dir
key=$state/client_ed25519
known=$state/known_hosts
mapfile -t addresses < <(python3 -c 'import json,sys; [print(h["address"]) for h in json.load(open(sys.argv[1]))["hosts"]]' "$state/state.json")
[ ${#addresses[@]} = 5 ] || { echo "expected 5 sandbox hosts, got ${#addresses[@]}" >&2; exit 1; }
ssh_opts=(-i "$key" -o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=10)
for a in "${addresses[@]}"; do
    ip -o route get "$a" | grep -q " dev mstr-br" || { echo "refusing $a: not routed through a sandbox bridge" >&2; exit 1; }
done
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
addr_of() { echo "${addresses[$((${1#host} - 1))]}"; }          # host3 -> its address
host_of() { local i; for i in 1 2 3 4 5; do if [ "${addresses[$((i-1))]}" = "$1" ]; then echo "host$i"; return 0; fi; done; return 1; }
ctl() {  # etcdctl from the controller against the given comma-separated endpoints, bounded
    local eps=$1; shift
    ETCDCTL_API=3 timeout 20 etcdctl --endpoints="$eps" --dial-timeout=2s --command-timeout=10s "$@"
}
eps() { local h e=(); for h in "$@"; do e+=("$(addr_of "$h"):2379"); done; (IFS=,; echo "${e[*]}"); }

# Inventories: the sandbox's own, cut down to the members each step wants.
$muster sandbox inventory --plain-http --state-dir "$state" --out "$work/sandbox.yml" >/dev/null
inventory() {  # FILE TLS BINARY HOST... : writes FILE with cluster main of those hosts
    local file=$1 tls=$2 binary=$3; shift 3
    python3 - "$work/sandbox.yml" "$file" "$tls" "$binary" "$@" <<'PY'
import sys, re
src, dst, tls, binary, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
text = open(src).read()
text = re.sub(r"(?m)^  binary: .*$", f"  binary: {binary}", text)
text = re.sub(r"(?m)^    members: \[.*\]$", f"    members: [{', '.join(members)}]", text)
text = re.sub(r"(?m)^    tls: .*$", f"    tls: {tls}", text)
assert f"members: [{', '.join(members)}]" in text and f"tls: {tls}" in text
open(dst, "w").write(text)
PY
}

# Leaves every host bare (each host is its own pid namespace, so this sees only that host's
# processes); keep_binary=1 keeps /opt/muster for the floors, which do not ship the binary.
bare() {
    local keep_binary=${1:-0} pids=() a
    for a in "${addresses[@]}"; do
        ssh "${ssh_opts[@]}" "root@$a" "for d in /proc/[0-9]*; do case \"\$(readlink \$d/exe 2>/dev/null)\" in *etcd*) kill -9 \"\${d#/proc/}\" 2>/dev/null;; esac; done; rm -rf /var/lib/etcd /etc/etcd /run/etcd /var/log/etcd /tmp/floor; [ $keep_binary = 1 ] || rm -rf /opt/muster; true" &
        pids+=($!)
    done
    wait "${pids[@]}"
    rm -rf "$work"/*.state "$work"/acks-* "$work"/stop-*
    sync  # no writeback of the previous step pending (etcd fsyncs its WAL)
}

up() {  # INVENTORY [ARGS...]: muster up with the inventory's own state dir; fails the run on error
    local inv=$1; shift
    $muster up "$inv" --state "$inv.state" --templates "$root/templates" --skip-disk-check "$@" >"$inv.log" 2>&1 || { tail -n 30 "$inv.log" >&2; exit 1; }
}
timed_up() { local t0 t1; t0=$(now); up "$@"; t1=$(now); elapsed "$t0" "$t1"; }

leader_host() {  # HOST...: the name of the member that leads
    local a e=(); for a in "$@"; do e+=("$(addr_of "$a")"); done
    host_of "$(python3 "$helper" leader "${e[@]}")"
}
follower_of() {  # HOST...: the first of them that does not lead
    local l h; l=$(leader_host "$@"); for h in "$@"; do if [ "$h" != "$l" ]; then echo "$h"; return 0; fi; done; return 1
}

member_id() {  # ENDPOINTS NAME: hex member ID from `member list`
    ctl "$1" member list | awk -F', ' -v n="$2" '$3 == n {print $1}'
}

# Floors: muster's own rendered conf.yml for the member (initial-cluster-state: existing, data
# under /tmp/floor), the binary muster placed there before, plain ssh for the file and the start,
# etcdctl from the controller for add / remove / promote.
etcd_bin=/opt/muster/bin/etcd-$(/usr/bin/etcd --version | awk '/etcd Version/ {print $3}')
inventory "$work/render4.yml" false /usr/bin/etcd host1 host2 host3 host4
$muster render "$work/render4.yml" --out "$work/rendered" --state "$work/render.keep" --templates "$root/templates" >/dev/null
for h in host1 host2 host3 host4; do
    sed -e 's#^data-dir: .*#data-dir: /tmp/floor/data#' -e 's#^initial-cluster-state: .*#initial-cluster-state: existing#' \
        "$work/rendered/$h/etc/etcd/main/conf.yml" > "$work/floor4-$h.yml"
done
# For a 3-member cluster (the replace floor) initial-cluster names the three founders.
for h in host1 host2 host3; do
    sed -e "s#^initial-cluster: .*#initial-cluster: $(grep '^initial-cluster:' "$work/rendered/host1/etc/etcd/main/conf.yml" | sed -e 's/^initial-cluster: //' -e 's/,host4=[^,]*//')#" \
        "$work/floor4-$h.yml" > "$work/floor3-$h.yml"
done

floor_add_start_promote() {  # HOST CONF ENDPOINTS: member add --learner, file, start, promote
    local h=$1 conf=$2 e=$3 a id="" i
    a=$(addr_of "$h")
    for i in $(seq 1 100); do  # etcd answers "unhealthy cluster" for 5 s after a member starts
        add=$(ctl "$e" member add "$h" --learner --peer-urls="http://$a:2380" 2>&1 || true)
        id=$(echo "$add" | awk '/^Member [0-9a-f]+ added/ {print $2}')
        # An add whose answer was lost (timeout under load) is in the list already: take its ID.
        if [ -z "$id" ] && echo "$add" | grep -q "already exists"; then
            id=$(ctl "$e" member list | awk -F', ' -v u="http://$a:2380" '$4 == u {print $1}')
        fi
        [ -n "$id" ] && break
        sleep 0.1
    done
    [ -n "$id" ] || { echo "floor: member add $h failed: $add" >&2; exit 1; }
    ssh "${ssh_opts[@]}" "root@$a" "mkdir -p /tmp/floor && cat > /tmp/floor/conf.yml" < "$conf"
    ssh "${ssh_opts[@]}" "root@$a" "{ setsid $etcd_bin --config-file=/tmp/floor/conf.yml </dev/null >/tmp/floor/log 2>&1 & }; echo \$! > /tmp/floor/pid"
    for i in $(seq 1 600); do  # refused until the learner is in sync
        ctl "$e" member promote "$id" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "floor: promote $h never succeeded" >&2; exit 1
}

floor_grow() {  # a formed host1-3 cluster; host4 bare but for the binary
    local t0 t1
    t0=$(now)
    floor_add_start_promote host4 "$work/floor4-host4.yml" "$(eps host1 host2 host3)"
    t1=$(now)
    elapsed "$t0" "$t1"
}

kill_and_wipe() {  # HOST: the member killed, its data dir wiped
    ssh "${ssh_opts[@]}" "root@$(addr_of "$1")" 'kill -9 "$(cat /run/etcd/main.pid)"; for _ in $(seq 1 50); do kill -0 "$(cat /run/etcd/main.pid)" 2>/dev/null || break; sleep 0.05; done; rm -rf /var/lib/etcd/main'
}

floor_replace() {  # HOST, already killed and wiped, of a formed host1-3 cluster
    local h=$1 t0 t1 e others=() o id
    for o in host1 host2 host3; do if [ "$o" != "$h" ]; then others+=("$o"); fi; done
    e=$(eps "${others[@]}")
    t0=$(now)
    id=$(member_id "$e" "$h")
    [ -n "$id" ] || { echo "floor: $h not in member list" >&2; exit 1; }
    ctl "$e" member remove "$id" >/dev/null
    ssh "${ssh_opts[@]}" "root@$(addr_of "$h")" "rm -rf /var/lib/etcd/main /tmp/floor/data"
    floor_add_start_promote "$h" "$work/floor3-$h.yml" "$e"
    t1=$(now)
    elapsed "$t0" "$t1"
}

start_writer() {  # NAME HOST...: the python writer in the background, round-robin over the hosts
    local name=$1 a e=(); shift
    for a in "$@"; do e+=("$(addr_of "$a")"); done
    python3 "$helper" write "$work/acks-$name" "$work/stop-$name" 300 "${e[@]}" &
    writer_pid=$!
    for _ in $(seq 1 100); do [ -s "$work/acks-$name" ] && return 0; sleep 0.05; done
    echo "writer $name: no write acknowledged in 5 s" >&2; exit 1
}
stop_writer() {  # NAME
    sleep 0.3  # a few acks after the last step, so the gap after it is seen
    touch "$work/stop-$1"
    for _ in $(seq 1 100); do kill -0 "$writer_pid" 2>/dev/null || break; sleep 0.05; done
    kill "$writer_pid" 2>/dev/null || true
    wait "$writer_pid" 2>/dev/null || true
    writer_pid=
}

# etcd refuses membership changes ("unhealthy cluster") until its leader has been connected to
# every voter for 5 s; muster and the floors both retry, but each contender starts after that
# window so that the rows measure the tools, not etcd's guard.
settle() { sleep 6; }

declare -A series
record() { series[$1]="${series[$1]:-} $2"; }

echo "trials: $trials" >&2
for t in $(seq 1 "$trials"); do
    echo "  $(date -u +%T) trial $t: grow" >&2
    # 1. grow 3 -> 4, a bare host4 to a promoted voter; muster then the floor.
    bare 0
    inventory "$work/grow.yml" false /usr/bin/etcd host1 host2 host3; up "$work/grow.yml"; settle
    inventory "$work/grow.yml" false /usr/bin/etcd host1 host2 host3 host4
    v=$(timed_up "$work/grow.yml" --no-backup); record grow_muster "$v"
    bare 1
    inventory "$work/growf.yml" false /usr/bin/etcd host1 host2 host3; up "$work/growf.yml"; settle
    v=$(floor_grow); record grow_floor "$v"

    echo "  $(date -u +%T) trial $t: replace" >&2
    # 2. replace a follower whose data dir was wiped and which was killed; muster then the floor.
    bare 1
    inventory "$work/repl.yml" false /usr/bin/etcd host1 host2 host3; up "$work/repl.yml"; settle
    h=$(follower_of host1 host2 host3); kill_and_wipe "$h"
    t0=$(now)
    $muster replace "$work/repl.yml" --cluster main --member "$h" --wipe-data --no-backup --state "$work/repl.yml.state" --templates "$root/templates" >"$work/replace.log" 2>&1 || { tail -n 30 "$work/replace.log" >&2; exit 1; }
    t1=$(now); record replace_muster "$(elapsed "$t0" "$t1")"
    bare 1
    inventory "$work/replf.yml" false /usr/bin/etcd host1 host2 host3; up "$work/replf.yml"; settle
    h=$(follower_of host1 host2 host3); kill_and_wipe "$h"
    v=$(floor_replace "$h"); record replace_floor "$v"

    echo "  $(date -u +%T) trial $t: 3 -> 5" >&2
    # 3. 3 -> 5 -> 3 with the writer; the leader is among the two removed.
    bare 0
    inventory "$work/five.yml" false /usr/bin/etcd host1 host2 host3; up "$work/five.yml"; settle
    start_writer five host1 host2 host3 host4 host5
    # One run adds both, one after the other.
    g0=$(now)
    inventory "$work/five.yml" false /usr/bin/etcd host1 host2 host3 host4 host5; up "$work/five.yml"
    g1=$(now)
    l=$(leader_host host1 host2 host3 host4 host5)
    other=host5; if [ "$l" = host5 ]; then other=host4; fi
    keep=(); for h in host1 host2 host3 host4 host5; do if [ "$h" != "$l" ] && [ "$h" != "$other" ]; then keep+=("$h"); fi; done
    inventory "$work/five.yml" false /usr/bin/etcd "${keep[@]}"
    s0=$(now); up "$work/five.yml" --remove-members --wipe-data; s1=$(now)
    [ "$(leader_host "${keep[@]}")" != "$l" ] || { echo "the leader $l was not removed" >&2; exit 1; }
    stop_writer five
    record grow5_s "$(elapsed "$g0" "$g1")"; record shrink3_s "$(elapsed "$s0" "$s1")"
    record grow5_gap "$(python3 "$helper" gap "$work/acks-five" "$g0" "$g1")"
    record shrink3_gap "$(python3 "$helper" gap "$work/acks-five" "$s0" "$s1")"
    c=$(python3 "$helper" check "$work/acks-five" $(for h in "${keep[@]}"; do addr_of "$h"; done)) || exit 1
    record five_acked "${c%% *}"

    echo "  $(date -u +%T) trial $t: rolling" >&2
    # 5. rolling upgrade 3.4.23 -> 3.5.16 of 3 members with the writer.
    bare 0
    inventory "$work/upg.yml" false /usr/bin/etcd host1 host2 host3; up "$work/upg.yml"
    start_writer upg host1 host2 host3
    inventory "$work/upg.yml" false "$etcd35" host1 host2 host3
    u0=$(now); up "$work/upg.yml"; u1=$(now)
    stop_writer upg
    record upgrade_s "$(elapsed "$u0" "$u1")"
    record upgrade_gap "$(python3 "$helper" gap "$work/acks-upg" "$u0" "$u1")"
    c=$(python3 "$helper" check "$work/acks-upg" $(for h in host1 host2 host3; do addr_of "$h"; done)) || exit 1
    record upg_acked "${c%% *}"
    for h in host1 host2 host3; do
        curl -s -m 2 "http://$(addr_of "$h"):2379/version" | grep -q '"etcdserver":"3.5.16"' || { echo "$h does not run 3.5.16 after the upgrade" >&2; exit 1; }
    done

    echo "  $(date -u +%T) trial $t: snapshot" >&2
    # 4. snapshot throughput on a TLS cluster holding ~50 MiB; the order alternates by trial.
    bare 0
    inventory "$work/snap.yml" true /usr/bin/etcd host1 host2 host3; up "$work/snap.yml"
    eval "$($muster env "$work/snap.yml" --cluster main --state "$work/snap.yml.state" --templates "$root/templates")"
    l=$(addr_of host1)
    python3 "$helper" load "$snapshot_mib" "$l" "$ETCDCTL_CACERT" "$ETCDCTL_CERT" "$ETCDCTL_KEY"
    leader_addr=$(ETCDCTL_API=3 timeout 20 etcdctl endpoint status -w json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next(e["Endpoint"] for e in s if e["Status"]["leader"] == e["Status"]["header"]["member_id"]).split("//")[-1].split(":")[0])')
    [ -n "$(host_of "$leader_addr")" ] || { echo "snapshot: leader $leader_addr is no sandbox host" >&2; exit 1; }
    snap_muster() {
        rm -rf "$work/snap-m" && mkdir -p "$work/snap-m"
        local t0 t1
        t0=$(now)
        $muster snapshot save "$work/snap.yml" --cluster main --out "$work/snap-m" --state "$work/snap.yml.state" --templates "$root/templates" >"$work/snap-m.log" 2>&1 || { cat "$work/snap-m.log" >&2; exit 1; }
        t1=$(now)
        python3 -c "import os,glob; f=glob.glob('$work/snap-m/*.db'); assert len(f) == 1; print(f'{os.path.getsize(f[0]) / 1048576 / ($t1 - $t0):.1f} {os.path.getsize(f[0]) / 1048576:.1f}')"
    }
    snap_etcdctl() {
        rm -f "$work/snap-e.db"
        local t0 t1
        t0=$(now)
        env -u ETCDCTL_ENDPOINTS ETCDCTL_API=3 timeout 60 etcdctl --endpoints="https://$leader_addr:2379" snapshot save "$work/snap-e.db" >"$work/snap-e.log" 2>&1 || { cat "$work/snap-e.log" >&2; exit 1; }
        t1=$(now)
        python3 -c "import os; print(f'{os.path.getsize(\"$work/snap-e.db\") / 1048576 / ($t1 - $t0):.1f}')"
    }
    if [ $((t % 2)) = 1 ]; then m=$(snap_muster); e=$(snap_etcdctl); else e=$(snap_etcdctl); m=$(snap_muster); fi
    record snap_muster "${m% *}"; record snap_mib "${m#* }"; record snap_etcdctl "$e"
    unset ETCDCTL_ENDPOINTS ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY
    echo "trial $t done" >&2
done
bare 0
rm -rf "$work/snap-m" "$work/snap-e.db"

python3 - "$out" "$trials" <<PY
import statistics as st, sys, platform, subprocess
out, trials = sys.argv[1], int(sys.argv[2])
s = {k: [float(x) for x in v.split()] for k, v in {
$(for k in "${!series[@]}"; do echo "    \"$k\": \"${series[$k]}\","; done)
}.items()}
def med(k): return st.median(s[k])
def spread(k, f="{:.2f}"): return f"{f.format(min(s[k]))}-{f.format(max(s[k]))}"
def ratio(a, b): return st.median([x / y for x, y in zip(s[a], s[b])])
rows = [
  ("grow 3 -> 4, bare host to promoted voter: muster up", f"{med('grow_muster'):.2f} s", spread('grow_muster')),
  ("  floor (member add --learner, file+start over ssh, promote)", f"{med('grow_floor'):.2f} s", spread('grow_floor')),
  ("replace one member (killed, data wiped): muster replace", f"{med('replace_muster'):.2f} s", spread('replace_muster')),
  ("  floor (member remove, wipe, add --learner, start, promote)", f"{med('replace_floor'):.2f} s", spread('replace_floor')),
  ("3 -> 5 with a writer: one muster up", f"{med('grow5_s'):.2f} s", spread('grow5_s')),
  ("  longest gap between acknowledged writes", f"{med('grow5_gap') * 1000:.0f} ms", spread('grow5_gap', "{:.3f}") + " s"),
  ("5 -> 3, leader removed: muster up --remove-members", f"{med('shrink3_s'):.2f} s", spread('shrink3_s')),
  ("  longest gap between acknowledged writes", f"{med('shrink3_gap') * 1000:.0f} ms", spread('shrink3_gap', "{:.3f}") + " s"),
  ("  acknowledged writes, all read back afterwards", f"{med('five_acked'):.0f}", spread('five_acked', "{:.0f}")),
  ("rolling upgrade 3.4.23 -> 3.5.16, 3 members: muster up", f"{med('upgrade_s'):.2f} s", spread('upgrade_s')),
  ("  longest gap between acknowledged writes", f"{med('upgrade_gap') * 1000:.0f} ms", spread('upgrade_gap', "{:.3f}") + " s"),
  ("  acknowledged writes, all read back afterwards", f"{med('upg_acked'):.0f}", spread('upg_acked', "{:.0f}")),
  (f"snapshot of {med('snap_mib'):.0f} MiB (TLS): muster snapshot save", f"{med('snap_muster'):.1f} MiB/s", spread('snap_muster', "{:.1f}")),
  ("  etcdctl snapshot save from the controller", f"{med('snap_etcdctl'):.1f} MiB/s", spread('snap_etcdctl', "{:.1f}")),
]
ratios = [
  ("grow: muster / floor", ratio('grow_muster', 'grow_floor')),
  ("replace: muster / floor", ratio('replace_muster', 'replace_floor')),
  ("snapshot throughput: muster / etcdctl", ratio('snap_muster', 'snap_etcdctl')),
]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
lines = [f"muster day-two benchmark, {trials} trials, {platform.node()} ({cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores)",
         "grow and replace: --no-backup (the floors take none), each 6 s after the cluster formed",
         "(etcd refuses membership changes for 5 s); 3 -> 5 -> 3 and the upgrade with muster's backup", ""]
lines += [f"{a:<62} {b:>14}  {c}" for a, b, c in rows]
lines += ["", "ratios (median of per-trial ratios):"]
lines += [f"{a:<62} {b:>8.2f}" for a, b in ratios]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
