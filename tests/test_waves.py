"""Readable waves (sim/waves.py): the GTKWave save file, its translate filters, windows.

The save file must name signals exactly as GTKWave finds them in the wave
file. They are checked here against a real FST written by Icarus for the
Verilog of ``tiny``, read with ``pylibfst`` (independently of the module's own
reader) and turned into GTKWave's names by GTKWave's rule, checked once by hand
against GTKWave 3.3.118: a vector is ``scope.name[msb:lsb]`` (the FST stores
``name [msb:lsb]``), a one-bit signal ``scope.name``. Where GTKWave itself and
an X server are installed, a last test loads the save file in GTKWave and
counts the traces it shows.
"""

import shutil
import subprocess

import pytest

from firmware.isa import ErrorFlag, Instr, WORD_BITS, encode
from firmware.machine import SliceKind, get_config
from sim.waves import (cut_window, cycle_times, instruction_label, program_words, signal_changes,
                       traced_paths, wave_vars, waves_for_test, write_gtkw)

from debug_programs import vop_program


C = get_config("tiny")
FP = C.floorplan
PROG = vop_program("tiny", op="ADD")


# -- instruction words as text -------------------------------------------------------

def test_repeat_walks_are_expanded_into_the_issued_words():
    words = program_words(PROG.image)
    fetched, issued = words[SliceKind.MEM]
    reads_x = {encode(Instr(SliceKind.MEM, "READ", {"dir": 0, "stream": 0, "addr": a}))
               for a in range(PROG.n)}
    writes = {encode(Instr(SliceKind.MEM, "WRITE", {"dir": 0, "stream": 2, "addr": 0x10 + a}))
              for a in range(PROG.n)}
    assert reads_x | writes <= issued
    assert not writes & fetched - {min(writes)}          # only the first is in the image
    _, vxm_issued = words[SliceKind.VXM]
    assert len(vxm_issued) == 1                          # stride 0: the same ADD each time


@pytest.mark.parametrize("kind, mnemonic, fields, text", [
    (SliceKind.MEM, "READ", {"dir": 1, "stream": 3, "addr": 5}, "READ 0x5 -> W3"),
    (SliceKind.MEM, "NOP", {"n": 7}, "NOP 7"),
    (SliceKind.MXM, "ABC", {"dir": 0, "stream": 1, "acc": 1, "slot": 3, "emit": 1, "edir": 1,
                            "estream": 4}, "ABC.acc E1, 3 -> W4"),
    (SliceKind.SXM, "ROT", {"sdir": 0, "sstream": 0, "ddir": 1, "dstream": 2, "arg": 3},
     "ROT E0, 3 -> W2"),
])
def test_labels_are_assembler_text(kind, mnemonic, fields, text):
    assert instruction_label(kind, encode(Instr(kind, mnemonic, fields))) == text


def test_a_word_that_does_not_decode_is_labelled_raw():
    assert instruction_label(SliceKind.MEM, 31).startswith(".word 0x1f (opcode 31")


# -- a real FST from Icarus -------------------------------------------------------------

@pytest.fixture(scope="module")
def icarus_run(tmp_path_factory):
    from sim.rtl_runner import run_image_rtl
    folder = tmp_path_factory.mktemp("waves")
    result = run_image_rtl(PROG.image, waves=folder / "vop.fst")
    return result, folder / "vop.fst", folder / "vop.gtkw"


def fst_gtkwave_names(path):
    """GTKWave's names of every variable of an FST file, read with pylibfst."""
    import pylibfst
    reader = pylibfst.lib.fstReaderOpen(str(path).encode())
    try:
        _scopes, signals = pylibfst.get_scopes_signals2(reader)
    finally:
        pylibfst.lib.fstReaderClose(reader)
    return {name.replace(" [", "[") for name in signals.by_name}


def saved_traces(gtkw):
    """``[(alias, name)]`` of every trace of a save file, in order."""
    out = []
    for line in gtkw.read_text().splitlines():
        if line.startswith("+{"):
            alias, name = line[2:].split("} ", 1)
            out.append((alias, name))
    return out


def test_every_saved_signal_is_in_the_wave_file(icarus_run):
    result, fst, gtkw = icarus_run
    assert result.waves == fst and gtkw.exists()
    names = fst_gtkwave_names(fst)
    traces = saved_traces(gtkw)
    missing = [n for _a, n in traces if n not in names]
    assert not missing, f"{len(missing)} signals of the save file are not in the FST: {missing[:5]}"
    # Nothing the layout promises is left out: per tile, every queue's issued word and
    # every hop register the slice reads (none at the edge a direction enters from).
    aliases = [a for a, _n in traces]
    hops = [a for a in aliases if a.endswith(" in")]
    assert len(hops) == C.tiles * C.streams * (2 * FP.width - 2)
    issues = [a for a in aliases if a.endswith(" issue")]
    assert len(issues) == C.tiles * len(FP.queues)
    # every queue's word of the cycle: its fetch register (Config.fetch_reg) or read port
    fetches = [a for a in aliases if a.endswith(" fetch")]
    assert len(fetches) == len(FP.queues)
    assert aliases[:6] == ["cycles", "running", "done", "errors", "first error at queue",
                           "first error at cycle"]


