"""Member addresses and node-to-node authentication (issue 9).

The hijack as the probe found it: looping POST /internal/members
{"node_id": <leader>, "http_address": <attacker>} at the nodes made
followers relay produces (bodies included) to the attacker, whose forged
201 reached the clients as if durable. A node's HTTP address can now be
set only by that node: the leader's own id is never taken from the
network, an announcement needs the cluster secret (when configured) or
comes from the member's Raft host and is verified by the leader calling
the announced address back (GET /internal/whoami); addresses are
validated as host:port, for current members only.

With cluster.secret_file every /internal/* route needs the secret
(X-Cluster-Secret); a member with a wrong secret is refused."""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_harness as ch  # noqa: E402

FORGED_OFFSET = 424242


class Attacker:
    """A tiny HTTP server that answers every request with a forged 201
    (the produce answer a client would trust) and records what reached
    it. With `whoami_id` it also answers GET /internal/whoami as that
    node would (a smarter attacker)."""

    def __init__(self, whoami_id=None):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.requests.append((self.command, self.path, body,
                                           dict(self.headers)))
                if self.path.startswith("/internal/whoami") and \
                        whoami_id is not None:
                    out = json.dumps({"node_id": whoami_id}).encode()
                    code = 200
                else:
                    out = json.dumps({"topic": "h", "partition": 0,
                                      "offset": FORGED_OFFSET,
                                      "timestamp": 1}).encode()
                    code = 201
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Broker-Node", "1")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = _answer

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.address = "127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def produces(self):
        with self.lock:
            return [r for r in self.requests if "/messages" in r[1]]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def hijack_loop(cluster, target_id, address, stop, answers):
    """POST /internal/members for `target_id` at every node in turn until
    `stop` is set; the statuses go into `answers`."""
    i = 0
    nodes = cluster.all()
    while not stop.is_set():
        n = nodes[i % len(nodes)]
        i += 1
        try:
            st, _, body = n.request("POST", "/internal/members", {
                "node_id": target_id, "http_address": address}, timeout=5,
                check_header=False)
            answers.append((n.node_id, st, body))
        except ch.NET_ERRORS as e:
            answers.append((n.node_id, None, repr(e)))


