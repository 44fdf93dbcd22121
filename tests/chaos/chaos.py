#!/usr/bin/env python3
"""Fault injection against a real 3-node cluster (Jepsen-style, stdlib only).

For each nemesis a fresh cluster (tests/cluster/cluster_harness.py) gets a
workload while the nemesis injects faults; then everything is healed and a
checker reads every partition from every member and compares it with what
the clients were told:

- writers (unique values "w<writer>-<seq>", keyed "w<writer>", so one
  writer's values share a partition), single records and batches of 2-5,
  sent to random nodes; 201 = acknowledged at the offsets in the answer,
  4xx = not written, anything else (5xx, timeout, reset) = indeterminate;
- readers fetching random ranges from random nodes (what they saw must be
  what the partition holds in the end);
- claimers (POST /groups/g/topics/t/claim): no message handed out twice,
  and each claimed message is what the partition holds at that offset.

The checker counts, per nemesis: acknowledged writes missing from a member
(lost), values at another offset than acknowledged, replicas that differ,
reads or claims that disagree with the final contents, offset gaps or a
broken per-writer order (inconsistent), values stored twice or claimed
twice (duplicates), values never written or refused with 4xx (phantoms,
counted as inconsistent), brokers that died on their own (crashes), and
the longest time without any acknowledged write.

    tests/chaos/run.sh --seconds 60 --all      # the long run
    tests/chaos/run.sh --seconds 4 kill pause  # some nemeses, short

Exit status 0 when every row is clean, 1 otherwise.
"""
import argparse
import json
import os
import random
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import cluster_harness as ch  # noqa: E402
import damage  # noqa: E402
import netns  # noqa: E402
import powerloss  # noqa: E402

TOPIC = "chaos"
PARTITIONS = 3
GROUP = "chaos-g"
REQ_TIMEOUT = 6.0        # > the 5 s a follower retries a relay
HEAL_TIMEOUT = 30.0      # healed cluster -> leader, identical replicas


# ---------------------------------------------------------------- nodes

class ChaosNode(ch.ClusterNode):
    """A cluster node in its own network namespace (when `net` is given)
    that logs its fsyncs (BROKER_FSYNC_LOG) for powerloss.py."""

    def __init__(self, cluster, node_id, overrides=None):
        self.net = cluster.net
        super().__init__(cluster, node_id, overrides)
        if self.net is not None:
            self.net.add(node_id)
            self.host = self.net.ip(node_id)
        self.fsync_log = os.path.join(self.tmp, "fsync.log")
        self.expected_down = False   # stopped by the nemesis, not a crash

    def _spawn(self):
        self.stderr_file = open(self.stderr_path, "ab")
        env = dict(os.environ, BROKER_FSYNC_LOG=self.fsync_log)
        prefix = self.net.exec_prefix(self.node_id) if self.net else []
        self.proc = ch.harness.subprocess.Popen(
            prefix + [ch.BROKER_BIN, "-config=" + self.config_path],
            stdin=ch.harness.subprocess.DEVNULL, stdout=self.stderr_file,
            stderr=self.stderr_file, cwd=self.tmp, env=env)


class ChaosCluster(ch.Cluster):
    def __init__(self, size, overrides, net, name):
        self.net = net
        super().__init__(0, overrides, name=name, start=False)
        for i in range(1, size + 1):
            self.nodes[i] = ChaosNode(self, i, self.overrides)
        self.initial_members = [self.nodes[i].raft_address
                                for i in range(1, size + 1)]
        self.size = size
        self.members = set(range(1, size + 1))   # current voters

    def add_node(self, node_id=None, overrides=None, start=True):
        node_id = node_id or max(self.nodes) + 1
        n = ChaosNode(self, node_id, ch.deep_merge(self.overrides, overrides))
        self.nodes[node_id] = n
        if start:
            n.start()
        return n

    def member_nodes(self):
        return [self.nodes[i] for i in sorted(self.members)]


# ---------------------------------------------------------------- history

