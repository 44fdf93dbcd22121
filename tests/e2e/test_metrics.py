"""GET /metrics: Prometheus text format 0.0.4 and counters that move."""
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:\\[\\"n]|[^"\\\n])*"'
VALUE = r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN)"
SAMPLE_RE = re.compile(r"^(%s)(\{(?:%s(?:,%s)*,?)?\})? (%s)(?: -?[0-9]+)?$"
                       % (NAME, LABEL, LABEL, VALUE))
HELP_RE = re.compile(r"^# HELP (%s) .*$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$"
                     % NAME)


def parse(text):
    """{(name, labels-text): float} of every sample, and {family: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            m = TYPE_RE.match(line)
            if m:
                types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return samples, types


class Metrics(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared()

    def scrape(self):
        st, h, body = self.b.get("/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(h["Content-Type"], "text/plain; version=0.0.4")
        return body.decode()

    def test_content_type_and_line_format(self):
        """Content type is text/plain; version=0.0.4 and every line is valid exposition format."""
        self.b.produce("fmt", {"a": 1}, key="k")
        self.b.fetch("fmt", 0)
        self.b.get("/nope")
        text = self.scrape()
        self.assertTrue(text.endswith("\n"))
        families_typed = set()
        for line in text.splitlines():
            if line.startswith("#"):
                self.assertTrue(HELP_RE.match(line) or TYPE_RE.match(line),
                                "bad comment line: %r" % line)
                m = TYPE_RE.match(line)
                if m:
                    self.assertNotIn(m.group(1), families_typed,
                                     "TYPE twice for " + m.group(1))
                    families_typed.add(m.group(1))
                continue
            self.assertNotEqual(line, "", "empty line in exposition")
            self.assertRegex(line, SAMPLE_RE, "bad sample line")
        # Each sample belongs to a family whose TYPE came before it.
        seen = set()
        for line in text.splitlines():
            m = TYPE_RE.match(line)
            if m:
                seen.add(m.group(1))
            elif not line.startswith("#"):
                name = SAMPLE_RE.match(line).group(1)
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in seen or base in seen,
                                "sample before its TYPE: " + line)

    def test_required_families(self):
        """The families API.md asks for are present (requests, messages, latency, disk, Raft)."""
        _, types = parse(self.scrape())
        for fam, typ in [("broker_produce_requests_total", "counter"),
                         ("broker_produced_messages_total", "counter"),
                         ("broker_fetch_requests_total", "counter"),
                         ("broker_fetched_messages_total", "counter"),
                         ("broker_produce_latency_seconds", "histogram"),
                         ("broker_disk_bytes", "gauge"),
                         ("broker_raft_term", "gauge"),
                         ("broker_raft_commit_index", "gauge"),
                         ("broker_raft_applied_index", "gauge"),
                         ("broker_raft_elections_total", "counter"),
                         ("broker_raft_snapshots_total", "counter"),
                         ("broker_raft_leader_changes_total", "counter")]:
            self.assertEqual(types.get(fam), typ, fam)

    def test_counters_move(self):
        """Produce and fetch counters grow by the traffic sent."""
        before, _ = parse(self.scrape())
        self.b.create_topic("cnt", partitions=1)
        self.b.produce("cnt", 1)
        self.b.produce_batch("cnt", [{"value": i} for i in range(4)])
        self.b.fetch("cnt", 0, limit=3)
        self.b.fetch("cnt", 0, offset=3)
        after, _ = parse(self.scrape())

        def delta(name):
            return after[(name, "")] - before.get((name, ""), 0)
        self.assertEqual(delta("broker_produce_requests_total"), 2)
        self.assertEqual(delta("broker_produced_messages_total"), 5)
        self.assertEqual(delta("broker_fetch_requests_total"), 2)
        self.assertEqual(delta("broker_fetched_messages_total"), 5)
        self.assertGreater(delta("broker_produced_bytes_total"), 0)
        self.assertEqual(delta("broker_produce_latency_seconds_count"), 2)
        self.assertGreater(after[("broker_disk_bytes", "")], 0)
        self.assertGreaterEqual(after[("broker_topics", "")], 1)

    def test_histogram_cumulative(self):
        """Histogram buckets are cumulative, sorted by le, and end in +Inf equal to _count."""
        for i in range(5):
            self.b.produce("hist", i)
        samples, types = parse(self.scrape())
        hists = [f for f, t in types.items() if t == "histogram"]
        self.assertIn("broker_produce_latency_seconds", hists)
        for fam in hists:
            buckets = []
            for (name, labels), v in samples.items():
                if name == fam + "_bucket":
                    m = re.search(r'le="([^"]+)"', labels)
                    self.assertIsNotNone(m, labels)
                    le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
                    buckets.append((le, v))
            buckets.sort()
            self.assertGreater(len(buckets), 1, fam)
            self.assertEqual(buckets[-1][0], math.inf, fam)
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), fam + " not cumulative")
            self.assertEqual(buckets[-1][1], samples[(fam + "_count", "")])
            self.assertGreaterEqual(samples[(fam + "_sum", "")], 0)
        self.assertGreaterEqual(
            samples[("broker_produce_latency_seconds_count", "")], 5)


if __name__ == "__main__":
    harness.main()
