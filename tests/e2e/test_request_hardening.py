"""Requests a proxy in front of the broker could read differently are
refused with 400 (issue 9, found by the probe against libmicrohttpd
0.9.75): two Content-Length headers (MHD took the first), Content-Length
with Transfer-Encoding (MHD took chunked), "Host :" with a space before
the colon, a NUL byte in the path (MHD cut "/topics/ab\\0cd" to topic
"ab"). Error answers never show the server's data_dir paths (the log
keeps them). Raw sockets throughout."""
import os
import resource
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BODY = b'{"value":"smuggled"}'


def produce_head(extra, length=True):
    h = (b"POST /topics/hard/messages HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\n")
    if length:
        h += b"Content-Length: %d\r\n" % len(BODY)
    return h + extra + b"Connection: close\r\n\r\n"


class Hardening(harness.BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        b = cls.start_shared()
        b.create_topic("hard", partitions=1)
        b.create_topic("ab", partitions=1)

    def raw(self, data):
        buf, _ = self.shared.raw_exchange(data)
        self.assertTrue(buf, "no answer")
        return harness.parse_raw_response(buf), buf

    def assert_400_json(self, data, word=None):
        (st, hdrs, body), buf = self.raw(data)
        self.assertEqual(st, 400, buf[:300])
        self.assertTrue(hdrs.get("content-type", "").startswith(
            "application/json"), buf[:300])
        if word:
            self.assertIn(word, body.decode(), body)
        return body

    def hwm(self):
        return self.shared.topic_info("hard")["partitions"][0][
            "high_watermark"]

    def test_two_content_lengths(self):
        """Different values (the smuggling case) and equal ones: 400,
        nothing stored."""
        before = self.hwm()
        self.assert_400_json(produce_head(b"Content-Length: 5\r\n") + BODY,
                             "Content-Length")
        self.assert_400_json(produce_head(
            b"Content-Length: %d\r\n" % len(BODY)) + BODY, "Content-Length")
        self.assertEqual(self.hwm(), before)

    def test_content_length_and_chunked(self):
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
        before = self.hwm()
        self.assert_400_json(produce_head(
            b"Transfer-Encoding: chunked\r\n") + chunked, "Transfer-Encoding")
        self.assertEqual(self.hwm(), before)

    def test_odd_transfer_encodings(self):
        """A second Transfer-Encoding header, or one other than chunked."""
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
        before = self.hwm()
        self.assert_400_json(produce_head(
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            length=False) + chunked)
        self.assert_400_json(produce_head(
            b"Transfer-Encoding: gzip, chunked\r\n", length=False) + chunked)
        self.assertEqual(self.hwm(), before)

    def test_chunked_alone_still_works(self):
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
        (st, _, body), buf = self.raw(produce_head(
            b"Transfer-Encoding: chunked\r\n", length=False) + chunked)
        self.assertEqual(st, 201, buf[:300])

    def test_space_before_colon(self):
        self.assert_400_json(b"GET /topics/ab HTTP/1.1\r\nHost : x\r\n"
                             b"Connection: close\r\n\r\n", "header name")
        self.assert_400_json(b"GET /topics/ab HTTP/1.1\r\nHost: x\r\n"
                             b"X-A\t: 1\r\nConnection: close\r\n\r\n")

    def test_two_hosts(self):
        self.assert_400_json(b"GET /topics/ab HTTP/1.1\r\nHost: x\r\n"
                             b"Host: y\r\nConnection: close\r\n\r\n", "Host")

    def test_nul_in_path(self):
        """/topics/ab\\0cd was topic "ab": now 400, with and without a
        query; the plain path still works."""
        body = self.assert_400_json(b"GET /topics/ab\x00cd HTTP/1.1\r\n"
                                    b"Host: x\r\nConnection: close\r\n\r\n",
                                    "NUL")
        self.assertNotIn(b"\x00", body)
        self.assert_400_json(b"GET /topics/ab\x00cd?x=1 HTTP/1.1\r\nHost: x"
                             b"\r\nConnection: close\r\n\r\n", "NUL")
        self.assert_400_json(produce_head(b"").replace(
            b"/topics/hard/", b"/topics/ha\x00rd/") + BODY, "NUL")
        (st, _, _), buf = self.raw(b"GET /topics/ab?x=1&y HTTP/1.1\r\n"
                                   b"Host: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(st, 200, buf[:300])
        (st, _, _), buf = self.raw(b"GET /topics/ab HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n")
        self.assertEqual(st, 200, buf[:300])

    def test_negative_content_length(self):
        """Refused by libmicrohttpd itself before our handler runs (its
        answer repeats the status line: a 0.9.75 bug we cannot reach);
        the status is 400 and nothing is stored."""
        before = self.hwm()
        buf, _ = self.shared.raw_exchange(
            produce_head(b"", length=False).replace(
                b"Connection", b"Content-Length: -1\r\nConnection") + BODY)
        self.assertTrue(buf.startswith(b"HTTP/1.1 400 "), buf[:200])
        self.assertEqual(self.hwm(), before)

    def test_keep_alive_after_refusal_is_not_reused(self):
        """A refused smuggling attempt closes the connection: the bytes
        after it are never read as a second request."""
        second = (b"DELETE /topics/ab HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 0\r\n\r\n")
        data = (b"POST /topics/hard/messages HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 0\r\n"
                b"Content-Length: %d\r\n\r\n" % len(second)) + second
        buf, _ = self.shared.raw_exchange(data)
        self.assertIn(b" 400 ", buf.split(b"\r\n")[0])
        self.assertNotIn(b" 200 ", buf)
        self.assertIsNotNone(self.shared.topic_info("ab"))


class PathsNotShown(harness.BrokerTestCase):
    """A write that fails on disk (file size limit: EFBIG) answers 500
    without the data_dir path; the log has it."""

    def test_write_error_hides_data_dir(self):
        class Limited(harness.Broker):
            def _spawn(self):
                self.stderr_file = open(self.stderr_path, "ab")

                def limit():
                    # SIG_IGN survives exec: the write fails with EFBIG
                    # instead of the process dying of SIGXFSZ.
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE,
                                       (64 * 1024, 64 * 1024))
                self.proc = subprocess.Popen(
                    [harness.BROKER_BIN, "-config=" + self.config_path],
                    stdin=subprocess.DEVNULL, stdout=self.stderr_file,
                    stderr=self.stderr_file, cwd=self.tmp, preexec_fn=limit)

        b = Limited({"segment_size": 1 << 20}, start=False, name="fsize")
        self._brokers.append(b)
        b.start()
        b.create_topic("fill", partitions=1)
        err = None
        for i in range(200):
            st, _, data = b.request("POST", "/topics/fill/messages",
                                    {"value": "x" * 2000})
            if st != 201:
                err = (st, data)
                break
        self.assertIsNotNone(err, "the file size limit was never hit")
        st, data = err
        self.assertEqual(st, 500, data)
        self.assertNotIn(b.data_dir, data["error"])
        self.assertNotIn(b.tmp, data["error"])
        self.assertIn("<data_dir>", data["error"])
        self.assertIn(b.data_dir, b.log())


class ConnectionsPerClient(harness.BrokerTestCase):
    """server.max_connections_per_client: past it, a new connection from
    the same address is closed at once; others are served."""

    def test_limit(self):
        import socket
        b = self.new_broker({"server": {"max_connections_per_client": 3}})
        held = []
        try:
            for _ in range(3):
                s = socket.create_connection((b.host, b.port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                held.append(s)
            extra = socket.create_connection((b.host, b.port), timeout=5)
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
            buf, closed = harness.read_answer(extra, 3)
            extra.close()
            self.assertEqual(buf, b"")
            self.assertTrue(closed)
        finally:
            for s in held:
                s.close()
        def served():
            try:
                return b.request("GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False  # the held ones may not be closed yet
        self.assertTrue(harness.wait_until(served, 5))


if __name__ == "__main__":
    harness.main()
