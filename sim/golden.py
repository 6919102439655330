"""Cycle-accurate golden model of the tensor streaming processor.

The model runs ``docs/ARCHITECTURE.md`` literally. It counts *local* cycles and
keeps every stream, memory word and register as a whole ``VL``-byte vector:
tile ``k`` runs the same program on its own lanes ``k`` cycles after tile 0, on
data that is ``k`` cycles later too, so one vector in local time is the state of
every tile at once. :meth:`Trace.tile_view` maps it back to what one tile holds
at a global clock cycle, which is what the gateware shows.

One local cycle ``t`` is simulated in the order the hardware's registers imply:

1. results due at ``t`` land: VXM result registers of ops issued at
   ``t - Latencies.vxm``, MXM accumulates of ``ABC`` issued at ``t - mxm_abc``
   (an ``ACC`` at ``t`` sees them);
2. every queue due at ``t`` steps its sequencer (NOP, REPEAT, NOTIFY/SYNC,
   HALT); an issued instruction is checked (``isa.check``) and then reads the
   streams, memories, result registers and weights as they are at ``t``.
   Effects that become visible "from ``t + 1``" (MEM write, ``LW``, ``IW``,
   ``LUTW``) are applied at once: only the issuing queue reads that state, and
   it issues at most once a cycle;
3. emissions due at ``t`` are driven into the hop registers, which the slices
   one hop away read at ``t + 1`` (two onto one stream: ``STREAM_CONFLICT``);
4. an error raised at ``t`` stops every queue from ``t + 1``; ``DEADLOCK`` is
   detected.

The program ends at ``H`` (the last queue's HALT); cycles ``H .. H + T - 1``
are still simulated because results already in flight can raise errors there,
as tile 0 sees them before tile ``T - 1`` finishes.

Usage::

    from sim.golden import GoldenModel, run_image
    result = GoldenModel(image).run()      # or run_image(image)
    result.cycles, result.errors, result.memory["MEM_E0"], result.outputs["y"]

ECC (``firmware/ecc.py``): a word's stored check bits always match its data
unless a fault (``faults=``, :class:`firmware.ecc.Fault`) flipped bits of it
since it was last stored, so the model keeps check bits only for such words
(``_MemUnit.checks``) and decodes only their reads: fault-free runs cost
nothing. A read of a faulty word corrects a single-bit error in every tile
and counts it, and flags an uncorrectable one (``MEM_ECC``, which does not
stop the machine); ``RunResult.ecc`` holds the tally as the host reads it.
``RunResult.memory`` holds the words as stored (flipped bits included),
``outputs`` the words as a host reads them back (corrected).
"""

from dataclasses import dataclass, field

import numpy as np

from firmware import isa
from firmware.ecc import EccStatus, code_for, correct_memory, encode_word
from firmware.image import DTYPES, ImageError
from firmware.isa import ErrorFlag, DecodeError, Operand, OperandKind
from firmware.machine import Dir, SliceKind


__all__ = ["GoldenModel", "RunResult", "ErrorEvent", "Trace", "SimulationTimeout", "run_image"]


#: Streams in an int32 group (SG4): one byte plane each, little-endian.
SG4 = DTYPES["i32"][0]

#: Value width of the VXM ``dtype`` bit: 0 int8, 1 int32.
DTYPE_BITS = (8, 32)

#: Entries of a lane's lookup table: indexed by an int8 value's byte.
LUT_ENTRIES = 1 << DTYPE_BITS[0]


class SimulationTimeout(RuntimeError):
    """The program did not finish within ``max_cycles`` local cycles."""


@dataclass(frozen=True)
class ErrorEvent:
    """One raised error: local cycle (as tile 0 sees it), flag, the queue or
    slice that raised it, and why."""
    cycle: int
    flag: ErrorFlag
    where: str
    message: str

    def __str__(self):
        return f"cycle {self.cycle}: {self.flag.name} at {self.where}: {self.message}"


@dataclass
class RunResult:
    """What a run leaves behind (see the module docstring for ``cycles``)."""
    cycles: int              # clock cycles of the whole run, H + T
    errors: int              # sticky ErrorFlag bits, 0 if none
    events: list             # ErrorEvent, in the order raised
    memory: dict             # MEM slice name -> uint8 [mem_words, VL]
    outputs: dict            # output name -> ndarray (ProgramImage.read_output)
    trace: object = None     # Trace when run with trace=True
    ecc: EccStatus = field(default_factory=EccStatus)   # corrections, first uncorrectable read


