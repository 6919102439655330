"""The iCEBreaker (iCE40 UP5K) with the ``tiny`` TSP behind the FTDI's UART.

Clock: the 12 MHz oscillator on pin 35 (a PLL pad) feeds ``SB_PLL40_PAD``;
``pll_params`` picks the divider settings for the core clock the way
``icepll`` does. LEDs: green lit while idle and blinking while running, red on
an error flag. Build: ``python -m boards.icebreaker [build_dir]`` (YoWASP tools).
"""

import sys

from amaranth.hdl import Elaboratable, Module, Signal, Instance
from amaranth_boards.icebreaker import ICEBreakerPlatform

from ._common import core_domain, attach_core, build


__all__ = ["pll_params", "ICEBreakerTop", "build_icebreaker"]

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


class ICEBreakerTop(Elaboratable):
    """PLL, reset, the linked TSP, LEDs. ``core_freq`` is the requested core clock;
    the PLL's nearest achievable frequency is used (``self.core_freq``).
    ``loopback`` puts :class:`~boards._common.LinkLoopback` in place of the TSP."""

    def __init__(self, config="tiny", core_freq=12e6, loopback=False):
        self.config = config
        self.loopback = loopback
        self.pll = pll_params(ICEBreakerPlatform().default_clk_frequency, core_freq)
        self.core_freq = self.pll[-1]

    def elaborate(self, platform):
        m = Module()
        divr, divf, divq, filt, _ = self.pll
        clk12 = platform.request("clk12", dir="-")
        lock = Signal()
        clk = core_domain(m, lock)
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=divr, p_DIVF=divf, p_DIVQ=divq,
            p_FILTER_RANGE=filt,
            i_PACKAGEPIN=clk12.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        attach_core(m, platform, self.config, self.core_freq,
                    led_status=platform.request("led_g", 0),
                    led_error=platform.request("led_r", 0), loopback=self.loopback)
        return m


def build_icebreaker(build_dir="build/icebreaker", config="tiny", core_freq=12e6,
                     loopback=False):
    """Bitstream for the iCEBreaker; returns the :class:`~boards._common.BuildReport`."""
    return build(ICEBreakerPlatform(), ICEBreakerTop(config, core_freq, loopback), build_dir)


if __name__ == "__main__":
    print(build_icebreaker(*sys.argv[1:2]))
