"""Every instruction of the golden model against plain numpy / Python arithmetic.

Operands reach the VXM the way a compiler would bring them: each byte plane is
read from its own MEM slice so that all of them pass the VXM in the same cycle
(an SG4 group needs four slices upstream, which only ``ulx3s`` has; on ``tiny``
int32 operands come from a chained ALU loaded with immediates). Results are
read from the hop register one position downstream, from the trace.

Expected values are computed element by element with Python integers (or
``fractions.Fraction`` for rounding), independently of the model's numpy code.
"""

import itertools
import zlib
from fractions import Fraction

import numpy as np
import pytest

from firmware import isa
from firmware.machine import get_config
from golden_util import (E, W, IMM, SG4, ZERO, Program, alu, dst, i32_planes, planes_i32,
                         random_bytes, src)


# -- reference arithmetic (ARCHITECTURE.md section 5), one element at a time ------

def wrap(x, bits):
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def sat(x, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return max(lo, min(hi, x))


REF = {
    "ADD": lambda a, b, c, w: wrap(a + b, w),
    "SUB": lambda a, b, c, w: wrap(a - b, w),
    "MUL": lambda a, b, c, w: wrap(a * b, w),
    "ADDS": lambda a, b, c, w: sat(a + b, w),
    "SUBS": lambda a, b, c, w: sat(a - b, w),
    "MULS": lambda a, b, c, w: sat(a * b, w),
    "MIN": lambda a, b, c, w: min(a, b),
    "MAX": lambda a, b, c, w: max(a, b),
    "RELU": lambda a, b, c, w: max(a, 0),
    "NEG": lambda a, b, c, w: sat(-a, w),
    "SHRA": lambda a, b, c, w: a >> (b % w),          # Python's >> is arithmetic
    "SHL": lambda a, b, c, w: wrap(a << (b % w), w),
    "AND": lambda a, b, c, w: a & b,
    "OR": lambda a, b, c, w: a | b,
    "XOR": lambda a, b, c, w: a ^ b,
    "CMPGT": lambda a, b, c, w: -1 if a > b else 0,
    "CMPEQ": lambda a, b, c, w: -1 if a == b else 0,
    "SELECT": lambda a, b, c, w: a if c != 0 else b,
    "MOV": lambda a, b, c, w: a,
}
UNARY = {"RELU", "NEG", "MOV"}

EDGES = {8: [-128, -127, -1, 0, 1, 2, 7, 8, 126, 127],
         32: [-(1 << 31), -(1 << 31) + 1, -65536, -1, 0, 1, 31, 32, 65536, (1 << 31) - 1]}


def operand_table(rng, bits, vl, extra=28):
    """(a, b, c) int64 [K, VL]: every pair of edge values, then random values."""
    pairs = list(itertools.product(EDGES[bits], repeat=2))
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    n = -(-(len(pairs) + extra) // vl) * vl
    a = rng.integers(lo, hi, n)
    b = rng.integers(lo, hi, n)
    a[:len(pairs)], b[:len(pairs)] = zip(*pairs)
    c = rng.choice([0, 0, 1, -1, lo, 256 % hi, 65536 % hi], n)
    return a.reshape(-1, vl), b.reshape(-1, vl), c.reshape(-1, vl)


def seed(name):
    """A stable per-test seed (str hashes change between runs)."""
    return zlib.crc32(name.encode())


def expect(fn, *cols):
    return np.array([fn(*map(int, xs)) for xs in zip(*(c.ravel() for c in cols))],
                    np.int64).reshape(cols[0].shape)


# -- a harness that streams operands into the VXM ---------------------------------

def upstream(cfg, direction):
    """MEM slices that feed the VXM in ``direction``, nearest first."""
    fp = cfg.floorplan
    side = "W" if direction == E else "E"
    return [fp.slice(f"MEM_{side}{i}") for i in range(cfg.mem_slices)]


def as_planes(values, bits):
    """int values [K, VL] -> byte planes [nplanes, K, VL]."""
    if bits == 8:
        return values.astype(np.int8).view(np.uint8)[None]
    return np.stack([i32_planes(v) for v in values], axis=1)


def from_planes(planes, bits):
    """hop register bytes [nplanes, VL] -> int values [VL]."""
    return planes[0].view(np.int8).astype(np.int64) if bits == 8 else planes_i32(planes).astype(np.int64)


class VxmBench:
    """Collects timed instructions of many queues, then places them in order."""

    def __init__(self, cfg):
        self.cfg = get_config(cfg)
        self.lat = self.cfg.latency
        self.vxm = self.cfg.floorplan.vxm
        self.p = Program(self.cfg)
        self.events = []        # (cycle, queue, mnemonic, fields)
        self.addr = {}          # slice -> next free word

    def feed(self, arrive, direction, stream, values, bits, skip=0):
        """Make ``values[k]`` pass the VXM on ``direction`` streams from ``stream``
        in cycle ``arrive[k]``: plane i is read from upstream MEM slice skip + i."""
        planes = as_planes(values, bits)
        for i, sl in enumerate(upstream(self.cfg, direction)[skip:skip + len(planes)]):
            base = self.addr.get(sl.name, 0)
            self.p.data(sl.name, base, planes[i])
            self.addr[sl.name] = base + len(values)
            hops = abs(self.vxm.pos - sl.pos)
            for k, t in enumerate(arrive):
                self.events.append((t - self.lat.mem_read - hops, sl.name, "READ",
                                    {"dir": direction, "stream": stream + i, "addr": base + k}))

    def op(self, t, queue, mnemonic, **fields):
        self.events.append((t, queue, mnemonic, fields))

    def run(self, **kw):
        for t, q, m, f in sorted(self.events, key=lambda e: e[0]):
            self.p.at(t, q, m, **f)
        self.p.hold_until(max(e[0] for e in self.events) + self.lat.vxm + 2)
        result = self.p.run(trace=True, **kw)
        assert result.errors == 0, result.events
        return result

    def seen(self, result, t, direction, stream, count):
        """Bytes the VXM drove onto ``direction`` streams in cycle ``t``, one hop away."""
        pos = self.vxm.pos + (1 if direction == E else -1)
        hops = result.trace.east if direction == E else result.trace.west
        return hops[t + 1, pos, stream:stream + count]


CONFIGS = ["tiny", "ulx3s"]
T0 = 16     # first op cycle: leaves room for every MEM read before it


def alus_for(cfg, mnemonic):
    """(the ALU that runs ``mnemonic``, another one for the operands it chains):
    ALU 0 and ALU 1, unless ``mnemonic`` needs the multiplier and ALU 0 has none
    (ulx3s: only ALU 1 has it), then ALU 1 and ALU 0."""
    c = get_config(cfg)
    op = next(a for a in range(c.vxm_alus) if isa.vxm_alu_can(c, a, mnemonic))
    return op, (1 if op == 0 else 0)


def run_streamed(cfg, mnemonic, a, b=None, c=None, *, bits_in, bits_out, **fields):
    """``mnemonic`` on its ALU (``alus_for``) with a (East group 0), b (West
    group 0) and c (int8: East stream 1 from the next slice; int32: the helper
    ALU, loaded 3 cycles before from East group 0, in the cycles between a's, so
    four streams a direction are enough). One vector per cycle, or every second
    cycle when c is chained."""
    bench = VxmBench(cfg)
    op_alu, helper = alus_for(cfg, mnemonic)
    K = len(a)
    chained_c = c is not None and bits_in == 32
    period = 2 if chained_c else 1
    times = [T0 + period * k for k in range(K)]
    bench.feed(times, E, 0, a, bits_in)
    ops = {"a": src(E, 0)}              # an absent field is 0 = ZERO
    if b is not None:
        bench.feed(times, W, 0, b, bits_in)
        ops["b"] = src(W, 0)
    if c is not None and not chained_c:
        bench.feed(times, E, 1, c, bits_in, skip=1)
        ops["c"] = src(E, 1)
    elif chained_c:
        early = [t - bench.lat.vxm for t in times]
        bench.feed(early, E, 0, c, bits_in)
        for t in early:
            bench.op(t, f"VXM{helper}", "MOV", dtype=1, a=src(E, 0), b=ZERO)
        ops["c"] = alu(helper)
    for t in times:
        bench.op(t, f"VXM{op_alu}", mnemonic, **ops, **dst(E, 0), **fields)
    res = bench.run()
    n_out = 1 if bits_out == 8 else SG4
    return np.array([from_planes(bench.seen(res, t + bench.lat.vxm, E, 0, n_out), bits_out)
                     for t in times])


def run_chained_imm(cfg, mnemonic, a, b=None, *, bits_in, bits_out, **fields):
    """Scalar operands without streams: the helper ALU (``alus_for``: ALU 1,
    or ALU 0 when the op needs ALU 1's multiplier) loads ``a[k]`` with
    ``MOV #imm``; the op's ALU runs it on the helper and ``#b[k]`` three cycles later."""
    bench = VxmBench(cfg)
    op_alu, helper = alus_for(cfg, mnemonic)
    dt = {8: 0, 32: 1}[bits_in]
    times = [T0 + k for k in range(len(a))]
    for k, t in enumerate(times):
        bench.op(t - bench.lat.vxm, f"VXM{helper}", "MOV", dtype=dt, a=IMM, b=ZERO, imm=int(a[k]))
        f = dict(fields)
        if b is not None:
            f.update(b=IMM, imm=int(b[k]))
        bench.op(t, f"VXM{op_alu}", mnemonic, a=alu(helper), **dst(E, 0), **f)
    res = bench.run()
    n_out = 1 if bits_out == 8 else SG4
    return np.array([from_planes(bench.seen(res, t + bench.lat.vxm, E, 0, n_out), bits_out)[0]
                     for t in times])


# -- VXM --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("mnemonic", sorted(REF))
def test_vxm_int8(cfg, mnemonic):
    """Typed ops on int8, lane by lane, all pairs of edge values plus random ones."""
    vl = get_config(cfg).vl
    a, b, c = operand_table(np.random.default_rng(seed(mnemonic)), 8, vl)
    want = expect(lambda x, y, z: REF[mnemonic](x, y, z, 8), a, b, c)
    got = run_streamed(cfg, mnemonic, a, None if mnemonic in UNARY else b,
                       c if mnemonic == "SELECT" else None, bits_in=8, bits_out=8, dtype=0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mnemonic", sorted(REF))
def test_vxm_int32_streams(mnemonic):
    """Typed ops on int32 SG4 groups (ulx3s: four MEM slices feed each operand)."""
    a, b, c = operand_table(np.random.default_rng(seed(mnemonic)), 32, get_config("ulx3s").vl)
    want = expect(lambda x, y, z: REF[mnemonic](x, y, z, 32), a, b, c)
    got = run_streamed("ulx3s", mnemonic, a, None if mnemonic in UNARY else b,
                       c if mnemonic == "SELECT" else None, bits_in=32, bits_out=32, dtype=1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("mnemonic", sorted(set(REF) - {"SELECT"}))
def test_vxm_int32_chained_immediates(cfg, mnemonic):
    """Typed int32 ops on every pair of edge values, a through an ALU chain, b
    as the 32-bit immediate (this also reaches tiny, which cannot stream int32)."""
    a, b = map(np.array, zip(*itertools.product(EDGES[32], repeat=2)))
    want = [REF[mnemonic](int(x), int(y), 0, 32) for x, y in zip(a, b)]
    got = run_chained_imm(cfg, mnemonic, a, None if mnemonic in UNARY else b,
                          bits_in=32, bits_out=32, dtype=1)
    np.testing.assert_array_equal(got, want)


def test_vxm_int8_immediate_uses_low_byte():
    """An int8 op takes the immediate's low byte: 1 + 0x1_05 = 6 and 1 + 0xff = 0
    (saturating, so a full-width immediate would show as 127)."""
    got = run_chained_imm("tiny", "ADDS", np.array([1, 1]), np.array([0x105, 0xFF]),
                          bits_in=8, bits_out=8, dtype=0)
    np.testing.assert_array_equal(got, [6, 0])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_vxm_int8_from_alu_takes_low_byte(cfg):
    """An int8 op reading an ALU takes the low byte of its 32-bit R: R1 = 0x1FF
    is -1 as int8, so CMPGT.i8 ALU1, #0 is 0 and CMPEQ.i8 #-1, ALU1 is -1
    (on all of 511 they would be -1 and 0)."""
    bench = VxmBench(cfg)
    bench.op(T0 - bench.lat.vxm, "VXM1", "MOV", dtype=1, a=IMM, imm=0x1FF)
    bench.op(T0, "VXM0", "CMPGT", dtype=0, a=alu(1), b=IMM, imm=0, **dst(E, 0))
    bench.op(T0 + 1, "VXM0", "CMPEQ", dtype=0, a=IMM, b=alu(1), imm=-1, **dst(E, 0))
    res = bench.run()
    seen = [from_planes(bench.seen(res, t + bench.lat.vxm, E, 0, 1), 8) for t in (T0, T0 + 1)]
    np.testing.assert_array_equal(seen, [np.zeros(bench.cfg.vl), np.full(bench.cfg.vl, -1)])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_widen(cfg):
    vl = get_config(cfg).vl
    a, _, _ = operand_table(np.random.default_rng(1), 8, vl)
    got = run_streamed(cfg, "WIDEN", a, bits_in=8, bits_out=32)
    np.testing.assert_array_equal(got, a)


def test_narrow_streams():
    a, _, _ = operand_table(np.random.default_rng(2), 32, get_config("ulx3s").vl)
    got = run_streamed("ulx3s", "NARROW", a, bits_in=32, bits_out=8)
    np.testing.assert_array_equal(got, expect(lambda x: sat(x, 8), a))


def test_narrow_chained():
    a = np.array(EDGES[32] + [128, -129, 127, -128])
    got = run_chained_imm("tiny", "NARROW", a, bits_in=32, bits_out=8)
    np.testing.assert_array_equal(got, [sat(int(x), 8) for x in a])


def ref_requant(x, mult, shift, zp):
    q = round(Fraction(x * mult, 1 << shift))     # Fraction rounds half to even
    return sat(q + zp, 8)


REQUANT_CASES = [
    # (mult, shift, zp): ties at shift 1 (x odd), at shift 2 (x = 2 mod 4) ...
    (1, 1, 0),
    (1, 2, 0),
    (3, 2, -3),
    (1, 0, 0),                      # no rounding: plain saturation
    ((1 << 24) - 1, 40, 5),
    ((1 << 24) - 1, 63, -128),
    (1 << 23, 24, 127),
]
TIES = [1, 3, 5, -1, -3, -5, 2, 6, -2, -6, 7, -7, 254, 255, 256, -255, -256, -257]


@pytest.mark.parametrize("mult,shift,zp", REQUANT_CASES)
def test_requant_streams(mult, shift, zp):
    vl = get_config("ulx3s").vl
    a, _, _ = operand_table(np.random.default_rng(shift), 32, vl)
    a.ravel()[:len(TIES)] = TIES
    got = run_streamed("ulx3s", "REQUANT", a, bits_in=32, bits_out=8, mult=mult, shift=shift, zp=zp)
    np.testing.assert_array_equal(got, expect(lambda x: ref_requant(x, mult, shift, zp), a))


@pytest.mark.parametrize("mult,shift,zp", REQUANT_CASES[:4])
def test_requant_chained(mult, shift, zp):
    a = np.array(TIES + EDGES[32])
    got = run_chained_imm("tiny", "REQUANT", a, bits_in=32, bits_out=8, mult=mult, shift=shift, zp=zp)
    np.testing.assert_array_equal(got, [ref_requant(int(x), mult, shift, zp) for x in a])


def ref_requant_zr(x, mult, shift, zp):
    """REQUANT with ``zr=1``: the zero point added before rounding half to even."""
    return sat(round(Fraction(x * mult, 1 << shift) + zp), 8)


@pytest.mark.parametrize("mult,shift,zp", [(1, 1, -9), (1, 1, 1), (1, 2, -3), (3, 2, 127),
                                           (1, 1, -128), (1, 2, 0), ((1 << 24) - 1, 40, 5)])
def test_requant_zero_point_before_rounding(mult, shift, zp):
    """``zr=1`` on streamed ties (odd zero points move them) and random int32 values."""
    vl = get_config("ulx3s").vl
    a, _, _ = operand_table(np.random.default_rng(shift + 100), 32, vl)
    a.ravel()[:len(TIES)] = TIES
    got = run_streamed("ulx3s", "REQUANT", a, bits_in=32, bits_out=8, mult=mult, shift=shift,
                       zp=zp, zr=1)
    want = expect(lambda x: ref_requant_zr(x, mult, shift, zp), a)
    np.testing.assert_array_equal(got, want)
    if zp % 2 and mult == 1:                        # the ties do land on the other side
        assert np.any(want != expect(lambda x: ref_requant(x, mult, shift, zp), a))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_lut(cfg):
    """LUT: table[lane][a & 0xFF], with a different host-loaded table per lane."""
    c = get_config(cfg)
    rng = np.random.default_rng(3)
    table = rng.integers(-128, 128, (c.vl, 256)).astype(np.int8)
    a = rng.integers(-128, 128, (12, c.vl))
    a[0, :] = -128
    a[1, :] = 127
    got = run_streamed_with_lut(cfg, a, table)
    want = np.array([[table[lane, int(x) & 0xFF] for lane, x in enumerate(row)] for row in a])
    np.testing.assert_array_equal(got, want)


def run_streamed_with_lut(cfg, a, table):
    bench = VxmBench(cfg)
    bench.p.lut(table)
    times = [T0 + k for k in range(len(a))]
    bench.feed(times, E, 0, a, 8)
    for t in times:
        bench.op(t, "VXM0", "LUT", a=src(E, 0), b=ZERO, **dst(E, 0))
    res = bench.run()
    return np.array([from_planes(bench.seen(res, t + bench.lat.vxm, E, 0, 1), 8) for t in times])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_lutw_then_lut(cfg):
    """LUTW writes entry `index` of every lane's table with that lane's value;
    a LUT issued in the next cycle reads it, one issued before reads the old one."""
    c = get_config(cfg)
    rng = np.random.default_rng(4)
    table = rng.integers(-128, 128, (c.vl, 256)).astype(np.int8)
    index = 200                                    # as an int8 index byte: -56
    new = rng.integers(-128, 128, c.vl)
    bench = VxmBench(cfg)
    bench.p.lut(table)
    t = T0
    keys = np.full((2, c.vl), index - 256)
    bench.feed([t - 1, t + 1], E, 0, keys, 8)
    bench.feed([t], W, 0, new[None], 8)
    bench.op(t - 1, "VXM0", "LUT", a=src(E, 0), b=ZERO, **dst(E, 0))
    bench.op(t, "VXM0", "LUTW", a=src(W, 0), b=ZERO, index=index)
    bench.op(t + 1, "VXM0", "LUT", a=src(E, 0), b=ZERO, **dst(E, 0))
    res = bench.run()
    before = from_planes(bench.seen(res, t - 1 + bench.lat.vxm, E, 0, 1), 8)
    after = from_planes(bench.seen(res, t + 1 + bench.lat.vxm, E, 0, 1), 8)
    np.testing.assert_array_equal(before, table[:, index])
    np.testing.assert_array_equal(after, new)
    # LUTW leaves the result register alone and emits nothing: in t + vxm the
    # stream east of the VXM carries only what passed through.
    assert not bench.seen(res, t + bench.lat.vxm, E, 0, 1).any()


# -- MXM --------------------------------------------------------------------------

class MxmBench:
    """Runs a list of MXM steps, one per cycle, feeding each from a MEM slice
    west of the MXM so its vector arrives exactly in its issue cycle:
    weight columns from MEM_E0 (stream E0), activations from MEM_E1 (E1).
    ``ACC`` results are read one hop west of the MXM, from the trace."""

    def __init__(self, cfg, first=T0):
        self.cfg = get_config(cfg)
        self.fp = self.cfg.floorplan
        self.mxm = self.fp.slice("MXM_E")
        self.p = Program(self.cfg)
        self.first = first
        self.steps = []

    def add(self, mnemonic, vector=None, **fields):
        self.steps.append((mnemonic, vector, fields))
        return self

    def run(self):
        lat = self.cfg.latency
        feeds = {"LW": ("MEM_E0", 0), "ABC": ("MEM_E1", 1)}
        accs = []
        for j, (m, vec, f) in enumerate(self.steps):
            t = self.first + j
            if m in feeds:
                sl, s = feeds[m]
                self.p.data(sl, j, np.asarray(vec).astype(np.int8).view(np.uint8))
                hops = self.mxm.pos - self.fp.slice(sl).pos
                self.p.at(t - lat.mem_read - hops, sl, "READ", dir=E, stream=s, addr=j)
                f = {"dir": E, "stream": s, **f}
            if m == "ACC":
                f = {"dir": W, "stream": 0, **f}
                accs.append(t)
            elif f.get("emit"):                    # a fused ACC at the accumulate cycle
                accs.append(t + lat.mxm_abc)
            self.p.at(t, "MXM_E", m, **f)
        self.p.hold_until(max([self.first + len(self.steps)] + accs) + lat.mxm_acc + 2)
        res = self.p.run(trace=True)
        assert res.errors == 0, res.events
        tr = res.trace
        return res, [planes_i32(tr.west[t + lat.mxm_acc + 1, self.mxm.pos - 1, 0:SG4]) for t in accs]


def load_weights(bench, w):
    for col in range(w.shape[1]):
        bench.add("LW", w[:, col], col=col, count=0)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mxm_matmul(cfg):
    """p[n] = sum_r a[r] W[r][n] for a VL x VL weight tile, three activations."""
    c = get_config(cfg)
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (c.vl, c.vl))
    w[:, 0] = -128
    acts = rng.integers(-128, 128, (3, c.vl))
    acts[0] = -128                                 # the largest magnitude sum
    bench = MxmBench(cfg)
    load_weights(bench, w)
    bench.add("IW")
    for i, a in enumerate(acts):
        bench.add("ABC", a, slot=i, acc=0)
    for _ in range(c.latency.mxm_abc):
        bench.add("IW")                            # wait for the last accumulate
    for i in range(len(acts)):
        bench.add("ACC", slot=i)
    _, got = bench.run()
    np.testing.assert_array_equal(np.array(got), acts @ w)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mxm_double_buffer_and_accumulate(cfg):
    """Columns of W2 load into the shadow buffer while W1 multiplies; after IW
    the second pass multiplies by W2 and accumulates: slot = a1 W1 + a2 W2.
    LW with count > 1 takes consecutive streams as consecutive columns."""
    c = get_config(cfg)
    rng = np.random.default_rng(6)
    w1, w2 = rng.integers(-128, 128, (2, c.vl, c.vl))
    a1, a2 = rng.integers(-128, 128, (2, c.vl))
    bench = MxmBench(cfg)
    load_weights(bench, w1)
    bench.add("IW")
    half = c.vl // 2
    for col in range(half):
        bench.add("LW", w2[:, col], col=col, count=0)
    bench.add("ABC", a1, slot=2, acc=0)            # W1 is still the active one
    for col in range(half, c.vl):
        bench.add("LW", w2[:, col], col=col, count=0)
    bench.add("IW")
    bench.add("ABC", a2, slot=2, acc=1)
    for _ in range(c.latency.mxm_abc):
        bench.add("IW")                            # idempotent: shadow == active
    bench.add("ACC", slot=2)
    _, (got,) = bench.run()
    np.testing.assert_array_equal(got, a1 @ w1 + a2 @ w2)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mxm_fused_acc(cfg):
    """ABC with emit = 1 emits the slot right after its own accumulate, as an
    ACC in that cycle would: first a1 W, then (a1 + a2) W from the next ABC."""
    c = get_config(cfg)
    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, (c.vl, c.vl))
    a1, a2 = rng.integers(-128, 128, (2, c.vl))
    bench = MxmBench(cfg)
    load_weights(bench, w)
    bench.add("IW")
    bench.add("ABC", a1, slot=5, acc=0, emit=1, edir=W, estream=0)
    bench.add("ABC", a2, slot=5, acc=1, emit=1, edir=W, estream=0)
    _, got = bench.run()
    np.testing.assert_array_equal(np.array(got), [a1 @ w, (a1 + a2) @ w])


def test_mxm_lw_many_columns():
    """LW W0, col, count with count > 1: column col + i from stream i, fed from
    the four MEM slices east of the VXM in one cycle (ulx3s)."""
    c = get_config("ulx3s")
    fp = c.floorplan
    lat = c.latency
    mxm = fp.slice("MXM_E")
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, (c.vl, c.vl))
    a = rng.integers(-128, 128, c.vl)
    p = Program(c)
    n = c.mem_slices                               # columns per LW: one per slice
    t = T0
    for g in range(c.vl // n):
        for i in range(n):
            sl = fp.slice(f"MEM_E{i}")
            p.data(sl.name, g, w[:, g * n + i].astype(np.int8).view(np.uint8))
            p.at(t + g - lat.mem_read - (mxm.pos - sl.pos), sl.name, "READ", dir=E, stream=i, addr=g)
        p.at(t + g, "MXM_E", "LW", dir=E, stream=0, col=g * n, count=n - 1)
    t += c.vl // n
    p.at(t, "MXM_E", "IW")
    p.data("MEM_E0", 100, a.astype(np.int8).view(np.uint8))
    # the activations follow the last columns on E0; the sums go back on W0..W3
    p.at(t + 1 - lat.mem_read - (mxm.pos - fp.slice("MEM_E0").pos), "MEM_E0", "READ",
         dir=E, stream=0, addr=100)
    p.at(t + 1, "MXM_E", "ABC", dir=E, stream=0, slot=7, acc=0)
    acc_t = t + 1 + lat.mxm_abc
    p.at(acc_t, "MXM_E", "ACC", dir=W, stream=0, slot=7)
    p.hold_until(acc_t + lat.mxm_acc + 2)
    res = p.run(trace=True)
    assert res.errors == 0, res.events
    got = planes_i32(res.trace.west[acc_t + lat.mxm_acc + 1, mxm.pos - 1, 0:SG4])
    np.testing.assert_array_equal(got, a @ w)


# -- SXM --------------------------------------------------------------------------

def ref_sxm(m, x, n, cfg, perm=None):
    VL, L = cfg.vl, cfg.lanes
    out = []
    for lane in range(VL):
        if m == "SHUP":
            out.append(x[lane - n] if lane >= n else 0)
        elif m == "SHDN":
            out.append(x[lane + n] if lane + n < VL else 0)
        elif m == "ROT":
            out.append(x[(lane - n) % VL])
        elif m == "PERM":
            out.append(x[perm[lane]])
        else:   # DIST
            out.append(x[(lane // L) * L + n])
    return np.array(out, np.uint8)


def sxm_run(cfg, ops, inputs, perms=None, side="E"):
    """``ops``: (mnemonic, arg) run on SXM_<side> one per cycle, each on the
    vector(s) ``inputs[k]`` ([nstreams, VL]) arriving on streams 0.. from
    MEM_<side>0.. (flowing outwards); results flow back towards the VXM on
    streams 0.. and are read one hop inwards of the SXM."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    sxm = fp.slice(f"SXM_{side}")
    inwards = -1 if side == "E" else 1             # position step towards the VXM
    d_in, d_out = (E, W) if side == "E" else (W, E)
    p = Program(c)
    for map_id, lanes in (perms or {}).items():
        p.perm(sxm.name, map_id, lanes)
    # the first READ far enough from the SXM to be issued at cycle 0 or later
    far = max(abs(sxm.pos - fp.slice(f"MEM_{side}{i}").pos) for i in range(len(inputs[0])))
    base = max(T0, lat.mem_read + far)
    times = []
    for k, ((m, arg), vecs) in enumerate(zip(ops, inputs)):
        t = base + k
        for i, v in enumerate(vecs):
            sl = fp.slice(f"MEM_{side}{i}")
            p.data(sl.name, k, v)
            p.at(t - lat.mem_read - abs(sxm.pos - sl.pos), sl.name, "READ", dir=d_in, stream=i, addr=k)
        p.at(t, sxm.name, m, sdir=d_in, sstream=0, ddir=d_out, dstream=0, arg=arg)
        times.append(t)
    p.hold_until(times[-1] + lat.sxm + 2)
    res = p.run(trace=True)
    assert res.errors == 0, res.events
    hops = res.trace.west if d_out == W else res.trace.east
    return [hops[t + lat.sxm + 1, sxm.pos + inwards] for t in times]


@pytest.mark.parametrize("cfg,side", [("tiny", "E"), ("ulx3s", "E"), ("groq", "W")])
def test_sxm_lane_ops(cfg, side):
    c = get_config(cfg)
    rng = np.random.default_rng(8)
    perm = rng.permutation(c.vl)
    ops = [("SHUP", 0), ("SHUP", 1), ("SHUP", c.vl - 1), ("SHDN", 1), ("SHDN", c.vl - 1),
           ("ROT", 1), ("ROT", c.vl - 1), ("PERM", 0), ("PERM", 1), ("DIST", 0),
           ("DIST", c.lanes - 1)]
    xs = [random_bytes(rng, 1, c.vl) for _ in ops]
    got = sxm_run(cfg, ops, xs, perms={1: [int(v) for v in perm]}, side=side)
    for (m, arg), x, y in zip(ops, xs, got):
        want = ref_sxm(m, x[0], arg, c, perm=perm if arg == 1 else range(c.vl))
        np.testing.assert_array_equal(y[0], want, err_msg=f"{m} {arg}")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_sxm_transpose(cfg):
    """TRANS: result stream i, lane k*L + j = source stream j, lane k*L + i."""
    c = get_config(cfg)
    L = c.lanes
    rng = np.random.default_rng(9)
    src_streams = random_bytes(rng, L, c.vl)
    (got,) = sxm_run(cfg, [("TRANS", 0)], [src_streams])
    for i in range(L):
        for k in range(c.tiles):
            for j in range(L):
                assert got[i, k * L + j] == src_streams[j, k * L + i]


# -- MEM --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_mem_read_write_rw(cfg):
    """Copy 5 words MEM_W0 -> MEM_E1 with READ / WRITE, and in the same run swap
    data between the banks of MEM_E0 with RW (read bank 0, write bank 1)."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    rng = np.random.default_rng(10)
    words = random_bytes(rng, 5, c.vl)
    back = random_bytes(rng, 5, c.vl)
    p = Program(c)
    p.data("MEM_W0", 3, words)
    p.data("MEM_E1", 0, back)
    w0, e0, e1 = (fp.slice(n) for n in ("MEM_W0", "MEM_E0", "MEM_E1"))
    # MEM_W0 -> east on E2 -> MEM_E1 writes it at 40 + k
    for k in range(5):
        t = 2 + k
        p.at(t, "MEM_W0", "READ", dir=E, stream=2, addr=3 + k)
        p.at(t + lat.mem_read + e1.pos - w0.pos, "MEM_E1", "WRITE", dir=E, stream=2, addr=40 + k)
    # MEM_E1 words 0..4 -> west on W3 -> MEM_E0 writes them into bank 1 with RW,
    # whose read half sends MEM_E0's bank-0 words 0..4 west to MEM_W0 (word 60+k)
    p.data("MEM_E0", 0, words[::-1])
    for k in range(5):
        t = 20 + k
        p.at(t, "MEM_E1", "READ", dir=W, stream=3, addr=k)
        t_rw = t + lat.mem_read + e1.pos - e0.pos
        p.at(t_rw, "MEM_E0", "RW", rdir=W, rstream=1, raddr=k,
             wdir=W, wstream=3, waddr=c.bank_words + k)
        p.at(t_rw + lat.mem_read + e0.pos - w0.pos, "MEM_W0", "WRITE", dir=W, stream=1, addr=60 + k)
    res = p.run()
    assert res.errors == 0, res.events
    np.testing.assert_array_equal(res.memory["MEM_E1"][40:45], words)
    np.testing.assert_array_equal(res.memory["MEM_E0"][c.bank_words:c.bank_words + 5], back)
    np.testing.assert_array_equal(res.memory["MEM_W0"][60:65], words[::-1])
    np.testing.assert_array_equal(res.memory["MEM_W0"][3:8], words)       # reads leave it alone
    np.testing.assert_array_equal(res.memory["MEM_E1"][0:5], back)
    untouched = np.ones(c.mem_words, bool)
    untouched[[*range(0, 5), *range(40, 45)]] = False
    assert not res.memory["MEM_E1"][untouched].any()


def test_outputs_decode_i32():
    """result.outputs goes through ProgramImage.read_output: an i32 output of
    one slice is 4 words per vector (here written straight into the image)."""
    c = get_config("tiny")
    vals = np.array([-(1 << 31), -1, 12345678, (1 << 31) - 1])
    p = Program(c).data("MEM_E1", 8, i32_planes(vals)).output("y", "MEM_E1", 8, 1, "i32")
    res = p.run()
    np.testing.assert_array_equal(res.outputs["y"], vals[None])
    assert isa.ErrorFlag(res.errors) == 0
