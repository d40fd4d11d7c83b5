#!/usr/bin/env python3
"""Real-client NDMP checks: Amanda's ndmjob (the DMA and conformance tester of Amanda's
ndmp-src, built with its test fixes by harness/build_ndmjob.sh) against an NDMP tape server,
and tshark's NDMP dissector as an independent check of every frame on the wire.

    ndmp_probe.py --port PORT --user USER --password PW --tape DEVICE [options]
    ndmp_probe.py summarize CAPTURE [PORT]       per-message counts of a capture

Checks, for each --versions entry:
  query        CONFIG_GET_* through `ndmjob -q` with text authentication
  auth         MD5 authentication, and a wrong password refused
  mover        `ndmjob -o test-mover`, every phase
  e2e          tar backup of --source through our mover and back (10 KiB and 64 KiB
               records), the restored tree compared with the source
  robot        (with --robot) changer query through SCSI_EXECUTE_CDB, and a backup and
               restore where ndmjob moves a cartridge from --robot-slot into the drive
  tape         `ndmjob -o test-tape`, every phase T-OC .. T-MTIO
The capture (--capture, root and tshark needed) records the server's port on --iface and
decodes it with tshark; tshark's NDMP dissector decodes only port 10000.

Every check prints "PASS name", "FAIL name -- why" or "SKIP name -- why"; the last line is
"N passed, M failed, K skipped". Exit status 0 when nothing failed or was skipped, 1
otherwise, 2 for a usage or setup error. ndmjob exits 0 even when a test fails, so its
output is read instead. Logs are kept in WORK/logs.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOVER_PHASES = ["M-IDLE", "M-LISTEN", "M-LISTEN/bogus-args", "M-LISTEN/not-open",
                "M-LISTEN/tape-ro", "M-LISTEN/tape-rw"]
TAPE_PHASES = ["T-OC", "T-BGS", "T-BW", "T-BR", "T-BWR", "T-WRITE", "T-READ", "T-MTIO"]
ALL_TESTS = ["query", "auth", "mover", "e2e", "robot", "tape"]
# ndmjob's config: its resident DATA agent accepts only the backup types listed here.
NDMJOB_CONF = "[butype tar]\n\tv2attr 0\n\tv3attr 0\n\tv4attr 0\n"


class Report:
    def __init__(self):
        self.counts = Counter()

    def result(self, kind, name, why=""):
        self.counts[kind] += 1
        print(f"{kind:<5} {name}" + (f" -- {why}" if why else ""), flush=True)

    def check(self, name, ok, why):
        self.result("PASS" if ok else "FAIL", name, "" if ok else why)
        return ok


class Ndmjob:
    """Runs ndmjob with its log in LOGS/NAME.log and returns the log's text."""

    def __init__(self, args, work):
        self.args, self.work, self.logs = args, work, work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        (work / "bin").mkdir(exist_ok=True)
        shutil.copy(HERE / "ndmp" / "wrap_tar", work / "bin" / "wrap_tar")
        (work / "ndmjob.conf").write_text(NDMJOB_CONF)
        self.env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    def agent(self, flags, password=None):
        a = self.args
        return f"{a.host}:{a.port}/{flags},{a.user},{a.password if password is None else password}"

    def run(self, name, *argv):
        log = self.logs / f"{name}.log"
        cmd = [str(self.args.ndmjob), *argv]
        started = time.monotonic()
        try:
            p = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=self.args.timeout)
            out = p.stdout.decode(errors="replace") + f"\n[exit status {p.returncode}]\n"
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") + f"\n[TIMEOUT after {self.args.timeout} s]\n"
        log.write_text("$ " + " ".join(cmd) + "\n" + out)
        self.seconds = time.monotonic() - started
        return out


def lines_starting(text, prefix):
    return [l for l in text.splitlines() if l.startswith(prefix)]


def first_error(text):
    for l in text.splitlines():
        if ("err" in l or "ERR" in l or "FATAL" in l or "fail" in l) and not l.startswith("$ "):
            return l.strip()[:200]
    return "no error line; see the log"


def tape_agent_answered(text, v):
    return any(l.startswith('QR "Tape Agent') and f"NDMPv{v}" in l for l in text.splitlines())


def ndmjob_errors(text):
    # ndmjob's error notes look like: #1 "err connect-auth ..." (the digit is the log level)
    return [l for l in text.splitlines() if len(l) > 3 and l[0] == "#" and l[2:7] == ' "err']


