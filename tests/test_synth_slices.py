"""scripts/synth_slices.py: where a component's LUTs go (``--owners``)."""

import pytest

from scripts_util import load_script


synth_slices = load_script("synth_slices")


def _netlist(cells, ports):
    """A Yosys JSON netlist of one module ``m``; nets are numbered, named after themselves."""
    nets = {}
    for cell in cells.values():
        for bits in cell["connections"].values():
            for bit in bits:
                nets.setdefault(f"n{bit}", {"bits": [bit], "hide_name": 1})
    for name, port in ports.items():
        nets[name] = {"bits": port["bits"]}
    return {"modules": {"m": {"cells": cells, "ports": ports, "netnames": nets}}}


def _lut(inputs, out):
    return {"type": "LUT4", "port_directions": {"A": "input", "B": "input", "Z": "output"},
            "connections": {"A": [inputs[0]], "B": [inputs[1]], "Z": [out]}}


def _ff(d, q):
    return {"type": "TRELLIS_FF", "port_directions": {"CLK": "input", "DI": "input", "Q": "output"},
            "connections": {"CLK": [1], "DI": [d], "Q": [q]}}


def test_owners_charges_each_lut_to_what_its_output_reaches():
    # 10, 11: inputs. LUT a (10, 11 -> 20) feeds LUT b (-> 21, into register VXM.r_0) and
    # LUT c (-> 22, into register MEM_E0.x_1); LUT d (-> 23) drives the output port o.
    # LUT e reads a register's output (30) and feeds register VXM.r_2 through nothing else.
    cells = {
        "a": _lut([10, 11], 20), "b": _lut([20, 10], 21), "c": _lut([20, 11], 22),
        "d": _lut([10, 11], 23), "e": _lut([30, 30], 24),
        "r0": _ff(21, 40), "x1": _ff(22, 41), "r2": _ff(24, 30),
    }
    ports = {"o": {"direction": "output", "bits": [23]}}
    netlist = _netlist(cells, ports)
    names = netlist["modules"]["m"]["netnames"]
    names["VXM.r_0"], names["MEM_E0.x_1"], names["VXM.r_2"] = ({"bits": [40]}, {"bits": [41]},
                                                               {"bits": [30]})
    groups, components = synth_slices.owners(netlist, "m")
    assert groups == {"MEM_E#.x_#": 1, "VXM.r_#": 2, "MEM_E#.x_# + VXM.r_#": 1, "port o": 1}
    assert components == {"MEM_E#": 1, "VXM": 2, "MEM_E# + VXM": 1, "port o": 1}


def test_components_are_synthesised_as_the_boards_build_them():
    from boards import icebreaker, ulx3s
    from boards.build import synth_commands, NO_RW_CHECK_SCRIPT, rw_dont_care
    assert synth_slices.FAMILIES["ecp5"][0] == "ulx3s"
    assert synth_slices.FAMILIES["ice40"][0] == "icebreaker"
    ecp5 = synth_commands("ulx3s", "vxm")
    before = f"{NO_RW_CHECK_SCRIPT}; " if rw_dont_care(ulx3s) else ""
    assert ecp5.startswith(f"{before}synth_ecp5 -top vxm " + ulx3s.SYNTH_OPTS)
    assert ecp5.endswith(ulx3s.script_after_synth("vxm"))
    assert ulx3s.SCRIPT_AFTER_SYNTH == ulx3s.script_after_synth("top")
    assert synth_commands("icebreaker", "mem") == \
        f"{NO_RW_CHECK_SCRIPT}; synth_ice40 -top mem " + icebreaker.SYNTH_OPTS


def _ram(marked):
    """256 x 8 block RAM, one synchronous read port and one write port, on the top's ports."""
    from amaranth.hdl import Module
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out
    from rtl._memory import rw_dont_care_memory

    class Ram(wiring.Component):
        raddr: In(8)
        rdata: Out(8)
        we: In(1)
        waddr: In(8)
        wdata: In(8)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = (rw_dont_care_memory(shape=8, depth=256) if marked
                                      else memory.Memory(shape=8, depth=256, init=[]))
            r, w = mem.read_port(), mem.write_port()
            m.d.comb += [r.addr.eq(self.raddr), self.rdata.eq(r.data), w.en.eq(self.we),
                         w.addr.eq(self.waddr), w.data.eq(self.wdata)]
            return m
    return Ram()


@pytest.mark.parametrize("family, board", [("ice40", "icebreaker"), ("ecp5", "ulx3s")])
@pytest.mark.parametrize("applied", [True, False])
def test_a_marked_memory_has_no_collision_logic(tmp_path, monkeypatch, family, board, applied):
    """Without ``no_rw_check`` Yosys returns the old word on a collision with flip-flops,
    a comparator and a multiplexer around the block RAM; with it, and the board's build
    applying it (boards.build.NO_RW_CHECK_SCRIPT, ``RW_DONT_CARE``), the block RAM alone."""
    from boards.build import board_module
    monkeypatch.setattr(board_module(board), "RW_DONT_CARE", applied, raising=False)
    cells = {}
    for marked in (False, True):
        monkeypatch.setattr(synth_slices, "build", lambda kind, config: _ram(marked))
        cells[marked], _ = synth_slices.synth("ram", None, str(tmp_path), family=family)
    assert cells[True]["BRAM"] == cells[False]["BRAM"] == 1
    assert cells[False]["FF"] > 8 and cells[False]["LUT4"] >= 8
    if applied:
        assert cells[True]["FF"] == 0 and cells[True]["LUT4"] == 0
    else:
        assert cells[True] == cells[False]
