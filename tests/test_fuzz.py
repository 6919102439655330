"""Differential fuzzing (``sim/fuzz.py``) and the random program generator (``sim/randprog.py``).

The default run holds a modest fixed-seed batch: random ``tiny`` programs on
the golden model and on the gateware in one Amaranth simulator (reset between
programs), every hop register of every cycle compared. ``tsp fuzz --count N``
runs as many as asked.
"""

import copy

import numpy as np
import pytest

from firmware.cli import main as tsp
from firmware.isa import DecodeError, ErrorFlag, check, decode
from firmware.machine import get_config
from sim import fuzz
from sim.golden import run_image
from sim.randprog import random_program


TINY = get_config("tiny")

#: The default-run batch: seeds 0..BATCH-1 with every fourth one faulty.
BATCH = 8


@pytest.fixture(scope="module")
def batch():
    """One simulator for the whole module (elaborating ``tiny`` costs seconds)."""
    return fuzz.batch_for(TINY)


# -- the batch ----------------------------------------------------------------------

def test_fixed_seed_batch_agrees_on_every_hop(batch):
    cases = []
    for seed in range(BATCH):
        faulty = fuzz.is_faulty(seed, 4)
        image = fuzz.make_program(TINY, seed, 12, faulty)
        cases.append(fuzz.run_case(batch, image, seed, faulty))
    failed = [c.report() for c in cases if not c.ok]
    assert not failed, "\n".join(failed)
    assert sum(c.faulty for c in cases) == 2
    assert all(c.errors for c in cases if c.faulty)
    assert not any(c.errors for c in cases if not c.faulty)


def test_direct_and_host_port_loading_give_the_same_run(batch):
    """The fast load (block RAMs written directly, SECDED check bits included) must
    leave the machine exactly as the host port would: same cycles, memory, hops."""
    image = random_program(TINY, 31, idle_tables=False)
    direct = batch.run(image)
    batch.load = "host"
    try:
        host = batch.run(image)
    finally:
        batch.load = "direct"
    assert (direct.cycles, direct.errors) == (host.cycles, host.errors)
    for name in direct.memory:
        np.testing.assert_array_equal(direct.memory[name], host.memory[name], err_msg=name)
    np.testing.assert_array_equal(direct.hops, host.hops)


def test_reset_leaves_nothing_behind(batch):
    """A program run after others gives what it gives on a fresh machine (the golden
    model): MXM weights and accumulators, tables and memories do not leak across."""
    first = random_program(TINY, 41)
    after = random_program(TINY, 42)
    batch.run(first)
    case = fuzz.run_case(batch, after, 42, False)
    assert case.ok, case.report()
    again = batch.run(after)
    assert again.cycles == case.cycles


def test_a_wrong_byte_is_reported(batch):
    """check_run finds one flipped memory byte and one flipped hop register byte."""
    image = random_program(TINY, 5)
    golden = run_image(image, trace=True)
    rtl = batch.run(image)
    assert check_clean(rtl, golden) == ([], None)
    bad = copy.deepcopy(rtl)
    bad.memory["MEM_E1"][3, 1] ^= 0x10
    found, _ = fuzz.check_run(bad, golden, TINY)
    assert found and "MEM_E1: 1 words differ, first word 0x3 lane 1" in found[0]
    bad = copy.deepcopy(rtl)
    cycle, tile = len(bad.hops) // 2, 1
    bad.hops[cycle, 0, 4, tile, 2, 0] ^= 0x01          # eastward stream 2 at position 4
    found, divergence = fuzz.check_run(bad, golden, TINY)
    assert found == ["hop registers differ"]
    assert (divergence.cycle, divergence.tile, divergence.position, divergence.stream,
            divergence.direction) == (cycle, tile, 4, 2, "E")


def check_clean(rtl, golden):
    found, divergence = fuzz.check_run(rtl, golden, TINY)
    return found, divergence


def test_a_valid_program_that_errs_is_reported_as_invalid(batch):
    """The generator's promise is checked too: a program handed in as valid on which
    the golden model raises an error is a finding (``invalid``)."""
    image = random_program(TINY, 3, errors=True)
    case = fuzz.run_case(batch, image, 3, faulty=False)
    assert case.invalid and "the golden model raised" in case.invalid
    assert not case.mismatches                        # both engines still agree on it
    assert not case.ok


# -- the command ----------------------------------------------------------------------

