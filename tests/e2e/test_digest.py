"""Replica digests on a standalone broker: GET /internal/digest answers the
same checksums before and after a restart (rebuilt in the background),
follows retention, and repair orders are refused outside a cluster."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CFG = {"digest_chunk": 16}


class Digest(harness.BrokerTestCase):

    def digest(self, b, topic, p=0, **q):
        path = "/internal/digest/%s/%d" % (topic, p)
        if q:
            path += "?" + "&".join("%s=%s" % kv for kv in q.items())
        st, _, body = b.get(path)
        self.assertEqual(st, 200, body)
        return body

    def test_same_after_restart(self):
        b = self.new_broker(CFG)
        b.create_topic("t", partitions=1)
        for i in range(0, 100, 10):
            b.produce_batch("t", [{"value": "v%d" % j, "key": "k"}
                                  for j in range(i, i + 10)])
        before = self.digest(b, "t")
        self.assertEqual((before["from"], before["to"], before["chunk"]),
                         (0, 100, 16))
        self.assertEqual(len(before["crcs"]), 7)
        self.assertFalse(before["building"])
        b.restart()
        ok = harness.wait_until(
            lambda: not self.digest(b, "t")["building"], 10, interval=0.1)
        self.assertTrue(ok, "digest not rebuilt after the restart")
        self.assertEqual(self.digest(b, "t")["crcs"], before["crcs"])
        # Per-record checksums: a range of the first chunk.
        one = self.digest(b, "t", **{"from": 0, "to": 16, "step": 1})
        self.assertEqual(len(one["crcs"]), 16)
        self.assertEqual(len(set(one["crcs"])), 16)

    def test_repair_refused_standalone(self):
        b = self.new_broker(CFG)
        b.create_topic("t", partitions=1)
        st, _, body = b.post("/internal/repair/t/0", {"offset": 0})
        self.assertEqual((st, body["code"]), (503, "unavailable"), body)
        st, _, body = b.post("/internal/repair/t/0", {"offset": "x"})
        self.assertEqual((st, body["code"]), (400, "bad_request"), body)
        st, _, body = b.get("/internal/digest/nope/0")
        self.assertEqual((st, body["code"]), (404, "unknown_partition"), body)
        st, _, body = b.get("/internal/digest/t/0?step=0")
        self.assertEqual((st, body["code"]), (400, "bad_request"), body)
        self.assertEqual(b.get("/cluster/status")[2]["divergence"], [])


if __name__ == "__main__":
    harness.main()
