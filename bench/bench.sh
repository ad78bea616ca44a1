#!/usr/bin/env bash
# muster benchmarks (not tests): bring-up against two hand-made floors and Ansible, re-runs,
# fan-out (3 to 39 hosts, against a tuned by-hand floor at 3 and 15) and render, all on this
# machine's sandbox, in one run. Every ratio is computed pair by pair from trials run back to back,
# because these machines are noisy.
#   bench/bench.sh [TRIALS]        (default 5; results also go to bench/results-latest.txt;
#   MUSTER_BENCH_SANDBOX=DIR names the sandbox's state dir, MUSTER_BIN=PATH skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-5}
root=$PWD
work=/var/lib/muster/bench
sandbox_dir=${MUSTER_BENCH_SANDBOX:-/var/lib/muster/sandbox-bench}
out=bench/results-latest.txt
export MUSTER_SANDBOX_ONLY=1

scripts/setup.sh
command -v ansible-playbook >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible >/dev/null
if [ -n "${MUSTER_BIN:-}" ]; then
    muster=$MUSTER_BIN
else
    . scripts/release-flags.sh
    swift build "${release_flags[@]}" 2>&1 | tail -n 1
    muster=$root/.build/release/muster
fi
# render of a generated 500-cluster inventory against Python + Jinja2 (bench/render.sh alone
# prints its own table): median time, peak memory and the ratio. First, before the sandbox and
# the bring-ups delete thousands of files on this disk: ext4 then scans its inode tables for
# recently freed inodes at every mkdir, which is the disk's history, not either renderer
# (measured: 0.36 s alone, 0.74 s after the bring-ups, Python 0.82 and 1.24 s).
read -r _ render_s render_kb jinja_s jinja_kb render_ratio < <(bench/render.sh "$trials" "$muster" | grep '^render-result ')
rm -rf "$work" && mkdir -p "$work"
$muster sandbox up --hosts 39 --state-dir "$sandbox_dir" >/dev/null
trap '$muster sandbox down --state-dir "$sandbox_dir" >/dev/null 2>&1 || true' EXIT
state=$sandbox_dir
key=$state/client_ed25519
known=$state/known_hosts
mapfile -t addresses < <(python3 -c 'import json,sys; [print(h["address"]) for h in json.load(open(sys.argv[1]))["hosts"]]' "$state/state.json")
ssh_opts=(-i "$key" -o UserKnownHostsFile="$known" -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR)
for a in "${addresses[@]}"; do
    ip -o route get "$a" | grep -q " dev mstr-br" || { echo "refusing $a: not routed through a sandbox bridge" >&2; exit 1; }
done
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }

# Inventories: 3 hosts static / discovery / dns(3.5); fan-out with 1, 3, 5, 13 clusters of 3 members.
$muster sandbox inventory --plain-http --state-dir "$state" --out "$work/static.yml" >/dev/null
python3 - "$work/static.yml" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
hosts = re.findall(r"  (host\d+): \{ address: ([\d.]+) \}", text)
head = text.split("\nhosts:")[0]
def write(name, clusters, extra_host=lambda h: "", extra_head="", cluster_text=None):
    lines = [head.rstrip("\n"), extra_head.rstrip("\n"), "hosts:"] if extra_head else [head.rstrip("\n"), "hosts:"]
    used = hosts[:3 * clusters]
    lines += [f"  {h}: {{ address: {a}{extra_host(h)} }}" for h, a in used]
    lines.append("clusters:")
    for c in range(clusters):
        members = ", ".join(h for h, _ in used[3 * c:3 * c + 3])
        lines += cluster_text(c, members) if cluster_text else [f"  c{c}:", f"    members: [{members}]", "    tls: false", "    bootstrap: static"]
    open(sys.argv[1].replace("static.yml", name), "w").write("\n".join(lines) + "\n")
write("static3.yml", 1)
write("fan9.yml", 3)
write("fan15.yml", 5)
write("fan39.yml", 13)
write("discovery.yml", 1, cluster_text=lambda c, m: ["  disco:", "    members: [host1]", "    client_port: 3379", "    peer_port: 3380", "    tls: false", "    bootstrap: static", "  c0:", f"    members: [{m}]", "    tls: false", "    bootstrap: { discovery: { cluster: disco, size: 3 } }"])
write("dns.yml", 1, extra_host=lambda h: f", fqdn: {h}.sandbox.muster.test",
      extra_head="dns:\n  server: host3\n  domain: sandbox.muster.test\n  configure_resolvers: true",
      cluster_text=lambda c, m: ["  c0:", f"    members: [{m}]", "    tls: false", "    bootstrap: { dns: {} }"])
