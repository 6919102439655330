"""Differential fuzzing: random programs on the golden model and on the gateware, compared.

``tsp fuzz --count N --seed S`` runs the programs :func:`sim.randprog.random_program`
makes for seeds ``S .. S+N-1`` on the golden model and on the RTL and compares
everything the two can observe: the final contents of every MEM slice, the
error flags, where the first error was raised (queue and local cycle), the
cycle count, and with the Amaranth engine every hop register of every cycle
(:func:`sim.rtl_runner.first_divergence` names the first one that differs).

Speed. Elaborating ``TSP(config)`` for Amaranth's simulator costs seconds, a
random ``tiny`` program runs for 30..100 cycles. :class:`AmaranthBatch` therefore
builds the simulator once and runs many programs in it: between two programs
``Simulator.reset()`` puts every signal and memory back to its initial value
(exactly the state of a fresh simulator), then the next image is loaded. Host
commands cost one simulated cycle each (a ``tiny`` random program needs ~350),
so the instruction and MEM words, which are most of them, are written straight
into the simulated block RAMs (``load="direct"``, no clock cycles); the VXM
tables and SXM maps, whose storage is internal to their slices, still go through
the host port. ``load="host"`` loads everything through the host port, as
:func:`sim.amaranth_run.run_image_amaranth` does. The big runs spread the seeds
over worker processes, one simulator each.

With ``--engine rtl`` each program runs on the Verilog under Icarus through
cocotb (:func:`sim.rtl_runner.run_image_rtl`), compared in the same way.

Every ``fault_every``-th seed (by default one in ten) is generated with one
deliberate fault (``random_program(..., errors=True)``): the two must then stop
the same way. A valid program on which the golden model raises an error, or a
faulty one on which it raises none, is a bug of the generator and is reported as
such (``invalid``), not as a mismatch.

:func:`minimise` shrinks a mismatching program (whole queues, instruction words,
initial memory) while the mismatch persists, for a regression test.
"""

import dataclasses
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from firmware.image import ProgramImage
from firmware.isa import ErrorFlag
from firmware.machine import get_config


__all__ = ["AmaranthBatch", "FuzzCase", "FuzzReport", "batch_for", "check_run", "run_case",
           "fuzz", "minimise", "minimise_mismatch", "is_faulty", "make_program", "main",
           "add_arguments"]

#: Engines that run the gateware: Amaranth's simulator (one per process, reset between
#: programs) and the Verilog under Icarus through cocotb (one program per run).
FUZZ_ENGINES = ("amaranth", "rtl")

#: Simulated cycles after START past which a run is a hang (random programs take < 500).
MAX_CYCLES = 20_000


# -- one simulator, many programs --------------------------------------------------