class Trace:
    """Per-cycle record of a run, in local cycles ``0 .. ncycles - 1``.

    ``east[c, p, s]`` / ``west[c, p, s]`` (uint8 ``[ncycles, N, S, VL]``): the
    stream value slice position ``p`` reads in local cycle ``c`` (the hop
    register feeding it); ``east[:, 0]`` and ``west[:, N - 1]`` are zero.
    ``issued[c]``: ``{queue name: Instr}`` of the ordinary instructions issued
    in cycle ``c``, address fields as issued (ICU instructions are not listed;
    an instruction that failed its issue checks is listed, it was issued but
    not executed).
    """

    def __init__(self, config, east, west, issued):
        self.config = config
        self.east = east
        self.west = west
        self.issued = issued

    @property
    def ncycles(self):
        return len(self.issued)

    def tile_view(self, tile, global_cycle):
        """``(east, west)``, uint8 ``[N, S, L]`` each: what the hop registers
        of tile ``tile`` hold at global clock cycle ``global_cycle``.

        Tile ``k`` is ``k`` cycles behind tile 0, so this is local cycle
        ``global_cycle - k`` restricted to lanes ``k*L .. k*L + L - 1``. Before
        its local cycle 0 a tile's registers hold their reset value, zero.
        """
        c, L = self.config, self.config.lanes
        if not 0 <= tile < c.tiles:
            raise ValueError(f"tile {tile} out of range, config {c.name!r} has {c.tiles} tiles")
        local = global_cycle - tile
        lanes = slice(tile * L, (tile + 1) * L)
        if local < 0:
            zero = np.zeros(self.east.shape[1:3] + (L,), np.uint8)
            return zero, zero.copy()
        if local >= self.ncycles:
            raise ValueError(f"global cycle {global_cycle} of tile {tile} is local cycle {local}, "
                             f"after the end of the run ({self.ncycles} local cycles)")
        return self.east[local, :, :, lanes], self.west[local, :, :, lanes]


# -- streams --------------------------------------------------------------------

_EAST, _WEST = Dir.E.value, Dir.W.value


class _Hops:
    """The hop registers of both directions, as ring buffers.

    Eastward, the register position ``p`` reads in cycle ``t`` is slot
    ``(p - t) mod N``: moving every value one hop east per cycle costs
    nothing, and only the slot entering at the west edge has to be cleared.
    Westward it is slot ``(p + t) mod N``. An emission by position ``p`` in
    cycle ``t`` overwrites the slot ``p`` read in ``t``, which is the slot
    ``p +- 1`` reads in ``t + 1``. Directions are ``Dir`` values (0 east,
    1 west), as in the instruction fields.
    """

    def __init__(self, n, streams, vl):
        self.n = n
        self.ring = [np.zeros((n, streams, vl), np.uint8) for _ in Dir]

    def slot(self, d, pos, t):
        return (pos - t if d == _EAST else pos + t) % self.n

    def read(self, d, pos, t, s, count=1):
        """Streams ``s .. s + count - 1`` at ``pos`` in cycle ``t``: a view."""
        return self.ring[d][self.slot(d, pos, t), s:s + count]

    def drive(self, d, pos, t, s, data):
        """Emission in cycle ``t``; past the edge it is cleared by :meth:`advance`."""
        self.ring[d][self.slot(d, pos, t), s:s + len(data)] = data

    def advance(self, t):
        """End of cycle ``t``: clear what enters at the edges in ``t + 1``
        (the slot that falls off the far edge, values pushed past it included)."""
        self.ring[_EAST][(-t - 1) % self.n] = 0                  # slot(E, 0, t + 1)
        self.ring[_WEST][(self.n + t) % self.n] = 0              # slot(W, n - 1, t + 1)

    def snapshot(self, t):
        """Both directions as every position reads them in cycle ``t``."""
        pos = np.arange(self.n)
        return (self.ring[_EAST][(pos - t) % self.n], self.ring[_WEST][(pos + t) % self.n])


def _i32_planes(values):
    """int32 vector -> the 4 byte planes of its SG4 group, uint8 [4, VL]."""
    return np.ascontiguousarray(values.astype("<i4").view(np.uint8).reshape(-1, SG4).T)


def _i32_from_planes(planes):
    """uint8 [4, VL] SG4 group -> int32 vector (byte i from stream s + i)."""
    return np.ascontiguousarray(planes.T).view("<i4").reshape(-1)


# -- slices ---------------------------------------------------------------------

