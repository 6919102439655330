"""The instruction set: opcodes, field layouts, encoder and decoder.

Each queue kind has one fixed instruction width (:data:`WORD_BITS`). Every
word starts with a 5-bit opcode; opcodes 0..4 are the ICU's own instructions
and mean the same in every queue. The remaining fields depend on the opcode
and are listed once, in :data:`OPS`, as ``(name, width, signed)`` from bit 5
upwards. The gateware turns these lists into ``amaranth.lib.data`` layouts
(``rtl/isa.py``); the golden model, the assembler and the compiler use the
Python side below.

Operand encoding (VXM sources, 8 bits)::

    [7:6] kind: 0 zero, 1 stream, 2 ALU result, 3 immediate
    stream:  [5] direction (0 east, 1 west), [4:0] stream index
    ALU:     [3:0] ALU index in the same lane (chaining)
"""

from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from .machine import SliceKind, Dir


__all__ = [
    "WORD_BITS", "OPCODE_BITS", "OpInfo", "OPS", "Instr", "Operand", "OperandKind",
    "ErrorFlag", "encode", "decode", "DecodeError", "check", "word_flags", "op_by_mnemonic",
    "RNE", "requantize", "ICU_OPS", "vxm_alu_can", "vxm_types", "vxm_set_can",
]


OPCODE_BITS = 5

#: Instruction word width of each queue kind.
WORD_BITS = {
    SliceKind.MEM: 48,
    SliceKind.MXM: 32,
    SliceKind.SXM: 32,
    SliceKind.VXM: 64,
}


class ErrorFlag(IntFlag):
    """Sticky error flags of the machine, as the host reads them."""
    BANK_CONFLICT = 1 << 0     # a MEM slice read and wrote the same bank in one cycle
    ILLEGAL_INSTR = 1 << 1     # unknown opcode, or a field out of range for this config
    ADDR_RANGE = 1 << 2        # an address (MEM, weight column, accumulator slot) out of range
    STREAM_CONFLICT = 1 << 3   # two results driven onto one stream hop in one cycle
    DEADLOCK = 1 << 4          # every running queue waits in Sync and nobody notifies
    MEM_ECC = 1 << 5           # a MEM read found an uncorrectable (double-bit) ECC error;
                               # the only flag that does not stop the machine (firmware/ecc.py)

ERROR_BITS = 6


class OperandKind(IntEnum):
    ZERO = 0
    STREAM = 1
    ALU = 2
    IMM = 3


@dataclass(frozen=True)
class Operand:
    """A VXM source: a stream at the VXM's position, a chained ALU, or the immediate."""
    kind: OperandKind
    dir: Dir = Dir.E
    index: int = 0

    def encode(self):
        if self.kind is OperandKind.STREAM:
            return (1 << 6) | (self.dir.value << 5) | (self.index & 0x1F)
        if self.kind is OperandKind.ALU:
            return (2 << 6) | (self.index & 0xF)
        return int(self.kind) << 6

    @classmethod
    def decode(cls, raw):
        kind = OperandKind(raw >> 6)
        if kind is OperandKind.STREAM:
            return cls(kind, Dir((raw >> 5) & 1), raw & 0x1F)
        if kind is OperandKind.ALU:
            return cls(kind, Dir.E, raw & 0xF)
        return cls(kind)

    def __str__(self):
        if self.kind is OperandKind.STREAM:
            return f"{self.dir.name}{self.index}"
        if self.kind is OperandKind.ALU:
            return f"ALU{self.index}"
        if self.kind is OperandKind.IMM:
            return "#imm"
        return "ZERO"


# Opcodes repeat across queue kinds (a MEM READ and an MXM LW are both 5), so
# an opcode is named by (kind, mnemonic) in OPS rather than by one enum.

@dataclass(frozen=True)
class OpInfo:
    mnemonic: str
    kind: SliceKind | None          # None: ICU, valid in every queue
    opcode: int
    fields: tuple                   # ((name, width, signed), ...) from bit 5
    addr_fields: tuple = ()          # the fields a Repeat stride advances
    reads: tuple = ()               # stream-reading fields, for documentation
    doc: str = ""

    @property
    def is_icu(self):
        return self.kind is None

    def layout(self):
        """``[(name, lsb, width, signed), ...]`` including the opcode."""
        out = [("op", 0, OPCODE_BITS, False)]
        bit = OPCODE_BITS
        for name, width, signed in self.fields:
            out.append((name, bit, width, signed))
            bit += width
        return out

    def bits(self):
        return OPCODE_BITS + sum(w for _, w, _ in self.fields)


