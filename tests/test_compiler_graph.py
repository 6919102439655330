"""Compiled tensor programs on the golden model, against plain numpy.

Every case builds a small :class:`Graph`, compiles it (which runs the hazard
checker), runs the image on the golden model and checks: no error flag, the
run took exactly the predicted cycles, and every output equals numpy. The
expected values are written here in numpy (wrapping int32 / int8 sums, the
REQUANT formula of docs/ARCHITECTURE.md with exact rational rounding, ONNX's
Clip/Relu), independently of the graph's own ``evaluate``.
"""

from fractions import Fraction

import numpy as np
import pytest

from firmware.compiler import CompileError
from firmware.compiler.graph import Graph, GraphError, quant_multiplier
from firmware.compiler.lower import compile_graph
from sim.golden import run_image


def wrap(x, bits):
    x = np.asarray(x, np.int64) & ((1 << bits) - 1)
    return np.where(x >= 1 << (bits - 1), x - (1 << bits), x)


def requant_ref(x, scale, zp):
    """clamp(round_half_even(x * scale) + zp) with exact rational arithmetic."""
    s = Fraction(scale)
    out = []
    for v in np.asarray(x, np.int64).ravel():
        q = Fraction(int(v)) * s
        f = q.numerator // q.denominator
        r = q - f
        f += 1 if r > Fraction(1, 2) or (r == Fraction(1, 2) and f % 2) else 0
        out.append(min(127, max(-128, f + zp)))
    return np.array(out, np.int64).reshape(np.shape(x))


def run(graph, inputs, config):
    c = compile_graph(graph, inputs, config)
    r = run_image(c.image)
    assert r.errors == 0, [str(e) for e in r.events[:3]]
    assert r.cycles == c.predicted_cycles
    assert c.reads_checked > 0 or not c.image.queues       # (a program of host views only)
    return c.results(r.memory)


def rand(rng, shape, dtype="i8"):
    bits = 8 if dtype == "i8" else 32
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=shape, dtype=np.int64)


# -- elementwise chains -----------------------------------------------------------

ELTWISE = [
    # (name, builder(g, x, y) -> tensor, numpy(x, y))
    ("add", lambda g, x, y: g.add(x, y), lambda x, y: wrap(x + y, 8)),
    ("add_relu", lambda g, x, y: g.relu(g.add(x, y)), lambda x, y: np.maximum(wrap(x + y, 8), 0)),
    ("add_imm_clip", lambda g, x, y: g.clip(g.add(x, 100), -20, 50),
     lambda x, y: np.clip(wrap(x + 100, 8), -20, 50)),
    ("relu_add", lambda g, x, y: g.add(g.relu(x), y), lambda x, y: wrap(np.maximum(x, 0) + y, 8)),
    ("clip_lo_only", lambda g, x, y: g.clip(x, lo=-3), lambda x, y: np.maximum(x, -3)),
]


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
@pytest.mark.parametrize("name,build,ref", ELTWISE, ids=[e[0] for e in ELTWISE])
@pytest.mark.parametrize("shape", [(1, 3), (5, 7), (3, 2, 20)])
def test_elementwise_int8(config, name, build, ref, shape):
    rng = np.random.default_rng(len(name) + shape[-1])
    g = Graph(name)
    x, y = g.input("x", shape), g.input("y", shape)
    g.output(build(g, x, y), "z")
    xv, yv = rand(rng, shape), rand(rng, shape)
    out = run(g, {"x": xv, "y": yv}, config)
    assert out["z"].shape == shape
    assert np.array_equal(out["z"], ref(xv, yv))


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_row_broadcast_and_runtime_scalar_bound(config):
    """A [F] operand repeats for every row; a scalar input bound is one word
    with the value in every lane."""
    rng = np.random.default_rng(3)
    g = Graph("bcast")
    x, b, hi = g.input("x", (6, 9)), g.input("b", (9,)), g.input("hi", (1,))
    g.output(g.clip(g.add(x, b), lo=-100, hi=hi), "z")
    xv, bv = rand(rng, (6, 9)), rand(rng, (9,))
    out = run(g, {"x": xv, "b": bv, "hi": np.array([17])}, config)
    assert np.array_equal(out["z"], np.minimum(np.maximum(wrap(xv + bv, 8), -100), 17))


def test_lut_activation():
    """Sigmoid through the VXM table: entry q = quantise(sigmoid(q * s_in))."""
    rng = np.random.default_rng(4)
    g = Graph("sig")
    x = g.input("x", (5, 20))
    g.output(g.add(g.sigmoid(x, 0.05, 0, 1 / 256, -128), -3), "z")
    xv = rand(rng, (5, 20))
    table = np.clip(np.round(1 / (1 + np.exp(-0.05 * np.arange(-128, 128))) * 256) - 128, -128, 127)
    out = run(g, {"x": xv}, "ulx3s")
    assert np.array_equal(out["z"], wrap(table[xv + 128] - 3, 8))


