#!/usr/bin/env bash
# Installs muster like a tool: scripts/install.sh [--prefix DIR] [--binary PATH]
#   PREFIX/bin/muster, PREFIX/share/muster/templates, shell completions (bash, zsh, fish) and a
#   man page, all from the binary itself. Without --binary it builds release first.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
binary=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (use --prefix DIR, --binary PATH)" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    export PATH=/opt/swift/usr/bin:$PATH
    . scripts/release-flags.sh
    swift build "${release_flags[@]}" 2>&1 | grep -E "error|Compiling muster|Build complete" | tail -n 5
    binary=.build/release/muster
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 2; }

install -d "$prefix/bin" "$prefix/share/muster/templates" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d" "$prefix/share/man/man1"
# Stripped: a static release binary is 124 MB with its debug info, 71 MB without.
install -s -m 0755 "$binary" "$prefix/bin/muster"
install -m 0644 templates/*.mustache "$prefix/share/muster/templates/"
muster=$prefix/bin/muster
"$muster" --generate-completion-script bash > "$prefix/share/bash-completion/completions/muster"
"$muster" --generate-completion-script zsh > "$prefix/share/zsh/site-functions/_muster"
"$muster" --generate-completion-script fish > "$prefix/share/fish/vendor_completions.d/muster.fish"

# The man page: each command's --help, as roff sections.
man=$prefix/share/man/man1/muster.1
{
    version=$("$muster" --version | head -n 1)
    printf '.TH MUSTER 1 "" "%s" "User Commands"\n' "$version"
    printf '.SH NAME\nmuster \\- bring etcd clusters up on hosts over SSH, render their configs, verify them\n'
    # Every command the binary has, from argument-parser's own description of its tree.
    mapfile -t commands < <("$muster" --experimental-dump-help | python3 -c '
import json, sys
def walk(command, path):
    yield path
    for sub in command.get("subcommands", []):
        if sub["commandName"] != "help":
            yield from walk(sub, (path + " " + sub["commandName"]).strip())
print("\n".join(walk(json.load(sys.stdin)["command"], "")))')
    for command in "${commands[@]}"; do
        # shellcheck disable=SC2086
        help=$("$muster" $command --help 2>/dev/null) || continue
        printf '.SH %s\n.nf\n' "$(echo "MUSTER${command:+ $command}" | tr '[:lower:]' '[:upper:]')"
        printf '%s\n' "$help" | sed -e 's/\\/\\\\/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"
        printf '.fi\n'
    done
    printf '.SH FILES\n.nf\n%s/share/muster/templates   the templates muster renders\n.fi\n' "$prefix"
} > "$man"
echo "installed $muster ($("$muster" --version | head -n 1)), templates, completions and $man"
