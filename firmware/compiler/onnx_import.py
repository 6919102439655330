"""ONNX import: integer-quantised ONNX graphs -> :class:`~.graph.Graph`.

Supported, by form:

* **Integer ops** on int8/int32 tensors: ``MatMulInteger``, ``Add``, ``Relu``,
  ``Clip``, ``Transpose``, ``Reshape``, ``Flatten``, ``Identity``.
* **QLinearMatMul** (int8): ``(a - a_zp) @ (b - b_zp)`` on the MXM, requantised
  by the VXM with ``mult / 2**shift`` = the float32 scale ``a_scale * b_scale /
  y_scale`` the ONNX reference uses, and like it adding ``y_zero_point`` before
  rounding (``REQUANT``'s ``zr`` bit; ``QuantizeLinear`` rounds first).
* **QDQ form**: ``DequantizeLinear`` of int8 activations and constant int8
  weights (and an int32 bias) feeding a float ``Gemm``/``MatMul`` (+ ``Add`` of
  the bias), optionally ``Relu``/``Clip``, then ``QuantizeLinear``: lowered to
  an int8 GEMM, an int32 bias add and one ``REQUANT`` (float ``Relu``/``Clip``
  before the quantiser become integer bounds after it: quantisation is
  monotonic, so ``Q(clip(y, lo, hi)) = clip(Q(y), Q(lo), Q(hi))``).
* **Edges**: ``QuantizeLinear`` of a float graph input and ``DequantizeLinear``
  to a float graph output run on the host (:class:`Imported`).

Zero points, with constant weights: ``(a - a_zp) @ (b - b_zp) = a @ b' -
a_zp * colsum(b')`` with ``b' = b - b_zp`` computed at compile time (it must
still fit int8), the second term an int32 bias. Everything else is an
:class:`OnnxImportError` naming the node, its operator and what is supported.
"""

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from .graph import Graph, GraphError, Tensor


__all__ = ["import_onnx", "Imported", "OnnxImportError", "SUPPORTED_OPS"]


class OnnxImportError(ValueError):
    """An ONNX model this compiler cannot take; the message names the node."""


SUPPORTED_OPS = ("MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear", "Gemm",
                 "MatMul", "Add", "Relu", "Clip", "Transpose", "Reshape", "Flatten", "Identity")

_INT_TYPES = {onnx.TensorProto.INT8: "i8", onnx.TensorProto.INT32: "i32"}


@dataclass
class _Affine:
    """A float value ``(t - zp) * scale``, clipped to ``[lo, hi]`` (pending
    Relu/Clip, applied after the next quantiser)."""
    t: Tensor
    scale: float
    zp: int = 0
    lo: float = -np.inf
    hi: float = np.inf


@dataclass
class _HostFloat:
    """A float graph input: only a QuantizeLinear (on the host) may read it."""
    name: str
    shape: tuple


@dataclass
class Imported:
    """The imported program and its host-side edges.

    ``quantize``: graph input name -> ``(scale, zero point)`` applied on the
    host before the run; ``dequantize``: output name -> ``(scale, zero
    point)`` after; ``outputs``: the ONNX output names in order.
    """
    graph: Graph
    inputs: list
    outputs: list
    quantize: dict = field(default_factory=dict)
    dequantize: dict = field(default_factory=dict)

    def host_inputs(self, feeds):
        """ONNX feeds -> the compiled program's int inputs (host QuantizeLinear)."""
        out = {}
        for name in self.inputs:
            if name not in feeds:
                raise OnnxImportError(f"no value for input {name!r}")
            x = np.asarray(feeds[name])
            if name in self.quantize:
                s, zp = self.quantize[name]
                q = np.rint(x.astype(np.float32) / np.float32(s)).astype(np.int32) + zp
                x = np.clip(q, -128, 127).astype(np.int8)
            out[name] = x
        return out

    def host_outputs(self, results):
        """The program's int results -> ONNX outputs (host DequantizeLinear)."""
        out = {}
        for name in self.outputs:
            v = results[name]
            if name in self.dequantize:
                s, zp = self.dequantize[name]
                v = (v.astype(np.float32) - np.float32(zp)) * np.float32(s)
            out[name] = v
        return out


