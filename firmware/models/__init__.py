"""Example models for the compiler: the int8 MLP of :mod:`.train_mlp`.

:func:`demo_mlp` is the end-to-end check the README's main command runs:
import ``mlp.onnx``, compile it for a configuration, run it on the golden
model (or the RTL), and compare with ONNX's reference evaluator.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np


HERE = Path(__file__).parent
MLP_PATH = HERE / "mlp.onnx"
MLP_INPUTS = HERE / "mlp_inputs.npz"


@dataclass
class MlpReport:
    config: str
    engine: str
    predicted_cycles: int
    cycles: int
    errors: int
    mismatches: int          # output elements that differ from onnx.reference
    accuracy: float          # TSP's predictions vs the labels
    reference_accuracy: float
    samples: int
    bound: int               # MXM lower bound: one ABC per row per weight tile

    @property
    def ok(self):
        return self.errors == 0 and self.cycles == self.predicted_cycles and self.mismatches == 0

    def __str__(self):
        return (f"int8 MLP {MLP_PATH.name} on {self.config} ({self.engine}): {self.samples} samples\n"
                f"  cycles: {self.cycles} (predicted {self.predicted_cycles}, "
                f"{'exact' if self.cycles == self.predicted_cycles else 'WRONG'}; MXM bound "
                f"{self.bound})\n"
                f"  errors: {self.errors:#x}\n"
                f"  logits vs onnx.reference: "
                f"{'bit-exact' if self.mismatches == 0 else f'{self.mismatches} differ'}\n"
                f"  accuracy: {self.accuracy:.3f} (reference {self.reference_accuracy:.3f})")


def demo_mlp(config="ulx3s", engine="golden"):
    """Compile and run the example MLP; return an :class:`MlpReport`."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    from ..compiler.lower import compile_graph
    from ..compiler.onnx_import import import_onnx

    model = onnx.load(str(MLP_PATH))
    with np.load(MLP_INPUTS) as data:
        x, labels = data["x"], data["labels"]
    imported = import_onnx(model)
    compiled = compile_graph(imported.graph, imported.host_inputs({"x": x}), config)
    result, values = compiled.run(engine)
    logits = imported.host_outputs(values)["logits"]
    ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    return MlpReport(compiled.config.name, engine, compiled.predicted_cycles, int(result.cycles),
                     int(result.errors), int(np.sum(logits != ref)),
                     float(np.mean(logits.argmax(1) == labels)),
                     float(np.mean(ref.argmax(1) == labels)), len(labels),
                     sum(p.get("bound", 0) for p in compiled.phases))
