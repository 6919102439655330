"""The golden model's timing, cycle by cycle, against docs/ARCHITECTURE.md.

Every expected cycle below is derived in the test from the rules (``t + d + h``
for a value, the ICU table for queues, ``cycles = H + T``), with the latencies
taken from ``Config.latency``.
"""

import numpy as np
import pytest

from firmware import isa
from firmware.image import ImageError
from firmware.isa import ErrorFlag
from firmware.machine import SliceKind, get_config
from golden_util import E, W, IMM, SG4, Program, alu, dst, planes_i32, src
from sim.golden import ErrorEvent, GoldenModel, SimulationTimeout, run_image


CONFIGS = ["tiny", "ulx3s"]


def issue_cycles(result, queue):
    """{cycle: Instr} of the ordinary instructions ``queue`` issued."""
    return {t: d[queue] for t, d in enumerate(result.trace.issued) if queue in d}


def flags_at(result):
    return [(e.cycle, e.flag, e.where) for e in result.events]


def vector(cfg, first=1):
    return (np.arange(cfg.vl) + first) % 256


# -- streams ------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_read_is_seen_h_hops_away_at_t_plus_1_plus_h(cfg):
    """A READ at t rides its stream one hop per cycle: position p reads it at
    t + mem_read + |p - pos|, and nothing else ever appears on any stream."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    N = fp.width
    east_src, west_src = fp.slice("MEM_E0"), fp.slice("MEM_W0")
    ve, vw = vector(c, 1), vector(c, 101)
    te, tw = 3, 5
    p = Program(c).data("MEM_E0", 9, ve).data("MEM_W0", 4, vw)
    p.at(te, "MEM_E0", "READ", dir=E, stream=2, addr=9)
    p.at(tw, "MEM_W0", "READ", dir=W, stream=1, addr=4)
    p.hold_until(tw + N + 2)
    res = p.run(trace=True)
    assert res.errors == 0
    want_e = np.zeros_like(res.trace.east)
    want_w = np.zeros_like(res.trace.west)
    for pos in range(east_src.pos + 1, N):
        want_e[te + lat.mem_read + (pos - east_src.pos), pos, 2] = ve
    for pos in range(0, west_src.pos):
        want_w[tw + lat.mem_read + (west_src.pos - pos), pos, 1] = vw
    np.testing.assert_array_equal(res.trace.east, want_e)
    np.testing.assert_array_equal(res.trace.west, want_w)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_write_visible_to_read_from_next_cycle(cfg):
    """WRITE at t stores the stream value of t; a READ at t + 1 returns it and
    one at t - 1 the old word."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    src, mem = fp.slice("MEM_W0"), fp.slice("MEM_E0")
    old, new = vector(c, 1), vector(c, 50)
    p = Program(c).data("MEM_W0", 0, new).data("MEM_E0", 7, old)
    t = 6
    p.at(t - lat.mem_read - (mem.pos - src.pos), "MEM_W0", "READ", dir=E, stream=0, addr=0)
    p.at(t - 1, "MEM_E0", "READ", dir=E, stream=1, addr=7)
    p.at(t, "MEM_E0", "WRITE", dir=E, stream=0, addr=7)
    p.at(t + 1, "MEM_E0", "READ", dir=E, stream=3, addr=7)
    p.hold_until(t + 6)
    res = p.run(trace=True)
    assert res.errors == 0
    seen = res.trace.east[:, mem.pos + 1]
    np.testing.assert_array_equal(seen[t - 1 + lat.mem_read + 1, 1], old)
    np.testing.assert_array_equal(seen[t + 1 + lat.mem_read + 1, 3], new)
    np.testing.assert_array_equal(res.memory["MEM_E0"][7], new)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_vxm_latency_and_chaining(cfg):
    """R_j changes exactly vxm cycles after the op issues: a chained read at
    t + vxm - 1 sees the old value, at t + vxm the new one; an int8 result is
    sign-extended in R; an emission at t + vxm is read one hop away a cycle later."""
    c = get_config(cfg)
    lat, v = c.latency, c.floorplan.vxm.pos
    d = lat.vxm
    p = Program(c)
    p.at(0, "VXM1", "MOV", dtype=0, a=IMM, imm=7)        # R1 = 7 from d
    p.at(2, "VXM1", "MOV", dtype=0, a=IMM, imm=-1)       # R1 = -1 from 2 + d
    reads = [d, 2 + d - 1, 2 + d, 2 + d + 1]
    for t in reads:
        p.at(t, "VXM0", "MOV", dtype=1, a=alu(1), **dst(E, 0))
    p.hold_until(reads[-1] + d + 3)
    res = p.run(trace=True)
    assert res.errors == 0
    got = {t: int(planes_i32(res.trace.east[t + d + 1, v + 1, 0:SG4])[0]) for t in reads}
    assert got == {d: 7, 2 + d - 1: 7, 2 + d: -1, 2 + d + 1: -1}
    # one hop away the stream carries results exactly in the cycles t + d + 1
    carried = {t for t in range(res.trace.ncycles) if res.trace.east[t, v + 1, 0].any()}
    assert carried == {t + d + 1 for t in reads}