class AmaranthBatch:
    """One ``TSP(config)`` in one Amaranth simulator that runs many images in turn.

    :meth:`run` returns a :class:`sim.amaranth_run.AmaranthResult`, as
    :func:`~sim.amaranth_run.run_image_amaranth` does for a fresh simulator.
    ``trace``: record every hop register of every running cycle (``hops``).
    ``load``: ``"direct"`` writes instruction and MEM words into the simulated
    block RAMs (no clock cycles), ``"host"`` sends every word through the host port.
    """

    def __init__(self, config, trace=True, load="direct", max_cycles=MAX_CYCLES):
        from amaranth.sim import Simulator
        from firmware.ecc import code_for
        from rtl.top import TSP
        if load not in ("direct", "host"):
            raise ValueError(f"load must be 'direct' or 'host', not {load!r}")
        self.config = c = get_config(config)
        self.trace = trace
        self.load = load
        self.max_cycles = max_cycles
        self.dut = TSP(c)
        self._sim = Simulator(self.dut)
        self._sim.add_clock(1e-6)
        self._sim.add_testbench(self._testbench)
        self._fresh = True          # the simulator is in its initial state
        self._image = None
        self._out = None
        fp = c.floorplan
        self._nbytes = fp.width * c.tiles * c.streams * c.lanes
        self._code = code_for(c)       # MEM words' SECDED code (None: no ECC)
        # Simulation handles of every block RAM row, made once (making one costs
        # more than reading it): instruction words, MEM data and check bits.
        self._imem_rows = [[q.imem.data[i] for i in range(c.queue_depth)] for q in self.dut.queues]
        self._mem_rows = {}
        for name, s in self.dut.mem_slices.items():
            banks = [[[bank.data[row].as_value() for row in range(c.bank_words)]
                      for bank in tile] for tile in s.banks]
            checks = [None if mem is None else [mem.data[a] for a in range(c.mem_words)]
                      for mem in s.checks]
            self._mem_rows[s.slice.pos] = self._mem_rows[name] = (banks, checks)
        self.programs = 0

    def run(self, image):
        """Run ``image`` from the reset state; raises ``SimulationTimeout`` past ``max_cycles``."""
        from sim.amaranth_run import AmaranthResult
        if image.config != self.config:
            raise ValueError(f"image is for config {image.config.name!r}, "
                             f"the simulator runs {self.config.name!r}")
        if not self._fresh:
            self._sim.reset()
        self._fresh = False
        self._image, self._out = image, {}
        self._sim.run()
        self.programs += 1
        out = self._out
        outputs = {name: image.read_output(name, out["memory"]) for name in image.outputs}
        return AmaranthResult(cycles=out["cycles"], errors=out["errors"],
                              err_queue=out["err_queue"], err_cycle=out["err_cycle"],
                              memory=out["memory"], outputs=outputs, hops=out.get("hops"))

    # -- the testbench (restarted by every reset) ------------------------------------

    async def _testbench(self, ctx):
        from amaranth.hdl import Value
        from rtl.top import HostCmd, load_commands
        from sim.amaranth_run import SimulationTimeout
        image, dut, out, c = self._image, self.dut, self._out, self.config
        if image is None:
            return
        host_only = (HostCmd.WRITE_LUT, HostCmd.WRITE_MAP)
        for cmd, operands in load_commands(image):
            if self.load == "direct" and cmd not in host_only:
                self._write_direct(ctx, cmd, operands)
                continue
            ctx.set(dut.host, {"cmd": cmd, "sel": 0, "lane": 0, "addr": 0, "data": 0,
                               **operands})
            await ctx.tick()
        ctx.set(dut.host, {"cmd": HostCmd.START, "sel": 0, "lane": 0, "addr": 0, "data": 0})
        await ctx.tick()
        ctx.set(dut.host.cmd, HostCmd.NONE)
        hops, waited = [], 0
        ports = (Value.cast(dut.fabric.e_in), Value.cast(dut.fabric.w_in))
        while not ctx.get(dut.done):
            if self.trace and ctx.get(dut.running):
                hops.append([ctx.get(p) for p in ports])
            if waited > self.max_cycles:
                raise SimulationTimeout(f"{image.source or 'program'}: no done after "
                                        f"max_cycles = {self.max_cycles} cycles")
            await ctx.tick()
            waited += 1
        await ctx.tick()              # err_queue and err_cycle settle one cycle after done
        if self.trace:
            raw = np.frombuffer(b"".join(int(v).to_bytes(self._nbytes, "little")
                                         for pair in hops for v in pair), np.uint8)
            fp = c.floorplan
            out["hops"] = raw.reshape(len(hops), 2, fp.width, c.tiles, c.streams, c.lanes)
        out["cycles"] = ctx.get(dut.cycles)
        out["errors"] = ctx.get(dut.errors)
        out["err_queue"] = ctx.get(dut.err_queue)
        out["err_cycle"] = ctx.get(dut.err_cycle)
        out["memory"] = {name: self._read_mem(ctx, name) for name in dut.mem_slices}

    def _write_direct(self, ctx, cmd, operands):
        """A WRITE_INSTR or WRITE_MEM host command, done on the block RAM itself."""
        from rtl.top import HostCmd
        c = self.config
        if cmd == HostCmd.WRITE_INSTR:
            queue = self.dut.queues[operands["sel"]]
            ctx.set(self._imem_rows[operands["sel"]][operands["addr"]],
                    queue.stored(operands["data"]))
        elif cmd == HostCmd.WRITE_MEM:
            banks, checks = self._mem_rows[operands["sel"]]
            addr, L = operands["addr"], c.lanes
            bank, row = divmod(addr, c.bank_words)
            mask = (1 << 8 * L) - 1
            for k in range(c.tiles):
                part = (operands["data"] >> 8 * L * k) & mask
                ctx.set(banks[k][bank][row], part)
                if checks[k] is not None:               # the SECDED check bits of a store
                    ctx.set(checks[k][addr], self._code.encode(part))
        else:
            raise ValueError(f"no direct load for {cmd!r}")

    def _read_mem(self, ctx, name):
        """Every word of a MEM slice from the simulated block RAMs (no clock cycles)."""
        c = self.config
        L, W = c.lanes, c.bank_words
        banks, _checks = self._mem_rows[name]
        words = np.zeros((c.mem_words, c.vl), np.uint8)
        for k, tile in enumerate(banks):
            for b, rows in enumerate(tile):
                raw = b"".join(ctx.get(row).to_bytes(L, "little") for row in rows)
                words[b * W:(b + 1) * W, k * L:(k + 1) * L] = \
                    np.frombuffer(raw, np.uint8).reshape(W, L)
        return words