class MemberHijack(ch.ClusterTestCase):

    def run_hijack(self, c, target_id, attacker, seconds=4.0, n=60):
        """Loop the forged announcement while producing `n` records via
        the followers; returns (201 bodies, other answers, hijack
        answers)."""
        leader = c.leader()
        stop = threading.Event()
        answers = []
        t = threading.Thread(target=hijack_loop, args=(
            c, target_id, attacker.address, stop, answers))
        t.start()
        acked, other = [], []
        try:
            followers = c.followers()
            end = time.monotonic() + seconds
            i = 0
            while i < n or time.monotonic() < end:
                f = followers[i % len(followers)]
                try:
                    st, _, body = f.request("POST", "/topics/h/messages",
                                            {"value": "v-%d" % i}, timeout=10)
                except ch.NET_ERRORS as e:
                    other.append((None, repr(e)))
                    continue
                finally:
                    i += 1
                (acked if st == 201 else other).append(
                    body if st == 201 else (st, body))
                if i >= 4 * n:
                    break
        finally:
            stop.set()
            t.join(10)
        self.assertGreater(len(answers), 0)
        return leader, acked, other, answers

    def assert_not_hijacked(self, c, leader, attacker, acked):
        self.assertEqual(attacker.produces(), [],
                         "produces relayed to the attacker")
        forged = [b for b in acked if b.get("offset") == FORGED_OFFSET]
        self.assertEqual(forged, [], "forged 201s reached the clients")
        self.assertGreater(len(acked), 0)
        # Every acknowledged record is really stored, at its offset.
        stored = {m["offset"]: m["value"]
                  for m in leader.fetch_all("h", 0)}
        for b in acked:
            self.assertIn(b["offset"], stored, b)
        # No member ever shows the attacker's address.
        for n in c.all():
            for m in n.members():
                self.assertNotEqual(m["http_address"], attacker.address)

    def test_hijack_of_the_leader_address_fails(self):
        """The probe's loop, aimed at the leader's id (as found), with an
        attacker that answers every request with a forged 201."""
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("h", partitions=1)
        c.wait_members_known()
        attacker = Attacker()
        try:
            leader, acked, other, answers = self.run_hijack(
                c, leader.node_id, attacker)
            self.assert_not_hijacked(c, leader, attacker, acked)
            codes = {st for _, st, _ in answers}
            self.assertFalse(codes & {200}, answers[:5])
        finally:
            attacker.close()

    def test_hijack_of_a_follower_address_fails(self):
        """The same loop aimed at a follower's id: the leader calls the
        attacker back, gets no whoami answer for that id, and refuses
        (403); nothing reaches the attacker or a client."""
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("h", partitions=1)
        c.wait_members_known()
        fid = c.followers()[0].node_id
        attacker = Attacker()
        try:
            leader, acked, other, answers = self.run_hijack(
                c, fid, attacker, seconds=3.0, n=40)
            self.assert_not_hijacked(c, leader, attacker, acked)
            # The leader refuses (403); followers do not take
            # announcements (503 no_leader: announce to the leader).
            codes = {st for _, st, _ in answers}
            self.assertIn(403, codes, answers[:5])
            self.assertLessEqual(codes, {403, 503}, answers[:5])
            whoami = [r for r in attacker.requests
                      if r[1] == "/internal/whoami"]
            self.assertGreater(len(whoami), 0)
        finally:
            attacker.close()

    def test_same_host_impostor_without_secret_is_the_limit(self):
        """Without a secret, a process on a member's own host that also
        answers /internal/whoami as that member passes both checks (this
        is documented in docs/security.md: set cluster.secret_file). Even
        then only that follower's entry moves (the leader's never does),
        relays go to the leader alone: no produce reaches the attacker and
        no forged 201 reaches a client."""
        c = self.new_cluster(3)
        leader = c.leader()
        leader.create_topic("h", partitions=1)
        c.wait_members_known()
        fid = c.followers()[0].node_id
        attacker = Attacker(whoami_id=fid)
        try:
            leader, acked, other, answers = self.run_hijack(
                c, fid, attacker, seconds=3.0, n=40)
            self.assertEqual(attacker.produces(), [])
            forged = [b for b in acked if b.get("offset") == FORGED_OFFSET]
            self.assertEqual(forged, [])
            self.assertEqual(other, [])
        finally:
            attacker.close()
        # The real follower's announcer puts its address back.
        c.wait_members_known()
        c.wait_until(lambda: all(
            {m["node_id"]: m["http_address"] for m in n.members()}[fid] ==
            c.node(fid).http_address for n in c.all()), 10,
            "the follower's real address back")


SECRET = "s3cret-for-the-cluster-0123456789"


def secret_file(tmpdir, name, value):
    path = os.path.join(tmpdir, name)
    with open(path, "w") as f:
        f.write(value + "\n")
    return path


