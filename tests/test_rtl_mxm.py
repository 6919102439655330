"""MxmSlice in the Amaranth simulator against numpy matrix products (ARCHITECTURE.md section 6)."""

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Elaboratable, Module, Signal

from firmware.isa import Instr, encode
from firmware.machine import SliceKind, get_config
from rtl.mxm import MxmSlice, weighted_product
from rtl_slice_harness import run_slice


CONFIGS = ["tiny", "ulx3s"]
#: A stream count that is not a power of two (the LW rotation takes another path).
ODD_STREAMS = get_config("tiny").with_(name="tiny_s12", streams=12)


def mxm(mnemonic, **fields):
    return encode(Instr(SliceKind.MXM, mnemonic, fields))


def lw(direction, stream, col, count):
    """``LW``: columns ``col .. col+count-1`` from streams ``stream ..`` (count field holds count-1)."""
    return mxm("LW", dir=direction, stream=stream, col=col, count=count - 1)


def abc(direction, stream, slot, acc=0):
    return mxm("ABC", dir=direction, stream=stream, slot=slot, acc=acc)


def acc(direction, stream, slot):
    return mxm("ACC", dir=direction, stream=stream, slot=slot)


class Schedule:
    """One MXM queue's program plus the stream vectors it consumes, in local time."""

    def __init__(self, config):
        self.config = config
        self.program = {}
        self.streams = {}

    def put(self, t, word):
        assert t not in self.program, f"two instructions at local cycle {t}"
        self.program[t] = word

    def stream(self, t, direction, s, vector):
        vecs = self.streams.setdefault(t, {})
        c = self.config
        arr = vecs.setdefault(direction, np.zeros((c.streams, c.vl), np.uint8))
        arr[s] = np.asarray(vector).astype(np.int8).view(np.uint8)

    def load_weights(self, t, weights, direction="W"):
        """LW all columns of ``weights`` from cycle ``t`` on, ``S`` columns per cycle.

        Returns the first free cycle.
        """
        S, VL = self.config.streams, self.config.vl
        for first in range(0, VL, S):
            count = min(S, VL - first)
            for i in range(count):
                self.stream(t, direction, i, weights[:, first + i])
            self.put(t, lw(direction == "W", 0, first, count))
            t += 1
        return t

    def run(self, cycles):
        c = self.config
        return run_slice(c, SliceKind.MXM, lambda: MxmSlice(c, c.floorplan.slice("MXM_E")),
                         self.program, self.streams, cycles)


def rand_int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64)


def as_u32(x):
    return np.asarray(x, dtype=np.int64) & 0xFFFFFFFF


@pytest.mark.parametrize("name", CONFIGS)
def test_matmul_and_acc_timing(name):
    """One ABC against numpy ``a @ W``; ACC one cycle before the accumulate sees the
    old slot, ACC in the accumulate cycle sees the new value; emission at t + 1 only."""
    c = get_config(name)
    rng = np.random.default_rng(1)
    lat = c.latency
    W = rand_int8(rng, (c.vl, c.vl))
    W[0, :] = -128                           # extreme products: (-128) * (-128), 127 * -128
    W[1, :2] = 127
    a = rand_int8(rng, c.vl)
    a[:2] = -128
    s = Schedule(c)
    t = s.load_weights(0, W)
    s.put(t, mxm("IW"))
    t_abc = t + 1
    s.stream(t_abc, "E", 1, a)
    s.put(t_abc, abc(0, 1, slot=2))
    x = t_abc + lat.mxm_abc                  # accumulate cycle
    last = c.streams - 4
    s.put(x - 1, acc(1, last, slot=2))       # too early: still zero
    s.put(x, acc(0, 0, slot=2))              # same cycle as the accumulate: sees it
    tr = s.run(x + 3)

    assert np.array_equal(tr.west[x].group(last), np.zeros(c.vl)), "ACC before the accumulate"
    assert np.array_equal(tr.east[x + 1].group(0), as_u32(a @ W))
    emitted = {t: tr.emitted_streams(t) for t in range(x + 3) if tr.emitted_streams(t)}
    assert emitted == {x: {("W", last + i) for i in range(4)}, x + 1: {("E", i) for i in range(4)}}


