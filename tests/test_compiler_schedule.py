"""The scheduler and the hazard checker (firmware/compiler/schedule.py, hazards.py).

Placements are checked three ways: against an expansion of the emitted words
written here from the queue table of docs/ARCHITECTURE.md section 3, against
what the golden model reports as issued, and by running hand schedules whose
cycle count and results follow from the timing rules. Deliberately broken
schedules must be refused by the checker, and the golden model must show that
they really compute the wrong thing.
"""

import numpy as np
import pytest

from firmware.compiler import HazardError, Part, Schedule, ScheduleError, check_schedule
from firmware.image import Output
from firmware.isa import ErrorFlag, Instr, Operand, OperandKind, decode
from firmware.machine import Dir, SliceKind, get_config
from sim.golden import run_image


MEM, MXM = SliceKind.MEM, SliceKind.MXM


def read(addr, stream, d=Dir.E):
    return Instr(MEM, "READ", dict(dir=d.value, stream=stream, addr=addr))


def write(addr, stream, d=Dir.E):
    return Instr(MEM, "WRITE", dict(dir=d.value, stream=stream, addr=addr))


def expand(kind, words):
    """(cycle, Instr) of every ordinary instruction the words issue, and the
    HALT cycle, by the queue table of ARCHITECTURE.md section 3."""
    issued, t, last, t0 = [], 0, None, None
    for w in words:
        ins = decode(kind, w)
        m = ins.mnemonic
        if m == "HALT":
            return issued, t
        if m == "NOP":
            t += ins.n
        elif m == "REPEAT":
            assert last is not None and t0 + ins.d >= t, "REPEAT without a legal predecessor"
            for _ in range(ins.n):
                last = last.with_fields(**{a: last.fields[a] + ins.stride
                                           for a in last.info.addr_fields})
                t0 += ins.d
                issued.append((t0, last))
            t = t0 + 1
        else:
            issued.append((t, ins))
            last, t0, t = ins, t, t + 1
    raise AssertionError("program does not end in HALT")


def placed(sched, queue):
    return [(p.cycle, p.instr) for p in sched.placements(queue)]


# -- NOP / REPEAT compression ---------------------------------------------------

def test_compression_round_trip():
    c = get_config("ulx3s")
    s = Schedule(c)
    # a run at distance 1 with stride 1, then a strided run at distance 3 with a negative stride
    for i in range(40):
        s.place("MEM_E0", 5 + i, read(10 + i, 2))
    for i in range(7):
        s.place("MEM_E0", 60 + 3 * i, write(500 - 2 * i, 1, Dir.W))
    # a field other than the address changes: no REPEAT may swallow it
    s.place("MEM_E0", 90, read(7, 3))
    s.place("MEM_E0", 91, read(8, 4))
    # RW: both addresses walk with one stride
    for i in range(5):
        s.place("MEM_E0", 100 + i, Instr(MEM, "RW", dict(rstream=1, raddr=3 + i, wdir=1,
                                                         wstream=5, waddr=c.bank_words + i)))
    # longer than one REPEAT's count field, and a gap longer than one NOP's
    for i in range(5000):
        s.place("MXM_E", 2 + i, Instr(MXM, "ABC", dict(stream=1, slot=0, acc=1)))
    s.place("MXM_E", 5002 + 70000, Instr(MXM, "IW"))
    words = s.emit()
    for q in ("MEM_E0", "MXM_E"):
        issued, halt = expand(c.floorplan.queue(q).kind, words[q])
        assert issued == placed(s, q)
        assert halt == s.halt_cycles()[q] == issued[-1][0] + 1
    # NOP, 5000 ABCs (ABC and 2 REPEATs), 2 NOPs for the gap of 70000, IW, HALT
    assert len(words["MXM_E"]) == 8
    assert len(words["MEM_E0"]) < 20
    assert s.predicted_cycles() == 5002 + 70000 + 1 + c.tiles


