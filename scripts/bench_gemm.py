#!/usr/bin/env python3
"""MXM utilisation of compiled GEMMs: bound / cycles, predicted and measured.

``bound = M * ceil(K/VL) * ceil(N/VL)`` is the number of cycles the MXM needs
to issue one ABC per activation row per weight tile; ``predicted`` is the
compiler's exact ``H + T``; ``golden`` is what the golden model counts (it
must be equal, and C must equal numpy's A @ B).

A shape whose operands do not fit a configuration's memory is run on the same
geometry with full 13-bit MEM addressing and a deeper instruction memory
(config name suffixed ``-bigmem``), and the table says so.

    .venv/bin/python scripts/bench_gemm.py [--configs ulx3s groq] [--no-golden]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware.compiler import CompileError, compile_gemm   # noqa: E402
from firmware.machine import get_config                     # noqa: E402
from sim.golden import run_image                            # noqa: E402


SHAPES = [(16, 16, 16), (64, 64, 64), (256, 256, 256), (100, 130, 90), (37, 250, 70)]
#: Bigger shapes where a configuration's own memory holds them.
EXTRA = {"ulx3s": [(128, 128, 128)], "groq": [(1024, 1024, 1024)]}


def bigmem(config):
    """The same geometry with the largest memory and queue the encodings allow."""
    return config.with_(name=f"{config.name}-bigmem", bank_words=4096,
                        queue_depth=max(config.queue_depth, 4096))


def bench(config, shape, golden):
    try:
        cfg = config
        t = time.perf_counter()
        g = compile_gemm(cfg, *shape)
    except CompileError:
        cfg = bigmem(config)
        t = time.perf_counter()
        g = compile_gemm(cfg, *shape)
    compile_s = time.perf_counter() - t
    row = dict(config=cfg.name, shape="x".join(map(str, shape)), bound=g.bound,
               predicted=g.predicted_cycles, util=g.utilisation, compile_s=compile_s,
               golden="-", golden_s="-", ok="-")
    if golden:
        t = time.perf_counter()
        r = run_image(g.image)
        row["golden_s"] = f"{time.perf_counter() - t:.1f}"
        row["golden"] = r.cycles
        problems = g.problems(r)
        row["ok"] = "; ".join(problems) or "yes"
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["ulx3s", "groq"])
    ap.add_argument("--no-golden", action="store_true", help="compile only")
    args = ap.parse_args(argv)
    cols = ["config", "shape", "bound", "predicted", "golden", "util", "compile_s", "golden_s", "ok"]
    print(" | ".join(f"{c:>12}" for c in cols))
    failed = False
    for name in args.configs:
        for shape in SHAPES + EXTRA.get(name, []):
            row = bench(get_config(name), shape, not args.no_golden)
            row["util"] = f"{row['util']:.1%}"
            row["compile_s"] = f"{row['compile_s']:.1f}"
            failed |= row["ok"] not in ("yes", "-")
            print(" | ".join(f"{row[c]!s:>12}" for c in cols), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
