"""ONNX's own backend test runner drives the TSP (golden model, config ulx3s).

``onnx.backend.test.BackendTest`` builds each node test's model and data,
calls ``TSPBackend.prepare(model).run(inputs)`` and compares with the data
ONNX ships (produced by its reference implementation). The backend itself
fails a run that raises an error flag or misses its predicted cycle count.

Included: the node tests on integer types that use only supported operators:

    test_add_int8, test_clip_default_int8_inbounds, test_clip_default_int8_min,
    test_clip_default_int8_max, test_clip_default_int8_inbounds_expanded

Excluded, and why:

* float tests of the supported operators (test_add, test_relu, test_clip*,
  test_transpose_*, test_reshape_*, test_flatten_*, test_gemm_*, test_matmul_*):
  the TSP computes on int8/int32 only; float appears only at QuantizeLinear /
  DequantizeLinear edges.
* test_add_uint8 (and other uint/int16/int64 Add), test_matmulinteger (uint8
  operands), test_qlinearmatmul_*_uint8_*: unsigned and wider integer types;
  the MXM and VXM are int8/int32.
* test_qlinearmatmul_{2D,3D}_int8_float32/float16: their scales and zero
  points are graph inputs, not constants (REQUANT's multiplier and shift are
  instruction fields fixed at compile time), the weights are a runtime input
  with a nonzero zero point (not supported), and float16 scales.
* test_clip_default_int8_min_expanded / _max_expanded: the expanded function
  bodies use Less/Where, which the compiler does not support.
* test_quantizelinear* / test_dequantizelinear*: a model made of an edge op
  only has nothing to run on the TSP (the edges run on the host), and most
  use uint8 or float8/int4 types.
"""

import functools
import importlib
import unittest

import onnx.backend.test
import onnx.backend.test.runner
import pytest

from firmware.compiler.backend import TSPBackend


INCLUDED = [
    "test_add_int8_cpu",
    "test_clip_default_int8_inbounds_cpu",
    "test_clip_default_int8_inbounds_expanded_cpu",
    "test_clip_default_int8_min_cpu",
    "test_clip_default_int8_max_cpu",
]


#: The ONNX case modules that define the included tests. Importing a case
#: module runs its ``export`` functions, which register its node tests.
CASE_MODULES = ["add", "clip"]


def _load_included(kind=None, **_):
    """``load_model_tests`` for the runner, limited to the case modules above:
    ONNX's own loader imports (and so generates) every node test of every
    operator, about half a minute; the included tests are the same either way."""
    if kind != "node":
        return []
    for mod in CASE_MODULES:
        importlib.import_module(f"onnx.backend.test.case.node.{mod}")
    from onnx.backend.test.case.node import _NodeTestCases
    return _NodeTestCases


@functools.cache
def _node_tests():
    """The runner's TestCase class, kept out of the module namespace so that
    pytest does not collect the not-included tests as skips."""
    runner = onnx.backend.test.runner
    saved, runner.load_model_tests = runner.load_model_tests, _load_included
    try:
        bt = onnx.backend.test.BackendTest(TSPBackend, __name__)
    finally:
        runner.load_model_tests = saved
    for name in INCLUDED:
        bt.include(f"^{name}$")
    return bt.test_cases["OnnxBackendNodeModelTest"]


@pytest.mark.parametrize("name", INCLUDED)
def test_onnx_node(name):
    """Run one ONNX node test exactly as the ONNX runner would (``debug`` raises
    on failure; a skip would raise SkipTest, which this test does not accept)."""
    case = _node_tests()(name)
    try:
        case.debug()
    except unittest.SkipTest as e:
        pytest.fail(f"{name} was skipped by the ONNX runner: {e}")


def test_backend_rejects_other_devices():
    assert TSPBackend.supports_device("CPU")
    assert not TSPBackend.supports_device("CUDA")
