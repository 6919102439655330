#!/usr/bin/env python3
"""Golden-model speed: simulated local cycles per second on an MXM-heavy program.

The program is a chain of weight tiles through MXM_E, round after round:

* ``LW``: the ``VL`` weight columns arrive from ``k`` MEM slices east of the
  VXM at once (one stream each), ``k`` columns per ``LW`` (``REPEAT`` with
  column stride ``k``), then ``IW``;
* ``ABC``: ``M`` activation vectors read from MEM_W0 with ``REPEAT`` (address
  stride 1) cross the VXM and enter the MXM one per cycle, one accumulator
  slot each (slot stride 1);
* ``ACC``: the ``M`` slots stream west as int32 SG4 groups and the four MEM
  slices nearest the MXM write one byte plane each back to memory.

The run is checked against numpy (the last tile's product) so the figure is
for a program that does what it claims. Usage::

    .venv/bin/python scripts/bench_golden.py [--configs tiny,ulx3s,groq] [--seconds 2]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from firmware.image import Output                     # noqa: E402
from firmware.machine import Dir, SliceKind, get_config  # noqa: E402
from golden_util import Program                       # noqa: E402  (tests/golden_util.py)
from sim.golden import GoldenModel                    # noqa: E402

E, W = Dir.E.value, Dir.W.value

#: Rounds (weight tiles) per configuration: enough cycles to time, few enough
#: instruction words to fit each configuration's queue depth.
ROUNDS = {"tiny": 12, "ulx3s": 20, "groq": 3}


def build(cfg, rounds, rng):
    """The benchmark image and the values its output ``y`` must hold."""
    c = get_config(cfg)
    fp, lat = c.floorplan, c.latency
    N, S = fp.width, c.streams
    mxm = fp.slice("MXM_E")
    k = min(c.mem_slices, S // 2)                  # weight slices = columns per LW
    G = c.vl // k                                  # LW issues per tile
    M = min(c.acc_slots, 4 * c.vl)                 # activation vectors per tile
    act = S - 1                                    # activations ride the last east stream
    out = c.bank_words                             # results land in bank 1
    wslices = [fp.slice(f"MEM_E{i}") for i in range(k)]
    asrc = fp.slice("MEM_W0")
    writers = sorted((s for s in fp.of_kind(SliceKind.MEM) if s.pos < mxm.pos),
                     key=lambda s: -s.pos)[:4]
    hops = {s.name: mxm.pos - s.pos for s in fp.slices}

    p = Program(c)
    a = rng.integers(-128, 128, (M, c.vl))
    p.data(asrc.name, 0, a)
    t = N + 2                                      # every first READ at a cycle >= 0
    for r in range(rounds):
        w = rng.integers(-128, 128, (c.vl, c.vl))
        for i, sl in enumerate(wslices):           # word r*G + g = column g*k + i
            p.data(sl.name, r * G, w[:, i::k].T)
            p.at(t - lat.mem_read - hops[sl.name], sl.name, "READ", dir=E, stream=i, addr=r * G)
            p.repeat(sl.name, G - 1, 1, 1)
        p.at(t, "MXM_E", "LW", dir=E, stream=0, col=0, count=k - 1)
        p.repeat("MXM_E", G - 1, 1, k)
        p.at(t + G, "MXM_E", "IW")
        t_abc = t + G + 1
        p.at(t_abc - lat.mem_read - hops[asrc.name], asrc.name, "READ", dir=E, stream=act, addr=0)
        p.repeat(asrc.name, M - 1, 1, 1)
        p.at(t_abc, "MXM_E", "ABC", dir=E, stream=act, slot=0, acc=0)
        p.repeat("MXM_E", M - 1, 1, 1)
        t_acc = t_abc + max(M, lat.mxm_abc)        # slot m is whole from ABC_m + mxm_abc
        p.at(t_acc, "MXM_E", "ACC", dir=W, stream=0, slot=0)
        p.repeat("MXM_E", M - 1, 1, 1)
        for j, sl in enumerate(writers):
            p.at(t_acc + lat.mxm_acc + hops[sl.name], sl.name, "WRITE", dir=W, stream=j, addr=out)
            p.repeat(sl.name, M - 1, 1, 1)
        t = t_acc + M + 2 * N + 2                  # the next reads come after every write
    img = p.image()
    img.outputs["y"] = Output("y", "/".join(s.name for s in writers), out, M, "i32")
    return img, (a @ w).astype(np.int32)


def bench(cfg, seconds, rounds):
    img, want = build(cfg, rounds, np.random.default_rng(0))
    runs, cycles, start = 0, 0, time.perf_counter()
    while True:
        res = GoldenModel(img).run()
        runs += 1
        cycles += res.cycles
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    assert res.errors == 0, res.events
    np.testing.assert_array_equal(res.outputs["y"], want)
    return res.cycles, runs, elapsed, cycles / elapsed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="tiny,ulx3s,groq")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum time per configuration")
    args = ap.parse_args(argv)
    print(f"{'config':8} {'positions':>9} {'VL':>4} {'cycles/run':>10} {'runs':>5} "
          f"{'seconds':>8} {'cycles/s':>10}")
    for name in args.configs.split(","):
        c = get_config(name)
        n, runs, elapsed, rate = bench(name, args.seconds, ROUNDS.get(name, 4))
        print(f"{name:8} {c.floorplan.width:9} {c.vl:4} {n:10} {runs:5} {elapsed:8.2f} {rate:10.0f}")


if __name__ == "__main__":
    main()
