#!/bin/sh
# Runs the MusterSandbox tests (as root) and checks that they left no sandbox behind:
# no muster-* network namespace, no mstr-* link and no test state dir that was not there before.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "sandbox-selftest: needs root" >&2; exit 2; }
before_ns=$(ip netns list | awk '{print $1}' | grep '^muster' | sort || true)
before_links=$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^mstr' | sort || true)
swift test --scratch-path "${SCRATCH:-.build-sandbox}" --filter MusterSandboxTests
after_ns=$(ip netns list | awk '{print $1}' | grep '^muster' | sort || true)
after_links=$(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^mstr' | sort || true)
status=0
if [ "$before_ns" != "$after_ns" ]; then echo "sandbox-selftest: namespaces left: $after_ns" >&2; status=1; fi
if [ "$before_links" != "$after_links" ]; then echo "sandbox-selftest: links left: $after_links" >&2; status=1; fi
for dir in /var/lib/muster/sandbox-tests /var/lib/muster/sandbox-lifecycle-*; do
  if [ -e "$dir" ]; then echo "sandbox-selftest: state left: $dir" >&2; status=1; fi
done
[ "$status" = 0 ] && echo "sandbox-selftest: ok, nothing left behind"
exit "$status"