# -- comparing one run -------------------------------------------------------------

def err_queue_of(config, event):
    """The ``err_queue`` the TSP reports for a golden-model error event: the queue that
    raised it; for an error a slice detects (``STREAM_CONFLICT``) the slice's first
    queue; for ``DEADLOCK`` the number of queues."""
    fp = config.floorplan
    names = [q.name for q in fp.queues]
    if event.where not in names:
        return len(names)
    if event.flag is ErrorFlag.STREAM_CONFLICT:
        owner = fp.queue(event.where).slice
        return next(i for i, q in enumerate(fp.queues) if q.slice == owner)
    return names.index(event.where)


def check_run(rtl, golden, config):
    """Everything observable that differs between an RTL result and the golden model's
    (``golden`` run with ``trace=True`` for the hop comparison): ``(sentences, divergence)``."""
    from sim.rtl_runner import compare, first_divergence
    out = compare(rtl, golden)
    if golden.events:
        first = golden.events[0].cycle
        want = min(err_queue_of(config, e) for e in golden.events if e.cycle == first)
        if (rtl.err_cycle, rtl.err_queue) != (first, want):
            out.append(f"first error: RTL at cycle {rtl.err_cycle} queue {rtl.err_queue}, "
                       f"golden model at cycle {first} queue {want}")
    divergence = None
    hops = getattr(rtl, "hops", None)
    if hops is not None and golden.trace is not None:
        if len(hops) != golden.cycles:
            out.append(f"hop trace: RTL recorded {len(hops)} running cycles, golden model "
                       f"ran {golden.cycles}")
        divergence = first_divergence(golden.trace, hops)
        if divergence is not None:
            out.append("hop registers differ")
    return out, divergence


@dataclass
class FuzzCase:
    """One program of a fuzz run and what came of it."""
    seed: int
    faulty: bool                     # generated with one deliberate fault
    cycles: int = 0                  # golden model's cycle count
    errors: int = 0                  # golden model's error flags
    mismatches: list = field(default_factory=list)
    divergence: str | None = None    # the first-divergence report
    invalid: str | None = None       # the generator's program is not what it should be
    crash: str | None = None         # an engine raised (a hang past max_cycles, ...)

    @property
    def ok(self):
        return not (self.mismatches or self.invalid or self.crash)

    def report(self):
        lines = [f"seed {self.seed}{' (faulty)' if self.faulty else ''}:"]
        if self.invalid:
            lines.append(f"  invalid program: {self.invalid}")
        if self.crash:
            lines.append(f"  engine failed: {self.crash}")
        lines += [f"  {m}" for m in self.mismatches]
        if self.divergence:
            lines.append(f"  {self.divergence}")
        return "\n".join(lines)


