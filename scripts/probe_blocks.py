"""Fmax and critical path of each block of the TSP alone on a board: the table of
``docs/BOARDS.md`` ("Blocks of the ulx3s set alone").

    .venv/bin/python scripts/probe_blocks.py [--board ulx3s] [--blocks VXM MXM_E ...]

Each block is built as ``tsp build --board BOARD --probe BLOCK`` would
(``boards/probe.py``: the block between a feed register and a fold register) into
``build/<board>-probe-<block>``, one after the other; a block that misses the
clock is reported with its Fmax all the same. Prints one Markdown row per block.
The default blocks are one of each kind: the VXM, the first east MEM slice, SXM
and MXM where the set has them, and the VXM's first queue.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from boards import PROBE_PREFIX  # noqa: E402
from boards.build import BuildError, board_module, build  # noqa: E402
from boards.probe import check_block, probe_dir  # noqa: E402
from firmware.machine import SliceKind, get_config  # noqa: E402


def default_blocks(config):
    """One block of each kind the set has, and the first VXM queue."""
    fp = config.floorplan
    picks = []
    for kind in (SliceKind.VXM, SliceKind.MEM, SliceKind.SXM, SliceKind.MXM):
        slices = [s for s in fp.slices if s.kind is kind]
        east = [s for s in slices if s.side != "W"]
        if slices:
            picks.append((east or slices)[0].name)
    vxm_queues = [q.name for q in fp.queues if q.kind is SliceKind.VXM]
    return picks + [f"icu:{vxm_queues[0]}"]


def row(block, report, seconds):
    cp = report.critical or {}
    lut = report.resources.get("LUT", (0, 0))[0]
    dsp = report.resources.get("DSP", (0, 0))[0]
    path = (f"{cp['ns']:.1f} ns ({cp['logic_steps']} cells): {cp['from']} -> {cp['to']}"
            if cp else "-")
    return (f"| `{block}` | {report.fmax_mhz:.1f} MHz ({'met' if report.timing_met else 'not met'}"
            f" at {report.target_mhz:.0f}) | {path} | {lut:,} | {dsp} | {seconds / 60:.1f} min |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ulx3s")
    ap.add_argument("--blocks", nargs="*", help="block names (default: one of each kind)")
    args = ap.parse_args()
    mod = board_module(args.board)
    config = get_config(mod.CONFIG)
    blocks = args.blocks or default_blocks(config)
    for block in blocks:
        try:
            check_block(config, block)
        except ValueError as e:
            ap.error(str(e))
    print("| block | Fmax after routing | critical path | LUT4 | DSP | build |")
    print("|---|---|---|---|---|---|")
    status = 0
    for block in blocks:
        start = time.monotonic()
        try:
            report = build(args.board, probe_dir(args.board, block), core=PROBE_PREFIX + block)
        except BuildError as e:
            if e.report is None:
                print(f"| `{block}` | failed: {e} | | | | |", flush=True)
                status = 1
                continue
            report = e.report
        print(row(block, report, time.monotonic() - start), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
