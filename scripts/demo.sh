#!/usr/bin/env bash
# The main job on one machine: build muster (release), create a 3-host sandbox and bring a real
# etcd cluster up on it with `muster up`, ending with the verification table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product muster 2>&1 | tail -n 1
muster=.build/release/muster
$muster sandbox up
inventory=$($muster sandbox inventory --bootstrap static --out rendered/sandbox-static.yml)
echo "inventory: $inventory"
# Network rule: muster refuses any address whose route is not through the sandbox bridge.
MUSTER_SANDBOX_ONLY=1 $muster up "$inventory" --state rendered/.muster-sandbox-static
echo
echo "cluster is up; stop it with: $muster down $inventory --state rendered/.muster-sandbox-static --wipe-data && $muster sandbox down"
