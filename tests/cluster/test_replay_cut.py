"""A follower whose newest segment lost its tail inside a multi-record
produce command (a power loss before the background fsync, or a torn
write) replays the rest of that command after a restart and ends with
records identical to the other replicas': offsets, keys, values,
headers, timestamps (issue 7, finding 2)."""
import glob
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

TOPIC = "cut"
BATCHES = 6
PER_BATCH = 12


def segment_records(path):
    """[(position, size, offset, cmd_index)] of the records of a .log."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        size = 4 + length
        if pos + size > len(data):
            break
        offset, _ts, cmd = struct.unpack_from("<QqQ", data, pos + 10)
        out.append((pos, size, offset, cmd))
        pos += size
    return out


def newest_segment(node, partition):
    logs = sorted(glob.glob(os.path.join(node.topic_dir(TOPIC, partition),
                                         "*.log")))
    assert logs, "no segment in %s" % node.topic_dir(TOPIC, partition)
    return logs[-1]


def cut_point(path, which, mid_record, after_entry=0):
    """File size that cuts @path after the first record of the @which-th
    (from the end) command holding at least 3 records there and written
    by a Raft entry after @after_entry; inside its second record when
    @mid_record."""
    recs = segment_records(path)
    runs = []
    for r in recs:
        if runs and runs[-1][-1][3] == r[3]:
            runs[-1].append(r)
        else:
            runs.append([r])
    multi = [run for run in runs
             if len(run) >= 3 and run[0][3] >> 16 > after_entry]
    assert len(multi) >= which, "only %d multi-record commands in %s" % (
        len(multi), path)
    run = multi[-which]
    second = run[1]
    return second[0] + (second[1] // 2 if mid_record else 0), len(run)


def batch(b, n):
    return [{"key": "k%d-%d" % (b, i), "value": {"b": b, "i": i},
             "headers": {"h": "%d.%d" % (b, i)}} for i in range(n)]


class ReplayCut(ch.ClusterTestCase):
    def produce_batches(self, c, first, count):
        leader = c.leader()
        for b in range(first, first + count):
            st, _, data = leader.request("POST", ch.produce_path(TOPIC),
                                         {"records": batch(b, PER_BATCH)})
            self.assertEqual(st, 201, data)

    def run_cut(self, mid_record, overrides=None):
        c = self.new_cluster(3, overrides)
        leader = c.leader()
        st, _, data = leader.request("POST", "/topics",
                                     {"name": TOPIC, "partitions": 2})
        self.assertEqual(st, 201, data)
        self.produce_batches(c, 0, BATCHES)
        f = c.followers()[0]
        snap = 0
        if overrides:
            # A few entries after the follower's last snapshot, fewer
            # than snapshot_entries: the cut lands after the snapshot.
            c.wait_identical(TOPIC)
            snap = f.raft()["snapshot_index"]
            self.assertGreater(snap, 0, "no snapshot was taken")
            self.produce_batches(c, BATCHES, 2)
        before = c.wait_identical(TOPIC)
        total = sum(len(v) for v in before.values())
        if snap:
            snap = f.raft()["snapshot_index"]  # the one the restart loads
        f.stop()
        for p in (0, 1):
            path = newest_segment(f, p)
            size, n = cut_point(path, 1 if snap else 3, mid_record, snap)
            os.truncate(path, size)
        f.start()
        # The replayed node must end with what the others hold, and keep
        # agreeing on what is written after it is back.
        self.produce_batches(c, 100, 3)
        after = c.wait_identical(TOPIC, timeout=30)
        for p in (0, 1):
            self.assertEqual(after[p][:len(before[p])], before[p])
            offs = [r[0] for r in after[p]]
            self.assertEqual(offs, list(range(len(offs))))
        self.assertEqual(sum(len(v) for v in after.values()),
                         total + 3 * PER_BATCH)

    def test_cut_at_record_boundary(self):
        """Whole records cut inside a command (power loss before the fsync)."""
        self.run_cut(False)

    def test_cut_mid_record(self):
        """A torn record inside a command."""
        self.run_cut(True)

    def test_cut_after_snapshot(self):
        """The cut command lies after the follower's last snapshot: the
        restart restores the snapshot, then replays the entries after it."""
        self.run_cut(False, {"cluster": {"snapshot_entries": 8,
                                         "compaction_overhead": 2}})

    def test_cut_below_snapshot(self):
        """The cut removes records that the follower's last snapshot
        covers: the restart restores that snapshot before any leader is
        known and must fetch them from another member (the chaos suite's
        flip-new nemesis found the node refusing to start)."""
        c = self.new_cluster(3, {"cluster": {"snapshot_entries": 8,
                                             "compaction_overhead": 2}})
        st, _, data = c.leader().request("POST", "/topics",
                                         {"name": TOPIC, "partitions": 2})
        self.assertEqual(st, 201, data)
        self.produce_batches(c, 0, 2 * BATCHES)
        before = c.wait_identical(TOPIC)
        f = c.followers()[0]
        self.assertGreater(f.raft()["snapshot_index"], 0, "no snapshot")
        f.stop()
        for p in (0, 1):
            path = newest_segment(f, p)
            recs = segment_records(path)
            pos, size = recs[len(recs) // 3][:2]
            os.truncate(path, pos + size // 2)  # torn, far below the snapshot
        f.start()
        self.produce_batches(c, 100, 3)
        after = c.wait_identical(TOPIC, timeout=30)
        for p in (0, 1):
            self.assertEqual(after[p][:len(before[p])], before[p])
            offs = [r[0] for r in after[p]]
            self.assertEqual(offs, list(range(len(offs))))


if __name__ == "__main__":
    ch.main()
