"""Logic depth of a mapped ECP5 build: the deepest register-to-register paths, by part.

    .venv/bin/python scripts/logic_depth.py BUILD_DIR [--top 20] [--depth 1] [--paths 3]

nextpnr's report names one path per clock, the worst after routing. This reads the
netlist Yosys wrote for nextpnr (``BUILD_DIR/top.json``, after ``synth_ecp5``, so it
needs no placement and works on a build that did not route) and gives every path
endpoint a depth in LUT levels:

- a ``LUT4`` is one level; a ``CCU2C`` (two bits of a carry chain) is one level from
  its data inputs and :data:`CARRY_STEP` from ``CIN`` (the chain's dedicated wire);
- a ``MULT18X18D`` without its registers (how Yosys maps ``*``) is :data:`DSP_LEVELS`;
  one with its output register (as session 10's MXM had: ``docs/ARCHITECTURE.md``
  section 10) is a register: its product starts a path, and a path into an operand
  ends there, :data:`DSP_LEVELS` deeper unless that operand's input register is on;
  any other cell is one level from every input (a distributed RAM too, so its write
  port is counted as if it reached the read data: an over-estimate);
- a path starts at a flip-flop's ``Q`` (depth 0), at a block RAM's data output
  (:data:`BRAM_LEVELS`: a ``DP16KD`` without its output register is slow to its data),
  at a registered DSP block's product (depth 0) or at a top-level input, and ends at
  any input of a flip-flop, a block RAM or a registered DSP block, or at a top-level
  output.

The weights are rough (a LUT level with its local routing is about a nanosecond on an
ECP5-85F, speed 6; the DSP's and the block RAM's numbers are what they cost next to
that). The ranking is the point: what is deep in logic stays deep after placement,
whatever routing adds. It prints the endpoints per depth, the deepest groups of paths
(source and sink names folded as ``scripts/congestion.py`` folds them) and the
``--paths`` deepest paths net by net.
"""

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from congestion import group_of, part_of        # noqa: E402  (one way of naming parts)


#: Levels of a ``CCU2C`` entered through its carry input.
CARRY_STEP = 0.25
#: Levels of an unregistered ``MULT18X18D`` (input to product).
DSP_LEVELS = 4
#: Levels from a ``DP16KD``'s clock to its data output (no output register).
BRAM_LEVELS = 3

#: Cells whose outputs start paths and whose inputs end them (a MULT18X18D too, when
#: its output register is on: :meth:`Netlist.start_depth`).
_SEQUENTIAL = {"TRELLIS_FF": 0, "DP16KD": BRAM_LEVELS}
#: Clock pins: they end no path.
_CLOCKS = {"CLK", "CLKA", "CLKB", "CLK0", "CLK1", "CLK2", "CLK3"}
#: Cells that are neither logic nor storage: their pins neither start nor end a path.
_IGNORED = {"$scopeinfo", "EHXPLLL", "DCCA", "TRELLIS_IO", "GSR", "SGSR"}


def _input_cost(cell_type, port):
    """Levels a path gains through ``port`` of a combinational cell of ``cell_type``."""
    if cell_type == "CCU2C":
        return CARRY_STEP if port == "CIN" else 1
    if cell_type == "MULT18X18D":
        return DSP_LEVELS
    return 1