def _f(name, width, signed=False):
    return (name, width, signed)


_ICU = [
    OpInfo("HALT", None, 0, (), doc="end of this queue's program"),
    OpInfo("NOP", None, 1, (_f("n", 16),), doc="idle: the next instruction issues n cycles later"),
    OpInfo("REPEAT", None, 2, (_f("n", 12), _f("d", 7), _f("stride", 8, True)),
           doc="issue the previous instruction n more times, d cycles apart, "
               "advancing its address field by stride each time"),
    OpInfo("NOTIFY", None, 3, (), doc="release every queue waiting in SYNC"),
    OpInfo("SYNC", None, 4, (), doc="wait until some queue has notified"),
]

_STREAM = (_f("dir", 1), _f("stream", 5))

_MEM = [
    OpInfo("READ", SliceKind.MEM, 5, _STREAM + (_f("addr", 13),), addr_fields=("addr",),
           doc="read word addr onto stream (driven one cycle later)"),
    OpInfo("WRITE", SliceKind.MEM, 6, _STREAM + (_f("addr", 13),), addr_fields=("addr",),
           doc="write the stream value at this slice into word addr"),
    OpInfo("RW", SliceKind.MEM, 7,
           (_f("rdir", 1), _f("rstream", 5), _f("raddr", 13),
            _f("wdir", 1), _f("wstream", 5), _f("waddr", 13)), addr_fields=("raddr", "waddr"),
           doc="READ raddr and WRITE waddr in the same cycle; they must hit different banks"),
]

_MXM = [
    OpInfo("LW", SliceKind.MXM, 5, _STREAM + (_f("count", 5), _f("col", 9)), addr_fields=("col",),
           doc="load weight columns col..col+count from streams stream..stream+count "
               "into the shadow buffer (count field holds count-1)"),
    OpInfo("IW", SliceKind.MXM, 6, (), doc="install the shadow weights into the array"),
    OpInfo("ABC", SliceKind.MXM, 7,
           _STREAM + (_f("acc", 1), _f("slot", 12), _f("emit", 1), _f("edir", 1), _f("estream", 5)),
           addr_fields=("slot",),
           doc="multiply the activation vector on stream by the weights; "
               "write (acc=0) or add (acc=1) the int32 result into accumulator slot; "
               "with emit=1 also emit the new slot value onto the SG4 group estream..estream+3 "
               "(a fused ACC: the last pass of a GEMM needs no extra queue slot)"),
    OpInfo("ACC", SliceKind.MXM, 8, _STREAM + (_f("slot", 12),), addr_fields=("slot",),
           doc="emit accumulator slot as int32 onto the SG4 group stream..stream+3"),
]

_SXM_FIELDS = (_f("sdir", 1), _f("sstream", 5), _f("ddir", 1), _f("dstream", 5), _f("arg", 9))
_SXM = [
    OpInfo("SHUP", SliceKind.SXM, 5, _SXM_FIELDS, doc="lane l takes lane l-arg (zero fill)"),
    OpInfo("SHDN", SliceKind.SXM, 6, _SXM_FIELDS, doc="lane l takes lane l+arg (zero fill)"),
    OpInfo("ROT", SliceKind.SXM, 7, _SXM_FIELDS, doc="lane l takes lane (l-arg) mod VL"),
    OpInfo("PERM", SliceKind.SXM, 8, _SXM_FIELDS, doc="lane l takes lane map[arg][l]"),
    OpInfo("DIST", SliceKind.SXM, 9, _SXM_FIELDS,
           doc="every lane of a tile takes lane arg of that tile"),
    OpInfo("TRANS", SliceKind.SXM, 10, _SXM_FIELDS,
           doc="lanes x streams transpose of each tile: dst stream i lane kL+j = "
               "src stream j lane kL+i, for lanes streams from sstream/dstream"),
]

# VXM: 64-bit words. Common fields, then a 32-bit tail from bit 32.
_VXM_HEAD = (_f("dtype", 1), _f("a", 8), _f("b", 8), _f("we", 1), _f("wdir", 1),
             _f("wstream", 5), _f("pad", 3))
_VXM_BIN = _VXM_HEAD + (_f("imm", 32, True),)


