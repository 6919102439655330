"""The iCEBreaker (iCE40 UP5K) and the TSP it carries behind the FTDI's UART.

Clock: the 12 MHz oscillator on pin 35 (a PLL pad) feeds ``SB_PLL40_PAD``;
:func:`pll_params` picks the divider settings for the core clock the way
``icepll`` does. LEDs: green lit while idle and blinking while running, red on
an error flag. Serial: the FT2232H's second interface (``/dev/ttyUSB1`` when no
other FTDI is plugged in; the first one programs the flash).
Build: ``tsp build --board icebreaker`` (YoWASP tools).
"""

from amaranth.hdl import Instance
from amaranth_boards.icebreaker import ICEBreakerPlatform

from ._common import BoardTop


__all__ = ["CONFIG", "CORE_FREQ", "SYNTH_OPTS", "LOADER_BOARD", "TOP", "pll_params", "ICEBreakerTop"]

#: The machine the iCEBreaker carries (a name of ``firmware.machine.CONFIGS``): the
#: smallest set, ``pico`` (one lane per tile, an 8-bit VXM with no int32 ops, no SXM).
#: ``tsp build --board icebreaker`` packs it into 5,260 of the UP5K's 5,280 logic
#: cells and meets 24 MHz (Fmax 28.3 MHz, session 13; ``docs/ARCHITECTURE.md``,
#: "The FPGA sets"). It runs int8 vector programs (``boards/programs/vadd_pico.s``);
#: a GEMM does not compile for it (its int32 results need four MEM slices a side).
CONFIG = "pico"

#: The core clock asked of the PLL (the issue's target: at least 24 MHz).
CORE_FREQ = 24e6

#: Extra options of Yosys's ``synth_ice40``: ``"-dsp"`` maps multipliers to the
#: UP5K's eight SB_MAC16 instead of logic cells. (``-dff`` took another 4 % of
#: the LUTs off the smallest TSP, but made its synthesis ten times slower.)
SYNTH_OPTS = "-dsp"

#: iCE40 PLL limits (Lattice TN1251): phase detector input, VCO, output dividers.
PFD_MHZ = (10, 133)
VCO_MHZ = (533, 1066)
DIVR_MAX, DIVF_MAX, DIVQ_RANGE = 15, 127, range(1, 7)
#: FILTER_RANGE by phase detector frequency: upper bounds (MHz) of ranges 1, 2, ...
FILTER_BOUNDS = (17, 26, 44, 66, 101)


def pll_params(f_in, f_out):
    """``(DIVR, DIVF, DIVQ, FILTER_RANGE, achieved Hz)`` closest to ``f_out`` (SIMPLE feedback)."""
    best = None
    for divr in range(DIVR_MAX + 1):
        pfd = f_in / (divr + 1)
        if not PFD_MHZ[0] * 1e6 <= pfd <= PFD_MHZ[1] * 1e6:
            continue
        for divf in range(DIVF_MAX + 1):
            vco = pfd * (divf + 1)
            if not VCO_MHZ[0] * 1e6 <= vco <= VCO_MHZ[1] * 1e6:
                continue
            for divq in DIVQ_RANGE:
                out = vco / 2 ** divq
                if best is None or abs(out - f_out) < abs(best[-1] - f_out):
                    filt = 1 + sum(pfd > b * 1e6 for b in FILTER_BOUNDS)
                    best = (divr, divf, divq, filt, out)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {f_out / 1e6} MHz from {f_in / 1e6} MHz")
    return best


class ICEBreakerTop(BoardTop):
    """The iCEBreaker's design: ``SB_PLL40_PAD``, then :class:`~boards._common.BoardTop`."""

    family = "ice40"
    platform_class = ICEBreakerPlatform
    leds = {"led_status": ("led_g", 0), "led_error": ("led_r", 0)}
    pll_params = staticmethod(pll_params)
    #: The link's reset of the TSP straight from its decision, not from a register: with
    #: the register ``pico`` packs into 5,330 of the UP5K's 5,280 logic cells (session 14),
    #: and at 24 MHz that reset is far from the iCE40's critical path.
    reset_register = False

    def __init__(self, config=CONFIG, core_freq=CORE_FREQ, core="tsp"):
        super().__init__(config, core_freq, core)

    def add_pll(self, m, platform, clk, lock):
        divr, divf, divq, filt, _ = self.pll
        clk12 = platform.request("clk12", dir="-")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=divr, p_DIVF=divf, p_DIVQ=divq,
            p_FILTER_RANGE=filt,
            i_PACKAGEPIN=clk12.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)


#: openFPGALoader's name of the board (``openFPGALoader -b icebreaker BITSTREAM``).
LOADER_BOARD = "icebreaker"

#: The board's design, for ``boards.build``.
TOP = ICEBreakerTop


if __name__ == "__main__":
    from .build import main
    main("icebreaker")