def is_faulty(seed, fault_every):
    """Whether seed ``seed`` of a run is generated with a deliberate fault."""
    return bool(fault_every) and seed % fault_every == fault_every - 1


def make_program(config, seed, length, faulty):
    from sim.randprog import random_program
    image = random_program(config, seed, length=length, errors=faulty, idle_tables=False)
    image.source = f"random program seed {seed}{' (faulty)' if faulty else ''}"
    return image


def run_case(runner, image, seed, faulty):
    """Run ``image`` on the golden model and with ``runner`` (an :class:`AmaranthBatch`
    or the string ``"rtl"``), compare: a :class:`FuzzCase`."""
    from sim.golden import run_image
    case = FuzzCase(seed, faulty)
    golden = run_image(image, trace=True, max_cycles=MAX_CYCLES)
    case.cycles, case.errors = golden.cycles, golden.errors
    _classify(case, golden)
    try:
        if runner == "rtl":
            from sim.rtl_runner import run_image_rtl
            rtl = run_image_rtl(image, trace=True, golden=golden, max_cycles=MAX_CYCLES)
        else:
            rtl = runner.run(image)
    except Exception as e:          # a hang or a harness failure is a finding, not a crash of the run
        case.crash = f"{type(e).__name__}: {e}"
        return case
    case.mismatches, divergence = check_run(rtl, golden, image.config)
    case.divergence = None if divergence is None else str(divergence)
    return case


# -- a whole run ------------------------------------------------------------------

@dataclass
class FuzzReport:
    config: str
    engine: str
    first_seed: int
    cases: list
    wall_s: float

    @property
    def ran(self):
        return len(self.cases)

    @property
    def failed(self):
        return [c for c in self.cases if not c.ok]

    @property
    def mismatched(self):
        return [c for c in self.cases if c.mismatches or c.crash]

    @property
    def invalid(self):
        return [c for c in self.cases if c.invalid]

    def summary(self):
        faulty = sum(c.faulty for c in self.cases)
        cycles = sum(c.cycles for c in self.cases)
        head = (f"fuzz: config {self.config}, engine {self.engine}, seeds {self.first_seed}.."
                f"{self.first_seed + self.ran - 1}: {self.ran} programs ran ({faulty} with a "
                f"deliberate fault, {cycles} golden cycles in all), {len(self.mismatched)} "
                f"mismatched (or failed to run), {len(self.invalid)} invalid; "
                f"{self.wall_s:.1f} s wall")
        return "\n".join([head] + [c.report() for c in self.failed])


# One simulator per configuration and process, built on first use (a worker process
# builds its own on the first chunk it gets).
_BATCHES = {}


def batch_for(config, load="direct"):
    """The process's :class:`AmaranthBatch` for ``config`` (made on the first call)."""
    c = get_config(config)
    batch = _BATCHES.get((c.name, load))
    if batch is None:
        batch = _BATCHES[c.name, load] = AmaranthBatch(c, trace=True, load=load)
    return batch


def _worker_run(args):
    config, engine, length, fault_every, load, seeds = args
    c = get_config(config)
    out = []
    for seed in seeds:
        faulty = is_faulty(seed, fault_every)
        runner = "rtl" if engine == "rtl" else batch_for(c, load)
        case = run_case(runner, make_program(c, seed, length, faulty), seed, faulty)
        if case.crash and runner != "rtl":     # the next program starts on a fresh simulator
            _BATCHES.pop((c.name, load), None)
        out.append(case)
    return out


def _classify(case, golden):
    """Mark a program that is not what the generator promised (see :class:`FuzzCase`)."""
    if case.faulty and not golden.errors:
        case.invalid = "the injected fault raised no error in the golden model"
    elif not case.faulty and golden.errors:
        case.invalid = "the golden model raised " + "; ".join(str(e) for e in golden.events[:3])


