"""Host names in Raft addresses (issue 11, item 1): a cluster configured
with "localhost:PORT" (as the original guide's configs are) starts, elects a
leader and replicates; the names are resolved once at start to numeric IPv4
(c-raft 0.15's transport takes nothing else); POST /cluster/members resolves
too, and a name that does not resolve is a 400 naming the field."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402
from harness import deep_merge  # noqa: E402


class HostNames(ch.ClusterTestCase):
    def test_localhost_members(self):
        c = self.new_cluster(3, start=False)
        c.initial_members = ["localhost:%d" % c.node(i).raft_port
                             for i in (1, 2, 3)]
        for n in c.all():
            n.overrides = deep_merge(n.overrides, {"cluster": {
                "raft_address": "localhost:%d" % n.raft_port}})
        c.start_all()
        leader = c.leader()
        addrs = sorted(m["raft_address"] for m in leader.members())
        self.assertEqual(addrs, sorted("127.0.0.1:%d" % c.node(i).raft_port
                                       for i in (1, 2, 3)))
        ch.write_with_retry(c, "names", "v")
        c.wait_identical("names", 20, nodes=c.all())

        st, _, data = c.followers()[0].request(
            "POST", "/cluster/members",
            {"node_id": 4, "raft_address": "no-such-host.invalid:8004"})
        self.assertEqual(st, 400, data)
        self.assertIn("raft_address", data["error"])
        self.assertIn("cannot resolve", data["error"])

        # A joining node given by name is added under its numeric address.
        n4 = c.add_node(4, start=False)
        n4.overrides = deep_merge(n4.overrides, {"cluster": {
            "raft_address": "localhost:%d" % n4.raft_port}})
        c.start(4)
        st, _, data = leader.request(
            "POST", "/cluster/members",
            {"node_id": 4, "raft_address": "localhost:%d" % n4.raft_port},
            timeout=60)
        self.assertEqual(st, 200, data)
        self.assertIn("127.0.0.1:%d" % n4.raft_port,
                      [m["raft_address"] for m in data["members"]])
        ch.write_with_retry(c, "names", "after-4")
        c.wait_identical("names", 30, nodes=c.all())


if __name__ == "__main__":
    ch.main()
