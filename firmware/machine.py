"""The one definition of the machine: geometry, floorplan and latencies.

Everything that describes *which* TSP we are building lives here: the golden
model (``sim/``), the assembler and compiler (``firmware/``) and the gateware
(``rtl/``) all import it, and none of them writes down a size, a position or a
latency of its own. The instruction encodings live next door in
:mod:`firmware.isa`, which builds on this module.

Time is counted in *local* cycles: tile ``k`` of every slice executes what tile
0 executed ``k`` cycles earlier, on data that is ``k`` cycles later too (the
superlane stagger of the real chip). Every latency below is therefore the same
for all tiles; ``docs/ARCHITECTURE.md`` spells out the timing rules.
"""

from dataclasses import dataclass, replace
from enum import Enum


__all__ = [
    "SliceKind", "Dir", "Slice", "Queue", "Config", "Latencies", "Floorplan",
    "CONFIGS", "get_config", "ConfigError",
]


class ConfigError(ValueError):
    """An impossible machine configuration; the message names the field."""


class SliceKind(Enum):
    MEM = "MEM"
    VXM = "VXM"
    MXM = "MXM"
    SXM = "SXM"


class Dir(Enum):
    """Stream direction. A value moves one hop per cycle in its direction."""
    E = 0    # eastward: position p -> p + 1
    W = 1    # westward: position p -> p - 1

    @property
    def step(self):
        return 1 if self is Dir.E else -1


@dataclass(frozen=True)
class Slice:
    """One functional slice of the floorplan.

    ``pos`` is its index west to east; it reads the stream value at its
    position and writes into the next position in the chosen direction.
    """
    name: str
    kind: SliceKind
    pos: int
    side: str          # "W", "E" or "C" (the VXM in the centre)
    index: int         # MEM slice number inside its hemisphere (MEM_E0 next to the VXM)


@dataclass(frozen=True)
class Queue:
    """One instruction queue of the ICU: the VLIW is a set of these."""
    name: str
    kind: SliceKind
    slice: Slice
    alu: int = 0       # VXM queues: which ALU of the lane this queue drives