class ClusterSecret(ch.ClusterTestCase):
    """Every node has cluster.secret_file with the same secret."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="secret-")
        cls.good = secret_file(cls.tmp, "good", SECRET)
        cls.bad = secret_file(cls.tmp, "bad", "another-secret-9876543210")
        cls.start_shared_cluster(3, {"cluster": {"secret_file": cls.good}})

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_internal_routes_need_the_secret(self):
        """/internal/records, /internal/whoami, /internal/members and an
        unknown /internal path: 401 without the secret, 403 with a wrong
        one; with it they answer as usual. No log line shows it."""
        c = self.shared
        leader = c.leader()
        leader.create_topic("sec", partitions=1)
        leader.produce("sec", "one", partition=0)
        routes = [("GET", "/internal/records/sec/0?from=0", None),
                  ("GET", "/internal/whoami", None),
                  ("POST", "/internal/members",
                   {"node_id": 2, "http_address": "127.0.0.1:1"}),
                  ("GET", "/internal/nothing", None),
                  ("GET", "/internal", None)]
        for n in c.all():
            for method, path, body in routes:
                st, _, data = n.request(method, path, body,
                                        check_header=False)
                self.assertEqual(st, 401, (n.node_id, path, data))
                self.assertEqual(data["code"], "unauthorized")
                st, _, data = n.request(
                    method, path, body, check_header=False,
                    headers={"X-Cluster-Secret": "wrong-" + SECRET})
                self.assertEqual(st, 403, (n.node_id, path, data))
                self.assertEqual(data["code"], "forbidden")
                # A prefix of the secret is not the secret.
                st, _, data = n.request(
                    method, path, body, check_header=False,
                    headers={"X-Cluster-Secret": SECRET[:-1]})
                self.assertEqual(st, 403, (n.node_id, path, data))
        hdr = {"X-Cluster-Secret": SECRET}
        st, _, data = leader.request("GET", "/internal/records/sec/0?from=0",
                                     headers=hdr)
        self.assertEqual(st, 200, data)
        self.assertIn(b"one", data)
        st, _, data = leader.request("GET", "/internal/whoami", headers=hdr)
        self.assertEqual((st, data["node_id"]), (200, leader.node_id))
        for n in c.all():
            self.assertNotIn(SECRET, n.log())
            self.assertIn("refused", n.log())

    def test_cluster_works_with_the_secret(self):
        """Announcements (every address known), relayed writes through
        the followers, identical contents."""
        c = self.shared
        c.wait_members_known()
        for n in c.all():
            got = {m["node_id"]: m["http_address"] for m in n.members()}
            self.assertEqual(got, {x.node_id: x.http_address
                                   for x in c.all()})
        c.leader().create_topic("works", partitions=1)
        for i, f in enumerate(c.followers()):
            st, h, body = f.request("POST", "/topics/works/messages",
                                    {"value": "v%d" % i})
            self.assertEqual(st, 201, body)
        c.wait_identical("works", 10)

    def test_hijack_with_secret_refused(self):
        """The probe's loop, even with an attacker that answers whoami:
        401 for every attempt, nothing reaches the attacker."""
        c = self.shared
        c.wait_members_known()
        leader = c.leader()
        fid = c.followers()[0].node_id
        attacker = Attacker(whoami_id=fid)
        stop = threading.Event()
        answers = []
        t = threading.Thread(target=hijack_loop, args=(
            c, fid, attacker.address, stop, answers))
        t.start()
        time.sleep(1.5)
        stop.set()
        t.join(10)
        attacker.close()
        self.assertGreater(len(answers), 0)
        self.assertEqual({st for _, st, _ in answers}, {401}, answers[:3])
        self.assertEqual(attacker.requests, [])
        got = {m["node_id"]: m["http_address"] for m in leader.members()}
        self.assertEqual(got[fid], c.node(fid).http_address)

    def test_member_with_wrong_secret_refused(self):
        """A 4th node with a wrong secret joins Raft (Raft traffic is not
        authenticated yet), but its announcement is refused: its HTTP
        address is never recorded, and it logs the refusal once."""
        c = self.shared
        leader = c.leader()
        n4 = c.add_node(4, {"cluster": {"secret_file": self.bad}})
        try:
            st, _, body = leader.request("POST", "/cluster/members", {
                "node_id": 4, "raft_address": n4.raft_address}, timeout=60)
            self.assertEqual(st, 200, body)
            c.wait_until(lambda: "status 403" in n4.log(), 10,
                         "node 4 told that its announcement was refused")
            for n in c.all():
                if n.node_id == 4:
                    continue
                m4 = [m for m in n.members() if m["node_id"] == 4]
                self.assertEqual(m4[0]["http_address"], "", m4)
            # Its relayed writes are not node-to-node routes: they work.
            st, _, body = n4.request("GET", "/cluster/status")
            self.assertEqual(st, 200)
        finally:
            lid = c.wait_leader(10)
            st, _, body = c.node(lid).request(
                "DELETE", "/cluster/members/4", timeout=60)
            self.assertEqual(st, 200, body)
            c.wait_leader(10, among=[c.node(i) for i in (1, 2, 3)])
            n4.stop()
            n4.cleanup()
            del c.nodes[4]


class MemberAddressValidation(ch.ClusterTestCase):

    @classmethod
    def setUpClass(cls):
        cls.start_shared_cluster(3)

    def leader(self):
        return self.shared.leader()

    def post_member(self, node, body):
        return node.request("POST", "/internal/members", body,
                            check_header=False)

    def test_bad_addresses_refused(self):
        """Not host:port, control characters, spaces, a bad port, too
        long: 400 bad_request, on the leader and on a follower; nothing
        of it reaches any node's log."""
        c = self.shared
        c.wait_members_known()
        leader = self.leader()
        fid = c.followers()[0].node_id
        bad = ["x y\r\nZ", "x y:80", "host", "host:", ":80", "host:0",
               "host:65536", "host:80x", "a\tb:80", "h\x00:80",
               "x" * 300 + ":80", "[::1:80", "::1:80", "a/b:80",
               "a@b:80", ""]
        for addr in bad:
            for n in (leader, c.followers()[0]):
                st, _, body = self.post_member(n, {
                    "node_id": fid, "http_address": addr})
                self.assertEqual(st, 400, (addr, body))
                self.assertEqual(body.get("code"), "bad_request", body)
        for n in c.all():
            self.assertNotIn("x y", n.log())
            self.assertNotIn("\r\nZ", n.log())

    def test_unknown_node_refused(self):
        """An id that is not a member of the Raft configuration: 404
        unknown_member."""
        leader = self.leader()
        st, _, body = self.post_member(leader, {
            "node_id": 99, "http_address": "127.0.0.1:1234"})
        self.assertEqual(st, 404, body)
        self.assertEqual(body.get("code"), "unknown_member", body)

    def test_leader_id_refused(self):
        """The leader records its own address itself: an announcement
        for its id is refused (409 conflict)."""
        leader = self.leader()
        st, _, body = self.post_member(leader, {
            "node_id": leader.node_id, "http_address": "127.0.0.1:1234"})
        self.assertEqual(st, 409, body)
        self.assertEqual(body.get("code"), "conflict", body)

    def test_cluster_members_http_address_validated(self):
        """POST /cluster/members checks http_address the same way."""
        leader = self.leader()
        for addr in ("x y\r\nZ", "host", "h:0", "a b:80"):
            st, _, body = leader.request("POST", "/cluster/members", {
                "node_id": 7, "raft_address": "127.0.0.1:1",
                "http_address": addr})
            self.assertEqual(st, 400, (addr, body))

    def test_whoami(self):
        """GET /internal/whoami answers the node's id and addresses."""
        for n in self.shared.all():
            st, _, body = n.request("GET", "/internal/whoami")
            self.assertEqual(st, 200, body)
            self.assertEqual(body["node_id"], n.node_id)
            self.assertEqual(body["http_address"], n.http_address)
            self.assertEqual(body["raft_address"], n.raft_address)

    def test_real_announcements_work(self):
        """Every node's real address is known everywhere (announcements
        through the leader's call-back still work)."""
        c = self.shared
        c.wait_members_known()
        for n in c.all():
            got = {m["node_id"]: m["http_address"] for m in n.members()}
            self.assertEqual(got, {x.node_id: x.http_address
                                   for x in c.all()})