class _Unit:
    """A functional slice: reads streams at its position, schedules emissions."""

    def __init__(self, model, sl):
        self.model = model
        self.slice = sl
        self.pos = sl.pos

    def stream(self, d, s, t, count=1):
        return self.model.hops.read(d, self.pos, t, s, count)

    def emit(self, t, d, s, data, where):
        self.model.schedule_emit(t, self.pos, d, s, data, where)


class _MemUnit(_Unit):
    """Two banks of ``bank_words`` words; one read and one write per cycle.

    ``checks``: ``{addr: [check bits per tile]}`` of the words a fault touched
    since they were last stored; every other word is a clean ECC codeword.
    """

    def __init__(self, model, sl, init):
        super().__init__(model, sl)
        self.mem = init
        self.checks = {}

    def issue(self, ins, queue, t):
        f, lat = ins.fields, self.model.lat
        if ins.mnemonic == "READ":
            self.emit(t + lat.mem_read, f["dir"], f["stream"], self.read(f["addr"], t), queue.name)
        elif ins.mnemonic == "WRITE":
            self.store(f["addr"], self.stream(f["dir"], f["stream"], t)[0])
        else:   # RW: the banks differ (isa.check), so the order of the two is immaterial
            self.emit(t + lat.mem_read, f["rdir"], f["rstream"], self.read(f["raddr"], t),
                      queue.name)
            self.store(f["waddr"], self.stream(f["wdir"], f["wstream"], t)[0])

    def read(self, addr, t):
        """Word ``addr`` as a READ at ``t`` emits it, ``[1, VL]``: decoded if a fault touched it."""
        if self.checks and addr in self.checks:
            return self.model.ecc_read(self, addr, t)[None]
        return self.mem[addr][None].copy()

    def store(self, addr, value):
        self.mem[addr] = value
        if self.checks:
            self.checks.pop(addr, None)     # data and check bits written together

    def inject(self, fault):
        """Flip the bits of ``fault`` (validated) in word ``fault.addr``, tile ``fault.tile``."""
        c = self.model.config
        data_mask, check_mask = fault.masks(c)
        if code_for(c) is not None and fault.addr not in self.checks:
            self.checks[fault.addr] = encode_word(c, self.mem[fault.addr])
        lanes = slice(fault.tile * c.lanes, (fault.tile + 1) * c.lanes)
        value = int.from_bytes(self.mem[fault.addr, lanes].tobytes(), "little") ^ data_mask
        self.mem[fault.addr, lanes] = np.frombuffer(value.to_bytes(c.lanes, "little"), np.uint8)
        if check_mask:
            self.checks[fault.addr][fault.tile] ^= check_mask


def _wrap(x, w):
    half = 1 << (w - 1)
    return ((x + half) & ((1 << w) - 1)) - half


def _sat(x, w):
    half = 1 << (w - 1)
    return np.clip(x, -half, half - 1)


#: VXM arithmetic on int64 values of ``w``-bit operands (ARCHITECTURE.md section 5).
_VXM_OPS = {
    "ADD": lambda a, b, w: _wrap(a + b, w),
    "SUB": lambda a, b, w: _wrap(a - b, w),
    "MUL": lambda a, b, w: _wrap(a * b, w),
    "ADDS": lambda a, b, w: _sat(a + b, w),
    "SUBS": lambda a, b, w: _sat(a - b, w),
    "MULS": lambda a, b, w: _sat(a * b, w),
    "MIN": lambda a, b, w: np.minimum(a, b),
    "MAX": lambda a, b, w: np.maximum(a, b),
    "RELU": lambda a, b, w: np.maximum(a, 0),
    "NEG": lambda a, b, w: _sat(-a, w),
    "SHRA": lambda a, b, w: a >> (b & (w - 1)),
    "SHL": lambda a, b, w: _wrap(a << (b & (w - 1)), w),
    "AND": lambda a, b, w: a & b,
    "OR": lambda a, b, w: a | b,
    "XOR": lambda a, b, w: a ^ b,
    "CMPGT": lambda a, b, w: np.where(a > b, -1, 0),
    "CMPEQ": lambda a, b, w: np.where(a == b, -1, 0),
    "MOV": lambda a, b, w: a,
    "WIDEN": lambda a, b, w: a,
    "NARROW": lambda a, b, w: _sat(a, DTYPE_BITS[0]),
}


