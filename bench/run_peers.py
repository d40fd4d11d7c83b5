#!/usr/bin/env python3
"""Runs the same backups with several deduplicating backup tools ("peers") in one invocation,
so that their ratios hold on a shared, noisy machine.

    python3 bench/run_peers.py [--mode stream|tree] [--reps N] [--gens N] [--keep] PEER...

For every peer and repetition: a fresh repository, then every generation of the dataset
(bench/gen_dataset.py) backed up in order, then the last one restored and compared with its
source (b3sum). --mode stream sends OUT/tars/genN.tar as one stream on stdin (what a backup
application sends to a deduplicating target); --mode tree backs up OUT/trees/genN, moved to
the fixed path DS/src first so that a tool's file cache can skip unchanged files.

Peers: restic, restic-nocomp, borg, borg-zstd3, borg-64k, rustic (RUSTIC=path to its binary)
and engine: any other tool, as shell templates in the environment, run by bash with REPO,
GEN, SRC, DEST and WORK set:
    ENGINE_INIT, ENGINE_BACKUP_STREAM, ENGINE_RESTORE_STREAM (DEST is a file),
    ENGINE_BACKUP_TREE, ENGINE_RESTORE_TREE (DEST is a directory), ENGINE_REPO_SIZE (optional)
Environment: DS (dataset, default /tmp/qorestor-bench/ds), WORK (scratch, default
/tmp/qorestor-bench/work), RESULTS (default /tmp/qorestor-bench/results; rows are appended to
RESULTS/peers.csv), DROP_CACHES=1 to evict the repository's files from the page cache before
the restore (posix_fadvise on its own files only).
CSV columns: peer,mode,rep,gen,op,logical_bytes,wall_s,user_s,sys_s,maxrss_kb,repo_bytes,MBps,load1,verified
Needs /usr/bin/time (Debian package time) and b3sum.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

COLUMNS = "peer,mode,rep,gen,op,logical_bytes,wall_s,user_s,sys_s,maxrss_kb,repo_bytes,MBps,load1,verified"


def peer_commands(peer):
    """The shell templates of a peer: init, backup and restore per mode, repository size."""
    if peer in ("restic", "restic-nocomp"):
        z = "off" if peer == "restic-nocomp" else "auto"
        return {
            "env": {"RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": "$WORK/restic-cache"},
            "init": 'restic -q -r "$REPO" init --repository-version 2',
            "backup_stream": f'restic -q -r "$REPO" backup --compression {z} --host bench --stdin --stdin-filename "$GEN.tar" < "$SRC"',
            "restore_stream": 'T=$(mktemp -d -p "$WORK") && restic -q -r "$REPO" restore latest --target "$T" && mv "$T/$GEN.tar" "$DEST" && rm -rf "$T"',
            "backup_tree": f'cd "$(dirname "$SRC")" && restic -q -r "$REPO" backup --compression {z} --host bench "$SRC"',
            "restore_tree": 'restic -q -r "$REPO" restore latest --target "$DEST.t" && mv "$DEST.t$SRC" "$DEST" && rm -rf "$DEST.t"',
        }
    if peer == "rustic":
        r = os.environ.get("RUSTIC", "/tmp/qorestor-bench/rustic-install/bin/rustic")
        return {
            "env": {"RUSTIC_PASSWORD": "bench", "RUSTIC_CACHE_DIR": "$WORK/rustic-cache"},
            "init": f'{r} --no-progress -r "$REPO" init',
            "backup_stream": f'{r} --no-progress -r "$REPO" backup --host bench --stdin-filename "$GEN.tar" - < "$SRC"',
            "restore_stream": f'T=$(mktemp -d -p "$WORK") && {r} --no-progress -r "$REPO" restore latest "$T" && mv "$T/$GEN.tar" "$DEST" && rm -rf "$T"',
            "backup_tree": f'{r} --no-progress -r "$REPO" backup --host bench "$SRC"',
            "restore_tree": f'{r} --no-progress -r "$REPO" restore latest "$DEST.t" && mv "$DEST.t$SRC" "$DEST" && rm -rf "$DEST.t"',
        }
    if peer in ("borg", "borg-zstd3", "borg-64k"):
        extra = {"borg": "", "borg-zstd3": "-C zstd,3", "borg-64k": "--chunker-params buzhash,14,23,16,4095"}[peer]
        return {
            "env": {"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                    "BORG_BASE_DIR": "$WORK/borg-base"},
            "init": 'borg init -e none "$REPO"',
            "backup_stream": f'borg create {extra} --stdin-name "$GEN.tar" "$REPO::$GEN" - < "$SRC"',
            "restore_stream": 'T=$(mktemp -d -p "$WORK") && cd "$T" && borg extract "$REPO::$GEN" && mv "$GEN.tar" "$DEST" && cd / && rm -rf "$T"',
            "backup_tree": f'borg create {extra} "$REPO::$GEN" "$SRC"',
            "restore_tree": 'mkdir -p "$DEST.t" && cd "$DEST.t" && borg extract "$REPO::$GEN" && mv "$DEST.t$SRC" "$DEST" && cd / && rm -rf "$DEST.t"',
        }
    if peer == "engine":
        if "ENGINE_INIT" not in os.environ:
            sys.exit("run_peers: the engine peer needs ENGINE_INIT and the ENGINE_BACKUP_*/RESTORE_* templates")
        return {"env": {}, **{k: os.environ.get("ENGINE_" + k.upper(), "")
                              for k in ("init", "backup_stream", "restore_stream", "backup_tree", "restore_tree", "repo_size")}}
    sys.exit(f"run_peers: unknown peer {peer}")


class Step:
    """One command under /usr/bin/time -v: wall, user and system seconds, peak RSS."""

    def __init__(self, raw, name, template, variables):
        timing = raw / f"{name}.time"
        env = dict(os.environ, **variables)
        with open(raw / f"{name}.out", "wb") as out:
            p = subprocess.run(["/usr/bin/time", "-v", "-o", str(timing), "bash", "-c", template], env=env,
                               stdout=out, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            sys.exit(f"run_peers: {name} failed: {template}\n{(raw / f'{name}.out').read_text()[-2000:]}")
        fields = dict(line.strip().split(": ", 1) for line in timing.read_text().splitlines() if ": " in line)
        clock = [float(x) for x in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
        self.wall = sum(v * 60 ** i for i, v in enumerate(reversed(clock)))
        self.user, self.sys = float(fields["User time (seconds)"]), float(fields["System time (seconds)"])
        self.rss = int(fields["Maximum resident set size (kbytes)"])


def b3sum(path):
    return subprocess.run(["b3sum", "--no-names", str(path)], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()


def tree_sums(root):
    files = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink())
    return [(f, b3sum(Path(root) / f)) for f in files]


def evict(repo):
    for p in Path(repo).rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mode", choices=["stream", "tree"], default="stream")
    ap.add_argument("-r", "--reps", type=int, default=1)
    ap.add_argument("-g", "--gens", type=int, help="generations to back up (default: all)")
    ap.add_argument("-k", "--keep", action="store_true", help="keep each repository after its run")
    ap.add_argument("peers", nargs="+")
    args = ap.parse_args()
    if shutil.which("b3sum") is None or not os.access("/usr/bin/time", os.X_OK):
        sys.exit("run_peers: needs b3sum and /usr/bin/time (Debian packages b3sum, time)")
    ds = Path(os.environ.get("DS", "/tmp/qorestor-bench/ds"))
    work = Path(os.environ.get("WORK", "/tmp/qorestor-bench/work"))
    results = Path(os.environ.get("RESULTS", "/tmp/qorestor-bench/results"))
    raw = results / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    gens = args.gens or len(list((ds / "tars").glob("gen*.tar")))
    if gens == 0:
        sys.exit(f"run_peers: no dataset at {ds} (python3 bench/gen_dataset.py {ds})")
    csv = results / "peers.csv"
    if not csv.exists() or csv.stat().st_size == 0:
        csv.write_text(COLUMNS + "\n")

    def row(*cells):
        with csv.open("a") as f:
            f.write(",".join(str(c) for c in cells) + "\n")

    def logical(g):
        if args.mode == "stream":
            return (ds / "tars" / f"gen{g}.tar").stat().st_size
        return sum(e["size"] for e in json.loads((ds / "manifests" / f"gen{g}.json").read_text()).values())

    for peer in args.peers:
        c = peer_commands(peer)
        for rep in range(1, args.reps + 1):
            repo = work / f"repo-{peer}"
            for d in (repo, work / "restic-cache", work / "rustic-cache", work / "borg-base"):
                shutil.rmtree(d, ignore_errors=True)
            base = {"REPO": str(repo), "WORK": str(work), "GEN": "init", "SRC": "/dev/null", "DEST": ""}
            base.update({k: v.replace("$WORK", str(work)) for k, v in c["env"].items()})
            Step(raw, f"{peer}-{args.mode}-r{rep}-init", c["init"], base)
            size_cmd = c.get("repo_size") or 'du -sb "$REPO" | cut -f1'
            for g in range(1, gens + 1):
                v = dict(base, GEN=f"gen{g}")
                if args.mode == "stream":
                    v["SRC"] = str(ds / "tars" / f"gen{g}.tar")
                    subprocess.run(["cat", v["SRC"]], stdout=subprocess.DEVNULL)  # every peer reads from the page cache
                    template = c["backup_stream"]
                else:
                    (ds / "trees" / f"gen{g}").rename(ds / "src")
                    v["SRC"] = str(ds / "src")
                    template = c["backup_tree"]
                load = open("/proc/loadavg").read().split()[0]
                try:
                    s = Step(raw, f"{peer}-{args.mode}-r{rep}-gen{g}-backup", template, v)
                finally:
                    if args.mode == "tree":
                        (ds / "src").rename(ds / "trees" / f"gen{g}")
                repo_bytes = subprocess.run(["bash", "-c", size_cmd], env=dict(os.environ, **v), stdout=subprocess.PIPE,
                                            text=True).stdout.strip()
                mbps = logical(g) / s.wall / 1e6 if s.wall else 0
                row(peer, args.mode, rep, g, "backup", logical(g), s.wall, s.user, s.sys, s.rss, repo_bytes, f"{mbps:.1f}", load, "")
                print(f"{peer} {args.mode} rep {rep} gen{g} backup: {s.wall:.2f} s ({mbps:.1f} MB/s) "
                      f"user {s.user} sys {s.sys} rss {s.rss} KB, repository {repo_bytes} bytes, load {load}", flush=True)
            if os.environ.get("DROP_CACHES") == "1":
                evict(repo)
            v = dict(base, GEN=f"gen{gens}")
            load = open("/proc/loadavg").read().split()[0]
            if args.mode == "stream":
                v["SRC"], v["DEST"] = str(ds / "tars" / f"gen{gens}.tar"), str(work / f"restored-gen{gens}.tar")
                Path(v["DEST"]).unlink(missing_ok=True)
                s = Step(raw, f"{peer}-{args.mode}-r{rep}-restore", c["restore_stream"], v)
                verified = "ok" if Path(v["DEST"]).exists() and b3sum(v["DEST"]) == b3sum(v["SRC"]) else "MISMATCH"
                Path(v["DEST"]).unlink(missing_ok=True)
            else:
                v["SRC"], v["DEST"] = str(ds / "src"), str(work / f"restored-gen{gens}")
                shutil.rmtree(v["DEST"], ignore_errors=True)
                s = Step(raw, f"{peer}-{args.mode}-r{rep}-restore", c["restore_tree"], v)
                verified = "ok" if tree_sums(v["DEST"]) == tree_sums(ds / "trees" / f"gen{gens}") else "MISMATCH"
                shutil.rmtree(v["DEST"], ignore_errors=True)
            mbps = logical(gens) / s.wall / 1e6 if s.wall else 0
            row(peer, args.mode, rep, gens, "restore", logical(gens), s.wall, s.user, s.sys, s.rss, repo_bytes, f"{mbps:.1f}", load, verified)
            print(f"{peer} {args.mode} rep {rep} restore gen{gens}: {s.wall:.2f} s ({mbps:.1f} MB/s) "
                  f"user {s.user} sys {s.sys} rss {s.rss} KB, verified {verified}", flush=True)
            row(peer, args.mode, rep, gens, "repo_files", "", "", "", "", "", sum(1 for p in repo.rglob("*") if p.is_file()), "", "", "")
            if not args.keep:
                shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
