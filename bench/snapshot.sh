#!/usr/bin/env bash
# Snapshot throughput (issue #31, item 1; a benchmark, not a test): one etcd 3.5.16 member on
# 127.0.0.1 with TLS and client-cert-auth holding ~MIB MiB, saved by `etcdctl snapshot save` and
# by muster's EtcdClient (the call `muster snapshot save` makes) over gRPC and through the JSON
# gateway, each timed from outside its process (start, TLS, transfer, fsync), the order rotating by
# trial. Ratios are computed within a trial: these machines are noisy. Also etcd's own CPU time per
# snapshot (where the gateway's cost lies).
#   bench/snapshot.sh [TRIALS] [MIB]   (defaults 3 and 200; results also go to bench/results-snapshot.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-3}
mib=${2:-200}
root=$PWD
out=bench/results-snapshot.txt
etcd=/var/cache/muster/etcd-3.5/usr/bin/etcd
etcdctl=/var/cache/muster/etcd-sid/usr/bin/etcdctl
etcdutl() { /var/cache/muster/etcd-3.5/usr/bin/etcdutl "$@"; }
[ -x "$etcd" ] && [ -x "$etcdctl" ] || scripts/setup.sh

# The shipped binary's flags (scripts/release-flags.sh), for the benchmark's client instead of muster.
. scripts/release-flags.sh
swift build "${release_flags[@]/#muster/muster-snapshot-bench}" 2>&1 | tail -n 1
client=$root/.build/release/muster-snapshot-bench

work=$(mktemp -d /tmp/muster-bench-snapshot.XXXXXX)
etcd_pid=
cleanup() {
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# A throwaway CA, a server certificate for 127.0.0.1 and a client certificate.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key && openssl req -x509 -new -key ca.key -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null
for who in server client; do
    key $who.key && openssl req -new -key $who.key -out $who.csr -subj /CN=$who 2>/dev/null
    usage=$([ $who = server ] && echo "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth" || echo "extendedKeyUsage=clientAuth")
    openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 1 -extfile <(echo "$usage") 2>/dev/null
done

read -r client_port peer_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
url=https://127.0.0.1:$client_port
"$etcd" --name bench --data-dir bench.etcd --quota-backend-bytes $((8 << 30)) \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" \
    --cert-file server.pem --key-file server.key --trusted-ca-file ca.pem --client-cert-auth >etcd.log 2>&1 &
etcd_pid=$!
ctl() { timeout 60 "$etcdctl" --endpoints="$url" --cacert=ca.pem --cert=client.pem --key=client.key --dial-timeout=2s "$@"; }
for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
ctl endpoint health >/dev/null 2>&1 || { tail etcd.log >&2; exit 1; }
# 1 MiB values, random printable bytes (nothing for a transport to compress).
for i in $(seq "$mib"); do head -c 786432 /dev/urandom | base64 -w0 | ctl put "bench/$i" >/dev/null; done

now() { date +%s.%N; }
etcd_cpu() { awk '{print $14 + $15}' "/proc/$etcd_pid/stat"; }   # clock ticks
ticks=$(getconf CLK_TCK)
declare -A series
record() { series[$1]="${series[$1]:-} $2"; }
# Runs one saver ($1: etcdctl, grpc, gateway) into $2; prints MiB/s, MiB and etcd's CPU seconds.
save() {
    local t0 t1 c0 c1
    rm -f "$2"
    c0=$(etcd_cpu); t0=$(now)
    case $1 in
        etcdctl) ctl snapshot save "$2" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; } ;;
        *) "$client" "$1" "$url" "$2" ca.pem client.pem client.key >/dev/null || exit 1 ;;
    esac
    t1=$(now); c1=$(etcd_cpu)
    python3 -c "import os; s = os.path.getsize('$2') / 1048576; print(f'{s / ($t1 - $t0):.1f} {s:.1f} {($c1 - $c0) / $ticks:.2f}')"
}
orders=("etcdctl grpc gateway" "grpc gateway etcdctl" "gateway etcdctl grpc")
for t in $(seq "$trials"); do
    for who in ${orders[$(((t - 1) % 3))]}; do
        read -r rate size cpu < <(save "$who" "$work/$who.db")
        record "$who" "$rate"; record "${who}_cpu" "$cpu"; record size "$size"
    done
    # Not byte for byte (etcd commits its backend before each snapshot): the same keys and revision.
    [ "$(etcdutl snapshot status "$work/etcdctl.db" -w json)" = "$(etcdutl snapshot status "$work/grpc.db" -w json)" ] && record same 1 || record same 0
    echo "  $(date -u +%T) trial $t: etcdctl ${series[etcdctl]##* }, muster gRPC ${series[grpc]##* }, muster gateway ${series[gateway]##* } MiB/s" >&2
done

python3 - "$root/$out" "$trials" <<PY
import statistics as st, sys, platform
out, trials = sys.argv[1], int(sys.argv[2])
s = {k: [float(x) for x in v.split()] for k, v in {
$(for k in "${!series[@]}"; do echo "    \"$k\": \"${series[$k]}\","; done)
}.items()}
med = lambda k: st.median(s[k])
def ratio(a, b):
    r = [x / y for x, y in zip(s[a], s[b])]
    return f"{st.median(r):.2f} (trials: {', '.join(f'{x:.2f}' for x in r)})"
rows = [
    (f"snapshot of {med('size'):.0f} MiB, etcd 3.5.16, TLS, loopback", "median MiB/s", "etcd CPU s"),
    ("  etcdctl snapshot save", f"{med('etcdctl'):.1f}", f"{med('etcdctl_cpu'):.2f}"),
    ("  muster, gRPC Maintenance.Snapshot", f"{med('grpc'):.1f}", f"{med('grpc_cpu'):.2f}"),
    ("  muster, JSON gateway", f"{med('gateway'):.1f}", f"{med('gateway_cpu'):.2f}"),
    ("muster gRPC / etcdctl throughput", ratio('grpc', 'etcdctl'), ""),
    ("muster gateway / etcdctl throughput", ratio('gateway', 'etcdctl'), ""),
    ("gRPC file's keys, revision, size = etcdctl's", f"{int(sum(s['same']))} of {trials} trials (etcdutl snapshot status)", ""),
]
text = f"# bench/snapshot.sh, {trials} trials, {platform.node()}\n" + "\n".join(f"{a:<46} {b:<44} {c}".rstrip() for a, b, c in rows) + "\n"
print(text, end="")
open(out, "w").write(text)
PY