PY
sed -i "s#binary: /usr/bin/etcd#binary: /var/cache/muster/etcd-3.5/usr/bin/etcd#" "$work/dns.yml"

# Leaves hosts bare (each host is its own pid namespace, so this sees only that host's
# processes): no member running, no etcd data or config, no muster files (keep_binary=1 keeps
# /opt/muster for the floors, which do not ship the binary).
bare() {
    local keep_binary=${1:-0} pids=()
    for a in "${addresses[@]}"; do
        ssh "${ssh_opts[@]}" "root@$a" "for d in /proc/[0-9]*; do case \"\$(readlink \$d/exe 2>/dev/null)\" in *etcd*|*dnsmasq*) kill -9 \"\${d#/proc/}\" 2>/dev/null;; esac; done; rm -rf /var/lib/etcd /etc/etcd /run/etcd /var/log/etcd /etc/dnsmasq.d/muster-* /tmp/floor; [ $keep_binary = 1 ] || rm -rf /opt/muster; [ -f /etc/resolv.conf.muster-backup ] && cat /etc/resolv.conf.muster-backup > /etc/resolv.conf; true" &
        pids+=($!)
    done
    wait "${pids[@]}"
    rm -rf "$work"/*.state
    sync  # every contender starts with no writeback of the previous run pending (etcd fsyncs its WAL)
}

muster_up() {  # inventory [flags] -> seconds from bare hosts to verified (the JSON document in INVENTORY.json)
    local inv=$1 t0 t1
    t0=$(now)
    $muster up "$inv" --state "$inv.state" --templates "$root/templates" --skip-disk-check --output json "${@:2}" >"$inv.json" 2>"$inv.log" || { tail -n 30 "$inv.log" >&2; exit 1; }
    t1=$(now)
    elapsed "$t0" "$t1"
}

health_all() {  # polls the first ${1:-3} hosts' /health until all answer true (bounded: 30 s)
    local n=${1:-3} deadline=$(( $(date +%s) + 30 ))
    local pending=("${addresses[@]:0:$n}")
    while [ "$(date +%s)" -lt "$deadline" ]; do
        local still=()
        for a in "${pending[@]}"; do
            curl -s -m 1 "http://$a:2379/health" 2>/dev/null | grep -q '"health":"true"' || still+=("$a")
        done
        [ ${#still[@]} = 0 ] && return 0
        pending=("${still[@]}")
        sleep 0.05
    done
    echo "floor: cluster not healthy in 30 s" >&2; return 1
}

# Floors use muster's own rendered conf.yml (data under /tmp/floor) and the binary muster placed.
$muster render "$work/static3.yml" --out "$work/rendered" --state "$work/render.state" --templates "$root/templates" >/dev/null
for h in host1 host2 host3; do
    sed -e 's#^data-dir: .*#data-dir: /tmp/floor/data#' "$work/rendered/$h/etc/etcd/c0/conf.yml" > "$work/floor-$h.yml"
done
# The shipping floor's conf.yml for five clusters, and the binary as muster ships it (zstd -3).
$muster render "$work/fan15.yml" --out "$work/rendered15" --state "$work/render15.state" --templates "$root/templates" >/dev/null
for c in 0 1 2 3 4; do
    for i in 1 2 3; do
        h=host$((3 * c + i))
        sed -e 's#^data-dir: .*#data-dir: /tmp/floor/data#' "$work/rendered15/$h/etc/etcd/c$c/conf.yml" > "$work/floor15-$h.yml"
    done
done
zstd -q -3 -f /usr/bin/etcd -o "$work/etcd.zst"
etcd_bin=/opt/muster/bin/etcd-$(/usr/bin/etcd --version | awk '/etcd Version/ {print $3}')

floor_naive() {
    local t0 t1 pids=() i
    t0=$(now)
    for i in 1 2 3; do ssh "${ssh_opts[@]}" "root@${addresses[$((i-1))]}" "mkdir -p /tmp/floor && cat > /tmp/floor/conf.yml" < "$work/floor-host$i.yml" & pids+=($!); done
    wait "${pids[@]}"; pids=()
    for i in 1 2 3; do ssh "${ssh_opts[@]}" "root@${addresses[$((i-1))]}" "{ setsid $etcd_bin --config-file=/tmp/floor/conf.yml </dev/null >/tmp/floor/log 2>&1 & }; echo \$! > /tmp/floor/pid" & pids+=($!); done
    wait "${pids[@]}"
    health_all
    t1=$(now)
    elapsed "$t0" "$t1"
}

floor_tuned() {
    local t0 t1 i sock=$work/cm-%h
    for i in 1 2 3; do ssh "${ssh_opts[@]}" -o ControlMaster=yes -o ControlPath="$sock" -o ControlPersist=60 -fN "root@${addresses[$((i-1))]}"; done
    t0=$(now)
    for i in 1 2 3; do ssh "${ssh_opts[@]}" -o ControlPath="$sock" "root@${addresses[$((i-1))]}" "mkdir -p /tmp/floor && cat > /tmp/floor/conf.yml" < "$work/floor-host$i.yml" & done
    wait
    for i in 1 2 3; do
        local a=${addresses[$((i-1))]}
        ssh "${ssh_opts[@]}" -o ControlPath="$sock" "root@$a" "{ setsid $etcd_bin --config-file=/tmp/floor/conf.yml </dev/null >/tmp/floor/log 2>&1 & }; echo \$! > /tmp/floor/pid"
        for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/$a/2380") 2>/dev/null && break; sleep 0.01; done
    done
    health_all
    t1=$(now)
    for i in 1 2 3; do ssh "${ssh_opts[@]}" -o ControlPath="$sock" -O exit "root@${addresses[$((i-1))]}" 2>/dev/null || true; done
    elapsed "$t0" "$t1"
}

# The tuned floor that ships what muster ships, for $1 clusters of 3 (hosts 1..3*$1): ControlMaster
# connections opened before the clock starts; per host, side by side, the zstd binary unpacked on
# arrival and conf.yml; each cluster starts as soon as its own three hosts have their files, member
# after member, each once the previous one's peer port answers; then every /health.
floor_shipping() {
    local clusters=$1 n=$(( 3 * $1 )) t0 t1 i c sock=$work/cm-%h
    for a in "${addresses[@]:0:$n}"; do ssh "${ssh_opts[@]}" -o ControlMaster=yes -o ControlPath="$sock" -o ControlPersist=60 -fN "root@$a"; done
    t0=$(now)
    for c in $(seq 0 $((clusters - 1))); do
        (
            pids=()
            for i in 1 2 3; do
                a=${addresses[$((3 * c + i - 1))]}
                ssh "${ssh_opts[@]}" -o ControlPath="$sock" "root@$a" "mkdir -p /tmp/floor && zstd -d -q -o /tmp/floor/etcd && chmod 755 /tmp/floor/etcd" < "$work/etcd.zst" & pids+=($!)
                ssh "${ssh_opts[@]}" -o ControlPath="$sock" "root@$a" "mkdir -p /tmp/floor && cat > /tmp/floor/conf.yml" < "$work/floor15-host$((3 * c + i)).yml" & pids+=($!)
            done
            wait "${pids[@]}"
            for i in 1 2 3; do
                a=${addresses[$((3 * c + i - 1))]}
                ssh "${ssh_opts[@]}" -o ControlPath="$sock" "root@$a" "{ setsid /tmp/floor/etcd --config-file=/tmp/floor/conf.yml </dev/null >/tmp/floor/log 2>&1 & }; echo \$! > /tmp/floor/pid"
                for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/$a/2380") 2>/dev/null && break; sleep 0.01; done
            done
        ) &
    done
    wait
    health_all "$n"
    t1=$(now)
    for a in "${addresses[@]:0:$n}"; do ssh "${ssh_opts[@]}" -o ControlPath="$sock" -O exit "root@$a" 2>/dev/null || true; done
    elapsed "$t0" "$t1"
}

# Ansible: the same job an operator would script (copy binary and conf, start, wait for health).
cat > "$work/ansible-hosts.ini" <<INI
[etcd]
host1 ansible_host=${addresses[0]} conf=$work/floor-host1.yml
host2 ansible_host=${addresses[1]} conf=$work/floor-host2.yml
host3 ansible_host=${addresses[2]} conf=$work/floor-host3.yml
[etcd:vars]
ansible_user=root
ansible_ssh_private_key_file=$key
ansible_ssh_common_args=-o UserKnownHostsFile=$known -o StrictHostKeyChecking=yes
ansible_python_interpreter=/usr/bin/python3
INI
cat > "$work/playbook.yml" <<YML
- hosts: etcd
  gather_facts: false
  tasks:
    - file: { path: /tmp/floor, state: directory }
    - copy: { src: /usr/bin/etcd, dest: /opt/ansible-etcd, mode: "0755" }
    - copy: { src: "{{ conf }}", dest: /tmp/floor/conf.yml }
    - shell: "{ setsid /opt/ansible-etcd --config-file=/tmp/floor/conf.yml </dev/null >/tmp/floor/log 2>&1 & }; echo $! > /tmp/floor/pid"
    - wait_for: { host: "{{ ansible_host }}", port: 2379, timeout: 30 }
      delegate_to: localhost
    - uri: { url: "http://{{ ansible_host }}:2379/health", return_content: true }
      register: health
      until: "'true' in health.content"
      retries: 100
      delay: 0.1
      delegate_to: localhost
YML
ansible_run() {
    local t0 t1
    t0=$(now)
    ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_STDOUT_CALLBACK=null ansible-playbook -i "$work/ansible-hosts.ini" "$work/playbook.yml" >"$work/ansible.log" 2>&1 || { tail -n 20 "$work/ansible.log" >&2; exit 1; }
    t1=$(now)
    ssh "${ssh_opts[@]}" "root@${addresses[0]}" true
    for a in "${addresses[@]:0:3}"; do ssh "${ssh_opts[@]}" "root@$a" "rm -f /opt/ansible-etcd"; done
    elapsed "$t0" "$t1"
}

sshd_counts() {  # host1's sshd log: connections accepted, session channels opened
    local log=$state/hosts/host1/upper/var/log/muster-sshd.log
    echo "$(grep -c 'Accepted publickey' "$log") $(grep -c 'server_input_channel_open: ctype' "$log")"
}

declare -A series
record() { series[$1]="${series[$1]:-} $2"; }

echo "trials: $trials" >&2
for t in $(seq 1 "$trials"); do
    bare 0; v=$(muster_up "$work/static3.yml"); record muster_static "$v"
    # Re-run on the healthy, unchanged cluster: time, bytes and sshd's own counts.
    before=$(sshd_counts)
    t0=$(now); $muster up "$work/static3.yml" --state "$work/static3.yml.state" --templates "$root/templates" --skip-disk-check >/dev/null 2>"$work/rerun.log"; t1=$(now)
    after=$(sshd_counts)
    v=$(elapsed "$t0" "$t1"); record rerun "$v"
    record rerun_connections "$(( ${after% *} - ${before% *} ))"
    record rerun_channels "$(( ${after#* } - ${before#* } ))"
    v=$(grep -o 'moved [0-9]* bytes' "$work/rerun.log" | awk '{print $2}' | tail -n 1); record rerun_bytes "$v"
    bare 1; v=$(floor_naive); record naive "$v"
    bare 1; v=$(floor_tuned); record tuned "$v"
    bare 0; v=$(ansible_run); record ansible "$v"
    bare 0; v=$(muster_up "$work/discovery.yml"); record muster_discovery "$v"
    bare 0; v=$(muster_up "$work/dns.yml"); record muster_dns35 "$v"
    bare 0; record fan3 "${series[muster_static]##* }"
    v=$(muster_up "$work/fan9.yml"); record fan9 "$v"
    bare 0; v=$(muster_up "$work/fan15.yml"); record fan15 "$v"
    bare 0; v=$(floor_shipping 1); record ship3 "$v"
    bare 0; v=$(floor_shipping 5); record ship15 "$v"
    # 39 hosts in one `up`, with the default --parallel (16) and with every host at once.
    bare 0; v=$(muster_up "$work/fan39.yml"); record fan39 "$v"
    record fan39_verified "$(python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print(sum(1 for c in d["clusters"] if c["ok"]))' "$work/fan39.yml.json")"
    bare 0; v=$(muster_up "$work/fan39.yml" --parallel 39); record fan39_all "$v"
    record load "$(cut -d' ' -f1 /proc/loadavg)"
    echo "trial $t done" >&2
done
bare 0

python3 - "$out" "$trials" "$render_s" "$render_kb" "$jinja_s" "$jinja_kb" "$render_ratio" <<PY
import statistics as st, sys, platform, subprocess
out, trials, render_s, render_kb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
jinja_s, jinja_kb, render_ratio = float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
s = {k: [float(x) for x in v.split()] for k, v in {
$(for k in "${!series[@]}"; do echo "    \"$k\": \"${series[$k]}\","; done)
}.items()}
def med(k): return st.median(s[k])
def spread(k): return f"{min(s[k]):.2f}-{max(s[k]):.2f}"
def ratio(a, b): return st.median([x / y for x, y in zip(s[a], s[b])])
rows = [
  ("muster up, static, 3 members, bare hosts -> verified", f"{med('muster_static'):.2f} s", spread('muster_static')),
  ("muster up, etcd discovery (backend + 3 members)", f"{med('muster_discovery'):.2f} s", spread('muster_discovery')),
  ("muster up, DNS SRV (etcd 3.5.16)", f"{med('muster_dns35'):.2f} s", spread('muster_dns35')),
  ("floor naive (plain ssh each, parallel start)", f"{med('naive'):.2f} s", spread('naive')),
  ("floor tuned (ControlMaster, peer-gated start)", f"{med('tuned'):.2f} s", spread('tuned')),
  ("Ansible playbook (copy, start, wait)", f"{med('ansible'):.2f} s", spread('ansible')),
  ("re-run on healthy cluster", f"{med('rerun'):.2f} s", spread('rerun')),
  ("  bytes moved / connections / channels (host1 sshd log)", f"{med('rerun_bytes'):.0f} / {med('rerun_connections'):.0f} / {med('rerun_channels'):.0f}", ""),
  ("fan-out 3 / 9 / 15 hosts", f"{med('fan3'):.2f} / {med('fan9'):.2f} / {med('fan15'):.2f} s", ""),
  ("floor tuned + binary (zstd etcd, conf.yml), 3 hosts", f"{med('ship3'):.2f} s", spread('ship3')),
  ("floor tuned + binary, 15 hosts (five clusters)", f"{med('ship15'):.2f} s", spread('ship15')),
  ("muster up, 39 hosts (13 clusters), --parallel 16 default", f"{med('fan39'):.2f} s", spread('fan39')),
  ("  clusters verified (of 13, every trial)", f"{min(s['fan39_verified']):.0f}", ""),
  ("muster up, 39 hosts, --parallel 39", f"{med('fan39_all'):.2f} s", spread('fan39_all')),
  ("render 500 clusters (1500 members)", f"{render_s:.2f} s, {render_kb/1024:.0f} MiB peak", ""),
  ("  the same in Python + Jinja2 (bench/render_jinja2.py)", f"{jinja_s:.2f} s, {jinja_kb/1024:.0f} MiB peak", ""),
]
ratios = [
  ("muster / naive (target <= 1.0)", ratio('muster_static', 'naive')),
  ("muster / tuned (target <= 2.0)", ratio('muster_static', 'tuned')),
  ("Ansible / muster (target >= 5)", ratio('ansible', 'muster_static')),
  ("fan-out 15 / 3 hosts", ratio('fan15', 'fan3')),
  ("muster / tuned floor + binary, 3 hosts (target <= 1.2)", ratio('fan3', 'ship3')),
  ("muster / tuned floor + binary, 15 hosts (target <= 1.2)", ratio('fan15', 'ship15')),
  ("39 hosts --parallel 16 / --parallel 39", ratio('fan39', 'fan39_all')),
  ("Jinja2 render / muster render (target >= 2)", render_ratio),
]
marginal = (med('fan15') - med('fan3')) / 12
floor_marginal = (med('ship15') - med('ship3')) / 12
marginal39 = (med('fan39') - med('fan15')) / 24
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
lines = [f"muster benchmark, {trials} trials, {platform.node()} ({cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores)", ""]
lines += [f"{a:<58} {b:>28}  {c}" for a, b, c in rows]
lines += ["", "ratios (median of per-trial ratios):"]
lines += [f"{a:<58} {b:>8.2f}" for a, b in ratios]
lines += [f"{'marginal cost per host 3 -> 15, muster (target <= 0.1)':<58} {marginal:>8.2f} s"]
lines += [f"{'marginal cost per host 3 -> 15, tuned floor + binary':<58} {floor_marginal:>8.2f} s"]
lines += [f"{'marginal cost per host 15 -> 39, muster (--parallel 16)':<58} {marginal39:>8.2f} s"]
lines += ["", "load average (1 min) at each trial's end: " + ", ".join(f"{x:.1f}" for x in s['load'])]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
