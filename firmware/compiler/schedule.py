"""Static schedules: every instruction at an exact local cycle on its queue.

The TSP has no interlocks: a slice reads whatever value passes its position in
the cycle it issues (``docs/ARCHITECTURE.md`` section 2). A :class:`Schedule`
is therefore nothing but a table ``queue -> cycle -> instruction``, plus, for
the hazard checker, the name of the value every emission carries and of the
value every stream read expects.

Streams. A value emitted by slice ``j`` at cycle ``e`` eastward is at position
``j + 1`` in ``e + 1``, ``j + 2`` in ``e + 2`` ...: it lives on the *diagonal*
``pos - cycle = j - e`` of that stream (westward: ``pos + cycle = j + e``). Two
values may share a stream as long as they sit on different diagonals, or on
disjoint stretches of one diagonal. :meth:`Schedule.alloc_streams` hands out
streams by that rule and records the stretch each value occupies.

Queue programs. :meth:`Schedule.emit` turns the table into instruction words:
gaps become ``NOP``, runs of one instruction at a constant distance whose
address fields advance by a constant stride become ``REPEAT``, and ``HALT``
follows the last instruction. Its cycle, ``h_q``, gives the run time
``H + T`` (section 3 of the architecture page).
"""

from typing import NamedTuple

from ..image import ProgramImage
from ..isa import ICU_OPS, Instr, OPS, encode
from ..machine import Dir, SliceKind, get_config


__all__ = ["Schedule", "ScheduleError", "Part", "Placement"]


class ScheduleError(ValueError):
    """A placement or a stream request that cannot be satisfied."""


class Part(NamedTuple):
    """Byte ``index`` of the value named ``value``: an int32 value leaves on an
    SG4 group, and stream ``s + i`` carries its byte ``i``. Single-stream
    values are ``Part(value, 0)``."""
    value: object
    index: int = 0


class Placement(NamedTuple):
    """One instruction at its issue cycle.

    ``produces`` names the value the instruction emits (None if it emits
    nothing); ``expects`` names, stream by stream in the order the instruction
    reads them, the value it must find there (:class:`Part` each).
    """
    queue: str
    cycle: int
    instr: Instr
    produces: object = None
    expects: tuple = ()


def _field_limits(kind, mnemonic, name):
    for n, width, signed in OPS[kind][mnemonic].fields:
        if n == name:
            return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    raise KeyError(name)


#: Field ranges of the ICU instructions the emitter writes.
_NOP_MAX = _field_limits(SliceKind.MEM, "NOP", "n")[1]
_REPEAT_N_MAX = _field_limits(SliceKind.MEM, "REPEAT", "n")[1]
_REPEAT_D_MAX = _field_limits(SliceKind.MEM, "REPEAT", "d")[1]
_STRIDE_MIN, _STRIDE_MAX = _field_limits(SliceKind.MEM, "REPEAT", "stride")


_FIELD_NAMES = {(kind, m): tuple(n for n, _, _ in info.fields)
                for kind, table in OPS.items() for m, info in table.items()}
_FIELD_SETS = {k: frozenset(v) for k, v in _FIELD_NAMES.items()}


def _complete(instr):
    """``instr`` with every field of its layout present (absent ones are 0, as
    :func:`~firmware.isa.encode` would write them), so that placements compare
    equal to decoded words."""
    f = instr.fields
    if f.keys() == _FIELD_SETS[instr.kind, instr.mnemonic]:
        return instr
    names = _FIELD_NAMES[instr.kind, instr.mnemonic]
    unknown = set(f) - set(names)
    if unknown:
        raise ScheduleError(f"{instr.mnemonic}: unknown field(s) {', '.join(sorted(unknown))}")
    return Instr(instr.kind, instr.mnemonic, {n: f.get(n, 0) for n in names})


def _icu(kind, mnemonic, **fields):
    return Instr(kind, mnemonic, fields)


