#!/usr/bin/env python3
"""Simulation speed of the three engines on the same program, in cycles per second.

    .venv/bin/python scripts/bench_sim.py [--configs tiny ulx3s] [--engines golden amaranth rtl]

The program is the compiled GEMM of ``firmware.compiler.gemm`` (MXM-heavy:
weight loads, one ABC per cycle, fused emits, MEM writes), sized per
configuration. For the RTL engines the time counted is the run from START to
done only (Amaranth: the simulated cycles after loading; Icarus: the cocotb
run phase), so elaboration, compilation and loading do not dilute the figure;
they are printed separately.

Icarus also gets a line of detail from inside the simulator process: the CPU
time of the run, of loading the image through the host port (per host
command) and of the read-back. CPU time is the steadier figure when other
jobs share the machine; wall time is what a user waits. ``--trace`` records
every hop register every cycle, as ``tsp diff`` and the chip tests do.
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


def bench_rtl(image, detail=None, trace=False):
    """Icarus through cocotb; ``detail``, a dict, receives the simulator process's
    timings (``RtlResult.timings``) and the number of host commands of the load."""
    from rtl.top import load_commands
    from sim.rtl_runner import run_image_rtl
    t = time.perf_counter()
    r = run_image_rtl(image, trace=trace)
    total = time.perf_counter() - t
    if not r.agree:
        raise RuntimeError(f"Icarus and the golden model disagree: {r.summary()}")
    if detail is not None:
        detail.update(r.timings, host_commands=sum(1 for _ in load_commands(image)))
    return r.cycles, r.timings["run_s"], total - r.timings["run_s"]


ENGINES = {"golden": bench_golden, "amaranth": bench_amaranth, "rtl": bench_rtl}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "ulx3s"])
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    p.add_argument("--trace", action="store_true",
                   help="Icarus: record every hop register every cycle")
    args = p.parse_args()
    for name in args.configs:
        if name not in SHAPES:
            p.error(f"config {name!r}: no GEMM size for it here (sizes for: {', '.join(SHAPES)})")
    print(f"{'config':8} {'engine':9} {'cycles':>7} {'run s':>8} {'cycles/s':>10} {'other s':>8}")
    for name in args.configs:
        c = get_config(name)
        image = compile_gemm(c, *SHAPES[name], seed=1).image
        for engine in args.engines:
            if engine != "golden" and not c.rtl:
                continue
            detail = {}
            if engine == "rtl":
                cycles, run_s, other_s = bench_rtl(image, detail, trace=args.trace)
            else:
                cycles, run_s, other_s = ENGINES[engine](image)
            print(f"{name:8} {engine:9} {cycles:7d} {run_s:8.2f} {cycles / run_s:10.0f} "
                  f"{other_s:8.1f}", flush=True)
            if detail:
                n = detail["host_commands"]
                print(f"{'':8} {'':9} CPU: run {detail['run_cpu_s']:.2f} s = "
                      f"{cycles / detail['run_cpu_s']:.0f} cycles/s{' with trace' if args.trace else ''}; "
                      f"load {n} host commands {detail['load_cpu_s']:.2f} s = "
                      f"{1e3 * detail['load_cpu_s'] / n:.2f} ms each "
                      f"(wall {1e3 * detail['load_s'] / n:.2f} ms); "
                      f"read-back {detail['readback_cpu_s']:.2f} s", flush=True)


if __name__ == "__main__":
    main()
