"""The stream fabric (rtl/fabric.py): a value moves exactly one hop per cycle in its
direction unless a slice on the way overwrites it (docs/ARCHITECTURE.md section 2)."""

import numpy as np
from amaranth.sim import Simulator

from firmware.machine import get_config

from rtl.fabric import StreamFabric


C = get_config("tiny")
N, T, S, L = C.floorplan.width, C.tiles, C.streams, C.lanes


def run_fabric(drive, cycles, clear_at=()):
    """``drive(g)`` -> {(pos, dir, tile, stream): L bytes} emitted in cycle g. Returns
    (east, west): uint8 [cycles, N, T, S, L], what each position reads in each cycle."""
    dut = StreamFabric(C)
    east = np.zeros((cycles, N, T, S, L), np.uint8)
    west = np.zeros_like(east)

    async def tb(ctx):
        for g in range(cycles):
            emits = drive(g)
            for p in range(N):
                for d, (emit, out) in enumerate([(dut.e_emit, dut.e_out), (dut.w_emit, dut.w_out)]):
                    for k in range(T):
                        bits = 0
                        for s in range(S):
                            value = emits.get((p, d, k, s))
                            if value is not None:
                                bits |= 1 << s
                                ctx.set(out[p][k][s], list(value))
                        ctx.set(emit[p][k], bits)
            ctx.set(dut.clear, g in clear_at)
            for p in range(N):
                for k in range(T):
                    for s in range(S):
                        east[g, p, k, s] = list(ctx.get(dut.e_in[p][k][s]))
                        west[g, p, k, s] = list(ctx.get(dut.w_in[p][k][s]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return east, west


def test_one_hop_per_cycle():
    v = [7, 9]
    east, west = run_fabric(lambda g: {(1, 0, 1, 2): v, (5, 1, 0, 3): v} if g == 0 else {}, N + 2)
    for g in range(1, N + 2):
        for p in range(N):
            # eastward from position 1 at cycle 0: position 1 + g reads it at cycle g
            want_e = v if p == 1 + g else [0, 0]
            assert list(east[g, p, 1, 2]) == want_e, (g, p)
            want_w = v if p == 5 - g else [0, 0]
            assert list(west[g, p, 0, 3]) == want_w, (g, p)
    # nothing else anywhere
    assert east.sum() == sum(v) * (N - 2) and west.sum() == sum(v) * 5


def test_random_emits_match_the_hop_rule():
    rng = np.random.default_rng(3)
    cycles = 12
    plan = {}
    for g in range(cycles):
        plan[g] = {}
        for _ in range(6):
            key = (int(rng.integers(N)), int(rng.integers(2)), int(rng.integers(T)),
                   int(rng.integers(S)))
            plan[g][key] = rng.integers(0, 256, L, dtype=np.uint8)
    east, west = run_fabric(lambda g: plan[g], cycles, clear_at=(8,))
    # The rule, written out: east'[p+1] = emit(p) or east[p]; west'[p-1] = emit(p) or
    # west[p]; the edges read zero; `clear` zeroes every register.
    e = np.zeros((N, T, S, L), np.uint8)
    w = np.zeros_like(e)
    for g in range(cycles):
        np.testing.assert_array_equal(east[g], e, err_msg=f"east, cycle {g}")
        np.testing.assert_array_equal(west[g], w, err_msg=f"west, cycle {g}")
        ne, nw = np.zeros_like(e), np.zeros_like(w)
        ne[1:], nw[:-1] = e[:-1], w[1:]
        for (p, d, k, s), value in plan[g].items():
            if d == 0 and p + 1 < N:
                ne[p + 1, k, s] = value
            elif d == 1 and p >= 1:
                nw[p - 1, k, s] = value
        e, w = (ne, nw) if g != 8 else (np.zeros_like(e), np.zeros_like(w))
