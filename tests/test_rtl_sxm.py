"""SxmSlice in the Amaranth simulator against numpy lane moves (ARCHITECTURE.md section 7)."""

import numpy as np
import pytest

from firmware.isa import Instr, encode
from firmware.machine import SliceKind, get_config
from rtl.sxm import SxmSlice
from rtl_slice_harness import run_slice


CONFIGS = ["tiny", "ulx3s"]
#: A stream count that is not a power of two (source selection takes another path).
ODD_STREAMS = get_config("tiny").with_(name="tiny_s12", streams=12)


def sxm(mnemonic, src, dst, arg=0):
    """``src``/``dst`` = ("E"|"W", stream)."""
    return encode(Instr(SliceKind.SXM, mnemonic, {
        "sdir": int(src[0] == "W"), "sstream": src[1],
        "ddir": int(dst[0] == "W"), "dstream": dst[1], "arg": arg}))


def ref(c, op, x, n, maps):
    """Lane ``l`` of the result, as the table in section 7 defines it."""
    VL, L = c.vl, c.lanes
    lane = np.arange(VL)
    if op == "SHUP":
        return np.where(lane >= n, x[np.clip(lane - n, 0, VL - 1)], 0)
    if op == "SHDN":
        return np.where(lane + n < VL, x[np.clip(lane + n, 0, VL - 1)], 0)
    if op == "ROT":
        return x[(lane - n) % VL]
    if op == "PERM":
        return x[maps[n]]
    if op == "DIST":
        return x[(lane // L) * L + n]
    raise ValueError(op)


def run(c, program, streams, cycles, maps=None):
    writes = []
    if maps is not None:
        ident = np.arange(c.vl)
        writes = [("map_w", {"map": mi, "lane": lane, "src": int(src)})
                  for mi, row in enumerate(maps) for lane, src in enumerate(row)
                  if src != ident[lane]]
    name = c.floorplan.of_kind(SliceKind.SXM)[0].name
    return run_slice(c, SliceKind.SXM, lambda: SxmSlice(c, c.floorplan.slice(name)),
                     program, streams, cycles, host_writes=writes)


def stream_input(c, rng):
    return {d: rng.integers(0, 256, size=(c.streams, c.vl)).astype(np.uint8) for d in "EW"}


@pytest.mark.parametrize("name", CONFIGS)
def test_lane_moves(name):
    """SHUP/SHDN/ROT/DIST/PERM with several arguments, one op every cycle, alternating
    source and destination streams and directions; each result exactly at t + T and
    nothing else emitted. PERM uses a host-loaded map and the identity default."""
    c = get_config(name)
    rng = np.random.default_rng(4)
    VL, L, S = c.vl, c.lanes, c.streams
    maps = np.array([np.arange(VL)] * c.sxm_maps)
    maps[-1] = rng.permutation(VL)
    maps[-1][0] = maps[-1][1]                          # maps need not be bijective
    ops = [("SHUP", n) for n in (0, 1, L, VL - 1)] + [("SHDN", n) for n in (0, 1, L + 1, VL - 1)]
    ops += [("ROT", n) for n in (1, L, VL - 1)] + [("DIST", n) for n in (0, L - 1)]
    ops += [("PERM", c.sxm_maps - 1), ("PERM", 0)]
    program, streams, want = {}, {}, {}
    for t, (op, n) in enumerate(ops):
        streams[t] = stream_input(c, rng)
        src = ("EW"[t % 2], t % S)
        dst = ("WE"[(t // 2) % 2], (3 * t + 1) % S)
        program[t] = sxm(op, src, dst, n)
        x = streams[t][src[0]][src[1]]
        want[t + c.latency.sxm] = (dst, ref(c, op, x, n, maps), (op, n))
    cycles = len(ops) + c.latency.sxm
    tr = run(c, program, streams, cycles, maps)
    for t in range(cycles):
        if t not in want:
            assert tr.emitted_streams(t) == set(), t
            continue
        (d, s), expect, what = want[t]
        assert tr.emitted_streams(t) == {(d, s)}, what
        em = tr.east[t] if d == "E" else tr.west[t]
        assert (em.values[s] == expect).all(), what


@pytest.mark.parametrize("name", CONFIGS + [pytest.param(ODD_STREAMS, id="tiny_s12")])
def test_transpose(name):
    """TRANS: L source streams -> L result streams, tile by tile: result stream d+i,
    lane kL+j = source stream s+j, lane kL+i; two back-to-back transposes."""
    c = get_config(name)
    rng = np.random.default_rng(9)
    L, S, T = c.lanes, c.streams, c.tiles
    cases = [(0, ("E", 0), ("W", S - L)), (1, ("W", S - L), ("E", 0))]
    program, streams = {}, {}
    for t, src, dst in cases:
        streams[t] = stream_input(c, rng)
        program[t] = sxm("TRANS", src, dst)
    cycles = len(cases) + c.latency.sxm
    tr = run(c, program, streams, cycles)
    for t, (sd, ss), (dd, ds) in cases:
        x = streams[t][sd][ss:ss + L]                  # [j][lane]
        expect = np.zeros((L, c.vl), np.uint8)
        for k in range(T):
            expect[:, k * L:(k + 1) * L] = x[:, k * L:(k + 1) * L].T
        at = t + c.latency.sxm
        em = tr.east[at] if dd == "E" else tr.west[at]
        assert tr.emitted_streams(at) == {(dd, ds + i) for i in range(L)}
        assert (em.values[ds:ds + L] == expect).all()
