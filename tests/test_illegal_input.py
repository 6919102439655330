"""Illegal input to the machine: the run stops cleanly with an error code the host reads.

Each case is a program with one illegal instruction (an unknown opcode or reserved bits,
an address out of range, a stream out of range, or a sequencer misuse) written as raw
words, so no assembler check stands in the way. For every case:

* the golden model raises the expected flag at the expected cycle in the expected queue,
  stops every queue from the next cycle (``cycles = c + 1 + T``), and the illegal
  instruction has no effect (docs/ARCHITECTURE.md section 3);
* the gateware (the whole tiny TSP in Amaranth's simulator, one machine running every
  case in turn, as a host would) raises ``done`` within that many cycles (no hang) and
  reports the same ``errors``, ``err_queue``, ``err_cycle`` and ``cycles``; words an
  executed illegal instruction would have clobbered (an out-of-range address wrapped
  to the bits the block RAM decodes) are unchanged;
* through the host link, STATUS reports the same.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from firmware.image import ProgramImage
from firmware.isa import ErrorFlag, Instr, Operand, OperandKind, encode
from firmware.machine import Dir, SliceKind, get_config
from rtl.top import START_TO_RUN, TSP, HostCmd, load_commands
from sim.golden import run_image


C = get_config("tiny")
FP = C.floorplan
T = C.tiles
QUEUES = [q.name for q in FP.queues]
ILLEGAL, RANGE, DEADLOCK = ErrorFlag.ILLEGAL_INSTR, ErrorFlag.ADDR_RANGE, ErrorFlag.DEADLOCK


def W(queue, mnemonic, **fields):
    """An instruction word of ``queue``'s kind; only the field widths are checked."""
    return encode(Instr(FP.queue(queue).kind, mnemonic, fields))


def S(d, i):
    return Operand(OperandKind.STREAM, d, i).encode()


IMM = Operand(OperandKind.IMM).encode()
WRAPPED = 600 % C.mem_words          # where WRITE 600 would land if the RAM took the low bits

