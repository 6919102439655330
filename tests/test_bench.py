"""``tsp bench``: the quick suite runs and its tables hold together.

The benchmark is run, not asserted: nothing here checks a speed. What is checked is
that every section is written, and that the numbers agree with each other and with
the project's contract (golden == predicted, RTL == predicted, jitter min == max,
bound = M * ceil(K/VL) * ceil(N/VL), latency = cycles / Fmax, GOPS = 2 * VL^2 * Fmax).
"""

import json
import math

import pytest

from boards.build import BuildReport
from firmware.bench import NOT_QUICK, SECTIONS
from firmware.cli import main as tsp
from firmware.machine import CONFIGS


TITLES = ("## GEMM utilisation", "## Models", "## Jitter", "## Simulation throughput",
          "## FPGA", "## Scale")


def rows(data, section):
    return data["sections"][section]["rows"]


def test_quick_suite(tmp_path):
    """One test, so that the suite runs once however pytest-xdist spreads the tests."""
    status = tsp(["bench", "--quick", "--out", str(tmp_path / "B.md"),
                  "--json", str(tmp_path / "B.json")])
    md, data = (tmp_path / "B.md").read_text(), json.loads((tmp_path / "B.json").read_text())
    assert status == 0, data["problems"]
    check_sections(md, data)
    check_gemm(md, data)
    check_models_jitter_sim_scale(data)


def check_sections(md, data):
    assert data["problems"] == []
    assert set(data["sections"]) == set(SECTIONS)
    for title in TITLES:
        assert title in md
    assert data["meta"]["mode"] == "quick"
    assert [c["name"] for c in data["meta"]["configs"]] == list(CONFIGS)


def check_gemm(md, data):
    ran = [r for r in rows(data, "gemm") if r["predicted"] is not None]
    assert {r["config"] for r in ran} >= {"ulx3s", "groq"}
    for r in rows(data, "gemm"):
        vl = CONFIGS[r["config"]].vl
        assert r["bound"] == r["M"] * math.ceil(r["K"] / vl) * math.ceil(r["N"] / vl)
        if r["predicted"] is None:           # the compiler's reason is in the table
            assert r["status"].startswith("not compiled: ") and r["status"] in md.replace("\\|", "|")
            continue
        assert r["golden"] == r["predicted"] and r["status"] == "ok"
        assert r["utilisation"] == pytest.approx(r["bound"] / r["predicted"])
        assert f"| {r['config']} | {r['shape']} | {r['bound']} | {r['predicted']} | " in md
    rtl = [r for r in ran if isinstance(r["rtl"], int)]
    assert rtl, "the quick suite runs one GEMM on the gateware"
    assert all(r["rtl"] == r["predicted"] for r in rtl)
    # no Fmax without builds: the latency column says so instead of a number
    assert all(r["latency_us"] is None for r in ran)
    assert any(NOT_QUICK in (r["latency_at"] or "") for r in ran)


def check_models_jitter_sim_scale(data):
    models = [r for r in rows(data, "models") if r["predicted"] is not None]
    assert {r["model"] for r in models} == {"mlp", "cnn"}
    assert all(r["golden"] == r["predicted"] and r["status"] == "ok" for r in models)

    jitter = [r for r in rows(data, "jitter") if r["inputs"]]
    assert {r["program"] for r in jitter} == {"mlp", "cnn"}
    for r in jitter:
        assert r["min"] == r["max"] == r["predicted"]
        assert r["wrong"] == 0            # the new inputs really were computed on

    sim = [r for r in rows(data, "sim") if r["cycles"] is not None]
    assert {r["engine"] for r in sim} == {"golden", "amaranth"}
    assert len({r["cycles"] for r in sim}) == 1          # the same program on both engines
    assert all(r["cycles_per_s"] > 0 for r in sim)
    assert {x["ratio"] for x in data["sections"]["sim"]["ratios"]} == {"golden / amaranth"}

    gemm = {(r["config"], r["shape"]): r for r in rows(data, "gemm")}
    for r in rows(data, "scale"):
        if (r["config"], r["shape"]) in gemm:
            assert r["predicted"] == gemm[r["config"], r["shape"]]["predicted"]

    assert all(r["status"] == NOT_QUICK and r["fmax_mhz"] is None for r in rows(data, "fpga"))


def _ulx3s_report(path, fmax, core="tsp"):
    """A finished build as ``boards.build`` writes it (its own ``as_json``)."""
    rep = BuildReport(board="ulx3s", config="ulx3s", device="LFE5U-85F-CABGA381", core=core,
                      build_dir=path, bitstream=path / "top.bit", clock="$glbnet$clk",
                      target_mhz=25.0, fmax_mhz=fmax,
                      resources={"LUT": (33592, 83640), "FF": (6623, 83640),
                                 "BRAM": (36, 208), "DSP": (48, 156)},
                      cells={}, phase_s={"synth": 900.0, "place": 300.0})
    path.mkdir(parents=True)
    (path / "build.json").write_text(json.dumps(rep.as_json()))