class _Importer:
    def __init__(self, model):
        self.model = model
        self.g = Graph(model.graph.name or "onnx")
        self.env = {}
        self.consts = {}                 # name -> numpy value of initializers / Constant nodes
        self.imp = Imported(self.g, [], [])

    def fail(self, node, msg):
        name = node.name or (node.output[0] if node.output else "")
        raise OnnxImportError(f"node {name!r} ({node.op_type}): {msg}")

    # -- values ------------------------------------------------------------------

    def const(self, node, name, what):
        if name not in self.consts:
            self.fail(node, f"{what} ({name!r}) must be a constant initializer")
        return self.consts[name]

    def scalar(self, node, name, what):
        v = np.asarray(self.const(node, name, what))
        if v.size != 1:
            self.fail(node, f"{what} must be a scalar (per-tensor quantisation); "
                      f"per-axis parameters are not supported")
        if v.dtype.kind not in "iuf":
            self.fail(node, f"{what} is {v.dtype}, not a number")
        if not np.isfinite(v).all():
            self.fail(node, f"{what} is {v.reshape(()).item()}, not a finite number")
        return v.reshape(())

    def scale(self, node, index, what):
        """A quantisation scale: a positive finite float32 scalar."""
        if len(node.input) <= index or not node.input[index]:
            self.fail(node, f"{what} is missing")
        s = np.float32(self.scalar(node, node.input[index], what))
        if not (np.isfinite(s) and s > 0):
            self.fail(node, f"{what} is {s}; a scale must be a positive finite number")
        return s

    def combined(self, node, scale):
        """A product or ratio of scales, which must stay a positive finite number."""
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            self.fail(node, f"the scales combine to {scale}, which float arithmetic cannot "
                      "carry (scales too large or too small)")
        return scale

    def tensor(self, node, name):
        """An integer tensor input of ``node`` (constants become graph constants)."""
        v = self.env.get(name)
        if isinstance(v, Tensor):
            return v
        if v is None and name in self.consts:
            c = self.consts[name]
            if c.dtype not in (np.int8, np.int32):
                self.fail(node, f"input {name!r} is {c.dtype}; the TSP computes on int8 and int32")
            t = self.g.const(c, "i8" if c.dtype == np.int8 else "i32", name)
            self.env[name] = t
            return t
        if isinstance(v, _HostFloat):
            self.fail(node, f"input {name!r} is float; only QuantizeLinear may read a float input")
        if isinstance(v, _Affine):
            self.fail(node, f"input {name!r} is a dequantised float; this op takes integers "
                      "(quantise it first)")
        self.fail(node, f"input {name!r} is not defined")

    def affine(self, node, name):
        v = self.env.get(name)
        if not isinstance(v, _Affine):
            self.fail(node, f"input {name!r} must come from DequantizeLinear (QDQ form)")
        return v

    # -- the walk -----------------------------------------------------------------

    def run(self):
        graph = self.model.graph
        for init in graph.initializer:
            try:
                self.consts[init.name] = numpy_helper.to_array(init)
            except Exception as e:      # data that does not match its type or shape
                raise OnnxImportError(f"initializer {init.name!r}: unreadable "
                                      f"({type(e).__name__}: {_one_line(e)})") from None
        for vi in graph.input:
            if vi.name in self.consts:
                continue
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
                raise OnnxImportError(f"graph input {vi.name!r}: not a tensor of known shape")
            for i, d in enumerate(tt.shape.dim):
                if not (d.HasField("dim_value") and d.dim_value > 0):
                    size = repr(d.dim_param) if d.HasField("dim_param") else d.dim_value
                    raise OnnxImportError(f"graph input {vi.name!r}: dimension {i} is {size}; the "
                                          "TSP is compiled for fixed, positive sizes")
            shape = tuple(d.dim_value for d in tt.shape.dim)
            if tt.elem_type in _INT_TYPES:
                try:
                    self.env[vi.name] = self.g.input(vi.name, shape, _INT_TYPES[tt.elem_type])
                except GraphError as e:
                    raise OnnxImportError(f"graph input {vi.name!r}: {e}") from None
            elif tt.elem_type == onnx.TensorProto.FLOAT:
                self.env[vi.name] = _HostFloat(vi.name, shape)
            else:
                raise OnnxImportError(
                    f"graph input {vi.name!r}: element type "
                    f"{onnx.TensorProto.DataType.Name(tt.elem_type)} is not supported "
                    "(int8, int32, or float quantised by QuantizeLinear)")
            self.imp.inputs.append(vi.name)
        for node in graph.node:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None or node.domain not in ("", "ai.onnx"):
                self.fail(node, f"operator not supported; supported: {', '.join(SUPPORTED_OPS)}")
            try:
                # scales that overflow or vanish are caught by the checks, not as warnings
                with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
                    handler(node, _attrs(node))
            except OnnxImportError:
                raise
            except GraphError as e:
                self.fail(node, str(e))
            except (IndexError, KeyError, TypeError, ValueError, OverflowError,
                    ZeroDivisionError) as e:
                # A shape or value the checks above did not foresee: still name the node.
                self.fail(node, f"malformed node ({type(e).__name__}: {e})")
        for vo in graph.output:
            self.output(vo.name)
        return self.imp

    def output(self, name):
        v = self.env.get(name)
        if isinstance(v, Tensor):
            self.g.output(v, name)
        elif isinstance(v, _Affine) and v.t.dtype == "i8" and v.lo == -np.inf and v.hi == np.inf:
            self.g.output(v.t, name)
            self.imp.dequantize[name] = (float(v.scale), int(v.zp))
        else:
            raise OnnxImportError(f"graph output {name!r}: must be an integer tensor or the "
                                  "DequantizeLinear of an int8 tensor")
        self.imp.outputs.append(name)

    def set(self, node, value):
        self.env[node.output[0]] = value

    # -- operators ----------------------------------------------------------------

    def op_Constant(self, node, attrs):
        if "value" not in attrs or not isinstance(attrs["value"], onnx.TensorProto):
            self.fail(node, "only the 'value' attribute (a tensor) is supported")
        self.consts[node.output[0]] = numpy_helper.to_array(attrs["value"])

    def op_Identity(self, node, attrs):
        if node.input[0] in self.consts and node.input[0] not in self.env:
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self.set(node, self.env[node.input[0]])

    def _check_attrs(self, node, attrs, allowed):
        for k, v in attrs.items():
            if k in allowed and (allowed[k] is None or v == allowed[k]):
                continue
            self.fail(node, f"attribute {k}={v!r} is not supported"
                      + (f" (only {allowed[k]!r})" if k in allowed else ""))

    def _zp(self, node, idx, what):
        if len(node.input) <= idx or not node.input[idx]:
            return 0
        v = self.scalar(node, node.input[idx], what)
        if v.dtype != np.int8 and not (v.dtype == np.int32 and "bias" in what):
            self.fail(node, f"{what} is {v.dtype}; only int8 quantisation is supported")
        return int(v)

    def op_QuantizeLinear(self, node, attrs):
        self._check_attrs(node, attrs, {"axis": None, "saturate": 1})
        s = self.scale(node, 1, "y_scale")
        zp = self._zp(node, 2, "y_zero_point")
        if len(node.input) < 3 or not node.input[2]:
            self.fail(node, "a zero point of type int8 is needed (the default is uint8)")
        x = self.env.get(node.input[0])
        if isinstance(x, _HostFloat):
            t = self.g.input(x.name, x.shape, "i8")
            self.imp.quantize[x.name] = (float(s), zp)
            self.set(node, t)
            return
        x = self.affine(node, node.input[0])
        if x.t.dtype != "i32" or x.zp != 0:
            self.fail(node, "requantising an int8 tensor is not supported; QuantizeLinear must "
                      "follow a Gemm/MatMul in QDQ form")
        t = self.g.requantize(x.t, self.combined(node, np.float64(x.scale) / np.float64(s)), zp)
        lo, hi = (None if np.isinf(b) else int(np.clip(np.rint(np.float32(b) / s) + zp, -128, 127))
                  for b in (x.lo, x.hi))
        if lo is not None or hi is not None:
            t = self.g.clip(t, lo, hi)
        self.set(node, t)

    def op_DequantizeLinear(self, node, attrs):
        self._check_attrs(node, attrs, {"axis": None})
        t = self.tensor(node, node.input[0])
        s = self.scale(node, 1, "x_scale")
        zp = self._zp(node, 2, "x_zero_point" if t.dtype == "i8" else "bias zero point")
        self.set(node, _Affine(t, float(s), zp))

    def _accumulate(self, node, x, w, transpose_w=False):
        """int8 GEMM of two dequantised values: ``(x - zx) @ (w - zw)``, ``w``
        a constant; the result's float scale is ``sx * sw``."""
        if not w.t.is_const:
            self.fail(node, "the weights must be constant (an initializer behind DequantizeLinear)")
        if x.t.dtype != "i8" or w.t.dtype != "i8":
            self.fail(node, "both operands must be int8")
        if w.zp != 0:
            self.fail(node, "weights with a nonzero zero point are not supported")
        wv = w.t.value.T if transpose_w else w.t.value
        acc = self._matmul(node, x.t, wv, x.zp)
        return _Affine(acc, self.combined(node, np.float32(x.scale) * np.float32(w.scale)))

    def _matmul(self, node, a, b_value, a_zp):
        """``(a - a_zp) @ b`` with ``b`` constant: the zero point folds into a bias."""
        if len(b_value.shape) != 2:
            self.fail(node, f"weights must be 2-D, not {b_value.shape}")
        acc = self.g.matmul(a, self.g.const(b_value, "i8", f"{node.output[0]}_w"))
        if a_zp:
            fold = -a_zp * b_value.astype(np.int64).sum(axis=0)
            acc = self.g.add(acc, self.g.const(fold.astype(np.int32), "i32", f"{node.output[0]}_zp"))
        return acc

    def _shift_weights(self, node, b, b_zp):
        """``b - b_zp`` for constant weights, when it still fits int8 (the MXM's
        operand type); a runtime ``b`` needs ``b_zp = 0``."""
        if not b_zp:
            return b
        if not b.is_const:
            self.fail(node, "a nonzero b_zero_point needs constant weights")
        shifted = b.value.astype(np.int64) - b_zp
        if shifted.min() < -128 or shifted.max() > 127:
            self.fail(node, f"weights minus b_zero_point {b_zp} leave int8; not supported")
        return self.g.const(shifted, "i8", f"{node.output[0]}_wz")

    def _bias(self, node, acc, name):
        """Add a constant bias (int32 behind DequantizeLinear, or float) to an accumulator."""
        b = self.env.get(name)
        if isinstance(b, _Affine) and b.t.is_const:
            bf = (b.t.value.astype(np.float64) - b.zp) * b.scale
        elif name in self.consts:
            bf = self.consts[name].astype(np.float64)
        else:
            self.fail(node, f"bias {name!r} must be constant")
        if not np.isfinite(bf).all():
            self.fail(node, f"bias {name!r} holds values that are not finite")
        q = np.rint(bf / acc.scale)
        if q.size and np.abs(q).max() >= 2**31:
            self.fail(node, "bias does not fit int32 at the accumulator's scale")
        t = self.g.add(acc.t, self.g.const(q.astype(np.int32).reshape(-1), "i32", f"{name}_q"))
        return _Affine(t, acc.scale, 0, acc.lo, acc.hi)

    def op_MatMul(self, node, attrs):
        self.set(node, self._accumulate(node, self.affine(node, node.input[0]),
                                        self.affine(node, node.input[1])))

    def op_Gemm(self, node, attrs):
        self._check_attrs(node, attrs, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": None})
        acc = self._accumulate(node, self.affine(node, node.input[0]),
                               self.affine(node, node.input[1]), bool(attrs.get("transB", 0)))
        if len(node.input) > 2 and node.input[2]:
            acc = self._bias(node, acc, node.input[2])
        self.set(node, acc)

    def op_MatMulInteger(self, node, attrs):
        a, b = self.tensor(node, node.input[0]), self.tensor(node, node.input[1])
        if a.dtype != "i8" or b.dtype != "i8":
            self.fail(node, "only int8 operands are supported")
        a_zp, b_zp = self._zp(node, 2, "a_zero_point"), self._zp(node, 3, "b_zero_point")
        b = self._shift_weights(node, b, b_zp)
        if a_zp and not b.is_const:
            self.fail(node, "a nonzero a_zero_point needs constant weights (folded into a bias)")
        self.set(node, self._matmul(node, a, b.value, a_zp) if b.is_const
                 else self.g.matmul(a, b))

    def op_QLinearMatMul(self, node, attrs):
        a, b = self.tensor(node, node.input[0]), self.tensor(node, node.input[3])
        if a.dtype != "i8" or b.dtype != "i8":
            self.fail(node, "only int8 operands are supported")
        sa, sb, sy = (self.scale(node, i, n)
                      for i, n in ((1, "a_scale"), (4, "b_scale"), (6, "y_scale")))
        a_zp, b_zp, y_zp = (self._zp(node, i, n) for i, n in
                            ((2, "a_zero_point"), (5, "b_zero_point"), (7, "y_zero_point")))
        b = self._shift_weights(node, b, b_zp)
        if a_zp and not b.is_const:
            self.fail(node, "a nonzero a_zero_point needs constant weights (folded into a bias)")
        acc = self._matmul(node, a, b.value, a_zp) if b.is_const else self.g.matmul(a, b)
        # the reference multiplies by the float32 product a_scale * b_scale / y_scale and
        # rounds after adding y_zero_point (QuantizeLinear rounds first, then adds it)
        self.set(node, self.g.requantize(acc, self.combined(node, sa * sb / sy), y_zp,
                                         zp_before_round=True))

    def op_Add(self, node, attrs):
        a, b = self.env.get(node.input[0]), self.env.get(node.input[1])
        if isinstance(a, _Affine) and a.t.dtype == "i32" and not a.t.is_const:
            self.set(node, self._bias(node, a, node.input[1]))
        elif isinstance(b, _Affine) and b.t.dtype == "i32" and not b.t.is_const:
            self.set(node, self._bias(node, b, node.input[0]))
        else:
            self.set(node, self.g.add(self.tensor(node, node.input[0]),
                                      self.tensor(node, node.input[1])))

    def op_Relu(self, node, attrs):
        x = self.env.get(node.input[0])
        if isinstance(x, _Affine):
            self.set(node, _Affine(x.t, x.scale, x.zp, max(x.lo, 0.0), x.hi))
        else:
            self.set(node, self.g.relu(self.tensor(node, node.input[0])))

    def op_Clip(self, node, attrs):
        if attrs:
            self.fail(node, "min/max attributes (opset < 11) are not supported; give them as inputs")
        x = self.env.get(node.input[0])
        bounds = []
        for i in (1, 2):
            name = node.input[i] if len(node.input) > i else ""
            if not name:
                bounds.append(None)
            elif name in self.consts and name not in self.env:
                bound = np.asarray(self.consts[name])
                if bound.size != 1 or bound.dtype.kind not in "iuf" or np.isnan(bound).any():
                    self.fail(node, f"bound {name!r} must be one number, not {bound.dtype} "
                              f"{list(bound.shape)}")
                if not isinstance(x, _Affine) and not np.isfinite(bound).all():
                    self.fail(node, f"bound {name!r} of an integer Clip is not finite")
                bounds.append(bound.reshape(()).item())
            elif isinstance(x, _Affine):
                self.fail(node, "a float Clip needs constant bounds")
            else:
                bounds.append(self.tensor(node, name))
        if isinstance(x, _Affine):
            lo = x.lo if bounds[0] is None else max(x.lo, bounds[0])
            hi = x.hi if bounds[1] is None else min(x.hi, bounds[1])
            self.set(node, _Affine(x.t, x.scale, x.zp, lo, hi))
        else:
            self.set(node, self.g.clip(self.tensor(node, node.input[0]), *bounds))

    def op_Transpose(self, node, attrs):
        self._check_attrs(node, attrs, {"perm": None})
        self.set(node, self.g.transpose(self.tensor(node, node.input[0]), attrs.get("perm")))

    def op_Reshape(self, node, attrs):
        self._check_attrs(node, attrs, {"allowzero": 0})
        x = self.tensor(node, node.input[0])
        given = np.asarray(self.const(node, node.input[1], "shape"))
        if given.ndim != 1 or given.dtype.kind not in "iu":
            self.fail(node, f"shape must be a 1-D integer tensor, not {given.dtype} "
                      f"{list(given.shape)}")
        shape = [int(d) for d in given]
        if any(d < -1 for d in shape) or shape.count(-1) > 1:
            self.fail(node, f"shape {shape}: sizes are positive, 0 (keep) or one -1 (infer)")
        if any(d == 0 and i >= len(x.shape) for i, d in enumerate(shape)):
            self.fail(node, f"shape {shape} keeps a dimension (0) that {list(x.shape)} lacks")
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1]))
            shape[shape.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
        self.set(node, self.g.reshape(x, shape))

    def op_Flatten(self, node, attrs):
        self._check_attrs(node, attrs, {"axis": None})
        x = self.tensor(node, node.input[0])
        axis = attrs.get("axis", 1)
        if not isinstance(axis, int) or not -len(x.shape) <= axis <= len(x.shape):
            self.fail(node, f"axis {axis!r} out of range for a {len(x.shape)}-D input")
        self.set(node, self.g.flatten(x, axis))


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def import_onnx(model):
    """An ONNX ``ModelProto`` (or a path) -> :class:`Imported`.

    The model must pass ``onnx.checker.check_model`` first (node arities,
    attribute types, names defined before use, one producer per name); what this
    importer cannot take after that is an :class:`OnnxImportError` naming the node.
    """
    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except OSError:
            raise
        except Exception as e:      # protobuf's DecodeError and friends
            raise OnnxImportError(f"{model}: not a readable ONNX model "
                                  f"({type(e).__name__}: {_one_line(e)})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:          # onnx.checker.ValidationError, and a proto it cannot read
        raise OnnxImportError(f"not a valid ONNX model: {_one_line(e)}") from None
    return _Importer(model).run()


def _one_line(error, most=300):
    """An exception's message on one line, shortened."""
    text = " ".join(str(error).split())
    return text if len(text) <= most else text[:most] + "..."

