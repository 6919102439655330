"""The whole TSP gateware (rtl/top.py) end to end, through sim/amaranth_run.py.

Each program is built from firmware.isa words; its expected memory, cycle count
(cycles = H + T, docs/ARCHITECTURE.md section 3) and errors are derived here from
the timing rules, and the run is also compared with the golden model (sim/golden.py):
final memory, error flags, first error and cycles must all be equal.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil, verilog

from firmware.asm import assemble, assemble_file
from firmware.image import ProgramImage
from firmware.isa import ErrorFlag, Instr, Operand, OperandKind, encode
from firmware.machine import ConfigError, get_config, Dir, SliceKind
from rtl.top import TSP
from sim.amaranth_run import run_image_amaranth, SimulationTimeout
from sim.golden import run_image


KERNELS = Path(__file__).parent.parent / "firmware" / "kernels"
C = get_config("tiny")
FP = C.floorplan
T, VL, BW = C.tiles, C.vl, C.bank_words
MEM_ONLY = (SliceKind.MEM,)
LAT = C.latency.mem_read


def I(mnemonic, **fields):
    return encode(Instr(SliceKind.MEM, mnemonic, fields))


def hops(a, b):
    return C.latency.hops(FP.slice(a).pos, FP.slice(b).pos)


def rows(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, VL), dtype=np.uint8)


def run_both(img, kinds=MEM_ONLY, vcd_path=None):
    """Run on the gateware and on the golden model; everything observable must agree."""
    rtl = run_image_amaranth(img, kinds=kinds, vcd_path=vcd_path)
    gold = run_image(img)
    assert rtl.cycles == gold.cycles
    assert ErrorFlag(rtl.errors) == ErrorFlag(gold.errors)
    for name in gold.memory:
        np.testing.assert_array_equal(rtl.memory[name], gold.memory[name], err_msg=name)
    if gold.events:
        first = gold.events[0].cycle
        assert rtl.err_cycle == first
        # several errors in that cycle: the TSP names the lowest queue index among them
        assert rtl.err_queue == min(err_queue_of(e) for e in gold.events if e.cycle == first)
    return rtl


def err_queue_of(event):
    """The TSP's err_queue for a golden-model error event: the queue that raised it; for
    an error the slice detects (STREAM_CONFLICT), the slice's first queue; for DEADLOCK,
    the number of queues."""
    names = [q.name for q in FP.queues]
    if event.where not in names:
        return len(names)
    if event.flag is ErrorFlag.STREAM_CONFLICT:
        owner = FP.queue(event.where).slice
        return next(i for i, q in enumerate(FP.queues) if q.slice == owner)
    return names.index(event.where)


def test_eastward_move_lands_after_the_hops(tmp_path):
    data = rows(1, 1)[0]
    img = ProgramImage(C)
    img.set_words("MEM_W0", 3, data)
    d = LAT + hops("MEM_W0", "MEM_E1")          # READ at 0 -> MEM_E1 sees it at d
    img.queues["MEM_W0"] = [I("READ", addr=3, dir=0, stream=1)]
    img.queues["MEM_E1"] = [I("NOP", n=d), I("WRITE", addr=7, dir=0, stream=1)]
    r = run_both(img, vcd_path=tmp_path / "move.vcd")
    assert (tmp_path / "move.vcd").stat().st_size > 0
    np.testing.assert_array_equal(r.memory["MEM_E1"][7], data)
    H = d + 1                                   # MEM_E1 halts after its WRITE at d
    assert (r.cycles, r.errors) == (H + T, 0)


def test_one_cycle_too_late_misses_the_value():
    img = ProgramImage(C)
    img.set_words("MEM_W0", 3, rows(1, 2)[0])
    d = LAT + hops("MEM_W0", "MEM_E1")
    img.queues["MEM_W0"] = [I("READ", addr=3, dir=0, stream=1)]
    img.queues["MEM_E1"] = [I("NOP", n=d + 1), I("WRITE", addr=7, dir=0, stream=1)]
    r = run_both(img)
    assert not r.memory["MEM_E1"][7].any()      # the value has moved on east
    assert r.cycles == d + 2 + T


def test_westward_block_copy_with_repeat():
    data = rows(4, 3)
    img = ProgramImage(C)
    img.set_words("MEM_E1", 0, data)
    d = LAT + hops("MEM_E1", "MEM_W1")
    img.queues["MEM_E1"] = [I("READ", addr=0, dir=1, stream=2), I("REPEAT", n=3, d=1, stride=1)]
    img.queues["MEM_W1"] = [I("NOP", n=d), I("WRITE", addr=16, dir=1, stream=2),
                            I("REPEAT", n=3, d=1, stride=1)]
    r = run_both(img)
    np.testing.assert_array_equal(r.memory["MEM_W1"][16:20], data)
    assert r.cycles == d + 4 + T                # writes at d .. d+3, HALT at d+4


def test_rw_both_directions_through_the_vxm_position():
    a, b = rows(4, 4), rows(4, 5)
    img = ProgramImage(C)
    img.set_words("MEM_W1", 0, a)
    img.set_words("MEM_E0", BW, b)
    d1 = LAT + hops("MEM_W1", "MEM_E0")
    d2 = d1 + LAT + hops("MEM_E0", "MEM_W0")
    img.queues["MEM_W1"] = [I("READ", addr=0, dir=0, stream=0), I("REPEAT", n=3, d=1, stride=1)]
    img.queues["MEM_E0"] = [I("NOP", n=d1),
                            I("RW", raddr=BW, rdir=1, rstream=1, waddr=8, wdir=0, wstream=0),
                            I("REPEAT", n=3, d=1, stride=1)]
    img.queues["MEM_W0"] = [I("NOP", n=d2), I("WRITE", addr=20, dir=1, stream=1),
                            I("REPEAT", n=3, d=1, stride=1)]
    r = run_both(img)
    np.testing.assert_array_equal(r.memory["MEM_E0"][8:12], a)
    np.testing.assert_array_equal(r.memory["MEM_W0"][20:24], b)
    assert r.cycles == d2 + 4 + T


def test_notify_releases_sync():
    data = rows(1, 6)[0]
    img = ProgramImage(C)
    img.set_words("MEM_E0", 0, data)
    n = 5                                        # NOTIFY at n; SYNC passes at n + 1
    read_at = n + C.latency.notify + 1
    arrive = read_at + LAT + hops("MEM_E0", "MEM_W0")
    img.queues["MEM_E0"] = [I("SYNC"), I("READ", addr=0, dir=1, stream=3)]
    img.queues["MEM_W0"] = [I("NOP", n=n), I("NOTIFY"), I("NOP", n=arrive - n - 1),
                            I("WRITE", addr=30, dir=1, stream=3)]
    r = run_both(img)
    np.testing.assert_array_equal(r.memory["MEM_W0"][30], data)
    assert r.cycles == arrive + 1 + T


@pytest.mark.parametrize("before", [0, 2])
def test_deadlock(before):
    img = ProgramImage(C)
    img.queues["MEM_W0"] = [I("READ", addr=a) for a in range(before)] + [I("SYNC")]
    img.queues["MEM_E1"] = [I("SYNC")]
    r = run_both(img)
    assert r.errors == ErrorFlag.DEADLOCK
    assert (r.err_cycle, r.err_queue) == (before, len(FP.queues))
    assert r.cycles == before + 1 + T            # stopped from the cycle after


def test_illegal_instruction_stops_every_queue():
    data = rows(1, 7)[0]
    img = ProgramImage(C)
    img.set_words("MEM_W1", 5, data)
    bad_at = 3
    img.queues["MEM_E1"] = [I("NOP", n=bad_at), I("READ", addr=0, stream=C.streams)]
    # MEM_W1 streams word 5 east every cycle; MEM_W0 writes it to 100, 101, ... from the
    # first cycle it arrives: only the writes before the stop may happen.
    d = LAT + hops("MEM_W1", "MEM_W0")
    img.queues["MEM_W1"] = [I("READ", addr=5, dir=0, stream=0), I("REPEAT", n=20, d=1, stride=0)]
    img.queues["MEM_W0"] = [I("NOP", n=d), I("WRITE", addr=100, dir=0, stream=0),
                            I("REPEAT", n=20, d=1, stride=1)]
    r = run_both(img)
    assert r.errors == ErrorFlag.ILLEGAL_INSTR
    assert (r.err_cycle, r.err_queue) == (bad_at, [q.name for q in FP.queues].index("MEM_E1"))
    assert r.cycles == bad_at + 1 + T
    written = bad_at + 1 - d                     # WRITEs at d .. bad_at
    for i in range(25):
        want = data if i < written else np.zeros(VL, np.uint8)
        np.testing.assert_array_equal(r.memory["MEM_W0"][100 + i], want, err_msg=str(i))


def test_bank_conflict_is_not_executed():
    img = ProgramImage(C)
    img.set_words("MEM_E0", 1, rows(1, 8)[0])
    img.queues["MEM_E0"] = [I("NOP", n=2), I("RW", raddr=1, waddr=2, wdir=0, wstream=0)]
    img.queues["MEM_W0"] = [I("READ", addr=0)] * 10
    r = run_both(img)
    assert r.errors == ErrorFlag.BANK_CONFLICT
    assert r.err_cycle == 2 and r.cycles == 3 + T
    assert not r.memory["MEM_E0"][2].any()


def test_cycle_limit_raises():
    img = ProgramImage(C)
    img.queues["MEM_W0"] = [I("NOP", n=1000)]
    with pytest.raises(SimulationTimeout):
        run_image_amaranth(img, max_cycles=50, kinds=MEM_ONLY)


def test_host_port_readback_equals_the_block_rams():
    img = ProgramImage(C)
    for name, seed in (("MEM_W1", 9), ("MEM_E1", 10)):
        img.set_words(name, 0, rows(3, seed))
        img.set_words(name, C.mem_words - 2, rows(2, seed + 1))
    d = LAT + hops("MEM_W1", "MEM_E1")
    img.queues["MEM_W1"] = [I("READ", addr=1, dir=0, stream=2)]
    img.queues["MEM_E1"] = [I("NOP", n=d), I("WRITE", addr=BW + 5, dir=0, stream=2)]
    host = run_image_amaranth(img, kinds=MEM_ONLY, readback="host")
    direct = run_image_amaranth(img, kinds=MEM_ONLY)
    for name in host.memory:
        np.testing.assert_array_equal(host.memory[name], direct.memory[name], err_msg=name)
    want = img.memory_array("MEM_E1")
    want[BW + 5] = img.memory_array("MEM_W1")[1]
    np.testing.assert_array_equal(host.memory["MEM_E1"], want)
    np.testing.assert_array_equal(host.memory["MEM_W1"], img.memory_array("MEM_W1"))


def random_mem_program(seed):
    """Random MEM-only traffic: every MEM queue reads, writes, copies and idles at random
    (mostly legal: small address windows in both banks, in-range streams; now and then
    an error or a SYNC), on random initial memories."""
    rng = np.random.default_rng(seed)
    img = ProgramImage(C)
    names = [s.name for s in FP.of_kind(SliceKind.MEM)]
    for name in names:
        img.set_words(name, 0, rows(8, rng.integers(1 << 30)))
        img.set_words(name, BW, rows(8, rng.integers(1 << 30)))

    def addr(bank):
        return bank * BW + int(rng.integers(12))

    def stream():
        return {"dir": int(rng.integers(2)), "stream": int(rng.integers(C.streams))}

    notify_queue = names[int(rng.integers(len(names)))]
    for name in names:
        words, repeatable = [], False      # a REPEAT right after its instruction is legal
        for _ in range(int(rng.integers(6, 14))):
            r = rng.random()
            if r < .25:
                words.append(I("READ", addr=addr(int(rng.integers(2))), **stream()))
                repeatable = True
            elif r < .5:
                words.append(I("WRITE", addr=addr(int(rng.integers(2))), **stream()))
                repeatable = True
            elif r < .62:
                rb = int(rng.integers(2))
                wb = 1 - rb if rng.random() < .95 else rb        # now and then a conflict
                s1, s2 = stream(), stream()
                words.append(I("RW", raddr=addr(rb), rdir=s1["dir"], rstream=s1["stream"],
                               waddr=addr(wb), wdir=s2["dir"], wstream=s2["stream"]))
                repeatable = True
            elif r < .82 and (repeatable or rng.random() < .1):
                words.append(I("REPEAT", n=int(rng.integers(1, 4)), d=int(rng.integers(1, 3)),
                               stride=int(rng.integers(-2, 3))))
            elif r < .97:
                words.append(I("NOP", n=int(rng.integers(1, 5))))
                repeatable = False
            else:
                words.append(I("SYNC"))
                repeatable = False
        if name == notify_queue:
            words.insert(int(rng.integers(len(words))), I("NOTIFY"))
        img.queues[name] = words
    return img


@pytest.mark.parametrize("seed", range(4))
def test_random_mem_programs_match_the_golden_model(seed):
    run_both(random_mem_program(seed))


def test_superlane_stagger_ulx3s_kernel():
    """A T = 4 machine: the repeat_loop kernel (MEM only) matches the golden model."""
    img = assemble_file(KERNELS / "repeat_loop.s")
    r = run_image_amaranth(img, kinds=MEM_ONLY)
    g = run_image(img)
    assert (r.cycles, r.errors) == (g.cycles, g.errors) == (16, 0)
    for name in g.memory:
        np.testing.assert_array_equal(r.memory[name], g.memory[name], err_msg=name)
    v = img.memory_array("MEM_W0")[0:16]
    np.testing.assert_array_equal(r.outputs["r"].view(np.uint8), v[0:16:2][::-1])


# -- with the VXM: the full TSP -----------------------------------------------------

def vxm_add(dst=None, a=0, b=1):
    """ADD.i8 of eastward streams a and b, emitted eastward onto dst (if given)."""
    return encode(Instr(SliceKind.VXM, "ADD", {
        "a": Operand(OperandKind.STREAM, Dir.E, a).encode(),
        "b": Operand(OperandKind.STREAM, Dir.E, b).encode(),
        "we": int(dst is not None), "wstream": dst or 0}))


def vadd_image(second_alu):
    """x + y through VXM0, written by MEM_E0; with ``second_alu`` VXM1 computes the same
    sum and emits it onto the same stream in the same cycle (a STREAM_CONFLICT)."""
    x, y = rows(1, 11)[0], rows(1, 12)[0]
    img = ProgramImage(C)
    img.set_words("MEM_W1", 0, x)
    img.set_words("MEM_W0", 0, y)
    at_vxm = LAT + hops("MEM_W1", "VXM")                 # both operands meet at the VXM
    img.queues["MEM_W1"] = [I("READ", addr=0, dir=0, stream=0)]
    img.queues["MEM_W0"] = [I("NOP", n=at_vxm - LAT - hops("MEM_W0", "VXM")),
                            I("READ", addr=0, dir=0, stream=1)]
    img.queues["VXM0"] = [I("NOP", n=at_vxm), vxm_add(dst=2)]
    if second_alu:
        img.queues["VXM1"] = [I("NOP", n=at_vxm), vxm_add(dst=2)]
    arrive = at_vxm + C.latency.vxm + hops("VXM", "MEM_E0")
    img.queues["MEM_E0"] = [I("NOP", n=arrive), I("WRITE", addr=5, dir=0, stream=2)]
    return img, (x.astype(np.int64) + y) % 256, at_vxm + C.latency.vxm, arrive + 1


def test_vxm_add_on_the_full_tsp():
    img, want, _emit, H = vadd_image(second_alu=False)
    r = run_both(img, kinds=tuple(SliceKind))
    np.testing.assert_array_equal(r.memory["MEM_E0"][5], want)
    assert (r.errors, r.cycles) == (0, H + T)


def test_stream_conflict_on_the_full_tsp():
    img, _want, emit, _H = vadd_image(second_alu=True)
    r = run_both(img, kinds=tuple(SliceKind))
    assert r.errors == ErrorFlag.STREAM_CONFLICT
    assert r.err_cycle == emit
    assert r.err_queue == [q.name for q in FP.queues].index("VXM0")
    # Every queue stops from emit + 1: MEM_E0's WRITE, due one hop later, never happens.
    assert not r.memory["MEM_E0"][5].any()
    assert r.cycles == emit + 1 + T


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["vadd.s", "matmul.s", "requant.s", "transpose.s",
                                    "bank_hazard.s"])
def test_kernels_on_the_full_ulx3s_tsp(kernel):
    """The hand-written kernels on the whole ulx3s gateware: equal to the golden model."""
    img = assemble_file(KERNELS / kernel)
    r = run_image_amaranth(img)
    g = run_image(img)
    assert (r.cycles, r.errors) == (g.cycles, g.errors)
    for name in g.memory:
        np.testing.assert_array_equal(r.memory[name], g.memory[name], err_msg=name)


def test_tiny_tsp_builds_a_netlist():
    """The whole tiny TSP converts to RTLIL: Amaranth's netlist check finds no
    combinational cycle (the simulator would not notice one) and no driver conflict."""
    text = rtlil.convert(TSP(C), name="tsp")
    assert "module \\tsp" in text


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_verilog_converts(config):
    text = verilog.convert(TSP(get_config(config)), name="tsp")
    assert "module tsp(" in text


LUT_PERM = """
.config tiny
.output z, MEM_E1, 3, 1, u8
.data   MEM_W0, 0, 5, 200, 17, 99
.perm   SXM_E, 1, 2, 0, 3, 1
.queue MEM_W0
        READ    0 -> E0            ; seen at the VXM (1 hop) in cycle 2
