"""``tsp build``, and ``tsp run`` / ``tsp run-onnx`` on a board (``--board``).

A board run takes one path whether the board is real or simulated: a
:class:`~firmware.hostlink.HostLink` loads the program image, starts it, waits
for done and reads the outputs and the cycle counter back. ``--port`` puts a
serial port under it (after programming the board with openFPGALoader where
that is installed); ``--sim`` the board's gateware (``boards._common.BoardCore``)
in Amaranth's simulator, its UART pins driven bit by bit. Every run is checked
against the golden model: outputs bit for bit, and the cycle counter against
the predicted cycles.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


__all__ = ["add_build_parser", "add_board_args", "cmd_build", "cmd_run_board",
           "cmd_run_onnx_board"]

#: Clocks per UART bit of the simulated board: the fastest the bridge takes (a real
#: board runs hundreds: ``core_freq / 115200``), with the same gateware otherwise.
SIM_DIVISOR = 4

#: The simulated board's clock (sets what a second of the client's timeouts is).
SIM_CLK_FREQ = 1e6


class BoardError(Exception):
    """A board run or build that failed: one line, exit status 1."""


# -- tsp build --------------------------------------------------------------------------


def add_build_parser(sub):
    from boards import BOARDS, CORES
    s = sub.add_parser("build", help="build a board's bitstream (Yosys, nextpnr through YoWASP)")
    s.add_argument("--board", required=True, choices=BOARDS)
    s.add_argument("--config", help="machine the board carries (default: the board module's CONFIG)")
    s.add_argument("--freq", type=float, help="core clock in MHz (default: the board's CORE_FREQ)")
    s.add_argument("--core", choices=CORES, default="tsp",
                   help="tsp (default); loopback: the host link alone; echo: a UART echo")
    s.add_argument("--probe", metavar="BLOCK",
                   help="build one block of the TSP alone between registers, for its timing: "
                        "a slice (VXM, MEM_E0, MXM_E, ...), 'fabric' or 'icu:<queue>' "
                        "(boards/probe.py)")
    s.add_argument("--out", help="build folder (default: build/<board>, "
                                 "build/<board>-probe-<block> with --probe)")
    s.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                   help="more nextpnr options, after the board's own (e.g. '--seed 2')")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return s


class _Progress:
    """Shows the build's phase and elapsed time on stderr: one line rewritten in
    place on a terminal, a line per phase otherwise (logs, CI)."""

    def __init__(self, label, stream=sys.stderr):
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.phase = None

    def __call__(self, phase, elapsed, detail):
        if self.tty:
            text = f"{self.label}: {phase:9} {_mmss(elapsed)}  {detail}"
            self.stream.write("\r" + text[:100].ljust(100))
            self.stream.flush()
        elif phase != self.phase:
            self.stream.write(f"{self.label}: {phase} (at {_mmss(elapsed)})\n")
            self.stream.flush()
        self.phase = phase

    def end(self):
        if self.tty and self.phase is not None:
            self.stream.write("\n")


def _mmss(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def cmd_build(args):
    from boards.build import BuildError, board_module, build
    from .cli import UsageError
    from .machine import get_config
    mod = board_module(args.board)
    config = get_config(args.config or mod.CONFIG)
    if not config.rtl:
        raise UsageError(f"config {config.name!r} is for the golden model and compiler only")
    if args.freq is not None and not args.freq > 0:
        raise UsageError(f"--freq must be a positive number of MHz, not {args.freq}")
    freq = mod.CORE_FREQ if args.freq is None else args.freq * 1e6
    try:
        mod.TOP.clocks(freq)                 # the PLL and the baud rate can be made
    except ValueError as e:
        raise UsageError(f"--freq: {e}") from None
    core, out = args.core, args.out
    if args.probe is not None:
        from boards import PROBE_PREFIX
        from boards.probe import check_block, probe_dir
        if args.core != "tsp":
            raise UsageError("--probe replaces the core: give --probe or --core, not both")
        try:
            check_block(config, args.probe)
        except ValueError as e:
            raise UsageError(f"--probe: {e}") from None
        core = PROBE_PREFIX + args.probe
        out = out or probe_dir(args.board, args.probe)
    label = f"{args.board} {config.name if core == 'tsp' else core}"
    progress = _Progress(label)
    try:
        report = build(args.board, out, config.name, freq, core=core, progress=progress,
                       nextpnr_opts=args.nextpnr_opts)
    except BuildError as e:
        progress.end()
        if e.report is not None and not args.json:
            print(e.report)
        print(f"tsp build: error: {e}", file=sys.stderr)
        if args.json:
            routed = e.report.as_json() if e.report is not None else {}
            print(json.dumps({"board": args.board, "config": config.name, **routed,
                              "ok": False, "error": str(e)}))
        return 1
    progress.end()
    if args.json:
        print(json.dumps({**report.as_json(), "ok": True}))
    else:
        print(report)
    return 0


# -- runs on a board --------------------------------------------------------------------


def add_board_args(s):
    """``--board``, ``--port``, ``--sim`` and friends for ``tsp run`` / ``tsp run-onnx``."""
    from boards import BOARDS
    g = s.add_argument_group("on a board (instead of --engine)")
    g.add_argument("--board", choices=BOARDS, help="run on this board over the host link")
    g.add_argument("--port", help="serial port of the board's FTDI UART (e.g. /dev/ttyUSB0)")
    g.add_argument("--sim", action="store_true",
                   help="the simulated board: its gateware in Amaranth's simulator")
    g.add_argument("--bitstream", help="bitstream to program (default: build/<board>/top.bit|bin)")
    g.add_argument("--no-program", action="store_true",
                   help="the board is programmed already: do not call openFPGALoader")
    g.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the run to finish on hardware (default 10)")


def _board_link(args, config):
    """``(HostLink, fresh, description)`` for ``--board`` with ``--sim`` or ``--port``."""
    from boards.build import board_module
    from .cli import UsageError
    from .hostlink import HostLink, SerialTransport, SimTransport
    mod = board_module(args.board)
    if config.name != mod.CONFIG:
        raise UsageError(f"the program is for config {config.name!r}; the {args.board} "
                         f"carries {mod.CONFIG!r} (assemble or compile for it, e.g. "
                         f"--config {mod.CONFIG})")
    if args.sim == bool(args.port):
        raise UsageError("--board needs exactly one of --sim (the simulated board) "
                          "and --port DEVICE (the real one)")
    if args.sim:
        from boards._common import BoardCore
        dut = BoardCore(config, SIM_DIVISOR, blink=1000)
        transport = SimTransport(config, divisor=SIM_DIVISOR, clk_freq=SIM_CLK_FREQ, dut=dut)
        return HostLink(transport), True, (f"simulated {args.board} (UART at {SIM_DIVISOR} "
                                           "clocks per bit)")
    fresh = _program(args, mod, config)
    from boards._common import BAUD
    link = HostLink(SerialTransport(args.port, config, baud=BAUD))
    if fresh:
        _wait_configured(link)
    return link, fresh, f"{args.board} on {args.port}"


def _wait_configured(link, seconds=5.0):
    """After programming: the FPGA loads its configuration (from flash on the
    iCEBreaker) and the PLL locks; poll the status until the bridge answers."""
    from .hostlink import HostLinkError
    deadline = time.monotonic() + seconds
    while True:
        try:
            return link.reset_state()
        except HostLinkError as e:
            if time.monotonic() > deadline:
                raise BoardError(f"the board does not answer {seconds:.0f} s after programming "
                                 f"({e}); is --port its UART?") from None


def _build_command(board):
    """The ``tsp build`` command of ``board``'s TSP bitstream (every
    board's own options meet its clock)."""
    return f"`tsp build --board {board}`"