def phased_suite(rep, job, op, v, phases, tape):
    """test-mover / test-tape: a PASS per phase; the suite stops at its first failure."""
    name = f"{op}-v{v}"
    text = job.run(name, "-o", op, "-T" + job.agent(str(v)), "-f", tape, "-v")
    for i, phase in enumerate(phases):
        if f'TEST "Test {phase} Passed' in text:
            rep.result("PASS", f"{name}:{phase}")
            continue
        # The reasons ndmjob gives: its Failed/Almost line, and the expect/got pairs it logs.
        why = [l for l in text.splitlines()
               if l.startswith(("Test ", "#T ")) and ("Failed" in l or "Almost" in l or '"err ' in l)]
        details = [l.split('"', 1)[1].rstrip('"') for l in text.splitlines()
                   if l.startswith('Test "') and " expect " in l and " got " in l]
        details = [d for d in details if d.split(" expect ")[1].split(" got ")[0].split("=")[-1]
                   != d.split(" got ")[1].split("=")[-1]]
        reason = (why[-1] if why else first_error(text))[:200]
        if details:
            reason += " (" + "; ".join(details[:4]) + ")"
        if "[TIMEOUT" in text:
            reason = f"timed out after {job.args.timeout} s"
        rep.result("FAIL", f"{name}:{phase}", reason)
        for later in phases[i + 1:]:
            rep.result("SKIP", f"{name}:{later}", f"not reached: the suite stopped at {phase}")
        return
    rep.check(f"{name}:FINAL", f'TEST "FINAL {op} Passed' in text, f"no 'FINAL {op} Passed' line")


def backup_and_restore(rep, job, name, source, restore_to, common):
    """One tar backup through the server's mover and its restore, compared with the source."""
    ok_line = lambda t: "Operation ended OKAY" in t and 'SESS "Operation complete"' in t.splitlines()
    text = job.run(f"e2e-backup-{name}", "-c", "-C", str(source), *common)
    print(f"TIME  e2e-backup-{name} {job.seconds:.2f} s", flush=True)
    robot_used = "-r" not in common or "Commanding robot to unload" in text
    if not rep.check(f"e2e-backup-{name}", ok_line(text) and robot_used, first_error(text)):
        rep.result("SKIP", f"e2e-restore-{name}", "no backup to restore")
        return
    shutil.rmtree(restore_to, ignore_errors=True)
    restore_to.mkdir(parents=True)
    text = job.run(f"e2e-restore-{name}", "-x", "-C", str(restore_to), *common)
    print(f"TIME  e2e-restore-{name} {job.seconds:.2f} s", flush=True)
    if not ok_line(text):
        rep.result("FAIL", f"e2e-restore-{name}", first_error(text))
        return
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(source), str(restore_to)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    (job.logs / f"e2e-diff-{name}.log").write_bytes(diff.stdout)
    rep.check(f"e2e-restore-{name}", diff.returncode == 0, f"the restored tree differs: {diff.stdout[:300]!r}")


def make_source(root):
    """A small tree with the file kinds a tar backup must keep: binary, text, empty file and
    directory, nested directories, a symbolic link and a size that is a multiple of 512."""
    rng = Path("/dev/urandom").open("rb")
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "empty-directory").mkdir()
    (root / "random.bin").write_bytes(rng.read(1_500_000))
    (root / "counting.txt").write_text("".join(f"{i}\n" for i in range(50_000)))
    (root / "nested" / "greeting.txt").write_text("hello\n")
    (root / "nested" / "deeper" / "ten-kib").write_bytes(b"q" * 10240)
    (root / "nested" / "empty-file").write_bytes(b"")
    (root / "link-to-counting").symlink_to("counting.txt")
    rng.close()


