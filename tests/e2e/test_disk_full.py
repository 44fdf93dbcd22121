"""Disk full and a data_dir that cannot be written (issue 7): every write
route answers 507 storage_full (no space) or 500 io_error (no permission)
with no absolute path in the answer, reads go on, the broker keeps
running, writes resume once the disk has room (or permissions are back)
without a restart, and everything acknowledged is intact after a
restart.

Full disk: a small tmpfs (mount needs root; skipped otherwise), filled to
the brim. Not writable: the broker runs as `nobody` (setpriv) and the
directories lose their write permission."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TMPFS_SIZE = "4m"
NOBODY = 65534


def can_mount():
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    d = tempfile.mkdtemp(prefix="e2e-mountprobe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                             "tmpfs", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok
    finally:
        os.rmdir(d)


def fill(directory):
    """Write a filler file until the file system is full; returns it."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        # The last page may still take a few bytes.
        try:
            while True:
                f.write(b"\0" * 64)
        except OSError:
            pass
    return path


class NobodyBroker(harness.Broker):
    """A broker process running as nobody (its tmp dir handed over)."""

    def _spawn(self):
        for root, dirs, files in os.walk(self.tmp):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), NOBODY, NOBODY)
        os.chown(self.tmp, NOBODY, NOBODY)
        self.stderr_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
             "--clear-groups", harness.BROKER_BIN,
             "-config=" + self.config_path],
            stdin=subprocess.DEVNULL, stdout=self.stderr_file,
            stderr=self.stderr_file, cwd=self.tmp)