def _alu(m, code, doc):
    return OpInfo(m, SliceKind.VXM, code, _VXM_BIN, doc=doc)


_VXM = [
    _alu("ADD", 5, "a + b, wrapping"),
    _alu("SUB", 6, "a - b, wrapping"),
    _alu("MUL", 7, "a * b, wrapping"),
    _alu("ADDS", 8, "a + b, saturating"),
    _alu("SUBS", 9, "a - b, saturating"),
    _alu("MULS", 10, "a * b, saturating"),
    _alu("MIN", 11, "min(a, b)"),
    _alu("MAX", 12, "max(a, b)"),
    _alu("RELU", 13, "max(a, 0)"),
    _alu("NEG", 14, "-a, saturating"),
    _alu("SHRA", 15, "a >> (b mod width), arithmetic"),
    _alu("SHL", 16, "a << (b mod width), wrapping"),
    _alu("AND", 17, "a & b"),
    _alu("OR", 18, "a | b"),
    _alu("XOR", 19, "a ^ b"),
    _alu("CMPGT", 20, "-1 if a > b else 0"),
    _alu("CMPEQ", 21, "-1 if a == b else 0"),
    OpInfo("SELECT", SliceKind.VXM, 22,
           _VXM_HEAD + (_f("c", 8), _f("pad2", 24)),
           doc="a if c != 0 else b (c is a third source)"),
    OpInfo("REQUANT", SliceKind.VXM, 23,
           _VXM_HEAD[:2] + (_f("shift", 8),) + _VXM_HEAD[3:-1] + (_f("zr", 1), _f("pad", 2))
           + (_f("mult", 24), _f("zp", 8, True)),
           doc="int32 -> int8: saturate(round_half_even(a * mult / 2**shift) + zp) with zr=0 "
               "(ONNX QuantizeLinear), saturate(round_half_even(a * mult / 2**shift + zp)) "
               "with zr=1, the zero point added before rounding (ONNX QLinearMatMul)"),
    _alu("WIDEN", 24, "int8 -> int32, sign-extended"),
    _alu("NARROW", 25, "int32 -> int8, saturating"),
    _alu("MOV", 26, "a"),
    OpInfo("LUT", SliceKind.VXM, 27, _VXM_BIN, doc="int8 -> int8 through the lane's table (ALU 0)"),
    OpInfo("LUTW", SliceKind.VXM, 28,
           _VXM_HEAD + (_f("index", 8), _f("pad2", 24)), addr_fields=("index",),
           doc="table[index] = a, in every lane (ALU 0)"),
]

#: All opcodes: ``OPS[kind][mnemonic]``; the ICU ones appear under every kind.
OPS = {}
for _kind in SliceKind:
    OPS[_kind] = {o.mnemonic: o for o in _ICU}
for _o in _MEM + _MXM + _SXM + _VXM:
    OPS[_o.kind][_o.mnemonic] = _o

_BY_CODE = {kind: {o.opcode: o for o in table.values()} for kind, table in OPS.items()}
ICU_OPS = tuple(o.mnemonic for o in _ICU)

# VXM ops whose operands/results follow the dtype bit; the others have fixed types.
VXM_TYPED = frozenset({"ADD", "SUB", "MUL", "ADDS", "SUBS", "MULS", "MIN", "MAX", "RELU",
                       "NEG", "SHRA", "SHL", "AND", "OR", "XOR", "CMPGT", "CMPEQ",
                       "SELECT", "MOV"})
#: (input dtype, output dtype) of the conversion ops; 0 int8, 1 int32.
VXM_CONVERT = {"REQUANT": (1, 0), "WIDEN": (0, 1), "NARROW": (1, 0), "LUT": (0, 0),
               "LUTW": (0, 0)}
#: VXM ops that only ALU 0 may run (it owns the lookup table).
VXM_ALU0_ONLY = frozenset({"LUT", "LUTW"})
#: VXM ops that need the ALU's multiplier (``Config.mul_alus`` lists the ALUs that have one).
VXM_MUL_OPS = frozenset({"MUL", "MULS", "REQUANT"})


def vxm_alu_can(config, alu, mnemonic):
    """Can ALU ``alu`` of ``config``'s VXM run ``mnemonic``? (The one rule the
    assembler, the golden model, the gateware's legality check and the
    compiler's ALU assignment share.)"""
    if mnemonic in VXM_ALU0_ONLY:
        return alu == 0
    if mnemonic in VXM_MUL_OPS:
        return alu in config.mul_alus
    return True


