"""Repair from peers (issue 7): a damaged range in a closed segment of one
node is detected, reported (status degraded), re-fetched from a healthy
replica, swapped in, and the node's records end up identical to the
others'; no fetch ever returns a bad record meanwhile."""
import glob
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

CFG = {"segment_size": 8192}
PAD = "x" * 60
N = 400


def log_files(node, topic, partition=0):
    return sorted(glob.glob(os.path.join(node.topic_dir(topic, partition),
                                         "*.log")))


def records_of(path):
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 18 <= len(data):
        length = struct.unpack_from("<I", data, pos)[0]
        out.append((struct.unpack_from("<Q", data, pos + 10)[0], pos,
                    4 + length))
        pos += 4 + length
    return out


def flip_record(path, index):
    """Flip a byte in the value of record @index of a .log; its offset."""
    off, pos, size = records_of(path)[index]
    with open(path, "r+b") as f:
        f.seek(pos + size - 10)
        c = f.read(1)
        f.seek(pos + size - 10)
        f.write(bytes([c[0] ^ 0x5A]))
    return off


def metric(node, name):
    st, _, body = node.request("GET", "/metrics")
    if st != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


class Checker(threading.Thread):
    """Fetches every record of t/0 from @node in a loop; a 200 must hold
    exactly the records written (value n == offset)."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node, self.stop, self.bad, self.ok, self.corrupt = node, False, [], 0, 0

    def run(self):
        while not self.stop:
            try:
                st, _, data = self.node.request(
                    "GET", "/topics/t/partitions/0/messages?offset=0&"
                    "limit=1000", timeout=3)
            except Exception:
                time.sleep(0.05)
                continue
            if st == 200:
                self.ok += 1
                for m in data["messages"]:
                    if m["offset"] < N and m["value"]["n"] != m["offset"]:
                        self.bad.append(m)
            elif st == 500 and data.get("code") == "corrupt":
                self.corrupt += 1
            time.sleep(0.02)


class Repair(ch.ClusterTestCase):

    def fill(self, c):
        leader = c.leader()
        leader.create_topic("t", partitions=1)
        for i in range(0, N, 10):
            leader.produce_batch("t", [{"value": {"n": j, "pad": PAD}}
                                       for j in range(i, i + 10)])
        return c.wait_identical("t", 30, nodes=c.all())

    def expect_repaired(self, c, node, off, before):
        """@node saw damage at @off, repaired it, and agrees with all."""
        ok = ch.poll(lambda: (metric(node, "broker_storage_repaired_ranges_total")
                              or 0) >= 1, 30)
        self.assertTrue(ok, "node %d never repaired\n%s\n%s"
                        % (node.node_id, c.summary(), node.log()[-3000:]))
        self.assertGreaterEqual(
            metric(node, "broker_storage_corrupt_records_total"), 1)
        st = node.status()
        self.assertEqual((st["storage"], st["storage_damage"]), ("ok", []))
        after = c.wait_identical("t", 30, nodes=c.all())
        if before is not None:
            self.assertEqual(after, before)
        self.assertEqual([r[3]["n"] for r in after[0][:N]], list(range(N)))
        self.assertIn("repaired t/0 offsets [%d, %d)" % (off, off + 1),
                      node.log())

    def test_follower_repairs_from_a_peer(self):
        """A stopped follower's old segment gets a flipped byte; after its restart the damage is reported, repaired from a peer, and its records equal the leader's."""
        c = self.new_cluster(3, CFG)
        before = self.fill(c)
        f = c.followers()[0]
        f.stop()
        logs = log_files(f, "t")
        self.assertGreater(len(logs), 3)
        off = flip_record(logs[0], 40)
        chk = Checker(f)
        f.start()
        chk.start()
        seen = ch.poll(lambda: (f.status() or {}).get("storage") == "degraded"
                       and f.status(), 10, interval=0.02)
        try:
            if seen:
                self.assertIn({"topic": "t", "partition": 0, "from": off,
                               "to": off + 1}, seen["storage_damage"])
            self.expect_repaired(c, f, off, before)
        finally:
            chk.stop = True
            chk.join(5)
        self.assertTrue(seen, "status never showed the damage")
        self.assertEqual(chk.bad, [])
        self.assertGreater(chk.ok, 0)
        # The file itself is whole again: a restart finds nothing.
        f.restart()
        ch.poll(lambda: (metric(f, "broker_storage_scrub_passes_total") or 0)
                >= 1, 10)
        self.assertEqual(f.status()["storage"], "ok")
        self.assertEqual(metric(f, "broker_storage_corrupt_records_total"), 0)

    def test_lost_segment_refetched(self):
        """A follower that lost a middle segment file starts, reports the gap, and re-fetches it from a peer."""
        c = self.new_cluster(3, CFG)
        before = self.fill(c)
        f = c.followers()[0]
        f.stop()
        logs = log_files(f, "t")
        gone_from = records_of(logs[2])[0][0]
        gone_to = records_of(logs[3])[0][0]
        os.remove(logs[2])
        os.remove(logs[2][:-4] + ".index")
        f.start()
        ok = ch.poll(lambda: (metric(f, "broker_storage_repaired_ranges_total")
                              or 0) >= 1, 30)
        self.assertTrue(ok, c.summary())
        self.assertIn("repaired t/0 offsets [%d, %d)" % (gone_from, gone_to),
                      f.log())
        self.assertEqual(f.status()["storage"], "ok")
        self.assertEqual(c.wait_identical("t", 30, nodes=c.all()), before)
        self.assertTrue(os.path.exists(logs[2]))
        f.restart()
        self.assertEqual(f.status()["storage"], "ok")
        self.assertEqual(c.wait_identical("t", 30, nodes=c.all()), before)

    def test_active_segment_repaired_in_place(self):
        """A flipped byte in the active segment of a running follower is found by the scrubber and rewritten in place from a peer."""
        c = self.new_cluster(3, dict(CFG, scrub_interval="1s"))
        before = self.fill(c)
        f = c.followers()[0]
        passes = metric(f, "broker_storage_scrub_passes_total")
        ch.poll(lambda: metric(f, "broker_storage_scrub_passes_total")
                > passes, 10)
        active = log_files(f, "t")[-1]
        self.assertGreater(len(records_of(active)), 3)
        off = flip_record(active, 2)
        self.expect_repaired(c, f, off, before)
        self.assertEqual(log_files(f, "t")[-1], active)

    def test_leader_repairs_from_a_follower(self):
        """The leader's old segment is damaged while it runs: the scrubber finds it and it repairs from a follower."""
        c = self.new_cluster(3, dict(CFG, scrub_interval="1s"))
        before = self.fill(c)
        leader = c.leader()
        passes = metric(leader, "broker_storage_scrub_passes_total")
        ch.poll(lambda: metric(leader, "broker_storage_scrub_passes_total")
                > passes, 10)
        chk = Checker(leader)
        chk.start()
        # Appends to the same partition go on while its old segment is
        # swapped.
        acked, stop = [], threading.Event()

        def writer():
            i = N
            while not stop.is_set() and i < N + 2000:
                d = ch.write_with_retry(c, "t", {"n": i, "pad": PAD},
                                        node=leader)
                acked.append((d["offset"], i))
                i += 1
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        try:
            off = flip_record(log_files(leader, "t")[1], 5)
            self.expect_repaired(c, leader, off, None)
        finally:
            stop.set()
            w.join(30)
            chk.stop = True
            chk.join(5)
        self.assertEqual(chk.bad, [])
        self.assertIs(c.leader(), leader)
        self.assertGreater(len(acked), 0)
        after = c.wait_identical("t", 30, nodes=c.all())
        self.assertEqual(after[0][:N], before[0])
        got = {r[0]: r[3]["n"] for r in after[0]}
        for off_, n in acked:
            self.assertEqual(got[off_], n)


if __name__ == "__main__":
    ch.main()