def test_place_refuses_a_second_instruction_in_one_cycle():
    s = Schedule("tiny")
    s.place("MEM_E0", 4, read(1, 0))
    with pytest.raises(ScheduleError, match=r"MEM_E0, cycle 4: READ .*addr=1.* WRITE"):
        s.place("MEM_E0", 4, write(2, 0))
    with pytest.raises(ScheduleError, match="MXM queue"):
        s.place("MXM_E", 0, read(1, 0))


# -- stream allocation -------------------------------------------------------------

def test_allocator_shares_streams_only_between_disjoint_stretches():
    # eight streams a direction, so an SG4 group has room beside a stream in use
    c = get_config("ulx3s").with_(streams=8)
    s = Schedule(c)
    # two values on one diagonal whose stretches overlap need two streams
    a = s.alloc_stream(Dir.E, 1, 10, 6)
    b = s.alloc_stream(Dir.E, 3, 12, 8)
    assert a != b
    # the same diagonal, but starting where the first value's last reader is: stream reused
    assert s.alloc_stream(Dir.E, 6, 15, 9) == a
    # another diagonal is free on every stream
    assert s.alloc_stream(Dir.E, 1, 11, 6) == a
    # SG4 groups are aligned and avoid the streams in use on their diagonal
    g = s.alloc_stream(Dir.E, 2, 11, 7, group=4)
    assert g % 4 == 0 and g != a
    s2 = Schedule(c)
    for k in range(c.streams):
        s2.alloc_stream(Dir.W, 9, 3, 2, value=("v", k))
    with pytest.raises(ScheduleError, match=r"no 1 free W stream.* for 'late' emitted at position 8 "
                                            r"in cycle 4 towards 1: .* carries \[\('v', 0\), \('v', 1\)"):
        s2.alloc_stream(Dir.W, 8, 4, 1, value="late")


# -- hand schedules on the golden model ----------------------------------------------

def copy_schedule(config, n, late=0):
    """Copy n words MEM_W1 -> MEM_E1 (the two ends of the tiny floorplan):
    READ at 2+i, WRITE where the word passes, plus ``late`` cycles."""
    c = get_config(config)
    fp, lat = c.floorplan, c.latency
    src, dst = fp.slice("MEM_W1"), fp.slice("MEM_E1")
    s = Schedule(c)
    for i in range(n):
        e = 2 + i + lat.mem_read
        st = s.alloc_stream(Dir.E, src.pos, e, dst.pos)
        s.place(src.name, 2 + i, read(i, st), produces=("x", i))
        s.place(dst.name, e + lat.hops(src.pos, dst.pos) + late, write(100 + 2 * i, st),
                expects=[("x", i)])
    data = np.arange(n * c.vl).reshape(n, c.vl) % 256
    img = s.to_image(memory={src.name: {i: data[i].astype(np.uint8) for i in range(n)}})
    return s, img, data


def test_copy_runs_in_the_predicted_cycles():
    c = get_config("tiny")
    s, img, data = copy_schedule(c, 6)
    assert check_schedule(s) == 6
    r = run_image(img, trace=True)
    assert r.errors == 0
    # the last word: read at 7, emitted at 8, 4 hops to MEM_E1 -> written at 12, HALT at 13
    hops = c.floorplan.slice("MEM_E1").pos - c.floorplan.slice("MEM_W1").pos
    last_write = 2 + 5 + c.latency.mem_read + hops
    assert s.predicted_cycles() == r.cycles == last_write + 1 + c.tiles
    assert np.array_equal(r.memory["MEM_E1"][100:112:2], data)
    # what the golden model issued is exactly what was placed
    issued = {(t, q): ins for t, d in enumerate(r.trace.issued) for q, ins in d.items()}
    assert issued == {(p.cycle, p.queue): p.instr for p in s.placements()}


