"""VxmSlice in the Amaranth simulator against the arithmetic of ARCHITECTURE.md section 5."""

import numpy as np
import pytest

from firmware.isa import ErrorFlag, Instr, Operand, OperandKind, encode, requantize, vxm_alu_can
from firmware.machine import Dir, SliceKind, get_config
from rtl.vxm import VxmSlice
from rtl_slice_harness import run_slice


CONFIGS = ["tiny", "ulx3s"]
#: With ``pico``, whose ALU lane is 8 bits wide (no int32 ops) and has no multiplier.
INT8_CONFIGS = CONFIGS + ["pico"]
LAT = get_config("tiny").latency.vxm


def E(s):
    return Operand(OperandKind.STREAM, Dir.E, s).encode()


def W(s):
    return Operand(OperandKind.STREAM, Dir.W, s).encode()


def ALU(j):
    return Operand(OperandKind.ALU, Dir.E, j).encode()


IMM = Operand(OperandKind.IMM).encode()
ZERO = Operand(OperandKind.ZERO).encode()


def vxm(mnemonic, dtype=0, a=ZERO, b=ZERO, dst=None, **fields):
    """A VXM word; ``dst = ("E"|"W", stream)`` sets the write-enable and destination."""
    if dst is not None:
        fields.update(we=1, wdir=Dir[dst[0]].value, wstream=dst[1])
    base = {"dtype": dtype, "a": a}
    if mnemonic != "REQUANT":
        base["b"] = b
    return encode(Instr(SliceKind.VXM, mnemonic, {**base, **fields}))


# -- the spec's arithmetic, written out for the tests ------------------------------------

def ref(op, w, a, b=0, c=0):
    """Result of a typed VXM op on Python ints (``w`` = 8 or 32 bits)."""
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1

    def wrap(x):
        return (x - lo) % (1 << w) + lo

    def sat(x):
        return min(max(x, lo), hi)

    return {
        "ADD": lambda: wrap(a + b), "SUB": lambda: wrap(a - b), "MUL": lambda: wrap(a * b),
        "ADDS": lambda: sat(a + b), "SUBS": lambda: sat(a - b), "MULS": lambda: sat(a * b),
        "MIN": lambda: min(a, b), "MAX": lambda: max(a, b), "RELU": lambda: max(a, 0),
        "NEG": lambda: sat(-a), "SHRA": lambda: a >> (b % w), "SHL": lambda: wrap(a << (b % w)),
        "AND": lambda: a & b, "OR": lambda: a | b, "XOR": lambda: a ^ b,
        "CMPGT": lambda: -1 if a > b else 0, "CMPEQ": lambda: -1 if a == b else 0,
        "SELECT": lambda: a if c != 0 else b, "MOV": lambda: a,
    }[op]()


BINARY = ["ADD", "SUB", "MUL", "ADDS", "SUBS", "MULS", "MIN", "MAX", "SHRA", "SHL",
          "AND", "OR", "XOR", "CMPGT", "CMPEQ"]
UNARY = ["RELU", "NEG", "MOV"]

#: Hand-checked edges: (op, width, a, b, expected).
EDGES = [
    ("ADD", 8, 127, 1, -128), ("ADDS", 8, 127, 1, 127), ("SUBS", 8, -128, 1, -128),
    ("SUB", 8, -128, 1, 127), ("MUL", 8, 16, 16, 0), ("MUL", 8, -128, -1, -128),
    ("MULS", 8, -128, -1, 127), ("MULS", 8, 100, -100, -128), ("NEG", 8, -128, 0, 127),
    ("SHRA", 8, -128, 9, -64), ("SHL", 8, 1, 7, -128), ("SHL", 8, 3, -1, -128),
    ("ADD", 32, 2**31 - 1, 1, -2**31), ("ADDS", 32, 2**31 - 1, 1, 2**31 - 1),
    ("SUBS", 32, -2**31, 1, -2**31), ("MUL", 32, 65536, 65536, 0),
    ("MUL", 32, -2**31, -1, -2**31), ("MULS", 32, -2**31, -1, 2**31 - 1),
    ("MULS", 32, 2**20, -2**20, -2**31), ("NEG", 32, -2**31, 0, 2**31 - 1),
    ("SHRA", 32, -2**31, 33, -2**30), ("SHL", 32, 1, 31, -2**31), ("CMPGT", 32, -1, -2, -1),
    ("CMPEQ", 8, -5, -5, -1), ("MIN", 32, -2**31, 2**31 - 1, -2**31), ("RELU", 8, -1, 0, 0),
]


