"""brokerctl (tools/brokerctl) driven as a user would, against a real
standalone broker: produce forms, consume formats and follow mode, groups,
topics, cluster views, queue, failover and exit codes.
BROKERCTL_BIN is set by tests/CMakeLists.txt."""
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

CTL = os.environ.get("BROKERCTL_BIN",
                     os.path.join(os.path.dirname(harness.BROKER_BIN), "brokerctl"))


class BrokerctlTest(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared()

    def ctl(self, *args, stdin=None, url=None, timeout=20, expect=0):
        env = dict(os.environ)
        env.pop("BROKER_URL", None)
        p = subprocess.run([CTL, "--url", url or self.b.base] + list(args),
                           input=stdin, capture_output=True, text=True,
                           timeout=timeout, env=env)
        if expect is not None:
            self.assertEqual(p.returncode, expect, (args, p.stdout, p.stderr))
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr, args)
        return p

    def values(self, topic, partition=0):
        return [m["value"] for m in self.b.fetch_all(topic, partition)]

    def test_produce_args_stdin_file_batch(self):
        self.b.create_topic("pa", partitions=1)
        out = self.ctl("produce", "pa", "one", "two").stdout
        self.assertEqual(out, "partition 0 offset 0\npartition 0 offset 1\n")
        self.ctl("produce", "pa", stdin="three\nfour\n")
        self.ctl("produce", "pa", "-", stdin="five\n")
        out = self.ctl("produce", "pa", "--batch", "2", stdin="b1\nb2\nb3\n").stdout
        self.assertEqual(out.count("partition 0 offset"), 3, out)
        self.assertIn("offset 7", out)
        self.ctl("produce", "pa", "--json-values", '{"a":1}', "7")
        path = os.path.join(self.b.tmp, "blob.bin")
        with open(path, "wb") as f:
            f.write(b"\xff\x00raw")
        self.ctl("produce", "pa", "--file", path, "-k", "fk")
        msgs = self.b.fetch_all("pa")
        self.assertEqual([m["value"] for m in msgs[:8]],
                         ["one", "two", "three", "four", "five", "b1", "b2", "b3"])
        self.assertEqual(msgs[8]["value"], {"a": 1})
        self.assertEqual(msgs[9]["value"], 7)
        self.assertEqual(msgs[10]["value_encoding"], "base64")
        self.assertEqual(msgs[10]["key"], "fk")

    def test_produce_key_headers_partition_idempotency(self):
        self.b.create_topic("pk", partitions=3)
        self.ctl("produce", "pk", "-k", "kk", "-H", "a=1", "-H", "b=x=y",
                 "-p", "2", "v")
        m = self.b.fetch_all("pk", 2)[0]
        self.assertEqual((m["key"], m["headers"], m["value"]),
                         ("kk", {"a": "1", "b": "x=y"}, "v"))
        self.ctl("produce", "pk", "-p", "1", "--idempotency-key", "id-1", "once")
        self.ctl("produce", "pk", "-p", "1", "--idempotency-key", "id-1", "once")
        self.assertEqual(self.values("pk", 1), ["once"])

    def test_consume_formats_and_offsets(self):
        self.b.create_topic("cf", partitions=1)
        self.b.produce("cf", "v0", key="k0", headers={"h": "1"})
        self.b.produce("cf", {"j": 1})
        out = self.ctl("consume", "cf", "--format", r"%p:%o:%k:%v:%h\n").stdout
        self.assertEqual(out, '0:0:k0:v0:h=1\n0:1::{"j":1}:\n')
        out = self.ctl("consume", "cf", "--format", "value", "-o", "1").stdout
        self.assertEqual(out, '{"j":1}\n')
        lines = self.ctl("consume", "cf").stdout.splitlines()
        self.assertEqual(json.loads(lines[0])["key"], "k0")
        self.assertEqual(self.ctl("consume", "cf", "-o", "latest").stdout, "")
        ts = self.b.fetch_all("cf")[1]["timestamp"]
        out = self.ctl("consume", "cf", "--timestamp", str(ts), "--format", r"%o\n").stdout
        self.assertEqual(out.splitlines()[0], "1")

    def test_follow_stops_at_count(self):
        self.b.create_topic("fo", partitions=2)
        p = subprocess.Popen([CTL, "--url", self.b.base, "consume", "fo",
                              "--all-partitions", "-f", "-n", "3", "--format",
                              "value"], stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            self.assertIsNone(p.poll(), "follow mode must wait")
            for i in range(3):
                self.b.produce("fo", "m%d" % i, partition=i % 2)
            out, _ = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)
        self.assertEqual(sorted(out.split()), ["m0", "m1", "m2"])

    def test_follow_ends_on_sigint(self):
        """Ctrl-C ends follow mode within a long poll (1 s), status 0."""
        self.b.create_topic("fi", partitions=1)
        p = subprocess.Popen([CTL, "--url", self.b.base, "consume", "fi", "-f"],
                             stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            self.assertIsNone(p.poll())
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=5)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)

    def test_follow_survives_restart(self):
        """Follow mode retries while the broker is down and goes on from
        next_offset once it is back on the same port."""
        b = self.new_broker()
        b.create_topic("fr", partitions=1)
        b.produce("fr", "a")
        p = subprocess.Popen([CTL, "--url", b.base, "consume", "fr", "-f", "-n", "2",
                              "--format", "value"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            b.stop()
            time.sleep(1.5)
            self.assertIsNone(p.poll(), "follow must not give up")
            b.start()
            b.produce("fr", "b")
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual((p.returncode, out.split()), (0, ["a", "b"]), err)
        self.assertIn("retrying", err)

    def test_group_consume_commits(self):
        self.b.create_topic("gc", partitions=1)
        for i in range(5):
            self.b.produce("gc", i)
        out = self.ctl("consume", "gc", "-g", "g1", "-n", "3", "--format", "value").stdout
        self.assertEqual(out.split(), ["0", "1", "2"])
        st, _, d = self.b.get("/groups/g1/offsets")
        self.assertEqual(d["offsets"][0]["offset"], 3)
        out = self.ctl("consume", "gc", "-g", "g1", "--format", "value").stdout
        self.assertEqual(out.split(), ["3", "4"])
        out = self.ctl("groups", "describe", "g1").stdout
        self.assertRegex(out, r"gc\s+0\s+5\s+5\s+0")
        self.ctl("groups", "reset", "g1", "--topic", "gc", "--to", "earliest")
        self.assertIn("g1", self.ctl("groups", "list").stdout)
        st, _, d = self.b.get("/groups/g1/offsets")
        self.assertEqual(d["offsets"][0]["offset"], 0)
        self.ctl("groups", "delete", "g1")
        p = self.ctl("groups", "delete", "g1", expect=1)
        self.assertIn("unknown_group", p.stderr)

    def test_topics(self):
        out = self.ctl("topics", "create", "tt", "--partitions", "2",
                       "--retention-time", "7d").stdout
        self.assertIn("created topic tt with 2 partitions", out)
        self.assertRegex(self.ctl("topics", "list").stdout, r"tt\s+2")
        out = self.ctl("topics", "describe", "tt").stdout
        self.assertIn("retention 168h", out)
        d = json.loads(self.ctl("--json", "topics", "describe", "tt").stdout)
        self.assertEqual(len(d["partitions"]), 2)
        p = self.ctl("topics", "alter", "tt", expect=1)
        self.assertIn("not supported by this server", p.stderr)
        self.ctl("topics", "delete", "tt")
        p = self.ctl("topics", "describe", "tt", expect=1)
        self.assertIn("unknown_topic", p.stderr)
        p = self.ctl("topics", "create", "tt", "--partitions", "99", expect=1)
        self.assertIn("bad_request", p.stderr)

    def test_cluster_views(self):
        d = json.loads(self.ctl("--json", "cluster", "status").stdout)
        self.assertIn("state", d)
        self.assertIn("NODE_ID", self.ctl("cluster", "members").stdout)
        self.assertIn("commit_index", self.ctl("cluster", "raft").stdout)
        p = self.ctl("cluster", "remove", "abc", expect=2)
        self.assertIn("ID", p.stderr)

    def test_queue_claim_and_run(self):
        self.b.create_topic("qq", partitions=1)
        for i in range(4):
            self.b.produce("qq", "job%d" % i, key="k%d" % i)
        lines = self.ctl("queue", "claim", "w", "qq", "-n", "1").stdout.splitlines()
        self.assertEqual(json.loads(lines[0])["value"], "job0")
        out_path = os.path.join(self.b.tmp, "ran.txt")
        script = 'printf "%%s %%s %%s\\n" "$BROKER_OFFSET" "$BROKER_KEY" "$(cat)" >> %s' % out_path
        self.ctl("queue", "run", "w", "qq", "-n", "3", "--wait-ms", "200",
                 "--", "sh", "-c", script)
        with open(out_path) as f:
            self.assertEqual(f.read().splitlines(),
                             ["1 k1 job1", "2 k2 job2", "3 k3 job3"])
        self.assertIn("at most once", self.ctl("queue", "--help").stdout.lower())

    def test_failover_and_exit_codes(self):
        dead = "http://127.0.0.1:%d" % harness.free_port()
        self.b.create_topic("fx", partitions=1)
        self.ctl("produce", "fx", "via-second",
                 url=dead + "," + self.b.base)
        self.assertEqual(self.values("fx"), ["via-second"])
        p = self.ctl("topics", "list", url=dead, expect=3)
        self.assertIn(dead, p.stderr)
        p = self.ctl("consume", "nope-topic", expect=1)
        self.assertIn("unknown_topic", p.stderr)
        self.ctl("frobnicate", expect=2)
        self.ctl("consume", expect=2)
        self.ctl("consume", "fx", "-o", "soon", expect=2)
        self.ctl("produce", "fx", "--json-values", "{bad", expect=2)
        self.assertIn("usage: brokerctl produce", self.ctl("produce", "--help").stdout)
        self.assertIn("Exit status", self.ctl("--help").stdout)

    def test_json_output_and_env_url(self):
        self.b.create_topic("js", partitions=1)
        d = json.loads(self.ctl("--json", "produce", "js", "x").stdout)
        self.assertEqual((d["topic"], d["offset"]), ("js", 0))
        env = dict(os.environ, BROKER_URL=self.b.base)
        p = subprocess.run([CTL, "--json", "topics", "list"], capture_output=True,
                           text=True, timeout=20, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("js", [t["name"] for t in json.loads(p.stdout)["topics"]])

    def test_token_sent_as_bearer(self):
        """--token reaches the server as 'Authorization: Bearer T' (a stub
        server records it: today's broker ignores the header)."""
        seen = []

        class Stub(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                body = b'{"topics":[]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Stub)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            url = "http://127.0.0.1:%d" % srv.server_address[1]
            self.ctl("--token", "s3cret", "topics", "list", url=url)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(seen, ["Bearer s3cret"])

    def test_lost_write_answer_not_resent(self):
        """A node that reads the request and closes without answering: a
        produce is not resent to the next URL (it may have been applied;
        exit 3, nothing written twice), a GET is."""
        hits = []

        class Drop(http.server.BaseHTTPRequestHandler):
            def drop(self):
                hits.append(self.command)
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                self.close_connection = True

            do_GET = do_POST = drop

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Drop)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            urls = "http://127.0.0.1:%d,%s" % (srv.server_address[1], self.b.base)
            self.b.create_topic("lw", partitions=1)
            self.ctl("produce", "lw", "x", url=urls, expect=3)
            self.assertEqual(self.values("lw"), [])
            self.assertIn("lw", self.ctl("topics", "list", url=urls).stdout)
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(hits, ["POST", "GET"])


if __name__ == "__main__":
    harness.main()