.queue VXM0
        NOP     2
        LUT     E0 -> E1           ; emits at 2 + 3 = 5, at SXM_E (3 hops) in 8
.queue SXM_E
        NOP     8
        PERM    E1, 1 -> W2        ; emits at 8 + T = 10, at MEM_E1 (1 hop) in 11
.queue MEM_E1
        NOP     11
        WRITE   W2 -> 3            ; HALT at 12: 12 + T = 14 cycles
"""


def test_host_loads_tables_and_maps():
    """Per-lane VXM tables and an SXM map, loaded through the host port, on the full TSP."""
    img = assemble(LUT_PERM)
    lut = np.random.default_rng(13).integers(-128, 128, (VL, 256)).astype(np.int8)
    img.lut = lut
    r = run_both(img, kinds=tuple(SliceKind))
    x = np.array([5, 200, 17, 99])
    y = lut[np.arange(VL), x].view(np.uint8)          # lane l looks up its own table
    perm = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(r.outputs["z"][0], y[perm])
    assert (r.errors, r.cycles) == (0, 14)


def _copy_with_waits(config):
    """MEM_E1 reads 0..3 every second cycle (REPEAT d = 2), MEM_W1 waits with a NOP and
    writes them at 19, 18, 17, 16 (REPEAT stride -1), then NOTIFY; MEM_W0 waits in SYNC
    for it and writes a word of the westward stream after."""
    fp = config.floorplan
    lat = config.latency.mem_read
    d = lat + config.latency.hops(fp.slice("MEM_E1").pos, fp.slice("MEM_W1").pos)
    img = ProgramImage(config)
    img.set_words("MEM_E1", 0, rows(4, 6))
    img.queues["MEM_E1"] = [I("READ", addr=0, dir=1, stream=2),
                            I("REPEAT", n=3, d=2, stride=1)]
    img.queues["MEM_W1"] = [I("NOP", n=d), I("WRITE", addr=19, dir=1, stream=2),
                            I("REPEAT", n=3, d=2, stride=-1), I("NOTIFY")]
    img.queues["MEM_W0"] = [I("SYNC"), I("WRITE", addr=5, dir=1, stream=2)]
    return img


def test_fetch_register_is_invisible():
    """``Config.fetch_reg`` changes how a queue reads its instruction memory, never what it
    issues when: the same program (NOP, REPEAT with a distance and a negative stride,
    NOTIFY / SYNC) with and without the fetch registers ends in the same cycle with the
    same memory, both equal to the golden model (``pico`` builds without them, the
    other sets with)."""
    assert C.fetch_reg
    runs = [run_both(_copy_with_waits(config))
            for config in (C, dataclasses.replace(C, fetch_reg=False))]
    with_reg, no_reg = runs
    assert (with_reg.cycles, with_reg.errors) == (no_reg.cycles, no_reg.errors)
    for name in with_reg.memory:
        np.testing.assert_array_equal(with_reg.memory[name], no_reg.memory[name], err_msg=name)
    np.testing.assert_array_equal(with_reg.memory["MEM_W1"][16:20], rows(4, 6)[::-1])


def test_config_rejects_a_fetch_reg_that_is_not_a_bool():
    with pytest.raises(ConfigError, match="fetch_reg = 1: must be True or False"):
        dataclasses.replace(C, fetch_reg=1)
