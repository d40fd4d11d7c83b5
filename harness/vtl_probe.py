#!/usr/bin/env python3
"""Real-initiator checks of an iSCSI virtual tape library (an SMC media changer LUN and SSC
tape drive LUNs), through libiscsi: its command-line tools (Debian libiscsi-bin: iscsi-ls,
iscsi-inq) and raw SMC/SSC CDBs sent by harness/iscsi/scsi_session.c, built on first use
with libiscsi-dev.

    vtl_probe.py [--initiator IQN] [--no-write] HOST:PORT TARGET_IQN
      HOST:PORT may carry CHAP credentials the libiscsi way: USER%SECRET@HOST:PORT

The write checks load the first full storage slot's cartridge into the drive with the
drive LUN's serial number and rewrite it from the beginning. Every check prints "PASS name",
"FAIL name -- why" or "SKIP name -- why" (a check whose prerequisite did not pass is
skipped); the last line is "N passed, M failed, K skipped". Exit status 0 when no check
failed, 1 otherwise, 2 for a setup error.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_helper():
    """Compiles scsi_session.c into the tools cache unless a current build is there."""
    source = HERE / "iscsi" / "scsi_session.c"
    default = "/var/cache/qorestor-tools" if os.geteuid() == 0 else os.path.expanduser("~/.cache/qorestor-tools")
    binary = Path(os.environ.get("QORESTOR_TOOLS", default)) / "scsi_session"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libiscsi"], stdout=subprocess.PIPE, text=True)
    if flags.returncode != 0:
        sys.exit("vtl_probe: pkg-config does not know libiscsi (Debian packages libiscsi-dev, pkg-config)")
    tmp = binary.with_suffix(f".{os.getpid()}")
    cc = subprocess.run(["cc", "-O2", "-Wall", "-o", str(tmp), str(source), *flags.stdout.split()])
    if cc.returncode != 0:
        sys.exit("vtl_probe: compiling scsi_session.c failed (Debian packages gcc, libiscsi-dev)")
    tmp.replace(binary)
    return binary


class Failed(Exception):
    """A check's expectation did not hold."""


class Reply:
    """One command's outcome: status, decoded sense and data-in."""

    def __init__(self, line):
        status, residual, sense, data = (line.split() + ["-", "-", "-"])[:4]
        if status == "E":
            raise Failed("the command did not complete: " + line[2:].strip())
        self.status = int(status, 16)
        self.sense = b"" if sense == "-" else bytes.fromhex(sense)
        self.data = b"" if data == "-" else bytes.fromhex(data)
        self.key = self.asc = self.ascq = None
        self.valid = self.filemark = self.eom = self.ili = False
        self.info = None
        s = self.sense
        if len(s) >= 14 and s[0] & 0x7F in (0x70, 0x71):  # fixed format
            self.key, self.asc, self.ascq = s[2] & 0x0F, s[12], s[13]
            self.valid, self.filemark, self.eom, self.ili = bool(s[0] & 0x80), bool(s[2] & 0x80), bool(s[2] & 0x40), bool(s[2] & 0x20)
            self.info = int.from_bytes(s[3:7], "big", signed=True)
        elif len(s) >= 8 and s[0] & 0x7F in (0x72, 0x73):  # descriptor format
            self.key, self.asc, self.ascq = s[1] & 0x0F, s[2], s[3]
            at, end = 8, min(len(s), 8 + s[7])
            while at + 2 <= end:
                kind, length = s[at], s[at + 1]
                if kind == 0x00 and at + 12 <= end:
                    self.valid = bool(s[at + 2] & 0x80)
                    self.info = int.from_bytes(s[at + 4:at + 12], "big", signed=True)
                elif kind == 0x04 and at + 4 <= end:
                    b = s[at + 3]
                    self.filemark, self.eom, self.ili = bool(b & 0x80), bool(b & 0x40), bool(b & 0x20)
                at += 2 + length

    @property
    def good(self):
        return self.status == 0

    def __str__(self):
        if self.status == 2:
            return (f"CHECK CONDITION {self.key:x}/{self.asc:02x}/{self.ascq:02x} filemark={self.filemark:d} "
                    f"eom={self.eom:d} ili={self.ili:d} info={self.info}") if self.key is not None else "CHECK CONDITION (no sense)"
        return "GOOD" if self.good else f"status {self.status:02x}"


