"""``tsp bench``: the project's performance table, from one command anyone can rerun.

Six sections, each measured in this run (or, for the FPGA, read from the reports of
builds already made); what was not run says so in its cell instead of a number:

``gemm``    GEMM utilisation: the MXM bound ``M * ceil(K/VL) * ceil(N/VL)``, the
            compiler's predicted cycles, the golden model's and the gateware's
            measured cycles, utilisation = bound / predicted, latency at the board's Fmax.
``models``  the example MLP (``firmware/models/mlp.onnx``) and a small CNN-like
            chain of GEMMs: cycles and latency in microseconds.
``jitter``  one compiled program on many random inputs: minimum and maximum cycles.
``sim``     simulation throughput (cycles per second) of the golden model, Amaranth's
            simulator and Icarus through cocotb, on the programs of
            ``scripts/bench_sim.py``.
``fpga``    Fmax, LUT, FF, block RAM and DSP of each board's bitstream build, and
            peak int8 GOPS = 2 * MACs per cycle * Fmax.
``scale``   compile and golden-model CPU time against GEMM size and configuration.

Geometry comes from :data:`firmware.machine.CONFIGS` at run time; a GEMM or model that
a configuration cannot hold is listed with the compiler's reason. Every measured cycle
count is checked (golden == predicted, RTL == predicted, results == numpy, jitter
min == max); a failed check is written as ``MISMATCH`` in the table, listed under
"Problems", and makes the command exit with status 1.
"""

import dataclasses
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path


__all__ = ["SECTIONS", "BenchError", "add_arguments", "run", "read_build_dir", "render_markdown",
           "with_inputs", "cnn_graph"]

ROOT = Path(__file__).resolve().parent.parent

SECTIONS = ("fpga", "gemm", "models", "jitter", "sim", "scale")

#: GEMM shapes of the utilisation table (M, K, N): the square sizes of issue 8 and two
#: ragged ones whose K and N are not multiples of any VL.
SQUARE = (16, 64, 256, 1024)
RAGGED = ((100, 130, 90), (37, 250, 70))
QUICK_SQUARE = (16, 64)

#: M = K = N of the scale table.
SCALE_SIZES = (16, 32, 64, 128, 256)
QUICK_SCALE_SIZES = (16, 32, 64)

#: A shape that does not fit a configuration is also compiled on the same geometry with
#: the largest memory and queues the encodings allow ("+bigmem"), when its bound is at
#: most this many cycles: the issue's goal, 256x256x256 at ulx3s, is 262144 at VL 8.
BIGMEM_MAX_BOUND = 300_000

NOT_QUICK = "not run in --quick"

#: Random inputs of the jitter runs on the RTL engine (each is a full Icarus run).
JITTER_RTL = 10


class BenchError(ValueError):
    """Bad options for the benchmark (a missing report directory ...)."""


