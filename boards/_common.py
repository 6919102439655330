"""What the board tops share: the core behind its UART, the status LEDs, the clock and reset.

A board top is a PLL making the core clock from the board's oscillator, a
reset held until the PLL locks, and :class:`BoardCore` on the FTDI's UART and
the LEDs. :class:`BoardCore` is everything of a board's gateware but the PLL
and the pins, so the simulated board (``firmware.hostlink.SimTransport`` with
``dut=BoardCore(...)``) runs exactly what the bitstream carries, at a faster
bit rate. A board module only adds its PLL (:meth:`BoardTop.add_pll`), names
its LEDs, and says which machine it carries (``CONFIG``) at which clock
(``CORE_FREQ``).
"""

from amaranth.hdl import Module, Signal, ClockDomain, ClockSignal, Elaboratable
from amaranth.lib import io, memory, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from firmware.hostlink import FRAME_TIMEOUT_BYTES
from firmware.machine import get_config
from rtl.hostlink import HostBridge, LinkedTSP, UARTReceiver, UARTTransmitter
from rtl.top import HostCmd

from . import CORES, PROBE_PREFIX, check_core


__all__ = ["BAUD", "BLINK_HZ", "CORES", "LinkLoopback", "UARTEcho", "BoardCore", "BoardTop",
           "uart_divisor"]

#: The host link's line rate: the FTDI of both boards does it, and the client's default.
BAUD = 115200

#: The status LED blinks at this rate while the TSP runs.
BLINK_HZ = 4


def uart_divisor(core_freq, baud=BAUD):
    """Core clocks per UART bit. The receiver samples mid-bit and tolerates about a
    quarter bit of drift over a character, so the rounding error must stay small."""
    divisor = round(core_freq / baud)
    if abs(core_freq / divisor - baud) / baud > 0.02:
        raise ValueError(f"{core_freq / 1e6:.3f} MHz cannot make {baud} baud within 2 % "
                         f"(divisor {divisor} gives {core_freq / divisor:.0f})")
    return divisor