class StorageEdge(harness.BrokerTestCase):
    def assert_no_path(self, data, *dirs):
        text = str(data)
        for d in dirs:
            self.assertNotIn(d, text)
            self.assertNotIn(os.path.realpath(d), text)

    def check_reads(self, b, topic, values, group_offset):
        self.assertEqual([m["value"] for m in b.fetch_all(topic)], values)
        st, _, data = b.get("/groups/g/offsets?topic=%s" % topic)
        self.assertEqual(st, 200, data)
        offs = {o["partition"]: o["offset"] for o in data["offsets"]}
        self.assertEqual(offs.get(0), group_offset, data)
        self.assertEqual(b.get("/healthz")[0], 200)

    def write_routes(self, b, status, code, dirs):
        """Every write route refused with (status, code); nothing changed."""
        answers = {
            "produce": b.post("/topics/t/messages", {"value": "no"}),
            "batch": b.post("/topics/t/messages",
                            {"records": [{"value": "n1"}, {"value": "n2"}]}),
            "create": b.post("/topics", {"name": "new", "partitions": 1}),
            "commit": b.post("/groups/g/offsets",
                             {"topic": "t", "partition": 0, "offset": 3}),
            "claim": b.post("/groups/q/topics/t/claim", {"limit": 2}),
            "delete group": b.delete("/groups/g"),
        }
        for route, resp in answers.items():
            st, _, data = resp
            if route in ("produce", "batch") and code == "io_error":
                continue  # open segments stay writable without permission
            self.assertEqual((route, st), (route, status), data)
            self.assertEqual(data.get("code"), code, (route, data))
            self.assert_no_path(data, *dirs)
        return answers

    @unittest.skipUnless(can_mount(), "needs root and mount -t tmpfs")
    def test_disk_full(self):
        """A full tmpfs: 507 storage_full on every write route, reads and deletes go on, writes resume when space is freed, all acknowledged data survives a restart."""
        mnt = tempfile.mkdtemp(prefix="e2e-diskfull-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE,
                        "tmpfs", mnt], check=True)
        self.addCleanup(os.rmdir, mnt)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        data_dir = os.path.join(mnt, "data")
        b = self.new_broker({"data_dir": data_dir, "segment_size": 65536})
        b.data_dir = data_dir
        b.create_topic("t", partitions=1)
        b.create_topic("gone", partitions=1)
        values = []
        for i in range(20):
            values.append("v%d" % i)
            b.produce("t", values[-1], partition=0)
        st, _, d = b.post("/groups/g/offsets",
                          {"topic": "t", "partition": 0, "offset": 2})
        self.assertEqual(st, 200, d)
        filler = fill(mnt)
        self.write_routes(b, 507, "storage_full", [mnt, data_dir])
        self.check_reads(b, "t", values, 2)
        st, _, d = b.get("/cluster/status")
        self.assertFalse(d["storage_writable"], d)
        self.assertIn("storage_error", d)
        self.assert_no_path(d, mnt)
        # Deleting frees space and needs none.
        self.assertIn(b.delete("/topics/gone")[0], (200, 204))
        # Room again: writes resume without a restart.
        os.unlink(filler)
        values.append("after")
        b.produce("t", "after", partition=0)
        st, _, d = b.post("/groups/g/offsets",
                          {"topic": "t", "partition": 0, "offset": 5})
        self.assertEqual(st, 200, d)
        b.create_topic("new", partitions=1)
        self.assertTrue(b.get("/cluster/status")[2]["storage_writable"])
        b.restart()
        self.check_reads(b, "t", values, 5)
        self.assertEqual(b.get("/topics/gone")[0], 404)
        self.assertEqual(b.get("/topics/new")[0], 200)
        b.stop()

    @unittest.skipUnless(can_mount(), "needs root and mount -t tmpfs")
    def test_disk_full_flush_interval(self):
        """With flush_interval a group commit is acknowledged before its write: on a full disk the broker keeps running, writes groups.json once there is room, and starts and serves reads on a full disk."""
        mnt = tempfile.mkdtemp(prefix="e2e-diskfull-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE,
                        "tmpfs", mnt], check=True)
        self.addCleanup(os.rmdir, mnt)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        data_dir = os.path.join(mnt, "data")
        b = self.new_broker({"data_dir": data_dir, "flush_interval": "50ms"})
        b.data_dir = data_dir
        b.create_topic("t", partitions=1)
        values = ["v%d" % i for i in range(10)]
        for v in values:
            b.produce("t", v, partition=0)
        filler = fill(mnt)
        st, _, d = b.post("/groups/g/offsets",
                          {"topic": "t", "partition": 0, "offset": 4})
        self.assertEqual(st, 200, d)
        self.assertTrue(harness.wait_until(
            lambda: "storage is not writable" in b.log(), 5), b.log())
        self.assertTrue(b.running())
        self.assertError(b.post("/topics/t/messages", {"value": "x"}), 507,
                         "storage_full")
        self.check_reads(b, "t", values, 4)
        # A restart on the full disk recovers and serves reads (the commit
        # made while full was acknowledged but never written: lost, as
        # flush_interval allows).
        b.restart()
        self.check_reads(b, "t", values, None)
        self.assertEqual(b.post("/groups/g/offsets", {
            "topic": "t", "partition": 0, "offset": 6})[0], 200)
        os.unlink(filler)

        def written():
            try:
                with open(os.path.join(data_dir, "groups.json")) as f:
                    return '"0":6' in f.read().replace(" ", "")
            except FileNotFoundError:
                return False
        self.assertTrue(harness.wait_until(written, 5))
        b.restart()
        self.check_reads(b, "t", values, 6)
        b.stop()

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                         "needs root to run the broker as nobody")
    def test_not_writable(self):
        """data_dir loses its write permission under a broker running as nobody: 500 io_error where a file must be created, renamed or rolled, reads go on, writes resume when the permission is back."""
        b = NobodyBroker({"segment_size": 4096}, start=False,
                         name=type(self).__name__)
        self._brokers.append(b)
        b.start()
        b.create_topic("t", partitions=1)
        b.create_topic("keep", partitions=1)
        values = ["v%d" % i for i in range(5)]
        for v in values:
            b.produce("t", v, partition=0)
        b.post("/groups/g/offsets", {"topic": "t", "partition": 0,
                                     "offset": 1})
        dirs = [b.data_dir]
        for root, ds, _ in os.walk(b.data_dir):
            dirs += [os.path.join(root, d) for d in ds]
        for d in dirs:
            os.chmod(d, 0o555)
        try:
            self.write_routes(b, 500, "io_error", [b.tmp])
            st, _, d = b.delete("/topics/keep")
            self.assertEqual(st, 500, d)
            self.assertEqual(d["code"], "io_error")
            self.assertEqual(b.get("/topics/keep")[0], 200)
            # Rolling to a new segment needs a new file: refused, and
            # nothing of the batch is stored.
            big = [{"value": "x" * 1000, "partition": 0}] * 6
            st, _, d = b.post("/topics/t/messages", {"records": big})
            self.assertEqual(st, 500, d)
            self.assertEqual(d["code"], "io_error")
            self.assert_no_path(d, b.tmp)
            hw = b.topic_info("t")["partitions"][0]["high_watermark"]
            values = [m["value"] for m in b.fetch_all("t")]
            self.assertEqual(hw, len(values))
            self.check_reads(b, "t", values, 1)
            st, _, d = b.get("/cluster/status")
            self.assertFalse(d["storage_writable"], d)
        finally:
            for d in dirs:
                os.chmod(d, 0o755)
        d = b.produce_batch("t", big)
        values += [r["value"] for r in big]
        st, _, d = b.post("/groups/g/offsets",
                          {"topic": "t", "partition": 0, "offset": 4})
        self.assertEqual(st, 200, d)
        self.assertIn(b.delete("/topics/keep")[0], (200, 204))
        b.restart()
        self.check_reads(b, "t", values, 4)
        self.assertEqual(b.get("/topics/keep")[0], 404)
        b.stop()


if __name__ == "__main__":
    harness.main()