# -- the ICU --------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_nop(cfg):
    c = get_config(cfg)
    p = Program(c)
    p.at(1, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.then("MEM_E0", "NOP", n=7)
    p.then("MEM_E0", "READ", dir=E, stream=0, addr=1)
    p.then("MEM_E0", "NOP", n=1)
    p.then("MEM_E0", "READ", dir=E, stream=0, addr=2)
    res = p.run(trace=True)
    got = issue_cycles(res, "MEM_E0")
    assert {t: i.addr for t, i in got.items()} == {1: 0, 9: 1, 11: 2}
    assert res.cycles == 12 + c.tiles


@pytest.mark.parametrize("cfg", CONFIGS)
def test_repeat_walk(cfg):
    """READ 10 at 2; REPEAT 3, 2, 5 -> 15, 20, 25 at 4, 6, 8; REPEAT 2, 1, -1
    continues the walk -> 24, 23 at 9, 10; the next word is reached at 11."""
    c = get_config(cfg)
    p = Program(c)
    p.at(2, "MEM_E0", "READ", dir=E, stream=0, addr=10)
    p.repeat("MEM_E0", 3, 2, 5)
    p.repeat("MEM_E0", 2, 1, -1)
    p.then("MEM_E0", "WRITE", dir=W, stream=1, addr=99)
    res = p.run(trace=True)
    assert res.errors == 0
    got = {t: (i.mnemonic, i.addr) for t, i in issue_cycles(res, "MEM_E0").items()}
    assert got == {2: ("READ", 10), 4: ("READ", 15), 6: ("READ", 20), 8: ("READ", 25),
                   9: ("READ", 24), 10: ("READ", 23), 11: ("WRITE", 99)}
    assert res.cycles == 12 + c.tiles


def test_repeat_after_nop_and_every_address_field():
    """A REPEAT may follow a NOP when t0 + d is not in the past; RW advances
    both of its address fields."""
    c = get_config("tiny")
    p = Program(c)
    p.at(0, "MEM_E0", "RW", rdir=E, rstream=0, raddr=3, wdir=W, wstream=1, waddr=c.bank_words + 8)
    p.then("MEM_E0", "NOP", n=2)                   # cycles 1, 2
    p.repeat("MEM_E0", 2, 3, 4)                    # reached at 3 = 0 + 3: legal
    res = p.run(trace=True)
    assert res.errors == 0
    got = {t: (i.raddr, i.waddr) for t, i in issue_cycles(res, "MEM_E0").items()}
    b = c.bank_words
    assert got == {0: (3, b + 8), 3: (7, b + 12), 6: (11, b + 16)}
    assert res.cycles == 7 + c.tiles


def repeat_no_previous(p):
    p.repeat("MEM_E0", 2, 1, 1)
    return 0


def repeat_in_the_past(p):
    p.at(0, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.then("MEM_E0", "NOP", n=3)                   # REPEAT reached at 4
    p.repeat("MEM_E0", 1, 2, 0)                    # first repetition 0 + 2 < 4
    return 4


def repeat_one_cycle_late(p):
    p.at(0, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.then("MEM_E0", "NOP", n=2)                   # REPEAT reached at 3
    p.repeat("MEM_E0", 1, 2, 0)                    # first repetition 0 + 2 = 3 - 1
    return 3


def repeat_zero_count(p):
    p.at(0, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.repeat("MEM_E0", 0, 1, 0)
    return 1


def repeat_zero_distance(p):
    p.at(0, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.repeat("MEM_E0", 2, 0, 0)
    return 1


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("build", [repeat_no_previous, repeat_in_the_past, repeat_one_cycle_late,
                                   repeat_zero_count, repeat_zero_distance])
def test_repeat_illegal(cfg, build):
    """An illegal REPEAT raises ILLEGAL_INSTR in the cycle it is reached,
    issues nothing, and stops every queue (here a WRITE planned later)."""
    c = get_config(cfg)
    p = Program(c).data("MEM_W0", 0, vector(c))
    p.at(20, "MEM_W0", "WRITE", dir=E, stream=0, addr=0)     # must never happen
    t = build(p)
    res = p.run(trace=True)
    assert flags_at(res) == [(t, ErrorFlag.ILLEGAL_INSTR, "MEM_E0")]
    assert res.errors == ErrorFlag.ILLEGAL_INSTR
    assert res.cycles == t + 1 + c.tiles
    assert [t for t in issue_cycles(res, "MEM_E0")] == ([0] if t else [])
    np.testing.assert_array_equal(res.memory["MEM_W0"][0], vector(c))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_sync_notify(cfg):
    """NOTIFY at 5: SYNCs reached at 0 and at 5 (processed before and after the
    notifying queue) pass at 6, so their next instruction issues at 7; a SYNC
    reached at 10 passes at once and its next instruction issues at 11."""
    c = get_config(cfg)
    n = c.latency.notify
    p = Program(c)
    p.at(5, "MEM_W0", "NOTIFY")
    waits = {"MEM_E0": 0, "MEM_W1": 5, "SXM_E": 5, "MEM_E1": 10}
    for q, t in waits.items():
        p.at(t, q, "SYNC")
        if q.startswith("MEM"):
            p.then(q, "READ", dir=E, stream=0, addr=1)
        else:
            p.then(q, "ROT", sdir=E, sstream=0, ddir=W, dstream=0, arg=1)
    res = p.run(trace=True)
    assert res.errors == 0
    got = {q: list(issue_cycles(res, q)) for q in waits}
    assert got == {"MEM_E0": [5 + n + 1], "MEM_W1": [5 + n + 1], "SXM_E": [5 + n + 1],
                   "MEM_E1": [11]}
    assert res.cycles == 12 + c.tiles


@pytest.mark.parametrize("cfg", CONFIGS)
def test_deadlock_at_start(cfg):
    c = get_config(cfg)
    p = Program(c)
    p.at(0, "MEM_E0", "SYNC")
    p.at(0, "VXM1", "SYNC")
    res = p.run()
    assert flags_at(res) == [(0, ErrorFlag.DEADLOCK, "ICU")]
    assert res.cycles == 1 + c.tiles


@pytest.mark.parametrize("cfg", CONFIGS)
def test_deadlock_when_last_other_queue_halts(cfg):
    """A queue waits from 0; the only other running queue halts at 5: from
    then on nobody can notify, so DEADLOCK is raised at 5."""
    c = get_config(cfg)
    p = Program(c)
    p.at(0, "MEM_E0", "SYNC")
    p.at(5, "MEM_W0", "HALT")
    res = p.run()
    assert flags_at(res) == [(5, ErrorFlag.DEADLOCK, "ICU")]
    assert res.cycles == 6 + c.tiles


# -- end of program ---------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycles_is_last_halt_plus_tiles(cfg):
    c = get_config(cfg)
    assert run_image(Program(c).image()).cycles == c.tiles          # every queue halts at 0
    p = Program(c)
    p.at(13, "VXM0", "HALT")
    p.at(30, "MEM_E1", "HALT")
    p.at(4, "MXM_E", "IW")
    assert p.run().cycles == 30 + c.tiles


def test_end_of_instruction_memory_halts():
    c = get_config("tiny")
    p = Program(c)
    for _ in range(c.queue_depth):
        p.then("MEM_E0", "NOP", n=2)
    res = p.run()
    assert res.errors == 0
    assert res.cycles == 2 * c.queue_depth + c.tiles


# -- the error stop ---------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_bank_conflict_stops_and_is_not_executed(cfg):
    """RW in one bank at 3: BANK_CONFLICT at 3, neither its read nor its write
    happens, instructions issued at 3 by other queues still act, nothing issues
    from 4 on (H = 4)."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    e0, w0 = fp.slice("MEM_E0"), fp.slice("MEM_W0")
    p = Program(c).data("MEM_E0", 1, vector(c, 1)).data("MEM_W0", 0, vector(c, 9))
    p.at(3, "MEM_E0", "RW", rdir=E, rstream=0, raddr=1, wdir=W, wstream=0, waddr=2)
    p.at(3, "MEM_W0", "READ", dir=E, stream=1, addr=0)
    p.at(4, "MEM_E1", "READ", dir=W, stream=2, addr=0)               # after the stop
    res = p.run(trace=True)
    assert flags_at(res) == [(3, ErrorFlag.BANK_CONFLICT, "MEM_E0")]
    assert res.cycles == 4 + c.tiles
    assert not res.trace.east[:, e0.pos + 1, 0].any()               # RW's read: no emission
    assert not res.memory["MEM_E0"][2].any()                         # RW's write: none
    np.testing.assert_array_equal(res.trace.east[3 + lat.mem_read + 1, w0.pos + 1, 1], vector(c, 9))
    assert issue_cycles(res, "MEM_E1") == {}


@pytest.mark.parametrize("word_of", [
    lambda c: 31,                                                        # undefined opcode
    lambda c: isa.encode(isa.Instr(SliceKind.MEM, "READ", {"addr": 1})) | 1 << 47,  # reserved bit
])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_illegal_word(cfg, word_of):
    c = get_config(cfg)
    p = Program(c)
    p.at(4, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.word("MEM_E0", word_of(c))                                     # reached at 5
    p.at(8, "MEM_W0", "READ", dir=E, stream=0, addr=0)
    res = p.run(trace=True)
    assert flags_at(res) == [(5, ErrorFlag.ILLEGAL_INSTR, "MEM_E0")]
    assert res.cycles == 6 + c.tiles
    assert issue_cycles(res, "MEM_W0") == {}


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("start,stride", [("last-1", 1), (1, -1)])
def test_repeat_walks_out_of_range(cfg, start, stride):
    """READ at 2, REPEAT 3, 1, stride: the second repetition (cycle 4) walks past
    the end (or below 0): ADDR_RANGE at 4, not executed, H = 5."""
    c = get_config(cfg)
    a0 = c.mem_words - 2 if start == "last-1" else start
    p = Program(c)
    p.at(2, "MEM_E0", "READ", dir=E, stream=0, addr=a0)
    p.repeat("MEM_E0", 3, 1, stride)
    res = p.run(trace=True)
    assert flags_at(res) == [(4, ErrorFlag.ADDR_RANGE, "MEM_E0")]
    assert res.cycles == 5 + c.tiles
    got = {t: i.addr for t, i in issue_cycles(res, "MEM_E0").items()}
    assert got == {2: a0, 3: a0 + stride, 4: a0 + 2 * stride}


def test_repeat_out_of_range_is_not_executed():
    """The repetition that walks out of range emits nothing; the ones before do."""
    c = get_config("tiny")
    lat, e0 = c.latency, c.floorplan.slice("MEM_E0").pos
    top = c.mem_words - 1
    p = Program(c).data("MEM_E0", top, vector(c, 3))
    p.at(2, "MEM_E0", "READ", dir=E, stream=0, addr=top)
    p.repeat("MEM_E0", 2, 1, 1)
    p.hold_until(9, "MEM_W0")
    res = p.run(trace=True)
    assert flags_at(res) == [(3, ErrorFlag.ADDR_RANGE, "MEM_E0")]
    emitted = {t for t in range(res.trace.ncycles) if res.trace.east[t, e0 + 1, 0].any()}
    assert emitted == {2 + lat.mem_read + 1}


@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_conflict(cfg):
    """ALU 0 (int8 -> E1) and ALU 1 (int32 -> E0..E3) issue at 2 and emit at
    2 + vxm: STREAM_CONFLICT then, raised by ALU 1; ALU 0 keeps E1, ALU 1 gets
    E0, E2, E3. The program was still running, so H = 2 + vxm + 1."""
    c = get_config(cfg)
    d, v = c.latency.vxm, c.floorplan.vxm.pos
    p = Program(c)
    p.at(2, "VXM0", "MOV", dtype=0, a=IMM, imm=5, **dst(E, 1))
    p.at(2, "VXM1", "MOV", dtype=1, a=IMM, imm=0x44332211, **dst(E, 0))
    p.hold_until(40, "MEM_W0")
    res = p.run(trace=True)
    assert flags_at(res) == [(2 + d, ErrorFlag.STREAM_CONFLICT, "VXM1")]
    assert res.cycles == 2 + d + 1 + c.tiles
    seen = res.trace.east[2 + d + 1, v + 1, 0:SG4, 0]
    assert list(seen) == [0x11, 5, 0x33, 0x44]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_fused_acc_and_acc_in_one_cycle_conflict(cfg):
    """A fused ACC (ABC with emit = 1) emits at t + mxm_abc + mxm_acc; an ACC
    issued at t + mxm_abc emits onto the same SG4 group in that same cycle:
    one STREAM_CONFLICT, raised by the MXM's queue."""
    c = get_config(cfg)
    lat = c.latency
    p = Program(c)
    p.at(2, "MXM_E", "ABC", dir=E, stream=0, slot=0, acc=0, emit=1, edir=W, estream=0)
    x = 2 + lat.mxm_abc
    p.at(x, "MXM_E", "ACC", dir=W, stream=0, slot=1)
    p.hold_until(x + 10, "MEM_W0")
    res = p.run()
    assert flags_at(res) == [(x + lat.mxm_acc, ErrorFlag.STREAM_CONFLICT, "MXM_E")]
    assert res.cycles == x + lat.mxm_acc + 1 + c.tiles


@pytest.mark.parametrize("cfg", CONFIGS)
def test_error_in_flight_after_last_halt(cfg):
    """Results in flight after H still raise errors up to local cycle H + T - 1
    (tile 0 sees them before tile T-1 finishes); later ones are never seen.
    Conflicting VXM ops at 0, every queue halted at 1: the conflict is at vxm."""
    c = get_config(cfg)
    d = c.latency.vxm
    p = Program(c)
    p.at(0, "VXM0", "MOV", dtype=0, a=IMM, imm=1, **dst(W, 0))
    p.at(0, "VXM1", "MOV", dtype=0, a=IMM, imm=2, **dst(W, 0))
    res = p.run()
    H = 1
    assert res.cycles == H + c.tiles
    if d <= H + c.tiles - 1:
        assert flags_at(res) == [(d, ErrorFlag.STREAM_CONFLICT, "VXM1")]
    else:
        assert res.errors == 0
    # both cases occur: too late on tiny, in time on ulx3s
    assert H + get_config("tiny").tiles - 1 < d <= H + get_config("ulx3s").tiles - 1


def test_check_failure_is_not_executed():
    """An instruction failing isa.check (READ onto a stream the config lacks)
    raises its flag at issue and does nothing."""
    c = get_config("tiny")
    p = Program(c).data("MEM_E0", 0, vector(c))
    p.at(1, "MEM_E0", "READ", dir=E, stream=c.streams, addr=0)
    res = p.run(trace=True)
    assert flags_at(res) == [(1, ErrorFlag.ILLEGAL_INSTR, "MEM_E0")]
    assert not res.trace.east.any()
    assert 1 in issue_cycles(res, "MEM_E0")


# -- MXM timing -------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
def test_accumulator_timing(cfg):
    """ABC at t lands in its slot at t + mxm_abc: an ACC one cycle earlier
    reads the old value, an ACC then reads the new one. IW at t - 1 is what
    the ABC at t multiplies with (all-ones weights: p[n] = sum of a)."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    mxm, src = fp.slice("MXM_E"), fp.slice("MEM_E0")
    hops = mxm.pos - src.pos
    ones = np.ones(c.vl, np.uint8)
    a = vector(c, 1)
    p = Program(c).data("MEM_E0", 0, ones).data("MEM_E0", 1, a)
    t_lw = 10
    p.at(t_lw - lat.mem_read - hops, "MEM_E0", "READ", dir=E, stream=0, addr=0)
    p.repeat("MEM_E0", c.vl - 1, 1, 0)                 # the same column VL times
    p.at(t_lw, "MXM_E", "LW", dir=E, stream=0, col=0, count=0)
    p.repeat("MXM_E", c.vl - 1, 1, 1)
    t = t_lw + c.vl + 1
    p.at(t - 1, "MXM_E", "IW")
    p.at(t - lat.mem_read - hops, "MEM_E0", "READ", dir=E, stream=1, addr=1)
    p.at(t, "MXM_E", "ABC", dir=E, stream=1, slot=3, acc=0)
    x = t + lat.mxm_abc
    p.at(x - 1, "MXM_E", "ACC", dir=W, stream=0, slot=3)
    p.at(x, "MXM_E", "ACC", dir=W, stream=0, slot=3)
    p.hold_until(x + 4, "MEM_W0")
    res = p.run(trace=True)
    assert res.errors == 0, res.events
    seen = [planes_i32(res.trace.west[u + lat.mxm_acc + 1, mxm.pos - 1, 0:SG4]) for u in (x - 1, x)]
    np.testing.assert_array_equal(seen[0], np.zeros(c.vl))
    np.testing.assert_array_equal(seen[1], np.full(c.vl, a.astype(np.int8).sum()))


# -- properties of the model -------------------------------------------------------------

def small_program(cfg, data):
    """8 words from MEM_W0 through MULS (ALU 0) and a chained ADD (ALU 1) into MEM_E0."""
    c = get_config(cfg)
    p = Program(c).data("MEM_W0", 0, data)
    p.at(0, "MEM_W0", "READ", dir=E, stream=0, addr=0)
    p.repeat("MEM_W0", 7, 1, 1)
    p.at(2, "VXM0", "MULS", dtype=0, a=src(E, 0), b=IMM, imm=3)
    p.repeat("VXM0", 7, 1, 0)
    p.at(5, "VXM1", "ADD", dtype=0, a=alu(0), b=IMM, imm=1, **dst(E, 1))
    p.repeat("VXM1", 7, 1, 0)
    p.at(9, "MEM_E0", "WRITE", dir=E, stream=1, addr=5)
    p.repeat("MEM_E0", 7, 1, 1)
    return p


@pytest.mark.parametrize("cfg", CONFIGS)
def test_deterministic_and_data_independent(cfg):
    c = get_config(cfg)
    rng = np.random.default_rng(0)
    runs = [small_program(cfg, rng.integers(0, 256, 8 * c.vl)).run(trace=True) for _ in range(2)]
    again = small_program(cfg, np.zeros(8 * c.vl, np.int64)).run(trace=True)
    assert runs[0].cycles == runs[1].cycles == again.cycles
    assert runs[0].trace.issued == again.trace.issued
    same = small_program(cfg, np.arange(8 * c.vl) % 256)
    r1, r2 = same.run(trace=True), same.run(trace=True)
    np.testing.assert_array_equal(r1.trace.east, r2.trace.east)
    assert all((r1.memory[k] == r2.memory[k]).all() for k in r1.memory)


def test_trace_off_and_on_agree():
    c = get_config("ulx3s")
    p = small_program("ulx3s", np.arange(8 * c.vl) % 256)
    a, b = p.run(trace=False), p.run(trace=True)
    assert a.trace is None and b.trace.ncycles == b.cycles == a.cycles
    assert all((a.memory[k] == b.memory[k]).all() for k in a.memory)


def test_max_cycles():
    c = get_config("tiny")
    p = Program(c)
    p.at(0, "MEM_E0", "NOP", n=5000)
    with pytest.raises(SimulationTimeout, match="max_cycles = 1000"):
        GoldenModel(p.image(), max_cycles=1000).run()
    assert GoldenModel(p.image(), max_cycles=5000 + c.tiles).run().cycles == 5000 + c.tiles


@pytest.mark.parametrize("cfg", CONFIGS)
def test_tile_view(cfg):
    """Tile k at global cycle g holds local cycle g - k of its own lanes; before
    its local cycle 0 it holds zeros."""
    c = get_config(cfg)
    L = c.lanes
    p = small_program(cfg, np.arange(8 * c.vl) % 256)
    tr = p.run(trace=True).trace
    last = c.tiles - 1
    for g in range(tr.ncycles):
        e, w = tr.tile_view(last, g)
        if g < last:
            assert not e.any() and not w.any()
        else:
            np.testing.assert_array_equal(e, tr.east[g - last, :, :, last * L:])
            np.testing.assert_array_equal(w, tr.west[g - last, :, :, last * L:])
    e, _ = tr.tile_view(0, 4)
    np.testing.assert_array_equal(e, tr.east[4, :, :, :L])


def test_error_event_fields():
    c = get_config("tiny")
    p = Program(c)
    p.at(0, "MEM_E0", "SYNC")
    (ev,) = p.run().events
    assert isinstance(ev, ErrorEvent) and ev.cycle == 0 and "MEM_E0" in ev.message


def test_image_errors():
    """Images the machine cannot hold are refused before the run, by name."""
    c = get_config("tiny")
    p = Program(c)
    for _ in range(c.queue_depth + 1):
        p.then("MEM_E0", "NOP", n=1)
    with pytest.raises(ImageError, match=f"MEM_E0: {c.queue_depth + 1} words"):
        GoldenModel(p.image())
    img = Program(c).image()
    img.perms["SXM_E"] = {0: [0] * (c.vl - 1)}
    with pytest.raises(ImageError, match="SXM_E: map 0"):
        GoldenModel(img)
    img = Program(c).image()
    img.lut = np.zeros((c.vl, 255), np.int8)
    with pytest.raises(ImageError, match="lookup tables"):
        GoldenModel(img)
