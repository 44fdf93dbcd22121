"""Idempotency keys, standalone (API.md v2 "Exactly-once writes"): retry
storms store each keyed write once, replays carry Idempotent-Replayed and
the original answer, reuse is 422, bad keys 400, keys survive kill -9."""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def keyed(b, method, path, body, key, **kw):
    return b.request(method, path, body=body,
                     headers={"Idempotency-Key": key}, **kw)


class Idempotency(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.shared = cls.start_shared()

    def all_values(self, b, topic, partitions):
        out = []
        for p in range(partitions):
            out.extend(m["value"] for m in b.fetch_all(topic, p))
        return out

    def test_retry_storm(self):
        """Eight threads send the same 30 keyed produces (single and batch) five times each: every value is stored once and every answer is the first one."""
        b = self.shared
        b.create_topic("storm", partitions=3)
        answers = {}
        lock = threading.Lock()
        errors = []

        def request(i):
            if i % 2 == 0:
                body = {"value": {"n": i}}
            else:
                body = {"records": [{"value": {"n": i, "r": j}}
                                    for j in range(3)]}
            return keyed(b, "POST", "/topics/storm/messages", body,
                         "storm-%d" % i)

        def worker():
            try:
                for _ in range(5):
                    for i in range(30):
                        st, h, data = request(i)
                        with lock:
                            answers.setdefault(i, []).append(
                                (st, h.get("Idempotent-Replayed"), data))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        for i in range(30):
            got = answers[i]
            self.assertEqual(len(got), 40)
            self.assertEqual({st for st, _, _ in got}, {201})
            first = [a for a in got if a[1] is None]
            self.assertEqual(len(first), 1, "exactly one answer applied %d" % i)
            self.assertEqual({a[1] for a in got if a[1] is not None}, {"true"})
            for a in got:
                self.assertEqual(a[2], first[0][2])
        values = self.all_values(b, "storm", 3)
        self.assertEqual(len(values), 15 + 15 * 3)
        self.assertEqual(len({repr(sorted(v.items())) for v in values}),
                         len(values))

    def test_reuse_and_bad_keys(self):
        """Another body, path or method under a key is 422; a malformed key is 400; nothing is stored for either."""
        b = self.shared
        b.create_topic("reuse")
        st, h, first = keyed(b, "POST", "/topics/reuse/messages",
                             {"value": 1}, "r1")
        self.assertEqual(st, 201)
        self.assertEqual(h.get("Idempotency-Key"), "r1")
        for method, path, body in [
                ("POST", "/topics/reuse/messages", {"value": 2}),
                ("POST", "/topics/reuse/messages?partition=0", {"value": 1}),
                ("POST", "/topics", {"name": "reuse2"})]:
            st, h, data = keyed(b, method, path, body, "r1")
            self.assertEqual(st, 422, (method, path, data))
            self.assertEqual(data["code"], "idempotency_key_reused")
        for bad in ["x" * 129, "caf\u00e9".encode("utf-8").decode("latin-1")]:
            st, _, data = keyed(b, "POST", "/topics/reuse/messages",
                                {"value": 3}, bad)
            self.assertEqual(st, 400, bad)
            self.assertIn("Idempotency-Key", data["error"])
        st, h, data = keyed(b, "POST", "/topics/reuse/messages",
                            {"value": 1}, "r1")
        self.assertEqual((st, h.get("Idempotent-Replayed"), data),
                         (201, "true", first))
        self.assertEqual(self.all_values(b, "reuse", 1), [1])
        self.assertEqual(b.get("/topics/reuse2")[0], 404)

    def test_other_routes(self):
        """Topic create/delete, commits and claims replay their first answer instead of applying again."""
        b = self.shared
        st, _, created = keyed(b, "POST", "/topics",
                               {"name": "routes", "partitions": 2}, "t-c")
        self.assertEqual(st, 201)
        st, h, again = keyed(b, "POST", "/topics",
                             {"name": "routes", "partitions": 2}, "t-c")
        self.assertEqual((st, h.get("Idempotent-Replayed"), again),
                         (201, "true", created))
        b.produce_batch("routes", [{"value": i, "partition": 0}
                                   for i in range(4)])
        claim = "/groups/w/topics/routes/claim"
        st, _, c1 = keyed(b, "POST", claim, {"limit": 2}, "cl-1")
        self.assertEqual((st, len(c1["messages"])), (200, 2))
        st, h, c2 = keyed(b, "POST", claim, {"limit": 2}, "cl-1")
        self.assertEqual((st, h.get("Idempotent-Replayed")), (200, "true"))
        self.assertEqual(c2["messages"], c1["messages"])
        st, _, c3 = b.post(claim, {"limit": 10})
        self.assertEqual([m["value"] for m in c3["messages"]], [2, 3])
        commit = {"offsets": [{"topic": "routes", "partition": 0,
                               "offset": 1}]}
        st, _, _ = keyed(b, "POST", "/groups/g/offsets", commit, "co-1")
        self.assertEqual(st, 200)
        b.post("/groups/g/offsets", {"offsets": [
            {"topic": "routes", "partition": 0, "offset": 3}]})
        st, h, _ = keyed(b, "POST", "/groups/g/offsets", commit, "co-1")
        self.assertEqual((st, h.get("Idempotent-Replayed")), (200, "true"))
        offs = b.get("/groups/g/offsets")[2]
        self.assertIn('"offset": 3', harness.json.dumps(offs))
        st, _, _ = keyed(b, "DELETE", "/topics/routes", None, "t-d")
        self.assertEqual(st, 204)
        b.create_topic("routes")
        st, h, _ = keyed(b, "DELETE", "/topics/routes", None, "t-d")
        self.assertEqual((st, h.get("Idempotent-Replayed")), (204, "true"))
        self.assertEqual(b.get("/topics/routes")[0], 200)

    def test_status_and_metrics(self):
        """/cluster/status counts held keys; replays are counted in /metrics."""
        b = self.new_broker()
        self.assertEqual(b.get("/cluster/status")[2]["idempotency_keys"], 0)
        for i in range(3):
            keyed(b, "POST", "/topics/m/messages", {"value": i}, "m%d" % i)
        keyed(b, "POST", "/topics/m/messages", {"value": 0}, "m0")
        self.assertEqual(b.get("/cluster/status")[2]["idempotency_keys"], 3)
        text = b.get("/metrics")[2].decode()
        self.assertIn("broker_idempotent_replays_total 1", text)
        # The replay stored nothing, so it is not a produced message.
        self.assertIn("broker_produced_messages_total 3\n", text)

    def test_keys_survive_kill9(self):
        """Acknowledged keyed writes are replayed, not stored again, after a kill -9 and restart."""
        b = self.new_broker()
        b.create_topic("k9", partitions=2)
        first = {}
        for i in range(50):
            st, _, data = keyed(b, "POST", "/topics/k9/messages",
                                {"value": i}, "k9-%d" % i)
            self.assertEqual(st, 201)
            first[i] = data
        b.kill9()
        b.restart()
        for i in range(50):
            st, h, data = keyed(b, "POST", "/topics/k9/messages",
                                {"value": i}, "k9-%d" % i)
            self.assertEqual((st, h.get("Idempotent-Replayed"), data),
                             (201, "true", first[i]))
        self.assertEqual(sorted(self.all_values(b, "k9", 2)), list(range(50)))
        self.assertEqual(b.get("/cluster/status")[2]["idempotency_keys"], 50)

    def test_kill9_under_keyed_load(self):
        """Six writers retry keyed produces (each key until acknowledged, through the crash) while the broker is killed with kill -9 three times: every value is stored exactly once, every acknowledged one is there, and repeats after the restarts replay the first answers."""
        b = self.new_broker()
        b.create_topic("crash", partitions=3)
        stop = threading.Event()
        acks = {}
        lock = threading.Lock()

        def writer(wid):
            seq = 0
            while not stop.is_set():
                key, body = "c%d-%d" % (wid, seq), {"value": [wid, seq]}
                for _ in range(400):
                    try:
                        st, h, data = keyed(b, "POST",
                                            "/topics/crash/messages", body,
                                            key, timeout=5)
                    except (OSError, harness.http.client.HTTPException):
                        st = None
                    if st == 201:
                        with lock:
                            acks[key] = (body, data)
                        break
                    harness.time.sleep(0.02)
                seq += 1

        threads = [threading.Thread(target=writer, args=(w,), daemon=True)
                   for w in range(6)]
        for t in threads:
            t.start()
        try:
            for _ in range(3):
                n = len(acks)
                harness.wait_until(lambda: len(acks) >= n + 150, 30)
                b.kill9()
                b.start()
        finally:
            n = len(acks)
            harness.wait_until(lambda: len(acks) >= n + 50, 30)
            stop.set()
            for t in threads:
                t.join(30)
        values = [tuple(v) for v in self.all_values(b, "crash", 3)]
        dup = [v for v in set(values) if values.count(v) > 1]
        self.assertEqual(dup, [], "stored more than once")
        stored = set(values)
        lost = [k for k, (body, _) in acks.items()
                if tuple(body["value"]) not in stored]
        self.assertEqual(lost, [], "acknowledged and missing")
        for key in sorted(acks)[::5]:
            body, first = acks[key]
            st, h, data = keyed(b, "POST", "/topics/crash/messages", body, key)
            self.assertEqual((st, h.get("Idempotent-Replayed"), data),
                             (201, "true", first), key)

    def test_window_and_cap(self):
        """Past idempotency_max_keys a new key is 503 idempotency_keys_full (held keys still replay); after idempotency_window a key applies anew."""
        b = self.new_broker({"idempotency_max_keys": 2,
                             "idempotency_window": "2s"})
        for i in range(2):
            self.assertEqual(keyed(b, "POST", "/topics/cap/messages",
                                   {"value": i}, "c%d" % i)[0], 201)
        st, h, data = keyed(b, "POST", "/topics/cap/messages", {"value": 2},
                            "c2")
        self.assertEqual((st, data["code"]), (503, "idempotency_keys_full"))
        self.assertEqual(h.get("Retry-After"), "1")
        self.assertEqual(keyed(b, "POST", "/topics/cap/messages",
                               {"value": 0}, "c0")[1].get(
                                   "Idempotent-Replayed"), "true")
        self.assertEqual(b.produce("cap", 9)["offset"], 2)  # unkeyed: fine
        harness.time.sleep(2.2)
        st, h, data = keyed(b, "POST", "/topics/cap/messages", {"value": 0},
                            "c0")
        self.assertEqual(st, 201)
        self.assertIsNone(h.get("Idempotent-Replayed"))
        self.assertEqual(data["offset"], 3)


if __name__ == "__main__":
    harness.main()