class Schedule:
    """Instructions at exact local cycles, per queue, and the stream stretches
    the values between them occupy.

    ``place`` refuses two instructions on one queue in one cycle (a queue
    issues at most one per cycle); ``alloc_streams`` refuses to put two live
    values on one stretch of a diagonal.
    """

    def __init__(self, config):
        self.config = get_config(config)
        self.floorplan = self.config.floorplan
        self.latency = self.config.latency
        self._queues = {}        # queue name -> {cycle: Placement}
        self._occupied = {}      # (dir value, stream, diagonal) -> [(lo, hi, value)], reader positions
        self._words = None       # emit() cache: (words per queue, halt cycle per queue)

    # -- instructions -------------------------------------------------------

    def place(self, queue, cycle, instr, produces=None, expects=()):
        """Put ``instr`` on ``queue`` at local cycle ``cycle``.

        ``produces``: the name of the value it emits; ``expects``: per stream
        it reads, the value it must find (a :class:`Part`, or a plain name for
        ``Part(name, 0)``). Both are what :func:`~.hazards.check_schedule`
        verifies against the data flow it derives from the instructions.
        """
        q = self.floorplan.queue(queue)
        if instr.kind is not q.kind:
            raise ScheduleError(f"{instr} is a {instr.kind.value} instruction, "
                                f"queue {q.name} is a {q.kind.value} queue")
        if instr.mnemonic in ICU_OPS:
            raise ScheduleError(f"{instr}: ICU instructions are generated by emit(), not placed")
        if not isinstance(cycle, int) or cycle < 0:
            raise ScheduleError(f"{q.name}: cycle {cycle!r} is not a local cycle (an int >= 0)")
        slots = self._queues.setdefault(q.name, {})
        if cycle in slots:
            raise ScheduleError(f"queue {q.name}, cycle {cycle}: {slots[cycle].instr} is already "
                                f"placed there, cannot also place {instr}")
        expects = tuple(e if isinstance(e, Part) else Part(e, 0) for e in expects)
        slots[cycle] = Placement(q.name, cycle, _complete(instr), produces, expects)
        self._words = None

    def placements(self, queue=None):
        """All placements (of one queue), in cycle order."""
        names = [self.floorplan.queue(queue).name] if queue else list(self._queues)
        out = []
        for name in names:
            slots = self._queues.get(name, {})
            out.extend(slots[c] for c in sorted(slots))
        return out

    @property
    def queue_names(self):
        return [q.name for q in self.floorplan.queues if q.name in self._queues]

    # -- streams ------------------------------------------------------------

    @staticmethod
    def diagonal(direction, pos, cycle):
        """The constant of the diagonal a value at ``pos`` in ``cycle`` rides."""
        return pos - cycle if direction is Dir.E else pos + cycle

    def _stretch(self, direction, src_pos, dst_pos):
        """Reader positions a value from ``src_pos`` passes on its way to ``dst_pos``."""
        step = direction.step
        if (dst_pos - src_pos) * step < 1:
            raise ScheduleError(f"slice position {dst_pos} is not downstream ({direction.name}) "
                                f"of position {src_pos}")
        if not 0 <= dst_pos < self.floorplan.width:
            raise ScheduleError(f"position {dst_pos} is off the floorplan")
        lo, hi = sorted((src_pos + step, dst_pos))
        return lo, hi

    def _free(self, direction, stream, diag, lo, hi):
        return all(hi < a or b < lo for a, b, _ in self._occupied.get((direction.value, stream, diag), ()))

    def _find_streams(self, direction, segments, align):
        """``(base, spans)``: the first free aligned run of streams for
        ``segments`` (``base`` None if there is none) and their diagonals."""
        spans = []
        for src, emit, dst in segments:
            lo, hi = self._stretch(direction, src, dst)
            spans.append((self.diagonal(direction, src, emit), lo, hi))
        for base in range(0, self.config.streams - len(segments) + 1, align):
            if all(self._free(direction, base + i, d, lo, hi) for i, (d, lo, hi) in enumerate(spans)):
                return base, spans
        return None, spans

    def streams_free(self, direction, segments, align=1):
        """Would :meth:`alloc_streams` find streams for ``segments``? (Records nothing.)"""
        direction = direction if isinstance(direction, Dir) else Dir(direction)
        return self._find_streams(direction, segments, align)[0] is not None

    def alloc_streams(self, direction, segments, align=1, value=None):
        """Find ``len(segments)`` consecutive streams, the first a multiple of
        ``align``, such that stream ``base + i`` is free for ``segments[i] =
        (src_pos, emit_cycle, dst_pos)``; record them and return ``base``.

        One ``LW`` takes its columns from several MEM slices on consecutive
        streams; an int32 result leaves on an aligned SG4 group whose four
        bytes go to four different slices: both are one call.
        """
        direction = direction if isinstance(direction, Dir) else Dir(direction)
        n = len(segments)
        base, spans = self._find_streams(direction, segments, align)
        if base is not None:
            for i, (d, lo, hi) in enumerate(spans):
                self._occupied.setdefault((direction.value, base + i, d), []).append((lo, hi, value))
            return base
        src, emit, dst = segments[0]
        d, lo, hi = spans[0]
        busy = [v for s in range(self.config.streams)
                for a, b, v in self._occupied.get((direction.value, s, d), ()) if not (hi < a or b < lo)]
        raise ScheduleError(f"no {n} free {direction.name} stream(s) (aligned to {align}) for "
                            f"{value!r} emitted at position {src} in cycle {emit} towards {dst}: "
                            f"that stretch of its diagonal carries {busy}")

    def alloc_stream(self, direction, src_pos, emit_cycle, dst_pos, group=1, value=None):
        """A free stream (``group=1``) or aligned SG4 group (``group=4``) for a
        value emitted by position ``src_pos`` at ``emit_cycle`` and read up to
        ``dst_pos``; returns the (first) stream index."""
        if group not in (1, 4):
            raise ScheduleError(f"group must be 1 or 4 (SG4), not {group!r}")
        return self.alloc_streams(direction, [(src_pos, emit_cycle, dst_pos)] * group,
                                  align=group, value=value)

    # -- queue programs -----------------------------------------------------

    def emit(self):
        """Instruction words per queue: ``{queue name: [word, ...]}``."""
        return self._emitted()[0]

    def halt_cycles(self):
        """``{queue name: h_q}``, the cycle each queue reaches its ``HALT``."""
        return self._emitted()[1]

    def predicted_cycles(self):
        """Clock cycles of the whole run: ``H + T`` (last HALT plus the stagger)."""
        halts = self.halt_cycles()
        return max(halts.values(), default=0) + self.config.tiles

    def to_image(self, memory=None, outputs=(), source=None):
        """A :class:`ProgramImage` of this schedule; ``memory`` is ``{slice:
        {addr: bytes}}`` as ``ProgramImage.memory``, ``outputs`` Output objects."""
        img = ProgramImage(self.config, queues=dict(self.emit()), source=source)
        for name, words in (memory or {}).items():
            img.memory[name] = dict(words)
        for out in outputs:
            out.validate(self.config)
            img.outputs[out.name] = out
        return img

    def _emitted(self):
        if self._words is None:
            words, halts = {}, {}
            for name in self.queue_names:
                instrs, halts[name] = _compress(self.floorplan.queue(name).kind,
                                                self.placements(name))
                words[name] = [encode(i) for i in instrs]
            self._words = (words, halts)
        return self._words