@pytest.mark.parametrize("name", CONFIGS)
def test_two_passes_double_buffered(name):
    """slot = a1 @ W1 + a2 @ W2: W2 loads (LW) while ABCs still use W1; back-to-back
    ABC.acc into one slot; a second slot overwritten (acc = 0) after holding data."""
    c = get_config(name)
    rng = np.random.default_rng(2)
    lat = c.latency
    W1, W2 = rand_int8(rng, (c.vl, c.vl)), rand_int8(rng, (c.vl, c.vl))
    a1, a2, a3, b = (rand_int8(rng, c.vl) for _ in range(4))
    s = Schedule(c)
    t = s.load_weights(0, W1, "E")
    s.put(t, mxm("IW"))
    s.stream(t + 1, "E", 2, a1)
    s.put(t + 1, abc(0, 2, slot=5))          # slot 5 = a1 @ W1
    s.stream(t + 2, "W", 3, b)
    s.put(t + 2, abc(1, 3, slot=7))          # slot 7 = b @ W1 (overwritten below)
    t = s.load_weights(t + 3, W2, "W")       # shadow <- W2 while W1 is active
    s.stream(t, "E", 0, a3)
    s.put(t, abc(0, 0, slot=5, acc=1))       # still W1: slot 5 += a3 @ W1
    s.put(t + 1, mxm("IW"))
    s.stream(t + 2, "W", 1, a2)
    s.put(t + 2, abc(1, 1, slot=5, acc=1))   # slot 5 += a2 @ W2
    s.stream(t + 3, "W", 1, a2)
    s.put(t + 3, abc(1, 1, slot=5, acc=1))   # back to back: slot 5 += a2 @ W2
    s.stream(t + 4, "E", 3, a1)
    s.put(t + 4, abc(0, 3, slot=7))          # overwrite: slot 7 = a1 @ W2
    done = t + 4 + lat.mxm_abc
    s.put(done, acc(0, c.streams - 4, slot=5))
    s.put(done + 1, acc(1, 0, slot=7))
    tr = s.run(done + 3)

    want5 = a1 @ W1 + a3 @ W1 + 2 * (a2 @ W2)
    assert np.array_equal(tr.east[done + 1].group(c.streams - 4), as_u32(want5))
    assert np.array_equal(tr.west[done + 2].group(0), as_u32(a1 @ W2))


@pytest.mark.parametrize("name", CONFIGS + [pytest.param(ODD_STREAMS, id="tiny_s12")])
def test_lw_partial_columns(name):
    """LW with a column offset and fewer than S streams, from a stream other than 0:
    every column lands where LW says, untouched columns keep their old weights."""
    c = get_config(name)
    rng = np.random.default_rng(3)
    S, VL = c.streams, c.vl
    lat = c.latency
    W = rand_int8(rng, (VL, VL))
    s = Schedule(c)
    t = s.load_weights(0, W)
    W_new = W.copy()
    first, count, src = VL - 3, 3, S - 3          # columns VL-3 .. VL-1 from streams S-3 ..
    for i in range(count):
        W_new[:, first + i] = rand_int8(rng, VL)
        s.stream(t, "E", src + i, W_new[:, first + i])
    s.put(t, lw(0, src, first, count))
    s.put(t + 1, mxm("IW"))
    a = rand_int8(rng, VL)
    s.stream(t + 2, "W", S - 1, a)
    s.put(t + 2, abc(1, S - 1, slot=c.acc_slots - 1))
    x = t + 2 + lat.mxm_abc
    s.put(x, acc(1, S - 4, slot=c.acc_slots - 1))
    tr = s.run(x + 2)
    assert np.array_equal(tr.west[x + 1].group(S - 4), as_u32(a @ W_new))



# -- the ECP5 netlist's multipliers --------------------------------------------

ECP5 = SimpleNamespace(family="ecp5")
MULT_MODEL = Path(__file__).resolve().parent.parent / "sim" / "models" / "MULT18X18D.v"


#: Cycles of the check: every (activation, weight) pair with a weight loaded every
#: cycle, then as many with loads on some cycles only.
_PAIRS = 1 << 16


def _pair_inputs(step):
    """(activation, weight, load) fed in ``step`` (0 .. 2 * _PAIRS - 1), as int8 values."""
    a, w = step >> 8 & 0xFF, step & 0xFF
    load = 1 if step < _PAIRS else (step ^ step >> 5 ^ step >> 9) & 1
    return (a ^ 0x80) - 0x80, (w ^ 0x80) - 0x80, load


def _checksum(value, product):
    """Rotate the 32-bit ``value`` left by one and XOR the 16-bit ``product`` in."""
    return ((value << 1 | value >> 31) & 0xFFFFFFFF) ^ (product & 0xFFFF)


