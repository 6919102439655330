"""Place and route one netlist with several nextpnr seeds until one routes.

    .venv/bin/python scripts/route_sweep.py [--board ulx3s] [--freq MHZ]
        [--nextpnr-opts OPTS] [--seeds 1-8] [--patience 20] [--max-minutes 60]
        [--out build/sweep] [--json FILE] [--netlist DIR] [--any-estimate]

A change to the TSP's netlist moves nextpnr's placement, and whether router2 then
clears its last overused wire is, on this design, closer to a draw than to a margin
(``docs/BOARDS.md``). This makes the draw a procedure: the design is synthesised
once (``OUT/seed<first>``), then placed and routed with one seed after another
(``--seed N`` after ``--nextpnr-opts``), each in ``OUT/seed<N>`` from that same
netlist (:func:`boards.build.build`'s ``netlist``). A run is stopped when router2
stalls: no iteration has brought its count of overused wires below the lowest so far
for ``--patience`` iterations, or the run has taken ``--max-minutes``; and, unless
``--any-estimate``, as soon as the placer's Fmax estimate is below the clock asked for
(routing does not make a placement faster: in the runs measured, Fmax after routing came
out at or below the estimate). The sweep stops
at the first seed that routes and meets the clock, and prints (and with ``--json``
writes) one row per seed: the placer's Fmax estimate, the lowest overuse and its
iteration, and how the run ended. One build at a time: YoWASP's nextpnr uses one
core, so two sweeps can run side by side on a two-core machine (two seed ranges of one
netlist: ``--netlist`` names the folder of a run that synthesised it, the design and
clock being the same).
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from boards import BOARDS  # noqa: E402
from boards.build import BuildError, board_module, build, router_progress  # noqa: E402


_ESTIMATE = re.compile(r"^Info: Max frequency for clock '[^']*': ([\d.]+) MHz", re.M)


def placement_estimate(log):
    """The placer's Fmax estimate (MHz) in nextpnr log text: the first one it prints,
    before routing; ``None`` before placement has ended."""
    found = _ESTIMATE.search(log)
    return float(found.group(1)) if found else None


def stalled(progress, patience):
    """Whether router2 has gone ``patience`` iterations without a new lowest overuse.

    ``progress`` is :func:`router_progress`'s list. The lowest counts from the first
    iteration, so a run that only ever rises stalls ``patience`` iterations in.
    """
    if not progress:
        return False
    best_at = min(range(len(progress)), key=lambda i: (progress[i][1], i))
    return progress[-1][0] - progress[best_at][0] >= patience


class Stop(Exception):
    """Raised from the build's progress callback to end one seed's run."""


def parse_seeds(text):
    """``"3"``, ``"3-6"``, ``"2,5,9-10"`` -> a list of seeds, in order."""
    seeds = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            lo, hi = int(lo), int(hi if dash else lo)
        except ValueError:
            raise ValueError(f"--seeds: {part.strip()!r} is not a seed or a range a-b") from None
        if lo < 1 or hi < lo:
            raise ValueError(f"--seeds: {part.strip()!r}: seeds are positive, ranges rise")
        seeds += range(lo, hi + 1)
    return seeds


def run_seed(board, out, freq, opts, seed, netlist, patience, max_s, say, need_mhz=None):
    """One place-and-route run; returns its row of the sweep's table. ``need_mhz``: stop
    the run once the placer's estimate is known to be below it."""
    log_path = Path(out) / "top.tim"
    started = time.monotonic()
    last = {"n": 0}

    def progress(phase, elapsed, detail):
        if phase not in ("place", "route"):
            return
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        estimate = placement_estimate(log)
        if need_mhz is not None and estimate is not None and estimate < need_mhz:
            raise Stop(f"placement estimate {estimate:g} MHz is below {need_mhz:g} MHz")
        steps = router_progress(log)
        if steps and steps[-1][0] != last["n"]:
            last["n"] = steps[-1][0]
            best = min(n for _, n in steps)
            say(f"seed {seed}: iteration {steps[-1][0]}, {steps[-1][1]} overused "
                f"(lowest {best}), {elapsed / 60:.1f} min")
        if stalled(steps, patience):
            raise Stop(f"stalled: no new lowest overuse in {patience} iterations")
        if time.monotonic() - started > max_s:
            raise Stop(f"stopped after {max_s / 60:g} minutes")

    row = {"seed": seed, "dir": str(out)}
    try:
        report = build(board, out, core_freq=freq, progress=progress,
                       nextpnr_opts=f"{opts} --seed {seed}".strip(), netlist=netlist)
        row.update(result="routed", fmax_mhz=report.fmax_mhz)
    except Stop as e:
        row["result"] = str(e)
    except BuildError as e:
        row["result"] = str(e)
        if e.report is not None:
            row["fmax_mhz"] = e.report.fmax_mhz
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    steps = router_progress(log)
    row["estimate_mhz"] = placement_estimate(log)
    if steps:
        best = min(steps, key=lambda s: (s[1], s[0]))
        row.update(lowest_overused=best[1], at_iteration=best[0], iterations=steps[-1][0])
    row["minutes"] = round((time.monotonic() - started) / 60, 1)
    return row


