"""``tsp diff`` finds deliberately broken gateware (sim/broken.py) and names the fault.

Each broken variant runs the same small program (tests/debug_programs.py) in
Amaranth's simulator, built with the MEM and VXM slices only (the program uses
no other; the rest pass their streams through). The report must name the
slice at fault and the cycle, derived here from the floorplan and the
latencies, not read off a previous run.
"""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from firmware.machine import SliceKind, get_config
from sim.diff import compare_runs, diff_image
from sim.golden import run_image

from debug_programs import vop_program


C = get_config("tiny")
FP, LAT = C.floorplan, C.latency
VXM = FP.vxm.pos
KINDS = (SliceKind.MEM, SliceKind.VXM)
PROG = vop_program("tiny", op="ADD")


def diff(variant, **kw):
    return diff_image(PROG.image, engine="amaranth", variant=variant, kinds=KINDS, **kw)


def gateware_like(golden):
    """A gateware run that matches the golden model exactly: its hop registers as the
    gateware records them, tile ``k`` showing local cycle ``g - k`` at global cycle ``g``."""
    trace = golden.trace
    T, L = C.tiles, C.lanes
    hops = np.zeros((golden.cycles, 2, FP.width, T, C.streams, L), np.uint8)
    for g in range(golden.cycles):
        for k in range(T):
            if g - k >= 0:
                hops[g, 0, :, k] = trace.east[g - k, :, :, k * L:(k + 1) * L]
                hops[g, 1, :, k] = trace.west[g - k, :, :, k * L:(k + 1) * L]
    return SimpleNamespace(cycles=golden.cycles, errors=golden.errors, err_queue=0, err_cycle=0,
                           memory={k: v.copy() for k, v in golden.memory.items()},
                           ecc=golden.ecc, hops=hops)


def test_agreement_and_the_smallest_difference():
    """No false alarm on a perfect match; one flipped bit of one hop register is found."""
    golden = run_image(PROG.image, trace=True)
    same = gateware_like(golden)
    rep = compare_runs(PROG.image, golden, same, "amaranth")
    assert rep.agree and "they agree" in str(rep), str(rep)
    seen = PROG.vxm_at + LAT.vxm + 1
    same.hops[seen + 1, 0, VXM + 1, 1, 2, 1] ^= 0x10     # tile 1 sees local `seen` then
    rep = compare_runs(PROG.image, golden, same, "amaranth")
    assert (rep.kind, rep.cycle, rep.tile, rep.local_cycle, rep.slice, rep.stream, rep.lane) == (
        "hop", seen + 1, 1, seen, "VXM", "E2", C.lanes + 1)
    assert rep.mismatches == []                          # the final state is the same


def test_vxm_one_cycle_late():
    rep = diff("vxm-late")
    emits = PROG.vxm_at + LAT.vxm                  # golden: VXM drives E2 then ...
    seen = emits + LAT.hops(VXM, VXM + 1)          # ... and MEM_E0 reads it here
    x0, y0 = int(PROG.x[0, 0]), int(PROG.y[0, 0])
    assert (rep.kind, rep.slice, rep.cycle, rep.tile, rep.local_cycle) == ("hop", "VXM", seen, 0, seen)
    assert (rep.reader, rep.position, rep.stream, rep.lane) == ("MEM_E0", VXM + 1, "E2", 0)
    assert (rep.expected, rep.actual) == ((x0 + y0) & 0xFF, 0)
    text = str(rep)
    assert "one cycle late" in text and "drove nothing onto E2" in text
    # The table shows the cycle the VXM should have driven the hop, with the op doing it.
    assert rep.flight_cycle == emits
    assert any(f.issued == PROG.vxm_at and f.until == emits and f.text.startswith("ADD")
               for f in rep.in_flight["VXM0"])
    out = json.loads(json.dumps(rep.as_dict()))        # what tsp diff --json prints
    assert (out["agree"], out["slice"], out["cycle"]) == (False, "VXM", seen)
    assert out["in_flight"]["VXM0"][0]["text"].startswith("ADD")


def test_vxm_wrong_alu_op():
    rep = diff("vxm-add-is-sub")
    seen = PROG.vxm_at + LAT.vxm + 1
    x0, y0 = int(PROG.x[0, 0]), int(PROG.y[0, 0])
    assert (rep.kind, rep.slice, rep.cycle, rep.stream) == ("hop", "VXM", seen, "E2")
    assert (rep.expected, rep.actual) == ((x0 + y0) & 0xFF, (x0 - y0) & 0xFF)


def test_mem_read_on_the_wrong_stream():
    rep = diff("mem-read-stream")
    w0 = FP.slice("MEM_W0").pos
    seen = PROG.read_y + LAT.mem_read + LAT.hops(w0, VXM)
    assert (rep.kind, rep.slice, rep.cycle, rep.tile) == ("hop", "MEM_W0", seen, 0)
    assert (rep.reader, rep.stream) == ("VXM", "E1")
    assert (rep.expected, rep.actual) == (int(PROG.y[0, 0]) & 0xFF, 0)