class AddressesOnOneHost(ch.ClusterTestCase):
    """Nodes on different loopback addresses of one machine (as in the
    docker smoke test, where every address sits on one `lo`): the kernel
    would pick 127.0.0.1 as the source of a connection to the leader, so
    the announcer binds its Raft host as the source; every follower's
    address is recorded without a secret."""

    def test_announcements_from_their_raft_hosts(self):
        c = self.new_cluster(3, start=False)
        for i, n in c.nodes.items():
            n.host = "127.0.0.%d" % (i + 1)
        c.initial_members = [c.nodes[i].raft_address for i in (1, 2, 3)]
        c.start_all()
        c.wait_members_known(timeout=15)
        for n in c.all():
            got = {m["node_id"]: m["http_address"] for m in n.members()}
            self.assertEqual(got, {x.node_id: x.http_address
                                   for x in c.all()})
            self.assertNotIn("status 403", n.log())


class CatchUpWithSecret(ch.ClusterTestCase):
    """Snapshot catch-up fetches records from the leader's
    /internal/records: with a secret it sends it, and catches up."""

    def test_follower_catches_up_from_a_snapshot(self):
        tmp = tempfile.mkdtemp(prefix="secret-")
        try:
            path = secret_file(tmp, "s", SECRET)
            c = self.new_cluster(3, {"cluster": {
                "secret_file": path, "snapshot_entries": 50,
                "compaction_overhead": 10}})
            leader = c.leader()
            leader.create_topic("cu", partitions=1)
            leader.produce("cu", "first")
            c.wait_identical("cu", 10, nodes=c.all())
            down = c.followers()[0]
            c.stop(down.node_id)
            for i in range(300):
                leader.produce("cu", "v-%d" % i)
            self.assertGreater(leader.raft()["snapshot_index"], 0)
            c.start(down.node_id)
            c.wait_identical("cu", 30, nodes=c.all())
            self.assertIn("records fetched from the leader", down.log())
            for n in c.all():
                self.assertNotIn("refused", n.log())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ch.main()