def test_chained_repeats_and_distance_on_golden():
    """A run longer than one REPEAT holds, and a run at distance 3 with a
    negative stride, issue on the golden model exactly as placed."""
    c = get_config("tiny")
    s = Schedule(c)
    n = 4100
    for i in range(n):
        s.place("MEM_E0", 1 + i, read(7, 2, Dir.W), produces=("r", i))
    # MEM_W1 catches every third word on its way west
    hops = c.floorplan.slice("MEM_E0").pos - c.floorplan.slice("MEM_W1").pos
    for i in range(6):
        s.place("MEM_W1", 1 + c.latency.mem_read + hops + 3 * i, write(60 - 2 * i, 2, Dir.W),
                expects=[("r", 3 * i)])
    assert check_schedule(s) == 6
    assert len(s.emit()["MEM_E0"]) == 5           # NOP, READ, REPEAT 4095, REPEAT 4, HALT
    assert len(s.emit()["MEM_W1"]) == 4           # NOP, WRITE, REPEAT 5, HALT
    word = np.arange(c.vl, dtype=np.uint8) + 1
    r = run_image(s.to_image(memory={"MEM_E0": {7: word}}), trace=True)
    assert r.errors == 0
    assert (r.memory["MEM_W1"][50:61:2] == word).all()
    assert r.cycles == s.predicted_cycles() == 1 + n + c.tiles
    issued = {(t, q): ins for t, d in enumerate(r.trace.issued) for q, ins in d.items()}
    assert issued == {(p.cycle, p.queue): p.instr for p in s.placements()}


def mxm_schedule(config, slot_shift=0, clash=False):
    """One weight tile, two activation rows, one result emitted by ACC and
    one by a fused ABC emit, both written as split planes by four slices."""
    c = get_config(config)
    fp, lat = c.floorplan, c.latency
    vl = c.vl
    mxm = fp.slice("MXM_E")
    mems = [fp.slice(n) for n in ("MEM_E1", "MEM_E0", "MEM_W0", "MEM_W1")]
    rng = np.random.default_rng(3)
    W = rng.integers(-128, 128, (vl, vl))
    X = rng.integers(-128, 128, (2, vl))
    s = Schedule(c)
    t_lw = 1 + lat.mem_read + max(mxm.pos - m.pos for m in mems)
    # column j from slice j, all four in one LW
    segs = [(m.pos, t_lw - (mxm.pos - m.pos), mxm.pos) for m in mems[:vl]]
    base = s.alloc_streams(Dir.E, segs)
    for j, m in enumerate(mems[:vl]):
        s.place(m.name, t_lw - (mxm.pos - m.pos) - lat.mem_read, read(j, base + j), produces=("w", j))
    s.place("MXM_E", t_lw, Instr(MXM, "LW", dict(stream=base, count=vl - 1, col=0)),
            expects=[("w", j) for j in range(vl)])
    s.place("MXM_E", t_lw + 1, Instr(MXM, "IW"))
    a_src = fp.slice("MEM_E1")
    emits = []
    for r in range(2):
        t = t_lw + 2 + r
        e = t - (mxm.pos - a_src.pos)
        st = s.alloc_stream(Dir.E, a_src.pos, e, mxm.pos)
        s.place(a_src.name, e - lat.mem_read, read(8 + r, st), produces=("a", r))
        fields = dict(stream=st, slot=r + slot_shift)
        if r == 1:
            emit = t + lat.mxm_abc + lat.mxm_acc
            g = s.alloc_streams(Dir.W, [(mxm.pos, emit, m.pos) for m in mems], align=4)
            fields.update(emit=1, edir=1, estream=g)
            emits.append((emit, g, r))
        s.place("MXM_E", t, Instr(MXM, "ABC", fields), produces=("c", r) if r == 1 else None,
                expects=[("a", r)])
    t_acc = t_lw + 2 + lat.mxm_abc + (1 if clash else 0)   # row 0 is whole at its ABC + mxm_abc
    emit = t_acc + lat.mxm_acc
    g = 0 if clash else s.alloc_streams(Dir.W, [(mxm.pos, emit, m.pos) for m in mems], align=4)
    s.place("MXM_E", t_acc, Instr(MXM, "ACC", dict(dir=1, stream=g, slot=0)), produces=("c", 0))
    if not clash:           # (a clashing ACC's writes would land on the ABC's)
        emits.append((emit, g, 0))
    for emit, g, r in emits:
        for i, m in enumerate(mems):
            s.place(m.name, emit + mxm.pos - m.pos, write(16 + r, g + i, Dir.W),
                    expects=[Part(("c", r), i)])
    memory = {m.name: {j: W[:, j].astype(np.uint8)} for j, m in enumerate(mems[:vl])}
    memory[a_src.name].update({8 + r: X[r].astype(np.uint8) for r in range(2)})
    out = Output("y", "/".join(m.name for m in mems), 16, 2, "i32")
    return s, s.to_image(memory=memory, outputs=[out]), X @ W