# -- GEMMs and fused chains ----------------------------------------------------------

@pytest.mark.parametrize("config,M,K,N", [
    ("tiny", 1, 1, 1), ("tiny", 6, 5, 7), ("tiny", 20, 9, 3),
    ("ulx3s", 6, 5, 7), ("ulx3s", 33, 20, 40),
])
def test_matmul_int32(config, M, K, N):
    rng = np.random.default_rng(M * K * N)
    g = Graph("mm")
    x = g.input("x", (M, K))
    w = rand(rng, (K, N))
    g.output(g.matmul(x, w), "y")
    xv = rand(rng, (M, K))
    out = run(g, {"x": xv}, config)
    assert np.array_equal(out["y"], wrap(xv @ w, 32))


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
@pytest.mark.parametrize("scale,zp", [(2.0 ** -9, 3), (0.00123, -7), (1.0, 0)])
def test_matmul_requant_relu(config, scale, zp):
    """MXM rows go straight into the VXM chain (no int32 in MEM)."""
    rng = np.random.default_rng(11)
    g = Graph("mmq")
    x = g.input("x", (9, 6))
    w = rand(rng, (6, 5))
    g.output(g.relu(g.requantize(g.matmul(x, w), scale, zp)), "y")
    xv = rand(rng, (9, 6))
    out = run(g, {"x": xv}, config)
    mult, shift = quant_multiplier(scale)
    assert np.array_equal(out["y"], np.maximum(requant_ref(xv @ w, Fraction(mult, 2 ** shift), zp), 0))


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_requant_zero_point_before_rounding(config):
    """``zp_before_round`` (REQUANT's zr bit): ``clamp(RNE(x * scale + zp))``; with an
    odd zero point every exact tie lands one below or above where rounding first
    would put it; both forms of one product run in one program."""
    rng = np.random.default_rng(21)
    g = Graph("zr")
    x = g.input("x", (12, 3))
    w = rand(rng, (3, 7))
    g.output(g.requantize(g.matmul(x, w), 2 ** -6, -9, zp_before_round=True), "before")
    g.output(g.requantize(g.matmul(x, w), 2 ** -6, -9), "after")
    xv = rand(rng, (12, 3))
    out = run(g, {"x": xv}, config)
    exact = [Fraction(int(v), 2 ** 6) for v in (xv @ w).ravel()]
    before = np.array([min(127, max(-128, round(q - 9))) for q in exact]).reshape(12, 7)
    assert np.array_equal(out["before"], before)
    assert np.array_equal(out["after"], requant_ref(xv @ w, 2 ** -6, -9))
    assert np.any(out["before"] != out["after"])          # the ties are there


def test_two_layer_mlp_with_biases():
    """Bias held in a spare ALU per MXM pass, ragged tiles, clip after requant."""
    rng = np.random.default_rng(12)
    M = 40
    g = Graph("mlp")
    x = g.input("x", (M, 20))
    w1, b1 = rand(rng, (20, 33)), rng.integers(-5000, 5000, 33).astype(np.int32)
    w2, b2 = rand(rng, (33, 10)), rng.integers(-5000, 5000, 10).astype(np.int32)
    h = g.relu(g.requantize(g.add(g.matmul(x, w1), b1), 2 ** -10, -3))
    g.output(h, "h")
    g.output(g.clip(g.requantize(g.add(g.matmul(h, w2), b2), 0.00123, 2), -50, 60), "y")
    xv = rand(rng, (M, 20))
    out = run(g, {"x": xv}, "ulx3s")
    h_ref = np.maximum(requant_ref(wrap(xv @ w1 + b1, 32), 2 ** -10, -3), 0)
    m, s = quant_multiplier(0.00123)
    y_ref = np.clip(requant_ref(wrap(h_ref @ w2 + b2, 32), Fraction(m, 2 ** s), 2), -50, 60)
    assert np.array_equal(out["h"], h_ref)
    assert np.array_equal(out["y"], y_ref)


def test_more_rows_than_accumulators():
    rng = np.random.default_rng(13)
    g = Graph("bigM")
    x = g.input("x", (260, 16))
    w, b = rand(rng, (16, 16)), rng.integers(-999, 999, 16).astype(np.int32)
    g.output(g.requantize(g.add(g.matmul(x, w), b), 2 ** -8), "y")
    xv = rand(rng, (260, 16))
    out = run(g, {"x": xv}, "ulx3s")
    assert np.array_equal(out["y"], requant_ref(xv @ w + b, 2 ** -8, 0))