class _VxmUnit(_Unit):
    """The VXM: ``vxm_alus`` chained ALUs per lane, each with a 32-bit result
    register ``R``, and ALU 0's lookup table."""

    def __init__(self, model, sl, lut):
        super().__init__(model, sl)
        c = model.config
        self.r = np.zeros((c.vxm_alus, c.vl), np.int32)
        self.lut = lut
        self.lanes = np.arange(c.vl)
        self.due = {}           # cycle -> [(alu, int32 result)]

    def land(self, t):
        for alu, value in self.due.pop(t, ()):
            self.r[alu] = value

    def operand(self, raw, w, ins, t):
        """A source's value as int64 (array, or a scalar for #imm and ZERO)."""
        op = Operand.decode(raw)
        if op.kind is OperandKind.STREAM:
            if w == DTYPE_BITS[0]:
                return self.stream(op.dir.value, op.index, t)[0].view(np.int8).astype(np.int64)
            return _i32_from_planes(self.stream(op.dir.value, op.index, t, SG4)).astype(np.int64)
        if op.kind is OperandKind.ALU:
            r = self.r[op.index]
            return (r.astype(np.int8) if w == DTYPE_BITS[0] else r).astype(np.int64)
        if op.kind is OperandKind.IMM:
            return int(_wrap(ins.fields["imm"], w))
        return 0

    def issue(self, ins, queue, t):
        f, m = ins.fields, ins.mnemonic
        dt_in, dt_out = isa.vxm_types(m, f["dtype"])
        w_in, w_out = DTYPE_BITS[dt_in], DTYPE_BITS[dt_out]
        a = self.operand(f["a"], w_in, ins, t)
        if m == "LUTW":
            self.lut[:, f["index"]] = np.broadcast_to(a, self.lanes.shape)
            return
        if m == "LUT":
            y = self.lut[self.lanes, np.asarray(a) & (LUT_ENTRIES - 1)]
        elif m == "REQUANT":
            y = isa.requantize(a, f["mult"], f["shift"], f["zp"], f["zr"])
        elif m == "SELECT":
            b = self.operand(f["b"], w_in, ins, t)
            c = self.operand(f["c"], w_in, ins, t)
            y = np.where(np.asarray(c) != 0, a, b)
        else:
            b = 0 if m in isa.VXM_UNARY else self.operand(f["b"], w_in, ins, t)
            y = _VXM_OPS[m](a, b, w_in)
        y = np.broadcast_to(np.asarray(y), self.lanes.shape).astype(np.int32)
        done = t + self.model.lat.vxm
        self.due.setdefault(done, []).append((queue.alu, y))
        if f["we"]:
            planes = y.astype(np.int8).view(np.uint8)[None] if w_out == DTYPE_BITS[0] else _i32_planes(y)
            self.emit(done, f["wdir"], f["wstream"], planes, queue.name)


class _MxmUnit(_Unit):
    """A ``VL x VL`` int8 weight array, double-buffered, and ``acc_slots``
    int32 accumulators.

    The active weights are kept as float32 so that the product is one BLAS
    call; it is exact: every partial sum is an integer of magnitude at most
    ``VL * 128 * 128 <= 2**23`` (``Config`` caps VL at 512), below float32's
    2**24 of consecutive integers.
    """

    def __init__(self, model, sl):
        super().__init__(model, sl)
        c = model.config
        self.shadow = np.zeros((c.vl, c.vl), np.int8)
        self.active = np.zeros((c.vl, c.vl), np.float32)
        self.acc = np.zeros((c.acc_slots, c.vl), np.int32)
        self.due = {}           # cycle -> (slot, accumulate?, int32 product, fused ACC)

    def land(self, t):
        job = self.due.pop(t, None)
        if job is None:
            return
        slot, accumulate, p, fused = job
        if accumulate:
            self.acc[slot] += p              # int32 arrays wrap, as the hardware does
        else:
            self.acc[slot] = p
        if fused:                            # ABC with emit = 1: an ACC of the slot at t
            d, s, where = fused
            self.emit(t + self.model.lat.mxm_acc, d, s, _i32_planes(self.acc[slot]), where)

    def issue(self, ins, queue, t):
        f, m, lat = ins.fields, ins.mnemonic, self.model.lat
        if m == "LW":
            n = f["count"] + 1               # the field holds count - 1
            cols = self.stream(f["dir"], f["stream"], t, n)
            self.shadow[:, f["col"]:f["col"] + n] = cols.T.view(np.int8)
        elif m == "IW":
            self.active = self.shadow.astype(np.float32)
        elif m == "ABC":
            a = self.stream(f["dir"], f["stream"], t)[0].view(np.int8).astype(np.float32)
            p = (a @ self.active).astype(np.int32)
            fused = (f["edir"], f["estream"], queue.name) if f["emit"] else None
            # one ABC per cycle per MXM, so at most one accumulate lands per cycle
            self.due[t + lat.mxm_abc] = (f["slot"], f["acc"], p, fused)
        else:   # ACC
            self.emit(t + lat.mxm_acc, f["dir"], f["stream"], _i32_planes(self.acc[f["slot"]]),
                      queue.name)