#: (id, queue, words, flag, cycle, words that must keep their value {(slice, addr): bytes})
CASES = [
    # unknown opcodes and reserved bits
    ("opcode MEM", "MEM_E0", [W("MEM_E0", "NOP", n=2), 31], ILLEGAL, 2, {}),
    ("opcode VXM", "VXM1", [W("VXM1", "NOP", n=1), 30], ILLEGAL, 1, {}),
    ("opcode MXM", "MXM_E", [20], ILLEGAL, 0, {}),
    ("opcode SXM", "SXM_E", [W("SXM_E", "NOP", n=4), 11], ILLEGAL, 4, {}),
    ("reserved bits", "MEM_W1", [W("MEM_W1", "READ", addr=0) | 1 << 40], ILLEGAL, 0, {}),
    ("pad bits", "VXM0", [W("VXM0", "ADD", a=IMM, b=IMM, pad=5)], ILLEGAL, 0, {}),
    # addresses out of range
    ("MEM read address", "MEM_W0", [W("MEM_W0", "NOP", n=1), W("MEM_W0", "READ", addr=C.mem_words)],
     RANGE, 1, {}),
    ("MEM write address", "MEM_E1", [W("MEM_E1", "WRITE", addr=C.mem_words + WRAPPED)], RANGE, 0,
     {("MEM_E1", WRAPPED): [7, 7, 7, 7]}),
    ("RW write address", "MEM_E0", [W("MEM_E0", "RW", raddr=0, waddr=8000)], RANGE, 0,
     {("MEM_E0", 8000 % C.mem_words): [9, 8, 7, 6]}),
    ("REPEAT walks past the end", "MEM_W0",
     [W("MEM_W0", "READ", addr=C.mem_words - 3), W("MEM_W0", "REPEAT", n=5, d=1, stride=1)],
     RANGE, 3, {}),
    ("REPEAT walks below 0", "MEM_E1",
     [W("MEM_E1", "WRITE", addr=1), W("MEM_E1", "REPEAT", n=3, d=1, stride=-1)], RANGE, 2,
     {("MEM_E1", C.mem_words - 1): [1, 2, 3, 4]}),
    # an LW's repetitions: the sequencer keeps col + count beside the repeated word
    ("REPEAT walks LW past the columns", "MXM_E",
     [W("MXM_E", "LW", col=C.vl - 4, count=1), W("MXM_E", "REPEAT", n=5, d=1, stride=1)],
     RANGE, 3, {}),
    ("REPEAT walks LW below column 0", "MXM_E",
     [W("MXM_E", "LW", col=1, count=0), W("MXM_E", "REPEAT", n=3, d=1, stride=-1)],
     RANGE, 2, {}),
    ("REPEAT of an LW repetition", "MXM_E",
     [W("MXM_E", "LW", col=C.vl - 4, count=0), W("MXM_E", "REPEAT", n=1, d=1, stride=1),
      W("MXM_E", "REPEAT", n=3, d=1, stride=1)], RANGE, 4, {}),
    ("MXM slot", "MXM_E", [W("MXM_E", "ABC", slot=C.acc_slots)], RANGE, 0, {}),
    ("MXM columns", "MXM_E", [W("MXM_E", "LW", col=C.vl - 1, count=1)], RANGE, 0, {}),
    ("ACC slot", "MXM_E", [W("MXM_E", "NOP", n=2), W("MXM_E", "ACC", slot=31)], RANGE, 2, {}),
    # streams out of range
    ("MEM read stream", "MEM_W1", [W("MEM_W1", "READ", stream=C.streams)], ILLEGAL, 0, {}),
    ("MEM write stream", "MEM_E0", [W("MEM_E0", "WRITE", dir=1, stream=31, addr=4)], ILLEGAL, 0,
     {("MEM_E0", 4): [5, 5, 5, 5]}),
    ("VXM operand stream", "VXM0", [W("VXM0", "ADD", a=S(Dir.E, C.streams + 1), b=IMM)], ILLEGAL, 0,
     {}),
    ("VXM int32 destination", "VXM1",
     [W("VXM1", "ADD", dtype=1, a=S(Dir.E, 0), b=S(Dir.E, 0), we=1, wstream=2)], ILLEGAL, 0, {}),
    ("SXM source stream", "SXM_E", [W("SXM_E", "SHUP", sstream=C.streams, arg=1)], ILLEGAL, 0, {}),
    ("MXM LW streams", "MXM_E", [W("MXM_E", "LW", stream=C.streams - 1, count=1)], ILLEGAL, 0, {}),
    ("ACC group", "MXM_E", [W("MXM_E", "ACC", stream=2, slot=0)], ILLEGAL, 0, {}),
    # the sequencer's own rules
    ("REPEAT of nothing", "SXM_E", [W("SXM_E", "REPEAT", n=2, d=1)], ILLEGAL, 0, {}),
    ("NOP 0", "VXM0", [W("VXM0", "NOP", n=0)], ILLEGAL, 0, {}),
    # MEM_W1 keeps running until it halts at 41: only then does everybody left wait
    ("SYNC without NOTIFY", "MEM_W0", [W("MEM_W0", "NOP", n=3), W("MEM_W0", "SYNC")], DEADLOCK, 41, {}),
]
IDS = [c[0] for c in CASES]


def image_of(case):
    """The case's program, with MEM_W1 streaming word 5 east in every cycle meanwhile (so
    the stop has something to stop) unless the case is MEM_W1's own."""
    _id, queue, words, _flag, _cycle, keep = case
    img = ProgramImage(C)
    img.queues[queue] = list(words)
    if queue != "MEM_W1":
        img.set_words("MEM_W1", 5, [1, 2, 3, 4])
        img.queues["MEM_W1"] = [W("MEM_W1", "READ", addr=5, stream=1),
                                W("MEM_W1", "REPEAT", n=40, d=1, stride=0)]
    for (name, addr), value in keep.items():
        img.set_words(name, addr, value)
    return img


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_golden_model_stops_cleanly(case):
    _id, queue, _words, flag, cycle, keep = case
    res = run_image(image_of(case))
    assert res.errors == flag
    first = res.events[0]
    assert (first.cycle, first.flag, first.where) == (cycle, flag, "ICU" if flag is DEADLOCK else queue)
    assert res.cycles == cycle + 1 + T
    for (name, addr), value in keep.items():
        np.testing.assert_array_equal(res.memory[name][addr], value)