def vxm_types(mnemonic, dtype):
    """``(input dtype, output dtype)`` of VXM op ``mnemonic`` with dtype bit ``dtype``
    (0 int8, 1 int32): the conversion ops have fixed types (``VXM_CONVERT``)."""
    return VXM_CONVERT.get(mnemonic, (dtype, dtype))


def vxm_set_can(config, mnemonic, dtype):
    """Can ``config``'s VXM run ``mnemonic`` on these types at all? Not when an operand
    or the result is int32 and the set's ALU lanes are 8 bits (``Config.vxm_int32``)."""
    return config.vxm_int32 or not any(vxm_types(mnemonic, dtype))


#: Unary VXM ops (b is not read).
VXM_UNARY = frozenset({"RELU", "NEG", "REQUANT", "WIDEN", "NARROW", "MOV", "LUT", "LUTW"})

for _kind, _table in OPS.items():
    for _o in _table.values():
        assert _o.bits() <= WORD_BITS[_kind], (_o.mnemonic, _o.bits())
    assert len(_BY_CODE[_kind]) == len(_table), _kind


def op_by_mnemonic(kind, mnemonic):
    try:
        return OPS[kind][mnemonic.upper()]
    except KeyError:
        raise KeyError(f"{mnemonic!r} is not an instruction of a {kind.value} queue; "
                       f"those are {', '.join(OPS[kind])}") from None


@dataclass(frozen=True)
class Instr:
    """A decoded instruction: the op and its raw field values (ints)."""
    kind: SliceKind
    mnemonic: str
    fields: dict = field(default_factory=dict, hash=False, compare=True)

    @property
    def info(self):
        return OPS[self.kind][self.mnemonic]

    @property
    def is_icu(self):
        return self.info.is_icu

    def __getattr__(self, name):
        f = self.__dict__.get("fields")
        if f is not None and name in f:
            return f[name]
        raise AttributeError(name)

    def with_fields(self, **kw):
        return Instr(self.kind, self.mnemonic, {**self.fields, **kw})

    def __str__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.fields.items() if not k.startswith("pad"))
        return f"{self.mnemonic} {args}".strip()


class DecodeError(ValueError):
    pass


def _fit(value, width, signed, what):
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} = {value!r} does not fit {width} "
                         f"{'signed' if signed else 'unsigned'} bits ({lo}..{hi})")
    return value & ((1 << width) - 1)


def encode(instr):
    """Instruction -> integer word of ``WORD_BITS[kind]`` bits."""
    info = instr.info
    word = info.opcode
    unknown = set(instr.fields) - {n for n, _, _ in info.fields}
    if unknown:
        raise ValueError(f"{info.mnemonic}: unknown field(s) {', '.join(sorted(unknown))}")
    for name, lsb, width, signed in info.layout()[1:]:
        value = instr.fields.get(name, 0)
        word |= _fit(value, width, signed, f"{info.mnemonic}.{name}") << lsb
    return word


def decode(kind, word):
    """Integer word -> :class:`Instr`. Raises :class:`DecodeError` for an
    unknown opcode or nonzero reserved bits (both illegal instructions)."""
    if not 0 <= word < (1 << WORD_BITS[kind]):
        raise DecodeError(f"word {word:#x} is wider than {WORD_BITS[kind]} bits")
    code = word & ((1 << OPCODE_BITS) - 1)
    info = _BY_CODE[kind].get(code)
    if info is None:
        raise DecodeError(f"opcode {code} is not defined for {kind.value} queues")
    fields = {}
    for name, lsb, width, signed in info.layout()[1:]:
        v = (word >> lsb) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        fields[name] = v
    if word >> info.bits():
        raise DecodeError(f"{info.mnemonic}: reserved bits above bit {info.bits() - 1} are set")
    if any(v for n, v in fields.items() if n.startswith("pad")):
        raise DecodeError(f"{info.mnemonic}: reserved bits are set")
    return Instr(kind, info.mnemonic, fields)


def word_flags(queue, word, config):
    """The ``ErrorFlag`` bits of ``word`` fetched by ``queue``, before the sequencer's
    run-time rules: ``ILLEGAL_INSTR`` for a word that does not decode, else the
    flags of :func:`check`. The gateware stores them next to the word as the host
    writes it (``rtl/icu.py``)."""
    try:
        instr = decode(queue.kind, word)
    except DecodeError:
        return int(ErrorFlag.ILLEGAL_INSTR)
    flags = 0
    for flag, _reason in check(instr, queue, config):
        flags |= int(flag)
    return flags


