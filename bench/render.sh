#!/usr/bin/env bash
# `muster render` of a generated 500-cluster, 1,500-member inventory (static, tls: false,
# member.version set) into an empty --out, against the same job in Python with Debian's
# python3-jinja2 (bench/render_jinja2.py), run interleaved TRIALS times each, on the disk and
# on tmpfs. Prints median wall time, median peak RSS (GNU time's %M, the child's own
# getrusage), CPU time (user + system) and the ratios of each.
#   bench/render.sh [TRIALS] [MUSTER_BINARY]   (default 9 trials, .build/release/muster)
# Also called by bench/bench.sh, which reads its last line (`render-result ...`, the disk's).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-9}
muster=${2:-$PWD/.build/release/muster}
root=$PWD
[ -x "$muster" ] || { echo "no muster binary at $muster (build it: . scripts/release-flags.sh; swift build \"\${release_flags[@]}\")" >&2; exit 2; }
/usr/bin/python3 -c 'import jinja2, yaml' 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-jinja2 python3-yaml >/dev/null
work=$(mktemp -d /tmp/muster-render-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$work/render500.yml" <<'PY'
import sys
lines = ["member: { version: 3.4.23 }", "hosts:"]
for i in range(1500):
    lines.append(f"  h{i}: {{ address: 10.{i // 250}.{i % 250}.1 }}")
lines.append("clusters:")
for c in range(500):
    lines += [f"  c{c}:", f"    members: [h{3*c}, h{3*c+1}, h{3*c+2}]", "    tls: false", "    bootstrap: static"]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY

# Each trial renders into a directory of its own that no earlier trial used, on the disk
# (/tmp, this VM's ext4) and on tmpfs (/dev/shm): the tree is 9,000 directories and 4,500
# files, whose creation in ext4 is kernel time both renderers pay alike; tmpfs shows the
# renderers themselves. Trees are removed only after the last trial, so no trial allocates
# inodes among ones a previous trial just freed (ext4's `recently_deleted` scan).
places=("disk:$work" "tmpfs:$(mktemp -d /dev/shm/muster-render-bench.XXXXXX)")
trap 'rm -rf "$work" "${places[1]#tmpfs:}"' EXIT
for place in "${places[@]}"; do
    name=${place%%:*} base=${place#*:}
    : > "$work/$name.muster.times"
    : > "$work/$name.jinja2.times"
    for t in $(seq 1 "$trials"); do
        /usr/bin/time -f "%e %M %U %S" -a -o "$work/$name.muster.times" \
            "$muster" render "$work/render500.yml" --out "$base/muster-$t" --state "$base/state-$t" --templates "$root/templates" >/dev/null
        [ "$(find "$base/muster-$t" -name conf.yml | wc -l)" -eq 1500 ] || { echo "muster rendered $(find "$base/muster-$t" -name conf.yml | wc -l) conf.yml, not 1500" >&2; exit 1; }
        /usr/bin/time -f "%e %M %U %S" -a -o "$work/$name.jinja2.times" \
            /usr/bin/python3 "$root/bench/render_jinja2.py" "$work/render500.yml" "$base/jinja2-$t" >/dev/null
        [ "$(find "$base/jinja2-$t" -type f | wc -l)" -eq 4500 ] || { echo "Jinja2 rendered $(find "$base/jinja2-$t" -type f | wc -l) files, not 4500" >&2; exit 1; }
    done
done

# The labels name the filesystems the trials really ran on (the disk run is meant for ext4).
disk_fs=$(df --output=fstype "$work" | tail -n 1 | tr -d ' ')
tmpfs_fs=$(df --output=fstype "${places[1]#tmpfs:}" | tail -n 1 | tr -d ' ')
/usr/bin/python3 - "$work" "$trials" "$disk_fs" "$tmpfs_fs" <<'PY'
import statistics as st, sys
work, trials, disk_fs, tmpfs_fs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def read(path): return [tuple(map(float, line.split())) for line in open(path) if line.strip()]
print(f"render 500 clusters (1500 members) into an empty --out, {trials} interleaved trials, median (min-max):")
results = {}
for place, label in (("disk", f"disk, /tmp on {disk_fs}"), ("tmpfs", f"tmpfs, /dev/shm on {tmpfs_fs}")):
    muster, jinja2 = read(f"{work}/{place}.muster.times"), read(f"{work}/{place}.jinja2.times")
    ms, mk, mc = st.median(r[0] for r in muster), st.median(r[1] for r in muster), st.median(r[2] + r[3] for r in muster)
    js, jk, jc = st.median(r[0] for r in jinja2), st.median(r[1] for r in jinja2), st.median(r[2] + r[3] for r in jinja2)
    # GNU time prints 0.00 below 10 ms; a ratio needs a floor there.
    ratio = st.median(j[0] / max(m[0], 0.01) for j, m in zip(jinja2, muster))
    cpu_ratio = st.median((j[2] + j[3]) / max(m[2] + m[3], 0.01) for j, m in zip(jinja2, muster))
    print(f"  {label}:")
    print(f"    muster render      {ms:5.2f} s ({min(r[0] for r in muster):.2f}-{max(r[0] for r in muster):.2f})  CPU {mc:4.2f} s  {mk / 1024:5.1f} MiB peak")
    print(f"    Python + Jinja2    {js:5.2f} s ({min(r[0] for r in jinja2):.2f}-{max(r[0] for r in jinja2):.2f})  CPU {jc:4.2f} s  {jk / 1024:5.1f} MiB peak")
    print(f"    Jinja2 / muster    {ratio:5.2f} x wall, {cpu_ratio:4.2f} x CPU (medians of per-trial ratios; target >= 2)")
    results[place] = (ms, mk, js, jk, ratio)
ms, mk, js, jk, ratio = results["disk"]
print(f"render-result {ms:.3f} {mk:.0f} {js:.3f} {jk:.0f} {ratio:.2f}")
PY
