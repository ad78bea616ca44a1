#!/usr/bin/python3
"""The same job as `muster render` of a static, tls: false inventory, in Python with Debian's
python3-jinja2 and python3-yaml (libyaml's C loader, as muster uses libyaml): parse the
inventory, render conf.yml, the systemd unit and the start script of every member from the
three templates translated to Jinja2 (values YAML-quoted in conf.yml and shell-quoted in the
script, as muster's content types do), parse each conf.yml back, and write the files.

    render_jinja2.py INVENTORY OUT_DIR
"""
import os
import re
import shlex
import sys

import jinja2
import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONF = """\
# etcd member {{ name|y }} of cluster {{ cluster|y }}, rendered by muster from templates/conf.yml.mustache.
# Start: etcd --config-file={{ config_path|y }}
name: {{ name|y }}
data-dir: {{ data_dir|y }}
listen-peer-urls: {{ listen_peer_urls|y }}
listen-client-urls: {{ listen_client_urls|y }}
initial-advertise-peer-urls: {{ advertise_peer_urls|y }}
advertise-client-urls: {{ advertise_client_urls|y }}
{% if initial_cluster %}initial-cluster: {{ initial_cluster|y }}
{% endif %}{% if initial_cluster_token %}initial-cluster-token: {{ initial_cluster_token|y }}
{% endif %}initial-cluster-state: {{ initial_cluster_state|y }}
# With --config-file etcd 3.4 leaves its JSON gateway off, so every /v3/* answers 404 (etcd issue 12093).
enable-grpc-gateway: true
"""

UNIT = """\
# etcd member {{ name }} of cluster {{ cluster }}, rendered by muster from templates/etcd.service.mustache.
[Unit]
Description=etcd member {{ name }} of cluster {{ cluster }} (muster)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
User={{ run_as }}
ExecStart={{ binary_path }} --config-file={{ config_path }}
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
# What a packaged etcd unit has: no privilege gain, /usr and /etc read-only, homes hidden; etcd
# writes only its data dir (under /var, which stays writable).
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes

[Install]
WantedBy=multi-user.target
"""

START = """\
#!/bin/sh
# Starts etcd member {{ name|sh }} of cluster {{ cluster|sh }} on a host without systemd.
# Rendered by muster from templates/start-member.sh.mustache.
set -eu
pidfile={{ pidfile|sh }}
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "already running: pid $(cat "$pidfile")"
    exit 0
fi
mkdir -p {{ run_dir|sh }} {{ log_dir|sh }}
# setsid gives etcd a session of its own, so it outlives the SSH channel that started it;
# as a background job it is no group leader, so setsid execs in place and $! is etcd's pid.
# The braces keep the redirections on etcd alone.
{ setsid {{ launcher }}{{ binary_path|sh }} --config-file={{ config_path|sh }} </dev/null >>{{ log_file|sh }} 2>&1 & } 
echo $! >"$pidfile"
echo "started: pid $(cat "$pidfile")"
"""

SPECIAL = re.compile(r"^(?:[-?:,\[\]{}#&*!|>'\"%@`]|$)|: | #|[\s]$|^\s")
TYPED = re.compile(r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N"
                   r"|[-+]?[0-9_]+|0x[0-9a-fA-F_]+|0o[0-7_]+|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
                   r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$")


def yaml_scalar(value):
    """Plain when a YAML 1.1 reader reads it back as the same string, single-quoted otherwise."""
    text = str(value)
    if SPECIAL.search(text) or TYPED.match(text):
        return "'" + text.replace("'", "''") + "'"
    return text


def main():
    inventory_path, out = sys.argv[1], sys.argv[2]
    with open(inventory_path) as handle:
        inventory = yaml.load(handle, Loader=Loader)
    environment = jinja2.Environment(keep_trailing_newline=True, autoescape=False)
    environment.filters["y"] = yaml_scalar
    environment.filters["sh"] = shlex.quote
    conf, unit, start = (environment.from_string(t) for t in (CONF, UNIT, START))
    hosts = inventory["hosts"]
    version = inventory["member"]["version"]
    made = set()

    def write(host, path, text, mode):
        full = f"{out}/{host}{path}"
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        temporary = full + ".tmp"
        with open(temporary, "w") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.rename(temporary, full)

    files = 0
    for cluster_name, cluster in inventory["clusters"].items():
        client_port, peer_port = cluster.get("client_port", 2379), cluster.get("peer_port", 2380)
        members = cluster["members"]
        peers = {m: f"http://{hosts[m]['address']}:{peer_port}" for m in members}
        initial_cluster = ",".join(f"{m}={peers[m]}" for m in members)
        for member in members:
            address = hosts[member]["address"]
            config_dir = f"/etc/etcd/{cluster_name}"
            context = {
                "name": member, "cluster": cluster_name, "config_path": f"{config_dir}/conf.yml",
                "data_dir": f"/var/lib/etcd/{cluster_name}",
                "listen_peer_urls": f"http://{address}:{peer_port}",
                "listen_client_urls": f"http://{address}:{client_port},http://127.0.0.1:{client_port}",
                "advertise_peer_urls": peers[member], "advertise_client_urls": f"http://{address}:{client_port}",
                "initial_cluster": initial_cluster, "initial_cluster_token": cluster.get("token", cluster_name),
                "initial_cluster_state": "new", "binary_path": f"/opt/muster/bin/etcd-{version}", "run_as": "etcd",
                "pidfile": f"/run/etcd/{cluster_name}.pid", "run_dir": "/run/etcd", "log_dir": "/var/log/etcd",
                "log_file": f"/var/log/etcd/{cluster_name}.log",
                "launcher": "setpriv --reuid=etcd --regid=etcd --init-groups ",
            }
            text = conf.render(context)
            parsed = yaml.load(text, Loader=Loader)
            if parsed.get("name") != member:
                sys.exit(f"rendered conf.yml of {member} does not hold its name")
            write(member, f"{config_dir}/conf.yml", text, 0o644)
            write(member, f"/etc/systemd/system/etcd-{cluster_name}.service", unit.render(context), 0o644)
            write(member, f"{config_dir}/start-member.sh", start.render(context), 0o755)
            files += 3
    print(f"wrote {files} files under {out}")


if __name__ == "__main__":
    main()
