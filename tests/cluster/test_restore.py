"""Snapshot restore on a follower that was away while the leader compacted:
its partitions must end up exactly like the leader's, including what
retention removed and topics deleted and re-created meanwhile, so that
later writes and claims land at the same offsets on every node."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

SNAP = {"cluster": {"snapshot_entries": 50, "compaction_overhead": 10}}
RETENTION = {"segment_size": 2048, "retention_bytes": 4096,
             "cleanup_interval": "1s",
             "cluster": {"snapshot_entries": 50, "compaction_overhead": 10}}


def stats(node, topic):
    st, _, body = node.request("GET", "/topics/%s" % topic)
    if st != 200:
        return None
    return [(p["log_start_offset"], p["high_watermark"])
            for p in body["partitions"]]


class Restore(ch.ClusterTestCase):

    def test_retention_while_away(self):
        """Retention deleted segments (and the TRUNCATE entries left the log
        with a snapshot) while a follower was down: after its restart its
        log start and high watermark equal the leader's, a claim moves the
        group to the same offset on every node, and a new record gets the
        same offset everywhere."""
        c = self.new_cluster(3, RETENTION)
        leader = c.leader()
        leader.create_topic("t", partitions=1)
        for i in range(5):
            leader.produce("t", "early-%d" % i, partition=0)
        c.wait_identical("t", 10, nodes=c.all())
        down = c.followers()[0]
        c.stop(down.node_id)
        for i in range(400):
            leader.produce("t", "x" * 60 + "-%d" % i, partition=0)
        c.wait_until(lambda: stats(leader, "t")[0][0] > 100, 10,
                     "retention on the leader")
        for i in range(100):
            leader.produce("t", "y-%d" % i, partition=0)
        c.start(down.node_id)
        c.wait_until(lambda: stats(down, "t") == stats(leader, "t"), 20,
                     "restored follower's log start and high watermark")
        c.wait_identical("t", 20, nodes=c.all())
        st, _, body = leader.request("POST", "/groups/g/topics/t/claim",
                                     {"limit": 3})
        self.assertEqual(st, 200, body)
        want = stats(leader, "t")[0][0] + 3
        def committed(n):
            return [(o["topic"], o["partition"], o["offset"]) for o in
                    n.request("GET", "/groups/g/offsets")[2].get("offsets")]
        for n in c.all():
            c.wait_until(lambda: committed(n) == [("t", 0, want)], 10,
                         "group offset on node %d" % n.node_id)
        r = leader.produce("t", "after", partition=0)
        final = c.wait_identical("t", 10, nodes=c.all())
        self.assertEqual(final[0][-1][0], r["offset"])
        self.assertEqual(final[0][-1][3], "after")

    def test_topic_recreated_while_away(self):
        """A topic deleted and re-created (fewer records) while a follower
        was down is replaced on that follower by the new incarnation: no
        old record survives and a new record lands at the leader's offset."""
        c = self.new_cluster(3, SNAP)
        leader = c.leader()
        leader.create_topic("x", partitions=1)
        for i in range(30):
            leader.produce("x", "old-%d" % i, partition=0)
        c.wait_identical("x", 10, nodes=c.all())
        down = c.followers()[0]
        c.stop(down.node_id)
        st, _, body = leader.request("DELETE", "/topics/x")
        self.assertEqual(st, 204, body)
        leader.create_topic("x", partitions=1)
        for i in range(5):
            leader.produce("x", "new-%d" % i, partition=0)
        leader.create_topic("pad", partitions=1)
        for i in range(150):  # several snapshots past the delete
            leader.produce("pad", "p", partition=0)
        c.start(down.node_id)
        contents = c.wait_identical("x", 20, nodes=c.all())
        self.assertEqual([r[3] for r in contents[0]],
                         ["new-%d" % i for i in range(5)])
        r = leader.produce("x", "after", partition=0)
        self.assertEqual(r["offset"], 5)
        contents = c.wait_identical("x", 10, nodes=c.all())
        self.assertEqual((contents[0][-1][0], contents[0][-1][3]),
                         (5, "after"))


if __name__ == "__main__":
    ch.main()