def able(c, op):
    """The ALUs of ``c`` that can run ``op`` (``ulx3s``: the multiplier is on ALU 1 only)."""
    return [a for a in range(c.vxm_alus) if vxm_alu_can(c, a, op)]


class Bench:
    """VXM program and stream inputs in local time; whole-vector helpers for operands."""

    def __init__(self, name):
        self.c = get_config(name)
        self.program = {}
        self.streams = {}

    def issue(self, t, alu, word):
        assert alu not in self.program.setdefault(t, {}), f"ALU {alu} issues twice at {t}"
        self.program[t][alu] = word

    def put(self, t, direction, s, values, w=8):
        """Vector ``values`` (one per lane) on stream ``s``, or on the SG4 group from ``s``."""
        c = self.c
        arr = self.streams.setdefault(t, {}).setdefault(
            direction, np.zeros((c.streams, c.vl), np.uint8))
        vals = np.asarray(values, dtype=np.int64)
        for i in range(w // 8):
            arr[s + i] = (vals >> (8 * i)) & 0xFF

    def run(self, cycles, host_writes=()):
        c = self.c
        return run_slice(c, SliceKind.VXM, lambda: VxmSlice(c), self.program, self.streams,
                         cycles, host_writes=[("lut_w", wr) for wr in host_writes],
                         alus=c.vxm_alus)


def result(trace, t, direction, s, w):
    em = (trace.east if direction == "E" else trace.west)[t]
    if w == 8:
        out = em.stream(s)
        return None if out is None else out.astype(np.int64)
    out = em.group(s)
    return None if out is None else out.astype(np.uint32).view(np.int32).astype(np.int64)


def lanes(rng, w, vl, edges=()):
    """A vector of ``vl`` int values of width ``w``: the edge values first, then random."""
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    vals = list(edges) + [lo, hi, 0, -1, 1]
    rand = rng.integers(lo, hi + 1, size=vl, dtype=np.int64)
    return np.array((vals + list(rand))[:vl], dtype=np.int64)


@pytest.mark.parametrize("name", INT8_CONFIGS)
def test_edge_table(name):
    """Every row of ``EDGES`` the set can run, one per cycle on the first ALU that
    can run it, operands from E and W streams."""
    b = Bench(name)
    edges = [e for e in EDGES if able(b.c, e[0]) and (e[1] == 8 or b.c.vxm_int32)]
    assert len(edges) >= 10
    for t, (op, w, x, y, _) in enumerate(edges):
        dt = int(w == 32)
        b.put(t, "E", 0, [x] * b.c.vl, w)
        b.put(t, "W", 0, [y] * b.c.vl, w)
        b.issue(t, able(b.c, op)[0], vxm(op, dt, E(0), W(0), dst=("E", 0)))
    tr = b.run(len(edges) + LAT)
    for t, (op, w, x, y, want) in enumerate(edges):
        got = result(tr, t + LAT, "E", 0, w)
        assert got is not None and (got == want).all(), (op, w, x, y, got, want)


@pytest.mark.parametrize("name, w", [(n, w) for n in INT8_CONFIGS for w in (8, 32)
                                     if w == 8 or get_config(n).vxm_int32])
def test_random_ops(name, w):
    """Every typed op the set has on random lanes (plus extremes) against ``ref``; the
    ops run on ALUs that can run them in turn, emitting east and west; ``b`` shifts
    are in range and beyond."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(w)
    dt = int(w == 32)
    g = 4 if dt else 1                                       # streams per operand
    cases = []
    for t, op in enumerate(op for op in BINARY + UNARY if able(c, op)):
        x = lanes(rng, w, c.vl)
        y = lanes(rng, w, c.vl, edges=[1, -1] if op in ("ADDS", "SUBS", "MULS") else ())
        if op in ("SHRA", "SHL"):
            y = rng.integers(-70, 70, size=c.vl)
        alu = able(c, op)[t % len(able(c, op))]
        direction = "EW"[t % 2]
        dst = (c.streams - g) if t % 3 else 0
        b.put(t, "E", 0, x, w)
        b.put(t, "W", c.streams - g, y, w)
        b.issue(t, alu, vxm(op, dt, E(0), W(c.streams - g), dst=(direction, dst)))
        want = [ref(op, w, int(p), int(q)) for p, q in zip(x, y)]
        cases.append((t, op, direction, dst, want))
    tr = b.run(len(cases) + LAT)
    for t, op, direction, dst, want in cases:
        got = result(tr, t + LAT, direction, dst, w)
        assert got is not None, f"{op}: nothing emitted at {t + LAT}"
        assert list(got) == want, op
        assert tr.emitted_streams(t + LAT) == {(direction, dst + i) for i in range(g)}, op


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("w", [8, 32])
def test_select(name, w):
    """SELECT a, b, c: the condition from another ALU's R (chained at t + 3; an int8
    SELECT tests only R's low byte) and from streams, zero and nonzero lanes mixed."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(w + 1)
    dt = int(w == 32)
    x, y = lanes(rng, w, c.vl), lanes(rng, w, c.vl)
    cond = rng.integers(0, 2, size=c.vl) * rng.integers(-(1 << 20), 1 << 20, size=c.vl)
    if w == 8:
        cond[:2] = [256, 512]                       # low byte zero: "not taken" in int8
    b.put(0, "E", 0, cond, 32)
    b.issue(0, 1, vxm("MOV", 1, E(0)))              # R1 = cond, no emission
    b.put(3, "E", 0, x, w)
    b.put(3, "W", 0, y, w)
    b.issue(3, 0, vxm("SELECT", dt, E(0), W(0), dst=("W", 0), c=ALU(1)))
    # The condition from a stream: the b stream, then the a stream (zero lanes mixed in).
    x2, y2 = x * rng.integers(0, 2, size=c.vl), y * rng.integers(0, 2, size=c.vl)
    for t, cond_src in ((4, W(0)), (5, E(0))):
        b.put(t, "E", 0, x2, w)
        b.put(t, "W", 0, y2, w)
        b.issue(t, 0, vxm("SELECT", dt, E(0), W(0), dst=("E", 0), c=cond_src))
    tr = b.run(9)
    low = cond if w == 32 else (cond + 128) % 256 - 128
    assert (result(tr, 6, "W", 0, w) == np.where(low != 0, x, y)).all()
    assert (result(tr, 7, "E", 0, w) == np.where(y2 != 0, x2, y2)).all()
    assert (result(tr, 8, "E", 0, w) == np.where(x2 != 0, x2, y2)).all()
    assert tr.emitted_streams(3) == set()


@pytest.mark.parametrize("name", CONFIGS)
def test_operand_kinds_and_chaining(name):
    """ZERO, IMM (int8: its low byte), chained R of another ALU at exactly t+3 (int8
    reads the low byte, int32 the sign-extended register), conversions WIDEN/NARROW."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(7)
    x = lanes(rng, 8, c.vl)
    big = lanes(rng, 32, c.vl)
    last = c.vxm_alus - 1
    b.put(0, "W", 1, x)
    b.issue(0, 0, vxm("ADD", 0, W(1), IMM, imm=0x1234_5603))       # R0 = x + 3 (int8)
    b.issue(0, last, vxm("MOV", 1, IMM, dst=("W", 0), imm=-5))     # int32 immediate
    b.issue(3, last, vxm("MOV", 1, ALU(0), dst=("E", 0)))          # R0 sign-extended
    b.issue(3, 0, vxm("SUB", 0, ZERO, ALU(0), dst=("W", 0)))       # -(x + 3), wraps
    b.put(4, "E", 0, big, 32)
    b.issue(4, 0, vxm("NARROW", 0, E(0), dst=("E", 1)))
    b.issue(5, 0, vxm("WIDEN", 0, ALU(0), dst=("E", 0)))           # R0 at 5: still x + 3
    b.issue(7, c.mul_alus[0], vxm("MUL", 1, ALU(0), ALU(0), dst=("W", 0)))  # R0 = narrow(big)
    tr = b.run(11)

    x3 = (x + 3 + 128) % 256 - 128
    assert (result(tr, 3, "W", 0, 32) == -5).all()
    assert (result(tr, 6, "E", 0, 32) == x3).all()
    assert (result(tr, 6, "W", 0, 8) == (-x3 + 128) % 256 - 128).all()
    assert (result(tr, 7, "E", 1, 8) == np.clip(big, -128, 127)).all()
    assert (result(tr, 8, "E", 0, 32) == x3).all()
    assert (result(tr, 10, "W", 0, 32) == np.clip(big, -128, 127) ** 2).all()


@pytest.mark.parametrize("name", CONFIGS)
def test_requant(name):
    """REQUANT against ``firmware.isa.requantize``: random int32 values, exact ties
    (odd and even quotients), shifts 0 and 63, the largest mult, zero points; with
    ``zr=1`` (zero point before rounding) the ties of an odd zero point move."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(11)
    params = [(1, 1, 0, 0), (1, 4, 0, 0), (1, 20, -7, 0), (3, 2, -3, 0), (1234567, 30, 5, 0),
              ((1 << 24) - 1, 40, -128, 0), (5, 0, 127, 0), ((1 << 24) - 1, 63, 0, 0),
              (77, 7, -1, 0), (1 << 23, 31, 100, 0),
              (1, 1, -9, 1), (1, 4, 1, 1), (1, 2, 0, 1), (1, 20, -128, 1), (3, 2, -3, 1),
              ((1 << 24) - 1, 40, 5, 1)]
    cases = []
    for t, (mult, shift, zp, zr) in enumerate(params):
        x = lanes(rng, 32, c.vl)
        if mult == 1:                                   # exact ties, odd and even quotients
            half = 1 << (shift - 1)
            ties = [(2 * q + 1) * half for q in (-3, -2, 1, 2, 0, 127, -128, 126, -129)][:c.vl]
            x[:len(ties)] = ties
        b.put(t, "W", 0, x, 32)
        b.issue(t, c.mul_alus[t % len(c.mul_alus)], vxm("REQUANT", 0, W(0), dst=("E", 1),
                                       mult=mult, shift=shift, zp=zp, zr=zr))
        want = requantize(x, mult, shift, zp, zr).astype(np.int64)
        if zr and mult == 1 and zp % 2:                 # the ties do go the other way
            assert (want != requantize(x, mult, shift, zp)).any()
        cases.append((t, x, want))
    tr = b.run(len(params) + LAT)
    for t, x, want in cases:
        assert (result(tr, t + LAT, "E", 1, 8) == want).all(), params[t]


@pytest.mark.parametrize("name", CONFIGS)
def test_requant_every_shift(name):
    """REQUANT at each of the 64 shifts on powers of two that put the product's
    leading bit just below, at and just above the quotient's int8 range and its
    rounding position. The gateware picks the half bit, the sticky bit and the
    "quotient is small" test from eight byte-aligned positions (``requant_round``):
    these values make each of them decide the result at every position."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(5)
    cases = []
    for t, shift in enumerate(range(64)):
        mult = int(rng.choice([1, 3, 1 << 23, (1 << 24) - 1]))
        zp = int(rng.choice([-1, 1, 0, 127]))
        zr = t % 2
        bits = mult.bit_length() - 1
        # the product's top bit at shift - 2 .. shift + 9: ties, the half bit alone,
        # quotients 1, 128, 256 and beyond (both signs, and the most negative one)
        xs = []
        for d in rng.choice([-2, -1, 0, 1, 7, 8, 9], c.vl):
            j = int(np.clip(shift - bits + d, 0, 31))
            sign = 1 if rng.integers(2) else -1
            xs.append(-(1 << 31) if (sign < 0 and j == 31) else sign * min(1 << j, (1 << 31) - 1))
        x = np.array(xs, np.int64)
        b.put(t, "W", 0, x, 32)
        b.issue(t, c.mul_alus[t % len(c.mul_alus)], vxm("REQUANT", 0, W(0), dst=("E", 1),
                                                        mult=mult, shift=shift, zp=zp, zr=zr))
        cases.append((t, (mult, shift, zp, zr), requantize(x, mult, shift, zp, zr)))
    tr = b.run(len(cases) + LAT)
    for t, params, want in cases:
        assert (result(tr, t + LAT, "E", 1, 8) == want.astype(np.int64)).all(), params


@pytest.mark.parametrize("name", CONFIGS)
def test_requant_near_the_int8_range(name):
    """REQUANT on random parameters with values whose quotient lands in -300 .. 300, so
    the rounding, the zero-point add and both clamps are exercised (random int32 values
    with a large ``mult`` almost always saturate)."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(23)
    cases = []
    for t in range(48):
        shift = int(rng.integers(0, 64))
        mult = int(rng.integers(1, 1 << 24))
        zp, zr = int(rng.integers(-128, 128)), int(rng.integers(0, 2))
        q = rng.integers(-300, 301, c.vl)
        x = np.clip((q << shift) // mult + rng.integers(-2, 3, c.vl), -(1 << 31), (1 << 31) - 1)
        if shift and t % 3 == 0:                        # an exact tie where x allows one
            x[0] = np.clip(((2 * int(q[0]) + 1) << (shift - 1)) // mult, -(1 << 31), (1 << 31) - 1)
        b.put(t, "W", 0, x, 32)
        b.issue(t, c.mul_alus[t % len(c.mul_alus)], vxm("REQUANT", 0, W(0), dst=("E", 1),
                                                        mult=mult, shift=shift, zp=zp, zr=zr))
        cases.append((t, (mult, shift, zp, zr), requantize(x, mult, shift, zp, zr)))
    tr = b.run(len(cases) + LAT)
    inside = 0
    for t, params, want in cases:
        assert (result(tr, t + LAT, "E", 1, 8) == want.astype(np.int64)).all(), params
        inside += int(((want > -128) & (want < 127)).sum())
    assert inside > len(cases) * c.vl // 4             # most results are not clamped


@pytest.mark.parametrize("name", INT8_CONFIGS)
def test_lut(name):
    """Host-written table entries, LUT through them, LUTW of one index visible to a LUT
    issued one cycle later but not to one issued before it; LUT on ALU 0."""
    b = Bench(name)
    c = b.c
    rng = np.random.default_rng(5)
    idx = rng.integers(-128, 128, size=c.vl)
    host = rng.integers(-128, 128, size=c.vl)
    writes = [{"lane": lane, "index": int(idx[lane]) & 0xFF, "data": int(host[lane]) & 0xFF}
              for lane in range(c.vl)]
    new = rng.integers(-128, 128, size=c.vl)
    b.put(0, "E", 2, idx)
    b.issue(0, 0, vxm("LUT", 0, E(2), dst=("W", 3)))
    b.put(1, "E", 0, new)
    b.issue(1, 0, vxm("LUTW", 0, E(0), index=int(idx[0]) & 0xFF))
    b.put(2, "E", 2, np.full(c.vl, idx[0]))
    b.issue(2, 0, vxm("LUT", 0, E(2), dst=("E", 3)))
    tr = b.run(6, host_writes=writes)
    assert (result(tr, 3, "W", 3, 8) == host).all()
    assert (result(tr, 5, "E", 3, 8) == new).all()
    assert tr.emitted_streams(4) == set()                   # LUTW emits nothing


@pytest.mark.parametrize("name", CONFIGS)
def test_stream_conflict(name):
    """Two ALUs on one stream and direction in one cycle: STREAM_CONFLICT in that cycle
    (t + 3), the lower ALU's value on the stream; other directions or streams are fine."""
    b = Bench(name)
    c = b.c
    S = c.streams
    one, two = np.full(c.vl, 1), np.full(c.vl, 2)
    b.put(0, "E", 0, one)
    b.put(0, "E", 1, two)
    b.issue(0, 0, vxm("MOV", 0, E(0), dst=("E", S - 1)))
    b.issue(0, 1, vxm("MOV", 0, E(1), dst=("W", S - 1)))          # other direction: fine
    b.put(2, "E", 0, one)
    b.put(2, "E", 1, two)
    b.issue(2, 1, vxm("MOV", 0, E(1), dst=("W", S - 2)))
    b.issue(2, 0, vxm("WIDEN", 0, E(0), dst=("W", S - 4)))         # SG4 group covers S - 2
    tr = b.run(7)
    flag = int(ErrorFlag.STREAM_CONFLICT)
    assert [e & flag for e in tr.err] == [flag if g == 5 else 0 for g in range(len(tr.err))]
    assert (result(tr, 3, "E", S - 1, 8) == 1).all() and (result(tr, 3, "W", S - 1, 8) == 2).all()
    assert (result(tr, 5, "W", S - 4, 32) == 1).all()              # ALU 0 wins its group
