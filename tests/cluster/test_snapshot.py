"""Snapshots and log compaction (cluster.snapshot_entries 50,
compaction_overhead 10): a follower that was down while the leader took
several snapshots and dropped the entries it missed catches up fully from
a snapshot (metadata) plus the leader's records; then a restart of the
whole cluster keeps every record exactly once and the group offsets."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

SNAP = {"cluster": {"snapshot_entries": 50, "compaction_overhead": 10}}
RECORDS = 500


def group_offsets(node, group, topic):
    st, _, data = node.request("GET", "/groups/%s/offsets?topic=%s"
                               % (group, topic))
    if st == 404:
        return None
    if st != 200:
        raise AssertionError("GET offsets of %s on node %d: %d %r"
                             % (group, node.node_id, st, data))
    return {(o["topic"], o["partition"]): o["offset"]
            for o in data["offsets"]}


class Snapshot(ch.ClusterTestCase):

    maxDiff = None

    def test_follower_catch_up_then_full_restart(self):
        """A follower is stopped (SIGTERM, exit 0); 500 records, a new
        topic, a topic deletion and group commits go through the leader,
        which takes snapshots (snapshots_taken > 0, snapshot_index > 0) and
        compacts its log. The follower is started again and catches up:
        identical partitions on all nodes, every record at its acknowledged
        offset, the new topic present, the deleted one gone, the group
        offsets equal. Then SIGTERM all three nodes and start them again:
        identical contents as before the restart (no record lost or
        duplicated by replay), group offsets kept, and new writes continue
        at the old high watermarks."""
        c = self.new_cluster(3, SNAP)
        leader = c.leader()
        leader.create_topic("snap", partitions=2)
        leader.create_topic("snap-del", partitions=1)
        leader.produce("snap-del", "doomed")
        acked = {}
        for i in range(20):
            r = leader.produce("snap", "early-%d" % i, partition=i % 2)
            acked[(r["partition"], r["offset"])] = "early-%d" % i
        st, _, body = leader.request("POST", "/groups/snap-g1/offsets", {
            "offsets": [{"topic": "snap", "partition": 0, "offset": 5},
                        {"topic": "snap", "partition": 1, "offset": 7}]})
        self.assertEqual(st, 200, body)
        c.wait_identical("snap", 10, nodes=c.all())

        down = c.followers()[0]
        c.stop(down.node_id)
        before = leader.raft()
        for i in range(RECORDS):
            v = "v-%d" % i
            r = leader.produce("snap", v, key="k%d" % (i % 13))
            acked[(r["partition"], r["offset"])] = v
            if i == RECORDS // 2:
                leader.create_topic("snap-new", partitions=3)
                st, _, body = leader.request("DELETE", "/topics/snap-del")
                self.assertEqual(st, 204, body)
        for i in range(30):
            leader.produce("snap-new", {"n": i}, partition=i % 3)
        st, _, body = leader.request("POST", "/groups/snap-g2/offsets", {
            "offsets": [{"topic": "snap", "partition": 0, "offset": 100},
                        {"topic": "snap", "partition": 1, "offset": 120}]})
        self.assertEqual(st, 200, body)
        st, _, body = leader.request(
            "POST", "/groups/snap-g3/topics/snap/claim", {"limit": 9})
        self.assertEqual(st, 200, body)
        self.assertEqual(len(body["messages"]), 9, body)

        raft = leader.raft()
        print("\n  leader /cluster/raft before: %r\n  after: %r"
              % (before, raft), file=sys.stderr)
        self.assertGreater(raft["snapshots_taken"], 0, raft)
        self.assertGreater(raft["snapshot_index"], 0, raft)
        self.assertGreater(raft["snapshot_index"], before["last_log_index"],
                           "no snapshot past the stopped follower's log")
        self.assertLess(raft["log_entries"], RECORDS,
                        "the leader's log was not compacted")

        c.start(down.node_id)
        c.wait_leader(10)
        snap = c.wait_identical("snap", 60, nodes=c.all())
        new = c.wait_identical("snap-new", 30, nodes=c.all())
        stored = {(p, r[0]): r[3] for p, recs in snap.items() for r in recs}
        self.assertEqual(stored, acked)
        self.assertEqual(sorted(r[3]["n"] for recs in new.values()
                                for r in recs), list(range(30)))
        c.wait_until(lambda: down.topic_partitions("snap-del") is None, 10,
                     "snap-del deleted on the restarted follower")
        self.assertFalse(os.path.exists(down.topic_dir("snap-del")))
        groups = {}
        for g in ("snap-g1", "snap-g2", "snap-g3"):
            groups[g] = group_offsets(leader, g, "snap")
            for n in c.all():
                c.wait_until(lambda: group_offsets(n, g, "snap") == groups[g],
                             10, "offsets of %s on node %d" % (g, n.node_id))
        self.assertEqual(groups["snap-g2"], {("snap", 0): 100,
                                             ("snap", 1): 120})
        log = down.log()
        self.assertIn("restored snapshot at index", log,
                      "the follower did not install a snapshot")
        print("  follower %d: %s" % (down.node_id, "; ".join(
            line.split(" INFO ")[-1] for line in log.splitlines()
            if "caught up" in line or "restored snapshot" in line)),
            file=sys.stderr)
        for n in c.all():
            c.wait_until(lambda: n.status()["applied_index"] >=
                         leader.status()["commit_index"], 10,
                         "node %d applied everything" % n.node_id)

        # ---- whole-cluster restart ----
        hws = {n.node_id: n.high_watermarks("snap") for n in c.all()}
        c.restart_all()
        for n in c.all():
            c.wait_until(lambda: n.high_watermarks("snap") ==
                         hws[n.node_id], 20,
                         "node %d back at %r" % (n.node_id, hws[n.node_id]))
        self.assertEqual(c.wait_identical("snap", 30, nodes=c.all()), snap)
        self.assertEqual(c.wait_identical("snap-new", 30, nodes=c.all()), new)
        for n in c.all():
            self.assertIsNone(n.topic_partitions("snap-del"))
            for g in groups:
                self.assertEqual(group_offsets(n, g, "snap"), groups[g],
                                 "%s on node %d" % (g, n.node_id))
        hw = hws[leader.node_id]
        for p in (0, 1):
            r = ch.write_with_retry(c, "snap", "after-restart-%d" % p,
                                    partition=p)
            self.assertEqual(r["offset"], hw[p], "partition %d" % p)
        after = c.wait_identical("snap", 30, nodes=c.all())
        for p in (0, 1):
            self.assertEqual(after[p][:-1], snap[p])
            self.assertEqual(after[p][-1][3], "after-restart-%d" % p)

    def test_rebuilt_follower_catches_up_quickly(self):
        """A follower whose data_dir and cluster.data_dir are emptied while
        it is down (a rebuilt machine) is sent a snapshot, fetches the
        records it describes from the leader and then follows new writes,
        within seconds (c-raft 0.15 can drop the InstallSnapshot answer; the
        broker shortens the leader's re-send timeout)."""
        import shutil
        c = self.new_cluster(3, SNAP)
        leader = c.leader()
        leader.create_topic("rebuild", partitions=1)
        for i in range(200):
            leader.produce("rebuild", i)
        down = c.followers()[0]
        c.stop(down.node_id)
        shutil.rmtree(down.data_dir)
        shutil.rmtree(down.raft_dir)
        c.start(down.node_id)
        first = c.wait_identical("rebuild", 10, nodes=c.all())
        self.assertEqual([r[3] for r in first[0]], list(range(200)))
        for i in range(200, 260):
            leader.produce("rebuild", i)
        after = c.wait_identical("rebuild", 10, nodes=c.all())
        self.assertEqual([r[3] for r in after[0]], list(range(260)))


if __name__ == "__main__":
    ch.main()