def table(rows):
    head = "| seed | estimate MHz | lowest overused (iteration) | iterations | minutes | result |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        low = (f"{r['lowest_overused']} ({r['at_iteration']})"
               if "lowest_overused" in r else "")
        result = r["result"] + (f", Fmax {r['fmax_mhz']:.2f} MHz" if "fmax_mhz" in r else "")
        lines.append(f"| {r['seed']} | {r.get('estimate_mhz') or ''} | {low} | "
                     f"{r.get('iterations', '')} | {r['minutes']} | {result} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ulx3s", choices=sorted(BOARDS))
    ap.add_argument("--freq", type=float, help="core clock in MHz (default: the board's CORE_FREQ)")
    ap.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                    help="nextpnr options before each run's --seed (e.g. \"--no-tmdriv\")")
    ap.add_argument("--seeds", default="1-8", help="seeds to try, e.g. 3-10 or 2,5,7")
    ap.add_argument("--patience", type=int, default=20,
                    help="router2 iterations without a new lowest overuse before a run stops")
    ap.add_argument("--max-minutes", type=float, default=60, help="per seed")
    ap.add_argument("--out", help="folder of the runs (default: build/sweep-<board>)")
    ap.add_argument("--json", help="write the rows here as well")
    ap.add_argument("--netlist", help="a run folder whose top.json (the same design and "
                                      "clock) every seed places, instead of synthesising")
    ap.add_argument("--any-estimate", action="store_true",
                    help="route a placement whose Fmax estimate is below the clock, too")
    args = ap.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        ap.error(str(e))
    if args.patience < 1 or args.max_minutes <= 0:
        ap.error("--patience and --max-minutes must be positive")
    mod = board_module(args.board)
    freq = mod.CORE_FREQ if args.freq is None else args.freq * 1e6
    try:
        mod.TOP.clocks(freq)                 # the PLL and the baud rate can be made
    except ValueError as e:
        ap.error(f"--freq: {e}")
    out = Path(args.out or f"build/sweep-{args.board}")

    def say(text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    netlist = Path(args.netlist) if args.netlist else None
    if netlist is not None and not (netlist / "top.json").is_file():
        ap.error(f"--netlist: no top.json in {netlist}")
    rows = []
    for seed in seeds:
        run_dir = out / f"seed{seed}"
        what = f"place and route {netlist / 'top.json'}" if netlist else "synthesise, place and route"
        say(f"seed {seed}: {what} in {run_dir}")
        row = run_seed(args.board, run_dir, freq, args.nextpnr_opts, seed, netlist,
                       args.patience, args.max_minutes * 60, say,
                       need_mhz=None if args.any_estimate else freq / 1e6)
        rows.append(row)
        say(f"seed {seed}: {row['result']}")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        if netlist is None and (run_dir / "top.json").is_file():
            netlist = run_dir
        if row["result"] == "routed":
            break
        if row.get("estimate_mhz") is None and "lowest_overused" not in row:
            say("the run ended before placement: no other seed would fare better")
            break
    print(table(rows))
    routed = [r for r in rows if r["result"] == "routed"]
    if routed:
        opts = f"{args.nextpnr_opts} --seed {routed[0]['seed']}".strip()
        print(f"\nroutes: tsp build --board {args.board} --freq {freq / 1e6:g} "
              f"--nextpnr-opts \"{opts}\"")
    return 0 if routed else 1


if __name__ == "__main__":
    sys.exit(main())
