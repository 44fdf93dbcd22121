#!/usr/bin/env bash
# Exercise the cluster started by scripts/start-cluster.sh (HTTP 9092-9094):
# produce through every node, kill -9 the leader, show the new leader, check
# that nothing acknowledged is missing, restart the node and check that it
# caught up. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import json, os, signal, subprocess, sys, time, urllib.request, urllib.error

PORTS = {1: 9092, 2: 9093, 3: 9094}
TOPIC = "test-cluster-%d" % int(time.time())

def call(port, method, path, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except OSError:
        return 0, None

def fail(msg):
    print("FAIL:", msg); sys.exit(1)

def leader(ports):
    for p in ports:
        st, body = call(p, "GET", "/cluster/leader", timeout=2)
        if st == 200:
            return body["node_id"]
    return None

acked = {}
def produce(port, value, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        st, body = call(port, "POST", "/topics/%s/messages" % TOPIC, {"key": value, "value": value})
        if st == 201:
            acked[value] = (body["partition"], body["offset"]); return True
        time.sleep(0.1)
    return False

call(9092, "POST", "/topics", {"name": TOPIC, "partitions": 3})
for i in range(30):
    node = 1 + i % 3
    if not produce(PORTS[node], "v%d" % i):
        fail("produce through node %d was not acknowledged" % node)
print("produced 30 messages through all three nodes")

old = leader(PORTS.values())
if old is None: fail("no leader")
pid = int(open("run/node%d.pid" % old).read())
print("killing leader node %d (pid %d)" % (old, pid))
t0 = time.time()
os.kill(pid, signal.SIGKILL)
others = [p for n, p in PORTS.items() if n != old]
new = None
while time.time() - t0 < 10 and (new is None or new == old):
    new = leader(others); time.sleep(0.05)
if new is None or new == old: fail("no new leader within 10 s")
print("new leader: node %d after %.2f s" % (new, time.time() - t0))
for i in range(30, 45):
    if not produce(others[i % 2], "v%d" % i):
        fail("write after failover not acknowledged")
print("first write acknowledged %.2f s after the kill; 15 more acknowledged" % (time.time() - t0))

def contents(port):
    out = {}
    for p in range(3):
        st, body = call(port, "GET", "/topics/%s/partitions/%d/messages?offset=0&limit=10000" % (TOPIC, p))
        if st != 200: return None
        for m in body["messages"]:
            out[(p, m["offset"])] = m["value"]
    return out

def has_all(port):
    c = contents(port)
    return c is not None and all(c.get(pos) == v for v, pos in acked.items())

for port in others:
    # A follower applies a commit on the leader's next heartbeat: poll.
    end = time.time() + 5
    while not has_all(port):
        if time.time() > end: fail("acknowledged messages missing on :%d" % port)
        time.sleep(0.1)
print("all %d acknowledged messages present on the surviving nodes" % len(acked))

print("restarting node %d" % old)
subprocess.run(["scripts/start-cluster.sh"], check=True, stdout=subprocess.DEVNULL)
end = time.time() + 20
while time.time() < end:
    if contents(PORTS[old]) == contents(others[0]): break
    time.sleep(0.2)
else:
    fail("restarted node %d did not catch up" % old)
print("node %d caught up: identical contents on all three nodes" % old)
print("OK")
PY