def err_queue_of(case):
    return len(QUEUES) if case[3] is DEADLOCK else QUEUES.index(case[1])


def test_gateware_stops_cleanly_on_every_case():
    """One tiny TSP runs every case in turn, loaded and read through its host port as a
    host does; each run must end (done) within the golden model's cycle count."""
    dut = TSP(C)
    golden = [run_image(image_of(case)) for case in CASES]
    got = []

    async def command(ctx, cmd, sel=0, lane=0, addr=0, data=0):
        ctx.set(dut.host, {"cmd": cmd, "sel": sel, "lane": lane, "addr": addr, "data": data})
        await ctx.tick()

    async def testbench(ctx):
        loaded = {}                               # queue index -> words written last time
        for case, gold in zip(CASES, golden):
            img = image_of(case)
            assert img.lut is None and not img.perms
            now = {}
            for cmd, ops in load_commands(img):
                await command(ctx, cmd, **ops)
                if cmd is HostCmd.WRITE_INSTR:
                    now[ops["sel"]] = ops["addr"] + 1
            for q, n in loaded.items():           # the last case's words: back to HALT
                for a in range(now.get(q, 0), n):
                    await command(ctx, HostCmd.WRITE_INSTR, sel=q, addr=a, data=0)
            loaded = now
            await command(ctx, HostCmd.START)
            ctx.set(dut.host.cmd, HostCmd.NONE)
            cycles = 0
            while not ctx.get(dut.done) and cycles <= gold.cycles + START_TO_RUN - 1:
                await ctx.tick()
                cycles += 1
            kept = {}
            for (name, addr), _value in case[5].items():
                pos = FP.slice(name).pos
                await command(ctx, HostCmd.READ_MEM, sel=pos, addr=addr)
                kept[(name, addr)] = list(ctx.get(dut.rdata).to_bytes(C.vl, "little"))
            got.append({"done": ctx.get(dut.done), "running": ctx.get(dut.running),
                        "errors": ctx.get(dut.errors), "err_queue": ctx.get(dut.err_queue),
                        "err_cycle": ctx.get(dut.err_cycle), "cycles": ctx.get(dut.cycles),
                        "kept": kept})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

    assert len(got) == len(CASES)
    bad = []
    for case, gold, rtl in zip(CASES, golden, got):
        want = {"done": 1, "running": 0, "errors": gold.errors, "err_queue": err_queue_of(case),
                "err_cycle": gold.events[0].cycle, "cycles": gold.cycles,
                "kept": {key: list(value) for key, value in case[5].items()}}
        if rtl != want:
            bad.append(f"{case[0]}: gateware {rtl}, expected {want}")
    assert not bad, "\n".join(bad)


def test_host_link_reports_an_illegal_instruction():
    """Through the UART bridge: STATUS says done, not running, and names the error."""
    from firmware.hostlink import HostLink, SimTransport
    case = CASES[0]                              # an unknown opcode in MEM_E0 at cycle 2
    img = image_of(case)
    gold = run_image(img)
    link = HostLink(SimTransport(C, divisor=4, timeout_bytes=4, kinds=(SliceKind.MEM,)))
    res = link.run_image(img, fresh=True, timeout=0.05)
    status = link.status()
    assert status.done and not status.running
    assert (res.errors, res.err_queue, res.err_cycle, res.cycles) == (
        ILLEGAL, QUEUES.index("MEM_E0"), 2, gold.cycles)
