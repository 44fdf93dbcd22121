"""Idempotency keys in a cluster: keyed writes through followers while the
leader is killed with kill -9 again and again store each write once and
lose none that was acknowledged; relayed writes never answer 503 "may or
may not"; a replay through any node (after restarts and snapshots too)
gives the same answer; every node holds the same keys."""
import collections
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

ROUNDS = 3


class KeyedWriter(threading.Thread):
    """Sends record after record, each under its own Idempotency-Key (or,
    with `keyed` false, without one: the followers' own keys must then do
    the work), to the current targets in turn. A keyed record is retried
    with the same key and body until it is acknowledged; an unkeyed one
    gets a new value per attempt. Every 503 body is kept."""

    def __init__(self, wid, cluster, topic, stop, keyed=True):
        super().__init__(daemon=True)
        self.wid, self.cluster, self.topic, self.stop = wid, cluster, topic, stop
        self.keyed = keyed
        self.targets = []
        self.acks = []          # (value json, key, answer, value)
        self.maybe = []         # 503 bodies saying "may or may not"
        self.failures = []
        self.retries = collections.Counter()

    def one(self, seq):
        attempt = 0
        turn = self.wid
        key = "w%d-%d" % (self.wid, seq)
        while True:
            value = {"w": self.wid, "s": seq,
                     "a": 0 if self.keyed else attempt}
            node = self.targets[turn % len(self.targets)]
            turn += 1
            hdrs = {"Idempotency-Key": key} if self.keyed else {}
            try:
                st, h, data = node.request("POST", ch.produce_path(self.topic),
                                           {"value": value}, headers=hdrs,
                                           timeout=45)
            except ch.NET_ERRORS as e:
                self.retries[type(e).__name__] += 1
                st, data = None, None
            if st == 201:
                self.acks.append((json.dumps(value, sort_keys=True), key,
                                  data, value))
                return
            if st == 503:
                self.retries["503"] += 1
                if "may or may not" in json.dumps(data):
                    self.maybe.append((node.node_id, data))
            elif st is not None:
                self.failures.append((node.node_id, value, st, data))
                return
            attempt += 1
            if self.stop.is_set() and attempt > 100:
                return
            time.sleep(0.05)

    def run(self):
        seq = 0
        while not self.stop.is_set():
            self.one(seq)
            seq += 1