class History:
    """What the clients did and were told. Thread-safe appends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}      # value -> state: pending|acked|failed|indet
        self.acked = {}       # value -> (partition, offset)
        self.writer_acks = {}  # writer -> [(seq, partition, offset)]
        self.ack_times = []
        self.reads = []       # (node, partition, offset, value)
        self.claims = []      # (partition, offset, value)
        self.problems = []    # problems seen by clients while running
        self.n_acked = self.n_indet = self.n_failed = 0

    def attempt(self, values):
        with self.lock:
            for v in values:
                self.values[v] = "pending"

    def outcome(self, w, seqs, values, state, offsets=None):
        now = time.monotonic()
        with self.lock:
            for i, v in enumerate(values):
                self.values[v] = state
                if state == "acked":
                    p, o = offsets[i]
                    self.acked[v] = (p, o)
                    self.writer_acks.setdefault(w, []).append(
                        (seqs[i], p, o))
            if state == "acked":
                self.n_acked += len(values)
                self.ack_times.append(now)
            elif state == "indet":
                self.n_indet += len(values)
            else:
                self.n_failed += len(values)

    def problem(self, kind, text):
        with self.lock:
            self.problems.append((kind, text))


class Snap:
    """A copy of a History's collections, safe to iterate."""

    def __init__(self, h):
        self.values = dict(h.values)
        self.acked = dict(h.acked)
        self.writer_acks = {w: list(a) for w, a in h.writer_acks.items()}
        self.reads = list(h.reads)
        self.claims = list(h.claims)
        self.problems = list(h.problems)


# ---------------------------------------------------------------- workload