ICE40_TIM = """Info: Device utilisation:
Info: \t         ICESTORM_LC:   58326/   5280  1104%
Info: \t        ICESTORM_RAM:      62/     30   206%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_RAM'
"""

ICE40_RPT = """2.50. Printing statistics.

=== top ===

        +----------Count including submodules.
        |
       62   SB_RAM40_4K
     4692   SB_CARRY
      768   SB_DFF
     4052   SB_DFFSR
    54336   SB_LUT4
"""


def test_fpga_reports_feed_latency_and_gops(tmp_path):
    _ulx3s_report(tmp_path / "ulx3s", fmax=40.0)
    (tmp_path / "icebreaker").mkdir()
    (tmp_path / "icebreaker" / "top.tim").write_text(ICE40_TIM)
    (tmp_path / "icebreaker" / "top.rpt").write_text(ICE40_RPT)
    out = tmp_path / "B.md"
    status = tsp(["bench", "--quick", "--sections", "fpga", "models",
                  "--fpga-reports", str(tmp_path), "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert status == 0, data["problems"]
    fpga = {r["board"]: r for r in rows(data, "fpga")}
    vl = CONFIGS["ulx3s"].vl
    assert fpga["ulx3s"]["fmax_mhz"] == 40.0 and fpga["ulx3s"]["status"] == "ok"
    assert fpga["ulx3s"]["gops"] == pytest.approx(2 * vl * vl * 40e6 / 1e9)
    assert fpga["ulx3s"]["resources"]["DSP"] == [48, 156]
    ice = fpga["icebreaker"]
    assert ice["fmax_mhz"] is None and ice["gops"] is None
    assert ice["status"].startswith("failed: design too big")
    assert ice["resources"]["LUT"] == [54336, None] and ice["resources"]["FF"] == [768 + 4052, None]
    for r in rows(data, "models"):
        if r["config"] == "ulx3s":
            assert r["latency_us"] == pytest.approx(r["predicted"] / 40.0)
            assert "ulx3s @ 40.00 MHz" in r["latency_at"]
    assert f"| ulx3s | ulx3s | {vl} | 40.00 |" in out.read_text()


def test_a_build_without_a_tsp_gives_no_gops_and_no_latency(tmp_path):
    """A board build that carries the host link alone (``--core loopback``) reaches
    its own Fmax; the table must not pass it off as the TSP's."""
    _ulx3s_report(tmp_path / "ulx3s", fmax=80.0, core="loopback")
    out = tmp_path / "B.md"
    tsp(["bench", "--quick", "--sections", "fpga", "models", "--fpga-reports", str(tmp_path),
         "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    ulx = {r["board"]: r for r in rows(data, "fpga")}["ulx3s"]
    assert ulx["gops"] is None and "core 'loopback'" in ulx["status"]
    for r in rows(data, "models"):
        assert r.get("latency_us") is None


def test_an_unfinished_build_is_not_called_failed(tmp_path):
    """A build whose nextpnr is still routing (or was stopped) has an estimate, not an
    Fmax: the row says it has not finished, and no GOPS or latency come from it."""
    build = tmp_path / "ulx3s"
    build.mkdir()
    (build / "top.tim").write_text(
        "Info: Max frequency for clock '$glbnet$clk': 38.53 MHz (FAIL at 50.00 MHz)\n"
        "Info: Running router2...\n")
    out = tmp_path / "B.md"
    tsp(["bench", "--quick", "--sections", "fpga", "--fpga-reports", str(tmp_path),
         "--out", str(out)])
    ulx = {r["board"]: r for r in rows(json.loads(out.with_suffix(".json").read_text()),
                                       "fpga")}["ulx3s"]
    assert ulx["status"].startswith("nextpnr has not finished") and "38.53 MHz" in ulx["status"]
    assert ulx["fmax_mhz"] is None and ulx["gops"] is None


@pytest.mark.parametrize("argv, message", [
    (["--fpga-reports", "/nonexistent/builds"], "--fpga-reports /nonexistent/builds: no such directory"),
    (["--out", "/nonexistent/dir/B.md"], "directory /nonexistent/dir does not exist"),
    (["--jitter-rtl", "-1"], "--jitter-rtl -1: must not be negative"),
])
def test_bad_options_are_one_line(argv, message, capsys):
    assert tsp(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and message in err and err.startswith("tsp bench: error:")
