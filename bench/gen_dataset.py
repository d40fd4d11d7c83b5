#!/usr/bin/env python3
"""The benchmark workload: nightly full backups of a changing file server.

    python3 bench/gen_dataset.py OUT [--size-gib 1] [--gens 5] [--seed 42] [--no-tar]

Writes, for N = 1 .. GENS:
    OUT/trees/genN        the file tree of night N (a file unchanged since night N-1 is a
                          hard link to its copy there, so the trees cost little more than one)
    OUT/tars/genN.tar     the same tree as one GNU tar stream: what a backup application
                          sends to a deduplicating target
    OUT/manifests/genN.json  {path: {"kind", "size", "blake2b"}} of every file
Night 1 holds SIZE GiB: server logs (30% of the bytes), JSON-lines exports (15%),
incompressible media and archives (30%), disk images with long zero runs (15%) and a
database-like file of fixed-size records (10%), a few large files among many small ones.
Every later night changes the previous one the way real data changes: small overwrites in
2% of the files, inserts and deletions that shift everything after them in 1%, appended
lines in 1% of the logs, 4 KiB page rewrites in half the large files, 1% new and 0.5%
deleted files. Everything (content, names, mtimes, the tar streams) follows from --seed,
so two runs with the same arguments write the same bytes (Python >= 3.9, GNU tar).
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
NIGHT = 86_400
EPOCH = 1_700_000_000
# kind: (share of night 1's bytes, file extension, sizes of its large files as fractions of the total)
KINDS = {
    "log": (0.30, "log", [0.03]),
    "jsonl": (0.15, "jsonl", []),
    "media": (0.30, "bin", [0.045, 0.045]),
    "image": (0.15, "img", [0.06, 0.06]),
    "table": (0.10, "dat", [0.05]),
}
DIRECTORIES = ["home/ana", "home/ben", "home/chen", "srv/shop", "srv/api", "srv/www", "var/log/app",
               "var/lib/pg", "vm/disks", "media/photos", "exports/daily", "etc/app"]
SUBDIRECTORIES = ["", "2024", "2025", "old", "cache", "reports/q1", "reports/q2", "tmp"]
SERVICES = ["sshd", "nginx", "postgres", "backup-agent", "cron", "kernel", "api-gateway", "billing"]
WORDS = ("request served in ms user login logout session expired retry connection reset by peer "
         "checkpoint complete vacuum analyze table index scan cache miss hit upstream timeout "
         "order created paid shipped refund invoice customer id status ok warning error").split()


def words(rng, n):
    return " ".join(rng.choices(WORDS, k=n))


def log_text(rng, size, clock):
    lines, total = [], 0
    while total < size:
        clock += rng.randint(0, 3)
        line = (f"{clock} {rng.choice(SERVICES)}[{rng.randint(100, 32000)}]: "
                f"{words(rng, rng.randint(4, 14))} id={rng.getrandbits(32):08x}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def jsonl_text(rng, size):
    rows, total = [], 0
    while total < size:
        row = json.dumps({"id": rng.getrandbits(40), "customer": f"c{rng.randint(1, 50000)}",
                          "amount": round(rng.uniform(1, 900), 2), "status": rng.choice(WORDS),
                          "note": words(rng, rng.randint(1, 8))}) + "\n"
        rows.append(row)
        total += len(row)
    return "".join(rows).encode()[:size]


def disk_image(rng, size):
    """Blocks of 64 KiB: 60% zeros, 25% random, 15% text (file system metadata, logs)."""
    out = bytearray()
    while len(out) < size:
        pick = rng.random()
        if pick < 0.60:
            out += bytes(64 * KIB)
        elif pick < 0.85:
            out += rng.randbytes(64 * KIB)
        else:
            out += log_text(rng, 64 * KIB, EPOCH)
    return bytes(out[:size])


def table_file(rng, size):
    """Records of 128 bytes: key, timestamps, counters and a padded name, like a heap table."""
    record = struct.Struct("<QQIIdd64s16x")
    count = size // record.size + 1
    out = bytearray()
    for key in range(count):
        out += record.pack(key, EPOCH + key, rng.randint(0, 9), rng.getrandbits(32), rng.random(),
                           rng.uniform(0, 1e6), words(rng, 6).encode()[:64])
    return bytes(out[:size])


def content(rng, kind, size):
    if kind == "log":
        return log_text(rng, size, EPOCH + rng.getrandbits(20))
    if kind == "jsonl":
        return jsonl_text(rng, size)
    if kind == "media":
        return rng.randbytes(size)
    if kind == "image":
        return disk_image(rng, size)
    return table_file(rng, size)


def small_size(rng):
    """Most files are small; a few reach megabytes (log-normal, 200 B .. 8 MiB)."""
    return int(min(8 * MIB, max(200, rng.lognormvariate(10.5, 1.6))))


class Night:
    """One night's tree: {relative path: (kind, bytes)} kept in memory only for changed files."""

    def __init__(self, root, number):
        self.root, self.number, self.manifest = root, number, {}

    def write(self, rel, kind, data):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        stamp = EPOCH + self.number * NIGHT
        os.utime(path, (stamp, stamp))
        self.manifest[rel] = {"kind": kind, "size": len(data), "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest()}

    def link(self, previous, rel):
        os.makedirs(os.path.dirname(os.path.join(self.root, rel)), exist_ok=True)
        os.link(os.path.join(previous.root, rel), os.path.join(self.root, rel))
        self.manifest[rel] = previous.manifest[rel]


def new_name(rng, kind, taken, night):
    while True:
        rel = os.path.join(rng.choice(DIRECTORIES), rng.choice(SUBDIRECTORIES),
                           f"{rng.choice(WORDS)}-{night}-{rng.getrandbits(24):06x}.{KINDS[kind][1]}")
        if rel not in taken:
            return rel


def first_night(night, total, rng):
    for kind, (share, _, large) in KINDS.items():
        budget = int(total * share)
        for fraction in large:
            size = int(total * fraction)
            night.write(new_name(rng, kind, night.manifest, 1), kind, content(rng, kind, size))
            budget -= size
        while budget > 0:
            size = min(budget, small_size(rng))
            night.write(new_name(rng, kind, night.manifest, 1), kind, content(rng, kind, size))
            budget -= size


def read(night, rel):
    with open(os.path.join(night.root, rel), "rb") as f:
        return f.read()


def later_night(previous, night, rng):
    files = sorted(previous.manifest)
    deleted = set(rng.sample(files, len(files) // 200))
    for rel in files:
        if rel in deleted:
            continue
        kind, size = previous.manifest[rel]["kind"], previous.manifest[rel]["size"]
        pick = rng.random()
        data = None
        if size >= 32 * MIB and rng.random() < 0.5:
            # database or VM image pages rewritten in place: ~0.5% of its 4 KiB blocks
            data = bytearray(read(previous, rel))
            for _ in range(max(1, size // (4 * KIB) // 200)):
                at = rng.randrange(0, size // (4 * KIB)) * 4 * KIB
                data[at:at + 4 * KIB] = content(rng, kind, 4 * KIB)
        elif pick < 0.02:  # small overwrites, size kept
            data = bytearray(read(previous, rel))
            for _ in range(rng.randint(1, 8)):
                n = rng.randint(1, 512)
                at = rng.randrange(0, max(1, len(data) - n))
                data[at:at + n] = content(rng, kind, n)
        elif pick < 0.03:  # an insert or a deletion that shifts the rest of the file
            data = bytearray(read(previous, rel))
            at, n = rng.randrange(0, len(data) + 1), rng.randint(1, 16 * KIB)
            if rng.random() < 0.5:
                data[at:at] = content(rng, kind, n)
            else:
                del data[at:at + n]
        elif kind == "log" and pick < 0.04:  # the log grew
            data = read(previous, rel) + log_text(rng, rng.randint(200, 64 * KIB), EPOCH + night.number * NIGHT)
        if data is None:
            night.link(previous, rel)
        else:
            night.write(rel, kind, bytes(data))
    for _ in range(len(files) // 100):
        kind = rng.choices(list(KINDS), weights=[v[0] for v in KINDS.values()])[0]
        night.write(new_name(rng, kind, night.manifest, night.number), kind, content(rng, kind, small_size(rng)))


def main():
    ap = argparse.ArgumentParser(description="Deterministic nightly-backup benchmark dataset.")
    ap.add_argument("out")
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--gens", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-tar", action="store_true", help="trees and manifests only")
    args = ap.parse_args()
    if sys.version_info < (3, 9):
        sys.exit("gen_dataset.py needs Python 3.9 or later (random.randbytes)")
    for sub in ("trees", "tars", "manifests"):
        shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)
        os.makedirs(os.path.join(args.out, sub))
    previous = None
    for number in range(1, args.gens + 1):
        rng = random.Random(f"{args.seed}/{number}")
        night = Night(os.path.join(args.out, "trees", f"gen{number}"), number)
        if previous is None:
            first_night(night, int(args.size_gib * GIB), rng)
        else:
            later_night(previous, night, rng)
        stamp = EPOCH + number * NIGHT
        for directory, _, _ in os.walk(night.root):
            os.utime(directory, (stamp, stamp))
        with open(os.path.join(args.out, "manifests", f"gen{number}.json"), "w") as f:
            json.dump(night.manifest, f, sort_keys=True)
        if not args.no_tar:
            subprocess.run(["tar", "--sort=name", "--format=gnu", "--owner=0", "--group=0", "--numeric-owner",
                            "-cf", os.path.join(args.out, "tars", f"gen{number}.tar"), "-C", night.root, "."], check=True)
        total = sum(e["size"] for e in night.manifest.values())
        print(f"gen{number}: {len(night.manifest)} files, {total / GIB:.3f} GiB", flush=True)
        previous = night


if __name__ == "__main__":
    main()