class Netlist:
    """The top module of a Yosys JSON netlist: who drives each bit, who reads it."""

    def __init__(self, data):
        tops = [m for m, v in data["modules"].items() if v.get("attributes", {}).get("top")]
        if len(tops) != 1:
            raise ValueError(f"expected one top module, found {tops or 'none'}")
        module = data["modules"][tops[0]]
        self.cells = module["cells"]
        self.driver = {}            # bit -> (cell name, port)
        self.inputs = {}            # cell name -> [(port, bit)]
        for name, cell in self.cells.items():
            dirs = cell.get("port_directions", {})
            ins = []
            for port, bits in cell["connections"].items():
                direction = dirs.get(port)
                for bit in bits:
                    if isinstance(bit, str):        # a constant "0", "1", "x"
                        continue
                    if direction == "output":
                        self.driver[bit] = (name, port)
                    elif direction == "input":
                        ins.append((port, bit))
            self.inputs[name] = ins
        self.top_inputs, self.top_outputs = set(), []
        for port, info in module.get("ports", {}).items():
            bits = [b for b in info["bits"] if not isinstance(b, str)]
            if info["direction"] == "input":
                self.top_inputs.update(bits)
            elif info["direction"] == "output":
                self.top_outputs += [(port, b) for b in bits]
        self.names = {}
        for name, info in module.get("netnames", {}).items():
            hidden = info.get("hide_name", 0)
            for bit in info["bits"]:
                if isinstance(bit, str):
                    continue
                old = self.names.get(bit)
                if old is None or (old[0], len(old[1])) > (hidden, len(name)):
                    self.names[bit] = (hidden, name)

    def _param(self, cell, name):
        return str(self.cells[cell].get("parameters", {}).get(name, "NONE")).strip()

    def start_depth(self, cell):
        """Depth at which ``cell``'s outputs start paths, or ``None`` when it is logic."""
        kind = self.kind(cell)
        if kind == "MULT18X18D":
            return None if self._param(cell, "REG_OUTPUT_CLK") == "NONE" else 0
        return _SEQUENTIAL.get(kind)

    def end_cost(self, cell, port):
        """Levels between ``port`` of the storage cell ``cell`` and its register: the
        multiplier, for an operand of a registered DSP block whose input register is off."""
        if self.kind(cell) != "MULT18X18D" or port[0] not in "AB" or not port[1:].isdigit():
            return 0
        registered = self._param(cell, f"REG_INPUT{port[0]}_CLK") != "NONE"
        return 0 if registered else DSP_LEVELS

    def name(self, bit):
        return self.names.get(bit, (1, f"<bit {bit}>"))[1]

    def kind(self, cell):
        return self.cells[cell]["type"]


class Depths:
    """Arrival depth of every bit, by longest path from a path start."""

    def __init__(self, netlist):
        self.n = netlist
        self.arrival = {}       # bit -> depth
        self.via = {}           # bit -> the input bit the longest path came through
        self.loops = 0

    def of(self, bit):
        """Depth of ``bit`` (iterative, so deep carry chains do not hit the recursion limit)."""
        if bit in self.arrival:
            return self.arrival[bit]
        stack = [bit]
        on_stack = set()
        while stack:
            b = stack[-1]
            if b in self.arrival:
                stack.pop()
                continue
            drv = self.n.driver.get(b)
            if drv is None or b in self.n.top_inputs:
                self.arrival[b] = 0
                stack.pop()
                continue
            cell, _ = drv
            kind = self.n.kind(cell)
            start = self.n.start_depth(cell)
            if start is not None:
                self.arrival[b] = start
                stack.pop()
                continue
            if kind in _IGNORED:
                self.arrival[b] = 0
                stack.pop()
                continue
            pending = [i for _, i in self.n.inputs[cell] if i not in self.arrival]
            if pending and b not in on_stack:
                on_stack.add(b)
                stack.extend(pending)
                continue
            if pending:                 # a combinational loop: cut it here
                self.loops += 1
                for i in pending:
                    self.arrival.setdefault(i, 0)
            best, via = 0, None
            for port, i in self.n.inputs[cell]:
                d = self.arrival[i] + _input_cost(kind, port)
                if d > best:
                    best, via = d, i
            self.arrival[b] = best
            self.via[b] = via
            on_stack.discard(b)
            stack.pop()
        return self.arrival[bit]

    def path(self, bit):
        """The bits of the deepest path into ``bit``, from its start."""
        out = [bit]
        while out[-1] in self.via and self.via[out[-1]] is not None:
            out.append(self.via[out[-1]])
        return out[::-1]


