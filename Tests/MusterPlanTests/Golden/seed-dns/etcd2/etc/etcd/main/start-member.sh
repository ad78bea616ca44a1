#!/bin/sh
# Starts etcd member etcd2 of cluster main on a host without systemd.
# Rendered by muster from templates/start-member.sh.mustache.
set -eu
pidfile=/run/etcd/main.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "already running: pid $(cat "$pidfile")"
    exit 0
fi
mkdir -p /run/etcd /var/log/etcd
# setsid gives etcd a session of its own, so it outlives the SSH channel that started it;
# as a background job it is no group leader, so setsid execs in place and $! is etcd's pid.
# The braces keep the redirections on etcd alone.
{ setsid setpriv --reuid=etcd --regid=etcd --init-groups /opt/muster/bin/etcd-3.4.23 --config-file=/etc/etcd/main/conf.yml </dev/null >>/var/log/etcd/main.log 2>&1 & } 
echo $! >"$pidfile"
echo "started: pid $(cat "$pidfile")"