def _program(args, mod, config):
    """Program the board unless told not to; True when it was programmed just now
    (so every memory holds its reset value and only the image's words need writing)."""
    from boards.build import bitstream_name
    if args.no_program:
        return False
    bitstream = Path(args.bitstream or Path("build") / args.board / bitstream_name(args.board))
    if not bitstream.exists():
        raise BoardError(f"no bitstream at {bitstream}: build it with {_build_command(args.board)} "
                         f"(or pass --bitstream FILE, or --no-program)")
    info = bitstream.parent / "build.json"
    if info.exists():
        built = json.loads(info.read_text())
        if built.get("core", "tsp") != "tsp" or built.get("config") != config.name:
            raise BoardError(f"{bitstream} carries {built.get('core')} / config "
                             f"{built.get('config')!r}, the program needs the TSP of "
                             f"{config.name!r}: rebuild with {_build_command(args.board)}")
    cmd = ["openFPGALoader", "-b", mod.LOADER_BOARD, str(bitstream)]
    if shutil.which(cmd[0]) is None:
        print(f"openFPGALoader is not installed, so the board is not programmed now. "
              f"Program it with `{' '.join(cmd)}` (Debian: apt-get install openfpgaloader); "
              f"running on whatever the board holds.", file=sys.stderr)
        return False
    print(f"programming: {' '.join(cmd)}", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise BoardError(f"openFPGALoader failed: {last[-1] if last else done.returncode}")
    return True


def run_image_on_board(link, image, fresh, timeout):
    """Load ``image``, start it, wait for done, read each output's words back:
    ``(Status, memory, outputs)``; ``memory`` holds the output words only (zeros
    elsewhere), as ``ProgramImage.read_output`` and ``CompiledGraph.results`` take it."""
    c = image.config
    fp = c.floorplan
    if not fresh:           # the board may hold, or still run, an earlier program
        link.reset_state()
        link.reset()
    link.load_image(image, fresh=fresh)
    link.start()
    status = link.wait_done(timeout)
    memory = {}
    for out in image.outputs.values():
        words = out.count * (4 if out.dtype == "i32" and len(out.slices) == 1 else 1)
        for sname in out.slices:
            mem = memory.setdefault(sname, np.zeros((c.mem_words, c.vl), np.uint8))
            mem[out.addr:out.addr + words] = link.read_mem(fp.slice(sname).pos, out.addr, words)
    outputs = {name: out.read(memory) for name, out in image.outputs.items()}
    return status, memory, outputs


def _timeout(args, cycles):
    """Seconds (of the transport's clock) a run of ``cycles`` may take."""
    from boards.build import board_module
    if args.sim:
        return 2 * max(cycles, 1000) / SIM_CLK_FREQ
    mod = board_module(args.board)
    return max(args.timeout, 2 * cycles / mod.CORE_FREQ)


def _same(a, b):
    return {n: bool(np.array_equal(np.asarray(a[n]), np.asarray(b[n]))) for n in b}


def _failing(command):
    """A board command: a :class:`BoardError` or a link error is one line, exit status 1."""
    def run(args, *rest):
        from .hostlink import HostLinkError
        try:
            return command(args, *rest)
        except (BoardError, HostLinkError) as e:
            print(f"tsp {args.command}: error: {e}", file=sys.stderr)
            return 1
    run.__doc__ = command.__doc__
    return run


def _run(link, where, image, fresh, timeout):
    from .hostlink import HostLinkError
    try:
        return run_image_on_board(link, image, fresh, timeout)
    except HostLinkError as e:
        raise BoardError(f"{where}: {e}") from None


@_failing
def cmd_run_board(args, image):
    """``tsp run PROGRAM --board B (--sim | --port P)``."""
    from sim.golden import run_image
    from .cli import _error_names as error_names
    gold = run_image(image)
    link, fresh, where = _board_link(args, image.config)
    st, _, outputs = _run(link, where, image, fresh, _timeout(args, gold.cycles))
    match = _same(outputs, gold.outputs)
    agree = all(match.values()) and st.cycles == gold.cycles and st.errors == gold.errors
    report = {"config": image.config.name, "engine": "board", "board": args.board,
              "sim": bool(args.sim), "port": args.port, "cycles": st.cycles,
              "errors": error_names(st.errors), "golden_cycles": int(gold.cycles),
              "golden_errors": error_names(gold.errors), "outputs_match": match,
              "agree": agree,
              "outputs": {n: np.asarray(v).tolist() for n, v in outputs.items()}}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.program}: {where}, config {image.config.name}: {st.cycles} cycles "
              f"(golden model {gold.cycles}), errors: {', '.join(report['errors']) or 'none'}; "
              f"{'agrees with' if agree else 'DISAGREES with'} the golden model")
        for name, values in outputs.items():
            print(f"  {name} = {np.array2string(np.asarray(values), max_line_width=100)}"
                  + ("" if match[name] else "   (golden model differs)"))
    return 0 if agree else 1