def endpoints(netlist):
    """``(label, bit, levels)`` of every path end: inputs of flip-flops, block RAMs and
    registered DSP blocks (``levels`` more inside the cell: :meth:`Netlist.end_cost`),
    top outputs (a bit that reaches several such pins comes once per pin)."""
    for cell, ins in netlist.inputs.items():
        if netlist.start_depth(cell) is not None:
            kind = netlist.kind(cell)
            for port, bit in ins:
                if port not in _CLOCKS:
                    yield f"{kind}.{port}", bit, netlist.end_cost(cell, port)
    for port, bit in netlist.top_outputs:
        yield f"output {port}", bit, 0


def analyse(data):
    """``(depths, ends)``: the :class:`Depths` and a list of ``(depth, end label, bit)``."""
    netlist = Netlist(data)
    depths = Depths(netlist)
    deepest = {}
    for label, bit, levels in endpoints(netlist):   # a net into several pins ends one
        d = depths.of(bit) + levels                  # path, the deepest of them
        if bit not in deepest or d > deepest[bit][0]:
            deepest[bit] = (d, label, bit)
    ends = list(deepest.values())
    ends.sort(key=lambda e: -e[0])
    return depths, ends


def report(build_dir, top=20, depth=1, paths=3, out=sys.stdout):
    """Print the summary of ``BUILD_DIR/top.json`` (module docstring); returns the ends."""
    path = Path(build_dir) / "top.json"
    if not path.exists():
        raise SystemExit(f"logic_depth: no {path} (a build folder of tsp build has one "
                         "once Yosys has finished)")
    with open(path) as f:
        depths, ends = analyse(json.load(f))
    n = depths.n
    if not ends:
        raise SystemExit(f"logic_depth: {path} has no path endpoints")
    print(f"{path}: {len(ends)} path endpoints, deepest {ends[0][0]:g} levels"
          f" (LUT4 1, CCU2C 1 or {CARRY_STEP:g} through CIN, MULT18X18D {DSP_LEVELS},"
          f" DP16KD output {BRAM_LEVELS})", file=out)
    if depths.loops:
        print(f"  ({depths.loops} combinational loops cut)", file=out)

    print("\nendpoints by depth (levels, rounded down):", file=out)
    hist = collections.Counter(int(d) for d, _, _ in ends)
    for d in sorted(hist, reverse=True)[:12]:
        print(f"  {d:4d}  {hist[d]:7d}", file=out)

    print(f"\ndeepest per part (the sink's part, depth {depth}):", file=out)
    per_part = {}
    for d, label, bit in ends:
        part = part_of(n.name(bit), depth)
        per_part.setdefault(part, d)
    for part, d in sorted(per_part.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {d:6.2f}  {part}", file=out)

    print(f"\nthe {top} deepest groups of paths (source -> sink, names folded):", file=out)
    groups = {}
    for d, label, bit in ends:
        start = depths.path(bit)[0]
        key = (group_of(n.name(start)), group_of(n.name(bit)))
        if key not in groups:
            groups[key] = [d, 0]
        groups[key][1] += 1
    for (src, dst), (d, count) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {d:6.2f}  x{count:<5d} {src}  ->  {dst}", file=out)

    for d, label, bit in ends[:paths]:
        print(f"\npath of depth {d:g} into {label} {n.name(bit)}:", file=out)
        for b in depths.path(bit):
            drv = n.driver.get(b)
            kind = n.kind(drv[0]) if drv else "input"
            print(f"  {depths.arrival[b]:6.2f}  {kind:<11s} {n.name(b)}", file=out)
        if d > depths.arrival[bit]:
            print(f"  {d:6.2f}  (inside the {label.split('.')[0]}, to its register)", file=out)
    return ends


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("build_dir", help="the build folder (build/ulx3s, ...)")
    p.add_argument("--top", type=int, default=20, help="parts and groups to list (default 20)")
    p.add_argument("--depth", type=int, default=1,
                   help="hierarchy names per part (default 1: MXM_E, VXM, q_MEM_E0, ...)")
    p.add_argument("--paths", type=int, default=3, help="deepest paths to print net by net")
    args = p.parse_args(argv)
    report(args.build_dir, args.top, args.depth, args.paths)


if __name__ == "__main__":
    main()
