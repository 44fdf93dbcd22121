"""data_dir and cluster.data_dir belong to one broker process: a second
broker on either exits with status 2 naming the directory and the pid
holding it, the first keeps serving, and a lock left by kill -9 does not
block a restart (issue 7, finding 1)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECOND_TIMEOUT = 10


def run_second(b, overrides):
    """Start another broker with @b's config changed by @overrides and a
    new port; returns the CompletedProcess (it must exit by itself)."""
    cfg = harness.deep_merge(b.config(), overrides)
    cfg["server"]["port"] = harness.free_port()
    cfg["server"]["log_file"] = ""
    path = os.path.join(b.tmp, "second.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    try:
        return subprocess.run([harness.BROKER_BIN, "-config=" + path],
                              capture_output=True, text=True,
                              timeout=SECOND_TIMEOUT, cwd=b.tmp,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("a second broker on the same directory kept "
                             "running (it should exit 2 at once): %s"
                             % (e.stderr or b"")[-500:])


def single_cluster(b):
    """A one-node Raft cluster config for @b (raft dir in its tmp)."""
    addr = "127.0.0.1:%d" % harness.free_port()
    return {"cluster": {"enabled": True, "node_id": 1,
                        "raft_address": addr, "initial_members": [addr],
                        "data_dir": b.raft_dir}}


class DirLock(harness.BrokerTestCase):
    def assert_refused(self, proc, directory, pid):
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(directory, proc.stderr)
        self.assertIn("pid %d" % pid, proc.stderr)

    def test_second_standalone_refused(self):
        """A second broker on the same data_dir (spelt differently) exits 2 naming it and the holder's pid; the first keeps its data."""
        b = self.new_broker()
        b.create_topic("t", partitions=1)
        d = b.produce("t", "first")
        other = os.path.join(b.data_dir, "..", "data")
        proc = run_second(b, {"data_dir": other})
        self.assert_refused(proc, other, b.pid)
        d2 = b.produce("t", "second")
        self.assertEqual(d2["offset"], d["offset"] + 1)
        with open(os.path.join(b.data_dir, ".lock")) as f:
            self.assertEqual(int(f.read().strip()), b.pid)
        b.restart()
        vals = [m["value"] for m in b.fetch_all("t")]
        self.assertEqual(vals, ["first", "second"])

    def test_stale_lock_after_kill9(self):
        """kill -9 leaves .lock behind with a dead pid; the next start takes it over and writes its own pid."""
        b = self.new_broker()
        b.produce("t", "v")
        dead = b.pid
        b.kill9()
        lock = os.path.join(b.data_dir, ".lock")
        self.assertTrue(os.path.exists(lock))
        b.start()
        with open(lock) as f:
            pid = int(f.read().strip())
        self.assertNotEqual(pid, dead)
        self.assertEqual(pid, b.pid)
        self.assertEqual([m["value"] for m in b.fetch_all("t")], ["v"])

    def test_cluster_dirs_locked(self):
        """A cluster node locks cluster.data_dir too: a second node with its own data_dir but the same cluster.data_dir exits 2."""
        b = self.new_broker(start=False)
        b.overrides = harness.deep_merge(b.overrides, single_cluster(b))
        b.start()
        self.assertTrue(harness.wait_until(
            lambda: b.get("/cluster/status")[2].get("state") == "leader", 10))
        b.produce("t", "v")
        other = os.path.join(b.tmp, "other-data")
        proc = run_second(b, {"data_dir": other})
        self.assert_refused(proc, b.raft_dir, b.pid)
        proc = run_second(b, {"cluster": {"data_dir": os.path.join(
            b.tmp, "other-raft")}})
        self.assert_refused(proc, b.data_dir, b.pid)
        self.assertEqual(b.produce("t", "w")["offset"], 1)
        b.kill9()
        b.start()
        self.assertTrue(harness.wait_until(
            lambda: len(b.fetch_all("t")) == 2, 10))

    def test_equal_and_nested_dirs(self):
        """data_dir equal to cluster.data_dir, or one inside the other, still starts, serves and restarts."""
        for raft in ("same", "nested", "outer"):
            b = self.new_broker(start=False)
            cl = single_cluster(b)
            if raft == "same":
                cl["cluster"]["data_dir"] = b.data_dir
            elif raft == "nested":
                cl["cluster"]["data_dir"] = os.path.join(b.data_dir, "raft")
            else:
                cl["data_dir"] = os.path.join(b.raft_dir, "data")
                b.data_dir = cl["data_dir"]
            b.overrides = harness.deep_merge(b.overrides, cl)
            b.start()
            self.assertTrue(harness.wait_until(
                lambda: b.get("/cluster/status")[2].get("state") == "leader",
                10), raft)
            b.produce("t", raft)
            b.restart()
            self.assertTrue(harness.wait_until(
                lambda: [m["value"] for m in b.fetch_all("t")] == [raft],
                10), raft)
            proc = run_second(b, {})
            self.assertEqual(proc.returncode, 2, (raft, proc.stderr))
            b.stop()


if __name__ == "__main__":
    harness.main()