def check(instr, queue, config):
    """Static checks of one instruction against the machine it runs on.

    Returns a list of ``(ErrorFlag, reason)``; empty when the instruction is
    legal. The golden model raises the flags at issue, the assembler turns
    the reasons into error messages, and the gateware computes the same
    conditions in its decoders (``rtl/``). Address range is checked for the
    encoded address; a ``Repeat`` stride can still walk out of range, which
    the machine flags as ``ADDR_RANGE`` when it issues that repetition.
    """
    problems = []
    f = instr.fields
    m = instr.mnemonic
    S, L, VL = config.streams, config.lanes, config.vl

    def bad(flag, reason):
        problems.append((flag, reason))

    def stream(idx, what="stream", group=1, sg4=False):
        """Streams idx..idx+group-1 must exist; an SG4 group (int32) must be aligned."""
        if sg4:
            group = 4
        if idx + group > S:
            bad(ErrorFlag.ILLEGAL_INSTR, f"{what} {idx}{'..' + str(idx + group - 1) if group > 1 else ''}"
                f" out of range, this configuration has {S} streams per direction")
        elif sg4 and idx % 4:
            bad(ErrorFlag.ILLEGAL_INSTR, f"{what} {idx} is not the start of an SG4 group "
                "(int32 uses 4 aligned streams)")

    if m == "NOP" and f["n"] < 1:
        bad(ErrorFlag.ILLEGAL_INSTR, "NOP count must be at least 1")
    elif m == "REPEAT":
        if f["n"] < 1:
            bad(ErrorFlag.ILLEGAL_INSTR, "REPEAT count must be at least 1")
        if f["d"] < 1:
            bad(ErrorFlag.ILLEGAL_INSTR, "REPEAT distance must be at least 1 cycle")
    elif instr.kind is SliceKind.MEM and not instr.is_icu:
        ports = [("", "stream", "addr")] if m != "RW" else [("read ", "rstream", "raddr"),
                                                           ("write ", "wstream", "waddr")]
        for what, sf, af in ports:
            stream(f[sf], f"{what}stream")
            if f[af] >= config.mem_words:
                bad(ErrorFlag.ADDR_RANGE, f"{what}address {f[af]} out of range, "
                    f"a MEM slice has {config.mem_words} words")
        if m == "RW" and not problems and config.bank_of(f["raddr"]) == config.bank_of(f["waddr"]):
            bad(ErrorFlag.BANK_CONFLICT, f"read address {f['raddr']} and write address "
                f"{f['waddr']} are both in bank {config.bank_of(f['raddr'])}")
    elif instr.kind is SliceKind.MXM and not instr.is_icu:
        if m == "LW":
            stream(f["stream"], "stream", f["count"] + 1)
            if f["col"] + f["count"] + 1 > VL:
                bad(ErrorFlag.ADDR_RANGE, f"weight columns {f['col']}..{f['col'] + f['count']} "
                    f"out of range, the MXM has {VL}")
        elif m in ("ABC", "ACC"):
            stream(f["stream"], "stream", sg4=m == "ACC")
            if m == "ABC" and f["emit"]:
                stream(f["estream"], "emit stream", sg4=True)
            elif m == "ABC" and (f["edir"] or f["estream"]):
                bad(ErrorFlag.ILLEGAL_INSTR, "emit stream given without the emit bit")
            if f["slot"] >= config.acc_slots:
                bad(ErrorFlag.ADDR_RANGE, f"accumulator slot {f['slot']} out of range, "
                    f"the MXM has {config.acc_slots}")
    elif instr.kind is SliceKind.SXM and not instr.is_icu:
        n = L if m == "TRANS" else 1
        stream(f["sstream"], "source stream", n)
        stream(f["dstream"], "destination stream", n)
        arg = f["arg"]
        if m in ("SHUP", "SHDN", "ROT") and arg >= VL:
            bad(ErrorFlag.ILLEGAL_INSTR, f"shift by {arg} lanes, the vector has {VL}")
        elif m == "PERM" and arg >= config.sxm_maps:
            bad(ErrorFlag.ILLEGAL_INSTR, f"permutation map {arg} out of range, "
                f"the SXM holds {config.sxm_maps}")
        elif m == "DIST" and arg >= L:
            bad(ErrorFlag.ILLEGAL_INSTR, f"lane {arg} out of range, a tile has {L} lanes")
        elif m == "TRANS" and arg != 0:
            bad(ErrorFlag.ILLEGAL_INSTR, "TRANS takes no argument")
    elif instr.kind is SliceKind.VXM and not instr.is_icu:
        dt_in, dt_out = vxm_types(m, f["dtype"])
        if m not in VXM_TYPED and f["dtype"] != 0:
            bad(ErrorFlag.ILLEGAL_INSTR, f"{m} has fixed types; its dtype bit must be 0")
        elif not vxm_set_can(config, m, f["dtype"]):
            bad(ErrorFlag.ILLEGAL_INSTR, f"{m} {'int32' if f['dtype'] else ''}".rstrip()
                + f": config {config.name!r} has an int8-only VXM (no int32 operands or results)")
        if m in VXM_ALU0_ONLY and queue.alu != 0:
            bad(ErrorFlag.ILLEGAL_INSTR, f"{m} runs on ALU 0 only (it owns the lookup table)")
        elif not vxm_alu_can(config, queue.alu, m):
            bad(ErrorFlag.ILLEGAL_INSTR, f"{m} needs a multiplier; on config {config.name!r} "
                f"the ALUs with one are {list(config.mul_alus) or 'none'}")
        srcs = [("a", f["a"])]
        if m not in VXM_UNARY:
            srcs.append(("b", f["b"]))
        if m == "SELECT":
            srcs.append(("c", f["c"]))
        for name, raw in srcs:
            kind = raw >> 6
            if kind == OperandKind.STREAM:
                stream(raw & 0x1F, f"operand {name} stream", sg4=bool(dt_in))
            elif kind == OperandKind.ALU:
                if raw & 0xF >= config.vxm_alus or raw & 0x30:
                    bad(ErrorFlag.ILLEGAL_INSTR, f"operand {name}: ALU {raw & 0x3F} out of range, "
                        f"a lane has {config.vxm_alus}")
            elif kind == OperandKind.IMM and m in ("SELECT", "REQUANT", "LUTW"):
                bad(ErrorFlag.ILLEGAL_INSTR, f"{m} has no immediate operand")
            elif kind == OperandKind.ZERO and raw:
                bad(ErrorFlag.ILLEGAL_INSTR, f"operand {name}: reserved bits set")
        if f["we"]:
            if m == "LUTW":
                bad(ErrorFlag.ILLEGAL_INSTR, "LUTW writes the table, not a stream")
            stream(f["wstream"], "destination stream", sg4=bool(dt_out))
        elif f["wdir"] or f["wstream"]:
            bad(ErrorFlag.ILLEGAL_INSTR, "destination given without the write-enable bit")
        if m == "REQUANT" and f["shift"] > 63:
            bad(ErrorFlag.ILLEGAL_INSTR, f"REQUANT shift {f['shift']} out of range (0..63)")
    return problems