class _ProductPair(Elaboratable):
    """Both forms of :func:`weighted_product` fed the same inputs (``_pair_inputs``),
    one step a cycle; ``bad`` latches the first step whose products differ
    (``first``), ``total`` is a checksum of the ECP5 form's products
    (``_checksum``), and ``done`` rises after the last."""

    def __init__(self):
        self.done, self.bad = Signal(name="done"), Signal(name="bad")
        self.first = Signal(17, name="first")
        self.total = Signal(32, name="total")

    def elaborate(self, platform):
        m = Module()
        step = Signal(18)                     # bit 17: every step has been fed
        a, w = step[8:16].as_signed(), step[:8].as_signed()
        load = ~step[16] | (step[0] ^ step[5] ^ step[9])
        plain = weighted_product(m, a, w, load, "plain")
        ecp5 = weighted_product(m, a, w, load, "ecp5", ECP5)
        fed, valid = Signal(17), Signal()     # the step whose products show now
        with m.If(~step[17]):
            m.d.sync += step.eq(step + 1)
        m.d.sync += [fed.eq(step[:17]), valid.eq(~step[17]), self.done.eq(step[17] & ~valid)]
        with m.If(valid):
            m.d.sync += self.total.eq(self.total.rotate_left(1) ^ ecp5.as_unsigned())
            with m.If((plain != ecp5) & ~self.bad):
                m.d.sync += [self.bad.eq(1), self.first.eq(fed)]
        return m


def test_ecp5_product_equals_the_plain_one(tmp_path):
    """The ECP5 form (a MULT18X18D holding the weight and the product, simulated by
    ``sim/models/MULT18X18D.v``) against the plain registers and ``*`` that every
    other test runs, under Icarus: every pair of int8 operands, and the weight
    register's enable. The checksum is recomputed here from the inputs, so two
    forms that were both wrong in the same way would still fail."""
    if shutil.which("iverilog") is None:
        pytest.fail("iverilog is not installed (scripts/setup.sh installs it)")
    top = _ProductPair()
    (tmp_path / "pair.v").write_text(verilog.convert(
        top, name="pair", ports=[top.done, top.bad, top.first, top.total]))
    (tmp_path / "tb.v").write_text("""
module tb;
    reg clk = 0, rst = 1;
    wire done, bad; wire [16:0] first; wire [31:0] total;
    pair dut(.clk(clk), .rst(rst), .done(done), .bad(bad), .first(first), .total(total));
    always #1 clk = ~clk;
    initial begin
        #4 rst = 0;
        wait (done);
        $display("bad=%0d first=%0d total=%0d", bad, first, total);
        $finish;
    end
    initial begin #600000 $display("timeout"); $finish; end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", "pair.vvp", "tb.v", "pair.v", str(MULT_MODEL)],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", "pair.vvp"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    found = re.search(r"bad=(\d+) first=(\d+) total=(\d+)", out)
    assert found, f"the simulation did not finish: {out!r}"
    bad, first, total = map(int, found.groups())
    if bad:
        a, w, load = _pair_inputs(first)
        pytest.fail(f"the ECP5 product differs at step {first} (a = {a}, w = {w}, load = {load})")
    expect, weight = 0, 0
    for step in range(2 * _PAIRS):
        a, w, load = _pair_inputs(step)
        expect = _checksum(expect, a * weight)
        weight = w if load else weight
    assert total == expect, (total, expect)


@pytest.mark.parametrize("name", CONFIGS)
def test_ecp5_mxm_has_one_registered_mult18x18d_per_weight(name):
    """Elaborated for an ECP5 the MXM's ``VL x VL`` products are MULT18X18D blocks
    holding the weight and the product; elaborated for simulation there is none."""
    c = get_config(name)
    mxm_slice = next(s for s in c.floorplan.slices if s.kind is SliceKind.MXM)
    text_ecp5 = rtlil.convert(MxmSlice(c, mxm_slice), platform=ECP5)
    text_plain = rtlil.convert(MxmSlice(c, mxm_slice))
    cells = re.findall(r"cell \\MULT18X18D .*?\n  end", text_ecp5, re.S)
    assert len(cells) == c.vl * c.vl
    assert all('parameter \\REG_OUTPUT_CLK "CLK0"' in cell
               and 'parameter \\REG_INPUTB_CLK "CLK0"' in cell for cell in cells)
    assert "MULT18X18D" not in text_plain
