"""Election counter (issue 11, item 4): `elections` in /cluster/raft and
broker_raft_elections_total count every election a node started, also the
short ones of a leadership transfer that a status poll would miss.

A node that logs "became leader (node X, term T)" won the election of
term T, which it started itself: every node's counter must be at least the
number of distinct terms it led."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

LED = re.compile(r"became leader \(node (\d+), term (\d+)\)")
TRANSFERS = 5


def terms_led(node):
    return {int(t) for n, t in LED.findall(node.log())
            if int(n) == node.node_id}


def metric(node, name):
    st, _, body = node.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


class Elections(ch.ClusterTestCase):
    def check_counts(self, nodes):
        for n in nodes:
            led = terms_led(n)
            raft = n.raft()
            self.assertGreaterEqual(
                raft["elections"], len(led),
                "node %d led terms %s but counts %d elections"
                % (n.node_id, sorted(led), raft["elections"]))
            self.assertEqual(metric(n, "broker_raft_elections_total"),
                             raft["elections"])

    def transfer_to(self, c, target):
        for _ in range(3):
            st, _, data = c.node(target).request(
                "POST", "/cluster/leader/transfer", {"node_id": target},
                timeout=30)
            if st == 200 and c.wait_leader(10) == target:
                return True
            c.wait_leader(10)
        return False

    def test_transfers_and_failover_are_counted(self):
        c = self.new_cluster(3)
        c.wait_leader(10)
        moved = 0
        for i in range(TRANSFERS):
            # Each transfer makes the target run one quick election.
            target = [n.node_id for n in c.all()
                      if n.node_id != c.wait_leader(10)][i % 2]
            moved += self.transfer_to(c, target)
        self.assertGreaterEqual(moved, TRANSFERS - 1,
                                "too few transfers succeeded")
        c.wait_until(lambda: sum(len(terms_led(n)) for n in c.all()) >=
                     moved + 1, 10, "became-leader lines logged")
        self.check_counts(c.all())
        # Each term was started by some node: together they count at least
        # every term that had a leader.
        led = set().union(*(terms_led(n) for n in c.all()))
        self.assertGreaterEqual(sum(n.raft()["elections"] for n in c.all()),
                                len(led))

        # Failover: the survivors' counts still cover the terms they led.
        old = c.wait_leader(10)
        c.kill9(old)
        survivors = [n for n in c.all() if n.node_id != old]
        new = c.wait_leader(15, among=survivors)
        self.assertNotEqual(new, old)
        c.wait_until(lambda: c.node(new).raft()["term"] in
                     terms_led(c.node(new)), 10, "new leader logged its term")
        self.check_counts(survivors)


if __name__ == "__main__":
    ch.main()