@dataclass(frozen=True)
class Config:
    """A machine. Build one with :func:`get_config` or ``Config(...)``.

    Fields:

    ``tiles``            superlanes per slice (instruction stagger depth)
    ``lanes``            byte lanes per tile; ``vl = tiles * lanes``
    ``streams``          streams per direction (a multiple of 4: SG4 groups)
    ``mem_slices``       MEM slices per hemisphere
    ``bank_words``       words (vectors) per bank; two banks per MEM slice
    ``mxm``              sides that carry an MXM, e.g. ``("E",)``
    ``sxm``              sides that carry an SXM
    ``vxm_alus``         chained ALUs per lane in the VXM (one queue each)
    ``vxm_mul_alus``     the ALUs that have a multiplier (``MUL``, ``MULS``, ``REQUANT``);
                         ``None``: every ALU. The FPGA sets give it to few ALUs: a
                         32x33 multiplier with REQUANT's rounding shifter costs more
                         than the rest of an ALU lane (``docs/ARCHITECTURE.md``)
    ``vxm_int32``        whether the VXM runs int32 (SG4) ops; ``False``: int8 only, an
                         8-bit ALU lane, and every op with an int32 operand or result
                         (``dtype`` 1, ``WIDEN``, ``NARROW``, ``REQUANT``) is illegal.
                         For FPGAs too small for a 32-bit lane (the iCE40 UP5K)
    ``acc_slots``        int32 accumulator vectors held by each MXM
    ``sxm_maps``         permutation maps each SXM holds
    ``queue_depth``      instruction words per queue (instruction memory)
    ``rtl``              whether this set is meant to elaborate as gateware
    ``ecc``              SECDED check bits on every MEM word (``firmware/ecc.py``)
    ``fetch_reg``        each instruction queue keeps its current word in a register
                         and reads the next one ahead (``rtl/icu.py``): the sequencer's
                         paths start at a flip-flop, not at the block RAM's data output
                         (on the ECP5 5.8 ns of a 25 ns path). Invisible to programs;
                         ``False`` saves the register (the iCE40 UP5K has no room)
    ``mem_read_reg``     each MEM tile holds a read's word one cycle in a register after
                         its block RAMs, before the ECC correction (``rtl/mem.py``): the
                         path from a block RAM's slow data output ends there, and the
                         correction and the stream choice start at a flip-flop. A
                         ``READ`` then takes two cycles, not one
                         (:attr:`Latencies.mem_read`): programs see it, and the
                         compiler schedules by it
    """
    name: str
    tiles: int
    lanes: int
    streams: int
    mem_slices: int
    bank_words: int
    mxm: tuple = ("E",)
    sxm: tuple = ("W", "E")
    vxm_alus: int = 4
    vxm_mul_alus: tuple = None
    vxm_int32: bool = True
    acc_slots: int = 256
    sxm_maps: int = 4
    queue_depth: int = 256
    rtl: bool = True
    ecc: bool = True
    fetch_reg: bool = True
    mem_read_reg: bool = False

    def __post_init__(self):
        def need(cond, fld, msg):
            if not cond:
                raise ConfigError(f"config {self.name!r}: {fld} = {getattr(self, fld)!r}: {msg}")
        for fld in ("tiles", "lanes", "streams", "mem_slices", "bank_words",
                    "vxm_alus", "acc_slots", "sxm_maps", "queue_depth"):
            need(isinstance(getattr(self, fld), int) and getattr(self, fld) >= 1, fld,
                 "must be a positive integer")
        need(not self.rtl or self.tiles >= 2, "tiles",
             "a set that builds RTL needs at least 2 tiles so the superlane stagger is real")
        need(self.streams % 4 == 0, "streams", "must be a multiple of 4 (int32 uses SG4 groups)")
        need(self.streams <= 32, "streams", "the instruction fields hold at most 32 streams")
        need(self.streams >= self.lanes, "streams",
             f"the SXM transpose moves a {self.lanes}x{self.lanes} block across streams, "
             f"so at least lanes = {self.lanes} streams are needed")
        need(2 * self.bank_words <= 1 << 13, "bank_words",
             "MEM addresses are 13 bits: at most 4096 words per bank")
        need(self.bank_words & (self.bank_words - 1) == 0, "bank_words", "must be a power of two")
        need(isinstance(self.ecc, bool), "ecc", "must be True or False")
        need(isinstance(self.fetch_reg, bool), "fetch_reg", "must be True or False")
        need(isinstance(self.mem_read_reg, bool), "mem_read_reg", "must be True or False")
        need(isinstance(self.vxm_int32, bool), "vxm_int32", "must be True or False")
        need(self.vl <= 512, "lanes", "at most 512 lanes in all (9-bit lane fields)")
        need(self.vxm_alus <= 16, "vxm_alus", "at most 16 ALUs per lane (4-bit ALU fields)")
        need(self.vxm_mul_alus is None or (
                isinstance(self.vxm_mul_alus, tuple)
                and all(isinstance(a, int) and 0 <= a < self.vxm_alus for a in self.vxm_mul_alus)
                and len(set(self.vxm_mul_alus)) == len(self.vxm_mul_alus)),
             "vxm_mul_alus", f"must be None or a tuple of distinct ALU numbers 0..{self.vxm_alus - 1}")
        need(self.acc_slots <= 4096, "acc_slots", "at most 4096 (12-bit slot fields)")
        need(self.sxm_maps <= 512, "sxm_maps", "at most 512")
        need(self.queue_depth <= 1 << 16, "queue_depth", "at most 65536")
        for fld in ("mxm", "sxm"):
            sides = getattr(self, fld)
            need(isinstance(sides, tuple) and set(sides) <= {"W", "E"}
                 and len(set(sides)) == len(sides), fld, "must be a tuple of distinct 'W'/'E'")
        need(len(self.mxm) >= 1, "mxm", "at least one MXM is needed")

    # -- derived geometry ---------------------------------------------------

    @property
    def vl(self):
        """Vector length in bytes: one byte per lane."""
        return self.tiles * self.lanes

    @property
    def mul_alus(self):
        """The ALUs with a multiplier, in order."""
        if self.vxm_mul_alus is None:
            return tuple(range(self.vxm_alus))
        return tuple(sorted(self.vxm_mul_alus))

    @property
    def mem_words(self):
        """Addresses per MEM slice (two banks)."""
        return 2 * self.bank_words

    @property
    def mxm_size(self):
        return self.vl

    def bank_of(self, addr):
        """Bank of an address: the high half of the address space is bank 1."""
        return addr // self.bank_words

    def with_(self, **kw):
        return replace(self, **kw)

    @property
    def floorplan(self):
        return Floorplan(self)

    @property
    def latency(self):
        return Latencies(self)