class _UARTCore(wiring.Component):
    """The ports a board top expects of what it carries (as
    :class:`~rtl.hostlink.LinkedTSP` has them): the UART pins and the three LED states."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    running: Out(1)
    done: Out(1)
    error: Out(1)


class LinkLoopback(_UARTCore):
    """The host link without the TSP, to bring a board's UART up: a
    :class:`~rtl.hostlink.HostBridge` in front of one scratch memory of
    ``mem_words`` words that ``WRITE_MEM`` / ``READ_MEM`` of any slice position
    reach. Nothing ever runs (``START`` does nothing), so ``STATUS`` reads zeros.

    Members as :class:`~rtl.hostlink.LinkedTSP`.
    """


    def __init__(self, config, divisor, timeout_bytes=FRAME_TIMEOUT_BYTES):
        self._config = config
        self.bridge = HostBridge(config, divisor, timeout_bytes)
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


class UARTEcho(_UARTCore):
    """Sends back every byte it receives: a board image that checks the clock, the
    UART pins and the serial port before the protocol is involved (type into a
    terminal, see it come back). ``running``, ``done`` and ``error`` stay low.

    Members as :class:`~rtl.hostlink.LinkedTSP`.
    """


    #: Bytes held while the transmitter is busy: a host sending a little faster
    #: than this clock's baud rate gains a byte every few dozen.
    DEPTH = 16

    def __init__(self, divisor):
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = urx = UARTReceiver(self._divisor)
        m.submodules.tx = utx = UARTTransmitter(self._divisor)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self.DEPTH)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     fifo.w_data.eq(urx.o.payload), fifo.w_en.eq(urx.o.valid)]
        wiring.connect(m, fifo.r_stream, utx.i)
        return m


class BoardCore(wiring.Component):
    """A board's gateware without its PLL and pins: ``core`` (one of :data:`CORES`:
    the linked TSP of ``config``, :class:`LinkLoopback` or :class:`UARTEcho`; or
    ``probe:<block>``, :class:`boards.probe.BlockProbe`) and the status LEDs.

    ``divisor`` is core clocks per UART bit; ``blink`` core clocks per half period
    of the running blink. Further arguments go to :class:`~rtl.hostlink.LinkedTSP`.

    Members
    -------
    rx : In(1), tx : Out(1)
        The UART pins (idle high).
    led_status : Out(1)
        Lit while idle, blinking while the TSP runs.
    led_done : Out(1)
        Lit once a run has finished (until the next ``START``).
    led_error : Out(1)
        Lit while an error flag of the last run is up.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    led_status: Out(1)
    led_done: Out(1)
    led_error: Out(1)

    def __init__(self, config, divisor, blink, timeout_bytes=FRAME_TIMEOUT_BYTES,
                 core="tsp", **tsp_args):
        if not isinstance(blink, int) or blink < 1:
            raise ValueError(f"blink must be a positive number of clocks, not {blink!r}")
        check_core(core)
        self._config = get_config(config)
        self._blink = blink
        if core.startswith(PROBE_PREFIX):
            from .probe import BlockProbe, make_block
            self.linked = BlockProbe(make_block(self._config, core[len(PROBE_PREFIX):]))
        elif core == "tsp":
            self.linked = LinkedTSP(self._config, divisor, timeout_bytes, **tsp_args)
        elif core == "loopback":
            self.linked = LinkLoopback(self._config, divisor, timeout_bytes)
        else:
            self.linked = UARTEcho(divisor)
        super().__init__()

    @property
    def tsp(self):
        """The :class:`~rtl.top.TSP` (simulation looks into its memories)."""
        return self.linked.tsp

    def elaborate(self, platform):
        m = Module()
        m.submodules.linked = core = self.linked
        m.d.comb += [core.rx.eq(self.rx), self.tx.eq(core.tx)]

        blink = Signal()
        count = Signal(range(self._blink))
        with m.If(count == self._blink - 1):
            m.d.sync += [count.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += count.eq(count + 1)
        m.d.comb += [self.led_status.eq(~core.running | blink),
                     self.led_done.eq(core.done), self.led_error.eq(core.error)]
        return m


class BoardTop(Elaboratable):
    """PLL, reset until lock, :class:`BoardCore` on UART 0, LEDs: a board's whole design.

    A board subclasses this with ``platform_class``, ``leds`` (``BoardCore`` LED
    member -> ``(resource name, number)``; a missing one is simply not shown),
    :meth:`pll_params` (``(..., achieved Hz)`` for an input and an output
    frequency) and :meth:`add_pll`. ``core_freq`` is the requested core clock;
    the PLL's nearest achievable one is used (``self.core_freq``); ``core`` is
    what the board carries (:data:`CORES`).
    """

    platform_class = None
    leds = {}
    #: Whether the host link's reset of the TSP comes from a register
    #: (:class:`~rtl.hostlink.HostBridge`'s ``reset_register``).
    reset_register = True

    def __init__(self, config, core_freq, core="tsp"):
        check_core(core)
        self.config = get_config(config)
        self.core = core
        self.pll, self.core_freq, self.divisor = self.clocks(core_freq)

    @classmethod
    def clocks(cls, core_freq):
        """``(PLL settings, core clock, UART divisor)`` for a requested core clock;
        ``ValueError`` if the PLL cannot make it within 1 % or the UART's baud rate
        cannot be divided from it."""
        f_in = cls.platform_class().default_clk_frequency
        pll = cls.pll_params(f_in, core_freq)
        if abs(pll[-1] - core_freq) > 0.01 * core_freq:
            raise ValueError(f"the PLL cannot make {core_freq / 1e6:.2f} MHz from "
                             f"{f_in / 1e6:.2f} MHz (nearest: {pll[-1] / 1e6:.2f} MHz)")
        return pll, pll[-1], uart_divisor(pll[-1])

    @staticmethod
    def pll_params(f_in, f_out):
        raise NotImplementedError

    def add_pll(self, m, platform, clk, lock):
        """Instantiate the PLL: ``clk`` is the core clock it drives, ``lock`` its lock output."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        # No clock constraint is added for the core clock: nextpnr derives the PLL
        # output's from the oscillator's, which the platform constrains (boards.build
        # checks that the derived constraint is the PLL's frequency).
        m.domains.sync = ClockDomain("sync")
        lock = Signal()
        self.add_pll(m, platform, ClockSignal("sync"), lock)
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")

        tsp_args = {"reset_register": self.reset_register} if self.core == "tsp" else {}
        m.submodules.core = core = BoardCore(
            self.config, self.divisor, blink=int(self.core_freq // (2 * BLINK_HZ)),
            core=self.core, **tsp_args)
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx.i), tx.o.eq(core.tx)]
        for member, (name, number) in self.leds.items():
            m.submodules[f"{name}_{number}"] = led = io.Buffer("o", platform.request(
                name, number, dir="-"))
            m.d.comb += led.o.eq(getattr(core, member))
        return m
