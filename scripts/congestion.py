"""Where router2's congestion is: nextpnr's heat maps summed by part of the TSP.

    .venv/bin/python scripts/congestion.py BUILD_DIR [--prefix heat] [--iteration N]
        [--top 25] [--depth 1]

A build run with ``--nextpnr-opts "--router2-heatmap heat"`` (the prefix is a path
relative to the build folder: YoWASP's nextpnr writes only under its working
directory) leaves, for every router2 iteration ``N``, ``heat_congestion_by_net_N.csv``
(``net,overused wires``) and ``heat_congestion_by_coordinate_N.csv`` (one row per
grid column ``x``, one value per row ``y``). This prints, for one iteration (the last
by default):

- the overuse of every iteration, so a stall shows;
- the overuse per part of the chip: the net names' hierarchy below the board top
  cut to ``--depth`` names (``MXM_E``, ``VXM``, ``q_MEM_E0``, ``bridge``, ...);
- the ``--top`` largest groups of nets, with their bit and instance numbers folded to
  ``#`` (``MXM_E.t#_prod_r#_n#``), and the packer's suffixes (``_TRELLIS_FF_Q_DI``,
  ``_LUT4_Z``, ...) kept, since they say which cell pin a net reaches;
- the hottest columns and rows of the die and the bounding box of all overuse.
"""

import argparse
import collections
import csv
import re
import sys
from pathlib import Path


#: Hierarchy levels every net name starts with in a board build (the board top and
#: the host link around the TSP), left out of the part names.
WRAPPERS = ("core", "linked", "tsp")

_BIT = re.compile(r"\[\d+\]")
_NUMBER = re.compile(r"\d+")
#: Yosys's numbering of generated names (``imem_w$117``), dropped from part names.
_GENERATED = re.compile(r"\$\d+")


def iterations(build_dir, prefix):
    """The router2 iterations ``N`` whose by-net heat map is in ``build_dir``, in order."""
    found = []
    pattern = re.compile(re.escape(Path(prefix).name) + r"_?congestion_by_net_(\d+)\.csv$")
    folder = (Path(build_dir) / prefix).parent
    for path in folder.glob("*congestion_by_net_*.csv"):
        match = pattern.match(path.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def heat_file(build_dir, prefix, kind, n):
    """Path of iteration ``n``'s map of ``kind`` (``net`` or ``coordinate``); nextpnr
    puts an underscore after the prefix unless it ends in one."""
    base = Path(build_dir) / prefix
    sep = "" if base.name.endswith(("_", "-")) else "_"
    return base.parent / f"{base.name}{sep}congestion_by_{kind}_{n}.csv"


def read_nets(path):
    """``{net name: overused wires}`` of one by-net heat map."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            # A net name may hold commas (Yosys's escaped names): the count is the last field.
            name, count = ",".join(row[:-1]), row[-1]
            out[name] = out.get(name, 0) + int(count)
    return out


def read_grid(path):
    """One by-coordinate heat map as rows of ints: ``grid[x][y]``."""
    with open(path, newline="") as f:
        return [[int(v) for v in row if v.strip()] for row in csv.reader(f)]


def strip_wrappers(name):
    """``core.linked.tsp.MXM_E.t0_act`` -> ``MXM_E.t0_act``."""
    parts = name.split(".")
    while len(parts) > 1 and parts[0] in WRAPPERS:
        parts = parts[1:]
    return ".".join(parts)


def part_of(name, depth):
    """The first ``depth`` hierarchy names of a net, its digits kept (``MEM_E0``)."""
    parts = strip_wrappers(name).split(".")
    kept = ".".join(parts[:min(depth, len(parts) - 1)])
    return _GENERATED.sub("", kept) or "(top)"


def group_of(name):
    """A net's group: its name without wrappers, bit indices dropped, numbers folded."""
    return _NUMBER.sub("#", _BIT.sub("", strip_wrappers(name)))


def summarise(nets, depth):
    """``(total, per part, per group)``: overused wires, two ``Counter``\\ s."""
    parts, groups = collections.Counter(), collections.Counter()
    for name, count in nets.items():
        parts[part_of(name, depth)] += count
        groups[group_of(name)] += count
    return sum(nets.values()), parts, groups


def hot_lines(grid, count):
    """The ``count`` columns (x) and rows (y) with the most overuse, and the bounding box
    ``(x0, x1, y0, y1)`` of every nonzero cell (``None`` when there is none)."""
    cols = collections.Counter()
    rows = collections.Counter()
    xs, ys = [], []
    for x, line in enumerate(grid):
        for y, v in enumerate(line):
            if v:
                cols[x] += v
                rows[y] += v
                xs.append(x)
                ys.append(y)
    box = (min(xs), max(xs), min(ys), max(ys)) if xs else None
    return cols.most_common(count), rows.most_common(count), box


def _percent(part, whole):
    return f"{100 * part / whole:5.1f} %" if whole else "    - "


def report(build_dir, prefix="heat", iteration=None, top=25, depth=1, out=sys.stdout):
    """Print the summary (module docstring); returns the iteration it summarised."""
    found = iterations(build_dir, prefix)
    if not found:
        raise SystemExit(f"congestion: no {prefix}*congestion_by_net_N.csv in {build_dir} "
                         f"(build with --nextpnr-opts \"--router2-heatmap {prefix}\")")
    n = found[-1] if iteration is None else iteration
    if n not in found:
        raise SystemExit(f"congestion: no heat map of iteration {n} in {build_dir} "
                         f"(iterations {found[0]} to {found[-1]})")
    print(f"{build_dir}: router2 iterations {found[0]} to {found[-1]}", file=out)
    print("overused wires (summed over nets) by iteration: " + ", ".join(
        f"{i}: {sum(read_nets(heat_file(build_dir, prefix, 'net', i)).values())}"
        for i in found), file=out)
    total, parts, groups = summarise(read_nets(heat_file(build_dir, prefix, "net", n)), depth)
    print(f"\niteration {n}: {total} overused wires\n\nby part of the chip:", file=out)
    for name, count in parts.most_common():
        print(f"  {count:8d}  {_percent(count, total)}  {name}", file=out)
    print(f"\nthe {top} largest groups of nets:", file=out)
    for name, count in groups.most_common(top):
        print(f"  {count:8d}  {_percent(count, total)}  {name}", file=out)
    grid_path = heat_file(build_dir, prefix, "coordinate", n)
    if grid_path.exists():
        cols, rows, box = hot_lines(read_grid(grid_path), 8)
        print("\nhottest columns x: " + ", ".join(f"{x} ({v})" for x, v in cols), file=out)
        print("hottest rows y:    " + ", ".join(f"{y} ({v})" for y, v in rows), file=out)
        if box:
            print(f"all overuse within x {box[0]}..{box[1]}, y {box[2]}..{box[3]}", file=out)
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir", help="the build folder (build/ulx3s, ...)")
    p.add_argument("--prefix", default="heat", help="the --router2-heatmap prefix (default heat)")
    p.add_argument("--iteration", type=int, help="router2 iteration (default: the last)")
    p.add_argument("--top", type=int, default=25, help="groups of nets to list (default 25)")
    p.add_argument("--depth", type=int, default=1,
                   help="hierarchy names per part (default 1: MXM_E, VXM, q_MEM_E0, ...)")
    args = p.parse_args(argv)
    report(args.build_dir, args.prefix, args.iteration, args.top, args.depth)


if __name__ == "__main__":
    main()