def test_mem_write_to_the_wrong_address():
    rep = diff("mem-write-addr")
    # No hop register differs: the fault shows in memory, traced to its write.
    assert (rep.kind, rep.slice, rep.local_cycle, rep.cycle, rep.lane) == (
        "memory", "MEM_E0", PROG.write_at, PROG.write_at, 0)
    assert rep.expected == (int(PROG.x[0, 0]) + int(PROG.y[0, 0])) & 0xFF
    assert "WRITE E2 -> 0x10" in str(rep)


def test_swapped_streams_in_the_fabric_with_windowed_waves(tmp_path):
    from sim.waves import cycle_times
    rep = diff("fabric-swap", waves=tmp_path / "swap.vcd", window=3)
    seen = LAT.mem_read + LAT.hops(FP.slice("MEM_W1").pos, VXM)   # x and y reach the VXM
    assert (rep.kind, rep.cycle, rep.position, rep.reader, rep.stream) == (
        "hop", seen, VXM, "VXM", "E0")
    assert rep.slice == FP.slices[VXM - 1].name                 # the hop MEM_W0 -> VXM
    assert (rep.expected, rep.actual) == (int(PROG.x[0, 0]) & 0xFF, int(PROG.y[0, 0]) & 0xFF)
    assert "golden model's E1" in str(rep)
    # The wave file holds the window around the divergence, and its save file names
    # only signals that are in it, with the hop at fault highlighted and its group open.
    times, _ = cycle_times(rep.waves)
    assert sorted(times) == list(range(seen - 3, seen + 4))
    names = vcd_names(rep.waves)
    lines = rep.gtkw.read_text().splitlines()
    traces = [ln.split("} ", 1)[1] for ln in lines if ln.startswith("+{")]
    assert traces and set(traces) <= names
    focus = lines.index(f"-first divergence: {rep.slice}, tile 0, E0 into VXM")
    assert lines[focus + 2].startswith("+{cycles} ")
    i = next(i for i, ln in enumerate(lines) if ln.startswith("+{VXM t0 E0 in}"))
    assert i > focus
    assert flags(lines, i) & 1, "the hop at fault is highlighted"
    group = lines.index(f"-VXM (position {VXM})")
    assert not flags(lines, group) & 0x400000, "its group is open"
    assert flags(lines, lines.index("-MEM_E1 (position 4)")) & 0x400000, "the others are closed"


def vcd_names(path):
    """The names GTKWave gives the variables of a VCD file: scope path, the name as
    written, and ``[msb:0]`` for a vector (checked against GTKWave 3.3.118)."""
    scopes, names = [], set()
    for line in Path(path).read_text().split("$enddefinitions")[0].splitlines():
        w = line.split()
        if w[:1] == ["$scope"]:
            scopes.append(w[2])
        elif w[:1] == ["$upscope"]:
            scopes.pop()
        elif w[:1] == ["$var"]:
            width = int(w[2])
            names.add(".".join(scopes + [w[4]]) + (f"[{width - 1}:0]" if width > 1 else ""))
    return names


def flags(lines, i):
    """The GTKWave flags in force at line ``i`` of a save file (the last ``@`` line)."""
    return int(next(ln for ln in reversed(lines[:i]) if ln.startswith("@"))[1:], 16)


def tsp(*args, cwd=None):
    """The installed ``tsp`` command (its errors are one line, exit status 2)."""
    return subprocess.run([str(Path(sys.executable).parent / "tsp"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_command_line_errors(tmp_path):
    prog = tmp_path / "vop.s"
    prog.write_text(PROG.text)
    for args, message in (((prog, "--variant", "nope"), "no broken variant 'nope'"),
                          ((tmp_path / "none.s",), "none.s: no such file"),
                          ((prog, "--window", "-1"), "--window -1: must be at least 0")):
        run = tsp("diff", *args)
        assert run.returncode == 2 and run.stdout == "", run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr


@pytest.mark.slow
def test_command_line_on_icarus(tmp_path):
    """The whole command on the Verilog under Icarus, broken variant built as Verilog too."""
    prog = tmp_path / "vop.s"
    prog.write_text(PROG.text)
    run = tsp("diff", prog, "--variant", "vxm-late", "--json", cwd=tmp_path)
    assert run.returncode == 1 and run.stdout.startswith("{"), run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert (out["agree"], out["kind"], out["slice"], out["cycle"], out["stream"]) == (
        False, "hop", "VXM", PROG.vxm_at + LAT.vxm + 1, "E2")
    assert out["waves"] == "vop-diff.fst"                  # next to where it ran, by default
    assert (tmp_path / out["waves"]).exists() and (tmp_path / out["gtkw"]).exists()
