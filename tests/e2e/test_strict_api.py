"""Strict and honest API (issue 11; API.md v2 "Strict bodies"): unknown
body fields are refused, durations take days, commits past the high
watermark are 416, group offsets reset, fetch by time, a JSON-looking body
sent with another Content-Type gets a warning, and bad request lines get
the right error."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class StrictBodies(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_shared({"default_partitions": 1})

    @property
    def b(self):
        return type(self).shared

    def assertUnknown(self, resp, field):
        data = self.assertError(resp, 400, "bad_request")
        self.assertIn("unknown field '%s'" % field, data["error"])

    def test_create_topic_typo(self):
        # The case: this made a 1-partition topic.
        self.assertUnknown(self.b.post("/topics", {"name": "events",
                                                   "partiton": 3}),
                           "partiton")
        st, _, _ = self.b.get("/topics/events")
        self.assertEqual(st, 404)

    def test_produce_single_and_batch(self):
        self.assertUnknown(self.b.post("/topics/sb/messages",
                                       {"value": 1, "partiton": 0}),
                           "partiton")
        self.assertUnknown(self.b.post("/topics/sb/messages",
                                       {"records": [{"value": 1},
                                                    {"value": 2, "kye": "a"}]}),
                           "records[1].kye")
        # A batch takes only "records": a "key" beside it would be ignored.
        self.assertUnknown(self.b.post("/topics/sb/messages",
                                       {"records": [{"value": 1}], "key": "a"}),
                           "key")
        # Not implemented here, so refused rather than silently ignored.
        self.assertUnknown(self.b.post("/topics/sb/messages",
                                       {"value": 1, "delay_ms": 5}),
                           "delay_ms")
        # Nothing of the refused requests was stored.
        st, _, _ = self.b.get("/topics/sb")
        self.assertEqual(st, 404)
        # Field names inside the value and the headers are the user's.
        self.b.produce("sb", {"anything": 1}, headers={"x-any": "v"})

    def test_nul_in_field_name(self):
        # Never taken for "partition" (its C-string prefix): jansson
        # refuses such keys, and the field check compares whole keys.
        st, _, data = self.b.post("/topics/sb2/messages",
                                  b'{"value": 1, "partition\\u0000x": 0}',
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(st, 400, data)
        self.assertEqual(data["code"], "bad_request")
        self.assertEqual(self.b.get("/topics/sb2")[0], 404)

    def test_commit_and_claim(self):
        self.b.produce("cc", 1)
        self.assertUnknown(self.b.post("/groups/g/offsets",
                                       {"topic": "cc", "partition": 0,
                                        "offset": 0, "ofset": 1}),
                           "ofset")
        self.assertUnknown(self.b.post("/groups/g/offsets",
                                       {"offsets": [{"topic": "cc",
                                                     "partition": 0,
                                                     "offset": 1,
                                                     "group": "x"}]}),
                           "offsets[0].group")
        self.assertUnknown(self.b.post("/groups/g/offsets",
                                       {"offsets": [{"topic": "cc",
                                                     "partition": 0,
                                                     "offset": 1}],
                                        "topic": "cc"}),
                           "topic")
        self.assertUnknown(self.b.post("/groups/g/topics/cc/claim",
                                       {"limit": 1, "visibility_timeout_ms": 5}),
                           "visibility_timeout_ms")
        st, _, data = self.b.get("/groups/g/offsets")
        self.assertEqual(data["offsets"], [])

    def test_cluster_bodies(self):
        self.assertUnknown(self.b.post("/cluster/members",
                                       {"node_id": 4,
                                        "raft_address": "127.0.0.1:8004",
                                        "http_addr": "127.0.0.1:9004"}),
                           "http_addr")
        self.assertUnknown(self.b.post("/cluster/leader/transfer",
                                       {"node": 2}), "node")
        self.assertUnknown(self.b.post("/internal/members",
                                       {"node_id": 2, "http_address": "a:1",
                                        "extra": True}), "extra")

    def test_days_in_bodies(self):
        st, data = self.b.create_topic("week", retention_time="7d")
        st, _, info = self.b.get("/topics/week")
        self.assertEqual(info["retention_ms"], 7 * 86400000)
        self.b.create_topic("dayhalf", retention_time="1d12h")
        st, _, info = self.b.get("/topics/dayhalf")
        self.assertEqual(info["retention_ms"], 36 * 3600000)
        self.assertError(self.b.post("/topics", {"name": "bad",
                                                 "retention_time": "7D"}),
                         400, "bad_request")


class CommitBounds(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        b = cls.start_shared({"default_partitions": 1})
        b.create_topic("o", partitions=2)
        for i in range(5):
            b.produce("o", i, partition=0)
        for i in range(3):
            b.produce("o", i, partition=1)

    @property
    def b(self):
        return type(self).shared

    def offsets(self, group):
        st, _, data = self.b.get("/groups/%s/offsets" % group)
        self.assertEqual(st, 200, data)
        return {(o["topic"], o["partition"]): o["offset"]
                for o in data["offsets"]}

    def test_commit_past_high_watermark(self):
        ok = self.b.post("/groups/hw/offsets",
                         {"topic": "o", "partition": 0, "offset": 5})
        self.assertEqual(ok[0], 200, ok[2])
        data = self.assertError(
            self.b.post("/groups/hw/offsets",
                        {"topic": "o", "partition": 0, "offset": 6}),
            416, "offset_out_of_range")
        self.assertEqual(data["high_watermark"], 5)
        self.assertEqual(data["log_start_offset"], 0)
        # All or nothing: the valid first entry is not applied either.
        data = self.assertError(
            self.b.post("/groups/hw/offsets",
                        {"offsets": [{"topic": "o", "partition": 0,
                                      "offset": 1},
                                     {"topic": "o", "partition": 1,
                                      "offset": 4}]}),
            416, "offset_out_of_range")
        self.assertEqual(data["high_watermark"], 3)
        self.assertEqual(self.offsets("hw"), {("o", 0): 5})

    def test_reset(self):
        self.b.post("/groups/rs/offsets", {"topic": "o", "partition": 0,
                                           "offset": 2})
        st, _, data = self.b.post("/groups/rs/offsets",
                                  {"topic": "o", "reset": "latest"})
        self.assertEqual(st, 200, data)
        self.assertEqual(self.offsets("rs"), {("o", 0): 5, ("o", 1): 3})
        st, _, data = self.b.post("/groups/rs/offsets",
                                  {"topic": "o", "reset": "earliest"})
        self.assertEqual(st, 200, data)
        self.assertEqual(self.offsets("rs"), {("o", 0): 0, ("o", 1): 0})
        # A time before everything is the log start, after everything the
        # end.
        self.b.post("/groups/rs/offsets", {"topic": "o", "reset": 0})
        self.assertEqual(self.offsets("rs"), {("o", 0): 0, ("o", 1): 0})
        self.b.post("/groups/rs/offsets",
                    {"topic": "o", "reset": int(time.time() * 1000) + 3600000})
        self.assertEqual(self.offsets("rs"), {("o", 0): 5, ("o", 1): 3})

    def test_reset_by_time(self):
        self.b.create_topic("tt", partitions=1)
        for i in range(3):
            self.b.produce("tt", i)
        time.sleep(0.02)
        mid = self.b.produce("tt", 3)
        self.b.produce("tt", 4)
        st, _, data = self.b.post("/groups/rt/offsets",
                                  {"topic": "tt", "reset": mid["timestamp"]})
        self.assertEqual(st, 200, data)
        self.assertEqual(self.offsets("rt"), {("tt", 0): mid["offset"]})

    def test_reset_bad(self):
        for body in ({"topic": "o", "reset": "newest"},
                     {"topic": "o", "reset": -1},
                     {"topic": "o", "reset": True},
                     {"topic": "o", "reset": "latest", "partition": 0},
                     {"topic": "o", "reset": "latest", "offset": 1}):
            self.assertError(self.b.post("/groups/rb/offsets", body), 400,
                             "bad_request")
        self.assertError(self.b.post("/groups/rb/offsets",
                                     {"topic": "nope", "reset": "latest"}),
                         404, "unknown_topic")


class FetchByTime(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        b = cls.start_shared({"default_partitions": 1,
                              "segment_size": 4096})
        cls.ts = []
        for i in range(60):
            d = b.produce("ft", {"i": i, "pad": "x" * 100})
            cls.ts.append((d["offset"], d["timestamp"]))
            if i % 20 == 19:
                time.sleep(0.01)

    @property
    def b(self):
        return type(self).shared

    def test_by_time(self):
        info = self.b.topic_info("ft")
        self.assertGreater(info["partitions"][0]["segments"], 2)
        for off, ts in self.ts[::7] + [self.ts[20], self.ts[40]]:
            want = min(o for o, t in self.ts if t >= ts)
            st, data = self.b.fetch("ft", timestamp=ts, limit=1)
            self.assertEqual(data["messages"][0]["offset"], want)
            self.assertGreaterEqual(data["messages"][0]["timestamp"], ts)
        st, data = self.b.fetch("ft", timestamp=0, limit=2)
        self.assertEqual([m["offset"] for m in data["messages"]], [0, 1])

    def test_past_the_end(self):
        st, data = self.b.fetch("ft", timestamp=self.ts[-1][1] + 1)
        self.assertEqual(data["messages"], [])
        self.assertEqual(data["next_offset"], data["high_watermark"])
        self.assertEqual(data["high_watermark"], 60)

    def test_bad(self):
        p = "/topics/ft/partitions/0/messages"
        self.assertError(self.b.get(p + "?timestamp=1&offset=0"), 400,
                         "bad_request")
        for bad in ("x", "-1", "1.5", ""):
            self.assertError(self.b.get(p + "?timestamp=" + bad), 400,
                             "bad_request")


class ContentTypeHint(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_shared({"default_partitions": 1,
                          "server": {"log_level": "debug"}})

    @property
    def b(self):
        return type(self).shared

    def test_json_as_form(self):
        # What plain `curl -d '{"a":1}'` sends.
        st, h, data = self.b.post(
            "/topics/ct/messages", b'{"a":1}',
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 201, data)
        warn = h.get("Warning", "")
        self.assertTrue(warn.startswith("199 - \""), warn)
        self.assertIn("application/x-www-form-urlencoded", warn)
        # The contract stays: the value is the raw text, as a string.
        st, f = self.b.fetch("ct")
        self.assertEqual(f["messages"][0]["value"], '{"a":1}')
        self.assertTrue(harness.wait_until(
            lambda: "Content-Type" in self.b.log() and "raw value" in
            self.b.log(), 5), self.b.log()[-2000:])

    def test_json_after_whitespace(self):
        st, h, data = self.b.post("/topics/ct3/messages", b' \n {"a": [1]}',
                                  headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 201, data)
        self.assertIn("text/plain", h.get("Warning", ""))

    def test_no_warning_otherwise(self):
        for body, ct in ((b"hello", "text/plain"),
                         (b'[1,2]', "text/plain"),
                         (b'{"a":', "text/plain")):
            st, h, data = self.b.post("/topics/ct2/messages", body,
                                      headers={"Content-Type": ct})
            self.assertEqual(st, 201, data)
            self.assertIsNone(h.get("Warning"), body)
        st, h, data = self.b.post("/topics/ct2/messages", {"value": 1})
        self.assertEqual(st, 201, data)
        self.assertIsNone(h.get("Warning"))


class RequestLine(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_shared()

    @property
    def b(self):
        return type(self).shared

    def raw(self, line):
        out, _ = self.b.raw_exchange(line + b"\r\nHost: x\r\n"
                                     b"Connection: close\r\n\r\n")
        return harness.parse_raw_response(out)

    def test_non_utf8_path(self):
        st, h, body = self.raw(b"GET /nothing\xff HTTP/1.1")
        self.assertIn(st, (400, 404), body)
        self.assertNotIn(b"out_of_memory", body)
        st, h, body = self.raw(b"GET /topics/a\xffb HTTP/1.1")
        self.assertEqual(st, 400, body)
        self.assertIn(b"invalid_topic", body)
        # The broker still serves.
        st, _, _ = self.b.get("/healthz")
        self.assertEqual(st, 200)

    def test_non_utf8_method(self):
        st, h, body = self.raw(b"G\xffT /healthz HTTP/1.1")
        self.assertIn(st, (400, 405), body)
        self.assertNotIn(b"out_of_memory", body)


def free_privileged_port():
    """A port below 1024 nobody listens on (we are root), or None."""
    import socket
    for port in list(range(81, 90)) + list(range(900, 1000)):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


class ListenErrors(harness.BrokerTestCase):
    def run_config(self, port, prefix=()):
        import json
        import shutil
        import subprocess
        import tempfile
        tmp = tempfile.mkdtemp(prefix="e2e-listen-")
        try:
            os.chmod(tmp, 0o777)
            cfg = os.path.join(tmp, "c.json")
            with open(cfg, "w") as f:
                json.dump({"data_dir": os.path.join(tmp, "data"),
                           "server": {"host": "127.0.0.1", "port": port}}, f)
            os.chmod(cfg, 0o644)
            p = subprocess.run(list(prefix) + [harness.BROKER_BIN,
                                               "-config=" + cfg],
                               capture_output=True, text=True, timeout=20,
                               cwd=tmp, stdin=subprocess.DEVNULL)
            return p.returncode, p.stdout + p.stderr
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_port_in_use(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            rc, out = self.run_config(s.getsockname()[1])
        finally:
            s.close()
        self.assertNotEqual(rc, 0, out)
        self.assertIn("Address already in use", out)

    @unittest.skipUnless(hasattr(os, "geteuid") and os.geteuid() == 0 and
                         os.path.exists("/usr/bin/setpriv"),
                         "needs root and setpriv to run as nobody")
    def test_privileged_port_as_nobody(self):
        port = free_privileged_port()
        if port is None:
            self.skipTest("no free port below 1024")
        rc, out = self.run_config(port, ("/usr/bin/setpriv", "--reuid=65534",
                                         "--regid=65534", "--clear-groups"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("Permission denied", out)
        self.assertIn("CAP_NET_BIND_SERVICE", out)
        self.assertNotIn("in use", out)


if __name__ == "__main__":
    harness.main()
