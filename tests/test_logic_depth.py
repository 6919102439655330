"""scripts/logic_depth.py: register-to-register logic depth of a mapped ECP5 netlist."""

import io
import json

import pytest

from scripts_util import load_script


logic_depth = load_script("logic_depth")

IN, OUT = "input", "output"


def _cell(kind, **pins):
    """A cell of a Yosys JSON netlist: ``pins`` maps a port to ``(direction, bits)``."""
    return {"type": kind, "port_directions": {p: d for p, (d, _) in pins.items()},
            "connections": {p: bits for p, (_, bits) in pins.items()}}


def _lut(a, z, b="0"):
    return _cell("LUT4", A=(IN, [a]), B=(IN, [b]), Z=(OUT, [z]))


def _ff(d, q):
    return _cell("TRELLIS_FF", CLK=(IN, [2]), DI=(IN, [d]), Q=(OUT, [q]))


def _netlist(cells, names, ports=None):
    return {"modules": {
        "LUT4": {"attributes": {}},
        "top": {"attributes": {"top": "00000000000000000000000000000001"},
                "ports": ports or {"clk": {"direction": "input", "bits": [2]}},
                "cells": cells,
                "netnames": {n: {"hide_name": 0, "bits": [b]} for n, b in names.items()}},
    }}


def _example():
    # r0 (bit 10) -> LUT (11) -> LUT (12) -> LUT (18) -> carry chain: CCU2C (13, COUT 14)
    #   -> CCU2C (15)
    #   -> FF r1 (16)
    # bram (DO 20) -> LUT (21) -> FF r2 (22); bram's address comes from r1
    # r2 -> MULT18X18D (30) -> FF r3 (31)
    # a loop of two LUTs (40 <-> 41) read by FF r4 (42)
    cells = {
        "r0": _ff(16, 10), "l1": _lut(10, 11), "l2": _lut(11, 12), "l0": _lut(12, 18),
        "c1": _cell("CCU2C", A0=(IN, [18]), CIN=(IN, ["0"]), S0=(OUT, [13]), COUT=(OUT, [14])),
        "c2": _cell("CCU2C", A0=(IN, ["0"]), CIN=(IN, [14]), S0=(OUT, [15]), COUT=(OUT, [])),
        "r1": _ff(15, 16),
        "ram": _cell("DP16KD", CLKB=(IN, [2]), ADB0=(IN, [16]), DOB0=(OUT, [20])),
        "l3": _lut(20, 21), "r2": _ff(21, 22),
        "mul": _cell("MULT18X18D", A0=(IN, [22]), B0=(IN, [22]), P0=(OUT, [30])),
        "r3": _ff(30, 31),
        "la": _lut(41, 40), "lb": _lut(40, 41), "r4": _ff(41, 42),
        "scope": {"type": "$scopeinfo", "port_directions": {}, "connections": {}},
    }
    names = {"core.linked.tsp.MXM_E.r0": 10, "core.linked.tsp.MXM_E.sum": 15,
             "core.linked.tsp.MXM_E.r1": 16, "core.linked.tsp.MEM_E0.bank_DOB0": 20,
             "core.linked.tsp.MEM_E0.rdata": 21, "core.linked.tsp.VXM.r2": 22,
             "core.linked.tsp.VXM.prod": 30, "core.linked.tsp.VXM.r3": 31}
    return _netlist(cells, names)


def test_depths_of_luts_carries_rams_and_dsps():
    depths, ends = logic_depth.analyse(_example())
    by_bit = {bit: d for d, _, bit in ends}
    # r1's input: three LUTs, a CCU2C from its data input, one more through CIN
    assert by_bit[15] == 3 + 1 + logic_depth.CARRY_STEP
    assert by_bit[21] == logic_depth.BRAM_LEVELS + 1
    assert by_bit[30] == logic_depth.DSP_LEVELS
    assert by_bit[16] == 0                  # r1 -> the block RAM's address: no logic
    # deepest first
    assert ends[0][2] == 15 and [d for d, _, _ in ends] == sorted(by_bit.values(), reverse=True)
    # the path into r1, from where it starts
    assert depths.path(15) == [10, 11, 12, 18, 14, 15]
    assert depths.loops == 1                # la <-> lb was cut, and did not hang


def test_a_dsp_block_with_its_registers_is_storage():
    # r0 (10) -> LUT (11) -> A0 of a MULT18X18D holding its product (P0, 50) and, with
    # "weights", its operand B; r1 (16) -> B0; P0 -> LUT (51) -> FF (52)
    data = _example()
    cells = data["modules"]["top"]["cells"]
    params = {"REG_OUTPUT_CLK": "CLK0", "REG_INPUTA_CLK": "NONE", "REG_INPUTB_CLK": "CLK0"}
    cells["dsp"] = dict(_cell("MULT18X18D", CLK0=(IN, [2]), A0=(IN, [11]), B0=(IN, [16]),
                              P0=(OUT, [50])), parameters=params)
    cells["l5"], cells["r5"] = _lut(50, 51), _ff(51, 52)
    depths, ends = logic_depth.analyse(data)
    by_bit = {bit: d for d, _, bit in ends}
    assert by_bit[11] == 1 + logic_depth.DSP_LEVELS     # through the multiplier to P's register
    assert by_bit[16] == 0                              # into B's input register
    assert by_bit[51] == 1                              # the product starts a path
    assert depths.path(51) == [50, 51]
    params["REG_INPUTA_CLK"] = "CLK0"                   # A registered too: ends at the pin
    _, ends = logic_depth.analyse(data)
    assert {bit: d for d, _, bit in ends}[11] == 1
    params["REG_OUTPUT_CLK"] = "NONE"                   # no output register: logic again
    _, ends = logic_depth.analyse(data)
    by_bit = {bit: d for d, _, bit in ends}
    assert 11 not in by_bit and by_bit[51] == 1 + logic_depth.DSP_LEVELS + 1


def test_each_net_ends_one_path():
    data = _example()
    cells = data["modules"]["top"]["cells"]
    cells["r1b"] = _ff(15, 17)              # a second flip-flop on r1's input net
    _, ends = logic_depth.analyse(data)
    assert [bit for _, _, bit in ends].count(15) == 1


def test_report_names_parts_and_groups(tmp_path):
    (tmp_path / "top.json").write_text(json.dumps(_example()))
    out = io.StringIO()
    logic_depth.report(tmp_path, top=10, depth=1, paths=1, out=out)
    text = out.getvalue()
    assert "deepest 4.25 levels" in text
    deepest_part = text.split("deepest per part")[1].splitlines()[1].split()
    assert deepest_part == ["4.25", "MXM_E"]
    assert "MXM_E.r#  ->  MXM_E.sum" in text
    assert "MEM_E#.bank_DOB#  ->  MEM_E#.rdata" in text
    path = text.split("path of depth 4.25")[1].splitlines()[1:]
    assert path[0].split() == ["0.00", "TRELLIS_FF", "core.linked.tsp.MXM_E.r0"]
    assert path[-1].split() == ["4.25", "CCU2C", "core.linked.tsp.MXM_E.sum"]
    assert len(path) == 6


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="no .*top.json"):
        logic_depth.report(tmp_path)
    two_tops = _example()
    two_tops["modules"]["LUT4"]["attributes"]["top"] = "1"
    with pytest.raises(ValueError, match="one top module"):
        logic_depth.analyse(two_tops)
