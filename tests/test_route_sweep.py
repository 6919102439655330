"""scripts/route_sweep.py: several nextpnr seeds of one netlist, stopping stalled runs."""

import json

import pytest

from scripts_util import load_script


sweep = load_script("route_sweep")


def _router_log(counts, estimate=31.5):
    """nextpnr log text: the placer's lines, its estimate, then router2's iterations."""
    lines = ["Info: iter=0 steplen=2.66 a=1.0 penalty=[0.00, 0.00]",      # the placer's
             f"Info: Max frequency for clock '$glbnet$clk': {estimate:.2f} MHz (PASS at 25.00 MHz)",
             "Info: Running router2..."]
    lines += [f"Info:     iter={i} wires=97{i:04d} overused={n} overuse={n + 3} archfail=NA"
              for i, n in enumerate(counts, start=1)]
    return "\n".join(lines) + "\n"


def test_reads_router2_iterations_and_the_estimate():
    log = _router_log([900, 40, 7])
    assert sweep.router_progress(log) == [(1, 900), (2, 40), (3, 7)]
    assert sweep.placement_estimate(log) == 31.5
    assert sweep.placement_estimate("Info: placing\n") is None
    assert sweep.router_progress("Info: iter=3 steplen=1.9 a=2.7\n") == []


@pytest.mark.parametrize("counts, patience, expected", [
    ([], 3, False),
    ([50, 40, 30], 3, False),              # falling
    ([50, 20, 25, 24, 23], 3, True),       # lowest at 2, three iterations ago
    ([50, 20, 25, 24], 3, False),          # only two
    ([50, 20, 25, 20], 3, False),          # equal to the lowest is no progress, but
    ([50, 20, 25, 20, 21], 3, True),       # the first lowest counts
    ([10, 11, 12, 13], 3, True),           # only ever rising
])
def test_stall(counts, patience, expected):
    steps = [(i + 1, n) for i, n in enumerate(counts)]
    assert sweep.stalled(steps, patience) is expected


def test_seed_lists():
    assert sweep.parse_seeds("3") == [3]
    assert sweep.parse_seeds("2,5-7, 9") == [2, 5, 6, 7, 9]
    for bad in ("0", "5-3", "x", "2-"):
        with pytest.raises(ValueError, match="--seeds"):
            sweep.parse_seeds(bad)


class FakeBuild:
    """Stands in for ``boards.build.build``: writes a router log into the run folder
    an iteration at a time, calling ``progress`` after each, as the real build does."""

    def __init__(self, runs):
        self.runs, self.calls = runs, []

    def __call__(self, board, out, core_freq, progress, nextpnr_opts, netlist):
        self.calls.append((str(out), nextpnr_opts, netlist and str(netlist)))
        seed = int(nextpnr_opts.rsplit(" ", 1)[1])
        counts = self.runs[seed]
        out.mkdir(parents=True)
        (out / "top.json").write_text("{}")
        for n in range(len(counts) + 1):
            (out / "top.tim").write_text(_router_log(counts[:n], estimate=30 + seed))
            progress("route", 1.0, "")
        if counts[-1] != 0:
            raise sweep.BuildError("router2 failed")

        class Report:
            fmax_mhz = 40.0 + seed
        return Report()


def test_sweep_stops_stalled_runs_and_stops_at_the_first_route(tmp_path, monkeypatch, capsys):
    fake = FakeBuild({
        3: [500, 90, 95, 96, 97, 98, 99, 100, 101],      # stalls 3 after iteration 2
        4: [400, 30, 12, 5, 0],                          # routes
        5: [0],                                          # never reached
    })
    monkeypatch.setattr(sweep, "build", fake)
    rows_file = tmp_path / "rows.json"
    code = sweep.main(["--freq", "25", "--nextpnr-opts=--no-tmdriv", "--seeds", "3-5",
                       "--patience", "3", "--out", str(tmp_path / "sw"), "--json", str(rows_file)])
    assert code == 0
    # seed 3 synthesised; seed 4 reused its netlist; seed 5 never ran
    assert [c[1] for c in fake.calls] == ["--no-tmdriv --seed 3", "--no-tmdriv --seed 4"]
    assert fake.calls[0][2] is None and fake.calls[1][2] == str(tmp_path / "sw" / "seed3")
    rows = json.loads(rows_file.read_text())
    assert rows[0]["result"].startswith("stalled") and rows[0]["lowest_overused"] == 90
    assert rows[0]["at_iteration"] == 2 and rows[0]["iterations"] == 5
    assert rows[0]["estimate_mhz"] == 33.0
    assert rows[1]["result"] == "routed" and rows[1]["fmax_mhz"] == 44.0
    out = capsys.readouterr().out
    assert '--freq 25 --nextpnr-opts "--no-tmdriv --seed 4"' in out
    assert "| 3 | 33.0 | 90 (2) | 5 |" in out


def test_sweep_without_a_route_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "build", FakeBuild({1: [50, 60, 70, 80], 2: [40, 3, 1]}))
    code = sweep.main(["--freq", "25", "--seeds", "1-2", "--patience", "2", "--out", str(tmp_path)])
    assert code == 1


def test_sweep_places_a_given_netlist(tmp_path, monkeypatch):
    fake = FakeBuild({7: [9, 0]})
    monkeypatch.setattr(sweep, "build", fake)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "top.json").write_text("{}")
    assert sweep.main(["--seeds", "7", "--any-estimate", "--netlist", str(tmp_path / "old"),
                       "--out", str(tmp_path / "sw")]) == 0
    assert fake.calls == [(str(tmp_path / "sw" / "seed7"), "--seed 7", str(tmp_path / "old"))]
    with pytest.raises(SystemExit):
        sweep.main(["--netlist", str(tmp_path / "nothing")])


def test_sweep_refuses_a_clock_the_pll_cannot_make(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--freq", "33", "--out", str(tmp_path)])
    assert "PLL cannot make 33.00 MHz" in capsys.readouterr().err


def test_sweep_stops_when_a_run_ends_before_placement(tmp_path, monkeypatch):
    calls = []

    def failing(board, out, **kw):
        calls.append(out)
        raise sweep.BuildError("synthesis failed: ERROR: something")
    monkeypatch.setattr(sweep, "build", failing)
    assert sweep.main(["--seeds", "1-5", "--out", str(tmp_path)]) == 1
    assert len(calls) == 1


def test_a_placement_slower_than_the_clock_is_not_routed(tmp_path, monkeypatch):
    """The fake logs give seed N the estimate 30 + N MHz: at 35 MHz seeds 1-4 stop as soon
    as they are placed, seed 5 (35.0) routes; with --any-estimate seed 1 routes too."""
    fake = FakeBuild({n: [5, 0] for n in range(1, 6)})
    monkeypatch.setattr(sweep, "build", fake)
    rows_file = tmp_path / "rows.json"
    assert sweep.main(["--freq", "35", "--seeds", "1-5", "--out", str(tmp_path / "a"),
                       "--json", str(rows_file)]) == 0
    rows = json.loads(rows_file.read_text())
    assert [r["result"] for r in rows[:4]] == [
        f"placement estimate {30 + n:g} MHz is below 35 MHz" for n in (1, 2, 3, 4)]
    assert rows[4]["result"] == "routed"
    fake = FakeBuild({1: [5, 0]})
    monkeypatch.setattr(sweep, "build", fake)
    assert sweep.main(["--freq", "35", "--seeds", "1", "--any-estimate",
                       "--out", str(tmp_path / "b")]) == 0