def test_cli_fuzz_counts_and_exit_status(capsys, batch):
    status = tsp(["fuzz", "--count", "3", "--seed", "200", "--fault-every", "3", "-q"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert ("seeds 200..202: 3 programs ran (1 with a deliberate fault" in out
            and "0 mismatched (or failed to run), 0 invalid" in out)


@pytest.mark.parametrize("args, message", [
    (["--count", "-1"], "--count must not be negative, not -1"),
    (["--config", "groq"], "config 'groq' is for the golden model and compiler only"),
    (["--config", "nope"], "unknown configuration 'nope'"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_cli_fuzz_bad_arguments_are_one_line(capsys, args, message):
    assert tsp(["fuzz", "-q"] + args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# -- the generator ----------------------------------------------------------------------

@pytest.mark.parametrize("config, count", [("tiny", 20), ("ulx3s", 4)])
def test_random_programs_are_legal_and_exercise_the_mxm(config, count):
    """Valid programs raise nothing on the golden model, every word passes isa.check,
    faulty ones raise; most multiply nonzero weights by nonzero activations."""
    c = get_config(config)
    fp = c.floorplan
    products = 0
    for seed in range(count):
        image = random_program(c, seed)
        for name, words in image.queues.items():
            q = fp.queue(name)
            for w in words:
                ins = decode(q.kind, w)
                assert not check(ins, q, c), (seed, name, str(ins))
        model_products = _nonzero_products(image)
        assert model_products["errors"] == 0, (seed, model_products["events"])
        products += model_products["nonzero"] > 0
        assert run_image(random_program(c, seed, errors=True)).errors, seed
    # MXM_PROLOGUE = 0.8 of the programs carry the coordinated sequence; before it,
    # no tiny program and one ulx3s program in a hundred did (measured).
    assert products >= count // 2, f"{products} of {count} programs had a nonzero MXM product"


def _nonzero_products(image):
    """Run ``image`` on the golden model, counting ABCs whose product is nonzero."""
    import sim.golden as golden
    seen = {"nonzero": 0}
    original = golden._MxmUnit.issue

    def issue(unit, ins, queue, t):
        if ins.mnemonic == "ABC":
            a = unit.stream(ins.fields["dir"], ins.fields["stream"], t)[0]
            seen["nonzero"] += bool(np.any(a.view(np.int8).astype(np.float32) @ unit.active))
        original(unit, ins, queue, t)

    golden._MxmUnit.issue = issue
    try:
        result = run_image(image)
    finally:
        golden._MxmUnit.issue = original
    return {**seen, "errors": result.errors, "events": [str(e) for e in result.events[:3]]}


def test_same_seed_same_program():
    a, b = random_program(TINY, 77), random_program(TINY, 77)
    assert a.to_bytes() == b.to_bytes()
    assert random_program(TINY, 78).to_bytes() != a.to_bytes()


def test_idle_tables_are_left_out_only_when_unread():
    kinds = {q.name: q.kind for q in TINY.floorplan.queues}
    for seed in range(8):
        full, lean = random_program(TINY, seed), random_program(TINY, seed, idle_tables=False)
        assert full.queues == lean.queues
        used = {decode(kinds[q], w).mnemonic for q, words in lean.queues.items() for w in words}
        assert (lean.lut is not None) == ("LUT" in used)
        assert bool(lean.perms) == ("PERM" in used)
        a, b = run_image(full), run_image(lean)
        assert (a.cycles, a.errors) == (b.cycles, b.errors)
        for name, mem in a.memory.items():
            np.testing.assert_array_equal(mem, b.memory[name])


# -- shrinking ----------------------------------------------------------------------------

def test_minimise_keeps_the_failure_and_drops_the_rest():
    """Shrink a program with an undefined opcode while the golden model still raises
    ILLEGAL_INSTR: what is left is that word (and the NOPs that reach it)."""
    image = random_program(TINY, SEED_WITH_BAD_OPCODE, length=6, errors=True)
    kinds = {q.name: q.kind for q in TINY.floorplan.queues}
    assert any(_undecodable(kinds[q], w) for q, ws in image.queues.items() for w in ws)
    words = sum(len(w) for w in image.queues.values())

    def fails(candidate):
        return bool(run_image(candidate).errors & ErrorFlag.ILLEGAL_INSTR)

    assert fails(image)
    small = fuzz.minimise(image, fails)
    assert fails(small)
    left = [(q, w) for q, ws in small.queues.items() for w in ws if w]
    assert [w for q, w in left if _undecodable(kinds[q], w)], "the bad word was shrunk away"
    assert all(_undecodable(kinds[q], w) or decode(kinds[q], w).mnemonic == "NOP"
               for q, w in left), left
    assert len(small.queues) and sum(len(w) for w in small.queues.values()) < words // 4
    assert all(not m for m in small.memory.values()) and small.lut is None and not small.perms


#: A seed whose faulty program carries an undefined opcode (the fault kind is random).
SEED_WITH_BAD_OPCODE = 2


def _undecodable(kind, word):
    try:
        decode(kind, word)
    except DecodeError:
        return True
    return False


def test_minimise_a_mismatch_down_to_its_cause():
    """An engine that gets every RW wrong (a stand-in for a gateware bug): the mismatch
    is found, and minimising keeps an RW and little else."""
    from sim.amaranth_run import AmaranthResult

    class WrongRw:
        def run(self, image):
            golden = run_image(image)
            memory = {name: mem.copy() for name, mem in golden.memory.items()}
            kinds = {q.name: q.kind for q in TINY.floorplan.queues}
            if any(decode(kinds[q], w).mnemonic == "RW" for q, ws in image.queues.items()
                   for w in ws):
                memory["MEM_W1"][0, 0] ^= 1
            return AmaranthResult(golden.cycles, golden.errors, 0, 0, memory, {})

    seed = next(s for s in range(50) if any(
        decode(TINY.floorplan.queue(q).kind, w).mnemonic == "RW"
        for q, ws in random_program(TINY, s, length=4).queues.items() for w in ws))
    image = random_program(TINY, seed, length=4)
    case = fuzz.run_case(WrongRw(), image, seed, False)
    assert case.mismatches and "MEM_W1: 1 words differ" in case.mismatches[0]
    small = fuzz.minimise_mismatch(image, case, WrongRw())
    kinds = {q.name: q.kind for q in TINY.floorplan.queues}
    left = [decode(kinds[q], w).mnemonic for q, ws in small.queues.items() for w in ws if w]
    assert "RW" in left and len(left) <= 3, left
    assert not run_image(small).errors