class Idempotency(ch.ClusterTestCase):

    maxDiff = None

    def test_keyed_writes_under_leader_kills(self):
        """Three kill -9s of the leader while 6 keyed and 2 unkeyed writers go through the followers: no duplicate, no lost acknowledged write, no 503 'may or may not'; replays through every node give the first answers; all nodes hold the same key count."""
        c = self.new_cluster(3, {"cluster": {"snapshot_entries": 64}})
        topic = "idem"
        c.leader().create_topic(topic, partitions=2)
        for n in c.all():
            c.wait_until(lambda: n.topic_partitions(topic) == 2, 10,
                         "topic on node %d" % n.node_id)
        stop = threading.Event()
        writers = [KeyedWriter(w, c, topic, stop, keyed=w < 6)
                   for w in range(8)]

        def acked():
            return sum(len(w.acks) for w in writers)

        def aim():
            leader = c.leader()
            for w in writers:
                w.targets = [n for n in c.up_nodes() if n is not leader]
        resent = []

        def relay_retries(n):
            for line in n.metrics().splitlines():
                if line.startswith("broker_relay_retries_total "):
                    return int(float(line.split()[1]))
            return 0
        aim()
        for w in writers:
            w.start()
        try:
            for rnd in range(ROUNDS):
                before = acked()
                c.wait_until(lambda: acked() >= before + 60, 30,
                             "60 writes before kill %d" % (rnd + 1))
                old = c.leader()
                c.kill9(old.node_id)
                c.wait_leader(10, among=[n for n in c.all() if n is not old])
                before = acked()
                c.wait_until(lambda: acked() >= before + 30, 30,
                             "30 writes after kill %d" % (rnd + 1))
                resent.append(sum(relay_retries(n) for n in c.up_nodes()))
                c.start(old.node_id)
                aim()
        finally:
            stop.set()
            for w in writers:
                w.join(120)
        self.assertFalse(any(w.is_alive() for w in writers))
        self.assertEqual([f for w in writers for f in w.failures], [])
        self.assertEqual([m for w in writers for m in w.maybe], [],
                         "a relayed write answered 'may or may not'")
        retries = sum((w.retries for w in writers), collections.Counter())
        print("\n  %d acknowledged, client retries %s, relays resent by "
              "the followers (counted after each kill) %s"
              % (acked(), dict(retries), resent), file=sys.stderr)
        # The kills did catch relays in flight, which were sent again.
        self.assertGreater(sum(resent), 0)
        c.wait_leader(10)
        contents = c.wait_identical(topic, 60, nodes=c.all())
        where = collections.defaultdict(list)
        for p, recs in contents.items():
            for r in recs:
                where[json.dumps(r[3], sort_keys=True)].append((p, r[0]))
        acks = [a for w in writers for a in w.acks]
        lost = [a for a in acks if a[0] not in where]
        self.assertEqual(lost, [], "acknowledged writes missing")
        twice = {v: ps for v, ps in where.items() if len(ps) > 1}
        self.assertEqual(twice, {}, "a write stored twice")
        for v, key, ans, _ in acks:
            self.assertEqual([(ans["partition"], ans["offset"])], where[v])
        # Same keys everywhere, and replays through every node.
        commit = c.leader().status()["commit_index"]
        for n in c.all():
            c.wait_until(lambda: n.status()["applied_index"] >= commit, 20,
                         "node %d applied" % n.node_id)
        counts = {n.node_id: n.status()["idempotency_keys"] for n in c.all()}
        self.assertEqual(len(set(counts.values())), 1, counts)
        # Unkeyed writes that reached the leader directly hold no key.
        keyed = [a for a in acks if json.loads(a[0])["w"] < 6]
        self.assertGreaterEqual(min(counts.values()), len(keyed))
        for i, (v, key, ans, value) in enumerate(keyed[::7]):
            node = c.node(1 + i % 3)
            # The same body (its bytes are in the fingerprint).
            st, h, data = node.request("POST", ch.produce_path(topic),
                                       {"value": value},
                                       headers={"Idempotency-Key": key})
            self.assertEqual((st, h.get("Idempotent-Replayed"), data),
                             (201, "true", ans), (node.node_id, key))
        self.assertEqual(c.wait_identical(topic, 30, nodes=c.all()), contents)

    def test_reuse_and_restart(self):
        """A reused key is 422 through a follower; keys survive a restart of the whole cluster (snapshot + log replay) and replay with the same offsets on every node."""
        c = self.new_cluster(3, {"cluster": {"snapshot_entries": 16}})
        c.leader().create_topic("rr", partitions=3)
        f = c.followers()[0]
        first = {}
        for i in range(40):
            st, h, data = f.request("POST", ch.produce_path("rr"),
                                    {"value": i},
                                    headers={"Idempotency-Key": "rr-%d" % i})
            self.assertEqual(st, 201, data)
            first[i] = data
        st, h, data = f.request("POST", ch.produce_path("rr"), {"value": -1},
                                headers={"Idempotency-Key": "rr-0"})
        self.assertEqual((st, data["code"]), (422, "idempotency_key_reused"))
        c.restart_all()
        c.wait_leader(15)
        for i in range(40):
            node = c.node(1 + i % 3)
            st, h, data = node.request(
                "POST", ch.produce_path("rr"), {"value": i},
                headers={"Idempotency-Key": "rr-%d" % i})
            if st == 503:  # a node still catching up: try the leader
                st, h, data = c.leader().request(
                    "POST", ch.produce_path("rr"), {"value": i},
                    headers={"Idempotency-Key": "rr-%d" % i})
            self.assertEqual((st, h.get("Idempotent-Replayed"), data),
                             (201, "true", first[i]), i)
        total = sum(len(v) for v in c.leader().contents("rr").values())
        self.assertEqual(total, 40)
        counts = {n.node_id: n.status()["idempotency_keys"] for n in c.all()}
        self.assertEqual(set(counts.values()), {40}, counts)


if __name__ == "__main__":
    ch.harness.main()
