"""End-to-end harness: runs the real broker binary on a free loopback port
with a throw-away data directory, and talks HTTP/JSON to it.

Python 3 standard library only. Cluster tests import it through sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
    import harness

Every Broker started here is stopped and its temp directory removed at
exit, even when a test fails half-way (atexit + BrokerTestCase.tearDown).
"""
import atexit
import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

BROKER_BIN = os.environ.get("BROKER_BIN", "/work/main/build/broker")
BROKER_SRC = os.environ.get(
    "BROKER_SRC",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL = 0.02

# What a sanitizer writes when it finds something (ASan, UBSan, LSan).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "ThreadSanitizer")

_live = []  # every Broker not yet cleaned up, for atexit
_sanitized = None


def broker_is_sanitized():
    """True when BROKER_BIN is built with ASan/UBSan (BROKER_SANITIZE=ON):
    some bugs are only observable there."""
    global _sanitized
    if _sanitized is None:
        try:
            with open(BROKER_BIN, "rb") as f:
                data = f.read()
            _sanitized = b"__asan_init" in data or b"__ubsan_handle" in data
        except OSError:
            _sanitized = False
    return _sanitized


def expected_failure_if_sanitized(test):
    """@unittest.expectedFailure on a sanitizer build only: for a memory
    bug that a plain build cannot observe (the test passes there)."""
    return unittest.expectedFailure(test) if broker_is_sanitized() else test


def free_port(host="127.0.0.1"):
    """A port the kernel just handed out for `host` (bind to port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def deep_merge(base, over):
    """Copy of `base` with `over` merged in (nested dicts merged too)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def wait_until(pred, timeout, interval=POLL):
    """Poll `pred` until it returns something truthy; return that or None."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return None
        time.sleep(interval)


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


class BrokerError(AssertionError):
    """The broker misbehaved at the process level (start, stop, sanitizer)."""


class Broker:
    """One broker process with its own temp directory.

    `overrides` is merged into the base config (nested dicts merged), e.g.
    {"segment_size": 4096, "server": {"log_level": "debug"}}.
    """

    def __init__(self, overrides=None, start=True, name="broker",
                 check_node_header=True):
        self.tmp = tempfile.mkdtemp(prefix="e2e-%s-" % name)
        self.data_dir = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.stderr_path = os.path.join(self.tmp, "stderr.txt")
        self.config_path = os.path.join(self.tmp, "config.json")
        self.raft_dir = os.path.join(self.tmp, "raft")  # for cluster configs
        self.host = "127.0.0.1"
        self.port = None
        self.overrides = overrides or {}
        self.proc = None
        self.check_node_header = check_node_header
        self.cleaned = False
        # Set once a BrokerError was raised: later checks (tearDown,
        # cleanup) must not report the same problem again.
        self.problem_reported = False
        _live.append(self)
        if start:
            self.start()

    # ---- configuration and process ----

    def config(self):
        base = {
            "data_dir": self.data_dir,
            "server": {
                "host": self.host,
                "port": self.port,
                "log_file": self.log_path,
                "log_level": "info",
            },
        }
        return deep_merge(base, self.overrides)

    def write_config(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config(), f, indent=1)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, keep_port=True):
        """Start the binary and wait until /healthz answers 200.

        A port picked by free_port() can be taken by someone else before the
        broker binds it; the start is then retried on a new port."""
        assert not self.running(), "broker already running"
        for attempt in range(3):
            if self.port is None or not keep_port or attempt > 0:
                self.port = free_port(self.host)
            self.write_config()
            self._spawn()
            ok = self._wait_healthy()
            if ok:
                return self
            rc = self.proc.poll()
            log = self.log() + self.stderr()
            if rc is not None and "cannot listen" in log and attempt < 2:
                self._collect_stderr()
                continue
            self.kill9(check=False)
            self.fail(
                "broker did not become healthy within %.0f s (exit %s)\n"
                "--- stderr ---\n%s\n--- log tail ---\n%s"
                % (START_TIMEOUT, rc, tail(self.stderr()), tail(self.log())))
        raise BrokerError("broker could not bind a port")

    def _spawn(self):
        self.stderr_file = open(self.stderr_path, "ab")
        env = dict(os.environ)
        # No ASAN_OPTIONS override: ctest or the caller may set them.
        self.proc = subprocess.Popen(
            [BROKER_BIN, "-config=" + self.config_path],
            stdin=subprocess.DEVNULL, stdout=self.stderr_file,
            stderr=self.stderr_file, cwd=self.tmp, env=env)

    def _wait_healthy(self):
        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                st, _, _ = self.request("GET", "/healthz", timeout=1,
                                        check_header=False)
                return "ok" if st == 200 else None
            except OSError:
                return None
        return wait_until(ready, START_TIMEOUT) == "ok"

    def _collect_stderr(self):
        if getattr(self, "stderr_file", None):
            self.stderr_file.close()
            self.stderr_file = None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; assert exit status 0 within `timeout` and no sanitizer
        report. Returns the exit status."""
        if not self.running():
            rc = self.proc.returncode if self.proc else None
            self._collect_stderr()
            self.check_sanitizers()
            if rc not in (0, None, -9) and not self.problem_reported:
                self.fail("broker had already exited with %s\n%s"
                          % (rc, tail(self.stderr() + self.log())))
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9(check=False)
            self.fail("broker did not exit within %.0f s of SIGTERM\n"
                      "--- log tail ---\n%s" % (timeout, tail(self.log())))
        self._collect_stderr()
        self.check_sanitizers()
        if rc != 0:
            self.fail("broker exited with %s after SIGTERM\n"
                      "--- stderr ---\n%s\n--- log tail ---\n%s"
                      % (rc, tail(self.stderr()), tail(self.log())))
        return rc

    def kill9(self, check=True):
        """SIGKILL (a crash); the data dir stays. With `check`, a broker
        that had already died on its own (a crash the test did not ask
        for) is reported."""
        if self.running():
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
        elif check and self.proc is not None and \
                self.proc.returncode not in (0, -9) and \
                not self.problem_reported:
            self._collect_stderr()
            self.fail("broker had already died with %s before kill -9\n%s"
                      % (self.proc.returncode,
                         tail(self.stderr() + self.log())))
        self._collect_stderr()

    def restart(self, overrides=None, hard=False):
        """Stop (SIGTERM and exit 0, or kill -9 when `hard`) and start again
        with the same data dir (and, if still free, the same port)."""
        if hard:
            self.kill9()
        else:
            self.stop()
        if overrides is not None:
            self.overrides = deep_merge(self.overrides, overrides)
        return self.start()

    def cleanup(self):
        """Kill if still running and remove the temp dir. Raises BrokerError
        afterwards if a sanitizer reported something."""
        if self.cleaned:
            return
        self.cleaned = True
        try:
            self.kill9(check=False)
            report = "" if self.problem_reported else self.sanitizer_report()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self in _live:
                _live.remove(self)
        if report:
            raise BrokerError("sanitizer report:\n" + report)

    # ---- logs ----

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def sanitizer_report(self):
        text = self.stderr() + "\n" + self.log()
        for m in SANITIZER_MARKERS:
            i = text.find(m)
            if i >= 0:
                return text[max(0, i - 200):i + 4000]
        return ""

    def check_sanitizers(self):
        report = self.sanitizer_report()
        if report and not self.problem_reported:
            self.fail("sanitizer report:\n" + report)

    def fail(self, msg):
        """Raise BrokerError once per broker."""
        self.problem_reported = True
        raise BrokerError(msg)

    def cpu_ticks(self):
        """utime + stime of the broker process, in clock ticks."""
        with open("/proc/%d/stat" % self.pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    # ---- HTTP ----

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method, path, body=None, headers=None, timeout=10,
                check_header=None):
        """One HTTP request on a fresh connection.

        body: dict/list (sent as JSON), str or bytes (sent as is; pass the
        Content-Type in headers). Returns (status, headers, data) where data
        is the parsed JSON for a JSON answer, else the raw bytes."""
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body
        conn = http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            status, rh = resp.status, resp.headers
        finally:
            conn.close()
        check = self.check_node_header if check_header is None else check_header
        if check and rh.get("X-Broker-Node") is None:
            raise AssertionError("%s %s -> %d without X-Broker-Node"
                                 % (method, path, status))
        ctype = rh.get("Content-Type", "")
        data = raw
        if ctype.startswith("application/json") and raw:
            data = json.loads(raw)
        return status, rh, data

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # ---- API helpers ----

    @staticmethod
    def q(name):
        """Percent-encode a path segment (nothing left unencoded but
        unreserved characters)."""
        return urllib.parse.quote(name, safe="")

    def create_topic(self, name, partitions=None, retention_time=None,
                     expect=201):
        body = {"name": name}
        if partitions is not None:
            body["partitions"] = partitions
        if retention_time is not None:
            body["retention_time"] = retention_time
        st, h, data = self.post("/topics", body)
        if expect is not None and st != expect:
            raise AssertionError("create topic %s: %d %r" % (name, st, data))
        return st, data

    def produce(self, topic, value=None, key=None, headers=None,
                partition=None, expect=201, **extra):
        """Produce one JSON record; returns the parsed answer."""
        rec = {"value": value}
        if key is not None:
            rec["key"] = key
        if headers is not None:
            rec["headers"] = headers
        if partition is not None:
            rec["partition"] = partition
        rec.update(extra)
        st, h, data = self.post("/topics/%s/messages" % self.q(topic), rec)
        if expect is not None and st != expect:
            raise AssertionError("produce to %s: %d %r" % (topic, st, data))
        return data

    def produce_batch(self, topic, records, expect=201):
        st, h, data = self.post("/topics/%s/messages" % self.q(topic),
                                {"records": records})
        if expect is not None and st != expect:
            raise AssertionError("produce batch to %s: %d %r"
                                 % (topic, st, data))
        return data

    def produce_raw(self, topic, payload, content_type, key=None,
                    partition=None, expect=201):
        qs = {}
        if key is not None:
            qs["key"] = key
        if partition is not None:
            qs["partition"] = partition
        path = "/topics/%s/messages" % self.q(topic)
        if qs:
            path += "?" + urllib.parse.urlencode(qs)
        st, h, data = self.post(path, payload,
                                headers={"Content-Type": content_type})
        if expect is not None and st != expect:
            raise AssertionError("raw produce to %s: %d %r"
                                 % (topic, st, data))
        return data

    def fetch(self, topic, partition=0, expect=200, timeout=40, **params):
        """GET .../messages with query params (offset, limit, wait_ms,
        max_bytes). Returns (status, body)."""
        path = "/topics/%s/partitions/%s/messages" % (self.q(topic),
                                                      partition)
        if params:
            path += "?" + urllib.parse.urlencode(params)
        st, h, data = self.get(path, timeout=timeout)
        if expect is not None and st != expect:
            raise AssertionError("fetch %s: %d %r" % (path, st, data))
        return st, data

    def fetch_all(self, topic, partition=0, offset="earliest"):
        """Every message of a partition from `offset` to the high watermark."""
        out = []
        while True:
            _, data = self.fetch(topic, partition, offset=offset, limit=10000)
            out.extend(data["messages"])
            if not data["messages"] or data["next_offset"] >= data["high_watermark"]:
                return out
            offset = data["next_offset"]

    def topic_info(self, topic):
        st, _, data = self.get("/topics/%s" % self.q(topic))
        if st != 200:
            raise AssertionError("GET topic %s: %d %r" % (topic, st, data))
        return data

    def metrics(self):
        st, h, data = self.get("/metrics")
        assert st == 200, st
        return data.decode()

    def waiters(self):
        """Parked long polls and claims (broker_longpoll_waiters)."""
        for line in self.metrics().splitlines():
            if line.startswith("broker_longpoll_waiters "):
                return int(float(line.split()[1]))
        return None

    def wait_waiters(self, n, timeout=5):
        """Wait until at least `n` requests are parked; True if they are.
        Better than sleeping a guessed time before waking them."""
        return bool(wait_until(lambda: (self.waiters() or 0) >= n, timeout))

    def raw_exchange(self, data, read_timeout=5.0, shutdown_write=False):
        """Send raw bytes on a new socket and read until the server closes
        or `read_timeout` passes without data. Returns (bytes, closed)."""
        s = socket.create_connection((self.host, self.port), timeout=5)
        try:
            s.sendall(data)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
            return read_answer(s, read_timeout)
        finally:
            s.close()

    def topic_dir(self, topic, partition=None):
        d = os.path.join(self.data_dir, "topics", topic)
        return d if partition is None else os.path.join(d, str(partition))


def read_answer(sock, read_timeout):
    """Read from `sock` until it is closed or idle for `read_timeout`;
    stops early once one full HTTP response (by Content-Length) arrived.
    Returns (bytes, closed_by_peer)."""
    sock.settimeout(read_timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return buf, False
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
        if response_complete(buf):
            return buf, False


def response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return False


def parse_raw_response(buf):
    """(status, {lower-case header: value}, body bytes) of a raw answer."""
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    return status, hdrs, body


def run_broker_cli(args, timeout=10, cwd=None):
    """Run the binary with `args` (not as a server that must be stopped);
    returns CompletedProcess (text). Kills it after `timeout`. Without
    `cwd` it runs in a throw-away directory, so that a broker that starts
    by mistake never touches ./data of the caller."""
    if cwd is None:
        tmp = tempfile.mkdtemp(prefix="e2e-cli-")
        try:
            return run_broker_cli(args, timeout, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return subprocess.run([BROKER_BIN] + list(args), capture_output=True,
                          text=True, timeout=timeout, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def _on_sigterm(signum, frame):
    # ctest kills a test that runs past its TIMEOUT with SIGTERM: exit
    # through atexit so that no broker or temp dir is left behind.
    sys.exit(128 + signum)


if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


@atexit.register
def _cleanup_all():
    for b in list(_live):
        try:
            b.cleanup()
        except BrokerError as e:
            sys.stderr.write("harness cleanup: %s\n" % e)
            # atexit cannot change the exit status: make it loud and fail.
            os._exit(1)


class BrokerTestCase(unittest.TestCase):
    """Base class: `self.new_broker(...)` gives a broker that is stopped
    (exit 0 asserted) and cleaned up after the test. A class-wide broker
    can be made with `cls.shared = cls.start_shared(...)` in setUpClass."""

    shared = None

    @classmethod
    def start_shared(cls, overrides=None):
        b = Broker(overrides, name=cls.__name__)
        cls.shared = b
        return b

    @classmethod
    def tearDownClass(cls):
        b, cls.shared = cls.shared, None
        if b is not None:
            try:
                if b.running():
                    b.stop()
                else:
                    b.check_sanitizers()
            finally:
                b.cleanup()

    def setUp(self):
        self._brokers = []

    def new_broker(self, overrides=None, start=True):
        b = Broker(overrides, start=start, name=type(self).__name__)
        self._brokers.append(b)
        return b

    def tearDown(self):
        errors = []
        for b in self._brokers:
            try:
                if b.running():
                    b.stop()
                else:
                    b.check_sanitizers()
            except BrokerError as e:
                errors.append(str(e))
            finally:
                try:
                    b.cleanup()
                except BrokerError as e:
                    errors.append(str(e))
        if errors:
            self.fail("\n".join(errors))

    # ---- assertions shared by the test files ----

    def assertError(self, resp, status, code):
        """resp is (status, headers, data): an API.md error body."""
        st, _, data = resp
        self.assertEqual(st, status, data)
        self.assertIsInstance(data, dict, data)
        self.assertEqual(data.get("code"), code, data)
        self.assertIsInstance(data.get("error"), str, data)
        self.assertTrue(data["error"], data)
        return data


def main():
    """unittest.main that exits non-zero on any failure."""
    if not os.access(BROKER_BIN, os.X_OK):
        sys.stderr.write("BROKER_BIN %s is not an executable\n" % BROKER_BIN)
        sys.exit(2)
    unittest.main(verbosity=2)
