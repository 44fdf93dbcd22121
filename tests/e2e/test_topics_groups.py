"""Topic administration and consumer groups (API.md "Topics", "Consumer
groups"), including competing claims."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Topics(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared({"max_topic_partitions": 8,
                                  "segment_size": 4096})

    def test_create_answer(self):
        """POST /topics answers 201 {"name", "partitions"} exactly."""
        st, _, data = self.b.post("/topics", {"name": "orders",
                                              "partitions": 3})
        self.assertEqual(st, 201, data)
        self.assertEqual(data, {"name": "orders", "partitions": 3})

    def test_create_default_partitions(self):
        """Without partitions the topic gets default_partitions (1)."""
        st, _, data = self.b.post("/topics", {"name": "defparts"})
        self.assertEqual((st, data), (201, {"name": "defparts",
                                            "partitions": 1}))

    def test_create_exists_409(self):
        """Creating an existing topic is 409 topic_exists and leaves it unchanged."""
        self.b.create_topic("dup", partitions=2)
        self.b.produce("dup", "keep", partition=1)
        self.assertError(self.b.post("/topics", {"name": "dup",
                                                 "partitions": 5}),
                         409, "topic_exists")
        info = self.b.topic_info("dup")
        self.assertEqual(len(info["partitions"]), 2)
        self.assertEqual(info["partitions"][1]["high_watermark"], 1)

    def test_create_partitions_out_of_range(self):
        """partitions outside 1..max_topic_partitions, or not an integer, is 400 bad_request."""
        for p in (0, -1, 9, 1000000, "3", 2.5, True, [1]):
            self.assertError(self.b.post("/topics", {"name": "badp",
                                                     "partitions": p}),
                             400, "bad_request")
        self.assertEqual(self.b.get("/topics/badp")[0], 404)
        st, _, _ = self.b.post("/topics", {"name": "maxp", "partitions": 8})
        self.assertEqual(st, 201)

    def test_create_name_missing_or_wrong_type(self):
        """A missing or non-string name is rejected with 400."""
        self.assertError(self.b.post("/topics", {"partitions": 1}),
                         400, "bad_request")
        st, _, data = self.b.post("/topics", {"name": 5})
        self.assertEqual(st, 400, data)
        self.assertIn(data["code"], ("bad_request", "invalid_topic"))

    def test_retention_time_returned(self):
        """retention_time given at creation is returned by GET /topics/{t}."""
        self.b.create_topic("ret24", partitions=1, retention_time="24h")
        self.assertEqual(self.b.topic_info("ret24")["retention_time"], "24h")
        self.b.create_topic("ret90", partitions=1, retention_time="1h30m")
        self.assertEqual(self.b.topic_info("ret90")["retention_time"],
                         "1h30m")
        self.b.create_topic("retdef", partitions=1)
        self.assertEqual(self.b.topic_info("retdef")["retention_time"],
                         "168h")

    def test_bad_retention_duration(self):
        """A bad retention_time duration is 400 bad_request and no topic is made."""
        for bad in ("abc", "24", "1x", "", 3600, ["1h"], "h1"):
            data = self.assertError(
                self.b.post("/topics", {"name": "badret", "partitions": 1,
                                        "retention_time": bad}),
                400, "bad_request")
            self.assertIn("retention_time", data["error"])
        self.assertEqual(self.b.get("/topics/badret")[0], 404)

    def test_list_topics(self):
        """GET /topics lists every topic as {name, partitions}."""
        self.b.create_topic("lista", partitions=2)
        self.b.create_topic("listb", partitions=1)
        st, _, data = self.b.get("/topics")
        self.assertEqual(st, 200)
        self.assertEqual(list(data), ["topics"])
        self.assertIn({"name": "lista", "partitions": 2}, data["topics"])
        self.assertIn({"name": "listb", "partitions": 1}, data["topics"])
        for t in data["topics"]:
            self.assertEqual(set(t), {"name", "partitions"})

    def test_describe_fields(self):
        """GET /topics/{t} gives name, per-partition offsets/size/segments and retention_time."""
        self.b.create_topic("desc", partitions=2)
        self.b.produce_batch("desc", [{"value": "x" * 100, "partition": 1}
                                      for _ in range(5)])
        info = self.b.topic_info("desc")
        self.assertEqual(info["name"], "desc")
        self.assertIn("retention_time", info)
        self.assertEqual(len(info["partitions"]), 2)
        for i, p in enumerate(info["partitions"]):
            for f in ("partition", "log_start_offset", "high_watermark",
                      "size_bytes", "segments"):
                self.assertIsInstance(p[f], int, f)
            self.assertEqual(p["partition"], i)
            self.assertEqual(p["log_start_offset"], 0)
            self.assertGreaterEqual(p["segments"], 1)
        p0, p1 = info["partitions"]
        self.assertEqual(p0["high_watermark"], 0)
        self.assertEqual(p1["high_watermark"], 5)
        self.assertGreater(p1["size_bytes"], 500)
        self.assertGreater(p1["size_bytes"], p0["size_bytes"])
        self.assertError(self.b.get("/topics/nosuchtopic"), 404,
                         "unknown_topic")

    def test_delete_topic(self):
        """DELETE answers 204, removes the directory, and the topic is 404 afterwards."""
        self.b.create_topic("gone", partitions=3)
        self.b.produce("gone", 1, partition=2)
        self.assertTrue(os.path.isdir(self.b.topic_dir("gone")))
        st, h, data = self.b.delete("/topics/gone")
        self.assertEqual(st, 204)
        self.assertEqual(data, b"")
        self.assertFalse(os.path.exists(self.b.topic_dir("gone")))
        self.assertError(self.b.get("/topics/gone"), 404, "unknown_topic")
        self.assertError(self.b.get("/topics/gone/partitions/0/messages"),
                         404, "unknown_topic")
        self.assertNotIn("gone", [t["name"] for t in
                                  self.b.get("/topics")[2]["topics"]])
        self.assertError(self.b.delete("/topics/gone"), 404, "unknown_topic")
        # The name can be used again, starting from offset 0.
        self.b.create_topic("gone", partitions=1)
        self.assertEqual(self.b.produce("gone", 2)["offset"], 0)


class TopicChurn(harness.BrokerTestCase):
    def test_delete_under_load(self):
        """Deleting a topic again and again under produce, fetch and claim load gives only API statuses and no crash."""
        b = self.new_broker({"default_partitions": 3, "segment_size": 4096})
        stop = threading.Event()
        seen, errors = {}, []
        allowed = {"produce": {201}, "fetch": {200, 404},
                   "claim": {200, 404}, "delete": {204, 404}}

        def loop(kind, fn):
            while not stop.is_set():
                try:
                    st = fn()
                except Exception as e:  # reported below
                    errors.append("%s: %r" % (kind, e))
                    return
                seen.setdefault(kind, set()).add(st)

        # Long polls with a long wait: woken by a produce or the delete,
        # not by their deadline.
        jobs = [("produce", lambda: b.post("/topics/churn/messages",
                                           {"value": "x" * 100})[0]),
                ("produce", lambda: b.post("/topics/churn/messages",
                                           {"records": [{"value": 1}] * 5})[0]),
                ("fetch", lambda: b.get("/topics/churn/partitions/1/messages"
                                        "?offset=latest&wait_ms=5000")[0]),
                ("claim", lambda: b.post("/groups/gc/topics/churn/claim",
                                         {"limit": 5})[0]),
                ("delete", lambda: (time.sleep(0.03),
                                    b.delete("/topics/churn")[0])[1])]
        threads = [threading.Thread(target=loop, args=j) for j in jobs]
        for t in threads:
            t.start()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(errors, [])
        for kind, statuses in seen.items():
            self.assertLessEqual(statuses, allowed[kind], kind)
        self.assertIn(204, seen["delete"])
        self.assertEqual(b.get("/healthz")[0], 200)
        # Whatever is left is consistent: dense offsets from 0.
        if b.get("/topics/churn")[0] == 200:
            for p in range(3):
                msgs = b.fetch_all("churn", p)
                self.assertEqual([m["offset"] for m in msgs],
                                 list(range(len(msgs))))
        b.stop()


class Groups(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared()

    def test_offsets_show_lag(self):
        """GET /groups/{g}/offsets lists offsets sorted by topic and partition, with each partition's high_watermark and the lag behind it."""
        self.assertEqual(self.b.post("/topics", {"name": "lagt",
                                                 "partitions": 3})[0], 201)
        for p in (2, 0, 1, 1):
            self.assertEqual(self.b.post("/topics/lagt/messages",
                                         {"value": p, "partition": p})[0], 201)
        st, _, d = self.b.post("/groups/lagg/offsets", {"offsets": [
            {"topic": "lagt", "partition": 2, "offset": 0},
            {"topic": "lagt", "partition": 0, "offset": 1},
            {"topic": "lagt", "partition": 1, "offset": 1}]})
        self.assertEqual(st, 200, d)
        st, _, d = self.b.get("/groups/lagg/offsets?topic=lagt")
        self.assertEqual(st, 200, d)
        self.assertEqual([(o["partition"], o["offset"], o["high_watermark"],
                           o["lag"]) for o in d["offsets"]],
                         [(0, 1, 1, 0), (1, 1, 2, 1), (2, 0, 1, 1)])

    def test_parked_claim_learns_topic_deleted(self):
        """A claim waiting on an empty topic that is then deleted answers 404 unknown_topic, as a long poll does."""
        self.assertEqual(self.b.post("/topics", {"name": "claimgone",
                                                 "partitions": 1})[0], 201)
        out = []
        t = threading.Thread(target=lambda: out.append(self.b.post(
            "/groups/cg/topics/claimgone/claim", {"wait_ms": 10000},
            timeout=20)))
        t.start()
        self.b.wait_waiters(1)
        self.assertEqual(self.b.delete("/topics/claimgone")[0], 204)
        t.join(15)
        self.assertEqual(len(out), 1)
        self.assertError(out[0], 404, "unknown_topic")

    def offsets(self, group, topic=None):
        path = "/groups/%s/offsets" % group
        if topic:
            path += "?topic=" + topic
        st, _, data = self.b.get(path)
        self.assertEqual(st, 200, data)
        self.assertEqual(data["group"], group)
        return sorted((o["topic"], o["partition"], o["offset"])
                      for o in data["offsets"])

    def test_commit_single(self):
        """A single commit answers 200 and GET returns the committed offset."""
        self.b.create_topic("gs", partitions=2)
        # Offsets up to the high watermark only (API.md v2).
        self.b.produce_batch("gs", [{"value": i, "partition": 1}
                                    for i in range(42)])
        st, _, data = self.b.post("/groups/billing/offsets",
                                  {"topic": "gs", "partition": 1,
                                   "offset": 42})
        self.assertEqual(st, 200, data)
        self.assertEqual(self.offsets("billing"), [("gs", 1, 42)])
        # A later commit replaces the offset.
        self.b.post("/groups/billing/offsets",
                    {"topic": "gs", "partition": 1, "offset": 7})
        self.assertEqual(self.offsets("billing"), [("gs", 1, 7)])

    def test_commit_batch_and_filter(self):
        """The {"offsets": [...]} form commits all; ?topic= filters the answer."""
        self.b.create_topic("gba", partitions=2)
        self.b.create_topic("gbb", partitions=1)
        for p, n in ((0, 1), (1, 2)):
            self.b.produce_batch("gba", [{"value": i, "partition": p}
                                         for i in range(n)])
        self.b.produce_batch("gbb", [{"value": i} for i in range(3)])
        st, _, data = self.b.post("/groups/batchers/offsets", {"offsets": [
            {"topic": "gba", "partition": 0, "offset": 1},
            {"topic": "gba", "partition": 1, "offset": 2},
            {"topic": "gbb", "partition": 0, "offset": 3}]})
        self.assertEqual(st, 200, data)
        self.assertEqual(self.offsets("batchers"),
                         [("gba", 0, 1), ("gba", 1, 2), ("gbb", 0, 3)])
        self.assertEqual(self.offsets("batchers", "gba"),
                         [("gba", 0, 1), ("gba", 1, 2)])
        self.assertEqual(self.offsets("batchers", "gbb"), [("gbb", 0, 3)])
        self.assertEqual(self.offsets("batchers", "other"), [])

    def test_commit_bad_bodies(self):
        """Commits with missing or wrongly typed fields are 400 bad_request and change nothing."""
        bad = [{}, {"topic": "x", "partition": 0},
               {"topic": "x", "offset": 1}, {"partition": 0, "offset": 1},
               {"topic": "x", "partition": -1, "offset": 1},
               {"topic": "x", "partition": 0, "offset": -1},
               {"topic": "x", "partition": "0", "offset": 1},
               {"topic": "x", "partition": 0, "offset": "1"},
               {"topic": 7, "partition": 0, "offset": 1},
               {"offsets": []}, {"offsets": {}},
               {"offsets": [{"topic": "x", "partition": 0, "offset": 1},
                            {"topic": "x", "partition": 0}]}]
        for body in bad:
            self.assertError(self.b.post("/groups/badcommit/offsets", body),
                             400, "bad_request")
        self.assertEqual(self.offsets("badcommit"), [])
        self.assertNotIn("badcommit", self.b.get("/groups")[2]["groups"])

    def test_list_and_delete(self):
        """GET /groups lists committed groups; DELETE is 204 then 404 unknown_group."""
        self.b.create_topic("gl", partitions=1)
        self.b.produce("gl", 1)
        for g in ("alpha", "beta"):
            self.b.post("/groups/%s/offsets" % g,
                        {"topic": "gl", "partition": 0, "offset": 1})
        st, _, data = self.b.get("/groups")
        self.assertEqual(st, 200)
        self.assertEqual(list(data), ["groups"])
        self.assertIn("alpha", data["groups"])
        self.assertIn("beta", data["groups"])
        st, _, body = self.b.delete("/groups/alpha")
        self.assertEqual((st, body), (204, b""))
        self.assertNotIn("alpha", self.b.get("/groups")[2]["groups"])
        self.assertEqual(self.offsets("alpha"), [])
        self.assertError(self.b.delete("/groups/alpha"), 404,
                         "unknown_group")
        self.assertError(self.b.delete("/groups/neverexisted"), 404,
                         "unknown_group")
        self.assertIn("beta", self.b.get("/groups")[2]["groups"])

    def claim(self, group, topic, limit=100, wait_ms=None, timeout=40):
        body = {"limit": limit}
        if wait_ms is not None:
            body["wait_ms"] = wait_ms
        st, _, data = self.b.post("/groups/%s/topics/%s/claim"
                                  % (group, topic), body, timeout=timeout)
        self.assertEqual(st, 200, data)
        return data["messages"]

    def test_claim_fields_and_offsets(self):
        """A claim returns partition/offset/key/value and advances the group's offsets."""
        self.b.create_topic("cf", partitions=2)
        self.b.produce("cf", {"n": 1}, key="k", partition=0,
                       headers={"h": "v"})
        self.b.produce("cf", "two", partition=1)
        msgs = self.claim("cfg", "cf", limit=10)
        self.assertEqual(len(msgs), 2)
        by_p = {m["partition"]: m for m in msgs}
        self.assertEqual(by_p[0]["offset"], 0)
        self.assertEqual(by_p[0]["key"], "k")
        self.assertEqual(by_p[0]["value"], {"n": 1})
        self.assertEqual(by_p[0]["headers"], {"h": "v"})
        self.assertEqual(by_p[1]["value"], "two")
        self.assertEqual(self.offsets("cfg", "cf"), [("cf", 0, 1),
                                                     ("cf", 1, 1)])
        self.assertEqual(self.claim("cfg", "cf"), [])
        # A claim respects a commit made by hand: it starts there.
        self.b.produce_batch("cf", [{"value": i, "partition": 0}
                                    for i in range(5)])
        self.b.post("/groups/cfg/offsets", {"topic": "cf", "partition": 0,
                                            "offset": 4})
        msgs = self.claim("cfg", "cf")
        self.assertEqual([(m["partition"], m["offset"]) for m in msgs],
                         [(0, 4), (0, 5)])

    def test_claim_limit(self):
        """A claim hands out at most limit messages."""
        self.b.create_topic("cl", partitions=1)
        self.b.produce_batch("cl", [{"value": i} for i in range(10)])
        msgs = self.claim("clg", "cl", limit=3)
        self.assertEqual([m["offset"] for m in msgs], [0, 1, 2])
        msgs = self.claim("clg", "cl", limit=100)
        self.assertEqual([m["offset"] for m in msgs], list(range(3, 10)))

    def test_competing_claimers(self):
        """4 threads claiming 7 at a time get disjoint sets covering all 300 messages once."""
        self.b.create_topic("comp", partitions=3)
        expected = {}
        for start in range(0, 300, 100):
            ans = self.b.produce_batch("comp", [{"value": start + i}
                                                for i in range(100)])
            for i, o in enumerate(ans["offsets"]):
                expected[(o["partition"], o["offset"])] = start + i
        self.assertEqual({p for p, _ in expected}, {0, 1, 2})
        got = [[] for _ in range(4)]
        errors = []

        def worker(i):
            try:
                while True:
                    msgs = self.claim("workers", "comp", limit=7)
                    if not msgs:
                        return
                    if len(msgs) > 7:
                        errors.append("claim returned %d > 7" % len(msgs))
                    got[i].extend((m["partition"], m["offset"], m["value"])
                                  for m in msgs)
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(i,))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        sets = [set((p, o) for p, o, _ in g) for g in got]
        for i in range(4):
            self.assertEqual(len(sets[i]), len(got[i]), "duplicate in claimer")
            for j in range(i + 1, 4):
                self.assertEqual(sets[i] & sets[j], set(),
                                 "claimers %d and %d overlap" % (i, j))
        allgot = {(p, o): v for g in got for p, o, v in g}
        self.assertEqual(sum(len(g) for g in got), 300)
        self.assertEqual(allgot, expected)
        self.assertEqual(self.offsets("workers", "comp"),
                         [("comp", p, sum(1 for q, _ in expected if q == p))
                          for p in range(3)])

    def test_claim_wait_returns_early(self):
        """A claim with wait_ms returns soon after a message is produced."""
        self.b.create_topic("cw", partitions=2)
        result = {}

        def claimer():
            t0 = time.monotonic()
            result["msgs"] = self.claim("cwg", "cw", limit=10, wait_ms=5000)
            result["elapsed"] = time.monotonic() - t0

        th = threading.Thread(target=claimer)
        th.start()
        self.assertTrue(self.b.wait_waiters(1), "the claim never parked")
        self.b.produce("cw", "wake", partition=1)
        th.join(10)
        self.assertFalse(th.is_alive())
        self.assertEqual([(m["partition"], m["offset"], m["value"])
                          for m in result["msgs"]], [(1, 0, "wake")])
        self.assertLess(result["elapsed"], 1.5)
        self.assertEqual(self.offsets("cwg", "cw")[-1], ("cw", 1, 1))

    def test_claim_wait_times_out_empty(self):
        """A claim with wait_ms and nothing to claim returns empty after about wait_ms."""
        b = self.new_broker()
        b.create_topic("cwe", partitions=1)
        t0 = time.monotonic()
        st, _, data = b.post("/groups/cweg/topics/cwe/claim",
                             {"limit": 100, "wait_ms": 600})
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 200, data)
        msgs = data["messages"]
        self.assertEqual(b.get("/healthz")[0], 200)
        b.stop()
        self.assertEqual(msgs, [])
        self.assertGreaterEqual(elapsed, 0.55)
        self.assertLess(elapsed, 2.0)

    def test_claim_unknown_topic(self):
        """Claiming from an unknown topic is 404 unknown_topic."""
        self.assertError(self.b.post("/groups/g/topics/nosuchclaim/claim",
                                     {"limit": 1}), 404, "unknown_topic")


if __name__ == "__main__":
    harness.main()
