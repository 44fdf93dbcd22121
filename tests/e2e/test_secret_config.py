"""cluster.secret_file at start: unreadable, empty, too short or with
spaces -> exit 2 naming the field (never printing the secret); a good one
starts; cluster mode without one logs a warning; server.advertise must be
a plain host:port."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class SecretConfig(harness.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="e2e-secret-")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run_with(self, cfg):
        path = os.path.join(self.tmp, "config.json")
        base = {"data_dir": os.path.join(self.tmp, "data"),
                "server": {"host": "127.0.0.1",
                           "port": harness.free_port()}}
        with open(path, "w") as f:
            json.dump(harness.deep_merge(base, cfg), f)
        return harness.run_broker_cli(["-config=" + path])

    def secret(self, text):
        path = os.path.join(self.tmp, "secret")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_bad_secret_files_exit_2(self):
        cases = [os.path.join(self.tmp, "missing"), self.secret("")]
        for path in cases:
            r = self.run_with({"cluster": {"secret_file": path}})
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("cluster.secret_file", r.stderr)
        for text in ("\n\n", "too-short\n", "has a space in it ok\n",
                     "x" * 300):
            r = self.run_with({"cluster": {"secret_file": self.secret(text)}})
            self.assertEqual(r.returncode, 2, (text, r.stderr))
            self.assertIn("cluster.secret_file", r.stderr)
            if text.strip():
                self.assertNotIn(text.strip()[:20], r.stderr)

    def test_good_secret_starts_and_is_not_logged(self):
        path = self.secret("a-good-secret-of-some-length\n")
        b = self.new_broker({"cluster": {"secret_file": path}})
        self.assertNotIn("a-good-secret", b.log())
        # Standalone: /internal/* needs it too when configured.
        st, _, data = b.request("GET", "/internal/whoami")
        self.assertEqual(st, 401, data)
        st, _, data = b.request("GET", "/internal/whoami", headers={
            "X-Cluster-Secret": "a-good-secret-of-some-length"})
        self.assertEqual(st, 200, data)

    def test_cluster_without_secret_warns(self):
        port = harness.free_port()
        b = self.new_broker({"cluster": {
            "enabled": True, "node_id": 1,
            "initial_members": ["127.0.0.1:%d" % port],
            "data_dir": os.path.join(self.tmp, "raft")}})
        self.assertIn("cluster.secret_file is not set", b.log())

    def test_bad_advertise_exit_2(self):
        for bad in ("x y:80", "host", "a\r\nb:1", "h:0"):
            r = self.run_with({"server": {"advertise": bad}})
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("server.advertise", r.stderr)


if __name__ == "__main__":
    harness.main()
