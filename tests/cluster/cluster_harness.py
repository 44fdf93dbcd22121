"""Cluster harness: runs N real broker processes as one Raft cluster on
loopback, each with its own free HTTP and Raft ports and its own temp
directory (data_dir, cluster.data_dir, log, config), and talks HTTP/JSON
to them.

It builds on tests/e2e/harness.py (one broker process): a ClusterNode is a
harness.Broker whose config holds the cluster section, so every helper of
Broker (request, produce, fetch_all, log, stop with exit status 0, kill9,
sanitizer checks, atexit cleanup) works on a node.

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cluster_harness as ch

    class T(ch.ClusterTestCase):
        def test_x(self):
            c = self.new_cluster(3)
            leader = c.leader()
            st, h, body = c.node(2).request("GET", "/cluster/status")

Node ids are 1-based: node i is initial_members[i-1]. Nodes added later
(Cluster.add_node) get the same initial_members and an id past them, so
they do not bootstrap and join through POST /cluster/members.

Timing: cluster.rtt_ms 50 with the default election_rtt 10 gives an
election timeout of 500 ms (raft_set_election_timeout(rtt_ms *
election_rtt)), heartbeat 50 ms.

Processes are always killed and temp dirs removed (tearDown, tearDownClass
and atexit), SIGSTOPped nodes are continued first. When a test fails, the
tail of every node's log is printed and the full logs are copied to
$CLUSTER_LOG_DIR (default <tmp>/broker-cluster-logs/<test id>).
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import harness  # noqa: E402
from harness import BrokerError, deep_merge, tail  # noqa: E402,F401

BROKER_BIN = harness.BROKER_BIN
STOP_TIMEOUT = 15.0
START_TIMEOUT = 15.0
POLL = 0.05

# Faster elections for tests: election timeout 50 ms * 10 = 500 ms.
FAST_CLUSTER = {
    "cluster": {"rtt_ms": 50, "election_rtt": 10, "heartbeat_rtt": 1},
}

# Errors that mean "the node did not answer (in time)".
NET_ERRORS = (OSError, http.client.HTTPException)

_used_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A free loopback port not handed out before in this process."""
    with _ports_lock:
        for _ in range(100):
            p = harness.free_port("127.0.0.1")
            if p not in _used_ports:
                _used_ports.add(p)
                return p
    raise RuntimeError("no free port")


def poll(pred, timeout, interval=POLL):
    """Poll `pred` until it returns something truthy; return that, or None
    after `timeout` s. Network errors inside `pred` count as falsy."""
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except NET_ERRORS + (ValueError, KeyError, TypeError):
            v = None
        if v:
            return v
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


class ClusterTimeout(AssertionError):
    pass


BIND_MARKERS = ("cannot listen", "address already in use", "EADDRINUSE",
                "address in use")