class Capture:
    """tshark recording the server's port until stopped."""

    def __init__(self, args, work):
        self.port, self.pcap = args.port, work / "probe.pcapng"
        self.err = (work / "logs" / "tshark.log").open("w+")
        self.proc = subprocess.Popen(["tshark", "-i", args.iface, "-f", f"tcp port {args.port}", "-w", str(self.pcap)],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        # tshark says "Capturing on ..." once the filter is installed; the deadline only
        # bounds a tshark that never gets there.
        deadline = time.monotonic() + 60
        while "Capturing on" not in Path(self.err.name).read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ndmp_probe: tshark did not start: {Path(self.err.name).read_text()}")
            time.sleep(0.05)

    def stop_and_check(self, rep, logs):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        decode = ["-r", str(self.pcap), "-d", f"tcp.port=={self.port},ndmp"]
        count = lambda flt: len(subprocess.run(["tshark", *decode, "-Y", flt], stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL, check=True).stdout.splitlines())
        frames = count("ndmp")
        bad = count("_ws.malformed || (ndmp && _ws.expert.severity == error)")
        messages, _, _ = summarize(self.pcap, self.port)
        (logs / "tshark-messages.txt").write_text(messages)
        rep.check(f"tshark-decode ({frames} NDMP frames, {bad} malformed)", frames > 0 and bad == 0,
                  f"see {self.pcap}")


def value_names():
    """tshark's names of the NDMP message and error codes: {(field, value): name}."""
    out = subprocess.run(["tshark", "-G", "values"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    names = {}
    for row in out.splitlines():
        cols = row.split("\t")
        if len(cols) == 4 and cols[0] == "V" and cols[1] in ("ndmp.msg", "ndmp.error"):
            names[(cols[1], int(cols[2], 0))] = cols[3]
    return names


def summarize(pcap, port):
    """Counts of (message, type, error) in a capture, as text; and the PDU and malformed counts."""
    fields = ["ndmp.msg", "ndmp.msg_type", "ndmp.error", "_ws.malformed"]
    cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},ndmp", "-Y", "ndmp || _ws.malformed",
           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True).stdout
    counts, pdus, malformed = Counter(), 0, 0
    for row in out.splitlines():
        msgs, types, errors, bad = (row.split("\t") + ["", "", "", ""])[:4]
        malformed += bool(bad)
        # A frame may carry several PDUs; the error codes are the header's and the body's.
        for i, msg in enumerate(m for m in msgs.split(",") if m):
            kind = types.split(",")[i] if i < len(types.split(",")) else "?"
            errs = [e for e in errors.split(",") if e not in ("", "0")]
            pdus += 1
            counts[(msg, kind, errs[0] if errs and kind == "1" else "")] += 1
    names = value_names()
    name = lambda field, raw: names.get((field, int(raw, 0)), raw)
    lines = [f"{n:6d}  {name('ndmp.msg', msg):<32} {'reply' if kind == '1' else 'request':<8}"
             + (f" {name('ndmp.error', err)}" if err else "")
             for (msg, kind, err), n in sorted(counts.items())]
    lines = [l.rstrip() for l in lines]
    lines.append(f"NDMP PDUs: {pdus}, malformed frames: {malformed}")
    return "\n".join(lines) + "\n", pdus, malformed


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "summarize":
        if len(sys.argv) not in (3, 4):
            sys.exit("usage: ndmp_probe.py summarize CAPTURE [PORT]")
        text, _, malformed = summarize(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "10000")
        print(text, end="")
        sys.exit(1 if malformed else 0)

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tape", help="TAPE_OPEN device of a scratch cartridge (mover, e2e, tape)")
    ap.add_argument("--versions", nargs="+", type=int, default=[4], choices=[3, 4])
    ap.add_argument("--tests", nargs="+", default=ALL_TESTS, choices=ALL_TESTS)
    ap.add_argument("--robot", help="SCSI_OPEN device of the changer (robot tests)")
    ap.add_argument("--robot-slot", type=int, help="element address of a full storage slot")
    ap.add_argument("--robot-drive", type=int, help="element address of the drive the robot loads")
    ap.add_argument("--robot-tape", help="TAPE_OPEN device of that drive (default --tape)")
    ap.add_argument("--capture", choices=["yes", "no"], default="no", help="tshark wire check")
    ap.add_argument("--iface", default="lo")
    ap.add_argument("--source", type=Path, help="tree for the e2e backups (default: a small generated one)")
    ap.add_argument("--ndmjob", type=Path, help="ndmjob to run (default: build with harness/build_ndmjob.sh)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds one ndmjob run may take (bounds a hang)")
    ap.add_argument("--work", type=Path, help="work directory (default: a new one under $TMPDIR)")
    args = ap.parse_args()
    if {"mover", "e2e", "tape"} & set(args.tests) and not args.tape:
        ap.error("--tape is needed for the mover, e2e and tape tests")
    if "robot" in args.tests and args.robot and args.robot_slot is None:
        ap.error("--robot needs --robot-slot")
    if args.ndmjob is None:
        built = subprocess.run(["bash", str(HERE / "build_ndmjob.sh")], stdout=subprocess.PIPE, text=True)
        if built.returncode != 0:
            print("ndmp_probe: building ndmjob failed (see above)", file=sys.stderr)
            sys.exit(2)
        args.ndmjob = Path(built.stdout.strip().splitlines()[-1])
    if not os.access(args.ndmjob, os.X_OK):
        print(f"ndmp_probe: {args.ndmjob} is not an executable", file=sys.stderr)
        sys.exit(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="ndmp-probe."))
    work.mkdir(parents=True, exist_ok=True)
    job = Ndmjob(args, work)
    source = args.source
    if source is None:
        source = work / "source"
        if not source.exists():
            make_source(source)
    rep = Report()
    capture = None
    if args.capture == "yes":
        if shutil.which("tshark") is None or os.geteuid() != 0:
            print("ndmp_probe: --capture yes needs tshark and root", file=sys.stderr)
            sys.exit(2)
        capture = Capture(args, work)
    print(f"ndmp_probe: {args.host}:{args.port} user {args.user}, tape {args.tape}, versions "
          f"{args.versions}, ndmjob {args.ndmjob}, work {work}", flush=True)

    for v in args.versions:
        if "query" in args.tests:
            text = job.run(f"query-v{v}", "-q", "-T" + job.agent(f"{v}t"))
            rep.check(f"query-v{v}", tape_agent_answered(text, v) and not ndmjob_errors(text), first_error(text))
        if "auth" in args.tests:
            text = job.run(f"auth-md5-v{v}", "-q", "-T" + job.agent(f"{v}m"))
            rep.check(f"auth-md5-v{v}", tape_agent_answered(text, v) and not ndmjob_errors(text), first_error(text))
            text = job.run(f"auth-reject-v{v}", "-q", "-T" + job.agent(f"{v}t", "not-" + args.password))
            refused = any('"err connect-auth' in l for l in ndmjob_errors(text))
            rep.check(f"auth-reject-v{v}", refused and not tape_agent_answered(text, v),
                      "a wrong password was not refused with an authentication error")
        if "mover" in args.tests:
            phased_suite(rep, job, "test-mover", v, MOVER_PHASES, args.tape)
        if "e2e" in args.tests:
            for blocking in (20, 128):  # records of 20 and 128 512-byte blocks: 10 KiB, 64 KiB
                common = ["-b", str(blocking), "-D.", "-B", "tar", "-o", f"config-file={work / 'ndmjob.conf'}",
                          "-T" + job.agent(str(v)), "-f", args.tape, "-v"]
                backup_and_restore(rep, job, f"v{v}-b{blocking}", source, work / f"restore-v{v}-b{blocking}", common)
        if "robot" in args.tests:
            if not args.robot:
                rep.result("SKIP", f"robot-v{v}", "no --robot")
            else:
                robot = ["-R" + job.agent(str(v)), "-r", args.robot]
                if args.robot_drive is not None:
                    robot += ["-o", f"tape-addr={args.robot_drive}"]
                text = job.run(f"robot-query-v{v}", "-q", *robot)
                answered = any(l.startswith('QR "Robot Agent') and f"NDMPv{v}" in l for l in text.splitlines())
                rep.check(f"robot-query-v{v}", answered and 'QR "  Elements' in text and not ndmjob_errors(text),
                          first_error(text))
                common = ["-D.", "-B", "tar", "-o", f"config-file={work / 'ndmjob.conf'}", "-T" + job.agent(str(v)),
                          "-f", args.robot_tape or args.tape, *robot, "-m", f"@{args.robot_slot}", "-v"]
                backup_and_restore(rep, job, f"robot-v{v}", source, work / f"restore-robot-v{v}", common)
        if "tape" in args.tests:
            phased_suite(rep, job, "test-tape", v, TAPE_PHASES, args.tape)

    if capture:
        capture.stop_and_check(rep, job.logs)
    c = rep.counts
    print(f"logs: {job.logs}")
    print(f"{c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped")
    sys.exit(0 if c["FAIL"] == 0 and c["SKIP"] == 0 else 1)


if __name__ == "__main__":
    main()
