"""File damage on a stopped node's data_dir, in the ways disks and crashes
damage files: a tail cut inside a multi-record command (clean boundary or
torn record), a flipped byte in an old or the newest segment, a damaged
.index. Python 3 stdlib only; knows the on-disk format of docs/storage.md
(records: u32 length, u32 crc, u8 magic, u8 flags, u64 offset, i64
timestamp, u64 cmd_index, ...).

Each function returns a list of human-readable descriptions of what it did
(empty when there was nothing to damage)."""
import os
import struct

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
NAME_DIGITS = 20
RECORD_MIN = 46


class Record:
    __slots__ = ("pos", "size", "offset", "cmd")

    def __init__(self, pos, size, offset, cmd):
        self.pos, self.size, self.offset, self.cmd = pos, size, offset, cmd

    @property
    def end(self):
        return self.pos + self.size


def partition_dirs(data_dir):
    """Every <data_dir>/topics/<topic>/<partition> directory."""
    root = os.path.join(data_dir, "topics")
    out = []
    if not os.path.isdir(root):
        return out
    for t in sorted(os.listdir(root)):
        tdir = os.path.join(root, t)
        if not os.path.isdir(tdir):
            continue
        for p in sorted(os.listdir(tdir)):
            if p.isdigit() and os.path.isdir(os.path.join(tdir, p)):
                out.append(os.path.join(tdir, p))
    return out


def segments(part_dir):
    """Base offsets of the segments of a partition directory, ascending."""
    bases = []
    for name in os.listdir(part_dir):
        stem = name[:-len(LOG_SUFFIX)]
        if name.endswith(LOG_SUFFIX) and len(stem) == NAME_DIGITS and \
                stem.isdigit():
            bases.append(int(stem))
    return sorted(bases)


def log_path(part_dir, base):
    return os.path.join(part_dir, "%020d%s" % (base, LOG_SUFFIX))


def index_path(part_dir, base):
    return os.path.join(part_dir, "%020d%s" % (base, INDEX_SUFFIX))


def records(path):
    """The complete records of a .log file, in file order; stops at the
    first one that is cut short or has an impossible length."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    pos = 0
    while pos + RECORD_MIN <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        size = 4 + length
        if size < RECORD_MIN or pos + size > len(data):
            break
        offset, _ts, cmd = struct.unpack_from("<QqQ", data, pos + 10)
        out.append(Record(pos, size, offset, cmd))
        pos += size
    return out


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))


def cut_in_command(part_dir, rng, torn=None):
    """Cut the newest segment's tail inside the newest command that wrote
    two or more records to it: after one of its records but the last (a
    clean record boundary, what a power loss before the background fsync
    can leave), or in the middle of one of them (`torn`; random when
    None). Falls back to cutting the last record when no command wrote
    several records."""
    bases = segments(part_dir)
    if not bases:
        return []
    path = log_path(part_dir, bases[-1])
    recs = records(path)
    if not recs:
        return []
    torn = rng.random() < 0.5 if torn is None else torn
    by_cmd = {}
    for i, r in enumerate(recs):
        by_cmd.setdefault(r.cmd, []).append(i)
    multi = [ix for ix in by_cmd.values() if len(ix) >= 2]
    if multi:
        ix = max(multi, key=lambda ix: ix[0])
        if torn:
            victim = recs[rng.choice(ix[1:])]
            keep = victim.pos + rng.randint(1, victim.size - 1)
        else:
            keep = recs[rng.choice(ix[1:])].pos
        what = "inside command %d (%d records)" % (recs[ix[0]].cmd, len(ix))
    else:
        victim = recs[-1]
        keep = victim.pos + (rng.randint(1, victim.size - 1) if torn else 0)
        what = "in the last record (no multi-record command)"
    old = os.path.getsize(path)
    truncate(path, keep)
    return ["%s: cut %d -> %d bytes %s%s" % (path, old, keep, what,
                                             " (torn)" if torn else "")]


def cut_random_boundary(part_dir, rng, last=30):
    """Cut the newest segment at a random record boundary among its last
    `last` records (whole records lost, nothing torn)."""
    bases = segments(part_dir)
    if not bases:
        return []
    path = log_path(part_dir, bases[-1])
    recs = records(path)
    if not recs:
        return []
    r = rng.choice(recs[-last:])
    old = os.path.getsize(path)
    truncate(path, r.pos)
    return ["%s: cut %d -> %d bytes at the record of offset %d"
            % (path, old, r.pos, r.offset)]


def flip_record_byte(part_dir, rng, which):
    """Flip one byte inside a record (past its length field, so the length
    still parses and only the CRC can tell): in an older segment
    (`which` "old") or the newest one ("new")."""
    bases = segments(part_dir)
    if which == "old":
        bases = bases[:-1]
    else:
        bases = bases[-1:]
    if not bases:
        return []
    base = rng.choice(bases)
    path = log_path(part_dir, base)
    recs = records(path)
    if not recs:
        return []
    r = rng.choice(recs)
    pos = r.pos + rng.randint(8, r.size - 1)
    flip(path, pos)
    return ["%s: flipped byte %d (record of offset %d, record %d of %d)"
            % (path, pos, r.offset, recs.index(r) + 1, len(recs))]


def damage_index(part_dir, rng):
    """Damage one segment's .index: truncate it to an odd size, fill it
    with garbage, append entries pointing past the end of the .log, or
    remove it."""
    bases = segments(part_dir)
    if not bases:
        return []
    base = rng.choice(bases)
    path = index_path(part_dir, base)
    if not os.path.exists(path):
        return []
    size = os.path.getsize(path)
    how = rng.choice(["truncate", "garbage", "past-end", "remove"])
    if how == "truncate" and size > 0:
        truncate(path, rng.randint(0, size - 1) | 1 if size > 1 else 0)
    elif how == "garbage":
        with open(path, "r+b") as f:
            f.seek(rng.randint(0, max(0, size - 1)))
            f.write(bytes(rng.getrandbits(8) for _ in range(16)))
    elif how == "past-end":
        with open(path, "ab") as f:
            f.write(struct.pack("<II", 0x7fffffff, 0xfffffff0))
    else:
        os.remove(path)
    return ["%s: %s (was %d bytes)" % (path, how, size)]


def damage_tree(data_dir, func, rng, *args, partitions=None):
    """Apply `func(part_dir, rng, *args)` to every partition directory (or
    `partitions` of them, picked at random); returns all descriptions."""
    dirs = partition_dirs(data_dir)
    if partitions is not None and len(dirs) > partitions:
        dirs = rng.sample(dirs, partitions)
    out = []
    for d in dirs:
        out.extend(func(d, rng, *args))
    return out
