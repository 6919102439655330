"""Building programs by hand for tests: instructions placed at exact cycles.

Tests of the golden model (and of the gateware against it) need programs whose
every instruction issues at a known local cycle, without going through the
assembler. :class:`Program` takes ``(cycle, queue, mnemonic, fields)`` and
fills the gaps with ``NOP``s::

    p = Program("tiny")
    p.data("MEM_E0", 0, [1, 2, 3, 4])
    p.at(0, "MEM_E0", "READ", dir=E, stream=1, addr=0)     # issues at cycle 0
    p.repeat("MEM_E0", n=3, d=1, stride=1)                  # cycles 1, 2, 3
    p.at(4, "VXM0", "ADD", a=src(W, 1), b=IMM, imm=5, **dst(E, 2))
    result = p.run(trace=True)

Field values are the raw ones of ``firmware.isa.OPS``; the helpers below make
the VXM operand and destination fields readable. Words beyond a queue's list
are 0 = HALT, so a program needs no explicit HALT.
"""

import numpy as np

from firmware import isa
from firmware.image import DTYPES, Output, ProgramImage
from firmware.isa import Operand, OperandKind
from firmware.machine import Dir, SliceKind, get_config
from sim.golden import run_image


__all__ = ["Program", "E", "W", "src", "alu", "IMM", "ZERO", "dst", "SG4", "i32_planes",
           "planes_i32", "random_bytes"]

E, W = Dir.E.value, Dir.W.value

#: VXM operand field values.
IMM = Operand(OperandKind.IMM).encode()
ZERO = Operand(OperandKind.ZERO).encode()

#: Streams of an int32 SG4 group (words per int32 vector).
SG4 = DTYPES["i32"][0]


def src(direction, stream):
    """VXM operand: stream ``stream`` flowing in ``direction`` (``E`` or ``W``)."""
    return Operand(OperandKind.STREAM, Dir(direction), stream).encode()


def alu(j):
    """VXM operand: the result register of ALU ``j`` (chaining)."""
    return Operand(OperandKind.ALU, Dir.E, j).encode()


def dst(direction, stream):
    """VXM destination fields: emit the result onto ``stream`` in ``direction``."""
    return {"we": 1, "wdir": direction, "wstream": stream}


def i32_planes(values):
    """int32 values [VL] -> the SG4 words holding them, uint8 [4, VL] (byte i in word i)."""
    return np.asarray(values, np.int64).astype("<i4").view(np.uint8).reshape(-1, SG4).T.copy()


def planes_i32(planes):
    """uint8 [4, VL] SG4 words -> int32 values [VL]."""
    p = np.asarray(planes, np.uint8).astype(np.int64)
    v = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24
    return v.astype(np.uint32).view(np.int32)


def random_bytes(rng, *shape):
    """Uniform random bytes (uint8) of the given shape, from a numpy Generator."""
    return rng.integers(0, 256, size=shape, dtype=np.int64).astype(np.uint8)


def _nop_max():
    """The longest single NOP: its count field is all ones (ICU ops are in every queue kind)."""
    (width,) = [w for name, w, _ in isa.OPS[SliceKind.MEM]["NOP"].fields if name == "n"]
    return (1 << width) - 1


