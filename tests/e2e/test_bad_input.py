"""Hostile and broken input: bodies, names, query arguments, sizes, routes,
and broken configuration files (API.md "Names and limits", CONFIG.md)."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAX_MESSAGE = 1024
MAX_REQUEST = 65536

BAD_TOPIC_SEGMENTS = ["..", ".", "a%2Fb", "a" * 250, "%00", "a%00b",
                      "%2e%2e", "%2E%2E", "%2e", ".%2e", "a%20b", "%C3%A9",
                      "a%2F..%2F..%2Fescape", "..%2F..%2Fescape", "%",
                      "a%zz", "a:b", "a*b"]
BAD_NAMES = ["..", ".", "a/b", "a" * 250, "", "a b", "\u00e9",
             "../../escape", "a\\b", "a\nb"]
# JSON strings holding U+0000 (valid JSON): see test_nul_* below.
NUL_NAMES = ["\x00", "a\x00b", "ok\x00/../x"]


def tree(root):
    """Every path under `root` (relative), to spot files created by a
    request."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


class BadInput(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        b = cls.start_shared({"max_message_size": MAX_MESSAGE,
                              "max_request_bytes": MAX_REQUEST,
                              "default_partitions": 1})
        # Data that every test of this class must leave intact.
        b.create_topic("keep", partitions=2)
        cls.kept = []
        for i in range(20):
            d = b.produce("keep", {"i": i}, key="k%d" % i)
            cls.kept.append((d["partition"], d["offset"], i))

    def post_json_text(self, path, text):
        return self.b.post(path, text.encode() if isinstance(text, str)
                           else text,
                           headers={"Content-Type": "application/json"})

    @property
    def b(self):
        return type(self).shared

    # ---- bodies ----

    def test_malformed_json(self):
        """Malformed or truncated JSON is 400 bad_request."""
        for text in ['{"value": 1', "{", "not json", '{"value": 1}}',
                     '{"value": }', "{'value': 1}", '{"value": 1,}', "",
                     '{"value": "\xff"}'.encode("latin-1"), "\x00",
                     '{"value": 1} trailing', '{"value": NaN}']:
            self.assertError(self.post_json_text("/topics/keep/messages",
                                                 text), 400, "bad_request")
            self.assertError(self.post_json_text("/topics", text),
                             400, "bad_request")
            self.assertError(self.post_json_text("/groups/g/offsets", text),
                             400, "bad_request")
            self.assertError(self.post_json_text(
                "/groups/g/topics/keep/claim", text if text else "x"),
                400, "bad_request")

    def test_json_not_an_object(self):
        """A JSON body that is not an object is 400 bad_request."""
        for text in ["[1]", '"str"', "5", "null", "true", '[{"value": 1}]']:
            self.assertError(self.post_json_text("/topics/keep/messages",
                                                 text), 400, "bad_request")
            self.assertError(self.post_json_text("/topics", text),
                             400, "bad_request")
            self.assertError(self.post_json_text("/groups/g/offsets", text),
                             400, "bad_request")

    def test_wrong_field_types(self):
        """Missing value and wrongly typed key/headers/partition/records are 400 naming the field."""
        cases = [({}, "value"), ({"key": "k"}, "value"),
                 ({"value": 1, "key": 5}, "key"),
                 ({"value": 1, "key": {"a": 1}}, "key"),
                 ({"value": 1, "key": True}, "key"),
                 ({"value": 1, "headers": {"h": 1}}, "headers"),
                 ({"value": 1, "headers": {"h": None}}, "headers"),
                 ({"value": 1, "headers": {"h": ["x"]}}, "headers"),
                 ({"value": 1, "headers": ["h"]}, "headers"),
                 ({"value": 1, "headers": "h"}, "headers"),
                 ({"value": 1, "partition": -1}, "partition"),
                 ({"value": 1, "partition": "0"}, "partition"),
                 ({"value": 1, "partition": 0.5}, "partition"),
                 ({"value": 1, "partition": True}, "partition"),
                 ({"records": {"value": 1}}, "records"),
                 ({"records": "x"}, "records"),
                 ({"records": []}, "records"),
                 ({"records": [{"value": 1}, {"key": "k"}]}, "value"),
                 ({"records": [{"value": 1}, 7]}, "records"),
                 ({"records": [{"value": 1, "key": 3}]}, "key")]
        for body, field in cases:
            data = self.assertError(self.b.post("/topics/keep/messages",
                                                body), 400, "bad_request")
            self.assertIn(field, data["error"], body)
        self.assertHwUnchanged()

    def test_value_null_is_valid(self):
        """"value": null is a valid value and comes back as null."""
        d = self.b.produce("nullval", None)
        _, data = self.b.fetch("nullval", d["partition"], offset=d["offset"])
        self.assertIsNone(data["messages"][0]["value"])

    # ---- names ----

    def name_paths(self, seg):
        """Every route with a topic (or group) name in the path."""
        return [("POST", "/topics/%s/messages" % seg, {"value": 1}),
                ("GET", "/topics/%s/partitions/0/messages" % seg, None),
                ("GET", "/topics/%s" % seg, None),
                ("DELETE", "/topics/%s" % seg, None),
                ("POST", "/groups/g/topics/%s/claim" % seg, {"limit": 1})]

    def group_paths(self, seg):
        return [("POST", "/groups/%s/offsets" % seg,
                 {"topic": "keep", "partition": 0, "offset": 1}),
                ("GET", "/groups/%s/offsets" % seg, None),
                ("DELETE", "/groups/%s" % seg, None),
                ("POST", "/groups/%s/topics/keep/claim" % seg, {"limit": 1})]

    def test_invalid_topic_names_in_path(self):
        """Bad topic names in a path ('..', '%2F', '%00', 250 chars...) are 400 invalid_topic and create nothing."""
        parent = os.path.dirname(self.b.data_dir)
        before = tree(parent)
        for seg in BAD_TOPIC_SEGMENTS:
            for method, path, body in self.name_paths(seg):
                self.assertError(self.b.request(method, path, body), 400,
                                 "invalid_topic")
            st, _, data = self.b.post("/topics/%s/messages" % seg, b"raw",
                                      headers={"Content-Type": "text/plain"})
            self.assertEqual((st, data["code"]), (400, "invalid_topic"), seg)
        self.assertEqual(tree(parent) - before, set())
        self.assertEqual(before - tree(parent), set())

    def test_invalid_topic_names_in_body(self):
        """Bad names in POST /topics (and in a commit) are rejected with 400 and create nothing."""
        parent = os.path.dirname(self.b.data_dir)
        before = tree(parent)
        for name in BAD_NAMES:
            self.assertError(self.b.post("/topics", {"name": name,
                                                     "partitions": 1}),
                             400, "invalid_topic")
            st, _, data = self.b.post("/groups/g/offsets", {
                "topic": name, "partition": 0, "offset": 1})
            self.assertEqual(st, 400, (name, data))
            self.assertIn(data["code"], ("bad_request", "invalid_topic"))
        self.assertError(self.b.get("/groups/g/offsets?topic=.."), 400,
                         "invalid_topic")
        self.assertEqual(tree(parent) - before, set())

    def test_nul_in_body_name_is_invalid_topic(self):
        """A topic name holding U+0000 in a JSON body is 400 invalid_topic (not malformed JSON)."""
        parent = os.path.dirname(self.b.data_dir)
        before = tree(parent)
        try:
            for name in NUL_NAMES:
                self.assertError(self.b.post("/topics", {"name": name,
                                                         "partitions": 1}),
                                 400, "invalid_topic")
        finally:
            self.assertEqual(tree(parent) - before, set())

    def test_nul_in_json_value_round_trips(self):
        """A JSON string value holding U+0000 is accepted and comes back unchanged."""
        st, _, d = self.b.post("/topics/nulvalue/messages",
                               {"value": "a\x00b", "key": "k\x00",
                                "headers": {"h": "\x00"}})
        self.assertEqual(st, 201, d)
        _, data = self.b.fetch("nulvalue", d["partition"], offset=d["offset"])
        m = data["messages"][0]
        self.assertEqual((m["value"], m["key"], m["headers"]),
                         ("a\x00b", "k\x00", {"h": "\x00"}))

    def test_invalid_group_names(self):
        """Bad group names in a path are 400 invalid_group and create nothing."""
        parent = os.path.dirname(self.b.data_dir)
        before = tree(parent)
        groups_file = os.path.join(self.b.data_dir, "groups.json")
        groups_before = (open(groups_file).read()
                         if os.path.exists(groups_file) else None)
        for seg in BAD_TOPIC_SEGMENTS:
            for method, path, body in self.group_paths(seg):
                self.assertError(self.b.request(method, path, body), 400,
                                 "invalid_group")
        self.assertEqual(tree(parent) - before, set())
        groups_after = (open(groups_file).read()
                        if os.path.exists(groups_file) else None)
        self.assertEqual(groups_before, groups_after)

    def test_longest_valid_name(self):
        """A 249-character name is valid for topics and groups."""
        name = "n" * 249
        self.b.create_topic(name, partitions=1)
        self.assertEqual(self.b.produce(name, 1)["offset"], 0)
        st, _, _ = self.b.post("/groups/%s/offsets" % name,
                               {"topic": name, "partition": 0, "offset": 1})
        self.assertEqual(st, 200)
        st, _, _ = self.b.delete("/groups/%s" % name)
        self.assertEqual(st, 204)
        self.assertEqual(self.b.delete("/topics/%s" % name)[0], 204)

    # ---- query arguments ----

    def test_value_and_records_together(self):
        """A body with both 'value' and 'records' is ambiguous: 400 bad_request, nothing written."""
        self.assertError(self.b.post("/topics/keep/messages",
                                     {"value": 1, "records": [{"value": 2}]}),
                         400, "bad_request")
        self.assertHwUnchanged()

    def test_commit_with_bad_topic_name(self):
        """A commit naming an invalid topic is 400 invalid_topic (names follow one rule everywhere)."""
        self.assertError(self.b.post("/groups/g1/offsets",
                                     {"topic": "a/b", "partition": 0,
                                      "offset": 1}),
                         400, "invalid_topic")

    def test_bad_fetch_arguments(self):
        """Negative or non-numeric offset, limit 0/10001, wait_ms 30001, bad max_bytes are 400 bad_request."""
        base = "/topics/keep/partitions/0/messages?"
        for qs in ["offset=-1", "offset=abc", "offset=1.5", "offset=",
                   "offset=1e3", "offset=%2B1", "offset=%201",
                   "offset=earliestx", "offset=0x10",
                   "limit=0", "limit=10001", "limit=-1", "limit=abc",
                   "limit=", "wait_ms=30001", "wait_ms=-1", "wait_ms=x",
                   "max_bytes=abc", "max_bytes=-1"]:
            data = self.assertError(self.b.get(base + qs), 400,
                                    "bad_request")
            self.assertIn(qs.split("=")[0], data["error"], qs)
        self.assertEqual(self.b.get(base + "limit=10000")[0], 200)
        self.assertEqual(self.b.get(base + "limit=1&wait_ms=0")[0], 200)
        # An offset past 2^63 or 2^64 is still an offset: above the high
        # watermark, so 416 as API.md says, not a malformed argument.
        for off in ["9223372036854775808", "99999999999999999999999"]:
            self.assertError(self.b.get(base + "offset=" + off), 416,
                             "offset_out_of_range")

    def test_bad_partition_in_path(self):
        """A non-numeric or negative partition in the path is 400 bad_request."""
        for p in ["x", "-1", "1.0", "0x1", "%20", "1a", "%2B1"]:
            self.assertError(
                self.b.get("/topics/keep/partitions/%s/messages" % p),
                400, "bad_request")

    def test_bad_raw_query_arguments(self):
        """A raw produce with ?partition= not a number or an undecodable ?key= is 400 bad_request."""
        for p in ["x", "-1", "1.5", "", "%00"]:
            data = self.assertError(self.b.post(
                "/topics/keep/messages?partition=%s" % p, b"v",
                headers={"Content-Type": "text/plain"}), 400, "bad_request")
            self.assertIn("partition", data["error"])
        for k in ["a%00b", "%00", "a%zz", "a%4"]:
            data = self.assertError(self.b.post(
                "/topics/keep/messages?partition=0&key=%s" % k, b"v",
                headers={"Content-Type": "text/plain"}), 400, "bad_request")
            self.assertIn("key", data["error"])
        self.assertHwUnchanged()

    def test_bad_claim_arguments(self):
        """A claim with limit 0/10001, wait_ms 30001 or wrong types is 400 bad_request."""
        for body in [{"limit": 0}, {"limit": 10001}, {"limit": "5"},
                     {"wait_ms": 30001}, {"wait_ms": -1}, {"limit": -1}]:
            self.assertError(self.b.post("/groups/cg/topics/keep/claim",
                                         body), 400, "bad_request")
        self.assertNotIn("cg", self.b.get("/groups")[2]["groups"])

    # ---- sizes ----

    def test_message_too_large(self):
        """A message over max_message_size is 413 message_too_large and not written."""
        self.b.create_topic("big", partitions=1)
        cases = [{"value": "x" * (MAX_MESSAGE + 10)},
                 {"value": 1, "key": "k" * (MAX_MESSAGE + 10)},
                 {"value": 1, "headers": {"h": "v" * (MAX_MESSAGE + 10)}},
                 {"value": "x" * 400, "key": "k" * 400,
                  "headers": {"h": "v" * 400}}]
        for body in cases:
            self.assertError(self.b.post("/topics/big/messages", body), 413,
                             "message_too_large")
        self.assertError(self.b.post(
            "/topics/big/messages", b"r" * (MAX_MESSAGE + 1),
            headers={"Content-Type": "application/octet-stream"}),
            413, "message_too_large")
        self.assertEqual(self.b.topic_info("big")["partitions"][0]
                         ["high_watermark"], 0)
        # Exactly max_message_size bytes of raw value is accepted.
        d = self.b.produce_raw("big", b"r" * MAX_MESSAGE,
                               "application/octet-stream")
        self.assertEqual(d["offset"], 0)

    def test_batch_with_one_oversized_record(self):
        """A batch with one oversized record is refused whole: 413 and hw unchanged."""
        self.b.create_topic("bigbatch", partitions=2)
        self.b.produce_batch("bigbatch", [{"value": i, "partition": i % 2}
                                          for i in range(4)])
        hw = [p["high_watermark"] for p in
              self.b.topic_info("bigbatch")["partitions"]]
        self.assertEqual(hw, [2, 2])
        recs = [{"value": "a", "partition": 0}, {"value": "b", "partition": 1},
                {"value": "x" * (MAX_MESSAGE * 2), "partition": 0},
                {"value": "c", "partition": 1}]
        self.assertError(self.b.post("/topics/bigbatch/messages",
                                     {"records": recs}),
                         413, "message_too_large")
        self.assertEqual([p["high_watermark"] for p in
                          self.b.topic_info("bigbatch")["partitions"]], hw)
        self.assertEqual([m["value"] for m in
                          self.b.fetch_all("bigbatch", 0)], [0, 2])
        # Not even the topic is created for a refused batch.
        self.assertError(self.b.post("/topics/bigbatchnew/messages",
                                     {"records": recs}),
                         413, "message_too_large")
        self.assertEqual(self.b.get("/topics/bigbatchnew")[0], 404)

    def test_request_too_large_content_length(self):
        """A declared body over max_request_bytes gets 413 request_too_large before the body is sent."""
        head = ("POST /topics/keep/messages HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % (MAX_REQUEST + 1))
        t0 = time.monotonic()
        buf, _ = self.b.raw_exchange(head.encode(), read_timeout=5)
        elapsed = time.monotonic() - t0
        self.assertTrue(buf, "no answer to an oversized Content-Length")
        st, hdrs, body = harness.parse_raw_response(buf)
        self.assertEqual(st, 413, buf)
        self.assertEqual(json.loads(body)["code"], "request_too_large")
        self.assertIn("x-broker-node", hdrs)
        self.assertLess(elapsed, 2.0)
        # A huge declared length too (no allocation of it).
        head = head.replace("%d" % (MAX_REQUEST + 1), "%d" % (1 << 50))
        buf, _ = self.b.raw_exchange(head.encode(), read_timeout=5)
        self.assertEqual(harness.parse_raw_response(buf)[0], 413, buf)
        self.assertHwUnchanged()

    def test_request_too_large_with_body(self):
        """A full body over max_request_bytes is answered 413 or the connection closed, promptly."""
        body = json.dumps({"value": "x" * (MAX_REQUEST * 2)}).encode()
        head = ("POST /topics/keep/messages HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        s = socket.create_connection((self.b.host, self.b.port), timeout=5)
        try:
            try:
                s.sendall(head + body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            buf, closed = harness.read_answer(s, 5)
        finally:
            s.close()
        if buf:
            st, _, rbody = harness.parse_raw_response(buf)
            self.assertEqual(st, 413)
            self.assertEqual(json.loads(rbody)["code"], "request_too_large")
        else:
            self.assertTrue(closed, "connection left hanging")
        self.assertHwUnchanged()

    def test_chunked_over_limit(self):
        """A chunked body over max_request_bytes gets 413 request_too_large or a closed connection."""
        head = (b"POST /topics/keep/messages HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"4000\r\n" + b"c" * 0x4000 + b"\r\n"
        s = socket.create_connection((self.b.host, self.b.port), timeout=5)
        t0 = time.monotonic()
        try:
            try:
                s.sendall(head)
                for _ in range(4 * MAX_REQUEST // 0x4000):
                    s.sendall(chunk)
                s.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            buf, closed = harness.read_answer(s, 5)
        finally:
            s.close()
        self.assertLess(time.monotonic() - t0, 5.0)
        if buf:
            st, _, rbody = harness.parse_raw_response(buf)
            self.assertEqual(st, 413, buf[:300])
            self.assertEqual(json.loads(rbody)["code"], "request_too_large")
        else:
            self.assertTrue(closed, "connection left hanging")
        self.assertHwUnchanged()

    def test_chunked_far_over_limit_is_cut_off(self):
        """A chunked body that never ends is not read forever: past twice max_request_bytes the connection is dropped."""
        head = (b"POST /topics/keep/messages HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"4000\r\n" + b"c" * 0x4000 + b"\r\n"
        s = socket.create_connection((self.b.host, self.b.port), timeout=5)
        cut = False
        try:
            s.sendall(head)
            for _ in range(300 * MAX_REQUEST // 0x4000):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            cut = True
        finally:
            s.close()
        self.assertTrue(cut, "the broker kept reading a body 300x the limit")
        self.assertHwUnchanged()

    def test_chunked_under_limit(self):
        """A small chunked body is a normal produce."""
        payload = b"chunky-value"
        head = (b"POST /topics/chunked/messages?partition=0 HTTP/1.1\r\n"
                b"Host: x\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        body = (b"%x\r\n" % 5) + payload[:5] + b"\r\n" + \
               (b"%x\r\n" % 7) + payload[5:] + b"\r\n0\r\n\r\n"
        buf, _ = self.b.raw_exchange(head + body)
        st, _, rbody = harness.parse_raw_response(buf)
        self.assertEqual(st, 201, buf)
        _, data = self.b.fetch("chunked", 0)
        self.assertEqual(data["messages"][0]["value"], "chunky-value")

    # ---- routes ----

    def test_unknown_route_404(self):
        """An unknown path is 404 not_found with a JSON error body."""
        for method, path in [("GET", "/nope"), ("GET", "/topics/a/b/c"),
                             ("POST", "/topics/a/partitions/0/messages/x"),
                             ("GET", "/groups/g/unknown"),
                             ("GET", "/clusterx/status"),
                             ("GET", "//topics")]:
            st, h, data = self.b.request(method, path)
            self.assertEqual(st, 404, (method, path))
            self.assertTrue(h["Content-Type"].startswith("application/json"))
            self.assertEqual(data["code"], "not_found")
            self.assertTrue(data["error"])

    def test_wrong_method_405(self):
        """A known path with the wrong method is 405 method_not_allowed with a JSON error body."""
        for method, path in [("PUT", "/topics"), ("DELETE", "/healthz"),
                             ("POST", "/metrics"), ("PATCH", "/topics/keep"),
                             ("GET", "/topics/keep/messages"),
                             ("DELETE", "/topics/keep/partitions/0/messages"),
                             ("PUT", "/groups/g/offsets"),
                             ("GET", "/groups/g/topics/keep/claim"),
                             ("POST", "/cluster/status")]:
            st, h, data = self.b.request(method, path)
            self.assertEqual(st, 405, (method, path, data))
            self.assertEqual(data["code"], "method_not_allowed")
            self.assertTrue(data["error"])
        self.assertHwUnchanged()

    # ---- afterwards ----

    def assertHwUnchanged(self):
        info = self.b.topic_info("keep")
        total = sum(p["high_watermark"] for p in info["partitions"])
        self.assertEqual(total, len(self.kept))

    def test_zz_still_serving_and_data_intact(self):
        """After all the bad input the broker serves and the earlier data is intact."""
        self.assertEqual(self.b.get("/healthz")[0], 200)
        got = {}
        for p in range(2):
            for m in self.b.fetch_all("keep", p):
                got[(p, m["offset"])] = (m["value"], m["key"])
        self.assertEqual(got, {(p, o): ({"i": i}, "k%d" % i)
                               for p, o, i in self.kept})
        d = self.b.produce("keep", "after", partition=0)
        self.assertEqual(d["offset"],
                         sum(1 for p, _, _ in self.kept if p == 0))


class ConfigErrors(harness.BrokerTestCase):
    def write(self, text):
        b = self.new_broker(start=False)
        with open(b.config_path, "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return b

    def valid_config(self, b, **over):
        cfg = b.config()
        cfg["server"]["port"] = harness.free_port()
        cfg.update(over)
        return cfg

    def run_config(self, b):
        return harness.run_broker_cli(["-config=" + b.config_path],
                                      timeout=10, cwd=b.tmp)

    def test_invalid_json_file(self):
        """A config file that is not valid JSON: exit 2 and stderr names the file."""
        b = self.write('{"data_dir": "x", ')
        r = self.run_config(b)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b.config_path, r.stderr)

    def test_missing_file(self):
        """A config file that does not exist: exit 2 and stderr names it."""
        b = self.new_broker(start=False)
        r = harness.run_broker_cli(["-config=" + b.config_path + ".missing"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("config.json.missing", r.stderr)

    def test_wrong_type(self):
        """A field of the wrong type: exit 2 and stderr names the field."""
        for over, field in [({"server": {"port": "abc"}}, "server.port"),
                            ({"server": {"port": 70000}}, "server.port"),
                            ({"segment_size": "big"}, "segment_size"),
                            ({"auto_create_topics": "yes"},
                             "auto_create_topics"),
                            ({"default_partitions": 1.5},
                             "default_partitions"),
                            ({"data_dir": 5}, "data_dir"),
                            ({"server": "x"}, "server")]:
            b = self.new_broker(start=False)
            b.overrides = over
            cfg = b.config()
            with open(b.config_path, "w") as f:
                json.dump(cfg, f)
            r = self.run_config(b)
            self.assertEqual(r.returncode, 2, (over, r.stderr))
            self.assertIn(field, r.stderr, over)
            self.assertFalse(os.path.exists(b.data_dir), over)

    def test_bad_duration(self):
        """A bad duration: exit 2 and stderr names the field."""
        for field, bad in [("retention_time", "1x"),
                           ("retention_time", "24"),
                           ("cleanup_interval", "soon"),
                           ("flush_interval", 5)]:
            b = self.new_broker(start=False)
            b.overrides = {field: bad}
            with open(b.config_path, "w") as f:
                json.dump(b.config(), f)
            r = self.run_config(b)
            self.assertEqual(r.returncode, 2, (field, bad, r.stderr))
            self.assertIn(field, r.stderr)

    def test_data_dir_not_writable(self):
        """A data_dir under a regular file: non-zero exit with a message naming data_dir."""
        b = self.new_broker(start=False)
        blocker = os.path.join(b.tmp, "regular-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        cfg = self.valid_config(b, data_dir=os.path.join(blocker, "data"))
        del cfg["server"]["log_file"]  # the error goes to stderr
        with open(b.config_path, "w") as f:
            json.dump(cfg, f)
        r = self.run_config(b)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("data_dir", r.stderr)
        self.assertIn(blocker, r.stderr)

    def test_version_and_help(self):
        """--version and -h exit 0 and print something useful."""
        r = harness.run_broker_cli(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broker", r.stdout)
        for flag in ("-h", "--help"):
            r = harness.run_broker_cli([flag])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("config", r.stdout + r.stderr)

    def test_unknown_argument(self):
        """An unknown command-line argument is refused with exit 2."""
        r = harness.run_broker_cli(["--no-such-flag"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)

    def test_config_space_form(self):
        """`--config FILE` (two arguments) starts the broker like -config=FILE."""
        b = self.new_broker(start=False)
        b.port = harness.free_port()
        b.write_config()
        import subprocess
        p = subprocess.Popen([harness.BROKER_BIN, "--config", b.config_path],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, cwd=b.tmp)
        try:
            ok = harness.wait_until(
                lambda: p.poll() is not None or
                self._healthy(b), 10)
            self.assertIsNone(p.poll(), "broker exited")
            self.assertTrue(ok)
            self.assertEqual(b.produce("spaceform", 1)["offset"], 0)
            self.assertTrue(os.path.isdir(b.topic_dir("spaceform")))
            p.terminate()
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            err = p.stderr.read().decode(errors="replace")
            p.stderr.close()
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, err)

    def _healthy(self, b):
        try:
            return b.get("/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def test_unknown_field_warns(self):
        """An unknown config field is logged as a warning and otherwise ignored."""
        b = self.new_broker({"compression_type": "gzip"})
        self.assertEqual(b.get("/healthz")[0], 200)
        self.assertIn("compression_type", b.log())


if __name__ == "__main__":
    harness.main()
