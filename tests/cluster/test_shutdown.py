"""Stopping nodes that hold parked requests: SIGTERM answers them and
exits 0 promptly, also on a follower relaying long claims to the leader."""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402


def park(node, method, path, body, out):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=40)
        conn.request(method, path, json.dumps(body) if body else None,
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        out.append(resp.status)
    except Exception as e:  # reported by the assertions below
        out.append(repr(e))


class Shutdown(ch.ClusterTestCase):

    def test_follower_with_relayed_claims_stops_quickly(self):
        """A follower relaying 5 claims with wait_ms 30000 to the leader and
        parking 5 long polls stops on SIGTERM within 5 s with exit status 0,
        and every client gets an HTTP answer (200 or 503), not a dropped
        connection."""
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("t", partitions=2)
        f = c.followers()[0]
        c.wait_until(lambda: f.topic_partitions("t") is not None, 10,
                     "topic on the follower")
        out = []
        threads = [threading.Thread(target=park, args=(
            f, "POST", "/groups/h%d/topics/t/claim" % i, {"wait_ms": 30000},
            out)) for i in range(5)]
        threads += [threading.Thread(target=park, args=(
            f, "GET", "/topics/t/partitions/0/messages?offset=latest"
            "&wait_ms=30000", None, out)) for _ in range(5)]
        for t in threads:
            t.start()
        time.sleep(1)
        t0 = time.monotonic()
        c.stop(f.node_id)  # asserts exit status 0
        took = time.monotonic() - t0
        for t in threads:
            t.join(10)
        self.assertLess(took, 5.0, "follower took %.1f s to stop" % took)
        self.assertEqual(len(out), 10, out)
        for status in out:
            self.assertIn(status, (200, 503), out)


if __name__ == "__main__":
    ch.main()
