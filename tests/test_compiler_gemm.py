"""Compiled GEMMs on the golden model: numpy's A @ B, in exactly the predicted cycles.

Expected products are plain numpy (int64 matmul of the int8 operands); the
cycle bounds follow from the MXM's issue rate (one instruction per cycle: M
ABCs, ceil(VL/streams) LWs and one IW per tile) and the latencies of
docs/ARCHITECTURE.md, not from the compiler's own arithmetic.
"""

import numpy as np
import pytest

from firmware.asm import assemble, disassemble
from firmware.compiler import CompileError, compile_gemm
from firmware.image import ProgramImage
from firmware.machine import get_config
from sim.golden import run_image


def ceil(a, b):
    return -(-a // b)


def run_and_check(g):
    r = run_image(g.image)
    assert r.errors == 0, [str(e) for e in r.events[:3]]
    assert r.cycles == g.predicted_cycles
    expected = g.A.astype(np.int64) @ g.B.astype(np.int64)
    assert np.array_equal(g.result(r.memory).astype(np.int64), expected)
    return r


SHAPES = [
    ("tiny", 1, 1, 1),
    ("tiny", 4, 4, 4),
    ("tiny", 8, 8, 8),
    ("tiny", 5, 7, 9),          # ragged everywhere
    ("tiny", 16, 12, 4),        # M = acc_slots
    ("tiny", 20, 8, 8),         # M > acc_slots: two chunks
    ("tiny", 37, 3, 6),         # three chunks, ragged K and N
    ("tiny", 3, 17, 1),
    ("ulx3s", 1, 8, 8),         # one VL x VL weight tile (VL = 8)
    ("ulx3s", 8, 8, 8),
    ("ulx3s", 1, 16, 16),
    ("ulx3s", 16, 16, 16),      # 2 x 2 weight tiles
    ("ulx3s", 31, 33, 17),
    ("ulx3s", 64, 64, 64),
    ("ulx3s", 300, 20, 16),     # M > acc_slots = 256
    ("groq", 8, 330, 650),
]


@pytest.mark.parametrize("config, M, K, N", SHAPES)
def test_gemm_matches_numpy_in_predicted_cycles(config, M, K, N):
    run_and_check(compile_gemm(config, M, K, N, seed=M * 10007 + K * 101 + N))


def random_shapes(config, count, m_max, kn_max, seed):
    rng = np.random.default_rng(seed)
    return [(config, *map(int, rng.integers(1, [m_max, kn_max, kn_max], endpoint=True)))
            for _ in range(count)]


@pytest.mark.parametrize("config, M, K, N", random_shapes("tiny", 6, 16, 16, 1)
                         + random_shapes("ulx3s", 6, 70, 64, 2))
def test_gemm_random_shapes(config, M, K, N):
    run_and_check(compile_gemm(config, M, K, N, seed=M + K + N))


@pytest.mark.parametrize("config, M, K, N", [("tiny", 6, 5, 7), ("ulx3s", 20, 40, 24)])
def test_gemm_with_separate_acc(config, M, K, N):
    g = compile_gemm(config, M, K, N, fused_emit=False)
    assert all(p.instr.mnemonic != "ABC" or not p.instr.emit for p in g.schedule.placements("MXM_E"))
    assert sum(p.instr.mnemonic == "ACC" for p in g.schedule.placements("MXM_E")) == M * ceil(N, g.config.vl)
    run_and_check(g)


def test_gemm_on_the_west_mxm():
    g = compile_gemm("groq", 7, 40, 330, mxm="W")
    assert {p.queue for p in g.schedule.placements() if p.queue.startswith("MXM")} == {"MXM_W"}
    run_and_check(g)


def test_gemm_extreme_operands():
    c = get_config("ulx3s")
    K = 3 * c.vl + 5
    A = np.full((9, K), -128)
    B = np.full((K, 21), -128)
    B[::2] = 127
    g = compile_gemm(c, 9, K, 21, A=A, B=B)
    assert np.array_equal(g.A, A) and np.array_equal(g.B, B)
    run_and_check(g)


@pytest.mark.parametrize("config, M, K, N", [("tiny", 20, 8, 8), ("ulx3s", 64, 64, 64),
                                             ("ulx3s", 31, 33, 17), ("ulx3s", 80, 80, 80),
                                             ("groq", 40, 330, 650)])
def test_mxm_never_idles_in_steady_state(config, M, K, N):
    """Every pass costs its ABCs, ceil(VL/streams) LWs (at most) and one IW,
    nothing more; the rest is filling the pipe at the start and draining it at
    the end. 80^3 is the largest cube whose program fits ulx3s's 512-word
    queues (100 passes at VL 8, two LWs each with four streams a direction;
    84^3 needs 121 passes and 607 MXM words)."""
    c = get_config(config)
    lat, width = c.latency, c.floorplan.width
    kt, nt = ceil(K, c.vl), ceil(N, c.vl)
    passes = ceil(M, c.acc_slots) * nt * kt
    lw = ceil(c.vl, min(c.streams, c.mem_slices * 2))
    busy = nt * kt * M + passes * (lw + 1)
    fill = lat.mem_read + width                              # first weights reach the MXM
    drain = lat.mxm_abc + lat.mxm_acc + width + 1 + c.tiles  # last row written, HALT, stagger
    g = compile_gemm(c, M, K, N)
    assert g.bound == M * kt * nt
    assert g.bound + 2 * passes <= g.predicted_cycles <= busy + fill + drain


def test_hazard_checker_proves_every_stream_read():
    c = get_config("ulx3s")
    M, K, N = 40, 50, 20
    g = compile_gemm(c, M, K, N)
    kt, nt = ceil(K, c.vl), ceil(N, c.vl)
    # per pass VL weight columns and M activation rows, and 4 byte planes per result row
    assert g.reads_checked == nt * kt * (c.vl + M) + 4 * M * nt


def test_gemm_that_does_not_fit_is_refused():
    with pytest.raises(CompileError, match="C needs 8192 words per byte plane; config ulx3s has "
                                           "2 group.s. of 4 MEM slices of 2048 words"):
        compile_gemm("ulx3s", 256, 256, 256)
    with pytest.raises(CompileError, match="C takes both banks of all 4 MEM slices of config tiny"):
        compile_gemm("tiny", 48, 4, 36)
    with pytest.raises(CompileError, match=r"queue MEM_\w+ needs \d+ instruction words, it holds 128 "
                                           r"\(150 passes of the MXM\)"):
        compile_gemm("tiny", 48, 40, 20)
    with pytest.raises(CompileError, match=r"A has shape \(3, 4\), expected \(4, 4\)"):
        compile_gemm("tiny", 4, 4, 4, A=np.zeros((3, 4)))
    with pytest.raises(CompileError, match="no MXM on side 'W'"):
        compile_gemm("ulx3s", 4, 4, 4, mxm="W")


def test_ulx3s_128_cube_utilisation():
    """The largest cube the ULX3S's memory holds: C (4 byte planes of 128 x 16
    = 2048 words at VL 8) fills bank 1 of all 8 MEM slices, as two split-plane
    outputs. Its 256 passes need 1026 instruction words on the MXM queue, more
    than ulx3s's 512, so this runs on the same geometry with a deeper queue
    memory (``ulx3s-deepq``); ulx3s itself refuses it with a clear message."""
    with pytest.raises(CompileError, match=r"GEMM 128x128x128 does not fit config ulx3s: queue "
                                           r"\w+ needs \d+ instruction words, it holds 512"):
        compile_gemm("ulx3s", 128, 128, 128)
    c = get_config("ulx3s").with_(name="ulx3s-deepq", queue_depth=2048)
    g = compile_gemm(c, 128, 128, 128)
    assert g.outputs == ("C0", "C1")
    assert g.utilisation >= 0.95
    run_and_check(g)


@pytest.mark.slow
def test_256_cube_utilisation_with_ulx3s_geometry():
    """256^3 at VL 8 needs 49152 words (A 8192, B 8192, C 4 x 8192); the ULX3S
    has 8 x 2048. The same geometry with full 13-bit addressing and a deeper
    queue memory (its 1024 passes take 4098 words on the MXM queue) holds it,
    and the MXM is busy >= 95% of the run."""
    c = get_config("ulx3s").with_(name="ulx3s-bigmem", bank_words=4096, queue_depth=8192)
    g = compile_gemm(c, 256, 256, 256)
    assert g.utilisation >= 0.95
    run_and_check(g)


@pytest.mark.slow
@pytest.mark.parametrize("config, M, K, N", [("tiny", 30, 12, 10), ("ulx3s", 100, 85, 70),
                                             ("groq", 300, 700, 500)])
def test_bigger_gemms(config, M, K, N):
    # ulx3s 100x85x70: 99 passes at VL 8, 497 of the 512 queue words (two LWs a pass
    # with four streams a direction; 100x100x70 needs 587)
    run_and_check(compile_gemm(config, M, K, N, seed=7))


def test_compiled_image_survives_binary_and_text_round_trips():
    g = compile_gemm("tiny", 5, 7, 9)
    for img in (ProgramImage.from_bytes(g.image.to_bytes()), assemble(disassemble(g.image))):
        assert img.queues == g.image.queues
        assert img.outputs == g.image.outputs
        r = run_image(img)
        assert r.cycles == g.predicted_cycles
        assert np.array_equal(g.result(r.memory).astype(np.int64), g.A.astype(np.int64) @ g.B)


def test_problems_of_a_run_are_reported():
    g = compile_gemm("tiny", 3, 5, 6)
    r = run_image(g.image)
    assert g.problems(r) == []
    slices = g.image.outputs["C"].slices
    r.memory[slices[1]][g.image.outputs["C"].addr] ^= 1          # byte 1 of C[0, 0 .. VL-1]
    r.cycles += 1
    assert g.problems(r) == [f"ran {g.predicted_cycles + 1} cycles, predicted {g.predicted_cycles}",
                             f"{g.config.vl} wrong elements of C, first C[0, 0]"]
