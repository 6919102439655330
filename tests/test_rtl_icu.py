"""The ICU gateware (rtl/icu.py) in Amaranth's simulator.

* LegalityCheck against firmware.isa.decode + check on random words of every queue kind;
* the sequencer's issue cycles for NOP / REPEAT / SYNC / NOTIFY / HALT / end of memory /
  error stop and every illegal case, as tables written from docs/ARCHITECTURE.md section 3;
* the superlane stagger.
"""

import random

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from firmware.isa import (OPS, WORD_BITS, ErrorFlag, Instr, word_flags,
                          encode)
from firmware.machine import get_config, SliceKind
from rtl.icu import LegalityCheck, InstructionQueue, at_least


MEM = SliceKind.MEM
TINY = get_config("tiny")
ILL, RANGE, BANK = ErrorFlag.ILLEGAL_INSTR, ErrorFlag.ADDR_RANGE, ErrorFlag.BANK_CONFLICT


# -- LegalityCheck ------------------------------------------------------------------

def random_word(kind, rng):
    """A word that mostly decodes, with small field values (so both legal and
    out-of-range cases are common) and now and then garbage in any bit."""
    info = rng.choice(list(OPS[kind].values()))
    w = info.opcode
    for name, lsb, width, _signed in info.layout()[1:]:
        if name.startswith("pad"):
            v = rng.getrandbits(width) if rng.random() < .1 else 0
        else:                            # small values meet every bound of check()
            v = rng.choice([rng.getrandbits(width), rng.randrange(min(1 << width, 40)),
                            rng.randrange(min(1 << width, 12)), rng.randrange(2)])
        w |= v << lsb
    if rng.random() < .05:
        w |= rng.getrandbits(WORD_BITS[kind])
    if rng.random() < .03:
        w = (w & ~0x1F) | rng.getrandbits(5)
    return w


def reference_flags(queue, config, word):
    """What ``firmware.isa.decode`` and ``check`` say of ``word`` (``isa.word_flags``)."""
    return word_flags(queue, word, config)


def queue_params():
    return list(_queue_params())


def _queue_params():
    for cname in ("tiny", "ulx3s", "pico"):
        c = get_config(cname)
        seen = set()
        for q in c.floorplan.queues:
            key = (q.kind, q.alu if q.kind is SliceKind.VXM else 0)
            if key not in seen:          # every MEM queue decodes alike; VXM depends on the ALU
                seen.add(key)
                yield pytest.param(c, q, id=f"{cname}-{q.name}")


@pytest.mark.parametrize("config, queue", queue_params())
def test_legality_matches_isa_check(config, queue):
    dut = LegalityCheck(config, queue)
    rng = random.Random(f"{config.name}/{queue.name}")
    words = [random_word(queue.kind, rng) for _ in range(600)]
    mismatches = []

    async def tb(ctx):
        for w in words:
            ctx.set(dut.word, w)
            got, want = ctx.get(dut.flags), reference_flags(queue, config, w)
            if got != want:
                mismatches.append((hex(w), ErrorFlag(got), ErrorFlag(want)))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    assert not mismatches, mismatches[:5]
    # The random words must exercise both outcomes, or the comparison proves little.
    outcomes = {reference_flags(queue, config, w) == 0 for w in words}
    assert outcomes == {True, False}


async def load(ctx, dut, words):
    """Write ``words`` into queue ``dut``'s instruction memory through its host port."""
    for i, w in enumerate(words):
        ctx.set(dut.imem_w, {"en": 1, "addr": i, "data": w})
        await ctx.tick()
    ctx.set(dut.imem_w.en, 0)