class ClusterNode(harness.Broker):
    """One cluster member process (see harness.Broker for the helpers)."""

    def __init__(self, cluster, node_id, overrides=None):
        self.cluster = cluster
        self.node_id = node_id
        self.paused = False
        super().__init__(overrides, start=False,
                         name="%s-node%d" % (cluster.name, node_id))
        self.raft_dir = os.path.join(self.tmp, "raft")
        self.port = free_port()
        self.raft_port = free_port()

    # ---- addresses and configuration ----

    @property
    def http_address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def raft_address(self):
        return "%s:%d" % (self.host, self.raft_port)

    def config(self):
        base = {
            "data_dir": self.data_dir,
            "server": {
                "host": self.host,
                "port": self.port,
                "advertise": self.http_address,
                "log_file": self.log_path,
                "log_level": "info",
            },
            "cluster": {
                "enabled": True,
                "node_id": self.node_id,
                "raft_address": self.raft_address,
                "initial_members": list(self.cluster.initial_members),
                "data_dir": self.raft_dir,
            },
        }
        return deep_merge(base, self.overrides)

    def __repr__(self):
        return "<node %d http %s raft %s %s>" % (
            self.node_id, self.http_address, self.raft_address,
            "paused" if self.paused else
            "running" if self.running() else "down")

    # ---- process ----

    def spawn(self):
        """Write the config and start the process (no wait)."""
        assert not self.running(), "node %d already running" % self.node_id
        self.paused = False
        self.write_config()
        self._spawn()

    def wait_healthy(self, timeout=START_TIMEOUT):
        """True once /healthz answers 200; False if the process exited or
        did not answer within `timeout`."""
        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                st, _, _ = self.request("GET", "/healthz", timeout=1,
                                        check_header=False)
                return "ok" if st == 200 else None
            except NET_ERRORS:
                return None
        return harness.wait_until(ready, timeout) == "ok"

    def bind_failed(self):
        text = (self.stderr() + self.log()).lower()
        return any(m.lower() in text for m in BIND_MARKERS)

    def start(self, keep_port=True):
        """Start again with the same ports and directories; wait healthy."""
        self.spawn()
        if not self.wait_healthy():
            rc = self.proc.poll()
            self.kill9(check=False)
            self.fail("node %d did not become healthy within %.0f s "
                      "(exit %s)\n--- stderr ---\n%s\n--- log tail ---\n%s"
                      % (self.node_id, START_TIMEOUT, rc, tail(self.stderr()),
                         tail(self.log())))
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (continuing a paused node first); asserts exit status 0."""
        if self.running() and self.paused:
            self.sigcont()
        return super().stop(timeout)

    def kill9(self, check=True):
        """SIGKILL (a crash; works on a paused node too); dirs stay. With
        `check`, a node that had already died on its own is reported."""
        if self.running():
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        elif check and self.proc is not None and \
                self.proc.returncode not in (0, -9) and \
                not self.problem_reported:
            self._collect_stderr()
            self.fail("node %d had already died with %s before kill -9\n%s"
                      % (self.node_id, self.proc.returncode,
                         tail(self.stderr() + self.log())))
        self._collect_stderr()
        self.paused = False

    def sigstop(self):
        assert self.running(), "node %d is not running" % self.node_id
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def sigcont(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def up(self):
        """Running and not paused: expected to answer."""
        return self.running() and not self.paused

    # ---- cluster views ----

    def status(self, timeout=2):
        """GET /cluster/status as a dict, or None if it did not answer."""
        try:
            st, _, data = self.request("GET", "/cluster/status",
                                       timeout=timeout)
        except NET_ERRORS:
            return None
        return data if st == 200 and isinstance(data, dict) else None

    def raft(self, timeout=2):
        st, _, data = self.request("GET", "/cluster/raft", timeout=timeout)
        if st != 200:
            raise AssertionError("GET /cluster/raft on node %d: %d %r"
                                 % (self.node_id, st, data))
        return data

    def members(self, timeout=2):
        st, _, data = self.request("GET", "/cluster/members", timeout=timeout)
        if st != 200:
            raise AssertionError("GET /cluster/members on node %d: %d %r"
                                 % (self.node_id, st, data))
        return data["members"]

    def topic_partitions(self, topic):
        """Number of partitions of `topic` on this node, None if unknown."""
        st, _, data = self.request("GET", "/topics/%s" % self.q(topic))
        if st == 404:
            return None
        if st != 200:
            raise AssertionError("GET topic %s on node %d: %d %r"
                                 % (topic, self.node_id, st, data))
        return len(data["partitions"])

    def contents(self, topic):
        """{partition: [(offset, timestamp, key, value, headers), ...]} of
        every partition of `topic` from its log start, on this node."""
        n = self.topic_partitions(topic)
        if n is None:
            return None
        out = {}
        for p in range(n):
            out[p] = [(m["offset"], m["timestamp"], m.get("key"),
                       m.get("value"), m.get("headers"))
                      for m in self.fetch_all(topic, p)]
        return out

    def high_watermarks(self, topic):
        st, _, data = self.request("GET", "/topics/%s" % self.q(topic))
        if st != 200:
            raise AssertionError("GET topic %s on node %d: %d %r"
                                 % (topic, self.node_id, st, data))
        return {p["partition"]: p["high_watermark"]
                for p in data["partitions"]}


class Cluster:
    """N broker processes forming one Raft cluster."""

    def __init__(self, size=3, overrides=None, name="cluster", start=True):
        self.name = name
        self.overrides = deep_merge(FAST_CLUSTER, overrides)
        self.nodes = {}
        self.initial_members = []
        self.cleaned = False
        self.start_elapsed = None   # spawn of the first node -> leader known
        for i in range(1, size + 1):
            self.nodes[i] = ClusterNode(self, i, self.overrides)
        self.initial_members = [self.nodes[i].raft_address
                                for i in range(1, size + 1)]
        self.size = size
        if start:
            self.start_all()

    # ---- access ----

    def node(self, i):
        return self.nodes[i]

    def all(self):
        return [self.nodes[i] for i in sorted(self.nodes)]

    def up_nodes(self):
        return [n for n in self.all() if n.up()]

    def leader(self, timeout=10, among=None):
        """The node every up node (or every node of `among`) agrees is the
        leader (waits for it)."""
        return self.nodes[self.wait_leader(timeout, among)]

    def followers(self, timeout=10, among=None):
        """The up nodes (or those of `among`) other than the leader."""
        lid = self.wait_leader(timeout, among)
        return [n for n in (among or self.up_nodes()) if n.node_id != lid]

    # ---- lifecycle ----

    def start_all(self, attempts=3):
        """Spawn every node at once, wait until each answers /healthz and a
        leader is known by all. On the very first start a port taken by
        someone else is retried with fresh ports and empty directories."""
        fresh = not any(os.path.exists(n.raft_dir) for n in self.all())
        for attempt in range(attempts):
            t0 = time.monotonic()
            for n in self.all():
                n.spawn()
            bad = [n for n in self.all() if not n.wait_healthy()]
            if not bad:
                self.wait_leader(START_TIMEOUT)
                self.start_elapsed = time.monotonic() - t0
                return self
            bind = any(n.bind_failed() for n in bad)
            for n in self.all():
                n.kill9(check=False)
            if not (fresh and bind and attempt < attempts - 1):
                self.dump_logs("cluster start failed")
                raise BrokerError(
                    "nodes %s did not become healthy\n%s"
                    % ([n.node_id for n in bad],
                       "\n".join("--- node %d ---\n%s\n%s"
                                 % (n.node_id, tail(n.stderr()),
                                    tail(n.log())) for n in bad)))
            # Ports were taken: new ports, wiped dirs, new configuration.
            for n in self.all():
                n._collect_stderr()
                shutil.rmtree(n.raft_dir, ignore_errors=True)
                shutil.rmtree(n.data_dir, ignore_errors=True)
                for path in (n.log_path, n.stderr_path):
                    if os.path.exists(path):
                        os.remove(path)
                n.port = free_port()
                n.raft_port = free_port()
            self.initial_members = [self.nodes[i].raft_address
                                    for i in range(1, self.size + 1)]
        raise BrokerError("cluster could not start")

    def add_node(self, node_id=None, overrides=None, start=True):
        """A node not among initial_members (it does not bootstrap; add it
        with POST /cluster/members)."""
        node_id = node_id or max(self.nodes) + 1
        assert node_id not in self.nodes
        n = ClusterNode(self, node_id, deep_merge(self.overrides, overrides))
        self.nodes[node_id] = n
        if start:
            n.start()
        return n

    def start(self, i):
        """Start node i again, keeping its ports and directories."""
        return self.nodes[i].start()

    def stop(self, i):
        """SIGTERM node i; asserts exit status 0."""
        return self.nodes[i].stop()

    def kill9(self, i):
        self.nodes[i].kill9()

    def sigstop(self, i):
        self.nodes[i].sigstop()

    def sigcont(self, i):
        self.nodes[i].sigcont()

    def stop_all(self, timeout=STOP_TIMEOUT):
        """SIGTERM every running node at once, then assert each exits 0
        within `timeout`. Raises BrokerError listing every problem."""
        errors = []
        running = []
        for n in self.all():
            if n.running():
                if n.paused:
                    n.sigcont()
                n.proc.send_signal(signal.SIGTERM)
                running.append(n)
        end = time.monotonic() + timeout
        for n in self.all():
            try:
                if n in running:
                    try:
                        rc = n.proc.wait(max(0.1, end - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        n.kill9(check=False)
                        n.problem_reported = True
                        errors.append("node %d did not exit within %.0f s of "
                                      "SIGTERM\n%s" % (n.node_id, timeout,
                                                       tail(n.log())))
                        continue
                    n._collect_stderr()
                    if rc != 0:
                        n.problem_reported = True
                        errors.append("node %d exited with %s after SIGTERM\n"
                                      "--- stderr ---\n%s\n--- log ---\n%s"
                                      % (n.node_id, rc, tail(n.stderr()),
                                         tail(n.log())))
                n.check_sanitizers()
            except BrokerError as e:
                errors.append("node %d: %s" % (n.node_id, e))
        if errors:
            raise BrokerError("\n".join(errors))

    def restart_all(self):
        """SIGTERM all (exit 0 asserted), start all, wait for a leader."""
        self.stop_all()
        for n in self.all():
            n.spawn()
        for n in self.all():
            if not n.wait_healthy():
                n.fail("node %d did not come back\n%s"
                       % (n.node_id, tail(n.stderr() + n.log())))
        self.wait_leader(START_TIMEOUT)

    def cleanup(self):
        """Kill whatever still runs, remove every temp dir. Raises
        BrokerError afterwards if a sanitizer reported something."""
        if self.cleaned:
            return
        self.cleaned = True
        errors = []
        for n in self.all():
            try:
                n.cleanup()
            except BrokerError as e:
                errors.append("node %d: %s" % (n.node_id, e))
        if errors:
            raise BrokerError("\n".join(errors))

    # ---- waiting ----

    def wait_until(self, pred, timeout, what="condition"):
        """Poll `pred` (network errors count as falsy) until truthy and
        return its value; raise ClusterTimeout with a status summary of
        every node after `timeout` s."""
        v = poll(pred, timeout)
        if v:
            return v
        raise ClusterTimeout("timed out after %.1f s waiting for %s\n%s"
                             % (timeout, what, self.summary()))

    def agreed_leader(self, among=None):
        """Leader id if every node of `among` (default: the up nodes)
        reports the same leader, that leader is among them and says it is
        leader, and its HTTP address is known everywhere; else None."""
        nodes = among if among is not None else self.up_nodes()
        if not nodes:
            return None
        views = [n.status() for n in nodes]
        if any(v is None or v.get("leader") is None for v in views):
            return None
        ids = {v["leader"]["node_id"] for v in views}
        if len(ids) != 1:
            return None
        lid = ids.pop()
        if lid not in [n.node_id for n in nodes]:
            return None
        if any(not v["leader"].get("http_address") for v in views):
            return None
        for n, v in zip(nodes, views):
            want = "leader" if n.node_id == lid else "follower"
            if v["state"] != want:
                return None
        return lid

    def wait_leader(self, timeout=10, among=None):
        """Wait until all up nodes (or `among`) agree on one leader."""
        return self.wait_until(lambda: self.agreed_leader(among), timeout,
                               "a leader known by all nodes")

    def wait_members_known(self, ids=None, timeout=10):
        """Every up node lists exactly the members `ids` (default: the
        initial ones) as voters with a raft and an HTTP address."""
        ids = sorted(ids or range(1, self.size + 1))

        def ok():
            for n in self.up_nodes():
                ms = n.members()
                if sorted(m["node_id"] for m in ms) != ids:
                    return False
                for m in ms:
                    if m["role"] != "voter" or not m["raft_address"] or \
                            not m["http_address"]:
                        return False
            return True
        return self.wait_until(ok, timeout, "members %s known with "
                               "addresses on every node" % ids)

    def wait_identical(self, topic, timeout=30, nodes=None):
        """Poll until every node (default: up nodes) holds identical
        contents of `topic`; return those contents."""
        nodes = nodes or self.up_nodes()
        last = {}

        def same():
            views = [n.contents(topic) for n in nodes]
            last["views"] = views
            if views[0] is None:
                return None
            return views[0] if all(v == views[0] for v in views) else None
        v = poll(same, timeout, interval=0.2)
        if v:
            return v
        desc = []
        for n, view in zip(nodes, last.get("views") or []):
            if view is None:
                desc.append("node %d: topic missing" % n.node_id)
            else:
                desc.append("node %d: %s" % (n.node_id, {
                    p: len(recs) for p, recs in view.items()}))
        raise ClusterTimeout("contents of %s differ after %.0f s: %s\n%s"
                             % (topic, timeout, "; ".join(desc),
                                self.summary()))

    # ---- diagnostics ----

    def summary(self):
        lines = []
        for n in self.all():
            if not n.running():
                lines.append("node %d: down" % n.node_id)
                continue
            if n.paused:
                lines.append("node %d: paused (SIGSTOP)" % n.node_id)
                continue
            s = n.status(timeout=1)
            if s is None:
                lines.append("node %d: no answer" % n.node_id)
                continue
            lines.append("node %d: %s term %s leader %s commit %s applied %s "
                         "members %s" % (
                             n.node_id, s.get("state"), s.get("term"),
                             (s.get("leader") or {}).get("node_id"),
                             s.get("commit_index"), s.get("applied_index"),
                             [(m["node_id"], m["role"], m["http_address"])
                              for m in s.get("members", [])]))
        return "\n".join(lines)

    def dump_logs(self, reason, test_id=None, lines=60):
        """Print each node's log tail to stderr and copy the full logs to
        $CLUSTER_LOG_DIR/<test id>/ (kept after the temp dirs are gone)."""
        root = os.environ.get("CLUSTER_LOG_DIR") or os.path.join(
            tempfile.gettempdir(), "broker-cluster-logs")
        dest = os.path.join(root, "%s-%s-%d" % (
            test_id or self.name, time.strftime("%Y%m%d-%H%M%S"), os.getpid()))
        try:
            os.makedirs(dest, exist_ok=True)
        except OSError:
            dest = None
        out = ["==== %s: %s ====" % (self.name, reason)]
        for n in self.all():
            out.append("---- node %d (%s) log tail ----" % (n.node_id, n))
            out.append(tail(n.log(), lines))
            err = n.stderr().strip()
            if err:
                out.append("---- node %d stderr ----\n%s"
                           % (n.node_id, tail(err, 20)))
            if dest:
                for src, suffix in ((n.log_path, "log"),
                                    (n.stderr_path, "stderr"),
                                    (n.config_path, "json")):
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(
                            dest, "node%d.%s" % (n.node_id, suffix)))
        if dest:
            out.append("full logs in %s" % dest)
        sys.stderr.write("\n".join(out) + "\n")


# ---- client helpers ----

def produce_path(topic):
    return "/topics/%s/messages" % harness.Broker.q(topic)


def write_with_retry(cluster, topic, value, deadline_s=20, node=None, **rec):
    """Produce one record through `node` (default: any up node, rotating)
    until acknowledged; returns the 201 body or raises AssertionError."""
    deadline = time.monotonic() + deadline_s
    body = dict(rec, value=value)
    i = 0
    last = None
    while time.monotonic() < deadline:
        target = node or cluster.up_nodes()[i % len(cluster.up_nodes())]
        i += 1
        try:
            st, h, data = target.request("POST", produce_path(topic), body,
                                         timeout=10)
            last = (st, data)
            if st == 201:
                return data
            if st != 503:
                raise AssertionError("produce %r to %s via node %d: %d %r"
                                     % (value, topic, target.node_id, st,
                                        data))
        except NET_ERRORS as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("produce %r to %s not acknowledged within %d s: "
                         "last %r\n%s" % (value, topic, deadline_s, last,
                                          cluster.summary()))


# ---- test case base ----

class ClusterTestCase(unittest.TestCase):
    """`self.new_cluster(...)` gives a cluster that is stopped (exit 0
    asserted) and cleaned up after the test; logs are dumped if the test
    failed. A class-wide one: `cls.shared = cls.start_shared_cluster(...)`
    in setUpClass (stopped in tearDownClass)."""

    shared = None

    @classmethod
    def start_shared_cluster(cls, size=3, overrides=None):
        c = Cluster(size, overrides, name=cls.__name__, start=False)
        cls.shared = c
        try:
            c.start_all()
        except BaseException:
            c.cleanup()
            cls.shared = None
            raise
        return c

    @classmethod
    def tearDownClass(cls):
        c, cls.shared = cls.shared, None
        if c is None:
            return
        try:
            c.stop_all()
        except BrokerError:
            c.dump_logs("stop at the end of the class failed", cls.__name__)
            raise
        finally:
            c.cleanup()

    def setUp(self):
        self._clusters = []

    def new_cluster(self, size=3, overrides=None, start=True):
        c = Cluster(size, overrides, name=type(self).__name__, start=False)
        self._clusters.append(c)
        if start:
            c.start_all()
        return c

    def _failed(self):
        """True if the test body failed (called from tearDown)."""
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "errors"):          # Python <= 3.10
            return any(exc for _, exc in outcome.errors)
        result = outcome.result                 # 3.11+: reported at once
        return any(t is self for t, _ in
                   list(getattr(result, "failures", [])) +
                   list(getattr(result, "errors", [])))

    def tearDown(self):
        test_id = self.id().split(".")[-1]
        if self._failed():
            for c in self._clusters + ([self.shared] if self.shared else []):
                c.dump_logs("%s failed" % self.id(), test_id)
        errors = []
        for c in self._clusters:
            try:
                c.stop_all()
            except BrokerError as e:
                errors.append(str(e))
                if not self._failed():
                    c.dump_logs("stop failed", test_id)
            finally:
                try:
                    c.cleanup()
                except BrokerError as e:
                    errors.append(str(e))
        if errors:
            self.fail("\n".join(errors))


def main():
    """unittest.main that exits non-zero on any failure."""
    harness.main()
