#!/usr/bin/env python3
"""Simulated power loss for a STOPPED broker node (kill -9 it first).

A power cut keeps only what was fsync'd. The broker, started with
BROKER_FSYNC_LOG=<file> in its environment, appends "<size> <path>" to
that file after every successful fsync/fdatasync of a data file (see
fsutil_fsync_fd in src/core/fsutil.c): those bytes are durable. This tool
truncates every file under data_dir to the last size logged for it, and a
file that was never fsync'd to 0 bytes. The Raft directory
(cluster.data_dir) is left alone: c-raft writes its log with O_DSYNC, so
everything in it counts as synced.

Modes:
  drop-unsynced --data-dir D --fsync-log F [--cwd C]
      what a power loss leaves (C: the broker's working directory, for
      relative paths in the log)
  cut-records --data-dir D [--seed N] [--last 30]
      cut each partition's newest segment at a random record boundary
      among its last records (what a power loss before the background
      fsync can leave, without needing the fsync log)

Python 3 stdlib only; tests/chaos/chaos.py imports it.
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import damage  # noqa: E402


def read_sync_log(path, cwd=None):
    """{absolute path: last synced size} from a BROKER_FSYNC_LOG file. A
    last line without its newline (a write cut by kill -9) is ignored."""
    synced = {}
    try:
        with open(path, "r", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return synced
    for line in text.split("\n")[:-1]:
        size, sep, p = line.partition(" ")
        if not sep or not size.lstrip("-").isdigit():
            continue
        if not os.path.isabs(p):
            p = os.path.join(cwd or os.getcwd(), p)
        synced[os.path.normpath(p)] = int(size)
    return synced


def drop_unsynced(data_dir, sync_log, cwd=None):
    """Truncate every file under `data_dir` to its last fsync'd size (0 if
    never fsync'd). Returns [(path, old size, new size)] of the files it
    shortened."""
    synced = read_sync_log(sync_log, cwd)
    changed = []
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            p = os.path.normpath(os.path.join(root, name))
            size = os.path.getsize(p)
            keep = min(size, synced.get(p, 0))
            if keep < size:
                damage.truncate(p, keep)
                changed.append((p, size, keep))
    return changed


def cut_records(data_dir, rng, last=30):
    """Cut each partition's newest segment at a random record boundary
    among its `last` records; returns descriptions."""
    return damage.damage_tree(data_dir, damage.cut_random_boundary, rng,
                              last)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("drop-unsynced")
    d.add_argument("--data-dir", required=True)
    d.add_argument("--fsync-log", required=True)
    d.add_argument("--cwd")
    c = sub.add_parser("cut-records")
    c.add_argument("--data-dir", required=True)
    c.add_argument("--seed", type=int)
    c.add_argument("--last", type=int, default=30)
    a = ap.parse_args(argv)
    if a.mode == "drop-unsynced":
        for p, old, new in drop_unsynced(a.data_dir, a.fsync_log, a.cwd):
            print("%s: %d -> %d bytes" % (p, old, new))
    else:
        for line in cut_records(a.data_dir, random.Random(a.seed), a.last):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
