"""The ULX3S-85F (ECP5-85F) with the ``ulx3s`` TSP behind the FTDI's UART.

Clock: the 25 MHz oscillator feeds an ``EHXPLLL``; ``pll_params`` picks its
dividers the way ``ecppll`` does. LEDs: LED 0 lit while idle and blinking while
running, LED 1 after a finished run, LED 7 on an error flag. Build:
``python -m boards.ulx3s [build_dir]`` (YoWASP tools).
"""

import sys

from amaranth.hdl import Elaboratable, Module, Signal, Instance
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from ._common import core_domain, attach_core, build


__all__ = ["pll_params", "ULX3STop", "build_ulx3s"]

#: ECP5 PLL limits (Lattice TN1263 / ecppll): input divider, feedback, output divider.
PFD_MHZ = (3.125, 400)
VCO_MHZ = (400, 800)
CLKI_DIV_MAX, CLKFB_DIV_MAX, CLKOP_DIV_MAX = 128, 80, 128


def pll_params(f_in, f_out):
    """``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV, achieved Hz)`` closest to ``f_out`` (feedback from CLKOP)."""
    best = None
    for clki in range(1, CLKI_DIV_MAX + 1):
        pfd = f_in / clki
        if not PFD_MHZ[0] * 1e6 <= pfd <= PFD_MHZ[1] * 1e6:
            continue
        for clkfb in range(1, CLKFB_DIV_MAX + 1):
            out = pfd * clkfb
            clkop = max(1, round(sum(VCO_MHZ) / 2 * 1e6 / out))     # VCO mid-range
            if clkop > CLKOP_DIV_MAX or not VCO_MHZ[0] * 1e6 <= out * clkop <= VCO_MHZ[1] * 1e6:
                continue
            if best is None or abs(out - f_out) < abs(best[-1] - f_out):
                best = (clki, clkfb, clkop, out)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {f_out / 1e6} MHz from {f_in / 1e6} MHz")
    return best


class ULX3STop(Elaboratable):
    """PLL, reset, the linked TSP, LEDs. ``core_freq`` is the requested core clock;
    the PLL's nearest achievable frequency is used (``self.core_freq``).
    ``loopback`` puts :class:`~boards._common.LinkLoopback` in place of the TSP."""

    def __init__(self, config="ulx3s", core_freq=25e6, loopback=False):
        self.config = config
        self.loopback = loopback
        self.pll = pll_params(ULX3S_85F_Platform().default_clk_frequency, core_freq)
        self.core_freq = self.pll[-1]

    def elaborate(self, platform):
        m = Module()
        clki, clkfb, clkop, _ = self.pll
        clk25 = platform.request("clk25", 0)
        lock = Signal()
        clk = core_domain(m, lock)
        m.submodules.pll = Instance(
            "EHXPLLL",
            # Loop filter settings ecppll writes for every configuration.
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=clki, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop,
            p_CLKOP_CPHASE=clkop - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=clkfb,
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock)
        attach_core(m, platform, self.config, self.core_freq,
                    led_status=platform.request("led", 0), led_error=platform.request("led", 7),
                    led_done=platform.request("led", 1), loopback=self.loopback)
        return m


def build_ulx3s(build_dir="build/ulx3s", config="ulx3s", core_freq=25e6, loopback=False):
    """Bitstream for the ULX3S-85F; returns the :class:`~boards._common.BuildReport`."""
    return build(ULX3S_85F_Platform(), ULX3STop(config, core_freq, loopback), build_dir)


if __name__ == "__main__":
    print(build_ulx3s(*sys.argv[1:2]))
