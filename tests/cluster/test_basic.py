"""Cluster basics on one 3-node cluster: election, agreement on leader and
members, operator log lines, forwarding of writes from followers (produce,
topics, groups, claims), replication of everything to every node, the
/cluster/raft and /readyz endpoints, and concurrent produce load through
all nodes (requests batched into shared Raft entries must all survive)."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

LEADER_WITHIN_S = 3.0


class BasicCluster(ch.ClusterTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_shared_cluster(3)

    @property
    def c(self):
        return self.shared

    # ---- election and agreement ----

    def test_01_leader_elected_quickly(self):
        """A fresh 3-node cluster (rtt 50 ms: election timeout 500 ms) has
        one leader known by every node within 3 s of spawning the nodes, and
        exactly one node says it is the leader."""
        print("\n  leader known by all %.2f s after spawn"
              % self.c.start_elapsed, file=sys.stderr)
        self.assertLessEqual(self.c.start_elapsed, LEADER_WITHIN_S)
        states = [n.status()["state"] for n in self.c.all()]
        self.assertEqual(states.count("leader"), 1, states)
        self.assertEqual(states.count("follower"), 2, states)

    def test_02_same_leader_and_members_everywhere(self):
        """Every node reports the same leader (id, raft and http address)
        and the same members: 3 voters with their configured raft address
        and their advertised http address (announced shortly after start);
        /cluster/leader and /cluster/members agree with /cluster/status."""
        c = self.c
        c.wait_members_known()
        lid = c.wait_leader()
        leader = c.node(lid)
        want_members = sorted(
            (n.node_id, n.raft_address, n.http_address, "voter")
            for n in c.all())
        for n in c.all():
            st = n.status()
            self.assertEqual(st["node_id"], n.node_id)
            self.assertEqual(st["mode"], "cluster")
            self.assertEqual(st["leader"], {
                "node_id": lid, "raft_address": leader.raft_address,
                "http_address": leader.http_address}, "node %d" % n.node_id)
            got = sorted((m["node_id"], m["raft_address"], m["http_address"],
                          m["role"]) for m in st["members"])
            self.assertEqual(got, want_members, "node %d" % n.node_id)
            for k in ("term", "commit_index", "applied_index",
                      "last_log_index", "topics", "uptime_s"):
                self.assertIsInstance(st[k], int, k)
            self.assertGreaterEqual(st["term"], 1)
            code, h, body = n.request("GET", "/cluster/leader")
            self.assertEqual(code, 200, body)
            self.assertEqual(body, st["leader"])
            got = sorted((m["node_id"], m["raft_address"], m["http_address"],
                          m["role"]) for m in n.members())
            self.assertEqual(got, want_members)
        terms = {n.status()["term"] for n in c.all()}
        self.assertEqual(len(terms), 1, terms)

    def test_03_log_lines(self):
        """Every node logs "Raft cluster started (node N, term T)"; the
        leader logs "became leader (node L, term T)" with the term it leads
        in; any "lost leadership" line names the node and a term too."""
        c = self.c
        lid = c.wait_leader()
        term = c.node(lid).status()["term"]
        for n in c.all():
            log = n.log()
            self.assertRegex(log, r"Raft cluster started \(node %d, term \d+\)"
                             % n.node_id, "node %d" % n.node_id)
            for line in log.splitlines():
                if "lost leadership" in line:
                    self.assertRegex(line, r"lost leadership \(node %d, term "
                                     r"\d+\)" % n.node_id)
        log = c.node(lid).log()
        became = re.findall(r"became leader \(node (\d+), term (\d+)\)", log)
        self.assertIn((str(lid), str(term)), became, log[-3000:])

    # ---- forwarding and replication ----

    def test_04_produce_through_follower(self):
        """A produce sent to a follower is forwarded: 201 with
        X-Broker-Node = leader id and X-Forwarded-By = follower id; the
        record is then fetchable with the same offset, value, key, headers
        and timestamp from all three nodes."""
        c = self.c
        leader = c.leader()
        for f in c.followers():
            value = {"via": f.node_id, "n": [1, 2.5, "x", None, True]}
            st, h, body = f.request(
                "POST", "/topics/basic-fwd/messages",
                {"key": "k%d" % f.node_id, "value": value,
                 "headers": {"h": "v"}})
            self.assertEqual(st, 201, body)
            self.assertEqual(h.get("X-Broker-Node"), str(leader.node_id))
            self.assertEqual(h.get("X-Forwarded-By"), str(f.node_id))
            self.assertEqual(body["topic"], "basic-fwd")
            p, off, ts = body["partition"], body["offset"], body["timestamp"]
            self.assertIsInstance(ts, int)

            def seen(n):
                code, data = n.fetch("basic-fwd", p, expect=None, offset=off,
                                     limit=1)
                if code != 200 or not data["messages"]:
                    return None
                return data["messages"][0]
            for n in c.all():
                m = c.wait_until(lambda: seen(n), 10,
                                 "offset %d on node %d" % (off, n.node_id))
                self.assertEqual(m["offset"], off)
                self.assertEqual(m["value"], value)
                self.assertEqual(m["key"], "k%d" % f.node_id)
                self.assertEqual(m["headers"], {"h": "v"})
                self.assertEqual(m["timestamp"], ts, "node %d" % n.node_id)
        # A produce on the leader itself is not marked as forwarded.
        st, h, body = leader.request("POST", "/topics/basic-fwd/messages",
                                     {"value": "direct"})
        self.assertEqual(st, 201, body)
        self.assertEqual(h.get("X-Broker-Node"), str(leader.node_id))
        self.assertIsNone(h.get("X-Forwarded-By"))

    def test_05_topic_create_delete_through_followers(self):
        """POST /topics to a follower -> 201 (forwarded), the topic and its
        partition count appear on every node; a second create through the
        other follower -> 409 topic_exists; DELETE through a follower ->
        204, then the topic is 404 on every node and its files are gone
        from every node's data_dir."""
        c = self.c
        f1, f2 = c.followers()
        lid = c.leader().node_id
        st, h, body = f1.request("POST", "/topics",
                                 {"name": "basic-topic", "partitions": 3})
        self.assertEqual(st, 201, body)
        self.assertEqual(body, {"name": "basic-topic", "partitions": 3})
        self.assertEqual(h.get("X-Broker-Node"), str(lid))
        self.assertEqual(h.get("X-Forwarded-By"), str(f1.node_id))
        for n in c.all():
            c.wait_until(lambda: n.topic_partitions("basic-topic") == 3, 10,
                         "basic-topic on node %d" % n.node_id)
            code, _, lst = n.request("GET", "/topics")
            self.assertEqual(code, 200)
            self.assertIn({"name": "basic-topic", "partitions": 3},
                          lst["topics"])
        resp = f2.request("POST", "/topics", {"name": "basic-topic",
                                              "partitions": 1})
        self.assertEqual(resp[0], 409, resp[2])
        self.assertEqual(resp[2].get("code"), "topic_exists")
        for p in range(3):
            ch.write_with_retry(c, "basic-topic", "r%d" % p, partition=p,
                                node=f2)
        for n in c.all():
            c.wait_until(lambda: sum(n.high_watermarks("basic-topic")
                                     .values()) == 3, 10,
                         "3 records on node %d" % n.node_id)
            self.assertTrue(os.path.isdir(n.topic_dir("basic-topic", 0)))
        st, h, body = f2.request("DELETE", "/topics/basic-topic")
        self.assertEqual(st, 204, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f2.node_id))
        for n in c.all():
            c.wait_until(lambda: n.topic_partitions("basic-topic") is None,
                         10, "basic-topic gone on node %d" % n.node_id)
            c.wait_until(lambda: not os.path.exists(
                n.topic_dir("basic-topic")), 10,
                "basic-topic files gone on node %d" % n.node_id)

    def test_06_groups_commit_and_claim_through_followers(self):
        """Group offsets committed through a follower (200) are visible on
        every node; claims through two different followers hand out each
        message exactly once and advance the group's offsets on every
        node; DELETE /groups through a follower removes it everywhere."""
        c = self.c
        f1, f2 = c.followers()
        leader = c.leader()
        leader.create_topic("basic-claim", partitions=1)
        for i in range(6):
            leader.produce("basic-claim", {"i": i}, partition=0)

        st, h, body = f1.request("POST", "/groups/basic-g1/offsets",
                                 {"topic": "basic-claim", "partition": 0,
                                  "offset": 4})
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f1.node_id))

        def offsets(n, group):
            code, _, data = n.request(
                "GET", "/groups/%s/offsets?topic=basic-claim" % group)
            if code != 200:
                return None
            return {(o["topic"], o["partition"]): o["offset"]
                    for o in data["offsets"]}
        for n in c.all():
            c.wait_until(lambda: offsets(n, "basic-g1") ==
                         {("basic-claim", 0): 4}, 10,
                         "group offset on node %d" % n.node_id)
            code, _, data = n.request("GET", "/groups")
            self.assertEqual(code, 200)
            self.assertIn("basic-g1", data["groups"])

        claimed = []
        st, h, body = f1.request(
            "POST", "/groups/basic-g2/topics/basic-claim/claim",
            {"limit": 4, "wait_ms": 0})
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f1.node_id))
        self.assertEqual(len(body["messages"]), 4, body)
        claimed += body["messages"]
        st, h, body = f2.request(
            "POST", "/groups/basic-g2/topics/basic-claim/claim",
            {"limit": 100, "wait_ms": 0})
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f2.node_id))
        claimed += body["messages"]
        self.assertEqual(sorted((m["partition"], m["offset"])
                                for m in claimed),
                         [(0, i) for i in range(6)])
        self.assertEqual(sorted(m["value"]["i"] for m in claimed),
                         list(range(6)))
        st, _, body = f1.request(
            "POST", "/groups/basic-g2/topics/basic-claim/claim",
            {"limit": 100, "wait_ms": 0})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["messages"], [])
        for n in c.all():
            c.wait_until(lambda: offsets(n, "basic-g2") ==
                         {("basic-claim", 0): 6}, 10,
                         "claim offsets on node %d" % n.node_id)

        st, h, body = f2.request("DELETE", "/groups/basic-g1")
        self.assertEqual(st, 204, body)
        for n in c.all():
            def gone():
                code, _, data = n.request("GET", "/groups")
                return code == 200 and "basic-g1" not in data["groups"]
            c.wait_until(gone, 10, "group deleted on node %d" % n.node_id)

    # ---- endpoints ----

    def test_07_cluster_raft_fields(self):
        """GET /cluster/raft on every node: all API.md fields are integers,
        the same term everywhere, applied <= commit <= last log index, and
        after a write every node's applied index reaches the leader's
        commit index."""
        c = self.c
        leader = c.leader()
        leader.produce("basic-raft", "x")
        fields = ("term", "commit_index", "applied_index", "last_log_index",
                  "snapshot_index", "snapshots_taken", "elections",
                  "leader_changes", "log_entries")
        want = leader.raft()["commit_index"]
        terms = set()
        for n in c.all():
            r = n.raft()
            for k in fields:
                self.assertIn(k, r)
                self.assertIsInstance(r[k], int, k)
                self.assertGreaterEqual(r[k], 0, k)
            terms.add(r["term"])
            self.assertLessEqual(r["commit_index"], r["last_log_index"], r)
            self.assertGreaterEqual(r["leader_changes"], 1, r)
            self.assertGreater(r["log_entries"], 0, r)
            c.wait_until(lambda: n.raft()["applied_index"] >= want, 10,
                         "node %d applied %d" % (n.node_id, want))
        self.assertEqual(len(terms), 1, terms)

    def test_08_readyz_everywhere(self):
        """/readyz answers 200 on every node (storage open, leader known)
        and /healthz 200."""
        for n in self.c.all():
            st, _, body = n.request("GET", "/readyz")
            self.assertEqual(st, 200, body)
            st, _, body = n.request("GET", "/healthz")
            self.assertEqual(st, 200, body)

    # ---- load ----

    def test_09_concurrent_produce_through_all_nodes(self):
        """8 threads x 200 produce requests (singles and 3-record batches)
        spread over all three nodes at once. Every request is acknowledged,
        every acknowledged (partition, offset) is unique, each acknowledged
        value is at its offset, and on every node the partitions' high
        watermarks sum to the number of acknowledged records (requests
        batched into one Raft entry must all be applied)."""
        c = self.c
        topic = "basic-load"
        c.leader().create_topic(topic, partitions=4)
        for n in c.all():
            c.wait_until(lambda: n.topic_partitions(topic) == 4, 10,
                         "topic on node %d" % n.node_id)
        threads, per_thread = 8, 200
        acks = []        # (partition, offset, value)
        failures = []
        lock = threading.Lock()
        nodes = c.all()

        def worker(t):
            mine, bad = [], []
            for i in range(per_thread):
                n = nodes[(t + i) % len(nodes)]
                if i % 4 == 3:
                    vals = ["t%d-%d-%d" % (t, i, j) for j in range(3)]
                    body = {"records": [{"value": v} for v in vals]}
                else:
                    vals = ["t%d-%d" % (t, i)]
                    body = {"value": vals[0]}
                try:
                    st, _, data = n.request("POST", ch.produce_path(topic),
                                            body, timeout=30)
                except ch.NET_ERRORS as e:
                    bad.append((n.node_id, body, repr(e)))
                    continue
                if st != 201:
                    bad.append((n.node_id, body, st, data))
                    continue
                if "offsets" in data:
                    offs = [(o["partition"], o["offset"])
                            for o in data["offsets"]]
                else:
                    offs = [(data["partition"], data["offset"])]
                if len(offs) != len(vals):
                    bad.append((n.node_id, body, "answer", data))
                    continue
                mine += [(p, o, v) for (p, o), v in zip(offs, vals)]
            with lock:
                acks.extend(mine)
                failures.extend(bad)

        t0 = time.monotonic()
        ts = [threading.Thread(target=worker, args=(t,))
              for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        print("\n  %d requests, %d records acknowledged in %.1f s"
              % (threads * per_thread, len(acks), elapsed), file=sys.stderr)
        self.assertEqual(failures, [], "%d failed requests" % len(failures))
        expected_records = threads * (per_thread // 4) * (3 + 3)
        self.assertEqual(len(acks), expected_records)
        positions = [(p, o) for p, o, _ in acks]
        dups = len(positions) - len(set(positions))
        self.assertEqual(dups, 0, "%d acknowledged positions repeat" % dups)
        by_pos = {(p, o): v for p, o, v in acks}
        for n in c.all():
            c.wait_until(
                lambda: sum(n.high_watermarks(topic).values()) >= len(acks),
                30, "node %d to apply %d records" % (n.node_id, len(acks)))
            hw = n.high_watermarks(topic)
            self.assertEqual(sum(hw.values()), len(acks),
                             "node %d high watermarks %r" % (n.node_id, hw))
        contents = c.wait_identical(topic, 30)
        stored = {(p, rec[0]): rec[3] for p, recs in contents.items()
                  for rec in recs}
        self.assertEqual(stored, by_pos)


if __name__ == "__main__":
    ch.main()
