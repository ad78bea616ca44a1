#!/usr/bin/env bash
# scripts/compat.sh ETCD_DIR... — runs muster's real scenarios against the etcd binaries in each
# directory (etcd, etcdctl, and from 3.5 etcdutl) on a sandbox of its own and prints a matrix:
# one row per scenario, one column per directory, each cell PASS, FAIL or n/a (with the reason).
# Exits 1 when any cell is FAIL, 2 on bad arguments. Not a test: an operator's check of the
# binaries they mean to run (3.6/3.7 built by hand from etcd's release tags, say), which CI
# cannot hold. See docs/etcd-versions.md, "Compatibility script".
#
# Environment: COMPAT_SANDBOX (the sandbox's state dir, default /var/lib/muster/sandbox-compat),
# COMPAT_WORK (where inventories, muster's state and the logs go; default a new /tmp dir, kept),
# COMPAT_MUSTER (the muster binary; default .build/debug/muster, built when missing),
# COMPAT_ROWS (the scenarios to run, by name: static dns discovery discovery_backend35 grow
# replace snapshot upgrade upgrade_chain; default all).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

usage() { echo "usage: scripts/compat.sh ETCD_DIR... (each holding etcd, etcdctl and, from 3.5, etcdutl)" >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
all_rows="static dns discovery discovery_backend35 grow replace snapshot upgrade upgrade_chain"
rows=(${COMPAT_ROWS:-$all_rows})
for row in "${rows[@]}"; do
    [[ " $all_rows " = *" $row "* ]] || { echo "compat: COMPAT_ROWS: no scenario '$row' (there are: $all_rows)" >&2; exit 2; }
done

# --- the directories, checked before anything is built or started -----------------------------
dirs=() versions=()
for arg in "$@"; do
    dir=$(cd "$arg" 2>/dev/null && pwd) || { echo "compat: $arg: no such directory" >&2; exit 2; }
    [ -x "$dir/etcd" ] || { echo "compat: $dir: no executable etcd in it" >&2; exit 2; }
    version=$("$dir/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: *//p' | head -n 1)
    [[ "$version" =~ ^3\.[0-9]+\.[0-9]+$ ]] || { echo "compat: $dir/etcd: cannot read its version from etcd --version" >&2; exit 2; }
    dirs+=("$dir"); versions+=("$version")
done
minor_of() { echo "$1" | cut -d. -f2; }
patch_of() { echo "$1" | cut -d. -f3; }

# The client side: the directory's own etcdctl, else one of the same minor among the arguments
# (or /usr/bin), else any; the matrix's notes say which.
ctls=() ctl_notes=()
for i in "${!dirs[@]}"; do
    dir=${dirs[$i]}; ctl="" note=""
    if [ -x "$dir/etcdctl" ]; then ctl=$dir/etcdctl
    else
        for candidate in "${dirs[@]}" /usr/bin; do
            [ -x "$candidate/etcdctl" ] || continue
            cv=$("$candidate/etcdctl" version 2>/dev/null | sed -n 's/^etcdctl version: *//p')
            if [ -z "$ctl" ] || [ "$(minor_of "$cv")" = "$(minor_of "${versions[$i]}")" ]; then
                ctl=$candidate/etcdctl; note="no etcdctl in $dir: the client side uses $ctl ($cv)"
            fi
            [ "$(minor_of "$cv")" = "$(minor_of "${versions[$i]}")" ] && break
        done
        [ -n "$ctl" ] || { echo "compat: $dir has no etcdctl and no other directory has one" >&2; exit 2; }
    fi
    ctls+=("$ctl"); ctl_notes+=("$note")
done

# --- muster and the sandbox -----------------------------------------------------------------
export PATH=/opt/swift/usr/bin:$PATH
muster=${COMPAT_MUSTER:-$repo/.build/debug/muster}
if [ ! -x "$muster" ] && [ -z "${COMPAT_MUSTER:-}" ]; then
    . scripts/debug-flags.sh
    swift build --product muster "${debug_flags[@]}" 2>&1 | tail -n 1
    [ -x "$muster" ] || { echo "compat: the build left no $muster" >&2; exit 2; }
fi
export MUSTER_SANDBOX_ONLY=1
sandbox=${COMPAT_SANDBOX:-/var/lib/muster/sandbox-compat}
work=${COMPAT_WORK:-$(mktemp -d /tmp/muster-compat.XXXXXX)}
mkdir -p "$work/logs" && chmod 700 "$work"   # muster's state there holds the clusters' CA keys
writer_pid=""
cleanup() {
    [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null
    timeout 120 "$muster" sandbox down --state-dir "$sandbox" >"$work/logs/sandbox-down.log" 2>&1 \
        || echo "compat: sandbox down failed, see $work/logs/sandbox-down.log" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "compat: sandbox $sandbox, work dir $work"
timeout 300 "$muster" sandbox up --state-dir "$sandbox" --hosts 5 >"$work/logs/sandbox-up.log" 2>&1 \
    || { cat "$work/logs/sandbox-up.log" >&2; exit 1; }

# --- helpers, all bounded ----------------------------------------------------------------------
log=/dev/null        # the current scenario's log
inv="" state=""      # the current scenario's inventory and muster state dir
# muster in the terminal's process group (--foreground), so Ctrl-C reaches it and it stops as it
# does at a prompt (exit 130); bash ignores the SIGINT of a child that exits by itself, hence the check.
m() {
    echo "+ muster $*" >>"$log"
    timeout --foreground 900 "$muster" "$@" >>"$log" 2>&1
    local rc=$?
    [ $rc = 130 ] && exit 130
    return $rc
}
# The built inventory's ssh settings, to act on a host as an operator would.
ssh_host() {
    local host=$1; shift
    local address identity known
    address=$(sed -n "s/^  $host: { address: \([0-9.]*\).*/\1/p" "$inv")
    identity=$(sed -n 's/^  identity: //p' "$inv"); known=$(sed -n 's/^  known_hosts: //p' "$inv")
    timeout 60 ssh -i "$identity" -o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes -o BatchMode=yes \
        -o ConnectTimeout=10 "root@$address" "$@"
}
# etcdctl with muster's client certificate (`muster env`, kept in WORKDIR/env by refresh_env).
refresh_env() { timeout 60 "$muster" env "$inv" --state "$state" --cluster main >"$WORKDIR/env" 2>>"$log"; }
ctl() { echo "+ etcdctl $*" >>"$log"; ( . "$WORKDIR/env"; timeout 30 "$CTL" --command-timeout=10s "$@" ) 2>>"$log"; }
# Same, through one endpoint (etcdctl refuses --endpoints beside ETCDCTL_ENDPOINTS).
ctl_at() {
    local endpoint=$1; shift; echo "+ etcdctl at $endpoint: $*" >>"$log"
    ( . "$WORKDIR/env"; export ETCDCTL_ENDPOINTS=$endpoint; timeout 30 "$CTL" --command-timeout=10s "$@" ) 2>>"$log"
}
fail() { reason=$1; echo "FAIL: $1" >>"$log"; return 1; }

# An inventory from `muster sandbox inventory` with the clusters section written here:
# make_inventory MODE FILE CLUSTERS_YAML
make_inventory() {
    local mode=$1 file=$2 clusters=$3
    timeout 60 "$muster" sandbox inventory --state-dir "$sandbox" --bootstrap "$mode" --member-binary "$DIR/etcd" \
        --out "$file.generated" >>"$log" 2>&1 || return 1
    { sed '/^clusters:/,$d' "$file.generated" | sed "s|^  binary: .*|&\n  etcdctl: $CTL|"; echo "clusters:"; printf '%s\n' "$clusters"; } >"$file"
    echo "--- $file" >>"$log"; cat "$file" >>"$log"
}
static_clusters() { printf '  main:\n    members: [%s]\n    tls: true\n    bootstrap: static' "$1"; }

# Takes every cluster of the scenario down with its data, and whatever a failed run left on the hosts.
teardown() {
    [ -n "$inv" ] || return 0
    m down "$inv" --state "$state" --wipe-data || true
    for host in host1 host2 host3 host4 host5; do
        ssh_host "$host" 'for p in /run/etcd/*.pid; do [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
            rm -rf /var/lib/etcd /etc/etcd /run/etcd /var/log/etcd /etc/dnsmasq.d/muster-*
            [ -f /etc/resolv.conf.muster-backup ] && cat /etc/resolv.conf.muster-backup >/etc/resolv.conf && rm -f /etc/resolv.conf.muster-backup
            true' >>"$log" 2>&1
    done
}

# Every endpoint healthy, and a key written through one member reads back through each.
healthy() {
    local count=$1 key=compat/health/$RANDOM
    local endpoints
    endpoints=$( . "$WORKDIR/env"; echo "$ETCDCTL_ENDPOINTS" )
    [ "$(echo "$endpoints" | tr ',' '\n' | grep -c .)" = "$count" ] || { fail "muster env names $endpoints, not $count endpoints"; return 1; }
    ctl endpoint health >>"$log" || { fail "etcdctl endpoint health failed"; return 1; }
    ctl put "$key" ok >>"$log" || { fail "etcdctl put failed"; return 1; }
    for endpoint in ${endpoints//,/ }; do
        [ "$(ctl_at "$endpoint" get "$key" --print-value-only --consistency=s)" = ok ] \
            || { fail "$endpoint does not serve the key written through the cluster"; return 1; }
    done
}
# The voters etcd lists (learners are not counted), one "NAME" a line.
voters() { ctl member list | awk -F', ' '$2 == "started" && $6 != "true" { print $3 }' | sort; }
bring_up() { m up "$inv" --state "$state" --skip-disk-check || { fail "muster up failed"; return 1; }; m verify "$inv" --state "$state" || { fail "muster verify failed"; return 1; }; refresh_env; }

# --- the scenarios: each sets `reason` on failure or n/a, and returns 0 pass, 1 fail, 2 n/a --------
scenario_static() {
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { fail "sandbox inventory failed"; return 1; }
    bring_up && healthy 3
}

scenario_dns() {
    make_inventory dns "$inv" "$(printf '  main:\n    members: [host1, host2, host3]\n    tls: true\n    bootstrap: { dns: {} }')" \
        || { fail "sandbox inventory failed"; return 1; }
    bring_up && healthy 3
}

# v2 discovery (its backend plain: etcd's v2 discovery client presents no certificate) before 3.6;
# v3 from 3.6, its backend on TLS, running the same binary or BACKEND_DIR's (a 3.5).
discovery_clusters() {
    local backend_tls=$1 backend_member=$2
    printf '  disco:\n    members: [host1]\n    tls: %s\n    bootstrap: static\n%s' "$backend_tls" "$backend_member"
    printf '  main:\n    members: [host2, host3, host4]\n    tls: true\n    bootstrap: { discovery: { cluster: disco, size: 3 } }'
}
scenario_discovery() {
    local clusters
    if [ "$(minor_of "$VERSION")" -lt 6 ]; then clusters=$(discovery_clusters false "")
    else clusters=$(discovery_clusters true "")
    fi
    make_inventory discovery "$inv" "$clusters" || { fail "sandbox inventory failed"; return 1; }
    bring_up && healthy 3
}
scenario_discovery_backend35() {
    if [ "$(minor_of "$VERSION")" -lt 6 ]; then reason="v3 discovery needs 3.6+ members"; return 2; fi
    [ -n "$BACKEND35" ] || { reason="no 3.5 directory among the arguments"; return 2; }
    make_inventory discovery "$inv" "$(discovery_clusters true "$(printf '    member: { binary: %s/etcd }\n' "$BACKEND35")")" \
        || { fail "sandbox inventory failed"; return 1; }
    bring_up && healthy 3
}

scenario_grow() {
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { fail "sandbox inventory failed"; return 1; }
    bring_up || return 1
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3, host4")" || { fail "sandbox inventory failed"; return 1; }
    bring_up && healthy 4 || return 1
    [ "$(voters | tr '\n' ' ')" = "host1 host2 host3 host4 " ] || { fail "etcd's voters are not host1-host4: $(voters | tr '\n' ' ')"; return 1; }
}

scenario_replace() {
    local i
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { fail "sandbox inventory failed"; return 1; }
    bring_up || return 1
    for i in $(seq 1 20); do ctl put "compat/replace/$i" "r$i" >/dev/null || { fail "put before the replace failed"; return 1; }; done
    local old_id new_id
    old_id=$(ctl member list | awk -F', ' '$3 == "host3" { print $1 }')
    # host3 loses its member and its data: killed (waited for, bounded), data dir removed.
    ssh_host host3 'pid=$(cat /run/etcd/main.pid); kill "$pid"; i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        ! kill -0 "$pid" 2>/dev/null && rm -rf /var/lib/etcd/main' >>"$log" 2>&1 || { fail "could not kill host3's member"; return 1; }
    m replace "$inv" --state "$state" --cluster main --member host3 --wipe-data || { fail "muster replace failed"; return 1; }
    m verify "$inv" --state "$state" || { fail "muster verify after the replace failed"; return 1; }
    new_id=$(ctl member list | awk -F', ' '$3 == "host3" { print $1 }')
    [ -n "$new_id" ] && [ "$new_id" != "$old_id" ] || { fail "host3's ID did not change ($old_id -> $new_id)"; return 1; }
    [ "$(voters | tr '\n' ' ')" = "host1 host2 host3 " ] || { fail "etcd's voters are not host1-host3"; return 1; }
    local host3
    host3=$(ctl member list | awk -F', ' '$3 == "host3" { print $5 }')
    for i in $(seq 1 20); do
        [ "$(ctl_at "$host3" get "compat/replace/$i" --print-value-only --consistency=s)" = "r$i" ] \
            || { fail "host3 does not serve compat/replace/$i"; return 1; }
    done
    healthy 3
}

scenario_snapshot() {
    local i
    if [ "$(minor_of "$VERSION")" -ge 5 ] && [ ! -x "$DIR/etcdutl" ]; then reason="no etcdutl in $DIR (restore's tool from 3.5)"; return 2; fi
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { fail "sandbox inventory failed"; return 1; }
    bring_up || return 1
    for i in $(seq 1 20); do ctl put "compat/before/$i" "b$i" >/dev/null || { fail "put before the snapshot failed"; return 1; }; done
    mkdir -p "$WORKDIR/snapshots"
    m snapshot save "$inv" --state "$state" --cluster main --out "$WORKDIR/snapshots" || { fail "muster snapshot save failed"; return 1; }
    local file
    file=$(ls -t "$WORKDIR"/snapshots/*.db 2>/dev/null | head -n 1)
    [ -n "$file" ] || { fail "snapshot save wrote no .db file"; return 1; }
    for i in $(seq 1 20); do ctl put "compat/after/$i" "a$i" >/dev/null || { fail "put after the snapshot failed"; return 1; }; done
    m restore "$inv" --state "$state" --from "$file" --force || { fail "muster restore failed"; return 1; }
    m verify "$inv" --state "$state" || { fail "muster verify after the restore failed"; return 1; }
    [ "$(ctl get compat/before/ --prefix --keys-only | grep -c .)" = 20 ] || { fail "the 20 keys from before the snapshot are not all there"; return 1; }
    local after
    after=$(ctl get compat/after/ --prefix --keys-only) || { fail "etcdctl get after the restore failed"; return 1; }
    [ -z "$after" ] || { fail "keys written after the snapshot survived the restore"; return 1; }
    healthy 3
}

# The writer: one put at a time through etcdctl, each acknowledged key's index a line in ACKS,
# until STOP exists or 900 s passed.
writer() {
    local acks=$1 stop=$2 i=0 end=$((SECONDS + 900))
    . "$WORKDIR/env"
    while [ ! -e "$stop" ] && [ $SECONDS -lt $end ]; do
        if timeout 10 "$CTL" --command-timeout=3s put "compat/w/$(printf %06d $i)" "$i" >/dev/null 2>&1; then echo "$i" >>"$acks"; fi
        i=$((i + 1))
    done
}
# Why muster refuses FROM -> TO by etcd's upgrade guides (docs/etcd-versions.md), or nothing.
upgrade_refusal() {
    local from=$1 to=$2
    if [ "$(minor_of "$to")" = 6 ] && [ "$(minor_of "$from")" = 5 ] && [ "$(patch_of "$from")" -lt 32 ]; then
        echo "muster refuses $from -> $to (rule 3.5.32-before-3.6; CI tests the refusal)"
    elif [ "$(minor_of "$to")" = 7 ] && [ "$(minor_of "$from")" = 6 ] && [ "$(patch_of "$from")" -lt 11 ]; then
        echo "muster refuses $from -> $to (rule 3.6.11-before-3.7)"
    fi
}
# The index of the nearest argument before $1 that an upgrade to it starts from (the previous
# minor, or the same minor at an older patch, and not refused by upgrade_refusal); empty when none.
upgrade_source() {
    local to=${versions[$1]} j v
    for ((j = $1 - 1; j >= 0; j--)); do
        v=${versions[$j]}
        if [ "$(minor_of "$v")" = "$(( $(minor_of "$to") - 1 ))" ] \
            || { [ "$(minor_of "$v")" = "$(minor_of "$to")" ] && [ "$(patch_of "$v")" -lt "$(patch_of "$to")" ]; }; then
            [ -n "$(upgrade_refusal "$v" "$to")" ] && continue
            echo "$j"; return
        fi
    done
}

# The cluster founded on the first directory of STEPS (argument indices), rolled by `muster up`
# onto each next one, with the writer putting keys throughout; every acknowledged key must read
# back, and the members run the last version.
upgrade_through() {
    local steps=("$@") first=$1 step
    # DIR and CTL local: the cluster starts on the first step's binaries.
    local DIR=${dirs[$first]} CTL=${ctls[$first]}
    echo "upgrade $(for step in "${steps[@]}"; do printf '%s ' "${versions[$step]}"; done)" >>"$log"
    make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { fail "sandbox inventory failed"; return 1; }
    bring_up || return 1
    local acks=$WORKDIR/acks stop=$WORKDIR/stop
    rm -f "$acks" "$stop"; : >"$acks"
    writer "$acks" "$stop" & writer_pid=$!
    # The writer is under way before the roll: its first acknowledgement, waited for (bounded).
    local waited=0
    while [ ! -s "$acks" ] && [ $waited -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    stop_writer() { touch "$stop"; wait "$writer_pid"; writer_pid=""; }
    [ -s "$acks" ] || { stop_writer; fail "the writer got no acknowledgement before the upgrade"; return 1; }
    local before=$(wc -l <"$acks")
    for step in "${steps[@]:1}"; do
        DIR=${dirs[$step]} CTL=${ctls[$step]}
        make_inventory static "$inv" "$(static_clusters "host1, host2, host3")" || { stop_writer; fail "sandbox inventory failed"; return 1; }
        m up "$inv" --state "$state" --skip-disk-check || { stop_writer; fail "muster up onto ${versions[$step]} failed"; return 1; }
    done
    stop_writer
    local during=$(( $(wc -l <"$acks") - before ))
    echo "writer: $(wc -l <"$acks") acknowledged, $during during the roll" >>"$log"
    m verify "$inv" --state "$state" || { fail "muster verify after the upgrade failed"; return 1; }
    refresh_env
    local running
    running=$(ctl endpoint status | awk -F', ' '{ print $3 }' | sort -u | tr '\n' ' ')
    [ "$running" = "$VERSION " ] || { fail "the members run $running, not $VERSION"; return 1; }
    ctl get compat/w/ --prefix --keys-only | sed -n 's|^compat/w/0*\([0-9]\)|\1|p' | sort >"$WORKDIR/read"
    local missing
    missing=$(sort "$acks" | comm -23 - "$WORKDIR/read" | head -n 5 | tr '\n' ' ')
    [ -z "$missing" ] || { fail "acknowledged writes lost, e.g. $missing"; return 1; }
    [ $during -gt 0 ] || { fail "no write was acknowledged during the roll"; return 1; }
    healthy 3
}
# Row 7: one step, from the nearest earlier argument it may start from.
scenario_upgrade() {
    [ ${#CHAIN[@]} -ge 2 ] || { reason=${CHAIN_REFUSAL:-no earlier argument of the previous minor or an older patch}; return 2; }
    upgrade_through "${CHAIN[@]: -2}"
}
# Row 7b: every step of the chain of such arguments (3.5.32 -> 3.6 -> 3.7, the 3.7 step right
# after the 3.6 one), when it has two or more.
scenario_upgrade_chain() {
    [ ${#CHAIN[@]} -ge 3 ] || { reason="fewer than two upgrade steps among the earlier arguments"; return 2; }
    upgrade_through "${CHAIN[@]}"
}

# --- the run -----------------------------------------------------------------------------------
declare -A title=(
    [static]="1. static, TLS, verified"
    [dns]="2. DNS SRV, TLS"
    [discovery]="3. discovery, TLS (v2 <3.6, v3 3.6+)"
    [discovery_backend35]="3b. v3 discovery, backend on 3.5"
    [grow]="4. grow 3 -> 4"
    [replace]="5. replace a wiped member"
    [snapshot]="6. snapshot save, restore"
    [upgrade]="7. upgrade from an earlier arg"
    [upgrade_chain]="7b. upgrade through earlier args"
)
declare -A cell
notes=()
failed=0
for i in "${!dirs[@]}"; do
    DIR=${dirs[$i]} VERSION=${versions[$i]} CTL=${ctls[$i]}
    [ -n "${ctl_notes[$i]}" ] && notes+=("$VERSION: ${ctl_notes[$i]}")
    # The newest 3.5 among the arguments, for a 3.6+ cluster's backend.
    BACKEND35=""
    for j in "${!dirs[@]}"; do [ "$(minor_of "${versions[$j]}")" = 5 ] && BACKEND35=${dirs[$j]}; done
    # The chain of arguments an upgrade to VERSION goes through, nearest steps first chosen.
    CHAIN=("$i") CHAIN_REFUSAL=""
    while source=$(upgrade_source "${CHAIN[0]}") && [ -n "$source" ]; do CHAIN=("$source" "${CHAIN[@]}"); done
    # No step: the n/a names the refusal of the nearest earlier argument muster would refuse.
    [ ${#CHAIN[@]} = 1 ] && CHAIN_REFUSAL=$(for ((j = i - 1; j >= 0; j--)); do r=$(upgrade_refusal "${versions[$j]}" "$VERSION"); [ -n "$r" ] && { echo "$r"; break; }; done)
    for row in "${rows[@]}"; do
        WORKDIR=$work/$VERSION-$i/$row
        mkdir -p "$WORKDIR"
        log=$work/logs/$VERSION-$i-$row.log; : >"$log"
        inv=$WORKDIR/inventory.yml state=$WORKDIR/state reason=""
        printf 'compat: etcd %s, %s ... ' "$VERSION" "${title[$row]}"
        start=$SECONDS
        "scenario_$row"; rc=$?
        case $rc in
            0) cell[$row,$i]=PASS ;;
            2) cell[$row,$i]=n/a; notes+=("${title[$row]%%.*}, $VERSION: n/a, $reason") ;;
            *) cell[$row,$i]=FAIL; failed=1; notes+=("${title[$row]%%.*}, $VERSION: FAIL, $reason (log: $log)") ;;
        esac
        [[ "$row" = upgrade* ]] && [ $rc = 0 ] && notes+=("${title[$row]%%.*}, $VERSION: $(sed -n 's/^upgrade \(.*\) $/\1/p' "$log" | sed 's/ / -> /g'), $(grep -o 'writer: .*' "$log" | tail -n 1)")
        echo "${cell[$row,$i]} ($((SECONDS - start)) s)"
        [ $rc = 2 ] || teardown
        inv=""
    done
done

# --- the matrix ------------------------------------------------------------------------------------
echo
echo "muster compatibility matrix, $(date -u +%Y-%m-%d), $(git -C "$repo" rev-parse --short HEAD)"
printf '| %-36s |' scenario
for i in "${!dirs[@]}"; do printf ' %-8s |' "${versions[$i]}"; done; echo
printf '|%s|' "$(printf -- '-%.0s' $(seq 1 38))"
for i in "${!dirs[@]}"; do printf -- '----------|'; done; echo
for row in "${rows[@]}"; do
    printf '| %-36s |' "${title[$row]}"
    for i in "${!dirs[@]}"; do printf ' %-8s |' "${cell[$row,$i]}"; done; echo
done
echo
for i in "${!dirs[@]}"; do echo "${versions[$i]}: ${dirs[$i]}"; done
for note in "${notes[@]}"; do echo "- $note"; done
echo "logs: $work/logs"
exit $failed