def _ceil(a, b):
    return -(-a // b)


def _one_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip(": ")


# -- FPGA reports --------------------------------------------------------------------

def read_build_dir(path, board):
    """What a board build (:func:`boards.build.build`) left in ``path``: its
    ``build.json`` when it finished (Fmax after routing, LUT, FF, BRAM, DSP as
    ``[used, available]``); else why it failed, from nextpnr's log, with the cells
    Yosys counted. ``fmax_mhz`` is None when there is none."""
    from boards.build import nextpnr_failure, parse_yosys_stat
    path = Path(path)
    out = {"dir": str(path), "fmax_mhz": None, "target_mhz": None, "resources": {},
           "build_s": None, "config": None, "core": "tsp", "error": None}
    if (path / "build.json").exists():
        rep = json.loads((path / "build.json").read_text())
        out.update(config=rep.get("config"), core=rep.get("core", "tsp"),
                   fmax_mhz=rep.get("fmax_mhz"), target_mhz=rep.get("target_mhz"),
                   build_s=rep.get("build_s"),
                   resources={k: [v["used"], v["available"]]
                              for k, v in rep.get("resources", {}).items()})
        if rep.get("timing_met") is False:
            out["error"] = (f"timing not met: {out['fmax_mhz']:.2f} MHz, target "
                            f"{out['target_mhz']:.2f} MHz")
        return out
    stat = {}
    if (path / "top.rpt").exists():
        stat = parse_yosys_stat((path / "top.rpt").read_text(errors="replace"))
    if stat:        # Yosys's counts, without the device's totals
        out["resources"] = {
            "LUT": [stat.get("SB_LUT4", 0) + stat.get("LUT4", 0), None],
            "FF": [sum(n for c, n in stat.items() if c.startswith("SB_DFF") or c == "TRELLIS_FF"),
                   None],
            "BRAM": [stat.get("SB_RAM40_4K", 0) + stat.get("DP16KD", 0), None],
            "DSP": [stat.get("SB_MAC16", 0) + stat.get("MULT18X18D", 0), None]}
    if (path / "top.tim").exists():
        out["error"] = nextpnr_failure((path / "top.tim").read_text(errors="replace"), board)
    elif (path / "top.rpt").exists():
        out["error"] = ("no place-and-route log (top.tim): synthesis " +
                        ("finished, nothing after it" if stat else "did not finish"))
    else:
        out["error"] = "no build found (no build.json, top.rpt or top.tim)"
    return out


# -- the suite -----------------------------------------------------------------------

class Bench:
    """One run of the suite: options, results per section, problems, progress."""

    def __init__(self, args, log=None):
        self.args = args
        self.quick = args.quick
        self.sections = {}
        self.problems = []
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._gemm_memo = {}
        self.board_of = {}          # config name -> board name (from the boards' defaults)
        self.fmax = {}              # board -> MHz, when its build has one
        self.fmax_missing = {}      # board -> why not

    # -- helpers -----------------------------------------------------------------

    @property
    def configs(self):
        from .machine import CONFIGS
        return list(CONFIGS.values())

    def problem(self, where, msg):
        self.problems.append(f"{where}: {msg}")
        self.log(f"  MISMATCH {where}: {msg}")

    def latency_us(self, cfg_name, cycles):
        """``cycles`` at the Fmax of the board built with ``cfg_name``, or why not."""
        board = self.board_of.get(cfg_name)
        if board is None:
            return None, "no board"
        if board not in self.fmax:
            return None, f"no Fmax ({self.fmax_missing.get(board, 'fpga section not run')})"
        return cycles / self.fmax[board], f"{board} @ {self.fmax[board]:.2f} MHz"

    def _rtl_engine(self):
        return self.args.rtl_engine or ("amaranth" if self.quick else "rtl")

    def _rtl_limit(self):
        if self.args.rtl_max_cycles is not None:
            return self.args.rtl_max_cycles
        return 400 if self.quick else 6000

    def _rtl_configs(self):
        """The sets the RTL columns run on: every set with gateware; in --quick only the
        smallest that the compiler places the first GEMM on (elaborating a bigger one
        takes a minute before the first cycle; ``pico`` holds no int32 GEMM result)."""
        sets = [c for c in self.configs if c.rtl]
        if not self.quick:
            return sets
        by_size = sorted(sets, key=lambda c: c.vl * c.floorplan.width)
        first = _gemm_shapes(self)[0]
        return [next((c for c in by_size if self.gemm(c, first)[1] is not None), by_size[0])]

    def run_rtl(self, cfg, image, predicted, golden):
        """Run ``image`` on the gateware when it is small enough: ``(engine, result,
        None)``, or ``(engine, None, why not)``."""
        engine = self._rtl_engine()
        if engine == "none":
            return engine, None, "--rtl-engine none"
        if not cfg.rtl:
            return engine, None, "no RTL for this set"
        if cfg.name not in [c.name for c in self._rtl_configs()]:
            return engine, None, NOT_QUICK
        if predicted > self._rtl_limit():
            return engine, None, f"> {self._rtl_limit()} cycles"
        t = time.perf_counter()
        if engine == "rtl":
            from sim.rtl_runner import run_image_rtl
            result = run_image_rtl(image, golden=golden)
        else:
            from sim.amaranth_run import run_image_amaranth
            result = run_image_amaranth(image)
        self.log(f"  {engine}: {result.cycles} cycles in {time.perf_counter() - t:.0f} s wall")
        return engine, result, None

    # -- GEMM measurements (shared by the gemm and scale sections) ----------------

    def gemm(self, cfg, shape):
        """Compile ``C = A @ B`` of ``shape`` and run it on the golden model, once per
        run: ``(row, CompiledGemm or None, golden result or None)``."""
        key = (cfg.name, shape)
        if key in self._gemm_memo:
            return self._gemm_memo[key]
        from .compiler import CompileError, compile_gemm
        from sim.golden import run_image
        M, K, N = shape
        vl = cfg.vl
        row = {"config": cfg.name, "shape": "x".join(map(str, shape)), "M": M, "K": K, "N": N,
               "bound": M * _ceil(K, vl) * _ceil(N, vl), "predicted": None, "golden": None,
               "utilisation": None, "compile_cpu_s": None, "golden_cpu_s": None,
               "instr_words": None, "status": "ok"}
        t = time.process_time()
        try:
            g = compile_gemm(cfg, M, K, N, seed=1)
        except CompileError as e:
            row["compile_cpu_s"] = time.process_time() - t
            row["status"] = f"not compiled: {e}"
            self._gemm_memo[key] = (row, None, None)
            return row, None, None
        row["compile_cpu_s"] = time.process_time() - t
        row["predicted"] = g.predicted_cycles
        row["utilisation"] = row["bound"] / g.predicted_cycles
        row["instr_words"] = sum(len(w) for w in g.image.queues.values())
        where = f"gemm {cfg.name} {row['shape']}"
        if g.bound != row["bound"]:
            self.problem(where, f"compiler's bound {g.bound} != M*ceil(K/VL)*ceil(N/VL) = {row['bound']}")
        t = time.process_time()
        result = run_image(g.image)
        row["golden_cpu_s"] = time.process_time() - t
        row["golden"] = result.cycles
        bad = g.problems(result)
        if bad:
            row["status"] = "MISMATCH: " + "; ".join(bad)
            self.problem(where + " golden", "; ".join(bad))
        self._gemm_memo[key] = (row, g, result)
        return row, g, result


# -- sections -------------------------------------------------------------------------

def _boards():
    """Board name -> the configuration it carries (``boards.<board>.CONFIG``)."""
    from boards.build import BOARDS, board_module
    return {board: board_module(board).CONFIG for board in BOARDS}


def _build_status(error):
    """A build's status from its one-line error: a build whose nextpnr has not finished
    (still running, or stopped) is said as such, not as a failure."""
    from boards.build import NOT_FINISHED
    return error if error.startswith(NOT_FINISHED) else f"failed: {error}"


def section_fpga(b):
    """Each board's build: run it (full run), read it (``--fpga-reports``), or say why not."""
    from .machine import get_config
    rows, notes = [], []
    for board, cfg_name in _boards().items():
        cfg = get_config(cfg_name)
        row = {"board": board, "config": cfg_name, "vl": cfg.vl, "mxm": len(cfg.mxm),
               "macs": cfg.vl * cfg.vl * len(cfg.mxm), "fmax_mhz": None, "resources": {},
               "gops": None}
        skip = (NOT_QUICK if b.quick and not b.args.fpga_reports
                else "not run (--skip-fpga)" if b.args.skip_fpga else None)
        if skip:
            row["status"] = skip
            b.fmax_missing[board] = skip
            rows.append(row)
            continue
        error = None
        if b.args.fpga_reports:
            build_dir = Path(b.args.fpga_reports) / board
            b.log(f"[fpga] {board}: reading {build_dir}")
        else:
            from boards.build import BuildError, build
            build_dir = ROOT / "build" / board
            b.log(f"[fpga] {board}: building config {cfg_name} in {build_dir} (can take an hour)")
            phase = [None]

            def progress(name, elapsed, detail, board=board, phase=phase):
                if name != phase[0]:
                    phase[0] = name
                    b.log(f"[fpga] {board}: {name} (at {elapsed:.0f} s)")
            try:
                build(board, build_dir=build_dir, progress=progress)
            except BuildError as e:
                error = str(e)
        rep = read_build_dir(build_dir, board)
        row.update({k: v for k, v in rep.items() if v is not None})
        if rep["config"] is None:
            notes.append(f"{board}: the report does not name its configuration; taken as "
                         f"{cfg_name!r}, the board's `CONFIG`")
        elif rep["config"] != cfg_name:
            cfg = get_config(rep["config"])
            row.update(vl=cfg.vl, mxm=len(cfg.mxm), macs=cfg.vl * cfg.vl * len(cfg.mxm))
            b.board_of.pop(cfg_name, None)
            b.board_of[cfg.name] = board
        error = error or rep["error"]
        if rep["core"] != "tsp":
            # a board that carries the host link alone: its Fmax is not the TSP's
            row["status"] = (_build_status(error) if error else
                             f"ok, but core {rep['core']!r}: the build has no TSP")
            row["vl"] = row["macs"] = None
            b.fmax_missing[board] = f"the {board} build has no TSP (core {rep['core']!r})"
            rows.append(row)
            b.log(f"[fpga] {board}: {row['status']}")
            continue
        if rep["fmax_mhz"] is not None:
            b.fmax[board] = rep["fmax_mhz"]
            row["gops"] = 2 * row["macs"] * rep["fmax_mhz"] * 1e6 / 1e9
        else:
            b.fmax_missing[board] = f"no routed {board} build"   # failed, or not finished
        row["status"] = _build_status(error) if error else "ok"
        rows.append(row)
        b.log(f"[fpga] {board}: {row['status']}" + (f", Fmax {rep['fmax_mhz']:.2f} MHz"
                                                      if rep["fmax_mhz"] else ""))
    notes.append("Fmax = nextpnr's maximum frequency of the core clock after routing; "
                 "resources used / available (iCE40: LUT and FF counted by Yosys, against the "
                 "logic cells); peak int8 GOPS = 2 * VL*VL * MXMs * Fmax.")
    return {"rows": rows, "notes": notes}


def _gemm_shapes(b):
    square = QUICK_SQUARE if b.quick else SQUARE
    return [(s, s, s) for s in square] + list(RAGGED)


def _bigmem(cfg):
    """The same geometry with the largest memory and queues the encodings allow."""
    return cfg.with_(name=f"{cfg.name}+bigmem", bank_words=4096, queue_depth=1 << 16)


def section_gemm(b):
    rows, notes = [], []
    for cfg in b.configs:
        for shape in _gemm_shapes(b):
            row, g, golden = b.gemm(cfg, shape)
            row = dict(row)
            _gemm_extras(b, cfg, row, g, golden)
            rows.append(row)
            if g is None and not b.quick and row["bound"] <= BIGMEM_MAX_BOUND:
                big = _bigmem(cfg)
                b.log(f"[gemm] {big.name} {row['shape']}")
                brow, bg, bgolden = b.gemm(big, shape)
                if bg is None:          # not even the largest memory holds it: no row
                    continue
                brow = dict(brow)
                _gemm_extras(b, big, brow, bg, bgolden, rtl=False)
                rows.append(brow)
    quick_note = (f" In --quick only M=K=N in {QUICK_SQUARE} and the ragged shapes run."
                  if b.quick else "")
    notes.append("bound = M * ceil(K/VL) * ceil(N/VL) (one ABC per activation row per weight "
                 "tile); utilisation = bound / predicted; predicted = the compiler's H + T; "
                 "golden and RTL are measured, and checked equal to predicted with C == A @ B."
                 + quick_note)
    notes.append(f"RTL: {ENGINE_NAMES.get(b._rtl_engine(), 'not run')} on the sets "
                 f"{', '.join(c.name for c in b._rtl_configs())}, for shapes of at most "
                 f"{b._rtl_limit()} predicted cycles.")
    if any(r["config"].endswith("+bigmem") for r in rows):
        notes.append("`+bigmem` rows: the same geometry with 4096 words per bank and 65536-word "
                     "queues (the largest the encodings allow), for shapes the real set cannot "
                     "hold; no board has that memory.")
    return {"rows": rows, "notes": notes}


def _gemm_extras(b, cfg, row, g, golden, rtl=True):
    """RTL cycles and latency of one GEMM row."""
    row["rtl"], row["rtl_engine"] = None, None
    row["latency_us"], row["latency_at"] = None, None
    if g is None:
        return
    b.log(f"[gemm] {cfg.name} {row['shape']}: predicted {row['predicted']}, golden "
          f"{row['golden']}, utilisation {row['utilisation']:.1%}")
    if not rtl:
        return
    where = f"gemm {cfg.name} {row['shape']}"
    try:
        engine, res, why = b.run_rtl(cfg, g.image, g.predicted_cycles, golden)
    except Exception as e:
        row["rtl"] = f"failed: {_one_line(e)}"
        b.problem(where + " RTL", row["rtl"])
        return
    row["rtl_engine"] = engine
    if res is None:
        row["rtl"] = why if why == NOT_QUICK else f"not run: {why}"
        return
    row["rtl"] = int(res.cycles)
    bad = g.problems(res)
    if bad:
        row["status"] = "MISMATCH: RTL " + "; ".join(bad)
        b.problem(where + f" {engine}", "; ".join(bad))


# -- models ------------------------------------------------------------------------------

def cnn_graph(rng):
    """A small CNN-like int8 graph, as chains of GEMMs: a 3x3 convolution of an 8x8x3
    image (im2col on the host: 64 rows of 27), two 1x1 convolutions, a transpose on the
    MXM and a global average pool (a GEMM with a column of ones). Returns
    ``(graph, inputs)``; random weights whose requantisation keeps values in range."""
    import numpy as np
    from .compiler import Graph

    def conv(g, x, K, N, relu=True):
        w = rng.integers(-16, 17, (K, N)).astype(np.int8)
        bias = rng.integers(-256, 257, N).astype(np.int32)
        # |x| ~ 64 and |w| ~ 10: sums ~ 640*sqrt(K); scale them to about 40
        scale = 2.0 ** -round(math.log2(640 * math.sqrt(K) / 40))
        h = g.requantize(g.add(g.matmul(x, w), bias), scale=scale)
        return g.relu(h) if relu else h

    g = Graph("cnn")
    x = g.input("x", (64, 27))
    h = conv(g, x, 27, 16)
    h = conv(g, h, 16, 16)
    h = conv(g, h, 16, 8, relu=False)
    pooled = g.requantize(g.matmul(g.transpose(h), np.ones((64, 1), np.int8)), scale=1 / 64)
    g.output(pooled, "pooled")
    return g, {"x": cnn_input(rng)}


def cnn_input(rng):
    """A random 10x10x3 int8 image as the 64 3x3x3 patches of an 8x8 output."""
    import numpy as np
    img = rng.integers(-128, 128, (10, 10, 3))
    return np.stack([img[i:i + 3, j:j + 3].reshape(-1)
                     for i in range(8) for j in range(8)]).astype(np.int8)


def mlp_graph():
    """The example MLP as imported from ONNX: ``(graph, inputs)``."""
    import numpy as np
    import onnx
    from .compiler.onnx_import import import_onnx
    from .models import MLP_INPUTS, MLP_PATH
    imported = import_onnx(onnx.load(str(MLP_PATH)))
    with np.load(MLP_INPUTS) as data:
        x = data["x"]
    return imported.graph, imported.host_inputs({"x": x})


MODELS = {
    "mlp": ("int8 MLP 16-32-32-4, 64 samples (mlp.onnx)", lambda rng: mlp_graph()),
    "cnn": ("CNN-like: 3x3 conv (im2col) 27->16, 1x1 16->16, 1x1 16->8, transpose, pool",
            cnn_graph),
}


def _wrong(compiled, result, graph, inputs):
    import numpy as np
    want = graph.evaluate(inputs)
    got = compiled.results(result.memory)
    return sum(int(np.sum(np.asarray(got[n]) != np.asarray(w))) for n, w in want.items())


def section_models(b):
    import numpy as np
    from .compiler import CompileError, compile_graph
    from sim.golden import run_image
    rows = []
    for key, (title, build) in MODELS.items():
        for cfg in b.configs:
            graph, inputs = build(np.random.default_rng(0))
            row = {"model": key, "config": cfg.name, "phases": None, "bound": None,
                   "predicted": None, "golden": None, "rtl": None, "rtl_engine": None,
                   "latency_us": None, "latency_at": None, "compile_cpu_s": None, "status": "ok"}
            where = f"{key} {cfg.name}"
            t = time.process_time()
            try:
                c = compile_graph(graph, inputs, cfg)
            except CompileError as e:
                row["status"] = f"not compiled: {e}"
                rows.append(row)
                b.log(f"[models] {where}: not compiled")
                continue
            row["compile_cpu_s"] = time.process_time() - t
            row["phases"] = len(c.phases)
            row["bound"] = sum(p.get("bound", 0) for p in c.phases)
            row["predicted"] = c.predicted_cycles
            r = run_image(c.image)
            row["golden"] = r.cycles
            bad = []
            if r.errors or r.cycles != c.predicted_cycles:
                bad.append(f"golden {r.cycles} cycles, errors {r.errors:#x}, predicted "
                           f"{c.predicted_cycles}")
            wrong = _wrong(c, r, graph, inputs)
            if wrong:
                bad.append(f"golden: {wrong} output elements differ from the graph's numpy "
                           "semantics")
            try:
                engine, res, why = b.run_rtl(cfg, c.image, c.predicted_cycles, r)
                row["rtl_engine"] = engine
                if res is None:
                    row["rtl"] = why if why == NOT_QUICK else f"not run: {why}"
                else:
                    row["rtl"] = int(res.cycles)
                    if res.errors or res.cycles != c.predicted_cycles:
                        bad.append(f"{engine} {res.cycles} cycles, predicted {c.predicted_cycles}")
                    wrong = _wrong(c, res, graph, inputs)
                    if wrong:
                        bad.append(f"{engine}: {wrong} output elements differ")
            except Exception as e:
                row["rtl"] = f"failed: {_one_line(e)}"
                bad.append(row["rtl"])
            if bad:
                row["status"] = "MISMATCH: " + "; ".join(bad)
                b.problem(where, "; ".join(bad))
            b.log(f"[models] {where}: predicted {row['predicted']}, golden {row['golden']}, "
                  f"RTL {row['rtl']}")
            rows.append(row)
    notes = [f"`{k}`: {title}." for k, (title, _) in MODELS.items()]
    notes.append("bound = the sum of the GEMM phases' MXM bounds; every output is checked "
                 "against the graph's numpy semantics (`Graph.evaluate`).")
    return {"rows": rows, "notes": notes}


# -- jitter ------------------------------------------------------------------------------

def with_inputs(compiled, values):
    """A copy of ``compiled.image`` with new values of the graph's inputs, stored where
    the host stores them (``compiled.placements``): the same program, other data."""
    import numpy as np
    image = dataclasses.replace(compiled.image,
                                memory={s: dict(m) for s, m in compiled.image.memory.items()})
    vl = compiled.config.vl
    for t in compiled.graph.inputs:
        place = compiled.placements[t.name]
        rows, tiles = place["rows"], place["tiles"]
        flat = np.zeros((rows, tiles * vl), np.int64)
        flat[:, :t.cols] = np.asarray(values[t.name]).reshape(rows, t.cols)
        words = flat.reshape(rows, tiles, vl).transpose(1, 0, 2).reshape(rows * tiles, vl)
        if len(place["slices"]) == 1:
            image.set_words(place["slices"][0], place["addr"], words.astype(np.uint8))
        else:                      # int32 as four byte planes
            u = words.astype(np.uint32)
            for i, sl in enumerate(place["slices"]):
                image.set_words(sl, place["addr"], ((u >> (8 * i)) & 0xFF).astype(np.uint8))
    return image


def section_jitter(b):
    import numpy as np
    from .compiler import CompileError, compile_graph
    from .machine import get_config
    from sim.engines import run_on
    rows, notes = [], []
    n_golden = b.args.jitter_inputs or (10 if b.quick else 100)
    n_rtl = 0 if b.quick else b.args.jitter_rtl
    rng = np.random.default_rng(8)
    for key in ("mlp", "cnn"):
        graph, inputs = MODELS[key][1](np.random.default_rng(0))
        cfg = get_config("ulx3s") if "ulx3s" in [c.name for c in b.configs] else b.configs[0]
        try:
            compiled = compile_graph(graph, inputs, cfg)
        except CompileError as e:
            rows.append({"program": key, "config": cfg.name, "engine": "-", "inputs": 0,
                         "min": None, "max": None, "wrong": None, "status": f"not compiled: {e}"})
            continue
        for engine, n in (("golden", n_golden), (b._rtl_engine(), n_rtl)):
            if engine == "none":
                continue
            if n == 0:
                rows.append({"program": key, "config": cfg.name, "engine": engine, "inputs": 0,
                             "min": None, "max": None, "wrong": None,
                             "status": NOT_QUICK if b.quick else "not run (--jitter-rtl 0)"})
                continue
            b.log(f"[jitter] {key} {cfg.name}: {n} random inputs on {engine}")
            cycles, wrong, failed = [], 0, None
            for i in range(n):
                values = {t.name: rng.integers(-128, 128, t.shape) for t in graph.inputs}
                image = with_inputs(compiled, values)
                try:
                    r = run_on(engine, image)
                except Exception as e:
                    failed = _one_line(e)
                    break
                cycles.append(int(r.cycles))
                wrong += _wrong(compiled, r, graph, values)
            row = {"program": key, "config": cfg.name, "engine": engine, "inputs": len(cycles),
                   "min": min(cycles, default=None), "max": max(cycles, default=None),
                   "predicted": compiled.predicted_cycles, "wrong": wrong, "status": "ok"}
            bad = []
            if failed:
                bad.append(f"failed after {len(cycles)} runs: {failed}")
            if cycles and (row["min"] != row["max"] or row["min"] != compiled.predicted_cycles):
                bad.append(f"cycles {row['min']}..{row['max']}, predicted {compiled.predicted_cycles}")
            if wrong:
                bad.append(f"{wrong} output elements differ from the graph's numpy semantics")
            if bad:
                row["status"] = "MISMATCH: " + "; ".join(bad)
                b.problem(f"jitter {key} {engine}", "; ".join(bad))
            rows.append(row)
    notes.append("One compiled image; per run only the input words in MEM change (where "
                 "`CompiledGraph.placements` says the host stores them), the instruction "
                 "words are the same. Inputs: uniform random int8. min must equal max.")
    return {"rows": rows, "notes": notes}


# -- simulation throughput -------------------------------------------------------------

def _bench_sim():
    """``scripts/bench_sim.py`` (helper functions per engine and the program sizes)."""
    spec = importlib.util.spec_from_file_location("bench_sim", ROOT / "scripts" / "bench_sim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ENGINE_NAMES = {"golden": "golden model", "amaranth": "Amaranth simulator",
                "rtl": "Icarus (cocotb)"}


def section_sim(b):
    from .compiler import compile_gemm
    bs = _bench_sim()
    rtl_cfgs = b._rtl_configs()
    engines = ("golden", "amaranth") if b.quick else ("golden", "amaranth", "rtl")
    rows, ratios, notes = [], [], []
    for cfg in rtl_cfgs:
        shape = bs.SHAPES.get(cfg.name)
        if shape is None:
            notes.append(f"{cfg.name}: scripts/bench_sim.py has no program size for it")
            continue
        image = compile_gemm(cfg, *shape, seed=1).image
        rate = {}
        for engine in ("golden", "amaranth", "rtl"):
            row = {"config": cfg.name, "engine": engine, "program": "GEMM " + "x".join(map(str, shape)),
                   "cycles": None, "run_s": None, "cycles_per_s": None, "setup_s": None,
                   "status": "ok"}
            if engine not in engines:
                row["status"] = NOT_QUICK
                rows.append(row)
                continue
            b.log(f"[sim] {cfg.name} {engine}")
            try:
                if engine == "golden":     # one run is short: repeat for a steadier figure
                    cycles, run_s, setup_s, runs = 0, 0.0, 0.0, 0
                    while run_s < (0.2 if b.quick else 1.0):
                        c1, r1, s1 = bs.ENGINES["golden"](image)
                        cycles, run_s, setup_s, runs = cycles + c1, run_s + r1, setup_s + s1, runs + 1
                    cycles //= runs
                    run_s /= runs
                else:
                    cycles, run_s, setup_s = bs.ENGINES[engine](image)
            except Exception as e:
                row["status"] = f"failed: {_one_line(e)}"
                b.problem(f"sim {cfg.name} {engine}", row["status"])
                rows.append(row)
                continue
            row.update(cycles=int(cycles), run_s=run_s, setup_s=setup_s,
                       cycles_per_s=cycles / run_s if run_s else None)
            rate[engine] = row["cycles_per_s"]
            rows.append(row)
            b.log(f"[sim] {cfg.name} {engine}: {cycles} cycles, {row['cycles_per_s']:.0f} cycles/s")
        cyc = {r["engine"]: r["cycles"] for r in rows if r["config"] == cfg.name and r["cycles"]}
        if len(set(cyc.values())) > 1:
            b.problem(f"sim {cfg.name}", f"engines count different cycles: {cyc}")
        for num, den in (("golden", "amaranth"), ("golden", "rtl"), ("rtl", "amaranth")):
            if rate.get(num) and rate.get(den):
                ratios.append({"config": cfg.name, "ratio": f"{num} / {den}",
                               "value": rate[num] / rate[den]})
    notes.append("run s = wall time of the run from START to done (golden: the whole run, "
                 "averaged over repeats); setup s = elaboration, Verilog conversion, Icarus "
                 "compilation, loading and read-back. Wall-clock figures on a shared machine.")
    if b.quick:
        notes.append(f"--quick: only {', '.join(c.name for c in rtl_cfgs)}, without Icarus.")
    return {"rows": rows, "ratios": ratios, "notes": notes}


# -- scale ------------------------------------------------------------------------------

def section_scale(b):
    rows = []
    sizes = QUICK_SCALE_SIZES if b.quick else SCALE_SIZES
    for cfg in b.configs:
        for s in sizes:
            row, g, _ = b.gemm(cfg, (s, s, s))
            row = {k: row[k] for k in ("config", "shape", "bound", "predicted", "instr_words",
                                       "compile_cpu_s", "golden_cpu_s", "status")}
            if g is not None and row["golden_cpu_s"]:
                row["golden_cycles_per_cpu_s"] = row["predicted"] / row["golden_cpu_s"]
            rows.append(row)
            b.log(f"[scale] {cfg.name} {row['shape']}: {row['status'][:60]}")
    notes = ["CPU seconds (`time.process_time`) of `compile_gemm` (plan, schedule, hazard "
             "check, image) and of one golden-model run; the same measurements as the GEMM "
             "table where the shapes meet."]
    return {"rows": rows, "notes": notes}


RUNNERS = {"fpga": section_fpga, "gemm": section_gemm, "models": section_models,
           "jitter": section_jitter, "sim": section_sim, "scale": section_scale}


# -- output ------------------------------------------------------------------------------

def _cell(v, fmt=None):
    if v is None:
        return "-"
    if fmt and isinstance(v, (int, float)):
        return format(v, fmt)
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(cols, rows):
    """A markdown table: ``cols`` is a list of ``(title, key or function, format)``."""
    out = ["| " + " | ".join(c[0] for c in cols) + " |",
           "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for _, key, fmt in cols:
            v = key(r) if callable(key) else r.get(key)
            cells.append(_cell(v, fmt))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _latency(r):
    if r.get("latency_us") is None:
        return r.get("latency_at") if r.get("predicted") is not None else None
    return f"{r['latency_us']:.2f} ({r['latency_at']})"


def _resource(name):
    def cell(r):
        used, avail = (r.get("resources") or {}).get(name, (None, None))
        if used is None:
            return None
        return f"{used} / {avail}" if avail else str(used)
    return cell


def _util(r):
    return None if r.get("utilisation") is None else f"{r['utilisation']:.1%}"


TITLES = {"gemm": "GEMM utilisation", "models": "Models: MLP and CNN-like graph",
          "jitter": "Jitter", "sim": "Simulation throughput", "fpga": "FPGA",
          "scale": "Scale: compiler and golden model run time"}


def render_markdown(data):
    meta = data["meta"]
    lines = ["# open-tsp benchmarks", "",
             f"Produced by `{meta['command']}` on {meta['date']} in {meta['seconds']:.0f} s "
             f"({meta['mode']} run).  ",
             f"Machine: {meta['machine']}; load average at the start "
             f"{meta['load_start']}, at the end {meta['load_end']}.  ",
             "Every number below was measured by this run; `-` or a reason stands where "
             "nothing was.", ""]
    lines += ["Configurations (from `firmware/machine.py`):", "",
              _table([("set", "name", None), ("tiles x lanes", "geometry", None),
                      ("VL", "vl", None), ("MEM slices", "mem_slices", None),
                      ("words/bank", "bank_words", None), ("queue depth", "queue_depth", None),
                      ("MXMs", "mxm", None), ("RTL", "rtl", None)], meta["configs"]), ""]
    if data["problems"]:
        lines += ["## Problems", ""] + [f"- **MISMATCH** {p}" for p in data["problems"]] + [""]
    else:
        lines += ["All checks passed: golden == predicted, RTL == predicted, results == numpy, "
                  "jitter min == max.", ""]
    s = data["sections"]
    order = ("gemm", "models", "jitter", "sim", "fpga", "scale")
    for name in order:
        if name not in s:
            continue
        sec = s[name]
        lines += [f"## {TITLES[name]}", "", f"({sec['seconds']:.1f} s)", ""]
        if "error" in sec:
            lines += [f"**Section failed**: {sec['error']}", ""]
            continue
        if name == "gemm":
            lines.append(_table([
                ("config", "config", None), ("M x K x N", "shape", None), ("bound", "bound", None),
                ("predicted", "predicted", None), ("golden", "golden", None),
                ("RTL", lambda r: r["rtl"] if r.get("rtl") is not None else None, None),
                ("utilisation", _util, None), ("latency us", _latency, None),
                ("compile CPU s", "compile_cpu_s", ".2f"), ("golden CPU s", "golden_cpu_s", ".2f"),
                ("status", "status", None)], sec["rows"]))
        elif name == "models":
            lines.append(_table([
                ("model", "model", None), ("config", "config", None), ("phases", "phases", None),
                ("MXM bound", "bound", None), ("predicted", "predicted", None),
                ("golden", "golden", None), ("RTL", "rtl", None),
                ("latency us", _latency, None), ("compile CPU s", "compile_cpu_s", ".2f"),
                ("status", "status", None)], sec["rows"]))
        elif name == "jitter":
            lines.append(_table([
                ("program", "program", None), ("config", "config", None),
                ("engine", "engine", None), ("random inputs", "inputs", None),
                ("min cycles", "min", None), ("max cycles", "max", None),
                ("predicted", "predicted", None), ("wrong outputs", "wrong", None),
                ("status", "status", None)], sec["rows"]))
        elif name == "sim":
            lines.append(_table([
                ("config", "config", None), ("engine", lambda r: ENGINE_NAMES[r["engine"]], None),
                ("program", "program", None), ("cycles", "cycles", None),
                ("run s", "run_s", ".3f"), ("cycles/s", "cycles_per_s", ",.0f"),
                ("setup s", "setup_s", ".1f"), ("status", "status", None)], sec["rows"]))
            if sec["ratios"]:
                lines += ["", _table([("config", "config", None), ("speed ratio", "ratio", None),
                                      ("x", "value", ",.1f")], sec["ratios"])]
        elif name == "fpga":
            lines.append(_table([
                ("board", "board", None), ("config", "config", None), ("VL", "vl", None),
                ("Fmax MHz", "fmax_mhz", ".2f"), ("target MHz", "target_mhz", ".1f")]
                + [(k, _resource(k), None) for k in ("LUT", "FF", "BRAM", "DSP")]
                + [("peak int8 GOPS", "gops", ".2f"), ("build s", "build_s", ".0f"),
                   ("status", "status", None)], sec["rows"]))
        elif name == "scale":
            lines.append(_table([
                ("config", "config", None), ("M=K=N", lambda r: r["shape"].split("x")[0], None),
                ("cycles", "predicted", None), ("instr words", "instr_words", None),
                ("compile CPU s", "compile_cpu_s", ".3f"), ("golden CPU s", "golden_cpu_s", ".3f"),
                ("golden cycles/CPU s", "golden_cycles_per_cpu_s", ",.0f"),
                ("status", "status", None)], sec["rows"]))
        lines.append("")
        lines += [f"- {n}" for n in sec.get("notes", [])] + [""]
    return "\n".join(lines)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):      # numpy scalars
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _machine():
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "-"


# -- command --------------------------------------------------------------------------

def add_arguments(p):
    """The options of ``tsp bench`` (registered by :mod:`firmware.cli`)."""
    p.add_argument("--quick", action="store_true",
                   help="the short suite (about a minute): small shapes, no FPGA builds, "
                        "no Icarus")
    p.add_argument("--out", default="BENCHMARKS.md", help="the table for people (default %(default)s)")
    p.add_argument("--json", help="the results for machines (default: --out with .json)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="run only these sections")
    p.add_argument("--fpga-reports", metavar="DIR",
                   help="read the builds in DIR/<board>/ (nextpnr report.json, top.tim, Yosys "
                        "top.rpt) instead of building")
    p.add_argument("--skip-fpga", action="store_true", help="full run without FPGA builds")
    p.add_argument("--rtl-engine", choices=("rtl", "amaranth", "none"),
                   help="engine for the RTL columns (default: rtl = Icarus; amaranth in --quick)")
    p.add_argument("--rtl-max-cycles", type=int, metavar="N",
                   help="run the RTL on programs of at most N predicted cycles "
                        "(default 6000; 300 in --quick)")
    p.add_argument("--jitter-inputs", type=int, metavar="N",
                   help="random inputs on the golden model (default 100; 10 in --quick)")
    p.add_argument("--jitter-rtl", type=int, default=JITTER_RTL, metavar="N",
                   help="random inputs on the RTL engine (default %(default)s; none in --quick)")


def _command(args):
    """The command line that reproduces this run (output paths left out)."""
    words = ["tsp", "bench"] + (["--quick"] if args.quick else [])
    if list(args.sections) != list(SECTIONS):
        words += ["--sections", *args.sections]
    for opt in ("fpga_reports", "rtl_engine", "rtl_max_cycles", "jitter_inputs"):
        if getattr(args, opt) is not None:
            words += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
    if args.skip_fpga:
        words.append("--skip-fpga")
    if args.jitter_rtl != JITTER_RTL:
        words += ["--jitter-rtl", str(args.jitter_rtl)]
    return " ".join(words)


def run(args, log=None):
    """Run the suite of ``args`` (from :func:`add_arguments`), write the files; return
    ``(data, exit status)``: 1 when a check failed."""
    if args.fpga_reports and not Path(args.fpga_reports).is_dir():
        raise BenchError(f"--fpga-reports {args.fpga_reports}: no such directory")
    for opt in ("rtl_max_cycles", "jitter_inputs", "jitter_rtl"):
        v = getattr(args, opt)
        if v is not None and v < 0:
            raise BenchError(f"--{opt.replace('_', '-')} {v}: must not be negative")
    out = Path(args.out)
    json_path = Path(args.json) if args.json else out.with_suffix(".json")
    for p in (out, json_path):
        if not p.parent.is_dir():
            raise BenchError(f"{p}: directory {p.parent} does not exist")
    b = Bench(args, log)
    start, load_start = time.perf_counter(), _load()
    boards = _boards()
    b.board_of = {cfg: board for board, cfg in boards.items()}
    b.fmax_missing = {board: "fpga section not run" for board in boards}
    # The FPGA section runs last (a build in progress elsewhere has the most time to
    # finish); the latency columns are filled in from its Fmax afterwards.
    wanted = [s for s in SECTIONS if s in args.sections and s != "fpga"]
    wanted += ["fpga"] if "fpga" in args.sections else []
    for name in wanted:
        b.log(f"== {TITLES[name]} ==")
        t = time.perf_counter()
        try:
            b.sections[name] = RUNNERS[name](b)
        except KeyboardInterrupt:
            raise
        except Exception as e:          # one broken section must not lose the others
            b.sections[name] = {"error": _one_line(e), "rows": []}
            b.problem(name, f"section failed: {_one_line(e)}")
        b.sections[name]["seconds"] = time.perf_counter() - t
        b.log(f"   {name}: {b.sections[name]['seconds']:.1f} s")
    for name in ("gemm", "models"):
        for row in b.sections.get(name, {}).get("rows", []):
            if row.get("predicted") is not None:
                row["latency_us"], row["latency_at"] = b.latency_us(row["config"], row["predicted"])
    from .machine import CONFIGS
    data = {
        "meta": {"command": _command(args),
                 "mode": "quick" if args.quick else "full",
                 "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "seconds": time.perf_counter() - start, "machine": _machine(),
                 "load_start": load_start, "load_end": _load(),
                 "configs": [{"name": c.name, "geometry": f"{c.tiles} x {c.lanes}", "vl": c.vl,
                              "mem_slices": c.mem_slices, "bank_words": c.bank_words,
                              "queue_depth": c.queue_depth, "mxm": len(c.mxm), "rtl": c.rtl}
                             for c in CONFIGS.values()]},
        "sections": b.sections,
        "problems": b.problems,
    }
    data = _jsonable(data)
    out.write_text(render_markdown(data))
    json_path.write_text(json.dumps(data, indent=1))
    b.log(f"wrote {out} and {json_path} in {data['meta']['seconds']:.0f} s"
          + (f"; {len(b.problems)} problem(s)" if b.problems else ""))
    return data, 1 if b.problems else 0
