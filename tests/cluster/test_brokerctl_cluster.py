"""brokerctl against a real 3-node cluster: cluster members/transfer/add/
remove through a follower, and --url failover when the first node listed
is killed -9. BROKERCTL_BIN is set by tests/CMakeLists.txt."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

CTL = os.environ.get("BROKERCTL_BIN",
                     os.path.join(os.path.dirname(ch.harness.BROKER_BIN), "brokerctl"))


class BrokerctlCluster(ch.ClusterTestCase):

    def ctl(self, urls, *args, expect=0, timeout=90):
        p = subprocess.run([CTL, "--url", ",".join(urls)] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, expect, (args, p.stdout, p.stderr))
        return p

    def test_membership_and_transfer(self):
        c = self.new_cluster(3)
        leader = c.leader()
        c.wait_members_known()
        f = c.followers()[0]
        out = self.ctl([f.base], "cluster", "members").stdout
        for n in c.all():
            self.assertIn(n.http_address, out)
        target = c.followers()[1]
        out = self.ctl([f.base], "cluster", "transfer", str(target.node_id)).stdout
        self.assertIn("leader: %d" % target.node_id, out)
        c.wait_until(lambda: c.agreed_leader() == target.node_id, 15, "transfer")
        n4 = c.add_node(4)
        d = json.loads(self.ctl([f.base], "--json", "cluster", "add", "4",
                                n4.raft_address, n4.http_address).stdout)
        self.assertIn(4, [m["node_id"] for m in d["members"]])
        c.wait_until(lambda: 4 in [m["node_id"] for m in leader.members()], 30,
                     "node 4 known")
        self.ctl([f.base], "cluster", "remove", "4")
        c.wait_until(lambda: 4 not in [m["node_id"] for m in f.members()], 30,
                     "node 4 removed")
        p = self.ctl([f.base], "cluster", "remove", "9", expect=1)
        self.assertIn("unknown_member", p.stderr)

    def test_failover_past_killed_node(self):
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("fo", partitions=1)
        first = c.followers()[0]
        urls = [first.base] + [n.base for n in c.all() if n is not first]
        self.ctl(urls, "produce", "fo", "before")
        first.kill9()
        self.ctl(urls, "produce", "fo", "after")
        # The node that answers may be a follower that applies "after" a
        # moment later: follow until both are there (bounded by timeout).
        out = self.ctl(urls, "consume", "fo", "-f", "-n", "2", "--format", "value",
                       timeout=30).stdout
        self.assertEqual(out.split(), ["before", "after"])
        p = self.ctl([first.base], "topics", "list", expect=3)
        self.assertIn(first.base, p.stderr)


if __name__ == "__main__":
    ch.main()