@pytest.mark.parametrize("config, queue", queue_params())
def test_host_write_stores_the_word_with_its_flags(config, queue):
    """The queue checks each word as the host writes it and stores the flags above it:
    the rows equal ``InstructionQueue.stored`` (``firmware.isa.word_flags``), which the
    simulations that fill the memory directly and the waves' fetch filter use."""
    rng = random.Random(f"stored/{config.name}/{queue.name}")
    words = [random_word(queue.kind, rng) for _ in range(min(config.queue_depth, 64))]
    dut = InstructionQueue(config, queue)
    rows = []

    async def tb(ctx):
        await load(ctx, dut, words)
        rows.extend(ctx.get(dut.imem.data[i]) for i in range(len(words)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert rows == [dut.stored(w) for w in words]
    assert any(r >> WORD_BITS[queue.kind] for r in rows) and not all(
        r >> WORD_BITS[queue.kind] for r in rows)


#: VXM operand encodings worth trying: streams (aligned or not, both directions),
#: ALUs (in range or not), the immediate, and junk in a ZERO operand.
OPERANDS = [0x41, 0x44, 0x63, 0x81, 0x8F, 0xC0, 0x05]


def boundary_words(kind):
    """Every opcode with every pair of its fields set to values at the usual bounds
    (0, 1, 3, 4, all ones; operand encodings for VXM sources), the others zero."""
    for info in OPS[kind].values():
        layout = info.layout()[1:]
        for i, (n1, lsb1, w1, _) in enumerate(layout):
            for n2, lsb2, w2, _ in layout[i:]:
                for v1 in _values(n1, w1):
                    for v2 in _values(n2, w2):
                        yield info.opcode | v1 << lsb1 | v2 << lsb2


def _values(name, width):
    if name in ("a", "b", "c"):
        return OPERANDS
    return sorted({v & ((1 << width) - 1) for v in (0, 1, 3, 4, (1 << width) - 1)})


@pytest.mark.parametrize("config, queue", queue_params())
def test_legality_at_the_bounds(config, queue):
    dut = LegalityCheck(config, queue)
    words = sorted(set(boundary_words(queue.kind)))
    mismatches = []

    async def tb(ctx):
        for w in words:
            ctx.set(dut.word, w)
            got, want = ctx.get(dut.flags), reference_flags(queue, config, w)
            if got != want:
                mismatches.append((hex(w), ErrorFlag(got), ErrorFlag(want)))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("width", [1, 3, 5])
def test_at_least_is_a_comparison(width):
    """``at_least`` (the checker's comparisons with a constant, as plain logic) agrees
    with ``>=`` for every value and every constant from below 0 to above the range."""
    value = Signal(width)
    bounds = range(-1, (1 << width) + 2)
    outs = [Signal(name=f"ge_{k + 1}") for k in bounds]
    m = Module()
    m.d.comb += [o.eq(at_least(value, k)) for o, k in zip(outs, bounds)]
    wrong = []

    async def tb(ctx):
        for v in range(1 << width):
            ctx.set(value, v)
            wrong.extend((v, k) for o, k in zip(outs, bounds) if ctx.get(o) != (v >= k))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert not wrong, wrong[:5]


# -- the sequencer ------------------------------------------------------------------

def I(mnemonic, **fields):
    return encode(Instr(MEM, mnemonic, fields))


def READ(addr, stream=0):
    return I("READ", addr=addr, stream=stream)


def run_queue(words, cycles, config=TINY, name="MEM_E0", notified_at=None, stop_at=None):
    """Run one queue for ``cycles`` local cycles; per cycle: (valid word, err, halted,
    waiting, notify). A ``NOTIFY`` is seen from ``notified_at`` on; ``stop`` rises at
    ``stop_at`` or, as the top does, in the cycle after the queue raised an error.

    As in the top: ``start``, one cycle in which the sequencer decides local cycle 0,
    then local cycle 0; ``notified`` is up from the cycle before ``notified_at`` (the
    sequencer decides a ``SYNC`` one cycle ahead)."""
    queue = config.floorplan.queue(name)
    dut = InstructionQueue(config, queue)
    trace = []

    async def tb(ctx):
        await load(ctx, dut, words)
        await ctx.tick()
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.notified, notified_at is not None and notified_at <= 0)
        await ctx.tick()
        stopped = False
        for t in range(cycles):
            ctx.set(dut.notified, notified_at is not None and t + 1 >= notified_at)
            ctx.set(dut.stop, stopped or (stop_at is not None and t >= stop_at))
            stopped = stopped or bool(ctx.get(dut.err))
            issue = ctx.get(dut.issue[0])
            trace.append({
                "word": issue.word if issue.valid else None,
                "err": ctx.get(dut.err),
                "halted": ctx.get(dut.halted),
                "waiting": ctx.get(dut.waiting),
                "notify": ctx.get(dut.notify),
                "stagger": [ctx.get(dut.issue[k]) for k in range(config.tiles)],
            })
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return trace


def issues(trace):
    return {t: c["word"] for t, c in enumerate(trace) if c["word"] is not None}


def first_halt(trace):
    return next(t for t, c in enumerate(trace) if c["halted"])


def errors(trace):
    return {t: ErrorFlag(c["err"]) for t, c in enumerate(trace) if c["err"]}


W = TINY.mem_words
BW = TINY.bank_words

# (id, program, {cycle: issued word}, h_q (cycle HALT is reached), {cycle: error})
SEQUENCES = [
    ("back-to-back", [READ(1), READ(2), I("HALT")],
     {0: READ(1), 1: READ(2)}, 2, {}),
    ("empty queue halts at 0", [], {}, 0, {}),
    ("nop n occupies n cycles", [READ(1), I("NOP", n=3), READ(2)],
     {0: READ(1), 4: READ(2)}, 5, {}),
    ("nop 1", [I("NOP", n=1), READ(2)], {1: READ(2)}, 2, {}),
    ("repeat d=1 fills every cycle", [READ(5), I("REPEAT", n=3, d=1, stride=2), READ(0)],
     {0: READ(5), 1: READ(7), 2: READ(9), 3: READ(11), 4: READ(0)}, 5, {}),
    ("repeat d=3 negative stride", [READ(5), I("REPEAT", n=2, d=3, stride=-1)],
     {0: READ(5), 3: READ(4), 6: READ(3)}, 7, {}),
    ("repeat after nop, first repetition now", [READ(5), I("NOP", n=2),
                                                I("REPEAT", n=1, d=3, stride=1)],
     {0: READ(5), 3: READ(6)}, 4, {}),
    ("repeat continues a repeat", [READ(0), I("REPEAT", n=2, d=1, stride=1),
                                   I("REPEAT", n=1, d=2, stride=10)],
     {0: READ(0), 1: READ(1), 2: READ(2), 4: READ(12)}, 5, {}),
    ("repeat of a two-address RW", [I("RW", raddr=0, waddr=BW, wstream=1),
                                    I("REPEAT", n=1, d=1, stride=4)],
     {0: I("RW", raddr=0, waddr=BW, wstream=1),
      1: I("RW", raddr=4, waddr=BW + 4, wstream=1)}, 2, {}),
    ("notify issues nothing", [I("NOTIFY"), READ(3)], {1: READ(3)}, 2, {}),
    ("end of memory halts", [READ(a) for a in range(TINY.queue_depth)],
     {a: READ(a) for a in range(TINY.queue_depth)}, TINY.queue_depth, {}),
    # illegal cases: flagged in their cycle, nothing issued
    ("nop 0", [I("NOP", n=0), READ(1)], {}, None, {0: ILL}),
    ("repeat with nothing to repeat", [I("REPEAT", n=1, d=1, stride=0)], {}, None, {0: ILL}),
    ("repeat n=0", [READ(1), I("REPEAT", n=0, d=1)], {0: READ(1)}, None, {1: ILL}),
    ("repeat d=0", [READ(1), I("REPEAT", n=1, d=0)], {0: READ(1)}, None, {1: ILL}),
    ("repeat in the past", [READ(1), I("NOP", n=2), I("REPEAT", n=1, d=2, stride=1)],
     {0: READ(1)}, None, {3: ILL}),
    ("repeat walks past the last word", [READ(W - 2), I("REPEAT", n=3, d=1, stride=1)],
     {0: READ(W - 2), 1: READ(W - 1)}, None, {2: RANGE}),
    ("repeat walks below zero", [READ(1), I("REPEAT", n=2, d=1, stride=-1)],
     {0: READ(1), 1: READ(0)}, None, {2: RANGE}),
    ("repeat walks an RW into one bank", [I("RW", raddr=BW - 1, waddr=BW + 1, wstream=1),
                                          I("REPEAT", n=1, d=1, stride=1)],
     {0: I("RW", raddr=BW - 1, waddr=BW + 1, wstream=1)}, None, {1: BANK}),
    ("bank conflict", [I("RW", raddr=1, waddr=2)], {}, None, {0: BANK}),
    ("address out of range", [READ(W)], {}, None, {0: RANGE}),
    ("stream out of range", [READ(0, stream=TINY.streams)], {}, None, {0: ILL}),
    ("unknown opcode", [31], {}, None, {0: ILL}),
    ("reserved bits of HALT", [1 << (WORD_BITS[MEM] - 1)], {}, None, {0: ILL}),
]


@pytest.mark.parametrize("program, want_issues, h_q, want_errors",
                         [pytest.param(*case[1:], id=case[0]) for case in SEQUENCES])
def test_sequencer(program, want_issues, h_q, want_errors):
    cycles = max([*want_issues, *want_errors, h_q or 0]) + 3
    trace = run_queue(program, cycles)
    assert issues(trace) == want_issues
    assert errors(trace) == want_errors
    if h_q is None:                  # an error at c stops the queue: h_q = c + 1
        h_q = min(want_errors) + 1
    assert first_halt(trace) == h_q
    assert all(c["halted"] for c in trace[h_q:])


def test_sync_waits_for_notified():
    # SYNC at 1 waits while `notified` (a NOTIFY in an earlier cycle) is low; it is
    # high from cycle 4, so SYNC passes in 4 and the next instruction issues in 5.
    trace = run_queue([READ(1), I("SYNC"), READ(2)], 9, notified_at=4)
    assert issues(trace) == {0: READ(1), 5: READ(2)}
    assert [t for t, c in enumerate(trace) if c["waiting"]] == [1, 2, 3]
    assert first_halt(trace) == 6


def test_sync_passes_at_once_when_notified():
    trace = run_queue([I("SYNC"), READ(2)], 4, notified_at=0)
    assert issues(trace) == {1: READ(2)}
    assert not any(c["waiting"] for c in trace)


def test_notify_output():
    trace = run_queue([READ(0), I("NOTIFY"), I("NOTIFY")], 5)
    assert [t for t, c in enumerate(trace) if c["notify"]] == [1, 2]


@pytest.mark.parametrize("program", [
    [READ(a) for a in range(8)],
    [READ(0), I("REPEAT", n=7, d=1, stride=1)],
    [READ(0), I("NOP", n=9), READ(1)],
])
def test_error_stop(program):
    # `stop` high from cycle 3 (an error raised in 2): nothing issues from 3 on, halted.
    trace = run_queue(program, 10, stop_at=3)
    assert all(t < 3 for t in issues(trace))
    assert first_halt(trace) == 3


def test_stagger():
    config = get_config("ulx3s")
    program = [READ(1), I("NOP", n=2), READ(2), I("REPEAT", n=3, d=2, stride=1)]
    trace = run_queue(program, 16, config=config)
    tile0 = [c["stagger"][0] for c in trace]
    assert sum(i.valid for i in tile0) == 5
    for k in range(config.tiles):
        for t, c in enumerate(trace):
            got = c["stagger"][k]
            if t < k:
                assert not got.valid
            else:
                assert (got.valid, got.word) == (tile0[t - k].valid, tile0[t - k].word)


def test_restart_runs_again():
    """A second `start` after the first run's HALT replays the program from word 0."""
    queue = TINY.floorplan.queue("MEM_E0")
    dut = InstructionQueue(TINY, queue)
    seen = []

    async def tb(ctx):
        await load(ctx, dut, [READ(9)])
        await ctx.tick()
        for _run in range(2):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick()                    # the sequencer decides local cycle 0
            for t in range(3):
                issue = ctx.get(dut.issue[0])
                if issue.valid:
                    seen.append((t, issue.word))
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == [(0, READ(9)), (0, READ(9))]


def test_elaborates_the_same_twice():
    """Simulating and then converting one object must not grow a second memory port."""
    dut = InstructionQueue(TINY, TINY.floorplan.queue("MEM_E0"))
    assert rtlil.convert(dut) == rtlil.convert(dut)
