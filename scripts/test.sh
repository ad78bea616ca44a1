#!/usr/bin/env bash
# Sets up and runs every test: units, golden renders, and integration tests against real sshd,
# etcd and dnsmasq on sandbox hosts. Builds once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
scripts/setup.sh
. scripts/debug-flags.sh
swift build --build-tests "${debug_flags[@]}" 2>&1 | grep -E "error|warning: unre|Compiling muster|Build complete" | tail -n 20
set +e
# One test at a time: many suites block on real processes (sshd, etcd, ssh), and Swift's
# cooperative pool has one thread per core (2 here): run together, they starve each other's
# async I/O into timeouts.
swift test --skip-build --no-parallel > .build/test-output.log 2>&1
status=$?
set -e
grep -vE "^(◇|↳ )|Test case passing|started\.$" .build/test-output.log || true
# Leave nothing running: the test sandboxes remove themselves at exit; make sure.
for dir in /var/lib/muster/sandbox-tests /var/lib/muster/sandbox-deploy-tests; do
    [ -f "$dir/state.json" ] && .build/debug/muster sandbox down --state-dir "$dir" >/dev/null 2>&1 || true
done
exit "$status"