def test_the_wave_file_holds_the_run_and_the_saved_signals(icarus_run):
    """An Icarus wave run dumps from START on (the host's load of the image is not in
    the file) and only the signals a save file can show."""
    result, fst, _gtkw = icarus_run
    top = "tsp."
    assert {p[len(top):] for p in wave_vars(fst)} <= set(traced_paths(C))
    running = signal_changes(fst, ["running"])["running"]
    assert running[0][1] == 1
    assert len(cycle_times(fst)[0]) == result.cycles


def test_groups_run_west_to_east_then_by_tile(icarus_run):
    _result, _fst, gtkw = icarus_run
    groups = [ln[1:] for ln in gtkw.read_text().splitlines()
              if ln.startswith("-") and "(position" in ln]
    slices = [g.split(" ")[0] for g in groups[::2]]          # each group has a begin and an end
    assert slices == [s.name for s in FP.slices]
    lines = gtkw.read_text().splitlines()
    vxm = lines.index(f"-VXM (position {FP.vxm.pos})")
    tiles = [ln for ln in lines[vxm:] if ln.startswith("-VXM tile")][::2]
    assert tiles == [f"-VXM tile {k} (lanes {k * C.lanes}..{(k + 1) * C.lanes - 1})"
                     for k in range(C.tiles)]
    streams = [a for a, _n in saved_traces(gtkw) if a.startswith("VXM t0 ") and a.endswith(" in")]
    assert streams == [f"VXM t0 {d}{s} in" for d in "EW" for s in range(C.streams)]


def test_instruction_words_are_translated(icarus_run):
    _result, _fst, gtkw = icarus_run
    lines = gtkw.read_text().splitlines()
    filters = {ln.split(" ", 1)[1] for ln in lines if ln.startswith("^")}
    issue_mem = next(f for f in filters if f.endswith("issue_MEM.txt"))
    table = dict(ln.split(" ", 1) for ln in open(issue_mem).read().splitlines())
    digits = WORD_BITS[SliceKind.MEM] // 4
    write = encode(Instr(SliceKind.MEM, "WRITE", {"dir": 0, "stream": 2, "addr": 0x13}))
    assert table[f"{write:0{digits}x}"] == "WRITE E2 -> 0x13"
    assert table["0" * digits] == "-"
    assert all(len(v) == digits for v in table)
    errors = dict(ln.split(" ", 1) for ln in
                  open(next(f for f in filters if f.endswith("errors.txt"))).read().splitlines())
    both = ErrorFlag.ILLEGAL_INSTR | ErrorFlag.ADDR_RANGE
    assert errors[f"{int(both):02x}"] == "?red?ILLEGAL_INSTR|ADDR_RANGE"


def test_cycles_and_windows(icarus_run, tmp_path):
    result, fst, _gtkw = icarus_run
    times, period = cycle_times(fst)
    assert sorted(times) == list(range(result.cycles))
    assert all(times[g + 1] - times[g] == period for g in range(result.cycles - 1))
    cut = cut_window(fst, tmp_path / "cut.fst", times[3], times[8] + period - 1)
    assert sorted(cycle_times(cut)[0]) == list(range(3, 9))
    assert set(wave_vars(cut)) == set(wave_vars(fst))
    assert cut.stat().st_size < fst.stat().st_size
    saved = write_gtkw(cut, PROG.image)
    assert set(saved.traces) <= fst_gtkwave_names(cut)


@pytest.mark.skipif(not (shutil.which("gtkwave") and shutil.which("xvfb-run")),
                    reason="GTKWave and xvfb-run are not installed")
def test_gtkwave_loads_every_trace(icarus_run, tmp_path):
    _result, _fst, gtkw = icarus_run
    script = tmp_path / "count.tcl"
    script.write_text('puts "TRACES [gtkwave::getTotalNumTraces]"\ngtkwave::/File/Quit\n')
    run = subprocess.run(["xvfb-run", "-a", "gtkwave", "-S", str(script), str(gtkw)],
                         capture_output=True, text=True, timeout=120)
    shown = [ln for ln in run.stdout.splitlines() if ln.startswith("TRACES ")]
    # GTKWave counts the group begin and end markers as traces too.
    groups = sum(1 for ln in gtkw.read_text().splitlines() if ln.startswith("-"))
    assert shown == [f"TRACES {len(saved_traces(gtkw)) + groups}"], run.stdout + run.stderr


# -- pytest --waves --------------------------------------------------------------------

def test_one_wave_file_per_test(monkeypatch, tmp_path):
    monkeypatch.delenv("TSP_WAVES_DIR", raising=False)
    assert waves_for_test(".fst") is None                     # nothing by default
    monkeypatch.setenv("TSP_WAVES_DIR", str(tmp_path))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/test_x.py::test_y[tiny-3] (call)")
    first, second = waves_for_test(".fst"), waves_for_test(".fst")
    assert first == tmp_path / "tests_test_x.py_test_y_tiny-3.fst"
    assert second == tmp_path / "tests_test_x.py_test_y_tiny-3-2.fst"
