"""SECDED ECC on the MEM words (firmware/ecc.py, docs/ARCHITECTURE.md section 11).

* the code itself: every single-bit error corrected, every double-bit error detected,
  for the codeword widths of 1, 2, 4 and 16 lanes;
* the gateware's encoder and decoder (rtl/mem.py) against the code, bit for bit, on
  random words with random faults, for 2 and 4 lanes;
* fault injection into the golden model and into the whole TSP in Amaranth's
  simulator: single-bit faults corrected and counted with results unchanged,
  double-bit faults reported (flag, slice, tile, address) without stopping the
  machine, both engines equal in everything observable; the ECC status through the
  host link's STATUS reply.

``scripts/fault_inject.py`` runs the larger campaign.
"""

from itertools import combinations

import numpy as np
import pytest
from amaranth.sim import Simulator

from firmware.ecc import Fault, FaultError, Secded, check_bits, code_for, encode_word
from firmware.image import ProgramImage
from firmware.isa import ErrorFlag, Instr, encode
from firmware.machine import SliceKind, get_config
from rtl.mem import MemSlice
from sim.golden import run_image
from scripts_util import load_script


TINY = get_config("tiny")
MEM_ONLY = (SliceKind.MEM,)


# -- the code ---------------------------------------------------------------------

@pytest.mark.parametrize("data_bits, r", [(8, 5), (16, 6), (32, 7), (64, 8), (128, 9), (256, 10)])
def test_check_bits(data_bits, r):
    assert check_bits(data_bits) == r
    assert Secded(data_bits).codeword_bits == data_bits + r


@pytest.mark.parametrize("data_bits", [8, 16, 32, 128])
def test_columns_are_a_hsiao_code(data_bits):
    code = Secded(data_bits)
    cols = code.columns
    assert len(set(cols)) == data_bits
    assert all(bin(c).count("1") % 2 == 1 and bin(c).count("1") >= 3 for c in cols)
    assert all(c < 1 << code.check_bits for c in cols)
    # balanced: the check bits' XOR trees differ by at most one input
    sizes = [len(cover) for cover in code.covers]
    assert max(sizes) - min(sizes) <= 1, sizes