class _SxmUnit(_Unit):
    """Lane shifts, permutations, distribution and the tile transpose."""

    def __init__(self, model, sl, maps):
        super().__init__(model, sl)
        self.maps = maps        # int [sxm_maps, VL] source lanes

    def issue(self, ins, queue, t):
        f, m, c = ins.fields, ins.mnemonic, self.model.config
        n, L, VL = f["arg"], c.lanes, c.vl
        if m == "TRANS":
            src = self.stream(f["sdir"], f["sstream"], t, L)
            # dst stream i, lane k*L + j  =  src stream j, lane k*L + i
            out = src.reshape(L, c.tiles, L).transpose(2, 1, 0).reshape(L, VL)
        else:
            x = self.stream(f["sdir"], f["sstream"], t)[0]
            y = np.zeros_like(x)
            if m == "SHUP":
                y[n:] = x[:VL - n]
            elif m == "SHDN":
                y[:VL - n] = x[n:]
            elif m == "ROT":
                y = np.roll(x, n)
            elif m == "PERM":
                y = x[self.maps[n]]
            else:   # DIST
                y = np.repeat(x.reshape(c.tiles, L)[:, n], L)
            out = y[None]
        self.emit(t + self.model.lat.sxm, f["ddir"], f["dstream"], np.array(out), queue.name)


# -- instruction queues ---------------------------------------------------------

_ICU = frozenset(isa.ICU_OPS)


class _Queue:
    """Sequencer state of one ICU queue."""

    def __init__(self, index, queue, program, unit):
        self.index = index
        self.queue = queue
        self.name = queue.name
        self.program = program      # [Instr | DecodeError], words beyond it are HALT
        self.unit = unit
        self.pc = 0
        self.last = None            # last ordinary instruction issued, as issued
        self.t0 = None              # ... and its issue cycle
        self.rep_left = 0           # repetitions still to issue, their distance and stride
        self.rep_d = 0
        self.rep_stride = 0
        self.halt = None            # h_q once halted
        self.waiting = False        # in SYNC, no NOTIFY seen


_ADDR_WIDTHS = {}


def _addr_widths(ins):
    """``{field: bits}`` of the address fields a REPEAT stride advances."""
    key = (ins.kind, ins.mnemonic)
    if key not in _ADDR_WIDTHS:
        info = ins.info
        _ADDR_WIDTHS[key] = {name: w for name, _, w, _ in info.layout() if name in info.addr_fields}
    return _ADDR_WIDTHS[key]


def _decode_program(queue, words, config):
    if len(words) > config.queue_depth:
        raise ImageError(f"queue {queue.name}: {len(words)} words, its instruction memory "
                         f"holds {config.queue_depth}")
    out = []
    for w in words:
        try:
            out.append(isa.decode(queue.kind, int(w)))
        except DecodeError as e:
            out.append(e)
    return out


