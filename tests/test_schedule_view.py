"""``tsp schedule`` (firmware/compiler/schedule_view.py): what the pictures show, checked
against the timing rules of docs/ARCHITECTURE.md, and the files it writes."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from firmware.asm import assemble
from firmware.machine import Dir, get_config
from firmware.compiler.schedule_view import ScheduleView

from debug_programs import vop_program


C = get_config("tiny")
FP, LAT = C.floorplan, C.latency
PROG = vop_program("tiny", op="ADD")


def test_instruction_spans_follow_the_latencies():
    view = ScheduleView(PROG.image)
    n = PROG.n
    assert [(s.issued, s.until) for s in view.spans["MEM_W1"]] == [
        (t, t + LAT.mem_read) for t in range(n)]
    assert [(s.issued, s.until, s.text) for s in view.spans["VXM0"]] == [
        (PROG.vxm_at + i, PROG.vxm_at + i + LAT.vxm, "ADD E0, E1 -> E2") for i in range(n)]
    assert [(s.issued, s.until) for s in view.spans["MEM_E0"]] == [
        (PROG.write_at + i, PROG.write_at + i) for i in range(n)]
    assert view.spans["MXM_E"] == []
    assert view.cycles == PROG.write_at + n + C.tiles           # the last HALT, plus T


def test_stream_occupancy_runs_from_the_emitter_to_the_last_reader():
    view = ScheduleView(PROG.image)
    east, west = view.occupancy[Dir.E], view.occupancy[Dir.W]
    assert not west.any()
    w1, w0, vxm, e0 = (FP.slice(n).pos for n in ("MEM_W1", "MEM_W0", "VXM", "MEM_E0"))
    want = np.zeros_like(east)
    for i in range(PROG.n):
        for src, t in ((w1, i + LAT.mem_read), (w0, PROG.read_y + i + LAT.mem_read)):
            for p in range(src + 1, vxm + 1):           # x and y: live up to the VXM
                want[p, t + p - src] += 1
        want[e0, PROG.vxm_at + i + LAT.vxm + (e0 - vxm)] += 1     # z: one hop to MEM_E0
    np.testing.assert_array_equal(east, want)


def test_mxm_busy_time():
    text = """
.config tiny
.queue MXM_E
        LW      W0, 0, 4
        IW
        ABC     W1, 0
        REPEAT  5, 1, 1
        ACC     0 -> W0
"""
    view = ScheduleView(assemble(text))
    abc, load, total = view.busy_summary()["MXM_E"]
    assert (abc, load) == (6, 2)
    assert list(np.flatnonzero(view.mxm["MXM_E"]["ABC"])) == list(range(2, 8))
    assert total == view.cycles


def test_command_on_a_compiled_folder(tmp_path):
    """``tsp schedule DIR`` on what ``tsp compile`` leaves: the image and its summary."""
    folder = tmp_path / "prog"
    folder.mkdir()
    PROG.image.save(folder / "vop.bin")
    (folder / "vop.json").write_text(json.dumps(
        {"phases": [{"kind": "vadd", "start": 0, "ops": ["add(x, y) -> z"]}]}))
    tsp = str(Path(sys.executable).parent / "tsp")
    run = subprocess.run([tsp, "schedule", str(folder), "-o", str(tmp_path / "out.png")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"{ScheduleView(PROG.image).cycles} cycles" in run.stdout
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "out.html").read_text()
    svg = ET.fromstring(text[text.index("<svg"):text.index("</svg>") + 6])
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert sum("ADD E0, E1 -> E2" in t for t in titles) == PROG.n
    assert sum(t.startswith("MEM_E0 cycle") for t in titles) == PROG.n
    assert "add(x, y) -> z" in titles                    # the compiler's phase
    assert "data:image/png;base64," in text
    empty = subprocess.run([tsp, "schedule", str(tmp_path), "-o", str(tmp_path / "x.png")],
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "holds one .bin, this one holds 0" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
