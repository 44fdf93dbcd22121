"""Commits past the high watermark and offset resets in a cluster (issue
11, item 5): decided at apply from each replica's own data, so every node
ends with the same group offsets; a 416 through a follower carries the
bounds; a reset replayed after a restart (with newer records on disk)
gives the same offsets again."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402


def offsets(node, group):
    st, _, data = node.request("GET", "/groups/%s/offsets" % group)
    assert st == 200, (st, data)
    return {(o["topic"], o["partition"]): o["offset"]
            for o in data["offsets"]}


class OffsetsReset(ch.ClusterTestCase):
    def test_bounds_and_resets_agree(self):
        c = self.new_cluster(3)
        leader = c.leader()
        f = c.followers()[0]
        leader.create_topic("rs", partitions=2)
        for i in range(6):
            leader.produce("rs", i, partition=i % 2)
        time.sleep(0.02)
        mid = leader.produce("rs", "mid", partition=0)
        for i in range(3):
            leader.produce("rs", i, partition=1)
        c.wait_identical("rs", 20, nodes=c.all())

        # Past the end, through a follower: 416 with the leader's bounds.
        st, h, data = f.request("POST", "/groups/g/offsets",
                                {"topic": "rs", "partition": 0,
                                 "offset": 5})
        self.assertEqual(st, 416, data)
        self.assertEqual(data["code"], "offset_out_of_range")
        self.assertEqual((data["log_start_offset"], data["high_watermark"]),
                         (0, 4))
        self.assertEqual(h.get("X-Forwarded-By"), str(f.node_id))
        # Unknown fields are refused on the follower already.
        st, _, data = f.request("POST", "/groups/g/offsets",
                                {"topic": "rs", "reset": "latest",
                                 "partiton": 0})
        self.assertEqual(st, 400, data)
        self.assertIn("unknown field 'partiton'", data["error"])

        st, _, data = f.request("POST", "/groups/g/offsets",
                                {"topic": "rs", "reset": mid["timestamp"]})
        self.assertEqual(st, 200, data)
        want = {("rs", 0): mid["offset"]}
        got = offsets(leader, "g")
        self.assertEqual(got[("rs", 0)], want[("rs", 0)])
        c.wait_until(lambda: all(offsets(n, "g") == got for n in c.all()),
                     10, "same offsets on every node")

        st, _, data = leader.request("POST", "/groups/g2/offsets",
                                     {"topic": "rs", "reset": "latest"})
        self.assertEqual(st, 200, data)
        latest = {("rs", 0): 4, ("rs", 1): 6}
        self.assertEqual(offsets(leader, "g2"), latest)
        # Records written after the reset must not move it on replay.
        for i in range(5):
            leader.produce("rs", "later", partition=i % 2)
        c.wait_until(lambda: all(offsets(n, "g2") == latest
                                 for n in c.all()), 10, "g2 everywhere")
        down = c.followers()[0]
        c.kill9(down.node_id)  # replays the log, groups included
        c.start(down.node_id)
        c.wait_leader(15)
        c.wait_identical("rs", 20, nodes=c.all())
        self.assertEqual(offsets(down, "g2"), latest)
        self.assertEqual(offsets(down, "g"), got)

        # A relayed produce of JSON under another type: the hint too.
        st, h, data = f.request(
            "POST", "/topics/rs/messages", b'{"a": 1}',
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 201, data)
        self.assertEqual(h.get("X-Forwarded-By"), str(f.node_id))
        self.assertIn("stored as a raw value", h.get("Warning", ""))

        # Fetch by time on a follower: its own data, same answer.
        for n in c.all():
            st, data = n.fetch("rs", 0, timestamp=mid["timestamp"], limit=1)
            self.assertEqual(data["messages"][0]["offset"], mid["offset"])


if __name__ == "__main__":
    ch.main()
