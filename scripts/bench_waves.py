#!/usr/bin/env python3
"""Cost of waves: FST size per 1,000 cycles and the slowdown of a run with waves.

    .venv/bin/python scripts/bench_waves.py [--configs tiny ulx3s] [--engines rtl amaranth]

Runs the compiled GEMM of ``scripts/bench_sim.py`` (the same sizes) twice on each
engine, without and with a wave file, and prints the run time from START to done
of both (``timings``, so elaboration, compilation and loading do not dilute it),
the wave file's size, and what each 1,000 running cycles add to it (the file cut
to START .. done by ``sim.waves.cut_window``, less a cut of one cycle: the
snapshot of every signal that begins any cut). Wall times: run it on an idle
machine.
"""

import argparse
import tempfile
from pathlib import Path

from firmware.compiler.gemm import compile_gemm
from firmware.machine import get_config


SHAPES = {"tiny": (16, 8, 8), "ulx3s": (32, 32, 32)}
SUFFIX = {"rtl": ".fst", "amaranth": ".vcd"}


def run(engine, image, waves):
    if engine == "rtl":
        from sim.rtl_runner import run_image_rtl
        r = run_image_rtl(image, waves=waves)
        return r.cycles, r.timings["run_s"]
    from sim.amaranth_run import run_image_amaranth
    timings = {}
    r = run_image_amaranth(image, vcd_path=waves, timings=timings)
    return r.cycles, timings["run_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "ulx3s"])
    p.add_argument("--engines", nargs="+", default=["rtl"], choices=list(SUFFIX))
    p.add_argument("--shape", nargs=3, type=int, metavar=("M", "K", "N"),
                   help="GEMM shape instead of the default of each configuration")
    args = p.parse_args()
    from sim.waves import cut_window, cycle_times
    print(f"{'config':7} {'engine':9} {'cycles':>7} {'run s':>8} {'waves s':>8} {'slowdown':>8} "
          f"{'file kB':>9} {'kB/1k cycles':>16}")
    for name in args.configs:
        image = compile_gemm(get_config(name), *(args.shape or SHAPES[name]), seed=1).image
        for engine in args.engines:
            with tempfile.TemporaryDirectory() as tmp:
                wave = Path(tmp) / f"run{SUFFIX[engine]}"
                cycles, plain = run(engine, image, None)   # run_s leaves out the builds
                _, waved = run(engine, image, wave)
                times, period = cycle_times(wave)
                start, end = min(times.values()), max(times.values()) + period - 1
                # Per running cycle: the whole run cut out, less a one-cycle cut (the
                # snapshot of every signal that starts any cut).
                whole = cut_window(wave, Path(tmp) / f"all{SUFFIX[engine]}", start, end)
                one = cut_window(wave, Path(tmp) / f"one{SUFFIX[engine]}", start, start + period - 1)
                rate = (whole.stat().st_size - one.stat().st_size) / (cycles - 1)
                print(f"{name:7} {engine:9} {cycles:7} {plain:8.2f} {waved:8.2f} "
                      f"{waved / plain:7.2f}x {wave.stat().st_size / 1e3:9.1f} "
                      f"{rate:16.1f}", flush=True)


if __name__ == "__main__":
    main()
