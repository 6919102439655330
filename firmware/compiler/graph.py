"""Tensor programs for the TSP: int8/int32 tensors and the ops the chip runs.

A :class:`Graph` is a list of ops on named tensors, built from numpy arrays
with a small Python API::

    g = Graph("mlp")
    x = g.input("x", (64, 16))                       # int8
    h = g.matmul(x, w1)                              # int8 @ int8 -> int32 (w1 a numpy array)
    h = g.add(h, b1)                                 # int32 bias, broadcast over rows
    h = g.relu(g.requantize(h, scale=2**-7, zero_point=0))
    g.output(h, "h")

The ops are exactly what the hardware computes, with the quantisation
parameters attached: ``matmul`` is the MXM (int8 x int8, int32 wrapping
sums), ``add``/``relu``/``clip`` are VXM ALU ops on int8 (wrapping add) or
int32, ``requantize`` is the VXM ``REQUANT`` (``isa.requantize``) with the
multiplier and shift chosen from a float scale, ``lut`` is the VXM's 256-entry
table indexed by the int8 byte (``sigmoid``/``tanh`` fill it from the
quantisation parameters; a program may use several tables).
``transpose``, ``reshape`` and ``flatten`` of constants happen at compile
time and of inputs on the host (which stores the new view); of computed
tensors they are changes of view of the row layout, except the 2-D transpose,
which runs on the MXM (:mod:`.lower`).

Tensors are 2-D to the machine: ``rows x features`` with the features along
the lanes, so every shape is seen as ``prod(shape[:-1]) x shape[-1]``.
"""

from dataclasses import dataclass, field
import math

import numpy as np

from ..isa import OPS, requantize as _hw_requantize
from ..machine import SliceKind


__all__ = ["Graph", "Tensor", "Op", "GraphError", "quant_multiplier", "DTYPES"]


class GraphError(ValueError):
    """A tensor program that is malformed (shapes, dtypes, values)."""


#: Tensor dtypes of the machine and their numpy types.
DTYPES = {"i8": np.int8, "i32": np.int32}


def _field_max(mnemonic, name):
    for n, width, signed in OPS[SliceKind.VXM][mnemonic].fields:
        if n == name:
            return (1 << (width - (1 if signed else 0))) - 1
    raise KeyError(name)


#: REQUANT's multiplier field (24 bits) and shift field, as the ISA defines them.
MULT_MAX = _field_max("REQUANT", "mult")
SHIFT_MAX = 63          # isa.check: REQUANT shift 0..63


def quant_multiplier(scale):
    """``(mult, shift)`` with ``mult / 2**shift`` as close to ``scale`` as the
    REQUANT fields allow: the largest shift whose multiplier still fits 24
    bits, so a power-of-two scale is exact and any other scale is within
    ``2**-24`` relative error."""
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise GraphError(f"requantisation scale must be a positive finite number, not {scale!r}")
    shift = SHIFT_MAX
    while shift > 0 and round(scale * 2.0 ** shift) > MULT_MAX:
        shift -= 1
    mult = round(scale * 2.0 ** shift)
    if not 1 <= mult <= MULT_MAX:
        raise GraphError(f"requantisation scale {scale!r} is out of the REQUANT range "
                         f"(at least 2**-{SHIFT_MAX}, below {MULT_MAX + 1})")
    while mult % 2 == 0 and shift > 0:          # the smallest equivalent pair
        mult //= 2
        shift -= 1
    return int(mult), int(shift)


@dataclass(eq=False)
class Tensor:
    """A named tensor: logical ``shape``, ``dtype`` "i8" or "i32", and for a
    constant its ``value``. ``producer`` is the op computing it (None for
    inputs and constants)."""
    name: str
    shape: tuple
    dtype: str
    value: np.ndarray | None = None
    producer: object = None

    @property
    def is_const(self):
        return self.value is not None

    @property
    def rows(self):
        return int(np.prod(self.shape[:-1], dtype=np.int64)) if len(self.shape) > 1 else 1

    @property
    def cols(self):
        return int(self.shape[-1]) if self.shape else 1

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.shape}, {self.dtype})"


@dataclass(eq=False)
class Op:
    """One op: ``kind``, input tensors, output tensor, attributes."""
    kind: str
    inputs: list
    output: Tensor
    attrs: dict = field(default_factory=dict)

    def __repr__(self):
        return f"{self.kind}({', '.join(t.name for t in self.inputs)}) -> {self.output.name}"


