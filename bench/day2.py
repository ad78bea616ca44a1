#!/usr/bin/env python3
"""Helpers for bench/day2.sh; talks only to the addresses it is given (checked by day2.sh).
  day2.py write ACKS STOPFILE MAXSECONDS ADDR...   writer: one key every few ms, round-robin,
                                                   one line "ACKTIME INDEX" per acknowledged put
  day2.py gap ACKS T0 T1                            longest gap between acks around [T0, T1]
  day2.py check ACKS ADDR...                        every acked key reads back (exit 1 if not)
  day2.py leader ADDR...                            the address of the current leader
  day2.py load MIB ADDR CACERT CERT KEY             put MIB MiB of random data over TLS
"""
import base64, http.client, json, os, ssl, sys, time

PREFIX = "bench/w/"
PORT = 2379


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def post(conn, path, body):
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def write(acks, stopfile, max_seconds, addrs):
    conns = {}
    deadline = time.time() + float(max_seconds)
    i = n = 0
    with open(acks, "w", buffering=1) as out:
        while time.time() < deadline and not os.path.exists(stopfile):
            a = addrs[n % len(addrs)]
            n += 1
            try:
                c = conns.get(a) or http.client.HTTPConnection(a, PORT, timeout=1)
                conns[a] = c
                key = f"{PREFIX}{i:08d}"
                status, data = post(c, "/v3/kv/put", {"key": b64(key), "value": b64(str(i))})
                if status == 200 and b'"header"' in data:
                    out.write(f"{time.time():.6f} {i}\n")
                    i += 1
            except (OSError, http.client.HTTPException):
                c = conns.pop(a, None)
                if c:
                    c.close()
            time.sleep(0.002)


def gap(acks, t0, t1):
    t0, t1 = float(t0), float(t1)
    ts = [float(l.split()[0]) for l in open(acks) if l.strip()]
    before = [t for t in ts if t < t0]
    after = [t for t in ts if t > t1]
    window = ([before[-1]] if before else [t0]) + [t for t in ts if t0 <= t <= t1] + ([after[0]] if after else [t1])
    print(f"{max(b - a for a, b in zip(window, window[1:])):.3f}")


def check(acks, addrs):
    want = [int(l.split()[1]) for l in open(acks) if l.strip()]
    got = {}
    for a in addrs:
        try:
            c = http.client.HTTPConnection(a, PORT, timeout=10)
            status, data = post(c, "/v3/kv/range", {"key": b64(PREFIX), "range_end": b64(PREFIX[:-1] + "0")})
            if status != 200:
                continue
            for kv in json.loads(data).get("kvs", []):
                got[base64.b64decode(kv["key"]).decode()] = base64.b64decode(kv.get("value", "")).decode()
            break
        except (OSError, http.client.HTTPException):
            continue
    else:
        print("check: no member answered the range", file=sys.stderr)
        sys.exit(1)
    missing = [i for i in want if got.get(f"{PREFIX}{i:08d}") != str(i)]
    print(f"{len(want)} acked, {len(missing)} missing")
    if missing or not want:
        print(f"check failed: missing {missing[:10]}", file=sys.stderr)
        sys.exit(1)


def leader(addrs):
    for _ in range(100):
        for a in addrs:
            try:
                c = http.client.HTTPConnection(a, PORT, timeout=1)
                status, data = post(c, "/v3/maintenance/status", {})
                s = json.loads(data)
                if status == 200 and s.get("leader") and s["leader"] == s["header"]["member_id"]:
                    print(a)
                    return
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                pass
        time.sleep(0.1)
    sys.exit("no leader found")


def load(mib, addr, cacert, cert, key):
    ctx = ssl.create_default_context(cafile=cacert)
    ctx.load_cert_chain(cert, key)
    c = http.client.HTTPSConnection(addr, PORT, timeout=30, context=ctx)
    for i in range(int(mib)):
        status, data = post(c, "/v3/kv/put", {"key": b64(f"bench/blob/{i:04d}"), "value": b64(os.urandom(1 << 20))})
        if status != 200:
            sys.exit(f"load: put {i} answered {status}: {data[:200]!r}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(args[0], args[1], args[2], args[3:])
    elif cmd == "gap":
        gap(*args)
    elif cmd == "check":
        check(args[0], args[1:])
    elif cmd == "leader":
        leader(args)
    elif cmd == "load":
        load(*args)
    else:
        sys.exit(__doc__)