def test_mxm_hand_schedule_matches_golden():
    s, img, expected = mxm_schedule("tiny")
    check_schedule(s)
    r = run_image(img)
    assert r.errors == 0
    assert r.cycles == s.predicted_cycles()
    assert np.array_equal(r.outputs["y"], expected)


# -- the hazard checker on broken schedules ----------------------------------------

def test_consumer_one_cycle_late_is_refused():
    s, img, data = copy_schedule("tiny", 3, late=1)
    # the first word is written one cycle after it passed, cycle 2 + 1 + 4 + 1 = 8,
    # when the second word is there
    with pytest.raises(HazardError, match=r"cycle 8: MEM_E1 \(slice MEM_E1, position 4\).*reads E0: "
                                          r"expected \('x', 0\) byte 0, found \('x', 1\) byte 0 "
                                          r"emitted by MEM_W1 \(slice MEM_W1, position 0\) in cycle 4"):
        check_schedule(s)
    r = run_image(img)
    assert np.array_equal(r.memory["MEM_E1"][100:104:2], data[1:])
    assert not r.memory["MEM_E1"][104].any()


def test_second_producer_on_the_diagonal_is_refused():
    c = get_config("tiny")
    s, img, data = copy_schedule(c, 1)
    # MEM_E0 (position 3) reads onto E0 exactly when word 0 passes it: word 0 is lost
    s.place("MEM_E0", 5, read(0, 0), produces="intruder")
    with pytest.raises(HazardError, match=r"cycle 7: MEM_E1 .* reads E0: expected \('x', 0\) byte 0, "
                                          r"found 'intruder' byte 0 emitted by MEM_E0 .* in cycle 6"):
        check_schedule(s)
    img = s.to_image(memory={"MEM_W1": {0: data[0].astype(np.uint8)},
                             "MEM_E0": {0: np.full(c.vl, 7, np.uint8)}})
    r = run_image(img)
    assert list(r.memory["MEM_E1"][100]) == [7] * c.vl


def test_two_emissions_on_one_hop_are_refused():
    s, img, _ = mxm_schedule("tiny", clash=True)
    with pytest.raises(HazardError, match=r"two emissions onto W0 at position 6: .*STREAM_CONFLICT"):
        check_schedule(s)
    assert run_image(img).errors & ErrorFlag.STREAM_CONFLICT


def test_same_bank_rw_is_refused():
    c = get_config("tiny")
    s, _, _ = copy_schedule(c, 1)
    s.place("MEM_E0", 9, Instr(MEM, "RW", dict(raddr=1, rstream=2, wstream=3, waddr=2)),
            produces="r", expects=["nothing"])
    with pytest.raises(HazardError, match=r"cycle 9: MEM_E0 .*both in bank 0 \(BANK_CONFLICT\)"):
        check_schedule(s)


