"""Storage verification (issue 7, finding 3): damage in an older segment is
found at start, in the background, without a fetch; a damaged .index is
rebuilt; fetches inside a damaged range answer 500 corrupt naming it, fetches
outside work; the scrubber finds damage made while running; broker --repair
truncates at the damage and keeps what it cut aside."""
import glob
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PAD = "x" * 60


def log_files(b, topic, partition=0):
    return sorted(glob.glob(os.path.join(b.topic_dir(topic, partition),
                                         "*.log")))


def records_of(path):
    """[(offset, position, size)] of the records of a .log file."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 18 <= len(data):
        length = struct.unpack_from("<I", data, pos)[0]
        off = struct.unpack_from("<Q", data, pos + 10)[0]
        out.append((off, pos, 4 + length))
        pos += 4 + length
    return out


def flip_byte(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        c = f.read(1)
        f.seek(pos)
        f.write(bytes([c[0] ^ 0x5A]))


def damage_of(b):
    st = b.get("/cluster/status")[2]
    return st.get("storage"), st.get("storage_damage")


def metric(b, name):
    for line in b.metrics().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def fill(b, topic, n):
    b.create_topic(topic, partitions=1)
    for i in range(0, n, 10):
        b.produce_batch(topic, [{"value": {"n": j, "pad": PAD}}
                                for j in range(i, min(n, i + 10))])


class Verify(harness.BrokerTestCase):
    CFG = {"segment_size": 8192}

    def damaged_broker(self, cfg=None, index=40, n=400):
        """A broker with 400 records in several segments whose first
        segment has a flipped byte in the value of its record 40 (after the
        last index entry with the default 8 KiB segments: start-up used to
        refuse to start)."""
        b = self.new_broker(dict(self.CFG, **(cfg or {})))
        fill(b, "t", n)
        b.stop()
        logs = log_files(b, "t")
        self.assertGreater(len(logs), 3)
        recs = records_of(logs[0])
        self.assertGreater(len(recs), index + 5)
        off, pos, size = recs[index]
        flip_byte(logs[0], pos + size - 10)
        return b, off, recs

    def test_flipped_byte_in_old_segment_found_at_start(self):
        """A flipped byte in record 40 of the oldest segment is reported at start, before any fetch."""
        b, off, recs = self.damaged_broker()
        b.start()
        ok = harness.wait_until(lambda: damage_of(b)[0] == "degraded", 10)
        storage, dmg = damage_of(b)
        self.assertTrue(ok, "status never degraded: %r" % (storage,))
        self.assertEqual(len(dmg), 1, dmg)
        self.assertEqual((dmg[0]["topic"], dmg[0]["partition"]), ("t", 0))
        self.assertEqual(dmg[0]["from"], off)
        self.assertEqual(dmg[0]["to"], off + 1)
        self.assertGreaterEqual(metric(b, "broker_storage_corrupt_records_total"), 1)
        self.assertEqual(metric(b, "broker_storage_damaged_ranges"), 1)
        self.assertIn("damaged", b.log())

    def test_flipped_byte_before_last_index_entry(self):
        """A flipped byte that start-up's tail scan never reads (before the last index entry) is found by the background verification."""
        b, off, recs = self.damaged_broker({"segment_size": 32768}, index=5,
                                           n=1600)
        b.start()
        ok = harness.wait_until(lambda: damage_of(b)[0] == "degraded", 10)
        self.assertTrue(ok)
        self.assertEqual(damage_of(b)[1], [
            {"topic": "t", "partition": 0, "from": off, "to": off + 1}])
        self.assertNotIn("the segment is damaged", b.log())
        _, data = b.fetch("t", 0, offset=off + 1, limit=3)
        self.assertEqual(data["messages"][0]["value"]["n"], off + 1)

    def test_fetch_in_damaged_range_names_it(self):
        """A fetch inside the range answers 500 corrupt with the range and no path; outside it works."""
        b, off, recs = self.damaged_broker()
        b.start()
        harness.wait_until(lambda: damage_of(b)[0] == "degraded", 10)
        st, data = b.fetch("t", 0, expect=None, offset=off)
        self.assertEqual(st, 500, data)
        self.assertEqual(data["code"], "corrupt")
        self.assertEqual((data["from"], data["to"]), (off, off + 1))
        self.assertIn("[%d, %d)" % (off, off + 1), data["error"])
        self.assertNotIn("/", data["error"].replace("t/0", ""))
        # Before it: records up to the damage, then the damage.
        st, data = b.fetch("t", 0, offset=0, limit=1000)
        self.assertEqual(data["messages"][-1]["offset"], off - 1)
        self.assertEqual(data["next_offset"], off)
        # After it: in the same segment and in later ones.
        st, data = b.fetch("t", 0, offset=off + 1, limit=5)
        self.assertEqual([m["offset"] for m in data["messages"]],
                         list(range(off + 1, off + 6)))
        self.assertEqual(data["messages"][0]["value"]["n"], off + 1)
        st, data = b.fetch("t", 0, offset=300, limit=5)
        self.assertEqual(data["messages"][0]["value"]["n"], 300)
        # Writes go on.
        self.assertEqual(b.produce("t", {"n": 400})["offset"], 400)

    def damage_index(self, entry, segment_size):
        """Start a broker whose oldest .index has entry @entry pointing 3
        bytes into its record (still ascending, so the load check passes
        unless it is the last entry, which load scans from)."""
        b = self.new_broker({"segment_size": segment_size})
        fill(b, "t", 600)
        b.stop()
        idx = sorted(glob.glob(os.path.join(b.topic_dir("t", 0),
                                            "*.index")))[0]
        with open(idx, "rb") as f:
            good = f.read()
        self.assertGreaterEqual(len(good), 8 * (entry + 1))
        rel, pos = struct.unpack_from("<II", good, 8 * entry)
        bad = (good[:8 * entry] + struct.pack("<II", rel, pos + 3) +
               good[8 * entry + 8:])
        with open(idx, "wb") as f:
            f.write(bad)
        return b, idx, good

    def test_damaged_last_index_entry_rebuilt_at_load(self):
        """An .index whose last entry is wrong is rebuilt while loading."""
        b, idx, good = self.damage_index(1, 8192)
        b.start()
        self.assertGreaterEqual(
            metric(b, "broker_storage_index_rebuilds_total"), 1)
        with open(idx, "rb") as f:
            self.assertEqual(f.read(), good)
        got = [m["value"]["n"] for m in b.fetch_all("t", 0)]
        self.assertEqual(got, list(range(600)))

    def test_missing_segment_is_a_damaged_range(self):
        """A lost middle segment no longer stops the start: its offsets are a damaged range; --repair cuts there."""
        b = self.new_broker(self.CFG)
        fill(b, "t", 400)
        b.stop()
        logs = log_files(b, "t")
        self.assertGreater(len(logs), 3)
        gone_from = records_of(logs[2])[0][0]
        gone_to = records_of(logs[3])[0][0]
        os.remove(logs[2])
        os.remove(logs[2][:-4] + ".index")
        b.start()
        self.assertEqual(damage_of(b), ("degraded", [
            {"topic": "t", "partition": 0, "from": gone_from,
             "to": gone_to}]))
        st, data = b.fetch("t", 0, expect=None, offset=gone_from + 1)
        self.assertEqual((st, data["code"], data["from"], data["to"]),
                         (500, "corrupt", gone_from, gone_to))
        _, data = b.fetch("t", 0, offset=0, limit=1000)
        self.assertEqual(data["next_offset"], gone_from)
        _, data = b.fetch("t", 0, offset=gone_to, limit=1)
        self.assertEqual(data["messages"][0]["value"]["n"], gone_to)
        self.assertGreaterEqual(
            metric(b, "broker_storage_corrupt_records_total"),
            gone_to - gone_from)
        b.stop()
        p = subprocess.run([harness.BROKER_BIN, "--config", b.config_path,
                            "--repair"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("damaged at offset %d" % gone_from, p.stdout)
        b.start()
        self.assertEqual(damage_of(b), ("ok", []))
        got = [m["value"]["n"] for m in b.fetch_all("t", 0)]
        self.assertEqual(got, list(range(gone_from)))

    def test_claim_over_damaged_range_is_not_silent(self):
        """A claim whose range holds damaged records answers 500 corrupt instead of quietly leaving them out."""
        b, off, recs = self.damaged_broker()
        b.start()
        harness.wait_until(lambda: damage_of(b)[0] == "degraded", 10)
        st, _, data = b.post("/groups/g/topics/t/claim", {"limit": 20})
        self.assertEqual(st, 200, data)
        self.assertEqual(len(data["messages"]), 20)
        st, _, data = b.post("/groups/g/topics/t/claim", {"limit": 100})
        self.assertEqual((st, data["code"]), (500, "corrupt"))

    def test_damaged_index_rebuilt(self):
        """An .index whose middle entry points inside a record is found by the background verification and rebuilt atomically."""
        b, idx, good = self.damage_index(1, 32768)
        b.start()
        ok = harness.wait_until(
            lambda: (metric(b, "broker_storage_index_rebuilds_total") or 0)
            >= 1, 10)
        self.assertTrue(ok, b.log()[-2000:])
        with open(idx, "rb") as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(damage_of(b), ("ok", []))
        self.assertIn("index an entry points inside a record", b.log())
        got = [m["value"]["n"] for m in b.fetch_all("t", 0)]
        self.assertEqual(got, list(range(600)))

    def test_scrubber_finds_damage_made_while_running(self):
        """With scrub_interval 1s, a byte flipped in a closed segment of a running broker is found."""
        b = self.new_broker(dict(self.CFG, scrub_interval="1s"))
        fill(b, "t", 400)
        passes = metric(b, "broker_storage_scrub_passes_total")
        harness.wait_until(
            lambda: metric(b, "broker_storage_scrub_passes_total") > passes,
            10)
        logs = log_files(b, "t")
        recs = records_of(logs[1])
        off, pos, size = recs[5]
        flip_byte(logs[1], pos + size - 3)
        ok = harness.wait_until(lambda: damage_of(b)[0] == "degraded", 10)
        self.assertTrue(ok)
        self.assertEqual(damage_of(b)[1][0]["from"], off)
        self.assertGreater(metric(b, "broker_storage_scrub_bytes_total"), 0)
        st, data = b.fetch("t", 0, expect=None, offset=off)
        self.assertEqual((st, data["code"]), (500, "corrupt"))

    def test_scrubber_under_load_and_retention(self):
        """A scrubber passing every 100ms while records are produced and retention deletes segments finds nothing and disturbs nothing."""
        b = self.new_broker({"segment_size": 2048, "retention_bytes": 8192,
                             "cleanup_interval": "200ms",
                             "scrub_interval": "100ms"})
        b.create_topic("t", partitions=2)
        deadline = time.monotonic() + 4
        n = 0
        while time.monotonic() < deadline:
            b.produce_batch("t", [{"value": {"n": n + j, "pad": PAD},
                                   "partition": (n + j) % 2}
                                  for j in range(10)])
            n += 10
        self.assertGreater(metric(b, "broker_storage_scrub_passes_total"), 3)
        self.assertEqual(damage_of(b), ("ok", []))
        self.assertEqual(metric(b, "broker_storage_corrupt_records_total"), 0)
        for p in range(2):
            msgs = b.fetch_all("t", p)
            self.assertGreater(len(msgs), 0)
            for m in msgs:
                self.assertEqual(m["value"]["n"] % 2, p)

    def test_slow_scrub_lets_go_of_deleted_topics_and_stops(self):
        """A scrub capped at 4 KB/s closes a deleted topic's files at once and does not delay a stop."""
        b = self.new_broker(dict(self.CFG, scrub_bytes_per_s=4096,
                                 scrub_interval="1s"))
        fill(b, "gone", 400)
        fill(b, "kept", 400)
        b.restart()  # the pass at start now reads "gone" slowly

        def open_deleted():
            fd_dir = "/proc/%d/fd" % b.pid
            out = []
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                # Deleted topics go through data/trash/ and are removed.
                if target.endswith(".log (deleted)") or "/trash/" in target:
                    out.append(target)
            return out
        time.sleep(0.5)
        self.assertEqual(open_deleted(), [])
        self.assertEqual(b.delete("/topics/gone")[0], 204)
        ok = harness.wait_until(lambda: not open_deleted(), 5)
        self.assertTrue(ok, open_deleted())
        t0 = time.monotonic()
        b.stop()
        self.assertLess(time.monotonic() - t0, 5)

    def test_scrub_disabled_and_bad_values(self):
        """scrub_interval 0s disables the scrubber; bad values exit 2 naming the field."""
        for field, val in (("scrub_interval", "soon"),
                           ("scrub_bytes_per_s", 0)):
            b = self.new_broker({field: val}, start=False)
            b.write_config()
            p = subprocess.run([harness.BROKER_BIN, "--config", b.config_path],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(field, p.stderr)

    def test_repair_truncates_and_quarantines(self):
        """broker --repair on a stopped broker cuts the partition at the damage and moves the rest aside."""
        b, off, recs = self.damaged_broker()
        n_logs = len(log_files(b, "t"))
        p = subprocess.run([harness.BROKER_BIN, "--config", b.config_path,
                            "--repair"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("t/0", p.stdout + p.stderr)
        qdir = os.path.join(b.topic_dir("t", 0), "quarantine")
        self.assertEqual(len(glob.glob(os.path.join(qdir, "*.log"))), n_logs)
        self.assertEqual(len(log_files(b, "t")), 1)
        b.start()
        self.assertEqual(damage_of(b), ("ok", []))
        got = [m["value"]["n"] for m in b.fetch_all("t", 0)]
        self.assertEqual(got, list(range(off)))
        self.assertEqual(b.produce("t", {"n": "new"})["offset"], off)
        # A second --repair has nothing to do.
        b.stop()
        p = subprocess.run([harness.BROKER_BIN, "--config", b.config_path,
                            "--repair"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    harness.main()