class Workload:
    def __init__(self, cluster, hist, seed, writers=6, readers=2,
                 claimers=2):
        self.c = cluster
        self.h = hist
        self.seed = seed
        self.stop = threading.Event()
        self.targets = list(cluster.member_nodes())
        self.threads = []
        for w in range(writers):
            self.threads.append(threading.Thread(
                target=self._guard, args=(self.writer, w), daemon=True))
        for r in range(readers):
            self.threads.append(threading.Thread(
                target=self._guard, args=(self.reader, r), daemon=True))
        for k in range(claimers):
            self.threads.append(threading.Thread(
                target=self._guard, args=(self.claimer, k), daemon=True))

    def set_targets(self, nodes):
        self.targets = list(nodes)     # replaced whole: readers copy it

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(REQ_TIMEOUT + 5)

    def _guard(self, fn, i):
        try:
            fn(i)
        except Exception:   # a bug in the harness must not pass silently
            self.h.problem("harness", traceback.format_exc())

    def writer(self, w):
        rng = random.Random(self.seed * 1000 + w)
        path = ch.produce_path(TOPIC)
        key = "w%d" % w
        seq = 0
        while not self.stop.is_set():
            target = rng.choice(self.targets)
            n = 1 if rng.random() < 0.6 else rng.randint(2, 5)
            seqs = list(range(seq, seq + n))
            seq += n
            values = ["w%d-%d" % (w, s) for s in seqs]
            if n == 1:
                body = {"key": key, "value": values[0]}
            else:
                body = {"records": [{"key": key, "value": v}
                                    for v in values]}
            self.h.attempt(values)
            try:
                st, _, data = target.request("POST", path, body,
                                             timeout=REQ_TIMEOUT,
                                             check_header=False)
            except ConnectionRefusedError:
                # Nothing was sent: certainly not written.
                self.h.outcome(w, seqs, values, "failed")
                time.sleep(0.05)
                continue
            except ch.NET_ERRORS + (ValueError,):
                self.h.outcome(w, seqs, values, "indet")
                time.sleep(0.05)
                continue
            if st == 201 and isinstance(data, dict):
                if n == 1:
                    offs = [(data["partition"], data["offset"])]
                else:
                    offs = [(o["partition"], o["offset"])
                            for o in data["offsets"]]
                self.h.outcome(w, seqs, values, "acked", offs)
            elif 400 <= st < 500:
                self.h.outcome(w, seqs, values, "failed")
                self.h.problem("client", "produce via node %d: %d %r"
                               % (target.node_id, st, data))
            else:
                self.h.outcome(w, seqs, values, "indet")
                time.sleep(0.05)

    def reader(self, r):
        rng = random.Random(self.seed * 1000 + 500 + r)
        while not self.stop.is_set():
            target = rng.choice(self.targets)
            p = rng.randrange(PARTITIONS)
            off = rng.randrange(0, max(1, self.h.n_acked // PARTITIONS + 1))
            try:
                st, data = target.fetch(TOPIC, p, expect=None,
                                        timeout=REQ_TIMEOUT, offset=off,
                                        limit=50)
            except ch.NET_ERRORS + (ValueError, AssertionError):
                time.sleep(0.05)
                continue
            if st != 200 or not isinstance(data, dict):
                time.sleep(0.05)
                continue
            msgs = data.get("messages") or []
            for i, m in enumerate(msgs):
                if i and m["offset"] != msgs[i - 1]["offset"] + 1:
                    self.h.problem("read", "node %d p%d: offsets %d then %d"
                                   " in one fetch" % (target.node_id, p,
                                                      msgs[i - 1]["offset"],
                                                      m["offset"]))
            with self.h.lock:
                if len(self.h.reads) < 300000:
                    self.h.reads.extend((target.node_id, p, m["offset"],
                                         m.get("value")) for m in msgs)
            time.sleep(0.02)

    def claimer(self, k):
        rng = random.Random(self.seed * 1000 + 800 + k)
        path = "/groups/%s/topics/%s/claim" % (GROUP, TOPIC)
        while not self.stop.is_set():
            target = rng.choice(self.targets)
            try:
                st, _, data = target.request("POST", path, {"limit": 20},
                                             timeout=REQ_TIMEOUT,
                                             check_header=False)
            except ch.NET_ERRORS + (ValueError,):
                time.sleep(0.05)
                continue
            if st == 200 and isinstance(data, dict):
                with self.h.lock:
                    self.h.claims.extend((m["partition"], m["offset"],
                                          m.get("value"))
                                         for m in data.get("messages", []))
            time.sleep(0.05)


# ---------------------------------------------------------------- nemeses

class Ctx:
    """What a nemesis works with."""

    def __init__(self, cluster, work, rng, log):
        self.c = cluster
        self.work = work
        self.rng = rng
        self.log = log
        self.crashes = []     # (node id, exit status, log tail)
        self.notes = []       # what the file nemeses did

    def leader(self, timeout=15):
        return self.c.leader(timeout, among=self.up_members())

    def up_members(self):
        return [n for n in self.c.member_nodes() if n.up()]

    def random_member(self, leader_bias=0.0):
        if self.rng.random() < leader_bias:
            try:
                return self.leader(5)
            except ch.ClusterTimeout:
                pass
        return self.rng.choice(self.up_members())

    def follower(self):
        try:
            lid = self.c.wait_leader(10, among=self.up_members())
        except ch.ClusterTimeout:
            return self.random_member()
        return self.rng.choice([n for n in self.up_members()
                                if n.node_id != lid])

    def check_crashes(self):
        """A member that exited while it should run crashed: note it and
        start it again."""
        for n in self.c.member_nodes():
            if n.proc is None or n.expected_down or n.running():
                continue
            rc = n.proc.returncode
            n._collect_stderr()
            self.crashes.append((n.node_id, rc, ch.tail(
                n.stderr() + n.log(), 3)))
            self.log("node %d died on its own (exit %s)" % (n.node_id, rc))
            self.restart(n)

    def kill(self, n):
        n.expected_down = True
        n.kill9(check=False)

    def restart(self, n):
        """Start a stopped node; a node that cannot start is a crash (and
        stays down: `broken`)."""
        if getattr(n, "broken", False):
            return False
        try:
            n.start()
            n.expected_down = False
            return True
        except ch.BrokerError:
            self.crashes.append((n.node_id, n.proc.returncode,
                                 "could not start: " + ch.tail(n.log(), 1)))
            self.log("node %d did not start: %s" % (n.node_id,
                                                    ch.tail(n.log(), 1)))
            n.problem_reported = False
            n.expected_down = True
            n.broken = True
            return False

    def wait_caught_up(self, n, timeout=15):
        """Until `n` applied what the leader had committed (bounded)."""
        try:
            target = self.leader(10).status()["commit_index"]
        except (ch.ClusterTimeout, TypeError, KeyError):
            return
        ch.poll(lambda: (n.status() or {}).get("applied_index", 0) >= target,
                timeout)


class Nemesis:
    name = "?"
    overrides = {}
    needs_net = False
    hold = (0.5, 1.5)       # seconds the fault lasts
    rest = (0.5, 1.0)       # seconds between faults
    finding = ""            # issue 7 finding it reproduces, for the report

    def inject(self, x):
        raise NotImplementedError

    def heal(self, x):
        pass

    def verify(self, res):
        """After the run: fail if the nemesis did not do what it claims."""


class Kill(Nemesis):
    name = "kill"
    bias = 0.0

    def inject(self, x):
        self.victim = x.random_member(self.bias)
        x.log("kill -9 node %d" % self.victim.node_id)
        x.kill(self.victim)

    def heal(self, x):
        x.restart(self.victim)


class KillLeader(Kill):
    name = "kill-leader"
    bias = 1.0


class Pause(Nemesis):
    name = "pause"
    hold = (1.0, 2.0)

    def inject(self, x):
        self.victim = x.random_member(0.5)
        x.log("SIGSTOP node %d" % self.victim.node_id)
        self.victim.sigstop()

    def heal(self, x):
        self.victim.sigcont()


class Partition(Nemesis):
    name = "partition"
    needs_net = True
    hold = (1.5, 3.0)

    def inject(self, x):
        ids = sorted(x.c.members)
        lone = x.random_member(0.5).node_id
        rest = [i for i in ids if i != lone]
        if len(ids) >= 5 and x.rng.random() < 0.4:
            minority = x.rng.sample(ids, len(ids) // 2)
            majority = [i for i in ids if i not in minority]
            x.log("split %s | %s" % (minority, majority))
            x.c.net.partition(minority, majority)
        elif x.rng.random() < 0.3 and len(rest) >= 2:
            # a bridge: `lone` sees everyone, the others not each other
            x.log("bridge through node %d" % lone)
            x.c.net.cut(rest[0], rest[1])
        else:
            x.log("isolate node %d" % lone)
            x.c.net.partition([lone], rest)

    def heal(self, x):
        x.c.net.heal()


class Membership(Nemesis):
    """Remove a voter (the leader now and then) through the API, stop it,
    start a fresh node and add it: always 3 voters at rest."""
    name = "membership"
    hold = (0.2, 0.5)
    rest = (1.0, 2.0)

    def inject(self, x):
        victim = x.random_member(0.3)
        via = x.rng.choice([n for n in x.up_members() if n is not victim]
                           or [victim])
        st, _, body = via.request("DELETE", "/cluster/members/%d"
                                  % victim.node_id, timeout=30,
                                  check_header=False)
        x.log("remove node %d via %d: %d" % (victim.node_id, via.node_id,
                                             st))
        if st != 200:
            return
        x.c.members.discard(victim.node_id)
        victim.expected_down = True
        x.work.set_targets(x.c.member_nodes())
        victim.kill9(check=False)
        n = x.c.add_node(start=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            via = x.rng.choice(x.up_members())
            try:
                st, _, body = via.request("POST", "/cluster/members", {
                    "node_id": n.node_id, "raft_address": n.raft_address,
                    "http_address": n.http_address}, timeout=30,
                    check_header=False)
            except ch.NET_ERRORS:
                st = None
            if st == 200:
                break
            time.sleep(0.3)
        x.log("add node %d: %s" % (n.node_id, st))
        if st == 200:
            x.c.members.add(n.node_id)
            x.work.set_targets(x.c.member_nodes())
            x.wait_caught_up(n)
        else:
            n.expected_down = True
            n.kill9(check=False)


class Snapshot(Kill):
    """A follower down long enough for the leader to compact its log past
    it: it comes back through InstallSnapshot. The run fails if no
    injection made the leader's log start pass the follower."""
    name = "snapshot"
    OVERHEAD = 10
    overrides = {"cluster": {"snapshot_entries": 40,
                             "compaction_overhead": OVERHEAD}}
    hold = (2.5, 3.5)
    forced = 0

    def inject(self, x):
        self.victim = x.follower()
        self.applied = (self.victim.status() or {}).get("applied_index", 0)
        x.log("kill -9 follower %d at applied index %d" % (
            self.victim.node_id, self.applied))
        x.kill(self.victim)

    def heal(self, x):
        try:
            snap = x.leader(10).raft()["snapshot_index"]
        except (ch.ClusterTimeout, AssertionError, KeyError) + ch.NET_ERRORS:
            snap = 0
        if snap - self.OVERHEAD > self.applied:
            self.forced += 1
        x.log("leader snapshot index %d: %s" % (
            snap, "InstallSnapshot needed" if snap - self.OVERHEAD >
            self.applied else "log catch-up"))
        x.restart(self.victim)
        x.wait_caught_up(self.victim)

    def verify(self, res):
        if res.row["injections"] and not self.forced:
            res.error = ("snapshot: no injection needed an InstallSnapshot "
                         "(the leader never compacted past the follower)")


class FileDamage(Nemesis):
    """kill -9 one node, damage its files, start it again; the next fault
    waits until it caught up (one damaged node at a time)."""
    overrides = {"segment_size": 4096}
    hold = (0.0, 0.0)
    rest = (0.8, 1.5)

    def damage(self, x, n):
        raise NotImplementedError

    def inject(self, x):
        down = [m.node_id for m in x.c.member_nodes() if not m.up()]
        if down:
            # A node that could not start again stays down: damaging a
            # second one would be a majority, not what this tests.
            x.log("no damage while node(s) %s are down" % down)
            return False
        n = x.random_member(0.3)
        x.kill(n)
        what = self.damage(x, n)
        x.notes.extend(what)
        x.log("node %d: %s" % (n.node_id, "; ".join(what) or "nothing"))
        if x.restart(n):
            x.wait_caught_up(n)


class TailCut(FileDamage):
    name = "tail-cut"
    finding = "2 (replay inside a partly stored command)"

    def damage(self, x, n):
        return damage.damage_tree(n.data_dir, damage.cut_in_command, x.rng,
                                  None)


class FlipOld(FileDamage):
    name = "flip-old"
    finding = "3 (damage in an older segment)"

    def damage(self, x, n):
        return damage.damage_tree(n.data_dir, damage.flip_record_byte,
                                  x.rng, "old", partitions=1)


class FlipNew(FileDamage):
    name = "flip-new"
    finding = "2/3 (damage in the newest segment)"

    def damage(self, x, n):
        return damage.damage_tree(n.data_dir, damage.flip_record_byte,
                                  x.rng, "new", partitions=1)


class IndexDamage(FileDamage):
    name = "index"

    def damage(self, x, n):
        return damage.damage_tree(n.data_dir, damage.damage_index, x.rng)


class PowerLoss(FileDamage):
    """A power cut on one node (a minority): every byte it had not
    fsync'd is gone (powerloss.py drop-unsynced)."""
    name = "powerloss"
    finding = "2 (a power loss before the background fsync)"
    overrides = {}

    def damage(self, x, n):
        return ["%s: %d -> %d" % (os.path.relpath(p, n.tmp), a, b)
                for p, a, b in powerloss.drop_unsynced(
                    n.data_dir, n.fsync_log, n.tmp)]


class PowerLossCut(FileDamage):
    name = "powerloss-cut"
    finding = "2 (whole records cut at a clean boundary)"

    def damage(self, x, n):
        return powerloss.cut_records(n.data_dir, x.rng)


NEMESES = [Kill, KillLeader, Pause, Partition, Membership, Snapshot,
           TailCut, FlipOld, FlipNew, IndexDamage, PowerLoss, PowerLossCut]


# ---------------------------------------------------------------- checker

class Result:
    COLS = ("injections", "acked", "indet", "lost", "inconsistent",
            "duplicates", "crashes", "max_unavail_s")

    def __init__(self, name):
        self.name = name
        self.row = dict.fromkeys(self.COLS, 0)
        self.row["max_unavail_s"] = 0.0
        self.examples = {}    # kind -> [text]
        self.skipped = None
        self.error = None
        self.finding = ""

    def add(self, col, kind, text, n=1):
        self.row[col] += n
        ex = self.examples.setdefault(kind, [])
        if len(ex) < 5:
            ex.append(text)

    def ok(self):
        r = self.row
        return self.skipped is not None or (
            self.error is None and r["lost"] == 0 and
            r["inconsistent"] == 0 and r["duplicates"] == 0 and
            r["crashes"] == 0)


def read_all(node):
    """{partition: [(offset, value)]} of TOPIC on `node`, or an error
    string (a node that cannot serve its data)."""
    try:
        out = {}
        for p in range(PARTITIONS):
            out[p] = [(m["offset"], m.get("value"))
                      for m in node.fetch_all(TOPIC, p)]
        return out
    except (AssertionError,) + ch.NET_ERRORS as e:
        return "cannot read: %s" % str(e)[:300]


# A follower re-sends a keyed relay to the next leader for up to 30 s
# (docs/clustering.md), so a write its client already gave up on
# (indeterminate) can still commit after the heal, between two reads.
RELAY_BUDGET = 30.0


def settled_views(members, log):
    """read_all of every member once the running ones agree (bounded by
    the relay budget), else the last reads: the checker then reports the
    difference."""
    start = time.monotonic()
    deadline = start + RELAY_BUDGET + 5
    while True:
        views = {n.node_id: read_all(n) if n.running() else
                 "down (could not start)" for n in members}
        up = [v for n, v in zip(members, views.values()) if n.running()]
        if all(v == up[0] for v in up) or time.monotonic() > deadline:
            if time.monotonic() - start > 0.1:
                log("replicas agreed %.1f s after the first read (late "
                    "commits of re-sent relays)" % (time.monotonic() - start))
            return views
        time.sleep(0.5)


def check(res, hist, views):
    """views: {node id: read_all(...)}. Fills res."""
    with hist.lock:   # a client thread stuck past finish() may still write
        hist = Snap(hist)
    good = {i: v for i, v in views.items() if isinstance(v, dict)}
    for i, v in views.items():
        if not isinstance(v, dict):
            res.add("inconsistent", "unreadable", "node %d: %s" % (i, v))
    if not good:
        return
    # The reference is the view most nodes agree on (the majority's).
    ref_id = max(good, key=lambda i: sum(good[j] == good[i] for j in good))
    ref = good[ref_id]

    for i, v in sorted(good.items()):
        for p in range(PARTITIONS):
            recs = v.get(p, [])
            for k in range(1, len(recs)):
                if recs[k][0] != recs[k - 1][0] + 1:
                    res.add("inconsistent", "gap", "node %d p%d: offset %d "
                            "then %d" % (i, p, recs[k - 1][0], recs[k][0]))
            if i != ref_id and recs != ref.get(p, []):
                a = dict(ref.get(p, []))
                b = dict(recs)
                diff = sorted(o for o in set(a) | set(b)
                              if a.get(o) != b.get(o))
                res.add("inconsistent", "replica", "node %d p%d differs "
                        "from node %d at %d offsets, first %s (%r vs %r)"
                        % (i, p, ref_id, len(diff), diff[0],
                           b.get(diff[0]), a.get(diff[0])), len(diff)
                        if diff else 1)

        where = {}
        for p, recs in v.items():
            for off, val in recs:
                where.setdefault(val, []).append((p, off))
        for val, places in where.items():
            state = hist.values.get(val)
            if state is None or state == "failed":
                res.add("inconsistent", "phantom", "node %d: %r at %s (%s)"
                        % (i, val, places, state or "never written"))
            elif len(places) > 1:
                res.add("duplicates", "duplicate", "node %d: %r stored at "
                        "%s" % (i, val, places))
        for val, (p, off) in hist.acked.items():
            places = where.get(val)
            if not places:
                res.add("lost", "lost", "node %d: %r acknowledged at p%d "
                        "offset %d is missing" % (i, val, p, off))
            elif (p, off) not in places:
                res.add("inconsistent", "moved", "node %d: %r acknowledged "
                        "at p%d offset %d is at %s" % (i, val, p, off,
                                                       places))

    # Per-writer order: a writer waits for each answer, so its values
    # (one key, one partition) get increasing offsets.
    pos = {}
    for p, recs in ref.items():
        for off, val in recs:
            pos[val] = (p, off)
    for w, acks in hist.writer_acks.items():
        acks = sorted(acks)
        for a, b in zip(acks, acks[1:]):
            if (a[1], a[2]) >= (b[1], b[2]) or a[1] != b[1]:
                res.add("inconsistent", "order", "writer %s: seq %d at "
                        "p%d/%d but seq %d at p%d/%d" % (w, a[0], a[1], a[2],
                                                        b[0], b[1], b[2]))
    # Reads and claims must match what the partition holds in the end.
    at = {(p, off): val for val, (p, off) in pos.items()}
    for node_id, p, off, val in hist.reads:
        if (p, off) in at and at[(p, off)] != val:
            res.add("inconsistent", "read", "node %d served %r at p%d/%d; "
                    "it holds %r" % (node_id, val, p, off, at[(p, off)]))
        elif (p, off) not in at:
            res.add("inconsistent", "read", "node %d served %r at p%d/%d, "
                    "an offset that does not exist now" % (node_id, val, p,
                                                          off))
    seen = set()
    for p, off, val in hist.claims:
        if (p, off) in seen:
            res.add("duplicates", "claim", "p%d/%d claimed twice" % (p, off))
        seen.add((p, off))
        if at.get((p, off), val) != val:
            res.add("inconsistent", "claim", "claimed %r at p%d/%d; it "
                    "holds %r" % (val, p, off, at.get((p, off))))
    for kind, text in hist.problems:
        if kind == "harness":
            res.error = text
        else:
            ex = res.examples.setdefault(kind, [])
            if len(ex) < 5:
                ex.append(text)
            if kind == "read":
                res.row["inconsistent"] += 1


def max_gap(times, start, end):
    pts = [start] + sorted(t for t in times if start <= t <= end) + [end]
    return max(b - a for a, b in zip(pts, pts[1:]))


# ---------------------------------------------------------------- runner

def run_one(nem_cls, seconds, seed, net, verbose, config=None, size=3):
    nem = nem_cls()
    res = Result(nem.name)
    res.finding = nem.finding
    if nem.needs_net and net is None:
        res.skipped = "needs network namespaces: %s" % netns.available()[1]
        return res
    rng = random.Random(seed)
    t0 = time.monotonic()

    def log(msg):
        if verbose:
            sys.stderr.write("[%s %6.1fs] %s\n" % (nem.name,
                                                   time.monotonic() - t0,
                                                   msg))

    c = ChaosCluster(size, ch.deep_merge(config or {}, nem.overrides), net,
                     "chaos-" + nem.name)
    hist = History()
    work = None
    try:
        c.start_all()
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=PARTITIONS)
        c.wait_until(lambda: all(n.topic_partitions(TOPIC) == PARTITIONS
                                 for n in c.all()), 10, "topic everywhere")
        work = Workload(c, hist, seed)
        x = Ctx(c, work, rng, log)
        work.start()
        time.sleep(1.0)
        phase_start = time.monotonic()
        end = phase_start + seconds
        while time.monotonic() < end:
            x.check_crashes()
            if nem.inject(x) is not False:
                res.row["injections"] += 1
            time.sleep(rng.uniform(*nem.hold))
            nem.heal(x)
            x.check_crashes()
            time.sleep(rng.uniform(*nem.rest))
        phase_end = time.monotonic()
        heal_all(x)
        # The healed cluster must take writes again: wait for some acks
        # after the heal (bounded), then stop the clients.
        healed = time.monotonic()
        if not ch.poll(lambda: sum(t > healed + 0.5
                                   for t in hist.ack_times[-200:]) >= 50,
                       HEAL_TIMEOUT):
            res.error = ("no writes acknowledged within %.0f s of healing"
                         "\n%s" % (HEAL_TIMEOUT, c.summary()))
        work.finish()
        x.check_crashes()
        res.row["max_unavail_s"] = round(max_gap(hist.ack_times,
                                                 phase_start, phase_end), 1)
        members = c.member_nodes()
        up = [n for n in members if n.running()]
        try:
            c.wait_leader(HEAL_TIMEOUT, among=up)
            c.wait_identical(TOPIC, HEAL_TIMEOUT, nodes=up)
        except ch.ClusterTimeout as e:
            log("not converged: %s" % str(e).splitlines()[0])
        check(res, hist, settled_views(members, log))
        res.row["acked"] = hist.n_acked
        res.row["indet"] = hist.n_indet
        for node_id, rc, text in x.crashes:
            res.add("crashes", "crash", "node %d exit %s: %s"
                    % (node_id, rc, text))
        if x.notes:
            res.examples["damage"] = x.notes[:5]
        nem.verify(res)
        c.stop_all()
    except Exception:
        res.error = traceback.format_exc()
    finally:
        if work is not None:
            work.stop.set()
        if not res.ok():
            c.dump_logs("chaos %s failed" % nem.name, "chaos-" + nem.name)
        try:
            c.cleanup()
        except ch.BrokerError as e:
            res.error = (res.error or "") + str(e)
        if net is not None:
            net.heal()
    return res


def heal_all(x):
    """Every fault undone: network healed, paused nodes continued, stopped
    members started; a leader among the members."""
    if x.c.net is not None:
        x.c.net.heal()
    for n in x.c.member_nodes():
        if n.paused:
            n.sigcont()
    x.check_crashes()
    for n in x.c.member_nodes():
        if not n.running():
            x.restart(n)


def print_table(results, out=sys.stdout):
    hdr = ("nemesis", "inject", "acked", "indet", "lost", "inconsist",
           "dups", "crashes", "unavail_s", "result")
    rows = []
    for r in results:
        if r.skipped:
            rows.append((r.name,) + ("-",) * 8 + ("SKIP",))
            continue
        v = r.row
        verdict = "ok" if r.ok() else ("ERROR" if r.error else "FAIL")
        if not r.ok() and r.finding:
            verdict += " (finding %s)" % r.finding
        rows.append((r.name, v["injections"], v["acked"], v["indet"],
                     v["lost"], v["inconsistent"], v["duplicates"],
                     v["crashes"], v["max_unavail_s"], verdict))
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    out.write(fmt % hdr + "\n")
    for row in rows:
        out.write(fmt % tuple(str(x) for x in row) + "\n")
    for r in results:
        if r.skipped:
            out.write("\n%s skipped: %s\n" % (r.name, r.skipped))
        if r.ok() and not r.examples:
            continue
        if not r.ok():
            out.write("\n== %s: details\n" % r.name)
            if r.error:
                out.write(r.error.rstrip() + "\n")
            for kind, ex in r.examples.items():
                for e in ex:
                    out.write("  %-10s %s\n" % (kind, e))
    out.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fault injection against a 3- or 5-node cluster.")
    ap.add_argument("nemeses", nargs="*", help="names (default: --all)")
    ap.add_argument("--all", action="store_true", help="every nemesis")
    ap.add_argument("--seconds", type=float, default=5,
                    help="fault phase per nemesis (default 5)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--nodes", type=int, default=3, choices=(3, 5),
                    help="cluster size (default 3)")
    ap.add_argument("--no-netns", action="store_true",
                    help="all nodes on 127.0.0.1 (partition is skipped)")
    ap.add_argument("--config", type=json.loads, default=None,
                    help="JSON object merged into every node's config, "
                    "e.g. '{\"digest_interval\": \"2s\"}'")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    by_name = {n.name: n for n in NEMESES}
    if a.all or not a.nemeses:
        chosen = NEMESES
    else:
        bad = [n for n in a.nemeses if n not in by_name]
        if bad:
            ap.error("unknown nemesis %s; known: %s"
                     % (", ".join(bad), ", ".join(by_name)))
        chosen = [by_name[n] for n in a.nemeses]
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print("chaos: seed %d, %d nodes, %.0f s per nemesis, broker %s"
          % (seed, a.nodes, a.seconds, ch.BROKER_BIN), flush=True)
    net = None
    ok, why = netns.available()
    if ok and not a.no_netns:
        try:
            net = netns.Net()
        except RuntimeError as e:
            print("chaos: no network namespaces (%s): nodes on 127.0.0.1"
                  % e, flush=True)
    elif not a.no_netns:
        print("chaos: no network namespaces (%s): nodes on 127.0.0.1"
              % why, flush=True)
    results = []
    try:
        for i, cls in enumerate(chosen):
            r = run_one(cls, a.seconds, seed + i, net, a.verbose, a.config,
                        a.nodes)
            results.append(r)
            print("chaos: %-13s %s" % (r.name, "ok" if r.ok() else "FAIL"),
                  flush=True)
    finally:
        if net is not None:
            net.close()
    print()
    print_table(results)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dict(r.row, nemesis=r.name, ok=r.ok(),
                            skipped=r.skipped, examples=r.examples)
                       for r in results], f, indent=1)
    return 0 if all(r.ok() for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
