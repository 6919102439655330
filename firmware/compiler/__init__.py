"""The compiler: exact static schedules for the TSP.

A program for the TSP is a set of independent instruction queues that never
wait for each other: every instruction is placed at the exact local cycle in
which its operands pass its slice (``docs/ARCHITECTURE.md``). This package
builds such placements (:mod:`.schedule`), proves them free of stream, bank
and range hazards without trusting the code that built them (:mod:`.hazards`),
and tiles matrix multiplies of any shape onto one MXM (:mod:`.gemm`). Whole
int8 tensor programs (:mod:`.graph`) are lowered phase by phase into one
schedule (:mod:`.lower`); :mod:`.onnx_import` and :mod:`.backend` bring in
quantised ONNX models.
"""

from .schedule import Schedule, ScheduleError, Part
from .hazards import HazardError, check_schedule
from .gemm import compile_gemm, CompiledGemm, CompileError
from .graph import Graph, GraphError
from .lower import compile_graph, CompiledGraph


__all__ = ["Schedule", "ScheduleError", "Part", "HazardError", "check_schedule",
           "compile_gemm", "CompiledGemm", "CompileError", "Graph", "GraphError",
           "compile_graph", "CompiledGraph"]
