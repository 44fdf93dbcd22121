"""Long-poll fetches (API.md: wait_ms, "Waiting clients cost no busy
CPU")."""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class LongPoll(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared()

    def background_fetch(self, topic, partition=0, **params):
        """Start a fetch in a thread; returns (thread, result dict)."""
        res = {}

        def run():
            t0 = time.monotonic()
            try:
                res["status"], res["body"] = self.b.fetch(
                    topic, partition, expect=None, **params)
            except Exception as e:  # reported by the caller
                res["error"] = repr(e)
            res["t"] = time.monotonic()
            res["elapsed"] = res["t"] - t0

        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th, res

    def test_wakes_on_produce(self):
        """A fetch with wait_ms=5000 at the high watermark returns right after a produce, with that message."""
        self.b.create_topic("wake", partitions=2)
        self.b.produce("wake", "old", partition=0)
        th, res = self.background_fetch("wake", 0, offset=1, wait_ms=5000)
        self.assertTrue(self.b.wait_waiters(1), "the long poll never parked")
        self.assertTrue(th.is_alive(), "long poll returned before a produce")
        t_prod = time.monotonic()
        self.b.produce("wake", "other partition", partition=1)
        self.b.produce("wake", {"new": 1}, partition=0)
        th.join(6)
        self.assertNotIn("error", res)
        self.assertEqual(res["status"], 200)
        self.assertLess(res["t"] - t_prod, 1.0)
        self.assertEqual([(m["offset"], m["value"])
                          for m in res["body"]["messages"]], [(1, {"new": 1})])
        self.assertEqual(res["body"]["next_offset"], 2)
        self.assertEqual(res["body"]["high_watermark"], 2)

    def test_latest_wakes_on_produce(self):
        """offset=latest with wait_ms waits for the next message."""
        self.b.create_topic("wakelatest", partitions=1)
        self.b.produce_batch("wakelatest", [{"value": i} for i in range(3)])
        th, res = self.background_fetch("wakelatest", 0, offset="latest",
                                        wait_ms=5000)
        self.assertTrue(self.b.wait_waiters(1), "the long poll never parked")
        self.b.produce("wakelatest", "next")
        th.join(6)
        self.assertEqual([(m["offset"], m["value"])
                          for m in res["body"]["messages"]], [(3, "next")])
        self.assertLess(res["elapsed"], 2.0)

    def test_times_out_empty(self):
        """With no produce a long poll returns 200 with no messages after about wait_ms."""
        b = self.new_broker()
        b.create_topic("quiet", partitions=1)
        b.produce("quiet", 1)
        t0 = time.monotonic()
        st, body = b.fetch("quiet", 0, offset=1, wait_ms=800)
        elapsed = time.monotonic() - t0
        self.assertEqual(b.get("/healthz")[0], 200)
        b.stop()
        self.assertEqual(st, 200)
        self.assertEqual(body["messages"], [])
        self.assertEqual(body["next_offset"], 1)
        self.assertEqual(body["high_watermark"], 1)
        self.assertGreaterEqual(elapsed, 0.75)
        self.assertLess(elapsed, 1.8)

    def test_data_present_returns_at_once(self):
        """A long poll below the high watermark answers at once."""
        self.b.create_topic("ready", partitions=1)
        self.b.produce("ready", "here")
        t0 = time.monotonic()
        _, body = self.b.fetch("ready", 0, offset=0, wait_ms=10000)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(body["messages"][0]["value"], "here")

    def test_many_waiters_cheap(self):
        """200 parked long polls keep produce latency low and cost (almost) no CPU; one produce wakes all."""
        b = self.b
        b.create_topic("parked", partitions=1)
        b.create_topic("busy", partitions=1)
        polls = [self.background_fetch("parked", 0, offset=0, wait_ms=15000)
                 for _ in range(200)]
        self.assertTrue(b.wait_waiters(200),
                        "200 long polls never parked (waiters=%s)"
                        % b.waiters())
        # Idle CPU while they wait.
        c0, t0 = b.cpu_ticks(), time.monotonic()
        time.sleep(1.0)
        c1, t1 = b.cpu_ticks(), time.monotonic()
        cpu_share = (c1 - c0) / CLK_TCK / (t1 - t0)
        self.assertLess(cpu_share, 0.10,
                        "broker burns %.0f%% CPU with 200 idle long polls"
                        % (cpu_share * 100))
        # Producers are not blocked by the waiters.
        lat = []
        for i in range(30):
            s = time.monotonic()
            self.assertEqual(b.produce("busy", i)["offset"], i)
            lat.append(time.monotonic() - s)
        self.assertLess(statistics.median(lat), 0.1, lat)
        self.assertLess(max(lat), 1.0, lat)
        self.assertTrue(all(th.is_alive() for th, _ in polls))
        # One produce wakes every waiter with the message.
        t_prod = time.monotonic()
        b.produce("parked", "wake up")
        for th, _ in polls:
            th.join(max(0.1, t_prod + 5 - time.monotonic()))
        woken = [r for _, r in polls if "t" in r]
        self.assertEqual(len(woken), 200)
        for r in woken:
            self.assertNotIn("error", r)
            self.assertEqual(r["status"], 200)
            self.assertEqual([m["value"] for m in r["body"]["messages"]],
                             ["wake up"])
        self.assertLess(max(r["t"] for r in woken) - t_prod, 2.0)
        self.assertEqual(b.waiters(), 0)


if __name__ == "__main__":
    harness.main()
