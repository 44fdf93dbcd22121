"""Replica comparison: a follower whose stored record silently differs
(value bytes changed and the record CRC fixed up, so no verification can
see it) is found by the leader's digest check, reported (metric, status,
log line naming node/topic/partition/offset) and repairs itself from the
leader; afterwards every node holds identical records."""
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

DIGEST = {"digest_interval": "1s", "digest_chunk": 16}
TOPIC = "dg"


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def newest_segment(node, topic, p):
    d = os.path.join(node.data_dir, "topics", topic, str(p))
    logs = sorted(f for f in os.listdir(d) if f.endswith(".log"))
    return os.path.join(d, logs[-1])


def alter_record(path, offset, old, new):
    """Replace `old` by `new` (same length) in the value of the record at
    `offset` and fix up that record's CRC32C."""
    assert len(old) == len(new)
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        pos = 0
        while pos < len(data):
            length = struct.unpack_from("<I", data, pos)[0]
            rec_off = struct.unpack_from("<Q", data, pos + 10)[0]
            end = pos + 4 + length
            if rec_off == offset:
                i = data.find(old, pos + 38, end)
                assert i > 0, "value not found in record %d" % offset
                data[i:i + len(old)] = new
                struct.pack_into("<I", data, pos + 4,
                                 crc32c(bytes(data[pos + 8:end])))
                f.seek(0)
                f.write(data)
                return
            pos = end
    raise AssertionError("offset %d not in %s" % (offset, path))


