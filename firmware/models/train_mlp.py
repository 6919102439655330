"""The example model: a small int8 MLP classifier, trained and exported here.

Data: 4 gaussian clusters in 16 dimensions (numpy, fixed seed). Model: 16 ->
32 -> 32 -> 4, ReLU, trained in float with plain numpy (softmax cross
entropy, full-batch gradient descent with momentum).

Quantisation: per-tensor, symmetric (zero point 0), every scale a power of
two. That is the hardware-friendly choice: the VXM's REQUANT multiplies by
``mult / 2**shift``, so a power-of-two ratio is exact (``mult = 1``), and
ONNX's float reference computes every product and sum exactly in float32 at
these magnitudes, so the TSP's integer result and the reference agree bit
for bit. Biases are int32 at the accumulator's scale ``s_x * s_w``.

Export: QDQ form (``QuantizeLinear`` of the float input, ``DequantizeLinear``
of int8 activations and weights and of the int32 biases, float ``Gemm`` +
``Relu``, ``QuantizeLinear``; the logits are dequantised at the end), opset
21, built with ``onnx.helper``. Run ``python -m firmware.models.train_mlp``
to rewrite ``mlp.onnx`` and ``mlp_inputs.npz`` next to this file.
"""

from pathlib import Path

import numpy as np


HERE = Path(__file__).parent
MODEL_PATH = HERE / "mlp.onnx"
INPUTS_PATH = HERE / "mlp_inputs.npz"

SEED = 7
DIMS = (16, 32, 32, 4)
BATCH = 64                 # the model's fixed batch: one compiled program per 64 samples


def make_data(n_per_class=200, seed=SEED):
    """Gaussian clusters: class ``c`` centred on a random point, unit noise."""
    rng = np.random.default_rng(seed)
    k, d = DIMS[-1], DIMS[0]
    centres = rng.normal(0, 0.9, size=(k, d))
    x = np.concatenate([centres[c] + rng.normal(0, 1.0, size=(n_per_class, d)) for c in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def train(x, y, epochs=400, lr=0.05, seed=SEED):
    """Float MLP weights ``[(W, b), ...]`` (W: ``[in, out]``)."""
    rng = np.random.default_rng(seed + 1)
    params = [(rng.normal(0, np.sqrt(2 / i), size=(i, o)), np.zeros(o))
              for i, o in zip(DIMS[:-1], DIMS[1:])]
    vel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in params]
    onehot = np.eye(DIMS[-1])[y]
    for _ in range(epochs):
        acts = [x.astype(np.float64)]
        for i, (w, b) in enumerate(params):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        p = np.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(y)
        for i in reversed(range(len(params))):
            w, b = params[i]
            gw, gb = acts[i].T @ grad, grad.sum(axis=0)
            if i:
                grad = (grad @ w.T) * (acts[i] > 0)
            vw, vb = vel[i]
            vel[i] = (0.9 * vw - lr * gw, 0.9 * vb - lr * gb)
            params[i] = (w + vel[i][0], b + vel[i][1])
    return params


def pow2_scale(max_abs, qmax=127):
    """The smallest power of two ``s`` with ``max_abs / s <= qmax``."""
    return float(2.0 ** np.ceil(np.log2(max(max_abs, 1e-12) / qmax)))


def quantise(params, x):
    """Power-of-two scales from the float model's ranges on ``x``: input and
    activation scales, int8 weights, int32 biases."""
    s_in = pow2_scale(np.abs(x).max())
    layers, h, s = [], x.astype(np.float64), s_in
    for i, (w, b) in enumerate(params):
        s_w = pow2_scale(np.abs(w).max())
        wq = np.clip(np.rint(w / s_w), -127, 127).astype(np.int8)
        bq = np.rint(b / (s * s_w)).astype(np.int32)
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
        s_out = pow2_scale(np.abs(h).max())
        layers.append(dict(wq=wq, s_w=s_w, bq=bq, s_in=s, s_out=s_out))
        s = s_out
    return s_in, layers


def export(s_in, layers, batch=BATCH):
    """The QDQ ONNX model (``onnx.helper``)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def scale(name, v):
        return init(name, np.array(v, np.float32))

    zp8 = init("zp_i8", np.array(0, np.int8))
    zp32 = init("zp_i32", np.array(0, np.int32))
    nodes.append(helper.make_node("QuantizeLinear", ["x", scale("s_x", s_in), zp8], ["xq"]))
    cur, cur_s = "xq", "s_x"
    for i, L in enumerate(layers):
        last = i == len(layers) - 1
        nodes += [
            helper.make_node("DequantizeLinear", [cur, cur_s, zp8], [f"a{i}"]),
            helper.make_node("DequantizeLinear", [init(f"w{i}", L["wq"]), scale(f"s_w{i}", L["s_w"]),
                                                  zp8], [f"wf{i}"]),
            helper.make_node("DequantizeLinear", [init(f"b{i}", L["bq"]),
                                                  scale(f"s_b{i}", L["s_in"] * L["s_w"]), zp32],
                             [f"bf{i}"]),
            helper.make_node("Gemm", [f"a{i}", f"wf{i}", f"bf{i}"], [f"z{i}"]),
        ]
        y = f"z{i}"
        if not last:
            nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
            y = f"r{i}"
        nodes.append(helper.make_node("QuantizeLinear", [y, scale(f"s_h{i}", L["s_out"]), zp8],
                                      [f"h{i}"]))
        cur, cur_s = f"h{i}", f"s_h{i}"
    nodes.append(helper.make_node("DequantizeLinear", [cur, cur_s, zp8], ["logits"]))
    graph = helper.make_graph(
        nodes, "mlp_int8",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, DIMS[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, DIMS[-1]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)],
                              producer_name="open-tsp train_mlp.py")
    model.ir_version = 10
    return model


def build(batch=BATCH):
    """Train, quantise, export: ``(model, x_test [batch, 16] float32, y_test)``."""
    import onnx
    x, y = make_data()
    n_train = len(y) - batch
    params = train(x[:n_train], y[:n_train])
    s_in, layers = quantise(params, x[:n_train])
    model = export(s_in, layers, batch)
    onnx.checker.check_model(model)
    return model, x[n_train:], y[n_train:]


def main():
    import onnx
    model, x_test, y_test = build()
    onnx.save(model, MODEL_PATH)
    np.savez(INPUTS_PATH, x=x_test, labels=y_test)
    print(f"wrote {MODEL_PATH} and {INPUTS_PATH} ({len(y_test)} samples)")


if __name__ == "__main__":
    main()
