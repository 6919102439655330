"""The whole chip against the golden model: final memory, error flags and cycles, exactly.

Two engines run the gateware:

* Amaranth's simulator (``sim.amaranth_run``), on ``tiny`` and ``ulx3s``, for
  the hand-written kernels and a fixed-seed batch of random valid programs
  and of programs with one deliberate fault, with every hop register of every
  cycle compared for the random ones;
* Icarus through cocotb (``sim.rtl_runner``), on the Verilog of the same
  design, for a smaller batch on ``tiny`` with every hop register of every
  cycle compared (the ``ulx3s`` kernels run there too, under ``-m slow``).

``TSP_RANDOM_COUNT=N`` runs N random programs per configuration and engine
instead of the default batch.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from firmware.asm import assemble_file
from firmware.machine import get_config
from sim.golden import run_image
from sim.randprog import random_program


KERNELS = sorted((Path(__file__).parent.parent / "firmware" / "kernels").glob("*.s"))


def _count(default):
    return int(os.environ.get("TSP_RANDOM_COUNT", default))


def assert_same(rtl, golden, what):
    from sim.rtl_runner import compare
    differences = compare(rtl, golden)
    assert not differences, f"{what}: " + "; ".join(differences)


# -- Amaranth's simulator ------------------------------------------------------

#: Kernels run on every test run; the others (covered by tests/test_rtl_top.py's
#: slow kernels and by -m slow here) cost ~30 s each on the ulx3s design.
QUICK = {"matmul.s", "requant.s", "transpose.s"}


@pytest.mark.parametrize("kernel", [pytest.param(k, marks=() if k.name in QUICK else pytest.mark.slow)
                                    for k in KERNELS], ids=[k.name for k in KERNELS])
def test_kernel_amaranth(kernel):
    from sim.amaranth_run import run_image_amaranth
    image = assemble_file(kernel)
    assert_same(run_image_amaranth(image), run_image(image), kernel.name)


@pytest.mark.parametrize("config", ["tiny", "ulx3s", "pico"])
@pytest.mark.parametrize("errors", [False, True], ids=["valid", "faulty"])
def test_random_programs_amaranth(config, errors):
    from sim.amaranth_run import run_image_amaranth
    c = get_config(config)
    seeds = range(1000, 1000 + _count(1 if config == "ulx3s" else 4))
    from sim.rtl_runner import first_divergence
    for seed in seeds:
        image = random_program(c, seed, errors=errors)
        golden = run_image(image, trace=True)
        if errors:
            assert golden.errors, f"seed {seed}: the injected fault raised nothing"
        rtl = run_image_amaranth(image, trace=True)
        assert_same(rtl, golden, f"{config} seed {seed}")
        # Every hop register of every cycle, not only what the program wrote back.
        assert len(rtl.hops) == golden.cycles
        divergence = first_divergence(golden.trace, rtl.hops)
        assert divergence is None, f"{config} seed {seed}: {divergence}"


# -- Icarus through cocotb -----------------------------------------------------

@pytest.mark.parametrize("seed", range(2000, 2000 + _count(2)))
def test_random_programs_icarus_every_hop(seed):
    from sim.rtl_runner import run_image_rtl
    image = random_program(get_config("tiny"), seed)
    result = run_image_rtl(image, trace=True)
    assert result.agree, result.summary()
    assert result.cycles == result.golden_cycles
    assert result.divergence is None
    assert len(result.hops) == result.cycles       # one record per running cycle


def test_faulty_program_icarus():
    from sim.rtl_runner import run_image_rtl
    image = random_program(get_config("tiny"), 7, errors=True)
    result = run_image_rtl(image)
    assert result.golden_errors, "the injected fault raised nothing in the golden model"
    assert result.agree, result.summary()


@pytest.mark.slow
@pytest.mark.parametrize("kernel", KERNELS, ids=[k.name for k in KERNELS])
def test_kernel_icarus(kernel):
    from sim.rtl_runner import run_image_rtl
    result = run_image_rtl(assemble_file(kernel), trace=True)
    assert result.agree, result.summary()


# -- the first-divergence report ---------------------------------------------------

def test_first_divergence_names_cycle_tile_slice_and_stream():
    """Corrupt one byte of a recorded hop array (as the RTL would record it) and
    check the report points at exactly that register."""
    from sim.rtl_runner import first_divergence
    image = assemble_file(KERNELS[[k.name for k in KERNELS].index("vadd.s")])
    c = image.config
    golden = run_image(image, trace=True)
    T, L, N, S = c.tiles, c.lanes, c.floorplan.width, c.streams
    # The RTL's view: global cycle g, tile k holds local cycle g - k of lanes kL..kL+L-1.
    hops = np.zeros((golden.cycles, 2, N, T, S, L), np.uint8)
    for g in range(golden.cycles):
        for k in range(T):
            if g - k >= 0:
                hops[g, 0, :, k] = golden.trace.east[g - k, :, :, k * L:(k + 1) * L]
                hops[g, 1, :, k] = golden.trace.west[g - k, :, :, k * L:(k + 1) * L]
    assert first_divergence(golden.trace, hops) is None
    vxm = c.floorplan.slice("VXM").pos
    g, k, s, lane = 9, 2, 2, 1                       # E2 carries the sums towards MEM_E0
    hops[g, 0, vxm + 1, k, s, lane] ^= 0x40
    d = first_divergence(golden.trace, hops)
    assert (d.cycle, d.tile, d.local_cycle, d.position, d.slice, d.direction, d.stream,
            d.lane) == (g, k, g - k, vxm + 1, "MEM_E0", "E", s, k * L + lane)
    assert d.actual == d.expected ^ 0x40
    assert "MEM_E0" in str(d) and f"cycle {g}" in str(d)


# -- compiled programs -------------------------------------------------------------

@pytest.mark.parametrize("config, shape", [("tiny", (6, 8, 8)), ("ulx3s", (16, 16, 16))])
def test_compiled_gemm_amaranth(config, shape):
    """A compiled GEMM (multi-column LW, fused ABC emit, RW) on the gateware."""
    from firmware.compiler.gemm import compile_gemm
    from sim.amaranth_run import run_image_amaranth
    compiled = compile_gemm(config, *shape, seed=5)
    rtl = run_image_amaranth(compiled.image)
    assert_same(rtl, run_image(compiled.image), f"GEMM {shape} on {config}")
    assert rtl.cycles == compiled.predicted_cycles
    np.testing.assert_array_equal(compiled.result(rtl.memory), compiled.expected())


def test_fused_emit_and_acc_collide_the_same_way():
    """An ABC's fused emit and an ACC on one stream in one cycle: STREAM_CONFLICT in
    both engines, the ABC's value wins the hop (docs/ARCHITECTURE.md section 2)."""
    from firmware.asm import assemble
    from sim.amaranth_run import run_image_amaranth
    c = get_config("tiny")
    x = c.latency.mxm_abc                       # the ABC at 0 accumulates at x
    text = f"""
.config tiny
.queue MXM_E
        ABC     W0, 1 -> W0
        NOP     {x - 1}
        ACC     1 -> W0
        HALT
"""
    image = assemble(text)
    golden = run_image(image)
    assert golden.errors and golden.events[0].cycle == x + 1
    assert_same(run_image_amaranth(image), golden, "fused emit vs ACC")


def test_main_job_mlp_on_the_gateware():
    """The README's main job: the example MLP on the gateware, bit-exact with ONNX."""
    from firmware.models import demo_mlp
    report = demo_mlp("ulx3s", "amaranth")
    assert report.ok, str(report)