@_failing
def cmd_run_onnx_board(args, model, imported, feeds, compiled):
    """``tsp run-onnx MODEL --board B (--sim | --port P)``: the compiled image on the
    board; its outputs against the golden model's and ONNX's reference evaluator, its
    cycle counter against the compiler's prediction."""
    from onnx.reference import ReferenceEvaluator
    from .cli import _error_names as error_names, show_onnx_report
    reference = dict(zip([o.name for o in model.graph.output], ReferenceEvaluator(model).run(
        None, {n: feeds[n] for n in imported.inputs})))
    gold_result, gold_values = compiled.run("golden")
    link, fresh, where = _board_link(args, compiled.config)
    st, memory, _ = _run(link, where, compiled.image, fresh,
                         _timeout(args, compiled.predicted_cycles))
    values = compiled.results(memory)
    outs = imported.host_outputs(values)
    gold_outs = imported.host_outputs(gold_values)
    report = {"model": str(args.model), "config": compiled.config.name, "engine": "board",
              "board": args.board, "sim": bool(args.sim), "port": args.port,
              "predicted_cycles": compiled.predicted_cycles, "cycles": st.cycles,
              "golden_cycles": int(gold_result.cycles), "errors": error_names(st.errors),
              "outputs": {n: list(np.shape(v)) for n, v in outs.items()},
              "golden_mismatches": {n: int(np.sum(np.asarray(v) != np.asarray(gold_outs[n])))
                                    for n, v in outs.items()},
              "reference_mismatches": {n: int(np.sum(np.asarray(v) != reference[n]))
                                       for n, v in outs.items()}}
    report["agree"] = (st.cycles == compiled.predicted_cycles == gold_result.cycles
                       and not st.errors and not any(report["golden_mismatches"].values()))
    show_onnx_report(args, report, outs,
                     f"{args.model}: {where}, config {report['config']}: {st.cycles} cycles")
    bad = not report["agree"] or any(report["reference_mismatches"].values())
    return 1 if bad else 0