def test_int32_add_from_mem_planes():
    """An int32 tensor input added to a GEMM result: both from split planes."""
    rng = np.random.default_rng(14)
    g = Graph("i32")
    x, y = g.input("x", (7, 20)), g.input("y", (7, 20), "i32")
    w = rand(rng, (20, 20))
    g.output(g.relu(g.add(g.matmul(x, w), y)), "z")
    xv, yv = rand(rng, (7, 20)), rand(rng, (7, 20), "i32")
    out = run(g, {"x": xv, "y": yv}, "ulx3s")
    assert np.array_equal(out["z"], np.maximum(wrap(xv @ w + yv, 32), 0))


def test_views_and_host_transpose():
    """Reshape keeping the last axis is free; an input's transpose is laid out by the host."""
    rng = np.random.default_rng(15)
    g = Graph("views")
    x = g.input("x", (2, 3, 8))
    t = g.input("t", (8, 4))
    a = g.relu(g.reshape(x, (6, 8)))
    w = rng.integers(-9, 9, (8, 4))
    g.output(g.matmul(a, w), "mm")
    g.output(g.flatten(g.add(g.transpose(t), 1), 1), "tt")
    xv, tv = rand(rng, (2, 3, 8)), rand(rng, (8, 4))
    out = run(g, {"x": xv, "t": tv}, "ulx3s")
    assert np.array_equal(out["mm"], np.maximum(xv.reshape(6, 8), 0) @ w)
    assert np.array_equal(out["tt"], wrap(tv.T + 1, 8))


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
@pytest.mark.parametrize("M,F", [(3, 5), (4, 4), (20, 7), (6, 19)])
def test_transpose_of_computed_tensor(config, M, F):
    """I @ X^T on the MXM, then used as the activations of another GEMM."""
    rng = np.random.default_rng(M * F)
    g = Graph("tr")
    x = g.input("x", (M, F))
    y = g.transpose(g.relu(x))
    w = rand(rng, (M, 3))
    g.output(y, "y")
    g.output(g.matmul(g.add(y, 1), w), "z")
    xv = rand(rng, (M, F))
    out = run(g, {"x": xv}, config)
    y_ref = np.maximum(xv, 0).T
    assert np.array_equal(out["y"], y_ref)
    assert np.array_equal(out["z"], wrap(y_ref + 1, 8) @ w)


def test_error_transpose_3d_of_computed_tensor():
    g = Graph("bad")
    x = g.input("x", (2, 3, 4))
    g.output(g.transpose(g.relu(x), (2, 0, 1)), "y")
    with pytest.raises(CompileError, match="only the 2-D int8 transpose runs on the chip"):
        compile_graph(g, {"x": np.zeros((2, 3, 4))}, "ulx3s")


# -- random programs ---------------------------------------------------------------------

def _random_program(rng, config):
    """A random chain: optional matmul (+ bias on ulx3s, relu, requant) then
    int8 elementwise ops. Returns (graph, inputs, numpy result)."""
    top = 12 if config == "tiny" else 24        # tiny's queues hold 128 words: fewer MXM passes
    M, K = int(rng.integers(1, 12)), int(rng.integers(1, top))
    g = Graph("random")
    inputs = {"x": rand(rng, (M, K))}
    cur, val = g.input("x", (M, K)), inputs["x"]
    if rng.random() < 0.7:
        N = int(rng.integers(1, top))
        w = rand(rng, (K, N))
        cur, acc = g.matmul(cur, w), wrap(val @ w, 32)
        if config != "tiny" and rng.random() < 0.5:
            b = rng.integers(-3000, 3000, N).astype(np.int32)
            cur, acc = g.add(cur, b), wrap(acc + b, 32)
        if rng.random() < 0.5:
            cur, acc = g.relu(cur), np.maximum(acc, 0)
        shift, zp = int(rng.integers(4, 14)), int(rng.integers(-20, 20))
        cur, val = g.requantize(cur, 2.0 ** -shift, zp), requant_ref(acc, 2.0 ** -shift, zp)
        K = N
    for _ in range(int(rng.integers(1, 4))):
        k = rng.integers(5)
        if k == 4 and (config != "tiny" or M * K <= 64):     # tiny: its 128-word queues
            cur, val, M, K = g.transpose(cur), val.T, K, M
            continue
        if k == 0:
            c = int(rng.integers(-128, 128))
            cur, val = g.add(cur, c), wrap(val + c, 8)
        elif k == 1:
            cur, val = g.relu(cur), np.maximum(val, 0)
        elif k == 2:
            lo, hi = int(rng.integers(-128, 0)), int(rng.integers(0, 128))
            cur, val = g.clip(cur, lo, hi), np.clip(val, lo, hi)
        else:
            name = f"y{len(inputs)}"
            inputs[name] = rand(rng, (M, K))
            cur, val = g.add(cur, g.input(name, (M, K))), wrap(val + inputs[name], 8)
    g.output(cur, "out")
    return g, inputs, val


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
@pytest.mark.parametrize("seed", range(8))
def test_random_programs(config, seed):
    rng = np.random.default_rng(1000 + seed)
    g, inputs, expected = _random_program(rng, config)
    out = run(g, inputs, config)
    assert np.array_equal(out["out"], expected), g.ops
    assert np.array_equal(g.evaluate(inputs)["out"], expected)      # the graph's own semantics


