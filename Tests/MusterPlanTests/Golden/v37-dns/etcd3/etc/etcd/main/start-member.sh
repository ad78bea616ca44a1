#!/bin/sh
# Starts etcd member etcd3 of cluster main on a host without systemd.
# Rendered by muster from templates/start-member.sh.mustache.
set -eu
pidfile=/run/etcd/main.pid
# Only an etcd muster installed counts as running: a pidfile naming another process is stale.
if [ -s "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null &&
    case "$(readlink "/proc/$pid/exe")" in /opt/muster/bin/etcd-*) true;; *) false;; esac; then
    echo "already running: pid $pid"
    exit 0
fi
mkdir -p /run/etcd
# setsid gives etcd a session of its own, so it outlives the SSH channel that started it;
# as a background job it is no group leader, so setsid execs in place and $! is etcd's pid.
# The log is opened by the etcd user's shell, never by root: the log directory is the etcd
# user's, and a link it put there must not make root append to a file of root's.
{ setsid setpriv --reuid=etcd --regid=etcd --init-groups /bin/sh -c 'exec "$0" --config-file="$1" >>"$2" 2>&1' /opt/muster/bin/etcd-3.7.1 /etc/etcd/main/conf.yml /var/log/etcd/main/main.log </dev/null & } 
echo $! >"$pidfile"
echo "started: pid $(cat "$pidfile")"