class Graph:
    """An int8 tensor program: inputs, constants, ops in order, outputs."""

    def __init__(self, name="graph"):
        self.name = name
        self.inputs = []
        self.ops = []
        self.outputs = {}          # output name -> Tensor
        self._names = set()

    # -- tensors -------------------------------------------------------------

    def _fresh(self, base):
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def input(self, name, shape, dtype="i8"):
        """A runtime input: its values are given when the program is compiled
        and run, and the host stores them in MEM in the layout the compiler asks."""
        if dtype not in DTYPES:
            raise GraphError(f"input {name!r}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if name in self._names:
            raise GraphError(f"tensor name {name!r} is used twice")
        t = Tensor(self._fresh(name), tuple(int(d) for d in shape), dtype)
        self.inputs.append(t)
        return t

    def const(self, value, dtype=None, name="const"):
        """A constant tensor from a numpy array (integers within ``dtype``)."""
        value = np.asarray(value)
        if dtype is None:
            dtype = "i32" if value.dtype in (np.int32, np.int64) else "i8"
        if dtype not in DTYPES:
            raise GraphError(f"constant {name!r}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        info = np.iinfo(DTYPES[dtype])
        if value.size and not (np.issubdtype(value.dtype, np.integer) or np.all(value == np.round(value))):
            raise GraphError(f"constant {name!r} holds non-integer values")
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise GraphError(f"constant {name!r} has values outside {dtype}")
        return Tensor(self._fresh(name), value.shape, dtype, value.astype(DTYPES[dtype]))

    def _t(self, x, dtype=None, name="const"):
        return x if isinstance(x, Tensor) else self.const(x, dtype, name)

    def _op(self, kind, inputs, shape, dtype, **attrs):
        out = Tensor(self._fresh(f"{kind}{len(self.ops)}"), tuple(shape), dtype)
        op = Op(kind, list(inputs), out, attrs)
        out.producer = op
        self.ops.append(op)
        return out

    def output(self, t, name=None):
        """Mark ``t`` as a result of the program, under ``name``."""
        name = name or t.name
        if name in self.outputs:
            raise GraphError(f"output name {name!r} is used twice")
        self.outputs[name] = t
        return t

    # -- ops -------------------------------------------------------------------

    def matmul(self, a, b):
        """``a @ b``: int8 ``[.., K]`` x int8 ``[K, N]`` -> int32 ``[.., N]`` (the MXM)."""
        a, b = self._t(a, "i8", "A"), self._t(b, "i8", "B")
        if a.dtype != "i8" or b.dtype != "i8":
            raise GraphError(f"matmul needs int8 operands, got {a.dtype} and {b.dtype}")
        if len(b.shape) != 2 or not a.shape or a.shape[-1] != b.shape[0]:
            raise GraphError(f"matmul shapes {a.shape} and {b.shape} do not fit "
                             "([.., K] @ [K, N])")
        return self._op("matmul", [a, b], a.shape[:-1] + (b.shape[1],), "i32")

    def add(self, a, b):
        """Elementwise ``a + b`` in the dtype of ``a`` (wrapping, as ONNX's
        integer Add and the VXM's ADD). ``b`` may be a scalar, a row
        ``[F]``/``[1, F]`` broadcast over the rows, or ``a``'s shape."""
        a = self._t(a, None, "A")
        b = self._t(b, a.dtype, "bias")
        if a.dtype != b.dtype:
            raise GraphError(f"add of {a.dtype} and {b.dtype}: both operands need one dtype")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise GraphError(f"add: shapes {a.shape} and {b.shape} do not broadcast") from None
        if shape != a.shape:
            a, b = b, a
            if shape != a.shape:
                raise GraphError(f"add: neither {a.shape} nor {b.shape} is the result shape {shape}")
        return self._op("add", [a, b], shape, a.dtype)

    def relu(self, x):
        """``max(x, 0)``."""
        x = self._t(x)
        return self._op("relu", [x], x.shape, x.dtype)

    def clip(self, x, lo=None, hi=None):
        """``min(max(x, lo), hi)``: ``lo``/``hi`` ints or scalar tensors."""
        x = self._t(x)
        info = np.iinfo(DTYPES[x.dtype])
        bounds = []
        for v, default in ((lo, info.min), (hi, info.max)):
            if v is None:
                v = default
            if isinstance(v, Tensor):
                if v.dtype != x.dtype or int(np.prod(v.shape)) != 1:
                    raise GraphError(f"clip bound {v.name} must be a {x.dtype} scalar")
            else:
                v = int(v)
                if not info.min <= v <= info.max:
                    raise GraphError(f"clip bound {v} is outside {x.dtype}")
            bounds.append(v)
        return self._op("clip", [x] + [b for b in bounds if isinstance(b, Tensor)], x.shape,
                        x.dtype, lo=bounds[0], hi=bounds[1])

    def requantize(self, x, scale=None, zero_point=0, *, mult=None, shift=None,
                   zp_before_round=False):
        """int32 -> int8: ``clamp(RNE(x * scale) + zero_point)`` with
        ``scale = mult / 2**shift`` (given, or chosen by :func:`quant_multiplier`);
        with ``zp_before_round`` ``clamp(RNE(x * scale + zero_point))`` (REQUANT's
        ``zr`` bit: an exact tie goes to the even *sum*, as ONNX ``QLinearMatMul``
        rounds, where ``QuantizeLinear`` rounds before adding the zero point)."""
        x = self._t(x, "i32")
        if x.dtype != "i32":
            raise GraphError(f"requantize takes int32, {x.name} is {x.dtype}")
        if mult is None:
            mult, shift = quant_multiplier(scale)
        if not (1 <= mult <= MULT_MAX and 0 <= shift <= SHIFT_MAX):
            raise GraphError(f"requantize: mult {mult} / shift {shift} out of range")
        if not -128 <= int(zero_point) <= 127:
            raise GraphError(f"requantize: zero point {zero_point} is not int8")
        return self._op("requant", [x], x.shape, "i8", mult=int(mult), shift=int(shift),
                        zp=int(zero_point), zr=int(bool(zp_before_round)), scale=scale)

    def lut(self, x, table):
        """int8 -> int8 through a 256-entry table indexed by the byte ``x & 0xFF``."""
        x = self._t(x)
        table = np.asarray(table)
        if x.dtype != "i8" or table.shape != (256,):
            raise GraphError("lut takes int8 and a table of 256 int8 entries")
        if table.min() < -128 or table.max() > 127:
            raise GraphError("lut table entries must be int8")
        return self._op("lut", [x], x.shape, "i8", table=table.astype(np.int8))

    def activation(self, x, fn, in_scale, in_zp, out_scale, out_zp):
        """A float function through the table: entry for byte ``q`` is
        ``quantize(fn((q - in_zp) * in_scale))`` (round half to even)."""
        q = np.arange(256).astype(np.uint8).view(np.int8).astype(np.float64)
        y = fn((q - in_zp) * in_scale)
        table = np.clip(np.round(y / out_scale) + out_zp, -128, 127)
        return self.lut(x, table.astype(np.int8))

    def sigmoid(self, x, in_scale, in_zp, out_scale, out_zp):
        return self.activation(x, lambda v: 1 / (1 + np.exp(-v)), in_scale, in_zp, out_scale, out_zp)

    def tanh(self, x, in_scale, in_zp, out_scale, out_zp):
        return self.activation(x, np.tanh, in_scale, in_zp, out_scale, out_zp)

    def transpose(self, x, perm=None):
        """Permute the axes (of a constant: done at compile time)."""
        x = self._t(x)
        perm = tuple(perm) if perm is not None else tuple(reversed(range(len(x.shape))))
        if sorted(perm) != list(range(len(x.shape))):
            raise GraphError(f"transpose: {perm} is not a permutation of {len(x.shape)} axes")
        if x.is_const:
            return self.const(np.transpose(x.value, perm), x.dtype, f"{x.name}_T")
        return self._op("transpose", [x], tuple(x.shape[p] for p in perm), x.dtype, perm=perm)

    def reshape(self, x, shape):
        """A new view of the same elements (row-major)."""
        x = self._t(x)
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != int(np.prod(x.shape)):
            raise GraphError(f"reshape of {x.shape} to {shape} changes the element count")
        if x.is_const:
            return self.const(x.value.reshape(shape), x.dtype, x.name)
        return self._op("reshape", [x], shape, x.dtype)

    def flatten(self, x, axis=1):
        """ONNX Flatten: ``[prod(shape[:axis]), prod(shape[axis:])]``."""
        x = self._t(x)
        axis = axis + len(x.shape) if axis < 0 else axis
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return self.reshape(x, (rows, int(np.prod(x.shape[axis:], dtype=np.int64))))

    # -- reference semantics -----------------------------------------------------

    def evaluate(self, inputs):
        """The program's results in plain numpy: ``{output name: array}``.

        This is the meaning of every op written out directly (wrapping int32
        sums, ``isa.requantize``); it is what the compiled program must match.
        """
        env = {}
        for t in self.inputs:
            if t.name not in inputs:
                raise GraphError(f"no value for input {t.name!r}")
            env[t] = np.asarray(inputs[t.name]).astype(DTYPES[t.dtype]).reshape(t.shape)

        def val(t):
            return t.value if t.is_const else env[t]

        for op in self.ops:
            a = [val(t) for t in op.inputs]
            k, dt = op.kind, DTYPES[op.output.dtype]
            if k == "matmul":
                r = (a[0].astype(np.int64) @ a[1].astype(np.int64)).astype(np.int32)
            elif k == "add":
                r = (a[0].astype(np.int64) + a[1].astype(np.int64)).astype(dt)
            elif k == "relu":
                r = np.maximum(a[0], 0)
            elif k == "clip":
                lo, hi = (val(b) if isinstance(b, Tensor) else b
                          for b in (op.attrs["lo"], op.attrs["hi"]))
                r = np.minimum(np.maximum(a[0], np.asarray(lo).reshape(())), np.asarray(hi).reshape(()))
            elif k == "requant":
                r = _hw_requantize(a[0], op.attrs["mult"], op.attrs["shift"], op.attrs["zp"],
                                   op.attrs["zr"])
            elif k == "lut":
                r = op.attrs["table"][a[0].astype(np.uint8)]
            elif k == "transpose":
                r = np.transpose(a[0], op.attrs["perm"])
            else:                                   # reshape
                r = a[0].reshape(op.output.shape)
            env[op.output] = np.asarray(r).astype(dt).reshape(op.output.shape)
        return {name: val(t) for name, t in self.outputs.items()}