@pytest.mark.parametrize("data_bits", [8, 16, 32, 128])
def test_every_single_error_corrected_every_double_detected(data_bits):
    code = Secded(data_bits)
    n = code.codeword_bits
    rng = np.random.default_rng(data_bits)
    for _ in range(3 if data_bits <= 32 else 1):     # 9316 pairs a word at 128 bits
        data = int.from_bytes(rng.bytes(data_bits // 8), "little")
        check = code.encode(data)
        assert code.decode(data, check) == (data, False, False)
        for bit in range(n):
            d, c = _flip(data, check, (bit,), data_bits)
            assert code.decode(d, c) == (data, True, False), bit
        for pair in combinations(range(n), 2):
            d, c = _flip(data, check, pair, data_bits)
            assert code.decode(d, c) == (d, False, True), pair


def _flip(data, check, bits, data_bits):
    for b in bits:
        if b < data_bits:
            data ^= 1 << b
        else:
            check ^= 1 << (b - data_bits)
    return data, check


def test_code_for_follows_the_config():
    assert code_for(TINY).data_bits == 8 * TINY.lanes
    assert code_for(TINY.with_(ecc=False)) is None
    for name in ("tiny", "ulx3s"):
        assert get_config(name).ecc


@pytest.mark.parametrize("fault, message", [
    (Fault(0, "MEM_X9", 0, 0, (1,)), "no slice 'MEM_X9'"),
    (Fault(0, "VXM", 0, 0, (1,)), "VXM is not a MEM slice"),
    (Fault(0, "MEM_E0", TINY.tiles, 0, (1,)), "tile = 2 out of range 0..1"),
    (Fault(0, "MEM_E0", 0, TINY.mem_words, (1,)), "addr = 512 out of range 0..511"),
    (Fault(-1, "MEM_E0", 0, 0, (1,)), "cycle = -1 out of range"),
    (Fault(0, "MEM_E0", 0, 0, (22,)), r"bits \(22,\) must be distinct codeword bits 0..21"),
    (Fault(0, "MEM_E0", 0, 0, (3, 3)), "must be distinct"),
    (Fault(0, "MEM_E0", 0, 0, ()), "must be distinct"),
])
def test_bad_faults_are_refused(fault, message):
    with pytest.raises(FaultError, match=message):
        fault.validate(TINY)


def test_no_check_bits_without_ecc():
    with pytest.raises(FaultError, match="no ECC check bits"):
        Fault(0, "MEM_E0", 0, 0, (16,)).validate(TINY.with_(ecc=False))


# -- the gateware's codec against the code ------------------------------------------------

@pytest.mark.parametrize("config", [TINY, TINY.with_(lanes=4)], ids=["2 lanes", "4 lanes"])
def test_gateware_codec_matches_the_code(config):
    """Host writes store the code's check bits; READs of words with 0, 1 or 2 flipped
    bits per tile emit what Secded.decode gives and report it on ``ecc``; host reads
    return the corrected word and report nothing."""
    c = config
    code = code_for(c)
    sl = c.floorplan.slice("MEM_E0")
    dut = MemSlice(c, sl)
    rng = np.random.default_rng(c.lanes)
    addrs = [int(a) for a in rng.choice(c.mem_words, 24, replace=False)]
    words = rng.integers(0, 256, (len(addrs), c.vl), dtype=np.uint8)
    faults = []
    for a in addrs:
        for k in range(c.tiles):
            nbits = int(rng.integers(0, 3))
            if nbits:
                bits = tuple(int(b) for b in rng.choice(code.codeword_bits, nbits, replace=False))
                faults.append(Fault(0, sl.name, k, a, bits))
    stored = {a: (words[i].copy(), encode_word(c, words[i])) for i, a in enumerate(addrs)}
    for f in faults:                                       # the faulty words, as the model sees them
        data_mask, check_mask = f.masks(c)
        word, checks = stored[f.addr]
        L = c.lanes
        v = int.from_bytes(word[f.tile * L:(f.tile + 1) * L].tobytes(), "little") ^ data_mask
        word[f.tile * L:(f.tile + 1) * L] = np.frombuffer(v.to_bytes(L, "little"), np.uint8)
        checks[f.tile] ^= check_mask
    read_word = encode(Instr(SliceKind.MEM, "READ", {"addr": 0, "dir": 0, "stream": 1}))
    seen = {"emitted": {}, "host": {}, "checks": {}}

    async def tb(ctx):
        for i, a in enumerate(addrs):
            ctx.set(dut.host, {"addr": a, "we": 1, "wdata": [int(x) for x in words[i]]})
            await ctx.tick()
        ctx.set(dut.host.we, 0)
        for a in addrs:
            seen["checks"][a] = [ctx.get(mem.data[a]) for mem in dut.checks]
        for f in faults:
            dut.inject(ctx, f)
        for a in addrs:                       # every tile reads a in one cycle
            for k in range(c.tiles):
                ctx.set(dut.issue[k], {"valid": 1, "word": read_word | a << 11})
            await ctx.tick()
            for k in range(c.tiles):
                ctx.set(dut.issue[k].valid, 0)
            seen["emitted"][a] = [(ctx.get(dut.e_emit[k]), bytes(ctx.get(dut.e_out[k][1])),
                                   ctx.get(dut.ecc[k].corrected),
                                   ctx.get(dut.ecc[k].uncorrectable), ctx.get(dut.ecc[k].addr))
                                  for k in range(c.tiles)]
        for a in addrs:
            ctx.set(dut.host.addr, a)
            await ctx.tick()
            seen["host"][a] = (bytes(ctx.get(dut.host_rdata)),
                               [(ctx.get(dut.ecc[k].corrected), ctx.get(dut.ecc[k].uncorrectable))
                                for k in range(c.tiles)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()

    L = c.lanes
    assert read_word | 5 << 11 == encode(Instr(SliceKind.MEM, "READ",
                                               {"addr": 5, "dir": 0, "stream": 1}))
    n_corrected = n_bad = 0
    for i, a in enumerate(addrs):
        assert seen["checks"][a] == encode_word(c, words[i]), a
        word, checks = stored[a]
        want = bytearray()
        for k in range(c.tiles):
            data = int.from_bytes(word[k * L:(k + 1) * L].tobytes(), "little")
            value, corrected, bad = code.decode(data, checks[k])
            n_corrected += corrected
            n_bad += bad
            want += value.to_bytes(L, "little")
            assert seen["emitted"][a][k] == (1 << 1, value.to_bytes(L, "little"),
                                             corrected, bad, a), (a, k)
        assert seen["host"][a] == (bytes(want), [(0, 0)] * c.tiles), a
    assert n_corrected > 5 and n_bad > 5           # the random faults hit both cases


# -- fault injection: golden model, then the whole TSP --------------------------------

def I(mnemonic, **fields):
    return encode(Instr(SliceKind.MEM, mnemonic, fields))


N_WORDS = 16
DST = 0x100


def copy_program(config=TINY, seed=1, n=N_WORDS):
    """MEM_W0 reads words 0..n-1 in cycles 0..n-1 onto E0; MEM_E1 writes them to
    DST.. as they pass; MEM_W0 reads words 0..n/2-1 again from cycle n + 4 on, and
    MEM_E1 writes those to DST + n ..."""
    from firmware.image import Output
    fp = config.floorplan
    img = ProgramImage(config)
    rng = np.random.default_rng(seed)
    img.set_words("MEM_W0", 0, rng.integers(0, 256, (n, config.vl), dtype=np.uint8))
    d = config.latency.mem_read + abs(fp.slice("MEM_E1").pos - fp.slice("MEM_W0").pos)
    again = n // 2
    img.queues["MEM_W0"] = [I("READ", addr=0, dir=0, stream=0), I("REPEAT", n=n - 1, d=1, stride=1),
                            I("NOP", n=4), I("READ", addr=0, dir=0, stream=0),
                            I("REPEAT", n=again - 1, d=1, stride=1)]
    img.queues["MEM_E1"] = [I("NOP", n=d), I("WRITE", addr=DST, dir=0, stream=0),
                            I("REPEAT", n=n - 1, d=1, stride=1), I("NOP", n=4),
                            I("WRITE", addr=DST + n, dir=0, stream=0),
                            I("REPEAT", n=again - 1, d=1, stride=1)]
    img.outputs["y"] = Output("y", "MEM_E1", DST, n + again, "u8")
    img.outputs["src"] = Output("src", "MEM_W0", 0, n, "u8")
    return img


def single_faults(config=TINY):
    """Single-bit faults: data bits of words 0..7 and check bits of words 8..11 before
    their reads (words 0..7 are read twice), one on word 12 in the very cycle of its
    read, one on word 13 after its only read, one on a destination word before its
    WRITE replaces it."""
    dbits = 8 * config.lanes
    out = []
    for a in range(8):
        out.append(Fault(0, "MEM_W0", a % config.tiles, a, (3 * a % dbits,)))
    for a in range(8, 12):
        out.append(Fault(a // 2, "MEM_W0", a % config.tiles, a, (dbits + a % 5,)))
    out += [Fault(12, "MEM_W0", 1, 12, (7,)), Fault(14, "MEM_W0", 0, 13, (1,)),
            Fault(0, "MEM_E1", 1, DST + 2, (4,))]
    return out


#: corrections single_faults() cause: words 0..7 twice, words 8..12 once
SINGLE_CORRECTIONS = 8 * 2 + 5


def test_golden_single_faults_are_corrected_and_counted():
    img = copy_program()
    clean = run_image(img)
    res = run_image(img, faults=single_faults())
    assert res.ecc.corrected == SINGLE_CORRECTIONS and not res.ecc.failed
    assert res.errors == 0 and res.cycles == clean.cycles and res.events == []
    for name in clean.outputs:
        np.testing.assert_array_equal(res.outputs[name], clean.outputs[name], err_msg=name)
    # the stored words keep their flipped bits (nothing scrubs them) ...
    assert (res.memory["MEM_W0"][:14] != clean.memory["MEM_W0"][:14]).any(axis=1).sum() == 10
    # ... except the destination word, which its WRITE replaced
    np.testing.assert_array_equal(res.memory["MEM_E1"], clean.memory["MEM_E1"])


def double_faults():
    """Word 2 tile 1 and word 3 tile 0: their READs (cycles 2 and 3) leave the RAM in the
    same clock cycle (2 + 1 + tile 1 = 3 + 1 + tile 0), so tile 0's word 3 is first;
    word 9 tile 1 later."""
    return [Fault(0, "MEM_W0", 1, 2, (0, 5)), Fault(0, "MEM_W0", 0, 3, (3, 19)),
            Fault(1, "MEM_W0", 1, 9, (2, 20))]


def test_golden_double_faults_are_reported_and_the_run_goes_on():
    img = copy_program()
    clean = run_image(img)
    res = run_image(img, faults=double_faults() + single_faults()[:1])
    W0 = TINY.floorplan.slice("MEM_W0").pos
    assert res.errors == ErrorFlag.MEM_ECC
    assert (res.ecc.failed, res.ecc.slice, res.ecc.tile, res.ecc.addr) == (True, W0, 0, 3)
    assert res.ecc.corrected == 2                      # word 0, read twice
    assert res.cycles == clean.cycles                  # MEM_ECC does not stop the machine
    # one event per uncorrectable read (as the data leave the RAM): words 2 and 3 twice
    # (second pass from cycle 16 + 4), word 9 once
    assert sorted((e.cycle, e.where, e.message.split(":")[0]) for e in res.events) == [
        (3, "MEM_W0", "tile 1 word 2"), (4, "MEM_W0", "tile 0 word 3"),
        (10, "MEM_W0", "tile 1 word 9"), (23, "MEM_W0", "tile 1 word 2"),
        (24, "MEM_W0", "tile 0 word 3")]
    # the words pass through as read: the copies hold the flipped data bits, nothing else moved
    got, want = res.outputs["y"], clean.outputs["y"].copy()
    for f in double_faults():
        mask, _ = f.masks(TINY)
        for row in (f.addr, f.addr + N_WORDS) if f.addr < 8 else (f.addr,):
            lanes = slice(f.tile * TINY.lanes, (f.tile + 1) * TINY.lanes)
            v = int.from_bytes(want[row, lanes].astype(np.uint8).tobytes(), "little") ^ mask
            want[row, lanes] = np.frombuffer(v.to_bytes(TINY.lanes, "little"), np.uint8)
    np.testing.assert_array_equal(got, want)


def test_golden_without_ecc_a_fault_is_a_wrong_result():
    cfg = TINY.with_(ecc=False)
    img = copy_program(cfg)
    clean = run_image(img)
    res = run_image(img, faults=[Fault(0, "MEM_W0", 0, 5, (2,))])
    assert res.ecc.corrected == 0 and res.errors == 0
    assert res.outputs["y"][5, 0] == clean.outputs["y"][5, 0] ^ 4


def assert_engines_agree(rtl, gold):
    from sim.rtl_runner import compare
    assert not compare(rtl, gold), compare(rtl, gold)
    assert rtl.ecc == gold.ecc
    for name in gold.outputs:
        np.testing.assert_array_equal(rtl.outputs[name], gold.outputs[name], err_msg=name)


def test_tsp_single_and_double_faults_match_the_golden_model():
    """The whole (MEM-only) tiny TSP with single and double faults together: final
    memory as stored, outputs as a host reads them, errors, ECC status and cycles
    all equal to the golden model's."""
    from sim.amaranth_run import run_image_amaranth
    img = copy_program()
    faults = single_faults() + double_faults()
    gold = run_image(img, faults=faults)
    # word 9's second fault flips check bit 20 back: one data bit wrong, corrected
    W0 = TINY.floorplan.slice("MEM_W0").pos
    assert (gold.ecc.corrected, gold.ecc.slice, gold.ecc.tile, gold.ecc.addr) == (
        SINGLE_CORRECTIONS, W0, 0, 3)
    assert_engines_agree(run_image_amaranth(img, kinds=MEM_ONLY, faults=faults), gold)


@pytest.mark.slow
def test_tsp_host_reads_corrected_words():
    """READ_MEM through the host port returns the corrected words (and counts nothing).
    (Slow: every word through the port; the host link test reads one that way.)"""
    from sim.amaranth_run import run_image_amaranth
    img = copy_program()
    faults = single_faults()
    rtl = run_image_amaranth(img, kinds=MEM_ONLY, faults=faults, readback="host")
    clean = run_image(img)
    assert rtl.ecc.corrected == SINGLE_CORRECTIONS
    for name in clean.memory:
        np.testing.assert_array_equal(rtl.memory[name], clean.memory[name], err_msg=name)


def test_tsp_without_ecc_matches_the_golden_model():
    from sim.amaranth_run import run_image_amaranth
    img = copy_program(TINY.with_(ecc=False))
    faults = [Fault(0, "MEM_W0", 1, 4, (9,)), Fault(3, "MEM_W0", 0, 6, (0, 1))]
    gold = run_image(img, faults=faults)
    assert gold.ecc.corrected == 0 and gold.errors == 0
    assert_engines_agree(run_image_amaranth(img, kinds=MEM_ONLY, faults=faults), gold)


@pytest.mark.slow
def test_ulx3s_tsp_faults_match_the_golden_model():
    from sim.amaranth_run import run_image_amaranth
    c = get_config("ulx3s")
    img = copy_program(c)
    faults = [Fault(a, "MEM_W0", a % c.tiles, a, (a % 22,)) for a in range(N_WORDS)]
    faults += [Fault(0, "MEM_W0", 3, 5, (1, 17)), Fault(2, "MEM_W0", 2, 6, (0, 15))]
    gold = run_image(img, faults=faults)
    assert gold.ecc.failed and gold.ecc.corrected > 0
    assert_engines_agree(run_image_amaranth(img, faults=faults), gold)


def test_ecc_status_through_the_host_link():
    """STATUS carries the ECC fields; READ_MEM over the link returns the corrected word."""
    from firmware.hostlink import HostLink, SimTransport
    img = copy_program(n=4)             # a short program: the UART is simulated bit by bit
    faults = [Fault(0, "MEM_W0", 0, 0, (5,))] + double_faults()[:2]
    gold = run_image(img, faults=faults)
    assert (gold.ecc.corrected, gold.ecc.addr) == (2, 3)
    tr = SimTransport(TINY, divisor=4, timeout_bytes=4, kinds=MEM_ONLY)
    link = HostLink(tr)
    link.load_image(img, fresh=True)
    tsp = tr.dut.tsp
    # cycle 0 faults: before START is the same (the load does not touch these words again)
    tr.peek(lambda ctx: [tsp.mem_slices[f.slice].inject(ctx, f) for f in faults])
    link.start()
    status = link.wait_done(0.05)
    assert status.ecc == gold.ecc and status.errors == gold.errors == ErrorFlag.MEM_ECC
    assert status.ecc.corrected > 0
    word0 = link.read_mem(TINY.floorplan.slice("MEM_W0").pos, 0, 1)
    np.testing.assert_array_equal(word0[0], img.memory_array("MEM_W0")[0])


def _fault_inject_script():
    return load_script("fault_inject")


def test_fault_campaign_on_the_golden_model():
    """scripts/fault_inject.py's campaign, small: every fault read is corrected or detected."""
    script = _fault_inject_script()
    counts, failures = script.campaign(TINY, "golden", 200, seed=5, out=None)
    assert failures == []
    assert sum(n for n, _ in counts.values()) == 200
    assert all(good == n for n, good in counts.values())
    assert counts[("single", "read")][0] > 50 and counts[("double", "read")][0] > 50


@pytest.mark.slow
def test_fault_campaign_on_the_gateware():
    script = _fault_inject_script()
    counts, failures = script.campaign(TINY, "both", 100, seed=6, out=None)
    assert failures == []
    assert all(good == n for n, good in counts.values())
