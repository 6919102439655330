"""Formal checks of the gateware through yowasp-sby (``tests/formal/``).

* the quick checks prove their properties in the default run: the stream hop and the
  host link's frame parser for any number of cycles (k-induction), the queue
  sequencer for every legal program of 3 words, the bank hazard end to end;
* deliberately broken copies of the RTL must each give a counterexample, so no
  check can pass vacuously: a cheap one runs by default, all of them with ``-m slow``;
* the deeper bounds run with ``-m slow`` and in ``scripts/formal.sh``.
"""

import pytest

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from firmware.hostlink import CRC16, crc16

from formal.checks import QUICK, DEEP, CAUGHT
from formal.link_frames import crc16_step
from formal.mutants import Edit, MutationError, mutant
from formal.runner import run_sby


def _run(check, tmp_path):
    verdict = run_sby(check.bench(), check.name.replace(":", "_"), tmp_path,
                      depth=check.depth, mode=check.mode)
    print(verdict.summary())
    return verdict


def _holds(check, tmp_path):
    verdict = _run(check, tmp_path)
    assert verdict.passed, (f"{check.name}: {check.what}\n{verdict.summary()}\n"
                            f"failed: {verdict.failed}\ncounterexample: {verdict.traces}")
    if check.mode == "bmc":
        assert verdict.steps == check.depth


def _caught(check, tmp_path):
    verdict = _run(check, tmp_path)
    assert verdict.status == "FAIL", (f"the broken variant {check.name} ({check.what}) "
                                      f"was not caught: {verdict.summary()}")
    assert verdict.failed and verdict.traces


@pytest.mark.parametrize("check", QUICK, ids=str)
def test_property_holds(check, tmp_path):
    _holds(check, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("check", DEEP, ids=str)
def test_property_holds_deeper(check, tmp_path):
    _holds(check, tmp_path)


#: The broken variant run by default (about 3 s of CPU): it shows the runner does
#: report a counterexample; the others need ``-m slow`` (scripts/formal.sh runs all).
CANARIES = ("link_frames:crc_skips_len",)


@pytest.mark.parametrize("check", [pytest.param(c, marks=()) if c.name in CANARIES
                                   else pytest.param(c, marks=pytest.mark.slow)
                                   for c in CAUGHT], ids=str)
def test_broken_variant_is_caught(check, tmp_path):
    _caught(check, tmp_path)


def test_every_property_has_a_broken_variant():
    benches = {c.name.split(":")[0] for c in CAUGHT}
    assert benches == {"fabric_hop", "icu_sequencer", "mem_bank", "link_frames"}
    assert all(c.expect == "FAIL" for c in CAUGHT)


def test_monitor_crc_is_the_protocol_crc():
    """The link monitor's own CRC (crc16_step) is firmware.hostlink.crc16, checked on the
    catalogue's check value and on random byte strings in Amaranth's simulator."""
    import random
    m = Module()
    reg, byte, start = Signal(16, init=CRC16.initial), Signal(8), Signal()
    with m.If(start):
        m.d.sync += reg.eq(CRC16.initial)
    with m.Else():
        m.d.sync += reg.eq(crc16_step(reg, byte))
    rng = random.Random(7)
    cases = [b"123456789"] + [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 12)))
                              for _ in range(100)]
    got = []

    async def tb(ctx):
        for data in cases:
            ctx.set(start, 1)
            await ctx.tick()
            ctx.set(start, 0)
            for b in data:
                ctx.set(byte, b)
                await ctx.tick()
            got.append(ctx.get(reg))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got[0] == CRC16.check
    assert got == [crc16(d) for d in cases]


def test_mutation_must_apply_exactly_once():
    with pytest.raises(MutationError, match="found it 0 times"):
        mutant("rtl.fabric", [Edit("no such text in the fabric", "", "nothing")])
    with pytest.raises(MutationError, match="found it [2-9] times"):
        mutant("rtl.fabric", [Edit("m.d.sync", "m.d.comb", "every sync statement")])