@pytest.mark.slow
@pytest.mark.parametrize("config", ["tiny", "ulx3s", "groq"])
def test_random_programs_sweep(config):
    for seed in range(60):
        rng = np.random.default_rng(5000 + seed)
        g, inputs, expected = _random_program(rng, config)
        assert np.array_equal(run(g, inputs, config)["out"], expected), (seed, g.ops)


# -- requantisation against float rounding -------------------------------------------------

def test_quant_multiplier_power_of_two_is_exact():
    for k in range(0, 40):
        mult, shift = quant_multiplier(2.0 ** -k)
        assert Fraction(mult, 2 ** shift) == Fraction(2) ** -k


def test_requant_matches_float_rounding_within_one_lsb():
    """Non-power-of-two scales: REQUANT's mult/2**shift is within 2**-24 of
    the scale, so it can differ from float64 round-half-even of x*scale only
    at (near-)ties, by one LSB. Count them on a sweep of int32 inputs."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2 ** 20, 2 ** 20, 20000)
    differ = 0
    for scale in (0.00123, 0.0371, 1 / 3, 0.0009765, 7.5e-5):
        mult, shift = quant_multiplier(scale)
        assert abs(mult / 2 ** shift - scale) <= scale * 2.0 ** -23
        hw = requant_ref(x, Fraction(mult, 2 ** shift), 0)
        fl = np.clip(np.rint(x * scale), -128, 127)
        assert np.abs(hw - fl).max() <= 1
        differ += int(np.sum(hw != fl))
    assert differ <= 5, f"{differ} of {5 * len(x)} elements differ by one LSB"


# -- errors ------------------------------------------------------------------------------

def test_error_matmul_of_computed_weights():
    g = Graph("bad")
    x = g.input("x", (4, 4))
    g.output(g.matmul(x, g.relu(x)), "y")
    with pytest.raises(CompileError, match="right operand .* computed on the chip"):
        compile_graph(g, {"x": np.zeros((4, 4))}, "ulx3s")


def test_error_reshape_across_lanes():
    g = Graph("bad")
    x = g.input("x", (4, 4))
    g.output(g.reshape(g.relu(x), (2, 8)), "y")
    with pytest.raises(CompileError, match="changes the last axis"):
        compile_graph(g, {"x": np.zeros((4, 4))}, "ulx3s")


@pytest.mark.parametrize("config", ["tiny", "ulx3s"])
def test_two_lookup_tables(config):
    """sigmoid then tanh: the second table is written by LUTW between the phases."""
    rng = np.random.default_rng(16)
    t1 = rng.integers(-128, 128, 256)
    t2 = t1.copy()
    t2[40:200] = rng.integers(-128, 128, 160)
    g = Graph("luts")
    x = g.input("x", (3, 7))
    a = g.lut(x, t1)
    g.output(a, "a")
    g.output(g.lut(g.add(a, 1), t2), "b")
    xv = rand(rng, (3, 7))
    out = run(g, {"x": xv}, config)
    a_ref = t1[xv & 0xFF]
    assert np.array_equal(out["a"], a_ref)
    assert np.array_equal(out["b"], t2[wrap(a_ref + 1, 8) & 0xFF])


def test_error_int32_vxm_operand_on_tiny():
    """tiny has two MEM slices per side: an SG4 group cannot reach the VXM from MEM."""
    g = Graph("bad")
    x = g.input("x", (4, 4), "i32")
    g.output(g.relu(x), "y")
    with pytest.raises(CompileError, match="four MEM slices on one side"):
        compile_graph(g, {"x": np.zeros((4, 4))}, "tiny")


def test_error_graph_api():
    g = Graph("bad")
    x = g.input("x", (4, 5))
    with pytest.raises(GraphError, match="do not fit"):
        g.matmul(x, np.zeros((4, 4)))
    with pytest.raises(GraphError, match="takes int32"):
        g.requantize(x, 0.5)
    with pytest.raises(GraphError, match="outside i8"):
        g.add(x, np.full((5,), 300))
    with pytest.raises(CompileError, match="no value given"):
        g.output(g.relu(x), "y")
        compile_graph(g, {}, "tiny")
