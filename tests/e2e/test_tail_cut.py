"""Standalone: what a cut segment tail leaves (issue 7, finding 2).

With flush_interval 0 a produce is acknowledged only after its fsync, so
a power loss can cut only records that were never acknowledged: the tail
of the last batch. These tests cut the newest segment inside the last
batch (at a record boundary, as a lost page cache leaves it, and inside
a record, as a torn write leaves it), restart, and check that every
earlier (acknowledged) record is intact at its offset, that offsets stay
contiguous, and that new writes continue right after what survived."""
import glob
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PER_BATCH = 8


def records(path):
    """[(position, size, offset, cmd_index)] of a .log file."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if pos + 4 + length > len(data):
            break
        offset, _ts, cmd = struct.unpack_from("<QqQ", data, pos + 10)
        out.append((pos, 4 + length, offset, cmd))
        pos += 4 + length
    return out


def batch(b):
    return [{"key": "k%d" % i, "value": {"b": b, "i": i},
             "headers": {"i": str(i)}, "partition": 0}
            for i in range(PER_BATCH)]


class TailCut(harness.BrokerTestCase):
    def run_cut(self, mid_record, hard):
        b = self.new_broker()
        b.create_topic("t", partitions=1)
        acked = []
        for n in range(5):
            d = b.produce_batch("t", batch(n))
            acked.append([r["offset"] for r in d["offsets"]])
        before = b.fetch_all("t")
        # The last batch stands for the one in flight at the power loss:
        # cut it after its 3rd record.
        if hard:
            b.kill9()
        else:
            b.stop()
        path = sorted(glob.glob(os.path.join(b.topic_dir("t", 0),
                                             "*.log")))[-1]
        recs = records(path)
        last = [r for r in recs if r[3] == recs[-1][3]]
        self.assertEqual(len(last), PER_BATCH)
        pos, size = last[3][0], last[3][1]
        os.truncate(path, pos + (size // 2 if mid_record else 0))
        b.start()
        if mid_record:
            self.assertIn("recovered t/0", b.log())
        after = b.fetch_all("t")
        kept = 4 * PER_BATCH + 3
        self.assertEqual(after, before[:kept])
        self.assertEqual([m["offset"] for m in after], list(range(kept)))
        # New writes continue right after what survived, also after
        # another restart.
        d = b.produce_batch("t", batch(9))
        self.assertEqual([r["offset"] for r in d["offsets"]],
                         list(range(kept, kept + PER_BATCH)))
        b.restart()
        final = b.fetch_all("t")
        self.assertEqual(final[:kept], before[:kept])
        self.assertEqual([m["offset"] for m in final],
                         list(range(kept + PER_BATCH)))

    def test_cut_at_record_boundary_after_stop(self):
        """Records cut whole inside the last batch after a clean stop."""
        self.run_cut(False, False)

    def test_cut_mid_record_after_kill9(self):
        """A torn record inside the last batch after kill -9."""
        self.run_cut(True, True)


if __name__ == "__main__":
    harness.main()
