"""The instruction set: encode/decode round trips, the legality rules of
``isa.check`` and the REQUANT arithmetic against an exact reference."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from firmware import isa
from firmware.isa import OPS, OPCODE_BITS, WORD_BITS, DecodeError, ErrorFlag, Instr, Operand, \
    OperandKind, check, decode, encode
from firmware.machine import CONFIGS, Dir, SliceKind


ALL_OPS = [(kind, info) for kind, table in OPS.items() for info in table.values()]


def field_range(width, signed):
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


@st.composite
def instructions(draw):
    """Any opcode of any queue kind, every field over its full range (reserved bits 0)."""
    kind, info = draw(st.sampled_from(ALL_OPS))
    fields = {}
    for name, width, signed in info.fields:
        fields[name] = 0 if name.startswith("pad") else draw(st.integers(*field_range(width, signed)))
    return Instr(kind, info.mnemonic, fields)


@st.composite
def legal_words(draw):
    """A word built bit by bit from an op's layout: its opcode, random bits in
    every field, zero in reserved fields and above the op's last field."""
    kind, info = draw(st.sampled_from(ALL_OPS))
    word = info.opcode
    for name, lsb, width, _ in info.layout()[1:]:
        if not name.startswith("pad"):
            word |= draw(st.integers(0, (1 << width) - 1)) << lsb
    return kind, word


@settings(max_examples=200, deadline=None)
@given(instructions())
def test_decode_inverts_encode(instr):
    word = encode(instr)
    assert 0 <= word < 1 << WORD_BITS[instr.kind]
    assert decode(instr.kind, word) == instr


@settings(max_examples=200, deadline=None)
@given(legal_words())
def test_encode_inverts_decode(kind_word):
    kind, word = kind_word
    assert encode(decode(kind, word)) == word


def test_every_op_is_reached_by_the_strategies():
    # The round trips above draw from ALL_OPS; make sure that list is complete.
    assert len(ALL_OPS) == sum(len(t) for t in OPS.values())
    for kind in SliceKind:
        assert {i.mnemonic for k, i in ALL_OPS if k is kind} == set(OPS[kind])


@pytest.mark.parametrize("kind", list(SliceKind))
def test_decode_rejects_unknown_opcodes(kind):
    used = {info.opcode for info in OPS[kind].values()}
    for code in range(1 << OPCODE_BITS):
        if code not in used:
            with pytest.raises(DecodeError, match="opcode"):
                decode(kind, code)


@pytest.mark.parametrize("kind,info", ALL_OPS, ids=lambda x: getattr(x, "mnemonic", None))
def test_decode_rejects_reserved_bits(kind, info):
    if info.bits() < WORD_BITS[kind]:
        with pytest.raises(DecodeError, match="reserved"):
            decode(kind, info.opcode | 1 << info.bits())
    for name, lsb, width, _ in info.layout()[1:]:
        if name.startswith("pad"):
            with pytest.raises(DecodeError, match="reserved"):
                decode(kind, info.opcode | 1 << (lsb + width - 1))
    with pytest.raises(DecodeError, match="wider"):
        decode(kind, 1 << WORD_BITS[kind])
    with pytest.raises(DecodeError):
        decode(kind, -1)


@pytest.mark.parametrize("kind,info", ALL_OPS, ids=lambda x: getattr(x, "mnemonic", None))
def test_encode_rejects_values_that_do_not_fit(kind, info):
    for name, width, signed in info.fields:
        lo, hi = field_range(width, signed)
        encode(Instr(kind, info.mnemonic, {name: hi}))
        encode(Instr(kind, info.mnemonic, {name: lo}))
        for bad in (hi + 1, lo - 1):
            with pytest.raises(ValueError, match="does not fit"):
                encode(Instr(kind, info.mnemonic, {name: bad}))
    with pytest.raises(ValueError, match="unknown field"):
        encode(Instr(kind, info.mnemonic, {"no_such_field": 0}))


