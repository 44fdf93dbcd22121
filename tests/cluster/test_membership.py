"""Membership changes and leadership transfer through the HTTP API: a 4th
node joins through POST /cluster/members sent to a follower (forwarded),
becomes a voter everywhere with all earlier records, and is removed again
with DELETE /cluster/members/4; POST /cluster/leader/transfer moves the
leadership to the node asked for."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402


class Membership(ch.ClusterTestCase):

    maxDiff = None

    def test_add_and_remove_fourth_node(self):
        """Node 4 (not among initial_members, its own raft address, the
        same initial_members list) is started and added with POST
        /cluster/members to a follower: 200, forwarded to the leader. It
        then appears as a voter with its raft and http address in
        /cluster/members on all four nodes, holds every record produced
        before it joined, and forwards writes itself. DELETE
        /cluster/members/4 (to a follower) -> 200 and it is gone from the
        members of the three others; it still stops with exit status 0."""
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("mem", partitions=2)
        for i in range(100):
            leader.produce("mem", "before-%d" % i, partition=i % 2)
        before = c.wait_identical("mem", 10)

        three = c.all()
        n4 = c.add_node(4)
        st4 = n4.status()
        self.assertEqual(st4["node_id"], 4)
        f = c.followers(among=three)[0]
        st, h, body = f.request("POST", "/cluster/members", {
            "node_id": 4, "raft_address": n4.raft_address,
            "http_address": n4.http_address}, timeout=60)
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f.node_id))
        self.assertEqual(h.get("X-Broker-Node"), str(leader.node_id))
        self.assertIn(4, [m["node_id"] for m in body["members"]], body)

        c.wait_members_known(ids=[1, 2, 3, 4], timeout=20)
        for n in c.all():
            m4 = [m for m in n.members() if m["node_id"] == 4][0]
            self.assertEqual(m4, {"node_id": 4,
                                  "raft_address": n4.raft_address,
                                  "http_address": n4.http_address,
                                  "role": "voter"}, "node %d" % n.node_id)
        c.wait_leader(10)
        self.assertEqual(c.wait_identical("mem", 20, nodes=c.all()), before)
        st, h, body = n4.request("POST", "/topics/mem/messages",
                                 {"value": "via-4", "partition": 0})
        self.assertEqual(st, 201, body)
        self.assertEqual(h.get("X-Forwarded-By"), "4")
        self.assertEqual(body["offset"], 50)
        c.wait_identical("mem", 20, nodes=c.all())

        lid = c.wait_leader(10)
        f = [n for n in c.all() if n.node_id not in (lid, 4)][0]
        st, h, body = f.request("DELETE", "/cluster/members/4", timeout=60)
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("X-Forwarded-By"), str(f.node_id))
        self.assertNotIn(4, [m["node_id"] for m in body["members"]], body)
        c.wait_until(lambda: all(
            sorted(m["node_id"] for m in n.members()) == [1, 2, 3]
            for n in three), 10, "node 4 gone from the members")
        c.wait_leader(10, among=three)
        c.stop(4)
        ch.write_with_retry(c, "mem", "after-removal", node=f)

    def _transfer(self, c, via, target):
        """POST /cluster/leader/transfer to `via`, once more if it fails;
        returns the list of (status, body) answers."""
        answers = []
        for _ in range(2):
            body = {"node_id": target} if target is not None else None
            st, h, data = via.request("POST", "/cluster/leader/transfer",
                                      body, timeout=30)
            answers.append((st, data, h.get("X-Broker-Node"),
                            h.get("X-Forwarded-By")))
            if st == 200:
                break
            print("\n  transfer to %s via node %d answered %d %r"
                  % (target, via.node_id, st, data), file=sys.stderr)
            c.wait_leader(10)
        return answers

    def test_leader_transfer(self):
        """POST /cluster/leader/transfer {"node_id": X} sent to follower X
        (forwarded to the leader) -> 200 and X becomes the leader on every
        node; X logs "became leader (node X, term T)" and the old leader
        "lost leadership (node L, term T')"; writes keep working. Then a
        transfer without a body sent to the leader hands leadership to some
        other voter. (c-raft 0.15 may fail a transfer: one retry.)"""
        c = self.new_cluster(3)
        old = c.leader()
        x = c.followers()[0]
        ch.write_with_retry(c, "xfer", "before")
        answers = self._transfer(c, x, x.node_id)
        st, body, node_hdr, fwd = answers[-1]
        self.assertEqual(st, 200, "transfer failed %d time(s): %r"
                         % (len(answers), answers))
        self.assertEqual(fwd, str(x.node_id))
        self.assertEqual(node_hdr, str(old.node_id))
        self.assertEqual(body["leader"]["node_id"], x.node_id, body)
        self.assertEqual(c.wait_leader(10), x.node_id)
        term = x.status()["term"]
        self.assertIn("became leader (node %d, term %d)" % (x.node_id, term),
                      x.log())
        self.assertRegex(old.log(), r"lost leadership \(node %d, term \d+\)"
                         % old.node_id)
        r = ch.write_with_retry(c, "xfer", "after", node=old)
        self.assertEqual(r["offset"], 1)

        leader = c.leader()
        # Transferring to the node that already leads is a no-op: 200.
        st, _, data = old.request("POST", "/cluster/leader/transfer",
                                  {"node_id": leader.node_id}, timeout=30)
        self.assertEqual(st, 200, data)
        self.assertEqual(data["leader"]["node_id"], leader.node_id, data)
        answers = self._transfer(c, leader, None)
        st, body, _, _ = answers[-1]
        self.assertEqual(st, 200, "transfer failed %d time(s): %r"
                         % (len(answers), answers))
        new = c.wait_leader(10)
        self.assertNotEqual(new, leader.node_id)
        ch.write_with_retry(c, "xfer", "after-2")
        contents = c.wait_identical("xfer", 10, nodes=c.all())
        self.assertEqual([r[3] for r in contents[0]],
                         ["before", "after", "after-2"])


if __name__ == "__main__":
    ch.main()