# -- NOP / REPEAT compression ------------------------------------------------------

def _stride(a, b):
    """The address stride from ``a`` to ``b`` if ``b`` is ``a`` repeated with
    every address field moved by one stride (and nothing else changed)."""
    if a.mnemonic != b.mnemonic:
        return None
    addr = a.info.addr_fields
    if any(a.fields[f] != b.fields[f] for f in a.fields if f not in addr):
        return None
    steps = {b.fields[f] - a.fields[f] for f in addr} or {0}
    if len(steps) != 1:
        return None
    step = steps.pop()
    return step if _STRIDE_MIN <= step <= _STRIDE_MAX else None


def _run_length(placed, i):
    """How many placements from ``i`` on form one REPEAT walk (at least 1)."""
    if i + 1 >= len(placed):
        return 1
    d = placed[i + 1].cycle - placed[i].cycle
    stride = _stride(placed[i].instr, placed[i + 1].instr)
    if not 1 <= d <= _REPEAT_D_MAX or stride is None:
        return 1
    j = i + 1
    while (j + 1 < len(placed) and placed[j + 1].cycle - placed[j].cycle == d
           and _stride(placed[j].instr, placed[j + 1].instr) == stride):
        j += 1
    return j - i + 1


def _compress(kind, placed):
    """Placements of one queue -> (instructions with NOP/REPEAT/HALT, halt cycle).

    A ``REPEAT`` issues its repetitions at ``t0 + d, t0 + 2d ..`` and lets the
    next word issue at ``t0 + n*d + 1``, so a run of ``k`` placements at
    distance ``d`` costs two words instead of ``k`` plus the ``NOP``s
    between them. Chained ``REPEAT``s continue the same address walk, which
    covers runs longer than the ``n`` field holds.
    """
    out = []
    now = 0                       # cycle at which the next word is reached
    i = 0
    while i < len(placed):
        p = placed[i]
        gap = p.cycle - now
        while gap > 0:
            n = min(gap, _NOP_MAX)
            out.append(_icu(kind, "NOP", n=n))
            gap -= n
        out.append(p.instr)
        k = _run_length(placed, i)
        if k > 1:
            d = placed[i + 1].cycle - p.cycle
            stride = _stride(p.instr, placed[i + 1].instr)
            left = k - 1
            while left:
                n = min(left, _REPEAT_N_MAX)
                out.append(_icu(kind, "REPEAT", n=n, d=d, stride=stride))
                left -= n
        now = placed[i + k - 1].cycle + 1
        i += k
    out.append(_icu(kind, "HALT"))
    return out, now
