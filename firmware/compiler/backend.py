"""``onnx.backend.base.Backend`` for the TSP: ONNX's own test runner drives it.

``prepare`` imports the model (:mod:`.onnx_import`); every ``run`` compiles the
program with that run's input values stored in MEM (the image carries its
inputs, as the host would load them before ``start``), runs it on the golden
model (or the RTL), checks that the run raised no error and took exactly the
predicted number of cycles, and returns the outputs in the model's order and
element types. The last run's compiled program and machine result stay on the
rep (``last``) for inspection.
"""

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, namedtupledict

from ..isa import ErrorFlag
from .lower import compile_graph
from .onnx_import import import_onnx


__all__ = ["TSPBackend", "TSPBackendRep", "RunMismatch", "prepare", "run_model", "supports_device"]


class RunMismatch(RuntimeError):
    """The machine raised an error flag or missed the predicted cycle count."""


def _np_type(elem_type):
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type)


class TSPBackendRep(BackendRep):
    def __init__(self, model, config="ulx3s", engine="golden"):
        self.model = model
        self.imported = import_onnx(model)
        self.config, self.engine = config, engine
        self.last = None
        self._out_types = {vo.name: _np_type(vo.type.tensor_type.elem_type) for vo in model.graph.output}

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = inputs
        else:
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            feeds = dict(zip(self.imported.inputs, inputs))
        compiled = compile_graph(self.imported.graph, self.imported.host_inputs(feeds), self.config)
        result, values = compiled.run(self.engine)
        if result.errors:
            flags = ", ".join(f.name for f in ErrorFlag if result.errors & f)
            raise RunMismatch(f"{self.engine} run raised {flags}")
        if result.cycles != compiled.predicted_cycles:
            raise RunMismatch(f"{self.engine} run took {result.cycles} cycles, the compiler "
                              f"predicted {compiled.predicted_cycles}")
        self.last = (compiled, result)
        outs = self.imported.host_outputs(values)
        names = self.imported.outputs
        return namedtupledict("Outputs", names)(
            *[np.asarray(outs[n]).astype(self._out_types[n]) for n in names])


class TSPBackend(Backend):
    """Runs int8 ONNX models on the TSP (golden model by default)."""

    @classmethod
    def prepare(cls, model, device="CPU", config="ulx3s", engine="golden", **kwargs):
        super().prepare(model, device, **kwargs)
        return TSPBackendRep(model, config, engine)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device):
        """The TSP stands in for ONNX's "CPU" device: one device, the machine."""
        return device == "CPU"


prepare = TSPBackend.prepare
run_model = TSPBackend.run_model
supports_device = TSPBackend.supports_device
