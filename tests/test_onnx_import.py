"""ONNX models through the importer and the compiler, against onnx.reference.

Every expected value comes from ``onnx.reference.ReferenceEvaluator`` running
the same model. Integer-only graphs must be bit-exact; requantisation with a
scale that is not a power of two may differ from the reference's float
rounding by one LSB at (near-)ties, and the tests count such elements.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from firmware.compiler.lower import compile_graph
from firmware.compiler.onnx_import import OnnxImportError, import_onnx
from firmware.models import MLP_INPUTS, MLP_PATH, demo_mlp
from sim.golden import run_image


I8, I32, F32 = TensorProto.INT8, TensorProto.INT32, TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=21):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                          [numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def run_tsp(m, feeds, config="ulx3s"):
    """(TSP outputs in model order, reference outputs)."""
    imp = import_onnx(m)
    c = compile_graph(imp.graph, imp.host_inputs(feeds), config)
    r = run_image(c.image)
    assert r.errors == 0, [str(e) for e in r.events[:3]]
    assert r.cycles == c.predicted_cycles
    outs = imp.host_outputs(c.results(r.memory))
    ref = ReferenceEvaluator(m).run(None, feeds)
    return [outs[o.name] for o in m.graph.output], ref


def i8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


# -- the main job ---------------------------------------------------------------------

@pytest.mark.parametrize("config", ["ulx3s", "groq"])
def test_example_mlp_bit_exact(config):
    """The committed int8 MLP: logits bit-exact with the reference evaluator,
    predicted cycles == golden cycles, and the same accuracy."""
    r = demo_mlp(config)
    assert r.ok
    assert r.errors == 0
    assert r.cycles == r.predicted_cycles
    assert r.mismatches == 0
    assert r.accuracy == r.reference_accuracy
    assert r.accuracy > 0.5          # 4 classes: far better than chance
    assert r.cycles >= r.bound


def test_example_mlp_files_are_consistent():
    m = onnx.load(str(MLP_PATH))
    onnx.checker.check_model(m)
    with np.load(MLP_INPUTS) as d:
        assert d["x"].shape == (64, 16) and d["labels"].shape == (64,)
    ops = {n.op_type for n in m.graph.node}
    assert ops == {"QuantizeLinear", "DequantizeLinear", "Gemm", "Relu"}


# -- integer-only graphs: bit-exact ------------------------------------------------------

@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_matmulinteger_add_relu(config):
    rng = np.random.default_rng(1)
    w = i8(rng, (12, 7))
    b = rng.integers(-4000, 4000, 7).astype(np.int32)
    nodes = [helper.make_node("MatMulInteger", ["x", "w"], ["acc"]),
             helper.make_node("Add", ["acc", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    ins = [("x", I8, [5, 12])]
    if config == "tiny":    # tiny has no 4 MEM slices on one side: int32 only straight from the MXM
        nodes = [helper.make_node("MatMulInteger", ["x", "w"], ["y"])]
    m = model(nodes, ins, [("y", I32, [5, 7])], [("w", w), ("b", b)])
    feeds = {"x": i8(rng, (5, 12))}
    (got,), (ref,) = run_tsp(m, feeds, config)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)


@pytest.mark.parametrize("shape, phases, copies", [
    # the bias's home slices are read by the GEMM in every gap between passes: a copy
    # elsewhere in MEM feeds the held register
    ((6, 4, 20), ["gemm"], 2),
    # a home slice is free in a gap: the held register is loaded from it, no copy
    ((1, 9, 33), ["gemm"], 1),
    # no slice has a free read port in the gap: the add runs as a phase of its own, and
    # the copy made for the held register is given back
    ((9, 4, 20), ["gemm", "eltwise"], 1),
])
def test_bias_held_between_short_mxm_passes(shape, phases, copies):
    M, K, N = shape
    rng = np.random.default_rng(0)
    w, b = i8(rng, (K, N)), rng.integers(-1000, 1000, (1, N)).astype(np.int32)
    m = model([helper.make_node("MatMulInteger", ["x", "w"], ["acc"]),
               helper.make_node("Add", ["acc", "b"], ["y"])],
              [("x", I8, [M, K])], [("y", I32, [M, N])], [("w", w), ("b", b)])
    feeds = {"x": i8(rng, (M, K))}
    imp = import_onnx(m)
    compiled = compile_graph(imp.graph, imp.host_inputs(feeds), "ulx3s")
    assert [p["kind"] for p in compiled.phases] == phases
    # the low bytes of the bias's first 8 columns: one MEM word per copy
    low = (b[0, :compiled.config.vl] & 0xFF).astype(np.uint8)
    assert sum(np.array_equal(np.asarray(word, np.uint8), low)
               for mem in compiled.image.memory.values() for word in mem.values()) == copies
    (got,), (ref,) = run_tsp(m, feeds)
    assert np.array_equal(got, ref)


def test_matmulinteger_zero_point_folded_into_bias():
    rng = np.random.default_rng(2)
    w = i8(rng, (9, 20))
    m = model([helper.make_node("MatMulInteger", ["x", "w", "azp"], ["y"])],
              [("x", I8, [6, 9])], [("y", I32, [6, 20])],
              [("w", w), ("azp", np.array(-17, np.int8))])
    (got,), (ref,) = run_tsp(m, {"x": i8(rng, (6, 9))})
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_int8_add_clip_transpose_reshape_flatten(config):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Transpose", ["a"], ["at"], perm=[1, 0]),
             helper.make_node("Add", ["at", "b"], ["s"]),
             helper.make_node("Clip", ["s", "lo", "hi"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("Flatten", ["r"], ["y"], axis=2)]
    m = model(nodes, [("a", I8, [6, 4]), ("b", I8, [4, 6])], [("y", I8, [4, 6])],
              [("lo", np.array(-30, np.int8)), ("hi", np.array(90, np.int8)),
               ("shape", np.array([2, 2, 6], np.int64))])
    feeds = {"a": i8(rng, (6, 4)), "b": i8(rng, (4, 6))}
    (got,), (ref,) = run_tsp(m, feeds, config)
    assert np.array_equal(got, ref)


# -- quantised forms: within one LSB, counted ----------------------------------------------

def qlinear_model(w, a_zp, scales, y_zp, rows=8):
    sa, sb, sy = scales
    return model([helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sb", "zb", "sy", "zy"],
                                   ["y"])],
                 [("a", I8, [rows, w.shape[0]])], [("y", I8, [rows, w.shape[1]])],
                 [("w", w), ("sa", np.float32(sa)), ("za", np.int8(a_zp)), ("sb", np.float32(sb)),
                  ("zb", np.int8(0)), ("sy", np.float32(sy)), ("zy", np.int8(y_zp))])


def test_qlinearmatmul_not_power_of_two_within_one_lsb():
    rng = np.random.default_rng(4)
    w = i8(rng, (24, 18))
    m = qlinear_model(w, -14, (0.0123, 0.0071, 0.05), -9)
    (got,), (ref,) = run_tsp(m, {"a": i8(rng, (8, 24))})
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    assert np.sum(diff) <= 2, f"{np.sum(diff)} of {diff.size} elements differ"


POW2_SCALES = (2 ** -4, 2 ** -6, 2 ** -3)       # a_scale * b_scale / y_scale = 2**-7: exact


@pytest.mark.parametrize("shape", [(8, 24, 18), (6, 4, 20), (9, 4, 20), (8, 6, 18)])
def test_qlinearmatmul_power_of_two_scales_bit_exact(shape):
    """With an exact scale every element must match, ties included: the reference
    rounds ``acc * scale + y_zero_point`` half to even, so with the odd zero point
    -9 a tie goes the other way than rounding first and adding it after (REQUANT's
    ``zr`` bit). Several seeds, so that exact ties do occur."""
    M, K, N = shape
    ties = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        w = i8(rng, (K, N))
        a = i8(rng, (M, K))
        m = qlinear_model(w, -14, POW2_SCALES, -9, rows=M)
        (got,), (ref,) = run_tsp(m, {"a": a})
        bad = np.argwhere(got != ref)
        assert not bad.size, f"seed {seed}: {len(bad)} elements differ, first at {bad[0]}"
        y = ((a.astype(np.int64) + 14) @ w.astype(np.int64)) / 2 ** 7     # exact in float64
        ties += int(np.sum(np.clip(np.rint(y) - 9, -128, 127) != np.clip(np.rint(y - 9), -128, 127)))
    assert ties > 0, "no element where the two roundings differ: the case tests nothing"


@pytest.mark.parametrize("shape", [(1, 9, 33), (6, 4, 20), (9, 4, 20)])
def test_qlinearmatmul_output_zero_point_between_short_passes(shape):
    M, K, N = shape
    rng = np.random.default_rng(0)
    m = model([helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sb", "zb", "sy", "zy"],
                                ["y"])],
              [("a", I8, [M, K])], [("y", I8, [M, N])],
              [("w", i8(rng, (K, N))), ("sa", np.float32(2 ** -4)), ("za", np.int8(-14)),
               ("sb", np.float32(2 ** -6)), ("zb", np.int8(0)), ("sy", np.float32(2 ** -3)),
               ("zy", np.int8(-9))])
    (got,), (ref,) = run_tsp(m, {"a": i8(rng, (M, K))})
    assert np.array_equal(got, ref)


def qdq_gemm_model(w, b, sx, sw, sy, trans_b, relu):
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "z8"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "z8"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "sw", "z8"], ["wf"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "z32"], ["bf"]),
             helper.make_node("Gemm", ["xf", "wf", "bf"], ["g"], transB=int(trans_b))]
    last = "g"
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["r"]))
        last = "r"
    nodes += [helper.make_node("QuantizeLinear", [last, "sy", "z8"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "sy", "z8"], ["y"])]
    n = w.shape[0] if trans_b else w.shape[1]
    return model(nodes, [("x", F32, [10, 16])], [("y", F32, [10, n])],
                 [("w", w), ("b", b), ("sx", np.float32(sx)), ("sw", np.float32(sw)),
                  ("sb", np.float32(np.float32(sx) * np.float32(sw))), ("sy", np.float32(sy)),
                  ("z8", np.int8(0)), ("z32", np.int32(0))])


@pytest.mark.parametrize("trans_b,relu,scales,exact", [
    (False, True, (2 ** -5, 2 ** -7, 2 ** -3), True),
    (True, False, (2 ** -5, 2 ** -7, 2 ** -4), True),
    (True, True, (0.031, 0.0077, 0.09), False),
])
def test_qdq_gemm(trans_b, relu, scales, exact):
    rng = np.random.default_rng(5)
    w = i8(rng, (12, 16) if trans_b else (16, 12))
    b = rng.integers(-3000, 3000, 12).astype(np.int32)
    m = qdq_gemm_model(w, b, *scales, trans_b, relu)
    x = rng.normal(0, 1.5, (10, 16)).astype(np.float32)
    (got,), (ref,) = run_tsp(m, {"x": x})
    lsb = np.abs(got - ref) / np.float32(scales[2])
    assert np.rint(lsb).max() <= (0 if exact else 1)
    assert int(np.sum(lsb > 0.5)) <= (0 if exact else 2)


# -- importer errors ---------------------------------------------------------------------

def test_error_unsupported_operator_names_node_and_list():
    m = model([helper.make_node("Softmax", ["x"], ["y"], name="sm")], [("x", I8, [2, 3])],
              [("y", I8, [2, 3])])
    with pytest.raises(OnnxImportError, match=r"node 'sm' \(Softmax\): operator not supported; "
                                              r"supported: MatMulInteger, QLinearMatMul"):
        import_onnx(m)


def test_error_unsupported_attribute():
    m = qdq_gemm_model(np.zeros((16, 4), np.int8), np.zeros(4, np.int32), 1, 1, 1, False, False)
    m.graph.node[4].attribute.append(helper.make_attribute("alpha", 2.0))
    with pytest.raises(OnnxImportError, match=r"\(Gemm\): attribute alpha=2.0 is not supported"):
        import_onnx(m)


def test_error_uint8_input():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.UINT8, [2, 3])],
              [("y", TensorProto.UINT8, [2, 3])])
    with pytest.raises(OnnxImportError, match="graph input 'x': element type UINT8"):
        import_onnx(m)


def test_error_per_axis_scale():
    m = qdq_gemm_model(np.zeros((16, 4), np.int8), np.zeros(4, np.int32), 1, 1, 1, False, False)
    m.graph.initializer[3].CopyFrom(numpy_helper.from_array(np.ones(4, np.float32), "sw"))
    with pytest.raises(OnnxImportError, match=r"\(DequantizeLinear\): x_scale must be a scalar"):
        import_onnx(m)


def test_error_float_input_into_integer_op():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", F32, [2, 3])],
              [("y", F32, [2, 3])])
    with pytest.raises(OnnxImportError, match=r"node 'r' \(Relu\): input 'x' is float"):
        import_onnx(m)


def test_qlinearmatmul_weight_zero_point_folded_into_weights():
    rng = np.random.default_rng(6)
    w = rng.integers(-100, 100, (24, 5)).astype(np.int8)
    m = qlinear_model(w, 3, (2 ** -4, 2 ** -6, 2 ** -2), 4)
    m.graph.initializer[4].CopyFrom(numpy_helper.from_array(np.int8(-20), "zb"))
    (got,), (ref,) = run_tsp(m, {"a": i8(rng, (8, 24))})
    assert np.array_equal(got, ref)


def test_error_qlinearmatmul_weight_zero_point_out_of_range():
    m = qlinear_model(np.full((24, 4), 120, np.int8), 0, (1, 1, 1), 0)
    m.graph.initializer[4].CopyFrom(numpy_helper.from_array(np.int8(-20), "zb"))
    with pytest.raises(OnnxImportError, match=r"\(QLinearMatMul\): weights minus b_zero_point -20 "
                                              "leave int8"):
        import_onnx(m)


# -- the two CLI sub-commands ---------------------------------------------------------------

def test_cli_run_onnx_json(capsys, tmp_path):
    import json
    from firmware.cli import main
    out_npz = tmp_path / "out.npz"
    assert main(["run-onnx", str(MLP_PATH), "--inputs", str(MLP_INPUTS), "--config", "ulx3s",
                 "--engine", "golden", "--outputs", str(out_npz), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cycles"] == report["predicted_cycles"]
    assert report["outputs"] == {"logits": [64, 4]}
    assert report["reference_mismatches"] == {"logits": 0}
    with np.load(MLP_INPUTS) as d:
        ref = ReferenceEvaluator(onnx.load(str(MLP_PATH))).run(None, {"x": d["x"]})[0]
    with np.load(out_npz) as o:
        assert np.array_equal(o["logits"], ref)


def test_cli_compile_writes_image_text_and_summary(capsys, tmp_path):
    import json
    from firmware.asm import assemble
    from firmware.cli import main
    from firmware.image import ProgramImage
    assert main(["compile", str(MLP_PATH), "--config", "ulx3s", "-o", str(tmp_path),
                 "--inputs", str(MLP_INPUTS)]) == 0
    summary = json.loads((tmp_path / "mlp.json").read_text())
    image = ProgramImage.load(tmp_path / "mlp.bin")
    r = run_image(image)
    assert r.errors == 0 and r.cycles == summary["predicted_cycles"]
    assert summary["tensors"]["x"]["input"] and summary["tensors"]["x"]["dtype"] == "i8"
    text_image = assemble((tmp_path / "mlp.s").read_text())
    assert run_image(text_image).cycles == summary["predicted_cycles"]


def test_cli_errors_are_one_line(capsys, tmp_path):
    from firmware.cli import main
    bad = tmp_path / "bad.onnx"
    onnx.save(model([helper.make_node("Softmax", ["x"], ["y"], name="sm")], [("x", I8, [2, 3])],
                    [("y", I8, [2, 3])]), str(bad))
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 3), np.int8))
    assert main(["run-onnx", str(bad), "--inputs", str(tmp_path / "in.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(Softmax): operator not supported" in err
    assert main(["compile", str(tmp_path / "missing.onnx"), "-o", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
