"""Network partitions between broker processes on one machine: each node
runs in its own network namespace, joined to the others by a veth pair on
a bridge in the root namespace (which the test process talks from).
Cutting node A from node B adds a blackhole route to B's address in A's
namespace and one to A's in B's: every packet between them (Raft and
forwarded HTTP alike) is dropped silently, while the test still reaches
both. Needs root and iproute2 (`ip`); `available()` says whether it
works here.

Addresses are 10.213.<k>.<node id>/24, bridge .254, k from the pid: the
traffic never leaves the machine. Everything is removed by close(), at
exit too."""
import atexit
import os
import re
import subprocess

_live = []


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def available():
    """(True, "") when namespaces can be made here, else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    try:
        r = _ip("netns", "list", check=False)
    except FileNotFoundError:
        return False, "iproute2 (ip) is not installed"
    if r.returncode != 0:
        return False, "ip netns: %s" % r.stderr.strip()
    return True, ""


def remove_stale():
    """Namespaces and links left by a run that was killed (ch<pid>...,
    with <pid> no longer alive)."""
    r = _ip("-o", "link", "show", check=False)
    names = [ln.split(":")[1].strip().split("@")[0]
             for ln in r.stdout.splitlines() if ":" in ln]
    r = _ip("netns", "list", check=False)
    names += [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]
    for name in names:
        m = re.match(r"^ch(\d+)(br|h\d+|n\d+)$", name)
        if not m or os.path.exists("/proc/%s" % m.group(1)):
            continue
        if m.group(2).startswith("n"):
            _ip("netns", "del", name, check=False)
        else:
            _ip("link", "del", name, check=False)


class Net:
    def __init__(self):
        pid = os.getpid()
        remove_stale()
        self.tag = "ch%d" % pid
        self.subnet = "10.213.%d" % (pid % 200 + 20)
        self.bridge = self.tag + "br"
        self.slots = set()
        self.blackholes = set()   # (from slot, to slot)
        self.closed = False
        _live.append(self)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", "%s.254/24" % self.subnet, "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def ns(self, slot):
        return "%sn%d" % (self.tag, slot)

    def ip(self, slot):
        return "%s.%d" % (self.subnet, slot)

    def add(self, slot):
        """Namespace + veth for node `slot` (1..250)."""
        if slot in self.slots:
            return
        ns, host, peer = self.ns(slot), "%sh%d" % (self.tag, slot), \
            "%sp%d" % (self.tag, slot)
        _ip("netns", "add", ns)
        self.slots.add(slot)
        _ip("link", "add", host, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", ns)
        _ip("link", "set", host, "master", self.bridge, "up")
        _ip("-n", ns, "addr", "add", "%s/24" % self.ip(slot), "dev", peer)
        _ip("-n", ns, "link", "set", peer, "up")
        _ip("-n", ns, "link", "set", "lo", "up")

    def exec_prefix(self, slot):
        return ["ip", "netns", "exec", self.ns(slot)]

    def cut(self, a, b):
        """Drop every packet between nodes a and b (both directions)."""
        for x, y in ((a, b), (b, a)):
            if (x, y) not in self.blackholes:
                _ip("-n", self.ns(x), "route", "add", "blackhole",
                    "%s/32" % self.ip(y))
                self.blackholes.add((x, y))

    def partition(self, side_a, side_b):
        for a in side_a:
            for b in side_b:
                self.cut(a, b)

    def heal(self):
        for x, y in sorted(self.blackholes):
            _ip("-n", self.ns(x), "route", "del", "blackhole",
                "%s/32" % self.ip(y), check=False)
        self.blackholes.clear()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for slot in sorted(self.slots):
            _ip("netns", "del", self.ns(slot), check=False)
            _ip("link", "del", "%sh%d" % (self.tag, slot), check=False)
        _ip("link", "del", self.bridge, check=False)
        if self in _live:
            _live.remove(self)


@atexit.register
def _close_all():
    for n in list(_live):
        n.close()