# -- arithmetic shared by the golden model and the compiler ---------------------

def RNE(num, shift, offset=0):
    """Round ``num / 2**shift`` to nearest, ties to even (numpy int64 arrays or ints).

    With an integer ``offset``, a tie goes to the value whose sum with
    ``offset`` is even: the result is ``RNE(num / 2**shift + offset) - offset``.
    """
    import numpy as np
    num = np.asarray(num, dtype=np.int64)
    if shift == 0:
        return num
    q = num >> shift                      # floor
    r = num - (q << shift)                # 0 <= r < 2**shift
    half = np.int64(1) << (shift - 1)
    up = (r > half) | ((r == half) & ((q + offset) & 1 == 1))
    return q + up.astype(np.int64)


def requantize(x, mult, shift, zp, zr=0):
    """The VXM's REQUANT on int32 values, to int8.

    ``zr=0``: ``saturate(RNE(x * mult / 2**shift) + zp)``, round then add the
    zero point (ONNX ``QuantizeLinear``). ``zr=1``: ``saturate(RNE(x * mult /
    2**shift + zp))``, the zero point added before rounding (ONNX
    ``QLinearMatMul``). The two differ only at exact ties with an odd ``zp``.
    """
    import numpy as np
    y = RNE(np.asarray(x, dtype=np.int64) * np.int64(mult), shift, zp if zr else 0) + zp
    return np.clip(y, -128, 127).astype(np.int8)