class Session:
    """A libiscsi session (scsi_session) to one target."""

    def __init__(self, helper, url, initiator):
        self.proc = subprocess.Popen([str(helper), "-i", initiator, url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline()
        if first.strip() != "READY":
            raise Failed("login failed: " + self.proc.stderr.read().strip())

    def command(self, lun, cdb, data_in=0, data_out=None, attentions=3):
        """Sends a CDB (hex text); a unit attention (a changed medium, a reset) is retried."""
        for _ in range(attentions + 1):
            self.proc.stdin.write(f"{lun} {cdb} {data_in} {data_out.hex() if data_out else '-'}\n")
            self.proc.stdin.flush()
            reply = Reply(self.proc.stdout.readline())
            if not (reply.status == 2 and reply.key == 6):
                return reply
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def good(reply, what):
    if not reply.good:
        raise Failed(f"{what}: {reply}")
    return reply


def check_condition(reply, what, key, asc=None, ascq=None):
    if reply.status != 2 or reply.key != key or asc not in (None, reply.asc) or ascq not in (None, reply.ascq):
        want = f"{key:x}/" + (f"{asc:02x}" if asc is not None else "xx") + "/" + (f"{ascq:02x}" if ascq is not None else "xx")
        raise Failed(f"{what}: expected CHECK CONDITION {want}, got {reply}")
    return reply


def u(b):
    return int.from_bytes(b, "big")


def six_byte(op, flags, count):
    """A 6-byte SSC CDB with a 24-bit (two's complement) count: READ, WRITE, SPACE, WRITE FILEMARKS."""
    return f"{op:02x}{flags:02x}{count & 0xFFFFFF:06x}00"


REWIND, TUR, UNLOAD = "010000000000", "000000000000", "1b0000000000"
BLOCK_A, BLOCK_B, BLOCK_C = b"\xa5" * 65536, b"\x5a" * 32768, b"\x11" * 4096


def element_status(reply):
    """READ ELEMENT STATUS data: (first address, count, byte count, [elements], [problems])."""
    d = reply.data
    if len(d) < 8:
        raise Failed(f"element status data of {len(d)} bytes")
    first, count, byte_count = u(d[0:2]), u(d[2:4]), u(d[5:8])
    problems = [] if len(d) >= 8 + byte_count else [f"{len(d)} bytes of data, header says 8 + {byte_count}"]
    elements, page = [], 8
    end = min(len(d), 8 + byte_count)
    while page + 8 <= end:
        etype, flags, size, page_bytes = d[page] & 0x0F, d[page + 1], u(d[page + 2:page + 4]), u(d[page + 5:page + 8])
        if etype not in (1, 2, 3, 4) or size == 0:
            problems.append(f"page at offset {page}: element type {etype}, descriptor length {size}")
            break
        at = page + 8
        while at + 12 <= min(end, page + 8 + page_bytes):
            e = d[at:at + size]
            tag_at = 12
            volume_tag = ""
            if flags & 0x80:
                volume_tag = e[12:44].decode("ascii", "replace").rstrip(" \0")
                tag_at += 36
            if flags & 0x40:
                tag_at += 36
            ident = e[tag_at + 4:tag_at + 4 + e[tag_at + 3]] if len(e) >= tag_at + 4 else b""
            elements.append({"type": etype, "address": u(e[0:2]), "full": bool(e[2] & 1),
                             "source_valid": bool(e[9] & 0x80), "source": u(e[10:12]),
                             "tag": volume_tag, "ident": ident.decode("ascii", "replace")})
            at += size
        page += 8 + page_bytes
    return first, count, byte_count, elements, problems


class Probe:
    def __init__(self, args, helper):
        self.args, self.helper = args, helper
        self.base = f"iscsi://{args.portal}/{args.iqn}"
        self.results = {}
        self.state = {}
        self.session = None

    # ----------------------------------------------------------------------- plumbing
    def run(self, name, requires, fn):
        blocked = [r for r in requires if self.results.get(r) != "PASS"]
        if blocked:
            self.report(name, "SKIP", f"needs {', '.join(blocked)}")
            return
        try:
            note = fn()
            self.report(name, "PASS", note or "")
        except Failed as e:
            self.report(name, "FAIL", str(e))
        except Exception as e:  # a bug in the probe or a tool that crashed
            self.report(name, "FAIL", f"{type(e).__name__}: {e}")

    def report(self, name, result, note):
        self.results[name] = result
        sep = " -- " if result != "PASS" and note else "  " if note else ""
        print(f"{result:<5} {name}{sep}{note}", flush=True)

    def tool(self, *argv):
        p = subprocess.run([argv[0], "-i", self.args.initiator, *argv[1:]], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        return p.returncode, p.stdout

    def cmd(self, lun, cdb, data_in=0, data_out=None):
        if self.session is None:
            self.session = Session(self.helper, f"{self.base}/{self.state['changer']}", self.args.initiator)
        return self.session.command(lun, cdb, data_in, data_out)

    def changer(self, cdb, data_in=0):
        return self.cmd(self.state["changer"], cdb, data_in)

    def drive(self, cdb, data_in=0, data_out=None):
        return self.cmd(self.state["drive"], cdb, data_in, data_out)

    def read_elements(self, etype, volume_tags=True, ids=False, allocation=65536):
        cdb = f"b8{(0x10 if volume_tags else 0) | etype:02x}0000ffff{1 if ids else 0:02x}{allocation:06x}0000"
        return self.changer(cdb, allocation)

    def elements(self, etype):
        return element_status(good(self.read_elements(etype), f"READ ELEMENT STATUS type {etype}"))[3]

    def element(self, etype, address):
        for e in self.elements(etype):
            if e["address"] == address:
                return e
        raise Failed(f"element {address} is not reported")

    def move(self, source, destination):
        transport = self.state["ranges"][1][0]
        return self.changer(f"a500{transport:04x}{source:04x}{destination:04x}00000000")

    def wait_ready(self, limit=30.0):
        """TEST UNIT READY until the drive is ready or reports something other than
        becoming ready; the limit only bounds a drive that never gets there."""
        deadline = time.monotonic() + limit
        while True:
            r = self.drive(TUR)
            becoming = r.status == 2 and r.key == 2 and r.asc == 0x04
            if r.good or not becoming or time.monotonic() > deadline:
                return r
            time.sleep(0.2)

    def read_position(self):
        r = good(self.drive("34000000000000000000", 20), "READ POSITION (short form)")
        if len(r.data) < 20:
            raise Failed(f"READ POSITION returned {len(r.data)} bytes")
        return bool(r.data[0] & 0x80), u(r.data[4:8])

    # ------------------------------------------------------------------------- checks
    def discovery(self):
        rc, out = self.tool("iscsi-ls", f"iscsi://{self.args.portal}")
        targets = re.findall(r"^Target:(\S+)", out, re.M)
        if rc != 0 or self.args.iqn not in targets:
            raise Failed(f"iscsi-ls (exit {rc}) did not list {self.args.iqn}: {out.strip()[-300:]}")
        return f"{len(targets)} target(s)"

    def lun_scan(self):
        rc, out = self.tool("iscsi-ls", "-s", f"iscsi://{self.args.portal}")
        luns, ours = {}, False
        for line in out.splitlines():
            if line.startswith("Target:"):
                ours = line.split()[0] == "Target:" + self.args.iqn
            m = re.match(r"\s*Lun:(\d+)\s+Type:(\S+)", line)
            if ours and m:
                luns[int(m.group(1))] = m.group(2)
        changers = [n for n, t in sorted(luns.items()) if t == "MEDIA_CHANGER"]
        drives = [n for n, t in sorted(luns.items()) if t == "SEQUENTIAL_ACCESS"]
        if rc != 0 or not changers or not drives:
            raise Failed(f"want a MEDIA_CHANGER and a SEQUENTIAL_ACCESS LUN, iscsi-ls -s (exit {rc}) found {luns}")
        self.state.update(luns=luns, changer=changers[0], drives=drives, drive=drives[0])
        return f"changer LUN {changers[0]}, drive LUNs {drives}"

    def report_luns(self):
        r = good(self.changer("a0000000000000001000" + "0000", 4096), "REPORT LUNS")
        listed = set()
        for i in range(u(r.data[0:4]) // 8):
            entry = r.data[8 + 8 * i:16 + 8 * i]
            listed.add(((entry[0] & 0x3F) << 8 | entry[1]) if entry[0] >> 6 == 1 else entry[1])
        missing = set(self.state["luns"]) - listed
        if missing:
            raise Failed(f"REPORT LUNS lists {sorted(listed)}, not {sorted(missing)}")
        return f"LUNs {sorted(listed)}"

    def inquiry(self, lun, device_type, type_name):
        rc, out = self.tool("iscsi-inq", f"{self.base}/{lun}")
        if rc != 0 or f"Peripheral Device Type:{type_name}" not in out:
            raise Failed(f"iscsi-inq (exit {rc}) does not report {type_name}: {out.strip()[:300]}")
        d = good(self.cmd(lun, "120000006000", 96), "INQUIRY").data
        if len(d) < 36 or d[0] & 0x1F != device_type or not d[1] & 0x80:
            raise Failed(f"standard INQUIRY: {len(d)} bytes, device type {d[0] & 0x1F}, RMB {d[1] >> 7}")
        if d[3] & 0x0F != 2 or d[4] + 5 < 36:
            raise Failed(f"response data format {d[3] & 0x0F}, additional length {d[4]}")
        if not all(0x20 <= c < 0x7F for c in d[8:36]):
            raise Failed(f"vendor, product and revision are not printable ASCII: {d[8:36]!r}")
        return f"'{d[8:16].decode()}' '{d[16:32].decode()}' '{d[32:36].decode()}', version {d[2]}"

    def vital_product_data(self, lun, remember=None):
        url = f"{self.base}/{lun}"
        rc, out = self.tool("iscsi-inq", "-e", "1", "-c", "0", url)
        pages = re.findall(r"Page:0x([0-9a-f]{2})", out)
        if rc != 0 or "80" not in pages or "83" not in pages:
            raise Failed(f"supported pages {pages} (exit {rc}); 0x80 and 0x83 are required")
        rc, out = self.tool("iscsi-inq", "-e", "1", "-c", "128", url)
        serial = re.search(r"Unit Serial Number:\[\s*(.*?)\s*\]", out)
        if rc != 0 or not serial or not serial.group(1):
            raise Failed(f"no unit serial number: {out.strip()[:200]}")
        rc, out = self.tool("iscsi-inq", "-e", "1", "-c", "131", url)
        if rc != 0 or "DEVICE DESIGNATOR #0" not in out:
            raise Failed(f"device identification page (exit {rc}): {out.strip()[:200]}")
        if remember:
            self.state[remember] = serial.group(1)
        return f"serial {serial.group(1)}, pages 00 80 83"

    def read_capacity_rejected(self):
        for lun in (self.state["changer"], self.state["drive"]):
            check_condition(self.cmd(lun, "25000000000000000000", 8), f"READ CAPACITY(10) on LUN {lun}", 5, 0x20, 0x00)
        return "5/20/00 (invalid opcode) on the changer and the drive"

    def supported_opcodes(self, lun, required):
        r = self.cmd(lun, "a30c00000000000020000000", 8192)
        if r.status == 2 and r.key == 5:
            return "REPORT SUPPORTED OPERATION CODES is optional and not supported"
        d = good(r, "REPORT SUPPORTED OPERATION CODES").data
        opcodes, at = [], 4
        while at + 8 <= min(len(d), 4 + u(d[0:4])):
            opcodes.append(d[at])
            at += 8 + (12 if d[at + 5] & 0x02 else 0)
        missing = [f"{op:02X}" for op in required if op not in opcodes]
        if missing:
            raise Failed(f"not listed: {' '.join(missing)}")
        return " ".join(f"{op:02X}" for op in sorted(set(opcodes)))

    def element_address_page(self):
        d = good(self.changer("1a081d00ff00", 255), "MODE SENSE(6) page 1Dh").data
        page = d[4 + d[3]:] if len(d) >= 4 else b""
        if len(page) < 20 or page[0] & 0x3F != 0x1D or page[1] < 0x12:
            raise Failed(f"no element address assignment page: {d.hex()}")
        # first address and count of: medium transport 1, storage 2, import/export 3, data transfer 4
        ranges = {t: (u(page[2 + 4 * i:4 + 4 * i]), u(page[4 + 4 * i:6 + 4 * i])) for i, t in enumerate((1, 2, 3, 4))}
        if min(ranges[1][1], ranges[2][1], ranges[4][1]) < 1:
            raise Failed(f"want at least one transport, storage and data transfer element: {ranges}")
        self.state["ranges"] = ranges
        return " ".join(f"type {t}: {a}+{n}" for t, (a, n) in ranges.items())

    def elements_per_type(self):
        per_type, notes = {}, []
        for etype, (start, count) in self.state["ranges"].items():
            reply = good(self.read_elements(etype), f"READ ELEMENT STATUS type {etype}")
            first, listed, _, elements, problems = element_status(reply)
            if any(e["type"] != etype for e in elements):
                raise Failed(f"type {etype} asked, other types answered")
            if len(elements) != count or listed != count:
                raise Failed(f"type {etype}: {len(elements)} descriptors, header {listed}, page 1Dh {count}")
            if sorted(e["address"] for e in elements) != list(range(start, start + count)):
                raise Failed(f"type {etype}: addresses differ from page 1Dh's {start}..{start + count - 1}")
            per_type[etype] = (first, elements, problems)
            notes.append(f"type {etype}: {len(elements)} ({sum(e['full'] for e in elements)} full)")
        full = [e for e in per_type[2][1] if e["full"]]
        if not full or not all(e["tag"] for e in full):
            raise Failed("want full storage elements, each with a primary volume tag")
        self.state["per_type"] = per_type
        return ", ".join(notes) + "; barcodes " + " ".join(e["tag"] for e in full[:3])

    def element_lengths(self):
        problems = [f"type {t}: {'; '.join(p)}" for t, (_, _, p) in self.state["per_type"].items() if p]
        if problems:
            raise Failed(" | ".join(problems))
        return "data length = 8 + byte count for every type"

    def element_first_address(self):
        for etype, (first, elements, _) in self.state["per_type"].items():
            lowest = min(e["address"] for e in elements)
            if first != lowest:
                raise Failed(f"type {etype}: first element address {first}, lowest reported {lowest}")

    def elements_all_types(self):
        _, _, _, elements, problems = element_status(good(self.read_elements(0), "READ ELEMENT STATUS, all types"))
        if problems:
            raise Failed("; ".join(problems))
        together = sorted((e["type"], e["address"], e["full"]) for e in elements)
        separately = sorted((e["type"], e["address"], e["full"]) for _, es, _ in self.state["per_type"].values() for e in es)
        if together != separately:
            raise Failed(f"{len(together)} elements in one report, {len(separately)} type by type, or they differ")
        return f"{len(together)} elements"

    def elements_short_allocation(self):
        d = good(self.read_elements(2, allocation=8), "READ ELEMENT STATUS with 8 bytes allocated").data
        if len(d) != 8 or u(d[5:8]) < 52:
            raise Failed(f"want the 8-byte header with the full byte count, got {d.hex()}")
        return f"byte count {u(d[5:8])} reported in 8 bytes"

    def drive_identifiers(self):
        _, _, _, elements, _ = element_status(good(self.read_elements(4, ids=True), "READ ELEMENT STATUS, DVCID"))
        serial = self.state["drive_serial"]
        matching = [e["address"] for e in elements if serial in e["ident"]]
        if not matching:
            raise Failed(f"no drive element's identifier holds the drive LUN's serial {serial!r}")
        self.state["dte"] = matching[0]
        return f"drive LUN {self.state['drive']} is data transfer element {matching[0]}"

    def drive_empty(self):
        dte = self.state["dte"]
        e = self.element(4, dte)
        if e["full"]:  # left by an earlier run: put the cartridge back
            self.drive(UNLOAD)
            back = e["source"] if e["source_valid"] else next(s["address"] for s in self.elements(2) if not s["full"])
            good(self.move(dte, back), f"MOVE MEDIUM {dte} -> {back} (clearing the drive)")
        check_condition(self.drive(TUR), "TEST UNIT READY on the empty drive", 2, 0x3A)
        return "TEST UNIT READY: 2/3a (medium not present)"

    def move_load(self):
        slot = next(e for e in self.elements(2) if e["full"])
        self.state.update(slot=slot["address"], tag=slot["tag"])
        good(self.move(slot["address"], self.state["dte"]), f"MOVE MEDIUM {slot['address']} -> {self.state['dte']}")
        return f"{slot['tag']}: slot {slot['address']} -> drive {self.state['dte']}"

    def status_after_load(self):
        d, s = self.element(4, self.state["dte"]), self.element(2, self.state["slot"])
        if not d["full"] or s["full"]:
            raise Failed(f"drive full={d['full']}, slot full={s['full']}")
        if not d["source_valid"] or d["source"] != self.state["slot"] or d["tag"] != self.state["tag"]:
            raise Failed(f"drive: source valid {d['source_valid']}, source {d['source']}, tag {d['tag']!r}")
        return f"drive full, source {d['source']}, tag {d['tag']}"

    def drive_ready(self):
        good(self.wait_ready(), "TEST UNIT READY after the load")

    def block_limits(self):
        d = good(self.drive("050000000000", 6), "READ BLOCK LIMITS").data
        largest, smallest = u(d[1:4]), u(d[4:6])
        if len(d) != 6 or largest == 0 or largest < smallest:
            raise Failed(f"READ BLOCK LIMITS data {d.hex()}")
        if largest < len(BLOCK_A):
            raise Failed(f"largest block {largest} < {len(BLOCK_A)}")
        return f"blocks of {smallest}..{largest} bytes"

    def drive_mode_pages(self):
        d = good(self.drive("1a003f00ff00", 255), "MODE SENSE(6), all pages").data
        if len(d) < 4 or d[0] + 1 != len(d) or d[3] not in (0, 8) or len(d) < 4 + d[3]:
            raise Failed(f"mode data header {d[:12].hex()} for {len(d)} bytes")
        if d[2] & 0x80:
            raise Failed("the cartridge is write-protected")
        pages, at = [], 4 + d[3]
        while at + 2 <= len(d):
            if d[at] & 0x40:
                pages.append(f"{d[at] & 0x3F:02x}/{d[at + 1]:02x}")
                at += 4 + u(d[at + 2:at + 4])
            else:
                pages.append(f"{d[at] & 0x3F:02x}")
                at += 2 + d[at + 1]
        return "pages " + " ".join(pages)

    def variable_blocks(self):
        header_and_descriptor = bytes([0, 0, 0x10, 8]) + bytes(8)  # buffered mode, block length 0
        good(self.drive("151000000c00", data_out=header_and_descriptor), "MODE SELECT(6), block length 0")
        d = good(self.drive("1a0000000c00", 12), "MODE SENSE(6)").data
        if len(d) >= 12 and d[3] == 8 and u(d[9:12]) != 0:
            raise Failed(f"block length is still {u(d[9:12])}")
        return "variable-length blocks"

    def rewind(self):
        good(self.drive(REWIND), "REWIND")

    def position_at_start(self):
        bop, block = self.read_position()
        if not bop or block != 0:
            raise Failed(f"after REWIND: beginning of partition {bop}, block {block}")
        return "beginning of partition, block 0"

    def write_blocks_and_filemarks(self):
        good(self.drive(REWIND), "REWIND")
        for what, cdb, data in (("WRITE(6) of 64 KiB", six_byte(0x0A, 0, len(BLOCK_A)), BLOCK_A),
                                ("WRITE(6) of 32 KiB", six_byte(0x0A, 0, len(BLOCK_B)), BLOCK_B),
                                ("WRITE FILEMARKS", six_byte(0x10, 0, 1), None),
                                ("WRITE(6) of 4 KiB", six_byte(0x0A, 0, len(BLOCK_C)), BLOCK_C),
                                ("WRITE FILEMARKS", six_byte(0x10, 0, 1), None)):
            good(self.drive(cdb, data_out=data), what)
        return "A (64 KiB), B (32 KiB), filemark, C (4 KiB), filemark"

    def position_after_writing(self):
        bop, block = self.read_position()
        if bop or block != 5:
            raise Failed(f"want block 5 (3 blocks and 2 filemarks), got block {block}, BOP {bop}")
        return "block 5"

    def read_back(self):
        good(self.drive(REWIND), "REWIND")
        r = good(self.drive(six_byte(0x08, 0, 65536), 65536), "READ(6) of 64 KiB")
        if r.data != BLOCK_A:
            raise Failed(f"block A read back differs ({len(r.data)} bytes)")
        return "block A identical"

    def read_short_block(self):
        r = check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ of 64 KiB over a 32 KiB block", 0, 0, 0)
        if not (r.ili and r.valid and r.info == 32768):
            raise Failed(f"want ILI, VALID and information 32768: {r}")
        if r.data[:32768] != BLOCK_B:
            raise Failed("block B read back differs")
        return "ILI, residue 32768, the 32 KiB arrived"

    def read_filemark(self):
        r = check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ at a filemark", 0, 0, 1)
        if not r.filemark:
            raise Failed(f"FILEMARK bit clear: {r}")
        return f"00/01 with FILEMARK, information {r.info}"

    def read_past_filemark(self):
        r = good(self.drive(six_byte(0x08, 0, 4096), 4096), "READ of 4 KiB after the filemark")
        if r.data != BLOCK_C:
            raise Failed("block C read back differs")
        check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ at the second filemark", 0, 0, 1)

    def read_end_of_data(self):
        r = check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ at end of data", 8)
        self.state["eod"] = r
        return f"BLANK CHECK {r.asc:02x}/{r.ascq:02x}"

    def end_of_data_code(self):
        check_condition(self.state["eod"], "READ at end of data", 8, 0x00, 0x05)

    def space_filemark_forward(self):
        good(self.drive(REWIND), "REWIND")
        good(self.drive(six_byte(0x11, 1, 1)), "SPACE 1 filemark")
        if good(self.drive(six_byte(0x08, 0, 4096), 4096), "READ after SPACE").data != BLOCK_C:
            raise Failed("not after the first filemark")

    def space_block_backward(self):
        good(self.drive(six_byte(0x11, 0, -1)), "SPACE -1 block")
        if good(self.drive(six_byte(0x08, 0, 4096), 4096), "READ after SPACE -1").data != BLOCK_C:
            raise Failed("not before block C")

    def space_end_of_data(self):
        good(self.drive(six_byte(0x11, 3, 0)), "SPACE to end of data")
        check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ at end of data", 8)

    def space_filemark_backward(self):
        good(self.drive(six_byte(0x11, 3, 0)), "SPACE to end of data")
        good(self.drive(six_byte(0x11, 1, -1)), "SPACE -1 filemark")
        # Now on the beginning-of-partition side of the last filemark: the next read meets it.
        check_condition(self.drive(six_byte(0x08, 0, 65536), 65536), "READ after SPACE -1 filemark", 0, 0, 1)

    def space_blocks_stop_at_filemark(self):
        good(self.drive(REWIND), "REWIND")
        r = check_condition(self.drive(six_byte(0x11, 0, 3)), "SPACE 3 blocks across a filemark", 0, 0, 1)
        if not (r.filemark and r.valid and r.info == 1):
            raise Failed(f"want FILEMARK, VALID and information 1 (one block not spaced): {r}")
        if good(self.drive(six_byte(0x08, 0, 4096), 4096), "READ after SPACE").data != BLOCK_C:
            raise Failed("not after the filemark")

    def move_into_full_drive(self):
        other = next((e for e in self.elements(2) if e["full"]), None)
        if other is None:
            raise Failed("no second cartridge to try")
        check_condition(self.move(other["address"], self.state["dte"]), "MOVE MEDIUM into a full drive", 5, 0x3B, 0x0D)
        return "5/3b/0d"

    def move_invalid_element(self):
        used = {a for start, n in self.state["ranges"].values() for a in range(start, start + n)}
        unused = next(a for a in range(0xFFFE, 0, -1) if a not in used)
        check_condition(self.move(unused, self.state["dte"]), f"MOVE MEDIUM from element {unused}", 5, 0x21, 0x01)
        return "5/21/01"

    def unload(self):
        good(self.drive(UNLOAD), "LOAD UNLOAD (unload)")

    def move_back(self):
        good(self.move(self.state["dte"], self.state["slot"]), "MOVE MEDIUM drive -> slot")
        d, s = self.element(4, self.state["dte"]), self.element(2, self.state["slot"])
        if d["full"] or not s["full"] or s["tag"] != self.state["tag"]:
            raise Failed(f"drive full={d['full']}, slot full={s['full']}, slot tag {s['tag']!r}")
        check_condition(self.drive(TUR), "TEST UNIT READY after the move", 2, 0x3A)
        return f"{self.state['tag']} back in slot {self.state['slot']}"

    def move_from_empty_drive(self):
        check_condition(self.move(self.state["dte"], self.state["slot"]), "MOVE MEDIUM from the empty drive", 5, 0x3B, 0x0E)

    def data_survives_reload(self):
        good(self.move(self.state["slot"], self.state["dte"]), "MOVE MEDIUM slot -> drive")
        try:
            good(self.wait_ready(), "TEST UNIT READY after the reload")
            good(self.drive(REWIND), "REWIND")
            if good(self.drive(six_byte(0x08, 0, 65536), 65536), "READ after the reload").data != BLOCK_A:
                raise Failed("the block written before the unload differs after the reload")
        finally:
            self.drive(UNLOAD)
            self.move(self.state["dte"], self.state["slot"])
        return "block A read back after unload and reload"

    def all_checks(self):
        s = self.state
        yield "discovery", (), self.discovery
        yield "lun-scan", ("discovery",), self.lun_scan
        yield "report-luns", ("lun-scan",), self.report_luns
        yield "inquiry-changer", ("lun-scan",), lambda: self.inquiry(s["changer"], 8, "MEDIA_CHANGER")
        yield "inquiry-drive", ("lun-scan",), lambda: self.inquiry(s["drive"], 1, "SEQUENTIAL_ACCESS")
        yield "vpd-changer", ("lun-scan",), lambda: self.vital_product_data(s["changer"])
        yield "vpd-drive", ("lun-scan",), lambda: self.vital_product_data(s["drive"], "drive_serial")
        yield "tur-changer", ("lun-scan",), lambda: good(self.changer(TUR), "TEST UNIT READY") and None
        yield "read-capacity-rejected", ("lun-scan",), self.read_capacity_rejected
        yield "rsoc-changer", ("lun-scan",), lambda: self.supported_opcodes(s["changer"], (0x00, 0x12, 0xA5, 0xB8))
        yield "rsoc-drive", ("lun-scan",), lambda: self.supported_opcodes(
            s["drive"], (0x00, 0x01, 0x03, 0x05, 0x08, 0x0A, 0x10, 0x11, 0x12, 0x1B, 0x34))
        yield "mode-sense-eaa", ("lun-scan",), self.element_address_page
        yield "res-per-type", ("mode-sense-eaa",), self.elements_per_type
        yield "res-length", ("res-per-type",), self.element_lengths
        yield "res-first-address", ("res-per-type",), self.element_first_address
        yield "res-all-types", ("res-per-type",), self.elements_all_types
        yield "res-short-alloc", ("res-per-type",), self.elements_short_allocation
        yield "res-dvcid", ("res-per-type", "vpd-drive"), self.drive_identifiers
        if self.args.no_write:
            return
        yield "drive-empty", ("res-dvcid",), self.drive_empty
        yield "move-load", ("drive-empty",), self.move_load
        yield "res-after-load", ("move-load",), self.status_after_load
        yield "drive-ready", ("move-load",), self.drive_ready
        yield "read-block-limits", ("drive-ready",), self.block_limits
        yield "mode-sense-drive", ("drive-ready",), self.drive_mode_pages
        yield "mode-select-variable", ("drive-ready",), self.variable_blocks
        yield "rewind", ("drive-ready",), self.rewind
        yield "read-position-bop", ("rewind",), self.position_at_start
        yield "write-blocks-filemarks", ("rewind", "read-block-limits"), self.write_blocks_and_filemarks
        yield "read-position-after-write", ("write-blocks-filemarks",), self.position_after_writing
        yield "read-verify", ("write-blocks-filemarks",), self.read_back
        yield "read-ili", ("read-verify",), self.read_short_block
        yield "read-filemark", ("read-ili",), self.read_filemark
        yield "read-after-filemark", ("read-filemark",), self.read_past_filemark
        yield "read-eod", ("read-after-filemark",), self.read_end_of_data
        yield "eod-sense-code", ("read-eod",), self.end_of_data_code
        yield "space-fm-fwd", ("write-blocks-filemarks",), self.space_filemark_forward
        yield "space-block-back", ("space-fm-fwd",), self.space_block_backward
        yield "space-eod", ("write-blocks-filemarks",), self.space_end_of_data
        yield "space-fm-back", ("space-eod",), self.space_filemark_backward
        yield "space-blocks-over-fm", ("write-blocks-filemarks",), self.space_blocks_stop_at_filemark
        yield "move-dest-full", ("move-load",), self.move_into_full_drive
        yield "move-invalid-element", ("move-load",), self.move_invalid_element
        yield "unload", ("drive-ready",), self.unload
        yield "move-unload", ("unload",), self.move_back
        yield "move-src-empty", ("move-unload",), self.move_from_empty_drive
        yield "reload-persistence", ("move-unload", "write-blocks-filemarks"), self.data_survives_reload


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("portal", help="HOST:PORT, or USER%%SECRET@HOST:PORT for CHAP")
    ap.add_argument("iqn", help="the library's target name")
    ap.add_argument("--initiator", default="iqn.2024-01.org.qorestor.harness:vtl-probe")
    ap.add_argument("--no-write", action="store_true", help="discovery and changer reads only")
    args = ap.parse_args()
    for tool in ("iscsi-ls", "iscsi-inq"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], stdout=subprocess.DEVNULL).returncode != 0:
            print(f"vtl_probe: {tool} is missing (Debian package libiscsi-bin)", file=sys.stderr)
            sys.exit(2)
    probe = Probe(args, build_helper())
    for name, requires, fn in probe.all_checks():
        probe.run(name, requires, fn)
    if probe.session:
        probe.session.close()
    results = list(probe.results.values())
    failed = [n for n, r in probe.results.items() if r == "FAIL"]
    if failed:
        print("failed: " + ", ".join(failed))
    print(f"{results.count('PASS')} passed, {results.count('FAIL')} failed, {results.count('SKIP')} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