def fuzz(config="tiny", count=100, seed=0, engine="amaranth", workers=1, length=12,
         fault_every=10, load="direct", chunk=20, progress=None):
    """Run ``count`` random programs (seeds ``seed ..``) on the golden model and the RTL.

    ``workers`` > 1 spreads chunks of ``chunk`` seeds over that many processes.
    ``progress``: a callable taking each list of :class:`FuzzCase` just finished.
    Returns a :class:`FuzzReport`.
    """
    c = get_config(config)
    if engine not in FUZZ_ENGINES:
        raise ValueError(f"unknown engine {engine!r}; fuzzing engines are "
                         f"{', '.join(FUZZ_ENGINES)}")
    if not c.rtl:
        raise ValueError(f"config {c.name!r} is for the golden model and compiler only, "
                         "it has no RTL")
    if count < 0:
        raise ValueError(f"count must not be negative, not {count}")
    started = time.perf_counter()
    seeds = list(range(seed, seed + count))
    jobs = [(c.name, engine, length, fault_every, load, seeds[i:i + chunk])
            for i in range(0, len(seeds), chunk)]
    cases = []
    if engine == "rtl" and jobs and workers > 1:
        # the first program converts and compiles the design; then it is cached
        done = _worker_run(jobs[0][:-1] + (jobs[0][-1][:1],))
        cases += done
        if progress:
            progress(done)
        jobs[0] = jobs[0][:-1] + (jobs[0][-1][1:],)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            done = _worker_run(job)
            cases += done
            if progress:
                progress(done)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for done in pool.imap_unordered(_worker_run, jobs):
                cases += done
                if progress:
                    progress(done)
    cases.sort(key=lambda case: case.seed)
    return FuzzReport(c.name, engine, seed, cases, time.perf_counter() - started)


# -- shrinking a failing program -------------------------------------------------------

