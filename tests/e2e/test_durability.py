"""Durability: clean restarts, kill -9 under load, torn tails, segment
rolling and retention."""
import glob
import http.client
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def base_of(path):
    """Base offset of a segment file (its 20-digit name)."""
    return int(os.path.basename(path)[:20])


def log_files(b, topic, partition):
    return sorted(glob.glob(os.path.join(b.topic_dir(topic, partition),
                                         "*.log")))


class Durability(harness.BrokerTestCase):
    def test_restart_keeps_everything(self):
        """SIGTERM exits 0; after a restart topics, messages, offsets, partitions and retention are kept."""
        b = self.new_broker({"segment_size": 4096})
        b.create_topic("orders", partitions=3, retention_time="36h")
        b.create_topic("plain", partitions=1)
        acked = {}
        for i in range(60):
            d = b.produce("orders", {"n": i, "pad": "p" * 50}, key="k%d" % i,
                          headers={"i": str(i)})
            acked[(d["partition"], d["offset"])] = i
        raw = b.produce_raw("plain", b"\xff\x00raw", "application/octet-stream")
        b.post("/groups/billing/offsets", {"offsets": [
            {"topic": "orders", "partition": 0, "offset": 5},
            {"topic": "orders", "partition": 2, "offset": 1}]})
        claimed = b.post("/groups/claimers/topics/orders/claim",
                         {"limit": 4})[2]["messages"]
        info_before = b.topic_info("orders")
        groups_before = b.get("/groups/claimers/offsets")[2]
        b.restart()
        self.assertEqual(b.topic_info("orders"), info_before)
        self.assertEqual(b.topic_info("orders")["retention_time"], "36h")
        topics = b.get("/topics")[2]["topics"]
        self.assertIn({"name": "orders", "partitions": 3}, topics)
        self.assertIn({"name": "plain", "partitions": 1}, topics)
        got = {}
        for p in range(3):
            for m in b.fetch_all("orders", p):
                got[(p, m["offset"])] = m["value"]["n"]
                self.assertEqual(m["key"], "k%d" % m["value"]["n"])
                self.assertEqual(m["headers"], {"i": str(m["value"]["n"])})
        self.assertEqual(got, acked)
        _, data = b.fetch("plain", 0, offset=raw["offset"])
        self.assertEqual(data["messages"][0]["value_encoding"], "base64")
        offs = sorted((o["topic"], o["partition"], o["offset"]) for o in
                      b.get("/groups/billing/offsets")[2]["offsets"])
        self.assertEqual(offs, [("orders", 0, 5), ("orders", 2, 1)])
        self.assertEqual(b.get("/groups/claimers/offsets")[2], groups_before)
        self.assertEqual(sorted(b.get("/groups")[2]["groups"]),
                         ["billing", "claimers"])
        # Claims continue where they stopped: nothing is handed out twice.
        again = b.post("/groups/claimers/topics/orders/claim",
                       {"limit": 1000})[2]["messages"]
        first = {(m["partition"], m["offset"]) for m in claimed}
        rest = {(m["partition"], m["offset"]) for m in again}
        self.assertEqual(first & rest, set())
        self.assertEqual(first | rest, set(acked))
        # New writes continue the offsets.
        d = b.produce("plain", "next")
        self.assertEqual(d["offset"], raw["offset"] + 1)
        b.stop()
        self.assertIn("stopped cleanly", b.log())

    def test_kill9_under_concurrent_load(self):
        """After kill -9 under 8 producers every acknowledged offset holds its value and offsets are dense."""
        self.kill9_under_load({})

    def test_kill9_under_load_with_flush_interval(self):
        """With a positive flush_interval a process crash still loses nothing acknowledged."""
        self.kill9_under_load({"flush_interval": "500ms"})

    def kill9_under_load(self, overrides):
        b = self.new_broker(overrides)
        b.create_topic("load", partitions=4)
        acked = []
        lock = threading.Lock()
        stop = threading.Event()
        errors = []

        def producer(tid):
            conn = None
            n = 0
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(b.host, b.port,
                                                          timeout=5)
                    value = "t%d-%d" % (tid, n)
                    body = {"value": value}
                    if n % 3 == 0:
                        body["key"] = "key-%d" % (n % 17)
                    conn.request("POST", "/topics/load/messages",
                                 json.dumps(body),
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    if r.status == 201:
                        d = json.loads(data)
                        with lock:
                            acked.append((d["partition"], d["offset"],
                                          value))
                    elif r.status != 503:
                        errors.append((r.status, data))
                    n += 1
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                    if stop.is_set():
                        break
                    time.sleep(0.01)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=producer, args=(i,))
                   for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.2)
        with lock:
            before_kill = len(acked)
        b.kill9()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(errors, [])
        self.assertGreater(before_kill, 50, "load too small to mean much")
        b.start()
        stored = {}
        for p in range(4):
            msgs = b.fetch_all("load", p)
            self.assertEqual([m["offset"] for m in msgs],
                             list(range(len(msgs))), "offsets not dense")
            for m in msgs:
                stored[(p, m["offset"])] = m["value"]
        self.assertEqual(len(acked), len({(p, o) for p, o, _ in acked}),
                         "one offset acknowledged twice")
        missing = [(p, o, v) for p, o, v in acked if stored.get((p, o)) != v]
        self.assertEqual(missing, [], "acknowledged messages lost or changed")
        # Nothing is duplicated either: each value is stored at most once.
        values = list(stored.values())
        self.assertEqual(len(values), len(set(values)))
        # And the partitions take new writes at the next offsets.
        for p in range(4):
            hw = b.topic_info("load")["partitions"][p]["high_watermark"]
            self.assertEqual(b.produce("load", "after", partition=p)["offset"],
                             hw)

    def test_kill9_keeps_topics_and_groups(self):
        """After kill -9, created and deleted topics, committed offsets and claims are as acknowledged."""
        b = self.new_broker()
        b.create_topic("kept", partitions=3, retention_time="2h")
        b.create_topic("dropped", partitions=2)
        b.produce_batch("kept", [{"value": i, "partition": i % 3}
                                 for i in range(30)])
        b.produce("dropped", 1)
        self.assertEqual(b.delete("/topics/dropped")[0], 204)
        b.post("/groups/g1/offsets", {"topic": "kept", "partition": 2,
                                      "offset": 4})
        first = b.post("/groups/g2/topics/kept/claim",
                       {"limit": 12})[2]["messages"]
        self.assertEqual(len(first), 12)
        b.kill9()
        b.start()
        info = b.topic_info("kept")
        self.assertEqual(len(info["partitions"]), 3)
        self.assertEqual(info["retention_time"], "2h")
        self.assertEqual(sum(p["high_watermark"] for p in info["partitions"]),
                         30)
        self.assertEqual(b.get("/topics/dropped")[0], 404)
        self.assertFalse(os.path.exists(b.topic_dir("dropped")))
        offs = b.get("/groups/g1/offsets")[2]["offsets"]
        self.assertEqual([(o["topic"], o["partition"], o["offset"])
                          for o in offs], [("kept", 2, 4)])
        rest = b.post("/groups/g2/topics/kept/claim",
                      {"limit": 100})[2]["messages"]
        a = {(m["partition"], m["offset"]) for m in first}
        r = {(m["partition"], m["offset"]) for m in rest}
        self.assertEqual(a & r, set())
        self.assertEqual(len(a | r), 30)

    def test_damaged_index_rebuilt(self):
        """Damaged or missing .index files are rebuilt at start and every offset still reads right."""
        b = self.new_broker({"segment_size": 4096})
        b.create_topic("idx", partitions=1)
        for start in range(0, 300, 3):
            b.produce_batch("idx", [{"value": {"i": i, "pad": "q" * 40}}
                                    for i in range(start, start + 3)])
        b.stop()
        idx = sorted(glob.glob(os.path.join(b.topic_dir("idx", 0),
                                            "*.index")))
        self.assertGreater(len(idx), 2)
        with open(idx[0], "r+b") as f:      # garbage over the entries
            f.write(b"\xff" * max(8, os.path.getsize(idx[0])))
        with open(idx[1], "r+b") as f:      # cut short mid-entry
            f.truncate(max(0, os.path.getsize(idx[1]) - 3))
        os.unlink(idx[-1])                  # gone
        mark = len(b.log())
        b.start()
        self.assertIn("index", b.log()[mark:])
        for o in (0, 1, 57, 58, 133, 200, 298, 299):
            _, d = b.fetch("idx", 0, offset=o, limit=2)
            self.assertEqual([m["value"]["i"] for m in d["messages"]],
                             list(range(o, min(o + 2, 300))), o)
        self.assertEqual([m["value"]["i"] for m in b.fetch_all("idx", 0)],
                         list(range(300)))
        self.assertEqual(b.produce("idx", "next")["offset"], 300)

    def torn(self, damage):
        """Produce 60 messages, stop, damage the newest .log file with
        `damage(path)`, start again. Returns (broker, log text since the
        restart)."""
        b = self.new_broker({"segment_size": 4096})
        b.create_topic("torn", partitions=2)
        b.produce_batch("torn", [{"value": {"i": i, "pad": "x" * 50},
                                  "partition": 1} for i in range(59)])
        b.produce("torn", {"i": 59, "pad": "x" * 50}, partition=1)
        b.produce("torn", "other", partition=0)
        b.stop()
        files = log_files(b, "torn", 1)
        self.assertGreater(len(files), 1)
        for f in files:
            self.assertRegex(os.path.basename(f), r"^\d{20}\.log$")
        damage(files[-1])
        mark = len(b.log())
        b.start()
        return b, b.log()[mark:]

    def test_torn_tail_garbage(self):
        """Garbage appended to the newest segment is cut at restart: data intact, next offset follows, log says so."""
        def garbage(path):
            with open(path, "ab") as f:
                f.write(b"\x17\x00\x00\x00garbage\xde\xad\xbe\xef" * 5)
        b, newlog = self.torn(garbage)
        msgs = b.fetch_all("torn", 1)
        self.assertEqual([m["value"]["i"] for m in msgs], list(range(60)))
        self.assertEqual([m["offset"] for m in msgs], list(range(60)))
        self.assertEqual(b.produce("torn", "new", partition=1)["offset"], 60)
        self.assertEqual(b.fetch_all("torn", 1)[-1]["value"], "new")
        self.assertEqual(b.fetch_all("torn", 0)[0]["value"], "other")
        self.assertRegex(newlog.lower(), r"torn|recover|repair|cut")
        self.assertIn("torn", newlog)  # names the topic
        # The repaired file survives one more restart unchanged.
        b.restart()
        self.assertEqual(len(b.fetch_all("torn", 1)), 61)

    def test_torn_tail_half_record(self):
        """A half-written last record is cut at restart; the records before it are intact."""
        def cut(path):
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size - 7)
        b, newlog = self.torn(cut)
        msgs = b.fetch_all("torn", 1)
        self.assertEqual([m["value"]["i"] for m in msgs], list(range(59)))
        self.assertEqual(b.produce("torn", "new", partition=1)["offset"], 59)
        self.assertRegex(newlog.lower(), r"torn|recover|repair|cut")

    def test_segment_rolling(self):
        """A small segment_size makes several .log files and fetches across their boundaries are exact."""
        b = self.new_broker({"segment_size": 4096})
        b.create_topic("roll", partitions=1)
        n = 300
        # Batches of 5 (about 600 bytes): a segment rolls once it is past
        # segment_size, so it can overshoot by at most one append.
        for start in range(0, n, 5):
            b.produce_batch("roll", [{"value": {"i": i, "pad": "r" * 60}}
                                     for i in range(start, start + 5)])
        files = log_files(b, "roll", 0)
        self.assertGreaterEqual(len(files), 4)
        bases = [int(os.path.basename(f)[:20]) for f in files]
        self.assertEqual(bases[0], 0)
        self.assertEqual(bases, sorted(set(bases)))
        for f in files[:-1]:
            self.assertLessEqual(os.path.getsize(f), 4096 + 700)
        info = b.topic_info("roll")["partitions"][0]
        self.assertEqual(info["segments"], len(files))
        self.assertEqual(info["high_watermark"], n)
        # Small steps that straddle every boundary.
        off, seen = 0, []
        while off < n:
            _, d = b.fetch("roll", 0, offset=off, limit=7)
            self.assertTrue(d["messages"])
            seen.extend(m["value"]["i"] for m in d["messages"])
            self.assertEqual([m["offset"] for m in d["messages"]],
                             list(range(off, off + len(d["messages"]))))
            off = d["next_offset"]
        self.assertEqual(seen, list(range(n)))
        # Starting exactly at, just before and after each segment base.
        for base in bases[1:]:
            for o in (base - 1, base, base + 1):
                _, d = b.fetch("roll", 0, offset=o, limit=3)
                self.assertEqual([m["value"]["i"] for m in d["messages"]],
                                 list(range(o, min(o + 3, n))))
        # One fetch over all segments.
        _, d = b.fetch("roll", 0, offset=0, limit=10000)
        self.assertEqual([m["value"]["i"] for m in d["messages"]],
                         list(range(n)))
        b.restart()
        self.assertEqual(len(log_files(b, "roll", 0)), len(files))
        self.assertEqual([m["value"]["i"] for m in b.fetch_all("roll", 0)],
                         list(range(n)))

    def wait_lso(self, b, topic, partition=0, timeout=8):
        def moved():
            p = b.topic_info(topic)["partitions"][partition]
            return p if p["log_start_offset"] > 0 else None
        return harness.wait_until(moved, timeout, interval=0.1)

    def test_retention_bytes(self):
        """With retention_bytes old segments are deleted, log_start_offset advances and fetching below it is 416."""
        b = self.new_broker({"segment_size": 4096, "retention_bytes": 8192,
                             "cleanup_interval": "1s"})
        b.create_topic("ret", partitions=1)
        for start in range(0, 400, 50):
            b.produce_batch("ret", [{"value": {"i": i, "pad": "z" * 60}}
                                    for i in range(start, start + 50)])
        before = log_files(b, "ret", 0)
        self.assertGreater(len(before), 4)

        def settled():
            # Retention deletes oldest segments while the partition is over
            # retention_bytes; the files go just after the offsets move.
            p = b.topic_info("ret")["partitions"][0]
            files = log_files(b, "ret", 0)
            if p["log_start_offset"] > 0 and p["size_bytes"] <= 8192 and \
                    files and base_of(files[0]) == p["log_start_offset"]:
                return p, files
            return None
        got = harness.wait_until(settled, 8, interval=0.1)
        self.assertIsNotNone(got, "retention never brought the partition "
                             "under retention_bytes: %r"
                             % b.topic_info("ret"))
        p, after = got
        lso = p["log_start_offset"]
        self.assertEqual(p["high_watermark"], 400)
        self.assertLess(len(after), len(before))
        self.assertEqual(p["segments"], len(after))
        for f in before:
            self.assertEqual(os.path.exists(f), base_of(f) >= lso, f)
        data = self.assertError(b.get("/topics/ret/partitions/0/messages"
                                      "?offset=0"), 416, "offset_out_of_range")
        self.assertEqual(data["log_start_offset"], lso)
        self.assertEqual(data["high_watermark"], 400)
        self.assertError(b.get("/topics/ret/partitions/0/messages?offset=%d"
                               % (lso - 1)), 416, "offset_out_of_range")
        _, d = b.fetch("ret", 0, offset="earliest", limit=1)
        self.assertEqual(d["messages"][0]["offset"], lso)
        self.assertEqual(d["messages"][0]["value"]["i"], lso)
        self.assertEqual(d["log_start_offset"], lso)
        self.assertIn("retention", b.log())
        b.restart()
        p = b.topic_info("ret")["partitions"][0]
        self.assertGreaterEqual(p["log_start_offset"], lso)
        self.assertEqual(p["high_watermark"], 400)

    def test_retention_time_override(self):
        """A topic's retention_time override deletes its old segments; other topics keep theirs."""
        b = self.new_broker({"segment_size": 4096, "cleanup_interval": "1s"})
        b.create_topic("short", partitions=1, retention_time="1s")
        b.create_topic("long", partitions=1)
        for t in ("short", "long"):
            for start in range(0, 200, 50):
                b.produce_batch(t, [{"value": {"i": i, "pad": "y" * 60}}
                                    for i in range(start, start + 50)])
        self.assertIsNotNone(self.wait_lso(b, "short"),
                             "retention_time override never applied")
        self.assertEqual(b.topic_info("long")["partitions"][0]
                         ["log_start_offset"], 0)
        self.assertEqual(len(b.fetch_all("long", 0)), 200)

    def test_storage_full(self):
        """Past max_storage_size produce is 507 storage_full, a batch writes nothing, and data stays readable."""
        b = self.new_broker({"max_storage_size": 20000,
                             "segment_size": 4096})
        b.create_topic("full", partitions=1)
        n = 0
        while n < 1000:
            st, _, d = b.post("/topics/full/messages",
                              {"records": [{"value": "x" * 300}] * 3})
            if st != 201:
                break
            n += 3
        self.assertEqual((st, d["code"]), (507, "storage_full"), d)
        info = b.topic_info("full")["partitions"][0]
        self.assertEqual(info["high_watermark"], n)
        self.assertLessEqual(info["size_bytes"], 20000)
        self.assertEqual(len(b.fetch_all("full", 0)), n)
        b.restart()
        self.assertEqual(b.topic_info("full")["partitions"][0]
                         ["high_watermark"], n)
        self.assertError(b.post("/topics/full/messages",
                                {"records": [{"value": "x" * 300}] * 3}),
                         507, "storage_full")


if __name__ == "__main__":
    harness.main()