def drop_record(path, offset):
    """Remove the record at `offset` and number the later ones one lower
    (CRCs fixed up): a replica that lost one record of a command and holds
    the later ones at shifted offsets, as finding 2 of issue 7 left it."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
    out = bytearray()
    pos = 0
    while pos < len(data):
        length = struct.unpack_from("<I", data, pos)[0]
        end = pos + 4 + length
        rec = bytearray(data[pos:end])
        off = struct.unpack_from("<Q", rec, 10)[0]
        if off != offset:
            if off > offset:
                struct.pack_into("<Q", rec, 10, off - 1)
                struct.pack_into("<I", rec, 4, crc32c(bytes(rec[8:])))
            out += rec
        pos = end
    with open(path, "wb") as f:
        f.write(out)
    index = path[:-len(".log")] + ".index"
    if os.path.exists(index):
        os.unlink(index)


def divergence_metric(node):
    st, _, text = node.request("GET", "/metrics")
    if isinstance(text, bytes):
        text = text.decode()
    m = re.search(r"^broker_replica_divergence_total (\d+)", text or "", re.M)
    return int(m.group(1)) if m else None


def divergence_status(node):
    return node.status().get("divergence")


def digest(node, topic, p, **q):
    path = "/internal/digest/%s/%d" % (topic, p)
    if q:
        path += "?" + "&".join("%s=%s" % kv for kv in q.items())
    return node.request("GET", path)


def produce_all(leader, n_per_partition, tag):
    for p in range(3):
        for b in range(0, n_per_partition, 10):
            leader.produce_batch(TOPIC, [
                {"value": "%s-p%d-%04d" % (tag, p, i), "partition": p,
                 "key": "k%d" % i}
                for i in range(b, b + 10)])


class Digest(ch.ClusterTestCase):

    def test_endpoint(self):
        """Identical replicas answer identical digests; bad requests get
        clear errors; a partition that does not exist is 404."""
        c = self.new_cluster(3, DIGEST)
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 40, "e")
        c.wait_identical(TOPIC, 20, nodes=c.all())
        views = []
        for n in c.all():
            st, _, body = digest(n, TOPIC, 1)
            self.assertEqual(st, 200, body)
            self.assertEqual(body["chunk"], 16)
            self.assertEqual((body["from"], body["to"]), (0, 40))
            self.assertEqual(len(body["crcs"]), 3)  # 16 + 16 + 8
            views.append(body["crcs"])
        self.assertTrue(all(v == views[0] for v in views), views)
        st, _, body = digest(leader, TOPIC, 1, **{"from": 5, "to": 9,
                                                  "step": 1})
        self.assertEqual(st, 200, body)
        self.assertEqual((body["from"], body["to"], len(body["crcs"])),
                         (5, 9, 4))
        st, _, body = digest(leader, TOPIC, 7)
        self.assertEqual(st, 404, body)
        st, _, body = digest(leader, TOPIC, 1, step=0)
        self.assertEqual((st, body["code"]), (400, "bad_request"), body)
        st, _, body = digest(leader, TOPIC, 1, **{"from": "x"})
        self.assertEqual((st, body["code"]), (400, "bad_request"), body)
        st, _, body = leader.request("POST", "/internal/repair/%s/1" % TOPIC,
                                     {})
        self.assertEqual(st, 400, body)
        self.assertEqual(divergence_status(leader), [])

    def test_silent_divergence_is_found_and_repaired(self):
        c = self.new_cluster(3, DIGEST)
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 50, "a")
        before = c.wait_identical(TOPIC, 20, nodes=c.all())
        bad = c.followers()[0]
        c.stop(bad.node_id)
        alter_record(newest_segment(bad, TOPIC, 1), 37, b"a-p1-0037",
                     b"X-p1-0037")
        c.start(bad.node_id)
        c.wait_leader(10)
        leader = c.leader()
        want = {"node_id": bad.node_id, "topic": TOPIC, "partition": 1,
                "offset": 37}
        seen = ch.poll(lambda: want in (divergence_status(leader) or []),
                       20, interval=0.05)
        self.assertTrue(seen, "divergence not shown in /cluster/status: %r"
                        % leader.status())
        self.assertGreaterEqual(divergence_metric(leader), 1)
        line = "replica divergence: node %d differs from the leader in " \
               "%s/1 from offset 37" % (bad.node_id, TOPIC)
        self.assertIn(line, leader.log())
        c.wait_until(lambda: "repair of %s/1 confirmed" % TOPIC in bad.log(),
                     20, "repair confirmed on node %d" % bad.node_id)
        after = c.wait_identical(TOPIC, 20, nodes=c.all())
        self.assertEqual(after, before)
        # The check finds nothing more: the metric stops rising.
        c.wait_until(lambda: divergence_status(leader) == [], 10,
                     "divergence list empty")
        m1 = divergence_metric(leader)
        time.sleep(3.5)
        self.assertEqual(divergence_metric(leader), m1)
        # Apply goes on at the right offsets after the repair.
        produce_all(leader, 20, "b")
        c.wait_identical(TOPIC, 20, nodes=c.all())
        for n in c.all():
            self.assertEqual(n.high_watermarks(TOPIC), {0: 70, 1: 70, 2: 70})

    def test_divergence_in_an_older_segment(self):
        """A changed record in an old, sealed segment (a whole chunk, not
        the tail): the repair cuts into that segment, drops the later ones
        and re-fetches everything after the differing offset."""
        c = self.new_cluster(3, dict(DIGEST, segment_size=2048))
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 120, "a")
        before = c.wait_identical(TOPIC, 20, nodes=c.all())
        bad = c.followers()[0]
        c.stop(bad.node_id)
        d = os.path.join(bad.data_dir, "topics", TOPIC, "2")
        logs = sorted(f for f in os.listdir(d) if f.endswith(".log"))
        self.assertGreater(len(logs), 2, logs)
        alter_record(os.path.join(d, logs[0]), 20, b"a-p2-0020",
                     b"a-p2-0021")
        c.start(bad.node_id)
        leader = c.leader()
        line = "replica divergence: node %d differs from the leader in " \
               "%s/2 from offset 20" % (bad.node_id, TOPIC)
        c.wait_until(lambda: line in leader.log(), 20, "divergence logged")
        c.wait_until(lambda: "repair of %s/2 confirmed" % TOPIC in bad.log(),
                     20, "repair confirmed")
        self.assertEqual(c.wait_identical(TOPIC, 20, nodes=c.all()), before)
        # The repaired node restarts cleanly on what the repair wrote.
        c.stop(bad.node_id)
        c.start(bad.node_id)
        self.assertEqual(c.wait_identical(TOPIC, 20, nodes=c.all()), before)

    def test_leader_in_the_minority_is_not_copied(self):
        """When the leader's own copy is the odd one, it must not "repair"
        the healthy majority from it: it hands leadership to a member that
        agrees with the majority, whose check then repairs the old
        leader."""
        c = self.new_cluster(3, dict(DIGEST, digest_interval="3s"))
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 50, "a")
        before = c.wait_identical(TOPIC, 20, nodes=c.all())
        bad = c.followers()[0]
        c.stop_all()
        alter_record(newest_segment(bad, TOPIC, 0), 5, b"a-p0-0005",
                     b"a-p0-0006")
        c.start_all()
        leader = c.leader()
        if leader.node_id != bad.node_id:
            st, _, body = leader.request("POST", "/cluster/leader/transfer",
                                         {"node_id": bad.node_id})
            self.assertEqual(st, 200, body)
            c.wait_until(lambda: c.agreed_leader() == bad.node_id, 10,
                         "node %d leads" % bad.node_id)
        line = "this leader (node %d) differs in %s/0" % (bad.node_id, TOPIC)
        c.wait_until(lambda: line in bad.log(), 20, "minority noticed")
        c.wait_until(lambda: "repair of %s/0 confirmed" % TOPIC in bad.log(),
                     30, "old leader repaired")
        self.assertEqual(c.wait_identical(TOPIC, 20, nodes=c.all()), before)
        for n in c.all():
            if n.node_id != bad.node_id:
                self.assertNotIn("repairing %s/" % TOPIC, n.log())

    def test_repair_while_writing(self):
        """Writes go on through the repair (apply appends to the partition
        being repaired): every acknowledged record ends up once, at the
        same offset, on every node."""
        c = self.new_cluster(3, DIGEST)
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 200, "a")
        c.wait_identical(TOPIC, 20, nodes=c.all())
        bad = c.followers()[0]
        c.stop(bad.node_id)
        alter_record(newest_segment(bad, TOPIC, 1), 3, b"a-p1-0003",
                     b"a-p1-0004")
        acked = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                recs = [{"value": "w-%d-%d" % (i, p), "partition": p}
                        for p in range(3)]
                st, _, body = leader.request(
                    "POST", "/topics/%s/messages" % TOPIC, {"records": recs},
                    timeout=5)
                if st == 201:
                    acked.extend((o["partition"], o["offset"], r["value"])
                                 for o, r in zip(body["offsets"], recs))
                i += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            c.start(bad.node_id)
            c.wait_until(lambda: "repair of %s/1 confirmed" % TOPIC in
                         bad.log(), 30, "repair confirmed")
            time.sleep(0.5)
        finally:
            stop.set()
            t.join(10)
        self.assertGreater(len(acked), 10)
        view = c.wait_identical(TOPIC, 30, nodes=c.all())
        stored = {(p, m[0]): m[3] for p, msgs in view.items() for m in msgs}
        for p, off, value in acked:
            self.assertEqual(stored.get((p, off)), value, (p, off))
        for p, msgs in view.items():
            self.assertEqual([m[0] for m in msgs], list(range(len(msgs))))
        self.assertEqual(stored[(1, 3)], "a-p1-0003")

    def test_shifted_replica_is_repaired(self):
        """A follower that lost one record inside a batch and holds the
        later ones one offset lower: the repair fetches by command, not by
        this node's offsets, so it ends up with the leader's records and
        later writes land at the same offsets everywhere."""
        c = self.new_cluster(3, DIGEST)
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 50, "a")
        before = c.wait_identical(TOPIC, 20, nodes=c.all())
        bad = c.followers()[0]
        c.stop(bad.node_id)
        drop_record(newest_segment(bad, TOPIC, 0), 23)
        c.start(bad.node_id)
        c.wait_until(lambda: bad.high_watermarks(TOPIC)[0] == 49, 10,
                     "shifted follower up")
        leader = c.leader()
        line = "replica divergence: node %d differs from the leader in " \
               "%s/0 from offset 23" % (bad.node_id, TOPIC)
        c.wait_until(lambda: line in leader.log(), 20, "divergence logged")
        c.wait_until(lambda: "repair of %s/0 confirmed" % TOPIC in bad.log(),
                     20, "repair confirmed")
        self.assertEqual(c.wait_identical(TOPIC, 20, nodes=c.all()), before)
        produce_all(leader, 10, "b")
        c.wait_identical(TOPIC, 20, nodes=c.all())
        for n in c.all():
            self.assertEqual(n.high_watermarks(TOPIC), {0: 60, 1: 60, 2: 60})

    def test_no_false_divergence_with_retention_and_restarts(self):
        """Healthy replicas while retention moves log starts (by offset,
        inside segments, not at the same moment on every node) and a
        follower restarts (its digest rebuilt in the background): the
        checks compare only what both sides hold and find nothing."""
        c = self.new_cluster(3, dict(DIGEST, segment_size=2048,
                                     retention_bytes=6000,
                                     cleanup_interval="1s"))
        leader = c.leader()
        leader.create_topic(TOPIC, partitions=3)
        produce_all(leader, 150, "a")
        follower = c.followers()[0]
        c.stop(follower.node_id)
        produce_all(leader, 100, "b")
        c.start(follower.node_id)
        produce_all(leader, 100, "c")
        c.wait_identical(TOPIC, 30, nodes=c.all())
        leader = c.leader()
        checks = lambda: int(re.search(
            r"^broker_digest_checks_total (\d+)",
            leader.request("GET", "/metrics")[2].decode(), re.M).group(1))
        n0 = checks()
        c.wait_until(lambda: checks() >= n0 + 12, 20, "two more check rounds")
        starts = [p["log_start_offset"] for p in
                  leader.topic_info(TOPIC)["partitions"]]
        self.assertTrue(all(s > 0 for s in starts), starts)
        self.assertEqual(divergence_metric(leader), 0)
        self.assertEqual(divergence_status(leader), [])
        for n in c.all():
            self.assertNotIn("repairing", n.log())


if __name__ == "__main__":
    ch.main()