def minimise(image, fails, max_rounds=20):
    """A smaller image on which ``fails(image)`` still holds.

    Tries, until nothing more helps: emptying whole queues, cutting each queue
    short (the rest becomes ``HALT``), deleting single words (an instruction with
    the ``REPEAT`` after it goes as a pair), and dropping initial MEM words,
    tables and maps. ``fails`` should also reject candidates that are no longer
    valid programs, if validity matters; a candidate on which it raises is dropped.
    """
    from firmware.isa import decode, DecodeError
    best = _copy(image)

    def attempt(candidate):
        nonlocal best
        try:
            ok = fails(candidate)
        except Exception:
            ok = False
        if ok:
            best = candidate
        return ok

    fp = image.config.floorplan
    for _ in range(max_rounds):
        changed = False
        for name in list(best.queues):
            if any(best.queues[name]):
                cand = _copy(best)
                cand.queues[name] = []
                changed |= attempt(cand)
        for name in list(best.queues):
            n = len(best.queues[name])
            cut = 0
            while cut < n:              # shortest prefix that still fails
                cand = _copy(best)
                cand.queues[name] = list(best.queues[name][:cut]) + [0]
                if cand.queues[name] == list(best.queues[name]):
                    break
                if attempt(cand):
                    changed = True
                    break
                cut += max(1, n // 8)
        for name in list(best.queues):
            kind = fp.queue(name).kind
            i = 0
            while i < len(best.queues[name]):
                words = list(best.queues[name])
                span = 1
                if i + 1 < len(words):
                    try:
                        span = 2 if decode(kind, int(words[i + 1])).mnemonic == "REPEAT" else 1
                    except DecodeError:
                        pass
                cand = _copy(best)
                cand.queues[name] = words[:i] + words[i + span:]
                if attempt(cand):
                    changed = True
                else:
                    i += 1
        for sname in list(best.memory):
            for addr in sorted(best.memory[sname]):
                cand = _copy(best)
                del cand.memory[sname][addr]
                changed |= attempt(cand)
        if best.lut is not None:
            cand = _copy(best)
            cand.lut = None
            changed |= attempt(cand)
        if best.perms:
            cand = _copy(best)
            cand.perms = {}
            changed |= attempt(cand)
        if not changed:
            break
    return best


def _copy(image):
    return ProgramImage.from_bytes(image.to_bytes(), source=image.source)


# -- the command -------------------------------------------------------------------------

def main(args):
    """``tsp fuzz``: returns the exit status (1 on any mismatch or invalid program)."""
    from pathlib import Path
    from tqdm import tqdm
    from firmware.asm import disassemble
    if args.count < 0:
        raise ValueError(f"--count must not be negative, not {args.count}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if args.length < 1:
        raise ValueError(f"--length must be at least 1, not {args.length}")
    config = get_config(args.config)
    tty = sys.stderr.isatty()
    log = open(args.log, "a") if args.log else None
    with tqdm(total=args.count, desc=f"fuzz {config.name}/{args.engine}", unit="prog",
              file=sys.stderr, mininterval=0.5 if tty else 30, disable=args.quiet) as bar:

        def progress(cases):
            for case in cases:          # failures as they come, not only at the end
                if not case.ok:
                    bar.write(case.report(), file=sys.stderr)
                if log is not None:
                    log.write(json.dumps(dataclasses.asdict(case)) + "\n")
            if log is not None:
                log.flush()
            bar.update(len(cases))

        report = fuzz(config.name, args.count, args.seed, args.engine, workers=args.workers,
                      length=args.length, fault_every=args.fault_every, load=args.load,
                      progress=progress)
    if log is not None:
        log.close()
    print(report.summary())
    if report.failed and args.save:
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        for case in report.failed:
            image = make_program(config, case.seed, args.length, case.faulty)
            path = out / f"{config.name}_seed{case.seed}.s"
            path.write_text(disassemble(image))
            print(f"  seed {case.seed}: program written to {path}")
            if args.minimise and case.mismatches:
                runner = "rtl" if args.engine == "rtl" else batch_for(config, args.load)
                small = minimise_mismatch(image, case, runner)
                path = out / f"{config.name}_seed{case.seed}_min.s"
                path.write_text(disassemble(small))
                print(f"  seed {case.seed}: minimised program written to {path}")
    return 1 if report.failed else 0


def minimise_mismatch(image, case, runner):
    """:func:`minimise` ``image`` while it still mismatches with ``runner`` (as for
    :func:`run_case`) and the golden model still judges it as it did (no errors for a
    valid program, some for a faulty one)."""
    from sim.golden import run_image

    def fails(candidate):
        if bool(run_image(candidate, max_cycles=MAX_CYCLES).errors) != case.faulty:
            return False
        found = run_case(runner, candidate, case.seed, case.faulty)
        return bool(found.mismatches or found.crash)
    return minimise(image, fails)


def add_arguments(parser):
    """The options of ``tsp fuzz``."""
    parser.add_argument("--count", type=int, default=100, help="programs to run (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--config", default="tiny", help="configuration (default tiny)")
    parser.add_argument("--engine", choices=FUZZ_ENGINES, default="amaranth",
                        help="amaranth: Amaranth's simulator, every hop register compared "
                             "(default); rtl: the Verilog on Icarus through cocotb")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, one simulator each (default 1)")
    parser.add_argument("--length", type=int, default=12,
                        help="random steps per queue (default 12)")
    parser.add_argument("--fault-every", type=int, default=10, metavar="N",
                        help="every N-th seed carries one deliberate fault (0: none; default 10)")
    parser.add_argument("--load", choices=("direct", "host"), default="direct",
                        help="amaranth: write instruction and MEM words into the block RAMs "
                             "(direct, default) or send them through the host port")
    parser.add_argument("--save", metavar="DIR",
                        help="write each failing program here as assembler text")
    parser.add_argument("--minimise", action="store_true",
                        help="with --save: also shrink each mismatching program (slow) and "
                             "write it next to the original as *_min.s")
    parser.add_argument("--log", metavar="FILE",
                        help="append one JSON line per program (seed, cycles, findings) here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