class GoldenModel:
    """Runs one :class:`ProgramImage` to the end (see the module docstring).

    ``faults``: :class:`firmware.ecc.Fault` s to inject (bits flipped in stored
    MEM words at the start of a local cycle; past the end of the run, at its end).
    """

    def __init__(self, image, trace=False, max_cycles=1_000_000, faults=()):
        self.image = image
        self.config = c = image.config
        self.fp = fp = c.floorplan
        self.lat = c.latency
        self.max_cycles = max_cycles
        self.hops = _Hops(fp.width, c.streams, c.vl)
        self._emits = {}            # cycle -> [(pos, dir, stream, uint8 [n, VL], where)]
        self._units = self._build_units()
        self._landing = [u for u in self._units.values() if isinstance(u, (_VxmUnit, _MxmUnit))]
        self._queues = self._build_queues()
        self._sched = {}            # cycle -> [queue index] to step
        self._checked = {}          # (queue index, pc) or repetition key -> isa.check problems
        self._notify = None         # cycle of the first NOTIFY
        self._running = len(self._queues)
        self._waiting = 0
        self.errors = ErrorFlag(0)
        self.events = []
        self._error_now = False
        self._faults = {}           # local cycle -> [Fault]
        for fault in faults:
            fault.validate(c)
            self._faults.setdefault(fault.cycle, []).append(fault)
        self._ecc_corrected = 0
        self._ecc_first = None      # (clock cycle, position, tile, addr) of the first uncorrectable
        self._trace = ([], [], []) if trace else None
        self._ran = False
        for q in self._queues:
            self._schedule(q, 0)

    # -- construction ---------------------------------------------------------

    def _build_units(self):
        c, img = self.config, self.image
        lut = np.zeros((c.vl, LUT_ENTRIES), np.int8)
        if img.lut is not None:
            if np.shape(img.lut) != lut.shape:
                raise ImageError(f"lookup tables are {np.shape(img.lut)}, config {c.name!r} "
                                 f"needs {lut.shape} (VL lanes x {LUT_ENTRIES} entries)")
            lut[:] = np.asarray(img.lut).astype(np.int8)
        for name in set(img.memory) | set(img.perms):
            self.fp.slice(name)     # an unknown slice name fails here, with the list of names
        units = {}
        for sl in self.fp.slices:
            if sl.kind is SliceKind.MEM:
                units[sl.name] = _MemUnit(self, sl, img.memory_array(sl.name))
            elif sl.kind is SliceKind.VXM:
                units[sl.name] = _VxmUnit(self, sl, lut)
            elif sl.kind is SliceKind.MXM:
                units[sl.name] = _MxmUnit(self, sl)
            else:
                units[sl.name] = _SxmUnit(self, sl, self._perm_maps(sl.name))
        return units

    def _perm_maps(self, name):
        c = self.config
        maps = np.tile(np.arange(c.vl), (c.sxm_maps, 1))
        for m, lanes in self.image.perms.get(name, {}).items():
            lanes = np.asarray(lanes, np.int64)
            if not 0 <= m < c.sxm_maps or lanes.shape != (c.vl,) or lanes.min() < 0 \
                    or lanes.max() >= c.vl:
                raise ImageError(f"{name}: map {m} must be {c.vl} lanes in 0..{c.vl - 1}, "
                                 f"map ids 0..{c.sxm_maps - 1}")
            maps[m] = lanes
        return maps

    def _build_queues(self):
        words = {}
        for name, ws in self.image.queues.items():
            q = self.fp.queue(name)
            if q.name in words:
                raise ImageError(f"queue {q.name} is given twice (as {name!r})")
            words[q.name] = ws
        return [_Queue(i, q, _decode_program(q, words.get(q.name, ()), self.config),
                       self._units[q.slice.name])
                for i, q in enumerate(self.fp.queues)]

    # -- events -----------------------------------------------------------------

    def _raise(self, t, flag, where, message):
        self.errors |= flag
        self.events.append(ErrorEvent(t, flag, where, message))
        self._error_now = True

    def ecc_read(self, unit, addr, t):
        """Word ``addr`` of MEM ``unit`` read at ``t`` through the ECC decoder of each
        tile: single-bit errors corrected and counted, an uncorrectable one flagged
        (``MEM_ECC``, in ``t + mem_read`` when the data leave the RAM; no stop)."""
        c = self.config
        code, L = code_for(c), c.lanes
        word = unit.mem[addr].copy()
        for k, check in enumerate(unit.checks[addr]):
            lanes = slice(k * L, (k + 1) * L)
            value, corrected, bad = code.decode(int.from_bytes(word[lanes].tobytes(), "little"),
                                                check)
            word[lanes] = np.frombuffer(value.to_bytes(L, "little"), np.uint8)
            self._ecc_corrected += corrected
            if bad:
                seen = t + self.lat.mem_read
                key = (seen + k, unit.pos, k, addr)
                self._ecc_first = key if self._ecc_first is None else min(self._ecc_first, key)
                self.errors |= ErrorFlag.MEM_ECC
                self.events.append(ErrorEvent(seen, ErrorFlag.MEM_ECC, unit.slice.name,
                                              f"tile {k} word {addr}: uncorrectable ECC error"))
        return word

    def _inject(self, faults):
        for fault in faults:
            self._units[fault.slice].inject(fault)

    def _ecc_status(self):
        first = self._ecc_first
        if first is None:
            return EccStatus(corrected=self._ecc_corrected)
        _, pos, tile, addr = first
        return EccStatus(corrected=self._ecc_corrected, failed=True, slice=pos, tile=tile, addr=addr)

    def schedule_emit(self, t, pos, d, s, data, where):
        self._emits.setdefault(t, []).append((pos, d, s, data, where))

    def _schedule(self, q, t):
        self._sched.setdefault(t, []).append(q.index)

    # -- the ICU ---------------------------------------------------------------

    def _halt(self, q, h):
        q.halt = h
        self._running -= 1

    def _step(self, q, t):
        """Queue ``q`` reaches its next instruction (or repetition) at ``t``."""
        if q.rep_left:
            self._repeat_once(q, t)
            return
        if q.pc >= len(q.program):      # an unwritten word (0 = HALT), or the end of
            self._halt(q, t)            # the instruction memory (the program fits it)
            return
        ins = q.program[q.pc]
        if isinstance(ins, DecodeError):
            self._raise(t, ErrorFlag.ILLEGAL_INSTR, q.name, f"word {q.pc}: {ins}")
            return
        if ins.mnemonic not in _ICU:
            self._issue(q, ins, t, self._problems(q, ins))
            q.pc += 1
            self._schedule(q, t + 1)
            return
        problems = self._problems(q, ins)
        for flag, reason in problems:
            self._raise(t, flag, q.name, f"{ins}: {reason}")
        if problems:
            return
        m, f = ins.mnemonic, ins.fields
        if m == "HALT":
            self._halt(q, t)
        elif m == "NOP":
            q.pc += 1
            self._schedule(q, t + f["n"])
        elif m == "NOTIFY":
            self._notify_from(t)
            q.pc += 1
            self._schedule(q, t + 1)
        elif m == "SYNC":
            self._sync(q, t)
        else:
            self._start_repeat(q, ins, t)

    def _problems(self, q, ins):
        key = (q.index, q.pc)
        if key not in self._checked:
            self._checked[key] = isa.check(ins, q.queue, self.config)
        return self._checked[key]

    def _start_repeat(self, q, ins, t):
        f = ins.fields
        if q.last is None:
            self._raise(t, ErrorFlag.ILLEGAL_INSTR, q.name,
                        f"{ins}: no ordinary instruction to repeat before word {q.pc}")
            return
        first = q.t0 + f["d"]
        if first < t:
            self._raise(t, ErrorFlag.ILLEGAL_INSTR, q.name,
                        f"{ins}: its first repetition (cycle {first} = {q.t0} + d) lies in the past")
            return
        q.rep_left, q.rep_d, q.rep_stride = f["n"], f["d"], f["stride"]
        if first == t:
            self._repeat_once(q, t)
        else:
            self._schedule(q, first)

    def _repeat_once(self, q, t):
        """Issue the next repetition: the last instruction, addresses + stride.

        Only moved addresses can make a repetition illegal (the instruction
        itself passed its checks, or the machine would have stopped), so
        ``isa.check`` runs again only when an address field moved."""
        ins = q.last
        widths = _addr_widths(ins)
        problems = []
        if widths and q.rep_stride:
            moved = {a: ins.fields[a] + q.rep_stride for a in widths}
            ins = ins.with_fields(**moved)
            problems = [(ErrorFlag.ADDR_RANGE, f"REPEAT walks field {a} to {v}, "
                         f"out of its {widths[a]}-bit range")
                        for a, v in moved.items() if not 0 <= v < 1 << widths[a]]
            problems = problems or self._check_moved(q, ins)
        self._issue(q, ins, t, problems)
        q.rep_left -= 1
        if q.rep_left:
            self._schedule(q, t + q.rep_d)
        else:
            q.pc += 1
            self._schedule(q, t + 1)

    def _check_moved(self, q, ins):
        """``isa.check`` of a repetition, memoised: address walks revisit the
        same instructions (the next tile of a GEMM walks the same slots)."""
        key = (q.index, ins.mnemonic, tuple(ins.fields.values()))
        if key not in self._checked:
            self._checked[key] = isa.check(ins, q.queue, self.config)
        return self._checked[key]

    def _issue(self, q, ins, t, problems):
        """An ordinary instruction issues at ``t``; with a problem it is not executed."""
        q.last, q.t0 = ins, t
        if self._trace is not None:
            self._trace[2][-1][q.name] = ins
        for flag, reason in problems:
            self._raise(t, flag, q.name, f"{ins}: {reason}")
        if not problems:
            q.unit.issue(ins, q.queue, t)

    def _sync(self, q, t):
        """SYNC reached at ``t`` passes in the first cycle that sees a NOTIFY
        (one issued this very cycle is seen from ``t + 1``)."""
        if self._notify is not None:
            q.pc += 1
            self._schedule(q, max(t, self._notify + self.lat.notify) + 1)
        else:
            q.waiting = True
            self._waiting += 1

    def _notify_from(self, t):
        """A NOTIFY at ``t``: every waiting SYNC passes at ``t + 1`` (Latencies.notify)."""
        if self._notify is not None:
            return
        self._notify = t
        passed = t + self.lat.notify
        for q in self._queues:
            if q.waiting:
                q.waiting = False
                self._waiting -= 1
                q.pc += 1
                self._schedule(q, passed + 1)

    def _stop(self, t):
        """An error in ``t``: nothing issues from ``t + 1`` on."""
        for q in self._queues:
            if q.halt is None:
                self._halt(q, t + 1)
                q.waiting = False
        self._waiting = 0
        self._sched.clear()

    # -- the cycle ---------------------------------------------------------------

    def _drive(self, t):
        """Emissions of cycle ``t`` into the hop registers.

        A slice drives each of its outgoing streams once a cycle. The VXM's
        ALUs share the slice's hop registers and issue in ALU order, so the
        first emission seen wins, as the lowest-numbered ALU does; the one
        that loses a stream raises STREAM_CONFLICT (one event per emission).
        """
        taken = {}
        for pos, d, s, data, where in self._emits.pop(t, ()):
            lost = []
            for i in range(len(data)):
                key = (pos, d, s + i)
                if key in taken:
                    lost.append((s + i, taken[key]))
                    continue
                taken[key] = where
                self.hops.drive(d, pos, t, s + i, data[i:i + 1])
            if lost:
                self._raise(t, ErrorFlag.STREAM_CONFLICT, where, "; ".join(
                    f"{Dir(d).name}{k} is also driven by {other}, which wins" for k, other in lost))

    def _cycle(self, t):
        if self._faults and t in self._faults:
            self._inject(self._faults.pop(t))
        for u in self._landing:
            u.land(t)
        if self._trace is not None:
            east, west = self.hops.snapshot(t)
            self._trace[0].append(east)
            self._trace[1].append(west)
            self._trace[2].append({})
        due = self._sched.pop(t, None)
        if due:
            for i in sorted(due):
                self._step(self._queues[i], t)
        self._drive(t)
        self.hops.advance(t)
        if self._running and self._waiting == self._running and self._notify is None:
            self._raise(t, ErrorFlag.DEADLOCK, "ICU",
                        "every running queue waits in SYNC and none has notified: "
                        + ", ".join(q.name for q in self._queues if q.waiting))
        if self._error_now:
            self._error_now = False
            self._stop(t)

    def run(self):
        """Simulate local cycles ``0 .. H + T - 1`` and collect the result
        (once: a model is the machine after one start)."""
        if self._ran:
            raise RuntimeError("GoldenModel.run() was already called; make a new model to rerun")
        self._ran = True
        T = self.config.tiles
        t = 0
        while True:
            if t >= self.max_cycles:
                raise SimulationTimeout(
                    f"{self.image.source or 'program'}: still running after max_cycles = "
                    f"{self.max_cycles} local cycles ({self._running} queues not halted)")
            self._cycle(t)
            if not self._running and t >= max(q.halt for q in self._queues) + T - 1:
                break
            t += 1
        H = max(q.halt for q in self._queues)
        # Memory is final: a WRITE acts only in its issue cycle and nothing
        # issues at or after H, so the cycles after the last HALT (simulated
        # above only for errors of results in flight) cannot change it.
        for cycle in sorted(self._faults):          # faults the run did not reach
            self._inject(self._faults.pop(cycle))
        mems = {name: u for name, u in self._units.items() if isinstance(u, _MemUnit)}
        memory = {name: u.mem for name, u in mems.items()}
        readable = {name: correct_memory(self.config, u.mem, u.checks) if u.checks else u.mem
                    for name, u in mems.items()}
        outputs = {name: self.image.read_output(name, readable) for name in self.image.outputs}
        trace = None
        if self._trace is not None:
            east, west, issued = self._trace
            trace = Trace(self.config, np.stack(east), np.stack(west), issued)
        return RunResult(cycles=H + T, errors=int(self.errors), events=list(self.events),
                         memory=memory, outputs=outputs, trace=trace, ecc=self._ecc_status())


def run_image(image, trace=False, max_cycles=1_000_000, faults=()):
    """Run ``image`` on the golden model: ``GoldenModel(image, ...).run()``."""
    return GoldenModel(image, trace=trace, max_cycles=max_cycles, faults=faults).run()