def test_operand_encoding_matches_the_documented_layout():
    # [7:6] kind, stream [5] dir [4:0] index, ALU [3:0] index
    assert Operand(OperandKind.STREAM, Dir.W, 3).encode() == 0b01_1_00011
    assert Operand(OperandKind.ALU, Dir.E, 5).encode() == 0b10_00_0101
    assert Operand(OperandKind.IMM).encode() == 0b11_000000
    assert Operand(OperandKind.ZERO).encode() == 0
    for raw in (0b01_0_11111, 0b10_00_1111, 0b11_000000, 0):
        assert Operand.decode(raw).encode() == raw


# -- check(): one triggering and one passing case per rule ------------------

def S(dir_, idx):
    return Operand(OperandKind.STREAM, dir_, idx).encode()


E, W = Dir.E, Dir.W
ALU = lambda i: Operand(OperandKind.ALU, Dir.E, i).encode()      # noqa: E731
IMM = Operand(OperandKind.IMM).encode()
ZERO = Operand(OperandKind.ZERO).encode()

BAD_ALU_BITS = ALU(0) | 0x10          # an ALU operand with a reserved bit set
BAD_ZERO_BITS = ZERO | 0x01

# (rule, queue, mnemonic, fields(config), expected flag or None). Every rule
# appears with a triggering case and a passing one.
CHECK_CASES = [
    ("nop count", "MEM_E0", "NOP", lambda c: {"n": 0}, ErrorFlag.ILLEGAL_INSTR),
    ("nop count", "MEM_E0", "NOP", lambda c: {"n": 1}, None),
    ("repeat count", "VXM0", "REPEAT", lambda c: {"n": 0, "d": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("repeat distance", "MXM_E", "REPEAT", lambda c: {"n": 1, "d": 0}, ErrorFlag.ILLEGAL_INSTR),
    ("repeat", "SXM_E", "REPEAT", lambda c: {"n": 1, "d": 1, "stride": -1}, None),
    ("mem stream", "MEM_E0", "READ", lambda c: {"stream": c.streams}, ErrorFlag.ILLEGAL_INSTR),
    ("mem stream", "MEM_W0", "WRITE", lambda c: {"stream": c.streams - 1, "dir": 1}, None),
    ("mem addr", "MEM_E1", "WRITE", lambda c: {"addr": c.mem_words}, ErrorFlag.ADDR_RANGE),
    ("mem addr", "MEM_E1", "READ", lambda c: {"addr": c.mem_words - 1}, None),
    ("rw read stream", "MEM_E0", "RW",
     lambda c: {"rstream": c.streams, "waddr": c.bank_words}, ErrorFlag.ILLEGAL_INSTR),
    ("rw write stream", "MEM_E0", "RW",
     lambda c: {"wstream": c.streams, "waddr": c.bank_words}, ErrorFlag.ILLEGAL_INSTR),
    ("rw read addr", "MEM_E0", "RW", lambda c: {"raddr": c.mem_words}, ErrorFlag.ADDR_RANGE),
    ("rw write addr", "MEM_E0", "RW", lambda c: {"waddr": c.mem_words}, ErrorFlag.ADDR_RANGE),
    ("rw bank", "MEM_E0", "RW",
     lambda c: {"raddr": c.bank_words, "waddr": c.mem_words - 1}, ErrorFlag.BANK_CONFLICT),
    ("rw bank", "MEM_E0", "RW",
     lambda c: {"raddr": c.bank_words - 1, "waddr": c.bank_words,
                "rstream": c.streams - 1, "wstream": c.streams - 1}, None),
    ("lw streams", "MXM_E", "LW",
     lambda c: {"stream": c.streams - 1, "count": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("lw streams", "MXM_E", "LW", lambda c: {"stream": c.streams - 2, "count": 1}, None),
    ("lw columns", "MXM_E", "LW", lambda c: {"col": c.vl - 1, "count": 1}, ErrorFlag.ADDR_RANGE),
    ("lw columns", "MXM_E", "LW", lambda c: {"col": c.vl - 2, "count": 1}, None),
    ("abc stream", "MXM_E", "ABC", lambda c: {"stream": c.streams}, ErrorFlag.ILLEGAL_INSTR),
    ("abc stream", "MXM_E", "ABC", lambda c: {"stream": c.streams - 1, "acc": 1}, None),
    ("abc slot", "MXM_E", "ABC", lambda c: {"slot": c.acc_slots}, ErrorFlag.ADDR_RANGE),
    ("abc emit", "MXM_E", "ABC", lambda c: {"emit": 1, "estream": c.streams - 4, "edir": 1}, None),
    ("abc emit", "MXM_E", "ABC", lambda c: {"emit": 1, "estream": c.streams - 3}, ErrorFlag.ILLEGAL_INSTR),
    ("abc emit", "MXM_E", "ABC", lambda c: {"emit": 1, "estream": 2}, ErrorFlag.ILLEGAL_INSTR),
    ("abc emit bits", "MXM_E", "ABC", lambda c: {"estream": 4}, ErrorFlag.ILLEGAL_INSTR),
    ("abc emit bits", "MXM_E", "ABC", lambda c: {"edir": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("acc slot", "MXM_E", "ACC", lambda c: {"slot": c.acc_slots}, ErrorFlag.ADDR_RANGE),
    ("acc slot", "MXM_E", "ACC", lambda c: {"slot": c.acc_slots - 1, "stream": c.streams - 4}, None),
    ("acc group", "MXM_E", "ACC", lambda c: {"stream": c.streams - 3}, ErrorFlag.ILLEGAL_INSTR),
    ("acc group", "MXM_E", "ACC", lambda c: {"stream": 2}, ErrorFlag.ILLEGAL_INSTR),
    ("sxm source", "SXM_E", "SHUP", lambda c: {"sstream": c.streams}, ErrorFlag.ILLEGAL_INSTR),
    ("sxm dest", "SXM_E", "SHDN", lambda c: {"dstream": c.streams}, ErrorFlag.ILLEGAL_INSTR),
    ("sxm streams", "SXM_E", "ROT",
     lambda c: {"sstream": c.streams - 1, "dstream": c.streams - 1, "sdir": 1}, None),
    ("trans source", "SXM_E", "TRANS",
     lambda c: {"sstream": c.streams - c.lanes + 1}, ErrorFlag.ILLEGAL_INSTR),
    ("trans dest", "SXM_E", "TRANS",
     lambda c: {"dstream": c.streams - c.lanes + 1}, ErrorFlag.ILLEGAL_INSTR),
    ("trans", "SXM_E", "TRANS",
     lambda c: {"sstream": c.streams - c.lanes, "dstream": c.streams - c.lanes}, None),
    ("trans arg", "SXM_E", "TRANS", lambda c: {"arg": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("shift", "SXM_E", "SHUP", lambda c: {"arg": c.vl}, ErrorFlag.ILLEGAL_INSTR),
    ("shift", "SXM_E", "SHDN", lambda c: {"arg": c.vl - 1}, None),
    ("rotate", "SXM_E", "ROT", lambda c: {"arg": c.vl}, ErrorFlag.ILLEGAL_INSTR),
    ("rotate", "SXM_E", "ROT", lambda c: {"arg": c.vl - 1}, None),
    ("perm map", "SXM_E", "PERM", lambda c: {"arg": c.sxm_maps}, ErrorFlag.ILLEGAL_INSTR),
    ("perm map", "SXM_E", "PERM", lambda c: {"arg": c.sxm_maps - 1}, None),
    ("dist lane", "SXM_E", "DIST", lambda c: {"arg": c.lanes}, ErrorFlag.ILLEGAL_INSTR),
    ("dist lane", "SXM_E", "DIST", lambda c: {"arg": c.lanes - 1}, None),
    ("fixed type", "VXM0", "WIDEN", lambda c: {"dtype": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("fixed type", "VXM0", "ADD", lambda c: {"dtype": 1}, None),
    ("alu 0 only", "VXM1", "LUT", lambda c: {}, ErrorFlag.ILLEGAL_INSTR),
    ("alu 0 only", "VXM1", "LUTW", lambda c: {}, ErrorFlag.ILLEGAL_INSTR),
    ("alu 0 only", "VXM0", "LUT", lambda c: {}, None),
    ("operand stream", "VXM0", "ADD",
     lambda c: {"a": S(E, c.streams)}, ErrorFlag.ILLEGAL_INSTR),
    ("operand stream", "VXM0", "SUB",
     lambda c: {"b": S(W, c.streams)}, ErrorFlag.ILLEGAL_INSTR),
    ("operand stream", "VXM0", "SELECT",
     lambda c: {"c": S(W, c.streams)}, ErrorFlag.ILLEGAL_INSTR),
    ("operand stream", "VXM0", "SELECT",
     lambda c: {"a": S(E, c.streams - 1), "b": S(W, 0), "c": S(W, c.streams - 1)}, None),
    ("unary ignores b", "VXM0", "RELU", lambda c: {"b": S(W, c.streams)}, None),
    ("int32 operand group", "VXM0", "ADD",
     lambda c: {"dtype": 1, "a": S(E, 1)}, ErrorFlag.ILLEGAL_INSTR),
    ("int32 operand group", "VXM1", "REQUANT",
     lambda c: {"a": S(E, c.streams - 2)}, ErrorFlag.ILLEGAL_INSTR),
    ("int32 operand group", "VXM0", "NARROW", lambda c: {"a": S(W, c.streams - 4)}, None),
    ("int8 operand", "VXM0", "WIDEN", lambda c: {"a": S(W, c.streams - 1)}, None),
    ("operand alu", "VXM0", "MAX",
     lambda c: {"a": ALU(c.vxm_alus - 1), "b": ALU(0)}, None),
    ("operand alu", "VXM0", "MAX", lambda c: {"b": ALU(c.vxm_alus)}, ErrorFlag.ILLEGAL_INSTR),
    ("operand alu bits", "VXM0", "MIN", lambda c: {"a": BAD_ALU_BITS}, ErrorFlag.ILLEGAL_INSTR),
    ("immediate", "VXM0", "SELECT", lambda c: {"c": IMM}, ErrorFlag.ILLEGAL_INSTR),
    ("immediate", "VXM1", "REQUANT", lambda c: {"a": IMM}, ErrorFlag.ILLEGAL_INSTR),
    ("immediate", "VXM0", "LUTW", lambda c: {"a": IMM}, ErrorFlag.ILLEGAL_INSTR),
    ("immediate", "VXM0", "ADD", lambda c: {"a": IMM, "b": IMM, "imm": -3}, None),
    ("zero bits", "VXM0", "XOR", lambda c: {"b": BAD_ZERO_BITS}, ErrorFlag.ILLEGAL_INSTR),
    ("zero bits", "VXM0", "XOR", lambda c: {"b": ZERO}, None),
    ("lutw writes", "VXM0", "LUTW", lambda c: {"we": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("lutw", "VXM0", "LUTW", lambda c: {"index": 255, "a": S(W, 0)}, None),
    ("dest stream", "VXM0", "MOV",
     lambda c: {"we": 1, "wstream": c.streams}, ErrorFlag.ILLEGAL_INSTR),
    ("dest stream", "VXM0", "MOV", lambda c: {"we": 1, "wstream": c.streams - 1, "wdir": 1}, None),
    ("int32 dest group", "VXM0", "WIDEN",
     lambda c: {"we": 1, "wstream": 2}, ErrorFlag.ILLEGAL_INSTR),
    ("int32 dest group", "VXM0", "WIDEN", lambda c: {"we": 1, "wstream": c.streams - 4}, None),
    ("int8 dest", "VXM1", "REQUANT", lambda c: {"we": 1, "wstream": c.streams - 1}, None),
    ("dest without we", "VXM0", "ADD", lambda c: {"wstream": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("dest without we", "VXM0", "ADD", lambda c: {"wdir": 1}, ErrorFlag.ILLEGAL_INSTR),
    ("requant shift", "VXM1", "REQUANT", lambda c: {"shift": 64}, ErrorFlag.ILLEGAL_INSTR),
    ("requant shift", "VXM1", "REQUANT", lambda c: {"shift": 63, "mult": 1, "zp": -128}, None),
]


def full_instr(kind, mnemonic, fields):
    info = OPS[kind][mnemonic]
    return Instr(kind, mnemonic, {**{n: 0 for n, _, _ in info.fields}, **fields})


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
@pytest.mark.parametrize("rule,queue,mnemonic,fields,flag", CHECK_CASES,
                         ids=[f"{c[0]}-{c[2]}-{'bad' if c[4] else 'ok'}" for c in CHECK_CASES])
def test_check(config, rule, queue, mnemonic, fields, flag):
    c = CONFIGS[config]
    q = c.floorplan.queue(queue)
    problems = check(full_instr(q.kind, mnemonic, fields(c)), q, c)
    if flag is None:
        assert problems == []
    else:
        assert [f for f, _ in problems] == [flag], problems
        assert all(isinstance(reason, str) and reason for _, reason in problems)


@pytest.mark.parametrize("config", ["tiny", "ulx3s", "groq"])
@pytest.mark.parametrize("mnemonic", ["MUL", "MULS", "REQUANT"])
def test_multiplying_ops_only_on_alus_with_a_multiplier(config, mnemonic):
    """``Config.mul_alus``: tiny and groq have a multiplier on every ALU, ulx3s on ALU 1."""
    c = CONFIGS[config]
    expect = {"tiny": set(range(c.vxm_alus)), "groq": set(range(c.vxm_alus)), "ulx3s": {1}}[config]
    assert set(c.mul_alus) == expect
    for alu in range(c.vxm_alus):
        q = c.floorplan.queue(f"VXM{alu}")
        problems = check(full_instr(SliceKind.VXM, mnemonic, {"shift": 1} if mnemonic == "REQUANT"
                                    else {}), q, c)
        if alu in expect:
            assert problems == []
        else:
            assert [f for f, _ in problems] == [ErrorFlag.ILLEGAL_INSTR]
            assert "multiplier" in problems[0][1] and "[1]" in problems[0][1]


@pytest.mark.parametrize("mnemonic, dtype, legal", [
    ("ADD", 0, True), ("SHRA", 0, True), ("LUT", 0, True), ("SELECT", 0, True),
    ("ADD", 1, False), ("MOV", 1, False), ("CMPGT", 1, False),
    ("WIDEN", 0, False), ("NARROW", 0, False), ("REQUANT", 0, False),
])
def test_an_int8_only_vxm_refuses_int32(mnemonic, dtype, legal):
    """``Config.vxm_int32 = False`` (``pico``): an int32 operand or result is illegal, with
    a reason naming the set; ``tiny`` runs the same words."""
    pico, tiny = CONFIGS["pico"], CONFIGS["tiny"]
    assert not pico.vxm_int32 and tiny.vxm_int32
    fields = {"dtype": dtype, **({"shift": 1} if mnemonic == "REQUANT" else {})}
    ins = full_instr(SliceKind.VXM, mnemonic, fields)
    assert check(ins, tiny.floorplan.queue("VXM0"), tiny) == []
    problems = check(ins, pico.floorplan.queue("VXM0"), pico)
    if legal:
        assert problems == []
    else:
        assert problems and {f for f, _ in problems} == {ErrorFlag.ILLEGAL_INSTR}
        assert "int8-only" in problems[0][1] and "'pico'" in problems[0][1], problems


def test_check_cases_cover_every_rule_both_ways():
    triggering = {rule for rule, *_, flag in CHECK_CASES if flag is not None}
    rules = {rule for rule, *_ in CHECK_CASES}
    # every family of rules has at least one legal neighbour
    families = {r.split()[0] for r in rules}
    for fam in families:
        assert any(r.split()[0] == fam and f is None for r, *_, f in CHECK_CASES), fam
    assert len(triggering) >= 30


def test_rw_reports_no_bank_conflict_for_an_instruction_already_wrong():
    c = CONFIGS["tiny"]
    q = c.floorplan.queue("MEM_E0")
    problems = check(full_instr(SliceKind.MEM, "RW", {"rstream": c.streams}), q, c)
    assert [f for f, _ in problems] == [ErrorFlag.ILLEGAL_INSTR]


# -- REQUANT arithmetic -------------------------------------------------------

def rne_reference(num, shift):
    """num / 2**shift rounded to nearest, ties to even, with exact fractions."""
    q = Fraction(num, 1 << shift)
    low = floor(q)
    rest = q - low
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2):
        return low + 1
    return low


def requantize_reference(x, mult, shift, zp):
    return max(-128, min(127, rne_reference(x * mult, shift) + zp))


RNE_EDGES = [
    (5, 1, 2), (7, 1, 4), (-5, 1, -2), (-7, 1, -4),          # ties: to even
    (3, 1, 2), (-3, 1, -2), (1, 1, 0), (-1, 1, 0),
    (6, 2, 2), (10, 2, 2), (-6, 2, -2), (-10, 2, -2),        # x.5 ties at shift 2
    (5, 2, 1), (-5, 2, -1), (7, 2, 2), (-7, 2, -2),          # 1.25, 1.75
    (0, 5, 0), (12345, 0, 12345), (-12345, 0, -12345),
    (-(1 << 62), 63, -0), ((1 << 62), 63, 0), ((1 << 62) + 1, 63, 1), (-(1 << 62) - 1, 63, -1),
]


@pytest.mark.parametrize("num,shift,expected", RNE_EDGES)
def test_rne_edge_cases(num, shift, expected):
    assert rne_reference(num, shift) == expected          # the reference itself
    assert int(isa.RNE(num, shift)) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=8), st.integers(0, 40))
def test_rne_matches_exact_fractions(nums, shift):
    got = isa.RNE(np.array(nums, np.int64), shift)
    assert [int(v) for v in got] == [rne_reference(n, shift) for n in nums]


REQUANT_FIELDS = {n: (w, signed) for n, w, signed in OPS[SliceKind.VXM]["REQUANT"].fields}
MULT_MAX = field_range(*REQUANT_FIELDS["mult"])[1]
ZP_MIN, ZP_MAX = field_range(*REQUANT_FIELDS["zp"])
INT32 = np.iinfo(np.int32)

REQUANT_EDGES = [
    (3, 1, 1, 0), (5, 1, 1, 0), (-3, 1, 1, 0), (-5, 1, 1, 0),     # ties
    (1, 1, 0, 126), (2, 1, 0, 126), (-1, 1, 0, -127), (-2, 1, 0, -127),   # saturate at zp edge
    (INT32.max, MULT_MAX, 0, 0), (INT32.min, MULT_MAX, 0, 0),
    (INT32.max, MULT_MAX, 63, 0), (INT32.min, MULT_MAX, 63, 0), (INT32.min, MULT_MAX, 55, 0),
    (255, 1, 1, ZP_MIN), (-256, 1, 1, ZP_MAX), (0, 0, 0, ZP_MIN), (1000, 3, 5, -7),
]


@pytest.mark.parametrize("x,mult,shift,zp", REQUANT_EDGES)
def test_requantize_edge_cases(x, mult, shift, zp):
    got = isa.requantize(np.array([x], np.int32), mult, shift, zp)
    assert got.dtype == np.int8
    assert int(got[0]) == requantize_reference(x, mult, shift, zp)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(INT32.min, INT32.max), min_size=1, max_size=8),
       st.integers(0, MULT_MAX), st.integers(0, 63), st.integers(ZP_MIN, ZP_MAX))
def test_requantize_matches_exact_fractions(xs, mult, shift, zp):
    got = isa.requantize(np.array(xs, np.int32), mult, shift, zp)
    assert [int(v) for v in got] == [requantize_reference(x, mult, shift, zp) for x in xs]


# -- REQUANT's zr bit: the zero point added before rounding -----------------------------

def requantize_zr_reference(x, mult, shift, zp):
    """``clamp(RNE(x * mult / 2**shift + zp))`` with exact fractions (round() is half-even)."""
    return max(-128, min(127, round(Fraction(x * mult, 1 << shift) + zp)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=8), st.integers(1, 40),
       st.integers(-128, 127))
def test_rne_offset_rounds_the_sum(nums, shift, offset):
    got = isa.RNE(np.array(nums, np.int64), shift, offset)
    assert [int(v) for v in got] == [round(Fraction(n, 1 << shift) + offset) - offset for n in nums]


#: (x, mult, shift, zp, zr=0 result, zr=1 result), worked by hand.
REQUANT_ZR_EDGES = [
    (1, 1, 1, -9, -9, -8),              # 0.5 - 9 = -8.5 -> -8;  RNE(0.5) - 9 = -9
    (3, 1, 1, -9, -7, -8),              # 1.5 - 9 = -7.5 -> -8;  RNE(1.5) - 9 = -7
    (-1, 1, 1, 1, 1, 0),                # -0.5 + 1 = 0.5 -> 0;   RNE(-0.5) + 1 = 1
    (6, 1, 2, 3, 5, 4),                 # 1.5 + 3 = 4.5 -> 4;    RNE(1.5) + 3 = 5
    (5, 1, 1, 2, 4, 4),                 # an even zp: both the same
    (255, 1, 1, -1, 127, 126),          # 127.5 - 1 = 126.5 -> 126; RNE(127.5) - 1 = 127
    (-257, 1, 1, 1, -127, -128),        # -128.5 + 1 = -127.5 -> -128; RNE(-128.5) + 1 = -127
    (255, 1, 1, 0, 127, 127),           # 127.5 -> 128, saturated
    (7, 1, 1, 0, 4, 4),                 # zp 0: 3.5 -> 4 either way
    (INT32.max, MULT_MAX, 0, -128, 127, 127), (INT32.min, MULT_MAX, 0, 127, -128, -128),
]


@pytest.mark.parametrize("x,mult,shift,zp,want0,want1", REQUANT_ZR_EDGES)
def test_requantize_zr_edge_cases(x, mult, shift, zp, want0, want1):
    assert requantize_reference(x, mult, shift, zp) == want0
    assert requantize_zr_reference(x, mult, shift, zp) == want1
    assert int(isa.requantize(np.array([x], np.int32), mult, shift, zp)[0]) == want0
    assert int(isa.requantize(np.array([x], np.int32), mult, shift, zp, 0)[0]) == want0
    assert int(isa.requantize(np.array([x], np.int32), mult, shift, zp, 1)[0]) == want1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(INT32.min, INT32.max), min_size=1, max_size=8),
       st.integers(0, MULT_MAX), st.integers(0, 63), st.integers(ZP_MIN, ZP_MAX))
def test_requantize_zr_matches_exact_fractions(xs, mult, shift, zp):
    got = isa.requantize(np.array(xs, np.int32), mult, shift, zp, 1)
    assert [int(v) for v in got] == [requantize_zr_reference(x, mult, shift, zp) for x in xs]


def test_requantize_zr_against_numpy_rint():
    """Many values near the int8 range, a third of them exact ties, odd and even zero
    points: zr=1 is ``clip(rint(x * mult / 2**shift + zp))`` (ONNX QLinearMatMul), zr=0
    is ``clip(rint(x * mult / 2**shift) + zp)`` (QuantizeLinear). Every value is exact
    in float64 here (products below 2**43, shifts up to 40)."""
    rng = np.random.default_rng(7)
    differ = 0
    for shift in (0, 1, 2, 3, 5, 8, 13, 20, 31, 40):
        mult = int(rng.integers(1, 1 << 12))
        bound = min(int(INT32.max), (300 << shift) // mult + (1 << shift))
        xs = [(rng.integers(-bound, bound, 600), mult)]
        if shift:                                      # exact ties: (2q + 1) / 2 with mult 1
            xs.append(((2 * rng.integers(-300, 300, 300) + 1) << (shift - 1), 1))
        for x, m in xs:
            x = x.astype(np.int32)
            y = x.astype(np.float64) * m / 2.0 ** shift
            for zp in (-9, -8, 0, 1, 127, -128, int(rng.integers(-64, 64)) * 2 + 1):
                zr0 = isa.requantize(x, m, shift, zp)
                zr1 = isa.requantize(x, m, shift, zp, 1)
                assert np.array_equal(zr0, np.clip(np.rint(y) + zp, -128, 127)), (shift, m, zp)
                assert np.array_equal(zr1, np.clip(np.rint(y + zp), -128, 127)), (shift, m, zp)
                if zp % 2 == 0:
                    assert np.array_equal(zr0, zr1)        # an even zp keeps the tie's parity
                differ += int(np.sum(zr0 != zr1))
    assert differ > 100, "too few ties where the two conventions differ: the test tests little"
