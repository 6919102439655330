"""The MEM slice gateware (rtl/mem.py): host access and READ / WRITE / RW timing.

Timing rules (docs/ARCHITECTURE.md section 4): a READ issued in global cycle g by tile k
emits in g + Latencies.mem_read on its stream and direction, tile k's lanes only; a
WRITE in g stores the stream value tile k sees in g; a READ in g + 1 sees it.
"""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from firmware.isa import Instr, encode
from firmware.machine import get_config, SliceKind

from rtl.mem import MemSlice


C = get_config("tiny")
T, L, S, VL = C.tiles, C.lanes, C.streams, C.vl
SLICE = C.floorplan.slice("MEM_E0")
#: Every timing test runs on tiny as it is (mem_read = 1) and with the read word held a
#: cycle (``mem_read_reg``, as on the ULX3S: mem_read = 2).
CONFIGS = {"tiny": C, "held": C.with_(mem_read_reg=True)}
by_config = pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))


def I(mnemonic, **fields):
    return encode(Instr(SliceKind.MEM, mnemonic, fields))


def stream_value(g, direction, k, s):
    """What the test drives on the incoming streams: distinct for every cycle,
    direction, tile, stream and lane, so a WRITE of the wrong one shows."""
    return [(g * 37 + direction * 101 + k * 17 + s * 5 + lane * 3 + 1) % 256
            for lane in range(L)]


def run_mem(host_words, schedule, cycles, config=C):
    """Write ``host_words`` ({addr: VL bytes}), then run ``schedule`` ({(g, k): word}:
    tile k issues word in global cycle g) for ``cycles`` cycles while the incoming
    streams carry ``stream_value``. Returns per cycle the emits and, at the end, the
    host's view of every address (read ``mem_read`` cycles after its address)."""
    dut = MemSlice(config, SLICE)
    lat = config.latency.mem_read
    trace = []
    final = {}

    async def tb(ctx):
        for a, v in host_words.items():
            ctx.set(dut.host, {"addr": a, "we": 1, "wdata": [int(x) for x in v]})
            await ctx.tick()
        ctx.set(dut.host.we, 0)
        for g in range(cycles):
            for k in range(T):
                word = schedule.get((g, k))
                ctx.set(dut.issue[k], {"valid": word is not None, "word": word or 0})
                for s in range(S):
                    ctx.set(dut.e_in[k][s], stream_value(g, 0, k, s))
                    ctx.set(dut.w_in[k][s], stream_value(g, 1, k, s))
            emits = {}
            for k in range(T):
                for d, (emit, out) in enumerate([(dut.e_emit, dut.e_out), (dut.w_emit, dut.w_out)]):
                    bits = ctx.get(emit[k])
                    for s in range(S):
                        if bits >> s & 1:
                            emits[(k, d, s)] = [ctx.get(out[k][s][lane]) for lane in range(L)]
            trace.append(emits)
            await ctx.tick()
        for k in range(T):
            ctx.set(dut.issue[k].valid, 0)
        for a in range(C.mem_words + lat - 1):
            ctx.set(dut.host.addr, min(a, C.mem_words - 1))
            await ctx.tick()
            if a >= lat - 1:
                final[a - lat + 1] = np.array(list(ctx.get(dut.host_rdata)), np.uint8)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return trace, final


def lanes(k):
    return slice(k * L, (k + 1) * L)


@by_config
def test_host_write_read(config):
    rng = np.random.default_rng(1)
    words = {a: rng.integers(0, 256, VL, dtype=np.uint8)
             for a in (0, 1, C.bank_words - 1, C.bank_words, C.mem_words - 1)}
    _trace, final = run_mem(words, {}, 0, config)
    for a in range(C.mem_words):
        np.testing.assert_array_equal(final[a], words.get(a, np.zeros(VL, np.uint8)),
                                      err_msg=f"address {a}")


@by_config
def test_read_emits_mem_read_cycles_later_per_tile(config):
    LAT = config.latency.mem_read
    data = {5: np.arange(VL, dtype=np.uint8) + 40, C.bank_words + 2: np.arange(VL) + 90}
    # Tile k runs the staggered program: READ 5 -> E1 at g = k, READ (bank 1) -> W2 at 2 + k.
    schedule = {}
    for k in range(T):
        schedule[(k, k)] = I("READ", addr=5, dir=0, stream=1)
        schedule[(2 + k, k)] = I("READ", addr=C.bank_words + 2, dir=1, stream=2)
    trace, _ = run_mem(data, schedule, 2 + T + LAT + 1, config)
    want = {}
    for k in range(T):
        want.setdefault(k + LAT, {})[(k, 0, 1)] = list(data[5][lanes(k)])
        want.setdefault(2 + k + LAT, {})[(k, 1, 2)] = list(data[C.bank_words + 2][lanes(k)])
    for g, emits in enumerate(trace):
        assert emits == want.get(g, {}), f"cycle {g}"


@by_config
def test_write_then_read_next_cycle(config):
    LAT = config.latency.mem_read
    # Tile k: WRITE E3 -> 7 at g = 1 + k, READ 7 -> W0 at g = 2 + k (the next cycle).
    schedule = {}
    for k in range(T):
        schedule[(1 + k, k)] = I("WRITE", addr=7, dir=0, stream=3)
        schedule[(2 + k, k)] = I("READ", addr=7, dir=1, stream=0)
    trace, final = run_mem({}, schedule, 2 + T + LAT + 1, config)
    stored = np.concatenate([stream_value(1 + k, 0, k, 3) for k in range(T)])
    np.testing.assert_array_equal(final[7], stored)
    for k in range(T):
        assert trace[2 + k + LAT][(k, 1, 0)] == list(stored[lanes(k)])


@by_config
def test_rw_reads_one_bank_writes_the_other(config):
    LAT = config.latency.mem_read
    old = np.arange(VL, dtype=np.uint8) + 7
    raddr, waddr = C.bank_words + 3, 4
    schedule = {(k, k): I("RW", raddr=raddr, rdir=0, rstream=2, waddr=waddr, wdir=1, wstream=1)
                for k in range(T)}
    trace, final = run_mem({raddr: old}, schedule, T + LAT + 1, config)
    np.testing.assert_array_equal(
        final[waddr], np.concatenate([stream_value(k, 1, k, 1) for k in range(T)]))
    np.testing.assert_array_equal(final[raddr], old)
    for k in range(T):
        assert trace[k + LAT] == {(k, 0, 2): list(old[lanes(k)])}


def test_elaborates_the_same_twice():
    """Simulating and then converting one object must not grow second memory ports."""
    dut = MemSlice(C, SLICE)
    assert rtlil.convert(dut) == rtlil.convert(dut)
