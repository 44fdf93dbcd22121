"""The fsync log (BROKER_FSYNC_LOG) and the power-loss tool
(tests/chaos/powerloss.py) on a standalone broker.

With flush_interval 0 every 201 comes after an fsync, so a simulated power
loss (every file cut to its last fsync'd size) keeps every acknowledged
record. With a long flush_interval nothing is fsync'd before the answer,
and the same power loss drops those records: the tool really drops what
was not synced. Damaging the files at random record boundaries leaves a
broker that starts and serves a prefix of what it had."""
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))
import harness  # noqa: E402
import powerloss  # noqa: E402


class PowerLossTest(harness.BrokerTestCase):
    def new_logged(self, overrides):
        b = self.new_broker(overrides, start=False)
        b.fsync_log = os.path.join(b.tmp, "fsync.log")
        os.environ["BROKER_FSYNC_LOG"] = b.fsync_log
        try:
            b.start()
        finally:
            del os.environ["BROKER_FSYNC_LOG"]
        return b

    def values(self, b, topic):
        return [m["value"] for m in b.fetch_all(topic, 0)]

    def test_log_lines_name_the_segment_and_its_synced_size(self):
        b = self.new_logged({"flush_interval": "0s"})
        b.create_topic("pl", partitions=1)
        for i in range(20):
            b.produce("pl", "v%d" % i, partition=0)
        seg = os.path.realpath(os.path.join(
            b.topic_dir("pl", 0), "%020d.log" % 0))
        synced = powerloss.read_sync_log(b.fsync_log, b.tmp)
        self.assertIn(seg, {os.path.realpath(p) for p in synced}, synced)
        size = [v for p, v in synced.items()
                if os.path.realpath(p) == seg][0]
        self.assertEqual(size, os.path.getsize(seg))
        # topic.json is written atomically: logged under its final name.
        self.assertTrue(any(p.endswith("topic.json") for p in synced),
                        synced)

    def test_no_log_without_the_variable(self):
        b = self.new_broker({"flush_interval": "0s"})
        b.produce("pl", "x", partition=0)
        b.stop()
        self.assertFalse([f for f in os.listdir(b.tmp) if "fsync" in f])

    def test_power_loss_keeps_every_acknowledged_record(self):
        b = self.new_logged({"flush_interval": "0s", "segment_size": 2048})
        b.create_topic("pl", partitions=1)
        for i in range(60):
            b.produce("pl", "v%d" % i, partition=0)
        b.produce_batch("pl", [{"value": "b%d" % i, "partition": 0}
                               for i in range(5)])
        b.kill9()
        powerloss.drop_unsynced(b.data_dir, b.fsync_log, b.tmp)
        b.start()
        self.assertEqual(self.values(b, "pl"),
                         ["v%d" % i for i in range(60)] +
                         ["b%d" % i for i in range(5)])

    def test_power_loss_drops_what_was_not_fsynced(self):
        b = self.new_logged({"flush_interval": "1h"})
        b.create_topic("pl", partitions=1)
        for i in range(30):
            b.produce("pl", "v%d" % i, partition=0)
        b.kill9()
        cut = powerloss.drop_unsynced(b.data_dir, b.fsync_log, b.tmp)
        self.assertTrue(any(p.endswith(".log") and new < old
                            for p, old, new in cut), cut)
        b.start()
        # flush_interval: the answer came before the fsync, so a machine
        # crash may lose those records (docs/configuration.md).
        self.assertLess(len(self.values(b, "pl")), 30)

    def test_cut_records_leaves_a_prefix(self):
        b = self.new_broker({"flush_interval": "0s"})
        b.create_topic("pl", partitions=1)
        for i in range(50):
            b.produce("pl", "v%d" % i, partition=0)
        b.kill9()
        what = powerloss.cut_records(b.data_dir, random.Random(7))
        self.assertEqual(len(what), 1, what)
        b.start()
        vals = self.values(b, "pl")
        self.assertLess(len(vals), 50)
        self.assertEqual(vals, ["v%d" % i for i in range(len(vals))])


if __name__ == "__main__":
    harness.main()
