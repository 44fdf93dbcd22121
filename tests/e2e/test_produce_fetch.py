"""Produce and fetch against the real broker (API.md "Messages")."""
import base64
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ProduceFetch(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared({"default_partitions": 2,
                                  "segment_size": 4096})

    # ---- produce ----

    def test_single_produce_answer(self):
        """A single record gets 201 with topic, partition, offset and a millisecond timestamp."""
        before = int(time.time() * 1000)
        st, h, data = self.b.post("/topics/single/messages",
                                  {"value": "v", "partition": 1})
        after = int(time.time() * 1000)
        self.assertEqual(st, 201, data)
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        self.assertEqual(data["topic"], "single")
        self.assertEqual(data["partition"], 1)
        self.assertEqual(data["offset"], 0)
        self.assertIsInstance(data["timestamp"], int)
        self.assertGreaterEqual(data["timestamp"], before - 1000)
        self.assertLessEqual(data["timestamp"], after + 1000)
        d2 = self.b.produce("single", "w", partition=1)
        self.assertEqual(d2["offset"], 1)

    def test_batch_offsets_in_request_order(self):
        """A batch answers 201 with one {partition, offset} per record in request order."""
        self.b.create_topic("batch", partitions=3)
        recs = [{"value": i, "partition": i % 3} for i in range(9)]
        data = self.b.produce_batch("batch", recs)
        self.assertEqual(data["topic"], "batch")
        self.assertEqual(data["offsets"],
                         [{"partition": i % 3, "offset": i // 3}
                          for i in range(9)])
        # The values landed at those offsets.
        for p in range(3):
            msgs = self.b.fetch_all("batch", p)
            self.assertEqual([m["value"] for m in msgs], [p, p + 3, p + 6])
            self.assertEqual([m["offset"] for m in msgs], [0, 1, 2])

    def test_json_values_round_trip(self):
        """Every JSON value type (object, array, string, number, true, false, null) comes back equal."""
        values = [{"a": {"b": [1, 2, {"c": None}]}, "s": "\u00e9\u4e2d"},
                  [1, "two", 3.5, None, True, []], "plain string",
                  "", 0, -17, 12345678901234, 3.25, -0.5e-3, True, False,
                  None, {}, [], "quote \" backslash \\ newline \n tab \t"]
        self.b.create_topic("jsonvals", partitions=1)
        for v in values:
            self.b.produce("jsonvals", v)
        msgs = self.b.fetch_all("jsonvals", 0)
        self.assertEqual(len(msgs), len(values))
        for m, v in zip(msgs, values):
            self.assertEqual(m["value"], v)
            self.assertEqual(type(m["value"]), type(v))
            self.assertNotIn("value_encoding", m)

    def test_keys_and_headers_round_trip(self):
        """Key and headers come back exactly; absent ones are null and {}."""
        self.b.create_topic("kh", partitions=1)
        self.b.produce("kh", 1, key="user-\u00e9", headers={"h1": "v1",
                                                           "trace": ""})
        self.b.produce("kh", 2)
        self.b.produce("kh", 3, key="", headers={})
        msgs = self.b.fetch_all("kh", 0)
        self.assertEqual(msgs[0]["key"], "user-\u00e9")
        self.assertEqual(msgs[0]["headers"], {"h1": "v1", "trace": ""})
        self.assertIsNone(msgs[1]["key"])
        self.assertEqual(msgs[1]["headers"], {})
        self.assertEqual(msgs[2]["key"], "")
        self.assertEqual(msgs[2]["headers"], {})
        for m in msgs:
            self.assertEqual(set(m) - {"value_encoding", "key_encoding"},
                             {"offset", "timestamp", "key", "value",
                              "headers"})

    def test_explicit_partition(self):
        """An explicit partition is honoured for keyed and key-less records."""
        self.b.create_topic("explicit", partitions=4)
        for p in (3, 0, 2, 3):
            d = self.b.produce("explicit", p, key="same", partition=p)
            self.assertEqual(d["partition"], p)
        self.assertEqual([m["value"] for m in self.b.fetch_all("explicit", 3)],
                         [3, 3])

    def test_same_key_same_partition(self):
        """Records with the same key go to the same partition across requests."""
        self.b.create_topic("keyed", partitions=8)
        seen = {}
        for i in range(40):
            k = "key-%d" % (i % 10)
            p = self.b.produce("keyed", i, key=k)["partition"]
            self.assertEqual(seen.setdefault(k, p), p, k)
        batch = self.b.produce_batch("keyed", [{"key": k, "value": 0}
                                               for k in sorted(seen)])
        self.assertEqual([o["partition"] for o in batch["offsets"]],
                         [seen[k] for k in sorted(seen)])
        self.assertGreater(len(set(seen.values())), 1,
                           "10 keys should not all hash to one partition")

    def test_keyless_spread(self):
        """Key-less records without a partition are spread over all partitions."""
        self.b.create_topic("spread", partitions=3)
        parts = [self.b.produce("spread", i)["partition"] for i in range(30)]
        self.assertEqual(set(parts), {0, 1, 2})
        for p in range(3):
            self.assertGreaterEqual(parts.count(p), 5, parts)

    # ---- raw bodies ----

    def test_raw_text_plain(self):
        """A text/plain body is one message whose value is the UTF-8 text as a string."""
        text = "h\u00e9llo {not json} \u4e2d"
        d = self.b.produce_raw("rawtext", text.encode(), "text/plain; charset=utf-8",
                               partition=0)
        self.assertEqual(d["partition"], 0)
        _, data = self.b.fetch("rawtext", 0, offset=d["offset"], limit=1)
        m = data["messages"][0]
        self.assertEqual(m["value"], text)
        self.assertNotIn("value_encoding", m)
        self.assertIsNone(m["key"])

    def test_raw_octet_stream_base64(self):
        """Non-UTF-8 octet-stream bytes come back base64 with value_encoding base64."""
        payload = bytes(range(256)) + b"\xff\xfe\x00\x80"
        d = self.b.produce_raw("rawbin", payload, "application/octet-stream",
                               key="bin-key", partition=1)
        self.assertEqual(d["partition"], 1)
        _, data = self.b.fetch("rawbin", 1, offset=d["offset"])
        m = data["messages"][0]
        self.assertEqual(m["value_encoding"], "base64")
        self.assertEqual(base64.b64decode(m["value"]), payload)
        self.assertEqual(m["key"], "bin-key")

    def test_raw_query_key_and_partition(self):
        """?key= hashes like a JSON key and ?partition= picks the partition for raw bodies."""
        self.b.create_topic("rawq", partitions=4)
        pj = self.b.produce("rawq", "j", key="order-7")["partition"]
        for _ in range(3):
            d = self.b.produce_raw("rawq", b"x", "text/plain", key="order-7")
            self.assertEqual(d["partition"], pj)
        d = self.b.produce_raw("rawq", b"y", "application/octet-stream",
                               partition=(pj + 1) % 4)
        self.assertEqual(d["partition"], (pj + 1) % 4)
        msgs = self.b.fetch_all("rawq", pj)
        self.assertEqual([m["key"] for m in msgs], ["order-7"] * 4)
        self.assertEqual([m["value"] for m in msgs], ["j", "x", "x", "x"])
        # A percent-encoded key is decoded; bytes that are not UTF-8 come
        # back base64 like values.
        d = self.b.produce_raw("rawq", b"", "text/plain", key="\u00e9 x",
                               partition=0)
        d2 = self.b.post("/topics/rawq/messages?partition=0&key=%FF%01", b"",
                         headers={"Content-Type": "text/plain"})[2]
        _, data = self.b.fetch("rawq", 0, offset=d["offset"])
        m1, m2 = data["messages"][:2]
        self.assertEqual((m1["key"], m1["value"]), ("\u00e9 x", ""))
        self.assertEqual(m2["offset"], d2["offset"])
        self.assertEqual(m2["key_encoding"], "base64")
        self.assertEqual(base64.b64decode(m2["key"]), b"\xff\x01")
        st, _, data = self.b.post("/topics/rawq/messages?partition=9", b"z",
                                  headers={"Content-Type": "text/plain"})
        self.assertEqual((st, data["code"]), (404, "unknown_partition"))

    # ---- fetch ----

    def fill(self, topic, n, partitions=1):
        self.b.create_topic(topic, partitions=partitions)
        self.b.produce_batch(topic, [{"value": i, "partition": 0}
                                     for i in range(n)])

    def test_fetch_offset_and_limit(self):
        """offset=N&limit=M returns M messages from N, with next_offset N+M."""
        self.fill("fol", 20)
        _, d = self.b.fetch("fol", 0, offset=5, limit=4)
        self.assertEqual([m["offset"] for m in d["messages"]], [5, 6, 7, 8])
        self.assertEqual([m["value"] for m in d["messages"]], [5, 6, 7, 8])
        self.assertEqual(d["next_offset"], 9)
        self.assertEqual(d["high_watermark"], 20)
        self.assertEqual(d["log_start_offset"], 0)
        self.assertEqual(d["topic"], "fol")
        self.assertEqual(d["partition"], 0)
        _, d = self.b.fetch("fol", 0, offset=18, limit=100)
        self.assertEqual([m["offset"] for m in d["messages"]], [18, 19])
        self.assertEqual(d["next_offset"], 20)

    def test_fetch_default_limit_is_100(self):
        """Without limit at most 100 messages come back, from earliest by default."""
        self.fill("fdef", 150)
        _, d = self.b.fetch("fdef", 0)
        self.assertEqual(len(d["messages"]), 100)
        self.assertEqual(d["messages"][0]["offset"], 0)
        self.assertEqual(d["next_offset"], 100)

    def test_fetch_earliest_latest(self):
        """offset=earliest starts at log_start_offset; latest at the high watermark (empty)."""
        self.fill("fel", 5)
        _, d = self.b.fetch("fel", 0, offset="earliest", limit=2)
        self.assertEqual([m["offset"] for m in d["messages"]], [0, 1])
        _, d = self.b.fetch("fel", 0, offset="latest")
        self.assertEqual(d["messages"], [])
        self.assertEqual(d["next_offset"], 5)
        self.assertEqual(d["high_watermark"], 5)

    def test_fetch_at_high_watermark_is_empty(self):
        """offset equal to high_watermark gives 200 with no messages and next_offset unchanged."""
        self.fill("fhw", 3)
        _, d = self.b.fetch("fhw", 0, offset=3)
        self.assertEqual(d["messages"], [])
        self.assertEqual(d["next_offset"], 3)
        self.assertEqual(d["high_watermark"], 3)

    def test_fetch_empty_partition(self):
        """A new partition has hw 0, log_start_offset 0 and fetch returns nothing."""
        self.b.create_topic("fempty", partitions=1)
        _, d = self.b.fetch("fempty", 0)
        self.assertEqual((d["messages"], d["next_offset"], d["high_watermark"],
                          d["log_start_offset"]), ([], 0, 0, 0))

    def test_fetch_max_bytes(self):
        """max_bytes caps the answer but at least one message is returned."""
        self.b.create_topic("fmb", partitions=1)
        big = "x" * 1000
        self.b.produce_batch("fmb", [{"value": big} for _ in range(10)])
        _, d = self.b.fetch("fmb", 0, max_bytes=1)
        self.assertEqual(len(d["messages"]), 1)
        self.assertEqual(d["next_offset"], 1)
        _, d = self.b.fetch("fmb", 0, offset=2, max_bytes=3500)
        self.assertGreaterEqual(len(d["messages"]), 1)
        self.assertLessEqual(len(d["messages"]), 3)
        self.assertEqual(d["messages"][0]["offset"], 2)
        self.assertEqual(d["next_offset"], 2 + len(d["messages"]))
        _, d = self.b.fetch("fmb", 0, max_bytes=10 ** 6)
        self.assertEqual(len(d["messages"]), 10)

    def test_fetch_above_hw_416(self):
        """An offset above the high watermark is 416 offset_out_of_range with lso and hw."""
        self.fill("f416", 4)
        data = self.assertError(
            self.b.get("/topics/f416/partitions/0/messages?offset=5"),
            416, "offset_out_of_range")
        self.assertEqual(data["log_start_offset"], 0)
        self.assertEqual(data["high_watermark"], 4)
        data = self.assertError(
            self.b.get("/topics/f416/partitions/0/messages?offset=99999999"),
            416, "offset_out_of_range")
        self.assertEqual(data["high_watermark"], 4)

    def test_fetch_unknown_topic_and_partition(self):
        """Unknown topic is 404 unknown_topic; unknown partition is 404 unknown_partition."""
        self.assertError(self.b.get("/topics/nosuch/partitions/0/messages"),
                         404, "unknown_topic")
        self.b.create_topic("twoparts", partitions=2)
        self.assertError(self.b.get("/topics/twoparts/partitions/2/messages"),
                         404, "unknown_partition")
        self.assertError(self.b.post("/topics/twoparts/messages",
                                     {"value": 1, "partition": 2}),
                         404, "unknown_partition")
        # No auto-create by a fetch.
        self.assertEqual(self.b.get("/topics/nosuch")[0], 404)

    def test_auto_create_default_partitions(self):
        """Producing to an unknown topic creates it with default_partitions partitions."""
        d = self.b.produce("autotopic", {"x": 1})
        self.assertEqual(d["topic"], "autotopic")
        info = self.b.topic_info("autotopic")
        self.assertEqual(len(info["partitions"]), 2)
        self.assertEqual([p["partition"] for p in info["partitions"]], [0, 1])
        st, _, data = self.b.get("/topics")
        self.assertIn({"name": "autotopic", "partitions": 2}, data["topics"])

    def test_x_broker_node_header(self):
        """Every response, success or error, carries X-Broker-Node with this node's id."""
        _, _, status = self.b.get("/cluster/status")
        node = str(status["node_id"])
        self.b.create_topic("hdr", partitions=1)
        reqs = [("GET", "/healthz", None), ("GET", "/topics", None),
                ("POST", "/topics/hdr/messages", {"value": 1}),
                ("GET", "/topics/hdr/partitions/0/messages", None),
                ("GET", "/topics/hdr/partitions/0/messages?offset=9", None),
                ("GET", "/topics/nosuch/partitions/0/messages", None),
                ("POST", "/topics/hdr/messages", {"nope": 1}),
                ("GET", "/no/such/route", None), ("PUT", "/topics", None),
                ("GET", "/metrics", None), ("GET", "/", None),
                ("DELETE", "/groups/nosuchgroup", None)]
        for method, path, body in reqs:
            st, h, _ = self.b.request(method, path, body, check_header=False)
            self.assertEqual(h.get("X-Broker-Node"), node,
                             "%s %s -> %d" % (method, path, st))


class ProduceFetchOwnBroker(harness.BrokerTestCase):
    def test_auto_create_disabled(self):
        """With auto_create_topics false, producing to an unknown topic is 404 unknown_topic."""
        b = self.new_broker({"auto_create_topics": False})
        self.assertError(b.post("/topics/nope/messages", {"value": 1}),
                         404, "unknown_topic")
        self.assertError(b.post("/topics/nope/messages", b"raw",
                                headers={"Content-Type": "text/plain"}),
                         404, "unknown_topic")
        self.assertEqual(b.get("/topics/nope")[0], 404)
        self.assertFalse(os.path.exists(b.topic_dir("nope")))
        b.create_topic("yes", partitions=1)
        self.assertEqual(b.produce("yes", 1)["offset"], 0)

    def test_key_partition_stable_across_restart(self):
        """The key -> partition mapping is the same after a restart."""
        b = self.new_broker()
        b.create_topic("stable", partitions=7)
        keys = ["k%d" % i for i in range(20)]
        before = {k: b.produce("stable", 0, key=k)["partition"] for k in keys}
        b.restart()
        after = {k: b.produce("stable", 1, key=k)["partition"] for k in keys}
        self.assertEqual(before, after)


if __name__ == "__main__":
    harness.main()