def test_accumulator_slot_out_of_range_is_refused():
    c = get_config("tiny")
    s, img, _ = mxm_schedule(c, slot_shift=c.acc_slots - 1)
    with pytest.raises(HazardError, match=rf"cycle \d+: MXM_E .*slot {c.acc_slots} out of range, "
                                          rf"the MXM has {c.acc_slots} \(ADDR_RANGE\)"):
        check_schedule(s)
    assert run_image(img).errors & ErrorFlag.ADDR_RANGE


@pytest.mark.parametrize("queue, instr, reason", [
    ("MEM_E0", read(512, 0), r"address 512 out of range, a MEM slice has 512 words \(ADDR_RANGE\)"),
    ("MXM_E", Instr(MXM, "LW", dict(stream=0, count=1, col=3)),
     r"weight columns 3..4 out of range, the MXM has 4 \(ADDR_RANGE\)"),
    ("MEM_W0", read(0, 4), r"stream 4 out of range, this configuration has 4 streams"),
])
def test_out_of_range_instructions_are_refused(queue, instr, reason):
    s = Schedule("tiny")
    s.place(queue, 6, instr, expects=["w0", "w1"][:2 if instr.mnemonic == "LW" else 0])
    with pytest.raises(HazardError, match=rf"cycle 6: {queue} .*: {reason}"):
        check_schedule(s)


def test_missing_expectation_and_queue_depth_are_refused():
    c = get_config("tiny")
    s = Schedule(c)
    s.place("MEM_E0", 3, write(1, 0))
    with pytest.raises(HazardError, match="reads 1 stream.* names 0 expected"):
        check_schedule(s)
    s = Schedule(c)
    for i in range(c.queue_depth):          # distinct streams: no REPEAT can compress them
        s.place("MEM_E0", i, read(i, i % 2))
    with pytest.raises(HazardError, match=rf"MEM_E0: its program is {c.queue_depth + 1} words, "
                                          rf"the instruction memory holds {c.queue_depth}"):
        check_schedule(s)


def test_vxm_chain_through_the_checker_and_golden():
    """MEM_W0 -> VXM (ADD.i8 #5, 3 cycles) -> back west to MEM_W1: the checker
    follows the VXM's read and emission, and the golden model agrees."""
    c = get_config("tiny")
    fp, lat = c.floorplan, c.latency
    src, vxm, dst = fp.slice("MEM_W0"), fp.vxm, fp.slice("MEM_W1")
    t_vxm = lat.mem_read + (vxm.pos - src.pos)
    t_write = t_vxm + lat.vxm + (vxm.pos - dst.pos)
    add = Instr(SliceKind.VXM, "ADD", dict(a=Operand(OperandKind.STREAM, Dir.E, 1).encode(),
                                          b=Operand(OperandKind.IMM).encode(), imm=5,
                                          we=1, wdir=Dir.W.value, wstream=3))
    data = np.array([0, 100, 126, -128], np.int8)[:c.vl]

    def build(vxm_cycle):
        s = Schedule(c)
        s.place(src.name, 0, read(0, 1), produces="x")
        s.place("VXM0", vxm_cycle, add, produces="x+5", expects=["x"])
        s.place(dst.name, t_write, write(9, 3, Dir.W), expects=["x+5"])
        return s, s.to_image(memory={src.name: {0: data.view(np.uint8)}})

    s, img = build(t_vxm)
    assert check_schedule(s) == 2
    r = run_image(img)
    assert r.errors == 0 and r.cycles == s.predicted_cycles() == t_write + 1 + c.tiles
    assert np.array_equal(r.memory[dst.name][9].view(np.int8), (data.astype(np.int64) + 5).astype(np.int8))
    s, _ = build(t_vxm + 1)
    with pytest.raises(HazardError, match=rf"cycle {t_vxm + 1}: VXM0 .* reads E1: expected 'x'"):
        check_schedule(s)
