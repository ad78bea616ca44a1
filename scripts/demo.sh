#!/usr/bin/env bash
# The main job on one machine: build muster, create a 3-host sandbox and bring a real etcd
# cluster up on it with `muster up`, ending with the verification table.
#
# A debug build: it brings a cluster up as fast as a release one here (the run waits on SSH, the
# hosts and etcd's election), costs a fraction of the release build's time (which only the
# benchmark needs), and is the very build the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
scripts/setup.sh
. scripts/debug-flags.sh
swift build --product muster "${debug_flags[@]}" 2>&1 | tail -n 1
muster=.build/debug/muster
$muster sandbox up
inventory=$($muster sandbox inventory --bootstrap static --out rendered/sandbox-static.yml)
echo "inventory: $inventory"
# Network rule: muster refuses any address whose route is not through the sandbox bridge.
MUSTER_SANDBOX_ONLY=1 $muster up "$inventory" --state rendered/.muster-sandbox-static
echo
echo "cluster is up, with TLS; etcdctl gets its endpoints and muster's client certificate from:"
echo "  eval \"\$($muster env $inventory --state rendered/.muster-sandbox-static)\" && etcdctl endpoint health"
echo "stop it with: $muster down $inventory --state rendered/.muster-sandbox-static --wipe-data && $muster sandbox down"
