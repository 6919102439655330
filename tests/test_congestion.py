"""scripts/congestion.py: router2's heat maps summed by part of the TSP."""

import io

import pytest

from scripts_util import load_script


congestion = load_script("congestion")


def _write_maps(folder, n, nets, grid):
    (folder / f"heat_congestion_by_net_{n}.csv").write_text(
        "".join(f"{name},{count}\n" for name, count in nets))
    (folder / f"heat_congestion_by_coordinate_{n}.csv").write_text(
        "".join(",".join(str(v) for v in row) + ",\n" for row in grid))


def test_groups_parts_and_hot_spots(tmp_path):
    grid_1 = [[0, 0, 0], [0, 9, 0], [0, 0, 0]]
    # iteration 2: x 1 has 5 + 2, x 2 has 4; row y 2 has 5 + 4
    grid_2 = [[0, 0, 0], [0, 2, 5], [0, 0, 4]]
    _write_maps(tmp_path, 1, [("core.linked.tsp.VXM.t0_alu1_s2_prod0[3]", 40)], grid_1)
    _write_maps(tmp_path, 2, [
        ("core.linked.tsp.MXM_E.t0_prod_r1_n2_TRELLIS_FF_Q_DI", 5),
        ("core.linked.tsp.MXM_E.t3_prod_r0_n7_TRELLIS_FF_Q_DI", 3),
        ("core.linked.tsp.MEM_E0.e_in[12]", 2),
        ("core.linked.tsp.MEM_E1.e_in[4]", 1),
        ("core.linked.bridge.buf_data[1]", 1),
        ("rst", 2),
        ("core.linked.tsp.MEM_E0.e_in[13]", 2),     # one net may appear twice: summed
    ], grid_2)
    # Another prefix in the same folder is not mixed in.
    (tmp_path / "other_congestion_by_net_9.csv").write_text("x,100\n")
    assert congestion.iterations(tmp_path, "heat") == [1, 2]

    nets = congestion.read_nets(congestion.heat_file(tmp_path, "heat", "net", 2))
    total, parts, groups = congestion.summarise(nets, depth=1)
    assert total == 16
    assert parts == {"MXM_E": 8, "MEM_E0": 4, "MEM_E1": 1, "bridge": 1, "(top)": 2}
    assert groups["MXM_E.t#_prod_r#_n#_TRELLIS_FF_Q_DI"] == 8
    assert groups["MEM_E#.e_in"] == 5
    assert groups["rst"] == 2

    cols, rows, box = congestion.hot_lines(congestion.read_grid(
        congestion.heat_file(tmp_path, "heat", "coordinate", 2)), 2)
    assert cols == [(1, 7), (2, 4)]
    assert rows == [(2, 9), (1, 2)]
    assert box == (1, 2, 1, 2)

    out = io.StringIO()
    assert congestion.report(tmp_path, "heat", out=out) == 2
    text = out.getvalue()
    assert "1: 40, 2: 16" in text
    assert "iteration 2: 16 overused wires" in text
    assert "MXM_E.t#_prod_r#_n#_TRELLIS_FF_Q_DI" in text
    assert "all overuse within x 1..2, y 1..2" in text


def test_part_names_keep_slice_numbers_and_drop_generated_ones():
    assert congestion.part_of("core.linked.tsp.MEM_W3.tile0_bank1.0.0_DOB1", 1) == "MEM_W3"
    assert congestion.part_of("core.linked.tsp.MEM_W3.tile0_bank1.0.0_DOB1", 2) == \
        "MEM_W3.tile0_bank1"
    assert congestion.part_of("core.linked.tsp.imem_w$117.x", 1) == "imem_w"
    assert congestion.part_of("host", 1) == "(top)"


def test_missing_maps_and_iterations_say_how_to_get_them(tmp_path):
    with pytest.raises(SystemExit, match="--router2-heatmap heat"):
        congestion.report(tmp_path, "heat")
    _write_maps(tmp_path, 3, [("a.b", 1)], [[1]])
    with pytest.raises(SystemExit, match="no heat map of iteration 7 .*iterations 3 to 3"):
        congestion.report(tmp_path, "heat", iteration=7)