class Latencies:
    """Every functional delay of the machine, as a function of the geometry.

    ``d`` of an instruction issued at local cycle ``t`` is the cycle offset at
    which its result is driven into the outgoing stream hop: the slice
    ``h`` hops away reads it at ``t + d + h`` (``T = t_produce + d_func +
    hops`` of the paper). See ``docs/ARCHITECTURE.md`` for the derivation of
    each number from the pipeline of the gateware.
    """

    def __init__(self, config):
        self._c = config

    @property
    def mem_read(self):
        """MEM ``READ``: address in cycle t, block-RAM data out in t + 1, emitted then;
        with ``Config.mem_read_reg``, held a cycle first and emitted in t + 2."""
        return 2 if self._c.mem_read_reg else 1

    #: VXM: operand latch, compute, result register; chained ALUs read the
    #: result register at the same cycle the stream does (0 hops away).
    vxm = 3

    #: MXM ``ACC``: accumulator read in t, emitted in t + 1.
    mxm_acc = 1

    @property
    def mxm_abc(self):
        """Cycles from ``ABC`` issue to the accumulate into the slot.

        Tile k multiplies in global cycle t+k (products registered), adds the
        partial sum from tile k-1 in t+k+1; the top tile's sum is registered
        at the end of t+T, so the sum is whole in cycle t+T+1 for every tile.
        """
        return self._c.tiles + 1

    @property
    def sxm(self):
        """SXM ops move lanes across tiles: the vector is deskewed (tile T-1
        arrives T-1 cycles after tile 0), permuted and registered, then skewed
        again, so every op takes T cycles."""
        return self._c.tiles

    #: ``Notify`` in cycle t is seen by a waiting ``Sync`` in t + 1.
    notify = 1

    def as_dict(self):
        return {"mem_read": self.mem_read, "vxm": self.vxm, "mxm_abc": self.mxm_abc,
                "mxm_acc": self.mxm_acc, "sxm": self.sxm, "notify": self.notify}

    @staticmethod
    def hops(src_pos, dst_pos):
        return abs(dst_pos - src_pos)


class Floorplan:
    """Slices west to east, mirrored around the VXM, and their queues:

        MXM_W | SXM_W | MEM_W(n-1) .. MEM_W0 | VXM | MEM_E0 .. MEM_E(n-1) | SXM_E | MXM_E

    Stream hop registers sit between every two neighbouring slices, one per
    stream per direction per lane.
    """

    def __init__(self, config):
        self.config = config
        names = []
        if "W" in config.mxm:
            names.append(("MXM_W", SliceKind.MXM, "W", 0))
        if "W" in config.sxm:
            names.append(("SXM_W", SliceKind.SXM, "W", 0))
        for i in reversed(range(config.mem_slices)):
            names.append((f"MEM_W{i}", SliceKind.MEM, "W", i))
        names.append(("VXM", SliceKind.VXM, "C", 0))
        for i in range(config.mem_slices):
            names.append((f"MEM_E{i}", SliceKind.MEM, "E", i))
        if "E" in config.sxm:
            names.append(("SXM_E", SliceKind.SXM, "E", 0))
        if "E" in config.mxm:
            names.append(("MXM_E", SliceKind.MXM, "E", 0))
        self.slices = tuple(Slice(n, k, pos, side, idx)
                            for pos, (n, k, side, idx) in enumerate(names))
        self._by_name = {s.name: s for s in self.slices}
        queues = []
        for s in self.slices:
            if s.kind is SliceKind.VXM:
                for a in range(config.vxm_alus):
                    queues.append(Queue(f"VXM{a}", s.kind, s, alu=a))
            else:
                queues.append(Queue(s.name, s.kind, s))
        self.queues = tuple(queues)
        self._queue_by_name = {q.name: q for q in self.queues}

    @property
    def width(self):
        """Number of slice positions."""
        return len(self.slices)

    def slice(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no slice {name!r} in config {self.config.name!r}; "
                           f"slices are {', '.join(self._by_name)}") from None

    def queue(self, name):
        if name == "VXM":           # the first ALU answers to the slice's name
            name = "VXM0"
        try:
            return self._queue_by_name[name]
        except KeyError:
            raise KeyError(f"no queue {name!r} in config {self.config.name!r}; "
                           f"queues are {', '.join(self._queue_by_name)}") from None

    def of_kind(self, kind):
        return [s for s in self.slices if s.kind is kind]

    @property
    def vxm(self):
        return self.of_kind(SliceKind.VXM)[0]

    def hop_positions(self, direction):
        """Positions p whose incoming register (the value slice p reads) is a
        real hop register: the edge position of each direction reads zero."""
        w = self.width
        return range(1, w) if direction is Dir.E else range(0, w - 1)


