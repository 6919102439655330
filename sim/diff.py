"""``tsp diff``: the golden model and the gateware side by side, and the first divergence.

:func:`diff_image` runs a program on the golden model and on the gateware
(Icarus through cocotb, or Amaranth's simulator), with every hop register of
every cycle recorded on both sides, and compares them cycle by cycle: the
golden model in local time, tile ``k`` of the gateware ``k`` cycles later
(``docs/ARCHITECTURE.md`` section 1). The first hop register that differs is
the first divergence, and since every register agreed one cycle earlier, the
fault lies with what drives that register: the slice just upstream of it
(its emission, or its lack of one) or the hop itself. Where no hop register
ever differs, the final memories, the error flags and the cycle count are
compared, and a differing memory word is traced back to the write that
should have stored it.

The report (:class:`DiffReport`) names the cycle (global, and local with its
tile), the slice at fault, the hop (position, stream, lane), the expected and
the actual values, what the golden model drives there and what the gateware
did instead, and the instructions in flight on every queue at that cycle.
With ``waves`` it also writes a wave file cut to a window of cycles around the
divergence, with its GTKWave save file (``sim/waves.py``) opened on the slice
and the hop at fault and the marker on the cycle.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.asm import _format          # the disassembler's formatter: assembler text
from firmware.isa import ErrorFlag
from firmware.machine import Dir


__all__ = ["Flight", "DiffReport", "diff_image", "compare_runs", "in_flight", "main", "WINDOW"]

#: Cycles shown before and after the divergence in the wave file.
WINDOW = 12

ENGINES = ("rtl", "amaranth")


@dataclass
class Flight:
    """One instruction in flight on a queue: assembler text, issue cycle, last cycle
    of its effect (its emission; the issue cycle for one without)."""
    queue: str
    text: str
    issued: int
    until: int
    done: bool = False       # the queue's last instruction, whose effect is over

    def __str__(self):
        span = f"issued {self.issued}" + (f", emits {self.until}" if self.until > self.issued else "")
        return f"{self.text} ({span}{', done' if self.done else ''})"


@dataclass
class DiffReport:
    program: str
    config: str
    engine: str
    variant: str | None
    cycles: int                  # of the gateware run
    golden_cycles: int
    mismatches: list             # differences of the final state, as sentences
    kind: str | None = None      # "hop", "memory", "errors", "cycles"; None: they agree
    cycle: int | None = None     # clock cycle of the run (0: local cycle 0 of tile 0)
    local_cycle: int | None = None
    tile: int | None = None
    flight_cycle: int | None = None   # local cycle of the in-flight table: when the fault acted
    slice: str | None = None     # the slice at fault
    position: int | None = None  # hop: position of the register
    reader: str | None = None    # hop: the slice that reads it
    stream: str | None = None    # hop: "E2"
    lane: int | None = None      # lane of the whole vector
    expected: int | None = None
    actual: int | None = None
    detail: list = field(default_factory=list)      # sentences: what should happen, what did
    in_flight: dict = field(default_factory=dict)   # queue -> [Flight] at local_cycle
    waves: Path | None = None
    gtkw: Path | None = None

    @property
    def agree(self):
        return self.kind is None

    def __str__(self):
        head = (f"{self.program}: config {self.config}, golden model vs {self.engine}"
                + (f" (broken variant {self.variant})" if self.variant else ""))
        if self.agree:
            return f"{head}: they agree, every hop register of every cycle ({self.cycles} cycles)"
        lines = [f"{head}: FIRST DIVERGENCE"]
        if self.cycle is not None:
            lines.append(f"  cycle     {self.cycle} (tile {self.tile}, local cycle {self.local_cycle})")
        if self.slice is not None:
            lines.append(f"  slice     {self.slice}")
        if self.kind == "hop":
            lines.append(f"  hop       {self.stream} read by {self.reader} (position {self.position}), "
                         f"lane {self.lane}")
        if self.expected is not None:
            lines.append(f"  expected  {self.expected:#04x}    actual {self.actual:#04x}")
        lines += [f"  {d}" for d in self.detail]
        if self.in_flight:
            lines.append(f"  in flight at local cycle {self.flight_cycle} (golden model):")
            width = max(len(q) for q in self.in_flight)
            for q, flights in self.in_flight.items():
                text = "; ".join(map(str, flights)) if flights else "-"
                lines.append(f"    {q:<{width}}  {text}")
        if self.mismatches:
            lines.append("  final state: " + "; ".join(self.mismatches))
        if self.waves is not None:
            lines.append(f"  waves     {self.waves}  (gtkwave {self.waves} {self.gtkw})")
        return "\n".join(lines)

    def as_dict(self):
        out = dict(self.__dict__)
        out["agree"] = self.agree
        out["in_flight"] = {q: [f.__dict__ for f in fl] for q, fl in self.in_flight.items()}
        out["waves"] = str(self.waves) if self.waves else None
        out["gtkw"] = str(self.gtkw) if self.gtkw else None
        return out


# -- the golden model's view ---------------------------------------------------------

def _effects(instr, config):
    from firmware.compiler.hazards import stream_effects
    return stream_effects(instr, config)


def _reach(config):
    """The longest delay from an issue to its emission: how far back to look."""
    lat = config.latency
    return max(lat.vxm, lat.mxm_abc + lat.mxm_acc, lat.sxm, lat.mem_read)


def in_flight(trace, local):
    """``{queue: [Flight]}``: every queue's instructions (ordinary ones, as the golden
    model issued them) that were issued at or before local cycle ``local`` and still
    have an effect to come then; a queue with none shows its last instruction."""
    config = trace.config
    reach = _reach(config)
    out = {}
    for q in config.floorplan.queues:
        flights, last = [], None
        for t in range(min(local, trace.ncycles - 1), -1, -1):
            instr = trace.issued[t].get(q.name)
            if instr is None:
                continue
            emits = _effects(instr, config)[1]
            until = t + max((d for d, _, _ in emits), default=0)
            f = Flight(q.name, _format(instr), t, until, done=until < local)
            if until >= local:
                flights.append(f)
            elif last is None:
                last = f
            if t < local - reach and (flights or last):
                break
        flights.reverse()
        out[q.name] = flights or ([last] if last else [])
    return out


def _emitters(trace, slice_, local, direction, stream):
    """The golden model's instructions of ``slice_`` that drive ``direction``/``stream``
    in local cycle ``local``."""
    config = trace.config
    reach = _reach(config)
    found = []
    for q in config.floorplan.queues:
        if q.slice != slice_:
            continue
        for t in range(max(0, local - reach), min(local, trace.ncycles - 1) + 1):
            instr = trace.issued[t].get(q.name)
            if instr is None:
                continue
            for delay, d, s in _effects(instr, config)[1]:
                if t + delay == local and d is direction and s == stream:
                    found.append(Flight(q.name, _format(instr), t, t + delay))
    return found


# -- locating the fault ------------------------------------------------------------------

def _vector(hops, g, d, p, k, s):
    if 0 <= g < len(hops):
        return hops[g, d, p, k, s]
    return None


def _golden_vector(trace, local, d, p, k, s):
    L = trace.config.lanes
    if local < 0:
        return np.zeros(L, np.uint8)
    if local >= trace.ncycles:
        return None
    arr = trace.east if d == 0 else trace.west
    return arr[local, p, s, k * L:(k + 1) * L]


def _hop_fault(rep, div, trace, hops):
    config = trace.config
    fp = config.floorplan
    direction = Dir[div.direction]
    d = direction.value
    up = div.position - direction.step          # the slice that drives this register
    driver = fp.slices[up]
    g, k, p, s, local = div.cycle, div.tile, div.position, div.stream, div.local_cycle
    rep.kind = "hop"
    rep.cycle, rep.local_cycle, rep.tile = g, local, k
    rep.slice, rep.position = driver.name, p
    rep.stream, rep.lane = f"{div.direction}{s}", div.lane
    rep.expected, rep.actual = div.expected, div.actual
    rep.reader = fp.slices[p].name
    emit_at = local - 1
    want = _emitters(trace, driver, emit_at, direction, s)
    if want:
        rep.detail.append(f"golden model: in local cycle {emit_at} {driver.name} drives "
                          f"{div.direction}{s} into {fp.slices[p].name}: "
                          + "; ".join(f"{f.queue} {f.text} (issued {f.issued})" for f in want))
    else:
        rep.detail.append(f"golden model: {driver.name} does not drive {div.direction}{s} in "
                          f"local cycle {emit_at}; the value passes through from upstream")
    now = _vector(hops, g, d, p, k, s)
    passing = (_vector(hops, g - 1, d, up - direction.step, k, s)
               if 0 <= up - direction.step < fp.width else np.zeros_like(now))
    if passing is not None and np.array_equal(now, passing):
        rep.detail.append(f"gateware: {driver.name} drove nothing onto {div.direction}{s}; "
                          f"the value passed through")
    else:
        rep.detail.append(f"gateware: the register holds {_hex(now)} (golden model "
                          f"{_hex(_golden_vector(trace, local, d, p, k, s))}, tile {k}'s lanes)")
    rep.detail += _hints(trace, hops, div)


def _hex(vec):
    return "[" + " ".join(f"{int(v):02x}" for v in vec) + "]" if vec is not None else "?"


def _hints(trace, hops, div):
    """Patterns that often explain a divergence: the value belongs to another stream,
    or to the same stream one cycle earlier or later."""
    out = []
    config = trace.config
    d = Dir[div.direction].value
    g, k, p, s, local = div.cycle, div.tile, div.position, div.stream, div.local_cycle
    have = hops[g, d, p, k, s]
    want = _golden_vector(trace, local, d, p, k, s)
    if have.any():
        for s2 in range(config.streams):
            other = _golden_vector(trace, local, d, p, k, s2)
            if s2 != s and other is not None and np.array_equal(have, other):
                out.append(f"hint: the gateware's value is the golden model's {div.direction}{s2} "
                           f"here: streams crossed?")
                break
        before = _golden_vector(trace, local - 1, d, p, k, s)
        if before is not None and np.array_equal(have, before) and not np.array_equal(have, want):
            out.append("hint: the gateware still holds the previous cycle's value")
    later = _vector(hops, g + 1, d, p, k, s)
    if want is not None and want.any() and later is not None and np.array_equal(later, want):
        out.append(f"hint: the expected value arrives one cycle late (cycle {g + 1}): "
                   "a latency one cycle too long?")
    earlier = _vector(hops, g - 1, d, p, k, s)
    if (want is not None and want.any() and earlier is not None and np.array_equal(earlier, want)
            and not np.array_equal(_golden_vector(trace, local - 1, d, p, k, s), want)):
        out.append(f"hint: the expected value arrived one cycle early (cycle {g - 1}): "
                   "a latency one cycle too short?")
    return out


def _memory_fault(rep, trace, rtl_memory, golden_memory):
    config = trace.config
    fp = config.floorplan
    for name, want in golden_memory.items():
        have = rtl_memory.get(name)
        if have is None:
            continue
        bad = np.argwhere(have != want)
        if not len(bad):
            continue
        addr, lane = (int(v) for v in bad[0])
        k = lane // config.lanes
        rep.kind, rep.slice, rep.tile, rep.lane = "memory", name, k, lane
        rep.expected, rep.actual = int(want[addr, lane]), int(have[addr, lane])
        writes = [(t, i) for t in range(trace.ncycles)
                  for q, i in trace.issued[t].items()
                  if fp.queue(q).slice.name == name and _writes(i, addr)]
        rep.detail.append(f"memory: {name} word {addr:#x} lane {lane} differs "
                          f"({int((have != want).any(axis=1).sum())} words differ in this slice)")
        if writes:
            t, instr = writes[-1]
            rep.local_cycle, rep.cycle = t, t + k
            rep.detail.append(f"golden model: the last write of that word is {_format(instr)} "
                              f"in local cycle {t}")
        else:
            rep.detail.append("golden model: no instruction writes that word; the gateware did")
        return True
    return False


def _writes(instr, addr):
    f = instr.fields
    return ((instr.mnemonic == "WRITE" and f["addr"] == addr)
            or (instr.mnemonic == "RW" and f["waddr"] == addr))


def _locate(rep, image, golden, res):
    from sim.rtl_runner import first_divergence
    fp = image.config.floorplan
    div = first_divergence(golden.trace, res.hops) if res.hops is not None else None
    if div is not None:
        _hop_fault(rep, div, golden.trace, res.hops)
    elif _memory_fault(rep, golden.trace, res.memory, golden.memory):
        pass
    elif res.errors != golden.errors:
        rep.kind = "errors"
        queues = [q.name for q in fp.queues] + ["DEADLOCK"]
        where = queues[res.err_queue] if res.errors else None
        if where is not None:
            q = fp.queue(where) if where != "DEADLOCK" else None
            rep.slice = q.slice.name if q else "DEADLOCK"
            rep.local_cycle = rep.cycle = int(res.err_cycle)
            rep.tile = 0
        rep.detail.append(f"errors: gateware {_flags(res.errors)}"
                          + (f" first raised by {where} in local cycle {res.err_cycle}" if where else "")
                          + f"; golden model {_flags(golden.errors)}"
                          + (f" ({golden.events[0]})" if golden.events else ""))
    elif res.cycles != golden.cycles:
        rep.kind = "cycles"
        rep.detail.append(f"cycles: gateware {res.cycles}, golden model {golden.cycles}")
    if rep.local_cycle is not None:
        # A hop register holds what its driver did one cycle earlier: show that cycle.
        rep.flight_cycle = max(0, rep.local_cycle - (rep.kind == "hop"))
        rep.in_flight = in_flight(golden.trace, rep.flight_cycle)


def _flags(bits):
    return "|".join(f.name for f in ErrorFlag if bits & f) or "none"


# -- running ----------------------------------------------------------------------------

def diff_image(image, engine="rtl", variant=None, waves=None, window=WINDOW, kinds=None):
    """Run ``image`` on the golden model and on ``engine`` (``"rtl"``: Icarus,
    ``"amaranth"``: Amaranth's simulator), optionally built as the broken
    ``variant`` (a name of :data:`sim.broken.VARIANTS`), and report the first
    divergence (:class:`DiffReport`). ``waves``: where to write the wave file cut
    to ``window`` cycles either side of the divergence (``.fst`` for ``rtl``,
    ``.vcd`` for ``amaranth``), with its ``.gtkw``; none is written when the two agree.
    ``kinds``: the slice kinds to build (``amaranth`` only; the others pass their
    streams through): a smaller model for programs that use only those."""
    from sim.golden import run_image
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; tsp diff runs {', '.join(ENGINES)}")
    classes = None
    if variant is not None:
        from sim.broken import variant as broken
        classes = broken(variant).classes
    golden = run_image(image, trace=True)
    suffix = ".fst" if engine == "rtl" else ".vcd"
    with tempfile.TemporaryDirectory(prefix="tsp-diff-") as tmp:
        full = Path(tmp) / f"run{suffix}" if waves else None
        if engine == "rtl":
            from sim.rtl_runner import run_image_rtl
            res = run_image_rtl(image, trace=True, golden=golden, waves=full, variant=variant)
        else:
            from sim.amaranth_run import run_image_amaranth
            kw = {"kinds": kinds} if kinds else {}
            res = run_image_amaranth(image, trace=True, vcd_path=full, classes=classes, **kw)
        rep = compare_runs(image, golden, res, engine, variant)
        if waves and not rep.agree:
            rep.waves, rep.gtkw = _windowed_waves(full, Path(waves), image, rep, window)
    return rep


def compare_runs(image, golden, result, engine, variant=None):
    """The :class:`DiffReport` of a golden run (with its trace) and a gateware run of
    ``image`` (with its ``hops``): where they first differ, or that they agree."""
    from sim.rtl_runner import compare
    rep = DiffReport(program=str(image.source or "program"), config=image.config.name,
                     engine=engine, variant=variant, cycles=int(result.cycles),
                     golden_cycles=int(golden.cycles), mismatches=compare(result, golden))
    _locate(rep, image, golden, result)
    if rep.mismatches and rep.kind is None:        # e.g. the ECC status alone
        rep.kind = "final state"
    return rep


def _windowed_waves(full, out, image, rep, window):
    from sim.waves import Focus, cut_window, cycle_times, write_gtkw
    out = out.with_suffix(full.suffix)
    times, period = cycle_times(full)
    last = max(times)
    if rep.cycle is None:
        lo, hi = 0, last
    else:
        lo, hi = max(0, rep.cycle - window), min(last, rep.cycle + window)
    end = times[hi] + period - 1               # the last cycle whole, not the next one
    cut_window(full, out, times[lo], end)
    slices = tuple(s for s in (rep.slice, rep.reader) if s)
    focus = Focus(slices=slices, tile=rep.tile or 0,
                  hop=(rep.reader, rep.stream) if rep.kind == "hop" else None, cycle=rep.cycle)
    result = write_gtkw(out, image, focus=focus, window=(times[lo], end))
    return out, result.path


# -- the command -------------------------------------------------------------------------

def main(args):
    """``tsp diff`` (the parser is in ``firmware/cli.py``). Exit status 0 when the
    golden model and the gateware agree, 1 when they do not."""
    from firmware.cli import UsageError
    from firmware.compiler.schedule_view import load_program
    if args.window < 0:
        raise UsageError(f"--window {args.window}: must be at least 0 cycles")
    if args.variant is not None:
        from sim.broken import VARIANTS
        if args.variant not in VARIANTS:
            raise UsageError(f"no broken variant {args.variant!r}; "
                             f"variants are {', '.join(VARIANTS)}")
    image = load_program(args.program, args.config, args.inputs)
    if not image.config.rtl:
        raise UsageError(f"config {image.config.name!r} is for the golden model and compiler only")
    waves = None
    if not args.no_waves:
        suffix = ".fst" if args.engine == "rtl" else ".vcd"
        waves = Path(args.waves) if args.waves else Path(f"{Path(args.program).stem}-diff{suffix}")
    rep = diff_image(image, engine=args.engine, variant=args.variant, waves=waves,
                     window=args.window)
    if args.json:
        print(json.dumps(rep.as_dict(), default=str))
    else:
        print(rep)
    return 0 if rep.agree else 1
