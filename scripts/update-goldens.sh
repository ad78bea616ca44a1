#!/usr/bin/env bash
# Rewrites the golden files after a deliberate change: the rendered trees of the seed inventories,
# `muster import ansible` of every Ansible inventory in Tests/MusterCLITests/Golden/import
# and every command's --help. Review the diff before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
. scripts/debug-flags.sh
swift build --build-tests "${debug_flags[@]}" 2>&1 | grep -E "error|Build complete" | tail -n 3
MUSTER_UPDATE_GOLDEN=1 swift test --skip-build --filter 'GoldenRenderTests|HelpGoldenTests|RenderOutputTests|ImportGoldenTests' 2>&1 | tail -n 1
git status --short Tests/MusterPlanTests/Golden Tests/MusterCLITests/Golden
