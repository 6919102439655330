#!/usr/bin/env python3
"""Simulation speed of the three engines on the same program, in cycles per second.

    .venv/bin/python scripts/bench_sim.py [--configs tiny ulx3s] [--engines golden amaranth rtl]

The program is the compiled GEMM of ``firmware.compiler.gemm`` (MXM-heavy:
weight loads, one ABC per cycle, fused emits, MEM writes), sized per
configuration. For the RTL engines the time counted is the run from START to
done only (Amaranth: the simulated cycles after loading; Icarus: the cocotb
run phase), so elaboration, compilation and loading do not dilute the figure;
they are printed separately.
"""

import argparse
import time

from firmware.compiler.gemm import compile_gemm
from firmware.machine import get_config


SHAPES = {"tiny": (16, 8, 8), "ulx3s": (32, 32, 32), "groq": (64, 640, 640)}


def bench_golden(image):
    from sim.golden import run_image
    t = time.perf_counter()
    r = run_image(image)
    return r.cycles, time.perf_counter() - t, 0.0


def bench_amaranth(image):
    from sim.amaranth_run import run_image_amaranth
    timings = {}
    t = time.perf_counter()
    r = run_image_amaranth(image, timings=timings)
    total = time.perf_counter() - t
    return r.cycles, timings["run_s"], total - timings["run_s"]


def bench_rtl(image):
    from sim.rtl_runner import run_image_rtl
    t = time.perf_counter()
    r = run_image_rtl(image)
    total = time.perf_counter() - t
    assert r.agree, r.summary()
    return r.cycles, r.timings["run_s"], total - r.timings["run_s"]


ENGINES = {"golden": bench_golden, "amaranth": bench_amaranth, "rtl": bench_rtl}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "ulx3s"])
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    args = p.parse_args()
    print(f"{'config':8} {'engine':9} {'cycles':>7} {'run s':>8} {'cycles/s':>10} {'other s':>8}")
    for name in args.configs:
        c = get_config(name)
        image = compile_gemm(c, *SHAPES[name], seed=1).image
        for engine in args.engines:
            if engine != "golden" and not c.rtl:
                continue
            cycles, run_s, other_s = ENGINES[engine](image)
            print(f"{name:8} {engine:9} {cycles:7d} {run_s:8.2f} {cycles / run_s:10.0f} "
                  f"{other_s:8.1f}", flush=True)


if __name__ == "__main__":
    main()