CONFIGS = {
    c.name: c for c in (
        # Unit tests and the iCEBreaker (iCE40 UP5K).
        Config("tiny", tiles=2, lanes=2, streams=4, mem_slices=2, bank_words=256,
               mxm=("E",), sxm=("E",), vxm_alus=2, acc_slots=16, sxm_maps=2,
               queue_depth=128),
        # The smallest set, the iCEBreaker's (iCE40 UP5K, 5,280 logic cells). One lane
        # per tile, one MEM slice a side, no SXM, one VXM ALU without a multiplier and
        # 8 bits wide (no int32 ops: the 32-bit lane was 1,463 of the 7,925 logic
        # cells), one accumulator slot, no ECC, no fetch registers. It fits with 20
        # cells to spare (docs/ARCHITECTURE.md, "The FPGA sets").
        Config("pico", tiles=2, lanes=1, streams=4, mem_slices=1, bank_words=256,
               mxm=("E",), sxm=(), vxm_alus=1, vxm_mul_alus=(), vxm_int32=False,
               acc_slots=1, sxm_maps=1, queue_depth=256, ecc=False, fetch_reg=False),
        # The ULX3S-85F (ECP5-85F). Measured, not guessed (docs/ARCHITECTURE.md,
        # "The FPGA sets"): at 4 x 4 lanes the VXM alone synthesised to 144k LUT4
        # and the 16x16 MXM to 256 multipliers, against the part's 84k LUT4 and
        # 156 MULT18X18D. So VL is 8 (still 4 tiles of stagger), only ALU 1 has the
        # multiplier (REQUANT/MUL/MULS), and the banks are 1024 words deep (one
        # 1024 x 18 DP16KD per tile and bank). With four ALUs per lane and an SXM on
        # both sides the whole chip packed into 130% of the part's logic (session 3),
        # the four ALUs alone 48k LUT4: two ALUs and one SXM (east, by the MXM).
        # Four streams a direction (one SG4 group), not eight (session 7): the stream
        # hop registers, the MEM slices' write choice and the VXM's operand selection
        # all scale with the streams; the board build goes from 62,241 to 49,394
        # TRELLIS_COMB (74 % -> 59 %), and GEMM 256^3 still reaches 98.8 % of the
        # MXM bound (docs/ARCHITECTURE.md, "The FPGA sets").
        Config("ulx3s", tiles=4, lanes=2, streams=4, mem_slices=4, bank_words=1024,
               mxm=("E",), sxm=("E",), vxm_alus=2, vxm_mul_alus=(1,), acc_slots=256,
               sxm_maps=4, queue_depth=512, mem_read_reg=True),
        # The real chip's geometry, for the golden model and the compiler only.
        # (The chip has two 320x320 planes per hemisphere; one per side here.)
        Config("groq", tiles=20, lanes=16, streams=32, mem_slices=44, bank_words=4096,
               mxm=("W", "E"), sxm=("W", "E"), vxm_alus=16, acc_slots=4096,
               sxm_maps=16, queue_depth=1 << 16, rtl=False),
    )
}


def get_config(name):
    if isinstance(name, Config):
        return name
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}") from None