class Program:
    """A program under construction for one configuration.

    Each queue remembers the cycle its next word is reached at (``None``
    once that depends on the run: after ``SYNC`` or ``HALT``) and the issue
    cycle of its last ordinary instruction (for ``REPEAT``).
    """

    def __init__(self, config):
        self.config = get_config(config)
        self.fp = self.config.floorplan
        self._image = ProgramImage(self.config)
        self._next = {}
        self._last = {}

    def _queue(self, name):
        return self.fp.queue(name)

    def _append(self, queue, mnemonic, fields):
        q = self._queue(queue)
        word = isa.encode(isa.Instr(q.kind, mnemonic.upper(), dict(fields)))
        self._image.queues.setdefault(q.name, []).append(word)
        return q.name

    def _advance(self, name, cycle, mnemonic, fields):
        info = isa.OPS[self._queue(name).kind][mnemonic.upper()]
        if not info.is_icu:
            self._last[name] = cycle
        if cycle is None or info.mnemonic in ("SYNC", "HALT"):
            self._next[name] = None
        elif info.mnemonic == "NOP":
            self._next[name] = cycle + fields["n"]
        else:
            self._next[name] = cycle + 1

    def next_cycle(self, queue):
        """The cycle the queue's next word will be reached at (None: run-dependent)."""
        return self._next.get(self._queue(queue).name, 0)

    def at(self, cycle, queue, mnemonic, **fields):
        """Place an instruction so that the queue reaches it at ``cycle``
        (an ordinary one issues then); the gap before it becomes NOPs."""
        name = self._queue(queue).name
        if mnemonic.upper() == "REPEAT":
            raise ValueError("use Program.repeat(): a REPEAT's cycles follow from its instruction")
        now = self.next_cycle(name)
        if now is None:
            raise ValueError(f"{name}: the cycle of its next word depends on the run "
                             "(after SYNC or HALT); use Program.then()")
        if cycle < now:
            raise ValueError(f"{name}: cycle {cycle} is taken, the queue is busy until {now}")
        while cycle - now > 0:
            n = min(cycle - now, _nop_max())
            self._append(name, "NOP", {"n": n})
            now += n
        self._append(name, mnemonic, fields)
        self._advance(name, cycle, mnemonic, fields)
        return self

    def then(self, queue, mnemonic, **fields):
        """Append an instruction right after the queue's previous one."""
        if mnemonic.upper() == "REPEAT":
            raise ValueError("use Program.repeat()")
        name = self._append(queue, mnemonic, fields)
        self._advance(name, self.next_cycle(name), mnemonic, fields)
        return self

    def repeat(self, queue, n, d=1, stride=0):
        """Append ``REPEAT n, d, stride`` (legal or not: tests need both)."""
        name = self._append(queue, "REPEAT", {"n": n, "d": d, "stride": stride})
        last = self._last.get(name)
        if last is None or self.next_cycle(name) is None:
            self._next[name] = None
        else:
            self._last[name] = last + n * d
            self._next[name] = last + n * d + 1
        return self

    def hold_until(self, cycle, queue=None):
        """Keep the program running until local cycle ``cycle`` (H >= cycle), so
        that results still in flight reach where a test looks for them: an
        otherwise unused queue (or ``queue``) halts at ``cycle``."""
        if queue is None:
            free = [q.name for q in self.fp.queues if q.name not in self._image.queues]
            if not free:
                raise ValueError("every queue is in use; name the queue to halt")
            queue = free[-1]
        return self.at(cycle, queue, "HALT")

    def word(self, queue, word):
        """Append a raw instruction word (e.g. an undefined opcode); it takes one cycle."""
        name = self._queue(queue).name
        self._image.queues.setdefault(name, []).append(int(word))
        now = self.next_cycle(name)
        self._next[name] = None if now is None else now + 1
        return self

    def data(self, slice_name, addr, values):
        """Initial memory: ``values`` (bytes, -128..255) from word ``addr`` on."""
        self._image.set_words(slice_name, addr, values)
        return self

    def lut(self, table):
        """Host-loaded VXM lookup tables: int8 [VL, 256] (one table per lane)."""
        self._image.lut = np.asarray(table, np.int8)
        return self

    def perm(self, sxm, map_id, lanes):
        """Host-loaded SXM permutation map: result lane l takes source lane lanes[l]."""
        self._image.perms.setdefault(sxm, {})[map_id] = [int(x) for x in lanes]
        return self

    def output(self, name, slice_name, addr, count, dtype="i8"):
        """A named result: ``count`` vectors (see ``firmware.image.Output``)."""
        self._image.outputs[name] = Output(name, slice_name, addr, count, dtype)
        return self

    def image(self):
        """The ProgramImage built so far (the same object on every call)."""
        return self._image

    def run(self, **kw):
        """Run on the golden model: ``sim.golden.run_image(self.image(), **kw)``."""
        return run_image(self._image, **kw)
