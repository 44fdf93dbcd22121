"""Operations endpoints and the standalone form of /cluster/* (API.md
"Cluster administration", "Operations")."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Ops(harness.BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = cls.start_shared()

    def get_json(self, path):
        st, h, data = self.b.get(path)
        self.assertEqual(st, 200, data)
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        return data

    def test_healthz(self):
        """GET /healthz is 200 {"status": "ok"}."""
        self.assertEqual(self.get_json("/healthz"), {"status": "ok"})

    def test_readyz(self):
        """GET /readyz is 200 once storage is open (standalone)."""
        st, _, data = self.b.get("/readyz")
        self.assertEqual(st, 200, data)

    def test_cluster_status_standalone(self):
        """/cluster/status: mode standalone, state leader, itself as leader and sole member, topics, uptime."""
        self.b.create_topic("opsa", partitions=1)
        self.b.create_topic("opsb", partitions=2)
        s = self.get_json("/cluster/status")
        for f in ("node_id", "mode", "state", "term", "leader",
                  "commit_index", "applied_index", "last_log_index",
                  "members", "topics", "uptime_s"):
            self.assertIn(f, s)
        self.assertEqual(s["mode"], "standalone")
        self.assertEqual(s["state"], "leader")
        self.assertIsInstance(s["node_id"], int)
        self.assertGreaterEqual(s["node_id"], 1)
        for f in ("term", "commit_index", "applied_index", "last_log_index"):
            self.assertIsInstance(s[f], int, f)
            self.assertGreaterEqual(s[f], 0, f)
        leader = s["leader"]
        self.assertEqual(leader["node_id"], s["node_id"])
        self.assertEqual(leader["http_address"], "127.0.0.1:%d" % self.b.port)
        self.assertIn("raft_address", leader)
        self.assertEqual(len(s["members"]), 1)
        m = s["members"][0]
        self.assertEqual(m["node_id"], s["node_id"])
        self.assertEqual(m["http_address"], leader["http_address"])
        self.assertEqual(m["role"], "voter")
        self.assertIn("raft_address", m)
        topics = len(self.b.get("/topics")[2]["topics"])
        self.assertEqual(s["topics"], topics)
        self.assertGreaterEqual(s["topics"], 2)
        self.assertIsInstance(s["uptime_s"], int)
        self.assertGreaterEqual(s["uptime_s"], 0)
        self.assertLess(s["uptime_s"], 600, "uptime not since start")

    def test_uptime_grows(self):
        """uptime_s counts seconds since start."""
        u0 = self.get_json("/cluster/status")["uptime_s"]
        ok = harness.wait_until(
            lambda: self.get_json("/cluster/status")["uptime_s"] > u0, 2.5,
            interval=0.1)
        self.assertTrue(ok)

    def test_cluster_leader(self):
        """/cluster/leader is the leader object of /cluster/status."""
        s = self.get_json("/cluster/status")
        self.assertEqual(self.get_json("/cluster/leader"), s["leader"])
        self.assertEqual(set(s["leader"]),
                         {"node_id", "raft_address", "http_address"})

    def test_cluster_members(self):
        """/cluster/members is {"members": [...]} with this node as the only voter."""
        s = self.get_json("/cluster/status")
        data = self.get_json("/cluster/members")
        self.assertEqual(list(data), ["members"])
        self.assertEqual(data["members"], s["members"])

    def test_cluster_raft(self):
        """/cluster/raft has every Raft figure as a non-negative integer."""
        data = self.get_json("/cluster/raft")
        for f in ("term", "commit_index", "applied_index", "last_log_index",
                  "snapshot_index", "snapshots_taken", "elections",
                  "leader_changes", "log_entries"):
            self.assertIsInstance(data[f], int, f)
            self.assertGreaterEqual(data[f], 0, f)

    def test_membership_changes_refused_standalone(self):
        """Membership changes on a standalone broker are refused with a JSON error."""
        for method, path, body in [
                ("POST", "/cluster/members",
                 {"node_id": 4, "raft_address": "127.0.0.1:1",
                  "http_address": "127.0.0.1:2"}),
                ("DELETE", "/cluster/members/4", None),
                ("POST", "/cluster/leader/transfer", {"node_id": 2})]:
            st, _, data = self.b.request(method, path, body)
            self.assertGreaterEqual(st, 400, (method, path))
            self.assertIsInstance(data.get("code"), str)

    def test_index_html(self):
        """GET / serves the HTML dashboard from www/."""
        st, h, body = self.b.get("/")
        self.assertEqual(st, 200)
        self.assertTrue(h["Content-Type"].startswith("text/html"),
                        h["Content-Type"])
        self.assertIn(b"<html", body.lower())
        with open(os.path.join(harness.BROKER_SRC, "www", "index.html"),
                  "rb") as f:
            self.assertEqual(body, f.read())

    def test_ui_path_traversal(self):
        """/ui/ does not serve files outside www/."""
        for path in ["/ui/../CMakeLists.txt", "/ui/%2e%2e/CMakeLists.txt",
                     "/ui/..%2fCMakeLists.txt", "/ui/%2e%2e%2fsrc%2fmain.c"]:
            st, _, body = self.b.get(path)
            self.assertIn(st, (400, 403, 404), path)
            self.assertNotIn(b"cmake_minimum_required", body)
            self.assertNotIn(b"int main", body)

    def test_head_is_get_without_body(self):
        """HEAD on a GET route (a probe's `curl -I /healthz`) is 200 with no body."""
        for path in ("/healthz", "/metrics", "/"):
            st, _, data = self.b.request("HEAD", path)
            self.assertEqual(st, 200, path)
            self.assertEqual(data, b"", path)
        st, _, _ = self.b.request("HEAD", "/topics/x/messages")
        self.assertEqual(st, 405)


if __name__ == "__main__":
    harness.main()
